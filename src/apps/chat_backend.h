/* chat_backend: what the room keeps beyond a connection (internal to
 * src/apps): users and accounts, history, offline messages, settings.
 *
 * Every operation completes through done(arg, err), exactly once: at once,
 * before the call returns (SQLite, chat_be_sqlite.c), or later from the
 * event loop (Redis, chat_be_redis.c). done may be NULL (nothing to say:
 * last-seen updates, deletions). err is 0 or a negative code; -EIO: the
 * store failed, -ENOSPC: a cap was reached (offline messages), -ENOTCONN:
 * the store is unreachable now (Redis down), -ECANCELED: the backend is
 * closing. Results go to the caller's struct ss__chat_res, which must live
 * until done; rows go to the row callback before done.
 *
 * The room keeps per-connection order itself: while an operation of a
 * connection is pending, that connection's next lines wait
 * (ss_chat_busy), as they do for a password hash.
 */
#ifndef SS_APPS_CHAT_BACKEND_H
#define SS_APPS_CHAT_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apps/chat_store.h"
#include "sockstack/chat.h"
#include "sockstack/config.h"

typedef void (*ss__chat_done)(void *arg, int err);

/* An entry id as text: SQLite's row id in decimal, or a Redis stream id
 * ("1764758000123-0"). "" before the first. */
enum { SS__CHAT_ID_MAX = 48 };

struct ss__chat_res {
    struct ss__chat_user u;            /* user_get */
    char id[SS__CHAT_ID_MAX];          /* hist_add, off_add: the new entry */
    char last[SS__CHAT_ID_MAX];        /* off_page: the last row's id */
    int n;                             /* rows passed to the callback */
    bool found;                        /* meta_get */
    char v[SS_CHAT_TOPIC_MAX + 128];   /* meta_get */
    char *buf;                         /* ask: a longer answer goes here */
    size_t buf_cap;                    /* (set by the caller; NUL-ended) */
};

typedef struct ss__chat_be ss__chat_be;

struct ss__chat_be_ops {
    void (*close)(ss__chat_be *be);
    void (*user_get)(ss__chat_be *be, const char *nick, struct ss__chat_res *res,
                     ss__chat_done done, void *arg);
    void (*user_touch)(ss__chat_be *be, const char *nick, int64_t now,
                       ss__chat_done done, void *arg);
    void (*user_register)(ss__chat_be *be, const char *nick, int iter,
                          const uint8_t salt[16], const uint8_t hash[32],
                          ss__chat_done done, void *arg);
    /* Known users, most recently seen first, at most max. */
    void (*users_list)(ss__chat_be *be, int max, ss__chat_user_cb row, void *row_arg,
                       struct ss__chat_res *res, ss__chat_done done, void *arg);
    /* Public history: store one message (res->id). */
    void (*hist_add)(ss__chat_be *be, int64_t ts, const char *nick, int kind,
                     const char *text, struct ss__chat_res *res, ss__chat_done done,
                     void *arg);
    /* The last n (since >= 0: of those stamped at or after since; before >=
     * 0: of those stamped before it), oldest first; res->n rows. */
    void (*hist_range)(ss__chat_be *be, int n, int64_t since, int64_t before,
                       ss__chat_hist_cb row, void *row_arg, struct ss__chat_res *res,
                       ss__chat_done done, void *arg);
    void (*meta_get)(ss__chat_be *be, const char *k, struct ss__chat_res *res,
                     ss__chat_done done, void *arg);
    void (*meta_set)(ss__chat_be *be, const char *k, const char *v, ss__chat_done done,
                     void *arg);
    /* An offline message for `to`, unless max are waiting (-ENOSPC). */
    void (*off_add)(ss__chat_be *be, int64_t ts, const char *from, const char *to,
                    const char *text, int max, struct ss__chat_res *res,
                    ss__chat_done done, void *arg);
    /* Up to max of to's messages after id `after` ("" from the first), in
     * order; res->last is the last one's id (after when none). */
    void (*off_page)(ss__chat_be *be, const char *to, const char *after, int max,
                     ss__chat_off_cb row, void *row_arg, struct ss__chat_res *res,
                     ss__chat_done done, void *arg);
    /* Delete to's messages up to and including id upto. */
    void (*off_delete)(ss__chat_be *be, const char *to, const char *upto,
                       ss__chat_done done, void *arg);
    /* Drop what waits for nick (offline messages; and in the SQLite store,
     * file offers) if nick is not registered. */
    void (*forget_unregistered)(ss__chat_be *be, const char *nick, ss__chat_done done,
                                void *arg);

