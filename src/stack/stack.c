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
    cfg->mem_max = SS_STACK_MEM_MAX;
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
    cfg->hystart = SS_STACK_HYSTART;
    cfg->prr = SS_STACK_PRR;
    cfg->tlp = SS_STACK_TLP;
    cfg->sack_max = SS_STACK_SACK_MAX;
    cfg->cc_algo = SS_STACK_CC_ALGO;
    cfg->init_cwnd = SS_STACK_INIT_CWND;
    cfg->synq_max = SS_STACK_SYNQ_MAX;
    cfg->syncookies = SS_STACK_SYNCOOKIES;
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
           c->keepalive_intvl_s && c->keepalive_intvl_s <= 32767 && c->keepalive_cnt &&
           c->keepalive_cnt <= 127 && c->delack_ms && c->delack_ms < 500 &&
           c->syn_backlog && c->max_sockets && c->max_sockets <= (1u << 24) && c->ooo_max &&
           c->udp_rcvq_max && c->frag_timeout_ms && c->frag_slots <= 64 &&
           c->challenge_ack_limit && secret_set(c->isn_secret, sizeof c->isn_secret) &&
           c->sack_max <= 4096 && c->ooo_max <= 4096 &&
           ss__cc_ops_of(c->cc_algo) && c->init_cwnd >= 1 && c->init_cwnd <= 1000 &&
           c->synq_max >= 1 && c->synq_max <= (1u << 20) && c->syncookies >= 0 &&
           c->syncookies <= 2 && c->tso_max <= SS_STACK_TSO_MAX &&
           ((!c->tso_max && !c->tx_csum_offload) || c->output_offload);
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
    /* Nothing here grows with max_sockets: sockets, their buffers and
     * the tables come as they are used. */
    st->tx = malloc(SS_PKT_MAX);
    st->frags = calloc(cfg->frag_slots ? cfg->frag_slots : 1, sizeof *st->frags);
    size_t fragsz = SS_PKT_MAX + SS_PKT_MAX / 64 + 1;
    st->fragpool = cfg->frag_slots ? malloc(cfg->frag_slots * fragsz) : NULL;
    if (!st->tx || !st->frags || (cfg->frag_slots && !st->fragpool)) {
        ss_stack_free(st);
        return -ENOMEM;
    }
    for (size_t i = 0; i < cfg->frag_slots; i++) {
        st->frags[i].buf = st->fragpool + i * fragsz;
        st->frags[i].map = st->frags[i].buf + SS_PKT_MAX;
    }
    /* The hash key: from the ISN secret, so a peer cannot aim its ports
     * at one chain. */
    uint8_t md[SHA256_DIGEST_LENGTH];
    SHA256(cfg->isn_secret, sizeof cfg->isn_secret, md);
    memcpy(&st->hash_key, md, sizeof st->hash_key);
    st->hash_key |= 1;
    st->next_port = SS_STACK_EPHEMERAL_LO;
    *out = st;
    return 0;
}

const struct ss_pcbx ss__sx_none;

struct ss_pcbx *ss__sx_alloc(struct ss_pcb *sk)
{
    struct ss_pcbx *x = calloc(1, sizeof *x);
    if (x)
        sk->sx = x;
    return x;
}

/* The SACK part of sk->sx is as new again (its tables are gone). */
static void sx_sack_clear(struct ss_pcb *sk)
{
    if (!sk->sx_sack)
        return;
    memset(sk->sx, 0, SS_SX_SACK_END);
    sk->sx_sack = false;
    sk->reo_holes = false;  /* its deadline went with it */
}

/* Give back sk->sx with its tables (they hold nothing that matters). */
static void sx_release(struct ss_pcb *sk)
{
    if (!ss__sx_taken(sk))
        return;
    free(sk->sx->ooo);
    free(sk->sx->sb);
    free(sk->sx);
    sk->sx = (struct ss_pcbx *)&ss__sx_none;
    sk->sx_sack = false;
    sk->reo_holes = false;
}

static void sock_free(ss_stack *st, struct ss_pcb *sk)
{
    st->mem -= (uint64_t)sk->snd.cap + sk->rcv.cap;
    free(sk->snd.buf);
    free(sk->rcv.buf);
    sx_release(sk);
    free(sk->rx);
    free(sk);
}

/* Free what was released (ss__stack_sock_release): no caller holds a
 * pointer to it any more, and no list does. One mechanism for "freed in
 * its own callback": release only marks and unlinks, this frees. */
static void reap(ss_stack *st)
{
    struct ss_pcb **pp = &st->zombies;
    while (*pp) {
        struct ss_pcb *sk = *pp;
        if (sk->on_ev || sk->on_out || sk->on_dirty || sk->on_trimq) {
            pp = &sk->h_next;   /* a list still links it: next time */
            continue;
        }
        *pp = sk->h_next;
        sock_free(st, sk);
    }
}

