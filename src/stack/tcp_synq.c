/* tcp_synq: the SYN queue. A SYN to a listener (RFC 9293 3.10.7.2, third)
 * makes a half-open entry, not a socket; the socket is made when the
 * handshake's ACK arrives. SYN cookies (tcp_syncookie.c) take over when
 * the queue is full, so that a flood of spoofed SYNs (RFC 4987) never
 * locks a peer out.
 *
 * Bounds: a listener holds at most its backlog of entries (ls->syn_q) and
 * of unaccepted connections (ls->accept_q); the stack at most
 * cfg.synq_max entries. An entry is found by the stack's keyed hash of its
 * 4-tuple (ss__tuple_hash) and timed by a min-heap of deadlines: nothing scans the table per packet
 * or per tick.
 *
 *   ss__synq_syn      a SYN in LISTEN: entry + SYN,ACK | cookie SYN,ACK |
 *                     drop (queue full, cookies off)
 *   ss__synq_input    a segment for an entry: the ACK makes the socket
 *                     (promote), a RST at RCV.NXT removes the entry, the
 *                     SYN again gets the SYN,ACK again; an ACK with no
 *                     entry is tried as a cookie
 *   ss__synq_timers   SYN,ACK retransmission with backoff, cfg.syn_retries
 *                     times (SS_STACK_SYNACK_RETRIES_PRESSURE for an entry
 *                     made beyond half the backlog), then the entry goes
 *
 * The SYN,ACK is built by the one segment builder from the TCB the
 * connection would have (passive_template): what the entry's socket will
 * be is exactly what the SYN,ACK promised.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sockstack/config.h"
#include "stack_int.h"

/* Room for one more entry: the table grows (16, doubling, up to
 * cfg.synq_max) as half-open connections come, so a stack that never
 * sees many pays nothing for the bound. false when the stack's bound is
 * reached or memory is short; the SYN then counts as a full queue. */
static bool synq_room(ss_stack *st)
{
    struct ss_synq *q = &st->synq;
    if (q->free >= 0 && q->cap)
        return true;
    if (q->cap >= st->cfg.synq_max)
        return false;
    uint32_t cap = q->cap ? 2 * q->cap : 16, h = 1;
    if (cap > st->cfg.synq_max)
        cap = st->cfg.synq_max;
    while (h < cap)
        h <<= 1;
    struct ss_synreq *req = realloc(q->req, cap * sizeof *req);
    if (!req)
        return false;
    q->req = req;
    uint32_t *heap = realloc(q->heap, cap * sizeof *heap);
    if (!heap)
        return false;
    q->heap = heap;
    int32_t *hash = malloc(h * sizeof *hash);
    if (!hash)
        return false;
    free(q->hash);
    q->hash = hash;
    q->hmask = h - 1;
    for (uint32_t i = 0; i < h; i++)
        hash[i] = -1;
    /* Every entry in use is in the heap: chain them anew. */
    for (uint32_t k = 0; k < q->n; k++) {
        struct ss_synreq *r = &req[heap[k]];
        uint32_t b = ss__tuple_hash(st, st->cfg.local_addr, r->lport, r->raddr, r->rport) & q->hmask;
        r->next = hash[b];
        hash[b] = (int32_t)heap[k];
    }
    for (uint32_t i = q->cap; i < cap; i++) {
        req[i] = (struct ss_synreq){.listener = -1, .next = i + 1 < cap ? (int32_t)i + 1 : -1};
    }
    q->free = (int32_t)q->cap;
    q->cap = cap;
    return true;
}

void ss__synq_free(ss_stack *st)
{
    free(st->synq.req);
    free(st->synq.hash);
    free(st->synq.heap);
}

/* ---- table: keyed hash on the 4-tuple ---------------------------------- */

static uint32_t tuple_hash(const ss_stack *st, uint32_t raddr, uint16_t rport, uint16_t lport)
{
    return ss__tuple_hash(st, st->cfg.local_addr, lport, raddr, rport) & st->synq.hmask;
}

