/* The netcat engine (see include/sockstack/nc.h).
 *
 * Data paths, each with one bounded buffer:
 *   in_fd  --read-->  ibuf  --send-->  socket           (step_input, step_send)
 *   socket --recv-->  rx    --format--> obuf --write--> out_fd
 *                                   (step_recv, step_format, step_output)
 * progress() runs the steps until none moves, then asks the loop for exactly
 * the readiness that would let a blocked step move again. A step that cannot
 * move (buffer full, nothing ready) simply waits: that is the backpressure.
 * Events for the caller are delivered at the end of progress(), so a DONE
 * callback may attach the next socket without re-entering the engine.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "sockstack/config.h"
#include "sockstack/nc.h"

/* A plain descriptor (stdin or stdout) as the engine sees it. */
struct fdend {
    int fd;
    bool always;     /* epoll refuses it (regular file, /dev/null): always ready */
    bool registered; /* in the loop now */
    unsigned want;   /* events registered */
    bool ready;      /* the loop said so since our last read/write; out: worth
                      * a write (cleared on EAGAIN) unless no_nowait */
    bool no_nowait;  /* out: the kernel refuses RWF_NOWAIT here (a terminal) */
};

struct ss_nc {
    ss_loop *loop;
    ss_nc_opts o;
    ss_nc_cb cb;
    void *arg;
    ss_defer kick;
    ss_timer wait;
    bool busy; /* inside progress() */

    struct fdend in, out;
    bool in_eof;
    bool in_eof_told;

    ss_sock *sock;
    bool dgram;
    bool sock_watched;
    unsigned sock_want;
    bool sock_rd, sock_wr; /* worth trying recv / send (cleared on EAGAIN) */
    bool sock_eof;         /* stream: peer closed (or recv failed) */
    bool shut_wr;          /* stream: our FIN is out */
    int late_err;          /* recv error to report once output is drained */

    uint8_t *ibuf;
    size_t ipos, ilen;

    uint8_t *rx;
    size_t rxcap, rxpos, rxlen;
    uint64_t hex_off;

    uint8_t *obuf;
    size_t opos, olen;

    ss_addr last_from;
    bool have_from;

    uint64_t sent, received;

    /* DONE waiting to be delivered at the end of progress(). */
    bool done_pending;
    ss_nc_event done;
};

static void progress(ss_nc *nc);

void ss_nc_opts_init(ss_nc_opts *o)
{
    *o = (ss_nc_opts){
        .in_fd = 0,
        .out_fd = 1,
        .wait_ms = SS_NC_WAIT_MS,
        .recv_size = SS_NC_RECV_SIZE,
    };
}

/* ---- hex dump ------------------------------------------------------------ */

int ss_hexdump_line(const void *data, size_t len, uint64_t off, char *buf,
                    size_t cap)
{
    static const char hexd[] = "0123456789abcdef";
    const uint8_t *p = data;
    if (len > 16)
        len = 16;
    int n = snprintf(buf, cap, "%08llx  ", (unsigned long long)off);
    /* Offsets past 4 GiB take more than 8 digits. */
    if (n < 0 || cap < SS_HEXDUMP_LINE_MAX + (size_t)n - 10)
        return -ENOSPC;
    for (size_t i = 0; i < 16; i++) {
        if (i < len) {
            buf[n++] = hexd[p[i] >> 4];
            buf[n++] = hexd[p[i] & 15];
            buf[n++] = ' ';
        } else {
            memcpy(buf + n, "   ", 3);
            n += 3;
        }
        if (i == 7)
            buf[n++] = ' ';
    }
    buf[n++] = ' ';
    buf[n++] = '|';
    for (size_t i = 0; i < len; i++)
        buf[n++] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '.';
    buf[n++] = '|';
    buf[n++] = '\n';
    buf[n] = '\0';
    return n;
}

/* ---- descriptors ----------------------------------------------------------- */

static void fd_cb(ss_loop *loop, int fd, unsigned events, void *arg)
{
    ss_nc *nc = arg;
    /* A hang-up counts as ready: the read or write that follows reports it. */
    if (fd == nc->in.fd && (events & (SS_READ | SS_HUP)))
        nc->in.ready = true;
    if (fd == nc->out.fd && (events & (SS_WRITE | SS_HUP)))
        nc->out.ready = true;
    progress(nc);
}

