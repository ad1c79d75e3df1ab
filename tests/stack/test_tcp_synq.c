/* The SYN queue and SYN cookies (issue 10, RFC 4987): half-open entries
 * that are not sockets, bounded per listener and per stack; SYN,ACK
 * retransmission with fewer retries under pressure; cookies with the MSS
 * index, and WS/SACK in the TSval's low bits; forged and expired cookie
 * ACKs answered with a RST. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fixture.h"
#include "sockstack/config.h"

TestSuite(tcp_synq, .init = fx_setup, .fini = fx_teardown, .timeout = 60);

#define BACKLOG 8
#define FLOOD 10000
#define PERIOD_US (SS_STACK_SYNCOOKIE_PERIOD_S * SEC)

/* SYN i of a flood from spoofed sources 10.1.0.0/16, any port. */
static void spoofed_syn(uint32_t i)
{
    static uint8_t pkt[100];
    uint32_t src = 0x0a010000u + (i % 65000) + 1;
    size_t n = mk_tcp(pkt, src, US_IP, (uint16_t)(1024 + i % 60000), US_PORT, i * 7919u, 0,
                      SS_TCP_SYN, 64240, 1460, NULL, 0);
    ss_stack_input(st, now, pkt, n);
}

static void flood(uint32_t count)
{
    for (uint32_t i = 0; i < count; i++) {
        if (ncap > CAP_MAX - 2)
            cap_clear();
        spoofed_syn(i);
    }
    cap_clear();
}

static struct ss_stack_stats stats(void)
{
    struct ss_stack_stats s;
    ss_stack_stats(st, &s);
    return s;
}

static struct ss_stack_sock_info info(int sd)
{
    struct ss_stack_sock_info in;
    cr_assert_eq(ss_stack_sock_info(st, sd, &in), 0);
    return in;
}

static void set_cookies(int mode)
{
    ss_stack_free(st);
    cfg.syncookies = mode;
    cr_assert_eq(ss_stack_new(&cfg, &st), 0);
}

/* The legitimate client's SYN (PEER_IP:PEER_PORT, MSS mss) and the SYN,ACK. */
static struct tseg legit_syn(uint16_t mss)
{
    cap_clear();
    peer_send_mss(PEER_PORT, US_PORT, PEER_ISS, 0, SS_TCP_SYN, 65535, mss);
    return one_seg();
}

/* ===================================================================== */
/* The flood: 10,000 spoofed SYNs, backlog 8                              */
/* ===================================================================== */

Test(tcp_synq, flood_holds_backlog_entries_and_a_client_gets_in_by_cookie)
{
    int ls = ss_tcp_listen(st, US_PORT, BACKLOG);
    flood(FLOOD);
    ntrace = 0;
    struct ss_stack_sock_info li = info(ls);
    cr_assert_eq(li.syn_queued, BACKLOG, "no more half-open entries than the backlog");
    struct ss_stack_stats s = stats();
    cr_assert_eq(s.tcp_syncookies_sent, FLOOD - BACKLOG);
    cr_assert_eq(s.tcp_syn_queue_full, 0);
    cr_assert_eq(s.tcp_passive_opens, 0);

    /* The client: its SYN meets a full queue and gets a cookie. */
    struct tseg sa = legit_syn(1460);
    cr_assert_eq(sa.flags, SS_TCP_SYN | SS_TCP_ACK);
    cr_assert_eq(sa.ack, PEER_ISS + 1);
    cr_assert_eq(sa.mss, 1460);
    cr_assert_eq(stats().tcp_syncookies_sent, FLOOD - BACKLOG + 1);
    char want[128];
    snprintf(want, sizeof want, "syncookie sent isn=%u mss=1460", sa.seq);
    cr_assert_str_eq(trace_lines[ntrace - 2], want);
    cr_assert_eq(info(ls).syn_queued, BACKLOG, "a cookie keeps nothing");

    /* Its ACK carries the cookie back: the connection, ESTABLISHED. */
    cap_clear();
    seg_in(PEER_ISS + 1, sa.seq + 1, SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(ncap, 0);
    int sd = ss_tcp_accept(st, ls, NULL, NULL);
    cr_assert_geq(sd, 0);
    struct ss_stack_sock_info in = info(sd);
    cr_assert_eq(in.state, SS_TCP_ESTABLISHED);
    cr_assert_eq(in.iss, sa.seq);
    cr_assert_eq(in.snd_una, sa.seq + 1);
    cr_assert_eq(in.rcv_nxt, PEER_ISS + 1);
    cr_assert_eq(in.snd_mss, 1460, "the cookie's MSS index: 1460");
    cr_assert_eq(in.options, 0u, "no timestamps: no WS, no SACK");
    s = stats();
    cr_assert_eq(s.tcp_syncookies_recv, 1);
    cr_assert_eq(s.tcp_syncookies_failed, 0);
    cr_assert_eq(s.tcp_passive_opens, 1);

    /* It works: data both ways. */
    cap_clear();
    seg_in(PEER_ISS + 1, sa.seq + 1, SS_TCP_PSH | SS_TCP_ACK, 65535, "ping", 4);
    char b[8];
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, sizeof b), 4);
    cr_assert_eq(memcmp(b, "ping", 4), 0);
    cr_assert_eq(ss_tcp_send(st, now, sd, "pong", 4), 4);
    struct tseg d = cap_tcp(ncap - 1);
    cr_assert_eq(d.seq, sa.seq + 1);
    cr_assert_eq(d.len, 4);
}

