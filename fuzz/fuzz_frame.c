/* libFuzzer: the frame decoder on arbitrary bytes.
 * Byte 0 picks the layout and a small maximum, byte 1 a chunk size. The
 * input is decoded once whole and once in chunks; both must agree exactly
 * (same messages, same error), and memory must stay within the maximum. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    enum ss_frame_layout layout = (enum ss_frame_layout)(data[0] % 3);
    uint64_t max = 1 + (uint64_t)(data[0] >> 2) * 97;
    size_t chunk = 1 + data[1] % 17;
    data += 2;
    size_t len = size - 2;

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
    return 0;
}
