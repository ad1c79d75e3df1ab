/* The user-space stack backend of sock (see sockstack/sock_stack.h).
 *
 * Each ss_sock has a struct stk_sock in impl: the stack's handle (sd, -1
 * until bind/listen/connect creates one), what bind asked for, the options
 * to apply once the sd exists, and an ss_defer that delivers readiness.
 *
 * Readiness: the stack's socket callback (which runs inside ss_stack_input
 * or ss_stack_poll) only queues the socket's defer. The deferred task reads
 * the level-triggered state (ss_stack_sock_events), calls the owner while a
 * watched event is ready and queues itself again for the next loop
 * iteration while one still is -- the kernel backend's epoll
 * level-triggered behaviour.
 *
 * Closing (libuv's uv_close, and the stack's own release/reap): s_close
 * only marks the stk_sock closed and detaches it from the stack; when the
 * socket was ever on a loop, its memory goes in a deferred step of that
 * loop (on_defer, after the callback that closed it returned), so a
 * callback never returns into freed memory. Until then it waits on the
 * backend's closing list, which ss_backend_stack_free empties. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "sock/sock_internal.h"
#include "sockstack/err.h"
#include "sockstack/sock_stack.h"

/* Largest UDP payload over IPv4: a send gathers its iovec into one
 * datagram in a buffer this big. (Receives go straight into the caller's
 * buffer; ss_udp_recvmsg reports truncation.) */
#define STK_DGRAM_MAX 65535

struct stk_sock;

struct stk_backend {
    ss_backend be;
    ss_stack_driver d;
    struct stk_sock *closing;    /* closed, waiting for their deferred free */
    unsigned char scratch[STK_DGRAM_MAX];
};

struct stk_sock {
    struct stk_backend *b;
    ss_sock *s;
    int sd;              /* stack handle, -1 if none yet */
    bool listening;
    bool shut_rd;
    bool bound;          /* bind() was called */
    uint32_t bind_addr;  /* host order, 0 = wildcard */
    uint16_t bind_port;
    bool have_peer;      /* UDP connect() */
    uint32_t peer_addr;
    uint16_t peer_port;
    ss_sockopts opts;    /* applied when the sd exists */
    ss_defer defer;      /* readiness; once closed: the deferred free */
    bool closed;         /* s_close ran: s is gone, only the free is left */
    ss_loop *loop;       /* the loop it was last watched on (its defer's) */
    struct stk_sock *close_prev, *close_next;  /* the backend's closing list */
};

static const struct ss_sock_ops stack_ops;

static struct stk_sock *K(ss_sock *s) { return s->impl; }
static ss_stack *ST(struct stk_sock *k) { return k->b->d.stack; }
static uint64_t now_us(struct stk_sock *k) { return k->b->d.now(k->b->d.arg); }

static void kick(struct stk_sock *k)
{
    if (k->b->d.kick)
        k->b->d.kick(k->b->d.arg);
}

/* ---- addresses ---------------------------------------------------------- */

static int addr_in(const ss_addr *a, uint32_t *ip, uint16_t *port)
{
    if (!a || a->sa.ss_family != AF_INET || a->len < sizeof(struct sockaddr_in))
        return -EAFNOSUPPORT;
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->sa;
    *ip = ntohl(sin->sin_addr.s_addr);
    *port = ntohs(sin->sin_port);
    return 0;
}

static void addr_out(ss_addr *a, uint32_t ip, uint16_t port)
{
    memset(a, 0, sizeof *a);
    struct sockaddr_in *sin = (struct sockaddr_in *)&a->sa;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(ip);
    sin->sin_port = htons(port);
    a->len = sizeof *sin;
}

/* ---- readiness ---------------------------------------------------------- */

