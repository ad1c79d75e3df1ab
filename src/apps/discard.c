/* discard and source (see sockstack/discard.h). */
#include <errno.h>
#include <stdint.h>

#include "sockstack/config.h"
#include "sockstack/discard.h"
#include "sockstack/link.h"

/* ---- discard ------------------------------------------------------------ */

static int discard_data(ss_conn *c, const void *data, size_t len)
{
    return 0;
}

static int discard_datagram(ss_server *srv, const void *data, size_t len,
                            bool truncated, const ss_addr *from)
{
    return 0;
}

static const ss_service discard_service = {
    .name = "discard",
    .on_data = discard_data,
    .on_datagram = discard_datagram,
};

const ss_service *ss_discard_service(void) { return &discard_service; }

/* ---- source ------------------------------------------------------------- */

struct source_conn {
    uint64_t left;
    bool zeros;
    struct ss_prng rng;
};

/* The framework's producer pattern: write pattern chunks until the output
 * queue is full (a write goes straight to the socket while nothing is
 * queued), then on_drain brings us back. Done: close. */
static int source_more(ss_conn *c)
{
    static const unsigned char zeros[SS_SOURCE_CHUNK];
    struct source_conn *sc = ss_conn_ctx(c);
    unsigned char chunk[SS_SOURCE_CHUNK];
    while (sc->left > 0 && !ss_conn_out_full(c)) {
        size_t n = sc->left < sizeof chunk ? (size_t)sc->left : sizeof chunk;
        const unsigned char *from = zeros;
        if (!sc->zeros) {
            ss_prng_fill(&sc->rng, chunk, n);
            from = chunk;
        }
        int r = ss_conn_write(c, from, n);
        if (r < 0)
            return r;
        sc->left -= n;
    }
    if (sc->left == 0)
        ss_conn_close(c); /* sends what is queued, then FIN */
    return 0;
}

static int source_open(ss_conn *c)
{
    const ss_source_opts *o = ss_conn_server_ctx(c);
    struct source_conn *sc = ss_conn_ctx(c);
    sc->left = o ? o->bytes : 0;
    sc->zeros = o && o->zeros;
    ss_prng_seed(&sc->rng, o ? o->seed : 0);
    return source_more(c);
}

/* The client's FIN (many readers half-close at once): keep sending. */
static int source_eof(ss_conn *c)
{
    return 0;
}

static const ss_service source_service = {
    .name = "source",
    .conn_ctx_size = sizeof(struct source_conn),
    .on_open = source_open,
    .on_eof = source_eof,
    .on_drain = source_more,
};

const ss_service *ss_source_service(void) { return &source_service; }
