/* tcp_cc_cubic: CUBIC (RFC 9438), the default algorithm, as in Linux.
 *
 * Windows are in segments (doubles) as the RFC writes them; cwnd in the
 * TCB stays in bytes. Time is the stack's clock (st->now), never a read.
 *
 *   RFC 9438 4.1  slow start as RFC 5681 (RFC 3465 L=2)  cubic_on_ack()
 *                                                          -> ss__cc_slow_start()
 *   RFC 9438 4.2  W_cubic(t) = C*(t-K)^3 + W_max,         w_cubic(), cubic_on_ack()
 *                 K = cbrt((W_max - cwnd_epoch)/C),        start_epoch()
 *                 target = W_cubic(t+RTT) clamped to
 *                 [cwnd, 1.5*cwnd], cwnd += (target -
 *                 cwnd)/cwnd per SMSS acknowledged
 *   RFC 9438 4.3  Reno-friendly region: W_est grows by    cubic_on_ack()
 *                 alpha = 3(1-beta)/(1+beta) per window
 *                 (1 once W_est >= cwnd_prior); cwnd =
 *                 W_est while W_cubic(t) < W_est
 *   RFC 9438 4.4, 4.5  concave and convex regions         cubic_on_ack()
 *   RFC 9438 4.6  multiplicative decrease, beta = 0.7     cubic_ssthresh()
 *   RFC 9438 4.7  fast convergence                        cubic_ssthresh()
 *   RFC 9438 4.8  timeout: K = 0, W_max = cwnd at the     cubic_on_rto(),
 *                 start of the next stage                   start_epoch()
 *   RFC 6582 3.2 (3) option 2: cwnd = ssthresh when       cubic_exit_recovery()
 *                 fast recovery ends (the RFC 9438 4.6
 *                 reduction "cwnd = ssthresh")
 * Loss detection and recovery themselves are tcp_cc.c's.
 *
 * The state shares its place in the TCB with HyStart++'s (stack_int.h):
 * init only notes cwnd (ccs_w0) while HyStart runs, and state() makes
 * the state W_max = cwnd_prior = ccs_w0 / SMSS, the rest zero, when it
 * is first needed. Every path there (congestion avoidance, a loss, a
 * timeout) has ended HyStart first (tcp_cc.c sets SS_HS_OFF before
 * calling ssthresh, and slow start hands ACKs to congestion avoidance
 * only once it is over); an idle restart during HyStart only clears
 * cubic_epoch, which the state made later has clear anyway.
 */
#include <math.h>
#include <string.h>

#include "stack_int.h"

#define CUBIC_C 0.4                  /* segments / s^3 */
#define CUBIC_BETA_NUM 7u            /* beta_cubic = 0.7, as 7/10 in bytes */
#define CUBIC_BETA_DEN 10u
#define CUBIC_BETA 0.7
#define CUBIC_ALPHA (3.0 * (1.0 - CUBIC_BETA) / (1.0 + CUBIC_BETA))

static double w_cubic(const struct ss__cc_cubic *c, double t)
{
    double d = t - c->k;
    return CUBIC_C * d * d * d + c->w_max;
}

/* The state, made live from ccs_w0 if HyStart had its place. */
static struct ss__cc_cubic *state(struct ss_pcb *sk)
{
    struct ss__cc_cubic *c = &sk->ccs.cubic;
    if (!sk->ccs_live) {
        sk->hs_phase = SS_HS_OFF;   /* already: see the top of the file */
        sk->ccs_live = true;
        memset(c, 0, sizeof *c);
        sk->cubic_epoch = sk->cubic_after_rto = false;
        c->w_max = (double)sk->ccs_w0 / sk->snd_mss;
        c->cwnd_prior = c->w_max;
    }
    return c;
}

static void cubic_init(ss_stack *st, struct ss_pcb *sk)
{
    (void)st;
    sk->ccs_w0 = sk->cwnd;
    sk->ccs_live = false;
    if (sk->hs_phase == SS_HS_OFF)
        state(sk);
}

