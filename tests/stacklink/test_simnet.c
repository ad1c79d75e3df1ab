/* Two stacks over the simulated link: every transfer either delivers every
 * byte exactly once and in order, or ends with a clean error, and none
 * hangs (bounded by virtual time). Same seed, same run. */
#include <criterion/criterion.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pkt.h"
#include "sockstack/err.h"
#include "sockstack/stackrun.h"

#define LIMIT_US (900ull * 1000000) /* virtual: longer than every RTO chain */
#define XFER_BYTES 40000

struct outcome {
    int run_rc;          /* ss_simnet_run */
    bool finished;       /* both ends released their handles */
    bool tx_finished;    /* the sender did */
    bool exact;          /* all bytes, SHA-256 equal */
    bool prefix;         /* what arrived is a prefix of what was sent */
    int tx_err, rx_err;
    uint64_t received, vt;
    unsigned char digest[32]; /* of every packet on the link, for determinism */
    int late;
};

struct ctx {
    ss_simnet *net;
    struct ss_xfer tx, rx;
    EVP_MD_CTX *wire;
    int late; /* tap events at another time than the loop's */
};

static uint64_t now_fn(void *arg) { return ss_simnet_now(arg); }

static bool done(void *arg)
{
    struct ctx *c = arg;
    return ss_xfer_finished(&c->tx) && ss_xfer_finished(&c->rx);
}

static void tap(void *arg, enum ss_sim_tap_point pt, int from, uint64_t id,
                uint64_t now, const uint8_t *pkt, size_t len)
{
    struct ctx *c = arg;
    /* The loop is where the link says it is: a packet goes out at the
     * current instant and is handed over exactly at its arrival time. */
    if (ss_simnet_now(c->net) != now)
        c->late++;
    if (!c->wire)
        return;
    uint64_t hdr[4] = {(uint64_t)pt, (uint64_t)from, id, now};
    EVP_DigestUpdate(c->wire, hdr, sizeof hdr);
    EVP_DigestUpdate(c->wire, pkt, len);
}

/* SHA-256 of the first n bytes of the sender's pattern for seed. */
static void pattern_digest(uint64_t seed, uint64_t n, unsigned char out[32])
{
    struct ss_prng r;
    ss_prng_seed(&r, seed);
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    EVP_DigestInit_ex(m, EVP_sha256(), NULL);
    unsigned char buf[16384];
    /* The sender draws its pattern in 16 KiB chunks; follow the same cut. */
    uint64_t left = n, total = XFER_BYTES;
    while (left) {
        size_t chunk = total < sizeof buf ? (size_t)total : sizeof buf;
        ss_xfer_pattern(&r, buf, chunk);
        size_t take = left < chunk ? (size_t)left : chunk;
        EVP_DigestUpdate(m, buf, take);
        left -= take;
        total -= chunk;
    }
    unsigned int l;
    EVP_DigestFinal_ex(m, out, &l);
    EVP_MD_CTX_free(m);
}

/* One transfer of XFER_BYTES from node 0 to node 1 over cfg's link.
 * With wire, every packet's story goes into o.digest (for determinism). */
static struct outcome transfer_with(struct ss_simnet_cfg *cfg, const char *pcap_path,
                                    bool wire)
{
    struct outcome o = {0};
    struct ctx *c = calloc(1, sizeof *c);
    if (wire) {
        c->wire = EVP_MD_CTX_new();
        EVP_DigestInit_ex(c->wire, EVP_sha256(), NULL);
    }
    ss_pcap *pcap = NULL;
    if (pcap_path)
        cr_assert_eq(ss_pcap_open(&pcap, pcap_path), 0);
    uint64_t seed = cfg->seed;
    cfg->tap = tap;
    cfg->tap_arg = c;
    cfg->pcap = pcap;
    cr_assert_eq(ss_simnet_new(cfg, &c->net), 0);
    c->rx = (struct ss_xfer){.sd = -1, .lsd = -1};
    c->tx = (struct ss_xfer){.bytes = XFER_BYTES, .seed = seed, .sd = -1, .lsd = -1};
    cr_assert_eq(ss_xfer_start_receiver(&c->rx, ss_simnet_stack(c->net, 1), now_fn,
                                        c->net, 7000), 0);
    cr_assert_eq(ss_xfer_start_sender(&c->tx, ss_simnet_stack(c->net, 0), now_fn,
                                      c->net, 0x0a000002, 7000), 0);
    o.run_rc = ss_simnet_run(c->net, done, c, LIMIT_US);
    if (o.run_rc == 0) /* FIN exchange and TIME-WAIT run out too */
        o.run_rc = ss_simnet_run(c->net, NULL, NULL, LIMIT_US);
    if (o.run_rc == -ETIMEDOUT && done(c))
        o.run_rc = 0; /* only TIME-WAIT was left */
    o.vt = ss_simnet_now(c->net);
    o.late = c->late;
    o.finished = done(c);
    o.tx_finished = ss_xfer_finished(&c->tx);
    ss_xfer_cleanup(&c->tx);
    ss_xfer_cleanup(&c->rx);
    o.tx_err = c->tx.error;
    o.rx_err = c->rx.error;
    o.received = c->rx.received;
    o.exact = c->tx.sent == XFER_BYTES && c->rx.received == XFER_BYTES &&
              !memcmp(c->tx.sha_sent, c->rx.sha_received, 32);
    unsigned char want[32];
    pattern_digest(seed, c->rx.received, want);
    o.prefix = !memcmp(want, c->rx.sha_received, 32);
    if (c->wire) {
        unsigned int l;
        EVP_DigestFinal_ex(c->wire, o.digest, &l);
        EVP_MD_CTX_free(c->wire);
    }
    ss_simnet_free(c->net);
    ss_pcap_close(pcap);
    free(c);
    return o;
}

