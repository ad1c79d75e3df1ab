/* The server: sockets, workers, the concurrency models, shutdown.
 *
 *   ss_server_new  resolve, bind and listen every socket (errors show here)
 *   ss_server_run  on_ready -> worker threads -> worker 0 on this thread
 *     worker_run   accept (or receive datagrams) until a stop is asked,
 *                  then drain: close the listener, let connections finish,
 *                  after grace_ms abort the rest.
 *   models: event  connections live on the worker's loop (conn.c)
 *           thread a thread per connection with a private loop (or the
 *                  blocking handler), tracked as a job
 *           fork   a child per connection, same as thread inside it;
 *                  it writes its counters (bytes, errors, idle closes) to
 *                  a pipe the parent's loop reads, so ss_server_get_stats
 *                  means the same under every model
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "server/server_int.h"
#include "sockstack/tls.h"
#include "sockstack/config.h"
#include "sockstack/err.h"
#include "sockstack/text.h"

#define ACCEPT_BATCH SS_SERVER_ACCEPT_BATCH
#define DGRAM_BATCH SS_SERVER_DGRAM_BATCH
#define EMFILE_PAUSE_MS SS_SERVER_EMFILE_PAUSE_MS
#define CHUNK_POOL_MAX SS_SERVER_CHUNK_POOL

static _Thread_local struct worker *tls_worker; /* datagram replies */

/* ---- logging ------------------------------------------------------------ */

static void vlog_(ss_server *srv, int level, const char *fmt, va_list ap)
{
    if (!srv->o.log)
        return;
    char msg[512];
    int n = snprintf(msg, sizeof msg, "%s: ", srv->svc->name ? srv->svc->name : "server");
    if (n < 0 || (size_t)n >= sizeof msg)
        n = 0;
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    /* Peers choose names and bytes that reach log lines: no C0 or C1
     * control code gets through to whoever reads the log. */
    char safe[4 * sizeof msg];
    ss_text_escape(msg, strlen(msg), safe, sizeof safe, 0);
    srv->o.log(level, safe, srv->o.cb_arg);
}

void ss_server_log(ss_server *srv, int level, const char *fmt, ...)
{
    if (!srv->o.log)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog_(srv, level, fmt, ap);
    va_end(ap);
}

/* ---- options ------------------------------------------------------------ */

void ss_server_opts_init(ss_server_opts *o)
{
    memset(o, 0, sizeof *o);
    o->backend = NULL;
    o->port = "0";
    o->family = AF_UNSPEC;
    o->type = SS_STREAM;
    ss_sockopts_init(&o->sockopts);
    o->sockopts.reuseaddr = 1;
    ss_sockopts_init(&o->conn_sockopts);
    o->model = SS_MODEL_EVENT;
    o->workers = 1;
    o->backlog = SS_LISTEN_BACKLOG;
    o->max_conns = SS_SERVER_MAX_CONNS;
    o->max_per_addr = SS_SERVER_MAX_PER_ADDR;
    o->grace_ms = SS_SERVER_GRACE_SECS * 1000;
    o->outbuf_max = SS_SERVER_OUTBUF_MAX;
    o->dgram_max = SS_SERVER_DGRAM_MAX;
    o->handle_signals = true;
}

/* ---- workers ------------------------------------------------------------ */

static int worker_init(ss_server *srv, struct worker *w, int idx, bool single)
{
    w->srv = srv;
    w->idx = idx;
    w->single = single;
    ss__bufpool_init(&w->pool, SS_SERVER_OUTBUF_CHUNK, single ? 16 : CHUNK_POOL_MAX);
    w->rbuf_cap = srv->o.type == SS_DGRAM ? srv->o.dgram_max : SS_SERVER_READ_CHUNK;
    if (w->rbuf_cap == 0)
        w->rbuf_cap = 1;
    w->rbuf = malloc(w->rbuf_cap);
    if (!w->rbuf)
        return -ENOMEM;
    if (srv->blocking && single)
        return 0; /* a blocking handler needs no loop */
    if (idx == 0 && !single && srv->o.loop) {
        w->loop = srv->o.loop;
        w->loop_borrowed = true;
        return 0;
    }
    int err = ss_loop_new(&w->loop);
    if (err == 0 && srv->o.busy_poll_us)
        ss_loop_set_busy_poll(w->loop, srv->o.busy_poll_us);
    return err;
}

static void worker_fini(struct worker *w)
{
    if (w->lsock) {
        ss_sock_close(w->lsock);
        w->lsock = NULL;
    }
    ss__conn_free_list(w);
    ss__bufpool_drain(&w->pool);
    free(w->rbuf);
    w->rbuf = NULL;
    if (w->loop && !w->loop_borrowed)
        ss_loop_free(w->loop);
    w->loop = NULL;
}

