/* chat_server: the chat room as an event-style service of the server
 * framework, with fair flow control.
 *
 * RX: readable -> on_data -> ss_chat_feed (io_admit before each line)
 *       -> the room -> io_send_line_all: the line's bytes appended once to
 *          the room log (cs->log); nothing per recipient while every
 *          reader has room for it (cs->room_lim) and no member is IRC
 *     a line not admitted: the rest of the read is held, reading paused.
 * TX: a native member (a reader) has a cursor into the log; its private
 *       lines (io_send_line) wait in x->q, each marked with the log's end
 *       when it came -> end of the loop iteration (flush_all) or on_drain
 *       -> push(): one writev of the log from the cursor, straight from
 *       the ring, with the private lines where their marks put them, while
 *       the framework's own queue holds less than SS_CHAT_STAGE. IRC
 *       members and connections before /nick: x->q only (push_lines).
 *
 * Flow control, in the words "a talker is slowed, a reader is not
 * cut off":
 *  - A client whose queue (its unread log bytes + its lines + staged
 *    bytes) passes outq_high is "behind". While any client is behind,
 *    no talker starts a new line:
 *    the server stops reading from it and TCP pushes back on the talker.
 *    When the last one is below outq_high / 2, held talkers continue.
 *  - A client behind that makes no progress (nothing moved to its socket)
 *    for stall_ms is told "ERR stalled" and cut off.
 *  - outq_max is the hard memory cap per client; a reading client never
 *    gets near it, because talkers stop at the next line boundary.
 *  - Each client has a token bucket of rate_lines per second (burst
 *    rate_burst); past it, its reading pauses until the bucket refills.
 * Also here: the per-address connection cap, the nick timeout, the
 * worker thread that runs PBKDF2 for /login and /register (io_kdf), and
 * the byte relay of point-to-point connections that found no direct path:
 *   RX on one end -> on_data -> ss_conn_write(other end); a full queue on
 *   the other end pauses reading here until its on_drain.
 * IRC connections (ss_chat_irc_service, issue 15) are the same connections
 * with an IRC front (chat_irc.c) between the socket and the room:
 *   RX: on_data -> ss__irc_feed (irc_admit before each IRC line: the same
 *         flow control and rate) -> native lines -> ss_chat_feed
 *   TX: the room -> io_send_line -> ss__irc_out -> irc_emit -> queue_line
 * and a DCC SEND from an IRC user to a native one is fetched here and fed
 * to the room as that user's upload (the room's own file offer):
 *   irc_dcc_get -> "/offer NICK SIZE - NAME" -> connect to the sender ->
 *   readable -> dcc_read -> "/chunk ID OFF B64" lines, 4-byte DCC acks ->
 *   "/done ID" (the room computes the SHA-256) -> OFFER to the native user
 * and the other way, a native file offer to an IRC user is sent by DCC
 * from here (the room's download, written to the DCC connection):
 *   OFFER -> irc_dcc_offer (listen) -> CTCP DCC SEND from the sender ->
 *   the client connects -> dcc_accept -> "/accept ID" -> CHUNK lines ->
 *   irc_dcc_data -> dcc_flush (paced: io_space counts what waits here)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "apps/chat_backend.h"
#include "apps/chat_irc.h"
#include "sockstack/chat.h"
#include "sockstack/config.h"
#include "sockstack/server.h"

struct chat_ctx;

/* Connections per peer address: a small chained table. */
struct addr_ent {
    struct addr_ent *next;
    int n;
    char addr[64];
};
enum { ADDR_TAB = 1024 };
/* Lines push remembers from the last client it sent to (cs->run): a busy
 * room gives a client a few dozen per loop iteration. */
enum { SS_CHAT_RUN_MAX = 1024 };
/* A room line longer than this goes to each member's queue, not the log. */
enum { SS_CHAT_LOG_LINE_MAX = 64 * 1024 };
/* iovecs of one push from the log: its spans and the private lines. */
enum { SS_CHAT_LOG_IOV = 64 };

/* One entry of a client's queue: a line (l), or, for a reader, l == NULL
 * and `skip` log bytes from `mark` on that it does not get (its own room
 * line). mark: the log_end when it was queued; a reader gets the entry
 * once its cursor is there. */
struct qent {
    ss_chat_line *l;
    uint64_t mark;
    size_t skip;
};

/* The PBKDF2 worker: jobs in, results out, an eventfd wakes the loop. */
struct kdf_worker {
    pthread_t th;
    bool started, quit;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ss_chat_kdf *todo[SS_CHAT_KDF_QUEUE];
    int todo_head, todo_n;
    ss_chat_kdf *done[SS_CHAT_KDF_QUEUE + 1];
    int done_n;
    int running; /* 0 or 1: taken from todo, not yet in done */
    int efd;
    ss_loop *loop;
};

struct ss_chat_server {
    ss_chat_room *room;
    ss_chat_server_opts so;
    ss_chat_server_stats st;
    ss_defer flush;           /* end-of-iteration push of dirty conns */
    ss_defer wake;            /* resume talkers held for readers */
    struct chat_ctx *dirty;   /* conns with lines not yet pushed */
    struct chat_ctx *waiters; /* talkers held until nobody is behind */
    int n_behind;
    struct addr_ent *addrs[ADDR_TAB];
    struct kdf_worker kw;
    ss__irc_hub *hub;         /* shared by the IRC connections */
    ss_server *srv;           /* for the store's commit warning */
    char *obuf;               /* SS_CHAT_PUSH_BUF: one push's lines, copied */
    /* The lines whose bytes obuf holds, in order from its start, one
     * reference each (SS_CHAT_RUN_MAX at most): the next push whose queue
     * starts with the same lines sends them without copying them again.
     * Given back at the end of each flush_all. */
    ss_chat_line **run;
    size_t *run_end;          /* obuf's bytes through run[i], for each i */
    size_t run_n;
    size_t fast_max;          /* min(outq_max, outq_high): queue_line's bound */
    /* The room log: every room line appended once, as bytes, to one ring
     * (log_cap, a power of two, at least outq_max + SS_CHAT_LOG_LINE_MAX:
     * no reader is ever further behind than outq_max, past it it is cut
     * off); log_end is the byte count appended so far. Each native member
     * (a reader) has a cursor into it; its private lines wait in its own
     * queue, each marked with the log_end at which it was queued. */
    char *log;
    size_t log_cap;
    uint64_t log_end;
    uint64_t log_flushed;     /* log_end at the last flush_all */
    struct chat_ctx **rd;     /* the readers (unordered; x->rd_i) */
    size_t n_rd, rd_cap;
    /* Appends with log_end + len < room_lim need no check per reader:
     * min over the readers of x->log_lim (may be lower, never higher). */
    uint64_t room_lim;
    size_t n_slow_mem;        /* members not readers (IRC): per recipient */
    /* The room line appended last, held: a second send_line_all call for
     * it (the rest of the members, after one failed) must not append it
     * again. in_log: it is in the log (else it went per recipient). */
    ss_chat_line *log_line;
    bool log_line_in_log;
};

struct chat_ctx {
    ss_chat_conn *cc;
    ss_conn *conn;
    ss_chat_server *cs;
    /* output: a ring of shared lines (q_cap: 0 or a power of two); for a
     * reader of the room log, its private lines, ordered against the log
     * by their marks, and the room lines it sent itself (skip entries) */
    struct qent *q;
    size_t q_head, q_n, q_cap;
    size_t q_off;             /* bytes of q[q_head] already pushed */
    size_t q_bytes;           /* bytes referenced and not yet pushed */
    size_t fast_room;         /* bytes queue_line may append unchecked
                               * (not a reader; a reader's is log_lim) */
    /* the room log (a native member only) */
    bool reader;
    bool member;              /* in the room's member array */
    size_t rd_i;              /* index in cs->rd */
    uint64_t log_pos;         /* the cursor: log bytes before it are sent */
    uint64_t log_lim;         /* the log may grow to here (see fast_room_set) */
    size_t skip_bytes;        /* log bytes ahead of log_pos it skips (own lines) */
    bool slow_member;         /* a member not a reader (IRC): per recipient */
    bool closing;             /* on_close: what it has is dropped */
    bool behind, cut;
    uint64_t progress_ms;     /* loop time of the last push */
    uint64_t opened_ms;
    struct chat_ctx *dprev, *dnext;
    bool dirty;
    /* input held back by flow control */
    char *held;
    size_t held_len;
    bool waiting;             /* on cs->waiters */
    struct chat_ctx *wprev, *wnext;
    double tokens;
    uint64_t tok_ms;
    ss_timer rate_timer;
    bool rate_armed;
    bool counted_addr;
    char addr[64];
    struct chat_ctx *relay;   /* the other end of a point-to-point relay */
    bool relay_wait;          /* relayed, not yet paired with its peer */
    bool relay_eof;           /* this end has closed its sending side */
    ss__irc *irc;             /* an IRC connection's front, else NULL */
    struct dcc_get *dcc;      /* a DCC SEND being fetched for a native user */
    struct dcc_put *put;      /* a native offer being sent to this IRC user */
};

/* A native file offer sent to an IRC user over DCC (we listen). */
struct dcc_put {
    ss_sock *ls, *s;          /* listener until the client connects, then it */
    int64_t id;
    char *buf;                /* bytes waiting for the socket */
    size_t off, len;
    bool end;                 /* FILEEND came: shut down once buf is out */
};
enum { DCC_PUT_BUF = 256 * 1024 };

