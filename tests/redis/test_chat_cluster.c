/* Chat across nodes (issue 14): three `sockstack serve chat --cluster`
 * processes on one Redis (appendonly yes) or on a Redis Cluster of three
 * masters, driven by raw TCP clients. Every test runs in both setups.
 * Nothing sleeps as synchronisation where a line can be waited for; the
 * waits for a lease to run out are bounded by the lease (1.5 s here). */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../chat/fixture.h"
#include "redis_harness.h"
#include "sockstack/chat.h"

#define NODES 3
#define LEASE "1500"

static struct th_redis srv = {.pid = -1};
static struct th_redis_cluster rc;
static bool use_cluster;
static char spec[512];
static struct th_proc *node[NODES];
static int port[NODES];

static int irc_port; /* node 1's IRC port */

static void start_node(int i)
{
    char *argv[] = {(char *)th_sockstack(), "serve", "chat", "-b", "127.0.0.1", "--port", "0",
                    "--grace", "0", "--pbkdf2-iter", "1000", "--cluster", spec, "--lease",
                    LEASE, "--join-history", "0", "--offers-max", "3",
                    i == 0 ? "--irc-port" : NULL, "0", NULL};
    struct th_proc p;
    cr_assert_eq(th_spawn(&p, argv), 0);
    node[i] = track(p);
    if (i != 0) {
        port[i] = th_wait_listening(node[i], 20000, NULL, 0);
        cr_assert_gt(port[i], 0, "node %d did not start", i + 1);
        return;
    }
    port[i] = fx_irc_ports(node[i], &irc_port);
}

static void setup(bool cl)
{
    th_redis_require();
    fx_setup();
    use_cluster = cl;
    cr_assert_eq(th_redis_start_store(cl, &srv, &rc, spec, sizeof spec), 0);
    for (int i = 0; i < NODES; i++)
        start_node(i);
}

static void teardown(void)
{
    fx_teardown();
    th_redis_cleanup(&srv);
    th_redis_cluster_cleanup(&rc);
}

TestSuite(chat_cluster, .fini = teardown, .timeout = 120);

/* Wait until one of a or b shows up after the stream's position: 1 or 2,
 * 0 on timeout. */
static int expect2(struct stream *s, const char *a, const char *b, int timeout_ms)
{
    long deadline = now_ms() + timeout_ms;
    for (;;) {
        if (s->len > s->pos) {
            s->buf[s->len] = '\0';
            char *pa = strstr(s->buf + s->pos, a), *pb = strstr(s->buf + s->pos, b);
            if (pa && (!pb || pa < pb)) {
                s->pos = (size_t)(pa - s->buf) + strlen(a);
                return 1;
            }
            if (pb) {
                s->pos = (size_t)(pb - s->buf) + strlen(b);
                return 2;
            }
        }
        long left = deadline - now_ms();
        if (left <= 0 || s->eof)
            return 0;
        pump(s, (int)(left > 50 ? 50 : left));
    }
}

/* A raw client on node i that sends cmd (a /nick or /login of nick, after
 * an optional pre line) until it holds nick: a node just started may not
 * have reached Redis yet (ERR degraded), and a nick whose node died is
 * taken until its lease runs out (ERR nicktaken). */
static int enter(int i, struct stream *s, const char *pre, const char *cmd, const char *nick)
{
    int fd = fx_raw(port[i], 0);
    stream_init(s, fd);
    char ok[64];
    snprintf(ok, sizeof ok, "OK nick %s ", nick);
    for (int tries = 0; tries < 100; tries++) {
        if (pre)
            put(fd, pre);
        put(fd, cmd);
        int got = expect2(s, ok, "\nERR ", 10000);
        if (got == 1)
            return fd;
        cr_assert_eq(got, 2, "no answer to %s in:\n%s", cmd, s->buf);
        usleep(100 * 1000);
    }
    cr_assert_fail("%s never taken:\n%s", nick, s->buf);
    return -1;
}

static int join(int i, struct stream *s, const char *nick)
{
    char cmd[64];
    snprintf(cmd, sizeof cmd, "/nick %s\n", nick);
    return enter(i, s, NULL, cmd, nick);
}

/* The whole line of s that contains needle (copied to out, '\n' kept). */
static void line_with(struct stream *s, const char *needle, char *out, size_t cap)
{
    cr_assert(expect(s, needle, 10000), "did not see \"%s\" in:\n%s", needle, s->buf);
    char *at = s->buf + s->pos - strlen(needle); /* this match, not an earlier one */
    char *start = at;
    while (start > s->buf && start[-1] != '\n')
        start--;
    char *end = strchr(at, '\n');
    cr_assert_not_null(end);
    size_t n = (size_t)(end + 1 - start);
    cr_assert_lt(n, cap);
    memcpy(out, start, n);
    out[n] = '\0';
}

/* "MSG TS NICK TEXT\n": TS is a valid timestamp; copy it to ts. */
static void check_stamped(const char *line, const char *kind, const char *rest, char *ts)
{
    size_t k = strlen(kind);
    cr_assert_eq(strncmp(line, kind, k), 0, "%s", line);
    cr_assert_eq(line[k], ' ', "%s", line);
    const char *t = line + k + 1, *sp = strchr(t, ' ');
    cr_assert_not_null(sp, "%s", line);
    char stamp[40];
    snprintf(stamp, sizeof stamp, "%.*s", (int)(sp - t), t);
    cr_assert_gt(ss_chat_parse_ts(stamp), 0, "bad timestamp in %s", line);
    cr_assert_str_eq(sp + 1, rest);
    if (ts)
        snprintf(ts, 40, "%s", stamp);
}

