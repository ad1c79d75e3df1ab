/* sockstack diagram on captures built byte by byte: the terminal diagram
 * keeps to --width, SVG texts never overlap (boxes from the layout: 12px
 * monospace, 7.2px a character), the plots have axes with ticks and units,
 * waits name their timer, TIME-WAIT is a span, the listener has its own
 * column, and a 10 MB transfer's pictures stay under 300,000 bytes each
 * (the bound docs/raw.md states, with the measured sizes). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "pktgen.h"
#include "sockstack/stack.h"

/* The stated bound on each picture of a 10 MB transfer (docs/raw.md). */
#define SVG_MAX_BYTES 300000

static char dir[64];

static void teardown(void)
{
    if (dir[0] && !getenv("SS_DRAW_KEEP")) {  /* kept for a look when set */
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) {
            /* nothing more to do */
        }
    }
}

TestSuite(draw, .fini = teardown, .timeout = 120);

static const char *path_of(const char *name)
{
    static char p[4][128];
    static int k;
    k = (k + 1) % 4;
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/ss-draw-%d", (int)getpid());
        mkdir(dir, 0700);
    }
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static pcap_t *dead;

static void begin(const char *file)
{
    dead = pcap_open_dead(DLT_RAW, 65535);
    pg_dump = pcap_dump_open(dead, path_of(file));
    cr_assert(pg_dump);
    pg_now_us = 0;
}

static void end(void)
{
    pcap_dump_close(pg_dump);
    pcap_close(dead);
}

static char *slurp(const char *path, size_t *len)
{
    char *b = th_read_file(path, len);
    cr_assert(b, "%s", path);
    return b;
}

struct box {
    double x0, x1, y0, y1;
    char s[64];
};

/* Every <text>'s box: 7.2px a character (entities count one), 12px tall
 * above the baseline (descenders: 3px below). */
static size_t text_boxes(const char *svg, struct box **out)
{
    size_t cap = 1024, n = 0;
    struct box *b = malloc(cap * sizeof *b);
    cr_assert(b);
    for (const char *p = strstr(svg, "<text "); p; p = strstr(p + 1, "<text ")) {
        double x, y;
        char anchor[16] = "start";
        const char *q = strstr(p, " x=\"");
        cr_assert(q && sscanf(q, " x=\"%lf\" y=\"%lf\"", &x, &y) == 2, "%.80s", p);
        const char *a = strstr(p, "text-anchor=\"");
        const char *gt = strchr(p, '>');
        if (a && a < gt)
            sscanf(a, "text-anchor=\"%15[a-z]\"", anchor);
        const char *e = strstr(gt, "</text>");
        cr_assert(e);
        size_t chars = 0;
        for (const char *c = gt + 1; c < e; c++) {
            if (*c == '&')
                c = strchr(c, ';');
            if ((*c & 0xc0) != 0x80)
                chars++;
        }
        double w = (double)chars * 7.2;
        double x0 = !strcmp(anchor, "middle") ? x - w / 2 : !strcmp(anchor, "end") ? x - w : x;
        if (n == cap)
            b = realloc(b, (cap *= 2) * sizeof *b);
        b[n] = (struct box){x0, x0 + w, y - 12, y + 3, ""};
        snprintf(b[n].s, sizeof b[n].s, "%.*s", (int)(e - gt - 1 < 63 ? e - gt - 1 : 63), gt + 1);
        n++;
    }
    *out = b;
    return n;
}

static int cmp_y(const void *a, const void *b)
{
    double d = ((const struct box *)a)->y0 - ((const struct box *)b)->y0;
    return d < 0 ? -1 : d > 0;
}

/* Every loss mark's box: the cross drawn by "M x,y l8,8 m0,-8 l-8,8" with a
 * 2px stroke, so 1px more on each side. */
static size_t loss_marks(const char *svg, struct box **out)
{
    size_t cap = 64, n = 0;
    struct box *b = malloc(cap * sizeof *b);
    cr_assert(b);
    for (const char *p = strstr(svg, "<path class=\"lossmark\" "); p;
         p = strstr(p + 1, "<path class=\"lossmark\" ")) {
        double x, y;
        cr_assert(sscanf(p, "<path class=\"lossmark\" d=\"M%lf,%lf l8,8 m0,-8 l-8,8\"", &x,
                         &y) == 2,
                  "%.80s", p);
        if (n == cap)
            b = realloc(b, (cap *= 2) * sizeof *b);
        b[n++] = (struct box){x - 1, x + 9, y - 1, y + 9, "loss mark"};
    }
    *out = b;
    return n;
}

/* No two text boxes overlap, and no text box overlaps a loss mark; returns
 * the number of loss marks. */
static size_t assert_no_overlap(const char *svg, const char *what)
{
    struct box *b, *m;
    size_t n = text_boxes(svg, &b), nm = loss_marks(svg, &m);
    cr_assert_gt(n, 0);
    qsort(b, n, sizeof *b, cmp_y);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n && b[j].y0 < b[i].y1; j++)
            cr_assert(b[i].x1 <= b[j].x0 || b[j].x1 <= b[i].x0,
                      "%s: '%s' (%.1f..%.1f, y %.1f) overlaps '%s' (%.1f..%.1f, y %.1f)", what,
                      b[i].s, b[i].x0, b[i].x1, b[i].y0, b[j].s, b[j].x0, b[j].x1, b[j].y0);
    for (size_t k = 0; k < nm; k++)
        for (size_t i = 0; i < n; i++)
            cr_assert(b[i].x1 <= m[k].x0 || m[k].x1 <= b[i].x0 || b[i].y1 <= m[k].y0 ||
                          m[k].y1 <= b[i].y0,
                      "%s: '%s' (%.1f..%.1f, y %.1f..%.1f) is drawn over the loss mark at "
                      "(%.1f..%.1f, y %.1f..%.1f)",
                      what, b[i].s, b[i].x0, b[i].x1, b[i].y0, b[i].y1, m[k].x0, m[k].x1,
                      m[k].y0, m[k].y1);
    free(b);
    free(m);
    return nm;
}

