/* libFuzzer target: arbitrary packets into a stack that has a listener
 * (port 80, with a connection half-open in SYN-RECEIVED) and an
 * established connection (port 80 <-> 10.0.0.1:40000), plus a bound UDP
 * socket. Invariants: no crash, no sanitizer report, no leak, and every
 * emitted packet is a well-formed IPv4 packet with a valid header checksum.
 *
 * Input: a sequence of records
 *   u8 ctl, u8 len_hi, u8 len_lo, bytes[len]
 * ctl bit 0: fix the IPv4 header (version/IHL, total length, checksum),
 *     bit 1: also fix the TCP/UDP/ICMP checksum, so mutations get past
 *            the checksum checks and reach the protocol logic,
 *     bit 2: force source 10.0.0.1 and destination 10.0.0.2; for TCP also
 *            the established connection's ports, and read SEQ and ACK as
 *            16-bit signed offsets from its RCV.NXT and SND.UNA, so that
 *            mutations land in and around the windows (the low bit of
 *            the IP identification picks the connection: the established
 *            one, or an active open still in SYN-SENT),
 *     bits 3-4: application action afterwards (none, send, recv, shutdown),
 *     bits 5-7: time advance (0, 1 ms, 40 ms, 200 ms, 1 s, 3 s, 60 s, 2 h).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sockstack/stack.h"

#define US 0x0a000002u
#define PEER 0x0a000001u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t last_seq;   /* our last sequence number seen on the wire */

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }

static int out(void *ctx, const uint8_t *p, size_t n)
{
    (void)ctx;
    /* Invariant: what the stack emits is a valid IPv4 packet. */
    if (n < 20 || (p[0] >> 4) != 4 || get16(p + 2) != n ||
        ss_csum_fold(ss_csum_add(0, p, (size_t)(p[0] & 15) * 4)) != 0)
        abort();
    if (p[9] == 6 && n >= 40)
        last_seq = (uint32_t)get16(p + 24) << 16 | get16(p + 26);
    return 0;
}

static size_t tcp(uint8_t *b, uint32_t seq, uint32_t ack, uint8_t flags)
{
    memset(b, 0, 40);
    b[0] = 0x45;
    put16(b + 2, 40);
    b[8] = 64;
    b[9] = 6;
    put32(b + 12, PEER);
    put32(b + 16, US);
    put16(b + 10, ss_csum_fold(ss_csum_add(0, b, 20)));
    uint8_t *t = b + 20;
    put16(t, 40000);
    put16(t + 2, 80);
    put32(t + 4, seq);
    put32(t + 8, ack);
    t[12] = 0x50;
    t[13] = flags;
    put16(t + 14, 65535);
    uint32_t ps = (PEER >> 16) + (PEER & 0xffff) + (US >> 16) + (US & 0xffff) + 6 + 20;
    put16(t + 16, ss_csum_fold(ss_csum_add(ps, t, 20)));
    return 40;
}

