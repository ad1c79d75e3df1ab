/* Redis for tests: see redis_harness.h. */
#include "redis_harness.h"

#include "harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum {
    READY_MS = 15000,    /* start, AOF reload, cluster create: bounded waits */
    QUERY_MS = 2000,
    PORT_TRIES = 20,
};

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static bool on_path(const char *prog)
{
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/bin:/bin";
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save = NULL, *d = strtok_r(buf, ":", &save); d;
         d = strtok_r(NULL, ":", &save)) {
        char f[4200];
        snprintf(f, sizeof f, "%s/%s", d, prog);
        if (access(f, X_OK) == 0)
            return true;
    }
    return false;
}

bool th_redis_available(void)
{
    return on_path("redis-server") && on_path("redis-cli");
}

void th_redis_require(void)
{
    if (!th_redis_available())
        cr_skip_test("redis-server/redis-cli not installed "
                     "(scripts/install-deps.sh installs redis-server)");
}

/* True when 127.0.0.1:port can be bound right now. */
static bool port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* A port P with P and P + 10000 (the cluster bus) free: Redis has no
 * "--port 0", so we pick one and retry when the server still loses a race. */
static int pick_port(void)
{
    static unsigned seed;
    if (!seed)
        seed = (unsigned)getpid() * 2654435761u ^ (unsigned)now_ms();
    for (int i = 0; i < 200; i++) {
        int p = 20000 + (int)(rand_r(&seed) % 25000u);
        if (port_free(p) && port_free(p + 10000))
            return p;
    }
    return -EADDRINUSE;
}

static int spawn_server(struct th_redis *r)
{
    char port[16], log[96];
    snprintf(port, sizeof port, "%d", r->port);
    snprintf(log, sizeof log, "%s/redis.log", r->dir);
    const char *argv[40];
    int n = 0;
    argv[n++] = "redis-server";
    argv[n++] = "--port";           argv[n++] = port;
    argv[n++] = "--bind";           argv[n++] = "127.0.0.1";
    argv[n++] = "--dir";            argv[n++] = r->dir;
    argv[n++] = "--appendonly";     argv[n++] = "yes";
    /* A reply means the write is in the AOF on disk: a SIGKILL (or a
     * machine crash) loses nothing that was acknowledged. */
    argv[n++] = "--appendfsync";    argv[n++] = "always";
    argv[n++] = "--save";           argv[n++] = "";
    argv[n++] = "--daemonize";      argv[n++] = "no";
    argv[n++] = "--protected-mode"; argv[n++] = "no";
    argv[n++] = "--logfile";        argv[n++] = log;
    if (r->cluster) {
        argv[n++] = "--cluster-enabled";     argv[n++] = "yes";
        argv[n++] = "--cluster-config-file"; argv[n++] = "nodes.conf";
        argv[n++] = "--cluster-node-timeout"; argv[n++] = "3000";
    }
    argv[n] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        /* Dies with the test worker, whatever happens to it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
            dup2(nul, 2);
        }
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    r->pid = pid;
    return 0;
}

/* Wait until r answers PING with PONG (0), exits (-EADDRINUSE, the usual
 * cause), or READY_MS pass (-ETIMEDOUT). */
static int wait_ready(struct th_redis *r)
{
    long deadline = now_ms() + READY_MS;
    while (now_ms() < deadline) {
        int st;
        if (waitpid(r->pid, &st, WNOHANG) == r->pid) {
            r->pid = -1;
            return -EADDRINUSE;
        }
        char buf[64];
        if (th_redis_query(r, buf, sizeof buf, "PING", NULL) > 0 &&
            strcmp(buf, "PONG") == 0)
            return 0;
        usleep(20000);
    }
    return -ETIMEDOUT;
}

int th_redis_start(struct th_redis *r, bool cluster)
{
    *r = (struct th_redis){.pid = -1, .cluster = cluster};
    snprintf(r->dir, sizeof r->dir, "/tmp/ss-redis-XXXXXX");
    if (!mkdtemp(r->dir)) {
        r->dir[0] = '\0';
        return -errno;
    }
    int rc = -EADDRINUSE;
    for (int i = 0; i < PORT_TRIES && rc == -EADDRINUSE; i++) {
        r->port = pick_port();
        if (r->port < 0)
            return r->port;
        rc = spawn_server(r);
        if (rc == 0)
            rc = wait_ready(r);
    }
    if (rc != 0)
        th_redis_stop(r, SIGKILL);
    return rc;
}

int th_redis_stop(struct th_redis *r, int sig)
{
    if (r->pid <= 0)
        return -1;
    kill(r->pid, sig);
    int st = -1;
    long deadline = now_ms() + READY_MS;
    while (now_ms() < deadline) {
        if (waitpid(r->pid, &st, WNOHANG) == r->pid) {
            r->pid = -1;
            return st;
        }
        usleep(5000);
    }
    kill(r->pid, SIGKILL);
    waitpid(r->pid, &st, 0);
    r->pid = -1;
    return -1;
}

int th_redis_restart(struct th_redis *r)
{
    if (r->pid > 0)
        th_redis_stop(r, SIGTERM);
    /* The port was ours a moment ago; wait briefly while the kernel lets
     * it go (the server binds with SO_REUSEADDR, TIME-WAIT is no obstacle). */
    int rc = -EADDRINUSE;
    for (int i = 0; i < PORT_TRIES && rc == -EADDRINUSE; i++) {
        rc = spawn_server(r);
        if (rc == 0)
            rc = wait_ready(r);
        if (rc == -EADDRINUSE)
            usleep(100000);
    }
    return rc;
}

void th_redis_cleanup(struct th_redis *r)
{
    if (r->pid > 0)
        th_redis_stop(r, SIGKILL);
    r->pid = -1;
    /* A child the server forked (the AOF rewrite at start-up) may still
     * be writing into the dir for a moment: remove until it is gone. */
    struct stat sb;
    for (int i = 0; r->dir[0] && i < 100 && stat(r->dir, &sb) == 0; i++) {
        th_rm_rf(r->dir);
        if (stat(r->dir, &sb) == 0)
            usleep(20000);
    }
    r->dir[0] = '\0';
}

/* Append one RESP bulk string. */
static size_t put_bulk(char *out, size_t cap, size_t at, const char *s)
{
    int n = snprintf(out + at, at < cap ? cap - at : 0, "$%zu\r\n%s\r\n", strlen(s), s);
    return at + (size_t)(n > 0 ? n : 0);
}

/* Read until buf holds one complete simple reply; returns bytes or -errno. */
static int read_reply(int fd, char *buf, size_t cap, long deadline)
{
    size_t len = 0;
    for (;;) {
        char *eol = len ? memmem(buf, len, "\r\n", 2) : NULL;
        if (eol && buf[0] != '$')
            return (int)len;
        if (eol && buf[0] == '$') {
            long blen = strtol(buf + 1, NULL, 10);
            size_t head = (size_t)(eol - buf) + 2;
            if (blen < 0 || len >= head + (size_t)blen + 2)
                return (int)len;
        }
        if (len + 1 >= cap)
            return -EMSGSIZE;
        long left = deadline - now_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return -ETIMEDOUT;
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0)
            return n == 0 ? -ECONNRESET : -errno;
        len += (size_t)n;
    }
}

