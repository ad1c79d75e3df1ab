/* Internal: what a sock backend provides. ss_sock is the common handle; a
 * backend fills the ops table and keeps its own state in impl (or uses fd). */
#ifndef SS_SOCK_INTERNAL_H
#define SS_SOCK_INTERNAL_H

#include <errno.h>

#include "sockstack/sock.h"

struct ss_sock_ops {
    int (*set_opts)(ss_sock *s, const ss_sockopts *o, const char **failed);
    int (*bind)(ss_sock *s, const ss_addr *a);
    int (*listen)(ss_sock *s, int backlog);
    int (*accept)(ss_sock *s, ss_sock **out, ss_addr *peer);
    int (*connect)(ss_sock *s, const ss_addr *a);
    int (*error)(ss_sock *s);
    ssize_t (*sendv)(ss_sock *s, const struct iovec *iov, int iovcnt);
    ssize_t (*recv)(ss_sock *s, void *buf, size_t cap);
    ssize_t (*sendto)(ss_sock *s, const void *buf, size_t len, const ss_addr *to);
    ssize_t (*recvfrom)(ss_sock *s, void *buf, size_t cap, ss_addr *from, bool *trunc);
    int (*shutdown)(ss_sock *s, int how);
    int (*close)(ss_sock *s); /* releases backend state, not the handle */
    int (*local_addr)(ss_sock *s, ss_addr *out);
    int (*peer_addr)(ss_sock *s, ss_addr *out);
    int (*set_blocking)(ss_sock *s, bool blocking);
    /* Arrange for ss__sock_ready() calls while s->events are ready. */
    int (*watch)(ss_sock *s);
    int (*unwatch)(ss_sock *s);
    int (*tcp_info)(ss_sock *s, ss_tcp_info *out);
};

/* Inside a backend's set_opts (which has `const char **failed`): when cond
 * holds, name the option that failed and return code. SS_OPT_TRY: a setter
 * (expr, into the caller's `err`) failed; SS_OPT_NEEDS: the option does not
 * fit this socket. */
#define SS_OPT_FAIL_IF(cond, name, code)                                              \
    do {                                                                              \
        if (cond) {                                                                   \
            if (failed)                                                               \
                *failed = (name);                                                     \
            return (code);                                                            \
        }                                                                             \
    } while (0)
#define SS_OPT_TRY(cond, name, expr) SS_OPT_FAIL_IF((cond) && (err = (expr)) < 0, name, err)
#define SS_OPT_NEEDS(cond, name, ok) SS_OPT_FAIL_IF((cond) && !(ok), name, -ENOPROTOOPT)

struct ss_backend {
    const char *name;
    const struct ss_sock_ops *ops;
    int (*open)(const ss_backend *be, int family, int type, ss_sock **out);
    void *ctx;
};

struct ss_sock {
    const ss_backend *be;
    int family;
    int type;       /* SS_STREAM / SS_DGRAM */
    int fd;         /* kernel descriptor, or -1 */
    ss_loop *loop;  /* set while watched */
    unsigned events;
    bool watching;
    ss_sock_cb cb;
    void *cb_arg;
    void *impl;     /* backend state */
};

/* Allocate a handle for backend be (fd -1, nothing watched). */
ss_sock *ss__sock_alloc(const ss_backend *be, int family, int type);
void ss__sock_free(ss_sock *s);
/* Backends call this when s is ready for any of events. */
void ss__sock_ready(ss_sock *s, unsigned events);

#endif