/* ---- public and private messages across nodes ---------------------------- */

static void messages(void)
{
    static struct stream a, b, c;
    int fa = join(0, &a, "alice");
    int fb = join(1, &b, "bob");
    int fc = join(2, &c, "carol");
    EXPECT(&a, "JOIN "); /* bob, then carol: everyone is in before we talk */
    EXPECT(&a, " carol 3\n");
    EXPECT(&b, " carol 3\n");
    put(fa, "hello from node 1\n");
    EXPECT(&a, "OK sent ");
    char lb[256], lc[256], ts[40];
    line_with(&b, " alice hello from node 1\n", lb, sizeof lb);
    line_with(&c, " alice hello from node 1\n", lc, sizeof lc);
    check_stamped(lb, "MSG", "alice hello from node 1\n", ts);
    cr_assert_str_eq(lc, lb); /* one line, the same TS on every node */
    put(fb, "/me waves\n");
    EXPECT(&b, "OK sent ");
    line_with(&c, " bob waves\n", lc, sizeof lc);
    check_stamped(lc, "ME", "bob waves\n", NULL);
    /* Private: only carol, on node 3. */
    put(fb, "/msg carol psst, carol\n");
    EXPECT(&b, "OK msg carol\n");
    line_with(&c, " bob psst, carol\n", lc, sizeof lc);
    check_stamped(lc, "PRIV", "bob psst, carol\n", NULL);
    put(fc, "/notice alice from carol\n");
    EXPECT(&c, "OK notice alice\n");
    char la[256];
    line_with(&a, " carol from carol\n", la, sizeof la);
    check_stamped(la, "NOTICE", "carol from carol\n", NULL);
    /* A round trip on alice's connection: anything private for her would
     * have come before. */
    put(fa, "/history 1\n");
    EXPECT(&a, "OK history 1\n");
    cr_assert_eq(count(&a, "PRIV"), 0);
    cr_assert_eq(count(&a, "hello from node 1"), 0, "the sender got its own line");
    cr_assert_eq(count(&b, "waves"), 0);
    put(fa, "/msg nobody-here x\n");
    EXPECT(&a, "ERR nouser no user nobody-here\n");
    /* The topic is the service's: set on node 3, seen on 1, asked on 2. */
    put(fc, "/topic across nodes\n");
    EXPECT(&c, "OK topic set\n");
    line_with(&a, " carol across nodes\n", la, sizeof la);
    check_stamped(la, "TOPIC", "carol across nodes\n", NULL);
    char lt[256];
    line_with(&b, " carol across nodes\n", lt, sizeof lt); /* the event */
    cr_assert_str_eq(lt, la);
    put(fb, "/topic\n");
    line_with(&b, " carol across nodes\n", lt, sizeof lt); /* the answer */
    cr_assert_str_eq(lt, la);
    EXPECT(&b, "OK topic\n");
}

Test(chat_cluster, messages_across_nodes) { setup(false); messages(); }
Test(chat_cluster, messages_across_nodes_redis_cluster) { setup(true); messages(); }

/* ---- presence ---------------------------------------------------------------- */

static void presence(void)
{
    static struct stream a, b, c;
    int fa = join(0, &a, "alice");
    char la[256];
    int fb = join(1, &b, "Bob");
    line_with(&a, " Bob 2\n", la, sizeof la);
    check_stamped(la, "JOIN", "Bob 2\n", NULL);
    int fc = join(2, &c, "carol");
    line_with(&b, " carol 3\n", la, sizeof la);
    check_stamped(la, "JOIN", "carol 3\n", NULL);
    put(fb, "/away lunch\n");
    EXPECT(&b, "OK away\n");
    line_with(&c, " Bob lunch\n", la, sizeof la);
    check_stamped(la, "AWAY", "Bob lunch\n", NULL);
    put(fc, "/who\n");
    EXPECT(&c, "OK who 3 0\n");
    cr_assert_eq(count(&c, "WHO alice online\n"), 1, "%s", c.buf);
    cr_assert_eq(count(&c, "WHO Bob online away lunch\n"), 1, "%s", c.buf);
    cr_assert_eq(count(&c, "WHO carol online\n"), 1, "%s", c.buf);
    /* A nick is one across nodes, in any case. */
    static struct stream d;
    int fd = fx_raw(port[0], 0);
    stream_init(&d, fd);
    put(fd, "/nick bob\n");
    EXPECT(&d, "ERR nicktaken bob is online\n");
    put(fb, "/quit\n");
    EXPECT(&b, "BYE see you\n");
    line_with(&a, " Bob 2\n", la, sizeof la);
    check_stamped(la, "LEAVE", "Bob 2\n", NULL);
    line_with(&c, " Bob 2\n", la, sizeof la);
    check_stamped(la, "LEAVE", "Bob 2\n", NULL);
    put(fa, "/who\n");
    EXPECT(&a, "OK who 2 1\n");
    cr_assert_eq(count(&a, "WHO Bob offline "), 1, "%s", a.buf);
    /* Now free. */
    put(fd, "/nick bob\n");
    EXPECT(&d, "OK nick bob 3\n");
}

