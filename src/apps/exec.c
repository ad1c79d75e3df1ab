/* exec service and client (see sockstack/exec.h for the wire format).
 *
 * Server, per connection (event style, on the connection's loop):
 *   REQUEST -> fork+exec the command in a new process group with three
 *   pipes (in a cgroup of its own when it can: see "sessions" below); the
 *   pipes and a pidfd join the loop. Output read from a pipe is
 *   queued as one message; when the connection's output queue is full the
 *   pipes are no longer watched (the child blocks on write) until on_drain.
 *   Stdin messages go to a bounded buffer; above it the connection is no
 *   longer read. When the child has exited and both pipes are at EOF, the
 *   status goes out and the connection closes. Whatever ends the connection
 *   first (client gone, timeout) kills the whole session. While reading is
 *   paused the client's hang-up is still watched (on_hangup, EPOLLRDHUP).
 */
#include "sockstack/exec.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sockstack/err.h"
#include "sockstack/frame.h"

/* ---- sessions: what "kill the whole command" reaches ----------------------
 *
 * A command may leave its process group (setsid) and so escape
 * kill(-pgid). Where the server can create cgroups (cgroup v2 mounted, and
 * the server's own cgroup writable: root, or a delegated subtree), every
 * command runs in a cgroup of its own,
 *   <cgroup2 mount>/<server's cgroup>/sockstack-exec.<server pid>.<n>,
 * entered by the child before it executes anything; ending the session
 * writes 1 to its cgroup.kill (Linux 5.14+), which kills every process in
 * it whatever its session or group, then removes the cgroup. Elsewhere the
 * process group is all there is: SIGKILL to the group, and a command that
 * calls setsid() outlives its client. The server logs which one at its
 * first command. */

struct session {
    pid_t pid;          /* the command, also its process group id */
    int cg_kill;        /* cgroup.kill of its cgroup, or -1 */
    char cg[PATH_MAX];  /* its cgroup directory, "" when none */
};

static pthread_once_t cg_once = PTHREAD_ONCE_INIT;
static char cg_base[PATH_MAX]; /* "" when cgroups cannot be used */
static char cg_why[PATH_MAX + 64];
static _Atomic unsigned cg_seq;
static atomic_flag cg_logged = ATOMIC_FLAG_INIT;

/* Find the cgroup v2 mount and this process's cgroup in it. */
static void cg_find(void)
{
    char mnt[PATH_MAX] = "", self[PATH_MAX] = "", line[PATH_MAX + 256];
    FILE *f = fopen("/proc/self/mountinfo", "re");
    while (f && fgets(line, sizeof line, f)) {
        /* id parent maj:min root mountpoint options ... - fstype source ... */
        char *sep = strstr(line, " - cgroup2 ");
        char point[PATH_MAX];
        if (sep && sscanf(line, "%*s %*s %*s %*s %4095s", point) == 1) {
            snprintf(mnt, sizeof mnt, "%s", point);
            break;
        }
    }
    if (f)
        fclose(f);
    f = fopen("/proc/self/cgroup", "re");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "0::", 3)) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(self, sizeof self, "%.2000s", line + 3);
        }
    if (f)
        fclose(f);
    if (!mnt[0] || !self[0]) {
        snprintf(cg_why, sizeof cg_why, "no cgroup v2 hierarchy is mounted");
        return;
    }
    char base[PATH_MAX], probe[PATH_MAX + 64];
    snprintf(base, sizeof base, "%.2000s%.2000s", mnt, strcmp(self, "/") ? self : "");
    snprintf(probe, sizeof probe, "%s/sockstack-exec.%ld.probe", base, (long)getpid());
    if (mkdir(probe, 0755) < 0) {
        snprintf(cg_why, sizeof cg_why, "cannot create cgroups under %.4000s: %s", base,
                 strerror(errno));
        return;
    }
    char kill_file[PATH_MAX + 80];
    snprintf(kill_file, sizeof kill_file, "%s/cgroup.kill", probe);
    bool can_kill = access(kill_file, W_OK) == 0;
    rmdir(probe);
    if (!can_kill) {
        snprintf(cg_why, sizeof cg_why, "cgroups under %.4000s have no cgroup.kill "
                 "(Linux < 5.14)", base);
        return;
    }
    snprintf(cg_base, sizeof cg_base, "%s", base);
}

static void cg_retry_left(void);

/* A cgroup for a new session (s->cg, s->cg_kill), and an open descriptor
 * of its cgroup.procs for the child to enter it; -1 when there is none. */
static int cg_create(struct session *s)
{
    pthread_once(&cg_once, cg_find);
    s->cg[0] = '\0';
    s->cg_kill = -1;
    if (!cg_base[0])
        return -1;
    cg_retry_left();
    snprintf(s->cg, sizeof s->cg, "%.4000s/sockstack-exec.%ld.%u", cg_base, (long)getpid(),
             atomic_fetch_add(&cg_seq, 1));
    if (mkdir(s->cg, 0755) < 0) {
        s->cg[0] = '\0';
        return -1;
    }
    char p[PATH_MAX + 16];
    snprintf(p, sizeof p, "%s/cgroup.kill", s->cg);
    s->cg_kill = open(p, O_WRONLY | O_CLOEXEC);
    snprintf(p, sizeof p, "%s/cgroup.procs", s->cg);
    int procs = s->cg_kill < 0 ? -1 : open(p, O_WRONLY | O_CLOEXEC);
    if (procs < 0) {
        if (s->cg_kill >= 0)
            close(s->cg_kill);
        s->cg_kill = -1;
        rmdir(s->cg);
        s->cg[0] = '\0';
    }
    return procs;
}

