/* TLS as an ss_sock over another ss_sock (see sockstack/tls.h).
 *
 * Paths:
 *   RX: inner readable -> inner_cb -> (handshake step) -> user SS_READ ->
 *       ss_sock_recv -> tls_recv -> SSL_read -> bio_read -> rbuf, refilled by
 *       ss_sock_recv(inner) of up to SS_TLS_READ_AHEAD bytes
 *   TX: ss_sock_sendv -> tls_sendv -> SSL_write (from the caller's buffer, or
 *       from the stage when the socket was full) -> bio_write ->
 *       ss_sock_send(inner)
 * The inner socket's interest is recomputed (tls_rewatch) after every SSL
 * call: what the handshake, the reader and the stage each wait for.
 */
#include "sockstack/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "sock/sock_internal.h"
#include "sockstack/config.h"
#include "sockstack/err.h"

struct ss_tls_ctx {
    SSL_CTX *ctx;
    bool server;
    pthread_mutex_t mu;  /* guards sess */
    SSL_SESSION *sess;   /* client: the last ticket, offered next time */
};

struct tls_sock {
    ss_sock *inner;
    ss_tls_ctx *ctx;
    SSL *ssl;
    unsigned hs_want;    /* inner events the handshake waits for */
    unsigned rd_want;    /* ... SSL_read waits for (SS_READ, rarely WRITE) */
    unsigned st_want;    /* ... the stage's SSL_write waits for */
    bool hs_done;
    bool shut_pending;   /* SHUT_WR asked: close_notify after the stage */
    bool shut_done;
    int err;             /* sticky failure */
    int io_err;          /* last error of the inner socket (from the BIO) */
    long verify;         /* X509_V_OK or why the peer did not verify */
    unsigned long ossl;  /* first OpenSSL error of the failure */
    uint8_t *stage;      /* bytes accepted from the caller, not yet sent */
    size_t stage_len;
    uint8_t *wbuf;       /* records OpenSSL wrote, not yet sent: one send
                          * for several records instead of one each */
    size_t wbuf_len, wbuf_off;
    uint8_t *rbuf;       /* bytes from the socket OpenSSL has not asked
                          * for yet: one recv() for several records */
    size_t rbuf_len, rbuf_off;
    bool starved;        /* SSL_read wants bytes the socket has not given */
    bool notify_sent;    /* close_notify written (maybe still in wbuf) */
    ss_defer pending;    /* plaintext held by OpenSSL: deliver SS_READ */
};

static void tls_rewatch(ss_sock *s);

