/* xoshiro256** (Blackman & Vigna, 2018) seeded through splitmix64.
 *
 * The simulated link draws every random decision from here, so a run is a
 * function of its seed alone: no libc generator, no clock, no global state. */
#include <string.h>

#include "sockstack/link.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void ss_prng_seed(struct ss_prng *r, uint64_t seed)
{
    /* splitmix64 never yields four zero words, which xoshiro must avoid. */
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static inline uint64_t step(uint64_t *s)
{
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t ss_prng_next(struct ss_prng *r) { return step(r->s); }

void ss_prng_fill(struct ss_prng *r, void *buf, size_t len)
{
    uint64_t s[4] = {r->s[0], r->s[1], r->s[2], r->s[3]}; /* in registers */
    uint8_t *p = buf;
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t v = step(s);
        memcpy(p, &v, 8);
    }
    if (len) {
        uint64_t v = step(s);
        memcpy(p, &v, len);
    }
    memcpy(r->s, s, sizeof s);
}

uint64_t ss_prng_below(struct ss_prng *r, uint64_t n)
{
    if (n == 0)
        return 0;
    /* Reject the top partial block so every residue is equally likely. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = ss_prng_next(r);
    while (x >= limit);
    return x % n;
}

double ss_prng_unit(struct ss_prng *r)
{
    return (double)(ss_prng_next(r) >> 11) * 0x1.0p-53;
}