/* ---- jobs: thread and fork models --------------------------------------- */

static size_t jobs_live(ss_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    size_t n = srv->njobs;
    pthread_mutex_unlock(&srv->mu);
    return n;
}

static void reap_children(ss_server *srv);

/* The counters of a worker that served one connection. */
static void job_stats_take(struct worker *w, struct job_stats *st)
{
    st->bytes_in = atomic_load(&w->bytes_in);
    st->bytes_out = atomic_load(&w->bytes_out);
    st->errors = atomic_load(&w->errors);
    st->idle_closed = atomic_load(&w->idle_closed);
}

static void job_stats_add(ss_server *srv, const struct job_stats *st)
{
    ss__stat_add(&srv->job_bytes_in, st->bytes_in);
    ss__stat_add(&srv->job_bytes_out, st->bytes_out);
    ss__stat_add(&srv->job_errors, st->errors);
    ss__stat_add(&srv->job_idle, st->idle_closed);
}

/* Fork model: add every record the children have written so far. */
static void stats_drain(ss_server *srv)
{
    if (srv->stats_rd < 0)
        return;
    struct job_stats recs[64];
    for (;;) {
        ssize_t n = read(srv->stats_rd, recs, sizeof recs);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* EAGAIN: all read */
        /* Each record was one write of under PIPE_BUF bytes: whole. */
        for (size_t i = 0; i < (size_t)n / sizeof recs[0]; i++)
            job_stats_add(srv, &recs[i]);
    }
}

static void stats_cb(ss_loop *loop, int fd, unsigned events, void *arg)
{
    stats_drain(arg);
}

/* Join finished threads; drop finished job records. */
static void jobs_reap(ss_server *srv)
{
    if (srv->model == SS_MODEL_FORK)
        reap_children(srv); /* also when a SIGCHLD went elsewhere */
    pthread_mutex_lock(&srv->mu);
    struct job **pp = &srv->jobs;
    while (*pp) {
        struct job *j = *pp;
        if (!j->done) {
            pp = &j->next;
            continue;
        }
        *pp = j->next;
        srv->njobs--;
        pthread_mutex_unlock(&srv->mu);
        ss__peer_put(srv, &j->peer);
        if (!j->pid)
            pthread_join(j->tid, NULL);
        free(j);
        pthread_mutex_lock(&srv->mu);
    }
    pthread_mutex_unlock(&srv->mu);
}

/* Serve one connection to the end on this thread (thread job or child);
 * what it served goes to *st. */
static int serve_one(ss_server *srv, ss_sock *s, const ss_addr *peer,
                     struct job *j, struct job_stats *st)
{
    struct worker w;
    memset(&w, 0, sizeof w);
    memset(st, 0, sizeof *st);
    int err = worker_init(srv, &w, -1, true);
    if (err < 0) {
        ss_sock_close(s);
        worker_fini(&w);
        st->errors = 1;
        return err;
    }
    if (srv->blocking) {
        err = ss__conn_run_blocking(&w, s, peer);
    } else {
        if (j) {
            pthread_mutex_lock(&srv->mu);
            j->loop = w.loop;
            pthread_mutex_unlock(&srv->mu);
        }
        ss__conn_open(&w, s, peer);
        while (w.active && err == 0) {
            err = ss_loop_run(w.loop);
            if (atomic_load(&srv->grace_over))
                ss__conn_abort_all(&w, -ECANCELED);
        }
        if (j) {
            pthread_mutex_lock(&srv->mu);
            j->loop = NULL;
            pthread_mutex_unlock(&srv->mu);
        }
    }
    job_stats_take(&w, st);
    worker_fini(&w);
    return err;
}

static void *job_thread(void *arg)
{
    struct job *j = arg;
    ss_server *srv = j->srv;
    struct job_stats st;
    serve_one(srv, j->sock, &j->peer, j, &st);
    job_stats_add(srv, &st);
    pthread_mutex_lock(&srv->mu);
    j->done = true;
    j->sock = NULL;
    pthread_mutex_unlock(&srv->mu);
    ss_loop_stop(srv->workers[0].loop); /* let the acceptor reap us */
    return NULL;
}

static void sigterm_child(ss_loop *loop, int signo, void *arg)
{
    ss_server *srv = arg;
    atomic_store(&srv->stopping, true);
}

