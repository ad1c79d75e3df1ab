/* tcp_cc_newreno: NewReno's window (RFC 5681, RFC 6582, RFC 3465).
 *
 *   RFC 5681 3.1 slow start, cwnd += min(N, 2*SMSS)   newreno_on_ack()
 *     (RFC 3465 2.2 byte counting, L = 2*SMSS)          -> ss__cc_slow_start()
 *   RFC 5681 3.1 congestion avoidance, one SMSS per    newreno_on_ack()
 *     cwnd of acknowledged bytes (RFC 3465 2.1)
 *   RFC 5681 3.1 (4) ssthresh = max(FlightSize/2,      newreno_ssthresh()
 *     2*SMSS) (fast retransmit and RTO alike;
 *     RFC 5681 3.2 (2): FlightSize without what
 *     limited transmit sent)
 *   RFC 6582 3.2 (3) cwnd at the end of recovery       tcp_cc.c exit_cwnd()
 *
 * When these run (duplicate ACKs, recovery, RTO, idle) is tcp_cc.c's
 * business: NewReno has no state of its own beyond cwnd and ssthresh.
 */
#include "stack_int.h"

static void newreno_init(ss_stack *st, struct ss_pcb *sk)
{
    (void)st;
    sk->ca_acked = 0;
}

static void newreno_on_ack(ss_stack *st, struct ss_pcb *sk, uint32_t acked)
{
    (void)st;
    if (sk->cwnd < sk->ssthresh) {
        acked = ss__cc_slow_start(st, sk, acked);
        if (!acked)
            return;
    }
    /* RFC 3465 2.1: count acknowledged bytes; each full cwnd of them
     * adds one SMSS (about one per RTT, whatever the ACK pattern). */
    sk->ca_acked += acked;
    if (sk->ca_acked >= sk->cwnd) {
        sk->ca_acked -= sk->cwnd;
        sk->cwnd += sk->snd_mss;
    }
}

static uint32_t newreno_ssthresh(ss_stack *st, struct ss_pcb *sk)
{
    (void)st;
    uint32_t half = ss__cc_flight_loss(sk) / 2;
    uint32_t two = 2u * sk->snd_mss;
    return half > two ? half : two;
}

const struct ss__cc_ops ss__cc_newreno = {
    .name = "newreno",
    .algo = SS_CC_NEWRENO,
    .init = newreno_init,
    .on_ack = newreno_on_ack,
    .ssthresh = newreno_ssthresh,
};
