/* libFuzzer target: two stacks over a simulated link that the input steers
 * packet by packet, with a small application on each side that sends and
 * reads at the same time, and closes or aborts in an order the input picks.
 *
 * Invariants, checked as the run goes and at its end:
 *   - every byte a side reads is the next byte of what the other side sent
 *     (each byte exactly once, in order; checked byte by byte);
 *   - the run ends by itself (no livelock, no endless retransmission):
 *     no hour of virtual time passes without progress (a byte sent, read
 *     or acknowledged, a state change), and both applications end: each
 *     side either got every byte and the end of stream, or ended in a
 *     clean error (reset, timeout, broken pipe, refused). An hour is four
 *     times the longest silence the stack allows itself (15 backed-off
 *     retransmissions of at most 60 s before R2 gives up). A bound on the
 *     total time would be wrong: over a link that loses half of all
 *     packets each way, an RTT sample taken after lost ACKs can push the
 *     RTO to its 60 s cap for a while, and 120 KiB in 64-byte segments
 *     then legitimately take more than a day
 *     (fuzz/corpus/fuzz_simnet/slow-lossy-link-1);
 *   - memory stays bounded: the link holds at most its queue limits, and
 *     no socket holds more than its buffers.
 *
 * Input: a header (missing bytes read as 0), then fate bytes.
 *   [0..7]   u64 seed: the PRNG that decides a packet's fate once the fate
 *            bytes run out, and the ISN secrets
 *   [8..11]  PRNG fallback: loss, dup, reorder, corrupt (0..255 -> 0..30%)
 *   [12]     one-way delay (ms)      [13] jitter (ms)
 *   [14]     bandwidth (0: unlimited, else N * 100 kbit/s)
 *   [15]     queue limit (1 + N packets per direction)
 *   [16..17] u16 bytes A sends (* 2), [18..19] u16 bytes B sends (* 2)
 *   [20],[21] A's, B's buffers: bits 0-2 sndbuf, bits 3-5 rcvbuf
 *            (512 << n, at most 65535), bit 6 NODELAY, bit 7 slow reader
 *   [22],[23] A's, B's MSS (table below) in bits 0-2, read size of a slow
 *            reader in bits 3-7 (16 << n bytes every 10 ms)
 *   [24]     how the connection ends (see enum ending)
 *   [25..26] u16 abort point: bytes moved (sent + read, * 8) by the side
 *            that aborts before it does
 *   then one fate per packet on the link, in sending order:
 *     0x00-0x7f deliver        0x80-0x9f drop       0xa0-0xbf duplicate
 *     0xc0-0xdf hold back (low 5 bits + 1) * 2 ms, so later packets pass
 *     0xe0-0xef delay (low 4 bits)^2 * 40 ms (the packets behind wait too)
 *     0xf0-0xff corrupt: the next two bytes give the offset and the XOR mask
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sockstack/stackrun.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR 27
#define PORT 7
#define HOUR_US (3600ull * 1000000)
#define YEAR_US (365ull * 24 * HOUR_US) /* only a backstop: progress is
                                            finite, so a run is too */
#define SLOW_PERIOD_US 10000

enum ending {
    END_BOTH,         /* each side shuts down when it has sent everything */
    END_A_FIRST,      /* B shuts down only after A's end of stream */
    END_B_FIRST,      /* A shuts down only after B's end of stream */
    END_A_ABORTS,     /* A aborts at the abort point */
    END_B_ABORTS,
    END_A_CLOSES,     /* A closes (not shutdown) once it has sent all:
                         B's data that arrives later resets */
    END_B_CLOSES,
    END_N
};

struct side {
    ss_stack *st;
    int id, sd, lsd;
    uint64_t to_send, sent, got;
    bool eof, shut, done, aborted, closed_early;
    int err;
    bool slow;
    uint32_t read_size;  /* slow reader: bytes per SLOW_PERIOD_US */
    uint64_t next_read;
    bool wait_eof;       /* shut down only after the peer's EOF */
    bool close_early;    /* close instead of shutdown after the last byte */
    uint64_t abort_at;   /* 0: never */
    uint32_t sndbuf, rcvbuf;
};

struct run {
    ss_simnet *net;
    struct side s[2];
    const uint8_t *fate;
    size_t fate_left;
    size_t queue_limit;
};

/* What side id sends: byte i is pat[id][i]. Random, drawn once, longer
 * than any transfer, so a lost, repeated or misplaced segment cannot go
 * unnoticed. */
#define MAX_XFER (2u * 65535)
static uint8_t pat[2][MAX_XFER];

