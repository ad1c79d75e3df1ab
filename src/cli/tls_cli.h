/* The TLS options every server and client accepts, one parser for all.
 *
 * Servers (serve SERVICE, listen): --tls-cert FILE --tls-key FILE turn TLS
 * on; --tls-ca FILE then requires a client certificate signed by it.
 * Clients (connect, exec, put, get, ls, chat): --tls turns TLS on;
 * --tls-ca FILE (default: the system's store), --tls-insecure (tests only),
 * --tls-servername NAME, and --tls-cert/--tls-key to show a client
 * certificate. Any --tls-* option of a client implies --tls.
 *
 * Usage in a subcommand: add CLI_TLS_CLIENT_LONGOPTS (or _SERVER_) to the
 * getopt table; in `default:` call cli_tls_parse like cli_sockopt_parse;
 * after parsing, cli_tls_check for conflicts, then cli_tls_ctx.
 */
#ifndef SS_CLI_TLS_H
#define SS_CLI_TLS_H

#include <getopt.h>
#include <stdbool.h>

#include "sockstack/tls.h"

enum {
    CLI_TLS_FIRST = 0x1100,
    CLI_OPT_TLS = CLI_TLS_FIRST,
    CLI_OPT_TLS_CERT,
    CLI_OPT_TLS_KEY,
    CLI_OPT_TLS_CA,
    CLI_OPT_TLS_INSECURE,
    CLI_OPT_TLS_SERVERNAME,
    CLI_TLS_END,
};

#define CLI_TLS_SERVER_LONGOPTS                                      \
    {"tls-cert", required_argument, NULL, CLI_OPT_TLS_CERT},         \
    {"tls-key", required_argument, NULL, CLI_OPT_TLS_KEY},           \
    {"tls-ca", required_argument, NULL, CLI_OPT_TLS_CA}

#define CLI_TLS_CLIENT_LONGOPTS                                      \
    {"tls", no_argument, NULL, CLI_OPT_TLS},                         \
    CLI_TLS_SERVER_LONGOPTS,                                         \
    {"tls-insecure", no_argument, NULL, CLI_OPT_TLS_INSECURE},       \
    {"tls-servername", required_argument, NULL, CLI_OPT_TLS_SERVERNAME}

struct cli_tls {
    bool on;
    ss_tls_opts o;
    const char *servername;
};

extern const char cli_tls_server_help[];
extern const char cli_tls_client_help[];

void cli_tls_init(struct cli_tls *t);
/* 1: opt was a TLS option (recorded), 0: not one. */
int cli_tls_parse(int opt, const char *arg, struct cli_tls *t);
/* Conflicts and missing halves, one line each: 0, or CLI_USAGE after the
 * message (cmd as for cli_usage_error, e.g. "serve "). */
int cli_tls_check(struct cli_tls *t, bool server, const char *cmd);
/* The context (NULL when TLS is off): 0, or CLI_RUNTIME after printing
 * why (which file, what is wrong with it). */
int cli_tls_ctx(const struct cli_tls *t, bool server, ss_tls_ctx **out);
/* The name a server's certificate must show for HOST as typed: "[::1]"
 * becomes "::1" (into buf); other names are returned as they are. */
const char *cli_tls_host_name(const char *host, char *buf, size_t cap);
/* Print "sockstack: WHAT: REASON" for a TLS socket that failed with err
 * (the reason from the socket when it has one). */
void cli_tls_report(const char *what, ss_sock *s, int err);

#endif
