/* tcp_cc: loss recovery shared by every congestion-control algorithm.
 *
 * An algorithm (tcp_cc_newreno.c, tcp_cc_cubic.c) says how cwnd grows on
 * an ACK and what ssthresh becomes on a loss (struct ss__cc_ops). This
 * file decides when those happen, and what is resent:
 *
 *   RFC 6928           initial window                   ss__cc_start()
 *   RFC 5681 2         duplicate ACK (the definition)   tcp_input.c check_ack()
 *   RFC 5681 3.1       slow start, byte counting        ss__cc_slow_start()
 *     + RFC 3465 2       (L = 2*SMSS)
 *     + RFC 9406         HyStart++ in the initial one     hystart()
 *     + HyStart's ACK train (Linux's tcp_cubic.c)         ack_train_full()
 *   RFC 5681 3.1 (4)   RTO: ssthresh, loss window       ss__cc_on_timeout()
 *   RFC 5681 3.2       fast retransmit on the 3rd       ss__cc_on_dupack()
 *     + RFC 6582 3.2     duplicate ACK, fast recovery     enter_recovery()
 *                        (recover = SND.MAX)
 *   RFC 6582 3.2 (3)   full ACK ends recovery           ss__cc_on_ack()
 *   RFC 6582 3.2 (5)   partial ACK: resend the next     ss__cc_on_ack()
 *                        hole, deflate cwnd
 *   RFC 3042           limited transmit                 ss__cc_window()
 *   RFC 5681 4.1       restart after idle               ss__cc_before_send()
 *   RFC 6675 (SACK negotiated): loss recovery on the scoreboard
 *     5 entry            DupThresh dup ACKs or IsLost     ss__cc_on_dupack()
 *                          (SND.UNA)
 *     5 (4.2)            cwnd = ssthresh, no inflation,   enter_recovery()
 *                          no deflation
 *     4 SetPipe          pipe                             ss__cc_pipe()
 *     4 NextSeg (1),(3)  the first hole above HighRxt     ss__cc_next_hole()
 *                          (rule (2), new data, is
 *                          tcp_output.c's send_next())
 *     5 exit             SND.UNA >= RecoveryPoint         ss__cc_on_ack()
 *   RFC 6937 PRR       how much may go out per ACK in   ss__cc_on_delivered()
 *                        SACK recovery (cwnd = pipe +
 *                        sndcnt), instead of bursts
 *   RFC 8985 7         tail loss probe: PTO, the probe  tcp_timer.c, tcp_output.c
 *                        the probe repaired a loss:     ss__cc_tlp_ack()
 *                        cwnd reduction (7.4)
 *   RFC 8985 6         RACK for SND.UNA: SRTT/4 after   arm_reo(),
 *                        the first duplicate ACK, it is   ss__cc_reo_timeout()
 *                        lost (on the PTO's timer)
 *   RFC 8985 6.2       RACK in recovery: reo_wnd after  ss__cc_rack_arm(),
 *                        an ACK, the holes below its      ss__cc_reo_timeout(),
 *                        highest SACK are lost; after a   rack_lost(),
 *                        retransmission arrived, what     rack_sent_before()
 *                        was sent before it
 *   a lost retransmission (no RFC 6675 rule): by         ss__cc_rxt_update(),
 *     sequence as in draft-scheffenegger-tcpm-lrd        ss__cc_lost_rxt()
 *     (DupThresh segments sent after it arrived, it
 *     did not), or by time as RFC 8985 6.2 (one sent
 *     after it arrived, and SRTT + reo_wnd passed)
 *
 * Nothing here builds a segment: a retransmission is a mark (rtx_mark /
 * rtx_seq for one segment, SND.NXT pulled back for an RTO) that
 * tcp_output.c's send_next() turns into a segment, like new data.
 * ss__cc_trace() emits SS_TRACE_CC with the real state and what changed it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sockstack/config.h"
#include "stack_int.h"

/* RFC 5681 / RFC 6675 DupThresh: a constant of the RFCs, not a tunable. */
#define DUPTHRESH 3u

/* RFC 8985 6.2 step 4: reo_wnd = RACK.min_RTT / 4. The stack keeps no
 * min RTT: SRTT / 4, the larger and so the more careful, and at least the
 * clock granularity of 1 ms. */
static uint32_t reo_wnd(const struct ss_pcb *sk)
{
    return sk->srtt_us / 4 > 1000 ? sk->srtt_us / 4 : 1000;
}

/* Has the time t (the low 32 bits of st->now, as hystart's) come? */
static bool reached(const ss_stack *st, uint32_t t)
{
    return (int32_t)((uint32_t)st->now - t) >= 0;
}

/* t as an absolute time for a timer (now if it has come). */
static uint64_t due_at(const ss_stack *st, uint32_t t)
{
    int32_t d = (int32_t)(t - (uint32_t)st->now);
    return d > 0 ? st->now + (uint32_t)d : st->now;
}

/* RACK's state in recovery lives with the SACK tables (the SACK part of
 * struct ss_pcbx): without them there are no holes, and nothing is lost
 * by time. */
static uint32_t rack_end(const struct ss_pcb *sk)
{
    return sk->sx_sack ? sk->sx->rack_end : sk->snd_una;
}
static void set_rack_end(struct ss_pcb *sk, uint32_t v)
{
    if (sk->sx_sack)
        sk->sx->rack_end = v;
}

/* RACK in recovery (RFC 8985 6.2): is the unSACKed octet at s lost by
 * time? Everything below rack_end was sent before a segment that
 * arrived reo_wnd ago or longer (ss__cc_reo_timeout). */
static bool rack_lost(const struct ss_pcb *sk, uint32_t s)
{
    return sk->cc_phase == SS_CC_RECOVERY && SEQ_LT(s, rack_end(sk));
}

/* Where RACK's holes start: above what was resent (the retransmissions
 * are timed on their own, ss__cc_rxt_update) and what is lost already. */
static uint32_t rack_from(const struct ss_pcb *sk)
{
    uint32_t f = SEQ_GT(sk->high_rxt, sk->snd_una) ? sk->high_rxt : sk->snd_una;
    uint32_t end = rack_end(sk);
    return SEQ_GT(end, f) ? end : f;
}

