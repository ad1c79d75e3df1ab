/* Length-prefixed framing: incremental decoder and batching encoder.
 * See include/sockstack/frame.h for the layouts and the memory contract. */
#include "sockstack/frame.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sockstack/err.h"
#include "core/bytes.h"

static const char *const layout_names[] = {"be32", "le32", "be64"};

int ss_frame_layout_parse(const char *name, enum ss_frame_layout *out)
{
    for (int i = 0; i < 3; i++)
        if (name && !strcmp(name, layout_names[i])) {
            *out = (enum ss_frame_layout)i;
            return 0;
        }
    return SS_EFRAMEFMT;
}

const char *ss_frame_layout_name(enum ss_frame_layout layout)
{
    return (unsigned)layout < 3 ? layout_names[layout] : "?";
}

size_t ss_frame_header_len(enum ss_frame_layout layout)
{
    return layout == SS_FRAME_BE64 ? 8 : 4;
}

uint64_t ss_frame_layout_limit(enum ss_frame_layout layout)
{
    return layout == SS_FRAME_BE64 ? UINT64_MAX : UINT32_MAX;
}

int ss_frame_header_write(enum ss_frame_layout layout, uint64_t len, uint8_t *out)
{
    if (len > ss_frame_layout_limit(layout))
        return SS_EFRAMESIZE;
    switch (layout) {
    case SS_FRAME_LE32:
        for (int i = 0; i < 4; i++)
            out[i] = (uint8_t)(len >> (8 * i));
        return 4;
    case SS_FRAME_BE64:
        ss__put64(out, len);
        return 8;
    case SS_FRAME_BE32:
    default:
        ss__put32(out, (uint32_t)len);
        return 4;
    }
}

uint64_t ss_frame_header_read(enum ss_frame_layout layout, const uint8_t *p)
{
    uint64_t v = 0;
    switch (layout) {
    case SS_FRAME_LE32:
        for (int i = 3; i >= 0; i--)
            v = (v << 8) | p[i];
        return v;
    case SS_FRAME_BE64:
        return ss__get64(p);
    case SS_FRAME_BE32:
    default:
        return ss__get32(p);
    }
}

/* ---- decoder ------------------------------------------------------------ */

void ss_frame_decoder_init(ss_frame_decoder *d, enum ss_frame_layout layout,
                           uint64_t max)
{
    *d = (ss_frame_decoder){.layout = layout,
                            .max = max ? max : SS_FRAME_MAX_DEFAULT};
    /* A payload must fit a size_t and the layout's field. */
    if (d->max > ss_frame_layout_limit(layout))
        d->max = ss_frame_layout_limit(layout);
    if (d->max > SIZE_MAX / 2)
        d->max = SIZE_MAX / 2;
}

void ss_frame_decoder_free(ss_frame_decoder *d)
{
    free(d->buf);
    d->buf = NULL;
    d->cap = d->have = 0;
}

bool ss_frame_decoder_idle(const ss_frame_decoder *d)
{
    return d->hdr_have == 0 && !d->in_body;
}

uint64_t ss_frame_decoder_pending(const ss_frame_decoder *d)
{
    return d->in_body ? ss_frame_header_len(d->layout) + d->have : d->hdr_have;
}

/* Make room for `more` further payload bytes: grow geometrically, but never
 * beyond the message's own length (which is <= max). */
static int reserve(ss_frame_decoder *d, size_t more)
{
    size_t want = d->have + more;
    if (want <= d->cap)
        return 0;
    size_t cap = d->cap ? d->cap : SS_FRAME_BUF_INIT;
    while (cap < want)
        cap *= 2;
    if (cap > d->need)
        cap = (size_t)d->need;
    uint8_t *nb = realloc(d->buf, cap);
    if (!nb)
        return -ENOMEM;
    d->buf = nb;
    d->cap = cap;
    return 0;
}

/* Deliver and reset for the next header. */
static int deliver(ss_frame_decoder *d, const uint8_t *p, size_t len,
                   ss_frame_cb cb, void *arg)
{
    d->in_body = false;
    d->hdr_have = 0;
    d->have = 0;
    d->messages++;
    return cb(p, len, arg);
}

