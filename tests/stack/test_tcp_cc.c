/* Congestion control (tcp_cc.c, tcp_cc_newreno.c, tcp_cc_cubic.c), byte
 * built: the peer's ACKs are written by hand, time moves only when the
 * test says, and every window is an exact byte count.
 *
 * The peer announces MSS 1000 so that windows read as segments*1000.
 * cfg.rto_min_ms is 10 s so that no timer fires unless a test waits for it.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fixture.h"

#define P1 (PEER_ISS + 1)
#define M 1000u                 /* SMSS */
#define RTT (100 * MS)

static uint32_t iss;            /* the stack's ISS */
static int sd;
static uint8_t data[300000];

static int tweak_algo = SS_CC_NEWRENO;
static uint32_t tweak_iw = 10;
/* PRR (RFC 6937) is off for the RFC 6675 tests below (they check its own
 * rule, cwnd = ssthresh on entry); the cc_prr group turns it on. */
static bool tweak_prr = false;

static void tweak(struct ss_stack_cfg *c)
{
    c->prr = tweak_prr;
    c->sndbuf = sizeof data;
    c->rto_min_ms = 10000;
    c->rto_initial_ms = 10000;
    c->cc_algo = tweak_algo;
    c->init_cwnd = tweak_iw;
}

static void open_conn(void)
{
    fx_setup_with(tweak);
    sd = fx_passive_mss_rtt(M, RTT, &iss);
    memset(data, 'd', sizeof data);
}

static void nr_setup(void)
{
    tweak_algo = SS_CC_NEWRENO;
    tweak_iw = 10;
    open_conn();
}

static void cubic_setup(void)
{
    tweak_algo = SS_CC_CUBIC;
    tweak_iw = 20;
    open_conn();
}

static struct ss_stack_sock_info info(void)
{
    struct ss_stack_sock_info in;
    cr_assert_eq(ss_stack_sock_info(st, sd, &in), 0);
    return in;
}

static uint32_t cwnd(void) { return info().cwnd; }
static uint32_t ssthresh(void) { return info().ssthresh; }
static uint32_t una(void) { return info().snd_una; }
/* Byte offset of a sequence number in our stream (0 = first data byte). */
static uint32_t off(uint32_t seq) { return seq - iss - 1; }

static void queue(size_t n)
{
    cr_assert_eq(ss_tcp_send(st, now, sd, data, n), (ssize_t)n);
}

/* The peer acknowledges everything before our byte offset o. */
static void ack_to(uint32_t o)
{
    seg_in(P1, iss + 1 + o, SS_TCP_ACK, 65535, NULL, 0);
}

/* A duplicate ACK (RFC 5681 2): SND.UNA again, no data, same window. */
static void dupack(void)
{
    seg_in(P1, una(), SS_TCP_ACK, 65535, NULL, 0);
}

/* The peer acknowledges n more segments, one ACK each. */
static void ack_each(int n)
{
    uint32_t o = off(una());
    for (int i = 0; i < n; i++) {
        o += M;
        ack_to(o);
    }
}

static int count_data_segs(void)
{
    int n = 0;
    for (int i = 0; i < ncap; i++)
        if (cap_tcp(i).len)
            n++;
    return n;
}

static bool traced(const char *prefix)
{
    for (int i = 0; i < ntrace; i++)
        if (strncmp(trace_lines[i], prefix, strlen(prefix)) == 0)
            return true;
    return false;
}

/* ================= NewReno (RFC 5681, RFC 6582, RFC 3465, RFC 3042) ====== */

/* RFC 6928: IW = min(10*MSS, max(2*MSS, 14600)); RFC 5681 3.1 with
 * RFC 3465: one ACK per segment adds one SMSS, so cwnd doubles per RTT. */
Test(cc_newreno, slow_start_doubles_cwnd_per_rtt, .init = nr_setup, .fini = fx_teardown)
{
    cr_assert_eq(cwnd(), 10 * M, "IW %u", cwnd());
    cr_assert_eq(ssthresh(), UINT32_MAX);
    cap_clear();
    queue(290 * M);
    cr_assert_eq(ncap, 10, "the initial window: %d segments", ncap);
    cap_clear();
    now += RTT;
    ack_each(10);
    cr_assert_eq(cwnd(), 20 * M);
    cr_assert_eq(ncap, 20, "each ACK released two segments: %d", ncap);
    cap_clear();
    now += RTT;
    ack_each(20);
    cr_assert_eq(cwnd(), 40 * M);
    cr_assert_eq(ncap, 40);
}

/* RFC 3465 2.2: an ACK for many segments adds at most L = 2*SMSS. */
Test(cc_newreno, slow_start_byte_counting_limit_is_two_segments, .init = nr_setup,
     .fini = fx_teardown)
{
    queue(290 * M);
    now += RTT;
    ack_to(5 * M);
    cr_assert_eq(cwnd(), 12 * M);
}

/* Reach congestion avoidance through an RTO: ssthresh = FlightSize/2 =
 * 5 segments, cwnd 1, then slow start to ssthresh. */
static void to_congestion_avoidance(void)
{
    queue(200 * M);
    struct ss_stack_sock_info in = info();
    advance(in.rto_us);
    cr_assert_eq(cwnd(), M);
    cr_assert_eq(ssthresh(), 5 * M);
    now += RTT;
    ack_to(10 * M);             /* the peer had the rest of the flight */
    cr_assert_eq(cwnd(), 3 * M, "slow start, L = 2*SMSS: %u", cwnd());
    ack_each(1);
    cr_assert_eq(cwnd(), 4 * M);
    ack_each(1);
    cr_assert_eq(cwnd(), 5 * M, "at ssthresh");
}

/* RFC 5681 3.1 / RFC 3465 2.1: in congestion avoidance one SMSS per
 * cwnd of acknowledged bytes, i.e. per RTT. */
Test(cc_newreno, congestion_avoidance_adds_one_mss_per_rtt, .init = nr_setup,
     .fini = fx_teardown)
{
    to_congestion_avoidance();
    for (int i = 0; i < 4; i++) {
        ack_each(1);
        cr_assert_eq(cwnd(), 5 * M, "ack %d of the round: %u", i, cwnd());
    }
    ack_each(1);
    cr_assert_eq(cwnd(), 6 * M, "one round, one segment more");
    ack_each(5);
    cr_assert_eq(cwnd(), 6 * M);
    ack_each(1);
    cr_assert_eq(cwnd(), 7 * M);
}

/* RFC 3042: the first and second duplicate ACKs each send exactly one new
 * segment (cwnd unchanged). */
Test(cc_newreno, limited_transmit_one_new_segment_per_dupack, .init = nr_setup,
     .fini = fx_teardown)
{
    queue(290 * M);
    cap_clear();
    dupack();
    struct tseg s = one_seg();
    cr_assert_eq(off(s.seq), 10 * M, "new data, after the flight");
    cr_assert_eq(s.len, M);
    cr_assert_eq(cwnd(), 10 * M);
    cap_clear();
    dupack();
    s = one_seg();
    cr_assert_eq(off(s.seq), 11 * M);
    cr_assert_eq(info().cc_phase, SS_CC_DISORDER);
}

/* RFC 5681 3.2: the third duplicate ACK resends SND.UNA's segment, sets
 * ssthresh = max(FlightSize/2, 2*SMSS) without limited transmit's
 * segments, cwnd = ssthresh + 3*SMSS. */
Test(cc_newreno, third_dupack_fast_retransmit, .init = nr_setup, .fini = fx_teardown)
{
    queue(290 * M);
    dupack();
    dupack();
    cap_clear();
    dupack();
    struct tseg s = one_seg();
    cr_assert_eq(off(s.seq), 0, "SND.UNA's segment");
    cr_assert_eq(s.len, M);
    cr_assert_eq(ssthresh(), 5 * M, "FlightSize 10 segments (+2 limited transmit)");
    cr_assert_eq(cwnd(), 8 * M);
    cr_assert_eq(info().cc_phase, SS_CC_RECOVERY);
    cr_assert_eq(info().retransmits, 1);
    cr_assert(traced("dup ACK #3 -> fast retransmit, enter fast recovery: cwnd=8000 "
                     "ssthresh=5000"));
    /* A fourth inflates cwnd by one SMSS (RFC 5681 3.2 (4)). */
    dupack();
    cr_assert_eq(cwnd(), 9 * M);
}

/* ssthresh is at least 2*SMSS when little is in flight. */
Test(cc_newreno, fast_retransmit_ssthresh_floor_two_segments, .init = nr_setup,
     .fini = fx_teardown)
{
    queue(3 * M);
    dupack();
    dupack();
    cap_clear();
    dupack();
    cr_assert_eq(off(one_seg().seq), 0);
    cr_assert_eq(ssthresh(), 2 * M, "max(3000/2, 2000)");
    cr_assert_eq(cwnd(), 5 * M);
}

static void into_fast_recovery(void)
{
    queue(290 * M);
    dupack();
    dupack();
    dupack();
    cr_assert_eq(info().cc_phase, SS_CC_RECOVERY);
    cap_clear();
}

/* RFC 6582 3.2 (5): a partial ACK resends the next hole at once, deflates
 * cwnd by what it acknowledged (+1 SMSS), and stays in recovery. */
Test(cc_newreno, partial_ack_retransmits_next_hole, .init = nr_setup, .fini = fx_teardown)
{
    into_fast_recovery();
    ack_to(2 * M);              /* the peer misses the third segment too */
    struct tseg s = one_seg();
    cr_assert_eq(off(s.seq), 2 * M, "the next hole");
    cr_assert_eq(s.len, M);
    cr_assert_eq(cwnd(), 8 * M - 2 * M + M);
    cr_assert_eq(info().cc_phase, SS_CC_RECOVERY);
    cr_assert(traced("partial ACK -> retransmit next hole"));
}

