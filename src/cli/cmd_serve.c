/* sockstack serve SERVICE [options]: run a service on the server framework.
 *
 * Parses the options every service shares into ss_server_opts, lets the
 * service's row parse its own (serve.h), then runs the server until
 * SIGINT/SIGTERM. Prints exactly one "listening on ADDR:PORT (PROTO)" line
 * on stderr when ready; everything else on stderr is a timestamped log line
 * (--quiet: errors only; --verbose: per-connection detail).
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cli/cli.h"
#include "cli/serve.h"
#include "sockstack/config.h"
#include "sockstack/discover.h"
#include "cli/sockopt_cli.h"
#include "cli/stack_opt.h"
#include "cli/tls_cli.h"
#include "sockstack/err.h"
#include "sockstack/server.h"

#define MAX_CIDRS 64 /* --allow / --deny entries each */

enum {
    OPT_BACKLOG = 0x3000,
    OPT_MAX_CONNS,
    OPT_MAX_PER_ADDR,
    OPT_IDLE,
    OPT_BUSY_POLL,
    OPT_ALLOW,
    OPT_DENY,
    OPT_GRACE,
    OPT_TCP,
    OPT_OUTBUF,
    OPT_ANNOUNCE,
    OPT_ANNOUNCE_PORT,
    OPT_STACK,
};

static const struct option shared_longopts[] = {
    {"help", no_argument, NULL, 'h'},
    {"bind", required_argument, NULL, 'b'},
    {"port", required_argument, NULL, 'p'},
    {"udp", no_argument, NULL, 'u'},
    {"tcp", no_argument, NULL, OPT_TCP},
    {"model", required_argument, NULL, 'm'},
    {"workers", required_argument, NULL, 'w'},
    {"backlog", required_argument, NULL, OPT_BACKLOG},
    {"max-conns", required_argument, NULL, OPT_MAX_CONNS},
    {"max-per-addr", required_argument, NULL, OPT_MAX_PER_ADDR},
    {"idle-timeout", required_argument, NULL, OPT_IDLE},
    {"busy-poll", required_argument, NULL, OPT_BUSY_POLL},
    {"allow", required_argument, NULL, OPT_ALLOW},
    {"deny", required_argument, NULL, OPT_DENY},
    {"grace", required_argument, NULL, OPT_GRACE},
    {"outbuf", required_argument, NULL, OPT_OUTBUF},
    {"announce", no_argument, NULL, OPT_ANNOUNCE},
    {"announce-port", required_argument, NULL, OPT_ANNOUNCE_PORT},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"stack", required_argument, NULL, OPT_STACK},
};

static const char shared_help[] =
    "Address:\n"
    "  -b, --bind ADDR          address to listen on (default: any); unix:/PATH\n"
    "                           for a Unix socket\n"
    "  -p, --port N             port (default 0: any free port, printed when ready)\n"
    "  -4, -6                   IPv4 only / IPv6 only\n"
    "  -u, --udp                datagram mode (services that have one)\n"
    "      --tcp                stream mode (services that have one)\n"
    "Concurrency:\n"
    "  -m, --model MODEL        event (default), thread or fork (one thread or\n"
    "                           process per connection)\n"
    "  -w, --workers N          N event loops on N threads (SO_REUSEPORT)\n"
    "Limits:\n"
    "      --backlog N          listen() backlog (default 511)\n"
    "      --max-conns N        open connections at most; more are closed at once\n"
    "      --max-per-addr N     open connections from one IP address at most\n"
    "                           (0: no cap; default 64 for exec and files, no cap\n"
    "                           for the others); more are closed at once\n"
    "      --idle-timeout SECS  close connections silent this long (default: never)\n"
    "      --outbuf BYTES       per-connection output queue limit (default 256k;\n"
    "                           k/M/G suffixes);\n"
    "                           past it the server stops reading that connection\n"
    "      --allow CIDR         only these peers (repeatable)\n"
    "      --deny CIDR          never these peers (repeatable; wins over --allow)\n"
    "      --grace SECS         on SIGINT/SIGTERM, time for connections to finish\n"
    "                           (default 5)\n"
    "Latency:\n"
    "      --busy-poll USECS    before sleeping for events, poll this long without\n"
    "                           sleeping (default 0: off; at most 10000): lower\n"
    "                           wake-up latency for a CPU kept busy\n"
    "Discovery:\n"
    "      --announce           answer `sockstack discover` probes (UDP broadcast)\n"
    "      --announce-port N    port the probes come to (default 7999)\n"
    "User-space stack (event model, one loop, IPv4; listens on the stack's ADDR):\n"
    "      --stack tun=NAME,addr=ADDR/PREFIX[,peer=ADDR][,mtu=N]\n"
    "                           serve through sockstack's own TCP/IP stack on a new\n"
    "                           TUN device NAME (needs CAP_NET_ADMIN); the kernel's\n"
    "                           side gets peer (default: first other host)\n"
    "Output:\n"
    "  -q, --quiet              errors only\n"
    "  -v, --verbose            also one line per connection\n"
    "  -h, --help               this help\n";

