/* libFuzzer target: arbitrary packets and socket calls into one stack.
 *
 * Setup: a listener on port 80 with one connection accepted (its SYN may
 * offer window scaling, timestamps and SACK, as the input's first byte
 * says) and one half-open in SYN-RECEIVED, an active open in SYN-SENT to
 * 10.0.0.1:9, and a bound UDP socket. The input then mixes packets and
 * application calls: send, recv, shutdown, close, abort, accept, connect,
 * listen, set options, queries.
 *
 * Invariants (abort() on violation):
 *   - no crash, no sanitizer report, no leak; a deadline is never in the past;
 *   - every packet the stack emits is well-formed IPv4 with a valid header
 *     checksum; TCP segments have a valid checksum and well-formed options,
 *     MSS / window scale / SACK-permitted only on SYNs, and timestamps,
 *     SACK blocks and (on a SYN,ACK) each option only if the peer's SYN
 *     offered it; UDP and ICMP checksums are valid;
 *   - sequence numbers: every segment of a connection lies within
 *     [ISS, ISS + 1 + bytes the application queued + FIN] (a keep-alive
 *     probe may start at ISS); a RST carries such a number or echoes the
 *     ACK of the segment that provoked it;
 *   - acknowledgments: every ACK the stack sends acknowledges only what
 *     the peer sent: ACK-1 is a sequence number some segment of the peer
 *     on that connection covered (SYN, data or FIN), or a RST,ACK
 *     acknowledges the end of the segment that provoked it.
 *
 * Input: one header byte, then records
 *   u8 ctl, u8 act, u8 arg, u8 len_hi, u8 len_lo, bytes[len]
 * header bits 0-2: the setup SYN offers window scale / timestamps / SACK;
 *     bits 3-4: MSS it announces (1460, 536, 64, none).
 * ctl bit 0: fix the IPv4 header (version/IHL, total length, checksum),
 *     bit 1: also fix the TCP/UDP/ICMP checksum, so mutations get past
 *            the checksum checks and reach the protocol logic,
 *     bit 2: force source 10.0.0.1 and destination 10.0.0.2; for TCP also
 *            the ports of the socket in handle slot (IP id & 7), and read
 *            SEQ and ACK as 16-bit signed offsets from its RCV.NXT and
 *            SND.UNA (SND.NXT if IP id bit 3 is set), and the edges of SACK
 *            blocks as offsets from SND.UNA, so that mutations land in and
 *            around the windows,
 *     bit 3: a timestamps option in the segment gets a fresh TSval and,
 *            as TSecr, the last TSval the stack sent on that connection,
 *     bit 4: hold the packet back and hand it over with the next ones as
 *            one batch (ss_stack_input_batch, up to 8),
 *     bits 5-7: time advance after the record (0, 1 ms, 40 ms, 200 ms,
 *            1 s, 3 s, 60 s, 2 h).
 * act low 4 bits: the application call on handle slot (act >> 4) & 7:
 *     0 none, 1 send (arg * 16 bytes, or the record's length if arg is 0,
 *     at most 3000), 2 recv, 3 shutdown, 4 close, 5 abort, 6 accept into
 *     the slot, 7 setopt (option 1 + (arg & 15), value vals[arg >> 4]),
 *     8 send urgent, 9 UDP sendto, 10 UDP recvfrom, 11 connect from the
 *     slot to 10.0.0.1:arg (offering window scale, timestamps, SACK as arg
 *     bits 0-2 say), 12 listen on port arg in the slot, 13 queries
 *     (getopt, info, events, error), 14 urgent query + recv, 15 poll.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "sockstack/stack.h"

#define US 0x0a000002u
#define PEER 0x0a000001u
#define SLOTS 8
#define BATCH 8
#define TUPLES 16
#define RANGES 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


/* ---- what the outside can see of each connection ------------------------ */

/* One connection as seen on the wire: (our port, peer address, peer port). */
struct tuple {
    bool used;
    uint16_t lport, rport;
    uint32_t raddr;
    bool have_iss;       /* we saw the stack's SYN */
    uint32_t iss;
    uint64_t app_bytes;  /* bytes the application queued since that SYN */
    bool fin_ok;         /* the application shut down, closed or aborted */
    bool peer_ws, peer_ts, peer_sack; /* a SYN of the peer offered it */
    bool no_ack_check;   /* too many ranges, or a TCP fragment went in */
    uint32_t last_tsval; /* the stack's last TSval on this connection */
    int nr;
    struct { uint32_t start, len; } r[RANGES]; /* sequence space the peer covered */
};

