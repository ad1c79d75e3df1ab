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
 *   batch -> deferred: ss_stack_input_batch, service(). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sockstack/config.h"
#include "sockstack/relay.h"
#include "sockstack/stackrun.h"

struct ss_tunnet {
    ss_loop *loop;
    int fd;
    ss_stack *st;
    ss_pcap *pcap;
    ss_relay *relay; /* NULL: the stack is wired to the device directly */
    size_t n_in, used_in; /* packets from the relay waiting in buf */
    ss_timer timer;
    ss_defer defer;
    uint64_t now;
    struct ss_tunnet_stats stats;
    const uint8_t *pkts[SS_TUN_BATCH];
    size_t lens[SS_TUN_BATCH];
    uint8_t buf[SS_TUN_BATCH_BYTES];
};

static uint64_t clock_us(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int on_output(void *arg, const uint8_t *pkt, size_t len)
{
    ss_tunnet *t = arg;
    if (t->pcap)
        ss_pcap_write(t->pcap, clock_us(CLOCK_REALTIME), pkt, len);
    int rc = t->relay ? ss_relay_inject(t->relay, 0, pkt, len)
                      : ss_tun_write(t->fd, pkt, len);
    if (rc < 0) {
        t->stats.tx_dropped++;
        return rc;
    }
    t->stats.tx_packets++;
    t->stats.tx_bytes += len;
    return 0;
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
    if (deadline == UINT64_MAX) {
        ss_timer_stop(t->loop, &t->timer);
        return;
    }
    uint64_t delay_ms = deadline > t->now ? (deadline - t->now + 999) / 1000 : 0;
    ss_timer_start(t->loop, &t->timer, delay_ms);
}

/* Read what the device has (up to a batch) and give it to the stack as one
 * batch, so that its ACKs aggregate (RFC 9293 MUST-58). */
static void on_readable(ss_loop *loop, int fd, unsigned events, void *arg)
{
    ss_tunnet *t = arg;
    size_t used = 0, n = 0;
    while (n < SS_TUN_BATCH && sizeof t->buf - used >= SS_TUN_BUF) {
        ssize_t len = ss_tun_read(fd, t->buf + used, SS_TUN_BUF);
        if (len <= 0)
            break;
        t->stats.rx_packets++;
        t->stats.rx_bytes += (uint64_t)len;
        if (t->pcap)
            ss_pcap_write(t->pcap, clock_us(CLOCK_REALTIME), t->buf + used, (size_t)len);
        t->pkts[n] = t->buf + used;
        t->lens[n++] = (size_t)len;
        used += (size_t)len;
    }
    if (n) {
        t->now = clock_us(CLOCK_MONOTONIC);
        ss_stack_input_batch(t->st, t->now, t->pkts, t->lens, n);
    }
    service(t);
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
                  ss_pcap *pcap, const struct ss_tunnet_link *link, ss_tunnet **out)
{
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
    ss_timer_stop(t->loop, &t->timer);
    ss_loop_defer_cancel(t->loop, &t->defer);
    ss_stack_free(t->st);
    free(t);
}

ss_stack *ss_tunnet_stack(ss_tunnet *t) { return t->st; }
uint64_t ss_tunnet_now(const ss_tunnet *t) { return t->now; }
void ss_tunnet_kick(ss_tunnet *t) { ss_loop_defer(t->loop, &t->defer); }
void ss_tunnet_get_stats(const ss_tunnet *t, struct ss_tunnet_stats *out) { *out = t->stats; }
const ss_relay *ss_tunnet_relay(const ss_tunnet *t) { return t->relay; }
