#include "pkt.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

uint16_t tp_csum(const void *buf, size_t len, uint32_t sum)
{
    const uint8_t *p = buf;
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (len & 1)
        sum += (uint32_t)(p[len - 1] << 8);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }

size_t tp_udp(uint8_t *out, size_t cap, uint32_t src, uint16_t sport,
              uint32_t dst, uint16_t dport, const void *payload, size_t plen)
{
    size_t len = 20 + 8 + plen;
    if (len > cap || len > 65535)
        return 0;
    memset(out, 0, 28);
    out[0] = 0x45;
    put16(out + 2, (uint16_t)len);
    put16(out + 4, 0x1234);  /* id */
    put16(out + 6, 0x4000);  /* DF */
    out[8] = 64;             /* TTL */
    out[9] = 17;             /* UDP */
    put32(out + 12, src);
    put32(out + 16, dst);
    put16(out + 10, tp_csum(out, 20, 0));
    uint8_t *u = out + 20;
    put16(u, sport);
    put16(u + 2, dport);
    put16(u + 4, (uint16_t)(8 + plen));
    memcpy(u + 8, payload, plen);
    /* Pseudo-header: src, dst, zero+proto, UDP length. */
    uint32_t sum = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) +
                   17 + (uint32_t)(8 + plen);
    uint16_t c = tp_csum(u, 8 + plen, sum);
    put16(u + 6, c ? c : 0xffff);
    return len;
}

static long count_lines(const char *cmd)
{
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    long n = 0;
    int ch;
    while ((ch = fgetc(f)) != EOF)
        if (ch == '\n')
            n++;
    if (pclose(f) != 0)
        return -1;
    return n;
}

int tp_tshark_check_from_kernel(const char *path, const char *kernel_addr,
                                long *count, long *bad)
{
    char cmd[1024], tcp_bad[256];
    snprintf(cmd, sizeof cmd, "tshark -n -r '%s' 2>/dev/null", path);
    *count = count_lines(cmd);
    if (kernel_addr)
        snprintf(tcp_bad, sizeof tcp_bad,
                 "(tcp.checksum.status==bad && !(tcp.checksum.ffff && ip.src==%s))",
                 kernel_addr);
    else
        snprintf(tcp_bad, sizeof tcp_bad, "tcp.checksum.status==bad");
    snprintf(cmd, sizeof cmd,
             "tshark -n -r '%s' -o ip.check_checksum:TRUE -o udp.check_checksum:TRUE "
             "-o tcp.check_checksum:TRUE -Y 'ip.checksum.status==bad || "
             "udp.checksum.status==bad || %s || "
             "icmp.checksum.status==bad || _ws.malformed' 2>/dev/null",
             path, tcp_bad);
    *bad = count_lines(cmd);
    return *count < 0 || *bad < 0 ? -1 : 0;
}

int tp_tshark_check(const char *path, long *count, long *bad)
{
    return tp_tshark_check_from_kernel(path, NULL, count, bad);
}
