/* ESTABLISHED: data transfer, windows, ACK policy, Nagle, reassembly,
 * the acceptability table (RFC 9293 3.10.7.4) and the 2^32 wrap. */
#include <errno.h>
#include <string.h>

#include "fixture.h"
#include "sockstack/link.h"

TestSuite(tcp_data, .init = fx_setup, .fini = fx_teardown, .timeout = 20);

#define P1_(off) (PEER_ISS + 1 + (off))

static uint8_t big[20000];
static void fill_big(void)
{
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 31 + 7);
}

Test(tcp_data, send_is_one_psh_segment_and_ack_frees_buffer)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    cr_assert_eq(ss_tcp_send(st, now, sd, "hello", 5), 5);
    struct tseg s = one_seg();
    cr_assert_eq(s.flags, SS_TCP_PSH | SS_TCP_ACK);
    cr_assert_eq(s.seq, iss + 1);
    cr_assert_eq(s.ack, PEER_ISS + 1);
    cr_assert_eq(s.len, 5);
    cr_assert_eq(memcmp(s.data, "hello", 5), 0);
    cr_assert_eq(s.win, 8192);
    struct ss_stack_sock_info in;
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.snd_queued, 5);
    cap_clear();
    seg_in(PEER_ISS + 1, iss + 6, SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(ncap, 0);
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.snd_queued, 0);
    cr_assert_eq(in.snd_una, iss + 6);
    cr_assert_eq(in.bytes_out, 5);
}

Test(tcp_data, receive_then_delayed_ack_within_bound)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    ss_stack_sock_set_cb(st, sd, on_event, NULL);
    seg_in(PEER_ISS + 1, iss + 1, SS_TCP_ACK | SS_TCP_PSH, 65535, "abc", 3);
    cr_assert_eq(ncap, 0, "ACK is delayed");
    cr_assert(saw_event(sd, SS_EV_READABLE, 0));
    char b[16];
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, sizeof b), 3);
    cr_assert_eq(memcmp(b, "abc", 3), 0);
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, sizeof b), -EAGAIN);
    cr_assert_eq(ncap, 0, "reading 3 bytes owes no window update");
    uint64_t d = ss_stack_poll(st, now);
    cr_assert_eq(d, now + cfg.delack_ms * MS, "deadline is the delayed-ACK timer");
    advance(cfg.delack_ms * MS - 1);
    cr_assert_eq(ncap, 0);
    advance(1);
    struct tseg a = one_seg();
    cr_assert_eq(a.flags, SS_TCP_ACK);
    cr_assert_eq(a.ack, PEER_ISS + 4);
}

Test(tcp_data, ack_every_second_full_segment)
{
    uint32_t iss;
    fx_passive(&iss);
    fill_big();
    seg_in(PEER_ISS + 1, iss + 1, SS_TCP_ACK, 65535, big, 1460);
    cr_assert_eq(ncap, 0);
    seg_in(PEER_ISS + 1461, iss + 1, SS_TCP_ACK, 65535, big + 1460, 1460);
    struct tseg a = one_seg();
    cr_assert_eq(a.ack, PEER_ISS + 2921);
    cr_assert_eq(a.win, 8192 - 2920);
}

Test(tcp_data, nagle_holds_small_segment_until_ack)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    ss_tcp_send(st, now, sd, "a", 1);
    cr_assert_eq(ncap, 1);
    ss_tcp_send(st, now, sd, "b", 1);
    ss_tcp_send(st, now, sd, "c", 1);
    cr_assert_eq(ncap, 1, "Nagle: no second small segment while one is unacked");
    cap_clear();
    seg_in(PEER_ISS + 1, iss + 2, SS_TCP_ACK, 65535, NULL, 0);
    struct tseg s = one_seg();
    cr_assert_eq(s.seq, iss + 2);
    cr_assert_eq(s.len, 2);
    cr_assert_eq(memcmp(s.data, "bc", 2), 0);
}

Test(tcp_data, nodelay_sends_at_once)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    cr_assert_eq(ss_stack_sock_setopt(st, sd, SS_SO_NODELAY, 1), 0);
    int v = 0;
    ss_stack_sock_getopt(st, sd, SS_SO_NODELAY, &v);
    cr_assert_eq(v, 1);
    ss_tcp_send(st, now, sd, "a", 1);
    ss_tcp_send(st, now, sd, "b", 1);
    cr_assert_eq(ncap, 2);
    cr_assert_eq(cap_tcp(1).seq, iss + 2);
}

