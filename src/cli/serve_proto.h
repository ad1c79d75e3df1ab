/* serve rows and options from the proto work: --key-file for any stream
 * service (the authentication layer), and the exec and files services. */
#ifndef SS_CLI_SERVE_PROTO_H
#define SS_CLI_SERVE_PROTO_H

#include "cli/serve.h"
#include "sockstack/auth.h"

/* getopt value of --key-file in any row that takes it. */
#define SERVE_OPT_KEYFILE (SERVE_OPT_SERVICE + 0x100)
#define SERVE_OPT_AUTH_TIMEOUT (SERVE_OPT_SERVICE + 0x101)
#define SERVE_KEYFILE_LONGOPT {"key-file", required_argument, NULL, SERVE_OPT_KEYFILE}, \
    {"auth-timeout", required_argument, NULL, SERVE_OPT_AUTH_TIMEOUT}
#define SERVE_KEYFILE_HELP_LINE \
    "      --key-file FILE      require the shared-key handshake (HMAC-SHA256\n" \
    "                           challenge-response) before the service\n"
#define SERVE_AUTH_TIMEOUT_HELP \
    "      --auth-timeout SECS  time to finish the handshake (default 10)\n"
#define SERVE_KEYFILE_HELP SERVE_KEYFILE_HELP_LINE SERVE_AUTH_TIMEOUT_HELP

/* Remember --key-file's argument. */
void serve_keyfile_option(const char *path);
/* --key-file and --auth-timeout for any row: 0 or CLI_USAGE; 1 if opt is
 * neither. */
int serve_auth_option(int opt, const char *arg);
/* If --key-file was given: load the key (printing why not) and put the
 * handshake in front of sc->svc. 0 or an exit code. */
int serve_auth_wrap(struct serve_ctx *sc, enum ss_auth_mode mode);
void serve_auth_cleanup(struct serve_ctx *sc);
/* Load a key file for a client or server, printing a clear error. */
int cli_load_key(const char *path, ss_auth_key *key);

/* The rows' parts (serve_proto.c) and the rows themselves, as
 * initialisers for serve_services[]. */
extern const struct option serve_exec_longopts[], serve_files_longopts[];
extern const char serve_exec_help[], serve_files_help[];
int serve_exec_option(struct serve_ctx *sc, int opt, const char *arg);
int serve_exec_setup(struct serve_ctx *sc);
int serve_files_option(struct serve_ctx *sc, int opt, const char *arg);
int serve_files_setup(struct serve_ctx *sc);
void serve_files_cleanup(struct serve_ctx *sc);

#define SERVE_ROW_EXEC                                                         \
    {                                                                          \
        .name = "exec",                                                        \
        .summary = "run commands for authenticated clients (sockstack exec)",  \
        .kinds = SERVE_STREAM, .default_kind = SERVE_STREAM,                   \
        .longopts = serve_exec_longopts, .help = serve_exec_help,              \
        .option = serve_exec_option, .setup = serve_exec_setup,                \
        .cleanup = serve_auth_cleanup,                                         \
    }
#define SERVE_ROW_FILES                                                        \
    {                                                                          \
        .name = "files",                                                       \
        .summary = "file transfer for authenticated clients (put, get, ls)",   \
        .kinds = SERVE_STREAM, .default_kind = SERVE_STREAM,                   \
        .longopts = serve_files_longopts, .help = serve_files_help,            \
        .option = serve_files_option, .setup = serve_files_setup,              \
        .cleanup = serve_files_cleanup,                                        \
    }

#endif