/* Append the NULL-terminated strings of ap to args from n on, up to max;
 * returns the new count. */
static int take_args(va_list ap, const char **args, int n, int max)
{
    const char *a;
    while (n < max && (a = va_arg(ap, const char *)) != NULL)
        args[n++] = a;
    return n;
}

int th_redis_query(const struct th_redis *r, char *buf, size_t cap, ...)
{
    char req[4096], raw[65536];
    const char *args[32];
    va_list ap;
    va_start(ap, cap);
    int argc = take_args(ap, args, 0, 32);
    va_end(ap);
    size_t at = (size_t)snprintf(req, sizeof req, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++)
        at = put_bulk(req, sizeof req, at, args[i]);
    if (at >= sizeof req)
        return -E2BIG;

    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int rc;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    rc = th_write_all(fd, req, at);
    if (rc == 0)
        rc = read_reply(fd, raw, sizeof raw, now_ms() + QUERY_MS);
    close(fd);
    if (rc < 0)
        return rc;
    raw[rc] = '\0';
    const char *body = raw + 1;
    size_t blen = strcspn(raw, "\r");
    blen = blen ? blen - 1 : 0;
    if (raw[0] == '-') {
        body = raw;
        blen++;
    } else if (raw[0] == '$') {
        long n = strtol(raw + 1, NULL, 10);
        if (n < 0) {
            body = "(nil)";
            blen = 5;
        } else {
            body = strstr(raw, "\r\n") + 2;
            blen = (size_t)n;
        }
    }
    if (cap == 0)
        return -EMSGSIZE;
    if (blen >= cap)
        blen = cap - 1;
    memcpy(buf, body, blen);
    buf[blen] = '\0';
    return (int)blen;
}

