/* dial: a client's connection, waited for in the reactor.
 *
 * Sequential clients (exec, put, get, ls, the auth handshake) read as a
 * conversation, yet they wait only in the loop: ss_sock_wait runs the loop
 * until the socket is ready, so a user-space stack backend (whose timers
 * and TUN descriptor live in the same loop) and TLS work under them exactly
 * as under the servers. Errors come back as codes, with a sentence in a
 * buffer the caller owns (Redis's anet style); nothing here prints.
 */
#ifndef SOCKSTACK_DIAL_H
#define SOCKSTACK_DIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "sockstack/reactor.h"
#include "sockstack/sock.h"

#include "sockstack/api.h"
SS_API_BEGIN

struct ss_tls_ctx;

typedef struct ss_dial_opts {
    const ss_backend *backend;   /* NULL: the kernel's sockets */
    int family;                  /* AF_UNSPEC (default), AF_INET, AF_INET6 */
    const ss_sockopts *sockopts; /* applied before connecting; NULL: none */
    const ss_addr *bind_addr;    /* local address, or NULL */
    int timeout_ms;              /* per address, connect and TLS handshake
                                  * together (init: SS_DIAL_TIMEOUT_MS);
                                  * <= 0: no limit */
    struct ss_tls_ctx *tls;      /* a client context: speak TLS; NULL: plain */
    const char *servername;      /* name the certificate must show; NULL:
                                  * HOST as given (a name or an IP literal) */
} ss_dial_opts;

void ss_dial_opts_init(ss_dial_opts *o);

/* Resolve HOST PORT and connect to each address in turn until one answers
 * (and, with TLS, completes the handshake), running loop meanwhile. On
 * success *out is the connected (TLS) socket, not watched. Returns 0 or
 * the code of the last attempt: SS_ENOHOST, -ECONNREFUSED, -ETIMEDOUT,
 * SS_ETLSVERIFY, ..., with a sentence in err ("cannot connect to ::1 port
 * 7: Connection refused", "TLS with localhost port 7 failed: certificate
 * verify failed: certificate has expired"). A socket option that cannot be
 * applied stops at once, naming the option ("--sndbuf: Invalid argument"). */
int ss_dial(ss_loop *loop, const char *host, const char *port,
            const ss_dial_opts *o, ss_sock **out, char *err, size_t errcap);

/* Run loop until s is ready for one of events (SS_READ, SS_WRITE) or
 * timeout_ms pass (< 0: no limit). Returns the ready events (> 0; SS_HUP
 * may be among them), -ETIMEDOUT, or a loop failure. s is watched only
 * during the call; other callbacks of loop run meanwhile. */
int ss_sock_wait(ss_sock *s, ss_loop *loop, unsigned events, int timeout_ms);

/* Receive up to cap bytes, waiting in loop while there are none: a count,
 * 0 at end of stream, -ETIMEDOUT, or a negative code. */
ssize_t ss_sock_recv_wait(ss_sock *s, ss_loop *loop, void *buf, size_t cap,
                          int timeout_ms);
/* Send all len bytes, waiting in loop while the socket is full: 0 or a
 * negative code (-ETIMEDOUT when no byte went out for timeout_ms). On a TLS
 * socket it returns once the last record is in the kernel (ss_tls_unsent
 * 0), as plain TCP's bytes are, so nothing waits on the loop running. */
int ss_sock_send_all(ss_sock *s, ss_loop *loop, const void *buf, size_t len,
                     int timeout_ms);

/* A connected socket and the loop a sequential client waits in: what the
 * exec, files and auth clients take instead of a blocking descriptor. */
typedef struct ss_stream {
    ss_sock *sock;
    ss_loop *loop;
    int timeout_ms;  /* per wait; < 0: no limit */
} ss_stream;

/* ss_sock_recv_wait / ss_sock_send_all on st. */
ssize_t ss_stream_recv(ss_stream *st, void *buf, size_t cap);
int ss_stream_send_all(ss_stream *st, const void *buf, size_t len);
/* All of iov (one TLS record when small), as ss_sock_send_all: 0 or a
 * negative code. */
int ss_stream_sendv_all(ss_stream *st, const struct iovec *iov, int iovcnt);
/* Exactly len bytes: 0, 1 at end of stream before the first byte, -EPIPE
 * at end of stream after it, or a negative code. */
int ss_stream_read_exact(ss_stream *st, void *buf, size_t len);

SS_API_END

#endif