static int job_start(struct worker *w, ss_sock *s, const ss_addr *peer)
{
    ss_server *srv = w->srv;
    struct job *j = calloc(1, sizeof *j);
    if (!j) {
        ss_sock_close(s);
        return -ENOMEM;
    }
    j->srv = srv;
    j->peer = *peer;
    j->sock = s;
    j->blocking = srv->blocking;
    if (srv->model == SS_MODEL_THREAD) {
        pthread_mutex_lock(&srv->mu);
        j->next = srv->jobs;
        srv->jobs = j;
        srv->njobs++;
        int r = pthread_create(&j->tid, NULL, job_thread, j);
        if (r != 0) {
            srv->jobs = j->next;
            srv->njobs--;
            pthread_mutex_unlock(&srv->mu);
            ss_sock_close(s);
            free(j);
            return -r;
        }
        pthread_mutex_unlock(&srv->mu);
        return 0;
    }
    /* fork: the child serves and exits; the parent keeps the record. */
    pid_t pid = fork();
    if (pid < 0) {
        int err = -errno;
        ss_sock_close(s);
        free(j);
        return err;
    }
    if (pid == 0) {
        /* The parent's loop and listener are shared kernel objects: touch
         * them only by closing our copies of the descriptors (never
         * epoll_ctl, which would change the parent's interest list). */
        close(ss_sock_fd(w->lsock));
        close(srv->stats_rd);
        sigset_t chld, term;
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        pthread_sigmask(SIG_UNBLOCK, &chld, NULL);
        signal(SIGCHLD, SIG_DFL);
        /* The parent's SIGTERM asks us to finish (whether or not it
         * handles signals itself), and we never die of it before reporting
         * our counters: an event-style conversation stops after it (its
         * loop reads the signal); a blocking handler cannot be told, so it
         * runs on until done or until the grace period's SIGKILL, as it
         * would on a thread. */
        sigemptyset(&term);
        sigaddset(&term, SIGTERM);
        if (srv->blocking)
            signal(SIGTERM, SIG_IGN);
        else
            pthread_sigmask(SIG_BLOCK, &term, NULL);
        struct job_stats st;
        memset(&st, 0, sizeof st);
        if (srv->blocking) {
            serve_one(srv, s, peer, NULL, &st); /* its error is counted in st */
        } else {
            struct worker cw;
            memset(&cw, 0, sizeof cw);
            int err = worker_init(srv, &cw, -1, true);
            if (err == 0) {
                ss_loop_signal_add(cw.loop, SIGTERM, sigterm_child, srv);
                ss__conn_open(&cw, s, peer);
                while (cw.active && err == 0)
                    err = ss_loop_run(cw.loop);
                job_stats_take(&cw, &st);
            } else {
                ss_sock_close(s);
            }
            worker_fini(&cw);
            if (err < 0)
                st.errors++; /* the child could not serve: not the peer's doing */
        }
        /* The parent's figures include ours, as under the other models. A
         * child that cannot report exits 1, which the parent counts. */
        ssize_t n;
        do
            n = write(srv->stats_wr, &st, sizeof st);
        while (n < 0 && errno == EINTR);
        _exit(n == (ssize_t)sizeof st ? 0 : 1);
    }
    ss_sock_close(s); /* the child has it */
    j->pid = pid;
    j->sock = NULL;
    pthread_mutex_lock(&srv->mu);
    j->next = srv->jobs;
    srv->jobs = j;
    srv->njobs++;
    pthread_mutex_unlock(&srv->mu);
    return 0;
}

/* Collect exited children (fork model) and mark their jobs done. */
static void reap_children(ss_server *srv)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        pthread_mutex_lock(&srv->mu);
        for (struct job *j = srv->jobs; j; j = j->next)
            if (j->pid == pid)
                j->done = true;
        pthread_mutex_unlock(&srv->mu);
        /* Killed (grace period over, a crash) or unable to report. */
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            ss__stat_add(&srv->job_errors, 1);
    }
}

static void sigchld_cb(ss_loop *loop, int signo, void *arg)
{
    reap_children(arg);
    ss_loop_stop(loop); /* the acceptor re-checks its jobs */
}

/* Grace period over: end every job. */
static void jobs_expire(ss_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    for (struct job *j = srv->jobs; j; j = j->next) {
        if (j->done)
            continue;
        if (j->pid)
            kill(j->pid, SIGKILL);
        else if (j->blocking && j->sock)
            ss_sock_shutdown(j->sock, SHUT_RDWR);
        else if (j->loop)
            ss_loop_stop(j->loop);
    }
    pthread_mutex_unlock(&srv->mu);
}

/* ---- accepting and receiving -------------------------------------------- */

static void accept_resume(ss_loop *loop, ss_timer *t, void *arg);

