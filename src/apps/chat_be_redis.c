/* chat_be_redis: the room's backend on Redis or Redis Cluster (issue 14):
 * several chat nodes as one service. See docs/chat.md ("Cluster") for the
 * design; the connection layer is chat_redis.c.
 *
 * Keys (ROOM is the room name; {ROOM} puts everything of the room in one
 * hash slot, so the scripts below touch one slot):
 *   chat:{ROOM}:hist          stream: public history (ts nick kind text),
 *                             XADD MAXLEN ~ SS_CHAT_HIST_STREAM_MAX
 *   chat:{ROOM}:users         hash lower-case nick -> nick as written
 *   chat:{ROOM}:seen          zset lower-case nick, score last seen (ms)
 *   chat:{ROOM}:acct          hash lower-case nick -> "ITER SALTHEX HASHHEX"
 *   chat:{ROOM}:meta          hash: topic
 *   chat:{ROOM}:nick:LOWER    the nick's owner: node id, SET NX PX lease,
 *                             refreshed by the owner's heartbeat
 *   chat:{ROOM}:online        hash lower-case nick -> "NODE nick"
 *   chat:{ROOM}:away          hash lower-case nick -> away text
 *   chat:{ROOM:LOWER}:off     stream: offline messages for one user (its
 *                             own slot: mailboxes spread over the shards)
 * Channels (SPUBLISH/SSUBSCRIBE on a cluster, the layer chooses):
 *   chat:{ROOM}:bus           "R EXCEPT LINE" / "P EXCEPT LINE": every node
 *                             hands LINE to its members but EXCEPT ("-")
 *   chat:{ROOM}:node:NODE     "D NICK LINE": one user on node NODE;
 *                             "Q NICK NODE2:SEQ TEXT": a request for the
 *                             user NICK, answered "A SEQ TEXT" on NODE2's
 *                             channel; "X - TEXT": room to room (the
 *                             steps of a /connect across nodes)
 */
#include <ctype.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apps/chat_backend.h"
#include "apps/chat_redis.h"
#include "sockstack/chat.h"

/* A room's key names (the room is at most 32 bytes), and any key. */
enum { RKEY_MAX = 80, KEY_MAX = 160 };

struct be_redis {
    ss__chat_be be;
    ss__rds *rds;
    ss_loop *loop;
    ss_timer hb;
    int lease_ms;
    char node[20];
    char k_hist[RKEY_MAX], k_users[RKEY_MAX], k_seen[RKEY_MAX], k_acct[RKEY_MAX];
    char k_meta[RKEY_MAX], k_online[RKEY_MAX], k_away[RKEY_MAX], k_nick[RKEY_MAX];
    char ch_bus[RKEY_MAX], ch_node[RKEY_MAX];
    char room[64];
    /* nicks this node holds (as written): the heartbeat refreshes them */
    char (*mine)[SS_CHAT_NICK_MAX + 1];
    size_t n_mine, cap_mine;
    bool hb_busy;
    /* requests waiting for another node's answer (at most SS_CHAT_ASK_MAX) */
    struct ask *asks;
    int n_asks;
    uint64_t ask_seq;
};

/* A request (ops->ask) in flight: sent, or waiting for the owner's name. */
struct ask {
    struct ask *next;
    struct be_redis *b;
    struct req *q;
    uint64_t seq;
    ss_timer timer;
    bool inflight; /* a command for it waits for its reply */
    bool over;     /* ended: freed when that reply comes */
};

