/* Closing and resets: FIN-WAIT-1/2, CLOSING, TIME-WAIT, CLOSE-WAIT,
 * LAST-ACK, half-close, abort, RST handling and RFC 5961 validation. */
#include <errno.h>
#include <string.h>

#include "fixture.h"

TestSuite(tcp_close, .init = fx_setup, .fini = fx_teardown, .timeout = 20);

#define P1 (PEER_ISS + 1)

Test(tcp_close, active_close_four_way_and_time_wait_expiry)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    ss_stack_sock_set_cb(st, sd, on_event, NULL);
    cr_assert_eq(ss_tcp_shutdown(st, now, sd), 0);
    cr_assert_eq(sock_state(sd), SS_TCP_FIN_WAIT_1);
    struct tseg f = one_seg();
    cr_assert_eq(f.flags, SS_TCP_FIN | SS_TCP_ACK);
    cr_assert_eq(f.seq, iss + 1);
    cr_assert_eq(f.ack, P1);
    cap_clear();
    cr_assert_eq(ss_tcp_send(st, now, sd, "x", 1), -EPIPE);
    seg_in(P1, iss + 2, SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(sock_state(sd), SS_TCP_FIN_WAIT_2);
    cr_assert_eq(ncap, 0);
    seg_in(P1, iss + 2, SS_TCP_FIN | SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(sock_state(sd), SS_TCP_TIME_WAIT);
    struct tseg a = one_seg();
    cr_assert_eq(a.flags, SS_TCP_ACK);
    cr_assert_eq(a.seq, iss + 2);
    cr_assert_eq(a.ack, P1 + 1);
    cr_assert(saw_event(sd, SS_EV_CLOSED, 0));
    uint64_t d = ss_stack_poll(st, now);
    cr_assert_eq(d, now + 2 * cfg.msl_ms * MS, "TIME-WAIT lasts 2*MSL");
    advance(2 * cfg.msl_ms * MS - 1);
    cr_assert_eq(sock_state(sd), SS_TCP_TIME_WAIT);
    advance(1);
    cr_assert_eq(sock_state(sd), SS_TCP_CLOSED);
    cr_assert_eq(ss_stack_poll(st, now), UINT64_MAX, "no timers left");
}

Test(tcp_close, time_wait_acks_fin_again_and_restarts_timer)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    ss_tcp_shutdown(st, now, sd);
    seg_in(P1, iss + 2, SS_TCP_FIN | SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(sock_state(sd), SS_TCP_TIME_WAIT);
    advance(10 * SEC);
    cap_clear();
    seg_in(P1, iss + 2, SS_TCP_FIN | SS_TCP_ACK, 65535, NULL, 0);   /* our ACK was lost */
    struct tseg a = one_seg();
    cr_assert_eq(a.flags, SS_TCP_ACK);
    cr_assert_eq(a.ack, P1 + 1);
    cr_assert_eq(ss_stack_poll(st, now), now + 2 * cfg.msl_ms * MS, "2 MSL restarted");
}

Test(tcp_close, passive_close_close_wait_last_ack_closed)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    ss_stack_sock_set_cb(st, sd, on_event, NULL);
    seg_in(P1, iss + 1, SS_TCP_FIN | SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(sock_state(sd), SS_TCP_CLOSE_WAIT);
    struct tseg a = one_seg();
    cr_assert_eq(a.ack, P1 + 1, "a FIN is acknowledged at once");
    cap_clear();
    char b[4];
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, 4), 0, "end of stream");
    cr_assert(ss_stack_sock_events(st, sd) & SS_EV_READABLE);
    /* half-close: we can still send */
    cr_assert_eq(ss_tcp_send(st, now, sd, "late", 4), 4);
    cr_assert_eq(one_seg().len, 4);
    cap_clear();
    ss_tcp_shutdown(st, now, sd);
    cr_assert_eq(sock_state(sd), SS_TCP_LAST_ACK);
    struct tseg f = one_seg();
    cr_assert_eq(f.flags, SS_TCP_FIN | SS_TCP_ACK);
    cr_assert_eq(f.seq, iss + 5);
    cap_clear();
    seg_in(P1 + 1, iss + 6, SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(sock_state(sd), SS_TCP_CLOSED);
    cr_assert(saw_event(sd, SS_EV_CLOSED, 0));
    cr_assert_eq(ncap, 0);
}

