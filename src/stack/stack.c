/* stack: the stack object, its pools, socket handles, events and the
 * socket API. Protocol logic lives in the per-protocol files. */
#include <errno.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "sockstack/config.h"
#include "sockstack/err.h"
#include "stack_int.h"

void ss_stack_cfg_default(struct ss_stack_cfg *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->ttl = SS_STACK_TTL;
    cfg->mss = SS_STACK_MSS;
    cfg->sndbuf = SS_STACK_SNDBUF;
    cfg->rcvbuf = SS_STACK_RCVBUF;
    cfg->msl_ms = SS_STACK_MSL_MS;
    cfg->rto_min_ms = SS_STACK_RTO_MIN_MS;
    cfg->rto_max_ms = SS_STACK_RTO_MAX_MS;
    cfg->rto_initial_ms = SS_STACK_RTO_INITIAL_MS;
    cfg->max_retries = SS_STACK_MAX_RETRIES;
    cfg->syn_retries = SS_STACK_SYN_RETRIES;
    cfg->keepalive_idle_s = SS_STACK_KEEPIDLE_S;
    cfg->keepalive_intvl_s = SS_STACK_KEEPINTVL_S;
    cfg->keepalive_cnt = SS_STACK_KEEPCNT;
    cfg->delack_ms = SS_STACK_DELACK_MS;
    cfg->syn_backlog = SS_STACK_SYN_BACKLOG;
    cfg->max_sockets = SS_STACK_MAX_SOCKETS;
    cfg->ooo_max = SS_STACK_OOO_MAX;
    cfg->udp_rcvq_max = SS_STACK_UDP_RCVQ_MAX;
    cfg->frag_slots = SS_STACK_FRAG_SLOTS;
    cfg->frag_timeout_ms = SS_STACK_FRAG_TIMEOUT_MS;
    cfg->frag_mem = SS_STACK_FRAG_MEM;
    cfg->challenge_ack_limit = SS_STACK_CHALLENGE_ACK_LIMIT;
    cfg->rfc1337 = SS_STACK_RFC1337;
    cfg->wscale = SS_STACK_WSCALE;
    cfg->timestamps = SS_STACK_TIMESTAMPS;
    cfg->sack = SS_STACK_SACK;
    cfg->sack_max = SS_STACK_SACK_MAX;
    cfg->cc_algo = SS_STACK_CC_ALGO;
    cfg->init_cwnd = SS_STACK_INIT_CWND;
}

/* MUST-9: F() of RFC 6528 must not be computable from outside; with the
 * all-zero secret it would be. The core makes no system call, so it does
 * not draw a secret itself: the caller supplies one (getrandom). */
static bool secret_set(const uint8_t *s, size_t n)
{
    uint8_t any = 0;
    for (size_t i = 0; i < n; i++)
        any |= s[i];
    return any != 0;
}

static bool cfg_valid(const struct ss_stack_cfg *c)
{
    return c->output && c->ttl && c->mss >= 64 && c->mss <= SS_PKT_MAX - 40 &&
           c->sndbuf >= 1 && c->sndbuf <= (1u << 30) && c->rcvbuf >= 1 &&
           c->rcvbuf <= (1u << 30) && c->msl_ms && c->rto_min_ms && c->rto_max_ms >= c->rto_min_ms &&
           c->rto_initial_ms && c->rto_max_ms <= 3600000 && c->max_retries && c->syn_retries &&
           c->keepalive_intvl_s && c->keepalive_cnt && c->delack_ms && c->delack_ms < 500 &&
           c->syn_backlog && c->max_sockets && c->max_sockets <= 65536 && c->ooo_max &&
           c->udp_rcvq_max && c->frag_timeout_ms && c->frag_slots <= 64 &&
           c->challenge_ack_limit && secret_set(c->isn_secret, sizeof c->isn_secret) &&
           c->sack_max <= 4096 &&
           ss__cc_ops_of(c->cc_algo) && c->init_cwnd >= 1 && c->init_cwnd <= 1000;
}

int ss_stack_new(const struct ss_stack_cfg *cfg, ss_stack **out)
{
    *out = NULL;
    if (!cfg || !cfg_valid(cfg))
        return -EINVAL;
    ss_stack *st = calloc(1, sizeof *st);
    if (!st)
        return -ENOMEM;
    st->cfg = *cfg;
    size_t n = cfg->max_sockets;
    size_t per = (size_t)cfg->sndbuf + cfg->rcvbuf + SS_RCV_SLACK;
    st->socks = calloc(n, sizeof *st->socks);
    st->bufpool = malloc(n * per);
    st->ooopool = calloc(n * cfg->ooo_max, sizeof *st->ooopool);
    st->sbpool = calloc(n * cfg->sack_max + 1, sizeof *st->sbpool);
    st->tx = malloc(SS_PKT_MAX);
    st->frags = calloc(cfg->frag_slots ? cfg->frag_slots : 1, sizeof *st->frags);
    size_t fragsz = SS_PKT_MAX + SS_PKT_MAX / 64 + 1;
    st->fragpool = cfg->frag_slots ? malloc(cfg->frag_slots * fragsz) : NULL;
    if (!st->socks || !st->bufpool || !st->ooopool || !st->sbpool || !st->tx || !st->frags ||
        (cfg->frag_slots && !st->fragpool)) {
        ss_stack_free(st);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        struct ss_sock *sk = &st->socks[i];
        sk->id = (int)i;
        sk->snd.buf = st->bufpool + i * per;
        sk->snd.cap = cfg->sndbuf;
        sk->rcv.buf = st->bufpool + i * per + cfg->sndbuf;
        sk->rcv.cap = cfg->rcvbuf + SS_RCV_SLACK;
        sk->ooo = st->ooopool + i * cfg->ooo_max;
        sk->sb = st->sbpool + i * cfg->sack_max;
    }
    for (size_t i = 0; i < cfg->frag_slots; i++) {
        st->frags[i].buf = st->fragpool + i * fragsz;
        st->frags[i].map = st->frags[i].buf + SS_PKT_MAX;
    }
    st->next_port = SS_STACK_EPHEMERAL_LO;
    *out = st;
    return 0;
}