/* No text box crosses a vertical line of the diagram (the lifelines, the
 * listener's dashed one): each line is a segment x = X, Y1..Y2. */
static void assert_clear_of_lines(const char *svg, const char *what)
{
    struct box *b;
    size_t n = text_boxes(svg, &b), lines = 0;
    for (const char *p = strstr(svg, "<line "); p; p = strstr(p + 1, "<line ")) {
        double x1, y1, x2, y2;
        const char *q = strstr(p, " x1=\"");
        if (!q || q > strchr(p, '>') ||
            sscanf(q, " x1=\"%lf\" y1=\"%lf\" x2=\"%lf\" y2=\"%lf\"", &x1, &y1, &x2, &y2) != 4 ||
            x1 != x2)
            continue;
        lines++;
        for (size_t i = 0; i < n; i++)
            cr_assert(!(b[i].x0 < x1 && x1 < b[i].x1 && b[i].y0 < y2 && y1 < b[i].y1),
                      "%s: '%s' (%.1f..%.1f, y %.1f..%.1f) is drawn across the line x=%.1f "
                      "(y %.1f..%.1f)",
                      what, b[i].s, b[i].x0, b[i].x1, b[i].y0, b[i].y1, x1, y1, y2);
    }
    cr_assert_geq(lines, 2, "%s: no lifelines", what);
    free(b);
}

/* The frame of the plots' panel k (0: time-sequence, 1: cwnd or in
 * flight, 2: RTT): its axis group's rect. */
static struct box panel_rect(const char *svg, int k)
{
    const char *g = strstr(svg, "<g class=\"axis\">");
    for (int i = 0; i < k && g; i++)
        g = strstr(g + 1, "<g class=\"axis\">");
    cr_assert(g, "no panel %d", k);
    double x, y, w, h;
    cr_assert(sscanf(strstr(g, "<rect "), "<rect x=\"%lf\" y=\"%lf\" width=\"%lf\" height=\"%lf\"",
                     &x, &y, &w, &h) == 4);
    return (struct box){x, x + w, y, y + h, "panel"};
}

/* The time axis's tick labels of panel k (its axis group's centred "ax"
 * texts), in order; asserts each is at its x through the panel's scale
 * (x0 + w * t / the last tick). */
static size_t time_ticks(const char *svg, int k, double *t, size_t max)
{
    const char *g = strstr(svg, "<g class=\"axis\">");
    for (int i = 0; i < k && g; i++)
        g = strstr(g + 1, "<g class=\"axis\">");
    cr_assert(g, "no panel %d", k);
    const char *end = strstr(g, "</g>");
    struct box fr = panel_rect(svg, k);
    const char *tag = "\" text-anchor=\"middle\" class=\"ax\">";
    double x[32];
    size_t n = 0;
    for (const char *p = strstr(g, tag); p && p < end; p = strstr(p + 1, tag)) {
        cr_assert_lt(n, max);
        const char *q = p;
        while (q > g && strncmp(q, "<text x=\"", 9))
            q--;
        cr_assert_eq(sscanf(q, "<text x=\"%lf\"", &x[n]), 1);
        t[n++] = atof(p + strlen(tag));
    }
    cr_assert_geq(n, 2, "panel %d: %zu time ticks", k, n);
    for (size_t i = 0; i < n; i++)
        cr_assert(fabs(x[i] - (fr.x0 + (fr.x1 - fr.x0) * t[i] / t[n - 1])) <= 0.051,
                  "panel %d: tick %g at x %.1f", k, t[i], x[i]);
    return n;
}

static size_t count(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* Packets the simulated link lost or dropped, both ways, from the summary
 * of stack demo/diagram ("link A->B: 10 packets, 1 lost, ... 0 queue drops"). */
static size_t link_losses(const char *out)
{
    size_t total = 0;
    int dirs = 0;
    for (const char *p = strstr(out, "  link "); p; p = strstr(p + 1, "  link ")) {
        unsigned pk, lost, dup, reo, cor, qd;
        cr_assert_eq(sscanf(p, "  link %*[AB]->%*[AB]: %u packets, %u lost, %u duplicated, %u "
                               "reordered, %u corrupted, %u queue drops",
                            &pk, &lost, &dup, &reo, &cor, &qd),
                     6, "%.120s", p);
        total += lost + qd;
        dirs++;
    }
    cr_assert_eq(dirs, 2, "%s", out);
    return total;
}

/* A shell command's stdout (malloc'd); asserts exit 0. */
static char *run_sh(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    cr_assert(p, "%s", cmd);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    cr_assert(buf);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (n + 1 == cap)
            buf = realloc(buf, cap *= 2);
        cr_assert(buf);
    }
    buf[n] = '\0';
    cr_assert_eq(pclose(p), 0, "%s", cmd);
    return buf;
}

static void small_capture(void)
{
    pg_small_capture(path_of("small.pcap"));
}

Test(draw, terminal_diagram_keeps_to_its_width_and_names_the_timer)
{
    small_capture();
    const int widths[] = {60, 80, 132};
    for (int k = 0; k < 3; k++) {
        char w[8];
        snprintf(w, sizeof w, "%d", widths[k]);
        const char *args[] = {"diagram", "--width", w, path_of("small.pcap"), NULL};
        struct th_result r = th_run_cli(args, 20000);
        cr_assert_eq(r.status, 0, "%s", r.err);
        for (char *l = r.out; *l;) {
            char *e = strchr(l, '\n');
            size_t len = e ? (size_t)(e - l) : strlen(l);
            cr_assert_leq(len, (size_t)widths[k], "width %d: %.*s", widths[k], (int)len, l);
            l += len + (e ? 1 : 0);
        }
        if (widths[k] >= 80) {
            cr_assert(strstr(r.out, "retransmission timer"), "%s", r.out);
            cr_assert(strstr(r.out, "=> TIME-WAIT"), "%s", r.out);
            cr_assert(strstr(r.out, "=> SYN-RECEIVED"), "%s", r.out);
        }
        th_result_free(&r);
    }
}

