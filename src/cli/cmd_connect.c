/* sockstack connect HOST PORT: a netcat-style client.
 *
 * stdin goes to the socket and the socket to stdout, binary-safe, through
 * the nc engine (src/apps/nc.c) on the reactor. TCP half-closes on stdin EOF
 * and ends when the peer closes; UDP sends one datagram per line (--raw: per
 * read) and ends --wait seconds after the last reply once stdin is done.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

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
            "Usage: sockstack connect [OPTIONS] HOST PORT\n"
            "       sockstack connect [OPTIONS] unix:/PATH\n"
            "\n"
            "Netcat-style client: stdin goes to the peer, what the peer sends goes\n"
            "to stdout, byte for byte. On stdin EOF a TCP connection is half-closed\n"
            "(the peer sees EOF) and its replies are printed until it closes; a\n"
            "peer that half-closes first still gets stdin until it ends.\n"
            "HOST is a name, an IPv4 address, an IPv6 address ([::1] or ::1), or\n"
            "unix:/PATH for a Unix socket (unix:@NAME: abstract namespace).\n"
            "\n"
            "Options:\n"
            "  -u, --udp              UDP (with unix: a Unix datagram socket): one\n"
            "                         datagram per stdin line, replies printed\n"
            "      --raw              UDP: one datagram per read of stdin, not per line\n"
            "      --wait SECS        UDP: after stdin EOF, wait until SECS pass without\n"
            "                         a reply, then exit (default 1; 0: do not wait)\n"
            "      --recv-size BYTES  UDP: longest datagram received whole (default\n"
            "                         65536); longer ones are cut and reported\n"
            "  -4                     IPv4 only\n"
            "  -6                     IPv6 only\n"
            "  -b, --bind ADDR        local address to send from (an IP, or unix:/PATH)\n"
            "  -x, --hex              print a hex dump (like hexdump -C) of what is\n"
            "                         received instead of the bytes\n"
            "  -i, --info             TCP: when the connection closes, print the\n"
            "                         kernel's TCP_INFO (state, RTT, cwnd, ...) on stderr\n"
            "  -v, --verbose          say when the connection is up\n"
            "  -h, --help             show this help\n"
            "%s"
            "\n"
            "%s"
            "\n"
            "%s"
            "  (--timeout also bounds each connection attempt.)\n"
            "\n"
            "Exit status: 0 when the conversation ended normally, 1 on a runtime\n"
            "error (connection refused, reset, ...), 2 on a usage error.\n",
            cli_stack_help, cli_tls_client_help, cli_sockopt_help);
}

struct conn {
    ss_loop *loop;
    ss_nc *nc;
    ss_sock *sock;
    ss_nc_dial *dial;
    bool info;
    char peer_name[SS_ADDR_STRLEN];
    ss_tls_ctx *tls;
    const char *servername; /* what the server's certificate must name */
    int rc;
};

static void on_nc(ss_nc *nc, const ss_nc_event *ev, void *arg)
{
    struct conn *c = arg;
    switch (ev->type) {
    case SS_NC_TRUNCATED:
        nc_cli_report_truncated(ev);
        break;
    case SS_NC_DONE:
        if (ev->err < 0) {
            nc_cli_report_done(ev, c->peer_name);
            c->rc = CLI_RUNTIME;
        }
        if (c->info)
            nc_cli_print_info(ev->sock, c->peer_name);
        ss_loop_stop(c->loop);
        break;
    default:
        break;
    }
}

static void on_dialled(ss_sock *s, int err, const ss_addr *failed,
                       const char *failed_opt, void *arg)
{
    struct conn *c = arg;
    if (!s) {
        nc_cli_report_open("connect", failed, failed_opt, err);
        c->rc = CLI_RUNTIME;
        ss_loop_stop(c->loop);
        return;
    }
    nc_cli_peer_name(s, c->peer_name, sizeof c->peer_name);
    cli_debug("connected to %s", c->peer_name);
    /* TLS: the handshake runs as soon as the engine watches the socket;
     * a certificate that does not verify ends the conversation (DONE). */
    if (c->tls && (err = ss_tls_wrap(c->tls, s, c->servername, &s)) < 0) {
        cli_error("connect: TLS: %s", ss_strerror(err));
        c->rc = CLI_RUNTIME;
        ss_loop_stop(c->loop);
        return;
    }
    c->sock = s;
    err = ss_nc_attach(c->nc, s);
    if (err < 0) {
        cli_error("connect: %s", ss_strerror(err));
        c->rc = CLI_RUNTIME;
        ss_loop_stop(c->loop);
    }
}

static void on_signal(ss_loop *loop, int signo, void *arg)
{
    ss_loop_stop(loop);
}

