/* chat_redis: Redis and Redis Cluster on our reactor (see chat_redis.h).
 *
 * Paths:
 *   command:  ss__rds_cmd -> route (hash slot -> node) -> send_req
 *             -> redisAsyncFormattedCommand (hiredis buffers, asks our
 *             adapter hooks for SS_WRITE) -> node_io -> redisAsyncHandle*
 *             -> on_reply (MOVED: fix the slot, refresh the map, send again;
 *             ASK: ASKING + send to the named node) -> finish -> caller's cb
 *   lost:     hiredis frees the context: every pending hiredis callback
 *             gets NULL (on_reply -> finish with the node's error), then
 *             ev_cleanup -> node_lost -> backoff timer -> node_connect
 *   map:      probe (CLUSTER SLOTS, or PING once we know it is no cluster)
 *             on every connect, refresh on MOVED or a moved subscription
 *             -> apply_slots -> reassign_subs -> update_up
 *   pub/sub:  sconn: our nonblocking socket, commands formatted by hiredis,
 *             replies parsed by hiredis's redisReader (its async code aborts
 *             on "smessage"), -> sub_push -> the channel's callback
 *   state:    update_up -> deferred task -> on_state (never reentrant)
 *
 * Every entry from the loop (I/O, timers, the deferred task) brackets its
 * work with enter()/leave(): ss__rds_close() called from inside a callback
 * only marks the layer closed and drops the connections; the memory is
 * freed when the outermost entry leaves.
 */
#include "apps/chat_redis.h"

#include "sockstack/config.h"

#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { NSLOTS = 16384, SUB_BUCKETS = 1024, HOST_MAX = 64 };
enum mode { MODE_UNKNOWN, MODE_SINGLE, MODE_CLUSTER };

struct req {
    ss__rds *r;
    ss__rds_cb cb;
    void *arg;
    char *cmd; /* formatted by hiredis, kept to follow a redirect */
    size_t len;
    int redirects;
};

struct sub {
    struct sub *next; /* hash chain */
    char *channel;
    size_t len;
    unsigned slot;
    ss__rds_msg_cb cb;
    void *arg;
    int node;        /* index of the node it is subscribed on, -1: none yet */
    bool confirmed;  /* the server said (s)subscribe on this connection */
    bool lost;       /* the server dropped it (slot moved): subscribe again */
};

/* A subscriber connection: our socket, hiredis's parser. */
struct sconn {
    int fd; /* -1: none */
    bool connected, broken;
    unsigned events;
    redisReader *rd;
    char *obuf;
    size_t olen, ocap;
    ss_timer timer; /* connect timeout, or reconnect backoff */
    int backoff_ms;
};

struct node {
    ss__rds *r;
    int idx;
    char host[HOST_MAX];
    int port;
    bool seed;
    redisAsyncContext *ac; /* NULL: not connected (see timer) */
    bool connected;        /* TCP connect completed */
    bool ready;            /* the probe was answered */
    int fd;
    unsigned events;       /* what hiredis asked our hooks for */
    ss_timer timer;        /* connect / reply timeout, or reconnect backoff */
    int backoff_ms;
    int reason;            /* error for pending callbacks when ac goes */
    unsigned inflight;     /* hiredis callbacks outstanding on ac */
    uint64_t progress_at;  /* last reply (or first command after idle) */
    unsigned owns;         /* slots it serves in the current map */
    unsigned nsubs;        /* subscriptions assigned to it */
    struct sconn s;
};

struct ss__rds {
    ss_loop *loop;
    int timeout_ms, backoff_max_ms;
    size_t max_pending;
    ss__rds_state_cb on_state;
    void *arg;
    enum mode mode;
    struct node nodes[SS_RDS_MAX_NODES];
    int nnodes;
    int16_t slots[NSLOTS]; /* node index, -1: unassigned */
    bool map_ok;
    bool refreshing, refresh_again;
    ss_timer refresh_timer;
    size_t pending;
    bool up, told, closing;
    int depth;
    ss_defer state_defer;
    struct sub *subs[SUB_BUCKETS];
    size_t nsubs;
};

static void node_connect(struct node *n);
static void node_lost(struct node *n);
static void request_refresh(ss__rds *r);
static void reassign_subs(ss__rds *r);
static void update_up(ss__rds *r);
static void sub_lost(struct node *n, int err);
static void rds_free(ss__rds *r);
static void node_timer_cb(ss_loop *loop, ss_timer *t, void *arg);
static void sub_timer_cb(ss_loop *loop, ss_timer *t, void *arg);

/* ---- hash slots (Redis Cluster spec, "Keys distribution model") -------- */

/* CRC16-CCITT (XMODEM): poly 0x1021, init 0; "123456789" -> 0x31C3. */
static uint16_t crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((uint8_t)buf[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned ss__rds_slot(const char *key, size_t len)
{
    /* Only the first '{' counts, and only if a '}' follows with something
     * between them: "{user1000}.following" hashes "user1000", "{}x" all. */
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1)
            return crc16(open + 1, (size_t)(close - open - 1)) & (NSLOTS - 1);
    }
    return crc16(key, len) & (NSLOTS - 1);
}