void ss_stack_free(ss_stack *st)
{
    if (!st)
        return;
    free(st->trimq);
    while (st->zombies) {
        struct ss_pcb *sk = st->zombies;
        st->zombies = sk->h_next;
        sock_free(st, sk);
    }
    for (uint32_t i = 0; i < st->tab_hi; i++)
        if (st->tab[i])
            sock_free(st, st->tab[i]);
    free(st->tab);
    free(st->free_ids);
    free(st->cc_seen);
    free(st->hash);
    free(st->heap);
    free(st->scratch);
    for (size_t i = 0; i < 256; i++)
        free(st->tcp_port_refs[i]);
    free(st->tx);
    free(st->frags);
    free(st->fragpool);
    ss__synq_free(st);
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

static size_t port_blocks(const ss_stack *st)
{
    size_t n = 0;
    for (size_t i = 0; i < 256; i++)
        n += st->tcp_port_refs[i] != NULL;
    return n;
}

void ss_stack_mem(const ss_stack *st, struct ss_stack_mem *out)
{
    *out = (struct ss_stack_mem){.sockets = st->nsocks};
    out->socket_bytes = (uint64_t)st->nsocks * sizeof(struct ss_pcb);
    out->buffer_bytes = st->mem;
    for (uint32_t i = 0; i < st->tab_hi; i++) {
        const struct ss_pcb *sk = st->tab[i];
        if (sk && ss__sx_taken(sk))
            out->buffer_bytes += sizeof *sk->sx + sk->sx->ooo_cap * sizeof *sk->sx->ooo +
                                 sk->sx->sb_cap * sizeof *sk->sx->sb;
        if (sk && sk->rx)
            out->buffer_bytes += SS_STACK_RXT_MAX * sizeof *sk->rx;
    }
    out->table_bytes = (uint64_t)st->tab_n * (sizeof *st->tab + sizeof *st->free_ids) +
                       (uint64_t)st->cc_seen_n * sizeof *st->cc_seen +
                       (uint64_t)st->hash_n * sizeof *st->hash +
                       (uint64_t)st->heap_cap * sizeof *st->heap +
                       port_blocks(st) * 256 * sizeof **st->tcp_port_refs +
                       (uint64_t)st->trimq_cap * sizeof *st->trimq +
                       (uint64_t)st->synq.cap * (sizeof *st->synq.req + sizeof *st->synq.heap) +
                       (st->synq.cap ? (uint64_t)(st->synq.hmask + 1) * sizeof *st->synq.hash : 0);
}

/* ---- events ------------------------------------------------------------ */
void ss__stack_sock_event(ss_stack *st, struct ss_pcb *sk, unsigned ev, int err)
{
    sk->pending_ev |= ev;
    if (ev & SS_EV_ERROR)
        sk->ev_err = err;
    if (!sk->on_ev) {
        sk->on_ev = true;
        sk->ev_next = st->ev_head;
        st->ev_head = sk;
    }
}

/* Take a list linked through the field at offset off, sorted by id: the
 * callbacks and deferred output run in socket order, the same order on
 * every run whatever order the events came in. */
static int by_id(const void *a, const void *b)
{
    int x = (*(struct ss_pcb *const *)a)->id, y = (*(struct ss_pcb *const *)b)->id;
    return (x > y) - (x < y);
}

static size_t take_sorted(ss_stack *st, struct ss_pcb **head, size_t off,
                          struct ss_pcb ***out)
{
    size_t n = 0;
    for (struct ss_pcb *p = *head; p; p = *(struct ss_pcb **)((char *)p + off))
        n++;
    *out = NULL;
    if (!n)
        return 0;
    /* One scratch vector per stack, kept: no allocation per packet. A
     * nested call (a callback that sends inside a batch) gets its own. */
    struct ss_pcb **v = st->scratch_busy ? NULL : st->scratch;
    if (!v || st->scratch_cap < n) {
        size_t cap = n < 64 ? 64 : n;
        v = st->scratch_busy ? malloc(cap * sizeof *v) : realloc(st->scratch, cap * sizeof *v);
        if (!v)
            return 0;   /* left on the list: the next call delivers it */
        if (!st->scratch_busy) {
            st->scratch = v;
            st->scratch_cap = cap;
        }
    }
    if (v == st->scratch)
        st->scratch_busy = true;
    n = 0;
    for (struct ss_pcb *p = *head; p; p = *(struct ss_pcb **)((char *)p + off))
        v[n++] = p;
    *head = NULL;
    if (n > 1)
        qsort(v, n, sizeof *v, by_id);
    *out = v;
    return n;
}

static void put_sorted(ss_stack *st, struct ss_pcb **v)
{
    if (v && v == st->scratch)
        st->scratch_busy = false;
    else
        free(v);
}

/* Deliver pending events. Callbacks may call back into the stack (send,
 * close, accept ...); a nested dispatch is skipped and the outer loop
 * picks up whatever the callback produced. Only sockets with events are
 * visited: those ss__stack_sock_event put on st->ev_head. A socket closed
 * in its own callback is only released (marked, unlinked); reap() frees it
 * at the end of the outermost entry point (settle), as libuv frees a
 * closed handle after its callbacks (sock_stack.c and the server's
 * conn.c do the same on the reactor). */
static void dispatch(ss_stack *st)
{
    if (st->dispatching)
        return;
    st->dispatching = 1;
    for (int round = 0; round < 4 && st->ev_head; round++) {
        struct ss_pcb **v;
        size_t n = take_sorted(st, &st->ev_head, offsetof(struct ss_pcb, ev_next), &v);
        for (size_t i = 0; i < n; i++)
            v[i]->on_ev = false;
        for (size_t i = 0; i < n; i++) {
            struct ss_pcb *sk = v[i];
            unsigned ev = sk->pending_ev;
            int err = sk->ev_err;
            if (sk->on_ev)
                continue;   /* an earlier callback already re-queued it */
            sk->pending_ev = 0;
            sk->ev_err = 0;
            if (sk->kind == SS_SK_FREE || !sk->user || !sk->cb)
                continue;
            sk->cb(sk->cb_arg, st, sk->id, ev, err);
        }
        put_sorted(st, v);
    }
    st->dispatching = 0;
}

static uint64_t bad_count(const ss_stack *st)
{
    return st->stats.ip_bad_header + st->stats.ip_bad_checksum + st->stats.ip_bad_len +
           st->stats.tcp_bad_checksum + st->stats.tcp_bad_header + st->stats.udp_bad +
           st->stats.icmp_bad;
}

/* The end of every entry point that runs protocol code: deliver events,
 * then free what was released (outermost call only). */
static void refile(ss_stack *st);

static void settle(ss_stack *st)
{
    dispatch(st);
    if (st->dispatching)
        return;
    refile(st);
    reap(st);
}

int ss_stack_input(ss_stack *st, uint64_t now_us, const uint8_t *pkt, size_t len)
{
    st->now = now_us;
    uint64_t bad = bad_count(st);
    ss__ip_input(st, pkt, len);
    settle(st);
    return bad_count(st) != bad ? SS_EBADPKT : 0;
}

int ss_stack_input_batch(ss_stack *st, uint64_t now_us, const uint8_t *const *pkts,
                         const size_t *lens, size_t n)
{
    return ss_stack_input_batch_flags(st, now_us, pkts, lens, NULL, n);
}

/* Send the output deferred to the end of a batch (or, with
 * cfg.defer_user_output, to the next poll), in socket order. */
static void flush_output(ss_stack *st)
{
    struct ss_pcb **v;
    size_t k = take_sorted(st, &st->out_head, offsetof(struct ss_pcb, out_next), &v);
    for (size_t i = 0; i < k; i++)
        v[i]->on_out = false;
    for (size_t i = 0; i < k; i++) {
        struct ss_pcb *sk = v[i];
        if (sk->kind == SS_SK_TCP && sk->out_pending) {
            sk->out_pending = false;
            ss__tcp_output(st, sk);
        }
    }
    put_sorted(st, v);
}

int ss_stack_input_batch_flags(ss_stack *st, uint64_t now_us, const uint8_t *const *pkts,
                               const size_t *lens, const uint8_t *flags, size_t n)
{
    int bad = 0;
    st->now = now_us;
    st->batching = true;
    for (size_t i = 0; i < n; i++) {
        uint64_t before = bad_count(st);
        st->rx_flags = flags ? flags[i] : 0;
        ss__ip_input(st, pkts[i], lens[i]);
        st->rx_flags = 0;
        bad += bad_count(st) != before;
    }
    /* cfg.defer_user_output: the batch's events go out while output
     * is still deferred: what the callbacks read and send rides on the
     * batch's ACKs (one segment with the opened window, not an ACK and
     * then a window update per read; bench/stack/speed: 71,000 writes per
     * GiB with --offload, 1,000 after), and what they queue goes out in
     * the largest segments the window and a link's TSO take. */
    if (st->cfg.defer_user_output)
        dispatch(st);
    st->batching = false;
    flush_output(st);
    settle(st);
    return bad;
}

/* Output deferred to the end of the batch (MUST-59). */
void ss__tcp_defer_output(ss_stack *st, struct ss_pcb *sk)
{
    sk->out_pending = true;
    if (!sk->on_out) {
        sk->on_out = true;
        sk->out_next = st->out_head;
        st->out_head = sk;
    }
}

/* ---- timers: a binary min-heap of sockets by (deadline, id) --------------- */
static bool heap_less(const struct ss_pcb *a, const struct ss_pcb *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->id < b->id);
}

