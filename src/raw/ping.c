/* ping: ICMP echo over a raw socket, or over Linux's unprivileged ICMP
 * datagram socket (SOCK_DGRAM, IPPROTO_ICMP[V6]) when a raw one is refused.
 *
 * Path of one request (TX): send timer -> send_one() -> sendto.
 * Path of an answer (RX): socket readable -> on_readable() -> ss__icmp_parse
 *   -> on_reply() | on_error();  datagram sockets' ICMP errors come from the
 *   error queue -> read_errqueue() -> on_error().
 * Statistics follow iputils: duplicates are counted apart and take part in
 * the RTT figures; mdev = sqrt(mean(rtt^2) - mean(rtt)^2). */
#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <linux/errqueue.h>
#include <math.h>
#include <netinet/icmp6.h>
#include <netinet/ip_icmp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "raw/raw_int.h"
#include "sockstack/err.h"
#include "core/bytes.h"

/* Requests remembered for matching replies (by sequence number). */
#define PING_RING 1024
#define PING_RXBUF 65536

struct ping {
    const struct ss_ping_cfg *cfg;
    ss_ping_cb cb;
    void *ctx;
    struct ss_ping_stats *st;
    ss_loop *loop;
    int fd;
    bool raw;
    struct ss__raw_dst dst;
    uint16_t id;
    uint64_t t_start, t_last;
    uint64_t sent_at[PING_RING];
    uint16_t ring_seq[PING_RING];
    bool ring_used[PING_RING], ring_got[PING_RING];
    double sum_us, sum2_us;
    uint32_t timed;            /* replies (duplicates too) in the RTT sums */
    ss_timer send_t, end_t;
    uint8_t *tx, *rx;
};

void ss_ping_cfg_default(struct ss_ping_cfg *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->family = AF_UNSPEC;
    cfg->interval_ms = 1000;
    cfg->size = 56;
    cfg->linger_ms = 10000;
}

static void emit(struct ping *p, struct ss_ping_event *ev)
{
    ev->family = p->dst.family;
    p->cb(p->ctx, ev);
}

static bool all_answered(const struct ping *p)
{
    return p->cfg->count && p->st->transmitted == p->cfg->count &&
           p->st->received + p->st->errors >= p->cfg->count;
}

static void finish_if_done(struct ping *p)
{
    if (all_answered(p))
        ss_loop_stop(p->loop);
}

static void on_end(ss_loop *loop, ss_timer *t, void *arg)
{
    ss_loop_stop(loop);
}

static void send_one(struct ping *p)
{
    uint16_t seq = (uint16_t)(p->st->transmitted + 1);
    size_t len = 8 + p->cfg->size;
    ss__icmp_echo_build(p->dst.family, p->tx, len, p->id, seq);
    uint64_t now = ss__raw_now_us();
    if (!p->st->transmitted)
        p->t_start = now;
    p->t_last = now;
    unsigned slot = seq % PING_RING;
    p->sent_at[slot] = now;
    p->ring_seq[slot] = seq;
    p->ring_used[slot] = true;
    p->ring_got[slot] = false;
    p->st->transmitted++;
    if (sendto(p->fd, p->tx, len, 0, (struct sockaddr *)&p->dst.sa, p->dst.len) < 0) {
        struct ss_ping_event ev = {.kind = SS_PING_EV_SEND_FAIL, .seq = seq, .err = -errno};
        p->st->errors++;
        emit(p, &ev);
    }
}

static void arm_end(struct ping *p)
{
    /* iputils: twice the longest RTT (at least the interval) once a reply
     * came, else the linger. */
    uint64_t ms = p->st->received ? 2 * p->st->rtt_max_us / 1000 : p->cfg->linger_ms;
    if (p->st->received && ms < p->cfg->interval_ms)
        ms = p->cfg->interval_ms;
    ss_timer_start(p->loop, &p->end_t, ms);
}

static void on_send(ss_loop *loop, ss_timer *t, void *arg)
{
    struct ping *p = arg;
    send_one(p);
    if (p->cfg->count && p->st->transmitted >= p->cfg->count) {
        arm_end(p);
        finish_if_done(p);
        return;
    }
    ss_timer_start(loop, &p->send_t, p->cfg->interval_ms);
}

