/* sockstack stack up|demo|diagram: the user-space stack, on a TUN device or
 * on a simulated link, with its work made visible.
 *
 *   up       one stack on a TUN device with echo/discard/source services
 *            (and optionally one outgoing transfer), until SIGINT/SIGTERM.
 *   demo     two stacks over a simulated lossy link on a virtual clock;
 *            one sends N bytes, both close; prints the trace and a summary.
 *   diagram  the demo drawn as a sequence diagram (terminal, SVG) and plots.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/link_opt.h"
#include "cli/stack_opt.h"
#include "sockstack/config.h"
#include "sockstack/discard.h"
#include "sockstack/echo.h"
#include "sockstack/server.h"
#include "sockstack/viz.h"
#include "sockstack/err.h"
#include "sockstack/link.h"
#include "sockstack/reactor.h"
#include "sockstack/stackrun.h"

/* ---- shared parsing ------------------------------------------------------ */

static void hex(const unsigned char *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Print one trace event: text (with a time and node prefix) or JSON (with
 * a "node" member added). */
static void print_trace(FILE *out, const char *node, const struct ss_trace_event *ev,
                        bool json, unsigned fmt_flags)
{
    char line[512];
    if (json) {
        int n = ss_trace_format_json(ev, line, sizeof line);
        if (n <= 0 || line[0] != '{')
            return;
        if (node)
            fprintf(out, "{\"node\":\"%s\",%s\n", node, line + 1);
        else
            fprintf(out, "%s\n", line);
        return;
    }
    ss_trace_format(ev, fmt_flags, line, sizeof line);
    if (node)
        fprintf(out, "%11.6f %s  %s\n", ev->time_us / 1e6, node, line);
    else
        fprintf(out, "%s\n", line);
}

/* ---- demo and diagram ---------------------------------------------------- */

struct demo_opts {
    struct ss_sim_params link[2]; /* [0]: A -> B, [1]: B -> A */
    uint64_t bytes, seed, limit_us;
    bool trace, trace_json, quiet_trace;
    const char *pcap, *svg, *plot, *html;
    bool diagram;
    int width;             /* diagram: columns; 0: the terminal's */
    struct cli_tcpopt tcp;  /* both stacks */
    int cc_algo;           /* 0: the stack's default */
};

struct demo_ctx {
    struct demo_opts *o;
    ss_simnet *net;
    struct ss_xfer tx, rx;
    ss_viz *viz;           /* the drawing's recording (diagram, --html) */
    struct { uint64_t id; long idx; } wire[4096]; /* link packet id -> record */
    uint64_t retrans[2];
};

struct node_trace { struct demo_ctx *d; int node; };

static const char *node_name(int node) { return node == 0 ? "A" : "B"; }

static void demo_trace(void *arg, const struct ss_trace_event *ev)
{
    struct node_trace *nt = arg;
    struct demo_ctx *d = nt->d;
    if (ev->kind == SS_TRACE_RETRANSMIT)
        d->retrans[nt->node]++;
    if (d->viz)
        ss_viz_stack_event(d->viz, nt->node, ev, false);
    if (d->o->quiet_trace)
        return;
    if (d->o->trace_json) {
        print_trace(stdout, node_name(nt->node), ev, true, 0);
        return;
    }
    /* Without --trace: the connection as A sees it (segments both ways,
     * states), B's states and retransmissions. --trace: everything. */
    bool show = d->o->trace;
    if (!show) {
        switch (ev->kind) {
        case SS_TRACE_STATE:
        case SS_TRACE_RETRANSMIT:
            show = true;
            break;
        case SS_TRACE_SEG_IN:
        case SS_TRACE_SEG_OUT:
            show = nt->node == 0;
            break;
        default:
            break;
        }
    }
    if (show)
        print_trace(stdout, node_name(nt->node), ev, false, 0);
}

/* A packet in the trace's notation, without the direction mark. */
static void describe(const uint8_t *pkt, size_t len, char *buf, size_t cap)
{
    size_t ihl = len >= 20 ? (size_t)(pkt[0] & 15) * 4 : 0;
    struct ss_trace_event ev = {.kind = SS_TRACE_SEG_OUT};
    uint16_t sp, dp;
    if (ihl >= 20 && ihl < len && pkt[9] == 6 &&
        ss_tcp_seg_decode(pkt + ihl, len - ihl, &sp, &dp, &ev.u.seg) >= 0) {
        char line[256];
        ss_trace_format(&ev, 0, line, sizeof line);
        snprintf(buf, cap, "%s", line + 2);
    } else {
        snprintf(buf, cap, "IP proto=%u len=%zu", len >= 20 ? pkt[9] : 0, len);
    }
}

static void demo_tap(void *arg, enum ss_sim_tap_point pt, int from, uint64_t id,
                     uint64_t now, const uint8_t *pkt, size_t len)
{
    struct demo_ctx *d = arg;
    if (d->viz) {
        /* Each packet once, as sent; the link says what became of it. */
        size_t slot = id % (sizeof d->wire / sizeof d->wire[0]);
        if (pt == SS_SIM_TAP_SEND) {
            d->wire[slot].id = id;
            d->wire[slot].idx = ss_viz_packet(d->viz, now, pkt, len);
        } else if (d->wire[slot].id == id) {
            if (pt == SS_SIM_TAP_DELIVER)
                ss_viz_arrived(d->viz, d->wire[slot].idx, now);
            else
                ss_viz_lost(d->viz, d->wire[slot].idx);
        }
    }
    if (d->o->quiet_trace || d->o->trace_json)
        return;
    if (pt == SS_SIM_TAP_LOST || pt == SS_SIM_TAP_QDROP) {
        char desc[256];
        describe(pkt, len, desc, sizeof desc);
        printf("%11.6f %s  link: %s %s\n", now / 1e6, from == 0 ? "A->B" : "B->A",
               pt == SS_SIM_TAP_LOST ? "lost" : "queue full, dropped", desc);
    }
}

static uint64_t demo_now(void *arg) { return ss_simnet_now(arg); }

static bool both_done(void *arg)
{
    struct demo_ctx *d = arg;
    return ss_xfer_finished(&d->tx) && ss_xfer_finished(&d->rx);
}

static void demo_usage(FILE *out, const char *cmd)
{
    fprintf(out,
            "Usage: sockstack stack %s [OPTIONS]\n"
            "\n"
            "Two user-space stacks, A (10.0.0.1) and B (10.0.0.2), joined by a\n"
            "simulated link on a virtual clock. A connects to B, sends --bytes of\n"
            "a seeded pattern, and both close. Same options and seed: same run.\n"
            "Needs no privileges; nothing touches a real network.\n"
            "\n"
            "Link (both directions; one-way delay 10 ms unless --delay):\n",
            cmd);
    cli_link_help(out);
    fprintf(out,
            "  --a-to-b KEY=V,...  direction A -> B only (keys as the options above:\n"
            "                      loss=1,delay=20,...); likewise --b-to-a\n"
            "Transfer:\n"
            "  --bytes N           bytes A sends (K/M/G suffixes; default %s)\n"
            "  --seed S            PRNG seed for the link, the ISNs, the data\n"
            "  --limit SECONDS     give up after this much virtual time (600)\n"
            "  --cc ALGO           congestion control of both stacks: cubic (default)\n"
            "                      or newreno\n"
            "Output:\n"
            "  --trace             every event of both stacks (RTT, windows, drops)\n"
            "  --trace-json        the events as JSON lines instead\n"
            "  --pcap FILE         write every packet as sent to FILE (pcap)\n"
            "  --html FILE         one page to step through the run in a browser\n",
            !strcmp(cmd, "diagram") ? "4K" : "20K");
    if (!strcmp(cmd, "diagram"))
        fprintf(out, "  --width N           the diagram's columns (default: the terminal's)\n"
                     "  --svg FILE          also draw the diagram as SVG into FILE\n"
                     "  --plot FILE         SVG plots: time-sequence graph, cwnd, RTT\n");
    fprintf(out, "TCP options of both stacks:\n%s", cli_tcpopt_help);
    fprintf(out, "  -h, --help          show this help\n");
}

static int parse_demo(int argc, char **argv, struct demo_opts *o, const char *cmd,
                      const char *usage_cmd)
{
    enum { O_BYTES = 256, O_SEED, O_LIMIT, O_TRACE, O_JSON, O_PCAP, O_SVG, O_PLOT, O_CC,
           O_HTML, O_WIDTH };
    static const struct option opts[] = {
        {"cc", required_argument, 0, O_CC},
        CLI_LINK_LONGOPTS,
        CLI_LINK_DIR_LONGOPTS("a-to-b", "b-to-a"),
        {"bytes", required_argument, 0, O_BYTES},
        {"seed", required_argument, 0, O_SEED},
        {"limit", required_argument, 0, O_LIMIT},
        {"trace", no_argument, 0, O_TRACE},
        {"trace-json", no_argument, 0, O_JSON},
        {"pcap", required_argument, 0, O_PCAP},
        {"svg", required_argument, 0, O_SVG},
        {"plot", required_argument, 0, O_PLOT},
        {"html", required_argument, 0, O_HTML},
        {"width", required_argument, 0, O_WIDTH},
        CLI_TCPOPT_OPTIONS,
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    struct ss_sim_params defaults;
    ss_sim_params_init(&defaults);
    defaults.delay_us = 10000;
    struct cli_link lk;
    cli_link_init(&lk, &defaults);
    o->bytes = o->diagram ? 4096 : 20480;
    o->seed = 1;
    o->limit_us = 600ull * 1000000;
    optind = 1;
    opterr = 0;
    int c;
    uint64_t v;
    while ((c = cli_getopt(argc, argv, ":h", opts)) != -1) {
        int rc = cli_link_opt(&lk, c, optarg, c == CLI_LINK_O_DIR0 ? "--a-to-b" : "--b-to-a");
        if (rc < 0)
            return CLI_USAGE;
        if (rc == 0)
            continue;
        rc = 0;
        switch (c) {
        case O_BYTES: rc = cli_parse_scaled("--bytes", optarg, 1024, 0, 1ull << 40, &o->bytes); break;
        case O_SEED: rc = cli_parse_u64("--seed", optarg, 0, UINT64_MAX, &o->seed); break;
        case O_LIMIT:
            rc = cli_parse_u64("--limit", optarg, 1, 86400, &v);
            o->limit_us = v * 1000000;
            break;
        case O_TRACE: o->trace = true; break;
        case O_JSON: o->trace_json = true; break;
        case O_PCAP: o->pcap = optarg; break;
        case O_HTML: o->html = optarg; break;
        case O_WIDTH:
            if (!o->diagram)
                return cli_usage_error(usage_cmd, "--width is an option of 'stack diagram'");
            rc = cli_parse_int("--width", optarg, 60, 1000, &o->width);
            break;
        case O_CC:
            if (cli_parse_cc(usage_cmd, "--cc", optarg, &o->cc_algo) != 0)
                return CLI_USAGE;
            break;
        case O_SVG:
        case O_PLOT:
            if (!o->diagram)
                return cli_usage_error(usage_cmd, "%s is an option of 'stack diagram'",
                                       c == O_SVG ? "--svg" : "--plot");
            if (c == O_SVG)
                o->svg = optarg;
            else
                o->plot = optarg;
            break;
        case 'h': demo_usage(stdout, cmd); return -CLI_OK - 1;
        default:
            rc = cli_tcpopt_getopt(c, optarg, &o->tcp);
            if (rc == 0)
                return cli_option_error(usage_cmd, c, argv);
            break;
        }
        if (rc < 0)
            return CLI_USAGE;
    }
    if (optind < argc)
        return cli_usage_error(usage_cmd, "unexpected argument '%s'", argv[optind]);
    if (o->trace && o->trace_json)
        return cli_usage_error(usage_cmd, "--trace and --trace-json exclude each other");
    if (cli_link_finish(&lk, o->link) < 0)
        return CLI_USAGE;
    return 0;
}

static int run_demo(struct demo_opts *o)
{
    struct demo_ctx *d = calloc(1, sizeof *d);
    if (!d) {
        cli_error("out of memory");
        return CLI_RUNTIME;
    }
    d->o = o;
    d->tx.sd = d->tx.lsd = d->rx.sd = d->rx.lsd = -1;
    int status = CLI_RUNTIME;
    ss_pcap *pcap = NULL;
    if (o->diagram || o->html) {
        if (ss_viz_new(200000, &d->viz) < 0) {
            cli_error("out of memory");
            goto out;
        }
    }
    if (o->pcap) {
        int rc = ss_pcap_open(&pcap, o->pcap);
        if (rc < 0) {
            cli_error("--pcap %s: %s", o->pcap, ss_strerror(rc));
            goto out;
        }
    }
    struct ss_simnet_cfg cfg;
    ss_simnet_cfg_default(&cfg);
    cfg.link[0] = o->link[0];
    cfg.link[1] = o->link[1];
    cfg.seed = o->seed;
    cfg.pcap = pcap;
    cfg.tap = demo_tap;
    cfg.tap_arg = d;
    struct node_trace nt[2] = {{d, 0}, {d, 1}};
    for (int i = 0; i < 2; i++) {
        cli_tcpopt_apply(&o->tcp, &cfg.stack[i]);
        cfg.stack[i].trace = demo_trace;
        cfg.stack[i].trace_ctx = &nt[i];
        if (o->cc_algo)
            cfg.stack[i].cc_algo = o->cc_algo;
    }
    int rc = ss_simnet_new(&cfg, &d->net);
    if (rc < 0) {
        cli_error("cannot create the simulated network: %s", ss_strerror(rc));
        goto out;
    }
    const uint16_t port = 5001;
    d->rx = (struct ss_xfer){.sd = -1, .lsd = -1};
    d->tx = (struct ss_xfer){.bytes = o->bytes, .seed = o->seed, .sd = -1, .lsd = -1};
    if ((rc = ss_xfer_start_receiver(&d->rx, ss_simnet_stack(d->net, 1), demo_now,
                                     d->net, port)) < 0 ||
        (rc = ss_xfer_start_sender(&d->tx, ss_simnet_stack(d->net, 0), demo_now,
                                   d->net, cfg.stack[1].local_addr, port)) < 0) {
        cli_error("cannot start the transfer: %s", ss_strerror(rc));
        goto out;
    }
    uint64_t real0 = mono_us();
    rc = ss_simnet_run(d->net, both_done, d, o->limit_us);
    /* Then let the stacks finish on their own (FIN exchange, TIME-WAIT). */
    if (rc == 0)
        rc = ss_simnet_run(d->net, NULL, NULL, o->limit_us);
    uint64_t real = mono_us() - real0;
    uint64_t vt = ss_simnet_now(d->net);
    if (rc == -ETIMEDOUT && both_done(d))
        rc = 0; /* only TIME-WAIT left when the limit came */
    if (rc < 0 && rc != -ETIMEDOUT) {
        cli_error("simulation failed: %s", ss_strerror(rc));
        goto out;
    }

    if (d->viz) {
        ss_viz_finish(d->viz, vt);
        if (o->diagram)
            ss_viz_diagram_text(d->viz, o->width ? o->width : cli_term_width(), stdout);
        if (o->svg && cli_write_view("--svg", o->svg, ss_viz_diagram_svg, d->viz) != CLI_OK)
            goto out;
        if (o->plot && cli_write_view("--plot", o->plot, ss_viz_plot_svg, d->viz) != CLI_OK)
            goto out;
        if (o->html) {
            char title[96];
            snprintf(title, sizeof title, "stack %s --seed %llu", o->diagram ? "diagram" : "demo",
                     (unsigned long long)o->seed);
            FILE *f = fopen(o->html, "w");
            if (!f || ss_viz_html(d->viz, title, f) < 0 || fclose(f) != 0) {
                cli_error("--html %s: %s", o->html, strerror(errno));
                goto out;
            }
        }
    }

    ss_xfer_cleanup(&d->tx);
    ss_xfer_cleanup(&d->rx);
    char hs[65], hr[65];
    hex(d->tx.sha_sent, 32, hs);
    hex(d->rx.sha_received, 32, hr);
    bool match = d->tx.sent == o->bytes && d->rx.received == o->bytes &&
                 !memcmp(d->tx.sha_sent, d->rx.sha_received, 32);
    struct ss_sim_stats ab, ba;
    ss_sim_get_stats(ss_simnet_link(d->net), 0, &ab);
    ss_sim_get_stats(ss_simnet_link(d->net), 1, &ba);
    struct ss_stack_stats sa, sb;
    ss_stack_stats(ss_simnet_stack(d->net, 0), &sa);
    ss_stack_stats(ss_simnet_stack(d->net, 1), &sb);
    FILE *out = o->trace_json ? stderr : stdout;
    fprintf(out, "\nsummary (seed %llu):\n", (unsigned long long)o->seed);
    fprintf(out, "  sent      %llu bytes  sha256 %s\n", (unsigned long long)d->tx.sent, hs);
    fprintf(out, "  received  %llu bytes  sha256 %s  %s\n",
            (unsigned long long)d->rx.received, hr, match ? "(match)" : "(MISMATCH)");
    fprintf(out, "  virtual time %.3f s (real %.1f ms)\n", vt / 1e6, real / 1000.0);
    fprintf(out, "  retransmissions: A %llu, B %llu\n",
            (unsigned long long)sa.tcp_retransmits, (unsigned long long)sb.tcp_retransmits);
    fprintf(out, "  link A->B: %llu packets, %llu lost, %llu duplicated, %llu reordered, "
                 "%llu corrupted, %llu queue drops\n",
            (unsigned long long)ab.sent, (unsigned long long)ab.lost,
            (unsigned long long)ab.duplicated, (unsigned long long)ab.reordered,
            (unsigned long long)ab.corrupted, (unsigned long long)ab.dropped_queue);
    fprintf(out, "  link B->A: %llu packets, %llu lost, %llu duplicated, %llu reordered, "
                 "%llu corrupted, %llu queue drops\n",
            (unsigned long long)ba.sent, (unsigned long long)ba.lost,
            (unsigned long long)ba.duplicated, (unsigned long long)ba.reordered,
            (unsigned long long)ba.corrupted, (unsigned long long)ba.dropped_queue);
    if (pcap)
        fprintf(out, "  pcap: %llu packets in %s\n",
                (unsigned long long)ss_pcap_count(pcap), o->pcap);
    if (rc == -ETIMEDOUT) {
        cli_error("the transfer did not finish within %llu s of virtual time",
                  (unsigned long long)(o->limit_us / 1000000));
    } else if (d->tx.error || d->rx.error) {
        cli_error("the transfer failed: A: %s, B: %s",
                  d->tx.error ? ss_strerror(d->tx.error) : "ok",
                  d->rx.error ? ss_strerror(d->rx.error) : "ok");
    } else if (!match) {
        cli_error("what arrived is not what was sent");
    } else {
        status = CLI_OK;
    }
out:
    if (d->net) {
        ss_xfer_cleanup(&d->tx);
        ss_xfer_cleanup(&d->rx);
    }
    ss_simnet_free(d->net);
    ss_pcap_close(pcap);
    ss_viz_free(d->viz);
    free(d);
    return status;
}

static int cmd_demo(int argc, char **argv, bool diagram)
{
    struct demo_opts o = {.diagram = diagram};
    const char *cmd = diagram ? "diagram" : "demo";
    int rc = parse_demo(argc, argv, &o, cmd, diagram ? "stack diagram " : "stack demo ");
    if (rc == -CLI_OK - 1)
        return CLI_OK;
    if (rc)
        return rc;
    if (diagram && !o.trace && !o.trace_json)
        o.quiet_trace = true;
    return run_demo(&o);
}

/* ---- up ------------------------------------------------------------------ */

enum up_svc { UP_ECHO, UP_DISCARD, UP_SOURCE };
static const char *const up_svc_names[] = {"echo", "discard", "source"};

struct serve_spec { enum up_svc kind; uint16_t port; };

/* --serve: every service is the app sockstack serve runs (apps/echo.c,
 * apps/discard.c), on the server framework over the stack's sock.h
 * backend, attached to the loop that drives the stack: a TCP server, and
 * a UDP one for echo and discard. */
#define UP_SERVERS (2 * SS_STACKRUN_SVC_MAX)

struct up_ctx {
    ss_loop *loop;
    ss_tunnet *tn;
    ss_server *srv[UP_SERVERS];
    int nsrv;
    ss_source_opts source[SS_STACKRUN_SVC_MAX];
    char ports[SS_STACKRUN_SVC_MAX][8];
    struct ss_xfer xfer;
    bool client;
    bool trace, trace_json;
    uint64_t t0;
    int status;
};

static void up_trace(void *arg, const struct ss_trace_event *ev)
{
    struct up_ctx *u = arg;
    if (u->trace_json) {
        print_trace(stdout, NULL, ev, true, 0);
    } else {
        struct ss_trace_event e = *ev;
        e.time_us -= u->t0 < e.time_us ? u->t0 : e.time_us;
        print_trace(stdout, NULL, &e, false, SS_TRACE_FMT_TIME | SS_TRACE_FMT_TUPLE);
    }
    fflush(stdout);
}

static void up_signal(ss_loop *loop, int signo, void *arg)
{
    cli_log("%s: stopping", strsignal(signo));
    ss_loop_stop(loop);
}

static uint64_t up_now(void *arg) { return ss_tunnet_now(arg); }

/* The client transfer ends the run when it is over. */
static void up_check(ss_loop *loop, ss_timer *t, void *arg)
{
    struct up_ctx *u = arg;
    if (u->client && ss_xfer_finished(&u->xfer)) {
        ss_loop_stop(loop);
        return;
    }
    ss_timer_start(loop, t, 5);
}

/* Serve spec i of --serve on the stack backend be (bound to the stack's
 * address as): 0, or -errno of the server that failed. */
static int up_serve(struct up_ctx *u, int i, const struct serve_spec *sp, const ss_backend *be,
                    const char *as, const ss_source_opts *source, uint32_t idle_ms,
                    uint32_t per_peer)
{
    static const ss_echo_opts plain_echo;
    snprintf(u->ports[i], sizeof u->ports[i], "%u", sp->port);
    for (int type = SS_STREAM; ; type = SS_DGRAM) {
        ss_server_opts o;
        ss_server_opts_init(&o);
        o.backend = be;
        o.loop = u->loop;
        o.bind_host = as;
        o.port = u->ports[i];
        o.type = type;
        o.handle_signals = false; /* stack up's own watchers stop the loop */
        o.log = cli_server_log;   /* as serve's: service, peer, what failed */
        o.backlog = 128;
        o.max_conns = 0;          /* the stack's socket limit is the limit */
        o.max_per_addr = per_peer;
        o.idle_timeout_ms = idle_ms;
        const ss_service *svc;
        if (sp->kind == UP_ECHO) {
            svc = ss_echo_service();
            o.svc_ctx = (void *)&plain_echo;
            if (type == SS_STREAM)
                o.sockopts.nodelay = 1; /* as serve echo: replies go at once */
        } else if (sp->kind == UP_DISCARD) {
            svc = ss_discard_service();
        } else {
            u->source[i] = *source;
            u->source[i].seed = sp->port;
            svc = ss_source_service();
            o.svc_ctx = &u->source[i];
        }
        ss_server *srv;
        int rc = ss_server_new(svc, &o, &srv);
        if (rc < 0)
            return rc;
        u->srv[u->nsrv++] = srv;
        if ((rc = ss_server_attach(srv)) < 0)
            return rc;
        if (type == SS_DGRAM || sp->kind == UP_SOURCE)
            return 0;
    }
}

static int parse_hostport(const char *s, struct in_addr *a, uint16_t *port)
{
    char buf[64];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof buf)
        return -1;
    memcpy(buf, s, (size_t)(colon - s));
    buf[colon - s] = '\0';
    if (inet_pton(AF_INET, buf, a) != 1)
        return -1;
    int p;
    if (cli_parse_int("--connect port", colon + 1, 1, 65535, &p) < 0)
        return -2;
    *port = (uint16_t)p;
    return 0;
}

/* "echo:7,discard:9,source:19" */
static int parse_serve(const char *s, struct serve_spec *out, int max, int *n)
{
    char *dup = strdup(s), *save = NULL;
    int rc = 0;
    if (!dup)
        return -1;
    for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        if (!colon || *n == max) {
            cli_error("--serve: '%s' is not NAME:PORT (at most %d services)", tok, max);
            rc = -1;
            break;
        }
        *colon = '\0';
        enum up_svc k;
        if (!strcmp(tok, "echo")) k = UP_ECHO;
        else if (!strcmp(tok, "discard")) k = UP_DISCARD;
        else if (!strcmp(tok, "source")) k = UP_SOURCE;
        else {
            cli_error("--serve: unknown service '%s' (echo, discard, source)", tok);
            rc = -1;
            break;
        }
        int port;
        if (cli_parse_int("--serve port", colon + 1, 1, 65535, &port) < 0) {
            rc = -1;
            break;
        }
        out[*n] = (struct serve_spec){k, (uint16_t)port};
        (*n)++;
    }
    free(dup);
    return rc;
}

