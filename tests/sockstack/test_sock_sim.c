/* The stack backend of sock.h over a simulated link (no root): two
 * user-space stacks in an ss_simnet, both used only through sock.h calls.
 * The simulation runs one instant at a time; between instants the reactor
 * runs once, delivering the readiness the backend deferred. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sockstack/discard.h"
#include "sockstack/err.h"
#include "sockstack/link.h"
#include "sockstack/server.h"
#include "sockstack/sock.h"
#include "sockstack/sock_stack.h"
#include "sockstack/stackrun.h"

struct world {
    ss_loop *loop;
    ss_simnet *net;
    ss_backend *be[2]; /* node 0: 10.0.0.1, node 1: 10.0.0.2 */
};

static uint64_t sim_now(void *arg) { return ss_simnet_now(arg); }

static void world_init(struct world *w, double loss)
{
    memset(w, 0, sizeof *w);
    struct ss_simnet_cfg cfg;
    ss_simnet_cfg_default(&cfg);
    cfg.seed = 7;
    for (int i = 0; i < 2; i++) {
        cfg.link[i].delay_us = 5000;
        cfg.link[i].loss = loss;
    }
    cr_assert_eq(ss_simnet_new(&cfg, &w->net), 0);
    cr_assert_eq(ss_loop_new(&w->loop), 0);
    for (int i = 0; i < 2; i++) {
        /* No .addr: the backend asks the stack for its address. */
        ss_stack_driver d = {.stack = ss_simnet_stack(w->net, i),
                             .now = sim_now, .kick = NULL, .arg = w->net};
        cr_assert_eq(ss_backend_stack_new(&d, &w->be[i]), 0);
    }
}

static void world_free(struct world *w)
{
    for (int i = 0; i < 2; i++)
        ss_backend_stack_free(w->be[i]);
    ss_loop_free(w->loop);
    ss_simnet_free(w->net);
}

static bool second_call(void *arg) { return ++*(int *)arg >= 2; }

/* One instant of the simulation (then the next), then one loop iteration. */
static void step(struct world *w)
{
    int k = 0;
    int rc = ss_simnet_run(w->net, second_call, &k, 600ull * 1000000);
    cr_assert_eq(rc, 0, "simnet: %s", ss_strerror(rc));
    cr_assert_geq(ss_loop_run_once(w->loop, 0), 0);
}

static void run_until(struct world *w, const bool *flag, int max_steps)
{
    for (int i = 0; i < max_steps && !*flag; i++)
        step(w);
    cr_assert(*flag, "condition not reached in %d steps", max_steps);
}

static ss_addr addr4(const char *ip, int port)
{
    ss_addr a;
    memset(&a, 0, sizeof a);
    struct sockaddr_in *sin = (struct sockaddr_in *)&a.sa;
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, ip, &sin->sin_addr);
    a.len = sizeof *sin;
    return a;
}

static unsigned char pattern(size_t i) { return (unsigned char)(i * 7 + i / 251); }

/* ---- a TCP conversation ------------------------------------------------- */

#define XFER_BYTES 300000

struct tcp_case {
    ss_loop *loop;
    ss_sock *lsock, *srv, *cli;
    size_t srv_got;
    bool srv_bad, srv_eof, srv_closed;
    size_t cli_sent;
    bool connected, cli_shut, cli_eof;
    int connect_err;
    char reply[64];
    size_t reply_len;
    ss_tcp_info info;
};

static void srv_cb(ss_sock *s, unsigned ev, void *arg)
{
    struct tcp_case *t = arg;
    unsigned char buf[4096];
    for (;;) {
        ssize_t n = ss_sock_recv(s, buf, sizeof buf);
        if (n == -EAGAIN)
            return;
        cr_assert_geq(n, 0, "server recv: %s", ss_strerror((int)n));
        if (n == 0) {
            t->srv_eof = true;
            cr_assert_eq(ss_sock_send(s, "bye\n", 4), 4);
            cr_assert_eq(ss_sock_close(s), 0);
            t->srv = NULL;
            t->srv_closed = true;
            return;
        }
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != pattern(t->srv_got + (size_t)i))
                t->srv_bad = true;
        t->srv_got += (size_t)n;
    }
}

