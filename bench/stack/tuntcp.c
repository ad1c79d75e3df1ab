/* tuntcp: the least a sender on a TUN device must do to deliver TCP at
 * MTU 1500 into a kernel socket -- the floor for bench/stack/speed's
 * "stack -> kernel, no offloads", where tunperf's ceiling only forwards.
 *
 *   tuntcp NAME ADDR/PREFIX SECONDS [uring]
 *
 * Creates TUN device NAME (MTU 1500; the kernel's side is the first host of
 * the prefix), a kernel listener there and a thread that reads it to the
 * end with a 1 MiB buffer (as tcpperf recv does). From the second host it
 * opens one connection with hand-built segments (MSS 1460, window scaling;
 * no timestamps or SACK) and then sends 1,460-byte segments of zeros for
 * SECONDS: as many as the kernel's window takes, reading its ACKs as they
 * come (every one until the device is empty, as the stack does). No
 * congestion control, no buffer, no copy of a payload, a checksum over the
 * header only (a zero payload adds nothing to it): what is left is one
 * write(2) per segment, with the kernel's TCP receive inside it, and the
 * ACKs' reads. A segment the kernel does not take (none are expected) is
 * sent again from the first unacknowledged byte after 200 ms without
 * progress. With "uring" the segments of each window's worth are written
 * together, in one io_uring submission (ss_tun_txq), and the ACKs read in
 * io_uring rounds (ss_tun_rxq), as the stack's tunnet writes and reads:
 * the floor for a sender that batches its system calls.
 *
 * Prints "bytes B" (acknowledged), "seconds S", "segments N", "gbit G".
 * Needs CAP_NET_ADMIN. Benchmark tool: prints and exits itself. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sockstack/link.h"
#include "sockstack/stack.h"
#include "tunbench.h"

enum { MSS = 1460, PORT = 5001, WS = 7 };

static uint16_t sport; /* per run: an earlier run's connection may linger */

static uint32_t us, them; /* host order */

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* IPv4 + TCP header (+ opt) for a segment of paylen zero bytes; the
 * packet's length. */
static size_t build(uint8_t *p, uint32_t seq, uint32_t ack, uint8_t flags, const uint8_t *opt,
                    size_t olen, size_t paylen)
{
    size_t thl = 20 + olen, len = 20 + thl + paylen;
    uint32_t ps = tb_ipv4_tcp(p, len, us, them);
    uint8_t *t = p + 20;
    memset(t, 0, thl);
    tb_put16(t, sport);
    tb_put16(t + 2, PORT);
    tb_put32(t + 4, seq);
    tb_put32(t + 8, ack);
    t[12] = (uint8_t)((thl / 4) << 4);
    t[13] = flags;
    tb_put16(t + 14, 65535);
    memcpy(t + 20, opt, olen);
    tb_put16(t + 16, ss_csum_fold(ss_csum_add(ps, t, thl))); /* zeros add nothing */
    return len;
}

static void *reader(void *arg)
{
    int ls = *(int *)arg;
    int fd = accept(ls, NULL, NULL);
    static char buf[1 << 20];
    while (fd >= 0 && read(fd, buf, sizeof buf) > 0) {
    }
    return NULL;
}

struct ack {
    uint32_t ack, wnd;
    uint8_t flags;
    const uint8_t *opt;
    size_t olen;
    uint32_t seq;
};

/* With "uring": the ACKs are read in io_uring rounds, a batch at a time. */
static ss_tun_rxq *rxq;
static const uint8_t *batch[64];
static size_t batch_len[64];
static int batch_n, batch_i;

/* Read one packet for our port: 1, 0 when the device is empty, -1 on error. */
static int next_ack(int fd, uint8_t *buf, size_t cap, struct ack *a)
{
    for (;;) {
        const uint8_t *in = buf;
        ssize_t n;
        if (rxq) {
            if (batch_i == batch_n) {
                batch_n = ss_tun_rxq_read(rxq, batch, batch_len, 64);
                batch_i = 0;
                if (batch_n <= 0) {
                    n = batch_n;
                    batch_n = 0;
                    return n < 0 ? -1 : 0;
                }
            }
            in = batch[batch_i];
            n = (ssize_t)batch_len[batch_i++];
        } else {
            n = ss_tun_read(fd, buf, cap);
            if (n == -EAGAIN)
                return 0;
        }
        if (n < 40)
            return n < 0 ? -1 : 0;
        size_t ihl = (size_t)(in[0] & 15) * 4;
        const uint8_t *t = in + ihl;
        if (in[9] != 6 || (size_t)n < ihl + 20 || ((t[2] << 8) | t[3]) != sport ||
            (t[12] >> 4) < 5 || (size_t)n < ihl + (size_t)(t[12] >> 4) * 4)
            continue;
        a->seq = get32(t + 4);
        a->ack = get32(t + 8);
        a->flags = t[13];
        a->wnd = (uint32_t)(t[14] << 8 | t[15]);
        a->opt = t + 20;
        a->olen = (size_t)(t[12] >> 4) * 4 - 20;
        return 1;
    }
}