static void up_usage(FILE *out)
{
    fprintf(out,
            "Usage: sockstack stack up --tun NAME --addr ADDR/PREFIX [--peer ADDR]\n"
            "                          [--serve SVC:PORT,...] [--connect ADDR:PORT]\n"
            "                          [OPTIONS]\n"
            "\n"
            "Run the user-space stack on a TUN device until SIGINT/SIGTERM (or, with\n"
            "--connect, until that transfer is over). The stack owns ADDR; the\n"
            "kernel's side of the device gets --peer (default: the first other\n"
            "address of the prefix), so the kernel reaches the stack at once.\n"
            "Needs CAP_NET_ADMIN; the device goes when the command ends.\n"
            "\n"
            "  --tun NAME          device name (e.g. ss0; 'ss%%d' lets the kernel number it)\n"
            "  --addr ADDR/PREFIX  the stack's own address and the link's prefix\n"
            "  --peer ADDR         address of the kernel's side\n"
            "  --mtu N             device MTU (default: the device's, 1500)\n"
            "  --serve LIST        services, comma-separated: echo:PORT (TCP and UDP),\n"
            "                      discard:PORT (TCP and UDP), source:PORT (TCP: sends\n"
            "                      --source-bytes, then closes first)\n"
            "  --source-bytes N    what source sends (K/M/G suffixes; default 1M)\n"
            "  --source-pattern P  prng: the seeded pattern of docs/protocols.md\n"
            "                      (default); zero: zero bytes (a benchmark's sender)\n"
            "  --idle-timeout S    close a service's TCP connection after S seconds\n"
            "                      without a byte either way (default 60; 0: never)\n"
            "  --max-per-peer N    TCP connections one peer address may hold at the\n"
            "                      services; more are closed (default 32; 0: no cap)\n"
            "  --syncookies N      SYN cookies: 0 never, 1 when a listener's SYN queue\n"
            "                      is full (default), 2 always\n"
            "  --connect ADDR:PORT the stack opens a connection, sends --send bytes,\n"
            "                      reads to EOF, prints both SHA-256 and exits\n"
            "  --send N            bytes to send with --connect (default 0)\n"
            "  --wait-eof          with --connect: close only after the peer's EOF\n"
            "  --sndbuf N          each socket's send buffer (K/M suffixes; default\n"
            "                      config.h): the most data in flight\n"
            "  --offload           use the device's offloads (virtio-net header): TCP\n"
            "                      segments of up to 64 KiB both ways (the kernel's\n"
            "                      GRO/GSO, our TSO) and checksums left to the kernel;\n"
            "                      not with a link model (default: off)\n"
            "  --no-uring          read and write each packet with its own system\n"
            "                      call; by default the device is read in io_uring\n"
            "                      batches and (without --offload) a wake-up's\n"
            "                      packets are written in one\n"
            "  --cc ALGO           congestion control: cubic (default) or newreno\n"
            "  --trace             print every trace event (text)\n"
            "  --trace-json        print every trace event as JSON lines\n"
            "  --pcap FILE         write every packet both ways to FILE (as the stack\n"
            "                      sends and receives it)\n"
            "Link model between the device and the stack (as `stack demo`; default:\n"
            "none, a direct wire):\n");
    cli_link_help(out);
    fprintf(out,
            "  --from-stack KEY=V,... the stack's output only (keys as the options\n"
            "                      above: loss=1,delay=20,...); likewise --to-stack\n"
            "  --seed S            the link model's PRNG seed (default 1)\n"
            "TCP options of the stack:\n%s"
            "Output (as sockstack serve's):\n"
            "  -q, --quiet         errors only\n"
            "  -v, --verbose       also one line per service connection: opened, and\n"
            "                      closed with what failed (\"echo: connection #1 from\n"
            "                      ADDR:PORT closed: recv: Connection reset by peer\")\n"
            "  -h, --help          show this help\n", cli_tcpopt_help);
}

