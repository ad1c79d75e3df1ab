/* The event loop: fd table, timer heap, deferred queue, signals, wake-up.
 *
 * One iteration: nearest timer -> wait -> I/O callbacks -> timers -> deferred.
 * Each fd registration carries a generation number in its poller token, so an
 * event already fetched for an fd that a callback closed (and the kernel
 * reused for a new connection) in the same batch is dropped, not misdelivered.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "reactor/poller.h"
#include "sockstack/config.h"
#include "sockstack/reactor.h"

struct io_slot {
    ss_io_cb cb;
    void *arg;
    uint32_t gen;
    unsigned events;
    bool used;
};

struct sig_slot {
    ss_signal_cb cb;
    void *arg;
};

struct ss_loop {
    const struct ss_poller_ops *ops;
    void *poller;
    uint64_t now;

    struct io_slot *io;   /* indexed by fd */
    size_t io_cap;

    ss_timer **heap;      /* min-heap on (due, seq) */
    size_t heap_len, heap_cap;
    uint64_t timer_seq;

    ss_defer *defer_head, *defer_tail; /* FIFO, doubly linked */
    uint64_t defer_batch; /* batch of what is queued now (from 1) */

    int wake_fd;          /* eventfd: ss_loop_stop from other threads */
    uint32_t spin_us;     /* busy-poll this long before sleeping; 0 = never */
    volatile sig_atomic_t stop;

    int sig_fd;
    sigset_t sig_mask;
    struct sig_slot sigs[65];

    struct ss_poll_event events[SS_REACTOR_MAX_EVENTS];
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t make_token(int fd, uint32_t gen)
{
    return ((uint64_t)gen << 32) | (uint32_t)fd;
}

static void wake_cb(ss_loop *loop, int fd, unsigned events, void *arg)
{
    uint64_t v;
    while (read(fd, &v, sizeof v) == (ssize_t)sizeof v)
        ;
}

int ss_loop_new(ss_loop **out)
{
    ss_loop *loop = calloc(1, sizeof *loop);
    if (!loop)
        return -ENOMEM;
    loop->ops = &ss__poller_epoll;
    loop->wake_fd = -1;
    loop->sig_fd = -1;
    loop->defer_batch = 1; /* a task's batch 0 means not queued */
    sigemptyset(&loop->sig_mask);
    int err = loop->ops->create(&loop->poller);
    if (err < 0) {
        free(loop);
        return err;
    }
    loop->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->wake_fd < 0) {
        err = -errno;
        ss_loop_free(loop);
        return err;
    }
    err = ss_loop_io_add(loop, loop->wake_fd, SS_READ, wake_cb, NULL);
    if (err < 0) {
        ss_loop_free(loop);
        return err;
    }
    loop->now = mono_ms();
    *out = loop;
    return 0;
}

void ss_loop_free(ss_loop *loop)
{
    if (!loop)
        return;
    if (loop->wake_fd >= 0)
        close(loop->wake_fd);
    if (loop->sig_fd >= 0)
        close(loop->sig_fd);
    if (loop->poller)
        loop->ops->destroy(loop->poller);
    for (size_t i = 0; i < loop->heap_len; i++)
        loop->heap[i]->slot = 0;
    free(loop->heap);
    free(loop->io);
    free(loop);
}

const char *ss_loop_backend(const ss_loop *loop)
{
    return loop->ops->name;
}

uint64_t ss_loop_now(const ss_loop *loop)
{
    return loop->now;
}

void ss_loop_update_time(ss_loop *loop)
{
    loop->now = mono_ms();
}

void ss_loop_stop(ss_loop *loop)
{
    loop->stop = 1;
    uint64_t one = 1;
    /* Async-signal-safe; EAGAIN means a wake-up is already pending. */
    ssize_t r = write(loop->wake_fd, &one, sizeof one);
    (void)r;
}

bool ss_loop_stopped(const ss_loop *loop)
{
    return loop->stop != 0;
}

/* ---- descriptors -------------------------------------------------------- */

static int io_reserve(ss_loop *loop, int fd)
{
    if (fd < 0)
        return -EBADF;
    if ((size_t)fd < loop->io_cap)
        return 0;
    size_t cap = loop->io_cap ? loop->io_cap : 64;
    while (cap <= (size_t)fd)
        cap *= 2;
    struct io_slot *n = realloc(loop->io, cap * sizeof *n);
    if (!n)
        return -ENOMEM;
    memset(n + loop->io_cap, 0, (cap - loop->io_cap) * sizeof *n);
    loop->io = n;
    loop->io_cap = cap;
    return 0;
}

int ss_loop_io_add(ss_loop *loop, int fd, unsigned events, ss_io_cb cb, void *arg)
{
    int err = io_reserve(loop, fd);
    if (err < 0)
        return err;
    struct io_slot *s = &loop->io[fd];
    if (s->used)
        return -EEXIST;
    uint32_t gen = s->gen + 1;
    err = loop->ops->ctl(loop->poller, SS_POLL_ADD, fd, events, make_token(fd, gen));
    if (err < 0)
        return err;
    *s = (struct io_slot){.cb = cb, .arg = arg, .gen = gen, .events = events, .used = true};
    return 0;
}