static void accept_cb(ss_sock *s, unsigned ev, void *arg)
{
    struct tcp_case *t = arg;
    ss_addr peer;
    cr_assert(ev & SS_READ);
    cr_assert_eq(ss_sock_accept(s, &t->srv, &peer), 0);
    char name[SS_ADDR_STRLEN];
    ss_addr_format(&peer, name, sizeof name);
    cr_assert(!strncmp(name, "10.0.0.1:", 9), "%s", name);
    cr_assert_eq(ss_sock_accept(s, &(ss_sock *){NULL}, NULL), -EAGAIN);
}

static void cli_cb(ss_sock *s, unsigned ev, void *arg)
{
    struct tcp_case *t = arg;
    if (!t->connected) {
        cr_assert(ev & SS_WRITE);
        t->connect_err = ss_sock_error(s);
        cr_assert_eq(t->connect_err, 0, "%s", ss_strerror(t->connect_err));
        t->connected = true;
        ss_addr peer;
        char name[SS_ADDR_STRLEN];
        cr_assert_eq(ss_sock_peer_addr(s, &peer), 0);
        ss_addr_format(&peer, name, sizeof name);
        cr_assert_str_eq(name, "10.0.0.2:7");
    }
    if ((ev & SS_WRITE) && !t->cli_shut) {
        unsigned char buf[8192];
        while (t->cli_sent < XFER_BYTES) {
            size_t len = XFER_BYTES - t->cli_sent;
            if (len > sizeof buf)
                len = sizeof buf;
            for (size_t i = 0; i < len; i++)
                buf[i] = pattern(t->cli_sent + i);
            /* Two pieces through sendv: the gather path. */
            struct iovec iov[2] = {{buf, len / 2}, {buf + len / 2, len - len / 2}};
            ssize_t n = ss_sock_sendv(s, iov, 2);
            if (n == -EAGAIN)
                return; /* level-triggered: called again when there is room */
            cr_assert_gt(n, 0, "send: %s", ss_strerror((int)n));
            t->cli_sent += (size_t)n;
        }
        cr_assert_eq(ss_sock_shutdown(s, SHUT_WR), 0);
        t->cli_shut = true;
        cr_assert_eq(ss_sock_watch(s, t->loop, SS_READ, cli_cb, t), 0);
        return;
    }
    if (ev & SS_READ) {
        for (;;) {
            ssize_t n = ss_sock_recv(s, t->reply + t->reply_len,
                                     sizeof t->reply - 1 - t->reply_len);
            if (n == -EAGAIN)
                return;
            cr_assert_geq(n, 0, "client recv: %s", ss_strerror((int)n));
            if (n == 0) {
                t->cli_eof = true;
                cr_assert_eq(ss_sock_tcp_info(s, &t->info), 0);
                cr_assert_eq(ss_sock_watch(s, t->loop, 0, cli_cb, t), 0);
                return;
            }
            t->reply_len += (size_t)n;
        }
    }
}

