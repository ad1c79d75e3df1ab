/* sockstack keygen FILE [--force]: a fresh shared key for --key-file. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>

#include "cli/cli.h"
#include "sockstack/auth.h"
#include "sockstack/err.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: sockstack keygen [--force] FILE\n"
            "\n"
            "Write a new shared key to FILE: 64 random hex characters (256 bits from\n"
            "the OS CSPRNG via OpenSSL) and a newline, mode 0600. Services and\n"
            "clients read it with --key-file FILE.\n"
            "\n"
            "  -f, --force   replace FILE if it exists\n"
            "  -h, --help    show this help\n");
}

int cmd_keygen(int argc, char **argv)
{
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    bool force = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "fh", opts, NULL)) != -1) {
        switch (c) {
        case 'f': force = true; break;
        case 'h': usage(stdout); return CLI_OK;
        default: return cli_usage_error("keygen ", "bad option");
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("keygen ", optind == argc ? "missing FILE"
                                                         : "too many arguments");
    const char *path = argv[optind];
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
