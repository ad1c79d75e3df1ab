/* tunnet: one stack on a TUN device, driven by the reactor.
 *
 *   TUN fd readable -> read up to a batch of packets -> ss_stack_input each
 *   -> service(): ss_stack_poll, then arm one reactor timer for the stack's
 *   next deadline (rounded up to the reactor's millisecond clock).
 *   timer fires / ss_tunnet_kick -> service().
 * The stack's clock is CLOCK_MONOTONIC in µs, read once per service.
 *
 * With a link model (ss_tunnet_link), a relay (relay.h) sits between:
 *   stack output -> ss_relay_inject(side 0) -> model -> TUN write
 *   TUN readable (the relay's) -> model -> on_relay_deliver: copy into the
 *   batch -> deferred: ss_stack_input_batch, service().
 *
 * With offloads (SS_TUNNET_OFFLOAD) each packet has a virtio-net header:
 * received ones say whether the kernel vouches for the checksum (passed
 * to the stack as SS_RX_CSUM_OK) and may be segments of up to 64 KiB; the
 * stack's TCP segments go out with a header that leaves their checksum to
 * the kernel and, above one MSS, asks it to cut them (gso_size).
 *
 * Per wake-up: up to SS_TUN_BATCH packets are read into one preallocated
 * buffer (no allocation per packet) and given to the stack as one batch
 * (one ACK per batch, one clock read, one poll). A TUN device gives one
 * packet per read(2) and takes one per write(2). The packets are read in
 * rounds of io_uring reads (ss_tun_rxq, link/tun_uring.c: one system call
 * for many packets, into buf). Without offloads the stack's packets are
 * copied into a ss_tun_txq as they are made and all written at the end of
 * service(), in one io_uring submission: one system call per wake-up
 * instead of one per packet, and the segments reach the kernel's socket
 * back to back, so its reader wakes once for many. With offloads a packet
 * goes out as it is made, straight from the stack's buffers (writev of
 * header + pieces: no copy); those are few and large. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sockstack/config.h"
#include "sockstack/link.h"
#include "sockstack/relay.h"
#include "sockstack/stackrun.h"

struct ss_tunnet {
    ss_loop *loop;
    int fd;
    ss_stack *st;
    ss_pcap *pcap;
    ss_relay *relay; /* NULL: the stack is wired to the device directly */
    ss_tun_txq *txq; /* plain output, batched; NULL with offloads or a relay */
    ss_tun_rxq *rxq; /* plain input, batched; with txq */
    bool vnet;       /* SS_TUNNET_OFFLOAD: a virtio-net header on every packet */
    size_t n_in, used_in; /* packets from the relay waiting in buf */
    ss_timer timer;
    ss_defer defer;
    uint64_t now;
    struct ss_tunnet_stats stats;
    const uint8_t *pkts[SS_TUN_BATCH];
    size_t lens[SS_TUN_BATCH];
    uint8_t flags[SS_TUN_BATCH];  /* SS_RX_* */
    _Alignas(16) uint8_t buf[SS_TUN_BATCH_BYTES + SS_VNET_HDR_LEN];
    uint8_t scratch[SS_PCAP_SNAPLEN]; /* a packet whose checksum pcap completes */
};