static struct ss_synreq *synq_find(ss_stack *st, const struct ss_seg *seg)
{
    struct ss_synq *q = &st->synq;
    if (!q->cap)
        return NULL;
    for (int32_t i = q->hash[tuple_hash(st, seg->src, seg->sport, seg->dport)]; i >= 0;
         i = q->req[i].next) {
        struct ss_synreq *r = &q->req[i];
        if (r->raddr == seg->src && r->rport == seg->sport && r->lport == seg->dport &&
            r->laddr == seg->dst)
            return r;
    }
    return NULL;
}

/* ---- deadline heap, by (deadline, index) for a deterministic order ----- */

static bool heap_before(const struct ss_synq *q, uint32_t a, uint32_t b)
{
    uint64_t da = q->req[a].deadline, db = q->req[b].deadline;
    return da < db || (da == db && a < b);
}

static void heap_set(struct ss_synq *q, uint32_t pos, uint32_t idx)
{
    q->heap[pos] = idx;
    q->req[idx].heap_i = pos + 1;
}

static void heap_fix(struct ss_synq *q, uint32_t pos)
{
    uint32_t idx = q->heap[pos];
    while (pos > 0 && heap_before(q, idx, q->heap[(pos - 1) / 2])) {
        heap_set(q, pos, q->heap[(pos - 1) / 2]);
        pos = (pos - 1) / 2;
    }
    for (;;) {
        uint32_t c = 2 * pos + 1;
        if (c >= q->n)
            break;
        if (c + 1 < q->n && heap_before(q, q->heap[c + 1], q->heap[c]))
            c++;
        if (!heap_before(q, q->heap[c], idx))
            break;
        heap_set(q, pos, q->heap[c]);
        pos = c;
    }
    heap_set(q, pos, idx);
}

/* ---- entries ----------------------------------------------------------- */

static struct ss_synreq *synq_add(ss_stack *st, const struct ss_seg *syn)
{
    struct ss_synq *q = &st->synq;
    if (!q->cap || q->free < 0)
        return NULL;
    uint32_t idx = (uint32_t)q->free;
    struct ss_synreq *r = &q->req[idx];
    q->free = r->next;
    uint32_t h = tuple_hash(st, syn->src, syn->sport, syn->dport);
    r->next = q->hash[h];
    q->hash[h] = (int32_t)idx;
    r->laddr = syn->dst;
    r->raddr = syn->src;
    r->lport = syn->dport;
    r->rport = syn->sport;
    r->deadline = SS_NEVER;
    heap_set(q, q->n++, idx);
    return r;
}

static void synq_remove(ss_stack *st, struct ss_synreq *r)
{
    struct ss_synq *q = &st->synq;
    uint32_t idx = (uint32_t)(r - q->req);
    struct ss_pcb *ls = ss__stack_sock_get(st, r->listener);
    if (ls)
        ls->syn_q--;
    int32_t *p = &q->hash[tuple_hash(st, r->raddr, r->rport, r->lport)];
    while (*p != (int32_t)idx)
        p = &q->req[*p].next;
    *p = r->next;
    uint32_t pos = r->heap_i - 1, last = q->heap[--q->n];
    if (pos < q->n) {
        heap_set(q, pos, last);
        heap_fix(q, pos);
    }
    r->heap_i = 0;
    r->listener = -1;
    r->next = q->free;
    q->free = (int32_t)idx;
}

/* The SYN an entry remembers, as a segment (what ss__tcp_passive_tcb reads). */
static struct ss_seg req_syn(const struct ss_synreq *r)
{
    return (struct ss_seg){.src = r->raddr, .dst = r->laddr, .sport = r->rport,
                           .dport = r->lport, .seq = r->irs, .flags = SS_TCP_SYN,
                           .wnd = r->wnd, .mss = r->mss, .has_ws = r->has_ws, .ws = r->ws,
                           .sack_ok = r->sack_ok, .has_ts = r->has_ts, .ts_val = r->ts_val};
}

/* The TCB a connection from this SYN would have, on a copy of the
 * listener (its options, buffers and algorithm), in SYN-RECEIVED. */
static void passive_template(ss_stack *st, const struct ss_pcb *ls, const struct ss_seg *syn,
                             uint32_t iss, struct ss_pcb *t)
{
    *t = *ls;
    t->id = -1;
    t->user = false;
    t->pending_ev = 0;
    t->snd_up_valid = false;
    t->sx = (struct ss_pcbx *)&ss__sx_none;   /* never the listener's own */
    t->sx_sack = t->tlp_on = t->rcv_up_valid = false;
    ss__tcp_passive_tcb(st, t, syn, iss);
    t->state = SS_TCP_SYN_RECEIVED;
}

