/* libFuzzer: the frame decoder and encoder on arbitrary bytes.
 * Byte 0 picks the layout and a small maximum, byte 1 a chunk size, bytes
 * 2-5 a script for the callback. The rest is:
 *   - decoded once whole, once in chunks and once through the zero-copy
 *     room/commit path: all must agree exactly (same messages, same
 *     error), and memory must stay within the maximum;
 *   - decoded again with a callback that pauses where the script says
 *     (the caller feeds the rest later) and may return an error at one
 *     message: the messages before it must be the same, the error must be
 *     returned and stay (sticky), and without it the result must be the
 *     whole decode's;
 *   - read as messages (a length byte, then that many payload bytes) that
 *     the encoder batches and writes out in chunks (partial writes, full
 *     batches flushed): decoding what it wrote must give back exactly the
 *     messages it accepted, and it must refuse exactly those above max. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sockstack/err.h"
#include "sockstack/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct acc {
    uint64_t n;
    uint64_t bytes;
    uint32_t hash;
};

static int on_msg(const uint8_t *p, size_t len, void *arg)
{
    struct acc *a = arg;
    a->n++;
    a->bytes += len;
    for (size_t i = 0; i < len; i++)
        a->hash = a->hash * 16777619u ^ p[i];
    a->hash = a->hash * 16777619u ^ (uint32_t)len;
    return 0;
}

/* on_msg for the first `limit` messages only (the expected prefix). */
struct prefix {
    struct acc a;
    uint64_t limit;
};

static int on_msg_prefix(const uint8_t *p, size_t len, void *arg)
{
    struct prefix *x = arg;
    if (x->a.n < x->limit)
        on_msg(p, len, &x->a);
    return 0;
}

/* A callback that pauses when bit (calls % 32) of the script is set and
 * returns ERR_CODE at call err_at (0: never). */
#define ERR_CODE (-77)
struct pacer {
    struct acc a;
    uint32_t script;
    uint64_t calls, err_at;
    bool paused;    /* it returned 1 in this ss_frame_decode call */
};

static int on_msg_paced(const uint8_t *p, size_t len, void *arg)
{
    struct pacer *pc = arg;
    if (pc->paused)
        abort();   /* called again after it paused */
    pc->calls++;
    if (pc->calls == pc->err_at)
        return ERR_CODE;
    on_msg(p, len, &pc->a);
    pc->paused = pc->script >> (pc->calls % 32) & 1;
    return pc->paused;
}

static void check_paced(enum ss_frame_layout layout, uint64_t max, const uint8_t *data,
                        size_t len, size_t chunk, uint32_t script, const struct acc *aw,
                        ssize_t rw)
{
    struct pacer pc = {.script = script, .err_at = script >> 27};   /* 0..31 */
    ss_frame_decoder d;
    ss_frame_decoder_init(&d, layout, max);
    ssize_t r = 0;
    for (size_t off = 0; off < len;) {
        size_t n = len - off < chunk ? len - off : chunk;
        pc.paused = false;
        r = ss_frame_decode(&d, data + off, n, on_msg_paced, &pc);
        if (r < 0)
            break;
        if ((size_t)r > n || (r == 0 && n > 0))
            abort();   /* a pause consumes the message that paused */
        off += (size_t)r;
    }
    if (pc.err_at && pc.err_at <= aw->n) {
        /* The error came before anything could fail: it is returned,
         * it stays, and the messages before it are the whole decode's. */
        pc.paused = false;
        if (r != ERR_CODE || ss_frame_decode(&d, data, len ? 1 : 0, on_msg_paced, &pc) != ERR_CODE)
            abort();
        struct prefix x = {.limit = pc.err_at - 1};
        ss_frame_decoder w;
        ss_frame_decoder_init(&w, layout, max);
        ss_frame_decode(&w, data, len, on_msg_prefix, &x);
        ss_frame_decoder_free(&w);
        if (x.a.n != pc.a.n || x.a.hash != pc.a.hash || x.a.bytes != pc.a.bytes)
            abort();
    } else if ((r < 0) != (rw < 0) || (r < 0 && r != rw) || pc.a.n != aw->n ||
               pc.a.hash != aw->hash || pc.a.bytes != aw->bytes) {
        abort();
    }
    ss_frame_decoder_free(&d);
}

/* Copy what the batch has to write into out, at most chunk bytes per
 * "write", as a non-blocking writev would take it. */
static void drain(ss_frame_batch *b, uint8_t *out, size_t *outn, size_t chunk)
{
    while (ss_frame_batch_pending(b)) {
        int cnt;
        const struct iovec *iov = ss_frame_batch_iov(b, &cnt);
        size_t took = 0, sum = 0;
        for (int i = 0; i < cnt; i++)
            sum += iov[i].iov_len;
        if (cnt <= 0 || sum != ss_frame_batch_pending(b))
            abort();
        for (int i = 0; i < cnt && took < chunk; i++) {
            size_t n = iov[i].iov_len < chunk - took ? iov[i].iov_len : chunk - took;
            memcpy(out + *outn, iov[i].iov_base, n);
            *outn += n;
            took += n;
            if (n < iov[i].iov_len)
                break;
        }
        ss_frame_batch_consume(b, took);
    }
}