/* One operation in flight. */
struct req {
    struct be_redis *b;
    ss__chat_done done;
    void *arg;
    struct ss__chat_res *res;
    void *row;      /* the operation's row callback */
    void *row_arg;
    int n;
    int64_t since, before;
    char nick[SS_CHAT_NICK_MAX + 1];
    size_t len;
    char data[];    /* a line for another node */
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct be_redis *be_of(ss__chat_be *be) { return (struct be_redis *)be; }

static void lower(const char *s, char *out, size_t cap)
{
    size_t i = 0;
    for (; s[i] && i + 1 < cap; i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    out[i] = '\0';
}

static void nick_key(const struct be_redis *b, const char *nick, char *out, size_t cap)
{
    char lo[SS_CHAT_NICK_MAX + 1];
    lower(nick, lo, sizeof lo);
    snprintf(out, cap, "%s%s", b->k_nick, lo);
}

static void off_key(const struct be_redis *b, const char *nick, char *out, size_t cap)
{
    char lo[SS_CHAT_NICK_MAX + 1];
    lower(nick, lo, sizeof lo);
    snprintf(out, cap, "chat:{%s:%s}:off", b->room, lo);
}

static struct req *req_new(struct be_redis *b, ss__chat_done done, void *arg,
                           struct ss__chat_res *res, size_t extra)
{
    struct req *q = calloc(1, sizeof *q + extra + 1);
    if (!q) {
        if (done)
            done(arg, -ENOMEM);
        return NULL;
    }
    q->b = b;
    q->done = done;
    q->arg = arg;
    q->res = res;
    return q;
}

static void req_end(struct req *q, int err)
{
    if (q->done)
        q->done(q->arg, err);
    free(q);
}

/* The room's code for a failed command: unreachable (-ENOTCONN) unless
 * the backend is closing; a Redis error reply is -EIO. */
static int reply_err(const redisReply *r, int err)
{
    if (err == -ECANCELED)
        return err;
    if (err < 0 || !r)
        return -ENOTCONN;
    return r->type == REDIS_REPLY_ERROR ? -EIO : 0;
}

/* An integer reply into *v, or the error. */
static int int_reply(const redisReply *r, int err, long long *v)
{
    int e = reply_err(r, err);
    if (!e && r->type != REDIS_REPLY_INTEGER)
        e = -EIO;
    if (!e)
        *v = r->integer;
    return e;
}

/* Send argv for q (routed by key); a refusal ends q at once. */
static void send_cmd(struct req *q, const char *key, ss__rds_cb cb, int argc,
                     const char **argv, const size_t *lens)
{
    int err = ss__rds_cmd(q->b->rds, key, cb, q, argc, argv, lens);
    if (err < 0)
        req_end(q, err == -EAGAIN || err == -ENOTCONN ? -ENOTCONN : err);
}

/* A reply that only has to be a success. */
static void on_ok(void *arg, const redisReply *r, int err)
{
    req_end(arg, reply_err(r, err));
}

static const char *str_of(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) ? r->str : "";
}

/* ---- users and accounts ------------------------------------------------- */

static const char lua_user_get[] =
    "return {redis.call('HGET', KEYS[1], ARGV[1]) or '',"
    " redis.call('HGET', KEYS[2], ARGV[1]) or '',"
    " redis.call('ZSCORE', KEYS[3], ARGV[1]) or ''}";

static int unhex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

static void on_user_get(void *arg, const redisReply *r, int err)
{
    struct req *q = arg;
    int e = reply_err(r, err);
    if (!e && (r->type != REDIS_REPLY_ARRAY || r->elements != 3))
        e = -EIO;
    if (!e) {
        struct ss__chat_user *u = &q->res->u;
        memset(u, 0, sizeof *u);
        u->exists = r->element[0]->len > 0;
        char salt[40], hash[72];
        int iter;
        if (sscanf(str_of(r->element[1]), "%d %39s %71s", &iter, salt, hash) == 3 &&
            strlen(salt) == 32 && strlen(hash) == 64 && !unhex(salt, u->salt, 16) &&
            !unhex(hash, u->hash, 32)) {
            u->registered = true;
            u->exists = true;
            u->iter = iter;
        }
        u->last_seen = strtoll(str_of(r->element[2]), NULL, 10);
    }
    req_end(q, e);
}

static void be_user_get(ss__chat_be *be, const char *nick, struct ss__chat_res *res,
                        ss__chat_done done, void *arg)
{
    struct be_redis *b = be_of(be);
    struct req *q = req_new(b, done, arg, res, 0);
    if (!q)
        return;
    char lo[SS_CHAT_NICK_MAX + 1];
    lower(nick, lo, sizeof lo);
    const char *argv[] = {"EVAL", lua_user_get, "3", b->k_users, b->k_acct, b->k_seen, lo};
    send_cmd(q, b->k_users, on_user_get, 7, argv, NULL);
}

static const char lua_touch[] =
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])"
    " redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1]) return 1";

static void be_user_touch(ss__chat_be *be, const char *nick, int64_t now,
                          ss__chat_done done, void *arg)
{
    struct be_redis *b = be_of(be);
    struct req *q = req_new(b, done, arg, NULL, 0);
    if (!q)
        return;
    char lo[SS_CHAT_NICK_MAX + 1], ts[24];
    lower(nick, lo, sizeof lo);
    snprintf(ts, sizeof ts, "%lld", (long long)now);
    const char *argv[] = {"EVAL", lua_touch, "2", b->k_users, b->k_seen, lo, nick, ts};
    send_cmd(q, b->k_users, on_ok, 8, argv, NULL);
}

static const char lua_register[] =
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])"
    " redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) return 1";

static void be_user_register(ss__chat_be *be, const char *nick, int iter,
                             const uint8_t salt[16], const uint8_t hash[32],
                             ss__chat_done done, void *arg)
{
    struct be_redis *b = be_of(be);
    struct req *q = req_new(b, done, arg, NULL, 0);
    if (!q)
        return;
    char lo[SS_CHAT_NICK_MAX + 1], rec[128];
    lower(nick, lo, sizeof lo);
    int n = snprintf(rec, sizeof rec, "%d ", iter);
    for (int i = 0; i < 16; i++)
        n += snprintf(rec + n, sizeof rec - (size_t)n, "%02x", salt[i]);
    rec[n++] = ' ';
    for (int i = 0; i < 32; i++)
        n += snprintf(rec + n, sizeof rec - (size_t)n, "%02x", hash[i]);
    const char *argv[] = {"EVAL", lua_register, "2", b->k_acct, b->k_users, lo, nick, rec};
    send_cmd(q, b->k_acct, on_ok, 8, argv, NULL);
}

/* /who: online users (with away text), then offline ones by last seen. */
static const char lua_who[] =
    "local out = {} local on = redis.call('HGETALL', KEYS[1]) local online = {}"
    " for i = 1, #on, 2 do online[on[i]] = true"
    "  local v = on[i + 1] local sp = string.find(v, ' ')"
    "  out[#out + 1] = 'N' out[#out + 1] = string.sub(v, sp + 1)"
    "  out[#out + 1] = redis.call('HGET', KEYS[2], on[i]) or '' end"
    " local max = tonumber(ARGV[1]) local listed = 0"
    " local seen = redis.call('ZREVRANGE', KEYS[3], 0, max + #on / 2 - 1, 'WITHSCORES')"
    " for i = 1, #seen, 2 do if not online[seen[i]] and listed < max then"
    "  listed = listed + 1 out[#out + 1] = 'F'"
    "  out[#out + 1] = redis.call('HGET', KEYS[4], seen[i]) or seen[i]"
    "  out[#out + 1] = seen[i + 1] end end"
    " return out";

typedef void (*who_row_fn)(void *arg, const char *nick, bool online, const char *away,
                           int64_t last_seen);

