/* The analyser on packets built byte by byte and written to a pcap file
 * with libpcap (raw IP): every flag and the states, exactly, through
 * `sockstack sniff -r`. No root needed. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "sockstack/stack.h"

static pcap_dumper_t *dump;
static uint64_t now_us;

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

static void write_pkt(const uint8_t *p, size_t len)
{
    struct pcap_pkthdr h = {.caplen = (bpf_u_int32)len, .len = (bpf_u_int32)len};
    h.ts.tv_sec = (time_t)(now_us / 1000000);
    h.ts.tv_usec = (suseconds_t)(now_us % 1000000);
    pcap_dump((u_char *)dump, &h, p);
    now_us += 1000;
}

/* IPv4 header for proto and payload len; checksum filled. */
static size_t ip4(uint8_t *p, const char *src, const char *dst, uint8_t proto, size_t len)
{
    memset(p, 0, 20);
    p[0] = 0x45;
    put16(p + 2, (uint16_t)(20 + len));
    p[8] = 64;
    p[9] = proto;
    inet_pton(AF_INET, src, p + 12);
    inet_pton(AF_INET, dst, p + 16);
    put16(p + 10, ss_csum_fold(ss_csum_add(0, p, 20)));
    return 20;
}

/* A TCP header (no options unless mss) and len bytes of data. */
static size_t tcp(uint8_t *t, uint16_t sp, uint16_t dp, uint32_t seq, uint32_t ack,
                  uint8_t flags, uint16_t win, uint32_t len, uint16_t mss)
{
    size_t hl = mss ? 24 : 20;
    memset(t, 0, hl + len);
    put16(t, sp);
    put16(t + 2, dp);
    put32(t + 4, seq);
    put32(t + 8, ack);
    t[12] = (uint8_t)(hl / 4) << 4;
    t[13] = flags;
    put16(t + 14, win);
    if (mss) {
        t[20] = 2, t[21] = 4;
        put16(t + 22, mss);
    }
    memset(t + hl, 'd', len);
    return hl + len;
}

/* A -> B (dir 0) or B -> A (dir 1) between 10.0.0.1:1000 and 10.0.0.2:80. */
static void seg(int dir, uint32_t seq, uint32_t ack, uint8_t flags, uint16_t win, uint32_t len)
{
    uint8_t p[1600];
    size_t tl = tcp(p + 20, dir ? 80 : 1000, dir ? 1000 : 80, seq, ack, flags, win, len,
                    (flags & SS_TCP_SYN) ? 1460 : 0);
    ip4(p, dir ? "10.0.0.2" : "10.0.0.1", dir ? "10.0.0.1" : "10.0.0.2", 6, tl);
    write_pkt(p, 20 + tl);
}

/* A router's ICMP error quoting A's segment seq. */
static void icmp_err(uint8_t type, uint8_t code, uint32_t seq)
{
    uint8_t p[128], q[64];
    size_t ql = tcp(q + 20, 1000, 80, seq, 0, SS_TCP_ACK, 1000, 0, 0);
    ip4(q, "10.0.0.1", "10.0.0.2", 6, ql);
    uint8_t *ic = p + 20;
    memset(ic, 0, 8);
    ic[0] = type;
    ic[1] = code;
    memcpy(ic + 8, q, 28);   /* IP header + 8 bytes, as RFC 792 quotes */
    put16(ic + 2, ss_csum_fold(ss_csum_add(0, ic, 36)));
    ip4(p, "10.0.0.254", "10.0.0.1", 1, 36);
    write_pkt(p, 56);
}

static void seg6(int dir, uint32_t seq, uint32_t ack, uint8_t flags)
{
    uint8_t p[128];
    size_t tl = tcp(p + 40, dir ? 443 : 2000, dir ? 2000 : 443, seq, ack, flags, 500, 0, 0);
    memset(p, 0, 40);
    p[0] = 0x60;
    put16(p + 4, (uint16_t)tl);
    p[6] = 6;
    p[7] = 64;
    inet_pton(AF_INET6, dir ? "fd00::2" : "fd00::1", p + 8);
    inet_pton(AF_INET6, dir ? "fd00::1" : "fd00::2", p + 24);
    write_pkt(p, 40 + tl);
}