static struct tuple tuples[TUPLES];
static uint32_t in_acks[BATCH + 1]; /* ACK fields of the segments being input */
static int n_in_acks;
static uint32_t in_ends[BATCH + 1]; /* their ends (SEQ + LEN + SYN + FIN) */
static int n_in_ends;
static bool in_input;

static struct tuple *tuple_of(uint16_t lport, uint32_t raddr, uint16_t rport, bool add)
{
    for (int i = 0; i < TUPLES; i++)
        if (tuples[i].used && tuples[i].lport == lport && tuples[i].raddr == raddr &&
            tuples[i].rport == rport)
            return &tuples[i];
    if (!add)
        return NULL;
    for (int i = 0; i < TUPLES; i++)
        if (!tuples[i].used) {
            tuples[i] = (struct tuple){.used = true, .lport = lport, .raddr = raddr,
                                       .rport = rport};
            return &tuples[i];
        }
    return NULL;
}

/* Is x in [start, start + len)? (wrap-safe) */
static bool in_range(uint32_t x, uint32_t start, uint32_t len) { return x - start < len; }

/* Record that the peer covered [s, s + len) on t, merging ranges. */
static void cover(struct tuple *t, uint32_t s, uint32_t len)
{
    if (!len || t->no_ack_check)
        return;
    for (int i = 0; i < t->nr;) {
        uint32_t a = t->r[i].start, b = a + t->r[i].len, e = s + len;
        if (in_range(s, a, t->r[i].len + 1) || in_range(a, s, len + 1)) {
            uint32_t ns = in_range(s, a, t->r[i].len + 1) ? a : s;
            uint32_t l1 = b - ns, l2 = e - ns;
            uint32_t nl = l1 > l2 ? l1 : l2;
            if (nl >= 0x80000000u) {
                t->no_ack_check = true;
                return;
            }
            s = ns;
            len = nl;
            t->r[i] = t->r[--t->nr];
            i = 0;
            continue;
        }
        i++;
    }
    if (t->nr == RANGES) {
        t->no_ack_check = true;
        return;
    }
    t->r[t->nr].start = s;
    t->r[t->nr++].len = len;
}

static bool covered(const struct tuple *t, uint32_t x)
{
    for (int i = 0; i < t->nr; i++)
        if (in_range(x, t->r[i].start, t->r[i].len))
            return true;
    return false;
}

/* Walk TCP options: calls f for each (kind, len, body); false if malformed. */
struct opts {
    bool mss, ws, sackok, ts, sack;
    uint32_t tsval;
    int ts_off;            /* offset of the TS option within the options, or -1 */
    int sack_off, sack_len; /* the (last) SACK option, if sack */
};

static bool parse_opts(const uint8_t *o, size_t n, struct opts *out)
{
    *out = (struct opts){.ts_off = -1};
    size_t i = 0;
    while (i < n) {
        uint8_t k = o[i];
        if (k == 0)
            break;
        if (k == 1) {
            i++;
            continue;
        }
        if (i + 1 >= n || o[i + 1] < 2 || i + o[i + 1] > n)
            return false;
        uint8_t l = o[i + 1];
        switch (k) {
        /* An option of the wrong length is ignored, as the stack does
         * (MUST-7): it does not undo a valid one before it. */
        case 2: out->mss |= l == 4; break;
        case 3: out->ws |= l == 3; break;
        case 4: out->sackok |= l == 2; break;
        case 5:
            out->sack = true;
            out->sack_off = (int)i;
            out->sack_len = l;
            break;
        case 8:
            if (l == 10) {
                out->ts = true;
                out->tsval = ss__get32(o + i + 2);
                out->ts_off = (int)i;
            }
            break;
        default: break;
        }
        i += l;
    }
    return true;
}

static uint16_t l4_csum(const uint8_t *ip, const uint8_t *l4, size_t ln)
{
    uint32_t src = ss__get32(ip + 12), dst = ss__get32(ip + 16);
    uint32_t ps = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + ip[9] +
                  (uint32_t)ln;
    return ss_csum_fold(ss_csum_add(ps, l4, ln));
}