Test(chat_cluster, presence_across_nodes) { setup(false); presence(); }
Test(chat_cluster, presence_across_nodes_redis_cluster) { setup(true); presence(); }

/* ---- offline messages: sent on node 1, received on node 3 ----------------- */

static void offline(void)
{
    static struct stream a, d, d2, d3;
    int fa = join(0, &a, "alice");
    int fd = join(1, &d, "dave");
    put(fd, "/register pw1234\n");
    EXPECT(&d, "OK register dave\n");
    put(fd, "/quit\n");
    EXPECT(&d, "BYE");
    EXPECT(&a, " dave 1\n"); /* LEAVE */
    put(fa, "/msg dave one\n");
    EXPECT(&a, "OK msg dave stored\n");
    put(fa, "/msg dave two\n");
    EXPECT(&a, "OK msg dave stored\n");
    put(fa, "/msg carl hi\n");
    EXPECT(&a, "ERR nouser no user carl\n");
    int f3 = enter(2, &d2, NULL, "/login dave pw1234\n", "dave");
    char l[256];
    line_with(&d2, " alice one\n", l, sizeof l);
    check_stamped(l, "OFFLINE", "alice one\n", NULL);
    line_with(&d2, " alice two\n", l, sizeof l);
    check_stamped(l, "OFFLINE", "alice two\n", NULL);
    /* The page left the queue: the next drain deletes it. */
    put(f3, "/history 1\n");
    EXPECT(&d2, "OK history ");
    put(f3, "/quit\n");
    EXPECT(&d2, "BYE");
    EXPECT(&a, " dave 1\n");
    int f4 = enter(0, &d3, NULL, "/login dave pw1234\n", "dave");
    put(f4, "/history 1\n");
    EXPECT(&d3, "OK history ");
    cr_assert_eq(count(&d3, "OFFLINE"), 0, "delivered twice:\n%s", d3.buf);
    /* The password is the service's, not the node's. */
    static struct stream e;
    int fe = fx_raw(port[1], 0);
    stream_init(&e, fe);
    put(fe, "/login dave wrong\n");
    EXPECT(&e, "ERR auth wrong nickname or password\n");
}

Test(chat_cluster, offline_message_across_nodes) { setup(false); offline(); }
Test(chat_cluster, offline_message_across_nodes_redis_cluster) { setup(true); offline(); }

/* ---- two nodes claim one nick at once: exactly one wins ------------------- */

static void race(void)
{
    int won[2] = {0, 0};
    for (int round = 0; round < 100; round++) {
        static struct stream s[2];
        int f[2];
        for (int k = 0; k < 2; k++) {
            f[k] = fx_raw(port[k], 0);
            stream_init(&s[k], f[k]);
            EXPECT(&s[k], "INFO welcome");
        }
        char cmd[64], ok[64], taken[64];
        snprintf(cmd, sizeof cmd, "/nick race%d\n", round);
        snprintf(ok, sizeof ok, "OK nick race%d ", round);
        snprintf(taken, sizeof taken, "ERR nicktaken race%d is online\n", round);
        put(f[0], cmd);
        put(f[1], cmd);
        int r0 = expect2(&s[0], ok, taken, 10000), r1 = expect2(&s[1], ok, taken, 10000);
        cr_assert((r0 == 1 && r1 == 2) || (r0 == 2 && r1 == 1),
                  "round %d: node 1 %d, node 2 %d:\n%s\n%s", round, r0, r1, s[0].buf,
                  s[1].buf);
        won[r0 == 1 ? 0 : 1]++;
        close(f[0]);
        close(f[1]);
        streams_free();
    }
    cr_assert_eq(won[0] + won[1], 100);
    cr_log_info("nick race: node 1 won %d, node 2 won %d of 100", won[0], won[1]);
}

Test(chat_cluster, nick_race_one_winner) { setup(false); race(); }
Test(chat_cluster, nick_race_one_winner_redis_cluster) { setup(true); race(); }

/* ---- node 2 dies: its users go offline, and come back elsewhere ----------- */