static void heap_set(ss_stack *st, uint32_t i, struct ss_pcb *sk)
{
    st->heap[i] = sk;
    sk->heap_i = i + 1;
}

static void heap_up(ss_stack *st, uint32_t i)
{
    struct ss_pcb *sk = st->heap[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!heap_less(sk, st->heap[p]))
            break;
        heap_set(st, i, st->heap[p]);
        i = p;
    }
    heap_set(st, i, sk);
}

static void heap_down(ss_stack *st, uint32_t i)
{
    struct ss_pcb *sk = st->heap[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= st->heap_n)
            break;
        if (c + 1 < st->heap_n && heap_less(st->heap[c + 1], st->heap[c]))
            c++;
        if (!heap_less(st->heap[c], sk))
            break;
        heap_set(st, i, st->heap[c]);
        i = c;
    }
    heap_set(st, i, sk);
}

static void heap_remove(ss_stack *st, struct ss_pcb *sk)
{
    if (!sk->heap_i)
        return;
    uint32_t i = sk->heap_i - 1;
    sk->heap_i = 0;
    struct ss_pcb *last = st->heap[--st->heap_n];
    if (last == sk)
        return;
    heap_set(st, i, last);
    heap_up(st, i);
    heap_down(st, last->heap_i - 1);
}

/* File sk under deadline d (SS_NEVER: out of the heap). false: no memory
 * to grow the heap (sk then stays where it was). */
static bool heap_file(ss_stack *st, struct ss_pcb *sk, uint64_t d)
{
    if (d == SS_NEVER) {
        heap_remove(st, sk);
        return true;
    }
    if (!sk->heap_i) {
        if (st->heap_n == st->heap_cap) {
            uint32_t cap = st->heap_cap ? st->heap_cap * 2 : 64;
            struct ss_pcb **h = realloc(st->heap, cap * sizeof *h);
            if (!h)
                return false;
            st->heap = h;
            st->heap_cap = cap;
        }
        sk->deadline = d;
        heap_set(st, st->heap_n++, sk);
        heap_up(st, st->heap_n - 1);
        return true;
    }
    uint64_t old = sk->deadline;
    sk->deadline = d;
    if (d < old)
        heap_up(st, sk->heap_i - 1);
    else if (d > old)
        heap_down(st, sk->heap_i - 1);
    return true;
}

static uint64_t sock_deadline(const struct ss_pcb *sk)
{
    return sk->kind == SS_SK_TCP ? ss__tcp_next_deadline(sk) : SS_NEVER;
}

