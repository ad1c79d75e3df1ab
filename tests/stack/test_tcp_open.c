/* Opening: LISTEN, SYN-SENT, SYN-RECEIVED and the handshakes
 * (RFC 9293 3.5, 3.10.7.1-3), RFC 6528 ISNs, MSS, the SYN queue. */
#include <errno.h>

#include <string.h>

#include "fixture.h"

TestSuite(tcp_open, .init = fx_setup, .fini = fx_teardown, .timeout = 20);

Test(tcp_open, passive_open_closed_listen_synrcvd_established)
{
    int ls = ss_tcp_listen(st, US_PORT, 4);
    cr_assert_geq(ls, 0);
    cr_assert_eq(sock_state(ls), SS_TCP_LISTEN);
    ss_stack_sock_set_cb(st, ls, on_event, NULL);
    peer_send_mss(PEER_PORT, US_PORT, PEER_ISS, 0, SS_TCP_SYN, 65535, 1400);
    struct tseg s = one_seg();
    cr_assert_eq(s.flags, SS_TCP_SYN | SS_TCP_ACK);
    cr_assert_eq(s.ack, PEER_ISS + 1);
    cr_assert_eq(s.mss, 1460, "MSS option sent on SYN,ACK");
    cr_assert_eq(s.win, 8192);
    cr_assert_eq(s.sport, US_PORT);
    cr_assert_eq(s.dport, PEER_PORT);
    cr_assert_eq(s.ttl, 64);
    cr_assert(s.df);
    cr_assert_eq(ss_tcp_accept(st, ls, NULL, NULL), -EAGAIN, "not before the final ACK");
    struct ss_stack_sock_info li;
    ss_stack_sock_info(st, ls, &li);
    cr_assert_eq(li.syn_queued, 1);
    cap_clear();
    seg_in(PEER_ISS + 1, s.seq + 1, SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(ncap, 0);
    cr_assert(saw_event(ls, SS_EV_ACCEPT, 0));
    int sd = ss_tcp_accept(st, ls, NULL, NULL);
    cr_assert_geq(sd, 0);
    struct ss_stack_sock_info in;
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.state, SS_TCP_ESTABLISHED);
    cr_assert_eq(in.snd_mss, 1400, "peer's smaller MSS is honoured");
    cr_assert_eq(in.snd_una, s.seq + 1);
    cr_assert_eq(in.rcv_nxt, PEER_ISS + 1);
    cr_assert_eq(in.snd_wnd, 65535);
}

Test(tcp_open, active_open_closed_synsent_established)
{
    int sd = ss_tcp_connect(st, now, PEER_IP, 5555, 33000);
    cr_assert_geq(sd, 0);
    ss_stack_sock_set_cb(st, sd, on_event, NULL);
    cr_assert_eq(sock_state(sd), SS_TCP_SYN_SENT);
    struct tseg s = one_seg();
    cr_assert_eq(s.flags, SS_TCP_SYN);
    cr_assert_eq(s.ack, 0);
    cr_assert_eq(s.mss, 1460);
    cr_assert_eq(s.dport, 5555);
    cr_assert_eq(s.sport, 33000);
    cr_assert_eq(s.len, 0);
    cap_clear();
    uint8_t pkt[100];
    size_t n = mk_tcp(pkt, PEER_IP, US_IP, 5555, 33000, 7777, s.seq + 1,
                      SS_TCP_SYN | SS_TCP_ACK, 30000, 0, NULL, 0);
    now += 20 * MS;
    ss_stack_input(st, now, pkt, n);
    struct tseg a = one_seg();
    cr_assert_eq(a.flags, SS_TCP_ACK);
    cr_assert_eq(a.seq, s.seq + 1);
    cr_assert_eq(a.ack, 7778);
    cr_assert_eq(sock_state(sd), SS_TCP_ESTABLISHED);
    cr_assert(saw_event(sd, SS_EV_CONNECTED, 0));
    struct ss_stack_sock_info in;
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.snd_mss, 536, "no MSS option: 536 (RFC 9293 3.7.1)");
    cr_assert_eq(in.srtt_us, 20000, "first RTT sample from the SYN");
    cr_assert_eq(in.rttvar_us, 10000);
    cr_assert_eq(in.rto_us, 1000000, "RTO clamped to the 1 s minimum");
}

