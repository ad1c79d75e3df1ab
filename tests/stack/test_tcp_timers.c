/* Timers: RFC 6298 retransmission (estimator, Karn, backoff, give-up),
 * keep-alive (RFC 1122 4.2.3.6), FIN retransmission, deadlines. */
#include <errno.h>
#include <string.h>

#include "fixture.h"

static void small_limits(struct ss_stack_cfg *c)
{
    c->max_retries = 4;
    c->rto_min_ms = 200;
}
static void setup_small(void) { fx_setup_with(small_limits); }

TestSuite(tcp_timers, .init = setup_small, .fini = fx_teardown, .timeout = 20);

#define P1 (PEER_ISS + 1)

Test(tcp_timers, rtt_estimator_follows_rfc6298)
{
    int sd = ss_tcp_connect(st, now, PEER_IP, US_PORT, ACT_PORT);
    struct tseg syn = one_seg();
    now += 100 * MS;   /* R1 = 100 ms */
    aseg_in(PEER_ISS, syn.seq + 1, SS_TCP_SYN | SS_TCP_ACK, 65535, NULL, 0);
    ss_tcp_send(st, now, sd, "a", 1);
    now += 300 * MS;   /* R2 = 300 ms */
    aseg_in(PEER_ISS + 1, syn.seq + 2, SS_TCP_ACK, 65535, NULL, 0);
    struct ss_stack_sock_info in;
    ss_stack_sock_info(st, sd, &in);
    /* RTTVAR = 3/4 * 50000 + 1/4 * |100000 - 300000| = 87500
     * SRTT   = 7/8 * 100000 + 1/8 * 300000 = 125000
     * RTO    = SRTT + 4 * RTTVAR = 475000 */
    cr_assert_eq(in.rttvar_us, 87500);
    cr_assert_eq(in.srtt_us, 125000);
    cr_assert_eq(in.rto_us, 475000);
}

Test(tcp_timers, first_sample_sets_srtt_and_rttvar)
{
    int sd = ss_tcp_connect(st, now, PEER_IP, US_PORT, ACT_PORT);
    struct tseg syn = one_seg();
    now += 100 * MS;
    aseg_in(PEER_ISS, syn.seq + 1, SS_TCP_SYN | SS_TCP_ACK, 65535, NULL, 0);
    struct ss_stack_sock_info in;
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.srtt_us, 100000);
    cr_assert_eq(in.rttvar_us, 50000);
    cr_assert_eq(in.rto_us, 300000, "SRTT + 4*RTTVAR");
}

Test(tcp_timers, retransmission_backoff_then_etimedout)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    ss_stack_sock_set_cb(st, sd, on_event, NULL);
    ss_tcp_send(st, now, sd, "data", 4);
    struct tseg first = one_seg();
    uint64_t rto = 1 * SEC;   /* initial RTO: the 1 us handshake sample clamps to rto_min 200 ms */
    struct ss_stack_sock_info in;
    ss_stack_sock_info(st, sd, &in);
    rto = in.rto_us;
    cr_assert_eq(rto, 200000);
    for (uint32_t i = 0; i < cfg.max_retries; i++) {
        cap_clear();
        advance(rto - 1);
        cr_assert_eq(ncap, 0, "retransmission %u early", i);
        advance(1);
        struct tseg r = one_seg();
        cr_assert_eq(r.seq, first.seq);
        cr_assert_eq(r.len, 4);
        cr_assert_eq(memcmp(r.data, "data", 4), 0);
        rto *= 2;
        ss_stack_sock_info(st, sd, &in);
        cr_assert_eq(in.rto_us, rto, "exponential backoff");
    }
    cr_assert_eq(in.retransmits, cfg.max_retries);
    cap_clear();
    advance(rto);
    cr_assert_eq(ncap, 0);
    cr_assert_eq(sock_state(sd), SS_TCP_CLOSED);
    cr_assert(saw_event(sd, SS_EV_ERROR, -ETIMEDOUT));
    cr_assert_eq(ss_tcp_send(st, now, sd, "x", 1), -ETIMEDOUT);
    struct ss_stack_stats ss;
    ss_stack_stats(st, &ss);
    cr_assert_eq(ss.tcp_retransmits, cfg.max_retries);
    cr_assert_eq(ss.tcp_timeouts, 1);
}