int cmd_connect(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"udp", no_argument, NULL, 'u'},
        {"raw", no_argument, NULL, 'R'},
        {"wait", required_argument, NULL, 'w'},
        {"recv-size", required_argument, NULL, 'S'},
        {"bind", required_argument, NULL, 'b'},
        {"hex", no_argument, NULL, 'x'},
        {"info", no_argument, NULL, 'i'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"stack", required_argument, NULL, 'T'},
        CLI_TLS_CLIENT_LONGOPTS,
        CLI_SOCKOPT_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    struct nc_cli_opts o;
    nc_cli_opts_init(&o, "connect ");
    struct cli_stack stack_run = {.fd = -1};
    const char *bind_host = NULL;
    double wait_s = SS_NC_WAIT_MS / 1000.0;

    optind = 1;
    opterr = 0;
    int c, rc;
    while ((c = cli_getopt(argc, argv, ":u46b:xivh", longopts)) != -1) {
        switch (c) {
        case 'w':
            if (cli_parse_double("--wait", optarg, 0, 86400, &wait_s) < 0)
                return CLI_USAGE;
            o.wait_set = true;
            break;
        case 'b': bind_host = optarg; break;
        case 'v': cli_log_level = CLI_LOG_DEBUG; break;
        case 'h': usage(stdout); return CLI_OK;
        default:
            if ((rc = nc_cli_parse_opt(&o, c, optarg, argv)) != 0)
                return rc;
            break;
        }
    }

    int nargs = argc - optind;
    const char *host = nargs > 0 ? argv[optind] : NULL;
    bool is_unix = host && !strncmp(host, "unix:", 5);
    const char *port = nargs > 1 ? argv[optind + 1] : NULL;
    if (!host)
        return cli_usage_error("connect ", "missing HOST and PORT");
    if (!is_unix && !port)
        return cli_usage_error("connect ", "missing PORT");
    if (nargs > (is_unix ? 1 : 2))
        return cli_usage_error("connect ", "unexpected argument '%s'",
                               argv[optind + (is_unix ? 1 : 2)]);
    if (port) {
        int p;
        if (cli_parse_int("PORT", port, 1, 65535, &p) < 0)
            return CLI_USAGE;
    }
    /* Conflicting or meaningless combinations, one line each. */
    if ((rc = nc_cli_check_family(&o, is_unix)) != 0 ||
        (rc = nc_cli_check_udp(&o, is_unix)) != 0)
        return rc;
    if (bind_host && is_unix != !strncmp(bind_host, "unix:", 5))
        return cli_usage_error("connect ", "--bind %s: not the same family as %s",
                               bind_host, host);
    if ((rc = nc_cli_check_stack(&o, is_unix)) != 0 ||
        (rc = cli_tls_check(&o.tls, false, "connect ")) != 0)
        return rc;

    int type = nc_cli_type(&o);
    int family = nc_cli_family(&o);
    ss_addr addrs[NC_CLI_MAX_ADDRS];
    int n = nc_cli_resolve(&o, host, port, false, addrs, NC_CLI_MAX_ADDRS);
    if (n < 0)
        return CLI_RUNTIME;
    ss_addr bind_addr;
    bool have_bind = false;
    if (bind_host) {
        int fam = family != AF_UNSPEC ? family : ss_addr_family(&addrs[0]);
        if (is_unix)
            fam = AF_UNSPEC;
        int m = ss_addr_resolve(bind_host, "0", fam, type, true, &bind_addr, 1);
        if (m < 0) {
            cli_error("--bind %s: %s", bind_host, ss_strerror(m));
            return CLI_RUNTIME;
        }
        have_bind = true;
        /* Only the addresses of the bound family can be reached. */
        int k = 0;
        for (int i = 0; i < n; i++)
            if (ss_addr_family(&addrs[i]) == ss_addr_family(&bind_addr))
                addrs[k++] = addrs[i];
        if (k == 0) {
            cli_error("--bind %s: no address of %s in that family", bind_host, host);
            return CLI_RUNTIME;
        }
        n = k;
    } else if (is_unix && o.udp) {
        /* A Unix datagram client needs a name of its own for replies:
         * Linux autobinds one in the abstract namespace for a bare family. */
        memset(&bind_addr, 0, sizeof bind_addr);
        bind_addr.sa.ss_family = AF_UNIX;
        bind_addr.len = sizeof(sa_family_t);
        have_bind = true;
    }

    o.no.wait_ms = (int)(wait_s * 1000.0 + 0.5);
    o.no.recv_size = (size_t)o.recv_size;

    struct conn cn = {.info = o.info, .rc = CLI_OK};
    char bare[256];
    cn.servername = o.tls.servername ? o.tls.servername
                    : is_unix         ? NULL
                                      : cli_tls_host_name(host, bare, sizeof bare);
    if (cli_tls_ctx(&o.tls, false, &cn.tls) != 0)
        return CLI_RUNTIME;
    if (nc_cli_loop_new(&cn.loop) != 0) {
        ss_tls_ctx_free(cn.tls);
        return CLI_RUNTIME;
    }
    ss_loop_signal_add(cn.loop, SIGINT, on_signal, &cn);
    ss_loop_signal_add(cn.loop, SIGTERM, on_signal, &cn);
    const ss_backend *be;
    if (nc_cli_backend(&o, cn.loop, &stack_run, &be) != CLI_OK) {
        ss_tls_ctx_free(cn.tls);
        return CLI_RUNTIME;
    }
    int err = ss_nc_new(cn.loop, &o.no, on_nc, &cn, &cn.nc);
    if (err == 0)
        err = ss_nc_dial_start(cn.loop, be, addrs, n, type, &o.so,
                               have_bind ? &bind_addr : NULL, on_dialled, &cn,
                               &cn.dial);
    if (err < 0) {
        cli_error("connect: %s", ss_strerror(err));
        cn.rc = CLI_RUNTIME;
    } else if (nc_cli_run(cn.loop) != 0) {
        cn.rc = CLI_RUNTIME;
    }
    ss_nc_free(cn.nc);
    ss_nc_dial_free(cn.dial);
    ss_sock_close(cn.sock);
    nc_cli_teardown(&stack_run, cn.loop);
    ss_tls_ctx_free(cn.tls);
    return cn.rc;
}