static int cmd_up(int argc, char **argv)
{
    enum { O_TUN = 256, O_ADDR, O_PEER, O_MTU, O_SERVE, O_SRCB, O_SRCPAT, O_CONNECT, O_SEND,
           O_WAITEOF, O_TRACE, O_JSON, O_PCAP, O_SEED, O_SNDBUF, O_CC, O_IDLE, O_PERPEER,
           O_COOKIES, O_OFFLOAD, O_NO_URING };
    static const struct option opts[] = {
        {"cc", required_argument, 0, O_CC},
        CLI_LINK_LONGOPTS,
        CLI_LINK_DIR_LONGOPTS("from-stack", "to-stack"),
        {"seed", required_argument, 0, O_SEED},
        {"sndbuf", required_argument, 0, O_SNDBUF},
        {"offload", no_argument, 0, O_OFFLOAD},
        {"no-uring", no_argument, 0, O_NO_URING},
        {"tun", required_argument, 0, O_TUN},
        {"addr", required_argument, 0, O_ADDR},
        {"peer", required_argument, 0, O_PEER},
        {"mtu", required_argument, 0, O_MTU},
        {"serve", required_argument, 0, O_SERVE},
        {"source-bytes", required_argument, 0, O_SRCB},
        {"source-pattern", required_argument, 0, O_SRCPAT},
        {"idle-timeout", required_argument, 0, O_IDLE},
        {"max-per-peer", required_argument, 0, O_PERPEER},
        {"syncookies", required_argument, 0, O_COOKIES},
        {"connect", required_argument, 0, O_CONNECT},
        {"send", required_argument, 0, O_SEND},
        {"wait-eof", no_argument, 0, O_WAITEOF},
        {"trace", no_argument, 0, O_TRACE},
        {"trace-json", no_argument, 0, O_JSON},
        {"pcap", required_argument, 0, O_PCAP},
        CLI_TCPOPT_OPTIONS,
        {"quiet", no_argument, 0, 'q'},
        {"verbose", no_argument, 0, 'v'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *U = "stack up ";
    struct cli_tcpopt tcp = {0};
    const char *tun = NULL, *pcap_path = NULL, *serve = NULL, *connect_to = NULL;
    struct in_addr addr = {0}, peer = {0}, raddr = {0};
    unsigned prefix = 0;
    bool have_addr = false, have_peer = false, have_send = false, wait_eof = false, offload = false,
         no_uring = false;
    bool trace = false, trace_json = false;
    int cc_algo = 0;
    uint16_t rport = 0;
    uint64_t mtu = 0, source_bytes = 1024 * 1024, send_bytes = 0;
    bool source_zeros = false;
    struct serve_spec specs[SS_STACKRUN_SVC_MAX];
    int nspecs = 0;
    struct ss_sim_params link_defaults;
    ss_sim_params_init(&link_defaults);
    link_defaults.mtu = 65535;
    struct cli_link lk;
    cli_link_init(&lk, &link_defaults);
    uint64_t seed = 1, sndbuf = 0;
    uint64_t idle_s = SS_STACKRUN_IDLE_MS / 1000, per_peer = SS_STACKRUN_MAX_PER_PEER;
    uint64_t syncookies = SS_STACK_SYNCOOKIES;
    bool have_seed = false, have_limits = false;
    optind = 1;
    opterr = 0;
    int c, rc;
    while ((c = cli_getopt(argc, argv, ":hqv", opts)) != -1) {
        rc = cli_link_opt(&lk, c, optarg,
                          c == CLI_LINK_O_DIR0 ? "--from-stack" : "--to-stack");
        if (rc < 0)
            return CLI_USAGE;
        if (rc == 0)
            continue;
        switch (c) {
        case O_SEED:
            if (cli_parse_u64("--seed", optarg, 0, UINT64_MAX, &seed) < 0)
                return CLI_USAGE;
            have_seed = true;
            break;
        case O_SNDBUF:
            if (cli_parse_scaled("--sndbuf", optarg, 1024, 1024, 1u << 30, &sndbuf) < 0)
                return CLI_USAGE;
            break;
        case O_TUN:
            if (strlen(optarg) == 0 || strlen(optarg) >= 16)
                return cli_usage_error(U, "--tun: name must have 1 to 15 characters");
            tun = optarg;
            break;
        case O_ADDR:
            rc = cli_parse_addr_prefix(optarg, &addr, &prefix);
            if (rc == -1)
                return cli_usage_error(U, "--addr: '%s' is not ADDR/PREFIX", optarg);
            if (rc < 0)
                return cli_usage_error(U, "--addr: prefix length must be 1 to 30");
            have_addr = true;
            break;
        case O_PEER:
            if (inet_pton(AF_INET, optarg, &peer) != 1)
                return cli_usage_error(U, "--peer: '%s' is not an IPv4 address", optarg);
            have_peer = true;
            break;
        case O_MTU:
            if (cli_parse_u64("--mtu", optarg, 576, 65535, &mtu) < 0)
                return CLI_USAGE;
            break;
        case O_SERVE:
            if (parse_serve(optarg, specs, SS_STACKRUN_SVC_MAX, &nspecs) < 0)
                return CLI_USAGE;
            serve = optarg;
            break;
        case O_SRCB:
            if (cli_parse_scaled("--source-bytes", optarg, 1024, 0, 1ull << 40, &source_bytes) < 0)
                return CLI_USAGE;
            break;
        case O_SRCPAT:
            if (cli_parse_source_pattern("--source-pattern", optarg, &source_zeros) < 0)
                return CLI_USAGE;
            break;
        case O_IDLE:
            if (cli_parse_u64("--idle-timeout", optarg, 0, 86400, &idle_s) < 0)
                return CLI_USAGE;
            have_limits = true;
            break;
        case O_PERPEER:
            if (cli_parse_u64("--max-per-peer", optarg, 0, 1000000, &per_peer) < 0)
                return CLI_USAGE;
            have_limits = true;
            break;
        case O_COOKIES:
            if (cli_parse_u64("--syncookies", optarg, 0, 2, &syncookies) < 0)
                return CLI_USAGE;
            break;
        case O_CONNECT:
            rc = parse_hostport(optarg, &raddr, &rport);
            if (rc == -1)
                return cli_usage_error(U, "--connect: '%s' is not ADDR:PORT", optarg);
            if (rc < 0)
                return CLI_USAGE;
            connect_to = optarg;
            break;
        case O_SEND:
            if (cli_parse_scaled("--send", optarg, 1024, 0, 1ull << 40, &send_bytes) < 0)
                return CLI_USAGE;
            have_send = true;
            break;
        case O_WAITEOF: wait_eof = true; break;
        case O_OFFLOAD: offload = true; break;
        case O_NO_URING: no_uring = true; break;
        case O_TRACE: trace = true; break;
        case O_JSON: trace_json = true; break;
        case O_PCAP: pcap_path = optarg; break;
        case O_CC:
            if (cli_parse_cc(U, "--cc", optarg, &cc_algo) != 0)
                return CLI_USAGE;
            break;
        case 'q': cli_log_level = CLI_LOG_QUIET; break;
        case 'v': cli_log_level = CLI_LOG_DEBUG; break;
        case 'h': up_usage(stdout); return CLI_OK;
        default:
            rc = cli_tcpopt_getopt(c, optarg, &tcp);
            if (rc == 0)
                return cli_option_error(U, c, argv);
            if (rc < 0)
                return CLI_USAGE;
            break;
        }
    }
    if (optind < argc)
        return cli_usage_error(U, "unexpected argument '%s'", argv[optind]);
    if (!tun)
        return cli_usage_error(U, "--tun is required");
    if (!have_addr)
        return cli_usage_error(U, "--addr is required");
    if (!serve && !connect_to)
        return cli_usage_error(U, "nothing to do: give --serve and/or --connect");
    if ((have_send || wait_eof) && !connect_to)
        return cli_usage_error(U, "--send and --wait-eof need --connect");
    if (have_limits && !serve)
        return cli_usage_error(U, "--idle-timeout and --max-per-peer need --serve");
    if (trace && trace_json)
        return cli_usage_error(U, "--trace and --trace-json exclude each other");
    struct cli_stack_spec sp = {.addr = addr, .prefix = prefix, .peer = peer,
                                .have_peer = have_peer, .mtu = (unsigned)mtu,
                                .cc_algo = cc_algo, .offload = offload,
                                .no_uring = no_uring};
    snprintf(sp.tun, sizeof sp.tun, "%s", tun);
    if ((rc = cli_stack_check(U, "--addr:", "--peer", &sp)) != 0)
        return rc;
    if (have_seed && !lk.given)
        return cli_usage_error(U, "--seed is the link model's: give a link option too");
    if (lk.given && offload)
        return cli_usage_error(U, "--offload does not go with a link model");
    if (lk.given) {
        if (cli_link_finish(&lk, sp.link.p) < 0)
            return CLI_USAGE;
        sp.link.seed = seed;
        sp.have_link = true;
    }
    peer = sp.peer;

    struct up_ctx u = {.trace = trace, .trace_json = trace_json, .status = CLI_OK,
                       .xfer = {.sd = -1, .lsd = -1}};
    ss_pcap *pcap = NULL;
    struct cli_stack run = {.fd = -1};
    ss_timer check;
    ss_timer_init(&check, up_check, &u);
    u.status = CLI_RUNTIME;
    if (pcap_path && (rc = ss_pcap_open(&pcap, pcap_path)) < 0) {
        cli_error("--pcap %s: %s", pcap_path, ss_strerror(rc));
        return CLI_RUNTIME;
    }
    if ((rc = ss_loop_new(&u.loop)) < 0) {
        cli_error("cannot create the event loop: %s", ss_strerror(rc));
        goto out;
    }
    ss_loop_signal_add(u.loop, SIGINT, up_signal, &u);
    ss_loop_signal_add(u.loop, SIGTERM, up_signal, &u);
    struct ss_stack_cfg cfg;
    ss_stack_cfg_default(&cfg);
    if (sndbuf)
        cfg.sndbuf = (uint32_t)sndbuf;
    cfg.syncookies = (int)syncookies;
    cli_tcpopt_apply(&tcp, &cfg);
    if (trace || trace_json) {
        cfg.trace = up_trace;
        cfg.trace_ctx = &u;
    }
    if (cli_stack_start(u.loop, &sp, &cfg, pcap, nspecs > 0, &run) != CLI_OK)
        goto out;
    u.tn = run.tn;
    const char *ifname = run.ifname;
    u.t0 = ss_tunnet_now(u.tn);
    char as[INET_ADDRSTRLEN], ps[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &addr, as, sizeof as);
    inet_ntop(AF_INET, &peer, ps, sizeof ps);
    for (int i = 0; i < nspecs; i++) {
        ss_source_opts src = {.bytes = source_bytes, .zeros = source_zeros};
        if ((rc = up_serve(&u, i, &specs[i], run.be, as, &src,
                           (uint32_t)(idle_s * 1000), (uint32_t)per_peer)) < 0) {
            cli_error("cannot serve %s on port %u: %s", up_svc_names[specs[i].kind],
                      specs[i].port, ss_strerror(rc));
            goto out;
        }
        fprintf(stderr, "listening on %s:%u (%s %s)\n", as, specs[i].port,
                specs[i].kind == UP_SOURCE ? "tcp" : "tcp+udp", up_svc_names[specs[i].kind]);
    }
    if (connect_to) {
        u.client = true;
        u.xfer.bytes = send_bytes;
        u.xfer.seed = 1;
        u.xfer.wait_eof = wait_eof;
        if ((rc = ss_xfer_start_sender(&u.xfer, ss_tunnet_stack(u.tn), up_now, u.tn,
                                       ntohl(raddr.s_addr), rport)) < 0) {
            cli_error("cannot connect to %s: %s", connect_to, ss_strerror(rc));
            goto out;
        }
        ss_tunnet_kick(u.tn);
        ss_timer_start(u.loop, &check, 5);
    }
    fprintf(stderr, "stack up on %s: stack %s, kernel side %s/%u; ready\n", ifname, as, ps,
            prefix);
    fflush(stderr);
    if ((rc = ss_loop_run(u.loop)) < 0) {
        cli_error("event loop failed: %s", ss_strerror(rc));
        goto out;
    }
    u.status = CLI_OK;
    if (u.client) {
        ss_xfer_cleanup(&u.xfer);
        char hs[65], hr[65];
        hex(u.xfer.sha_sent, 32, hs);
        hex(u.xfer.sha_received, 32, hr);
        printf("sent %llu sha256=%s\nreceived %llu sha256=%s\n",
               (unsigned long long)u.xfer.sent, hs, (unsigned long long)u.xfer.received, hr);
        if (u.xfer.error) {
            cli_error("connection to %s: %s", connect_to, ss_strerror(u.xfer.error));
            u.status = CLI_RUNTIME;
        }
    }
out:
    if (u.loop)
        ss_timer_stop(u.loop, &check);
    if (u.client)
        ss_xfer_cleanup(&u.xfer);
    /* Each server ends its connections (their sockets abort) and closes. */
    for (int i = 0; i < u.nsrv; i++) {
        ss_server_detach(u.srv[i]);
        ss_server_free(u.srv[i]);
    }
    cli_stack_stop(&run, u.tn != NULL);
    if (u.loop)
        ss_loop_free(u.loop);
    ss_pcap_close(pcap);
    return u.status;
}

/* ---- dispatch ------------------------------------------------------------ */

static void stack_usage(FILE *out)
{
    fprintf(out,
            "Usage: sockstack stack COMMAND [OPTIONS]\n"
            "\n"
            "The user-space TCP/IP stack, made visible.\n"
            "\n"
            "Commands:\n"
            "  up        run the stack on a TUN device with echo/discard services\n"
            "  demo      two stacks over a simulated lossy link: trace and summary\n"
            "  diagram   the demo as a sequence diagram (terminal, SVG) and plots\n"
            "\n"
            "Run 'sockstack stack COMMAND --help' for a command's options.\n");
}

int cmd_stack(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("stack ", "missing command (up, demo, diagram)");
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        stack_usage(stdout);
        return CLI_OK;
    }
    if (!strcmp(argv[1], "up"))
        return cmd_up(argc - 1, argv + 1);
    if (!strcmp(argv[1], "demo"))
        return cmd_demo(argc - 1, argv + 1, false);
    if (!strcmp(argv[1], "diagram"))
        return cmd_demo(argc - 1, argv + 1, true);
    static const char *const names[] = {"up", "demo", "diagram"};
    return cli_unknown_command("stack ", argv[1], names, 3);
}