Test(analyze, every_flag_and_state_from_a_built_capture, .timeout = 60)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/ss-analyze-%d.pcap", (int)getpid());
    pcap_t *dead = pcap_open_dead(DLT_RAW, 65535);
    cr_assert(dead);
    dump = pcap_dump_open(dead, path);
    cr_assert(dump);
    const uint8_t A = SS_TCP_ACK;
    seg(0, 100, 0, SS_TCP_SYN, 1000, 0);
    seg(1, 500, 101, SS_TCP_SYN | A, 1000, 0);
    seg(0, 101, 501, A, 1000, 0);
    seg(0, 101, 501, A, 1000, 100);        /* data */
    seg(0, 301, 501, A, 1000, 100);        /* 201..300 never seen: out-of-order */
    seg(1, 501, 201, A, 1000, 0);
    seg(1, 501, 201, A, 1000, 0);          /* dup-ack 1 */
    seg(1, 501, 201, A, 1000, 0);          /* dup-ack 2 */
    seg(0, 201, 501, A, 1000, 100);        /* the hole again: retransmission */
    seg(1, 501, 401, A, 0, 0);             /* zero window */
    seg(0, 401, 501, A, 1000, 1);          /* one byte into it: window probe */
    seg(1, 501, 402, A, 0, 0);             /* still zero */
    icmp_err(3, 4, 402);                   /* a router: fragmentation needed */
    seg(1, 501, 0, SS_TCP_RST, 0, 0);      /* reset */
    seg6(0, 7, 0, SS_TCP_SYN);
    seg6(1, 70, 8, SS_TCP_SYN | A);
    pcap_dump_close(dump);
    pcap_close(dead);

    const char *args[] = {"sniff", "-r", path, NULL};
    struct th_result r = th_run_cli(args, 10000);
    unlink(path);
    cr_assert_eq(r.status, 0, "%s", r.err);
    const char *want =
        "0.000000 10.0.0.1:1000 10.0.0.2:80 > SYN seq=100 win=1000 <mss 1460>\n"
        "0.000000 10.0.0.1:1000 10.0.0.2:80 CLOSED -> SYN-SENT\n"
        "0.000000 10.0.0.2:80 10.0.0.1:1000 LISTEN -> SYN-RECEIVED\n"
        "0.001000 10.0.0.2:80 10.0.0.1:1000 > SYN,ACK seq=500 ack=101 win=1000 <mss 1460>\n"
        "0.001000 10.0.0.1:1000 10.0.0.2:80 SYN-SENT -> ESTABLISHED\n"
        "0.002000 10.0.0.1:1000 10.0.0.2:80 > ACK seq=101 ack=501 win=1000\n"
        "0.002000 10.0.0.2:80 10.0.0.1:1000 SYN-RECEIVED -> ESTABLISHED\n"
        "0.003000 10.0.0.1:1000 10.0.0.2:80 > ACK seq=101 ack=501 win=1000 len=100\n"
        "0.004000 10.0.0.1:1000 10.0.0.2:80 > ACK seq=301 ack=501 win=1000 len=100 "
        "[out-of-order]\n"
        "0.005000 10.0.0.2:80 10.0.0.1:1000 > ACK seq=501 ack=201 win=1000\n"
        "0.006000 10.0.0.2:80 10.0.0.1:1000 > ACK seq=501 ack=201 win=1000 [dup-ack 1]\n"
        "0.007000 10.0.0.2:80 10.0.0.1:1000 > ACK seq=501 ack=201 win=1000 [dup-ack 2]\n"
        "0.008000 10.0.0.1:1000 10.0.0.2:80 > [rtx] ACK seq=201 ack=501 win=1000 len=100\n"
        "0.009000 10.0.0.2:80 10.0.0.1:1000 > ACK seq=501 ack=401 win=0 [zero-window]\n"
        "0.010000 10.0.0.1:1000 10.0.0.2:80 > ACK seq=401 ack=501 win=1000 len=1 "
        "[window-probe]\n"
        "0.011000 10.0.0.2:80 10.0.0.1:1000 > ACK seq=501 ack=402 win=0 [zero-window]\n"
        "0.012000 10.0.0.254 > ICMP type=3 code=4 about 10.0.0.1:1000 10.0.0.2:80 seq=402 "
        "[icmp-error]\n"
        "0.013000 10.0.0.2:80 10.0.0.1:1000 > RST seq=501 win=0 [reset]\n"
        "0.013000 10.0.0.2:80 10.0.0.1:1000 ESTABLISHED -> CLOSED\n"
        "0.013000 10.0.0.1:1000 10.0.0.2:80 ESTABLISHED -> CLOSED\n"
        "0.014000 [fd00::1]:2000 [fd00::2]:443 > SYN seq=7 win=500\n"
        "0.014000 [fd00::1]:2000 [fd00::2]:443 CLOSED -> SYN-SENT\n"
        "0.014000 [fd00::2]:443 [fd00::1]:2000 LISTEN -> SYN-RECEIVED\n"
        "0.015000 [fd00::2]:443 [fd00::1]:2000 > SYN,ACK seq=70 ack=8 win=500\n"
        "0.015000 [fd00::1]:2000 [fd00::2]:443 SYN-SENT -> ESTABLISHED\n";
    cr_assert_str_eq(r.out, want);
    th_result_free(&r);
}
