/* Connections of the event-style server: reading, the output queue,
 * backpressure, timers and the one way out (conn_finish).
 *
 * Life of a connection (all on its worker's loop thread):
 *   accept -> ss__conn_open: ACL and limit already passed; on_open
 *   readable -> conn_read -> on_data ...; queue > outbuf_max pauses reading
 *   writable -> conn_flush -> writev from the queue; below half the limit
 *               reading resumes and on_drain runs
 *   EOF -> on_eof (default: ss_conn_close = flush, then close)
 *   ss_conn_close before the peer's EOF -> flush, FIN, then linger: read and
 *               drop what the peer still sends until its EOF or
 *               SS_SERVER_LINGER_MS (a close with unread bytes sends RST,
 *               and the peer's TCP discards what it has not read yet: the
 *               last reply would be lost)
 *   any error / abort / timeout -> conn_fail (conn_end): reading and
 *               writing stop at once, the close itself is deferred to the
 *               end of the loop iteration (never from inside a call the
 *               service made); the closing log line names what failed
 *   -> conn_finish: socket closed, on_close(c, err), back to the free list.
 * Closing marks, a deferred step frees (libuv's uv_close; the stack's
 * release/reap and sock_stack's s_close do the same): conn_fail only marks
 * c dying and queues finish_defer; conn_finish, run by the loop after the
 * callback that ended c returned, closes and recycles it. While a
 * framework dispatch of c runs (c->in_cb) changes of the watched events
 * wait for its end (conn_after_dispatch), and a nested loop run does not
 * finish c under it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "server/server_int.h"
#include "sockstack/config.h"
#include "sockstack/err.h"
#include "sockstack/tls.h"

#define CONN_FREE_MAX SS_SERVER_CONN_POOL

static void conn_io(ss_sock *s, unsigned events, void *arg);

static size_t outbuf_max(const ss_conn *c)
{
    return c->w->srv->o.outbuf_max;
}

static bool conn_reading(const ss_conn *c)
{
    return !c->dying && !c->finished && !c->paused_svc && !c->paused_bp &&
           !c->eof && !c->closing;
}

/* Ask the socket for exactly the events the connection's state needs. */
static void conn_update_watch(ss_conn *c)
{
    if (c->finished || c->blocking || !c->sock)
        return;
    unsigned ev = 0;
    if (!c->dying) {
        if (conn_reading(c) || c->lingering)
            ev |= SS_READ;
        else if (c->paused_svc && !c->eof && !c->closing && c->w->srv->svc->on_hangup)
            ev |= SS_RDHUP;
        if (c->out.bytes > 0)
            ev |= SS_WRITE;
    }
    if (ev != c->watching || !c->watched_once) {
        if (ss_sock_watch(c->sock, c->w->loop, ev, conn_io, c) == 0) {
            c->watching = ev;
            c->watched_once = true;
        }
    }
}

static void conn_release(ss_conn *c)
{
    struct worker *w = c->w;
    if (w->nfree < CONN_FREE_MAX) {
        c->next = w->free_conns;
        w->free_conns = c;
        w->nfree++;
    } else {
        free(c);
    }
}

/* The one way out: close the socket, tell the service, recycle. */
static void conn_finish(ss_conn *c, int err)
{
    if (c->finished)
        return;
    struct worker *w = c->w;
    ss_server *srv = w->srv;
    c->finished = c->dying = true;
    if (w->loop) {
        ss_loop_defer_cancel(w->loop, &c->finish_defer);
        ss_timer_stop(w->loop, &c->idle_timer);
        ss_timer_stop(w->loop, &c->svc_timer);
    }
    char why[200] = ""; /* a TLS failure says which (expired, unknown CA) */
    if (c->sock) {
        if (err && ss_sock_is_tls(c->sock) && ss_tls_error(c->sock, why + 2, sizeof why - 2) > 0)
            memcpy(why, " (", 2), strncat(why, ")", sizeof why - strlen(why) - 1);
        ss_sock_close(c->sock);
        c->sock = NULL;
    }
    ss__outq_clear(&c->out, &w->pool);
    if (c->idle_expired)
        ss__stat_add(&w->idle_closed, 1);
    else if (err < 0)
        ss__stat_add(&w->errors, 1);
    ss_server_log(srv, SS_LOG_DEBUG, "connection #%llu from %s closed%s%s%s%s%s",
                   (unsigned long long)c->id, c->peer_str, err ? ": " : "",
                   err && c->pending_what ? c->pending_what : "",
                   err && c->pending_what ? ": " : "", err ? ss_strerror(err) : "", why);
    if (srv->svc->on_close)
        srv->svc->on_close(c, err);
    /* unlink from the active list */
    if (c->prev)
        c->prev->next = c->next;
    else
        w->active = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    atomic_fetch_sub_explicit(&w->active_n, 1, memory_order_relaxed);
    if (!w->single) /* a thread or child job is counted until it is reaped */
        ss__peer_put(srv, &c->peer);
    if (w->loop && (w->single || (w->stopping && !w->active)))
        ss_loop_stop(w->loop);
    if (!c->blocking) /* a blocking connection's block is its thread's */
        conn_release(c);
}

