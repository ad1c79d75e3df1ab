/* sockstack udp-chat HOST PORT --name NICK: chat over UDP through
 * `sockstack serve udp-chat`. Each stdin line is one datagram carrying our
 * nick and a sequence number; received messages are printed one per line,
 * with a note whenever messages from someone were lost, arrived out of
 * order or twice. Oversized messages are refused before sending; truncated
 * datagrams are detected on receipt. At the end (stdin EOF plus --linger,
 * or SIGINT/SIGTERM) it prints its counters.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/sockopt_cli.h"
#include "sockstack/chat.h"
#include "sockstack/config.h"
#include "sockstack/err.h"
#include "sockstack/reactor.h"
#include "sockstack/sock.h"
#include "sockstack/udpchat.h"

/* Hello every minute keeps us on the relay's list (TTL 5 minutes). */
enum { HELLO_MS = 60000 };

struct uc {
    ss_loop *loop;
    ss_sock *s;
    ss_addr server;
    const char *nick;
    uint32_t seq;
    ss_udpchat_rx *rx;
    ss_timer hello, linger;
    unsigned linger_ms;
    char line[SS_UDPCHAT_MAX_DGRAM * 4];
    size_t line_len;
    size_t max;
};

static void stamp(void)
{
    char ts[16];
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%H:%M:%S", &tm);
    printf("[%s] ", ts);
}

static void send_text(struct uc *u, uint32_t seq, const char *text)
{
    char buf[SS_UDPCHAT_MAX_DGRAM * 4 + 64];
    int n = ss_udpchat_encode(buf, sizeof buf, u->max, seq, u->nick, text);
    if (n == -EMSGSIZE) {
        printf("!! message too long: %zu bytes with its header, at most %zu per "
               "datagram; not sent\n",
               strlen(text) + strlen(u->nick) + 16, u->max);
        fflush(stdout);
        u->seq--; /* the number was not used */
        return;
    }
    if (n < 0) {
        printf("!! not sent: %s\n", n == -EINVAL ? "text is not valid UTF-8" : ss_strerror(n));
        fflush(stdout);
        u->seq--;
        return;
    }
    ssize_t r = ss_sock_sendto(u->s, buf, (size_t)n, &u->server);
    if (r < 0) {
        printf("!! send: %s\n", ss_strerror((int)r));
        fflush(stdout);
    }
}

static void hello_cb(ss_loop *loop, ss_timer *t, void *arg)
{
    struct uc *u = arg;
    /* Padded: the relay answers a hello only if it is no shorter than the
     * answer (no amplification). */
    send_text(u, 0, "pad=0000000000000000");
    ss_timer_start(loop, &u->hello, HELLO_MS);
}

static void stop_cb(ss_loop *loop, ss_timer *t, void *arg) { ss_loop_stop(loop); }

static void on_sig(ss_loop *loop, int signo, void *arg) { ss_loop_stop(loop); }

