/* tcp_opt: TCP options (RFC 9293 3.1, 3.7.1), window scaling and
 * timestamps (RFC 7323), selective acknowledgment (RFC 2018).
 *
 *   parse / write           ss__tcp_parse_options, ss__tcp_write_options
 *   negotiation             ss__opt_syn_out (before our SYN),
 *                           ss__opt_syn_in (the peer's SYN or SYN,ACK):
 *                           each option only if both SYNs carry it
 *   window scale (7323 2)   ss__opt_snd_wnd (SEG.WND << Snd.Wind.Shift,
 *                           never on a SYN); the receive side scales in
 *                           ss__tcp_rcv_window / ss__tcp_send_segment
 *   timestamps (7323 3-5)   ss__ts_now (TSval clock), ss__ts_paws (5.3 R1),
 *                           ss__ts_update (4.3 (2), 5.3 R3),
 *                           ss__ts_rtt (RTTM, 4.1 with RFC 6298)
 *   SACK, receiver (2018 4) sack_blocks_out: blocks from sk->sx->ooo, the one
 *                           that took the latest segment first
 *   SACK, sender (2018 5)   the scoreboard ss__sack_* (see stack_int.h)
 */
#include <stdlib.h>
#include <string.h>

#include "sockstack/config.h"
#include "stack_int.h"

enum {
    OPT_EOL = 0, OPT_NOP = 1, OPT_MSS = 2, OPT_WS = 3, OPT_SACK_OK = 4, OPT_SACK = 5,
    OPT_TS = 8
};

#define WS_MAX 14
#define TS_ALIGNED 12   /* nop, nop, TS */   /* RFC 7323 2.3: larger shifts are taken as 14 */
/* RFC 7323 5.5: TS.Recent is invalid after 24 days of idleness. */
#define PAWS_IDLE_US (24ull * 24 * 3600 * 1000000)

/* The TCP header at t (len bytes: header, options, data) into seg:
 * ports, seq, ack, flags, window, urgent pointer (set even when the
 * header turns out bad, so the drop can be traced), then the options and
 * the data. Returns the data offset, or -1 when it is out of range or
 * the option list is malformed. Shared by the input path and the
 * decoder of captured segments (ss_tcp_seg_decode). */
int ss__tcp_parse_header(const uint8_t *t, size_t len, struct ss_seg *seg)
{
    if (len < SS_TCP_HDR)
        return -1;
    size_t doff = (size_t)(t[12] >> 4) * 4;
    seg->sport = ss__get16(t);
    seg->dport = ss__get16(t + 2);
    seg->seq = ss__get32(t + 4);
    seg->ack = ss__get32(t + 8);
    seg->flags = t[13];
    seg->wnd = ss__get16(t + 14);
    seg->urp = ss__get16(t + 18);
    if (doff < SS_TCP_HDR || doff > len ||
        ss__tcp_parse_options(t + SS_TCP_HDR, doff - SS_TCP_HDR, seg) < 0)
        return -1;
    seg->opt_len = (uint8_t)(doff - SS_TCP_HDR);
    seg->opt = t + SS_TCP_HDR;
    seg->data = t + doff;
    seg->len = (uint32_t)(len - doff);
    return (int)doff;
}

/* Parse options into seg. Unknown options are skipped by their length
 * (MUST-6: any option may appear; MUST-7: unknown ones are ignored).
 * Options of the wrong length are ignored too. Returns 0, or -1 for a
 * malformed list (length < 2 or past the end). */
int ss__tcp_parse_options(const uint8_t *opt, size_t len, struct ss_seg *seg)
{
    size_t i = 0;
    bool syn = (seg->flags & SS_TCP_SYN) != 0;
    while (i < len) {
        uint8_t kind = opt[i];
        if (kind == OPT_EOL)
            break;
        if (kind == OPT_NOP) {
            i++;
            continue;
        }
        if (i + 1 >= len)
            return -1;
        uint8_t olen = opt[i + 1];
        if (olen < 2 || i + olen > len)
            return -1;
        const uint8_t *v = opt + i + 2;
        /* MSS, WS and SACK-permitted only count on a SYN (RFC 9293 3.2,
         * RFC 7323 2.2, RFC 2018 2). */
        if (kind == OPT_MSS && olen == 4 && syn) {
            seg->mss = ss__get16(v);
        } else if (kind == OPT_WS && olen == 3 && syn) {
            seg->has_ws = true;
            seg->ws = v[0];
        } else if (kind == OPT_SACK_OK && olen == 2 && syn) {
            seg->sack_ok = true;
        } else if (kind == OPT_TS && olen == 10) {
            seg->has_ts = true;
            seg->ts_val = ss__get32(v);
            seg->ts_ecr = ss__get32(v + 4);
        } else if (kind == OPT_SACK && olen >= 10 && (olen - 2) % 8 == 0) {
            seg->nsack = 0;
            for (size_t b = 0; b < (size_t)(olen - 2) / 8 && b < SS_SACK_BLOCKS_MAX; b++) {
                seg->sack[b].start = ss__get32(v + 8 * b);
                seg->sack[b].end = ss__get32(v + 8 * b + 4);
                seg->nsack++;
            }
        }
        i += olen;
    }
    return 0;
}