Test(tcp_timers, rto_is_capped_at_max)
{
    fx_teardown();
    fx_setup_with(NULL);
    uint32_t iss;
    int sd = fx_passive(&iss);
    ss_tcp_send(st, now, sd, "d", 1);
    for (int i = 0; i < 8; i++)
        advance(ss_stack_poll(st, now) - now);
    struct ss_stack_sock_info in;
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.rto_us, 60 * SEC, "1 s doubled 8 times would be 256 s");
}

Test(tcp_timers, karn_no_sample_from_retransmitted_segment)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    struct ss_stack_sock_info before, after;
    ss_stack_sock_info(st, sd, &before);
    ss_tcp_send(st, now, sd, "k", 1);
    advance(before.rto_us);   /* retransmitted */
    now += 5 * MS;
    seg_in(P1, iss + 2, SS_TCP_ACK, 65535, NULL, 0);
    ss_stack_sock_info(st, sd, &after);
    cr_assert_eq(after.srtt_us, before.srtt_us, "ambiguous ACK gives no sample");
    cr_assert_eq(after.rto_us, 2 * before.rto_us, "backed-off RTO kept until a valid sample");
    /* The next, unambiguous segment gives a sample again. */
    ss_tcp_send(st, now, sd, "l", 1);
    now += 50 * MS;
    seg_in(P1, iss + 3, SS_TCP_ACK, 65535, NULL, 0);
    ss_stack_sock_info(st, sd, &after);
    cr_assert_neq(after.srtt_us, before.srtt_us);
}

Test(tcp_timers, new_ack_restarts_timer_and_all_acked_stops_it)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    ss_stack_sock_setopt(st, sd, SS_SO_NODELAY, 1);
    ss_tcp_send(st, now, sd, "a", 1);
    now += 100 * MS;
    ss_tcp_send(st, now, sd, "b", 1);
    now += 50 * MS;
    seg_in(P1, iss + 2, SS_TCP_ACK, 65535, NULL, 0);
    struct ss_stack_sock_info in;
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(ss_stack_poll(st, now), now + in.rto_us, "(5.3) restarted on new ACK");
    seg_in(P1, iss + 3, SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(ss_stack_poll(st, now), UINT64_MAX, "(5.2) stopped when all acked");
}

Test(tcp_timers, fin_is_retransmitted_in_fin_wait_1)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    ss_tcp_shutdown(st, now, sd);
    cap_clear();
    advance(ss_stack_poll(st, now) - now);
    struct tseg f = one_seg();
    cr_assert_eq(f.flags, SS_TCP_FIN | SS_TCP_ACK);
    cr_assert_eq(f.seq, iss + 1);
}

Test(tcp_timers, keepalive_defaults_are_rfc1122)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    int v;
    ss_stack_sock_getopt(st, sd, SS_SO_KEEPIDLE, &v);
    cr_assert_eq(v, 7200);
    ss_stack_sock_getopt(st, sd, SS_SO_KEEPINTVL, &v);
    cr_assert_eq(v, 75);
    ss_stack_sock_getopt(st, sd, SS_SO_KEEPCNT, &v);
    cr_assert_eq(v, 9);
    ss_stack_sock_getopt(st, sd, SS_SO_KEEPALIVE, &v);
    cr_assert_eq(v, 0, "off by default (RFC 1122 4.2.3.6)");
    cr_assert_eq(ss_stack_poll(st, now), UINT64_MAX);
}

/* A passive connection with keep-alive on: idle 10 s, probes every 2 s,
 * 3 of them. */
static int keepalive_conn(uint32_t *iss)
{
    int sd = fx_passive(iss);
    ss_stack_sock_set_cb(st, sd, on_event, NULL);
    cr_assert_eq(ss_stack_sock_setopt(st, sd, SS_SO_KEEPIDLE, 10), 0);
    cr_assert_eq(ss_stack_sock_setopt(st, sd, SS_SO_KEEPINTVL, 2), 0);
    cr_assert_eq(ss_stack_sock_setopt(st, sd, SS_SO_KEEPCNT, 3), 0);
    cr_assert_eq(ss_stack_sock_setopt(st, sd, SS_SO_KEEPALIVE, 1), 0);
    return sd;
}

