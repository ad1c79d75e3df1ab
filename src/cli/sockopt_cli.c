/* Parsing of the shared socket options (see sockopt_cli.h). */
#include <limits.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/sockopt_cli.h"
#include "sockstack/err.h"

const char cli_sockopt_help[] =
    "Socket options:\n"
    "      --reuseaddr          SO_REUSEADDR (on by default for servers)\n"
    "      --no-reuseaddr       turn SO_REUSEADDR off\n"
    "      --reuseport          SO_REUSEPORT\n"
    "      --sndbuf BYTES       SO_SNDBUF (suffix k, m or g allowed)\n"
    "      --rcvbuf BYTES       SO_RCVBUF (suffix k, m or g allowed)\n"
    "      --keepalive[=IDLE,INTVL,CNT]\n"
    "                           SO_KEEPALIVE, optionally with TCP_KEEPIDLE and\n"
    "                           TCP_KEEPINTVL (seconds) and TCP_KEEPCNT\n"
    "      --linger SECS        SO_LINGER on with this timeout (0: close sends RST)\n"
    "      --nodelay            TCP_NODELAY (turn Nagle's algorithm off)\n"
    "      --timeout SECS       SO_RCVTIMEO and SO_SNDTIMEO (decimals allowed)\n"
    "      --broadcast          SO_BROADCAST (UDP over IPv4)\n"
    "      --ttl N              IP_TTL / IPV6_UNICAST_HOPS (1-255)\n"
    "      --tos N              IP_TOS / IPV6_TCLASS (0-255, decimal or 0x..)\n"
    "      --bind-device IF     SO_BINDTODEVICE\n"
    "      --mss BYTES          TCP_MAXSEG (88-65535)\n";

/* A buffer size: bytes with an optional k, m or g suffix (powers of
 * 1024), 1 .. INT_MAX. */
static int parse_bytes(const char *opt, const char *s, int *out)
{
    uint64_t v;
    if (cli_parse_scaled(opt, s, 1024, 1, INT_MAX, &v) < 0)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_keepalive(const char *arg, ss_sockopts *o)
{
    o->keepalive = 1;
    if (!arg)
        return 0;
    char buf[64];
    if (strlen(arg) >= sizeof buf) {
        cli_error("--keepalive: '%s' is not IDLE,INTVL,CNT", arg);
        return -1;
    }
    strcpy(buf, arg);
    char *parts[4];
    int n = 0;
    for (char *p = buf, *save = NULL, *t; n < 4 && (t = strtok_r(p, ",", &save)); p = NULL)
        parts[n++] = t;
    if (n != 3 || strchr(arg, ',') == arg || strstr(arg, ",,")) {
        cli_error("--keepalive: '%s' is not IDLE,INTVL,CNT (three numbers)", arg);
        return -1;
    }
    if (cli_parse_int("--keepalive IDLE", parts[0], 1, 32767, &o->keepidle) < 0 ||
        cli_parse_int("--keepalive INTVL", parts[1], 1, 32767, &o->keepintvl) < 0 ||
        cli_parse_int("--keepalive CNT", parts[2], 1, 127, &o->keepcnt) < 0)
        return -1;
    return 0;
}

int cli_sockopt_parse(int opt, const char *arg, ss_sockopts *o)
{
    double d;
    switch (opt) {
    case CLI_OPT_REUSEADDR:
        o->reuseaddr = 1;
        return 1;
    case CLI_OPT_NO_REUSEADDR:
        o->reuseaddr = 0;
        return 1;
    case CLI_OPT_REUSEPORT:
        o->reuseport = 1;
        return 1;
    case CLI_OPT_SNDBUF:
        return parse_bytes("--sndbuf", arg, &o->sndbuf) < 0 ? -1 : 1;
    case CLI_OPT_RCVBUF:
        return parse_bytes("--rcvbuf", arg, &o->rcvbuf) < 0 ? -1 : 1;
    case CLI_OPT_KEEPALIVE:
        return parse_keepalive(arg, o) < 0 ? -1 : 1;
    case CLI_OPT_LINGER:
        return cli_parse_int("--linger", arg, 0, 65535, &o->linger) < 0 ? -1 : 1;
    case CLI_OPT_NODELAY:
        o->nodelay = 1;
        return 1;
    case CLI_OPT_TIMEOUT:
        if (cli_parse_double("--timeout", arg, 0.001, 2147483.0, &d) < 0)
            return -1;
        o->timeout_ms = (int)(d * 1000.0 + 0.5);
        return 1;
    case CLI_OPT_BROADCAST:
        o->broadcast = 1;
        return 1;
    case CLI_OPT_TTL:
        return cli_parse_int("--ttl", arg, 1, 255, &o->ttl) < 0 ? -1 : 1;
    case CLI_OPT_TOS: {
        char *end;
        long v = arg && *arg ? strtol(arg, &end, 0) : -1;
        if (!arg || !*arg || *end || v < 0 || v > 255) {
            cli_error("--tos: '%s' is not a number from 0 to 255", arg ? arg : "");
            return -1;
        }
        o->tos = (int)v;
        return 1;
    }
    case CLI_OPT_BIND_DEVICE:
        if (!arg || !*arg || strlen(arg) >= IFNAMSIZ) {
            cli_error("--bind-device: '%s' is not an interface name (1-%d characters)",
                      arg ? arg : "", IFNAMSIZ - 1);
            return -1;
        }
        snprintf(o->bind_device, sizeof o->bind_device, "%s", arg);
        return 1;
    case CLI_OPT_MSS:
        return cli_parse_int("--mss", arg, 88, 65535, &o->mss) < 0 ? -1 : 1;
    default:
        return 0;
    }
}

void cli_sockopt_report(const char *what, int err, const char *failed)
{
    if (failed)
        cli_error("%s: %s: %s", what, failed, ss_strerror(err));
    else
        cli_error("%s: %s", what, ss_strerror(err));
}