/* A segment the peer sends us: what it covers, what it offers. */
static void note_input(const uint8_t *p, size_t n)
{
    if (n < 20 || (p[0] >> 4) != 4 || p[9] != 6)
        return;
    size_t ihl = (size_t)(p[0] & 15) * 4;
    if (ihl < 20 || ihl > n)
        return;
    uint16_t frag = ss__get16(p + 6);
    if (frag & 0x3fff) {
        /* A TCP fragment: the stack may reassemble a segment we never
         * parse, so its ACKs are not checked in this run. */
        for (int i = 0; i < TUPLES; i++)
            tuples[i].no_ack_check = true;
        return;
    }
    const uint8_t *t = p + ihl;
    size_t tl = n - ihl;
    if (tl < 20 || ss__get32(p + 16) != US)
        return;
    size_t doff = (size_t)(t[12] >> 4) * 4;
    if (doff < 20 || doff > tl)
        return;
    struct tuple *tu = tuple_of(ss__get16(t + 2), ss__get32(p + 12), ss__get16(t), true);
    uint32_t seq = ss__get32(t + 4);
    uint8_t fl = t[13];
    uint32_t len = (uint32_t)(tl - doff) + !!(fl & SS_TCP_SYN) + !!(fl & SS_TCP_FIN);
    if (n_in_acks <= BATCH) {
        in_acks[n_in_acks++] = ss__get32(t + 8);
        in_ends[n_in_ends++] = seq + len;
    }
    if (!tu)
        return;
    cover(tu, seq, len);
    struct opts o;
    if ((fl & SS_TCP_SYN) && parse_opts(t + 20, doff - 20, &o)) {
        tu->peer_ws |= o.ws;
        tu->peer_ts |= o.ts;
        tu->peer_sack |= o.sackok;
    }
}

static bool echoes_input(uint32_t v, const uint32_t *set, int n)
{
    for (int i = 0; i < n; i++)
        if (set[i] == v)
            return true;
    return false;
}

/* The checks on a TCP segment the stack emits. */
static void check_tcp_out(const uint8_t *p, size_t ihl, size_t n)
{
    const uint8_t *t = p + ihl;
    size_t tl = n - ihl;
    if (tl < 20)
        abort();
    size_t doff = (size_t)(t[12] >> 4) * 4;
    if (doff < 20 || doff > tl)
        abort();
    if (l4_csum(p, t, tl) != 0)
        abort(); /* TCP checksum */
    struct opts o;
    if (!parse_opts(t + 20, doff - 20, &o))
        abort(); /* malformed options */
    uint8_t fl = t[13];
    uint32_t seq = ss__get32(t + 4), ack = ss__get32(t + 8);
    uint32_t len = (uint32_t)(tl - doff);
    bool syn = fl & SS_TCP_SYN, rst = fl & SS_TCP_RST;
    if (!syn && (o.mss || o.ws || o.sackok))
        abort(); /* SYN-only options on another segment */
    struct tuple *tu = tuple_of(ss__get16(t), ss__get32(p + 16), ss__get16(t + 2), syn);
    if (!tu)
        return;
    if (o.ts)
        tu->last_tsval = o.tsval;
    if (syn) {
        if (!tu->have_iss || tu->iss != seq) {
            /* A new incarnation of the connection. */
            tu->have_iss = true;
            tu->iss = seq;
            tu->app_bytes = 0;
            tu->fin_ok = false;
        }
        if ((fl & SS_TCP_ACK) &&
            ((o.ws && !tu->peer_ws) || (o.ts && !tu->peer_ts) || (o.sackok && !tu->peer_sack)))
            abort(); /* SYN,ACK with an option the peer's SYN did not offer */
    } else if (!rst) {
        if ((o.ts && !tu->peer_ts) || (o.sack && !tu->peer_sack))
            abort(); /* an option that was not negotiated */
    }
    if (!syn && tu->have_iss) {
        int32_t off = (int32_t)(seq - (tu->iss + 1));
        int64_t end = (int64_t)off + len + !!(fl & SS_TCP_FIN);
        bool ok = off >= -1 && end <= (int64_t)tu->app_bytes + tu->fin_ok;
        if (rst)
            ok = ok || (in_input && !(fl & SS_TCP_ACK) && echoes_input(seq, in_acks, n_in_acks)) ||
                 (seq == 0 && (fl & SS_TCP_ACK));
        if (!ok)
            abort(); /* sequence number outside [ISS, ISS + 1 + queued + FIN] */
    }
    if ((fl & SS_TCP_ACK) && !tu->no_ack_check && !covered(tu, ack - 1) &&
        !(rst && in_input && echoes_input(ack, in_ends, n_in_ends)))
        abort(); /* acknowledges something the peer never sent */
}