/* The table is not allocated up front: it grows as half-open connections
 * come (16 entries, then 32, 64), and every entry made before a growth is
 * still found by its 4-tuple after it: each of 40 handshakes completes. */
Test(tcp_synq, table_grows_and_keeps_every_entry)
{
    enum { N = 40 };
    ss_stack_free(st);
    cfg.max_sockets = N + 1;   /* the listener and its 40 children */
    cr_assert_eq(ss_stack_new(&cfg, &st), 0);
    struct ss_stack_mem m;
    ss_stack_mem(st, &m);
    uint64_t before = m.table_bytes;
    int ls = ss_tcp_listen(st, US_PORT, 64);
    uint32_t isn[N];
    for (uint32_t i = 0; i < N; i++) {
        cap_clear();
        spoofed_syn(i);
        struct tseg sa = one_seg();
        cr_assert_eq(sa.flags, SS_TCP_SYN | SS_TCP_ACK);
        cr_assert_eq(sa.ack, i * 7919u + 1);
        isn[i] = sa.seq;
    }
    cr_assert_eq(info(ls).syn_queued, N);
    cr_assert_eq(stats().tcp_syncookies_sent, 0, "entries, not cookies");
    ss_stack_mem(st, &m);
    cr_assert_gt(m.table_bytes, before + 64 * 16, "64 entries of at least 16 bytes came");
    static uint8_t pkt[100];
    for (uint32_t i = 0; i < N; i++) {
        cap_clear();
        size_t n = mk_tcp(pkt, 0x0a010000u + i + 1, US_IP, (uint16_t)(1024 + i), US_PORT,
                          i * 7919u + 1, isn[i] + 1, SS_TCP_ACK, 64240, 0, NULL, 0);
        ss_stack_input(st, now, pkt, n);
        cr_assert_eq(ncap, 0, "ACK %u completes its handshake (no RST)", i);
    }
    cr_assert_eq(info(ls).syn_queued, 0);
    cr_assert_eq(stats().tcp_passive_opens, N);
    for (uint32_t i = 0; i < N; i++) {
        uint32_t raddr;
        uint16_t rport;
        int sd = ss_tcp_accept(st, ls, &raddr, &rport);
        cr_assert_geq(sd, 0);
        cr_assert_eq(raddr, 0x0a010000u + i + 1);
        cr_assert_eq(rport, 1024 + i);
        cr_assert_eq(info(sd).state, SS_TCP_ESTABLISHED);
    }
}

/* The same flood with cookies off: the client's SYN is dropped, as every
 * retry of it would be while the spoofed entries live. This is the test
 * above failing, on purpose. */
Test(tcp_synq, flood_without_cookies_locks_the_client_out)
{
    set_cookies(0);
    int ls = ss_tcp_listen(st, US_PORT, BACKLOG);
    flood(FLOOD);
    cr_assert_eq(info(ls).syn_queued, BACKLOG);
    cap_clear();
    peer_send_mss(PEER_PORT, US_PORT, PEER_ISS, 0, SS_TCP_SYN, 65535, 1460);
    cr_assert_eq(ncap, 0, "no SYN,ACK: the client cannot get in");
    struct ss_stack_stats s = stats();
    cr_assert_eq(s.tcp_syn_queue_full, FLOOD - BACKLOG + 1);
    cr_assert_eq(s.tcp_syncookies_sent, 0);
    cr_assert_eq(ss_tcp_accept(st, ls, NULL, NULL), -EAGAIN);
}