Test(tcp_close, simultaneous_close_through_closing)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    ss_tcp_shutdown(st, now, sd);
    cap_clear();
    seg_in(P1, iss + 1, SS_TCP_FIN | SS_TCP_ACK, 65535, NULL, 0);   /* crosses our FIN */
    cr_assert_eq(sock_state(sd), SS_TCP_CLOSING);
    struct tseg a = one_seg();
    cr_assert_eq(a.ack, P1 + 1);
    cr_assert_eq(a.seq, iss + 2);
    cap_clear();
    seg_in(P1 + 1, iss + 2, SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(sock_state(sd), SS_TCP_TIME_WAIT);
}

Test(tcp_close, fin_wait_1_fin_and_ack_together_goes_to_time_wait)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    ss_tcp_shutdown(st, now, sd);
    seg_in(P1, iss + 2, SS_TCP_FIN | SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(sock_state(sd), SS_TCP_TIME_WAIT);
}

Test(tcp_close, half_close_we_finish_first_peer_keeps_sending)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    ss_tcp_send(st, now, sd, "req", 3);
    ss_tcp_shutdown(st, now, sd);
    cr_assert_eq(ncap, 2, "data then FIN (Nagle lets a closing sender go)");
    struct tseg f = cap_tcp(1);
    cr_assert_eq(f.flags, SS_TCP_FIN | SS_TCP_ACK);
    cr_assert_eq(f.seq, iss + 4);
    seg_in(P1, iss + 5, SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(sock_state(sd), SS_TCP_FIN_WAIT_2);
    seg_in(P1, iss + 5, SS_TCP_ACK | SS_TCP_PSH, 65535, "response", 8);
    seg_in(P1 + 8, iss + 5, SS_TCP_ACK | SS_TCP_FIN, 65535, NULL, 0);
    cr_assert_eq(sock_state(sd), SS_TCP_TIME_WAIT);
    char b[16];
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, sizeof b), 8);
    cr_assert_eq(memcmp(b, "response", 8), 0);
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, sizeof b), 0);
}

Test(tcp_close, fin_piggybacks_on_last_data)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    seg_in(P1, iss + 1, SS_TCP_ACK, 0, NULL, 0);    /* window closed */
    ss_tcp_send(st, now, sd, "bye", 3);
    ss_tcp_shutdown(st, now, sd);
    cr_assert_eq(ncap, 0);
    seg_in(P1, iss + 1, SS_TCP_ACK, 100, NULL, 0);
    struct tseg s = one_seg();
    cr_assert_eq(s.flags, SS_TCP_FIN | SS_TCP_PSH | SS_TCP_ACK);
    cr_assert_eq(s.len, 3);
}

Test(tcp_close, last_ack_retransmits_fin)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    seg_in(P1, iss + 1, SS_TCP_FIN | SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(ss_tcp_close(st, now, sd), 0);
    cap_clear();
    advance(1 * SEC);
    struct tseg f = one_seg();
    cr_assert_eq(f.flags, SS_TCP_FIN | SS_TCP_ACK);
    cr_assert_eq(f.seq, iss + 1);
    cap_clear();
    seg_in(P1 + 1, iss + 2, SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(ss_stack_sock_info(st, sd, &(struct ss_stack_sock_info){0}), -EBADF,
                 "closed handle is gone");
    /* The TCB is deleted: the next segment meets CLOSED and gets a RST. */
    seg_in(P1 + 1, iss + 2, SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(one_seg().flags, SS_TCP_RST);
}

Test(tcp_close, close_with_unread_data_resets)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    seg_in(P1, iss + 1, SS_TCP_ACK, 65535, "unread", 6);
    cap_clear();
    cr_assert_eq(ss_tcp_close(st, now, sd), 0);
    struct tseg r = one_seg();
    cr_assert_eq(r.flags, SS_TCP_RST);
    cr_assert_eq(r.seq, iss + 1);
}

Test(tcp_close, abort_sends_rst_and_frees)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    ss_tcp_send(st, now, sd, "abc", 3);
    cap_clear();
    cr_assert_eq(ss_tcp_abort(st, now, sd), 0);
    struct tseg r = one_seg();
    cr_assert_eq(r.flags, SS_TCP_RST);
    cr_assert_eq(r.seq, iss + 4, "<SEQ=SND.NXT><CTL=RST>");
    cr_assert_eq(ss_tcp_send(st, now, sd, "x", 1), -EBADF);
    cr_assert_eq(ss_stack_poll(st, now), UINT64_MAX);
}

