/* sockstack ping HOST / sockstack traceroute HOST: parse, run the library's
 * prober (raw.h), print in the format of iputils' ping and of traceroute.
 * ping's exit status is iputils': 0 when a reply came, 1 when none did, 2 on
 * any other error (unknown host, no socket allowed, usage). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "cli/cli.h"
#include "sockstack/err.h"
#include "sockstack/raw.h"

static void ping_usage(FILE *out)
{
    fprintf(out,
            "Usage: sockstack ping [OPTIONS] HOST\n"
            "\n"
            "Send ICMP echo requests to HOST and print each reply, then the\n"
            "statistics, in the format of iputils' ping (scripts written for it\n"
            "read ours). Uses a raw socket (CAP_NET_RAW), else Linux's unprivileged\n"
            "ICMP datagram socket (net.ipv4.ping_group_range). Stops after -c\n"
            "requests or at SIGINT. Exit status: 0 if a reply came, 1 if none did,\n"
            "2 on other errors (as iputils).\n"
            "\n"
            "  -c COUNT      stop after COUNT requests (default: until interrupted)\n"
            "  -i SECONDS    wait between requests (default 1; fractions allowed)\n"
            "  -s SIZE       payload bytes (default 56, at most %d)\n"
            "  -t TTL        IP time to live / IPv6 hop limit (1-255)\n"
            "  -W SECONDS    after the last request, wait this long for a reply\n"
            "                when none came yet (default 10)\n"
            "  -q            quiet: only the summary\n"
            "  -4, -6        IPv4 or IPv6 only\n"
            "  --dgram       use the ICMP datagram socket even as root\n"
            "  -h, --help    show this help\n",
            SS_PING_MAX_SIZE);
}

struct ping_out {
    const char *host;
    bool quiet;
    uint32_t size;
    bool timing;   /* iputils times a reply only when the payload holds a
                    * struct timeval (16 bytes): below that, no time and no
                    * rtt line, so that the text is iputils' */
};

#define PING_TIMING_MIN 16

/* iputils' precision: 3 decimals under 1 ms, fewer above. */
static void print_ms(uint64_t us)
{
    if (us >= 100000 - 50)
        printf("%llu", (unsigned long long)((us + 500) / 1000));
    else if (us >= 10000 - 5)
        printf("%.1f", us / 1000.0);
    else if (us >= 1000)
        printf("%.2f", us / 1000.0);
    else
        printf("%.3f", us / 1000.0);
}

static void on_ping(void *ctx, const struct ss_ping_event *ev)
{
    struct ping_out *o = ctx;
    switch (ev->kind) {
    case SS_PING_EV_START:
        if (ev->family == AF_INET6)
            printf("PING %s(%s) %u data bytes\n", o->host, ev->addr, o->size);
        else
            printf("PING %s (%s) %u(%u) bytes of data.\n", o->host, ev->addr, o->size,
                   o->size + 28);
        break;
    case SS_PING_EV_REPLY:
        if (o->quiet)
            break;
        printf("%zu bytes from %s: icmp_seq=%u", ev->bytes, ev->from, ev->seq);
        if (ev->ttl >= 0)
            printf(" ttl=%d", ev->ttl);
        if (o->timing) {
            printf(" time=");
            print_ms(ev->rtt_us);
            printf(" ms");
        }
        printf("%s\n", ev->dup ? " (DUP!)" : "");
        break;
    case SS_PING_EV_ERROR:
        if (!o->quiet)
            printf("From %s icmp_seq=%u %s\n", ev->from, ev->seq, ev->text);
        break;
    case SS_PING_EV_SEND_FAIL:
        fprintf(stderr, "ping: sendmsg: %s\n", ss_strerror(ev->err));
        break;
    }
    fflush(stdout);
}

static void print_stats(const struct ping_out *o, const struct ss_ping_stats *s)
{
    const char *host = o->host;
    printf("\n--- %s ping statistics ---\n", host);
    printf("%u packets transmitted, %u received", s->transmitted, s->received);
    if (s->duplicates)
        printf(", +%u duplicates", s->duplicates);
    if (s->errors)
        printf(", +%u errors", s->errors);
    if (s->transmitted)
        printf(", %g%% packet loss",
               (double)(float)((s->transmitted - s->received) * 100.0 / s->transmitted));
    printf(", time %llums\n", (unsigned long long)s->elapsed_ms);
    if (s->received + s->duplicates && o->timing) {
        printf("rtt min/avg/max/mdev = %.3f/%.3f/%.3f/%.3f ms", s->rtt_min_us / 1000.0,
               s->rtt_avg_us / 1000.0, s->rtt_max_us / 1000.0, s->rtt_mdev_us / 1000.0);
    }
    printf("\n");   /* iputils ends with a newline, also when no RTT line came */
}