/* The listener and the connection it accepted in separate columns, as in
 * the SVG: B's listener a dashed line (':') under "B listening" with its
 * LISTEN, receiving A's SYN; the accepted connection's lifeline ('|') under
 * B's address, with its states from SYN-RECEIVED on beside it. The whole
 * drawing at 80 columns, then the columns at other widths. */
Test(draw, terminal_diagram_listener_and_connection_in_separate_columns)
{
    small_capture();
    static const char want80[] =
        "time(s)    10.0.0.1:1000                     B listening     10.0.0.2:80\n"
        "                       |                        LISTEN :     |\n"
        "  0.000                |- SYN seq=0 win=64000 <mss 14 >:     |\n"
        "  0.000     => SYN-SENT|                               :     |\n"
        "  0.000                |                               :     | => SYN-RECEIVED\n"
        "  0.000                |< SYN,ACK seq=0 ack=1 win=64000 <ms -|\n"
        "  0.000  => ESTABLISHED|                               :     |\n"
        "  0.000                |----- ACK ack=1 win=64000 ---------->|\n"
        "  0.000                |                               :     | => ESTABLISHED\n"
        "  0.000                |--- 2 segments 1:2001 ack=1 -------->|\n"
        "  0.001                |- ACK 3001:4001 ack=1 win=64000 [ou >|\n"
        "  0.001                |- 2 segments 4001:6001 ack=1 ------->|\n"
        "  0.001                |<-- ACK ack=2001 win=64000 ----------|\n"
        "  0.001                |< ACK ack=2001 win=64000 [dup-ack 1 -|\n"
        "  0.001                |< ACK ack=2001 win=64000 [dup-ack 2 -|\n"
        "  0.001                :  ... 1.000 s: retransmission timer  :\n"
        "  1.001                |- [rtx] ACK 2001:3001 ack=1 win=640 >|\n"
        "  1.001                |<-- ACK ack=6001 win=64000 ----------|\n"
        "  1.001                |- FIN,ACK seq=6001 ack=1 win=64000 ->|\n"
        "  1.001   => FIN-WAIT-1|                               :     |\n"
        "  1.001                |                               :     | => CLOSE-WAIT\n"
        "  1.001                |< FIN,ACK seq=1 ack=6002 win=64000 --|\n"
        "  1.001   => FIN-WAIT-2|                               :     |\n"
        "  1.001                |                               :     | => LAST-ACK\n"
        "  1.001    => TIME-WAIT|                               :     |\n"
        "  1.002                |----- ACK ack=2 win=64000 ---------->|\n"
        "  1.002                |                               :     | => CLOSED\n"
        "  5.002                :  TIME-WAIT 4.000 s -> CLOSED  :     :\n"
        "sequence numbers relative to each side's first; X: lost on the link\n"
    ;
    const char *args[] = {"diagram", "--width", "80", path_of("small.pcap"), NULL};
    struct th_result r = th_run_cli(args, 20000);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, want80);
    th_result_free(&r);
    /* At any width: A's lifeline at column 23, B's connection's at
     * width - 19, the listener's 6 left of it on every row below the
     * headers; the SYN ends at the listener's line, every state of B's
     * connection starts 2 right of its lifeline, and the listener's LISTEN
     * ends 2 left of its line. */
    const int widths[] = {60, 80, 132};
    for (int k = 0; k < 3; k++) {
        char w[8];
        snprintf(w, sizeof w, "%d", widths[k]);
        const char *a2[] = {"diagram", "--width", w, path_of("small.pcap"), NULL};
        r = th_run_cli(a2, 20000);
        cr_assert_eq(r.status, 0, "%s", r.err);
        const int ca = 23, cb = widths[k] - 19, cl = cb - 6;
        int row = 0, b_states = 0, syns = 0;
        for (char *l = r.out; *l; row++) {
            char *e = strchr(l, '\n');
            cr_assert(e);
            *e = '\0';
            int len = (int)(e - l);
            if (!strncmp(l, "sequence numbers", 16))
                break;
            if (row == 0) {
                cr_assert(!strncmp(l + cl - 10, "B listening", 11), "%.*s", len, l);
                cr_assert(!strncmp(l + cb, "10.0.0.2:80", 11), "%.*s", len, l);
            } else {
                cr_assert(len > cb && strchr("|:", l[ca]) && strchr("|:", l[cb]),
                          "width %d, row %d: %.*s", widths[k], row, len, l);
                /* the listener's line, or an arrow or a wait over it */
                cr_assert(l[cl] == ':' || l[ca] == ':' || l[cb - 1] == '>' || l[ca + 1] == '<',
                          "width %d, row %d: %.*s", widths[k], row, len, l);
            }
            if (row == 1)
                cr_assert(!strncmp(l + cl - 7, "LISTEN :", 8), "%.*s", len, l);
            if (len > cb + 2 && !strncmp(l + cb + 1, " => ", 4))
                b_states++;
            if (row > 1 && strstr(l, " SYN seq") && !strstr(l, "SYN,ACK")) {
                syns++;
                cr_assert(l[cl - 1] == '>' && l[cl] == ':' && l[cl + 1] == ' ',
                          "width %d: the SYN goes to the listener: %.*s", widths[k], len, l);
            }
            l = e + 1;
        }
        cr_assert_eq(b_states, 5, "width %d: %s", widths[k], r.out);
        cr_assert_eq(syns, 1, "width %d: %s", widths[k], r.out);
        th_result_free(&r);
    }
}