static void node_dies(void)
{
    static struct stream a, b, b2;
    int fa = join(0, &a, "alice");
    int fb = join(1, &b, "bob");
    EXPECT(&a, " bob 2\n");
    put(fa, "first\n");
    EXPECT(&a, "OK sent ");
    char l[256], ts[40];
    line_with(&b, " alice first\n", l, sizeof l);
    check_stamped(l, "MSG", "alice first\n", ts);
    put(fb, "mine before\n");
    EXPECT(&b, "OK sent ");
    cr_assert_eq(kill(node[1]->pid, SIGKILL), 0);
    cr_assert_gt(th_wait(node[1], 5000), 0);
    /* Acknowledged while bob is away. */
    put(fa, "second\n");
    EXPECT(&a, "OK sent ");
    put(fa, "third\n");
    EXPECT(&a, "OK sent ");
    /* The lease runs out: another node announces bob's LEAVE. */
    cr_assert(expect(&a, " bob 1\n", 3 * 1500 + 5000), "no LEAVE for bob:\n%s", a.buf);
    /* bob resumes on node 3 from the last line he saw. */
    char since[80];
    snprintf(since, sizeof since, "/since %s\n", ts);
    int f3 = enter(2, &b2, since, "/nick bob\n", "bob");
    put(f3, "/history 1\n");
    EXPECT(&b2, "OK history 1\n");
    char want[160];
    snprintf(want, sizeof want, "HIST %s MSG alice first\n", ts);
    cr_assert_eq(count(&b2, want), 1, "%s", b2.buf); /* the client drops it: it has it */
    cr_assert_eq(count(&b2, " MSG bob mine before\n"), 1, "%s", b2.buf);
    cr_assert_eq(count(&b2, " MSG alice second\n"), 1, "%s", b2.buf);
    cr_assert_eq(count(&b2, " MSG alice third\n"), 2, "%s", b2.buf); /* join, /history */
    char *p1 = strstr(b2.buf, "MSG alice first"), *p2 = strstr(b2.buf, "MSG bob mine"),
         *p3 = strstr(b2.buf, "MSG alice second"), *p4 = strstr(b2.buf, "MSG alice third");
    cr_assert(p1 < p2 && p2 < p3 && p3 < p4, "out of order:\n%s", b2.buf);
    line_with(&a, " bob 2\n", l, sizeof l);
    check_stamped(l, "JOIN", "bob 2\n", NULL);
}

Test(chat_cluster, node_killed_users_resume_elsewhere) { setup(false); node_dies(); }
Test(chat_cluster, node_killed_users_resume_elsewhere_redis_cluster) { setup(true); node_dies(); }

/* ---- Redis dies: degraded, nothing acknowledged lost ---------------------- */

static void redis_dies(void)
{
    static struct stream a, c;
    int fa = join(0, &a, "alice");
    put(fa, "durable one\n");
    EXPECT(&a, "OK sent ");
    put(fa, "durable two\n");
    EXPECT(&a, "OK sent ");
    struct th_redis *rs = use_cluster ? rc.node : &srv;
    int nsrv = use_cluster ? TH_REDIS_CLUSTER_N : 1;
    for (int i = 0; i < nsrv; i++)
        th_redis_stop(&rs[i], SIGKILL);
    EXPECT(&a, "INFO degraded the store is unreachable: messages are refused "
               "(ERR degraded) until it is back\n");
    put(fa, "while down\n");
    EXPECT(&a, "ERR degraded the service is degraded (its store is unreachable): message "
               "not stored\n");
    put(fa, "/history 1\n");
    EXPECT(&a, "ERR degraded the service is degraded (its store is unreachable): no "
               "history\n");
    put(fa, "/who\n");
    EXPECT(&a, "ERR degraded the service is degraded (its store is unreachable): no list\n");
    put(fa, "/nick alice2\n");
    EXPECT(&a, "ERR degraded the service is degraded (its store is unreachable): the store "
               "failed\n");
    for (int i = 0; i < nsrv; i++)
        cr_assert_eq(th_redis_restart(&rs[i]), 0);
    if (use_cluster)
        cr_assert_eq(th_redis_cluster_wait_ok(&rc, 20000), 0);
    cr_assert(expect(&a, "INFO restored the store is reachable again\n", 20000), "%s", a.buf);
    put(fa, "/history 5\n");
    EXPECT(&a, "OK history 2\n");
    cr_assert_eq(count(&a, " MSG alice durable one\n"), 1, "%s", a.buf);
    cr_assert_eq(count(&a, " MSG alice durable two\n"), 1, "%s", a.buf);
    cr_assert_eq(count(&a, "while down"), 0, "%s", a.buf);
    int fc = join(2, &c, "carol");
    put(fc, "/history 5\n");
    EXPECT(&c, "OK history 2\n");
    cr_assert_eq(count(&c, " MSG alice durable two\n"), 1, "%s", c.buf);
}

Test(chat_cluster, redis_killed_acknowledged_survive) { setup(false); redis_dies(); }
Test(chat_cluster, redis_killed_acknowledged_survive_redis_cluster) { setup(true); redis_dies(); }

/* ---- the IRC front in cluster mode ------------------------------------------ */