static void err_set(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void err_set(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

/* The reason of the first queued OpenSSL error ("no such file"), or dflt. */
static const char *ossl_reason(const char *dflt)
{
    unsigned long e = ERR_peek_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : dflt;
}

/* ---- the BIO: OpenSSL reads and writes the inner ss_sock ---------------- */

/* Send what wbuf holds: 0 when empty, -EAGAIN, or the socket's error. */
static int wbuf_flush(struct tls_sock *t)
{
    while (t->wbuf_off < t->wbuf_len) {
        ssize_t n = ss_sock_send(t->inner, t->wbuf + t->wbuf_off, t->wbuf_len - t->wbuf_off);
        if (n == -EAGAIN || n == -EINTR)
            return -EAGAIN;
        if (n < 0) {
            t->io_err = (int)n;
            return (int)n;
        }
        t->wbuf_off += (size_t)n;
    }
    t->wbuf_len = t->wbuf_off = 0;
    return 0;
}

/* Records are collected in wbuf and sent together when it fills, when
 * OpenSSL flushes (handshake flights), or at the end of each of our calls
 * into OpenSSL (wbuf_flush after every SSL_* call that writes). */
static int bio_write(BIO *b, const char *p, int len)
{
    struct tls_sock *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (t->wbuf_len + (size_t)len > SS_TLS_WBUF) {
        int rc = wbuf_flush(t);
        if (rc < 0 && rc != -EAGAIN)
            return -1;
        if (t->wbuf_off > 0) { /* keep the unsent tail at the front */
            memmove(t->wbuf, t->wbuf + t->wbuf_off, t->wbuf_len - t->wbuf_off);
            t->wbuf_len -= t->wbuf_off;
            t->wbuf_off = 0;
        }
        if (t->wbuf_len + (size_t)len > SS_TLS_WBUF) {
            BIO_set_retry_write(b);
            return -1;
        }
    }
    if (!t->wbuf && !(t->wbuf = malloc(SS_TLS_WBUF)))
        return -1;
    memcpy(t->wbuf + t->wbuf_len, p, (size_t)len);
    t->wbuf_len += (size_t)len;
    return len;
}

/* OpenSSL asks for a record's 5-byte header, then for its body, exactly
 * (its own read-ahead is off): both come from rbuf, which one recv() fills
 * with several records. OpenSSL 3.0's read-ahead would do the same, but it
 * moves what is left of its buffer to the front before every record: 1.5
 * bytes moved per byte received with a 64 KiB buffer (callgrind). */
static int bio_read(BIO *b, char *p, int len)
{
    struct tls_sock *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (t->rbuf_off == t->rbuf_len) {
        if (!t->rbuf && !(t->rbuf = malloc(SS_TLS_READ_AHEAD)))
            return -1;
        ssize_t n = ss_sock_recv(t->inner, t->rbuf, SS_TLS_READ_AHEAD);
        if (n == -EAGAIN || n == -EINTR) {
            BIO_set_retry_read(b);
            return -1;
        }
        if (n < 0) {
            t->io_err = (int)n;
            return -1;
        }
        if (n == 0)
            return 0;
        t->rbuf_len = (size_t)n;
        t->rbuf_off = 0;
    }
    size_t n = t->rbuf_len - t->rbuf_off;
    if (n > (size_t)len)
        n = (size_t)len;
    memcpy(p, t->rbuf + t->rbuf_off, n);
    t->rbuf_off += n;
    if (t->rbuf_off == t->rbuf_len)
        t->rbuf_off = t->rbuf_len = 0;
    return (int)n;
}

/* Bytes are waiting inside the layer (plaintext or records OpenSSL holds,
 * or received bytes in rbuf): no readiness of the inner socket will say so. */
static bool held(const struct tls_sock *t)
{
    return t->rbuf_off < t->rbuf_len || SSL_has_pending(t->ssl);
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    if (cmd != BIO_CTRL_FLUSH)
        return 0;
    struct tls_sock *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    int rc = wbuf_flush(t);
    if (rc == 0)
        return 1;
    if (rc == -EAGAIN)
        BIO_set_retry_write(b);
    return -1;
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static void bio_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                                 "sockstack");
    if (m && BIO_meth_set_write(m, bio_write) && BIO_meth_set_read(m, bio_read) &&
        BIO_meth_set_ctrl(m, bio_ctrl) && BIO_meth_set_create(m, bio_create))
        bio_method = m;
    else
        BIO_meth_free(m);
}

/* ---- contexts -------------------------------------------------------------- */

void ss_tls_opts_init(ss_tls_opts *o)
{
    memset(o, 0, sizeof *o);
}

static int new_session(SSL *ssl, SSL_SESSION *sess)
{
    ss_tls_ctx *c = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    pthread_mutex_lock(&c->mu);
    if (c->sess)
        SSL_SESSION_free(c->sess);
    c->sess = sess;
    pthread_mutex_unlock(&c->mu);
    return 1; /* we keep the reference */
}

/* 0 if path can be read, else SS_ETLSCONF with "PATH: reason" in err:
 * clearer than OpenSSL's "system lib". */
static int readable(const char *path, char *err, size_t cap)
{
    if (access(path, R_OK) == 0)
        return 0;
    err_set(err, cap, "%s: %s", path, strerror(errno));
    return SS_ETLSCONF;
}

/* Load cert and key into ctx; 0 or SS_ETLSCONF with the reason in err. */
static int load_pair(SSL_CTX *ctx, const char *cert, const char *key, char *err,
                     size_t cap)
{
    if (readable(cert, err, cap) < 0 || readable(key, err, cap) < 0)
        return SS_ETLSCONF;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        err_set(err, cap, "%s: cannot load the certificate: %s", cert,
                ossl_reason("not a PEM certificate"));
        return SS_ETLSCONF;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        err_set(err, cap, "%s: cannot load the private key: %s", key,
                ossl_reason("not a PEM private key"));
        return SS_ETLSCONF;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        err_set(err, cap, "%s does not match the certificate in %s", key, cert);
        return SS_ETLSCONF;
    }
    return 0;
}

