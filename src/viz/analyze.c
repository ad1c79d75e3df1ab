/* Analysis of TCP connections from packets or from the stack's trace.
 *
 * Path of a packet: ss_ana_packet() -> parse_ip() -> (TCP) ss_tcp_seg_decode
 *   -> conn_find() -> on_segment() -> flags_of() then infer_states();
 *   (ICMP error) -> parse_ip() of the quoted packet -> conn lookup -> record.
 * Path of a trace event: ss_ana_trace() -> on_segment() (SEG_*) or
 *   set_state() (STATE, the stack's own word for its side).
 *
 * States are inferred as a passive observer sees the segments: a segment
 * changes its sender's state when sent and its receiver's when seen (RFC
 * 9293 3.3.2's transitions: a SYN takes LISTEN to SYN-RECEIVED, the ACK of
 * a FIN takes FIN-WAIT-1 to FIN-WAIT-2, ...). Sequence numbers are compared
 * with wrap-safe helpers only. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/fmt.h"
#include "sockstack/err.h"
#include "sockstack/viz.h"
#include "core/bytes.h"

static bool seq_lt(uint32_t a, uint32_t b) { return (int32_t)(a - b) < 0; }
static bool seq_gt(uint32_t a, uint32_t b) { return (int32_t)(a - b) > 0; }

struct side {
    struct ss_ana_end end;
    int state;
    bool traced;               /* states come from the stack's trace */
    bool snd_known;
    uint32_t snd_max;          /* highest sequence number sent, + 1 */
    bool isn_known;
    uint32_t isn;
    bool fin_sent;
    uint32_t fin_end;          /* sequence number after our FIN */
    bool ack_known;
    uint32_t last_ack;
    uint16_t last_win;
    uint32_t dups;
};

struct conn {
    bool used;
    int id;
    struct side s[2];
};

struct ss_ana {
    struct conn *tab;          /* open addressing, 2 * max slots */
    size_t nslots, max, nconns;
    int *order;                /* slot of connection i */
};

int ss_ana_new(size_t max_conns, ss_ana **out)
{
    if (max_conns == 0 || max_conns > (1u << 20))
        return -EINVAL;
    ss_ana *a = calloc(1, sizeof *a);
    if (!a)
        return -ENOMEM;
    a->max = max_conns;
    a->nslots = 2 * max_conns;
    a->tab = calloc(a->nslots, sizeof *a->tab);
    a->order = calloc(max_conns, sizeof *a->order);
    if (!a->tab || !a->order) {
        ss_ana_free(a);
        return -ENOMEM;
    }
    *out = a;
    return 0;
}

void ss_ana_free(ss_ana *a)
{
    if (!a)
        return;
    free(a->tab);
    free(a->order);
    free(a);
}

size_t ss_ana_nconns(const ss_ana *a) { return a->nconns; }

int ss_ana_conn_ends(const ss_ana *a, int conn, struct ss_ana_end *s0, struct ss_ana_end *s1)
{
    if (conn < 0 || (size_t)conn >= a->nconns)
        return -EINVAL;
    const struct conn *c = &a->tab[a->order[conn]];
    *s0 = c->s[0].end;
    *s1 = c->s[1].end;
    return 0;
}

const char *ss_ana_flag_name(unsigned bit)
{
    switch (bit) {
    case SS_ANA_RTX: return "retransmission";
    case SS_ANA_DUPACK: return "dup-ack";
    case SS_ANA_ZERO_WIN: return "zero-window";
    case SS_ANA_WIN_PROBE: return "window-probe";
    case SS_ANA_OOO: return "out-of-order";
    case SS_ANA_RST: return "reset";
    case SS_ANA_ICMP: return "icmp-error";
    default: return "?";
    }
}

int ss_ana_end_format(const struct ss_ana_end *e, char *buf, size_t len)
{
    char a[INET6_ADDRSTRLEN];
    if (!inet_ntop(e->family, e->addr, a, sizeof a))
        snprintf(a, sizeof a, "?");
    if (e->family == AF_INET6)
        return snprintf(buf, len, "[%s]:%u", a, e->port);
    return snprintf(buf, len, "%s:%u", a, e->port);
}

