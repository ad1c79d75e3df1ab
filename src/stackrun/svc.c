/* Built-in services on the stack: echo, discard, source (TCP and UDP).
 *
 * Each TCP connection has one bounded pending buffer (echo output that the
 * send buffer did not take yet); while it is non-empty the connection reads
 * nothing more, so a fast sender is held back by TCP's own flow control
 * instead of by our memory.
 *
 * Idle limits (issue 10: 60 idle connections used to hold every socket):
 * connections are kept in order of their last activity (a byte in or
 * out), most recent first, so ss_svcs_poll() only looks at the tail to
 * reset those idle longer than limits.idle_ms; and a peer address holds
 * at most limits.max_per_peer connections (counted in a small hash of
 * peers), a connection beyond that is reset as soon as it is accepted. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sockstack/config.h"
#include "sockstack/stackrun.h"


struct svc_peer {
    struct svc_peer *next;
    uint32_t addr;
    uint32_t conns;
};

#define PEER_BUCKETS 256

struct svc_conn {
    struct svc_conn *next, *prev;   /* most recently active first */
    struct ss_svcs *svcs;
    enum ss_svc_kind kind;
    int sd;
    struct svc_peer *peer;
    uint64_t last_active;
    bool eof;
    uint64_t source_left;
    struct ss_prng rng;
    size_t pend_off, pend_len;
    unsigned char pend[SS_STACKRUN_CONN_BUF];
};

struct svc {
    struct ss_svcs *svcs;
    enum ss_svc_kind kind;
    uint16_t port;
    int lsd, usd;
    uint64_t source_bytes;
};

struct ss_svcs {
    ss_stack *st;
    uint64_t (*now_fn)(void *);
    void *now_arg;
    struct svc svc[SS_STACKRUN_SVC_MAX];
    int nsvc;
    struct svc_conn *conns, *tail;
    struct ss_svc_limits limits;
    struct svc_peer *peers[PEER_BUCKETS];
    struct ss_svc_stats stats;
};

static uint64_t now_of(struct ss_svcs *s) { return s->now_fn(s->now_arg); }

int ss_svcs_new(ss_stack *st, uint64_t (*now_fn)(void *), void *now_arg,
                ss_svcs **out)
{
    ss_svcs *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->st = st;
    s->now_fn = now_fn;
    s->now_arg = now_arg;
    s->limits = (struct ss_svc_limits){.idle_ms = SS_STACKRUN_IDLE_MS,
                                       .max_per_peer = SS_STACKRUN_MAX_PER_PEER};
    *out = s;
    return 0;
}

void ss_svcs_set_limits(ss_svcs *s, const struct ss_svc_limits *lim)
{
    s->limits = *lim;
}

/* ---- peers ------------------------------------------------------------- */

static struct svc_peer **peer_slot(ss_svcs *s, uint32_t addr)
{
    struct svc_peer **p = &s->peers[(addr * 2654435761u) >> 24];
    while (*p && (*p)->addr != addr)
        p = &(*p)->next;
    return p;
}

/* Count one more connection of addr: the peer, or NULL when it is at its
 * cap (or no memory). */
static struct svc_peer *peer_take(ss_svcs *s, uint32_t addr)
{
    struct svc_peer **p = peer_slot(s, addr);
    if (!*p) {
        *p = calloc(1, sizeof **p);
        if (!*p)
            return NULL;
        (*p)->addr = addr;
    }
    if (s->limits.max_per_peer && (*p)->conns >= s->limits.max_per_peer)
        return NULL;
    (*p)->conns++;
    return *p;
}

static void peer_give(ss_svcs *s, struct svc_peer *peer)
{
    if (--peer->conns)
        return;
    struct svc_peer **p = peer_slot(s, peer->addr);
    *p = peer->next;
    free(peer);
}

/* ---- the activity list ---------------------------------------------------- */

static void conn_unlink(struct svc_conn *c)
{
    struct ss_svcs *s = c->svcs;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        s->tail = c->prev;
    c->next = c->prev = NULL;
}

static void conn_push(struct svc_conn *c)
{
    struct ss_svcs *s = c->svcs;
    c->next = s->conns;
    c->prev = NULL;
    if (s->conns)
        s->conns->prev = c;
    else
        s->tail = c;
    s->conns = c;
}

