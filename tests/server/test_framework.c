/* In-process tests of the server framework API (server.h): services
 * written for these tests run on a server thread; clients are plain
 * kernel sockets. Covers what the CLI services do not: blocking handlers,
 * producers driven by on_drain, the per-connection timer, pause/resume,
 * handler errors and the counters. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "sockstack/err.h"
#include "sockstack/server.h"

TestSuite(framework, .timeout = 30);

struct running {
    ss_server *srv;
    pthread_t tid;
    int port;
    int rc;
};

static void *run_thread(void *arg)
{
    struct running *r = arg;
    r->rc = ss_server_run(r->srv);
    return NULL;
}

static void start(struct running *r, const ss_service *svc, ss_server_opts *o)
{
    o->bind_host = "127.0.0.1";
    o->port = "0";
    o->handle_signals = false;
    cr_assert_eq(ss_server_new(svc, o, &r->srv), 0);
    ss_addr a;
    ss_server_addr(r->srv, &a);
    r->port = ss_addr_port(&a);
    cr_assert_gt(r->port, 0);
    cr_assert_eq(pthread_create(&r->tid, NULL, run_thread, r), 0);
}

static void finish(struct running *r, ss_server_stats *st)
{
    ss_server_stop(r->srv);
    pthread_join(r->tid, NULL);
    cr_assert_eq(r->rc, 0);
    if (st)
        ss_server_get_stats(r->srv, st);
    ss_server_free(r->srv);
}

static int dial_rcvbuf(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf > 0) /* before connect, so the window is negotiated small */
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static int dial(int port)
{
    return dial_rcvbuf(port, 0);
}