int ss_tls_ctx_new(const ss_tls_opts *o, bool server, ss_tls_ctx **out,
                   char *err, size_t cap)
{
    *out = NULL;
    err_set(err, cap, "%s", "");
    if (server && (!o->cert || !o->key)) {
        err_set(err, cap, "a TLS server needs a certificate and a key");
        return SS_ETLSCONF;
    }
    if (!o->cert != !o->key) {
        err_set(err, cap, "a certificate needs its key, and a key its certificate");
        return SS_ETLSCONF;
    }
    ss_tls_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    pthread_mutex_init(&c->mu, NULL);
    c->server = server;
    ERR_clear_error();
    c->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    int rc = 0;
    if (!c->ctx) {
        err_set(err, cap, "cannot create a TLS context: %s", ossl_reason("out of memory"));
        rc = -ENOMEM;
        goto fail;
    }
    SSL_CTX_set_app_data(c->ctx, c);
    SSL_CTX_set_min_proto_version(c->ctx, o->tls13_only ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_mode(c->ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* A peer that closes without close_notify ends the stream (0), as
     * ncat and socat do; our protocols check their own ends. */
    SSL_CTX_set_options(c->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    if (o->cert && (rc = load_pair(c->ctx, o->cert, o->key, err, cap)) < 0)
        goto fail;
    if (server) {
        static const unsigned char sid[] = "sockstack";
        SSL_CTX_set_session_id_context(c->ctx, sid, sizeof sid - 1);
        if (o->ca && (rc = readable(o->ca, err, cap)) < 0)
            goto fail;
        if (o->ca) {
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->ca);
            if (!names || SSL_CTX_load_verify_locations(c->ctx, o->ca, NULL) != 1) {
                sk_X509_NAME_pop_free(names, X509_NAME_free);
                err_set(err, cap, "%s: cannot load CA certificates: %s", o->ca,
                        ossl_reason("no PEM certificate in the file"));
                rc = SS_ETLSCONF;
                goto fail;
            }
            SSL_CTX_set_client_CA_list(c->ctx, names);
            SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                               NULL);
        }
    } else {
        SSL_CTX_set_session_cache_mode(c->ctx, SSL_SESS_CACHE_CLIENT |
                                                   SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(c->ctx, new_session);
        if (o->insecure) {
            SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
        } else {
            if (o->ca && (rc = readable(o->ca, err, cap)) < 0)
                goto fail;
            int ok = o->ca ? SSL_CTX_load_verify_locations(c->ctx, o->ca, NULL)
                           : SSL_CTX_set_default_verify_paths(c->ctx);
            if (ok != 1) {
                err_set(err, cap, "%s: cannot load CA certificates: %s",
                        o->ca ? o->ca : "the system's store",
                        ossl_reason("no PEM certificate in the file"));
                rc = SS_ETLSCONF;
                goto fail;
            }
            SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
        }
    }
    ERR_clear_error();
    *out = c;
    return 0;
fail:
    ERR_clear_error();
    ss_tls_ctx_free(c);
    return rc;
}

void ss_tls_ctx_free(ss_tls_ctx *c)
{
    if (!c)
        return;
    if (c->sess)
        SSL_SESSION_free(c->sess);
    SSL_CTX_free(c->ctx);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

bool ss_tls_ctx_is_server(const ss_tls_ctx *c)
{
    return c->server;
}

/* ---- results ---------------------------------------------------------------- */

/* Turn the result r of an SSL call into 0 (clean end), -EAGAIN with *want
 * set, or a sticky failure (recorded with its reason). */
static int tls_result(struct tls_sock *t, int r, unsigned *want)
{
    int e = SSL_get_error(t->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        *want = SS_READ;
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        *want = SS_WRITE;
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        t->err = t->io_err ? t->io_err : -ECONNRESET;
        break;
    default:
        t->ossl = ERR_peek_error();
        t->verify = SSL_get_verify_result(t->ssl);
        t->err = t->verify != X509_V_OK ? SS_ETLSVERIFY : SS_ETLS;
        break;
    }
    ERR_clear_error();
    return t->err;
}

/* After an SSL call: send the records it wrote, as far as the socket
 * takes them; a failed socket fails the connection. */
static void wflush(struct tls_sock *t)
{
    int rc = wbuf_flush(t);
    if (rc < 0 && rc != -EAGAIN && !t->err)
        t->err = rc;
}

static bool wbuf_pending(const struct tls_sock *t)
{
    return t->wbuf_off < t->wbuf_len;
}

static int tls_step_handshake(struct tls_sock *t)
{
    if (t->hs_done)
        return 0;
    if (t->err)
        return t->err;
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    wflush(t);
    if (r == 1) {
        t->hs_done = true;
        return t->err;
    }
    unsigned want = SS_READ;
    int rc = tls_result(t, r, &want);
    if (rc == -EAGAIN)
        t->hs_want = want;
    else if (rc == 0) /* closed during the handshake */
        rc = t->err = -ECONNRESET;
    return rc;
}

/* Send what the stage holds: 0 when empty, -EAGAIN, or a failure. */
static int stage_flush(struct tls_sock *t)
{
    if (t->stage_len == 0)
        return 0;
    if (t->err)
        return t->err;
    ERR_clear_error();
    int r = SSL_write(t->ssl, t->stage, (int)t->stage_len);
    wflush(t);
    if (r > 0) {
        t->stage_len = 0;
        t->hs_done = t->hs_done || SSL_is_init_finished(t->ssl);
        return t->err;
    }
    unsigned want = SS_WRITE;
    int rc = tls_result(t, r, &want);
    if (rc == -EAGAIN)
        t->st_want = want;
    else if (rc == 0)
        rc = t->err = -EPIPE;
    return rc;
}

/* close_notify, then the FIN, once the stage and wbuf are empty. */
static void shut_step(struct tls_sock *t)
{
    if (!t->shut_pending || t->shut_done || t->stage_len || t->err)
        return;
    if (!t->hs_done)
        return; /* nothing said yet: the FIN waits for the handshake */
    if (!t->notify_sent) {
        ERR_clear_error();
        int r = SSL_shutdown(t->ssl);
        if (r < 0) {
            unsigned want = SS_WRITE;
            if (tls_result(t, r, &want) == -EAGAIN) {
                wflush(t);
                t->st_want = want;
                return;
            }
        }
        t->notify_sent = true;
    }
    wflush(t);
    if (wbuf_pending(t) && !t->err)
        return; /* the FIN follows the last record */
    t->shut_done = true;
    ss_sock_shutdown(t->inner, SHUT_WR);
}

/* ---- readiness ------------------------------------------------------------- */

static void pending_cb(ss_loop *loop, void *arg)
{
    ss_sock *s = arg;
    struct tls_sock *t = s->impl;
    if (s->watching && (s->events & SS_READ) && !t->starved && held(t))
        ss__sock_ready(s, SS_READ);
}

/* Plaintext waits inside OpenSSL while the caller wants to read: no
 * readiness of the inner socket will say so, the loop must. */
static void pending_check(ss_sock *s)
{
    struct tls_sock *t = s->impl;
    if (s->loop && (s->events & SS_READ) && t->hs_done && !t->err && !t->starved &&
        held(t))
        ss_loop_defer(s->loop, &t->pending);
}

static void inner_cb(ss_sock *inner, unsigned ev, void *arg)
{
    ss_sock *s = arg;
    struct tls_sock *t = s->impl;
    unsigned user = s->events;
    unsigned d = ev & SS_HUP;
    if (ev & (SS_READ | SS_HUP))
        t->starved = false;
    if ((ev & (SS_WRITE | SS_HUP)) && wbuf_pending(t))
        wflush(t);
    if (!t->hs_done && !t->err) {
        if (!(ev & (t->hs_want | SS_HUP))) {
            tls_rewatch(s);
            return;
        }
        int r = tls_step_handshake(t);
        if (r == 0)
            (void)stage_flush(t);
        if (r == -EAGAIN) {
            tls_rewatch(s);
            return;
        }
        d |= user; /* done or failed: the caller's next call tells which */
    } else {
        if (t->stage_len && (ev & (t->st_want | SS_HUP)))
            (void)stage_flush(t);
        shut_step(t);
        if ((user & SS_READ) && (ev & (t->rd_want | SS_HUP)))
            d |= SS_READ;
        if ((user & SS_WRITE) && !t->stage_len && !wbuf_pending(t) &&
            (ev & (SS_WRITE | t->st_want | SS_HUP)))
            d |= SS_WRITE;
        if ((user & SS_RDHUP) && (ev & (SS_RDHUP | SS_HUP)))
            d |= SS_RDHUP; /* the peer's FIN, under the records */
        if (t->err)
            d |= user;
    }
    tls_rewatch(s);
    if (d)
        ss__sock_ready(s, d); /* may close s: nothing after this */
}

/* Ask the inner socket for what the handshake, the reader and the stage
 * wait for, given what the caller wants. */
static void tls_rewatch(ss_sock *s)
{
    struct tls_sock *t = s->impl;
    if (!s->loop)
        return;
    unsigned user = s->events, ev = 0;
    if (t->err) {
        ev = 0;
    } else if (!t->hs_done) {
        if (user || t->stage_len)
            ev = t->hs_want;
    } else {
        if (user & SS_READ)
            ev |= t->rd_want;
        if (user & SS_RDHUP)
            ev |= SS_RDHUP;
        if (t->stage_len || (t->shut_pending && !t->shut_done))
            ev |= t->st_want;
        else if (user & SS_WRITE)
            ev |= SS_WRITE;
    }
    if (wbuf_pending(t) && !t->err)
        ev |= SS_WRITE;
    if (t->err && user) {
        /* Failed: let the caller see it at once, then stay quiet. */
        ss_loop_defer(s->loop, &t->pending);
    }
    ss_sock_watch(t->inner, s->loop, ev, inner_cb, s);
}

/* ---- the ss_sock operations ------------------------------------------------ */

static int tls_set_opts(ss_sock *s, const ss_sockopts *o, const char **failed)
{
    struct tls_sock *t = s->impl;
    return ss_sock_set_opts(t->inner, o, failed);
}

static int tls_nosup(void)
{
    return -EOPNOTSUPP;
}

static int tls_bind(ss_sock *s, const ss_addr *a) { return tls_nosup(); }
static int tls_listen(ss_sock *s, int backlog) { return tls_nosup(); }
static int tls_accept(ss_sock *s, ss_sock **out, ss_addr *peer) { return tls_nosup(); }
static int tls_connect(ss_sock *s, const ss_addr *a) { return -EISCONN; }

static int tls_error(ss_sock *s)
{
    struct tls_sock *t = s->impl;
    return t->err ? t->err : ss_sock_error(t->inner);
}

static ssize_t tls_sendv(ss_sock *s, const struct iovec *iov, int iovcnt)
{
    struct tls_sock *t = s->impl;
    if (t->err)
        return t->err;
    if (t->shut_pending)
        return -EPIPE;
    int rc = stage_flush(t);
    if (rc < 0) {
        if (rc == -EAGAIN)
            tls_rewatch(s);
        return rc;
    }
    size_t total = 0;
    int first = -1;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len && first < 0)
            first = i;
        total += iov[i].iov_len;
    }
    if (total == 0)
        return 0;
    const uint8_t *src;
    size_t len;
    if (iov[first].iov_len >= SS_TLS_WRITE_MIN_DIRECT || total == iov[first].iov_len) {
        /* One big piece: encrypt straight from the caller's buffer. */
        src = iov[first].iov_base;
        len = iov[first].iov_len < SS_TLS_WRITE_CHUNK ? iov[first].iov_len
                                                      : SS_TLS_WRITE_CHUNK;
    } else {
        /* Small pieces (a header, then data): one record, not one each. */
        if (!t->stage && !(t->stage = malloc(SS_TLS_WRITE_CHUNK)))
            return -ENOMEM;
        len = 0;
        for (int i = first; i < iovcnt && len < SS_TLS_WRITE_CHUNK; i++) {
            size_t n = iov[i].iov_len;
            if (n > SS_TLS_WRITE_CHUNK - len)
                n = SS_TLS_WRITE_CHUNK - len;
            if (n == 0)
                continue; /* an empty piece may have no base at all */
            memcpy(t->stage + len, iov[i].iov_base, n);
            len += n;
        }
        src = t->stage;
    }
    ERR_clear_error();
    int r = SSL_write(t->ssl, src, (int)len);
    wflush(t);
    if (r > 0) {
        t->hs_done = t->hs_done || SSL_is_init_finished(t->ssl);
        if (wbuf_pending(t))
            tls_rewatch(s);
        return r;
    }
    unsigned want = SS_WRITE;
    rc = tls_result(t, r, &want);
    if (rc == -EAGAIN) {
        /* OpenSSL keeps its place; we keep the bytes and take them now. */
        if (src != t->stage) {
            if (!t->stage && !(t->stage = malloc(SS_TLS_WRITE_CHUNK)))
                return -ENOMEM;
            memcpy(t->stage, src, len);
        }
        t->stage_len = len;
        t->st_want = want;
        if (!t->hs_done)
            t->hs_want = want;
        tls_rewatch(s);
        return (ssize_t)len;
    }
    if (rc == 0)
        rc = t->err = -EPIPE;
    tls_rewatch(s);
    return rc;
}

static ssize_t tls_recv(ss_sock *s, void *buf, size_t cap)
{
    struct tls_sock *t = s->impl;
    if (t->err)
        return t->err;
    if (t->stage_len) {
        int rc = stage_flush(t);
        if (rc < 0 && rc != -EAGAIN)
            return rc;
    }
    if (cap > INT_MAX)
        cap = INT_MAX;
    ERR_clear_error();
    int r = SSL_read(t->ssl, buf, (int)cap);
    wflush(t);
    if (r > 0) {
        t->starved = false;
        t->rd_want = SS_READ;
        t->hs_done = t->hs_done || SSL_is_init_finished(t->ssl);
        pending_check(s);
        return r;
    }
    unsigned want = SS_READ;
    int rc = tls_result(t, r, &want);
    if (rc == -EAGAIN) {
        t->rd_want = want;
        t->starved = want == SS_READ;
        if (!t->hs_done)
            t->hs_want = want;
        t->hs_done = t->hs_done || SSL_is_init_finished(t->ssl);
    }
    shut_step(t);
    tls_rewatch(s);
    return rc;
}

static ssize_t tls_sendto(ss_sock *s, const void *buf, size_t len, const ss_addr *to)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    return tls_sendv(s, &iov, 1);
}