void ss_stack_free(ss_stack *st)
{
    if (!st)
        return;
    free(st->socks);
    free(st->bufpool);
    free(st->ooopool);
    free(st->sbpool);
    free(st->tx);
    free(st->frags);
    free(st->fragpool);
    free(st);
}

uint32_t ss_stack_addr(const ss_stack *st)
{
    return st->cfg.local_addr;
}

void ss_stack_stats(const ss_stack *st, struct ss_stack_stats *out)
{
    *out = st->stats;
}

/* ---- events ------------------------------------------------------------ */
void ss__stack_sock_event(ss_stack *st, struct ss_sock *sk, unsigned ev, int err)
{
    (void)st;
    sk->pending_ev |= ev;
    if (ev & SS_EV_ERROR)
        sk->ev_err = err;
}

/* Deliver pending events. Callbacks may call back into the stack (send,
 * close, accept ...); a nested dispatch is skipped and the outer loop
 * picks up whatever the callback produced. */
static void dispatch(ss_stack *st)
{
    if (st->dispatching)
        return;
    st->dispatching = 1;
    for (int round = 0; round < 4; round++) {
        bool any = false;
        for (uint32_t i = 0; i < st->cfg.max_sockets; i++) {
            struct ss_sock *sk = &st->socks[i];
            if (!sk->pending_ev)
                continue;
            unsigned ev = sk->pending_ev;
            int err = sk->ev_err;
            sk->pending_ev = 0;
            sk->ev_err = 0;
            if (sk->kind == SS_SK_FREE || !sk->user || !sk->cb)
                continue;
            any = true;
            sk->cb(sk->cb_arg, st, sk->id, ev, err);
        }
        if (!any)
            break;
    }
    st->dispatching = 0;
}

int ss_stack_input(ss_stack *st, uint64_t now_us, const uint8_t *pkt, size_t len)
{
    st->now = now_us;
    uint64_t bad = st->stats.ip_bad_header + st->stats.ip_bad_checksum + st->stats.ip_bad_len +
                   st->stats.tcp_bad_checksum + st->stats.tcp_bad_header +
                   st->stats.udp_bad + st->stats.icmp_bad;
    ss__ip_input(st, pkt, len);
    dispatch(st);
    uint64_t bad2 = st->stats.ip_bad_header + st->stats.ip_bad_checksum + st->stats.ip_bad_len +
                    st->stats.tcp_bad_checksum + st->stats.tcp_bad_header +
                    st->stats.udp_bad + st->stats.icmp_bad;
    return bad2 != bad ? SS_EBADPKT : 0;
}

int ss_stack_input_batch(ss_stack *st, uint64_t now_us, const uint8_t *const *pkts,
                         const size_t *lens, size_t n)
{
    int bad = 0;
    st->now = now_us;
    st->batching = true;
    for (size_t i = 0; i < n; i++) {
        uint64_t before = st->stats.ip_bad_header + st->stats.ip_bad_checksum +
                          st->stats.ip_bad_len + st->stats.tcp_bad_checksum +
                          st->stats.tcp_bad_header + st->stats.udp_bad + st->stats.icmp_bad;
        ss__ip_input(st, pkts[i], lens[i]);
        uint64_t after = st->stats.ip_bad_header + st->stats.ip_bad_checksum +
                         st->stats.ip_bad_len + st->stats.tcp_bad_checksum +
                         st->stats.tcp_bad_header + st->stats.udp_bad + st->stats.icmp_bad;
        bad += after != before;
    }
    st->batching = false;
    for (uint32_t i = 0; i < st->cfg.max_sockets; i++) {
        struct ss_sock *sk = &st->socks[i];
        if (sk->kind == SS_SK_TCP && sk->out_pending) {
            sk->out_pending = false;
            ss__tcp_output(st, sk);
        }
    }
    dispatch(st);
    return bad;
}

uint64_t ss_stack_poll(ss_stack *st, uint64_t now_us)
{
    st->now = now_us;
    uint64_t next = ss__frag_timers(st, now_us);
    for (uint32_t i = 0; i < st->cfg.max_sockets; i++) {
        struct ss_sock *sk = &st->socks[i];
        if (sk->kind != SS_SK_TCP)
            continue;
        ss__tcp_timers(st, sk, now_us);
        if (sk->kind == SS_SK_TCP)
            ss__tcp_output(st, sk);
    }
    dispatch(st);
    for (uint32_t i = 0; i < st->cfg.max_sockets; i++) {
        struct ss_sock *sk = &st->socks[i];
        if (sk->kind == SS_SK_TCP)
            next = ss__min64(next, ss__tcp_next_deadline(sk));
    }
    return next;
}

/* ---- pool -------------------------------------------------------------- */
/* The pool is full: end the orphaned TIME-WAIT connection closest to its
 * end (as Linux does past tcp_max_tw_buckets), so a pool of TIME-WAITs
 * cannot lock out new connections. */
static bool recycle_time_wait(ss_stack *st)
{
    struct ss_sock *old = NULL;
    for (uint32_t i = 0; i < st->cfg.max_sockets; i++) {
        struct ss_sock *sk = &st->socks[i];
        if (sk->kind == SS_SK_TCP && sk->state == SS_TCP_TIME_WAIT && !sk->user &&
            (!old || sk->t_2msl < old->t_2msl))
            old = sk;
    }
    if (!old)
        return false;
    st->stats.tcp_tw_recycled++;
    ss__tcp_drop(st, old, 0);
    return true;
}

