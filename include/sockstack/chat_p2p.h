/* chat_p2p: a point-to-point chat session between two clients of one chat
 * server, through NAT where it can be, on sock/ and the reactor.
 *
 * The server is directory and rendezvous (docs/protocols.md, "chat",
 * "Point-to-point"): after /connect NICK both clients get "P2P intro ID
 * PEER KEY SIDE". Each then starts a session with that ID, SIDE and KEY:
 *
 *   1. listen on a port P (SO_REUSEADDR + SO_REUSEPORT) and, from the same
 *      P, open a probe connection to the server: "/p2p hello ID SIDE KEY
 *      LOCAL-CANDIDATES". The server answers with the public address it saw
 *      and, once both sides said hello, the other side's public address
 *      and candidates ("P2P peer ...").
 *   2. direct: side 0 connects to each of the peer's local candidates;
 *   3. hole punching: both sides connect from P to the peer's public
 *      address at once (RFC 9293 simultaneous open when the SYNs cross),
 *      retrying until punch_ms;
 *   4. UDP hole punching: from one UDP socket, "P2PU hello" datagrams
 *      (with an HMAC of the key) to the server's UDP port of the same
 *      number until it names the peer's public UDP address, then probes
 *      to that address until a datagram comes back from it; the socket,
 *      connected to the peer, then carries our user-space TCP/IP stack
 *      (stackrun's tunnet, one datagram per IPv4 packet): side 0
 *      (10.255.0.1) listens, side 1 (10.255.0.2) connects, and the stream
 *      is that TCP connection (sock_stack), retried until udp_ms;
 *   5. relay: both open "/p2p relay ID SIDE KEY" connections to the server,
 *      which then passes bytes between them.
 *   Every connection that opens is authenticated with the introduction's
 *   key (HMAC-SHA256 mutual challenge-response, proto/auth; side 0 is the
 *   auth server): a third party without the key is refused. Side 0 keeps
 *   the first authenticated one and says "USE"; the rest are closed.
 *
 * On the chosen stream: "MSG TEXT" lines, and files as in the server's
 * protocol ("/offer"-free): "FILE ID SIZE SHA256 NAME", the receiver's
 * "RESUME ID OFFSET" (what an interrupted earlier try left), then
 * "/chunk ID OFFSET BASE64" lines from there and "/done ID"; the receiver
 * checks size and SHA-256 before the file appears.
 */
#ifndef SOCKSTACK_CHAT_P2P_H
#define SOCKSTACK_CHAT_P2P_H

#include <stdbool.h>
#include <stdint.h>

#include "sockstack/reactor.h"

#include "sockstack/api.h"
SS_API_BEGIN

typedef struct ss_chat_p2p ss_chat_p2p;

typedef struct ss_chat_p2p_cb {
    /* Progress and the path chosen ("direct to 10.0.1.3:40001", "hole
     * punched with 203.0.113.12:40001", "UDP hole punched with
     * 203.0.113.12:40001 (user-space TCP)", "relayed by the server"). */
    void (*status)(void *arg, const char *text);
    /* A chat line from the peer. */
    void (*text)(void *arg, const char *text);
    /* A file from the peer arrived (err 0, path) or failed (err < 0). */
    void (*file)(void *arg, int err, const char *path);
    /* A file we sent was received whole (err 0) or failed. */
    void (*sent)(void *arg, int err, const char *name);
    /* The session ended (err 0: the peer closed; or why it failed). */
    void (*closed)(void *arg, int err);
} ss_chat_p2p_cb;

typedef struct ss_chat_p2p_opts {
    ss_loop *loop;
    const char *server_host, *server_port;
    int64_t id;
    int side;               /* 0: asked (/connect), 1: was asked */
    const char *key;        /* from the introduction */
    const char *dir;        /* where received files go */
    const char *nick;       /* ours, in the MSG lines we send (NULL: "-") */
    unsigned direct_ms;     /* how long direct tries run before punching */
    unsigned punch_ms;      /* how long TCP punching runs before UDP */
    unsigned udp_ms;        /* how long UDP punching runs before the relay
                             * (and, once punched, how long the stream over
                             * it may take to open) */
    bool no_direct, no_punch, no_udp; /* skip a step (chat --p2p-skip) */
    ss_chat_p2p_cb cb;
    void *arg;
} ss_chat_p2p_opts;

void ss_chat_p2p_opts_init(ss_chat_p2p_opts *o);
int ss_chat_p2p_start(ss_chat_p2p **out, const ss_chat_p2p_opts *o);
/* Queue a chat line (-ENOTCONN before the path is up, -ENOBUFS when the
 * bounded queue is full). */
int ss_chat_p2p_send_text(ss_chat_p2p *p, const char *text);
/* Offer a file; one at a time (-EBUSY). */
int ss_chat_p2p_send_file(ss_chat_p2p *p, const char *path);
/* "" until connected, then how (the label of status's "connected: "). */
const char *ss_chat_p2p_path(const ss_chat_p2p *p);
/* Bytes sent and received on the chosen stream (after it closed: until
 * then), the authentication included; over the relay, what the server
 * passed on, without the "/p2p relay" step itself. */
void ss_chat_p2p_bytes(const ss_chat_p2p *p, uint64_t *sent, uint64_t *received);
bool ss_chat_p2p_up(const ss_chat_p2p *p);
void ss_chat_p2p_free(ss_chat_p2p *p);

SS_API_END

#endif