static ssize_t tls_recvfrom(ss_sock *s, void *buf, size_t cap, ss_addr *from, bool *trunc)
{
    struct tls_sock *t = s->impl;
    ss_sock_peer_addr(t->inner, from);
    return tls_recv(s, buf, cap);
}

static int tls_shutdown(ss_sock *s, int how)
{
    struct tls_sock *t = s->impl;
    if (how == SHUT_RD)
        return ss_sock_shutdown(t->inner, how);
    if (t->err)
        return t->err;
    t->shut_pending = true;
    (void)stage_flush(t);
    shut_step(t);
    tls_rewatch(s);
    if (how == SHUT_RDWR)
        return ss_sock_shutdown(t->inner, SHUT_RD);
    return 0;
}

static int tls_close(ss_sock *s)
{
    struct tls_sock *t = s->impl;
    if (!t)
        return 0;
    if (t->hs_done && !t->err && !t->shut_done) {
        /* Best effort, never waiting: the last bytes, then close_notify. */
        if (stage_flush(t) == 0 && !t->notify_sent) {
            ERR_clear_error();
            SSL_shutdown(t->ssl);
        }
        wbuf_flush(t);
    }
    if (t->err == SS_ETLS || t->err == SS_ETLSVERIFY) {
        /* We sent an alert. Bytes of the peer left unread would make the
         * kernel answer with RST at once, which can overtake the alert
         * (the peer then sees "reset" instead of why): take them first. */
        uint8_t junk[4096];
        for (int i = 0; i < 16 && ss_sock_recv(t->inner, junk, sizeof junk) > 0; i++)
            ;
    }
    ERR_clear_error();
    SSL_free(t->ssl);
    int rc = ss_sock_close(t->inner);
    free(t->stage);
    free(t->wbuf);
    free(t->rbuf);
    free(t);
    s->impl = NULL;
    return rc;
}

