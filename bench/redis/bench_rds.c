/* bench-rds: the chat's Redis layer (src/apps/chat_redis.c) driving one
 * redis-server, for bench/redis/run, which compares it with
 * redis-benchmark (hiredis, same server, same pipeline depth) in the same
 * run.
 *
 *   bench-rds SPEC SERVER_PID N WINDOW set|pub
 *
 * set: N SETs of a 16-byte value, WINDOW in flight at a time.
 * pub: one subscription, N PUBLISH (SPUBLISH on a cluster) of 16 bytes,
 *      WINDOW in flight; done when all N were delivered to us.
 * Prints one line:
 *   ops=N rate=R/s client_us=C server_us=S
 * (C: this process's CPU time per operation; S: the server's, from
 * /proc/SERVER_PID/stat; for pub an operation is a publish plus its
 * delivery.) Exit 1 on any error or missing delivery.
 */
#include "apps/chat_redis.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "sockstack/reactor.h"

static ss_loop *loop;
static ss__rds *rds;
static long total, window, sent, acked, delivered, errors;
static bool pub;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* utime + stime of pid, seconds (fields 14 and 15 of /proc/PID/stat). */
static double proc_cpu_s(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void fill(void);

static void on_done(void *arg, const redisReply *r, int err)
{
    if (err || !r || r->type == REDIS_REPLY_ERROR || (pub && r->integer != 1))
        errors++;
    acked++;
    fill();
}

static void on_msg(void *arg, const char *channel, const char *data, size_t len)
{
    if (len == 16)
        delivered++;
    else
        errors++;
}

/* Keep WINDOW commands in flight until all are sent. */
static void fill(void)
{
    static const char val[16] = "0123456789abcdef";
    while (sent < total && sent - acked < window) {
        int rc;
        if (pub) {
            rc = ss__rds_publish(rds, "bench", val, sizeof val, on_done, NULL);
        } else {
            char key[32];
            snprintf(key, sizeof key, "key:%ld", sent % 1000);
            const char *argv[] = {"SET", key, val};
            size_t lens[] = {3, strlen(key), sizeof val};
            rc = ss__rds_cmd(rds, key, on_done, NULL, 3, argv, lens);
        }
        if (rc != 0) {
            errors++;
            acked++;
        }
        sent++;
    }
}

static bool finished(void)
{
    return acked == total && (!pub || delivered + errors >= total);
}

int main(int argc, char **argv)
{
    if (argc != 6 || (strcmp(argv[5], "set") && strcmp(argv[5], "pub"))) {
        fprintf(stderr, "usage: bench-rds SPEC SERVER_PID N WINDOW set|pub\n");
        return 2;
    }
    long spid = atol(argv[2]);
    total = atol(argv[3]);
    window = atol(argv[4]);
    pub = strcmp(argv[5], "pub") == 0;
    if (total <= 0 || window <= 0 || window > 4096) {
        fprintf(stderr, "bench-rds: N > 0, 0 < WINDOW <= 4096\n");
        return 2;
    }
    if (ss_loop_new(&loop) != 0)
        return 1;
    struct ss__rds_cfg cfg = {.spec = argv[1], .timeout_ms = 10000};
    int rc = ss__rds_open(loop, &cfg, &rds);
    if (rc != 0) {
        fprintf(stderr, "bench-rds: open %s: %s\n", argv[1], strerror(-rc));
        return 1;
    }
    if (pub && ss__rds_subscribe(rds, "bench", on_msg, NULL) != 0)
        return 1;
    double end = now_s() + 10;
    while ((!ss__rds_up(rds) || (pub && !ss__rds_subscribed(rds, "bench"))) && now_s() < end)
        ss_loop_run_once(loop, 50);
    if (!ss__rds_up(rds)) {
        fprintf(stderr, "bench-rds: %s not up\n", argv[1]);
        return 1;
    }
    double t0 = now_s(), c0 = self_cpu_s(), s0 = proc_cpu_s(spid);
    fill();
    end = t0 + 120;
    while (!finished() && now_s() < end)
        ss_loop_run_once(loop, 100);
    double t = now_s() - t0, c = self_cpu_s() - c0, s = proc_cpu_s(spid) - s0;
    ss__rds_close(rds);
    ss_loop_free(loop);
    if (!finished() || errors) {
        fprintf(stderr, "bench-rds: acked %ld delivered %ld errors %ld of %ld\n", acked,
                delivered, errors, total);
        return 1;
    }
    printf("ops=%ld rate=%.0f/s client_us=%.2f server_us=%.2f\n", total, (double)total / t,
           c * 1e6 / (double)total, s * 1e6 / (double)total);
    return 0;
}
