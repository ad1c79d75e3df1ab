/* Drawing TCP connections: the recording (records from the analyser, the
 * stack's cwnd/RTT figures), the layout of a sequence diagram (rows:
 * segments, bundles of back-to-back segments, state changes, waits with the
 * timer that ended them, TIME-WAIT), and three renderers: text, SVG, plots.
 *
 * Path: ss_viz_packet() / ss_viz_add() -> recs[];  ss_viz_trace() -> pts[];
 *   ss_viz_diagram_*() -> layout() -> rows[] -> text or SVG;
 *   ss_viz_plot_svg() -> panels with axes() and the series.
 * Every text in the SVG is 12px monospace: a character is CHAR_W wide, so
 * the layout knows each label's box and keeps them apart (rows are ROW_H
 * apart, a row holds one label beside its time). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/fmt.h"
#include "sockstack/err.h"
#include "sockstack/viz.h"
#include "viz/viz_int.h"

#define app ss__fmt_app

#define CHAR_W 7.2     /* 12px monospace: 0.6 em */
#define ROW_H 24
#define MAX_ROWS 2400  /* rows drawn; bundles grow to stay under it */

int ss_viz_new(size_t max_recs, ss_viz **out)
{
    if (max_recs == 0)
        return -EINVAL;
    ss_viz *v = calloc(1, sizeof *v);
    if (!v)
        return -ENOMEM;
    v->cap = max_recs;
    v->recs = calloc(max_recs, sizeof *v->recs);
    v->pts = calloc(MAX_PTS, sizeof *v->pts);
    int r = v->recs && v->pts ? ss_ana_new(1024, &v->ana) : -ENOMEM;
    if (r < 0) {
        ss_viz_free(v);
        return r;
    }
    *out = v;
    return 0;
}

void ss_viz_free(ss_viz *v)
{
    if (!v)
        return;
    ss_ana_free(v->ana);
    free(v->recs);
    free(v->pts);
    free(v);
}

long ss_viz_add(ss_viz *v, const struct ss_ana_rec *rec)
{
    if (v->n == v->cap) {
        v->truncated = true;
        return -ENOSPC;
    }
    struct vrec *x = &v->recs[v->n];
    memset(x, 0, sizeof *x);
    x->r = *rec;
    if (rec->t_us > v->t_end)
        v->t_end = rec->t_us;
    return (long)v->n++;
}

long ss_viz_packet(ss_viz *v, uint64_t t_us, const uint8_t *pkt, size_t len)
{
    struct ss_ana_rec rec;
    int r = ss_ana_packet(v->ana, t_us, pkt, len, &rec);
    if (r <= 0)
        return r < 0 ? r : -1;
    return ss_viz_add(v, &rec);
}

void ss_viz_arrived(ss_viz *v, long i, uint64_t t_us)
{
    if (i >= 0 && (size_t)i < v->n && !v->recs[i].arrived) {
        v->recs[i].arrived = true;
        v->recs[i].t_arr = t_us;
    }
}

void ss_viz_lost(ss_viz *v, long i)
{
    if (i >= 0 && (size_t)i < v->n)
        v->recs[i].lost = true;
}

static void add_pt(ss_viz *v, uint64_t t, double val, int s)
{
    if (v->npts < MAX_PTS)
        v->pts[v->npts++] = (struct vpt){t, val, s};
}

void ss_viz_trace(ss_viz *v, int side, const struct ss_trace_event *ev)
{
    if (side != 0)
        return;
    if (ev->kind == SS_TRACE_CC) {
        add_pt(v, ev->time_us, ev->u.cc.cwnd, PT_CWND);
        if (ev->u.cc.ssthresh != UINT32_MAX)
            add_pt(v, ev->time_us, ev->u.cc.ssthresh, PT_SSTHRESH);
    } else if (ev->kind == SS_TRACE_RTT) {
        add_pt(v, ev->time_us, ev->u.rtt.srtt_us / 1000.0, PT_SRTT);
        if (ev->u.rtt.sample_us)
            add_pt(v, ev->time_us, ev->u.rtt.sample_us / 1000.0, PT_RTT_SAMPLE);
    }
}

long ss_viz_stack_event(ss_viz *v, int node, const struct ss_trace_event *ev, bool segments)
{
    bool seg = ev->kind == SS_TRACE_SEG_IN || ev->kind == SS_TRACE_SEG_OUT ||
               ev->kind == SS_TRACE_RETRANSMIT;
    if (ev->kind == SS_TRACE_CC || ev->kind == SS_TRACE_RTT) {
        ss_viz_trace(v, node, ev);
        return -1;
    }
    if (ev->kind != SS_TRACE_STATE && !(seg && segments && node == 0))
        return -1;
    struct ss_ana_rec rec;
    int r = ss_ana_trace(v->ana, ev, &rec);
    if (r <= 0)
        return r < 0 ? r : -1;
    return ss_viz_add(v, &rec);
}

void ss_viz_finish(ss_viz *v, uint64_t t_end_us)
{
    if (t_end_us > v->t_end)
        v->t_end = t_end_us;
}

int ss_viz_select(ss_viz *v, int conn)
{
    if (conn < 0 || (size_t)conn >= ss_ana_nconns(v->ana)) {
        bool any = false;
        for (size_t i = 0; i < v->n && !any; i++)
            any = v->recs[i].r.conn == conn;
        if (!any)
            return -EINVAL;
    }
    v->conn = conn;
    return 0;
}

static void on_sniffed(void *ctx, const struct ss_ana_rec *rec)
{
    ss_viz_add(ctx, rec);
}

int ss_viz_read_pcap(ss_viz *v, const char *path, char *err, size_t errlen)
{
    struct ss_sniff_cfg cfg = {.read_path = path};
    return ss_sniff_run(&cfg, on_sniffed, v, err, errlen);
}

/* ---- layout ---------------------------------------------------------------- */

enum row_kind { ROW_SEG = 1, ROW_STATE, ROW_GAP, ROW_ICMP, ROW_END };