static int tls_local_addr(ss_sock *s, ss_addr *out)
{
    struct tls_sock *t = s->impl;
    return ss_sock_local_addr(t->inner, out);
}

static int tls_peer_addr(ss_sock *s, ss_addr *out)
{
    struct tls_sock *t = s->impl;
    return ss_sock_peer_addr(t->inner, out);
}

static int tls_set_blocking(ss_sock *s, bool blocking)
{
    struct tls_sock *t = s->impl;
    return ss_sock_set_blocking(t->inner, blocking);
}

static int tls_watch(ss_sock *s)
{
    tls_rewatch(s);
    pending_check(s);
    return 0;
}

static int tls_unwatch(ss_sock *s)
{
    struct tls_sock *t = s->impl;
    if (s->loop)
        ss_loop_defer_cancel(s->loop, &t->pending);
    return ss_sock_unwatch(t->inner);
}

static int tls_tcp_info(ss_sock *s, ss_tcp_info *out)
{
    struct tls_sock *t = s->impl;
    return ss_sock_tcp_info(t->inner, out);
}

static const struct ss_sock_ops tls_ops = {
    .set_opts = tls_set_opts,
    .bind = tls_bind,
    .listen = tls_listen,
    .accept = tls_accept,
    .connect = tls_connect,
    .error = tls_error,
    .sendv = tls_sendv,
    .recv = tls_recv,
    .sendto = tls_sendto,
    .recvfrom = tls_recvfrom,
    .shutdown = tls_shutdown,
    .close = tls_close,
    .local_addr = tls_local_addr,
    .peer_addr = tls_peer_addr,
    .set_blocking = tls_set_blocking,
    .watch = tls_watch,
    .unwatch = tls_unwatch,
    .tcp_info = tls_tcp_info,
};