static unsigned ready_now(struct stk_sock *k)
{
    if (k->sd < 0)
        return k->s->type == SS_DGRAM ? SS_WRITE : 0; /* sendto binds */
    int ev = ss_stack_sock_events(ST(k), k->sd);
    if (ev < 0)
        return SS_READ | SS_WRITE; /* the next call reports the error */
    unsigned r = 0;
    if (ev & (SS_EV_READABLE | SS_EV_ACCEPT | SS_EV_ERROR | SS_EV_CLOSED))
        r |= SS_READ;
    if (ev & (SS_EV_WRITABLE | SS_EV_ERROR))
        r |= SS_WRITE;
    /* A closed connection is "hung up": both directions report it, as
     * epoll's EPOLLHUP does, so a writer waiting for room learns. */
    if ((ev & SS_EV_CLOSED) && k->s->type == SS_STREAM && !k->listening)
        r |= SS_WRITE;
    /* The peer's FIN (or the end of the connection): EPOLLRDHUP, which a
     * service with reading paused asks for alone (server.h on_hangup). */
    if (ev & SS_EV_RDHUP)
        r |= SS_RDHUP;
    return r;
}

static void schedule(struct stk_sock *k)
{
    ss_sock *s = k->s;
    if (s->loop && s->cb && s->events)
        ss_loop_defer(s->loop, &k->defer);
}

static void closing_unlink(struct stk_sock *k)
{
    if (k->close_prev)
        k->close_prev->close_next = k->close_next;
    else
        k->b->closing = k->close_next;
    if (k->close_next)
        k->close_next->close_prev = k->close_prev;
}

static void on_defer(ss_loop *loop, void *arg)
{
    struct stk_sock *k = arg;
    if (k->closed) { /* the deferred step of s_close */
        closing_unlink(k);
        free(k);
        return;
    }
    ss_sock *s = k->s;
    if (!s->cb || !s->events)
        return;
    unsigned r = ready_now(k) & s->events;
    if (!r)
        return;
    ss__sock_ready(s, r);
    if (k->closed)
        return; /* closed by its owner: s is gone, k goes next iteration */
    if (s->loop == loop && (ready_now(k) & s->events))
        schedule(k);
}

static void on_stack_event(void *arg, ss_stack *st, int sd, unsigned events, int err)
{
    struct stk_sock *k = arg;
    (void)st;
    (void)events;
    (void)err;
    /* Connections waiting in a listener's queue inherit the listener's
     * callback: that is a hint for the listener, which is what it gets. */
    if (k->sd == sd || k->listening)
        schedule(k);
}

static void attach(struct stk_sock *k, int sd)
{
    k->sd = sd;
    ss_stack_sock_set_cb(ST(k), sd, on_stack_event, k);
}

/* ---- open / options ----------------------------------------------------- */

static struct stk_sock *stk_new(struct stk_backend *b, int family, int type, ss_sock **out)
{
    ss_sock *s = ss__sock_alloc(&b->be, family, type);
    struct stk_sock *k = calloc(1, sizeof *k);
    if (!s || !k) {
        free(s);
        free(k);
        return NULL;
    }
    k->b = b;
    k->s = s;
    k->sd = -1;
    ss_sockopts_init(&k->opts);
    ss_defer_init(&k->defer, on_defer, k);
    s->impl = k;
    *out = s;
    return k;
}

static int s_open(const ss_backend *be, int family, int type, ss_sock **out)
{
    if (family != AF_INET)
        return -EAFNOSUPPORT;
    return stk_new(be->ctx, family, type, out) ? 0 : -ENOMEM;
}

/* Buffer sizes beyond the stack's pools are clamped, as the kernel clamps
 * SO_SNDBUF to wmem_max: keep what the stack has when it refuses. */
static int set_buf(struct stk_sock *k, int opt, int v)
{
    int rc = ss_stack_sock_setopt(ST(k), k->sd, opt, v);
    int cur;
    if (rc == -EINVAL && ss_stack_sock_getopt(ST(k), k->sd, opt, &cur) == 0 && v > cur)
        return 0;
    if (rc < 0 && k->s->type == SS_DGRAM)
        return 0; /* UDP sockets have no byte buffers in the stack */
    return rc;
}

/* Apply the stored options to the stack socket; skip_rcvbuf for an active
 * open (its SYN is out already). */
