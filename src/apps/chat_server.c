/* chat_server: the chat room as an event-style service of the server
 * framework. The framework owns sockets, output queues and timeouts; this
 * glue hands received bytes to the room with the wall-clock time, and turns
 * the room's output into ss_conn_write calls with one extra rule: a client
 * whose queue would pass outq_max is told (ERR overflow) and disconnected,
 * so one slow reader never holds up the fan-out to everyone else.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sockstack/chat.h"
#include "sockstack/config.h"
#include "sockstack/server.h"

struct ss_chat_server {
    ss_chat_room *room;
    size_t outq_max;
    uint64_t overflows;
};

struct chat_ctx {
    ss_chat_conn *cc;
    bool overflowed;
};

/* Seconds to let the overflow notice leave before the connection is cut. */
enum { OVERFLOW_LINGER_MS = 1000 };

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static ss_chat_server *server_of(ss_conn *c) { return ss_conn_server_ctx(c); }

static int io_send(void *conn, const void *data, size_t len)
{
    ss_conn *c = conn;
    struct chat_ctx *x = ss_conn_ctx(c);
    ss_chat_server *cs = server_of(c);
    if (x->overflowed)
        return -ENOBUFS;
    if (ss_conn_out_queued(c) + len > cs->outq_max) {
        static const char note[] =
            "ERR overflow you are not reading fast enough; disconnecting\n";
        x->overflowed = true;
        cs->overflows++;
        ss_conn_write(c, note, sizeof note - 1);
        ss_server_log(ss_conn_server(c), SS_LOG_DEBUG,
                      "%s: output queue over %zu bytes; disconnecting",
                      ss_conn_peer_str(c), cs->outq_max);
        ss_conn_close(c);
        /* It may never read the note: cut it off if it has not left soon. */
        ss_conn_timer_start(c, OVERFLOW_LINGER_MS);
        return -ENOBUFS;
    }
    int err = ss_conn_write(c, data, len);
    if (err < 0)
        x->overflowed = true;
    return err;
}

static size_t io_space(void *conn)
{
    ss_conn *c = conn;
    size_t max = server_of(c)->outq_max, q = ss_conn_out_queued(c);
    return q >= max ? 0 : max - q;
}

static void io_close(void *conn) { ss_conn_close(conn); }

static const ss_chat_io chat_io = {io_send, io_space, io_close};

static int on_open(ss_conn *c)
{
    struct chat_ctx *x = ss_conn_ctx(c);
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
