/* Packets built byte by byte for the analyser and drawing tests (see pktgen.h). */
#include "pktgen.h"

#include <arpa/inet.h>
#include <string.h>

#include "sockstack/stack.h"

pcap_dumper_t *pg_dump;
uint64_t pg_now_us;
uint64_t pg_step_us = 1000;

void pg_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v; }
void pg_put32(uint8_t *p, uint32_t v)
{
    pg_put16(p, (uint16_t)(v >> 16));
    pg_put16(p + 2, (uint16_t)v);
}

void pg_write_pkt(const uint8_t *p, size_t len)
{
    struct pcap_pkthdr h = {.caplen = (bpf_u_int32)len, .len = (bpf_u_int32)len};
    h.ts.tv_sec = (time_t)(pg_now_us / 1000000);
    h.ts.tv_usec = (suseconds_t)(pg_now_us % 1000000);
    pcap_dump((u_char *)pg_dump, &h, p);
    pg_now_us += pg_step_us;
}

/* IPv4 header for proto and payload len; checksum filled. */
size_t pg_ip4(uint8_t *p, const char *src, const char *dst, uint8_t proto, size_t len)
{
    memset(p, 0, 20);
    p[0] = 0x45;
    pg_put16(p + 2, (uint16_t)(20 + len));
    p[8] = 64;
    p[9] = proto;
    inet_pton(AF_INET, src, p + 12);
    inet_pton(AF_INET, dst, p + 16);
    pg_put16(p + 10, ss_csum_fold(ss_csum_add(0, p, 20)));
    return 20;
}

/* A TCP header (no options unless mss) and len bytes of data. */
size_t pg_tcp(uint8_t *t, uint16_t sp, uint16_t dp, uint32_t seq, uint32_t ack,
                  uint8_t flags, uint16_t win, uint32_t len, uint16_t mss)
{
    size_t hl = mss ? 24 : 20;
    memset(t, 0, hl + len);
    pg_put16(t, sp);
    pg_put16(t + 2, dp);
    pg_put32(t + 4, seq);
    pg_put32(t + 8, ack);
    t[12] = (uint8_t)(hl / 4) << 4;
    t[13] = flags;
    pg_put16(t + 14, win);
    if (mss) {
        t[20] = 2, t[21] = 4;
        pg_put16(t + 22, mss);
    }
    memset(t + hl, 'd', len);
    return hl + len;
}

/* A -> B (dir 0) or B -> A (dir 1) between 10.0.0.1:1000 and 10.0.0.2:80. */
void pg_seg(int dir, uint32_t seq, uint32_t ack, uint8_t flags, uint16_t win, uint32_t len)
{
    uint8_t p[1600];
    size_t tl = pg_tcp(p + 20, dir ? 80 : 1000, dir ? 1000 : 80, seq, ack, flags, win, len,
                    (flags & SS_TCP_SYN) ? 1460 : 0);
    pg_ip4(p, dir ? "10.0.0.2" : "10.0.0.1", dir ? "10.0.0.1" : "10.0.0.2", 6, tl);
    pg_write_pkt(p, 20 + tl);
}

/* B -> A: an ACK carrying n SACK blocks (RFC 2018: two NOPs, kind 5),
 * each [blocks[i][0], blocks[i][1]). At most 4 blocks (40 option bytes). */
void pg_sack(uint32_t seq, uint32_t ack, uint16_t win, const uint32_t (*blocks)[2], int n)
{
    uint8_t p[128];
    uint8_t *t = p + 20;
    size_t ol = 4 + 8 * (size_t)n, hl = 20 + ol;
    pg_tcp(t, 80, 1000, seq, ack, SS_TCP_ACK, win, 0, 0);
    t[12] = (uint8_t)(hl / 4) << 4;
    t[20] = 1, t[21] = 1, t[22] = 5, t[23] = (uint8_t)(2 + 8 * n);
    for (int i = 0; i < n; i++) {
        pg_put32(t + 24 + 8 * i, blocks[i][0]);
        pg_put32(t + 28 + 8 * i, blocks[i][1]);
    }
    pg_ip4(p, "10.0.0.2", "10.0.0.1", 6, hl);
    pg_write_pkt(p, 20 + hl);
}

