/* Shared by the authenticated clients (exec, put, get, ls): their common
 * options (TLS, socket options, --stack, --connect-timeout) through one
 * parser, and the connection: dial (sock/ on the reactor), TLS, then the
 * mutual HMAC handshake -- inside TLS when both are on. */
#ifndef SS_CLI_CLIENT_H
#define SS_CLI_CLIENT_H

#include <getopt.h>
#include <stdbool.h>

#include "cli/sockopt_cli.h"
#include "cli/stack_opt.h"
#include "cli/tls_cli.h"
#include "sockstack/dial.h"

enum {
    CLI_OPT_CLIENT_STACK = 0x1180,
    CLI_OPT_CONNECT_TIMEOUT,
};

#define CLI_CLIENT_LONGOPTS                                                   \
    CLI_TLS_CLIENT_LONGOPTS,                                                  \
    CLI_SOCKOPT_LONGOPTS,                                                     \
    {"stack", required_argument, NULL, CLI_OPT_CLIENT_STACK},                 \
    {"connect-timeout", required_argument, NULL, CLI_OPT_CONNECT_TIMEOUT}

/* The --help lines of the options above (connection, TLS, socket). */
extern const char cli_client_help[];

struct cli_client_opts {
    ss_sockopts so;
    struct cli_tls tls;
    bool use_stack;
    struct cli_stack_spec stack_spec;
    int connect_timeout_ms;
};

void cli_client_opts_init(struct cli_client_opts *o);
/* One getopt result: 1 taken, 0 not ours, -1 bad value (message printed). */
int cli_client_parse(int c, const char *arg, struct cli_client_opts *o, const char *cmd);
/* Conflicts: 0, or CLI_USAGE after a message. */
int cli_client_check(struct cli_client_opts *o, const char *cmd);

/* A connected, authenticated conversation. */
struct cli_session {
    ss_loop *loop;
    ss_stream st;
    ss_tls_ctx *tls;
    struct cli_stack stack;
};

/* Connect to HOST PORT, start TLS if asked, load the key and run the mutual
 * handshake. Returns 0, or -1 after printing why (s is then closed). */
int cli_connect_auth(const char *host, const char *port, const char *keyfile,
                     const struct cli_client_opts *o, struct cli_session *s);
void cli_session_close(struct cli_session *s);

#endif
