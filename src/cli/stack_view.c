/* Sequence diagram (terminal and SVG) and plots of a simulated connection.
 *
 * The record is built from two sources while the run goes on: the link's
 * tap (each packet's send, loss and arrival, with its bytes) and the
 * stacks' trace (state changes, retransmission marks, RTT and cwnd). Rows
 * are appended in virtual-time order, which is the order things happen. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/stack_view.h"

int sv_init(struct sv_log *l)
{
    memset(l, 0, sizeof *l);
    l->rows = calloc(SV_MAX_ROWS, sizeof *l->rows);
    l->wires = calloc(SV_MAX_ROWS, sizeof *l->wires);
    l->pts = calloc(SV_MAX_POINTS, sizeof *l->pts);
    if (!l->rows || !l->wires || !l->pts) {
        sv_free(l);
        return -ENOMEM;
    }
    return 0;
}

void sv_free(struct sv_log *l)
{
    free(l->rows);
    free(l->wires);
    free(l->pts);
    memset(l, 0, sizeof *l);
}

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Parse an IPv4/TCP packet into w; false if it is not TCP. */
static bool parse_tcp(const uint8_t *pkt, size_t len, struct sv_wire *w)
{
    if (len < 20 || pkt[0] >> 4 != 4)
        return false;
    size_t ihl = (size_t)(pkt[0] & 15) * 4;
    size_t tot = get16(pkt + 2);
    if (ihl < 20 || tot > len || tot < ihl + 20 || pkt[9] != 6)
        return false;
    const uint8_t *t = pkt + ihl;
    size_t off = (size_t)(t[12] >> 4) * 4;
    if (off < 20 || ihl + off > tot)
        return false;
    w->seq = get32(t + 4);
    w->ack = get32(t + 8);
    w->flags = t[13];
    w->win = get16(t + 14);
    w->len = (uint32_t)(tot - ihl - off);
    w->mss = 0;
    for (size_t i = 20; i < off;) {
        uint8_t kind = t[i];
        if (kind == 0)
            break;
        if (kind == 1) {
            i++;
            continue;
        }
        if (i + 1 >= off || t[i + 1] < 2 || i + t[i + 1] > off)
            break;
        if (kind == 2 && t[i + 1] == 4)
            w->mss = get16(t + i + 2);
        i += t[i + 1];
    }
    return true;
}

static void describe_wire(const struct sv_wire *w, const uint32_t *isn_from,
                          const uint32_t *isn_to, char *buf, size_t cap)
{
    char f[40];
    ss_tcp_flags_str(w->flags, f, sizeof f);
    uint32_t seq = w->seq - (isn_from ? *isn_from : 0);
    size_t n = (size_t)snprintf(buf, cap, "%s seq=%u", f, seq);
    if (w->flags & 0x10)
        n += (size_t)snprintf(buf + n, cap > n ? cap - n : 0, " ack=%u",
                              w->ack - (isn_to ? *isn_to : 0));
    if (w->len)
        n += (size_t)snprintf(buf + n, cap > n ? cap - n : 0, " len=%u", w->len);
    if (!(w->flags & 0x04))
        n += (size_t)snprintf(buf + n, cap > n ? cap - n : 0, " win=%u", w->win);
    if (w->mss)
        snprintf(buf + n, cap > n ? cap - n : 0, " <mss %u>", w->mss);
}

void sv_describe(const uint8_t *pkt, size_t len, char *buf, size_t cap)
{
    struct sv_wire w;
    if (parse_tcp(pkt, len, &w)) {
        describe_wire(&w, NULL, NULL, buf, cap);
        return;
    }
    if (len >= 20 && pkt[9] == 17)
        snprintf(buf, cap, "UDP len=%zu", len - (size_t)(pkt[0] & 15) * 4 - 8);
    else if (len >= 20 && pkt[9] == 1)
        snprintf(buf, cap, "ICMP type=%u code=%u",
                 len > 21 ? pkt[(pkt[0] & 15) * 4] : 0,
                 len > 22 ? pkt[(pkt[0] & 15) * 4 + 1] : 0);
    else
        snprintf(buf, cap, "IP proto=%u len=%zu", len >= 20 ? pkt[9] : 0, len);
}

