/* raw: ping and traceroute over raw sockets (and Linux's unprivileged ICMP
 * datagram socket), IPv4 and IPv6.
 *
 * Both run their own reactor loop until done (count reached, destination
 * reached, max TTL, or SIGINT/SIGTERM) and report what happens through a
 * callback; the library prints nothing. Errors are negative errno values or
 * SS_E* codes (err.h). A raw socket needs CAP_NET_RAW; ping falls back to
 * the ICMP datagram socket (net.ipv4.ping_group_range) without it.
 */
#ifndef SOCKSTACK_RAW_H
#define SOCKSTACK_RAW_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sockstack/api.h"
SS_API_BEGIN

/* Text of an address as inet_ntop writes it ("10.0.0.1", "fe80::1"). */
#define SS_RAW_ADDRSTRLEN 46

/* ---- ping --------------------------------------------------------------- */

struct ss_ping_cfg {
    const char *host;      /* name or address */
    int family;            /* AF_UNSPEC, AF_INET or AF_INET6 */
    uint32_t count;        /* echo requests to send; 0: until stopped */
    uint32_t interval_ms;  /* between requests (iputils -i) */
    uint32_t size;         /* ICMP payload bytes (iputils -s), at most SS_PING_MAX_SIZE */
    int ttl;               /* IP TTL / hop limit; 0: the system's */
    uint32_t linger_ms;    /* after the last request, wait this long for a reply
                            * when none came yet (iputils -W); else 2 * max RTT */
    bool dgram_only;       /* never try a raw socket */
};

#define SS_PING_MAX_SIZE 65000

/* Defaults: 56 bytes, 1 s apart, TTL of the system, linger 10 s. */
void ss_ping_cfg_default(struct ss_ping_cfg *cfg);

enum ss_ping_ev_kind {
    SS_PING_EV_START = 1, /* resolved: addr, raw (which socket) */
    SS_PING_EV_REPLY,     /* echo reply: seq, bytes, ttl, rtt_us, dup, from */
    SS_PING_EV_ERROR,     /* ICMP error about one of our requests: seq, from, type, code, text */
    SS_PING_EV_SEND_FAIL, /* sendto failed: seq, err */
};

struct ss_ping_event {
    enum ss_ping_ev_kind kind;
    int family;
    bool raw;                         /* START: raw socket (else datagram) */
    char addr[SS_RAW_ADDRSTRLEN];     /* START: the destination */
    char from[SS_RAW_ADDRSTRLEN];     /* REPLY, ERROR: who answered */
    uint16_t seq;                     /* as on the wire (starts at 1) */
    size_t bytes;                     /* REPLY: ICMP bytes received (8 + payload) */
    int ttl;                          /* REPLY: TTL / hop limit of the reply; -1 unknown */
    uint64_t rtt_us;                  /* REPLY */
    bool dup;                         /* REPLY: this seq was answered before */
    uint8_t type, code;               /* ERROR: the ICMP message */
    const char *text;                 /* ERROR: "Destination Host Unreachable", ... */
    int err;                          /* SEND_FAIL: negative errno */
};

struct ss_ping_stats {
    uint32_t transmitted, received, duplicates, errors;
    uint64_t elapsed_ms;              /* first request to the last one (iputils' time) */
    uint64_t rtt_min_us, rtt_max_us, rtt_avg_us, rtt_mdev_us;
};

typedef void (*ss_ping_cb)(void *ctx, const struct ss_ping_event *ev);

/* Resolve, open, send and receive until done; stats filled in. Returns 0,
 * SS_ENOHOST, -EPERM/-EACCES (no socket allowed), -EINVAL (bad cfg). */
int ss_ping_run(const struct ss_ping_cfg *cfg, ss_ping_cb cb, void *ctx,
                struct ss_ping_stats *stats);

/* iputils' words for an ICMP error ("Destination Host Unreachable",
 * "Time to live exceeded", ...); "Unknown ICMP type N" style text is
 * written into buf otherwise. Returns a string valid as long as buf. */
const char *ss_icmp_error_text(int family, uint8_t type, uint8_t code, char *buf, size_t cap);

/* ---- traceroute ---------------------------------------------------------- */

enum ss_tr_method { SS_TR_UDP = 0, SS_TR_ICMP, SS_TR_TCP };

struct ss_tr_cfg {
    const char *host;
    int family;            /* AF_UNSPEC, AF_INET or AF_INET6 */
    enum ss_tr_method method;
    int first_ttl, max_ttl;/* 1 and 30 */
    int nqueries;          /* probes per hop, 3 */
    uint32_t wait_ms;      /* how long to wait for each hop's answers, 5000 */
    uint16_t port;         /* UDP: base port 33434 (+1 per probe); TCP: 80 */
    uint32_t packet_len;   /* whole IP packet bytes (60 v4, 80 v6; TCP: header only) */
};

void ss_tr_cfg_default(struct ss_tr_cfg *cfg);

/* One probe's answer. */
struct ss_tr_probe {
    bool answered;
    char from[SS_RAW_ADDRSTRLEN];
    uint64_t rtt_us;
    char mark[4];          /* "" or traceroute's annotation: "!H" "!N" "!P" "!X" "!A" "!S" */
};

#define SS_TR_MAX_QUERIES 10

struct ss_tr_event {
    int kind;              /* SS_TR_EV_START or SS_TR_EV_HOP */
    char addr[SS_RAW_ADDRSTRLEN];  /* START: the destination */
    int family;
    int max_ttl;
    uint32_t packet_len;
    int ttl;               /* HOP */
    int nprobes;
    struct ss_tr_probe probe[SS_TR_MAX_QUERIES];
    bool reached;          /* HOP: the destination answered (last line) */
};
enum { SS_TR_EV_START = 1, SS_TR_EV_HOP };

typedef void (*ss_tr_cb)(void *ctx, const struct ss_tr_event *ev);

/* Probe hop by hop until the destination answers, a hop says it is
 * unreachable, or max_ttl. *reached tells whether the destination answered.
 * Needs a raw socket (CAP_NET_RAW): -EPERM without. */
int ss_traceroute_run(const struct ss_tr_cfg *cfg, ss_tr_cb cb, void *ctx, bool *reached);

SS_API_END

#endif
