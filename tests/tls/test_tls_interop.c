/* TLS end to end: the CLI's servers and clients against openssl s_client /
 * s_server, ncat --ssl and socat OPENSSL, real processes on loopback.
 * Certificates come from `sockstack keygen --tls` and from the openssl CLI
 * (mkcerts.sh: a CA, a client certificate it signed, and a certificate
 * that expired in 2020, made with openssl ca -startdate/-enddate). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* Every process a test starts is one of these, reaped by the teardown
 * also when an assertion ended the test early. */
static struct th_proc g_s = {.pid = -1}, g_c = {.pid = -1}, g_srv = {.pid = -1};

static void cleanup(void);

static void teardown(void)
{
    th_reap(&g_s);
    th_reap(&g_c);
    th_reap(&g_srv);
    cleanup();
}

TestSuite(tls_interop, .timeout = 60, .fini = teardown);

static char dir[64];   /* our pair: cert.pem key.pem; openssl's: ca.pem ... */
static char odir[80];  /* another keygen pair: the wrong CA */
static char buf_[8][256];

/* dir/name into one of a few rotating buffers. */
static const char *in_dir(const char *d, const char *name)
{
    static int i;
    char *b = buf_[i++ % 8];
    snprintf(b, sizeof buf_[0], "%s/%s", d, name);
    return b;
}

static const char *P(const char *name) { return in_dir(dir, name); }

static int exit_code(struct th_proc *p, int timeout_ms)
{
    int st = th_wait(p, timeout_ms);
    if (st != -1)
        p->pid = -1; /* reaped: the teardown must not signal a reused pid */
    cr_assert_neq(st, -1, "process did not exit in time");
    cr_assert(WIFEXITED(st), "process died by signal %d", WTERMSIG(st));
    return WEXITSTATUS(st);
}

static char *read_fd(int fd)
{
    char *e;
    ssize_t n = th_read_all(fd, &e, 5000);
    e[n < 0 ? 0 : n] = '\0';
    return e;
}

static void run_ok(const char *cmd)
{
    int st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "failed: %s", cmd);
}

static void certs(void)
{
    snprintf(dir, sizeof dir, "/tmp/ss-tlsi-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(odir, sizeof odir, "%s/other", dir);
    const char *const kg[] = {"keygen", "--tls", dir, NULL};
    struct th_result r = th_run_cli(kg, 10000);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_result_free(&r);
    const char *const kg2[] = {"keygen", "--tls", odir, NULL};
    r = th_run_cli(kg2, 10000);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_result_free(&r);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "sh '%s' '%s'", th_source_path("tests/tls/mkcerts.sh"), dir);
    run_ok(cmd);
}

static void cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (dir[0] && system(cmd) == 0)
        dir[0] = '\0';
}

/* A free loopback port (bound, then released) for peers that need one. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

/* Wait until something accepts on 127.0.0.1:port (an external server). */
static void wait_port(int port)
{
    for (int i = 0; i < 200; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok)
            return;
        usleep(25000);
    }
    cr_assert_fail("nothing listens on port %d", port);
}

/* `sockstack serve SERVICE ARGS...` on a free port: its port as text. */
static void serve(struct th_proc *p, char port[16], char *const args[])
{
    char *argv[32];
    int n = 0;
    argv[n++] = (char *)th_sockstack();
    argv[n++] = "serve";
    for (int i = 0; args[i]; i++)
        argv[n++] = args[i];
    argv[n++] = "-b";
    argv[n++] = "127.0.0.1";
    argv[n] = NULL;
    cr_assert_eq(th_spawn(p, argv), 0);
    int pt = th_wait_listening(p, 10000, NULL, 0);
    cr_assert_gt(pt, 0, "server did not start");
    snprintf(port, 16, "%d", pt);
}

static void stop(struct th_proc *p)
{
    if (th_stop(p, SIGTERM, 5000) != -1)
        p->pid = -1;
    th_close_fds(p);
}

/* Run argv with stdin piped: write msg, read stdout until want appears,
 * then close stdin; returns what stdout held (malloc'd). */
static char *converse(struct th_proc *p, char *const argv[], const char *msg, const char *want)
{
    cr_assert_eq(th_spawn(p, argv), 0, "spawn %s", argv[0]);
    cr_assert_eq(th_write_all(p->in, msg, strlen(msg)), 0);
    char *out = calloc(1, 4096);
    bool ok = th_read_until(p->out, want, out, 4096, 10000);
    close(p->in);
    p->in = -1;
    cr_assert(ok, "%s: no '%s' in '%s'", argv[0], want, out);
    return out;
}

