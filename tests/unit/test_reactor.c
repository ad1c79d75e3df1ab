#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sockstack/reactor.h"

static ss_loop *loop;

static void setup(void) { cr_assert_eq(ss_loop_new(&loop), 0); }
static void teardown(void) { ss_loop_free(loop); }

TestSuite(reactor, .init = setup, .fini = teardown, .timeout = 10);

struct order { int seen[8]; int n; };

static void record(ss_loop *l, ss_timer *t, void *arg)
{
    struct order *o = arg;
    o->seen[o->n++] = (int)(t->seq);
}

Test(reactor, timers_fire_in_due_order_and_fifo_on_ties)
{
    struct order o = {0};
    ss_timer t[4];
    uint64_t delays[4] = {30, 10, 10, 20};
    for (int i = 0; i < 4; i++) {
        ss_timer_init(&t[i], record, &o);
        cr_assert_eq(ss_timer_start(loop, &t[i], delays[i]), 0);
    }
    while (o.n < 4)
        cr_assert_eq(ss_loop_run_once(loop, -1), 0);
    /* seq is insertion order: 1 and 2 (10 ms, FIFO), 3 (20 ms), 0 (30 ms). */
    cr_assert_eq(o.seen[0], 1);
    cr_assert_eq(o.seen[1], 2);
    cr_assert_eq(o.seen[2], 3);
    cr_assert_eq(o.seen[3], 0);
}

Test(reactor, stopped_timer_never_fires)
{
    struct order o = {0};
    ss_timer a, b;
    ss_timer_init(&a, record, &o);
    ss_timer_init(&b, record, &o);
    ss_timer_start(loop, &a, 5);
    ss_timer_start(loop, &b, 10);
    ss_timer_stop(loop, &a);
    cr_assert_not(ss_timer_active(&a));
    while (o.n < 1)
        ss_loop_run_once(loop, -1);
    cr_assert_eq(o.n, 1);
    cr_assert_eq(o.seen[0], (int)b.seq);
}

static void on_timer_stop_loop(ss_loop *l, ss_timer *t, void *arg) { ss_loop_stop(l); }

Test(reactor, nearest_timer_sets_the_wait)
{
    ss_timer t;
    ss_timer_init(&t, on_timer_stop_loop, NULL);
    ss_timer_start(loop, &t, 50);
    uint64_t start = ss_loop_now(loop);
    cr_assert_eq(ss_loop_run(loop), 0);
    uint64_t waited = ss_loop_now(loop) - start;
    /* The loop slept until the timer, not in a busy loop or a fixed tick. */
    cr_assert_geq(waited, 50);
}

struct io_seen { int calls; char buf[16]; };

static void on_read(ss_loop *l, int fd, unsigned ev, void *arg)
{
    struct io_seen *s = arg;
    cr_assert(ev & SS_READ);
    ssize_t n = read(fd, s->buf, sizeof s->buf - 1);
    cr_assert_eq(n, 5);
    s->calls++;
    ss_loop_stop(l);
}

Test(reactor, readable_fd_runs_its_callback)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    struct io_seen s = {0};
    cr_assert_eq(ss_loop_io_add(loop, p[0], SS_READ, on_read, &s), 0);
    cr_assert_eq(ss_loop_io_add(loop, p[0], SS_READ, on_read, &s), -EEXIST);
    cr_assert_eq(write(p[1], "hello", 5), 5);
    cr_assert_eq(ss_loop_run(loop), 0);
    cr_assert_eq(s.calls, 1);
    cr_assert_str_eq(s.buf, "hello");
    cr_assert_eq(ss_loop_io_del(loop, p[0]), 0);
    cr_assert_eq(ss_loop_io_del(loop, p[0]), -ENOENT);
    close(p[0]);
    close(p[1]);
}

static void defer_count(ss_loop *l, void *arg) { (*(int *)arg)++; }

