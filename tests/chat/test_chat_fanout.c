/* The room's fan-out through io->send_line_all (issue 11): one call hands
 * a room line to every member (named, not dead) but the sender, each sink
 * being what ss_chat_set_sink gave. A member whose queue refuses the line
 * is dead: it gets nothing more, and the members after it in the same
 * fan-out still get the line. Every assertion is on exact bytes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sockstack/chat.h"

struct fconn {
    char out[1 << 14];
    size_t len;
    bool refuse;   /* the next line is refused (its queue is full) */
    bool closed;
    int calls;     /* send_line_all calls that reached this sink first */
    ss_chat_conn *c;
};

enum { N = 6 };
static struct fconn fc[N];
static ss_chat_room *room;
static int all_calls;

static int put(struct fconn *f, const void *data, size_t len)
{
    if (f->refuse)
        return -ENOBUFS;
    cr_assert_lt(f->len + len, sizeof f->out);
    memcpy(f->out + f->len, data, len);
    f->len += len;
    return 0;
}

static int f_send(void *conn, const void *data, size_t len) { return put(conn, data, len); }
static int f_send_line(void *conn, ss_chat_line *l)
{
    size_t len;
    const char *d = ss_chat_line_data(l, &len);
    return put(conn, d, len);
}
/* The sink is the fconn's index + 1 (not the conn): the room must pass
 * sinks, not conns. */
static size_t f_send_line_all(void *const *sinks, size_t n, const void *skip,
                              ss_chat_line *l)
{
    all_calls++;
    for (size_t i = 0; i < n; i++) {
        if (sinks[i] == skip)
            continue;
        uintptr_t k = (uintptr_t)sinks[i];
        cr_assert(k >= 1 && k <= N);
        if (f_send_line(&fc[k - 1], l) < 0)
            return i;
    }
    return n;
}
static size_t f_space(void *conn) { return sizeof ((struct fconn *)conn)->out - ((struct fconn *)conn)->len; }
static void f_close(void *conn) { ((struct fconn *)conn)->closed = true; }
static const ss_chat_io fio = {.send = f_send, .space = f_space, .close = f_close,
                               .send_line = f_send_line,
                               .send_line_all = f_send_line_all};

#define T0 1700000000123LL
#define TS "2023-11-14T22:13:20.123Z"

static void setup(void)
{
    memset(fc, 0, sizeof fc);
    all_calls = 0;
    ss_chat_opts o;
    ss_chat_opts_init(&o);
    o.pbkdf2_iter = 1000;
    o.join_history = 0;
    cr_assert_eq(ss_chat_room_open(&room, &o, &fio), 0);
}

static void teardown(void)
{
    for (int i = 0; i < N; i++)
        if (fc[i].c)
            ss_chat_disconnect(fc[i].c, T0);
    ss_chat_room_close(room);
}

TestSuite(chat_fanout, .init = setup, .fini = teardown, .timeout = 30);

static char *take(int i)
{
    static char buf[N][1 << 14];
    memcpy(buf[i], fc[i].out, fc[i].len);
    buf[i][fc[i].len] = '\0';
    fc[i].len = 0;
    return buf[i];
}

static void in(int i, const char *s)
{
    size_t used = 0;
    cr_assert_eq(ss_chat_feed(fc[i].c, s, strlen(s), T0, &used), 0);
    cr_assert_eq(used, strlen(s));
}

static void conn(int i)
{
    fc[i].c = ss_chat_connect(room, &fc[i], T0);
    cr_assert_not_null(fc[i].c);
    ss_chat_set_sink(fc[i].c, (void *)(uintptr_t)(i + 1));
}

static void join(int i)
{
    conn(i);
    char line[32];
    snprintf(line, sizeof line, "/nick n%d\n", i);
    in(i, line);
    for (int k = 0; k < N; k++)
        take(k);
}

Test(chat_fanout, every_member_but_the_sender_in_one_call)
{
    for (int i = 0; i < 4; i++)
        join(i);
    conn(4); /* connected, no nick: not a member */
    take(4);
    all_calls = 0;
    in(1, "hello\n");
    cr_assert_eq(all_calls, 1);
    cr_assert_str_eq(take(1), "OK sent 1\n");
    for (int i = 0; i < 4; i++)
        if (i != 1)
            cr_assert_str_eq(take(i), "MSG " TS " n1 hello\n");
    cr_assert_str_eq(take(4), "");
    /* One who leaves is no longer a member; the rest still are. */
    ss_chat_disconnect(fc[2].c, T0);
    fc[2].c = NULL;
    for (int i = 0; i < 4; i++)
        if (i != 2)
            cr_assert_str_eq(take(i), "LEAVE " TS " n2 3\n");
    in(0, "again\n");
    cr_assert_str_eq(take(0), "OK sent 2\n");
    cr_assert_str_eq(take(1), "MSG " TS " n0 again\n");
    cr_assert_str_eq(take(3), "MSG " TS " n0 again\n");
    cr_assert_str_eq(take(2), "");
    cr_assert_str_eq(take(4), "");
}

/* A member that refuses a line in the middle of a fan-out is dead: the
 * members after it get the line all the same (the call goes on past it),
 * and it gets nothing more. */
Test(chat_fanout, refused_member_is_dropped_and_the_rest_still_get_the_line)
{
    for (int i = 0; i < 5; i++)
        join(i);
    for (int bad = 1; bad <= 3; bad += 2)
        fc[bad].refuse = true;
    in(0, "hi all\n");
    cr_assert_str_eq(take(0), "OK sent 1\n");
    cr_assert_str_eq(take(2), "MSG " TS " n0 hi all\n");
    cr_assert_str_eq(take(4), "MSG " TS " n0 hi all\n");
    fc[1].refuse = fc[3].refuse = false;
    in(2, "after\n");
    cr_assert_str_eq(take(2), "OK sent 2\n");
    cr_assert_str_eq(take(0), "MSG " TS " n2 after\n");
    cr_assert_str_eq(take(4), "MSG " TS " n2 after\n");
    cr_assert_str_eq(take(1), "");
    cr_assert_str_eq(take(3), "");
}