static int add_row(struct sv_log *l, enum sv_row_kind k, uint64_t t, int node, int wire)
{
    if (l->nrows == SV_MAX_ROWS) {
        l->truncated = true;
        return -1;
    }
    l->rows[l->nrows] = (struct sv_row){.kind = k, .t = t, .node = node, .wire = wire};
    return (int)l->nrows++;
}

static struct sv_wire *find_wire(struct sv_log *l, uint64_t id)
{
    /* Ids grow with the index; look back from the newest. */
    for (size_t i = l->nwires; i-- > 0;) {
        if (l->wires[i].id == id)
            return &l->wires[i];
        if (l->wires[i].id < id)
            break;
    }
    return NULL;
}

static void add_point(struct sv_log *l, uint64_t t, double v, enum sv_series s)
{
    if (l->npts < SV_MAX_POINTS)
        l->pts[l->npts++] = (struct sv_point){t, v, s};
}

/* A window holds until it changes: a step, not a slope. */
static void add_step(struct sv_log *l, uint64_t t, double v, enum sv_series series)
{
    if (l->step_known[series] && l->step_last[series] == v)
        return;
    if (l->step_known[series])
        add_point(l, t, l->step_last[series], series);
    add_point(l, t, v, series);
    l->step_known[series] = true;
    l->step_last[series] = v;
}

void sv_on_tap(struct sv_log *l, enum ss_sim_tap_point pt, int from, uint64_t id,
               uint64_t now, const uint8_t *pkt, size_t len)
{
    if (pt == SS_SIM_TAP_SEND) {
        struct sv_wire w = {.id = id, .from = from, .t_send = now,
                            .send_row = -1, .arrive_row = -1};
        w.tcp = parse_tcp(pkt, len, &w);
        if (!w.tcp)
            sv_describe(pkt, len, w.other, sizeof w.other);
        if (w.tcp && (w.flags & 0x02) && !l->isn_known[from]) {
            l->isn_known[from] = true;
            l->isn[from] = w.seq;
            size_t ihl = (size_t)(pkt[0] & 15) * 4;
            snprintf(l->name[from], sizeof l->name[from], "%u.%u.%u.%u:%u",
                     pkt[12], pkt[13], pkt[14], pkt[15], get16(pkt + ihl));
        }
        if (w.tcp && !(w.flags & 0x04) && (w.len || (w.flags & 0x03)))
            add_point(l, now, (double)(uint32_t)(w.seq - l->isn[from]) + w.len,
                      from == 0 ? SV_SEQ : SV_NSERIES);
        if (w.tcp && from == 0 && l->isn_known[0]) {
            uint32_t end = w.seq + w.len + ((w.flags & 0x03) ? 1 : 0);
            if (!l->flight_known) {
                l->snd_max = l->ack_max = end;
                l->flight_known = true;
            } else if ((int32_t)(end - l->snd_max) > 0) {
                l->snd_max = end;
            }
            add_point(l, now, (double)(uint32_t)(l->snd_max - l->ack_max), SV_INFLIGHT);
        }
        for (int k = 0; k < l->npending; k++)
            if (w.tcp && l->pending[k].node == from && l->pending[k].t == now &&
                l->pending[k].seq == w.seq) {
                w.rtx = true;
                l->pending[k] = l->pending[--l->npending];
                break;
            }
        if (l->nwires == SV_MAX_ROWS) {
            l->truncated = true;
            return;
        }
        int row = add_row(l, SV_SEND, now, from, (int)l->nwires);
        if (row < 0)
            return;
        w.send_row = row;
        l->wires[l->nwires++] = w;
        return;
    }
    struct sv_wire *w = find_wire(l, id);
    if (!w)
        return;
    if (pt == SS_SIM_TAP_LOST || pt == SS_SIM_TAP_QDROP) {
        w->lost = true;
        return;
    }
    if (pt == SS_SIM_TAP_DELIVER && from == 1 && w->tcp && (w->flags & 0x10) &&
        l->flight_known && (int32_t)(w->ack - l->ack_max) > 0 &&
        (int32_t)(w->ack - l->snd_max) <= 0) {
        l->ack_max = w->ack;
        add_point(l, now, (double)(uint32_t)(l->snd_max - l->ack_max), SV_INFLIGHT);
    }
    if (pt == SS_SIM_TAP_DELIVER && w->arrive_row < 0) {
        w->t_arrive = now;
        w->arrive_row = add_row(l, SV_DELIVER, now, 1 - from, (int)(w - l->wires));
    }
}

