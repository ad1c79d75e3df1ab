/* ICMP sockets for ping and traceroute: resolve, open (raw, or the
 * unprivileged datagram socket), receive with the TTL, parse messages. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <netinet/icmp6.h>
#include <netinet/ip_icmp.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "raw/raw_int.h"
#include "sockstack/err.h"
#include "sockstack/sock.h"
#include "sockstack/stack.h"
#include "core/bytes.h"

int ss__raw_resolve(const char *host, int family, struct ss__raw_dst *dst)
{
    ss_addr a;
    int n = ss_addr_resolve(host, "0", family, SS_DGRAM, false, &a, 1);
    if (n < 0)
        return n;
    int fam = ss_addr_family(&a);
    if (fam != AF_INET && fam != AF_INET6)
        return SS_ENOHOST;
    memset(dst, 0, sizeof *dst);
    memcpy(&dst->sa, &a.sa, a.len);
    dst->len = a.len;
    dst->family = fam;
    ss__raw_addr_text(&dst->sa, dst->text, sizeof dst->text);
    return 0;
}

const uint8_t *ss__raw_addr_bytes(const struct sockaddr_storage *sa)
{
    if (sa->ss_family == AF_INET6)
        return ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    return (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
}

bool ss__raw_same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    return a->ss_family == b->ss_family &&
           memcmp(ss__raw_addr_bytes(a), ss__raw_addr_bytes(b),
                  a->ss_family == AF_INET6 ? 16 : 4) == 0;
}

void ss__raw_addr_text(const struct sockaddr_storage *sa, char *buf, size_t cap)
{
    if (!inet_ntop(sa->ss_family, ss__raw_addr_bytes(sa), buf, (socklen_t)cap) && cap)
        buf[0] = '\0';
}

int ss__raw_open_icmp(int family, enum ss__icmp_sock want, bool *raw)
{
    int proto = family == AF_INET6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP;
    int fd = -1;
    if (want != SS__ICMP_DGRAM)
        fd = socket(family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
    *raw = fd >= 0;
    if (want == SS__ICMP_DGRAM ||
        (fd < 0 && (errno == EPERM || errno == EACCES) && want == SS__ICMP_RAW_OR_DGRAM))
        fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
    if (fd < 0)
        return -errno;
    int on = 1;
    int r = family == AF_INET6
                ? setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &on, sizeof on)
                : setsockopt(fd, IPPROTO_IP, IP_RECVTTL, &on, sizeof on);
    /* A datagram socket hears of ICMP errors only through its error queue. */
    if (r == 0 && !*raw)
        r = family == AF_INET6 ? setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &on, sizeof on)
                               : setsockopt(fd, IPPROTO_IP, IP_RECVERR, &on, sizeof on);
    if (r < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

int ss__raw_set_ttl(int fd, int family, int ttl)
{
    int r = family == AF_INET6
                ? setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl, sizeof ttl)
                : setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl);
    return r < 0 ? -errno : 0;
}

ssize_t ss__raw_recv(int fd, void *buf, size_t cap, struct sockaddr_storage *from, int *ttl)
{
    struct iovec iov = {.iov_base = buf, .iov_len = cap};
    union {
        char b[CMSG_SPACE(sizeof(int)) * 4];
        struct cmsghdr align;
    } ctl;
    struct msghdr mh = {.msg_name = from, .msg_namelen = sizeof *from, .msg_iov = &iov,
                        .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof ctl.b};
    ssize_t n = recvmsg(fd, &mh, 0);
    if (n < 0)
        return -errno;
    *ttl = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) ||
            (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT))
            memcpy(ttl, CMSG_DATA(c), sizeof *ttl);
    }
    return n;
}

/* The packet an error quotes: IP header then at least 8 transport bytes. */
static int parse_inner(int family, const uint8_t *p, size_t len, struct ss__icmp_msg *m)
{
    size_t hl;
    if (family == AF_INET) {
        if (len < 20 || p[0] >> 4 != 4)
            return SS_EBADPKT;
        hl = (size_t)(p[0] & 15) * 4;
        m->inner_proto = p[9];
        memcpy(m->inner_dst, p + 16, 4);
    } else {
        if (len < 40 || p[0] >> 4 != 6)
            return SS_EBADPKT;
        hl = 40;
        m->inner_proto = p[6];   /* no extension headers in what we send */
        memcpy(m->inner_dst, p + 24, 16);
    }
    if (hl < 20 || len < hl + 8)
        return SS_EBADPKT;
    m->inner_l4 = p + hl;
    return 0;
}