static void on_accept(ss_sock *ls, unsigned events, void *arg)
{
    struct worker *w = arg;
    ss_server *srv = w->srv;
    if (srv->model != SS_MODEL_EVENT)
        jobs_reap(srv);
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        ss_sock *s;
        ss_addr peer;
        memset(&peer, 0, sizeof peer);
        int r = ss_sock_accept(ls, &s, &peer);
        if (r == -EAGAIN || r == -EINTR || r == -ECONNABORTED)
            return;
        if (r < 0) {
            ss__stat_add(&w->errors, 1);
            ss_server_log(srv, SS_LOG_WARN, "accept: %s", ss_strerror(r));
            if (r == -EMFILE || r == -ENFILE || r == -ENOBUFS || r == -ENOMEM) {
                /* Level-triggered: without a pause this would spin. */
                ss_sock_watch(ls, w->loop, 0, on_accept, w);
                ss_timer_start(w->loop, &w->accept_timer, EMFILE_PAUSE_MS);
            }
            return;
        }
        if (ss__acl_check(srv->o.allow, srv->o.n_allow, srv->o.deny,
                          srv->o.n_deny, &peer) < 0) {
            ss__stat_add(&w->refused_acl, 1);
            if (srv->o.log) {
                char a[SS_ADDR_STRLEN];
                ss_addr_format(&peer, a, sizeof a);
                ss_server_log(srv, SS_LOG_DEBUG, "refused %s: not allowed", a);
            }
            ss_sock_close(s);
            continue;
        }
        size_t live = srv->model == SS_MODEL_EVENT
                          ? (size_t)atomic_load(&w->active_n)
                          : jobs_live(srv);
        if (w->max_conns && live >= w->max_conns) {
            ss__stat_add(&w->refused_limit, 1);
            ss_server_log(srv, SS_LOG_DEBUG, "refused a connection: %zu open (--max-conns)", live);
            ss_sock_close(s);
            continue;
        }
        size_t from_peer;
        if (ss__peer_take(srv, &peer, &from_peer) < 0) {
            ss__stat_add(&w->refused_limit, 1);
            char a[SS_ADDR_STRLEN];
            ss_addr_format(&peer, a, sizeof a);
            ss_server_log(srv, SS_LOG_INFO, "refused %s: %zu connections open from this "
                          "address (--max-per-addr)", a, from_peer);
            ss_sock_close(s);
            continue;
        }
        if (srv->o.tls && (r = ss_tls_wrap(srv->o.tls, s, NULL, &s)) < 0) {
            ss__peer_put(srv, &peer);
            ss__stat_add(&w->errors, 1);
            ss_server_log(srv, SS_LOG_WARN, "cannot start TLS: %s", ss_strerror(r));
            continue;
        }
        ss__stat_add(&w->accepted, 1);
        if (srv->model == SS_MODEL_EVENT)
            r = ss__conn_open(w, s, &peer);
        else
            r = job_start(w, s, &peer);
        if (r < 0) {
            ss__peer_put(srv, &peer); /* never opened: not counted */
            ss__stat_add(&w->errors, 1);
            ss_server_log(srv, SS_LOG_WARN, "cannot serve a connection: %s",
                           ss_strerror(r));
        }
    }
}

static void accept_resume(ss_loop *loop, ss_timer *t, void *arg)
{
    struct worker *w = arg;
    if (w->lsock && !w->stopping)
        ss_sock_watch(w->lsock, loop, SS_READ, on_accept, w);
}

static void on_dgram(ss_sock *s, unsigned events, void *arg)
{
    struct worker *w = arg;
    ss_server *srv = w->srv;
    tls_worker = w;
    /* Request/response traffic brings one datagram per wake-up; reading on
     * until EAGAIN would then cost a wasted recvmsg each time. So after a
     * wake-up that had exactly one, take one per wake-up (the loop is
     * level-triggered: more pending means we wake again at once), and probe
     * with a full batch every 16th wake-up to notice a busier socket. */
    int batch = DGRAM_BATCH;
    if (w->dgram_single && (++w->dgram_wakeups & 15) != 0)
        batch = 1;
    int got = 0;
    for (int i = 0; i < batch; i++) {
        ss_addr from;
        bool trunc = false;
        memset(&from, 0, sizeof from);
        ssize_t n = ss_sock_recvfrom(s, w->rbuf, w->rbuf_cap, &from, &trunc);
        if (n == -EAGAIN)
            break;
        got++;
        if (n < 0) {
            /* e.g. ECONNREFUSED left by an ICMP error for an earlier reply */
            continue;
        }
        if (ss__acl_check(srv->o.allow, srv->o.n_allow, srv->o.deny,
                          srv->o.n_deny, &from) < 0) {
            ss__stat_add(&w->refused_acl, 1);
            continue;
        }
        ss__stat_add(&w->datagrams, 1);
        ss__stat_add(&w->bytes_in, (uint64_t)n);
        int r = srv->svc->on_datagram(srv, w->rbuf, (size_t)n, trunc, &from);
        if (r < 0) {
            ss__stat_add(&w->errors, 1);
            ss_server_log(srv, SS_LOG_DEBUG, "datagram handler: %s", ss_strerror(r));
        }
    }
    if (batch > 1)
        w->dgram_single = got <= 1;
    tls_worker = NULL;
}