static void usage(FILE *out, const struct serve_service *row)
{
    if (!row) {
        fprintf(out, "Usage: sockstack serve SERVICE [OPTIONS]\n\n"
                     "Run a service until SIGINT/SIGTERM (then stop gracefully).\n\n"
                     "Services:\n");
        for (size_t i = 0; i < serve_services_count; i++)
            fprintf(out, "  %-12s %s\n", serve_services[i].name, serve_services[i].summary);
        fprintf(out, "\n%s\n%s\n%s\nRun 'sockstack serve SERVICE --help' for its own options.\n",
                shared_help, cli_tls_server_help, cli_sockopt_help);
        return;
    }
    fprintf(out, "Usage: sockstack serve %s [OPTIONS]\n\n%s.\n\n", row->name, row->summary);
    if (row->help)
        fprintf(out, "Options of %s:\n%s\n", row->name, row->help);
    fprintf(out, "%s\n%s\n%s", shared_help, cli_tls_server_help, cli_sockopt_help);
}

static const struct serve_service *find_service(const char *name)
{
    for (size_t i = 0; i < serve_services_count; i++)
        if (!strcmp(serve_services[i].name, name))
            return &serve_services[i];
    return NULL;
}

/* ---- callbacks from the library ----------------------------------------- */

static void on_ready(const ss_addr *addr, const char *proto, void *arg)
{
    char a[SS_ADDR_STRLEN];
    if (ss_addr_format(addr, a, sizeof a) < 0)
        snprintf(a, sizeof a, "?");
    fprintf(stderr, "listening on %s (%s)\n", a, proto);
    fflush(stderr);
}

/* ---- option parsing ----------------------------------------------------- */

static int parse_secs_ms(const char *opt, const char *s, unsigned *ms)
{
    double v;
    if (cli_parse_double(opt, s, 0, 86400 * 7, &v) < 0)
        return -1;
    *ms = (unsigned)(v * 1000.0 + 0.5);
    return 0;
}

static int parse_model(const char *s, int *model)
{
    if (!strcmp(s, "event"))
        *model = SS_MODEL_EVENT;
    else if (!strcmp(s, "thread"))
        *model = SS_MODEL_THREAD;
    else if (!strcmp(s, "fork"))
        *model = SS_MODEL_FORK;
    else
        return -1;
    return 0;
}

/* What the command line asked for, beyond ss_server_opts (filled in
 * serve_parse, checked and applied in serve_check, used by serve_run). */
struct serve_args {
    ss_cidr allow[MAX_CIDRS], deny[MAX_CIDRS];
    bool v4, v6, want_udp, want_tcp;
    bool model_set, workers_set, announce, use_stack;
    struct cli_stack_spec stack_spec;
    int announce_port;
    const char *bind, *port;
    struct cli_tls tls;
};