/* Past the retransmissions still on their way that cover seq: a
 * retransmission is remembered (rx) until it arrives or is found lost,
 * and until then it is not sent again, as RFC 8985 resends only what is
 * marked lost. This holds across recoveries: one that ends and another
 * that starts on the same ACK, with the first one's retransmissions of
 * the new holes still in flight, resent them all at once, and when the
 * first copies arrived, RACK took the second copies' marks for what had
 * been delivered (bench/stack/run, 100 ms and 1%: 339 retransmissions
 * for 25 drops). */
static uint32_t past_rxt_in_flight(const struct ss_pcb *sk, uint32_t seq)
{
    for (uint32_t i = 0; i < sk->rx_n; i++) {
        const struct ss_rxt *r = &sk->rx[i];
        if (!r->lost && SEQ_LEQ(r->seq, seq) && SEQ_LT(seq, r->end)) {
            seq = r->end;
            i = UINT32_MAX;   /* from the start: another may begin there */
        }
    }
    return seq;
}

/* Forget the retransmissions that arrived (acknowledged, or SACKed from
 * end to end); the highest mark among them, or SND.UNA. */
static uint32_t forget_arrived(struct ss_pcb *sk)
{
    uint32_t k = 0, before = sk->snd_una;
    for (uint32_t i = 0; i < sk->rx_n; i++) {
        struct ss_rxt r = sk->rx[i];
        if (SEQ_LEQ(r.end, sk->snd_una) ||
            (ss__sack_is_sacked(sk, r.seq) && ss__sack_is_sacked(sk, r.end - 1))) {
            if (SEQ_GT(r.mark, before))
                before = r.mark;
            continue;
        }
        sk->rx[k++] = r;
    }
    sk->rx_n = (uint8_t)k;
    return before;
}

static const struct ss__cc_ops *const algos[SS_CC_NALGOS] = {
    [SS_CC_NEWRENO] = &ss__cc_newreno,
    [SS_CC_CUBIC] = &ss__cc_cubic,
};

const struct ss__cc_ops *ss__cc_ops_of(int algo)
{
    return algo > 0 && algo < SS_CC_NALGOS ? algos[algo] : NULL;
}

const char *ss_tcp_cc_name(int algo)
{
    const struct ss__cc_ops *o = ss__cc_ops_of(algo);
    return o ? o->name : "?";
}

int ss_tcp_cc_parse(const char *name)
{
    for (int a = 1; name && a < SS_CC_NALGOS; a++)
        if (strcasecmp(name, algos[a]->name) == 0)
            return a;
    return -EINVAL;
}

const char *ss_cc_phase_name(int phase)
{
    static const char *const n[] = {"open", "disorder", "recovery", "loss"};
    return phase >= 0 && phase <= SS_CC_LOSS ? n[phase] : "?";
}

/* RFC 6928: IW = min(N*MSS, max(2*MSS, N*1460)), N = cfg.init_cwnd (10). */
static uint32_t initial_window(const ss_stack *st, const struct ss_pcb *sk)
{
    uint32_t n = st->cfg.init_cwnd, mss = sk->snd_mss;
    uint32_t b = 2 * mss > n * 1460 ? 2 * mss : n * 1460;
    return ss__min32(n * mss, b);
}

void ss__cc_init(ss_stack *st, struct ss_pcb *sk)
{
    sk->cc = ss__cc_ops_of(st->cfg.cc_algo);
    sk->cwnd = UINT32_MAX;      /* the handshake is not congestion controlled */
    sk->ssthresh = UINT32_MAX;
    sk->cc_phase = SS_CC_OPEN;
    sk->cc_started = false;
}

int ss__cc_select(ss_stack *st, struct ss_pcb *sk, int algo)
{
    const struct ss__cc_ops *o = ss__cc_ops_of(algo);
    if (!o)
        return -EINVAL;
    sk->cc = o;
    if (sk->cc_started)
        o->init(st, sk);
    return 0;
}

void ss__cc_start(ss_stack *st, struct ss_pcb *sk)
{
    /* RFC 5681 3.1: after a lost SYN or SYN,ACK the initial window is one
     * segment; otherwise RFC 6928's. ssthresh starts "arbitrarily high". */
    sk->cwnd = sk->timeouts ? sk->snd_mss : initial_window(st, sk);
    sk->ssthresh = UINT32_MAX;
    sk->cc_phase = SS_CC_OPEN;
    sk->dupacks = 0;
    sk->ca_acked = 0;
    sk->recover = sk->iss;      /* RFC 6582 3.2 (1): recover = ISS at start */
    sk->rtx_mark = false;
    sk->high_rxt = sk->snd_una;
    sk->hs_phase = st->cfg.hystart ? SS_HS_SS : SS_HS_OFF;
    sk->hs_window_end = sk->snd_nxt;
    sk->hs_last_min = sk->hs_cur_min = sk->hs_delay_min = UINT32_MAX;
    sk->hs_samples = 0;
    sk->hs_round_start = sk->hs_train_last = (uint32_t)st->now;
    sk->cc_started = true;
    sk->cc->init(st, sk);
    ss__cc_trace(st, sk, SS_CC_MARK_INIT);
}

uint32_t ss__cc_flight(const struct ss_pcb *sk)
{
    return sk->snd_max - sk->snd_una;
}

uint32_t ss__cc_flight_loss(const struct ss_pcb *sk)
{
    uint32_t f = ss__cc_flight(sk);
    return f > sk->lt_bytes ? f - sk->lt_bytes : 0;
}

void ss__cc_sent(struct ss_pcb *sk, uint32_t new_bytes, uint32_t bytes)
{
    if (sk->cc_phase == SS_CC_DISORDER)
        sk->lt_bytes += new_bytes;
    if (sk->cc_phase == SS_CC_RECOVERY)
        sk->prr_out += bytes;   /* RFC 6937: prr_out += (data sent) */
}

bool ss__cc_sack_recovery(const struct ss_pcb *sk)
{
    return sk->sack_ok && sk->cc_started && sk->cc_phase == SS_CC_RECOVERY;
}

