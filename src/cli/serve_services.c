/* The services `sockstack serve` knows: one row each (see serve.h). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/serve.h"
#include "cli/serve_proto.h"
#include "cli/serve_chat.h"
#include "sockstack/area.h"
#include "sockstack/discard.h"
#include "sockstack/echo.h"
#include "sockstack/err.h"

/* ---- echo --------------------------------------------------------------- */

enum { ECHO_OPT_UPPER = SERVE_OPT_SERVICE, ECHO_OPT_SOCKPERF };

static const struct option echo_longopts[] = {
    {"upper", no_argument, NULL, ECHO_OPT_UPPER},
    {"sockperf", no_argument, NULL, ECHO_OPT_SOCKPERF},
    SERVE_KEYFILE_LONGOPT,
    {NULL, 0, NULL, 0},
};

static ss_echo_opts echo_opts;

static int echo_option(struct serve_ctx *sc, int opt, const char *arg)
{
    if (opt == ECHO_OPT_UPPER)
        echo_opts.upper = true;
    else if (opt == ECHO_OPT_SOCKPERF)
        echo_opts.sockperf = true;
    else
        return serve_auth_option(opt, arg) == CLI_USAGE ? CLI_USAGE : 0;
    return 0;
}

static int echo_setup(struct serve_ctx *sc)
{
    if (echo_opts.upper && echo_opts.sockperf)
        return cli_usage_error("serve ", "--upper and --sockperf exclude each other");
    sc->svc = ss_echo_service();
    sc->opts.svc_ctx = &echo_opts;
    /* Echo answers every read with a small write: Nagle's algorithm would
     * only hold replies back (measured on loopback: 74 us -> 7 us p50 round
     * trip). On by default for TCP; accepted sockets inherit it from the
     * listener. (Not for bulk services such as chat: with many small
     * segments a bounded send buffer holds fewer bytes.) */
    bool is_unix = sc->opts.bind_host && !strncmp(sc->opts.bind_host, "unix:", 5);
    if (!sc->udp && !is_unix && sc->opts.sockopts.nodelay < 0)
        sc->opts.sockopts.nodelay = 1;
    /* --key-file: the tutorial's one-way handshake first, then plain echo. */
    return serve_auth_wrap(sc, SS_AUTH_ONEWAY);
}

/* ---- area --------------------------------------------------------------- */

static int area_setup(struct serve_ctx *sc)
{
    sc->svc = ss_area_service();
    return 0;
}

/* ---- discard and source ------------------------------------------------ */

static int discard_setup(struct serve_ctx *sc)
{
    sc->svc = ss_discard_service();
    return 0;
}

enum { SOURCE_OPT_BYTES = SERVE_OPT_SERVICE, SOURCE_OPT_SEED, SOURCE_OPT_PATTERN };

static const struct option source_longopts[] = {
    {"bytes", required_argument, NULL, SOURCE_OPT_BYTES},
    {"seed", required_argument, NULL, SOURCE_OPT_SEED},
    {"pattern", required_argument, NULL, SOURCE_OPT_PATTERN},
    {NULL, 0, NULL, 0},
};

/* Read by each connection as it opens (ss_conn_server_ctx), so a seed
 * set at attach, once the port is known, is the one every client gets. */
static ss_source_opts source_opts = {.bytes = 1024 * 1024};
static bool source_seed_given;

static int source_option(struct serve_ctx *sc, int opt, const char *arg)
{
    if (opt == SOURCE_OPT_BYTES)
        return cli_parse_scaled("--bytes", arg, 1024, 0, 1ull << 40, &source_opts.bytes) < 0
                   ? CLI_USAGE : 0;
    if (opt == SOURCE_OPT_PATTERN)
        return cli_parse_source_pattern("--pattern", arg, &source_opts.zeros) < 0 ? CLI_USAGE : 0;
    if (cli_parse_u64("--seed", arg, 0, UINT64_MAX, &source_opts.seed) < 0)
        return CLI_USAGE;
    source_seed_given = true;
    return 0;
}

static int source_setup(struct serve_ctx *sc)
{
    sc->svc = ss_source_service();
    sc->opts.svc_ctx = &source_opts;
    return 0;
}

/* Without --seed the pattern is seeded with the port, as stack up's source
 * is: the port bound (the real one with --port 0; 0 for a Unix socket). */
static int source_attach(struct serve_ctx *sc, ss_server *srv)
{
    ss_addr bound;
    if (source_seed_given)
        return 0;
    int err = ss_server_addr(srv, &bound);
    if (err < 0) {
        cli_error("serve source: %s", ss_strerror(err));
        return CLI_RUNTIME;
    }
    int port = ss_addr_port(&bound);
    source_opts.seed = port > 0 ? (uint64_t)port : 0;
    return 0;
}

/* ---- the table ---------------------------------------------------------- */

const struct serve_service serve_services[] = {
    {
        .name = "echo",
        .summary = "bytes back as they arrive (TCP, Unix, UDP)",
        .kinds = SERVE_STREAM | SERVE_DGRAM,
        .default_kind = SERVE_STREAM,
        .longopts = echo_longopts,
        .help = "      --upper              upper-case ASCII letters a-z in the reply\n"
                "      --sockperf           speak sockperf's message format (for\n"
                "                           sockperf ping-pong / throughput clients)\n"
                SERVE_KEYFILE_HELP,
        .option = echo_option,
        .setup = echo_setup,
        .cleanup = serve_auth_cleanup,
    },
    {
        .name = "discard",
        .summary = "every byte or datagram read and dropped (TCP, Unix, UDP)",
        .kinds = SERVE_STREAM | SERVE_DGRAM,
        .default_kind = SERVE_STREAM,
        .setup = discard_setup,
    },
    {
        .name = "source",
        .summary = "a fixed pattern, then the server closes (TCP, Unix)",
        .kinds = SERVE_STREAM,
        .default_kind = SERVE_STREAM,
        .longopts = source_longopts,
        .help = "      --bytes N            what each connection gets (k/M/G suffixes;\n"
                "                           default 1M; 0 closes at once)\n"
                "      --seed N             pattern seed (default: the port listened on)\n"
                "      --pattern prng|zero  prng: the seeded pattern of docs/protocols.md\n"
                "                           (default); zero: zero bytes, with no generator\n"
                "                           to run (a benchmark's sender)\n",
        .option = source_option,
        .setup = source_setup,
        .attach = source_attach,
    },
    {
        .name = "area",
        .summary = "UDP: radius in, pi*r^2 out (decimal text)",
        .kinds = SERVE_DGRAM,
        .default_kind = SERVE_DGRAM,
        .setup = area_setup,
    },
    SERVE_ROW_EXEC,
    SERVE_ROW_FILES,
    {
        .name = "chat",
        .summary = "chat room: nicknames, private and offline messages, history, files",
        .kinds = SERVE_STREAM,
        .default_kind = SERVE_STREAM,
        .longopts = serve_chat_longopts,
        .help = serve_chat_help,
        .option = serve_chat_option,
        .setup = serve_chat_setup,
        .cleanup = serve_chat_cleanup,
        .attach = serve_chat_attach,
        .detach = serve_chat_detach,
    },
    {
        .name = "udp-chat",
        .summary = "UDP chat relay: each message to every peer heard from lately",
        .kinds = SERVE_DGRAM,
        .default_kind = SERVE_DGRAM,
        .setup = serve_udpchat_setup,
        .cleanup = serve_udpchat_cleanup,
    },
};

const size_t serve_services_count = sizeof serve_services / sizeof serve_services[0];
