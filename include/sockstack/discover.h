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
