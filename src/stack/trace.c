/* trace: names, trace event emission and the two line formats (text, JSON). */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/fmt.h"
#include "sockstack/err.h"
#include "stack_int.h"

static const char *const state_names[SS_TCP_NSTATES] = {
    [SS_TCP_CLOSED] = "CLOSED",
    [SS_TCP_LISTEN] = "LISTEN",
    [SS_TCP_SYN_SENT] = "SYN-SENT",
    [SS_TCP_SYN_RECEIVED] = "SYN-RECEIVED",
    [SS_TCP_ESTABLISHED] = "ESTABLISHED",
    [SS_TCP_FIN_WAIT_1] = "FIN-WAIT-1",
    [SS_TCP_FIN_WAIT_2] = "FIN-WAIT-2",
    [SS_TCP_CLOSE_WAIT] = "CLOSE-WAIT",
    [SS_TCP_CLOSING] = "CLOSING",
    [SS_TCP_LAST_ACK] = "LAST-ACK",
    [SS_TCP_TIME_WAIT] = "TIME-WAIT",
};

const char *ss_tcp_state_name(int state)
{
    if (state < 0 || state >= SS_TCP_NSTATES)
        return "?";
    return state_names[state];
}

static const char *const drop_names[SS_DROP_NREASONS] = {
    [SS_DROP_IP_SHORT] = "ip-short",
    [SS_DROP_IP_VERSION] = "ip-version",
    [SS_DROP_IP_HDRLEN] = "ip-header-length",
    [SS_DROP_IP_TOTLEN] = "ip-total-length",
    [SS_DROP_IP_CHECKSUM] = "ip-checksum",
    [SS_DROP_IP_NOT_US] = "ip-not-for-us",
    [SS_DROP_IP_SRC] = "ip-bad-source",
    [SS_DROP_IP_FRAG] = "ip-fragment",
    [SS_DROP_IP_PROTO] = "ip-unknown-protocol",
    [SS_DROP_ICMP_BAD] = "icmp-bad",
    [SS_DROP_UDP_BAD] = "udp-bad",
    [SS_DROP_UDP_NO_PORT] = "udp-no-port",
    [SS_DROP_UDP_QUEUE_FULL] = "udp-queue-full",
    [SS_DROP_TCP_BAD_CHECKSUM] = "tcp-checksum",
    [SS_DROP_TCP_BAD_HEADER] = "tcp-bad-header",
    [SS_DROP_TCP_NO_SOCKET] = "tcp-no-socket",
    [SS_DROP_TCP_UNACCEPTABLE] = "tcp-unacceptable",
    [SS_DROP_TCP_BAD_ACK] = "tcp-bad-ack",
    [SS_DROP_TCP_RST_INVALID] = "tcp-rst-invalid",
    [SS_DROP_TCP_CHALLENGE] = "tcp-challenge-ack",
    [SS_DROP_TCP_SYN_QUEUE_FULL] = "tcp-syn-queue-full",
    [SS_DROP_TCP_NO_MEMORY] = "tcp-no-memory",
    [SS_DROP_TCP_OOO_FULL] = "tcp-ooo-full",
    [SS_DROP_TCP_NO_FLAGS] = "tcp-no-flags",
    [SS_DROP_TCP_PAWS] = "tcp-paws",
};

const char *ss_drop_reason_name(int reason)
{
    if (reason <= 0 || reason >= SS_DROP_NREASONS || !drop_names[reason])
        return "?";
    return drop_names[reason];
}

const char *ss_trace_kind_name(int kind)
{
    switch (kind) {
    case SS_TRACE_STATE: return "state";
    case SS_TRACE_SEG_IN: return "seg_in";
    case SS_TRACE_SEG_OUT: return "seg_out";
    case SS_TRACE_RETRANSMIT: return "retransmit";
    case SS_TRACE_RTT: return "rtt";
    case SS_TRACE_WINDOW: return "window";
    case SS_TRACE_DROP: return "drop";
    case SS_TRACE_ICMP_IN: return "icmp_in";
    case SS_TRACE_ICMP_OUT: return "icmp_out";
    case SS_TRACE_UDP_IN: return "udp_in";
    case SS_TRACE_UDP_OUT: return "udp_out";
    case SS_TRACE_CC: return "cc";
    case SS_TRACE_SYNCOOKIE: return "syncookie";
    default: return "?";
    }
}

#define app ss__fmt_app