static void on_who(void *arg, const redisReply *r, int err)
{
    struct req *q = arg;
    int e = reply_err(r, err);
    if (!e && r->type != REDIS_REPLY_ARRAY)
        e = -EIO;
    for (size_t i = 0; !e && i + 3 <= r->elements; i += 3) {
        const char *kind = str_of(r->element[i]);
        const char *nick = str_of(r->element[i + 1]);
        const char *third = str_of(r->element[i + 2]);
        who_row_fn row = (who_row_fn)q->row;
        if (kind[0] == 'N')
            row(q->row_arg, nick, true, third[0] ? third : NULL, 0);
        else
            row(q->row_arg, nick, false, NULL, strtoll(third, NULL, 10));
        q->res->n++;
    }
    req_end(q, e);
}

static void who_call(struct be_redis *b, int max, who_row_fn row, void *row_arg,
                     struct ss__chat_res *res, ss__chat_done done, void *arg)
{
    struct req *q = req_new(b, done, arg, res, 0);
    if (!q)
        return;
    q->row = (void *)row;
    q->row_arg = row_arg;
    res->n = 0;
    char m[16];
    snprintf(m, sizeof m, "%d", max);
    const char *argv[] = {"EVAL", lua_who, "4", b->k_online, b->k_away, b->k_seen,
                          b->k_users, m};
    send_cmd(q, b->k_online, on_who, 8, argv, NULL);
}

static void be_who(ss__chat_be *be, int max, who_row_fn row, void *row_arg,
                   struct ss__chat_res *res, ss__chat_done done, void *arg)
{
    who_call(be_of(be), max, row, row_arg, res, done, arg);
}

/* users_list (the single-node /who) over the same script: offline rows. */
struct ul_ctx {
    ss__chat_user_cb cb;
    void *arg;
    ss__chat_done done;
    void *done_arg;
};

static void ul_row(void *arg, const char *nick, bool online, const char *away,
                   int64_t last_seen)
{
    struct ul_ctx *u = arg;
    if (!online)
        u->cb(u->arg, nick, last_seen);
}

static void ul_done(void *arg, int err)
{
    struct ul_ctx *u = arg;
    ss__chat_done done = u->done;
    void *done_arg = u->done_arg;
    free(u);
    if (done)
        done(done_arg, err);
}

static void be_users_list(ss__chat_be *be, int max, ss__chat_user_cb row, void *row_arg,
                          struct ss__chat_res *res, ss__chat_done done, void *arg)
{
    struct ul_ctx *u = calloc(1, sizeof *u);
    if (!u) {
        if (done)
            done(arg, -ENOMEM);
        return;
    }
    *u = (struct ul_ctx){.cb = row, .arg = row_arg, .done = done, .done_arg = arg};
    who_call(be_of(be), max, ul_row, u, res, ul_done, u);
}

/* ---- history -------------------------------------------------------------- */

static void on_id(void *arg, const redisReply *r, int err)
{
    struct req *q = arg;
    int e = reply_err(r, err);
    if (!e && r->type == REDIS_REPLY_NIL)
        e = -ENOSPC; /* off_add: the mailbox is full */
    else if (!e && r->type != REDIS_REPLY_STRING)
        e = -EIO;
    if (!e)
        snprintf(q->res->id, sizeof q->res->id, "%s", r->str);
    req_end(q, e);
}

static void be_hist_add(ss__chat_be *be, int64_t ts, const char *nick, int kind,
                        const char *text, struct ss__chat_res *res, ss__chat_done done,
                        void *arg)
{
    struct be_redis *b = be_of(be);
    struct req *q = req_new(b, done, arg, res, 0);
    if (!q)
        return;
    char t[24], k[8], cap[16];
    snprintf(t, sizeof t, "%lld", (long long)ts);
    snprintf(k, sizeof k, "%d", kind);
    snprintf(cap, sizeof cap, "%d", SS_CHAT_HIST_STREAM_MAX);
    const char *argv[] = {"XADD", b->k_hist, "MAXLEN", "~", cap, "*", "ts", t,
                          "nick", nick, "kind", k, "text", text};
    send_cmd(q, b->k_hist, on_id, 14, argv, NULL);
}

/* The value of field name in a stream entry's [f, v, f, v, ...]. */
static const char *field(const redisReply *fv, const char *name)
{
    if (!fv || fv->type != REDIS_REPLY_ARRAY)
        return "";
    for (size_t i = 0; i + 1 < fv->elements; i += 2)
        if (!strcmp(str_of(fv->element[i]), name))
            return str_of(fv->element[i + 1]);
    return "";
}

static void on_hist(void *arg, const redisReply *r, int err)
{
    struct req *q = arg;
    int e = reply_err(r, err);
    if (!e && r->type != REDIS_REPLY_ARRAY)
        e = -EIO;
    if (!e) {
        /* Newest first: pick the newest n that match, send oldest first. */
        size_t pick[SS_CHAT_HISTORY_MAX];
        size_t np = 0;
        for (size_t i = 0; i < r->elements && np < (size_t)q->n && np < SS_CHAT_HISTORY_MAX;
             i++) {
            const redisReply *ent = r->element[i];
            if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2)
                continue;
            int64_t ts = strtoll(field(ent->element[1], "ts"), NULL, 10);
            if ((q->since >= 0 && ts < q->since) || (q->before >= 0 && ts >= q->before))
                continue;
            pick[np++] = i;
        }
        ss__chat_hist_cb row = (ss__chat_hist_cb)q->row;
        for (size_t k = np; k-- > 0;) {
            const redisReply *fv = r->element[pick[k]]->element[1];
            row(q->row_arg, strtoll(field(fv, "ts"), NULL, 10), field(fv, "nick"),
                atoi(field(fv, "kind")), field(fv, "text"));
        }
        q->res->n = (int)np;
    }
    req_end(q, e);
}