ssize_t ss_server_sendto(ss_server *srv, const void *data, size_t len,
                         const ss_addr *to)
{
    struct worker *w = tls_worker && tls_worker->srv == srv ? tls_worker : &srv->workers[0];
    if (!w->lsock || srv->o.type != SS_DGRAM)
        return -ENOTCONN;
    ssize_t n = ss_sock_sendto(w->lsock, data, len, to);
    if (n > 0)
        ss__stat_add(&w->bytes_out, (uint64_t)n);
    return n;
}

/* ---- running ------------------------------------------------------------ */

static void grace_cb(ss_loop *loop, ss_timer *t, void *arg)
{
    struct worker *w = arg;
    ss_server *srv = w->srv;
    w->grace_over = true;
    atomic_store(&srv->grace_over, true);
    ss_server_log(srv, SS_LOG_INFO, "grace period over: closing %llu connection(s)",
                   (unsigned long long)(atomic_load(&w->active_n) +
                                        (w->idx == 0 ? jobs_live(srv) : 0)));
    ss__conn_abort_all(w, -ECANCELED);
    if (w->idx == 0 && srv->model != SS_MODEL_EVENT)
        jobs_expire(srv);
    ss_loop_stop(loop);
}

/* The service's housekeeping (worker 0 only); it says when next. */
static void tick_cb(ss_loop *loop, ss_timer *t, void *arg)
{
    struct worker *w = arg;
    if (w->stopping || atomic_load(&w->srv->stopping))
        return;
    uint64_t ms = w->srv->svc->on_tick(w->srv);
    if (ms)
        ss_timer_start(loop, t, ms);
}

static void tick_start(struct worker *w)
{
    if (w->idx == 0 && w->srv->svc->on_tick)
        ss_timer_start(w->loop, &w->tick_timer, 0);
}

static bool worker_busy(struct worker *w)
{
    ss_server *srv = w->srv;
    if (w->active)
        return true;
    if (w->idx == 0 && srv->model != SS_MODEL_EVENT) {
        jobs_reap(srv);
        return jobs_live(srv) > 0;
    }
    return false;
}

static int worker_run(struct worker *w)
{
    ss_server *srv = w->srv;
    int err = 0;
    if (w->lsock) {
        ss_sock_cb cb = srv->o.type == SS_DGRAM ? on_dgram : on_accept;
        err = ss_sock_watch(w->lsock, w->loop, SS_READ, cb, w);
    }
    tick_start(w);
    while (err == 0 && !atomic_load(&srv->stopping)) {
        err = ss_loop_run(w->loop);
        if (srv->model != SS_MODEL_EVENT)
            jobs_reap(srv);
    }
    /* Drain: no new connections; in-flight ones get grace_ms. */
    w->stopping = true;
    ss_timer_stop(w->loop, &w->accept_timer);
    ss_timer_stop(w->loop, &w->tick_timer);
    if (w->lsock && srv->o.type == SS_STREAM) {
        ss_sock_close(w->lsock);
        w->lsock = NULL;
    }
    if (w->idx == 0 && srv->model == SS_MODEL_FORK) {
        pthread_mutex_lock(&srv->mu);
        for (struct job *j = srv->jobs; j; j = j->next)
            if (!j->done && j->pid)
                kill(j->pid, SIGTERM);
        pthread_mutex_unlock(&srv->mu);
    }
    if (worker_busy(w)) {
        if (w->idx == 0)
            ss_server_log(srv, SS_LOG_INFO, "stopping: waiting up to %u ms for connections to finish",
                           srv->o.grace_ms);
        ss_timer_start(w->loop, &w->grace_timer, srv->o.grace_ms);
    }
    while (err == 0 && worker_busy(w)) {
        err = ss_loop_run(w->loop);
        if (atomic_load(&srv->stop_count) >= 2 && !w->grace_over)
            grace_cb(w->loop, &w->grace_timer, w); /* second signal: now */
    }
    ss_timer_stop(w->loop, &w->grace_timer);
    if (w->idx == 0 && srv->model != SS_MODEL_EVENT) {
        /* Children were killed or finished; threads were told to end. */
        jobs_expire(srv);
        for (;;) {
            jobs_reap(srv);
            if (jobs_live(srv) == 0)
                break;
            if (srv->model == SS_MODEL_FORK) {
                int st;
                pid_t pid = waitpid(-1, &st, 0);
                if (pid > 0) {
                    pthread_mutex_lock(&srv->mu);
                    for (struct job *j = srv->jobs; j; j = j->next)
                        if (j->pid == pid)
                            j->done = true;
                    pthread_mutex_unlock(&srv->mu);
                } else if (errno == ECHILD) {
                    pthread_mutex_lock(&srv->mu);
                    for (struct job *j = srv->jobs; j; j = j->next)
                        j->done = true;
                    pthread_mutex_unlock(&srv->mu);
                }
            } else {
                ss_loop_run_once(w->loop, 50);
            }
        }
        stats_drain(srv); /* every child has exited: all records are in */
    }
    w->run_err = err;
    return err;
}