struct row {
    enum row_kind kind;
    uint64_t t;
    int from_col, to_col;      /* ROW_SEG */
    int col;                   /* ROW_STATE, ROW_END: where the label goes */
    bool lost, rtx;
    long count;                /* segments in a bundle */
    char label[160];
};

/* Columns: 0 the opener, 1 the other side's listener (when it listened),
 * 2 the other side's connection. */
struct layout {
    struct row *rows;
    size_t n;
    bool listener;
    uint32_t isn[2];
    bool isn_known[2];
    struct ss_ana_end end[2];
    bool have_ends;
    long tw_row[2];            /* row where a side entered TIME-WAIT, or -1 */
    bool tw_closed[2];         /* and the stack said it left it */
    double label_w;            /* widest segment label (and, with a listener's
                                * column, wait label), px: one gap holds it */
    bool truncated;
};

/* Where the lifelines stand, for both renderers: A's at x0, the next one
 * lane to its right (the listener's when B listened, else B's), B's
 * connection gap right of the listener's. */
static void place_columns(const struct layout *L, double x0, double lane, double gap,
                          double x[3])
{
    x[0] = x0;
    x[1] = x0 + lane;
    x[2] = L->listener ? x[1] + gap : x[1];
}

/* The two columns a row's label is centred between: an arrow's ends; for
 * an arrow between A and B's connection and for a wait, the lane left of
 * the listener's line when there is one, so no label crosses it. */
static void label_lane(const struct layout *L, const struct row *r, int *lo, int *hi)
{
    if (r->kind == ROW_SEG || r->kind == ROW_ICMP) {
        *lo = r->from_col < r->to_col ? r->from_col : r->to_col;
        *hi = r->from_col < r->to_col ? r->to_col : r->from_col;
    } else {
        *lo = 0;
        *hi = 2;
    }
    if (L->listener && *lo == 0 && *hi == 2)
        *hi = 1;
}

static bool is_conn(const ss_viz *v, size_t i)
{
    return v->recs[i].r.conn == v->conn;
}

static int side_col(const struct layout *L, int side) { return side == 0 ? 0 : 2; }

/* "SYN seq=0 win=64240 <mss 1460,sack,ts,ws 7>", "PSH,ACK 1:1001 ack=1 win=502". */
static void seg_label(const struct layout *L, const struct ss_ana_rec *r, char *buf,
                      size_t len)
{
    const struct ss_trace_seg *g = &r->seg;
    int x = r->from;
    uint32_t s0 = L->isn_known[x] ? L->isn[x] : 0, a0 = L->isn_known[1 - x] ? L->isn[1 - x] : 0;
    char fl[40];
    size_t n = 0;
    if (len)
        buf[0] = '\0';
    if (r->kind == SS_ANA_ICMP_ERR) {
        app(buf, len, &n, "ICMP type=%u code=%u about seq=%u", r->icmp_type, r->icmp_code,
            g->seq - s0);
        return;
    }
    app(buf, len, &n, "%s%s", (r->flags & SS_ANA_RTX) ? "[rtx] " : "",
        ss_tcp_flags_str(g->flags, fl, sizeof fl));
    if (g->len)
        app(buf, len, &n, " %u:%u", g->seq - s0, g->seq - s0 + g->len);
    else if (!(g->flags & SS_TCP_ACK) || (g->flags & (SS_TCP_SYN | SS_TCP_FIN | SS_TCP_RST)))
        app(buf, len, &n, " seq=%u", g->seq - s0);
    if (g->flags & SS_TCP_ACK)
        app(buf, len, &n, " ack=%u", g->ack - a0);
    if (!(g->flags & SS_TCP_RST))
        app(buf, len, &n, " win=%u", g->win);
    if (g->flags & SS_TCP_SYN) {
        app(buf, len, &n, " <");
        const char *sep = "";
        if (g->mss)
            app(buf, len, &n, "mss %u", g->mss), sep = ",";
        if (g->sack_ok)
            app(buf, len, &n, "%ssack", sep), sep = ",";
        if (g->ts)
            app(buf, len, &n, "%sts", sep), sep = ",";
        if (g->wscale >= 0)
            app(buf, len, &n, "%sws %d", sep, g->wscale);
        app(buf, len, &n, ">");
    }
    for (unsigned b = SS_ANA_DUPACK; b < (1u << SS_ANA_NFLAGS); b <<= 1) {
        if (!(r->flags & b))
            continue;
        if (b == SS_ANA_DUPACK)
            app(buf, len, &n, " [dup-ack %u]", r->dupack);
        else
            app(buf, len, &n, " [%s]", ss_ana_flag_name(b));
    }
}

/* A segment that may join others in one arrow: nothing special about it. */
static bool plain(const struct vrec *x)
{
    const struct ss_trace_seg *g = &x->r.seg;
    return x->r.kind == SS_ANA_SEG && !x->lost && x->r.flags == 0 && x->r.nchanges == 0 &&
           !(g->flags & (SS_TCP_SYN | SS_TCP_FIN | SS_TCP_RST));
}

static struct row *new_row(struct layout *L, enum row_kind k, uint64_t t)
{
    if (L->n == MAX_ROWS) {
        L->truncated = true;
        return NULL;
    }
    struct row *r = &L->rows[L->n++];
    memset(r, 0, sizeof *r);
    r->kind = k;
    r->t = t;
    return r;
}

/* The timer that ended a wait, judged by what came after it. */
static const char *timer_name(const struct vrec *next, uint64_t gap)
{
    unsigned f = next->r.flags;
    if (f & SS_ANA_RTX)
        return "retransmission timer (RTO)";
    if (f & SS_ANA_WIN_PROBE)
        return "persist timer (window probe)";
    const struct ss_trace_seg *g = &next->r.seg;
    if ((g->flags & (SS_TCP_SYN | SS_TCP_FIN | SS_TCP_RST | SS_TCP_ACK)) == SS_TCP_ACK &&
        g->len == 0 && gap < 500000)
        return "delayed-ACK timer";
    return "idle (the application)";
}