static void be_hist_range(ss__chat_be *be, int n, int64_t since, int64_t before,
                          ss__chat_hist_cb row, void *row_arg, struct ss__chat_res *res,
                          ss__chat_done done, void *arg)
{
    struct be_redis *b = be_of(be);
    struct req *q = req_new(b, done, arg, res, 0);
    if (!q)
        return;
    q->row = (void *)row;
    q->row_arg = row_arg;
    q->n = n;
    q->since = since;
    q->before = before;
    res->n = 0;
    /* Filtering by time reads further back than n entries. */
    char count[16];
    snprintf(count, sizeof count, "%d",
             since >= 0 || before >= 0 ? SS_CHAT_HIST_SCAN : n);
    const char *argv[] = {"XREVRANGE", b->k_hist, "+", "-", "COUNT", count};
    send_cmd(q, b->k_hist, on_hist, 6, argv, NULL);
}

/* ---- settings --------------------------------------------------------------- */

static void on_meta(void *arg, const redisReply *r, int err)
{
    struct req *q = arg;
    int e = reply_err(r, err);
    if (!e) {
        q->res->found = r->type == REDIS_REPLY_STRING;
        if (q->res->found)
            snprintf(q->res->v, sizeof q->res->v, "%s", r->str);
    }
    req_end(q, e);
}

static void be_meta_get(ss__chat_be *be, const char *k, struct ss__chat_res *res,
                        ss__chat_done done, void *arg)
{
    struct be_redis *b = be_of(be);
    struct req *q = req_new(b, done, arg, res, 0);
    if (!q)
        return;
    const char *argv[] = {"HGET", b->k_meta, k};
    send_cmd(q, b->k_meta, on_meta, 3, argv, NULL);
}

static void be_meta_set(ss__chat_be *be, const char *k, const char *v, ss__chat_done done,
                        void *arg)
{
    struct be_redis *b = be_of(be);
    struct req *q = req_new(b, done, arg, NULL, 0);
    if (!q)
        return;
    const char *argv[] = {"HSET", b->k_meta, k, v};
    send_cmd(q, b->k_meta, on_ok, 4, argv, NULL);
}

/* ---- offline messages ---------------------------------------------------- */

static const char lua_off_add[] =
    "if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return false end"
    " return redis.call('XADD', KEYS[1], '*', 'ts', ARGV[2], 'from', ARGV[3],"
    " 'text', ARGV[4])";

static void be_off_add(ss__chat_be *be, int64_t ts, const char *from, const char *to,
                       const char *text, int max, struct ss__chat_res *res,
                       ss__chat_done done, void *arg)
{
    struct be_redis *b = be_of(be);
    struct req *q = req_new(b, done, arg, res, 0);
    if (!q)
        return;
    char key[KEY_MAX], m[16], t[24];
    off_key(b, to, key, sizeof key);
    snprintf(m, sizeof m, "%d", max);
    snprintf(t, sizeof t, "%lld", (long long)ts);
    const char *argv[] = {"EVAL", lua_off_add, "1", key, m, t, from, text};
    send_cmd(q, key, on_id, 8, argv, NULL);
}

static void on_off_page(void *arg, const redisReply *r, int err)
{
    struct req *q = arg;
    int e = reply_err(r, err);
    if (!e && r->type != REDIS_REPLY_ARRAY)
        e = -EIO;
    if (!e) {
        ss__chat_off_cb row = (ss__chat_off_cb)q->row;
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *ent = r->element[i];
            if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2)
                continue;
            const redisReply *fv = ent->element[1];
            row(q->row_arg, strtoll(field(fv, "ts"), NULL, 10), field(fv, "from"),
                field(fv, "text"));
            snprintf(q->res->last, sizeof q->res->last, "%s", str_of(ent->element[0]));
            q->res->n++;
        }
    }
    req_end(q, e);
}

static void be_off_page(ss__chat_be *be, const char *to, const char *after, int max,
                        ss__chat_off_cb row, void *row_arg, struct ss__chat_res *res,
                        ss__chat_done done, void *arg)
{
    struct be_redis *b = be_of(be);
    struct req *q = req_new(b, done, arg, res, 0);
    if (!q)
        return;
    q->row = (void *)row;
    q->row_arg = row_arg;
    res->n = 0;
    snprintf(res->last, sizeof res->last, "%s", after);
    char key[KEY_MAX], from[SS__CHAT_ID_MAX + 2], m[16];
    off_key(b, to, key, sizeof key);
    snprintf(from, sizeof from, "%s%s", after[0] ? "(" : "", after[0] ? after : "-");
    snprintf(m, sizeof m, "%d", max);
    const char *argv[] = {"XRANGE", key, from, "+", "COUNT", m};
    send_cmd(q, key, on_off_page, 6, argv, NULL);
}

/* Entries up to and including upto go: XTRIM MINID keeps ids >= the next. */
static void be_off_delete(ss__chat_be *be, const char *to, const char *upto,
                          ss__chat_done done, void *arg)
{
    struct be_redis *b = be_of(be);
    unsigned long long ms, seq;
    if (sscanf(upto, "%llu-%llu", &ms, &seq) != 2) {
        if (done)
            done(arg, -EINVAL);
        return;
    }
    struct req *q = req_new(b, done, arg, NULL, 0);
    if (!q)
        return;
    char key[KEY_MAX], min[48];
    off_key(b, to, key, sizeof key);
    snprintf(min, sizeof min, "%llu-%llu", ms, seq + 1);
    const char *argv[] = {"XTRIM", key, "MINID", min};
    send_cmd(q, key, on_ok, 4, argv, NULL);
}

static void on_forget_acct(void *arg, const redisReply *r, int err)
{
    struct req *q = arg;
    int e = reply_err(r, err);
    if (e || r->type != REDIS_REPLY_INTEGER || r->integer != 0) {
        req_end(q, e); /* registered (or unknown now): kept */
        return;
    }
    char key[KEY_MAX];
    off_key(q->b, q->nick, key, sizeof key);
    const char *argv[] = {"DEL", key};
    send_cmd(q, key, on_ok, 2, argv, NULL);
}