Test(tcp_data, segments_respect_peer_mss_and_psh_on_last)
{
    ss_tcp_listen(st, US_PORT, 4);
    peer_send_mss(PEER_PORT, US_PORT, PEER_ISS, 0, SS_TCP_SYN, 65535, 536);
    struct tseg sa = one_seg();
    cap_clear();
    seg_in(PEER_ISS + 1, sa.seq + 1, SS_TCP_ACK, 65535, NULL, 0);
    int sd = ss_tcp_accept(st, 0, NULL, NULL);
    cr_assert_geq(sd, 0);
    ss_stack_sock_setopt(st, sd, SS_SO_NODELAY, 1);   /* Nagle would hold the tail */
    fill_big();
    cr_assert_eq(ss_tcp_send(st, now, sd, big, 2000), 2000);
    cr_assert_eq(ncap, 4);
    size_t lens[4] = {536, 536, 536, 392};
    for (int i = 0; i < 4; i++) {
        struct tseg s = cap_tcp(i);
        cr_assert_eq(s.len, lens[i]);
        cr_assert_eq(s.seq, sa.seq + 1 + 536 * (uint32_t)i);
        cr_assert_eq(!!(s.flags & SS_TCP_PSH), i == 3);
        cr_assert_eq(memcmp(s.data, big + 536 * i, lens[i]), 0);
    }
}

Test(tcp_data, sender_never_exceeds_peer_window)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    seg_in(PEER_ISS + 1, iss + 1, SS_TCP_ACK, 1000, NULL, 0);   /* window 1000 */
    fill_big();
    cr_assert_eq(ss_tcp_send(st, now, sd, big, 3000), 3000);
    cr_assert_eq(ncap, 0, "1000 < MSS and < 65535/2: a sliver (SWS)");
    advance(200 * MS);
    cr_assert_eq(ncap, 1, "the override timeout");
    cr_assert_eq(cap_tcp(0).len, 1000);
    cap_clear();
    seg_in(PEER_ISS + 1, iss + 1001, SS_TCP_ACK, 1500, NULL, 0);
    cr_assert_eq(ncap, 1, "a full segment; the 40-byte sliver waits (SWS)");
    cr_assert_eq(cap_tcp(0).len, 1460);
    cap_clear();
    seg_in(PEER_ISS + 1, iss + 2461, SS_TCP_ACK, 40, NULL, 0);
    cr_assert_eq(ncap, 0, "nothing in flight: the sliver waits for the override timeout");
    advance(200 * MS);
    cr_assert_eq(ncap, 1, "SWS override timeout: what the window allows goes");
    cr_assert_eq(cap_tcp(0).len, 40);
    cr_assert_eq(cap_tcp(0).seq, iss + 2461);
}

/* Sender SWS avoidance (RFC 9293 3.8.6.2.1): with D bytes queued and a
 * usable window U, send when min(D,U) >= Eff.snd.MSS, or D <= U (all of
 * it, pushed), or min(D,U) >= Max(SND.WND)/2, or after the override
 * timeout (0.1-1 s; SS_STACK_SWS_OVERRIDE_MS). A sliver waits, also on a
 * NODELAY socket and also with nothing in flight. */
Test(tcp_data, sender_sws_sliver_waits_for_override_also_nodelay)
{
    uint32_t iss;
    int sd = fx_passive(&iss);   /* the peer offered 65535: Max(SND.WND) */
    ss_stack_sock_setopt(st, sd, SS_SO_NODELAY, 1);
    seg_in(PEER_ISS + 1, iss + 1, SS_TCP_ACK, 100, NULL, 0);   /* U = 100 */
    fill_big();
    cr_assert_eq(ss_tcp_send(st, now, sd, big, 300), 300);
    cr_assert_eq(ncap, 0, "100 < MSS, 100 < 65535/2, D > U: a sliver");
    advance(200 * MS - 1);
    cr_assert_eq(ncap, 0);
    advance(1);
    struct tseg s = one_seg();
    cr_assert_eq(s.seq, iss + 1);
    cr_assert_eq(s.len, 100);
    cap_clear();
    /* All the rest fits: D <= U sends at once (rule 2). */
    seg_in(PEER_ISS + 1, iss + 101, SS_TCP_ACK, 300, NULL, 0);
    s = one_seg();
    cr_assert_eq(s.seq, iss + 101);
    cr_assert_eq(s.len, 200);
}

/* RFC 9293 3.8.6.1: when the zero window opens, the first segment is new
 * data, not a retransmission (only the probe byte went before, beyond the
 * window), and it is timed for an RTT sample. */
