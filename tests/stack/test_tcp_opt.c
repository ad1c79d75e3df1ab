/* TCP options: negotiation, window scale (RFC 7323 2), timestamps (RFC
 * 7323 3-5: echo rules, RTTM, PAWS), SACK (RFC 2018: blocks we generate,
 * the scoreboard of the peer's blocks). Every option byte the peer sends
 * is built here (fixture opt_*), and every option we send is parsed by the
 * fixture, independently of the stack's code. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fixture.h"
/* The scoreboard API of stack_int.h (what congestion control uses); its
 * prototypes name a parameter st, as the fixture names the stack. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#include "stack/stack_int.h"
#pragma GCC diagnostic pop

TestSuite(tcp_opt, .init = fx_setup, .fini = fx_teardown, .timeout = 30);

#define P1 (PEER_ISS + 1)
#define MIB4 (4u * 1024 * 1024)

static struct ss_stack_sock_info info(int sd)
{
    struct ss_stack_sock_info in;
    cr_assert_eq(ss_stack_sock_info(st, sd, &in), 0);
    return in;
}

/* A listener, and the peer's SYN with MSS 1460 followed by opt (window
 * win); returns our SYN,ACK (the only segment sent). */
static struct tseg syn_in(const uint8_t *opt, size_t olen, uint16_t win)
{
    if (listen_sd < 0) {
        listen_sd = ss_tcp_listen(st, US_PORT, 8);
        cr_assert_geq(listen_sd, 0);
    }
    uint8_t o[40];
    size_t n = opt_mss(o, 1460);
    if (olen)
        memcpy(o + n, opt, olen);
    n += olen;
    cap_clear();
    peer_send_opts(PEER_PORT, US_PORT, PEER_ISS, 0, SS_TCP_SYN, win, o, n, NULL, 0);
    struct tseg s = one_seg();
    cr_assert_eq(s.flags, SS_TCP_SYN | SS_TCP_ACK);
    cap_clear();
    return s;
}

/* The handshake's last ACK (with opt, window win) and accept. */
static int ack_in(uint32_t our_iss, const uint8_t *opt, size_t olen, uint16_t win)
{
    peer_send_opts(PEER_PORT, US_PORT, P1, our_iss + 1, SS_TCP_ACK, win, opt, olen, NULL, 0);
    int sd = ss_tcp_accept(st, listen_sd, NULL, NULL);
    cr_assert_geq(sd, 0);
    cr_assert_eq(sock_state(sd), SS_TCP_ESTABLISHED);
    return sd;
}

/* Peer segment on the passive connection with a TS option (val, ecr). */
static void ts_seg(uint32_t seq, uint32_t ack, uint8_t flags, uint32_t val, uint32_t ecr,
                   const void *data, size_t len)
{
    uint8_t o[12];
    size_t n = opt_ts(o, val, ecr);
    peer_send_opts(PEER_PORT, US_PORT, seq, ack, flags, 65535, o, n, data, len);
}

/* ===================================================================== */
/* Negotiation: each option only when the peer's SYN offers it.           */
/* ===================================================================== */

Test(tcp_opt, syn_offers_every_option_by_default)
{
    int sd = ss_tcp_connect(st, now, PEER_IP, US_PORT, ACT_PORT);
    cr_assert_geq(sd, 0);
    struct tseg s = one_seg();
    /* Linux' layout: mss, sackOK, TS, nop, wscale (20 bytes). */
    cr_assert_eq(s.optlen, 20);
    const uint8_t head[8] = {2, 4, 0x05, 0xb4, 4, 2, 8, 10};
    const uint8_t tail[4] = {1, 3, 3, 0};
    cr_assert_eq(memcmp(s.opt, head, 8), 0);
    cr_assert_eq(memcmp(s.opt + 16, tail, 4), 0, "nop, wscale 0 (8 KiB buffer)");
    cr_assert(s.has_ts && s.sack_ok && s.has_ws);
    cr_assert_eq(s.ts_ecr, 0, "nothing to echo yet");
    cr_assert_eq(s.win, 8192);
    /* The TSval clock ticks in milliseconds: the SYN sent again 1 s later. */
    cap_clear();
    advance(1 * SEC);
    struct tseg r = one_seg();
    cr_assert_eq(r.flags, SS_TCP_SYN);
    cr_assert_eq(r.ts_val, s.ts_val + 1000);
    cr_assert_eq(info(sd).options, 0, "nothing negotiated before the SYN,ACK");
}

Test(tcp_opt, synack_carries_only_what_the_syn_offered)
{
    uint8_t o[12];
    /* TS only: mss, nop, nop, TS echoing the SYN's TSval. */
    struct tseg sa = syn_in(o, opt_ts(o, 100, 0), 65535);
    cr_assert_eq(sa.optlen, 16);
    cr_assert(sa.has_ts && !sa.sack_ok && !sa.has_ws);
    cr_assert_eq(sa.ts_ecr, 100);
    const uint8_t lay[8] = {2, 4, 0x05, 0xb4, 1, 1, 8, 10};
    cr_assert_eq(memcmp(sa.opt, lay, 8), 0);
    uint8_t a[12];
    int sd = ack_in(sa.seq, a, opt_ts(a, 101, sa.ts_val), 65535);
    struct ss_stack_sock_info in = info(sd);
    cr_assert_eq(in.options, SS_TCPI_OPT_TIMESTAMPS);
    cr_assert_eq(in.snd_wscale, 0);
    cr_assert_eq(in.rcv_wscale, 0);
}

Test(tcp_opt, synack_sack_only_and_wscale_only)
{
    uint8_t o[4];
    struct tseg sa = syn_in(o, opt_sackok(o), 65535);
    const uint8_t lay1[8] = {2, 4, 0x05, 0xb4, 1, 1, 4, 2};
    cr_assert_eq(sa.optlen, 8);
    cr_assert_eq(memcmp(sa.opt, lay1, 8), 0, "mss, nop, nop, sackOK");
    int sd = ack_in(sa.seq, NULL, 0, 65535);
    cr_assert_eq(info(sd).options, SS_TCPI_OPT_SACK);
    ss_tcp_abort(st, now, sd);

    struct tseg sb;
    peer_send(PEER_PORT + 1, US_PORT, PEER_ISS, 0, SS_TCP_SYN, 65535, NULL, 0);
    cap_clear();
    uint8_t w[8];
    size_t n = opt_mss(w, 1460);
    n += opt_ws(w + n, 5);
    peer_send_opts(PEER_PORT + 2, US_PORT, PEER_ISS, 0, SS_TCP_SYN, 65535, w, n, NULL, 0);
    sb = one_seg();
    const uint8_t lay2[8] = {2, 4, 0x05, 0xb4, 1, 3, 3, 0};
    cr_assert_eq(sb.optlen, 8);
    cr_assert_eq(memcmp(sb.opt, lay2, 8), 0, "mss, nop, wscale 0");
}