/* RFC 6675 4 SetPipe(): for each octet of [SND.UNA, SND.MAX) not SACKed,
 * one if it is not IsLost, and one more if it was retransmitted (below
 * HighRxt). IsLost() is the same for every octet of a hole (the same
 * ranges lie above all of them), so this walks holes, not octets, from
 * the top down, adding up what lies above (IsLost per hole would make
 * it quadratic in the holes); above the highest SACKed octet nothing is
 * lost. */
uint32_t ss__cc_pipe(const struct ss_pcb *sk)
{
    uint32_t pipe = 0, above = 0, n = ss__sack_count(sk);
    uint32_t rxt = SEQ_GT(sk->high_rxt, sk->snd_una) ? sk->high_rxt : sk->snd_una;
    for (uint32_t k = n; k-- > 0;) {
        struct ss_sack_blk r = ss__sack_range(sk, k);
        above += r.end - r.start;
        uint32_t s = k ? ss__sack_range(sk, k - 1).end : sk->snd_una, e = r.start;
        if (!SEQ_LT(s, e))
            continue;
        /* IsLost(s): DupThresh ranges above it, or more than
         * (DupThresh - 1) SMSS SACKed above it. */
        if (n - k < DUPTHRESH && above <= (DUPTHRESH - 1) * (uint32_t)sk->snd_mss &&
            !rack_lost(sk, s))
            pipe += e - s;
        if (SEQ_GT(rxt, s))
            pipe += (SEQ_LT(rxt, e) ? rxt : e) - s;
    }
    uint32_t high = ss__sack_high(sk);
    if (SEQ_LT(high, sk->snd_una))
        high = sk->snd_una;
    /* Above the highest SACK only RACK finds losses (rack_sent_before). */
    uint32_t lost_to = high;
    if (sk->cc_phase == SS_CC_RECOVERY && SEQ_GT(rack_end(sk), high))
        lost_to = SEQ_LT(rack_end(sk), sk->snd_max) ? rack_end(sk) : sk->snd_max;
    if (SEQ_GT(sk->snd_max, lost_to))
        pipe += sk->snd_max - lost_to;
    if (SEQ_GT(rxt, high))
        pipe += rxt - high;
    /* Below HighRxt every hole counted as resent once more. A
     * retransmission found lost (ss__cc_rxt_update) has left the network:
     * its octets no longer count twice. One above HighRxt, from a recovery
     * before this one and still on its way, counts once more. */
    uint32_t lost = 0;
    for (uint32_t i = 0; i < sk->rx_n; i++) {
        const struct ss_rxt *r = &sk->rx[i];
        uint32_t s = SEQ_LT(r->seq, sk->snd_una) ? sk->snd_una : r->seq;
        if (SEQ_GEQ(s, r->end))
            continue;
        if (r->lost)
            lost += (SEQ_LT(r->end, rxt) ? r->end : rxt) - (SEQ_LT(s, rxt) ? s : rxt);
        else if (SEQ_GT(r->end, rxt))
            pipe += r->end - (SEQ_GT(s, rxt) ? s : rxt);
    }
    return pipe > lost ? pipe - lost : 0;
}

bool ss__cc_next_hole(const struct ss_pcb *sk, bool lost, uint32_t *seq, uint32_t *len)
{
    uint32_t from = SEQ_GT(sk->high_rxt, sk->snd_una) ? sk->high_rxt : sk->snd_una, s, e;
    /* (1.a)/(3.a) above HighRxt, (1.b)/(3.b) below the highest SACKed
     * octet (next_hole stops there); holes only get less IsLost going up,
     * so the first hole decides rule (1). What is being resent already
     * is not a hole to fill (past_rxt_in_flight). */
    bool below;
    while ((below = ss__sack_next_hole(sk, from, &s, &e))) {
        s = past_rxt_in_flight(sk, s);
        if (SEQ_LT(s, e))
            break;
        from = e;
    }
    if (!below) {
        /* Above the highest SACK: lost only by RACK (rack_sent_before).
         * Data only: the FIN goes with the segment that ends at it. */
        uint32_t high = ss__sack_high(sk);
        uint32_t data_end = sk->fin_queued && SEQ_GT(sk->snd_max, sk->fin_seq) ? sk->fin_seq
                                                                             : sk->snd_max;
        s = past_rxt_in_flight(sk, SEQ_GT(high, from) ? high : from);
        e = SEQ_LT(rack_end(sk), data_end) ? rack_end(sk) : data_end;
        if (!lost || !rack_lost(sk, s) || !SEQ_LT(s, e))
            return false;
    } else if (lost && !ss__sack_is_lost(sk, s, DUPTHRESH) && !rack_lost(sk, s)) {
        return false;
    }
    *seq = s;
    *len = ss__min32(e - s, sk->snd_mss);
    return true;
}

void ss__cc_rxt_sent(const ss_stack *st, struct ss_pcb *sk, uint32_t seq, uint32_t end)
{
    if (!sk->sack_ok || !sk->cc_started ||
        (sk->cc_phase != SS_CC_RECOVERY && sk->cc_phase != SS_CC_LOSS))
        return;
    /* When full, the newest goes untracked (the RTO still covers it): the
     * oldest are the ones that hold SND.UNA, and so the whole window. */
    if (sk->rx_n == SS_STACK_RXT_MAX ||
        (!sk->rx && !(sk->rx = calloc(SS_STACK_RXT_MAX, sizeof *sk->rx))))
        return;
    /* Sent after it: what lies above SND.NXT now (new data in recovery,
     * where SND.NXT = SND.MAX; the rest of the go-back-N after an RTO).
     * Only SACKs that arrive later count (the scoreboard is kept across
     * an RTO, and old blocks above the mark prove nothing). */
    uint32_t mark = sk->snd_nxt;
    sk->rx[sk->rx_n++] = (struct ss_rxt){
        .seq = seq,
        .end = end,
        .mark = mark,
        .base = ss__sack_sacked_above(sk, mark - 1),
        .due = st->now + sk->srtt_us + reo_wnd(sk),
    };
}