static bool end_eq(const struct ss_ana_end *x, const struct ss_ana_end *y)
{
    return x->family == y->family && x->port == y->port &&
           memcmp(x->addr, y->addr, x->family == AF_INET6 ? 16 : 4) == 0;
}

/* The same hash for both directions: the two ends' hashes added. */
static size_t end_hash(const struct ss_ana_end *e)
{
    size_t h = 2166136261u;
    for (int i = 0; i < (e->family == AF_INET6 ? 16 : 4); i++)
        h = (h ^ e->addr[i]) * 16777619u;
    return (h ^ e->port) * 16777619u;
}

/* The connection of src -> dst; *from is the sender's side. Creates it
 * (side 0 = src) when create. NULL when absent, or when the table is full. */
static struct conn *conn_find(ss_ana *a, const struct ss_ana_end *src,
                              const struct ss_ana_end *dst, bool create, int *from)
{
    size_t i = (end_hash(src) + end_hash(dst)) % a->nslots;
    for (size_t n = 0; n < a->nslots; n++, i = (i + 1) % a->nslots) {
        struct conn *c = &a->tab[i];
        if (!c->used) {
            if (!create || a->nconns == a->max)
                return NULL;
            memset(c, 0, sizeof *c);
            c->used = true;
            c->id = (int)a->nconns;
            a->order[a->nconns++] = (int)i;
            c->s[0].end = *src;
            c->s[1].end = *dst;
            *from = 0;
            return c;
        }
        if (end_eq(&c->s[0].end, src) && end_eq(&c->s[1].end, dst)) {
            *from = 0;
            return c;
        }
        if (end_eq(&c->s[1].end, src) && end_eq(&c->s[0].end, dst)) {
            *from = 1;
            return c;
        }
    }
    return NULL;
}

static void change(struct conn *c, struct ss_ana_rec *r, int side, int to)
{
    struct side *s = &c->s[side];
    if (s->state == to || s->traced)
        return;
    if (r->nchanges < SS_ANA_MAX_CHANGES) {
        r->change[r->nchanges].side = side;
        r->change[r->nchanges].old_state = s->state;
        r->change[r->nchanges].new_state = to;
        r->nchanges++;
    }
    s->state = to;
}

/* The first segment of a connection sets where both sides start. */
static void first_segment(struct conn *c, const struct ss_trace_seg *g)
{
    bool syn_only = (g->flags & (SS_TCP_SYN | SS_TCP_ACK)) == SS_TCP_SYN;
    c->s[0].state = syn_only ? SS_TCP_CLOSED : SS_TCP_ESTABLISHED;
    c->s[1].state = syn_only ? SS_TCP_LISTEN : SS_TCP_ESTABLISHED;
}

