/* link: where the user-space stack's IPv4 packets come from and go to.
 *
 * Three pieces, each independent of the protocol core:
 *   tun  - a Linux TUN device (IFF_TUN | IFF_NO_PI): one read() is one IPv4
 *          packet. The fd is non-blocking, for the reactor. Optionally with
 *          a virtio-net header before each packet (IFF_VNET_HDR) and
 *          offloads (TUNSETOFFLOAD): checksums and TCP segments of up to
 *          64 KiB both ways.
 *   sim  - an in-process link between two endpoints (0 and 1) with delay,
 *          jitter, bandwidth, loss, duplication, reordering and corruption,
 *          driven by a seeded PRNG on a virtual clock: the same seed and the
 *          same input give the same output, byte for byte.
 *   pcap - a tap that writes packets to a pcap file (LINKTYPE_RAW: the
 *          packet starts at the IPv4 header), timestamps from the link clock.
 *
 * All times are microseconds. Nothing here prints; calls return 0 (or a
 * count) or a negative errno.
 */
#ifndef SOCKSTACK_LINK_H
#define SOCKSTACK_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "sockstack/api.h"
SS_API_BEGIN

/* ---- PRNG: xoshiro256** seeded by splitmix64 ----------------------------
 * Written out here so that simulated runs are reproducible on any machine
 * and libc (rand() and random() are not specified to be). */
struct ss_prng {
    uint64_t s[4];
};

void ss_prng_seed(struct ss_prng *r, uint64_t seed);
uint64_t ss_prng_next(struct ss_prng *r);
/* Fill buf with successive outputs, each as 8 bytes in native order (the
 * last one cut to what is left): the same bytes as calling ss_prng_next
 * per 8 bytes, several times faster. */
void ss_prng_fill(struct ss_prng *r, void *buf, size_t len);
/* Uniform in [0, n); n == 0 gives 0. Unbiased (rejection). */
uint64_t ss_prng_below(struct ss_prng *r, uint64_t n);
/* Uniform double in [0, 1) with 53 random bits. */
double ss_prng_unit(struct ss_prng *r);

/* ---- tun ----------------------------------------------------------------- */

/* Open (or create) TUN device `name` ("" or NULL: the kernel picks tunN) in
 * IFF_TUN | IFF_NO_PI mode. The actual name is written to ifname (at least
 * IFNAMSIZ bytes). Returns a non-blocking, close-on-exec fd or -errno. */
int ss_tun_open(const char *name, char *ifname, size_t ifname_cap);

/* Give the kernel's side of the device address `kernel_addr`/`prefix` and
 * bring it up (ioctl, no exec). The kernel then routes the prefix to the
 * device, so the stack's own address inside the prefix is reachable.
 * IPv6 is switched off on the device (best effort) so that only IPv4 comes
 * out of it. mtu 0 keeps the device's MTU. Returns 0 or -errno. */
int ss_tun_configure(const char *ifname, struct in_addr kernel_addr,
                     unsigned prefix, unsigned mtu);

/* Set the MTU (0: keep it), switch IPv6 off (best effort) and bring the
 * device up, without an address: the tail of ss_tun_configure, for a
 * device whose addresses and routes are set elsewhere. 0 or -errno. */
int ss_tun_up(const char *ifname, unsigned mtu);

/* The device's transmit queue (kernel -> reader) in packets
 * (SIOCSIFTXQLEN). 0 or -errno. */
int ss_tun_set_txqueuelen(const char *ifname, unsigned packets);

/* The MTU of the TUN device open on fd: > 0, or -errno (e.g. -EBADFD or
 * -EINVAL when fd is not a TUN device). */
int ss_tun_fd_mtu(int fd);

/* Bring the device down (best effort before close). Returns 0 or -errno. */
int ss_tun_down(const char *ifname);

/* ss_tun_open with options: SS_TUN_VNET puts a virtio-net header of
 * SS_VNET_HDR_LEN bytes before every packet read or written (IFF_VNET_HDR,
 * TUNSETVNETHDRSZ), which ss_tun_set_offload needs; SS_TUN_MULTI_QUEUE
 * opens one queue of a multi-queue device (IFF_MULTI_QUEUE: open the same
 * name again for the next queue). */
enum { SS_TUN_VNET = 1, SS_TUN_MULTI_QUEUE = 2 };
int ss_tun_open_opts(const char *name, unsigned opts, char *ifname, size_t ifname_cap);

