/* Test helper for the chat tests: everything read from one fd, and
 * waiting for exact text in it with a timeout. Header-only (static inline). */
#ifndef SS_TEST_CHAT_STREAM_H
#define SS_TEST_CHAT_STREAM_H

#include <criterion/criterion.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Everything read from one fd, and how far the test has looked. */
struct stream {
    int fd;
    char *buf;
    size_t len, cap, pos;
    bool eof;
};

static inline long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Streams of this test, freed in teardown. */
static struct stream *streams[32];
static int nstreams;

static inline void stream_init(struct stream *s, int fd)
{
    *s = (struct stream){.fd = fd, .cap = 1 << 16};
    s->buf = malloc(s->cap + 1);
    s->buf[0] = '\0';
    if (nstreams < 32)
        streams[nstreams++] = s;
}

/* Read what is there within wait_ms. */
static inline void pump(struct stream *s, int wait_ms)
{
    struct pollfd p = {.fd = s->fd, .events = POLLIN};
    if (s->eof || poll(&p, 1, wait_ms) <= 0)
        return;
    if (s->cap - s->len < 65536) {
        s->cap *= 2;
        s->buf = realloc(s->buf, s->cap + 1);
    }
    ssize_t n = read(s->fd, s->buf + s->len, s->cap - s->len);
    if (n <= 0) {
        s->eof = true;
        return;
    }
    s->len += (size_t)n;
    s->buf[s->len] = '\0';
}

/* Wait for needle after the last match; on success move past it. */
static inline bool expect(struct stream *s, const char *needle, int timeout_ms)
{
    long deadline = now_ms() + timeout_ms;
    size_t nlen = strlen(needle);
    size_t from = s->pos; /* never rescan what cannot hold a match */
    for (;;) {
        if (s->buf && s->len > from) {
            s->buf[s->len] = '\0';
            char *at = strstr(s->buf + from, needle);
            if (at) {
                s->pos = (size_t)(at - s->buf) + nlen;
                return true;
            }
            from = s->len >= nlen ? s->len - nlen + 1 : 0;
            if (from < s->pos)
                from = s->pos;
        }
        long left = deadline - now_ms();
        if (left <= 0 || s->eof)
            return false;
        pump(s, (int)(left > 100 ? 100 : left));
    }
}

/* Occurrences of needle in everything read so far. */
static inline int count(struct stream *s, const char *needle)
{
    int n = 0;
    if (!s->buf || !s->len)
        return 0;
    s->buf[s->len] = '\0';
    for (char *p = s->buf; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

#define EXPECT(s, needle)                                                         \
    cr_assert(expect((s), (needle), 10000), "did not see \"%s\" in:\n%s", (needle), \
              (s)->buf ? ((s)->len > 3000 ? (s)->buf + (s)->len - 3000 : (s)->buf) : "")

static inline void put(int fd, const char *str)
{
    size_t n = strlen(str);
    cr_assert_eq(write(fd, str, n), (ssize_t)n);
}


static inline void streams_free(void)
{
    for (int i = 0; i < nstreams; i++) {
        free(streams[i]->buf);
        streams[i]->buf = NULL;
    }
    nstreams = 0;
}

#endif