static int out(void *ctx, const uint8_t *p, size_t n)
{
    (void)ctx;
    /* What the stack emits is a valid IPv4 packet... */
    if (n < 20 || (p[0] >> 4) != 4 || ss__get16(p + 2) != n ||
        ss_csum_fold(ss_csum_add(0, p, (size_t)(p[0] & 15) * 4)) != 0)
        abort();
    size_t ihl = (size_t)(p[0] & 15) * 4;
    if (ihl < 20 || ihl > n || ss__get32(p + 12) != US)
        abort();
    if (ss__get16(p + 6) & 0x3fff)
        return 0; /* a fragment: its transport header is checked nowhere */
    const uint8_t *l4 = p + ihl;
    size_t ln = n - ihl;
    /* ... and so is what it carries. */
    if (p[9] == 6)
        check_tcp_out(p, ihl, n);
    else if (p[9] == 17) {
        if (ln < 8 || ss__get16(l4 + 4) != ln || (ss__get16(l4 + 6) && l4_csum(p, l4, ln) != 0))
            abort();
    } else if (p[9] == 1) {
        if (ln < 8 || ss_csum_fold(ss_csum_add(0, l4, ln)) != 0)
            abort();
    }
    return 0;
}

/* ---- building and fixing packets --------------------------------------- */

static size_t tcp_opts(uint8_t *b, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
                       uint8_t flags, const uint8_t *opt, size_t olen)
{
    size_t n = 40 + olen;
    memset(b, 0, n);
    b[0] = 0x45;
    ss__put16(b + 2, (uint16_t)n);
    b[8] = 64;
    b[9] = 6;
    ss__put32(b + 12, PEER);
    ss__put32(b + 16, US);
    ss__put16(b + 10, ss_csum_fold(ss_csum_add(0, b, 20)));
    uint8_t *t = b + 20;
    ss__put16(t, sport);
    ss__put16(t + 2, dport);
    ss__put32(t + 4, seq);
    ss__put32(t + 8, ack);
    t[12] = (uint8_t)((5 + olen / 4) << 4);
    t[13] = flags;
    ss__put16(t + 14, 65535);
    if (olen)
        memcpy(t + 20, opt, olen);
    ss__put16(t + 16, l4_csum(b, t, 20 + olen));
    return n;
}

struct fz {
    ss_stack *st;
    uint64_t now;
    int slot[SLOTS];
    uint32_t tsclock;
    const uint8_t *batch[BATCH + 1];
    size_t blen[BATCH + 1];
    int nb;
};

static uint8_t bstore[BATCH + 1][65536];

/* SACK block edges: 16-bit signed offsets from SND.UNA. */
static void steer_sack(uint8_t *t, size_t tl, uint32_t una)
{
    size_t doff = (size_t)(t[12] >> 4) * 4;
    struct opts o;
    if (doff < 20 || doff > tl || !parse_opts(t + 20, doff - 20, &o) || !o.sack)
        return;
    uint8_t *sack = t + 20 + o.sack_off;
    for (int e = 2; e + 4 <= o.sack_len; e += 4)
        ss__put32(sack + e, una + (uint32_t)(int32_t)(int16_t)ss__get16(sack + e + 2));
}