static void sock_cb(ss_sock *s, unsigned ev, void *arg)
{
    struct uc *u = arg;
    char buf[SS_UDPCHAT_MAX_DGRAM];
    ss_addr from;
    bool trunc = false;
    ssize_t n = ss_sock_recvfrom(s, buf, sizeof buf, &from, &trunc);
    if (n < 0)
        return;
    ss_udpchat_stats *st = ss_udpchat_rx_stats(u->rx);
    char who[SS_ADDR_STRLEN];
    if (trunc) {
        st->truncated++;
        ss_addr_format(&from, who, sizeof who);
        printf("!! truncated datagram from %s dropped (longer than %zu bytes)\n", who,
               sizeof buf);
        fflush(stdout);
        return;
    }
    uint32_t seq, missing;
    char nick[SS_CHAT_NICK_MAX + 1];
    const char *text;
    size_t tlen;
    if (n == 5 + 16 && !memcmp(buf, "UC1C ", 5)) {
        /* The relay's return-path check: send its cookie back. */
        char c[32] = "cookie=";
        memcpy(c + 7, buf + 5, 16);
        c[23] = '\0';
        send_text(u, 0, c);
        return;
    }
    if (ss_udpchat_decode(buf, (size_t)n, &seq, nick, sizeof nick, &text, &tlen) < 0) {
        st->malformed++;
        ss_addr_format(&from, who, sizeof who);
        printf("!! malformed datagram from %s dropped\n", who);
        fflush(stdout);
        return;
    }
    if (seq == 0)
        return; /* a hello: nothing to show */
    switch (ss_udpchat_rx_seen(u->rx, nick, seq, &missing)) {
    case SS_UDPCHAT_GAP:
        printf("-- lost %u message%s from %s before #%u\n", missing, missing == 1 ? "" : "s",
               nick, seq);
        break;
    case SS_UDPCHAT_LATE:
        printf("-- out of order: #%u from %s arrived late\n", seq, nick);
        break;
    case SS_UDPCHAT_DUP:
        printf("-- duplicate #%u from %s ignored\n", seq, nick);
        fflush(stdout);
        return;
    }
    /* Show text with control bytes neutralised. */
    char clean[SS_UDPCHAT_MAX_DGRAM + 1];
    for (size_t i = 0; i < tlen; i++)
        clean[i] = (unsigned char)text[i] < 0x20 || text[i] == 0x7f ? '?' : text[i];
    clean[tlen] = '\0';
    stamp();
    printf("<%s> #%u %s\n", nick, seq, clean);
    fflush(stdout);
}

static void stdin_cb(ss_loop *loop, int fd, unsigned ev, void *arg)
{
    struct uc *u = arg;
    ssize_t n = read(fd, u->line + u->line_len, sizeof u->line - 1 - u->line_len);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        ss_loop_io_del(loop, fd);
        ss_timer_start(loop, &u->linger, u->linger_ms);
        return;
    }
    u->line_len += (size_t)n;
    char *start = u->line, *nl;
    while ((nl = memchr(start, '\n', u->line_len - (size_t)(start - u->line)))) {
        *nl = '\0';
        if (nl > start && nl[-1] == '\r')
            nl[-1] = '\0';
        if (*start)
            send_text(u, ++u->seq, start);
        start = nl + 1;
    }
    size_t left = u->line_len - (size_t)(start - u->line);
    if (left == sizeof u->line - 1) {
        u->line[left] = '\0';
        send_text(u, ++u->seq, u->line); /* refused as too long */
        left = 0;
    }
    memmove(u->line, start, left);
    u->line_len = left;
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: sockstack udp-chat HOST PORT --name NICK [OPTIONS]\n"
            "\n"
            "Chat over UDP through `sockstack serve udp-chat`: stdin lines are sent\n"
            "as datagrams (nick + sequence number); received messages are printed\n"
            "with notes on loss, reordering and duplicates; counters at the end.\n"
            "\n"
            "Options:\n"
            "  -n, --name NICK       nickname (required)\n"
            "      --max BYTES       largest datagram sent (default %d, at most %d)\n"
            "      --linger SECS     keep listening after stdin ends (default 1; here\n"
            "                        not SO_LINGER, which UDP does not have)\n"
            "  -h, --help            this help\n"
            "\n%s"
            "(the TCP ones, --nodelay, --keepalive and --mss, are refused: this is UDP)\n",
            SS_UDPCHAT_MAX_DGRAM, SS_UDPCHAT_MAX_DGRAM, cli_sockopt_help);
}