Test(draw, svg_diagram_and_plots_structure)
{
    small_capture();
    const char *args[] = {"diagram", "--width", "100", "--svg", path_of("d.svg"), "--plot",
                          path_of("p.svg"), path_of("small.pcap"), NULL};
    struct th_result r = th_run_cli(args, 20000);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_result_free(&r);
    char *d = slurp(path_of("d.svg"), NULL);
    cr_assert_eq(assert_no_overlap(d, "diagram"), 0, "a capture knows no losses");
    assert_clear_of_lines(d, "diagram");
    /* The listener apart from the connection, bundled segments, the wait
     * named after its timer, TIME-WAIT as a span of 4 s. */
    cr_assert(strstr(d, ">B listening</text>"));
    cr_assert(strstr(d, ">LISTEN</text>"));
    cr_assert(strstr(d, ">SYN-RECEIVED (accepted from LISTEN)</text>"));
    cr_assert(strstr(d, ">2 segments 1:2001 ack=1</text>"), "%s", d);
    cr_assert(strstr(d, ">ACK 3001:4001 ack=1 win=64000 [out-of-order]</text>"), "%s", d);
    cr_assert(strstr(d, ">2 segments 4001:6001 ack=1</text>"), "%s", d);
    cr_assert(strstr(d, ">ACK ack=2001 win=64000 [dup-ack 2]</text>"), "%s", d);
    cr_assert(strstr(d, ": retransmission timer (RTO)</text>"), "%s", d);
    cr_assert(strstr(d, ">[rtx] ACK 2001:3001 ack=1 win=64000</text>"), "%s", d);
    cr_assert(strstr(d, "class=\"timewait\""));
    cr_assert(strstr(d, ">TIME-WAIT 4.000 s (capture ends)</text>") ||
                  strstr(d, ">TIME-WAIT 4.000 s -&gt; CLOSED</text>"),
              "%s", d);
    free(d);
    char *p = slurp(path_of("p.svg"), NULL);
    cr_assert_eq(assert_no_overlap(p, "plots"), 0);
    cr_assert_eq(count(p, "<g class=\"axis\">"), 3);
    cr_assert_eq(count(p, ">time (s)</text>"), 3);
    cr_assert_eq(count(p, ">bytes</text>"), 2);   /* sequence, bytes in flight */
    cr_assert_eq(count(p, ">ms</text>"), 1);
    cr_assert(strstr(p, "class=\"ackline\""));
    cr_assert(strstr(p, "class=\"winline\""));
    cr_assert(strstr(p, "class=\"rtx\""));
    /* Ticks: connection 0 of the small capture spans 1.0015 s (its last
     * segment, the final ACK); about 6 ticks of 1, 2 or 5 times a power of
     * ten give a step of 0.2 s and an axis to 1.2 s: 0, 0.2, ..., 1.2 on
     * each of the three panels, and no other centred label. */
    static const char *const tick[] = {"0", "0.2", "0.4", "0.6", "0.8", "1", "1.2"};
    for (int k = 0; k < 3; k++) {
        double t[16];
        size_t nt = time_ticks(p, k, t, 16);
        cr_assert_eq(nt, 7, "panel %d: %zu time ticks", k, nt);
        for (size_t i = 0; i < nt; i++) {
            char want[64];
            snprintf(want, sizeof want, "class=\"ax\">%s</text>", tick[i]);
            cr_assert(fabs(t[i] - 0.2 * (double)i) < 1e-9, "panel %d tick %zu: %g", k, i, t[i]);
            cr_assert(strstr(p, want), "no tick label %s", tick[i]);
        }
    }
    cr_assert_eq(count(p, "text-anchor=\"middle\" class=\"ax\""), 3 * 7);
    /* A small run fills its graphs: the time axis ends near the last
     * segment (not after TIME-WAIT), so the last data bar (the
     * retransmission at 1.0012 s of 1.2 s) is past 80% of the width; the
     * RTT dots sit inside their panel, clear of its frame. */
    struct box ts = panel_rect(p, 0), rt = panel_rect(p, 2);
    double last_x = 0;
    const char *cls[] = {"<line class=\"data\" x1=\"", "<line class=\"rtx\" x1=\""};
    for (int k = 0; k < 2; k++)
        for (const char *q = strstr(p, cls[k]); q; q = strstr(q + 1, cls[k]))
            if (atof(q + strlen(cls[k])) > last_x)
                last_x = atof(q + strlen(cls[k]));
    cr_assert(last_x > ts.x0 + 0.8 * (ts.x1 - ts.x0) && last_x <= ts.x1, "last bar at x %.1f",
              last_x);
    size_t dots = 0;
    for (const char *q = strstr(p, "<circle class=\"rtt\" "); q;
         q = strstr(q + 1, "<circle class=\"rtt\" "), dots++) {
        double cx, cy;
        cr_assert_eq(sscanf(q, "<circle class=\"rtt\" cx=\"%lf\" cy=\"%lf\"", &cx, &cy), 2);
        cr_assert(cy > rt.y0 + 0.05 * (rt.y1 - rt.y0) && cy < rt.y1 && cx >= rt.x0 &&
                      cx <= rt.x1,
                  "RTT dot at %.1f,%.1f on or outside the frame %.1f..%.1f", cx, cy, rt.y0,
                  rt.y1);
    }
    /* One RTT sample (Karn): A's first segment (1:1001, at 0.3 ms) to the
     * ACK that covers it (ack=2001, at 0.8 ms); the retransmission gives
     * none. */
    cr_assert_eq(dots, 1);
    cr_assert_eq(count(p, "<circle class=\"rtt\" "), 1);
    free(p);
}

