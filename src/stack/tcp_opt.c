/* tcp_opt: TCP options (RFC 9293 3.1, 3.7.1). Only MSS is used for now;
 * window scale, timestamps and SACK (RFC 7323, RFC 2018) will live here. */
#include "stack_int.h"

enum { OPT_EOL = 0, OPT_NOP = 1, OPT_MSS = 2 };

/* Parse options into seg. Unknown options are skipped by their length
 * (MUST-6: any option may appear; MUST-7: unknown ones are ignored).
 * Returns 0, or -1 for a malformed list (length < 2 or past the end). */
int ss__tcp_parse_options(const uint8_t *opt, size_t len, struct ss_seg *seg)
{
    size_t i = 0;
    while (i < len) {
        uint8_t kind = opt[i];
        if (kind == OPT_EOL)
            break;
        if (kind == OPT_NOP) {
            i++;
            continue;
        }
        if (i + 1 >= len)
            return -1;
        uint8_t olen = opt[i + 1];
        if (olen < 2 || i + olen > len)
            return -1;
        /* MSS only counts on a SYN (RFC 9293 3.2: "only be sent in the
         * initial connection request"). */
        if (kind == OPT_MSS && olen == 4 && (seg->flags & SS_TCP_SYN))
            seg->mss = ss__get16(opt + i + 2);
        i += olen;
    }
    return 0;
}

/* Write our options for a segment with these flags; returns bytes (multiple of 4). */
size_t ss__tcp_write_options(uint8_t *p, uint8_t flags, uint16_t mss)
{
    if (!(flags & SS_TCP_SYN))
        return 0;
    p[0] = OPT_MSS;
    p[1] = 4;
    ss__put16(p + 2, mss);
    return 4;
}