/* Run argv with msg on its stdin: its stdout must be exactly want (read
 * until want's last line), then it must end (status: exit code, or -1 for
 * "any": peers that report a closed stdin their own way). */
static void expect_echo(char *const argv[], const char *msg, const char *want, int status)
{
    char *out = converse(&g_c, argv, msg, want);
    cr_assert_str_eq(out, want);
    int st = exit_code(&g_c, 10000);
    if (status >= 0)
        cr_assert_eq(st, status, "%s exited %d", argv[0], st);
    th_close_fds(&g_c);
    free(out);
}

/* `sockstack ARGS...` (a client of 127.0.0.1:port) must exit 1 with exactly
 * "sockstack: TLS with 127.0.0.1:PORT failed: REASON" and print nothing. */
static void expect_tls_refusal(const char *const args[], const char *port, const char *reason)
{
    struct th_result r = th_run_cli(args, 10000);
    char want[256];
    snprintf(want, sizeof want, "sockstack: TLS with 127.0.0.1:%s failed: %s\n", port, reason);
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert_str_eq(r.err, want);
    cr_assert_str_eq(r.out, "");
    th_result_free(&r);
}

#define CLI(...) ((char *[]){(char *)th_sockstack(), __VA_ARGS__, NULL})
#define ARGS(...) ((char *[]){__VA_ARGS__, NULL})

static void echo_server(struct th_proc *s, char port[16], const char *cert, const char *key,
                        const char *ca)
{
    if (ca)
        serve(s, port, ARGS("echo", "--tls-cert", (char *)cert, "--tls-key", (char *)key,
                            "--tls-ca", (char *)ca));
    else
        serve(s, port, ARGS("echo", "--tls-cert", (char *)cert, "--tls-key", (char *)key));
}

/* ---- our server, their clients ---------------------------------------------- */

Test(tls_interop, serve_echo_answers_openssl_s_client_byte_for_byte_and_resumes)
{
    certs();
    char port[16], addr[32], sess[128];
    echo_server(&g_s, port, P("cert.pem"), P("key.pem"), NULL);
    snprintf(addr, sizeof addr, "127.0.0.1:%s", port);
    snprintf(sess, sizeof sess, "%s/sess.pem", dir);
    char *out = converse(&g_c, ARGS("openssl", "s_client", "-connect", addr, "-CAfile",
                                  (char *)P("cert.pem"), "-verify_return_error",
                                  "-servername", "localhost", "-sess_out", sess),
                         "hello from s_client\n", "hello from s_client\n");
    cr_assert(strstr(out, "New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384") != NULL, "%s", out);
    cr_assert(strstr(out, "Verify return code: 0 (ok)") != NULL, "%s", out);
    cr_assert_eq(exit_code(&g_c, 10000), 0);
    th_close_fds(&g_c);
    free(out);
    /* The ticket we handed out brings the next connection back. */
    out = converse(&g_c, ARGS("openssl", "s_client", "-connect", addr, "-CAfile",
                            (char *)P("cert.pem"), "-verify_return_error", "-sess_in", sess),
                   "again\n", "again\n");
    cr_assert(strstr(out, "Reused, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384") != NULL, "%s", out);
    cr_assert_eq(exit_code(&g_c, 10000), 0);
    th_close_fds(&g_c);
    free(out);
    stop(&g_s);
    cleanup();
}

Test(tls_interop, serve_echo_answers_ncat_ssl_and_socat_openssl)
{
    certs();
    char port[16], socat_addr[256];
    echo_server(&g_s, port, P("cert.pem"), P("key.pem"), NULL);
    expect_echo(ARGS("ncat", "--ssl", "--ssl-verify", "--ssl-trustfile",
                                  (char *)P("cert.pem"), "localhost", port),
                "ncat says hi\n", "ncat says hi\n", -1);
    snprintf(socat_addr, sizeof socat_addr, "OPENSSL:127.0.0.1:%s,cafile=%s", port,
             P("cert.pem"));
    expect_echo(ARGS("socat", "-", socat_addr),
                "socat says hi\n", "socat says hi\n", 0);
    stop(&g_s);
    cleanup();
}

/* ---- their servers, our client ---------------------------------------------- */