Test(tcp_data, first_segment_after_zero_window_is_new_and_timed)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    seg_in(PEER_ISS + 1, iss + 1, SS_TCP_ACK, 0, NULL, 0);
    cr_assert_eq(ss_tcp_send(st, now, sd, "0123456789", 10), 10);
    advance(1 * SEC);
    struct tseg p = one_seg();
    cr_assert_eq(p.len, 1, "the probe");
    cap_clear();
    struct ss_stack_sock_info in;
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.srtt_us, 1, "the handshake's 0 us sample counts as 1 us");
    int mark = ntrace;
    seg_in(PEER_ISS + 1, iss + 1, SS_TCP_ACK, 100, NULL, 0);   /* opens, probe byte not taken */
    struct tseg r = one_seg();
    cr_assert_eq(r.seq, iss + 1);
    cr_assert_eq(r.len, 10);
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.retransmits, 0, "new data, not a retransmission");
    for (int i = mark; i < ntrace; i++)
        cr_assert_eq(strstr(trace_lines[i], "[rtx]"), NULL, "traced as new: %s", trace_lines[i]);
    now += 50 * MS;
    seg_in(PEER_ISS + 1, iss + 11, SS_TCP_ACK, 100, NULL, 0);
    ss_stack_sock_info(st, sd, &in);
    /* SRTT = 7/8 * 1 + 1/8 * 50000 = 6250 (integer) */
    cr_assert_eq(in.srtt_us, 6250, "the segment was timed");
    cr_assert_eq(in.bytes_out, 10, "each byte counted once");
}

Test(tcp_data, zero_window_probe_with_backoff_then_resume)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    seg_in(PEER_ISS + 1, iss + 1, SS_TCP_ACK, 0, NULL, 0);
    cr_assert_eq(ss_tcp_send(st, now, sd, "0123456789", 10), 10);
    cr_assert_eq(ncap, 0, "closed window: nothing sent");
    advance(1 * SEC - 1);
    cr_assert_eq(ncap, 0);
    advance(1);
    struct tseg p = one_seg();
    cr_assert_eq(p.seq, iss + 1);
    cr_assert_eq(p.len, 1, "probe carries one byte of new data");
    cr_assert_eq(p.data[0], '0');
    cap_clear();
    seg_in(PEER_ISS + 1, iss + 1, SS_TCP_ACK, 0, NULL, 0);   /* still closed */
    advance(2 * SEC - 1);
    cr_assert_eq(ncap, 0, "probe interval backs off");
    advance(1);
    p = one_seg();
    cr_assert_eq(p.seq, iss + 1);
    cr_assert_eq(p.len, 1);
    cap_clear();
    seg_in(PEER_ISS + 1, iss + 2, SS_TCP_ACK, 100, NULL, 0);  /* took the byte, opened */
    struct tseg r = one_seg();
    cr_assert_eq(r.seq, iss + 2);
    cr_assert_eq(r.len, 9);
    cr_assert_eq(memcmp(r.data, "123456789", 9), 0);
    struct ss_stack_sock_info in;
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.state, SS_TCP_ESTABLISHED, "a closed window never times out");
}

Test(tcp_data, out_of_order_kept_and_reassembled)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    seg_in(PEER_ISS + 11, iss + 1, SS_TCP_ACK, 65535, "klmnopqrst", 10);
    struct tseg d = one_seg();
    cr_assert_eq(d.ack, PEER_ISS + 1, "immediate duplicate ACK for the hole");
    cap_clear();
    seg_in(PEER_ISS + 31, iss + 1, SS_TCP_ACK, 65535, "EFGHI", 5);   /* second hole */
    cr_assert_eq(one_seg().ack, PEER_ISS + 1);
    cap_clear();
    char b[64];
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, sizeof b), -EAGAIN);
    seg_in(PEER_ISS + 1, iss + 1, SS_TCP_ACK, 65535, "abcdefghij", 10);
    struct tseg a = one_seg();
    cr_assert_eq(a.ack, PEER_ISS + 21, "filling a hole is acknowledged at once");
    cap_clear();
    seg_in(PEER_ISS + 21, iss + 1, SS_TCP_ACK, 65535, "uvwxyzABCD", 10);
    cr_assert_eq(one_seg().ack, PEER_ISS + 36);
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, sizeof b), 35);
    cr_assert_eq(memcmp(b, "abcdefghijklmnopqrstuvwxyzABCDEFGHI", 35), 0);
}

Test(tcp_data, ooo_overlaps_merge_and_fin_after_hole)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    seg_in(PEER_ISS + 5, iss + 1, SS_TCP_ACK, 65535, "efgh", 4);
    seg_in(PEER_ISS + 7, iss + 1, SS_TCP_ACK | SS_TCP_FIN, 65535, "ghij", 4);
    seg_in(PEER_ISS + 3, iss + 1, SS_TCP_ACK, 65535, "cdef", 4);
    cr_assert_eq(sock_state(sd), SS_TCP_ESTABLISHED, "FIN beyond a hole waits");
    cap_clear();
    seg_in(PEER_ISS + 1, iss + 1, SS_TCP_ACK, 65535, "ab", 2);
    struct tseg a = one_seg();
    cr_assert_eq(a.ack, PEER_ISS + 12, "data and the FIN are now in order");
    cr_assert_eq(sock_state(sd), SS_TCP_CLOSE_WAIT);
    char b[32];
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, sizeof b), 10);
    cr_assert_eq(memcmp(b, "abcdefghij", 10), 0);
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, sizeof b), 0, "EOF");
}

