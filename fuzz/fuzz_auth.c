/* libFuzzer: the server side of the auth handshake on arbitrary bytes, and
 * (byte 0 bit 6) the client side, which parses what a possibly hostile
 * server sends (its challenge, then its proof).
 * Byte 0: mode (one-way/mutual), chunk size, role, build. The rest is fed as what a
 * client sends, in chunks. Checks: never more consumed than offered or than
 * the handshake needs; a failed server never has bytes to send; success
 * only with the right answer (which random input essentially never has, so
 * the target also builds the right answer when byte 0's top bit is set and
 * then corrupts it at a chosen position). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sockstack/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t CS[32] = "fuzz-server-challenge-012345678";

static const uint8_t CC[32] = "fuzz-client-challenge-01234567";

/* The input after byte 0: whether to build the right answer, where to
 * corrupt it (flip), and the bytes fed to the side under test. */
struct fz_in {
    bool build;
    uint8_t flip;
    uint8_t in[4096];
    size_t len;
};

/* The client: in[0..32) is the server's challenge, then (mutual) its
 * proof. Checks: the answer is exactly HMAC(key, cs) (+ cc, mutual) and
 * appears only once the challenge is whole; never more consumed than the
 * handshake needs; a failed client has nothing to send; a mutual client
 * finishes only on the right proof (built when byte 0's top bit is set,
 * then corrupted at a chosen byte unless that byte is >= 32). */
static int client_side(struct fz_in *f, enum ss_auth_mode mode, size_t chunk,
                       const ss_auth_key *key)
{
    bool build = f->build;
    uint8_t flip = f->flip, *in = f->in;
    size_t len = f->len;
    bool correct = false;
    if (build && mode == SS_AUTH_MUTUAL && len >= 64) {
        uint8_t msg[sizeof SS_AUTH_LABEL_SERVER - 1 + 64];
        size_t l = sizeof SS_AUTH_LABEL_SERVER - 1;
        memcpy(msg, SS_AUTH_LABEL_SERVER, l);
        memcpy(msg + l, in, 32);
        memcpy(msg + l + 32, CC, 32);
        ss_auth_hmac(key, msg, sizeof msg, in + 32);
        correct = flip >= 32;
        if (!correct)
            in[32 + flip] ^= 0x01;
    }
    ss_auth c;
    if (ss_auth_init(&c, SS_AUTH_CLIENT, mode, key, CC) < 0)
        abort();
    const uint8_t *p;
    if (ss_auth_output(&c, &p) != 0)
        abort(); /* a client speaks only after the challenge */
    size_t need = mode == SS_AUTH_MUTUAL ? 64 : 32;
    size_t consumed = 0;
    bool answered = false;
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        ssize_t r = ss_auth_input(&c, in + off, n);
        if (r < 0) {
            if (!ss_auth_failed(&c) || ss_auth_output(&c, &p) != 0 || correct ||
                mode != SS_AUTH_MUTUAL || consumed + n < 64)
                abort();
            return 0;
        }
        if ((size_t)r > n)
            abort();
        consumed += (size_t)r;
        size_t out = ss_auth_output(&c, &p);
        if (out) {
            uint8_t want[64];
            ss_auth_hmac(key, in, 32, want);
            memcpy(want + 32, CC, 32);
            if (answered || consumed < 32 || out != (mode == SS_AUTH_MUTUAL ? 64u : 32u) ||
                memcmp(p, want, out))
                abort();
            answered = true;
            ss_auth_output_done(&c, out);
        }
        if ((size_t)r < n && c.state != SS_AUTH_DONE)
            abort();
    }
    if (consumed > need)
        abort();
    if (c.state == SS_AUTH_DONE) {
        if (consumed != need || !answered || (mode == SS_AUTH_MUTUAL && build && !correct))
            abort();
    } else if (len >= need) {
        abort(); /* enough bytes must end the handshake one way or another */
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static ss_auth_key key;
    if (!key.len)
        ss_auth_key_set(&key, "fuzz key", 8);
    enum ss_auth_mode mode = (data[0] & 1) ? SS_AUTH_MUTUAL : SS_AUTH_ONEWAY;
    size_t chunk = 1 + ((data[0] >> 1) & 31);
    static struct fz_in f;
    f.build = data[0] & 0x80;
    f.flip = data[1];
    f.len = size - 2 < sizeof f.in ? size - 2 : sizeof f.in;
    memcpy(f.in, data + 2, f.len);
    if (data[0] & 0x40)
        return client_side(&f, mode, chunk, &key);
    bool build = f.build;
    uint8_t flip = f.flip, *in = f.in;
    size_t len = f.len;
    bool correct = false;
    if (build && len >= 32) {
        ss_auth_hmac(&key, CS, 32, in);
        correct = flip >= 32;
        if (!correct)
            in[flip] ^= 0x01;
    }

    ss_auth s;
    if (ss_auth_init(&s, SS_AUTH_SERVER, mode, &key, CS) < 0)
        abort();
    const uint8_t *p;
    size_t out = ss_auth_output(&s, &p);
    if (out != 32 || memcmp(p, CS, 32))
        abort();
    ss_auth_output_done(&s, out);
    size_t need = mode == SS_AUTH_MUTUAL ? 64 : 32;
    size_t consumed = 0;
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        ssize_t c = ss_auth_input(&s, in + off, n);
        if (c < 0) {
            if (!ss_auth_failed(&s) || ss_auth_output(&s, &p) != 0)
                abort();
            if (correct)
                abort();
            return 0;
        }
        if ((size_t)c > n)
            abort();
        consumed += (size_t)c;
        if ((size_t)c < n && !ss_auth_done(&s) && s.state != SS_AUTH_DONE)
            abort();
    }
    if (consumed > need)
        abort();
    if (s.state == SS_AUTH_DONE) {
        if (consumed != need || (build && !correct))
            abort();
        out = ss_auth_output(&s, &p);
        if (out != (mode == SS_AUTH_MUTUAL ? 32u : 0u))
            abort();
    } else if (len >= need) {
        abort(); /* enough bytes must end the handshake one way or another */
    }
    return 0;
}
