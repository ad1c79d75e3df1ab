/* IPv4 validation, fragments, ICMP (echo, errors) and UDP. */
#include <errno.h>
#include <string.h>

#include "fixture.h"
#include "sockstack/err.h"

TestSuite(ip, .init = fx_setup, .fini = fx_teardown, .timeout = 20);

static uint8_t pkt[70000];

static uint16_t g16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t g32(const uint8_t *p) { return (uint32_t)g16(p) << 16 | g16(p + 2); }

static void refix_ip_csum(uint8_t *p)
{
    size_t ihl = (size_t)(p[0] & 15) * 4;
    p[10] = p[11] = 0;
    uint16_t c = t_csum(p, ihl, 0);
    p[10] = (uint8_t)(c >> 8);
    p[11] = (uint8_t)c;
}

Test(ip, malformed_packets_are_counted_and_dropped)
{
    uint8_t good[100];
    size_t n = mk_tcp(good, PEER_IP, US_IP, 1, 2, 0, 0, SS_TCP_SYN, 0, 0, NULL, 0);
    struct ss_stack_stats s;

    cr_assert_eq(ss_stack_input(st, now, good, 10), SS_EBADPKT, "shorter than a header");
    memcpy(pkt, good, n); pkt[0] = 0x65; refix_ip_csum(pkt);
    cr_assert_eq(ss_stack_input(st, now, pkt, n), SS_EBADPKT, "version 6");
    memcpy(pkt, good, n); pkt[0] = 0x44;
    cr_assert_eq(ss_stack_input(st, now, pkt, n), SS_EBADPKT, "IHL 4");
    memcpy(pkt, good, n); pkt[0] = 0x4f;
    cr_assert_eq(ss_stack_input(st, now, pkt, 50), SS_EBADPKT, "IHL beyond the packet");
    memcpy(pkt, good, n); pkt[3] = (uint8_t)(n + 1); refix_ip_csum(pkt);
    cr_assert_eq(ss_stack_input(st, now, pkt, n), SS_EBADPKT, "total length > packet");
    memcpy(pkt, good, n); pkt[3] = 19; refix_ip_csum(pkt);
    cr_assert_eq(ss_stack_input(st, now, pkt, n), SS_EBADPKT, "total length < IHL");
    memcpy(pkt, good, n); pkt[10] ^= 1;
    cr_assert_eq(ss_stack_input(st, now, pkt, n), SS_EBADPKT, "header checksum");
    memcpy(pkt, good, n); pkt[19] = 99; refix_ip_csum(pkt);
    ss_stack_input(st, now, pkt, n);
    memcpy(pkt, good, n); pkt[12] = 255; pkt[13] = 255; pkt[14] = 255; pkt[15] = 255;
    refix_ip_csum(pkt);
    ss_stack_input(st, now, pkt, n);
    memcpy(pkt, good, n); pkt[20 + 16] ^= 0x40;   /* TCP checksum */
    cr_assert_eq(ss_stack_input(st, now, pkt, n), SS_EBADPKT, "TCP checksum");
    memcpy(pkt, good, n); pkt[32] = 0x40;  /* data offset 4 words */
    pkt[36] = pkt[37] = 0;
    uint32_t ps = (PEER_IP >> 16) + (PEER_IP & 0xffff) + (US_IP >> 16) + (US_IP & 0xffff) + 6 + 20;
    uint16_t c = t_csum(pkt + 20, 20, ps);
    pkt[36] = (uint8_t)(c >> 8); pkt[37] = (uint8_t)c;
    cr_assert_eq(ss_stack_input(st, now, pkt, n), SS_EBADPKT, "TCP data offset < 5");

    cr_assert_eq(ncap, 0, "nothing is answered");
    ss_stack_stats(st, &s);
    cr_assert_eq(s.ip_in, 11);
    cr_assert_eq(s.ip_bad_len, 3);
    cr_assert_eq(s.ip_bad_header, 3);
    cr_assert_eq(s.ip_bad_checksum, 1);
    cr_assert_eq(s.ip_not_for_us, 1);
    cr_assert_eq(s.ip_bad_src, 1);
    cr_assert_eq(s.tcp_bad_checksum, 1);
    cr_assert_eq(s.tcp_bad_header, 1);
    cr_assert_eq(s.tcp_in, 2);
}