/* A router's ICMP error quoting A's segment seq. */
void pg_icmp_err(uint8_t type, uint8_t code, uint32_t seq)
{
    uint8_t p[128], q[64];
    size_t ql = pg_tcp(q + 20, 1000, 80, seq, 0, SS_TCP_ACK, 1000, 0, 0);
    pg_ip4(q, "10.0.0.1", "10.0.0.2", 6, ql);
    uint8_t *ic = p + 20;
    memset(ic, 0, 8);
    ic[0] = type;
    ic[1] = code;
    memcpy(ic + 8, q, 28);   /* IP header + 8 bytes, as RFC 792 quotes */
    pg_put16(ic + 2, ss_csum_fold(ss_csum_add(0, ic, 36)));
    pg_ip4(p, "10.0.0.254", "10.0.0.1", 1, 36);
    pg_write_pkt(p, 56);
}

void pg_seg6(int dir, uint32_t seq, uint32_t ack, uint8_t flags)
{
    uint8_t p[128];
    size_t tl = pg_tcp(p + 40, dir ? 443 : 2000, dir ? 2000 : 443, seq, ack, flags, 500, 0, 0);
    memset(p, 0, 40);
    p[0] = 0x60;
    pg_put16(p + 4, (uint16_t)tl);
    p[6] = 6;
    p[7] = 64;
    inet_pton(AF_INET6, dir ? "fd00::2" : "fd00::1", p + 8);
    inet_pton(AF_INET6, dir ? "fd00::1" : "fd00::2", p + 24);
    pg_write_pkt(p, 40 + tl);
}


/* Handshake, six back-to-back segments (the third lost), ACKs, a wait of
 * one second and the retransmission, the close, then 4 s of TIME-WAIT
 * until the capture's last packet (another connection's SYN). */
void pg_small_capture(const char *path)
{
    pcap_t *dead = pcap_open_dead(DLT_RAW, 65535);
    pg_dump = pcap_dump_open(dead, path);
    pg_now_us = 0;
    const uint8_t A = SS_TCP_ACK;
    pg_step_us = 100;
    pg_seg(0, 1000, 0, SS_TCP_SYN, 64000, 0);
    pg_seg(1, 5000, 1001, SS_TCP_SYN | A, 64000, 0);
    pg_seg(0, 1001, 5001, A, 64000, 0);
    for (int i = 0; i < 6; i++)
        if (i != 2)
            pg_seg(0, 1001 + 1000u * (unsigned)i, 5001, A, 64000, 1000);
    pg_seg(1, 5001, 3001, A, 64000, 0);
    pg_seg(1, 5001, 3001, A, 64000, 0);
    pg_seg(1, 5001, 3001, A, 64000, 0);
    pg_now_us += 1000000;
    pg_seg(0, 3001, 5001, A, 64000, 1000);
    pg_seg(1, 5001, 7001, A, 64000, 0);
    pg_seg(0, 7001, 5001, SS_TCP_FIN | A, 64000, 0);
    pg_seg(1, 5001, 7002, SS_TCP_FIN | A, 64000, 0);
    pg_seg(0, 7002, 5002, A, 64000, 0);
    pg_now_us += 4000000;
    uint8_t p[64];
    size_t tl = pg_tcp(p + 20, 1001, 80, 1, 0, SS_TCP_SYN, 1000, 0, 0);
    pg_ip4(p, "10.0.0.1", "10.0.0.2", 6, tl);
    pg_write_pkt(p, 20 + tl);
    pcap_dump_close(pg_dump);
    pcap_close(dead);
}