Test(tcp_close, close_in_syn_sent_deletes_tcb_silently)
{
    int sd = ss_tcp_connect(st, now, PEER_IP, US_PORT, ACT_PORT);
    cap_clear();
    cr_assert_eq(ss_tcp_close(st, now, sd), 0);
    cr_assert_eq(ncap, 0);
    cr_assert_eq(ss_stack_poll(st, now), UINT64_MAX);
}

Test(tcp_close, shutdown_in_syn_sent_sends_fin_after_handshake)
{
    int sd = ss_tcp_connect(st, now, PEER_IP, US_PORT, ACT_PORT);
    struct tseg syn = one_seg();
    ss_tcp_send(st, now, sd, "GET", 3);
    ss_tcp_shutdown(st, now, sd);
    cap_clear();
    aseg_in(PEER_ISS, syn.seq + 1, SS_TCP_SYN | SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(sock_state(sd), SS_TCP_FIN_WAIT_1);
    cr_assert_eq(ncap, 1);
    struct tseg s = cap_tcp(0);
    cr_assert_eq(s.flags, SS_TCP_FIN | SS_TCP_PSH | SS_TCP_ACK);
    cr_assert_eq(s.seq, syn.seq + 1);
    cr_assert_eq(s.len, 3);
}

/* ---- RST and SYN validation (RFC 9293 3.10.7.4 second/fourth, RFC 5961) ---- */

Test(tcp_close, rst_exact_seq_resets_established)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    ss_stack_sock_set_cb(st, sd, on_event, NULL);
    seg_in(P1, 0, SS_TCP_RST, 0, NULL, 0);
    cr_assert_eq(ncap, 0);
    cr_assert_eq(sock_state(sd), SS_TCP_CLOSED);
    cr_assert(saw_event(sd, SS_EV_ERROR, -ECONNRESET));
    char b[4];
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, 4), -ECONNRESET);
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, 4), 0, "error reported once, then EOF");
}

Test(tcp_close, rst_in_window_not_exact_gets_challenge_ack)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    seg_in(P1 + 100, 0, SS_TCP_RST, 0, NULL, 0);
    struct tseg a = one_seg();
    cr_assert_eq(a.flags, SS_TCP_ACK);
    cr_assert_eq(a.seq, iss + 1);
    cr_assert_eq(a.ack, P1);
    cr_assert_eq(sock_state(sd), SS_TCP_ESTABLISHED);
    struct ss_stack_stats ss;
    ss_stack_stats(st, &ss);
    cr_assert_eq(ss.tcp_challenge_acks, 1);
}

Test(tcp_close, rst_outside_window_is_dropped_silently)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    seg_in(P1 + 100000, 0, SS_TCP_RST, 0, NULL, 0);
    seg_in(P1 - 1, 0, SS_TCP_RST, 0, NULL, 0);
    cr_assert_eq(ncap, 0);
    cr_assert_eq(sock_state(sd), SS_TCP_ESTABLISHED);
}

Test(tcp_close, syn_in_established_gets_challenge_ack)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    seg_in(P1 + 10, 0, SS_TCP_SYN, 65535, NULL, 0);
    struct tseg a = one_seg();
    cr_assert_eq(a.flags, SS_TCP_ACK);
    cr_assert_eq(a.ack, P1);
    cr_assert_eq(sock_state(sd), SS_TCP_ESTABLISHED, "no reset from a SYN (RFC 5961 4)");
    cap_clear();
    seg_in(P1, 0, SS_TCP_SYN, 65535, NULL, 0);   /* even at exactly RCV.NXT */
    cr_assert_eq(one_seg().flags, SS_TCP_ACK);
    cr_assert_eq(sock_state(sd), SS_TCP_ESTABLISHED);
}

Test(tcp_close, old_ack_gets_challenge_ack)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    /* MAX.SND.WND = 65535: an ACK more than that below SND.UNA. */
    seg_in(P1, iss + 1 - 70000, SS_TCP_ACK, 65535, "d", 1);
    struct tseg a = one_seg();
    cr_assert_eq(a.ack, P1, "dropped with its data");
    cr_assert_eq(sock_state(sd), SS_TCP_ESTABLISHED);
}