static struct ss_sock *free_slot(ss_stack *st)
{
    for (uint32_t i = 0; i < st->cfg.max_sockets; i++)
        if (st->socks[i].kind == SS_SK_FREE)
            return &st->socks[i];
    return NULL;
}

struct ss_sock *ss__stack_sock_alloc(ss_stack *st, enum ss_stack_sock_kind kind)
{
    struct ss_sock *sk = free_slot(st);
    if (!sk && recycle_time_wait(st))
        sk = free_slot(st);
    if (!sk)
        return NULL;
    int id = (int)(sk - st->socks);
    uint8_t *sb = sk->snd.buf, *rb = sk->rcv.buf;
    uint32_t sc = sk->snd.cap, rc = sk->rcv.cap;
    struct ss_ooo *oo = sk->ooo;
    struct ss_sack_blk *sbt = sk->sb;
    memset(sk, 0, sizeof *sk);
    sk->id = id;
    sk->kind = kind;
    sk->snd = (struct ss_ring){.buf = sb, .cap = sc, .limit = sc};
    sk->rcv = (struct ss_ring){.buf = rb, .cap = rc, .limit = st->cfg.rcvbuf};
    sk->ooo = oo;
    sk->sb = sbt;
    sk->opt_allow = (uint8_t)((st->cfg.wscale ? SS_OPTF_WSCALE : 0) |
                              (st->cfg.timestamps ? SS_OPTF_TS : 0) |
                              (st->cfg.sack ? SS_OPTF_SACK : 0));
    sk->parent = -1;
    sk->next_q = -1;
    sk->accept_head = sk->accept_tail = -1;
    sk->laddr = st->cfg.local_addr;
    sk->rcv_mss = st->cfg.mss;
    sk->snd_mss = SS_STACK_DEFAULT_PEER_MSS;
    sk->keep_idle_s = st->cfg.keepalive_idle_s;
    sk->keep_intvl_s = st->cfg.keepalive_intvl_s;
    sk->keep_cnt = st->cfg.keepalive_cnt;
    sk->rto_us = st->cfg.rto_initial_ms * 1000u;
    sk->max_retries = st->cfg.max_retries;
    sk->t_rtx = sk->t_persist = sk->t_delack = sk->t_keep = sk->t_2msl = sk->t_sws = SS_NEVER;
    ss__cc_init(st, sk);
    return sk;
}

void ss__stack_sock_release(ss_stack *st, struct ss_sock *sk)
{
    (void)st;
    sk->kind = SS_SK_FREE;
    sk->user = false;
    sk->pending_ev = 0;
}

struct ss_sock *ss__stack_sock_get(const ss_stack *st, int sd)
{
    if (sd < 0 || (uint32_t)sd >= st->cfg.max_sockets)
        return NULL;
    struct ss_sock *sk = &st->socks[sd];
    if (sk->kind == SS_SK_FREE || !sk->user)
        return NULL;
    return sk;
}

/* Exact 4-tuple first, then a listener on the port. */
struct ss_sock *ss__tcp_lookup(ss_stack *st, uint32_t laddr, uint16_t lport, uint32_t raddr,
                               uint16_t rport)
{
    struct ss_sock *listener = NULL;
    for (uint32_t i = 0; i < st->cfg.max_sockets; i++) {
        struct ss_sock *sk = &st->socks[i];
        if (sk->kind != SS_SK_TCP || sk->lport != lport)
            continue;
        if (sk->state == SS_TCP_LISTEN) {
            listener = sk;
            continue;
        }
        if (sk->state != SS_TCP_CLOSED && sk->raddr == raddr && sk->rport == rport &&
            sk->laddr == laddr)
            return sk;
    }
    return listener;
}

struct ss_sock *ss__udp_lookup(ss_stack *st, uint16_t lport)
{
    for (uint32_t i = 0; i < st->cfg.max_sockets; i++) {
        struct ss_sock *sk = &st->socks[i];
        if (sk->kind == SS_SK_UDP && sk->lport == lport)
            return sk;
    }
    return NULL;
}

static bool port_in_use(ss_stack *st, enum ss_stack_sock_kind kind, uint16_t port)
{
    for (uint32_t i = 0; i < st->cfg.max_sockets; i++) {
        struct ss_sock *sk = &st->socks[i];
        if (sk->kind == kind && sk->lport == port)
            return true;
    }
    return false;
}

/* RFC 9293 MUST-42: a LISTEN may share its port with connections (say one
 * in SYN-SENT from that port); only a second listener conflicts. */
static bool listener_on(ss_stack *st, uint16_t port)
{
    for (uint32_t i = 0; i < st->cfg.max_sockets; i++) {
        struct ss_sock *sk = &st->socks[i];
        if (sk->kind == SS_SK_TCP && sk->state == SS_TCP_LISTEN && sk->lport == port)
            return true;
    }
    return false;
}

static uint16_t ephemeral_port(ss_stack *st, enum ss_stack_sock_kind kind)
{
    uint32_t range = SS_STACK_EPHEMERAL_HI - SS_STACK_EPHEMERAL_LO + 1;
    for (uint32_t i = 0; i < range; i++) {
        uint16_t p = st->next_port;
        st->next_port = p >= SS_STACK_EPHEMERAL_HI ? SS_STACK_EPHEMERAL_LO : (uint16_t)(p + 1);
        if (!port_in_use(st, kind, p))
            return p;
    }
    return 0;
}

/* ---- state ------------------------------------------------------------- */
/* Every TCP state change goes through here, so every one is traced. */
void ss__set_state(ss_stack *st, struct ss_sock *sk, enum ss_tcp_state ns)
{
    enum ss_tcp_state old = sk->state;
    if (old == ns)
        return;
    sk->state = ns;
    ss__trace_state(st, sk, (int)old, (int)ns);
}