/* RFC 6582 3.2 (3): an ACK of everything up to `recover` ends recovery
 * with cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS). */
Test(cc_newreno, full_ack_exits_recovery, .init = nr_setup, .fini = fx_teardown)
{
    into_fast_recovery();
    ack_to(12 * M);             /* recover: SND.MAX at the third dup ACK */
    cr_assert_eq(info().cc_phase, SS_CC_OPEN);
    cr_assert_eq(cwnd(), 2 * M, "min(5000, max(0, 1000) + 1000)");
    cr_assert_eq(ssthresh(), 5 * M);
    cr_assert(traced("exit fast recovery: cwnd=2000 ssthresh=5000"));
    cr_assert_eq(count_data_segs(), 2);
}

/* RFC 6582 3.2 (2): duplicate ACKs that do not cover more than `recover`
 * start no second recovery (they may come from the same window's losses). */
Test(cc_newreno, no_second_recovery_at_recover, .init = nr_setup, .fini = fx_teardown)
{
    into_fast_recovery();
    ack_to(12 * M);
    uint64_t rtx = info().retransmits;
    dupack();
    dupack();
    dupack();
    cr_assert_eq(info().retransmits, rtx, "no fast retransmit");
    cr_assert_eq(ssthresh(), 5 * M);
    cr_assert_eq(info().cc_phase, SS_CC_DISORDER);
}

/* RFC 5681 2: an ACK that changes the window, or carries data, is not a
 * duplicate ACK: three of them start nothing. */
Test(cc_newreno, dupack_needs_same_window_and_no_data, .init = nr_setup, .fini = fx_teardown)
{
    queue(290 * M);
    cap_clear();
    for (int i = 0; i < 3; i++)
        seg_in(P1, una(), SS_TCP_ACK, (uint16_t)(60000 + i), NULL, 0);
    cr_assert_eq(info().cc_phase, SS_CC_OPEN);
    for (int i = 0; i < 3; i++)
        seg_in(P1 + (uint32_t)i, una(), SS_TCP_ACK | SS_TCP_PSH, 60002, "x", 1);
    cr_assert_eq(info().cc_phase, SS_CC_OPEN);
    cr_assert_eq(info().retransmits, 0);
    cr_assert_eq(ssthresh(), UINT32_MAX);
}

/* RFC 5681 3.1 (4) and RFC 6298 (5.4): on a timeout ssthresh =
 * max(FlightSize/2, 2*SMSS), cwnd = 1 SMSS, and only SND.UNA's segment
 * is resent; a second timeout of the same segment keeps ssthresh. */
Test(cc_newreno, rto_gives_one_mss, .init = nr_setup, .fini = fx_teardown)
{
    queue(290 * M);
    cap_clear();
    struct ss_stack_sock_info in = info();
    advance(in.rto_us);
    struct tseg s = one_seg();
    cr_assert_eq(off(s.seq), 0);
    cr_assert_eq(s.len, M);
    cr_assert_eq(cwnd(), M);
    cr_assert_eq(ssthresh(), 5 * M);
    cr_assert_eq(info().cc_phase, SS_CC_LOSS);
    cr_assert(traced("RTO -> cwnd 1 MSS: cwnd=1000 ssthresh=5000 flight=10000"));
    cap_clear();
    advance(info().rto_us);
    cr_assert_eq(off(one_seg().seq), 0);
    cr_assert_eq(ssthresh(), 5 * M, "held on the second timeout");
    cr_assert_eq(cwnd(), M);
}

/* RFC 5681 4.1: idle for more than one RTO, cwnd = min(IW, cwnd); idle
 * for less, cwnd stays. */
Test(cc_newreno, restart_after_idle, .init = nr_setup, .fini = fx_teardown)
{
    queue(30 * M);
    now += RTT;
    ack_each(10);
    cr_assert_eq(cwnd(), 20 * M);
    ack_to(30 * M);             /* all acknowledged: + min(20000, 2*SMSS) */
    cr_assert_eq(cwnd(), 22 * M);
    uint32_t rto = info().rto_us;
    now += rto / 2;
    cap_clear();
    queue(25 * M);
    cr_assert_eq(ncap, 22, "idle < RTO: the whole cwnd");
    cr_assert_eq(cwnd(), 22 * M);
    now += RTT;
    ack_to(52 * M);
    cr_assert_eq(ncap, 25);
    ack_to(55 * M);
    cr_assert_eq(cwnd(), 24 * M);
    now += info().rto_us + 1;
    cap_clear();
    queue(30 * M);
    cr_assert_eq(cwnd(), 10 * M, "idle > RTO: back to the initial window");
    cr_assert_eq(ncap, 10);
    cr_assert(traced("idle restart -> cwnd min(IW, cwnd): cwnd=10000"));
}

/* ===================== CUBIC (RFC 9438) ================================== */

/* The expected windows come from RFC 9438's equations here, in the test:
 * W_cubic(t) = C*(t-K)^3 + W_max, K = cbrt((W_max - cwnd_epoch)/C) (eq. 2),
 * target = W_cubic(t+RTT) clamped to [cwnd, 1.5*cwnd], cwnd += (target -
 * cwnd)/cwnd per SMSS acked; W_est += alpha*acked/cwnd with alpha =
 * 3(1-beta)/(1+beta) (1 once W_est >= cwnd_prior), and cwnd = W_est while
 * W_cubic(t) < W_est; on loss W_max = cwnd (fast convergence: cwnd*(1+beta)/2
 * when below the old W_max), ssthresh = cwnd*beta. Windows in segments. */
#define C_ 0.4
#define BETA 0.7

struct cubic_model {
    double w_max, k, w_est, cwnd_prior;
    uint64_t epoch;
    bool in_epoch;
};

static double w_cubic_at(const struct cubic_model *m, double t)
{
    return C_ * pow(t - m->k, 3) + m->w_max;
}

/* A congestion event at window cw (bytes): returns ssthresh in bytes. */
static uint32_t model_loss(struct cubic_model *m, uint32_t cw_bytes)
{
    double cw = (double)cw_bytes / M;
    m->w_max = cw < m->w_max ? cw * (1 + BETA) / 2 : cw;
    m->cwnd_prior = cw;
    m->in_epoch = false;
    return (uint32_t)((uint64_t)cw_bytes * 7 / 10);
}

/* An ACK of acked bytes at time t_now in congestion avoidance. */
static uint32_t model_ack(struct cubic_model *m, uint32_t cw_bytes, uint32_t acked,
                          uint64_t t_now, double rtt_s)
{
    double cw = (double)cw_bytes / M;
    if (!m->in_epoch) {
        m->in_epoch = true;
        m->epoch = t_now;
        m->k = cw < m->w_max ? cbrt((m->w_max - cw) / C_) : 0;
        if (cw >= m->w_max)
            m->w_max = cw;
        m->w_est = cw;
    }
    double t = (double)(t_now - m->epoch) / 1e6;
    double alpha = m->w_est >= m->cwnd_prior ? 1.0 : 3 * (1 - BETA) / (1 + BETA);
    m->w_est += alpha * (double)acked / (double)cw_bytes;
    if (w_cubic_at(m, t) < m->w_est) {
        uint32_t e = (uint32_t)(m->w_est * M);
        return e > cw_bytes ? e : cw_bytes;
    }
    double target = w_cubic_at(m, t + rtt_s);
    if (target < cw)
        target = cw;
    if (target > 1.5 * cw)
        target = 1.5 * cw;
    uint32_t tb = (uint32_t)(target * M);
    if (tb <= cw_bytes)
        return cw_bytes;
    return cw_bytes + (uint32_t)((uint64_t)(tb - cw_bytes) * acked / cw_bytes);
}

static double srtt_s(void) { return (double)info().srtt_us / 1e6; }

/* Fast recovery from the initial window of 20 segments and a full ACK:
 * W_max 20, ssthresh = cwnd = 14 segments (RFC 9438 4.6). */
static void cubic_first_loss(struct cubic_model *m)
{
    memset(m, 0, sizeof *m);
    queue(250 * M);
    cr_assert_eq(cwnd(), 20 * M);
    now += RTT;
    dupack();
    dupack();
    dupack();
    uint32_t want = model_loss(m, 20 * M);
    cr_assert_eq(ssthresh(), want);
    cr_assert_eq(ssthresh(), 14 * M);
    cr_assert_eq(cwnd(), 17 * M, "ssthresh + 3*SMSS in fast recovery");
    ack_to(22 * M);
    cr_assert_eq(cwnd(), 14 * M, "recovery over: cwnd = ssthresh");
    cr_assert_eq(info().cc_phase, SS_CC_OPEN);
}

/* One ACK for everything in flight at now; returns what the model says. */
static uint32_t cubic_ack_all(struct cubic_model *m)
{
    struct ss_stack_sock_info in = info();
    uint32_t before = in.cwnd;
    uint32_t acked = in.snd_nxt - in.snd_una;
    cap_clear();
    ack_to(off(in.snd_nxt));
    return model_ack(m, before, acked, now, srtt_s());
}

Test(cc_cubic, default_algorithm_is_cubic, .init = cubic_setup, .fini = fx_teardown)
{
    int v = 0;
    cr_assert_eq(ss_stack_sock_getopt(st, sd, SS_SO_CONGESTION, &v), 0);
    cr_assert_eq(v, SS_CC_CUBIC);
    struct ss_stack_cfg c;
    ss_stack_cfg_default(&c);
    cr_assert_eq(c.cc_algo, SS_CC_CUBIC);
    cr_assert_eq(c.init_cwnd, 10);
    cr_assert_str_eq(ss_tcp_cc_name(SS_CC_CUBIC), "cubic");
    cr_assert_eq(ss_tcp_cc_parse("NewReno"), SS_CC_NEWRENO);
    cr_assert_lt(ss_tcp_cc_parse("vegas"), 0);
    cr_assert_lt(ss_stack_sock_setopt(st, sd, SS_SO_CONGESTION, 99), 0);
}

