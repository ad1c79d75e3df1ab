/* bench_net.h: socket set-up the benchmark tools in bench/ share.
 * Header-only; not library code. */
#ifndef BENCH_NET_H
#define BENCH_NET_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/epoll.h>
#include <sys/socket.h>

/* Lift the open-files limit to its hard maximum (thousands of sockets). */
static inline void bench_raise_nofile(void)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

/* A non-blocking TCP listener on 127.0.0.1:port (SO_REUSEADDR, a deep
 * backlog); -1 with errno set on failure. */
static inline int bench_listen_lo(int port)
{
    int one = 1, l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (l < 0)
        return -1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 4096) < 0)
        return -1;
    return l;
}

/* An epoll instance watching listener l for input (data.fd = l). */
static inline int bench_epoll_with(int l)
{
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = l};
    if (ep >= 0)
        epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    return ep;
}

/* Accept one pending connection on l: non-blocking, TCP_NODELAY, watched
 * by ep for input (data.fd = its fd). Its fd, or -1 when none is left. */
static inline int bench_accept_one(int ep, int l)
{
    int one = 1, c = accept4(l, NULL, NULL, SOCK_NONBLOCK);
    if (c < 0)
        return -1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct epoll_event e = {.events = EPOLLIN, .data.fd = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
    return c;
}

#endif
