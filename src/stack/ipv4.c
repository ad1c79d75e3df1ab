/* ipv4: header validation, demultiplexing, fragment reassembly, output.
 *
 * RFC 791 and RFC 1122 3.2.1: version, IHL, total length, header checksum
 * and TTL are checked; options are skipped (not interpreted); a packet not
 * for our address is dropped (we do not forward). Every drop is counted.
 */
#include <errno.h>
#include <string.h>

#include "stack_int.h"

static void drop(ss_stack *st, int reason, uint64_t *counter, uint8_t proto, uint32_t src,
                 uint32_t dst)
{
    (*counter)++;
    ss__trace_drop(st, NULL, reason, proto, src, dst, 0, 0);
}

static void deliver(ss_stack *st, const struct ss_ip *ip)
{
    st->stats.ip_delivered++;
    switch (ip->proto) {
    case SS_IPPROTO_ICMP:
        ss__icmp_input(st, ip);
        break;
    case SS_IPPROTO_UDP:
        ss__udp_input(st, ip);
        break;
    case SS_IPPROTO_TCP:
        ss__tcp_input(st, ip);
        break;
    default:
        /* RFC 1122 3.2.2.1: protocol unreachable for an unknown protocol. */
        drop(st, SS_DROP_IP_PROTO, &st->stats.ip_unknown_proto, ip->proto, ip->src, ip->dst);
        ss__icmp_error(st, 3, 2, ip);
        break;
    }
}

/* ---- reassembly (RFC 791 3.2, RFC 815 style bitmap of 8-byte blocks) ----
 * Bounded twice: at most cfg.frag_slots datagrams in progress and at most
 * cfg.frag_mem bytes of fragment data held across them (st->frag_mem).
 * Under pressure the oldest reassembly (the earliest deadline) goes
 * first, as Linux evicts past ipfrag_high_thresh: a sender that only
 * ever sends first fragments cannot hold the slots until they time out. */
static void frag_release(ss_stack *st, struct ss_frag *f)
{
    st->frag_mem -= f->have;
    f->have = 0;
    f->used = false;
}

static void frag_drop(ss_stack *st, struct ss_frag *f)
{
    drop(st, SS_DROP_IP_FRAG, &st->stats.ip_frag_dropped, f->proto, f->src, f->dst);
    frag_release(st, f);
}

/* Drop the oldest reassembly other than keep: its slot, NULL if none. */
static struct ss_frag *frag_evict_oldest(ss_stack *st, const struct ss_frag *keep)
{
    struct ss_frag *old = NULL;
    for (uint32_t i = 0; i < st->cfg.frag_slots; i++) {
        struct ss_frag *f = &st->frags[i];
        if (f->used && f != keep && (!old || f->deadline < old->deadline))
            old = f;
    }
    if (old) {
        st->stats.ip_frag_evicted++;
        frag_drop(st, old);
    }
    return old;
}

static struct ss_frag *frag_slot(ss_stack *st, const struct ss_ip *ip)
{
    struct ss_frag *free_slot = NULL;
    for (uint32_t i = 0; i < st->cfg.frag_slots; i++) {
        struct ss_frag *f = &st->frags[i];
        if (f->used && f->src == ip->src && f->dst == ip->dst && f->id == ip->id &&
            f->proto == ip->proto)
            return f;
        if (!f->used && !free_slot)
            free_slot = f;
    }
    if (!free_slot)
        free_slot = frag_evict_oldest(st, NULL);   /* all used: frag_slots > 0 of them */
    free_slot->used = true;
    free_slot->src = ip->src;
    free_slot->dst = ip->dst;
    free_slot->id = ip->id;
    free_slot->proto = ip->proto;
    free_slot->total = 0;
    free_slot->have = 0;
    free_slot->hdr_len = 0;
    free_slot->deadline = st->now + (uint64_t)st->cfg.frag_timeout_ms * 1000;
    memset(free_slot->map, 0, SS_PKT_MAX / 64 + 1);
    return free_slot;
}

static bool map_get(const uint8_t *m, uint32_t b) { return m[b >> 3] & (1u << (b & 7)); }
static void map_set(uint8_t *m, uint32_t b) { m[b >> 3] |= (uint8_t)(1u << (b & 7)); }