void ss__sock_touch(ss_stack *st, struct ss_pcb *sk)
{
    if (!sk->on_dirty && sk->kind != SS_SK_FREE) {
        sk->on_dirty = true;
        sk->dirty_next = st->dirty_head;
        st->dirty_head = sk;
    }
}

/* Re-file every touched socket under its current deadline. */
static void refile(ss_stack *st)
{
    while (st->dirty_head) {
        struct ss_pcb *sk = st->dirty_head;
        if (sk->kind != SS_SK_FREE && !heap_file(st, sk, sock_deadline(sk)))
            return;   /* out of memory: the rest stays touched, tried again */
        st->dirty_head = sk->dirty_next;
        sk->on_dirty = false;
    }
}

static void trim_due(ss_stack *st, uint64_t now);

uint64_t ss_stack_poll(ss_stack *st, uint64_t now_us)
{
    st->now = now_us;
    if (st->out_head && !st->batching)
        flush_output(st);   /* cfg.defer_user_output: what socket calls made sendable */
    uint64_t next = ss__min64(ss__frag_timers(st, now_us), ss__synq_timers(st, now_us));
    trim_due(st, now_us);
    refile(st);
    /* Only the sockets whose deadline has come, earliest first. A socket
     * re-filed for now or earlier by its own timers waits for the next
     * call (no loop at one instant). */
    struct ss_pcb *due = NULL;
    while (st->heap_n && st->heap[0]->deadline <= now_us) {
        struct ss_pcb *sk = st->heap[0];
        heap_remove(st, sk);
        sk->dirty_next = due;   /* a list of its own until re-filed */
        due = sk;
        sk->on_dirty = true;
    }
    /* Run them in (deadline, id) order: the list is reversed. */
    struct ss_pcb *rev = NULL;
    while (due) {
        struct ss_pcb *n = due->dirty_next;
        due->dirty_next = rev;
        rev = due;
        due = n;
    }
    for (struct ss_pcb *sk = rev; sk; sk = sk->dirty_next) {
        if (sk->kind == SS_SK_FREE)
            continue;
        if (sk->kind == SS_SK_TCP) {
            ss__tcp_timers(st, sk, now_us);
            if (sk->kind == SS_SK_TCP)
                ss__tcp_output(st, sk);
        }
    }
    /* Back into the dirty list, to be re-filed below. */
    while (rev) {
        struct ss_pcb *n = rev->dirty_next;
        rev->on_dirty = false;
        if (rev->kind != SS_SK_FREE)
            ss__sock_touch(st, rev);
        rev = n;
    }
    settle(st);
    if (st->heap_n)
        next = ss__min64(next, st->heap[0]->deadline);
    if (st->out_head)
        next = now_us;   /* callbacks of this poll sent (defer_user_output): again now */
    return next;
}

/* ---- sockets: ids, lookup, memory ------------------------------------- */
struct ss_pcb *ss__sock_at(const ss_stack *st, int sd)
{
    if (sd < 0 || (uint32_t)sd >= st->tab_hi)
        return NULL;
    return st->tab[sd];
}

/* The pool is full: end the orphaned TIME-WAIT connection closest to its
 * end (as Linux does past tcp_max_tw_buckets), so TIME-WAITs cannot lock
 * out new connections. A scan, but only when the table is full. */
static bool recycle_time_wait(ss_stack *st)
{
    struct ss_pcb *old = NULL;
    for (uint32_t i = 0; i < st->tab_hi; i++) {
        struct ss_pcb *sk = st->tab[i];
        if (sk && sk->kind == SS_SK_TCP && sk->state == SS_TCP_TIME_WAIT && !sk->user &&
            (!old || sk->t_2msl < old->t_2msl))
            old = sk;
    }
    if (!old)
        return false;
    st->stats.tcp_tw_recycled++;
    ss__tcp_drop(st, old, 0);
    return true;
}

/* Free ids: a min-heap of ints, so the lowest free id is reused first. */
static void ids_push(ss_stack *st, int id)
{
    uint32_t i = st->free_n++;
    while (i > 0 && st->free_ids[(i - 1) / 2] > id) {
        st->free_ids[i] = st->free_ids[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    st->free_ids[i] = id;
}

static int ids_pop(ss_stack *st)
{
    int top = st->free_ids[0], last = st->free_ids[--st->free_n];
    uint32_t i = 0;
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= st->free_n)
            break;
        if (c + 1 < st->free_n && st->free_ids[c + 1] < st->free_ids[c])
            c++;
        if (st->free_ids[c] >= last)
            break;
        st->free_ids[i] = st->free_ids[c];
        i = c;
    }
    if (st->free_n)
        st->free_ids[i] = last;
    return top;
}

/* A free id, growing the table (and the room for free ids) as needed;
 * -1 when max_sockets are in use. */
static int take_id(ss_stack *st)
{
    if (st->free_n)
        return ids_pop(st);
    if (st->tab_hi >= st->cfg.max_sockets)
        return -1;
    if (st->tab_hi == st->tab_n) {
        uint32_t n = st->tab_n ? st->tab_n * 2 : 16;
        if (n > st->cfg.max_sockets)
            n = st->cfg.max_sockets;
        struct ss_pcb **t = realloc(st->tab, n * sizeof *t);
        if (!t)
            return -1;
        st->tab = t;
        int *f = realloc(st->free_ids, n * sizeof *f);
        if (!f)
            return -1;
        st->free_ids = f;
        st->tab_n = n;
        if (st->cfg.trace) {
            struct ss_cc_seen *c = realloc(st->cc_seen, n * sizeof *c);
            if (c) {   /* else the new ids' traces are not deduplicated */
                st->cc_seen = c;
                st->cc_seen_n = n;
            }
        }
    }
    st->tab[st->tab_hi] = NULL;
    return (int)st->tab_hi++;
}