static int apply_opts(struct stk_sock *k, const char **failed)
{
    const ss_sockopts *o = &k->opts;
    ss_stack *st = ST(k);
    int err = 0;
    SS_OPT_TRY(o->sndbuf >= 0, "--sndbuf", set_buf(k, SS_SO_SNDBUF, o->sndbuf));
    SS_OPT_TRY(o->rcvbuf >= 0, "--rcvbuf", set_buf(k, SS_SO_RCVBUF, o->rcvbuf));
    SS_OPT_TRY(o->tos >= 0, "--tos", ss_stack_sock_setopt(st, k->sd, SS_SO_TOS, o->tos));
    if (k->s->type != SS_STREAM)
        return 0;
    SS_OPT_TRY(o->nodelay >= 0, "--nodelay", ss_stack_sock_setopt(st, k->sd, SS_SO_NODELAY, o->nodelay));
    SS_OPT_TRY(o->keepidle >= 0, "--keepalive", ss_stack_sock_setopt(st, k->sd, SS_SO_KEEPIDLE, o->keepidle));
    SS_OPT_TRY(o->keepintvl >= 0, "--keepalive",
        ss_stack_sock_setopt(st, k->sd, SS_SO_KEEPINTVL, o->keepintvl));
    SS_OPT_TRY(o->keepcnt >= 0, "--keepalive", ss_stack_sock_setopt(st, k->sd, SS_SO_KEEPCNT, o->keepcnt));
    bool ka = o->keepalive > 0 || o->keepidle >= 0 || o->keepintvl >= 0 || o->keepcnt >= 0;
    SS_OPT_TRY(o->keepalive >= 0 || ka, "--keepalive",
        ss_stack_sock_setopt(st, k->sd, SS_SO_KEEPALIVE, o->keepalive == 0 ? 0 : 1));
    return 0;
}

static int s_set_opts(ss_sock *s, const ss_sockopts *o, const char **failed)
{
    struct stk_sock *k = K(s);
#define NOTSUP(cond, name) SS_OPT_FAIL_IF(cond, name, SS_ENOTSUP)
    NOTSUP(o->reuseport > 0, "--reuseport");
    NOTSUP(o->linger >= 0, "--linger");
    /* --timeout (SO_RCVTIMEO/SO_SNDTIMEO) bounds blocking calls, which this
     * backend has none of: accepted, no effect (nc's dial timer still uses
     * it for connect attempts). */
    NOTSUP(o->broadcast > 0, "--broadcast");
    NOTSUP(o->ttl >= 0, "--ttl");
    NOTSUP(o->mss >= 0, "--mss");
    NOTSUP(o->bind_device[0] != '\0', "--bind-device");
    bool ka = o->keepalive > 0 || o->keepidle >= 0 || o->keepintvl >= 0 || o->keepcnt >= 0;
    SS_OPT_NEEDS(ka, "--keepalive", s->type == SS_STREAM);
    SS_OPT_NEEDS(o->nodelay >= 0, "--nodelay", s->type == SS_STREAM);
    /* The window a connection advertises is fixed by its SYN: a receive
     * buffer size can be set before connect or listen, not after. */
    NOTSUP(o->rcvbuf >= 0 && s->type == SS_STREAM && k->sd >= 0 && !k->listening, "--rcvbuf");
#undef NOTSUP
    ss_sockopts save = k->opts;
#define SET(f) if (o->f >= 0) k->opts.f = o->f
    SET(sndbuf); SET(rcvbuf); SET(keepalive); SET(keepidle); SET(keepintvl);
    SET(keepcnt); SET(nodelay); SET(tos);
#undef SET
    if (k->sd >= 0) {
        int err = apply_opts(k, failed);
        if (err < 0) {
            k->opts = save;
            return err;
        }
        kick(k);
    } else if (s->type == SS_STREAM) {
        /* Applied at listen or connect; try them now on a fresh stack
         * socket (nothing is sent) so that a value the stack refuses is
         * reported here, with its option's name. */
        int sd = ss_tcp_socket(ST(k));
        if (sd >= 0) {
            k->sd = sd;
            int err = apply_opts(k, failed);
            ss_tcp_close(ST(k), now_us(k), sd);
            k->sd = -1;
            if (err < 0) {
                k->opts = save;
                return err;
            }
        }
    }
    return 0;
}