Test(draw, ten_megabytes_stay_small_and_readable)
{
    begin("big.pcap");
    const uint8_t A = SS_TCP_ACK;
    pg_step_us = 20;
    pg_seg(0, 0, 0, SS_TCP_SYN, 64000, 0);
    pg_seg(1, 0, 1, SS_TCP_SYN | A, 64000, 0);
    pg_seg(0, 1, 1, A, 64000, 0);
    const uint32_t mss = 1448, total = 10u * 1024 * 1024;
    uint32_t segs = (total + mss - 1) / mss;
    for (uint32_t i = 0; i < segs; i++) {
        uint32_t seq = 1 + i * mss, len = i == segs - 1 ? total - i * mss : mss;
        if (i != 3000)
            pg_seg(0, seq, 1, A, 64000, len);
        if (i % 2 == 1)
            pg_seg(1, 1, i >= 3000 && i < 3010 ? 1 + 3000 * mss : seq + len, A, 64000, 0);
        if (i == 3010)
            pg_seg(0, 1 + 3000 * mss, 1, A, 64000, mss);
    }
    pg_seg(0, 1 + total, 1, SS_TCP_FIN | A, 64000, 0);
    pg_seg(1, 1, 2 + total, SS_TCP_FIN | A, 64000, 0);
    pg_seg(0, 2 + total, 2, A, 64000, 0);
    end();
    const char *args[] = {"diagram", "--width", "80", "--svg", path_of("bd.svg"), "--plot",
                          path_of("bp.svg"), path_of("big.pcap"), NULL};
    struct th_result r = th_run_cli(args, 60000);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_result_free(&r);
    size_t dl, pl;
    char *d = slurp(path_of("bd.svg"), &dl);
    char *p = slurp(path_of("bp.svg"), &pl);
    cr_assert_lt(dl, SVG_MAX_BYTES, "diagram: %zu bytes", dl);
    cr_assert_lt(pl, SVG_MAX_BYTES, "plots: %zu bytes", pl);
    cr_assert_eq(assert_no_overlap(d, "10 MB diagram"), 0);
    assert_clear_of_lines(d, "10 MB diagram");
    cr_assert_eq(assert_no_overlap(p, "10 MB plots"), 0);
    cr_assert(strstr(d, "[rtx]"));
    cr_assert(strstr(d, "[dup-ack"));
    free(d);
    free(p);
}

/* A real transfer: 10 MB between the two user-space stacks at 1% loss. */
Test(draw, stack_diagram_of_a_10MB_run_stays_small_and_readable)
{
    const char *args[] = {"stack", "diagram", "--bytes", "10M", "--seed", "3", "--loss", "1",
                          "--width", "80", "--svg", path_of("sd.svg"), "--plot",
                          path_of("sp.svg"), NULL};
    struct th_result r = th_run_cli(args, 60000);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "  received  10485760 bytes"), "%s", r.out);
    size_t lost = link_losses(r.out);
    th_result_free(&r);
    size_t dl, pl;
    char *d = slurp(path_of("sd.svg"), &dl);
    char *p = slurp(path_of("sp.svg"), &pl);
    cr_assert_lt(dl, SVG_MAX_BYTES, "diagram: %zu bytes", dl);
    cr_assert_lt(pl, SVG_MAX_BYTES, "plots: %zu bytes", pl);
    /* Every packet the link lost has its mark, and no text is over one. */
    cr_assert(!strstr(d, "truncated"));
    cr_assert_eq(assert_no_overlap(d, "10 MB run's diagram"), lost);
    cr_assert_eq(count(d, "class=\"lost\""), lost);
    assert_clear_of_lines(d, "10 MB run's diagram");
    cr_assert_eq(assert_no_overlap(p, "10 MB run's plots"), 0);
    cr_assert(strstr(d, "[rtx]"));
    cr_assert(strstr(d, " segments "));
    cr_assert(strstr(p, "class=\"cwnd\""));
    cr_assert(strstr(p, "class=\"ssthresh\""));
    free(d);
    free(p);
}

/* Loss marks and labels: stack runs whose link loses A's first SYN (the
 * arrow to the listener: seed 9), the README's run (the FIN crossing the
 * listener's line, and B's ACK), and a run at 20% loss. Each lost packet
 * has one mark (as many as the link's summary counts) and no text box is
 * over a mark. */
Test(draw, svg_labels_clear_of_loss_marks)
{
    const char *runs[][7] = {
        {"--loss", "5", "--seed", "9", "--bytes", "4K", "sl9.svg"},
        {"--loss", "5", "--seed", "35", "--bytes", "8K", "sl35.svg"},
        {"--loss", "20", "--seed", "1", "--bytes", "4K", "sl20.svg"},
    };
    const size_t want[] = {1, 2, 3};
    for (size_t k = 0; k < 3; k++) {
        const char *args[] = {"stack", "diagram", runs[k][0], runs[k][1], runs[k][2],
                              runs[k][3], runs[k][4], runs[k][5], "--svg",
                              path_of(runs[k][6]), NULL};
        struct th_result r = th_run_cli(args, 30000);
        cr_assert_eq(r.status, 0, "%s", r.err);
        size_t lost = link_losses(r.out);
        cr_assert_eq(lost, want[k], "%s: %s", runs[k][6], r.out);
        th_result_free(&r);
        char *d = slurp(path_of(runs[k][6]), NULL);
        cr_assert_eq(assert_no_overlap(d, runs[k][6]), lost);
        cr_assert_eq(count(d, "class=\"lost\""), lost);
        assert_clear_of_lines(d, runs[k][6]);
        /* B's listener has its own column: the accepted connection starts
         * there, and the listener is never shown closing. */
        cr_assert_eq(count(d, ">B listening</text>"), 1);
        cr_assert_eq(count(d, ">SYN-RECEIVED (accepted from LISTEN)</text>"), 1);
        cr_assert_null(strstr(d, "CLOSED -&gt; SYN-RECEIVED"));
        cr_assert_null(strstr(d, "LISTEN -&gt; CLOSED"));
        free(d);
    }
}

