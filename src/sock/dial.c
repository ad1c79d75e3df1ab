/* A client's connection and sequential I/O, waited for in the reactor
 * (see sockstack/dial.h). */
#include "sockstack/dial.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sockstack/config.h"
#include "sockstack/err.h"
#include "sockstack/tls.h"

void ss_dial_opts_init(ss_dial_opts *o)
{
    memset(o, 0, sizeof *o);
    o->family = AF_UNSPEC;
    o->timeout_ms = SS_DIAL_TIMEOUT_MS;
}

struct waiter {
    unsigned got;
    bool timed_out;
};

static void wait_cb(ss_sock *s, unsigned ev, void *arg)
{
    struct waiter *w = arg;
    w->got |= ev;
}

static void wait_timer(ss_loop *loop, ss_timer *t, void *arg)
{
    struct waiter *w = arg;
    w->timed_out = true;
}

int ss_sock_wait(ss_sock *s, ss_loop *loop, unsigned events, int timeout_ms)
{
    struct waiter w = {0};
    ss_timer t;
    ss_timer_init(&t, wait_timer, &w);
    int rc = ss_sock_watch(s, loop, events, wait_cb, &w);
    if (rc < 0)
        return rc;
    if (timeout_ms >= 0 && (rc = ss_timer_start(loop, &t, (uint64_t)timeout_ms)) < 0) {
        ss_sock_unwatch(s);
        return rc;
    }
    rc = 0;
    while (!w.got && !w.timed_out && rc >= 0)
        rc = ss_loop_run_once(loop, -1);
    ss_timer_stop(loop, &t);
    ss_sock_unwatch(s);
    if (w.got)
        return (int)w.got;
    return rc < 0 ? rc : -ETIMEDOUT;
}

ssize_t ss_sock_recv_wait(ss_sock *s, ss_loop *loop, void *buf, size_t cap,
                          int timeout_ms)
{
    for (;;) {
        ssize_t n = ss_sock_recv(s, buf, cap);
        if (n != -EAGAIN && n != -EINTR)
            return n;
        int r = ss_sock_wait(s, loop, SS_READ, timeout_ms);
        if (r < 0)
            return r;
    }
}

/* Wait until a TLS socket has handed everything it accepted to the inner
 * socket: "all sent" then means what it means on plain TCP (the kernel has
 * the bytes), and a caller that next waits for something else (a child, a
 * lock, another socket) does not leave the last records behind. */
static int drain(ss_sock *s, ss_loop *loop, int timeout_ms)
{
    while (ss_tls_unsent(s) > 0) {
        int r = ss_sock_wait(s, loop, SS_WRITE, timeout_ms);
        if (r < 0)
            return r;
        if ((r = ss_sock_error(s)) < 0)
            return r;
    }
    return 0;
}

int ss_sock_send_all(ss_sock *s, ss_loop *loop, const void *buf, size_t len,
                     int timeout_ms)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = ss_sock_send(s, p, len);
        if (n == -EAGAIN || n == -EINTR) {
            int r = ss_sock_wait(s, loop, SS_WRITE, timeout_ms);
            if (r < 0)
                return r;
            continue;
        }
        if (n < 0)
            return (int)n;
        p += n;
        len -= (size_t)n;
    }
    return drain(s, loop, timeout_ms);
}

/* Milliseconds left before deadline (loop clock), at least 1; -1 if none. */
static int left_ms(ss_loop *loop, uint64_t deadline)
{
    if (!deadline)
        return -1;
    ss_loop_update_time(loop);
    uint64_t now = ss_loop_now(loop);
    return now >= deadline ? 0 : (int)(deadline - now);
}

/* Connect s (just opened) within the deadline: 0 or a code. */
static int finish_connect(ss_sock *s, ss_loop *loop, int rc, uint64_t deadline)
{
    if (rc != -EINPROGRESS)
        return rc;
    int r = ss_sock_wait(s, loop, SS_WRITE, left_ms(loop, deadline));
    return r < 0 ? r : ss_sock_error(s);
}