/* ---- reentrancy --------------------------------------------------------- */

static void enter(ss__rds *r)
{
    r->depth++;
}

static void leave(ss__rds *r)
{
    if (--r->depth == 0 && r->closing)
        rds_free(r);
}

/* ---- nodes -------------------------------------------------------------- */

static int node_find_add(ss__rds *r, const char *host, int port)
{
    for (int i = 0; i < r->nnodes; i++)
        if (r->nodes[i].port == port && strcmp(r->nodes[i].host, host) == 0)
            return i;
    if (r->nnodes == SS_RDS_MAX_NODES || strlen(host) >= HOST_MAX || port <= 0 ||
        port > 65535)
        return -1;
    struct node *n = &r->nodes[r->nnodes];
    *n = (struct node){.r = r, .idx = r->nnodes, .port = port, .fd = -1,
                       .backoff_ms = SS_RDS_BACKOFF_MIN_MS,
                       .s = {.fd = -1, .backoff_ms = SS_RDS_BACKOFF_MIN_MS}};
    snprintf(n->host, sizeof n->host, "%s", host);
    ss_timer_init(&n->timer, node_timer_cb, n);
    ss_timer_init(&n->s.timer, sub_timer_cb, n);
    return r->nnodes++;
}

static void schedule_retry(struct node *n)
{
    ss__rds *r = n->r;
    if (r->closing)
        return;
    ss_timer_start(r->loop, &n->timer, (uint64_t)n->backoff_ms);
    n->backoff_ms = n->backoff_ms * 2 > r->backoff_max_ms ? r->backoff_max_ms
                                                         : n->backoff_ms * 2;
}

/* The error pending callbacks of ac get: ours (timeout, close) or hiredis's. */
static int ac_err(const redisAsyncContext *ac)
{
    const struct node *n = ac->data;
    if (n && n->reason)
        return n->reason;
    switch (ac->c.err) {
    case REDIS_ERR_EOF:
        return -ECONNRESET;
    case REDIS_ERR_IO:
        if (strstr(ac->c.errstr, strerror(ECONNRESET)))
            return -ECONNRESET;
        if (strstr(ac->c.errstr, strerror(ECONNREFUSED)))
            return -ECONNREFUSED;
        return -EIO;
    default:
        return -EIO;
    }
}

/* A reply (or NULL) came for one of our hiredis callbacks on n. */
static void node_progress(struct node *n)
{
    if (n->inflight)
        n->inflight--;
    n->progress_at = ss_loop_now(n->r->loop);
}

/* One more hiredis callback outstanding on n: the reply timeout runs. */
static void node_sent(struct node *n)
{
    if (n->inflight++ == 0)
        n->progress_at = ss_loop_now(n->r->loop);
    if (n->connected && !ss_timer_active(&n->timer))
        ss_timer_start(n->r->loop, &n->timer, (uint64_t)n->r->timeout_ms);
}

static bool node_usable(const struct node *n)
{
    return n->ac && !(n->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING));
}

/* ---- adapter hooks: hiredis asks, the reactor watches ------------------- */

static void node_io(ss_loop *loop, int fd, unsigned ev, void *arg)
{
    struct node *n = arg;
    ss__rds *r = n->r;
    enter(r);
    redisAsyncContext *ac = n->ac;
    if (ac && (ev & (SS_WRITE | SS_HUP)) && (n->events & SS_WRITE))
        redisAsyncHandleWrite(ac);
    /* The write may have found the connection dead and freed ac. */
    if (n->ac == ac && ac && (ev & (SS_READ | SS_HUP)))
        redisAsyncHandleRead(ac);
    leave(r);
}

static void ev_set(struct node *n, unsigned events)
{
    ss_loop *loop = n->r->loop;
    if (events == n->events)
        return;
    /* A failed add (no memory for the fd table) leaves the connection
     * without events: its reply timeout then drops it, nothing hangs. */
    if (n->events == 0)
        ss_loop_io_add(loop, n->fd, events, node_io, n);
    else if (events == 0)
        ss_loop_io_del(loop, n->fd);
    else
        ss_loop_io_mod(loop, n->fd, events);
    n->events = events;
}

static void ev_add_read(void *p)
{
    struct node *n = p;
    ev_set(n, n->events | SS_READ);
}

static void ev_del_read(void *p)
{
    struct node *n = p;
    ev_set(n, n->events & ~(unsigned)SS_READ);
}

static void ev_add_write(void *p)
{
    struct node *n = p;
    ev_set(n, n->events | SS_WRITE);
}

static void ev_del_write(void *p)
{
    struct node *n = p;
    ev_set(n, n->events & ~(unsigned)SS_WRITE);
}

/* hiredis is about to free the context; every pending callback has had
 * its NULL reply already. */