static int in_state(enum ss_tcp_state want, uint32_t *iss)
{
    int sd = fx_passive(iss);
    ss_stack_sock_set_cb(st, sd, on_event, NULL);
    switch (want) {
    case SS_TCP_FIN_WAIT_1:
        ss_tcp_shutdown(st, now, sd);
        break;
    case SS_TCP_FIN_WAIT_2:
        ss_tcp_shutdown(st, now, sd);
        seg_in(P1, *iss + 2, SS_TCP_ACK, 65535, NULL, 0);
        break;
    case SS_TCP_CLOSE_WAIT:
        seg_in(P1, *iss + 1, SS_TCP_FIN | SS_TCP_ACK, 65535, NULL, 0);
        break;
    case SS_TCP_LAST_ACK:
        seg_in(P1, *iss + 1, SS_TCP_FIN | SS_TCP_ACK, 65535, NULL, 0);
        ss_tcp_shutdown(st, now, sd);
        break;
    case SS_TCP_CLOSING:
        ss_tcp_shutdown(st, now, sd);
        seg_in(P1, *iss + 1, SS_TCP_FIN | SS_TCP_ACK, 65535, NULL, 0);
        break;
    case SS_TCP_TIME_WAIT:
        ss_tcp_shutdown(st, now, sd);
        seg_in(P1, *iss + 2, SS_TCP_FIN | SS_TCP_ACK, 65535, NULL, 0);
        break;
    default:
        break;
    }
    cr_assert_eq(sock_state(sd), want);
    cap_clear();
    nev = 0;
    return sd;
}