static void irc(void)
{
    static struct stream n, i;
    int fn = join(1, &n, "nat");
    int fi = fx_raw(irc_port, 0);
    stream_init(&i, fi);
    /* A node may not have reached Redis yet: the nick is retried. */
    put(fi, "USER ircy 0 * :I\r\n");
    for (int tries = 0; tries < 100; tries++) {
        put(fi, "NICK ircy\r\n");
        if (expect2(&i, " 001 ircy ", " 400 ", 10000) == 1)
            break;
        usleep(100 * 1000);
    }
    EXPECT(&i, " 376 ircy :End of /MOTD command.\r\n");
    put(fi, "JOIN #lobby\r\n");
    EXPECT(&i, ":ircy!ircy@sockstack JOIN #lobby\r\n");
    EXPECT(&i, ":sockstack 353 ircy = #lobby :nat ircy\r\n");
    EXPECT(&i, ":sockstack 366 ircy #lobby :End of /NAMES list\r\n");
    char l[256];
    line_with(&n, " ircy 2\n", l, sizeof l);
    check_stamped(l, "JOIN", "ircy 2\n", NULL);
    put(fi, "PRIVMSG #lobby :hello native\r\n");
    line_with(&n, " ircy hello native\n", l, sizeof l);
    check_stamped(l, "MSG", "ircy hello native\n", NULL);
    put(fn, "hi irc\n");
    EXPECT(&n, "OK sent ");
    EXPECT(&i, ":nat!nat@sockstack PRIVMSG #lobby :hi irc\r\n");
    put(fn, "/msg ircy private\n");
    EXPECT(&n, "OK msg ircy\n");
    EXPECT(&i, ":nat!nat@sockstack PRIVMSG ircy :private\r\n");
    put(fi, "PRIVMSG nat :back at you\r\n");
    line_with(&n, " ircy back at you\n", l, sizeof l);
    check_stamped(l, "PRIV", "ircy back at you\n", NULL);
    put(fi, "WHO #lobby\r\n");
    EXPECT(&i, ":sockstack 352 ircy #lobby nat sockstack sockstack nat H :0 nat\r\n");
    EXPECT(&i, ":sockstack 352 ircy #lobby ircy sockstack sockstack ircy H :0 ircy\r\n");
    EXPECT(&i, ":sockstack 315 ircy #lobby :End of WHO list\r\n");
    /* LIST counts the service's users, not this node's. */
    put(fi, "LIST\r\n");
    EXPECT(&i, ":sockstack 321 ircy Channel :Users  Name\r\n"
               ":sockstack 322 ircy #lobby 2 :\r\n"
               ":sockstack 323 ircy :End of /LIST\r\n");
}

Test(chat_cluster, irc_front_across_nodes) { setup(false); irc(); }
Test(chat_cluster, irc_front_across_nodes_redis_cluster) { setup(true); irc(); }

/* ---- point-to-point introductions across nodes ----------------------------- */

/* "P2P intro ID PEER KEY SIDE" on s: the id and key. */
static void intro_of(struct stream *s, const char *peer, int side, long long *id, char key[40])
{
    char l[256], want[64];
    line_with(s, "P2P intro ", l, sizeof l);
    char p[40];
    int sd = -1;
    cr_assert_eq(sscanf(l, "P2P intro %lld %39s %39s %d", id, p, key, &sd), 4, "%s", l);
    cr_assert_str_eq(p, peer, "%s", l);
    cr_assert_eq(sd, side, "%s", l);
    cr_assert_eq(strlen(key), 32, "%s", l);
    snprintf(want, sizeof want, "P2P intro %lld %s ", *id, peer);
    cr_assert_eq(strncmp(l, want, strlen(want)), 0, "%s", l);
}

/* The protocol: alice on node 1 asks for bob on node 3; both get one
 * introduction (one id, one key), each says hello on its own node, and
 * each learns the other's public address and candidates. */
static void connect_protocol(void)
{
    static struct stream a, b, pa, pb, m;
    int fa = join(0, &a, "alice");
    int fb = join(2, &b, "bob");
    EXPECT(&a, " bob 2\n");
    put(fa, "/connect BOB\n");
    char l[256];
    line_with(&a, "OK connect ", l, sizeof l);
    long long id, id_b;
    char key[40], key_b[40], want[256];
    cr_assert_eq(sscanf(l, "OK connect %lld bob\n", &id), 1, "%s", l);
    snprintf(want, sizeof want, "OK connect %lld bob\n", id);
    cr_assert_str_eq(l, want);
    intro_of(&a, "bob", 0, &id_b, key);
    cr_assert_eq(id_b, id);
    intro_of(&b, "alice", 1, &id_b, key_b);
    cr_assert_eq(id_b, id);
    cr_assert_str_eq(key_b, key);
    cr_assert_eq(count(&a, "P2P intro "), 1);
    cr_assert_eq(count(&b, "P2P intro "), 1);

    /* The rendezvous, each side on its own node. */
    int ka = fx_raw(port[0], 0), kb = fx_raw(port[2], 0);
    stream_init(&pa, ka);
    stream_init(&pb, kb);
    snprintf(want, sizeof want, "/p2p hello %lld 0 %s 10.1.0.1:4000 10.2.0.1:4000\n", id, key);
    put(ka, want);
    line_with(&pa, "OK p2p hello ", l, sizeof l);
    char pub_a[80], pub_b[80];
    cr_assert_eq(sscanf(l, "OK p2p hello %79s", pub_a), 1, "%s", l);
    cr_assert_eq(strncmp(pub_a, "127.0.0.1:", 10), 0, "%s", l);
    /* bob's side says hello on node 1: not its node, refused */
    int km = fx_raw(port[0], 0);
    stream_init(&m, km);
    snprintf(want, sizeof want, "/p2p hello %lld 1 %s 10.3.0.1:1\n", id, key);
    put(km, want);
    EXPECT(&m, "ERR p2p no such introduction (or a wrong key)\n");
    /* a wrong key on the right node, refused */
    snprintf(want, sizeof want, "/p2p hello %lld 1 %032d 10.3.0.1:1\n", id, 7);
    put(kb, want);
    EXPECT(&pb, "ERR p2p no such introduction (or a wrong key)\n");
    snprintf(want, sizeof want, "/p2p hello %lld 1 %s 10.9.0.2:5000\n", id, key);
    put(kb, want);
    line_with(&pb, "OK p2p hello ", l, sizeof l);
    cr_assert_eq(sscanf(l, "OK p2p hello %79s", pub_b), 1, "%s", l);
    snprintf(want, sizeof want, "P2P peer %lld %s 10.1.0.1:4000 10.2.0.1:4000\n", id, pub_a);
    line_with(&pb, "P2P peer ", l, sizeof l);
    cr_assert_str_eq(l, want);
    snprintf(want, sizeof want, "P2P peer %lld %s 10.9.0.2:5000\n", id, pub_b);
    line_with(&pa, "P2P peer ", l, sizeof l);
    cr_assert_str_eq(l, want);
    cr_assert_eq(count(&pa, "P2P peer"), 1);
    cr_assert_eq(count(&pb, "P2P peer"), 1);
    /* No byte relay between two nodes: said at once. */
    int kr = fx_raw(port[0], 0);
    static struct stream rl;
    stream_init(&rl, kr);
    snprintf(want, sizeof want, "/p2p relay %lld 0 %s\n", id, key);
    put(kr, want);
    EXPECT(&rl, "ERR p2p no relay across nodes: bob is on another node\n");

    /* Refusals, as on one node. */
    put(fa, "/connect nobody\n");
    EXPECT(&a, "ERR nouser nobody is not online\n");
    put(fa, "/connect alice\n");
    EXPECT(&a, "ERR nouser alice is not online\n");
    put(fb, "/register pw1234\n");
    EXPECT(&b, "OK register bob\n");
    put(fb, "/quit\n");
    EXPECT(&b, "BYE");
    EXPECT(&a, " bob 1\n");
    put(fa, "/connect bob\n"); /* known, registered, offline */
    EXPECT(&a, "ERR nouser bob is not online\n");
    put(fa, "/connect b@d\n");
    EXPECT(&a, "ERR nouser b@d is not online\n");
    cr_assert_eq(count(&a, "OK connect "), 1);
}