ssize_t ss_frame_decode(ss_frame_decoder *d, const void *data, size_t len,
                        ss_frame_cb cb, void *arg)
{
    const uint8_t *p = data;
    size_t off = 0;
    const size_t hlen = ss_frame_header_len(d->layout);

    if (d->err)
        return d->err;
    while (off < len) {
        if (!d->in_body) {
            size_t take = hlen - d->hdr_have;
            if (take > len - off)
                take = len - off;
            memcpy(d->hdr + d->hdr_have, p + off, take);
            d->hdr_have += take;
            off += take;
            if (d->hdr_have < hlen)
                break;
            d->need = ss_frame_header_read(d->layout, d->hdr);
            if (d->need > d->max)
                return d->err = SS_EFRAMESIZE;
            d->in_body = true;
            d->have = 0;
            if (d->need == 0) {
                int rc = deliver(d, p + off, 0, cb, arg);
                if (rc < 0)
                    return d->err = rc;
                if (rc > 0)
                    return (ssize_t)off;
            }
            continue;
        }
        size_t missing = (size_t)d->need - d->have;
        size_t avail = len - off;
        int rc;
        if (d->have == 0 && avail >= missing) {
            /* The whole payload is in the caller's bytes: no copy. */
            rc = deliver(d, p + off, missing, cb, arg);
            off += missing;
        } else {
            size_t take = avail < missing ? avail : missing;
            if (reserve(d, take) < 0)
                return d->err = -ENOMEM;
            memcpy(d->buf + d->have, p + off, take);
            d->have += take;
            off += take;
            if (d->have < d->need)
                break;
            rc = deliver(d, d->buf, (size_t)d->need, cb, arg);
        }
        if (rc < 0)
            return d->err = rc;
        if (rc > 0)
            return (ssize_t)off;
    }
    return (ssize_t)off;
}

ssize_t ss_frame_decoder_room(ss_frame_decoder *d, uint8_t **p)
{
    if (d->err)
        return d->err;
    if (!d->in_body || d->need == 0)
        return 0;
    size_t missing = (size_t)d->need - d->have;
    if (d->cap == d->have) {
        /* Grow by what has arrived so far (at least the initial size): a
         * peer must send bytes to make us allocate them. */
        size_t more = d->have > SS_FRAME_BUF_INIT ? d->have : SS_FRAME_BUF_INIT;
        if (reserve(d, more < missing ? more : missing) < 0)
            return d->err = -ENOMEM;
    }
    *p = d->buf + d->have;
    size_t room = d->cap - d->have;
    return (ssize_t)(room < missing ? room : missing);
}

int ss_frame_decoder_commit(ss_frame_decoder *d, size_t n, ss_frame_cb cb,
                            void *arg)
{
    if (d->err)
        return d->err;
    if (!d->in_body || n > d->cap - d->have || d->have + n > d->need)
        return -EINVAL;
    d->have += n;
    if (d->have < d->need)
        return 0;
    int rc = deliver(d, d->buf, (size_t)d->need, cb, arg);
    return rc < 0 ? (d->err = rc) : 0;
}

/* ---- encoder ------------------------------------------------------------ */

void ss_frame_batch_init(ss_frame_batch *b, enum ss_frame_layout layout,
                         uint64_t max)
{
    b->layout = layout;
    b->max = max ? max : SS_FRAME_MAX_DEFAULT;
    ss_frame_batch_reset(b);
}

void ss_frame_batch_reset(ss_frame_batch *b)
{
    b->n = 0;
    b->nhdr = 0;
    b->small_used = 0;
    b->iov_first = 0;
    b->iovcnt = 0;
    b->bytes = 0;
}

/* Append [p, p+len) as output: extend the last iovec when it ends at p. */
static int push_iov(ss_frame_batch *b, uint8_t *p, size_t len)
{
    if (b->iovcnt > b->iov_first) {
        struct iovec *last = &b->iov[b->iovcnt - 1];
        if ((uint8_t *)last->iov_base + last->iov_len == p) {
            last->iov_len += len;
            return 0;
        }
    }
    if (b->iovcnt == 2 * SS_FRAME_BATCH_MAX)
        return -ENOSPC;
    b->iov[b->iovcnt++] = (struct iovec){p, len};
    return 0;
}

int ss_frame_batch_add(ss_frame_batch *b, const void *payload, size_t len)
{
    if ((uint64_t)len > b->max || (uint64_t)len > ss_frame_layout_limit(b->layout))
        return SS_EFRAMESIZE;
    size_t hl = ss_frame_header_len(b->layout);
    if (len <= SS_FRAME_SMALL_MSG && b->small_used + hl + len <= sizeof b->small) {
        /* Copied: consecutive small messages share one iovec. */
        uint8_t *dst = b->small + b->small_used;
        if (push_iov(b, dst, hl + len) < 0)
            return -ENOSPC;
        ss_frame_header_write(b->layout, len, dst);
        if (len)
            memcpy(dst + hl, payload, len);
        b->small_used += hl + len;
        b->n++;
        b->bytes += hl + len;
        return 0;
    }
    /* Referenced: a header slot and (for a payload) a second iovec. */
    if (b->nhdr >= SS_FRAME_BATCH_MAX || b->iovcnt + (len ? 2 : 1) > 2 * SS_FRAME_BATCH_MAX)
        return -ENOSPC;
    ss_frame_header_write(b->layout, len, b->hdr[b->nhdr]);
    b->iov[b->iovcnt++] = (struct iovec){b->hdr[b->nhdr], hl};
    if (len)
        b->iov[b->iovcnt++] = (struct iovec){(void *)payload, len};
    b->nhdr++;
    b->n++;
    b->bytes += hl + len;
    return 0;
}