int ss__icmp_parse(int family, bool has_ip, const uint8_t *buf, size_t len,
                   struct ss__icmp_msg *m)
{
    memset(m, 0, sizeof *m);
    if (has_ip) {
        if (len < 20 || buf[0] >> 4 != 4 || buf[9] != IPPROTO_ICMP)
            return SS_EBADPKT;
        size_t hl = (size_t)(buf[0] & 15) * 4;
        if (hl < 20 || hl > len)
            return SS_EBADPKT;
        buf += hl;
        len -= hl;
    }
    if (len < 8)
        return SS_EBADPKT;
    m->type = buf[0];
    m->code = buf[1];
    m->icmp_len = len;
    bool v6 = family == AF_INET6;
    if (m->type == (v6 ? ICMP6_ECHO_REPLY : ICMP_ECHOREPLY)) {
        m->echo_reply = true;
        m->id = ss__get16(buf + 4);
        m->seq = ss__get16(buf + 6);
        m->data = buf + 8;
        m->data_len = len - 8;
        return 0;
    }
    bool err = v6 ? (m->type == ICMP6_DST_UNREACH || m->type == ICMP6_PACKET_TOO_BIG ||
                     m->type == ICMP6_TIME_EXCEEDED || m->type == ICMP6_PARAM_PROB)
                  : (m->type == ICMP_DEST_UNREACH || m->type == ICMP_SOURCE_QUENCH ||
                     m->type == ICMP_REDIRECT || m->type == ICMP_TIME_EXCEEDED ||
                     m->type == ICMP_PARAMETERPROB);
    if (err && parse_inner(family, buf + 8, len - 8, m) == 0)
        m->error = true;
    return 0;
}

void ss__icmp_echo_build(int family, uint8_t *buf, size_t len, uint16_t id, uint16_t seq)
{
    buf[0] = family == AF_INET6 ? ICMP6_ECHO_REQUEST : ICMP_ECHO;
    buf[1] = 0;
    buf[2] = buf[3] = 0;
    buf[4] = (uint8_t)(id >> 8);
    buf[5] = (uint8_t)id;
    buf[6] = (uint8_t)(seq >> 8);
    buf[7] = (uint8_t)seq;
    /* iputils' pattern: each byte its offset in the payload. */
    for (size_t i = 8; i < len; i++)
        buf[i] = (uint8_t)(i - 8);
    if (family == AF_INET) {
        uint16_t c = ss_csum_fold(ss_csum_add(0, buf, len));
        buf[2] = (uint8_t)(c >> 8);
        buf[3] = (uint8_t)c;
    }
}

uint64_t ss__raw_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void on_stop_signal(ss_loop *loop, int signo, void *arg)
{
    ss_loop_stop(loop);
}

int ss__raw_stop_on_signals(ss_loop *loop)
{
    int r = ss_loop_signal_add(loop, SIGINT, on_stop_signal, NULL);
    if (r == 0)
        r = ss_loop_signal_add(loop, SIGTERM, on_stop_signal, NULL);
    return r;
}

const char *ss_icmp_error_text(int family, uint8_t type, uint8_t code, char *buf, size_t cap)
{
    static const char *const unreach4[] = {
        "Destination Net Unreachable", "Destination Host Unreachable",
        "Destination Protocol Unreachable", "Destination Port Unreachable",
        "Frag needed and DF set", "Source Route Failed", "Destination Net Unknown",
        "Destination Host Unknown", "Source Host Isolated", "Destination Net Prohibited",
        "Destination Host Prohibited", "Destination Net Unreachable for Type of Service",
        "Destination Host Unreachable for Type of Service", "Packet filtered",
        "Precedence Violation", "Precedence Cutoff"};
    static const char *const unreach6[] = {
        "No route", "Administratively prohibited", "Beyond scope of source address",
        "Address unreachable", "Port unreachable"};
    if (family == AF_INET6) {
        switch (type) {
        case ICMP6_DST_UNREACH:
            snprintf(buf, cap, "Destination unreachable: %s",
                     code < 5 ? unreach6[code] : "Unknown code");
            break;
        case ICMP6_PACKET_TOO_BIG: snprintf(buf, cap, "Packet too big"); break;
        case ICMP6_TIME_EXCEEDED:
            snprintf(buf, cap, "Time exceeded: %s",
                     code == 0 ? "Hop limit" : code == 1 ? "Defragmentation failure"
                                                         : "Unknown code");
            break;
        case ICMP6_PARAM_PROB: snprintf(buf, cap, "Parameter problem"); break;
        default: snprintf(buf, cap, "Unknown ICMP type: %u", type); break;
        }
        return buf;
    }
    switch (type) {
    case ICMP_DEST_UNREACH:
        if (code < 16)
            snprintf(buf, cap, "%s", unreach4[code]);
        else
            snprintf(buf, cap, "Dest Unreachable, Bad Code: %u", code);
        break;
    case ICMP_SOURCE_QUENCH: snprintf(buf, cap, "Source Quench"); break;
    case ICMP_REDIRECT: snprintf(buf, cap, "Redirect"); break;
    case ICMP_TIME_EXCEEDED:
        snprintf(buf, cap, "%s", code == 0 ? "Time to live exceeded"
                                           : "Frag reassembly time exceeded");
        break;
    case ICMP_PARAMETERPROB: snprintf(buf, cap, "Parameter problem"); break;
    default: snprintf(buf, cap, "Bad ICMP type: %u", type); break;
    }
    return buf;
}
