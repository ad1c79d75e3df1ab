/* The room on a backend that answers later (as Redis does): a command
 * waiting for the store holds its connection's next lines, others go on,
 * and nothing is acknowledged before the store said yes. The backend is
 * the SQLite one with its completions held until the test releases them. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apps/chat_backend.h"
#include "sockstack/chat.h"

struct fconn {
    char out[1 << 16];
    size_t len;
    int ready; /* io->ready calls */
    ss_chat_conn *c;
};

static int f_send(void *conn, const void *data, size_t len)
{
    struct fconn *f = conn;
    cr_assert_lt(f->len + len, sizeof f->out);
    memcpy(f->out + f->len, data, len);
    f->len += len;
    return 0;
}
static size_t f_space(void *conn) { return sizeof ((struct fconn *)conn)->out - ((struct fconn *)conn)->len; }
static void f_close(void *conn) { (void)conn; }
static void f_ready(void *conn) { ((struct fconn *)conn)->ready++; }
static const ss_chat_io fio = {.send = f_send, .space = f_space, .close = f_close,
                               .ready = f_ready};

/* Held completions: the inner (SQLite) operation ran, its done waits. */
struct held {
    ss__chat_done done;
    void *arg;
    int err;
};
static struct held held[16];
static int n_held;
static ss__chat_be *inner;
static int fail_next; /* the next held completion reports this error */

static void hold(void *arg, int err)
{
    struct held *h = arg;
    h->err = fail_next ? fail_next : err;
    fail_next = 0;
}

static struct held *slot(ss__chat_done done, void *arg)
{
    cr_assert_lt(n_held, 16);
    struct held *h = &held[n_held++];
    *h = (struct held){.done = done, .arg = arg};
    return h;
}

static void release(int n)
{
    for (int i = 0; i < n; i++) {
        cr_assert_gt(n_held, 0);
        struct held h = held[0];
        memmove(held, held + 1, (size_t)(--n_held) * sizeof *held);
        h.done(h.arg, h.err);
    }
}

static void d_close(ss__chat_be *be)
{
    while (n_held > 0) {
        struct held h = held[--n_held];
        h.done(h.arg, -ECANCELED);
    }
    inner->ops->close(inner);
    free(be);
}
static void d_user_get(ss__chat_be *be, const char *nick, struct ss__chat_res *res,
                       ss__chat_done done, void *arg)
{
    inner->ops->user_get(inner, nick, res, hold, slot(done, arg));
}
static void d_hist_add(ss__chat_be *be, int64_t ts, const char *nick, int kind,
                       const char *text, struct ss__chat_res *res, ss__chat_done done,
                       void *arg)
{
    inner->ops->hist_add(inner, ts, nick, kind, text, res, hold, slot(done, arg));
}
static void d_off_add(ss__chat_be *be, int64_t ts, const char *from, const char *to,
                      const char *text, int max, struct ss__chat_res *res,
                      ss__chat_done done, void *arg)
{
    inner->ops->off_add(inner, ts, from, to, text, max, res, hold, slot(done, arg));
}

/* The rest answer at once, from the inner backend. */
static void f_user_touch(ss__chat_be *be, const char *nick, int64_t now, ss__chat_done done,
                         void *arg)
{
    inner->ops->user_touch(inner, nick, now, done, arg);
}
static void f_user_register(ss__chat_be *be, const char *nick, int iter,
                            const uint8_t salt[16], const uint8_t hash[32],
                            ss__chat_done done, void *arg)
{
    inner->ops->user_register(inner, nick, iter, salt, hash, done, arg);
}
static void f_users_list(ss__chat_be *be, int max, ss__chat_user_cb row, void *row_arg,
                         struct ss__chat_res *res, ss__chat_done done, void *arg)
{
    inner->ops->users_list(inner, max, row, row_arg, res, done, arg);
}
static void f_hist_range(ss__chat_be *be, int n, int64_t since, int64_t before,
                         ss__chat_hist_cb row, void *row_arg, struct ss__chat_res *res,
                         ss__chat_done done, void *arg)
{
    inner->ops->hist_range(inner, n, since, before, row, row_arg, res, done, arg);
}
static void f_meta_get(ss__chat_be *be, const char *k, struct ss__chat_res *res,
                       ss__chat_done done, void *arg)
{
    inner->ops->meta_get(inner, k, res, done, arg);
}
static void f_meta_set(ss__chat_be *be, const char *k, const char *v, ss__chat_done done,
                       void *arg)
{
    inner->ops->meta_set(inner, k, v, done, arg);
}
static int n_off_page, n_off_delete; /* calls, for the offline test */
static char off_deleted[64];         /* the last off_delete: "to upto" */
static void f_off_page(ss__chat_be *be, const char *to, const char *after, int max,
                       ss__chat_off_cb row, void *row_arg, struct ss__chat_res *res,
                       ss__chat_done done, void *arg)
{
    n_off_page++;
    inner->ops->off_page(inner, to, after, max, row, row_arg, res, done, arg);
}
static void f_off_delete(ss__chat_be *be, const char *to, const char *upto,
                         ss__chat_done done, void *arg)
{
    n_off_delete++;
    snprintf(off_deleted, sizeof off_deleted, "%s %s", to, upto);
    inner->ops->off_delete(inner, to, upto, done, arg);
}
static void f_forget(ss__chat_be *be, const char *nick, ss__chat_done done, void *arg)
{
    inner->ops->forget_unregistered(inner, nick, done, arg);
}

