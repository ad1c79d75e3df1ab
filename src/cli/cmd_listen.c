/* sockstack listen PORT: a netcat-style one-peer listener.
 *
 * TCP: accept one peer and bridge stdin/stdout with it (nc engine); with
 * --keep-open, accept the next one after it leaves (others wait in the
 * backlog meanwhile). UDP: print every datagram; stdin lines go to the last
 * sender. Runs until the peer leaves (TCP without --keep-open) or until
 * SIGINT/SIGTERM.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/nc_cli.h"
#include "cli/sockopt_cli.h"
#include "cli/stack_opt.h"
#include "sockstack/config.h"
#include "sockstack/err.h"
#include "sockstack/nc.h"
#include "sockstack/sock.h"


static void usage(FILE *out)
{
    fprintf(out,
            "Usage: sockstack listen [OPTIONS] PORT\n"
            "       sockstack listen [OPTIONS] --port PORT\n"
            "       sockstack listen [OPTIONS] --bind unix:/PATH\n"
            "\n"
            "Netcat-style listener for one peer at a time: what the peer sends goes\n"
            "to stdout, stdin goes to the peer, so two people can talk across two\n"
            "terminals (the other runs 'sockstack connect HOST PORT'). Prints\n"
            "'listening on ADDR:PORT (tcp)' on stderr when ready (PORT 0 picks a\n"
            "free port and prints it) and 'connection from ADDR:PORT' per peer.\n"
            "\n"
            "Options:\n"
            "  -p, --port PORT        port to listen on (or give PORT as argument)\n"
            "  -b, --bind ADDR        local address (default: every address);\n"
            "                         unix:/PATH for a Unix socket (removed on exit)\n"
            "  -u, --udp              UDP (with unix: a Unix datagram socket): print\n"
            "                         each datagram; stdin lines go to the last sender\n"
            "      --raw              UDP: one datagram per read of stdin, not per line\n"
            "      --recv-size BYTES  UDP: longest datagram received whole (default\n"
            "                         65536); longer ones are cut and reported\n"
            "  -k, --keep-open        TCP: after a peer leaves, accept the next one\n"
            "  -4                     IPv4 only\n"
            "  -6                     IPv6 only\n"
            "  -x, --hex              print a hex dump (like hexdump -C) of what is\n"
            "                         received instead of the bytes\n"
            "  -i, --info             TCP: when a connection closes, print the kernel's\n"
            "                         TCP_INFO (state, RTT, cwnd, ...) on stderr\n"
            "  -h, --help             show this help\n"
            "%s"
            "                         (listens on the stack's ADDR unless --bind)\n"
            "\n"
            "%s"
            "\n"
            "%s"
            "\n"
            "Exit status: 0 when the peer left (or on SIGINT/SIGTERM), 1 on a runtime\n"
            "error (address in use, ...), 2 on a usage error.\n",
            cli_stack_help, cli_tls_server_help, cli_sockopt_help);
}

struct lsn {
    ss_loop *loop;
    ss_nc *nc;
    ss_sock *listener;
    ss_sock *peer;
    bool keep_open;
    bool info;
    char peer_name[SS_ADDR_STRLEN];
    ss_tls_ctx *tls;
    bool udp;
    int rc;
};

static void on_accept(ss_sock *s, unsigned events, void *arg);

static void on_nc(ss_nc *nc, const ss_nc_event *ev, void *arg)
{
    struct lsn *l = arg;
    char from[SS_ADDR_STRLEN];
    switch (ev->type) {
    case SS_NC_TRUNCATED:
        nc_cli_report_truncated(ev);
        break;
    case SS_NC_NEW_SENDER:
        nc_cli_addr_name(ev->from, from, sizeof from);
        fprintf(stderr, "datagrams from %s (replies go there)\n", from);
        snprintf(l->peer_name, sizeof l->peer_name, "%s", from);
        break;
    case SS_NC_DONE:
        if (ev->err < 0) {
            nc_cli_report_done(ev, l->peer_name);
            l->rc = CLI_RUNTIME;
        }
        if (l->info)
            nc_cli_print_info(ev->sock, l->peer_name);
        if (ev->sock == l->peer) {
            ss_sock_close(l->peer);
            l->peer = NULL;
        }
        if (l->udp || !l->keep_open || ev->where == SS_NC_AT_OUTPUT) {
            ss_loop_stop(l->loop);
            break;
        }
        l->rc = CLI_OK; /* one peer's failure does not end the service */
        if (ss_sock_watch(l->listener, l->loop, SS_READ, on_accept, l) < 0)
            ss_loop_stop(l->loop);
        break;
    default:
        break;
    }
}