/* The table is bounded for the whole stack too: two listeners share
 * cfg.synq_max entries, and the one that finds the table full sends
 * cookies although its own queue is empty. */
Test(tcp_synq, stack_wide_bound_shared_by_listeners)
{
    ss_stack_free(st);
    cfg.synq_max = 5;
    cr_assert_eq(ss_stack_new(&cfg, &st), 0);
    int a = ss_tcp_listen(st, US_PORT, BACKLOG);
    int b = ss_tcp_listen(st, US_PORT + 1, BACKLOG);
    flood(5);
    cr_assert_eq(info(a).syn_queued, 5);
    cap_clear();
    peer_send_mss(PEER_PORT, US_PORT + 1, PEER_ISS, 0, SS_TCP_SYN, 65535, 1460);
    cr_assert_eq(one_seg().flags, SS_TCP_SYN | SS_TCP_ACK);
    cr_assert_eq(info(b).syn_queued, 0);
    cr_assert_eq(stats().tcp_syncookies_sent, 1);
}

/* ===================================================================== */
/* Cookies                                                                */
/* ===================================================================== */

/* The MSS a cookie carries is the largest of 536, 1300, 1440, 1460 not
 * above the peer's (no option: 536), whatever the queue. */
Test(tcp_synq, cookie_carries_the_mss_index)
{
    set_cookies(2);
    int ls = ss_tcp_listen(st, US_PORT, BACKLOG);
    const uint16_t peer[] = {1460, 9000, 1459, 1440, 1400, 1300, 1299, 536, 0};
    const uint16_t want[] = {1460, 1460, 1440, 1440, 1300, 1300, 536, 536, 536};
    for (unsigned i = 0; i < sizeof peer / sizeof peer[0]; i++) {
        uint16_t port = (uint16_t)(PEER_PORT + 100 + i);
        cap_clear();
        peer_send_mss(port, US_PORT, PEER_ISS, 0, SS_TCP_SYN, 65535, peer[i]);
        struct tseg sa = one_seg();
        cr_assert_eq(info(ls).syn_queued, 0, "cookies always: no entry");
        peer_send(port, US_PORT, PEER_ISS + 1, sa.seq + 1, SS_TCP_ACK, 65535, NULL, 0);
        int sd = ss_tcp_accept(st, ls, NULL, NULL);
        cr_assert_geq(sd, 0, "peer MSS %u", peer[i]);
        cr_assert_eq(info(sd).snd_mss, want[i], "peer MSS %u: cookie MSS %u", peer[i], want[i]);
    }
    cr_assert_eq(stats().tcp_syncookies_recv, sizeof peer / sizeof peer[0]);
}

/* A forged cookie (any other number, or the right one for another tuple
 * or another SEG.SEQ) is an ACK in LISTEN: <SEQ=SEG.ACK><CTL=RST>. */
Test(tcp_synq, forged_cookie_ack_is_reset)
{
    set_cookies(2);
    int ls = ss_tcp_listen(st, US_PORT, BACKLOG);
    struct tseg sa = legit_syn(1460);
    const struct {
        uint16_t port;
        uint32_t seq, ack;
    } bad[] = {
        /* MSS 1460 is the last index: one more is none */
        {PEER_PORT, PEER_ISS + 1, sa.seq + 2},
        {PEER_PORT, PEER_ISS + 1, (sa.seq + 1) ^ 0x00800000u},   /* hash bits */
        {PEER_PORT, PEER_ISS + 1, sa.seq + 1 + 0x01000000u},     /* a tick ahead */
        {PEER_PORT + 1, PEER_ISS + 1, sa.seq + 1},               /* another port */
        {PEER_PORT, PEER_ISS + 1 + 0x1000, sa.seq + 1},          /* another IRS */
    };
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cap_clear();
        peer_send(bad[i].port, US_PORT, bad[i].seq, bad[i].ack, SS_TCP_ACK, 65535, NULL, 0);
        struct tseg r = one_seg();
        cr_assert_eq(r.flags, SS_TCP_RST, "forgery %u", i);
        cr_assert_eq(r.seq, bad[i].ack);
    }
    cr_assert_eq(ss_tcp_accept(st, ls, NULL, NULL), -EAGAIN);
    struct ss_stack_stats s = stats();
    cr_assert_eq(s.tcp_syncookies_failed, 5);
    cr_assert_eq(s.tcp_syncookies_recv, 0);
    char want[64];
    snprintf(want, sizeof want, "syncookie rejected isn=%u", sa.seq);
    cr_assert_str_eq(trace_lines[ntrace - 3], want, "the last forgery's, then < ACK, > RST");
    /* The right one still works. */
    seg_in(PEER_ISS + 1, sa.seq + 1, SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_geq(ss_tcp_accept(st, ls, NULL, NULL), 0);
}

