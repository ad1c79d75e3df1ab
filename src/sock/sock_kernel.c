/* The kernel backend of sock: BSD sockets, non-blocking, driven by the
 * reactor through ss_loop_io_*. Every call returns 0/count or -errno. */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <linux/tcp.h> /* struct tcp_info with byte counters (glibc's is older) */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "sock/sock_internal.h"
#include "sockstack/err.h"

static const ss_backend kernel_backend;

static int k_wrap(const ss_backend *be, int fd, int family, int type, ss_sock **out)
{
    ss_sock *s = ss__sock_alloc(be, family, type);
    if (!s) {
        close(fd);
        return -ENOMEM;
    }
    s->fd = fd;
    *out = s;
    return 0;
}

static int k_open(const ss_backend *be, int family, int type, ss_sock **out)
{
    int st = (type == SS_DGRAM ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC;
    int fd = socket(family, st, 0);
    if (fd < 0)
        return -errno;
    return k_wrap(be, fd, family, type, out);
}

static int setopt_int(int fd, int level, int name, int v)
{
    return setsockopt(fd, level, name, &v, sizeof v) < 0 ? -errno : 0;
}

static bool is_ip(const ss_sock *s) { return s->family == AF_INET || s->family == AF_INET6; }
static bool is_tcp(const ss_sock *s) { return is_ip(s) && s->type == SS_STREAM; }

static int k_set_opts(ss_sock *s, const ss_sockopts *o, const char **failed)
{
    int fd = s->fd, err = 0;
    SS_OPT_TRY(o->reuseaddr >= 0, "--reuseaddr", setopt_int(fd, SOL_SOCKET, SO_REUSEADDR, o->reuseaddr));
    SS_OPT_TRY(o->reuseport >= 0 && is_ip(s), "--reuseport", setopt_int(fd, SOL_SOCKET, SO_REUSEPORT, o->reuseport));
    SS_OPT_TRY(o->sndbuf >= 0, "--sndbuf", setopt_int(fd, SOL_SOCKET, SO_SNDBUF, o->sndbuf));
    SS_OPT_TRY(o->rcvbuf >= 0, "--rcvbuf", setopt_int(fd, SOL_SOCKET, SO_RCVBUF, o->rcvbuf));
    bool ka = o->keepalive > 0 || o->keepidle >= 0 || o->keepintvl >= 0 || o->keepcnt >= 0;
    SS_OPT_NEEDS(ka, "--keepalive", is_tcp(s));
    SS_OPT_TRY(o->keepalive >= 0 || ka, "--keepalive",
        setopt_int(fd, SOL_SOCKET, SO_KEEPALIVE, o->keepalive == 0 ? 0 : 1));
    SS_OPT_TRY(o->keepidle >= 0, "--keepalive", setopt_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, o->keepidle));
    SS_OPT_TRY(o->keepintvl >= 0, "--keepalive", setopt_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, o->keepintvl));
    SS_OPT_TRY(o->keepcnt >= 0, "--keepalive", setopt_int(fd, IPPROTO_TCP, TCP_KEEPCNT, o->keepcnt));
    if (o->linger >= 0) {
        struct linger l = {.l_onoff = 1, .l_linger = o->linger};
        SS_OPT_TRY(1, "--linger", setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l) < 0 ? -errno : 0);
    }
    SS_OPT_NEEDS(o->nodelay >= 0, "--nodelay", is_tcp(s));
    SS_OPT_TRY(o->nodelay >= 0, "--nodelay", setopt_int(fd, IPPROTO_TCP, TCP_NODELAY, o->nodelay));
    if (o->timeout_ms >= 0) {
        struct timeval tv = {.tv_sec = o->timeout_ms / 1000,
                             .tv_usec = (o->timeout_ms % 1000) * 1000};
        SS_OPT_TRY(1, "--timeout", setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ? -errno : 0);
        SS_OPT_TRY(1, "--timeout", setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0 ? -errno : 0);
    }
    SS_OPT_NEEDS(o->broadcast > 0, "--broadcast", s->family == AF_INET && s->type == SS_DGRAM);
    SS_OPT_TRY(o->broadcast >= 0 && s->family == AF_INET, "--broadcast",
        setopt_int(fd, SOL_SOCKET, SO_BROADCAST, o->broadcast));
    SS_OPT_NEEDS(o->ttl >= 0, "--ttl", is_ip(s));
    SS_OPT_TRY(o->ttl >= 0 && s->family == AF_INET, "--ttl", setopt_int(fd, IPPROTO_IP, IP_TTL, o->ttl));
    SS_OPT_TRY(o->ttl >= 0 && s->family == AF_INET6, "--ttl",
        setopt_int(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, o->ttl));
    SS_OPT_NEEDS(o->tos >= 0, "--tos", is_ip(s));
    SS_OPT_TRY(o->tos >= 0 && s->family == AF_INET, "--tos", setopt_int(fd, IPPROTO_IP, IP_TOS, o->tos));
    SS_OPT_TRY(o->tos >= 0 && s->family == AF_INET6, "--tos", setopt_int(fd, IPPROTO_IPV6, IPV6_TCLASS, o->tos));
    SS_OPT_NEEDS(o->mss >= 0, "--mss", is_tcp(s));
    SS_OPT_TRY(o->mss >= 0, "--mss", setopt_int(fd, IPPROTO_TCP, TCP_MAXSEG, o->mss));
    if (o->bind_device[0]) {
        SS_OPT_TRY(1, "--bind-device",
            setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, o->bind_device,
                       (socklen_t)strnlen(o->bind_device, sizeof o->bind_device)) < 0
                ? -errno
                : 0);
    }
    return 0;
}