Test(tcp_timers, keepalive_probes_answered_then_unanswered)
{
    uint32_t iss;
    int sd = keepalive_conn(&iss);
    advance(10 * SEC - 1);
    cr_assert_eq(ncap, 0);
    advance(1);
    struct tseg p = one_seg();
    cr_assert_eq(p.flags, SS_TCP_ACK);
    cr_assert_eq(p.seq, iss, "<SEQ=SND.NXT-1>");
    cr_assert_eq(p.len, 0);
    cap_clear();
    /* The peer answers (its ACK for the old sequence number). */
    seg_in(P1, iss + 1, SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(ncap, 0);
    advance(10 * SEC);
    cr_assert_eq(ncap, 1, "idle again: probe after the idle time");
    cap_clear();
    advance(2 * SEC);
    advance(2 * SEC);
    cr_assert_eq(ncap, 2, "unanswered: probes every interval");
    cr_assert_eq(sock_state(sd), SS_TCP_ESTABLISHED);
    advance(2 * SEC);
    cr_assert_eq(sock_state(sd), SS_TCP_CLOSED, "after KEEPCNT unanswered probes");
    cr_assert(saw_event(sd, SS_EV_ERROR, -ETIMEDOUT));
}

/* Found by fuzz_simnet: keep-alive stayed off for good once a segment
 * arrived in FIN-WAIT-1, so a FIN-WAIT-2 whose peer vanished (its
 * ETIMEDOUT sends no RST) was never probed and never ended. */
Test(tcp_timers, keepalive_runs_in_fin_wait_2_reached_after_data_in_fin_wait_1)
{
    uint32_t iss;
    int sd = keepalive_conn(&iss);
    cr_assert_eq(ss_tcp_shutdown(st, now, sd), 0);
    ss_stack_poll(st, now);
    cr_assert_eq(sock_state(sd), SS_TCP_FIN_WAIT_1);
    seg_in(P1, iss + 1, SS_TCP_ACK, 65535, "0123456789", 10);
    cr_assert_eq(sock_state(sd), SS_TCP_FIN_WAIT_1, "the FIN is not acknowledged yet");
    seg_in(P1 + 10, iss + 2, SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(sock_state(sd), SS_TCP_FIN_WAIT_2);
    advance(SEC); /* the delayed ACK of the data goes out */
    cap_clear();
    advance(9 * SEC - 1);
    cr_assert_eq(ncap, 0);
    advance(1);
    struct tseg p = one_seg();
    cr_assert_eq(p.flags, SS_TCP_ACK);
    cr_assert_eq(p.seq, iss + 1, "<SEQ=SND.NXT-1>");
    cr_assert_eq(p.ack, P1 + 10);
    cr_assert_eq(p.len, 0);
    advance(2 * SEC);
    advance(2 * SEC);
    cr_assert_eq(ncap, 3, "unanswered: probes every interval");
    cr_assert_eq(sock_state(sd), SS_TCP_FIN_WAIT_2);
    advance(2 * SEC);
    cr_assert_eq(sock_state(sd), SS_TCP_CLOSED, "after KEEPCNT unanswered probes");
    cr_assert(saw_event(sd, SS_EV_ERROR, -ETIMEDOUT));
}

Test(tcp_timers, poll_deadline_is_nearest_timer)
{
    cr_assert_eq(ss_stack_poll(st, now), UINT64_MAX);
    ss_tcp_connect(st, now, PEER_IP, US_PORT, ACT_PORT);
    cr_assert_eq(ss_stack_poll(st, now), now + 1 * SEC, "initial RTO 1 s");
}

/* RFC 6298 (5.4)-(5.6): on a timeout only the earliest unacknowledged
 * segment is resent, nothing beyond it until an ACK arrives (the loss
 * window of RFC 5681 3.1, no go-back-N flood); the ACK for the
 * retransmission lets sending go on in slow start from one segment. */
Test(tcp_timers, rto_resends_only_the_earliest_segment)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    static uint8_t data[5 * 1460];
    memset(data, 'r', sizeof data);
    cr_assert_eq(ss_tcp_send(st, now, sd, data, sizeof data), (ssize_t)sizeof data);
    ss_stack_poll(st, now);
    cr_assert_eq(ncap, 5, "the whole flight goes out: %d", ncap);
    cap_clear();
    struct ss_stack_sock_info in;
    ss_stack_sock_info(st, sd, &in);
    advance(in.rto_us);
    struct tseg r = one_seg();
    cr_assert_eq(r.seq, iss + 1);
    cr_assert_eq(r.len, 1460);
    /* A duplicate ACK (the peer still missing the first segment) releases
     * nothing; neither does more time short of the backed-off RTO. */
    cap_clear();
    seg_in(P1, iss + 1, SS_TCP_ACK, 65535, NULL, 0);
    advance(in.rto_us);
    cr_assert_eq(ncap, 0, "%d segments sent beyond the retransmission", ncap);
    /* The ACK for the retransmission, partial (the peer misses the
     * second segment too): slow start makes cwnd two segments, so the
     * next two follow (RFC 5681 3.1), not the whole rest of the flight. */
    seg_in(P1, iss + 1 + 1460, SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(ncap, 2, "%d segments after the partial ACK", ncap);
    r = cap_tcp(0);
    cr_assert_eq(r.seq, iss + 1 + 1460);
    cr_assert_eq(r.len, 1460);
    r = cap_tcp(1);
    cr_assert_eq(r.seq, iss + 1 + 2 * 1460);
    cr_assert_eq(r.len, 1460);
    /* The peer had the rest: everything acknowledged, timer off. */
    cap_clear();
    seg_in(P1, iss + 1 + sizeof data, SS_TCP_ACK, 65535, NULL, 0);
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.snd_una, iss + 1 + sizeof data);
    cr_assert_eq(ss_stack_poll(st, now), UINT64_MAX);
}

/* bytes_out counts every payload byte once: a segment that is partly a
 * retransmission and partly new data counts its new part. */
Test(tcp_timers, bytes_out_counts_new_part_of_mixed_segment)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    ss_stack_sock_setopt(st, sd, SS_SO_NODELAY, 1);
    static uint8_t data[2 * 1460 + 100 + 1000];
    memset(data, 'm', sizeof data);
    /* Three segments in flight: 1460, 1460, 100. */
    cr_assert_eq(ss_tcp_send(st, now, sd, data, 2 * 1460 + 100), 2 * 1460 + 100);
    ss_stack_poll(st, now);
    cr_assert_eq(ncap, 3);
    struct ss_stack_sock_info in;
    ss_stack_sock_info(st, sd, &in);
    advance(in.rto_us);                       /* the first one again */
    /* 1000 new bytes queued behind the 100 still unacknowledged; the
     * loss window (one segment, in flight) holds them back. */
    cap_clear();
    cr_assert_eq(ss_tcp_send(st, now, sd, data, 1000), 1000);
    cr_assert_eq(ncap, 0);
    /* Partial ACK: cwnd two segments, the second one again and then the
     * 100 resent with the 1000 new in one segment. */
    seg_in(P1, iss + 1 + 1460, SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(ncap, 2);
    cr_assert_eq(cap_tcp(0).seq, iss + 1 + 1460);
    struct tseg m = cap_tcp(1);
    cr_assert_eq(m.seq, iss + 1 + 2 * 1460);
    cr_assert_eq(m.len, 1100, "100 resent + 1000 new in one segment: %zu", m.len);
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.bytes_out, sizeof data, "bytes_out %llu", (unsigned long long)in.bytes_out);
}

