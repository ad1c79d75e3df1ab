/* The chat's Redis layer (src/apps/chat_redis.c) against real redis-server
 * processes started by the harness: one server, then a Redis Cluster of 3
 * masters. Callbacks are counted: each must run exactly once. */
#include "apps/chat_redis.h"
#include "redis_harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sockstack/config.h"
#include "sockstack/reactor.h"

/* ---- fixture ------------------------------------------------------------ */

static struct th_redis srv = {.pid = -1};
static struct th_redis_cluster cl;
static ss_loop *loop;
static ss__rds *rds;
static bool states[32];
static int nstates;

static void on_state(void *arg, bool up)
{
    if (nstates < 32)
        states[nstates++] = up;
}

static void fini(void)
{
    ss__rds_close(rds);
    rds = NULL;
    if (loop)
        ss_loop_free(loop);
    loop = NULL;
    th_redis_cleanup(&srv);
    th_redis_cluster_cleanup(&cl);
}

/* Run the loop until *flag, or give up after ms (a bound, not a timing). */
static bool run_until(const bool *flag, int ms)
{
    uint64_t end = ss_loop_now(loop) + (uint64_t)ms;
    while (!*flag && ss_loop_now(loop) < end)
        ss_loop_run_once(loop, 20);
    return *flag;
}

static bool is_up;
static bool run_until_up(int ms)
{
    uint64_t end = ss_loop_now(loop) + (uint64_t)ms;
    while (!ss__rds_up(rds) && ss_loop_now(loop) < end)
        ss_loop_run_once(loop, 20);
    is_up = ss__rds_up(rds);
    return is_up;
}

static bool run_until_down(int ms)
{
    uint64_t end = ss_loop_now(loop) + (uint64_t)ms;
    while (ss__rds_up(rds) && ss_loop_now(loop) < end)
        ss_loop_run_once(loop, 20);
    return !ss__rds_up(rds);
}

/* Let deferred tasks (the state callback) run. */
static void drain(void)
{
    for (int i = 0; i < 3; i++)
        ss_loop_run_once(loop, 0);
}

static void open_spec(const char *spec, int timeout_ms, int max_pending)
{
    cr_assert_eq(ss_loop_new(&loop), 0);
    struct ss__rds_cfg cfg = {.spec = spec, .timeout_ms = timeout_ms,
                              .backoff_max_ms = 200, .max_pending = max_pending,
                              .on_state = on_state};
    cr_assert_eq(ss__rds_open(loop, &cfg, &rds), 0);
}

static void open_single(int timeout_ms, int max_pending)
{
    th_redis_require();
    cr_assert_eq(th_redis_start(&srv, false), 0);
    char spec[64];
    open_spec(th_redis_spec(&srv, spec, sizeof spec), timeout_ms, max_pending);
    cr_assert(run_until_up(10000), "not up");
    drain();
    cr_assert_eq(nstates, 1);
    cr_assert_eq(states[0], true);
    cr_assert_eq(ss__rds_is_cluster(rds), false);
}

static int ndone; /* callbacks run, all commands together */

/* One command's outcome; calls counts how often its callback ran. */
struct res {
    int calls, err, type;
    long long integer;
    char str[1024];
    size_t len;
    bool done;
};


static void on_res(void *arg, const redisReply *rep, int err)
{
    struct res *s = arg;
    ndone++;
    s->calls++;
    s->done = true;
    s->err = err;
    if (!rep)
        return;
    s->type = rep->type;
    s->integer = rep->integer;
    if (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_STATUS ||
        rep->type == REDIS_REPLY_ERROR) {
        s->len = rep->len < sizeof s->str ? rep->len : sizeof s->str;
        memcpy(s->str, rep->str, s->len);
    }
}

static int cmd(const char *key, struct res *s, int argc, const char **argv,
               const size_t *lens)
{
    *s = (struct res){0};
    return ss__rds_cmd(rds, key, on_res, s, argc, argv, lens);
}

/* Run the loop until ndone reaches n (bounded). */
static bool run_until_done(int n, int ms)
{
    uint64_t end = ss_loop_now(loop) + (uint64_t)ms;
    while (ndone < n && ss_loop_now(loop) < end)
        ss_loop_run_once(loop, 20);
    return ndone == n;
}

/* Issue one command and wait for its reply. */
static struct res sync_cmd(const char *key, int argc, const char **argv,
                           const size_t *lens)
{
    struct res s;
    int rc = cmd(key, &s, argc, argv, lens);
    cr_assert_eq(rc, 0, "cmd %s: %d", argv[0], rc);
    cr_assert(run_until(&s.done, 10000), "no reply to %s", argv[0]);
    cr_assert_eq(s.calls, 1);
    return s;
}