/* A cookie lives in its 64 s tick and the next one; after that it is
 * rejected although cookies are still being sent. */
Test(tcp_synq, expired_cookie_ack_is_reset)
{
    set_cookies(2);
    int ls = ss_tcp_listen(st, US_PORT, BACKLOG);
    now = 10 * PERIOD_US;   /* at the start of a tick */
    struct tseg sa = legit_syn(1460);
    now += 2 * PERIOD_US - 1;   /* the last microsecond of the next tick */
    legit_syn(1460);
    cap_clear();
    seg_in(PEER_ISS + 1, sa.seq + 1, SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(ncap, 0);
    cr_assert_geq(ss_tcp_accept(st, ls, NULL, NULL), 0, "still valid in the next tick");

    cap_clear();
    now += 1;   /* tick 12 */
    peer_send(PEER_PORT + 2, US_PORT, PEER_ISS, 0, SS_TCP_SYN, 65535, NULL, 0);
    struct tseg sc = one_seg();
    cap_clear();
    now += 2 * PERIOD_US;   /* tick 14: sc's cookie is two ticks old */
    peer_send(PEER_PORT + 2, US_PORT, PEER_ISS + 1, sc.seq + 1, SS_TCP_ACK, 65535, NULL, 0);
    struct tseg r = one_seg();
    cr_assert_eq(r.flags, SS_TCP_RST, "expired");
    cr_assert_eq(r.seq, sc.seq + 1);
    cr_assert_eq(ss_tcp_accept(st, ls, NULL, NULL), -EAGAIN);
    cr_assert_eq(stats().tcp_syncookies_failed, 1);
    cr_assert_eq(stats().tcp_syncookies_recv, 1);
}

/* With timestamps the cookie SYN,ACK offers what the SYN offered, and
 * our TSval's low 6 bits hold the peer's shift and SACK-permitted; the
 * ACK's TSecr brings them back. */
Test(tcp_synq, cookie_keeps_wscale_and_sack_in_the_tsval)
{
    set_cookies(2);
    int ls = ss_tcp_listen(st, US_PORT, BACKLOG);
    now = 5 * SEC + 777 * MS;
    uint8_t o[40];
    size_t n = opt_mss(o, 1460);
    n += opt_sackok(o + n);
    n += opt_ts(o + n, 4242, 0);
    n += opt_ws(o + n, 9);
    cap_clear();
    peer_send_opts(PEER_PORT, US_PORT, PEER_ISS, 0, SS_TCP_SYN, 65535, o, n, NULL, 0);
    struct tseg sa = one_seg();
    cr_assert(sa.has_ts);
    cr_assert(sa.sack_ok);
    cr_assert(sa.has_ws);
    cr_assert_eq(sa.ts_ecr, 4242);
    cr_assert_eq(sa.ts_val & 0x3f, 9u | 0x10u, "shift 9 and SACK in the low bits");
    uint8_t a[12];
    size_t an = opt_ts(a, 4243, sa.ts_val);
    cap_clear();
    peer_send_opts(PEER_PORT, US_PORT, PEER_ISS + 1, sa.seq + 1, SS_TCP_ACK, 100, a, an, NULL, 0);
    int sd = ss_tcp_accept(st, ls, NULL, NULL);
    cr_assert_geq(sd, 0);
    struct ss_stack_sock_info in = info(sd);
    cr_assert_eq(in.options, SS_TCPI_OPT_TIMESTAMPS | SS_TCPI_OPT_SACK | SS_TCPI_OPT_WSCALE);
    cr_assert_eq(in.snd_wscale, 9);
    cr_assert_eq(in.snd_wnd, 100u << 9);
    cr_assert_eq(in.snd_mss, 1460 - 12, "TS takes 12 bytes of each segment");
    /* Our TSvals go on from the same clock, never below the cookie's. */
    cr_assert_eq(ss_tcp_send(st, now, sd, "x", 1), 1);
    struct tseg d = cap_tcp(ncap - 1);
    cr_assert(d.has_ts);
    cr_assert_eq(d.ts_ecr, 4243);
    cr_assert_geq(d.ts_val - sa.ts_val, 0u);
    cr_assert_lt(d.ts_val - sa.ts_val, 64u);

    /* No WS offered, no SACK: 0xf and no SACK bit. */
    n = opt_mss(o, 1460);
    n += opt_ts(o + n, 99, 0);
    cap_clear();
    peer_send_opts(PEER_PORT + 1, US_PORT, PEER_ISS, 0, SS_TCP_SYN, 65535, o, n, NULL, 0);
    sa = one_seg();
    cr_assert_eq(sa.ts_val & 0x3f, 0xfu);
    cr_assert(!sa.has_ws);
    cr_assert(!sa.sack_ok);
    an = opt_ts(a, 100, sa.ts_val);
    peer_send_opts(PEER_PORT + 1, US_PORT, PEER_ISS + 1, sa.seq + 1, SS_TCP_ACK, 100, a, an, NULL,
                   0);
    sd = ss_tcp_accept(st, ls, NULL, NULL);
    cr_assert_geq(sd, 0);
    cr_assert_eq(info(sd).options, SS_TCPI_OPT_TIMESTAMPS);
}

/* Without timestamps there is nowhere to keep WS and SACK: the cookie
 * SYN,ACK offers neither, though the SYN offered both. */
Test(tcp_synq, cookie_without_timestamps_drops_wscale_and_sack)
{
    set_cookies(2);
    int ls = ss_tcp_listen(st, US_PORT, BACKLOG);
    uint8_t o[40];
    size_t n = opt_mss(o, 1440);
    n += opt_sackok(o + n);
    n += opt_ws(o + n, 7);
    cap_clear();
    peer_send_opts(PEER_PORT, US_PORT, PEER_ISS, 0, SS_TCP_SYN, 65535, o, n, NULL, 0);
    struct tseg sa = one_seg();
    cr_assert_eq(sa.optlen, 4, "only the MSS option");
    cr_assert_eq(sa.mss, 1460);
    cap_clear();
    seg_in(PEER_ISS + 1, sa.seq + 1, SS_TCP_ACK, 1000, NULL, 0);
    int sd = ss_tcp_accept(st, ls, NULL, NULL);
    cr_assert_geq(sd, 0);
    struct ss_stack_sock_info in = info(sd);
    cr_assert_eq(in.options, 0u);
    cr_assert_eq(in.snd_wnd, 1000, "the window is not scaled");
    cr_assert_eq(in.snd_mss, 1440);
}

/* Data on the cookie ACK is taken, as on any ACK that completes a
 * handshake. */
Test(tcp_synq, cookie_ack_with_data)
{
    set_cookies(2);
    int ls = ss_tcp_listen(st, US_PORT, BACKLOG);
    struct tseg sa = legit_syn(1460);
    cap_clear();
    seg_in(PEER_ISS + 1, sa.seq + 1, SS_TCP_PSH | SS_TCP_ACK, 65535, "hello", 5);
    int sd = ss_tcp_accept(st, ls, NULL, NULL);
    cr_assert_geq(sd, 0);
    char b[8];
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, sizeof b), 5);
    cr_assert_eq(memcmp(b, "hello", 5), 0);
}

