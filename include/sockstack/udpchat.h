/* udpchat: chat over UDP datagrams (issue 4), sans-I/O.
 *
 * A datagram is one line of UTF-8 text: "UC1 SEQ NICK TEXT" (no newline).
 * SEQ counts the sender's messages from 1; SEQ 0 is a hello (keep-alive),
 * never relayed. The relay adds an address only after a return-path check:
 * a first hello (padded to at least 21 bytes) is answered "UC1C COOKIE",
 * and the hello "UC1 0 NICK cookie=COOKIE" from the same address then
 * registers it, owning NICK while it lives. The relay forwards each message
 * from a registered address under its own nick, unchanged, to every peer
 * heard from in the last SS_UDPCHAT_PEER_TTL seconds, except its sender.
 * Receivers count per sender: loss (a gap in SEQ), late arrivals (a SEQ
 * that was counted lost, i.e. reordering), duplicates. See
 * docs/protocols.md ("udp-chat").
 */
#ifndef SOCKSTACK_UDPCHAT_H
#define SOCKSTACK_UDPCHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sockstack/sock.h"

#include "sockstack/api.h"
SS_API_BEGIN

/* Build a datagram into buf (cap >= SS_UDPCHAT_MAX_DGRAM). Returns its
 * length, -EMSGSIZE if it would exceed max bytes (the sender refuses it),
 * or -EINVAL for a bad nick or non-UTF-8 text. */
int ss_udpchat_encode(char *buf, size_t cap, size_t max, uint32_t seq,
                      const char *nick, const char *text);

/* Parse a datagram. nick gets a NUL-terminated copy (cap >= 25); *text
 * points into buf (not NUL-terminated, *text_len bytes). 0 or SS_EBADPKT. */
int ss_udpchat_decode(const void *buf, size_t len, uint32_t *seq, char *nick,
                      size_t nick_cap, const char **text, size_t *text_len);

/* ---- receiver accounting ---------------------------------------------- */

typedef struct ss_udpchat_stats {
    uint64_t received;   /* distinct messages shown */
    uint64_t lost;       /* still missing (gaps minus late arrivals) */
    uint64_t reordered;  /* arrived after a later one */
    uint64_t duplicates;
    uint64_t truncated;  /* datagrams longer than the receive buffer */
    uint64_t malformed;
} ss_udpchat_stats;

enum ss_udpchat_verdict {
    SS_UDPCHAT_NEW = 0,   /* next in order (or first seen from this sender) */
    SS_UDPCHAT_GAP = 1,   /* new, but *missing messages before it were lost */
    SS_UDPCHAT_LATE = 2,  /* one of the missing ones: out of order */
    SS_UDPCHAT_DUP = 3,   /* seen before: not shown again */
};

typedef struct ss_udpchat_rx ss_udpchat_rx;
int ss_udpchat_rx_new(ss_udpchat_rx **out);
void ss_udpchat_rx_free(ss_udpchat_rx *rx);
/* Account for message seq from nick; *missing gets the gap size for
 * SS_UDPCHAT_GAP. Returns a verdict. */
int ss_udpchat_rx_seen(ss_udpchat_rx *rx, const char *nick, uint32_t seq,
                       uint32_t *missing);
ss_udpchat_stats *ss_udpchat_rx_stats(ss_udpchat_rx *rx);

/* ---- relay (the server) ----------------------------------------------- */

typedef struct ss_udpchat_relay ss_udpchat_relay;
/* Send one datagram to `to` (the glue's sendto). */
typedef void (*ss_udpchat_send_fn)(void *arg, const void *data, size_t len,
                                   const ss_addr *to);

int ss_udpchat_relay_new(ss_udpchat_relay **out, unsigned peer_ttl_ms, size_t max_peers);
void ss_udpchat_relay_free(ss_udpchat_relay *r);
/* One datagram from `from` at monotonic now_ms: remember the peer and
 * relay it. Returns how many peers it went to, or SS_EBADPKT (dropped). */
int ss_udpchat_relay_input(ss_udpchat_relay *r, const void *data, size_t len,
                           const ss_addr *from, uint64_t now_ms,
                           ss_udpchat_send_fn send, void *arg);
size_t ss_udpchat_relay_peers(const ss_udpchat_relay *r);
typedef struct ss_udpchat_relay_stats {
    uint64_t cookies;      /* cookie answers sent (each <= its hello) */
    uint64_t registered;   /* addresses added after a valid cookie */
    uint64_t refused_nick; /* hellos for a nick another address owns */
    uint64_t dropped;      /* malformed, unregistered, or wrong nick */
    uint64_t relayed;      /* datagrams sent on to peers */
} ss_udpchat_relay_stats;
const ss_udpchat_relay_stats *ss_udpchat_relay_stats_get(const ss_udpchat_relay *r);

/* The datagram-style service for the server framework; svc_ctx must be an
 * ss_udpchat_relay. */
struct ss_service;
const struct ss_service *ss_udpchat_service(void);

SS_API_END

#endif