/* RFC 9293 3.3.2 as seen from the wire: x sent g to y. */
static void infer_states(struct conn *c, struct ss_ana_rec *r, int x, const struct ss_trace_seg *g)
{
    int y = 1 - x;
    struct side *X = &c->s[x], *Y = &c->s[y];
    if (g->flags & SS_TCP_RST) {
        change(c, r, x, SS_TCP_CLOSED);
        change(c, r, y, SS_TCP_CLOSED);
        return;
    }
    if (g->flags & SS_TCP_SYN) {
        if (!(g->flags & SS_TCP_ACK)) {
            if (X->state == SS_TCP_CLOSED)
                change(c, r, x, SS_TCP_SYN_SENT);
            if (Y->state == SS_TCP_LISTEN || Y->state == SS_TCP_SYN_SENT)
                change(c, r, y, SS_TCP_SYN_RECEIVED);
        } else {
            if (X->state == SS_TCP_LISTEN || X->state == SS_TCP_CLOSED)
                change(c, r, x, SS_TCP_SYN_RECEIVED);
            if (Y->state == SS_TCP_SYN_SENT && Y->isn_known && g->ack == Y->isn + 1)
                change(c, r, y, SS_TCP_ESTABLISHED);
        }
    } else if (g->flags & SS_TCP_ACK) {
        /* What x's ACK tells about y's SYN and FIN. */
        if (Y->state == SS_TCP_SYN_RECEIVED && Y->isn_known && !seq_lt(g->ack, Y->isn + 1))
            change(c, r, y, SS_TCP_ESTABLISHED);
        if (Y->fin_sent && !seq_lt(g->ack, Y->fin_end)) {
            if (Y->state == SS_TCP_FIN_WAIT_1)
                change(c, r, y, SS_TCP_FIN_WAIT_2);
            else if (Y->state == SS_TCP_CLOSING)
                change(c, r, y, SS_TCP_TIME_WAIT);
            else if (Y->state == SS_TCP_LAST_ACK)
                change(c, r, y, SS_TCP_CLOSED);
        }
    }
    if (g->flags & SS_TCP_FIN) {
        if (X->state == SS_TCP_ESTABLISHED || X->state == SS_TCP_SYN_RECEIVED)
            change(c, r, x, SS_TCP_FIN_WAIT_1);
        else if (X->state == SS_TCP_CLOSE_WAIT)
            change(c, r, x, SS_TCP_LAST_ACK);
        if (Y->state == SS_TCP_ESTABLISHED)
            change(c, r, y, SS_TCP_CLOSE_WAIT);
        else if (Y->state == SS_TCP_FIN_WAIT_1)
            change(c, r, y, SS_TCP_CLOSING);
        else if (Y->state == SS_TCP_FIN_WAIT_2)
            change(c, r, y, SS_TCP_TIME_WAIT);
    }
}

/* Flags of x's segment g, from what each side was seen to send before it. */
static unsigned flags_of(const struct conn *c, int x, const struct ss_trace_seg *g,
                         uint32_t *dupn)
{
    const struct side *X = &c->s[x], *Y = &c->s[1 - x];
    unsigned f = 0;
    uint32_t seqlen = g->len + !!(g->flags & SS_TCP_SYN) + !!(g->flags & SS_TCP_FIN);
    bool peer_zero = Y->ack_known && Y->last_win == 0;
    if (g->flags & SS_TCP_RST)
        f |= SS_ANA_RST;
    else if (g->win == 0 && !(g->flags & SS_TCP_SYN))
        f |= SS_ANA_ZERO_WIN;
    if (X->snd_known && !(g->flags & SS_TCP_RST)) {
        if (peer_zero && ((seqlen == 1 && g->seq == X->snd_max) ||
                          (seqlen == 0 && g->seq == X->snd_max - 1)))
            f |= SS_ANA_WIN_PROBE;   /* a new byte, or Linux's seq = SND.UNA - 1 */
        else if (seqlen && seq_lt(g->seq, X->snd_max))
            f |= SS_ANA_RTX;
        else if (seqlen && seq_gt(g->seq, X->snd_max))
            f |= SS_ANA_OOO;
    }
    bool pure_ack = (g->flags & (SS_TCP_SYN | SS_TCP_FIN | SS_TCP_RST | SS_TCP_ACK)) ==
                        SS_TCP_ACK && g->len == 0;
    if (pure_ack && !(f & SS_ANA_WIN_PROBE) && X->ack_known && g->ack == X->last_ack &&
        g->win == X->last_win && Y->snd_known && seq_lt(g->ack, Y->snd_max)) {
        f |= SS_ANA_DUPACK;
        *dupn = X->dups + 1;
    }
    return f;
}

/* x sent g: flags, states, then what x and y are known to have sent. */
static void on_segment(struct conn *c, struct ss_ana_rec *r, int x, bool first)
{
    const struct ss_trace_seg *g = &r->seg;
    struct side *X = &c->s[x];
    if (first)
        first_segment(c, g);
    r->flags = flags_of(c, x, g, &r->dupack);
    if ((g->flags & SS_TCP_SYN) && !X->isn_known) {
        X->isn_known = true;
        X->isn = g->seq;
    }
    uint32_t seqlen = g->len + !!(g->flags & SS_TCP_SYN) + !!(g->flags & SS_TCP_FIN);
    uint32_t end = g->seq + seqlen;
    if (g->flags & SS_TCP_FIN) {
        X->fin_sent = true;
        X->fin_end = end;
    }
    infer_states(c, r, x, g);
    if (!(g->flags & SS_TCP_RST) && (!X->snd_known || seq_gt(end, X->snd_max))) {
        X->snd_known = true;
        X->snd_max = end;
    }
    if (g->flags & SS_TCP_ACK) {
        X->dups = (r->flags & SS_ANA_DUPACK) ? r->dupack
                  : (X->ack_known && g->ack == X->last_ack) ? X->dups : 0;
        X->ack_known = true;
        X->last_ack = g->ack;
        X->last_win = g->win;
    }
    r->state[0] = c->s[0].state;
    r->state[1] = c->s[1].state;
}

