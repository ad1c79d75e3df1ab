/* server: the socketserver idea, done for production.
 *
 * A service is a set of handler callbacks (event style) or one blocking
 * handler function (thread/process style). The framework owns the
 * connection loop -- listening, accepting, access lists, limits, timeouts,
 * output queues, backpressure, shutdown -- and the handler owns the
 * conversation. The same service runs under every concurrency model:
 *
 *   SS_MODEL_EVENT   one event loop (default); with workers > 1, N event
 *                    loops on N threads, each with its own SO_REUSEPORT
 *                    listener, so the kernel spreads connections.
 *   SS_MODEL_THREAD  one thread per connection. Event-style services run
 *                    the connection on a private loop in that thread.
 *   SS_MODEL_FORK    one process per connection (kernel backend only: the
 *                    child needs the kernel's descriptors). Event-style
 *                    services run on a private loop in the child.
 *
 * Blocking handlers (service.handle) need a thread or a process: under
 * SS_MODEL_EVENT the framework runs each connection of such a service on its
 * own thread (the event loop only accepts), i.e. it behaves as
 * SS_MODEL_THREAD, and says so through the log callback; with workers > 1
 * ss_server_new refuses it (-EINVAL, reason logged).
 *
 * Datagram services (service.on_datagram) run under SS_MODEL_EVENT only
 * (workers > 1 gives each worker its own SO_REUSEPORT socket); there is no
 * connection to hand to a thread or a process. Other models are refused
 * with -EINVAL.
 *
 * Threading rule: every callback of one connection runs on one thread, and
 * ss_conn_* calls are made from that thread (inside its callbacks).
 * ss_server_stop() is the only call that is safe from any thread or from a
 * signal handler.
 *
 * Handler return values: 0 to go on; a negative code (errno style or SS_E*)
 * closes that connection only (error isolation), with the code passed to
 * on_close and counted in ss_server_stats.errors. The library never prints:
 * everything worth saying goes to opts.log.
 *
 * Memory is bounded: each connection has an output queue limit
 * (opts.outbuf_max). When queued output exceeds it, the framework stops
 * reading from that connection until the queue drains below half the limit
 * (then on_drain runs and reading resumes). ss_conn_write refuses
 * (-ENOBUFS) a write that would take the queue past twice the limit, so a
 * peer that never reads cannot grow the server without bound.
 *
 * Minimal event-style service (echo):
 *
 *     static int echo_data(ss_conn *c, const void *p, size_t n)
 *     {
 *         return ss_conn_write(c, p, n);
 *     }
 *     static const ss_service echo = {.name = "echo", .on_data = echo_data};
 *
 *     ss_server_opts o;
 *     ss_server_opts_init(&o);
 *     o.bind_host = "127.0.0.1"; o.port = "0";
 *     ss_server *srv;
 *     int err = ss_server_new(&echo, &o, &srv);   // resolves, binds, listens
 *     if (!err) err = ss_server_run(srv);         // until SIGINT/SIGTERM
 *     ss_server_free(srv);
 */
#ifndef SOCKSTACK_SERVER_H
#define SOCKSTACK_SERVER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sockstack/reactor.h"
#include "sockstack/sock.h"

#include "sockstack/api.h"
SS_API_BEGIN

typedef struct ss_server ss_server;
typedef struct ss_conn ss_conn;

/* ---- services ----------------------------------------------------------- */

/* A service: fill in the callbacks it needs; NULL ones get the default
 * written next to each. Callbacks returning int: 0 = go on, negative =
 * close this connection with that code. */