/* One DCC SEND fetched from an IRC user (active DCC: we connect). */
struct dcc_get {
    ss_sock *s;
    int64_t id;               /* the room's upload */
    uint64_t size, got;
};

static ss_chat_server *server_of(ss_conn *c) { return ss_conn_server_ctx(c); }

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ss_chat_server_opts_init(ss_chat_server_opts *so)
{
    *so = (ss_chat_server_opts){
        .outq_max = SS_CHAT_OUTQ_MAX,
        .outq_high = SS_CHAT_OUTQ_HIGH,
        .stall_ms = SS_CHAT_STALL_MS,
        .nick_timeout_ms = SS_CHAT_NICK_TIMEOUT_MS,
        .per_addr_max = SS_CHAT_PER_ADDR_MAX,
        .rate_lines = SS_CHAT_RATE_LINES,
        .rate_burst = SS_CHAT_RATE_BURST,
    };
}

/* ---- lists ---------------------------------------------------------------- */

static void undirty(ss_chat_server *cs, struct chat_ctx *x)
{
    if (!x->dirty)
        return;
    if (x->dprev)
        x->dprev->dnext = x->dnext;
    else
        cs->dirty = x->dnext;
    if (x->dnext)
        x->dnext->dprev = x->dprev;
    x->dprev = x->dnext = NULL;
    x->dirty = false;
}

static void mark_dirty(ss_chat_server *cs, struct chat_ctx *x)
{
    if (x->dirty)
        return;
    x->dirty = true;
    x->dprev = NULL;
    x->dnext = cs->dirty;
    if (cs->dirty)
        cs->dirty->dprev = x;
    cs->dirty = x;
    ss_loop_defer(ss_conn_loop(x->conn), &cs->flush);
}

static void unwait(ss_chat_server *cs, struct chat_ctx *x)
{
    if (!x->waiting)
        return;
    if (x->wprev)
        x->wprev->wnext = x->wnext;
    else
        cs->waiters = x->wnext;
    if (x->wnext)
        x->wnext->wprev = x->wprev;
    x->wprev = x->wnext = NULL;
    x->waiting = false;
}

static void add_waiter(ss_chat_server *cs, struct chat_ctx *x)
{
    if (x->waiting)
        return;
    x->waiting = true;
    x->wprev = NULL;
    x->wnext = cs->waiters;
    if (cs->waiters)
        cs->waiters->wprev = x;
    cs->waiters = x;
}

/* ---- the output queue ------------------------------------------------------ */

/* Log bytes x has still to get (its own room lines, which it skips, not
 * counted). */
static size_t log_backlog(const struct chat_ctx *x)
{
    return x->reader ? (size_t)(x->cs->log_end - x->log_pos) - x->skip_bytes : 0;
}

static size_t queued(const struct chat_ctx *x)
{
    return x->q_bytes + log_backlog(x) + ss_conn_out_queued(x->conn);
}

static void set_behind(struct chat_ctx *x, bool behind)
{
    ss_chat_server *cs = x->cs;
    if (x->behind == behind)
        return;
    x->behind = behind;
    if (behind) {
        cs->n_behind++;
        x->progress_ms = ss_loop_now(ss_conn_loop(x->conn));
        ss_conn_timer_start(x->conn, cs->so.stall_ms);
    } else {
        if (--cs->n_behind == 0 && cs->waiters)
            ss_loop_defer(ss_conn_loop(x->conn), &cs->wake);
        if (!x->cut && x->cc && !ss_chat_nick(x->cc))
            ss_conn_timer_start(x->conn, 1); /* on_timer re-arms the nick deadline */
    }
}

static void drop_queue(struct chat_ctx *x)
{
    for (size_t i = 0; i < x->q_n; i++) {
        ss_chat_line *l = x->q[(x->q_head + i) & (x->q_cap - 1)].l;
        if (l)
            ss_chat_line_unref(l);
    }
    free(x->q);
    x->q = NULL;
    x->q_head = x->q_n = x->q_cap = x->q_off = x->q_bytes = x->fast_room = 0;
    if (x->reader) { /* nor anything from the log before now */
        x->log_pos = x->cs->log_end;
        x->skip_bytes = 0;
    }
}

/* Room for one more entry in x's ring. */
static int q_reserve(struct chat_ctx *x)
{
    if (x->q_n < x->q_cap)
        return 0;
    size_t cap = x->q_cap ? x->q_cap * 2 : 16;
    struct qent *q = malloc(cap * sizeof *q);
    if (!q)
        return -ENOMEM;
    for (size_t i = 0; i < x->q_n; i++)
        q[i] = x->q[(x->q_head + i) & (x->q_cap - 1)];
    free(x->q);
    x->q = q;
    x->q_head = 0;
    x->q_cap = cap;
    return 0;
}

static void q_put(struct chat_ctx *x, ss_chat_line *l, size_t skip)
{
    struct qent *e = &x->q[(x->q_head + x->q_n) & (x->q_cap - 1)];
    e->l = l;
    e->mark = x->cs->log_end;
    e->skip = skip;
    x->q_n++;
}

/* Cut x off with a last line (it may never read it). */
static void cut(struct chat_ctx *x, const char *note, bool from_room)
{
    if (x->cut)
        return;
    x->cut = true;
    drop_queue(x);
    undirty(x->cs, x);
    set_behind(x, false);
    char irc_note[256];
    if (x->irc) {
        ss_conn_write(x->conn, irc_note, ss__irc_fatal(note, irc_note, sizeof irc_note));
    } else {
        ss_conn_write(x->conn, note, strlen(note));
    }
    ss_server_log(ss_conn_server(x->conn), SS_LOG_DEBUG, "%s: %.*s",
                  ss_conn_peer_str(x->conn), (int)strlen(note) - 1, note);
    ss_conn_close(x->conn);
    ss_conn_timer_start(x->conn, SS_CHAT_OVERFLOW_LINGER_MS);
    /* Inside a room call the room marks it dead from our return code;
     * otherwise it leaves the room now (presence, last seen). */
    if (!from_room && x->cc) {
        ss_chat_disconnect(x->cc, wall_ms());
        x->cc = NULL;
    }
}

/* Commit the store's batch: every reply and line queued so far may
 * acknowledge a row in it, and none may leave before it is committed. */
static void commit(ss_chat_server *cs)
{
    if (ss__chat_room_commit(cs->room) < 0) {
        cs->st.commit_errors++;
        if (cs->srv)
            ss_server_log(cs->srv, SS_LOG_WARN, "chat store: a batch of history failed "
                          "to commit; lines acknowledged with it are not stored");
    }
}

/* What queue_line may append to x without looking at the framework's
 * queue: while the client's queue (ours plus the framework's) stays under
 * the high-water mark, the hard cap and the largest queue seen so far, an
 * append cuts nobody off, makes nobody behind and sets no new peak. Only
 * push and cut write to a room connection, and they set this again; the
 * socket only shrinks the framework's queue; the peak only grows.
 * For a reader of the room log the same room is a bound on log_end
 * (log_lim), which room lines and its private lines both use up; it also
 * keeps the reader's cursor within the ring (log_cap), and cs->room_lim
 * follows the lowest. */
static void fast_room_set(struct chat_ctx *x)
{
    ss_chat_server *cs = x->cs;
    size_t lim = cs->fast_max < cs->st.queue_peak ? cs->fast_max : cs->st.queue_peak;
    size_t held = queued(x);
    /* An IRC connection's lines go through its front: never appended
     * raw, so the fan-out's fast path needs no test for it. */
    x->fast_room = x->cut || x->irc || held >= lim ? 0 : lim - held;
    if (x->reader) {
        x->log_lim = cs->log_end + x->fast_room;
        if (cs->log_cap && x->log_lim > x->log_pos + cs->log_cap - SS_CHAT_LOG_LINE_MAX)
            x->log_lim = x->log_pos + cs->log_cap - SS_CHAT_LOG_LINE_MAX;
        if (x->log_lim < cs->room_lim)
            cs->room_lim = x->log_lim;
    }
}

/* What x may still take without a check (see fast_room_set). */
static inline size_t room_left(const struct chat_ctx *x)
{
    if (!x->reader)
        return x->fast_room;
    uint64_t e = x->cs->log_end;
    return x->log_lim > e ? (size_t)(x->log_lim - e) : 0;
}

/* Take what x's room left (len bytes of it, len < room_left(x)). */
static inline void room_use(struct chat_ctx *x, size_t len)
{
    if (!x->reader) {
        x->fast_room -= len;
        return;
    }
    x->log_lim -= len;
    if (x->log_lim < x->cs->room_lim)
        x->cs->room_lim = x->log_lim;
}

/* cs->room_lim anew: the lowest log_lim of the readers not cut off. */
static void room_lim_update(ss_chat_server *cs)
{
    uint64_t lim = UINT64_MAX;
    for (size_t i = 0; i < cs->n_rd; i++)
        if (!cs->rd[i]->cut && cs->rd[i]->log_lim < lim)
            lim = cs->rd[i]->log_lim;
    cs->room_lim = lim;
}

/* Give back the run's references from index i on (obuf's bytes past them
 * are about to change). */
static void run_cut(ss_chat_server *cs, size_t i)
{
    while (cs->run_n > i)
        ss__chat_line_drop(cs->run[--cs->run_n]);
}