void sv_on_trace(struct sv_log *l, int node, const struct ss_trace_event *ev)
{
    switch (ev->kind) {
    case SS_TRACE_STATE: {
        int r = add_row(l, SV_STATE, ev->time_us, node, -1);
        if (r >= 0) {
            l->rows[r].old_state = ev->u.state.old_state;
            l->rows[r].new_state = ev->u.state.new_state;
        }
        break;
    }
    case SS_TRACE_RETRANSMIT:
        /* Mark the wire record of this segment: sent by `node` at this
         * instant with this sequence number. */
        {
            bool found = false;
            for (size_t i = l->nwires, k = 0; i-- > 0 && k < 16; k++) {
                struct sv_wire *w = &l->wires[i];
                if (w->from == node && w->t_send == ev->time_us && w->tcp &&
                    w->seq == ev->u.seg.seq && !w->rtx) {
                    w->rtx = found = true;
                    break;
                }
            }
            /* Traced before it reached the link: mark it when it does. */
            if (!found) {
                if (l->npending == SV_MAX_PENDING)
                    memmove(l->pending, l->pending + 1,
                            (SV_MAX_PENDING - 1) * sizeof l->pending[0]),
                        l->npending--;
                l->pending[l->npending++] = (struct sv_pending){node, ev->time_us,
                                                                ev->u.seg.seq};
            }
        }
        if (node == 0)
            add_point(l, ev->time_us,
                      (double)(uint32_t)(ev->u.seg.seq - l->isn[0]) + ev->u.seg.len,
                      SV_SEQ_RTX);
        break;
    case SS_TRACE_RTT:
        if (node == 0) {
            add_point(l, ev->time_us, ev->u.rtt.srtt_us / 1000.0, SV_SRTT);
            if (ev->u.rtt.sample_us)
                add_point(l, ev->time_us, ev->u.rtt.sample_us / 1000.0, SV_RTT_SAMPLE);
        }
        break;
    case SS_TRACE_CC:
        if (node == 0) {
            add_step(l, ev->time_us, ev->u.cc.cwnd, SV_CWND);
            if (ev->u.cc.ssthresh != UINT32_MAX)   /* none before the first loss */
                add_step(l, ev->time_us, ev->u.cc.ssthresh, SV_SSTHRESH);
            add_step(l, ev->time_us, ev->u.cc.peer_wnd, SV_PEER_WND);
        }
        break;
    case SS_TRACE_WINDOW:
        if (node == 0 && !ev->u.win.ours)
            add_step(l, ev->time_us, ev->u.win.new_win, SV_PEER_WND);
        break;
    default:
        break;
    }
}

