/* sockstack broadcast send|listen and sockstack discover: UDP broadcast.
 *
 * send:   SO_BROADCAST, to the limited broadcast address 255.255.255.255
 *         unless --to names another (e.g. a subnet's directed broadcast).
 * listen: bind 0.0.0.0:PORT (SO_REUSEADDR), print "SENDER: MESSAGE" lines.
 * discover: broadcast the probe "SSDISCOVER1" and list every service that
 *         answers (`serve ... --announce`), one "NAME ADDRESS PORT PROTO"
 *         line each.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "sockstack/config.h"
#include "sockstack/discover.h"
#include "sockstack/err.h"
#include "sockstack/reactor.h"
#include "sockstack/sock.h"

static int open_udp(const char *host, int port, bool bcast, bool reuse, ss_sock **s,
                    ss_addr *bound)
{
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    ss_addr a;
    int n = ss_addr_resolve(host, p, AF_INET, SS_DGRAM, true, &a, 1);
    if (n < 0)
        return n;
    ss_sockopts o;
    ss_sockopts_init(&o);
    o.broadcast = bcast ? 1 : -1;
    o.reuseaddr = reuse ? 1 : -1;
    const char *failed;
    int err = ss_sock_listen_on(ss_backend_kernel(), &a, SS_DGRAM, &o, 0, s, &failed);
    if (!err && bound)
        err = ss_sock_local_addr(*s, bound);
    return err;
}

/* Where --to ADDR and PORT send: CLI_OK, or CLI_RUNTIME after a message. */
static int resolve_to(const char *to, int port, ss_addr *dst)
{
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    int err = ss_addr_resolve(to, p, AF_INET, SS_DGRAM, false, dst, 1);
    if (err < 0) {
        cli_error("--to %s: %s", to, ss_strerror(err));
        return CLI_RUNTIME;
    }
    return CLI_OK;
}

/* A destination of broadcast send, with the interface it was taken from. */
enum { BC_MAX_DESTS = 64 };
struct bc_dest {
    ss_addr addr;
    char ifname[IF_NAMESIZE];
};

/* The IPv4 broadcast address of each interface that is up (only ifname's
 * when not NULL), at most max: how many, or a negative errno. */
static int iface_broadcasts(const char *ifname, int port, struct bc_dest *d, int max)
{
    struct ifaddrs *ifa;
    if (getifaddrs(&ifa) < 0)
        return -errno;
    int n = 0;
    for (struct ifaddrs *i = ifa; i && n < max; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || !(i->ifa_flags & IFF_UP) ||
            !(i->ifa_flags & IFF_BROADCAST) || !i->ifa_broadaddr ||
            (ifname && strcmp(i->ifa_name, ifname)))
            continue;
        char a[INET_ADDRSTRLEN];
        if (!inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)i->ifa_broadaddr)->sin_addr, a,
                       sizeof a) ||
            resolve_to(a, port, &d[n].addr) != CLI_OK)
            continue;
        snprintf(d[n].ifname, sizeof d[n].ifname, "%s", i->ifa_name);
        n++;
    }
    freeifaddrs(ifa);
    return n;
}

/* "d0 10.77.0.255:9999, ..." for the log. */
static void dest_list(const struct bc_dest *d, int n, char *buf, size_t cap)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && off < cap; i++) {
        char a[SS_ADDR_STRLEN];
        ss_addr_format(&d[i].addr, a, sizeof a);
        int k = snprintf(buf + off, cap - off, "%s%s %s", i ? ", " : "", d[i].ifname, a);
        if (k < 0)
            break;
        off += (size_t)k;
    }
}

