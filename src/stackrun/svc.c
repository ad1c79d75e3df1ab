/* Built-in services on the stack: echo, discard, source (TCP and UDP).
 *
 * Each TCP connection has one bounded pending buffer (echo output that the
 * send buffer did not take yet); while it is non-empty the connection reads
 * nothing more, so a fast sender is held back by TCP's own flow control
 * instead of by our memory. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sockstack/config.h"
#include "sockstack/stackrun.h"


struct svc_conn {
    struct svc_conn *next, *prev;
    struct ss_svcs *svcs;
    enum ss_svc_kind kind;
    int sd;
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
    struct svc_conn *conns;
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
    *out = s;
    return 0;
}

static void conn_free(struct svc_conn *c, bool abort)
{
    struct ss_svcs *s = c->svcs;
    if (abort)
        ss_tcp_abort(s->st, now_of(s), c->sd);
    else
        ss_tcp_close(s->st, now_of(s), c->sd);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
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
        struct svc_conn *c = malloc(sizeof *c);
        if (!c) {
            ss_tcp_abort(st, now_of(s), sd);
            s->stats.errors++;
            continue;
        }
        memset(c, 0, offsetof(struct svc_conn, pend));
        c->svcs = s;
        c->kind = v->kind;
        c->sd = sd;
        c->source_left = v->kind == SS_SVC_SOURCE ? v->source_bytes : 0;
        ss_prng_seed(&c->rng, v->port);
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
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