/* The getopt table: the shared options, the socket and TLS ones, and the
 * row's own. NULL when out of memory. */
static struct option *serve_longopts(const struct serve_service *row)
{
    static const struct option sockopt_longopts[] = {CLI_SOCKOPT_LONGOPTS,
                                                     CLI_TLS_SERVER_LONGOPTS};
    size_t n_shared = sizeof shared_longopts / sizeof shared_longopts[0];
    size_t n_sock = sizeof sockopt_longopts / sizeof sockopt_longopts[0];
    size_t n_row = 0;
    while (row->longopts && row->longopts[n_row].name)
        n_row++;
    struct option *longopts = calloc(n_shared + n_sock + n_row + 1, sizeof *longopts);
    if (!longopts)
        return NULL;
    memcpy(longopts, shared_longopts, sizeof shared_longopts);
    memcpy(longopts + n_shared, sockopt_longopts, sizeof sockopt_longopts);
    if (n_row)
        memcpy(longopts + n_shared + n_sock, row->longopts, n_row * sizeof *longopts);
    return longopts;
}

/* One option of the shared set into a and sc->opts: CLI_OK or an exit code. */
static int serve_option(struct serve_ctx *sc, struct serve_args *a, int c, char **argv)
{
    ss_server_opts *o = &sc->opts;
    switch (c) {
    case 'b':
        a->bind = optarg;
        return CLI_OK;
    case 'p': {
        int p;
        if (cli_parse_int("--port", optarg, 0, 65535, &p) < 0)
            return CLI_USAGE;
        a->port = optarg;
        return CLI_OK;
    }
    case '4':
        a->v4 = true;
        return CLI_OK;
    case '6':
        a->v6 = true;
        return CLI_OK;
    case 'u':
        a->want_udp = true;
        return CLI_OK;
    case OPT_TCP:
        a->want_tcp = true;
        return CLI_OK;
    case 'm':
        if (parse_model(optarg, &o->model) < 0)
            return cli_usage_error("serve ", "--model: '%s' is not event, thread or fork", optarg);
        a->model_set = true;
        return CLI_OK;
    case 'w':
        if (cli_parse_int("--workers", optarg, 1, 1024, &o->workers) < 0)
            return CLI_USAGE;
        a->workers_set = true;
        return CLI_OK;
    case OPT_BACKLOG:
        return cli_parse_int("--backlog", optarg, 1, 1 << 20, &o->backlog) < 0 ? CLI_USAGE : CLI_OK;
    case OPT_MAX_CONNS:
    case OPT_MAX_PER_ADDR: {
        uint64_t v;
        bool conns = c == OPT_MAX_CONNS;
        if (cli_parse_u64(conns ? "--max-conns" : "--max-per-addr", optarg, conns ? 1 : 0,
                          10000000, &v) < 0)
            return CLI_USAGE;
        *(conns ? &o->max_conns : &o->max_per_addr) = (size_t)v;
        return CLI_OK;
    }
    case OPT_IDLE:
        return parse_secs_ms("--idle-timeout", optarg, &o->idle_timeout_ms) < 0 ? CLI_USAGE : CLI_OK;
    case OPT_BUSY_POLL: {
        int v;
        if (cli_parse_int("--busy-poll", optarg, 0, SS_REACTOR_BUSY_POLL_MAX_US, &v) < 0)
            return CLI_USAGE;
        o->busy_poll_us = (unsigned)v;
        return CLI_OK;
    }
    case OPT_GRACE:
        return parse_secs_ms("--grace", optarg, &o->grace_ms) < 0 ? CLI_USAGE : CLI_OK;
    case OPT_OUTBUF: {
        uint64_t v;
        if (cli_parse_scaled("--outbuf", optarg, 1024, 1024, 1u << 30, &v) < 0)
            return CLI_USAGE;
        o->outbuf_max = (size_t)v;
        return CLI_OK;
    }
    case OPT_ALLOW:
    case OPT_DENY: {
        bool is_allow = c == OPT_ALLOW;
        size_t *n = is_allow ? &o->n_allow : &o->n_deny;
        ss_cidr *arr = is_allow ? a->allow : a->deny;
        const char *name = is_allow ? "--allow" : "--deny";
        if (*n >= MAX_CIDRS)
            return cli_usage_error("serve ", "%s: at most %d entries", name, MAX_CIDRS);
        if (ss_cidr_parse(optarg, &arr[*n]) < 0)
            return cli_usage_error("serve ", "%s: '%s' is not an address or CIDR prefix", name,
                                   optarg);
        (*n)++;
        *(is_allow ? &o->allow : &o->deny) = arr;
        return CLI_OK;
    }
    case OPT_ANNOUNCE:
        a->announce = true;
        return CLI_OK;
    case OPT_STACK:
        a->use_stack = true;
        return cli_stack_parse("serve ", optarg, &a->stack_spec);
    case OPT_ANNOUNCE_PORT:
        return cli_parse_int("--announce-port", optarg, 1, 65535, &a->announce_port) < 0
                   ? CLI_USAGE
                   : CLI_OK;
    case 'q':
        cli_log_level = CLI_LOG_QUIET;
        return CLI_OK;
    case 'v':
        cli_log_level = CLI_LOG_DEBUG;
        return CLI_OK;
    case '?':
        return cli_option_error("serve ", c, argv);
    default:
        if (c >= SERVE_OPT_SERVICE && c < SERVE_OPT_SERVICE + 0x1000 && sc->row->option)
            return sc->row->option(sc, c, optarg);
        if (cli_tls_parse(c, optarg, &a->tls))
            return CLI_OK;
        switch (cli_sockopt_parse(c, optarg, &o->sockopts)) {
        case 1:
            return CLI_OK;
        case -1:
            return CLI_USAGE;
        }
        return cli_usage_error("serve ", "unhandled option");
    }
}

