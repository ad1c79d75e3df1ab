/* sockstack link: an impaired path between two TUN devices (relay.h), in
 * one or two network namespaces, until SIGINT/SIGTERM; per-direction
 * counters at exit. Parse, open the devices, run the relay, print. */
#include <arpa/inet.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/link_opt.h"
#include "cli/stack_opt.h"
#include "sockstack/err.h"
#include "sockstack/reactor.h"
#include "sockstack/relay.h"

/* One side: NAME[@NETNS], optional kernel address, optional tap. */
struct link_side {
    char name[16];
    const char *netns;   /* NULL: ours */
    bool have_addr;
    struct in_addr addr;
    unsigned prefix;
    const char *pcap_path;
    char ifname[32];
    int fd;
    ss_pcap *pcap;
};

static void link_usage(FILE *out)
{
    fprintf(out,
            "Usage: sockstack link --tun-a NAME[@NETNS] --tun-b NAME[@NETNS] [OPTIONS]\n"
            "\n"
            "Join two TUN devices through the seeded link model that `stack demo`\n"
            "uses, in real time: every IPv4 packet the kernel routes into one device\n"
            "comes out of the other after loss, delay, jitter, bandwidth, a drop-tail\n"
            "queue, reordering, duplication and corruption (each direction its own).\n"
            "NETNS is a name under /run/netns (ip netns add): the device is created\n"
            "there, so one relay joins two namespaces. Prints 'ready' on stderr when\n"
            "both devices are up, and each direction's counters on stdout at\n"
            "SIGINT/SIGTERM. Needs CAP_NET_ADMIN (and CAP_SYS_ADMIN for NETNS).\n"
            "Routes are yours to set (see docs/link.md), or use --addr-a/--addr-b.\n"
            "\n"
            "  --tun-a NAME[@NETNS] side A's device (created, or attached if it exists)\n"
            "  --tun-b NAME[@NETNS] side B's device\n"
            "  --addr-a ADDR/PREFIX give A's device this kernel address (else the\n"
            "                      device is only brought up)\n"
            "  --addr-b ADDR/PREFIX likewise for B\n"
            "  --mtu N             both devices' MTU (default: the device's, 1500)\n"
            "  --pcap-a FILE       tap side A: what A sends and what it receives\n"
            "  --pcap-b FILE       tap side B\n"
            "  --seed S            the link model's PRNG seed (default 1)\n"
            "Link model (both directions; default: no impairment):\n");
    cli_link_help(out);
    fprintf(out,
            "  --a-to-b KEY=V,...  direction A -> B only (keys as the options above:\n"
            "                      loss=1,delay=20,...); likewise --b-to-a\n"
            "  -h, --help          show this help\n");
}

/* "NAME[@NETNS]" into s: 0 or CLI_USAGE after a message. */
static int parse_side(const char *opt, char *arg, struct link_side *s)
{
    char *at = strchr(arg, '@');
    if (at) {
        *at = '\0';
        s->netns = at + 1;
        if (!*s->netns)
            return cli_usage_error("link ", "%s: empty namespace after '@'", opt);
    }
    if (strlen(arg) == 0 || strlen(arg) >= sizeof s->name)
        return cli_usage_error("link ", "%s: device name must have 1 to 15 characters", opt);
    snprintf(s->name, sizeof s->name, "%s", arg);
    return 0;
}

static int parse_addr(const char *opt, const char *arg, struct link_side *s)
{
    int rc = cli_parse_addr_prefix(arg, &s->addr, &s->prefix);
    if (rc == -1)
        return cli_usage_error("link ", "%s: '%s' is not ADDR/PREFIX (IPv4)", opt, arg);
    if (rc < 0)
        return cli_usage_error("link ", "%s: prefix length must be 1 to 30", opt);
    s->have_addr = true;
    return 0;
}

static void on_signal(ss_loop *loop, int signo, void *arg)
{
    cli_log("%s: stopping", strsignal(signo));
    ss_loop_stop(loop);
}

static const char *side_where(const struct link_side *s)
{
    static char buf[2][96];
    static int i;
    i ^= 1;
    snprintf(buf[i], sizeof buf[i], "%s%s%s", s->ifname, s->netns ? "@" : "",
             s->netns ? s->netns : "");
    return buf[i];
}

