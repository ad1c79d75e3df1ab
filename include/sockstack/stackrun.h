/* stackrun: what joins the sans-I/O stack to a link and to time.
 *
 *   simnet - two stacks over a simulated link on a virtual clock. The loop
 *            jumps straight to the next deadline (a stack timer or a packet
 *            arrival), so a lossy transfer of megabytes takes milliseconds
 *            of real time, and a seed gives the same run every time.
 *   tunnet - one stack on a TUN device inside the reactor: the TUN fd
 *            readable -> ss_stack_input; a reactor timer set to the stack's
 *            next deadline -> ss_stack_poll.
 *   xfer   - a bulk transfer written against the stack's own socket calls
 *            (sender and receiver hashing what they send and get with
 *            SHA-256). Services (echo, discard, source) are apps/ on the
 *            server framework, over the stack's backend of sock.h
 *            (sock_stack.h), as `stack up --serve` runs them.
 *
 * Nothing here prints. Calls return 0 (or a count) or a negative errno.
 */
#ifndef SOCKSTACK_STACKRUN_H
#define SOCKSTACK_STACKRUN_H

#include <stdbool.h>
#include <stdint.h>

#include "sockstack/link.h"
#include "sockstack/reactor.h"
#include "sockstack/stack.h"

#include "sockstack/api.h"
SS_API_BEGIN

/* ---- simnet -------------------------------------------------------------- */

typedef struct ss_simnet ss_simnet;

struct ss_simnet_cfg {
    struct ss_sim_params link[2]; /* [0]: node 0 -> 1, [1]: node 1 -> 0 */
    uint64_t seed;                /* drives the link and the stacks' ISN
                                     secrets: same seed, same run */
    struct ss_stack_cfg stack[2]; /* output is set by simnet; an all-zero
                                     isn_secret is derived from the seed */
    ss_pcap *pcap;                /* optional: every packet as sent */
    ss_sim_tap_cb tap;            /* optional: every packet's story on the
                                     link (all ss_sim_tap_point points) */
    void *tap_arg;
    /* optional: an application driven by the loop. Called at every step
     * of ss_simnet_run after the packets due were delivered and before the
     * stacks are polled, so what its socket calls send goes out in the
     * same step. Returns the latest time (> now_us) it wants to be called
     * again, UINT64_MAX for "only when something else happens". */
    uint64_t (*app)(void *arg, uint64_t now_us);
    void *app_arg;
};

/* Defaults: perfect link, stacks from ss_stack_cfg_default with addresses
 * 10.0.0.1 (node 0) and 10.0.0.2 (node 1), seed 1. */
void ss_simnet_cfg_default(struct ss_simnet_cfg *cfg);

int ss_simnet_new(const struct ss_simnet_cfg *cfg, ss_simnet **out);
void ss_simnet_free(ss_simnet *n);

ss_stack *ss_simnet_stack(ss_simnet *n, int node);
ss_sim *ss_simnet_link(ss_simnet *n);
/* Virtual time now, µs since the start of the run. */
uint64_t ss_simnet_now(const ss_simnet *n);

/* Return true to stop the run. */
typedef bool (*ss_simnet_done_fn)(void *arg);

/* Run the event loop: deliver due packets, poll both stacks, jump to the
 * next deadline. Returns 0 when done(arg) is true or nothing is left to
 * happen (no packet in flight, no timer armed); -ETIMEDOUT when virtual
 * time would pass limit_us; -ELOOP if time stops advancing (a stack asks
 * to be polled again and again at the same instant). */
int ss_simnet_run(ss_simnet *n, ss_simnet_done_fn done, void *arg,
                  uint64_t limit_us);

/* ---- tunnet -------------------------------------------------------------- */

typedef struct ss_tunnet ss_tunnet;

struct ss_tunnet_stats {
    uint64_t rx_packets, rx_bytes, tx_packets, tx_bytes;
    uint64_t tx_dropped; /* device queue full or write error */
    uint64_t tx_flushes; /* batches written (one system call each with io_uring) */
    uint64_t rx_truncated; /* packets above the MTU the device had at start: dropped */
    uint64_t rx_rounds;    /* io_uring read submissions (0: read(2) per packet) */
    /* With SS_TUNNET_OFFLOAD: packets longer than one segment (the
     * kernel's GRO/GSO, our TSO) each way, and packets whose checksum the
     * virtio-net header vouched for (not computed by the stack). */
    uint64_t rx_gso, tx_gso, rx_csum_skipped;
};

/* The link model between the device and the stack (a relay, relay.h):
 * p[0] governs the stack's output (stack -> device), p[1] its input. */
struct ss_tunnet_link {
    struct ss_sim_params p[2];
    uint64_t seed;
};