Test(sock_stack_sim, tcp_transfer_half_close_and_reply_through_sock_calls)
{
    struct world w;
    world_init(&w, 0.02);
    struct tcp_case t = {.loop = w.loop};
    ss_addr la = addr4("10.0.0.2", 7);
    const char *failed = NULL;
    ss_sockopts o;
    ss_sockopts_init(&o);
    o.reuseaddr = 1;
    o.nodelay = 1;
    o.keepalive = 1;
    o.keepidle = 60;
    o.sndbuf = 1 << 30; /* clamped to the stack's pool, as the kernel clamps */
    o.rcvbuf = 8192;    /* set before the SYN, on the active open too */
    cr_assert_eq(ss_sock_listen_on(w.be[1], &la, SS_STREAM, &o, 8, &t.lsock, &failed), 0,
                 "%s", failed ? failed : "");
    ss_tcp_info li;
    cr_assert_eq(ss_sock_tcp_info(t.lsock, &li), 0);
    cr_assert_str_eq(li.state, "LISTEN");
    cr_assert_eq(ss_sock_watch(t.lsock, w.loop, SS_READ, accept_cb, &t), 0);

    int rc = ss_sock_connect_to(w.be[0], &la, SS_STREAM, &o, NULL, &t.cli, &failed);
    cr_assert_eq(rc, -EINPROGRESS, "%s", ss_strerror(rc));
    cr_assert_eq(ss_sock_watch(t.cli, w.loop, SS_WRITE, cli_cb, &t), 0);
    /* Not connected yet: nothing to read, nothing to send. */
    char tmp[4];
    cr_assert_eq(ss_sock_recv(t.cli, tmp, sizeof tmp), -EAGAIN);

    bool accepted = false;
    for (int i = 0; i < 1000 && !accepted; i++) {
        step(&w);
        accepted = t.srv != NULL;
    }
    cr_assert(accepted);
    cr_assert_eq(ss_sock_watch(t.srv, w.loop, SS_READ, srv_cb, &t), 0);
    run_until(&w, &t.cli_eof, 200000);

    cr_assert(t.srv_eof);
    cr_assert_eq(t.srv_got, XFER_BYTES);
    cr_assert(!t.srv_bad, "the server read other bytes than were sent");
    t.reply[t.reply_len] = '\0';
    cr_assert_str_eq(t.reply, "bye\n");
    cr_assert_str_eq(t.info.state, "TIME-WAIT");
    cr_assert_eq(t.info.bytes_acked, XFER_BYTES);
    cr_assert_eq(t.info.bytes_sent, XFER_BYTES, "bytes_sent %llu acked %llu rtx %u", (unsigned long long)t.info.bytes_sent, (unsigned long long)t.info.bytes_acked, t.info.retransmits);
    cr_assert_eq(t.info.bytes_received, 4);
    cr_assert_gt(t.info.rtt_us, 0);
    cr_assert_gt(t.info.snd_mss, 0);
    cr_assert_gt(t.info.retransmits, 0, "2%% loss should have cost a retransmission");
    cr_assert_eq(ss_sock_close(t.cli), 0);
    cr_assert_eq(ss_sock_close(t.lsock), 0);
    world_free(&w);
}

/* ---- connect refused ---------------------------------------------------- */

struct refused { bool done; int err; };

static void refused_cb(ss_sock *s, unsigned ev, void *arg)
{
    struct refused *r = arg;
    cr_assert(ev & SS_WRITE);
    r->err = ss_sock_error(s);
    r->done = true;
    ss_sock_unwatch(s);
}

Test(sock_stack_sim, connect_to_a_closed_port_reports_econnrefused_via_write_readiness)
{
    struct world w;
    world_init(&w, 0);
    ss_sock *s;
    ss_addr a = addr4("10.0.0.2", 9);
    cr_assert_eq(ss_sock_connect_to(w.be[0], &a, SS_STREAM, NULL, NULL, &s, NULL), -EINPROGRESS);
    struct refused r = {0};
    cr_assert_eq(ss_sock_watch(s, w.loop, SS_WRITE, refused_cb, &r), 0);
    run_until(&w, &r.done, 1000);
    cr_assert_eq(r.err, -ECONNREFUSED, "%s", ss_strerror(r.err));
    cr_assert_eq(ss_sock_error(s), 0, "the error is reported once");
    ss_sock_close(s);
    world_free(&w);
}

/* ---- UDP ---------------------------------------------------------------- */

struct udp_case { bool got; };

static void udp_cb(ss_sock *s, unsigned ev, void *arg)
{
    ((struct udp_case *)arg)->got = true;
    ss_sock_unwatch(s);
}

