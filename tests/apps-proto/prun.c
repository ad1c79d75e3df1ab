/* Helpers for the proto end-to-end tests (see prun.h). */
#include "prun.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "harness.h"

char dir[128], keyf[160];

void prun_setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/ss-proto-%d-XXXXXX", (int)getpid());
    cr_assert_not_null(mkdtemp(dir));
    snprintf(keyf, sizeof keyf, "%s/key", dir);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "'%s' keygen '%s' 2>/dev/null", th_sockstack(), keyf);
    cr_assert_eq(system(cmd), 0);
}

/* Servers still running when a test ends (an assertion failed before
 * stop()): killed by the teardown so no test leaves a process behind. */
static pid_t servers[16];

void prun_teardown(void)
{
    for (size_t i = 0; i < sizeof servers / sizeof servers[0]; i++)
        if (servers[i] > 0) {
            kill(servers[i], SIGKILL);
            waitpid(servers[i], NULL, 0);
            servers[i] = 0;
        }
    char mnt[200];
    snprintf(mnt, sizeof mnt, "%s/small", dir);
    umount2(mnt, MNT_DETACH); /* the disk-full test's tmpfs, if it failed */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    system(cmd);
}



void result_free(struct result *r)
{
    free(r->out);
    free(r->err);
}

long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void append(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *buf = realloc(*buf, *cap);
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = '\0';
}

/* Run argv with `in` on stdin; collect stdout/stderr (stdout hashed instead
 * of kept when sha is not NULL). */
void run_argv(char *const argv[], const char *in, size_t in_len, int timeout_ms,
                     struct result *r, EVP_MD_CTX *sha)
{
    struct th_proc p;
    cr_assert_eq(th_spawn(&p, argv), 0);
    memset(r, 0, sizeof *r);

    size_t ocap = 0, ecap = 0, in_off = 0;
    append(&r->out, &r->out_len, &ocap, "", 0);
    append(&r->err, &r->err_len, &ecap, "", 0);
    if (!in) {
        close(p.in);
        p.in = -1;
    }
    fcntl(p.in, F_SETFL, O_NONBLOCK);
    long deadline = now_ms() + timeout_ms;
    static char buf[1 << 16];
    while ((p.out >= 0 || p.err >= 0) && now_ms() < deadline) {
        struct pollfd pf[3] = {{p.out, POLLIN, 0}, {p.err, POLLIN, 0},
                               {in_off < in_len ? p.in : -1, POLLOUT, 0}};
        if (poll(pf, 3, 100) <= 0)
            continue;
        if (pf[2].revents) {
            ssize_t w = write(p.in, in + in_off, in_len - in_off);
            if (w > 0)
                in_off += (size_t)w;
            if (w < 0 || in_off == in_len) {
                close(p.in);
                p.in = -1;
            }
        }
        for (int i = 0; i < 2; i++) {
            if (!pf[i].revents)
                continue;
            int *fd = i ? &p.err : &p.out;
            ssize_t n = read(*fd, buf, sizeof buf);
            if (n <= 0) {
                close(*fd);
                *fd = -1;
            } else if (i == 0 && sha) {
                EVP_DigestUpdate(sha, buf, (size_t)n);
                r->out_len += (size_t)n;
            } else if (i == 0) {
                append(&r->out, &r->out_len, &ocap, buf, (size_t)n);
            } else {
                append(&r->err, &r->err_len, &ecap, buf, (size_t)n);
            }
        }
    }
    if (in && in_off == in_len && p.in >= 0) {
        close(p.in);
        p.in = -1;
    }
    int st = th_wait(&p, (int)(deadline - now_ms() > 0 ? deadline - now_ms() : 1));
    th_close_fds(&p);
    r->status = st < 0 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* sockstack ARGS... (NULL-terminated), no stdin. */
void run_cli(struct result *r, int timeout_ms, ...)
{
    char *argv[64];
    int n = 0;
    argv[n++] = (char *)th_sockstack();
    va_list ap;
    va_start(ap, timeout_ms);
    char *a;
    while ((a = va_arg(ap, char *)) != NULL && n < 63)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    run_argv(argv, NULL, 0, timeout_ms, r, NULL);
}

/* Start `sockstack serve ...`; returns the port as text in port. */
void serve(struct th_proc *p, char port[8], char *const args[])
{
    char *argv[32];
    int n = 0;
    argv[n++] = (char *)th_sockstack();
    argv[n++] = "serve";
    for (int i = 0; args[i]; i++)
        argv[n++] = args[i];
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n] = NULL;
    cr_assert_eq(th_spawn(p, argv), 0);
    for (size_t i = 0; i < sizeof servers / sizeof servers[0]; i++)
        if (servers[i] == 0) {
            servers[i] = p->pid;
            break;
        }
    int pt = th_wait_listening(p, 10000, NULL, 0);
    cr_assert_gt(pt, 0, "server did not start");
    snprintf(port, 8, "%d", pt);
}

int stop_status(struct th_proc *p)
{
    for (size_t i = 0; i < sizeof servers / sizeof servers[0]; i++)
        if (servers[i] == p->pid)
            servers[i] = 0;
    return th_stop(p, SIGTERM, 10000);
}

void stop(struct th_proc *p)
{
    int st = stop_status(p);
    th_close_fds(p);
    cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "server exit %d", st);
}


char *read_text(int fd, int timeout_ms)
{
    char *buf;
    ssize_t n = th_read_all(fd, &buf, timeout_ms);
    buf = realloc(buf, (size_t)(n > 0 ? n : 0) + 1);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

bool gone_within(pid_t pid, int ms)
{
    long end = now_ms() + ms;
    while (now_ms() < end) {
        if (kill(pid, 0) < 0 && errno == ESRCH)
            return true;
        usleep(20000);
    }
    return false;
}

void python(struct result *r, const char *script, const char *arg1, const char *arg2)
{
    char *argv[] = {"python3", "-c", (char *)script, (char *)arg1, (char *)arg2, NULL};
    run_argv(argv, NULL, 0, 20000, r, NULL);
}