static int find_trace(const char *line, int from)
{
    for (int i = from; i < ntrace; i++)
        if (strcmp(trace_lines[i], line) == 0)
            return i;
    return -1;
}

/* SS_TRACE_CC: the real congestion state (cwnd, ssthresh, flight, the
 * peer's window, the phase) with what changed it: the initial window, the
 * RTO's loss window, the end of RTO recovery. */
Test(tcp_timers, cc_trace_shows_congestion_state_and_rto)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    cr_assert_eq(ss_stack_sock_setopt(st, sd, SS_SO_CONGESTION, SS_CC_NEWRENO), 0);
    static uint8_t data[3 * 1460];
    memset(data, 'c', sizeof data);
    cr_assert_eq(ss_tcp_send(st, now, sd, data, sizeof data), (ssize_t)sizeof data);
    ss_stack_poll(st, now);
    /* Set at the handshake's end, under the default algorithm; the
     * switch to NewReno keeps the window. */
    int a = find_trace("initial window: cwnd=14600 ssthresh=inf flight=0 peer-wnd=65535 open "
                       "cubic", 0);
    cr_assert_geq(a, 0, "no cc event for the initial window");
    struct ss_stack_sock_info in;
    ss_stack_sock_info(st, sd, &in);
    advance(in.rto_us);
    /* ssthresh = max(FlightSize/2, 2*SMSS) = max(2190, 2920). */
    int b = find_trace("RTO -> cwnd 1 MSS: cwnd=1460 ssthresh=2920 flight=4380 "
                       "peer-wnd=65535 loss newreno", a + 1);
    cr_assert_gt(b, a, "no cc event for the RTO");
    seg_in(P1, iss + 1 + sizeof data, SS_TCP_ACK, 40000, NULL, 0);
    cr_assert_gt(find_trace("exit RTO recovery: cwnd=1460 ssthresh=2920 flight=0 "
                            "peer-wnd=65535 open newreno", b + 1), b, "recovery over");
    cr_assert_lt(ntrace, TRACE_MAX, "trace buffer full: the test saw only part");
}

