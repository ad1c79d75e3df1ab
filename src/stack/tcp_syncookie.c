/* tcp_syncookie: SYN cookies (RFC 4987 3.6), in Linux's layout.
 *
 * When a listener's SYN queue is full (cfg.syncookies 1) or always
 * (cfg.syncookies 2), the SYN,ACK's ISS is a cookie and nothing is kept:
 *
 *   ISS = H(tuple, 0) + SEG.SEQ + (t << 24) + ((H(tuple, t) + m) mod 2^24)
 *
 * t is a coarse clock (st->now / SS_STACK_SYNCOOKIE_PERIOD_S, 8 bits), m
 * the index of the MSS in mss_tab, H a keyed hash (SHA-256 with the ISN
 * secret, ss__keyed_hash32). The handshake's ACK brings ISS + 1 and
 * IRS + 1 back: ss__syncookie_check takes H(tuple, 0) and IRS off, reads t
 * from the top 8 bits (this tick or the one before, else expired), and m
 * from the rest with H(tuple, t) taken off (m beyond the table: forged).
 *
 * The options the SYN offered cannot fit in 32 bits of ISS. With
 * timestamps, the low 6 bits of our TSval carry them as Linux does: the
 * peer's window scale (4 bits, 0xf for none) and SACK-permitted (bit 4);
 * the ACK echoes them in TSecr. Without timestamps the cookie SYN,ACK
 * offers neither, and the connection goes without (tcp_synq.c).
 */
#include <openssl/sha.h>
#include <string.h>

#include "sockstack/config.h"
#include "stack_int.h"

/* MSS values a cookie can say (Linux's msstab for IPv4): the largest not
 * above the peer's is used. 536 is the default without an MSS option. */
static const uint16_t mss_tab[] = {536, 1300, 1440, 1460};
#define MSS_N (sizeof mss_tab / sizeof mss_tab[0])
#define COOKIE_BITS 24
#define COOKIE_MASK ((1u << COOKIE_BITS) - 1)
#define TS_OPT_BITS 6
#define TS_WS_NONE 0xfu
#define TS_SACK 0x10u

uint32_t ss__keyed_hash32(const ss_stack *st, const uint8_t *msg, size_t len)
{
    uint8_t in[64 + sizeof st->cfg.isn_secret], md[SHA256_DIGEST_LENGTH];
    if (len > 64)
        len = 64;
    memcpy(in, msg, len);
    memcpy(in + len, st->cfg.isn_secret, sizeof st->cfg.isn_secret);
    SHA256(in, len + sizeof st->cfg.isn_secret, md);
    return ss__get32(md);
}

/* H(tuple, t): our side first, as the ISN's F(). */
static uint32_t cookie_hash(const ss_stack *st, const struct ss_seg *seg, uint32_t t, uint8_t which)
{
    uint8_t m[17];
    ss__put32(m, seg->dst);
    ss__put16(m + 4, seg->dport);
    ss__put32(m + 6, seg->src);
    ss__put16(m + 10, seg->sport);
    ss__put32(m + 12, t);
    m[16] = which;
    return ss__keyed_hash32(st, m, sizeof m);
}

static uint32_t cookie_tick(const ss_stack *st)
{
    return (uint32_t)(st->now / (SS_STACK_SYNCOOKIE_PERIOD_S * 1000000ull));
}

uint32_t ss__syncookie_make(const ss_stack *st, const struct ss_seg *syn, uint16_t *mss)
{
    uint16_t peer = syn->mss ? syn->mss : SS_STACK_DEFAULT_PEER_MSS;
    uint32_t m = 0;
    while (m + 1 < MSS_N && mss_tab[m + 1] <= peer)
        m++;
    *mss = mss_tab[m];
    uint32_t t = cookie_tick(st);
    return cookie_hash(st, syn, 0, 0) + syn->seq + (t << COOKIE_BITS) +
           ((cookie_hash(st, syn, t, 1) + m) & COOKIE_MASK);
}

bool ss__syncookie_check(const ss_stack *st, const struct ss_seg *ack, uint16_t *mss)
{
    uint32_t cookie = ack->ack - 1, irs = ack->seq - 1;
    uint32_t c = cookie - cookie_hash(st, ack, 0, 0) - irs;
    uint32_t now = cookie_tick(st);
    uint32_t age = (now - (c >> COOKIE_BITS)) & 0xffu;
    if (age > 1)
        return false;   /* expired, or not a cookie at all */
    uint32_t m = (c - cookie_hash(st, ack, now - age, 1)) & COOKIE_MASK;
    if (m >= MSS_N)
        return false;
    *mss = mss_tab[m];
    return true;
}

uint32_t ss__syncookie_tsval(uint32_t tsval, bool ws_ok, uint8_t ws, bool sack_ok)
{
    uint32_t bits = (ws_ok ? ws : TS_WS_NONE) | (sack_ok ? TS_SACK : 0);
    uint32_t v = (tsval & ~((1u << TS_OPT_BITS) - 1)) | bits;
    /* Never ahead of the clock: the connection's later TSvals (the same
     * clock without the adjustment) must not go backwards. */
    if (SEQ_GT(v, tsval))
        v -= 1u << TS_OPT_BITS;
    return v;
}

void ss__syncookie_ts_decode(uint32_t tsecr, bool *has_ws, uint8_t *ws, bool *sack_ok)
{
    uint32_t w = tsecr & TS_WS_NONE;
    *has_ws = w != TS_WS_NONE;
    *ws = *has_ws ? (uint8_t)w : 0;
    *sack_ok = (tsecr & TS_SACK) != 0;
}