Test(sock_stack_sim, udp_datagrams_with_truncation_flag_and_source_address)
{
    struct world w;
    world_init(&w, 0);
    ss_sock *b, *a;
    ss_addr ba = addr4("0.0.0.0", 5353);
    cr_assert_eq(ss_sock_open(w.be[1], AF_INET, SS_DGRAM, &b), 0);
    cr_assert_eq(ss_sock_bind(b, &ba), 0);
    cr_assert_eq(ss_sock_open(w.be[0], AF_INET, SS_DGRAM, &a), 0);
    unsigned char msg[100];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = pattern(i);
    ss_addr to = addr4("10.0.0.2", 5353);
    cr_assert_eq(ss_sock_sendto(a, msg, sizeof msg, &to), (ssize_t)sizeof msg);
    struct udp_case u = {0};
    cr_assert_eq(ss_sock_watch(b, w.loop, SS_READ, udp_cb, &u), 0);
    run_until(&w, &u.got, 1000);

    unsigned char buf[10];
    ss_addr from;
    bool trunc = false;
    cr_assert_eq(ss_sock_recvfrom(b, buf, sizeof buf, &from, &trunc), 10);
    cr_assert(trunc, "a 100-byte datagram read into 10 bytes is truncated");
    cr_assert_eq(memcmp(buf, msg, 10), 0);
    char name[SS_ADDR_STRLEN];
    ss_addr_format(&from, name, sizeof name);
    ss_addr al;
    cr_assert_eq(ss_sock_local_addr(a, &al), 0);
    char want[SS_ADDR_STRLEN];
    snprintf(want, sizeof want, "10.0.0.1:%d", ss_addr_port(&al));
    cr_assert_str_eq(name, want);
    cr_assert_eq(ss_sock_recvfrom(b, buf, sizeof buf, NULL, NULL), -EAGAIN);

    /* The reply goes back to where the datagram came from, whole. */
    cr_assert_eq(ss_sock_sendto(b, "pong", 4, &from), 4);
    u.got = false;
    cr_assert_eq(ss_sock_watch(a, w.loop, SS_READ, udp_cb, &u), 0);
    run_until(&w, &u.got, 1000);
    char rb[16];
    trunc = true;
    cr_assert_eq(ss_sock_recvfrom(a, rb, sizeof rb, &from, &trunc), 4);
    cr_assert(!trunc);
    cr_assert_eq(memcmp(rb, "pong", 4), 0);
    ss_sock_close(a);
    ss_sock_close(b);
    world_free(&w);
}

/* ---- what the backend refuses ------------------------------------------- */

Test(sock_stack_sim, unsupported_families_options_and_blocking_are_refused_by_name)
{
    struct world w;
    world_init(&w, 0);
    ss_sock *s;
    cr_assert_eq(ss_sock_open(w.be[0], AF_INET6, SS_STREAM, &s), -EAFNOSUPPORT);
    cr_assert_eq(ss_sock_open(w.be[0], AF_INET, SS_STREAM, &s), 0);
    cr_assert_eq(ss_sock_fd(s), -1);
    cr_assert_eq(ss_sock_set_blocking(s, true), SS_ENOTSUP);
    cr_assert_str_eq(ss_backend_name(w.be[0]), "stack");
    /* A driver whose address is not its stack's is refused. */
    ss_backend *bad;
    ss_stack_driver d = {.stack = ss_simnet_stack(w.net, 0), .addr = 0x0a000002u,
                         .now = sim_now, .arg = w.net};
    cr_assert_eq(ss_backend_stack_new(&d, &bad), -EINVAL);
    d.addr = 0x0a000001u;
    cr_assert_eq(ss_backend_stack_new(&d, &bad), 0);
    ss_backend_stack_free(bad);
    const char *names[] = {"--ttl", "--mss", "--linger", "--reuseport", "--bind-device"};
    for (int i = 0; i < 5; i++) {
        ss_sockopts o;
        ss_sockopts_init(&o);
        switch (i) {
        case 0: o.ttl = 9; break;
        case 1: o.mss = 1000; break;
        case 2: o.linger = 0; break;
        case 3: o.reuseport = 1; break;
        case 4: strcpy(o.bind_device, "lo"); break;
        }
        const char *failed = NULL;
        cr_assert_eq(ss_sock_set_opts(s, &o, &failed), SS_ENOTSUP);
        cr_assert_str_eq(failed, names[i]);
    }
    /* Values the stack refuses are named at set_opts, before connect or
     * listen applies them. */
    for (int i = 0; i < 2; i++) {
        ss_sockopts o;
        ss_sockopts_init(&o);
        if (i == 0)
            o.rcvbuf = 0;
        else
            o.keepidle = 0;
        const char *failed = NULL;
        cr_assert_eq(ss_sock_set_opts(s, &o, &failed), -EINVAL);
        cr_assert_str_eq(failed, i == 0 ? "--rcvbuf" : "--keepalive");
    }
    ss_addr other = addr4("10.0.0.9", 80);
    cr_assert_eq(ss_sock_bind(s, &other), -EADDRNOTAVAIL);
    cr_assert_eq(ss_sock_send(s, "x", 1), -ENOTCONN);
    ss_addr peer;
    cr_assert_eq(ss_sock_peer_addr(s, &peer), -ENOTCONN);
    ss_sock_close(s);

    cr_assert_eq(ss_sock_open(w.be[0], AF_INET, SS_DGRAM, &s), 0);
    ss_sockopts o;
    ss_sockopts_init(&o);
    o.nodelay = 1;
    const char *failed = NULL;
    cr_assert_eq(ss_sock_set_opts(s, &o, &failed), -ENOPROTOOPT);
    cr_assert_str_eq(failed, "--nodelay");
    cr_assert_eq(ss_sock_send(s, "x", 1), -EDESTADDRREQ);
    cr_assert_eq(ss_sock_listen(s, 1), -EOPNOTSUPP);
    ss_sock_close(s);
    world_free(&w);
}