/* The time-sequence graph's frame and its top tick (the panel's scale):
 * the first axis group's rect, and the largest of its y tick labels
 * ("120k", "1.5M", "500"). */
struct scale {
    double x0, y0, w, h, vmax;
};

static struct scale tsg_scale(const char *svg)
{
    struct scale sc = {0};
    const char *g = strstr(svg, "<g class=\"axis\">");
    cr_assert(g);
    const char *end = strstr(g, "</g>");
    cr_assert(sscanf(strstr(g, "<rect "), "<rect x=\"%lf\" y=\"%lf\" width=\"%lf\" height=\"%lf\"",
                     &sc.x0, &sc.y0, &sc.w, &sc.h) == 4);
    const char *tag = "text-anchor=\"end\" class=\"ax\">";
    for (const char *p = strstr(g, tag); p && p < end; p = strstr(p + 1, tag)) {
        char *e;
        double v = strtod(p + strlen(tag), &e);
        if (e == p + strlen(tag))
            continue;   /* "bytes", "time (s)" */
        v *= *e == 'k' ? 1e3 : *e == 'M' ? 1e6 : 1;
        if (v > sc.vmax)
            sc.vmax = v;
    }
    cr_assert_gt(sc.vmax, 0);
    return sc;
}

/* The SACK lines of a time-sequence graph are exactly want[0..n) (relative
 * sequence ranges, in the order of the ACKs), each drawn from py(left edge)
 * to py(right edge) of the panel's scale (0.1 px as printed), left to right. */
static void assert_sack_lines(const char *svg, const uint32_t (*want)[2], size_t n,
                              const char *what)
{
    struct scale sc = tsg_scale(svg);
    size_t k = 0;
    int last_x = 0;
    const char *tag = "<line class=\"sack\" ";
    for (const char *p = strstr(svg, tag); p; p = strstr(p + 1, tag), k++) {
        int x1, x2;
        double y1, y2;
        cr_assert(sscanf(p, "<line class=\"sack\" x1=\"%d\" y1=\"%lf\" x2=\"%d\" y2=\"%lf\"",
                         &x1, &y1, &x2, &y2) == 4,
                  "%.80s", p);
        cr_assert_lt(k, n, "%s: more than %zu SACK lines: %.80s", what, n, p);
        double w1 = sc.y0 + sc.h - sc.h * want[k][0] / sc.vmax;
        double w2 = sc.y0 + sc.h - sc.h * want[k][1] / sc.vmax;
        cr_assert(fabs(y1 - w1) <= 0.051 && fabs(y2 - w2) <= 0.051,
                  "%s: SACK line %zu is y %.1f..%.1f, want %u:%u at y %.2f..%.2f", what, k, y1,
                  y2, want[k][0], want[k][1], w1, w2);
        cr_assert(x1 == x2 && x1 >= sc.x0 && x1 <= sc.x0 + sc.w && x1 >= last_x, "%s: %.80s",
                  what, p);
        last_x = x1;
    }
    cr_assert_eq(k, n, "%s: %zu SACK lines, want %zu", what, k, n);
}

/* tcptrace's SACK blocks: a built capture where A's 2nd, 4th, 6th and 8th
 * of ten segments are lost. B's ACKs carry 1, 2, 3, 4, 4 blocks, then 3, 2,
 * 1 as the retransmissions fill the holes, then none: 20 lines, each the
 * block's range. */
Test(draw, sack_blocks_of_a_built_capture_drawn_exactly)
{
    begin("sack.pcap");
    const uint8_t A = SS_TCP_ACK;
    const uint32_t a0 = 1000, b0 = 5000;   /* ISNs */
    pg_step_us = 1000;
    pg_seg(0, a0, 0, SS_TCP_SYN, 64000, 0);
    pg_seg(1, b0, a0 + 1, SS_TCP_SYN | A, 64000, 0);
    pg_seg(0, a0 + 1, b0 + 1, A, 64000, 0);
    uint32_t blk[4][2];
    int nb = 0;
    uint32_t (*want)[2] = malloc(20 * sizeof *want);
    size_t nw = 0;
    /* B's ACK with blocks newest first (RFC 2018 4: the first block holds
     * the segment that triggered the ACK). */
    for (uint32_t i = 0; i < 10; i++) {
        uint32_t s = a0 + 1 + 1000 * i;
        if (i % 2 == 1 && i < 8)
            continue;   /* lost on the way */
        pg_seg(0, s, b0 + 1, A, 64000, 1000);
        if (i == 0) {
            pg_seg(1, b0 + 1, s + 1000, A, 64000, 0);
            continue;
        }
        if (i == 9) {
            blk[0][1] = s + 1000;   /* 8001:10001 grows */
        } else {
            memmove(blk[1], blk[0], sizeof blk[0] * (size_t)nb);
            blk[0][0] = s, blk[0][1] = s + 1000;
            nb++;
        }
        pg_sack(b0 + 1, a0 + 1001, 64000, (const uint32_t(*)[2])blk, nb);
        for (int b = 0; b < nb; b++)
            want[nw][0] = blk[b][0] - a0, want[nw++][1] = blk[b][1] - a0;
    }
    /* The retransmissions, oldest hole first; each ACK drops the oldest block. */
    for (uint32_t h = 1; h < 8; h += 2) {
        uint32_t s = a0 + 1 + 1000 * h;
        pg_seg(0, s, b0 + 1, A, 64000, 1000);
        nb--;
        uint32_t ack = nb ? blk[nb][1] : a0 + 10001;
        if (nb)
            pg_sack(b0 + 1, ack, 64000, (const uint32_t(*)[2])blk, nb);
        else
            pg_seg(1, b0 + 1, ack, A, 64000, 0);
        for (int b = 0; b < nb; b++)
            want[nw][0] = blk[b][0] - a0, want[nw++][1] = blk[b][1] - a0;
    }
    pg_seg(0, a0 + 10001, b0 + 1, SS_TCP_FIN | A, 64000, 0);
    pg_seg(1, b0 + 1, a0 + 10002, SS_TCP_FIN | A, 64000, 0);
    pg_seg(0, a0 + 10002, b0 + 2, A, 64000, 0);
    end();
    cr_assert_eq(nw, 20);
    const char *args[] = {"diagram", "--plot", path_of("sack.svg"), path_of("sack.pcap"), NULL};
    struct th_result r = th_run_cli(args, 20000);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_result_free(&r);
    char *p = slurp(path_of("sack.svg"), NULL);
    assert_sack_lines(p, (const uint32_t(*)[2])want, nw, "built capture");
    cr_assert_eq(assert_no_overlap(p, "SACK plots"), 0);
    free(p);
    free(want);
}

