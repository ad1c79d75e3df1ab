/* libFuzzer target: two stacks over a simulated link whose impairments,
 * seed and transfer size come from the input. Invariant (the one the
 * stacklink-robust tests check for 600 fixed seeds): the run ends by itself
 * (no livelock, no endless retransmission), and the transfer either
 * delivers every byte exactly once and in order, or ends in an error after
 * which what arrived is a correct prefix of what was sent.
 *
 * Input: u64 seed, then one byte each for loss, dup, reorder, corrupt
 * (0..255 -> 0..30%), delay (ms), jitter (ms), bandwidth (0: unlimited,
 * else N * 100 kbit/s), queue (1 + N packets), and u16 bytes to send. */
#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "sockstack/stackrun.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct ctx {
    ss_simnet *net;
    struct ss_xfer tx, rx;
};

static uint64_t now_fn(void *arg) { return ss_simnet_now(arg); }

static bool done(void *arg)
{
    struct ctx *c = arg;
    return ss_xfer_finished(&c->tx) && ss_xfer_finished(&c->rx);
}

static double prob(uint8_t b) { return b / 255.0 * 0.3; }

/* Is got (SHA-256 of the first n bytes received) the digest of the first
 * n bytes of the sender's pattern? */
static bool is_prefix(uint64_t seed, uint64_t total, uint64_t n, const unsigned char *got)
{
    struct ss_prng r;
    ss_prng_seed(&r, seed);
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    EVP_DigestInit_ex(m, EVP_sha256(), NULL);
    unsigned char buf[16384], md[32];
    while (n) {
        size_t chunk = total < sizeof buf ? (size_t)total : sizeof buf;
        ss_xfer_pattern(&r, buf, chunk);
        size_t take = n < chunk ? (size_t)n : chunk;
        EVP_DigestUpdate(m, buf, take);
        n -= take;
        total -= chunk;
    }
    unsigned int l;
    EVP_DigestFinal_ex(m, md, &l);
    EVP_MD_CTX_free(m);
    return memcmp(md, got, 32) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 18)
        return 0;
    uint64_t seed;
    memcpy(&seed, data, 8);
    const uint8_t *p = data + 8;
    struct ss_sim_params lp;
    ss_sim_params_init(&lp);
    lp.loss = prob(p[0]);
    lp.dup = prob(p[1]);
    lp.reorder = prob(p[2]);
    lp.corrupt = prob(p[3]);
    lp.delay_us = p[4] * 1000ull;
    lp.jitter_us = p[5] * 1000ull;
    lp.bandwidth_bps = p[6] * 100000ull;
    lp.queue_limit = 1 + (size_t)p[7];
    uint64_t bytes = (uint64_t)(p[8] << 8 | p[9]);

    struct ss_simnet_cfg cfg;
    ss_simnet_cfg_default(&cfg);
    cfg.link[0] = cfg.link[1] = lp;
    cfg.seed = seed;
    struct ctx *c = calloc(1, sizeof *c);
    if (!c || ss_simnet_new(&cfg, &c->net) < 0) {
        free(c);
        return 0;
    }
    c->rx = (struct ss_xfer){.sd = -1, .lsd = -1};
    c->tx = (struct ss_xfer){.bytes = bytes, .seed = seed, .sd = -1, .lsd = -1};
    if (ss_xfer_start_receiver(&c->rx, ss_simnet_stack(c->net, 1), now_fn, c->net, 7) < 0 ||
        ss_xfer_start_sender(&c->tx, ss_simnet_stack(c->net, 0), now_fn, c->net,
                             0x0a000002, 7) < 0)
        abort();
    /* A day of virtual time is far beyond every retry chain. */
    int rc = ss_simnet_run(c->net, done, c, 86400ull * 1000000);
    if (rc == 0)
        rc = ss_simnet_run(c->net, NULL, NULL, 86400ull * 1000000);
    if (rc == -ETIMEDOUT && done(c))
        rc = 0;
    if (rc != 0)
        abort(); /* livelock or a transfer that never ends */
    if (!ss_xfer_finished(&c->tx))
        abort(); /* the sender was never told how it ended */
    ss_xfer_cleanup(&c->tx);
    ss_xfer_cleanup(&c->rx);
    bool exact = c->tx.sent == bytes && c->rx.received == bytes &&
                 !memcmp(c->tx.sha_sent, c->rx.sha_received, 32);
    if (!c->tx.error && !c->rx.error && !exact)
        abort(); /* "success" with wrong bytes */
    if (!is_prefix(seed, bytes, c->rx.received, c->rx.sha_received))
        abort(); /* bytes out of order, duplicated or corrupted */
    ss_simnet_free(c->net);
    free(c);
    return 0;
}