/* ---- pure parts ---------------------------------------------------------- */

Test(rds, hash_slots)
{
    /* The spec's own example value, and Redis's answers (CLUSTER KEYSLOT). */
    cr_assert_eq(ss__rds_slot("123456789", 9), 12739);
    cr_assert_eq(ss__rds_slot("somekey", 7), 11058);
    cr_assert_eq(ss__rds_slot("{user1000}.following", 20), ss__rds_slot("user1000", 8));
    cr_assert_eq(ss__rds_slot("{user1000}.followers", 20), ss__rds_slot("user1000", 8));
    /* "{}" hashes the whole key; only the first '{' counts. */
    cr_assert_neq(ss__rds_slot("foo{}{bar}", 10), ss__rds_slot("bar", 3));
    cr_assert_eq(ss__rds_slot("foo{{bar}}zap", 13), ss__rds_slot("{bar", 4));
    cr_assert_eq(ss__rds_slot("foo{bar}{zap}", 13), ss__rds_slot("bar", 3));
    cr_assert_eq(ss__rds_slot("", 0), 0);
}

Test(rds, bad_specs)
{
    cr_assert_eq(ss_loop_new(&loop), 0);
    const char *bad[] = {"", "redis://", "redis://host", "redis://:6379", "redis://h:0",
                         "redis://h:65536", "redis://h:12x", "redis://h:1,,h:2",
                         "redis://[::1]6379", NULL};
    for (int i = 0; bad[i]; i++) {
        struct ss__rds_cfg cfg = {.spec = bad[i]};
        ss__rds *r = NULL;
        cr_assert_eq(ss__rds_open(loop, &cfg, &r), -EINVAL, "%s", bad[i]);
        cr_assert_null(r);
    }
    char many[2048] = "redis://";
    for (int i = 0; i < SS_RDS_MAX_NODES + 1; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%s127.0.0.1:%d",
                 i ? "," : "", 1000 + i);
    struct ss__rds_cfg cfg = {.spec = many};
    cr_assert_eq(ss__rds_open(loop, &cfg, &rds), -E2BIG);
    ss_loop_free(loop);
    loop = NULL;
}

/* ---- one server ------------------------------------------------------------ */

Test(rds, binary_round_trip, .fini = fini, .timeout = 60)
{
    open_single(5000, 0);
    char val[256 + 3];
    for (int i = 0; i < 256; i++)
        val[i] = (char)i;
    memcpy(val + 256, "\r\n\0", 3);
    const char key[] = "bin\0key\r\n";
    const char *set[] = {"SET", key, val};
    size_t setl[] = {3, sizeof key - 1, sizeof val};
    struct res s = sync_cmd("binkey", 3, set, setl);
    cr_assert_eq(s.err, 0);
    cr_assert_eq(s.type, REDIS_REPLY_STATUS);
    cr_assert_eq(s.len, 2);
    cr_assert_eq(memcmp(s.str, "OK", 2), 0);
    const char *get[] = {"GET", key};
    size_t getl[] = {3, sizeof key - 1};
    s = sync_cmd("binkey", 2, get, getl);
    cr_assert_eq(s.type, REDIS_REPLY_STRING);
    cr_assert_eq(s.len, sizeof val);
    cr_assert_eq(memcmp(s.str, val, sizeof val), 0);
    /* An error reply is a reply: err 0, type ERROR, Redis's text. */
    const char *bad[] = {"NOSUCHCOMMAND"};
    s = sync_cmd(NULL, 1, bad, NULL);
    cr_assert_eq(s.err, 0);
    cr_assert_eq(s.type, REDIS_REPLY_ERROR);
    cr_assert_eq(strncmp(s.str, "ERR unknown command", 19), 0);
    cr_assert_eq(ss__rds_pending(rds), 0);
    cr_assert_eq(ss__rds_cmd(rds, NULL, on_res, &s, 0, get, NULL), -EINVAL);
    const char *hole[] = {"GET", NULL};
    cr_assert_eq(ss__rds_cmd(rds, NULL, on_res, &s, 2, hole, NULL), -EINVAL);
    cr_assert_eq(ss__rds_pending(rds), 0);
}

/* BLPOP on an empty list holds the connection: everything after it waits
 * in the server, so the kill finds exactly these commands pending. */
static void block_connection(struct res *blk)
{
    const char *blpop[] = {"BLPOP", "nolist", "0"};
    cr_assert_eq(cmd("nolist", blk, 3, blpop, NULL), 0);
}

