/* serve rows for the authenticated services (see serve_proto.h). */
#include "cli/serve_proto.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "sockstack/authsvc.h"
#include "sockstack/err.h"
#include "sockstack/exec.h"
#include "sockstack/files.h"

static const char *keyfile;
static ss_auth_key key;
static ss_authsvc wrap; /* one service per process */
static bool wrapped;
static unsigned auth_timeout_ms; /* 0: SS_AUTH_TIMEOUT_SECS */

void serve_keyfile_option(const char *path)
{
    keyfile = path;
}

int serve_auth_option(int opt, const char *arg)
{
    if (opt == SERVE_OPT_KEYFILE) {
        keyfile = arg;
        return 0;
    }
    if (opt == SERVE_OPT_AUTH_TIMEOUT) {
        double secs;
        if (cli_parse_double("--auth-timeout", arg, 0.001, 3600, &secs) < 0)
            return CLI_USAGE;
        auth_timeout_ms = (unsigned)(secs * 1000 + 0.5);
        return 0;
    }
    return 1;
}

int cli_load_key(const char *path, ss_auth_key *k)
{
    int rc = ss_auth_key_load(path, k);
    if (rc == SS_EKEYPERM)
        cli_error("%s: key file is readable or writable by group or others; "
                  "run 'chmod 600 %s'", path, path);
    else if (rc == SS_EKEYOWNER)
        cli_error("%s: key file is not owned by this user (uid %d); "
                  "its owner could replace the key", path, (int)geteuid());
    else if (rc == SS_EKEYFMT)
        cli_error("%s: no key on the first line (or longer than %d bytes); "
                  "'sockstack keygen FILE' writes one", path, SS_AUTH_KEY_MAX);
    else if (rc < 0)
        cli_error("%s: %s", path, ss_strerror(rc));
    return rc;
}

int serve_auth_wrap(struct serve_ctx *sc, enum ss_auth_mode mode)
{
    if (!keyfile)
        return 0;
    if (sc->udp)
        return cli_usage_error("serve ", "--key-file needs a stream (TCP or Unix) service");
    if (cli_load_key(keyfile, &key) < 0)
        return CLI_RUNTIME;
    int rc = ss_authsvc_init(&wrap, sc->svc, &key, mode, auth_timeout_ms);
    if (rc < 0) {
        cli_error("serve %s: %s", sc->row->name, ss_strerror(rc));
        return CLI_RUNTIME;
    }
    wrapped = true;
    sc->svc = &wrap.svc;
    cli_debug("%s requires the %s key handshake (key from %s)", sc->row->name,
              mode == SS_AUTH_MUTUAL ? "mutual" : "one-way", keyfile);
    return 0;
}

void serve_auth_cleanup(struct serve_ctx *sc)
{
    if (wrapped)
        ss_authsvc_destroy(&wrap);
    wrapped = false;
    ss_auth_key_clear(&key);
}

/* True if every address host resolves to is loopback. */
static bool bind_is_loopback(const struct serve_ctx *sc)
{
    const char *host = sc->opts.bind_host;
    if (!host)
        return false; /* the wildcard: every interface */
    if (!strncmp(host, "unix:", 5))
        return true;  /* a Unix socket never leaves the machine */
    ss_addr a[8];
    int n = ss_addr_resolve(host, sc->opts.port ? sc->opts.port : "0",
                            sc->opts.family, SS_STREAM, true, a, 8);
    if (n <= 0)
        return false;
    for (int i = 0; i < n; i++)
        if (!ss_addr_is_loopback(&a[i]))
            return false;
    return true;
}

/* ---- exec --------------------------------------------------------------- */

enum { EXEC_OPT_SHELL = SERVE_OPT_SERVICE, EXEC_OPT_COMPAT };

const struct option serve_exec_longopts[] = {
    SERVE_KEYFILE_LONGOPT,
    {"shell", required_argument, NULL, EXEC_OPT_SHELL},
    {"compat", required_argument, NULL, EXEC_OPT_COMPAT},
    {NULL, 0, NULL, 0},
};

static ss_exec_opts exec_opts = {.shell = "/bin/sh"};
static bool exec_compat;

int serve_exec_option(struct serve_ctx *sc, int opt, const char *arg)
{
    int rc = serve_auth_option(opt, arg);
    if (rc != 1)
        return rc;
    switch (opt) {
    case EXEC_OPT_SHELL:
        exec_opts.shell = arg;
        return 0;
    case EXEC_OPT_COMPAT:
        if (strcmp(arg, "tutorial"))
            return cli_usage_error("serve ", "--compat: only 'tutorial' is known, not '%s'", arg);
        exec_compat = true;
        return 0;
    }
    return 0;
}