static void ev_cleanup(void *p)
{
    struct node *n = p;
    ev_set(n, 0);
    n->ac = NULL;
    node_lost(n);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct node *n = ac->data;
    if (status != REDIS_OK)
        return; /* hiredis frees ac next: ev_cleanup */
    n->connected = true;
    ss_timer_stop(n->r->loop, &n->timer);
    if (n->inflight) {
        n->progress_at = ss_loop_now(n->r->loop);
        ss_timer_start(n->r->loop, &n->timer, (uint64_t)n->r->timeout_ms);
    }
}

/* ---- commands ----------------------------------------------------------- */

static void finish(struct req *q, const redisReply *rep, int err)
{
    ss__rds *r = q->r;
    r->pending--;
    if (q->cb)
        q->cb(q->arg, rep, err);
    redisFreeCommand(q->cmd);
    free(q);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv);

static void on_ignore(redisAsyncContext *ac, void *reply, void *priv)
{
    node_progress(ac->data);
}

static int send_req(struct node *n, struct req *q, bool asking)
{
    if (!node_usable(n))
        return -ENOTCONN;
    if (asking) {
        if (redisAsyncCommand(n->ac, on_ignore, NULL, "ASKING") != REDIS_OK)
            return -ENOTCONN;
        node_sent(n);
    }
    if (redisAsyncFormattedCommand(n->ac, on_reply, q, q->cmd, q->len) != REDIS_OK)
        return -ENOTCONN;
    node_sent(n);
    return 0;
}

/* "MOVED 3999 127.0.0.1:6381" or "ASK 3999 127.0.0.1:6381". */
static bool parse_redirect(const char *s, bool *ask, int *slot, char *host, int *port)
{
    const char *p;
    if (strncmp(s, "MOVED ", 6) == 0) {
        *ask = false;
        p = s + 6;
    } else if (strncmp(s, "ASK ", 4) == 0) {
        *ask = true;
        p = s + 4;
    } else {
        return false;
    }
    char *end;
    long sl = strtol(p, &end, 10);
    if (end == p || *end != ' ' || sl < 0 || sl >= NSLOTS)
        return false;
    const char *addr = end + 1;
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || (size_t)(colon - addr) >= HOST_MAX)
        return false;
    long pt = strtol(colon + 1, &end, 10);
    if (*end != '\0' || pt <= 0 || pt > 65535)
        return false;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    *slot = (int)sl;
    *port = (int)pt;
    return true;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct req *q = priv;
    ss__rds *r = q->r;
    node_progress(ac->data);
    redisReply *rep = reply;
    if (!rep) {
        finish(q, NULL, ac_err(ac));
        return;
    }
    bool ask;
    int slot, port;
    char host[HOST_MAX];
    if (rep->type == REDIS_REPLY_ERROR && !r->closing && r->mode == MODE_CLUSTER &&
        q->redirects < SS_RDS_MAX_REDIRECTS &&
        parse_redirect(rep->str, &ask, &slot, host, &port)) {
        int t = node_find_add(r, host, port);
        if (t >= 0) {
            if (!ask) {
                /* The map is stale: this slot now, all of it soon. */
                r->slots[slot] = (int16_t)t;
                request_refresh(r);
            }
            q->redirects++;
            if (send_req(&r->nodes[t], q, ask) == 0)
                return;
            if (!r->nodes[t].ac && !ss_timer_active(&r->nodes[t].timer))
                ss_timer_start(r->loop, &r->nodes[t].timer, 0);
        }
        /* Cannot follow: the caller gets the redirect as the reply. */
    }
    finish(q, rep, 0);
}

static struct node *route(ss__rds *r, const char *key)
{
    if (r->mode == MODE_SINGLE)
        return &r->nodes[0];
    if (r->mode != MODE_CLUSTER || !r->map_ok)
        return NULL;
    if (key) {
        int i = r->slots[ss__rds_slot(key, strlen(key))];
        return i >= 0 ? &r->nodes[i] : NULL;
    }
    for (int i = 0; i < r->nnodes; i++)
        if (r->nodes[i].owns && r->nodes[i].ready)
            return &r->nodes[i];
    return NULL;
}

int ss__rds_cmd(ss__rds *r, const char *key, ss__rds_cb cb, void *arg, int argc,
                const char **argv, const size_t *argvlen)
{
    if (!r || argc <= 0 || !argv)
        return -EINVAL;
    for (int i = 0; i < argc; i++)
        if (!argv[i])
            return -EINVAL;
    if (r->closing || !r->up)
        return -ENOTCONN;
    if (r->pending >= r->max_pending)
        return -EAGAIN;
    struct node *n = route(r, key);
    if (!n)
        return -ENOTCONN;
    struct req *q = calloc(1, sizeof *q);
    if (!q)
        return -ENOMEM;
    int len = redisFormatCommandArgv(&q->cmd, argc, argv, argvlen);
    if (len < 0) {
        free(q);
        return -ENOMEM;
    }
    q->r = r;
    q->cb = cb;
    q->arg = arg;
    q->len = (size_t)len;
    int rc = send_req(n, q, false);
    if (rc != 0) {
        redisFreeCommand(q->cmd);
        free(q);
        return rc;
    }
    r->pending++;
    return 0;
}