Test(tcp_data, ooo_queue_is_bounded)
{
    uint32_t iss;
    fx_passive(&iss);
    for (uint32_t i = 0; i < cfg.ooo_max + 3; i++) {
        cap_clear();   /* each answer is a duplicate ACK: keep only the last */
        seg_in(PEER_ISS + 1 + 2 * (i + 1), iss + 1, SS_TCP_ACK, 65535, "x", 1);
    }
    struct ss_stack_stats ss;
    ss_stack_stats(st, &ss);
    cr_assert_eq(ss.tcp_ooo_dropped, 3);
}

/* The table of out-of-order ranges starts small and grows: 100 holes
 * (each a byte missing before a byte received) are all kept, and once the
 * missing bytes arrive the application reads all 200 in order. */
Test(tcp_data, ooo_table_grows_and_keeps_every_hole)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    char want[200];
    for (int i = 0; i < 200; i++)
        want[i] = (char)('A' + i % 26);
    struct ss_stack_mem m16, m100;
    for (int i = 1; i < 200; i += 2) {   /* odd bytes first: 100 ranges */
        seg_in(PEER_ISS + 1 + (uint32_t)i, iss + 1, SS_TCP_ACK, 65535, want + i, 1);
        if (i == 31)
            ss_stack_mem(st, &m16);   /* 16 ranges: the first table, full */
    }
    ss_stack_mem(st, &m100);
    struct ss_stack_stats ss;
    ss_stack_stats(st, &ss);
    cr_assert_eq(ss.tcp_ooo_in, 100);
    cr_assert_eq(ss.tcp_ooo_dropped, 0, "every range kept");
    /* 16 -> 32 -> 64 -> 128 ranges of 12 bytes; the receive ring (4 KiB
     * since the first byte) did not change. */
    cr_assert_eq(m100.buffer_bytes - m16.buffer_bytes, (128 - 16) * 12);
    for (int i = 0; i < 200; i += 2)
        seg_in(PEER_ISS + 1 + (uint32_t)i, iss + 1, SS_TCP_ACK, 65535, want + i, 1);
    char b[256];
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, sizeof b), 200);
    cr_assert_eq(memcmp(b, want, 200), 0);
}

/* The out-of-order table and its counts are apart from the TCB (struct
 * ss_pcbx, 80 bytes with RACK's state and the rare fields) and held
 * only while needed:
 * none before the first hole, the block and a first table of 16 ranges
 * (12 bytes each) with it, and nothing once the hole is filled, the
 * data read and the connection idle for a second (TRIM_US). */
Test(tcp_data, ooo_table_taken_at_a_hole_and_given_back_idle)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    struct ss_stack_mem m;
    ss_stack_mem(st, &m);
    cr_assert_eq(m.buffer_bytes, 0);
    seg_in(PEER_ISS + 2, iss + 1, SS_TCP_ACK, 65535, "b", 1);
    ss_stack_mem(st, &m);
    cr_assert_eq(m.buffer_bytes, 4096 + 80 + 16 * 12, "ring, block and table: %llu",
                 (unsigned long long)m.buffer_bytes);
    seg_in(PEER_ISS + 1, iss + 1, SS_TCP_ACK, 65535, "a", 1);
    char b[4];
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, sizeof b), 2);
    cr_assert_eq(memcmp(b, "ab", 2), 0);
    advance(1000 * MS);
    advance(1);
    ss_stack_mem(st, &m);
    cr_assert_eq(m.buffer_bytes, 0, "all given back: %llu", (unsigned long long)m.buffer_bytes);
}

Test(tcp_data, duplicate_data_discarded)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    seg_in(PEER_ISS + 1, iss + 1, SS_TCP_ACK, 65535, "abcd", 4);
    cap_clear();
    seg_in(PEER_ISS + 1, iss + 1, SS_TCP_ACK, 65535, "abcd", 4);   /* old copy */
    struct tseg a = one_seg();
    cr_assert_eq(a.ack, PEER_ISS + 5, "an old duplicate is answered with an ACK");
    cap_clear();
    seg_in(PEER_ISS + 3, iss + 1, SS_TCP_ACK, 65535, "cdef", 4);   /* partly old */
    char b[16];
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, sizeof b), 6);
    cr_assert_eq(memcmp(b, "abcdef", 6), 0);
    struct ss_stack_stats ss;
    ss_stack_stats(st, &ss);
    cr_assert_eq(ss.tcp_dup_data, 2);
}