void sv_finish(struct sv_log *l, uint64_t t_end)
{
    l->t_end = t_end;
    for (size_t i = 0; i < l->nwires; i++) {
        struct sv_wire *w = &l->wires[i];
        if (!w->tcp) {
            snprintf(w->label, sizeof w->label, "%s", w->other);
            continue;
        }
        char d[88];
        int to = 1 - w->from;
        describe_wire(w, l->isn_known[w->from] ? &l->isn[w->from] : NULL,
                      l->isn_known[to] ? &l->isn[to] : NULL, d, sizeof d);
        snprintf(w->label, sizeof w->label, "%s%s", w->rtx ? "[rtx] " : "", d);
    }
}

/* ---- terminal ------------------------------------------------------------ */

#define COL_STATE 26
#define COL_ARROW 64

static void print_arrow(FILE *out, const struct sv_wire *w, bool right)
{
    char line[COL_ARROW + 1];
    memset(line, '-', COL_ARROW);
    line[COL_ARROW] = '\0';
    line[0] = '|';
    line[COL_ARROW - 1] = '|';
    size_t n = strlen(w->label);
    size_t room = COL_ARROW - 10;
    if (n > room)
        n = room;
    size_t start = right ? 3 : COL_ARROW - 4 - n;
    line[start - 1] = ' ';
    memcpy(line + start, w->label, n);
    line[start + n] = ' ';
    if (right) {
        line[COL_ARROW - 2] = '>';
        if (w->lost) /* the arrow stops short of B */
            memset(line + start + n + 3, ' ', COL_ARROW - 1 - (start + n + 3)),
                line[start + n + 2] = 'X';
    } else {
        line[1] = '<';
        if (w->lost)
            memset(line + 1, ' ', start - 4), line[start - 3] = 'X';
    }
    fputs(line, out);
}

void sv_print_diagram(const struct sv_log *l, FILE *out)
{
    fprintf(out, "%10s  %-*s%-*s%s\n", "time (ms)", COL_STATE,
             l->name[0][0] ? l->name[0] : "A", COL_ARROW, "", l->name[1][0] ? l->name[1] : "B");
    for (size_t i = 0; i < l->nrows; i++) {
        const struct sv_row *r = &l->rows[i];
        char left[COL_STATE + 1] = "", right[64] = "";
        bool arrow = false;
        const struct sv_wire *w = r->wire >= 0 ? &l->wires[r->wire] : NULL;
        if (r->kind == SV_STATE) {
            char s[64];
            snprintf(s, sizeof s, "%s -> %s", ss_tcp_state_name(r->old_state),
                     ss_tcp_state_name(r->new_state));
            snprintf(r->node == 0 ? left : right, r->node == 0 ? sizeof left : sizeof right,
                     "%s", s);
        } else if (r->kind == SV_SEND) {
            arrow = true;
        } else {
            continue; /* arrivals are implied by the arrow */
        }
        fprintf(out, "%10.3f  %-*s", r->t / 1000.0, COL_STATE, left);
        if (arrow)
            print_arrow(out, w, w->from == 0);
        else
            fprintf(out, "|%*s|", COL_ARROW - 2, "");
        fprintf(out, " %s\n", right);
    }
    if (l->truncated)
        fprintf(out, "(diagram truncated at %d rows; use fewer --bytes)\n", SV_MAX_ROWS);
    if (l->isn_known[0] && l->isn_known[1])
        fprintf(out, "sequence numbers are relative to each side's ISN "
                     "(A: %u, B: %u); X marks a packet the link lost\n",
                l->isn[0], l->isn[1]);
}

/* ---- SVG ----------------------------------------------------------------- */

static void xml_text(FILE *out, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '&': fputs("&amp;", out); break;
        default: fputc(*s, out);
        }
    }
}

