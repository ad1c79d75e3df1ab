/* tun_uring: packets for one TUN device written, and read, in batches of
 * one system call each (io_uring).
 *
 * A TUN device takes one packet per write(2), and on this kind of machine
 * (a paravirtualized guest) a system call costs about 1.1 us, as much as
 * the kernel's own receive of a segment. io_uring lets one io_uring_enter
 * carry every write of a batch: the kernel runs them back to back, each
 * inline (a TUN write never waits), and posts one completion each. Two
 * effects, both measured (bench/RESULTS.md, "stack-speed"): the per-packet
 * system call goes, and a kernel socket reading the other side finds many
 * segments per wake-up instead of a few, because they arrive without gaps.
 *
 * Writes (ss_tun_txq): put() copies the packet into the queue's own slots
 * (the stack's segment buffer is reused for the next segment); flush()
 * submits them and waits for their completions, so the slots are free
 * again when it returns. Reads (ss_tun_rxq): rounds of reads submitted
 * together into slots, see below.
 * Where io_uring is unavailable (an old kernel, a seccomp filter, the
 * io_uring_disabled sysctl) or not wanted, each packet is written with
 * write(2) and read with read(2): the same bytes, in the same order. */
#include <errno.h>
#include <liburing.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sockstack/link.h"

/* Submit the k entries prepared on ring (user_data 0..k-1) and collect
 * each one's result into res[] by its user_data. 0; or -errno when the
 * ring failed (refused the submission, took only some, or lost a
 * completion): it is then torn down (*live = false), since entries it did
 * not take would go out with a later submission, and res[] holds
 * -ECANCELED for those that did not run, for the caller to do with one
 * system call each. A wait interrupted by a signal is waited again. */
static int ring_run(struct io_uring *ring, bool *live, size_t k, int *res)
{
    for (size_t i = 0; i < k; i++)
        res[i] = -ECANCELED;
    int rc = io_uring_submit(ring);
    size_t in = rc > 0 ? (size_t)rc : 0, done = 0;
    while (done < in) {
        struct io_uring_cqe *c;
        int w = io_uring_wait_cqe(ring, &c);
        if (w == -EINTR)
            continue;
        if (w < 0)
            break;
        size_t i = (size_t)io_uring_cqe_get_data64(c);
        if (i < k)
            res[i] = c->res;
        io_uring_cqe_seen(ring, c);
        done++;
    }
    if (rc >= 0 && in == k && done == in)
        return 0;
    io_uring_queue_exit(ring);
    *live = false;
    return rc < 0 ? rc : -EIO;
}

struct ss_tun_txq {
    int fd;
    bool uring;
    struct io_uring ring;
    size_t n;
    struct ss_tun_txq_stats stats;
    size_t len[SS_TUN_TXQ_SLOTS];
    _Alignas(16) uint8_t buf[SS_TUN_TXQ_SLOTS * SS_TUN_TXQ_MTU];
};

int ss_tun_txq_new(int fd, unsigned flags, ss_tun_txq **out)
{
    ss_tun_txq *q = malloc(sizeof *q);
    if (!q)
        return -ENOMEM;
    memset(q, 0, offsetof(ss_tun_txq, len));
    q->fd = fd;
    if (!(flags & SS_TUN_TXQ_NO_URING))
        q->uring = io_uring_queue_init(SS_TUN_TXQ_SLOTS, &q->ring, 0) == 0;
    *out = q;
    return 0;
}

void ss_tun_txq_free(ss_tun_txq *q)
{
    if (!q)
        return;
    if (q->uring)
        io_uring_queue_exit(&q->ring);
    free(q);
}

bool ss_tun_txq_uring(const ss_tun_txq *q) { return q->uring; }

size_t ss_tun_txq_pending(const ss_tun_txq *q) { return q->n; }

void ss_tun_txq_get_stats(const ss_tun_txq *q, struct ss_tun_txq_stats *out) { *out = q->stats; }

static void count(ss_tun_txq *q, int rc, size_t len)
{
    if (rc < 0) {
        q->stats.dropped++;
        q->stats.last_err = rc;
    } else {
        q->stats.packets++;
        q->stats.bytes += len;
    }
}

/* Submit every queued write and reap their completions; what the ring
 * did not run goes out with write(2). */
static void flush_uring(ss_tun_txq *q)
{
    int res[SS_TUN_TXQ_SLOTS];
    for (size_t i = 0; i < q->n; i++) {
        struct io_uring_sqe *e = io_uring_get_sqe(&q->ring); /* as many as slots */
        io_uring_prep_write(e, q->fd, q->buf + i * SS_TUN_TXQ_MTU, (unsigned)q->len[i], 0);
        io_uring_sqe_set_data64(e, i);
    }
    ring_run(&q->ring, &q->uring, q->n, res);
    for (size_t i = 0; i < q->n; i++) {
        if (res[i] == -ECANCELED)
            res[i] = ss_tun_write(q->fd, q->buf + i * SS_TUN_TXQ_MTU, q->len[i]);
        count(q, res[i] < 0 ? res[i] : 0, q->len[i]);
    }
    q->n = 0;
}

int ss_tun_txq_flush(ss_tun_txq *q)
{
    if (!q->n)
        return 0;
    uint64_t before = q->stats.dropped;
    if (q->uring && q->n > 1)   /* one packet: write(2) is one call too */
        flush_uring(q);
    if (q->n) { /* no ring */
        for (size_t i = 0; i < q->n; i++)
            count(q, ss_tun_write(q->fd, q->buf + i * SS_TUN_TXQ_MTU, q->len[i]), q->len[i]);
        q->n = 0;
    }
    return q->stats.dropped == before ? 0 : q->stats.last_err;
}

