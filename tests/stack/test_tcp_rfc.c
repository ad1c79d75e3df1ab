/* RFC 9293 MUST requirements that the per-state suites do not already
 * show: options parsing and generation, zero-window RST, window shrinking,
 * address checks, per-connection R2, TOS/TTL, ICMP source quench, the
 * passive/active memory of SYN-RECEIVED, challenge-ACK rate limit. */
#include <errno.h>
#include <string.h>

#include "fixture.h"
#include "sockstack/err.h"

TestSuite(tcp_rfc, .init = fx_setup, .fini = fx_teardown, .timeout = 20);

#define P1 (PEER_ISS + 1)

static uint8_t pkt[2000];

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }

/* Passive open whose SYN carries the option bytes opt; returns the
 * accepted sd and our SYN,ACK in *sa. */
static int open_with_syn_options(const uint8_t *opt, size_t olen, struct tseg *sa)
{
    int ls = ss_tcp_listen(st, US_PORT, 4);
    size_t n = mk_tcp_opts(pkt, PEER_IP, US_IP, PEER_PORT, US_PORT, PEER_ISS, 0, SS_TCP_SYN, 65535,
                           opt, olen, NULL, 0);
    ss_stack_input(st, now, pkt, n);
    *sa = one_seg();
    cap_clear();
    seg_in(P1, sa->seq + 1, SS_TCP_ACK, 65535, NULL, 0);
    int sd = ss_tcp_accept(st, ls, NULL, NULL);
    cr_assert_geq(sd, 0);
    return sd;
}

Test(tcp_rfc, must4_5_6_64_options_any_alignment_unknown_skipped)
{
    /* NOP, unknown kind 99 (length 3), MSS 1000 at offset 4, EOL. */
    uint8_t opt[12] = {1, 99, 3, 0, 2, 4, 0x03, 0xe8, 0, 0, 0, 0};
    struct tseg sa;
    int sd = open_with_syn_options(opt, sizeof opt, &sa);
    struct ss_stack_sock_info in;
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.snd_mss, 1000, "MSS found behind an unknown option");
    /* Options on a data segment are parsed and ignored (MUST-5). */
    uint8_t opt2[4] = {1, 1, 1, 0};
    size_t n = mk_tcp_opts(pkt, PEER_IP, US_IP, PEER_PORT, US_PORT, P1, sa.seq + 1, SS_TCP_ACK, 65535,
                           opt2, 4, "data", 4);
    ss_stack_input(st, now, pkt, n);
    char b[8];
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, sizeof b), 4);
}

/* MUST-64: an option that starts at an odd offset (MSS right after one
 * NOP, at offset 1) is found and used. */
Test(tcp_rfc, must64_mss_option_at_an_odd_offset)
{
    uint8_t opt[8] = {1, 2, 4, 0x03, 0xe7, 0, 0, 0};   /* NOP, MSS 999, EOL, padding */
    struct tseg sa;
    int sd = open_with_syn_options(opt, sizeof opt, &sa);
    struct ss_stack_sock_info in;
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.snd_mss, 999);
}

/* MUST-41: a passive OPEN creates a new LISTEN record or fails; it never
 * touches connections that exist. */
Test(tcp_rfc, must41_passive_open_leaves_existing_connections_alone)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    cr_assert_eq(ss_tcp_listen(st, US_PORT, 8), -EADDRINUSE, "the port is taken: an error");
    int other = ss_tcp_listen(st, US_PORT + 1, 8);
    cr_assert_geq(other, 0, "another port: a new LISTEN record");
    cr_assert_eq(sock_state(other), SS_TCP_LISTEN);
    cr_assert_eq(sock_state(sd), SS_TCP_ESTABLISHED);
    cr_assert_eq(sock_state(listen_sd), SS_TCP_LISTEN);
    cap_clear();
    cr_assert_eq(ss_tcp_send(st, now, sd, "x", 1), 1);
    struct tseg d = one_seg();
    cr_assert_eq(d.seq, iss + 1, "the connection goes on where it was");
    cr_assert_eq(d.ack, P1);
    cap_clear();
    peer_send_mss(PEER_PORT + 7, US_PORT, PEER_ISS, 0, SS_TCP_SYN, 65535, 1460);
    cr_assert_eq(one_seg().flags, SS_TCP_SYN | SS_TCP_ACK, "the first listener still answers");
}