Test(rds, pending_get_error_once_on_sigkill, .fini = fini, .timeout = 60)
{
    open_single(30000, 0);
    struct res blk, r[10];
    block_connection(&blk);
    const char *ping[] = {"PING"};
    for (int i = 0; i < 10; i++)
        cr_assert_eq(cmd(NULL, &r[i], 1, ping, NULL), 0);
    cr_assert_eq(ss__rds_pending(rds), 11);
    /* Let the commands reach the server, then crash it. */
    for (int i = 0; i < 5; i++)
        ss_loop_run_once(loop, 20);
    cr_assert_eq(blk.calls, 0);
    th_redis_stop(&srv, SIGKILL);
    cr_assert(run_until(&r[9].done, 10000));
    drain();
    cr_assert_eq(blk.calls, 1);
    cr_assert_eq(blk.err, -ECONNRESET);
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(r[i].calls, 1, "cmd %d: %d calls", i, r[i].calls);
        cr_assert_eq(r[i].err, -ECONNRESET, "cmd %d: %d", i, r[i].err);
    }
    cr_assert_eq(ss__rds_pending(rds), 0);
    cr_assert_eq(ss__rds_up(rds), false);
    /* Down: refused at once, no callback. */
    struct res x;
    cr_assert_eq(cmd(NULL, &x, 1, ping, NULL), -ENOTCONN);
    for (int i = 0; i < 10; i++)
        ss_loop_run_once(loop, 10);
    cr_assert_eq(x.calls, 0);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(r[i].calls, 1);
    cr_assert_eq(nstates, 2);
    cr_assert_eq(states[1], false);
}

Test(rds, reconnect_after_restart_states_exact, .fini = fini, .timeout = 90)
{
    open_single(5000, 0);
    const char *set[] = {"SET", "kept", "across-crash"};
    struct res s = sync_cmd("kept", 3, set, NULL);
    cr_assert_eq(s.type, REDIS_REPLY_STATUS);
    for (int round = 0; round < 2; round++) {
        th_redis_stop(&srv, SIGKILL);
        cr_assert(run_until_down(10000));
        /* Several backoff periods pass while the server is away. */
        for (int i = 0; i < 20; i++)
            ss_loop_run_once(loop, 20);
        cr_assert_eq(ss__rds_up(rds), false);
        cr_assert_eq(th_redis_restart(&srv), 0);
        cr_assert(run_until_up(10000), "round %d: not up again", round);
        drain();
    }
    bool want[] = {true, false, true, false, true};
    cr_assert_eq(nstates, 5, "%d state changes", nstates);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(states[i], want[i], "state %d", i);
    /* The acknowledged write survived the SIGKILLs (appendonly yes). */
    const char *get[] = {"GET", "kept"};
    s = sync_cmd("kept", 2, get, NULL);
    cr_assert_eq(s.len, 12);
    cr_assert_eq(memcmp(s.str, "across-crash", 12), 0);
}

Test(rds, pending_bound_exact, .fini = fini, .timeout = 60)
{
    open_single(5000, 8);
    struct res r[9];
    const char *ping[] = {"PING"};
    for (int i = 0; i < 8; i++)
        cr_assert_eq(cmd(NULL, &r[i], 1, ping, NULL), 0, "cmd %d", i);
    cr_assert_eq(ss__rds_pending(rds), 8);
    cr_assert_eq(cmd(NULL, &r[8], 1, ping, NULL), -EAGAIN);
    cr_assert(run_until(&r[7].done, 10000));
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].err, 0);
        cr_assert_eq(r[i].len, 4);
        cr_assert_eq(memcmp(r[i].str, "PONG", 4), 0);
    }
    cr_assert_eq(r[8].calls, 0);
    cr_assert_eq(ss__rds_pending(rds), 0);
    cr_assert_eq(cmd(NULL, &r[8], 1, ping, NULL), 0);
}

Test(rds, close_cancels_pending_once, .fini = fini, .timeout = 60)
{
    open_single(5000, 0);
    struct res r[6];
    block_connection(&r[0]);
    const char *ping[] = {"PING"};
    for (int i = 1; i < 6; i++)
        cr_assert_eq(cmd(NULL, &r[i], 1, ping, NULL), 0);
    for (int i = 0; i < 3; i++)
        ss_loop_run_once(loop, 10);
    ss__rds_close(rds);
    rds = NULL;
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(r[i].calls, 1, "cmd %d", i);
        cr_assert_eq(r[i].err, -ECANCELED);
    }
    for (int i = 0; i < 5; i++)
        ss_loop_run_once(loop, 10);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(r[i].calls, 1);
    /* Closing never reports a state change. */
    cr_assert_eq(nstates, 1);
}