Test(tls_interop, connect_talks_to_openssl_s_server_ncat_and_socat)
{
    certs();
    char port[16], accept_spec[256];
    /* s_server -rev sends each line back reversed; it says ACCEPT when
     * ready (a probe would use up its one connection). */
    int pt = free_port();
    snprintf(port, sizeof port, "%d", pt);
    cr_assert_eq(th_spawn(&g_srv, ARGS("openssl", "s_server", "-accept", port, "-cert",
                                     (char *)P("cert.pem"), "-key", (char *)P("key.pem"),
                                     "-rev", "-naccept", "1")), 0);
    char tmp[1024];
    cr_assert(th_read_until(g_srv.out, "ACCEPT", tmp, sizeof tmp, 10000), "%s", tmp);
    expect_echo(CLI("connect", "--tls-ca", (char *)P("cert.pem"), "127.0.0.1", port),
                "sockstack\n", "kcatskcos\n", -1);
    th_reap(&g_srv);
    /* ncat --ssl running cat (-k: the readiness probe is one connection). */
    pt = free_port();
    snprintf(port, sizeof port, "%d", pt);
    cr_assert_eq(th_spawn(&g_srv, ARGS("ncat", "-l", "-k", "--ssl", "--ssl-cert",
                                     (char *)P("cert.pem"), "--ssl-key", (char *)P("key.pem"),
                                     "127.0.0.1", port, "-e", "/bin/cat")), 0);
    wait_port(pt);
    expect_echo(CLI("connect", "--tls-ca", (char *)P("cert.pem"), "localhost", port),
                "to ncat and back\n", "to ncat and back\n", -1);
    th_reap(&g_srv);
    /* socat OPENSSL-LISTEN running cat (fork: a process per connection). */
    pt = free_port();
    snprintf(port, sizeof port, "%d", pt);
    snprintf(accept_spec, sizeof accept_spec, "OPENSSL-LISTEN:%d,bind=127.0.0.1,cert=%s,key=%s,"
             "verify=0,reuseaddr,fork", pt, P("cert.pem"), P("key.pem"));
    cr_assert_eq(th_spawn(&g_srv, ARGS("socat", accept_spec, "EXEC:cat")), 0);
    wait_port(pt);
    expect_echo(CLI("connect", "--tls-ca", (char *)P("cert.pem"), "127.0.0.1", port),
                "to socat and back\n", "to socat and back\n", -1);
    th_reap(&g_srv);
    cleanup();
}

/* ---- refusals ----------------------------------------------------------------- */

Test(tls_interop, a_wrong_ca_is_refused_both_ways)
{
    certs();
    char port[16], addr[32];
    echo_server(&g_s, port, P("cert.pem"), P("key.pem"), NULL);
    const char *const a[] = {"connect", "--tls-ca", in_dir(odir, "cert.pem"), "127.0.0.1", port,
                             NULL};
    expect_tls_refusal(a, port, "certificate verify failed: self-signed certificate");
    /* s_client trusting the other pair stops too. */
    snprintf(addr, sizeof addr, "127.0.0.1:%s", port);
    cr_assert_eq(th_spawn(&g_c, ARGS("openssl", "s_client", "-connect", addr, "-CAfile",
                                   (char *)in_dir(odir, "cert.pem"), "-verify_return_error")), 0);
    close(g_c.in);
    g_c.in = -1;
    char *err = read_fd(g_c.err);
    cr_assert_eq(exit_code(&g_c, 10000), 1);
    cr_assert(strstr(err, "verify error:num=18:self-signed certificate") != NULL, "%s", err);
    free(err);
    th_close_fds(&g_c);
    stop(&g_s);
    cleanup();
}

Test(tls_interop, an_expired_certificate_is_refused)
{
    certs();
    char port[16];
    echo_server(&g_s, port, P("expired.pem"), P("expired.key"), NULL);
    const char *const a[] = {"connect", "--tls-ca", P("expired.pem"), "127.0.0.1", port, NULL};
    expect_tls_refusal(a, port, "certificate verify failed: certificate has expired");
    /* --tls-insecure (tests only) takes it anyway: the check above is the
     * date, nothing else. */
    expect_echo(CLI("connect", "--tls-insecure", "127.0.0.1", port),
                "old\n", "old\n", -1);
    stop(&g_s);
    cleanup();
}