/* RACK in recovery (RFC 8985 6.2) for a retransmission that arrived:
 * every octet sent before it, below its mark, that is neither SACKed
 * nor resent had RACK.rtt to arrive by when it did, so once reo_wnd more
 * has passed it is lost, SACKed above or not. This is what a partial
 * ACK with nothing SACKed above it says: without it the segments sent
 * just before the retransmission, lost too, waited for the RTO. */
static void rack_sent_before(ss_stack *st, struct ss_pcb *sk, uint32_t mark)
{
    if (!st->cfg.tlp || !sk->rtt_valid || !ss__cc_sack_recovery(sk) ||
        !SEQ_GT(mark, rack_from(sk)) || SEQ_GT(mark, sk->snd_max) || !ss__sx_own(sk))
        return;
    if (sk->reo_holes && SEQ_LEQ(mark, sk->sx->reo_high))
        return;
    sk->reo_holes = true;
    sk->sx->reo_high = mark;
    sk->sx->reo_due = (uint32_t)st->now + reo_wnd(sk);
}

bool ss__cc_rxt_update(ss_stack *st, struct ss_pcb *sk)
{
    if (!sk->rx_n)
        return false;
    /* Forget what arrived. What was sent before one that arrived (below
     * its mark) is RACK's to judge (rack_sent_before). */
    rack_sent_before(st, sk, forget_arrived(sk));
    uint32_t k = sk->rx_n;
    /* Lost by sequence: like IsLost (RFC 6675 4), more than (DupThresh
     * - 1) * SMSS bytes newly SACKed at or above the mark tolerate that
     * much reordering. Lost by time (RACK, RFC 8985 6.2 step 5, in
     * recovery and with RACK-TLP on): something sent after it arrived,
     * and SRTT + reo_wnd have passed since it went out. */
    bool found = false, by_time = st->cfg.tlp && sk->cc_phase == SS_CC_RECOVERY;
    for (uint32_t i = 0; i < k; i++) {
        struct ss_rxt *r = &sk->rx[i];
        if (r->lost)
            continue;
        uint32_t now_above = ss__sack_sacked_above(sk, r->mark - 1);
        uint32_t fresh = now_above > r->base ? now_above - r->base : 0;
        r->timed = r->timed || fresh > 0;
        if (fresh <= (DUPTHRESH - 1) * (uint32_t)sk->snd_mss &&
            !(by_time && r->timed && st->now >= r->due))
            continue;
        r->lost = true;
        found = true;
    }
    if (found)
        ss__cc_trace(st, sk, SS_CC_MARK_LOST_RXT);
    return found || ss__cc_rxt_lost_bytes(sk) > 0;
}

uint32_t ss__cc_rxt_lost_bytes(const struct ss_pcb *sk)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < sk->rx_n; i++)
        if (sk->rx[i].lost)
            n += sk->rx[i].end - (SEQ_LT(sk->rx[i].seq, sk->snd_una) ? sk->snd_una : sk->rx[i].seq);
    return n;
}

bool ss__cc_lost_rxt(struct ss_pcb *sk, uint32_t *seq, uint32_t *len)
{
    for (uint32_t i = 0; i < sk->rx_n; i++) {
        if (!sk->rx[i].lost)
            continue;
        struct ss_rxt r = sk->rx[i];
        memmove(sk->rx + i, sk->rx + i + 1, (sk->rx_n - i - 1) * sizeof *sk->rx);
        sk->rx_n--;
        *seq = SEQ_LT(r.seq, sk->snd_una) ? sk->snd_una : r.seq;
        *len = ss__min32(r.end - *seq, sk->snd_mss);
        return true;
    }
    return false;
}

uint32_t ss__cc_window(const struct ss_pcb *sk)
{
    if (!sk->cc_started)
        return UINT32_MAX;
    /* RFC 6675 (4.4): in SACK recovery, new data (NextSeg rule (2)) only
     * while cwnd - pipe >= 1 SMSS: as a window from SND.UNA, what is sent
     * plus that room. */
    if (ss__cc_sack_recovery(sk)) {
        uint32_t pipe = ss__cc_pipe(sk);
        uint32_t room = sk->cwnd > pipe ? sk->cwnd - pipe : 0;
        return room < sk->snd_mss ? sk->snd_nxt - sk->snd_una
                                  : sk->snd_nxt - sk->snd_una + room;
    }
    /* RFC 3042: on each of the first two duplicate ACKs one new segment
     * beyond cwnd (cwnd itself unchanged), if the peer's window allows. */
    if (sk->cc_phase == SS_CC_DISORDER)
        return sk->cwnd + ss__min32(sk->dupacks, 2) * sk->snd_mss;
    return sk->cwnd;
}

/* RFC 9406 4.2's constants (L, the byte-counting limit, stays RFC 3465's
 * 2 SMSS below: the stack does not pace). */
#define HS_MIN_RTT_THRESH_US 4000u
#define HS_MAX_RTT_THRESH_US 16000u
#define HS_MIN_RTT_DIVISOR 8u
#define HS_N_RTT_SAMPLE 8u
#define HS_CSS_GROWTH_DIVISOR 4u
#define HS_CSS_ROUNDS 5u

void ss__cc_hystart_rtt(struct ss_pcb *sk, uint32_t rtt_us)
{
    if (sk->hs_phase == SS_HS_OFF)
        return;
    if (rtt_us < sk->hs_cur_min)
        sk->hs_cur_min = rtt_us;
    if (rtt_us < sk->hs_delay_min)
        sk->hs_delay_min = rtt_us;
    if (sk->hs_samples < UINT8_MAX)
        sk->hs_samples++;
}

/* HyStart's ACK train (Ha and Rhee, "Hybrid Slow Start for High-Bandwidth
 * and Long-Distance Networks", 2008; Linux's tcp_cubic.c), beside RFC
 * 9406's delay test: while a round's ACKs keep coming at most
 * HS_TRAIN_GAP_US apart, the bottleneck is busy all that time; once the
 * train spans half the least RTT, the round's data fills half the path
 * and the next doubling would fill its queue, so slow start ends now.
 * The delay test alone misses a short queue: at 50 Mbit/s and a 10 ms
 * RTT, a drop-tail queue of half the BDP adds at most 5 ms, about its
 * 4 ms threshold, and slow start ran on into 120 drops. Only from
 * HS_TRAIN_LOW_WINDOW segments on, as in Linux (hystart_low_window), and
 * in CSS too: the queue that raised the RTT is the one the train sees. */
