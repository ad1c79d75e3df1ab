/* `sockstack serve chat`: the chat room on the server framework. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli/cli.h"
#include "cli/serve_chat.h"
#include "sockstack/chat.h"
#include "sockstack/config.h"
#include "sockstack/err.h"
#include "sockstack/udpchat.h"

enum {
    CHAT_OPT_DB = SERVE_OPT_SERVICE + 0x100,
    CHAT_OPT_ROOM,
    CHAT_OPT_MAX_LINE,
    CHAT_OPT_OUTQ,
    CHAT_OPT_HISTORY,
    CHAT_OPT_QUOTA,
    CHAT_OPT_FILE_MAX,
    CHAT_OPT_PBKDF2,
    CHAT_OPT_PRESENCE,
    CHAT_OPT_OUTQ_HIGH,
    CHAT_OPT_STALL,
    CHAT_OPT_NICK_TIMEOUT,
    CHAT_OPT_PER_ADDR,
    CHAT_OPT_RATE,
    CHAT_OPT_BURST,
    CHAT_OPT_OFFLINE_MAX,
    CHAT_OPT_OFFERS_MAX,
    CHAT_OPT_IRC_PORT,
    CHAT_OPT_CLUSTER,
    CHAT_OPT_LEASE,
    CHAT_OPT_ROOM_FILE,
    CHAT_OPT_HISTORY_KEEP,
    CHAT_OPT_NO_P2P_UDP,
};

const struct option serve_chat_longopts[] = {
    {"db", required_argument, NULL, CHAT_OPT_DB},
    {"room", required_argument, NULL, CHAT_OPT_ROOM},
    {"max-line", required_argument, NULL, CHAT_OPT_MAX_LINE},
    {"outq", required_argument, NULL, CHAT_OPT_OUTQ},
    {"join-history", required_argument, NULL, CHAT_OPT_HISTORY},
    {"file-quota", required_argument, NULL, CHAT_OPT_QUOTA},
    {"file-max", required_argument, NULL, CHAT_OPT_FILE_MAX},
    {"pbkdf2-iter", required_argument, NULL, CHAT_OPT_PBKDF2},
    {"presence-max", required_argument, NULL, CHAT_OPT_PRESENCE},
    {"outq-high", required_argument, NULL, CHAT_OPT_OUTQ_HIGH},
    {"stall-timeout", required_argument, NULL, CHAT_OPT_STALL},
    {"nick-timeout", required_argument, NULL, CHAT_OPT_NICK_TIMEOUT},
    {"per-addr", required_argument, NULL, CHAT_OPT_PER_ADDR},
    {"rate", required_argument, NULL, CHAT_OPT_RATE},
    {"burst", required_argument, NULL, CHAT_OPT_BURST},
    {"offline-max", required_argument, NULL, CHAT_OPT_OFFLINE_MAX},
    {"offers-max", required_argument, NULL, CHAT_OPT_OFFERS_MAX},
    {"irc-port", required_argument, NULL, CHAT_OPT_IRC_PORT},
    {"cluster", required_argument, NULL, CHAT_OPT_CLUSTER},
    {"lease", required_argument, NULL, CHAT_OPT_LEASE},
    {"room-file", required_argument, NULL, CHAT_OPT_ROOM_FILE},
    {"history-keep", required_argument, NULL, CHAT_OPT_HISTORY_KEEP},
    {"no-p2p-udp", no_argument, NULL, CHAT_OPT_NO_P2P_UDP},
    {NULL, 0, NULL, 0},
};

const char serve_chat_help[] =
    "      --db FILE            SQLite store (WAL): history, offline messages,\n"
    "                           users, files (default: in memory, lost on exit)\n"
    "      --history-keep N     public messages a --db store keeps, the newest\n"
    "                           (default 100000; 0: all); in memory: 1000\n"
    "      --room NAME          room name shown to clients (default lobby)\n"
    "      --max-line BYTES     longest accepted line (default 4096)\n"
    "      --outq BYTES         hard cap of one client's queue: past it the\n"
    "                           client is told and disconnected (default 256k)\n"
    "      --outq-high BYTES    a client this far behind makes talkers wait\n"
    "                           (default 64k; clipped to half of --outq)\n"
    "      --stall-timeout MS   a client behind that reads nothing this long is\n"
    "                           told and cut off (default 20000)\n"
    "      --nick-timeout MS    close connections without /nick (default 30000)\n"
    "      --per-addr N         connections per peer address (default 64; 0: no cap)\n"
    "      --rate N             lines per second a client may send (default 200;\n"
    "                           0: no limit); --burst N above it (default 400)\n"
    "      --offline-max N      offline messages kept per recipient (1000)\n"
    "      --offers-max N       pending file offers per recipient and per\n"
    "                           sender (default 32)\n"
    "      --join-history N     public messages shown on join (default 20)\n"
    "      --file-quota BYTES   pending file offers kept per recipient (128M)\n"
    "      --file-max BYTES     largest file offer (default 64M)\n"
    "      --room-file FILE     the server's own file: offered to every user at\n"
    "                           join (OFFER ID * ...), taken with /accept ID, at\n"
    "                           most --file-max bytes; read once at start\n"
    "      --pbkdf2-iter N      PBKDF2 iterations for new passwords (100000)\n"
    "      --presence-max N     above N users online, joins and leaves are not\n"
    "                           announced to everyone (default 1000; 0: always)\n"
    "      --irc-port PORT      also serve the room to IRC clients on PORT (same\n"
    "                           address; 0: any free port), as channel #ROOM\n"
    "      --cluster redis://HOST:PORT[,HOST:PORT...]\n"
    "                           one node of a chat service on Redis (several\n"
    "                           addresses: Redis Cluster): users, accounts,\n"
    "                           history and offline messages in Redis, messages\n"
    "                           and presence across nodes by pub/sub; run Redis\n"
    "                           with appendonly yes. Files stay on the node.\n"
    "      --no-p2p-udp         no UDP rendezvous for point-to-point sessions\n"
    "                           (default: on UDP at the chat port's number,\n"
    "                           for UDP hole punching)\n"
    "      --lease MS           how long a nick outlives its node (default\n"
    "                           10000): a dead node's users go offline after it\n";

struct chat_row {
    ss_chat_opts o;
    ss_chat_server_opts so;
    ss_chat_server *cs;
    const char *irc_port;   /* --irc-port, or NULL */
    ss_loop *loop;          /* ours, when IRC needs one loop for both */
    ss_server_opts irc_o;
    ss_server *irc;         /* the IRC listener, beside the native one */
    bool no_udp;            /* --no-p2p-udp */
    char udp_port[8];
    ss_server_opts udp_o;
    ss_server *udp;         /* the point-to-point UDP rendezvous */
};