Test(chat_cluster, connect_across_nodes_protocol) { setup(false); connect_protocol(); }
Test(chat_cluster, connect_across_nodes_protocol_redis_cluster)
{
    setup(true);
    connect_protocol();
}

/* The node of the target does not answer (stopped): the asker is told
 * after SS_CHAT_ASK_TIMEOUT_MS, and its later commands are answered. */
static void connect_timeout(void)
{
    static struct stream a, b;
    int fa = join(0, &a, "alice");
    join(2, &b, "bob");
    EXPECT(&a, " bob 2\n");
    cr_assert_eq(kill(node[2]->pid, SIGSTOP), 0);
    put(fa, "/connect bob\n");
    put(fa, "/since 2026-01-01T00:00:00.000Z\n");
    bool told = expect(&a, "ERR timeout bob's node did not answer; try again\n", 20000);
    kill(node[2]->pid, SIGCONT);
    cr_assert(told, "%s", a.buf);
    EXPECT(&a, "OK since\n");
    cr_assert_eq(count(&a, "P2P intro"), 0);
    /* Awake again: a next try works (once node 3 renewed bob's lease,
     * which may have run out while it was stopped). */
    for (int tries = 0;; tries++) {
        cr_assert_lt(tries, 100, "%s", a.buf);
        put(fa, "/connect bob\n");
        if (expect2(&a, "OK connect ", "ERR nouser bob is not online\n", 10000) == 1)
            break;
        usleep(100 * 1000);
    }
    EXPECT(&b, "P2P intro ");
}

Test(chat_cluster, connect_across_nodes_timeout) { setup(false); connect_timeout(); }
Test(chat_cluster, connect_across_nodes_timeout_redis_cluster)
{
    setup(true);
    connect_timeout();
}

/* Our client as nick on node i (files into its own directory), with
 * extra (NULL or "--option", "value") at the end. */
static struct th_proc *client_on_ex(int i, const char *nick, struct stream *s,
                                    const char *opt, const char *val)
{
    char portstr[16], d[200], cmd[300];
    snprintf(portstr, sizeof portstr, "%d", port[i]);
    snprintf(d, sizeof d, "%s/%s", dir, nick);
    snprintf(cmd, sizeof cmd, "mkdir -p %s", d);
    cr_assert_eq(system(cmd), 0);
    struct th_proc p;
    cr_assert_eq(th_spawn_cli(&p, "chat", "127.0.0.1", portstr, "--name", nick, "--dir", d,
                              opt, val, NULL), 0);
    struct th_proc *t = track(p);
    stream_init(s, t->out);
    char you[64];
    snprintf(you, sizeof you, "-- you are %s", nick);
    cr_assert(expect(s, you, 20000), "%s", s->buf);
    return t;
}

static struct th_proc *client_on(int i, const char *nick, struct stream *s)
{
    return client_on_ex(i, nick, s, NULL, NULL);
}

/* Over the point-to-point path alice and bob are on: text from alice to
 * bob, "and back", and a 300 kB file (name) to bob, cmp-equal. */
static void p2p_exchange(struct th_proc *alice, struct stream *a, struct th_proc *bob,
                         struct stream *b, const char *text, const char *name)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "/to bob %s\n", text);
    put(alice->in, cmd);
    snprintf(cmd, sizeof cmd, "[alice] <alice> %s\n", text);
    cr_assert(expect(b, cmd, 10000), "%s", b->buf);
    put(bob->in, "/to alice and back\n");
    cr_assert(expect(a, "[bob] <bob> and back\n", 10000), "%s", a->buf);
    snprintf(cmd, sizeof cmd, "head -c 300000 /dev/urandom > %s/%s", dir, name);
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "/sendto bob %s/%s\n", dir, name);
    put(alice->in, cmd);
    cr_assert(expect(b, "[alice] -- received file from peer, SHA-256 verified:", 30000),
              "%s", b->buf);
    snprintf(cmd, sizeof cmd, "cmp %s/%s %s/bob/%s", dir, name, dir, name);
    cr_assert_eq(system(cmd), 0);
}