/* RFC 9438 4.6: ssthresh = 0.7*cwnd on the third duplicate ACK. */
Test(cc_cubic, multiplicative_decrease_beta_0_7, .init = cubic_setup, .fini = fx_teardown)
{
    struct cubic_model m;
    cubic_first_loss(&m);
}

/* RFC 9438 4.3: just after the reduction W_cubic(t) is below W_est, so
 * cwnd follows the Reno-friendly estimate. */
Test(cc_cubic, reno_friendly_region, .init = cubic_setup, .fini = fx_teardown)
{
    struct cubic_model m;
    cubic_first_loss(&m);
    now += RTT;
    uint32_t want = cubic_ack_all(&m);
    cr_assert_lt(w_cubic_at(&m, 0), m.w_est, "the test's premise: Reno-friendly");
    cr_assert_eq(cwnd(), want, "cwnd %u, W_est*MSS %u", cwnd(), want);
    cr_assert_eq(want, (uint32_t)((14 + 3 * 0.3 / 1.7) * M));
}

/* RFC 9438 4.2, 4.4, 4.5: later ACKs follow W_cubic(t+RTT): concave below
 * W_max (t < K), then convex past it (t > K). */
Test(cc_cubic, window_follows_w_cubic, .init = cubic_setup, .fini = fx_teardown)
{
    struct cubic_model m;
    cubic_first_loss(&m);
    now += RTT;
    uint32_t want = cubic_ack_all(&m);              /* t = 0: the epoch starts */
    cr_assert_eq(cwnd(), want);
    cr_assert(fabs(m.k - 2.4662) < 1e-4, "K = cbrt((20 - 14)/0.4): %.17g", m.k);
    now += 2 * SEC;                                 /* t = 2 s < K = 2.47 s */
    want = cubic_ack_all(&m);
    cr_assert_gt(w_cubic_at(&m, 2.0), m.w_est, "the test's premise: cubic region");
    cr_assert_eq(cwnd(), want, "concave: cwnd %u, want %u", cwnd(), want);
    now += 2 * SEC;                                 /* t = 4 s > K */
    want = cubic_ack_all(&m);
    cr_assert_gt(w_cubic_at(&m, 4.0), 20.0, "the test's premise: convex, above W_max");
    cr_assert_eq(cwnd(), want, "convex: cwnd %u, want %u", cwnd(), want);
    now += 1 * SEC;
    want = cubic_ack_all(&m);
    cr_assert_eq(cwnd(), want, "convex: cwnd %u, want %u", cwnd(), want);
    /* Far out on the curve the target is clamped to 1.5*cwnd (4.2). */
    now += 5 * SEC;
    uint32_t before = cwnd();
    want = cubic_ack_all(&m);
    cr_assert_gt(w_cubic_at(&m, 10.0), 1.5 * before / M, "the test's premise: clamped");
    cr_assert_eq(cwnd(), want, "clamped: cwnd %u, want %u", cwnd(), want);
}

/* RFC 9438 4.7: a loss below the last W_max lowers W_max to
 * cwnd*(1+beta)/2, and the curve's plateau with it. */
Test(cc_cubic, fast_convergence, .init = cubic_setup, .fini = fx_teardown)
{
    struct cubic_model m;
    cubic_first_loss(&m);
    now += RTT;
    /* One segment acknowledged, so the next losses are past `recover`. */
    struct ss_stack_sock_info in = info();
    uint32_t want = model_ack(&m, in.cwnd, M, now, srtt_s());
    ack_to(off(in.snd_una) + M);
    cr_assert_eq(cwnd(), want);
    uint32_t at_loss = cwnd();
    dupack();
    dupack();
    dupack();
    cr_assert_eq(info().cc_phase, SS_CC_RECOVERY);
    uint32_t ss = model_loss(&m, at_loss);
    cr_assert_eq(ssthresh(), ss);
    cr_assert_lt(m.w_max, (double)at_loss / M, "the test's premise: fast convergence");
    ack_to(off(info().snd_nxt));
    cr_assert_eq(cwnd(), ss);
    now += RTT;
    want = cubic_ack_all(&m);
    cr_assert_eq(cwnd(), want);
    now += 1500 * MS;
    want = cubic_ack_all(&m);
    cr_assert_gt(w_cubic_at(&m, 1.5), m.w_est, "the test's premise: cubic region");
    cr_assert_eq(cwnd(), want, "cwnd %u, want %u", cwnd(), want);
}

/* RFC 9438 4.8 with RFC 5681: a timeout gives cwnd 1 SMSS and ssthresh
 * 0.7*cwnd. */
Test(cc_cubic, rto_gives_one_mss, .init = cubic_setup, .fini = fx_teardown)
{
    queue(50 * M);
    cap_clear();
    advance(info().rto_us);
    cr_assert_eq(off(one_seg().seq), 0);
    cr_assert_eq(cwnd(), M);
    cr_assert_eq(ssthresh(), 14 * M);
    /* RFC 5681 3.1: the same segment timing out again keeps ssthresh. */
    cap_clear();
    advance(info().rto_us);
    cr_assert_eq(off(one_seg().seq), 0);
    cr_assert_eq(ssthresh(), 14 * M);
    cr_assert_eq(cwnd(), M);
}

/* Slow start is RFC 5681's for CUBIC too (RFC 9438 4.10). */
Test(cc_cubic, slow_start_doubles_cwnd_per_rtt, .init = cubic_setup, .fini = fx_teardown)
{
    cap_clear();
    queue(290 * M);
    cr_assert_eq(ncap, 20);
    now += RTT;
    ack_each(20);
    cr_assert_eq(cwnd(), 40 * M);
}

/* ================= SACK loss recovery (RFC 6675) ========================= */

/* A passive connection: the peer's SYN carries the options syn[nsyn],
 * its handshake ACK the options ack_opt(SYN,ACK) returns into a[]; the
 * stack's configuration through tw. Returns our SYN,ACK. */
static struct tseg passive_with(void (*tw)(struct ss_stack_cfg *), const uint8_t *syn,
                                size_t nsyn, size_t (*ack_opt)(uint8_t *a, struct tseg s))
{
    fx_setup_with(tw);
    memset(data, 'd', sizeof data);
    int l = ss_tcp_listen(st, US_PORT, 8);
    cr_assert_geq(l, 0);
    cap_clear();
    peer_send_opts(PEER_PORT, US_PORT, PEER_ISS, 0, SS_TCP_SYN, 65535, syn, nsyn, NULL, 0);
    struct tseg s = one_seg();
    iss = s.seq;
    now += RTT;
    uint8_t a[40];
    size_t n = ack_opt ? ack_opt(a, s) : 0;
    peer_send_opts(PEER_PORT, US_PORT, P1, iss + 1, SS_TCP_ACK, 65535, a, n, NULL, 0);
    uint32_t ra;
    uint16_t rp;
    sd = ss_tcp_accept(st, l, &ra, &rp);
    cr_assert_geq(sd, 0);
    cap_clear();
    return s;
}

/* A passive connection that negotiated SACK (MSS 1000, sackOK on the
 * peer's SYN), NewReno. */
static void sack_setup_with(void (*tw)(struct ss_stack_cfg *))
{
    tweak_algo = SS_CC_NEWRENO;
    tweak_iw = 10;
    uint8_t o[8];
    size_t n = opt_mss(o, M);
    n += opt_sackok(o + n);
    struct tseg s = passive_with(tw, o, n, NULL);
    cr_assert(s.sack_ok);
    cr_assert_eq(info().options & SS_TCPI_OPT_SACK, SS_TCPI_OPT_SACK);
}

static void sack_setup(void)
{
    sack_setup_with(tweak);
}

/* What the peer holds above its cumulative ACK, as byte offsets. */
static uint32_t sblk[4][2];
static int nsblk;

/* Every data segment captured since the last check: none may touch a
 * SACKed range; the retransmissions (below hi, the highest offset sent
 * so far) are appended to rtx[]. */
static uint32_t sent_hi;
static uint32_t rtx[32];
static int nrtx;

static void check_caps(void)
{
    for (int i = 0; i < ncap; i++) {
        struct tseg s = cap_tcp(i);
        if (!s.len)
            continue;
        uint32_t a = off(s.seq), b = a + s.len;
        for (int k = 0; k < nsblk; k++)
            cr_assert(b <= sblk[k][0] || a >= sblk[k][1],
                      "SACKed data sent again: [%u, %u) in [%u, %u)", a, b, sblk[k][0],
                      sblk[k][1]);
        if (a < sent_hi) {
            cr_assert_lt(nrtx, 32);
            rtx[nrtx++] = a;
        }
        if (b > sent_hi)
            sent_hi = b;
    }
    cap_clear();
}

/* An ACK of offset o carrying the SACK blocks sblk[] (most recent first
 * is not needed: the scoreboard sorts). */
static void sack_ack(uint32_t o)
{
    uint32_t blk[4][2];
    for (int k = 0; k < nsblk; k++) {
        blk[k][0] = iss + 1 + sblk[k][0];
        blk[k][1] = iss + 1 + sblk[k][1];
    }
    uint8_t opt[40];
    size_t n = nsblk ? opt_sack(opt, nsblk, (const uint32_t(*)[2])blk) : 0;
    peer_send_opts(PEER_PORT, US_PORT, P1, iss + 1 + o, SS_TCP_ACK, 65535, opt, n, NULL, 0);
    check_caps();
}