static void on_accept(ss_sock *s, unsigned events, void *arg)
{
    struct lsn *l = arg;
    ss_addr peer;
    ss_sock *c;
    int err = ss_sock_accept(s, &c, &peer);
    if (err == -EAGAIN || err == -ECONNABORTED || err == -EINTR)
        return;
    if (err < 0) {
        cli_error("accept: %s", ss_strerror(err));
        l->rc = CLI_RUNTIME;
        ss_loop_stop(l->loop);
        return;
    }
    char name[SS_ADDR_STRLEN];
    nc_cli_addr_name(&peer, name, sizeof name);
    fprintf(stderr, "connection from %s\n", name);
    snprintf(l->peer_name, sizeof l->peer_name, "%s", name);
    /* One peer at a time: the next ones wait in the backlog. */
    ss_sock_unwatch(s);
    if (!l->keep_open) {
        ss_sock_close(l->listener);
        l->listener = NULL;
    }
    if (l->tls && (err = ss_tls_wrap(l->tls, c, NULL, &c)) < 0) {
        cli_error("accept: TLS: %s", ss_strerror(err));
        l->rc = CLI_RUNTIME;
        ss_loop_stop(l->loop);
        return;
    }
    l->peer = c;
    err = ss_nc_attach(l->nc, c);
    if (err < 0) {
        cli_error("accept: %s", ss_strerror(err));
        l->rc = CLI_RUNTIME;
        ss_loop_stop(l->loop);
    }
}

static void on_signal(ss_loop *loop, int signo, void *arg)
{
    ss_loop_stop(loop);
}

/* Open the listener on the first address that works (a wildcard IPv6
 * address first: it takes IPv4 peers too). */
static int open_listener(const ss_backend *be, ss_addr *addrs, int n, int type,
                         const ss_sockopts *so,
                         ss_sock **out, ss_addr *used, const char **failed_opt)
{
    int err = -EADDRNOTAVAIL;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n; i++) {
            bool v6 = ss_addr_family(&addrs[i]) == AF_INET6;
            if ((pass == 0) != v6)
                continue;
            err = ss_sock_listen_on(be, &addrs[i], type, so,
                                    SS_LISTEN_BACKLOG, out, failed_opt);
            if (err == 0) {
                *used = addrs[i];
                return 0;
            }
            if (*failed_opt)
                return err;
        }
    }
    return err;
}