/* ---- the server framework on the stack backend -------------------------- */

/* A server on node 1 (10.0.0.2:7) of w, run on w's loop. */
static void sim_server_opts(struct world *w, ss_server_opts *o)
{
    ss_server_opts_init(o);
    o->backend = w->be[1];
    o->loop = w->loop;
    o->bind_host = "10.0.0.2";
    o->port = "7";
    o->family = AF_INET;
    o->handle_signals = false;
    o->grace_ms = 1000;
}

static int echo_data(ss_conn *c, const void *p, size_t n) { return ss_conn_write(c, p, n); }
static const ss_service echo_svc = {.name = "echo", .on_data = echo_data};

#define ECHO_BYTES 100000

/* The simulation advances while the server's loop runs: one instant per
 * loop iteration (the loop does not wait while a task is deferred); after
 * max instants the server is stopped (the test then fails on what it
 * checks). */
struct sim_drive {
    struct world *w;
    ss_server *srv;
    ss_defer tick;
    long ticks, max;
};

static void sim_drive_tick(ss_loop *loop, void *arg)
{
    struct sim_drive *d = arg;
    int k = 0;
    ss_simnet_run(d->w->net, second_call, &k, 600ull * 1000000);
    if (++d->ticks > d->max)
        ss_server_stop(d->srv);
    ss_loop_defer(loop, &d->tick);
}

struct fw_case {
    struct sim_drive d;
    ss_sock *cli;
    bool connected, shut, eof;
    size_t sent, got;
    bool bad;
};

static void fw_cli(ss_sock *s, unsigned ev, void *arg)
{
    struct fw_case *f = arg;
    if (!f->connected) {
        cr_assert_eq(ss_sock_error(s), 0);
        f->connected = true;
    }
    while ((ev & SS_WRITE) && !f->shut) {
        unsigned char buf[4096];
        size_t len = ECHO_BYTES - f->sent < sizeof buf ? ECHO_BYTES - f->sent : sizeof buf;
        for (size_t i = 0; i < len; i++)
            buf[i] = pattern(f->sent + i);
        ssize_t n = ss_sock_send(s, buf, len);
        if (n == -EAGAIN)
            break;
        cr_assert_gt(n, 0);
        f->sent += (size_t)n;
        if (f->sent == ECHO_BYTES) {
            cr_assert_eq(ss_sock_shutdown(s, SHUT_WR), 0);
            f->shut = true;
            cr_assert_eq(ss_sock_watch(s, f->d.w->loop, SS_READ, fw_cli, f), 0);
        }
    }
    for (;;) {
        unsigned char buf[4096];
        ssize_t n = ss_sock_recv(s, buf, sizeof buf);
        if (n == -EAGAIN)
            return;
        cr_assert_geq(n, 0, "%s", ss_strerror((int)n));
        if (n == 0) {
            f->eof = true;
            ss_sock_unwatch(s);
            ss_server_stop(f->d.srv);
            return;
        }
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != pattern(f->got + (size_t)i))
                f->bad = true;
        f->got += (size_t)n;
    }
}