static void frag_input(ss_stack *st, struct ss_ip *ip, uint16_t off_field)
{
    st->stats.ip_frag_in++;
    uint32_t off = (uint32_t)(off_field & 0x1fff) * 8;
    bool more = off_field & 0x2000;
    if ((more && (ip->len % 8 != 0 || ip->len == 0)) || off + ip->len > SS_PKT_MAX - 60) {
        drop(st, SS_DROP_IP_FRAG, &st->stats.ip_frag_dropped, ip->proto, ip->src, ip->dst);
        return;
    }
    struct ss_frag *f = frag_slot(st, ip);
    /* Overlapping fragments are a classic attack vector: drop the whole
     * datagram (as RFC 5722 does for IPv6). Exact duplicates are ignored. */
    uint32_t b0 = off / 8, nb = (ip->len + 7) / 8;
    uint32_t seen = 0;
    for (uint32_t b = b0; b < b0 + nb; b++)
        seen += map_get(f->map, b);
    if (seen == nb)
        return; /* an exact duplicate of what we have */
    if (seen != 0 || (f->total && off + ip->len > f->total) || (!more && f->total)) {
        frag_drop(st, f);
        return;
    }
    if (!more) {
        f->total = off + ip->len;
        for (uint32_t b = (f->total + 7) / 8; b <= SS_PKT_MAX / 8; b++)
            if (map_get(f->map, b)) { /* data beyond the end */
                frag_drop(st, f);
                return;
            }
    }
    /* The memory bound: older reassemblies make room, or this one goes. */
    while (st->frag_mem + ip->len > st->cfg.frag_mem) {
        if (!frag_evict_oldest(st, f)) {
            frag_drop(st, f);
            return;
        }
    }
    memcpy(f->buf + 60 + off, ip->payload, ip->len);
    for (uint32_t b = b0; b < b0 + nb; b++)
        map_set(f->map, b);
    f->have += ip->len;
    st->frag_mem += ip->len;
    if (off == 0) {
        memcpy(f->hdr, ip->hdr, ip->hdr_len);
        f->hdr_len = ip->hdr_len;
    }
    if (!f->total || f->have != f->total || !f->hdr_len)
        return;
    st->stats.ip_frag_reassembled++;
    struct ss_ip whole = *ip;
    whole.hdr = f->hdr;
    whole.hdr_len = f->hdr_len;
    whole.payload = f->buf + 60;
    whole.len = f->total;
    frag_release(st, f);   /* the buffer stays intact until the next fragment */
    deliver(st, &whole);
}

uint64_t ss__frag_timers(ss_stack *st, uint64_t now)
{
    uint64_t next = SS_NEVER;
    for (uint32_t i = 0; i < st->cfg.frag_slots; i++) {
        struct ss_frag *f = &st->frags[i];
        if (!f->used)
            continue;
        if (now >= f->deadline) {
            st->stats.ip_frag_timeout++;
            frag_drop(st, f);
            /* RFC 792: time exceeded (reassembly) only if the first fragment came. */
        } else {
            next = ss__min64(next, f->deadline);
        }
    }
    return next;
}