Test(rds, stopped_server_times_out, .fini = fini, .timeout = 60)
{
    open_single(300, 0);
    kill(srv.pid, SIGSTOP);
    struct res r;
    const char *ping[] = {"PING"};
    cr_assert_eq(cmd(NULL, &r, 1, ping, NULL), 0);
    cr_assert(run_until(&r.done, 10000));
    kill(srv.pid, SIGCONT);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.err, -ETIMEDOUT);
    cr_assert(run_until_up(10000));
    struct res s = sync_cmd(NULL, 1, ping, NULL);
    cr_assert_eq(memcmp(s.str, "PONG", 4), 0);
    drain();
    bool want[] = {true, false, true};
    cr_assert_eq(nstates, 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(states[i], want[i]);
}

/* ---- pub/sub ------------------------------------------------------------- */

#define NCH 30
#define NMSG 10
static int got[NCH][NMSG];
static int ngot, nbad;

static void on_msg(void *arg, const char *channel, const char *data, size_t len)
{
    int ch = (int)(intptr_t)arg, k;
    char want[32];
    snprintf(want, sizeof want, "ch:%d", ch);
    if (strcmp(channel, want) != 0 || len != 6 || data[0] != '\0' ||
        sscanf(data + 1, "m%03d", &k) != 1 || k < 0 || k >= NMSG) {
        nbad++;
        return;
    }
    got[ch][k]++;
    ngot++;
}

static bool all_subscribed(int n)
{
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "ch:%d", i);
        if (!ss__rds_subscribed(rds, name))
            return false;
    }
    return true;
}

static bool wait_subscribed(int n, int ms)
{
    uint64_t end = ss_loop_now(loop) + (uint64_t)ms;
    while (!all_subscribed(n) && ss_loop_now(loop) < end)
        ss_loop_run_once(loop, 20);
    return all_subscribed(n);
}

/* Publish NMSG messages "\0mNNN" to each of n channels; every PUBLISH must
 * reach exactly one subscriber (us). Then wait for n * NMSG deliveries. */
static void publish_all(int n)
{
    static struct res pr[NCH * NMSG];
    int k = 0;
    for (int m = 0; m < NMSG; m++)
        for (int i = 0; i < n; i++, k++) {
            char name[32], data[8];
            snprintf(name, sizeof name, "ch:%d", i);
            snprintf(data + 1, sizeof data - 1, "m%03d", m);
            data[0] = '\0';
            pr[k] = (struct res){0};
            cr_assert_eq(ss__rds_publish(rds, name, data, 6, on_res, &pr[k]), 0);
        }
    ndone = 0;
    uint64_t end = ss_loop_now(loop) + 10000;
    while ((ndone < k || ngot + nbad < n * NMSG) && ss_loop_now(loop) < end)
        ss_loop_run_once(loop, 20);
    for (int i = 0; i < k; i++) {
        cr_assert_eq(pr[i].calls, 1);
        cr_assert_eq(pr[i].type, REDIS_REPLY_INTEGER, "publish %d: %.*s", i,
                     (int)pr[i].len, pr[i].str);
        cr_assert_eq(pr[i].integer, 1, "publish %d reached %lld", i, pr[i].integer);
    }
    for (int i = 0; i < 5; i++)
        ss_loop_run_once(loop, 20);
    cr_assert_eq(nbad, 0);
    cr_assert_eq(ngot, n * NMSG);
    for (int i = 0; i < n; i++)
        for (int m = 0; m < NMSG; m++)
            cr_assert_eq(got[i][m], 1, "ch:%d m%d: %d", i, m, got[i][m]);
}

static void subscribe_n(int n)
{
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "ch:%d", i);
        cr_assert_eq(ss__rds_subscribe(rds, name, on_msg, (void *)(intptr_t)i), 0);
    }
    cr_assert_eq(ss__rds_subscribe(rds, "ch:0", on_msg, NULL), -EEXIST);
}

