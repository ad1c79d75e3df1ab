/* Framing: the decoder yields exactly the messages sent for every split of
 * the stream; oversized and truncated input; the batching encoder. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sockstack/err.h"
#include "sockstack/frame.h"

TestSuite(frame, .timeout = 60);

/* What the decoder delivered: lengths and a running copy of the payloads. */
struct got {
    size_t n;
    size_t lens[4096];
    uint8_t *data;
    size_t used, cap;
    int pause_every; /* pause after every k-th message (0: never) */
};

static int collect(const uint8_t *p, size_t len, void *arg)
{
    struct got *g = arg;
    cr_assert_lt(g->n, 4096);
    g->lens[g->n++] = len;
    if (g->used + len > g->cap) {
        g->cap = (g->used + len) * 2 + 64;
        g->data = realloc(g->data, g->cap);
    }
    if (len)
        memcpy(g->data + g->used, p, len);
    g->used += len;
    return g->pause_every && g->n % (size_t)g->pause_every == 0 ? 1 : 0;
}

/* A stream of messages and the expected payload bytes. */
struct stream {
    uint8_t *bytes;
    size_t len;
    size_t n;
    size_t lens[4096];
    uint8_t *payload;
    size_t payload_len;
};

static void stream_build(struct stream *s, enum ss_frame_layout layout,
                         const size_t *lens, size_t n, unsigned seed)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += lens[i];
    s->n = n;
    s->len = total + n * ss_frame_header_len(layout);
    s->bytes = malloc(s->len ? s->len : 1);
    s->payload = malloc(total ? total : 1);
    s->payload_len = total;
    size_t off = 0, poff = 0;
    for (size_t i = 0; i < n; i++) {
        s->lens[i] = lens[i];
        off += (size_t)ss_frame_header_write(layout, lens[i], s->bytes + off);
        for (size_t k = 0; k < lens[i]; k++) {
            uint8_t b = (uint8_t)(seed * 31u + i * 7u + k * 13u);
            s->bytes[off++] = b;
            s->payload[poff++] = b;
        }
    }
}

static void stream_free(struct stream *s)
{
    free(s->bytes);
    free(s->payload);
}

/* Feed s in chunks whose ends are cuts[0..ncuts) (ascending); check. */
static void decode_split(const struct stream *s, enum ss_frame_layout layout,
                         const size_t *cuts, size_t ncuts, int pause_every)
{
    ss_frame_decoder d;
    ss_frame_decoder_init(&d, layout, 0);
    struct got g = {.pause_every = pause_every};
    size_t prev = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : s->len;
        while (prev < end) {
            ssize_t r = ss_frame_decode(&d, s->bytes + prev, end - prev, collect, &g);
            cr_assert_geq(r, 0, "decode failed: %s", ss_err_name((int)r));
            if (!pause_every)
                cr_assert_eq((size_t)r, end - prev);
            prev += (size_t)r;
        }
    }
    cr_assert(ss_frame_decoder_idle(&d));
    cr_assert_eq(g.n, s->n, "messages %zu, sent %zu", g.n, s->n);
    for (size_t i = 0; i < s->n; i++)
        cr_assert_eq(g.lens[i], s->lens[i], "message %zu length", i);
    cr_assert_eq(g.used, s->payload_len);
    if (g.used)
        cr_assert_eq(memcmp(g.data, s->payload, g.used), 0);
    free(g.data);
    ss_frame_decoder_free(&d);
}