/* Seconds with fractions into milliseconds: 0, or a usage message. */
static int parse_secs(const char *opt, const char *s, double min, double max, uint32_t *ms)
{
    double v;
    if (cli_parse_double(opt, s, min, max, &v) < 0)
        return -1;
    *ms = (uint32_t)llround(v * 1000);
    return 0;
}

int cmd_ping(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dgram", no_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    struct ss_ping_cfg cfg;
    ss_ping_cfg_default(&cfg);
    struct ping_out o = {0};
    int c, v;
    optind = 1;
    while ((c = cli_getopt(argc, argv, "c:i:s:t:W:q46h", opts)) != -1) {
        switch (c) {
        case 'c':
            if (cli_parse_int("-c", optarg, 1, 1 << 30, &v) < 0)
                return CLI_USAGE;
            cfg.count = (uint32_t)v;
            break;
        case 'i':
            if (parse_secs("-i", optarg, 0.001, 3600, &cfg.interval_ms) < 0)
                return CLI_USAGE;
            break;
        case 's':
            if (cli_parse_int("-s", optarg, 0, SS_PING_MAX_SIZE, &v) < 0)
                return CLI_USAGE;
            cfg.size = (uint32_t)v;
            break;
        case 't':
            if (cli_parse_int("-t", optarg, 1, 255, &cfg.ttl) < 0)
                return CLI_USAGE;
            break;
        case 'W':
            if (parse_secs("-W", optarg, 0.001, 3600, &cfg.linger_ms) < 0)
                return CLI_USAGE;
            break;
        case 'q': o.quiet = true; break;
        case '4':
        case '6':
            if (cfg.family != AF_UNSPEC)
                return cli_usage_error("ping ", "-4 and -6 cannot be used together");
            cfg.family = c == '4' ? AF_INET : AF_INET6;
            break;
        case 'D': cfg.dgram_only = true; break;
        case 'h': ping_usage(stdout); return CLI_OK;
        default: return cli_option_error("ping ", c, argv);
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("ping ", optind == argc ? "missing HOST" : "too many arguments");
    cfg.host = o.host = argv[optind];
    o.size = cfg.size;
    o.timing = cfg.size >= PING_TIMING_MIN;
    struct ss_ping_stats st;
    int r = ss_ping_run(&cfg, on_ping, &o, &st);
    if (r == SS_ENOHOST) {
        fprintf(stderr, "ping: %s: Name or service not known\n", cfg.host);
        return 2;
    }
    if (r < 0 && st.transmitted == 0) {
        fprintf(stderr, "ping: socket: %s\n", ss_strerror(r));
        return 2;
    }
    print_stats(&o, &st);
    return st.received ? 0 : 1;
}

/* ---- traceroute ---------------------------------------------------------- */

static void tr_usage(FILE *out)
{
    fprintf(out,
            "Usage: sockstack traceroute [OPTIONS] HOST [PACKET_LEN]\n"
            "\n"
            "Print the routers on the way to HOST: probes go out with TTL 1, 2, 3...\n"
            "and each router that drops one for its TTL says so in an ICMP\n"
            "time-exceeded message; the destination answers with port unreachable\n"
            "(UDP), an echo reply (ICMP) or a SYN,ACK or RST (TCP). Output is in\n"
            "traceroute's format, addresses only (no name look-ups). Unreachable\n"
            "answers are marked !H !N !P !X as traceroute does. Needs a raw socket\n"
            "(CAP_NET_RAW). Exit status: 0 when the destination answered, 1 when\n"
            "not, 2 on a usage error.\n"
            "\n"
            "  -U            UDP probes to port 33434 and up (the default)\n"
            "  -I            ICMP echo probes\n"
            "  -T            TCP SYN probes (port 80 unless -p)\n"
            "  -p PORT       UDP: the first port; TCP: the port\n"
            "  -f TTL        first TTL (default 1)\n"
            "  -m TTL        maximum TTL (default 30)\n"
            "  -q N          probes per hop (default 3, at most %d)\n"
            "  -w SECONDS    wait for a hop's answers (default 5)\n"
            "  -n            addresses only (the only mode; accepted for scripts)\n"
            "  -4, -6        IPv4 or IPv6 only\n"
            "  -h, --help    show this help\n",
            SS_TR_MAX_QUERIES);
}

struct tr_out {
    const char *host;
};

static void on_tr(void *ctx, const struct ss_tr_event *ev)
{
    struct tr_out *o = ctx;
    if (ev->kind == SS_TR_EV_START) {
        printf("traceroute to %s (%s), %d hops max, %u byte packets\n", o->host, ev->addr,
               ev->max_ttl, ev->packet_len);
        fflush(stdout);
        return;
    }
    printf("%2d ", ev->ttl);
    const char *last = "";
    for (int k = 0; k < ev->nprobes; k++) {
        const struct ss_tr_probe *p = &ev->probe[k];
        if (!p->answered) {
            printf(" *");
            continue;
        }
        if (strcmp(p->from, last) != 0)
            printf(" %s", p->from);
        last = p->from;
        printf("  %.3f ms", p->rtt_us / 1000.0);
        if (p->mark[0])
            printf(" %s", p->mark);
    }
    printf("\n");
    fflush(stdout);
}

int cmd_traceroute(int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    struct ss_tr_cfg cfg;
    ss_tr_cfg_default(&cfg);
    int c, v, methods = 0;
    optind = 1;
    while ((c = cli_getopt(argc, argv, "UITp:f:m:q:w:n46h", opts)) != -1) {
        switch (c) {
        case 'U': cfg.method = SS_TR_UDP, methods++; break;
        case 'I': cfg.method = SS_TR_ICMP, methods++; break;
        case 'T': cfg.method = SS_TR_TCP, methods++; break;
        case 'p':
            if (cli_parse_int("-p", optarg, 1, 65535, &v) < 0)
                return CLI_USAGE;
            cfg.port = (uint16_t)v;
            break;
        case 'f':
            if (cli_parse_int("-f", optarg, 1, 255, &cfg.first_ttl) < 0)
                return CLI_USAGE;
            break;
        case 'm':
            if (cli_parse_int("-m", optarg, 1, 255, &cfg.max_ttl) < 0)
                return CLI_USAGE;
            break;
        case 'q':
            if (cli_parse_int("-q", optarg, 1, SS_TR_MAX_QUERIES, &cfg.nqueries) < 0)
                return CLI_USAGE;
            break;
        case 'w':
            if (parse_secs("-w", optarg, 0.001, 3600, &cfg.wait_ms) < 0)
                return CLI_USAGE;
            break;
        case 'n': break;
        case '4':
        case '6':
            if (cfg.family != AF_UNSPEC)
                return cli_usage_error("traceroute ", "-4 and -6 cannot be used together");
            cfg.family = c == '4' ? AF_INET : AF_INET6;
            break;
        case 'h': tr_usage(stdout); return CLI_OK;
        default: return cli_option_error("traceroute ", c, argv);
        }
    }
    if (methods > 1)
        return cli_usage_error("traceroute ", "choose one of -U, -I and -T");
    if (cfg.first_ttl > cfg.max_ttl)
        return cli_usage_error("traceroute ", "-f is beyond -m");
    if (optind == argc)
        return cli_usage_error("traceroute ", "missing HOST");
    if (argc - optind > 2)
        return cli_usage_error("traceroute ", "too many arguments");
    if (argc - optind == 2) {
        if (cli_parse_int("PACKET_LEN", argv[optind + 1], 28, 1500, &v) < 0)
            return CLI_USAGE;
        cfg.packet_len = (uint32_t)v;
    }
    cfg.host = argv[optind];
    struct tr_out o = {.host = cfg.host};
    bool reached;
    int r = ss_traceroute_run(&cfg, on_tr, &o, &reached);
    if (r == SS_ENOHOST) {
        fprintf(stderr, "%s: Name or service not known\n", cfg.host);
        return CLI_USAGE;
    }
    if (r < 0) {
        cli_error("traceroute: %s%s", ss_strerror(r),
                  r == -EPERM || r == -EACCES ? " (a raw socket needs CAP_NET_RAW)" : "");
        return CLI_RUNTIME;
    }
    return reached ? CLI_OK : CLI_RUNTIME;
}
