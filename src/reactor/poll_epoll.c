/* The epoll poller backend (level-triggered). */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "reactor/poller.h"
#include "sockstack/config.h"
#include "sockstack/reactor.h"

struct epoll_state {
    int epfd;
    struct epoll_event evs[SS_REACTOR_MAX_EVENTS];
};

static int ep_create(void **state)
{
    struct epoll_state *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0) {
        int err = -errno;
        free(s);
        return err;
    }
    *state = s;
    return 0;
}

static void ep_destroy(void *state)
{
    struct epoll_state *s = state;
    close(s->epfd);
    free(s);
}

static int ep_ctl(void *state, int op, int fd, unsigned events, uint64_t token)
{
    struct epoll_state *s = state;
    static const int ops[] = {EPOLL_CTL_ADD, EPOLL_CTL_MOD, EPOLL_CTL_DEL};
    struct epoll_event ev = {0};
    if (events & SS_READ)
        ev.events |= EPOLLIN | EPOLLRDHUP;
    if (events & SS_WRITE)
        ev.events |= EPOLLOUT;
    if (events & SS_RDHUP)
        ev.events |= EPOLLRDHUP;
    ev.data.u64 = token;
    return epoll_ctl(s->epfd, ops[op], fd, &ev) < 0 ? -errno : 0;
}

static int ep_wait(void *state, struct ss_poll_event *out, int max, int timeout_ms)
{
    struct epoll_state *s = state;
    if (max > SS_REACTOR_MAX_EVENTS)
        max = SS_REACTOR_MAX_EVENTS;
    int n = epoll_wait(s->epfd, s->evs, max, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        unsigned e = 0;
        uint32_t r = s->evs[i].events;
        if (r & (EPOLLIN | EPOLLRDHUP | EPOLLPRI))
            e |= SS_READ;
        if (r & EPOLLOUT)
            e |= SS_WRITE;
        if (r & EPOLLRDHUP)
            e |= SS_RDHUP;
        if (r & (EPOLLERR | EPOLLHUP))
            e |= SS_HUP;
        out[i].token = s->evs[i].data.u64;
        out[i].events = e;
    }
    return n;
}

const struct ss_poller_ops ss__poller_epoll = {
    .name = "epoll",
    .create = ep_create,
    .destroy = ep_destroy,
    .ctl = ep_ctl,
    .wait = ep_wait,
};