/* A not-reader's queue (an IRC connection's, one before its nick, one
 * that left the room) to the framework: lines up to SS_CHAT_STAGE copied
 * into obuf and sent as one piece. Returns whether anything moved. */
static bool push_lines(struct chat_ctx *x, bool force)
{
    ss_chat_server *cs = x->cs;
    bool moved = false;
    while (x->q_n && !x->cut && (force || ss_conn_out_queued(x->conn) < SS_CHAT_STAGE)) {
        force = false;
        /* Lines up to SS_CHAT_STAGE go out as one copy, each reference
         * dropped as its line is copied: the kernel's walk over one iovec
         * per 64-byte line cost more than the copy, and one pass over the
         * ring is a third of the instructions of building iovecs first
         * (bench/RESULTS.md, chat, issue 11). */
        size_t mask = x->q_cap - 1, o = 0, skip = x->q_off;
        if ((cs->obuf || (cs->obuf = malloc(SS_CHAT_PUSH_BUF))) &&
            (cs->run || (cs->run = malloc(SS_CHAT_RUN_MAX * sizeof *cs->run))) &&
            (cs->run_end || (cs->run_end = malloc(SS_CHAT_RUN_MAX * sizeof *cs->run_end)))) {
            /* One pass over the ring. The room's lines reach most queues
             * in the same order, so obuf usually holds this queue's first
             * lines already (the run, from the client pushed before):
             * those are not copied again, and from the first line that
             * differs obuf is written and the run follows it (the ring's
             * reference moves into the run). A first line partly sent
             * before starts obuf anew. */
            struct qent *q = x->q;
            ss_chat_line **run = cs->run;
            char *buf = cs->obuf;
            size_t head = x->q_head, left = x->q_n, i = 0;
            size_t run_n = cs->run_n;
            if (skip) {
                run_cut(cs, 0);
                run_n = 0;
            }
            /* The run's prefix: its offsets are the ones the push that
             * wrote it had, so the limits below held for it then. The
             * ring in its two pieces (to its end, then from its start),
             * the bytes from run_end: a compare and a reference dropped
             * per line. */
            size_t lim = run_n < left ? run_n : left;
            size_t seg = x->q_cap - head < lim ? x->q_cap - head : lim;
            struct qent *qa = q + head;
            while (i < seg && qa[i].l == run[i])
                run[i++]->refs--; /* the run holds one more */
            if (i == seg)
                while (i < lim && q[i - seg].l == run[i])
                    run[i++]->refs--;
            if (i)
                o = cs->run_end[i - 1];
            head = (head + i) & mask;
            left -= i;
            while (left && o < SS_CHAT_STAGE) {
                ss_chat_line *l = q[head].l;
                size_t n = l->len - skip;
                if (o + n > SS_CHAT_PUSH_BUF)
                    break;
                if (run_n > i) {
                    cs->run_n = run_n;
                    run_cut(cs, i);
                    run_n = i;
                }
                memcpy(buf + o, l->data + skip, n);
                o += n;
                if (!skip && run_n == i && run_n < SS_CHAT_RUN_MAX) {
                    cs->run_end[run_n] = o;
                    run[run_n++] = l; /* the ring's reference moves here */
                } else {
                    ss__chat_line_drop(l);
                }
                i++;
                skip = 0;
                head = (head + 1) & mask;
                left--;
            }
            cs->run_n = run_n;
            x->q_head = head;
            x->q_n = left;
        }
        int wr;
        if (o) {
            x->q_off = 0;
            x->q_bytes -= o;
            struct iovec one = {cs->obuf, o};
            wr = ss_conn_writev(x->conn, &one, 1);
        } else {
            /* No buffer, or one line longer than it: that line alone. */
            ss_chat_line *l = x->q[x->q_head].l;
            struct iovec one = {l->data + skip, l->len - skip};
            wr = ss_conn_writev(x->conn, &one, 1);
            x->q_off = 0;
            x->q_bytes -= one.iov_len;
            ss__chat_line_drop(l);
            x->q_head = (x->q_head + 1) & mask;
            x->q_n--;
        }
        if (wr < 0) {
            drop_queue(x);
            break;
        }
        moved = true;
    }
    return moved;
}

/* A reader's output to the framework: the log from its cursor, in spans
 * straight from the ring (no copy), with its private lines (copied into
 * obuf) where their marks put them, up to SS_CHAT_STAGE per write. */
static bool push_log(struct chat_ctx *x, bool force)
{
    ss_chat_server *cs = x->cs;
    bool moved = false;
    uint64_t held = cs->log_end - x->log_pos; /* the log holds this for x */
    if (held > cs->st.log_peak)
        cs->st.log_peak = held;
    while (!x->cut && (force || ss_conn_out_queued(x->conn) < SS_CHAT_STAGE)) {
        force = false;
        struct iovec iov[SS_CHAT_LOG_IOV];
        int niov = 0, obuf_iov = -1;
        size_t tot = 0, o = 0, mask = x->q_cap - 1;
        uint64_t pos = x->log_pos;
        ss_chat_line *big = NULL; /* a line sent from its own bytes */
        while (tot < SS_CHAT_STAGE && niov <= SS_CHAT_LOG_IOV - 2) {
            uint64_t lim = cs->log_end;
            if (x->q_n) {
                struct qent *e = &x->q[x->q_head];
                if (e->mark <= pos) {
                    ss_chat_line *l = e->l;
                    if (!l) { /* its own room line: not sent back */
                        pos += e->skip;
                        x->skip_bytes -= e->skip;
                    } else {
                        size_t n = l->len - x->q_off;
                        const char *d = l->data + x->q_off;
                        if (o + n <= SS_CHAT_PUSH_BUF &&
                            (cs->obuf || (cs->obuf = malloc(SS_CHAT_PUSH_BUF)))) {
                            if (!o)
                                run_cut(cs, 0); /* obuf changes */
                            memcpy(cs->obuf + o, d, n);
                            if (obuf_iov == niov - 1 && obuf_iov >= 0) {
                                iov[obuf_iov].iov_len += n;
                            } else {
                                obuf_iov = niov;
                                iov[niov++] = (struct iovec){cs->obuf + o, n};
                            }
                            o += n;
                            ss__chat_line_drop(l);
                        } else if (!niov) {
                            iov[niov++] = (struct iovec){(void *)d, n};
                            big = l;
                        } else {
                            break; /* in the next write */
                        }
                        x->q_bytes -= n;
                        x->q_off = 0;
                        tot += n;
                    }
                    x->q_head = (x->q_head + 1) & mask;
                    x->q_n--;
                    if (big)
                        break;
                    continue;
                }
                lim = e->mark;
            }
            if (pos >= lim)
                break;
            size_t n = lim - pos < SS_CHAT_STAGE - tot ? (size_t)(lim - pos) : SS_CHAT_STAGE - tot;
            size_t off = (size_t)pos & (cs->log_cap - 1), first = cs->log_cap - off;
            if (first > n)
                first = n;
            iov[niov++] = (struct iovec){cs->log + off, first};
            if (n > first)
                iov[niov++] = (struct iovec){cs->log, n - first};
            pos += n;
            tot += n;
        }
        x->log_pos = pos;
        if (!niov)
            break;
        int wr = ss_conn_writev(x->conn, iov, niov);
        if (big)
            ss__chat_line_drop(big);
        if (wr < 0) {
            drop_queue(x);
            break;
        }
        moved = true;
    }
    return moved;
}

/* Hand queued lines to the framework while its queue is short; force:
 * one write of them in any case (from on_drain, which comes once its
 * queue is at half of outbuf_max, not below SS_CHAT_STAGE: a push that
 * then wrote nothing would wait for the next line to come, and in a
 * quiet room forever). */
static void push_ex(struct chat_ctx *x, bool force)
{
    ss_chat_server *cs = x->cs;
    commit(cs);
    if (x->reader ? push_log(x, force) : push_lines(x, force))
        x->progress_ms = ss_loop_now(ss_conn_loop(x->conn));
    if (x->behind && queued(x) <= cs->so.outq_high / 2)
        set_behind(x, false);
    fast_room_set(x);
}

static void push(struct chat_ctx *x) { push_ex(x, false); }

/* Everything x had went to the socket and no on_drain will come: let the
 * room produce more (file download, offline page). */
static void maybe_room_drain(struct chat_ctx *x)
{
    if (!x->q_n && !ss_conn_out_queued(x->conn) && x->cc && !x->cut)
        ss_chat_drain(x->cc);
}

static void flush_all(ss_loop *loop, void *arg)
{
    ss_chat_server *cs = arg;
    commit(cs); /* also when nobody has output: the batch ends here */
    if (cs->log_flushed != cs->log_end) {
        /* Every reader behind the log's end. Backwards: a reader that
         * leaves meanwhile takes the last one's place, one already seen. */
        for (size_t i = cs->n_rd; i-- > 0;) {
            if (i >= cs->n_rd)
                continue;
            struct chat_ctx *x = cs->rd[i];
            if (x->log_pos != cs->log_end && !x->cut) {
                push(x);
                maybe_room_drain(x);
            }
        }
        cs->log_flushed = cs->log_end;
    }
    /* Private lines (a drain above may have queued some). */
    while (cs->dirty) {
        struct chat_ctx *x = cs->dirty;
        undirty(cs, x);
        push(x);
        maybe_room_drain(x);
    }
    room_lim_update(cs);
    run_cut(cs, 0); /* the run's lines live no longer than this */
    if (cs->log_line) {
        ss__chat_line_drop(cs->log_line);
        cs->log_line = NULL;
    }
}