Test(tcp_opt, nothing_offered_nothing_used)
{
    struct tseg sa = syn_in(NULL, 0, 65535);
    cr_assert_eq(sa.optlen, 4, "MSS only");
    cr_assert_eq(sa.mss, 1460);
    int sd = ack_in(sa.seq, NULL, 0, 65535);
    cr_assert_eq(info(sd).options, 0);
    cr_assert_eq(ss_tcp_send(st, now, sd, "abc", 3), 3);
    struct tseg d = one_seg();
    cr_assert_eq(d.optlen, 0, "no options after the SYNs");
}

Test(tcp_opt, all_offered_all_used)
{
    /* Linux' SYN layout after the MSS: sackOK, TS val 77 ecr 0, nop, wscale 7. */
    uint8_t p[16] = {4, 2, 8, 10, 0, 0, 0, 77, 0, 0, 0, 0};
    size_t m = 12 + opt_ws(p + 12, 7);
    struct tseg sa = syn_in(p, m, 65535);
    cr_assert_eq(sa.optlen, 20);
    cr_assert(sa.sack_ok && sa.has_ts && sa.has_ws);
    cr_assert_eq(sa.ts_ecr, 77);
    cr_assert_eq(sa.ws, 0);
    cr_assert_eq(sa.win, 8192, "the SYN,ACK's window is not scaled");
    uint8_t a[12];
    int sd = ack_in(sa.seq, a, opt_ts(a, 78, sa.ts_val), 100);
    struct ss_stack_sock_info in = info(sd);
    cr_assert_eq(in.options,
                 SS_TCPI_OPT_TIMESTAMPS | SS_TCPI_OPT_SACK | SS_TCPI_OPT_WSCALE);
    cr_assert_eq(in.snd_wscale, 7);
    cr_assert_eq(in.rcv_wscale, 0);
    cr_assert_eq(in.snd_wnd, 100u << 7, "the ACK's window is scaled");
}

static void no_ts_no_sack(struct ss_stack_cfg *c)
{
    c->timestamps = false;
    c->sack = false;
}

Test(tcp_opt, switched_off_per_stack)
{
    fx_teardown();
    fx_setup_with(no_ts_no_sack);
    int sd = ss_tcp_connect(st, now, PEER_IP, US_PORT, ACT_PORT);
    struct tseg s = one_seg();
    const uint8_t lay[8] = {2, 4, 0x05, 0xb4, 1, 3, 3, 0};
    cr_assert_eq(s.optlen, 8);
    cr_assert_eq(memcmp(s.opt, lay, 8), 0, "mss, nop, wscale only");
    ss_tcp_abort(st, now, sd);
    /* The peer offers everything: only window scaling is used. */
    uint8_t o[20];
    size_t n = opt_sackok(o);
    n += opt_ts(o + n, 5, 0);
    n += opt_ws(o + n, 2);
    struct tseg sa = syn_in(o, n, 65535);
    cr_assert_eq(sa.optlen, 8);
    cr_assert_eq(memcmp(sa.opt, lay, 8), 0);
    int c = ack_in(sa.seq, NULL, 0, 65535);
    cr_assert_eq(info(c).options, SS_TCPI_OPT_WSCALE);
    cr_assert_eq(info(c).snd_wscale, 2);
}