/* The first ACK of a congestion-avoidance stage (RFC 9438 4.2, 4.3, 4.8). */
static void start_epoch(ss_stack *st, struct ss_pcb *sk, double cw)
{
    struct ss__cc_cubic *c = state(sk);
    sk->cubic_epoch = true;
    c->epoch_start = st->now;
    if (sk->cubic_after_rto || cw >= c->w_max) {
        sk->cubic_after_rto = false;
        c->w_max = cw;
        c->k = 0;
    } else {
        c->k = cbrt((c->w_max - cw) / CUBIC_C);
    }
    c->w_est = cw;
}

static void cubic_on_ack(ss_stack *st, struct ss_pcb *sk, uint32_t acked)
{
    if (sk->cwnd < sk->ssthresh) {
        acked = ss__cc_slow_start(st, sk, acked);
        if (!acked)
            return;
    }
    struct ss__cc_cubic *c = state(sk);
    double mss = sk->snd_mss;
    double cw = sk->cwnd / mss;
    if (!sk->cubic_epoch)
        start_epoch(st, sk, cw);
    double t = (double)(st->now - c->epoch_start) / 1e6;
    double rtt = (double)sk->srtt_us / 1e6;

    /* 4.3: the window standard TCP would have; alpha_cubic makes its
     * average equal Reno's, alpha 1 once W_est is past cwnd_prior. */
    double alpha = c->w_est >= c->cwnd_prior ? 1.0 : CUBIC_ALPHA;
    c->w_est += alpha * (double)acked / (double)sk->cwnd;
    if (w_cubic(c, t) < c->w_est) {
        uint32_t est = (uint32_t)(c->w_est * mss);
        if (est > sk->cwnd)
            sk->cwnd = est;
        return;
    }
    /* 4.2, 4.4, 4.5: aim at where the curve will be one RTT from now. */
    double target = w_cubic(c, t + rtt);
    if (target < cw)
        target = cw;
    else if (target > 1.5 * cw)
        target = 1.5 * cw;
    uint32_t tb = (uint32_t)(target * mss);
    if (tb > sk->cwnd)
        sk->cwnd += (uint32_t)((uint64_t)(tb - sk->cwnd) * acked / sk->cwnd);
}

static uint32_t cubic_ssthresh(ss_stack *st, struct ss_pcb *sk)
{
    (void)st;
    struct ss__cc_cubic *c = state(sk);
    double cw = (double)sk->cwnd / sk->snd_mss;
    /* 4.7: a flow that lost before reaching its last W_max releases
     * bandwidth for newcomers. */
    if (cw < c->w_max)
        c->w_max = cw * (1.0 + CUBIC_BETA) / 2.0;
    else
        c->w_max = cw;
    c->cwnd_prior = cw;
    sk->cubic_epoch = false;
    /* 4.6: ssthresh = cwnd * beta_cubic, at least 2 segments. */
    uint32_t s = (uint32_t)((uint64_t)sk->cwnd * CUBIC_BETA_NUM / CUBIC_BETA_DEN);
    return s > 2u * sk->snd_mss ? s : 2u * sk->snd_mss;
}

static void cubic_on_rto(ss_stack *st, struct ss_pcb *sk)
{
    (void)st;
    state(sk);
    sk->cubic_epoch = false;
    sk->cubic_after_rto = true;
}

static uint32_t cubic_exit_recovery(ss_stack *st, struct ss_pcb *sk)
{
    (void)st;
    return sk->ssthresh;
}

static void cubic_on_idle(ss_stack *st, struct ss_pcb *sk)
{
    (void)st;
    /* The curve's time must not include the idle period: a new stage.
     * (Before the state is live, HyStart's fields are in its place and
     * cubic_epoch is clear in the state to come.) */
    if (sk->ccs_live)
        sk->cubic_epoch = false;
}

const struct ss__cc_ops ss__cc_cubic = {
    .name = "cubic",
    .algo = SS_CC_CUBIC,
    .init = cubic_init,
    .on_ack = cubic_on_ack,
    .ssthresh = cubic_ssthresh,
    .on_rto = cubic_on_rto,
    .exit_recovery = cubic_exit_recovery,
    .on_idle = cubic_on_idle,
};
