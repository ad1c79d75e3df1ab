/* The Redis test harness against real redis-server processes: a server
 * starts with appendonly yes, keeps an acknowledged write across a SIGKILL
 * and restart (AOF), and three servers form a cluster whose slots are all
 * served. */
#include "redis_harness.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

static struct th_redis srv = {.pid = -1};
static struct th_redis_cluster cl;

static void fini_srv(void)
{
    th_redis_cleanup(&srv);
}

static void fini_cluster(void)
{
    th_redis_cluster_cleanup(&cl);
}

Test(redis_harness, aof_survives_sigkill, .fini = fini_srv, .timeout = 60)
{
    th_redis_require();
    cr_assert_eq(th_redis_start(&srv, false), 0);
    char buf[256];
    cr_assert_eq(th_redis_query(&srv, buf, sizeof buf, "CONFIG", "GET", "appendonly", NULL) >= 0, 1);
    char *out = NULL;
    cr_assert_eq(th_redis_cli(&srv, &out, "CONFIG", "GET", "appendonly", NULL), 0);
    cr_assert_str_eq(out, "appendonly\nyes\n");
    free(out);
    cr_assert_eq(th_redis_query(&srv, buf, sizeof buf, "SET", "k", "v1", NULL), 2);
    cr_assert_str_eq(buf, "OK");
    int port = srv.port;
    int st = th_redis_stop(&srv, SIGKILL);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %d", st);
    cr_assert_eq(srv.pid, -1);
    cr_assert_lt(th_redis_query(&srv, buf, sizeof buf, "PING", NULL), 0);
    cr_assert_eq(th_redis_restart(&srv), 0);
    cr_assert_eq(srv.port, port);
    cr_assert_eq(th_redis_query(&srv, buf, sizeof buf, "GET", "k", NULL), 2);
    cr_assert_str_eq(buf, "v1");
    cr_assert_eq(th_redis_query(&srv, buf, sizeof buf, "GET", "nokey", NULL), 5);
    cr_assert_str_eq(buf, "(nil)");
    cr_assert_gt(th_redis_query(&srv, buf, sizeof buf, "NOSUCHCMD", NULL), 0);
    cr_assert_eq(strncmp(buf, "-ERR unknown command", 20), 0, "%s", buf);
    char spec[64];
    char want[64];
    snprintf(want, sizeof want, "redis://127.0.0.1:%d", port);
    cr_assert_str_eq(th_redis_spec(&srv, spec, sizeof spec), want);
    char dir[64];
    snprintf(dir, sizeof dir, "%s", srv.dir);
    th_redis_cleanup(&srv);
    struct stat sb;
    cr_assert_eq(stat(dir, &sb), -1, "%s left behind", dir);
}

Test(redis_harness, cluster_of_three, .fini = fini_cluster, .timeout = 90)
{
    th_redis_require();
    cr_assert_eq(th_redis_cluster_start(&cl), 0);
    char info[4096];
    for (int i = 0; i < TH_REDIS_CLUSTER_N; i++) {
        cr_assert_gt(th_redis_query(&cl.node[i], info, sizeof info, "CLUSTER", "INFO", NULL), 0);
        cr_assert_not_null(strstr(info, "cluster_state:ok"), "%s", info);
        cr_assert_not_null(strstr(info, "cluster_known_nodes:3\r\n"), "%s", info);
        cr_assert_not_null(strstr(info, "cluster_size:3\r\n"), "%s", info);
    }
    /* Each master owns a third of the slots: CLUSTER COUNTKEYSINSLOT is
     * answered only by the owner; a non-owner of a key answers MOVED. */
    char buf[256];
    int moved = 0, ok = 0;
    for (int i = 0; i < TH_REDIS_CLUSTER_N; i++) {
        int n = th_redis_query(&cl.node[i], buf, sizeof buf, "SET", "somekey", "x", NULL);
        cr_assert_gt(n, 0);
        if (strncmp(buf, "-MOVED 11058 127.0.0.1:", 23) == 0)
            moved++;
        else if (strcmp(buf, "OK") == 0)
            ok++;
    }
    cr_assert_eq(ok, 1);
    cr_assert_eq(moved, 2);
    char spec[256];
    th_redis_cluster_spec(&cl, spec, sizeof spec);
    cr_assert_eq(strncmp(spec, "redis://127.0.0.1:", 18), 0);
    int commas = 0;
    for (char *p = spec; *p; p++)
        commas += *p == ',';
    cr_assert_eq(commas, 2);
}
