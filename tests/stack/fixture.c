#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ss_stack *st;
struct ss_stack_cfg cfg;
uint64_t now;
struct cap caps[CAP_MAX];
int ncap;
struct evrec evs[64];
int nev;
int ntrace_state;
char last_trace[256];
char trace_lines[TRACE_MAX][128];
int ntrace;
int listen_sd = -1;

static int out_cb(void *ctx, const uint8_t *pkt, size_t len)
{
    (void)ctx;
    cr_assert_lt(ncap, CAP_MAX, "too many packets captured");
    cr_assert_leq(len, CAP_PKT);
    memcpy(caps[ncap].data, pkt, len);
    caps[ncap].len = len;
    ncap++;
    return 0;
}

static void trace_cb(void *ctx, const struct ss_trace_event *ev)
{
    (void)ctx;
    if (ev->kind == SS_TRACE_STATE)
        ntrace_state++;
    if (ntrace < TRACE_MAX)
        ss_trace_format(ev, 0, trace_lines[ntrace++], sizeof trace_lines[0]);
    if (getenv("SS_TEST_TRACE")) {
        char l[256];
        ss_trace_format(ev, SS_TRACE_FMT_TIME, l, sizeof l);
        fprintf(stderr, "  %s\n", l);
    }
    /* Every event must format, in both formats. */
    char j[512];
    cr_assert_gt(ss_trace_format(ev, SS_TRACE_FMT_TIME | SS_TRACE_FMT_TUPLE, last_trace,
                                 sizeof last_trace), 0);
    cr_assert_gt(ss_trace_format_json(ev, j, sizeof j), 0);
}

void fx_setup_with(void (*tweak)(struct ss_stack_cfg *c))
{
    ss_stack_cfg_default(&cfg);
    cfg.local_addr = US_IP;
    for (int i = 0; i < 32; i++)
        cfg.isn_secret[i] = (uint8_t)(i * 7 + 1);
    cfg.output = out_cb;
    cfg.trace = trace_cb;
    cfg.max_sockets = 16;
    cfg.sndbuf = 16384;
    cfg.rcvbuf = 8192;
    if (tweak)
        tweak(&cfg);
    ncap = nev = ntrace_state = ntrace = 0;
    now = 1 * SEC;
    listen_sd = -1;
    cr_assert_eq(ss_stack_new(&cfg, &st), 0);
}

void fx_setup(void) { fx_setup_with(NULL); }

void fx_teardown(void)
{
    ss_stack_free(st);
    st = NULL;
}

uint16_t t_csum(const void *buf, size_t len, uint32_t init)
{
    const uint8_t *p = buf;
    uint64_t s = init;
    for (size_t i = 0; i + 1 < len; i += 2)
        s += (uint32_t)p[i] << 8 | p[i + 1];
    if (len & 1)
        s += (uint32_t)p[len - 1] << 8;
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)get16(p) << 16 | get16(p + 2); }

