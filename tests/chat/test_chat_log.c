/* The room log of serve chat (issue 11): every room line is appended once
 * to one ring and each native member reads it from its own cursor; private
 * lines wait in the member's queue, marked with where the log was, and go
 * out between the log's bytes at that point; a sender skips its own lines.
 * The server runs in this process on a loop turned here, so the tests can
 * look at a member's cursor and queue (ss_chat_server_conn_info_get) and
 * at the log (ss_chat_server_stats_get) between turns. Every assertion is
 * on exact bytes or counts. */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sockstack/chat.h"
#include "sockstack/reactor.h"
#include "sockstack/server.h"

static ss_loop *loop;
static ss_chat_server *cs;
static ss_server *srv;
static int port;

/* A client: a blocking socket for sending, non-blocking reads into buf. */
struct cl {
    int fd;
    char *buf;
    size_t len, cap;
};

static void turn(int n)
{
    for (int i = 0; i < n; i++)
        ss_loop_run_once(loop, 1);
}

static void start(size_t outq, size_t outq_high, unsigned stall_ms)
{
    cr_assert_eq(ss_loop_new(&loop), 0);
    ss_chat_opts o;
    ss_chat_opts_init(&o);
    o.join_history = 0;
    o.pbkdf2_iter = 1;
    ss_chat_server_opts so;
    ss_chat_server_opts_init(&so);
    so.outq_max = outq;
    so.outq_high = outq_high;
    so.stall_ms = stall_ms;
    so.rate_lines = 0;
    so.per_addr_max = 0;
    so.loop = loop;
    cr_assert_eq(ss_chat_server_new(&o, &so, &cs), 0);
    ss_server_opts sopt;
    ss_server_opts_init(&sopt);
    sopt.bind_host = "127.0.0.1";
    sopt.port = "0";
    sopt.handle_signals = false;
    sopt.loop = loop;
    sopt.svc_ctx = cs;
    sopt.outbuf_max = outq;
    sopt.conn_sockopts.nodelay = 1;
    sopt.conn_sockopts.sndbuf = 4096; /* a non-reader backs up into our queues soon */
    cr_assert_eq(ss_server_new(ss_chat_service(), &sopt, &srv), 0);
    cr_assert_eq(ss_server_attach(srv), 0);
    ss_addr a;
    ss_server_addr(srv, &a);
    port = ss_addr_port(&a);
}

static void stop(void)
{
    ss_server_detach(srv);
    ss_server_free(srv);
    ss_chat_server_free(cs);
    ss_loop_free(loop);
}

/* Read what is there (never blocks). */
static void drain(struct cl *c)
{
    for (;;) {
        if (c->cap - c->len < 65536) {
            c->cap = c->cap ? c->cap * 2 : 1 << 20;
            c->buf = realloc(c->buf, c->cap + 1);
            cr_assert(c->buf);
        }
        ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, MSG_DONTWAIT);
        if (r <= 0)
            break;
        c->len += (size_t)r;
    }
    c->buf[c->len] = '\0';
}

static void put(struct cl *c, const char *s)
{
    size_t n = strlen(s), off = 0;
    while (off < n) {
        ssize_t w = send(c->fd, s + off, n - off, MSG_DONTWAIT);
        if (w > 0)
            off += (size_t)w;
        else
            turn(1); /* the server reads when it turns */
    }
}

/* Connect with receive buffer rcvbuf (0: the default) and take nick. */
static struct cl join(const char *nick, int rcvbuf)
{
    struct cl c = {.fd = socket(AF_INET, SOCK_STREAM, 0)};
    if (rcvbuf)
        setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(c.fd, (struct sockaddr *)&a, sizeof a), 0);
    char line[64];
    snprintf(line, sizeof line, "/nick %s\n", nick);
    put(&c, line);
    char want[64];
    snprintf(want, sizeof want, "OK nick %s ", nick);
    for (int i = 0; i < 2000; i++) {
        turn(1);
        drain(&c);
        if (strstr(c.buf ? c.buf : "", want))
            break;
    }
    cr_assert(c.buf && strstr(c.buf, want), "no OK nick for %s", nick);
    return c;
}

static void forget(struct cl *c)
{
    c->len = 0;
    if (c->buf)
        c->buf[0] = '\0';
}

static ss_chat_server_conn_info info(const char *nick)
{
    ss_chat_server_conn_info ci;
    cr_assert_eq(ss_chat_server_conn_info_get(cs, nick, &ci), 0, "%s", nick);
    return ci;
}

static ss_chat_server_stats stats(void)
{
    ss_chat_server_stats st;
    ss_chat_server_stats_get(cs, &st);
    return st;
}