/* ===================================================================== */
/* Half-open entries                                                      */
/* ===================================================================== */

/* An entry made while the queue is more than half full gets its SYN,ACK
 * again twice (at 1 and 3 s) and is gone at 7 s; the earlier ones get
 * cfg.syn_retries (at 1, 3, 7, 15 ... s). */
Test(tcp_synq, synack_retries_fewer_under_pressure)
{
    int ls = ss_tcp_listen(st, US_PORT, BACKLOG);
    uint64_t start = now;
    flood(BACKLOG);   /* four entries at most half full, four beyond */
    const int want[8] = {BACKLOG, 0, BACKLOG, 0, 0, 0, BACKLOG / 2, 0};
    for (int t = 1; t <= 8; t++) {
        cap_clear();
        advance(1 * SEC);
        cr_assert_eq(ncap, want[t - 1], "t=%d s", t);
        for (int i = 0; i < ncap; i++)
            cr_assert_eq(cap_tcp(i).flags, SS_TCP_SYN | SS_TCP_ACK);
    }
    cr_assert_eq(info(ls).syn_queued, BACKLOG / 2, "the late four gave up at 7 s");
    cr_assert_eq(stats().tcp_synq_timeouts, BACKLOG / 2);
    int rtx = 0;
    while (info(ls).syn_queued) {
        cap_clear();
        advance(ss_stack_poll(st, now) - now);
        rtx += ncap;
    }
    cr_assert_eq(rtx, (int)(cfg.syn_retries - 3) * BACKLOG / 2);
    /* 1+2+4+8+16+32+60 s of retransmissions, then one more 60 s RTO. */
    cr_assert_eq(now - start, (1 + 2 + 4 + 8 + 16 + 32 + 60 + 60) * SEC);
    cr_assert_eq(stats().tcp_synq_timeouts, BACKLOG);
    cr_assert_eq(ss_stack_poll(st, now), UINT64_MAX, "no timer left");
}