#define HS_TRAIN_GAP_US 2000u
#define HS_TRAIN_LOW_WINDOW 16u

static bool ack_train_full(const ss_stack *st, struct ss_pcb *sk)
{
    uint32_t now = (uint32_t)st->now;
    if (now - sk->hs_train_last > HS_TRAIN_GAP_US)
        return false;   /* the train broke: none until the next round */
    sk->hs_train_last = now;
    return sk->hs_delay_min != UINT32_MAX && sk->cwnd >= HS_TRAIN_LOW_WINDOW * sk->snd_mss &&
           now - sk->hs_round_start > sk->hs_delay_min / 2;
}

/* RFC 9406 4.2, on an ACK in the initial slow start: a new round when
 * SND.UNA passes windowEnd; SS -> CSS when this round's min RTT (after
 * N_RTT_SAMPLE samples) is RttThresh above the last round's; CSS -> SS
 * when it falls below cssBaselineMinRtt; CSS_ROUNDS rounds of CSS end
 * slow start (ssthresh = cwnd), and so does a full ACK train (above). Returns true when slow start is over. */
static bool hystart(ss_stack *st, struct ss_pcb *sk)
{
    if (SEQ_GEQ(sk->snd_una, sk->hs_window_end)) {
        sk->hs_last_min = sk->hs_cur_min;
        sk->hs_cur_min = UINT32_MAX;
        sk->hs_samples = 0;
        sk->hs_window_end = sk->snd_nxt;
        sk->hs_round_start = sk->hs_train_last = (uint32_t)st->now;
        if (sk->hs_phase == SS_HS_CSS && ++sk->hs_css_rounds >= HS_CSS_ROUNDS) {
            sk->ssthresh = sk->cwnd;
            sk->hs_phase = SS_HS_OFF;
            ss__cc_trace(st, sk, SS_CC_MARK_HYSTART_CA);
            return true;
        }
    }
    if (ack_train_full(st, sk)) {
        sk->ssthresh = sk->cwnd;
        sk->hs_phase = SS_HS_OFF;
        ss__cc_trace(st, sk, SS_CC_MARK_HYSTART_TRAIN);
        return true;
    }
    if (sk->hs_samples < HS_N_RTT_SAMPLE || sk->hs_cur_min == UINT32_MAX)
        return false;
    if (sk->hs_phase == SS_HS_SS && sk->hs_last_min != UINT32_MAX) {
        uint32_t th = sk->hs_last_min / HS_MIN_RTT_DIVISOR;
        th = th < HS_MIN_RTT_THRESH_US ? HS_MIN_RTT_THRESH_US
             : th > HS_MAX_RTT_THRESH_US ? HS_MAX_RTT_THRESH_US : th;
        if (sk->hs_cur_min >= sk->hs_last_min + th) {
            sk->hs_css_base = sk->hs_cur_min;
            sk->hs_css_rounds = 0;
            sk->hs_phase = SS_HS_CSS;
            ss__cc_trace(st, sk, SS_CC_MARK_HYSTART_CSS);
        }
    } else if (sk->hs_phase == SS_HS_CSS && sk->hs_cur_min < sk->hs_css_base) {
        sk->hs_phase = SS_HS_SS;   /* a spurious exit: the RTT fell back */
        ss__cc_trace(st, sk, SS_CC_MARK_HYSTART_SS);
    }
    return false;
}

uint32_t ss__cc_slow_start(ss_stack *st, struct ss_pcb *sk, uint32_t acked)
{
    if (sk->hs_phase != SS_HS_OFF && hystart(st, sk))
        return acked;
    /* RFC 3465 2.2 / RFC 5681 3.1: cwnd += min(N, L), L = 2*SMSS, up to
     * ssthresh; what is left over counts towards congestion avoidance.
     * In CSS (RFC 9406 4.3) a quarter of that. */
    uint32_t inc = ss__min32(acked, 2u * sk->snd_mss);
    if (sk->hs_phase == SS_HS_CSS)
        inc /= HS_CSS_GROWTH_DIVISOR;
    uint32_t room = sk->ssthresh - sk->cwnd;
    if (inc <= room) {
        sk->cwnd += inc;
        return 0;
    }
    sk->cwnd = sk->ssthresh;
    return acked - room;
}

void ss__cc_on_delivered(ss_stack *st, struct ss_pcb *sk, uint32_t delivered)
{
    if (!st->cfg.prr || !ss__cc_sack_recovery(sk))
        return;
    /* RFC 6937 3.1, on every ACK in recovery. While pipe is above
     * ssthresh, send in proportion to what was delivered, so that about
     * ssthresh is in flight when recovery ends (PRR); below it, grow back
     * as slow start would, but by at most one SMSS more than was
     * delivered (PRR-SSRB). Without this the stack sent cwnd - pipe at
     * once: after a cut, or when several lost retransmissions left pipe
     * together, a burst into the queue that had just overflowed. */
    sk->prr_delivered += delivered;
    ss__cc_rxt_update(st, sk);
    uint32_t pipe = ss__cc_pipe(sk), sndcnt;
    if (pipe > sk->ssthresh) {
        uint32_t fs = sk->prr_recover_fs ? sk->prr_recover_fs : 1;
        uint64_t due = ((uint64_t)sk->prr_delivered * sk->ssthresh + fs - 1) / fs;
        sndcnt = due > sk->prr_out ? (uint32_t)ss__min64(due - sk->prr_out, UINT32_MAX) : 0;
    } else {
        uint32_t owed = sk->prr_delivered > sk->prr_out ? sk->prr_delivered - sk->prr_out : 0;
        uint32_t limit = (owed > delivered ? owed : delivered) + sk->snd_mss;
        sndcnt = ss__min32(sk->ssthresh - pipe, limit);
    }
    sk->cwnd = pipe + ss__min32(sndcnt, UINT32_MAX - pipe);
}

