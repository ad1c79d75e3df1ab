/* Reading a run written by `stack demo --trace-json` back into trace
 * events (jansson), for the drawings and the viewer. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "sockstack/err.h"
#include "sockstack/viz.h"

/* "10.0.0.1:5001" -> host-order address and port. */
static void addr_port(const char *s, uint32_t *a, uint16_t *p)
{
    char ip[32];
    unsigned port = 0;
    *a = 0;
    *p = 0;
    if (!s || sscanf(s, "%31[0-9.]:%u", ip, &port) != 2)
        return;
    struct in_addr in;
    if (inet_pton(AF_INET, ip, &in) == 1)
        *a = ntohl(in.s_addr);
    *p = (uint16_t)port;
}

static const struct { const char *name; int kind; } kinds[] = {
    {"state", SS_TRACE_STATE}, {"seg_in", SS_TRACE_SEG_IN}, {"seg_out", SS_TRACE_SEG_OUT},
    {"retransmit", SS_TRACE_RETRANSMIT}, {"rtt", SS_TRACE_RTT}, {"cc", SS_TRACE_CC},
};

static int state_of(const char *name)
{
    for (int s = 0; s < SS_TCP_NSTATES; s++)
        if (name && !strcmp(name, ss_tcp_state_name(s)))
            return s;
    return -1;
}

static uint32_t u32(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (uint32_t)json_integer_value(v) : 0;
}

/* One line into ev: 1, or 0 when it is not a trace event we use, or
 * SS_EBADPKT when a segment's flags are not in the trace's notation. */
static int to_event(json_t *o, struct ss_trace_event *ev)
{
    const char *kind = json_string_value(json_object_get(o, "kind"));
    memset(ev, 0, sizeof *ev);
    for (size_t i = 0; kind && i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(kind, kinds[i].name))
            ev->kind = kinds[i].kind;
    if (!ev->kind)
        return 0;
    json_t *t = json_object_get(o, "t_us");
    ev->time_us = json_is_integer(t) ? (uint64_t)json_integer_value(t) : 0;
    addr_port(json_string_value(json_object_get(o, "local")), &ev->laddr, &ev->lport);
    addr_port(json_string_value(json_object_get(o, "remote")), &ev->raddr, &ev->rport);
    switch (ev->kind) {
    case SS_TRACE_STATE:
        ev->u.state.old_state = state_of(json_string_value(json_object_get(o, "old")));
        ev->u.state.new_state = state_of(json_string_value(json_object_get(o, "new")));
        return ev->u.state.old_state >= 0 && ev->u.state.new_state >= 0;
    case SS_TRACE_RTT:
        ev->u.rtt.sample_us = u32(o, "sample_us");
        ev->u.rtt.srtt_us = u32(o, "srtt_us");
        ev->u.rtt.rttvar_us = u32(o, "rttvar_us");
        ev->u.rtt.rto_us = u32(o, "rto_us");
        return 1;
    case SS_TRACE_CC: {
        ev->u.cc.cwnd = u32(o, "cwnd");
        json_t *st = json_object_get(o, "ssthresh");
        ev->u.cc.ssthresh = json_is_integer(st) ? (uint32_t)json_integer_value(st) : UINT32_MAX;
        ev->u.cc.peer_wnd = u32(o, "peer_wnd");
        return 1;
    }
    default: {
        struct ss_trace_seg *g = &ev->u.seg;
        if (ss_tcp_flags_parse(json_string_value(json_object_get(o, "flags")), &g->flags) < 0)
            return SS_EBADPKT;
        g->seq = u32(o, "seq");
        g->ack = u32(o, "ack");
        g->win = (uint16_t)u32(o, "win");
        g->len = u32(o, "len");
        g->mss = (uint16_t)u32(o, "mss");
        json_t *ws = json_object_get(o, "wscale");
        g->wscale = json_is_integer(ws) ? (int8_t)json_integer_value(ws) : -1;
        g->sack_ok = json_is_true(json_object_get(o, "sack_ok"));
        g->ts = json_object_get(o, "ts_val") != NULL;
        g->ts_val = u32(o, "ts_val");
        g->ts_ecr = u32(o, "ts_ecr");
        json_t *sk = json_object_get(o, "sack");
        for (size_t b = 0; json_is_array(sk) && b < json_array_size(sk) && b < 4; b++) {
            json_t *e = json_array_get(sk, b);
            g->sack[b][0] = (uint32_t)json_integer_value(json_array_get(e, 0));
            g->sack[b][1] = (uint32_t)json_integer_value(json_array_get(e, 1));
            g->nsack = (uint8_t)(b + 1);
        }
        return 1;
    }
    }
}

int ss_viz_read_jsonl(ss_viz *v, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -errno;
    }
    char line[8192];
    long no = 0;
    int rc = 0;
    uint64_t t_end = 0;
    while (fgets(line, sizeof line, f)) {
        no++;
        if (line[0] != '{')
            continue;   /* the summary after the trace */
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        if (!o || !json_is_object(o)) {
            snprintf(err, errlen, "%s:%ld: not a JSON object: %s", path, no, je.text);
            json_decref(o);
            rc = SS_EBADPKT;
            break;
        }
        const char *node = json_string_value(json_object_get(o, "node"));
        struct ss_trace_event ev;
        int used = node ? to_event(o, &ev) : 0;
        if (used < 0) {
            const char *fl = json_string_value(json_object_get(o, "flags"));
            snprintf(err, errlen, "%s:%ld: bad TCP flags \"%.40s\" (want e.g. \"SYN,ACK\")",
                     path, no, fl ? fl : "(none)");
            json_decref(o);
            rc = used;
            break;
        }
        if (used) {
            ss_viz_stack_event(v, strcmp(node, "A") == 0 ? 0 : 1, &ev, true);
            if (ev.time_us > t_end)
                t_end = ev.time_us;
        }
        json_decref(o);
    }
    fclose(f);
    ss_viz_finish(v, t_end);
    return rc;
}
