/* tls: TLS (OpenSSL) as a layer of sock/.
 *
 * ss_tls_wrap() puts TLS on a connected stream ss_sock and returns another
 * ss_sock: every ss_sock_* call (send, recv, watch, shutdown, close, options,
 * TCP_INFO) then works on the TLS connection as on a plain one, on either
 * backend (kernel or user-space stack), so servers and clients use it the
 * same way and the reactor stays the only place that waits.
 *
 * Non-blocking: OpenSSL's WANT_READ / WANT_WRITE become the events the layer
 * asks of the inner socket; the caller keeps asking for SS_READ / SS_WRITE
 * as it would on plain TCP. The handshake runs by itself as soon as the
 * caller watches the socket for anything (or calls ss_tls_handshake), and
 * ss_sock_send / ss_sock_recv return -EAGAIN until it is done. Plaintext
 * that OpenSSL holds after a read is delivered as SS_READ from the loop
 * (deferred task), never lost to level-triggered polling.
 *
 * Writes: ss_sock_send takes at most SS_TLS_WRITE_CHUNK bytes per call; when
 * the socket cannot take the records at once the layer keeps them (one chunk,
 * at most) and sends them when the socket drains, asking for SS_WRITE on the
 * inner socket by itself; the next send is -EAGAIN until then. So the
 * caller may pass any buffer each time (no OpenSSL "same buffer on retry"
 * rule leaks out), and memory per connection stays bounded.
 *
 * Shutdown(SHUT_WR) sends close_notify, then a TCP FIN (half-close, as
 * plain TCP). A peer that closes without close_notify is an ordinary end of
 * stream (0): sockstack's protocols detect truncation themselves (frames,
 * digests, exit messages).
 *
 * Errors: a failed handshake or record is SS_ETLS, a certificate that did
 * not verify SS_ETLSVERIFY; the reason as text goes into a buffer the caller
 * owns (ss_tls_error). Nothing here prints.
 *
 * Versions: TLS 1.3 by default, TLS 1.2 allowed, nothing older. Sessions
 * resume: a server hands out session tickets; a client context keeps the
 * last ticket it got and offers it on its next connection.
 */
#ifndef SOCKSTACK_TLS_H
#define SOCKSTACK_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "sockstack/sock.h"

#include "sockstack/api.h"
SS_API_BEGIN

typedef struct ss_tls_ctx ss_tls_ctx;

/* What a context needs. Paths are PEM files. */
typedef struct ss_tls_opts {
    const char *cert;   /* server: its certificate (chain); client: a client
                         * certificate to present (optional) */
    const char *key;    /* the private key of cert */
    const char *ca;     /* server: require a client certificate signed by a
                         * CA in this file; client: trust only this file
                         * (NULL: the system's store) */
    bool insecure;      /* client: do not verify the server at all (tests) */
    bool tls13_only;    /* refuse TLS 1.2 */
} ss_tls_opts;

void ss_tls_opts_init(ss_tls_opts *o);

/* A context for servers (server true: cert and key required) or clients.
 * On failure returns SS_ETLSCONF (or -ENOMEM) with the reason in err (for
 * example "cert.pem: No such file or directory", "the key does not match
 * the certificate"). One context serves any number of connections and
 * threads; a forked child may use its copy. */
int ss_tls_ctx_new(const ss_tls_opts *o, bool server, ss_tls_ctx **out,
                   char *err, size_t errcap);
void ss_tls_ctx_free(ss_tls_ctx *ctx);
bool ss_tls_ctx_is_server(const ss_tls_ctx *ctx);

/* Put TLS on connected stream socket inner; *out is the TLS socket, which
 * owns inner from now on (closing it closes inner), also on failure (then
 * inner is closed and *out NULL). A client checks the server's certificate
 * against servername: a DNS name (also sent as SNI) or an IP literal; NULL
 * checks the chain only. Returns 0, -ENOMEM or SS_ETLSCONF. */
int ss_tls_wrap(ss_tls_ctx *ctx, ss_sock *inner, const char *servername,
                ss_sock **out);

/* Drive the handshake: 0 when done, -EAGAIN (watch the socket, call again),
 * or SS_ETLS / SS_ETLSVERIFY / a negative errno (then see ss_tls_error). */
int ss_tls_handshake(ss_sock *s);

/* True for a socket made by ss_tls_wrap. */
bool ss_sock_is_tls(const ss_sock *s);

/* Bytes the layer holds that the inner socket has not taken yet: plaintext
 * accepted by a send but not yet encrypted, and records not yet sent. They
 * go out only while the socket is watched in its loop (ss_sock_wait for
 * SS_WRITE returns once they are all out); 0 for a non-TLS socket. */
size_t ss_tls_unsent(const ss_sock *s);

/* Why the TLS connection failed, into buf ("certificate verify failed:
 * certificate has expired", "tlsv1 alert unknown ca", ...). Returns the
 * length; 0 (buf "") when TLS did not fail (the error, if any, is the
 * socket's own, e.g. -ECONNRESET); -EINVAL for a non-TLS socket. */
int ss_tls_error(const ss_sock *s, char *buf, size_t cap);

/* After the handshake: the session was resumed (SSL_session_reused). */
bool ss_tls_resumed(const ss_sock *s);
/* After the handshake: "TLSv1.3 TLS_AES_256_GCM_SHA384", and the peer's
 * subject when it showed a certificate. Returns the length or -EINVAL. */
int ss_tls_describe(const ss_sock *s, char *buf, size_t cap);

/* Write a self-signed EC P-256 certificate (CN=localhost, names localhost,
 * 127.0.0.1 and ::1; valid days days) and its key into dir as cert.pem
 * (0644) and key.pem (0600). Without force an existing file is -EEXIST.
 * Returns 0 or a negative code with the reason in err. */
int ss_tls_keygen(const char *dir, int days, bool force, char *err,
                  size_t errcap);

SS_API_END

#endif
