/* Addresses: resolution (getaddrinfo, unix:/path), formatting, CIDR lists. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "sockstack/err.h"
#include "sockstack/sock.h"

static int resolve_unix(const char *path, ss_addr *out)
{
    struct sockaddr_un *un = (struct sockaddr_un *)&out->sa;
    size_t len = strlen(path);
    if (len == 0)
        return -EINVAL;
    if (len >= sizeof un->sun_path)
        return -ENAMETOOLONG;
    memset(out, 0, sizeof *out);
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, len);
    if (path[0] == '@') /* Linux abstract namespace */
        un->sun_path[0] = '\0';
    out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
                           (path[0] == '@' ? 0 : 1));
    return 1;
}

int ss_addr_resolve(const char *host, const char *port, int family, int type,
                    bool passive, ss_addr *out, int max)
{
    if (max < 1)
        return -EINVAL;
    if (host && !strncmp(host, "unix:", 5))
        return resolve_unix(host + 5, out);
    /* Accept "[::1]" as well as "::1". */
    char buf[256];
    if (host && host[0] == '[') {
        size_t n = strlen(host);
        if (n < 3 || host[n - 1] != ']' || n - 2 >= sizeof buf)
            return SS_ENOHOST;
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = '\0';
        host = buf;
    }
    struct addrinfo hints = {
        .ai_family = family,
        .ai_socktype = type == SS_DGRAM ? SOCK_DGRAM : SOCK_STREAM,
        .ai_flags = (passive ? AI_PASSIVE : 0) | (family == AF_UNSPEC ? AI_ADDRCONFIG : 0),
    };
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port ? port : "0", &hints, &res);
    if (rc == EAI_ADDRFAMILY || rc == EAI_NONAME || rc == EAI_NODATA ||
        rc == EAI_SERVICE || rc == EAI_FAIL || rc == EAI_AGAIN) {
        /* AI_ADDRCONFIG hides loopback-only families on isolated hosts
         * (network namespaces): retry without it before giving up. */
        if (hints.ai_flags & AI_ADDRCONFIG) {
            hints.ai_flags &= ~AI_ADDRCONFIG;
            rc = getaddrinfo(host, port ? port : "0", &hints, &res);
        }
    }
    if (rc == EAI_MEMORY)
        return -ENOMEM;
    if (rc == EAI_SYSTEM)
        return -errno;
    if (rc != 0)
        return SS_ENOHOST;
    int n = 0;
    for (struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof out[n].sa)
            continue;
        memset(&out[n], 0, sizeof out[n]);
        memcpy(&out[n].sa, ai->ai_addr, ai->ai_addrlen);
        out[n].len = ai->ai_addrlen;
        n++;
    }
    freeaddrinfo(res);
    return n > 0 ? n : SS_ENOHOST;
}

int ss_addr_family(const ss_addr *a)
{
    return a->sa.ss_family;
}

int ss_addr_port(const ss_addr *a)
{
    switch (a->sa.ss_family) {
    case AF_INET:
        return ntohs(((const struct sockaddr_in *)&a->sa)->sin_port);
    case AF_INET6:
        return ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port);
    default:
        return 0;
    }
}

bool ss_addr_is_loopback(const ss_addr *a)
{
    if (a->sa.ss_family == AF_INET) {
        uint32_t ip = ntohl(((const struct sockaddr_in *)&a->sa)->sin_addr.s_addr);
        return (ip >> 24) == 127;
    }
    if (a->sa.ss_family == AF_INET6) {
        const struct in6_addr *ip = &((const struct sockaddr_in6 *)&a->sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(ip))
            return true;
        return IN6_IS_ADDR_V4MAPPED(ip) && ip->s6_addr[12] == 127;
    }
    return a->sa.ss_family == AF_UNIX; /* local by definition */
}