Test(tcp_rfc, must7_illegal_option_length_drops_segment)
{
    int ls = ss_tcp_listen(st, US_PORT, 4);
    uint8_t opt[4] = {2, 0, 5, 0xb4};   /* length 0 */
    size_t n = mk_tcp_opts(pkt, PEER_IP, US_IP, PEER_PORT, US_PORT, PEER_ISS, 0, SS_TCP_SYN, 65535,
                           opt, 4, NULL, 0);
    cr_assert_eq(ss_stack_input(st, now, pkt, n), SS_EBADPKT);
    uint8_t opt2[4] = {1, 2, 9, 0};     /* length past the header */
    n = mk_tcp_opts(pkt, PEER_IP, US_IP, PEER_PORT, US_PORT, PEER_ISS, 0, SS_TCP_SYN, 65535, opt2, 4,
                    NULL, 0);
    cr_assert_eq(ss_stack_input(st, now, pkt, n), SS_EBADPKT);
    cr_assert_eq(ncap, 0);
    struct ss_stack_sock_info li;
    ss_stack_sock_info(st, ls, &li);
    cr_assert_eq(li.syn_queued, 0);
}

Test(tcp_rfc, must14_65_68_69_mss_option_bytes_only_on_syn)
{
    uint32_t iss;
    int sd = ss_tcp_connect(st, now, PEER_IP, US_PORT, ACT_PORT);
    const uint8_t *t = caps[0].data + 20;
    /* MSS first, then sackOK, TS (RFC 7323, its TSval from our clock) and
     * window scale (RFC 7323 2, shift 0 for an 8 KiB buffer). */
    cr_assert_eq(t[12] >> 4, 10, "20-byte header + 20 option bytes");
    uint8_t want[4] = {2, 4, 0x05, 0xb4};
    cr_assert_eq(memcmp(t + 20, want, 4), 0, "MSS 1460, kind/length/value");
    uint8_t rest[8] = {4, 2, 8, 10}, tail[8] = {0, 0, 0, 0, 1, 3, 3, 0};
    cr_assert_eq(memcmp(t + 24, rest, 4), 0, "sackOK, then TS kind/length");
    cr_assert_eq(memcmp(t + 32, tail, 8), 0, "TSecr 0, nop, wscale 0");
    iss = cap_tcp(0).seq;
    cap_clear();
    aseg_in(PEER_ISS, iss + 1, SS_TCP_SYN | SS_TCP_ACK, 65535, NULL, 0);
    ss_tcp_send(st, now, sd, "x", 1);
    for (int i = 0; i < ncap; i++) {
        cr_assert_eq(caps[i].data[20 + 12] >> 4, 5, "no options on non-SYN segments");
        cr_assert_eq(cap_tcp(i).mss, 0);
    }
}

Test(tcp_rfc, must66_rst_processed_with_zero_window)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    static uint8_t fillb[8192];
    for (uint32_t off = 0; off < 8192; off += 1024)
        seg_in(P1 + off, iss + 1, SS_TCP_ACK, 65535, fillb, 1024);
    struct ss_stack_sock_info in;
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.rcv_wnd, 0);
    seg_in(P1 + 8192, 0, SS_TCP_RST, 0, NULL, 0);
    cr_assert_eq(sock_state(sd), SS_TCP_CLOSED);
}