/* Fill the 8192-byte receive buffer so RCV.WND is 0. */
static int zero_window_conn(uint32_t *iss)
{
    int sd = fx_passive(iss);
    fill_big();
    for (uint32_t off = 0; off < 8192; off += 1024)
        seg_in(PEER_ISS + 1 + off, *iss + 1, SS_TCP_ACK, 65535, big + off, 1024);
    struct ss_stack_sock_info in;
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.rcv_wnd, 0);
    cr_assert_eq(in.rcv_nxt, PEER_ISS + 8193);
    cap_clear();
    return sd;
}

Test(tcp_data, acceptability_zero_window)
{
    uint32_t iss;
    int sd = zero_window_conn(&iss);
    uint32_t nxt = PEER_ISS + 8193;
    /* len 0, wnd 0: acceptable iff SEG.SEQ = RCV.NXT */
    ss_tcp_send(st, now, sd, "q", 1);
    cap_clear();
    seg_in(nxt, iss + 2, SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(ncap, 0, "acceptable: processed, nothing to answer");
    struct ss_stack_sock_info in;
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.snd_una, iss + 2, "its ACK was processed");
    seg_in(nxt + 1, iss + 2, SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(one_seg().ack, nxt, "unacceptable: ACK sent, segment dropped");
    cap_clear();
    /* len > 0, wnd 0: not acceptable, but the ACK field is still used */
    seg_in(nxt, iss + 2, SS_TCP_ACK, 65535, "z", 1);
    struct tseg a = one_seg();
    cr_assert_eq(a.ack, nxt);
    cr_assert_eq(a.win, 0);
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.rcv_queued, 8192, "the byte was not taken");
}

Test(tcp_data, acceptability_open_window)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    uint32_t nxt = PEER_ISS + 1;   /* window 8192 */
    struct ss_stack_stats ss;
    /* len 0, wnd > 0: RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND */
    seg_in(nxt + 8191, iss + 1, SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(ncap, 0);
    seg_in(nxt + 8192, iss + 1, SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(one_seg().ack, nxt);
    cap_clear();
    seg_in(nxt - 1, iss + 1, SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(one_seg().ack, nxt);
    cap_clear();
    /* len > 0: start or end in the window */
    seg_in(nxt - 2, iss + 1, SS_TCP_ACK, 65535, "xyab", 4);   /* end inside: trimmed */
    seg_in(nxt + 8190, iss + 1, SS_TCP_ACK, 65535, "CDEF", 4); /* start inside: tail cut */
    seg_in(nxt + 8192, iss + 1, SS_TCP_ACK, 65535, "GH", 2);   /* beyond: unacceptable */
    seg_in(nxt - 4, iss + 1, SS_TCP_ACK, 65535, "ab", 2);      /* before: unacceptable */
    ss_stack_stats(st, &ss);
    cr_assert_eq(ss.tcp_unacceptable, 4);
    char b[8];
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, sizeof b), 2);
    cr_assert_eq(memcmp(b, "ab", 2), 0);
}

Test(tcp_data, window_update_after_reading)
{
    uint32_t iss;
    int sd = zero_window_conn(&iss);
    char b[4096];
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, 1000), 1000);
    cr_assert_eq(ncap, 0, "1000 bytes is less than one MSS: no update (SWS avoidance)");
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, 1000), 1000);
    struct tseg u = one_seg();
    cr_assert_eq(u.flags, SS_TCP_ACK);
    cr_assert_eq(u.win, 2000);
    cr_assert_eq(u.ack, PEER_ISS + 8193);
    cr_assert_eq(memcmp(b, big + 1000, 1000), 0);
}

Test(tcp_data, sequence_numbers_across_the_wrap)
{
    /* Our ISS is SHA-256(tuple, secret) + now/4: learn the offset, then pick
     * a time that puts ISS just below 2^32. The peer's ISS wraps too. */
    int sd = ss_tcp_connect(st, now, PEER_IP, US_PORT, ACT_PORT);
    uint32_t iss0 = one_seg().seq;
    ss_tcp_abort(st, now, sd);
    cap_clear();
    uint32_t want = 0xfffffff0u;
    now += 4ull * (uint32_t)(want - iss0);
    sd = ss_tcp_connect(st, now, PEER_IP, US_PORT, ACT_PORT);
    struct tseg syn = one_seg();
    cr_assert_eq(syn.seq, want);
    cap_clear();
    uint32_t piss = 0xfffffffau;
    uint8_t pkt[100];
    size_t n = mk_tcp(pkt, PEER_IP, US_IP, US_PORT, ACT_PORT, piss, want + 1,
                      SS_TCP_SYN | SS_TCP_ACK, 65535, 1460, NULL, 0);
    ss_stack_input(st, now, pkt, n);
    cr_assert_eq(one_seg().ack, piss + 1);
    cap_clear();
    fill_big();
    cr_assert_eq(ss_tcp_send(st, now, sd, big, 40), 40);
    struct tseg d = one_seg();
    cr_assert_eq(d.seq, want + 1);
    cap_clear();
    aseg_in(piss + 1, want + 41, SS_TCP_ACK, 65535, NULL, 0);   /* ACK = 0x19 */
    struct ss_stack_sock_info in;
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.snd_una, 0x19u);
    cr_assert_eq(in.snd_queued, 0);
    aseg_in(piss + 1, 0x19, SS_TCP_ACK, 65535, "0123456789", 10);   /* crosses 0 */
    aseg_in(piss + 11, 0x19, SS_TCP_ACK | SS_TCP_FIN, 65535, "ab", 2);
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.rcv_nxt, 0x08u, "0xfffffffb + 12 data + FIN wraps to 0x08");
    cr_assert_eq(in.state, SS_TCP_CLOSE_WAIT);
    char b[16];
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, sizeof b), 12);
    cr_assert_eq(memcmp(b, "0123456789ab", 12), 0);
}