Test(tcp_opt, switched_off_per_socket)
{
    int sd = ss_tcp_socket(st);
    int v = -1;
    cr_assert_eq(ss_stack_sock_getopt(st, sd, SS_SO_SACK, &v), 0);
    cr_assert_eq(v, 1, "default from the stack's cfg");
    cr_assert_eq(ss_stack_sock_setopt(st, sd, SS_SO_SACK, 0), 0);
    cr_assert_eq(ss_stack_sock_setopt(st, sd, SS_SO_TIMESTAMPS, 0), 0);
    cr_assert_eq(ss_stack_sock_getopt(st, sd, SS_SO_SACK, &v), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(ss_tcp_connect_sd(st, now, sd, PEER_IP, US_PORT, ACT_PORT), 0);
    struct tseg s = one_seg();
    const uint8_t lay[8] = {2, 4, 0x05, 0xb4, 1, 3, 3, 0};
    cr_assert_eq(s.optlen, 8);
    cr_assert_eq(memcmp(s.opt, lay, 8), 0);
    cr_assert_eq(ss_stack_sock_setopt(st, sd, SS_SO_WSCALE, 0), -EISCONN, "after the SYN");
    ss_tcp_abort(st, now, sd);

    /* On a listener: its connections inherit it. */
    listen_sd = ss_tcp_listen(st, US_PORT, 8);
    cr_assert_eq(ss_stack_sock_setopt(st, listen_sd, SS_SO_WSCALE, 0), 0);
    uint8_t o[20];
    size_t n = opt_sackok(o);
    n += opt_ts(o + n, 5, 0);
    n += opt_ws(o + n, 2);
    struct tseg sa = syn_in(o, n, 65535);
    cr_assert_eq(sa.optlen, 16, "mss, sackOK, TS: no wscale");
    cr_assert(!sa.has_ws && sa.sack_ok && sa.has_ts);
    uint8_t a[12];
    int c = ack_in(sa.seq, a, opt_ts(a, 6, sa.ts_val), 65535);
    cr_assert_eq(info(c).options, SS_TCPI_OPT_TIMESTAMPS | SS_TCPI_OPT_SACK);
    cr_assert_eq(ss_stack_sock_getopt(st, c, SS_SO_WSCALE, &v), 0);
    cr_assert_eq(v, 0);
}

/* ===================================================================== */
/* Window scale (RFC 7323 2)                                              */
/* ===================================================================== */

Test(tcp_opt, peer_window_scaled_but_not_on_syn)
{
    uint8_t o[4];
    struct tseg sa = syn_in(o, opt_ws(o, 3), 1000);
    int sd = ack_in(sa.seq, NULL, 0, 1000);
    struct ss_stack_sock_info in = info(sd);
    cr_assert_eq(in.snd_wscale, 3);
    cr_assert_eq(in.snd_wnd, 8000, "1000 << 3");
    /* Window field 250: 2000 bytes, and not one more, go out. */
    seg_in(P1, sa.seq + 1, SS_TCP_ACK, 250, NULL, 0);
    cr_assert_eq(info(sd).snd_wnd, 2000);
    ss_stack_sock_setopt(st, sd, SS_SO_NODELAY, 1);
    static uint8_t d[2000];
    cap_clear();
    cr_assert_eq(ss_tcp_send(st, now, sd, d, sizeof d), 2000);
    cr_assert_eq(ncap, 2);
    cr_assert_eq(cap_tcp(0).len + cap_tcp(1).len, 2000);
    cr_assert_eq(ss_tcp_send(st, now, sd, d, 1), 1);
    cr_assert_eq(ncap, 2, "the scaled window is full");
}

Test(tcp_opt, synack_window_not_scaled_active_open)
{
    int sd = ss_tcp_connect(st, now, PEER_IP, US_PORT, ACT_PORT);
    struct tseg s = one_seg();
    cap_clear();
    uint8_t o[8];
    size_t n = opt_mss(o, 1460);
    n += opt_ws(o + n, 3);
    peer_send_opts(US_PORT, ACT_PORT, PEER_ISS, s.seq + 1, SS_TCP_SYN | SS_TCP_ACK, 1000, o, n,
                   NULL, 0);
    struct ss_stack_sock_info in = info(sd);
    cr_assert_eq(in.state, SS_TCP_ESTABLISHED);
    cr_assert_eq(in.snd_wscale, 3);
    cr_assert_eq(in.snd_wnd, 1000, "the SYN,ACK's window as it is");
    peer_send_opts(US_PORT, ACT_PORT, PEER_ISS + 1, s.seq + 1, SS_TCP_ACK, 1000, NULL, 0, NULL,
                   0);
    cr_assert_eq(info(sd).snd_wnd, 8000, "later windows << 3");
}

Test(tcp_opt, peer_shift_above_14_taken_as_14)
{
    uint8_t o[4];
    struct tseg sa = syn_in(o, opt_ws(o, 15), 65535);
    int sd = ack_in(sa.seq, NULL, 0, 2);
    cr_assert_eq(info(sd).snd_wscale, 14);
    cr_assert_eq(info(sd).snd_wnd, 2u << 14);
}

static void rcv4m(struct ss_stack_cfg *c)
{
    c->rcvbuf = MIB4;
    c->max_sockets = 4;
}

Test(tcp_opt, rcvbuf_4mib_advertises_scaled_window)
{
    fx_teardown();
    fx_setup_with(rcv4m);
    uint8_t o[4];
    struct tseg sa = syn_in(o, opt_ws(o, 7), 65535);
    cr_assert(sa.has_ws);
    cr_assert_eq(sa.ws, 7, "4 MiB >> 7 = 32768 fits 16 bits, >> 6 does not");
    cr_assert_eq(sa.win, 65535, "a SYN's window is never scaled");
    /* The handshake's ACK: the window opens from 65535 to 4 MiB at once. */
    peer_send_opts(PEER_PORT, US_PORT, P1, sa.seq + 1, SS_TCP_ACK, 65535, NULL, 0, NULL, 0);
    struct tseg u = one_seg();
    cr_assert_eq(u.flags, SS_TCP_ACK);
    cr_assert_eq(u.win, MIB4 >> 7);
    int sd = ss_tcp_accept(st, listen_sd, NULL, NULL);
    cr_assert_eq(info(sd).rcv_wscale, 7);
    cr_assert_eq(info(sd).rcv_wnd, MIB4);
    /* 1000 bytes in: the window shrinks by them, rounded up to 128 so
     * the right edge stays where it was (or moves right). */
    static uint8_t d[1000];
    cap_clear();
    seg_in(P1, sa.seq + 1, SS_TCP_ACK, 65535, d, sizeof d);
    advance(cfg.delack_ms * MS);
    struct tseg a = one_seg();
    cr_assert_eq(a.ack, P1 + 1000);
    cr_assert_eq(a.win, (MIB4 - 1000 + 127) / 128);
    cr_assert_geq(a.ack + ((uint32_t)a.win << 7), P1 + MIB4, "right edge not left");
    /* SO_RCVBUF takes up to the pool's size, 4 MiB. */
    int s2 = ss_tcp_socket(st);
    cr_assert_eq(ss_stack_sock_setopt(st, s2, SS_SO_RCVBUF, (int)MIB4), 0);
    cr_assert_eq(ss_stack_sock_setopt(st, s2, SS_SO_RCVBUF, (int)MIB4 + 1), -EINVAL);
    cr_assert_eq(ss_stack_sock_setopt(st, s2, SS_SO_RCVBUF, 100000), 0);
    cap_clear();
    cr_assert_eq(ss_tcp_connect_sd(st, now, s2, PEER_IP, US_PORT, ACT_PORT), 0);
    struct tseg s = one_seg();
    cr_assert_eq(s.ws, 1, "100000 >> 1 fits");
    cr_assert_eq(s.win, 65535);
}

Test(tcp_opt, rcvbuf_4mib_without_scaling_stays_65535)
{
    fx_teardown();
    fx_setup_with(rcv4m);
    struct tseg sa = syn_in(NULL, 0, 65535);
    cr_assert(!sa.has_ws, "not offered: not answered");
    cr_assert_eq(sa.win, 65535);
    int sd = ack_in(sa.seq, NULL, 0, 65535);
    cr_assert_eq(info(sd).rcv_wscale, 0);
    cr_assert_eq(info(sd).rcv_wnd, 65535);
    static uint8_t d[1000];
    cap_clear();
    seg_in(P1, sa.seq + 1, SS_TCP_ACK, 65535, d, sizeof d);
    advance(cfg.delack_ms * MS);
    cr_assert_eq(one_seg().win, 65535 - 1000, "no new window below the SWS threshold");
}

Test(tcp_opt, right_edge_never_moves_left_with_odd_segments)
{
    fx_teardown();
    fx_setup_with(rcv4m);
    uint8_t o[4];
    struct tseg sa = syn_in(o, opt_ws(o, 7), 65535);
    peer_send_opts(PEER_PORT, US_PORT, P1, sa.seq + 1, SS_TCP_ACK, 65535, NULL, 0, NULL, 0);
    struct tseg u = one_seg();
    uint32_t edge = u.ack + ((uint32_t)u.win << 7);
    static uint8_t d[1460];
    const size_t sizes[] = {1000, 1, 777, 1460, 3, 1459, 129, 127, 1, 1000, 555, 1460};
    uint32_t seq = P1;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        cap_clear();
        seg_in(seq, sa.seq + 1, SS_TCP_ACK, 65535, d, sizes[i]);
        seq += (uint32_t)sizes[i];
        advance(cfg.delack_ms * MS);
        cr_assert_eq(ncap, 1);
        struct tseg a = cap_tcp(0);
        cr_assert_eq(a.ack, seq);
        uint32_t e = a.ack + ((uint32_t)a.win << 7);
        cr_assert_geq(e, edge, "segment %zu: edge %u moved left of %u", i, e, edge);
        cr_assert_lt(e - edge, 128, "and right by less than the granularity");
        edge = e;
    }
}

