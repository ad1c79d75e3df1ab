/* discover: service discovery by UDP broadcast (issue 4).
 *
 * A prober broadcasts the datagram "SSDISCOVER1" to the discovery port
 * (SS_DISCOVER_PORT unless told otherwise). Every announcer listening there
 * answers the prober, unicast, with one datagram per service:
 *     "SSSERVICE1 NAME PORT PROTO"      e.g. "SSSERVICE1 chat 7000 tcp"
 * The address of the service is the source address of that answer. See
 * docs/protocols.md ("discovery").
 */
#ifndef SOCKSTACK_DISCOVER_H
#define SOCKSTACK_DISCOVER_H

#include <stdbool.h>
#include <stddef.h>

#include "sockstack/reactor.h"
#include "sockstack/sock.h"

#include "sockstack/api.h"
SS_API_BEGIN

#define SS_DISCOVER_PROBE "SSDISCOVER1"

/* "SSSERVICE1 NAME PORT PROTO" into buf; its length or -ENOSPC/-EINVAL. */
int ss_discover_answer_format(char *buf, size_t cap, const char *name, int port,
                              const char *proto);
/* Parse an answer (name cap >= 32, proto cap >= 8). 0 or SS_EBADPKT. */
int ss_discover_answer_parse(const void *buf, size_t len, char *name, size_t name_cap,
                             int *port, char *proto, size_t proto_cap);
bool ss_discover_is_probe(const void *buf, size_t len);

/* ---- the prober (the client of `sockstack discover`) ---- */

/* One distinct answer to a probe. */
typedef struct ss_discover_found {
    char name[32];
    char addr[SS_ADDR_STRLEN]; /* the answer's source address, without its port */
    int port;
    char proto[8];
} ss_discover_found;
typedef void (*ss_discover_cb)(const ss_discover_found *f, void *arg);

/* Send SS_DISCOVER_PROBE to dst from a new UDP socket of the kernel
 * (0.0.0.0, broadcast allowed), then for wait_ms call cb once per distinct
 * answer (name, address, port, proto); repeats, malformed and oversized
 * datagrams are dropped, and at most SS_DISCOVER_FOUND_MAX answers are
 * told. Waits only in loop. Returns how many were told, or a negative
 * code (e.g. the probe could not be sent: then cb was never called). */
int ss_discover_probe(ss_loop *loop, const ss_addr *dst, unsigned wait_ms, ss_discover_cb cb,
                      void *arg);

/* An announcer: a thread answering probes on disc_port (0.0.0.0, with
 * SO_REUSEADDR so several services on one host can all answer). */
typedef struct ss_announcer ss_announcer;
int ss_announcer_start(ss_announcer **out, const char *name, int port,
                       const char *proto, int disc_port);
/* Probes answered so far. */
unsigned long ss_announcer_answered(const ss_announcer *a);
void ss_announcer_stop(ss_announcer *a);

SS_API_END

#endif
