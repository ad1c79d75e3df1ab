/* simnet: two stacks, one simulated link, one virtual clock.
 *
 * The loop (ss_simnet_run), one instant at a time:
 *   deliver every packet due now -> ss_stack_input of its destination
 *   the application step, if any (cfg.app: socket calls)
 *   poll both stacks at now (timers, output, socket events)
 *   next = min(link's next arrival, both stacks' and the application's
 *              deadlines); jump there.
 * Nothing sleeps: time is a number that the loop advances. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sockstack/config.h"
#include "sockstack/stackrun.h"

struct ss_simnet {
    ss_sim *link;
    ss_stack *stack[2];
    ss_pcap *pcap;
    ss_sim_tap_cb tap;
    void *tap_arg;
    uint64_t (*app)(void *arg, uint64_t now_us);
    void *app_arg;
    uint64_t now;
    /* Packets due at one instant, staged so that each stack gets them as
     * one batch (ACKs aggregate as they do behind a real NIC). Bounded by
     * the link's queue limits. */
    uint8_t *stage;
    size_t stage_cap;
    struct staged { int to; size_t off, len; } *items;
    size_t items_cap;
    const uint8_t **ptrs;
    size_t *lens;
    size_t batch_cap;
    /* output context per node: which endpoint the stack sends from */
    struct node_ctx { ss_simnet *net; int node; } ctx[2];
};

void ss_simnet_cfg_default(struct ss_simnet_cfg *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    ss_sim_params_init(&cfg->link[0]);
    ss_sim_params_init(&cfg->link[1]);
    cfg->seed = 1;
    for (int i = 0; i < 2; i++) {
        ss_stack_cfg_default(&cfg->stack[i]);
        cfg->stack[i].local_addr = 0x0a000001u + (uint32_t)i;
    }
}

static int on_output(void *arg, const uint8_t *pkt, size_t len)
{
    struct node_ctx *c = arg;
    return ss_sim_send(c->net->link, c->node, c->net->now, pkt, len);
}

static void on_tap(void *arg, enum ss_sim_tap_point pt, int from, uint64_t id,
                   uint64_t now, const uint8_t *pkt, size_t len)
{
    ss_simnet *n = arg;
    if (pt == SS_SIM_TAP_SEND && n->pcap)
        ss_pcap_write(n->pcap, now, pkt, len);
    if (n->tap)
        n->tap(n->tap_arg, pt, from, id, now, pkt, len);
}

static bool secret_is_zero(const uint8_t *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i])
            return false;
    return true;
}

int ss_simnet_new(const struct ss_simnet_cfg *cfg, ss_simnet **out)
{
    ss_simnet *n = calloc(1, sizeof *n);
    if (!n)
        return -ENOMEM;
    int rc = ss_sim_new(&n->link, cfg->link, cfg->seed);
    if (rc < 0)
        goto fail;
    /* The stacks' secrets come from the seed too (another stream than the
     * link's), so the ISNs, and so the whole run, repeat with the seed. */
    struct ss_prng keys;
    ss_prng_seed(&keys, cfg->seed ^ 0x5ec2e75eedull);
    for (int i = 0; i < 2; i++) {
        struct ss_stack_cfg sc = cfg->stack[i];
        if (secret_is_zero(sc.isn_secret, sizeof sc.isn_secret))
            for (size_t k = 0; k < sizeof sc.isn_secret; k += 8) {
                uint64_t v = ss_prng_next(&keys);
                memcpy(sc.isn_secret + k, &v,
                       sizeof sc.isn_secret - k < 8 ? sizeof sc.isn_secret - k : 8);
            }
        n->ctx[i] = (struct node_ctx){n, i};
        sc.output = on_output;
        sc.output_ctx = &n->ctx[i];
        if ((rc = ss_stack_new(&sc, &n->stack[i])) < 0)
            goto fail;
    }
    n->pcap = cfg->pcap;
    n->tap = cfg->tap;
    n->tap_arg = cfg->tap_arg;
    n->app = cfg->app;
    n->app_arg = cfg->app_arg;
    if (n->pcap || n->tap)
        ss_sim_set_tap(n->link, SS_SIM_TAP_SEND | SS_SIM_TAP_DELIVER |
                                    SS_SIM_TAP_LOST | SS_SIM_TAP_QDROP,
                       on_tap, n);
    *out = n;
    return 0;
fail:
    ss_simnet_free(n);
    return rc;
}