/* The deferred step of conn_fail. */
static void finish_cb(ss_loop *loop, void *arg)
{
    ss_conn *c = arg;
    if (c->in_cb) { /* a loop run nested in c's own callback: after it */
        ss_loop_defer(loop, &c->finish_defer);
        return;
    }
    conn_finish(c, c->pending_err);
}

/* Stop all I/O on c now and close it at the end of this loop iteration;
 * what failed (a call, "recv", or a callback, "on_data") names err in the
 * closing log line, NULL when err is no failure or says it all. */
static void conn_fail(ss_conn *c, const char *what, int err)
{
    if (c->dying || c->finished)
        return;
    c->dying = true;
    c->pending_err = err;
    c->pending_what = what;
    conn_update_watch(c);
    ss_loop_defer(c->w->loop, &c->finish_defer);
}

static void conn_end(ss_conn *c, int err) { conn_fail(c, NULL, err); }

/* After a framework dispatch: ask for the events c now needs. */
static void conn_after_dispatch(ss_conn *c)
{
    c->in_cb = false;
    conn_update_watch(c);
}

static void conn_touch(ss_conn *c)
{
    if (c->w->loop)
        c->last_active = ss_loop_now(c->w->loop);
}

/* Everything is sent: close now if the peer is done too, else send the FIN
 * and linger (see the top of the file). */
static void conn_close_flushed(ss_conn *c)
{
    if (c->eof || c->lingering || c->blocking || !c->w->loop) {
        if (!c->lingering)
            conn_end(c, 0);
        return;
    }
    c->lingering = true;
    ss_sock_shutdown(c->sock, SHUT_WR);
    ss_timer_start(c->w->loop, &c->idle_timer, SS_SERVER_LINGER_MS);
    if (!c->in_cb)
        conn_update_watch(c);
}

/* Send what the queue holds, as far as the socket takes it. */
static void conn_flush(ss_conn *c)
{
    const ss_service *svc = c->w->srv->svc;
    struct iovec iov[64];
    while (c->out.bytes > 0) {
        int n = ss__outq_iov(&c->out, iov, 64);
        size_t want = 0;
        for (int i = 0; i < n; i++)
            want += iov[i].iov_len;
        ssize_t r = ss_sock_sendv(c->sock, iov, n);
        if (r == -EAGAIN)
            break;
        if (r < 0) {
            conn_fail(c, "send", (int)r);
            return;
        }
        ss__outq_consume(&c->out, &c->w->pool, (size_t)r);
        ss__stat_add(&c->w->bytes_out, (uint64_t)r);
        conn_touch(c);
        if ((size_t)r < want)
            break;
    }
    size_t low = outbuf_max(c) / 2;
    if (c->out.bytes <= low) {
        c->paused_bp = false;
        if (c->want_drain) {
            c->want_drain = false;
            if (svc->on_drain && !c->closing) {
                int r = svc->on_drain(c);
                if (r < 0) {
                    conn_fail(c, "on_drain", r);
                    return;
                }
            }
        }
    }
    if (c->out.bytes == 0) {
        if (c->closing) {
            conn_close_flushed(c);
        } else if (c->shut_wr && !c->shut_wr_done) {
            c->shut_wr_done = true;
            ss_sock_shutdown(c->sock, SHUT_WR);
        }
    }
}

/* Read and hand bytes to the service until the socket is empty, the
 * connection must stop reading, or a few chunks went by (fairness). */
static void conn_read(ss_conn *c)
{
    struct worker *w = c->w;
    const ss_service *svc = w->srv->svc;
    for (int i = 0; i < 4 && conn_reading(c); i++) {
        ssize_t n = ss_sock_recv(c->sock, w->rbuf, w->rbuf_cap);
        if (n == -EAGAIN)
            return;
        if (n < 0) {
            conn_fail(c, "recv", (int)n);
            return;
        }
        if (n == 0) {
            c->eof = true;
            int r = 0;
            if (svc->on_eof)
                r = svc->on_eof(c);
            else
                ss_conn_close(c);
            if (r < 0)
                conn_fail(c, "on_eof", r);
            return;
        }
        ss__stat_add(&w->bytes_in, (uint64_t)n);
        conn_touch(c);
        if (svc->on_data) {
            int r = svc->on_data(c, w->rbuf, (size_t)n);
            if (r < 0) {
                conn_fail(c, "on_data", r);
                return;
            }
        }
        if (c->out.bytes > outbuf_max(c))
            c->paused_bp = true;
        if ((size_t)n < w->rbuf_cap)
            return;
    }
}

