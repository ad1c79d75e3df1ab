/* Simulated link: two endpoints, two independent directions, virtual time.
 *
 * Each direction is a transmitter followed by a wire:
 *   send -> [loss] -> [queue limit: drop-tail] -> transmitter (bandwidth:
 *   one packet at a time, len*8/bps each) -> wire (delay + jitter, order
 *   kept) -> [reorder: held back reorder_us] -> [corrupt: one bit flipped]
 *   -> [dup: a second copy right behind] -> deliver.
 * Packets in flight sit in one min-heap ordered by (arrival time, send
 * order), so delivery is deterministic even on ties.
 *
 * Every packet draws the same six numbers from the PRNG whatever the
 * parameters, so changing one probability does not reshuffle the others'
 * decisions for the same seed. A fate callback (ss_sim_set_fate) may
 * overrule the draws packet by packet; the draws happen all the same. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sockstack/config.h"
#include "sockstack/link.h"

struct sim_pkt {
    uint64_t at;  /* arrival time */
    uint64_t seq; /* enqueue order, breaks ties */
    uint64_t id;  /* send order, shared by duplicates */
    int to;
    size_t len;
    uint8_t data[];
};

struct sim_dir {
    struct ss_sim_params p;
    uint64_t busy_until;   /* transmitter free from */
    uint64_t last_arrival; /* keeps jitter from reordering */
    size_t held;           /* packets of this direction in the heap */
    struct ss_sim_stats st;
};

struct ss_sim {
    struct ss_prng rng;
    struct sim_dir dir[2];
    struct sim_pkt **heap;
    size_t n, cap;
    uint64_t seq;
    uint64_t next_id;
    unsigned tap_points;
    ss_sim_tap_cb tap;
    void *tap_arg;
    ss_sim_fate_fn fate;
    void *fate_arg;
};

void ss_sim_params_init(struct ss_sim_params *p)
{
    memset(p, 0, sizeof *p);
    p->reorder_us = SS_SIM_REORDER_US;
    p->queue_limit = SS_SIM_QUEUE_LIMIT;
    p->mtu = SS_SIM_MTU;
}

static bool prob_ok(double x) { return x >= 0.0 && x <= 1.0; }

static bool params_ok(const struct ss_sim_params *p)
{
    return prob_ok(p->loss) && prob_ok(p->dup) && prob_ok(p->reorder) &&
           prob_ok(p->corrupt) && p->queue_limit > 0 && p->mtu > 0 &&
           p->mtu <= 65535;
}

int ss_sim_new(ss_sim **out, const struct ss_sim_params params[2], uint64_t seed)
{
    ss_sim *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    for (int d = 0; d < 2; d++) {
        if (params)
            s->dir[d].p = params[d];
        else
            ss_sim_params_init(&s->dir[d].p);
        if (!params_ok(&s->dir[d].p)) {
            free(s);
            return -EINVAL;
        }
    }
    ss_prng_seed(&s->rng, seed);
    *out = s;
    return 0;
}

void ss_sim_free(ss_sim *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->heap[i]);
    free(s->heap);
    free(s);
}

int ss_sim_set_params(ss_sim *s, int dir, const struct ss_sim_params *p)
{
    if ((dir != 0 && dir != 1) || !params_ok(p))
        return -EINVAL;
    s->dir[dir].p = *p;
    return 0;
}

void ss_sim_set_tap(ss_sim *s, unsigned points, ss_sim_tap_cb cb, void *arg)
{
    s->tap_points = cb ? points : 0;
    s->tap = cb;
    s->tap_arg = arg;
}

void ss_sim_set_fate(ss_sim *s, ss_sim_fate_fn fn, void *arg)
{
    s->fate = fn;
    s->fate_arg = arg;
}

static bool before(const struct sim_pkt *a, const struct sim_pkt *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static int heap_push(ss_sim *s, struct sim_pkt *k)
{
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 64;
        struct sim_pkt **h = realloc(s->heap, ncap * sizeof *h);
        if (!h)
            return -ENOMEM;
        s->heap = h;
        s->cap = ncap;
    }
    size_t i = s->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(k, s->heap[parent]))
            break;
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = k;
    return 0;
}

static struct sim_pkt *heap_pop(ss_sim *s)
{
    struct sim_pkt *top = s->heap[0];
    struct sim_pkt *last = s->heap[--s->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->n)
            break;
        if (c + 1 < s->n && before(s->heap[c + 1], s->heap[c]))
            c++;
        if (!before(s->heap[c], last))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->n)
        s->heap[i] = last;
    return top;
}

static int enqueue(ss_sim *s, int to, uint64_t id, uint64_t at,
                   const uint8_t *pkt, size_t len)
{
    struct sim_pkt *k = malloc(sizeof *k + len);
    if (!k)
        return -ENOMEM;
    k->at = at;
    k->seq = s->seq++;
    k->id = id;
    k->to = to;
    k->len = len;
    memcpy(k->data, pkt, len);
    int rc = heap_push(s, k);
    if (rc < 0) {
        free(k);
        return rc;
    }
    s->dir[1 - to].held++;
    return 0;
}

