/* sock_stack: the user-space stack as a backend of the one socket API.
 *
 * With this backend every sock.h call goes to sockstack's own TCP/IP stack
 * (stack.h) instead of the kernel: SS_STREAM is the stack's TCP, SS_DGRAM
 * its UDP, AF_INET only (other families: -EAFNOSUPPORT). Applications and
 * the server framework written against sock.h run on it unchanged.
 *
 * The stack must be driven by someone (an ss_tunnet in the reactor, or a
 * simulation); the backend needs from that driver the stack, its clock and
 * a way to have it polled soon after a socket call. Readiness is
 * level-triggered like the kernel backend's: the stack's socket callbacks
 * only schedule an ss_defer on the socket's loop, and the deferred task
 * calls the application while the watched events are ready, so
 * application callbacks never run inside ss_stack_input or ss_stack_poll.
 * Sockets must be watched on the loop that drives the stack.
 *
 * What differs from the kernel backend:
 *   - no blocking mode (ss_sock_set_blocking: SS_ENOTSUP), no descriptor
 *     (ss_sock_fd: -1), so no thread/fork server models;
 *   - options: --nodelay, --keepalive (idle, interval, count), --sndbuf,
 *     --rcvbuf (before connect or listen: the SYN carries the window),
 *     --tos; --reuseaddr and --timeout are accepted and do nothing (the
 *     stack has no bind-time conflict with TIME-WAIT, and no blocking calls
 *     for a timeout to bound); every other option is SS_ENOTSUP
 *     with its CLI name in *failed;
 *   - bind takes the wildcard or the stack's own address; a TCP port is
 *     taken at listen/connect, not at bind;
 *   - shutdown(SHUT_RD) only makes later receives return 0.
 */
#ifndef SOCKSTACK_SOCK_STACK_H
#define SOCKSTACK_SOCK_STACK_H

#include <stdint.h>

#include "sockstack/sock.h"
#include "sockstack/stack.h"
#include "sockstack/stackrun.h"

#include "sockstack/api.h"
SS_API_BEGIN

/* What the backend needs from whoever drives the stack. */
typedef struct ss_stack_driver {
    ss_stack *stack;
    uint32_t addr;               /* optional: 0, or the stack's IPv4 address
                                  * (host order; -EINVAL if it differs). The
                                  * backend asks the stack (ss_stack_addr). */
    uint64_t (*now)(void *arg);  /* the stack's clock, µs, never backwards */
    void (*kick)(void *arg);     /* have the stack polled soon (may be NULL
                                  * when the driver polls anyway) */
    void *arg;
} ss_stack_driver;

/* A backend over the stack drv describes (copied). Free it after every
 * socket opened on it is closed, and before the loop they were watched on
 * (a closed socket's memory goes in a deferred step of that loop, after
 * the callback that closed it; the free takes what the loop did not).
 * 0, -EINVAL or -ENOMEM. */
int ss_backend_stack_new(const ss_stack_driver *drv, ss_backend **out);
/* The same over a running tunnet: clock CLOCK_MONOTONIC µs (the tunnet's),
 * kick = ss_tunnet_kick. addr: 0 or the stack's address (host order). */
int ss_backend_stack_tunnet(ss_tunnet *net, uint32_t addr, ss_backend **out);
void ss_backend_stack_free(ss_backend *be);

SS_API_END

#endif