Test(sock_stack_sim, server_framework_echo_runs_on_the_stack_backend_and_callers_loop)
{
    struct world w;
    world_init(&w, 0.01);
    ss_server_opts o;
    sim_server_opts(&w, &o);

    /* One event-model worker only on a caller's loop. */
    ss_server *srv;
    o.workers = 2;
    cr_assert_eq(ss_server_new(&echo_svc, &o, &srv), -EINVAL);
    o.workers = 1;
    cr_assert_eq(ss_server_new(&echo_svc, &o, &srv), 0);
    ss_addr a;
    ss_server_addr(srv, &a);
    char name[SS_ADDR_STRLEN];
    ss_addr_format(&a, name, sizeof name);
    cr_assert_str_eq(name, "10.0.0.2:7");

    struct fw_case f = {.d = {.w = &w, .srv = srv, .max = 400000}};
    ss_defer_init(&f.d.tick, sim_drive_tick, &f.d);
    ss_loop_defer(w.loop, &f.d.tick);
    cr_assert_eq(ss_sock_connect_to(w.be[0], &a, SS_STREAM, NULL, NULL, &f.cli, NULL),
                 -EINPROGRESS);
    cr_assert_eq(ss_sock_watch(f.cli, w.loop, SS_WRITE, fw_cli, &f), 0);
    cr_assert_eq(ss_server_run(srv), 0);
    ss_loop_defer_cancel(w.loop, &f.d.tick);

    cr_assert(f.eof, "no end of stream after %ld instants", f.d.ticks);
    cr_assert_eq(f.got, ECHO_BYTES);
    cr_assert(!f.bad, "the echo differs from what was sent");
    ss_server_stats st;
    ss_server_get_stats(srv, &st);
    cr_assert_eq(st.accepted, 1);
    cr_assert_eq(st.bytes_in, ECHO_BYTES);
    cr_assert_eq(st.bytes_out, ECHO_BYTES);
    ss_server_free(srv);
    ss_sock_close(f.cli);
    world_free(&w);
}

/* ---- stack up's services: discard and source, with its limits ----------- */

/* What `stack up --serve` runs: the apps on the framework over the stack
 * backend, with --max-per-peer (max_per_addr) and --idle-timeout. */
#define CAP_CLIENTS 4

struct cap_case {
    struct sim_drive d;
    ss_sock *cli[CAP_CLIENTS];
    int eofs, want_eofs;
    bool shut_first;        /* half-close at the first readiness */
    size_t got;
    bool bad;
    struct ss_prng rng;     /* source: the pattern expected next */
};

static void cap_cli(ss_sock *s, unsigned ev, void *arg)
{
    struct cap_case *f = arg;
    if (f->shut_first) {
        f->shut_first = false;
        cr_assert_eq(ss_sock_shutdown(s, SHUT_WR), 0);
    }
    for (;;) {
        unsigned char buf[4096], want[4096];
        ssize_t n = ss_sock_recv(s, buf, sizeof buf);
        if (n == -EAGAIN)
            return;
        cr_assert_geq(n, 0, "%s", ss_strerror((int)n));
        if (n == 0) {
            ss_sock_unwatch(s);
            if (++f->eofs == f->want_eofs)
                ss_server_stop(f->d.srv);
            return;
        }
        ss_prng_fill(&f->rng, want, (size_t)n);
        f->bad |= memcmp(buf, want, (size_t)n) != 0;
        f->got += (size_t)n;
    }
}

static void cap_give_up(ss_loop *loop, ss_timer *t, void *arg)
{
    ss_server_stop(arg);
}

/* Run until every client saw its EOF, or 20 s of wall-clock time (the
 * idle timeout is the loop's real clock): then the test fails on what it
 * checks. */
static void cap_run(struct world *w, struct cap_case *f, ss_server *srv, int nclients)
{
    ss_addr a;
    ss_server_addr(srv, &a);
    ss_timer give_up;
    ss_timer_init(&give_up, cap_give_up, srv);
    ss_timer_start(w->loop, &give_up, 20000);
    f->d = (struct sim_drive){.w = w, .srv = srv, .max = 50000000};
    f->want_eofs = nclients;
    ss_defer_init(&f->d.tick, sim_drive_tick, &f->d);
    ss_loop_defer(w->loop, &f->d.tick);
    for (int i = 0; i < nclients; i++) {
        cr_assert_eq(ss_sock_connect_to(w->be[0], &a, SS_STREAM, NULL, NULL, &f->cli[i], NULL),
                     -EINPROGRESS);
        cr_assert_eq(ss_sock_watch(f->cli[i], w->loop, SS_READ, cap_cli, f), 0);
    }
    cr_assert_eq(ss_server_run(srv), 0);
    ss_timer_stop(w->loop, &give_up);
    ss_loop_defer_cancel(w->loop, &f->d.tick);
    for (int i = 0; i < nclients; i++)
        ss_sock_close(f->cli[i]);
}

/* 4 idle connections from one address against a cap of 2: two are closed
 * as they are accepted; the idle timeout closes the other two. */