/* The IP header: endpoints (ports zero), protocol, and where the payload
 * starts. Returns the payload length or -1. */
static long parse_ip(const uint8_t *p, size_t len, struct ss_ana_end *src,
                     struct ss_ana_end *dst, uint8_t *proto, size_t *off, bool quoted)
{
    memset(src, 0, sizeof *src);
    memset(dst, 0, sizeof *dst);
    if (len >= 20 && p[0] >> 4 == 4) {
        size_t hl = (size_t)(p[0] & 15) * 4;
        size_t tot = ss__get16(p + 2);
        /* A quoted packet is cut short; its total length says what it was. */
        if (hl < 20 || hl > len || (!quoted && (tot < hl || tot > len)))
            return -1;
        if (quoted || tot > len)
            tot = len;
        if ((ss__get16(p + 6) & 0x1fff) != 0)
            return -1;   /* a later fragment: no transport header */
        src->family = dst->family = AF_INET;
        memcpy(src->addr, p + 12, 4);
        memcpy(dst->addr, p + 16, 4);
        *proto = p[9];
        *off = hl;
        return (long)(tot - hl);
    }
    if (len >= 40 && p[0] >> 4 == 6) {
        size_t tot = quoted ? len : 40 + (size_t)ss__get16(p + 4);
        if (tot > len)
            return -1;
        src->family = dst->family = AF_INET6;
        memcpy(src->addr, p + 8, 16);
        memcpy(dst->addr, p + 24, 16);
        *proto = p[6];   /* extension headers are not followed */
        *off = 40;
        return (long)(tot - 40);
    }
    return -1;
}

static int on_icmp(ss_ana *a, uint64_t t, const struct ss_ana_end *from, bool v6,
                   const uint8_t *icmp, size_t len, struct ss_ana_rec *r)
{
    if (len < 8)
        return 0;
    uint8_t type = icmp[0];
    bool err = v6 ? (type >= 1 && type <= 4) : (type == 3 || type == 4 || type == 5 ||
                                                 type == 11 || type == 12);
    if (!err)
        return 0;
    struct ss_ana_end qs, qd;
    uint8_t proto;
    size_t off;
    long n = parse_ip(icmp + 8, len - 8, &qs, &qd, &proto, &off, true);
    if (n < 8 || proto != IPPROTO_TCP)
        return 0;
    const uint8_t *tcp = icmp + 8 + off;
    qs.port = ss__get16(tcp);
    qd.port = ss__get16(tcp + 2);
    int side;
    struct conn *c = conn_find(a, &qs, &qd, false, &side);
    if (!c)
        return 0;
    memset(r, 0, sizeof *r);
    r->kind = SS_ANA_ICMP_ERR;
    r->t_us = t;
    r->conn = c->id;
    r->from = side;
    r->src = qs;
    r->dst = qd;
    r->flags = SS_ANA_ICMP;
    r->icmp_type = type;
    r->icmp_code = icmp[1];
    r->icmp_from = *from;
    /* The quote holds at least the ports and the sequence number. */
    r->seg.seq = (uint32_t)ss__get16(tcp + 4) << 16 | ss__get16(tcp + 6);
    r->seg.wscale = -1;
    r->state[0] = c->s[0].state;
    r->state[1] = c->s[1].state;
    return 1;
}

