/* Internals shared by the files of src/server/. */
#ifndef SS_SERVER_INT_H
#define SS_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "server/outq.h"
#include "sockstack/server.h"

/* Allow/deny decision: 0 allowed, SS_EDENIED refused. Unix peers (and any
 * non-IP address) are always allowed; deny wins over allow; an empty allow
 * list allows everyone not denied. */
int ss__acl_check(const ss_cidr *allow, size_t n_allow, const ss_cidr *deny,
                  size_t n_deny, const ss_addr *peer);

struct worker;

/* Open connections per IP address, for opts.max_per_addr (acl.c): a
 * chained hash table, one node per address with connections open. */
struct peer_count {
    struct peer_count *next;
    uint8_t key[17];          /* family, then 16 address bytes */
    size_t n;
};
#define SS__PEER_BUCKETS 1024
/* Count one more connection from peer: 0, or SS_ELIMIT when it already
 * has opts.max_per_addr open (then nothing is counted). *open gets the
 * count before this one. */
int ss__peer_take(ss_server *srv, const ss_addr *peer, size_t *open);
/* The connection counted by ss__peer_take closed. */
void ss__peer_put(ss_server *srv, const ss_addr *peer);
void ss__peer_free(ss_server *srv);

struct ss_conn {
    struct worker *w;
    ss_conn *prev, *next;     /* worker's active list, or free list */
    ss_sock *sock;
    ss_addr peer, local;
    char peer_str[SS_ADDR_STRLEN];
    uint64_t id;
    struct ss__outq out;
    ss_timer idle_timer, svc_timer;
    ss_defer finish_defer;
    uint64_t last_active;     /* loop ms of the last byte in or out */
    unsigned watching;        /* events currently asked of the socket */
    bool in_cb;               /* a framework dispatch of c is on the stack */
    int pending_err;          /* why finish_defer will close */
    const char *pending_what; /* what failed with pending_err, or NULL */
    bool paused_svc, paused_bp, eof, closing, shut_wr, shut_wr_done;
    bool want_drain, dying, finished, blocking, watched_once, idle_expired;
    bool lingering;           /* closed by us, FIN sent, draining the peer */
    void *ctx;
};

/* One event loop with its sockets and connections: a worker thread of the
 * event model, or the private loop of one connection (thread/fork). */
struct worker {
    ss_server *srv;
    int idx;
    ss_loop *loop;
    bool loop_borrowed;       /* opts.loop: the caller's, not freed here */
    ss_sock *lsock;           /* listener or datagram socket, or NULL */
    pthread_t tid;
    bool has_thread;
    bool single;              /* private loop of one connection */
    bool stopping;
    bool grace_over;
    ss_timer grace_timer;
    ss_timer accept_timer;    /* resume accepting after EMFILE */
    ss_timer tick_timer;      /* worker 0: the service's on_tick */
    ss_conn *active;          /* list head */
    ss_conn *free_conns;
    size_t nfree;
    size_t max_conns;
    struct ss__bufpool pool;
    char *rbuf;
    size_t rbuf_cap;
    int run_err;
    bool dgram_single;        /* datagrams come one per wake-up */
    unsigned dgram_wakeups;
    /* counters (written by this worker's thread only) */
    _Atomic uint64_t accepted, refused_limit, refused_acl, idle_closed,
        errors, active_n, datagrams, bytes_in, bytes_out;
};

/* What one thread or child served, for the server's counters: a child
 * writes it to the server's stats pipe (one write, under PIPE_BUF, so
 * records from many children never interleave). */
struct job_stats {
    uint64_t bytes_in, bytes_out, errors, idle_closed;
};

/* A thread or a child process serving one connection. */
struct job {
    struct job *next;
    ss_server *srv;
    pthread_t tid;
    pid_t pid;
    ss_sock *sock;            /* thread model: the connection's socket */
    ss_addr peer;
    ss_loop *loop;            /* its private loop while running (event style) */
    bool done;
    bool blocking;
};

struct ss_server {
    const ss_service *svc;
    ss_server_opts o;
    int model;
    bool blocking;            /* service uses handle() */
    int nworkers;
    struct worker *workers;   /* [nworkers] */
    ss_addr addr;             /* first bound address */
    char proto[8];
    bool unix_path_bound;
    _Atomic int stop_count;
    _Atomic bool stopping;
    _Atomic bool grace_over;
    _Atomic uint64_t next_id;

    /* thread/fork models */
    pthread_mutex_t mu;
    struct job *jobs;
    size_t njobs;
    _Atomic uint64_t job_errors, job_idle, job_bytes_in, job_bytes_out;
    int stats_rd, stats_wr;   /* fork model: children's job_stats, or -1 */

    /* per-address cap (acl.c) */
    pthread_mutex_t peer_mu;
    struct peer_count *peer_tab[SS__PEER_BUCKETS];
};

/* conn.c */
/* Adopt accepted socket s on w's loop and call on_open. */
int ss__conn_open(struct worker *w, ss_sock *s, const ss_addr *peer);
/* Serve s with the blocking handler on this thread; returns its result. */
int ss__conn_run_blocking(struct worker *w, ss_sock *s, const ss_addr *peer);
void ss__conn_abort_all(struct worker *w, int err);
void ss__conn_free_list(struct worker *w);

/* A statistics counter, shared by the workers: no ordering needed. */
static inline void ss__stat_add(_Atomic uint64_t *v, uint64_t n)
{
    atomic_fetch_add_explicit(v, n, memory_order_relaxed);
}

#endif