static const struct ss__chat_be_ops dops = {
    .close = d_close,
    .user_get = d_user_get,
    .user_touch = f_user_touch,
    .user_register = f_user_register,
    .users_list = f_users_list,
    .hist_add = d_hist_add,
    .hist_range = f_hist_range,
    .meta_get = f_meta_get,
    .meta_set = f_meta_set,
    .off_add = d_off_add,
    .off_page = f_off_page,
    .off_delete = f_off_delete,
    .forget_unregistered = f_forget,
};
static ss_chat_room *room;
static struct fconn fc[3];
static ss__chat_store *st;
#define T0 1700000000123LL

static void setup(void)
{
    memset(fc, 0, sizeof fc);
    n_held = 0;
    n_off_page = n_off_delete = 0;
    off_deleted[0] = '\0';
    cr_assert_eq(ss__chat_store_open(NULL, &st), 0);
    cr_assert_eq(ss__chat_be_sqlite_new(st, &inner), 0);
    ss__chat_be *be = calloc(1, sizeof *be);
    be->ops = &dops;
    ss_chat_opts o;
    ss_chat_opts_init(&o);
    o.pbkdf2_iter = 1000;
    o.join_history = 0;
    cr_assert_eq(ss__chat_room_open_be(&room, &o, &fio, be), 0);
}

static void teardown(void)
{
    for (int i = 0; i < 3; i++)
        if (fc[i].c)
            ss_chat_disconnect(fc[i].c, T0);
    ss_chat_room_close(room);
    ss__chat_store_close(st);
}

TestSuite(chat_backend, .init = setup, .fini = teardown, .timeout = 30);

static char *take(int i)
{
    static char buf[3][1 << 16];
    memcpy(buf[i], fc[i].out, fc[i].len);
    buf[i][fc[i].len] = '\0';
    fc[i].len = 0;
    return buf[i];
}

static size_t feed(int i, const char *s)
{
    size_t used = 0;
    cr_assert_eq(ss_chat_feed(fc[i].c, s, strlen(s), T0, &used), 0);
    return used;
}

/* Connect and take nick (its user_get released here). */
static void join(int i, const char *nick)
{
    fc[i].c = ss_chat_connect(room, &fc[i], T0);
    char line[64];
    int n = snprintf(line, sizeof line, "/nick %s\n", nick);
    cr_assert_eq(feed(i, line), (size_t)n);
    release(2); /* the nick's record, then what waits for it */
    for (int k = 0; k < 3; k++)
        take(k);
    fc[i].ready = 0;
}

Test(chat_backend, ack_waits_for_the_store_and_holds_later_lines)
{
    join(0, "alice");
    join(1, "bob");
    /* Two lines in one read: the first waits for the store, the second
     * is not taken yet. */
    cr_assert_eq(feed(0, "hello\n/who\n"), strlen("hello\n"));
    cr_assert(ss_chat_busy(fc[0].c));
    cr_assert_str_eq(take(0), "");
    cr_assert_str_eq(take(1), "");
    /* Bob is not held by alice's pending line. */
    cr_assert_eq(feed(1, "/notice alice hi\n"), strlen("/notice alice hi\n"));
    cr_assert_str_eq(take(1), "OK notice alice\n");
    cr_assert_str_eq(take(0), "NOTICE 2023-11-14T22:13:20.123Z bob hi\n");
    release(1);
    cr_assert_str_eq(take(0), "OK sent 1\n");
    cr_assert_str_eq(take(1), "MSG 2023-11-14T22:13:20.123Z alice hello\n");
    cr_assert_eq(fc[0].ready, 1);
    cr_assert(!ss_chat_busy(fc[0].c));
    cr_assert_eq(feed(0, "/who\n"), strlen("/who\n"));
    cr_assert_str_eq(take(0), "WHO bob online\nWHO alice online\nOK who 2 0\n");
}