#ifndef SS_ROBUST
static struct outcome transfer(const struct ss_sim_params *p, uint64_t seed,
                               const char *pcap_path)
{
    struct ss_simnet_cfg cfg;
    ss_simnet_cfg_default(&cfg);
    cfg.link[0] = cfg.link[1] = *p;
    cfg.seed = seed;
    return transfer_with(&cfg, pcap_path, true);
}
#endif

static struct ss_sim_params link_params(void)
{
    struct ss_sim_params p;
    ss_sim_params_init(&p);
    p.delay_us = 5000;
    return p;
}

#ifdef SS_ROBUST
/* The simulated-link matrix: 100 seeds for each impairment, for each
 * congestion-control algorithm. Every transfer must deliver every byte
 * exactly once and in order, or end in a clean error (the run ended by
 * itself, the sender was told, and what arrived is a correct prefix).
 * The test asserts the exact count of each outcome per case, so that a
 * change that turns transfers into errors (or errors into hangs) shows. */

/* The algorithms to loop over, both ends of each run using the same one. */
static const char *const algos[] = {"newreno", "cubic"};
static const int algo_ids[] = {SS_CC_NEWRENO, SS_CC_CUBIC};
#define NALGOS (sizeof algos / sizeof algos[0])

struct tally {
    int delivered, timed_out, reset, other_err, bad;
    char first_bad[256];
};

static void run_seed(struct tally *t, const struct ss_sim_params *p, size_t algo,
                     uint64_t seed)
{
    struct ss_simnet_cfg cfg;
    ss_simnet_cfg_default(&cfg);
    cfg.link[0] = cfg.link[1] = *p;
    cfg.seed = seed;
    for (int i = 0; i < 2; i++) {
        /* One connection: small pools, so each run allocates little. */
        cfg.stack[i].max_sockets = 4;
        cfg.stack[i].frag_slots = 1;
        cfg.stack[i].cc_algo = algo_ids[algo];
    }
    struct outcome o = transfer_with(&cfg, NULL, false);
    if (!o.late && o.exact && !o.tx_err && !o.rx_err && o.run_rc == 0) {
        t->delivered++;
        return;
    }
    if (!o.late && o.run_rc == 0 && o.tx_finished && (o.tx_err || o.rx_err) && o.prefix) {
        int e = o.tx_err ? o.tx_err : o.rx_err;
        if (e == -ETIMEDOUT)
            t->timed_out++;
        else if (e == -ECONNRESET)
            t->reset++;
        else
            t->other_err++;
        return;
    }
    if (!t->bad++)
        snprintf(t->first_bad, sizeof t->first_bad,
                 "seed %llu: run %s, finished %d, received %llu/%d, in order %d, "
                 "errors A %s B %s, virtual %.3f s, late %d",
                 (unsigned long long)seed, ss_err_name(o.run_rc), o.finished,
                 (unsigned long long)o.received, XFER_BYTES, o.prefix,
                 ss_err_name(o.tx_err), ss_err_name(o.rx_err), o.vt / 1e6, o.late);
}

/* Expected outcomes of the 100 seeds of one case, per algorithm. */
struct expect {
    int delivered, timed_out, reset;
};