int ss_sim_send(ss_sim *s, int from, uint64_t now_us, const void *pkt, size_t len)
{
    if (from != 0 && from != 1)
        return -EINVAL;
    struct sim_dir *d = &s->dir[from];
    if (len == 0 || len > d->p.mtu)
        return -EMSGSIZE;
    d->st.sent++;
    d->st.sent_bytes += len;
    uint64_t id = s->next_id++;
    if (s->tap_points & SS_SIM_TAP_SEND)
        s->tap(s->tap_arg, SS_SIM_TAP_SEND, from, id, now_us, pkt, len);

    /* Six draws per packet, always, in this order. */
    double u_loss = ss_prng_unit(&s->rng);
    double u_dup = ss_prng_unit(&s->rng);
    double u_reorder = ss_prng_unit(&s->rng);
    double u_corrupt = ss_prng_unit(&s->rng);
    uint64_t jitter = ss_prng_below(&s->rng, d->p.jitter_us + 1);
    uint64_t bit = ss_prng_below(&s->rng, (uint64_t)len * 8);
    const struct ss_sim_fate drawn = {
        .lose = u_loss < d->p.loss,
        .dup = u_dup < d->p.dup,
        .hold_us = u_reorder < d->p.reorder ? d->p.reorder_us : 0,
        .extra_delay_us = jitter,
        .corrupt = u_corrupt < d->p.corrupt,
        .corrupt_at = (size_t)(bit / 8),
        .corrupt_mask = (uint8_t)(1u << (bit % 8)),
    };
    struct ss_sim_fate f = drawn;
    if (s->fate && !s->fate(s->fate_arg, from, pkt, len, &f))
        f = drawn;

    if (f.lose) {
        d->st.lost++;
        if (s->tap_points & SS_SIM_TAP_LOST)
            s->tap(s->tap_arg, SS_SIM_TAP_LOST, from, id, now_us, pkt, len);
        return 0;
    }
    if (d->held >= d->p.queue_limit) {
        d->st.dropped_queue++;
        if (s->tap_points & SS_SIM_TAP_QDROP)
            s->tap(s->tap_arg, SS_SIM_TAP_QDROP, from, id, now_us, pkt, len);
        return 0;
    }
    uint64_t start = now_us > d->busy_until ? now_us : d->busy_until;
    uint64_t tx = 0;
    if (d->p.bandwidth_bps)
        tx = ((uint64_t)len * 8 * 1000000 + d->p.bandwidth_bps - 1) /
             d->p.bandwidth_bps;
    d->busy_until = start + tx;
    uint64_t at = d->busy_until + d->p.delay_us + f.extra_delay_us;
    if (at < d->last_arrival)
        at = d->last_arrival;
    d->last_arrival = at;
    if (f.hold_us) {
        at += f.hold_us;
        d->st.reordered++;
    }

    const uint8_t *data = pkt;
    uint8_t small[SS_SIM_MTU];
    uint8_t *copy = NULL;
    if (f.corrupt) {
        copy = len <= sizeof small ? small : malloc(len);
        if (!copy)
            return -ENOMEM;
        memcpy(copy, pkt, len);
        copy[f.corrupt_at % len] ^= f.corrupt_mask;
        data = copy;
        d->st.corrupted++;
    }
    int rc = enqueue(s, 1 - from, id, at, data, len);
    if (rc == 0 && f.dup && d->held < d->p.queue_limit) {
        rc = enqueue(s, 1 - from, id, at, data, len);
        if (rc == 0)
            d->st.duplicated++;
    }
    if (copy && copy != small)
        free(copy);
    return rc;
}

uint64_t ss_sim_next_deadline(const ss_sim *s)
{
    return s->n ? s->heap[0]->at : UINT64_MAX;
}

ssize_t ss_sim_deliver(ss_sim *s, uint64_t now_us, int *to, uint64_t *at_us,
                       void *buf, size_t cap)
{
    if (!s->n || s->heap[0]->at > now_us)
        return 0;
    if (s->heap[0]->len > cap)
        return -EMSGSIZE;
    struct sim_pkt *k = heap_pop(s);
    struct sim_dir *d = &s->dir[1 - k->to];
    d->held--;
    d->st.delivered++;
    d->st.delivered_bytes += k->len;
    memcpy(buf, k->data, k->len);
    ssize_t len = (ssize_t)k->len;
    *to = k->to;
    if (at_us)
        *at_us = k->at;
    if (s->tap_points & SS_SIM_TAP_DELIVER)
        s->tap(s->tap_arg, SS_SIM_TAP_DELIVER, 1 - k->to, k->id, k->at, k->data,
               k->len);
    free(k);
    return len;
}

void ss_sim_get_stats(const ss_sim *s, int dir, struct ss_sim_stats *out)
{
    *out = s->dir[dir & 1].st;
}

size_t ss_sim_pending(const ss_sim *s) { return s->n; }