Test(tcp_close, rst_in_each_synchronized_state)
{
    static const struct { enum ss_tcp_state s; int err; } cases[] = {
        {SS_TCP_FIN_WAIT_1, -ECONNRESET}, {SS_TCP_FIN_WAIT_2, -ECONNRESET},
        {SS_TCP_CLOSE_WAIT, -ECONNRESET}, {SS_TCP_CLOSING, 0},
        {SS_TCP_LAST_ACK, 0}, {SS_TCP_TIME_WAIT, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fx_teardown();
        fx_setup();
        uint32_t iss;
        int sd = in_state(cases[i].s, &iss);
        struct ss_stack_sock_info in;
        ss_stack_sock_info(st, sd, &in);
        seg_in(in.rcv_nxt, 0, SS_TCP_RST, 0, NULL, 0);
        cr_assert_eq(sock_state(sd), SS_TCP_CLOSED, "RST in %s", ss_tcp_state_name(cases[i].s));
        cr_assert_eq(ncap, 0);
        if (cases[i].err)
            cr_assert(saw_event(sd, SS_EV_ERROR, cases[i].err), "%s", ss_tcp_state_name(cases[i].s));
        else
            cr_assert(saw_event(sd, SS_EV_CLOSED, 0), "%s", ss_tcp_state_name(cases[i].s));
    }
}

Test(tcp_close, every_state_change_is_traced)
{
    uint32_t iss;
    in_state(SS_TCP_TIME_WAIT, &iss);
    /* CLOSED->LISTEN, CLOSED->SYN-RECEIVED, ->ESTABLISHED, ->FIN-WAIT-1,
     * ->FIN-WAIT-2 (the ACK is processed before the FIN), ->TIME-WAIT */
    cr_assert_eq(ntrace_state, 6);
}

Test(tcp_close, new_syn_above_time_wait_reopens)
{
    uint32_t iss;
    int sd = in_state(SS_TCP_TIME_WAIT, &iss);
    ss_tcp_close(st, now, sd);
    now += 1 * SEC;   /* the ISS clock moved past the old SND.MAX */
    /* The same peer port, a SYN above the old RCV.NXT: a new connection. */
    seg_in(P1 + 100000, 0, SS_TCP_SYN, 65535, NULL, 0);
    struct tseg sa = one_seg();
    cr_assert_eq(sa.flags, SS_TCP_SYN | SS_TCP_ACK);
    cr_assert_eq(sa.ack, P1 + 100001);
    cr_assert_eq(sa.seq, iss + 250000, "M advanced 1 s / 4 us");
    struct ss_stack_stats s;
    ss_stack_stats(st, &s);
    cr_assert_eq(s.tcp_tw_recycled, 1);
    cap_clear();
    /* An old duplicate SYN (below RCV.NXT) does not. */
    fx_teardown();
    fx_setup();
    sd = in_state(SS_TCP_TIME_WAIT, &iss);
    seg_in(PEER_ISS, 0, SS_TCP_SYN, 65535, NULL, 0);
    cr_assert_eq(sock_state(sd), SS_TCP_TIME_WAIT);
    cr_assert_eq(one_seg().flags, SS_TCP_ACK);
}

/* RFC 9293 3.6.1 (MAY-2, condition 1): a SYN may reopen a TIME-WAIT only
 * when the new ISS is above the largest sequence number the old connection
 * used. Here the ISS clock has not moved past the old SND.MAX (ISS + 2:
 * SYN and FIN), so the TIME-WAIT stays and answers with an ACK. */
Test(tcp_close, time_wait_reuse_needs_new_iss_above_old_snd_max)
{
    uint32_t iss;
    int sd = in_state(SS_TCP_TIME_WAIT, &iss);
    ss_tcp_close(st, now, sd);
    now += 4;   /* ISS + 1: not above SND.MAX = ISS + 2 */
    seg_in(P1 + 100000, 0, SS_TCP_SYN, 65535, NULL, 0);
    struct tseg a = one_seg();
    cr_assert_eq(a.flags, SS_TCP_ACK, "TIME-WAIT answers; no SYN,ACK");
    cr_assert_eq(a.seq, iss + 2);
    cr_assert_eq(a.ack, P1 + 1);
    struct ss_stack_stats s;
    ss_stack_stats(st, &s);
    cr_assert_eq(s.tcp_tw_recycled, 0);
    cr_assert_eq(s.tcp_passive_opens, 1, "only the first connection");
    cap_clear();
    now += 8;   /* ISS + 3: above */
    seg_in(P1 + 100000, 0, SS_TCP_SYN, 65535, NULL, 0);
    struct tseg sa = one_seg();
    cr_assert_eq(sa.flags, SS_TCP_SYN | SS_TCP_ACK);
    cr_assert_eq(sa.seq, iss + 3);
    ss_stack_stats(st, &s);
    cr_assert_eq(s.tcp_tw_recycled, 1);
}

static void rfc1337_on(struct ss_stack_cfg *c) { c->rfc1337 = true; }

/* RFC 1337: with the switch on, a RST (even at exactly RCV.NXT) does not
 * end TIME-WAIT; off (the default, as Linux) it does
 * (tcp_close::rst_in_each_synchronized_state). */
Test(tcp_close, rfc1337_switch_keeps_time_wait_on_rst)
{
    cr_assert_eq(cfg.rfc1337, false, "default off, as Linux' tcp_rfc1337");
    fx_teardown();
    fx_setup_with(rfc1337_on);
    uint32_t iss;
    int sd = in_state(SS_TCP_TIME_WAIT, &iss);
    seg_in(P1 + 1, 0, SS_TCP_RST, 0, NULL, 0);
    cr_assert_eq(sock_state(sd), SS_TCP_TIME_WAIT);
    cr_assert_eq(ncap, 0, "ignored: no challenge ACK either");
    advance(2 * cfg.msl_ms * MS);
    cr_assert_eq(sock_state(sd), SS_TCP_CLOSED, "TIME-WAIT ran its 2 MSL");
}

static void four_socks(struct ss_stack_cfg *c) { c->max_sockets = 4; }

Test(tcp_close, full_pool_recycles_oldest_time_wait)
{
    fx_teardown();
    fx_setup_with(four_socks);
    int ls = ss_tcp_listen(st, US_PORT, 8);
    /* Three connections, each closed by us and left in TIME-WAIT. */
    for (uint16_t i = 0; i < 3; i++) {
        cap_clear();
        peer_send(50000 + i, US_PORT, 100, 0, SS_TCP_SYN, 65535, NULL, 0);
        struct tseg sa = one_seg();
        peer_send(50000 + i, US_PORT, 101, sa.seq + 1, SS_TCP_ACK, 65535, NULL, 0);
        int sd = ss_tcp_accept(st, ls, NULL, NULL);
        cr_assert_geq(sd, 0);
        ss_tcp_close(st, now, sd);
        peer_send(50000 + i, US_PORT, 101, sa.seq + 2, SS_TCP_FIN | SS_TCP_ACK, 65535, NULL, 0);
        now += 1000;
    }
    cap_clear();
    peer_send(50010, US_PORT, 100, 0, SS_TCP_SYN, 65535, NULL, 0);
    struct tseg sa = one_seg();
    cr_assert_eq(sa.flags, SS_TCP_SYN | SS_TCP_ACK);
    struct ss_stack_stats s;
    ss_stack_stats(st, &s);
    cr_assert_eq(s.tcp_tw_recycled, 0, "a half-open entry takes no socket");
    peer_send(50010, US_PORT, 101, sa.seq + 1, SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_geq(ss_tcp_accept(st, ls, NULL, NULL), 0, "a TIME-WAIT slot was reused");
    ss_stack_stats(st, &s);
    cr_assert_eq(s.tcp_tw_recycled, 1);
    cr_assert_eq(s.tcp_no_memory, 0);
}

Test(tcp_close, data_after_close_resets)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    ss_tcp_close(st, now, sd);
    cr_assert_eq(one_seg().flags, SS_TCP_FIN | SS_TCP_ACK);
    cap_clear();
    seg_in(P1, iss + 2, SS_TCP_ACK | SS_TCP_PSH, 65535, "more", 4);
    struct tseg r = one_seg();
    cr_assert_eq(r.flags, SS_TCP_RST, "nobody will read it");
    cr_assert_eq(r.seq, iss + 2);
    cr_assert_eq(ss_stack_poll(st, now), UINT64_MAX, "connection gone");
}

Test(tcp_close, data_before_accept_is_kept)
{
    int ls = ss_tcp_listen(st, US_PORT, 4);
    seg_in(PEER_ISS, 0, SS_TCP_SYN, 65535, NULL, 0);
    struct tseg sa = one_seg();
    seg_in(P1, sa.seq + 1, SS_TCP_ACK, 65535, NULL, 0);
    seg_in(P1, sa.seq + 1, SS_TCP_ACK | SS_TCP_PSH | SS_TCP_FIN, 65535, "early", 5);
    int sd = ss_tcp_accept(st, ls, NULL, NULL);
    cr_assert_geq(sd, 0);
    cr_assert(ss_stack_sock_events(st, sd) & SS_EV_READABLE);
    cr_assert_eq(sock_state(sd), SS_TCP_CLOSE_WAIT);
    char b[8];
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, sizeof b), 5);
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, sizeof b), 0);
}