/* A byte went in or out: c is the most recently active connection. */
static void conn_active(struct svc_conn *c)
{
    c->last_active = now_of(c->svcs);
    if (c->svcs->conns != c) {
        conn_unlink(c);
        conn_push(c);
    }
}

static void conn_free(struct svc_conn *c, bool abort)
{
    struct ss_svcs *s = c->svcs;
    if (abort)
        ss_tcp_abort(s->st, now_of(s), c->sd);
    else
        ss_tcp_close(s->st, now_of(s), c->sd);
    conn_unlink(c);
    peer_give(s, c->peer);
    s->stats.active--;
    s->stats.closed++;
    free(c);
}

/* Send what is pending (echo output or source pattern). 0 or -errno. */
static int conn_flush(struct svc_conn *c)
{
    struct ss_svcs *s = c->svcs;
    for (;;) {
        if (c->pend_off == c->pend_len) {
            c->pend_off = c->pend_len = 0;
            if (c->kind != SS_SVC_SOURCE || c->source_left == 0)
                return 0;
            size_t n = c->source_left < SS_STACKRUN_CONN_BUF ? (size_t)c->source_left : SS_STACKRUN_CONN_BUF;
            ss_xfer_pattern(&c->rng, c->pend, n);
            c->pend_len = n;
            c->source_left -= n;
        }
        ssize_t n = ss_tcp_send(s->st, now_of(s), c->sd, c->pend + c->pend_off,
                                c->pend_len - c->pend_off);
        if (n == -EAGAIN)
            return 0;
        if (n < 0)
            return (int)n;
        c->pend_off += (size_t)n;
        s->stats.tcp_bytes_out += (uint64_t)n;
        if (n)
            conn_active(c);
    }
}

static bool conn_done_sending(const struct svc_conn *c)
{
    return c->pend_off == c->pend_len &&
           (c->kind != SS_SVC_SOURCE || c->source_left == 0);
}