static void sleep_secs(double secs)
{
    struct timespec ts = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void send_usage(FILE *out)
{
    fprintf(out, "Usage: sockstack broadcast send --port N [--to ADDR | --interface NAME]\n"
                 "                                [--count K] [--interval SECS] MESSAGE\n"
                 "       sockstack broadcast listen --port N [--count K]\n"
                 "\n"
                 "send: MESSAGE as one UDP datagram (SO_BROADCAST) to ADDR (default the\n"
                 "limited broadcast address 255.255.255.255), K times (default 1),\n"
                 "SECS apart (default 1). Where 255.255.255.255 is unreachable (no\n"
                 "default route), to the broadcast address of each interface that is up;\n"
                 "--interface NAME: to NAME's broadcast address. The log says which.\n"
                 "listen: print \"SENDER: MESSAGE\" for each datagram on PORT; stop\n"
                 "after K (default: never).\n");
}

static int bc_send(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"port", required_argument, NULL, 'p'}, {"to", required_argument, NULL, 't'},
        {"count", required_argument, NULL, 'c'}, {"interval", required_argument, NULL, 'i'},
        {"interface", required_argument, NULL, 'I'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    int port = -1, count = 1, c;
    double interval = 1;
    const char *to = NULL, *iface = NULL;
    optind = 1;
    while ((c = cli_getopt(argc, argv, "p:t:c:i:I:h", longopts)) != -1) {
        switch (c) {
        case 'p': if (cli_parse_int("--port", optarg, 1, 65535, &port) < 0) return CLI_USAGE; break;
        case 't': to = optarg; break;
        case 'I': iface = optarg; break;
        case 'c': if (cli_parse_int("--count", optarg, 1, 1000000, &count) < 0) return CLI_USAGE; break;
        case 'i': if (cli_parse_double("--interval", optarg, 0, 3600, &interval) < 0) return CLI_USAGE; break;
        case 'h': send_usage(stdout); return CLI_OK;
        default: return cli_option_error("broadcast ", c, argv);
        }
    }
    if (port < 0)
        return cli_usage_error("broadcast ", "send needs --port N");
    if (to && iface)
        return cli_usage_error("broadcast ", "--to and --interface exclude each other");
    if (argc - optind != 1)
        return cli_usage_error("broadcast ", "send needs exactly one MESSAGE");
    const char *msg = argv[optind];
    if (strlen(msg) > 65507)
        return cli_usage_error("broadcast ", "MESSAGE is longer than one UDP datagram");
    bool limited = !to && !iface; /* the default, 255.255.255.255 */
    struct bc_dest dst[BC_MAX_DESTS];
    int ndst = 1;
    char list[1024];
    if (iface) {
        ndst = iface_broadcasts(iface, port, dst, BC_MAX_DESTS);
        if (ndst <= 0) {
            cli_error("broadcast send: --interface %s: %s", iface,
                      ndst < 0 ? ss_strerror(ndst) : "no such interface up with an IPv4 broadcast address");
            return CLI_RUNTIME;
        }
        dest_list(dst, ndst, list, sizeof list);
        cli_log("sending to the broadcast address of %s", list);
    } else {
        if (resolve_to(to ? to : "255.255.255.255", port, &dst[0].addr) != CLI_OK)
            return CLI_RUNTIME;
        dst[0].ifname[0] = '\0';
    }
    ss_sock *s;
    int err = open_udp("0.0.0.0", 0, true, false, &s, NULL);
    if (err) {
        cli_error("broadcast send: %s", ss_strerror(err));
        return CLI_RUNTIME;
    }
    ss_sock_set_blocking(s, true);
    for (int i = 0; i < count; i++) {
        if (i)
            sleep_secs(interval);
        for (int j = 0; j < ndst; j++) {
            char d[SS_ADDR_STRLEN];
            ss_addr_format(&dst[j].addr, d, sizeof d);
            ssize_t n = ss_sock_sendto(s, msg, strlen(msg), &dst[j].addr);
            if (n == -ENETUNREACH && limited) {
                /* No default route: the limited broadcast has nowhere to
                 * go. Each interface's own broadcast address does. */
                limited = false;
                int k = iface_broadcasts(NULL, port, dst, BC_MAX_DESTS);
                if (k <= 0) {
                    cli_error("broadcast send to %s: %s, and no interface is up with an IPv4 "
                              "broadcast address", d, ss_strerror((int)n));
                    ss_sock_close(s);
                    return CLI_RUNTIME;
                }
                ndst = k;
                dest_list(dst, ndst, list, sizeof list);
                cli_log("%s: %s (no default route); sending to each interface's broadcast "
                        "address instead: %s", d, ss_strerror((int)n), list);
                j = -1;
                continue;
            }
            if (n < 0) {
                cli_error("broadcast send to %s: %s", d, ss_strerror((int)n));
                ss_sock_close(s);
                return CLI_RUNTIME;
            }
            if (dst[j].ifname[0])
                cli_log("sent %zd bytes to %s (%s)", n, d, dst[j].ifname);
            else
                cli_log("sent %zd bytes to %s", n, d);
        }
    }
    ss_sock_close(s);
    return CLI_OK;
}

static int bc_listen(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"port", required_argument, NULL, 'p'}, {"count", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    int port = -1, count = 0, c;
    optind = 1;
    while ((c = cli_getopt(argc, argv, "p:c:h", longopts)) != -1) {
        switch (c) {
        case 'p': if (cli_parse_int("--port", optarg, 0, 65535, &port) < 0) return CLI_USAGE; break;
        case 'c': if (cli_parse_int("--count", optarg, 1, 1000000, &count) < 0) return CLI_USAGE; break;
        case 'h': send_usage(stdout); return CLI_OK;
        default: return cli_option_error("broadcast ", c, argv);
        }
    }
    if (port < 0)
        return cli_usage_error("broadcast ", "listen needs --port N");
    if (optind != argc)
        return cli_usage_error("broadcast ", "listen takes no arguments");
    ss_sock *s;
    ss_addr bound;
    int err = open_udp("0.0.0.0", port, true, true, &s, &bound);
    if (err) {
        cli_error("broadcast listen on port %d: %s", port, ss_strerror(err));
        return CLI_RUNTIME;
    }
    ss_sock_set_blocking(s, true);
    char b[SS_ADDR_STRLEN];
    ss_addr_format(&bound, b, sizeof b);
    fprintf(stderr, "listening on %s (udp)\n", b);
    fflush(stderr);
    static char buf[65536];
    for (int got = 0; count == 0 || got < count;) {
        ss_addr from;
        bool trunc = false;
        ssize_t n = ss_sock_recvfrom(s, buf, sizeof buf - 1, &from, &trunc);
        if (n < 0) {
            if (n == -EINTR || n == -EAGAIN)
                continue;
            cli_error("broadcast listen: %s", ss_strerror((int)n));
            ss_sock_close(s);
            return CLI_RUNTIME;
        }
        buf[n] = '\0';
        for (ssize_t i = 0; i < n; i++)
            if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
                buf[i] = '?';
        char f[SS_ADDR_STRLEN];
        ss_addr_format(&from, f, sizeof f);
        printf("%s: %s%s\n", f, buf, trunc ? " [truncated]" : "");
        fflush(stdout);
        got++;
    }
    ss_sock_close(s);
    return CLI_OK;
}

int cmd_broadcast(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("broadcast ", "send or listen?");
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        send_usage(stdout);
        return CLI_OK;
    }
    if (!strcmp(argv[1], "send"))
        return bc_send(argc - 1, argv + 1);
    if (!strcmp(argv[1], "listen"))
        return bc_listen(argc - 1, argv + 1);
    static const char *const names[] = {"send", "listen"};
    return cli_unknown_command("broadcast ", argv[1], names, 2);
}