/* ---- negotiation ----------------------------------------------------------- */

/* The shift that lets the receive buffer's size fit the 16-bit field. */
static uint8_t ws_for(uint32_t bytes)
{
    uint8_t s = 0;
    while (s < WS_MAX && (bytes >> s) > 65535)
        s++;
    return s;
}

/* Before our SYN (active open) or SYN,ACK (passive): what we will offer. */
void ss__opt_syn_out(ss_stack *st, struct ss_pcb *sk)
{
    sk->ws_offer = ws_for(sk->rcv.limit);
    /* A per-connection offset, so TSvals say nothing about the host's
     * uptime (RFC 7323 7.1): a hash of the tuple, the other way round
     * from the ISN's. */
    sk->ts_off = ss__isn(st, sk->raddr, sk->rport, sk->laddr, sk->lport, 0);
}

/* The peer's SYN (LISTEN) or SYN,ACK (SYN-SENT): an option is in use
 * when we allow it and the peer's SYN carries it; a SYN,ACK carries only
 * what our SYN offered. */
void ss__opt_syn_in(ss_stack *st, struct ss_pcb *sk, const struct ss_seg *seg)
{
    sk->ws_ok = (sk->opt_allow & SS_OPTF_WSCALE) && seg->has_ws;
    sk->ts_ok = (sk->opt_allow & SS_OPTF_TS) && seg->has_ts;
    sk->sack_ok = (sk->opt_allow & SS_OPTF_SACK) && seg->sack_ok;
    /* RFC 7323 2.2: both shifts or none. */
    sk->snd_wscale = sk->ws_ok ? (seg->ws > WS_MAX ? WS_MAX : seg->ws) : 0;
    sk->rcv_wscale = sk->ws_ok ? sk->ws_offer : 0;
    if (sk->ts_ok) {
        sk->ts_recent = seg->ts_val;
        sk->ts_recent_at = st->now;
        /* The MSS counts no options (RFC 6691): every segment now carries
         * 12 bytes of TS, so it carries 12 bytes less data (as Linux). */
        if (sk->snd_mss > 64 + TS_ALIGNED)
            sk->snd_mss -= TS_ALIGNED;
    }
}

/* The peer's window from a segment: SEG.WND << Snd.Wind.Shift, except on
 * a SYN (RFC 7323 2.2: the window of a SYN is never scaled). */
uint32_t ss__opt_snd_wnd(const struct ss_pcb *sk, const struct ss_seg *seg)
{
    if (seg->flags & SS_TCP_SYN)
        return seg->wnd;
    return (uint32_t)seg->wnd << sk->snd_wscale;
}

/* ---- timestamps ------------------------------------------------------------- */

uint32_t ss__ts_now(const ss_stack *st, const struct ss_pcb *sk)
{
    return (uint32_t)(st->now / 1000) + sk->ts_off;
}

/* PAWS (RFC 7323 5.3 R1): a non-RST segment with SEG.TSval < TS.Recent
 * is an old duplicate while TS.Recent is valid (5.5: not after 24 days
 * idle, when TS.Recent is taken from the segment instead). Returns true
 * when the segment is to be dropped (the caller ACKs it). */
bool ss__ts_paws(ss_stack *st, struct ss_pcb *sk, const struct ss_seg *seg)
{
    if (!sk->ts_ok || !seg->has_ts || (seg->flags & SS_TCP_RST))
        return false;
    if (!SEQ_LT(seg->ts_val, sk->ts_recent))
        return false;
    if (st->now - sk->ts_recent_at > PAWS_IDLE_US) {
        sk->ts_recent = seg->ts_val;
        sk->ts_recent_at = st->now;
        return false;
    }
    return true;
}