static void unlink_from_listener(ss_stack *st, struct ss_sock *sk)
{
    if (sk->parent < 0)
        return;
    struct ss_sock *ls = &st->socks[sk->parent];
    if (sk->in_accept_q) {
        int prev = -1;
        for (int c = ls->accept_head; c >= 0; prev = c, c = st->socks[c].next_q) {
            if (c != sk->id)
                continue;
            if (prev < 0)
                ls->accept_head = sk->next_q;
            else
                st->socks[prev].next_q = sk->next_q;
            if (ls->accept_tail == sk->id)
                ls->accept_tail = prev;
            break;
        }
        ls->accept_q--;
    } else {
        ls->syn_q--;
    }
    sk->parent = -1;
    sk->in_accept_q = false;
    sk->next_q = -1;
}

void ss__tcp_drop(ss_stack *st, struct ss_sock *sk, int err)
{
    unlink_from_listener(st, sk);
    ss__set_state(st, sk, SS_TCP_CLOSED);
    sk->t_rtx = sk->t_persist = sk->t_delack = sk->t_keep = sk->t_2msl = sk->t_sws = SS_NEVER;
    sk->ooo_n = 0;
    sk->sb_n = 0;
    if (err) {
        sk->error = err;
        ss__stack_sock_event(st, sk, SS_EV_ERROR | SS_EV_READABLE | SS_EV_WRITABLE, err);
    } else {
        ss__stack_sock_event(st, sk, SS_EV_CLOSED | SS_EV_READABLE, 0);
    }
    if (!sk->user)
        ss__stack_sock_release(st, sk);
}

void ss__tcp_listener_add_child(ss_stack *st, struct ss_sock *ls, struct ss_sock *sk)
{
    (void)st;
    sk->parent = ls->id;
    sk->passive = true;
    sk->cb = ls->cb;
    sk->cb_arg = ls->cb_arg;
    sk->nodelay = ls->nodelay;
    sk->keepalive = ls->keepalive;
    sk->keep_idle_s = ls->keep_idle_s;
    sk->keep_intvl_s = ls->keep_intvl_s;
    sk->keep_cnt = ls->keep_cnt;
    sk->cc = ls->cc;
    sk->snd.limit = ls->snd.limit;
    sk->rcv.limit = ls->rcv.limit;
    sk->opt_allow = ls->opt_allow;
    ls->syn_q++;
}

/* A passive child reached ESTABLISHED: move it to the accept queue. */
void ss__tcp_established_child(ss_stack *st, struct ss_sock *sk)
{
    if (sk->parent < 0 || sk->in_accept_q)
        return;
    struct ss_sock *ls = &st->socks[sk->parent];
    ls->syn_q--;
    ls->accept_q++;
    sk->in_accept_q = true;
    sk->next_q = -1;
    if (ls->accept_tail >= 0)
        st->socks[ls->accept_tail].next_q = sk->id;
    else
        ls->accept_head = sk->id;
    ls->accept_tail = sk->id;
    ss__stack_sock_event(st, ls, SS_EV_ACCEPT | SS_EV_READABLE, 0);
}

/* RFC 6528: ISN = M + F(localip, localport, remoteip, remoteport, secretkey),
 * M a 4-microsecond timer (from the caller's clock), F = SHA-256. */
uint32_t ss__isn(ss_stack *st, uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport,
                 uint64_t now)
{
    uint8_t in[12 + sizeof st->cfg.isn_secret], md[SHA256_DIGEST_LENGTH];
    ss__put32(in, laddr);
    ss__put16(in + 4, lport);
    ss__put32(in + 6, raddr);
    ss__put16(in + 10, rport);
    memcpy(in + 12, st->cfg.isn_secret, sizeof st->cfg.isn_secret);
    SHA256(in, sizeof in, md);
    return (uint32_t)(now / 4) + ss__get32(md);
}

/* ---- rings ------------------------------------------------------------- */
uint32_t ss__ring_free(const struct ss_ring *r)
{
    return r->len >= r->limit ? 0 : r->limit - r->len;
}

void ss__ring_poke(struct ss_ring *r, uint32_t off, const void *data, uint32_t len)
{
    const uint8_t *d = data;
    uint32_t pos = (r->head + off) % r->cap;
    uint32_t first = ss__min32(len, r->cap - pos);
    memcpy(r->buf + pos, d, first);
    if (len > first)
        memcpy(r->buf, d + first, len - first);
}

uint32_t ss__ring_write(struct ss_ring *r, const void *data, uint32_t len)
{
    len = ss__min32(len, ss__ring_free(r));
    if (len) {
        ss__ring_poke(r, r->len, data, len);
        r->len += len;
    }
    return len;
}

void ss__ring_peek(const struct ss_ring *r, uint32_t off, void *out, uint32_t len)
{
    uint8_t *o = out;
    uint32_t pos = (r->head + off) % r->cap;
    uint32_t first = ss__min32(len, r->cap - pos);
    memcpy(o, r->buf + pos, first);
    if (len > first)
        memcpy(o + first, r->buf, len - first);
}

void ss__ring_consume(struct ss_ring *r, uint32_t len)
{
    if (len > r->len)
        len = r->len;
    r->head = (r->head + len) % r->cap;
    r->len -= len;
    /* The head is never reset to 0 when the ring empties: out-of-order
     * bytes may be stored beyond the end, at positions relative to it. */
}

/* ---- generic socket calls ---------------------------------------------- */
int ss_stack_sock_set_cb(ss_stack *st, int sd, ss_stack_sock_cb cb, void *arg)
{
    struct ss_sock *sk = ss__stack_sock_get(st, sd);
    if (!sk)
        return -EBADF;
    sk->cb = cb;
    sk->cb_arg = arg;
    return 0;
}