/* Lingering: drop what the peer sends until its EOF (then close). */
static void conn_linger_read(ss_conn *c)
{
    for (int i = 0; i < 4; i++) {
        ssize_t n = ss_sock_recv(c->sock, c->w->rbuf, c->w->rbuf_cap);
        if (n == -EAGAIN)
            return;
        if (n <= 0) {
            conn_end(c, 0);
            return;
        }
    }
}

static void conn_io(ss_sock *s, unsigned events, void *arg)
{
    ss_conn *c = arg;
    c->in_cb = true;
    if (c->lingering) {
        if ((events & (SS_READ | SS_HUP)) && !c->dying)
            conn_linger_read(c);
        conn_after_dispatch(c);
        return;
    }
    if ((events & SS_WRITE) && c->out.bytes > 0 && !c->dying)
        conn_flush(c);
    if ((events & SS_READ) && conn_reading(c))
        conn_read(c);
    else if ((events & (SS_RDHUP | SS_HUP)) && (c->watching & SS_RDHUP) && !c->dying &&
             c->paused_svc) {
        /* Hung up while the service reads nothing: tell it now. */
        int r = c->w->srv->svc->on_hangup(c);
        if (r < 0)
            conn_fail(c, "on_hangup", r);
    } else if ((events & SS_HUP) && !c->dying && !(events & (SS_READ | SS_WRITE))) {
        /* Hang-up while we ask for nothing: epoll reports it regardless,
         * so settle it now instead of spinning. */
        int err = ss_sock_error(c->sock);
        conn_fail(c, "hang-up", err ? err : 0);
    }
    conn_after_dispatch(c);
}

static void idle_cb(ss_loop *loop, ss_timer *t, void *arg)
{
    ss_conn *c = arg;
    unsigned idle = c->w->srv->o.idle_timeout_ms;
    uint64_t now = ss_loop_now(loop);
    if (c->dying)
        return;
    if (c->lingering) { /* the peer kept its side open: enough */
        c->in_cb = true;
        conn_end(c, 0);
        conn_after_dispatch(c);
        return;
    }
    if (now - c->last_active >= idle) {
        c->in_cb = true;
        c->idle_expired = true;
        conn_fail(c, "idle", -ETIMEDOUT);
        conn_after_dispatch(c);
        return;
    }
    ss_timer_start(loop, &c->idle_timer, c->last_active + idle - now);
}

static void svc_timer_cb(ss_loop *loop, ss_timer *t, void *arg)
{
    ss_conn *c = arg;
    if (c->dying)
        return;
    c->in_cb = true;
    const ss_service *svc = c->w->srv->svc;
    int r = svc->on_timer ? svc->on_timer(c) : -ETIMEDOUT;
    if (r < 0)
        conn_fail(c, "on_timer", r);
    conn_after_dispatch(c);
}

/* A connection block from the free list (or new), context zeroed. */
static ss_conn *conn_alloc(struct worker *w)
{
    size_t ctx = w->srv->svc->conn_ctx_size;
    ss_conn *c = w->free_conns;
    if (c) {
        w->free_conns = c->next;
        w->nfree--;
    } else {
        c = malloc(sizeof *c + ctx);
        if (!c)
            return NULL;
    }
    memset(c, 0, sizeof *c + ctx);
    c->ctx = ctx ? (void *)(c + 1) : NULL;
    c->w = w;
    return c;
}

void ss__conn_free_list(struct worker *w)
{
    while (w->free_conns) {
        ss_conn *c = w->free_conns;
        w->free_conns = c->next;
        free(c);
    }
    w->nfree = 0;
}