Test(tcp_rfc, must34_robust_against_window_shrinking)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    static uint8_t d[4000];
    ss_stack_sock_setopt(st, sd, SS_SO_NODELAY, 1);
    cr_assert_eq(ss_tcp_send(st, now, sd, d, 4000), 4000);
    cr_assert_eq(ncap, 3);
    cap_clear();
    /* The peer takes 1000 bytes and shrinks the window to 100: the right
     * edge moves left of SND.NXT; the usable window is "negative". */
    seg_in(P1, iss + 1001, SS_TCP_ACK, 100, NULL, 0);
    cr_assert_eq(ncap, 0);
    struct ss_stack_sock_info in;
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.snd_wnd, 100);
    cr_assert_eq(in.snd_nxt, iss + 4001);
    seg_in(P1, iss + 4001, SS_TCP_ACK, 65535, NULL, 0);
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.snd_queued, 0);
}

Test(tcp_rfc, must42_listen_on_port_of_a_connecting_socket)
{
    int c = ss_tcp_connect(st, now, PEER_IP, 9, 7000);
    cr_assert_geq(c, 0);
    cr_assert_eq(sock_state(c), SS_TCP_SYN_SENT);
    int ls = ss_tcp_listen(st, 7000, 4);
    cr_assert_geq(ls, 0, "LISTEN allowed while SYN-SENT uses the port");
    cr_assert_eq(ss_tcp_listen(st, 7000, 4), -EADDRINUSE, "but not a second listener");
}

Test(tcp_rfc, must46_open_to_broadcast_or_multicast_rejected)
{
    cr_assert_eq(ss_tcp_connect(st, now, 0xffffffffu, 80, 0), -EINVAL);
    cr_assert_eq(ss_tcp_connect(st, now, 0xe0000001u, 80, 0), -EINVAL);
    cr_assert_eq(ncap, 0);
}

Test(tcp_rfc, must57_63_syn_to_or_from_broadcast_ignored)
{
    ss_tcp_listen(st, US_PORT, 4);
    size_t n = mk_tcp(pkt, PEER_IP, 0xffffffffu, PEER_PORT, US_PORT, 1, 0, SS_TCP_SYN, 100, 0,
                      NULL, 0);
    ss_stack_input(st, now, pkt, n);
    n = mk_tcp(pkt, 0xe0000005u, US_IP, PEER_PORT, US_PORT, 1, 0, SS_TCP_SYN, 100, 0, NULL, 0);
    ss_stack_input(st, now, pkt, n);
    n = mk_tcp(pkt, 0xffffffffu, US_IP, PEER_PORT, US_PORT, 1, 0, SS_TCP_SYN, 100, 0, NULL, 0);
    ss_stack_input(st, now, pkt, n);
    cr_assert_eq(ncap, 0, "no SYN,ACK and no RST");
    struct ss_stack_stats s;
    ss_stack_stats(st, &s);
    cr_assert_eq(s.ip_not_for_us, 1);
    cr_assert_eq(s.ip_bad_src, 2);
}

Test(tcp_rfc, must21_per_connection_r2)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    ss_stack_sock_set_cb(st, sd, on_event, NULL);
    cr_assert_eq(ss_stack_sock_setopt(st, sd, SS_SO_MAXRT, 2), 0);
    int v;
    ss_stack_sock_getopt(st, sd, SS_SO_MAXRT, &v);
    cr_assert_eq(v, 2);
    ss_tcp_send(st, now, sd, "r2", 2);
    advance(1 * SEC);
    advance(2 * SEC);
    cr_assert_eq(sock_state(sd), SS_TCP_ESTABLISHED);
    advance(4 * SEC);
    cr_assert_eq(sock_state(sd), SS_TCP_CLOSED);
    cr_assert(saw_event(sd, SS_EV_ERROR, -ETIMEDOUT));
}

Test(tcp_rfc, must48_tos_per_socket)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    cr_assert_eq(ss_stack_sock_setopt(st, sd, SS_SO_TOS, 0xb8), 0);
    ss_tcp_send(st, now, sd, "x", 1);
    cr_assert_eq(caps[0].data[1], 0xb8);
    cr_assert_eq(t_csum(caps[0].data, 20, 0), 0);
}

static void ttl7(struct ss_stack_cfg *c) { c->ttl = 7; }