static const ss_backend tls_backend = {
    .name = "tls",
    .ops = &tls_ops,
};

static void failed_cb(ss_loop *loop, void *arg)
{
    ss_sock *s = arg;
    struct tls_sock *t = s->impl;
    if (t->err && s->watching && s->events)
        ss__sock_ready(s, s->events);
    else
        pending_cb(loop, arg);
}

int ss_tls_wrap(ss_tls_ctx *ctx, ss_sock *inner, const char *servername,
                ss_sock **out)
{
    *out = NULL;
    pthread_once(&bio_once, bio_method_init);
    ss_sock *s = ss__sock_alloc(&tls_backend, inner->family, SS_STREAM);
    struct tls_sock *t = calloc(1, sizeof *t);
    int rc = -ENOMEM;
    if (!s || !t || !bio_method || inner->type != SS_STREAM)
        goto fail;
    t->inner = inner;
    t->ctx = ctx;
    t->rd_want = SS_READ;
    t->st_want = SS_WRITE;
    t->hs_want = ctx->server ? SS_READ : SS_WRITE;
    t->verify = X509_V_OK;
    ERR_clear_error();
    t->ssl = SSL_new(ctx->ctx);
    BIO *bio = BIO_new(bio_method);
    if (!t->ssl || !bio) {
        BIO_free(bio);
        goto fail;
    }
    BIO_set_data(bio, t);
    SSL_set_bio(t->ssl, bio, bio);
    if (ctx->server) {
        SSL_set_accept_state(t->ssl);
    } else {
        SSL_set_connect_state(t->ssl);
        rc = SS_ETLSCONF;
        if (servername && *servername) {
            unsigned char ip[16];
            bool is_ip = inet_pton(AF_INET, servername, ip) == 1 ||
                         inet_pton(AF_INET6, servername, ip) == 1;
            if (is_ip) {
                if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), servername) != 1)
                    goto fail;
            } else if (SSL_set_tlsext_host_name(t->ssl, servername) != 1 ||
                       SSL_set1_host(t->ssl, servername) != 1) {
                goto fail;
            }
        }
        pthread_mutex_lock(&ctx->mu);
        if (ctx->sess && SSL_SESSION_is_resumable(ctx->sess))
            SSL_set_session(t->ssl, ctx->sess);
        pthread_mutex_unlock(&ctx->mu);
    }
    ss_defer_init(&t->pending, failed_cb, s);
    s->impl = t;
    s->fd = inner->fd;
    *out = s;
    return 0;
