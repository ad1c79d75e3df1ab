/* authsvc: put the shared-key handshake (sockstack/auth.h) in front of any
 * server service, as an optional layer.
 *
 * The wrapper is itself an ss_service. For every connection it sends the
 * challenge, checks the answer within the handshake timeout, and only then
 * hands the connection to the inner service: the inner on_open runs after
 * authentication and its on_data sees only bytes after the handshake, so
 * the inner service is unchanged ("echo exactly as before"). A failed or
 * timed-out peer is closed without a byte, logged with its address, and
 * its address is slowed down (ss_auth_throttle): its next connections wait
 * before they get a challenge. Failures also count against the key from
 * all addresses together, so rotating source addresses does not escape.
 * The throttle lives in memory shared (MAP_SHARED) by the server's
 * threads and, under the fork model, by its children: a failure a child
 * sees delays the next connection whichever child serves it.
 *
 * Context layout: the inner service's per-connection context comes first
 * (ss_conn_ctx() works for it unchanged); the wrapper's state follows.
 * Blocking (handle) services are wrapped too: the handshake runs over
 * ss_conn_read / ss_conn_write_all before handle().
 */
#ifndef SOCKSTACK_AUTHSVC_H
#define SOCKSTACK_AUTHSVC_H

#include <pthread.h>

#include "sockstack/auth.h"
#include "sockstack/server.h"

#include "sockstack/api.h"
SS_API_BEGIN

typedef struct ss_authsvc {
    ss_service svc;              /* first: what ss_server_new gets */
    const ss_service *inner;
    const ss_auth_key *key;
    enum ss_auth_mode mode;      /* one-way (tutorial clients) or mutual */
    unsigned timeout_ms;         /* handshake deadline */
    struct ss_authsvc_shared *sh; /* throttle and count, shared by threads
                                     and forked children */
} ss_authsvc;

/* Failed handshakes so far (all workers and children). */
uint64_t ss_authsvc_failures(ss_authsvc *w);

/* Fill w to wrap inner. timeout_ms 0 means SS_AUTH_TIMEOUT_SECS. w, inner
 * and key must outlive the server; pass &w->svc to ss_server_new. */
int ss_authsvc_init(ss_authsvc *w, const ss_service *inner,
                    const ss_auth_key *key, enum ss_auth_mode mode,
                    unsigned timeout_ms);
void ss_authsvc_destroy(ss_authsvc *w);

SS_API_END

#endif