/* Offloads (fd opened with SS_TUN_VNET): the kernel may hand us TCP
 * segments of up to 64 KiB (its GSO/GRO, gso_size in the header) with the
 * checksum left partial, and takes ours the same way (TSO4/TSO6, CSUM).
 * on = false switches them off again. 0 or -errno. */
int ss_tun_set_offload(int fd, bool on);

/* The virtio-net header (struct virtio_net_hdr_mrg_rxbuf: 12 bytes, so
 * the IPv4 header after it is 4-byte aligned), in native byte order (a
 * TUN device's default). */
#define SS_VNET_HDR_LEN 12

/* What a received header says. */
struct ss_vnet_rx {
    bool csum_ok;          /* DATA_VALID (checked) or NEEDS_CSUM (partial: the
                            * packet never left this host): trust it */
    bool csum_partial;     /* NEEDS_CSUM: csum_start/csum_offset are valid */
    uint16_t csum_start, csum_offset;
    uint16_t gso_size;     /* > 0: a coalesced TCP segment of gso_size pieces */
};
/* Decode hdr: 0, or -EINVAL for a header this driver does not know (a
 * GSO type other than TCPv4/TCPv6). */
int ss_vnet_hdr_get(const uint8_t *hdr, struct ss_vnet_rx *out);

/* Fill hdr for the IPv4 packet pkt we send: csum_partial marks its
 * TCP/UDP checksum as partial (NEEDS_CSUM at the IP header's end);
 * gso_size > 0 asks the kernel to cut the TCP payload into pieces of that
 * size (GSO_TCPV4). */
void ss_vnet_hdr_put(uint8_t *hdr, const uint8_t *pkt, size_t len, uint16_t gso_size,
                     bool csum_partial);

/* Complete a partial checksum in place (what the kernel does for a
 * NEEDS_CSUM packet): the Internet checksum of pkt[start, len) stored at
 * pkt + start + offset. For capture files, which should show the packet as
 * it goes out. -EINVAL when the positions are outside the packet. */
int ss_csum_complete(uint8_t *pkt, size_t len, size_t start, size_t offset);

/* Write hdr (hdr_len bytes) and pkt as one packet (writev): 0, -EAGAIN
 * (dropped), or -errno. */
int ss_tun_write2(int fd, const void *hdr, size_t hdr_len, const void *pkt, size_t len);
/* Write the iovcnt pieces as one packet: 0, -EAGAIN (dropped), or -errno. */
int ss_tun_writev(int fd, const struct iovec *iov, int iovcnt);

/* Read one packet: its length, -EAGAIN when none is ready, or -errno. */
ssize_t ss_tun_read(int fd, void *buf, size_t cap);
/* Write one packet: 0, -EAGAIN when the device queue is full (the packet is
 * dropped, as a link would), or -errno. */
int ss_tun_write(int fd, const void *pkt, size_t len);

/* ---- tun_uring: batched writes and reads ------------------------------ */

/* Packets for one TUN device (or any fd where one write is one packet),
 * queued by copy and written together by ss_tun_txq_flush: with io_uring
 * (one system call for the batch) where the kernel allows, else one
 * write(2) each, in order either way. At most SS_TUN_TXQ_SLOTS packets of
 * at most SS_TUN_TXQ_MTU bytes wait; a put into a full queue flushes it
 * first. Memory: SS_TUN_TXQ_SLOTS * SS_TUN_TXQ_MTU bytes, taken at new. */
#define SS_TUN_TXQ_SLOTS 256
#define SS_TUN_TXQ_MTU 1536
enum { SS_TUN_TXQ_NO_URING = 1 };   /* flags: write(2) only */
typedef struct ss_tun_txq ss_tun_txq;
struct ss_tun_txq_stats {
    uint64_t packets, bytes;   /* written */
    uint64_t dropped;          /* a write that failed (device queue full, ...) */
    int last_err;              /* -errno of the last failed write */
};
/* 0 or -ENOMEM. Never fails for want of io_uring: it falls back. */
int ss_tun_txq_new(int fd, unsigned flags, ss_tun_txq **out);
void ss_tun_txq_free(ss_tun_txq *q);
/* Queue a copy of pkt: 0, or -EMSGSIZE above SS_TUN_TXQ_MTU. */
int ss_tun_txq_put(ss_tun_txq *q, const void *pkt, size_t len);
/* Write what is queued; the queue is empty after. 0 when every write
 * succeeded, else the -errno of the last that failed (each is counted). */
int ss_tun_txq_flush(ss_tun_txq *q);
size_t ss_tun_txq_pending(const ss_tun_txq *q);
/* Whether flushes go through io_uring. */
bool ss_tun_txq_uring(const ss_tun_txq *q);
void ss_tun_txq_get_stats(const ss_tun_txq *q, struct ss_tun_txq_stats *out);