static void on_reply(struct ping *p, const struct ss__icmp_msg *m, const char *from, int ttl,
                     uint64_t now)
{
    unsigned slot = m->seq % PING_RING;
    if (!p->ring_used[slot] || p->ring_seq[slot] != m->seq)
        return;   /* not a request of ours we still remember */
    uint64_t rtt = now - p->sent_at[slot];
    struct ss_ping_event ev = {.kind = SS_PING_EV_REPLY, .seq = m->seq, .bytes = m->icmp_len,
                               .ttl = ttl, .rtt_us = rtt, .dup = p->ring_got[slot]};
    snprintf(ev.from, sizeof ev.from, "%s", from);
    if (ev.dup) {
        p->st->duplicates++;
    } else {
        p->st->received++;
        p->ring_got[slot] = true;
    }
    if (!p->timed || rtt < p->st->rtt_min_us)
        p->st->rtt_min_us = rtt;
    if (rtt > p->st->rtt_max_us)
        p->st->rtt_max_us = rtt;
    p->timed++;
    p->sum_us += (double)rtt;
    p->sum2_us += (double)rtt * (double)rtt;
    if (now > p->t_last)
        p->t_last = now;
    emit(p, &ev);
    if (p->cfg->count && p->st->transmitted == p->cfg->count && !ev.dup)
        arm_end(p);   /* the wait after the last request now uses the RTT */
    finish_if_done(p);
}

static void on_error(struct ping *p, uint16_t seq, uint8_t type, uint8_t code, const char *from)
{
    char text[64];
    struct ss_ping_event ev = {.kind = SS_PING_EV_ERROR, .seq = seq, .type = type,
                               .code = code};
    ev.text = ss_icmp_error_text(p->dst.family, type, code, text, sizeof text);
    snprintf(ev.from, sizeof ev.from, "%s", from);
    p->st->errors++;
    emit(p, &ev);
    finish_if_done(p);
}

/* An error quoting one of our echo requests (raw sockets). */
static void on_quoted_error(struct ping *p, const struct ss__icmp_msg *m, const char *from)
{
    bool v6 = p->dst.family == AF_INET6;
    const uint8_t *q = m->inner_l4;
    if (m->inner_proto != (v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP) ||
        q[0] != (v6 ? ICMP6_ECHO_REQUEST : ICMP_ECHO) ||
        ss__get16(q + 4) != p->id ||
        memcmp(m->inner_dst, ss__raw_addr_bytes(&p->dst.sa), v6 ? 16 : 4) != 0)
        return;
    on_error(p, ss__get16(q + 6), m->type, m->code, from);
}

/* Datagram sockets: the kernel queues ICMP errors with the request. */
static void read_errqueue(struct ping *p)
{
    for (;;) {
        uint8_t data[128];
        struct sockaddr_storage to;
        union {
            char b[512];
            struct cmsghdr align;
        } ctl;
        struct iovec iov = {.iov_base = data, .iov_len = sizeof data};
        struct msghdr mh = {.msg_name = &to, .msg_namelen = sizeof to, .msg_iov = &iov,
                            .msg_iovlen = 1, .msg_control = ctl.b,
                            .msg_controllen = sizeof ctl.b};
        ssize_t n = recvmsg(p->fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT);
        if (n < 0)
            return;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            if (!((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR) ||
                  (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_RECVERR)))
                continue;
            struct sock_extended_err *ee = (struct sock_extended_err *)CMSG_DATA(c);
            if ((ee->ee_origin != SO_EE_ORIGIN_ICMP && ee->ee_origin != SO_EE_ORIGIN_ICMP6) ||
                n < 8)
                continue;
            struct sockaddr_storage off;
            memset(&off, 0, sizeof off);
            const struct sockaddr *o = SO_EE_OFFENDER(ee);
            memcpy(&off, o, o->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                     : sizeof(struct sockaddr_in));
            char from[SS_RAW_ADDRSTRLEN];
            ss__raw_addr_text(&off, from, sizeof from);
            on_error(p, ss__get16(data + 6), ee->ee_type, ee->ee_code, from);
        }
    }
}