Test(ip, options_are_skipped_and_padding_ignored)
{
    /* IHL 6 (one NOP option word) and 3 bytes of link-layer padding. */
    uint8_t d[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int sd = ss_udp_bind(st, 9000);
    size_t n = mk_udp(pkt, PEER_IP, US_IP, 5000, 9000, d, 8, true);
    memmove(pkt + 24, pkt + 20, n - 20);
    memset(pkt + 20, 1, 4);
    pkt[0] = 0x46;
    pkt[3] = (uint8_t)(n + 4);
    refix_ip_csum(pkt);
    cr_assert_eq(ss_stack_input(st, now, pkt, n + 4 + 3), 0);
    uint8_t out[16];
    cr_assert_eq(ss_udp_recvfrom(st, sd, out, sizeof out, NULL, NULL), 8);
    cr_assert_eq(memcmp(out, d, 8), 0);
}

Test(ip, icmp_echo_reply)
{
    uint8_t m[64];
    m[0] = 8; m[1] = 0; m[2] = m[3] = 0;
    m[4] = 0x12; m[5] = 0x34; m[6] = 0; m[7] = 7;
    for (int i = 8; i < 64; i++)
        m[i] = (uint8_t)i;
    uint16_t c = t_csum(m, 64, 0);
    m[2] = (uint8_t)(c >> 8); m[3] = (uint8_t)c;
    size_t n = mk_ip(pkt, PEER_IP, US_IP, 1, m, 64);
    cr_assert_eq(ss_stack_input(st, now, pkt, n), 0);
    cr_assert_eq(ncap, 1);
    const uint8_t *r = caps[0].data;
    cr_assert_eq(caps[0].len, 84);
    cr_assert_eq(t_csum(r, 20, 0), 0);
    cr_assert_eq(r[9], 1);
    cr_assert_eq(g32(r + 12), US_IP);
    cr_assert_eq(g32(r + 16), PEER_IP);
    cr_assert_eq(r[20], 0, "echo reply");
    cr_assert_eq(r[21], 0);
    cr_assert_eq(t_csum(r + 20, 64, 0), 0, "ICMP checksum");
    cr_assert_eq(memcmp(r + 24, m + 4, 60), 0, "id, seq and data echoed");
    /* A corrupted request is dropped and counted. */
    cap_clear();
    pkt[20 + 10] ^= 1;
    ss_stack_input(st, now, pkt, n);
    cr_assert_eq(ncap, 0);
    struct ss_stack_stats s;
    ss_stack_stats(st, &s);
    cr_assert_eq(s.icmp_bad, 1);
    cr_assert_eq(s.icmp_echo_in, 1);
}

/* RFC 1122 3.2.1.7: a host MUST NOT discard a datagram it receives for
 * TTL 0 or 1 (only a router forwarding it does). */
Test(ip, ttl_0_and_1_are_delivered_to_a_host)
{
    for (uint8_t ttl = 0; ttl <= 1; ttl++) {
        uint8_t m[8] = {8, 0, 0, 0, 0x12, 0x34, 0, ttl};
        uint16_t c = t_csum(m, 8, 0);
        m[2] = (uint8_t)(c >> 8); m[3] = (uint8_t)c;
        size_t n = mk_ip(pkt, PEER_IP, US_IP, 1, m, 8);
        pkt[8] = ttl;
        refix_ip_csum(pkt);
        cap_clear();
        cr_assert_eq(ss_stack_input(st, now, pkt, n), 0);
        cr_assert_eq(ncap, 1, "echo request with TTL %u answered", ttl);
        cr_assert_eq(caps[0].data[20], 0, "echo reply");
        cr_assert_eq(caps[0].data[8], 64, "the reply has our own TTL");
        cr_assert_eq(caps[0].data[27], ttl, "the request's sequence number echoed");
    }
    int ls = ss_tcp_listen(st, US_PORT, 8);
    cr_assert_geq(ls, 0);
    for (uint8_t ttl = 0; ttl <= 1; ttl++) {
        size_t n = mk_tcp(pkt, PEER_IP, US_IP, (uint16_t)(PEER_PORT + ttl), US_PORT, PEER_ISS, 0,
                          SS_TCP_SYN, 65535, 1460, NULL, 0);
        pkt[8] = ttl;
        refix_ip_csum(pkt);
        cap_clear();
        cr_assert_eq(ss_stack_input(st, now, pkt, n), 0);
        struct tseg sa = one_seg();
        cr_assert_eq(sa.flags, SS_TCP_SYN | SS_TCP_ACK, "SYN with TTL %u accepted", ttl);
        cr_assert_eq(sa.ack, PEER_ISS + 1);
        cr_assert_eq(sa.dport, PEER_PORT + ttl);
    }
}

/* A datagram longer than the buffer is reported as truncated (MSG_TRUNC). */
Test(ip, udp_recvmsg_reports_truncation)
{
    int sd = ss_udp_bind(st, 9001);
    cr_assert_geq(sd, 0);
    size_t n = mk_udp(pkt, PEER_IP, US_IP, 5000, 9001, "longer", 6, true);
    ss_stack_input(st, now, pkt, n);
    n = mk_udp(pkt, PEER_IP, US_IP, 5001, 9001, "fits", 4, true);
    ss_stack_input(st, now, pkt, n);
    uint8_t b[8];
    uint32_t a;
    uint16_t p;
    bool cut = false;
    cr_assert_eq(ss_udp_recvmsg(st, sd, b, 4, &a, &p, &cut), 4);
    cr_assert_eq(memcmp(b, "long", 4), 0);
    cr_assert(cut, "6-byte datagram into 4 bytes");
    cr_assert_eq(p, 5000);
    cr_assert_eq(ss_udp_recvmsg(st, sd, b, 4, &a, &p, &cut), 4);
    cr_assert_eq(memcmp(b, "fits", 4), 0);
    cr_assert(!cut, "exactly the buffer is not truncated");
    cut = true;
    cr_assert_eq(ss_udp_recvmsg(st, sd, b, sizeof b, &a, &p, &cut), -EAGAIN);
    cr_assert(cut, "untouched on error");
}

Test(ip, udp_receive_checksum_and_queue)
{
    int sd = ss_udp_bind(st, 9000);
    cr_assert_geq(sd, 0);
    ss_stack_sock_set_cb(st, sd, on_event, NULL);
    size_t n = mk_udp(pkt, PEER_IP, US_IP, 5000, 9000, "hello", 5, true);
    ss_stack_input(st, now, pkt, n);
    cr_assert(saw_event(sd, SS_EV_READABLE, 0));
    n = mk_udp(pkt, PEER_IP, US_IP, 5001, 9000, "nosum", 5, false);   /* checksum 0 */
    ss_stack_input(st, now, pkt, n);
    n = mk_udp(pkt, PEER_IP, US_IP, 5002, 9000, "bad!!", 5, true);
    pkt[28] ^= 1;
    cr_assert_eq(ss_stack_input(st, now, pkt, n), SS_EBADPKT);
    uint8_t b[16];
    uint32_t a;
    uint16_t p;
    cr_assert_eq(ss_udp_recvfrom(st, sd, b, sizeof b, &a, &p), 5);
    cr_assert_eq(memcmp(b, "hello", 5), 0);
    cr_assert_eq(a, PEER_IP);
    cr_assert_eq(p, 5000);
    cr_assert_eq(ss_udp_recvfrom(st, sd, b, 2, &a, &p), 2, "truncated to the buffer");
    cr_assert_eq(p, 5001);
    cr_assert_eq(ss_udp_recvfrom(st, sd, b, sizeof b, &a, &p), -EAGAIN);
    struct ss_stack_stats s;
    ss_stack_stats(st, &s);
    cr_assert_eq(s.udp_bad_checksum, 1);
    /* bounded queue */
    for (uint32_t i = 0; i < cfg.udp_rcvq_max + 2; i++) {
        n = mk_udp(pkt, PEER_IP, US_IP, 5000, 9000, "q", 1, true);
        ss_stack_input(st, now, pkt, n);
    }
    ss_stack_stats(st, &s);
    cr_assert_eq(s.udp_queue_full, 2);
}

Test(ip, udp_send_has_exact_checksum)
{
    int sd = ss_udp_bind(st, 0);
    struct ss_stack_sock_info in;
    ss_stack_sock_info(st, sd, &in);
    cr_assert_geq(in.lport, 49152, "ephemeral port");
    cr_assert_eq(ss_udp_sendto(st, now, sd, PEER_IP, 53, "query", 5), 5);
    cr_assert_eq(ncap, 1);
    const uint8_t *r = caps[0].data;
    cr_assert_eq(caps[0].len, 33);
    cr_assert_eq(r[9], 17);
    cr_assert_eq(g16(r + 20), in.lport);
    cr_assert_eq(g16(r + 22), 53);
    cr_assert_eq(g16(r + 24), 13);
    uint32_t ps = (US_IP >> 16) + (US_IP & 0xffff) + (PEER_IP >> 16) + (PEER_IP & 0xffff) + 17 + 13;
    cr_assert_neq(g16(r + 26), 0);
    cr_assert_eq(t_csum(r + 20, 13, ps), 0, "UDP checksum with pseudo-header");
    cr_assert_eq(memcmp(r + 28, "query", 5), 0);
}

Test(ip, udp_closed_port_gets_port_unreachable)
{
    size_t n = mk_udp(pkt, PEER_IP, US_IP, 5000, 9999, "anyone?", 7, true);
    ss_stack_input(st, now, pkt, n);
    cr_assert_eq(ncap, 1);
    const uint8_t *r = caps[0].data;
    cr_assert_eq(r[9], 1);
    cr_assert_eq(r[20], 3, "destination unreachable");
    cr_assert_eq(r[21], 3, "port unreachable");
    cr_assert_eq(caps[0].len, 20 + 8 + 20 + 8, "quotes IP header + 8 bytes");
    cr_assert_eq(memcmp(r + 28, pkt, 28), 0);
    cr_assert_eq(t_csum(r + 20, caps[0].len - 20, 0), 0);
}

Test(ip, unknown_protocol_gets_protocol_unreachable)
{
    size_t n = mk_ip(pkt, PEER_IP, US_IP, 99, "xxxxxxxx", 8);
    ss_stack_input(st, now, pkt, n);
    cr_assert_eq(ncap, 1);
    cr_assert_eq(caps[0].data[20], 3);
    cr_assert_eq(caps[0].data[21], 2);
}

static size_t mk_icmp_unreach(uint8_t code, const uint8_t *orig, size_t olen)
{
    uint8_t m[100] = {3, code, 0, 0, 0, 0, 0, 0};
    memcpy(m + 8, orig, 28);
    (void)olen;
    uint16_t c = t_csum(m, 36, 0);
    m[2] = (uint8_t)(c >> 8); m[3] = (uint8_t)c;
    return mk_ip(pkt, PEER_IP, US_IP, 1, m, 36);
}

Test(ip, icmp_port_unreachable_reaches_udp_socket)
{
    int sd = ss_udp_bind(st, 7000);
    ss_stack_sock_set_cb(st, sd, on_event, NULL);
    ss_udp_sendto(st, now, sd, PEER_IP, 53, "q", 1);
    size_t n = mk_icmp_unreach(3, caps[0].data, caps[0].len);
    ss_stack_input(st, now, pkt, n);
    cr_assert(saw_event(sd, SS_EV_ERROR, -ECONNREFUSED));
    uint8_t b[4];
    cr_assert_eq(ss_udp_recvfrom(st, sd, b, 4, NULL, NULL), -ECONNREFUSED);
    cr_assert_eq(ss_udp_recvfrom(st, sd, b, 4, NULL, NULL), -EAGAIN);
}

Test(ip, icmp_unreachable_refuses_tcp_connect)
{
    int sd = ss_tcp_connect(st, now, PEER_IP, 80, 33333);
    ss_stack_sock_set_cb(st, sd, on_event, NULL);
    size_t n = mk_icmp_unreach(3, caps[0].data, caps[0].len);
    ss_stack_input(st, now, pkt, n);
    cr_assert_eq(sock_state(sd), SS_TCP_CLOSED);
    cr_assert(saw_event(sd, SS_EV_ERROR, -ECONNREFUSED));
}

Test(ip, icmp_host_unreachable_is_soft_then_reported_on_timeout)
{
    int sd = ss_tcp_connect(st, now, PEER_IP, 80, 33334);
    ss_stack_sock_set_cb(st, sd, on_event, NULL);
    size_t n = mk_icmp_unreach(1, caps[0].data, caps[0].len);
    ss_stack_input(st, now, pkt, n);
    cr_assert_eq(sock_state(sd), SS_TCP_SYN_SENT, "soft error: keep trying");
    for (int i = 0; i < 10; i++)
        advance(ss_stack_poll(st, now) - now);
    cr_assert_eq(sock_state(sd), SS_TCP_CLOSED);
    cr_assert(saw_event(sd, SS_EV_ERROR, -EHOSTUNREACH));
}

/* Split a UDP datagram into fragments at byte offsets (multiples of 8). */
static size_t frag(uint8_t *out, const uint8_t *whole, size_t wlen, size_t off, size_t len,
                   bool more)
{
    memcpy(out, whole, 20);
    memcpy(out + 20, whole + 20 + off, len);
    out[2] = (uint8_t)((20 + len) >> 8);
    out[3] = (uint8_t)(20 + len);
    uint16_t f = (uint16_t)((more ? 0x2000 : 0) | (off / 8));
    out[6] = (uint8_t)(f >> 8);
    out[7] = (uint8_t)f;
    refix_ip_csum(out);
    (void)wlen;
    return 20 + len;
}

Test(ip, fragments_reassembled_in_any_order)
{
    int sd = ss_udp_bind(st, 9000);
    uint8_t data[3000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 13);
    static uint8_t whole[4000], f[2000];
    size_t wn = mk_udp(whole, PEER_IP, US_IP, 5000, 9000, data, sizeof data, true);
    size_t ulen = wn - 20;  /* 3008 */
    size_t n = frag(f, whole, wn, 1480, 1480, true);
    ss_stack_input(st, now, f, n);
    n = frag(f, whole, wn, 2960, ulen - 2960, false);
    ss_stack_input(st, now, f, n);
    uint8_t b[4000];
    cr_assert_eq(ss_udp_recvfrom(st, sd, b, sizeof b, NULL, NULL), -EAGAIN);
    n = frag(f, whole, wn, 0, 1480, true);
    ss_stack_input(st, now, f, n);
    cr_assert_eq(ss_udp_recvfrom(st, sd, b, sizeof b, NULL, NULL), 3000);
    cr_assert_eq(memcmp(b, data, 3000), 0);
    struct ss_stack_stats s;
    ss_stack_stats(st, &s);
    cr_assert_eq(s.ip_frag_in, 3);
    cr_assert_eq(s.ip_frag_reassembled, 1);
}

Test(ip, fragment_overlap_dropped_and_timeout_frees_slot)
{
    int sd = ss_udp_bind(st, 9000);
    uint8_t data[3000] = {0};
    static uint8_t whole[4000], f[2000];
    size_t wn = mk_udp(whole, PEER_IP, US_IP, 5000, 9000, data, sizeof data, true);
    ss_stack_input(st, now, f, frag(f, whole, wn, 0, 1480, true));
    ss_stack_input(st, now, f, frag(f, whole, wn, 1472, 1480, true));   /* overlaps */
    struct ss_stack_stats s;
    ss_stack_stats(st, &s);
    cr_assert_eq(s.ip_frag_dropped, 1);
    ss_stack_input(st, now, f, frag(f, whole, wn, 0, 1480, true));
    uint64_t d = ss_stack_poll(st, now);
    cr_assert_eq(d, now + cfg.frag_timeout_ms * MS);
    advance(cfg.frag_timeout_ms * MS);
    ss_stack_stats(st, &s);
    cr_assert_eq(s.ip_frag_timeout, 1);
    uint8_t b[8];
    cr_assert_eq(ss_udp_recvfrom(st, sd, b, sizeof b, NULL, NULL), -EAGAIN);
    cr_assert_eq(ss_stack_poll(st, now), UINT64_MAX);
}

/* RFC 5927 4.1: an ICMP error is believed only if the sequence number it
 * quotes is in flight (SND.UNA =< SEQ < SND.NXT); with nothing in flight
 * no quoted number is, so an idle connection ignores every ICMP error. */
Test(ip, icmp_error_quoting_seq_not_in_flight_is_ignored_when_idle)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    ss_stack_sock_set_cb(st, sd, on_event, NULL);
    /* Quote a segment of ours with a sequence number far from anything sent. */
    uint8_t fake[48];
    mk_tcp(fake, US_IP, PEER_IP, US_PORT, PEER_PORT, iss + 5000, PEER_ISS + 1, SS_TCP_ACK, 100,
           0, NULL, 0);
    cap_clear();
    size_t n = mk_icmp_unreach(1, fake, 40);   /* host unreachable: a soft error */
    ss_stack_input(st, now, pkt, n);
    struct ss_stack_sock_info in;
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.soft_error, 0, "idle: the quoted sequence number is not in flight");
    /* The same quote while data is in flight, and within it, is believed. */
    cr_assert_eq(ss_tcp_send(st, now, sd, "x", 1), 1);
    mk_tcp(fake, US_IP, PEER_IP, US_PORT, PEER_PORT, iss + 1, PEER_ISS + 1, SS_TCP_ACK, 100, 0,
           NULL, 0);
    n = mk_icmp_unreach(1, fake, 40);
    ss_stack_input(st, now, pkt, n);
    ss_stack_sock_info(st, sd, &in);
    cr_assert_eq(in.soft_error, -EHOSTUNREACH);
}