Test(reactor, deferred_task_runs_once_per_queueing)
{
    int n = 0;
    ss_defer d;
    ss_defer_init(&d, defer_count, &n);
    ss_loop_defer(loop, &d);
    ss_loop_defer(loop, &d); /* already queued: no second run */
    ss_loop_run_once(loop, 0);
    cr_assert_eq(n, 1);
    ss_loop_run_once(loop, 0);
    cr_assert_eq(n, 1);
    ss_loop_defer(loop, &d);
    ss_loop_defer_cancel(loop, &d);
    ss_loop_run_once(loop, 0);
    cr_assert_eq(n, 1);
}

/* Deferred tasks that write their index into a shared log, in run order. */
struct dlog { int ran[16]; int n; };
struct dtask {
    ss_defer d;
    struct dlog *log;
    int id;
    ss_defer *cancel; /* cancelled by this task when it runs, if set */
    ss_defer *queue;  /* queued by this task when it runs, if set */
};

static void dtask_run(ss_loop *l, void *arg)
{
    struct dtask *t = arg;
    t->log->ran[t->log->n++] = t->id;
    if (t->cancel)
        ss_loop_defer_cancel(l, t->cancel);
    if (t->queue)
        ss_loop_defer(l, t->queue);
}

static void dtasks_init(struct dtask *t, int n, struct dlog *log)
{
    for (int i = 0; i < n; i++) {
        t[i] = (struct dtask){.log = log, .id = i};
        ss_defer_init(&t[i].d, dtask_run, &t[i]);
    }
}

static void assert_ran(const struct dlog *log, const int *want, int n)
{
    cr_assert_eq(log->n, n, "%d tasks ran, want %d", log->n, n);
    for (int i = 0; i < n; i++)
        cr_assert_eq(log->ran[i], want[i], "run %d: task %d, want %d", i, log->ran[i], want[i]);
}

/* Cancel the first, a middle or the last of five queued tasks: exactly
 * the other four run, in the order they were queued, and the cancelled
 * one runs when queued again. */
static void cancel_one_of_five(int victim)
{
    struct dlog log = {0};
    struct dtask t[5];
    dtasks_init(t, 5, &log);
    for (int i = 0; i < 5; i++)
        ss_loop_defer(loop, &t[i].d);
    ss_loop_defer_cancel(loop, &t[victim].d);
    ss_loop_defer_cancel(loop, &t[victim].d); /* not queued: harmless */
    cr_assert_eq(ss_loop_run_once(loop, 0), 0);
    int want[4], n = 0;
    for (int i = 0; i < 5; i++)
        if (i != victim)
            want[n++] = i;
    assert_ran(&log, want, 4);
    cr_assert_eq(ss_loop_run_once(loop, 0), 0);
    assert_ran(&log, want, 4); /* nothing left queued */
    /* The queue is whole again: the cancelled task queues last, runs once. */
    ss_loop_defer(loop, &t[(victim + 1) % 5].d);
    ss_loop_defer(loop, &t[victim].d);
    cr_assert_eq(ss_loop_run_once(loop, 0), 0);
    cr_assert_eq(log.n, 6);
    cr_assert_eq(log.ran[4], (victim + 1) % 5);
    cr_assert_eq(log.ran[5], victim);
}

Test(reactor, cancel_the_first_of_five_deferred_tasks) { cancel_one_of_five(0); }
Test(reactor, cancel_a_middle_one_of_five_deferred_tasks) { cancel_one_of_five(2); }
Test(reactor, cancel_the_last_of_five_deferred_tasks) { cancel_one_of_five(4); }

/* A task cancels a later one of its own batch: that one does not run. A
 * task cancels the last of its batch and queues another: the new one waits
 * for the next iteration, as every task queued by a task does. */