static void conn_init_common(struct worker *w, ss_conn *c, ss_sock *s,
                             const ss_addr *peer)
{
    ss_server *srv = w->srv;
    c->sock = s;
    c->peer = *peer;
    if (ss_addr_format(peer, c->peer_str, sizeof c->peer_str) < 0 ||
        peer->sa.ss_family == AF_UNIX)
        snprintf(c->peer_str, sizeof c->peer_str, "unix:");
    ss_sock_local_addr(s, &c->local);
    c->id = atomic_fetch_add(&srv->next_id, 1) + 1;
    ss__outq_init(&c->out);
    /* link into the active list */
    c->next = w->active;
    if (w->active)
        w->active->prev = c;
    w->active = c;
    atomic_fetch_add_explicit(&w->active_n, 1, memory_order_relaxed);
    ss_server_log(srv, SS_LOG_DEBUG, "connection #%llu from %s",
                   (unsigned long long)c->id, c->peer_str);
}

int ss__conn_open(struct worker *w, ss_sock *s, const ss_addr *peer)
{
    ss_server *srv = w->srv;
    ss_conn *c = conn_alloc(w);
    if (!c) {
        ss_sock_close(s);
        ss__stat_add(&w->errors, 1);
        return -ENOMEM;
    }
    ss_sock_set_opts(s, &srv->o.conn_sockopts, NULL);
    conn_init_common(w, c, s, peer);
    ss_timer_init(&c->idle_timer, idle_cb, c);
    ss_timer_init(&c->svc_timer, svc_timer_cb, c);
    ss_defer_init(&c->finish_defer, finish_cb, c);
    conn_touch(c);
    if (srv->o.idle_timeout_ms)
        ss_timer_start(w->loop, &c->idle_timer, srv->o.idle_timeout_ms);
    c->in_cb = true;
    if (srv->svc->on_open) {
        int r = srv->svc->on_open(c);
        if (r < 0)
            conn_fail(c, "on_open", r);
    }
    conn_after_dispatch(c);
    return 0;
}

/* Abort every connection of w (grace period over, or a forced stop). */
void ss__conn_abort_all(struct worker *w, int err)
{
    for (ss_conn *c = w->active; c; c = c->next)
        if (!c->blocking)
            conn_fail(c, "stopping", err);
}

/* ---- blocking connections ----------------------------------------------- */

int ss__conn_run_blocking(struct worker *w, ss_sock *s, const ss_addr *peer)
{
    ss_server *srv = w->srv;
    ss_conn *c = conn_alloc(w);
    if (!c) {
        ss_sock_close(s);
        return -ENOMEM;
    }
    c->blocking = true;
    ss_sock_set_opts(s, &srv->o.conn_sockopts, NULL);
    int err = ss_sock_set_blocking(s, true);
    if (err == 0 && srv->o.idle_timeout_ms) {
        ss_sockopts so;
        ss_sockopts_init(&so);
        so.timeout_ms = (int)srv->o.idle_timeout_ms;
        err = ss_sock_set_opts(s, &so, NULL);
    }
    conn_init_common(w, c, s, peer);
    if (err == 0 && srv->svc->on_open && (err = srv->svc->on_open(c)) < 0)
        c->pending_what = "on_open";
    if (err == 0 && (err = srv->svc->handle(c)) < 0)
        c->pending_what = "handle";
    if (err == -ETIMEDOUT)
        c->idle_expired = true;
    conn_finish(c, err);
    free(c);
    return err;
}

/* ---- public connection calls -------------------------------------------- */

int ss_conn_write(ss_conn *c, const void *data, size_t len)
{
    if (c->blocking)
        return ss_conn_write_all(c, data, len);
    struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
    return ss_conn_writev(c, &iov, 1);
}

int ss_conn_writev(ss_conn *c, const struct iovec *iov, int iovcnt)
{
    if (c->dying || c->finished || c->closing || c->shut_wr)
        return -EPIPE;
    size_t len = 0;
    for (int i = 0; i < iovcnt; i++)
        len += iov[i].iov_len;
    if (len == 0)
        return 0;
    if (c->blocking) {
        for (int i = 0; i < iovcnt; i++) {
            int r = ss_conn_write_all(c, iov[i].iov_base, iov[i].iov_len);
            if (r < 0)
                return r;
        }
        return 0;
    }
    if (c->out.bytes + len > 2 * outbuf_max(c))
        return -ENOBUFS;
    size_t sent = 0;
    if (c->out.bytes == 0) {
        /* Nothing queued: try the socket first; most writes end here. */
        ssize_t r = ss_sock_sendv(c->sock, iov, iovcnt);
        if (r >= 0) {
            sent = (size_t)r;
            ss__stat_add(&c->w->bytes_out, (uint64_t)r);
            conn_touch(c);
        } else if (r != -EAGAIN) {
            conn_fail(c, "send", (int)r);
            return (int)r;
        }
    }
    if (sent < len) {
        /* Queue the rest, skipping what the socket took. */
        size_t skip = sent;
        for (int i = 0; i < iovcnt; i++) {
            const char *p = iov[i].iov_base;
            size_t n = iov[i].iov_len;
            if (skip >= n) {
                skip -= n;
                continue;
            }
            int r = ss__outq_push(&c->out, &c->w->pool, p + skip, n - skip);
            skip = 0;
            if (r < 0) {
                conn_fail(c, "queue", r);
                return r;
            }
        }
        c->want_drain = true;
        if (c->out.bytes > outbuf_max(c))
            c->paused_bp = true;
        if (!c->in_cb)
            conn_update_watch(c);
    }
    return 0;
}

