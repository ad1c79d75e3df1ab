/* frame: length-prefixed messages over a byte stream.
 *
 * TCP delivers bytes, not messages: one send() may arrive in many recv()s and
 * several sends in one ("sticky packets"). A frame is a length field followed
 * by that many payload bytes. Layouts, selectable by name:
 *
 *   be32  4-byte unsigned big-endian length (default)
 *   le32  4-byte unsigned little-endian length (python struct '<I' / 'i')
 *   be64  8-byte unsigned big-endian length
 *
 * Zero-length messages are valid. A length above the decoder's maximum is a
 * protocol error (SS_EFRAMESIZE); the claimed size is never allocated.
 *
 * Decoder memory: a message that arrives whole inside one fed chunk is
 * delivered straight from the caller's bytes (no copy). Otherwise its bytes
 * are collected in the decoder's one buffer, which grows geometrically only
 * as bytes actually arrive, never beyond the message's length and never
 * beyond the maximum; it is reused for every later message. So a peer that
 * claims 16 MiB and sends 10 bytes costs 10-ish bytes, not 16 MiB.
 * Messages are always delivered whole (never in pieces): services that move
 * bulk data send it as a sequence of bounded data frames.
 *
 * Encoder: ss_frame_batch collects several messages as an iovec array so
 * one writev()/sendmsg() sends them all, and tracks partial writes. Large
 * payloads are referenced, not copied (a header slot plus the caller's
 * pointer); payloads up to SS_FRAME_SMALL_MSG are copied with their header
 * into the batch's own buffer, where consecutive small messages share one
 * iovec.
 */
#ifndef SOCKSTACK_FRAME_H
#define SOCKSTACK_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "sockstack/config.h"
#include "sockstack/dial.h"

#include "sockstack/api.h"
SS_API_BEGIN

enum ss_frame_layout {
    SS_FRAME_BE32 = 0,
    SS_FRAME_LE32 = 1,
    SS_FRAME_BE64 = 2,
};

/* "be32", "le32", "be64" -> layout; SS_EFRAMEFMT for anything else. */
int ss_frame_layout_parse(const char *name, enum ss_frame_layout *out);
const char *ss_frame_layout_name(enum ss_frame_layout layout);
/* Bytes in the length field: 4 or 8. */
size_t ss_frame_header_len(enum ss_frame_layout layout);
/* Largest length the field can carry (UINT32_MAX or UINT64_MAX). */
uint64_t ss_frame_layout_limit(enum ss_frame_layout layout);
/* Write the length field for len into out (at least 8 bytes). Returns the
 * header length, or SS_EFRAMESIZE if len does not fit the layout. */
int ss_frame_header_write(enum ss_frame_layout layout, uint64_t len, uint8_t *out);
/* Read a length field (header_len bytes at p). */
uint64_t ss_frame_header_read(enum ss_frame_layout layout, const uint8_t *p);

/* ---- decoder ------------------------------------------------------------ */

/* Called once per complete message; payload is valid only during the call.
 * Return 0 to go on, 1 to pause (ss_frame_decode returns early so the caller
 * can apply backpressure), or a negative code to abort. */
typedef int (*ss_frame_cb)(const uint8_t *payload, size_t len, void *arg);

typedef struct ss_frame_decoder {
    enum ss_frame_layout layout;
    uint64_t max;       /* largest accepted payload */
    uint8_t hdr[8];     /* length field being collected */
    size_t hdr_have;
    bool in_body;       /* length known, collecting payload */
    uint64_t need;      /* payload length of the current message */
    uint8_t *buf;       /* payload being collected (one buffer, reused) */
    size_t cap, have;
    int err;            /* sticky: once failed, every call returns it */
    uint64_t messages;  /* delivered so far */
} ss_frame_decoder;

/* max == 0 means SS_FRAME_MAX_DEFAULT. Never fails (no allocation yet). */
void ss_frame_decoder_init(ss_frame_decoder *d, enum ss_frame_layout layout,
                           uint64_t max);
void ss_frame_decoder_free(ss_frame_decoder *d);
/* Feed len bytes; cb runs for every message they complete. Returns the
 * bytes consumed (len, or fewer if cb paused: feed the rest later), or
 * SS_EFRAMESIZE (a length above max), -ENOMEM, or cb's negative code. After
 * an error the decoder stays failed. */