Test(tcp_data, ack_of_unsent_data_is_answered_and_dropped)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    ss_tcp_send(st, now, sd, "abc", 3);
    cap_clear();
    seg_in(PEER_ISS + 1, iss + 100, SS_TCP_ACK, 65535, "zz", 2);
    struct tseg a = one_seg();
    cr_assert_eq(a.flags & SS_TCP_ACK, SS_TCP_ACK);
    cr_assert_eq(a.ack, PEER_ISS + 1, "the segment's data was dropped");
    struct ss_stack_sock_info in;
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.snd_una, iss + 1);
}

Test(tcp_data, send_buffer_bounded_and_writable_event)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    ss_stack_sock_set_cb(st, sd, on_event, NULL);
    seg_in(PEER_ISS + 1, iss + 1, SS_TCP_ACK, 0, NULL, 0);    /* closed window */
    fill_big();
    cr_assert_eq(ss_tcp_send(st, now, sd, big, sizeof big), 16384);
    cr_assert_eq(ss_tcp_send(st, now, sd, big, 10), -EAGAIN);
    cr_assert_eq(ss_stack_sock_events(st, sd) & SS_EV_WRITABLE, 0);
    seg_in(PEER_ISS + 1, iss + 1, SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_gt(ncap, 0);
    struct tseg last = cap_tcp(ncap - 1);
    seg_in(PEER_ISS + 1, last.seq + (uint32_t)last.len, SS_TCP_ACK, 65535, NULL, 0);
    cr_assert(saw_event(sd, SS_EV_WRITABLE, 0));
    cr_assert(ss_stack_sock_events(st, sd) & SS_EV_WRITABLE);
}

Test(tcp_data, batch_input_aggregates_acks)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    static uint8_t p[4][200];
    const uint8_t *pk[4];
    size_t ln[4];
    /* Four segments, the first one last: one-by-one this earns 3
     * duplicate ACKs and one for the filled hole. */
    const char *parts[4] = {"bbbb", "cccc", "dddd", "aaaa"};
    uint32_t offs[4] = {4, 8, 12, 0};
    for (int i = 0; i < 4; i++) {
        ln[i] = mk_tcp(p[i], PEER_IP, US_IP, PEER_PORT, US_PORT, P1_(offs[i]), iss + 1,
                       SS_TCP_ACK, 65535, 0, parts[i], 4);
        pk[i] = p[i];
    }
    cr_assert_eq(ss_stack_input_batch(st, now, pk, ln, 4), 0);
    struct tseg a = one_seg();
    cr_assert_eq(a.ack, PEER_ISS + 17, "one ACK for the whole batch (MUST-58/59)");
    char b[32];
    cr_assert_eq(ss_tcp_recv(st, now, sd, b, sizeof b), 16);
    cr_assert_eq(memcmp(b, "aaaabbbbccccdddd", 16), 0);
}

/* A callback that reads all there is and answers "pong". */
static void read_all_and_answer(void *arg, ss_stack *s, int sd, unsigned ev, int err)
{
    (void)arg;
    (void)err;
    if (!(ev & SS_EV_READABLE))
        return;
    char b[4096];
    while (ss_tcp_recv(s, now, sd, b, sizeof b) > 0)
        ;
    cr_assert_eq(ss_tcp_send(s, now, sd, "pong", 4), 4);
}

static void callbacks_first(struct ss_stack_cfg *c) { c->defer_user_output = true; }

/* Two 1000-byte segments in one batch to a socket whose callback reads
 * them and answers. */
