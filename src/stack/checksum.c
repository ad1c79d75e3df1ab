/* checksum: the Internet checksum (RFC 1071) and the TCP/UDP pseudo-header. */
#include "stack_int.h"

/* Sum of 16-bit big-endian words; an odd last byte is padded with zero.
 * The 32-bit accumulator is folded on every call, so it never overflows. */
uint32_t ss_csum_add(uint32_t sum, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint64_t s = sum;
    while (len >= 2) {
        s += (uint32_t)(p[0] << 8 | p[1]);
        p += 2;
        len -= 2;
    }
    if (len)
        s += (uint32_t)(p[0] << 8);
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint32_t)s;
}

uint16_t ss_csum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* Pseudo-header of RFC 9293 3.1 / RFC 768: src, dst, zero, proto, length. */
uint32_t ss__pseudo_sum(uint32_t src, uint32_t dst, uint8_t proto, uint32_t len)
{
    uint64_t s = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto + len;
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint32_t)s;
}