/* The socket file at path is left by a server that died without removing
 * it (SIGKILL, crash) when it is a socket and a connect to it is refused:
 * no socket is bound to that file any more. The probe is a datagram socket
 * whatever the server's type: the kernel answers ECONNREFUSED when nothing
 * is bound there and EPROTOTYPE when a stream (or seqpacket) socket is, so
 * a live stream server is never handed a connection it would take for a
 * client (a one-peer `listen` would serve it and end). Returns 0 when
 * stale, SS_ELISTENING when a socket is bound there, -EADDRINUSE when it
 * is not a socket or cannot be probed (it is left alone). */
static int unix_path_stale(const char *path, const ss_addr *a, struct stat *st)
{
    if (lstat(path, st) < 0 || !S_ISSOCK(st->st_mode))
        return -EADDRINUSE;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -EADDRINUSE;
    int r = connect(fd, (const struct sockaddr *)&a->sa, a->len);
    int e = errno;
    close(fd);
    if (r == 0 || e == EPROTOTYPE || e == EPERM)
        return SS_ELISTENING; /* bound: a datagram server, or another type */
    return e == ECONNREFUSED ? 0 : -EADDRINUSE;
}

/* bind() a pathname Unix socket whose file is in the way: what mature
 * servers do. Remove the file only when unix_path_stale() says so and it is
 * still the same file (same device and inode) just before the unlink. */
static int unix_bind_reclaim(ss_sock *s, const ss_addr *a)
{
    const struct sockaddr_un *un = (const struct sockaddr_un *)&a->sa;
    size_t off = offsetof(struct sockaddr_un, sun_path);
    if (a->len <= off || un->sun_path[0] == '\0')
        return -EADDRINUSE; /* abstract names vanish with their owner */
    char path[sizeof un->sun_path + 1];
    size_t plen = strnlen(un->sun_path, a->len - off);
    memcpy(path, un->sun_path, plen);
    path[plen] = '\0';
    struct stat st, again;
    int err = unix_path_stale(path, a, &st);
    if (err < 0)
        return err;
    if (lstat(path, &again) < 0 || again.st_dev != st.st_dev || again.st_ino != st.st_ino ||
        !S_ISSOCK(again.st_mode))
        return -EADDRINUSE;
    if (unlink(path) < 0 && errno != ENOENT)
        return -EADDRINUSE;
    return bind(s->fd, (const struct sockaddr *)&a->sa, a->len) < 0 ? -errno : 0;
}

static int k_bind(ss_sock *s, const ss_addr *a)
{
    /* IPv6 listeners take IPv4 too unless the user asked for a family;
     * the kernel default (bindv6only=0) already does that. */
    if (bind(s->fd, (const struct sockaddr *)&a->sa, a->len) == 0)
        return 0;
    if (errno == EADDRINUSE && s->family == AF_UNIX)
        return unix_bind_reclaim(s, a);
    return -errno;
}

static int k_listen(ss_sock *s, int backlog)
{
    return listen(s->fd, backlog) < 0 ? -errno : 0;
}