static void pattern_init(void)
{
    static bool ready;
    if (ready)
        return;
    struct ss_prng rng;
    ss_prng_seed(&rng, 0x5eed);
    for (int id = 0; id < 2; id++)
        ss_xfer_pattern(&rng, pat[id], MAX_XFER);
    ready = true;
}

static bool fate_fn(void *arg, int from, const uint8_t *pkt, size_t len, struct ss_sim_fate *f)
{
    (void)from;
    (void)pkt;
    (void)len;
    struct run *r = arg;
    if (!r->fate_left)
        return false; /* the PRNG decides from here on */
    uint8_t b = *r->fate++;
    r->fate_left--;
    *f = (struct ss_sim_fate){0};
    if (b < 0x80)
        return true;
    if (b < 0xa0)
        f->lose = true;
    else if (b < 0xc0)
        f->dup = true;
    else if (b < 0xe0)
        f->hold_us = ((b & 31) + 1) * 2000ull;
    else if (b < 0xf0)
        f->extra_delay_us = (uint64_t)(b & 15) * (b & 15) * 40000;
    else {
        f->corrupt = true;
        for (int k = 0; k < 2 && r->fate_left; k++, r->fate++, r->fate_left--) {
            if (k == 0)
                f->corrupt_at = *r->fate;
            else
                f->corrupt_mask = *r->fate;
        }
        if (!f->corrupt_mask)
            f->corrupt_mask = 0x80;
    }
    return true;
}

/* Errors that end a connection cleanly: the peer reset it, it timed out,
 * our side was shut, the open was refused. Anything else is a finding. */
static bool clean_error(int err)
{
    return err == -ECONNRESET || err == -ETIMEDOUT || err == -EPIPE ||
           err == -ECONNREFUSED || err == -ECONNABORTED;
}

static void fail_with(struct side *x, int err, uint64_t now)
{
    if (!clean_error(err))
        abort(); /* an error the connection should not end with */
    x->err = err;
    if (x->sd >= 0)
        ss_tcp_abort(x->st, now, x->sd);
    x->sd = -1;
    x->done = true;
}

static void finish(struct side *x, uint64_t now)
{
    if (x->sd >= 0)
        ss_tcp_close(x->st, now, x->sd);
    x->sd = -1;
    x->done = true;
}

/* Queue what the buffer takes. */
static void pump(struct side *x, uint64_t now)
{
    while (x->sent < x->to_send) {
        size_t n = (size_t)(x->to_send - x->sent);
        ssize_t m = ss_tcp_send(x->st, now, x->sd, pat[x->id] + x->sent, n);
        if (m == -EAGAIN)
            return;
        if (m < 0) {
            fail_with(x, (int)m, now);
            return;
        }
        if (m == 0 || (size_t)m > n)
            abort(); /* send queued nothing without saying why, or too much */
        x->sent += (uint64_t)m;
    }
}

/* Read what is there (a slow reader: its share for this period). */
static void drain(struct side *x, const struct side *peer, uint64_t now)
{
    uint8_t buf[4096];
    uint64_t budget = UINT64_MAX;
    if (x->slow) {
        if (now < x->next_read)
            return;
        budget = x->read_size;
        x->next_read = now + SLOW_PERIOD_US;
    }
    while (!x->eof && budget) {
        size_t want = budget < sizeof buf ? (size_t)budget : sizeof buf;
        ssize_t n = ss_tcp_recv(x->st, now, x->sd, buf, want);
        if (n == -EAGAIN)
            return;
        if (n < 0) {
            fail_with(x, (int)n, now);
            return;
        }
        if (n == 0) {
            x->eof = true;
            return;
        }
        if ((size_t)n > want || x->got + (uint64_t)n > peer->sent)
            abort(); /* more than the peer sent */
        if (memcmp(buf, pat[1 - x->id] + x->got, (size_t)n))
            abort(); /* a byte lost, repeated, misplaced or corrupted */
        x->got += (uint64_t)n;
        budget -= (uint64_t)n;
    }
}

/* One application step of side x: accept, send, read, end. */
static void step_side(struct run *r, struct side *x, uint64_t now)
{
    if (x->done)
        return;
    if (x->sd < 0) {
        int c = ss_tcp_accept(x->st, x->lsd, NULL, NULL);
        if (c < 0)
            return;
        x->sd = c;
        int v = 0;
        if (ss_stack_sock_getopt(x->st, x->lsd, SS_SO_NODELAY, &v) == 0)
            ss_stack_sock_setopt(x->st, c, SS_SO_NODELAY, v);
        ss_stack_sock_setopt(x->st, c, SS_SO_KEEPALIVE, 1);
    }
    int err = ss_stack_sock_error(x->st, x->sd);
    if (err < 0) {
        fail_with(x, err, now);
        return;
    }
    pump(x, now);
    if (x->done)
        return;
    if (x->abort_at && x->sent + x->got >= x->abort_at) {
        ss_tcp_abort(x->st, now, x->sd);
        x->sd = -1;
        x->aborted = x->done = true;
        return;
    }
    if (x->sent == x->to_send && !x->shut) {
        if (x->close_early) {
            ss_tcp_close(x->st, now, x->sd);
            x->sd = -1;
            x->closed_early = x->done = true;
            return;
        }
        if (!x->wait_eof || x->eof) {
            int rc = ss_tcp_shutdown(x->st, now, x->sd);
            if (rc < 0) {
                fail_with(x, rc, now);
                return;
            }
            x->shut = true;
        }
    }
    drain(x, &r->s[1 - x->id], now);
    if (x->done)
        return;
    if (x->eof && x->shut)
        finish(x, now);
}