static void be_forget_unregistered(ss__chat_be *be, const char *nick, ss__chat_done done,
                                   void *arg)
{
    struct be_redis *b = be_of(be);
    struct req *q = req_new(b, done, arg, NULL, 0);
    if (!q)
        return;
    snprintf(q->nick, sizeof q->nick, "%s", nick);
    char lo[SS_CHAT_NICK_MAX + 1];
    lower(nick, lo, sizeof lo);
    const char *argv[] = {"HEXISTS", b->k_acct, lo};
    send_cmd(q, b->k_acct, on_forget_acct, 3, argv, NULL);
}

/* ---- nick ownership and presence ---------------------------------------- */

static void mine_add(struct be_redis *b, const char *nick)
{
    if (b->n_mine == b->cap_mine) {
        size_t cap = b->cap_mine ? b->cap_mine * 2 : 64;
        void *m = realloc(b->mine, cap * sizeof *b->mine);
        if (!m)
            return; /* not refreshed: the lease runs out, the user shows offline */
        b->mine = m;
        b->cap_mine = cap;
    }
    snprintf(b->mine[b->n_mine++], sizeof *b->mine, "%s", nick);
}

static void mine_del(struct be_redis *b, const char *nick)
{
    for (size_t i = 0; i < b->n_mine; i++)
        if (!strcasecmp(b->mine[i], nick)) {
            memcpy(b->mine[i], b->mine[--b->n_mine], sizeof *b->mine);
            return;
        }
}

/* SET NX PX: exactly one claim of a free nick wins. */
static const char lua_claim[] =
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then"
    "  redis.call('HSET', KEYS[2], ARGV[3], ARGV[1] .. ' ' .. ARGV[4])"
    "  return redis.call('HLEN', KEYS[2]) end"
    " return -1";

static void on_claim(void *arg, const redisReply *r, int err)
{
    struct req *q = arg;
    long long n = 0;
    int e = int_reply(r, err, &n);
    if (!e && n < 0)
        e = -EEXIST;
    if (!e) {
        q->res->n = (int)n;
        mine_add(q->b, q->nick);
    }
    req_end(q, e);
}

static void be_claim(ss__chat_be *be, const char *nick, struct ss__chat_res *res,
                     ss__chat_done done, void *arg)
{
    struct be_redis *b = be_of(be);
    struct req *q = req_new(b, done, arg, res, 0);
    if (!q)
        return;
    snprintf(q->nick, sizeof q->nick, "%s", nick);
    char key[KEY_MAX], lease[16], lo[SS_CHAT_NICK_MAX + 1];
    nick_key(b, nick, key, sizeof key);
    lower(nick, lo, sizeof lo);
    snprintf(lease, sizeof lease, "%d", b->lease_ms);
    const char *argv[] = {"EVAL", lua_claim, "2", key, b->k_online, b->node, lease, lo, nick};
    send_cmd(q, key, on_claim, 9, argv, NULL);
}