typedef struct ss_service {
    const char *name;          /* "echo": used in log lines */
    size_t conn_ctx_size;      /* bytes of per-connection context, zeroed by
                                * the framework; see ss_conn_ctx() */

    /* ---- event style (any model) ---- */
    /* The connection passed the access list and the limit. Default: none. */
    int (*on_open)(ss_conn *c);
    /* len > 0 bytes arrived (at most SS_SERVER_READ_CHUNK per call; the
     * buffer is only valid during the call). Default: discard. */
    int (*on_data)(ss_conn *c, const void *data, size_t len);
    /* The peer closed its sending side. Default: ss_conn_close(c), i.e.
     * send what is queued, then close. A service that keeps talking after
     * EOF (e.g. sends a result) returns 0 and closes later. */
    int (*on_eof)(ss_conn *c);
    /* A write had to be queued (the socket did not take it all) and the
     * queue has since drained to half of outbuf_max or less. For producers
     * (file send, command output): write until ss_conn_out_full(), then
     * wait for this. Default: none. */
    int (*on_drain)(ss_conn *c);
    /* The per-connection timer armed by ss_conn_timer_start() fired.
     * Default: close with -ETIMEDOUT. */
    int (*on_timer)(ss_conn *c);
    /* Last call for c: err is 0 for an orderly close, else why (-ETIMEDOUT
     * for idle/timer, -ECONNRESET, a handler's code, ...). Free what the
     * context owns here. ss_conn_write is no longer possible. */
    void (*on_close)(ss_conn *c, int err);
    /* The peer closed its side (FIN or reset) while the service has reading
     * paused (ss_conn_pause_read): bytes it has not read may still wait in
     * the socket. Without this, a paused connection learns of the hang-up
     * only when it reads again. It must end the connection or resume
     * reading (it is asked again while neither happens). Kernel sockets
     * (EPOLLRDHUP) and the user-space stack (the peer's FIN, SS_EV_RDHUP)
     * alike. Default: none. */
    int (*on_hangup)(ss_conn *c);

    /* ---- blocking style (thread and fork models) ---- */
    /* Own the whole conversation with ss_conn_read / ss_conn_write_all;
     * return 0 or a negative code; the framework closes the connection
     * afterwards (on_close, if set, still runs). If set, it is used instead
     * of the event callbacks above (on_open/on_close still apply). */
    int (*handle)(ss_conn *c);

    /* ---- datagram style ---- */
    /* One datagram of len bytes (truncated: it was longer than
     * opts.dgram_max) from `from`. Reply with ss_server_sendto(). A negative
     * return is counted as an error; the service keeps running. */
    int (*on_datagram)(ss_server *srv, const void *data, size_t len,
                       bool truncated, const ss_addr *from);

    /* ---- service-wide (any model) ---- */
    /* Housekeeping that no connection drives (e.g. files removes stale
     * partial files): called on the server's first loop (the parent's,
     * under the fork model) as soon as it serves (ss_server_run or
     * ss_server_attach), then again after the ms it returns; 0: not again.
     * Not called once a stop is asked. Default: none. */
    uint64_t (*on_tick)(ss_server *srv);
} ss_service;

/* ---- options ------------------------------------------------------------ */

enum ss_server_model {
    SS_MODEL_EVENT = 0,  /* default; see opts.workers */
    SS_MODEL_THREAD = 1,
    SS_MODEL_FORK = 2,
};

/* Log levels of opts.log (the CLI maps them to --quiet / --verbose). */
enum ss_log_level {
    SS_LOG_ERROR = 0,
    SS_LOG_WARN = 1,
    SS_LOG_INFO = 2,   /* start, stop, shutdown progress */
    SS_LOG_DEBUG = 3,  /* per connection: open, close and why, refusals */
};

/* Called once per bound socket when the server is ready to serve: addr is
 * the real bound address (the real port with port "0"); proto "tcp", "udp"
 * or "unix". With workers > 1 it is called once (all workers share the
 * address). */
typedef void (*ss_server_ready_cb)(const ss_addr *addr, const char *proto,
                                   void *arg);
/* One log message (no trailing newline). May be called from worker
 * threads at once: the callee must be thread-safe (one write per line). */
typedef void (*ss_server_log_cb)(int level, const char *msg, void *arg);