/* redis-cli with args from a NULL-terminated list; see th_redis_cli. */
static int cli_argv(const char *const *args, char **out)
{
    struct th_proc p;
    if (th_spawn(&p, (char *const *)args) != 0) {
        if (out)
            *out = calloc(1, 1);
        return -1;
    }
    close(p.in);
    p.in = -1;
    char *o = NULL, *e = NULL;
    ssize_t lo = th_read_all(p.out, &o, READY_MS);
    ssize_t le = th_read_all(p.err, &e, 1000);
    (void)le;
    int st = th_wait(&p, READY_MS);
    th_close_fds(&p);
    free(e);
    size_t n = lo > 0 ? (size_t)lo : 0;
    if (out) {
        *out = realloc(o, n + 1);
        (*out)[n] = '\0';
    } else {
        free(o);
    }
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int th_redis_cli(const struct th_redis *r, char **out, ...)
{
    char port[16];
    snprintf(port, sizeof port, "%d", r->port);
    const char *args[64] = {"redis-cli", "-h", "127.0.0.1", "-p", port};
    va_list ap;
    va_start(ap, out);
    int n = take_args(ap, args, 5, 63);
    va_end(ap);
    args[n] = NULL;
    return cli_argv(args, out);
}

int th_redis_cluster_wait_ok(struct th_redis_cluster *c, int timeout_ms)
{
    long deadline = now_ms() + timeout_ms;
    while (now_ms() < deadline) {
        int ok = 0, running = 0;
        for (int i = 0; i < TH_REDIS_CLUSTER_N; i++) {
            if (c->node[i].pid <= 0)
                continue;
            running++;
            char info[4096];
            if (th_redis_query(&c->node[i], info, sizeof info, "CLUSTER", "INFO", NULL) > 0 &&
                strstr(info, "cluster_state:ok") &&
                strstr(info, "cluster_slots_assigned:16384"))
                ok++;
        }
        if (running > 0 && ok == running)
            return 0;
        usleep(50000);
    }
    return -ETIMEDOUT;
}

int th_redis_cluster_start(struct th_redis_cluster *c)
{
    for (int i = 0; i < TH_REDIS_CLUSTER_N; i++)
        c->node[i] = (struct th_redis){.pid = -1};
    int rc = 0;
    for (int i = 0; i < TH_REDIS_CLUSTER_N && rc == 0; i++)
        rc = th_redis_start(&c->node[i], true);
    char addr[TH_REDIS_CLUSTER_N][32];
    const char *args[16] = {"redis-cli", "--cluster", "create"};
    int n = 3;
    for (int i = 0; i < TH_REDIS_CLUSTER_N; i++) {
        snprintf(addr[i], sizeof addr[i], "127.0.0.1:%d", c->node[i].port);
        args[n++] = addr[i];
    }
    args[n++] = "--cluster-replicas";
    args[n++] = "0";
    args[n++] = "--cluster-yes";
    args[n] = NULL;
    if (rc == 0 && cli_argv(args, NULL) != 0)
        rc = -EIO;
    if (rc == 0)
        rc = th_redis_cluster_wait_ok(c, READY_MS);
    if (rc != 0)
        th_redis_cluster_cleanup(c);
    return rc;
}

int th_redis_cluster_add_replica(struct th_redis_cluster *c, int master,
                                 struct th_redis *replica)
{
    int rc = th_redis_start(replica, true);
    if (rc != 0)
        return rc;
    char id[64], naddr[32], maddr[32];
    if (th_redis_query(&c->node[master], id, sizeof id, "CLUSTER", "MYID", NULL) != 40)
        return -EIO;
    snprintf(naddr, sizeof naddr, "127.0.0.1:%d", replica->port);
    snprintf(maddr, sizeof maddr, "127.0.0.1:%d", c->node[master].port);
    const char *args[] = {"redis-cli", "--cluster", "add-node", naddr, maddr,
                          "--cluster-slave", "--cluster-master-id", id, NULL};
    if (cli_argv(args, NULL) != 0)
        return -EIO;
    long deadline = now_ms() + READY_MS;
    while (now_ms() < deadline) {
        char info[4096];
        if (th_redis_query(replica, info, sizeof info, "INFO", "replication", NULL) > 0 &&
            strstr(info, "master_link_status:up"))
            return 0;
        usleep(50000);
    }
    return -ETIMEDOUT;
}

void th_redis_cluster_cleanup(struct th_redis_cluster *c)
{
    for (int i = 0; i < TH_REDIS_CLUSTER_N; i++)
        th_redis_cleanup(&c->node[i]);
}

const char *th_redis_spec(const struct th_redis *r, char *buf, size_t cap)
{
    snprintf(buf, cap, "redis://127.0.0.1:%d", r->port);
    return buf;
}

const char *th_redis_cluster_spec(const struct th_redis_cluster *c, char *buf,
                                  size_t cap)
{
    size_t at = (size_t)snprintf(buf, cap, "redis://");
    for (int i = 0; i < TH_REDIS_CLUSTER_N && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, "%s127.0.0.1:%d", i ? "," : "",
                               c->node[i].port);
    return buf;
}

int th_redis_start_store(bool cluster, struct th_redis *r, struct th_redis_cluster *c,
                         char *buf, size_t cap)
{
    int rc = cluster ? th_redis_cluster_start(c) : th_redis_start(r, false);
    if (rc == 0) {
        if (cluster)
            th_redis_cluster_spec(c, buf, cap);
        else
            th_redis_spec(r, buf, cap);
    }
    return rc;
}