static struct chat_row *row_state(struct serve_ctx *sc)
{
    if (!sc->state) {
        struct chat_row *r = calloc(1, sizeof *r);
        if (!r)
            return NULL;
        ss_chat_opts_init(&r->o);
        ss_chat_server_opts_init(&r->so);
        sc->state = r;
    }
    return sc->state;
}

int serve_chat_option(struct serve_ctx *sc, int opt, const char *arg)
{
    struct chat_row *r = row_state(sc);
    uint64_t v;
    int i;
    if (!r) {
        cli_error("out of memory");
        return CLI_RUNTIME;
    }
    switch (opt) {
    case CHAT_OPT_DB: r->o.db_path = arg; return 0;
    case CHAT_OPT_ROOM_FILE: r->o.room_file = arg; return 0;
    case CHAT_OPT_ROOM:
        if (!*arg || strchr(arg, ' ') || strlen(arg) > 32)
            return cli_usage_error("serve ", "--room: 1 to 32 characters, no spaces");
        r->o.room = arg;
        return 0;
    case CHAT_OPT_MAX_LINE:
        if (cli_parse_u64("--max-line", arg, 64, 1 << 20, &v) < 0)
            return CLI_USAGE;
        r->o.max_line = (size_t)v;
        return 0;
    case CHAT_OPT_OUTQ:
        if (cli_parse_u64("--outq", arg, 16 * 1024, 1u << 30, &v) < 0)
            return CLI_USAGE;
        r->so.outq_max = (size_t)v;
        return 0;
    case CHAT_OPT_OUTQ_HIGH:
        if (cli_parse_u64("--outq-high", arg, 4096, 1u << 29, &v) < 0)
            return CLI_USAGE;
        r->so.outq_high = (size_t)v;
        return 0;
    case CHAT_OPT_STALL:
        if (cli_parse_int("--stall-timeout", arg, 100, 3600000, &i) < 0)
            return CLI_USAGE;
        r->so.stall_ms = (unsigned)i;
        return 0;
    case CHAT_OPT_NICK_TIMEOUT:
        if (cli_parse_int("--nick-timeout", arg, 0, 3600000, &i) < 0)
            return CLI_USAGE;
        r->so.nick_timeout_ms = (unsigned)i;
        return 0;
    case CHAT_OPT_PER_ADDR:
        if (cli_parse_int("--per-addr", arg, 0, 10000000, &i) < 0)
            return CLI_USAGE;
        r->so.per_addr_max = i;
        return 0;
    case CHAT_OPT_RATE:
        if (cli_parse_int("--rate", arg, 0, 10000000, &i) < 0)
            return CLI_USAGE;
        r->so.rate_lines = (unsigned)i;
        return 0;
    case CHAT_OPT_BURST:
        if (cli_parse_int("--burst", arg, 1, 10000000, &i) < 0)
            return CLI_USAGE;
        r->so.rate_burst = (unsigned)i;
        return 0;
    case CHAT_OPT_OFFLINE_MAX:
        if (cli_parse_int("--offline-max", arg, 0, 10000000, &i) < 0)
            return CLI_USAGE;
        r->o.offline_max = i;
        return 0;
    case CHAT_OPT_OFFERS_MAX:
        if (cli_parse_int("--offers-max", arg, 0, 100000, &i) < 0)
            return CLI_USAGE;
        r->o.offers_max = i;
        return 0;
    case CHAT_OPT_HISTORY_KEEP:
        if (cli_parse_int("--history-keep", arg, 0, 1000000000, &i) < 0)
            return CLI_USAGE;
        r->o.history_keep = i;
        return 0;
    case CHAT_OPT_HISTORY:
        if (cli_parse_int("--join-history", arg, 0, SS_CHAT_HISTORY_MAX, &i) < 0)
            return CLI_USAGE;
        r->o.join_history = i;
        return 0;
    case CHAT_OPT_QUOTA:
        if (cli_parse_u64("--file-quota", arg, 0, 1ull << 40, &r->o.file_quota) < 0)
            return CLI_USAGE;
        return 0;
    case CHAT_OPT_FILE_MAX:
        if (cli_parse_u64("--file-max", arg, 0, 1ull << 31, &r->o.file_max) < 0)
            return CLI_USAGE;
        return 0;
    case CHAT_OPT_PRESENCE:
        if (cli_parse_int("--presence-max", arg, 0, 10000000, &i) < 0)
            return CLI_USAGE;
        r->o.presence_max = i;
        return 0;
    case CHAT_OPT_IRC_PORT:
        if (cli_parse_int("--irc-port", arg, 0, 65535, &i) < 0)
            return CLI_USAGE;
        r->irc_port = arg;
        return 0;
    case CHAT_OPT_NO_P2P_UDP: r->no_udp = true; return 0;
    case CHAT_OPT_CLUSTER:
        if (strncmp(arg, "redis://", 8) || !arg[8])
            return cli_usage_error("serve ", "--cluster: redis://HOST:PORT[,HOST:PORT...]");
        r->so.cluster = arg;
        return 0;
    case CHAT_OPT_LEASE:
        if (cli_parse_int("--lease", arg, 300, 3600000, &i) < 0)
            return CLI_USAGE;
        r->so.lease_ms = (unsigned)i;
        return 0;
    case CHAT_OPT_PBKDF2:
        if (cli_parse_int("--pbkdf2-iter", arg, 1000, 10000000, &i) < 0)
            return CLI_USAGE;
        r->o.pbkdf2_iter = i;
        return 0;
    }
    return cli_usage_error("serve ", "unhandled chat option");
}