static bool tcp_can_send(const struct ss_sock *sk)
{
    switch (sk->state) {
    case SS_TCP_SYN_SENT:
    case SS_TCP_SYN_RECEIVED:
    case SS_TCP_ESTABLISHED:
    case SS_TCP_CLOSE_WAIT:
        return !sk->fin_queued;
    default:
        return false;
    }
}

int ss_stack_sock_events(const ss_stack *st, int sd)
{
    struct ss_sock *sk = ss__stack_sock_get(st, sd);
    if (!sk)
        return -EBADF;
    unsigned ev = 0;
    if (sk->error)
        ev |= SS_EV_ERROR | SS_EV_READABLE | SS_EV_WRITABLE;
    if (sk->kind == SS_SK_UDP) {
        if (sk->udp_q)
            ev |= SS_EV_READABLE;
        ev |= SS_EV_WRITABLE;
        return (int)ev;
    }
    if (sk->state == SS_TCP_LISTEN) {
        if (sk->accept_head >= 0)
            ev |= SS_EV_ACCEPT | SS_EV_READABLE;
        return (int)ev;
    }
    if (sk->rcv.len || sk->fin_rcvd)
        ev |= SS_EV_READABLE;
    if (tcp_can_send(sk) && !ss__tcp_opening(sk) && ss__ring_free(&sk->snd))
        ev |= SS_EV_WRITABLE;
    if (sk->state >= SS_TCP_ESTABLISHED)
        ev |= SS_EV_CONNECTED;
    if (sk->state == SS_TCP_CLOSED)
        ev |= SS_EV_CLOSED | SS_EV_READABLE;
    return (int)ev;
}

int ss_stack_sock_error(ss_stack *st, int sd)
{
    struct ss_sock *sk = ss__stack_sock_get(st, sd);
    if (!sk)
        return -EBADF;
    int e = sk->error;
    sk->error = 0;
    return e;
}

/* The SS_OPTF_* bit of an option socket option. */
static uint8_t opt_bit(int opt)
{
    return opt == SS_SO_WSCALE ? SS_OPTF_WSCALE : opt == SS_SO_TIMESTAMPS ? SS_OPTF_TS
                                                                         : SS_OPTF_SACK;
}

/* *field = value when lo <= value <= hi; else -EINVAL and no change. */
static int set_in_range(uint32_t *field, int value, int lo, int hi)
{
    if (value < lo || value > hi)
        return -EINVAL;
    *field = (uint32_t)value;
    return 0;
}

int ss_stack_sock_setopt(ss_stack *st, int sd, int opt, int value)
{
    struct ss_sock *sk = ss__stack_sock_get(st, sd);
    if (!sk)
        return -EBADF;
    switch (opt) {
    case SS_SO_NODELAY:
        sk->nodelay = value != 0;
        if (sk->kind == SS_SK_TCP && sk->nodelay)
            ss__tcp_output(st, sk);
        return 0;
    case SS_SO_KEEPALIVE:
        sk->keepalive = value != 0;
        if (sk->kind == SS_SK_TCP)
            ss__tcp_keep_reset(st, sk);
        return 0;
    case SS_SO_KEEPIDLE: {
        int err = set_in_range(&sk->keep_idle_s, value, 1, 32767 * 24);
        if (err == 0)
            ss__tcp_keep_reset(st, sk);
        return err;
    }
    case SS_SO_KEEPINTVL:
        return set_in_range(&sk->keep_intvl_s, value, 1, 32767);
    case SS_SO_KEEPCNT:
        return set_in_range(&sk->keep_cnt, value, 1, 127);
    case SS_SO_SNDBUF:
        if (value < 1 || (uint32_t)value > sk->snd.cap || (uint32_t)value < sk->snd.len)
            return -EINVAL;
        sk->snd.limit = (uint32_t)value;
        return 0;
    case SS_SO_MAXRT:
        return set_in_range(&sk->max_retries, value, 1, 1000);
    case SS_SO_TOS:
        if (value < 0 || value > 255)
            return -EINVAL;
        sk->tos = (uint8_t)value;
        return 0;
    case SS_SO_CONGESTION:
        return sk->kind == SS_SK_TCP ? ss__cc_select(st, sk, value) : -ENOPROTOOPT;
    case SS_SO_RCVBUF:
        if (value < 1 || (uint32_t)value > st->cfg.rcvbuf)
            return -EINVAL;
        if (sk->kind == SS_SK_TCP && sk->state != SS_TCP_CLOSED && sk->state != SS_TCP_LISTEN)
            return -EISCONN;
        sk->rcv.limit = (uint32_t)value;
        return 0;
    case SS_SO_WSCALE:
    case SS_SO_TIMESTAMPS:
    case SS_SO_SACK: {
        /* Options are negotiated on the SYNs: before them only. */
        if (sk->kind != SS_SK_TCP)
            return -ENOPROTOOPT;
        if (sk->state != SS_TCP_LISTEN && !sk->unopened)
            return -EISCONN;
        uint8_t bit = opt_bit(opt);
        sk->opt_allow = (uint8_t)(value ? sk->opt_allow | bit : sk->opt_allow & ~bit);
        return 0;
    }
    default:
        return -ENOPROTOOPT;
    }
}