typedef struct ss_server_opts {
    const ss_backend *backend;  /* default: ss_backend_kernel() */
    ss_loop *loop;              /* NULL (default): the server makes its own
                                 * loop. Else it runs on this one (the
                                 * caller's, not freed), e.g. the loop that
                                 * drives a user-space stack backend; event
                                 * model with one worker only (-EINVAL).
                                 * With handle_signals its SIGINT/SIGTERM
                                 * watchers stay on the loop: do not run
                                 * it after ss_server_free. */
    const char *bind_host;      /* NULL: wildcard; "unix:/path" for Unix */
    const char *port;           /* "0": any free port; ignored for Unix */
    int family;                 /* AF_UNSPEC (default), AF_INET, AF_INET6 */
    int type;                   /* SS_STREAM (default) or SS_DGRAM */
    ss_sockopts sockopts;       /* for the listening socket (accepted
                                 * sockets inherit what the kernel passes on);
                                 * init sets reuseaddr = 1 */
    ss_sockopts conn_sockopts;  /* applied to each accepted socket
                                 * (init: all "leave as is") */
    struct ss_tls_ctx *tls;     /* streams: NULL (plain), or a server
                                 * context (sockstack/tls.h): every accepted
                                 * connection speaks TLS, after the access
                                 * list and the limit; the service sees
                                 * plaintext. The caller keeps it alive. */

    int model;                  /* enum ss_server_model */
    int workers;                /* event loops (threads) for SS_MODEL_EVENT;
                                 * 1 = default; > 1 turns on SO_REUSEPORT */
    int backlog;                /* listen() backlog, default 511 */
    size_t max_conns;           /* beyond it, accept and close at once,
                                 * counted in refused_limit; 0 = no limit
                                 * (init: SS_SERVER_MAX_CONNS). With workers
                                 * the limit is per worker divided evenly. */
    size_t max_per_addr;        /* open connections from one IP address (port
                                 * ignored, IPv4-mapped = IPv4) at most; the
                                 * next is closed at once, counted in
                                 * refused_limit; 0 = no cap (the init
                                 * value; exec and files in the CLI use
                                 * SS_SERVER_MAX_PER_ADDR). Unix peers are
                                 * not capped. */
    unsigned busy_poll_us;      /* each event loop the server owns polls
                                 * without sleeping this long before it
                                 * sleeps (ss_loop_set_busy_poll); 0 = off */
    unsigned idle_timeout_ms;   /* close a connection silent (no bytes in or
                                 * out) this long; 0 = never */
    unsigned grace_ms;          /* after stop: how long in-flight connections
                                 * may take to finish (init:
                                 * SS_SERVER_GRACE_SECS * 1000) */
    size_t outbuf_max;          /* per-connection output queue limit
                                 * (init: SS_SERVER_OUTBUF_MAX) */
    size_t dgram_max;           /* largest datagram read (init: 65535) */

    const ss_cidr *allow;       /* if n_allow > 0, only peers matching one */
    size_t n_allow;
    const ss_cidr *deny;        /* peers matching one are refused (deny wins) */
    size_t n_deny;
    /* Allow/deny are checked right after accept (streams; Unix peers are
     * always allowed) or on receipt (datagrams, which are dropped), before
     * the handler sees a byte. */

    bool handle_signals;        /* SIGINT/SIGTERM start a graceful stop
                                 * (init: true). The signals are blocked in
                                 * the calling thread by ss_server_new. */
    void *svc_ctx;              /* service-wide context: ss_server_ctx() */
    ss_server_ready_cb on_ready;
    ss_server_log_cb log;       /* NULL: silent */
    void *cb_arg;               /* passed to on_ready and log */
} ss_server_opts;

/* Defaults: event model, 1 worker, backlog 511, reuseaddr on, the limits
 * from config.h, signals handled, stream type, wildcard address, port "0". */
void ss_server_opts_init(ss_server_opts *o);

/* ---- the server --------------------------------------------------------- */

/* Check svc against o, resolve and bind (listen for streams) every socket
 * now, so that errors such as -EADDRINUSE come back here. o and the arrays
 * it points to must outlive the server. Returns 0 or a negative code. */
int ss_server_new(const ss_service *svc, const ss_server_opts *o,
                  ss_server **out);
/* Serve until stopped (signal or ss_server_stop), then shut down
 * gracefully: stop accepting, let connections finish within grace_ms,
 * close the rest, join threads, reap children. Calls on_ready first.
 * Returns 0 after a graceful stop, or a negative code if a loop failed. */
int ss_server_run(ss_server *srv);
/* Ask for a graceful stop. Safe from any thread and signal handlers. */
void ss_server_stop(ss_server *srv);
/* Free a server that is not running (closes its sockets). NULL is fine. */
void ss_server_free(ss_server *srv);

/* A second listener on a loop another server runs: serve srv (created
 * with opts.loop, event model, one worker; a stream or datagrams) without
 * running the loop; the other server's ss_server_run (or the loop's owner)
 * drives it. Calls on_ready. Returns 0 or -EINVAL. */
int ss_server_attach(ss_server *srv);
/* Stop an attached server: close its listener and end its connections
 * (their on_close runs), turning the loop until they are gone. Then
 * ss_server_free. */
void ss_server_detach(ss_server *srv);

/* The first bound address (e.g. to learn the port after port "0"). */
int ss_server_addr(const ss_server *srv, ss_addr *out);
void *ss_server_ctx(const ss_server *srv);
const ss_service *ss_server_service(const ss_server *srv);

/* Counters, summed over workers (a consistent-enough snapshot), the same
 * under every model: a connection's thread (thread model) or child process
 * (fork model, through a pipe to the parent) adds its byte, error and
 * idle-close counts when it ends. */