ssize_t ss_frame_decode(ss_frame_decoder *d, const void *data, size_t len,
                        ss_frame_cb cb, void *arg);
/* Zero-copy receive for large messages: while a payload is being
 * collected, *p is where its next bytes belong and the return value how
 * many may go there (the buffer grows geometrically as needed, never past
 * the message's length); 0 when no payload is in progress (read into your
 * own buffer and use ss_frame_decode). read() straight into *p, then call
 * ss_frame_decoder_commit with the count. -ENOMEM if growing failed. */
ssize_t ss_frame_decoder_room(ss_frame_decoder *d, uint8_t **p);
/* n bytes were written at the pointer from ss_frame_decoder_room; delivers
 * the message (cb) when it is complete. 0, or cb's code / sticky error. */
int ss_frame_decoder_commit(ss_frame_decoder *d, size_t n, ss_frame_cb cb,
                            void *arg);
/* True between messages (nothing partial buffered): EOF here is clean,
 * EOF elsewhere means truncated input. */
bool ss_frame_decoder_idle(const ss_frame_decoder *d);
/* Bytes of the current partial message (header + payload) held so far. */
uint64_t ss_frame_decoder_pending(const ss_frame_decoder *d);

/* ---- encoder ------------------------------------------------------------ */

typedef struct ss_frame_batch {
    enum ss_frame_layout layout;
    uint64_t max;
    int n;                    /* messages added */
    int nhdr;                 /* header slots used (large messages) */
    size_t small_used;        /* bytes of small[] used */
    int iov_first;            /* first iovec not yet fully written */
    int iovcnt;
    size_t bytes;             /* bytes still to write */
    struct iovec iov[2 * SS_FRAME_BATCH_MAX];
    uint8_t hdr[SS_FRAME_BATCH_MAX][8];
    uint8_t small[SS_FRAME_BATCH_SMALL];
} ss_frame_batch;

void ss_frame_batch_init(ss_frame_batch *b, enum ss_frame_layout layout,
                         uint64_t max);
/* Forget everything added (after it was all written). */
void ss_frame_batch_reset(ss_frame_batch *b);
/* Append one message. A large payload must stay valid until it is
 * written (small ones are copied). Returns 0, -ENOSPC when the batch is
 * full (write it, then reset), or SS_EFRAMESIZE when len is above max.
 * Zero-length messages add a header only. */
int ss_frame_batch_add(ss_frame_batch *b, const void *payload, size_t len);
/* The iovecs still to write (after partial writes). */
const struct iovec *ss_frame_batch_iov(const ss_frame_batch *b, int *iovcnt);
size_t ss_frame_batch_pending(const ss_frame_batch *b);
/* Record that n bytes were written (n <= pending). */
void ss_frame_batch_consume(ss_frame_batch *b, size_t n);
/* Write everything with writev on fd (blocking or not). Returns bytes
 * written by this call, -EAGAIN if none could be, or a negative errno.
 * On a non-blocking fd call again when writable until pending is 0. */
ssize_t ss_frame_batch_writev(ss_frame_batch *b, int fd);

/* ---- blocking helpers (simple clients, process-per-connection) ---------- */

/* Write one message (header + payload, one writev) on a blocking fd. */
int ss_frame_write(int fd, enum ss_frame_layout layout, const void *payload,
                   size_t len);
/* Read one message from a blocking fd into a malloc'd buffer (*out, *len;
 * a zero-length message gives a non-NULL 1-byte buffer). Returns 1 for a
 * message, 0 at clean EOF before a header, -EPIPE for EOF inside a message
 * (truncated), SS_EFRAMESIZE, or a negative errno. The buffer grows as the
 * payload arrives, so a lying length costs nothing. */
int ss_frame_read(int fd, enum ss_frame_layout layout, uint64_t max,
                  uint8_t **out, size_t *len);
/* The same from a stream, waiting in its loop (TLS, the user-space stack). */
int ss_frame_read_stream(ss_stream *st, enum ss_frame_layout layout, uint64_t max,
                         uint8_t **out, size_t *len);

SS_API_END

#endif
