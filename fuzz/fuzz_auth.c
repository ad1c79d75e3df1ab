/* libFuzzer: the server side of the auth handshake on arbitrary bytes.
 * Byte 0: mode (one-way/mutual) and chunk size. The rest is fed as what a
 * client sends, in chunks. Checks: never more consumed than offered or than
 * the handshake needs; a failed server never has bytes to send; success
 * only with the right answer (which random input essentially never has, so
 * the target also builds the right answer when byte 0's top bit is set and
 * then corrupts it at a chosen position). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sockstack/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t CS[32] = "fuzz-server-challenge-012345678";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static ss_auth_key key;
    if (!key.len)
        ss_auth_key_set(&key, "fuzz key", 8);
    enum ss_auth_mode mode = (data[0] & 1) ? SS_AUTH_MUTUAL : SS_AUTH_ONEWAY;
    size_t chunk = 1 + ((data[0] >> 1) & 31);
    bool build = data[0] & 0x80;
    uint8_t flip = data[1];
    data += 2;
    size -= 2;

    uint8_t in[4096];
    size_t len = size < sizeof in ? size : sizeof in;
    memcpy(in, data, len);
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