static uint32_t pseudo(uint32_t src, uint32_t dst, uint8_t proto, size_t len)
{
    return (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto + (uint32_t)len;
}

size_t mk_ip(uint8_t *buf, uint32_t src, uint32_t dst, uint8_t proto, const void *payload,
             size_t len)
{
    memset(buf, 0, 20);
    buf[0] = 0x45;
    put16(buf + 2, (uint16_t)(20 + len));
    put16(buf + 4, 0x1234);
    buf[8] = 64;
    buf[9] = proto;
    put32(buf + 12, src);
    put32(buf + 16, dst);
    put16(buf + 10, t_csum(buf, 20, 0));
    if (payload && payload != buf + 20)
        memmove(buf + 20, payload, len);
    return 20 + len;
}

size_t mk_tcp_opts(uint8_t *buf, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport,
                   uint32_t seq, uint32_t ack, uint8_t flags, uint16_t win, const uint8_t *opt,
                   size_t olen, const void *data, size_t len)
{
    uint8_t *t = buf + 20;
    size_t hl = 20 + olen;
    memset(t, 0, hl);
    put16(t, sport);
    put16(t + 2, dport);
    put32(t + 4, seq);
    put32(t + 8, ack);
    t[12] = (uint8_t)((hl / 4) << 4);
    t[13] = flags;
    put16(t + 14, win);
    if (olen)
        memcpy(t + 20, opt, olen);
    if (len)
        memcpy(t + hl, data, len);
    put16(t + 16, t_csum(t, hl + len, pseudo(src, dst, 6, hl + len)));
    return mk_ip(buf, src, dst, 6, t, hl + len);
}

size_t mk_tcp(uint8_t *buf, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport,
              uint32_t seq, uint32_t ack, uint8_t flags, uint16_t win, uint16_t mss,
              const void *data, size_t len)
{
    uint8_t o[4];
    size_t olen = mss ? opt_mss(o, mss) : 0;
    return mk_tcp_opts(buf, src, dst, sport, dport, seq, ack, flags, win, o, olen, data, len);
}

size_t mk_udp(uint8_t *buf, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport,
              const void *data, size_t len, bool csum)
{
    uint8_t *u = buf + 20;
    put16(u, sport);
    put16(u + 2, dport);
    put16(u + 4, (uint16_t)(8 + len));
    put16(u + 6, 0);
    memcpy(u + 8, data, len);
    if (csum) {
        uint16_t c = t_csum(u, 8 + len, pseudo(src, dst, 17, 8 + len));
        put16(u + 6, c ? c : 0xffff);
    }
    return mk_ip(buf, src, dst, 17, u, 8 + len);
}

void peer_send(uint16_t pport, uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags,
               uint16_t win, const void *data, size_t len)
{
    static uint8_t pkt[70000];
    size_t n = mk_tcp(pkt, PEER_IP, US_IP, pport, dport, seq, ack, flags, win, 0, data, len);
    ss_stack_input(st, now, pkt, n);
}

void peer_send_mss(uint16_t pport, uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags,
                   uint16_t win, uint16_t mss)
{
    uint8_t pkt[100];
    size_t n = mk_tcp(pkt, PEER_IP, US_IP, pport, dport, seq, ack, flags, win, mss, NULL, 0);
    ss_stack_input(st, now, pkt, n);
}

void peer_send_opts(uint16_t pport, uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags,
                    uint16_t win, const uint8_t *opt, size_t olen, const void *data, size_t len)
{
    static uint8_t pkt[70000];
    cr_assert_eq(olen % 4, 0, "options fill whole words");
    cr_assert_leq(olen, 40);
    size_t n = mk_tcp_opts(pkt, PEER_IP, US_IP, pport, dport, seq, ack, flags, win, opt, olen,
                           data, len);
    ss_stack_input(st, now, pkt, n);
}

size_t opt_mss(uint8_t *p, uint16_t mss)
{
    p[0] = 2;
    p[1] = 4;
    put16(p + 2, mss);
    return 4;
}

size_t opt_ws(uint8_t *p, uint8_t shift)
{
    p[0] = 1;
    p[1] = 3;
    p[2] = 3;
    p[3] = shift;
    return 4;
}

size_t opt_sackok(uint8_t *p)
{
    p[0] = 1;
    p[1] = 1;
    p[2] = 4;
    p[3] = 2;
    return 4;
}

size_t opt_ts(uint8_t *p, uint32_t val, uint32_t ecr)
{
    p[0] = 1;
    p[1] = 1;
    p[2] = 8;
    p[3] = 10;
    put32(p + 4, val);
    put32(p + 8, ecr);
    return 12;
}

size_t opt_sack(uint8_t *p, int n, const uint32_t blk[][2])
{
    p[0] = 1;
    p[1] = 1;
    p[2] = 5;
    p[3] = (uint8_t)(2 + 8 * n);
    for (int i = 0; i < n; i++) {
        put32(p + 4 + 8 * i, blk[i][0]);
        put32(p + 8 + 8 * i, blk[i][1]);
    }
    return 4 + 8 * (size_t)n;
}

void seg_in(uint32_t seq, uint32_t ack, uint8_t flags, uint16_t win, const void *data,
            size_t len)
{
    peer_send(PEER_PORT, US_PORT, seq, ack, flags, win, data, len);
}

struct tseg cap_tcp(int i)
{
    cr_assert_lt(i, ncap, "no packet %d captured (have %d)", i, ncap);
    const uint8_t *p = caps[i].data;
    size_t n = caps[i].len;
    struct tseg s = {0};
    cr_assert_geq(n, 40);
    cr_assert_eq(p[0], 0x45, "IPv4, IHL 5");
    cr_assert_eq(get16(p + 2), n, "IP total length");
    cr_assert_eq(t_csum(p, 20, 0), 0, "IP header checksum");
    cr_assert_eq(p[9], 6, "protocol TCP");
    s.ttl = p[8];
    s.df = (get16(p + 6) & 0x4000) != 0;
    s.src = get32(p + 12);
    s.dst = get32(p + 16);
    cr_assert_eq(s.src, US_IP, "every segment comes from the stack's address (MUST-45)");
    const uint8_t *t = p + 20;
    size_t tl = n - 20;
    cr_assert_eq(t_csum(t, tl, pseudo(s.src, s.dst, 6, tl)), 0, "TCP checksum");
    s.sport = get16(t);
    s.dport = get16(t + 2);
    s.seq = get32(t + 4);
    s.ack = get32(t + 8);
    size_t hl = (size_t)(t[12] >> 4) * 4;
    s.flags = t[13];
    s.win = get16(t + 14);
    for (size_t o = 20; o < hl;) {
        if (t[o] == 0)
            break;
        if (t[o] == 1) {
            o++;
            continue;
        }
        cr_assert_leq(o + 2, hl, "option header within the TCP header");
        cr_assert_geq(t[o + 1], 2, "option length");
        cr_assert_leq(o + t[o + 1], hl, "option within the TCP header");
        const uint8_t *v = t + o + 2;
        if (t[o] == 2 && t[o + 1] == 4)
            s.mss = get16(v);
        if (t[o] == 3 && t[o + 1] == 3) {
            s.has_ws = true;
            s.ws = v[0];
        }
        if (t[o] == 4 && t[o + 1] == 2)
            s.sack_ok = true;
        if (t[o] == 8 && t[o + 1] == 10) {
            s.has_ts = true;
            s.ts_val = get32(v);
            s.ts_ecr = get32(v + 4);
        }
        if (t[o] == 5) {
            cr_assert_eq((t[o + 1] - 2) % 8, 0, "SACK option length 2 + 8n");
            s.nsack = (t[o + 1] - 2) / 8;
            cr_assert_leq(s.nsack, 4);
            for (int b = 0; b < s.nsack; b++) {
                s.sack[b][0] = get32(v + 8 * b);
                s.sack[b][1] = get32(v + 8 * b + 4);
            }
        }
        o += t[o + 1];
    }
    cr_assert_leq(hl, 60);
    s.optlen = hl - 20;
    memcpy(s.opt, t + 20, s.optlen);
    s.data = t + hl;
    s.len = tl - hl;
    return s;
}

struct tseg one_seg(void)
{
    cr_assert_eq(ncap, 1, "expected exactly one segment, got %d", ncap);
    struct tseg s = cap_tcp(0);
    return s;
}

void cap_clear(void) { ncap = 0; }

uint64_t advance(uint64_t us)
{
    now += us;
    return ss_stack_poll(st, now);
}

void on_event(void *arg, ss_stack *s, int sd, unsigned ev, int err)
{
    (void)arg;
    (void)s;
    if (nev < 64)
        evs[nev++] = (struct evrec){sd, ev, err};
}

bool saw_event(int sd, unsigned ev, int err)
{
    for (int i = 0; i < nev; i++)
        if (evs[i].sd == sd && (evs[i].ev & ev) == ev && (!err || evs[i].err == err))
            return true;
    return false;
}

int sock_state(int sd)
{
    struct ss_stack_sock_info in;
    cr_assert_eq(ss_stack_sock_info(st, sd, &in), 0);
    return in.state;
}

int fx_passive(uint32_t *our_iss)
{
    return fx_passive_mss_rtt(1460, 0, our_iss);
}

int fx_passive_mss_rtt(uint16_t mss, uint64_t rtt_us, uint32_t *our_iss)
{
    listen_sd = ss_tcp_listen(st, US_PORT, 8);
    cr_assert_geq(listen_sd, 0);
    ss_stack_sock_set_cb(st, listen_sd, on_event, NULL);
    cap_clear();
    peer_send_mss(PEER_PORT, US_PORT, PEER_ISS, 0, SS_TCP_SYN, 65535, mss);
    struct tseg s = one_seg();
    cr_assert_eq(s.flags, SS_TCP_SYN | SS_TCP_ACK);
    cr_assert_eq(s.ack, PEER_ISS + 1);
    cap_clear();
    now += rtt_us;
    seg_in(PEER_ISS + 1, s.seq + 1, SS_TCP_ACK, 65535, NULL, 0);
    cr_assert_eq(ncap, 0, "the handshake's last ACK needs no answer");
    uint32_t ra;
    uint16_t rp;
    int sd = ss_tcp_accept(st, listen_sd, &ra, &rp);
    cr_assert_geq(sd, 0);
    cr_assert_eq(ra, PEER_IP);
    cr_assert_eq(rp, PEER_PORT);
    cr_assert_eq(sock_state(sd), SS_TCP_ESTABLISHED);
    if (our_iss)
        *our_iss = s.seq;
    return sd;
}

int fx_active(uint32_t *our_iss)
{
    cap_clear();
    int sd = ss_tcp_connect(st, now, PEER_IP, US_PORT, PEER_PORT + 1);
    cr_assert_geq(sd, 0);
    ss_stack_sock_set_cb(st, sd, on_event, NULL);
    struct tseg s = one_seg();
    cr_assert_eq(s.flags, SS_TCP_SYN);
    cap_clear();
    /* The peer is at port US_PORT here; we are PEER_PORT+1. */
    uint8_t pkt[100];
    size_t n = mk_tcp(pkt, PEER_IP, US_IP, US_PORT, PEER_PORT + 1, PEER_ISS, s.seq + 1,
                      SS_TCP_SYN | SS_TCP_ACK, 65535, 1460, NULL, 0);
    ss_stack_input(st, now, pkt, n);
    struct tseg a = one_seg();
    cr_assert_eq(a.flags, SS_TCP_ACK);
    cr_assert_eq(a.ack, PEER_ISS + 1);
    cr_assert_eq(a.seq, s.seq + 1);
    cr_assert_eq(sock_state(sd), SS_TCP_ESTABLISHED);
    cap_clear();
    if (our_iss)
        *our_iss = s.seq;
    return sd;
}