Test(tcp_open, simultaneous_open)
{
    int sd = ss_tcp_connect(st, now, PEER_IP, US_PORT, ACT_PORT);
    struct tseg syn = one_seg();
    cap_clear();
    /* The peer's SYN crosses ours: SYN-SENT -> SYN-RECEIVED, send SYN,ACK. */
    aseg_in(PEER_ISS, 0, SS_TCP_SYN, 65535, NULL, 0);
    cr_assert_eq(sock_state(sd), SS_TCP_SYN_RECEIVED);
    struct tseg sa = one_seg();
    cr_assert_eq(sa.flags, SS_TCP_SYN | SS_TCP_ACK);
    cr_assert_eq(sa.seq, syn.seq);
    cr_assert_eq(sa.ack, PEER_ISS + 1);
    cap_clear();
    /* The peer's SYN,ACK (RFC 9293 figure 8 line 6): ESTABLISHED. */
    aseg_in(PEER_ISS, syn.seq + 1, SS_TCP_SYN | SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(sock_state(sd), SS_TCP_ESTABLISHED);
}

Test(tcp_open, simultaneous_open_with_plain_ack)
{
    int sd = ss_tcp_connect(st, now, PEER_IP, US_PORT, ACT_PORT);
    struct tseg syn = one_seg();
    cap_clear();
    aseg_in(PEER_ISS, 0, SS_TCP_SYN, 65535, NULL, 0);
    cap_clear();
    aseg_in(PEER_ISS + 1, syn.seq + 1, SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(sock_state(sd), SS_TCP_ESTABLISHED);
    cr_assert_eq(ncap, 0);
}

Test(tcp_open, synsent_rst_with_acceptable_ack_is_refused)
{
    int sd = ss_tcp_connect(st, now, PEER_IP, US_PORT, ACT_PORT);
    ss_stack_sock_set_cb(st, sd, on_event, NULL);
    struct tseg syn = one_seg();
    cap_clear();
    aseg_in(0, syn.seq + 1, SS_TCP_RST | SS_TCP_ACK, 0, NULL, 0);
    cr_assert_eq(ncap, 0, "never answer a RST");
    cr_assert_eq(sock_state(sd), SS_TCP_CLOSED);
    cr_assert(saw_event(sd, SS_EV_ERROR, -ECONNREFUSED));
    char b[4];
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, 4), -ECONNREFUSED);
    cr_assert_eq(ss_tcp_close(st, now, sd), 0);
}

Test(tcp_open, synsent_rst_without_ack_is_ignored)
{
    int sd = ss_tcp_connect(st, now, PEER_IP, US_PORT, ACT_PORT);
    one_seg();
    cap_clear();
    aseg_in(0, 0, SS_TCP_RST, 0, NULL, 0);
    cr_assert_eq(sock_state(sd), SS_TCP_SYN_SENT);
    cr_assert_eq(ncap, 0);
}

Test(tcp_open, synsent_bad_ack_gets_rst)
{
    int sd = ss_tcp_connect(st, now, PEER_IP, US_PORT, ACT_PORT);
    struct tseg syn = one_seg();
    cap_clear();
    aseg_in(PEER_ISS, syn.seq + 5, SS_TCP_SYN | SS_TCP_ACK, 1000, NULL, 0);
    struct tseg r = one_seg();
    cr_assert_eq(r.flags, SS_TCP_RST, "<SEQ=SEG.ACK><CTL=RST>");
    cr_assert_eq(r.seq, syn.seq + 5);
    cr_assert_eq(sock_state(sd), SS_TCP_SYN_SENT);
    cap_clear();
    aseg_in(PEER_ISS, syn.seq, SS_TCP_ACK, 1000, NULL, 0);   /* ACK == ISS */
    cr_assert_eq(one_seg().flags, SS_TCP_RST);
}

Test(tcp_open, closed_port_syn_gets_rst_ack)
{
    seg_in(PEER_ISS, 0, SS_TCP_SYN, 1000, NULL, 0);
    struct tseg r = one_seg();
    cr_assert_eq(r.flags, SS_TCP_RST | SS_TCP_ACK);
    cr_assert_eq(r.seq, 0);
    cr_assert_eq(r.ack, PEER_ISS + 1, "ACK = SEG.SEQ + SEG.LEN (SYN counts)");
    struct ss_stack_stats ss;
    ss_stack_stats(st, &ss);
    cr_assert_eq(ss.tcp_no_socket, 1);
    cr_assert_eq(ss.tcp_rst_out, 1);
}