/* Bounded memory: the link holds at most its queue limits (a duplicate
 * counts against them too), and no socket more than its buffers. */
static void check_bounds(struct run *r)
{
    if (ss_sim_pending(ss_simnet_link(r->net)) > 2 * r->queue_limit)
        abort();
    for (int i = 0; i < 2; i++) {
        struct side *x = &r->s[i];
        struct ss_stack_sock_info in;
        if (x->sd >= 0 && ss_stack_sock_info(x->st, x->sd, &in) == 0 &&
            (in.snd_queued > x->sndbuf || in.rcv_queued > x->rcvbuf))
            abort();
    }
}

static uint64_t app(void *arg, uint64_t now)
{
    struct run *r = arg;
    check_bounds(r);
    uint64_t next = UINT64_MAX;
    for (int i = 0; i < 2; i++) {
        struct side *x = &r->s[i];
        step_side(r, x, now);
        /* A slow reader with data waiting comes back on its own. */
        if (!x->done && x->sd >= 0 && x->slow && x->next_read > now &&
            x->next_read < next &&
            (ss_stack_sock_events(x->st, x->sd) & SS_EV_READABLE))
            next = x->next_read;
    }
    return next;
}

static bool both_done(void *arg)
{
    struct run *r = arg;
    return r->s[0].done && r->s[1].done;
}

/* What moves when a connection makes progress: the applications' counts
 * and, inside each stack, the sequence numbers and state. */
static uint64_t progress(const struct run *r)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a over the fields */
#define MIX(v) (h = (h ^ (uint64_t)(v)) * 1099511628211ull)
    for (int i = 0; i < 2; i++) {
        const struct side *x = &r->s[i];
        MIX(x->sent);
        MIX(x->got);
        MIX(x->eof | x->shut << 1 | x->done << 2);
        struct ss_stack_sock_info in;
        if (x->sd >= 0 && ss_stack_sock_info(x->st, x->sd, &in) == 0) {
            MIX(in.state);
            MIX(in.snd_una);
            MIX(in.rcv_nxt);
        }
    }
#undef MIX
    return h;
}

/* Run until done (or, with done NULL, until nothing is left to happen),
 * one hour of virtual time at a time; an hour without progress is a
 * livelock. Returns ss_simnet_run's 0, -ELOOP, or -ETIMEDOUT for a stall. */
static int run_watched(struct run *r, ss_simnet_done_fn done)
{
    uint64_t last = progress(r);
    for (;;) {
        uint64_t now = ss_simnet_now(r->net);
        if (now >= YEAR_US)
            return -ETIMEDOUT;
        int rc = ss_simnet_run(r->net, done, r, now + HOUR_US);
        if (rc != -ETIMEDOUT)
            return rc;
        uint64_t p = progress(r);
        if (p == last)
            return -ETIMEDOUT;
        last = p;
    }
}

static const uint16_t mss_table[8] = {1460, 536, 64, 100, 1000, 1200, 256, 1400};

