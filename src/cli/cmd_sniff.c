/* sockstack sniff [-i IFACE | -r FILE] [-w FILE] [-c N] [FILTER]: every TCP
 * segment in the stack trace's notation, with each side's inferred state
 * changes and the analyser's flags (viz.h). Parse, run, print. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "sockstack/err.h"
#include "sockstack/viz.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: sockstack sniff (-i IFACE | -r FILE) [-w FILE] [-c COUNT] [-B KIB] [FILTER]\n"
            "\n"
            "Capture TCP with libpcap (live, with a BPF FILTER such as 'tcp port 80',\n"
            "or from a pcap/pcapng file) and print every segment in the notation of\n"
            "the stack's trace, sender first:\n"
            "  0.000000 10.0.0.1:5000 10.0.0.2:80 > SYN seq=1 win=64240 <mss 1460,...>\n"
            "Each connection's two sides get states inferred from the packets\n"
            "(SYN-SENT ... TIME-WAIT, RFC 9293), printed as the trace prints a state\n"
            "change, owner first:\n"
            "  0.000000 10.0.0.1:5000 10.0.0.2:80 CLOSED -> SYN-SENT\n"
            "Flags: [rtx] retransmission, [dup-ack N], [zero-window], [window-probe],\n"
            "[out-of-order] (a gap before it: something not seen), [reset], and\n"
            "ICMP errors about a connection ([icmp-error]). Times are seconds since\n"
            "the first segment. Live capture says 'sniff: capturing on IFACE' on\n"
            "stderr when it has started, and stops at SIGINT or after COUNT packets;\n"
            "then it says how many packets it saw and how many the kernel dropped\n"
            "(its buffer was full), as tcpdump does.\n"
            "\n"
            "  -i IFACE      capture on this device (root or CAP_NET_RAW)\n"
            "  -r FILE       read this capture file instead\n"
            "  -w FILE       also write every captured packet to FILE (pcap)\n"
            "  -c COUNT      stop after COUNT packets\n"
            "  -B KIB        the kernel's capture buffer in KiB (default 8192)\n"
            "  -h, --help    show this help\n");
}

struct out {
    const char *what;
    bool have_t0;
    uint64_t t0;
};

static void on_ready(void *ctx)
{
    const struct out *o = ctx;
    fprintf(stderr, "sniff: capturing on %s\n", o->what);
}

static void on_rec(void *ctx, const struct ss_ana_rec *r)
{
    struct out *o = ctx;
    if (!o->have_t0) {
        o->have_t0 = true;
        o->t0 = r->t_us;
    }
    char line[1024];
    uint64_t t = r->t_us - o->t0;
    ss_ana_format(r, SS_TRACE_FMT_TIME, o->t0, line, sizeof line);
    puts(line);
    for (int i = 0; i < r->nchanges; i++) {
        ss_ana_format_change(r, i, line, sizeof line);
        printf("%llu.%06llu %s\n", (unsigned long long)(t / 1000000),
               (unsigned long long)(t % 1000000), line);
    }
    fflush(stdout);
}

int cmd_sniff(int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    struct ss_sniff_cfg cfg = {0};
    int c;
    optind = 1;
    uint64_t kib = 0;
    while ((c = cli_getopt(argc, argv, "+i:r:w:c:B:h", opts)) != -1) {
        switch (c) {
        case 'i': cfg.iface = optarg; break;
        case 'r': cfg.read_path = optarg; break;
        case 'w': cfg.write_path = optarg; break;
        case 'c':
            if (cli_parse_u64("-c", optarg, 1, UINT64_MAX, &cfg.count) < 0)
                return CLI_USAGE;
            break;
        case 'B':
            if (cli_parse_u64("-B", optarg, 64, 1u << 20, &kib) < 0)
                return CLI_USAGE;
            cfg.buffer_bytes = (size_t)kib * 1024;
            break;
        case 'h': usage(stdout); return CLI_OK;
        default: return cli_option_error("sniff ", c, argv);
        }
    }
    if (cfg.iface && cfg.read_path)
        return cli_usage_error("sniff ", "cannot use -i and -r together");
    if (!cfg.iface && !cfg.read_path)
        return cli_usage_error("sniff ", "give -i IFACE or -r FILE");
    /* The rest is the filter, as tcpdump takes it: words joined by spaces. */
    char filter[1024] = "";
    size_t n = 0;
    for (int i = optind; i < argc; i++) {
        int w = snprintf(filter + n, sizeof filter - n, "%s%s", n ? " " : "", argv[i]);
        if (w < 0 || (size_t)w >= sizeof filter - n)
            return cli_usage_error("sniff ", "FILTER is too long");
        n += (size_t)w;
    }
    if (n)
        cfg.filter = filter;
    struct out o = {.what = cfg.iface ? cfg.iface : cfg.read_path};
    struct ss_sniff_stats stats = {0};
    if (cfg.iface) {
        cfg.ready = on_ready;
        cfg.stats = &stats;
    }
    char err[512];
    int r = ss_sniff_run(&cfg, on_rec, &o, err, sizeof err);
    if (r < 0) {
        cli_error("sniff: %s", err[0] ? err : ss_strerror(r));
        return r == -EINVAL ? CLI_USAGE : CLI_RUNTIME;
    }
    if (cfg.iface)
        fprintf(stderr, "sniff: %llu packets captured, %llu dropped by the kernel\n",
                (unsigned long long)stats.seen, (unsigned long long)stats.dropped);
    return CLI_OK;
}