/* ---- fragment slots and memory under pressure ----------------------------- */

/* A 3000-byte UDP datagram to port 9000 with IP id `id`, as two fragments:
 * [0, 1480) with MF, then [1480, 3008). which: 0 the first, 1 the last. */
static void udp_frag(uint16_t id, int which, uint8_t fill)
{
    uint8_t data[3000];
    memset(data, fill, sizeof data);
    static uint8_t whole[4000], f[2000];
    size_t wn = mk_udp(whole, PEER_IP, US_IP, 5000, 9000, data, sizeof data, true);
    whole[4] = (uint8_t)(id >> 8);
    whole[5] = (uint8_t)id;
    size_t n = which == 0 ? frag(f, whole, wn, 0, 1480, true)
                          : frag(f, whole, wn, 1480, wn - 20 - 1480, false);
    ss_stack_input(st, now, f, n);
}

/* The issue-10 lock-out: first fragments alone took every slot until
 * they timed out. Now a new datagram pushes out the oldest reassembly,
 * and only that one: the others still complete. */
Test(ip, fragment_slots_full_oldest_evicted_first)
{
    int sd = ss_udp_bind(st, 9000);
    cr_assert_eq(cfg.frag_slots, 4);
    for (uint16_t id = 1; id <= 4; id++) {   /* four first fragments take every slot */
        udp_frag(id, 0, (uint8_t)id);
        now += 1 * MS;
    }
    udp_frag(100, 0, 0xab);                  /* a new datagram: id 1 goes */
    udp_frag(100, 1, 0xab);
    uint8_t b[4000];
    cr_assert_eq(ss_udp_recvfrom(st, sd, b, sizeof b, NULL, NULL), 3000);
    cr_assert_eq(b[0], 0xab);
    cr_assert_eq(b[2999], 0xab);
    udp_frag(2, 1, 2);                       /* id 2 was kept: it completes */
    cr_assert_eq(ss_udp_recvfrom(st, sd, b, sizeof b, NULL, NULL), 3000);
    cr_assert_eq(b[0], 2);
    udp_frag(1, 1, 1);                       /* id 1 was evicted: its rest starts anew */
    cr_assert_eq(ss_udp_recvfrom(st, sd, b, sizeof b, NULL, NULL), -EAGAIN);
    struct ss_stack_stats s;
    ss_stack_stats(st, &s);
    cr_assert_eq(s.ip_frag_evicted, 1);
    cr_assert_eq(s.ip_frag_dropped, 1);
    cr_assert_eq(s.ip_frag_reassembled, 2);
    cr_assert_eq(s.ip_frag_in, 8);
}