long serve_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (long)rl.rlim_cur;
}

int serve_chat_setup(struct serve_ctx *sc)
{
    struct chat_row *r = row_state(sc);
    if (!r) {
        cli_error("out of memory");
        return CLI_RUNTIME;
    }
    /* One room, one thread: the room and its store are not shared. */
    /* cmd_serve runs cleanup only after a successful setup. */
    if (sc->opts.model != SS_MODEL_EVENT || sc->opts.workers > 1) {
        serve_chat_cleanup(sc);
        return cli_usage_error("serve ", "chat is one room on one event loop: "
                               "--model thread/fork and --workers do not apply");
    }
    long nofile = serve_raise_nofile();
    if (nofile >= 0 && nofile < 10240)
        cli_log("chat: open-file limit is %ld; at most about that many clients", nofile);
    /* The IRC listener serves the same room: it must run on the same
     * loop (so does the UDP rendezvous), so the native server gets one it
     * does not own (--stack puts
     * its own loop there instead, later; both servers use that one). */
    if ((r->irc_port || r->so.cluster || !r->no_udp) && !sc->opts.loop) {
        int e = ss_loop_new(&r->loop);
        if (e < 0) {
            cli_error("event loop: %s", ss_strerror(e));
            serve_chat_cleanup(sc);
            return CLI_RUNTIME;
        }
        sc->opts.loop = r->loop;
    }
    if (r->so.cluster && r->o.db_path)
        cli_log("chat: --cluster: the store is Redis; %s keeps only file offers",
                r->o.db_path);
    r->so.loop = sc->opts.loop;
    int err = ss_chat_server_new(&r->o, &r->so, &r->cs);
    if (err && r->o.room_file && (err == -EFBIG || err == -EINVAL || err == -ENOENT ||
                                  err == -EACCES || err == -EISDIR)) {
        if (err == -EFBIG)
            cli_error("serve chat: --room-file %s: larger than --file-max (%llu bytes)",
                      r->o.room_file, (unsigned long long)r->o.file_max);
        else
            cli_error("serve chat: --room-file %s: %s", r->o.room_file,
                      err == -EINVAL ? "not a regular file" : ss_strerror(err));
        serve_chat_cleanup(sc);
        return CLI_RUNTIME;
    }
    if (err) {
        cli_error("serve chat: %s: %s",
                  r->so.cluster ? r->so.cluster : r->o.db_path ? r->o.db_path : "store",
                  ss_strerror(err));
        serve_chat_cleanup(sc);
        return CLI_RUNTIME;
    }
    sc->svc = ss_chat_service();
    sc->opts.svc_ctx = r->cs;
    /* The framework's queue only stages lines ahead of the socket
     * (SS_CHAT_STAGE); ours does the flow control. */
    sc->opts.outbuf_max = r->so.outq_max;
    /* Chat lines are small and latency is what people feel: no Nagle
     * (with delayed ACKs it would hold lines back up to 40 ms). */
    if (sc->opts.conn_sockopts.nodelay < 0)
        sc->opts.conn_sockopts.nodelay = 1;
    /* Bound the kernel's share too: with send-buffer autotuning a stuck
     * reader could park megabytes in its socket before our queue grows. */
    if (sc->opts.conn_sockopts.sndbuf < 0)
        sc->opts.conn_sockopts.sndbuf = (int)(r->so.outq_max < SS_CHAT_SNDBUF ? r->so.outq_max
                                                                             : SS_CHAT_SNDBUF);
    if (sc->opts.max_conns == 0 || sc->opts.max_conns > (size_t)nofile)
        sc->opts.max_conns = nofile > 64 ? (size_t)nofile - 32 : 32;
    return 0;
}