/* Flags of ss_tunnet_new. SS_TUNNET_OFFLOAD: tun_fd was opened with
 * SS_TUN_VNET and ss_tun_set_offload(fd, true); the stack then takes
 * segments of up to 64 KiB (GRO), sends them (TSO: cfg.tso_max) and leaves
 * TCP checksums to the kernel both ways. Not with a link model. */
enum { SS_TUNNET_OFFLOAD = 1, SS_TUNNET_NO_URING = 2 };
/* The device is read in rounds of io_uring reads (ss_tun_rxq, link.h),
 * and without offloads the stack's packets are gathered per wake-up and
 * written in one io_uring submission (ss_tun_txq), or with one
 * read(2)/write(2) each where the kernel refuses io_uring;
 * SS_TUNNET_NO_URING reads and writes each packet with its own system
 * call, a packet written as it is made. */

/* Run a stack on tun_fd (from ss_tun_open) in loop. cfg->output is
 * replaced; pcap (optional) gets every packet both ways as the stack sends
 * and receives it, wall-clock stamped (with offloads: checksums completed,
 * a GSO packet as one); link (optional, NULL: a direct wire) puts the
 * link model between device and stack. The tunnet does not own tun_fd or
 * pcap. -EINVAL for SS_TUNNET_OFFLOAD with a link. */
int ss_tunnet_new(ss_loop *loop, int tun_fd, const struct ss_stack_cfg *cfg,
                  ss_pcap *pcap, const struct ss_tunnet_link *link, unsigned flags,
                  ss_tunnet **out);
/* Stop watching the fd and the timer, free the stack. */
void ss_tunnet_free(ss_tunnet *t);

ss_stack *ss_tunnet_stack(ss_tunnet *t);
/* The stack's clock: CLOCK_MONOTONIC in µs. Use it for socket calls. */
uint64_t ss_tunnet_now(const ss_tunnet *t);
/* Poll the stack soon (after socket calls made outside its callbacks). */
void ss_tunnet_kick(ss_tunnet *t);
void ss_tunnet_get_stats(const ss_tunnet *t, struct ss_tunnet_stats *out);
/* Whether its output goes through io_uring (see SS_TUNNET_NO_URING). */
bool ss_tunnet_uring(const ss_tunnet *t);
/* The relay of a tunnet with a link model (for its statistics), or NULL. */
const struct ss_relay *ss_tunnet_relay(const ss_tunnet *t);

/* ---- xfer ---------------------------------------------------------------- */

/* A bulk transfer: the sender connects, sends `bytes` bytes of a pattern
 * derived from `seed`, then shuts down its side (or, with wait_eof, first
 * waits for the peer's end of stream) and closes once it has read the
 * peer's EOF; everything it reads is hashed too. The receiver accepts one
 * connection, reads to EOF, hashes, optionally echoes, and closes. */
struct ss_xfer {
    /* set by the caller */
    uint64_t bytes;     /* sender: bytes to send */
    uint64_t seed;      /* sender: pattern seed */
    bool wait_eof;      /* sender: close only after the peer's EOF */
    bool echo;          /* receiver: send back what arrives */
    /* results */
    uint64_t sent, received;
    unsigned char sha_sent[32], sha_received[32];
    bool connected, eof, closed; /* closed: our handle is released */
    int error;          /* first error (negative errno), 0 if none */
    uint64_t t_connected_us, t_eof_us, t_closed_us;
    /* internal */
    ss_stack *st;
    int sd, lsd;
    uint64_t (*now_fn)(void *);
    void *now_arg;
    void *sha_out, *sha_in; /* EVP_MD_CTX */
    struct ss_prng rng;
    unsigned char chunk[16384];
    size_t chunk_len, chunk_off;
    bool shut;
};

/* Start the sender: connect to raddr:rport. 0 or -errno. */
int ss_xfer_start_sender(struct ss_xfer *x, ss_stack *st,
                         uint64_t (*now_fn)(void *), void *now_arg,
                         uint32_t raddr, uint16_t rport);
/* Start the receiver: listen on port and take one connection. */
int ss_xfer_start_receiver(struct ss_xfer *x, ss_stack *st,
                           uint64_t (*now_fn)(void *), void *now_arg,
                           uint16_t port);
/* True when the transfer is over: closed, or failed with an error. */
bool ss_xfer_finished(const struct ss_xfer *x);
/* Release the hash contexts (and abort the connection if still open). */
void ss_xfer_cleanup(struct ss_xfer *x);

/* Fill buf with the pattern that ss_xfer sends for seed, continuing rng. */
void ss_xfer_pattern(struct ss_prng *rng, unsigned char *buf, size_t len);

SS_API_END

#endif
