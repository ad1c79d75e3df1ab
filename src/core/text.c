/* Escaping of control codes for printing (see sockstack/text.h). */
#include "sockstack/text.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Length of the well-formed UTF-8 sequence at p (at most n bytes), or 0. */
static size_t utf8_len(const uint8_t *p, size_t n, uint32_t *cp)
{
    size_t len;
    uint32_t c, min;
    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    } else if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        len = 2, c = p[0] & 0x1f, min = 0x80;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        len = 3, c = p[0] & 0x0f, min = 0x800;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        len = 4, c = p[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (p[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

/* Append piece (k bytes) if it fits whole; count it either way. */
static void put(char *out, size_t cap, size_t *n, bool *full, const char *piece, size_t k)
{
    if (!*full && cap && *n + k < cap)
        memcpy(out + *n, piece, k);
    else
        *full = true; /* nothing after a cut: never half an escape */
    *n += k;
}

size_t ss_text_escape(const void *in, size_t len, char *out, size_t cap, unsigned flags)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = in;
    size_t n = 0, kept = 0;
    bool full = false;
    for (size_t i = 0; i < len;) {
        uint32_t cp = 0;
        size_t k = utf8_len(p + i, len - i, &cp);
        bool control = k == 0 || cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f);
        if (!control && cp == '\\' && !(flags & SS_TEXT_KEEP_BACKSLASH)) {
            put(out, cap, &n, &full, "\\\\", 2);
        } else if (!control) {
            put(out, cap, &n, &full, (const char *)p + i, k);
        } else {
            size_t m = k ? k : 1;
            for (size_t j = 0; j < m; j++) {
                char e[4] = {'\\', 'x', hex[p[i + j] >> 4], hex[p[i + j] & 15]};
                put(out, cap, &n, &full, e, 4);
            }
            k = m;
        }
        if (!full)
            kept = n;
        i += k;
    }
    if (cap)
        out[kept < cap ? kept : cap - 1] = '\0';
    return n;
}