/* "chat: WHAT on ADDR (PROTO)" once a second server of the room serves
 * (arg: WHAT). */
static void second_ready(const ss_addr *addr, const char *proto, void *arg)
{
    char a[SS_ADDR_STRLEN];
    if (ss_addr_format(addr, a, sizeof a) < 0)
        snprintf(a, sizeof a, "?");
    fprintf(stderr, "chat: %s on %s (%s)\n", (const char *)arg, a, proto);
    fflush(stderr);
}

/* A second server of the room (IRC, the UDP rendezvous) on the native
 * one's loop, serving svc with o; *out NULL unless it serves. */
static int second_attach(const struct ss_service *svc, ss_server_opts *o, const char *what,
                         ss_server **out)
{
    o->handle_signals = false; /* the native server's watchers stop them all */
    o->on_ready = second_ready;
    o->cb_arg = (void *)what;
    int err = ss_server_new(svc, o, out);
    if (!err && (err = ss_server_attach(*out)) < 0)
        ss_server_free(*out);
    if (err)
        *out = NULL;
    return err;
}

static void second_detach(ss_server **srv)
{
    if (!*srv)
        return;
    ss_server_detach(*srv);
    ss_server_free(*srv);
    *srv = NULL;
}

/* The UDP rendezvous at the chat port's number, on the same loop; a port
 * taken by someone else only costs the UDP step (said, not fatal). */