/* Put l on x's queue (a reference), or cut x off past outq_max. */
__attribute__((noinline))
static int queue_line_slow(struct chat_ctx *x, ss_chat_line *l)
{
    ss_chat_server *cs = x->cs;
    if (x->cut)
        return -ENOBUFS;
    size_t len = l->len, held = queued(x);
    if (held + len > cs->so.outq_max) {
        cs->st.overflows++;
        cut(x, "ERR overflow your queue passed its limit; disconnecting\n", true);
        return -ENOBUFS;
    }
    if (q_reserve(x) < 0)
        return -ENOMEM;
    q_put(x, ss__chat_line_hold(l), 0);
    x->q_bytes += len;
    held += len;
    if (held > cs->st.queue_peak)
        cs->st.queue_peak = held;
    if (!x->behind && held > cs->so.outq_high)
        set_behind(x, true);
    mark_dirty(cs, x);
    fast_room_set(x);
    return 0;
}

/* The same, for the common case (see fast_room_set): an append. */
static inline int queue_line(struct chat_ctx *x, ss_chat_line *l)
{
    size_t len = l->len;
    if (__builtin_expect(len >= room_left(x) || x->q_n == x->q_cap, 0))
        return queue_line_slow(x, l);
    room_use(x, len);
    q_put(x, ss__chat_line_hold(l), 0);
    x->q_bytes += len;
    if (!x->dirty)
        mark_dirty(x->cs, x);
    return 0;
}

static int io_send_line(void *conn, ss_chat_line *l)
{
    struct chat_ctx *x = ss_conn_ctx(conn);
    /* An IRC connection's lines are written as IRC by its front. */
    return x->irc ? ss__irc_out(x->irc, l) : queue_line(x, l);
}

/* ---- the room log --------------------------------------------------------- */

/* x's unread log bytes become private lines, in the order its cursor
 * would have met them and its queue's entries, and its cursor moves to
 * the log's end: for a reader that leaves the room (what it was sent
 * before still goes out) or whose cursor would fall out of the ring (its
 * own lines, which it skips, can be any number). Its queued bytes stay
 * the same. */
static int log_detach(struct chat_ctx *x)
{
    ss_chat_server *cs = x->cs;
    uint64_t pos = x->log_pos, end = cs->log_end;
    size_t n_old = x->q_n, cap = 16;
    while (cap < 2 * n_old + 1)
        cap *= 2;
    struct qent *q = malloc(cap * sizeof *q);
    if (!q)
        return -ENOMEM;
    size_t n = 0, moved = 0;
    for (size_t i = 0; i <= n_old; i++) {
        struct qent *e = i < n_old ? &x->q[(x->q_head + i) & (x->q_cap - 1)] : NULL;
        uint64_t upto = e && e->mark < end ? e->mark : end;
        if (upto > pos) {
            /* log bytes [pos, upto) as one line (skip 1: made here) */
            size_t len = (size_t)(upto - pos), off = (size_t)pos & (cs->log_cap - 1);
            ss_chat_line *l;
            if (off + len <= cs->log_cap) {
                l = ss_chat_line_new(cs->log + off, len);
            } else {
                char *tmp = malloc(len);
                size_t first = cs->log_cap - off;
                if (tmp) {
                    memcpy(tmp, cs->log + off, first);
                    memcpy(tmp + first, cs->log, len - first);
                }
                l = tmp ? ss_chat_line_new(tmp, len) : NULL;
                free(tmp);
            }
            if (!l) {
                for (size_t k = 0; k < n; k++)
                    if (q[k].skip)
                        ss_chat_line_unref(q[k].l);
                free(q);
                return -ENOMEM;
            }
            q[n++] = (struct qent){l, end, 1};
            moved += len;
            pos = upto;
        }
        if (!e)
            break;
        if (e->l)
            q[n++] = (struct qent){e->l, end, 0};
        else
            pos += e->skip;
    }
    for (size_t k = 0; k < n; k++)
        q[k].skip = 0;
    free(x->q);
    x->q = q;
    x->q_head = 0;
    x->q_n = n;
    x->q_cap = cap;
    x->q_bytes += moved;
    x->log_pos = end;
    x->skip_bytes = 0;
    return 0;
}

/* Room for one more reader. */
static int reserve_rd(ss_chat_server *cs)
{
    size_t cap = cs->rd_cap ? cs->rd_cap * 2 : 64;
    struct chat_ctx **rd = realloc(cs->rd, cap * sizeof *rd);
    if (!rd)
        return -ENOMEM;
    cs->rd = rd;
    cs->rd_cap = cap;
    return 0;
}

/* The room's member array changed (io->member): a native member reads
 * the log from its end on; one that leaves takes what it has not read
 * yet into its own queue. IRC members are counted: their lines go per
 * recipient, through their front. */
static void io_member(void *sink, bool in)
{
    struct chat_ctx *x = sink;
    ss_chat_server *cs = x->cs;
    if (in == x->member)
        return;
    x->member = in;
    if (in && !x->irc && !x->cut && (cs->n_rd < cs->rd_cap || !reserve_rd(cs))) {
        x->rd_i = cs->n_rd;
        cs->rd[cs->n_rd++] = x;
        x->reader = true;
        x->log_pos = cs->log_end;
        x->skip_bytes = 0;
        fast_room_set(x);
        return;
    }
    if (in) { /* IRC, or no memory: per recipient */
        x->slow_member = true;
        cs->n_slow_mem++;
        return;
    }
    if (x->slow_member) {
        x->slow_member = false;
        cs->n_slow_mem--;
    }
    if (!x->reader)
        return;
    uint64_t held = cs->log_end - x->log_pos;
    if (held > cs->st.log_peak)
        cs->st.log_peak = held;
    if (x->cut || x->closing || log_detach(x) < 0)
        drop_queue(x);
    struct chat_ctx *last = cs->rd[--cs->n_rd];
    cs->rd[x->rd_i] = last;
    last->rd_i = x->rd_i;
    x->reader = false;
    /* Its lines go out with its next push (/quit's close, the EOF's
     * push; a relay's peer bytes are not mixed with them). */
    if (!x->cut && !x->closing)
        fast_room_set(x);
}

/* Append l's bytes to the log. */
static int log_append(ss_chat_server *cs, const ss_chat_line *l)
{
    if (!cs->log) {
        size_t cap = 4096;
        while (cap < cs->so.outq_max + 2 * SS_CHAT_LOG_LINE_MAX)
            cap *= 2;
        if (!(cs->log = malloc(cap)))
            return -ENOMEM;
        cs->log_cap = cap;
        for (size_t i = 0; i < cs->n_rd; i++)
            fast_room_set(cs->rd[i]); /* log_lim had no ring yet */
        room_lim_update(cs);
    }
    size_t len = l->len, off = (size_t)cs->log_end & (cs->log_cap - 1);
    size_t first = cs->log_cap - off < len ? cs->log_cap - off : len;
    memcpy(cs->log + off, l->data, first);
    memcpy(cs->log, l->data + first, len - first);
    cs->log_end += len;
    return 0;
}

/* A reader after a room line was appended, when not every reader had
 * room for it (cs->room_lim): the checks queue_line_slow makes. */
static int log_check(struct chat_ctx *x)
{
    ss_chat_server *cs = x->cs;
    if (x->cut)
        return -ENOBUFS;
    size_t held = queued(x);
    if (held > cs->so.outq_max) {
        cs->st.overflows++;
        cut(x, "ERR overflow your queue passed its limit; disconnecting\n", true);
        return -ENOBUFS;
    }
    if (held > cs->st.queue_peak)
        cs->st.queue_peak = held;
    if (!x->behind && held > cs->so.outq_high)
        set_behind(x, true);
    if (cs->log_end - x->log_pos + SS_CHAT_LOG_LINE_MAX > cs->log_cap && log_detach(x) < 0)
        return -ENOMEM;
    fast_room_set(x);
    return 0;
}

/* The fan-out (see ss_chat_io): the sinks are our contexts. A room line
 * is appended to the room log once; while every reader has room for it
 * (cs->room_lim) and no member needs a line of its own (IRC), that is
 * all: nothing per recipient. Otherwise each member is looked at: a
 * reader's limits checked (it may be cut off or fall behind), an IRC
 * member's front formats the line. A line too long for the log goes to
 * each member's queue. The sender gets a skip entry (its own line is not
 * sent back). */
