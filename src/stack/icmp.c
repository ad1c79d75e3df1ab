/* icmp: echo reply, error generation, and errors delivered to sockets
 * (RFC 792, RFC 1122 3.2.2). */
#include <errno.h>
#include <string.h>

#include "stack_int.h"

static void trace_icmp(ss_stack *st, enum ss_trace_kind k, uint32_t peer, uint8_t type,
                       uint8_t code, size_t len)
{
    if (!st->cfg.trace)
        return;
    struct ss_trace_event ev = {.kind = k, .sd = -1, .laddr = st->cfg.local_addr, .raddr = peer};
    ev.u.icmp.type = type;
    ev.u.icmp.code = code;
    ev.u.icmp.len = (uint16_t)len;
    ss__trace(st, &ev);
}

static void send_icmp(ss_stack *st, uint32_t dst, size_t len)
{
    uint8_t *m = st->tx + SS_IP_HDR;
    m[2] = m[3] = 0;
    ss__put16(m + 2, ss_csum_fold(ss_csum_add(0, m, len)));
    st->stats.icmp_out++;
    trace_icmp(st, SS_TRACE_ICMP_OUT, dst, m[0], m[1], len);
    ss__ip_output(st, st->tx, len, dst, SS_IPPROTO_ICMP, false, 0);
}

static bool is_error_type(uint8_t t)
{
    return t == 3 || t == 4 || t == 5 || t == 11 || t == 12;
}

void ss__icmp_error(ss_stack *st, uint8_t type, uint8_t code, const struct ss_ip *ip)
{
    /* RFC 1122 3.2.2: never about an ICMP error, a non-first fragment,
     * or a broadcast/multicast datagram. */
    if (ip->proto == SS_IPPROTO_ICMP && (ip->len < 1 || is_error_type(ip->payload[0])))
        return;
    if (ss__get16(ip->hdr + 6) & 0x1fff)
        return;
    size_t quote = ip->hdr_len + ss__min32((uint32_t)ip->len, 8);
    uint8_t *m = st->tx + SS_IP_HDR;
    m[0] = type;
    m[1] = code;
    memset(m + 4, 0, 4);
    memcpy(m + 8, ip->hdr, ip->hdr_len);
    memcpy(m + 8 + ip->hdr_len, ip->payload, quote - ip->hdr_len);
    send_icmp(st, ip->src, 8 + quote);
}

/* An error about a packet we sent: quoted = original IPv4 header + >= 8 bytes. */
static void deliver_error(ss_stack *st, uint8_t type, uint8_t code, const uint8_t *q, size_t qlen)
{
    if (qlen < SS_IP_HDR || (q[0] >> 4) != 4)
        return;
    size_t ihl = (size_t)(q[0] & 15) * 4;
    if (ihl < SS_IP_HDR || qlen < ihl + 8 || ss__get32(q + 12) != st->cfg.local_addr)
        return;
    int err;
    bool hard = false;
    if (type == 3) {
        switch (code) {
        case 2: err = -ENOPROTOOPT; hard = true; break;   /* protocol unreachable */
        case 3: err = -ECONNREFUSED; hard = true; break;  /* port unreachable */
        case 4: err = -EMSGSIZE; break;                   /* frag needed (no PMTUD yet) */
        case 0: case 6: case 11: err = -ENETUNREACH; break;
        case 9: case 10: case 13: err = -EACCES; break;
        default: err = -EHOSTUNREACH; break;
        }
    } else if (type == 11) {
        err = -EHOSTUNREACH;
    } else if (type == 12) {
        err = -EPROTO;
    } else {
        return;
    }
    if (q[9] == SS_IPPROTO_UDP)
        ss__udp_icmp_error(st, err, q, qlen);
    else if (q[9] == SS_IPPROTO_TCP)
        ss__tcp_icmp_error(st, err, hard, q, qlen);
}

void ss__icmp_input(ss_stack *st, const struct ss_ip *ip)
{
    st->stats.icmp_in++;
    const uint8_t *m = ip->payload;
    if (ip->len < 8 || ss_csum_fold(ss_csum_add(0, m, ip->len)) != 0) {
        st->stats.icmp_bad++;
        ss__trace_drop(st, NULL, SS_DROP_ICMP_BAD, SS_IPPROTO_ICMP, ip->src, ip->dst, 0, 0);
        return;
    }
    trace_icmp(st, SS_TRACE_ICMP_IN, ip->src, m[0], m[1], ip->len);
    switch (m[0]) {
    case 8: /* echo request -> echo reply, same identifier, sequence, data */
        if (m[1] != 0)
            return;
        st->stats.icmp_echo_in++;
        memmove(st->tx + SS_IP_HDR, m, ip->len);
        st->tx[SS_IP_HDR] = 0;
        send_icmp(st, ip->src, ip->len);
        break;
    case 3:
    case 11:
    case 12:
        st->stats.icmp_unreach_in++;
        deliver_error(st, m[0], m[1], m + 8, ip->len - 8);
        break;
    default:
        break; /* RFC 1122 3.2.2: unknown types are silently discarded */
    }
}
