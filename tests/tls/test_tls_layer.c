/* The TLS layer of sock/ in one process: an echo server of the framework
 * with a server context, clients through ss_dial on their own loop. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sockstack/dial.h"
#include "sockstack/echo.h"
#include "sockstack/err.h"
#include "sockstack/server.h"
#include "sockstack/tls.h"

static void teardown(void);
TestSuite(tls_layer, .timeout = 60, .fini = teardown);

struct srv {
    ss_server *srv;
    ss_tls_ctx *ctx;
    pthread_t tid;
    char port[16];
};

static void *srv_thread(void *arg)
{
    struct srv *s = arg;
    ss_server_run(s->srv);
    return NULL;
}

static char dir_a[64], dir_b[64];

static void make_dirs(void)
{
    snprintf(dir_a, sizeof dir_a, "/tmp/ss-tls-a-XXXXXX");
    snprintf(dir_b, sizeof dir_b, "/tmp/ss-tls-b-XXXXXX");
    cr_assert_not_null(mkdtemp(dir_a));
    cr_assert_not_null(mkdtemp(dir_b));
    char err[256];
    cr_assert_eq(ss_tls_keygen(dir_a, 30, false, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ss_tls_keygen(dir_b, 30, false, err, sizeof err), 0, "%s", err);
}

static void rm_dir(char *d)
{
    if (!d[0])
        return;
    char p[128];
    snprintf(p, sizeof p, "%s/cert.pem", d);
    unlink(p);
    snprintf(p, sizeof p, "%s/key.pem", d);
    unlink(p);
    rmdir(d);
    d[0] = '\0';
}

/* Also after a failed assertion: no key pairs left in /tmp. */
static void teardown(void)
{
    rm_dir(dir_a);
    rm_dir(dir_b);
}

static void path(char *out, size_t cap, const char *dir, const char *f)
{
    snprintf(out, cap, "%s/%s", dir, f);
}

/* A server context with the pair of dir; ca: require client certificates. */
static ss_tls_ctx *server_ctx(const char *dir, const char *ca)
{
    char cert[128], key[128], err[256];
    path(cert, sizeof cert, dir, "cert.pem");
    path(key, sizeof key, dir, "key.pem");
    ss_tls_opts to;
    ss_tls_opts_init(&to);
    to.cert = cert;
    to.key = key;
    to.ca = ca;
    ss_tls_ctx *c;
    cr_assert_eq(ss_tls_ctx_new(&to, true, &c, err, sizeof err), 0, "%s", err);
    return c;
}

/* An echo server with the pair of dir; ca: require client certificates. */
static void srv_start(struct srv *s, const char *dir, const char *ca, int model)
{
    s->ctx = server_ctx(dir, ca);
    ss_server_opts o;
    ss_server_opts_init(&o);
    o.bind_host = "127.0.0.1";
    o.port = "0";
    o.handle_signals = false;
    o.tls = s->ctx;
    o.model = model;
    cr_assert_eq(ss_server_new(ss_echo_service(), &o, &s->srv), 0);
    ss_addr a;
    ss_server_addr(s->srv, &a);
    snprintf(s->port, sizeof s->port, "%d", ss_addr_port(&a));
    cr_assert_eq(pthread_create(&s->tid, NULL, srv_thread, s), 0);
}

static void srv_stop(struct srv *s)
{
    ss_server_stop(s->srv);
    pthread_join(s->tid, NULL);
    ss_server_free(s->srv);
    ss_tls_ctx_free(s->ctx);
}

static ss_tls_ctx *client_ctx(const char *ca, const char *dir_cert)
{
    char cert[128], key[128], err[256];
    ss_tls_opts to;
    ss_tls_opts_init(&to);
    to.ca = ca;
    if (dir_cert) {
        path(cert, sizeof cert, dir_cert, "cert.pem");
        path(key, sizeof key, dir_cert, "key.pem");
        to.cert = cert;
        to.key = key;
    }
    ss_tls_ctx *c;
    cr_assert_eq(ss_tls_ctx_new(&to, false, &c, err, sizeof err), 0, "%s", err);
    return c;
}

/* Send len bytes of a pattern, read them back; returns what recv gave
 * when it failed (or 0 when all came back equal). */