/* A polyline's points (class cls, the first of it) as x,y pairs. */
static size_t polyline(const char *svg, const char *cls, double (*pt)[2], size_t max)
{
    char tag[64];
    snprintf(tag, sizeof tag, "<polyline class=\"%s\" ", cls);
    const char *p = strstr(svg, tag);
    cr_assert(p, "no %s", cls);
    p = strstr(p, "points=\"");
    cr_assert(p);
    p += strlen("points=\"");
    size_t n = 0;
    int used;
    while (*p != '"') {
        cr_assert_lt(n, max, "%s: more than %zu points", cls, max);
        cr_assert_eq(sscanf(p, "%lf,%lf%n", &pt[n][0], &pt[n][1], &used), 2, "%.40s", p);
        n++;
        p += used;
        if (*p == ' ')
            p++;
    }
    return n;
}

/* tcptrace's ACK line and window line of a built capture, point by point:
 * B acknowledges each of A's five 1000-byte segments with a window of its
 * own (no window scaling: the SYNs carry none), 20 ms apart. Each line is
 * drawn as steps: from each ACK's time, at its ACK number (the ACK line)
 * or ACK number + window (the window line), relative to A's ISN, through
 * the panel's scale: x = x0 + w * t / (the last time tick), y = y0 + h -
 * h * v / (the top value tick). The axes: the connection spans 0.15 s, a
 * step of 0.02 s (about 6 ticks), so 9 time ticks to 0.16 s; the highest
 * value, the window edge 4001 + 5000, is given 2% of room (9181.02), a
 * step of 2000 (about 5 ticks), so 6 value ticks to 10k. (The windows stay
 * under 4 times the data: a larger edge is cut there, so that a huge
 * window does not flatten the rest.) */
Test(draw, ack_and_window_lines_drawn_exactly)
{
    begin("ackwin.pcap");
    const uint8_t A = SS_TCP_ACK;
    const uint32_t a0 = 1000, b0 = 5000;
    pg_step_us = 10000;
    pg_seg(0, a0, 0, SS_TCP_SYN, 64000, 0);
    pg_seg(1, b0, a0 + 1, SS_TCP_SYN | A, 8000, 0);
    pg_seg(0, a0 + 1, b0 + 1, A, 64000, 0);
    static const uint16_t win[5] = {6000, 6000, 3000, 5000, 2000};
    for (uint32_t i = 0; i < 5; i++) {
        pg_seg(0, a0 + 1 + 1000 * i, b0 + 1, A, 64000, 1000);
        pg_seg(1, b0 + 1, a0 + 1001 + 1000 * i, A, win[i], 0);
    }
    pg_seg(0, a0 + 5001, b0 + 1, SS_TCP_FIN | A, 64000, 0);
    pg_seg(1, b0 + 1, a0 + 5002, SS_TCP_FIN | A, 2000, 0);
    pg_seg(0, a0 + 5002, b0 + 2, A, 64000, 0);
    end();
    /* B's segments with ACK: time (s), ACK number - A's ISN, window. */
    static const double want[7][3] = {
        {0.01, 1, 8000},    {0.04, 1001, 6000}, {0.06, 2001, 6000}, {0.08, 3001, 3000},
        {0.10, 4001, 5000}, {0.12, 5001, 2000}, {0.14, 5002, 2000},
    };
    const char *args[] = {"diagram", "--plot", path_of("ackwin.svg"), path_of("ackwin.pcap"),
                          NULL};
    struct th_result r = th_run_cli(args, 20000);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_result_free(&r);
    char *p = slurp(path_of("ackwin.svg"), NULL);
    double t[16];
    cr_assert_eq(time_ticks(p, 0, t, 16), 9);
    cr_assert(fabs(t[8] - 0.16) < 1e-9, "%g", t[8]);
    struct scale sc = tsg_scale(p);
    cr_assert(fabs(sc.vmax - 10000) < 1e-9, "%g", sc.vmax);
    const char *g = strstr(p, "<g class=\"axis\">"), *ge = strstr(g, "</g>");
    size_t vt = 0;
    const char *vtag = "text-anchor=\"end\" class=\"ax\">";
    for (const char *q = strstr(g, vtag); q && q < ge; q = strstr(q + 1, vtag))
        if (q[strlen(vtag)] >= '0' && q[strlen(vtag)] <= '9')
            vt++;   /* not "bytes" nor "time (s)" */
    cr_assert_eq(vt, 6, "value ticks: %zu", vt);
    for (int line = 0; line < 2; line++) {
        double pt[32][2];
        size_t n = polyline(p, line ? "winline" : "ackline", pt, 32);
        cr_assert_eq(n, 1 + 2 * 6, "%s: %zu points", line ? "winline" : "ackline", n);
        for (size_t i = 0; i < n; i++) {
            /* point 0: the first ACK; then 2k-1 (the k-th ACK's time at the
             * last value) and 2k (its own value). */
            size_t at = (i + 1) / 2, of = i == 0 ? 0 : i % 2 ? at - 1 : at;
            double v = want[of][1] + (line ? want[of][2] : 0);
            double wx = sc.x0 + sc.w * want[at][0] / t[8];
            double wy = sc.y0 + sc.h - sc.h * v / sc.vmax;
            cr_assert(fabs(pt[i][0] - wx) <= 0.051 && fabs(pt[i][1] - wy) <= 0.051,
                      "%s point %zu: %.1f,%.1f, want %.2f,%.2f (t %g, value %g)",
                      line ? "winline" : "ackline", i, pt[i][0], pt[i][1], wx, wy,
                      want[at][0], v);
        }
    }
    free(p);
}