int ss_tcp_options_format(const uint8_t *opt, size_t len, char *buf, size_t buflen)
{
    size_t n = 0, i = 0;
    if (buflen)
        buf[0] = '\0';
    while (i < len) {
        uint8_t kind = opt[i];
        const char *sep = i ? "," : "";
        if (kind == 0) {
            app(buf, buflen, &n, "%seol", sep);
            break;
        }
        if (kind == 1) {
            app(buf, buflen, &n, "%snop", sep);
            i++;
            continue;
        }
        if (i + 1 >= len || opt[i + 1] < 2 || i + opt[i + 1] > len) {
            app(buf, buflen, &n, "%sbad-opts", sep);
            break;
        }
        uint8_t ol = opt[i + 1];
        const uint8_t *v = opt + i + 2;
        if (kind == 2 && ol == 4) {
            app(buf, buflen, &n, "%smss %u", sep, ss__get16(v));
        } else if (kind == 3 && ol == 3) {
            app(buf, buflen, &n, "%swscale %u", sep, v[0]);
        } else if (kind == 4 && ol == 2) {
            app(buf, buflen, &n, "%ssackOK", sep);
        } else if (kind == 8 && ol == 10) {
            app(buf, buflen, &n, "%sTS val %u ecr %u", sep, ss__get32(v), ss__get32(v + 4));
        } else if (kind == 5 && (ol - 2) % 8 == 0) {
            app(buf, buflen, &n, "%ssack %u ", sep, (ol - 2u) / 8);
            for (size_t b = 0; b + 8 <= (size_t)ol - 2; b += 8)
                app(buf, buflen, &n, "{%u:%u}", ss__get32(v + b), ss__get32(v + b + 4));
        } else {
            app(buf, buflen, &n, "%sopt-%u:%u", sep, kind, ol);
        }
        i += ol;
    }
    return (int)n;
}

static void addr_str(uint32_t a, uint16_t port, char *out, size_t len)
{
    snprintf(out, len, "%u.%u.%u.%u:%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255,
             port);
}

/* "sent", "accepted", "rejected" for a SYN cookie event. */
static const char *cookie_what(int what)
{
    switch (what) {
    case SS_COOKIE_SENT: return "sent";
    case SS_COOKIE_ACCEPTED: return "accepted";
    case SS_COOKIE_REJECTED: return "rejected";
    default: return "?";
    }
}

/* The trace's words for what changed the congestion state ("" for growth). */
static const char *cc_mark_text(int mark)
{
    switch (mark) {
    case SS_CC_MARK_INIT: return "initial window";
    case SS_CC_MARK_FAST_RETRANSMIT: return "dup ACK #3 -> fast retransmit, enter fast recovery";
    case SS_CC_MARK_PARTIAL_ACK: return "partial ACK -> retransmit next hole";
    case SS_CC_MARK_EXIT_RECOVERY: return "exit fast recovery";
    case SS_CC_MARK_EXIT_LOSS: return "exit RTO recovery";
    case SS_CC_MARK_RTO: return "RTO -> cwnd 1 MSS";
    case SS_CC_MARK_IDLE_RESTART: return "idle restart -> cwnd min(IW, cwnd)";
    case SS_CC_MARK_LOST_RXT: return "retransmission lost too -> resend it";
    case SS_CC_MARK_HYSTART_CSS: return "HyStart++: RTT rose -> conservative slow start";
    case SS_CC_MARK_HYSTART_SS: return "HyStart++: RTT fell -> slow start again";
    case SS_CC_MARK_HYSTART_CA: return "HyStart++: CSS over -> ssthresh = cwnd";
    case SS_CC_MARK_TLP: return "tail loss probe";
    case SS_CC_MARK_TLP_LOSS: return "the probe repaired a loss -> ssthresh, cwnd reduced";
    case SS_CC_MARK_HYSTART_TRAIN: return "HyStart: ACK train > min RTT / 2 -> ssthresh = cwnd";
    case SS_CC_MARK_RACK: return "RACK: reordering window over -> fast retransmit, enter fast recovery";
    case SS_CC_MARK_RACK_HOLES: return "RACK: reordering window over -> what was sent before a delivered segment is lost";
    default: return "";
    }
}