Test(chat_backend, store_failure_is_refused_not_acknowledged)
{
    join(0, "alice");
    join(1, "bob");
    fail_next = -EIO; /* the store's answer to the next operation */
    feed(0, "lost\n");
    release(1);
    cr_assert_str_eq(take(0), "ERR store message not stored\n");
    cr_assert_str_eq(take(1), "");
    /* Unreachable (Redis down): the service is degraded, try again. */
    fail_next = -ENOTCONN;
    feed(0, "lost too\n");
    release(1);
    cr_assert_str_eq(take(0), "ERR degraded the service is degraded (its store is "
                              "unreachable): message not stored\n");
    cr_assert_str_eq(take(1), "");
}

/* bob connects again and logs in; every store answer is given. */
static void bob_logs_in(void)
{
    fc[1].c = ss_chat_connect(room, &fc[1], T0);
    take(1);
    feed(1, "/login bob pw1234\n");
    while (n_held > 0)
        release(1);
}

/* alice online; bob registered (password pw1234) and gone, so that
 * what alice sends him is stored as offline mail. */
static void bob_registered_and_away(void)
{
    join(0, "alice");
    join(1, "bob");
    feed(1, "/register pw1234\n");
    release(2); /* bob's record, before and after the hash */
    cr_assert_str_eq(take(1), "OK register bob\n");
    ss_chat_disconnect(fc[1].c, T0);
    fc[1].c = NULL;
    take(0);
}

Test(chat_backend, offline_message_stored_after_two_answers)
{
    bob_registered_and_away();
    cr_assert_eq(feed(0, "/msg bob later\n"), strlen("/msg bob later\n"));
    cr_assert_str_eq(take(0), "");
    release(1); /* bob's record: registered */
    cr_assert_str_eq(take(0), "");
    release(1); /* the offline message */
    cr_assert_str_eq(take(0), "OK msg bob stored\n");
    cr_assert_eq(fc[0].ready, 1);
}

Test(chat_backend, disconnect_while_pending)
{
    join(0, "alice");
    join(1, "bob");
    feed(0, "bye now\n");
    ss_chat_disconnect(fc[0].c, T0);
    fc[0].c = NULL;
    take(1);
    release(1); /* committed, but alice is gone: no fan-out, no ready */
    cr_assert_str_eq(take(1), "");
    cr_assert_eq(fc[0].ready, 0);
}

/* Offline rows are deleted once, at the drain after their page left the
 * queue; later drains (every push that empties bob's queue) have nothing
 * left to delete and ask the store nothing (they deleted the same rows
 * again on every drain before). The rows are delivered once. */
Test(chat_backend, offline_rows_deleted_once_then_drains_are_free)
{
    bob_registered_and_away();
    for (int i = 0; i < 2; i++) {
        feed(0, i ? "/msg bob two\n" : "/msg bob one\n");
        release(2); /* bob's record, then the offline row */
        cr_assert_str_eq(take(0), "OK msg bob stored\n");
    }
    bob_logs_in();
    char want[256];
    snprintf(want, sizeof want,
             "OK login bob\nOK nick bob 2\nOFFLINE %s alice one\nOFFLINE %s alice two\n",
             "2023-11-14T22:13:20.123Z", "2023-11-14T22:13:20.123Z");
    cr_assert_str_eq(take(1), want);
    cr_assert_eq(n_off_delete, 0); /* still in the queue */
    int pages = n_off_page;
    /* The page left: one delete, up to the last row queued. */
    ss_chat_drain(fc[1].c);
    cr_assert_eq(n_off_delete, 1);
    cr_assert_str_eq(off_deleted, "bob 2");
    /* Talk goes on; each drain after it asks the store nothing. */
    for (int i = 0; i < 5; i++) {
        feed(0, "hi\n");
        release(1);
        take(0);
        cr_assert_str_eq(take(1), "MSG 2023-11-14T22:13:20.123Z alice hi\n");
        ss_chat_drain(fc[1].c);
    }
    cr_assert_eq(n_off_delete, 1);
    cr_assert_eq(n_off_page, pages);
    /* Delivered once: a second login brings none. */
    ss_chat_disconnect(fc[1].c, T0);
    bob_logs_in();
    cr_assert_str_eq(take(1), "OK login bob\nOK nick bob 2\n");
}