/* Register exactly `want` for e; nothing at all when want is 0 (epoll would
 * keep reporting a hang-up on a paused descriptor). */
static void fd_interest(ss_nc *nc, struct fdend *e, unsigned want)
{
    if (e->fd < 0 || e->always)
        return;
    if (want == 0) {
        if (e->registered)
            ss_loop_io_del(nc->loop, e->fd);
        e->registered = false;
        e->want = 0;
        return;
    }
    if (!e->registered) {
        int err = ss_loop_io_add(nc->loop, e->fd, want, fd_cb, nc);
        if (err == -EPERM) {
            e->always = true; /* regular file or /dev/null */
            e->ready = true;
            ss_loop_defer(nc->loop, &nc->kick);
            return;
        }
        if (err == 0)
            e->registered = true;
    } else if (e->want != want) {
        ss_loop_io_mod(nc->loop, e->fd, want);
    }
    e->want = want;
}

/* ---- events ---------------------------------------------------------------- */

static void emit(ss_nc *nc, const ss_nc_event *ev)
{
    if (nc->cb)
        nc->cb(nc, ev, nc->arg);
}

/* End the conversation on the current socket; DONE goes out at the end of
 * progress(). */
static void finish(ss_nc *nc, int err, enum ss_nc_where where)
{
    if (!nc->sock)
        return;
    if (nc->sock_watched)
        ss_sock_unwatch(nc->sock);
    nc->sock_watched = false;
    nc->sock_want = 0;
    ss_timer_stop(nc->loop, &nc->wait);
    nc->done_pending = true;
    nc->done = (ss_nc_event){.type = SS_NC_DONE, .err = err, .where = where,
                             .sock = nc->sock};
    nc->sock = NULL;
}

static void wait_cb(ss_loop *loop, ss_timer *t, void *arg)
{
    ss_nc *nc = arg;
    finish(nc, 0, SS_NC_AT_NONE);
    progress(nc);
}

/* Datagrams: (re)start the silence timer once input is over and sent. */
static void arm_wait(ss_nc *nc)
{
    if (nc->o.wait_ms < 0)
        return;
    if (nc->o.wait_ms == 0) {
        finish(nc, 0, SS_NC_AT_NONE);
        return;
    }
    ss_timer_start(nc->loop, &nc->wait, (uint64_t)nc->o.wait_ms);
}

/* ---- input: in_fd -> ibuf ------------------------------------------------ */

/* Datagrams: length of the next datagram ready in ibuf, or 0. */
static size_t dgram_ready(const ss_nc *nc)
{
    if (nc->ilen == 0)
        return 0;
    if (nc->o.raw)
        return nc->ilen < SS_NC_DGRAM_MAX ? nc->ilen : SS_NC_DGRAM_MAX;
    const uint8_t *nl = memchr(nc->ibuf, '\n', nc->ilen);
    if (nl)
        return (size_t)(nl - nc->ibuf) + 1;
    if (nc->ilen >= SS_NC_DGRAM_MAX)
        return SS_NC_DGRAM_MAX;
    return nc->in_eof ? nc->ilen : 0;
}

/* How many bytes in_fd may be read into ibuf now (0: not now). */
static size_t input_room(const ss_nc *nc)
{
    if (nc->in.fd < 0 || nc->in_eof)
        return 0;
    if (!nc->sock) {
        /* Before a socket (still connecting, or a listener waiting for a
         * peer): one read, which is also one whole --raw datagram. */
        return nc->ilen == 0 ? SS_NC_DGRAM_MAX : 0;
    }
    if (!nc->dgram) /* free space, compacting lazily in step_input */
        return SS_NC_INBUF - (nc->ilen - nc->ipos);
    if (nc->o.raw)
        return nc->ilen == 0 ? SS_NC_DGRAM_MAX : 0;
    if (dgram_ready(nc) > 0)
        return 0; /* a whole line waits: send it first */
    return SS_NC_INBUF - nc->ilen;
}