Test(tcp_rfc, must49_ttl_configurable)
{
    fx_teardown();
    fx_setup_with(ttl7);
    ss_tcp_connect(st, now, PEER_IP, 80, 0);
    cr_assert_eq(cap_tcp(0).ttl, 7);
}

Test(tcp_rfc, must55_source_quench_ignored_must47_soft_error_visible)
{
    int sd = ss_tcp_connect(st, now, PEER_IP, 80, 33000);
    ss_stack_sock_set_cb(st, sd, on_event, NULL);
    uint8_t m[36] = {4, 0};
    memcpy(m + 8, caps[0].data, 28);
    uint16_t c = t_csum(m, 36, 0);
    m[2] = (uint8_t)(c >> 8); m[3] = (uint8_t)c;
    size_t n = mk_ip(pkt, PEER_IP, US_IP, 1, m, 36);
    ss_stack_input(st, now, pkt, n);
    struct ss_stack_sock_info in;
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.state, SS_TCP_SYN_SENT);
    cr_assert_eq(in.soft_error, 0, "source quench: silently discarded");
    cr_assert_eq(nev, 0);
    m[0] = 3; m[1] = 1;  /* host unreachable: soft */
    m[2] = m[3] = 0;
    c = t_csum(m, 36, 0);
    m[2] = (uint8_t)(c >> 8); m[3] = (uint8_t)c;
    n = mk_ip(pkt, PEER_IP, US_IP, 1, m, 36);
    ss_stack_input(st, now, pkt, n);
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.state, SS_TCP_SYN_SENT, "MUST-56: no abort");
    cr_assert_eq(in.soft_error, -EHOSTUNREACH);
}

Test(tcp_rfc, must11_active_synrcvd_rst_is_refused_not_listen)
{
    int sd = ss_tcp_connect(st, now, PEER_IP, US_PORT, ACT_PORT);
    ss_stack_sock_set_cb(st, sd, on_event, NULL);
    one_seg();
    aseg_in(PEER_ISS, 0, SS_TCP_SYN, 65535, NULL, 0);
    cr_assert_eq(sock_state(sd), SS_TCP_SYN_RECEIVED);
    aseg_in(PEER_ISS + 1, 0, SS_TCP_RST, 0, NULL, 0);
    cr_assert_eq(sock_state(sd), SS_TCP_CLOSED);
    cr_assert(saw_event(sd, SS_EV_ERROR, -ECONNREFUSED));
}

static void chack2(struct ss_stack_cfg *c) { c->challenge_ack_limit = 2; }

Test(tcp_rfc, challenge_acks_rate_limited)
{
    fx_teardown();
    fx_setup_with(chack2);
    uint32_t iss;
    fx_passive(&iss);
    for (int i = 0; i < 5; i++)
        seg_in(P1 + 10 + (uint32_t)i, 0, SS_TCP_RST, 0, NULL, 0);
    cr_assert_eq(ncap, 2, "RFC 5961 section 7: at most the limit per second");
    now += 1 * SEC;
    seg_in(P1 + 10, 0, SS_TCP_RST, 0, NULL, 0);
    cr_assert_eq(ncap, 3, "a new second, a new allowance");
}

/* The budget is not in the TCB (issue 10: 512 B per idle connection) but
 * in struct ss_pcbx (80 bytes), taken by the first challenge ACK and
 * given back once its second is over, at the first poll a second
 * (TRIM_US) after it; the next challenge ACK takes a new one, a full
 * allowance. */