/* A stack run at 3% loss whose SACKs tshark reads from the run's pcap: the
 * run's plots (from the link's tap) and diagram's of the pcap draw exactly
 * tshark's blocks of B's ACKs. */
Test(draw, sack_blocks_of_a_stack_run_match_tshark)
{
    if (access("/usr/bin/tshark", X_OK) != 0)
        cr_skip_test("tshark is not installed (scripts/install-deps.sh installs it)");
    const char *args[] = {"stack", "diagram", "--loss", "3", "--seed", "1", "--bytes", "32K",
                          "--plot", path_of("rp.svg"), "--pcap", path_of("run.pcap"), NULL};
    struct th_result r = th_run_cli(args, 30000);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_result_free(&r);
    const char *args2[] = {"diagram", "--plot", path_of("cp.svg"), path_of("run.pcap"), NULL};
    r = th_run_cli(args2, 30000);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_result_free(&r);
    /* One line per ACK: "le1,le2\tre1,re2", relative to A's ISN. */
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "tshark -r %s -o tcp.relative_sequence_numbers:TRUE -Y 'ip.src==10.0.0.2 && "
             "tcp.options.sack_le' -T fields -e tcp.options.sack_le -e tcp.options.sack_re "
             "2>/dev/null",
             path_of("run.pcap"));
    char *ts = run_sh(cmd);
    uint32_t want[64][2];
    size_t nw = 0;
    for (char *l = ts; *l;) {
        char *nl = strchr(l, '\n'), *tab = strchr(l, '\t');
        cr_assert(nl && tab && tab < nl, "%s", ts);
        for (char *le = l, *re = tab + 1; le < tab; le++, re++) {
            cr_assert_lt(nw, 64);
            want[nw][0] = (uint32_t)strtoul(le, &le, 10);
            want[nw++][1] = (uint32_t)strtoul(re, &re, 10);
            cr_assert(*le == ',' || le == tab, "%s", ts);
        }
        l = nl + 1;
    }
    free(ts);
    /* Seed 1 loses A's 3rd segment (2897:4345): B's next two ACKs carry
     * the block 4345:14481. */
    cr_assert_eq(nw, 2);
    cr_assert(want[0][0] == 4345 && want[0][1] == 14481, "%u:%u", want[0][0], want[0][1]);
    char *p = slurp(path_of("rp.svg"), NULL);
    assert_sack_lines(p, (const uint32_t(*)[2])want, nw, "stack run");
    free(p);
    p = slurp(path_of("cp.svg"), NULL);
    assert_sack_lines(p, (const uint32_t(*)[2])want, nw, "the run's pcap");
    free(p);
}

/* Without --width the diagram takes the terminal's width (a pty of 70
 * columns, through script(1)), else $COLUMNS (stdout a pipe), else 80: each
 * drawing equals the one --width asks for, byte for byte. */
Test(draw, terminal_diagram_width_defaults_to_the_terminal)
{
    small_capture();
    char *want[3];
    const char *widths[] = {"70", "90", "80"};
    for (int k = 0; k < 3; k++) {
        const char *args[] = {"diagram", "--width", widths[k], path_of("small.pcap"), NULL};
        struct th_result r = th_run_cli(args, 20000);
        cr_assert_eq(r.status, 0, "%s", r.err);
        want[k] = strdup(r.out);
        th_result_free(&r);
    }
    cr_assert_str_neq(want[0], want[1], "the widths must draw differently");
    cr_assert_str_neq(want[1], want[2], "the widths must draw differently");
    char cmd[1024], *got;
    /* A terminal of 70 columns ($COLUMNS says otherwise: the terminal wins);
     * the pty turns "\n" into "\r\n". */
    snprintf(cmd, sizeof cmd,
             "script -qec 'stty cols 70 rows 40; COLUMNS=90 exec %s diagram %s' /dev/null "
             "</dev/null | tr -d '\\r'",
             th_sockstack(), path_of("small.pcap"));
    got = run_sh(cmd);
    cr_assert_str_eq(got, want[0]);
    free(got);
    snprintf(cmd, sizeof cmd, "COLUMNS=90 %s diagram %s | cat", th_sockstack(),
             path_of("small.pcap"));
    got = run_sh(cmd);
    cr_assert_str_eq(got, want[1]);
    free(got);
    snprintf(cmd, sizeof cmd, "env -u COLUMNS %s diagram %s | cat", th_sockstack(),
             path_of("small.pcap"));
    got = run_sh(cmd);
    cr_assert_str_eq(got, want[2]);
    free(got);
    for (int k = 0; k < 3; k++)
        free(want[k]);
}
