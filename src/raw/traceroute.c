/* traceroute: probes with rising TTL (UDP to rising ports, ICMP echo, or
 * TCP SYN), answered by ICMP time-exceeded from each router and by the
 * destination itself (port unreachable, echo reply, SYN,ACK or RST).
 *
 * One hop at a time (TX): start_hop() -> send_probe() x nqueries, wait timer.
 * Answers (RX): ICMP socket readable -> on_icmp() -> match_quoted() | echo;
 *   TCP raw socket readable -> on_tcp() (SYN,ACK / RST from the destination).
 * A hop is done when every probe is answered or the wait ends; the hop line
 * goes to the callback and the next TTL starts, until the destination
 * answers, a hop says unreachable, or max_ttl. */
#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <netinet/icmp6.h>
#include <netinet/ip_icmp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "raw/raw_int.h"
#include "sockstack/err.h"
#include "sockstack/stack.h"
#include "core/bytes.h"

struct tr {
    const struct ss_tr_cfg *cfg;
    ss_tr_cb cb;
    void *ctx;
    ss_loop *loop;
    struct ss__raw_dst dst;
    struct sockaddr_storage src;   /* our address toward dst (TCP checksum) */
    int icmp_fd, send_fd;          /* send_fd: UDP or raw TCP; ICMP sends on icmp_fd */
    bool v6;
    uint16_t id;                   /* ICMP identifier, UDP/TCP source port */
    uint32_t probe_no;             /* probes sent so far (makes each unique) */
    uint32_t hop_first;            /* probe_no of this hop's first probe */
    uint64_t sent_at[SS_TR_MAX_QUERIES];
    struct ss_tr_event hop;
    int answered;
    bool done, stop;
    ss_timer wait_t;
    uint8_t rx[65536];
};

void ss_tr_cfg_default(struct ss_tr_cfg *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->family = AF_UNSPEC;
    cfg->method = SS_TR_UDP;
    cfg->first_ttl = 1;
    cfg->max_ttl = 30;
    cfg->nqueries = 3;
    cfg->wait_ms = 5000;
    cfg->port = 0;          /* 0: 33434 for UDP, 80 for TCP */
    cfg->packet_len = 0;    /* 0: 60 (IPv4) / 80 (IPv6) */
}

static uint16_t base_port(const struct tr *t)
{
    if (t->cfg->port)
        return t->cfg->port;
    return t->cfg->method == SS_TR_TCP ? 80 : 33434;
}

static size_t ip_hdr_len(const struct tr *t) { return t->v6 ? 40 : 20; }

/* Transport bytes of one probe (the IP header is the kernel's). */
static size_t probe_len(const struct tr *t)
{
    size_t ip = ip_hdr_len(t);
    size_t min = ip + (t->cfg->method == SS_TR_TCP ? 20 : 8);
    size_t total = t->hop.packet_len < min ? min : t->hop.packet_len;
    return total - ip;
}

/* A TCP SYN with sequence number seq (the probe's number) from source port
 * id + seq, so that every probe is a new connection to the destination and
 * its SYN,ACK or RST names the probe twice; IPv4's checksum here, IPv6's by the
 * kernel (IPV6_CHECKSUM). */
static void build_syn(struct tr *t, uint8_t *b, size_t len, uint32_t seq)
{
    memset(b, 0, len);
    ss__put16(b, (uint16_t)(t->id + seq));   /* a connection of its own per probe */
    ss__put16(b + 2, base_port(t));
    ss__put32(b + 4, seq);
    b[12] = 5 << 4;
    b[13] = SS_TCP_SYN;
    ss__put16(b + 14, 5840);
    if (!t->v6) {
        uint8_t ph[12];
        memcpy(ph, ss__raw_addr_bytes(&t->src), 4);
        memcpy(ph + 4, ss__raw_addr_bytes(&t->dst.sa), 4);
        ph[8] = 0;
        ph[9] = IPPROTO_TCP;
        ss__put16(ph + 10, (uint16_t)len);
        uint16_t c = ss_csum_fold(ss_csum_add(ss_csum_add(0, ph, sizeof ph), b, len));
        ss__put16(b + 16, c);
    }
}

