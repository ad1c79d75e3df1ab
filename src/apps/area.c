/* area: radius in, pi * r^2 out, over UDP (see sockstack/area.h). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sockstack/area.h"

static int reply(char *out, size_t cap, const char *text)
{
    int n = snprintf(out, cap, "%s\n", text);
    return n < 0 ? 0 : n >= (int)cap ? (int)cap - 1 : n;
}

int ss_area_reply(const void *req, size_t len, bool truncated, char *out,
                  size_t cap)
{
    if (truncated || len > SS_AREA_MAX_REQUEST)
        return reply(out, cap, "error: request too long (at most 64 bytes)");
    const char *p = req, *e = p + len;
    while (p < e && isspace((unsigned char)*p))
        p++;
    while (e > p && isspace((unsigned char)e[-1]))
        e--;
    if (p == e)
        return reply(out, cap, "error: empty request, expected a radius");
    char text[SS_AREA_MAX_REQUEST + 1];
    size_t n = (size_t)(e - p);
    memcpy(text, p, n);
    text[n] = '\0';
    /* Decimal text only: no hex floats, no NUL or control bytes inside. */
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch == 'x' || ch == 'X' || ch == 'p' || ch == 'P' || !isgraph(ch))
            return reply(out, cap, "error: not a number");
    }
    errno = 0;
    char *end;
    double r = strtod(text, &end);
    if (end == text || *end != '\0')
        return reply(out, cap, "error: not a number");
    if (isnan(r) || isinf(r)) {
        if (errno == ERANGE)
            return reply(out, cap, "error: radius out of range");
        return reply(out, cap, "error: radius must be a finite number");
    }
    if (r < 0)
        return reply(out, cap, "error: radius must not be negative");
    double a = M_PI * r * r;
    if (isinf(a))
        return reply(out, cap, "error: area too large for a double");
    int k = snprintf(out, cap, "%.17g\n", a);
    return k < 0 ? 0 : k >= (int)cap ? (int)cap - 1 : k;
}

static int area_datagram(ss_server *srv, const void *data, size_t len,
                         bool truncated, const ss_addr *from)
{
    char out[128];
    int n = ss_area_reply(data, len, truncated, out, sizeof out);
    ssize_t r = ss_server_sendto(srv, out, (size_t)n, from);
    return r < 0 ? (int)r : 0;
}

static const ss_service area_service = {
    .name = "area",
    .on_datagram = area_datagram,
};

const ss_service *ss_area_service(void)
{
    return &area_service;
}