/* Turn (reading r's and others' sockets) until cond or 20,000 turns. */
#define TURN_UNTIL(cond, ...)                                                  \
    do {                                                                       \
        int k_ = 0;                                                            \
        for (; k_ < 20000 && !(cond); k_++) {                                  \
            turn(1);                                                           \
            __VA_ARGS__;                                                       \
        }                                                                      \
        if (!(cond)) {                                                         \
            ss_chat_server_conn_info ci_;                                      \
            ss_chat_server_stats st_ = stats();                                \
            fprintf(stderr, "log_end %llu held %llu readers %llu\n",           \
                    (unsigned long long)st_.log_end,                           \
                    (unsigned long long)st_.log_held,                          \
                    (unsigned long long)st_.log_readers);                      \
            const char *nk_[] = {"tal", "uma", "wat", "rea", "non", "ann", "bob"}; \
            for (int j_ = 0; j_ < 7; j_++)                                     \
                if (!ss_chat_server_conn_info_get(cs, nk_[j_], &ci_))          \
                    fprintf(stderr, "%s: pos %llu backlog %llu q %llu/%llu "   \
                            "staged %llu queued %llu behind %d\n", nk_[j_],    \
                            (unsigned long long)ci_.log_pos,                   \
                            (unsigned long long)ci_.log_backlog,               \
                            (unsigned long long)ci_.q_entries,                 \
                            (unsigned long long)ci_.q_bytes,                   \
                            (unsigned long long)ci_.staged,                    \
                            (unsigned long long)ci_.queued, ci_.behind);       \
        }                                                                      \
        cr_assert(cond, "not reached: %s", #cond);                            \
    } while (0)

/* Occurrences of needle in s. */
static int count_in(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

TestSuite(chat_log, .timeout = 60);

/* N room lines: one copy in the log (log_end grows by exactly the bytes a
 * member receives), every cursor at the end once pushed, the sender's own
 * lines skipped (it gets its OK sent lines only), and a member's bytes
 * equal another's. */
Test(chat_log, one_copy_cursors_at_the_end_sender_skips_its_lines)
{
    start(262144, 65536, 2000);
    struct cl a = join("ann", 0), b = join("bob", 0), c = join("cy", 0);
    turn(20);
    drain(&a), drain(&b), drain(&c);
    forget(&a), forget(&b), forget(&c);
    ss_chat_server_stats st0 = stats();
    cr_assert_eq(st0.log_readers, 3);
    enum { N = 100 };
    char lines[N * 40] = "";
    for (int i = 0; i < N; i++)
        snprintf(lines + strlen(lines), sizeof lines - strlen(lines), "line %03d from ann\n", i);
    put(&a, lines);
    TURN_UNTIL(count_in(b.buf ? b.buf : "", "\n") == N && count_in(c.buf ? c.buf : "", "\n") == N &&
                   count_in(a.buf ? a.buf : "", "\n") == N,
               drain(&a), drain(&b), drain(&c));
    ss_chat_server_stats st = stats();
    /* The log grew by exactly what bob got; cy got the same bytes. */
    cr_assert_eq(st.log_end - st0.log_end, b.len);
    cr_assert_eq(c.len, b.len);
    cr_assert_eq(memcmp(b.buf, c.buf, b.len), 0);
    cr_assert_eq(count_in(b.buf, "MSG "), N);
    cr_assert_eq(count_in(b.buf, " ann line 099 from ann\n"), 1);
    /* ann got its N acknowledgements and none of its own lines. */
    cr_assert_eq(count_in(a.buf, "OK sent "), N);
    cr_assert_eq(count_in(a.buf, "MSG "), 0);
    /* Every cursor at the end, nothing held. */
    const char *nicks[] = {"ann", "bob", "cy"};
    for (int i = 0; i < 3; i++) {
        ss_chat_server_conn_info ci = info(nicks[i]);
        cr_assert(ci.reader);
        cr_assert_eq(ci.log_pos, st.log_end, "%s", nicks[i]);
        cr_assert_eq(ci.log_backlog, 0);
        cr_assert_eq(ci.q_entries, 0);
        cr_assert_eq(ci.queued, 0);
    }
    cr_assert_eq(st.log_held, 0);
    close(a.fd), close(b.fd), close(c.fd);
    free(a.buf), free(b.buf), free(c.buf);
    stop();
}

/* Private lines and room lines to one recipient in one loop iteration:
 * they reach it in the order they were sent, each private line between
 * the room lines around it (its mark in bob's queue). */
Test(chat_log, private_lines_keep_their_place_among_room_lines)
{
    start(262144, 65536, 2000);
    struct cl a = join("ann", 0), b = join("bob", 0);
    turn(20);
    drain(&a), drain(&b);
    forget(&a), forget(&b);
    /* One write: the server handles all five lines in one read. */
    put(&a, "r1\n/msg bob p1\nr2\nr3\n/msg bob p2\n/msg bob p3\nr4\n");
    TURN_UNTIL(count_in(b.buf ? b.buf : "", "\n") == 7, drain(&b));
    const char *want[] = {" ann r1\n", " ann p1\n", " ann r2\n", " ann r3\n",
                          " ann p2\n", " ann p3\n", " ann r4\n"};
    const char *kind[] = {"MSG ", "PRIV ", "MSG ", "MSG ", "PRIV ", "PRIV ", "MSG "};
    const char *p = b.buf;
    for (int i = 0; i < 7; i++) {
        const char *eol = strchr(p, '\n');
        cr_assert(eol);
        cr_assert_eq(strncmp(p, kind[i], strlen(kind[i])), 0, "line %d: %.*s", i,
                     (int)(eol - p), p);
        size_t wl = strlen(want[i]);
        cr_assert(eol + 1 - p >= (long)wl && !memcmp(eol + 1 - wl, want[i], wl),
                  "line %d: %.*s", i, (int)(eol - p), p);
        p = eol + 1;
    }
    cr_assert_eq(*p, '\0');
    ss_chat_server_conn_info ci = info("bob");
    cr_assert_eq(ci.q_entries, 0);
    cr_assert_eq(ci.log_pos, stats().log_end);
    close(a.fd), close(b.fd);
    free(a.buf), free(b.buf);
    stop();
}

/* A member that does not read: its cursor stays where its socket and the
 * framework's queue stopped taking bytes, the log holds the bytes from
 * there (its backlog, exactly), the reading member's cursor is at the
 * end; the member is behind, the talker waits; when it is cut off for
 * not reading, the log holds nothing for it any more and the talker goes
 * on. What the reader got equals the bytes appended. */
Test(chat_log, the_slowest_reader_holds_the_log_until_it_is_cut_off)
{
    start(262144, 131072, 300);
    struct cl t = join("tal", 0), r = join("rea", 0), n = join("non", 4096);
    turn(20);
    drain(&t), drain(&r), drain(&n);
    forget(&r);
    ss_chat_server_stats st0 = stats();
    enum { N = 1000, LEN = 200 };
    char *lines = malloc(N * (LEN + 1) + 1), *w = lines;
    for (int i = 0; i < N; i++) {
        w += sprintf(w, "%05d ", i);
        memset(w, 'x', LEN - 6);
        w += LEN - 6;
        *w++ = '\n';
    }
    *w = '\0';
    /* The talker's lines go in as the server takes them; the non-reader
     * falls behind, then the talker is held. */
    size_t off = 0, total = strlen(lines);
    ss_chat_server_conn_info ni = {0};
    bool seen_behind = false;
    for (int k = 0; k < 20000 && !seen_behind; k++) {
        if (off < total) {
            ssize_t s = send(t.fd, lines + off, total - off, MSG_DONTWAIT);
            if (s > 0)
                off += (size_t)s;
        }
        turn(1);
        drain(&t), drain(&r);
        ni = info("non");
        seen_behind = ni.behind;
    }
    cr_assert(seen_behind, "the non-reader never fell behind");
    /* Let everything else settle: the reader is level with the log. */
    for (int k = 0; k < 50; k++) {
        turn(1);
        drain(&t), drain(&r);
    }
    ss_chat_server_stats st = stats();
    ni = info("non");
    ss_chat_server_conn_info ri = info("rea");
    cr_assert(ni.reader && ni.behind);
    cr_assert_eq(ri.log_pos, st.log_end);
    cr_assert_eq(ri.queued, 0);
    /* non's cursor holds the log's tail: exactly its unread log bytes. */
    cr_assert_gt(ni.log_backlog, 0);
    cr_assert_eq(ni.log_pos + ni.log_backlog, st.log_end);
    cr_assert_eq(st.log_held, ni.log_backlog);
    cr_assert_eq(ni.queued, ni.log_backlog + ni.q_bytes + ni.staged);
    cr_assert_gt(ni.queued, 131072 / 2); /* behind until it is at half */
    cr_assert_leq(st.log_peak, 262144);
    cr_assert_eq(r.len, st.log_end - st0.log_end); /* the reader has it all so far */
    uint64_t held_before = st.log_held;
    /* 300 ms without progress: cut off, told why, and the tail released. */
    TURN_UNTIL(stats().log_readers == 2, drain(&t), drain(&r));
    st = stats();
    cr_assert_eq(st.stalled, 1);
    cr_assert_eq(st.log_held, 0);
    cr_assert_geq(st.log_peak, held_before);
    cr_assert_eq(ss_chat_server_conn_info_get(cs, "non", &ni), -ENOENT);
    /* The talker goes on: the reader gets all N lines, in order. */
    TURN_UNTIL(count_in(r.buf ? r.buf : "", "xx\n") == N, {
        if (off < total) {
            ssize_t s = send(t.fd, lines + off, total - off, MSG_DONTWAIT);
            if (s > 0)
                off += (size_t)s;
        }
        drain(&t), drain(&r);
    });
    const char *p = r.buf;
    for (int i = 0; i < N; i++) {
        char tag[16];
        snprintf(tag, sizeof tag, " tal %05d ", i);
        const char *q = strstr(p, tag);
        cr_assert(q, "line %d missing or out of order", i);
        p = q + 1;
    }
    cr_assert_eq(r.len, stats().log_end - st0.log_end);
    /* The non-reader was told why (it reads now, after the cut). */
    for (int k = 0; k < 100; k++) {
        turn(1);
        drain(&n);
    }
    cr_assert(strstr(n.buf, "ERR stalled you read nothing for 300 ms while "), "%s",
              n.len > 200 ? n.buf + n.len - 200 : n.buf);
    close(t.fd), close(r.fd), close(n.fd);
    free(t.buf), free(r.buf), free(n.buf), free(lines);
    stop();
}

/* A talker that does not read while it sends far more of its own lines
 * than the ring holds: its cursor cannot pass the others' lines it has
 * not read, and its own lines (skipped) carry the log's end further away
 * than the ring reaches. Its unread lines move into its own queue before
 * the ring would overwrite them: when it reads at last, it gets exactly
 * the other talker's lines, byte for byte as the watcher got them, and
 * none of its own. */
Test(chat_log, a_talker_far_behind_its_own_lines_loses_nothing)
{
    start(524288, 262144, 60000);
    struct cl t = join("tal", 4096), u = join("uma", 0), wt = join("wat", 0);
    turn(20);
    drain(&t), drain(&u), drain(&wt);
    forget(&t), forget(&wt);
    /* uma's 100 lines of 1000 bytes fill tal's socket and the framework's
     * queue (its cursor stops in them); then tal sends 1,200 lines of
     * 1000 bytes (1.2 MB, the ring is 1 MiB) without reading. */
    char line[1100];
    for (int i = 0; i < 100; i++) {
        int k = snprintf(line, sizeof line, "u%03d ", i);
        memset(line + k, 'u', 1000 - k);
        line[1000] = '\n';
        line[1001] = '\0';
        put(&u, line);
        turn(2);
        drain(&u), drain(&wt);
    }
    TURN_UNTIL(count_in(wt.buf ? wt.buf : "", "uu\n") == 100, drain(&u), drain(&wt));
    size_t uma_bytes = wt.len;
    ss_chat_server_conn_info ti = info("tal");
    cr_assert_gt(ti.log_backlog, 0, "tal read everything already (staged %llu)",
                 (unsigned long long)ti.staged);
    for (int i = 0; i < 1200; i++) {
        int k = snprintf(line, sizeof line, "t%04d ", i);
        memset(line + k, 't', 1000 - k);
        line[1000] = '\n';
        line[1001] = '\0';
        put(&t, line);
        turn(1);
        drain(&u), drain(&wt);
    }
    TURN_UNTIL(count_in(wt.buf, "tt\n") == 1200, drain(&u), drain(&wt));
    ti = info("tal");
    /* Its unread part of uma's lines left the log for its own queue. */
    cr_assert_eq(ti.log_backlog, 0);
    cr_assert_gt(ti.q_bytes, 0);
    cr_assert_eq(ti.queued, ti.q_bytes + ti.staged);
    cr_assert_leq(ti.queued, uma_bytes + 1200 * 16);
    /* Now it reads: exactly uma's lines as the watcher got them. */
    TURN_UNTIL(count_in(t.buf ? t.buf : "", "OK sent ") == 1200 && info("tal").queued == 0,
               drain(&t));
    fprintf(stderr, "tal: %zu bytes, %d OK, uma %zu\n", t.len, count_in(t.buf, "OK sent "), uma_bytes);
    turn(20);
    drain(&t);
    /* Take the OK lines out; the rest must be uma's lines, exact. */
    char *only = malloc(t.len + 1);
    size_t ol = 0;
    for (const char *p = t.buf; *p;) {
        const char *eol = strchr(p, '\n');
        cr_assert(eol);
        if (strncmp(p, "OK sent ", 8)) {
            memcpy(only + ol, p, (size_t)(eol + 1 - p));
            ol += (size_t)(eol + 1 - p);
        }
        p = eol + 1;
    }
    cr_assert_eq(ol, uma_bytes);
    cr_assert_eq(memcmp(only, wt.buf, uma_bytes), 0);
    cr_assert_eq(count_in(only, " tal "), 0);
    free(only);
    close(t.fd), close(u.fd), close(wt.fd);
    free(t.buf), free(u.buf), free(wt.buf);
    stop();
}