struct ss_pcb *ss__stack_sock_alloc(ss_stack *st, enum ss_stack_sock_kind kind)
{
    if (st->nsocks >= st->cfg.max_sockets && !recycle_time_wait(st))
        return NULL;
    reap(st);   /* what the recycling released, if nothing links it */
    struct ss_pcb *sk = calloc(1, sizeof *sk);
    if (!sk)
        return NULL;
    sk->sx = (struct ss_pcbx *)&ss__sx_none;
    int id = take_id(st);
    if (id < 0) {
        free(sk);
        return NULL;
    }
    st->tab[id] = sk;
    st->nsocks++;
    sk->id = id;
    sk->kind = kind;
    sk->snd = (struct ss_ring){.limit = st->cfg.sndbuf};
    sk->rcv = (struct ss_ring){.limit = st->cfg.rcvbuf};
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
    sk->t_rtx = sk->t_persist = sk->t_delack = sk->t_keep = sk->t_2msl = sk->t_sws = sk->t_tlp = SS_NEVER;
    ss__cc_init(st, sk);
    return sk;
}

/* Make room to count port in the TCP port counts; before ss__port_hold
 * of a port that no socket holds yet (a child holds its listener's). */
int ss__port_reserve(ss_stack *st, uint16_t port)
{
    uint32_t **b = &st->tcp_port_refs[port >> 8];
    if (!*b && !(*b = calloc(256, sizeof **b)))
        return -ENOMEM;
    return 0;
}

/* Hold or give back sk's local port in the TCP port counts. */
void ss__port_hold(ss_stack *st, struct ss_pcb *sk, uint16_t port)
{
    sk->lport = port;
    if (sk->kind == SS_SK_TCP && !sk->port_held) {
        st->tcp_port_refs[port >> 8][port & 255]++;
        sk->port_held = true;
    }
}

void ss__stack_sock_release(ss_stack *st, struct ss_pcb *sk)
{
    if (sk->kind == SS_SK_FREE)
        return;
    ss__sock_unhash(st, sk);
    if (sk->port_held) {
        st->tcp_port_refs[sk->lport >> 8][sk->lport & 255]--;
        sk->port_held = false;
    }
    heap_remove(st, sk);
    sk->kind = SS_SK_FREE;
    sk->user = false;
    sk->pending_ev = 0;
    st->tab[sk->id] = NULL;
    ids_push(st, sk->id);
    st->nsocks--;
    sk->h_next = st->zombies;
    st->zombies = sk;
}

struct ss_pcb *ss__stack_sock_get(const ss_stack *st, int sd)
{
    struct ss_pcb *sk = ss__sock_at(st, sd);
    if (!sk || !sk->user)
        return NULL;
    return sk;
}

/* ---- the lookup hash ------------------------------------------------------ */
enum { KEY_CONN = 1, KEY_LISTEN = 2, KEY_UDP = 3, KEY_SYNQ = 4 };

static uint32_t hash_of(const ss_stack *st, int tag, uint32_t laddr, uint16_t lport,
                        uint32_t raddr, uint16_t rport)
{
    uint64_t h = st->hash_key;
    h ^= ((uint64_t)laddr << 32 | raddr) * 0x9e3779b97f4a7c15ull;
    h = (h ^ (h >> 29)) * 0xbf58476d1ce4e5b9ull;
    h ^= ((uint64_t)tag << 32 | (uint32_t)lport << 16 | rport) * 0x94d049bb133111ebull;
    h = (h ^ (h >> 31)) * st->hash_key;
    return (uint32_t)(h >> 32);
}

uint32_t ss__tuple_hash(const ss_stack *st, uint32_t laddr, uint16_t lport, uint32_t raddr,
                        uint16_t rport)
{
    return hash_of(st, KEY_SYNQ, laddr, lport, raddr, rport);
}

static int key_tag(const struct ss_pcb *sk)
{
    if (sk->kind == SS_SK_UDP)
        return KEY_UDP;
    return sk->state == SS_TCP_LISTEN ? KEY_LISTEN : KEY_CONN;
}

static uint32_t sock_hash(const ss_stack *st, const struct ss_pcb *sk)
{
    int tag = key_tag(sk);
    if (tag == KEY_CONN)
        return hash_of(st, tag, sk->laddr, sk->lport, sk->raddr, sk->rport);
    return hash_of(st, tag, 0, sk->lport, 0, 0);
}

/* Double the buckets when the chains would grow past one socket each. */
static void hash_grow(ss_stack *st)
{
    uint32_t n = st->hash_n ? st->hash_n * 2 : 64;
    struct ss_pcb **b = calloc(n, sizeof *b);
    if (!b)
        return;   /* longer chains, still correct */
    for (uint32_t i = 0; i < st->hash_n; i++) {
        while (st->hash[i]) {
            struct ss_pcb *sk = st->hash[i];
            st->hash[i] = sk->h_next;
            uint32_t j = sock_hash(st, sk) & (n - 1);
            sk->h_next = b[j];
            b[j] = sk;
        }
    }
    free(st->hash);
    st->hash = b;
    st->hash_n = n;
}

void ss__sock_hash(ss_stack *st, struct ss_pcb *sk)
{
    if (sk->hashed)
        ss__sock_unhash(st, sk);
    if (st->hash_used >= st->hash_n)
        hash_grow(st);
    if (!st->hash_n)
        return;   /* no memory for even the first table: lookups miss it */
    uint32_t j = sock_hash(st, sk) & (st->hash_n - 1);
    sk->h_next = st->hash[j];
    st->hash[j] = sk;
    sk->hashed = true;
    st->hash_used++;
}