static void *worker_thread(void *arg)
{
    worker_run(arg);
    return NULL;
}

static void on_signal(ss_loop *loop, int signo, void *arg)
{
    ss_server *srv = arg;
    ss_server_log(srv, SS_LOG_INFO, "%s: stopping", strsignal(signo));
    ss_server_stop(srv);
}

void ss_server_stop(ss_server *srv)
{
    atomic_fetch_add(&srv->stop_count, 1);
    atomic_store(&srv->stopping, true);
    for (int i = 0; i < srv->nworkers; i++)
        if (srv->workers[i].loop)
            ss_loop_stop(srv->workers[i].loop);
}

int ss_server_run(ss_server *srv)
{
    if (srv->o.on_ready)
        srv->o.on_ready(&srv->addr, srv->proto, srv->o.cb_arg);
    ss_server_log(srv, SS_LOG_DEBUG, "model %s, %d worker(s), backlog %d, max %zu connections",
                   srv->model == SS_MODEL_EVENT ? "event" :
                   srv->model == SS_MODEL_THREAD ? "thread" : "fork",
                   srv->nworkers, srv->o.backlog, srv->o.max_conns);
    for (int i = 1; i < srv->nworkers; i++) {
        int r = pthread_create(&srv->workers[i].tid, NULL, worker_thread,
                               &srv->workers[i]);
        if (r != 0) {
            ss_server_log(srv, SS_LOG_ERROR, "cannot start worker %d: %s", i, strerror(r));
            ss_server_stop(srv);
            break;
        }
        srv->workers[i].has_thread = true;
    }
    int err = worker_run(&srv->workers[0]);
    for (int i = 1; i < srv->nworkers; i++) {
        if (srv->workers[i].has_thread) {
            pthread_join(srv->workers[i].tid, NULL);
            srv->workers[i].has_thread = false;
            if (!err)
                err = srv->workers[i].run_err;
        }
    }
    ss_server_stats st;
    ss_server_get_stats(srv, &st);
    ss_server_log(srv, SS_LOG_INFO,
                   "stopped: %llu accepted, %llu refused (limit), %llu refused (acl), "
                   "%llu idle-closed, %llu errors, %llu bytes in, %llu bytes out",
                   (unsigned long long)st.accepted, (unsigned long long)st.refused_limit,
                   (unsigned long long)st.refused_acl, (unsigned long long)st.idle_closed,
                   (unsigned long long)st.errors, (unsigned long long)st.bytes_in,
                   (unsigned long long)st.bytes_out);
    return err;
}

int ss_server_attach(ss_server *srv)
{
    struct worker *w = &srv->workers[0];
    if (!w->loop_borrowed || srv->nworkers != 1 || srv->model != SS_MODEL_EVENT || !w->lsock)
        return -EINVAL;
    int err = ss_sock_watch(w->lsock, w->loop, SS_READ,
                            srv->o.type == SS_DGRAM ? on_dgram : on_accept, w);
    if (err == 0)
        tick_start(w);
    if (err == 0 && srv->o.on_ready)
        srv->o.on_ready(&srv->addr, srv->proto, srv->o.cb_arg);
    return err;
}

void ss_server_detach(ss_server *srv)
{
    struct worker *w = &srv->workers[0];
    w->stopping = true;
    ss_timer_stop(w->loop, &w->accept_timer);
    ss_timer_stop(w->loop, &w->tick_timer);
    if (w->lsock) {
        ss_sock_close(w->lsock);
        w->lsock = NULL;
    }
    ss__conn_abort_all(w, -ECANCELED);
    /* Each aborted connection finishes in a deferred step of the loop. */
    for (int i = 0; i < 100 && w->active; i++)
        ss_loop_run_once(w->loop, 10);
}

/* ---- creation ----------------------------------------------------------- */