static void fmt_dur(uint64_t us, char *buf, size_t len)
{
    if (us >= 1000000)
        snprintf(buf, len, "%.3f s", us / 1e6);
    else
        snprintf(buf, len, "%.1f ms", us / 1e3);
}

static int layout(const ss_viz *v, struct layout *L)
{
    memset(L, 0, sizeof *L);
    L->tw_row[0] = L->tw_row[1] = -1;
    L->rows = calloc(MAX_ROWS, sizeof *L->rows);
    if (!L->rows)
        return -ENOMEM;
    uint64_t t_first = 0, t_last = 0, t_active = 0;
    bool any = false;
    for (size_t i = 0; i < v->n; i++) {
        if (!is_conn(v, i))
            continue;
        const struct ss_ana_rec *r = &v->recs[i].r;
        if (!any)
            t_first = r->t_us;
        /* The other side listened when the first segment was a SYN. */
        if (r->kind == SS_ANA_SEG && !L->have_ends)
            L->listener = (r->seg.flags & (SS_TCP_SYN | SS_TCP_ACK)) == SS_TCP_SYN;
        any = true;
        if (r->kind == SS_ANA_SEG && r->state[0] != SS_TCP_TIME_WAIT &&
            r->state[1] != SS_TCP_TIME_WAIT)
            t_active = r->t_us;   /* TIME-WAIT's 2 MSL would make every wait look short */
        t_last = r->t_us;
        if (r->kind == SS_ANA_SEG && !L->have_ends) {
            L->end[r->from] = r->src;
            L->end[1 - r->from] = r->dst;
            L->have_ends = true;
        }
        if (r->kind == SS_ANA_SEG && !L->isn_known[r->from]) {
            L->isn_known[r->from] = true;
            L->isn[r->from] = r->seg.seq;
        }
    }
    if (!any)
        return -EINVAL;
    /* Bundles: plain segments within a quantum of time join the open bundle
     * of their direction and kind (data or ACK); anything else closes it. */
    uint64_t span = (t_active > t_first ? t_active : t_last) - t_first;
    uint64_t quantum = span / 400 > 200 ? span / 400 : 200;
    uint64_t gap_min = span / 40 > 100000 ? span / 40 : 100000;
    long open[2][2] = {{-1, -1}, {-1, -1}};
    uint64_t open_t = 0;
    uint64_t prev_t = t_first;
    for (size_t i = 0; i < v->n; i++) {
        if (!is_conn(v, i))
            continue;
        const struct vrec *x = &v->recs[i];
        const struct ss_ana_rec *r = &x->r;
        uint64_t dt = r->t_us - prev_t;
        if (dt >= gap_min) {
            bool tw = L->tw_row[0] >= 0 || L->tw_row[1] >= 0;
            struct row *g = new_row(L, ROW_GAP, prev_t);
            if (g) {
                char d[32];
                fmt_dur(dt, d, sizeof d);
                snprintf(g->label, sizeof g->label, "... %s: %s", d,
                         tw ? "TIME-WAIT" : timer_name(x, dt));
            }
            open[0][0] = open[0][1] = open[1][0] = open[1][1] = -1;
        }
        prev_t = r->t_us;
        int x_side = r->from;
        if (plain(x)) {
            int data = r->seg.len > 0;
            long o = open[x_side][data];
            if (o >= 0 && r->t_us - open_t <= quantum) {
                struct row *b = &L->rows[o];
                b->count++;
                continue;
            }
            struct row *b = new_row(L, ROW_SEG, r->t_us);
            if (!b)
                break;
            if (open[0][0] < 0 && open[0][1] < 0 && open[1][0] < 0 && open[1][1] < 0)
                open_t = r->t_us;
            else if (r->t_us - open_t > quantum) {
                open[0][0] = open[0][1] = open[1][0] = open[1][1] = -1;
                open_t = r->t_us;
            }
            b->count = 1;
            b->from_col = side_col(L, x_side);
            b->to_col = side_col(L, 1 - x_side);
            seg_label(L, r, b->label, sizeof b->label);
            open[x_side][data] = (long)(b - L->rows);
            /* remember the first record: the label is rebuilt at the end */
            b->col = (int)i;
            continue;
        }
        open[0][0] = open[0][1] = open[1][0] = open[1][1] = -1;
        struct row *s = NULL;
        if (r->kind != SS_ANA_STATE) {
            s = new_row(L, r->kind == SS_ANA_ICMP_ERR ? ROW_ICMP : ROW_SEG, r->t_us);
            if (!s)
                break;
        }
        if (s) {
            s->count = 1;
            s->lost = x->lost;
            s->rtx = r->flags & SS_ANA_RTX;
            s->from_col = side_col(L, x_side);
            s->to_col = side_col(L, 1 - x_side);
            /* The first SYN goes to the listener. */
            if (L->listener && x_side == 0 && (r->seg.flags & (SS_TCP_SYN | SS_TCP_ACK)) ==
                                                  SS_TCP_SYN)
                s->to_col = 1;
            s->col = -1;
            seg_label(L, r, s->label, sizeof s->label);
        }
        for (int c = 0; c < r->nchanges; c++) {
            struct row *st = new_row(L, ROW_STATE, r->t_us);
            if (!st)
                break;
            int side = r->change[c].side;
            st->col = side_col(L, side);
            /* The connection the listener accepted starts here, in its own
             * column (a stack traces it from CLOSED, the wire from LISTEN). */
            if (side == 1 && L->listener && r->change[c].new_state == SS_TCP_SYN_RECEIVED)
                snprintf(st->label, sizeof st->label, "SYN-RECEIVED (accepted from LISTEN)");
            else
                snprintf(st->label, sizeof st->label, "%s -> %s",
                         ss_tcp_state_name(r->change[c].old_state),
                         ss_tcp_state_name(r->change[c].new_state));
            if (r->change[c].new_state == SS_TCP_TIME_WAIT)
                L->tw_row[side] = (long)(st - L->rows);
            if (r->change[c].old_state == SS_TCP_TIME_WAIT)
                L->tw_closed[side] = true;
        }
    }
    /* Bundle labels: "N segs 1:14481" / "N ACKs ack=...". */
    for (size_t k = 0; k < L->n; k++) {
        struct row *b = &L->rows[k];
        if (b->kind != ROW_SEG || b->count < 2 || b->col < 0)
            continue;
        const struct ss_ana_rec *f = &v->recs[b->col].r;
        uint32_t hi_seq = f->seg.seq + f->seg.len, hi_ack = f->seg.ack;
        long seen = 0;
        for (size_t i = (size_t)b->col; i < v->n && seen < b->count; i++) {
            const struct ss_ana_rec *r = &v->recs[i].r;
            if (!is_conn(v, i) || !plain(&v->recs[i]) || r->from != f->from ||
                (r->seg.len > 0) != (f->seg.len > 0) || r->t_us < b->t)
                continue;
            seen++;
            hi_seq = r->seg.seq + r->seg.len;
            hi_ack = r->seg.ack;
        }
        int x = f->from;
        uint32_t s0 = L->isn[x], a0 = L->isn[1 - x];
        if (f->seg.len)
            snprintf(b->label, sizeof b->label, "%ld segments %u:%u ack=%u", b->count,
                     f->seg.seq - s0, hi_seq - s0, hi_ack - a0);
        else
            snprintf(b->label, sizeof b->label, "%ld ACKs ack=%u..%u", b->count,
                     f->seg.ack - a0, hi_ack - a0);
    }
    for (int side = 0; side < 2; side++) {
        if (L->tw_row[side] < 0)
            continue;
        struct row *e = new_row(L, ROW_END, v->t_end > t_last ? v->t_end : t_last);
        if (!e)
            break;
        e->col = side_col(L, side);
        char d[32];
        fmt_dur(e->t - L->rows[L->tw_row[side]].t, d, sizeof d);
        snprintf(e->label, sizeof e->label, "TIME-WAIT %s%s", d,
                 L->tw_closed[side] || v->t_end > t_last ? " -> CLOSED" : " (capture ends)");
    }
    for (size_t k = 0; k < L->n; k++)
        if (L->rows[k].kind == ROW_SEG || L->rows[k].kind == ROW_ICMP ||
            (L->listener && L->rows[k].kind == ROW_GAP)) {
            double w = strlen(L->rows[k].label) * CHAR_W;
            if (w > L->label_w)
                L->label_w = w;
        }
    L->truncated |= v->truncated;
    return 0;
}

