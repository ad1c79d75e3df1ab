/* udp: RFC 768 with RFC 1122 4.1: checksums generated and verified,
 * bounded per-socket queues, port unreachable for closed ports. */
#include <errno.h>
#include <string.h>

#include "stack_int.h"

/* Each queued datagram is stored in the socket's receive ring as an
 * 8-byte record header (source address, source port, length) + data. */
enum { REC_HDR = 8 };

static void trace_udp(ss_stack *st, struct ss_pcb *sk, enum ss_trace_kind k, uint32_t peer,
                      uint16_t pport, size_t len)
{
    if (!st->cfg.trace)
        return;
    struct ss_trace_event ev = {.kind = k, .sd = sk ? sk->id : -1,
                                .laddr = st->cfg.local_addr, .raddr = peer,
                                .lport = sk ? sk->lport : 0, .rport = pport};
    ev.u.udp.len = (uint16_t)len;
    ss__trace(st, &ev);
}

static void bad(ss_stack *st, const struct ss_ip *ip, uint64_t *ctr)
{
    st->stats.udp_bad++;
    if (ctr)
        (*ctr)++;
    ss__trace_drop(st, NULL, SS_DROP_UDP_BAD, SS_IPPROTO_UDP, ip->src, ip->dst, 0, 0);
}

void ss__udp_input(ss_stack *st, const struct ss_ip *ip)
{
    st->stats.udp_in++;
    const uint8_t *u = ip->payload;
    if (ip->len < SS_UDP_HDR) {
        bad(st, ip, NULL);
        return;
    }
    uint16_t ulen = ss__get16(u + 4);
    if (ulen < SS_UDP_HDR || ulen > ip->len) {
        bad(st, ip, NULL);
        return;
    }
    /* A zero checksum means "not computed" (RFC 768); anything else must
     * verify over pseudo-header + UDP header + data, unless the link
     * vouches for it (SS_RX_CSUM_OK: partial or already checked). */
    if (ss__get16(u + 6) != 0 && !(st->rx_flags & SS_RX_CSUM_OK)) {
        uint32_t s = ss__pseudo_sum(ip->src, ip->dst, SS_IPPROTO_UDP, ulen);
        if (ss_csum_fold(ss_csum_add(s, u, ulen)) != 0) {
            bad(st, ip, &st->stats.udp_bad_checksum);
            return;
        }
    }
    uint16_t sport = ss__get16(u), dport = ss__get16(u + 2);
    struct ss_pcb *sk = ss__udp_lookup(st, dport);
    if (!sk) {
        st->stats.udp_no_port++;
        ss__trace_drop(st, NULL, SS_DROP_UDP_NO_PORT, SS_IPPROTO_UDP, ip->src, ip->dst, sport,
                       dport);
        ss__icmp_error(st, 3, 3, ip);
        return;
    }
    size_t dlen = ulen - SS_UDP_HDR;
    trace_udp(st, sk, SS_TRACE_UDP_IN, ip->src, sport, dlen);
    if (sk->udp_q >= st->cfg.udp_rcvq_max || ss__ring_free(&sk->rcv) < REC_HDR + dlen ||
        !ss__ring_reserve(st, &sk->rcv, sk->rcv.len + REC_HDR + (uint32_t)dlen)) {
        st->stats.udp_queue_full++;
        ss__trace_drop(st, sk, SS_DROP_UDP_QUEUE_FULL, SS_IPPROTO_UDP, ip->src, ip->dst, sport,
                       dport);
        return;
    }
    uint8_t h[REC_HDR];
    ss__put32(h, ip->src);
    ss__put16(h + 4, sport);
    ss__put16(h + 6, (uint16_t)dlen);
    ss__ring_write(&sk->rcv, h, REC_HDR);
    ss__ring_write(&sk->rcv, u + SS_UDP_HDR, (uint32_t)dlen);
    sk->udp_q++;
    sk->bytes_in += dlen;
    sk->segs_in++;
    ss__stack_sock_event(st, sk, SS_EV_READABLE, 0);
}

void ss__udp_icmp_error(ss_stack *st, int err, const uint8_t *q, size_t qlen)
{
    size_t ihl = (size_t)(q[0] & 15) * 4;
    uint16_t sport = ss__get16(q + ihl);
    struct ss_pcb *sk = ss__udp_lookup(st, sport);
    if (!sk)
        return;
    (void)qlen;
    sk->error = err;
    ss__stack_sock_event(st, sk, SS_EV_ERROR, err);
}