/* ---- bind, listen, accept, connect -------------------------------------- */

static int s_bind(ss_sock *s, const ss_addr *a)
{
    struct stk_sock *k = K(s);
    uint32_t ip;
    uint16_t port;
    int err = addr_in(a, &ip, &port);
    if (err < 0)
        return err;
    if (k->bound || k->sd >= 0)
        return -EINVAL;
    if (ip != 0 && ip != ss_stack_addr(ST(k)))
        return -EADDRNOTAVAIL;
    if (s->type == SS_DGRAM) {
        int sd = ss_udp_bind(ST(k), port);
        if (sd < 0)
            return sd;
        attach(k, sd);
        if ((err = apply_opts(k, NULL)) < 0) {
            ss_udp_close(ST(k), sd);
            k->sd = -1;
            return err;
        }
    }
    k->bound = true;
    k->bind_addr = ip;
    k->bind_port = port;
    return 0;
}

static int s_listen(ss_sock *s, int backlog)
{
    struct stk_sock *k = K(s);
    if (s->type != SS_STREAM)
        return -EOPNOTSUPP;
    if (k->listening)
        return 0;
    if (k->sd >= 0)
        return -EINVAL;
    int sd = ss_tcp_listen(ST(k), k->bind_port, backlog);
    if (sd < 0)
        return sd;
    attach(k, sd);
    k->listening = true;
    int err = apply_opts(k, NULL);
    if (err < 0) {
        ss_tcp_close(ST(k), now_us(k), sd);
        k->sd = -1;
        k->listening = false;
        return err;
    }
    kick(k);
    return 0;
}

static int s_accept(ss_sock *s, ss_sock **out, ss_addr *peer)
{
    struct stk_sock *k = K(s);
    if (!k->listening)
        return -EINVAL;
    uint32_t ra;
    uint16_t rp;
    int sd = ss_tcp_accept(ST(k), k->sd, &ra, &rp);
    if (sd < 0)
        return sd;
    ss_sock *ns;
    struct stk_sock *nk = stk_new(k->b, s->family, s->type, &ns);
    if (!nk) {
        ss_tcp_abort(ST(k), now_us(k), sd);
        kick(k);
        return -ENOMEM;
    }
    nk->opts = k->opts; /* the stack copied them from the listener */
    attach(nk, sd);
    addr_out(peer, ra, rp);
    *out = ns;
    return 0;
}

static int s_connect(ss_sock *s, const ss_addr *a)
{
    struct stk_sock *k = K(s);
    uint32_t ip;
    uint16_t port;
    int err = addr_in(a, &ip, &port);
    if (err < 0)
        return err;
    if (s->type == SS_DGRAM) {
        if (k->sd < 0) {
            int sd = ss_udp_bind(ST(k), k->bind_port);
            if (sd < 0)
                return sd;
            attach(k, sd);
            apply_opts(k, NULL);
        }
        k->have_peer = ip != 0 || port != 0;
        k->peer_addr = ip;
        k->peer_port = port;
        return 0;
    }
    if (k->listening)
        return -EINVAL;
    if (k->sd >= 0) {
        int ev = ss_stack_sock_events(ST(k), k->sd);
        return ev >= 0 && (ev & SS_EV_CONNECTED) ? -EISCONN : -EALREADY;
    }
    /* Options (the receive buffer above all) go on before the SYN. */
    int sd = ss_tcp_socket(ST(k));
    if (sd < 0)
        return sd;
    attach(k, sd);
    if ((err = apply_opts(k, NULL)) < 0 ||
        (err = ss_tcp_connect_sd(ST(k), now_us(k), sd, ip, port, k->bind_port)) < 0) {
        ss_tcp_close(ST(k), now_us(k), sd);
        k->sd = -1;
        return err;
    }
    kick(k);
    return -EINPROGRESS;
}

