/* Shared logic for connect and listen (see nc_cli.h). */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/nc_cli.h"
#include "cli/sockopt_cli.h"
#include "sockstack/config.h"
#include "sockstack/err.h"

void nc_cli_opts_init(struct nc_cli_opts *o, const char *cmd)
{
    memset(o, 0, sizeof *o);
    o->cmd = cmd;
    ss_sockopts_init(&o->so);
    ss_nc_opts_init(&o->no);
    o->recv_size = SS_NC_RECV_SIZE;
    cli_tls_init(&o->tls);
}

int nc_cli_parse_opt(struct nc_cli_opts *o, int c, const char *arg, char **argv)
{
    switch (c) {
    case 'u': o->udp = true; return 0;
    case 'R': o->no.raw = o->raw_set = true; return 0;
    case 'S':
        if (cli_parse_u64("--recv-size", arg, 1, SS_NC_RECV_SIZE_MAX, &o->recv_size) < 0)
            return CLI_USAGE;
        o->recv_set = true;
        return 0;
    case '4': o->want4 = true; return 0;
    case '6': o->want6 = true; return 0;
    case 'x': o->no.hex = true; return 0;
    case 'i': o->info = true; return 0;
    case 'T':
        if (cli_stack_parse(o->cmd, arg, &o->stack_spec) != 0)
            return CLI_USAGE;
        o->use_stack = true;
        return 0;
    case ':':
    case '?':
        return cli_option_error(o->cmd, c, argv);
    default:
        if (cli_tls_parse(c, arg, &o->tls))
            return 0;
        switch (cli_sockopt_parse(c, arg, &o->so)) {
        case 1: return 0;
        case -1: return CLI_USAGE;
        }
        return cli_option_error(o->cmd, c, argv);
    }
}

int nc_cli_check_family(const struct nc_cli_opts *o, bool is_unix)
{
    if (o->want4 && o->want6)
        return cli_usage_error(o->cmd, "-4 and -6 exclude each other");
    if (is_unix && (o->want4 || o->want6))
        return cli_usage_error(o->cmd, "-4/-6 do not apply to unix: addresses");
    return 0;
}

int nc_cli_check_udp(const struct nc_cli_opts *o, bool is_unix)
{
    if (o->raw_set && !o->udp)
        return cli_usage_error(o->cmd, "--raw needs --udp");
    if (o->wait_set && !o->udp)
        return cli_usage_error(o->cmd, "--wait needs --udp");
    if (o->recv_set && !o->udp)
        return cli_usage_error(o->cmd, "--recv-size needs --udp");
    if (o->info && (o->udp || is_unix))
        return cli_usage_error(o->cmd, "--info is for TCP connections");
    if (o->tls.on && o->udp)
        return cli_usage_error(o->cmd, "TLS runs over streams: --tls* does not apply with --udp");
    return 0;
}

int nc_cli_check_stack(const struct nc_cli_opts *o, bool is_unix)
{
    if (o->use_stack && (o->want6 || is_unix))
        return cli_usage_error(o->cmd, "--stack is IPv4 only: %s does not apply",
                               o->want6 ? "-6" : "a unix: address");
    return 0;
}

int nc_cli_type(const struct nc_cli_opts *o)
{
    return o->udp ? SS_DGRAM : SS_STREAM;
}

int nc_cli_family(const struct nc_cli_opts *o)
{
    return o->want4 || o->use_stack ? AF_INET : o->want6 ? AF_INET6 : AF_UNSPEC;
}

int nc_cli_resolve(const struct nc_cli_opts *o, const char *host, const char *port,
                   bool passive, ss_addr *addrs, int cap)
{
    int n = ss_addr_resolve(host, port, nc_cli_family(o), nc_cli_type(o), passive,
                            addrs, cap);
    if (n < 0) {
        cli_error("%s: %s", host ? host : "*", ss_strerror(n));
        return -1;
    }
    return n;
}