/* RFC 7323 4.3 (2) / 5.3 R3: an acceptable segment with SEG.TSval >=
 * TS.Recent and SEG.SEQ =< Last.ACK.sent sets TS.Recent, so the echo is
 * the TSval of the earliest segment an ACK acknowledges. seq is the
 * segment's sequence number as it arrived. */
void ss__ts_update(ss_stack *st, struct ss_pcb *sk, const struct ss_seg *seg, uint32_t seq)
{
    if (!sk->ts_ok || !seg->has_ts)
        return;
    if (SEQ_GEQ(seg->ts_val, sk->ts_recent) && SEQ_LEQ(seq, sk->last_ack_sent)) {
        sk->ts_recent = seg->ts_val;
        sk->ts_recent_at = st->now;
    }
}

/* RTTM (RFC 7323 4.1, 4.2 with RFC 6298): an ACK of new data that echoes
 * a TSval gives a sample, now - TSecr, whether or not the segment was
 * retransmitted (the echo says which transmission it answers). TSecr 0
 * is taken as "no echo" (RFC 7323 3.2: it may be 0 when not valid). The
 * clock ticks in milliseconds: a sample is at least one tick (as Linux).
 * Returns true when a sample was taken. */
bool ss__ts_rtt(ss_stack *st, struct ss_pcb *sk, const struct ss_seg *seg)
{
    if (!sk->ts_ok || !seg->has_ts || seg->ts_ecr == 0)
        return false;
    uint32_t d = ss__ts_now(st, sk) - seg->ts_ecr;
    if (d > 0x7fffffffu)   /* an echo from the future: not ours */
        return false;
    ss__tcp_rtt_sample(st, sk, (uint64_t)(d ? d : 1) * 1000);
    return true;
}

/* ---- writing ------------------------------------------------------------------ */

static size_t put_ts(const ss_stack *st, const struct ss_pcb *sk, uint8_t *p, uint32_t ecr)
{
    p[0] = OPT_TS;
    p[1] = 10;
    ss__put32(p + 2, ss__ts_now(st, sk));
    ss__put32(p + 6, ecr);
    return 10;
}

/* SACK blocks for the out-of-order ranges, most recently filled first
 * (RFC 2018 4: the first block holds the segment that triggered the
 * ACK, the others follow by recency). Writes up to max blocks (0: none). */
static size_t sack_blocks_out(const struct ss_pcb *sk, uint8_t *p, size_t max)
{
    uint32_t taken[SS_SACK_BLOCKS_MAX];
    size_t n = 0;
    while (n < max && n < sk->sx->ooo_n) {
        uint32_t best = UINT32_MAX;
        for (uint32_t i = 0; i < sk->sx->ooo_n; i++) {
            bool used = false;
            for (size_t k = 0; k < n; k++)
                used |= taken[k] == i;
            if (!used && (best == UINT32_MAX || sk->sx->ooo[i].stamp - sk->sx->ooo[best].stamp < 0x80000000u))
                best = i;
        }
        taken[n++] = best;
    }
    if (n == 0)
        return 0;
    p[0] = OPT_NOP;
    p[1] = OPT_NOP;
    p[2] = OPT_SACK;
    p[3] = (uint8_t)(2 + 8 * n);
    for (size_t k = 0; k < n; k++) {
        ss__put32(p + 4 + 8 * k, sk->sx->ooo[taken[k]].start);
        ss__put32(p + 8 + 8 * k, sk->sx->ooo[taken[k]].end);
    }
    return 4 + 8 * n;
}

/* The options of a segment sk sends (room for 40 bytes at p):
 *   SYN:      mss, then what sk allows, in Linux' layout:
 *             mss,sackOK,TS,nop,wscale / mss,nop,nop,TS,nop,wscale /
 *             mss,nop,nop,sackOK,nop,wscale
 *   SYN,ACK:  the same, with only what the peer's SYN offered
 *   other:    nop,nop,TS once negotiated (never on RST, RFC 7323 3.2);
 *             nop,nop,SACK blocks while out-of-order data is held (on a
 *             segment with len bytes of data only as many as fit in the
 *             peer's MSS)
 * Returns the length (a multiple of 4). */