static int tls_start(ss_sock **sp, ss_loop *loop, const ss_dial_opts *o,
                     const char *host, uint64_t deadline, char *why, size_t cap)
{
    const char *name = o->servername ? o->servername : host;
    char bare[256];
    size_t hl = strlen(name);
    if (name[0] == '[' && hl > 2 && hl < sizeof bare && name[hl - 1] == ']') {
        memcpy(bare, name + 1, hl - 2); /* "[::1]" checks as "::1" */
        bare[hl - 2] = '\0';
        name = bare;
    }
    int rc = ss_tls_wrap(o->tls, *sp, name, sp);
    if (rc < 0) {
        snprintf(why, cap, "%s", ss_strerror(rc));
        return rc;
    }
    while ((rc = ss_tls_handshake(*sp)) == -EAGAIN) {
        int r = ss_sock_wait(*sp, loop, SS_READ, left_ms(loop, deadline));
        if (r < 0) {
            rc = r;
            break;
        }
    }
    if (rc < 0 && ss_tls_error(*sp, why, cap) <= 0)
        snprintf(why, cap, "%s", ss_strerror(rc));
    return rc;
}

int ss_dial(ss_loop *loop, const char *host, const char *port,
            const ss_dial_opts *o, ss_sock **out, char *err, size_t errcap)
{
    ss_dial_opts defaults;
    if (!o) {
        ss_dial_opts_init(&defaults);
        o = &defaults;
    }
    *out = NULL;
    if (err && errcap)
        err[0] = '\0';
    ss_addr addrs[8];
    int n = ss_addr_resolve(host, port, o->family, SS_STREAM, false, addrs, 8);
    if (n < 0) {
        snprintf(err, errcap, "%s port %s: %s", host, port, ss_strerror(n));
        return n;
    }
    const ss_backend *be = o->backend ? o->backend : ss_backend_kernel();
    int rc = -EHOSTUNREACH;
    char why[256] = "";
    bool tls_failed = false;
    for (int i = 0; i < n; i++) {
        ss_loop_update_time(loop);
        uint64_t deadline = o->timeout_ms > 0 ? ss_loop_now(loop) + (uint64_t)o->timeout_ms : 0;
        ss_sock *s = NULL;
        const char *failed = NULL;
        rc = ss_sock_connect_to(be, &addrs[i], SS_STREAM, o->sockopts, o->bind_addr, &s,
                                &failed);
        if (failed) {
            snprintf(err, errcap, "%s: %s", failed, ss_strerror(rc));
            return rc;
        }
        if (s)
            rc = finish_connect(s, loop, rc, deadline);
        if (rc == 0 && o->tls) {
            rc = tls_start(&s, loop, o, host, deadline, why, sizeof why);
            tls_failed = rc < 0;
        }
        if (rc == 0) {
            *out = s;
            return 0;
        }
        ss_sock_close(s);
        if (tls_failed)
            break; /* the next address is the same server: same answer */
    }
    if (tls_failed)
        snprintf(err, errcap, "TLS with %s port %s failed: %s", host, port, why);
    else
        snprintf(err, errcap, "cannot connect to %s port %s: %s", host, port,
                 ss_strerror(rc));
    return rc;
}

ssize_t ss_stream_recv(ss_stream *st, void *buf, size_t cap)
{
    return ss_sock_recv_wait(st->sock, st->loop, buf, cap, st->timeout_ms);
}

int ss_stream_send_all(ss_stream *st, const void *buf, size_t len)
{
    return ss_sock_send_all(st->sock, st->loop, buf, len, st->timeout_ms);
}

int ss_stream_sendv_all(ss_stream *st, const struct iovec *iov_in, int iovcnt)
{
    struct iovec iov[8];
    if (iovcnt > 8)
        return -EINVAL;
    memcpy(iov, iov_in, (size_t)iovcnt * sizeof *iov);
    struct iovec *v = iov;
    int cnt = iovcnt;
    while (cnt > 0 && v->iov_len == 0)
        v++, cnt--;
    while (cnt > 0) {
        ssize_t n = ss_sock_sendv(st->sock, v, cnt);
        if (n == -EAGAIN || n == -EINTR) {
            int r = ss_sock_wait(st->sock, st->loop, SS_WRITE, st->timeout_ms);
            if (r < 0)
                return r;
            continue;
        }
        if (n < 0)
            return (int)n;
        size_t k = (size_t)n;
        while (cnt > 0 && k >= v->iov_len) {
            k -= v->iov_len;
            v++, cnt--;
        }
        if (cnt > 0) {
            v->iov_base = (char *)v->iov_base + k;
            v->iov_len -= k;
        }
    }
    return drain(st->sock, st->loop, st->timeout_ms);
}

int ss_stream_read_exact(ss_stream *st, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = ss_stream_recv(st, (char *)buf + got, len - got);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return got == 0 ? 1 : -EPIPE;
        got += (size_t)n;
    }
    return 0;
}
