/* Our chat client on a cluster (issue 14, "node 2 is killed with SIGKILL:
 * its clients reconnect elsewhere, they lose no acknowledged message, and
 * they see no duplicate"): three `serve chat --cluster` nodes on one Redis
 * (appendonly yes), and on a Redis Cluster of 3 masters; two of our clients
 * (line mode) on node 2, alice on a raw socket on node 1 whose every line
 * is acknowledged (OK sent) before the next. Node 2 is killed in the middle
 * of her lines; each of our clients must then show all of them, once each,
 * in order. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../chat/fixture.h"
#include "redis_harness.h"

#define NODES 3
#define LINES 30
#define KILL_AFTER 12

static struct th_redis srv = {.pid = -1};
static struct th_redis_cluster rc;
static char spec[512];
static int port[NODES];
static struct th_proc *node[NODES];

static void setup(bool cl)
{
    th_redis_require();
    fx_setup();
    cr_assert_eq(th_redis_start_store(cl, &srv, &rc, spec, sizeof spec), 0);
    for (int i = 0; i < NODES; i++) {
        char *argv[] = {(char *)th_sockstack(), "serve", "chat", "-b", "127.0.0.1", "--port",
                        "0", "--grace", "0", "--cluster", spec, "--lease", "1500", NULL};
        struct th_proc p;
        cr_assert_eq(th_spawn(&p, argv), 0);
        node[i] = track(p);
        port[i] = th_wait_listening(node[i], 20000, NULL, 0);
        cr_assert_gt(port[i], 0, "node %d did not start", i + 1);
    }
}

static void teardown(void)
{
    fx_teardown();
    th_redis_cleanup(&srv);
    th_redis_cluster_cleanup(&rc);
}

TestSuite(chat_cluster_client, .fini = teardown, .timeout = 180);

/* Our client with the three nodes, node 2 first (--in-order). */
static struct th_proc *client(struct stream *s, const char *nick)
{
    char n1[32], n2[32], n3[32];
    snprintf(n1, sizeof n1, "127.0.0.1:%d", port[0]);
    snprintf(n2, sizeof n2, "127.0.0.1:%d", port[1]);
    snprintf(n3, sizeof n3, "127.0.0.1:%d", port[2]);
    char *argv[] = {(char *)th_sockstack(), "chat", "--server", n2, "--server", n3,
                    "--server", n1, "--in-order", "--name", (char *)nick, "--plain", "--dir",
                    dir, NULL};
    struct th_proc p;
    cr_assert_eq(th_spawn(&p, argv), 0);
    struct th_proc *t = track(p);
    stream_init(s, t->out);
    return t;
}

static void node2_dies(void)
{
    static struct stream b, c, a;
    struct th_proc *bob = client(&b, "bob");
    client(&c, "carol");
    char want[128];
    snprintf(want, sizeof want, "-- connected to 127.0.0.1:%d (127.0.0.1:%d)\n", port[1],
             port[1]);
    EXPECT(&b, want);
    EXPECT(&c, want);
    EXPECT(&b, "-- you are bob (");
    EXPECT(&c, "-- you are carol (");
    int alice = fx_join(port[0], &a, "alice");
    /* bob's own line, acknowledged (alice sees it): not shown to him twice */
    put(bob->in, "bob was here\n");
    EXPECT(&a, " bob bob was here\n");
    char all[LINES * 24] = "";
    size_t alen = 0;
    for (int i = 1; i <= LINES; i++) {
        char line[32];
        snprintf(line, sizeof line, "line %02d\n", i);
        put(alice, line);
        EXPECT(&a, "OK sent ");
        alen += (size_t)snprintf(all + alen, sizeof all - alen, "<alice> line %02d\n", i);
        if (i == KILL_AFTER) {
            cr_assert_eq(kill(node[1]->pid, SIGKILL), 0);
            cr_assert_gt(th_wait(node[1], 5000), 0);
        }
    }
    /* both are on node 3 (the next in their list) and caught up */
    snprintf(want, sizeof want, "-- connected to 127.0.0.1:%d (127.0.0.1:%d)\n", port[2],
             port[2]);
    EXPECT(&b, want);
    EXPECT(&c, want);
    snprintf(want, sizeof want, "<alice> line %02d\n", LINES);
    cr_assert(expect(&b, want, 30000), "%s", b.buf);
    cr_assert(expect(&c, want, 30000), "%s", c.buf);
    /* a last line after the switch, live, then nothing more may come */
    put(alice, "after\n");
    EXPECT(&b, "<alice> after\n");
    EXPECT(&c, "<alice> after\n");
    pump(&b, 300);
    pump(&c, 300);
    alen += (size_t)snprintf(all + alen, sizeof all - alen, "<alice> after\n");
    char got[LINES * 24 + 64];
    fx_shown(&b, "<alice> ", got, sizeof got);
    cr_assert_str_eq(got, all, "bob:\n%s", b.buf);
    fx_shown(&c, "<alice> ", got, sizeof got);
    cr_assert_str_eq(got, all, "carol:\n%s", c.buf);
    cr_assert_eq(count(&b, "<bob> bob was here\n"), 1, "%s", b.buf);
    cr_assert_eq(count(&c, "<bob> bob was here\n"), 1, "%s", c.buf);
    close(alice);
}

Test(chat_cluster_client, node2_killed_clients_lose_nothing_acknowledged_and_see_no_repeat)
{
    setup(false);
    node2_dies();
}

Test(chat_cluster_client, node2_killed_redis_cluster)
{
    setup(true);
    node2_dies();
}