Test(tls_interop, a_client_certificate_is_required_with_tls_ca)
{
    certs();
    char port[16], addr[32];
    echo_server(&g_s, port, P("cert.pem"), P("key.pem"), P("ca.pem"));
    /* Ours without a certificate: refused, saying why. */
    const char *const a[] = {"connect", "--tls-ca", P("cert.pem"), "127.0.0.1", port, NULL};
    expect_tls_refusal(a, port, "tlsv13 alert certificate required");
    /* openssl s_client without one: the same alert. */
    snprintf(addr, sizeof addr, "127.0.0.1:%s", port);
    cr_assert_eq(th_spawn(&g_c, ARGS("openssl", "s_client", "-connect", addr, "-CAfile",
                                   (char *)P("cert.pem"), "-quiet")), 0);
    th_write_all(g_c.in, "x\n", 2);
    char err[4096];
    cr_assert(th_read_until(g_c.err, "tlsv13 alert certificate required", err, sizeof err, 10000),
              "%s", err);
    th_reap(&g_c);
    /* With the client certificate the CA signed: accepted, both clients. */
    expect_echo(CLI("connect", "--tls-ca", (char *)P("cert.pem"), "--tls-cert",
                                 (char *)P("client.pem"), "--tls-key", (char *)P("client.key"),
                                 "127.0.0.1", port),
                "with a certificate\n", "with a certificate\n", 0);
    expect_echo(ARGS("openssl", "s_client", "-connect", addr, "-CAfile",
                            (char *)P("cert.pem"), "-cert", (char *)P("client.pem"), "-key",
                            (char *)P("client.key"), "-quiet", "-no_ign_eof"),
                "s_client with one\n", "s_client with one\n", -1);
    /* A certificate of another CA (our keygen pair): unknown CA. */
    const char *const b[] = {"connect", "--tls-ca", P("cert.pem"), "--tls-cert", P("cert.pem"),
                             "--tls-key", P("key.pem"), "127.0.0.1", port, NULL};
    expect_tls_refusal(b, port, "tlsv1 alert unknown ca");
    stop(&g_s);
    cleanup();
}

/* ---- authenticated services inside TLS ------------------------------------------ */

Test(tls_interop, exec_runs_with_auth_inside_tls)
{
    certs();
    char port[16], key[128], okey[128];
    snprintf(key, sizeof key, "%s/auth.key", dir);
    snprintf(okey, sizeof okey, "%s/other.key", dir);
    const char *const kg[] = {"keygen", key, NULL};
    struct th_result r = th_run_cli(kg, 10000);
    th_result_free(&r);
    const char *const kg2[] = {"keygen", okey, NULL};
    r = th_run_cli(kg2, 10000);
    th_result_free(&r);
    serve(&g_s, port, ARGS("exec", "--key-file", key, "--tls-cert", (char *)P("cert.pem"),
                         "--tls-key", (char *)P("key.pem")));
    const char *const a[] = {"exec", "--tls-ca", P("cert.pem"), "-k", key, "127.0.0.1", port,
                             "--", "echo inside tls; exit 7", NULL};
    r = th_run_cli(a, 20000);
    cr_assert_eq(r.status, 7, "%s", r.err);
    cr_assert_str_eq(r.out, "inside tls\n");
    cr_assert_str_eq(r.err, "");
    th_result_free(&r);
    /* The wrong key inside TLS: the HMAC handshake still decides. */
    const char *const b[] = {"exec", "--tls-ca", P("cert.pem"), "-k", okey, "127.0.0.1", port,
                             "--", "echo no", NULL};
    r = th_run_cli(b, 20000);
    cr_assert_eq(r.status, 255);
    cr_assert_str_eq(r.out, "");
    char want[256];
    snprintf(want, sizeof want, "sockstack: 127.0.0.1 port %s closed the connection during "
             "authentication (wrong key, or not a sockstack service)\n", port);
    cr_assert_str_eq(r.err, want);
    th_result_free(&r);
    /* TLS refused first: a wrong CA never reaches the key. */
    const char *const c[] = {"exec", "--tls-ca", in_dir(odir, "cert.pem"), "-k", key,
                             "127.0.0.1", port, "--", "echo no", NULL};
    r = th_run_cli(c, 20000);
    cr_assert_eq(r.status, 255);
    snprintf(want, sizeof want, "sockstack: TLS with 127.0.0.1 port %s failed: certificate "
             "verify failed: self-signed certificate\n", port);
    cr_assert_str_eq(r.err, want);
    th_result_free(&r);
    stop(&g_s);
    cleanup();
}