int ss_trace_format(const struct ss_trace_event *ev, unsigned flags, char *buf, size_t len)
{
    size_t n = 0;
    char fl[40], a[32], b[32];
    if (len)
        buf[0] = '\0';
    if (flags & SS_TRACE_FMT_TIME)
        app(buf, len, &n, "%llu.%06llu ", (unsigned long long)(ev->time_us / 1000000),
            (unsigned long long)(ev->time_us % 1000000));
    if (flags & SS_TRACE_FMT_TUPLE) {
        addr_str(ev->laddr, ev->lport, a, sizeof a);
        addr_str(ev->raddr, ev->rport, b, sizeof b);
        app(buf, len, &n, "%s %s ", a, b);
    }
    switch (ev->kind) {
    case SS_TRACE_STATE:
        app(buf, len, &n, "%s -> %s", ss_tcp_state_name(ev->u.state.old_state),
            ss_tcp_state_name(ev->u.state.new_state));
        break;
    case SS_TRACE_SEG_IN:
    case SS_TRACE_SEG_OUT:
    case SS_TRACE_RETRANSMIT: {
        const struct ss_trace_seg *s = &ev->u.seg;
        app(buf, len, &n, "%s %s%s seq=%u", ev->kind == SS_TRACE_SEG_IN ? "<" : ">",
            ev->kind == SS_TRACE_RETRANSMIT ? "[rtx] " : "",
            ss_tcp_flags_str(s->flags, fl, sizeof fl), s->seq);
        if (s->flags & SS_TCP_ACK)
            app(buf, len, &n, " ack=%u", s->ack);
        app(buf, len, &n, " win=%u", s->win);
        if (s->len)
            app(buf, len, &n, " len=%u", s->len);
        if (s->flags & SS_TCP_URG)
            app(buf, len, &n, " urp=%u", s->urp);
        if (s->opt_len) {
            char o[256];
            ss_tcp_options_format(s->opt, ss__min32(s->opt_len, sizeof s->opt), o, sizeof o);
            app(buf, len, &n, " <%s>", o);
        } else if (s->mss) {
            app(buf, len, &n, " <mss %u>", s->mss);
        }
        break;
    }
    case SS_TRACE_RTT:
        if (ev->u.rtt.sample_us)
            app(buf, len, &n, "rtt sample=%uus ", ev->u.rtt.sample_us);
        else
            app(buf, len, &n, "rto backoff=%u ", ev->u.rtt.backoff);
        app(buf, len, &n, "srtt=%uus rttvar=%uus rto=%uus", ev->u.rtt.srtt_us,
            ev->u.rtt.rttvar_us, ev->u.rtt.rto_us);
        break;
    case SS_TRACE_WINDOW:
        app(buf, len, &n, "%s window %u -> %u", ev->u.win.ours ? "rcv" : "snd",
            ev->u.win.old_win, ev->u.win.new_win);
        break;
    case SS_TRACE_DROP:
        app(buf, len, &n, "drop %s", ss_drop_reason_name(ev->u.drop.reason));
        break;
    case SS_TRACE_ICMP_IN:
    case SS_TRACE_ICMP_OUT:
        app(buf, len, &n, "%s ICMP type=%u code=%u len=%u",
            ev->kind == SS_TRACE_ICMP_IN ? "<" : ">", ev->u.icmp.type, ev->u.icmp.code,
            ev->u.icmp.len);
        break;
    case SS_TRACE_UDP_IN:
    case SS_TRACE_UDP_OUT:
        app(buf, len, &n, "%s UDP len=%u", ev->kind == SS_TRACE_UDP_IN ? "<" : ">",
            ev->u.udp.len);
        break;
    case SS_TRACE_CC: {
        const char *m = cc_mark_text(ev->u.cc.mark);
        if (*m)
            app(buf, len, &n, "%s: ", m);
        app(buf, len, &n, "cwnd=%u", ev->u.cc.cwnd);
        if (ev->u.cc.ssthresh == UINT32_MAX)
            app(buf, len, &n, " ssthresh=inf");
        else
            app(buf, len, &n, " ssthresh=%u", ev->u.cc.ssthresh);
        app(buf, len, &n, " flight=%u peer-wnd=%u %s %s", ev->u.cc.flight, ev->u.cc.peer_wnd,
            ss_cc_phase_name(ev->u.cc.phase), ss_tcp_cc_name(ev->u.cc.algo));
        break;
    }
    case SS_TRACE_SYNCOOKIE:
        app(buf, len, &n, "syncookie %s isn=%u", cookie_what(ev->u.cookie.what),
            ev->u.cookie.isn);
        if (ev->u.cookie.mss)
            app(buf, len, &n, " mss=%u", ev->u.cookie.mss);
        break;
    default:
        app(buf, len, &n, "?");
        break;
    }
    return (int)n;
}