Test(tcp_open, closed_port_data_and_ack)
{
    seg_in(500, 0, SS_TCP_PSH, 1000, "hello", 5);   /* no ACK */
    struct tseg r = one_seg();
    cr_assert_eq(r.flags, SS_TCP_RST | SS_TCP_ACK);
    cr_assert_eq(r.ack, 505);
    cap_clear();
    seg_in(500, 9999, SS_TCP_ACK, 1000, NULL, 0);
    r = one_seg();
    cr_assert_eq(r.flags, SS_TCP_RST);
    cr_assert_eq(r.seq, 9999);
    cap_clear();
    seg_in(500, 9999, SS_TCP_RST | SS_TCP_ACK, 0, NULL, 0);
    cr_assert_eq(ncap, 0, "a RST is never answered");
}

Test(tcp_open, listen_ignores_rst_and_resets_ack)
{
    int ls = ss_tcp_listen(st, US_PORT, 4);
    seg_in(1, 0, SS_TCP_RST, 0, NULL, 0);
    cr_assert_eq(ncap, 0);
    seg_in(1, 4242, SS_TCP_ACK, 0, NULL, 0);
    struct tseg r = one_seg();
    cr_assert_eq(r.flags, SS_TCP_RST);
    cr_assert_eq(r.seq, 4242);
    cr_assert_eq(sock_state(ls), SS_TCP_LISTEN);
    cap_clear();
    seg_in(1, 0, SS_TCP_FIN, 0, NULL, 0);
    cr_assert_eq(ncap, 0, "LISTEN drops a segment with neither SYN, ACK nor RST");
}

static void no_cookies(struct ss_stack_cfg *c)
{
    c->syncookies = 0;
}

/* With SYN cookies off (cfg.syncookies 0), as Linux without them. */
Test(tcp_open, full_syn_queue_drops_syn_silently)
{
    fx_teardown();
    fx_setup_with(no_cookies);
    int ls = ss_tcp_listen(st, US_PORT, 2);
    peer_send(41000, US_PORT, 10, 0, SS_TCP_SYN, 1000, NULL, 0);
    peer_send(41001, US_PORT, 10, 0, SS_TCP_SYN, 1000, NULL, 0);
    cr_assert_eq(ncap, 2);
    struct tseg first = cap_tcp(0);
    cap_clear();
    peer_send(41002, US_PORT, 10, 0, SS_TCP_SYN, 1000, NULL, 0);
    cr_assert_eq(ncap, 0, "backlog full: no SYN,ACK and no RST");
    struct ss_stack_stats ss;
    ss_stack_stats(st, &ss);
    cr_assert_eq(ss.tcp_syn_queue_full, 1);
    /* Completing and accepting one makes room: the retried SYN succeeds. */
    peer_send(41000, US_PORT, 11, first.seq + 1, SS_TCP_ACK, 1000, NULL, 0);
    cr_assert_geq(ss_tcp_accept(st, ls, NULL, NULL), 0);
    peer_send(41002, US_PORT, 10, 0, SS_TCP_SYN, 1000, NULL, 0);
    cr_assert_eq(ncap, 1);
    cr_assert_eq(cap_tcp(0).flags, SS_TCP_SYN | SS_TCP_ACK);
}

Test(tcp_open, synrcvd_rst_returns_to_listen)
{
    int ls = ss_tcp_listen(st, US_PORT, 4);
    seg_in(PEER_ISS, 0, SS_TCP_SYN, 1000, NULL, 0);
    one_seg();
    cap_clear();
    seg_in(PEER_ISS + 1, 0, SS_TCP_RST, 0, NULL, 0);
    cr_assert_eq(ncap, 0);
    struct ss_stack_sock_info li;
    ss_stack_sock_info(st, ls, &li);
    cr_assert_eq(li.syn_queued, 0);
    cr_assert_eq(li.state, SS_TCP_LISTEN);
    cr_assert_eq(ss_tcp_accept(st, ls, NULL, NULL), -EAGAIN);
    /* The connection is gone: an ACK now meets the listener and gets RST. */
    seg_in(PEER_ISS + 1, 5, SS_TCP_ACK, 0, NULL, 0);
    cr_assert_eq(one_seg().flags, SS_TCP_RST);
}

Test(tcp_open, synrcvd_bad_ack_gets_rst)
{
    ss_tcp_listen(st, US_PORT, 4);
    seg_in(PEER_ISS, 0, SS_TCP_SYN, 1000, NULL, 0);
    struct tseg sa = one_seg();
    cap_clear();
    seg_in(PEER_ISS + 1, sa.seq + 100, SS_TCP_ACK, 1000, NULL, 0);
    struct tseg r = one_seg();
    cr_assert_eq(r.flags, SS_TCP_RST);
    cr_assert_eq(r.seq, sa.seq + 100);
}