int cmd_link(int argc, char **argv)
{
    enum { O_TUN_A = 256, O_TUN_B, O_ADDR_A, O_ADDR_B, O_MTU, O_PCAP_A, O_PCAP_B, O_SEED };
    static const struct option opts[] = {
        CLI_LINK_LONGOPTS,
        CLI_LINK_DIR_LONGOPTS("a-to-b", "b-to-a"),
        {"tun-a", required_argument, 0, O_TUN_A},
        {"tun-b", required_argument, 0, O_TUN_B},
        {"addr-a", required_argument, 0, O_ADDR_A},
        {"addr-b", required_argument, 0, O_ADDR_B},
        {"mtu", required_argument, 0, O_MTU},
        {"pcap-a", required_argument, 0, O_PCAP_A},
        {"pcap-b", required_argument, 0, O_PCAP_B},
        {"seed", required_argument, 0, O_SEED},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    struct link_side side[2] = {{.fd = -1}, {.fd = -1}};
    struct ss_relay_cfg cfg;
    ss_relay_cfg_default(&cfg);
    struct cli_link lk;
    cli_link_init(&lk, &cfg.link[0]);
    uint64_t mtu = 0;
    optind = 1;
    opterr = 0;
    int c, rc;
    while ((c = cli_getopt(argc, argv, ":h", opts)) != -1) {
        rc = cli_link_opt(&lk, c, optarg, c == CLI_LINK_O_DIR0 ? "--a-to-b" : "--b-to-a");
        if (rc < 0)
            return CLI_USAGE;
        if (rc == 0)
            continue;
        rc = 0;
        switch (c) {
        case O_TUN_A: rc = parse_side("--tun-a", optarg, &side[0]); break;
        case O_TUN_B: rc = parse_side("--tun-b", optarg, &side[1]); break;
        case O_ADDR_A: rc = parse_addr("--addr-a", optarg, &side[0]); break;
        case O_ADDR_B: rc = parse_addr("--addr-b", optarg, &side[1]); break;
        case O_MTU: rc = cli_parse_u64("--mtu", optarg, 576, 65535, &mtu) < 0 ? CLI_USAGE : 0; break;
        case O_PCAP_A: side[0].pcap_path = optarg; break;
        case O_PCAP_B: side[1].pcap_path = optarg; break;
        case O_SEED:
            rc = cli_parse_u64("--seed", optarg, 0, UINT64_MAX, &cfg.seed) < 0 ? CLI_USAGE : 0;
            break;
        case 'h': link_usage(stdout); return CLI_OK;
        default: return cli_option_error("link ", c, argv);
        }
        if (rc)
            return rc;
    }
    if (optind < argc)
        return cli_usage_error("link ", "unexpected argument '%s'", argv[optind]);
    if (!side[0].name[0] || !side[1].name[0])
        return cli_usage_error("link ", "--tun-a and --tun-b are both required");
    if (!strcmp(side[0].name, side[1].name) &&
        (side[0].netns ? side[1].netns && !strcmp(side[0].netns, side[1].netns)
                       : !side[1].netns))
        return cli_usage_error("link ", "--tun-a and --tun-b name the same device");
    if (side[0].pcap_path && side[1].pcap_path && !strcmp(side[0].pcap_path, side[1].pcap_path))
        return cli_usage_error("link ", "--pcap-a and --pcap-b need two files");
    if (cli_link_finish(&lk, cfg.link) < 0)
        return CLI_USAGE;

    int status = CLI_RUNTIME;
    ss_loop *loop = NULL;
    ss_relay *relay = NULL;
    for (int s = 0; s < 2; s++) {
        struct link_side *sd = &side[s];
        if (sd->pcap_path && (rc = ss_pcap_open(&sd->pcap, sd->pcap_path)) < 0) {
            cli_error("--pcap-%c %s: %s", 'a' + s, sd->pcap_path, ss_strerror(rc));
            goto out;
        }
        sd->fd = ss_relay_tun_open(sd->netns, sd->name, sd->have_addr ? &sd->addr : NULL,
                                   sd->prefix, (unsigned)mtu, sd->ifname, sizeof sd->ifname);
        if (sd->fd < 0) {
            cli_error("cannot open TUN device %s%s%s: %s", sd->name, sd->netns ? " in " : "",
                      sd->netns ? sd->netns : "", ss_strerror(sd->fd));
            goto out;
        }
        cfg.fd[s] = sd->fd;
        cfg.pcap[s] = sd->pcap;
    }
    if ((rc = ss_loop_new(&loop)) < 0) {
        cli_error("cannot create the event loop: %s", ss_strerror(rc));
        goto out;
    }
    ss_loop_signal_add(loop, SIGINT, on_signal, NULL);
    ss_loop_signal_add(loop, SIGTERM, on_signal, NULL);
    if ((rc = ss_relay_new(loop, &cfg, &relay)) < 0) {
        cli_error("cannot start the relay: %s", ss_strerror(rc));
        goto out;
    }
    fprintf(stderr, "link up: A %s <-> B %s; ready\n", side_where(&side[0]),
            side_where(&side[1]));
    fflush(stderr);
    if ((rc = ss_loop_run(loop)) < 0) {
        cli_error("event loop failed: %s", ss_strerror(rc));
        goto out;
    }
    for (int d = 0; d < 2; d++) {
        struct ss_relay_stats st;
        ss_relay_get_stats(relay, d, &st);
        printf("%s: %s\n", d == 0 ? "a->b" : "b->a", cli_relay_stats_str(&st));
    }
    fflush(stdout);
    status = CLI_OK;
out:
    ss_relay_free(relay);
    if (loop)
        ss_loop_free(loop);
    for (int s = 0; s < 2; s++) {
        if (side[s].fd >= 0)
            close(side[s].fd); /* the device goes with its last fd */
        ss_pcap_close(side[s].pcap);
    }
    return status;
}