static size_t io_send_line_all(void *const *sinks, size_t n, const void *skip,
                               ss_chat_line *l)
{
    if (!n)
        return 0;
    ss_chat_server *cs = ((struct chat_ctx *)sinks[0])->cs;
    struct chat_ctx *sx = (struct chat_ctx *)skip;
    if (l != cs->log_line) { /* not the rest of an earlier call's members */
        if (cs->log_line)
            ss__chat_line_drop(cs->log_line);
        cs->log_line = ss__chat_line_hold(l);
        cs->log_line_in_log = false;
        if (l->len <= SS_CHAT_LOG_LINE_MAX && cs->n_rd &&
            (!sx || !sx->reader || !q_reserve(sx)) && !log_append(cs, l)) {
            cs->log_line_in_log = true;
            ss_loop_defer(ss_conn_loop(cs->rd[0]->conn), &cs->flush);
            if (sx && sx->reader) {
                q_put(sx, NULL, l->len);
                sx->q[(sx->q_head + sx->q_n - 1) & (sx->q_cap - 1)].mark -= l->len;
                sx->skip_bytes += l->len;
                sx->log_lim += l->len; /* its queue did not grow */
                if (cs->log_end - sx->log_pos + SS_CHAT_LOG_LINE_MAX > cs->log_cap &&
                    log_detach(sx) < 0)
                    drop_queue(sx); /* no memory: its backlog is lost, not overwritten */
            }
            if (cs->log_end < cs->room_lim &&
                (!cs->n_slow_mem || (cs->n_slow_mem == 1 && sx && sx->slow_member)))
                return n;
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct chat_ctx *x = sinks[i];
        if (x == skip)
            continue;
        if (x->reader && cs->log_line_in_log && cs->log_end < x->log_lim)
            continue; /* room for it: as the fast path, for this reader */
        int err = x->irc ? ss__irc_out(x->irc, l)
                  : x->reader && cs->log_line_in_log ? log_check(x)
                                                     : queue_line_slow(x, l);
        if (err < 0) {
            room_lim_update(cs);
            return i;
        }
    }
    room_lim_update(cs);
    return n;
}

static int io_send(void *conn, const void *data, size_t len)
{
    (void)conn, (void)data, (void)len;
    return -ENOTSUP; /* every line comes through io_send_line */
}

static size_t io_space(void *conn)
{
    ss_conn *c = conn;
    struct chat_ctx *x = ss_conn_ctx(c);
    /* Producers (downloads, offline pages) fill up to the high-water mark,
     * so they never make talkers wait or get near the hard cap. */
    size_t max = x->cs->so.outq_high, q = queued(x);
    if (x->irc && !ss__irc_registered(x->irc))
        return 0; /* offline messages wait for the welcome (ss_chat_drain) */
    size_t space = x->cut || q >= max ? 0 : max - q;
    if (x->put && x->put->s) { /* a download going out over DCC */
        size_t room = x->put->len >= DCC_PUT_BUF ? 0 : DCC_PUT_BUF - x->put->len;
        space = space < room ? space : room;
    }
    return space;
}

static void io_close(void *conn)
{
    ss_conn *c = conn;
    push(ss_conn_ctx(c));
    ss_conn_close(c);
}

/* The input held back by flow control (the caller frees it), or NULL. */
static char *take_held(struct chat_ctx *x, size_t *n)
{
    char *h = x->held;
    *n = x->held_len;
    x->held = NULL;
    x->held_len = 0;
    return h;
}

/* ---- the point-to-point byte relay --------------------------------------------- */

/* Pass data from x to its relay peer; pause x while the peer is full. */
static void relay_pass(struct chat_ctx *x, const char *data, size_t len)
{
    struct chat_ctx *y = x->relay;
    if (!y || ss_conn_write(y->conn, data, len) < 0) {
        ss_conn_close(x->conn);
        return;
    }
    y->fast_room = 0; /* a relay leaves the room; its queue is not ours */
    x->cs->st.relayed_bytes += len;
    if (ss_conn_out_full(y->conn))
        ss_conn_pause_read(x->conn);
}

/* Leave the room: from now on x's bytes go to its peer. */
static void relay_detach(struct chat_ctx *x)
{
    push(x); /* "OK p2p relay" */
    if (x->cc) {
        ss_chat_disconnect(x->cc, wall_ms());
        x->cc = NULL;
    }
    ss_conn_timer_stop(x->conn); /* no nick timeout for a relay */
    size_t n;
    char *h = take_held(x, &n);
    if (h)
        relay_pass(x, h, n);
    free(h);
    ss_conn_resume_read(x->conn);
}

static void io_relay(void *a, void *b)
{
    struct chat_ctx *x = ss_conn_ctx(a), *y = ss_conn_ctx(b);
    x->relay = y;
    y->relay = x;
    x->relay_wait = y->relay_wait = true;
    x->cs->st.relays++;
}

/* ---- input flow control ------------------------------------------------------ */

static bool admit_line(struct chat_ctx *x, bool counted)
{
    ss_conn *c = x->conn;
    ss_chat_server *cs = x->cs;
    if (cs->n_behind > 0)
        return false;
    if (!counted || !cs->so.rate_lines)
        return true;
    uint64_t now = ss_loop_now(ss_conn_loop(c));
    x->tokens += (double)(now - x->tok_ms) * cs->so.rate_lines / 1000.0;
    if (x->tokens > cs->so.rate_burst)
        x->tokens = cs->so.rate_burst;
    x->tok_ms = now;
    if (x->tokens < 1.0)
        return false;
    x->tokens -= 1.0;
    return true;
}

static bool io_admit(void *conn, bool counted)
{
    struct chat_ctx *x = ss_conn_ctx(conn);
    /* An IRC line was admitted whole by its front (irc_admit); the native
     * lines it turns into are not counted again. */
    return x->irc ? true : admit_line(x, counted);
}

static void feed(struct chat_ctx *x, const char *data, size_t len);

/* Feed what was held back; resume reading once all of it went in. */
static void resume_input(struct chat_ctx *x)
{
    if (!x->held || !x->cc)
        return;
    size_t n;
    char *h = take_held(x, &n);
    feed(x, h, n);
    free(h);
    if (!x->held && !x->cut)
        ss_conn_resume_read(x->conn);
}

static void wake_all(ss_loop *loop, void *arg)
{
    ss_chat_server *cs = arg;
    while (cs->waiters && cs->n_behind == 0) {
        struct chat_ctx *x = cs->waiters;
        unwait(cs, x);
        resume_input(x);
    }
}

static void rate_cb(ss_loop *loop, ss_timer *t, void *arg)
{
    struct chat_ctx *x = arg;
    x->rate_armed = false;
    resume_input(x);
}

/* Give the room data; keep what it did not take and say why it waits. */
static void feed(struct chat_ctx *x, const char *data, size_t len)
{
    ss_chat_server *cs = x->cs;
    size_t used = 0;
    int err = x->irc ? ss__irc_feed(x->irc, data, len, wall_ms(), &used)
                     : ss_chat_feed(x->cc, data, len, wall_ms(), &used);
    if (err < 0)
        ss_server_log(ss_conn_server(x->conn), SS_LOG_WARN, "%s: chat store: %d",
                      ss_conn_peer_str(x->conn), err);
    /* The store's batch (if this opened one) is committed at the end of
     * this loop iteration, also when nobody got a line. */
    ss_loop_defer(ss_conn_loop(x->conn), &cs->flush);
    if (x->relay && x->relay_wait) {
        /* This line paired the relay: both ends leave the room; bytes
         * after the line go to the peer. */
        struct chat_ctx *y = x->relay;
        x->relay_wait = y->relay_wait = false;
        relay_detach(y);
        if (used < len)
            relay_pass(x, data + used, len - used);
        relay_detach(x);
        return;
    }
    if (used >= len || x->cut || !x->cc)
        return;
    /* Held: at most one read (SS_SERVER_READ_CHUNK) per connection. */
    x->held = malloc(len - used);
    if (!x->held) {
        cut(x, "ERR overflow out of memory; disconnecting\n", false);
        return;
    }
    memcpy(x->held, data + used, len - used);
    x->held_len = len - used;
    ss_conn_pause_read(x->conn);
    if (ss_chat_busy(x->cc) || ss_chat_relayed(x->cc))
        return; /* the KDF or store completion, or the relay's pairing, resumes it */
    if (cs->n_behind > 0) {
        cs->st.waits++;
        add_waiter(cs, x);
        return;
    }
    /* Out of tokens: wait for one. */
    cs->st.rate_waits++;
    uint64_t ms = (uint64_t)((1.0 - x->tokens) * 1000.0 / cs->so.rate_lines) + 1;
    ss_timer_start(ss_conn_loop(x->conn), &x->rate_timer, ms);
    x->rate_armed = true;
}

/* ---- the PBKDF2 worker -------------------------------------------------------- */

static void *kdf_main(void *arg)
{
    struct kdf_worker *kw = arg;
    pthread_mutex_lock(&kw->mu);
    for (;;) {
        while (!kw->quit && kw->todo_n == 0)
            pthread_cond_wait(&kw->cv, &kw->mu);
        if (kw->quit)
            break;
        ss_chat_kdf *j = kw->todo[kw->todo_head];
        kw->todo_head = (kw->todo_head + 1) % SS_CHAT_KDF_QUEUE;
        kw->todo_n--;
        kw->running = 1;
        pthread_mutex_unlock(&kw->mu);
        ss_chat_kdf_run(j);
        pthread_mutex_lock(&kw->mu);
        kw->running = 0;
        kw->done[kw->done_n++] = j;
        uint64_t one = 1;
        if (write(kw->efd, &one, sizeof one) < 0) {
            /* the counter cannot overflow at these numbers */
        }
    }
    pthread_mutex_unlock(&kw->mu);
    return NULL;
}

/* The room answered what the connection waited for (a store operation
 * that finished after its command, or a password hash): go on with the
 * lines it sent after it (an IRC front first feeds its queued ones). */
static void io_ready(void *conn)
{
    struct chat_ctx *x = ss_conn_ctx(conn);
    if (x->irc)
        ss__irc_ready(x->irc, wall_ms());
    resume_input(x);
}

static void kdf_ready(ss_loop *loop, int fd, unsigned ev, void *arg)
{
    ss_chat_server *cs = arg;
    struct kdf_worker *kw = &cs->kw;
    uint64_t v;
    if (read(fd, &v, sizeof v) < 0) {
        /* spurious wake-up: nothing to read */
    }
    ss_chat_kdf *done[SS_CHAT_KDF_QUEUE + 1];
    pthread_mutex_lock(&kw->mu);
    int n = kw->done_n;
    memcpy(done, kw->done, (size_t)n * sizeof *done);
    kw->done_n = 0;
    pthread_mutex_unlock(&kw->mu);
    for (int i = 0; i < n; i++) {
        /* The room answers and frees the job; then the connection (if it
         * is still there) goes on with the lines it sent after it. */
        ss_conn *conn = ss_chat_kdf_conn(done[i]);
        ss_chat_kdf_done(done[i], wall_ms());
        if (conn)
            io_ready(conn);
    }
}

static int io_kdf(void *conn, ss_chat_kdf *job)
{
    ss_conn *c = conn;
    ss_chat_server *cs = server_of(c);
    struct kdf_worker *kw = &cs->kw;
    if (!kw->started) {
        kw->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (kw->efd < 0)
            return -errno;
        kw->loop = ss_conn_loop(c);
        int err = ss_loop_io_add(kw->loop, kw->efd, SS_READ, kdf_ready, cs);
        if (err < 0 || pthread_create(&kw->th, NULL, kdf_main, kw) != 0) {
            if (!err)
                ss_loop_io_del(kw->loop, kw->efd);
            close(kw->efd);
            kw->efd = -1;
            return err < 0 ? err : -EAGAIN;
        }
        kw->started = true;
    }
    pthread_mutex_lock(&kw->mu);
    int err = 0;
    if (kw->todo_n + kw->running + kw->done_n >= SS_CHAT_KDF_QUEUE) {
        err = -EAGAIN;
    } else {
        kw->todo[(kw->todo_head + kw->todo_n) % SS_CHAT_KDF_QUEUE] = job;
        kw->todo_n++;
        pthread_cond_signal(&kw->cv);
    }
    pthread_mutex_unlock(&kw->mu);
    return err;
}

static void kdf_stop(ss_chat_server *cs)
{
    struct kdf_worker *kw = &cs->kw;
    if (!kw->started)
        return;
    pthread_mutex_lock(&kw->mu);
    kw->quit = true;
    pthread_cond_signal(&kw->cv);
    pthread_mutex_unlock(&kw->mu);
    pthread_join(kw->th, NULL);
    /* Every connection is gone by now: the jobs left are only freed. */
    for (int i = 0; i < kw->todo_n; i++)
        ss_chat_kdf_done(kw->todo[(kw->todo_head + i) % SS_CHAT_KDF_QUEUE], 0);
    for (int i = 0; i < kw->done_n; i++)
        ss_chat_kdf_done(kw->done[i], 0);
    kw->todo_n = kw->done_n = 0;
    /* Not ss_loop_io_del: the server's own loop is gone by now. */
    close(kw->efd);
    kw->started = false;
}

static const ss_chat_io chat_io = {
    .send = io_send,
    .space = io_space,
    .close = io_close,
    .send_line = io_send_line,
    .send_line_all = io_send_line_all,
    .member = io_member,
    .admit = io_admit,
    .kdf = io_kdf,
    .relay = io_relay,
    .ready = io_ready,
};

/* ---- the IRC front's io ----------------------------------------------------------- */

static int irc_emit(void *arg, ss_chat_line *l) { return queue_line(arg, l); }

static bool irc_admit(void *arg, bool counted) { return admit_line(arg, counted); }

static int irc_peer_kind(void *arg, const char *nick)
{
    struct chat_ctx *x = arg;
    ss_conn *c = ss_chat_find_io(x->cs->room, nick);
    if (!c)
        return SS__IRC_PEER_NONE;
    struct chat_ctx *y = ss_conn_ctx(c);
    return y->irc ? SS__IRC_PEER_IRC : SS__IRC_PEER_NATIVE;
}

static int irc_online(void *arg)
{
    struct chat_ctx *x = arg;
    return ss_chat_online(x->cs->room);
}

/* ---- DCC SEND from IRC to a native user ------------------------------------------- */

static void dcc_end(struct chat_ctx *x)
{
    struct dcc_get *d = x->dcc;
    if (!d)
        return;
    x->dcc = NULL;
    ss_sock_close(d->s);
    free(d);
}

/* One native line as x's own (the room answers x, through its IRC front). */
static bool dcc_line(struct chat_ctx *x, const char *line, size_t len)
{
    size_t used = 0;
    ss_chat_feed(x->cc, line, len, wall_ms(), &used);
    return used == len;
}

/* Finish: "/done" makes the room check the size, store the digest and
 * offer the file (or refuse, and drop it, when bytes are missing). */
static void dcc_done(struct chat_ctx *x)
{
    char line[64];
    int n = snprintf(line, sizeof line, "/done %lld\n", (long long)x->dcc->id);
    dcc_end(x);
    if (x->cc && !x->cut)
        dcc_line(x, line, (size_t)n);
    mark_dirty(x->cs, x);
}

static void dcc_read(ss_sock *s, unsigned events, void *arg)
{
    struct chat_ctx *x = arg;
    struct dcc_get *d = x->dcc;
    unsigned char buf[16 * SS_CHAT_CHUNK];
    ssize_t r = ss_sock_recv(s, buf, sizeof buf);
    if (r == -EAGAIN || r == -EINTR)
        return;
    if (r <= 0) {
        dcc_done(x); /* EOF or error: short, refused by the room */
        return;
    }
    size_t n = (size_t)r;
    if (n > d->size - d->got)
        n = (size_t)(d->size - d->got);
    for (size_t off = 0; off < n; off += SS_CHAT_CHUNK) {
        size_t k = n - off < SS_CHAT_CHUNK ? n - off : SS_CHAT_CHUNK;
        char line[64 + (SS_CHAT_CHUNK + 2) / 3 * 4 + 2];
        int h = snprintf(line, sizeof line, "/chunk %lld %llu ", (long long)d->id,
                         (unsigned long long)(d->got + off));
        int b = EVP_EncodeBlock((unsigned char *)line + h, buf + off, (int)k);
        line[h + b] = '\n';
        if (!dcc_line(x, line, (size_t)(h + b + 1)) || ss_chat_upload_id(x->cc) != d->id) {
            dcc_end(x); /* the room refused a chunk (and said so) */
            return;
        }
    }
    d->got += n;
    /* DCC's acknowledgement: bytes received so far, 32-bit big-endian. */
    uint32_t ack = htonl((uint32_t)d->got);
    ss_sock_send(s, &ack, sizeof ack);
    if (d->got == d->size)
        dcc_done(x);
}

static int irc_dcc_get(void *arg, const char *nick, const char *name, uint32_t ip,
                       uint16_t port, uint64_t size)
{
    struct chat_ctx *x = arg;
    const ss_addr *peer = ss_conn_peer(x->conn);
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&peer->sa;
    /* Only the sender's own address: the server must not be made to
     * connect anywhere else (the DCC address is whatever the client says). */
    if (peer->sa.ss_family != AF_INET || ntohl(sin->sin_addr.s_addr) != ip)
        return -EPERM;
    if (x->dcc || ss_chat_upload_id(x->cc))
        return -EBUSY;
    if (ss_sock_fd(ss_conn_sock(x->conn)) < 0)
        return -ENOTSUP; /* the user-space stack: not from here */
    char line[SS_CHAT_IRC_LINE + 64];
    int n = snprintf(line, sizeof line, "/offer %s %llu - %s\n", nick, (unsigned long long)size,
                     name);
    if (n < 0 || (size_t)n >= sizeof line || !dcc_line(x, line, (size_t)n))
        return 1;
    int64_t id = ss_chat_upload_id(x->cc);
    if (!id)
        return 1;
    struct dcc_get *d = calloc(1, sizeof *d);
    ss_addr a = {.len = sizeof(struct sockaddr_in)};
    struct sockaddr_in *to = (struct sockaddr_in *)&a.sa;
    to->sin_family = AF_INET;
    to->sin_port = htons(port);
    to->sin_addr.s_addr = htonl(ip);
    int err = d ? ss_sock_connect_to(ss_backend_kernel(), &a, SS_STREAM, NULL, NULL, &d->s, NULL)
                : -ENOMEM;
    if (err == -EINPROGRESS)
        err = 0;
    if (!err)
        err = ss_sock_watch(d->s, ss_conn_loop(x->conn), SS_READ, dcc_read, x);
    if (err) {
        if (d && d->s)
            ss_sock_close(d->s);
        free(d);
        n = snprintf(line, sizeof line, "/done %lld\n", (long long)id); /* drop the offer */
        dcc_line(x, line, (size_t)n);
        return err;
    }
    d->id = id;
    d->size = size;
    x->dcc = d;
    if (size == 0)
        dcc_done(x);
    return 0;
}

static void put_end(struct chat_ctx *x)
{
    struct dcc_put *p = x->put;
    if (!p)
        return;
    x->put = NULL;
    if (p->ls)
        ss_sock_close(p->ls);
    if (p->s)
        ss_sock_close(p->s);
    free(p->buf);
    free(p);
}

static void put_io(ss_sock *s, unsigned events, void *arg);

/* Write what waits; more from the room when there is room for it (not
 * from inside the room's own pump: in_room). */
static void put_flush(struct chat_ctx *x, bool in_room)
{
    struct dcc_put *p = x->put;
    while (p->len) {
        ssize_t w = ss_sock_send(p->s, p->buf + p->off, p->len);
        if (w == -EAGAIN)
            break;
        if (w < 0) {
            put_end(x);
            return;
        }
        p->off += (size_t)w;
        p->len -= (size_t)w;
    }
    if (!p->len)
        p->off = 0;
    ss_sock_watch(p->s, ss_conn_loop(x->conn), SS_READ | (p->len ? SS_WRITE : 0), put_io, x);
    if (!p->len && p->end) {
        ss_sock_shutdown(p->s, SHUT_WR); /* the receiver closes when it has all */
        return;
    }
    if (!in_room && p->len < DCC_PUT_BUF / 2 && x->cc && !x->cut)
        ss_chat_drain(x->cc);
}

/* The DCC connection: acknowledgements to read (and drop), room to write. */
static void put_io(ss_sock *s, unsigned events, void *arg)
{
    struct chat_ctx *x = arg;
    if (events & SS_READ) {
        char acks[4096];
        ssize_t r = ss_sock_recv(s, acks, sizeof acks);
        if (r == 0 || (r < 0 && r != -EAGAIN && r != -EINTR)) {
            put_end(x); /* the receiver closed: done, or gave up */
            return;
        }
    }
    if (events & SS_WRITE)
        put_flush(x, false);
}

static void put_accept(ss_sock *ls, unsigned events, void *arg)
{
    struct chat_ctx *x = arg;
    struct dcc_put *p = x->put;
    ss_sock *s;
    ss_addr peer;
    while (ss_sock_accept(ls, &s, &peer) == 0) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&peer.sa;
        const struct sockaddr_in *b = (const struct sockaddr_in *)&ss_conn_peer(x->conn)->sa;
        if (peer.sa.ss_family != AF_INET || a->sin_addr.s_addr != b->sin_addr.s_addr) {
            ss_sock_close(s); /* only the user it was offered to */
            continue;
        }
        ss_sock_close(ls);
        p->ls = NULL;
        p->s = s;
        ss_sock_set_blocking(s, false);
        ss_sock_watch(s, ss_conn_loop(x->conn), SS_READ, put_io, x);
        char line[64];
        int n = snprintf(line, sizeof line, "/accept %lld\n", (long long)p->id);
        dcc_line(x, line, (size_t)n); /* FILE, then CHUNKs as space allows */
        mark_dirty(x->cs, x);
        return;
    }
}