/* ===================================================================== */
/* Timestamps (RFC 7323 3-5)                                              */
/* ===================================================================== */

/* A passive connection with timestamps (the peer's clock: 100, 101). */
static int ts_conn(uint32_t *our_iss)
{
    uint8_t o[12];
    struct tseg sa = syn_in(o, opt_ts(o, 100, 0), 65535);
    uint8_t a[12];
    int sd = ack_in(sa.seq, a, opt_ts(a, 101, sa.ts_val), 65535);
    *our_iss = sa.seq;
    cap_clear();
    return sd;
}

Test(tcp_opt, ts_echo_follows_last_ack_sent)
{
    uint32_t iss;
    int sd = ts_conn(&iss);
    (void)sd;
    /* In-order data with TSval 200, ACK delayed: echoes 200. */
    ts_seg(P1, iss + 1, SS_TCP_ACK, 200, 0, "a", 1);
    advance(cfg.delack_ms * MS);
    struct tseg a = one_seg();
    cr_assert_eq(a.ts_ecr, 200);
    cr_assert_eq(a.optlen, 12, "nop, nop, TS on every segment");
    /* Beyond a hole (SEG.SEQ > Last.ACK.sent): TS.Recent stays 200. */
    cap_clear();
    ts_seg(P1 + 101, iss + 1, SS_TCP_ACK, 300, 0, "c", 1);
    a = one_seg();
    cr_assert_eq(a.ack, P1 + 1);
    cr_assert_eq(a.ts_ecr, 200, "RFC 7323 4.3 (2): not after a hole");
    /* The hole filled (SEG.SEQ = Last.ACK.sent): echoes its 301. */
    cap_clear();
    static uint8_t fill[100];
    ts_seg(P1 + 1, iss + 1, SS_TCP_ACK, 301, 0, fill, 100);
    a = one_seg();
    cr_assert_eq(a.ack, P1 + 102);
    cr_assert_eq(a.ts_ecr, 301);
    /* Two full segments, one ACK: the echo is the first one's TSval. */
    cap_clear();
    static uint8_t full[1460];
    ts_seg(P1 + 102, iss + 1, SS_TCP_ACK, 400, 0, full, 1460);
    cr_assert_eq(ncap, 0);
    ts_seg(P1 + 1562, iss + 1, SS_TCP_ACK, 401, 0, full, 1460);
    a = one_seg();
    cr_assert_eq(a.ack, P1 + 3022);
    cr_assert_eq(a.ts_ecr, 400, "the earliest segment the ACK acknowledges");
}

/* A timestamps connection we close first, now in TIME-WAIT with
 * TS.Recent 102 and RCV.NXT P1 + 1, orphaned. */
static void ts_time_wait(uint32_t *iss)
{
    int sd = ts_conn(iss);
    cr_assert_eq(ss_tcp_shutdown(st, now, sd), 0);
    struct tseg f = one_seg();
    cr_assert_eq(f.flags, SS_TCP_FIN | SS_TCP_ACK);
    cap_clear();
    ts_seg(P1, *iss + 2, SS_TCP_FIN | SS_TCP_ACK, 102, f.ts_val, NULL, 0);
    cr_assert_eq(sock_state(sd), SS_TCP_TIME_WAIT);
    ss_tcp_close(st, now, sd);
    cap_clear();
}

/* A new SYN with the peer's SYN options and TSval val, at seq. */
static void syn_ts(uint32_t seq, uint32_t val)
{
    uint8_t o[40];
    size_t n = opt_mss(o, 1460);
    n += opt_ts(o + n, val, 0);
    peer_send_opts(PEER_PORT, US_PORT, seq, 0, SS_TCP_SYN, 65535, o, n, NULL, 0);
}

/* RFC 6191: with timestamps on both incarnations, a SYN whose TSval is
 * above TS.Recent reopens the TIME-WAIT even with a sequence number
 * below the old RCV.NXT and no time passed for the ISS clock. */
Test(tcp_opt, time_wait_reopened_by_newer_timestamp)
{
    uint32_t iss;
    ts_time_wait(&iss);
    syn_ts(PEER_ISS - 5000, 103);
    struct tseg sa = one_seg();
    cr_assert_eq(sa.flags, SS_TCP_SYN | SS_TCP_ACK);
    cr_assert_eq(sa.ack, PEER_ISS - 4999);
    cr_assert(sa.has_ts);
    cr_assert_eq(sa.ts_ecr, 103);
    struct ss_stack_stats s;
    ss_stack_stats(st, &s);
    cr_assert_eq(s.tcp_tw_recycled, 1);
}

/* ... and one whose TSval is below TS.Recent is an old duplicate: dropped
 * silently (RFC 6191 2), the TIME-WAIT stays, even when its sequence
 * number is above the old RCV.NXT and the ISS clock has moved on. */
Test(tcp_opt, time_wait_keeps_syn_with_older_timestamp)
{
    uint32_t iss;
    ts_time_wait(&iss);
    now += 1 * SEC;
    syn_ts(P1 + 100000, 101);
    cr_assert_eq(ncap, 0, "dropped without an answer");
    struct ss_stack_stats s;
    ss_stack_stats(st, &s);
    cr_assert_eq(s.tcp_tw_recycled, 0);
    cr_assert_eq(s.tcp_paws_dropped, 1);
    cr_assert_eq(s.tcp_passive_opens, 1, "only the first connection");
    /* Equal TSval with a sequence number above RCV.NXT: reopened. */
    syn_ts(P1 + 100000, 102);
    cr_assert_eq(one_seg().flags, SS_TCP_SYN | SS_TCP_ACK);
    ss_stack_stats(st, &s);
    cr_assert_eq(s.tcp_tw_recycled, 1);
}