Test(tcp_open, synrcvd_resends_synack_on_repeated_syn_and_timer)
{
    ss_tcp_listen(st, US_PORT, 4);
    seg_in(PEER_ISS, 0, SS_TCP_SYN, 1000, NULL, 0);
    struct tseg sa = one_seg();
    cap_clear();
    seg_in(PEER_ISS, 0, SS_TCP_SYN, 1000, NULL, 0);
    struct tseg again = one_seg();
    cr_assert_eq(again.flags, SS_TCP_SYN | SS_TCP_ACK);
    cr_assert_eq(again.seq, sa.seq);
    cap_clear();
    advance(1 * SEC);
    struct tseg rtx = one_seg();
    cr_assert_eq(rtx.flags, SS_TCP_SYN | SS_TCP_ACK);
    cr_assert_eq(rtx.seq, sa.seq);
}

Test(tcp_open, syn_retries_back_off_then_etimedout)
{
    int sd = ss_tcp_connect(st, now, PEER_IP, US_PORT, ACT_PORT);
    ss_stack_sock_set_cb(st, sd, on_event, NULL);
    struct tseg syn = one_seg();
    uint64_t expect = 1 * SEC, start = now;
    for (uint32_t i = 0; i < cfg.syn_retries; i++) {
        cap_clear();
        advance(expect - 1);
        cr_assert_eq(ncap, 0, "retry %u not before %llu us", i, (unsigned long long)expect);
        advance(1);
        struct tseg r = one_seg();
        cr_assert_eq(r.flags, SS_TCP_SYN);
        cr_assert_eq(r.seq, syn.seq);
        expect = expect * 2 > 60 * SEC ? 60 * SEC : expect * 2;   /* RTO max 60 s */
    }
    cap_clear();
    advance(expect - 1);
    cr_assert_eq(sock_state(sd), SS_TCP_SYN_SENT);
    advance(1);
    cr_assert_eq(ncap, 0);
    cr_assert_eq(sock_state(sd), SS_TCP_CLOSED);
    cr_assert(saw_event(sd, SS_EV_ERROR, -ETIMEDOUT));
    cr_assert_geq(now - start, 180 * SEC, "MUST-23: SYN retried for at least 3 minutes");
}

Test(tcp_open, isn_depends_on_tuple_and_clock)
{
    int a = ss_tcp_connect(st, now, PEER_IP, 1, 2000);
    int b = ss_tcp_connect(st, now, PEER_IP, 1, 2001);
    cr_assert_geq(a, 0);
    cr_assert_geq(b, 0);
    uint32_t ia = cap_tcp(0).seq, ib = cap_tcp(1).seq;
    cr_assert_neq(ia, ib, "different 4-tuples, different ISN offsets");
    ss_tcp_abort(st, now, a);
    cap_clear();
    now += 4000;  /* 4 ms = 1000 ticks of the 4 us clock */
    ss_tcp_connect(st, now, PEER_IP, 1, 2000);
    cr_assert_eq(cap_tcp(0).seq, ia + 1000, "M advances every 4 microseconds");
}

/* MUST-9: the ISN offset F() comes from a secret the caller supplies; a
 * stack without one (all zero) is refused, so no library caller ends up
 * with ISNs anyone can compute. */
Test(tcp_open, must9_isn_secret_matters_and_zero_secret_is_refused)
{
    struct ss_stack_cfg c = cfg;
    c.isn_secret[5] ^= 0x80;
    ss_stack *s2;
    cr_assert_eq(ss_stack_new(&c, &s2), 0);
    cr_assert_geq(ss_tcp_connect(st, now, PEER_IP, 1, 2000), 0);
    cr_assert_geq(ss_tcp_connect(s2, now, PEER_IP, 1, 2000), 0);
    cr_assert_eq(ncap, 2);
    struct tseg a = cap_tcp(0), b = cap_tcp(1);
    cr_assert_eq(a.sport, b.sport);
    cr_assert_eq(a.dport, b.dport);
    cr_assert_neq(a.seq, b.seq, "same tuple, same time, another secret: another ISN");
    ss_stack_free(s2);
    memset(c.isn_secret, 0, sizeof c.isn_secret);
    s2 = (ss_stack *)&c;
    cr_assert_eq(ss_stack_new(&c, &s2), -EINVAL, "an all-zero secret is refused");
    cr_assert_null(s2);
}