static int check_service(const ss_service *svc, const ss_server_opts *o,
                         ss_server *srv)
{
    if (o->loop && (o->model != SS_MODEL_EVENT || o->workers > 1)) {
        ss_server_log(srv, SS_LOG_ERROR, "a caller's loop runs one event-model worker");
        return -EINVAL;
    }
    if (o->loop && svc->handle && o->type == SS_STREAM) {
        ss_server_log(srv, SS_LOG_ERROR,
                       "this service has a blocking handler, which needs a thread per "
                       "connection; it cannot run on a caller's loop");
        return -EINVAL;
    }
    if (o->type == SS_DGRAM) {
        if (!svc->on_datagram) {
            ss_server_log(srv, SS_LOG_ERROR, "this service has no datagram mode");
            return -EINVAL;
        }
        if (o->model != SS_MODEL_EVENT) {
            ss_server_log(srv, SS_LOG_ERROR, "datagram services run on the event model only");
            return -EINVAL;
        }
        if (o->tls) {
            ss_server_log(srv, SS_LOG_ERROR, "TLS runs over streams, not datagrams");
            return -EINVAL;
        }
        return 0;
    }
    if (o->type != SS_STREAM)
        return -EINVAL;
    if (!svc->handle && !svc->on_data && !svc->on_open) {
        ss_server_log(srv, SS_LOG_ERROR, "this service has no stream mode");
        return -EINVAL;
    }
    if (o->workers > 1 && o->model != SS_MODEL_EVENT) {
        ss_server_log(srv, SS_LOG_ERROR, "workers apply to the event model only");
        return -EINVAL;
    }
    return 0;
}

/* Every server may need a descriptor per connection (and exec three more
 * per command): the soft limit (often 1024) goes up to the hard one. */
static void raise_nofile(ss_server *srv)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
        ss_server_log(srv, SS_LOG_DEBUG, "descriptor limit raised from %llu to %llu",
                      (unsigned long long)was, (unsigned long long)rl.rlim_max);
}

int ss_server_new(const ss_service *svc, const ss_server_opts *o,
                  ss_server **out)
{
    *out = NULL;
    ss_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return -ENOMEM;
    srv->svc = svc;
    srv->o = *o;
    raise_nofile(srv);
    if (!srv->o.backend)
        srv->o.backend = ss_backend_kernel();
    if (!srv->o.port)
        srv->o.port = "0";
    if (srv->o.backlog <= 0)
        srv->o.backlog = SS_LISTEN_BACKLOG;
    if (srv->o.outbuf_max == 0)
        srv->o.outbuf_max = SS_SERVER_OUTBUF_MAX;
    if (srv->o.dgram_max == 0)
        srv->o.dgram_max = SS_SERVER_DGRAM_MAX;
    if (srv->o.workers < 1)
        srv->o.workers = 1;
    pthread_mutex_init(&srv->mu, NULL);
    pthread_mutex_init(&srv->peer_mu, NULL);
    srv->stats_rd = srv->stats_wr = -1;
    int err = check_service(svc, &srv->o, srv);
    if (err < 0)
        goto fail;
    srv->model = srv->o.model;
    srv->blocking = svc->handle != NULL && srv->o.type == SS_STREAM;
    if (srv->blocking && srv->model == SS_MODEL_EVENT) {
        ss_server_log(srv, SS_LOG_INFO,
                       "blocking handler: serving each connection on its own thread");
        srv->model = SS_MODEL_THREAD;
        if (srv->o.workers > 1) {
            ss_server_log(srv, SS_LOG_ERROR, "workers apply to the event model only");
            err = -EINVAL;
            goto fail;
        }
    }

    ss_addr addr;
    int n = ss_addr_resolve(srv->o.bind_host, srv->o.port, srv->o.family,
                            srv->o.type, true, &addr, 1);
    if (n < 0) {
        ss_server_log(srv, SS_LOG_ERROR, "cannot resolve %s: %s",
                       srv->o.bind_host ? srv->o.bind_host : "(any)",
                       ss_strerror(n));
        err = n;
        goto fail;
    }
    bool is_unix = addr.sa.ss_family == AF_UNIX;
    if (is_unix && srv->o.workers > 1) {
        ss_server_log(srv, SS_LOG_ERROR,
                       "workers need SO_REUSEPORT, which Unix sockets lack");
        err = -EINVAL;
        goto fail;
    }
    srv->nworkers = srv->model == SS_MODEL_EVENT ? srv->o.workers : 1;
    srv->workers = calloc((size_t)srv->nworkers, sizeof *srv->workers);
    if (!srv->workers) {
        err = -ENOMEM;
        goto fail;
    }
    ss_sockopts so = srv->o.sockopts;
    if (srv->nworkers > 1)
        so.reuseport = 1;
    if (is_unix)
        so.reuseaddr = -1; /* meaningless for Unix sockets */
    for (int i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        if ((err = worker_init(srv, w, i, false)) < 0)
            goto fail;
        ss_timer_init(&w->grace_timer, grace_cb, w);
        ss_timer_init(&w->accept_timer, accept_resume, w);
        ss_timer_init(&w->tick_timer, tick_cb, w);
        if (srv->o.max_conns)
            w->max_conns = (srv->o.max_conns + (size_t)srv->nworkers - 1) /
                           (size_t)srv->nworkers;
        const char *failed = NULL;
        err = ss_sock_listen_on(srv->o.backend, &addr, srv->o.type, &so,
                                srv->o.backlog, &w->lsock, &failed);
        if (err < 0) {
            char a[SS_ADDR_STRLEN];
            ss_addr_format(&addr, a, sizeof a);
            if (failed)
                ss_server_log(srv, SS_LOG_ERROR, "%s: %s", failed, ss_strerror(err));
            else if (err == SS_ELISTENING)
                ss_server_log(srv, SS_LOG_ERROR, "another server is listening on %s", a);
            else
                ss_server_log(srv, SS_LOG_ERROR, "cannot listen on %s: %s", a,
                               ss_strerror(err));
            goto fail;
        }
        if (i == 0) {
            if (is_unix)
                srv->unix_path_bound = true;
            /* Later workers bind the port the first one got. */
            if ((err = ss_sock_local_addr(w->lsock, &addr)) < 0)
                goto fail;
            srv->addr = addr;
        }
    }
    if (srv->model == SS_MODEL_FORK && ss_sock_fd(srv->workers[0].lsock) < 0) {
        ss_server_log(srv, SS_LOG_ERROR, "the fork model needs kernel sockets");
        err = SS_ENOTSUP;
        goto fail;
    }
    snprintf(srv->proto, sizeof srv->proto, "%s",
             is_unix ? "unix" : srv->o.type == SS_DGRAM ? "udp" : "tcp");
    if (srv->o.handle_signals) {
        ss_loop *l0 = srv->workers[0].loop;
        if ((err = ss_loop_signal_add(l0, SIGINT, on_signal, srv)) < 0 ||
            (err = ss_loop_signal_add(l0, SIGTERM, on_signal, srv)) < 0)
            goto fail;
    }
    if (srv->model == SS_MODEL_FORK &&
        (err = ss_loop_signal_add(srv->workers[0].loop, SIGCHLD, sigchld_cb, srv)) < 0)
        goto fail;
    if (srv->model == SS_MODEL_FORK) {
        /* Children report their counters here; the read end never blocks. */
        int fds[2];
        if (pipe2(fds, O_CLOEXEC) < 0) {
            err = -errno;
            goto fail;
        }
        srv->stats_rd = fds[0];
        srv->stats_wr = fds[1];
        if (fcntl(srv->stats_rd, F_SETFL, O_NONBLOCK) < 0) {
            err = -errno;
            goto fail;
        }
        if ((err = ss_loop_io_add(srv->workers[0].loop, srv->stats_rd, SS_READ, stats_cb,
                                  srv)) < 0)
            goto fail;
    }
    *out = srv;
    return 0;
fail:
    ss_server_free(srv);
    return err;
}

