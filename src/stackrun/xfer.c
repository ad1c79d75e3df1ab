/* A bulk transfer over the stack's socket API, hashed on both ends.
 *
 * Sender:   connect -> send `bytes` of a seeded pattern -> shutdown (FIN)
 *           -> read to the peer's EOF -> close.
 *           With wait_eof the shutdown waits for the peer's EOF instead,
 *           so the peer closes first (passive close here).
 * Receiver: listen -> accept one -> read to EOF (echoing if asked) -> close.
 * Every byte sent and received goes through SHA-256, so a run proves (or
 * disproves) that each byte arrived exactly once and in order. */
#include <errno.h>
#include <openssl/evp.h>
#include <string.h>

#include "sockstack/stackrun.h"

void ss_xfer_pattern(struct ss_prng *rng, unsigned char *buf, size_t len)
{
    ss_prng_fill(rng, buf, len);
}

static uint64_t now_of(struct ss_xfer *x) { return x->now_fn(x->now_arg); }

static int hash_init(struct ss_xfer *x)
{
    x->sha_out = EVP_MD_CTX_new();
    x->sha_in = EVP_MD_CTX_new();
    if (!x->sha_out || !x->sha_in ||
        !EVP_DigestInit_ex(x->sha_out, EVP_sha256(), NULL) ||
        !EVP_DigestInit_ex(x->sha_in, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(x->sha_out);
        EVP_MD_CTX_free(x->sha_in);
        x->sha_out = x->sha_in = NULL;
        return -ENOMEM;
    }
    return 0;
}

static void hash_final(struct ss_xfer *x)
{
    unsigned int len;
    if (x->sha_out) {
        EVP_DigestFinal_ex(x->sha_out, x->sha_sent, &len);
        EVP_MD_CTX_free(x->sha_out);
        x->sha_out = NULL;
    }
    if (x->sha_in) {
        EVP_DigestFinal_ex(x->sha_in, x->sha_received, &len);
        EVP_MD_CTX_free(x->sha_in);
        x->sha_in = NULL;
    }
}

/* Release the handle: graceful close, or abort after an error. */
static void finish(struct ss_xfer *x, int err)
{
    if (x->closed)
        return;
    if (err && !x->error)
        x->error = err;
    if (x->sd >= 0) {
        if (x->error)
            ss_tcp_abort(x->st, now_of(x), x->sd);
        else
            ss_tcp_close(x->st, now_of(x), x->sd);
        x->sd = -1;
    }
    if (x->lsd >= 0) {
        ss_tcp_close(x->st, now_of(x), x->lsd);
        x->lsd = -1;
    }
    x->closed = true;
    x->t_closed_us = now_of(x);
    hash_final(x);
}

/* Hand the rest of the current chunk to the stack: 1 when all of it went
 * (the chunk is then empty), 0 when the send buffer is full, or an error. */
static int send_chunk(struct ss_xfer *x)
{
    while (x->chunk_off < x->chunk_len) {
        ssize_t n = ss_tcp_send(x->st, now_of(x), x->sd, x->chunk + x->chunk_off,
                                x->chunk_len - x->chunk_off);
        if (n == -EAGAIN)
            return 0;
        if (n < 0)
            return (int)n;
        x->chunk_off += (size_t)n;
        x->sent += (uint64_t)n;
    }
    x->chunk_off = x->chunk_len = 0;
    return 1;
}

/* Sender: queue pattern bytes until the buffer is full or all are sent. */
static int pump_sender(struct ss_xfer *x)
{
    while (x->sent < x->bytes || x->chunk_off < x->chunk_len) {
        if (x->chunk_off == x->chunk_len) {
            uint64_t left = x->bytes - x->sent;
            size_t n = left < sizeof x->chunk ? (size_t)left : sizeof x->chunk;
            ss_xfer_pattern(&x->rng, x->chunk, n);
            EVP_DigestUpdate(x->sha_out, x->chunk, n);
            x->chunk_len = n;
            x->chunk_off = 0;
        }
        int rc = send_chunk(x);
        if (rc <= 0)
            return rc;
    }
    if (!x->shut && (!x->wait_eof || x->eof)) {
        int rc = ss_tcp_shutdown(x->st, now_of(x), x->sd);
        if (rc < 0)
            return rc;
        x->shut = true;
    }
    return 0;
}

/* Receiver (echo): push back what is pending. */
static int flush_echo(struct ss_xfer *x)
{
    int rc = send_chunk(x);
    return rc < 0 ? rc : 0;
}

/* Up to max bytes hashed where they lie in the receive ring
 * (ss_tcp_recv_view: no copy) and taken: the count, 0 at EOF, -EAGAIN, or
 * an error. Taken in the same steps as a recv into a max-byte buffer, so
 * that the window updates, and so the simulated runs, stay the same. */
static ssize_t hash_in_place(struct ss_xfer *x, size_t max)
{
    struct iovec v[2];
    int k = ss_tcp_recv_view(x->st, x->sd, v);
    if (k <= 0)
        return k;
    size_t n = 0;
    for (int i = 0; i < k && n < max; i++) {
        size_t take = v[i].iov_len < max - n ? v[i].iov_len : max - n;
        EVP_DigestUpdate(x->sha_in, v[i].iov_base, take);
        n += take;
    }
    return ss_tcp_recv_done(x->st, now_of(x), x->sd, n);
}

/* Read what is there; echo mode stops while output is pending. */
static int drain(struct ss_xfer *x, bool sender)
{
    enum { STEP = 16384 };
    while (!x->eof) {
        if (!sender && x->echo && x->chunk_len)
            return 0;
        bool echo = !sender && x->echo;
        ssize_t n = echo ? ss_tcp_recv(x->st, now_of(x), x->sd, x->chunk, STEP)
                         : hash_in_place(x, STEP);
        if (n == -EAGAIN)
            return 0;
        if (n < 0)
            return (int)n;
        if (n == 0) {
            x->eof = true;
            x->t_eof_us = now_of(x);
            break;
        }
        x->received += (uint64_t)n;
        if (echo) {
            EVP_DigestUpdate(x->sha_in, x->chunk, (size_t)n);
            EVP_DigestUpdate(x->sha_out, x->chunk, (size_t)n);
            x->chunk_len = (size_t)n;
            x->chunk_off = 0;
            int rc = flush_echo(x);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static void sender_cb(void *arg, ss_stack *st, int sd, unsigned ev, int err)
{
    struct ss_xfer *x = arg;
    if (x->closed || sd != x->sd)
        return;
    if (ev & SS_EV_ERROR) {
        finish(x, err ? err : -EIO);
        return;
    }
    if ((ev & SS_EV_CONNECTED) && !x->connected) {
        x->connected = true;
        x->t_connected_us = now_of(x);
    }
    int rc = 0;
    if (ev & SS_EV_READABLE)
        rc = drain(x, true);
    if (rc == 0 && x->connected && (ev & (SS_EV_WRITABLE | SS_EV_CONNECTED | SS_EV_READABLE)))
        rc = pump_sender(x);
    if (rc < 0) {
        finish(x, rc);
        return;
    }
    if (x->eof && x->shut)
        finish(x, 0);
}

static void receiver_cb(void *arg, ss_stack *st, int sd, unsigned ev, int err)
{
    struct ss_xfer *x = arg;
    if (x->closed)
        return;
    if (sd == x->lsd) {
        if (ev & SS_EV_ACCEPT) {
            uint32_t ra;
            uint16_t rp;
            int c = ss_tcp_accept(st, x->lsd, &ra, &rp);
            if (c >= 0 && x->sd < 0) {
                x->sd = c;
                x->connected = true;
                x->t_connected_us = now_of(x);
                ss_stack_sock_set_cb(st, c, receiver_cb, x);
                /* One connection only; the listener stays (refusing
                 * nothing) until the transfer is over, so the trace
                 * shows the connection's story first. */
                ev = (unsigned)ss_stack_sock_events(st, c);
                sd = c;
                if ((int)ev < 0)
                    return;
            } else {
                return;
            }
        } else {
            return;
        }
    }
    if (sd != x->sd)
        return;
    if (ev & SS_EV_ERROR) {
        finish(x, err ? err : ss_stack_sock_error(st, sd));
        return;
    }
    int rc = 0;
    if (ev & SS_EV_WRITABLE)
        rc = flush_echo(x);
    if (rc == 0)
        rc = drain(x, false);
    if (rc < 0) {
        finish(x, rc);
        return;
    }
    if (x->eof && x->chunk_len == 0)
        finish(x, 0);
}

static int common_init(struct ss_xfer *x, ss_stack *st,
                       uint64_t (*now_fn)(void *), void *now_arg)
{
    x->st = st;
    x->now_fn = now_fn;
    x->now_arg = now_arg;
    x->sd = x->lsd = -1;
    x->sent = x->received = 0;
    x->connected = x->eof = x->closed = x->shut = false;
    x->error = 0;
    x->chunk_len = x->chunk_off = 0;
    ss_prng_seed(&x->rng, x->seed);
    return hash_init(x);
}

int ss_xfer_start_sender(struct ss_xfer *x, ss_stack *st,
                         uint64_t (*now_fn)(void *), void *now_arg,
                         uint32_t raddr, uint16_t rport)
{
    int rc = common_init(x, st, now_fn, now_arg);
    if (rc < 0)
        return rc;
    int sd = ss_tcp_connect(st, now_of(x), raddr, rport, 0);
    if (sd < 0) {
        hash_final(x);
        return sd;
    }
    x->sd = sd;
    ss_stack_sock_set_cb(st, sd, sender_cb, x);
    return 0;
}

int ss_xfer_start_receiver(struct ss_xfer *x, ss_stack *st,
                           uint64_t (*now_fn)(void *), void *now_arg,
                           uint16_t port)
{
    int rc = common_init(x, st, now_fn, now_arg);
    if (rc < 0)
        return rc;
    int lsd = ss_tcp_listen(st, port, 1);
    if (lsd < 0) {
        hash_final(x);
        return lsd;
    }
    x->lsd = lsd;
    ss_stack_sock_set_cb(st, lsd, receiver_cb, x);
    return 0;
}

bool ss_xfer_finished(const struct ss_xfer *x) { return x->closed; }

void ss_xfer_cleanup(struct ss_xfer *x)
{
    if (!x->closed && (x->sd >= 0 || x->lsd >= 0))
        finish(x, -ECANCELED);
    hash_final(x);
}
