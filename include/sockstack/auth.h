/* auth: shared-key HMAC-SHA256 challenge-response, sans-I/O.
 *
 * The key is the first line of a key file, without its newline, used as raw
 * bytes (python: key = b'...'). Exchange (docs/protocols.md, "auth"):
 *
 *   one-way (the classic tutorial; `serve echo --key-file`):
 *     S -> C  cs: 32 random bytes
 *     C -> S  HMAC-SHA256(key, cs): 32 bytes
 *   The server compares in constant time; on mismatch it closes without
 *   sending anything. Then the application protocol starts.
 *
 *   mutual (our own clients: exec, get, put, ls):
 *     S -> C  cs (32)
 *     C -> S  HMAC-SHA256(key, cs) (32) || cc: 32 random bytes
 *     S -> C  HMAC-SHA256(key, "sockstack-auth-v1 server" || cs || cc) (32)
 *   The client checks the server's proof in constant time. The label makes
 *   the server's proof a different function from the client's answer, so an
 *   impostor cannot obtain it by reflecting cc to a client as a challenge;
 *   including cs binds it to this connection.
 *
 * A state machine per side: feed received bytes with ss_auth_input(),
 * send what ss_auth_output() gives. It does no I/O and reads no clock, so it
 * can be fuzzed; ss_auth_run_fd() drives it on a blocking descriptor.
 */
#ifndef SOCKSTACK_AUTH_H
#define SOCKSTACK_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "sockstack/config.h"
#include "sockstack/dial.h"

#include "sockstack/api.h"
SS_API_BEGIN

typedef struct ss_auth_key {
    uint8_t bytes[SS_AUTH_KEY_MAX];
    size_t len;
} ss_auth_key;

/* Load the key: the file's first line without its newline ("\n" or
 * "\r\n"). Returns 0, SS_EKEYOWNER if the file's owner is not this
 * process's effective user, SS_EKEYPERM if the file is readable or
 * writable by group or others (like ssh: whoever can write it can replace
 * the key), SS_EKEYFMT if the first line is empty or
 * longer than SS_AUTH_KEY_MAX, or a negative errno (-ENOENT, -EACCES). */
int ss_auth_key_load(const char *path, ss_auth_key *out);
/* Use len raw bytes as the key (tests, embedding). SS_EKEYFMT if empty or
 * too long. */
int ss_auth_key_set(ss_auth_key *k, const void *bytes, size_t len);
/* Write 64 random hex characters and "\n" to path with mode 0600 (OpenSSL
 * RAND_bytes). Without force an existing file is -EEXIST. The file is
 * written under a temporary name and renamed, so it is never half-written. */
int ss_auth_keygen(const char *path, bool force);
/* Wipe a key from memory. */
void ss_auth_key_clear(ss_auth_key *k);

/* HMAC-SHA256(key, msg) into out[32]. Returns 0 or -EIO. */
int ss_auth_hmac(const ss_auth_key *k, const void *msg, size_t len,
                 uint8_t out[32]);

enum ss_auth_role { SS_AUTH_SERVER = 0, SS_AUTH_CLIENT = 1 };
enum ss_auth_mode { SS_AUTH_ONEWAY = 0, SS_AUTH_MUTUAL = 1 };

enum ss_auth_state {
    SS_AUTH_SEND_CHALLENGE, /* server: cs queued */
    SS_AUTH_WAIT_RESPONSE,  /* server: waiting for HMAC (+ cc) */
    SS_AUTH_WAIT_CHALLENGE, /* client: waiting for cs */
    SS_AUTH_WAIT_PROOF,     /* client (mutual): waiting for the server's proof */
    SS_AUTH_DONE,           /* authenticated; output may still hold bytes */
    SS_AUTH_FAILED,
};

#define SS_AUTH_LABEL_SERVER "sockstack-auth-v1 server"

typedef struct ss_auth {
    enum ss_auth_role role;
    enum ss_auth_mode mode;
    enum ss_auth_state state;
    const ss_auth_key *key;
    uint8_t cs[SS_AUTH_CHALLENGE_LEN];   /* server's challenge */
    uint8_t cc[SS_AUTH_CHALLENGE_LEN];   /* client's challenge (mutual) */
    uint8_t in[2 * SS_AUTH_CHALLENGE_LEN];
    size_t in_have, in_need;
    uint8_t out[2 * SS_AUTH_CHALLENGE_LEN];
    size_t out_len, out_off;
    int err;
} ss_auth;