static void udp_attach(struct chat_row *r, struct serve_ctx *sc, ss_server *srv)
{
    ss_addr bound;
    if (ss_server_addr(srv, &bound) < 0 || ss_addr_family(&bound) == AF_UNIX)
        return;
    snprintf(r->udp_port, sizeof r->udp_port, "%d", ss_addr_port(&bound));
    r->udp_o = sc->opts;
    r->udp_o.type = SS_DGRAM;
    r->udp_o.port = r->udp_port;
    r->udp_o.tls = NULL;
    r->udp_o.dgram_max = SS_CHAT_P2P_UDP_HELLO;
    int err = second_attach(ss_chat_p2p_udp_service(), &r->udp_o,
                            "point-to-point UDP rendezvous", &r->udp);
    if (err)
        cli_log("chat: no point-to-point UDP rendezvous (udp port %s: %s); peers skip "
                "UDP hole punching", r->udp_port, ss_strerror(err));
}

int serve_chat_attach(struct serve_ctx *sc, ss_server *srv)
{
    struct chat_row *r = sc->state;
    if (r && r->so.cluster && sc->opts.loop != r->so.loop) {
        /* The Redis connection runs on the loop made in setup. */
        cli_error("serve chat: --cluster does not work with --stack");
        return CLI_USAGE;
    }
    if (r && !r->no_udp)
        udp_attach(r, sc, srv);
    if (!r || !r->irc_port)
        return 0;
    r->irc_o = sc->opts;
    r->irc_o.port = r->irc_port;
    int err = second_attach(ss_chat_irc_service(), &r->irc_o, "IRC", &r->irc);
    if (err) {
        cli_error("serve chat: --irc-port %s: %s", r->irc_port, ss_strerror(err));
        return CLI_RUNTIME;
    }
    return 0;
}

void serve_chat_detach(struct serve_ctx *sc)
{
    struct chat_row *r = sc->state;
    if (!r)
        return;
    second_detach(&r->udp);
    second_detach(&r->irc);
}

void serve_chat_cleanup(struct serve_ctx *sc)
{
    struct chat_row *r = sc->state;
    if (!r)
        return;
    if (r->cs) {
        ss_chat_server_stats st;
        ss_chat_server_stats_get(r->cs, &st);
        cli_log("chat: %llu relays, %llu bytes relayed; cut off: %llu stalled, %llu "
                "overflowed, %llu without a nick; %llu refused per address; talkers "
                "waited %llu times for readers, %llu for their rate; peak %llu shared lines "
                "of %llu bytes; peak queue of one client %llu bytes (--outq %zu); %llu store batches failed "
                "to commit; room log %llu bytes appended, at most %llu held for its slowest reader; "
                "UDP rendezvous: %llu hellos answered, %llu datagrams ignored",
                (unsigned long long)st.relays, (unsigned long long)st.relayed_bytes,
                (unsigned long long)st.stalled, (unsigned long long)st.overflows,
                (unsigned long long)st.nick_timeouts, (unsigned long long)st.addr_refused,
                (unsigned long long)st.waits, (unsigned long long)st.rate_waits,
                (unsigned long long)st.lines_peak, (unsigned long long)st.line_bytes_peak,
                (unsigned long long)st.queue_peak, r->so.outq_max,
                (unsigned long long)st.commit_errors, (unsigned long long)st.log_end,
                (unsigned long long)st.log_peak, (unsigned long long)st.p2p_udp_answered,
                (unsigned long long)st.p2p_udp_ignored);
    }
    serve_chat_detach(sc);
    ss_chat_server_free(r->cs);
    if (r->loop)
        ss_loop_free(r->loop);
    free(r);
    sc->state = NULL;
}

/* ---- udp-chat ----------------------------------------------------------- */

int serve_udpchat_setup(struct serve_ctx *sc)
{
    ss_udpchat_relay *r;
    if (ss_udpchat_relay_new(&r, SS_UDPCHAT_PEER_TTL * 1000u, SS_UDPCHAT_MAX_PEERS) < 0) {
        cli_error("out of memory");
        return CLI_RUNTIME;
    }
    sc->state = r;
    sc->svc = ss_udpchat_service();
    sc->opts.svc_ctx = r;
    /* Longer datagrams arrive flagged truncated and are dropped. */
    sc->opts.dgram_max = SS_UDPCHAT_MAX_DGRAM;
    return 0;
}

void serve_udpchat_cleanup(struct serve_ctx *sc)
{
    ss_udpchat_relay_free(sc->state);
    sc->state = NULL;
}
