/* The backend-neutral half of sock: dispatch through the backend's ops, the
 * convenience openers, and the TCP_INFO formatter. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sock/sock_internal.h"
#include "sockstack/err.h"

ss_sock *ss__sock_alloc(const ss_backend *be, int family, int type)
{
    ss_sock *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->be = be;
    s->family = family;
    s->type = type;
    s->fd = -1;
    return s;
}

void ss__sock_free(ss_sock *s)
{
    free(s);
}

void ss__sock_ready(ss_sock *s, unsigned events)
{
    if (s->cb)
        s->cb(s, events, s->cb_arg);
}

const char *ss_backend_name(const ss_backend *be)
{
    return be->name;
}

void ss_sockopts_init(ss_sockopts *o)
{
    *o = (ss_sockopts){
        .reuseaddr = -1, .reuseport = -1, .sndbuf = -1, .rcvbuf = -1,
        .keepalive = -1, .keepidle = -1, .keepintvl = -1, .keepcnt = -1,
        .linger = -1, .nodelay = -1, .timeout_ms = -1, .broadcast = -1,
        .ttl = -1, .tos = -1, .mss = -1, .bind_device = "",
    };
}

int ss_sock_open(const ss_backend *be, int family, int type, ss_sock **out)
{
    if (type != SS_STREAM && type != SS_DGRAM)
        return -EINVAL;
    return be->open(be, family, type, out);
}

int ss_sock_set_opts(ss_sock *s, const ss_sockopts *o, const char **failed)
{
    if (failed)
        *failed = NULL;
    return s->be->ops->set_opts(s, o, failed);
}

int ss_sock_bind(ss_sock *s, const ss_addr *a) { return s->be->ops->bind(s, a); }
int ss_sock_listen(ss_sock *s, int backlog) { return s->be->ops->listen(s, backlog); }
int ss_sock_connect(ss_sock *s, const ss_addr *a) { return s->be->ops->connect(s, a); }
int ss_sock_error(ss_sock *s) { return s->be->ops->error(s); }
int ss_sock_shutdown(ss_sock *s, int how) { return s->be->ops->shutdown(s, how); }
int ss_sock_type(const ss_sock *s) { return s->type; }
int ss_sock_fd(const ss_sock *s) { return s->fd; }

int ss_sock_accept(ss_sock *s, ss_sock **out, ss_addr *peer)
{
    ss_addr tmp;
    return s->be->ops->accept(s, out, peer ? peer : &tmp);
}

ssize_t ss_sock_send(ss_sock *s, const void *buf, size_t len)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    return s->be->ops->sendv(s, &iov, 1);
}

ssize_t ss_sock_sendv(ss_sock *s, const struct iovec *iov, int iovcnt)
{
    return s->be->ops->sendv(s, iov, iovcnt);
}

ssize_t ss_sock_recv(ss_sock *s, void *buf, size_t cap)
{
    return s->be->ops->recv(s, buf, cap);
}

ssize_t ss_sock_sendto(ss_sock *s, const void *buf, size_t len, const ss_addr *to)
{
    return s->be->ops->sendto(s, buf, len, to);
}

ssize_t ss_sock_recvfrom(ss_sock *s, void *buf, size_t cap, ss_addr *from,
                         bool *truncated)
{
    ss_addr tmp;
    bool t = false;
    ssize_t n = s->be->ops->recvfrom(s, buf, cap, from ? from : &tmp, &t);
    if (truncated)
        *truncated = t;
    return n;
}

int ss_sock_local_addr(ss_sock *s, ss_addr *out) { return s->be->ops->local_addr(s, out); }
int ss_sock_peer_addr(ss_sock *s, ss_addr *out) { return s->be->ops->peer_addr(s, out); }

int ss_sock_set_blocking(ss_sock *s, bool blocking)
{
    if (!s->be->ops->set_blocking)
        return SS_ENOTSUP;
    return s->be->ops->set_blocking(s, blocking);
}

int ss_sock_tcp_info(ss_sock *s, ss_tcp_info *out)
{
    if (s->type != SS_STREAM || !s->be->ops->tcp_info)
        return SS_ENOTSUP;
    memset(out, 0, sizeof *out);
    return s->be->ops->tcp_info(s, out);
}

int ss_sock_watch(ss_sock *s, ss_loop *loop, unsigned events, ss_sock_cb cb, void *arg)
{
    if (s->watching && s->loop != loop)
        return -EBUSY;
    s->cb = cb;
    s->cb_arg = arg;
    s->loop = loop;
    s->events = events & (SS_READ | SS_WRITE | SS_RDHUP);
    int err = s->be->ops->watch(s);
    if (err == 0)
        s->watching = true;
    return err;
}

int ss_sock_unwatch(ss_sock *s)
{
    if (!s->watching)
        return 0;
    int err = s->be->ops->unwatch(s);
    s->watching = false;
    s->loop = NULL;
    s->cb = NULL;
    s->events = 0;
    return err;
}

int ss_sock_close(ss_sock *s)
{
    if (!s)
        return 0;
    ss_sock_unwatch(s);
    int err = s->be->ops->close(s);
    ss__sock_free(s);
    return err;
}

int ss_sock_listen_on(const ss_backend *be, const ss_addr *a, int type,
                      const ss_sockopts *o, int backlog, ss_sock **out,
                      const char **failed_opt)
{
    ss_sock *s;
    *out = NULL;
    if (failed_opt)
        *failed_opt = NULL;
    int err = ss_sock_open(be, ss_addr_family(a), type, &s);
    if (err < 0)
        return err;
    if (o && (err = ss_sock_set_opts(s, o, failed_opt)) < 0)
        goto fail;
    if ((err = ss_sock_bind(s, a)) < 0)
        goto fail;
    if (type == SS_STREAM && (err = ss_sock_listen(s, backlog)) < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    ss_sock_close(s);
    return err;
}

int ss_sock_connect_to(const ss_backend *be, const ss_addr *a, int type,
                       const ss_sockopts *o, const ss_addr *bind_addr,
                       ss_sock **out, const char **failed_opt)
{
    ss_sock *s;
    *out = NULL;
    if (failed_opt)
        *failed_opt = NULL;
    int err = ss_sock_open(be, ss_addr_family(a), type, &s);
    if (err < 0)
        return err;
    if (o && (err = ss_sock_set_opts(s, o, failed_opt)) < 0)
        goto fail;
    if (bind_addr && (err = ss_sock_bind(s, bind_addr)) < 0)
        goto fail;
    err = ss_sock_connect(s, a);
    if (err < 0 && err != -EINPROGRESS)
        goto fail;
    *out = s;
    return err;
fail:
    ss_sock_close(s);
    return err;
}

static void fmt_us(char *buf, size_t cap, uint32_t us)
{
    snprintf(buf, cap, "%u.%03u ms", us / 1000, us % 1000);
}

int ss_tcp_info_format(const ss_tcp_info *ti, char *buf, size_t cap)
{
    char rtt[32], var[32], rto[32], ssth[32];
    fmt_us(rtt, sizeof rtt, ti->rtt_us);
    fmt_us(var, sizeof var, ti->rttvar_us);
    fmt_us(rto, sizeof rto, ti->rto_us);
    if (ti->snd_ssthresh >= 0x7fffffffu)
        snprintf(ssth, sizeof ssth, "infinite");
    else
        snprintf(ssth, sizeof ssth, "%u segments", ti->snd_ssthresh);
    int n = snprintf(buf, cap,
                     "tcp info:\n"
                     "  state          %s\n"
                     "  rtt            %s\n"
                     "  rtt variance   %s\n"
                     "  rto            %s\n"
                     "  mss            send %u, receive %u\n"
                     "  cwnd           %u segments\n"
                     "  ssthresh       %s\n"
                     "  retransmits    %u\n"
                     "  bytes sent     %llu\n"
                     "  bytes acked    %llu\n"
                     "  bytes received %llu\n",
                     ti->state, rtt, var, rto, ti->snd_mss, ti->rcv_mss, ti->snd_cwnd,
                     ssth, ti->retransmits, (unsigned long long)ti->bytes_sent,
                     (unsigned long long)ti->bytes_acked,
                     (unsigned long long)ti->bytes_received);
    if (n >= 0 && (size_t)n < cap) {
        /* Like ss(8): "ts sack wscale:7,7" (theirs, ours). */
        int m = snprintf(buf + n, cap - (size_t)n, "  options       %s%s%s",
                         ti->options & 1 ? " ts" : "", ti->options & 2 ? " sack" : "",
                         ti->options ? "" : " none");
        n = m < 0 ? m : n + m;
        if (n >= 0 && (size_t)n < cap && (ti->options & 4)) {
            m = snprintf(buf + n, cap - (size_t)n, " wscale:%u,%u", ti->snd_wscale,
                         ti->rcv_wscale);
            n = m < 0 ? m : n + m;
        }
        if (n >= 0 && (size_t)n < cap) {
            m = snprintf(buf + n, cap - (size_t)n, "\n");
            n = m < 0 ? m : n + m;
        }
    }
    return n < 0 ? -EINVAL : (size_t)n >= cap ? -ENOSPC : n;
}