size_t ss__tcp_write_options(ss_stack *st, const struct ss_pcb *sk, uint8_t *p, uint8_t flags,
                             uint32_t len)
{
    size_t n = 0;
    if (flags & SS_TCP_RST)
        return 0;
    if (flags & SS_TCP_SYN) {
        bool synack = (flags & SS_TCP_ACK) != 0;
        bool ws = synack ? sk->ws_ok : (sk->opt_allow & SS_OPTF_WSCALE);
        bool ts = synack ? sk->ts_ok : (sk->opt_allow & SS_OPTF_TS);
        bool sack = synack ? sk->sack_ok : (sk->opt_allow & SS_OPTF_SACK);
        p[n++] = OPT_MSS;
        p[n++] = 4;
        ss__put16(p + n, sk->rcv_mss);
        n += 2;
        if (sack && ts) {
            p[n++] = OPT_SACK_OK;
            p[n++] = 2;
        } else if (ts || sack) {
            p[n++] = OPT_NOP;
            p[n++] = OPT_NOP;
            if (sack) {
                p[n++] = OPT_SACK_OK;
                p[n++] = 2;
            }
        }
        if (ts)
            n += put_ts(st, sk, p + n, synack ? sk->ts_recent : 0);
        if (ws) {
            p[n++] = OPT_NOP;
            p[n++] = OPT_WS;
            p[n++] = 3;
            p[n++] = sk->ws_offer;
        }
        return n;
    }
    if (sk->ts_ok) {
        p[n++] = OPT_NOP;
        p[n++] = OPT_NOP;
        n += put_ts(st, sk, p + n, sk->ts_recent);
    }
    if (sk->sack_ok && sk->sx->ooo_n && (flags & SS_TCP_ACK)) {
        /* As many blocks as fit in 40 bytes and, beside data, in the
         * segment size the peer's MSS allows (SND.MSS + the TS bytes). */
        size_t max = sk->ts_ok ? 3 : 4;
        uint32_t room = sk->snd_mss + (uint32_t)n;
        uint32_t fit = room > len + n + 4 ? (room - len - (uint32_t)n - 4) / 8 : 0;
        if (len && fit < max)
            max = fit;
        n += sack_blocks_out(sk, p + n, max);
    }
    return n;
}

/* ---- the SACK scoreboard ------------------------------------------------------ */

void ss__sack_clear(struct ss_pcb *sk)
{
    if (ss__sx_taken(sk))
        sk->sx->sb_n = 0;
}

/* Drop everything at or below una: ranges wholly below go, a range
 * across una is cut. */
static void sb_prune(struct ss_pcb *sk, uint32_t una)
{
    if (!sk->sx->sb_n)
        return;
    uint32_t k = 0;
    for (uint32_t i = 0; i < sk->sx->sb_n; i++) {
        struct ss_sack_blk b = sk->sx->sb[i];
        if (SEQ_LEQ(b.end, una))
            continue;
        if (SEQ_LT(b.start, una))
            b.start = una;
        sk->sx->sb[k++] = b;
    }
    sk->sx->sb_n = k;
}

/* Insert [s, e) keeping the table sorted, disjoint and not touching. */
static void sb_insert(struct ss_pcb *sk, uint32_t max, uint32_t s, uint32_t e)
{
    if (!max || !ss__sx_own(sk))
        return;   /* as when the table cannot grow, below */
    if (sk->sx->sb_n == sk->sx->sb_cap && sk->sx->sb_cap < max) {
        uint32_t cap = sk->sx->sb_cap ? 2 * sk->sx->sb_cap : SS_STACK_SACK_MIN;
        cap = cap < max ? cap : max;
        struct ss_sack_blk *nb = realloc(sk->sx->sb, cap * sizeof *nb);
        if (nb) {
            sk->sx->sb = nb;
            sk->sx->sb_cap = cap;
        }
    }
    if (!sk->sx->sb_cap)
        return;   /* the range only looks unSACKed: safe, at worst sent again */
    max = sk->sx->sb_cap;
    uint32_t i = 0;
    while (i < sk->sx->sb_n && SEQ_LT(sk->sx->sb[i].end, s))
        i++;
    /* sb[i..j) overlap or touch [s, e): merge them into one. */
    uint32_t j = i;
    while (j < sk->sx->sb_n && SEQ_LEQ(sk->sx->sb[j].start, e)) {
        if (SEQ_LT(sk->sx->sb[j].start, s))
            s = sk->sx->sb[j].start;
        if (SEQ_GT(sk->sx->sb[j].end, e))
            e = sk->sx->sb[j].end;
        j++;
    }
    if (j > i) {
        sk->sx->sb[i] = (struct ss_sack_blk){s, e};
        memmove(&sk->sx->sb[i + 1], &sk->sx->sb[j], (sk->sx->sb_n - j) * sizeof sk->sx->sb[0]);
        sk->sx->sb_n -= j - i - 1;
        return;
    }
    if (sk->sx->sb_n == max) {
        if (i == max)   /* above everything held: forget the new one */
            return;
        sk->sx->sb_n--;     /* forget the highest range */
    }
    memmove(&sk->sx->sb[i + 1], &sk->sx->sb[i], (sk->sx->sb_n - i) * sizeof sk->sx->sb[0]);
    sk->sx->sb[i] = (struct ss_sack_blk){s, e};
    sk->sx->sb_n++;
}

