/* echo: bytes back as they arrive (see sockstack/echo.h). */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "sockstack/config.h"
#include "sockstack/echo.h"
#include "sockstack/err.h"
#include "core/bytes.h"

/* Per-connection state, used by the sockperf variant only. */
struct echo_conn {
    uint8_t hdr[SS_SOCKPERF_HDR];
    size_t hdr_have;   /* header bytes collected */
    size_t body_left;  /* body bytes of the current message still to come */
    bool reply;        /* the current message is answered */
};

static const ss_echo_opts plain;

static const ss_echo_opts *opts_of(const void *ctx)
{
    return ctx ? ctx : &plain;
}

/* Write len bytes upper-cased, in small stack pieces (no allocation). */
static int write_upper(ss_conn *c, const uint8_t *p, size_t len)
{
    uint8_t tmp[4096];
    while (len > 0) {
        size_t n = len < sizeof tmp ? len : sizeof tmp;
        for (size_t i = 0; i < n; i++)
            tmp[i] = (p[i] >= 'a' && p[i] <= 'z') ? (uint8_t)(p[i] - 32) : p[i];
        int r = ss_conn_write(c, tmp, n);
        if (r < 0)
            return r;
        p += n;
        len -= n;
    }
    return 0;
}

/* Decide on a complete header: 0 ok (hdr flags updated), <0 malformed. */
static int sockperf_header(uint8_t *hdr, bool *reply, uint32_t *total)
{
    uint16_t flags = ss__get16(hdr + 8);
    *total = ss__get32(hdr + 10);
    if (*total < SS_SOCKPERF_HDR || *total > SS_SOCKPERF_MAX)
        return SS_EPEERPROTO;
    *reply = (flags & SS_SOCKPERF_CLIENT) && !(flags & SS_SOCKPERF_WARMUP) &&
             (flags & SS_SOCKPERF_PONG);
    flags &= (uint16_t)~SS_SOCKPERF_CLIENT;
    hdr[8] = (uint8_t)(flags >> 8);
    hdr[9] = (uint8_t)flags;
    return 0;
}

/* Stream sockperf: parse headers, pass bodies through as they arrive.
 * The reply bytes of one read are gathered in a scratch buffer and written
 * once, so a message that arrived whole goes back in one segment. */
static int sockperf_data(ss_conn *c, const uint8_t *p, size_t len)
{
    static _Thread_local uint8_t out[SS_SERVER_READ_CHUNK + SS_SOCKPERF_HDR];
    struct echo_conn *ec = ss_conn_ctx(c);
    size_t olen = 0;
    while (len > 0) {
        if (ec->body_left == 0 && ec->hdr_have < SS_SOCKPERF_HDR) {
            size_t n = SS_SOCKPERF_HDR - ec->hdr_have;
            if (n > len)
                n = len;
            memcpy(ec->hdr + ec->hdr_have, p, n);
            ec->hdr_have += n;
            p += n;
            len -= n;
            if (ec->hdr_have < SS_SOCKPERF_HDR)
                break;
            uint32_t total;
            int r = sockperf_header(ec->hdr, &ec->reply, &total);
            if (r < 0)
                return r;
            ec->body_left = total - SS_SOCKPERF_HDR;
            if (ec->reply) {
                memcpy(out + olen, ec->hdr, SS_SOCKPERF_HDR);
                olen += SS_SOCKPERF_HDR;
            }
            if (ec->body_left == 0) {
                ec->hdr_have = 0;
                continue;
            }
        }
        size_t n = len < ec->body_left ? len : ec->body_left;
        if (ec->reply) {
            memcpy(out + olen, p, n);
            olen += n;
        }
        p += n;
        len -= n;
        ec->body_left -= n;
        if (ec->body_left == 0)
            ec->hdr_have = 0;
    }
    /* out holds at most the input plus one header: len <= READ_CHUNK. */
    return olen ? ss_conn_write(c, out, olen) : 0;
}

static int echo_data(ss_conn *c, const void *data, size_t len)
{
    const ss_echo_opts *o = opts_of(ss_conn_server_ctx(c));
    if (o->sockperf)
        return sockperf_data(c, data, len);
    if (o->upper)
        return write_upper(c, data, len);
    return ss_conn_write(c, data, len);
}

static int echo_datagram(ss_server *srv, const void *data, size_t len,
                         bool truncated, const ss_addr *from)
{
    const ss_echo_opts *o = opts_of(ss_server_ctx(srv));
    if (o->sockperf) {
        if (len < SS_SOCKPERF_HDR || len > SS_SOCKPERF_MAX)
            return SS_EPEERPROTO;
        static _Thread_local uint8_t msg[SS_SOCKPERF_MAX];
        memcpy(msg, data, len);
        bool reply;
        uint32_t total;
        int r = sockperf_header(msg, &reply, &total);
        if (r < 0)
            return r;
        if (!reply)
            return 0;
        ssize_t n = ss_server_sendto(srv, msg, len, from);
        return n < 0 && n != -EAGAIN ? (int)n : 0;
    }
    if (o->upper) {
        static _Thread_local uint8_t msg[65536];
        const uint8_t *p = data;
        size_t n = len < sizeof msg ? len : sizeof msg;
        for (size_t i = 0; i < n; i++)
            msg[i] = (p[i] >= 'a' && p[i] <= 'z') ? (uint8_t)(p[i] - 32) : p[i];
        ssize_t r = ss_server_sendto(srv, msg, n, from);
        return r < 0 && r != -EAGAIN ? (int)r : 0;
    }
    ssize_t r = ss_server_sendto(srv, data, len, from);
    return r < 0 && r != -EAGAIN ? (int)r : 0;
}

static const ss_service echo_service = {
    .name = "echo",
    .conn_ctx_size = sizeof(struct echo_conn),
    .on_data = echo_data,
    .on_datagram = echo_datagram,
};

const ss_service *ss_echo_service(void)
{
    return &echo_service;
}