/* Which containment this server uses, once, at its first command. */
static void cg_log(ss_server *srv)
{
    if (!srv || atomic_flag_test_and_set(&cg_logged))
        return;
    pthread_once(&cg_once, cg_find);
    if (cg_base[0])
        ss_server_log(srv, SS_LOG_INFO, "each command runs in a cgroup of its own under %s: "
                      "ending a session kills all of its processes", cg_base);
    else
        ss_server_log(srv, SS_LOG_WARN, "process-group kill only (%s): a command that "
                      "calls setsid() can outlive its client", cg_why);
}

/* Kill every process of the session (its cgroup, and its process group). */
static void session_kill(struct session *s)
{
    if (s->cg_kill >= 0)
        while (write(s->cg_kill, "1", 1) < 0 && errno == EINTR)
            ;
    if (s->pid > 0)
        kill(-s->pid, SIGKILL);
}

/* Cgroups whose killed processes had not all left yet (a zombie that
 * init has not reaped keeps it busy): removed at a later session's start
 * or end. */
static pthread_mutex_t cg_left_mu = PTHREAD_MUTEX_INITIALIZER;
static char *cg_left[64];

static void cg_retry_left(void)
{
    pthread_mutex_lock(&cg_left_mu);
    for (size_t i = 0; i < sizeof cg_left / sizeof cg_left[0]; i++)
        if (cg_left[i] && (rmdir(cg_left[i]) == 0 || errno == ENOENT)) {
            free(cg_left[i]);
            cg_left[i] = NULL;
        }
    pthread_mutex_unlock(&cg_left_mu);
}

/* Keep path for a later try; false when the list is full. */
static bool cg_leave(const char *path)
{
    bool kept = false;
    pthread_mutex_lock(&cg_left_mu);
    for (size_t i = 0; i < sizeof cg_left / sizeof cg_left[0] && !kept; i++)
        if (!cg_left[i] && (cg_left[i] = strdup(path)) != NULL)
            kept = true;
    pthread_mutex_unlock(&cg_left_mu);
    return kept;
}

/* After the command was reaped: kill what is left and remove the cgroup
 * (its killed processes leave it within moments; not waited for past
 * ~20 ms, then its removal is retried by later sessions). */
