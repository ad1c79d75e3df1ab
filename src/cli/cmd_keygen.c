/* sockstack keygen FILE [--force]: a fresh shared key for --key-file;
 * sockstack keygen --tls DIR: a self-signed certificate and key to try TLS. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "sockstack/auth.h"
#include "sockstack/config.h"
#include "sockstack/err.h"
#include "sockstack/tls.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: sockstack keygen [--force] FILE\n"
            "       sockstack keygen --tls [--force] [--days N] DIR\n"
            "\n"
            "Write a new shared key to FILE: 64 random hex characters (256 bits from\n"
            "the OS CSPRNG via OpenSSL) and a newline, mode 0600. Services and\n"
            "clients read it with --key-file FILE.\n"
            "\n"
            "With --tls: write DIR/cert.pem (0644) and DIR/key.pem (0600), a\n"
            "self-signed EC P-256 certificate for CN=localhost naming localhost,\n"
            "127.0.0.1 and ::1, to try TLS out:\n"
            "  serve echo --tls-cert DIR/cert.pem --tls-key DIR/key.pem\n"
            "  connect --tls-ca DIR/cert.pem localhost PORT\n"
            "For anything real, use a certificate from your CA.\n"
            "\n"
            "  -f, --force   replace FILE (or the pair) if it exists\n"
            "      --tls     make a TLS certificate and key in DIR (created if missing)\n"
            "      --days N  --tls: valid for N days from now (default 365)\n"
            "  -h, --help    show this help\n");
}

int cmd_keygen(int argc, char **argv)
{
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'f'},
        {"tls", no_argument, NULL, 't'},
        {"days", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    bool force = false, tls = false, days_set = false;
    int days = SS_TLS_KEYGEN_DAYS;
    int c;
    optind = 1;
    while ((c = cli_getopt(argc, argv, "fh", opts)) != -1) {
        switch (c) {
        case 'f': force = true; break;
        case 't': tls = true; break;
        case 'd':
            if (cli_parse_int("--days", optarg, 1, 36500, &days) < 0)
                return CLI_USAGE;
            days_set = true;
            break;
        case 'h': usage(stdout); return CLI_OK;
        default: return cli_option_error("keygen ", c, argv);
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("keygen ", optind == argc ? (tls ? "missing DIR" : "missing FILE")
                                                         : "too many arguments");
    if (days_set && !tls)
        return cli_usage_error("keygen ", "--days applies to --tls");
    const char *path = argv[optind];
    if (tls) {
        char err[512];
        if (mkdir(path, 0755) < 0 && errno != EEXIST) {
            cli_error("%s: %s", path, strerror(errno));
            return CLI_RUNTIME;
        }
        int rc = ss_tls_keygen(path, days, force, err, sizeof err);
        if (rc < 0) {
            cli_error("%s", err[0] ? err : ss_strerror(rc));
            return CLI_RUNTIME;
        }
        cli_log("wrote %s/cert.pem (self-signed, CN=localhost, %d days) and %s/key.pem "
                "(mode 0600)", path, days, path);
        return CLI_OK;
    }
    int rc = ss_auth_keygen(path, force);
    if (rc == -EEXIST) {
        cli_error("%s exists; use --force to replace it", path);
        return CLI_RUNTIME;
    }
    if (rc < 0) {
        cli_error("%s: %s", path, ss_strerror(rc));
        return CLI_RUNTIME;
    }
    cli_log("wrote a new key to %s (mode 0600)", path);
    return CLI_OK;
}