int ss__rds_publish(ss__rds *r, const char *channel, const char *data, size_t len,
                    ss__rds_cb cb, void *arg)
{
    if (!r || !channel || (!data && len))
        return -EINVAL;
    const char *argv[3] = {r->mode == MODE_CLUSTER ? "SPUBLISH" : "PUBLISH", channel,
                           data ? data : ""};
    size_t lens[3] = {strlen(argv[0]), strlen(channel), len};
    return ss__rds_cmd(r, channel, cb, arg, 3, argv, lens);
}

/* ---- the slot map ------------------------------------------------------- */

/* Apply a CLUSTER SLOTS reply got from node `from`: [[start, end, [host,
 * port, id], replicas...], ...]. Masters only; an empty host means "the
 * address you reached me at". */
static void apply_slots(ss__rds *r, const redisReply *rep, const struct node *from)
{
    _Static_assert(SS_RDS_MAX_NODES < INT16_MAX, "slot map holds node indexes");
    int16_t map[NSLOTS];
    for (int s = 0; s < NSLOTS; s++)
        map[s] = -1;
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *e = rep->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2)
            continue;
        const redisReply *m = e->element[2];
        if (m->element[0]->type != REDIS_REPLY_STRING ||
            m->element[1]->type != REDIS_REPLY_INTEGER)
            continue;
        const char *host = m->element[0]->len ? m->element[0]->str : from->host;
        int idx = node_find_add(r, host, (int)m->element[1]->integer);
        long long lo = e->element[0]->integer, hi = e->element[1]->integer;
        if (idx < 0 || lo < 0 || hi >= NSLOTS || lo > hi)
            continue;
        for (long long s = lo; s <= hi; s++)
            map[s] = (int16_t)idx;
    }
    memcpy(r->slots, map, sizeof map);
    for (int i = 0; i < r->nnodes; i++)
        r->nodes[i].owns = 0;
    bool ok = true;
    for (int s = 0; s < NSLOTS; s++) {
        if (map[s] < 0)
            ok = false;
        else
            r->nodes[map[s]].owns++;
    }
    r->map_ok = ok;
    for (int i = 0; i < r->nnodes; i++) {
        struct node *n = &r->nodes[i];
        if (n->owns && !n->ac && !ss_timer_active(&n->timer))
            ss_timer_start(r->loop, &n->timer, 0);
    }
    /* A cluster still forming (or failing over): ask again soon. */
    if (!ok)
        ss_timer_start(r->loop, &r->refresh_timer, (uint64_t)r->backoff_max_ms);
    reassign_subs(r);
}

static void on_slots(redisAsyncContext *ac, void *reply, void *priv)
{
    ss__rds *r = priv;
    node_progress(ac->data);
    r->refreshing = false;
    const redisReply *rep = reply;
    if (rep && rep->type == REDIS_REPLY_ARRAY && !r->closing) {
        apply_slots(r, rep, ac->data);
        update_up(r);
    }
    if (r->refresh_again && !r->closing) {
        r->refresh_again = false;
        request_refresh(r);
    }
}

/* One CLUSTER SLOTS at a time, to any node that answers; asks made while
 * one is out make one more after it. */
static void request_refresh(ss__rds *r)
{
    if (r->mode != MODE_CLUSTER || r->closing)
        return;
    if (r->refreshing) {
        r->refresh_again = true;
        return;
    }
    for (int i = 0; i < r->nnodes; i++) {
        struct node *n = &r->nodes[i];
        if (n->ready && node_usable(n) &&
            redisAsyncCommand(n->ac, on_slots, r, "CLUSTER SLOTS") == REDIS_OK) {
            node_sent(n);
            r->refreshing = true;
            return;
        }
    }
    /* Nobody answers now: the next probe (on connect) brings the map. */
}

/* While a cluster is down, its map is asked for again every
 * backoff_max_ms: a failover gives the lost master's slots to another
 * node, which only the map tells. */
static void refresh_timer_cb(ss_loop *loop, ss_timer *t, void *arg)
{
    ss__rds *r = arg;
    enter(r);
    request_refresh(r);
    if (!r->up && r->mode == MODE_CLUSTER && !r->closing)
        ss_timer_start(loop, t, (uint64_t)r->backoff_max_ms);
    leave(r);
}

/* The first reply on a new connection: CLUSTER SLOTS tells both whether
 * this is a cluster and, if so, the map; PING just that it serves. */
static void on_probe(redisAsyncContext *ac, void *reply, void *priv)
{
    struct node *n = priv;
    ss__rds *r = n->r;
    node_progress(n);
    const redisReply *rep = reply;
    if (!rep || r->closing)
        return;
    if (rep->type == REDIS_REPLY_ARRAY && r->mode != MODE_SINGLE) {
        r->mode = MODE_CLUSTER;
        apply_slots(r, rep, n);
    } else if (rep->type == REDIS_REPLY_ERROR && r->mode == MODE_UNKNOWN &&
               strstr(rep->str, "cluster support disabled")) {
        r->mode = MODE_SINGLE;
        reassign_subs(r);
    } else if (rep->type == REDIS_REPLY_ERROR) {
        /* LOADING (an AOF being replayed), or worse: try again later. */
        n->reason = -EAGAIN;
        redisAsyncFree(ac);
        return;
    }
    n->ready = true;
    n->backoff_ms = SS_RDS_BACKOFF_MIN_MS;
    update_up(r);
}