Test(rds, pubsub_and_resubscribe_after_restart, .fini = fini, .timeout = 90)
{
    open_single(5000, 0);
    subscribe_n(3);
    cr_assert(wait_subscribed(3, 10000));
    publish_all(3);
    th_redis_stop(&srv, SIGKILL);
    cr_assert(run_until_down(10000));
    cr_assert_eq(ss__rds_subscribed(rds, "ch:0"), false);
    cr_assert_eq(th_redis_restart(&srv), 0);
    cr_assert(run_until_up(10000));
    cr_assert(wait_subscribed(3, 10000));
    memset(got, 0, sizeof got);
    ngot = 0;
    publish_all(3);
    /* Unsubscribed: the server counts no receiver. */
    cr_assert_eq(ss__rds_unsubscribe(rds, "ch:1"), 0);
    cr_assert_eq(ss__rds_unsubscribe(rds, "ch:1"), -ENOENT);
    for (int i = 0; i < 5; i++)
        ss_loop_run_once(loop, 20);
    struct res p = {0};
    cr_assert_eq(ss__rds_publish(rds, "ch:1", "x", 1, on_res, &p), 0);
    cr_assert(run_until(&p.done, 10000));
    cr_assert_eq(p.integer, 0);
}

/* ---- Redis Cluster ------------------------------------------------------- */

/* Slot ranges served by node i, from its own CLUSTER NODES line. */
static bool owns(int i, unsigned slot)
{
    static char *lines[TH_REDIS_CLUSTER_N];
    if (!lines[i]) {
        char *out = NULL;
        cr_assert_eq(th_redis_cli(&cl.node[i], &out, "CLUSTER", "NODES", NULL), 0);
        char *me = strstr(out, "myself");
        cr_assert_not_null(me);
        char *eol = strchr(me, '\n');
        if (eol)
            *eol = '\0';
        lines[i] = strdup(me);
        free(out);
    }
    /* "... connected 0-5460 7000" : ranges after "connected". */
    const char *p = strstr(lines[i], "connected");
    cr_assert_not_null(p);
    p += 9;
    while (*p) {
        while (*p == ' ')
            p++;
        char *end;
        long lo = strtol(p, &end, 10), hi = lo;
        if (end == p)
            break;
        if (*end == '-')
            hi = strtol(end + 1, &end, 10);
        if (slot >= (unsigned)lo && slot <= (unsigned)hi)
            return true;
        p = end;
    }
    return false;
}

static void open_cluster(void)
{
    th_redis_require();
    cr_assert_eq(th_redis_cluster_start(&cl), 0);
    char spec[256];
    open_spec(th_redis_cluster_spec(&cl, spec, sizeof spec), 5000, 0);
    cr_assert(run_until_up(15000), "cluster not up");
    drain();
    cr_assert_eq(nstates, 1);
    cr_assert_eq(ss__rds_is_cluster(rds), true);
}

Test(rds, cluster_keys_in_all_shards, .fini = fini, .timeout = 120)
{
    open_cluster();
    enum { NKEYS = 300 };
    static struct res r[NKEYS];
    char keys[NKEYS][32], vals[NKEYS][32];
    for (int i = 0; i < NKEYS; i++) {
        /* Every fifth key carries a hash tag: same slot as "{tag}". */
        if (i % 5 == 0)
            snprintf(keys[i], sizeof keys[i], "{tag%d}.k%d", i % 7, i);
        else
            snprintf(keys[i], sizeof keys[i], "k:%d", i);
        snprintf(vals[i], sizeof vals[i], "v\r\n%d", i * 7919);
        const char *set[] = {"SET", keys[i], vals[i]};
        cr_assert_eq(cmd(keys[i], &r[i], 3, set, NULL), 0);
    }
    ndone = 0;
    cr_assert(run_until_done(NKEYS, 15000), "%d replies", ndone);
    for (int i = 0; i < NKEYS; i++) {
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].type, REDIS_REPLY_STATUS, "key %s: %.*s", keys[i],
                     (int)r[i].len, r[i].str);
    }
    for (int i = 0; i < NKEYS; i++) {
        const char *get[] = {"GET", keys[i]};
        cr_assert_eq(cmd(keys[i], &r[i], 2, get, NULL), 0);
    }
    ndone = 0;
    cr_assert(run_until_done(NKEYS, 15000), "%d replies", ndone);
    for (int i = 0; i < NKEYS; i++) {
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].len, strlen(vals[i]));
        cr_assert_eq(memcmp(r[i].str, vals[i], r[i].len), 0, "key %s", keys[i]);
    }
    /* Each key sits on the master that serves its slot by our CRC16, and
     * every master holds some: no MOVED was needed (the map was right). */
    int want[TH_REDIS_CLUSTER_N] = {0};
    for (int i = 0; i < NKEYS; i++) {
        unsigned slot = ss__rds_slot(keys[i], strlen(keys[i]));
        int n = 0;
        for (int j = 0; j < TH_REDIS_CLUSTER_N; j++)
            if (owns(j, slot)) {
                want[j]++;
                n++;
            }
        cr_assert_eq(n, 1, "slot %u served by %d nodes", slot, n);
    }
    for (int j = 0; j < TH_REDIS_CLUSTER_N; j++) {
        char buf[32];
        cr_assert_gt(want[j], 0);
        cr_assert_gt(th_redis_query(&cl.node[j], buf, sizeof buf, "DBSIZE", NULL), 0);
        cr_assert_eq(atoi(buf), want[j], "node %d: %s keys, want %d", j, buf, want[j]);
    }
    char ks[16];
    cr_assert_gt(th_redis_query(&cl.node[0], ks, sizeof ks, "CLUSTER", "KEYSLOT", "{tag3}.x", NULL), 0);
    cr_assert_eq((unsigned)atoi(ks), ss__rds_slot("{tag3}.x", 8));
}