static const char lua_release[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end"
    " local v = redis.call('HGET', KEYS[2], ARGV[2])"
    " if v and string.sub(v, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then"
    "  redis.call('HDEL', KEYS[2], ARGV[2]) redis.call('HDEL', KEYS[3], ARGV[2]) end"
    " return redis.call('HLEN', KEYS[2])";

static void on_count(void *arg, const redisReply *r, int err)
{
    struct req *q = arg;
    long long n = 0;
    int e = int_reply(r, err, &n);
    if (!e && q->res)
        q->res->n = (int)n;
    req_end(q, e);
}

static void be_release(ss__chat_be *be, const char *nick, struct ss__chat_res *res,
                       ss__chat_done done, void *arg)
{
    struct be_redis *b = be_of(be);
    mine_del(b, nick);
    struct req *q = req_new(b, done, arg, res, 0);
    if (!q)
        return;
    char key[KEY_MAX], lo[SS_CHAT_NICK_MAX + 1];
    nick_key(b, nick, key, sizeof key);
    lower(nick, lo, sizeof lo);
    const char *argv[] = {"EVAL", lua_release, "3", key, b->k_online, b->k_away, b->node, lo};
    send_cmd(q, key, on_count, 8, argv, NULL);
}

static void be_set_away(ss__chat_be *be, const char *nick, const char *text,
                        ss__chat_done done, void *arg)
{
    struct be_redis *b = be_of(be);
    struct req *q = req_new(b, done, arg, NULL, 0);
    if (!q)
        return;
    char lo[SS_CHAT_NICK_MAX + 1];
    lower(nick, lo, sizeof lo);
    const char *argv[] = {text ? "HSET" : "HDEL", b->k_away, lo, text};
    send_cmd(q, b->k_away, on_ok, text ? 4 : 3, argv, NULL);
}

/* ---- fan-out --------------------------------------------------------------- */

static void on_published(void *arg, const redisReply *r, int err)
{
    struct req *q = arg;
    long long n = 0;
    int e = int_reply(r, err, &n);
    if (!e && q->res)
        q->res->found = n > 0;
    req_end(q, e);
}

static void publish(struct req *q, const char *channel, char kind, const char *who,
                    const char *line, size_t len)
{
    size_t hl = strlen(who) + 3;
    char *msg = malloc(hl + len + 1);
    if (!msg) {
        req_end(q, -ENOMEM);
        return;
    }
    snprintf(msg, hl + 1, "%c %s ", kind, who);
    memcpy(msg + hl, line, len);
    int err = ss__rds_publish(q->b->rds, channel, msg, hl + len, on_published, q);
    free(msg);
    if (err < 0)
        req_end(q, err == -EAGAIN || err == -ENOTCONN ? -ENOTCONN : err);
}

static void be_bcast(ss__chat_be *be, const char *except, bool presence, const char *line,
                     size_t len, ss__chat_done done, void *arg)
{
    struct be_redis *b = be_of(be);
    struct req *q = req_new(b, done, arg, NULL, 0);
    if (q)
        publish(q, b->ch_bus, presence ? 'P' : 'R', except[0] ? except : "-", line, len);
}

/* The owner's node, then a line on its channel. */
static void on_owner(void *arg, const redisReply *r, int err)
{
    struct req *q = arg;
    int e = reply_err(r, err);
    if (e || r->type != REDIS_REPLY_STRING) {
        req_end(q, e); /* nobody holds the nick: found stays false */
        return;
    }
    char ch[KEY_MAX + 32];
    snprintf(ch, sizeof ch, "chat:{%s}:node:%.*s", q->b->room, (int)r->len, r->str);
    publish(q, ch, 'D', q->nick, q->data, q->len);
}

static void be_direct(ss__chat_be *be, const char *nick, const char *line, size_t len,
                      struct ss__chat_res *res, ss__chat_done done, void *arg)
{
    struct be_redis *b = be_of(be);
    struct req *q = req_new(b, done, arg, res, len);
    if (!q)
        return;
    res->found = false;
    snprintf(q->nick, sizeof q->nick, "%s", nick);
    memcpy(q->data, line, len);
    q->len = len;
    char key[KEY_MAX];
    nick_key(b, nick, key, sizeof key);
    const char *argv[] = {"GET", key};
    send_cmd(q, key, on_owner, 2, argv, NULL);
}

static void ask_answered(struct be_redis *b, const char *seq_s, const char *text, size_t len);

static void on_bus(void *arg, const char *channel, const char *data, size_t len)
{
    struct be_redis *b = arg;
    /* "K WHO LINE" */
    if (len < 5 || data[1] != ' ' || !b->be.room)
        return;
    const char *who = data + 2, *sp = memchr(who, ' ', len - 2);
    if (!sp || (size_t)(sp - who) > SS_CHAT_NICK_MAX)
        return;
    char nick[SS_CHAT_NICK_MAX + 1];
    memcpy(nick, who, (size_t)(sp - who));
    nick[sp - who] = '\0';
    if (!strcmp(nick, "-"))
        nick[0] = '\0';
    const char *line = sp + 1;
    size_t n = len - (size_t)(line - data);
    if (data[0] == 'A') {
        ask_answered(b, nick, line, n);
        return;
    }
    if (data[0] == 'Q' || data[0] == 'X') {
        /* "TOKEN TEXT" (Q) or "TEXT" (X): text for the room, NUL-ended */
        char text[1024];
        if (n >= sizeof text)
            return;
        memcpy(text, line, n);
        text[n] = '\0';
        if (data[0] == 'X') {
            ss__chat_room_node(b->be.room, text, wall_ms());
            return;
        }
        char *sp2 = strchr(text, ' ');
        if (!sp2)
            return;
        *sp2 = '\0';
        ss__chat_room_ask(b->be.room, nick, text, sp2 + 1, wall_ms());
        return;
    }
    ss__chat_room_bus(b->be.room, data[0], nick, line, n);
}

/* ---- requests between nodes (a /connect across nodes) ------------------- */

static const char *be_node_id(ss__chat_be *be) { return be_of(be)->node; }

/* End a's request with err (res->v holds the answer), once. a is freed
 * now, or by the callback of the command still in flight for it. */
static void ask_end(struct ask *a, int err)
{
    if (a->over)
        return;
    a->over = true;
    struct be_redis *b = a->b;
    for (struct ask **pp = &b->asks; *pp; pp = &(*pp)->next)
        if (*pp == a) {
            *pp = a->next;
            break;
        }
    b->n_asks--;
    ss_timer_stop(b->loop, &a->timer);
    struct req *q = a->q;
    a->q = NULL;
    if (!a->inflight)
        free(a);
    req_end(q, err);
}

static void ask_timeout(ss_loop *loop, ss_timer *t, void *arg) { ask_end(arg, -ETIMEDOUT); }

static struct ask *ask_find(struct be_redis *b, uint64_t seq)
{
    for (struct ask *a = b->asks; a; a = a->next)
        if (a->seq == seq)
            return a;
    return NULL;
}

/* The reply to a's command came: false when a is over (and now freed). */
static bool ask_landed(struct ask *a)
{
    a->inflight = false;
    if (a->over) {
        free(a);
        return false;
    }
    return true;
}

static void on_ask_published(void *arg, const redisReply *r, int err)
{
    struct ask *a = arg;
    if (!ask_landed(a))
        return;
    long long n = 0;
    int e = int_reply(r, err, &n);
    if (e || n == 0) /* failed, or no node listens: over (found false) */
        ask_end(a, e);
    /* else: the answer (or the timer) ends it */
}

/* Publish a's request on node's channel. */
static void ask_send(struct ask *a, const char *node, size_t node_len)
{
    struct req *q = a->q;
    char ch[KEY_MAX + 32];
    snprintf(ch, sizeof ch, "chat:{%s}:node:%.*s", a->b->room, (int)node_len, node);
    size_t cap = q->len + 128;
    char *msg = malloc(cap);
    if (!msg) {
        ask_end(a, -ENOMEM);
        return;
    }
    int n = snprintf(msg, cap, "Q %s %s:%llu ", q->nick[0] ? q->nick : "-", a->b->node,
                     (unsigned long long)a->seq);
    memcpy(msg + n, q->data, q->len);
    a->inflight = true;
    int e = ss__rds_publish(a->b->rds, ch, msg, (size_t)n + q->len, on_ask_published, a);
    free(msg);
    if (e < 0) {
        a->inflight = false;
        ask_end(a, e == -EAGAIN || e == -ENOTCONN ? -ENOTCONN : e);
    }
}

static void on_ask_owner(void *arg, const redisReply *r, int err)
{
    struct ask *a = arg;
    if (!ask_landed(a))
        return;
    int e = reply_err(r, err);
    if (e || r->type != REDIS_REPLY_STRING) {
        ask_end(a, e); /* nobody holds the nick */
        return;
    }
    ask_send(a, r->str, r->len);
}

static void be_ask(ss__chat_be *be, const char *node, const char *nick, const char *text,
                   struct ss__chat_res *res, ss__chat_done done, void *arg)
{
    struct be_redis *b = be_of(be);
    res->found = false;
    res->v[0] = '\0';
    if (res->buf && res->buf_cap)
        res->buf[0] = '\0';
    if (b->n_asks >= SS_CHAT_ASK_MAX) {
        if (done)
            done(arg, -EAGAIN);
        return;
    }
    size_t len = strlen(text);
    struct req *q = req_new(b, done, arg, res, len);
    if (!q)
        return;
    struct ask *a = calloc(1, sizeof *a);
    if (!a) {
        req_end(q, -ENOMEM);
        return;
    }
    snprintf(q->nick, sizeof q->nick, "%s", nick ? nick : "");
    memcpy(q->data, text, len);
    q->len = len;
    *a = (struct ask){.next = b->asks, .b = b, .q = q, .seq = ++b->ask_seq};
    b->asks = a;
    b->n_asks++;
    ss_timer_init(&a->timer, ask_timeout, a);
    ss_timer_start(b->loop, &a->timer, SS_CHAT_ASK_TIMEOUT_MS);
    if (node) {
        ask_send(a, node, strlen(node));
        return;
    }
    char key[KEY_MAX];
    nick_key(b, nick, key, sizeof key);
    const char *argv[] = {"GET", key};
    a->inflight = true;
    int err = ss__rds_cmd(b->rds, key, on_ask_owner, a, 2, argv, NULL);
    if (err < 0) {
        a->inflight = false;
        ask_end(a, err == -EAGAIN || err == -ENOTCONN ? -ENOTCONN : err);
    }
}

/* "A SEQ TEXT" came back: the answer to our request SEQ. */
static void ask_answered(struct be_redis *b, const char *seq_s, const char *text, size_t len)
{
    char *end;
    unsigned long long seq = strtoull(seq_s, &end, 10);
    struct ask *a = *end ? NULL : ask_find(b, seq);
    if (!a) /* timed out already */
        return;
    struct ss__chat_res *res = a->q->res;
    res->found = true;
    char *out = res->buf ? res->buf : res->v;
    size_t cap = res->buf ? res->buf_cap : sizeof res->v;
    if (len >= cap) {
        ask_end(a, -EMSGSIZE);
        return;
    }
    memcpy(out, text, len);
    out[len] = '\0';
    ask_end(a, 0);
}

/* A one-way publish on node's channel: "K WHO TEXT". */
static void node_publish(struct be_redis *b, const char *node, char kind, const char *who,
                         const char *text, struct req *q)
{
    char ch[KEY_MAX + 32];
    snprintf(ch, sizeof ch, "chat:{%s}:node:%s", b->room, node);
    publish(q, ch, kind, who, text, strlen(text));
}

static void be_answer(ss__chat_be *be, const char *token, const char *text)
{
    struct be_redis *b = be_of(be);
    const char *colon = strchr(token, ':');
    if (!colon || colon == token || (size_t)(colon - token) >= sizeof b->node)
        return;
    char node[sizeof b->node];
    memcpy(node, token, (size_t)(colon - token));
    node[colon - token] = '\0';
    struct req *q = req_new(b, NULL, NULL, NULL, 0);
    if (q) /* lost with Redis: the asker times out */
        node_publish(b, node, 'A', colon + 1, text, q);
}

static void be_to_node(ss__chat_be *be, const char *node, const char *text,
                       struct ss__chat_res *res, ss__chat_done done, void *arg)
{
    struct be_redis *b = be_of(be);
    if (res)
        res->found = false;
    struct req *q = req_new(b, done, arg, res, 0);
    if (q)
        node_publish(b, node, 'X', "-", text, q);
}

/* ---- the heartbeat: leases of our nicks, and the users of dead nodes ------ */

/* Refresh our leases (taken again if one ran out while Redis was away). */
static const char lua_refresh[] =
    "local lost = 0"
    " for i = 2, #KEYS do local v = redis.call('GET', KEYS[i])"
    "  if v == ARGV[1] then redis.call('PEXPIRE', KEYS[i], ARGV[2])"
    "  elseif not v then redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])"
    "   redis.call('HSET', KEYS[1], string.lower(ARGV[i + 1]), ARGV[1] .. ' ' .. ARGV[i + 1])"
    "  else lost = lost + 1 end end"
    " return lost";

/* Users whose lease ran out (their node died): gone from the online list,
 * last seen now; returned as {online after, nick, nick, ...}. One node
 * removes each, so each LEAVE is announced once. */
static const char lua_reap[] =
    "local all = redis.call('HGETALL', KEYS[1]) local gone = {}"
    " for i = 1, #all, 2 do"
    "  if redis.call('EXISTS', ARGV[1] .. all[i]) == 0 then"
    "   redis.call('HDEL', KEYS[1], all[i]) redis.call('HDEL', KEYS[2], all[i])"
    "   redis.call('ZADD', KEYS[3], ARGV[2], all[i])"
    "   local v = all[i + 1] local sp = string.find(v, ' ')"
    "   gone[#gone + 1] = string.sub(v, sp + 1) end end"
    " if #gone == 0 then return {} end"
    " table.insert(gone, 1, redis.call('HLEN', KEYS[1])) return gone";

static void hb_arm(struct be_redis *b)
{
    ss_timer_start(b->loop, &b->hb, (uint64_t)(b->lease_ms / 3 > 50 ? b->lease_ms / 3 : 50));
}

static void on_reap(void *arg, const redisReply *r, int err)
{
    struct be_redis *b = arg;
    b->hb_busy = false;
    if (err == -ECANCELED)
        return;
    if (!err && r && r->type == REDIS_REPLY_ARRAY && r->elements >= 2 && b->be.room) {
        int online = (int)r->element[0]->integer;
        int64_t now = wall_ms();
        for (size_t i = 1; i < r->elements; i++)
            ss__chat_room_reaped(b->be.room, str_of(r->element[i]), online, now);
    }
    hb_arm(b);
}

static void reap(struct be_redis *b)
{
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)wall_ms());
    const char *argv[] = {"EVAL", lua_reap, "3", b->k_online, b->k_away, b->k_seen,
                          b->k_nick, now};
    if (ss__rds_cmd(b->rds, b->k_online, on_reap, b, 8, argv, NULL) < 0) {
        b->hb_busy = false;
        hb_arm(b);
    }
}

