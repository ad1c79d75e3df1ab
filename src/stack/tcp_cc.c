/* tcp_cc: the congestion-control hook.
 *
 * Not implemented yet (a later issue brings RFC 5681 / RFC 6582 NewReno).
 * The sender asks ss__cc_window() how much may be in flight besides the
 * peer's window; for now the answer is "unlimited", and the events a real
 * algorithm needs (new ACK, RTO) already arrive here.
 */
#include "stack_int.h"

void ss__cc_init(ss_stack *st, struct ss_sock *sk)
{
    (void)st;
    sk->cwnd = UINT32_MAX;
    sk->ssthresh = UINT32_MAX;
}

void ss__cc_on_ack(ss_stack *st, struct ss_sock *sk, uint32_t acked)
{
    (void)st; (void)sk; (void)acked;
}

void ss__cc_on_timeout(ss_stack *st, struct ss_sock *sk)
{
    (void)st; (void)sk;
}

uint32_t ss__cc_window(const struct ss_sock *sk)
{
    return sk->cwnd;
}