static int conn_read(struct svc_conn *c)
{
    struct ss_svcs *s = c->svcs;
    unsigned char buf[SS_STACKRUN_CONN_BUF];
    while (!c->eof) {
        if (c->kind == SS_SVC_ECHO && c->pend_len)
            return 0; /* backpressure: the peer waits for its echo */
        unsigned char *dst = c->kind == SS_SVC_ECHO ? c->pend : buf;
        ssize_t n = ss_tcp_recv(s->st, now_of(s), c->sd, dst, SS_STACKRUN_CONN_BUF);
        if (n == -EAGAIN)
            return 0;
        if (n < 0)
            return (int)n;
        if (n == 0) {
            c->eof = true;
            return 0;
        }
        s->stats.tcp_bytes_in += (uint64_t)n;
        conn_active(c);
        if (c->kind == SS_SVC_ECHO) {
            c->pend_off = 0;
            c->pend_len = (size_t)n;
            int rc = conn_flush(c);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static void conn_cb(void *arg, ss_stack *st, int sd, unsigned ev, int err)
{
    struct svc_conn *c = arg;
    if (ev & SS_EV_ERROR) {
        c->svcs->stats.errors++;
        conn_free(c, true);
        return;
    }
    int rc = 0;
    if (ev & SS_EV_WRITABLE)
        rc = conn_flush(c);
    if (rc == 0)
        rc = conn_read(c);
    if (rc == 0 && c->kind == SS_SVC_SOURCE)
        rc = conn_flush(c);
    if (rc < 0) {
        c->svcs->stats.errors++;
        conn_free(c, true);
        return;
    }
    /* echo/discard close after the peer did; source as soon as it is done. */
    if (conn_done_sending(c) && (c->eof || c->kind == SS_SVC_SOURCE))
        conn_free(c, false);
}

static void listen_cb(void *arg, ss_stack *st, int lsd, unsigned ev, int err)
{
    struct svc *v = arg;
    struct ss_svcs *s = v->svcs;
    if (!(ev & SS_EV_ACCEPT))
        return;
    for (;;) {
        uint32_t ra;
        uint16_t rp;
        int sd = ss_tcp_accept(st, lsd, &ra, &rp);
        if (sd < 0)
            return;
        struct svc_peer *peer = peer_take(s, ra);
        if (!peer) {   /* the peer is at its cap: reset at once */
            ss_tcp_abort(st, now_of(s), sd);
            s->stats.refused++;
            continue;
        }
        struct svc_conn *c = malloc(sizeof *c);
        if (!c) {
            peer_give(s, peer);
            ss_tcp_abort(st, now_of(s), sd);
            s->stats.errors++;
            continue;
        }
        memset(c, 0, offsetof(struct svc_conn, pend));
        c->svcs = s;
        c->kind = v->kind;
        c->sd = sd;
        c->peer = peer;
        c->last_active = now_of(s);
        c->source_left = v->kind == SS_SVC_SOURCE ? v->source_bytes : 0;
        ss_prng_seed(&c->rng, v->port);
        conn_push(c);
        s->stats.accepted++;
        s->stats.active++;
        ss_stack_sock_set_cb(st, sd, conn_cb, c);
        int events = ss_stack_sock_events(st, sd);
        conn_cb(c, st, sd, (unsigned)(events < 0 ? 0 : events) | SS_EV_WRITABLE, 0);
    }
}

static void udp_cb(void *arg, ss_stack *st, int sd, unsigned ev, int err)
{
    struct svc *v = arg;
    struct ss_svcs *s = v->svcs;
    unsigned char buf[65536];
    for (;;) {
        uint32_t ra;
        uint16_t rp;
        ssize_t n = ss_udp_recvfrom(st, sd, buf, sizeof buf, &ra, &rp);
        if (n == -EAGAIN)
            return;
        if (n < 0) { /* an ICMP error for an earlier reply: nothing to do */
            s->stats.errors++;
            continue;
        }
        s->stats.udp_in++;
        if (v->kind == SS_SVC_ECHO &&
            ss_udp_sendto(st, now_of(s), sd, ra, rp, buf, (size_t)n) >= 0)
            s->stats.udp_out++;
    }
}

int ss_svcs_add(ss_svcs *s, enum ss_svc_kind kind, uint16_t port,
                uint64_t source_bytes)
{
    if (s->nsvc == SS_STACKRUN_SVC_MAX)
        return -ENOSPC;
    if (kind != SS_SVC_ECHO && kind != SS_SVC_DISCARD && kind != SS_SVC_SOURCE)
        return -EINVAL;
    struct svc *v = &s->svc[s->nsvc];
    *v = (struct svc){.svcs = s, .kind = kind, .port = port, .lsd = -1,
                      .usd = -1, .source_bytes = source_bytes};
    int lsd = ss_tcp_listen(s->st, port, 128);
    if (lsd < 0)
        return lsd;
    v->lsd = lsd;
    ss_stack_sock_set_cb(s->st, lsd, listen_cb, v);
    if (kind != SS_SVC_SOURCE) {
        int usd = ss_udp_bind(s->st, port);
        if (usd < 0) {
            ss_tcp_close(s->st, now_of(s), lsd);
            return usd;
        }
        v->usd = usd;
        ss_stack_sock_set_cb(s->st, usd, udp_cb, v);
    }
    s->nsvc++;
    return 0;
}

uint64_t ss_svcs_poll(ss_svcs *s, uint64_t now)
{
    if (!s->limits.idle_ms)
        return UINT64_MAX;
    uint64_t idle = (uint64_t)s->limits.idle_ms * 1000;
    while (s->tail && now - s->tail->last_active >= idle) {
        s->stats.idle_closed++;
        conn_free(s->tail, true);   /* RST: the socket is free at once */
    }
    return s->tail ? s->tail->last_active + idle : UINT64_MAX;
}

void ss_svcs_get_stats(const ss_svcs *s, struct ss_svc_stats *out) { *out = s->stats; }

void ss_svcs_free(ss_svcs *s)
{
    if (!s)
        return;
    while (s->conns)
        conn_free(s->conns, true);
    for (int i = 0; i < s->nsvc; i++) {
        ss_tcp_close(s->st, now_of(s), s->svc[i].lsd);
        if (s->svc[i].usd >= 0)
            ss_udp_close(s->st, s->svc[i].usd);
    }
    free(s);
}