static void on_refresh(void *arg, const redisReply *r, int err)
{
    struct be_redis *b = arg;
    if (err == -ECANCELED) {
        b->hb_busy = false;
        return;
    }
    reap(b);
}

static void heartbeat(ss_loop *loop, ss_timer *t, void *arg)
{
    struct be_redis *b = arg;
    if (b->hb_busy)
        return;
    b->hb_busy = true;
    if (b->n_mine == 0) {
        reap(b);
        return;
    }
    /* One script for every nick we hold (one slot: the room's tag). */
    size_t n = b->n_mine;
    int argc = (int)(6 + 2 * n);
    const char **argv = calloc((size_t)argc, sizeof *argv);
    char (*keys)[KEY_MAX] = calloc(n, sizeof *keys);
    char nk[16], lease[16];
    if (!argv || !keys) {
        free(argv);
        free(keys);
        reap(b);
        return;
    }
    snprintf(nk, sizeof nk, "%zu", n + 1);
    snprintf(lease, sizeof lease, "%d", b->lease_ms);
    argv[0] = "EVAL";
    argv[1] = lua_refresh;
    argv[2] = nk;
    argv[3] = b->k_online;
    for (size_t i = 0; i < n; i++) {
        nick_key(b, b->mine[i], keys[i], sizeof keys[i]);
        argv[4 + i] = keys[i];
        argv[4 + n + 2 + i] = b->mine[i];
    }
    argv[4 + n] = b->node;
    argv[5 + n] = lease;
    if (ss__rds_cmd(b->rds, b->k_online, on_refresh, b, argc, argv, NULL) < 0)
        reap(b);
    free(argv);
    free(keys);
}