int nc_cli_loop_new(ss_loop **loop)
{
    int err = ss_loop_new(loop);
    if (err < 0) {
        cli_error("event loop: %s", ss_strerror(err));
        return CLI_RUNTIME;
    }
    return 0;
}

int nc_cli_backend(const struct nc_cli_opts *o, ss_loop *loop, struct cli_stack *run,
                   const ss_backend **be)
{
    *be = ss_backend_kernel();
    if (o->use_stack) {
        if (cli_stack_start(loop, &o->stack_spec, NULL, NULL, true, run) != CLI_OK) {
            ss_loop_free(loop);
            return CLI_RUNTIME;
        }
        *be = run->be;
    }
    return CLI_OK;
}

void nc_cli_report_open(const char *verb, const ss_addr *a, const char *failed_opt,
                        int err)
{
    char where[SS_ADDR_STRLEN];
    if (!a || ss_addr_format(a, where, sizeof where) < 0)
        snprintf(where, sizeof where, "?");
    if (failed_opt)
        cli_error("%s: %s", failed_opt, ss_strerror(err));
    else if (err == SS_ELISTENING)
        cli_error("%s: another server is listening on %s", verb, where);
    else
        cli_error("%s %s: %s", verb, where, ss_strerror(err));
}

int nc_cli_run(ss_loop *loop)
{
    int err = ss_loop_run(loop);
    if (err < 0) {
        cli_error("event loop: %s", ss_strerror(err));
        return CLI_RUNTIME;
    }
    return 0;
}

void nc_cli_teardown(struct cli_stack *run, ss_loop *loop)
{
    cli_stack_stop(run, false);
    ss_loop_free(loop);
}

void nc_cli_addr_name(const ss_addr *a, char *buf, size_t cap)
{
    ss_addr v4 = ss_addr_unmapped(a);
    if (ss_addr_format(&v4, buf, cap) < 0)
        snprintf(buf, cap, "?");
}

void nc_cli_peer_name(ss_sock *s, char *buf, size_t cap)
{
    ss_addr a;
    if (!s || ss_sock_peer_addr(s, &a) < 0)
        snprintf(buf, cap, "?");
    else
        nc_cli_addr_name(&a, buf, cap);
}

void nc_cli_report_done(const ss_nc_event *ev, const char *peer)
{
    switch (ev->where) {
    case SS_NC_AT_INPUT:
        cli_error("read stdin: %s", ss_strerror(ev->err));
        break;
    case SS_NC_AT_OUTPUT:
        if (ev->err != -EPIPE)
            cli_error("write stdout: %s", ss_strerror(ev->err));
        break;
    case SS_NC_AT_SEND:
    case SS_NC_AT_RECV:
    default:
        if (ev->err == SS_ETLS || ev->err == SS_ETLSVERIFY) {
            char why[256];
            if (ss_tls_error(ev->sock, why, sizeof why) > 0) {
                cli_error("TLS with %s failed: %s", peer, why);
                break;
            }
        }
        cli_error("%s %s: %s", ev->where == SS_NC_AT_SEND ? "send" : "recv",
                  peer, ss_strerror(ev->err));
        break;
    }
}

void nc_cli_report_truncated(const ss_nc_event *ev)
{
    char from[SS_ADDR_STRLEN];
    if (ev->from)
        nc_cli_addr_name(ev->from, from, sizeof from);
    else
        snprintf(from, sizeof from, "?");
    cli_error("datagram from %s truncated to %zu bytes (--recv-size)", from,
              ev->len);
}

void nc_cli_print_info(ss_sock *s, const char *peer)
{
    ss_tcp_info ti;
    int err = ss_sock_tcp_info(s, &ti);
    if (err < 0) {
        cli_error("--info: %s", ss_strerror(err));
        return;
    }
    char block[1024];
    if (ss_tcp_info_format(&ti, block, sizeof block) < 0)
        return;
    /* One write: the block stays whole even next to other output. */
    fprintf(stderr, "%s  peer           %s\n", block, peer);
    fflush(stderr);
}