int cmd_udpchat(int argc, char **argv)
{
    enum { OPT_MAX = 0x100, OPT_LINGER };
    static const struct option longopts[] = {
        {"name", required_argument, NULL, 'n'},
        {"max", required_argument, NULL, OPT_MAX},
        {"linger", required_argument, NULL, OPT_LINGER},
        {"help", no_argument, NULL, 'h'},
        /* after --linger above: getopt_long takes the first exact match */
        CLI_SOCKOPT_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    ss_sockopts so;
    ss_sockopts_init(&so);
    struct uc u = {.max = SS_UDPCHAT_MAX_DGRAM, .linger_ms = 1000};
    int c;
    double d;
    uint64_t v;
    optind = 1;
    while ((c = cli_getopt(argc, argv, "n:h", longopts)) != -1) {
        switch (c) {
        case 'n': u.nick = optarg; break;
        case OPT_MAX:
            if (cli_parse_u64("--max", optarg, 32, SS_UDPCHAT_MAX_DGRAM, &v) < 0)
                return CLI_USAGE;
            u.max = (size_t)v;
            break;
        case OPT_LINGER:
            if (cli_parse_double("--linger", optarg, 0, 3600, &d) < 0)
                return CLI_USAGE;
            u.linger_ms = (unsigned)(d * 1000);
            break;
        case 'h': usage(stdout); return CLI_OK;
        default:
            switch (cli_sockopt_parse(c, optarg, &so)) {
            case 1: continue;
            case -1: return CLI_USAGE;
            }
            return cli_option_error("udp-chat ", c, argv);
        }
    }
    if (argc - optind != 2)
        return cli_usage_error("udp-chat ", "expected HOST PORT");
    if (!u.nick)
        return cli_usage_error("udp-chat ", "--name NICK is required");
    if (!ss_chat_nick_valid(u.nick))
        return cli_usage_error("udp-chat ", "--name: '%s' is not a valid nickname", u.nick);
    int port;
    if (cli_parse_int("PORT", argv[optind + 1], 1, 65535, &port) < 0)
        return CLI_USAGE;
    int n = ss_addr_resolve(argv[optind], argv[optind + 1], AF_UNSPEC, SS_DGRAM, false,
                            &u.server, 1);
    if (n < 0) {
        cli_error("%s: %s", argv[optind], ss_strerror(n));
        return CLI_RUNTIME;
    }
    int err = ss_sock_open(ss_backend_kernel(), ss_addr_family(&u.server), SS_DGRAM, &u.s);
    const char *failed = NULL;
    if (!err && (err = ss_sock_set_opts(u.s, &so, &failed)) < 0) {
        cli_sockopt_report("udp-chat", err, failed);
        ss_sock_close(u.s);
        return CLI_RUNTIME;
    }
    if (!err)
        err = ss_loop_new(&u.loop);
    if (!err)
        err = ss_udpchat_rx_new(&u.rx);
    if (err) {
        cli_error("udp-chat: %s", ss_strerror(err));
        ss_sock_close(u.s);
        return CLI_RUNTIME;
    }
    ss_timer_init(&u.hello, hello_cb, &u);
    ss_timer_init(&u.linger, stop_cb, &u);
    ss_loop_signal_add(u.loop, SIGINT, on_sig, &u);
    ss_loop_signal_add(u.loop, SIGTERM, on_sig, &u);
    ss_sock_watch(u.s, u.loop, SS_READ, sock_cb, &u);
    ss_loop_io_add(u.loop, 0, SS_READ, stdin_cb, &u);
    hello_cb(u.loop, &u.hello, &u);
    ss_loop_run(u.loop);

    ss_udpchat_stats *st = ss_udpchat_rx_stats(u.rx);
    printf("-- udp-chat: sent %u, received %llu, lost %llu, out of order %llu, "
           "duplicates %llu, truncated %llu\n",
           u.seq, (unsigned long long)st->received, (unsigned long long)st->lost,
           (unsigned long long)st->reordered, (unsigned long long)st->duplicates,
           (unsigned long long)st->truncated);
    ss_timer_stop(u.loop, &u.hello);
    ss_timer_stop(u.loop, &u.linger);
    ss_sock_close(u.s);
    ss_loop_free(u.loop);
    ss_udpchat_rx_free(u.rx);
    return CLI_OK;
}