static int send_probe(struct tr *t, int k)
{
    uint8_t buf[1500];
    size_t len = probe_len(t);
    if (len > sizeof buf)
        len = sizeof buf;
    uint32_t no = t->hop_first + (uint32_t)k;
    int fd = t->cfg->method == SS_TR_ICMP ? t->icmp_fd : t->send_fd;
    int r = ss__raw_set_ttl(fd, t->dst.family, t->hop.ttl);
    if (r < 0)
        return r;
    struct sockaddr_storage to = t->dst.sa;
    switch (t->cfg->method) {
    case SS_TR_UDP:
        memset(buf, 0x40, len);
        if (to.ss_family == AF_INET6)
            ((struct sockaddr_in6 *)&to)->sin6_port = htons((uint16_t)(base_port(t) + no));
        else
            ((struct sockaddr_in *)&to)->sin_port = htons((uint16_t)(base_port(t) + no));
        len -= 8;   /* the UDP header is the kernel's */
        break;
    case SS_TR_ICMP:
        ss__icmp_echo_build(t->dst.family, buf, len, t->id, (uint16_t)(no + 1));
        break;
    case SS_TR_TCP:
        build_syn(t, buf, len, no);
        break;
    }
    t->sent_at[k] = ss__raw_now_us();
    if (sendto(fd, buf, len, 0, (struct sockaddr *)&to, t->dst.len) < 0)
        return -errno;
    return 0;
}

static void end_hop(struct tr *t);

static void on_wait(ss_loop *loop, ss_timer *timer, void *arg)
{
    end_hop(arg);
}

static void start_hop(struct tr *t, int ttl)
{
    t->hop.kind = SS_TR_EV_HOP;
    t->hop.ttl = ttl;
    t->hop.nprobes = t->cfg->nqueries;
    t->hop.reached = false;
    memset(t->hop.probe, 0, sizeof t->hop.probe);
    t->answered = 0;
    t->hop_first = t->probe_no;
    t->probe_no += (uint32_t)t->cfg->nqueries;
    for (int k = 0; k < t->cfg->nqueries; k++)
        if (send_probe(t, k) < 0)
            snprintf(t->hop.probe[k].mark, sizeof t->hop.probe[k].mark, "!E");
    ss_timer_start(t->loop, &t->wait_t, t->cfg->wait_ms);
}

static void end_hop(struct tr *t)
{
    ss_timer_stop(t->loop, &t->wait_t);
    t->cb(t->ctx, &t->hop);
    bool final = t->hop.reached;
    for (int k = 0; k < t->hop.nprobes; k++)
        if (t->hop.probe[k].mark[0] && strcmp(t->hop.probe[k].mark, "!E") != 0)
            final = true;
    if (final || t->hop.ttl >= t->cfg->max_ttl || t->stop) {
        t->done = true;
        ss_loop_stop(t->loop);
        return;
    }
    start_hop(t, t->hop.ttl + 1);
}

/* Probe number no answered by from. */
static void answer(struct tr *t, uint32_t no, const char *from, const char *mark,
                   bool reached)
{
    if (no < t->hop_first || no >= t->hop_first + (uint32_t)t->hop.nprobes)
        return;   /* an answer to an earlier hop that came too late */
    struct ss_tr_probe *p = &t->hop.probe[no - t->hop_first];
    if (p->answered)
        return;
    p->answered = true;
    p->rtt_us = ss__raw_now_us() - t->sent_at[no - t->hop_first];
    snprintf(p->from, sizeof p->from, "%s", from);
    snprintf(p->mark, sizeof p->mark, "%s", mark);
    if (reached)
        t->hop.reached = true;
    if (++t->answered == t->hop.nprobes)
        end_hop(t);
}

/* traceroute's annotation of an unreachable code; "" for none. Port
 * unreachable from the destination is the normal end of a UDP trace. */
static const char *unreach_mark(bool v6, uint8_t code, bool from_dst)
{
    if (v6) {
        switch (code) {
        case 0: return "!N";
        case 1: return "!X";
        case 3: return "!H";
        case 4: return from_dst ? "" : "!P";
        default: return "!?";
        }
    }
    switch (code) {
    case 0: return "!N";
    case 1: return "!H";
    case 2: return "!P";
    case 3: return from_dst ? "" : "!P";
    case 4: return "!F";
    case 5: return "!S";
    case 9: case 10: case 13: return "!X";
    default: return "!?";
    }
}