static void fix(struct fz *z, uint8_t *p, size_t n, uint8_t ctl)
{
    if (n < 20)
        return;
    size_t ihl = (size_t)(p[0] & 15) * 4;
    if (ctl & 4) {
        ss__put32(p + 12, PEER);
        ss__put32(p + 16, US);
        struct ss_stack_sock_info in;
        int sd = z->slot[p[5] & 7];
        if (p[9] == 6 && n >= 40 && sd >= 0 && ss_stack_sock_info(z->st, sd, &in) == 0 &&
            in.proto == SS_PROTO_TCP) {
            uint8_t *t = p + 20;
            ss__put16(t + 2, in.lport);
            if (in.state != SS_TCP_LISTEN) {
                int16_t ds = (int16_t)ss__get16(t + 6), da = (int16_t)ss__get16(t + 10);
                ss__put16(t, in.rport);
                ss__put32(t + 4, in.rcv_nxt + (uint32_t)(int32_t)ds);
                ss__put32(t + 8, ((p[5] & 8) ? in.snd_nxt : in.snd_una) + (uint32_t)(int32_t)da);
                steer_sack(t, n - 20, in.snd_una);
            }
        }
    }
    if ((ctl & 8) && p[9] == 6 && ihl >= 20 && n >= ihl + 20) {
        uint8_t *t = p + ihl;
        size_t doff = (size_t)(t[12] >> 4) * 4;
        struct opts o;
        if (doff >= 20 && doff <= n - ihl && parse_opts(t + 20, doff - 20, &o) && o.ts) {
            struct tuple *tu = tuple_of(ss__get16(t + 2), ss__get32(p + 12), ss__get16(t), false);
            z->tsclock += 1 + (uint32_t)ss__get16(t + 20 + o.ts_off + 2);
            ss__put32(t + 20 + o.ts_off + 2, z->tsclock);
            ss__put32(t + 20 + o.ts_off + 6, tu ? tu->last_tsval : 0);
        }
    }
    if (!(ctl & 1))
        return;
    p[0] = 0x45;
    ss__put16(p + 2, (uint16_t)n);
    if (p[8] == 0)
        p[8] = 1;
    p[10] = p[11] = 0;
    ss__put16(p + 10, ss_csum_fold(ss_csum_add(0, p, 20)));
    if (!(ctl & 2))
        return;
    uint8_t *l4 = p + 20;
    size_t ln = n - 20;
    if (p[9] == 6 && ln >= 20) {
        l4[16] = l4[17] = 0;
        ss__put16(l4 + 16, l4_csum(p, l4, ln));
    } else if (p[9] == 17 && ln >= 8) {
        ss__put16(l4 + 4, (uint16_t)ln);
        l4[6] = l4[7] = 0;
        ss__put16(l4 + 6, l4_csum(p, l4, ln));
    } else if (p[9] == 1 && ln >= 4) {
        l4[2] = l4[3] = 0;
        ss__put16(l4 + 2, ss_csum_fold(ss_csum_add(0, l4, ln)));
    }
}

/* Hand the held packets (and p) to the stack. */
static void feed(struct fz *z, const uint8_t *p, size_t n)
{
    n_in_acks = n_in_ends = 0;
    for (int i = 0; i < z->nb; i++)
        note_input(z->batch[i], z->blen[i]);
    if (p)
        note_input(p, n);
    in_input = true;
    if (z->nb) {
        if (p) {
            z->batch[z->nb] = p;
            z->blen[z->nb++] = n;
        }
        ss_stack_input_batch(z->st, z->now, z->batch, z->blen, (size_t)z->nb);
        z->nb = 0;
    } else if (p) {
        ss_stack_input(z->st, z->now, p, n);
    }
    in_input = false;
}

/* ---- application calls -------------------------------------------------- */

static struct tuple *tuple_of_sd(struct fz *z, int sd)
{
    struct ss_stack_sock_info in;
    if (sd < 0 || ss_stack_sock_info(z->st, sd, &in) != 0 || in.proto != SS_PROTO_TCP ||
        in.state == SS_TCP_LISTEN || in.state == SS_TCP_CLOSED)
        return NULL;
    return tuple_of(in.lport, in.raddr, in.rport, true);
}

static void app_send(struct fz *z, int sd, const void *buf, size_t len, bool urgent)
{
    /* The call may send at once: count all of it until it says how much
     * it took. */
    struct tuple *tu = tuple_of_sd(z, sd);
    if (tu)
        tu->app_bytes += len;
    ssize_t n = urgent ? ss_tcp_send_urgent(z->st, z->now, sd, buf, len)
                       : ss_tcp_send(z->st, z->now, sd, buf, len);
    if (n > (ssize_t)len)
        abort();
    if (tu)
        tu->app_bytes -= len - (n > 0 ? (size_t)n : 0);
}

/* Shutdown, close and abort may send a FIN (or a RST at SND.NXT). */
static void app_end(struct fz *z, int sd)
{
    struct tuple *tu = tuple_of_sd(z, sd);
    if (tu)
        tu->fin_ok = true;
}

