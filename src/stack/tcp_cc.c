/* tcp_cc: the congestion-control hook.
 *
 * Not implemented yet (a later issue brings RFC 5681 / RFC 6582 NewReno).
 * The sender asks ss__cc_window() how much may be in flight besides the
 * peer's window. Outside loss recovery the answer is "unlimited"; the one
 * rule already here is the RTO recovery of RFC 6298 (5.4): after a
 * retransmission timeout only the earliest unacknowledged segment is in
 * flight (a loss window of one segment, RFC 5681 3.1), and nothing beyond
 * it goes out until an ACK for new data arrives. An ACK that covers
 * everything sent before the timeout (SND.MAX then, `recover`) ends the
 * recovery and sending goes on as before. A partial ACK (the peer holds
 * later data but misses another segment) lets exactly the next
 * unacknowledged segment go, as RFC 6582 3.2 (5) does for partial ACKs,
 * rather than resending the whole rest of the flight (go-back-N) the
 * peer mostly has. Slow start replaces the one-segment window with
 * growth from it.
 *
 * ss__cc_trace() emits SS_TRACE_CC with the window the sender uses
 * (min(peer window, cwnd)) and the recovery state when either changes.
 */
#include "stack_int.h"

void ss__cc_init(ss_stack *st, struct ss_sock *sk)
{
    (void)st;
    sk->cwnd = UINT32_MAX;
    sk->ssthresh = UINT32_MAX;
    sk->rto_recovery = false;
}

void ss__cc_on_ack(ss_stack *st, struct ss_sock *sk, uint32_t acked)
{
    (void)st;
    if (!acked || !sk->rto_recovery)
        return;
    if (SEQ_GEQ(sk->snd_una, sk->recover)) {
        sk->rto_recovery = false;
        sk->cwnd = UINT32_MAX;
        ss__cc_trace(st, sk);   /* also when no more output follows */
    } else {
        sk->cwnd = sk->snd_mss;   /* partial ACK: the next hole, only */
    }
}

void ss__cc_on_timeout(ss_stack *st, struct ss_sock *sk)
{
    (void)st;
    /* Loss window: the one segment retransmit_first() is about to send. */
    sk->rto_recovery = true;
    sk->recover = sk->snd_max;
    sk->cwnd = sk->snd_mss;
    ss__cc_trace(st, sk);
}

uint32_t ss__cc_window(const struct ss_sock *sk)
{
    return sk->cwnd;
}

/* With no congestion control yet the window that limits the sender is
 * the peer's, or the one segment of RTO recovery: that is what is traced
 * as "cwnd", so that plots show what actually bounds the flight. */
void ss__cc_trace(ss_stack *st, struct ss_sock *sk)
{
    uint32_t w = ss__min32(sk->snd_wnd, ss__cc_window(sk));
    if (sk->cc_traced && w == sk->cc_traced_wnd && sk->rto_recovery == sk->cc_traced_rec)
        return;
    sk->cc_traced = true;
    sk->cc_traced_wnd = w;
    sk->cc_traced_rec = sk->rto_recovery;
    ss__trace_cc(st, sk, w);
}