/* <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> from the template. */
static void send_synack(ss_stack *st, struct ss_pcb *t, bool rtx)
{
    ss__tcp_send_segment(st, t, t->iss, SS_TCP_SYN | SS_TCP_ACK, 0, rtx);
}

static void req_synack(ss_stack *st, const struct ss_pcb *ls, const struct ss_synreq *r, bool rtx)
{
    struct ss_pcb t;
    struct ss_seg syn = req_syn(r);
    passive_template(st, ls, &syn, r->iss, &t);
    send_synack(st, &t, rtx);
}

/* The socket of a completed handshake: a child of ls in SYN-RECEIVED
 * with our SYN,ACK outstanding, the ACK still to be processed
 * (tcp_input.c's synchronized states take it from here). NULL when the
 * accept queue is full or no socket is free: the ACK is dropped and the
 * peer's next segment tries again (as Linux). */
static struct ss_pcb *promote(ss_stack *st, struct ss_pcb *ls, const struct ss_seg *syn,
                               uint32_t iss, uint32_t retries, uint64_t sent_at)
{
    if (ls->accept_q >= ls->backlog) {
        st->stats.tcp_syn_queue_full++;
        ss__trace_drop(st, ls, SS_DROP_TCP_SYN_QUEUE_FULL, SS_IPPROTO_TCP, syn->src, syn->dst,
                       syn->sport, syn->dport);
        return NULL;
    }
    struct ss_pcb *sk = ss__stack_sock_alloc(st, SS_SK_TCP);
    if (!sk) {
        st->stats.tcp_no_memory++;
        ss__trace_drop(st, ls, SS_DROP_TCP_NO_MEMORY, SS_IPPROTO_TCP, syn->src, syn->dst,
                       syn->sport, syn->dport);
        return NULL;
    }
    sk->laddr = syn->dst;   /* the tuple first: add_child files it under it */
    sk->lport = syn->dport;
    sk->raddr = syn->src;
    sk->rport = syn->sport;
    ss__tcp_listener_add_child(st, ls, sk);
    ss__tcp_passive_tcb(st, sk, syn, iss);
    sk->snd_nxt = sk->snd_max = iss + 1;
    /* What the SYN,ACK advertised (a SYN's window is never scaled) and
     * acknowledged (Last.ACK.sent, RFC 7323 4.3). */
    sk->rcv_adv = sk->rcv_nxt + ss__min32(ss__tcp_rcv_window(sk), 65535);
    sk->last_ack_sent = sk->rcv_nxt;
    sk->timeouts = sk->backoff = retries;   /* RFC 6298 (5.7) after a timeout */
    if (sent_at != SS_NEVER && retries == 0) {   /* Karn: never a resent SYN,ACK */
        sk->rtt_timing = true;
        sk->rtt_seq = iss;
        sk->rtt_start = (uint32_t)sent_at;
    }
    ss__tcp_arm_rtx(st, sk);
    st->stats.tcp_passive_opens++;
    ss__set_state(st, sk, SS_TCP_SYN_RECEIVED);
    return sk;
}

/* ---- cookies ------------------------------------------------------------ */

/* The SYN whose cookie SYN,ACK went out, as the options we could keep:
 * without timestamps (ours or the peer's) neither window scaling nor SACK,
 * since only the TSval can carry them back. */
static struct ss_seg cookie_syn(const struct ss_pcb *ls, const struct ss_seg *seg)
{
    struct ss_seg syn = *seg;
    if (!(ls->opt_allow & SS_OPTF_TS) || !seg->has_ts) {
        syn.has_ts = false;
        syn.has_ws = false;
        syn.sack_ok = false;
    }
    return syn;
}