/* Close (or abort) any handle: 0 or -errno. */
static int release(struct fz *z, int sd, bool hard)
{
    app_end(z, sd);
    struct ss_stack_sock_info in;
    if (ss_stack_sock_info(z->st, sd, &in) == 0 && in.proto == SS_PROTO_UDP)
        return ss_udp_close(z->st, sd);
    return hard ? ss_tcp_abort(z->st, z->now, sd) : ss_tcp_close(z->st, z->now, sd);
}

static const int vals[16] = {0, 1, 2, 3, 10, 100, 536, 1000, 4096, 65535, 65536,
                             -1, 1 << 20, 7200, 0x7fffffff, 14};

static void act(struct fz *z, uint8_t a, uint8_t arg, const uint8_t *data, size_t len)
{
    int *slot = &z->slot[(a >> 4) & 7];
    int sd = *slot;
    char tmp[1024];
    int v;
    switch (a & 15) {
    case 1: {
        static uint8_t pattern[3000];
        size_t n = arg ? (size_t)arg * 16 : len;
        n = n > sizeof pattern ? sizeof pattern : n;
        memset(pattern, 'S', n);
        app_send(z, sd, pattern, n, false);
        break;
    }
    case 2:
        ss_tcp_recv(z->st, z->now, sd, tmp, arg ? (size_t)arg * 4 : sizeof tmp);
        break;
    case 3:
        app_end(z, sd);
        ss_tcp_shutdown(z->st, z->now, sd);
        break;
    case 4:
    case 5:
        if (release(z, sd, (a & 15) == 5) == 0)
            for (int i = 0; i < SLOTS; i++)
                if (z->slot[i] == sd)
                    z->slot[i] = -1;
        break;
    case 6: {
        int c = ss_tcp_accept(z->st, z->slot[0], NULL, NULL);
        if (c >= 0 && *slot < 0)
            *slot = c;
        else if (c >= 0)
            release(z, c, false); /* the slot is taken: give it back */
        break;
    }
    case 7:
        ss_stack_sock_setopt(z->st, sd, 1 + (arg & 15), vals[arg >> 4]);
        break;
    case 8:
        app_send(z, sd, data, len > 10 ? 10 : len, true);
        break;
    case 9:
        ss_udp_sendto(z->st, z->now, z->slot[3], PEER, arg, data, len > 1400 ? 1400 : len);
        break;
    case 10:
        ss_udp_recvfrom(z->st, z->slot[3], tmp, sizeof tmp, NULL, NULL);
        break;
    case 11:
        if (sd < 0) {
            int c = ss_tcp_socket(z->st);
            if (c >= 0) {
                /* Options that must precede the SYN: the window it
                 * offers, and which of WS / TS / SACK it offers. */
                ss_stack_sock_setopt(z->st, c, SS_SO_RCVBUF, 1 + arg * 16);
                ss_stack_sock_setopt(z->st, c, SS_SO_WSCALE, arg & 1);
                ss_stack_sock_setopt(z->st, c, SS_SO_TIMESTAMPS, (arg & 2) != 0);
                ss_stack_sock_setopt(z->st, c, SS_SO_SACK, (arg & 4) != 0);
                if (ss_tcp_connect_sd(z->st, z->now, c, PEER, arg, 0) == 0)
                    *slot = c;
                else
                    ss_tcp_close(z->st, z->now, c);
            }
        }
        break;
    case 12:
        if (sd < 0) {
            int l = ss_tcp_listen(z->st, arg, arg & 3);
            if (l >= 0)
                *slot = l;
        }
        break;
    case 13: {
        struct ss_stack_sock_info in;
        for (int o = 1; o <= 16; o++)
            ss_stack_sock_getopt(z->st, sd, o, &v);
        ss_stack_sock_info(z->st, sd, &in);
        ss_stack_sock_events(z->st, sd);
        ss_stack_sock_error(z->st, sd);
        break;
    }
    case 14:
        if (ss_tcp_urgent(z->st, sd) > 0)
            ss_tcp_recv(z->st, z->now, sd, tmp, 1);
        break;
    case 15:
        ss_stack_poll(z->st, z->now);
        break;
    default:
        break;
    }
}