static void node_timer_cb(ss_loop *loop, ss_timer *t, void *arg)
{
    struct node *n = arg;
    ss__rds *r = n->r;
    enter(r);
    if (!n->ac) {
        node_connect(n);
    } else if (!n->connected) {
        n->reason = -ETIMEDOUT;
        redisAsyncFree(n->ac);
    } else if (n->inflight) {
        uint64_t idle = ss_loop_now(loop) - n->progress_at;
        if (idle >= (uint64_t)r->timeout_ms) {
            n->reason = -ETIMEDOUT;
            redisAsyncFree(n->ac);
        } else {
            ss_timer_start(loop, t, (uint64_t)r->timeout_ms - idle);
        }
    }
    leave(r);
}

static void node_connect(struct node *n)
{
    ss__rds *r = n->r;
    if (r->closing || n->ac)
        return;
    redisAsyncContext *ac = redisAsyncConnect(n->host, n->port);
    if (!ac || ac->err) {
        if (ac)
            redisAsyncFree(ac); /* no hooks yet: nothing is called */
        schedule_retry(n);
        return;
    }
    n->ac = ac;
    n->fd = ac->c.fd;
    n->events = 0;
    n->connected = n->ready = false;
    n->reason = 0;
    n->inflight = 0;
    ac->data = n;
    ac->ev.data = n;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    /* hiredis learns the connect completed from the first write event, and
     * asks for one only when a command is queued: the probe is that one. */
    redisAsyncCommand(ac, on_probe, n, r->mode == MODE_SINGLE ? "PING" : "CLUSTER SLOTS");
    n->inflight = 1;
    n->progress_at = ss_loop_now(r->loop);
    ss_timer_start(r->loop, &n->timer, (uint64_t)r->timeout_ms);
}

static void node_lost(struct node *n)
{
    ss__rds *r = n->r;
    ss_timer_stop(r->loop, &n->timer);
    n->connected = n->ready = false;
    n->inflight = 0;
    n->fd = -1;
    if (r->closing)
        return;
    if (n->seed || n->owns || n->nsubs)
        schedule_retry(n);
    if (r->mode == MODE_CLUSTER && n->owns && !ss_timer_active(&r->refresh_timer))
        ss_timer_start(r->loop, &r->refresh_timer, (uint64_t)r->backoff_max_ms);
    update_up(r);
}

/* ---- state -------------------------------------------------------------- */

static void state_task(ss_loop *loop, void *arg)
{
    ss__rds *r = arg;
    enter(r);
    if (!r->closing && r->up != r->told) {
        r->told = r->up;
        if (r->on_state)
            r->on_state(r->arg, r->up);
    }
    leave(r);
}

static bool node_healthy(const struct node *n)
{
    return n->ready && node_usable(n) && (n->nsubs == 0 || n->s.connected);
}

static void update_up(ss__rds *r)
{
    if (r->closing)
        return;
    bool up = false;
    if (r->mode == MODE_SINGLE) {
        up = node_healthy(&r->nodes[0]);
    } else if (r->mode == MODE_CLUSTER && r->map_ok) {
        up = true;
        for (int i = 0; i < r->nnodes; i++)
            if (r->nodes[i].owns && !node_healthy(&r->nodes[i]))
                up = false;
    }
    if (up != r->up) {
        r->up = up;
        ss_loop_defer(r->loop, &r->state_defer);
    }
}

bool ss__rds_up(const ss__rds *r)
{
    return r && r->up;
}

bool ss__rds_is_cluster(const ss__rds *r)
{
    return r && r->mode == MODE_CLUSTER;
}

size_t ss__rds_pending(const ss__rds *r)
{
    return r ? r->pending : 0;
}

/* ---- subscriber connections -------------------------------------------- */

static size_t sub_hash(const char *s, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h % SUB_BUCKETS;
}

static struct sub **sub_slot(const ss__rds *r, const char *ch, size_t len)
{
    struct sub **pp = (struct sub **)&r->subs[sub_hash(ch, len)];
    while (*pp && !((*pp)->len == len && memcmp((*pp)->channel, ch, len) == 0))
        pp = &(*pp)->next;
    return pp;
}

/* Queue one command on n's subscriber connection (sent when writable).
 * Over the bound the connection is marked broken and dropped from its
 * timer (not from here: we may be inside its read loop). */