Test(tcp_opt, ts_on_every_segment_but_rst)
{
    uint32_t iss;
    int sd = ts_conn(&iss);
    cr_assert_eq(ss_tcp_send(st, now, sd, "xyz", 3), 3);
    struct tseg d = one_seg();
    cr_assert(d.has_ts);
    cr_assert_eq(d.ts_ecr, 101);
    cap_clear();
    cr_assert_eq(ss_tcp_abort(st, now, sd), 0);
    struct tseg r = one_seg();
    cr_assert_eq(r.flags, SS_TCP_RST);
    cr_assert_eq(r.optlen, 0, "no TS on a RST (RFC 7323 3.2)");
}

Test(tcp_opt, ts_bytes_come_out_of_the_mss)
{
    /* RFC 6691: the MSS counts no options; with 12 bytes of TS on every
     * segment, a full segment carries 1448 bytes in a 1500-byte packet. */
    uint32_t iss;
    int sd = ts_conn(&iss);
    cr_assert_eq(info(sd).snd_mss, 1448);
    ss_stack_sock_setopt(st, sd, SS_SO_NODELAY, 1);
    static uint8_t d[2000];
    cr_assert_eq(ss_tcp_send(st, now, sd, d, sizeof d), 2000);
    cr_assert_eq(ncap, 2);
    cr_assert_eq(cap_tcp(0).len, 1448);
    cr_assert_eq(caps[0].len, 1500, "20 + 20 + 12 + 1448");
    cr_assert_eq(cap_tcp(1).len, 552);
}

Test(tcp_opt, segment_without_ts_dropped_once_negotiated)
{
    uint32_t iss;
    int sd = ts_conn(&iss);
    seg_in(P1, iss + 1, SS_TCP_ACK | SS_TCP_PSH, 65535, "zz", 2);
    cr_assert_eq(ncap, 0, "dropped silently (RFC 7323 3.2)");
    char b[4];
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, sizeof b), -EAGAIN);
    struct ss_stack_stats ss;
    ss_stack_stats(st, &ss);
    cr_assert_eq(ss.tcp_paws_dropped, 1);
    /* A RST without TS is still taken (RFC 7323 3.2: MUST NOT drop). */
    seg_in(P1, 0, SS_TCP_RST, 0, NULL, 0);
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, sizeof b), -ECONNRESET);
}

Test(tcp_opt, rttm_sample_from_tsecr)
{
    int sd = ss_tcp_connect(st, now, PEER_IP, US_PORT, ACT_PORT);
    struct tseg s = one_seg();
    cap_clear();
    now += 30 * MS;   /* the SYN,ACK echoes the SYN's TSval 30 ms later */
    uint8_t o[16];
    size_t n = opt_mss(o, 1460);
    n += opt_ts(o + n, 1000, s.ts_val);
    peer_send_opts(US_PORT, ACT_PORT, PEER_ISS, s.seq + 1, SS_TCP_SYN | SS_TCP_ACK, 65535, o, n,
                   NULL, 0);
    struct ss_stack_sock_info in = info(sd);
    cr_assert_eq(in.state, SS_TCP_ESTABLISHED);
    /* RFC 6298 (2.2): SRTT = R, RTTVAR = R/2. */
    cr_assert_eq(in.srtt_us, 30000);
    cr_assert_eq(in.rttvar_us, 15000);
    /* Data, ACKed 50 ms later with its TSval echoed: (2.3). */
    cap_clear();
    cr_assert_eq(ss_tcp_send(st, now, sd, "data", 4), 4);
    struct tseg d = one_seg();
    now += 50 * MS;
    uint8_t a[12];
    peer_send_opts(US_PORT, ACT_PORT, PEER_ISS + 1, s.seq + 5, SS_TCP_ACK, 65535, a,
                   opt_ts(a, 1001, d.ts_val), NULL, 0);
    uint32_t R = 50000, srtt = 30000, rttvar = 15000;
    uint32_t want_rttvar = (3 * rttvar + (R > srtt ? R - srtt : srtt - R)) / 4;
    uint32_t want_srtt = (7 * srtt + R) / 8;
    in = info(sd);
    cr_assert_eq(in.srtt_us, want_srtt, "srtt %u", in.srtt_us);
    cr_assert_eq(in.rttvar_us, want_rttvar);
    /* TSecr 0 gives no sample; an ACK of nothing new gives none either. */
    cr_assert_eq(ss_tcp_send(st, now, sd, "more", 4), 4);
    now += 400 * MS;
    peer_send_opts(US_PORT, ACT_PORT, PEER_ISS + 1, s.seq + 9, SS_TCP_ACK, 65535, a,
                   opt_ts(a, 1002, 0), NULL, 0);
    cr_assert_eq(info(sd).snd_una, s.seq + 9);
    cr_assert_eq(info(sd).srtt_us, want_srtt, "TSecr 0: no sample");
    peer_send_opts(US_PORT, ACT_PORT, PEER_ISS + 1, s.seq + 9, SS_TCP_ACK, 65535, a,
                   opt_ts(a, 1003, d.ts_val), NULL, 0);
    cr_assert_eq(info(sd).srtt_us, want_srtt, "no new data acknowledged: no sample");
    /* A retransmission's ACK echoes the retransmission's TSval: a valid
     * sample where Karn's rule would take none (RFC 7323 4.1). */
    cr_assert_eq(ss_tcp_send(st, now, sd, "x", 1), 1);
    cap_clear();
    advance(info(sd).rto_us);
    struct tseg r = one_seg();
    cr_assert_eq(r.seq, s.seq + 9, "the RTO resent the byte");
    now += 20 * MS;
    peer_send_opts(US_PORT, ACT_PORT, PEER_ISS + 1, s.seq + 10, SS_TCP_ACK, 65535, a,
                   opt_ts(a, 1004, r.ts_val), NULL, 0);
    R = 20000;
    want_rttvar = (3 * want_rttvar + (R > want_srtt ? R - want_srtt : want_srtt - R)) / 4;
    want_srtt = (7 * want_srtt + R) / 8;
    in = info(sd);
    cr_assert_eq(in.srtt_us, want_srtt, "srtt %u", in.srtt_us);
    cr_assert_eq(in.rttvar_us, want_rttvar);
}

