/* Output queue: chunk chain with data windows (see outq.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "server/outq.h"

void ss__bufpool_init(struct ss__bufpool *p, size_t chunk, size_t max_free)
{
    *p = (struct ss__bufpool){.chunk = chunk ? chunk : 16384, .max_free = max_free};
}

void ss__bufpool_drain(struct ss__bufpool *p)
{
    while (p->free) {
        struct ss__obuf *b = p->free;
        p->free = b->next;
        free(b);
    }
    p->nfree = 0;
}

static struct ss__obuf *buf_get(struct ss__bufpool *p)
{
    struct ss__obuf *b = p->free;
    if (b) {
        p->free = b->next;
        p->nfree--;
    } else {
        b = malloc(sizeof *b + p->chunk);
        if (!b)
            return NULL;
        b->end = b->start + p->chunk;
    }
    b->next = NULL;
    b->pos = b->last = b->start;
    return b;
}

static void buf_put(struct ss__bufpool *p, struct ss__obuf *b)
{
    if (p->nfree >= p->max_free) {
        free(b);
        return;
    }
    b->next = p->free;
    p->free = b;
    p->nfree++;
}

void ss__outq_init(struct ss__outq *q)
{
    *q = (struct ss__outq){0};
}

int ss__outq_push(struct ss__outq *q, struct ss__bufpool *p, const void *data,
                  size_t len)
{
    const char *src = data;
    size_t left = len, filled = 0;
    /* Fill the room left in the tail chunk first. */
    if (q->tail && q->tail->last < q->tail->end) {
        size_t room = (size_t)(q->tail->end - q->tail->last);
        size_t n = left < room ? left : room;
        memcpy(q->tail->last, src, n);
        q->tail->last += n;
        src += n;
        left -= n;
        filled = n;
    }
    /* Then new chunks, built on a private chain so that a failed
     * allocation leaves the queue as it was (minus nothing). */
    struct ss__obuf *first = NULL, *last = NULL;
    while (left > 0) {
        struct ss__obuf *b = buf_get(p);
        if (!b) {
            while (first) {
                struct ss__obuf *nx = first->next;
                buf_put(p, first);
                first = nx;
            }
            if (q->tail) /* undo the tail fill */
                q->tail->last -= filled;
            return -ENOMEM;
        }
        size_t n = left < p->chunk ? left : p->chunk;
        memcpy(b->last, src, n);
        b->last += n;
        src += n;
        left -= n;
        if (last)
            last->next = b;
        else
            first = b;
        last = b;
    }
    if (first) {
        if (q->tail)
            q->tail->next = first;
        else
            q->head = first;
        q->tail = last;
    }
    q->bytes += len;
    return 0;
}

int ss__outq_iov(const struct ss__outq *q, struct iovec *iov, int max)
{
    int n = 0;
    for (struct ss__obuf *b = q->head; b && n < max; b = b->next) {
        if (b->last == b->pos)
            continue;
        iov[n].iov_base = b->pos;
        iov[n].iov_len = (size_t)(b->last - b->pos);
        n++;
    }
    return n;
}

void ss__outq_consume(struct ss__outq *q, struct ss__bufpool *p, size_t n)
{
    if (n > q->bytes)
        n = q->bytes;
    q->bytes -= n;
    while (q->head) {
        struct ss__obuf *b = q->head;
        size_t have = (size_t)(b->last - b->pos);
        if (n < have) {
            b->pos += n;
            return;
        }
        n -= have;
        /* Spent chunks go back to the pool at once, so an idle connection
         * holds no output memory at all. */
        q->head = b->next;
        if (!q->head)
            q->tail = NULL;
        buf_put(p, b);
    }
}

void ss__outq_clear(struct ss__outq *q, struct ss__bufpool *p)
{
    while (q->head) {
        struct ss__obuf *b = q->head;
        q->head = b->next;
        buf_put(p, b);
    }
    q->tail = NULL;
    q->bytes = 0;
}