/* End to end with our client: alice on node 1, bob on node 3, connected
 * point to point; a line each way, byte for byte, and a file; then a file
 * through the servers. */
static void connect_e2e(void)
{
    static struct stream a, b;
    struct th_proc *alice = client_on(0, "alice", &a);
    struct th_proc *bob = client_on(2, "bob", &b);
    put(alice->in, "/connect bob\n");
    cr_assert(expect(&a, "[bob] -- connected: ", 30000), "%s", a.buf);
    cr_assert(expect(&b, "[alice] -- connected: ", 30000), "%s", b.buf);
    cr_assert_eq(count(&a, "relayed"), 0, "%s", a.buf);
    p2p_exchange(alice, &a, bob, &b,
                 "hello from node 1 to node 3, point to point: \xc3\xa9\xe2\x82\xac!", "p.bin");
    char cmd[600];

    /* Through the servers: uploaded to node 1, pulled by node 3 as bob's
     * queue drains (1 MiB: 512 chunks, one in flight). */
    snprintf(cmd, sizeof cmd, "head -c 1048576 /dev/urandom > %s/s.bin", dir);
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "/send bob %s/s.bin\n", dir);
    put(alice->in, cmd);
    cr_assert(expect(&b, "-- alice offers s.bin (1048576 bytes, SHA-256 ", 30000), "%s", b.buf);
    char *acc = strstr(b.buf + b.pos, "/accept ");
    cr_assert_not_null(acc);
    long long id = atoll(acc + 8);
    snprintf(cmd, sizeof cmd, "/accept %lld\n", id);
    put(bob->in, cmd);
    snprintf(cmd, sizeof cmd, "-- received file %lld, SHA-256 verified:", id);
    cr_assert(expect(&b, cmd, 60000), "%s", b.buf);
    snprintf(cmd, sizeof cmd, "cmp %s/s.bin %s/bob/s.bin", dir, dir);
    cr_assert_eq(system(cmd), 0);
}

Test(chat_cluster, connect_across_nodes_end_to_end) { setup(false); connect_e2e(); }

/* Across nodes over UDP: alice on node 1 and bob on node 3 skip the TCP
 * steps; each says its UDP hello to its own node, the nodes pass the
 * addresses on ("uhello"), and the stream is our user-space TCP over the
 * punched UDP path; a line each way and a file. */
Test(chat_cluster, connect_across_nodes_over_udp)
{
    setup(false);
    static struct stream a, b;
    struct th_proc *alice = client_on_ex(0, "alice", &a, "--p2p-skip", "direct,punch");
    struct th_proc *bob = client_on_ex(2, "bob", &b, "--p2p-skip", "direct,punch");
    put(alice->in, "/connect bob\n");
    cr_assert(expect(&a, "[bob] -- connected: UDP hole punched with 127.0.0.1:", 30000), "%s",
              a.buf);
    cr_assert(expect(&a, " (user-space TCP)\n", 1000), "%s", a.buf);
    cr_assert(expect(&b, "[alice] -- connected: UDP hole punched with 127.0.0.1:", 30000),
              "%s", b.buf);
    p2p_exchange(alice, &a, bob, &b, "node 1 to node 3 over UDP", "u.bin");
}
Test(chat_cluster, connect_across_nodes_end_to_end_redis_cluster)
{
    setup(true);
    connect_e2e();
}

/* ---- file offers across nodes ----------------------------------------------- */