/* The command line after the service's name: CLI_OK, CLI_HELP_SHOWN (help
 * printed) or an exit code. */
#define CLI_HELP_SHOWN (-1)
static int serve_parse(int argc, char **argv, struct serve_ctx *sc, struct serve_args *a)
{
    struct option *longopts = serve_longopts(sc->row);
    if (!longopts) {
        cli_error("out of memory");
        return CLI_RUNTIME;
    }
    int rc = CLI_OK, c;
    optind = 1;
    while (rc == CLI_OK && (c = cli_getopt(argc, argv, "hb:p:46um:w:qv", longopts)) != -1) {
        if (c == 'h') {
            usage(stdout, sc->row);
            rc = CLI_HELP_SHOWN;
        } else {
            rc = serve_option(sc, a, c, argv);
        }
    }
    if (rc == CLI_OK && optind < argc)
        rc = cli_usage_error("serve ", "unexpected argument '%s'", argv[optind]);
    free(longopts);
    return rc;
}

static bool is_unix(const char *bind) { return bind && !strncmp(bind, "unix:", 5); }

/* Options that exclude each other, one line each; then the choices go
 * into sc->opts. (A Unix socket with --workers is refused by the server
 * library itself: SO_REUSEPORT.) */
static int serve_check(struct serve_ctx *sc, struct serve_args *a)
{
    const struct serve_service *row = sc->row;
    ss_server_opts *o = &sc->opts;
    if (a->v4 && a->v6)
        return cli_usage_error("serve ", "-4 and -6 exclude each other");
    if (a->want_udp && a->want_tcp)
        return cli_usage_error("serve ", "--udp and --tcp exclude each other");
    sc->udp = a->want_udp || (!a->want_tcp && row->default_kind == SERVE_DGRAM);
    if (sc->udp && !(row->kinds & SERVE_DGRAM))
        return cli_usage_error("serve ", "%s has no datagram (--udp) mode", row->name);
    if (!sc->udp && !(row->kinds & SERVE_STREAM))
        return cli_usage_error("serve ", "%s is a datagram (UDP) service only", row->name);
    int rc = cli_tls_check(&a->tls, true, "serve ");
    if (rc != 0)
        return rc;
    if (sc->udp && a->tls.on)
        return cli_usage_error("serve ", "TLS runs over streams: --tls-cert does not apply to %s",
                               row->name);
    if (sc->udp && a->model_set && o->model != SS_MODEL_EVENT)
        return cli_usage_error("serve ", "--model thread/fork need connections; %s over UDP runs on the event model",
                               row->name);
    if (a->workers_set && o->workers > 1 && o->model != SS_MODEL_EVENT)
        return cli_usage_error("serve ", "--workers applies to --model event only");
    if (is_unix(a->bind) && (a->v4 || a->v6))
        return cli_usage_error("serve ", "-4/-6 do not apply to a unix: address");
    if (a->announce && is_unix(a->bind))
        return cli_usage_error("serve ", "--announce needs an IP address, not unix:");
    if (a->use_stack) {
        /* The stack's sockets live in one loop: no threads, no processes. */
        if (a->model_set && o->model != SS_MODEL_EVENT)
            return cli_usage_error("serve ", "--stack runs on --model event only (the user-space "
                                             "stack has no descriptors for threads or processes)");
        if (a->workers_set && o->workers > 1)
            return cli_usage_error("serve ", "--stack runs one event loop: --workers does not apply");
        if (a->v6)
            return cli_usage_error("serve ", "--stack is IPv4 only: -6 does not apply");
        if (is_unix(a->bind))
            return cli_usage_error("serve ", "--stack serves IPv4, not a unix: address");
        if (a->announce)
            return cli_usage_error("serve ", "--announce broadcasts on the kernel's network; "
                                             "it does not apply with --stack");
        if (!a->bind)
            a->bind = cli_stack_addr_str(&a->stack_spec);
        a->v4 = true;
    }
    o->bind_host = a->bind;
    o->port = a->port;
    o->family = a->v4 ? AF_INET : a->v6 ? AF_INET6 : AF_UNSPEC;
    o->type = sc->udp ? SS_DGRAM : SS_STREAM;
    /* Accepted sockets get the per-connection options again (those the
     * kernel does not pass on from the listener); not the bind-time ones. */
    o->conn_sockopts = o->sockopts;
    o->conn_sockopts.reuseaddr = -1;
    o->conn_sockopts.reuseport = -1;
    o->conn_sockopts.bind_device[0] = '\0';
    if (o->max_per_addr == SIZE_MAX)
        o->max_per_addr = !strcmp(row->name, "exec") || !strcmp(row->name, "files")
                              ? SS_SERVER_MAX_PER_ADDR : 0;
    return CLI_OK;
}