static void sub_queue(struct node *n, const char *verb, const struct sub *s)
{
    struct sconn *c = &n->s;
    if (c->fd < 0 || !c->connected || c->broken)
        return;
    const char *argv[2] = {verb, s->channel};
    size_t lens[2] = {strlen(verb), s->len};
    char *cmd;
    int len = redisFormatCommandArgv(&cmd, 2, argv, lens);
    if (len < 0 || c->olen + (size_t)len > SS_RDS_SUB_OBUF_MAX) {
        if (len >= 0)
            redisFreeCommand(cmd);
        c->broken = true;
        ss_timer_start(n->r->loop, &c->timer, 0);
        return;
    }
    if (c->olen + (size_t)len > c->ocap) {
        size_t cap = c->ocap ? c->ocap : 4096;
        while (cap < c->olen + (size_t)len)
            cap *= 2;
        char *b = realloc(c->obuf, cap);
        if (!b) {
            redisFreeCommand(cmd);
            c->broken = true;
            ss_timer_start(n->r->loop, &c->timer, 0);
            return;
        }
        c->obuf = b;
        c->ocap = cap;
    }
    memcpy(c->obuf + c->olen, cmd, (size_t)len);
    c->olen += (size_t)len;
    redisFreeCommand(cmd);
    if (!(c->events & SS_WRITE)) {
        c->events |= SS_WRITE;
        ss_loop_io_mod(n->r->loop, c->fd, c->events);
    }
}

static const char *verb_sub(const ss__rds *r)
{
    return r->mode == MODE_CLUSTER ? "SSUBSCRIBE" : "SUBSCRIBE";
}

static const char *verb_unsub(const ss__rds *r)
{
    return r->mode == MODE_CLUSTER ? "SUNSUBSCRIBE" : "UNSUBSCRIBE";
}

/* Make sure n has (or is getting) a subscriber connection. */
static void sub_want(struct node *n)
{
    if (n->s.fd < 0 && !ss_timer_active(&n->s.timer) && !n->r->closing)
        ss_timer_start(n->r->loop, &n->s.timer, 0);
}

/* Put every subscription on the node that serves its channel now. */
static void reassign_subs(ss__rds *r)
{
    for (size_t b = 0; b < SUB_BUCKETS; b++) {
        for (struct sub *s = r->subs[b]; s; s = s->next) {
            int want = -1;
            if (r->mode == MODE_SINGLE)
                want = 0;
            else if (r->mode == MODE_CLUSTER)
                want = r->slots[s->slot];
            if (want == s->node && !s->lost)
                continue;
            if (s->node >= 0 && want != s->node) {
                struct node *old = &r->nodes[s->node];
                if (s->confirmed)
                    sub_queue(old, verb_unsub(r), s);
                old->nsubs--;
            }
            if (want >= 0 && want != s->node)
                r->nodes[want].nsubs++;
            s->node = want;
            s->confirmed = s->lost = false;
            if (want >= 0) {
                sub_queue(&r->nodes[want], verb_sub(r), s);
                sub_want(&r->nodes[want]);
            }
        }
    }
}