void ss__ip_input(ss_stack *st, const uint8_t *pkt, size_t len)
{
    st->stats.ip_in++;
    if (len < SS_IP_HDR) {
        drop(st, SS_DROP_IP_SHORT, &st->stats.ip_bad_len, 0, 0, 0);
        return;
    }
    if ((pkt[0] >> 4) != 4) {
        drop(st, SS_DROP_IP_VERSION, &st->stats.ip_bad_header, 0, 0, 0);
        return;
    }
    size_t ihl = (size_t)(pkt[0] & 0x0f) * 4;
    uint16_t total = ss__get16(pkt + 2);
    uint32_t src = ss__get32(pkt + 12), dst = ss__get32(pkt + 16);
    if (ihl < SS_IP_HDR || ihl > len) {
        drop(st, SS_DROP_IP_HDRLEN, &st->stats.ip_bad_header, pkt[9], src, dst);
        return;
    }
    /* Link layers may pad: bytes beyond the total length are ignored. */
    if (total < ihl || total > len) {
        drop(st, SS_DROP_IP_TOTLEN, &st->stats.ip_bad_len, pkt[9], src, dst);
        return;
    }
    if (ss_csum_fold(ss_csum_add(0, pkt, ihl)) != 0) {
        drop(st, SS_DROP_IP_CHECKSUM, &st->stats.ip_bad_checksum, pkt[9], src, dst);
        return;
    }
    /* TTL 0 or 1 is no reason to drop: RFC 1122 3.2.1.7, a host MUST NOT
     * discard a datagram for its TTL (only a router forwarding it does). */
    if (dst != st->cfg.local_addr) {
        drop(st, SS_DROP_IP_NOT_US, &st->stats.ip_not_for_us, pkt[9], src, dst);
        return;
    }
    /* RFC 1122 3.2.1.3: silently discard datagrams from broadcast,
     * multicast or "this network" sources. */
    if (src == 0xffffffffu || (src >> 28) == 0xe || (src >> 24) == 0 || src == dst) {
        drop(st, SS_DROP_IP_SRC, &st->stats.ip_bad_src, pkt[9], src, dst);
        return;
    }
    struct ss_ip ip = {
        .src = src, .dst = dst, .proto = pkt[9], .ttl = pkt[8], .tos = pkt[1],
        .id = ss__get16(pkt + 4), .hdr = pkt, .hdr_len = ihl,
        .payload = pkt + ihl, .len = total - ihl,
    };
    uint16_t frag = ss__get16(pkt + 6);
    if (frag & 0x3fff) {   /* MF set or offset != 0 */
        if (st->cfg.frag_slots == 0) {
            st->stats.ip_frag_in++;
            drop(st, SS_DROP_IP_FRAG, &st->stats.ip_frag_dropped, ip.proto, src, dst);
            return;
        }
        frag_input(st, &ip, frag);
        return;
    }
    deliver(st, &ip);
}

int ss__ip_output(ss_stack *st, uint8_t *pkt, size_t payload_len, uint32_t dst, uint8_t proto,
                  bool df, uint8_t tos)
{
    return ss__ip_output_v(st, pkt, payload_len, NULL, 0, dst, proto, df, tos);
}

int ss__ip_output_v(ss_stack *st, uint8_t *pkt, size_t payload_len, const struct iovec *data,
                    int ndata, uint32_t dst, uint8_t proto, bool df, uint8_t tos)
{
    size_t more = 0;
    for (int i = 0; i < ndata; i++)
        more += data[i].iov_len;
    size_t total = SS_IP_HDR + payload_len + more;
    if (total > SS_PKT_MAX)
        return -EMSGSIZE;
    pkt[0] = 0x45;
    pkt[1] = tos;
    ss__put16(pkt + 2, (uint16_t)total);
    ss__put16(pkt + 4, st->ip_id++);
    ss__put16(pkt + 6, df ? 0x4000 : 0);
    pkt[8] = st->cfg.ttl;
    pkt[9] = proto;
    pkt[10] = pkt[11] = 0;
    ss__put32(pkt + 12, st->cfg.local_addr);
    ss__put32(pkt + 16, dst);
    ss__put16(pkt + 10, ss_csum_fold(ss_csum_add(0, pkt, SS_IP_HDR)));
    st->stats.ip_out++;
    int rc;
    if (st->cfg.output_offload && proto == SS_IPPROTO_TCP) {
        struct iovec iov[3] = {{pkt, SS_IP_HDR + payload_len}};
        for (int i = 0; i < ndata && i < 2; i++)
            iov[1 + i] = data[i];
        rc = st->cfg.output_offload(st->cfg.output_ctx, iov, 1 + (ndata < 2 ? ndata : 2),
                                    st->tx_gso, st->cfg.tx_csum_offload);
    } else {
        rc = st->cfg.output(st->cfg.output_ctx, pkt, total);   /* ndata is 0 here */
    }
    if (rc < 0)
        st->stats.ip_out_err++;
    return rc < 0 ? rc : 0;
}
