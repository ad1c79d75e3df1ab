/* Test helpers: spawning the CLI and foreign peers, reading their output. */
#include "harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *th_sockstack(void)
{
    const char *p = getenv("SOCKSTACK");
    return p && *p ? p : "sockstack";
}

bool th_is_root(void)
{
    return geteuid() == 0;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int th_spawn(struct th_proc *p, char *const argv[])
{
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
        return -errno;
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    *p = (struct th_proc){.pid = pid, .in = in[1], .out = out[0], .err = err[0]};
    return 0;
}

int th_spawn_cli(struct th_proc *p, ...)
{
    char *argv[64];
    int n = 0;
    argv[n++] = (char *)th_sockstack();
    va_list ap;
    va_start(ap, p);
    char *a;
    while ((a = va_arg(ap, char *)) != NULL && n < 63)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    return th_spawn(p, argv);
}

int th_wait_listening(struct th_proc *p, int timeout_ms, char *line, size_t cap)
{
    char buf[4096];
    size_t len = 0;
    long deadline = now_ms() + timeout_ms;
    for (;;) {
        long left = deadline - now_ms();
        if (left <= 0)
            return -1;
        struct pollfd pfd = {.fd = p->err, .events = POLLIN};
        if (poll(&pfd, 1, (int)left) <= 0)
            continue;
        /* Byte at a time: never consume past the line we are looking for. */
        char c;
        if (read(p->err, &c, 1) != 1)
            return -1;
        if (c != '\n') {
            if (len < sizeof buf - 1)
                buf[len++] = c;
            continue;
        }
        buf[len] = '\0';
        len = 0;
        char *at = strstr(buf, "listening on ");
        if (!at)
            continue;
        if (line)
            snprintf(line, cap, "%s", buf);
        /* "listening on ADDR:PORT (PROTO)": the port follows the last ':'
         * before the space (works for [::1]:PORT too). */
        char *sp = strchr(at + 13, ' ');
        if (sp)
            *sp = '\0';
        char *colon = strrchr(at + 13, ':');
        return colon ? atoi(colon + 1) : 0;
    }
}

ssize_t th_read_all(int fd, char **out, int timeout_ms)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    long deadline = now_ms() + timeout_ms;
    for (;;) {
        long left = deadline - now_ms();
        if (left <= 0)
            break;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)left) <= 0)
            continue;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    *out = buf;
    return (ssize_t)len;
}

char *th_read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char *buf;
    ssize_t n = th_read_all(fd, &buf, 5000);
    close(fd);
    cr_assert_geq(n, 0, "%s", path);
    buf = realloc(buf, (size_t)n + 1);
    cr_assert(buf);
    buf[n] = '\0';
    if (len)
        *len = (size_t)n;
    return buf;
}

int th_wait(struct th_proc *p, int timeout_ms)
{
    long deadline = now_ms() + timeout_ms;
    int st;
    while (now_ms() < deadline) {
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid)
            return st;
        usleep(5000);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &st, 0);
    return -1;
}

int th_stop(struct th_proc *p, int sig, int timeout_ms)
{
    kill(p->pid, sig);
    return th_wait(p, timeout_ms);
}

void th_close_fds(struct th_proc *p)
{
    int *fds[] = {&p->in, &p->out, &p->err};
    for (int i = 0; i < 3; i++)
        if (*fds[i] >= 0) {
            close(*fds[i]);
            *fds[i] = -1;
        }
}

int th_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    bool sock = true; /* a socket gets MSG_NOSIGNAL: a closed peer is an error, not SIGPIPE */
    while (len > 0) {
        ssize_t n = sock ? send(fd, p, len, MSG_NOSIGNAL) : write(fd, p, len);
        if (n < 0 && sock && errno == ENOTSOCK) {
            sock = false;
            continue;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

ssize_t th_exchange(struct th_proc *p, const void *in, size_t len, char **out,
                    int timeout_ms)
{
    size_t cap = 65536, got = 0, sent = 0;
    char *buf = malloc(cap);
    long deadline = now_ms() + timeout_ms;
    int fl = fcntl(p->in, F_GETFL);
    fcntl(p->in, F_SETFL, fl | O_NONBLOCK);
    if (len == 0 && p->in >= 0) {
        close(p->in);
        p->in = -1;
    }
    for (;;) {
        long left = deadline - now_ms();
        if (left <= 0)
            break;
        struct pollfd pfd[2] = {{.fd = p->out, .events = POLLIN},
                                {.fd = p->in, .events = POLLOUT}};
        int nfds = p->in >= 0 ? 2 : 1;
        if (poll(pfd, (nfds_t)nfds, (int)left) <= 0)
            continue;
        if (nfds == 2 && (pfd[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t n = write(p->in, (const char *)in + sent, len - sent);
            if (n > 0)
                sent += (size_t)n;
            if (sent == len || (n < 0 && errno != EAGAIN)) {
                close(p->in);
                p->in = -1;
            }
        }
        if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (got == cap) {
                cap *= 2;
                buf = realloc(buf, cap);
            }
            ssize_t n = read(p->out, buf + got, cap - got);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
    }
    *out = buf;
    return (ssize_t)got;
}

bool th_read_until(int fd, const char *needle, char *buf, size_t cap,
                   int timeout_ms)
{
    size_t len = 0;
    buf[0] = '\0';
    long deadline = now_ms() + timeout_ms;
    while (!strstr(buf, needle)) {
        long left = deadline - now_ms();
        if (left <= 0 || len + 1 >= cap)
            return false;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)left) <= 0)
            continue;
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0)
            return false;
        len += (size_t)n;
        buf[len] = '\0';
    }
    return true;
}

void th_reap(struct th_proc *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        p->pid = -1;
    }
    th_close_fds(p);
}

/* The bytes read into *s, NUL-terminated (an empty string after an error). */
static char *terminate(char *s, ssize_t len)
{
    size_t n = len > 0 ? (size_t)len : 0;
    s = realloc(s, n + 1);
    if (s)
        s[n] = '\0';
    return s;
}

struct th_result th_run_cli(const char *const args[], int timeout_ms)
{
    struct th_result r = {.status = -1};
    const char *argv[64] = {th_sockstack()};
    int n = 1;
    for (int i = 0; args[i] && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    struct th_proc p;
    if (th_spawn(&p, (char *const *)argv) != 0) {
        r.out = terminate(NULL, 0);
        r.err = terminate(NULL, 0);
        return r;
    }
    close(p.in);
    p.in = -1;
    r.out = NULL;
    r.err = NULL;
    ssize_t lo = th_read_all(p.out, &r.out, timeout_ms);
    ssize_t le = th_read_all(p.err, &r.err, timeout_ms);
    r.out = terminate(r.out, lo);
    r.err = terminate(r.err, le);
    int st = th_wait(&p, timeout_ms);
    th_close_fds(&p);
    r.status = st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

void th_result_free(struct th_result *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

void th_enter_netns(void)
{
    if (!th_is_root())
        cr_skip_test("needs root: TUN device in a private network namespace");
    cr_assert_eq(unshare(CLONE_NEWNET), 0, "unshare(CLONE_NEWNET): %s", strerror(errno));
}

const char *th_source_path(const char *rel)
{
    static char path[512];
    const char *root = getenv("SS_SOURCE_ROOT");
    snprintf(path, sizeof path, "%s/%s", root ? root : ".", rel);
    return path;
}

void th_rm_rf(const char *dir)
{
    if (!dir || !dir[0])
        return;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        /* best effort: nothing more to do at teardown */
    }
}