int serve_exec_setup(struct serve_ctx *sc)
{
    /* --timeout is parsed by the shared socket options (SO_RCVTIMEO, which
     * means nothing to an event-driven server): for exec it is the
     * command's time limit. */
    if (sc->opts.sockopts.timeout_ms > 0) {
        exec_opts.timeout_ms = (unsigned)sc->opts.sockopts.timeout_ms;
        sc->opts.sockopts.timeout_ms = -1;
        sc->opts.conn_sockopts.timeout_ms = -1;
    }
    if (exec_opts.shell[0] != '/')
        return cli_usage_error("serve ", "--shell needs an absolute path");
    if (exec_compat) {
        if (keyfile)
            return cli_usage_error("serve ", "--compat tutorial and --key-file exclude each "
                                   "other (the tutorial protocol has no handshake)");
        if (!bind_is_loopback(sc)) {
            cli_error("serve exec --compat tutorial runs any command for anyone who "
                      "connects, with no authentication: it only binds to a loopback "
                      "address (e.g. --bind 127.0.0.1) or a Unix socket");
            return CLI_USAGE;
        }
        cli_error("WARNING: serve exec --compat tutorial has no authentication: any "
                  "program on this host that can connect runs commands as this user "
                  "(uid %d)", (int)getuid());
        sc->svc = ss_exec_compat_service();
        sc->opts.svc_ctx = &exec_opts;
        return 0;
    }
    if (!keyfile)
        return cli_usage_error("serve ", "exec needs --key-file (or --compat tutorial on loopback)");
    sc->svc = ss_exec_service();
    sc->opts.svc_ctx = &exec_opts;
    return serve_auth_wrap(sc, SS_AUTH_MUTUAL);
}

const char serve_exec_help[] =
    SERVE_KEYFILE_HELP_LINE
    "                           (required; clients authenticate the server too)\n"
    SERVE_AUTH_TIMEOUT_HELP
    "      --shell PATH         shell for single-string commands (default /bin/sh)\n"
    "      --timeout SECS       kill a command's process group after SECS (for\n"
    "                           exec this replaces the socket option SO_RCVTIMEO)\n"
    "      --compat tutorial    the classic tutorial's protocol: no auth; le32\n"
    "                           length + command line in, le32 length +\n"
    "                           stderr-or-stdout out; loopback or Unix socket\n"
    "                           only; warns at start\n";

/* ---- files -------------------------------------------------------------- */

enum {
    FILES_OPT_ROOT = SERVE_OPT_SERVICE,
    FILES_OPT_MAX_SIZE,
    FILES_OPT_QUOTA,
    FILES_OPT_PART_EXPIRE,
};

const struct option serve_files_longopts[] = {
    SERVE_KEYFILE_LONGOPT,
    {"root", required_argument, NULL, FILES_OPT_ROOT},
    {"max-size", required_argument, NULL, FILES_OPT_MAX_SIZE},
    {"quota", required_argument, NULL, FILES_OPT_QUOTA},
    {"part-expire", required_argument, NULL, FILES_OPT_PART_EXPIRE},
    {NULL, 0, NULL, 0},
};

static ss_files_opts files_opts;

int serve_files_option(struct serve_ctx *sc, int opt, const char *arg)
{
    int rc = serve_auth_option(opt, arg);
    if (rc != 1)
        return rc;
    uint64_t v;
    switch (opt) {
    case FILES_OPT_ROOT:
        files_opts.root = arg;
        return 0;
    case FILES_OPT_MAX_SIZE:
        if (cli_parse_scaled("--max-size", arg, 1024, 1, UINT64_MAX / 2, &v) < 0)
            return CLI_USAGE;
        files_opts.max_size = v;
        return 0;
    case FILES_OPT_QUOTA:
        if (cli_parse_scaled("--quota", arg, 1024, 1, UINT64_MAX / 2, &v) < 0)
            return CLI_USAGE;
        files_opts.quota = v;
        return 0;
    case FILES_OPT_PART_EXPIRE:
        if (cli_parse_u64("--part-expire", arg, 0, UINT_MAX - 1, &v) < 0)
            return CLI_USAGE;
        files_opts.part_expire_s = v ? (unsigned)v : UINT_MAX;
        return 0;
    }
    return 0;
}

int serve_files_setup(struct serve_ctx *sc)
{
    if (!files_opts.root)
        return cli_usage_error("serve ", "files needs --root DIR");
    if (!keyfile)
        return cli_usage_error("serve ", "files needs --key-file");
    int rc = ss_files_opts_open(&files_opts);
    if (rc < 0) {
        cli_error("--root %s: %s", files_opts.root, ss_strerror(rc));
        return CLI_RUNTIME;
    }
    sc->svc = ss_files_service();
    sc->opts.svc_ctx = &files_opts;
    return serve_auth_wrap(sc, SS_AUTH_MUTUAL);
}

void serve_files_cleanup(struct serve_ctx *sc)
{
    serve_auth_cleanup(sc);
    ss_files_opts_close(&files_opts);
}

const char serve_files_help[] =
    "      --root DIR           serve files under DIR only (required)\n"
    SERVE_KEYFILE_HELP_LINE
    "                           (required; clients authenticate the server too)\n"
    SERVE_AUTH_TIMEOUT_HELP
    "      --max-size BYTES     refuse a put announcing more (suffix K, M, G;\n"
    "                           default 1 TiB)\n"
    "      --quota BYTES        refuse a put that would bring the regular files\n"
    "                           under DIR above BYTES (default: no quota)\n"
    "      --part-expire SECS   remove partial files of interrupted puts left\n"
    "                           unchanged for SECS (default 86400; 0: never)\n";