static void send_cookie(ss_stack *st, const struct ss_pcb *ls, const struct ss_seg *seg)
{
    struct ss_seg syn = cookie_syn(ls, seg);
    uint16_t mss;
    uint32_t iss = ss__syncookie_make(st, &syn, &mss);
    struct ss_pcb t;
    passive_template(st, ls, &syn, iss, &t);
    if (t.ts_ok) {
        uint32_t now = ss__ts_now(st, &t);
        t.ts_off += ss__syncookie_tsval(now, t.ws_ok, t.snd_wscale, t.sack_ok) - now;
    }
    st->stats.tcp_syncookies_sent++;
    st->synq.cookie_sent = true;
    st->synq.cookie_at = st->now;
    ss__trace_cookie(st, seg, SS_COOKIE_SENT, iss, mss);
    send_synack(st, &t, false);
}

/* Were cookies sent lately (so that an ACK may carry one)? Only then is
 * an ACK to a listener worth a hash (Linux: tcp_synq_no_recent_overflow). */
static bool cookies_recent(const ss_stack *st)
{
    if (st->cfg.syncookies == 2)
        return true;
    uint64_t life = 2ull * SS_STACK_SYNCOOKIE_PERIOD_S * 1000000;
    return st->cfg.syncookies && st->synq.cookie_sent && st->now - st->synq.cookie_at < life;
}

/* An ACK to a listener with no entry: a connection if it carries a valid
 * cookie; otherwise false and LISTEN answers it with a RST. */
static bool cookie_ack(ss_stack *st, struct ss_pcb *ls, const struct ss_seg *seg,
                       struct ss_pcb **conn)
{
    uint16_t mss;
    if (!ss__syncookie_check(st, seg, &mss)) {
        st->stats.tcp_syncookies_failed++;
        ss__trace_cookie(st, seg, SS_COOKIE_REJECTED, seg->ack - 1, 0);
        return false;
    }
    struct ss_seg syn = {.src = seg->src, .dst = seg->dst, .sport = seg->sport,
                         .dport = seg->dport, .seq = seg->seq - 1, .flags = SS_TCP_SYN,
                         .wnd = seg->wnd, .mss = mss};
    if ((ls->opt_allow & SS_OPTF_TS) && seg->has_ts) {
        syn.has_ts = true;
        syn.ts_val = seg->ts_val;
        ss__syncookie_ts_decode(seg->ts_ecr, &syn.has_ws, &syn.ws, &syn.sack_ok);
    }
    st->stats.tcp_syncookies_recv++;
    ss__trace_cookie(st, seg, SS_COOKIE_ACCEPTED, seg->ack - 1, mss);
    *conn = promote(st, ls, &syn, seg->ack - 1, 0, SS_NEVER);
    return true;
}

/* ---- input ---------------------------------------------------------------- */

static uint32_t synack_rto_us(const ss_stack *st, uint32_t retries)
{
    uint64_t rto = (uint64_t)st->cfg.rto_initial_ms * 1000 << (retries < 20 ? retries : 20);
    return (uint32_t)ss__min64(rto, (uint64_t)st->cfg.rto_max_ms * 1000);
}

void ss__synq_syn(ss_stack *st, struct ss_pcb *ls, const struct ss_seg *seg)
{
    /* Connections nobody accepts: no new ones, cookie or not (as Linux). */
    bool accept_full = ls->accept_q >= ls->backlog;
    bool full = ls->syn_q >= ls->backlog || !synq_room(st);
    if (!accept_full && (st->cfg.syncookies == 2 || (full && st->cfg.syncookies == 1))) {
        send_cookie(st, ls, seg);
        return;
    }
    if (accept_full || full) {
        /* Dropped silently; the peer's SYN retransmission tries again. */
        st->stats.tcp_syn_queue_full++;
        ss__trace_drop(st, ls, SS_DROP_TCP_SYN_QUEUE_FULL, SS_IPPROTO_TCP, seg->src, seg->dst,
                       seg->sport, seg->dport);
        return;
    }
    struct ss_synreq *r = synq_add(st, seg);
    r->listener = ls->id;
    r->irs = seg->seq;
    r->iss = ss__isn(st, seg->dst, seg->dport, seg->src, seg->sport, st->now);
    r->wnd = seg->wnd;
    r->mss = seg->mss;
    r->has_ws = seg->has_ws;
    r->ws = seg->ws;
    r->sack_ok = seg->sack_ok;
    r->has_ts = seg->has_ts;
    r->ts_val = seg->ts_val;
    r->retries = 0;
    /* Made while the queue is more than half full: fewer retries, so a
     * flood's entries give their place up sooner (Linux prunes young
     * requests so). Decided now, so the order of expiry changes nothing. */
    r->max_retries = st->cfg.syn_retries;
    if (2 * ((uint32_t)ls->syn_q + 1) > (uint32_t)ls->backlog)
        r->max_retries = ss__min32(r->max_retries, SS_STACK_SYNACK_RETRIES_PRESSURE);
    r->sent_at = st->now;
    r->deadline = st->now + synack_rto_us(st, 0);
    heap_fix(&st->synq, r->heap_i - 1);
    ls->syn_q++;
    req_synack(st, ls, r, false);
}