static void batch_to_answering_socket(void)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    ss_stack_sock_set_cb(st, sd, read_all_and_answer, NULL);
    static uint8_t p[2][1100];
    const uint8_t *pk[2];
    size_t ln[2];
    for (int i = 0; i < 2; i++) {
        ln[i] = mk_tcp(p[i], PEER_IP, US_IP, PEER_PORT, US_PORT, P1_(1000 * (uint32_t)i), iss + 1,
                       SS_TCP_ACK, 65535, 0, big, 1000);
        pk[i] = p[i];
    }
    cr_assert_eq(ss_stack_input_batch(st, now, pk, ln, 2), 0);
}

Test(tcp_data, deferred_user_output_replies_on_the_batch_ack)
{
    fx_teardown();
    fx_setup_with(callbacks_first);
    batch_to_answering_socket();
    /* What the callback read and sent goes with the batch's ACK: one
     * segment with the whole window open again and the answer. */
    struct tseg a = one_seg();
    cr_assert_eq(a.ack, PEER_ISS + 2001);
    cr_assert_eq(a.win, 8192);
    cr_assert_eq(a.len, 4);
    cr_assert_eq(memcmp(a.data, "pong", 4), 0);
}

Test(tcp_data, batch_without_deferred_user_output_acks_then_answers)
{
    batch_to_answering_socket();
    /* The default (the simulated runs' packets): the window update of the
     * callback's read, then its answer, each sent as it was made. */
    cr_assert_eq(ncap, 2);
    struct tseg a = cap_tcp(0), b = cap_tcp(1);
    cr_assert_eq(a.ack, PEER_ISS + 2001);
    cr_assert_eq(a.win, 8192);
    cr_assert_eq(a.len, 0);
    cr_assert_eq(b.ack, PEER_ISS + 2001);
    cr_assert_eq(b.win, 8192);
    cr_assert_eq(b.len, 4);
}

/* A link with checksum offload (cfg.output_offload): what it is handed,
 * gathered into the capture as one packet. */
static int iovcnts[CAP_MAX];
static uint16_t partial_sums[CAP_MAX];
static int gather_out(void *ctx, const struct iovec *iov, int iovcnt, uint16_t gso,
                      bool partial)
{
    (void)ctx;
    (void)gso;
    cr_assert(partial);
    cr_assert_lt(ncap, CAP_MAX);
    size_t at = 0;
    for (int i = 0; i < iovcnt; i++) {
        cr_assert_leq(at + iov[i].iov_len, CAP_PKT);
        memcpy(caps[ncap].data + at, iov[i].iov_base, iov[i].iov_len);
        at += iov[i].iov_len;
    }
    iovcnts[ncap] = iovcnt;
    /* Complete the checksum as the link does (the capture checks it). */
    partial_sums[ncap] = (uint16_t)((caps[ncap].data[36] << 8) | caps[ncap].data[37]);
    cr_assert_eq(ss_csum_complete(caps[ncap].data, at, 20, 16), 0);
    caps[ncap++].len = at;
    return 0;
}

static void csum_offload(struct ss_stack_cfg *c)
{
    c->output_offload = gather_out;
    c->tx_csum_offload = true;
}