Test(tls_interop, files_put_get_ls_over_tls)
{
    certs();
    char port[16], key[128], root[128], src[128], back[128];
    snprintf(key, sizeof key, "%s/auth.key", dir);
    snprintf(root, sizeof root, "%s/root", dir);
    snprintf(src, sizeof src, "%s/src.bin", dir);
    snprintf(back, sizeof back, "%s/back.bin", dir);
    mkdir(root, 0700);
    const char *const kg[] = {"keygen", key, NULL};
    struct th_result r = th_run_cli(kg, 10000);
    th_result_free(&r);
    /* 3 MiB + 5 bytes: many records, a partial last one. */
    size_t len = (3u << 20) + 5;
    uint8_t *data = malloc(len);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i * 7 + (i >> 13));
    FILE *f = fopen(src, "wb");
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
    serve(&g_s, port, ARGS("files", "--root", root, "--key-file", key, "--tls-cert",
                         (char *)P("cert.pem"), "--tls-key", (char *)P("key.pem")));
    const char *const put[] = {"put", "-q", "--tls-ca", P("cert.pem"), "-k", key, "127.0.0.1",
                               port, src, "f.bin", NULL};
    r = th_run_cli(put, 60000);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_result_free(&r);
    const char *const get[] = {"get", "-q", "--tls-ca", P("cert.pem"), "-k", key, "127.0.0.1",
                               port, "f.bin", back, NULL};
    r = th_run_cli(get, 60000);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_result_free(&r);
    f = fopen(back, "rb");
    cr_assert_not_null(f);
    uint8_t *got = malloc(len + 1);
    cr_assert_eq(fread(got, 1, len + 1, f), len);
    fclose(f);
    cr_assert_eq(memcmp(got, data, len), 0);
    const char *const ls[] = {"ls", "--tls-ca", P("cert.pem"), "-k", key, "127.0.0.1", port,
                              NULL};
    r = th_run_cli(ls, 20000);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, " 3145733 ") != NULL && strstr(r.out, " f.bin\n") != NULL, "%s",
              r.out);
    th_result_free(&r);
    free(got);
    free(data);
    stop(&g_s);
    cleanup();
}

/* ---- the command line ---------------------------------------------------------- */

Test(tls_interop, keygen_tls_and_option_conflicts)
{
    certs();
    struct stat st;
    cr_assert_eq(stat(P("key.pem"), &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    cr_assert_eq(stat(P("cert.pem"), &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0644);
    const char *const again[] = {"keygen", "--tls", dir, NULL};
    struct th_result r = th_run_cli(again, 10000);
    cr_assert_eq(r.status, 1);
    char want[256];
    snprintf(want, sizeof want, "sockstack: %s/key.pem exists (use --force to replace it)\n", dir);
    cr_assert_str_eq(r.err, want);
    th_result_free(&r);
    const char *const a[] = {"serve", "echo", "--tls-key", P("key.pem"), NULL};
    r = th_run_cli(a, 10000);
    cr_assert_eq(r.status, 2);
    cr_assert_str_eq(r.err, "sockstack: serve: --tls-key needs --tls-cert "
                            "(see 'sockstack serve --help')\n");
    th_result_free(&r);
    const char *const b[] = {"connect", "--tls-insecure", "--tls-ca", P("cert.pem"), "h", "1",
                             NULL};
    r = th_run_cli(b, 10000);
    cr_assert_eq(r.status, 2);
    cr_assert_str_eq(r.err, "sockstack: connect: --tls-insecure and --tls-ca exclude each "
                            "other (see 'sockstack connect --help')\n");
    th_result_free(&r);
    const char *const c[] = {"serve", "echo", "--udp", "--tls-cert", P("cert.pem"),
                             "--tls-key", P("key.pem"), NULL};
    r = th_run_cli(c, 10000);
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "TLS runs over streams") != NULL, "%s", r.err);
    th_result_free(&r);
    const char *const d[] = {"serve", "echo", "--tls-cert", "/nonexistent.pem", "--tls-key",
                             P("key.pem"), NULL};
    r = th_run_cli(d, 10000);
    cr_assert_eq(r.status, 1);
    cr_assert_str_eq(r.err, "sockstack: TLS: /nonexistent.pem: No such file or directory\n");
    th_result_free(&r);
    cleanup();
}