/* Reads in batches (ss_tun_rxq): up to nslots packets per call, each of at
 * most slot_size bytes, read with io_uring in one system call per round
 * (RWF_NOWAIT: an empty device answers -EAGAIN at once), else with one
 * read(2) each. A round that fills every read it tried is followed by one
 * twice as large; the first round's size follows what the last call found
 * (at least 2). A packet longer than slot_size (the device's MTU grew; an
 * IPv4 packet whose total length exceeds what the read copied) is dropped
 * and counted. Memory: nslots * slot_size, taken at new unless the
 * caller gives it. */
#define SS_TUN_RXQ_SLOTS_MAX 64
typedef struct ss_tun_rxq ss_tun_rxq;
struct ss_tun_rxq_stats {
    uint64_t submits;     /* io_uring submissions (system calls) */
    uint64_t truncated;   /* packets longer than a slot, dropped */
};
/* buf: the caller's memory for the slots (16-byte aligned, at least
 * nslots * slot_size rounded up to 16 each, living as long as the queue),
 * or NULL to allocate it here. flags: SS_TUN_TXQ_NO_URING. 0, -EINVAL
 * (slot_size < 64, nslots 0 or above the maximum, buf too small or not
 * aligned) or -ENOMEM. */
int ss_tun_rxq_new(int fd, size_t slot_size, size_t nslots, void *buf, size_t buf_len,
                   unsigned flags, ss_tun_rxq **out);
void ss_tun_rxq_free(ss_tun_rxq *q);
/* Read what the device has, up to max packets: their number (0: none),
 * pointers into the queue's slots (valid until the next read) and lengths
 * in pkts[] and lens[]; -errno when a read failed and none came. */
int ss_tun_rxq_read(ss_tun_rxq *q, const uint8_t **pkts, size_t *lens, size_t max);
bool ss_tun_rxq_uring(const ss_tun_rxq *q);
void ss_tun_rxq_get_stats(const ss_tun_rxq *q, struct ss_tun_rxq_stats *out);

/* ---- sim ----------------------------------------------------------------- */

/* Parameters of one direction of a simulated link. Probabilities are in
 * [0, 1]. Zero everywhere is a perfect, instant, infinitely fast wire. */
struct ss_sim_params {
    uint64_t delay_us;     /* one-way propagation delay */
    uint64_t jitter_us;    /* extra delay, uniform in [0, jitter_us]; does
                              not reorder (arrivals keep their order) */
    uint64_t bandwidth_bps;/* serialisation rate in bit/s; 0 = unlimited */
    double loss;           /* probability a packet is dropped */
    double dup;            /* probability a packet is delivered twice */
    double reorder;        /* probability a packet is held back by
                              reorder_us, so later packets overtake it */
    uint64_t reorder_us;   /* hold-back of a reordered packet */
    double corrupt;        /* probability one random bit is flipped */
    size_t queue_limit;    /* packets held per direction (waiting to be sent
                              or in flight); beyond it: drop-tail */
    size_t mtu;            /* longest packet accepted (-EMSGSIZE beyond) */
};

/* Defaults from config.h: no impairment, SS_SIM_QUEUE_LIMIT, SS_SIM_MTU. */
void ss_sim_params_init(struct ss_sim_params *p);

/* Per-direction counters. Every packet offered to ss_sim_send is counted
 * in exactly one of lost / dropped_queue / (delivered, once it arrives). */
struct ss_sim_stats {
    uint64_t sent;          /* packets offered */
    uint64_t sent_bytes;
    uint64_t lost;          /* dropped by the loss probability */
    uint64_t dropped_queue; /* dropped because the queue was full */
    uint64_t duplicated;    /* extra copies made */
    uint64_t reordered;     /* packets held back */
    uint64_t corrupted;     /* packets with a flipped bit */
    uint64_t delivered;     /* packets handed out (copies included) */
    uint64_t delivered_bytes;
};

typedef struct ss_sim ss_sim;

/* What a tap sees: a packet entering the link, its fate, its arrival.
 * id numbers the packets offered to the link (from 0); a duplicate keeps
 * its original's id, so SEND, then LOST / QDROP or one or more DELIVERs,
 * tell each packet's story. SEND shows the bytes as sent; DELIVER as they
 * arrive (corrupted, perhaps). */