Test(tcp_close, close_in_syn_received_sends_fin)
{
    /* SYN-RECEIVED held by the application: a simultaneous open. */
    int sd = ss_tcp_connect(st, now, PEER_IP, US_PORT, ACT_PORT);
    struct tseg syn = one_seg();
    cap_clear();
    aseg_in(PEER_ISS, 0, SS_TCP_SYN, 65535, NULL, 0);
    cr_assert_eq(sock_state(sd), SS_TCP_SYN_RECEIVED);
    cap_clear();
    cr_assert_eq(ss_tcp_shutdown(st, now, sd), 0);
    cr_assert_eq(sock_state(sd), SS_TCP_FIN_WAIT_1, "RFC 9293 3.10.4: nothing queued, FIN now");
    struct tseg f = one_seg();
    cr_assert_eq(f.flags, SS_TCP_FIN | SS_TCP_ACK);
    cr_assert_eq(f.seq, syn.seq + 1);
    cap_clear();
    /* No answer: the SYN,ACK is retransmitted first, then the FIN. */
    advance(ss_stack_poll(st, now) - now);
    cr_assert_eq(ncap, 2);
    struct tseg r = cap_tcp(0);
    cr_assert_eq(r.flags, SS_TCP_SYN | SS_TCP_ACK);
    cr_assert_eq(r.seq, syn.seq);
    cr_assert_eq(cap_tcp(1).flags, SS_TCP_FIN | SS_TCP_ACK);
    cr_assert_eq(cap_tcp(1).seq, syn.seq + 1);
    cap_clear();
    aseg_in(PEER_ISS + 1, syn.seq + 2, SS_TCP_ACK, 65535, NULL, 0);   /* SYN and FIN acked */
    cr_assert_eq(sock_state(sd), SS_TCP_FIN_WAIT_2);
}

Test(tcp_close, close_listener_resets_queued_connections)
{
    int ls = ss_tcp_listen(st, US_PORT, 4);
    seg_in(PEER_ISS, 0, SS_TCP_SYN, 65535, NULL, 0);
    struct tseg sa = one_seg();
    seg_in(P1, sa.seq + 1, SS_TCP_ACK, 65535, NULL, 0);   /* established, not accepted */
    cap_clear();
    cr_assert_eq(ss_tcp_close(st, now, ls), 0);
    struct tseg r = one_seg();
    cr_assert_eq(r.flags, SS_TCP_RST);
    cr_assert_eq(r.seq, sa.seq + 1);
    cr_assert_eq(ss_stack_sock_events(st, ls), -EBADF, "LISTEN -> CLOSED, handle gone");
    cap_clear();
    seg_in(PEER_ISS, 0, SS_TCP_SYN, 65535, NULL, 0);
    cr_assert_eq(one_seg().flags, SS_TCP_RST | SS_TCP_ACK, "port closed now");
}