/* ---- discover ----------------------------------------------------------- */

static void disc_print(const ss_discover_found *f, void *arg)
{
    printf("%s %s %d %s\n", f->name, f->addr, f->port, f->proto);
    fflush(stdout);
}

int cmd_discover(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"port", required_argument, NULL, 'p'}, {"wait", required_argument, NULL, 'w'},
        {"to", required_argument, NULL, 't'},   {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int port = SS_DISCOVER_PORT, c;
    double wait = SS_DISCOVER_WAIT;
    const char *to = "255.255.255.255";
    optind = 1;
    while ((c = cli_getopt(argc, argv, "p:w:t:h", longopts)) != -1) {
        switch (c) {
        case 'p': if (cli_parse_int("--port", optarg, 1, 65535, &port) < 0) return CLI_USAGE; break;
        case 'w': if (cli_parse_double("--wait", optarg, 0.05, 600, &wait) < 0) return CLI_USAGE; break;
        case 't': to = optarg; break;
        case 'h':
            printf("Usage: sockstack discover [--port N] [--wait SECS] [--to ADDR]\n\n"
                   "Broadcast a discovery probe to port N (default %d) and list the\n"
                   "services that answer (`sockstack serve ... --announce`), one\n"
                   "\"NAME ADDRESS PORT PROTO\" line each, for SECS (default %d).\n"
                   "ADDR: where the probe goes (default 255.255.255.255).\n"
                   "Exit status 1 when nothing answered.\n",
                   SS_DISCOVER_PORT, SS_DISCOVER_WAIT);
            return CLI_OK;
        default: return cli_option_error("discover ", c, argv);
        }
    }
    if (optind != argc)
        return cli_usage_error("discover ", "takes no arguments");
    ss_addr dst;
    if (resolve_to(to, port, &dst) != CLI_OK)
        return CLI_RUNTIME;
    ss_loop *loop;
    int found = ss_loop_new(&loop);
    if (found == 0) {
        found = ss_discover_probe(loop, &dst, (unsigned)(wait * 1000), disc_print, NULL);
        ss_loop_free(loop);
    }
    if (found < 0) {
        cli_error("discover: probe to %s:%d: %s", to, port, ss_strerror(found));
        return CLI_RUNTIME;
    }
    if (!found) {
        cli_error("no service answered within %.2f s", wait);
        return CLI_RUNTIME;
    }
    return CLI_OK;
}
