/* tunperf: the TUN device's own ceiling, for bench/stack/run. A raw
 * read/write loop with no protocol work: packets written into the device
 * are forwarded by the kernel back out of it and read again.
 *
 *   tunperf NAME ADDR/PREFIX SIZE SECONDS [gso|uring] [QUEUES]
 *
 * Creates TUN device NAME, gives the kernel's side the first host of the
 * prefix (MTU 1500), and writes IPv4 TCP packets from the second host to
 * the third: the kernel routes them back into the device (the namespace
 * needs net.ipv4.ip_forward=1, rp_filter=0 and send_redirects=0; the
 * bench sets them). SIZE is the IPv4 packet size (at most 1500 without
 * gso). With "gso" the device carries a virtio-net header and offloads
 * (IFF_VNET_HDR, TUNSETOFFLOAD), and each packet is one TCP segment of
 * SIZE bytes with gso_size 1448 (as the stack sends with --offload): the
 * kernel forwards it whole. 64 packets are kept in flight per queue: each
 * packet read is counted and answered by one more written. QUEUES > 1
 * opens a multi-queue device (IFF_MULTI_QUEUE) with one thread per queue,
 * each with its own flow (source port), as one stack thread per queue
 * would run. With "uring" (SIZE at most 1500) each wake-up reads what the
 * device has in io_uring rounds (ss_tun_rxq) and writes as many in one
 * io_uring submission (ss_tun_txq), as the stack's tunnet reads and
 * writes: the ceiling for a program that batches its system calls.
 *
 * Prints "packets N", "bytes B" (IPv4 bytes read), "seconds S",
 * "pps X" and "gbit G" on stdout. Needs CAP_NET_ADMIN. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sockstack/link.h"
#include "sockstack/stack.h"
#include "tunbench.h"

#define INFLIGHT 64
#define MAXQ 8

static char ifname[32];
static size_t pkt_size;
static double seconds;
static int gso, uring;
static uint32_t src_addr, dst_addr;

struct worker {
    pthread_t thr;
    int fd, q;
    unsigned long long packets, bytes;
    double elapsed;
    int err;
};

/* An IPv4 TCP packet of len bytes (20 + 20 + payload), ACK, from
 * src_addr:sport to dst_addr:9; with gso the TCP checksum is left partial
 * (the pseudo-header sum), as the kernel expects with NEEDS_CSUM. */
static void build(uint8_t *p, size_t len, uint16_t sport)
{
    memset(p, 0, len);
    uint32_t ps = tb_ipv4_tcp(p, len, src_addr, dst_addr);
    uint8_t *t = p + 20;
    tb_put16(t, sport);
    tb_put16(t + 2, 9);
    tb_put32(t + 4, 1);
    tb_put32(t + 8, 1);
    t[12] = 5 << 4;
    t[13] = 0x10;
    tb_put16(t + 14, 65535);
    tb_put16(t + 16, gso ? ps : ss_csum_fold(ss_csum_add(ps, t, len - 20)));
}

static int put(struct worker *w, const uint8_t *hdr, const uint8_t *pkt)
{
    for (;;) {
        int rc = gso ? ss_tun_write2(w->fd, hdr, SS_VNET_HDR_LEN, pkt, pkt_size)
                     : ss_tun_write(w->fd, pkt, pkt_size);
        if (rc != -EAGAIN)
            return rc;
        struct pollfd p = {.fd = w->fd, .events = POLLOUT};
        poll(&p, 1, 100);
    }
}