int ss_stack_sock_getopt(const ss_stack *st, int sd, int opt, int *value)
{
    struct ss_sock *sk = ss__stack_sock_get(st, sd);
    if (!sk)
        return -EBADF;
    switch (opt) {
    case SS_SO_NODELAY: *value = sk->nodelay; return 0;
    case SS_SO_KEEPALIVE: *value = sk->keepalive; return 0;
    case SS_SO_KEEPIDLE: *value = (int)sk->keep_idle_s; return 0;
    case SS_SO_KEEPINTVL: *value = (int)sk->keep_intvl_s; return 0;
    case SS_SO_KEEPCNT: *value = (int)sk->keep_cnt; return 0;
    case SS_SO_SNDBUF: *value = (int)sk->snd.limit; return 0;
    case SS_SO_RCVBUF: *value = (int)sk->rcv.limit; return 0;
    case SS_SO_MAXRT: *value = (int)sk->max_retries; return 0;
    case SS_SO_TOS: *value = sk->tos; return 0;
    case SS_SO_WSCALE:
    case SS_SO_TIMESTAMPS:
    case SS_SO_SACK: *value = (sk->opt_allow & opt_bit(opt)) != 0; return 0;
    case SS_SO_CONGESTION:
        if (sk->kind != SS_SK_TCP)
            return -ENOPROTOOPT;
        *value = sk->cc->algo;
        return 0;
    default: return -ENOPROTOOPT;
    }
}

int ss_stack_sock_info(const ss_stack *st, int sd, struct ss_stack_sock_info *o)
{
    struct ss_sock *sk = ss__stack_sock_get(st, sd);
    if (!sk)
        return -EBADF;
    memset(o, 0, sizeof *o);
    o->proto = sk->kind == SS_SK_TCP ? SS_PROTO_TCP : SS_PROTO_UDP;
    o->state = sk->kind == SS_SK_TCP ? (int)sk->state : SS_TCP_CLOSED;
    o->error = sk->error;
    o->laddr = sk->laddr;
    o->raddr = sk->raddr;
    o->lport = sk->lport;
    o->rport = sk->rport;
    o->iss = sk->iss;
    o->irs = sk->irs;
    o->snd_una = sk->snd_una;
    o->snd_nxt = sk->snd_nxt;
    o->snd_wnd = sk->snd_wnd;
    o->rcv_nxt = sk->rcv_nxt;
    o->rcv_wnd = sk->rcv_adv - sk->rcv_nxt;
    o->snd_mss = sk->snd_mss;
    o->rcv_mss = sk->rcv_mss;
    o->srtt_us = sk->srtt_us;
    o->rttvar_us = sk->rttvar_us;
    o->rto_us = sk->rto_us;
    o->cwnd = sk->cwnd;
    o->ssthresh = sk->ssthresh;
    o->cc_algo = sk->kind == SS_SK_TCP ? sk->cc->algo : 0;
    o->cc_phase = sk->cc_phase;
    o->retransmits = sk->retransmits;
    o->timeouts = sk->timeouts;
    o->bytes_in = sk->bytes_in;
    o->bytes_out = sk->bytes_out;
    o->segs_in = sk->segs_in;
    o->segs_out = sk->segs_out;
    o->snd_queued = sk->snd.len;
    o->rcv_queued = sk->kind == SS_SK_TCP ? sk->rcv.len : sk->udp_q;
    o->accept_queued = (uint32_t)sk->accept_q;
    o->syn_queued = (uint32_t)sk->syn_q;
    o->soft_error = sk->soft_err;
    o->options = (sk->ts_ok ? SS_TCPI_OPT_TIMESTAMPS : 0u) | (sk->sack_ok ? SS_TCPI_OPT_SACK : 0u) |
                 (sk->ws_ok ? SS_TCPI_OPT_WSCALE : 0u);
    o->snd_wscale = sk->snd_wscale;
    o->rcv_wscale = sk->rcv_wscale;
    o->sacked_bytes = ss__sack_sacked_bytes(sk);
    return 0;
}

int ss_stack_sock_sacked(const ss_stack *st, int sd, uint32_t (*ranges)[2], int max)
{
    struct ss_sock *sk = ss__stack_sock_get(st, sd);
    if (!sk)
        return -EBADF;
    uint32_t n = ss__sack_count(sk);
    for (uint32_t i = 0; i < n && (int)i < max; i++) {
        struct ss_sack_blk b = ss__sack_range(sk, i);
        ranges[i][0] = b.start;
        ranges[i][1] = b.end;
    }
    return (int)n;
}

/* ---- TCP socket calls --------------------------------------------------- */
int ss_tcp_listen(ss_stack *st, uint16_t port, int backlog)
{
    if (backlog < 1)
        backlog = 1;
    if ((uint32_t)backlog > st->cfg.syn_backlog)
        backlog = (int)st->cfg.syn_backlog;
    if (port == 0)
        port = ephemeral_port(st, SS_SK_TCP);
    else if (listener_on(st, port))
        return -EADDRINUSE;
    if (port == 0)
        return -EADDRINUSE;
    struct ss_sock *sk = ss__stack_sock_alloc(st, SS_SK_TCP);
    if (!sk)
        return -EMFILE;
    sk->user = true;
    sk->lport = port;
    sk->raddr = 0;
    sk->rport = 0;
    sk->backlog = backlog;
    ss__set_state(st, sk, SS_TCP_LISTEN);
    return sk->id;
}

int ss_tcp_accept(ss_stack *st, int lsd, uint32_t *raddr, uint16_t *rport)
{
    struct ss_sock *ls = ss__stack_sock_get(st, lsd);
    if (!ls || ls->kind != SS_SK_TCP)
        return -EBADF;
    if (ls->state != SS_TCP_LISTEN)
        return -EINVAL;
    if (ls->accept_head < 0)
        return -EAGAIN;
    struct ss_sock *sk = &st->socks[ls->accept_head];
    unlink_from_listener(st, sk);
    sk->user = true;
    if (raddr)
        *raddr = sk->raddr;
    if (rport)
        *rport = sk->rport;
    return sk->id;
}

/* The checks of an active open, before any socket is touched; picks an
 * ephemeral port for lport 0. */
