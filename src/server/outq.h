/* Output queue of one connection: a chain of fixed-size chunks, each with
 * bounds (start/end) and a data window (pos/last), nginx ngx_buf style.
 * Bytes are copied in once, sent with writev from the window, and spent
 * chunks go back to a per-loop pool: no malloc per byte or per write.
 * Internal to src/server/ (and its unit test). */
#ifndef SS_SERVER_OUTQ_H
#define SS_SERVER_OUTQ_H

#include <stddef.h>
#include <sys/uio.h>

struct ss__obuf {
    struct ss__obuf *next;
    char *pos, *last;   /* data window: bytes not yet sent */
    char *end;          /* bound: start + chunk size */
    char start[];
};

struct ss__outq {
    struct ss__obuf *head, *tail;
    size_t bytes;       /* sum of the windows */
};

/* Spent chunks kept for reuse (bounded), one pool per loop/thread. */
struct ss__bufpool {
    struct ss__obuf *free;
    size_t nfree, max_free;
    size_t chunk;       /* data bytes per chunk */
};

void ss__bufpool_init(struct ss__bufpool *p, size_t chunk, size_t max_free);
/* Free every cached chunk. */
void ss__bufpool_drain(struct ss__bufpool *p);

void ss__outq_init(struct ss__outq *q);
/* Append a copy of data[0..len). 0 or -ENOMEM (the queue is unchanged). */
int ss__outq_push(struct ss__outq *q, struct ss__bufpool *p, const void *data,
                  size_t len);
/* Fill up to max iovecs with the queued windows, in order; returns count. */
int ss__outq_iov(const struct ss__outq *q, struct iovec *iov, int max);
/* Drop n sent bytes from the front (n <= bytes); spent chunks to the pool. */
void ss__outq_consume(struct ss__outq *q, struct ss__bufpool *p, size_t n);
/* Drop everything. */
void ss__outq_clear(struct ss__outq *q, struct ss__bufpool *p);

#endif