static int echo_round(ss_loop *loop, ss_sock *s, size_t len)
{
    uint8_t *out = malloc(len), *in = malloc(len);
    for (size_t i = 0; i < len; i++)
        out[i] = (uint8_t)(i * 31 + i / 251);
    size_t sent = 0, got = 0;
    int rc = 0;
    while (got < len && rc == 0) {
        if (sent < len) {
            ssize_t n = ss_sock_send(s, out + sent, len - sent);
            if (n > 0)
                sent += (size_t)n;
            else if (n != -EAGAIN)
                rc = (int)n;
        }
        ssize_t n = ss_sock_recv(s, in + got, len - got);
        if (n > 0)
            got += (size_t)n;
        else if (n == 0)
            rc = -ECONNRESET;
        else if (n != -EAGAIN)
            rc = (int)n;
        else if (ss_sock_wait(s, loop, SS_READ | (sent < len ? SS_WRITE : 0), 10000) < 0)
            rc = -ETIMEDOUT;
    }
    if (rc == 0)
        cr_assert_eq(memcmp(in, out, len), 0, "echoed bytes differ");
    free(out);
    free(in);
    return rc;
}

static int dial(ss_loop *loop, ss_tls_ctx *c, const char *host, const char *port,
                const char *servername, ss_sock **s, char *err, size_t cap)
{
    ss_dial_opts o;
    ss_dial_opts_init(&o);
    o.tls = c;
    o.servername = servername;
    return ss_dial(loop, host, port, &o, s, err, cap);
}

Test(tls_layer, keygen_writes_a_private_key_and_a_verifying_pair)
{
    make_dirs();
    char p[128];
    struct stat st;
    path(p, sizeof p, dir_a, "key.pem");
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    path(p, sizeof p, dir_a, "cert.pem");
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0644);
    char err[256];
    cr_assert_eq(ss_tls_keygen(dir_a, 30, false, err, sizeof err), -EEXIST);
    cr_assert(strstr(err, "exists") != NULL, "%s", err);
    rm_dir(dir_a);
    rm_dir(dir_b);
}

Test(tls_layer, echo_exact_bytes_and_the_second_connection_resumes)
{
    make_dirs();
    struct srv s;
    srv_start(&s, dir_a, NULL, SS_MODEL_EVENT);
    char ca[128], err[256];
    path(ca, sizeof ca, dir_a, "cert.pem");
    ss_tls_ctx *c = client_ctx(ca, NULL);
    ss_loop *loop;
    cr_assert_eq(ss_loop_new(&loop), 0);
    for (int round = 0; round < 2; round++) {
        ss_sock *cs;
        cr_assert_eq(dial(loop, c, "127.0.0.1", s.port, NULL, &cs, err, sizeof err), 0,
                     "%s", err);
        cr_assert(ss_sock_is_tls(cs));
        /* 3 MiB: many records, a full socket, the stage and held plaintext. */
        cr_assert_eq(echo_round(loop, cs, 3u << 20), 0);
        cr_assert_eq(echo_round(loop, cs, 5), 0);
        char d[256];
        cr_assert_gt(ss_tls_describe(cs, d, sizeof d), 0);
        cr_assert(strncmp(d, "TLSv1.3 ", 8) == 0, "%s", d);
        cr_assert_eq(ss_tls_resumed(cs), round == 1, "round %d: %s", round, d);
        ss_sock_close(cs);
    }
    ss_loop_free(loop);
    ss_tls_ctx_free(c);
    srv_stop(&s);
    rm_dir(dir_a);
    rm_dir(dir_b);
}

Test(tls_layer, wrong_ca_and_wrong_name_are_refused_with_the_reason)
{
    make_dirs();
    struct srv s;
    srv_start(&s, dir_a, NULL, SS_MODEL_EVENT);
    char ca_b[128], ca_a[128], err[256];
    path(ca_b, sizeof ca_b, dir_b, "cert.pem");
    path(ca_a, sizeof ca_a, dir_a, "cert.pem");
    ss_loop *loop;
    cr_assert_eq(ss_loop_new(&loop), 0);
    ss_tls_ctx *c = client_ctx(ca_b, NULL);
    ss_sock *cs;
    cr_assert_eq(dial(loop, c, "127.0.0.1", s.port, NULL, &cs, err, sizeof err),
                 SS_ETLSVERIFY);
    char want[256];
    snprintf(want, sizeof want, "TLS with 127.0.0.1 port %s failed: certificate verify "
             "failed: self-signed certificate", s.port);
    cr_assert_str_eq(err, want);
    cr_assert_null(cs);
    ss_tls_ctx_free(c);
    c = client_ctx(ca_a, NULL);
    cr_assert_eq(dial(loop, c, "127.0.0.1", s.port, "example.org", &cs, err, sizeof err),
                 SS_ETLSVERIFY);
    snprintf(want, sizeof want, "TLS with 127.0.0.1 port %s failed: certificate verify "
             "failed: hostname mismatch", s.port);
    cr_assert_str_eq(err, want);
    cr_assert_eq(dial(loop, c, "127.0.0.1", s.port, "localhost", &cs, err, sizeof err), 0,
                 "%s", err);
    ss_sock_close(cs);
    ss_tls_ctx_free(c);
    ss_loop_free(loop);
    srv_stop(&s);
    rm_dir(dir_a);
    rm_dir(dir_b);
}