static void wait_in(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    poll(&p, 1, ms);
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5 || (argc == 5 && strcmp(argv[4], "uring"))) {
        fprintf(stderr, "usage: tuntcp NAME ADDR/PREFIX SECONDS [uring]\n");
        return 2;
    }
    char ifname[32];
    uint32_t base;
    unsigned prefix;
    if (tb_parse_net("tuntcp", argv[2], &base, &prefix) < 0)
        return 2;
    them = base + 1;
    us = base + 2;
    double seconds = atof(argv[3]);
    sport = (uint16_t)(40000 + getpid() % 20000);
    int fd = ss_tun_open_opts(argv[1], 0, ifname, sizeof ifname);
    struct in_addr kaddr = {htonl(them)};
    int rc = fd < 0 ? fd : ss_tun_configure(ifname, kaddr, prefix, 1500);
    if (rc < 0) {
        fprintf(stderr, "tuntcp: %s: %s\n", argv[1], strerror(-rc));
        return 1;
    }
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(PORT), .sin_addr = kaddr};
    int one = 1; /* an earlier run's connection may still hold the port */
    if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 1) < 0) {
        perror("tuntcp: listen");
        return 1;
    }
    pthread_t thr;
    pthread_create(&thr, NULL, reader, &ls);
    ss_tun_txq *txq = NULL;
    if (argc == 5 && (ss_tun_txq_new(fd, 0, &txq) < 0 || !ss_tun_txq_uring(txq) ||
                      ss_tun_rxq_new(fd, 1500, 64, NULL, 0, 0, &rxq) < 0 ||
                      !ss_tun_rxq_uring(rxq))) {
        fprintf(stderr, "tuntcp: io_uring is not available\n");
        return 1;
    }

    static uint8_t pkt[2048], in[65536];
    uint8_t syn_opt[8] = {2, 4, MSS >> 8, MSS & 0xff, 1, 3, 3, WS};
    uint32_t iss = 1000, una = iss + 1, nxt = iss + 1, rcv = 0, wnd = 0;
    int shift = 0;
    struct ack k;
    for (int tries = 0;; tries++) { /* SYN until SYN,ACK */
        if (tries == 50) {
            fprintf(stderr, "tuntcp: no SYN,ACK\n");
            return 1;
        }
        rc = ss_tun_write(fd, pkt, build(pkt, iss, 0, 0x02, syn_opt, sizeof syn_opt, 0));
        if (rc < 0) {
            fprintf(stderr, "tuntcp: write: %s\n", strerror(-rc));
            return 1;
        }
        wait_in(fd, 100);
        if (next_ack(fd, in, sizeof in, &k) == 1 && k.flags == 0x12 && k.ack == iss + 1)
            break;
    }
    rcv = k.seq + 1;
    for (size_t i = 0; i < k.olen;) { /* the kernel's window scale */
        uint8_t kind = k.opt[i];
        if (kind == 0)
            break;
        if (kind == 1) {
            i++;
            continue;
        }
        if (i + 1 >= k.olen || k.opt[i + 1] < 2)
            break;
        if (kind == 3 && k.opt[i + 1] == 3 && i + 2 < k.olen)
            shift = k.opt[i + 2] > 14 ? 14 : k.opt[i + 2];
        i += k.opt[i + 1];
    }
    wnd = k.wnd; /* a SYN's window is never scaled */
    memset(pkt, 0, sizeof pkt); /* the SYN's options out of the payload area */
    if ((rc = ss_tun_write(fd, pkt, build(pkt, nxt, rcv, 0x10, NULL, 0, 0))) < 0) {
        fprintf(stderr, "tuntcp: write: %s\n", strerror(-rc));
        return 1;
    }

    unsigned long long segments = 0, acked = 0;
    double t0 = tb_now_s(), end = t0 + seconds, progress = t0, t = t0;
    while (t < end) {
        while (nxt - una + MSS <= wnd) {
            size_t len = build(pkt, nxt, rcv, 0x10, NULL, 0, MSS);
            int wr = txq ? ss_tun_txq_put(txq, pkt, len) : ss_tun_write(fd, pkt, len);
            if (wr < 0) {
                fprintf(stderr, "tuntcp: write: %s\n", strerror(-wr));
                return 1;
            }
            nxt += MSS;
            segments++;
        }
        if (txq && (rc = ss_tun_txq_flush(txq)) < 0) {
            fprintf(stderr, "tuntcp: write: %s\n", strerror(-rc));
            return 1;
        }
        int r;
        bool got = false;
        while ((r = next_ack(fd, in, sizeof in, &k)) == 1) {
            if (k.flags & 0x04) {
                fprintf(stderr, "tuntcp: reset by the kernel\n");
                return 1;
            }
            if ((int32_t)(k.ack - una) > 0 && (int32_t)(k.ack - nxt) <= 0) {
                acked += k.ack - una;
                una = k.ack;
                got = true;
            }
            wnd = k.wnd << shift;
        }
        if (r < 0)
            return 1;
        t = tb_now_s();
        if (got) {
            progress = t;
        } else if (nxt - una + MSS > wnd) {
            wait_in(fd, 200);
            t = tb_now_s();
            if (t - progress > 0.2) { /* lost: from the first unacknowledged byte */
                nxt = una;
                progress = t;
            }
        }
    }
    double el = t - t0;
    printf("bytes %llu\nseconds %.6f\nsegments %llu\ngbit %.3f\n", acked, el, segments,
           acked * 8 / el / 1e9);
    return 0;
}