enum ss_sim_tap_point {
    SS_SIM_TAP_SEND = 1,
    SS_SIM_TAP_DELIVER = 2,
    SS_SIM_TAP_LOST = 4,  /* dropped by the loss probability */
    SS_SIM_TAP_QDROP = 8, /* dropped because the queue was full */
};
typedef void (*ss_sim_tap_cb)(void *arg, enum ss_sim_tap_point point, int from,
                              uint64_t id, uint64_t now_us, const uint8_t *pkt,
                              size_t len);

/* A link between endpoints 0 and 1. params[0] governs 0->1, params[1]
 * governs 1->0 (NULL: both defaults). Returns 0, -EINVAL or -ENOMEM. */
int ss_sim_new(ss_sim **out, const struct ss_sim_params params[2], uint64_t seed);
void ss_sim_free(ss_sim *s);

/* Change direction dir's parameters from now on (packets already on the
 * link keep their fate). Returns 0 or -EINVAL. */
int ss_sim_set_params(ss_sim *s, int dir, const struct ss_sim_params *p);

/* Called for every packet at the chosen points (OR of ss_sim_tap_point). */
void ss_sim_set_tap(ss_sim *s, unsigned points, ss_sim_tap_cb cb, void *arg);

/* One packet's fate on the link. The PRNG decides it from the parameters;
 * a fate callback (ss_sim_set_fate) may decide instead, packet by packet:
 * that is how a fuzzer steers the link. The queue limit still applies. */
struct ss_sim_fate {
    bool lose;               /* dropped (counted as lost) */
    bool dup;                /* a second copy right behind */
    uint64_t hold_us;        /* > 0: held back this long, so later packets
                                overtake it (reordering) */
    uint64_t extra_delay_us; /* added to the wire delay; order is kept, so
                                the packets behind it wait too */
    bool corrupt;            /* byte corrupt_at % len ^= corrupt_mask */
    size_t corrupt_at;
    uint8_t corrupt_mask;    /* 0 leaves the byte as it is */
};
/* Fill *f (it holds the PRNG's decision) and return true to use it, or
 * return false to keep the PRNG's decision. from is the sending endpoint. */
typedef bool (*ss_sim_fate_fn)(void *arg, int from, const uint8_t *pkt, size_t len,
                               struct ss_sim_fate *f);
/* Let fn decide every packet's fate from now on (NULL: the PRNG again).
 * The PRNG still draws for every packet, so a fallback stays seeded. */
void ss_sim_set_fate(ss_sim *s, ss_sim_fate_fn fn, void *arg);

/* Endpoint `from` (0 or 1) puts a packet on the link at now_us. The packet
 * is copied. Returns 0 (also when the link loses it: that is the link's
 * business, counted in the stats), -EMSGSIZE, -EINVAL, or -ENOMEM. now_us
 * must not go backwards. */
int ss_sim_send(ss_sim *s, int from, uint64_t now_us, const void *pkt, size_t len);

/* Earliest time a packet is due for delivery, or UINT64_MAX if none. */
uint64_t ss_sim_next_deadline(const ss_sim *s);

/* Take the next packet due at or before now_us (earliest first; ties in
 * send order). Writes its destination endpoint to *to and its arrival time
 * to *at_us (may be NULL). Returns its length, 0 when nothing is due, or
 * -EMSGSIZE if cap is too small (the packet stays queued). */
ssize_t ss_sim_deliver(ss_sim *s, uint64_t now_us, int *to, uint64_t *at_us,
                       void *buf, size_t cap);

/* Counters of direction dir (0: 0->1, 1: 1->0). */
void ss_sim_get_stats(const ss_sim *s, int dir, struct ss_sim_stats *out);
/* Packets currently held by the link (both directions). */
size_t ss_sim_pending(const ss_sim *s);

/* ---- pcap ---------------------------------------------------------------- */

typedef struct ss_pcap ss_pcap;

/* Create path (truncating) as a pcap file of raw IPv4 packets (DLT_RAW).
 * Returns 0, -ENOMEM, or -errno of the failed open. */
int ss_pcap_open(ss_pcap **out, const char *path);
/* Append one packet stamped time_us (microseconds since the Unix epoch, or
 * of the virtual clock). Returns 0 or -errno. */
int ss_pcap_write(ss_pcap *p, uint64_t time_us, const void *pkt, size_t len);
/* Flush buffered records to the file. Returns 0 or -errno. */
int ss_pcap_flush(ss_pcap *p);
/* Packets written so far. */
uint64_t ss_pcap_count(const ss_pcap *p);
/* Flush and close; NULL is fine. */
void ss_pcap_close(ss_pcap *p);

SS_API_END

#endif