static int connect_check(ss_stack *st, uint32_t raddr, uint16_t rport, uint16_t *lport)
{
    if (rport == 0 || raddr == 0 || raddr == 0xffffffffu || (raddr >> 28) == 0xe)
        return -EINVAL;
    if (*lport == 0)
        *lport = ephemeral_port(st, SS_SK_TCP);
    else if (ss__tcp_lookup(st, st->cfg.local_addr, *lport, raddr, rport) &&
             ss__tcp_lookup(st, st->cfg.local_addr, *lport, raddr, rport)->state != SS_TCP_LISTEN)
        return -EADDRINUSE;
    if (*lport == 0)
        return -EADDRINUSE;
    return 0;
}

/* RFC 9293 3.10.1 OPEN, CLOSED state: select an ISS, send SYN, SYN-SENT. */
static void open_active(ss_stack *st, struct ss_sock *sk, uint64_t now_us, uint32_t raddr,
                        uint16_t rport, uint16_t lport)
{
    sk->unopened = false;
    sk->lport = lport;
    sk->raddr = raddr;
    sk->rport = rport;
    sk->iss = ss__isn(st, sk->laddr, lport, raddr, rport, now_us);
    sk->snd_una = sk->snd_nxt = sk->snd_max = sk->iss;
    sk->rcv_adv = 0;
    ss__opt_syn_out(st, sk);
    st->stats.tcp_active_opens++;
    ss__set_state(st, sk, SS_TCP_SYN_SENT);
    ss__tcp_output(st, sk);
}

int ss_tcp_connect(ss_stack *st, uint64_t now_us, uint32_t raddr, uint16_t rport, uint16_t lport)
{
    st->now = now_us;
    int err = connect_check(st, raddr, rport, &lport);
    if (err < 0)
        return err;
    struct ss_sock *sk = ss__stack_sock_alloc(st, SS_SK_TCP);
    if (!sk)
        return -EMFILE;
    sk->user = true;
    open_active(st, sk, now_us, raddr, rport, lport);
    return sk->id;
}

int ss_tcp_socket(ss_stack *st)
{
    struct ss_sock *sk = ss__stack_sock_alloc(st, SS_SK_TCP);
    if (!sk)
        return -EMFILE;
    sk->user = true;
    sk->unopened = true;
    return sk->id;
}

int ss_tcp_connect_sd(ss_stack *st, uint64_t now_us, int sd, uint32_t raddr, uint16_t rport,
                      uint16_t lport)
{
    st->now = now_us;
    struct ss_sock *sk = ss__stack_sock_get(st, sd);
    if (!sk || sk->kind != SS_SK_TCP)
        return -EBADF;
    if (!sk->unopened)
        return sk->state == SS_TCP_CLOSED ? -EINVAL : -EISCONN;
    int err = connect_check(st, raddr, rport, &lport);
    if (err < 0)
        return err;
    open_active(st, sk, now_us, raddr, rport, lport);
    return 0;
}

static struct ss_sock *tcp_get(ss_stack *st, int sd)
{
    struct ss_sock *sk = ss__stack_sock_get(st, sd);
    return sk && sk->kind == SS_SK_TCP ? sk : NULL;
}

ssize_t ss_tcp_send(ss_stack *st, uint64_t now_us, int sd, const void *buf, size_t len)
{
    st->now = now_us;
    struct ss_sock *sk = tcp_get(st, sd);
    if (!sk)
        return -EBADF;
    if (sk->error)
        return sk->error;
    if (sk->state == SS_TCP_LISTEN)
        return -ENOTCONN;
    if (sk->state == SS_TCP_CLOSED)
        return -ENOTCONN;
    if (!tcp_can_send(sk))
        return -EPIPE;
    if (len == 0)
        return 0;
    uint32_t n = ss__ring_write(&sk->snd, buf, len > UINT32_MAX ? UINT32_MAX : (uint32_t)len);
    if (n == 0)
        return -EAGAIN;
    ss__tcp_output(st, sk);
    return (ssize_t)n;
}

ssize_t ss_tcp_send_urgent(ss_stack *st, uint64_t now_us, int sd, const void *buf, size_t len)
{
    struct ss_sock *sk = tcp_get(st, sd);
    if (!sk)
        return -EBADF;
    if (!tcp_can_send(sk) || len == 0)
        return ss_tcp_send(st, now_us, sd, buf, len);
    /* Queue first, then mark the end of what was queued as urgent. */
    uint32_t n = ss__ring_write(&sk->snd, buf, len > UINT32_MAX ? UINT32_MAX : (uint32_t)len);
    if (n == 0)
        return sk->error ? sk->error : -EAGAIN;
    bool opening = ss__tcp_opening(sk);
    sk->snd_up = sk->snd_una + sk->snd.len + (opening ? 1 : 0);
    sk->snd_up_valid = true;
    st->now = now_us;
    ss__tcp_output(st, sk);
    return (ssize_t)n;
}

int ss_tcp_urgent(const ss_stack *st, int sd)
{
    struct ss_sock *sk = ss__stack_sock_get(st, sd);
    if (!sk || sk->kind != SS_SK_TCP)
        return -EBADF;
    if (!sk->rcv_up_valid)
        return 0;
    uint32_t read_seq = sk->rcv_nxt - sk->rcv.len;
    return SEQ_GT(sk->rcv_up, read_seq) ? (int)(sk->rcv_up - read_seq) : 0;
}

