/* Internals shared by ping and traceroute: resolving, opening ICMP
 * sockets, receiving with the TTL, and taking ICMP messages apart. */
#ifndef SS_RAW_INT_H
#define SS_RAW_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sockstack/raw.h"
#include "sockstack/reactor.h"

struct ss__raw_dst {
    struct sockaddr_storage sa;
    socklen_t len;
    int family;
    char text[SS_RAW_ADDRSTRLEN];
};

/* host -> the first address of family (AF_UNSPEC: either). 0 or SS_ENOHOST. */
int ss__raw_resolve(const char *host, int family, struct ss__raw_dst *dst);

/* Which ICMP socket to open. */
enum ss__icmp_sock { SS__ICMP_RAW_OR_DGRAM, SS__ICMP_RAW, SS__ICMP_DGRAM };

/* An ICMP (v4) or ICMPv6 socket of family: SOCK_RAW, or SOCK_DGRAM (when
 * asked, or when a raw one is refused). Asks for the TTL / hop limit of
 * what arrives (and, for datagram sockets, the ICMP errors). *raw says
 * which one it is. Returns the descriptor or a negative errno. */
int ss__raw_open_icmp(int family, enum ss__icmp_sock want, bool *raw);

/* Set the TTL / hop limit of what fd sends (unicast). */
int ss__raw_set_ttl(int fd, int family, int ttl);

/* recvmsg with the sender and the TTL / hop limit (-1 when not told). */
ssize_t ss__raw_recv(int fd, void *buf, size_t cap, struct sockaddr_storage *from, int *ttl);

/* One ICMP message taken apart. For an error (destination unreachable,
 * time exceeded, ...), inner_* describe the packet it quotes. */
struct ss__icmp_msg {
    uint8_t type, code;
    bool echo_reply;          /* type 0 / 129 */
    bool error;               /* an error that quotes a packet of ours */
    uint16_t id, seq;         /* echo reply's identifier and sequence */
    const uint8_t *data;      /* echo reply's payload */
    size_t data_len;
    size_t icmp_len;          /* ICMP header and payload */
    uint8_t inner_proto;      /* error: protocol of the quoted packet */
    uint8_t inner_dst[16];    /* error: its destination (4 or 16 bytes) */
    const uint8_t *inner_l4;  /* error: its transport header (at least 8 bytes) */
};

/* buf is what a socket of family gave: with the IPv4 header when has_ip
 * (raw IPv4 sockets), else starting at the ICMP header. 0 or SS_EBADPKT. */
int ss__icmp_parse(int family, bool has_ip, const uint8_t *buf, size_t len,
                   struct ss__icmp_msg *m);

/* ICMP header + payload of an echo request, checksum filled for IPv4
 * (the kernel fills ICMPv6's). */
void ss__icmp_echo_build(int family, uint8_t *buf, size_t len, uint16_t id, uint16_t seq);

/* Monotonic clock, microseconds. */
uint64_t ss__raw_now_us(void);

/* SIGINT / SIGTERM stop the loop (iputils prints its summary then). */
int ss__raw_stop_on_signals(ss_loop *loop);

/* Address bytes (4 or 16) of a sockaddr. */
const uint8_t *ss__raw_addr_bytes(const struct sockaddr_storage *sa);
/* Same address (families equal, bytes equal; ports ignored). */
bool ss__raw_same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
void ss__raw_addr_text(const struct sockaddr_storage *sa, char *buf, size_t cap);

#endif
