/* Test fixture for the stack core: a stack at 10.0.0.2 whose output is
 * captured, a peer at 10.0.0.1 whose packets are built byte by byte with
 * checksums computed here (independently of the stack's own code), an
 * explicit clock, and helpers that drive a connection into a state. */
#ifndef SS_TEST_STACK_FIXTURE_H
#define SS_TEST_STACK_FIXTURE_H

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sockstack/stack.h"

#define US_IP 0x0a000002u    /* 10.0.0.2: the stack */
#define PEER_IP 0x0a000001u  /* 10.0.0.1: the test */
#define US_PORT 80
#define PEER_PORT 40000
#define PEER_ISS 1000u
#define MS 1000ull
#define SEC 1000000ull

#define CAP_MAX 256
#define CAP_PKT 2048

struct cap {
    uint8_t data[CAP_PKT];
    size_t len;
};

/* A parsed captured TCP segment. */
struct tseg {
    uint32_t src, dst;
    uint16_t sport, dport;
    uint32_t seq, ack;
    uint8_t flags;
    uint16_t win;
    uint16_t mss;          /* 0 if no MSS option */
    /* Other options, parsed here independently of the stack's code. */
    uint8_t opt[40];       /* the option bytes as sent */
    size_t optlen;
    bool has_ws;           /* window scale: shift ws */
    uint8_t ws;
    bool sack_ok;          /* SACK-permitted */
    bool has_ts;           /* timestamps */
    uint32_t ts_val, ts_ecr;
    int nsack;             /* SACK blocks [start, end) */
    uint32_t sack[4][2];
    uint8_t ttl;
    bool df;
    const uint8_t *data;
    size_t len;
};

struct evrec {
    int sd;
    unsigned ev;
    int err;
};

extern ss_stack *st;
extern struct ss_stack_cfg cfg;
extern uint64_t now;
extern struct cap caps[CAP_MAX];
extern int ncap;
extern struct evrec evs[64];
extern int nev;
extern int ntrace_state;
extern char last_trace[256];
/* Every trace event formatted as text (no time/tuple), in order. */
#define TRACE_MAX 128
extern char trace_lines[TRACE_MAX][128];
extern int ntrace;

/* Build the stack with the fixture's configuration; tweak(cfg) may change it. */
void fx_setup_with(void (*tweak)(struct ss_stack_cfg *c));
void fx_setup(void);
void fx_teardown(void);

/* Internet checksum, computed here independently. */
uint16_t t_csum(const void *buf, size_t len, uint32_t init);

/* Build IPv4 + TCP; returns total length. */
size_t mk_tcp(uint8_t *buf, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport,
              uint32_t seq, uint32_t ack, uint8_t flags, uint16_t win, uint16_t mss,
              const void *data, size_t len);
/* The same with option bytes opt (olen, a multiple of 4) after the header. */
size_t mk_tcp_opts(uint8_t *buf, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport,
                   uint32_t seq, uint32_t ack, uint8_t flags, uint16_t win, const uint8_t *opt,
                   size_t olen, const void *data, size_t len);
size_t mk_ip(uint8_t *buf, uint32_t src, uint32_t dst, uint8_t proto, const void *payload,
             size_t len);
size_t mk_udp(uint8_t *buf, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport,
              const void *data, size_t len, bool csum);

/* Inject a segment from the peer (PEER_IP:pport -> US_IP:US_PORT or dport). */
void peer_send(uint16_t pport, uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags,
               uint16_t win, const void *data, size_t len);
void peer_send_mss(uint16_t pport, uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags,
                   uint16_t win, uint16_t mss);
/* Inject a segment from the peer with arbitrary option bytes (olen a
 * multiple of 4, at most 40). */
void peer_send_opts(uint16_t pport, uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags,
                    uint16_t win, const uint8_t *opt, size_t olen, const void *data, size_t len);
/* Option bytes, built here: each helper writes at p and returns the length. */
size_t opt_mss(uint8_t *p, uint16_t mss);                    /* 4 bytes */
size_t opt_ws(uint8_t *p, uint8_t shift);                    /* nop, wscale: 4 */
size_t opt_sackok(uint8_t *p);                               /* nop, nop, sackOK: 4 */
size_t opt_ts(uint8_t *p, uint32_t val, uint32_t ecr);       /* nop, nop, TS: 12 */
size_t opt_sack(uint8_t *p, int n, const uint32_t blk[][2]); /* nop, nop, SACK: 4 + 8n */
/* Shorthand for the fixture connection PEER_PORT -> US_PORT. */
void seg_in(uint32_t seq, uint32_t ack, uint8_t flags, uint16_t win, const void *data,
            size_t len);

/* Parse capture i as TCP (asserts valid IPv4/TCP checksums). */
struct tseg cap_tcp(int i);
/* The only segment captured since the last cap_clear (asserts exactly one). */
struct tseg one_seg(void);
void cap_clear(void);

/* Advance the clock and poll. */
uint64_t advance(uint64_t us);

/* A connection in ESTABLISHED: passive (listen+SYN+ACK+accept) or active.
 * Returns the sd; *our_iss receives the stack's ISS. Peer ISS = PEER_ISS. */
int fx_passive(uint32_t *our_iss);
/* fx_passive with the peer's MSS option and the SYN,ACK answered rtt_us
 * later (the first RTT sample: SRTT = rtt_us, or 1 µs for 0). */
int fx_passive_mss_rtt(uint16_t mss, uint64_t rtt_us, uint32_t *our_iss);
int fx_active(uint32_t *our_iss);
extern int listen_sd;

void on_event(void *arg, ss_stack *s, int sd, unsigned ev, int err);
bool saw_event(int sd, unsigned ev, int err);
int sock_state(int sd);



/* Shorthand for the active connection: peer US_PORT -> our PEER_PORT+1. */
#define ACT_PORT (PEER_PORT + 1)
static inline void aseg_in(uint32_t seq, uint32_t ack, uint8_t flags, uint16_t win,
                           const void *data, size_t len)
{
    peer_send(US_PORT, ACT_PORT, seq, ack, flags, win, data, len);
}
#endif
