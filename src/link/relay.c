/* relay: two packet ports joined through the seeded link model, in real
 * time, driven by the reactor (see relay.h).
 *
 *   TUN fd of side S readable -> on_readable: read up to a batch ->
 *   take(): tap S, IPv4 only, ss_sim_send(S) -> service()
 *   ss_relay_inject(S) -> take() -> service() deferred to the loop
 *   timer at the model's next deadline / deferred -> service():
 *   ss_sim_deliver everything due -> forward(): tap D, ss_tun_write(D) or
 *   the deliver callback -> re-arm the timer.
 * The model (src/link/sim.c) is the one `stack demo` runs on a virtual
 * clock; here its clock is CLOCK_MONOTONIC. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sockstack/config.h"
#include "sockstack/relay.h"

struct ss_relay {
    ss_loop *loop;
    ss_sim *sim;
    int fd[2];
    ss_pcap *pcap[2];
    ss_relay_deliver_fn deliver;
    void *deliver_arg;
    ss_timer timer;
    ss_defer defer;
    struct ss_relay_stats st[2]; /* by direction = source side */
    uint8_t buf[SS_TUN_BUF];
};

static uint64_t clock_us(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void ss_relay_cfg_default(struct ss_relay_cfg *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (int d = 0; d < 2; d++) {
        cfg->fd[d] = -1;
        ss_sim_params_init(&cfg->link[d]);
        cfg->link[d].mtu = 65535;
    }
    cfg->seed = 1;
}

/* A packet from side `side` enters the path at now. */
static void take(ss_relay *r, int side, uint64_t now, const uint8_t *pkt, size_t len)
{
    struct ss_relay_stats *st = &r->st[side];
    st->received++;
    if (r->pcap[side])
        ss_pcap_write(r->pcap[side], clock_us(CLOCK_REALTIME), pkt, len);
    if (len < 20 || (pkt[0] >> 4) != 4) {
        st->not_ipv4++;
        return;
    }
    if (ss_sim_send(r->sim, side, now, pkt, len) == -EMSGSIZE)
        st->too_big++;
}

/* A packet leaves the path at side `to`. */
static void forward(ss_relay *r, int to, const uint8_t *pkt, size_t len)
{
    struct ss_relay_stats *st = &r->st[1 - to];
    if (r->pcap[to])
        ss_pcap_write(r->pcap[to], clock_us(CLOCK_REALTIME), pkt, len);
    if (r->fd[to] >= 0) {
        if (ss_tun_write(r->fd[to], pkt, len) < 0) {
            st->write_dropped++;
            return;
        }
    } else {
        r->deliver(r->deliver_arg, to, pkt, len);
    }
    st->forwarded++;
    st->forwarded_bytes += len;
}

/* Deliver what is due, then sleep until the next arrival. */
static void service(ss_relay *r)
{
    uint64_t now = clock_us(CLOCK_MONOTONIC);
    int to;
    ssize_t n;
    while ((n = ss_sim_deliver(r->sim, now, &to, NULL, r->buf, sizeof r->buf)) > 0)
        forward(r, to, r->buf, (size_t)n);
    uint64_t next = ss_sim_next_deadline(r->sim);
    if (next == UINT64_MAX) {
        ss_timer_stop(r->loop, &r->timer);
        return;
    }
    now = clock_us(CLOCK_MONOTONIC);
    ss_timer_start(r->loop, &r->timer, next > now ? (next - now + 999) / 1000 : 0);
}

static void on_readable(ss_loop *loop, int fd, unsigned events, void *arg)
{
    ss_relay *r = arg;
    int side = fd == r->fd[0] ? 0 : 1;
    uint64_t now = clock_us(CLOCK_MONOTONIC);
    for (int i = 0; i < SS_TUN_BATCH; i++) {
        ssize_t len = ss_tun_read(fd, r->buf, sizeof r->buf);
        if (len <= 0)
            break;
        take(r, side, now, r->buf, (size_t)len);
    }
    service(r);
}

static void on_timer(ss_loop *loop, ss_timer *t, void *arg) { service(arg); }
static void on_defer(ss_loop *loop, void *arg) { service(arg); }

int ss_relay_new(ss_loop *loop, const struct ss_relay_cfg *cfg, ss_relay **out)
{
    if (cfg->fd[0] == cfg->fd[1] && cfg->fd[0] >= 0)
        return -EINVAL;
    if ((cfg->fd[0] < 0 || cfg->fd[1] < 0) && !cfg->deliver)
        return -EINVAL;
    ss_relay *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    int rc = ss_sim_new(&r->sim, cfg->link, cfg->seed);
    if (rc < 0) {
        free(r);
        return rc;
    }
    r->loop = loop;
    r->deliver = cfg->deliver;
    r->deliver_arg = cfg->deliver_arg;
    ss_timer_init(&r->timer, on_timer, r);
    ss_defer_init(&r->defer, on_defer, r);
    for (int s = 0; s < 2; s++) {
        r->fd[s] = -1;
        r->pcap[s] = cfg->pcap[s];
    }
    for (int s = 0; s < 2; s++) {
        if (cfg->fd[s] < 0)
            continue;
        if ((rc = ss_loop_io_add(loop, cfg->fd[s], SS_READ, on_readable, r)) < 0) {
            ss_relay_free(r);
            return rc;
        }
        r->fd[s] = cfg->fd[s];
    }
    *out = r;
    return 0;
}

void ss_relay_free(ss_relay *r)
{
    if (!r)
        return;
    for (int s = 0; s < 2; s++)
        if (r->fd[s] >= 0)
            ss_loop_io_del(r->loop, r->fd[s]);
    ss_timer_stop(r->loop, &r->timer);
    ss_loop_defer_cancel(r->loop, &r->defer);
    ss_sim_free(r->sim);
    free(r);
}

int ss_relay_inject(ss_relay *r, int side, const uint8_t *pkt, size_t len)
{
    if ((side != 0 && side != 1) || r->fd[side] >= 0 || len == 0)
        return -EINVAL;
    take(r, side, clock_us(CLOCK_MONOTONIC), pkt, len);
    /* Not service() here: the caller may be inside a deliver callback. */
    ss_loop_defer(r->loop, &r->defer);
    return 0;
}

void ss_relay_get_stats(const ss_relay *r, int dir, struct ss_relay_stats *out)
{
    *out = r->st[dir & 1];
    ss_sim_get_stats(r->sim, dir & 1, &out->link);
}

size_t ss_relay_pending(const ss_relay *r) { return ss_sim_pending(r->sim); }

/* Enter namespace netns; *saved gets an fd of the one we left. */
static int netns_enter(const char *netns, int *saved)
{
    char path[256];
    if (strchr(netns, '/'))
        snprintf(path, sizeof path, "%s", netns);
    else if (snprintf(path, sizeof path, "/run/netns/%s", netns) >= (int)sizeof path)
        return -ENAMETOOLONG;
    int target = open(path, O_RDONLY | O_CLOEXEC);
    if (target < 0)
        return -errno;
    *saved = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    int rc = 0;
    if (*saved < 0)
        rc = -errno;
    else if (setns(target, CLONE_NEWNET) < 0)
        rc = -errno;
    close(target);
    if (rc < 0 && *saved >= 0) {
        close(*saved);
        *saved = -1;
    }
    return rc;
}

int ss_relay_tun_open(const char *netns, const char *name, const struct in_addr *addr,
                      unsigned prefix, unsigned mtu, char *ifname, size_t ifname_cap)
{
    int saved = -1, rc;
    if (netns && (rc = netns_enter(netns, &saved)) < 0)
        return rc;
    int fd = ss_tun_open(name, ifname, ifname_cap);
    if (fd >= 0) {
        rc = addr ? ss_tun_configure(ifname, *addr, prefix, mtu) : ss_tun_up(ifname, mtu);
        if (rc < 0) {
            close(fd);
            fd = rc;
        }
    }
    if (saved >= 0) {
        if (setns(saved, CLONE_NEWNET) < 0) {
            /* Stuck in the wrong namespace: nothing later may run here. */
            rc = -errno;
            if (fd >= 0)
                close(fd);
            fd = rc;
        }
        close(saved);
    }
    return fd;
}