Test(reactor, a_task_cancels_a_later_task_of_its_batch)
{
    struct dlog log = {0};
    struct dtask t[5];
    dtasks_init(t, 5, &log);
    t[0].cancel = &t[2].d;
    t[1].cancel = &t[3].d;
    t[1].queue = &t[4].d;
    for (int i = 0; i < 4; i++)
        ss_loop_defer(loop, &t[i].d);
    cr_assert_eq(ss_loop_run_once(loop, 0), 0);
    assert_ran(&log, (int[]){0, 1}, 2);
    cr_assert_eq(ss_loop_run_once(loop, 0), 0);
    assert_ran(&log, (int[]){0, 1, 4}, 3);
}

static void on_sig(ss_loop *l, int signo, void *arg)
{
    *(int *)arg = signo;
    ss_loop_stop(l);
}

Test(reactor, signals_arrive_through_the_loop)
{
    int got = 0;
    cr_assert_eq(ss_loop_signal_add(loop, SIGUSR1, on_sig, &got), 0);
    raise(SIGUSR1);
    cr_assert_eq(ss_loop_run(loop), 0);
    cr_assert_eq(got, SIGUSR1);
}

Test(reactor, stop_before_run_is_honoured)
{
    ss_loop_stop(loop);
    cr_assert_eq(ss_loop_run(loop), 0);
    cr_assert_not(ss_loop_stopped(loop));
}

/* ---- busy polling ---------------------------------------------------------- */

static void count_timer(ss_loop *l, ss_timer *t, void *arg) { (*(int *)arg)++; }

Test(reactor, busy_poll_shorter_than_the_timer_still_sleeps_until_it)
{
    int fired = 0;
    ss_timer t;
    ss_timer_init(&t, count_timer, &fired);
    ss_loop_set_busy_poll(loop, 2000); /* 2 ms of spin, then sleep */
    ss_timer_start(loop, &t, 30);
    uint64_t start = ss_loop_now(loop);
    /* One iteration: spin, then sleep the rest (the cap is far), then fire. */
    cr_assert_eq(ss_loop_run_once(loop, 1000), 0);
    cr_assert_eq(fired, 1);
    cr_assert_geq(ss_loop_now(loop) - start, 30);
}

Test(reactor, busy_poll_longer_than_the_timer_ends_at_the_timer)
{
    int fired = 0;
    ss_timer t;
    ss_timer_init(&t, count_timer, &fired);
    ss_loop_set_busy_poll(loop, 1000000); /* capped at the maximum */
    ss_timer_start(loop, &t, 3);
    cr_assert_eq(ss_loop_run_once(loop, -1), 0);
    cr_assert_eq(fired, 1);
}

Test(reactor, busy_poll_respects_the_callers_cap)
{
    int fired = 0;
    ss_timer t;
    ss_timer_init(&t, count_timer, &fired);
    ss_loop_set_busy_poll(loop, 5000);
    ss_timer_start(loop, &t, 200);
    uint64_t start = ss_loop_now(loop);
    /* Nothing happens for 10 ms: the iteration returns without the timer. */
    cr_assert_eq(ss_loop_run_once(loop, 10), 0);
    cr_assert_eq(fired, 0);
    cr_assert_geq(ss_loop_now(loop) - start, 10);
}

static void *write_later(void *arg)
{
    struct timespec ts = {0, 2 * 1000 * 1000};
    nanosleep(&ts, NULL);
    cr_assert_eq(write(*(int *)arg, "hello", 5), 5);
    return NULL;
}

Test(reactor, busy_poll_delivers_an_event_that_comes_during_the_spin)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    struct io_seen s = {0};
    cr_assert_eq(ss_loop_io_add(loop, p[0], SS_READ, on_read, &s), 0);
    ss_loop_set_busy_poll(loop, 10000);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, write_later, &p[1]), 0);
    cr_assert_eq(ss_loop_run(loop), 0);
    pthread_join(th, NULL);
    cr_assert_eq(s.calls, 1);
    cr_assert_str_eq(s.buf, "hello");
    close(p[0]);
    close(p[1]);
}