/* ---- text ---------------------------------------------------------------- */

#define TEXT_MAX_W 1000        /* --width's bound, as the CLI's */
#define TEXT_LISTENER_GAP 6    /* the listener's line, left of B's connection's */

/* s (at most n characters) into line at column at, clipped to the line. */
static void put(char *line, int len, int at, const char *s, int n)
{
    for (int i = 0; i < n && s[i] && at + i < len; i++)
        if (at + i >= 0)
            line[at + i] = s[i];
}

/* line without its trailing blanks, then a newline. */
static void emit(FILE *out, char *line, int len)
{
    while (len > 0 && line[len - 1] == ' ')
        len--;
    fprintf(out, "%.*s\n", len, line);
}

int ss_viz_diagram_text(const ss_viz *v, int width, FILE *out)
{
    if (width < 60)
        width = 60;
    if (width > TEXT_MAX_W)
        width = TEXT_MAX_W;
    struct layout L;
    int rc = layout(v, &L);
    if (rc < 0) {
        free(L.rows);
        return rc;
    }
    /* time | A's state | the lifelines and the arrows | B's state: a state is
     * shown as "=> NEW" (the old one is the line before), at most 15
     * characters; the listener's line (dashed) stands a few characters left
     * of B's connection's, so that the lane left of it holds the labels. */
    const int tw = 8, sw = 16;
    const int aw = width - tw - 2 * sw - 1;   /* from A's lifeline to B's */
    const int off = tw + sw - 1;              /* A's lifeline */
    double xd[3];
    place_columns(&L, off, L.listener ? aw - 1 - TEXT_LISTENER_GAP : aw - 1, TEXT_LISTENER_GAP,
                  xd);
    const int x[3] = {(int)xd[0], (int)xd[1], (int)xd[2]};
    char line[TEXT_MAX_W + 1];
    char a[64], b[64];
    ss_ana_end_format(&L.end[0], a, sizeof a);
    ss_ana_end_format(&L.end[1], b, sizeof b);
    /* Headers: each side's address over its lifeline; the listener's name
     * over its line and its state, LISTEN, beside it. */
    memset(line, ' ', (size_t)width);
    put(line, width, tw - 1 - 7, "time(s)", 7);
    int an = (int)strlen(a) < sw ? (int)strlen(a) : sw;
    put(line, width, x[0] + 1 - an, a, an);
    put(line, width, x[2], b, sw + 1);
    if (L.listener)
        put(line, width, x[1] + 1 - 11, "B listening", 11);
    emit(out, line, width);
    if (L.listener) {
        memset(line, ' ', (size_t)width);
        line[x[0]] = line[x[2]] = '|';
        line[x[1]] = ':';
        put(line, width, x[1] - 7, "LISTEN", 6);
        emit(out, line, width);
    }
    for (size_t k = 0; k < L.n; k++) {
        const struct row *r = &L.rows[k];
        memset(line, ' ', (size_t)width);
        bool wait = r->kind == ROW_GAP || r->kind == ROW_END;
        line[x[0]] = line[x[2]] = wait ? ':' : '|';
        if (L.listener)
            line[x[1]] = ':';
        int lo, hi;
        label_lane(&L, r, &lo, &hi);
        int lane = x[hi] - x[lo] + 1;        /* both lifelines included */
        int len = (int)strlen(r->label);
        /* A label too long for the lane left of the listener's line, of an
         * arrow or a wait that crosses it anyway, takes the whole width. */
        if (len > lane - 6 && lo == 0 && hi == 1 &&
            (wait || r->from_col + r->to_col == 2)) {
            hi = 2;
            lane = x[2] - x[0] + 1;
        }
        int n = len < lane - 6 ? len : lane - 6;
        if (n < 0)
            n = 0;
        int start = x[lo] + (lane - n) / 2;
        if (r->kind == ROW_SEG || r->kind == ROW_ICMP) {
            int from = x[r->from_col], to = x[r->to_col];
            int l = from < to ? from : to, h = from < to ? to : from;
            for (int i = l + 1; i < h; i++)
                line[i] = '-';
            line[start - 1] = line[start + n] = ' ';
            put(line, width, start, r->label, n);
            if (to > from)
                line[to - 1] = r->lost ? 'X' : '>';
            else
                line[to + 1] = r->lost ? 'X' : '<';
        } else if (wait) {
            put(line, width, start, r->label, n);
        } else {
            const char *arrow = strstr(r->label, "-> ");
            const char *st = arrow ? arrow + 3 : r->label;
            char s[64];
            snprintf(s, sizeof s, "=> %.60s", st);
            char *sp = strchr(s + 3, ' ');
            if (sp)
                *sp = '\0';   /* "SYN-RECEIVED (accepted from LISTEN)" */
            int sn = (int)strlen(s) < sw - 1 ? (int)strlen(s) : sw - 1;
            if (r->col == 0)
                put(line, width, x[0] - sn, s, sn);
            else
                put(line, width, x[r->col] + 2, s, sn);
        }
        char ts[32];
        int tn = snprintf(ts, sizeof ts, "%*.3f", tw - 1, (r->t - (L.n ? L.rows[0].t : 0)) / 1e6);
        put(line, width, 0, ts, tn < tw ? tn : tw - 1);
        emit(out, line, width);
    }
    if (L.truncated)
        fprintf(out, "(truncated)\n");
    fprintf(out, "%.*s\n", width,
            "sequence numbers relative to each side's first; X: lost on the link");
    free(L.rows);
    return ferror(out) ? -EIO : 0;
}