static void on_readable(ss_loop *loop, int fd, unsigned events, void *arg)
{
    struct ping *p = arg;
    if (!p->raw)
        read_errqueue(p);
    for (;;) {
        struct sockaddr_storage from;
        int ttl;
        ssize_t n = ss__raw_recv(fd, p->rx, PING_RXBUF, &from, &ttl);
        if (n < 0)
            return;
        uint64_t now = ss__raw_now_us();
        struct ss__icmp_msg m;
        bool has_ip = p->raw && p->dst.family == AF_INET;
        if (ss__icmp_parse(p->dst.family, has_ip, p->rx, (size_t)n, &m) < 0)
            continue;
        if (has_ip && ttl < 0)
            ttl = p->rx[8];
        char text[SS_RAW_ADDRSTRLEN];
        ss__raw_addr_text(&from, text, sizeof text);
        if (m.echo_reply) {
            /* A raw socket hears every echo reply; a datagram socket only
             * its own (the kernel sets and matches the identifier). */
            if (p->raw && m.id != p->id)
                continue;
            if (!ss__raw_same_addr(&from, &p->dst.sa))
                continue;
            on_reply(p, &m, text, ttl, now);
        } else if (m.error && p->raw) {
            on_quoted_error(p, &m, text);
        }
        if (ss_loop_stopped(loop))
            return;
    }
}

static int setup(struct ping *p)
{
    int r = ss__raw_resolve(p->cfg->host, p->cfg->family, &p->dst);
    if (r < 0)
        return r;
    p->fd = ss__raw_open_icmp(p->dst.family,
                              p->cfg->dgram_only ? SS__ICMP_DGRAM : SS__ICMP_RAW_OR_DGRAM,
                              &p->raw);
    return p->fd < 0 ? p->fd : 0;
}

int ss_ping_run(const struct ss_ping_cfg *cfg, ss_ping_cb cb, void *ctx,
                struct ss_ping_stats *stats)
{
    if (!cfg->host || cfg->size > SS_PING_MAX_SIZE || cfg->interval_ms == 0 ||
        cfg->ttl < 0 || cfg->ttl > 255)
        return -EINVAL;
    memset(stats, 0, sizeof *stats);
    struct ping *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->cfg = cfg;
    p->cb = cb;
    p->ctx = ctx;
    p->st = stats;
    p->fd = -1;
    p->id = (uint16_t)getpid();
    p->tx = malloc(8 + SS_PING_MAX_SIZE);
    p->rx = malloc(PING_RXBUF);
    int r = p->tx && p->rx ? 0 : -ENOMEM;
    if (r == 0)
        r = setup(p);
    if (r == 0 && cfg->ttl)
        r = ss__raw_set_ttl(p->fd, p->dst.family, cfg->ttl);
    if (r == 0)
        r = ss_loop_new(&p->loop);
    if (r == 0)
        r = ss__raw_stop_on_signals(p->loop);
    if (r == 0)
        r = ss_loop_io_add(p->loop, p->fd, SS_READ, on_readable, p);
    if (r == 0) {
        struct ss_ping_event ev = {.kind = SS_PING_EV_START, .raw = p->raw};
        snprintf(ev.addr, sizeof ev.addr, "%s", p->dst.text);
        emit(p, &ev);
        ss_timer_init(&p->send_t, on_send, p);
        ss_timer_init(&p->end_t, on_end, p);
        on_send(p->loop, &p->send_t, p);
        if (!ss_loop_stopped(p->loop))
            r = ss_loop_run(p->loop);
        ss_timer_stop(p->loop, &p->send_t);
        ss_timer_stop(p->loop, &p->end_t);
    }
    if (p->timed) {
        double avg = p->sum_us / p->timed;
        double var = p->sum2_us / p->timed - avg * avg;
        stats->rtt_avg_us = (uint64_t)llround(avg);
        stats->rtt_mdev_us = (uint64_t)llround(var > 0 ? sqrt(var) : 0);
    }
    stats->elapsed_ms = stats->transmitted ? (p->t_last - p->t_start + 500) / 1000 : 0;
    if (p->loop)
        ss_loop_free(p->loop);
    if (p->fd >= 0)
        close(p->fd);
    free(p->tx);
    free(p->rx);
    free(p);
    return r;
}