static void recv_exact(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = recv(fd, p, len, 0);
        cr_assert_gt(n, 0, "recv: %s", n == 0 ? "EOF" : strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

static void expect_eof(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, 0);
    cr_assert(n == 0 || (n < 0 && errno == ECONNRESET), "expected close, got %zd", n);
}

/* ---- a blocking handler ------------------------------------------------- */

/* Reads until '\n', answers "LEN n\n", returns. */
static int line_handle(ss_conn *c)
{
    char buf[256];
    size_t have = 0;
    while (have < sizeof buf) {
        ssize_t n = ss_conn_read(c, buf + have, sizeof buf - have);
        if (n <= 0)
            return n < 0 ? (int)n : SS_EPEERPROTO;
        have += (size_t)n;
        if (memchr(buf, '\n', have))
            break;
    }
    char out[32];
    int k = snprintf(out, sizeof out, "LEN %zu\n", have);
    cr_assert_null(ss_conn_loop(c), "no loop inside a blocking handler");
    return ss_conn_write_all(c, out, (size_t)k);
}

static const ss_service line_svc = {.name = "line", .handle = line_handle};

/* The service under a concurrency model, other options at their defaults. */
static void start_model(struct running *r, const ss_service *svc, int model)
{
    ss_server_opts o;
    ss_server_opts_init(&o);
    o.model = model;
    start(r, svc, &o);
}

/* Close the two clients, stop the server: two served, none left, no
 * errors, and exactly these bytes counted in and out. */
static void close_two_and_check(struct running *r, int a, int b, uint64_t in, uint64_t out)
{
    close(a);
    close(b);
    ss_server_stats st;
    finish(r, &st);
    cr_assert_eq(st.accepted, 2);
    cr_assert_eq(st.active, 0);
    cr_assert_eq(st.errors, 0);
    cr_assert_eq(st.bytes_in, in, "bytes_in %llu", (unsigned long long)st.bytes_in);
    cr_assert_eq(st.bytes_out, out, "bytes_out %llu", (unsigned long long)st.bytes_out);
}

static void blocking_under(int model)
{
    struct running r;
    start_model(&r, &line_svc, model);
    int a = dial(r.port), b = dial(r.port);
    /* b first: connections are served concurrently, not in turn */
    send(b, "hello\n", 6, 0);
    char got[16] = {0};
    recv_exact(b, got, 6);
    cr_assert_str_eq(got, "LEN 6\n");
    expect_eof(b);
    send(a, "abc\n", 4, 0);
    memset(got, 0, sizeof got);
    recv_exact(a, got, 6);
    cr_assert_str_eq(got, "LEN 4\n");
    expect_eof(a);
    /* what the threads or children read and wrote reaches the server */
    close_two_and_check(&r, a, b, 6 + 4, 6 + 6);
}

Test(framework, blocking_handler_thread_model) { blocking_under(SS_MODEL_THREAD); }
Test(framework, blocking_handler_on_event_model_runs_on_threads) { blocking_under(SS_MODEL_EVENT); }
Test(framework, blocking_handler_fork_model) { blocking_under(SS_MODEL_FORK); }

Test(framework, blocking_handler_with_workers_is_refused)
{
    ss_server_opts o;
    ss_server_opts_init(&o);
    o.workers = 2;
    o.bind_host = "127.0.0.1";
    o.handle_signals = false;
    ss_server *srv = NULL;
    cr_assert_eq(ss_server_new(&line_svc, &o, &srv), -EINVAL);
    cr_assert_null(srv);
}

/* ---- a producer driven by on_drain -------------------------------------- */

#define PRODUCE_TOTAL (4u << 20)
static _Atomic size_t max_queued;

struct producer {
    size_t sent;
};

static int produce(ss_conn *c)
{
    struct producer *p = ss_conn_ctx(c);
    static char chunk[65536];
    while (p->sent < PRODUCE_TOTAL && !ss_conn_out_full(c)) {
        for (size_t i = 0; i < sizeof chunk; i++)
            chunk[i] = (char)((p->sent + i) % 251);
        int r = ss_conn_write(c, chunk, sizeof chunk);
        if (r < 0)
            return r;
        p->sent += sizeof chunk;
        size_t q = ss_conn_out_queued(c);
        if (q > max_queued)
            max_queued = q;
    }
    if (p->sent >= PRODUCE_TOTAL)
        ss_conn_close(c);
    return 0;
}

static const ss_service producer_svc = {
    .name = "producer",
    .conn_ctx_size = sizeof(struct producer),
    .on_open = produce,
    .on_drain = produce,
};

Test(framework, on_drain_paces_a_producer_within_the_buffer_limit)
{
    ss_server_opts o;
    ss_server_opts_init(&o);
    o.outbuf_max = 128 * 1024;
    struct running r;
    start(&r, &producer_svc, &o);
    int fd = dial_rcvbuf(r.port, 4096);
    usleep(200000); /* let the queue fill up while we do not read */
    static char buf[PRODUCE_TOTAL];
    recv_exact(fd, buf, PRODUCE_TOTAL);
    for (size_t i = 0; i < PRODUCE_TOTAL; i++)
        cr_assert_eq((unsigned char)buf[i], (unsigned char)(i % 251), "byte %zu", i);
    expect_eof(fd);
    close(fd);
    finish(&r, NULL);
    cr_assert_leq(max_queued, 2 * o.outbuf_max, "queued %zu", (size_t)max_queued);
    cr_assert_gt(max_queued, 0);
}

/* ---- the per-connection timer, pause/resume, errors -------------------- */

static _Atomic int last_close_err = 1;

static int auth_open(ss_conn *c)
{
    return ss_conn_timer_start(c, 150); /* "authenticate within 150 ms" */
}

static int auth_data(ss_conn *c, const void *data, size_t len)
{
    if (len >= 4 && !memcmp(data, "auth", 4))
        ss_conn_timer_stop(c);
    if (len >= 3 && !memcmp(data, "bad", 3))
        return SS_EPEERPROTO;
    if (len >= 5 && !memcmp(data, "pause", 5)) {
        ss_conn_pause_read(c);
        ss_conn_timer_start(c, 150);
    }
    return ss_conn_write(c, data, len);
}

static int auth_timer(ss_conn *c)
{
    /* paused connections are resumed; unauthenticated ones time out */
    bool *paused = ss_conn_ctx(c);
    if (*paused) {
        *paused = false;
        ss_conn_resume_read(c);
        return ss_conn_write(c, "R", 1);
    }
    return -ETIMEDOUT;
}

static int auth_data_wrap(ss_conn *c, const void *data, size_t len)
{
    if (len >= 5 && !memcmp(data, "pause", 5))
        *(bool *)ss_conn_ctx(c) = true;
    return auth_data(c, data, len);
}

static void auth_close(ss_conn *c, int err)
{
    last_close_err = err;
}

static const ss_service auth_svc = {
    .name = "auth",
    .conn_ctx_size = sizeof(bool),
    .on_open = auth_open,
    .on_data = auth_data_wrap,
    .on_timer = auth_timer,
    .on_close = auth_close,
};

Test(framework, connection_timer_closes_unauthenticated_only)
{
    ss_server_opts o;
    ss_server_opts_init(&o);
    struct running r;
    start(&r, &auth_svc, &o);
    int slow = dial(r.port), quick = dial(r.port);
    send(quick, "auth", 4, 0);
    char got[8];
    recv_exact(quick, got, 4);
    expect_eof(slow);
    usleep(300000);
    send(quick, "more", 4, 0);
    recv_exact(quick, got, 4);
    cr_assert_eq(memcmp(got, "more", 4), 0, "authenticated connection stays");
    close(slow);
    close(quick);
    ss_server_stats st;
    finish(&r, &st);
    cr_assert_eq(st.errors, 1, "the timeout counts as an error");
}

Test(framework, paused_connection_gets_no_data_until_resumed)
{
    ss_server_opts o;
    ss_server_opts_init(&o);
    struct running r;
    start(&r, &auth_svc, &o);
    int fd = dial(r.port);
    send(fd, "auth", 4, 0);
    char got[16];
    recv_exact(fd, got, 4);
    send(fd, "pause", 5, 0);
    recv_exact(fd, got, 5);
    send(fd, "abc", 3, 0); /* arrives while paused */
    recv_exact(fd, got, 4);
    cr_assert_eq(memcmp(got, "Rabc", 4), 0, "got '%.4s'", got);
    close(fd);
    finish(&r, NULL);
}

Test(framework, handler_error_closes_its_connection_only_and_is_counted)
{
    ss_server_opts o;
    ss_server_opts_init(&o);
    struct running r;
    start(&r, &auth_svc, &o);
    int good = dial(r.port), bad = dial(r.port);
    send(good, "auth", 4, 0);
    char got[8];
    recv_exact(good, got, 4);
    send(bad, "auth", 4, 0);
    recv_exact(bad, got, 4);
    send(bad, "bad!", 4, 0);
    expect_eof(bad);
    send(good, "fine", 4, 0);
    recv_exact(good, got, 4);
    cr_assert_eq(memcmp(got, "fine", 4), 0);
    cr_assert_eq(last_close_err, SS_EPEERPROTO);
    close(bad);
    close(good);
    ss_server_stats st;
    finish(&r, &st);
    cr_assert_eq(st.accepted, 2);
    cr_assert_eq(st.errors, 1);
    cr_assert_eq(st.active, 0);
}

Test(framework, limit_refusals_are_counted)
{
    ss_server_opts o;
    ss_server_opts_init(&o);
    o.max_conns = 1;
    struct running r;
    start(&r, &auth_svc, &o);
    int a = dial(r.port);
    send(a, "auth", 4, 0);
    char got[8];
    recv_exact(a, got, 4);
    int b = dial(r.port);
    expect_eof(b);
    close(b);
    close(a);
    ss_server_stats st;
    finish(&r, &st);
    cr_assert_eq(st.accepted, 1);
    cr_assert_eq(st.refused_limit, 1);
}

/* ---- counters: the same figures under every model ---------------------- */

static int echo_data(ss_conn *c, const void *data, size_t len)
{
    return ss_conn_write(c, data, len);
}

static const ss_service echo_svc = {.name = "echo", .on_data = echo_data};

#define COUNT_BYTES 100000

static void send_all(int fd, const void *buf, size_t len)
{
    int err = th_write_all(fd, buf, len);
    cr_assert_eq(err, 0, "write: %s", strerror(-err));
}

/* Two clients send known byte counts, read the echo and close; the
 * server's counters hold exactly those bytes, whichever model served. */
static void counters_under(int model)
{
    struct running r;
    start_model(&r, &echo_svc, model);
    static char out[COUNT_BYTES], back[COUNT_BYTES];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (char)(i % 251);
    int a = dial(r.port), b = dial(r.port);
    send_all(b, "1234567", 7);
    shutdown(b, SHUT_WR);
    send_all(a, out, sizeof out); /* loopback buffers hold it all */
    shutdown(a, SHUT_WR);
    recv_exact(a, back, sizeof back);
    cr_assert_eq(memcmp(out, back, sizeof out), 0);
    expect_eof(a);
    recv_exact(b, back, 7);
    cr_assert_eq(memcmp(back, "1234567", 7), 0);
    expect_eof(b);
    close_two_and_check(&r, a, b, COUNT_BYTES + 7, COUNT_BYTES + 7);
}

Test(framework, counters_event_model) { counters_under(SS_MODEL_EVENT); }
Test(framework, counters_thread_model) { counters_under(SS_MODEL_THREAD); }
Test(framework, counters_fork_model_children_report_to_the_parent) { counters_under(SS_MODEL_FORK); }

/* ---- closing first: the last reply survives a peer still sending -------- */

enum { BYE_LEN = 1 << 20 };

/* Answers the first bytes with BYE_LEN bytes of a pattern and closes. */
static int bye_data(ss_conn *c, const void *data, size_t len)
{
    static char reply[BYE_LEN];
    for (size_t i = 0; i < sizeof reply; i++)
        reply[i] = (char)(i % 253);
    int r = ss_conn_write(c, reply, sizeof reply);
    ss_conn_close(c);
    return r;
}

static const ss_service bye_svc = {.name = "bye", .on_data = bye_data};

/* The server closes while its reply still waits in its kernel's send
 * buffer (the client reads slowly) and the client's next bytes arrive
 * unread. Closing then would send RST and drop the rest of the reply: the
 * client would read part of it, then ECONNRESET. Lingering, the server
 * sends everything and its FIN, drops the client's bytes, and closes when
 * the client does. */
Test(framework, a_server_that_closes_first_lingers_so_its_reply_is_read)
{
    struct running r;
    ss_server_opts o;
    ss_server_opts_init(&o);
    o.outbuf_max = 4 * BYE_LEN; /* the whole reply is queued at once */
    start(&r, &bye_svc, &o);
    int fd = dial_rcvbuf(r.port, 32 * 1024);
    send_all(fd, "hi\n", 3);
    usleep(200000); /* the server has queued the reply and closed */
    send_all(fd, "more\n", 5);
    usleep(200000);
    static char buf[BYE_LEN];
    recv_exact(fd, buf, sizeof buf);
    for (size_t i = 0; i < sizeof buf; i++)
        cr_assert_eq(buf[i], (char)(i % 253), "byte %zu", i);
    char c;
    cr_assert_eq(recv(fd, &c, 1, 0), 0, "expected EOF after the reply");
    close(fd);
    finish(&r, NULL);
}
