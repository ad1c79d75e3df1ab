/* relay: an impaired path between two packet ports, in real time.
 *
 * Two sides, A (0) and B (1). Each side is a TUN device (its fd, read and
 * written by the relay) or an application (packets come in through
 * ss_relay_inject and go out through a callback: this is how `stack up`
 * puts the user-space stack behind the same path). Every IPv4 packet from
 * one side crosses the seeded link model of link.h (ss_sim: loss, delay,
 * jitter, bandwidth, drop-tail queue, reordering, duplication,
 * corruption), one parameter set per direction, to the other side.
 *
 * Time is CLOCK_MONOTONIC in µs, read once per wake-up; the reactor's
 * timer wakes the relay at the model's next delivery. The model draws its
 * random numbers per packet in arrival order, so for a given sequence of
 * arrivals a seed gives the same fates. Memory is bounded by the model's
 * queue limit per direction: beyond it packets are dropped and counted.
 *
 * Nothing here prints. Calls return 0 or a negative errno.
 */
#ifndef SOCKSTACK_RELAY_H
#define SOCKSTACK_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "sockstack/link.h"
#include "sockstack/reactor.h"

#include "sockstack/api.h"
SS_API_BEGIN

typedef struct ss_relay ss_relay;

/* Deliver one packet to application side `side`. */
typedef void (*ss_relay_deliver_fn)(void *arg, int side, const uint8_t *pkt, size_t len);

struct ss_relay_cfg {
    int fd[2];                    /* TUN fd of side A / B, or -1: application */
    struct ss_sim_params link[2]; /* [0]: A -> B, [1]: B -> A */
    uint64_t seed;                /* the model's PRNG seed */
    ss_pcap *pcap[2];             /* optional tap of side A / B: what that side
                                     sends and what it receives, wall clock */
    ss_relay_deliver_fn deliver;  /* needed for an application side */
    void *deliver_arg;
};

/* Both sides -1, links unimpaired (ss_sim_params_init) but for an MTU of
 * 65535 (the relay forwards whatever the devices give it), seed 1. */
void ss_relay_cfg_default(struct ss_relay_cfg *cfg);

/* Per direction (0: A -> B, 1: B -> A). */
struct ss_relay_stats {
    uint64_t received;      /* packets taken from the source side */
    uint64_t not_ipv4;      /* of those, not IPv4: not forwarded */
    uint64_t too_big;       /* of those, longer than the link's MTU */
    struct ss_sim_stats link; /* the model's fates: lost, dropped_queue,
                                 duplicated, reordered, corrupted, delivered */
    uint64_t forwarded;     /* packets written to (or delivered to) the
                                 destination side, copies included */
    uint64_t forwarded_bytes;
    uint64_t write_dropped; /* the destination device refused (queue full) */
};

/* Start relaying in loop. The relay does not own the fds or the taps.
 * Returns 0, -EINVAL (bad parameters, or an application side without a
 * deliver callback) or -ENOMEM. */
int ss_relay_new(ss_loop *loop, const struct ss_relay_cfg *cfg, ss_relay **out);
/* Stop watching the fds; packets still on the link are dropped. */
void ss_relay_free(ss_relay *r);

/* Application side `side` sends a packet (copied) into the path. Returns
 * 0 (also when the model drops it: counted), -EINVAL or -ENOMEM. */
int ss_relay_inject(ss_relay *r, int side, const uint8_t *pkt, size_t len);

void ss_relay_get_stats(const ss_relay *r, int dir, struct ss_relay_stats *out);
/* Packets on the link now (both directions). */
size_t ss_relay_pending(const ss_relay *r);

/* Open TUN device `name` (as ss_tun_open) inside network namespace netns
 * (a name under /run/netns, or a path such as /proc/PID/ns/net; NULL: the
 * current one), then give the kernel's side addr/prefix (when addr is not
 * NULL; ss_tun_configure) or just bring it up, and return to the caller's
 * namespace. The fd keeps working after the return. Returns the fd or
 * -errno. */
int ss_relay_tun_open(const char *netns, const char *name, const struct in_addr *addr,
                      unsigned prefix, unsigned mtu, char *ifname, size_t ifname_cap);

SS_API_END

#endif