/* RFC 9293 3.7.1: the send MSS is the peer's MSS option (or 536), never
 * more; a small announced MSS is honoured as it is. */
Test(tcp_open, peer_mss_below_64_is_honoured_exactly)
{
    int ls = ss_tcp_listen(st, US_PORT, 8);
    cr_assert_geq(ls, 0);
    peer_send_mss(PEER_PORT, US_PORT, PEER_ISS, 0, SS_TCP_SYN, 65535, 40);
    struct tseg sa = one_seg();
    cap_clear();
    seg_in(PEER_ISS + 1, sa.seq + 1, SS_TCP_ACK, 65535, NULL, 0);
    int sd = ss_tcp_accept(st, ls, NULL, NULL);
    cr_assert_geq(sd, 0);
    struct ss_stack_sock_info in;
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.snd_mss, 40);
    static const char d[100];
    cr_assert_eq(ss_tcp_send(st, now, sd, d, 100), 100);
    cr_assert_eq(cap_tcp(0).len, 40, "no segment longer than the peer's MSS");
}

Test(tcp_open, connect_and_listen_errors)
{
    cr_assert_eq(ss_tcp_connect(st, now, 0, 80, 0), -EINVAL);
    cr_assert_eq(ss_tcp_connect(st, now, PEER_IP, 0, 0), -EINVAL);
    int ls = ss_tcp_listen(st, 7, 1);
    cr_assert_geq(ls, 0);
    cr_assert_eq(ss_tcp_listen(st, 7, 1), -EADDRINUSE);
    cr_assert_eq(ss_tcp_send(st, now, ls, "x", 1), -ENOTCONN);
    for (int i = 1; i < 16; i++)
        cr_assert_geq(ss_udp_bind(st, 0), 0);
    cr_assert_eq(ss_tcp_listen(st, 8, 1), -EMFILE);
}

/* An active open in two steps: a receive buffer set before the SYN is the
 * window the SYN advertises (ss_tcp_connect sends at once and cannot). */
Test(tcp_open, socket_then_rcvbuf_then_connect_advertises_the_small_window)
{
    int sd = ss_tcp_socket(st);
    cr_assert_geq(sd, 0);
    cr_assert_eq(ncap, 0, "a fresh socket sends nothing");
    cr_assert_eq(sock_state(sd), SS_TCP_CLOSED);
    cr_assert_eq(ss_stack_sock_setopt(st, sd, SS_SO_RCVBUF, 1000), 0);
    ss_stack_sock_set_cb(st, sd, on_event, NULL);
    cr_assert_eq(ss_tcp_connect_sd(st, now, sd, PEER_IP, 0, 0), -EINVAL, "port 0");
    cr_assert_eq(ncap, 0);
    cr_assert_eq(ss_tcp_connect_sd(st, now, sd, PEER_IP, US_PORT, ACT_PORT), 0);
    struct tseg s = one_seg();
    cr_assert_eq(s.flags, SS_TCP_SYN);
    cr_assert_eq(s.win, 1000);
    cr_assert_eq(s.sport, ACT_PORT);
    cr_assert_eq(sock_state(sd), SS_TCP_SYN_SENT);
    cr_assert_eq(ss_tcp_connect_sd(st, now, sd, PEER_IP, US_PORT, ACT_PORT), -EISCONN);
    cr_assert_eq(ss_stack_sock_setopt(st, sd, SS_SO_RCVBUF, 2000), -EISCONN, "SYN is out");
    cap_clear();
    aseg_in(PEER_ISS, s.seq + 1, SS_TCP_SYN | SS_TCP_ACK, 65535, NULL, 0);
    struct tseg a = one_seg();
    cr_assert_eq(a.flags, SS_TCP_ACK);
    cr_assert_eq(a.win, 1000);
    cr_assert_eq(sock_state(sd), SS_TCP_ESTABLISHED);
    cr_assert(saw_event(sd, SS_EV_CONNECTED, 0));
    /* A fresh socket closed without connecting is just released. */
    int sd2 = ss_tcp_socket(st);
    cr_assert_geq(sd2, 0);
    cap_clear();
    cr_assert_eq(ss_tcp_close(st, now, sd2), 0);
    cr_assert_eq(ncap, 0);
    cr_assert_eq(ss_stack_sock_events(st, sd2), -EBADF);
}