/* ---- SVG ----------------------------------------------------------------- */

static void xml(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", out);
        else if (*s == '>')
            fputs("&gt;", out);
        else if (*s == '&')
            fputs("&amp;", out);
        else
            fputc(*s, out);
    }
}

/* A text element: x, y (baseline), anchor, class. */
static void text(FILE *out, double x, double y, const char *anchor, const char *cls,
                 const char *s)
{
    fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" class=\"%s\">", x, y,
            anchor, cls);
    xml(out, s);
    fputs("</text>\n", out);
}

static const char svg_style[] =
    "<style>text{font-family:monospace;font-size:12px}.t{fill:#666}.st{fill:#06c;"
    "font-weight:bold}.rtx{fill:#c60}.lost{fill:#c00}.gap{fill:#888;font-style:italic}"
    ".tw{fill:#a50}.h{font-weight:bold}.ax{fill:#333}"
    /* a packet's arrow, from its classes: most rows are one, so the
     * stroke is not repeated on each (the 10 MB bound, docs/raw.md) */
    "line.a{stroke:#222;marker-end:url(#arr)}line.a.r{stroke:#c60}line.a.b{stroke-width:3}"
    "</style>\n";

int ss_viz_diagram_svg(const ss_viz *v, FILE *out)
{
    struct layout L;
    int rc = layout(v, &L);
    if (rc < 0) {
        free(L.rows);
        return rc;
    }
    const double top = 80, time_w = 12 * CHAR_W + 16;
    const double state_w = 36 * CHAR_W;
    double gap = L.label_w + 40 < 220 ? 220 : L.label_w + 40;
    double colx[3];
    place_columns(&L, time_w + state_w, gap, gap, colx);
    int width = (int)(colx[2] + state_w + 20);
    int height = (int)(top + (double)L.n * ROW_H + 60);
    fprintf(out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\">\n%s<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<defs><marker id=\"arr\" markerWidth=\"10\" markerHeight=\"8\" refX=\"9\" "
            "refY=\"4\" orient=\"auto\"><path d=\"M0,0 L10,4 L0,8 z\" fill=\"#222\"/>"
            "</marker></defs>\n",
            width, height, width, height, svg_style);
    char a[64], b[64], h[96];
    ss_ana_end_format(&L.end[0], a, sizeof a);
    ss_ana_end_format(&L.end[1], b, sizeof b);
    snprintf(h, sizeof h, "A %s", a);
    text(out, colx[0], 30, "middle", "h", h);
    if (L.listener) {
        snprintf(h, sizeof h, "B listening");
        text(out, colx[1], 30, "middle", "h", h);
        text(out, colx[1], 48, "middle", "st", "LISTEN");
    }
    snprintf(h, sizeof h, "B %s", b);
    text(out, colx[2], 30, "middle", "h", h);
    text(out, 8, 66, "start", "t", "time (s)");
    double bottom = top + (double)L.n * ROW_H;
    for (int c = 0; c < 3; c++) {
        if (c == 1 && !L.listener)
            continue;
        fprintf(out, "<line x1=\"%.1f\" y1=\"56\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#888\" "
                     "stroke-width=\"2\"%s/>\n",
                colx[c], colx[c], bottom, c == 1 ? " stroke-dasharray=\"4 4\"" : "");
    }
    /* TIME-WAIT spans: a band on the side's lifeline, to its end row. */
    for (int side = 0; side < 2; side++) {
        if (L.tw_row[side] < 0)
            continue;
        double x = colx[side == 0 ? 0 : 2];
        double y1 = top + (double)L.tw_row[side] * ROW_H;
        fprintf(out, "<rect class=\"timewait\" x=\"%.1f\" y=\"%.1f\" width=\"10\" "
                     "height=\"%.1f\" fill=\"#fc6\" opacity=\"0.7\"/>\n",
                x - 5, y1, bottom - y1);
    }
    uint64_t t0 = L.n ? L.rows[0].t : 0;
    for (size_t k = 0; k < L.n; k++) {
        const struct row *r = &L.rows[k];
        double y = top + (double)k * ROW_H;
        char ts[32];
        snprintf(ts, sizeof ts, "%.6f", (r->t - t0) / 1e6);
        text(out, 8, y + 4, "start", "t", ts);
        switch (r->kind) {
        case ROW_SEG:
        case ROW_ICMP: {
            double x1 = colx[r->from_col], x2 = colx[r->to_col];
            const char *cls = r->lost ? "lost" : r->rtx ? "rtx" : "seg";
            const char *col = r->lost ? "#c00" : r->rtx ? "#c60" : "#222";
            /* Over the arrow, clear of the listener's dashed line. */
            int lo, hi;
            label_lane(&L, r, &lo, &hi);
            double lx = (colx[lo] + colx[hi]) / 2;
            if (r->lost) {
                /* The packet dies just past its label, in the direction it
                 * went: the mark (8 px) is never under the text. A label is
                 * at most its gap less 40 px, so the mark stays 6 px clear
                 * of the lifelines. */
                double hw = (double)strlen(r->label) * CHAR_W / 2;
                double xm = x2 > x1 ? lx + hw + 10 : lx - hw - 10;
                fprintf(out, "<line class=\"arrow\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
                             "y2=\"%.1f\" stroke=\"%s\" stroke-dasharray=\"4 3\"/>\n"
                             "<path class=\"lossmark\" d=\"M%.1f,%.1f l8,8 m0,-8 l-8,8\" "
                             "stroke=\"#c00\" stroke-width=\"2\"/>\n",
                        x1, y + 6, xm, y + 6, col, xm - 4, y + 2);
            } else {
                fprintf(out, "<line class=\"a%s%s\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
                             "y2=\"%.1f\"/>\n",
                        r->rtx ? " r" : "", r->count > 1 ? " b" : "", x1, y + 6, x2, y + 6);
            }
            text(out, lx, y + 1, "middle", cls, r->label);
            break;
        }
        case ROW_STATE:
        case ROW_END: {
            double x = colx[r->col];
            bool left = r->col == 0;
            text(out, left ? x - 10 : x + 10, y + 4, left ? "end" : "start",
                 r->kind == ROW_END ? "tw" : "st", r->label);
            break;
        }
        case ROW_GAP: {
            fprintf(out, "<rect class=\"wait\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                         "height=\"%d\" fill=\"#f4f4f4\"/>\n",
                    colx[0], y - 8, colx[2] - colx[0], ROW_H - 4);
            int lo, hi;
            label_lane(&L, r, &lo, &hi);
            text(out, (colx[lo] + colx[hi]) / 2, y + 4, "middle", "gap", r->label);
            break;
        }
        }
    }
    text(out, 8, bottom + 30, "start", "t",
         L.truncated ? "relative sequence numbers; thick: bundled segments; truncated"
                     : "relative sequence numbers; thick: bundled segments; orange: "
                       "retransmission; red: lost");
    fputs("</svg>\n", out);
    free(L.rows);
    return ferror(out) ? -EIO : 0;
}