static void check_encoder(enum ss_frame_layout layout, uint64_t max, const uint8_t *data,
                          size_t len, size_t chunk)
{
    /* Each message: a length byte (bit 7: (L & 127) * 37 bytes, else L & 63),
     * then its payload; at most len messages of at most 8 header bytes. */
    uint8_t *out = malloc(len * 9 + 8);
    if (!out)
        return;
    size_t outn = 0;
    struct acc want = {0};
    ss_frame_batch b;
    ss_frame_batch_init(&b, layout, max);
    for (size_t pos = 0; pos < len;) {
        uint8_t l = data[pos++];
        size_t n = l & 0x80 ? (size_t)(l & 0x7f) * 37 : l & 0x3f;
        if (n > len - pos)
            n = len - pos;
        int r = ss_frame_batch_add(&b, data + pos, n);
        if (r == -ENOSPC) {
            drain(&b, out, &outn, chunk);
            ss_frame_batch_reset(&b);
            r = ss_frame_batch_add(&b, data + pos, n);
            if (r == -ENOSPC)
                abort();   /* an empty batch takes any one message */
        }
        if (r == SS_EFRAMESIZE) {
            if (n <= max)
                abort();
        } else if (r != 0 || n > max) {
            abort();
        } else {
            on_msg(data + pos, n, &want);
        }
        pos += n;
    }
    drain(&b, out, &outn, chunk);
    ss_frame_decoder d;
    struct acc got = {0};
    ss_frame_decoder_init(&d, layout, max);
    if (ss_frame_decode(&d, out, outn, on_msg, &got) != (ssize_t)outn || !ss_frame_decoder_idle(&d) ||
        got.n != want.n || got.bytes != want.bytes || got.hash != want.hash)
        abort();
    ss_frame_decoder_free(&d);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 6)
        return 0;
    enum ss_frame_layout layout = (enum ss_frame_layout)(data[0] % 3);
    uint64_t max = 1 + (uint64_t)(data[0] >> 2) * 97;
    size_t chunk = 1 + data[1] % 17;
    uint32_t script = (uint32_t)data[2] << 24 | (uint32_t)data[3] << 16 | (uint32_t)data[4] << 8 | data[5];
    data += 6;
    size_t len = size - 6;

    ss_frame_decoder whole, parts;
    struct acc aw = {0}, ap = {0};
    ss_frame_decoder_init(&whole, layout, max);
    ss_frame_decoder_init(&parts, layout, max);
    ssize_t rw = ss_frame_decode(&whole, data, len, on_msg, &aw);
    ssize_t rp = 0;
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        rp = ss_frame_decode(&parts, data + off, n, on_msg, &ap);
        if (rp < 0)
            break;
        if ((size_t)rp != n)
            abort();
        if (parts.cap > max)
            abort();
    }
    if ((rw < 0) != (rp < 0) || (rw < 0 && rw != rp))
        abort();

    /* Third way: payload bytes through the zero-copy room/commit path. */
    ss_frame_decoder zc;
    struct acc az = {0};
    ss_frame_decoder_init(&zc, layout, max);
    ssize_t rz = 0;
    for (size_t off = 0; off < len && rz >= 0;) {
        uint8_t *room;
        ssize_t r = ss_frame_decoder_room(&zc, &room);
        if (r < 0) {
            rz = r;
            break;
        }
        if (r > 0) {
            size_t n = (size_t)r < chunk ? (size_t)r : chunk;
            if (n > len - off)
                n = len - off;
            memcpy(room, data + off, n);
            int c = ss_frame_decoder_commit(&zc, n, on_msg, &az);
            if (c < 0)
                rz = c;
            off += n;
            continue;
        }
        rz = ss_frame_decode(&zc, data + off, 1, on_msg, &az);
        off += 1;
    }
    if ((rw < 0) != (rz < 0) || az.n != aw.n || az.hash != aw.hash || zc.cap > max)
        abort();
    ss_frame_decoder_free(&zc);
    if (aw.n != ap.n || aw.bytes != ap.bytes || aw.hash != ap.hash)
        abort();
    if (rw >= 0 && ss_frame_decoder_idle(&whole) != ss_frame_decoder_idle(&parts))
        abort();
    ss_frame_decoder_free(&whole);
    ss_frame_decoder_free(&parts);
    check_paced(layout, max, data, len, chunk, script, &aw, rw);
    check_encoder(layout, max, data, len, chunk);
    return 0;
}