/* The server (with its announcer) until SIGINT/SIGTERM; the row's setup
 * has run. */
static int serve_loop(struct serve_ctx *sc, struct serve_args *a)
{
    const struct serve_service *row = sc->row;
    ss_server *srv;
    int err = ss_server_new(sc->svc, &sc->opts, &srv);
    if (err < 0) {
        if (!cli_server_errors)
            cli_error("serve %s: %s", row->name, ss_strerror(err));
        return CLI_RUNTIME;
    }
    /* Discovery hook: answer probes while the service runs. */
    ss_announcer *ann = NULL;
    if (a->announce) {
        ss_addr bound;
        err = ss_server_addr(srv, &bound);
        if (!err)
            err = ss_announcer_start(&ann, row->name, ss_addr_port(&bound),
                                     sc->udp ? "udp" : "tcp", a->announce_port);
        if (err < 0) {
            cli_error("serve %s: --announce on port %d: %s", row->name, a->announce_port,
                      ss_strerror(err));
            ss_server_free(srv);
            return CLI_RUNTIME;
        }
    }
    int rc = CLI_OK;
    if (row->attach && (rc = row->attach(sc, srv)) != 0) {
        ss_announcer_stop(ann);
        ss_server_free(srv);
        return rc;
    }
    err = ss_server_run(srv);
    if (row->detach)
        row->detach(sc);
    ss_announcer_stop(ann);
    ss_server_free(srv);
    if (err < 0) {
        cli_error("serve %s: %s", row->name, ss_strerror(err));
        rc = CLI_RUNTIME;
    }
    return rc;
}