Test(tcp_opt, paws_drops_old_timestamp_and_acks)
{
    uint32_t iss;
    int sd = ts_conn(&iss);
    ts_seg(P1, iss + 1, SS_TCP_ACK, 500, 0, "a", 1);   /* TS.Recent = 500 */
    advance(cfg.delack_ms * MS);
    cap_clear();
    int before = ntrace;
    ts_seg(P1 + 1, iss + 1, SS_TCP_ACK, 499, 0, "b", 1);
    struct ss_stack_stats ss;
    ss_stack_stats(st, &ss);
    cr_assert_eq(ss.tcp_paws_dropped, 1);
    bool traced = false;
    for (int i = before; i < ntrace; i++)
        traced |= strcmp(trace_lines[i], "drop tcp-paws") == 0;
    cr_assert(traced, "the drop is traced as tcp-paws");
    struct tseg a = one_seg();
    cr_assert_eq(a.flags, SS_TCP_ACK, "an ACK in reply (R1)");
    cr_assert_eq(a.ack, P1 + 1, "the data was not taken");
    cr_assert_eq(a.ts_ecr, 500);
    char b[4];
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, sizeof b), 1);
    cr_assert_eq(b[0], 'a');
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, sizeof b), -EAGAIN);
    /* Wrapped compare: 2^31 - 1 ahead is newer, not older. */
    cap_clear();
    ts_seg(P1 + 1, iss + 1, SS_TCP_ACK, 500 + 0x7fffffffu, 0, "c", 1);
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, sizeof b), 1);
    cr_assert_eq(b[0], 'c');
    /* An old TSval on a RST is not PAWS' business (R1: not a RST). */
    ts_seg(P1 + 2, 0, SS_TCP_RST, 1, 0, NULL, 0);
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, sizeof b), -ECONNRESET);
}

Test(tcp_opt, paws_ts_recent_invalid_after_24_days)
{
    uint32_t iss;
    int sd = ts_conn(&iss);
    ts_seg(P1, iss + 1, SS_TCP_ACK, 500, 0, "a", 1);
    advance(cfg.delack_ms * MS);
    char b[4];
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, sizeof b), 1);
    now += 24ull * 24 * 3600 * SEC + 1;   /* idle for more than 24 days */
    cap_clear();
    ts_seg(P1 + 1, iss + 1, SS_TCP_ACK, 7, 0, "b", 1);
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, sizeof b), 1, "accepted (RFC 7323 5.5)");
    advance(cfg.delack_ms * MS);
    struct tseg a = one_seg();
    cr_assert_eq(a.ack, P1 + 2);
    cr_assert_eq(a.ts_ecr, 7, "TS.Recent taken from it");
}

/* ===================================================================== */
/* SACK, receiver: the blocks we send (RFC 2018 4)                        */
/* ===================================================================== */

/* A passive connection with SACK (and TS when ts). */
static int sack_conn(bool ts, uint32_t *our_iss)
{
    uint8_t o[16];
    size_t n = opt_sackok(o);
    if (ts)
        n += opt_ts(o + n, 100, 0);
    struct tseg sa = syn_in(o, n, 65535);
    cr_assert(sa.sack_ok);
    uint8_t a[12];
    int sd = ack_in(sa.seq, a, ts ? opt_ts(a, 101, sa.ts_val) : 0, 65535);
    cr_assert_eq(info(sd).options & SS_TCPI_OPT_SACK, SS_TCPI_OPT_SACK);
    *our_iss = sa.seq;
    cap_clear();
    return sd;
}

/* Peer data at P1 + off, length len (TS 1000 + off when ts); returns our
 * ACK (immediate for out-of-order data). */
static struct tseg ooo_in(bool ts, uint32_t iss, uint32_t off, uint32_t len)
{
    static uint8_t d[1000];
    cap_clear();
    if (ts) {
        uint8_t o[12];
        peer_send_opts(PEER_PORT, US_PORT, P1 + off, iss + 1, SS_TCP_ACK, 65535, o,
                       opt_ts(o, 1000 + off, 0), d, len);
    } else {
        seg_in(P1 + off, iss + 1, SS_TCP_ACK, 65535, d, len);
    }
    return one_seg();
}

static void want_blocks(struct tseg a, int n, const uint32_t (*b)[2])
{
    cr_assert_eq(a.nsack, n, "%d blocks, want %d", a.nsack, n);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(a.sack[i][0], P1 + b[i][0], "block %d start %u", i, a.sack[i][0] - P1);
        cr_assert_eq(a.sack[i][1], P1 + b[i][1], "block %d end %u", i, a.sack[i][1] - P1);
    }
}

Test(tcp_opt, sack_blocks_most_recent_first_with_ts)
{
    uint32_t iss;
    sack_conn(true, &iss);
    want_blocks(ooo_in(true, iss, 100, 100), 1, (const uint32_t[][2]){{100, 200}});
    want_blocks(ooo_in(true, iss, 300, 100), 2, (const uint32_t[][2]){{300, 400}, {100, 200}});
    want_blocks(ooo_in(true, iss, 500, 100), 3,
                (const uint32_t[][2]){{500, 600}, {300, 400}, {100, 200}});
    /* 200-300 joins two ranges: the joined one goes first. */
    want_blocks(ooo_in(true, iss, 200, 100), 2, (const uint32_t[][2]){{100, 400}, {500, 600}});
    want_blocks(ooo_in(true, iss, 700, 100), 3,
                (const uint32_t[][2]){{700, 800}, {100, 400}, {500, 600}});
    /* Four ranges, three fit beside TS (RFC 2018 3): the oldest is left out. */
    struct tseg a = ooo_in(true, iss, 900, 100);
    want_blocks(a, 3, (const uint32_t[][2]){{900, 1000}, {700, 800}, {100, 400}});
    cr_assert_eq(a.optlen, 40, "nop,nop,TS + nop,nop,SACK with 3 blocks");
    cr_assert_eq(a.ack, P1);
    /* The hole at the start filled: the ACK moves, the rest remain by recency. */
    a = ooo_in(true, iss, 0, 100);
    cr_assert_eq(a.ack, P1 + 400);
    want_blocks(a, 3, (const uint32_t[][2]){{900, 1000}, {700, 800}, {500, 600}});
    /* A duplicate inside a range makes that range the most recent. */
    a = ooo_in(true, iss, 700, 50);
    want_blocks(a, 3, (const uint32_t[][2]){{700, 800}, {900, 1000}, {500, 600}});
}