int ss_loop_io_mod(ss_loop *loop, int fd, unsigned events)
{
    if (fd < 0 || (size_t)fd >= loop->io_cap || !loop->io[fd].used)
        return -ENOENT;
    struct io_slot *s = &loop->io[fd];
    if (s->events == events)
        return 0;
    int err = loop->ops->ctl(loop->poller, SS_POLL_MOD, fd, events, make_token(fd, s->gen));
    if (err == 0)
        s->events = events;
    return err;
}

int ss_loop_io_del(ss_loop *loop, int fd)
{
    if (fd < 0 || (size_t)fd >= loop->io_cap || !loop->io[fd].used)
        return -ENOENT;
    loop->io[fd].used = false;
    loop->io[fd].cb = NULL;
    /* The fd may already be closed (then the kernel dropped it): not an error. */
    int err = loop->ops->ctl(loop->poller, SS_POLL_DEL, fd, 0, 0);
    return err == -EBADF || err == -ENOENT ? 0 : err;
}

/* ---- timers: binary min-heap on (due, seq) ------------------------------ */

static bool timer_before(const ss_timer *a, const ss_timer *b)
{
    return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heap_set(ss_loop *loop, size_t i, ss_timer *t)
{
    loop->heap[i] = t;
    t->slot = i + 1;
}

static void heap_up(ss_loop *loop, size_t i)
{
    ss_timer *t = loop->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!timer_before(t, loop->heap[p]))
            break;
        heap_set(loop, i, loop->heap[p]);
        i = p;
    }
    heap_set(loop, i, t);
}

static void heap_down(ss_loop *loop, size_t i)
{
    ss_timer *t = loop->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const ss_timer *best = t;
        if (l < loop->heap_len && timer_before(loop->heap[l], best))
            m = l, best = loop->heap[l];
        if (r < loop->heap_len && timer_before(loop->heap[r], best))
            m = r;
        if (m == i)
            break;
        heap_set(loop, i, loop->heap[m]);
        i = m;
    }
    heap_set(loop, i, t);
}

void ss_timer_init(ss_timer *t, ss_timer_cb cb, void *arg)
{
    *t = (ss_timer){.cb = cb, .arg = arg};
}

bool ss_timer_active(const ss_timer *t)
{
    return t->slot != 0;
}

void ss_timer_stop(ss_loop *loop, ss_timer *t)
{
    if (!t->slot)
        return;
    size_t i = t->slot - 1;
    t->slot = 0;
    loop->heap_len--;
    if (i == loop->heap_len)
        return;
    ss_timer *moved = loop->heap[loop->heap_len];
    heap_set(loop, i, moved);
    heap_up(loop, i);
    heap_down(loop, moved->slot - 1);
}

int ss_timer_start(ss_loop *loop, ss_timer *t, uint64_t delay_ms)
{
    ss_timer_stop(loop, t);
    if (loop->heap_len == loop->heap_cap) {
        size_t cap = loop->heap_cap ? loop->heap_cap * 2 : SS_REACTOR_TIMERS_INIT;
        ss_timer **n = realloc(loop->heap, cap * sizeof *n);
        if (!n)
            return -ENOMEM;
        loop->heap = n;
        loop->heap_cap = cap;
    }
    t->due = loop->now + delay_ms;
    t->seq = loop->timer_seq++;
    heap_set(loop, loop->heap_len++, t);
    heap_up(loop, loop->heap_len - 1);
    return 0;
}

static void run_timers(ss_loop *loop)
{
    while (loop->heap_len > 0 && loop->heap[0]->due <= loop->now) {
        ss_timer *t = loop->heap[0];
        ss_timer_stop(loop, t);
        t->cb(loop, t, t->arg); /* may re-arm t or free it */
    }
}

/* ---- deferred tasks ----------------------------------------------------- */

void ss_defer_init(ss_defer *d, ss_defer_cb cb, void *arg)
{
    *d = (ss_defer){.cb = cb, .arg = arg};
}

void ss_loop_defer(ss_loop *loop, ss_defer *d)
{
    if (d->batch)
        return;
    d->batch = loop->defer_batch;
    d->next = NULL;
    d->prev = loop->defer_tail;
    if (loop->defer_tail)
        loop->defer_tail->next = d;
    else
        loop->defer_head = d;
    loop->defer_tail = d;
}

static void defer_unlink(ss_loop *loop, ss_defer *d)
{
    if (d->prev)
        d->prev->next = d->next;
    else
        loop->defer_head = d->next;
    if (d->next)
        d->next->prev = d->prev;
    else
        loop->defer_tail = d->prev;
    d->next = d->prev = NULL;
    d->batch = 0;
}