static void set_blocks(int n, const uint32_t (*b)[2])
{
    nsblk = n;
    for (int k = 0; k < n; k++) {
        sblk[k][0] = b[k][0];
        sblk[k][1] = b[k][1];
    }
}

/* A fresh scoreboard view, then n bytes queued and what goes out
 * captured (sent_hi). */
static void send_flight(size_t n)
{
    nsblk = 0;
    nrtx = 0;
    sent_hi = 0;
    queue(n);
    check_caps();
}

/* A 10-segment flight (segments 1..10 at offsets 0..9000); segments 2
 * (offset 1000) and 5 (offset 4000) are lost, the peer SACKs each other
 * one as it arrives. */
static void flight_with_two_losses(void)
{
    send_flight(10 * M);
    cr_assert_eq(sent_hi, 10 * M, "the whole flight in the IW");
    sack_ack(1 * M);   /* segment 1 */
    set_blocks(1, (const uint32_t[][2]){{2 * M, 3 * M}});
    sack_ack(1 * M);   /* 3 */
    set_blocks(1, (const uint32_t[][2]){{2 * M, 4 * M}});
    sack_ack(1 * M);   /* 4 */
    cr_assert_eq(info().cc_phase, SS_CC_DISORDER);
    cr_assert_eq(nrtx, 0);
    set_blocks(2, (const uint32_t[][2]){{2 * M, 4 * M}, {5 * M, 6 * M}});
    sack_ack(1 * M);   /* 6: the third duplicate ACK */
    cr_assert_eq(info().cc_phase, SS_CC_RECOVERY);
    cr_assert_eq(ssthresh(), 4500, "FlightSize 9000 / 2");
    cr_assert_eq(cwnd(), 4500, "RFC 6675 (4.2): cwnd = ssthresh, no 3*SMSS");
    cr_assert_eq(nrtx, 1);
    cr_assert_eq(rtx[0], 1 * M, "SND.UNA's segment first");
    for (uint32_t e = 7; e <= 10; e++) {   /* 7..10 */
        set_blocks(2, (const uint32_t[][2]){{2 * M, 4 * M}, {5 * M, e * M}});
        sack_ack(1 * M);
    }
}

/* RFC 6675 NextSeg (1): exactly the lost segments are resent, at their
 * exact sequence numbers, each once; SACKed data never; recovery ends
 * at RecoveryPoint. */
Test(cc_sack, retransmits_exactly_the_holes, .init = sack_setup, .fini = fx_teardown)
{
    flight_with_two_losses();
    cr_assert_eq(nrtx, 2, "%d retransmissions", nrtx);
    cr_assert_eq(rtx[0], 1 * M);
    cr_assert_eq(rtx[1], 4 * M, "the second hole once IsLost (3 SMSS SACKed above)");
    cr_assert_eq(info().retransmits, 2);
    /* The first retransmission arrives: a partial ACK, nothing resent. */
    set_blocks(1, (const uint32_t[][2]){{5 * M, 10 * M}});
    sack_ack(4 * M);
    cr_assert_eq(info().cc_phase, SS_CC_RECOVERY);
    cr_assert_eq(nrtx, 2);
    nsblk = 0;
    sack_ack(10 * M);
    cr_assert_eq(info().cc_phase, SS_CC_OPEN, "SND.UNA >= RecoveryPoint");
    cr_assert_eq(nrtx, 2);
    cr_assert_eq(info().retransmits, 2);
}

/* After an RTO the scoreboard is kept (as Linux): go-back-N from SND.UNA
 * skips the SACKed ranges, so exactly offsets 1000 and 4000 go out. */
Test(cc_sack, rto_go_back_n_skips_sacked, .init = sack_setup, .fini = fx_teardown)
{
    flight_with_two_losses();
    cr_assert_eq(nrtx, 2);
    nrtx = 0;
    /* Both retransmissions are lost too: the RTO fires. */
    advance(info().rto_us);
    check_caps();
    cr_assert_eq(info().cc_phase, SS_CC_LOSS);
    cr_assert_eq(cwnd(), M);
    cr_assert_eq(nrtx, 1);
    cr_assert_eq(rtx[0], 1 * M, "SND.UNA's segment");
    /* It arrives: the peer acknowledges up to the second hole. */
    set_blocks(1, (const uint32_t[][2]){{5 * M, 10 * M}});
    sack_ack(4 * M);
    cr_assert_eq(nrtx, 2, "%d sent", nrtx);
    cr_assert_eq(rtx[1], 4 * M, "the next unSACKed segment, 5000-9999 skipped");
    nsblk = 0;
    sack_ack(10 * M);
    cr_assert_eq(info().cc_phase, SS_CC_OPEN);
    cr_assert_eq(nrtx, 2, "nothing else was resent");
    cr_assert_eq(info().retransmits, 4);
}

/* A retransmission lost too (RFC 6675 has no rule for it; without one the
 * connection waits for the RTO): 20 segments queued, the IW of 10 sent,
 * segment 2 (offset 1000) lost, and its fast retransmission lost as well.
 * When it goes out, 14000 has been sent (the IW, limited transmit, and
 * what pipe allowed). As 10000.. arrive, new data 14000.. goes out; once
 * three segments sent after the retransmission (14000-17000) are SACKed
 * and 1000 is still a hole, 1000 is resent at once, with no timer. */
Test(cc_sack, lost_retransmission_resent_without_rto, .init = sack_setup, .fini = fx_teardown)
{
    send_flight(20 * M);
    cr_assert_eq(sent_hi, 10 * M);
    sack_ack(1 * M);
    for (uint32_t e = 3; e <= 10; e++) {   /* segments 3..10 arrive */
        set_blocks(1, (const uint32_t[][2]){{2 * M, e * M}});
        sack_ack(1 * M);
    }
    cr_assert_eq(info().cc_phase, SS_CC_RECOVERY);
    cr_assert_eq(nrtx, 1);
    cr_assert_eq(rtx[0], 1 * M);
    cr_assert_eq(sent_hi, 14 * M, "sent by then: %u", sent_hi);
    /* 10000.. arrive one by one; the retransmission of 1000 does not. */
    uint32_t timeouts = info().timeouts;
    for (uint32_t e = 11; e <= 17; e++) {
        set_blocks(1, (const uint32_t[][2]){{2 * M, e * M}});
        sack_ack(1 * M);
        cr_assert_eq(nrtx, e < 17 ? 1 : 2, "after segment %u: %d retransmissions", e, nrtx);
    }
    cr_assert_eq(rtx[1], 1 * M, "the lost retransmission, resent");
    cr_assert_eq(info().timeouts, timeouts, "no RTO");
    cr_assert(traced("retransmission lost too"));
    /* It arrives: everything SACKed is acknowledged. */
    nsblk = 0;
    sack_ack(17 * M);
    cr_assert_eq(una(), iss + 1 + 17 * M);
    cr_assert_eq(nrtx, 2);
}

/* With SACK a new loss right at the old RecoveryPoint starts recovery:
 * recovery ends with SND.UNA = recover, and the very next segment is
 * lost. RFC 6582's "covers more than recover" guard is for NewReno,
 * which cannot tell new duplicate ACKs from old ones; SACK blocks above
 * RecoveryPoint can (RFC 6675 5 has no such guard). */
Test(cc_sack, new_loss_at_recovery_point, .init = sack_setup, .fini = fx_teardown)
{
    flight_with_two_losses();
    nsblk = 0;
    sack_ack(10 * M);
    cr_assert_eq(info().cc_phase, SS_CC_OPEN);
    nrtx = 0;
    queue(10 * M);   /* 10000 and 11000 go out (cwnd 2 SMSS); 10000 is lost */
    check_caps();
    cr_assert_eq(sent_hi, 12 * M, "sent: %u", sent_hi);
    /* 11000, then 12000 and 13000 (limited transmit) arrive. */
    for (uint32_t e = 12; e <= 14; e++) {
        set_blocks(1, (const uint32_t[][2]){{11 * M, e * M}});
        sack_ack(10 * M);
    }
    cr_assert_eq(info().cc_phase, SS_CC_RECOVERY);
    cr_assert_eq(nrtx, 1);
    cr_assert_eq(rtx[0], 10 * M, "the segment at the old RecoveryPoint");
}

/* RFC 6675 2: with SACK, an ACK that SACKs new octets is a duplicate ACK
 * even when its window differs (a receiver that reads as data arrives
 * opens its window on every ACK, as Linux's does). RFC 5681's definition
 * would count none of these three, and the hole would wait for the RTO. */
Test(cc_sack, dupacks_with_changing_window, .init = sack_setup, .fini = fx_teardown)
{
    send_flight(10 * M);
    sack_ack(1 * M);
    uint16_t win = 65535;
    for (uint32_t e = 3; e <= 5; e++) {   /* segments 3, 4, 5 arrive */
        set_blocks(1, (const uint32_t[][2]){{2 * M, e * M}});
        uint32_t blk[1][2] = {{iss + 1 + 2 * M, iss + 1 + e * M}};
        uint8_t opt[40];
        size_t n = opt_sack(opt, 1, (const uint32_t(*)[2])blk);
        win -= 1000;
        peer_send_opts(PEER_PORT, US_PORT, P1, iss + 1 + 1 * M, SS_TCP_ACK, win, opt, n, NULL, 0);
        check_caps();
    }
    cr_assert_eq(info().cc_phase, SS_CC_RECOVERY);
    cr_assert_eq(nrtx, 1);
    cr_assert_eq(rtx[0], 1 * M);
}

