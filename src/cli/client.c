/* Connect and authenticate for the exec/put/get/ls clients: the options
 * they share, and the one path every such client takes (sock/ through
 * ss_dial, TLS if asked, the HMAC handshake, all waited for in the loop). */
#include "cli/client.h"

#include <errno.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/serve_proto.h"
#include "sockstack/auth.h"
#include "sockstack/config.h"
#include "sockstack/err.h"

const char cli_client_help[] =
    "Connection:\n"
    "      --connect-timeout SECS  give up on an address after SECS (default 10;\n"
    "                           0: wait as long as TCP does)\n"
    "      --stack tun=NAME,addr=ADDR/PREFIX[,peer=ADDR][,mtu=N]\n"
    "                           connect through sockstack's own TCP/IP stack on a\n"
    "                           new TUN device (needs CAP_NET_ADMIN; IPv4)\n";

void cli_client_opts_init(struct cli_client_opts *o)
{
    memset(o, 0, sizeof *o);
    ss_sockopts_init(&o->so);
    cli_tls_init(&o->tls);
    o->connect_timeout_ms = SS_DIAL_TIMEOUT_MS;
}

int cli_client_parse(int c, const char *arg, struct cli_client_opts *o, const char *cmd)
{
    if (cli_tls_parse(c, arg, &o->tls))
        return 1;
    if (c == CLI_OPT_CLIENT_STACK) {
        if (cli_stack_parse(cmd, arg, &o->stack_spec) != 0)
            return -1;
        o->use_stack = true;
        return 1;
    }
    if (c == CLI_OPT_CONNECT_TIMEOUT) {
        double v;
        if (cli_parse_double("--connect-timeout", arg, 0, 3600, &v) < 0)
            return -1;
        o->connect_timeout_ms = (int)(v * 1000.0 + 0.5);
        return 1;
    }
    return cli_sockopt_parse(c, arg, &o->so);
}

int cli_client_check(struct cli_client_opts *o, const char *cmd)
{
    return cli_tls_check(&o->tls, false, cmd);
}

void cli_session_close(struct cli_session *s)
{
    if (s->st.sock)
        ss_sock_close(s->st.sock);
    s->st.sock = NULL;
    cli_stack_stop(&s->stack, false);
    if (s->loop)
        ss_loop_free(s->loop);
    s->loop = NULL;
    ss_tls_ctx_free(s->tls);
    s->tls = NULL;
}

int cli_connect_auth(const char *host, const char *port, const char *keyfile,
                     const struct cli_client_opts *o, struct cli_session *s)
{
    memset(s, 0, sizeof *s);
    s->stack.fd = -1;
    ss_auth_key key;
    if (cli_load_key(keyfile, &key) < 0)
        return -1;
    int rc = ss_loop_new(&s->loop);
    if (rc < 0) {
        cli_error("event loop: %s", ss_strerror(rc));
        goto fail;
    }
    ss_dial_opts d;
    ss_dial_opts_init(&d);
    d.sockopts = &o->so;
    d.timeout_ms = o->connect_timeout_ms;
    char bare[256];
    d.servername = o->tls.servername ? o->tls.servername
                                     : cli_tls_host_name(host, bare, sizeof bare);
    if (o->use_stack) {
        if (cli_stack_start(s->loop, &o->stack_spec, NULL, NULL, true, &s->stack) != CLI_OK) {
            rc = -1;
            goto fail;
        }
        d.backend = s->stack.be;
        d.family = AF_INET;
    }
    if (cli_tls_ctx(&o->tls, false, &s->tls) != 0) {
        rc = -1;
        goto fail;
    }
    d.tls = s->tls;
    char err[512];
    rc = ss_dial(s->loop, host, port, &d, &s->st.sock, err, sizeof err);
    if (rc < 0) {
        cli_error("%s", err);
        goto fail;
    }
    s->st.loop = s->loop;
    s->st.timeout_ms = -1; /* a command or a transfer takes what it takes */
    ss_auth a;
    rc = ss_auth_init(&a, SS_AUTH_CLIENT, SS_AUTH_MUTUAL, &key, NULL);
    if (!rc)
        rc = ss_auth_run_stream(&a, &s->st, SS_AUTH_TIMEOUT_SECS * 1000);
    char why[256] = "";
    if (rc < 0 && ss_sock_is_tls(s->st.sock))
        ss_tls_error(s->st.sock, why, sizeof why);
    if (why[0])
        cli_error("TLS with %s port %s failed: %s", host, port, why);
    else if (rc == SS_EAUTH)
        cli_error("%s port %s did not prove it knows the key: not the real server "
                  "(or a different key); nothing was sent", host, port);
    else if (rc == -ECONNRESET)
        cli_error("%s port %s closed the connection during authentication "
                  "(wrong key, or not a sockstack service)", host, port);
    else if (rc == -ETIMEDOUT)
        cli_error("%s port %s: authentication timed out", host, port);
    else if (rc < 0)
        cli_error("%s port %s: authentication: %s", host, port, ss_strerror(rc));
    if (rc < 0)
        goto fail;
    ss_auth_key_clear(&key);
    cli_debug("authenticated %s port %s (mutual%s)", host, port,
              s->tls ? ", inside TLS" : "");
    return 0;
fail:
    ss_auth_key_clear(&key);
    cli_session_close(s);
    return -1;
}