/* A client trusting ca and showing the pair in cert_dir (or none) is
 * refused by the server with the alert want: at the handshake or, TLS 1.3,
 * at its first read. */
static void expect_refused(ss_loop *loop, const char *ca, const char *cert_dir,
                           const char *port, const char *want)
{
    char err[256];
    ss_tls_ctx *c = client_ctx(ca, cert_dir);
    ss_sock *cs;
    int rc = dial(loop, c, "127.0.0.1", port, NULL, &cs, err, sizeof err);
    if (rc == 0) {
        rc = echo_round(loop, cs, 5);
        ss_tls_error(cs, err, sizeof err);
        ss_sock_close(cs);
    }
    cr_assert_eq(rc, SS_ETLS, "%s: %s", ss_err_name(rc), err);
    cr_assert_str_eq(err, want);
    ss_tls_ctx_free(c);
}

Test(tls_layer, a_required_client_certificate_is_checked)
{
    make_dirs();
    char ca_b[128], ca_a[128], err[256];
    path(ca_b, sizeof ca_b, dir_b, "cert.pem");
    path(ca_a, sizeof ca_a, dir_a, "cert.pem");
    struct srv s;
    srv_start(&s, dir_a, ca_b, SS_MODEL_THREAD); /* clients must show pair b */
    ss_loop *loop;
    cr_assert_eq(ss_loop_new(&loop), 0);
    /* Without a certificate: TLS 1.3 lets the client finish first; the
     * server's alert comes with the first read. */
    expect_refused(loop, ca_a, NULL, s.port, "tlsv13 alert certificate required");
    /* The wrong certificate (pair a, not signed by b). */
    expect_refused(loop, ca_a, dir_a, s.port, "tlsv1 alert unknown ca");
    /* The right one. */
    ss_sock *cs;
    ss_tls_ctx *c = client_ctx(ca_a, dir_b);
    cr_assert_eq(dial(loop, c, "127.0.0.1", s.port, NULL, &cs, err, sizeof err), 0, "%s", err);
    cr_assert_eq(echo_round(loop, cs, 100000), 0);
    ss_sock_close(cs);
    ss_tls_ctx_free(c);
    ss_loop_free(loop);
    srv_stop(&s);
    rm_dir(dir_a);
    rm_dir(dir_b);
}

Test(tls_layer, bad_configuration_says_which_file)
{
    char err[256];
    ss_tls_opts to;
    ss_tls_opts_init(&to);
    to.cert = "/nonexistent/cert.pem";
    to.key = "/nonexistent/key.pem";
    ss_tls_ctx *c;
    cr_assert_eq(ss_tls_ctx_new(&to, true, &c, err, sizeof err), SS_ETLSCONF);
    cr_assert_str_eq(err, "/nonexistent/cert.pem: No such file or directory");
    ss_tls_opts_init(&to);
    cr_assert_eq(ss_tls_ctx_new(&to, true, &c, err, sizeof err), SS_ETLSCONF);
    cr_assert_str_eq(err, "a TLS server needs a certificate and a key");
}

/* ---- send_all hands everything to the kernel ------------------------------ */

/* The receiving end of a raw TLS pair in one loop: accepts one connection,
 * puts TLS on it, and reads whatever comes, checking the pattern. */
struct sink {
    ss_sock *ls, *ss;
    ss_tls_ctx *ctx;
    ss_loop *loop;
    size_t got;
    bool bad;     /* a byte differed from the pattern */
    int err;      /* recv's failure, or 0 */
};