/* RFC 6582 3.2 (3) option 1: cwnd = min(ssthresh, max(FlightSize, SMSS)
 * + SMSS), which avoids a burst when little is in flight. */
static uint32_t exit_cwnd(const struct ss_pcb *sk)
{
    uint32_t f = ss__cc_flight(sk);
    if (f < sk->snd_mss)
        f = sk->snd_mss;
    return ss__min32(sk->ssthresh, f + sk->snd_mss);
}

/* Grow only when cwnd is what limits the sender (RFC 7661's idea, as
 * Linux's tcp_is_cwnd_limited): a window that is not used proves nothing. */
static bool cwnd_limited(const struct ss_pcb *sk, uint32_t acked)
{
    uint32_t before = sk->snd_nxt - sk->snd_una + acked;   /* in flight before the ACK */
    if (before + sk->snd_mss > sk->cwnd)
        return true;
    return sk->cwnd < sk->ssthresh && 2 * before >= sk->cwnd;
}

void ss__cc_on_ack(ss_stack *st, struct ss_pcb *sk, uint32_t acked)
{
    if (!sk->cc_started || !acked)
        return;
    sk->dupacks = 0;
    sk->lt_bytes = 0;
    if (sk->rx_n && sk->cc_phase != SS_CC_RECOVERY && sk->cc_phase != SS_CC_LOSS)
        forget_arrived(sk);   /* kept from a recovery that ended */
    switch (sk->cc_phase) {
    case SS_CC_RECOVERY:
        if (SEQ_GEQ(sk->snd_una, sk->recover)) {
            /* RFC 6675 5: SND.UNA >= RecoveryPoint ends it too. */
            /* RFC 6582 3.2 (3): a full ACK, recovery is over. */
            sk->cwnd = sk->cc->exit_recovery ? sk->cc->exit_recovery(st, sk) : exit_cwnd(sk);
            sk->cc_phase = SS_CC_OPEN;
            sk->ca_acked = 0;
            forget_arrived(sk);   /* the rest is still on its way */
            sk->reo_holes = false;
            ss__cc_trace(st, sk, SS_CC_MARK_EXIT_RECOVERY);
            return;
        }
        /* RFC 6582 3.2 (5): a partial ACK. Resend the first unacknowledged
         * segment, deflate cwnd by what was acknowledged and add back one
         * SMSS if at least that much was, so that about ssthresh stays in
         * flight when recovery ends. */
        if (sk->sack_ok) {
            /* RFC 6675: no deflation; pipe shrank by what was acknowledged
             * and NextSeg() picks what to resend (tcp_output.c). */
            ss__cc_trace(st, sk, SS_CC_MARK_NONE);
            return;
        }
        sk->rtx_mark = true;
        sk->rtx_seq = sk->snd_una;
        sk->cwnd -= ss__min32(acked, sk->cwnd);
        if (acked >= sk->snd_mss)
            sk->cwnd += sk->snd_mss;
        if (sk->cwnd < sk->snd_mss)
            sk->cwnd = sk->snd_mss;
        ss__cc_trace(st, sk, SS_CC_MARK_PARTIAL_ACK);
        return;
    case SS_CC_LOSS:
        /* After an RTO: slow start from one segment resends from SND.UNA
         * (SND.NXT was pulled back) until SND.MAX of then is acknowledged. */
        if (SEQ_GEQ(sk->snd_una, sk->recover)) {
            sk->cc_phase = SS_CC_OPEN;
            sk->rx_n = 0;
            ss__cc_trace(st, sk, SS_CC_MARK_EXIT_LOSS);
        }
        break;
    default:
        sk->cc_phase = SS_CC_OPEN;
        break;
    }
    if (cwnd_limited(sk, acked))
        sk->cc->on_ack(st, sk, acked);
    ss__cc_trace(st, sk, SS_CC_MARK_NONE);
}

/* RFC 5681 3.2 (1)-(3) with RFC 6582 3.2 (2): ssthresh from the algorithm,
 * recover = SND.MAX, resend SND.UNA's segment, cwnd = ssthresh + 3*SMSS
 * (the three segments the duplicate ACKs say have left the network). */
static void enter_recovery(ss_stack *st, struct ss_pcb *sk, enum ss_cc_mark why)
{
    sk->hs_phase = SS_HS_OFF;   /* RFC 9406 4.2: a loss ends slow start */
    sk->ssthresh = sk->cc->ssthresh(st, sk);
    sk->recover = sk->snd_max;
    sk->high_rxt = sk->snd_una;
    set_rack_end(sk, sk->snd_una);
    sk->reo_holes = false;
    /* Retransmissions of the last recovery still on their way stay
     * remembered, and SND.UNA's is not sent again if one of them is. */
    forget_arrived(sk);
    sk->rtx_mark = past_rxt_in_flight(sk, sk->snd_una) == sk->snd_una;
    sk->rtx_seq = sk->snd_una;
    /* RFC 6675 5 (4.2): with SACK, cwnd = ssthresh; pipe, not an inflated
     * cwnd, accounts for what the duplicate ACKs say has left. */
    sk->cwnd = sk->ssthresh + (sk->sack_ok ? 0 : 3u * sk->snd_mss);
    /* RFC 6937 3.1, on entering recovery. RecoverFS = SND.NXT - SND.UNA
     * (SND.MAX: after an RTO SND.NXT may lag). */
    sk->prr_delivered = sk->prr_out = 0;
    sk->prr_recover_fs = sk->snd_max - sk->snd_una;
    sk->cc_phase = SS_CC_RECOVERY;
    sk->ca_acked = 0;
    sk->lt_bytes = 0;
    ss__cc_trace(st, sk, why);
}

/* RACK's reordering timer runs on the PTO's (as Linux multiplexes them):
 * set t_tlp to `at`, unless the RTO comes first. */
