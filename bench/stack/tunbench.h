/* What bench/stack's raw TUN tools (tunperf, tuntcp) share: the clock,
 * big-endian stores, the ADDR/PREFIX argument and an IPv4 header built by
 * hand. Header-only; benchmark code, not library code. */
#ifndef SS_BENCH_TUNBENCH_H
#define SS_BENCH_TUNBENCH_H

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sockstack/stack.h"

static inline double tb_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline void tb_put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void tb_put32(uint8_t *p, uint32_t v)
{
    tb_put16(p, v >> 16);
    tb_put16(p + 2, v & 0xffff);
}

/* "ADDR/PREFIX" -> the prefix's network address (host order) and length;
 * -1 after a message naming tool. */
static inline int tb_parse_net(const char *tool, const char *arg, uint32_t *base,
                               unsigned *prefix)
{
    char net[64];
    snprintf(net, sizeof net, "%s", arg);
    char *slash = strchr(net, '/');
    struct in_addr a;
    if (!slash || (*slash = '\0', inet_pton(AF_INET, net, &a)) != 1) {
        fprintf(stderr, "%s: '%s' is not ADDR/PREFIX\n", tool, arg);
        return -1;
    }
    *prefix = (unsigned)atoi(slash + 1);
    if (*prefix < 8 || *prefix > 30) {
        fprintf(stderr, "%s: prefix /%u: 8 to 30\n", tool, *prefix);
        return -1;
    }
    *base = ntohl(a.s_addr) & ~(uint32_t)0 << (32 - *prefix);
    return 0;
}

/* An IPv4 header (20 bytes, DF, TTL 64, TCP) for a packet of len bytes,
 * with its checksum; and the TCP pseudo-header's sum for tcp_len bytes. */
static inline uint32_t tb_ipv4_tcp(uint8_t *p, size_t len, uint32_t src, uint32_t dst)
{
    memset(p, 0, 20);
    p[0] = 0x45;
    tb_put16(p + 2, (uint32_t)len);
    tb_put16(p + 6, 0x4000);
    p[8] = 64;
    p[9] = 6;
    tb_put32(p + 12, src);
    tb_put32(p + 16, dst);
    tb_put16(p + 10, ss_csum_fold(ss_csum_add(0, p, 20)));
    uint32_t ps = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + 6 +
                  (uint32_t)(len - 20);
    ps = (ps & 0xffff) + (ps >> 16);
    return (ps & 0xffff) + (ps >> 16);
}

#endif