fail:
    ERR_clear_error();
    if (t)
        SSL_free(t->ssl);
    free(t);
    ss__sock_free(s);
    ss_sock_close(inner);
    return rc;
}

bool ss_sock_is_tls(const ss_sock *s)
{
    return s && s->be == &tls_backend;
}

size_t ss_tls_unsent(const ss_sock *s)
{
    if (!ss_sock_is_tls(s))
        return 0;
    const struct tls_sock *t = s->impl;
    return t->stage_len + (t->wbuf_len - t->wbuf_off);
}

int ss_tls_handshake(ss_sock *s)
{
    if (!ss_sock_is_tls(s))
        return -EINVAL;
    struct tls_sock *t = s->impl;
    int rc = tls_step_handshake(t);
    if (rc == 0)
        rc = stage_flush(t) == -EAGAIN ? 0 : t->err;
    tls_rewatch(s);
    return rc;
}

int ss_tls_error(const ss_sock *s, char *buf, size_t cap)
{
    if (!ss_sock_is_tls(s))
        return -EINVAL;
    const struct tls_sock *t = s->impl;
    int n;
    if (t->err != SS_ETLS && t->err != SS_ETLSVERIFY)
        n = snprintf(buf, cap, "%s", ""); /* none, or the socket's own error */
    else if (t->verify != X509_V_OK)
        n = snprintf(buf, cap, "certificate verify failed: %s",
                     X509_verify_cert_error_string(t->verify));
    else if (t->ossl && ERR_reason_error_string(t->ossl))
        n = snprintf(buf, cap, "%s", ERR_reason_error_string(t->ossl));
    else
        n = snprintf(buf, cap, "%s", ss_strerror(t->err));
    return n < 0 ? -EINVAL : n;
}