static int s_error(ss_sock *s)
{
    struct stk_sock *k = K(s);
    if (k->sd < 0)
        return 0;
    int e = ss_stack_sock_error(ST(k), k->sd);
    return e == -EBADF ? 0 : e;
}

/* ---- data --------------------------------------------------------------- */

/* Gather iov into the scratch buffer (one datagram). */
static ssize_t gather(struct stk_sock *k, const struct iovec *iov, int iovcnt)
{
    size_t len = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > sizeof k->b->scratch - len)
            return -EMSGSIZE;
        memcpy(k->b->scratch + len, iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    return (ssize_t)len;
}

static int udp_ensure_bound(struct stk_sock *k)
{
    if (k->sd >= 0)
        return 0;
    int sd = ss_udp_bind(ST(k), k->bind_port);
    if (sd < 0)
        return sd;
    attach(k, sd);
    apply_opts(k, NULL);
    return 0;
}

static ssize_t udp_send(struct stk_sock *k, const void *buf, size_t len, uint32_t ip,
                        uint16_t port)
{
    int err = udp_ensure_bound(k);
    if (err < 0)
        return err;
    ssize_t n = ss_udp_sendto(ST(k), now_us(k), k->sd, ip, port, buf, len);
    kick(k);
    return n;
}

static ssize_t s_sendv(ss_sock *s, const struct iovec *iov, int iovcnt)
{
    struct stk_sock *k = K(s);
    if (s->type == SS_DGRAM) {
        if (!k->have_peer)
            return -EDESTADDRREQ;
        ssize_t len = gather(k, iov, iovcnt);
        if (len < 0)
            return len;
        return udp_send(k, k->b->scratch, (size_t)len, k->peer_addr, k->peer_port);
    }
    if (k->sd < 0 || k->listening)
        return -ENOTCONN;
    uint64_t now = now_us(k);
    ssize_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len == 0)
            continue;
        ssize_t n = ss_tcp_send(ST(k), now, k->sd, iov[i].iov_base, iov[i].iov_len);
        if (n < 0) {
            if (total == 0)
                total = n;
            break;
        }
        total += n;
        if ((size_t)n < iov[i].iov_len)
            break;
    }
    kick(k);
    return total;
}

static ssize_t udp_recv(struct stk_sock *k, void *buf, size_t cap, ss_addr *from, bool *trunc)
{
    if (k->sd < 0)
        return -EAGAIN;
    for (;;) {
        uint32_t ip;
        uint16_t port;
        bool cut = false;
        ssize_t n = ss_udp_recvmsg(ST(k), k->sd, buf, cap, &ip, &port, &cut);
        if (n < 0)
            return n;
        /* A connected UDP socket takes datagrams from its peer only. */
        if (k->have_peer && (ip != k->peer_addr || port != k->peer_port))
            continue;
        if (trunc)
            *trunc = cut;
        if (from)
            addr_out(from, ip, port);
        return n;
    }
}

static ssize_t s_recv(ss_sock *s, void *buf, size_t cap)
{
    struct stk_sock *k = K(s);
    if (s->type == SS_DGRAM)
        return udp_recv(k, buf, cap, NULL, NULL);
    if (k->sd < 0 || k->listening)
        return -ENOTCONN;
    if (k->shut_rd)
        return 0;
    ssize_t n = ss_tcp_recv(ST(k), now_us(k), k->sd, buf, cap);
    if (n > 0)
        kick(k); /* a window update may be due */
    return n;
}

static ssize_t s_sendto(ss_sock *s, const void *buf, size_t len, const ss_addr *to)
{
    struct stk_sock *k = K(s);
    if (s->type == SS_STREAM) {
        if (to)
            return -EISCONN;
        struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
        return s_sendv(s, &iov, 1);
    }
    uint32_t ip;
    uint16_t port;
    if (!to) {
        if (!k->have_peer)
            return -EDESTADDRREQ;
        ip = k->peer_addr;
        port = k->peer_port;
    } else {
        int err = addr_in(to, &ip, &port);
        if (err < 0)
            return err;
    }
    return udp_send(k, buf, len, ip, port);
}