/* ---- plots --------------------------------------------------------------- */

/* A step of 1, 2 or 5 times a power of ten giving about n ticks. */
static double nice_step(double range, int n)
{
    if (range <= 0)
        return 1;
    double raw = range / n, p = pow(10, floor(log10(raw)));
    double m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

struct panel {
    double x0, y0, w, h;
    double tmax, vmax;
};

static double px(const struct panel *p, double t) { return p->x0 + p->w * t / p->tmax; }
static double py(const struct panel *p, double v) { return p->y0 + p->h - p->h * v / p->vmax; }

/* A tick label: 2500, 15k, 1.5M. */
static void tick_text(double v, char *buf, size_t len)
{
    if (fabs(v) >= 1e6)
        snprintf(buf, len, "%gM", v / 1e6);
    else if (fabs(v) >= 1e4)
        snprintf(buf, len, "%gk", v / 1e3);
    else
        snprintf(buf, len, "%g", v);
}

/* Frame, ticks and their labels, the axis titles with units. */
static void axes(FILE *out, struct panel *p, const char *title, const char *yunit)
{
    double ts = nice_step(p->tmax, 6), vs = nice_step(p->vmax, 5);
    p->tmax = ceil(p->tmax / ts) * ts;
    p->vmax = ceil(p->vmax / vs) * vs;
    fprintf(out, "<g class=\"axis\">\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                 "fill=\"none\" stroke=\"#888\"/>\n",
            p->x0, p->y0, p->w, p->h);
    text(out, p->x0, p->y0 - 16, "start", "h", title);
    char s[32];
    for (double t = 0; t <= p->tmax + ts / 2; t += ts) {
        double x = px(p, t);
        fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#888\"/>\n",
                x, p->y0 + p->h, x, p->y0 + p->h + 5);
        snprintf(s, sizeof s, "%g", t);
        text(out, x, p->y0 + p->h + 18, "middle", "ax", s);
    }
    text(out, p->x0 + p->w, p->y0 + p->h + 34, "end", "ax", "time (s)");
    for (double v = 0; v <= p->vmax + vs / 2; v += vs) {
        double y = py(p, v);
        fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n",
                p->x0, y, p->x0 + p->w, y);
        tick_text(v, s, sizeof s);
        text(out, p->x0 - 6, y + 4, "end", "ax", s);
    }
    text(out, p->x0 - 6, p->y0 - 16, "end", "ax", yunit);
    fputs("</g>\n", out);
}

/* A polyline of (t, v) pairs drawn as steps, at most one step per pixel
 * column (the last value in it), so that any number of points stays small. */
static void steps(FILE *out, const struct panel *p, const double *t, const double *v, size_t n,
                  const char *color, const char *cls)
{
    if (!n)
        return;
    fprintf(out, "<polyline class=\"%s\" fill=\"none\" stroke=\"%s\" points=\"", cls, color);
    double lastx = px(p, t[0]), lasty = py(p, v[0]);
    fprintf(out, "%.1f,%.1f", lastx, lasty);
    for (size_t i = 1; i < n; i++) {
        double x = px(p, t[i]);
        if (x - lastx < 1 && i + 1 < n)
            continue;   /* the same pixel column: its last value is drawn */
        double y = py(p, v[i]);
        fprintf(out, " %.1f,%.1f %.1f,%.1f", x, lasty, x, y);
        lastx = x;
        lasty = y;
    }
    fputs("\"/>\n", out);
}