void ss_simnet_free(ss_simnet *n)
{
    if (!n)
        return;
    for (int i = 0; i < 2; i++)
        if (n->stack[i])
            ss_stack_free(n->stack[i]);
    ss_sim_free(n->link);
    free(n->stage);
    free(n->items);
    free(n->ptrs);
    free(n->lens);
    free(n);
}

ss_stack *ss_simnet_stack(ss_simnet *n, int node) { return n->stack[node & 1]; }
ss_sim *ss_simnet_link(ss_simnet *n) { return n->link; }
uint64_t ss_simnet_now(const ss_simnet *n) { return n->now; }

/* Room for `need` elements: the (maybe moved) array, or NULL with the old
 * one still valid and *cap unchanged. */
static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need)
        ncap *= 2;
    void *q = realloc(p, ncap * elem);
    if (q)
        *cap = ncap;
    return q;
}

/* Hand every packet due now to its stack: node 0's as one batch, then
 * node 1's. Returns 0 or -ENOMEM. */
static int deliver_due(ss_simnet *n)
{
    size_t used = 0, count = 0;
    size_t room = SS_SIM_MTU; /* grows to 64 KiB if a packet needs it */
    for (;;) {
        uint8_t *stage = grow(n->stage, &n->stage_cap, used + room, 1);
        if (!stage)
            return -ENOMEM;
        n->stage = stage;
        struct staged *items = grow(n->items, &n->items_cap, count + 1, sizeof *items);
        if (!items)
            return -ENOMEM;
        n->items = items;
        int to;
        ssize_t len = ss_sim_deliver(n->link, n->now, &to, NULL, n->stage + used,
                                     n->stage_cap - used);
        if (len == -EMSGSIZE && room < 65536) {
            room = 65536;
            continue;
        }
        if (len < 0)
            return (int)len;
        if (len == 0)
            break;
        n->items[count++] = (struct staged){to, used, (size_t)len};
        used += (size_t)len;
    }
    if (!count)
        return 0;
    size_t pcap = n->batch_cap, lcap = n->batch_cap;
    const uint8_t **ptrs = grow(n->ptrs, &pcap, count, sizeof *ptrs);
    if (!ptrs)
        return -ENOMEM;
    n->ptrs = ptrs;
    size_t *lens = grow(n->lens, &lcap, count, sizeof *lens);
    if (!lens)
        return -ENOMEM;
    n->lens = lens;
    n->batch_cap = pcap < lcap ? pcap : lcap;
    for (int node = 0; node < 2; node++) {
        size_t k = 0;
        for (size_t i = 0; i < count; i++)
            if (n->items[i].to == node) {
                n->ptrs[k] = n->stage + n->items[i].off;
                n->lens[k++] = n->items[i].len;
            }
        if (k)
            ss_stack_input_batch(n->stack[node], n->now, n->ptrs, n->lens, k);
    }
    return 0;
}

/* Iterations allowed at one instant before we call it a livelock. */
#define SAME_INSTANT_MAX 100000

int ss_simnet_run(ss_simnet *n, ss_simnet_done_fn done, void *arg,
                  uint64_t limit_us)
{
    unsigned same = 0;
    for (;;) {
        int rc = deliver_due(n);
        if (rc < 0)
            return rc;
        uint64_t next = n->app ? n->app(n->app_arg, n->now) : UINT64_MAX;
        for (int i = 0; i < 2; i++) {
            uint64_t d = ss_stack_poll(n->stack[i], n->now);
            if (d < next)
                next = d;
        }
        if (done && done(arg))
            return 0;
        /* After the polls: what they sent is on the link now. */
        uint64_t arrival = ss_sim_next_deadline(n->link);
        if (arrival < next)
            next = arrival;
        if (next == UINT64_MAX)
            return 0;
        if (next <= n->now) {
            if (++same > SAME_INSTANT_MAX)
                return -ELOOP;
            continue;
        }
        same = 0;
        if (next > limit_us) {
            n->now = limit_us;
            return -ETIMEDOUT;
        }
        n->now = next;
    }
}