/* Which probe an ICMP error quotes; false if none of ours. */
static bool match_quoted(struct tr *t, const struct ss__icmp_msg *m, uint32_t *no)
{
    const uint8_t *q = m->inner_l4;
    if (memcmp(m->inner_dst, ss__raw_addr_bytes(&t->dst.sa), t->v6 ? 16 : 4) != 0)
        return false;
    switch (t->cfg->method) {
    case SS_TR_UDP:
        if (m->inner_proto != IPPROTO_UDP || ss__get16(q) != t->id)
            return false;
        *no = (uint16_t)(ss__get16(q + 2) - base_port(t));
        return true;
    case SS_TR_ICMP:
        if (m->inner_proto != (t->v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP) ||
            q[0] != (t->v6 ? ICMP6_ECHO_REQUEST : ICMP_ECHO) || ss__get16(q + 4) != t->id)
            return false;
        *no = (uint16_t)(ss__get16(q + 6) - 1);
        return true;
    case SS_TR_TCP:
        if (m->inner_proto != IPPROTO_TCP || ss__get32(q + 4) != (uint16_t)(ss__get16(q) - t->id))
            return false;
        *no = ss__get32(q + 4);
        return true;
    }
    return false;
}

static void on_icmp(ss_loop *loop, int fd, unsigned events, void *arg)
{
    struct tr *t = arg;
    while (!t->done) {
        struct sockaddr_storage from;
        int ttl;
        ssize_t n = ss__raw_recv(fd, t->rx, sizeof t->rx, &from, &ttl);
        if (n < 0)
            return;
        struct ss__icmp_msg m;
        if (ss__icmp_parse(t->dst.family, !t->v6, t->rx, (size_t)n, &m) < 0)
            continue;
        char text[SS_RAW_ADDRSTRLEN];
        ss__raw_addr_text(&from, text, sizeof text);
        bool from_dst = ss__raw_same_addr(&from, &t->dst.sa);
        if (m.echo_reply) {
            if (t->cfg->method == SS_TR_ICMP && m.id == t->id && from_dst)
                answer(t, (uint16_t)(m.seq - 1), text, "", true);
            continue;
        }
        uint32_t no;
        if (!m.error || !match_quoted(t, &m, &no))
            continue;
        bool unreach = t->v6 ? m.type == ICMP6_DST_UNREACH : m.type == ICMP_DEST_UNREACH;
        bool exceeded = t->v6 ? m.type == ICMP6_TIME_EXCEEDED : m.type == ICMP_TIME_EXCEEDED;
        if (exceeded)
            answer(t, no, text, "", false);
        else if (unreach)
            answer(t, no, text, unreach_mark(t->v6, m.code, from_dst),
                   from_dst && !*unreach_mark(t->v6, m.code, from_dst));
    }
}

/* SYN,ACK or RST from the destination's port to ours: the end of a TCP trace. */
static void on_tcp(ss_loop *loop, int fd, unsigned events, void *arg)
{
    struct tr *t = arg;
    while (!t->done) {
        struct sockaddr_storage from;
        int ttl;
        ssize_t n = ss__raw_recv(fd, t->rx, sizeof t->rx, &from, &ttl);
        if (n < 0)
            return;
        const uint8_t *p = t->rx;
        size_t len = (size_t)n;
        if (!t->v6) {
            size_t hl = len >= 20 ? (size_t)(p[0] & 15) * 4 : 0;
            if (hl < 20 || hl > len)
                continue;
            p += hl;
            len -= hl;
        }
        if (len < 20 || !ss__raw_same_addr(&from, &t->dst.sa) ||
            ss__get16(p) != base_port(t) || ss__get32(p + 8) - 1 != (uint16_t)(ss__get16(p + 2) - t->id))
            continue;
        uint8_t fl = p[13];
        if (!(fl & SS_TCP_RST) && (fl & (SS_TCP_SYN | SS_TCP_ACK)) != (SS_TCP_SYN | SS_TCP_ACK))
            continue;
        char text[SS_RAW_ADDRSTRLEN];
        ss__raw_addr_text(&from, text, sizeof text);
        answer(t, ss__get32(p + 8) - 1, text, "", true);
    }
}