static void sha_hex(const unsigned char *d, size_t n, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    cr_assert(EVP_Digest(d, n, md, &mdlen, EVP_sha256(), NULL));
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Upload data as NAME to rcpt over fd (stream s): the offer's id, after
 * "OK upload ID how" (how: "offered" or "stored"). */
static long long upload(int fd, struct stream *s, const char *rcpt, const unsigned char *d,
                        size_t n, const char *name, const char *how)
{
    char sha[65], line[4000], l[256];
    sha_hex(d, n, sha);
    snprintf(line, sizeof line, "/offer %s %zu %s %s\n", rcpt, n, sha, name);
    put(fd, line);
    line_with(s, "OK offer ", l, sizeof l);
    long long id;
    cr_assert_eq(sscanf(l, "OK offer %lld\n", &id), 1, "%s", l);
    for (size_t off = 0; off < n; off += 2048) {
        size_t k = n - off < 2048 ? n - off : 2048;
        char b64[3000];
        EVP_EncodeBlock((unsigned char *)b64, d + off, (int)k);
        snprintf(line, sizeof line, "/chunk %lld %zu %s\n", id, off, b64);
        put(fd, line);
    }
    snprintf(line, sizeof line, "/done %lld\n", id);
    put(fd, line);
    snprintf(line, sizeof line, "OK upload %lld %s\n", id, how);
    cr_assert(expect(s, line, 20000), "no \"%s\" in:\n%s", line, s->buf);
    return id;
}

/* The CHUNK lines of download id in s (up to FILEEND), decoded into out:
 * the byte count. */
static size_t downloaded(struct stream *s, long long id, unsigned char *out, size_t cap)
{
    char end[64], pre[64];
    snprintf(end, sizeof end, "FILEEND %lld\n", id);
    cr_assert(expect(s, end, 60000), "no FILEEND in:\n%.3000s", s->buf);
    snprintf(pre, sizeof pre, "\nCHUNK %lld ", id);
    size_t n = 0;
    for (char *p = strstr(s->buf, pre); p; p = strstr(p + 1, pre)) {
        unsigned long long off;
        char *q = p + strlen(pre);
        cr_assert_eq(sscanf(q, "%llu", &off), 1);
        cr_assert_eq(off, n, "chunk at %llu, expected %zu", off, n);
        char *b = strchr(q, ' ') + 1, *e = strchr(b, '\n');
        int blen = (int)(e - b);
        unsigned char tmp[2100];
        cr_assert_leq(blen, 2732);
        int k = EVP_DecodeBlock(tmp, (unsigned char *)b, blen);
        k -= (b[blen - 1] == '=') + (b[blen - 2] == '=');
        cr_assert_leq(n + (size_t)k, cap);
        memcpy(out + n, tmp, (size_t)k);
        n += (size_t)k;
    }
    return n;
}

/* "/accept ID" on fd is refused: not an offer for this user (any more). */
static void no_offer(int fd, struct stream *s, long long id)
{
    char l[96];
    snprintf(l, sizeof l, "/accept %lld\n", id);
    put(fd, l);
    snprintf(l, sizeof l, "ERR nofile no offer %lld for you\n", id);
    EXPECT(s, l);
}

/* alice on node 1 offers bob on node 2 a file: bob sees the offer, accepts
 * it, and gets every byte (SHA-256 equal); alice is told. A second offer
 * is declined, and is gone on both nodes; the recipient's bound holds. */
static void files(void)
{
    static struct stream a, b, c;
    int fa = join(0, &a, "alice");
    int fb = join(1, &b, "bob");
    join(2, &c, "carol");
    EXPECT(&a, " carol 3\n");
    enum { N = 200000 };
    static unsigned char data[N], got[N + 4096];
    for (size_t i = 0; i < N; i++)
        data[i] = (unsigned char)(i * 131 + i / 977);
    char sha[65], want[256], l[256];
    sha_hex(data, N, sha);
    long long id = upload(fa, &a, "bob", data, N, "across.bin", "offered");
    snprintf(want, sizeof want, "OFFER %lld alice %d %s across.bin\n", id, N, sha);
    line_with(&b, "OFFER ", l, sizeof l);
    cr_assert_str_eq(l, want);
    snprintf(want, sizeof want, "/accept %lld\n", id);
    put(fb, want);
    snprintf(want, sizeof want, "OK accept %lld\nFILE %lld %d %s across.bin\n", id, id, N, sha);
    EXPECT(&b, want);
    snprintf(want, sizeof want, "ACCEPTED %lld bob\n", id);
    EXPECT(&a, want);
    size_t n = downloaded(&b, id, got, sizeof got);
    cr_assert_eq(n, N);
    char sha_got[65];
    sha_hex(got, n, sha_got);
    cr_assert_str_eq(sha_got, sha);
    no_offer(fb, &b, id); /* taken: not offered twice */

    /* Declined: alice is told, and it cannot be accepted afterwards. */
    long long id2 = upload(fa, &a, "bob", data, 5000, "no.bin", "offered");
    snprintf(want, sizeof want, "OFFER %lld alice 5000 ", id2);
    EXPECT(&b, want);
    snprintf(want, sizeof want, "/decline %lld\n", id2);
    put(fb, want);
    snprintf(want, sizeof want, "OK decline %lld\n", id2);
    EXPECT(&b, want);
    snprintf(want, sizeof want, "DECLINED %lld bob\n", id2);
    EXPECT(&a, want);
    no_offer(fb, &b, id2);
    /* carol cannot take bob's offer on her node. */
    long long id3 = upload(fa, &a, "bob", data, 3000, "three.bin", "offered");
    no_offer(c.fd, &c, id3);

    /* Node 1 keeps at most --offers-max (3) for bob: five fits there only
     * because node 1 deleted the delivered and the declined file. */
    upload(fa, &a, "bob", data, 10, "four.bin", "offered");
    EXPECT(&b, " four.bin\n");
    upload(fa, &a, "bob", data, 10, "five.bin", "offered");
    EXPECT(&b, " five.bin\n");
    /* bob's node shows him at most 3, from any node: carol's node has
     * none for bob, node 2 refuses. */
    char sha10[65];
    sha_hex(data, 10, sha10);
    snprintf(want, sizeof want, "/offer bob 10 %s six.bin\n", sha10);
    put(c.fd, want);
    EXPECT(&c, "ERR quota bob has 3 offers waiting\n");
    put(fb, "/history 1\n"); /* a round trip: no sixth offer came */
    EXPECT(&b, "OK history ");
    cr_assert_eq(count(&b, "six.bin"), 0);
}

Test(chat_cluster, files_across_nodes) { setup(false); files(); }
Test(chat_cluster, files_across_nodes_redis_cluster) { setup(true); files(); }