/* Node index of the master serving slot. */
static int owner(unsigned slot)
{
    for (int j = 0; j < TH_REDIS_CLUSTER_N; j++)
        if (owns(j, slot))
            return j;
    return -1;
}

/* "calls=N" (or rejected_calls=N with rej) of one command in INFO commandstats. */
static int stat_calls(int node, const char *cmdname, bool rej)
{
    char *out = NULL;
    cr_assert_eq(th_redis_cli(&cl.node[node], &out, "INFO", "commandstats", NULL), 0);
    char needle[64];
    snprintf(needle, sizeof needle, "cmdstat_%s:", cmdname);
    char *p = strstr(out, needle);
    int n = 0;
    if (p) {
        char *q = strstr(p, rej ? "rejected_calls=" : "calls=");
        if (q)
            n = atoi(q + (rej ? 15 : 6));
    }
    free(out);
    return n;
}

Test(rds, cluster_follows_ask_and_moved, .fini = fini, .timeout = 120)
{
    open_cluster();
    const char *key = "migrating-key";
    unsigned slot = ss__rds_slot(key, strlen(key));
    int src = owner(slot), dst = (src + 1) % TH_REDIS_CLUSTER_N;
    cr_assert_geq(src, 0);
    const char *set[] = {"SET", key, "moved-value"};
    struct res s = sync_cmd(key, 3, set, NULL);
    cr_assert_eq(s.type, REDIS_REPLY_STATUS);

    char src_id[64], dst_id[64], buf[256], sl[8];
    snprintf(sl, sizeof sl, "%u", slot);
    cr_assert_eq(th_redis_query(&cl.node[src], src_id, sizeof src_id, "CLUSTER", "MYID", NULL), 40);
    cr_assert_eq(th_redis_query(&cl.node[dst], dst_id, sizeof dst_id, "CLUSTER", "MYID", NULL), 40);
    th_redis_query(&cl.node[dst], buf, sizeof buf, "CLUSTER", "SETSLOT", sl, "IMPORTING", src_id, NULL);
    cr_assert_str_eq(buf, "OK");
    th_redis_query(&cl.node[src], buf, sizeof buf, "CLUSTER", "SETSLOT", sl, "MIGRATING", dst_id, NULL);
    cr_assert_str_eq(buf, "OK");
    char port[8];
    snprintf(port, sizeof port, "%d", cl.node[dst].port);
    th_redis_query(&cl.node[src], buf, sizeof buf, "MIGRATE", "127.0.0.1", port, "", "0",
                   "5000", "KEYS", key, NULL);
    cr_assert_str_eq(buf, "OK");
    for (int j = 0; j < TH_REDIS_CLUSTER_N; j++)
        th_redis_query(&cl.node[j], buf, sizeof buf, "CONFIG", "RESETSTAT", NULL);

    /* Mid-migration: the source answers ASK, we send ASKING + GET to the
     * destination. */
    const char *get[] = {"GET", key};
    s = sync_cmd(key, 2, get, NULL);
    cr_assert_eq(s.type, REDIS_REPLY_STRING, "%.*s", (int)s.len, s.str);
    cr_assert_eq(s.len, 11);
    cr_assert_eq(memcmp(s.str, "moved-value", 11), 0);
    cr_assert_eq(stat_calls(dst, "asking", false), 1);
    cr_assert_eq(stat_calls(dst, "get", false), 1);

    /* Migration done: the source answers MOVED, we follow and learn. */
    for (int j = 0; j < TH_REDIS_CLUSTER_N; j++) {
        th_redis_query(&cl.node[j], buf, sizeof buf, "CLUSTER", "SETSLOT", sl, "NODE", dst_id, NULL);
        cr_assert_str_eq(buf, "OK", "node %d: %s", j, buf);
    }
    for (int j = 0; j < TH_REDIS_CLUSTER_N; j++)
        th_redis_query(&cl.node[j], buf, sizeof buf, "CONFIG", "RESETSTAT", NULL);
    s = sync_cmd(key, 2, get, NULL);
    cr_assert_eq(s.len, 11);
    cr_assert_eq(memcmp(s.str, "moved-value", 11), 0);
    cr_assert_eq(stat_calls(src, "get", true), 1);
    cr_assert_eq(stat_calls(dst, "get", false), 1);
    /* The map was refreshed: the next GET goes straight to the new owner. */
    for (int i = 0; i < 20; i++)
        ss_loop_run_once(loop, 10);
    s = sync_cmd(key, 2, get, NULL);
    cr_assert_eq(s.len, 11);
    cr_assert_eq(stat_calls(src, "get", true), 1);
    cr_assert_eq(stat_calls(dst, "get", false), 2);
    cr_assert_eq(stat_calls(dst, "asking", false), 0);
}

