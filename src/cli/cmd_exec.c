/* sockstack exec HOST PORT --key-file F -- COMMAND [ARGS...] */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "sockstack/err.h"
#include "sockstack/exec.h"

/* Our own failures, kept apart from the remote command's codes (as ssh). */
enum { EXEC_OWN_ERROR = 255 };

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: sockstack exec [OPTIONS] HOST PORT -- COMMAND [ARGS...]\n"
            "\n"
            "Run COMMAND on a 'sockstack serve exec' server after mutual authentication.\n"
            "A single COMMAND string is run by the server's shell (like ssh); several\n"
            "words are run directly. Stdin is forwarded (EOF included); the command's\n"
            "stdout and stderr come back as produced. The exit status is the\n"
            "command's, 128+N if signal N ended it, 255 if sockstack itself failed.\n"
            "\n"
            "  -k, --key-file FILE   shared key (required)\n"
            "  -n, --no-stdin        do not forward stdin (the command reads EOF)\n"
            "  -v, --verbose         log the connection steps\n"
            "  -h, --help            show this help\n"
            "\n%s\n%s\n%s",
            cli_client_help, cli_tls_client_help, cli_sockopt_help);
}

int cmd_exec(int argc, char **argv)
{
    static const struct option opts[] = {
        {"key-file", required_argument, NULL, 'k'},
        {"no-stdin", no_argument, NULL, 'n'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        CLI_CLIENT_LONGOPTS,
        {0, 0, 0, 0},
    };
    const char *keyfile = NULL;
    bool no_stdin = false;
    struct cli_client_opts co;
    cli_client_opts_init(&co);
    int c;
    optind = 1;
    while ((c = cli_getopt(argc, argv, "k:nvh", opts)) != -1) {
        switch (c) {
        case 'k': keyfile = optarg; break;
        case 'n': no_stdin = true; break;
        case 'v': cli_log_level = CLI_LOG_DEBUG; break;
        case 'h': usage(stdout); return CLI_OK;
        default:
            switch (cli_client_parse(c, optarg, &co, "exec ")) {
            case 1: continue;
            case -1: return CLI_USAGE;
            }
            return cli_option_error("exec ", c, argv);
        }
    }
    if (cli_client_check(&co, "exec ") != 0)
        return CLI_USAGE;
    if (argc - optind < 3)
        return cli_usage_error("exec ", "need HOST PORT -- COMMAND");
    if (!keyfile)
        return cli_usage_error("exec ", "--key-file is required");
    const char *host = argv[optind], *port = argv[optind + 1];
    struct cli_session ses;
    if (cli_connect_auth(host, port, keyfile, &co, &ses) < 0)
        return EXEC_OWN_ERROR;
    int status = 0;
    char msg[512];
    int rc = ss_exec_client_run(&ses.st, argc - optind - 2, argv + optind + 2,
                                no_stdin ? -1 : STDIN_FILENO, STDOUT_FILENO,
                                STDERR_FILENO, &status, msg, sizeof msg);
    if (msg[0])
        cli_error("server: %s", msg);
    if (rc < 0) {
        char why[256] = "";
        if (ss_sock_is_tls(ses.st.sock))
            ss_tls_error(ses.st.sock, why, sizeof why);
        cli_error("exec: %s", why[0] ? why : ss_strerror(rc));
        cli_session_close(&ses);
        return EXEC_OWN_ERROR;
    }
    cli_session_close(&ses);
    return status;
}
