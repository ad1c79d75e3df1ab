/* Shared helpers for the sockstack CLI: the only code that prints or exits.
 *
 * Exit codes: 0 success, 1 runtime error, 2 usage error, 3 put/get refused
 * to replace a file (no --force); exec: the remote command's status. Each subcommand
 * has its own option parser and --help; numbers are parsed with bounds and a
 * message that names the option.
 */
#ifndef SS_CLI_H
#define SS_CLI_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* CLI_EXISTS: put/get would replace a file and --force was not given. */
enum { CLI_OK = 0, CLI_RUNTIME = 1, CLI_USAGE = 2, CLI_EXISTS = 3 };

/* One subcommand: `sockstack NAME ...`. fn gets argv with argv[0] == NAME. */
struct cli_cmd {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
};

/* Log verbosity, set by --quiet / --verbose. */
enum { CLI_LOG_QUIET = 0, CLI_LOG_INFO = 1, CLI_LOG_DEBUG = 2 };
extern int cli_log_level;

/* "sockstack: MESSAGE" on stderr, always shown. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Timestamped log line on stderr, shown at CLI_LOG_INFO and above. */
void cli_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Timestamped log line on stderr, shown only with --verbose. */
void cli_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_vlog(int level, const char *fmt, va_list ap);
/* The server framework's log (ss_server_opts.log) for every command that
 * runs servers (serve, stack up): its errors through cli_error, warnings
 * and info through cli_log, per-connection lines (each names the service,
 * the peer and what failed) through cli_debug. Thread-safe. */
void cli_server_log(int level, const char *msg, void *arg);
/* Set once cli_server_log has printed an error. */
extern volatile int cli_server_errors;

/* Parse an unsigned integer within [min, max] for option OPT; on failure
 * print a message naming OPT and return -1. */
int cli_parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max,
                  uint64_t *out);
int cli_parse_int(const char *opt, const char *s, int min, int max, int *out);
/* A whole number with an optional suffix k, M or G (any case) multiplying
 * it by base, base^2 or base^3 -- 1024 for sizes (64K), 1000 for rates
 * (10M) -- between min and max: 0, or -1 after a message naming opt. */
int cli_parse_scaled(const char *opt, const char *s, unsigned base, uint64_t min,
                     uint64_t max, uint64_t *out);
/* source's pattern, "prng" (false) or "zero" (true): 0, or -1 after a
 * message naming opt. */
int cli_parse_source_pattern(const char *opt, const char *s, bool *zeros);
/* Parse a finite decimal number within [min, max]. */
int cli_parse_double(const char *opt, const char *s, double min, double max,
                     double *out);

/* One drawing (viz.h) into path: CLI_OK, or CLI_RUNTIME after a message
 * naming opt. */
struct ss_viz;
int cli_write_view(const char *opt, const char *path,
                   int (*fn)(const struct ss_viz *, FILE *), const struct ss_viz *v);

/* Columns of the terminal on stdout, else $COLUMNS, else 80. */
int cli_term_width(void);

/* One line, "sockstack: CMD: MESSAGE (see 'sockstack CMD --help')", and
 * CLI_USAGE. cmd is "" or "NAME " (with its space). */
int cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* getopt_long with getopt's own messages off: the tables are kept so that
 * cli_option_error can name what was wrong and suggest the closest option. */
struct option;
int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts);
/* The usage error for c, what cli_getopt just returned ('?', ':' or an
 * option nobody took): unknown (with "did you mean --X?"), ambiguous,
 * missing or unexpected value. Returns CLI_USAGE. */
int cli_option_error(const char *cmd, int c, char **argv);
/* The index of the name in names[0..n) closest to word by edit distance
 * (insert, delete, substitute, swap two neighbours), if it is close enough
 * to be a likely typo (at most 2 edits, fewer than word's length); else -1. */
int cli_closest(const char *word, size_t wlen, const char *const *names, size_t n);
/* "unknown command 'WORD'; did you mean NAME?" (cmd's subcommands are
 * names[0..n)); returns CLI_USAGE. */
int cli_unknown_command(const char *cmd, const char *word, const char *const *names, size_t n);

/* Subcommands (one file each under src/cli/). */
int cmd_version(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_connect(int argc, char **argv);
int cmd_listen(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_put(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_udpchat(int argc, char **argv);
int cmd_stack(int argc, char **argv);
int cmd_link(int argc, char **argv);
int cmd_broadcast(int argc, char **argv);
int cmd_discover(int argc, char **argv);
int cmd_ping(int argc, char **argv);
int cmd_traceroute(int argc, char **argv);
int cmd_sniff(int argc, char **argv);
int cmd_diagram(int argc, char **argv);
int cmd_view(int argc, char **argv);

#endif