void ss_loop_defer_cancel(ss_loop *loop, ss_defer *d)
{
    if (d->batch)
        defer_unlink(loop, d);
}

/* Run what was queued before now: tasks queued by tasks carry the next
 * batch number and wait a turn. The queue is in batch order, so the run
 * ends at the first task of a later batch, whatever was cancelled. */
static void run_deferred(ss_loop *loop)
{
    uint64_t batch = loop->defer_batch++;
    ss_defer *d;
    while ((d = loop->defer_head) && d->batch <= batch) {
        defer_unlink(loop, d);
        d->cb(loop, d->arg); /* may free d */
    }
}

/* ---- signals ------------------------------------------------------------ */

static void signal_cb(ss_loop *loop, int fd, unsigned events, void *arg)
{
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
        int signo = (int)si.ssi_signo;
        if (signo > 0 && signo < 65 && loop->sigs[signo].cb)
            loop->sigs[signo].cb(loop, signo, loop->sigs[signo].arg);
    }
}

int ss_loop_signal_add(ss_loop *loop, int signo, ss_signal_cb cb, void *arg)
{
    if (signo <= 0 || signo >= 65)
        return -EINVAL;
    sigaddset(&loop->sig_mask, signo);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, signo);
    if (pthread_sigmask(SIG_BLOCK, &block, NULL) != 0)
        return -EINVAL;
    int fd = signalfd(loop->sig_fd, &loop->sig_mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (loop->sig_fd < 0) {
        int err = ss_loop_io_add(loop, fd, SS_READ, signal_cb, NULL);
        if (err < 0) {
            close(fd);
            return err;
        }
        loop->sig_fd = fd;
    }
    loop->sigs[signo] = (struct sig_slot){.cb = cb, .arg = arg};
    return 0;
}

/* ---- the loop ----------------------------------------------------------- */

static int next_timeout(ss_loop *loop, int cap_ms)
{
    if (loop->defer_head || loop->stop)
        return 0;
    int t = cap_ms;
    if (loop->heap_len > 0) {
        uint64_t due = loop->heap[0]->due;
        uint64_t wait = due > loop->now ? due - loop->now : 0;
        if (wait > INT32_MAX)
            wait = INT32_MAX;
        if (t < 0 || (int)wait < t)
            t = (int)wait;
    }
    return t;
}

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Wait for events. With busy polling on, a wait that would sleep first
 * polls without sleeping for up to spin_us: an event that comes in that
 * time is handled without the sleep and wake-up (on a VM a halted vCPU
 * costs tens of microseconds to wake). A due timer or deferred task ends
 * the spin, as it would end the sleep. */
static int wait_events(ss_loop *loop, int timeout_ms)
{
    int t = next_timeout(loop, timeout_ms);
    if (loop->spin_us && t != 0) {
        uint64_t start = mono_us(), now = start;
        do {
            int n = loop->ops->wait(loop->poller, loop->events, SS_REACTOR_MAX_EVENTS, 0);
            if (n != 0)
                return n;
            now = mono_us();
        } while (now - start < loop->spin_us && !loop->stop &&
                 (t < 0 || now - start < (uint64_t)t * 1000u));
        /* Sleep for what is left: timers are absolute, the cap is not. */
        int cap = timeout_ms;
        if (cap > 0) {
            uint64_t spent_ms = (now - start) / 1000u;
            cap = spent_ms >= (uint64_t)cap ? 0 : cap - (int)spent_ms;
        }
        ss_loop_update_time(loop);
        t = next_timeout(loop, cap);
    }
    return loop->ops->wait(loop->poller, loop->events, SS_REACTOR_MAX_EVENTS, t);
}

void ss_loop_set_busy_poll(ss_loop *loop, uint32_t usec)
{
    loop->spin_us = usec > SS_REACTOR_BUSY_POLL_MAX_US ? SS_REACTOR_BUSY_POLL_MAX_US : usec;
}

int ss_loop_run_once(ss_loop *loop, int timeout_ms)
{
    ss_loop_update_time(loop);
    int n = wait_events(loop, timeout_ms);
    if (n < 0)
        return n;
    ss_loop_update_time(loop);
    for (int i = 0; i < n; i++) {
        int fd = (int)(uint32_t)loop->events[i].token;
        uint32_t gen = (uint32_t)(loop->events[i].token >> 32);
        if ((size_t)fd >= loop->io_cap)
            continue;
        struct io_slot *s = &loop->io[fd];
        if (!s->used || s->gen != gen)
            continue; /* deleted (or reused) by an earlier callback */
        s->cb(loop, fd, loop->events[i].events, s->arg);
    }
    run_timers(loop);
    run_deferred(loop);
    return 0;
}

int ss_loop_run(ss_loop *loop)
{
    int err = 0;
    while (!loop->stop && err == 0)
        err = ss_loop_run_once(loop, -1);
    loop->stop = 0; /* a stop requested before run() is honoured, then cleared */
    return err;
}