/* An entry answers its own SYN again, takes a RST only at RCV.NXT, and
 * answers a wrong ACK with a RST; closing the listener ends its entries. */
Test(tcp_synq, entry_rst_syn_and_listener_close)
{
    int ls = ss_tcp_listen(st, US_PORT, BACKLOG);
    struct tseg sa = legit_syn(1460);
    cap_clear();
    seg_in(PEER_ISS + 5, 0, SS_TCP_RST, 0, NULL, 0);
    cr_assert_eq(ncap, 0);
    cr_assert_eq(info(ls).syn_queued, 1, "a RST off RCV.NXT is dropped (RFC 5961 3.2)");
    seg_in(PEER_ISS, 0, SS_TCP_SYN, 65535, NULL, 0);
    struct tseg again = one_seg();
    cr_assert_eq(again.seq, sa.seq);
    cr_assert_eq(again.flags, SS_TCP_SYN | SS_TCP_ACK);
    flood(3);
    cr_assert_eq(info(ls).syn_queued, 4);
    cr_assert_eq(ss_tcp_close(st, now, ls), 0);
    int ls2 = ss_tcp_listen(st, US_PORT, BACKLOG);
    cr_assert_eq(info(ls2).syn_queued, 0);
    cap_clear();
    advance(10 * SEC);
    cr_assert_eq(ncap, 0, "no SYN,ACK of the old listener's entries");
    cr_assert_eq(ss_stack_poll(st, now), UINT64_MAX);
}

/* The accept queue is bounded by the backlog too: when it is full a new
 * SYN is dropped (no cookie either), and so is the ACK that would make
 * one more connection; the peer's retransmission gets in once there is
 * room. */
Test(tcp_synq, full_accept_queue_holds_back_handshakes)
{
    int ls = ss_tcp_listen(st, US_PORT, 2);
    for (uint16_t i = 0; i < 2; i++) {
        cap_clear();
        peer_send(PEER_PORT + i, US_PORT, 100, 0, SS_TCP_SYN, 65535, NULL, 0);
        struct tseg s = one_seg();
        peer_send(PEER_PORT + i, US_PORT, 101, s.seq + 1, SS_TCP_ACK, 65535, NULL, 0);
    }
    cr_assert_eq(info(ls).accept_queued, 2);
    cap_clear();
    peer_send(PEER_PORT + 9, US_PORT, 100, 0, SS_TCP_SYN, 65535, NULL, 0);
    cr_assert_eq(ncap, 0);
    cr_assert_eq(stats().tcp_syn_queue_full, 1);
    cr_assert_geq(ss_tcp_accept(st, ls, NULL, NULL), 0);
    peer_send(PEER_PORT + 9, US_PORT, 100, 0, SS_TCP_SYN, 65535, NULL, 0);
    cr_assert_eq(one_seg().flags, SS_TCP_SYN | SS_TCP_ACK);
}