static void set_reo(ss_stack *st, struct ss_pcb *sk, uint64_t at)
{
    if (at >= sk->t_rtx) {
        if (sk->reo_on)
            sk->t_tlp = SS_NEVER;
        sk->reo_on = false;
        return;
    }
    sk->reo_on = true;
    sk->t_tlp = at;
}

/* RACK (RFC 8985 6) for the segment at SND.UNA. A duplicate ACK with SACK
 * comes about one RTT after the segment sent right after SND.UNA's, so
 * SND.UNA's own has had RTT + reo_wnd to arrive once reo_wnd more has
 * passed (6.2 step 5: lost if now >= xmit_ts + RACK.rtt + reo_wnd): then
 * it is lost, however few duplicate ACKs came. With a small window there
 * are never three (a window of 4 segments that loses one, and one ACK of
 * the other 3 lost too, waited a whole RTO; at 10 ms and 5% loss the
 * RTOs cost our stack 40% of its goodput against Linux). Only with SACK,
 * and off with TLP (cfg.tlp): RACK-TLP as one switch. */
static void arm_reo(ss_stack *st, struct ss_pcb *sk)
{
    if (!st->cfg.tlp || !sk->sack_ok || sk->reo_on || !sk->rtt_valid || !ss__sack_count(sk))
        return;
    sk->sx->reo_high = ss__sack_high(sk);   /* taken: there are SACK blocks */
    set_reo(st, sk, st->now + reo_wnd(sk));
}

/* Is a hole in [rack_from, to) not yet lost by DupThresh? The highest
 * one decides: holes only get less IsLost going up. */
static bool rack_hole(const struct ss_pcb *sk, uint32_t to)
{
    uint32_t from = rack_from(sk), s, e, last = 0;
    bool any = false;
    while (SEQ_LT(from, to) && ss__sack_next_hole(sk, from, &s, &e) && SEQ_LT(s, to)) {
        last = s;
        any = true;
        from = e;
    }
    return any && !ss__sack_is_lost(sk, last, DUPTHRESH);
}

/* The earliest of RACK's deadlines in recovery: the holes' (reo_due),
 * and each timed retransmission's. */
static uint64_t reo_timer(const ss_stack *st, const struct ss_pcb *sk)
{
    uint64_t at = sk->reo_holes ? due_at(st, sk->sx->reo_due) : SS_NEVER;
    for (uint32_t i = 0; i < sk->rx_n; i++)
        if (!sk->rx[i].lost && sk->rx[i].timed && sk->rx[i].due < at)
            at = sk->rx[i].due;
    return at;
}

/* RACK in recovery (RFC 8985 6.2). An ACK whose highest SACK lies above
 * holes that DupThresh does not call lost yet: each was sent before the
 * SACKed segment, which arrived about RACK.rtt after it went out, so
 * once reo_wnd more has passed those holes are lost (step 5), however
 * little lies above them. Without this a hole with fewer than three
 * segments SACKed above it waited for the RTO (rule (3) of NextSeg only
 * resends it when there is no new data). Each timed retransmission
 * (ss__cc_rxt_update) gets its own deadline. */
void ss__cc_rack_arm(ss_stack *st, struct ss_pcb *sk)
{
    if (!st->cfg.tlp || !sk->rtt_valid || !ss__cc_sack_recovery(sk))
        return;
    ss__cc_rxt_update(st, sk);
    uint32_t high = ss__sack_high(sk);
    if (!sk->reo_holes && sk->sx_sack && SEQ_GT(high, rack_end(sk)) && rack_hole(sk, high)) {
        sk->reo_holes = true;
        sk->sx->reo_high = high;
        sk->sx->reo_due = (uint32_t)st->now + reo_wnd(sk);
    }
    set_reo(st, sk, reo_timer(st, sk));
}

void ss__cc_reo_timeout(ss_stack *st, struct ss_pcb *sk)
{
    sk->reo_on = false;
    if (ss__cc_sack_recovery(sk)) {
        if (sk->reo_holes && reached(st, sk->sx->reo_due)) {
            uint32_t high = ss__sack_high(sk), from = rack_from(sk);
            bool fresh = rack_hole(sk, sk->sx->reo_high) ||
                         SEQ_GT(sk->sx->reo_high, SEQ_GT(high, from) ? high : from);
            sk->sx->rack_end = sk->sx->reo_high;
            sk->reo_holes = false;
            if (fresh)
                ss__cc_trace(st, sk, SS_CC_MARK_RACK_HOLES);
        }
        ss__cc_rack_arm(st, sk);
        return;
    }
    if (sk->cc_phase != SS_CC_DISORDER || sk->snd_una == sk->snd_max || !ss__sack_count(sk) ||
        !SEQ_GEQ(sk->snd_una, sk->recover))
        return;
    uint32_t high = sk->sx->reo_high;   /* taken: there are SACK blocks */
    enter_recovery(st, sk, SS_CC_MARK_RACK);
    /* Every hole below the highest SACK of then is lost with SND.UNA's. */
    if (SEQ_GT(high, sk->snd_una) && SEQ_LEQ(high, sk->snd_max))
        sk->sx->rack_end = high;
}

