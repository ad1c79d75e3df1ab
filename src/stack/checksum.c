/* checksum: the Internet checksum (RFC 1071) and the TCP/UDP pseudo-header. */
#include <string.h>

#include "stack_int.h"

/* Sum of 16-bit big-endian words; an odd last byte is padded with zero.
 * Returns the sum folded to 16 bits, so a caller can chain calls.
 *
 * Fast path: the ones' complement sum does not depend on byte order
 * (RFC 1071 2.(B)), so the buffer is summed as native 32-bit words into a
 * 64-bit accumulator (no carry is lost: 2^32 words would be needed to
 * overflow it), eight words per round; the folded 16-bit result is
 * swapped to the big-endian word value once at the end (RFC 1071 2.(C),
 * deferred carries). Loads go through memcpy: any alignment is fine. */
static inline uint32_t ld32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

uint32_t ss_csum_add(uint32_t sum, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint64_t s = 0;
    while (len >= 32) {
        s += (uint64_t)ld32(p) + ld32(p + 4) + ld32(p + 8) + ld32(p + 12);
        s += (uint64_t)ld32(p + 16) + ld32(p + 20) + ld32(p + 24) + ld32(p + 28);
        p += 32;
        len -= 32;
    }
    while (len >= 4) {
        s += ld32(p);
        p += 4;
        len -= 4;
    }
    uint8_t tail[4] = {0, 0, 0, 0};
    memcpy(tail, p, len); /* 0..3 bytes, zero-padded: the odd byte pads too */
    s += ld32(tail);
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    s = ((s & 0xff) << 8) | (s >> 8);
#endif
    s += sum;
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
