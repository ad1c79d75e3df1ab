/* The socket options every client and server accepts on the command line.
 *
 * Usage in a subcommand:
 *   static const struct option longopts[] = {
 *       {"udp", no_argument, NULL, 'u'}, ...,
 *       CLI_SOCKOPT_LONGOPTS,
 *       {NULL, 0, NULL, 0}};
 *   ...
 *   default:
 *       switch (cli_sockopt_parse(c, optarg, &sockopts)) {
 *       case 1: continue;          // it was a socket option
 *       case -1: return CLI_USAGE; // bad value, message printed
 *       }
 *       return cli_usage_error(...);
 */
#ifndef SS_CLI_SOCKOPT_H
#define SS_CLI_SOCKOPT_H

#include <getopt.h>

#include "sockstack/sock.h"

enum {
    CLI_SOCKOPT_FIRST = 0x1000,
    CLI_OPT_REUSEADDR = CLI_SOCKOPT_FIRST,
    CLI_OPT_NO_REUSEADDR,
    CLI_OPT_REUSEPORT,
    CLI_OPT_SNDBUF,
    CLI_OPT_RCVBUF,
    CLI_OPT_KEEPALIVE,
    CLI_OPT_LINGER,
    CLI_OPT_NODELAY,
    CLI_OPT_TIMEOUT,
    CLI_OPT_BROADCAST,
    CLI_OPT_TTL,
    CLI_OPT_TOS,
    CLI_OPT_BIND_DEVICE,
    CLI_OPT_MSS,
    CLI_SOCKOPT_END,
};

#define CLI_SOCKOPT_LONGOPTS                                        \
    {"reuseaddr", no_argument, NULL, CLI_OPT_REUSEADDR},            \
    {"no-reuseaddr", no_argument, NULL, CLI_OPT_NO_REUSEADDR},      \
    {"reuseport", no_argument, NULL, CLI_OPT_REUSEPORT},            \
    {"sndbuf", required_argument, NULL, CLI_OPT_SNDBUF},            \
    {"rcvbuf", required_argument, NULL, CLI_OPT_RCVBUF},            \
    {"keepalive", optional_argument, NULL, CLI_OPT_KEEPALIVE},      \
    {"linger", required_argument, NULL, CLI_OPT_LINGER},            \
    {"nodelay", no_argument, NULL, CLI_OPT_NODELAY},                \
    {"timeout", required_argument, NULL, CLI_OPT_TIMEOUT},          \
    {"broadcast", no_argument, NULL, CLI_OPT_BROADCAST},            \
    {"ttl", required_argument, NULL, CLI_OPT_TTL},                  \
    {"tos", required_argument, NULL, CLI_OPT_TOS},                  \
    {"bind-device", required_argument, NULL, CLI_OPT_BIND_DEVICE},  \
    {"mss", required_argument, NULL, CLI_OPT_MSS}

/* The --help block describing the options above. */
extern const char cli_sockopt_help[];

/* Parse one getopt result into o: 1 if opt was a socket option (parsed),
 * 0 if it is not one of ours, -1 if its value is invalid (message printed,
 * naming the option). */
int cli_sockopt_parse(int opt, const char *arg, ss_sockopts *o);

/* Print "sockstack: OPTION: reason" for a failure of ss_sock_set_opts or
 * the convenience openers (failed may be NULL). */
void cli_sockopt_report(const char *what, int err, const char *failed);

#endif