Test(tcp_opt, sack_four_blocks_without_ts)
{
    uint32_t iss;
    sack_conn(false, &iss);
    for (uint32_t off = 100; off <= 900; off += 200)
        ooo_in(false, iss, off, 100);
    struct tseg a = ooo_in(false, iss, 1100, 100);
    want_blocks(a, 4, (const uint32_t[][2]){{1100, 1200}, {900, 1000}, {700, 800}, {500, 600}});
    cr_assert_eq(a.optlen, 36, "nop,nop,SACK with 4 blocks");
    /* The first hole filled: five ranges left, four reported. */
    a = ooo_in(false, iss, 0, 100);
    cr_assert_eq(a.ack, P1 + 200);
    cr_assert_eq(a.nsack, 4);
}

Test(tcp_opt, no_sack_blocks_when_not_negotiated_or_in_order)
{
    struct tseg sa = syn_in(NULL, 0, 65535);
    ack_in(sa.seq, NULL, 0, 65535);
    uint32_t iss = sa.seq;
    struct tseg a = ooo_in(false, iss, 100, 100);
    cr_assert_eq(a.optlen, 0, "no sackOK in the SYN: no blocks");
    a = ooo_in(false, iss, 0, 100);
    cr_assert_eq(a.ack, P1 + 200);
    cr_assert_eq(a.optlen, 0);
}

/* ===================================================================== */
/* SACK, sender: the scoreboard of the peer's blocks (RFC 2018 5, 6675)   */
/* ===================================================================== */

/* A connection with SACK where we sent 5 segments of 1000 bytes
 * (the peer's MSS): S + 0 .. S + 5000 in flight, S = our ISS + 1. */
static int sent5(uint32_t *S)
{
    uint8_t o[16];
    size_t n = opt_sackok(o);
    listen_sd = ss_tcp_listen(st, US_PORT, 8);
    uint8_t m[8];
    size_t k = opt_mss(m, 1000);
    memcpy(m + k, o, n);
    k += n;
    cap_clear();
    peer_send_opts(PEER_PORT, US_PORT, PEER_ISS, 0, SS_TCP_SYN, 65535, m, k, NULL, 0);
    struct tseg sa = one_seg();
    int sd = ack_in(sa.seq, NULL, 0, 65535);
    ss_stack_sock_setopt(st, sd, SS_SO_NODELAY, 1);
    static uint8_t d[5000];
    cap_clear();
    cr_assert_eq(ss_tcp_send(st, now, sd, d, sizeof d), 5000);
    cr_assert_eq(ncap, 5);
    *S = sa.seq + 1;
    cap_clear();
    return sd;
}

static void sack_ack(uint32_t ack, int n, const uint32_t (*b)[2])
{
    uint8_t o[40];
    size_t k = opt_sack(o, n, b);
    peer_send_opts(PEER_PORT, US_PORT, P1, ack, SS_TCP_ACK, 65535, o, k, NULL, 0);
}

static void want_sb(int sd, int n, const uint32_t (*b)[2], uint32_t S)
{
    uint32_t r[16][2];
    int got = ss_stack_sock_sacked(st, sd, r, 16);
    cr_assert_eq(got, n, "%d ranges, want %d", got, n);
    uint32_t bytes = 0;
    for (int i = 0; i < n; i++) {
        cr_assert_eq(r[i][0], S + b[i][0], "range %d start %u", i, r[i][0] - S);
        cr_assert_eq(r[i][1], S + b[i][1], "range %d end %u", i, r[i][1] - S);
        bytes += b[i][1] - b[i][0];
    }
    cr_assert_eq(info(sd).sacked_bytes, bytes);
}

Test(tcp_opt, scoreboard_updates_merges_and_prunes)
{
    uint32_t S;
    int sd = sent5(&S);
    sack_ack(S, 1, (const uint32_t[][2]){{S + 1000, S + 2000}});
    want_sb(sd, 1, (const uint32_t[][2]){{1000, 2000}}, S);
    sack_ack(S, 2, (const uint32_t[][2]){{S + 3000, S + 4000}, {S + 1000, S + 2000}});
    want_sb(sd, 2, (const uint32_t[][2]){{1000, 2000}, {3000, 4000}}, S);
    /* Touching ranges merge. */
    sack_ack(S, 1, (const uint32_t[][2]){{S + 2000, S + 3000}});
    want_sb(sd, 1, (const uint32_t[][2]){{1000, 4000}}, S);
    /* A cumulative ACK into the range cuts it; past it, it goes. */
    sack_ack(S + 1500, 0, NULL);
    want_sb(sd, 1, (const uint32_t[][2]){{1500, 4000}}, S);
    sack_ack(S + 4000, 0, NULL);
    want_sb(sd, 0, NULL, S);
}

Test(tcp_opt, scoreboard_ignores_invalid_blocks)
{
    uint32_t S;
    int sd = sent5(&S);
    sack_ack(S, 4, (const uint32_t[][2]){
        {S + 4000, S + 5001},   /* beyond SND.MAX: never sent */
        {S - 500, S},           /* below SND.UNA (a D-SACK) */
        {S + 2500, S + 2500},   /* empty */
        {S + 3000, S + 2000},   /* end before start */
    });
    want_sb(sd, 0, NULL, S);
    /* Below the ACK this segment carries: also ignored. */
    sack_ack(S + 2000, 2, (const uint32_t[][2]){{S + 1000, S + 2000}, {S + 4000, S + 5000}});
    want_sb(sd, 1, (const uint32_t[][2]){{4000, 5000}}, S);
}