/* TLS context, the row's setup, the user-space stack if asked, the loop;
 * everything taken is given back. */
static int serve_run(struct serve_ctx *sc, struct serve_args *a)
{
    const struct serve_service *row = sc->row;
    ss_tls_ctx *tls_ctx = NULL;
    struct cli_stack stack_run = {.fd = -1};
    ss_loop *stack_loop = NULL;
    int rc = cli_tls_ctx(&a->tls, true, &tls_ctx);
    if (rc != 0)
        return rc;
    sc->opts.tls = tls_ctx;
    if ((rc = row->setup(sc)) != 0) {
        ss_tls_ctx_free(tls_ctx);
        return rc;
    }
    if (a->use_stack) {
        int e = ss_loop_new(&stack_loop);
        if (e < 0) {
            cli_error("event loop: %s", ss_strerror(e));
            rc = CLI_RUNTIME;
        } else if ((rc = cli_stack_start(stack_loop, &a->stack_spec, NULL, NULL, true,
                                         &stack_run)) == 0) {
            sc->opts.loop = stack_loop;
            sc->opts.backend = stack_run.be;
        }
    }
    if (rc == CLI_OK)
        rc = serve_loop(sc, a);
    if (row->cleanup)
        row->cleanup(sc);
    cli_stack_stop(&stack_run, false);
    if (stack_loop)
        ss_loop_free(stack_loop);
    ss_tls_ctx_free(tls_ctx);
    return rc;
}

int cmd_serve(int argc, char **argv)
{
    const char *names[64];
    size_t nnames = 0;
    char list[512];
    int off = 0;
    for (size_t i = 0; i < serve_services_count && nnames < 64; i++) {
        names[nnames++] = serve_services[i].name;
        if (off >= 0 && (size_t)off < sizeof list)
            off += snprintf(list + off, sizeof list - (size_t)off, "%s%s", i ? ", " : "",
                            serve_services[i].name);
    }
    if (argc < 2)
        return cli_usage_error("serve ", "which service? (one of: %s)", list);
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout, NULL);
        return CLI_OK;
    }
    const struct serve_service *row = find_service(argv[1]);
    if (!row) {
        int best = cli_closest(argv[1], strlen(argv[1]), names, nnames);
        if (best >= 0)
            return cli_usage_error("serve ", "unknown service '%s'; did you mean %s?", argv[1],
                                   names[best]);
        return cli_usage_error("serve ", "unknown service '%s' (one of: %s)", argv[1], list);
    }

    struct serve_ctx sc = {.row = row};
    ss_server_opts_init(&sc.opts);
    sc.opts.max_per_addr = SIZE_MAX; /* not given: the service's default */
    sc.opts.log = cli_server_log;
    sc.opts.on_ready = on_ready;
    /* sc.opts points into a (the CIDR lists): both live until we return. */
    struct serve_args a = {.announce_port = SS_DISCOVER_PORT, .port = "0"};
    cli_tls_init(&a.tls);
    /* argv[0] is now the service name */
    int rc = serve_parse(argc - 1, argv + 1, &sc, &a);
    if (rc == CLI_HELP_SHOWN)
        return CLI_OK;
    if (rc == CLI_OK)
        rc = serve_check(&sc, &a);
    if (rc == CLI_OK)
        rc = serve_run(&sc, &a);
    return rc;
}