static const uint16_t setup_mss[4] = {1460, 536, 64, 0};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint64_t steps[8] = {0, 1000, 40000, 200000, 1000000, 3000000,
                                      60000000, 7200000000ull};
    memset(tuples, 0, sizeof tuples);
    struct ss_stack_cfg cfg;
    ss_stack_cfg_default(&cfg);
    cfg.local_addr = US;
    cfg.isn_secret[0] = 1;   /* fixed: every run of an input is the same */
    cfg.output = out;
    cfg.max_sockets = 8;
    cfg.sndbuf = 4096;
    cfg.rcvbuf = 4096;
    cfg.frag_slots = 1; /* two would take the pools past ASan's large-chunk
                           size: every run an mmap and a munmap, 4x slower */
    cfg.ooo_max = 4;
    cfg.udp_rcvq_max = 4;
    /* A fixed secret: the same input gives the same ISNs, so a crash
     * reproduces (and the stack may not draw one itself). */
    for (size_t k = 0; k < sizeof cfg.isn_secret; k++)
        cfg.isn_secret[k] = (uint8_t)(k * 37 + 1);
    struct fz z = {.now = 1000000};
    for (int i = 0; i < SLOTS; i++)
        z.slot[i] = -1;
    if (ss_stack_new(&cfg, &z.st) != 0)
        abort();
    uint8_t hdr = size ? data[0] : 0;
    uint8_t *b = bstore[BATCH];

    /* A listener with one established connection and one half-open. */
    uint8_t o[40];
    size_t ol = 0;
    if (setup_mss[hdr >> 3 & 3]) {
        o[ol++] = 2, o[ol++] = 4;
        ss__put16(o + ol, setup_mss[hdr >> 3 & 3]);
        ol += 2;
    }
    if (hdr & 1)
        o[ol++] = 1, o[ol++] = 3, o[ol++] = 3, o[ol++] = 7;
    if (hdr & 4)
        o[ol++] = 1, o[ol++] = 1, o[ol++] = 4, o[ol++] = 2;
    if (hdr & 2) {
        o[ol++] = 1, o[ol++] = 1, o[ol++] = 8, o[ol++] = 10;
        ss__put32(o + ol, 100);
        ss__put32(o + ol + 4, 0);
        ol += 8;
    }
    z.slot[0] = ss_tcp_listen(z.st, 80, 4);
    app_send(&z, z.slot[0], "x", 1, false);
    feed(&z, b, tcp_opts(b, 40000, 80, 5000, 0, SS_TCP_SYN, o, ol));
    struct tuple *tu = tuple_of(80, PEER, 40000, false);
    uint32_t iss = tu ? tu->iss : 0;
    uint8_t ts[12] = {1, 1, 8, 10};
    ss__put32(ts + 4, 101);
    ss__put32(ts + 8, tu ? tu->last_tsval : 0);
    feed(&z, b, tcp_opts(b, 40000, 80, 5001, iss + 1, SS_TCP_ACK, ts, (hdr & 2) ? 12 : 0));
    z.slot[1] = ss_tcp_accept(z.st, z.slot[0], NULL, NULL);
    ss_stack_sock_setopt(z.st, z.slot[1], SS_SO_KEEPALIVE, 1);
    app_send(&z, z.slot[1], "hello", 5, false);
    feed(&z, b, tcp_opts(b, 40001, 80, 7000, 0, SS_TCP_SYN, NULL, 0));
    z.slot[2] = ss_tcp_connect(z.st, z.now, PEER, 9, 0);
    z.slot[3] = ss_udp_bind(z.st, 53);

    size_t i = 1;
    while (i + 5 <= size) {
        uint8_t ctl = data[i], a = data[i + 1], arg = data[i + 2];
        size_t len = (size_t)data[i + 3] << 8 | data[i + 4];
        i += 5;
        if (len > size - i)
            len = size - i;
        uint8_t *p = bstore[z.nb];
        memcpy(p, data + i, len);
        fix(&z, p, len, ctl);
        if ((ctl & 16) && z.nb < BATCH) {
            z.batch[z.nb] = p;
            z.blen[z.nb++] = len;
        } else {
            feed(&z, p, len);
        }
        act(&z, a, arg, data + i, len);
        i += len;
        z.now += steps[ctl >> 5];
        uint64_t d = ss_stack_poll(z.st, z.now);
        if (d < z.now)
            abort(); /* a deadline in the past means a timer that never fires */
    }
    feed(&z, NULL, 0);
    for (int k = 0; k < SLOTS; k++)
        if (z.slot[k] >= 0)
            release(&z, z.slot[k], false);
    ss_stack_poll(z.st, z.now + 3600000000ull);
    ss_stack_free(z.st);
    return 0;
}