static void on_state(void *arg, bool up)
{
    struct be_redis *b = arg;
    if (b->be.room)
        ss__chat_room_state(b->be.room, up);
}

/* ---- open and close ------------------------------------------------------ */

static void be_close(ss__chat_be *be)
{
    struct be_redis *b = be_of(be);
    ss_timer_stop(b->loop, &b->hb);
    b->be.room = NULL; /* nothing reaches the room while it closes */
    while (b->asks) /* their publish (if any) ends with -ECANCELED below */
        ask_end(b->asks, -ECANCELED);
    ss__rds_close(b->rds);
    free(b->mine);
    free(b);
}

static const struct ss__chat_be_ops redis_ops = {
    .close = be_close,
    .user_get = be_user_get,
    .user_touch = be_user_touch,
    .user_register = be_user_register,
    .users_list = be_users_list,
    .hist_add = be_hist_add,
    .hist_range = be_hist_range,
    .meta_get = be_meta_get,
    .meta_set = be_meta_set,
    .off_add = be_off_add,
    .off_page = be_off_page,
    .off_delete = be_off_delete,
    .forget_unregistered = be_forget_unregistered,
    .claim = be_claim,
    .release = be_release,
    .direct = be_direct,
    .bcast = be_bcast,
    .who = be_who,
    .set_away = be_set_away,
    .node_id = be_node_id,
    .ask = be_ask,
    .answer = be_answer,
    .to_node = be_to_node,
};

int ss__chat_be_redis_new(ss_loop *loop, const char *spec, const char *room, int lease_ms,
                          ss__chat_be **out)
{
    *out = NULL;
    if (!room || !*room || strlen(room) > 32 || strpbrk(room, "{} ") || lease_ms < 100)
        return -EINVAL;
    struct be_redis *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    b->be.ops = &redis_ops;
    b->loop = loop;
    b->lease_ms = lease_ms;
    snprintf(b->room, sizeof b->room, "%s", room);
    uint8_t id[8];
    if (RAND_bytes(id, sizeof id) != 1) {
        free(b);
        return -EIO;
    }
    for (int i = 0; i < 8; i++)
        snprintf(b->node + 2 * i, 3, "%02x", id[i]);
#define K(f, suffix) snprintf(b->f, sizeof b->f, "chat:{%s}:" suffix, room)
    K(k_hist, "hist");
    K(k_users, "users");
    K(k_seen, "seen");
    K(k_acct, "acct");
    K(k_meta, "meta");
    K(k_online, "online");
    K(k_away, "away");
    K(k_nick, "nick:");
    K(ch_bus, "bus");
#undef K
    snprintf(b->ch_node, sizeof b->ch_node, "chat:{%s}:node:%s", room, b->node);
    struct ss__rds_cfg cfg = {.spec = spec, .on_state = on_state, .arg = b};
    int err = ss__rds_open(loop, &cfg, &b->rds);
    if (!err)
        err = ss__rds_subscribe(b->rds, b->ch_bus, on_bus, b);
    if (!err)
        err = ss__rds_subscribe(b->rds, b->ch_node, on_bus, b);
    if (err) {
        ss__rds_close(b->rds);
        free(b);
        return err;
    }
    ss_timer_init(&b->hb, heartbeat, b);
    hb_arm(b);
    *out = &b->be;
    return 0;
}