Test(tcp_data, csum_offload_hands_the_payload_from_the_ring_across_its_wrap)
{
    fx_teardown();
    fx_setup_with(csum_offload);
    uint32_t iss;
    int sd = fx_passive(&iss);
    fill_big();
    cr_assert_eq(ss_tcp_send(st, now, sd, big, 3000), 3000);   /* a 4 KiB ring */
    cr_assert_eq(ncap, 2, "two full segments; Nagle holds the last 80 bytes");
    seg_in(PEER_ISS + 1, iss + 2921, SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(ncap, 3);
    seg_in(PEER_ISS + 1, iss + 3001, SS_TCP_ACK, 65535, NULL, 0);
    cap_clear();
    /* Bytes 3000..4999 of the ring: the first segment's 1460 bytes wrap
     * at 4096, so the link gets them in two pieces, not copied. */
    cr_assert_eq(ss_tcp_send(st, now, sd, big + 3000, 2000), 2000);
    cr_assert_eq(ncap, 1);
    seg_in(PEER_ISS + 1, iss + 4461, SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(ncap, 2);
    struct tseg a = cap_tcp(0), b = cap_tcp(1);
    cr_assert_eq(a.seq, iss + 3001);
    cr_assert_eq(a.len, 1460);
    cr_assert_eq(memcmp(a.data, big + 3000, 1460), 0);
    cr_assert_eq(b.len, 540);
    cr_assert_eq(memcmp(b.data, big + 4460, 540), 0);
    cr_assert_eq(iovcnts[0], 3, "headers, ring end, ring start");
    cr_assert_eq(iovcnts[1], 2, "headers, one piece");
    /* The checksum field holds the pseudo-header sum, for the link. */
    const uint8_t *tcp = caps[1].data + 20;
    uint32_t ps = (PEER_IP >> 16) + (PEER_IP & 0xffff) + (US_IP >> 16) + (US_IP & 0xffff) + 6 +
                  (uint32_t)(tcp[12] >> 4) * 4 + 540;
    while (ps >> 16)
        ps = (ps & 0xffff) + (ps >> 16);
    cr_assert_eq(partial_sums[1], ps);
}

Test(tcp_data, deferred_user_output_waits_for_the_next_poll)
{
    fx_teardown();
    fx_setup_with(callbacks_first);
    uint32_t iss;
    int sd = fx_passive(&iss);
    cap_clear();
    cr_assert_eq(ss_tcp_send(st, now, sd, "ab", 2), 2);
    cr_assert_eq(ss_tcp_send(st, now, sd, "cd", 2), 2);
    cr_assert_eq(ncap, 0, "sends wait for the poll");
    ss_stack_poll(st, now);
    struct tseg a = one_seg();
    cr_assert_eq(a.len, 4, "both sends in one segment");
    cr_assert_eq(memcmp(a.data, "abcd", 4), 0);
}

/* Zero-copy receive: the readable bytes where they lie in the ring, two
 * spans once they wrap; recv_done takes them as recv would, and the end
 * of the stream reads as 0. */
Test(tcp_data, recv_view_shows_the_ring_in_place_across_its_wrap)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    fill_big();
    struct iovec v[2];
    cr_assert_eq(ss_tcp_recv_view(st, sd, v), -EAGAIN);
    seg_in(PEER_ISS + 1, iss + 1, SS_TCP_ACK, 65535, big, 6000);
    cr_assert_eq(ss_tcp_recv_view(st, sd, v), 1);
    cr_assert_eq(v[0].iov_len, 6000);
    cr_assert_eq(memcmp(v[0].iov_base, big, 6000), 0);
    cr_assert_eq(ss_tcp_recv_done(st, now, sd, 6001), -EINVAL, "more than there is");
    cr_assert_eq(ss_tcp_recv_done(st, now, sd, 5000), 5000);
    seg_in(PEER_ISS + 6001, iss + 1, SS_TCP_ACK, 65535, big + 6000, 7000);
    int n = ss_tcp_recv_view(st, sd, v);
    cr_assert_eq(n, 2, "the ring wraps: %d span(s)", n);
    cr_assert_eq(v[0].iov_len + v[1].iov_len, 8000);
    cr_assert_eq(memcmp(v[0].iov_base, big + 5000, v[0].iov_len), 0);
    cr_assert_eq(memcmp(v[1].iov_base, big + 5000 + v[0].iov_len, v[1].iov_len), 0);
    cap_clear();
    cr_assert_eq(ss_tcp_recv_done(st, now, sd, 8000), 8000);
    struct tseg u = one_seg();
    cr_assert_eq(u.flags, SS_TCP_ACK, "the window update recv would send");
    cr_assert_eq(u.ack, PEER_ISS + 13001);
    cr_assert_eq(u.win, 8192);
    seg_in(PEER_ISS + 13001, iss + 1, SS_TCP_ACK | SS_TCP_FIN, 65535, NULL, 0);
    cr_assert_eq(ss_tcp_recv_view(st, sd, v), 0, "end of stream");
}

/* Zero-copy send: the caller writes into the send ring's room and
 * commits; the segment carries exactly those bytes. */
Test(tcp_data, send_view_and_commit_send_what_was_written_in_place)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    struct iovec v[2];
    cr_assert_eq(ss_tcp_send_view(st, sd, 0, v), -EINVAL);
    cr_assert_eq(ss_tcp_send_view(st, sd, 5, v), 1);
    cr_assert_eq(v[0].iov_len, 5);
    memcpy(v[0].iov_base, "hello", 5);
    cr_assert_eq(ss_tcp_send_commit(st, now, sd, 16385), -EINVAL, "more than the buffer");
    cr_assert_eq(ss_tcp_send_commit(st, now, sd, 5), 5);
    struct tseg s = one_seg();
    cr_assert_eq(s.seq, iss + 1);
    cr_assert_eq(s.len, 5);
    cr_assert_eq(memcmp(s.data, "hello", 5), 0);
    /* A full buffer (16384, the peer's window closed) has no room. */
    seg_in(PEER_ISS + 1, iss + 6, SS_TCP_ACK, 0, NULL, 0);
    fill_big();
    cr_assert_eq(ss_tcp_send(st, now, sd, big, sizeof big), 16384);
    cr_assert_eq(ss_tcp_send_view(st, sd, 1, v), -EAGAIN);
    ss_tcp_shutdown(st, now, sd);
    cr_assert_eq(ss_tcp_send_view(st, sd, 1, v), -EPIPE);
}