static int segment_rec(ss_ana *a, uint64_t t, const struct ss_ana_end *src,
                       const struct ss_ana_end *dst, struct ss_ana_rec *r)
{
    int x;
    size_t before = a->nconns;
    struct conn *c = conn_find(a, src, dst, true, &x);
    if (!c)
        return -ENOSPC;
    r->kind = SS_ANA_SEG;
    r->t_us = t;
    r->conn = c->id;
    r->from = x;
    r->src = *src;
    r->dst = *dst;
    on_segment(c, r, x, a->nconns != before);
    return 1;
}

/* The IP header (parse_ip checked its length) and the TCP header's fields
 * that the decoded segment does not keep (ss_tcp_seg_decode checked it). */
static void header_fields(const uint8_t *ip, const uint8_t *tcp, struct ss_ana_hdr *h)
{
    h->have = true;
    h->version = ip[0] >> 4;
    if (h->version == 4) {
        h->ihl = ip[0] & 15;
        h->tos = ip[1];
        h->tot_len = ss__get16(ip + 2);
        h->id = ss__get16(ip + 4);
        h->ip_flags = ip[6] >> 5;
        h->frag_off = ss__get16(ip + 6) & 0x1fff;
        h->ttl = ip[8];
        h->proto = ip[9];
        h->ip_cksum = ss__get16(ip + 10);
    } else {
        uint32_t w = (uint32_t)ss__get16(ip) << 16 | ss__get16(ip + 2);
        h->tos = (uint8_t)(w >> 20);
        h->flow = w & 0xfffff;
        h->tot_len = ss__get16(ip + 4);
        h->proto = ip[6];
        h->ttl = ip[7];
    }
    h->tcp_doff = tcp[12] >> 4;
    h->tcp_cksum = ss__get16(tcp + 16);
}

int ss_ana_packet(ss_ana *a, uint64_t t_us, const uint8_t *pkt, size_t len,
                  struct ss_ana_rec *rec)
{
    struct ss_ana_end src, dst;
    uint8_t proto;
    size_t off;
    long n = parse_ip(pkt, len, &src, &dst, &proto, &off, false);
    if (n < 0)
        return 0;
    bool v6 = src.family == AF_INET6;
    if (proto == (v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP))
        return on_icmp(a, t_us, &src, v6, pkt + off, (size_t)n, rec);
    if (proto != IPPROTO_TCP)
        return 0;
    memset(rec, 0, sizeof *rec);
    if (ss_tcp_seg_decode(pkt + off, (size_t)n, &src.port, &dst.port, &rec->seg) < 0)
        return 0;
    header_fields(pkt, pkt + off, &rec->hdr);
    return segment_rec(a, t_us, &src, &dst, rec);
}

static void end_v4(struct ss_ana_end *e, uint32_t addr, uint16_t port)
{
    memset(e, 0, sizeof *e);
    e->family = AF_INET;
    uint32_t be = htonl(addr);
    memcpy(e->addr, &be, 4);
    e->port = port;
}

int ss_ana_trace(ss_ana *a, const struct ss_trace_event *ev, struct ss_ana_rec *rec)
{
    struct ss_ana_end l, rm;
    end_v4(&l, ev->laddr, ev->lport);
    end_v4(&rm, ev->raddr, ev->rport);
    memset(rec, 0, sizeof *rec);
    switch (ev->kind) {
    case SS_TRACE_SEG_OUT:
    case SS_TRACE_RETRANSMIT:
    case SS_TRACE_SEG_IN: {
        bool in = ev->kind == SS_TRACE_SEG_IN;
        rec->seg = ev->u.seg;
        return segment_rec(a, ev->time_us, in ? &rm : &l, in ? &l : &rm, rec);
    }
    case SS_TRACE_STATE: {
        if (ev->raddr == 0 && ev->rport == 0)
            return 0;   /* a listener: no connection yet */
        int x;
        size_t before = a->nconns;
        struct conn *c = conn_find(a, &l, &rm, true, &x);
        if (!c)
            return -ENOSPC;
        if (a->nconns != before) {
            c->s[0].state = ev->u.state.old_state;
            c->s[1].state = ev->u.state.old_state == SS_TCP_LISTEN ? SS_TCP_SYN_SENT
                                                                   : SS_TCP_CLOSED;
        }
        rec->kind = SS_ANA_STATE;
        rec->t_us = ev->time_us;
        rec->conn = c->id;
        rec->from = x;
        rec->src = l;
        rec->dst = rm;
        c->s[x].traced = false;
        c->s[x].state = ev->u.state.old_state;
        change(c, rec, x, ev->u.state.new_state);
        /* From the first traced change on, the stacks say where both sides
         * are; inferring the other side too would tell it twice. */
        c->s[0].traced = c->s[1].traced = true;
        rec->state[0] = c->s[0].state;
        rec->state[1] = c->s[1].state;
        return 1;
    }
    default:
        return 0;
    }
}