/* After an RTO the go-back-N's own retransmissions are watched too. In
 * recovery 10000 and 11000 went out as new data; all of it times out.
 * After the RTO, 1000 arrives; the go-back-N resends 4000 (lost again),
 * 10000 and 11000 (they arrive), then new data. The blocks SACKed before
 * the resend (5000-10000) prove nothing; on the third segment SACKed
 * after it, 4000 goes out again, with no second RTO. */
Test(cc_sack, lost_retransmission_after_rto, .init = sack_setup, .fini = fx_teardown)
{
    flight_with_two_losses();
    queue(10 * M);   /* more data behind the flight */
    check_caps();
    cr_assert_eq(sent_hi, 12 * M, "new data in recovery: up to %u", sent_hi);
    nrtx = 0;
    advance(info().rto_us);
    check_caps();
    cr_assert_eq(info().cc_phase, SS_CC_LOSS);
    cr_assert_eq(nrtx, 1);
    cr_assert_eq(rtx[0], 1 * M);
    uint32_t timeouts = info().timeouts;
    set_blocks(1, (const uint32_t[][2]){{5 * M, 10 * M}});
    sack_ack(4 * M);   /* 1000 arrived */
    cr_assert_eq(nrtx, 4, "%d", nrtx);
    cr_assert_eq(rtx[1], 4 * M);
    cr_assert_eq(rtx[2], 10 * M);
    cr_assert_eq(rtx[3], 11 * M);
    set_blocks(1, (const uint32_t[][2]){{5 * M, 11 * M}});
    sack_ack(4 * M);   /* 10000 arrived */
    set_blocks(1, (const uint32_t[][2]){{5 * M, 12 * M}});
    sack_ack(4 * M);   /* 11000: two segments after the resend, not yet */
    cr_assert_eq(nrtx, 4, "%d", nrtx);
    cr_assert_geq(sent_hi, 13 * M, "new data went out: up to %u", sent_hi);
    set_blocks(1, (const uint32_t[][2]){{5 * M, 13 * M}});
    sack_ack(4 * M);   /* 12000: the third */
    cr_assert_eq(nrtx, 5, "%d", nrtx);
    cr_assert_eq(rtx[4], 4 * M, "the lost resend, again");
    cr_assert_eq(info().timeouts, timeouts, "no second RTO");
}

/* ================= HyStart++ (RFC 9406) ================================== */

/* A passive connection with timestamps (an RTT sample on every ACK),
 * MSS 1000, so segments of TSM = 988 bytes (12 for the TS option),
 * NewReno, IW 4 (so that the fixture's 256 captured packets hold every
 * round); hystart as tweak_hystart says. */
#define TSM 988u
static bool tweak_hystart = true;
/* HyStart++'s trace marks seen so far (the fixture keeps only the first
 * TRACE_MAX lines, so each round reads and clears them). */
static bool hs_css, hs_ca, hs_any;

static void hs_scan(void)
{
    hs_css |= traced("HyStart++: RTT rose -> conservative slow start");
    hs_ca |= traced("HyStart++: CSS over -> ssthresh = cwnd");
    hs_any |= traced("HyStart++");
    ntrace = 0;
}

static uint32_t peer_tsval = 1000;

static void tweak_hs(struct ss_stack_cfg *c)
{
    tweak(c);
    c->hystart = tweak_hystart;
}

static size_t ts_echo(uint8_t *a, struct tseg s)
{
    return opt_ts(a, peer_tsval++, s.ts_val);
}

static void ts_setup_algo(int algo)
{
    hs_css = hs_ca = hs_any = false;
    tweak_algo = algo;
    tweak_iw = 4;
    uint8_t o[24];
    size_t n = opt_mss(o, M);
    n += opt_ws(o + n, 7);   /* the peer's window: 65535 << 7, 8 MiB */
    n += opt_ts(o + n, peer_tsval++, 0);
    struct tseg s = passive_with(tweak_hs, o, n, ts_echo);
    cr_assert(s.has_ts);
}

static void ts_setup(void)
{
    ts_setup_algo(SS_CC_NEWRENO);
}

/* CUBIC, whose state shares its place in the TCB with HyStart's until
 * HyStart ends (stack_int.h, tcp_cc_cubic.c). */
static void ts_setup_cubic(void)
{
    ts_setup_algo(SS_CC_CUBIC);
}

/* One round: rtt_ms after the segments captured since the last round
 * went out, each is acknowledged on its own, echoing its TSval, and as
 * much is queued again. Returns how many were acknowledged. */
static int ts_round(uint32_t rtt_ms)
{
    struct tseg segs[256];
    int n = 0;
    for (int i = 0; i < ncap && n < 256; i++) {
        struct tseg s = cap_tcp(i);
        if (s.len)
            segs[n++] = s;
    }
    cap_clear();
    now += (uint64_t)rtt_ms * MS;
    for (int i = 0; i < n; i++) {
        uint8_t o[12];
        size_t k = opt_ts(o, peer_tsval++, segs[i].ts_val);
        uint32_t end = segs[i].seq + segs[i].len;
        peer_send_opts(PEER_PORT, US_PORT, P1, end, SS_TCP_ACK, 65535, o, k, NULL, 0);
        queue(segs[i].len);   /* keep the send buffer full: cwnd, not data, limits */
        hs_scan();
    }
    return n;
}

/* RFC 9406 4.2: while the RTT holds, slow start doubles cwnd per round;
 * when a round's min RTT (after 8 samples) is RttThresh = max(4 ms,
 * min(lastRoundMinRTT / 8, 16 ms)) = 12.5 ms above the last round's,
 * Conservative Slow Start grows by a quarter as much; after 5 CSS rounds
 * ssthresh = cwnd and congestion avoidance follows. */
/* The samples of one round: a round ends when SND.UNA passes what was
 * sent when it began, so a round's first ACKs belong to the test's
 * previous flight and its minimum lags one flight behind the RTT. */
static void hs_rounds(int n, uint32_t rtt_ms)
{
    for (int r = 0; r < n; r++)
        ts_round(rtt_ms);
}

Test(hystart, rtt_rise_enters_css_then_ca, .init = ts_setup, .fini = fx_teardown)
{
    queue(200 * M);
    cr_assert_eq(ts_round(100), 4);
    cr_assert_eq(cwnd(), 8 * TSM);
    /* 110 ms: 10 ms above 100 is below RttThresh (12.5 ms). */
    cr_assert_eq(ts_round(110), 8);
    cr_assert_eq(cwnd(), 16 * TSM, "slow start doubled cwnd");
    cr_assert_eq(ts_round(110), 16);
    cr_assert_eq(cwnd(), 32 * TSM);
    cr_assert(!hs_any, "10 ms < RttThresh");
    /* 125 ms: 15 ms above 110 is past RttThresh (13.75 ms): after 8
     * samples of this flight, CSS. */
    cr_assert_eq(ts_round(125), 32);
    cr_assert(hs_css);
    cr_assert(!hs_ca);
    cr_assert_eq(ssthresh(), UINT32_MAX, "CSS is still slow start");
    /* In CSS each ACK adds a quarter of slow start's increase. */
    uint32_t before = cwnd();
    int acked = ts_round(125);
    cr_assert_eq(cwnd() - before, (uint32_t)acked * (TSM / 4), "%u after %d ACKs",
                 cwnd() - before, acked);
    hs_rounds(6, 125);
    cr_assert(hs_ca, "CSS_ROUNDS = 5 rounds of CSS end slow start");
    cr_assert_neq(ssthresh(), UINT32_MAX);
}

/* The same rounds under CUBIC, the default: its init, its idle restart
 * and its first congestion-avoidance ACK must leave HyStart's fields
 * alone while HyStart runs (they share a place in the TCB), and after
 * CSS its state starts as init left it: W_max = the initial window. */
Test(hystart, same_rounds_under_cubic, .init = ts_setup_cubic, .fini = fx_teardown)
{
    queue(200 * M);
    cr_assert_eq(ts_round(100), 4);
    cr_assert_eq(cwnd(), 8 * TSM);
    cr_assert_eq(ts_round(110), 8);
    cr_assert_eq(cwnd(), 16 * TSM);
    cr_assert_eq(ts_round(110), 16);
    cr_assert_eq(cwnd(), 32 * TSM);
    cr_assert(!hs_any, "10 ms < RttThresh");
    cr_assert_eq(ts_round(125), 32);
    cr_assert(hs_css);
    cr_assert(!hs_ca);
    uint32_t before = cwnd();
    int acked = ts_round(125);
    cr_assert_eq(cwnd() - before, (uint32_t)acked * (TSM / 4));
    hs_rounds(6, 125);
    cr_assert(hs_ca, "CSS_ROUNDS = 5 rounds of CSS end slow start");
    cr_assert_neq(ssthresh(), UINT32_MAX);
}

/* The same RTTs with cfg.hystart off: slow start goes on doubling. */
Test(hystart, off_by_config, .fini = fx_teardown)
{
    tweak_hystart = false;
    ts_setup();
    tweak_hystart = true;
    queue(200 * M);
    ts_round(100);
    ts_round(110);
    ts_round(110);
    ts_round(125);
    cr_assert_eq(ts_round(125), 64);
    cr_assert_eq(cwnd(), 128 * TSM, "slow start all along");
    cr_assert(!hs_any);
    cr_assert_eq(ssthresh(), UINT32_MAX);
}

/* ================= HyStart's ACK train =================================== */

/* A bottleneck path, modelled here: a data segment the stack sends at T
 * is acknowledged on its own, echoing its TSval, at
 * max(T + rtt, the previous ACK + gap): the bottleneck serves one segment
 * per gap, so once a queue forms the ACKs come exactly gap apart. */