static void fix(ss_stack *st, const int conns[2], uint8_t *p, size_t n, uint8_t ctl)
{
    if (n < 20)
        return;
    if (ctl & 4) {
        put32(p + 12, PEER);
        put32(p + 16, US);
        struct ss_stack_sock_info in;
        if (p[9] == 6 && n >= 40 && ss_stack_sock_info(st, conns[p[5] & 1], &in) == 0) {
            uint8_t *t = p + 20;
            int16_t ds = (int16_t)get16(t + 6), da = (int16_t)get16(t + 10);
            put16(t, in.rport);
            put16(t + 2, in.lport);
            put32(t + 4, in.rcv_nxt + (uint32_t)(int32_t)ds);
            put32(t + 8, in.snd_una + (uint32_t)(int32_t)da);
        }
    }
    if (!(ctl & 1))
        return;
    p[0] = 0x45;
    put16(p + 2, (uint16_t)n);
    if (p[8] == 0)
        p[8] = 1;
    p[10] = p[11] = 0;
    put16(p + 10, ss_csum_fold(ss_csum_add(0, p, 20)));
    if (!(ctl & 2))
        return;
    uint8_t *l4 = p + 20;
    size_t ln = n - 20;
    uint32_t src = (uint32_t)get16(p + 12) << 16 | get16(p + 14);
    uint32_t dst = (uint32_t)get16(p + 16) << 16 | get16(p + 18);
    uint32_t ps = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + p[9] + (uint32_t)ln;
    if (p[9] == 6 && ln >= 20) {
        l4[16] = l4[17] = 0;
        put16(l4 + 16, ss_csum_fold(ss_csum_add(ps, l4, ln)));
    } else if (p[9] == 17 && ln >= 8) {
        put16(l4 + 4, (uint16_t)ln);
        l4[6] = l4[7] = 0;
        put16(l4 + 6, ss_csum_fold(ss_csum_add(ps, l4, ln)));
    } else if (p[9] == 1 && ln >= 4) {
        l4[2] = l4[3] = 0;
        put16(l4 + 2, ss_csum_fold(ss_csum_add(0, l4, ln)));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint64_t steps[8] = {0, 1000, 40000, 200000, 1000000, 3000000,
                                      60000000, 7200000000ull};
    struct ss_stack_cfg cfg;
    ss_stack_cfg_default(&cfg);
    cfg.local_addr = US;
    cfg.isn_secret[0] = 1;   /* fixed: every run of an input is the same */
    cfg.output = out;
    cfg.max_sockets = 8;
    cfg.sndbuf = 4096;
    cfg.rcvbuf = 4096;
    cfg.frag_slots = 2;
    cfg.ooo_max = 4;
    cfg.udp_rcvq_max = 4;
    ss_stack *st;
    if (ss_stack_new(&cfg, &st) != 0)
        abort();
    uint64_t now = 1000000;
    uint8_t b[65536];

    /* A listener with one established connection and one half-open. */
    int ls = ss_tcp_listen(st, 80, 4);
    ss_tcp_send(st, now, ls, "x", 1);
    ss_stack_input(st, now, b, tcp(b, 5000, 0, 0x02));
    uint32_t iss = last_seq;
    ss_stack_input(st, now, b, tcp(b, 5001, iss + 1, 0x10));
    int cs = ss_tcp_accept(st, ls, NULL, NULL);
    ss_stack_sock_setopt(st, cs, SS_SO_KEEPALIVE, 1);
    ss_tcp_send(st, now, cs, "hello", 5);
    b[0] = 0;
    size_t n = tcp(b, 7000, 0, 0x02);
    put16(b + 20, 40001);
    put16(b + 36, 0);
    uint32_t ps = (PEER >> 16) + (PEER & 0xffff) + (US >> 16) + (US & 0xffff) + 6 + 20;
    put16(b + 36, ss_csum_fold(ss_csum_add(ps, b + 20, 20)));
    ss_stack_input(st, now, b, n);
    int us = ss_udp_bind(st, 53);
    int conns[2] = {cs, ss_tcp_connect(st, now, PEER, 9, 0)};

    size_t i = 0;
    while (i + 3 <= size) {
        uint8_t ctl = data[i];
        size_t len = (size_t)data[i + 1] << 8 | data[i + 2];
        i += 3;
        if (len > size - i)
            len = size - i;
        memcpy(b, data + i, len);
        i += len;
        fix(st, conns, b, len, ctl);
        ss_stack_input(st, now, b, len);
        char tmp[512];
        switch ((ctl >> 3) & 3) {
        case 1:
            ss_tcp_send(st, now, cs, data, len > 3000 ? 3000 : len);
            if (len & 1)
                ss_tcp_send_urgent(st, now, cs, data, len > 10 ? 10 : len);
            ss_udp_sendto(st, now, us, PEER, 9, data, len > 100 ? 100 : len);
            break;
        case 2:
            ss_tcp_recv(st, now, cs, tmp, sizeof tmp);
            ss_udp_recvfrom(st, us, tmp, sizeof tmp, NULL, NULL);
            break;
        case 3:
            ss_tcp_shutdown(st, now, cs);
            break;
        }
        now += steps[ctl >> 5];
        uint64_t d = ss_stack_poll(st, now);
        if (d < now)
            abort();   /* a deadline in the past means a timer that never fires */
    }
    ss_tcp_close(st, now, cs);
    ss_stack_poll(st, now + 3600000000ull);
    ss_stack_free(st);
    return 0;
}