int ss_viz_plot_svg(const ss_viz *v, FILE *out)
{
    /* The side that sent more data is drawn (a download as well as an upload). */
    uint64_t bytes[2] = {0, 0};
    uint64_t t0 = 0, tlast = 0;
    bool any = false;
    uint32_t isn[2] = {0, 0};
    bool isn_known[2] = {false, false};
    int ws[2] = {-1, -1};
    for (size_t i = 0; i < v->n; i++) {
        const struct ss_ana_rec *r = &v->recs[i].r;
        if (!is_conn(v, i) || r->kind != SS_ANA_SEG)
            continue;
        if (!any)
            t0 = r->t_us;
        any = true;
        bytes[r->from] += r->seg.len;
        if (r->seg.len || !(r->seg.flags & SS_TCP_RST))
            tlast = r->t_us;
        if (!isn_known[r->from]) {
            isn_known[r->from] = true;
            isn[r->from] = r->seg.seq;
        }
        if (r->seg.flags & SS_TCP_SYN)
            ws[r->from] = r->seg.wscale;
    }
    if (!any)
        return -EINVAL;
    int d = bytes[1] > bytes[0];
    int shift = ws[0] >= 0 && ws[1] >= 0 ? ws[1 - d] : 0;
    size_t cap = 2 * v->n + 2;
    double *ta = malloc(cap * sizeof *ta), *va = malloc(cap * sizeof *va);
    double *tw = malloc(cap * sizeof *tw), *vw = malloc(cap * sizeof *vw);
    double *tf = malloc(cap * sizeof *tf), *vf = malloc(cap * sizeof *vf);
    double *tr = malloc(cap * sizeof *tr), *vr = malloc(cap * sizeof *vr);
    if (!ta || !va || !tw || !vw || !tf || !vf || !tr || !vr) {
        free(ta), free(va), free(tw), free(vw), free(tf), free(vf), free(tr), free(vr);
        return -ENOMEM;
    }
    size_t na = 0, nw = 0, nf = 0, nr = 0;
    double vmax = 1;
    uint32_t snd_max = isn[d];
    /* RTT from packets (Karn: a range that was retransmitted gives none). */
    uint32_t probe_end = 0;
    uint64_t probe_t = 0;
    bool probing = false, last_ack_known = false;
    uint32_t last_ack = 0;
    for (size_t i = 0; i < v->n; i++) {
        const struct ss_ana_rec *r = &v->recs[i].r;
        if (!is_conn(v, i) || r->kind != SS_ANA_SEG)
            continue;
        double t = (r->t_us - t0) / 1e6;
        const struct ss_trace_seg *g = &r->seg;
        if (r->from == d) {
            uint32_t end = g->seq + g->len + !!(g->flags & (SS_TCP_SYN | SS_TCP_FIN));
            if ((int32_t)(end - snd_max) > 0)
                snd_max = end;
            if ((double)(uint32_t)(end - isn[d]) > vmax)
                vmax = (uint32_t)(end - isn[d]);
            if (last_ack_known) {
                tf[nf] = t, vf[nf++] = (uint32_t)(snd_max - last_ack);
            }
            if (r->flags & SS_ANA_RTX)
                probing = false;
            else if (!probing && g->len) {
                probing = true;
                probe_end = end;
                probe_t = r->t_us;
            }
        } else if (g->flags & SS_TCP_ACK) {
            double ack = (uint32_t)(g->ack - isn[d]);
            ta[na] = t, va[na++] = ack;
            tw[nw] = t, vw[nw++] = ack + ((double)g->win * (1u << (shift > 14 ? 14 : shift)));
            tf[nf] = t, vf[nf++] = (uint32_t)(snd_max - g->ack);
            last_ack = g->ack;
            last_ack_known = true;
            if (probing && (int32_t)(g->ack - probe_end) >= 0) {
                tr[nr] = t, vr[nr++] = (r->t_us - probe_t) / 1000.0;
                probing = false;
            }
        }
    }
    double span = (tlast - t0) / 1e6;
    if (span <= 0)
        span = 1e-3;
    fprintf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1000\" height=\"900\" "
                 "viewBox=\"0 0 1000 900\">\n%s<rect width=\"100%%\" height=\"100%%\" "
                 "fill=\"white\"/>\n",
            svg_style);
    /* 1: time-sequence graph. A window edge is cut at 4 times the highest
     * sequence sent (in the whole connection, not so far: the handshake's
     * window would be cut to nothing): a huge window would flatten the rest. */
    double wmax = vmax;
    for (size_t i = 0; i < nw; i++) {
        if (vw[i] > vmax * 4)
            vw[i] = vmax * 4;
        if (vw[i] > wmax)
            wmax = vw[i];
    }
    struct panel p = {100, 40, 860, 220, span, wmax * 1.02};
    axes(out, &p, "time-sequence graph: data (black), retransmissions (red), ACK (green), "
                  "window (olive), SACK (purple)", "bytes");
    /* One vertical bar per pixel column and kind: any size stays small. */
    double colmin[2][1000], colmax[2][1000];
    for (int k = 0; k < 2; k++)
        for (int c = 0; c < 1000; c++)
            colmin[k][c] = 1e18, colmax[k][c] = -1;
    for (size_t i = 0; i < v->n; i++) {
        const struct ss_ana_rec *r = &v->recs[i].r;
        if (!is_conn(v, i) || r->kind != SS_ANA_SEG)
            continue;
        const struct ss_trace_seg *g = &r->seg;
        double t = (r->t_us - t0) / 1e6;
        int c = (int)px(&p, t);
        if (c < 0 || c >= 1000)
            continue;
        if (r->from == d && g->len) {
            int k = (r->flags & SS_ANA_RTX) ? 1 : 0;
            double s = (uint32_t)(g->seq - isn[d]), e = s + g->len;
            if (s < colmin[k][c])
                colmin[k][c] = s;
            if (e > colmax[k][c])
                colmax[k][c] = e;
        } else if (r->from != d) {
            for (unsigned b = 0; b < g->nsack && b < 4; b++)
                fprintf(out, "<line class=\"sack\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" "
                             "y2=\"%.1f\" stroke=\"#90c\" stroke-width=\"2\"/>\n",
                        c, py(&p, (uint32_t)(g->sack[b][0] - isn[d])), c,
                        py(&p, (uint32_t)(g->sack[b][1] - isn[d])));
        }
    }
    for (int k = 0; k < 2; k++)
        for (int c = 0; c < 1000; c++)
            if (colmax[k][c] >= 0)
                fprintf(out, "<line class=\"%s\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" "
                             "stroke=\"%s\" stroke-width=\"%s\"/>\n",
                        k ? "rtx" : "data", c, py(&p, colmin[k][c]), c,
                        py(&p, colmax[k][c]) - 1, k ? "#c00" : "#000", k ? "2" : "1");
    steps(out, &p, ta, va, na, "#080", "ackline");
    steps(out, &p, tw, vw, nw, "#990", "winline");
    /* 2: cwnd and ssthresh from the trace, else bytes in flight. */
    struct panel q = {100, 340, 860, 200, span, 1};
    size_t nc = 0;
    for (size_t i = 0; i < v->npts; i++)
        if (v->pts[i].series == PT_CWND || v->pts[i].series == PT_SSTHRESH) {
            nc++;
            if (v->pts[i].v > q.vmax && v->pts[i].v < 1e12)
                q.vmax = v->pts[i].v;
        }
    double *tc = malloc((v->npts + 1) * sizeof *tc), *vc = malloc((v->npts + 1) * sizeof *vc);
    if (nc && tc && vc) {
        q.vmax *= 1.05;
        axes(out, &q, "congestion window (green) and ssthresh (blue), from the stack's trace",
             "bytes");
        for (int s = PT_CWND; s <= PT_SSTHRESH; s++) {
            size_t m = 0;
            for (size_t i = 0; i < v->npts; i++)
                if (v->pts[i].series == s && v->pts[i].t >= t0)
                    tc[m] = (v->pts[i].t - t0) / 1e6, vc[m++] = v->pts[i].v;
            steps(out, &q, tc, vc, m, s == PT_CWND ? "#080" : "#06c",
                  s == PT_CWND ? "cwnd" : "ssthresh");
        }
    } else {
        for (size_t i = 0; i < nf; i++)
            if (vf[i] > q.vmax)
                q.vmax = vf[i];
        q.vmax *= 1.05;
        axes(out, &q, "bytes in flight (sent and not yet acknowledged), from the packets",
             "bytes");
        steps(out, &q, tf, vf, nf, "#e80", "inflight");
    }
    /* 3: RTT. */
    struct panel rp = {100, 620, 860, 200, span, 1};
    size_t ns = 0;
    for (size_t i = 0; i < v->npts; i++)
        if (v->pts[i].series == PT_SRTT || v->pts[i].series == PT_RTT_SAMPLE) {
            ns++;
            if (v->pts[i].v > rp.vmax)
                rp.vmax = v->pts[i].v;
        }
    if (ns && tc && vc) {
        rp.vmax *= 1.1;
        axes(out, &rp, "RTT: smoothed (purple) and samples (grey), from the stack's trace", "ms");
        for (int s = PT_SRTT; s <= PT_RTT_SAMPLE; s++) {
            size_t m = 0;
            for (size_t i = 0; i < v->npts; i++)
                if (v->pts[i].series == s && v->pts[i].t >= t0)
                    tc[m] = (v->pts[i].t - t0) / 1e6, vc[m++] = v->pts[i].v;
            steps(out, &rp, tc, vc, m, s == PT_SRTT ? "#60c" : "#999",
                  s == PT_SRTT ? "srtt" : "rttsample");
        }
    } else {
        for (size_t i = 0; i < nr; i++)
            if (vr[i] > rp.vmax)
                rp.vmax = vr[i];
        rp.vmax *= 1.1;
        axes(out, &rp, "RTT samples: data segment to the ACK that covers it (Karn)", "ms");
        /* At most the lowest and the highest sample of each pixel column. */
        for (int c = 0; c < 1000; c++)
            colmin[0][c] = 1e18, colmax[0][c] = -1;
        for (size_t i = 0; i < nr; i++) {
            int c = (int)px(&rp, tr[i]);
            if (c < 0 || c >= 1000)
                continue;
            if (vr[i] < colmin[0][c])
                colmin[0][c] = vr[i];
            if (vr[i] > colmax[0][c])
                colmax[0][c] = vr[i];
        }
        for (int c = 0; c < 1000; c++) {
            if (colmax[0][c] < 0)
                continue;
            fprintf(out, "<circle class=\"rtt\" cx=\"%d\" cy=\"%.1f\" r=\"2\" fill=\"#60c\"/>\n",
                    c, py(&rp, colmin[0][c]));
            if (py(&rp, colmin[0][c]) - py(&rp, colmax[0][c]) >= 1)
                fprintf(out, "<circle class=\"rtt\" cx=\"%d\" cy=\"%.1f\" r=\"2\" "
                             "fill=\"#60c\"/>\n", c, py(&rp, colmax[0][c]));
        }
    }
    /* Where the viewer draws its time cursor (the first panel's scale). */
    fprintf(out, "<line id=\"tcursor\" data-x0=\"%.1f\" data-w=\"%.1f\" data-tmax=\"%g\" "
                 "x1=\"-10\" y1=\"%.1f\" x2=\"-10\" y2=\"%.1f\" stroke=\"#f0f\" "
                 "stroke-width=\"1.5\"/>\n",
            p.x0, p.w, p.tmax, p.y0, rp.y0 + rp.h);
    fputs("</svg>\n", out);
    free(tc), free(vc);
    free(ta), free(va), free(tw), free(vw), free(tf), free(vf), free(tr), free(vr);
    return ferror(out) ? -EIO : 0;
}