/* A nick change while offline rows wait for their delete: the rows were
 * bob's, and the delete at the next drain must not run under the new
 * nick (it took carol's rows up to bob's last id). They stay in the
 * store and come again at bob's next login: never lost. */
Test(chat_backend, nick_change_leaves_the_old_nicks_offline_rows_alone)
{
    bob_registered_and_away();
    feed(0, "/msg bob one\n");
    release(2);
    cr_assert_str_eq(take(0), "OK msg bob stored\n");
    bob_logs_in();
    char want[256];
    snprintf(want, sizeof want, "OK login bob\nOK nick bob 2\nOFFLINE %s alice one\n",
             "2023-11-14T22:13:20.123Z");
    cr_assert_str_eq(take(1), want);
    cr_assert_eq(n_off_delete, 0);
    feed(1, "/nick carol\n");
    while (n_held > 0)
        release(1);
    cr_assert(strstr(take(1), "OK nick carol 2\n"));
    ss_chat_drain(fc[1].c);
    while (n_held > 0)
        release(1);
    cr_assert_eq(n_off_delete, 0, "deleted: %s", off_deleted);
    /* bob's row is still there. */
    ss_chat_disconnect(fc[1].c, T0);
    bob_logs_in();
    cr_assert_str_eq(take(1), want);
}

/* ---- the in-memory history ring against the table ------------------------- */

/* Rows of a history query as text, "ts nick kind text;" each. */
static char hist_out[4096];
static void hist_row(void *arg, int64_t ts, const char *nick, int kind, const char *text)
{
    (void)arg;
    size_t n = strlen(hist_out);
    snprintf(hist_out + n, sizeof hist_out - n, "%lld %s %d %s;", (long long)ts, nick, kind,
             text);
}

/* What query q (0: last, 1: since, 2: before) with n and t answers. */
static const char *hist_query(ss__chat_store *s, int q, int n, int64_t t)
{
    hist_out[0] = '\0';
    int got = q == 2 ? ss__chat_history_before(s, n, t, hist_row, NULL)
                     : ss__chat_history_last(s, n, q == 1 ? t : -1, hist_row, NULL);
    size_t len = strlen(hist_out);
    snprintf(hist_out + len, sizeof hist_out - len, "=%d", got);
    return hist_out;
}

/* Without a file the history is a ring in memory (issue 11: SQLite was
 * half of the server's instructions per delivery): the same ids, and
 * every query the same rows in the same order as the table with the same
 * bound, also with times out of order (a clock stepped back). */
Test(chat_backend, memory_history_ring_answers_as_the_table)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/ss-chat-ring-%d.db", (int)getpid());
    unlink(path);
    ss__chat_store *ring, *tab;
    cr_assert_eq(ss__chat_store_open(NULL, &ring), 0);
    cr_assert_eq(ss__chat_store_open(path, &tab), 0);
    ss__chat_history_keep(ring, 4);
    ss__chat_history_keep(tab, 4);
    static const int64_t ts[] = {500, 100, 300, 200, 400, 600, 300};
    for (int i = 0; i < 7; i++) {
        char nick[8], text[16];
        snprintf(nick, sizeof nick, "n%d", i);
        snprintf(text, sizeof text, "text %d", i);
        cr_assert_eq(ss__chat_history_add(ring, ts[i], nick, i % 2, text), i + 1);
        cr_assert_eq(ss__chat_history_add(tab, ts[i], nick, i % 2, text), i + 1);
    }
    /* Kept: rows 4-7 (ts 200 400 600 300). */
    cr_assert_str_eq(hist_query(ring, 0, 10, 0),
                     "200 n3 1 text 3;400 n4 0 text 4;600 n5 1 text 5;300 n6 0 text 6;=4");
    cr_assert_str_eq(hist_query(ring, 1, 10, 350), "400 n4 0 text 4;600 n5 1 text 5;=2");
    cr_assert_str_eq(hist_query(ring, 2, 2, 400), "200 n3 1 text 3;300 n6 0 text 6;=2");
    for (int q = 0; q < 3; q++)
        for (int n = 0; n <= 5; n++)
            for (int64_t t = 0; t <= 700; t++) {
                char want[4096];
                snprintf(want, sizeof want, "%s", hist_query(tab, q, n, t));
                cr_assert_str_eq(hist_query(ring, q, n, t), want, "query %d n %d t %lld", q,
                                 n, (long long)t);
            }
    ss__chat_store_close(ring);
    ss__chat_store_close(tab);
    unlink(path);
    char p[80];
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}