Test(sock_stack_sim, stack_up_discard_caps_each_peer_and_closes_idle_connections)
{
    struct world w;
    world_init(&w, 0);
    ss_server_opts o;
    sim_server_opts(&w, &o);
    o.port = "9";
    o.max_conns = 0;
    o.max_per_addr = 2;
    o.idle_timeout_ms = 500;
    ss_server *srv;
    cr_assert_eq(ss_server_new(ss_discard_service(), &o, &srv), 0);
    struct cap_case f = {0};
    cap_run(&w, &f, srv, CAP_CLIENTS);
    cr_assert_eq(f.eofs, CAP_CLIENTS, "every connection ends (stopped after %ld instants)",
                 f.d.ticks);
    ss_server_stats st;
    ss_server_get_stats(srv, &st);
    cr_assert_eq(st.accepted, 2);
    cr_assert_eq(st.refused_limit, 2);
    cr_assert_eq(st.idle_closed, 2);
    cr_assert_eq(f.got, 0);
    ss_server_free(srv);
    world_free(&w);
}

/* source: the pattern of its seed, the exact count, then its FIN; the
 * client half-closes at once, as a reader may (tcpperf recv does). */
Test(sock_stack_sim, stack_up_source_sends_its_pattern_then_closes)
{
    struct world w;
    world_init(&w, 0.01);
    ss_server_opts o;
    sim_server_opts(&w, &o);
    o.port = "19";
    o.sockopts.sndbuf = 8192; /* the socket takes part of a queue: on_drain
                               * comes while some of it still waits */
    ss_source_opts so = {.bytes = 300001, .seed = 19};
    o.svc_ctx = &so;
    ss_server *srv;
    cr_assert_eq(ss_server_new(ss_source_service(), &o, &srv), 0);
    struct cap_case f = {.shut_first = true};
    ss_prng_seed(&f.rng, 19);
    cap_run(&w, &f, srv, 1);
    cr_assert_eq(f.eofs, 1);
    cr_assert_eq(f.got, 300001);
    cr_assert(!f.bad, "the bytes differ from the pattern");
    ss_server_stats st;
    ss_server_get_stats(srv, &st);
    cr_assert_eq(st.bytes_out, 300001);
    ss_server_free(srv);
    world_free(&w);
}

/* ---- the peer's FIN while reading is paused: SS_RDHUP ------------------- */

/* What the server's socket reported, in order: "RDHUP", "READ abc",
 * "EOF", ... */
struct rdhup_case {
    ss_loop *loop;
    ss_sock *srv;
    char log[256];
    bool eof;
};

static void log_add(char *log, size_t cap, const char *what)
{
    size_t n = strlen(log);
    snprintf(log + n, cap - n, "%s%s", n ? "; " : "", what);
}

static void rdhup_log(struct rdhup_case *r, const char *what)
{
    log_add(r->log, sizeof r->log, what);
}

static void rdhup_srv_cb(ss_sock *s, unsigned ev, void *arg)
{
    struct rdhup_case *r = arg;
    if (!(ev & SS_READ)) {
        /* Asked for SS_RDHUP alone (reading paused): the hang-up, nothing
         * else; then reading resumes, as a service's on_hangup would. */
        rdhup_log(r, ev == SS_RDHUP ? "RDHUP" : "other");
        cr_assert_eq(ss_sock_watch(s, r->loop, SS_READ, rdhup_srv_cb, r), 0);
        return;
    }
    char buf[64], line[80];
    ssize_t n = ss_sock_recv(s, buf, sizeof buf);
    if (n == -EAGAIN)
        return;
    if (n == 0) {
        rdhup_log(r, "EOF");
        r->eof = true;
        ss_sock_unwatch(s);
        return;
    }
    cr_assert_gt(n, 0, "%s", ss_strerror((int)n));
    snprintf(line, sizeof line, "READ %.*s", (int)n, buf);
    rdhup_log(r, line);
}