bool ss_tls_resumed(const ss_sock *s)
{
    if (!ss_sock_is_tls(s))
        return false;
    const struct tls_sock *t = s->impl;
    return t->hs_done && SSL_session_reused(t->ssl) == 1;
}

int ss_tls_describe(const ss_sock *s, char *buf, size_t cap)
{
    if (!ss_sock_is_tls(s))
        return -EINVAL;
    const struct tls_sock *t = s->impl;
    if (!t->hs_done)
        return snprintf(buf, cap, "handshake not done");
    char subj[256] = "";
    X509 *peer = SSL_get1_peer_certificate(t->ssl);
    if (peer) {
        X509_NAME_oneline(X509_get_subject_name(peer), subj, sizeof subj);
        X509_free(peer);
    }
    int n = snprintf(buf, cap, "%s %s%s%s%s", SSL_get_version(t->ssl),
                     SSL_get_cipher_name(t->ssl), subj[0] ? ", peer " : "", subj,
                     SSL_session_reused(t->ssl) == 1 ? ", resumed" : "");
    return n < 0 ? -EINVAL : n;
}

/* ---- keygen ---------------------------------------------------------------- */

static int add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (!e)
        return -1;
    int ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok == 1 ? 0 : -1;
}

/* Write PEM data through fn to path with mode, never half-written. */
static int write_pem(const char *path, int mode, bool force, int (*fn)(FILE *, void *),
                     void *obj, char *err, size_t cap)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid()) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    if (!force && access(path, F_OK) == 0) {
        err_set(err, cap, "%s exists (use --force to replace it)", path);
        return -EEXIST;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        int e = -errno;
        err_set(err, cap, "%s: %s", tmp, strerror(errno));
        return e;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlink(tmp);
        return -ENOMEM;
    }
    int ok = fn(f, obj);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        ok = 0;
    if (fclose(f) != 0)
        ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno ? -errno : -EIO;
        err_set(err, cap, "%s: cannot write", path);
        unlink(tmp);
        return e;
    }
    return 0;
}

static int pem_key(FILE *f, void *k)
{
    return PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
}

static int pem_cert(FILE *f, void *x)
{
    return PEM_write_X509(f, x);
}

int ss_tls_keygen(const char *dir, int days, bool force, char *err, size_t cap)
{
    char kpath[4096], cpath[4096];
    if (snprintf(kpath, sizeof kpath, "%s/key.pem", dir) >= (int)sizeof kpath - 16 ||
        snprintf(cpath, sizeof cpath, "%s/cert.pem", dir) >= (int)sizeof cpath - 16)
        return -ENAMETOOLONG;
    if (days < 1)
        days = 1;
    ERR_clear_error();
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    int rc = -ENOMEM;
    if (!k || !x)
        goto out;
    unsigned char serial[16];
    BIGNUM *bn = NULL;
    if (RAND_bytes(serial, sizeof serial) != 1 ||
        !(bn = BN_bin2bn(serial, sizeof serial, NULL))) {
        rc = -EIO;
        goto out;
    }
    BN_clear_bit(bn, 127); /* positive */
    ASN1_INTEGER *sn = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    X509_NAME *name = X509_get_subject_name(x);
    rc = SS_ETLSCONF;
    if (!sn || X509_set_version(x, 2) != 1 || !X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400) ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   (const unsigned char *)"localhost", -1, -1, 0) != 1 ||
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                   (const unsigned char *)"sockstack keygen", -1, -1, 0) != 1 ||
        X509_set_issuer_name(x, name) != 1 || X509_set_pubkey(x, k) != 1 ||
        add_ext(x, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
        add_ext(x, NID_key_usage, "critical,digitalSignature,keyCertSign") < 0 ||
        add_ext(x, NID_ext_key_usage, "serverAuth,clientAuth") < 0 ||
        add_ext(x, NID_subject_key_identifier, "hash") < 0 ||
        add_ext(x, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1") < 0 ||
        X509_sign(x, k, EVP_sha256()) == 0) {
        err_set(err, cap, "cannot make the certificate: %s", ossl_reason("OpenSSL failed"));
        goto out;
    }
    if ((rc = write_pem(kpath, 0600, force, pem_key, k, err, cap)) < 0)
        goto out;
    chmod(kpath, 0600); /* whatever the umask left */
    rc = write_pem(cpath, 0644, force, pem_cert, x, err, cap);
out:
    ERR_clear_error();
    X509_free(x);
    EVP_PKEY_free(k);
    return rc;
}
