/* Parsing of the shared TLS options (see tls_cli.h). */
#include "cli/tls_cli.h"

#include <string.h>

#include "cli/cli.h"
#include "sockstack/err.h"

const char cli_tls_server_help[] =
    "TLS:\n"
    "      --tls-cert FILE      serve TLS with this certificate (PEM; the chain\n"
    "                           may follow it); needs --tls-key\n"
    "      --tls-key FILE       its private key (PEM)\n"
    "      --tls-ca FILE        require a client certificate signed by a CA in\n"
    "                           FILE; clients without one are refused\n"
    "                           (sockstack keygen --tls DIR makes a pair to try)\n";

const char cli_tls_client_help[] =
    "TLS:\n"
    "      --tls                speak TLS (1.3, or 1.2) and verify the server's\n"
    "                           certificate and name\n"
    "      --tls-ca FILE        trust the CAs in FILE (default: the system's store)\n"
    "      --tls-servername NAME\n"
    "                           the name the certificate must show, also sent as\n"
    "                           SNI (default: HOST)\n"
    "      --tls-cert FILE      show this client certificate (with --tls-key)\n"
    "      --tls-key FILE       its private key\n"
    "      --tls-insecure       FOR TESTS ONLY: accept any certificate (no\n"
    "                           protection against a man in the middle)\n"
    "  Any --tls-* option implies --tls.\n";

void cli_tls_init(struct cli_tls *t)
{
    memset(t, 0, sizeof *t);
    ss_tls_opts_init(&t->o);
}

int cli_tls_parse(int opt, const char *arg, struct cli_tls *t)
{
    switch (opt) {
    case CLI_OPT_TLS:
        break;
    case CLI_OPT_TLS_CERT:
        t->o.cert = arg;
        break;
    case CLI_OPT_TLS_KEY:
        t->o.key = arg;
        break;
    case CLI_OPT_TLS_CA:
        t->o.ca = arg;
        break;
    case CLI_OPT_TLS_INSECURE:
        t->o.insecure = true;
        break;
    case CLI_OPT_TLS_SERVERNAME:
        t->servername = arg;
        break;
    default:
        return 0;
    }
    t->on = true;
    return 1;
}

int cli_tls_check(struct cli_tls *t, bool server, const char *cmd)
{
    if (!t->on)
        return 0;
    if (server && !t->o.cert && !t->o.key)
        return cli_usage_error(cmd, "--tls-ca needs --tls-cert and --tls-key");
    if (t->o.cert && !t->o.key)
        return cli_usage_error(cmd, "--tls-cert needs --tls-key");
    if (t->o.key && !t->o.cert)
        return cli_usage_error(cmd, "--tls-key needs --tls-cert");
    if (t->o.insecure && t->o.ca)
        return cli_usage_error(cmd, "--tls-insecure and --tls-ca exclude each other");
    if (t->o.insecure && t->servername)
        return cli_usage_error(cmd, "--tls-insecure checks no name: --tls-servername "
                                    "does not apply");
    if (t->servername && !t->servername[0])
        return cli_usage_error(cmd, "--tls-servername: empty name");
    return 0;
}

int cli_tls_ctx(const struct cli_tls *t, bool server, ss_tls_ctx **out)
{
    *out = NULL;
    if (!t->on)
        return 0;
    char err[512];
    int rc = ss_tls_ctx_new(&t->o, server, out, err, sizeof err);
    if (rc < 0) {
        cli_error("TLS: %s", err[0] ? err : ss_strerror(rc));
        return CLI_RUNTIME;
    }
    return 0;
}

void cli_tls_report(const char *what, ss_sock *s, int err)
{
    char why[256] = "";
    if (ss_sock_is_tls(s))
        ss_tls_error(s, why, sizeof why);
    cli_error("%s: %s", what, why[0] ? why : ss_strerror(err));
}

const char *cli_tls_host_name(const char *host, char *buf, size_t cap)
{
    size_t n = strlen(host);
    if (n > 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < cap) {
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = '\0';
        return buf;
    }
    return host;
}