Test(frame, layouts_by_name_and_header_bytes)
{
    enum ss_frame_layout l;
    uint8_t h[8];
    cr_assert_eq(ss_frame_layout_parse("be32", &l), 0);
    cr_assert_eq(l, SS_FRAME_BE32);
    cr_assert_eq(ss_frame_header_write(l, 0x01020304, h), 4);
    cr_assert_eq(memcmp(h, "\x01\x02\x03\x04", 4), 0);
    cr_assert_eq(ss_frame_layout_parse("le32", &l), 0);
    cr_assert_eq(ss_frame_header_write(l, 0x01020304, h), 4);
    cr_assert_eq(memcmp(h, "\x04\x03\x02\x01", 4), 0);
    cr_assert_eq(ss_frame_layout_parse("be64", &l), 0);
    cr_assert_eq(ss_frame_header_write(l, 0x0102030405060708ull, h), 8);
    cr_assert_eq(memcmp(h, "\x01\x02\x03\x04\x05\x06\x07\x08", 8), 0);
    cr_assert_eq(ss_frame_header_read(SS_FRAME_BE64, h), 0x0102030405060708ull);
    cr_assert_eq(ss_frame_layout_parse("be16", &l), SS_EFRAMEFMT);
    cr_assert_eq(ss_frame_layout_parse("", &l), SS_EFRAMEFMT);
    cr_assert_eq(ss_frame_header_write(SS_FRAME_BE32, 1ull << 32, h), SS_EFRAMESIZE);
}

/* Every composition of a 19-byte stream (2^18 ways to cut it), each
 * layout's header width covered by the 3-cut test below. */
Test(frame, every_split_of_a_small_stream)
{
    static const size_t lens[] = {0, 2, 1, 0};
    struct stream s;
    stream_build(&s, SS_FRAME_BE32, lens, 4, 1);
    cr_assert_eq(s.len, 19);
    size_t cuts[18];
    for (uint32_t mask = 0; mask < (1u << 18); mask++) {
        size_t nc = 0;
        for (size_t b = 0; b < 18; b++)
            if (mask & (1u << b))
                cuts[nc++] = b + 1;
        decode_split(&s, SS_FRAME_BE32, cuts, nc, 0);
    }
    stream_free(&s);
}

/* Every pair of cut points in a ~200-byte mixed stream, every layout. */
Test(frame, every_two_cuts_of_a_mixed_stream_all_layouts)
{
    static const size_t lens[] = {5, 0, 1, 64, 0, 0, 17, 3, 40, 2};
    for (int l = 0; l < 3; l++) {
        struct stream s;
        stream_build(&s, (enum ss_frame_layout)l, lens, 10, 2);
        for (size_t a = 0; a <= s.len; a++)
            for (size_t b = a; b <= s.len; b++) {
                size_t cuts[2] = {a, b};
                decode_split(&s, (enum ss_frame_layout)l, cuts, 2, 0);
            }
        stream_free(&s);
    }
}

Test(frame, pausing_callback_resumes_where_it_stopped)
{
    static const size_t lens[] = {3, 0, 0, 9, 1, 0, 4};
    struct stream s;
    stream_build(&s, SS_FRAME_LE32, lens, 7, 3);
    for (size_t a = 0; a <= s.len; a++) {
        size_t cuts[1] = {a};
        decode_split(&s, SS_FRAME_LE32, cuts, 1, 1);
        decode_split(&s, SS_FRAME_LE32, cuts, 1, 2);
    }
    stream_free(&s);
}

/* Large messages, random chunk sizes, seeded so failures reproduce. */
Test(frame, random_splits_of_a_large_stream)
{
    unsigned seed = 12345;
    size_t lens[300];
    for (size_t i = 0; i < 300; i++) {
        unsigned r = (unsigned)rand_r(&seed);
        lens[i] = r % 5 == 0 ? 0 : r % 7 == 0 ? 200000 + r % 100000 : r % 3000;
    }
    for (int l = 0; l < 3; l++) {
        struct stream s;
        stream_build(&s, (enum ss_frame_layout)l, lens, 300, 4);
        for (int iter = 0; iter < 20; iter++) {
            size_t cuts[4096], nc = 0, pos = 0;
            for (;;) {
                unsigned r = (unsigned)rand_r(&seed);
                size_t step = r % 4 == 0 ? 1 + r % 8 : r % 2 ? 1 + r % 70000 : 1 + r % 1500;
                pos += step;
                if (pos >= s.len || nc == 4096)
                    break;
                cuts[nc++] = pos;
            }
            decode_split(&s, (enum ss_frame_layout)l, cuts, nc, iter % 3);
        }
        stream_free(&s);
    }
}