/* Many more first fragments than slots, each a new datagram: the slots
 * turn over, the memory held never passes the bound, and a datagram sent
 * between them still arrives. */
Test(ip, fragment_flood_never_locks_out_a_datagram)
{
    int sd = ss_udp_bind(st, 9000);
    for (uint16_t id = 1; id <= 1000; id++) {
        udp_frag(id, 0, 0);
        now += 10;
    }
    udp_frag(5000, 0, 0x5a);
    udp_frag(5000, 1, 0x5a);
    uint8_t b[4000];
    cr_assert_eq(ss_udp_recvfrom(st, sd, b, sizeof b, NULL, NULL), 3000);
    cr_assert_eq(b[1234], 0x5a);
    struct ss_stack_stats s;
    ss_stack_stats(st, &s);
    cr_assert_eq(s.ip_frag_evicted, 1000 - 4 + 1);
    cr_assert_eq(s.ip_frag_reassembled, 1);
}

static void small_frag_mem(struct ss_stack_cfg *c)
{
    c->frag_mem = 4000;
}

static void frag_mem_setup(void)
{
    fx_setup_with(small_frag_mem);
}

/* cfg.frag_mem bounds the bytes held across reassemblies: each fragment
 * that would pass it pushes out the oldest other reassembly; one that
 * cannot fit even alone drops its own datagram. */