static int irc_dcc_offer(void *arg, int64_t id, uint32_t *ip, uint16_t *port)
{
    struct chat_ctx *x = arg;
    if (x->put)
        return -EBUSY;
    ss_addr a = *ss_conn_local(x->conn);
    struct sockaddr_in *sin = (struct sockaddr_in *)&a.sa;
    if (a.sa.ss_family != AF_INET || ss_sock_fd(ss_conn_sock(x->conn)) < 0)
        return -ENOTSUP;
    sin->sin_port = 0;
    struct dcc_put *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->buf = malloc(DCC_PUT_BUF + SS_CHAT_CHUNK);
    int err = p->buf ? ss_sock_listen_on(ss_backend_kernel(), &a, SS_STREAM, NULL, 1, &p->ls, NULL)
                     : -ENOMEM;
    ss_addr bound;
    if (!err)
        err = ss_sock_local_addr(p->ls, &bound);
    if (!err)
        err = ss_sock_watch(p->ls, ss_conn_loop(x->conn), SS_READ, put_accept, x);
    p->id = id;
    x->put = p;
    if (err) {
        put_end(x);
        return err;
    }
    *ip = ntohl(sin->sin_addr.s_addr);
    *port = (uint16_t)ss_addr_port(&bound);
    return 0;
}