ssize_t ss_udp_sendto(ss_stack *st, uint64_t now_us, int sd, uint32_t raddr, uint16_t rport,
                      const void *buf, size_t len)
{
    st->now = now_us;
    struct ss_pcb *sk = ss__stack_sock_get(st, sd);
    if (!sk || sk->kind != SS_SK_UDP)
        return -EBADF;
    if (sk->error) {
        int e = sk->error;
        sk->error = 0;
        return e;
    }
    if (len > SS_PKT_MAX - SS_IP_HDR - SS_UDP_HDR)
        return -EMSGSIZE;
    if (rport == 0 || raddr == 0)
        return -EINVAL;
    uint8_t *u = st->tx + SS_IP_HDR;
    uint16_t ulen = (uint16_t)(SS_UDP_HDR + len);
    ss__put16(u, sk->lport);
    ss__put16(u + 2, rport);
    ss__put16(u + 4, ulen);
    u[6] = u[7] = 0;
    memcpy(u + SS_UDP_HDR, buf, len);
    uint32_t s = ss__pseudo_sum(st->cfg.local_addr, raddr, SS_IPPROTO_UDP, ulen);
    uint16_t c = ss_csum_fold(ss_csum_add(s, u, ulen));
    ss__put16(u + 6, c ? c : 0xffff);   /* RFC 768: a computed 0 is sent as all ones */
    st->stats.udp_out++;
    sk->bytes_out += len;
    sk->segs_out++;
    trace_udp(st, sk, SS_TRACE_UDP_OUT, raddr, rport, len);
    int rc = ss__ip_output(st, st->tx, ulen, raddr, SS_IPPROTO_UDP, false, sk->tos);
    return rc < 0 ? rc : (ssize_t)len;
}

ssize_t ss_udp_recvfrom(ss_stack *st, int sd, void *buf, size_t len, uint32_t *raddr,
                        uint16_t *rport)
{
    return ss_udp_recvmsg(st, sd, buf, len, raddr, rport, NULL);
}

ssize_t ss_udp_recvmsg(ss_stack *st, int sd, void *buf, size_t len, uint32_t *raddr,
                       uint16_t *rport, bool *truncated)
{
    struct ss_pcb *sk = ss__stack_sock_get(st, sd);
    if (!sk || sk->kind != SS_SK_UDP)
        return -EBADF;
    if (sk->udp_q == 0) {
        if (sk->error) {
            int e = sk->error;
            sk->error = 0;
            return e;
        }
        return -EAGAIN;
    }
    uint8_t h[REC_HDR];
    ss__ring_peek(&sk->rcv, 0, h, REC_HDR);
    uint32_t dlen = ss__get16(h + 6);
    uint32_t n = ss__min32(dlen, len > UINT32_MAX ? UINT32_MAX : (uint32_t)len);
    if (n)
        ss__ring_peek(&sk->rcv, REC_HDR, buf, n);
    ss__ring_consume(&sk->rcv, REC_HDR + dlen);
    sk->udp_q--;
    if (!sk->udp_q)
        ss__sock_ring_idle(st, sk);
    if (raddr)
        *raddr = ss__get32(h);
    if (rport)
        *rport = ss__get16(h + 4);
    if (truncated)
        *truncated = n < dlen;
    return (ssize_t)n;
}

/* ---- UDP user calls ------------------------------------------------------ */
int ss_udp_bind(ss_stack *st, uint16_t port)
{
    if (port == 0)
        port = ss__ephemeral_port(st, SS_SK_UDP);
    else if (ss__port_in_use(st, SS_SK_UDP, port))
        return -EADDRINUSE;
    if (port == 0)
        return -EADDRINUSE;
    struct ss_pcb *sk = ss__stack_sock_alloc(st, SS_SK_UDP);
    if (!sk)
        return -EMFILE;
    sk->user = true;
    sk->lport = port;
    ss__sock_hash(st, sk);
    return sk->id;
}

int ss_udp_close(ss_stack *st, int sd)
{
    struct ss_pcb *sk = ss__stack_sock_get(st, sd);
    if (!sk || sk->kind != SS_SK_UDP)
        return -EBADF;
    ss__stack_sock_release(st, sk);
    return 0;
}