ssize_t ss_tcp_recv(ss_stack *st, uint64_t now_us, int sd, void *buf, size_t len)
{
    st->now = now_us;
    struct ss_sock *sk = tcp_get(st, sd);
    if (!sk)
        return -EBADF;
    if (sk->state == SS_TCP_LISTEN)
        return -ENOTCONN;
    uint32_t n = ss__min32(sk->rcv.len, len > UINT32_MAX ? UINT32_MAX : (uint32_t)len);
    if (n == 0) {
        if (sk->error) {
            int e = sk->error;
            sk->error = 0;
            return e;
        }
        if (sk->fin_rcvd || sk->state == SS_TCP_CLOSED)
            return 0;
        return -EAGAIN;
    }
    ss__ring_peek(&sk->rcv, 0, buf, n);
    ss__ring_consume(&sk->rcv, n);
    /* Out-of-order bytes sit beyond rcv.len at offsets from the head:
     * the ring head moved, and so did they. Nothing else to adjust. */
    ss__tcp_output(st, sk);   /* window update if it opened enough */
    return (ssize_t)n;
}

int ss_tcp_shutdown(ss_stack *st, uint64_t now_us, int sd)
{
    st->now = now_us;
    struct ss_sock *sk = tcp_get(st, sd);
    if (!sk)
        return -EBADF;
    switch (sk->state) {
    case SS_TCP_LISTEN:
    case SS_TCP_CLOSED:
        return -ENOTCONN;
    case SS_TCP_SYN_SENT:
        /* RFC 9293 3.10.4: in SYN-SENT, a CLOSE deletes the TCB. We keep
         * it simple: queue the FIN for after the handshake. */
    case SS_TCP_SYN_RECEIVED:
    case SS_TCP_ESTABLISHED:
    case SS_TCP_CLOSE_WAIT:
        if (!sk->fin_queued) {
            sk->fin_queued = true;
            /* The FIN follows the last queued byte; before the handshake
             * completes SND.UNA is still ISS (the SYN), data starts at ISS+1. */
            sk->fin_seq = sk->snd_una + sk->snd.len + (ss__tcp_opening(sk) ? 1 : 0);
        }
        /* RFC 9293 3.10.4 CLOSE: ESTABLISHED -> FIN-WAIT-1,
         * CLOSE-WAIT -> LAST-ACK; SYN-RECEIVED with nothing queued sends its
         * FIN now (FIN-WAIT-1), else after ESTABLISHED, like SYN-SENT. */
        if (sk->state == SS_TCP_ESTABLISHED ||
            (sk->state == SS_TCP_SYN_RECEIVED && sk->snd.len == 0))
            ss__set_state(st, sk, SS_TCP_FIN_WAIT_1);
        else if (sk->state == SS_TCP_CLOSE_WAIT)
            ss__set_state(st, sk, SS_TCP_LAST_ACK);
        break;
    default:
        return 0;   /* already closing */
    }
    ss__tcp_output(st, sk);
    return 0;
}

int ss_tcp_abort(ss_stack *st, uint64_t now_us, int sd)
{
    st->now = now_us;
    struct ss_sock *sk = tcp_get(st, sd);
    if (!sk)
        return -EBADF;
    sk->user = false;
    if (sk->state == SS_TCP_LISTEN) {
        /* Abort everything still queued on the listener. */
        for (uint32_t i = 0; i < st->cfg.max_sockets; i++) {
            struct ss_sock *c = &st->socks[i];
            if (c->kind == SS_SK_TCP && c->parent == sk->id) {
                ss__tcp_send_rst(st, c);
                c->user = false;
                ss__tcp_drop(st, c, 0);
            }
        }
    } else if (sk->state >= SS_TCP_SYN_RECEIVED && sk->state <= SS_TCP_CLOSE_WAIT) {
        /* RFC 9293 3.10.5 ABORT: send <SEQ=SND.NXT><CTL=RST>. */
        ss__tcp_send_rst(st, sk);
    }
    sk->pending_ev = 0;
    ss__tcp_drop(st, sk, 0);
    return 0;
}

int ss_tcp_close(ss_stack *st, uint64_t now_us, int sd)
{
    st->now = now_us;
    struct ss_sock *sk = tcp_get(st, sd);
    if (!sk)
        return -EBADF;
    switch (sk->state) {
    case SS_TCP_LISTEN:
    case SS_TCP_SYN_SENT:   /* RFC 9293 3.10.4: delete the TCB */
    case SS_TCP_CLOSED:
        return ss_tcp_abort(st, now_us, sd);
    default:
        break;
    }
    if (sk->rcv.len) /* unread data: abort (RFC 1122 4.2.2.13) */
        return ss_tcp_abort(st, now_us, sd);
    int rc = ss_tcp_shutdown(st, now_us, sd);
    sk->user = false;
    sk->pending_ev = 0;
    /* An orphan in FIN-WAIT-2 must not wait for the peer forever. */
    if (sk->state == SS_TCP_FIN_WAIT_2 && sk->t_2msl == SS_NEVER)
        sk->t_2msl = now_us + ss__2msl_us(st);
    if (sk->state == SS_TCP_CLOSED)
        ss__stack_sock_release(st, sk);
    return rc < 0 && rc != -ENOTCONN ? rc : 0;
}

/* ---- UDP socket calls --------------------------------------------------- */
int ss_udp_bind(ss_stack *st, uint16_t port)
{
    if (port == 0)
        port = ephemeral_port(st, SS_SK_UDP);
    else if (port_in_use(st, SS_SK_UDP, port))
        return -EADDRINUSE;
    if (port == 0)
        return -EADDRINUSE;
    struct ss_sock *sk = ss__stack_sock_alloc(st, SS_SK_UDP);
    if (!sk)
        return -EMFILE;
    sk->user = true;
    sk->lport = port;
    return sk->id;
}

int ss_udp_close(ss_stack *st, int sd)
{
    struct ss_sock *sk = ss__stack_sock_get(st, sd);
    if (!sk || sk->kind != SS_SK_UDP)
        return -EBADF;
    ss__stack_sock_release(st, sk);
    return 0;
}