static uint64_t clock_us(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* pcap gets the packet as it is on the wire: a partial checksum (the
 * kernel completes it) is completed in a copy. */
static void capture(ss_tunnet *t, const uint8_t *pkt, size_t len, bool partial, size_t start,
                    size_t off)
{
    if (partial && len <= sizeof t->scratch) {
        memcpy(t->scratch, pkt, len);
        if (ss_csum_complete(t->scratch, len, start, off) == 0)
            pkt = t->scratch;
    }
    ss_pcap_write(t->pcap, clock_us(CLOCK_REALTIME), pkt, len);
}

static int counted(ss_tunnet *t, int rc, size_t len, uint16_t gso)
{
    if (rc < 0) {
        t->stats.tx_dropped++;
        return rc;
    }
    t->stats.tx_packets++;
    t->stats.tx_bytes += len;
    t->stats.tx_gso += gso != 0;
    return 0;
}

static int transmit(ss_tunnet *t, const uint8_t *pkt, size_t len, uint16_t gso, bool partial)
{
    if (t->pcap) {
        size_t ihl = (size_t)(pkt[0] & 15) * 4;
        capture(t, pkt, len, partial, ihl, pkt[9] == IPPROTO_TCP ? 16 : 6);
    }
    int rc;
    if (t->relay) {
        rc = ss_relay_inject(t->relay, 0, pkt, len);
    } else if (t->vnet) {
        uint8_t h[SS_VNET_HDR_LEN];
        ss_vnet_hdr_put(h, pkt, len, gso, partial);
        rc = ss_tun_write2(t->fd, h, sizeof h, pkt, len);
    } else if (t->txq) {
        return ss_tun_txq_put(t->txq, pkt, len); /* counted when written */
    } else {
        rc = ss_tun_write(t->fd, pkt, len);
    }
    return counted(t, rc, len, gso);
}

static int on_output(void *arg, const uint8_t *pkt, size_t len)
{
    return transmit(arg, pkt, len, 0, false);
}

/* A TCP segment in pieces (headers, then the payload where it is in the
 * send buffer): one writev behind the virtio-net header, no copy. */
static int on_output_offload(void *arg, const struct iovec *iov, int iovcnt, uint16_t gso_size,
                             bool csum_partial)
{
    ss_tunnet *t = arg;
    struct iovec v[4];
    size_t len = 0;
    if (iovcnt < 1 || iovcnt > 3)
        return -EINVAL;
    for (int i = 0; i < iovcnt; i++) {
        v[1 + i] = iov[i];
        len += iov[i].iov_len;
    }
    const uint8_t *pkt = iov[0].iov_base;
    if (t->pcap && len <= sizeof t->scratch) {
        size_t at = 0;   /* pcap wants it whole: gathered into scratch */
        for (int i = 0; i < iovcnt; i++) {
            memcpy(t->scratch + at, iov[i].iov_base, iov[i].iov_len);
            at += iov[i].iov_len;
        }
        size_t ihl = (size_t)(pkt[0] & 15) * 4;
        if (csum_partial)
            ss_csum_complete(t->scratch, len, ihl, 16);
        ss_pcap_write(t->pcap, clock_us(CLOCK_REALTIME), t->scratch, len);
    }
    uint8_t h[SS_VNET_HDR_LEN];
    ss_vnet_hdr_put(h, pkt, len, gso_size, csum_partial);
    v[0] = (struct iovec){h, sizeof h};
    return counted(t, ss_tun_writev(t->fd, v, iovcnt + 1), len, gso_size);
}

static void service(ss_tunnet *t)
{
    uint64_t deadline = UINT64_MAX;
    /* A deadline already due means "poll me again now" (callbacks queued
     * more work); a few rounds settle it, then the timer takes over. */
    for (int i = 0; i < 8; i++) {
        t->now = clock_us(CLOCK_MONOTONIC);
        deadline = ss_stack_poll(t->st, t->now);
        if (deadline > t->now)
            break;
    }
    if (t->txq && ss_tun_txq_pending(t->txq)) {
        ss_tun_txq_flush(t->txq);
        t->stats.tx_flushes++;
    }
    if (deadline == UINT64_MAX) {
        ss_timer_stop(t->loop, &t->timer);
        return;
    }
    uint64_t delay_ms = deadline > t->now ? (deadline - t->now + 999) / 1000 : 0;
    ss_timer_start(t->loop, &t->timer, delay_ms);
}

/* One packet read into slot (got bytes; with offloads a virtio-net header
 * first): counted and put in the batch at *n, or skipped. */
static void take_in(ss_tunnet *t, const uint8_t *slot, size_t got, size_t *n)
{
    size_t hl = t->vnet ? SS_VNET_HDR_LEN : 0;
    if (got < hl + 20)
        return;   /* no IPv4 header (after the virtio-net one) */
    const uint8_t *pkt = slot + hl;
    size_t len = got - hl;
    struct ss_vnet_rx vr = {0};
    if (hl && ss_vnet_hdr_get(slot, &vr) < 0)
        return;   /* a GSO type we do not know (not IPv4 TCP) */
    t->stats.rx_packets++;
    t->stats.rx_bytes += len;
    t->stats.rx_gso += vr.gso_size != 0;
    t->stats.rx_csum_skipped += vr.csum_ok;
    if (t->pcap)
        capture(t, pkt, len, vr.csum_partial, vr.csum_start, vr.csum_offset);
    t->pkts[*n] = pkt;
    t->lens[*n] = len;
    t->flags[(*n)++] = vr.csum_ok ? SS_RX_CSUM_OK : 0;
}

/* Read what the device has (up to a batch) and give it to the stack as one
 * batch, so that its ACKs aggregate (RFC 9293 MUST-58): in io_uring rounds
 * (t->rxq), else one read(2) each, packed into buf. */
static void on_readable(ss_loop *loop, int fd, unsigned events, void *arg)
{
    ss_tunnet *t = arg;
    size_t used = 0, n = 0, hl = t->vnet ? SS_VNET_HDR_LEN : 0;
    if (t->rxq) {
        const uint8_t *slot[SS_TUN_BATCH];
        size_t got[SS_TUN_BATCH];
        int k = ss_tun_rxq_read(t->rxq, slot, got, SS_TUN_BATCH);
        for (int i = 0; i < k; i++)
            take_in(t, slot[i], got[i], &n);
    }
    while (!t->rxq && n < SS_TUN_BATCH && sizeof t->buf - used >= SS_TUN_BUF + hl) {
        uint8_t *slot = t->buf + used;
        ssize_t got = ss_tun_read(fd, slot, SS_TUN_BUF + hl);
        if (got <= 0)
            break;
        take_in(t, slot, (size_t)got, &n);
        used += ((size_t)got + 15) & ~(size_t)15;   /* the next IPv4 header 4-aligned */
    }
    if (n) {
        t->now = clock_us(CLOCK_MONOTONIC);
        ss_stack_input_batch_flags(t->st, t->now, t->pkts, t->lens, t->flags, n);
    }
    /* The stack's output goes after the sockets' deferred callbacks of
     * this loop iteration (sock_stack.c runs them as deferred tasks, queued
     * by the batch above, so this one comes after them): what they send
     * leaves in this wake-up, not after one more epoll_wait, and a
     * callback's kick finds the task already queued. */
    ss_loop_defer(t->loop, &t->defer);
}

/* Give the packets the relay delivered to the stack as one batch. */
static void flush_in(ss_tunnet *t)
{
    if (!t->n_in)
        return;
    t->now = clock_us(CLOCK_MONOTONIC);
    ss_stack_input_batch(t->st, t->now, t->pkts, t->lens, t->n_in);
    t->n_in = t->used_in = 0;
}

static void on_relay_deliver(void *arg, int side, const uint8_t *pkt, size_t len)
{
    ss_tunnet *t = arg;
    if (t->n_in == SS_TUN_BATCH || sizeof t->buf - t->used_in < len)
        flush_in(t);
    t->stats.rx_packets++;
    t->stats.rx_bytes += len;
    if (t->pcap)
        ss_pcap_write(t->pcap, clock_us(CLOCK_REALTIME), pkt, len);
    memcpy(t->buf + t->used_in, pkt, len);
    t->pkts[t->n_in] = t->buf + t->used_in;
    t->lens[t->n_in++] = len;
    t->used_in += len;
    ss_loop_defer(t->loop, &t->defer);
}

static void on_timer(ss_loop *loop, ss_timer *timer, void *arg) { service(arg); }

static void on_defer(ss_loop *loop, void *arg)
{
    flush_in(arg);
    service(arg);
}

int ss_tunnet_new(ss_loop *loop, int tun_fd, const struct ss_stack_cfg *cfg,
                  ss_pcap *pcap, const struct ss_tunnet_link *link, unsigned flags,
                  ss_tunnet **out)
{
    if ((flags & SS_TUNNET_OFFLOAD) && link)
        return -EINVAL;
    ss_tunnet *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->loop = loop;
    t->fd = tun_fd;
    t->pcap = pcap;
    t->now = clock_us(CLOCK_MONOTONIC);
    struct ss_stack_cfg sc = *cfg;
    sc.output = on_output;
    sc.output_ctx = t;
    sc.defer_user_output = true;
    t->vnet = flags & SS_TUNNET_OFFLOAD;
    if (t->vnet) {
        sc.output_offload = on_output_offload;
        sc.tso_max = SS_STACK_TSO_MAX;
        sc.tx_csum_offload = true;
    }
    int rc = ss_stack_new(&sc, &t->st);
    if (rc < 0) {
        free(t);
        return rc;
    }
    ss_timer_init(&t->timer, on_timer, t);
    ss_defer_init(&t->defer, on_defer, t);
    if (link) {
        struct ss_relay_cfg rc_cfg;
        ss_relay_cfg_default(&rc_cfg);
        rc_cfg.fd[1] = tun_fd;
        rc_cfg.link[0] = link->p[0];
        rc_cfg.link[1] = link->p[1];
        rc_cfg.seed = link->seed;
        rc_cfg.deliver = on_relay_deliver;
        rc_cfg.deliver_arg = t;
        rc = ss_relay_new(loop, &rc_cfg, &t->relay);
    } else {
        rc = ss_loop_io_add(loop, tun_fd, SS_READ, on_readable, t);
        if (rc == 0 && !(flags & SS_TUNNET_NO_URING)) {
            /* Read slots of the device's MTU (of the largest packet with
             * offloads, or when fd is not a TUN device: a socket in a
             * test, a UDP link), in buf, which the read(2) loop then does
             * not use; writes batched without offloads. */
            size_t hl = t->vnet ? SS_VNET_HDR_LEN : 0;
            int mtu = t->vnet ? -1 : ss_tun_fd_mtu(tun_fd);
            size_t slot = mtu > 0 ? (size_t)mtu : SS_TUN_BUF + hl;
            size_t nslots = sizeof t->buf / ((slot + 15) & ~(size_t)15);
            if (nslots > SS_TUN_BATCH)
                nslots = SS_TUN_BATCH;
            if ((!t->vnet && (rc = ss_tun_txq_new(tun_fd, 0, &t->txq)) < 0) ||
                (rc = ss_tun_rxq_new(tun_fd, slot, nslots, t->buf, sizeof t->buf, 0,
                                     &t->rxq)) < 0) {
                ss_tun_txq_free(t->txq);
                ss_loop_io_del(loop, tun_fd);
            }
        }
    }
    if (rc < 0) {
        ss_stack_free(t->st);
        free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void ss_tunnet_free(ss_tunnet *t)
{
    if (!t)
        return;
    if (t->relay)
        ss_relay_free(t->relay);
    else
        ss_loop_io_del(t->loop, t->fd);
    if (t->txq) {
        ss_tun_txq_flush(t->txq); /* what the last poll made, e.g. a RST */
        ss_tun_txq_free(t->txq);
    }
    ss_tun_rxq_free(t->rxq);
    ss_timer_stop(t->loop, &t->timer);
    ss_loop_defer_cancel(t->loop, &t->defer);
    ss_stack_free(t->st);
    free(t);
}

ss_stack *ss_tunnet_stack(ss_tunnet *t) { return t->st; }
uint64_t ss_tunnet_now(const ss_tunnet *t) { return t->now; }
void ss_tunnet_kick(ss_tunnet *t) { ss_loop_defer(t->loop, &t->defer); }
void ss_tunnet_get_stats(const ss_tunnet *t, struct ss_tunnet_stats *out)
{
    *out = t->stats;
    if (t->txq) {
        struct ss_tun_txq_stats q;
        ss_tun_txq_get_stats(t->txq, &q);
        out->tx_packets += q.packets;
        out->tx_bytes += q.bytes;
        out->tx_dropped += q.dropped;
    }
    if (t->rxq) {
        struct ss_tun_rxq_stats r;
        ss_tun_rxq_get_stats(t->rxq, &r);
        out->rx_truncated = r.truncated;
        out->rx_rounds = r.submits;
    }
}

bool ss_tunnet_uring(const ss_tunnet *t) { return t->txq && ss_tun_txq_uring(t->txq); }
const ss_relay *ss_tunnet_relay(const ss_tunnet *t) { return t->relay; }