static ssize_t s_recvfrom(ss_sock *s, void *buf, size_t cap, ss_addr *from, bool *trunc)
{
    struct stk_sock *k = K(s);
    if (s->type == SS_DGRAM)
        return udp_recv(k, buf, cap, from, trunc);
    ssize_t n = s_recv(s, buf, cap);
    if (n >= 0 && from && s->be->ops->peer_addr(s, from) < 0)
        memset(from, 0, sizeof *from);
    return n;
}

static int s_shutdown(ss_sock *s, int how)
{
    struct stk_sock *k = K(s);
    if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
        return -EINVAL;
    if (s->type == SS_DGRAM)
        return k->have_peer ? 0 : -ENOTCONN;
    if (k->sd < 0 || k->listening)
        return -ENOTCONN;
    if (how != SHUT_WR)
        k->shut_rd = true;
    if (how == SHUT_RD)
        return 0;
    int err = ss_tcp_shutdown(ST(k), now_us(k), k->sd);
    kick(k);
    return err == -EPIPE ? 0 : err; /* a second shutdown is fine */
}

static int s_close(ss_sock *s)
{
    struct stk_sock *k = K(s);
    int err = 0;
    if (k->loop)
        ss_loop_defer_cancel(k->loop, &k->defer);
    if (k->sd >= 0) {
        ss_stack_sock_set_cb(ST(k), k->sd, NULL, NULL);
        if (s->type == SS_DGRAM) {
            err = ss_udp_close(ST(k), k->sd);
        } else {
            err = ss_tcp_close(ST(k), now_us(k), k->sd);
            if (err < 0)
                err = ss_tcp_abort(ST(k), now_us(k), k->sd);
        }
        kick(k);
    }
    k->sd = -1;
    k->closed = true;
    k->s = NULL;
    s->impl = NULL;
    if (k->loop) {
        /* Its callback may be running: free k after it (on_defer). */
        k->close_next = k->b->closing;
        if (k->close_next)
            k->close_next->close_prev = k;
        k->b->closing = k;
        ss_loop_defer(k->loop, &k->defer);
    } else {
        free(k); /* never on a loop: no callback can hold it */
    }
    return err < 0 ? err : 0;
}

static int s_local_addr(ss_sock *s, ss_addr *out)
{
    struct stk_sock *k = K(s);
    struct ss_stack_sock_info in;
    if (k->sd >= 0 && ss_stack_sock_info(ST(k), k->sd, &in) == 0) {
        uint32_t ip = in.laddr ? in.laddr : k->bind_addr;
        if (!ip && s->type == SS_STREAM && !k->listening)
            ip = ss_stack_addr(ST(k));
        addr_out(out, ip, in.lport);
        return 0;
    }
    addr_out(out, k->bind_addr, k->bind_port);
    return 0;
}

static int s_peer_addr(ss_sock *s, ss_addr *out)
{
    struct stk_sock *k = K(s);
    if (s->type == SS_DGRAM) {
        if (!k->have_peer)
            return -ENOTCONN;
        addr_out(out, k->peer_addr, k->peer_port);
        return 0;
    }
    struct ss_stack_sock_info in;
    if (k->sd < 0 || k->listening || ss_stack_sock_info(ST(k), k->sd, &in) < 0 ||
        in.state == SS_TCP_CLOSED || in.state == SS_TCP_LISTEN)
        return -ENOTCONN;
    addr_out(out, in.raddr, in.rport);
    return 0;
}

static int s_watch(ss_sock *s)
{
    struct stk_sock *k = K(s);
    if (k->loop && k->loop != s->loop)
        ss_loop_defer_cancel(k->loop, &k->defer);
    k->loop = s->loop;
    /* Level-triggered: whatever is ready already is delivered now. */
    if (s->events)
        schedule(k);
    else
        ss_loop_defer_cancel(s->loop, &k->defer);
    return 0;
}

static int s_unwatch(ss_sock *s)
{
    if (s->loop)
        ss_loop_defer_cancel(s->loop, &K(s)->defer);
    return 0;
}