Test(rds, cluster_sharded_pubsub_exact, .fini = fini, .timeout = 120)
{
    open_cluster();
    memset(got, 0, sizeof got);
    ngot = nbad = 0;
    subscribe_n(NCH);
    cr_assert(wait_subscribed(NCH, 15000));
    /* The channels are spread over all three shards. */
    int per[TH_REDIS_CLUSTER_N] = {0};
    for (int i = 0; i < NCH; i++) {
        char name[32];
        snprintf(name, sizeof name, "ch:%d", i);
        per[owner(ss__rds_slot(name, strlen(name)))]++;
    }
    for (int j = 0; j < TH_REDIS_CLUSTER_N; j++)
        cr_assert_gt(per[j], 0);
    publish_all(NCH);
    /* Each shard saw exactly its channels' SPUBLISH calls. */
    for (int j = 0; j < TH_REDIS_CLUSTER_N; j++)
        cr_assert_eq(stat_calls(j, "spublish", false), per[j] * NMSG, "node %d", j);
}

/* Closing from inside a reply callback: the other pending commands get
 * -ECANCELED once, the memory goes when the callback's caller returns. */
static struct res inner[4];
static void close_in_cb(void *arg, const redisReply *rep, int err)
{
    on_res(arg, rep, err);
    ss__rds_close(rds);
    rds = NULL;
}

Test(rds, close_inside_callback, .fini = fini, .timeout = 60)
{
    open_single(5000, 0);
    const char *ping[] = {"PING"};
    inner[0] = (struct res){0};
    cr_assert_eq(ss__rds_cmd(rds, NULL, close_in_cb, &inner[0], 1, ping, NULL), 0);
    for (int i = 1; i < 4; i++) {
        inner[i] = (struct res){0};
        cr_assert_eq(ss__rds_cmd(rds, NULL, on_res, &inner[i], 1, ping, NULL), 0);
    }
    cr_assert(run_until(&inner[0].done, 10000));
    for (int i = 0; i < 5; i++)
        ss_loop_run_once(loop, 10);
    cr_assert_eq(inner[0].calls, 1);
    cr_assert_eq(inner[0].err, 0);
    cr_assert_eq(memcmp(inner[0].str, "PONG", 4), 0);
    /* The later PINGs may have been answered in the same read: hiredis
     * then hands them their replies before the close takes effect. */
    for (int i = 1; i < 4; i++) {
        cr_assert_eq(inner[i].calls, 1, "cmd %d", i);
        cr_assert(inner[i].err == -ECANCELED || inner[i].err == 0, "cmd %d: %d", i,
                  inner[i].err);
    }
}

/* A cluster master killed and restarted: down, then up again, exactly;
 * its keys are back (AOF) and reached through the layer. */
Test(rds, cluster_node_restart, .fini = fini, .timeout = 120)
{
    open_cluster();
    const char *key = "restart-key";
    int n = owner(ss__rds_slot(key, strlen(key)));
    const char *set[] = {"SET", key, "survives"};
    struct res s = sync_cmd(key, 3, set, NULL);
    cr_assert_eq(s.type, REDIS_REPLY_STATUS);
    th_redis_stop(&cl.node[n], SIGKILL);
    cr_assert(run_until_down(10000));
    const char *get[] = {"GET", key};
    cr_assert_eq(cmd(key, &s, 2, get, NULL), -ENOTCONN);
    cr_assert_eq(th_redis_restart(&cl.node[n]), 0);
    cr_assert_eq(th_redis_cluster_wait_ok(&cl, 20000), 0);
    cr_assert(run_until_up(20000));
    drain();
    s = sync_cmd(key, 2, get, NULL);
    cr_assert_eq(s.len, 8);
    cr_assert_eq(memcmp(s.str, "survives", 8), 0);
    bool want[] = {true, false, true};
    cr_assert_eq(nstates, 3, "%d state changes", nstates);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(states[i], want[i]);
}