void ss__cc_on_dupack(ss_stack *st, struct ss_pcb *sk)
{
    if (!sk->cc_started)
        return;
    switch (sk->cc_phase) {
    case SS_CC_RECOVERY:
        /* RFC 5681 3.2 (4): each further duplicate ACK means one more
         * segment has left the network: inflate cwnd by one SMSS. With
         * SACK (RFC 6675) pipe says that instead. */
        if (!sk->sack_ok)
            sk->cwnd += sk->snd_mss;
        ss__cc_trace(st, sk, SS_CC_MARK_NONE);
        return;
    case SS_CC_LOSS:
        /* RFC 6582 3.2 (2): duplicate ACKs below `recover` (the RTO's
         * SND.MAX) come from the go-back-N resends: no fast retransmit. */
        return;
    default:
        break;
    }
    sk->dupacks++;
    /* RFC 6675 5: with SACK, recovery also starts when the scoreboard
     * says SND.UNA's segment IsLost, before DupThresh duplicate ACKs. */
    bool lost = sk->sack_ok && ss__sack_is_lost(sk, sk->snd_una, DUPTHRESH);
    if (sk->dupacks < DUPTHRESH && !lost) {
        sk->cc_phase = SS_CC_DISORDER;   /* limited transmit (RFC 3042) */
        arm_reo(st, sk);
        ss__cc_trace(st, sk, SS_CC_MARK_NONE);
        return;
    }
    /* RFC 6582 3.2 (2): fast retransmit only if the ACK covers more than
     * recover, so one window's losses start one recovery. With SACK (RFC
     * 6675 5) recovery is over once SND.UNA reaches RecoveryPoint, and the
     * blocks show which losses are new: a loss at RecoveryPoint itself
     * (the first segment sent after it) starts recovery too. */
    bool past = sk->sack_ok ? SEQ_GEQ(sk->snd_una, sk->recover) : SEQ_GT(sk->snd_una, sk->recover);
    if ((sk->dupacks == DUPTHRESH || lost) && past)
        enter_recovery(st, sk, SS_CC_MARK_FAST_RETRANSMIT);
    else if (lost)
        sk->cc_phase = SS_CC_DISORDER;
}

void ss__cc_on_timeout(ss_stack *st, struct ss_pcb *sk)
{
    if (!sk->cc_started)
        return;
    sk->hs_phase = SS_HS_OFF;
    /* RFC 5681 3.1 (4): ssthresh = max(FlightSize/2, 2*SMSS) (or the
     * algorithm's rule) on the first timeout of a segment; held when the
     * same segment times out again, and not cut twice for the loss that
     * fast recovery already answered. cwnd = the loss window, 1 SMSS. */
    if (sk->backoff <= 1 && sk->cc_phase != SS_CC_RECOVERY)
        sk->ssthresh = sk->cc->ssthresh(st, sk);
    sk->cwnd = sk->snd_mss;
    sk->cc_phase = SS_CC_LOSS;
    sk->recover = sk->snd_max;
    sk->dupacks = 0;
    sk->ca_acked = 0;
    sk->lt_bytes = 0;
    sk->rtx_mark = false;
    sk->reo_holes = false;
    set_rack_end(sk, sk->snd_una);
    sk->rx_n = 0;   /* the go-back-N resends every hole; its own are tracked */
    if (sk->cc->on_rto)
        sk->cc->on_rto(st, sk);
    ss__cc_trace(st, sk, SS_CC_MARK_RTO);
}

/* Not inlined in ss__cc_before_send: gcc then saved registers before
 * its early return, taken for nearly every segment sent (6 instructions
 * more per segment in callgrind's count of stack demo). */
__attribute__((noinline)) static void idle_restart(ss_stack *st, struct ss_pcb *sk)
{
    sk->last_send = st->now;   /* once per idle period */
    uint32_t iw = initial_window(st, sk);
    if (sk->cwnd <= iw)
        return;
    if (sk->cc->on_idle)
        sk->cc->on_idle(st, sk);
    sk->cwnd = iw;
    sk->ca_acked = 0;
    ss__cc_trace(st, sk, SS_CC_MARK_IDLE_RESTART);
}

void ss__cc_before_send(ss_stack *st, struct ss_pcb *sk)
{
    /* RFC 5681 4.1: after more than one RTO without sending, cwnd =
     * min(IW, cwnd), so the next flight is not a burst into a path
     * whose state we no longer know. */
    if (!sk->cc_started || sk->snd_una != sk->snd_max || !sk->last_send ||
        st->now - sk->last_send <= sk->rto_us)
        return;
    idle_restart(st, sk);
}

void ss__cc_tlp_ack(ss_stack *st, struct ss_pcb *sk, const struct ss_seg *seg)
{
    if (SEQ_LT(seg->ack, sk->sx->tlp_end))
        return;
    /* RFC 8985 7.4.2. A probe of new data: any loss shows in the SACKs
     * and is recovered as such. A resent segment reported as a duplicate
     * (D-SACK, RFC 2883: a first block below the cumulative ACK) arrived
     * twice: nothing was lost. An ACK beyond the probe: the probe
     * repaired a loss, and the congestion response of a fast recovery
     * is owed. An ACK of exactly TLP.end_seq without D-SACK may still be
     * followed by one; wait for the next ACK. */
    bool dsack = seg->nsack && SEQ_LT(seg->sack[0].start, seg->ack) &&
                 SEQ_LT(seg->sack[0].start, sk->sx->tlp_end) &&
                 SEQ_GT(seg->sack[0].end, sk->sx->tlp_seq);
    if (!sk->tlp_rtx || dsack) {
        sk->tlp_on = false;
        return;
    }
    if (seg->ack == sk->sx->tlp_end)
        return;
    sk->tlp_on = false;
    if (!sk->cc_started || sk->cc_phase != SS_CC_OPEN)
        return;
    sk->hs_phase = SS_HS_OFF;
    sk->ssthresh = sk->cc->ssthresh(st, sk);
    sk->cwnd = ss__min32(sk->cwnd, sk->ssthresh);
    ss__cc_trace(st, sk, SS_CC_MARK_TLP_LOSS);
}

/* What the last SS_TRACE_CC showed is kept in the stack's table by
 * socket id, only when there is a trace (cfg.trace is set once, at
 * ss_stack_new): not in the TCB (issue 10's 512 B). An id beyond the
 * table (no memory to grow it) is traced at every call. */
void ss__cc_trace(ss_stack *st, struct ss_pcb *sk, enum ss_cc_mark mark)
{
    if (!st->cfg.trace)
        return;
    if ((uint32_t)sk->id < st->cc_seen_n) {   /* (a template's -1 is not) */
        struct ss_cc_seen *c = &st->cc_seen[sk->id];
        if (mark == SS_CC_MARK_NONE && sk->cc_traced && c->cwnd == sk->cwnd &&
            c->ssthresh == sk->ssthresh && c->phase == sk->cc_phase)
            return;
        sk->cc_traced = true;
        c->cwnd = sk->cwnd;
        c->ssthresh = sk->ssthresh;
        c->phase = sk->cc_phase;
    }
    ss__trace_cc(st, sk, mark);
}