static int k_accept(ss_sock *s, ss_sock **out, ss_addr *peer)
{
    peer->len = sizeof peer->sa;
    int fd = accept4(s->fd, (struct sockaddr *)&peer->sa, &peer->len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return k_wrap(s->be, fd, s->family, s->type, out);
}

static int k_connect(ss_sock *s, const ss_addr *a)
{
    if (connect(s->fd, (const struct sockaddr *)&a->sa, a->len) == 0)
        return 0;
    /* Unix sockets say EAGAIN when the listener's backlog is full. */
    return errno == EINPROGRESS ? -EINPROGRESS : -errno;
}

static int k_error(ss_sock *s)
{
    int e = 0;
    socklen_t len = sizeof e;
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
        return -errno;
    return -e;
}

static ssize_t k_sendv(ss_sock *s, const struct iovec *iov, int iovcnt)
{
    ssize_t n;
    if (iovcnt == 1) { /* send() skips sendmsg's msghdr and iovec copy-in */
        n = send(s->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
    } else {
        struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
        n = sendmsg(s->fd, &mh, MSG_NOSIGNAL);
    }
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return n;
}

static ssize_t k_recv(ss_sock *s, void *buf, size_t cap)
{
    ssize_t n = recv(s->fd, buf, cap, 0);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return n;
}

static ssize_t k_sendto(ss_sock *s, const void *buf, size_t len, const ss_addr *to)
{
    ssize_t n = sendto(s->fd, buf, len, MSG_NOSIGNAL,
                       to ? (const struct sockaddr *)&to->sa : NULL, to ? to->len : 0);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return n;
}

static ssize_t k_recvfrom(ss_sock *s, void *buf, size_t cap, ss_addr *from, bool *trunc)
{
    struct iovec iov = {.iov_base = buf, .iov_len = cap};
    struct msghdr mh = {.msg_name = &from->sa, .msg_namelen = sizeof from->sa,
                        .msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n = recvmsg(s->fd, &mh, 0);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    from->len = mh.msg_namelen;
    *trunc = (mh.msg_flags & MSG_TRUNC) != 0;
    return n;
}

static int k_shutdown(ss_sock *s, int how)
{
    return shutdown(s->fd, how) < 0 ? -errno : 0;
}

static int k_close(ss_sock *s)
{
    int r = close(s->fd) < 0 ? -errno : 0;
    s->fd = -1;
    return r;
}

static int k_local_addr(ss_sock *s, ss_addr *out)
{
    out->len = sizeof out->sa;
    return getsockname(s->fd, (struct sockaddr *)&out->sa, &out->len) < 0 ? -errno : 0;
}

static int k_peer_addr(ss_sock *s, ss_addr *out)
{
    out->len = sizeof out->sa;
    return getpeername(s->fd, (struct sockaddr *)&out->sa, &out->len) < 0 ? -errno : 0;
}

static int k_set_blocking(ss_sock *s, bool blocking)
{
    int fl = fcntl(s->fd, F_GETFL);
    if (fl < 0)
        return -errno;
    fl = blocking ? fl & ~O_NONBLOCK : fl | O_NONBLOCK;
    return fcntl(s->fd, F_SETFL, fl) < 0 ? -errno : 0;
}

static void k_io_cb(ss_loop *loop, int fd, unsigned events, void *arg)
{
    ss_sock *s = arg;
    /* Errors and hang-ups are reported as readable/writable so the owner's
     * next recv/send returns the error; SS_HUP rides along for information. */
    if (events & SS_HUP)
        events |= s->events;
    ss__sock_ready(s, events);
}

static int k_watch(ss_sock *s)
{
    if (s->watching)
        return ss_loop_io_mod(s->loop, s->fd, s->events);
    return ss_loop_io_add(s->loop, s->fd, s->events, k_io_cb, s);
}

static int k_unwatch(ss_sock *s)
{
    return ss_loop_io_del(s->loop, s->fd);
}

static const char *tcp_state_name(uint8_t st)
{
    /* Linux's tcpi_state numbering (include/net/tcp_states.h). */
    static const char *names[] = {
        [1] = "ESTABLISHED", [2] = "SYN-SENT",   [3] = "SYN-RECEIVED",
        [4] = "FIN-WAIT-1",  [5] = "FIN-WAIT-2", [6] = "TIME-WAIT",
        [7] = "CLOSED",      [8] = "CLOSE-WAIT", [9] = "LAST-ACK",
        [10] = "LISTEN",     [11] = "CLOSING",
    };
    return st < sizeof names / sizeof names[0] && names[st] ? names[st] : "UNKNOWN";
}

static int k_tcp_info(ss_sock *s, ss_tcp_info *out)
{
    if (!is_tcp(s))
        return SS_ENOTSUP;
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(s->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
        return -errno;
    snprintf(out->state, sizeof out->state, "%s", tcp_state_name(ti.tcpi_state));
    out->rtt_us = ti.tcpi_rtt;
    out->rttvar_us = ti.tcpi_rttvar;
    out->rto_us = ti.tcpi_rto;
    out->snd_mss = ti.tcpi_snd_mss;
    out->rcv_mss = ti.tcpi_rcv_mss;
    out->snd_cwnd = ti.tcpi_snd_cwnd;
    out->snd_ssthresh = ti.tcpi_snd_ssthresh;
    out->retransmits = ti.tcpi_total_retrans;
    out->bytes_acked = ti.tcpi_bytes_acked;
    out->bytes_received = ti.tcpi_bytes_received;
    out->bytes_sent = ti.tcpi_bytes_sent;
    out->options = ti.tcpi_options & (TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE);
    out->snd_wscale = ti.tcpi_snd_wscale;
    out->rcv_wscale = ti.tcpi_rcv_wscale;
    return 0;
}

static const struct ss_sock_ops kernel_ops = {
    .set_opts = k_set_opts,
    .bind = k_bind,
    .listen = k_listen,
    .accept = k_accept,
    .connect = k_connect,
    .error = k_error,
    .sendv = k_sendv,
    .recv = k_recv,
    .sendto = k_sendto,
    .recvfrom = k_recvfrom,
    .shutdown = k_shutdown,
    .close = k_close,
    .local_addr = k_local_addr,
    .peer_addr = k_peer_addr,
    .set_blocking = k_set_blocking,
    .watch = k_watch,
    .unwatch = k_unwatch,
    .tcp_info = k_tcp_info,
};

static const ss_backend kernel_backend = {
    .name = "kernel",
    .ops = &kernel_ops,
    .open = k_open,
};

const ss_backend *ss_backend_kernel(void)
{
    return &kernel_backend;
}