static int s_tcp_info(ss_sock *s, ss_tcp_info *out)
{
    struct stk_sock *k = K(s);
    if (s->type != SS_STREAM)
        return SS_ENOTSUP;
    if (k->sd < 0) {
        snprintf(out->state, sizeof out->state, "CLOSED");
        return 0;
    }
    struct ss_stack_sock_info in;
    int err = ss_stack_sock_info(ST(k), k->sd, &in);
    if (err < 0)
        return err;
    snprintf(out->state, sizeof out->state, "%s", ss_tcp_state_name(in.state));
    out->rtt_us = in.srtt_us;
    out->options = in.options;
    out->snd_wscale = in.snd_wscale;
    out->rcv_wscale = in.rcv_wscale;
    out->rttvar_us = in.rttvar_us;
    out->rto_us = in.rto_us;
    out->snd_mss = in.snd_mss;
    out->rcv_mss = in.rcv_mss;
    uint32_t mss = in.snd_mss ? in.snd_mss : 1;
    out->snd_cwnd = in.cwnd / mss;
    out->snd_ssthresh = in.ssthresh >= 0x7fffffffu ? UINT32_MAX : in.ssthresh / mss;
    out->retransmits = (uint32_t)in.retransmits;
    out->bytes_received = in.bytes_in;
    /* Acknowledged payload: SND.UNA past ISS, less the SYN, less our FIN
     * once it is acknowledged (FIN-WAIT-2, TIME-WAIT). */
    uint64_t acked = 0;
    if (in.state >= SS_TCP_ESTABLISHED && in.snd_una != in.iss) {
        acked = (uint32_t)(in.snd_una - in.iss - 1);
        if (acked && (in.state == SS_TCP_FIN_WAIT_2 || in.state == SS_TCP_TIME_WAIT))
            acked--;
    }
    out->bytes_acked = acked;
    out->bytes_sent = in.bytes_out;   /* payload sent, each byte once */
    return 0;
}

static const struct ss_sock_ops stack_ops = {
    .set_opts = s_set_opts,
    .bind = s_bind,
    .listen = s_listen,
    .accept = s_accept,
    .connect = s_connect,
    .error = s_error,
    .sendv = s_sendv,
    .recv = s_recv,
    .sendto = s_sendto,
    .recvfrom = s_recvfrom,
    .shutdown = s_shutdown,
    .close = s_close,
    .local_addr = s_local_addr,
    .peer_addr = s_peer_addr,
    .set_blocking = NULL, /* SS_ENOTSUP */
    .watch = s_watch,
    .unwatch = s_unwatch,
    .tcp_info = s_tcp_info,
};

/* ---- the backend -------------------------------------------------------- */

int ss_backend_stack_new(const ss_stack_driver *drv, ss_backend **out)
{
    *out = NULL;
    if (!drv || !drv->stack || !drv->now)
        return -EINVAL;
    if (drv->addr && drv->addr != ss_stack_addr(drv->stack))
        return -EINVAL;   /* a driver that disagrees with its stack */
    struct stk_backend *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    b->d = *drv;
    b->be.name = "stack";
    b->be.ops = &stack_ops;
    b->be.open = s_open;
    b->be.ctx = b;
    *out = &b->be;
    return 0;
}

static uint64_t mono_us(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void tunnet_kick(void *arg) { ss_tunnet_kick(arg); }

int ss_backend_stack_tunnet(ss_tunnet *net, uint32_t addr, ss_backend **out)
{
    /* The tunnet reads CLOCK_MONOTONIC when it polls; reading the same
     * clock here keeps time moving forward and fresh for every call. */
    ss_stack_driver d = {.stack = ss_tunnet_stack(net), .addr = addr, .now = mono_us,
                         .kick = tunnet_kick, .arg = net};
    return ss_backend_stack_new(&d, out);
}

void ss_backend_stack_free(ss_backend *be)
{
    if (!be)
        return;
    struct stk_backend *b = be->ctx;
    while (b->closing) { /* their loop did not turn again */
        struct stk_sock *k = b->closing;
        b->closing = k->close_next;
        ss_loop_defer_cancel(k->loop, &k->defer);
        free(k);
    }
    free(b);
}