static void session_end(struct session *s, ss_server *srv)
{
    session_kill(s);
    if (s->cg_kill >= 0)
        close(s->cg_kill);
    s->cg_kill = -1;
    if (!s->cg[0])
        return;
    for (int i = 0; i < 20 && rmdir(s->cg) < 0 && errno == EBUSY; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    if (access(s->cg, F_OK) == 0 && !cg_leave(s->cg) && srv)
        ss_server_log(srv, SS_LOG_WARN, "cgroup %s still busy: left behind", s->cg);
    s->cg[0] = '\0';
    cg_retry_left();
}

struct xconn {
    ss_conn *c;
    ss_loop *loop;
    ss_frame_decoder dec;
    bool started;
    pid_t pid;          /* also the process group id */
    struct session sess;
    int pidfd;
    bool exited, status_sent;
    int wstatus;
    int in_fd, out_fd, err_fd;
    bool out_paused;    /* pipes unwatched: connection queue full */
    uint8_t *inbuf;     /* stdin waiting for the child */
    size_t in_len;
    bool in_eof;        /* client sent STDIN_EOF */
    bool in_waiting;    /* in_fd watched for SS_WRITE */
    bool read_paused;
};

static const ss_exec_opts *xopts(ss_conn *c)
{
    static const ss_exec_opts defaults = {.shell = "/bin/sh"};
    const ss_exec_opts *o = ss_conn_server_ctx(c);
    return o ? o : &defaults;
}

/* One message: be32 length, type byte, payload. */
static int send_msg(ss_conn *c, uint8_t type, const void *p, size_t len)
{
    uint8_t hdr[5];
    ss_frame_header_write(SS_FRAME_BE32, len + 1, hdr);
    hdr[4] = type;
    struct iovec iov[2] = {{hdr, 5}, {(void *)p, len}};
    return ss_conn_writev(c, iov, len ? 2 : 1);
}

/* Close a descriptor the loop may watch; -1 after. */
static void loop_close_fd(ss_loop *loop, int *fd)
{
    if (*fd >= 0) {
        ss_loop_io_del(loop, *fd); /* harmless when not registered */
        close(*fd);
        *fd = -1;
    }
}

static void close_fd(struct xconn *x, int *fd)
{
    loop_close_fd(x->loop, fd);
}

/* Everything is out: send the status and close. */
static int maybe_finish(struct xconn *x)
{
    if (!x->exited || x->out_fd >= 0 || x->err_fd >= 0 || x->status_sent)
        return 0;
    x->status_sent = true;
    uint8_t v[4];
    int rc;
    if (WIFSIGNALED(x->wstatus)) {
        ss_frame_header_write(SS_FRAME_BE32, (uint64_t)WTERMSIG(x->wstatus), v);
        rc = send_msg(x->c, SS_EXEC_SIGNAL, v, 4);
    } else {
        ss_frame_header_write(SS_FRAME_BE32, (uint64_t)WEXITSTATUS(x->wstatus), v);
        rc = send_msg(x->c, SS_EXEC_EXIT, v, 4);
    }
    ss_conn_timer_stop(x->c);
    ss_conn_close(x->c); /* lingers until the client's EOF (server.h) */
    return rc;
}

static void on_pipe(ss_loop *loop, int fd, unsigned events, void *arg);

/* Pausing removes the pipes from the loop (epoll reports a hang-up even
 * with no events asked, which would spin); resuming adds them back. */
static void watch_pipes(struct xconn *x, bool on)
{
    if (x->out_paused == !on)
        return;
    x->out_paused = !on;
    int *fds[2] = {&x->out_fd, &x->err_fd};
    for (int i = 0; i < 2; i++) {
        if (*fds[i] < 0)
            continue;
        if (on)
            ss_loop_io_add(x->loop, *fds[i], SS_READ, on_pipe, x);
        else
            ss_loop_io_del(x->loop, *fds[i]);
    }
}

static void on_pipe(ss_loop *loop, int fd, unsigned events, void *arg)
{
    struct xconn *x = arg;
    uint8_t buf[SS_EXEC_CHUNK];
    ssize_t r = read(fd, buf, sizeof buf);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    uint8_t type = fd == x->out_fd ? SS_EXEC_STDOUT : SS_EXEC_STDERR;
    if (r <= 0) {
        close_fd(x, fd == x->out_fd ? &x->out_fd : &x->err_fd);
        if (maybe_finish(x) < 0)
            ss_conn_abort(x->c, -EPIPE);
        return;
    }
    if (send_msg(x->c, type, buf, (size_t)r) < 0) {
        ss_conn_abort(x->c, -ENOBUFS);
        return;
    }
    if (ss_conn_out_full(x->c))
        watch_pipes(x, false);
}

static void on_exit_fd(ss_loop *loop, int fd, unsigned events, void *arg)
{
    struct xconn *x = arg;
    int st;
    pid_t r = waitpid(x->pid, &st, WNOHANG);
    if (r == 0)
        return;
    x->exited = true;
    x->wstatus = r == x->pid ? st : 0;
    close_fd(x, &x->pidfd);
    if (maybe_finish(x) < 0)
        ss_conn_abort(x->c, -EPIPE);
}

static void on_stdin_writable(ss_loop *loop, int fd, unsigned events, void *arg);

/* Push buffered stdin into the child's pipe as far as it takes it. */
static void flush_stdin(struct xconn *x)
{
    while (x->in_fd >= 0 && x->in_len > 0) {
        ssize_t w = write(x->in_fd, x->inbuf, x->in_len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            break;
        if (w < 0) { /* the child closed its stdin: drop what it won't read */
            x->in_len = 0;
            close_fd(x, &x->in_fd);
            break;
        }
        memmove(x->inbuf, x->inbuf + w, x->in_len - (size_t)w);
        x->in_len -= (size_t)w;
    }
    if (x->in_fd >= 0 && x->in_len == 0 && x->in_eof)
        close_fd(x, &x->in_fd);
    bool want = x->in_fd >= 0 && x->in_len > 0;
    if (want != x->in_waiting && x->in_fd >= 0) {
        if (want)
            ss_loop_io_add(x->loop, x->in_fd, SS_WRITE, on_stdin_writable, x);
        else
            ss_loop_io_del(x->loop, x->in_fd);
        x->in_waiting = want;
    }
    bool pause = x->in_len >= SS_EXEC_STDIN_MAX;
    if (pause != x->read_paused) {
        x->read_paused = pause;
        if (pause)
            ss_conn_pause_read(x->c);
        else
            ss_conn_resume_read(x->c);
    }
}


static void on_stdin_writable(ss_loop *loop, int fd, unsigned events, void *arg)
{
    flush_stdin(arg);
}

static int nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0;
}

/* Signals the server handles or ignores, set back to their defaults in
 * the command. */
static const int reset_signals[] = {SIGPIPE, SIGINT, SIGTERM, SIGCHLD, SIGHUP, SIGQUIT};

/* Format a pid in decimal without stdio (between fork and exec). */
static size_t pid_text(pid_t pid, char *buf)
{
    char tmp[24];
    size_t n = 0;
    unsigned long v = (unsigned long)pid;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

/* Spawn argv in its own process group (and the session's cgroup, if any)
 * with stdio on three new pipes. Between fork and exec the child only
 * makes async-signal-safe calls; why exec failed comes back on a pipe. */
static int spawn(char *const argv[], struct session *s, int *in, int *out, int *err)
{
    int p[4][2] = {{-1, -1}, {-1, -1}, {-1, -1}, {-1, -1}};
    int procs = cg_create(s);
    int rc = 0;
    for (int i = 0; i < 4; i++)
        if (pipe2(p[i], O_CLOEXEC) < 0) {
            rc = -errno;
            goto fail;
        }
    pid_t pid = fork();
    if (pid < 0) {
        rc = -errno;
        goto fail;
    }
    if (pid == 0) {
        int e = 0;
        if (procs >= 0) {
            char buf[24];
            size_t n = pid_text(getpid(), buf);
            if (write(procs, buf, n) != (ssize_t)n)
                e = errno;
        }
        if (!e && (setpgid(0, 0) < 0 || dup2(p[0][0], 0) < 0 || dup2(p[1][1], 1) < 0 ||
                   dup2(p[2][1], 2) < 0))
            e = errno;
        if (!e) {
            struct sigaction dfl;
            memset(&dfl, 0, sizeof dfl);
            dfl.sa_handler = SIG_DFL;
            for (size_t i = 0; i < sizeof reset_signals / sizeof reset_signals[0]; i++)
                sigaction(reset_signals[i], &dfl, NULL);
            sigset_t none;
            sigemptyset(&none);
            sigprocmask(SIG_SETMASK, &none, NULL);
            execvp(argv[0], argv);
            e = errno;
        }
        while (write(p[3][1], &e, sizeof e) < 0 && errno == EINTR)
            ;
        _exit(127);
    }
    close(p[3][1]);
    p[3][1] = -1;
    int e = 0;
    ssize_t r;
    while ((r = read(p[3][0], &e, sizeof e)) < 0 && errno == EINTR)
        ;
    if (r == (ssize_t)sizeof e) { /* it never ran */
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        rc = -e;
        goto fail;
    }
    s->pid = pid;
    if (procs >= 0)
        close(procs);
    close(p[0][0]);
    close(p[1][1]);
    close(p[2][1]);
    close(p[3][0]);
    *in = p[0][1];
    *out = p[1][0];
    *err = p[2][0];
    nonblock(*in);
    nonblock(*out);
    nonblock(*err);
    return 0;
fail:
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 2; j++)
            if (p[i][j] >= 0)
                close(p[i][j]);
    if (procs >= 0)
        close(procs);
    session_end(s, NULL);
    return rc;
}

/* A spawned command joins the loop: its pidfd (into *pidfd) calls
 * on_exit, its stdout and stderr pipes on_out. 0 or a negative code. */
static int watch_child(ss_loop *loop, pid_t pid, int *pidfd, int out_fd, int err_fd,
                       ss_io_cb on_exit, ss_io_cb on_out, void *arg)
{
    *pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (*pidfd < 0)
        return -errno;
    int rc;
    if ((rc = ss_loop_io_add(loop, *pidfd, SS_READ, on_exit, arg)) < 0 ||
        (rc = ss_loop_io_add(loop, out_fd, SS_READ, on_out, arg)) < 0 ||
        (rc = ss_loop_io_add(loop, err_fd, SS_READ, on_out, arg)) < 0)
        return rc;
    return 0;
}

static int start(struct xconn *x, const uint8_t *p, size_t len)
{
    if (len < 2 || p[len - 1] != '\0')
        return SS_EPEERPROTO;
    uint8_t flags = p[0];
    const ss_exec_opts *o = xopts(x->c);
    size_t words = 0;
    for (size_t off = 1; off < len; off += strlen((const char *)p + off) + 1)
        words++;
    if ((flags & SS_EXEC_FLAG_SHELL) && words != 1)
        return SS_EPEERPROTO;
    x->started = true;
    cg_log(ss_conn_server(x->c));
    if (words + 1 > SS_EXEC_ARGS_MAX) {
        /* Refused whole: a command cut short could do something else. */
        char msg[128];
        int m = snprintf(msg, sizeof msg, "refused: %zu arguments; the limit is %d", words,
                         SS_EXEC_ARGS_MAX - 1);
        ss_server_log(ss_conn_server(x->c), SS_LOG_INFO, "%s: %s", ss_conn_peer_str(x->c), msg);
        send_msg(x->c, SS_EXEC_ERROR, msg, (size_t)m);
        x->exited = true;
        x->wstatus = 126 << 8;
        return maybe_finish(x);
    }
    char *args[SS_EXEC_ARGS_MAX + 2];
    int n = 0;
    if (flags & SS_EXEC_FLAG_SHELL) {
        args[n++] = (char *)(o->shell ? o->shell : "/bin/sh");
        args[n++] = (char *)"-c";
    }
    for (size_t off = 1; off < len; off += strlen((const char *)p + off) + 1)
        args[n++] = (char *)p + off;
    args[n] = NULL;
    ss_server_log(ss_conn_server(x->c), SS_LOG_DEBUG, "%s runs %s%s (timeout %u ms)",
                  ss_conn_peer_str(x->c), args[0], n > 1 ? " ..." : "", o->timeout_ms);
    int rc = spawn(args, &x->sess, &x->in_fd, &x->out_fd, &x->err_fd);
    x->pid = x->sess.pid;
    if (rc < 0) {
        char msg[256];
        int m = snprintf(msg, sizeof msg, "cannot run %s: %s", args[flags & 1 ? 2 : 0],
                         ss_strerror(rc));
        send_msg(x->c, SS_EXEC_ERROR, msg, (size_t)m < sizeof msg ? (size_t)m : sizeof msg - 1);
        x->exited = true;
        x->wstatus = 127 << 8;
        return maybe_finish(x);
    }
    if ((rc = watch_child(x->loop, x->pid, &x->pidfd, x->out_fd, x->err_fd, on_exit_fd,
                          on_pipe, x)) < 0)
        return rc;
    if (o->timeout_ms)
        ss_conn_timer_start(x->c, o->timeout_ms);
    flush_stdin(x);
    return 0;
}

static int on_msg(const uint8_t *p, size_t len, void *arg)
{
    struct xconn *x = arg;
    if (len == 0)
        return SS_EPEERPROTO;
    if (!x->started)
        return p[0] == SS_EXEC_REQUEST ? start(x, p + 1, len - 1) : SS_EPEERPROTO;
    switch (p[0]) {
    case SS_EXEC_STDIN:
        if (x->in_eof)
            return SS_EPEERPROTO;
        if (x->in_fd < 0)
            return 0; /* nobody reads it any more */
        {
            uint8_t *nb = realloc(x->inbuf, x->in_len + len - 1);
            if (!nb)
                return -ENOMEM;
            x->inbuf = nb;
            memcpy(x->inbuf + x->in_len, p + 1, len - 1);
            x->in_len += len - 1;
        }
        flush_stdin(x);
        return 0;
    case SS_EXEC_STDIN_EOF:
        x->in_eof = true;
        flush_stdin(x);
        return 0;
    default:
        return SS_EPEERPROTO;
    }
}

static int x_open(ss_conn *c)
{
    struct xconn *x = ss_conn_ctx(c);
    x->c = c;
    x->loop = ss_conn_loop(c);
    x->pidfd = x->in_fd = x->out_fd = x->err_fd = -1;
    x->sess.cg_kill = -1;
    ss_frame_decoder_init(&x->dec, SS_FRAME_BE32, SS_EXEC_FRAME_MAX);
    return 0;
}

static int x_data(ss_conn *c, const void *data, size_t len)
{
    struct xconn *x = ss_conn_ctx(c);
    ssize_t r = ss_frame_decode(&x->dec, data, len, on_msg, x);
    if (r < 0)
        ss_server_log(ss_conn_server(c), SS_LOG_WARN, "%s: closing: %s",
                      ss_conn_peer_str(c), ss_strerror((int)r));
    return r < 0 ? (int)r : 0;
}

static int x_eof(ss_conn *c)
{
    struct xconn *x = ss_conn_ctx(c);
    if (!x->started || !x->status_sent) {
        /* The client is gone (or half-closed before the result): like a
         * hang-up, the command goes too. */
        ss_conn_abort(c, -ECONNRESET);
    }
    return 0;
}

static int x_drain(ss_conn *c)
{
    struct xconn *x = ss_conn_ctx(c);
    if (x->out_paused)
        watch_pipes(x, true);
    return 0;
}

static int x_timer(ss_conn *c)
{
    struct xconn *x = ss_conn_ctx(c);
    if (!x->started || x->exited)
        return -ETIMEDOUT;
    char msg[96];
    int m = snprintf(msg, sizeof msg, "timed out after %u ms: %s killed", xopts(c)->timeout_ms,
                     x->sess.cg[0] ? "its cgroup" : "process group");
    ss_server_log(ss_conn_server(c), SS_LOG_INFO, "%s: command %s", ss_conn_peer_str(c), msg);
    session_kill(&x->sess);
    return send_msg(c, SS_EXEC_ERROR, msg, (size_t)m);
}

static void x_close(ss_conn *c, int err)
{
    struct xconn *x = ss_conn_ctx(c);
    if (x->started && x->pid > 0) {
        /* No orphans: the whole session goes, whatever ended the
         * connection (also daemons a finished command left behind). */
        session_kill(&x->sess);
        if (!x->exited) {
            int st;
            while (waitpid(x->pid, &st, 0) < 0 && errno == EINTR)
                ;
        }
        session_end(&x->sess, ss_conn_server(c));
    }
    close_fd(x, &x->pidfd);
    close_fd(x, &x->in_fd);
    close_fd(x, &x->out_fd);
    close_fd(x, &x->err_fd);
    free(x->inbuf);
    ss_frame_decoder_free(&x->dec);
}

/* The client hung up while its stdin was held back (reading paused): the
 * session goes now, not when the command next reads. */
static int x_hangup(ss_conn *c)
{
    ss_server_log(ss_conn_server(c), SS_LOG_INFO, "%s: client hung up: session killed",
                  ss_conn_peer_str(c));
    ss_conn_abort(c, -ECONNRESET);
    return 0;
}

static const ss_service exec_service = {
    .name = "exec",
    .conn_ctx_size = sizeof(struct xconn),
    .on_open = x_open,
    .on_data = x_data,
    .on_eof = x_eof,
    .on_drain = x_drain,
    .on_timer = x_timer,
    .on_close = x_close,
    .on_hangup = x_hangup,
};

const ss_service *ss_exec_service(void)
{
    return &exec_service;
}

/* ---- --compat tutorial ----------------------------------------------------
 *
 * Event style too, on the connection's loop: a request (le32 length, then
 * the command line) is gathered from on_data; the command runs with the
 * shell, its stdout and stderr pipes and a pidfd join the loop (as a
 * session's do above), reading the connection pauses while it runs; when
 * it has exited and both pipes are at EOF the reply goes out and the next
 * request is taken. So one slow command holds up only its own client. */

struct cconn {
    ss_conn *c;
    ss_loop *loop;
    uint8_t *pend;      /* request bytes not yet used (bounded: see c_data) */
    size_t pend_len;
    bool running;       /* a command runs; reading is paused */
    bool client_eof;    /* the client closed its side: close after the reply */
    struct session sess;
    int pidfd, out_fd, err_fd;
    bool exited;
    uint8_t *buf[2];    /* stdout, stderr (each capped) */
    size_t len[2], cap[2];
};

/* Keep up to the reply cap of what a pipe gave; more is read and dropped. */
static int c_keep(struct cconn *x, int i, const uint8_t *p, size_t n)
{
    if (x->len[i] + n > SS_EXEC_COMPAT_REPLY_MAX)
        n = SS_EXEC_COMPAT_REPLY_MAX - x->len[i];
    if (x->len[i] + n > x->cap[i]) {
        size_t nc = x->cap[i] ? x->cap[i] * 2 : 16384;
        while (nc < x->len[i] + n)
            nc *= 2;
        uint8_t *nb = realloc(x->buf[i], nc);
        if (!nb)
            return -ENOMEM;
        x->buf[i] = nb;
        x->cap[i] = nc;
    }
    memcpy(x->buf[i] + x->len[i], p, n);
    x->len[i] += n;
    return 0;
}

static int c_pump(struct cconn *x);

/* The command is over (exited, both pipes at EOF): reply, then take the
 * next request. */
static int c_finish(struct cconn *x)
{
    if (!x->running || !x->exited || x->out_fd >= 0 || x->err_fd >= 0)
        return 0;
    session_end(&x->sess, ss_conn_server(x->c));
    x->sess.pid = 0;
    x->running = false;
    ss_conn_timer_stop(x->c);
    int i = x->len[1] ? 1 : 0; /* stderr if non-empty, else stdout */
    uint8_t hdr[4];
    ss_frame_header_write(SS_FRAME_LE32, x->len[i], hdr);
    struct iovec iov[2] = {{hdr, 4}, {x->buf[i], x->len[i]}};
    int rc = ss_conn_writev(x->c, iov, x->len[i] ? 2 : 1);
    for (int k = 0; k < 2; k++) {
        free(x->buf[k]);
        x->buf[k] = NULL;
        x->len[k] = x->cap[k] = 0;
    }
    return rc < 0 ? rc : c_pump(x);
}

static void c_fail(struct cconn *x, int rc)
{
    ss_conn_abort(x->c, rc);
}

static void c_on_pipe(ss_loop *loop, int fd, unsigned events, void *arg)
{
    struct cconn *x = arg;
    uint8_t tmp[16384];
    ssize_t r = read(fd, tmp, sizeof tmp);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    int i = fd == x->err_fd;
    int rc = 0;
    if (r <= 0) {
        loop_close_fd(x->loop, i ? &x->err_fd : &x->out_fd);
        rc = c_finish(x);
    } else {
        rc = c_keep(x, i, tmp, (size_t)r);
    }
    if (rc < 0)
        c_fail(x, rc);
}

static void c_on_exit(ss_loop *loop, int fd, unsigned events, void *arg)
{
    struct cconn *x = arg;
    if (waitpid(x->sess.pid, NULL, WNOHANG) == 0)
        return;
    x->exited = true;
    loop_close_fd(x->loop, &x->pidfd);
    int rc = c_finish(x);
    if (rc < 0)
        c_fail(x, rc);
}

/* Start cmd with the shell, stdin closed; its pipes and pidfd join the
 * loop. */
static int c_start(struct cconn *x, const char *cmd)
{
    const ss_exec_opts *o = xopts(x->c);
    char *argv[] = {(char *)(o->shell ? o->shell : "/bin/sh"), (char *)"-c",
                    (char *)cmd, NULL};
    int in;
    int rc = spawn(argv, &x->sess, &in, &x->out_fd, &x->err_fd);
    if (rc < 0)
        return rc;
    close(in);
    x->running = true;
    x->exited = false;
    ss_conn_pause_read(x->c);
    if ((rc = watch_child(x->loop, x->sess.pid, &x->pidfd, x->out_fd, x->err_fd, c_on_exit,
                          c_on_pipe, x)) < 0)
        return rc;
    if (o->timeout_ms)
        ss_conn_timer_start(x->c, o->timeout_ms);
    return 0;
}

/* One request is a 4-byte little-endian length (python struct 'i', as the
 * tutorial client packs it) and then that many bytes of command line.
 * Anything else never reaches the shell: a length outside 1..1024 (an
 * HTTP request's "POST" reads as 1414745936) closes the connection before
 * a byte of the command is used. Takes the next complete request when no
 * command runs; reading resumes when none is pending. */
static int c_pump(struct cconn *x)
{
    while (!x->running && x->pend_len >= 4) {
        const uint8_t *lenb = x->pend;
        uint64_t len = ss_frame_header_read(SS_FRAME_LE32, lenb);
        if (len == 0 || len > SS_EXEC_COMPAT_CMD_MAX) {
            ss_server_log(ss_conn_server(x->c), SS_LOG_WARN,
                          "%s: closing: a request must start with a 4-byte length of "
                          "1..%d (got %02x %02x %02x %02x); nothing was run",
                          ss_conn_peer_str(x->c), SS_EXEC_COMPAT_CMD_MAX, lenb[0], lenb[1],
                          lenb[2], lenb[3]);
            return SS_EPEERPROTO;
        }
        if (x->pend_len < 4 + len)
            break;
        char cmd[SS_EXEC_COMPAT_CMD_MAX + 1];
        memcpy(cmd, x->pend + 4, (size_t)len);
        cmd[len] = '\0';
        x->pend_len -= 4 + (size_t)len;
        memmove(x->pend, x->pend + 4 + len, x->pend_len);
        if (strlen(cmd) != (size_t)len)
            return SS_EPEERPROTO; /* a NUL inside a command line */
        ss_server_log(ss_conn_server(x->c), SS_LOG_DEBUG, "%s runs a %llu-byte command",
                      ss_conn_peer_str(x->c), (unsigned long long)len);
        int rc = c_start(x, cmd);
        if (rc < 0)
            return rc;
    }
    if (x->running)
        return 0;
    if (x->client_eof) {
        if (x->pend_len)
            return SS_EPEERPROTO; /* closed in the middle of a request */
        ss_conn_close(x->c);
        return 0;
    }
    ss_conn_resume_read(x->c);
    return 0;
}

static int c_open(ss_conn *c)
{
    struct cconn *x = ss_conn_ctx(c);
    x->c = c;
    x->loop = ss_conn_loop(c);
    x->pidfd = x->out_fd = x->err_fd = -1;
    x->sess.cg_kill = -1;
    /* One request and the rest of one read: reading pauses while a
     * command runs, so no more than this is ever held. */
    x->pend = malloc(4 + SS_EXEC_COMPAT_CMD_MAX + SS_SERVER_READ_CHUNK);
    if (!x->pend)
        return -ENOMEM;
    cg_log(ss_conn_server(c));
    return 0;
}

static int c_data(ss_conn *c, const void *data, size_t len)
{
    struct cconn *x = ss_conn_ctx(c);
    if (x->pend_len + len > 4 + SS_EXEC_COMPAT_CMD_MAX + SS_SERVER_READ_CHUNK)
        return -ENOBUFS; /* cannot happen: reading is paused while one runs */
    memcpy(x->pend + x->pend_len, data, len);
    x->pend_len += len;
    return c_pump(x);
}

static int c_eof(ss_conn *c)
{
    struct cconn *x = ss_conn_ctx(c);
    x->client_eof = true;
    return c_pump(x);
}

static int c_timer(ss_conn *c)
{
    struct cconn *x = ss_conn_ctx(c);
    /* The reply carries what the command wrote until then. */
    if (x->running)
        session_kill(&x->sess);
    return 0;
}

static void c_close(ss_conn *c, int err)
{
    struct cconn *x = ss_conn_ctx(c);
    if (x->running && x->sess.pid > 0) {
        session_kill(&x->sess);
        if (!x->exited)
            while (waitpid(x->sess.pid, NULL, 0) < 0 && errno == EINTR)
                ;
        session_end(&x->sess, ss_conn_server(c));
    }
    loop_close_fd(x->loop, &x->pidfd);
    loop_close_fd(x->loop, &x->out_fd);
    loop_close_fd(x->loop, &x->err_fd);
    for (int k = 0; k < 2; k++)
        free(x->buf[k]);
    free(x->pend);
}

static const ss_service compat_service = {
    .name = "exec-compat",
    .conn_ctx_size = sizeof(struct cconn),
    .on_open = c_open,
    .on_data = c_data,
    .on_eof = c_eof,
    .on_timer = c_timer,
    .on_close = c_close,
};

const ss_service *ss_exec_compat_service(void)
{
    return &compat_service;
}

/* ---- client --------------------------------------------------------------- */

static int write_all_fd(int fd, const uint8_t *p, size_t len)
{
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

struct xclient {
    int out_fd, err_fd;
    int status;
    bool done;
    char err_msg[512];
};

static int client_msg(const uint8_t *p, size_t len, void *arg)
{
    struct xclient *x = arg;
    if (len == 0 || x->done)
        return SS_EPEERPROTO;
    int rc = 0;
    switch (p[0]) {
    case SS_EXEC_STDOUT:
        rc = write_all_fd(x->out_fd, p + 1, len - 1);
        return rc == -EPIPE ? 0 : rc;
    case SS_EXEC_STDERR:
        rc = write_all_fd(x->err_fd, p + 1, len - 1);
        return rc == -EPIPE ? 0 : rc;
    case SS_EXEC_EXIT:
    case SS_EXEC_SIGNAL:
        if (len != 5)
            return SS_EPEERPROTO;
        x->status = (int)ss_frame_header_read(SS_FRAME_BE32, p + 1);
        if (p[0] == SS_EXEC_SIGNAL)
            x->status += 128;
        x->done = true;
        return 1;
    case SS_EXEC_ERROR: {
        size_t n = len - 1 < sizeof x->err_msg - 1 ? len - 1 : sizeof x->err_msg - 1;
        memcpy(x->err_msg, p + 1, n);
        x->err_msg[n] = '\0';
        return 0;
    }
    default:
        return SS_EPEERPROTO;
    }
}

/* One message (header + type + payload) as one send, waiting in the loop. */
static int send_msg_stream(ss_stream *st, uint8_t type, const void *p, size_t len)
{
    uint8_t hdr[5];
    ss_frame_header_write(SS_FRAME_BE32, len + 1, hdr);
    hdr[4] = type;
    struct iovec iov[2] = {{hdr, 5}, {(void *)p, len}};
    return ss_stream_sendv_all(st, iov, len ? 2 : 1);
}

/* The client's conversation on the loop: stdin -> STDIN messages (one at a
 * time: stdin is read again only when the last one went out), messages
 * from the server -> out_fd / err_fd, until EXIT or SIGNAL. */
struct xrun {
    ss_stream *st;
    struct xclient x;
    ss_frame_decoder dec;
    int in_fd;              /* -1 once EOF went out (or no stdin) */
    bool in_watched;        /* in_fd registered with the loop */
    bool in_pollable;       /* epoll takes it (not a regular file) */
    ss_defer in_defer;      /* reads a non-pollable stdin */
    uint8_t *obuf;          /* one STDIN message being sent */
    size_t olen, ooff;
    uint8_t *rbuf;
    int rc;
};

static void xrun_watch(struct xrun *r);

/* Send what obuf holds: 0 (all or some sent), or a failure. */
static int xrun_flush(struct xrun *r)
{
    while (r->ooff < r->olen) {
        ssize_t n = ss_sock_send(r->st->sock, r->obuf + r->ooff, r->olen - r->ooff);
        if (n == -EAGAIN)
            return 0;
        if (n < 0) {
            /* The server may have finished and closed: keep reading. */
            if (n == -EPIPE || n == -ECONNRESET) {
                r->olen = r->ooff = 0;
                if (r->in_watched)
                    ss_loop_io_del(r->st->loop, r->in_fd);
                r->in_watched = false;
                r->in_fd = -1;
                return 0;
            }
            return (int)n;
        }
        r->ooff += (size_t)n;
    }
    r->olen = r->ooff = 0;
    return 0;
}

/* Read stdin once into a STDIN (or STDIN_EOF) message and start sending. */
static void xrun_read_stdin(struct xrun *r)
{
    if (r->in_fd < 0 || r->olen > 0 || r->rc < 0)
        return;
    ssize_t n = read(r->in_fd, r->obuf + 5, SS_EXEC_CHUNK);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n < 0) {
        r->rc = -errno;
        return;
    }
    ss_frame_header_write(SS_FRAME_BE32, (uint64_t)n + 1, r->obuf);
    r->obuf[4] = n > 0 ? SS_EXEC_STDIN : SS_EXEC_STDIN_EOF;
    r->olen = 5 + (size_t)n;
    r->ooff = 0;
    if (n == 0) {
        if (r->in_watched)
            ss_loop_io_del(r->st->loop, r->in_fd);
        r->in_watched = false;
        r->in_fd = -1;
    }
    int rc = xrun_flush(r);
    if (rc < 0)
        r->rc = rc;
}

static void xrun_stdin_cb(ss_loop *loop, int fd, unsigned events, void *arg)
{
    struct xrun *r = arg;
    xrun_read_stdin(r);
    xrun_watch(r);
}

static void xrun_defer_cb(ss_loop *loop, void *arg)
{
    struct xrun *r = arg;
    xrun_read_stdin(r);
    xrun_watch(r);
}

static void xrun_sock_cb(ss_sock *s, unsigned events, void *arg)
{
    struct xrun *r = arg;
    if ((events & SS_WRITE) && r->olen > 0) {
        int rc = xrun_flush(r);
        if (rc < 0)
            r->rc = rc;
    }
    for (int i = 0; i < 16 && !r->x.done && r->rc == 0; i++) {
        ssize_t n = ss_sock_recv(s, r->rbuf, SS_EXEC_CHUNK);
        if (n == -EAGAIN)
            break;
        if (n <= 0) {
            r->rc = n < 0 ? (int)n : -ECONNRESET;
            break;
        }
        ssize_t d = ss_frame_decode(&r->dec, r->rbuf, (size_t)n, client_msg, &r->x);
        if (d < 0)
            r->rc = (int)d;
    }
    xrun_watch(r);
}

/* Ask for what the conversation waits for: the server's messages always;
 * the socket's room while a message is half sent; stdin otherwise. */
static void xrun_watch(struct xrun *r)
{
    if (r->rc < 0 || r->x.done)
        return;
    int rc = ss_sock_watch(r->st->sock, r->st->loop, SS_READ | (r->olen ? SS_WRITE : 0),
                           xrun_sock_cb, r);
    bool want_in = r->in_fd >= 0 && r->olen == 0;
    if (rc == 0 && r->in_fd >= 0 && r->in_pollable)
        rc = ss_loop_io_mod(r->st->loop, r->in_fd, want_in ? SS_READ : 0);
    if (rc == 0 && want_in && !r->in_pollable)
        ss_loop_defer(r->st->loop, &r->in_defer);
    if (rc < 0)
        r->rc = rc;
}

int ss_exec_client_run(ss_stream *st, int argc, char *const argv[], int in_fd,
                       int out_fd, int err_fd, int *status, char *err_msg,
                       size_t err_cap)
{
    struct xrun r = {.st = st, .in_fd = in_fd};
    r.x = (struct xclient){.out_fd = out_fd, .err_fd = err_fd};
    if (err_msg && err_cap)
        err_msg[0] = '\0';
    /* REQUEST: flags, then NUL-terminated arguments. */
    size_t need = 1;
    for (int i = 0; i < argc; i++)
        need += strlen(argv[i]) + 1;
    if (argc < 1 || need + 1 > SS_EXEC_FRAME_MAX)
        return -E2BIG;
    uint8_t *req = malloc(need);
    if (!req)
        return -ENOMEM;
    req[0] = argc == 1 ? SS_EXEC_FLAG_SHELL : 0;
    size_t off = 1;
    for (int i = 0; i < argc; i++) {
        size_t l = strlen(argv[i]) + 1;
        memcpy(req + off, argv[i], l);
        off += l;
    }
    int rc = send_msg_stream(st, SS_EXEC_REQUEST, req, need);
    free(req);
    if (rc < 0)
        return rc;
    if (in_fd < 0 && (rc = send_msg_stream(st, SS_EXEC_STDIN_EOF, NULL, 0)) < 0)
        return rc;

    ss_frame_decoder_init(&r.dec, SS_FRAME_BE32, SS_EXEC_FRAME_MAX);
    ss_defer_init(&r.in_defer, xrun_defer_cb, &r);
    r.rbuf = malloc(SS_EXEC_CHUNK);
    r.obuf = malloc(SS_EXEC_CHUNK + 5);
    if (!r.rbuf || !r.obuf)
        r.rc = -ENOMEM;
    if (r.rc == 0 && in_fd >= 0) {
        /* A regular file or /dev/null is always ready, and epoll refuses
         * it: read it from a deferred task instead. */
        int e = ss_loop_io_add(st->loop, in_fd, SS_READ, xrun_stdin_cb, &r);
        r.in_pollable = r.in_watched = e == 0;
        if (e < 0 && e != -EPERM)
            r.rc = e;
    }
    xrun_watch(&r);
    while (!r.x.done && r.rc == 0) {
        int e = ss_loop_run_once(st->loop, -1);
        if (e < 0)
            r.rc = e;
    }
    if (r.in_watched)
        ss_loop_io_del(st->loop, r.in_fd);
    ss_loop_defer_cancel(st->loop, &r.in_defer);
    ss_sock_unwatch(st->sock);
    free(r.rbuf);
    free(r.obuf);
    ss_frame_decoder_free(&r.dec);
    if (r.x.err_msg[0] && err_msg && err_cap)
        snprintf(err_msg, err_cap, "%s", r.x.err_msg);
    if (r.x.done)
        *status = r.x.status;
    return r.x.done ? 0 : r.rc;
}