const struct iovec *ss_frame_batch_iov(const ss_frame_batch *b, int *iovcnt)
{
    *iovcnt = b->iovcnt - b->iov_first;
    return b->iov + b->iov_first;
}

size_t ss_frame_batch_pending(const ss_frame_batch *b)
{
    return b->bytes;
}

void ss_frame_batch_consume(ss_frame_batch *b, size_t n)
{
    if (n > b->bytes)
        n = b->bytes;
    b->bytes -= n;
    while (n > 0 && b->iov_first < b->iovcnt) {
        struct iovec *v = &b->iov[b->iov_first];
        if (n < v->iov_len) {
            v->iov_base = (uint8_t *)v->iov_base + n;
            v->iov_len -= n;
            return;
        }
        n -= v->iov_len;
        b->iov_first++;
    }
    /* Skip empty iovecs so iov() never hands out a zero-length head. */
    while (b->iov_first < b->iovcnt && b->iov[b->iov_first].iov_len == 0)
        b->iov_first++;
}

ssize_t ss_frame_batch_writev(ss_frame_batch *b, int fd)
{
    size_t total = 0;
    while (b->bytes > 0) {
        int cnt;
        const struct iovec *v = ss_frame_batch_iov(b, &cnt);
        ssize_t w = writev(fd, v, cnt);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN && total > 0)
                break;
            return -errno;
        }
        ss_frame_batch_consume(b, (size_t)w);
        total += (size_t)w;
    }
    return (ssize_t)total;
}

/* ---- blocking helpers --------------------------------------------------- */

int ss_frame_write(int fd, enum ss_frame_layout layout, const void *payload,
                   size_t len)
{
    ss_frame_batch b;
    ss_frame_batch_init(&b, layout, ss_frame_layout_limit(layout));
    int rc = ss_frame_batch_add(&b, payload, len);
    if (rc < 0)
        return rc;
    ssize_t w = ss_frame_batch_writev(&b, fd);
    return w < 0 ? (int)w : 0;
}

/* Some bytes from a source: count, 0 at its end, or a negative code. */
typedef ssize_t (*read_fn)(void *src, void *buf, size_t cap);

static ssize_t fd_read(void *src, void *buf, size_t cap)
{
    for (;;) {
        ssize_t r = read(*(int *)src, buf, cap);
        if (r >= 0)
            return r;
        if (errno != EINTR)
            return -errno;
    }
}

static ssize_t stream_read(void *src, void *buf, size_t cap)
{
    return ss_stream_recv(src, buf, cap);
}

/* Read exactly len bytes; 0 ok, 1 EOF before any byte, -EPIPE EOF after some. */
static int read_exact(read_fn rd, void *src, uint8_t *p, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = rd(src, p + got, len - got);
        if (r < 0)
            return (int)r;
        if (r == 0)
            return got == 0 ? 1 : -EPIPE;
        got += (size_t)r;
    }
    return 0;
}

/* One message from rd (see ss_frame_read). */
static int frame_read(read_fn rd, void *src, enum ss_frame_layout layout, uint64_t max,
                      uint8_t **out, size_t *len)
{
    uint8_t hdr[8];
    size_t hl = ss_frame_header_len(layout);
    *out = NULL;
    *len = 0;
    int rc = read_exact(rd, src, hdr, hl);
    if (rc == 1)
        return 0;
    if (rc < 0)
        return rc;
    uint64_t need = ss_frame_header_read(layout, hdr);
    if (need > (max ? max : SS_FRAME_MAX_DEFAULT) || need > SIZE_MAX / 2)
        return SS_EFRAMESIZE;
    size_t cap = need < SS_FRAME_BUF_INIT ? (size_t)need : SS_FRAME_BUF_INIT;
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf)
        return -ENOMEM;
    size_t have = 0;
    while (have < need) {
        if (have == cap) {
            size_t nc = cap * 2 < need ? cap * 2 : (size_t)need;
            uint8_t *nb = realloc(buf, nc);
            if (!nb) {
                free(buf);
                return -ENOMEM;
            }
            buf = nb;
            cap = nc;
        }
        ssize_t r = rd(src, buf + have, cap - have);
        if (r <= 0) {
            free(buf);
            return r < 0 ? (int)r : -EPIPE;
        }
        have += (size_t)r;
    }
    *out = buf;
    *len = (size_t)need;
    return 1;
}

int ss_frame_read(int fd, enum ss_frame_layout layout, uint64_t max,
                  uint8_t **out, size_t *len)
{
    return frame_read(fd_read, &fd, layout, max, out, len);
}

int ss_frame_read_stream(ss_stream *st, enum ss_frame_layout layout, uint64_t max,
                         uint8_t **out, size_t *len)
{
    return frame_read(stream_read, st, layout, max, out, len);
}