int ss_tun_txq_put(ss_tun_txq *q, const void *pkt, size_t len)
{
    if (len > SS_TUN_TXQ_MTU)
        return -EMSGSIZE;
    if (q->n == SS_TUN_TXQ_SLOTS)
        ss_tun_txq_flush(q); /* its errors are counted in the stats */
    memcpy(q->buf + q->n * SS_TUN_TXQ_MTU, pkt, len);
    q->len[q->n++] = len;
    return 0;
}

/* ---- reads ------------------------------------------------------------- */

/* Reads are submitted with RWF_NOWAIT: a read of an empty device completes
 * at once with -EAGAIN (without it io_uring would park the read until a
 * packet comes). Each round submits `want` reads; when all of them
 * brought a packet the next round doubles, up to the slots, and the next
 * call starts from what this one found: a device with one packet costs
 * one read and one -EAGAIN, in one system call. */
struct ss_tun_rxq {
    int fd;
    bool uring;
    struct io_uring ring;
    size_t slot, nslots, want;
    struct ss_tun_rxq_stats stats;
    uint8_t *buf;
    bool own;   /* buf was allocated here */
};

int ss_tun_rxq_new(int fd, size_t slot_size, size_t nslots, void *buf, size_t buf_len,
                   unsigned flags, ss_tun_rxq **out)
{
    size_t slot = (slot_size + 15) & ~(size_t)15;
    if (slot_size < 64 || nslots < 1 || nslots > SS_TUN_RXQ_SLOTS_MAX ||
        (buf && ((uintptr_t)buf % 16 || buf_len < slot * nslots)))
        return -EINVAL;
    ss_tun_rxq *q = calloc(1, sizeof *q);
    if (!q)
        return -ENOMEM;
    q->slot = slot;
    q->nslots = nslots;
    q->want = 2;
    q->fd = fd;
    q->own = !buf;
    if (!(q->buf = buf ? buf : aligned_alloc(16, slot * nslots))) {
        free(q);
        return -ENOMEM;
    }
    if (!(flags & SS_TUN_TXQ_NO_URING))
        q->uring = io_uring_queue_init((unsigned)nslots, &q->ring, 0) == 0;
    *out = q;
    return 0;
}

void ss_tun_rxq_free(ss_tun_rxq *q)
{
    if (!q)
        return;
    if (q->uring)
        io_uring_queue_exit(&q->ring);
    if (q->own)
        free(q->buf);
    free(q);
}

bool ss_tun_rxq_uring(const ss_tun_rxq *q) { return q->uring; }

void ss_tun_rxq_get_stats(const ss_tun_rxq *q, struct ss_tun_rxq_stats *out) { *out = q->stats; }

/* One result: a packet in slot i (kept, compacted to position *n), a
 * truncated one (counted, dropped), or an error. 1 packet, 0 none, or
 * -errno. */
static int take(ss_tun_rxq *q, size_t i, ssize_t res, const uint8_t **pkts, size_t *lens,
                size_t *n)
{
    if (res < 0)
        return res == -EAGAIN ? 0 : (int)res;
    const uint8_t *p = q->buf + i * q->slot;
    /* A packet that filled its slot may have been cut (the device's MTU
     * grew past the slot): a read returns what it copied, so the IPv4
     * header's total length tells. */
    if ((size_t)res > q->slot ||
        ((size_t)res == q->slot && res >= 4 && p[0] >> 4 == 4 &&
         (size_t)(p[2] << 8 | p[3]) > (size_t)res)) {
        q->stats.truncated++;
        return 0;
    }
    pkts[*n] = p;
    lens[(*n)++] = (size_t)res;
    return 1;
}

static int read_uring(ss_tun_rxq *q, const uint8_t **pkts, size_t *lens, size_t max)
{
    size_t n = 0, at = 0, want = q->want;
    int err = 0;
    for (;;) {
        size_t k = want < max - at ? want : max - at;
        for (size_t i = 0; i < k; i++) {
            struct io_uring_sqe *e = io_uring_get_sqe(&q->ring);
            io_uring_prep_read(e, q->fd, q->buf + (at + i) * q->slot, (unsigned)q->slot, 0);
            e->rw_flags = RWF_NOWAIT;
            io_uring_sqe_set_data64(e, i);
        }
        int res[SS_TUN_RXQ_SLOTS_MAX];
        int rc = ring_run(&q->ring, &q->uring, k, res);
        q->stats.submits++;
        size_t got = 0;
        for (size_t i = 0; i < k; i++) {
            int t = take(q, at + i, res[i], pkts, lens, &n);
            if (t < 0)
                err = t;
            got += res[i] >= 0;
        }
        at += k;
        if (got < k || at == max || err || rc < 0)
            break;
        want *= 2;
    }
    q->want = n < 2 ? 2 : n < q->nslots ? n : q->nslots;
    return n ? (int)n : err;
}

int ss_tun_rxq_read(ss_tun_rxq *q, const uint8_t **pkts, size_t *lens, size_t max)
{
    if (max > q->nslots)
        max = q->nslots;
    if (q->uring)
        return read_uring(q, pkts, lens, max);
    size_t n = 0;
    for (size_t i = 0; i < max; i++) {
        ssize_t got = ss_tun_read(q->fd, q->buf + i * q->slot, q->slot);
        if (got <= 0) {
            if (got < 0 && got != -EAGAIN && !n)
                return (int)got;
            break;
        }
        take(q, i, got, pkts, lens, &n);
    }
    return (int)n;
}