struct train_ack { uint64_t at, sent; uint32_t end, tsval; };
static struct train_ack tq[4096];
static int tq_head, tq_tail;
static uint64_t tq_last_at;
static uint32_t tq_hi;               /* the end of the highest segment sent */

static void train_take(uint32_t rtt_ms, uint32_t gap_us)
{
    for (int i = 0; i < ncap; i++) {
        struct tseg s = cap_tcp(i);
        if (!s.len)
            continue;
        uint64_t at = now + (uint64_t)rtt_ms * MS;
        if (tq_tail > 0 && at < tq_last_at + gap_us)
            at = tq_last_at + gap_us;
        tq_last_at = at;
        cr_assert_lt(tq_tail, 4096);
        tq[tq_tail++] = (struct train_ack){ at, now, s.seq + s.len, s.ts_val };
        if (s.seq + s.len - tq_hi < 0x80000000u)
            tq_hi = s.seq + s.len;
    }
    cap_clear();
}

struct train_run {
    int exit_ack;         /* 1-based ACK after which the stack traced the exit; 0: none */
    int model_ack;        /* the ACK where the rule says it must; 0: none */
    int nolow_ack;        /* where it would without the 16-segment floor */
    uint32_t cwnd, ssthresh;   /* right after exit_ack */
};

/* Slow start over the path above until the stack traces the ACK-train
 * exit or max_acks ACKs. The rule, restated here from Linux's
 * tcp_cubic.c rather than read from the stack: a round begins at the ACK
 * that passes the highest sequence sent when the last one began; the
 * train goes on while ACKs come at most 2 ms apart; slow start ends at
 * the first ACK whose train spans more than half the least RTT seen, once
 * cwnd is at least 16 segments. */
static struct train_run run_train(uint32_t rtt_ms, uint32_t gap_us, int max_acks)
{
    struct train_run r = { 0, 0, 0, 0, 0 };
    tq_head = tq_tail = 0;
    tq_hi = iss + 1;
    queue(sizeof data);
    train_take(rtt_ms, gap_us);
    uint32_t window_end = iss + 1;
    uint64_t round_start = 0, train_last = 0, delay_min = UINT64_MAX;
    for (int k = 1; k <= max_acks && tq_head < tq_tail; k++) {
        struct train_ack a = tq[tq_head++];
        now = a.at;
        uint64_t sample = (now / MS - a.sent / MS) * MS;   /* TSval is in ms */
        if (sample < delay_min)
            delay_min = sample;
        if (a.end - window_end < 0x80000000u) {
            round_start = train_last = now;
            window_end = tq_hi;
        }
        if (!r.model_ack && now - train_last <= 2000) {
            train_last = now;
            if (now - round_start > delay_min / 2) {
                if (!r.nolow_ack)
                    r.nolow_ack = k;
                if (cwnd() >= 16 * TSM)
                    r.model_ack = k;
            }
        }
        ntrace = 0;
        uint8_t o[12];
        size_t n = opt_ts(o, peer_tsval++, a.tsval);
        peer_send_opts(PEER_PORT, US_PORT, P1, a.end, SS_TCP_ACK, 65535, o, n, NULL, 0);
        if (traced("HyStart: ACK train > min RTT / 2 -> ssthresh = cwnd")) {
            r.exit_ack = k;
            r.cwnd = cwnd();
            r.ssthresh = ssthresh();
            return r;
        }
        train_take(rtt_ms, gap_us);
    }
    return r;
}

static void train_setup(void)
{
    ts_setup();
    now = (now + MS - 1) / MS * MS;   /* whole ms, so RTT samples are exact */
}

/* 10 ms RTT, a segment per 250 us at the bottleneck (BDP 40 segments),
 * about the 50 Mbit/s path of bench/stack/run: once a round's ACKs have
 * come back to back for more than 5 ms, slow start ends there, ssthresh =
 * cwnd, before the queue could overflow (RFC 9406's delay test saw the
 * queue a few ACKs earlier and entered CSS, which would have grown cwnd
 * for 5 more rounds); congestion avoidance follows. */
Test(hystart_train, a_train_of_half_the_rtt_ends_slow_start, .init = train_setup,
     .fini = fx_teardown)
{
    struct train_run r = run_train(10, 250, 2000);
    cr_assert_neq(r.model_ack, 0);
    cr_assert_eq(r.exit_ack, r.model_ack, "exit after ACK %d, the rule says %d", r.exit_ack,
                 r.model_ack);
    cr_assert_eq(r.ssthresh, r.cwnd);
    cr_assert_geq(r.cwnd, 16 * TSM);
    /* Congestion avoidance now: 50 more ACKs add less than 1 segment. */
    uint32_t c = cwnd();
    for (int i = 0; i < 50 && tq_head < tq_tail; i++) {
        struct train_ack a = tq[tq_head++];
        now = a.at;
        uint8_t o[12];
        size_t n = opt_ts(o, peer_tsval++, a.tsval);
        peer_send_opts(PEER_PORT, US_PORT, P1, a.end, SS_TCP_ACK, 65535, o, n, NULL, 0);
        train_take(10, 250);
    }
    cr_assert_leq(cwnd() - c, TSM, "cwnd grew %u in 50 ACKs", cwnd() - c);
}

/* A 6 ms RTT at a segment per 2 ms (a BDP of 3 segments): the train
 * passes 3 ms while cwnd is under 16 segments; the exit waits for 16
 * (Linux's hystart_low_window). */
Test(hystart_train, not_below_sixteen_segments, .init = train_setup, .fini = fx_teardown)
{
    struct train_run r = run_train(6, 2000, 2000);
    cr_assert_neq(r.model_ack, 0);
    cr_assert_eq(r.exit_ack, r.model_ack, "exit after ACK %d, the rule says %d", r.exit_ack,
                 r.model_ack);
    cr_assert_lt(r.nolow_ack, r.model_ack, "the train was long enough at ACK %d (exit %d)",
                 r.nolow_ack, r.model_ack);
    cr_assert_eq(r.ssthresh, r.cwnd);
}

/* ACKs more than 2 ms apart are no train: no such exit, however long
 * the round (the delay test of RFC 9406 may end slow start instead). */
Test(hystart_train, acks_over_2_ms_apart_are_no_train, .init = train_setup,
     .fini = fx_teardown)
{
    struct train_run r = run_train(10, 2001, 300);
    cr_assert_eq(r.model_ack, 0);
    cr_assert_eq(r.exit_ack, 0);
    cr_assert_geq(cwnd(), 32 * TSM, "cwnd %u: the rounds were long enough", cwnd());
}

/* ================= PRR (RFC 6937) ========================================= */

static void prr_setup(void)
{
    tweak_prr = true;
    sack_setup();
    tweak_prr = false;
}

/* Segments sent by the last sack_ack() (check_caps cleared the capture,
 * so count through sent_hi and nrtx). */
static uint32_t prev_hi;
static int prev_rtx;
static int sent_now(void)
{
    int n = (int)((sent_hi - prev_hi) / M) + (nrtx - prev_rtx);
    prev_hi = sent_hi;
    prev_rtx = nrtx;
    return n;
}

/* One loss (offset 1000) in a flight of 20 queued segments, SACKs one
 * by one. Entry (the third SACK, segment 5): FlightSize 14000 - 1000 less
 * limited transmit's 2000, ssthresh = 5500; RecoverFS = SND.MAX - SND.UNA
 * = 13000; pipe = 14000 - 5000 = 9000 (the hole IsLost). Each later ACK
 * delivers 1000. While pipe > ssthresh, sndcnt = ceil(prr_delivered *
 * 5500 / 13000) - prr_out; below it, min(ssthresh - pipe,
 * max(prr_delivered - prr_out, DeliveredData) + SMSS). Worked by hand:
 *
 *   ACK  delivered  pipe   due(prr)  prr_out  sndcnt  sent
 *    e       1000   9000     424        0      424    1 (fast retransmit, whatever cwnd)
 *    1       2000   9000     847     1000        0    0
 *    2       3000   8000    1270     1000      270    0
 *    3       4000   7000    1693     1000      693    0
 *    4       5000   6000    2116     1000     1116    1
 *    5       6000   6000    2539     2000      539    0
 *    6       7000   5000    SSRB: min(500, 5000+1000) = 500  0
 *    7       8000   4000    SSRB: min(1500, 6000+1000)       1
 *    8       9000   4000    min(1500, 6000+1000)             1
 *
 * Without PRR (RFC 6675 alone) cwnd = ssthresh = 5500 from the start:
 * nothing goes out until pipe is 4500 or less (ACK 6), then one segment
 * per ACK; PRR sent two of those earlier, spread over the ACKs. */
static const int prr_sends[] = {1, 0, 0, 0, 1, 0, 0, 1, 1};

static void one_loss_recovery(int *sends, int n)
{
    send_flight(20 * M);
    cr_assert_eq(sent_hi, 10 * M);
    sack_ack(1 * M);   /* segment 1: slow start, 10000-12000 go out */
    cr_assert_eq(sent_hi, 12 * M);
    prev_hi = sent_hi;
    prev_rtx = 0;
    for (int k = 0; k < 2 + n; k++) {   /* segments 3, 4 (limited transmit), then 5.. */
        set_blocks(1, (const uint32_t[][2]){{2 * M, (uint32_t)(3 + k) * M}});
        sack_ack(1 * M);
        int s = sent_now();
        if (k == 1)
            cr_assert_eq(sent_hi, 14 * M, "limited transmit: %u", sent_hi);
        if (k >= 2)
            sends[k - 2] = s;
    }
}