void ss__sock_unhash(ss_stack *st, struct ss_pcb *sk)
{
    if (!sk->hashed)
        return;
    /* The key it was filed under: a listener is filed as one, and only
     * a socket's state decides that (unhash before changing it). */
    struct ss_pcb **pp = &st->hash[sock_hash(st, sk) & (st->hash_n - 1)];
    while (*pp && *pp != sk)
        pp = &(*pp)->h_next;
    if (*pp)
        *pp = sk->h_next;
    sk->h_next = NULL;
    sk->hashed = false;
    st->hash_used--;
}

/* Exact 4-tuple first, then a listener on the port. */
struct ss_pcb *ss__tcp_lookup(ss_stack *st, uint32_t laddr, uint16_t lport, uint32_t raddr,
                               uint16_t rport)
{
    if (!st->hash_n)
        return NULL;
    uint32_t m = st->hash_n - 1;
    for (struct ss_pcb *sk = st->hash[hash_of(st, KEY_CONN, laddr, lport, raddr, rport) & m];
         sk; sk = sk->h_next)
        if (sk->kind == SS_SK_TCP && sk->state != SS_TCP_LISTEN && sk->state != SS_TCP_CLOSED &&
            sk->lport == lport && sk->raddr == raddr && sk->rport == rport && sk->laddr == laddr)
            return sk;
    for (struct ss_pcb *sk = st->hash[hash_of(st, KEY_LISTEN, 0, lport, 0, 0) & m]; sk;
         sk = sk->h_next)
        if (sk->kind == SS_SK_TCP && sk->state == SS_TCP_LISTEN && sk->lport == lport)
            return sk;
    return NULL;
}

struct ss_pcb *ss__udp_lookup(ss_stack *st, uint16_t lport)
{
    if (!st->hash_n)
        return NULL;
    for (struct ss_pcb *sk = st->hash[hash_of(st, KEY_UDP, 0, lport, 0, 0) & (st->hash_n - 1)];
         sk; sk = sk->h_next)
        if (sk->kind == SS_SK_UDP && sk->lport == lport)
            return sk;
    return NULL;
}

bool ss__port_in_use(ss_stack *st, enum ss_stack_sock_kind kind, uint16_t port)
{
    if (kind == SS_SK_TCP)
        return st->tcp_port_refs[port >> 8] && st->tcp_port_refs[port >> 8][port & 255] != 0;
    return ss__udp_lookup(st, port) != NULL;
}

/* RFC 9293 MUST-42: a LISTEN may share its port with connections (say one
 * in SYN-SENT from that port); only a second listener conflicts. */
bool ss__listener_on(ss_stack *st, uint16_t port)
{
    struct ss_pcb *sk = ss__tcp_lookup(st, 0, port, 0, 0);
    return sk && sk->state == SS_TCP_LISTEN;
}

uint16_t ss__ephemeral_port(ss_stack *st, enum ss_stack_sock_kind kind)
{
    uint32_t range = SS_STACK_EPHEMERAL_HI - SS_STACK_EPHEMERAL_LO + 1;
    for (uint32_t i = 0; i < range; i++) {
        uint16_t p = st->next_port;
        st->next_port = p >= SS_STACK_EPHEMERAL_HI ? SS_STACK_EPHEMERAL_LO : (uint16_t)(p + 1);
        if (!ss__port_in_use(st, kind, p))
            return p;
    }
    return 0;
}

/* ---- state ------------------------------------------------------------- */
/* Every TCP state change goes through here, so every one is traced. */
void ss__set_state(ss_stack *st, struct ss_pcb *sk, enum ss_tcp_state ns)
{
    enum ss_tcp_state old = sk->state;
    if (old == ns)
        return;
    sk->state = ns;
    ss__sock_touch(st, sk);
    ss__trace_state(st, sk, (int)old, (int)ns);
}