Test(sock_stack_sim, the_peers_fin_is_a_read_hangup_while_reading_is_paused)
{
    struct world w;
    world_init(&w, 0);
    ss_addr la = addr4("10.0.0.2", 7);
    ss_sock *ls, *cli;
    cr_assert_eq(ss_sock_listen_on(w.be[1], &la, SS_STREAM, NULL, 8, &ls, NULL), 0);
    cr_assert_eq(ss_sock_connect_to(w.be[0], &la, SS_STREAM, NULL, NULL, &cli, NULL),
                 -EINPROGRESS);
    struct rdhup_case r = {.loop = w.loop};
    for (int i = 0; i < 1000 && !r.srv; i++) {
        step(&w);
        ss_sock_accept(ls, &r.srv, NULL);
    }
    cr_assert_not_null(r.srv, "no connection accepted");
    cr_assert_eq(ss_sock_watch(r.srv, w.loop, SS_RDHUP, rdhup_srv_cb, &r), 0);
    /* Bytes alone are no hang-up: nothing is reported while they wait. */
    cr_assert_eq(ss_sock_send(cli, "abc", 3), 3);
    for (int i = 0; i < 200; i++)
        step(&w);
    cr_assert_str_eq(r.log, "");
    /* The FIN is. */
    cr_assert_eq(ss_sock_shutdown(cli, SHUT_WR), 0);
    run_until(&w, &r.eof, 1000);
    cr_assert_str_eq(r.log, "RDHUP; READ abc; EOF");
    ss_sock_close(r.srv);
    ss_sock_close(cli);
    ss_sock_close(ls);
    world_free(&w);
}

/* The server framework's on_hangup on the stack backend: a service that
 * pauses reading at once learns that its client hung up (exec's rule:
 * the command goes when its client does, even with stdin held back). */
struct hup_case {
    struct sim_drive d;
    char log[128];
};

static int hup_open(ss_conn *c)
{
    struct hup_case *h = ss_conn_server_ctx(c);
    log_add(h->log, sizeof h->log, "open");
    ss_conn_pause_read(c);
    return 0;
}

static int hup_data(ss_conn *c, const void *p, size_t n)
{
    struct hup_case *h = ss_conn_server_ctx(c);
    log_add(h->log, sizeof h->log, "data");
    return 0;
}

static int hup_hangup(ss_conn *c)
{
    struct hup_case *h = ss_conn_server_ctx(c);
    log_add(h->log, sizeof h->log, "hangup");
    ss_conn_abort(c, -ECONNRESET);
    return 0;
}

static void hup_close(ss_conn *c, int err)
{
    struct hup_case *h = ss_conn_server_ctx(c);
    char what[64];
    snprintf(what, sizeof what, "close %s", ss_strerror(err));
    log_add(h->log, sizeof h->log, what);
    ss_server_stop(h->d.srv);
}

static const ss_service hup_svc = {
    .name = "paused",
    .on_open = hup_open,
    .on_data = hup_data,
    .on_hangup = hup_hangup,
    .on_close = hup_close,
};

Test(sock_stack_sim, a_paused_service_hears_its_client_hang_up_on_the_stack)
{
    struct world w;
    world_init(&w, 0);
    struct hup_case h = {.d = {.w = &w, .max = 20000}};
    ss_server_opts o;
    sim_server_opts(&w, &o);
    o.svc_ctx = &h;
    cr_assert_eq(ss_server_new(&hup_svc, &o, &h.d.srv), 0);
    ss_addr a;
    ss_server_addr(h.d.srv, &a);
    ss_sock *cli;
    cr_assert_eq(ss_sock_connect_to(w.be[0], &a, SS_STREAM, NULL, NULL, &cli, NULL),
                 -EINPROGRESS);
    /* Bytes the service never reads, then the client's FIN (queued: sent
     * once connected). */
    for (int i = 0; i < 1000 && ss_sock_send(cli, "stdin", 5) != 5; i++) {
        int k = 0;
        ss_simnet_run(w.net, second_call, &k, 600ull * 1000000);
        ss_loop_run_once(w.loop, 0);
    }
    cr_assert_eq(ss_sock_shutdown(cli, SHUT_WR), 0);
    ss_defer_init(&h.d.tick, sim_drive_tick, &h.d);
    ss_loop_defer(w.loop, &h.d.tick);
    cr_assert_eq(ss_server_run(h.d.srv), 0);
    ss_loop_defer_cancel(w.loop, &h.d.tick);
    cr_assert_str_eq(h.log, "open; hangup; close Connection reset by peer", "after %ld instants",
                     h.d.ticks);
    ss_server_free(h.d.srv);
    ss_sock_close(cli);
    world_free(&w);
}