Test(cc_prr, proportional_then_slow_start_reduction, .init = prr_setup, .fini = fx_teardown)
{
    int n = (int)(sizeof prr_sends / sizeof *prr_sends), got[16];
    one_loss_recovery(got, n);
    cr_assert_eq(info().cc_phase, SS_CC_RECOVERY);
    cr_assert_eq(ssthresh(), 5500);
    for (int k = 0; k < n; k++)
        cr_assert_eq(got[k], prr_sends[k], "ACK %d in recovery: %d segments sent, RFC 6937 says %d",
                     k, got[k], prr_sends[k]);
    cr_assert_eq(rtx[0], 1 * M, "the fast retransmission");
    cr_assert_eq(nrtx, 1);
}

/* The same flight without PRR: RFC 6675's cwnd = ssthresh holds back
 * everything while cwnd - pipe < 1 SMSS. */
Test(cc_prr, off_by_config_is_rfc6675, .init = sack_setup, .fini = fx_teardown)
{
    static const int rfc6675_sends[] = {1, 0, 0, 0, 0, 0, 1, 1, 1};
    int n = (int)(sizeof rfc6675_sends / sizeof *rfc6675_sends), got[16];
    one_loss_recovery(got, n);
    cr_assert_eq(cwnd(), 5500);
    for (int k = 0; k < n; k++)
        cr_assert_eq(got[k], rfc6675_sends[k], "ACK %d in recovery: %d segments sent, RFC 6675 says %d",
                     k, got[k], rfc6675_sends[k]);
}

/* ================= TLP (RFC 8985 7) ======================================= */

static bool tweak_tlp = true;

static void tweak_tlp_cfg(struct ss_stack_cfg *c)
{
    tweak(c);
    c->tlp = tweak_tlp;
}

/* As sack_setup, with tlp as tweak_tlp says. SRTT is the handshake's
 * 100 ms, the RTO at least 10 s (tweak): PTO = 2 SRTT = 200 ms. */
static void tlp_setup(void)
{
    sack_setup_with(tweak_tlp_cfg);
    cr_assert_eq(info().srtt_us, RTT);
}

/* The whole tail goes unanswered (the data, or its ACKs, lost): 2 SRTT
 * after the last send, the last segment goes out again, whatever cwnd;
 * one probe only; the RTO is still 10 s away. The peer's answer reports
 * the probe as a duplicate (D-SACK): nothing was lost, cwnd stays. */
Test(cc_tlp, probe_resends_the_last_segment, .init = tlp_setup, .fini = fx_teardown)
{
    send_flight(10 * M);
    cr_assert_eq(sent_hi, 10 * M);
    uint32_t cw = cwnd();
    advance(2 * RTT - 1);
    check_caps();
    cr_assert_eq(nrtx, 0, "no probe before the PTO");
    advance(1);
    check_caps();
    cr_assert_eq(nrtx, 1);
    cr_assert_eq(rtx[0], 9 * M, "the most recently sent segment");
    cr_assert_eq(info().tlp_probes, 1);
    cr_assert_eq(info().timeouts, 0);
    cr_assert(traced("tail loss probe"));
    advance(4 * RTT);
    check_caps();
    cr_assert_eq(nrtx, 1, "one probe per tail");
    set_blocks(1, (const uint32_t[][2]){{9 * M, 10 * M}});   /* D-SACK */
    sack_ack(10 * M);
    cr_assert_eq(una(), iss + 1 + 10 * M);
    cr_assert_eq(cwnd(), cw + 2 * M, "slow start's growth only, no reduction");
    /* The probe episode is over: more data, acknowledged beyond
     * TLP.end_seq, is no loss either. */
    nsblk = 0;
    queue(2 * M);
    check_caps();
    sack_ack(12 * M);
    cr_assert(!traced("the probe repaired a loss"));
    cr_assert_eq(ssthresh(), UINT32_MAX);
}

/* The last segment was lost: the probe repairs it, the ACK reaches
 * TLP.end_seq without D-SACK. Once an ACK goes beyond it, the loss is
 * answered as a fast recovery would be: ssthresh from the algorithm
 * (NewReno: FlightSize / 2, at least 2 SMSS), cwnd no larger. */
Test(cc_tlp, repaired_loss_reduces_cwnd, .init = tlp_setup, .fini = fx_teardown)
{
    send_flight(10 * M);
    advance(RTT);
    ack_to(9 * M);   /* segments 1-9 arrive; 10 does not */
    check_caps();
    cr_assert_eq(sent_hi, 10 * M, "nothing more queued");
    cr_assert_eq(info().srtt_us, RTT);
    /* One segment in flight: its ACK may be delayed, PTO = 2 SRTT + 200 ms. */
    advance(2 * RTT + 200 * MS - 1);
    check_caps();
    cr_assert_eq(nrtx, 0);
    advance(1);
    check_caps();
    cr_assert_eq(nrtx, 1);
    cr_assert_eq(rtx[0], 9 * M);
    nsblk = 0;
    sack_ack(10 * M);   /* the probe filled the hole */
    cr_assert_eq(ssthresh(), UINT32_MAX, "ACK of exactly TLP.end_seq: a D-SACK may follow");
    queue(4 * M);
    check_caps();
    cr_assert_eq(sent_hi, 14 * M);
    uint32_t cw = cwnd();
    sack_ack(11 * M);   /* beyond TLP.end_seq */
    cr_assert(traced("the probe repaired a loss"));
    cr_assert_eq(ssthresh(), 2 * M, "FlightSize 3000 / 2 is below 2 SMSS");
    cr_assert_eq(cwnd(), 2 * M, "cwnd %u -> %u", cw, cwnd());
}

/* With unsent data and room in the peer's window, the probe is new data. */
Test(cc_tlp, probe_sends_new_data_when_there_is_some, .init = tlp_setup, .fini = fx_teardown)
{
    send_flight(12 * M);
    cr_assert_eq(sent_hi, 10 * M, "the IW");
    advance(2 * RTT);
    check_caps();
    cr_assert_eq(nrtx, 0);
    cr_assert_eq(sent_hi, 11 * M, "one new segment, beyond cwnd");
    cr_assert_eq(info().tlp_probes, 1);
    advance(4 * RTT);   /* the probe is new data, but arms no second PTO */
    check_caps();
    cr_assert_eq(sent_hi, 11 * M);
    cr_assert_eq(info().tlp_probes, 1);
}

/* cfg.tlp off: the tail waits for the RTO. */
Test(cc_tlp, off_by_config, .fini = fx_teardown)
{
    tweak_tlp = false;
    tlp_setup();
    tweak_tlp = true;
    send_flight(10 * M);
    advance(4 * RTT);
    check_caps();
    cr_assert_eq(nrtx, 0);
    cr_assert_eq(info().tlp_probes, 0);
}

/* ================= RACK's reordering timer (RFC 8985 6) ================== */

/* A window of 4 segments loses the first; of the other three only one
 * ACK comes back (the others' ACKs lost too): one duplicate ACK, never
 * three. SND.UNA's segment is lost once SRTT / 4 (25 ms) has passed
 * since that ACK: fast retransmit then, not at the RTO. */
static void four_segments_first_lost(void)
{
    send_flight(4 * M);
    cr_assert_eq(sent_hi, 4 * M);
    advance(RTT);
    check_caps();
    set_blocks(1, (const uint32_t[][2]){{1 * M, 2 * M}});
    sack_ack(0);   /* segment 2 arrived: one duplicate ACK */
    cr_assert_eq(info().cc_phase, SS_CC_DISORDER);
    cr_assert_eq(nrtx, 0);
}

Test(cc_rack, one_dupack_then_the_reordering_window_resends_snd_una, .init = tlp_setup,
     .fini = fx_teardown)
{
    four_segments_first_lost();
    advance(RTT / 4 - 1);
    check_caps();
    cr_assert_eq(nrtx, 0, "not before SRTT / 4");
    cr_assert_eq(info().cc_phase, SS_CC_DISORDER);
    advance(1);
    check_caps();
    cr_assert_eq(nrtx, 1);
    cr_assert_eq(rtx[0], 0, "SND.UNA's segment");
    cr_assert_eq(info().cc_phase, SS_CC_RECOVERY);
    cr_assert_eq(info().timeouts, 0);
    cr_assert(traced("RACK: reordering window over -> fast retransmit"));
    cr_assert_eq(ssthresh(), 2 * M, "ssthresh = max(FlightSize / 2, 2 SMSS)");
    /* The retransmission fills the hole: recovery ends, and no RTO
     * ever resends anything. */
    set_blocks(0, NULL);
    sack_ack(4 * M);
    cr_assert_eq(info().cc_phase, SS_CC_OPEN);
    advance(20 * RTT);
    check_caps();
    cr_assert_eq(nrtx, 1);
}

/* The hole fills before the window is over (reordering, not loss): no
 * retransmission; the timer is TLP's PTO again, and what fires on it
 * later is a tail loss probe, not RACK. */
Test(cc_rack, a_hole_filled_in_time_is_no_loss, .init = tlp_setup, .fini = fx_teardown)
{
    four_segments_first_lost();
    advance(RTT / 8);
    queue(4 * M);
    set_blocks(0, NULL);
    sack_ack(4 * M);
    cr_assert_eq(info().cc_phase, SS_CC_OPEN);
    cr_assert_eq(sent_hi, 8 * M);
    cr_assert_eq(nrtx, 0);
    advance(4 * RTT);
    check_caps();
    cr_assert_eq(nrtx, 1);
    cr_assert_eq(rtx[0], 7 * M, "the probe: the last segment");
    cr_assert(traced("tail loss probe"));
    cr_assert(!traced("RACK"));
    cr_assert_eq(info().cc_phase, SS_CC_OPEN);
}