Test(ip_frag_mem, bound_evicts_oldest, .init = frag_mem_setup, .fini = fx_teardown)
{
    int sd = ss_udp_bind(st, 9000);
    udp_frag(1, 0, 1);          /* 1480 held */
    now += 1 * MS;
    udp_frag(2, 0, 2);          /* 2960 */
    now += 1 * MS;
    udp_frag(3, 0, 3);          /* 4440 > 4000: id 1 goes, 2960 */
    struct ss_stack_stats s;
    ss_stack_stats(st, &s);
    cr_assert_eq(s.ip_frag_evicted, 1);
    udp_frag(3, 1, 3);          /* 2960 + 1528 > 4000: id 2 goes; id 3 completes */
    uint8_t b[4000];
    cr_assert_eq(ss_udp_recvfrom(st, sd, b, sizeof b, NULL, NULL), 3000);
    cr_assert_eq(b[0], 3);
    ss_stack_stats(st, &s);
    cr_assert_eq(s.ip_frag_evicted, 2);
    udp_frag(2, 1, 2);          /* id 2 is gone: its last fragment waits alone */
    cr_assert_eq(ss_udp_recvfrom(st, sd, b, sizeof b, NULL, NULL), -EAGAIN);

    /* A datagram larger than the bound cannot be held at all. */
    static uint8_t data[5000], whole[6000], f[3000];
    size_t wn = mk_udp(whole, PEER_IP, US_IP, 5000, 9000, data, sizeof data, true);
    whole[5] = 77;
    ss_udp_close(st, sd);
    ss_stack_stats(st, &s);
    uint64_t dropped = s.ip_frag_dropped;
    ss_stack_input(st, now, f, frag(f, whole, wn, 0, 2400, true));
    ss_stack_input(st, now, f, frag(f, whole, wn, 2400, wn - 20 - 2400, false));
    ss_stack_stats(st, &s);
    cr_assert_eq(s.ip_frag_dropped, dropped + 2, "id 2's remnant pushed out, then the big one");
    cr_assert_eq(s.ip_frag_reassembled, 1);
}