size_t ss_conn_out_queued(const ss_conn *c)
{
    return c->out.bytes;
}

bool ss_conn_out_full(const ss_conn *c)
{
    return c->out.bytes > outbuf_max(c);
}

void ss_conn_close(ss_conn *c)
{
    if (c->dying || c->finished || c->closing)
        return;
    c->closing = true;
    if (c->blocking)
        return;
    if (c->out.bytes == 0)
        conn_close_flushed(c);
    else if (!c->in_cb)
        conn_update_watch(c);
}

void ss_conn_abort(ss_conn *c, int err)
{
    if (c->blocking) {
        c->closing = true;
        if (c->sock)
            ss_sock_shutdown(c->sock, SHUT_RDWR);
        return;
    }
    conn_end(c, err);
}

void ss_conn_shutdown_write(ss_conn *c)
{
    if (c->dying || c->finished || c->shut_wr)
        return;
    c->shut_wr = true;
    if (c->out.bytes == 0) {
        c->shut_wr_done = true;
        ss_sock_shutdown(c->sock, SHUT_WR);
    }
}

void ss_conn_pause_read(ss_conn *c)
{
    c->paused_svc = true;
    if (!c->in_cb)
        conn_update_watch(c);
}

void ss_conn_resume_read(ss_conn *c)
{
    c->paused_svc = false;
    if (!c->in_cb)
        conn_update_watch(c);
}

int ss_conn_timer_start(ss_conn *c, uint64_t ms)
{
    if (c->blocking || !c->w->loop)
        return -EINVAL;
    if (c->dying)
        return -EPIPE;
    return ss_timer_start(c->w->loop, &c->svc_timer, ms);
}

void ss_conn_timer_stop(ss_conn *c)
{
    if (c->w->loop && !c->blocking)
        ss_timer_stop(c->w->loop, &c->svc_timer);
}

void *ss_conn_ctx(ss_conn *c) { return c->ctx; }
ss_server *ss_conn_server(const ss_conn *c) { return c->w->srv; }
void *ss_conn_server_ctx(const ss_conn *c) { return c->w->srv->o.svc_ctx; }
const ss_addr *ss_conn_peer(const ss_conn *c) { return &c->peer; }
const ss_addr *ss_conn_local(const ss_conn *c) { return &c->local; }
const char *ss_conn_peer_str(const ss_conn *c) { return c->peer_str; }
uint64_t ss_conn_id(const ss_conn *c) { return c->id; }
ss_sock *ss_conn_sock(ss_conn *c) { return c->sock; }
ss_loop *ss_conn_loop(ss_conn *c) { return c->blocking ? NULL : c->w->loop; }

bool ss_conn_stopping(const ss_conn *c)
{
    return c->w->stopping || atomic_load(&c->w->srv->stopping);
}

ssize_t ss_conn_read(ss_conn *c, void *buf, size_t cap)
{
    if (!c->blocking)
        return -EINVAL;
    ssize_t n = ss_sock_recv(c->sock, buf, cap);
    if (n <= 0 && atomic_load(&c->w->srv->grace_over))
        return -ECANCELED;
    if (n == -EAGAIN)
        return -ETIMEDOUT; /* SO_RCVTIMEO = the idle timeout */
    if (n > 0)
        ss__stat_add(&c->w->bytes_in, (uint64_t)n);
    return n;
}

int ss_conn_write_all(ss_conn *c, const void *data, size_t len)
{
    if (!c->blocking)
        return ss_conn_write(c, data, len);
    const char *p = data;
    while (len > 0) {
        ssize_t n = ss_sock_send(c->sock, p, len);
        if (n == -EINTR)
            continue;
        if (n < 0) {
            if (atomic_load(&c->w->srv->grace_over))
                return -ECANCELED;
            return n == -EAGAIN ? -ETIMEDOUT : (int)n;
        }
        ss__stat_add(&c->w->bytes_out, (uint64_t)n);
        p += n;
        len -= (size_t)n;
    }
    return 0;
}