int ss_trace_format_json(const struct ss_trace_event *ev, char *buf, size_t len)
{
    char a[32], b[32], fl[40];
    json_t *o = json_object();
    if (!o)
        return -ENOMEM;
    json_object_set_new(o, "t_us", json_integer((json_int_t)ev->time_us));
    json_object_set_new(o, "kind", json_string(ss_trace_kind_name(ev->kind)));
    json_object_set_new(o, "sd", json_integer(ev->sd));
    addr_str(ev->laddr, ev->lport, a, sizeof a);
    addr_str(ev->raddr, ev->rport, b, sizeof b);
    json_object_set_new(o, "local", json_string(a));
    json_object_set_new(o, "remote", json_string(b));
    switch (ev->kind) {
    case SS_TRACE_STATE:
        json_object_set_new(o, "old", json_string(ss_tcp_state_name(ev->u.state.old_state)));
        json_object_set_new(o, "new", json_string(ss_tcp_state_name(ev->u.state.new_state)));
        break;
    case SS_TRACE_SEG_IN:
    case SS_TRACE_SEG_OUT:
    case SS_TRACE_RETRANSMIT:
        json_object_set_new(o, "dir", json_string(ev->kind == SS_TRACE_SEG_IN ? "in" : "out"));
        json_object_set_new(o, "flags", json_string(ss_tcp_flags_str(ev->u.seg.flags, fl, sizeof fl)));
        json_object_set_new(o, "seq", json_integer(ev->u.seg.seq));
        json_object_set_new(o, "ack", json_integer(ev->u.seg.ack));
        json_object_set_new(o, "win", json_integer(ev->u.seg.win));
        json_object_set_new(o, "len", json_integer(ev->u.seg.len));
        if (ev->u.seg.mss)
            json_object_set_new(o, "mss", json_integer(ev->u.seg.mss));
        if (ev->u.seg.wscale >= 0 && ev->u.seg.opt_len)
            json_object_set_new(o, "wscale", json_integer(ev->u.seg.wscale));
        if (ev->u.seg.sack_ok)
            json_object_set_new(o, "sack_ok", json_true());
        if (ev->u.seg.ts) {
            json_object_set_new(o, "ts_val", json_integer(ev->u.seg.ts_val));
            json_object_set_new(o, "ts_ecr", json_integer(ev->u.seg.ts_ecr));
        }
        if (ev->u.seg.nsack) {
            json_t *arr = json_array();
            for (unsigned k = 0; k < ev->u.seg.nsack && k < 4; k++)
                json_array_append_new(arr, json_pack("[I,I]", (json_int_t)ev->u.seg.sack[k][0],
                                                     (json_int_t)ev->u.seg.sack[k][1]));
            json_object_set_new(o, "sack", arr);
        }
        if (ev->u.seg.opt_len) {
            char ob[256];
            ss_tcp_options_format(ev->u.seg.opt, ss__min32(ev->u.seg.opt_len, 40), ob, sizeof ob);
            json_object_set_new(o, "options", json_string(ob));
        }
        if (ev->u.seg.flags & SS_TCP_URG)
            json_object_set_new(o, "urp", json_integer(ev->u.seg.urp));
        json_object_set_new(o, "rtx", json_boolean(ev->kind == SS_TRACE_RETRANSMIT));
        break;
    case SS_TRACE_RTT:
        json_object_set_new(o, "sample_us", json_integer(ev->u.rtt.sample_us));
        json_object_set_new(o, "srtt_us", json_integer(ev->u.rtt.srtt_us));
        json_object_set_new(o, "rttvar_us", json_integer(ev->u.rtt.rttvar_us));
        json_object_set_new(o, "rto_us", json_integer(ev->u.rtt.rto_us));
        json_object_set_new(o, "backoff", json_integer(ev->u.rtt.backoff));
        break;
    case SS_TRACE_WINDOW:
        json_object_set_new(o, "which", json_string(ev->u.win.ours ? "rcv" : "snd"));
        json_object_set_new(o, "old", json_integer(ev->u.win.old_win));
        json_object_set_new(o, "new", json_integer(ev->u.win.new_win));
        break;
    case SS_TRACE_DROP:
        json_object_set_new(o, "reason", json_string(ss_drop_reason_name(ev->u.drop.reason)));
        json_object_set_new(o, "proto", json_integer(ev->u.drop.proto));
        break;
    case SS_TRACE_ICMP_IN:
    case SS_TRACE_ICMP_OUT:
        json_object_set_new(o, "type", json_integer(ev->u.icmp.type));
        json_object_set_new(o, "code", json_integer(ev->u.icmp.code));
        json_object_set_new(o, "len", json_integer(ev->u.icmp.len));
        break;
    case SS_TRACE_UDP_IN:
    case SS_TRACE_UDP_OUT:
        json_object_set_new(o, "len", json_integer(ev->u.udp.len));
        break;
    case SS_TRACE_CC:
        json_object_set_new(o, "cwnd", json_integer(ev->u.cc.cwnd));
        json_object_set_new(o, "ssthresh", ev->u.cc.ssthresh == UINT32_MAX
                                               ? json_null()
                                               : json_integer(ev->u.cc.ssthresh));
        json_object_set_new(o, "flight", json_integer(ev->u.cc.flight));
        json_object_set_new(o, "peer_wnd", json_integer(ev->u.cc.peer_wnd));
        json_object_set_new(o, "mss", json_integer(ev->u.cc.mss));
        json_object_set_new(o, "phase", json_string(ss_cc_phase_name(ev->u.cc.phase)));
        json_object_set_new(o, "algo", json_string(ss_tcp_cc_name(ev->u.cc.algo)));
        if (*cc_mark_text(ev->u.cc.mark))
            json_object_set_new(o, "mark", json_string(cc_mark_text(ev->u.cc.mark)));
        break;
    case SS_TRACE_SYNCOOKIE:
        json_object_set_new(o, "what", json_string(cookie_what(ev->u.cookie.what)));
        json_object_set_new(o, "isn", json_integer(ev->u.cookie.isn));
        if (ev->u.cookie.mss)
            json_object_set_new(o, "mss", json_integer(ev->u.cookie.mss));
        break;
    default:
        break;
    }
    size_t need = json_dumpb(o, NULL, 0, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (need == 0) {
        json_decref(o);
        return -EINVAL;
    }
    if (len > 0) {
        size_t w = json_dumpb(o, buf, len - 1, JSON_COMPACT | JSON_PRESERVE_ORDER);
        buf[w < len - 1 ? w : len - 1] = '\0';
    }
    json_decref(o);
    return (int)need;
}

/* ---- emission ------------------------------------------------------------ */
static void fill_tuple(struct ss_trace_event *ev, const struct ss_pcb *sk)
{
    ev->sd = sk ? sk->id : -1;
    if (sk) {
        ev->laddr = sk->laddr;
        ev->raddr = sk->raddr;
        ev->lport = sk->lport;
        ev->rport = sk->rport;
    }
}

void ss__trace(ss_stack *st, struct ss_trace_event *ev)
{
    if (!st->cfg.trace)
        return;
    ev->time_us = st->now;
    st->cfg.trace(st->cfg.trace_ctx, ev);
}

void ss__trace_state(ss_stack *st, struct ss_pcb *sk, int old_state, int new_state)
{
    if (!st->cfg.trace)
        return;
    struct ss_trace_event ev = {.kind = SS_TRACE_STATE};
    fill_tuple(&ev, sk);
    ev.u.state.old_state = old_state;
    ev.u.state.new_state = new_state;
    ss__trace(st, &ev);
}

/* The traced view of a parsed segment (the one place that fills it). */
static void seg_to_trace(const struct ss_seg *seg, struct ss_trace_seg *o)
{
    o->flags = seg->flags;
    o->seq = seg->seq;
    o->ack = seg->ack;
    o->win = seg->wnd;
    o->len = seg->len;
    o->mss = seg->mss;
    o->opt_len = seg->opt_len;
    o->urp = seg->urp;
    if (seg->opt && seg->opt_len)
        memcpy(o->opt, seg->opt, ss__min32(seg->opt_len, sizeof o->opt));
    o->wscale = seg->has_ws ? (int8_t)(seg->ws > 127 ? 127 : seg->ws) : -1;
    o->sack_ok = seg->sack_ok;
    o->ts = seg->has_ts;
    o->ts_val = seg->ts_val;
    o->ts_ecr = seg->ts_ecr;
    o->nsack = seg->nsack;
    for (unsigned b = 0; b < seg->nsack && b < 4; b++) {
        o->sack[b][0] = seg->sack[b].start;
        o->sack[b][1] = seg->sack[b].end;
    }
}

void ss__trace_seg(ss_stack *st, struct ss_pcb *sk, enum ss_trace_kind kind,
                   const struct ss_seg *seg)
{
    if (!st->cfg.trace)
        return;
    struct ss_trace_event ev = {.kind = kind};
    fill_tuple(&ev, sk);
    if (!sk) {
        bool in = kind == SS_TRACE_SEG_IN;
        ev.laddr = in ? seg->dst : seg->src;
        ev.raddr = in ? seg->src : seg->dst;
        ev.lport = in ? seg->dport : seg->sport;
        ev.rport = in ? seg->sport : seg->dport;
    }
    seg_to_trace(seg, &ev.u.seg);
    ss__trace(st, &ev);
}

int ss_tcp_seg_decode(const uint8_t *tcp, size_t len, uint16_t *sport, uint16_t *dport,
                      struct ss_trace_seg *out)
{
    struct ss_seg seg = {0};
    int off = ss__tcp_parse_header(tcp, len, &seg);
    if (off < 0)
        return SS_EBADPKT;
    memset(out, 0, sizeof *out);
    seg_to_trace(&seg, out);
    *sport = seg.sport;
    *dport = seg.dport;
    return off;
}

void ss__trace_drop(ss_stack *st, struct ss_pcb *sk, int reason, uint8_t proto, uint32_t src,
                    uint32_t dst, uint16_t sport, uint16_t dport)
{
    if (!st->cfg.trace)
        return;
    struct ss_trace_event ev = {.kind = SS_TRACE_DROP};
    fill_tuple(&ev, sk);
    if (!sk) {
        ev.laddr = dst;
        ev.raddr = src;
        ev.lport = dport;
        ev.rport = sport;
    }
    ev.u.drop.reason = reason;
    ev.u.drop.proto = proto;
    ss__trace(st, &ev);
}

void ss__trace_rtt(ss_stack *st, struct ss_pcb *sk, uint32_t sample)
{
    if (!st->cfg.trace)
        return;
    struct ss_trace_event ev = {.kind = SS_TRACE_RTT};
    fill_tuple(&ev, sk);
    ev.u.rtt.sample_us = sample;
    ev.u.rtt.srtt_us = sk->srtt_us;
    ev.u.rtt.rttvar_us = sk->rttvar_us;
    ev.u.rtt.rto_us = sk->rto_us;
    ev.u.rtt.backoff = sk->backoff;
    ss__trace(st, &ev);
}

void ss__trace_cc(ss_stack *st, struct ss_pcb *sk, enum ss_cc_mark mark)
{
    if (!st->cfg.trace)
        return;
    struct ss_trace_event ev = {.kind = SS_TRACE_CC};
    fill_tuple(&ev, sk);
    ev.u.cc.cwnd = sk->cwnd;
    ev.u.cc.ssthresh = sk->ssthresh;
    ev.u.cc.flight = ss__cc_flight(sk);
    ev.u.cc.peer_wnd = sk->snd_wnd;
    ev.u.cc.mss = sk->snd_mss;
    ev.u.cc.phase = sk->cc_phase;
    ev.u.cc.mark = (uint8_t)mark;
    ev.u.cc.algo = (uint8_t)sk->cc->algo;
    ss__trace(st, &ev);
}

void ss__trace_win(ss_stack *st, struct ss_pcb *sk, bool ours, uint32_t o, uint32_t n)
{
    if (!st->cfg.trace)
        return;
    struct ss_trace_event ev = {.kind = SS_TRACE_WINDOW};
    fill_tuple(&ev, sk);
    ev.u.win.ours = ours;
    ev.u.win.old_win = o;
    ev.u.win.new_win = n;
    ss__trace(st, &ev);
}

void ss__trace_cookie(ss_stack *st, const struct ss_seg *seg, enum ss_cookie_what what,
                      uint32_t isn, uint16_t mss)
{
    if (!st->cfg.trace)
        return;
    struct ss_trace_event ev = {.kind = SS_TRACE_SYNCOOKIE, .sd = -1};
    ev.laddr = seg->dst;
    ev.raddr = seg->src;
    ev.lport = seg->dport;
    ev.rport = seg->sport;
    ev.u.cookie.what = (uint8_t)what;
    ev.u.cookie.isn = isn;
    ev.u.cookie.mss = mss;
    ss__trace(st, &ev);
}