typedef struct ss_server_stats {
    uint64_t accepted;       /* connections handed to the service */
    uint64_t refused_limit;  /* closed at once: max_conns reached */
    uint64_t refused_acl;    /* closed at once (or datagrams dropped):
                              * allow/deny */
    uint64_t idle_closed;    /* closed by the idle timeout */
    uint64_t errors;         /* connections closed by an error (handler or
                              * I/O), datagram handler errors */
    uint64_t active;         /* connections open now */
    uint64_t datagrams;      /* datagrams handed to on_datagram */
    uint64_t bytes_in, bytes_out;
} ss_server_stats;

void ss_server_get_stats(const ss_server *srv, ss_server_stats *out);

/* Send one datagram to `to` from the socket the current datagram came in
 * on (inside on_datagram), else from the first socket. Returns bytes sent
 * or a negative code (-EAGAIN when the socket buffer is full: the reply is
 * dropped, as UDP would). */
ssize_t ss_server_sendto(ss_server *srv, const void *data, size_t len,
                         const ss_addr *to);

/* Log through opts.log with the service name in front; for services. */
void ss_server_log(ss_server *srv, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- connections -------------------------------------------------------- */

/* Queue len bytes for sending (copied; sent at once when the queue is
 * empty and the socket takes them). 0, or -ENOBUFS past 2x outbuf_max, or
 * -EPIPE after ss_conn_close / a write error. Write errors close the
 * connection later (never from inside this call). */
int ss_conn_write(ss_conn *c, const void *data, size_t len);
int ss_conn_writev(ss_conn *c, const struct iovec *iov, int iovcnt);
/* Bytes queued and not yet sent. */
size_t ss_conn_out_queued(const ss_conn *c);
/* True while the queue is above outbuf_max (reading is paused by the
 * framework until it drains; producers wait for on_drain). */
bool ss_conn_out_full(const ss_conn *c);

/* Orderly close: stop reading, send what is queued (within grace/idle
 * limits), then close; on_close(c, 0) follows. Safe to call twice. */
void ss_conn_close(ss_conn *c);
/* Close now, dropping queued output; on_close(c, err) follows (err < 0
 * counts as an error). */
void ss_conn_abort(ss_conn *c, int err);
/* Half-close: send what is queued, then shutdown(SHUT_WR); keep reading. */
void ss_conn_shutdown_write(ss_conn *c);

/* Stop / resume delivering on_data (flow control by the service, e.g.
 * while a disk write or a child process is pending). Independent of the
 * framework's own backpressure pause. */
void ss_conn_pause_read(ss_conn *c);
void ss_conn_resume_read(ss_conn *c);

/* Arm (re-arm) the per-connection timer: on_timer after ms. E.g. a 10 s
 * authentication deadline armed in on_open, stopped once authenticated. */
int ss_conn_timer_start(ss_conn *c, uint64_t ms);
void ss_conn_timer_stop(ss_conn *c);

/* Zeroed block of svc->conn_ctx_size bytes, NULL if size 0. */
void *ss_conn_ctx(ss_conn *c);
ss_server *ss_conn_server(const ss_conn *c);
/* opts.svc_ctx. */
void *ss_conn_server_ctx(const ss_conn *c);
const ss_addr *ss_conn_peer(const ss_conn *c);
const ss_addr *ss_conn_local(const ss_conn *c);
/* "127.0.0.1:5555", "[::1]:5555", "unix:" (for log lines). */
const char *ss_conn_peer_str(const ss_conn *c);
/* Serial number of the connection within its server (1, 2, ...). */
uint64_t ss_conn_id(const ss_conn *c);
/* The socket, e.g. for ss_sock_tcp_info or options. Do not close it. */
ss_sock *ss_conn_sock(ss_conn *c);
/* The loop running this connection (event style), for extra timers or
 * descriptors (e.g. a child's pipe). NULL inside a blocking handler. */
ss_loop *ss_conn_loop(ss_conn *c);
/* True once the server is shutting down: long conversations should wind
 * up (finish the current exchange, then ss_conn_close). */
bool ss_conn_stopping(const ss_conn *c);

/* ---- blocking I/O (inside service.handle only) -------------------------- */

/* Read up to cap bytes: count, 0 at end of stream, -ETIMEDOUT after the
 * idle timeout, -ECANCELED when the grace period after a stop ran out, or
 * another negative code. */
ssize_t ss_conn_read(ss_conn *c, void *buf, size_t cap);
/* Write all len bytes (blocking): 0 or a negative code. */
int ss_conn_write_all(ss_conn *c, const void *data, size_t len);

SS_API_END

#endif