/* The queries RFC 6675 needs (pipe, NextSeg, IsLost), on a known board. */
Test(tcp_opt, scoreboard_queries_for_rfc6675)
{
    uint32_t S;
    int sd = sent5(&S);
    const struct ss_pcb *sk = ss__sock_at(st, sd);
    cr_assert_eq(ss__sack_high(sk), S, "nothing SACKed: SND.UNA");
    uint32_t a, b;
    cr_assert(!ss__sack_next_hole(sk, S, &a, &b), "no hole below nothing");
    sack_ack(S, 2, (const uint32_t[][2]){{S + 1000, S + 2000}, {S + 3000, S + 4000}});
    cr_assert(!ss__sack_is_sacked(sk, S + 999));
    cr_assert(ss__sack_is_sacked(sk, S + 1000));
    cr_assert(ss__sack_is_sacked(sk, S + 1999));
    cr_assert(!ss__sack_is_sacked(sk, S + 2000));
    cr_assert_eq(ss__sack_sacked_bytes(sk), 2000);
    cr_assert_eq(ss__sack_sacked_above(sk, S), 2000);
    cr_assert_eq(ss__sack_sacked_above(sk, S + 1500), 499 + 1000);
    cr_assert_eq(ss__sack_sacked_above(sk, S + 3999), 0);
    cr_assert_eq(ss__sack_ranges_above(sk, S), 2);
    cr_assert_eq(ss__sack_ranges_above(sk, S + 1000), 1, "a range starting at seq is not above it");
    cr_assert_eq(ss__sack_high(sk), S + 4000);
    /* IsLost with DupThresh 3 and SMSS 1000: 2 ranges, 2000 bytes (not > 2000). */
    cr_assert(!ss__sack_is_lost(sk, S, 3));
    cr_assert(ss__sack_is_lost(sk, S, 2));
    cr_assert(ss__sack_next_hole(sk, S, &a, &b));
    cr_assert_eq(a, S);
    cr_assert_eq(b, S + 1000);
    cr_assert(ss__sack_next_hole(sk, S + 1000, &a, &b));
    cr_assert_eq(a, S + 2000, "from inside a SACKed range: the hole after it");
    cr_assert_eq(b, S + 3000);
    cr_assert(ss__sack_next_hole(sk, S + 2500, &a, &b));
    cr_assert_eq(a, S + 2500);
    cr_assert_eq(b, S + 3000);
    cr_assert(!ss__sack_next_hole(sk, S + 3500, &a, &b), "nothing SACKed above");
    sack_ack(S, 1, (const uint32_t[][2]){{S + 4500, S + 5000}});
    cr_assert(ss__sack_is_lost(sk, S, 3), "three ranges above");
    cr_assert_eq(ss__sack_sacked_above(sk, S), 2500);
    cr_assert(ss__sack_next_hole(sk, S + 3500, &a, &b));
    cr_assert_eq(a, S + 4000);
    cr_assert_eq(b, S + 4500);
    cr_assert_eq(ss__sack_high(sk), S + 5000);
    cr_assert_eq(ss__sack_count(sk), 3);
    cr_assert_eq(ss__sack_range(sk, 2).start, S + 4500);
}

static void sack2(struct ss_stack_cfg *c) { c->sack_max = 2; }

Test(tcp_opt, scoreboard_is_bounded)
{
    fx_teardown();
    fx_setup_with(sack2);
    uint32_t S;
    int sd = sent5(&S);
    sack_ack(S, 3, (const uint32_t[][2]){{S + 3000, S + 3500}, {S + 1000, S + 1500},
                                         {S + 2000, S + 2500}});
    /* Two ranges kept, the lowest: the highest is forgotten. */
    want_sb(sd, 2, (const uint32_t[][2]){{1000, 1500}, {2000, 2500}}, S);
    sack_ack(S, 1, (const uint32_t[][2]){{S + 500, S + 800}});
    want_sb(sd, 2, (const uint32_t[][2]){{500, 800}, {1000, 1500}}, S);
}

/* The default scoreboard grows with the holes: 100 ranges are all kept
 * (the array starts at 16 and doubles; the old fixed 64 forgot the top
 * 36, whose data then looked unSACKed and was sent again). */
Test(tcp_opt, scoreboard_grows_to_hold_every_hole)
{
    uint32_t S;
    int sd = sent5(&S);
    for (uint32_t i = 0; i < 100; i += 4) {
        uint32_t b[4][2];
        for (uint32_t k = 0; k < 4; k++) {
            b[k][0] = S + 40 * (i + k) + 10;
            b[k][1] = S + 40 * (i + k) + 30;
        }
        sack_ack(S, 4, (const uint32_t(*)[2])b);
    }
    static uint32_t r[128][2];
    cr_assert_eq(ss_stack_sock_sacked(st, sd, r, 128), 100);
    for (uint32_t i = 0; i < 100; i++) {
        cr_assert_eq(r[i][0] - S, 40 * i + 10, "range %u", i);
        cr_assert_eq(r[i][1] - S, 40 * i + 30, "range %u", i);
    }
    cr_assert_eq(info(sd).sacked_bytes, 2000);
}

/* ===================================================================== */
/* Traces: options in tcpdump's notation                                 */
/* ===================================================================== */

Test(tcp_opt, trace_shows_options_tcpdump_style)
{
    uint8_t o[20];
    size_t n = opt_sackok(o);
    n += opt_ts(o + n, 100, 0);
    n += opt_ws(o + n, 7);
    listen_sd = ss_tcp_listen(st, US_PORT, 8);
    int first = ntrace;
    struct tseg sa = syn_in(o, n, 65535);
    char want_in[128], want_out[128];
    snprintf(want_in, sizeof want_in,
             "< SYN seq=%u win=65535 <mss 1460,nop,nop,sackOK,nop,nop,TS val 100 ecr 0,nop,wscale 7>",
             PEER_ISS);
    snprintf(want_out, sizeof want_out,
             "> SYN,ACK seq=%u ack=%u win=8192 <mss 1460,sackOK,TS val %u ecr 100,nop,wscale 0>",
             sa.seq, P1, sa.ts_val);
    bool in_ok = false, out_ok = false;
    for (int i = first; i < ntrace; i++) {
        in_ok |= strcmp(trace_lines[i], want_in) == 0;
        out_ok |= strcmp(trace_lines[i], want_out) == 0;
    }
    cr_assert(in_ok, "want %s", want_in);
    cr_assert(out_ok, "want %s", want_out);

    char b[200];
    const uint8_t so[] = {1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 3, 1, 1, 5, 10,
                          0, 0, 0x0b, 0xb9, 0, 0, 0x11, 0x6d};
    ss_tcp_options_format(so, sizeof so, b, sizeof b);
    cr_assert_str_eq(b, "nop,nop,TS val 5 ecr 3,nop,nop,sack 1 {3001:4461}");
    const uint8_t bad[] = {1, 30, 4, 0, 0, 2, 9};
    ss_tcp_options_format(bad, sizeof bad, b, sizeof b);
    cr_assert_str_eq(b, "nop,opt-30:4,bad-opts");
}
