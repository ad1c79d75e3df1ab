/* chat_server: the chat room as an event-style service of the server
 * framework. The framework owns sockets, output queues and timeouts; this
 * glue hands received bytes to the room with the wall-clock time, and turns
 * the room's output into ss_conn_write calls with one extra rule: a client
 * whose queue would pass outq_max is told (ERR overflow) and disconnected,
 * so one slow reader never holds up the fan-out to everyone else.
 *
 * Output is corked for one loop iteration: lines for a connection collect
 * in its pending buffer and go out in one ss_conn_write from a deferred
 * task at the end of the iteration. A fan-out burst (several senders read
 * in one iteration, each message to every member) then costs one send()
 * per member instead of one per line.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sockstack/chat.h"
#include "sockstack/config.h"
#include "sockstack/server.h"

struct chat_ctx;

struct ss_chat_server {
    ss_chat_room *room;
    size_t outq_max;
    uint64_t overflows;
    ss_defer flush;           /* end-of-iteration flush of dirty conns */
    struct chat_ctx *dirty;   /* conns with pending output */
};

struct chat_ctx {
    ss_chat_conn *cc;
    ss_conn *conn;
    bool overflowed;
    char *pend;               /* corked output, sent at the iteration's end */
    size_t pend_len, pend_cap;
    struct chat_ctx *dprev, *dnext;
    bool dirty;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static ss_chat_server *server_of(ss_conn *c) { return ss_conn_server_ctx(c); }

static void undirty(ss_chat_server *cs, struct chat_ctx *x)
{
    if (!x->dirty)
        return;
    if (x->dprev)
        x->dprev->dnext = x->dnext;
    else
        cs->dirty = x->dnext;
    if (x->dnext)
        x->dnext->dprev = x->dprev;
    x->dprev = x->dnext = NULL;
    x->dirty = false;
}

/* Hand x's pending bytes to the framework. */
static int flush_one(ss_chat_server *cs, struct chat_ctx *x)
{
    undirty(cs, x);
    int err = 0;
    if (x->pend_len)
        err = ss_conn_write(x->conn, x->pend, x->pend_len);
    x->pend_len = 0;
    if (x->pend_cap > SS_CHAT_PEND_KEEP) {
        free(x->pend);
        x->pend = NULL;
        x->pend_cap = 0;
    }
    return err;
}

static void flush_all(ss_loop *loop, void *arg)
{
    ss_chat_server *cs = arg;
    while (cs->dirty) {
        struct chat_ctx *x = cs->dirty;
        if (flush_one(cs, x) < 0)
            x->overflowed = true;
    }
}

static int io_send(void *conn, const void *data, size_t len)
{
    ss_conn *c = conn;
    struct chat_ctx *x = ss_conn_ctx(c);
    ss_chat_server *cs = server_of(c);
    if (x->overflowed)
        return -ENOBUFS;
    if (ss_conn_out_queued(c) + x->pend_len + len > cs->outq_max) {
        static const char note[] =
            "ERR overflow you are not reading fast enough; disconnecting\n";
        x->overflowed = true;
        cs->overflows++;
        flush_one(cs, x);
        ss_conn_write(c, note, sizeof note - 1);
        ss_server_log(ss_conn_server(c), SS_LOG_DEBUG,
                      "%s: output queue over %zu bytes; disconnecting",
                      ss_conn_peer_str(c), cs->outq_max);
        ss_conn_close(c);
        /* It may never read the note: cut it off if it has not left soon. */
        ss_conn_timer_start(c, SS_CHAT_OVERFLOW_LINGER_MS);
        return -ENOBUFS;
    }
    if (x->pend_len + len > x->pend_cap) {
        size_t cap = x->pend_cap ? x->pend_cap : 1024;
        while (cap < x->pend_len + len)
            cap *= 2;
        char *p = realloc(x->pend, cap);
        if (!p)
            return -ENOMEM;
        x->pend = p;
        x->pend_cap = cap;
    }
    memcpy(x->pend + x->pend_len, data, len);
    x->pend_len += len;
    if (!x->dirty) {
        x->dirty = true;
        x->dprev = NULL;
        x->dnext = cs->dirty;
        if (cs->dirty)
            cs->dirty->dprev = x;
        cs->dirty = x;
        ss_loop_defer(ss_conn_loop(c), &cs->flush);
    }
    return 0;
}

static size_t io_space(void *conn)
{
    ss_conn *c = conn;
    struct chat_ctx *x = ss_conn_ctx(c);
    size_t max = server_of(c)->outq_max, q = ss_conn_out_queued(c) + x->pend_len;
    return q >= max ? 0 : max - q;
}

static void io_close(void *conn)
{
    ss_conn *c = conn;
    flush_one(server_of(c), ss_conn_ctx(c));
    ss_conn_close(c);
}

static const ss_chat_io chat_io = {io_send, io_space, io_close};

static int on_open(ss_conn *c)
{
    struct chat_ctx *x = ss_conn_ctx(c);
    x->conn = c;
    x->cc = ss_chat_connect(server_of(c)->room, c, wall_ms());
    return x->cc ? 0 : -ENOMEM;
}

static int on_data(ss_conn *c, const void *data, size_t len)
{
    struct chat_ctx *x = ss_conn_ctx(c);
    int err = ss_chat_recv(x->cc, data, len, wall_ms());
    if (err < 0)
        ss_server_log(ss_conn_server(c), SS_LOG_WARN, "%s: chat store: %d",
                      ss_conn_peer_str(c), err);
    return 0;
}

static int on_eof(ss_conn *c)
{
    struct chat_ctx *x = ss_conn_ctx(c);
    ss_chat_eof(x->cc, wall_ms());
    /* The replies to its last lines must leave before the close. */
    flush_one(server_of(c), x);
    ss_conn_close(c);
    return 0;
}

static int on_drain(ss_conn *c)
{
    struct chat_ctx *x = ss_conn_ctx(c);
    if (!x->overflowed)
        ss_chat_drain(x->cc);
    return 0;
}

static int on_timer(ss_conn *c)
{
    return -ETIMEDOUT;
}

static void on_close(ss_conn *c, int err)
{
    struct chat_ctx *x = ss_conn_ctx(c);
    if (x->cc)
        ss_chat_disconnect(x->cc, wall_ms());
    x->cc = NULL;
    undirty(server_of(c), x);
    free(x->pend);
    x->pend = NULL;
    x->pend_len = x->pend_cap = 0;
}

static const ss_service chat_service = {
    .name = "chat",
    .conn_ctx_size = sizeof(struct chat_ctx),
    .on_open = on_open,
    .on_data = on_data,
    .on_eof = on_eof,
    .on_drain = on_drain,
    .on_timer = on_timer,
    .on_close = on_close,
};

const struct ss_service *ss_chat_service(void) { return &chat_service; }

int ss_chat_server_new(const ss_chat_opts *o, size_t outq_max, ss_chat_server **out)
{
    *out = NULL;
    ss_chat_server *cs = calloc(1, sizeof *cs);
    if (!cs)
        return -ENOMEM;
    cs->outq_max = outq_max ? outq_max : SS_CHAT_OUTQ_MAX;
    ss_defer_init(&cs->flush, flush_all, cs);
    int err = ss_chat_room_open(&cs->room, o, &chat_io);
    if (err) {
        free(cs);
        return err;
    }
    *out = cs;
    return 0;
}

void ss_chat_server_free(ss_chat_server *cs)
{
    if (!cs)
        return;
    ss_chat_room_close(cs->room);
    free(cs);
}

ss_chat_room *ss_chat_server_room(ss_chat_server *cs) { return cs->room; }

uint64_t ss_chat_server_overflows(const ss_chat_server *cs) { return cs->overflows; }