static void matrix_case(const char *what, struct ss_sim_params p,
                        const struct expect want[NALGOS])
{
    for (size_t a = 0; a < NALGOS; a++) {
        struct tally t = {0};
        for (uint64_t seed = 1; seed <= 100; seed++)
            run_seed(&t, &p, a, seed);
        cr_log_info("%s, %s: %d delivered, %d timed out, %d reset, %d other errors, %d bad",
                    what, algos[a], t.delivered, t.timed_out, t.reset, t.other_err, t.bad);
        cr_expect_eq(t.bad, 0, "%s, %s: %d of 100 seeds went wrong; first: %s", what, algos[a],
                     t.bad, t.first_bad);
        cr_expect_eq(t.delivered, want[a].delivered, "%s, %s: %d delivered, want %d", what,
                     algos[a], t.delivered, want[a].delivered);
        cr_expect_eq(t.timed_out, want[a].timed_out, "%s, %s: %d timed out, want %d", what,
                     algos[a], t.timed_out, want[a].timed_out);
        cr_expect_eq(t.reset, want[a].reset, "%s, %s: %d reset, want %d", what, algos[a],
                     t.reset, want[a].reset);
        cr_expect_eq(t.other_err, 0, "%s, %s: %d ended with another error", what, algos[a],
                     t.other_err);
    }
}

TestSuite(matrix, .timeout = 120);

Test(matrix, loss_1_percent)
{
    struct ss_sim_params p = link_params();
    p.loss = 0.01;
    matrix_case("loss 1%", p, (const struct expect[NALGOS]){{100, 0, 0}, {100, 0, 0}});
}

Test(matrix, loss_5_percent)
{
    struct ss_sim_params p = link_params();
    p.loss = 0.05;
    matrix_case("loss 5%", p, (const struct expect[NALGOS]){{100, 0, 0}, {100, 0, 0}});
}

Test(matrix, loss_20_percent)
{
    struct ss_sim_params p = link_params();
    p.loss = 0.20;
    matrix_case("loss 20%", p, (const struct expect[NALGOS]){{100, 0, 0}, {100, 0, 0}});
}

Test(matrix, reordering)
{
    struct ss_sim_params p = link_params();
    p.reorder = 0.10;
    p.reorder_us = 3000;
    p.jitter_us = 1000;
    matrix_case("reorder 10%", p, (const struct expect[NALGOS]){{100, 0, 0}, {100, 0, 0}});
}

Test(matrix, duplication)
{
    struct ss_sim_params p = link_params();
    p.dup = 0.10;
    matrix_case("duplication 10%", p, (const struct expect[NALGOS]){{100, 0, 0}, {100, 0, 0}});
}

Test(matrix, corruption)
{
    struct ss_sim_params p = link_params();
    p.corrupt = 0.05;
    matrix_case("corruption 5%", p, (const struct expect[NALGOS]){{100, 0, 0}, {100, 0, 0}});
}

/* A 1 Mbit/s bottleneck with room for 5 packets: drop-tail losses come
 * from the sender's own bursts. */
Test(matrix, bottleneck_small_queue)
{
    struct ss_sim_params p = link_params();
    p.bandwidth_bps = 1000000;
    p.queue_limit = 5;
    matrix_case("bottleneck 1 Mbit/s, queue 5", p, (const struct expect[NALGOS]){{100, 0, 0}, {100, 0, 0}});
}

#else
TestSuite(simnet, .timeout = 120);

Test(simnet, perfect_link_is_exact_and_quick)
{
    struct ss_sim_params p = link_params();
    struct outcome o = transfer(&p, 1, NULL);
    cr_assert_eq(o.run_rc, 0);
    cr_assert_eq(o.late, 0);
    cr_assert(o.exact);
    cr_assert_eq(o.tx_err, 0);
    cr_assert_eq(o.rx_err, 0);
    cr_assert_eq(o.received, XFER_BYTES);
}

Test(simnet, a_dead_link_ends_the_connect_with_a_clean_error)
{
    struct ss_sim_params p = link_params();
    p.loss = 1.0;
    struct outcome o = transfer(&p, 1, NULL);
    cr_assert_eq(o.run_rc, 0, "run: %s", ss_err_name(o.run_rc));
    cr_assert(o.tx_finished);
    cr_assert_not(o.finished, "the receiver never saw a connection");
    cr_assert_eq(o.tx_err, -ETIMEDOUT, "connect: %s", ss_err_name(o.tx_err));
    cr_assert_eq(o.received, 0);
}

static bool established(void *arg)
{
    struct ctx *c = arg;
    return c->tx.connected && c->rx.connected && c->rx.received > 0;
}