/* RACK-TLP is one switch (cfg.tlp): off, the lost segment waits for
 * the RTO (10 s here). */
Test(cc_rack, off_with_tlp, .fini = fx_teardown)
{
    tweak_tlp = false;
    tlp_setup();
    tweak_tlp = true;
    four_segments_first_lost();
    advance(5 * RTT);
    check_caps();
    cr_assert_eq(nrtx, 0);
    cr_assert_eq(info().cc_phase, SS_CC_DISORDER);
}

/* The cc_rack start: 20 segments queued, the IW of 10 sent at 0; at RTT
 * segment 1 is acknowledged and segments 3..last are SACKed one by one
 * (segment 2, offset 1000, is lost): recovery starts on the third
 * duplicate ACK and resends 1000, and only that. */
static void recovery_for_segment_2(uint32_t last)
{
    send_flight(20 * M);
    cr_assert_eq(sent_hi, 10 * M);
    advance(RTT);
    check_caps();
    sack_ack(1 * M);
    for (uint32_t e = 3; e <= last; e++) {
        set_blocks(1, (const uint32_t[][2]){{2 * M, e * M}});
        sack_ack(1 * M);
    }
    cr_assert_eq(info().cc_phase, SS_CC_RECOVERY);
    cr_assert_eq(nrtx, 1);
    cr_assert_eq(rtx[0], 1 * M);
}

/* RACK in recovery (RFC 8985 6.2): 20 segments queued, the IW of 10
 * sent; segment 2 (offset 1000) starts recovery on the third duplicate
 * ACK; segment 9 (offset 8000) is lost too, and only segment 10 is
 * SACKed above it: one segment, never DupThresh's three, while new data
 * keeps NextSeg's rule (3) from resending it. Segment 10 went out after
 * segment 9 and arrived, so once reo_wnd (SRTT / 4) has passed since
 * that ACK, 8000 is lost and resent, not at the RTO. */
Test(cc_rack, a_hole_in_recovery_with_too_little_above_it_is_lost_by_time, .init = tlp_setup,
     .fini = fx_teardown)
{
    recovery_for_segment_2(8);
    set_blocks(2, (const uint32_t[][2]){{2 * M, 8 * M}, {9 * M, 10 * M}});
    sack_ack(1 * M);   /* segment 10; 9 is missing */
    cr_assert_eq(nrtx, 1, "one segment SACKed above 8000 is no loss by DupThresh");
    cr_assert_gt(sent_hi, 10 * M, "new data went out in recovery");
    advance(RTT / 4 - 1);
    check_caps();
    cr_assert(!traced("RACK"), "not before reo_wnd");
    advance(1);
    check_caps();
    cr_assert(traced("RACK: reordering window over -> what was sent before a delivered segment is lost"));
    /* Lost, it has left pipe (5000 of cwnd 5500: no room yet). The next
     * ACK makes room, and NextSeg's rule (1) takes the lost hole before
     * new data (without RACK, 2000 SACKed above it is still no loss, and
     * 14000 would go). */
    cr_assert_eq(nrtx, 1);
    set_blocks(2, (const uint32_t[][2]){{2 * M, 8 * M}, {9 * M, 11 * M}});
    sack_ack(1 * M);
    cr_assert_eq(nrtx, 2);
    cr_assert_eq(rtx[1], 8 * M, "the hole below the highest SACK");
    cr_assert_eq(info().timeouts, 0);
    cr_assert_eq(info().cc_phase, SS_CC_RECOVERY);
}

/* A retransmission lost too, found by time (RFC 8985 6.2 step 5): as
 * cc_sack lost_retransmission_resent_without_rto, but only one segment
 * sent after the retransmission of 1000 (14000) is SACKed, where
 * DupThresh by sequence needs three. It went out at RTT and SRTT is
 * RTT, so it is lost at 2 RTT + reo_wnd. */
Test(cc_rack, a_retransmission_with_one_later_segment_sacked_is_lost_by_time, .init = tlp_setup,
     .fini = fx_teardown)
{
    recovery_for_segment_2(10);
    cr_assert_eq(sent_hi, 14 * M, "sent by then: %u", sent_hi);
    advance(RTT);
    for (uint32_t e = 11; e <= 15; e++) {   /* 10000..14999: one sent after the retransmission */
        set_blocks(1, (const uint32_t[][2]){{2 * M, e * M}});
        sack_ack(1 * M);
    }
    cr_assert_eq(nrtx, 1, "not lost by sequence");
    advance(RTT / 4 - 1);
    check_caps();
    cr_assert_eq(nrtx, 1, "not before SRTT + reo_wnd");
    advance(1);
    check_caps();
    cr_assert_eq(nrtx, 2);
    cr_assert_eq(rtx[1], 1 * M, "the lost retransmission, resent");
    cr_assert(traced("retransmission lost too"));
    cr_assert_eq(info().timeouts, 0);
}

/* RACK in recovery for what lies above the highest SACK (RFC 8985 6.2):
 * the IW of 10 segments; segment 2 (1000) is lost; the ACK of segment 1
 * and the first two duplicate ACKs (limited transmit) send 10000..13999;
 * the third starts recovery, and the retransmission of 1000 goes out
 * after all of them (its mark: 14000). Segments 9..14 (8000..13999) are
 * lost too. The retransmission's ACK is a partial ACK up to 8000 with
 * nothing SACKed above: no hole, no DupThresh, and without RACK only
 * the RTO would resend them. They went out before the retransmission
 * that arrived, so reo_wnd (SRTT / 4) after that ACK they are lost and
 * resent from 8000 up, before any new data, as far as cwnd allows (5
 * of them). */
Test(cc_rack, segments_sent_before_a_delivered_retransmission_are_lost_by_time,
     .init = tlp_setup, .fini = fx_teardown)
{
    recovery_for_segment_2(5);
    cr_assert_eq(sent_hi, 14 * M, "all sent before the retransmission: %u", sent_hi);
    for (uint32_t e = 6; e <= 8; e++) {   /* segments 6..8 arrive */
        set_blocks(1, (const uint32_t[][2]){{2 * M, e * M}});
        sack_ack(1 * M);
    }
    uint32_t hi = sent_hi;
    advance(RTT);
    set_blocks(0, NULL);
    sack_ack(8 * M);   /* the retransmission arrived: a partial ACK */
    cr_assert_eq(info().cc_phase, SS_CC_RECOVERY);
    cr_assert_eq(nrtx, 1);
    advance(RTT / 4 - 1);
    check_caps();
    cr_assert_eq(nrtx, 1, "not before reo_wnd");
    advance(1);
    check_caps();
    cr_assert(traced("RACK: reordering window over -> what was sent before a delivered segment"));
    cr_assert_eq(nrtx, 6, "%u resent", nrtx);
    for (uint32_t k = 1; k < 6; k++)
        cr_assert_eq(rtx[k], (7 + k) * M, "resend %u: %u", k, rtx[k]);
    cr_assert_eq(sent_hi, hi, "no new data before the lost segments");
    cr_assert_eq(info().timeouts, 0);
}

/* A new recovery does not resend what the last one resent and is still
 * on its way (RFC 8985: only what is marked lost is resent). 1000 is
 * lost and so is its fast retransmission; RecoveryPoint is 14000, and
 * 14000, the first segment sent in recovery, is lost too. Once 15000..
 * 17000 are SACKed, both are resent. The second copy of 1000 arrives:
 * SND.UNA = 14000 ends the recovery, and the next duplicate ACK starts
 * another, with 14000's retransmission not yet there. Before, the new
 * recovery sent 14000 a third time at once (and in bench/stack/run, RACK
 * then took the second copy's mark for what had been delivered). */
Test(cc_sack, a_new_recovery_does_not_resend_what_is_on_its_way, .init = sack_setup,
     .fini = fx_teardown)
{
    send_flight(40 * M);
    sack_ack(1 * M);
    for (uint32_t e = 3; e <= 14; e++) {
        set_blocks(1, (const uint32_t[][2]){{2 * M, e * M}});
        sack_ack(1 * M);
    }
    cr_assert_eq(info().cc_phase, SS_CC_RECOVERY);
    cr_assert_eq(nrtx, 1);
    for (uint32_t e = 16; e <= 18; e++) {
        set_blocks(2, (const uint32_t[][2]){{2 * M, 14 * M}, {15 * M, e * M}});
        sack_ack(1 * M);
    }
    cr_assert_eq(nrtx, 3, "%d retransmissions", nrtx);
    cr_assert_eq(rtx[1], 1 * M, "1000's retransmission, lost too");
    cr_assert_eq(rtx[2], 14 * M, "the hole at RecoveryPoint");
    for (uint32_t e = 19; e <= 20; e++) {
        set_blocks(2, (const uint32_t[][2]){{2 * M, 14 * M}, {15 * M, e * M}});
        sack_ack(1 * M);
    }
    set_blocks(1, (const uint32_t[][2]){{15 * M, 20 * M}});
    sack_ack(14 * M);   /* 1000's second copy */
    cr_assert_eq(info().cc_phase, SS_CC_OPEN, "SND.UNA = RecoveryPoint");
    set_blocks(1, (const uint32_t[][2]){{15 * M, 21 * M}});
    sack_ack(14 * M);
    cr_assert_eq(info().cc_phase, SS_CC_RECOVERY, "a new recovery");
    cr_assert_eq(nrtx, 3, "14000 sent again: %d retransmissions", nrtx);
    /* 14000's retransmission arrives, then the rest. */
    set_blocks(0, NULL);
    sack_ack(sent_hi);
    cr_assert_eq(info().cc_phase, SS_CC_OPEN);
    cr_assert_eq(nrtx, 3);
    cr_assert_eq(info().retransmits, 3);
}