static int irc_dcc_data(void *arg, int64_t id, const void *data, size_t len)
{
    struct chat_ctx *x = arg;
    struct dcc_put *p = x->put;
    if (!p || !p->s || p->id != id)
        return -EINVAL;
    if (!len) {
        p->end = true;
    } else {
        if (p->off + p->len + len > DCC_PUT_BUF + SS_CHAT_CHUNK) {
            memmove(p->buf, p->buf + p->off, p->len);
            p->off = 0;
        }
        if (p->len + len > DCC_PUT_BUF + SS_CHAT_CHUNK)
            return -ENOBUFS; /* io_space keeps the room below this */
        memcpy(p->buf + p->off + p->len, data, len);
        p->len += len;
    }
    put_flush(x, true);
    return 0;
}

static const ss__irc_io irc_io = {
    .dcc_offer = irc_dcc_offer,
    .dcc_data = irc_dcc_data,
    .dcc_get = irc_dcc_get,
    .online = irc_online,
    .emit = irc_emit,
    .admit = irc_admit,
    .peer_kind = irc_peer_kind,
};

/* ---- per-address cap ------------------------------------------------------------- */

/* "1.2.3.4:5" -> "1.2.3.4", "[::1]:5" -> "[::1]". */
static void addr_of(ss_conn *c, char *out, size_t cap)
{
    snprintf(out, cap, "%s", ss_conn_peer_str(c));
    char *colon = strrchr(out, ':');
    if (colon && strncmp(out, "unix:", 5))
        *colon = '\0';
}

static struct addr_ent **addr_slot(ss_chat_server *cs, const char *a)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)a; *p; p++)
        h = (h ^ *p) * 16777619u;
    struct addr_ent **pp = &cs->addrs[h % ADDR_TAB];
    while (*pp && strcmp((*pp)->addr, a))
        pp = &(*pp)->next;
    return pp;
}

/* Count one more connection from a; false past the cap. */
static bool addr_take(ss_chat_server *cs, const char *a)
{
    struct addr_ent **pp = addr_slot(cs, a);
    if (!*pp) {
        *pp = calloc(1, sizeof **pp);
        if (!*pp)
            return false;
        snprintf((*pp)->addr, sizeof (*pp)->addr, "%s", a);
    }
    if (cs->so.per_addr_max > 0 && (*pp)->n >= cs->so.per_addr_max)
        return false;
    (*pp)->n++;
    return true;
}

static void addr_put(ss_chat_server *cs, const char *a)
{
    struct addr_ent **pp = addr_slot(cs, a);
    if (*pp && --(*pp)->n <= 0) {
        struct addr_ent *e = *pp;
        *pp = e->next;
        free(e);
    }
}

/* ---- the service ---------------------------------------------------------------- */

static int open_conn(ss_conn *c, bool irc)
{
    ss_chat_server *cs = server_of(c);
    struct chat_ctx *x = ss_conn_ctx(c);
    x->conn = c;
    x->cs = cs;
    cs->srv = ss_conn_server(c);
    x->tokens = cs->so.rate_burst;
    x->tok_ms = x->opened_ms = ss_loop_now(ss_conn_loop(c));
    ss_timer_init(&x->rate_timer, rate_cb, x);
    addr_of(c, x->addr, sizeof x->addr);
    if (!addr_take(cs, x->addr)) {
        cs->st.addr_refused++;
        char note[128];
        int n = snprintf(note, sizeof note,
                         "ERR toomany %d connections from your address already\n",
                         cs->so.per_addr_max);
        char irc_note[160];
        if (irc)
            ss_conn_write(c, irc_note, ss__irc_fatal(note, irc_note, sizeof irc_note));
        else
            ss_conn_write(c, note, (size_t)n);
        ss_conn_close(c);
        return 0;
    }
    x->counted_addr = true;
    if (irc && !(x->irc = ss__irc_new(cs->hub, &irc_io, x)))
        return -ENOMEM;
    x->cc = ss_chat_connect(cs->room, c, wall_ms());
    if (!x->cc)
        return -ENOMEM;
    ss_chat_set_sink(x->cc, x); /* io_send_line_all's handle */
    if (x->irc)
        ss__irc_attach(x->irc, x->cc);
    ss_chat_conn_set_addr(x->cc, x->addr);
    ss_chat_conn_set_peer(x->cc, ss_conn_peer_str(c));
    if (cs->so.nick_timeout_ms)
        ss_conn_timer_start(c, cs->so.nick_timeout_ms);
    return 0;
}

static int on_open(ss_conn *c) { return open_conn(c, false); }

static int on_open_irc(ss_conn *c) { return open_conn(c, true); }

static int on_data(ss_conn *c, const void *data, size_t len)
{
    struct chat_ctx *x = ss_conn_ctx(c);
    if (x->relay && !x->relay_wait)
        relay_pass(x, data, len);
    else if (x->cc && !x->cut)
        feed(x, data, len);
    return 0;
}

static int on_eof(ss_conn *c)
{
    struct chat_ctx *x = ss_conn_ctx(c);
    if (x->relay) {
        /* Half-close passes through: the peer sees EOF after the data; when
         * both ends have closed, the relay ends. */
        x->relay_eof = true;
        ss_conn_shutdown_write(x->relay->conn);
        if (x->relay->relay_eof) {
            ss_conn_close(x->relay->conn);
            ss_conn_close(c);
        }
        return 0;
    }
    if (x->cc)
        ss_chat_eof(x->cc, wall_ms());
    /* The replies to its last lines must leave before the close. */
    undirty(x->cs, x);
    push(x);
    ss_conn_close(c);
    return 0;
}