void ss__tcp_unlink_from_listener(ss_stack *st, struct ss_pcb *sk)
{
    if (sk->parent < 0)
        return;
    struct ss_pcb *ls = ss__sock_at(st, sk->parent);
    if (sk->in_accept_q) {
        int prev = -1;
        for (int c = ls->accept_head; c >= 0; prev = c, c = ss__sock_at(st, c)->next_q) {
            if (c != sk->id)
                continue;
            if (prev < 0)
                ls->accept_head = sk->next_q;
            else
                ss__sock_at(st, prev)->next_q = sk->next_q;
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

void ss__tcp_drop(ss_stack *st, struct ss_pcb *sk, int err)
{
    ss__tcp_unlink_from_listener(st, sk);
    ss__sock_unhash(st, sk);
    ss__sock_touch(st, sk);
    ss__set_state(st, sk, SS_TCP_CLOSED);
    sk->t_rtx = sk->t_persist = sk->t_delack = sk->t_keep = sk->t_2msl = sk->t_sws = sk->t_tlp = SS_NEVER;
    if (ss__sx_taken(sk))
        sk->sx->ooo_n = sk->sx->sb_n = 0;
    if (err) {
        sk->error = err;
        ss__stack_sock_event(st, sk, SS_EV_ERROR | SS_EV_READABLE | SS_EV_WRITABLE |
                             SS_EV_RDHUP, err);
    } else {
        ss__stack_sock_event(st, sk, SS_EV_CLOSED | SS_EV_READABLE | SS_EV_RDHUP, 0);
    }
    if (!sk->user)
        ss__stack_sock_release(st, sk);
}

/* sk's 4-tuple is set: it joins ls's SYN queue and the lookup table. */
void ss__tcp_listener_add_child(ss_stack *st, struct ss_pcb *ls, struct ss_pcb *sk)
{
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
    ss__port_hold(st, sk, sk->lport);
    ss__sock_hash(st, sk);
}

/* A passive child reached ESTABLISHED: move it to the accept queue. */
void ss__tcp_established_child(ss_stack *st, struct ss_pcb *sk)
{
    if (sk->parent < 0 || sk->in_accept_q)
        return;
    struct ss_pcb *ls = ss__sock_at(st, sk->parent);
    ls->syn_q--;
    ls->accept_q++;
    sk->in_accept_q = true;
    sk->next_q = -1;
    if (ls->accept_tail >= 0)
        ss__sock_at(st, ls->accept_tail)->next_q = sk->id;
    else
        ls->accept_head = sk->id;
    ls->accept_tail = sk->id;
    ss__stack_sock_event(st, ls, SS_EV_ACCEPT | SS_EV_READABLE, 0);
}

/* RFC 6528: ISN = M + F(localip, localport, remoteip, remoteport, secretkey),
 * M a 4-microsecond timer (from the caller's clock), F = SHA-256 keyed
 * with the secret (ss__keyed_hash32, which SYN cookies use too). */
uint32_t ss__isn(ss_stack *st, uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport,
                 uint64_t now)
{
    uint8_t in[12];
    ss__put32(in, laddr);
    ss__put16(in + 4, lport);
    ss__put32(in + 6, raddr);
    ss__put16(in + 10, rport);
    return (uint32_t)(now / 4) + ss__keyed_hash32(st, in, sizeof in);
}

/* ---- rings ------------------------------------------------------------- */
#define RING_MIN 4096u

bool ss__ring_reserve(ss_stack *st, struct ss_ring *r, uint32_t need)
{
    if (need <= r->cap)
        return true;
    /* Beyond limit only what a receive window rounded up to its scale
     * granularity may bring (SS_RCV_SLACK), and only as much as asked. */
    uint64_t max = (uint64_t)r->limit + SS_RCV_SLACK;
    if (need > max)
        return false;
    uint64_t cap = r->cap ? r->cap : RING_MIN;
    while (cap < need)
        cap *= 2;
    if (cap > r->limit)
        cap = need > r->limit ? need : r->limit;
    if (st->cfg.mem_max && st->mem + cap - r->cap > st->cfg.mem_max) {
        st->stats.mem_refused++;
        return false;
    }
    uint8_t *b = malloc((size_t)cap);
    if (!b) {
        st->stats.mem_refused++;
        return false;
    }
    /* Linear from the head: bytes (and out-of-order bytes beyond len)
     * keep their offsets. */
    if (r->cap) {
        uint32_t first = r->cap - r->head;
        memcpy(b, r->buf + r->head, first);
        memcpy(b + first, r->buf, r->head);
    }
    free(r->buf);
    st->mem += cap - r->cap;
    r->buf = b;
    r->cap = (uint32_t)cap;
    r->head = 0;
    return true;
}

static void ring_release(ss_stack *st, struct ss_ring *r)
{
    st->mem -= r->cap;
    free(r->buf);
    r->buf = NULL;
    r->cap = r->head = r->len = 0;
}

/* Give back what a socket does not use: empty rings, and the
 * out-of-order and SACK tables when they hold nothing. */
static void trim(ss_stack *st, struct ss_pcb *sk)
{
    if (!sk->snd.len && sk->snd.cap)
        ring_release(st, &sk->snd);
    if (!sk->rcv.len && !sk->sx->ooo_n && sk->rcv.cap)
        ring_release(st, &sk->rcv);
    if (!sk->sx->ooo_n && sk->sx->ooo) {
        free(sk->sx->ooo);
        sk->sx->ooo = NULL;
        sk->sx->ooo_cap = 0;
    }
    if (!sk->sx->sb_n && sk->sx->sb) {
        free(sk->sx->sb);
        sk->sx->sb = NULL;
        sk->sx->sb_cap = 0;
    }
    /* Both tables gone and no FIN waits beyond a hole: nothing in the
     * SACK part matters (ooo_clock only orders the ranges of ooo). */
    if (!sk->sx->ooo && !sk->sx->sb && !sk->ooo_fin)
        sx_sack_clear(sk);
    /* Nor in the rest once no urgent pointer is set, no probe is out and
     * the challenge-ACK second is over: a new one would act the same (its
     * budget restarts at the next challenge ACK either way). */
    const struct ss_pcbx *x = sk->sx;
    if (!sk->sx_sack && !sk->snd_up_valid && !sk->rcv_up_valid && !sk->tlp_on &&
        (!x->chack_count || st->now - x->chack_window >= 1000000))
        sx_release(sk);
    if (!sk->rx_n) {
        free(sk->rx);
        sk->rx = NULL;
    }
}

/* A ring emptied. It is not freed at once: a bulk transfer empties its
 * rings after every batch, and freeing them there made each batch pay
 * malloc, free and the copies of growing again (bench/stack/speed: 3.0
 * -> 1.3 Gbit/s). The socket goes on a queue instead, and the first
 * ss_stack_poll at least TRIM_US later gives back what is still empty.
 * The queue asks for no wake-up of its own (the runs stay as they were);
 * when it is full, the socket is trimmed at once. */
/* Double the trim queue (from 16, up to TRIMQ_MAX), unwrapping the ring:
 * a stack that never empties many rings at once never pays for a big one
 * (a fixed 1 MiB of it made each fuzz_stack input map and unmap it). */
static int trimq_grow(ss_stack *st)
{
    uint32_t cap = st->trimq_cap ? 2 * st->trimq_cap : 16;
    if (cap > TRIMQ_MAX)
        return -ENOSPC;
    struct ss_trim *q = malloc(cap * sizeof *q);
    if (!q)
        return -ENOMEM;
    for (uint32_t i = 0; i < st->trimq_n; i++)
        q[i] = st->trimq[(st->trimq_head + i) % st->trimq_cap];
    free(st->trimq);
    st->trimq = q;
    st->trimq_head = 0;
    st->trimq_cap = cap;
    return 0;
}

void ss__sock_ring_idle(ss_stack *st, struct ss_pcb *sk)
{
    if (sk->on_trimq)
        return;
    if (!sk->snd.cap && !sk->rcv.cap && !ss__sx_taken(sk) && !sk->rx)
        return;
    if (st->trimq_n == st->trimq_cap && trimq_grow(st) < 0) {
        trim(st, sk);
        return;
    }
    st->trimq[(st->trimq_head + st->trimq_n++) % st->trimq_cap] =
        (struct ss_trim){.sk = sk, .at = st->now + TRIM_US};
    sk->on_trimq = true;
}

static void trim_due(ss_stack *st, uint64_t now)
{
    while (st->trimq_n) {
        struct ss_trim *t = &st->trimq[st->trimq_head];
        if (t->at > now)
            break;
        struct ss_pcb *sk = t->sk;
        st->trimq_head = (st->trimq_head + 1) % st->trimq_cap;
        st->trimq_n--;
        sk->on_trimq = false;
        if (sk->kind != SS_SK_FREE)
            trim(st, sk);
    }
}

uint32_t ss__ring_free(const struct ss_ring *r)
{
    return r->len >= r->limit ? 0 : r->limit - r->len;
}

void ss__ring_poke(struct ss_ring *r, uint32_t off, const void *data, uint32_t len)
{
    if (!len)
        return;
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
    len = ss__min32(len, r->cap - r->len);   /* what ss__ring_reserve made room for */
    if (len) {
        ss__ring_poke(r, r->len, data, len);
        r->len += len;
    }
    return len;
}

int ss__ring_view(const struct ss_ring *r, uint32_t off, uint32_t len, struct iovec out[2])
{
    if (!len)
        return 0;
    uint32_t pos = (r->head + off) % r->cap;
    uint32_t first = ss__min32(len, r->cap - pos);
    out[0] = (struct iovec){r->buf + pos, first};
    if (len == first)
        return 1;
    out[1] = (struct iovec){r->buf, len - first};
    return 2;
}

void ss__ring_peek(const struct ss_ring *r, uint32_t off, void *out, uint32_t len)
{
    if (!len)
        return;
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
    if (!len)
        return;
    r->head = (r->head + len) % r->cap;
    r->len -= len;
    /* The head is never reset to 0 when the ring empties: out-of-order
     * bytes may be stored beyond the end, at positions relative to it. */
}

/* ---- generic socket calls ---------------------------------------------- */
int ss_stack_sock_set_cb(ss_stack *st, int sd, ss_stack_sock_cb cb, void *arg)
{
    struct ss_pcb *sk = ss__stack_sock_get(st, sd);
    if (!sk)
        return -EBADF;
    sk->cb = cb;
    sk->cb_arg = arg;
    return 0;
}

bool ss__tcp_can_send(const struct ss_pcb *sk)
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
    struct ss_pcb *sk = ss__stack_sock_get(st, sd);
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
    if (sk->fin_rcvd || sk->state == SS_TCP_CLOSED)
        ev |= SS_EV_RDHUP;
    if (ss__tcp_can_send(sk) && !ss__tcp_opening(sk) && ss__ring_free(&sk->snd))
        ev |= SS_EV_WRITABLE;
    if (sk->state >= SS_TCP_ESTABLISHED)
        ev |= SS_EV_CONNECTED;
    if (sk->state == SS_TCP_CLOSED)
        ev |= SS_EV_CLOSED | SS_EV_READABLE;
    return (int)ev;
}

int ss_stack_sock_error(ss_stack *st, int sd)
{
    struct ss_pcb *sk = ss__stack_sock_get(st, sd);
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
    struct ss_pcb *sk = ss__stack_sock_get(st, sd);
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
    case SS_SO_KEEPCNT: {
        uint32_t v;
        int err = set_in_range(&v, value, 1, opt == SS_SO_KEEPCNT ? 127 : 32767);
        if (err == 0 && opt == SS_SO_KEEPCNT)
            sk->keep_cnt = (uint8_t)v;
        else if (err == 0)
            sk->keep_intvl_s = (uint16_t)v;
        return err;
    }
    case SS_SO_SNDBUF:
        if (value < 1 || (uint32_t)value > st->cfg.sndbuf || (uint32_t)value < sk->snd.len)
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
    struct ss_pcb *sk = ss__stack_sock_get(st, sd);
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
    struct ss_pcb *sk = ss__stack_sock_get(st, sd);
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
    o->tlp_probes = sk->tlp_probes;
    o->timeouts = sk->timeouts;
    o->bytes_in = sk->bytes_in;
    o->bytes_out = sk->bytes_out;
    o->segs_in = sk->segs_in;
    o->segs_out = sk->segs_out;
    o->snd_queued = sk->snd.len;
    o->rcv_queued = sk->kind == SS_SK_TCP ? sk->rcv.len : sk->udp_q;
    if (sk->kind == SS_SK_TCP && sk->state == SS_TCP_LISTEN) { /* they share ccs' place */
        o->accept_queued = (uint32_t)sk->accept_q;
        o->syn_queued = (uint32_t)sk->syn_q;
    }
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
    struct ss_pcb *sk = ss__stack_sock_get(st, sd);
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