Test(tcp_rfc, challenge_ack_budget_taken_and_given_back)
{
    fx_teardown();
    fx_setup_with(chack2);
    uint32_t iss;
    fx_passive(&iss);
    struct ss_stack_mem m;
    ss_stack_mem(st, &m);
    cr_assert_eq(m.buffer_bytes, 0);
    for (int i = 0; i < 3; i++)
        seg_in(P1 + 10 + (uint32_t)i, 0, SS_TCP_RST, 0, NULL, 0);
    cr_assert_eq(ncap, 2);
    ss_stack_mem(st, &m);
    cr_assert_eq(m.buffer_bytes, 80, "the budget: %llu", (unsigned long long)m.buffer_bytes);
    advance(1000 * MS);
    advance(1);
    ss_stack_mem(st, &m);
    cr_assert_eq(m.buffer_bytes, 0, "given back: %llu", (unsigned long long)m.buffer_bytes);
    cap_clear();
    for (int i = 0; i < 3; i++)
        seg_in(P1 + 10 + (uint32_t)i, 0, SS_TCP_RST, 0, NULL, 0);
    cr_assert_eq(ncap, 2, "a new budget, the full allowance");
}

/* RFC 5961 section 7 limits challenge ACKs; a budget shared by every
 * connection lets one connection's RST flood silence the others' (and,
 * CVE-2016-5696, tells an off-path attacker when a guess hit). The budget
 * is per connection. */
Test(tcp_rfc, challenge_ack_budget_is_per_connection)
{
    uint32_t iss;
    fx_passive(&iss);
    int acks = 0;
    for (int i = 0; i < 1100; i++) {
        cap_clear();
        seg_in(P1 + 10, 0, SS_TCP_RST, 0, NULL, 0);
        acks += ncap;
    }
    cr_assert_eq(acks, 1000, "connection A: the limit of one second");
    uint32_t aiss;
    int b = fx_active(&aiss);
    cap_clear();
    for (int i = 0; i < 3; i++)
        aseg_in(P1 + 10, 0, SS_TCP_RST, 0, NULL, 0);
    cr_assert_eq(ncap, 3, "connection B still gets its challenge ACKs");
    for (int i = 0; i < 3; i++) {
        struct tseg c = cap_tcp(i);
        cr_assert_eq(c.flags, SS_TCP_ACK);
        cr_assert_eq(c.dport, US_PORT);
        cr_assert_eq(c.sport, ACT_PORT);
        cr_assert_eq(c.ack, P1);
        cr_assert_eq(c.seq, aiss + 1);
    }
    cr_assert_eq(sock_state(b), SS_TCP_ESTABLISHED);
}

/* RFC 9293 3.10.7.4 fifth, ESTABLISHED: "If SND.UNA =< SEG.ACK =< SND.NXT,
 * the send window should be updated": an old ACK from a newer segment
 * does not move the window. */
Test(tcp_rfc, window_update_needs_snd_una_le_seg_ack)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    static const char d[100];
    cr_assert_eq(ss_tcp_send(st, now, sd, d, 100), 100);
    seg_in(P1, iss + 101, SS_TCP_ACK, 65535, NULL, 0);   /* SND.UNA = ISS+101 */
    seg_in(P1, iss + 101, SS_TCP_ACK, 65535, "abc", 3);  /* SND.WL1 = P1 */
    seg_in(P1 + 3, iss + 51, SS_TCP_ACK, 7, NULL, 0);     /* newer SEQ, old ACK */
    struct ss_stack_sock_info in;
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.snd_una, iss + 101);
    cr_assert_eq(in.snd_wnd, 65535, "SEG.ACK < SND.UNA: the window is not updated");
    seg_in(P1 + 3, iss + 101, SS_TCP_ACK, 7, NULL, 0);   /* same SEQ, current ACK */
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.snd_wnd, 7);
}

/* A data segment with URG and an urgent pointer. */
static void seg_in_urg(uint32_t seq, uint32_t ack, uint16_t win, uint16_t urp, const void *d,
                       size_t len)
{
    size_t n = mk_tcp(pkt, PEER_IP, US_IP, PEER_PORT, US_PORT, seq, ack,
                      SS_TCP_ACK | SS_TCP_URG | SS_TCP_PSH, win, 0, d, len);
    uint8_t *t = pkt + 20;
    put16(t + 18, urp);
    t[16] = t[17] = 0;
    uint32_t ps = (PEER_IP >> 16) + (PEER_IP & 0xffff) + (US_IP >> 16) + (US_IP & 0xffff) + 6 +
                  (uint32_t)(n - 20);
    put16(t + 16, t_csum(t, n - 20, ps));
    ss_stack_input(st, now, pkt, n);
}

