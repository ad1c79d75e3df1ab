/* Internal: the poller backend interface behind the reactor. A backend is a
 * table of four operations; epoll is the one in use, another (poll, kqueue)
 * plugs in by providing the same table. */
#ifndef SS_REACTOR_POLLER_H
#define SS_REACTOR_POLLER_H

#include <stdint.h>

struct ss_poll_event {
    uint64_t token; /* what the reactor registered with the fd */
    unsigned events; /* SS_READ | SS_WRITE | SS_HUP */
};

struct ss_poller_ops {
    const char *name;
    int (*create)(void **state);
    void (*destroy)(void *state);
    /* op: 0 add, 1 modify, 2 delete. Returns 0 or a negative errno. */
    int (*ctl)(void *state, int op, int fd, unsigned events, uint64_t token);
    /* Returns the number of events (>= 0) or a negative errno. */
    int (*wait)(void *state, struct ss_poll_event *out, int max, int timeout_ms);
};

enum { SS_POLL_ADD, SS_POLL_MOD, SS_POLL_DEL };

extern const struct ss_poller_ops ss__poller_epoll;

#endif