bool ss__synq_input(ss_stack *st, struct ss_pcb *ls, const struct ss_seg *seg,
                    struct ss_pcb **conn)
{
    *conn = NULL;
    struct ss_synreq *r = synq_find(st, seg);
    if (!r) {
        if ((seg->flags & (SS_TCP_SYN | SS_TCP_RST | SS_TCP_ACK)) == SS_TCP_ACK &&
            cookies_recent(st))
            return cookie_ack(st, ls, seg, conn);
        return false;
    }
    if (seg->flags & SS_TCP_RST) {
        /* RFC 5961 3.2: only a RST at exactly RCV.NXT resets; RFC 9293
         * 3.10.7.4: a passive OPEN returns to LISTEN (the entry goes). */
        st->stats.tcp_rst_in++;
        if (seg->seq == r->irs + 1)
            synq_remove(st, r);
        else
            ss__trace_drop(st, ls, SS_DROP_TCP_RST_INVALID, SS_IPPROTO_TCP, seg->src, seg->dst,
                           seg->sport, seg->dport);
        return true;
    }
    if (seg->flags & SS_TCP_ACK) {
        if (seg->ack != r->iss + 1 || (seg->flags & SS_TCP_SYN)) {
            /* Not our SYN,ACK's acknowledgment: <SEQ=SEG.ACK><CTL=RST>. */
            ss__trace_drop(st, ls, SS_DROP_TCP_BAD_ACK, SS_IPPROTO_TCP, seg->src, seg->dst,
                           seg->sport, seg->dport);
            ss__tcp_send_rst_for(st, seg);
            return true;
        }
        struct ss_seg syn = req_syn(r);
        uint32_t iss = r->iss, retries = r->retries;
        uint64_t sent_at = r->sent_at;
        struct ss_pcb *sk = promote(st, ls, &syn, iss, retries, sent_at);
        if (sk)
            synq_remove(st, r);
        *conn = sk;
        return true;
    }
    if ((seg->flags & SS_TCP_SYN) && seg->seq == r->irs) {
        req_synack(st, ls, r, true);   /* our SYN,ACK was lost: again */
        return true;
    }
    ss__trace_drop(st, ls, SS_DROP_TCP_NO_FLAGS, SS_IPPROTO_TCP, seg->src, seg->dst, seg->sport,
                   seg->dport);
    return true;
}

/* ---- timers --------------------------------------------------------------- */

uint64_t ss__synq_timers(ss_stack *st, uint64_t now)
{
    struct ss_synq *q = &st->synq;
    while (q->n && q->req[q->heap[0]].deadline <= now) {
        struct ss_synreq *r = &q->req[q->heap[0]];
        struct ss_pcb *ls = ss__stack_sock_get(st, r->listener);
        if (!ls || r->retries >= r->max_retries) {
            st->stats.tcp_timeouts++;
            st->stats.tcp_synq_timeouts++;
            synq_remove(st, r);
            continue;
        }
        r->retries++;
        r->deadline = now + synack_rto_us(st, r->retries);
        heap_fix(q, r->heap_i - 1);
        req_synack(st, ls, r, true);
    }
    return q->n ? q->req[q->heap[0]].deadline : SS_NEVER;
}

void ss__synq_flush(ss_stack *st, int sd)
{
    for (uint32_t i = 0; i < st->synq.cap; i++)
        if (st->synq.req[i].listener == sd)
            synq_remove(st, &st->synq.req[i]);
}
