/* reactor: the event loop that drives everything in sockstack.
 *
 * One loop per thread. It waits in exactly one place (the poller), and the
 * nearest timer sets how long. Descriptors are level-triggered. Timers and
 * deferred tasks are caller-allocated handles (libuv style): the loop never
 * allocates per event, only when its fd table or timer heap must grow.
 *
 * Order of one iteration (ss_loop_run_once):
 *   wait for I/O (up to the nearest timer; not at all if tasks are deferred)
 *   -> I/O callbacks -> expired timers -> deferred tasks queued before this
 *   point. Tasks deferred by a task run in the next iteration, so no callback
 *   can starve I/O.
 */
#ifndef SOCKSTACK_REACTOR_H
#define SOCKSTACK_REACTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sockstack/api.h"
SS_API_BEGIN

typedef struct ss_loop ss_loop;

/* Readiness bits. SS_HUP is only reported (error or hang-up), never asked.
 * SS_RDHUP, asked without SS_READ, reports only that the peer closed its
 * sending side (EPOLLRDHUP), not the bytes waiting before that close. */
enum { SS_READ = 1u, SS_WRITE = 2u, SS_HUP = 4u, SS_RDHUP = 8u };

typedef void (*ss_io_cb)(ss_loop *loop, int fd, unsigned events, void *arg);

typedef struct ss_timer ss_timer;
typedef void (*ss_timer_cb)(ss_loop *loop, ss_timer *timer, void *arg);

/* A timer handle, owned by the caller. Fields are internal. */
struct ss_timer {
    uint64_t due;   /* loop clock, ms */
    uint64_t seq;   /* insertion order: equal due times fire FIFO */
    size_t slot;    /* heap index + 1; 0 when not armed */
    ss_timer_cb cb;
    void *arg;
};

typedef struct ss_defer ss_defer;
typedef void (*ss_defer_cb)(ss_loop *loop, void *arg);

/* A deferred task handle, owned by the caller. Fields are internal: a
 * doubly linked queue, so that cancelling is O(1) wherever d is in it. */
struct ss_defer {
    ss_defer *next, *prev;
    ss_defer_cb cb;
    void *arg;
    uint64_t batch; /* the loop's batch it runs in; 0 when not queued */
};

typedef void (*ss_signal_cb)(ss_loop *loop, int signo, void *arg);

/* Create a loop. Returns 0 or a negative errno. */
int ss_loop_new(ss_loop **out);
/* Free a loop; registered descriptors are not closed. */
void ss_loop_free(ss_loop *loop);

/* Run until ss_loop_stop(). Returns 0, or a negative errno if the poller
 * fails (the caller decides what that means; the loop never aborts). */
int ss_loop_run(ss_loop *loop);
/* One iteration, waiting at most timeout_ms (-1: up to the nearest timer). */
int ss_loop_run_once(ss_loop *loop, int timeout_ms);
/* Busy polling: before sleeping for events, poll without sleeping for up
 * to usec microseconds (0, the default, never spins; capped at
 * SS_REACTOR_BUSY_POLL_MAX_US). Trades a busy CPU for a lower wake-up
 * latency, like SO_BUSY_POLL does for a NIC queue. */
void ss_loop_set_busy_poll(ss_loop *loop, uint32_t usec);
/* Make ss_loop_run return after the current iteration. Safe from any thread
 * and from signal handlers (it writes to an eventfd). */
void ss_loop_stop(ss_loop *loop);
bool ss_loop_stopped(const ss_loop *loop);

/* Monotonic milliseconds, cached once per iteration. */
uint64_t ss_loop_now(const ss_loop *loop);
void ss_loop_update_time(ss_loop *loop);

/* Watch fd for SS_READ and/or SS_WRITE. One registration per fd. */
int ss_loop_io_add(ss_loop *loop, int fd, unsigned events, ss_io_cb cb, void *arg);
int ss_loop_io_mod(ss_loop *loop, int fd, unsigned events);
int ss_loop_io_del(ss_loop *loop, int fd);

void ss_timer_init(ss_timer *t, ss_timer_cb cb, void *arg);
/* Arm (or re-arm) to fire once after delay_ms. Returns 0 or -ENOMEM. */
int ss_timer_start(ss_loop *loop, ss_timer *t, uint64_t delay_ms);
/* Disarm; harmless if not armed. */
void ss_timer_stop(ss_loop *loop, ss_timer *t);
bool ss_timer_active(const ss_timer *t);

void ss_defer_init(ss_defer *d, ss_defer_cb cb, void *arg);
/* Queue d to run once at the end of this iteration; no-op if queued. */
void ss_loop_defer(ss_loop *loop, ss_defer *d);
/* Unqueue d (O(1)): it does not run unless queued again. Harmless if not
 * queued; d may be freed after this call. */
void ss_loop_defer_cancel(ss_loop *loop, ss_defer *d);

/* Deliver signo through the loop (signalfd). Blocks signo in the calling
 * thread; create threads after this call so they inherit the mask. */
int ss_loop_signal_add(ss_loop *loop, int signo, ss_signal_cb cb, void *arg);

/* Name of the poller backend in use ("epoll"). */
const char *ss_loop_backend(const ss_loop *loop);

SS_API_END

#endif