/* A subscribed channel's slot moves to another master: the old owner
 * drops the subscription (sunsubscribe), the layer subscribes on the new
 * owner, and messages arrive again. */
Test(rds, cluster_subscription_follows_slot, .fini = fini, .timeout = 120)
{
    open_cluster();
    memset(got, 0, sizeof got);
    ngot = nbad = 0;
    subscribe_n(1);
    cr_assert(wait_subscribed(1, 15000));
    unsigned slot = ss__rds_slot("ch:0", 4);
    int src = owner(slot), dst = (src + 1) % TH_REDIS_CLUSTER_N;
    char dst_id[64], buf[256], sl[8];
    snprintf(sl, sizeof sl, "%u", slot);
    cr_assert_eq(th_redis_query(&cl.node[dst], dst_id, sizeof dst_id, "CLUSTER", "MYID", NULL), 40);
    /* An empty slot moves by SETSLOT NODE alone, on every master. */
    for (int j = 0; j < TH_REDIS_CLUSTER_N; j++) {
        th_redis_query(&cl.node[j], buf, sizeof buf, "CLUSTER", "SETSLOT", sl, "NODE", dst_id, NULL);
        cr_assert_str_eq(buf, "OK", "node %d: %s", j, buf);
    }
    /* Wait for the move to reach us and the new subscription to be
     * confirmed on the new owner. */
    uint64_t end = ss_loop_now(loop) + 15000;
    char *out = NULL;
    bool moved = false;
    while (!moved && ss_loop_now(loop) < end) {
        ss_loop_run_once(loop, 50);
        if (!ss__rds_subscribed(rds, "ch:0"))
            continue;
        free(out);
        out = NULL;
        th_redis_cli(&cl.node[dst], &out, "PUBSUB", "SHARDNUMSUB", "ch:0", NULL);
        moved = strcmp(out, "ch:0\n1\n") == 0;
    }
    cr_assert(moved, "new owner says: %s", out ? out : "");
    free(out);
    th_redis_cli(&cl.node[src], &out, "PUBSUB", "SHARDNUMSUB", "ch:0", NULL);
    cr_assert_str_eq(out, "ch:0\n0\n");
    free(out);
    publish_all(1);
}

/* A master dies and its replica takes over (cluster failover): the layer
 * goes down, learns the new map from the nodes still up, connects to the
 * promoted replica and is up again; the replicated key is there. */
static struct th_redis replica = {.pid = -1};
static void fini_failover(void)
{
    th_redis_cleanup(&replica);
    fini();
}

Test(rds, cluster_failover_to_replica, .fini = fini_failover, .timeout = 180)
{
    th_redis_require();
    cr_assert_eq(th_redis_cluster_start(&cl), 0);
    const char *key = "failover-key";
    int m = owner(ss__rds_slot(key, strlen(key)));
    cr_assert_eq(th_redis_cluster_add_replica(&cl, m, &replica), 0);
    cr_assert_eq(th_redis_cluster_wait_ok(&cl, 20000), 0);
    char spec[256];
    open_spec(th_redis_cluster_spec(&cl, spec, sizeof spec), 5000, 0);
    cr_assert(run_until_up(15000), "cluster not up");
    const char *set[] = {"SET", key, "replicated"};
    struct res s = sync_cmd(key, 3, set, NULL);
    cr_assert_eq(s.type, REDIS_REPLY_STATUS);
    /* WAIT 1 0: the replica has the write before we kill the master. */
    const char *wait[] = {"WAIT", "1", "0"};
    s = sync_cmd(key, 3, wait, NULL);
    cr_assert_eq(s.type, REDIS_REPLY_INTEGER);
    cr_assert_eq(s.integer, 1);
    th_redis_stop(&cl.node[m], SIGKILL);
    cr_assert(run_until_down(10000));
    /* cluster-node-timeout is 3 s: then the replica is elected. */
    cr_assert(run_until_up(60000), "not up after failover");
    drain();
    s = sync_cmd(key, 2, (const char *[]){"GET", key}, NULL);
    cr_assert_eq(s.len, 10);
    cr_assert_eq(memcmp(s.str, "replicated", 10), 0);
    char role[4096];
    cr_assert_gt(th_redis_query(&replica, role, sizeof role, "INFO", "replication", NULL), 0);
    cr_assert_not_null(strstr(role, "role:master"), "%s", role);
    bool want[] = {true, false, true};
    cr_assert_eq(nstates, 3, "%d state changes", nstates);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(states[i], want[i]);
}