/* The uring loop: read what the device has, write as many in one batch. */
static void *run_uring(struct worker *w, const uint8_t *pkt, double t0, double end)
{
    ss_tun_txq *q;
    ss_tun_rxq *rq = NULL;
    if ((w->err = ss_tun_txq_new(w->fd, 0, &q)) < 0)
        return NULL;
    /* Reads in io_uring rounds into MTU-sized slots, as the tunnet reads. */
    if ((w->err = ss_tun_rxq_new(w->fd, 1500, INFLIGHT, NULL, 0, 0, &rq)) < 0 ||
        !ss_tun_txq_uring(q) || !ss_tun_rxq_uring(rq)) {
        w->err = w->err < 0 ? w->err : -ENOSYS;
        ss_tun_txq_free(q);
        ss_tun_rxq_free(rq);
        return NULL;
    }
    for (unsigned rounds = 0;; rounds++) {
        const uint8_t *pk[INFLIGHT];
        size_t len[INFLIGHT];
        int k = ss_tun_rxq_read(rq, pk, len, INFLIGHT);
        size_t got_n = k > 0 ? (size_t)k : 0;
        for (size_t i = 0; i < got_n; i++) {
            w->packets++;
            w->bytes += len[i];
        }
        if (got_n == 0) {
            struct pollfd p = {.fd = w->fd, .events = POLLIN};
            if (poll(&p, 1, 1000) == 0) {
                w->err = -ETIMEDOUT;
                break;
            }
            continue;
        }
        if ((rounds & 15) == 0 && tb_now_s() >= end)
            break;
        for (size_t i = 0; i < got_n; i++)
            ss_tun_txq_put(q, pkt, pkt_size);
        if ((w->err = ss_tun_txq_flush(q)) < 0)
            break;
    }
    w->elapsed = tb_now_s() - t0;
    ss_tun_txq_free(q);
    ss_tun_rxq_free(rq);
    return NULL;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    static __thread uint8_t pkt[65536], hdr[SS_VNET_HDR_LEN], in[65536 + SS_VNET_HDR_LEN];
    build(pkt, pkt_size, (uint16_t)(40000 + w->q));
    ss_vnet_hdr_put(hdr, pkt, pkt_size, gso ? 1448 : 0, gso);
    for (int i = 0; i < INFLIGHT; i++)
        if ((w->err = put(w, hdr, pkt)) < 0)
            return NULL;
    double t0 = tb_now_s(), end = t0 + seconds;
    unsigned long long n = 0;
    if (uring)
        return run_uring(w, pkt, t0, end);
    while (1) {
        ssize_t got = ss_tun_read(w->fd, in, sizeof in);
        if (got == -EAGAIN) {
            struct pollfd p = {.fd = w->fd, .events = POLLIN};
            if (poll(&p, 1, 1000) == 0) {
                w->err = -ETIMEDOUT; /* the loop lost its packets */
                return NULL;
            }
            continue;
        }
        if (got < 0) {
            w->err = (int)got;
            return NULL;
        }
        w->packets++;
        w->bytes += (unsigned long long)got - (gso ? SS_VNET_HDR_LEN : 0);
        if ((++n & 63) == 0 && tb_now_s() >= end)
            break;
        if ((w->err = put(w, hdr, pkt)) < 0)
            return NULL;
    }
    w->elapsed = tb_now_s() - t0;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: tunperf NAME ADDR/PREFIX SIZE SECONDS [gso|uring] [QUEUES]\n");
        return 2;
    }
    uint32_t base;
    unsigned prefix;
    if (tb_parse_net("tunperf", argv[2], &base, &prefix) < 0)
        return 2;
    src_addr = base + 2;
    dst_addr = base + 3;
    pkt_size = strtoul(argv[3], NULL, 10);
    seconds = atof(argv[4]);
    int argi = 5;
    if (argc > argi && !strcmp(argv[argi], "gso")) {
        gso = 1;
        argi++;
    } else if (argc > argi && !strcmp(argv[argi], "uring")) {
        uring = 1;
        argi++;
    }
    int queues = argc > argi ? atoi(argv[argi]) : 1;
    if (pkt_size < 40 || pkt_size > (gso ? 65535u : 1500u) || queues < 1 || queues > MAXQ) {
        fprintf(stderr, "tunperf: SIZE 40..%u, QUEUES 1..%d\n", gso ? 65535 : 1500, MAXQ);
        return 2;
    }
    unsigned opts = (gso ? SS_TUN_VNET : 0) | (queues > 1 ? SS_TUN_MULTI_QUEUE : 0);
    struct worker w[MAXQ];
    memset(w, 0, sizeof w);
    for (int q = 0; q < queues; q++) {
        w[q].q = q;
        w[q].fd = ss_tun_open_opts(argv[1], opts, ifname, sizeof ifname);
        int rc = w[q].fd < 0 ? w[q].fd : gso ? ss_tun_set_offload(w[q].fd, true) : 0;
        if (rc < 0) {
            fprintf(stderr, "tunperf: %s: %s\n", argv[1], strerror(-rc));
            return 1;
        }
    }
    struct in_addr kaddr = {htonl(base + 1)};
    int rc = ss_tun_configure(ifname, kaddr, prefix, 1500);
    if (rc < 0) {
        fprintf(stderr, "tunperf: configure %s: %s\n", ifname, strerror(-rc));
        return 1;
    }
    usleep(100000); /* let the kernel's own first packets (none for IPv4) pass */
    for (int q = 0; q < queues; q++)
        pthread_create(&w[q].thr, NULL, run, &w[q]);
    unsigned long long packets = 0, bytes = 0;
    double elapsed = 0;
    for (int q = 0; q < queues; q++) {
        pthread_join(w[q].thr, NULL);
        if (w[q].err) {
            fprintf(stderr, "tunperf: queue %d: %s\n", q, strerror(-w[q].err));
            return 1;
        }
        packets += w[q].packets;
        bytes += w[q].bytes;
        if (w[q].elapsed > elapsed)
            elapsed = w[q].elapsed;
    }
    printf("packets %llu\nbytes %llu\nseconds %.6f\npps %.0f\ngbit %.3f\n", packets, bytes,
           elapsed, packets / elapsed, bytes * 8 / elapsed / 1e9);
    return 0;
}