bool ss__sack_update(ss_stack *st, struct ss_pcb *sk, const struct ss_seg *seg)
{
    if (!sk->sack_ok || !(seg->flags & SS_TCP_ACK))
        return false;
    uint32_t lo = SEQ_GT(seg->ack, sk->snd_una) && SEQ_LEQ(seg->ack, sk->snd_max)
                      ? seg->ack : sk->snd_una;
    sb_prune(sk, lo);
    uint32_t before = ss__sack_sacked_bytes(sk);
    for (uint32_t b = 0; b < seg->nsack; b++) {
        uint32_t s = seg->sack[b].start, e = seg->sack[b].end;
        if (!SEQ_LT(s, e) || SEQ_LT(s, lo) || SEQ_GT(e, sk->snd_max))
            continue;   /* invalid, below the cumulative ACK (D-SACK) or never sent */
        sb_insert(sk, st->cfg.sack_max, s, e);
    }
    return ss__sack_sacked_bytes(sk) > before;
}

bool ss__sack_is_sacked(const struct ss_pcb *sk, uint32_t seq)
{
    for (uint32_t i = 0; i < sk->sx->sb_n; i++)
        if (SEQ_IN(seq, sk->sx->sb[i].start, sk->sx->sb[i].end))
            return true;
    return false;
}

uint32_t ss__sack_sacked_bytes(const struct ss_pcb *sk)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < sk->sx->sb_n; i++)
        n += sk->sx->sb[i].end - sk->sx->sb[i].start;
    return n;
}

uint32_t ss__sack_sacked_above(const struct ss_pcb *sk, uint32_t seq)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < sk->sx->sb_n; i++) {
        const struct ss_sack_blk *b = &sk->sx->sb[i];
        if (SEQ_LEQ(b->end, seq + 1))
            continue;
        n += SEQ_GT(b->start, seq) ? b->end - b->start : b->end - (seq + 1);
    }
    return n;
}

uint32_t ss__sack_ranges_above(const struct ss_pcb *sk, uint32_t seq)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < sk->sx->sb_n; i++)
        n += SEQ_GT(sk->sx->sb[i].start, seq);
    return n;
}

bool ss__sack_is_lost(const struct ss_pcb *sk, uint32_t seq, uint32_t dupthresh)
{
    if (dupthresh == 0)
        return true;
    return ss__sack_ranges_above(sk, seq) >= dupthresh ||
           ss__sack_sacked_above(sk, seq) > (dupthresh - 1) * (uint32_t)sk->snd_mss;
}

uint32_t ss__sack_high(const struct ss_pcb *sk)
{
    return sk->sx->sb_n ? sk->sx->sb[sk->sx->sb_n - 1].end : sk->snd_una;
}

bool ss__sack_next_hole(const struct ss_pcb *sk, uint32_t seq, uint32_t *start, uint32_t *end)
{
    for (uint32_t i = 0; i < sk->sx->sb_n; i++) {
        const struct ss_sack_blk *b = &sk->sx->sb[i];
        if (SEQ_LT(seq, b->start)) {
            *start = seq;
            *end = b->start;
            return true;
        }
        if (SEQ_LT(seq, b->end))
            seq = b->end;   /* inside a SACKed range: the hole starts after it */
    }
    return false;
}

uint32_t ss__sack_count(const struct ss_pcb *sk)
{
    return sk->sx->sb_n;
}

struct ss_sack_blk ss__sack_range(const struct ss_pcb *sk, uint32_t i)
{
    return i < sk->sx->sb_n ? sk->sx->sb[i] : (struct ss_sack_blk){0, 0};
}
