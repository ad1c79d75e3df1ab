/* echo: the echo service (TCP, Unix stream, UDP) for sockstack serve.
 *
 * Stream: every byte that arrives is sent back as it arrives, any size,
 * binary-safe; EOF from the client ends the connection after the last byte
 * went back. Datagram: one reply datagram per request, to its sender.
 * Options (through ss_server_opts.svc_ctx, a const ss_echo_opts *; NULL
 * means plain echo):
 *   upper     ASCII letters a-z become A-Z; every other byte is unchanged.
 *   sockperf  speak sockperf's message format instead (see docs/protocols.md):
 *             14-byte big-endian header (u64 sequence, u16 flags, u32 total
 *             length); messages with the pong-request flag (0x2) from a
 *             client (0x1) come back with the client flag cleared; others
 *             (and warm-up messages, 0x4) are consumed silently.
 */
#ifndef SOCKSTACK_ECHO_H
#define SOCKSTACK_ECHO_H

#include <stdbool.h>

#include "sockstack/server.h"

#include "sockstack/api.h"
SS_API_BEGIN

typedef struct ss_echo_opts {
    bool upper;
    bool sockperf;
} ss_echo_opts;

/* The service (stream and datagram callbacks). */
const ss_service *ss_echo_service(void);

/* sockperf header layout. */
enum {
    SS_SOCKPERF_HDR = 14,
    SS_SOCKPERF_CLIENT = 0x1,
    SS_SOCKPERF_PONG = 0x2,
    SS_SOCKPERF_WARMUP = 0x4,
    SS_SOCKPERF_MAX = 65536, /* largest message accepted (bytes, header incl.) */
};

SS_API_END

#endif