static uint8_t pattern_at(size_t i)
{
    return (uint8_t)(i * 31 + i / 251);
}

static void sink_read(ss_sock *s, unsigned ev, void *arg)
{
    struct sink *k = arg;
    uint8_t buf[16384];
    ssize_t n;
    while ((n = ss_sock_recv(s, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            k->bad |= buf[i] != pattern_at(k->got + (size_t)i);
        k->got += (size_t)n;
    }
    if (n != -EAGAIN)
        k->err = n == 0 ? -EPIPE : (int)n;
}

static void sink_accept(ss_sock *ls, unsigned ev, void *arg)
{
    struct sink *k = arg;
    ss_sock *c = NULL;
    if (ss_sock_accept(ls, &c, NULL) != 0)
        return;
    ss_sock_unwatch(ls);
    cr_assert_eq(ss_tls_wrap(k->ctx, c, NULL, &k->ss), 0);
    cr_assert_eq(ss_sock_watch(k->ss, k->loop, SS_READ, sink_read, k), 0);
}

/* ss_stream_send_all returns once the TLS layer holds nothing: a sender
 * that then stops running its loop (waits for a child, as bench/frame
 * does, or closes) must not leave the last records behind. Tiny socket
 * buffers make the kernel refuse most of the last 64 KiB send. */
Test(tls_layer, send_all_leaves_nothing_in_the_layer)
{
    make_dirs();
    char cert[128], err[256];
    path(cert, sizeof cert, dir_a, "cert.pem");
    struct sink k = {.ctx = server_ctx(dir_a, NULL)};
    cr_assert_eq(ss_loop_new(&k.loop), 0);
    ss_sockopts small;
    ss_sockopts_init(&small);
    small.rcvbuf = 4096;
    small.sndbuf = 4096;
    ss_addr a;
    cr_assert_eq(ss_addr_resolve("127.0.0.1", "0", AF_INET, SS_STREAM, true, &a, 1), 1);
    cr_assert_eq(ss_sock_listen_on(ss_backend_kernel(), &a, SS_STREAM, &small, 4, &k.ls, NULL), 0);
    cr_assert_eq(ss_sock_local_addr(k.ls, &a), 0);
    char port[16];
    snprintf(port, sizeof port, "%d", ss_addr_port(&a));
    cr_assert_eq(ss_sock_watch(k.ls, k.loop, SS_READ, sink_accept, &k), 0);

    ss_tls_ctx *c = client_ctx(cert, NULL);
    ss_dial_opts o;
    ss_dial_opts_init(&o);
    o.tls = c;
    o.sockopts = &small;
    ss_sock *cs;
    cr_assert_eq(ss_dial(k.loop, "127.0.0.1", port, &o, &cs, err, sizeof err), 0, "%s", err);
    const size_t len = 1u << 20;
    uint8_t *out = malloc(len);
    for (size_t i = 0; i < len; i++)
        out[i] = pattern_at(i);
    ss_stream st = {.sock = cs, .loop = k.loop, .timeout_ms = 20000};
    cr_assert_eq(ss_stream_send_all(&st, out, len), 0);
    cr_assert_eq(ss_tls_unsent(cs), 0);
    cr_assert_eq(ss_tls_unsent(k.ls), 0, "a plain socket holds nothing");

    /* From now on only the receiver runs (its own loop): what the kernel
     * has arrives, what the client's layer kept would not. A wait that
     * sees nothing for 3 s ends it (nothing is in flight by then). */
    ss_sock_unwatch(k.ss);
    ss_loop *rx;
    cr_assert_eq(ss_loop_new(&rx), 0);
    while (k.got < len && !k.err && ss_sock_wait(k.ss, rx, SS_READ, 3000) > 0)
        sink_read(k.ss, SS_READ, &k);
    cr_assert_eq(k.got, len, "the receiver got %zu of %zu bytes", k.got, len);
    cr_assert_eq(k.err, 0, "%s", ss_err_name(k.err));
    cr_assert_not(k.bad, "received bytes differ");

    ss_sock_close(cs);
    ss_sock_close(k.ss);
    ss_sock_close(k.ls);
    ss_loop_free(rx);
    ss_loop_free(k.loop);
    ss_tls_ctx_free(c);
    ss_tls_ctx_free(k.ctx);
    free(out);
    rm_dir(dir_a);
    rm_dir(dir_b);
}