/* RFC 6298 (5.7): the SYN timed out (it was retransmitted, so Karn gives no
 * sample): once the handshake completes, the RTO is 3 s, not the
 * backed-off value. Active side: our SYN; passive side: our SYN,ACK. */
Test(tcp_timers, rfc6298_5_7_rto_is_3s_after_a_syn_timeout)
{
    int sd = ss_tcp_connect(st, now, PEER_IP, US_PORT, ACT_PORT);
    struct tseg syn = one_seg();
    cap_clear();
    advance(1 * SEC);
    cr_assert_eq(one_seg().flags, SS_TCP_SYN, "the SYN timed out and went again");
    cap_clear();
    now += 100 * MS;
    aseg_in(PEER_ISS, syn.seq + 1, SS_TCP_SYN | SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(sock_state(sd), SS_TCP_ESTABLISHED);
    struct ss_stack_sock_info in;
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.rto_us, 3 * SEC, "not the backed-off 2 s");
    cr_assert_eq(in.srtt_us, 0, "no RTT sample was taken");
    cap_clear();
    cr_assert_eq(ss_tcp_send(st, now, sd, "a", 1), 1);
    cap_clear();
    advance(3 * SEC - 1);
    cr_assert_eq(ncap, 0);
    advance(1);
    struct tseg r = one_seg();
    cr_assert_eq(r.seq, syn.seq + 1);
    cr_assert_eq(r.len, 1);

    /* Passive: the SYN,ACK times out once, then the handshake's ACK. */
    int ls = ss_tcp_listen(st, US_PORT, 8);
    cap_clear();
    peer_send_mss(PEER_PORT, US_PORT, PEER_ISS, 0, SS_TCP_SYN, 65535, 1460);
    struct tseg sa = one_seg();
    cap_clear();
    advance(1 * SEC);
    cr_assert_eq(one_seg().flags, SS_TCP_SYN | SS_TCP_ACK);
    seg_in(PEER_ISS + 1, sa.seq + 1, SS_TCP_ACK, 65535, NULL, 0);
    int ps = ss_tcp_accept(st, ls, NULL, NULL);
    cr_assert_geq(ps, 0);
    ss_stack_sock_info(st, ps, &in);
    cr_assert_eq(in.rto_us, 3 * SEC);
}

/* MUST-34/36 (RFC 9293 3.8.6.1): the peer shrinks its window to zero while
 * data is outstanding and answers every retransmission with a zero window:
 * the retransmissions probe the window; as long as the peer answers they
 * never count towards giving up (R2, here max_retries 4). A peer that
 * stops answering is given up on as usual. */
Test(tcp_timers, zero_window_answered_retransmissions_never_time_out)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    ss_stack_sock_set_cb(st, sd, on_event, NULL);
    ss_tcp_send(st, now, sd, "data", 4);
    one_seg();
    seg_in(P1, iss + 1, SS_TCP_ACK, 0, NULL, 0);   /* window closed, nothing taken */
    for (int i = 0; i < 12; i++) {
        cap_clear();
        advance(ss_stack_poll(st, now) - now);
        struct tseg r = one_seg();
        cr_assert_eq(r.seq, iss + 1, "probe %d", i);
        cr_assert_eq(r.len, 4);
        seg_in(P1, iss + 1, SS_TCP_ACK, 0, NULL, 0);   /* answered: still zero */
    }
    cr_assert_eq(sock_state(sd), SS_TCP_ESTABLISHED, "12 answered probes > max_retries 4");
    cr_assert(!saw_event(sd, SS_EV_ERROR, 0), "no error reported");
    /* The peer goes silent: the first expiry is free (it answered the
     * previous one), then max_retries counted ones, then ETIMEDOUT. */
    int sent = 0;
    for (int i = 0; i < 20 && sock_state(sd) != SS_TCP_CLOSED; i++) {
        cap_clear();
        advance(ss_stack_poll(st, now) - now);
        sent += ncap;
    }
    cr_assert_eq(sent, 1 + 4);
    cr_assert(saw_event(sd, SS_EV_ERROR, -ETIMEDOUT));
}