int sv_write_svg(const struct sv_log *l, FILE *out)
{
    const int row_h = 22, top = 70, xa = 260, xb = 760, width = 1020;
    int height = top + (int)l->nrows * row_h + 60;
    fprintf(out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"monospace\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<defs><marker id=\"arr\" markerWidth=\"10\" markerHeight=\"8\" refX=\"9\" "
            "refY=\"4\" orient=\"auto\"><path d=\"M0,0 L10,4 L0,8 z\" fill=\"#222\"/>"
            "</marker><marker id=\"arrx\" markerWidth=\"10\" markerHeight=\"8\" "
            "refX=\"9\" refY=\"4\" orient=\"auto\"><path d=\"M0,0 L10,4 L0,8 z\" "
            "fill=\"#c00\"/></marker></defs>\n",
            width, height, width, height);
    fprintf(out, "<text x=\"%d\" y=\"30\" text-anchor=\"middle\" font-weight=\"bold\">A ",
            xa);
    xml_text(out, l->name[0]);
    fprintf(out, "</text>\n<text x=\"%d\" y=\"30\" text-anchor=\"middle\" "
                 "font-weight=\"bold\">B ", xb);
    xml_text(out, l->name[1]);
    fprintf(out, "</text>\n<text x=\"10\" y=\"55\" fill=\"#666\">time (ms)</text>\n");
    int bottom = top + (int)l->nrows * row_h;
    fprintf(out, "<line x1=\"%d\" y1=\"40\" x2=\"%d\" y2=\"%d\" stroke=\"#888\" "
                 "stroke-width=\"2\"/>\n", xa, xa, bottom);
    fprintf(out, "<line x1=\"%d\" y1=\"40\" x2=\"%d\" y2=\"%d\" stroke=\"#888\" "
                 "stroke-width=\"2\"/>\n", xb, xb, bottom);
    for (size_t i = 0; i < l->nrows; i++) {
        const struct sv_row *r = &l->rows[i];
        int y = top + (int)i * row_h;
        fprintf(out, "<text x=\"10\" y=\"%d\" fill=\"#666\">%.3f</text>\n", y + 4,
                r->t / 1000.0);
        if (r->kind == SV_STATE) {
            char s[64];
            snprintf(s, sizeof s, "%s \xe2\x86\x92 %s", ss_tcp_state_name(r->old_state),
                     ss_tcp_state_name(r->new_state));
            int x = r->node == 0 ? xa - 12 : xb + 12;
            fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"%s\" fill=\"#06c\" "
                         "font-weight=\"bold\">%s</text>\n",
                    x, y + 4, r->node == 0 ? "end" : "start", s);
            continue;
        }
        if (r->kind != SV_SEND)
            continue;
        const struct sv_wire *w = &l->wires[r->wire];
        int x1 = w->from == 0 ? xa : xb, x2 = w->from == 0 ? xb : xa;
        int y2;
        const char *color = w->rtx ? "#c60" : "#222";
        if (w->lost || w->arrive_row < 0) {
            /* A lost packet stops halfway, ending in a red cross. */
            int xm = (x1 + x2) / 2;
            y2 = y + row_h;
            fprintf(out, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#c00\" "
                         "stroke-dasharray=\"4 3\"/>\n", x1, y, xm, y2);
            fprintf(out, "<path d=\"M%d,%d l10,10 m0,-10 l-10,10\" stroke=\"#c00\" "
                         "stroke-width=\"2\"/>\n", xm - 5, y2 - 5);
            x2 = xm;
            color = "#c00";
        } else {
            y2 = top + w->arrive_row * row_h;
            fprintf(out, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" "
                         "marker-end=\"url(#arr)\"/>\n", x1, y, x2, y2, color);
        }
        int tx = (x1 + x2) / 2, ty = (y + y2) / 2 - 4;
        fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"%s\" "
                     "stroke=\"white\" stroke-width=\"3\" paint-order=\"stroke\">",
                tx, ty, color);
        xml_text(out, w->label);
        fprintf(out, "</text>\n");
    }
    fprintf(out, "<text x=\"10\" y=\"%d\" fill=\"#666\">sequence numbers relative "
                 "to each side's ISN; dashed red: lost on the link; orange: "
                 "retransmission%s</text>\n</svg>\n",
            bottom + 30, l->truncated ? "; truncated" : "");
    return ferror(out) ? -EIO : 0;
}

