/* chat_redis: the chat server's connection to Redis or Redis Cluster
 * (internal to src/apps; issue 14).
 *
 * hiredis (Debian's libhiredis-dev) runs asynchronously on our reactor
 * through its adapter hooks, so no chat node ever blocks on Redis. What
 * hiredis 0.14 lacks is ours and small: Redis Cluster routing (the CRC16
 * hash slot of a key, {hash tags}, the CLUSTER SLOTS map, MOVED and ASK),
 * reconnection with bounded exponential backoff, a bound on pending
 * commands, timeouts, and the subscriber connections (hiredis 0.14's async
 * code aborts on the "smessage" pushes of sharded pub/sub, so subscribers
 * run hiredis's redisReader on our own nonblocking sockets).
 *
 * Contract of every call that takes a callback: a call that returns a
 * negative code never calls the callback; a call that returns 0 calls it
 * exactly once, later, from the loop (never from inside the call): with
 * the reply and err 0 (a Redis error reply is a reply, r->type ==
 * REDIS_REPLY_ERROR), or with r NULL and err < 0:
 *   -ECONNRESET  the connection was lost (the command may or may not have
 *                run: Redis does not say),
 *   -ETIMEDOUT   no reply within timeout_ms (the connection is dropped),
 *   -ECANCELED   ss__rds_close() was called,
 *   -EIO         another connection error.
 * The reply belongs to the layer; copy what you keep.
 *
 * "Up" means every node that serves a slot (one node without a cluster)
 * is connected and answered, and so is the subscriber connection of every
 * node that serves a subscribed channel. While not up, commands are
 * refused (-ENOTCONN) rather than queued: the chat tells its clients the
 * service is degraded. Subscriptions are kept and made again after every
 * reconnect; pub/sub itself delivers at most once (what matters is in
 * Streams).
 */
#ifndef SS_APPS_CHAT_REDIS_H
#define SS_APPS_CHAT_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sockstack/reactor.h"

typedef struct ss__rds ss__rds;
struct redisReply; /* hiredis's reply: <hiredis/hiredis.h> */

typedef void (*ss__rds_cb)(void *arg, const struct redisReply *r, int err);
/* A message on a subscribed channel (data is binary, len bytes). */
typedef void (*ss__rds_msg_cb)(void *arg, const char *channel, const char *data,
                               size_t len);
/* The layer went up (healthy) or down (degraded). Called on every change
 * only, never from inside ss__rds_open or ss__rds_close. */
typedef void (*ss__rds_state_cb)(void *arg, bool up);

struct ss__rds_cfg {
    /* "redis://HOST:PORT[,HOST:PORT...]" (also "[v6addr]:PORT"). Several
     * addresses: Redis Cluster, these are the seeds. One address: cluster
     * or not, as the server says (CLUSTER SLOTS) when it first answers.
     * A host name is resolved by getaddrinfo() at each connect, which
     * blocks while the resolver works: give addresses where that matters. */
    const char *spec;
    int timeout_ms;     /* 0: SS_RDS_TIMEOUT_MS. Blocking commands (XREAD
                           BLOCK) must block for less than this. */
    int backoff_max_ms; /* 0: SS_RDS_BACKOFF_MAX_MS */
    int max_pending;    /* 0: SS_RDS_MAX_PENDING */
    ss__rds_state_cb on_state;
    void *arg;
};

/* Parse cfg->spec and start connecting (nothing blocks). Returns 0 and
 * *out, -EINVAL for a bad spec (too many addresses: -E2BIG), -ENOMEM. */
int ss__rds_open(ss_loop *loop, const struct ss__rds_cfg *cfg, ss__rds **out);
/* Drop every connection; every pending callback gets -ECANCELED (before
 * this returns, or, when called from inside one of this layer's callbacks,
 * before that callback's caller returns). NULL is fine. */
void ss__rds_close(ss__rds *r);
bool ss__rds_up(const ss__rds *r);
/* Redis Cluster? Known once the layer was up once (several addresses:
 * from the start). */
bool ss__rds_is_cluster(const ss__rds *r);
/* Commands accepted and not yet answered. */
size_t ss__rds_pending(const ss__rds *r);

/* One command, argv form (binary-safe; argvlen NULL: strlen of each).
 * key routes it on a cluster (its hash slot, {tags} honoured; MOVED and
 * ASK are followed); NULL for keyless commands (any node). Returns 0, or
 * -ENOTCONN (not up), -EAGAIN (max_pending reached), -EINVAL (argc < 1, a
 * NULL argument), -ENOMEM. */
int ss__rds_cmd(ss__rds *r, const char *key, ss__rds_cb cb, void *arg, int argc,
                const char **argv, const size_t *argvlen);
/* SPUBLISH on a cluster (to the channel's slot owner), PUBLISH otherwise;
 * the reply is the number of receivers. cb may be NULL (fire and forget;
 * still counted as pending until answered). */
int ss__rds_publish(ss__rds *r, const char *channel, const char *data, size_t len,
                    ss__rds_cb cb, void *arg);
/* SSUBSCRIBE (cluster, on the channel's slot owner) or SUBSCRIBE; made
 * again after every reconnect and slot move. Allowed while down. Returns
 * 0, -EEXIST (already subscribed), -EINVAL (empty or longer than
 * SS_RDS_CHANNEL_MAX), -EAGAIN (SS_RDS_MAX_SUBS), -ENOMEM. */
int ss__rds_subscribe(ss__rds *r, const char *channel, ss__rds_msg_cb cb, void *arg);
/* Forget a subscription (UNSUBSCRIBE is sent if connected). 0 or -ENOENT. */
int ss__rds_unsubscribe(ss__rds *r, const char *channel);
/* Has the server confirmed the subscription on the current connection? A
 * message published after this is true reaches the callback. */
bool ss__rds_subscribed(const ss__rds *r, const char *channel);

/* The Redis Cluster hash slot of a key: CRC16 (XMODEM) of the key, or of
 * the part inside the first non-empty {...}, mod 16384. */
unsigned ss__rds_slot(const char *key, size_t len);

#endif