void ss_server_free(ss_server *srv)
{
    if (!srv)
        return;
    for (int i = 0; srv->workers && i < srv->nworkers; i++)
        worker_fini(&srv->workers[i]);
    if (srv->stats_rd >= 0)
        close(srv->stats_rd);
    if (srv->stats_wr >= 0)
        close(srv->stats_wr);
    if (srv->unix_path_bound) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)&srv->addr.sa;
        if (un->sun_path[0])
            unlink(un->sun_path);
    }
    jobs_reap(srv);
    while (srv->jobs) { /* not reached after a completed run */
        struct job *j = srv->jobs;
        srv->jobs = j->next;
        free(j);
    }
    free(srv->workers);
    pthread_mutex_destroy(&srv->mu);
    ss__peer_free(srv);
    pthread_mutex_destroy(&srv->peer_mu);
    free(srv);
}

int ss_server_addr(const ss_server *srv, ss_addr *out)
{
    *out = srv->addr;
    return 0;
}

void *ss_server_ctx(const ss_server *srv) { return srv->o.svc_ctx; }
const ss_service *ss_server_service(const ss_server *srv) { return srv->svc; }

void ss_server_get_stats(const ss_server *srv, ss_server_stats *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        out->accepted += atomic_load(&w->accepted);
        out->refused_limit += atomic_load(&w->refused_limit);
        out->refused_acl += atomic_load(&w->refused_acl);
        out->idle_closed += atomic_load(&w->idle_closed);
        out->errors += atomic_load(&w->errors);
        out->active += atomic_load(&w->active_n);
        out->datagrams += atomic_load(&w->datagrams);
        out->bytes_in += atomic_load(&w->bytes_in);
        out->bytes_out += atomic_load(&w->bytes_out);
    }
    out->errors += atomic_load(&srv->job_errors);
    out->idle_closed += atomic_load(&srv->job_idle);
    out->bytes_in += atomic_load(&srv->job_bytes_in);
    out->bytes_out += atomic_load(&srv->job_bytes_out);
    if (srv->model != SS_MODEL_EVENT)
        out->active += jobs_live((ss_server *)srv);
}