/* ---- plots --------------------------------------------------------------- */

static void panel(FILE *out, const struct sv_log *l, double tmax, int y0, int h,
                  const char *title, const enum sv_series *series,
                  const char *const *colors, int nseries, bool dots)
{
    const int x0 = 80, w = 820;
    double vmax = 0;
    for (size_t i = 0; i < l->npts; i++)
        for (int s = 0; s < nseries; s++)
            if (l->pts[i].series == series[s] && l->pts[i].v > vmax)
                vmax = l->pts[i].v;
    if (vmax <= 0)
        vmax = 1;
    fprintf(out, "<text x=\"%d\" y=\"%d\" font-weight=\"bold\">", x0, y0 - 8);
    xml_text(out, title);
    fprintf(out, "</text>\n<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                 "fill=\"none\" stroke=\"#888\"/>\n", x0, y0, w, h);
    fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" fill=\"#666\">%.0f</text>\n",
            x0 - 4, y0 + 10, vmax);
    fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" fill=\"#666\">0</text>\n",
            x0 - 4, y0 + h);
    fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" fill=\"#666\">%.1f ms</text>\n",
            x0 + w, y0 + h + 14, tmax / 1000.0);
    for (int s = 0; s < nseries; s++) {
        bool first = true;
        if (!dots)
            fprintf(out, "<polyline fill=\"none\" stroke=\"%s\" points=\"", colors[s]);
        for (size_t i = 0; i < l->npts; i++) {
            const struct sv_point *p = &l->pts[i];
            if (p->series != series[s])
                continue;
            double x = x0 + w * (double)p->t / tmax;
            double y = y0 + h - h * p->v / vmax;
            if (dots)
                fprintf(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"1.6\" fill=\"%s\"/>\n",
                        x, y, colors[s]);
            else
                fprintf(out, "%s%.1f,%.1f", first ? "" : " ", x, y);
            first = false;
        }
        if (!dots)
            fprintf(out, "\"/>\n");
    }
}

/* The time axis ends just after the last plotted point, not at the end of
 * the run: a run ends with TIME-WAIT (2*MSL, a minute by default), which
 * would squeeze the whole transfer against the left edge. */
static double plot_span(const struct sv_log *l)
{
    uint64_t last = 0;
    for (size_t i = 0; i < l->npts; i++)
        if (l->pts[i].t > last)
            last = l->pts[i].t;
    return last ? (double)last * 1.05 : 1.0;
}

int sv_write_plot(const struct sv_log *l, FILE *out)
{
    double tmax = plot_span(l);
    fprintf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"940\" height=\"760\" "
                 "font-family=\"sans-serif\" font-size=\"12\">\n"
                 "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    static const enum sv_series s_seq[] = {SV_SEQ, SV_SEQ_RTX};
    static const char *const c_seq[] = {"#06c", "#c00"};
    static const enum sv_series s_cwnd[] = {SV_PEER_WND, SV_SSTHRESH, SV_INFLIGHT, SV_CWND};
    static const char *const c_cwnd[] = {"#aaa", "#06c", "#e80", "#080"};
    static const enum sv_series s_rtt[] = {SV_SRTT, SV_RTT_SAMPLE};
    static const char *const c_rtt[] = {"#60c", "#999"};
    panel(out, l, tmax, 40, 180, "A: sequence number sent (relative; red = retransmission)",
          s_seq, c_seq, 2, true);
    panel(out, l, tmax, 290, 180,
          "A, bytes: cwnd (green), ssthresh (blue), peer's window (grey), in flight (orange)",
          s_cwnd, c_cwnd, 4, false);
    panel(out, l, tmax, 540, 180, "A: smoothed RTT (purple) and samples (grey), ms",
          s_rtt, c_rtt, 2, false);
    fprintf(out, "</svg>\n");
    return ferror(out) ? -EIO : 0;
}