static int on_drain(ss_conn *c)
{
    struct chat_ctx *x = ss_conn_ctx(c);
    if (x->relay && !x->relay_wait) {
        ss_conn_resume_read(x->relay->conn);
        return 0;
    }
    if (x->cut)
        return 0;
    push_ex(x, true);
    if (x->cc && x->q_n == 0)
        ss_chat_drain(x->cc);
    return 0;
}

/* The one per-connection timer: nick deadline, stall check, or the last
 * second of a client being cut off. */
static int on_timer(ss_conn *c)
{
    struct chat_ctx *x = ss_conn_ctx(c);
    ss_chat_server *cs = x->cs;
    if (x->cut)
        return -ETIMEDOUT;
    uint64_t now = ss_loop_now(ss_conn_loop(c));
    char note[160];
    if (x->behind) {
        uint64_t idle = now - x->progress_ms;
        if (idle >= cs->so.stall_ms) {
            cs->st.stalled++;
            snprintf(note, sizeof note, "ERR stalled you read nothing for %u ms while "
                     "%zu bytes waited; disconnecting\n", cs->so.stall_ms, queued(x));
            cut(x, note, false);
            return 0;
        }
        ss_conn_timer_start(c, cs->so.stall_ms - idle);
        return 0;
    }
    if (x->cc && !ss_chat_nick(x->cc) && cs->so.nick_timeout_ms) {
        uint64_t age = now - x->opened_ms;
        if (age >= cs->so.nick_timeout_ms) {
            cs->st.nick_timeouts++;
            snprintf(note, sizeof note, "ERR timeout no /nick within %u ms; "
                     "disconnecting\n", cs->so.nick_timeout_ms);
            cut(x, note, false);
            return 0;
        }
        ss_conn_timer_start(c, cs->so.nick_timeout_ms - age);
    }
    return 0;
}

static void on_close(ss_conn *c, int err)
{
    struct chat_ctx *x = ss_conn_ctx(c);
    ss_chat_server *cs = x->cs;
    if (!cs)
        return;
    x->closing = true;
    if (x->cc)
        ss_chat_disconnect(x->cc, wall_ms());
    x->cc = NULL;
    if (x->relay) {
        x->relay->relay = NULL;
        ss_conn_close(x->relay->conn);
        x->relay = NULL;
    }
    set_behind(x, false);
    undirty(cs, x);
    unwait(cs, x);
    if (x->rate_armed)
        ss_timer_stop(ss_conn_loop(c), &x->rate_timer);
    x->rate_armed = false;
    drop_queue(x);
    free(x->held);
    x->held = NULL;
    if (x->counted_addr)
        addr_put(cs, x->addr);
    x->counted_addr = false;
    dcc_end(x);
    put_end(x);
    ss__irc_free(x->irc);
    x->irc = NULL;
}

static const ss_service chat_service = {
    .name = "chat",
    .conn_ctx_size = sizeof(struct chat_ctx),
    .on_open = on_open,
    .on_data = on_data,
    .on_eof = on_eof,
    .on_drain = on_drain,
    .on_timer = on_timer,
    .on_close = on_close,
};

const struct ss_service *ss_chat_service(void) { return &chat_service; }

/* The same room over IRC: only the open differs (the connection gets its
 * IRC front); the flow control, limits and timers are the native ones. */
static const ss_service chat_irc_service = {
    .name = "chat-irc",
    .conn_ctx_size = sizeof(struct chat_ctx),
    .on_open = on_open_irc,
    .on_data = on_data,
    .on_eof = on_eof,
    .on_drain = on_drain,
    .on_timer = on_timer,
    .on_close = on_close,
};

const struct ss_service *ss_chat_irc_service(void) { return &chat_irc_service; }

/* The point-to-point UDP rendezvous (a datagram server on the loop of the
 * chat server, its svc_ctx the same ss_chat_server): each hello is
 * answered from the room's introductions, at most as long as it was. */
static int on_p2p_datagram(ss_server *srv, const void *data, size_t len, bool truncated,
                           const ss_addr *from)
{
    ss_chat_server *cs = ss_server_ctx(srv);
    ss_addr a = ss_addr_unmapped(from);
    char peer[SS_ADDR_STRLEN], out[SS_CHAT_P2P_UDP_HELLO];
    size_t n = 0;
    if (!truncated && a.sa.ss_family == AF_INET && ss_addr_format(&a, peer, sizeof peer) > 0)
        n = ss__chat_room_p2p_udp(cs->room, data, len, peer, out, sizeof out, wall_ms());
    if (!n) {
        cs->st.p2p_udp_ignored++;
        return 0;
    }
    cs->st.p2p_udp_answered++;
    ss_server_sendto(srv, out, n, from);
    return 0;
}

static const ss_service chat_p2p_udp_service = {
    .name = "chat-p2p-udp",
    .on_datagram = on_p2p_datagram,
};

const struct ss_service *ss_chat_p2p_udp_service(void) { return &chat_p2p_udp_service; }

int ss_chat_server_new(const ss_chat_opts *o, const ss_chat_server_opts *so,
                       ss_chat_server **out)
{
    *out = NULL;
    ss_chat_server *cs = calloc(1, sizeof *cs);
    if (!cs)
        return -ENOMEM;
    if (so)
        cs->so = *so;
    else
        ss_chat_server_opts_init(&cs->so);
    if (!cs->so.outq_max)
        cs->so.outq_max = SS_CHAT_OUTQ_MAX;
    if (!cs->so.outq_high || cs->so.outq_high > cs->so.outq_max / 2)
        cs->so.outq_high = cs->so.outq_max / 2 < SS_CHAT_OUTQ_HIGH ? cs->so.outq_max / 2
                                                                   : SS_CHAT_OUTQ_HIGH;
    if (!cs->so.stall_ms)
        cs->so.stall_ms = SS_CHAT_STALL_MS;
    cs->fast_max = cs->so.outq_high < cs->so.outq_max ? cs->so.outq_high : cs->so.outq_max;
    cs->room_lim = UINT64_MAX;
    ss_defer_init(&cs->flush, flush_all, cs);
    ss_defer_init(&cs->wake, wake_all, cs);
    pthread_mutex_init(&cs->kw.mu, NULL);
    pthread_cond_init(&cs->kw.cv, NULL);
    cs->kw.efd = -1;
    int err = 0;
    ss__chat_be *be = NULL;
    if (cs->so.cluster) {
        err = cs->so.loop ? ss__chat_be_redis_new(cs->so.loop, cs->so.cluster,
                                                  o->room ? o->room : "lobby",
                                                  cs->so.lease_ms ? (int)cs->so.lease_ms
                                                                  : SS_CHAT_LEASE_MS,
                                                  &be)
                          : -EINVAL;
    }
    if (!err)
        err = ss__chat_room_open_be(&cs->room, o, &chat_io, be);
    if (!err)
        err = ss__irc_hub_new(&cs->hub, "sockstack", o->room);
    if (!err)
        ss__chat_room_batch(cs->room, true);
    if (err) {
        ss_chat_room_close(cs->room);
        pthread_mutex_destroy(&cs->kw.mu);
        pthread_cond_destroy(&cs->kw.cv);
        free(cs);
        return err;
    }
    *out = cs;
    return 0;
}

void ss_chat_server_free(ss_chat_server *cs)
{
    if (!cs)
        return;
    kdf_stop(cs);
    ss_chat_room_close(cs->room);
    ss__irc_hub_free(cs->hub);
    for (int i = 0; i < ADDR_TAB; i++)
        while (cs->addrs[i]) {
            struct addr_ent *e = cs->addrs[i];
            cs->addrs[i] = e->next;
            free(e);
        }
    pthread_mutex_destroy(&cs->kw.mu);
    pthread_cond_destroy(&cs->kw.cv);
    run_cut(cs, 0);
    if (cs->log_line)
        ss__chat_line_drop(cs->log_line);
    free(cs->log);
    free(cs->rd);
    free(cs->run);
    free(cs->run_end);
    free(cs->obuf);
    free(cs);
}

ss_chat_room *ss_chat_server_room(ss_chat_server *cs) { return cs->room; }

void ss_chat_server_stats_get(const ss_chat_server *cs, ss_chat_server_stats *out)
{
    *out = cs->st;
    out->lines_alive = ss_chat_lines_alive(&out->lines_peak);
    ss_chat_line_bytes_alive(&out->line_bytes_peak);
    out->log_end = cs->log_end;
    uint64_t tail = cs->log_end;
    for (size_t i = 0; i < cs->n_rd; i++)
        if (!cs->rd[i]->cut && cs->rd[i]->log_pos < tail)
            tail = cs->rd[i]->log_pos;
    out->log_held = cs->log_end - tail;
    out->log_readers = cs->n_rd;
}

int ss_chat_server_conn_info_get(ss_chat_server *cs, const char *nick,
                                 ss_chat_server_conn_info *out)
{
    ss_conn *c = ss_chat_find_io(cs->room, nick);
    if (!c)
        return -ENOENT;
    const struct chat_ctx *x = ss_conn_ctx(c);
    *out = (ss_chat_server_conn_info){
        .reader = x->reader,
        .log_pos = x->log_pos,
        .log_backlog = log_backlog(x),
        .q_entries = x->q_n,
        .q_bytes = x->q_bytes,
        .staged = ss_conn_out_queued(x->conn),
        .queued = queued(x),
        .behind = x->behind,
    };
    return 0;
}