static int count_cb(const uint8_t *p, size_t len, void *arg)
{
    (*(int *)arg)++;
    return 0;
}

Test(frame, oversized_length_is_an_error_and_never_allocated)
{
    ss_frame_decoder d;
    ss_frame_decoder_init(&d, SS_FRAME_BE32, 1000);
    int n = 0;
    /* One good message, then a header claiming 1001 bytes. */
    uint8_t in[] = {0, 0, 0, 2, 'o', 'k', 0, 0, 0x03, 0xe9, 'x'};
    cr_assert_eq(ss_frame_decode(&d, in, sizeof in, count_cb, &n), SS_EFRAMESIZE);
    cr_assert_eq(n, 1);
    cr_assert_eq(d.cap, 0, "nothing allocated for the claimed size");
    /* Sticky: the connection is done. */
    cr_assert_eq(ss_frame_decode(&d, in, 4, count_cb, &n), SS_EFRAMESIZE);
    ss_frame_decoder_free(&d);

    /* The default max (16 MiB): 16 MiB + 1 refused, exactly 16 MiB accepted. */
    ss_frame_decoder_init(&d, SS_FRAME_BE32, 0);
    uint8_t h[4];
    ss_frame_header_write(SS_FRAME_BE32, SS_FRAME_MAX_DEFAULT + 1, h);
    cr_assert_eq(ss_frame_decode(&d, h, 4, count_cb, &n), SS_EFRAMESIZE);
    ss_frame_decoder_free(&d);
    ss_frame_decoder_init(&d, SS_FRAME_BE64, 0);
    uint8_t h8[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    cr_assert_eq(ss_frame_decode(&d, h8, 8, count_cb, &n), SS_EFRAMESIZE);
    ss_frame_decoder_free(&d);
}

Test(frame, lying_length_costs_only_the_bytes_that_arrive)
{
    ss_frame_decoder d;
    ss_frame_decoder_init(&d, SS_FRAME_BE32, 0);
    uint8_t h[4];
    ss_frame_header_write(SS_FRAME_BE32, SS_FRAME_MAX_DEFAULT, h);
    int n = 0;
    cr_assert_eq(ss_frame_decode(&d, h, 4, count_cb, &n), 4);
    cr_assert_eq(ss_frame_decode(&d, "0123456789", 10, count_cb, &n), 10);
    cr_assert_eq(n, 0);
    cr_assert_leq(d.cap, SS_FRAME_BUF_INIT);
    cr_assert_not(ss_frame_decoder_idle(&d));
    cr_assert_eq(ss_frame_decoder_pending(&d), 14);
    ss_frame_decoder_free(&d);
}

Test(frame, truncated_input_is_visible)
{
    ss_frame_decoder d;
    ss_frame_decoder_init(&d, SS_FRAME_BE32, 0);
    int n = 0;
    cr_assert_eq(ss_frame_decode(&d, "\0\0", 2, count_cb, &n), 2);
    cr_assert_not(ss_frame_decoder_idle(&d), "half a header is not a clean end");
    cr_assert_eq(ss_frame_decode(&d, "\0\3ab", 4, count_cb, &n), 4);
    cr_assert_not(ss_frame_decoder_idle(&d));
    cr_assert_eq(n, 0);
    cr_assert_eq(ss_frame_decode(&d, "c", 1, count_cb, &n), 1);
    cr_assert(ss_frame_decoder_idle(&d));
    cr_assert_eq(n, 1);
    ss_frame_decoder_free(&d);

    /* The blocking reader: EOF inside a message is -EPIPE, at a boundary 0. */
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    cr_assert_eq(write(fds[1], "\0\0\0\2hi\0\0\0\5abc", 13), 13);
    close(fds[1]);
    uint8_t *msg;
    size_t len;
    cr_assert_eq(ss_frame_read(fds[0], SS_FRAME_BE32, 0, &msg, &len), 1);
    cr_assert_eq(len, 2);
    cr_assert_eq(memcmp(msg, "hi", 2), 0);
    free(msg);
    cr_assert_eq(ss_frame_read(fds[0], SS_FRAME_BE32, 0, &msg, &len), -EPIPE);
    close(fds[0]);

    cr_assert_eq(pipe(fds), 0);
    cr_assert_eq(write(fds[1], "\0\0\0\0", 4), 4);
    close(fds[1]);
    cr_assert_eq(ss_frame_read(fds[0], SS_FRAME_BE32, 0, &msg, &len), 1);
    cr_assert_eq(len, 0);
    free(msg);
    cr_assert_eq(ss_frame_read(fds[0], SS_FRAME_BE32, 0, &msg, &len), 0);
    close(fds[0]);
}

Test(frame, batch_coalesces_small_messages_and_survives_partial_writes)
{
    ss_frame_batch b;
    ss_frame_batch_init(&b, SS_FRAME_BE32, 1000);
    cr_assert_eq(ss_frame_batch_add(&b, "hello", 5), 0);
    cr_assert_eq(ss_frame_batch_add(&b, NULL, 0), 0);
    cr_assert_eq(ss_frame_batch_add(&b, "xy", 2), 0);
    static uint8_t big[1001];
    cr_assert_eq(ss_frame_batch_add(&b, big, 1001), SS_EFRAMESIZE);
    int cnt;
    const struct iovec *v = ss_frame_batch_iov(&b, &cnt);
    cr_assert_eq(cnt, 1, "three small messages share one iovec");
    cr_assert_eq(v[0].iov_len, 19);
    /* A large payload is referenced, not copied; small ones after it
     * start a new iovec. */
    static uint8_t large[SS_FRAME_SMALL_MSG + 1];
    memset(large, 'L', sizeof large);
    cr_assert_eq(ss_frame_batch_add(&b, large, sizeof large), 0);
    cr_assert_eq(ss_frame_batch_add(&b, "z", 1), 0);
    v = ss_frame_batch_iov(&b, &cnt);
    cr_assert_eq(cnt, 4, "small run, header, payload, small run");
    cr_assert_eq(v[2].iov_base, (void *)large);
    size_t total = 19 + 4 + sizeof large + 5;
    cr_assert_eq(ss_frame_batch_pending(&b), total);
    uint8_t want[19 + 4 + SS_FRAME_SMALL_MSG + 1 + 5];
    memcpy(want, "\0\0\0\5hello\0\0\0\0\0\0\0\2xy", 19);
    ss_frame_header_write(SS_FRAME_BE32, sizeof large, want + 19);
    memcpy(want + 23, large, sizeof large);
    memcpy(want + 23 + sizeof large, "\0\0\0\1z", 5);
    uint8_t out[sizeof want];
    size_t off = 0;
    /* Write one byte at a time, as a congested socket would take it. */
    while (ss_frame_batch_pending(&b)) {
        v = ss_frame_batch_iov(&b, &cnt);
        cr_assert_gt(v[0].iov_len, 0);
        out[off++] = *(uint8_t *)v[0].iov_base;
        ss_frame_batch_consume(&b, 1);
    }
    cr_assert_eq(off, total);
    cr_assert_eq(memcmp(out, want, total), 0);

    /* Full: the small buffer, then the header slots. */
    ss_frame_batch_reset(&b);
    int n = 0;
    while (ss_frame_batch_add(&b, "a", 1) == 0)
        n++;
    /* The copy buffer holds SMALL/5 of them; then they are referenced
     * until the iovecs run out. */
    cr_assert_eq(n, SS_FRAME_BATCH_SMALL / 5 + (2 * SS_FRAME_BATCH_MAX - 1) / 2);
    ss_frame_batch_reset(&b);
    for (int i = 0; i < SS_FRAME_BATCH_MAX; i++)
        cr_assert_eq(ss_frame_batch_add(&b, large, sizeof large), 0);
    cr_assert_eq(ss_frame_batch_add(&b, large, sizeof large), -ENOSPC);
}

Test(frame, batch_writev_then_decode_round_trip)
{
    int fds[2];
    cr_assert_eq(pipe2(fds, O_NONBLOCK), 0);
    ss_frame_batch b;
    ss_frame_batch_init(&b, SS_FRAME_BE64, 0);
    char payload[50][20];
    for (int i = 0; i < 50; i++) {
        int len = snprintf(payload[i], sizeof payload[i], "msg %d", i) * (i % 5 != 0);
        cr_assert_eq(ss_frame_batch_add(&b, payload[i], (size_t)len), 0);
    }
    size_t total = ss_frame_batch_pending(&b);
    cr_assert_eq(ss_frame_batch_writev(&b, fds[1]), (ssize_t)total);
    uint8_t buf[4096];
    ssize_t r = read(fds[0], buf, sizeof buf);
    cr_assert_eq(r, (ssize_t)total);
    struct got g = {0};
    ss_frame_decoder d;
    ss_frame_decoder_init(&d, SS_FRAME_BE64, 0);
    cr_assert_eq(ss_frame_decode(&d, buf, (size_t)r, collect, &g), r);
    cr_assert_eq(g.n, 50);
    cr_assert_eq(g.lens[0], 0);
    cr_assert_eq(g.lens[1], 5);
    cr_assert_eq(memcmp(g.data, "msg 1msg 2", 10), 0);
    free(g.data);
    ss_frame_decoder_free(&d);
    close(fds[0]);
    close(fds[1]);
}

static int keep_cb(const uint8_t *p, size_t len, void *arg)
{
    struct got *g = arg;
    return collect(p, len, g);
}

Test(frame, zero_copy_room_and_commit_deliver_the_same_message)
{
    for (size_t piece = 1; piece <= 70000; piece = piece * 3 + 1) {
        ss_frame_decoder d;
        ss_frame_decoder_init(&d, SS_FRAME_BE32, 0);
        struct got g = {0};
        uint8_t h[4];
        size_t len = 300000;
        ss_frame_header_write(SS_FRAME_BE32, len, h);
        uint8_t *room;
        cr_assert_eq(ss_frame_decoder_room(&d, &room), 0, "no payload yet");
        cr_assert_eq(ss_frame_decode(&d, h, 4, keep_cb, &g), 4);
        size_t off = 0;
        while (off < len) {
            ssize_t r = ss_frame_decoder_room(&d, &room);
            cr_assert_gt(r, 0);
            size_t n = (size_t)r < piece ? (size_t)r : piece;
            if (n > len - off)
                n = len - off;
            for (size_t i = 0; i < n; i++)
                room[i] = (uint8_t)((off + i) * 7);
            cr_assert_leq(d.cap, len);
            cr_assert_leq(d.cap, 2 * (off + n) + SS_FRAME_BUF_INIT,
                          "grows only with what arrived");
            cr_assert_eq(ss_frame_decoder_commit(&d, n, keep_cb, &g), 0);
            off += n;
        }
        cr_assert_eq(g.n, 1);
        cr_assert_eq(g.lens[0], len);
        for (size_t i = 0; i < len; i += 997)
            cr_assert_eq(g.data[i], (uint8_t)(i * 7));
        cr_assert(ss_frame_decoder_idle(&d));
        cr_assert_eq(ss_frame_decoder_room(&d, &room), 0);
        free(g.data);
        ss_frame_decoder_free(&d);
    }
}