    /* ---- a cluster of nodes (NULL in the single-node backend) ---- */
    /* Claim nick for this node (-EEXIST: another connection anywhere has
     * it); res->n: users online in the whole service after it. */
    void (*claim)(ss__chat_be *be, const char *nick, struct ss__chat_res *res,
                  ss__chat_done done, void *arg);
    /* Give nick up; res->n: users online after it. */
    void (*release)(ss__chat_be *be, const char *nick, struct ss__chat_res *res,
                    ss__chat_done done, void *arg);
    /* A line (with its '\n') for nick on another node: res->found says
     * whether a node took it. */
    void (*direct)(ss__chat_be *be, const char *nick, const char *line, size_t len,
                   struct ss__chat_res *res, ss__chat_done done, void *arg);
    /* A line for every member on every node but `except` (""), delivered
     * by each node through ss__chat_room_bus (this one too). */
    void (*bcast)(ss__chat_be *be, const char *except, bool presence, const char *line,
                  size_t len, ss__chat_done done, void *arg);
    /* /who for the whole service: online users (away text or NULL), then
     * up to max known offline ones, most recent first. */
    void (*who)(ss__chat_be *be, int max,
                void (*row)(void *arg, const char *nick, bool online, const char *away,
                            int64_t last_seen),
                void *row_arg, struct ss__chat_res *res, ss__chat_done done, void *arg);
    /* nick is away with text (NULL: back). */
    void (*set_away)(ss__chat_be *be, const char *nick, const char *text,
                     ss__chat_done done, void *arg);
    /* This node's id (what to_node and the requests' tokens name). */
    const char *(*node_id)(ss__chat_be *be);
    /* A request for node `node`, or (node NULL) for the node holding nick
     * (ss__chat_room_ask there): res->found says whether a node took it,
     * res->v (res->buf if set) is its answer; -ETIMEDOUT: no answer within
     * SS_CHAT_ASK_TIMEOUT_MS, -EAGAIN: SS_CHAT_ASK_MAX requests are
     * waiting already, -EMSGSIZE: the answer did not fit. */
    void (*ask)(ss__chat_be *be, const char *node, const char *nick, const char *text,
                struct ss__chat_res *res, ss__chat_done done, void *arg);
    /* The answer to the request named token (given to ss__chat_room_ask). */
    void (*answer)(ss__chat_be *be, const char *token, const char *text);
    /* A room-to-room line for node `node` (ss__chat_room_node there);
     * res->found: the node took it. */
    void (*to_node)(ss__chat_be *be, const char *node, const char *text,
                    struct ss__chat_res *res, ss__chat_done done, void *arg);
};

struct ss__chat_be {
    const struct ss__chat_be_ops *ops;
    struct ss_chat_room *room; /* set by ss__chat_room_open_be */
};

/* From a cluster backend to its room, on the loop: */
/* A bus line: kind 'R' (room line, all but except), 'P' (presence, all
 * but except), 'D' (to the local user named nick). */
void ss__chat_room_bus(struct ss_chat_room *room, char kind, const char *nick,
                       const char *line, size_t len);
/* A shared line (sockstack/chat.h), open to the server's queues: one
 * public message is referenced by every recipient, so taking and dropping
 * a reference is inline there (a call each was a tenth of the fan-out). */
struct ss_chat_line {
    uint32_t refs;
    uint32_t len;
    char data[];
};

static inline ss_chat_line *ss__chat_line_hold(ss_chat_line *l)
{
    l->refs++;
    return l;
}

/* ss_chat_line_unref, with the last reference's free out of line. */
static inline void ss__chat_line_drop(ss_chat_line *l)
{
    if (l->refs > 1)
        l->refs--;
    else
        ss_chat_line_unref(l);
}

/* Group commit of the room's local SQLite store (single node; a no-op
 * with a cluster backend): with batch on, history inserts share one
 * transaction until ss__chat_room_commit, which the glue calls before any
 * line leaves the process, so nothing acknowledged is uncommitted once it
 * is on the wire. Commit returns 0 or -EIO (the batch was rolled back). */
void ss__chat_room_batch(struct ss_chat_room *room, bool on);
int ss__chat_room_commit(struct ss_chat_room *room);
/* A request (ops->ask on another node) for the local user nick: answer
 * it with ops->answer(token, ...), at once or later. */
void ss__chat_room_ask(struct ss_chat_room *room, const char *nick, const char *token,
                       const char *text, int64_t now);
/* A room-to-room line from another node (ops->to_node). */
void ss__chat_room_node(struct ss_chat_room *room, const char *text, int64_t now);
/* A datagram on the point-to-point UDP rendezvous from `from` (an
 * IPv4 "ADDR:PORT"): the answer's length in out, or 0 to ignore it
 * (chat.c, ss__chat_room_p2p_udp). */
size_t ss__chat_room_p2p_udp(struct ss_chat_room *room, const char *d, size_t n,
                             const char *from, char *out, size_t cap, int64_t now);
/* The store became unreachable (up false) or reachable again: every
 * connection is told (INFO degraded / INFO restored). */
void ss__chat_room_state(struct ss_chat_room *room, bool up);
/* nick's node died (its lease expired and this node noticed first):
 * announce its LEAVE to the service. online: users online after it. */
void ss__chat_room_reaped(struct ss_chat_room *room, const char *nick, int online,
                          int64_t now);

/* Open a room on backend be (taken, closed with the room; NULL: the SQLite
 * store of o->db_path). Files stay in a local SQLite store either way:
 * o->db_path (in memory if NULL). */
struct ss_chat_room;
struct ss_chat_opts;
struct ss_chat_io;
int ss__chat_room_open_be(struct ss_chat_room **out, const struct ss_chat_opts *o,
                          const struct ss_chat_io *io, ss__chat_be *be);

/* The single-node backend over the room's SQLite store (not owned). */
int ss__chat_be_sqlite_new(ss__chat_store *st, ss__chat_be **out);

/* The cluster backend on Redis (chat_be_redis.c): spec "redis://H:P[,...]",
 * the room's keys under {room}; nick leases of lease_ms, refreshed every
 * third of it. Connects in the background (operations fail with -ENOTCONN
 * until Redis answers). */
struct ss_loop;
int ss__chat_be_redis_new(struct ss_loop *loop, const char *spec, const char *room,
                          int lease_ms, ss__chat_be **out);

#endif