static uint32_t buf_size(unsigned n)
{
    uint32_t v = 512u << n;
    return v > 65535 ? 65535 : v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pattern_init();
    uint8_t h[HDR] = {0};
    memcpy(h, data, size < HDR ? size : HDR);
    struct ss_simnet_cfg cfg;
    ss_simnet_cfg_default(&cfg);
    memcpy(&cfg.seed, h, 8);
    struct ss_sim_params lp;
    ss_sim_params_init(&lp);
    lp.loss = h[8] / 255.0 * 0.3;
    lp.dup = h[9] / 255.0 * 0.3;
    lp.reorder = h[10] / 255.0 * 0.3;
    lp.corrupt = h[11] / 255.0 * 0.3;
    lp.delay_us = h[12] * 1000ull;
    lp.jitter_us = h[13] * 1000ull;
    lp.bandwidth_bps = h[14] * 100000ull;
    lp.queue_limit = 1 + (size_t)h[15];
    cfg.link[0] = cfg.link[1] = lp;

    struct run *r = calloc(1, sizeof *r);
    if (!r)
        return 0;
    r->queue_limit = lp.queue_limit;
    for (int i = 0; i < 2; i++) {
        struct side *x = &r->s[i];
        uint8_t bufs = h[20 + i], m = h[22 + i];
        x->id = i;
        x->sd = x->lsd = -1;
        x->to_send = 2ull * (uint64_t)(h[16 + 2 * i] << 8 | h[17 + 2 * i]);
        x->sndbuf = buf_size(bufs & 7);
        x->rcvbuf = buf_size(bufs >> 3 & 7);
        x->slow = bufs & 0x80;
        x->read_size = 16u << (m >> 3 & 15);
        struct ss_stack_cfg *sc = &cfg.stack[i];
        sc->sndbuf = x->sndbuf;
        sc->rcvbuf = x->rcvbuf;
        sc->mss = mss_table[m & 7];
        sc->max_sockets = 4;
        sc->frag_slots = 1; /* nothing fragments here; keeps the pools small */
        /* Keep-alive ends a connection whose peer vanished (an abort whose
         * RST the link lost) without waiting two hours of virtual time. */
        sc->keepalive_idle_s = 30;
        sc->keepalive_intvl_s = 5;
        sc->keepalive_cnt = 3;
    }
    uint64_t abort_at = 1 + 8ull * (uint64_t)(h[25] << 8 | h[26]);
    switch (h[24] % END_N) {
    case END_A_FIRST: r->s[1].wait_eof = true; break;
    case END_B_FIRST: r->s[0].wait_eof = true; break;
    case END_A_ABORTS: r->s[0].abort_at = abort_at; break;
    case END_B_ABORTS: r->s[1].abort_at = abort_at; break;
    case END_A_CLOSES: r->s[0].close_early = true; break;
    case END_B_CLOSES: r->s[1].close_early = true; break;
    default: break;
    }
    r->fate = data + (size < HDR ? size : HDR);
    r->fate_left = size < HDR ? 0 : size - HDR;
    cfg.app = app;
    cfg.app_arg = r;
    if (ss_simnet_new(&cfg, &r->net) < 0)
        abort();
    ss_sim_set_fate(ss_simnet_link(r->net), fate_fn, r);
    for (int i = 0; i < 2; i++)
        r->s[i].st = ss_simnet_stack(r->net, i);
    struct side *a = &r->s[0], *b = &r->s[1];
    b->lsd = ss_tcp_listen(b->st, PORT, 1);
    a->sd = ss_tcp_socket(a->st);
    if (b->lsd < 0 || a->sd < 0)
        abort();
    for (int i = 0; i < 2; i++) {
        int sd = i ? b->lsd : a->sd;
        ss_stack_sock_setopt(r->s[i].st, sd, SS_SO_KEEPALIVE, 1);
        ss_stack_sock_setopt(r->s[i].st, sd, SS_SO_NODELAY, (h[20 + i] & 0x40) != 0);
    }
    if (ss_tcp_connect_sd(a->st, 0, a->sd, ss_stack_addr(b->st), PORT, 0) < 0)
        abort();

    int rc = run_watched(r, both_done);
    if (rc == 0) /* FIN exchange, TIME-WAIT: the rest runs out too */
        rc = ss_simnet_run(r->net, NULL, NULL, ss_simnet_now(r->net) + HOUR_US);
    if (rc == -ETIMEDOUT && both_done(r))
        rc = 0;
    if (rc != 0)
        abort(); /* livelock, or a connection that never ends */
    /* B may never have seen the connection if A's open failed, or if A
     * closed or aborted it still in SYN-SENT (which deletes it, RFC 9293
     * 3.10.4 and 3.10.5). */
    bool b_unborn = !b->done && b->sd < 0 && (a->err || a->aborted || a->closed_early);
    if (b_unborn)
        b->done = true;
    if (!a->done || !b->done)
        abort(); /* an application left waiting for ever */
    for (int i = 0; i < 2; i++) {
        struct side *x = &r->s[i];
        if (x->err || x->aborted || x->closed_early || (i == 1 && b_unborn))
            continue;
        /* Ended without an error: it sent everything and read to the
         * end of the stream. */
        if (x->sent != x->to_send || !x->eof)
            abort();
    }
    /* An end of stream comes after every byte the peer queued. */
    for (int i = 0; i < 2; i++)
        if (r->s[i].eof && r->s[i].got != r->s[1 - i].sent)
            abort();
    if (b->lsd >= 0)
        ss_tcp_close(b->st, ss_simnet_now(r->net), b->lsd);
    ss_simnet_free(r->net);
    free(r);
    return 0;
}
