/* discard and source: the two simplest services, for sockstack serve and
 * `sockstack stack up --serve` (which runs them, and echo, through the
 * server framework on the user-space stack's backend of sock.h).
 *
 *   discard  (RFC 863) read and drop every byte / datagram; a stream ends
 *            when the client closes its side (the default on_eof).
 *   source   send opts->bytes bytes of a fixed pattern (ss_prng_fill,
 *            seeded with opts->seed; or zero bytes with opts->zeros, as a
 *            benchmark peer sends one fixed buffer, so that drawing the
 *            pattern is not part of what a throughput figure measures),
 *            then close first (an active close on
 *            the passive side), also after the client's FIN (a reader
 *            may half-close at once); what the client sends is dropped. Stream
 *            only. It writes until the connection's output queue is full
 *            (outbuf_max) and goes on at on_drain: the socket's send buffer
 *            sets the pace (backpressure by TCP).
 *
 * Options (through ss_server_opts.svc_ctx): source needs a const
 * ss_source_opts *; discard takes none. */
#ifndef SOCKSTACK_DISCARD_H
#define SOCKSTACK_DISCARD_H

#include <stdbool.h>
#include <stdint.h>

#include "sockstack/server.h"

#include "sockstack/api.h"
SS_API_BEGIN

typedef struct ss_source_opts {
    uint64_t bytes;   /* what each connection gets */
    uint64_t seed;    /* pattern seed (stack up uses the port) */
    bool zeros;       /* zero bytes instead of the pattern */
} ss_source_opts;

/* Stream and datagram callbacks. */
const ss_service *ss_discard_service(void);
/* Stream only; svc_ctx must be a const ss_source_opts *. */
const ss_service *ss_source_service(void);

SS_API_END

#endif