static bool step_input(ss_nc *nc)
{
    size_t room = input_room(nc);
    if (room == 0 || !(nc->in.ready || nc->in.always))
        return false;
    if (nc->ipos > 0) {
        memmove(nc->ibuf, nc->ibuf + nc->ipos, nc->ilen - nc->ipos);
        nc->ilen -= nc->ipos;
        nc->ipos = 0;
    }
    if (room > SS_NC_INBUF - nc->ilen)
        room = SS_NC_INBUF - nc->ilen;
    ssize_t n = read(nc->in.fd, nc->ibuf + nc->ilen, room);
    if (!nc->in.always)
        nc->in.ready = false; /* one read per readiness report: never blocks */
    if (n > 0) {
        nc->ilen += (size_t)n;
        return true;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return false;
    if (n < 0 && nc->sock) {
        finish(nc, -errno, SS_NC_AT_INPUT);
        return true;
    }
    nc->in_eof = true; /* EOF (or a read error with no socket to blame) */
    if (nc->sock && nc->dgram && nc->ilen == 0)
        arm_wait(nc);
    return true;
}

/* ---- ibuf -> socket -------------------------------------------------------- */

/* A send or receive on the socket returned n < 0: EAGAIN clears *ready
 * (wait for the reactor; no progress), anything else ends the conversation
 * at where. Returns what the step returns then. */
static bool io_failed(ss_nc *nc, ssize_t n, bool *ready, enum ss_nc_where where)
{
    if (n == -EAGAIN) {
        *ready = false;
        return false;
    }
    finish(nc, (int)n, where);
    return true;
}

static bool step_send(ss_nc *nc)
{
    if (!nc->sock)
        return false;
    if (!nc->dgram) {
        if (nc->ipos < nc->ilen && nc->sock_wr) {
            ssize_t n = ss_sock_send(nc->sock, nc->ibuf + nc->ipos,
                                     nc->ilen - nc->ipos);
            if (n < 0)
                return io_failed(nc, n, &nc->sock_wr, SS_NC_AT_SEND);
            nc->ipos += (size_t)n;
            nc->sent += (uint64_t)n;
            if (nc->ipos == nc->ilen)
                nc->ipos = nc->ilen = 0;
            return n > 0;
        }
        if (nc->in_eof && nc->ipos == nc->ilen && !nc->shut_wr) {
            nc->shut_wr = true;
            int err = ss_sock_shutdown(nc->sock, SHUT_WR);
            /* ENOTCONN: the peer is already gone; recv will say how. */
            if (err < 0 && err != -ENOTCONN) {
                finish(nc, err, SS_NC_AT_SEND);
            }
            return true;
        }
        return false;
    }

    size_t len = dgram_ready(nc);
    if (len == 0 || !nc->sock_wr)
        return false;
    ssize_t n;
    if (nc->o.reply_to_sender) {
        if (!nc->have_from)
            return false; /* nobody to send to yet */
        n = ss_sock_sendto(nc->sock, nc->ibuf, len, &nc->last_from);
    } else {
        n = ss_sock_send(nc->sock, nc->ibuf, len);
    }
    if (n < 0)
        return io_failed(nc, n, &nc->sock_wr, SS_NC_AT_SEND);
    nc->sent += (uint64_t)n;
    memmove(nc->ibuf, nc->ibuf + len, nc->ilen - len);
    nc->ilen -= len;
    if (nc->in_eof && nc->ilen == 0)
        arm_wait(nc);
    return true;
}

/* ---- socket -> rx ---------------------------------------------------------- */

static bool same_addr(const ss_addr *a, const ss_addr *b)
{
    return a->len == b->len && memcmp(&a->sa, &b->sa, a->len) == 0;
}

static bool step_recv(ss_nc *nc)
{
    if (!nc->sock || nc->rxpos < nc->rxlen || nc->sock_eof || !nc->sock_rd)
        return false;
    nc->rxpos = nc->rxlen = 0;
    if (!nc->dgram) {
        ssize_t n = ss_sock_recv(nc->sock, nc->rx, nc->rxcap);
        if (n == -EAGAIN) {
            nc->sock_rd = false;
            return false;
        }
        if (n <= 0) {
            /* End of stream, or an error once what came before is out. */
            nc->sock_eof = true;
            nc->late_err = (int)n;
            return true;
        }
        nc->rxlen = (size_t)n;
        nc->received += (uint64_t)n;
        return true;
    }

    ss_addr from;
    memset(&from, 0, sizeof from);
    bool trunc = false;
    ssize_t n = ss_sock_recvfrom(nc->sock, nc->rx, nc->rxcap, &from, &trunc);
    if (n < 0)
        return io_failed(nc, n, &nc->sock_rd, SS_NC_AT_RECV);
    nc->rxlen = (size_t)n;
    nc->hex_off = 0; /* each datagram is dumped from offset 0 */
    nc->received += (uint64_t)n;
    if (nc->o.reply_to_sender && from.len > 0 &&
        (!nc->have_from || !same_addr(&from, &nc->last_from))) {
        nc->last_from = from;
        nc->have_from = true;
        ss_nc_event ev = {.type = SS_NC_NEW_SENDER, .sock = nc->sock,
                          .from = &nc->last_from};
        emit(nc, &ev);
    }
    if (trunc) {
        ss_nc_event ev = {.type = SS_NC_TRUNCATED, .sock = nc->sock,
                          .from = &from, .len = (size_t)n};
        emit(nc, &ev);
    }
    if (nc->in_eof && nc->ilen == 0 && ss_timer_active(&nc->wait))
        arm_wait(nc); /* a reply: wait for silence again */
    return true;
}

/* ---- rx -> obuf ------------------------------------------------------------ */

static bool step_format(ss_nc *nc)
{
    bool moved = false;
    while (nc->rxpos < nc->rxlen) {
        size_t room = SS_NC_OUTBUF - nc->olen;
        if (!nc->o.hex) {
            size_t n = nc->rxlen - nc->rxpos;
            if (room == 0)
                break;
            if (n > room)
                n = room;
            memcpy(nc->obuf + nc->olen, nc->rx + nc->rxpos, n);
            nc->olen += n;
            nc->rxpos += n;
            moved = true;
            continue;
        }
        if (room < SS_HEXDUMP_LINE_MAX + 8) /* + room for a 16-digit offset */
            break;
        size_t n = nc->rxlen - nc->rxpos;
        if (n > 16)
            n = 16;
        int w = ss_hexdump_line(nc->rx + nc->rxpos, n, nc->hex_off,
                                (char *)nc->obuf + nc->olen, room);
        if (w < 0)
            break;
        nc->olen += (size_t)w;
        nc->rxpos += n;
        nc->hex_off += n;
        moved = true;
    }
    return moved;
}

/* ---- obuf -> out_fd -------------------------------------------------------- */

/* Write up to n bytes to a descriptor the loop watches (pipe, socket,
 * terminal) without ever blocking. It is shared with whoever started us,
 * so its O_NONBLOCK flag is not ours to set; instead each write asks the
 * kernel not to wait (RWF_NOWAIT): it takes as much as fits -- a whole
 * socket read into an empty pipe -- or fails with EAGAIN, and we write on
 * until it does. Where the kernel refuses that for the descriptor
 * (EOPNOTSUPP: a terminal), write at most SS_NC_WRITE_CHUNK per readiness
 * report, which never blocks. */
static ssize_t write_nowait(struct fdend *e, const void *p, size_t n)
{
    if (!e->no_nowait) {
        struct iovec iov = {.iov_base = (void *)p, .iov_len = n};
        ssize_t w = pwritev2(e->fd, &iov, 1, -1, RWF_NOWAIT);
        if (w < 0 && errno == EAGAIN)
            e->ready = false; /* full: wait for the loop to say writable */
        if (w >= 0 || errno != EOPNOTSUPP)
            return w;
        e->no_nowait = true;
        e->ready = false;
        errno = EAGAIN; /* from now on, one chunk per readiness report */
        return -1;
    }
    e->ready = false;
    return write(e->fd, p, n > SS_NC_WRITE_CHUNK ? SS_NC_WRITE_CHUNK : n);
}

static bool step_output(ss_nc *nc)
{
    if (nc->opos == nc->olen || !(nc->out.ready || nc->out.always))
        return false;
    size_t n = nc->olen - nc->opos;
    ssize_t w = nc->out.always ? write(nc->out.fd, nc->obuf + nc->opos, n)
                               : write_nowait(&nc->out, nc->obuf + nc->opos, n);
    if (w < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return false;
        int err = -errno;
        nc->opos = nc->olen = 0; /* nowhere to put it */
        if (nc->sock)
            finish(nc, err, SS_NC_AT_OUTPUT);
        return true;
    }
    nc->opos += (size_t)w;
    if (nc->opos == nc->olen)
        nc->opos = nc->olen = 0;
    else if (nc->opos > SS_NC_OUTBUF / 2) {
        memmove(nc->obuf, nc->obuf + nc->opos, nc->olen - nc->opos);
        nc->olen -= nc->opos;
        nc->opos = 0;
    }
    return w > 0;
}

/* ---- the loop -------------------------------------------------------------- */

static void sock_cb(ss_sock *s, unsigned events, void *arg)
{
    ss_nc *nc = arg;
    if (events & (SS_READ | SS_HUP))
        nc->sock_rd = true;
    if (events & (SS_WRITE | SS_HUP))
        nc->sock_wr = true;
    progress(nc);
}

static bool wants_send(const ss_nc *nc)
{
    if (!nc->dgram)
        return nc->ipos < nc->ilen;
    if (dgram_ready(nc) == 0)
        return false;
    return !nc->o.reply_to_sender || nc->have_from;
}

static void update_interest(ss_nc *nc)
{
    fd_interest(nc, &nc->in, input_room(nc) > 0 ? SS_READ : 0);
    fd_interest(nc, &nc->out, nc->opos < nc->olen ? SS_WRITE : 0);
    if (!nc->sock)
        return;
    unsigned want = 0;
    if (nc->rxpos == nc->rxlen && !nc->sock_eof)
        want |= SS_READ;
    if (wants_send(nc))
        want |= SS_WRITE;
    if (want == nc->sock_want && nc->sock_watched)
        return;
    if (want == 0) {
        /* Unwatched, not paused: a paused socket can still report hang-up. */
        if (nc->sock_watched)
            ss_sock_unwatch(nc->sock);
        nc->sock_watched = false;
    } else if (ss_sock_watch(nc->sock, nc->loop, want, sock_cb, nc) == 0) {
        nc->sock_watched = true;
    }
    nc->sock_want = want;
}

/* Streams: the peer's EOF (or error) is seen and written out, and either
 * we are a server, or our own direction is closed too. */
static bool stream_over(const ss_nc *nc)
{
    if (!nc->sock || nc->dgram || !nc->sock_eof || nc->rxpos < nc->rxlen ||
        nc->opos < nc->olen)
        return false;
    return nc->o.end_on_peer_eof || nc->late_err < 0 || nc->shut_wr;
}

static void progress(ss_nc *nc)
{
    if (nc->busy)
        return;
    nc->busy = true;
    bool moved;
    do {
        moved = false;
        moved |= step_input(nc);
        moved |= step_send(nc);
        moved |= step_recv(nc);
        moved |= step_format(nc);
        moved |= step_output(nc);
        if (stream_over(nc))
            finish(nc, nc->late_err, nc->late_err ? SS_NC_AT_RECV : SS_NC_AT_NONE);
    } while (moved);
    update_interest(nc);
    nc->busy = false;

    if (nc->in_eof && !nc->in_eof_told) {
        nc->in_eof_told = true;
        ss_nc_event ev = {.type = SS_NC_INPUT_EOF, .sock = nc->sock};
        emit(nc, &ev);
    }
    if (nc->done_pending) {
        nc->done_pending = false;
        ss_nc_event ev = nc->done;
        emit(nc, &ev); /* last: the callback may attach the next socket */
    }
}

static void kick_cb(ss_loop *loop, void *arg)
{
    progress(arg);
}

/* ---- lifecycle ------------------------------------------------------------- */

int ss_nc_new(ss_loop *loop, const ss_nc_opts *o, ss_nc_cb cb, void *arg,
              ss_nc **out)
{
    if (o->recv_size == 0 || o->recv_size > SS_NC_RECV_SIZE_MAX)
        return -EINVAL;
    ss_nc *nc = calloc(1, sizeof *nc);
    if (!nc)
        return -ENOMEM;
    nc->loop = loop;
    nc->o = *o;
    nc->cb = cb;
    nc->arg = arg;
    nc->in = (struct fdend){.fd = o->in_fd};
    /* stdout is worth a first write before the loop reports it writable:
     * write_nowait() cannot block (and waits for a report if it must). */
    nc->out = (struct fdend){.fd = o->out_fd, .ready = true};
    nc->in_eof = o->in_fd < 0;
    nc->rxcap = o->recv_size > SS_NC_RECV_SIZE ? o->recv_size : SS_NC_RECV_SIZE;
    nc->ibuf = malloc(SS_NC_INBUF);
    nc->rx = malloc(nc->rxcap);
    nc->obuf = malloc(SS_NC_OUTBUF);
    if (!nc->ibuf || !nc->rx || !nc->obuf) {
        ss_nc_free(nc);
        return -ENOMEM;
    }
    ss_defer_init(&nc->kick, kick_cb, nc);
    ss_timer_init(&nc->wait, wait_cb, nc);
    /* Start reading input at once: a server takes stdin before a peer. */
    ss_loop_defer(loop, &nc->kick);
    *out = nc;
    return 0;
}

int ss_nc_attach(ss_nc *nc, ss_sock *s)
{
    if (nc->sock)
        return -EBUSY;
    nc->sock = s;
    nc->dgram = ss_sock_type(s) == SS_DGRAM;
    nc->sock_watched = false;
    nc->sock_want = 0;
    nc->sock_rd = nc->sock_wr = true;
    nc->sock_eof = false;
    nc->shut_wr = false;
    nc->late_err = 0;
    nc->rxpos = nc->rxlen = 0;
    nc->hex_off = 0;
    nc->have_from = false;
    nc->sent = nc->received = 0;
    /* A stream given datagram-sized receive buffers still reads in chunks. */
    if (!nc->dgram && nc->rxcap > SS_NC_RECV_SIZE)
        nc->rxcap = SS_NC_RECV_SIZE;
    if (nc->dgram && nc->o.recv_size < nc->rxcap)
        nc->rxcap = nc->o.recv_size;
    if (nc->dgram && nc->in_eof && nc->ilen == 0)
        arm_wait(nc);
    ss_loop_defer(nc->loop, &nc->kick);
    return 0;
}

void ss_nc_detach(ss_nc *nc)
{
    if (!nc->sock)
        return;
    if (nc->sock_watched)
        ss_sock_unwatch(nc->sock);
    nc->sock_watched = false;
    nc->sock = NULL;
    ss_timer_stop(nc->loop, &nc->wait);
    nc->done_pending = false;
}

bool ss_nc_input_eof(const ss_nc *nc)
{
    return nc->in_eof;
}

uint64_t ss_nc_bytes_sent(const ss_nc *nc)
{
    return nc->sent;
}

uint64_t ss_nc_bytes_received(const ss_nc *nc)
{
    return nc->received;
}

void ss_nc_free(ss_nc *nc)
{
    if (!nc)
        return;
    ss_nc_detach(nc);
    ss_loop_defer_cancel(nc->loop, &nc->kick);
    ss_timer_stop(nc->loop, &nc->wait);
    if (nc->in.registered)
        ss_loop_io_del(nc->loop, nc->in.fd);
    if (nc->out.registered)
        ss_loop_io_del(nc->loop, nc->out.fd);
    free(nc->ibuf);
    free(nc->rx);
    free(nc->obuf);
    free(nc);
}

/* ---- dialling -------------------------------------------------------------- */

struct ss_nc_dial {
    ss_loop *loop;
    const ss_backend *be;
    ss_addr *addrs;
    int n, i;
    int type;
    ss_sockopts opts;
    ss_addr bind_addr;
    bool have_bind;
    ss_nc_dial_cb cb;
    void *arg;
    ss_sock *s; /* the attempt in progress */
    int last_err;
    ss_defer start;
    ss_timer deadline; /* per attempt, when opts.timeout_ms > 0 */
};

static void dial_next(ss_nc_dial *d);

static void dial_ready(ss_sock *s, unsigned events, void *arg)
{
    ss_nc_dial *d = arg;
    int err = ss_sock_error(s);
    ss_sock_unwatch(s);
    ss_timer_stop(d->loop, &d->deadline);
    d->s = NULL;
    if (err == 0) {
        d->cb(s, 0, NULL, NULL, d->arg);
        return;
    }
    ss_sock_close(s);
    d->last_err = err;
    d->i++;
    dial_next(d);
}

/* The attempt took longer than --timeout: give up on this address. */
static void dial_timeout(ss_loop *loop, ss_timer *t, void *arg)
{
    ss_nc_dial *d = arg;
    if (!d->s)
        return;
    ss_sock_close(d->s);
    d->s = NULL;
    d->last_err = -ETIMEDOUT;
    d->i++;
    dial_next(d);
}

/* Try addrs[i], moving on while attempts fail at once. */
static void dial_next(ss_nc_dial *d)
{
    while (d->i < d->n) {
        ss_sock *s = NULL;
        const char *failed_opt = NULL;
        int err = ss_sock_connect_to(d->be, &d->addrs[d->i], d->type, &d->opts,
                                     d->have_bind ? &d->bind_addr : NULL, &s,
                                     &failed_opt);
        if (err == 0) {
            d->cb(s, 0, NULL, NULL, d->arg);
            return;
        }
        if (err == -EINPROGRESS && s) {
            d->s = s;
            err = ss_sock_watch(s, d->loop, SS_WRITE, dial_ready, d);
            if (err == 0 && d->opts.timeout_ms > 0)
                err = ss_timer_start(d->loop, &d->deadline, (uint64_t)d->opts.timeout_ms);
            if (err == 0)
                return;
            ss_sock_close(s);
            d->s = NULL;
        }
        if (failed_opt) {
            /* The option will not apply to the next address either. */
            d->cb(NULL, err, &d->addrs[d->i], failed_opt, d->arg);
            return;
        }
        d->last_err = err;
        d->i++;
    }
    d->cb(NULL, d->last_err ? d->last_err : -EHOSTUNREACH,
          d->n > 0 ? &d->addrs[d->n - 1] : NULL, NULL, d->arg);
}

static void dial_start_cb(ss_loop *loop, void *arg)
{
    dial_next(arg);
}

int ss_nc_dial_start(ss_loop *loop, const ss_backend *be, const ss_addr *addrs,
                     int n, int type, const ss_sockopts *o,
                     const ss_addr *bind_addr, ss_nc_dial_cb cb, void *arg,
                     ss_nc_dial **out)
{
    if (n <= 0)
        return -EINVAL;
    ss_nc_dial *d = calloc(1, sizeof *d);
    if (!d)
        return -ENOMEM;
    d->addrs = calloc((size_t)n, sizeof *d->addrs);
    if (!d->addrs) {
        free(d);
        return -ENOMEM;
    }
    memcpy(d->addrs, addrs, (size_t)n * sizeof *addrs);
    d->loop = loop;
    d->be = be;
    d->n = n;
    d->type = type;
    if (o)
        d->opts = *o;
    else
        ss_sockopts_init(&d->opts);
    if (bind_addr) {
        d->bind_addr = *bind_addr;
        d->have_bind = true;
    }
    d->cb = cb;
    d->arg = arg;
    ss_defer_init(&d->start, dial_start_cb, d);
    ss_timer_init(&d->deadline, dial_timeout, d);
    ss_loop_defer(loop, &d->start);
    *out = d;
    return 0;
}

void ss_nc_dial_free(ss_nc_dial *d)
{
    if (!d)
        return;
    ss_loop_defer_cancel(d->loop, &d->start);
    ss_timer_stop(d->loop, &d->deadline);
    if (d->s)
        ss_sock_close(d->s);
    free(d->addrs);
    free(d);
}