/* Start a handshake. challenge: our 32 random bytes, or NULL to draw them
 * from the OS CSPRNG (OpenSSL RAND_bytes). Returns 0 or -EIO (no entropy).
 * key must outlive a. A server has its challenge to send at once. */
int ss_auth_init(ss_auth *a, enum ss_auth_role role, enum ss_auth_mode mode,
                 const ss_auth_key *key, const uint8_t *challenge);
/* Feed received bytes. Consumes only what the handshake needs, so bytes
 * after it (application data) are left to the caller. Returns the bytes
 * consumed, SS_EAUTH (wrong key: a server closes without a word; a client
 * reports an impostor server), or the same error again after a failure. */
ssize_t ss_auth_input(ss_auth *a, const void *data, size_t len);
/* Bytes to send now (pointer in *p, count returned; 0 when none). */
size_t ss_auth_output(const ss_auth *a, const uint8_t **p);
/* n of them were sent. */
void ss_auth_output_done(ss_auth *a, size_t n);
/* Bytes the machine still wants before it can move on (0 when done). */
size_t ss_auth_want(const ss_auth *a);
/* Authenticated and everything to send was sent. */
bool ss_auth_done(const ss_auth *a);
bool ss_auth_failed(const ss_auth *a);
const char *ss_auth_state_name(enum ss_auth_state s);

/* Run the handshake on a blocking or non-blocking fd until done, failure
 * or timeout_ms (-ETIMEDOUT). Reads only the handshake's bytes. Returns 0,
 * SS_EAUTH, -ETIMEDOUT, -ECONNRESET (peer closed: for a one-way server it
 * also means "client gave up"), or a negative errno. */
int ss_auth_run_fd(ss_auth *a, int fd, int timeout_ms);
/* The same on a stream (any backend, TLS or not), waiting only in its loop:
 * what the clients use. */
int ss_auth_run_stream(ss_auth *a, ss_stream *st, int timeout_ms);

/* ---- slowing down guessers ---------------------------------------------- */

/* Failures per address (port ignored), bounded: the slot unused longest is
 * reused. Time comes in as an argument (ms, any monotonic clock). */
typedef struct ss_auth_throttle_slot {
    uint8_t addr[16];
    uint8_t family; /* 0: free */
    uint32_t failures;
    uint64_t last_ms;
    uint64_t until_ms; /* no new attempt before this */
} ss_auth_throttle_slot;

typedef struct ss_auth_throttle {
    ss_auth_throttle_slot slot[SS_AUTH_THROTTLE_SLOTS];
    ss_auth_throttle_slot key; /* every failure with this key, any address */
} ss_auth_throttle;

void ss_auth_throttle_init(ss_auth_throttle *t);
/* How long (ms) a new attempt from sa must wait before it is served; 0
 * when it need not. */
uint64_t ss_auth_throttle_delay(ss_auth_throttle *t, const struct sockaddr *sa,
                                uint64_t now_ms);
/* Record a failure: the penalty doubles per failure from
 * SS_AUTH_THROTTLE_BASE_MS up to SS_AUTH_THROTTLE_MAX_MS. Returns the
 * failure count for that address. */
uint32_t ss_auth_throttle_fail(ss_auth_throttle *t, const struct sockaddr *sa,
                               uint64_t now_ms);
/* A success forgets the address (not the key's count). */
void ss_auth_throttle_ok(ss_auth_throttle *t, const struct sockaddr *sa);
/* How long (ms) any new attempt must wait because of the failures with
 * this key from all addresses together: none before there have been
 * SS_AUTH_THROTTLE_KEY_FREE, then SS_AUTH_THROTTLE_BASE_MS after that many,
 * doubling per further failure up to SS_AUTH_THROTTLE_MAX_MS; forgotten SS_AUTH_THROTTLE_FORGET_MS after the
 * last one. *failures (if not NULL) gets the count. */
uint64_t ss_auth_throttle_key_delay(ss_auth_throttle *t, uint64_t now_ms, uint32_t *failures);

SS_API_END

#endif