#define app ss__fmt_app

/* "SRC DST " of a record's segment. */
static void tuple(const struct ss_ana_end *s, const struct ss_ana_end *d, char *buf,
                  size_t len, size_t *n)
{
    char a[64], b[64];
    ss_ana_end_format(s, a, sizeof a);
    ss_ana_end_format(d, b, sizeof b);
    app(buf, len, n, "%s %s ", a, b);
}

/* The segment part, in ss_trace_format's words. */
static void seg_text(const struct ss_trace_seg *g, bool rtx, char *buf, size_t len, size_t *n)
{
    struct ss_trace_event ev = {.kind = rtx ? SS_TRACE_RETRANSMIT : SS_TRACE_SEG_OUT};
    ev.u.seg = *g;
    char line[512];
    ss_trace_format(&ev, 0, line, sizeof line);
    app(buf, len, n, "%s", line);
}

int ss_ana_format(const struct ss_ana_rec *r, unsigned fmt, uint64_t t0, char *buf, size_t len)
{
    size_t n = 0;
    if (len)
        buf[0] = '\0';
    if (fmt & SS_TRACE_FMT_TIME) {
        uint64_t t = r->t_us >= t0 ? r->t_us - t0 : 0;
        app(buf, len, &n, "%llu.%06llu ", (unsigned long long)(t / 1000000),
            (unsigned long long)(t % 1000000));
    }
    switch (r->kind) {
    case SS_ANA_SEG:
        tuple(&r->src, &r->dst, buf, len, &n);
        seg_text(&r->seg, r->flags & SS_ANA_RTX, buf, len, &n);
        for (unsigned b = 1; b < (1u << SS_ANA_NFLAGS); b <<= 1) {
            if (!(r->flags & b) || b == SS_ANA_RTX)
                continue;
            if (b == SS_ANA_DUPACK)
                app(buf, len, &n, " [dup-ack %u]", r->dupack);
            else
                app(buf, len, &n, " [%s]", ss_ana_flag_name(b));
        }
        break;
    case SS_ANA_ICMP_ERR: {
        char f[64];
        ss_ana_end_format(&r->icmp_from, f, sizeof f);
        char *colon = strrchr(f, ':');
        if (colon)
            *colon = '\0';   /* no port for an ICMP sender */
        if (f[0] == '[')
            memmove(f, f + 1, strlen(f)), f[strlen(f) - 1] = '\0';
        app(buf, len, &n, "%s > ICMP type=%u code=%u about ", f, r->icmp_type, r->icmp_code);
        tuple(&r->src, &r->dst, buf, len, &n);
        app(buf, len, &n, "seq=%u [%s]", r->seg.seq, ss_ana_flag_name(SS_ANA_ICMP));
        break;
    }
    case SS_ANA_STATE:
        if (r->nchanges)
            return ss_ana_format_change(r, 0, buf + (n < len ? n : len),
                                        n < len ? len - n : 0) + (int)n;
        break;
    }
    return (int)n;
}

int ss_ana_format_change(const struct ss_ana_rec *r, int i, char *buf, size_t len)
{
    size_t n = 0;
    if (len)
        buf[0] = '\0';
    if (i < 0 || i >= r->nchanges)
        return 0;
    bool mine = r->change[i].side == r->from;
    const struct ss_ana_end *me = mine ? &r->src : &r->dst, *peer = mine ? &r->dst : &r->src;
    tuple(me, peer, buf, len, &n);
    app(buf, len, &n, "%s -> %s", ss_tcp_state_name(r->change[i].old_state),
        ss_tcp_state_name(r->change[i].new_state));
    return (int)n;
}
