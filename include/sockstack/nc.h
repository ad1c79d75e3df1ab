/* nc: the netcat engine behind `sockstack connect` and `sockstack listen`.
 *
 * An ss_nc bridges two plain descriptors (normally stdin and stdout) with
 * one ss_sock, driven by the reactor: bytes read from in_fd go to the
 * socket, bytes received go to out_fd (raw, or as a hex dump). It never
 * prints a message: whatever happens that a person should hear about is an
 * event for the caller (the CLI) to report.
 *
 * Streams: binary-safe in both directions. End of input half-closes the
 * socket (shutdown(SHUT_WR)) once everything read has been sent. As in
 * OpenBSD nc, a client's conversation ends when both directions are closed
 * (the peer's EOF seen and written out, and ours sent); a server's
 * (end_on_peer_eof) ends as soon as its peer has closed.
 * Datagrams: one datagram per input line (the newline included) or, raw,
 * one per read; received datagrams are written out as they come. A
 * connected socket (client) sends to its peer; an unconnected one (server)
 * replies to the last sender. After end of input a client waits wait_ms of
 * silence for the last replies, then the conversation ends.
 *
 * Memory is bounded: one input buffer, one receive buffer and one output
 * buffer per ss_nc (sizes in sockstack/config.h). Nothing more is read from
 * in_fd than the socket has taken, and nothing more is received than out_fd
 * has taken (backpressure both ways).
 *
 * Descriptors are used as they are (their O_NONBLOCK flag is not changed):
 * after the loop reports readiness the engine does one read, or one write of
 * at most PIPE_BUF bytes, which cannot block on a pipe, tty or socket.
 * Regular files and /dev/null (which epoll refuses) are always ready.
 */
#ifndef SOCKSTACK_NC_H
#define SOCKSTACK_NC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sockstack/reactor.h"
#include "sockstack/sock.h"

#include "sockstack/api.h"
SS_API_BEGIN

typedef struct ss_nc ss_nc;

typedef struct ss_nc_opts {
    int in_fd;          /* read and sent; -1 for no input */
    int out_fd;         /* what is received goes here */
    bool hex;           /* write a hex dump (hexdump -C style) instead */
    bool raw;           /* datagrams: one per read, not one per line */
    bool end_on_peer_eof; /* streams: done when the peer closes, even while
                           * input goes on (a listener serving one peer) */
    bool reply_to_sender; /* datagrams on an unconnected socket: send to
                           * the last sender (nothing is sent before one) */
    int wait_ms;        /* datagrams: silence after end of input before the
                         * conversation ends; -1: never ends by itself */
    size_t recv_size;   /* longest datagram taken whole; longer ones are
                         * cut to this size and reported (SS_NC_TRUNCATED) */
} ss_nc_opts;

/* Where an error happened (for the caller's message). */
enum ss_nc_where {
    SS_NC_AT_NONE = 0,
    SS_NC_AT_INPUT,   /* read(in_fd) */
    SS_NC_AT_OUTPUT,  /* write(out_fd) */
    SS_NC_AT_SEND,    /* send/sendto/shutdown on the socket */
    SS_NC_AT_RECV,    /* recv/recvfrom on the socket */
};

enum ss_nc_event_type {
    /* The conversation on the current socket is over: err 0 (peer closed,
     * or datagram wait elapsed) or a negative code at `where`. The engine
     * has let go of the socket (unwatched it; the caller closes it). */
    SS_NC_DONE = 1,
    /* A datagram from `from` was longer than recv_size: `len` bytes kept. */
    SS_NC_TRUNCATED,
    /* Datagrams, reply_to_sender: the first datagram from a new sender. */
    SS_NC_NEW_SENDER,
    /* End of input reached (the socket is, or will be, half-closed). */
    SS_NC_INPUT_EOF,
};

typedef struct ss_nc_event {
    enum ss_nc_event_type type;
    int err;
    enum ss_nc_where where;
    ss_sock *sock;        /* the socket concerned */
    const ss_addr *from;  /* TRUNCATED, NEW_SENDER */
    size_t len;           /* TRUNCATED */
} ss_nc_event;

typedef void (*ss_nc_cb)(ss_nc *nc, const ss_nc_event *ev, void *arg);

/* Defaults: stdin/stdout, raw bytes, lines, wait 1 s, recv_size 65536. */
void ss_nc_opts_init(ss_nc_opts *o);

/* A new engine on loop. cb gets every event; it is never called from inside
 * an ss_nc_* call, only from the loop. Returns 0 or a negative code. */
int ss_nc_new(ss_loop *loop, const ss_nc_opts *o, ss_nc_cb cb, void *arg,
              ss_nc **out);
/* Start bridging with s (connected stream, or datagram socket). The engine
 * does not own s. One socket at a time: -EBUSY while one is attached.
 * Input already read (and end of input) carries over from a previous one. */
int ss_nc_attach(ss_nc *nc, ss_sock *s);
/* Let go of the current socket now (unwatch it); no DONE event follows. */
void ss_nc_detach(ss_nc *nc);
/* Whether end of input has been seen. */
bool ss_nc_input_eof(const ss_nc *nc);
/* Bytes sent and received on the current (or last) socket. */
uint64_t ss_nc_bytes_sent(const ss_nc *nc);
uint64_t ss_nc_bytes_received(const ss_nc *nc);
/* Detach and free; in_fd and out_fd are left open. */
void ss_nc_free(ss_nc *nc);

/* ---- hex dump ------------------------------------------------------------ */

/* Bytes one ss_hexdump_line() writes at most, with its newline and NUL. */
#define SS_HEXDUMP_LINE_MAX 80

/* One `hexdump -C` line for up to 16 bytes at offset off:
 * "00000000  68 65 6c 6c 6f 0a                                 |hello.|\n".
 * Returns the length written (without the NUL) or -ENOSPC. */
int ss_hexdump_line(const void *data, size_t len, uint64_t off, char *buf,
                    size_t cap);

/* ---- dialling ------------------------------------------------------------ */

/* Connecting without blocking, trying each resolved address in turn. */
typedef struct ss_nc_dial ss_nc_dial;
/* s: the connected socket (caller owns it) or NULL; err: 0 or the code of
 * the last attempt; failed: the address that attempt went to; failed_opt:
 * the CLI name of a socket option that could not be applied, or NULL. */
typedef void (*ss_nc_dial_cb)(ss_sock *s, int err, const ss_addr *failed,
                              const char *failed_opt, void *arg);

/* Start connecting to addrs[0..n) in order with type SS_STREAM or SS_DGRAM,
 * options o and optional local bind_addr. cb runs once, from the loop.
 * o->timeout_ms > 0 also bounds each attempt (then -ETIMEDOUT, next one):
 * SO_SNDTIMEO alone means nothing to a non-blocking connect.
 * Returns 0 or a negative code (then cb never runs). */
int ss_nc_dial_start(ss_loop *loop, const ss_backend *be, const ss_addr *addrs,
                     int n, int type, const ss_sockopts *o,
                     const ss_addr *bind_addr, ss_nc_dial_cb cb, void *arg,
                     ss_nc_dial **out);
/* Cancel (if still running) and free. */
void ss_nc_dial_free(ss_nc_dial *d);

SS_API_END

#endif