/* One reply or push on a subscriber connection. */
static void sub_push(struct node *n, const redisReply *rep)
{
    ss__rds *r = n->r;
    if (rep->type == REDIS_REPLY_ERROR) {
        /* MOVED to an SSUBSCRIBE: our map is old. */
        request_refresh(r);
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING ||
        rep->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = rep->element[0]->str;
    const redisReply *ch = rep->element[1];
    struct sub *s = *sub_slot(r, ch->str, ch->len);
    if (!s || s->node != n->idx)
        return; /* an unsubscribed or moved channel's late word */
    if (strcmp(kind, "message") == 0 || strcmp(kind, "smessage") == 0) {
        const redisReply *d = rep->element[2];
        if (d->type == REDIS_REPLY_STRING)
            s->cb(s->arg, s->channel, d->str, d->len);
    } else if (strcmp(kind, "subscribe") == 0 || strcmp(kind, "ssubscribe") == 0) {
        s->confirmed = true;
    } else if (strcmp(kind, "sunsubscribe") == 0 || strcmp(kind, "unsubscribe") == 0) {
        /* Not asked by us (we ask only after moving it away): the server
         * gave the slot to another node. */
        s->confirmed = false;
        s->lost = true;
        request_refresh(r);
        ss_timer_start(r->loop, &r->refresh_timer, SS_RDS_BACKOFF_MIN_MS);
    }
}

static void sub_read(struct node *n)
{
    struct sconn *c = &n->s;
    ss__rds *r = n->r;
    char buf[16384];
    ssize_t got = recv(c->fd, buf, sizeof buf, 0);
    if (got <= 0) {
        if (got < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        sub_lost(n, got == 0 ? -ECONNRESET : -errno);
        return;
    }
    if (redisReaderFeed(c->rd, buf, (size_t)got) != REDIS_OK) {
        sub_lost(n, -ENOMEM);
        return;
    }
    int err = 0;
    for (;;) {
        void *reply = NULL;
        if (redisReaderGetReply(c->rd, &reply) != REDIS_OK) {
            err = -EPROTO;
            break;
        }
        if (!reply)
            break;
        sub_push(n, reply);
        freeReplyObject(reply);
        if (r->closing)
            return; /* the callback closed the layer; rds_free cleans up */
    }
    if (!err && c->rd->len - c->rd->pos > SS_RDS_SUB_INBUF_MAX)
        err = -EMSGSIZE;
    if (err)
        sub_lost(n, err);
}

static void sub_flush(struct node *n)
{
    struct sconn *c = &n->s;
    while (c->olen) {
        ssize_t k = send(c->fd, c->obuf, c->olen, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            sub_lost(n, -errno);
            return;
        }
        memmove(c->obuf, c->obuf + k, c->olen - (size_t)k);
        c->olen -= (size_t)k;
    }
    c->events &= ~(unsigned)SS_WRITE;
    ss_loop_io_mod(n->r->loop, c->fd, c->events);
}

static void sub_io(ss_loop *loop, int fd, unsigned ev, void *arg)
{
    struct node *n = arg;
    struct sconn *c = &n->s;
    ss__rds *r = n->r;
    enter(r);
    if (!c->connected) {
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr || (ev & SS_HUP)) {
            sub_lost(n, soerr ? -soerr : -ECONNRESET);
        } else {
            c->connected = true;
            c->backoff_ms = SS_RDS_BACKOFF_MIN_MS;
            ss_timer_stop(loop, &c->timer);
            c->events = SS_READ;
            ss_loop_io_mod(loop, fd, c->events);
            for (size_t b = 0; b < SUB_BUCKETS; b++)
                for (struct sub *s = r->subs[b]; s; s = s->next)
                    if (s->node == n->idx)
                        sub_queue(n, verb_sub(r), s);
            update_up(r);
        }
    } else {
        if (ev & (SS_READ | SS_HUP))
            sub_read(n);
        if (!r->closing && c->fd == fd && c->connected && (ev & SS_WRITE))
            sub_flush(n);
    }
    leave(r);
}

static int sub_connect(struct node *n)
{
    struct sconn *c = &n->s;
    char port[8];
    snprintf(port, sizeof port, "%d", n->port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    /* A name is resolved by the system's resolver, as hiredis does. */
    if (getaddrinfo(n->host, port, &hints, &ai) != 0)
        return -EHOSTUNREACH;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc = fd < 0 ? -errno : 0;
    if (rc == 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS)
        rc = -errno;
    freeaddrinfo(ai);
    if (rc == 0 && !(c->rd = redisReaderCreate()))
        rc = -ENOMEM;
    if (rc == 0)
        rc = ss_loop_io_add(n->r->loop, fd, SS_WRITE, sub_io, n);
    if (rc != 0) {
        if (c->rd)
            redisReaderFree(c->rd);
        c->rd = NULL;
        if (fd >= 0)
            close(fd);
        return rc;
    }
    c->fd = fd;
    c->events = SS_WRITE;
    c->connected = c->broken = false;
    c->olen = 0;
    ss_timer_start(n->r->loop, &c->timer, (uint64_t)n->r->timeout_ms);
    return 0;
}

static void sconn_close(ss_loop *loop, struct sconn *c)
{
    if (c->fd >= 0) {
        ss_loop_io_del(loop, c->fd);
        close(c->fd);
    }
    if (c->rd)
        redisReaderFree(c->rd);
    c->rd = NULL;
    c->fd = -1;
    c->connected = c->broken = false;
    c->olen = 0;
    c->events = 0;
}

static void sub_lost(struct node *n, int err)
{
    ss__rds *r = n->r;
    (void)err; /* nothing waits on a subscriber connection: it reconnects */
    sconn_close(r->loop, &n->s);
    for (size_t b = 0; b < SUB_BUCKETS; b++)
        for (struct sub *s = r->subs[b]; s; s = s->next)
            if (s->node == n->idx)
                s->confirmed = false;
    if (r->closing)
        return;
    if (n->nsubs) {
        ss_timer_start(r->loop, &n->s.timer, (uint64_t)n->s.backoff_ms);
        n->s.backoff_ms = n->s.backoff_ms * 2 > r->backoff_max_ms ? r->backoff_max_ms
                                                                 : n->s.backoff_ms * 2;
    }
    update_up(r);
}

static void sub_timer_cb(ss_loop *loop, ss_timer *t, void *arg)
{
    struct node *n = arg;
    struct sconn *c = &n->s;
    ss__rds *r = n->r;
    enter(r);
    if (c->fd >= 0 && (c->broken || !c->connected)) {
        sub_lost(n, c->broken ? -ENOBUFS : -ETIMEDOUT);
    } else if (c->fd < 0 && n->nsubs && !r->closing) {
        int rc = sub_connect(n);
        if (rc != 0)
            sub_lost(n, rc);
    }
    leave(r);
}

int ss__rds_subscribe(ss__rds *r, const char *channel, ss__rds_msg_cb cb, void *arg)
{
    if (!r || !channel || !cb || r->closing)
        return -EINVAL;
    size_t len = strlen(channel);
    if (len == 0 || len > SS_RDS_CHANNEL_MAX)
        return -EINVAL;
    struct sub **pp = sub_slot(r, channel, len);
    if (*pp)
        return -EEXIST;
    if (r->nsubs >= SS_RDS_MAX_SUBS)
        return -EAGAIN;
    struct sub *s = calloc(1, sizeof *s);
    if (!s || !(s->channel = strdup(channel))) {
        free(s);
        return -ENOMEM;
    }
    s->len = len;
    s->slot = ss__rds_slot(channel, len);
    s->cb = cb;
    s->arg = arg;
    s->node = -1;
    *pp = s;
    r->nsubs++;
    reassign_subs(r);
    update_up(r);
    return 0;
}

int ss__rds_unsubscribe(ss__rds *r, const char *channel)
{
    if (!r || !channel)
        return -EINVAL;
    struct sub **pp = sub_slot(r, channel, strlen(channel));
    struct sub *s = *pp;
    if (!s)
        return -ENOENT;
    if (s->node >= 0) {
        if (s->confirmed)
            sub_queue(&r->nodes[s->node], verb_unsub(r), s);
        r->nodes[s->node].nsubs--;
    }
    *pp = s->next;
    r->nsubs--;
    free(s->channel);
    free(s);
    update_up(r);
    return 0;
}

bool ss__rds_subscribed(const ss__rds *r, const char *channel)
{
    if (!r || !channel)
        return false;
    const struct sub *s = *sub_slot(r, channel, strlen(channel));
    return s && s->confirmed;
}

/* ---- open / close ------------------------------------------------------- */

/* "redis://H:P[,H:P...]": one node per address. */
static int parse_spec(ss__rds *r, const char *spec)
{
    if (!spec)
        return -EINVAL;
    if (strncmp(spec, "redis://", 8) == 0)
        spec += 8;
    if (!*spec)
        return -EINVAL;
    while (*spec) {
        size_t n = strcspn(spec, ",");
        char item[HOST_MAX + 16];
        if (n == 0 || n >= sizeof item)
            return -EINVAL;
        memcpy(item, spec, n);
        item[n] = '\0';
        spec += n + (spec[n] == ',');
        char *host = item, *colon;
        if (item[0] == '[') {
            char *close = strchr(item, ']');
            if (!close || close[1] != ':')
                return -EINVAL;
            *close = '\0';
            host = item + 1;
            colon = close + 1;
        } else {
            colon = strrchr(item, ':');
            if (!colon)
                return -EINVAL;
            *colon = '\0';
        }
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (!*host || colon[1] == '\0' || *end || port <= 0 || port > 65535)
            return -EINVAL;
        if (r->nnodes == SS_RDS_MAX_NODES)
            return -E2BIG;
        int i = node_find_add(r, host, (int)port);
        if (i < 0)
            return -EINVAL;
        r->nodes[i].seed = true;
    }
    return 0;
}

int ss__rds_open(ss_loop *loop, const struct ss__rds_cfg *cfg, ss__rds **out)
{
    if (!loop || !cfg || !out)
        return -EINVAL;
    ss__rds *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->loop = loop;
    r->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : SS_RDS_TIMEOUT_MS;
    r->backoff_max_ms = cfg->backoff_max_ms > 0 ? cfg->backoff_max_ms : SS_RDS_BACKOFF_MAX_MS;
    if (r->backoff_max_ms < SS_RDS_BACKOFF_MIN_MS)
        r->backoff_max_ms = SS_RDS_BACKOFF_MIN_MS;
    r->max_pending = cfg->max_pending > 0 ? (size_t)cfg->max_pending : SS_RDS_MAX_PENDING;
    r->on_state = cfg->on_state;
    r->arg = cfg->arg;
    for (int s = 0; s < NSLOTS; s++)
        r->slots[s] = -1;
    ss_timer_init(&r->refresh_timer, refresh_timer_cb, r);
    ss_defer_init(&r->state_defer, state_task, r);
    int rc = parse_spec(r, cfg->spec);
    if (rc != 0) {
        free(r);
        return rc;
    }
    r->mode = r->nnodes > 1 ? MODE_CLUSTER : MODE_UNKNOWN;
    for (int i = 0; i < r->nnodes; i++)
        node_connect(&r->nodes[i]);
    *out = r;
    return 0;
}

static void rds_free(ss__rds *r)
{
    ss_loop_defer_cancel(r->loop, &r->state_defer);
    ss_timer_stop(r->loop, &r->refresh_timer);
    for (int i = 0; i < r->nnodes; i++) {
        ss_timer_stop(r->loop, &r->nodes[i].timer);
        ss_timer_stop(r->loop, &r->nodes[i].s.timer);
        sconn_close(r->loop, &r->nodes[i].s);
        free(r->nodes[i].s.obuf);
    }
    for (size_t b = 0; b < SUB_BUCKETS; b++) {
        while (r->subs[b]) {
            struct sub *s = r->subs[b];
            r->subs[b] = s->next;
            free(s->channel);
            free(s);
        }
    }
    free(r);
}

void ss__rds_close(ss__rds *r)
{
    if (!r || r->closing)
        return;
    r->closing = true;
    enter(r);
    /* Each context's pending callbacks get -ECANCELED now, or (for the
     * context whose callback we are inside) when that callback returns. */
    for (int i = 0; i < r->nnodes; i++) {
        struct node *n = &r->nodes[i];
        ss_timer_stop(r->loop, &n->timer);
        if (n->ac) {
            n->reason = -ECANCELED;
            redisAsyncFree(n->ac);
        }
    }
    leave(r);
}