bool ss_addr_equal(const ss_addr *a, const ss_addr *b)
{
    if (a->sa.ss_family != b->sa.ss_family)
        return false;
    if (a->sa.ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)&a->sa, *y = (const void *)&b->sa;
        return x->sin_addr.s_addr == y->sin_addr.s_addr && x->sin_port == y->sin_port;
    }
    if (a->sa.ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)&a->sa, *y = (const void *)&b->sa;
        return !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) &&
               x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id;
    }
    return a->len == b->len && !memcmp(&a->sa, &b->sa, a->len);
}

ss_addr ss_addr_unmapped(const ss_addr *a)
{
    ss_addr v4 = *a;
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->sa;
    if (a->sa.ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
        struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = in6->sin6_port};
        memcpy(&in.sin_addr, &in6->sin6_addr.s6_addr[12], 4);
        memset(&v4, 0, sizeof v4);
        memcpy(&v4.sa, &in, sizeof in);
        v4.len = sizeof in;
    }
    return v4;
}

int ss_addr_format(const ss_addr *a, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    int n;
    switch (a->sa.ss_family) {
    case AF_INET: {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&a->sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        n = snprintf(buf, cap, "%s:%d", ip, ntohs(in->sin_port));
        break;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        n = snprintf(buf, cap, "[%s]:%d", ip, ntohs(in6->sin6_port));
        break;
    }
    case AF_UNIX: {
        const struct sockaddr_un *un = (const struct sockaddr_un *)&a->sa;
        size_t plen = a->len > offsetof(struct sockaddr_un, sun_path)
                          ? a->len - offsetof(struct sockaddr_un, sun_path)
                          : 0;
        if (plen == 0)
            n = snprintf(buf, cap, "unix:(unnamed)");
        else if (un->sun_path[0] == '\0')
            n = snprintf(buf, cap, "unix:@%.*s", (int)(plen - 1), un->sun_path + 1);
        else
            n = snprintf(buf, cap, "unix:%.*s", (int)strnlen(un->sun_path, plen),
                         un->sun_path);
        break;
    }
    default:
        n = snprintf(buf, cap, "(family %d)", a->sa.ss_family);
    }
    return n < 0 ? -EINVAL : (size_t)n >= cap ? -ENOSPC : n;
}

int ss_cidr_parse(const char *s, ss_cidr *out)
{
    char buf[INET6_ADDRSTRLEN + 8];
    if (!s || strlen(s) >= sizeof buf)
        return -EINVAL;
    strcpy(buf, s);
    char *slash = strchr(buf, '/');
    if (slash)
        *slash = '\0';
    memset(out, 0, sizeof *out);
    int max;
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        return -EINVAL;
    }
    out->prefix = max;
    if (slash) {
        char *end;
        long p = strtol(slash + 1, &end, 10);
        if (!slash[1] || *end || p < 0 || p > max)
            return -EINVAL;
        out->prefix = (int)p;
    }
    return 0;
}

static bool prefix_eq(const uint8_t *a, const uint8_t *b, int bits)
{
    int bytes = bits / 8, rem = bits % 8;
    if (memcmp(a, b, (size_t)bytes) != 0)
        return false;
    if (rem == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rem));
    return (a[bytes] & mask) == (b[bytes] & mask);
}

bool ss_cidr_match(const ss_cidr *c, const ss_addr *a)
{
    const uint8_t *ip;
    int fam = a->sa.ss_family;
    if (fam == AF_INET) {
        ip = (const uint8_t *)&((const struct sockaddr_in *)&a->sa)->sin_addr;
    } else if (fam == AF_INET6) {
        const struct in6_addr *i6 = &((const struct sockaddr_in6 *)&a->sa)->sin6_addr;
        ip = i6->s6_addr;
        if (c->family == AF_INET && IN6_IS_ADDR_V4MAPPED(i6)) {
            ip += 12;
            fam = AF_INET;
        }
    } else {
        return false;
    }
    return fam == c->family && prefix_eq(ip, c->addr, c->prefix);
}