Test(tcp_rfc, must30_31_32_33_urgent_data_received_in_line)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    ss_stack_sock_set_cb(st, sd, on_event, NULL);
    cr_assert_eq(ss_tcp_urgent(st, sd), 0);
    /* "ab!" urgent: the pointer is the octet after it (offset 3). */
    seg_in_urg(P1, iss + 1, 65535, 3, "ab!cd", 5);
    cr_assert(saw_event(sd, SS_EV_URGENT, 0), "MUST-32: told asynchronously");
    cr_assert_eq(ss_tcp_urgent(st, sd), 3, "MUST-33: how much urgent data remains");
    char b[8];
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, 2), 2);
    cr_assert_eq(ss_tcp_urgent(st, sd), 1);
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, sizeof b), 3);
    cr_assert_eq(memcmp(b, "!cd", 3), 0, "in line, in order");
    cr_assert_eq(ss_tcp_urgent(st, sd), 0);
    /* MUST-31: any length; the pointer only moves forward. */
    nev = 0;
    static uint8_t big[3000];
    seg_in_urg(P1 + 5, iss + 1, 65535, 60000, big, 1000);
    cr_assert_eq(ss_tcp_urgent(st, sd), 60000);
    seg_in_urg(P1 + 1005, iss + 1, 65535, 10, big, 10);   /* behind RCV.UP: no change */
    cr_assert_eq(ss_tcp_urgent(st, sd), 60000);
}

Test(tcp_rfc, must66_urg_processed_with_zero_window)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    static uint8_t fillb[8192];
    for (uint32_t off = 0; off < 8192; off += 1024)
        seg_in(P1 + off, iss + 1, SS_TCP_ACK, 65535, fillb, 1024);
    seg_in_urg(P1 + 8192, iss + 1, 65535, 7, "urgent!", 7);
    cr_assert_eq(ss_tcp_urgent(st, sd), 8192 + 7, "pointer taken, data not");
    struct ss_stack_sock_info in;
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.rcv_queued, 8192);
}

Test(tcp_rfc, must62_urgent_send_points_after_urgent_data)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    ss_stack_sock_setopt(st, sd, SS_SO_NODELAY, 1);
    cr_assert_eq(ss_tcp_send(st, now, sd, "abc", 3), 3);
    cr_assert_eq(ss_tcp_send_urgent(st, now, sd, "!!", 2), 2);
    cr_assert_eq(ncap, 2);
    struct tseg a = cap_tcp(0), u = cap_tcp(1);
    cr_assert_eq(a.flags & SS_TCP_URG, 0, "sent before the urgent data was queued");
    cr_assert_eq(u.flags & SS_TCP_URG, SS_TCP_URG);
    cr_assert_eq(u.seq, iss + 4);
    cr_assert_eq(caps[1].data[20 + 18] << 8 | caps[1].data[20 + 19], 2,
                 "pointer = octet after the urgent data, relative to SEG.SEQ");
    cr_assert_str_eq(last_trace + strlen(last_trace) - 5, "urp=2");
    cap_clear();
    /* Until the urgent data is acknowledged, segments that start before
     * the pointer carry URG: the retransmission (all 5 bytes) does. */
    advance(ss_stack_poll(st, now) - now);
    struct tseg r = one_seg();
    cr_assert_eq(r.seq, iss + 1);
    cr_assert_eq(r.len, 5);
    cr_assert_eq(r.flags & SS_TCP_URG, SS_TCP_URG);
    cr_assert_eq(caps[0].data[20 + 18] << 8 | caps[0].data[20 + 19], 5);
    cap_clear();
    seg_in(P1, iss + 6, SS_TCP_ACK, 65535, NULL, 0);
    ss_tcp_send(st, now, sd, "y", 1);
    cr_assert_eq(cap_tcp(0).flags & SS_TCP_URG, 0, "urgent data acknowledged: URG off");
}
