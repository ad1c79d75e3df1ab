/* sockstack put / get / ls: clients of 'sockstack serve files'. */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "sockstack/err.h"
#include "sockstack/files.h"
#include "sockstack/text.h"

struct progress {
    bool on, quiet, started, open_line; /* open_line: a bar without its '\n' */
    uint64_t base; /* where the transfer started: the rate counts from here */
    const char *cmd;
    struct timespec start, last;
};

static double since(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static int percent(uint64_t done, uint64_t total)
{
    return total ? (int)((double)done * 100.0 / (double)total) : 100;
}

/* The first call says where the transfer starts ("resuming at 44%"); then a
 * progress line (on a terminal, or with --progress): bar, done of total
 * bytes, the rate over the bytes sent in this run, ETA; 10 updates/s. */
static void on_progress(uint64_t done, uint64_t total, void *arg)
{
    struct progress *p = arg;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (!p->started) {
        p->started = true;
        p->base = done;
        p->start = p->last = now;
        if (done > 0 && !p->quiet)
            cli_log("%s: resuming at %d%% (%llu of %llu bytes)", p->cmd, percent(done, total),
                    (unsigned long long)done, (unsigned long long)total);
        if (done < total || !p->on)
            return;
    }
    if (!p->on)
        return;
    if (done < total && since(&p->last, &now) < 0.1)
        return;
    p->last = now;
    double secs = since(&p->start, &now);
    double rate = secs > 0 ? (double)(done - p->base) / secs : 0;
    int pct = percent(done, total);
    int bar = pct / 5;
    char eta[32];
    if (done >= total)
        snprintf(eta, sizeof eta, "done in %.1fs", secs);
    else if (rate > 0)
        snprintf(eta, sizeof eta, "ETA %.0fs", (double)(total - done) / rate);
    else
        snprintf(eta, sizeof eta, "ETA --");
    fprintf(stderr, "\r[%.*s%*s] %3d%% %llu of %llu bytes %.1f MB/s %s", bar,
            "####################", 20 - bar, "", pct, (unsigned long long)done,
            (unsigned long long)total, rate / 1e6, eta);
    p->open_line = done < total;
    if (!p->open_line)
        fputc('\n', stderr);
    fflush(stderr);
}

static void usage(FILE *out, const char *cmd)
{
    if (!strcmp(cmd, "put"))
        fprintf(out, "Usage: sockstack put [OPTIONS] HOST PORT LOCAL [REMOTE]\n\n"
                     "Send LOCAL to a 'sockstack serve files' server as REMOTE (default:\n"
                     "LOCAL's base name), verified by SHA-256 at both ends.\n\n");
    else if (!strcmp(cmd, "get"))
        fprintf(out, "Usage: sockstack get [OPTIONS] HOST PORT REMOTE [LOCAL]\n\n"
                     "Fetch REMOTE into LOCAL (default: REMOTE's base name), verified by\n"
                     "SHA-256; LOCAL appears only when complete and verified.\n\n");
    else
        fprintf(out, "Usage: sockstack ls [OPTIONS] HOST PORT [DIR]\n\n"
                     "List DIR (default: the served root).\n\n");
    fprintf(out, "  -k, --key-file FILE   shared key (required)\n");
    if (strcmp(cmd, "ls"))
        fprintf(out, "  -r, --resume          continue an interrupted transfer\n"
                     "  -f, --force           replace the %s file if it exists (else:\n"
                     "                        refused, exit status 3)\n"
                     "  -q, --quiet           no progress bar (shown only on a terminal)\n"
                     "      --progress        the progress bar even when stderr is no terminal\n",
                !strcmp(cmd, "put") ? "server's" : "local");
    fprintf(out, "  -v, --verbose         log the connection steps\n"
                 "  -h, --help            show this help\n"
                 "\n%s\n%s\n%s",
            cli_client_help, cli_tls_client_help, cli_sockopt_help);
}

static void print_entry(const ss_files_entry *e, void *arg)
{
    char when[32];
    time_t t = (time_t)e->mtime;
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%d %H:%M", localtime_r(&t, &tm));
    char name[4 * sizeof e->name + 1]; /* a name can spell ESC sequences */
    ss_text_escape(e->name, strlen(e->name), name, sizeof name, 0);
    printf("%c %04o %12llu %s %s\n", e->kind, e->mode, (unsigned long long)e->size, when, name);
}

static int files_main(const char *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        {"key-file", required_argument, NULL, 'k'},
        {"resume", no_argument, NULL, 'r'},
        {"force", no_argument, NULL, 'f'},
        {"progress", no_argument, NULL, 'P'},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        CLI_CLIENT_LONGOPTS,
        {0, 0, 0, 0},
    };
    struct cli_client_opts co;
    cli_client_opts_init(&co);
    char errcmd[16];
    snprintf(errcmd, sizeof errcmd, "%s ", cmd);
    const char *keyfile = NULL;
    bool resume = false, quiet = false, force = false, progress = false;
    bool is_ls = !strcmp(cmd, "ls");
    int c;
    optind = 1;
    while ((c = cli_getopt(argc, argv, "k:rfqvh", opts)) != -1) {
        switch (c) {
        case 'k': keyfile = optarg; break;
        case 'r': resume = true; break;
        case 'f': force = true; break;
        case 'P': progress = true; break;
        case 'q': quiet = true; break;
        case 'v': cli_log_level = CLI_LOG_DEBUG; break;
        case 'h': usage(stdout, cmd); return CLI_OK;
        default:
            switch (cli_client_parse(c, optarg, &co, errcmd)) {
            case 1: continue;
            case -1: return CLI_USAGE;
            }
            return cli_option_error(errcmd, c, argv);
        }
    }
    if (cli_client_check(&co, errcmd) != 0)
        return CLI_USAGE;
    int nargs = argc - optind;
    if (is_ls ? (nargs < 2 || nargs > 3) : (nargs < 3 || nargs > 4))
        return cli_usage_error(errcmd, "wrong number of arguments");
    if (is_ls && resume)
        return cli_usage_error(errcmd, "--resume is for put and get");
    if (is_ls && force)
        return cli_usage_error(errcmd, "--force is for put and get");
    if (!keyfile)
        return cli_usage_error(errcmd, "--key-file is required");
    const char *host = argv[optind], *port = argv[optind + 1];
    const char *a = nargs > 2 ? argv[optind + 2] : "";
    char defname[4096];
    snprintf(defname, sizeof defname, "%s", a);
    const char *b = nargs > 3 ? argv[optind + 3] : basename(defname);

    struct cli_session ses;
    if (cli_connect_auth(host, port, keyfile, &co, &ses) < 0)
        return CLI_RUNTIME;
    struct progress pr = {.on = !quiet && (progress || isatty(STDERR_FILENO)),
                          .quiet = quiet, .cmd = cmd};
    ss_files_err err;
    int rc;
    unsigned flags = (resume ? SS_FILES_FLAG_RESUME : 0) | (force ? SS_FILES_FLAG_REPLACE : 0);
    if (is_ls)
        rc = ss_files_ls(&ses.st, a, print_entry, NULL, &err);
    else if (!strcmp(cmd, "put"))
        rc = ss_files_put(&ses.st, a, b, flags, on_progress, &pr, &err);
    else
        rc = ss_files_get(&ses.st, a, b, flags, on_progress, &pr, &err);
    char why[256] = "";
    if (rc < 0 && ss_sock_is_tls(ses.st.sock))
        ss_tls_error(ses.st.sock, why, sizeof why);
    cli_session_close(&ses);
    if (why[0]) {
        cli_error("%s: TLS: %s", cmd, why);
        return CLI_RUNTIME;
    }
    if (pr.open_line)
        fputc('\n', stderr);
    if (rc == -EEXIST) {
        char safe[4 * 4096 + 1];
        ss_text_escape(b, strlen(b), safe, sizeof safe, 0);
        cli_error("%s: %s exists%s; --force replaces it", cmd, safe,
                  !strcmp(cmd, "put") ? " on the server" : "");
        return CLI_EXISTS;
    }
    if (rc == SS_EREMOTE) {
        char safe[4 * sizeof err.msg + 1];
        ss_text_escape(err.msg, strlen(err.msg), safe, sizeof safe, 0);
        cli_error("%s: server: %s", cmd, safe);
        return CLI_RUNTIME;
    }
    if (rc < 0) {
        cli_error("%s: %s%s%s", cmd, err.msg[0] ? err.msg : "", err.msg[0] ? ": " : "",
                  ss_strerror(rc));
        return CLI_RUNTIME;
    }
    if (!is_ls)
        cli_log("%s %s -> %s: done, SHA-256 verified", cmd, a, b);
    return CLI_OK;
}

int cmd_put(int argc, char **argv) { return files_main("put", argc, argv); }
int cmd_get(int argc, char **argv) { return files_main("get", argc, argv); }
int cmd_ls(int argc, char **argv) { return files_main("ls", argc, argv); }