/* Our source address toward dst, as the routing table picks it. */
static int find_source(struct tr *t)
{
    int fd = socket(t->dst.family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_storage to = t->dst.sa;
    if (to.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&to)->sin6_port = htons(9);
    else
        ((struct sockaddr_in *)&to)->sin_port = htons(9);
    socklen_t sl = sizeof t->src;
    int r = connect(fd, (struct sockaddr *)&to, t->dst.len) < 0 ||
                    getsockname(fd, (struct sockaddr *)&t->src, &sl) < 0
                ? -errno
                : 0;
    close(fd);
    return r;
}

/* The sending socket of the method; UDP's bound port is the probes' source. */
static int open_sender(struct tr *t)
{
    if (t->cfg->method == SS_TR_ICMP)
        return 0;
    if (t->cfg->method == SS_TR_UDP) {
        t->send_fd = socket(t->dst.family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (t->send_fd < 0)
            return -errno;
        struct sockaddr_storage a;
        memset(&a, 0, sizeof a);
        a.ss_family = (sa_family_t)t->dst.family;
        socklen_t sl = t->v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
        if (bind(t->send_fd, (struct sockaddr *)&a, sl) < 0 ||
            getsockname(t->send_fd, (struct sockaddr *)&a, &sl) < 0)
            return -errno;
        t->id = t->v6 ? ntohs(((struct sockaddr_in6 *)&a)->sin6_port)
                      : ntohs(((struct sockaddr_in *)&a)->sin_port);
        return 0;
    }
    t->send_fd = socket(t->dst.family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (t->send_fd < 0)
        return -errno;
    if (t->v6) {
        int off = 16;   /* where the TCP checksum goes */
        if (setsockopt(t->send_fd, IPPROTO_IPV6, IPV6_CHECKSUM, &off, sizeof off) < 0)
            return -errno;
    }
    /* Source ports of our own (one per probe, from here up), away from the
     * kernel's ephemeral range. */
    t->id = (uint16_t)(10000 + getpid() % 20000);
    return ss_loop_io_add(t->loop, t->send_fd, SS_READ, on_tcp, t);
}

int ss_traceroute_run(const struct ss_tr_cfg *cfg, ss_tr_cb cb, void *ctx, bool *reached)
{
    *reached = false;
    if (!cfg->host || cfg->first_ttl < 1 || cfg->max_ttl > 255 ||
        cfg->first_ttl > cfg->max_ttl || cfg->nqueries < 1 ||
        cfg->nqueries > SS_TR_MAX_QUERIES || cfg->packet_len > 1500)
        return -EINVAL;
    struct tr *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->cfg = cfg;
    t->cb = cb;
    t->ctx = ctx;
    t->icmp_fd = t->send_fd = -1;
    t->id = (uint16_t)getpid();
    int r = ss__raw_resolve(cfg->host, cfg->family, &t->dst);
    if (r == 0) {
        t->v6 = t->dst.family == AF_INET6;
        r = find_source(t);
    }
    if (r == 0) {
        bool raw;
        t->icmp_fd = ss__raw_open_icmp(t->dst.family, SS__ICMP_RAW, &raw);
        r = t->icmp_fd < 0 ? t->icmp_fd : 0;
    }
    if (r == 0)
        r = ss_loop_new(&t->loop);
    if (r == 0)
        r = ss__raw_stop_on_signals(t->loop);
    if (r == 0)
        r = ss_loop_io_add(t->loop, t->icmp_fd, SS_READ, on_icmp, t);
    if (r == 0)
        r = open_sender(t);
    if (r == 0) {
        struct ss_tr_event ev = {.kind = SS_TR_EV_START, .family = t->dst.family,
                                 .max_ttl = cfg->max_ttl};
        snprintf(ev.addr, sizeof ev.addr, "%s", t->dst.text);
        t->hop.packet_len = cfg->packet_len ? cfg->packet_len
                            : cfg->method == SS_TR_TCP ? (uint32_t)ip_hdr_len(t) + 20
                                                       : (t->v6 ? 80u : 60u);
        ev.packet_len = t->hop.packet_len;
        cb(ctx, &ev);
        ss_timer_init(&t->wait_t, on_wait, t);
        start_hop(t, cfg->first_ttl);
        r = ss_loop_run(t->loop);
        ss_timer_stop(t->loop, &t->wait_t);
        *reached = t->hop.reached;
    }
    if (t->loop)
        ss_loop_free(t->loop);
    if (t->icmp_fd >= 0)
        close(t->icmp_fd);
    if (t->send_fd >= 0)
        close(t->send_fd);
    free(t);
    return r;
}