int cmd_listen(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"port", required_argument, NULL, 'p'},
        {"bind", required_argument, NULL, 'b'},
        {"udp", no_argument, NULL, 'u'},
        {"raw", no_argument, NULL, 'R'},
        {"recv-size", required_argument, NULL, 'S'},
        {"keep-open", no_argument, NULL, 'k'},
        {"hex", no_argument, NULL, 'x'},
        {"info", no_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {"stack", required_argument, NULL, 'T'},
        CLI_TLS_SERVER_LONGOPTS,
        CLI_SOCKOPT_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    struct nc_cli_opts o;
    nc_cli_opts_init(&o, "listen ");
    bool keep = false;
    struct cli_stack stack_run = {.fd = -1};
    const char *bind_host = NULL, *port_opt = NULL;

    optind = 1;
    opterr = 0;
    int c, rc;
    while ((c = cli_getopt(argc, argv, ":p:b:u46kxih", longopts)) != -1) {
        switch (c) {
        case 'p': port_opt = optarg; break;
        case 'b': bind_host = optarg; break;
        case 'k': keep = true; break;
        case 'h': usage(stdout); return CLI_OK;
        default:
            if ((rc = nc_cli_parse_opt(&o, c, optarg, argv)) != 0)
                return rc;
            break;
        }
    }

    int nargs = argc - optind;
    bool is_unix = bind_host && !strncmp(bind_host, "unix:", 5);
    if (nargs > 1)
        return cli_usage_error("listen ", "unexpected argument '%s'", argv[optind + 1]);
    const char *port = nargs == 1 ? argv[optind] : port_opt;
    if (nargs == 1 && port_opt && strcmp(port_opt, argv[optind]) != 0)
        return cli_usage_error("listen ", "PORT %s and --port %s disagree",
                               argv[optind], port_opt);
    if (!port && !is_unix)
        return cli_usage_error("listen ", "missing PORT");
    if (port && is_unix)
        return cli_usage_error("listen ", "a PORT does not apply to --bind unix:");
    if (port) {
        int p;
        if (cli_parse_int(port_opt && nargs == 0 ? "--port" : "PORT", port, 0, 65535, &p) < 0)
            return CLI_USAGE;
    }
    if ((rc = nc_cli_check_family(&o, is_unix)) != 0)
        return rc;
    if (keep && o.udp)
        return cli_usage_error("listen ", "--keep-open is for TCP (a UDP listener "
                                          "already hears every sender)");
    if ((rc = nc_cli_check_udp(&o, is_unix)) != 0 ||
        (rc = nc_cli_check_stack(&o, is_unix)) != 0 ||
        (rc = cli_tls_check(&o.tls, true, "listen ")) != 0)
        return rc;
    if (o.use_stack && !bind_host)
        bind_host = cli_stack_addr_str(&o.stack_spec);

    bool udp = o.udp;
    int type = nc_cli_type(&o);
    ss_addr addrs[NC_CLI_MAX_ADDRS];
    int n = nc_cli_resolve(&o, bind_host, port, true, addrs, NC_CLI_MAX_ADDRS);
    if (n < 0)
        return CLI_RUNTIME;
    /* Servers restart on a port in TIME-WAIT without waiting a minute. */
    if (o.so.reuseaddr < 0 && !is_unix)
        o.so.reuseaddr = 1;

    struct lsn l = {.keep_open = keep, .info = o.info, .udp = udp, .rc = CLI_OK};
    if (cli_tls_ctx(&o.tls, true, &l.tls) != 0)
        return CLI_RUNTIME;
    if (nc_cli_loop_new(&l.loop) != 0) {
        ss_tls_ctx_free(l.tls);
        return CLI_RUNTIME;
    }
    const ss_backend *be;
    if (nc_cli_backend(&o, l.loop, &stack_run, &be) != CLI_OK) {
        ss_tls_ctx_free(l.tls);
        return CLI_RUNTIME;
    }
    ss_addr used;
    const char *failed_opt = NULL;
    int err = open_listener(be, addrs, n, type, &o.so, &l.listener, &used, &failed_opt);
    if (err < 0) {
        nc_cli_report_open("listen", &addrs[0], failed_opt, err);
        nc_cli_teardown(&stack_run, l.loop);
        ss_tls_ctx_free(l.tls);
        return CLI_RUNTIME;
    }
    ss_addr local;
    char name[SS_ADDR_STRLEN];
    if (ss_sock_local_addr(l.listener, &local) < 0 || is_unix)
        local = used;
    if (ss_addr_format(&local, name, sizeof name) < 0)
        snprintf(name, sizeof name, "?");
    const char *proto = is_unix ? (udp ? "unix-dgram" : "unix-stream") : udp ? "udp" : "tcp";

    ss_loop_signal_add(l.loop, SIGINT, on_signal, &l);
    ss_loop_signal_add(l.loop, SIGTERM, on_signal, &l);
    o.no.reply_to_sender = udp;
    o.no.end_on_peer_eof = true; /* the peer left: serve the next or exit */
    o.no.wait_ms = -1;
    o.no.recv_size = (size_t)o.recv_size;
    err = ss_nc_new(l.loop, &o.no, on_nc, &l, &l.nc);
    if (err == 0) {
        if (udp)
            err = ss_nc_attach(l.nc, l.listener);
        else
            err = ss_sock_watch(l.listener, l.loop, SS_READ, on_accept, &l);
    }
    if (err < 0) {
        cli_error("listen: %s", ss_strerror(err));
        l.rc = CLI_RUNTIME;
    } else {
        fprintf(stderr, "listening on %s (%s)\n", name, proto);
        fflush(stderr);
        if (nc_cli_run(l.loop) != 0)
            l.rc = CLI_RUNTIME;
    }
    ss_nc_free(l.nc);
    ss_sock_close(l.peer);
    ss_sock_close(l.listener);
    nc_cli_teardown(&stack_run, l.loop);
    ss_tls_ctx_free(l.tls);
    if (is_unix) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)&used.sa;
        if (un->sun_path[0] != '\0')
            unlink(un->sun_path); /* we created it */
    }
    return l.rc;
}
