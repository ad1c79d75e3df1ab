/* Shared printing for connect and listen (see nc_cli.h). */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/nc_cli.h"
#include "sockstack/err.h"

void nc_cli_addr_name(const ss_addr *a, char *buf, size_t cap)
{
    ss_addr v4 = *a;
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->sa;
    if (a->sa.ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
        struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = in6->sin6_port};
        memcpy(&in.sin_addr, &in6->sin6_addr.s6_addr[12], 4);
        memset(&v4, 0, sizeof v4);
        memcpy(&v4.sa, &in, sizeof in);
        v4.len = sizeof in;
    }
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