Test(simnet, a_link_that_dies_mid_transfer_ends_in_a_clean_error)
{
    struct ss_sim_params p = link_params();
    struct ctx *c = calloc(1, sizeof *c);
    c->wire = EVP_MD_CTX_new();
    EVP_DigestInit_ex(c->wire, EVP_sha256(), NULL);
    struct ss_simnet_cfg cfg;
    ss_simnet_cfg_default(&cfg);
    cfg.link[0] = cfg.link[1] = p;
    cr_assert_eq(ss_simnet_new(&cfg, &c->net), 0);
    c->rx = (struct ss_xfer){.sd = -1, .lsd = -1};
    c->tx = (struct ss_xfer){.bytes = 1000000, .seed = 1, .sd = -1, .lsd = -1};
    cr_assert_eq(ss_xfer_start_receiver(&c->rx, ss_simnet_stack(c->net, 1), now_fn,
                                        c->net, 7000), 0);
    cr_assert_eq(ss_xfer_start_sender(&c->tx, ss_simnet_stack(c->net, 0), now_fn,
                                      c->net, 0x0a000002, 7000), 0);
    cr_assert_eq(ss_simnet_run(c->net, established, c, LIMIT_US), 0);
    p.loss = 1.0; /* the cable is cut */
    cr_assert_eq(ss_sim_set_params(ss_simnet_link(c->net), 0, &p), 0);
    cr_assert_eq(ss_sim_set_params(ss_simnet_link(c->net), 1, &p), 0);
    int rc = ss_simnet_run(c->net, NULL, NULL, LIMIT_US);
    cr_assert_eq(rc, 0, "run: %s after %.1f s", ss_err_name(rc),
                 ss_simnet_now(c->net) / 1e6);
    cr_assert(ss_xfer_finished(&c->tx));
    cr_assert_eq(c->tx.error, -ETIMEDOUT, "sender: %s", ss_err_name(c->tx.error));
    cr_assert_lt(c->rx.received, 1000000);
    ss_xfer_cleanup(&c->tx);
    ss_xfer_cleanup(&c->rx);
    EVP_MD_CTX_free(c->wire);
    ss_simnet_free(c->net);
    free(c);
}

/* The application step (cfg.app): called at every step, before the
 * polls, and its deadline wakes the loop on an otherwise idle network. */
struct app_log { uint64_t at[8]; int n; };

static uint64_t app_step(void *arg, uint64_t now)
{
    struct app_log *l = arg;
    if (l->n < 8)
        l->at[l->n++] = now;
    return l->n < 4 ? now + 250000 : UINT64_MAX;
}

Test(simnet, the_application_step_sets_its_own_wake_up)
{
    struct app_log l = {0};
    struct ss_simnet_cfg cfg;
    ss_simnet_cfg_default(&cfg);
    cfg.app = app_step;
    cfg.app_arg = &l;
    ss_simnet *net;
    cr_assert_eq(ss_simnet_new(&cfg, &net), 0);
    cr_assert_eq(ss_simnet_run(net, NULL, NULL, LIMIT_US), 0);
    cr_assert_eq(l.n, 4);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(l.at[i], (uint64_t)i * 250000);
    cr_assert_eq(ss_simnet_now(net), 750000);
    ss_simnet_free(net);
}

Test(simnet, same_seed_same_run_byte_for_byte)
{
    struct ss_sim_params p = link_params();
    p.loss = 0.05;
    p.dup = 0.02;
    p.reorder = 0.05;
    p.corrupt = 0.01;
    p.jitter_us = 2000;
    struct outcome a = transfer(&p, 42, NULL), b = transfer(&p, 42, NULL),
                   c = transfer(&p, 43, NULL);
    cr_assert_eq(memcmp(a.digest, b.digest, 32), 0, "same seed, other packets");
    cr_assert_eq(a.vt, b.vt);
    cr_assert_neq(memcmp(a.digest, c.digest, 32), 0, "another seed, same packets");
}

Test(simnet, pcap_of_a_lossy_run_is_clean_in_tshark)
{
    char path[128];
    snprintf(path, sizeof path, "/tmp/ss-test-simnet-%d.pcap", (int)getpid());
    struct ss_sim_params p = link_params();
    p.loss = 0.05;
    struct outcome o = transfer(&p, 3, path);
    cr_assert_eq(o.run_rc, 0);
    long count, bad;
    cr_assert_eq(tp_tshark_check(path, &count, &bad), 0);
    cr_assert_gt(count, 30, "a 40 kB transfer is more than %ld packets", count);
    cr_assert_eq(bad, 0, "%ld packets with bad checksums or malformed", bad);
    /* Every TCP segment in the file belongs to the one connection. */
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "tshark -r '%s' -T fields -e tcp.stream 2>/dev/null | sort -u", path);
    FILE *f = popen(cmd, "r");
    char line[64];
    int streams = 0;
    while (fgets(line, sizeof line, f))
        streams++;
    pclose(f);
    cr_assert_eq(streams, 1);
    unlink(path);
}
#endif
