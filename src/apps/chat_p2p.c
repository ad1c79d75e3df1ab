/* chat_p2p: a point-to-point session with NAT traversal (see
 * include/sockstack/chat_p2p.h for the steps and the wire format).
 *
 * Path setup:  start -> listen on P, probe from P -> "/p2p hello" ->
 *   "P2P peer PUB CANDS" -> direct (side 0 -> each candidate) -> after
 *   direct_ms: punch (both, from P -> PUB, retried) -> after punch_ms:
 *   UDP (start_udp: "P2PU hello" -> the server's "P2PU peer" -> probes to
 *   the peer's UDP address -> udp_io: a datagram from it -> udp_up, a
 *   deferred step: connect the UDP socket, a stack (tunnet) on it, side 0
 *   listens / side 1 connects through its sock backend) -> after udp_ms:
 *   relay ("/p2p relay" to the server) -> first authenticated stream wins
 *   (side 0 sends "USE"). The UDP link (socket, tunnet, backend) is freed
 *   by udp_down, never inside a stack socket's callback: when another
 *   path wins (go_up, in a kernel socket's callback), at the relay step (a
 *   timer) or in ss_chat_p2p_free.
 * RX (chosen stream): cand_io -> ss_chat_client_feed (the library's client
 *   decoder, as for the server's lines) -> session_event -> MSG / FILE /
 *   CHUNK / FILEEND / RESUME / DONE / FAILED / NOFILE -> callbacks.
 *   The probe (the rendezvous): cand_io -> ss_chat_client_feed (its own
 *   decoder) -> probe_event -> P2P peer / OK p2p hello / ERR.
 *   Before a stream is chosen: lines_in ("OK p2p relay", "USE").
 * TX: send_text / upload pump -> p->out (bounded) -> socket when writable.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sockstack/auth.h"
#include "sockstack/chat.h"
#include "sockstack/chat_client.h"
#include "sockstack/chat_p2p.h"
#include "sockstack/config.h"
#include "sockstack/err.h"
#include "sockstack/sock.h"
#include "sockstack/sock_stack.h"
#include "sockstack/stackrun.h"

enum { CANDS_MAX = 8, OUT_MAX = 1 << 20, LINE_MAX_P2P = SS_CHAT_MAX_LINE + 256 };
enum ckind { C_PROBE, C_DIRECT, C_PUNCH, C_ACCEPTED, C_RELAY, C_UDP };
enum phase { PH_HELLO, PH_DIRECT, PH_PUNCH, PH_UDP, PH_RELAY, PH_UP, PH_DONE };
/* The user-space TCP over a punched UDP path: side 0 is 10.255.0.1 and
 * listens on UDP_TCP_PORT, side 1 is 10.255.0.2 and connects. */
enum { UDP_ADDR0 = 0x0aff0001, UDP_TCP_PORT = 7 };

struct cand {
    ss_sock *s;
    enum ckind kind;
    bool connecting, authing, relay_ok;
    ss_auth auth;
    char label[160];
    char in[LINE_MAX_P2P + 2];
    size_t in_len;
    struct ss_chat_p2p *p;
    /* Stream bytes each way: for a relay, from its "OK p2p relay" on (the
     * bytes the server relays); for the others, everything. */
    uint64_t tx, rx;
};

struct ss_chat_p2p {
    ss_chat_p2p_opts o;
    ss_auth_key key;
    ss_addr server;
    ss_sock *listener;
    int port;                    /* P */
    struct cand c[CANDS_MAX];
    struct cand *probe;
    enum phase phase;
    ss_timer phase_timer, retry_timer;
    char peer_pub[80];
    char peer_cands[256];
    struct cand *up;             /* the chosen stream */
    char path[160];
    char *out;
    size_t out_len;
    ss_chat_ul *ul;
    int64_t ul_id;
    bool ul_go;
    ss_chat_dl *dl;
    char nick[SS_CHAT_NICK_MAX + 1]; /* ours, in MSG lines */
    char key_hex[33];            /* o.key, kept: the caller's may not live */
    int64_t next_id;
    uint64_t tx, rx;             /* the chosen stream's bytes, once closed */
    ss_chat_client *dec;         /* the chosen stream's lines */
    ss_chat_client *probe_dec;   /* the rendezvous lines on the probe */
    /* UDP hole punching: one UDP socket for the rendezvous hellos, the
     * probes and then, connected to the peer, the link of a user-space
     * stack (tn, its sock backend sbe) that carries the stream. */
    ss_sock *udp;
    ss_addr udp_server, udp_peer;
    bool udp_peer_known, udp_seen;
    char udp_peer_s[80];
    ss_tunnet *tn;
    ss_backend *sbe;
    ss_sock *slisten;            /* side 0: the stack's listener */
    bool udp_punched;            /* a datagram came from the peer */
    ss_defer udp_defer;          /* then: the stack goes on the socket */
};

void ss_chat_p2p_opts_init(ss_chat_p2p_opts *o)
{
    *o = (ss_chat_p2p_opts){.direct_ms = SS_CHAT_P2P_DIRECT_MS,
                            .punch_ms = SS_CHAT_P2P_PUNCH_MS,
                            .udp_ms = SS_CHAT_P2P_UDP_MS, .dir = "."};
}

static void status(ss_chat_p2p *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void status(ss_chat_p2p *p, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (p->o.cb.status)
        p->o.cb.status(p->o.arg, buf);
}

static void cand_close(struct cand *k)
{
    if (k->s)
        ss_sock_close(k->s);
    k->s = NULL;
    k->in_len = 0;
    if (k->p && k->p->probe == k)
        k->p->probe = NULL;
}

static struct cand *cand_new(ss_chat_p2p *p, enum ckind kind)
{
    for (int i = 0; i < CANDS_MAX; i++)
        if (!p->c[i].s) {
            p->c[i] = (struct cand){.kind = kind, .p = p};
            return &p->c[i];
        }
    return NULL;
}

static void cand_io(ss_sock *s, unsigned ev, void *arg);
static void udp_down(ss_chat_p2p *p);

/* Reuse options so that the listener, the probe and the punches share P. */
static void reuse_opts(ss_sockopts *so)
{
    ss_sockopts_init(so);
    so->reuseaddr = 1;
    so->reuseport = 1;
}

/* Connect k to a (from P when from_p). */
static int cand_connect(ss_chat_p2p *p, struct cand *k, const ss_addr *a, bool from_p)
{
    ss_sockopts so;
    reuse_opts(&so);
    ss_addr local, *bind_to = NULL;
    if (from_p) {
        char port[8];
        snprintf(port, sizeof port, "%d", p->port);
        if (ss_addr_resolve("0.0.0.0", port, AF_INET, SS_STREAM, true, &local, 1) < 1)
            return -EINVAL;
        bind_to = &local;
    }
    int err = ss_sock_connect_to(ss_backend_kernel(), a, SS_STREAM, from_p ? &so : NULL,
                                 bind_to, &k->s, NULL);
    if (err < 0 && err != -EINPROGRESS)
        return err;
    k->connecting = true;
    ss_sock_watch(k->s, p->o.loop, SS_WRITE, cand_io, k);
    return 0;
}

/* ---- sending on a candidate ------------------------------------------------ */

static int raw_send(struct cand *k, const void *d, size_t n)
{
    /* Handshake and control lines are small: the socket takes them. */
    ssize_t r = ss_sock_send(k->s, d, n);
    if (r > 0 && (k->kind != C_RELAY || k->relay_ok))
        k->tx += (uint64_t)r;
    return r == (ssize_t)n ? 0 : r < 0 ? (int)r : -EAGAIN;
}

static void auth_flush(struct cand *k)
{
    const uint8_t *d;
    size_t n = ss_auth_output(&k->auth, &d);
    if (n && raw_send(k, d, n) == 0)
        ss_auth_output_done(&k->auth, n);
}

static void start_auth(ss_chat_p2p *p, struct cand *k)
{
    k->authing = true;
    ss_auth_init(&k->auth, p->o.side == 0 ? SS_AUTH_SERVER : SS_AUTH_CLIENT, SS_AUTH_MUTUAL,
                 &p->key, NULL);
    auth_flush(k);
    ss_sock_watch(k->s, p->o.loop, SS_READ, cand_io, k);
}

/* ---- the chosen stream ------------------------------------------------------- */

static void want(ss_chat_p2p *p)
{
    if (p->up)
        ss_sock_watch(p->up->s, p->o.loop, SS_READ | (p->out_len ? SS_WRITE : 0), cand_io,
                      p->up);
}

static bool out_put(ss_chat_p2p *p, const char *d, size_t n)
{
    if (!p->up || p->out_len + n > OUT_MAX)
        return false;
    memcpy(p->out + p->out_len, d, n);
    p->out_len += n;
    want(p);
    return true;
}

__attribute__((format(printf, 2, 3)))
static bool out_fmt(ss_chat_p2p *p, const char *fmt, ...)
{
    char buf[LINE_MAX_P2P];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return n > 0 && (size_t)n < sizeof buf && out_put(p, buf, (size_t)n);
}

static void upload_pump(ss_chat_p2p *p)
{
    char buf[SS_CHAT_MAX_LINE];
    while (p->ul && p->ul_go && p->out_len < OUT_MAX / 2) {
        int n = ss_chat_ul_next(p->ul, p->ul_id, buf, sizeof buf);
        if (n <= 0) {
            if (n == 0)
                out_fmt(p, "FILEEND %lld\n", (long long)p->ul_id);
            else if (p->o.cb.sent)
                p->o.cb.sent(p->o.arg, n, ss_chat_ul_name(p->ul));
            if (n < 0) {
                ss_chat_ul_close(p->ul);
                p->ul = NULL;
            }
            p->ul_go = false;
            return;
        }
        /* "/chunk ID OFF B64" (the upload to a server) goes to the peer as
         * the server's download line, "CHUNK ID OFF B64". */
        memcpy(buf + 1, "CHUNK", 5);
        out_put(p, buf + 1, (size_t)n - 1);
    }
}

static void finish(ss_chat_p2p *p, int err)
{
    if (p->phase == PH_DONE)
        return;
    p->phase = PH_DONE;
    if (p->up) {
        p->tx = p->up->tx;
        p->rx = p->up->rx;
    }
    ss_timer_stop(p->o.loop, &p->phase_timer);
    ss_timer_stop(p->o.loop, &p->retry_timer);
    for (int i = 0; i < CANDS_MAX; i++)
        cand_close(&p->c[i]);
    p->up = NULL;
    if (p->listener) {
        ss_sock_close(p->listener);
        p->listener = NULL;
    }
    if (p->slisten) {
        ss_sock_close(p->slisten);
        p->slisten = NULL;
    }
    /* The UDP link and its stack stay until ss_chat_p2p_free: this may
     * run in a stack socket's callback, and the stack still sends the
     * FIN (and retransmits it) meanwhile. */
    ss_chat_dl_keep(p->dl); /* what arrived stays for a resume */
    p->dl = NULL;
    if (p->o.cb.closed)
        p->o.cb.closed(p->o.arg, err);
}

/* Split the first space-separated word off *s (the rendezvous lines). */
static char *word(char **s)
{
    char *w = *s, *sp = strchr(w, ' ');
    if (sp) {
        *sp = '\0';
        *s = sp + 1;
    } else {
        *s = w + strlen(w);
    }
    return w;
}

/* A file offer from the peer: resume what an earlier try left. */
static void file_in(ss_chat_p2p *p, const ss_chat_ev *ev)
{
    ss_chat_dl_abort(p->dl);
    p->dl = NULL;
    int err = ss_chat_dl_resume(&p->dl, p->o.dir, ev->id, ev->size, ev->sha256, ev->text);
    if (err) {
        out_fmt(p, "NOFILE %lld\n", (long long)ev->id);
        if (p->o.cb.file)
            p->o.cb.file(p->o.arg, err, ev->text);
        return;
    }
    uint64_t have = ss_chat_dl_offset(p->dl);
    if (have)
        status(p, "resuming %s at byte %llu of %llu", ev->text, (unsigned long long)have,
               (unsigned long long)ev->size);
    out_fmt(p, "RESUME %lld %llu\n", (long long)ev->id, (unsigned long long)have);
}

/* One line on the chosen stream, decoded by the client decoder. */
static void session_event(void *arg, const ss_chat_ev *ev)
{
    ss_chat_p2p *p = arg;
    if (p->phase != PH_UP)
        return; /* the rest of a read after the session ended */
    switch (ev->kind) {
    case SS_CHAT_EV_MSG: {
        /* The peer's nick is the one the introduction named, not what the
         * line says. */
        char text[SS_CHAT_CLIENT_LINE_MAX + 1];
        snprintf(text, sizeof text, "%s", ev->text);
        ss_chat_text_clean(text);
        if (p->o.cb.text)
            p->o.cb.text(p->o.arg, text);
        break;
    }
    case SS_CHAT_EV_FILE:
        file_in(p, ev);
        break;
    case SS_CHAT_EV_CHUNK:
        if (p->dl && ev->id == ss_chat_dl_id(p->dl)) {
            int err = ss_chat_dl_chunk(p->dl, ev->off, ev->text);
            if (err) {
                ss_chat_dl_abort(p->dl);
                p->dl = NULL;
                out_fmt(p, "FAILED %lld\n", (long long)ev->id);
                if (p->o.cb.file)
                    p->o.cb.file(p->o.arg, err, "");
            }
        }
        break;
    case SS_CHAT_EV_FILEEND:
        if (p->dl && ev->id == ss_chat_dl_id(p->dl)) {
            char path[4096];
            int err = ss_chat_dl_finish(p->dl, path, sizeof path);
            p->dl = NULL;
            out_fmt(p, "%s %lld\n", err ? "FAILED" : "DONE", (long long)ev->id);
            if (p->o.cb.file)
                p->o.cb.file(p->o.arg, err, err ? "" : path);
        }
        break;
    case SS_CHAT_EV_RESUME:
        if (p->ul && ev->id == p->ul_id) {
            ss_chat_ul_seek(p->ul, ev->off);
            if (ev->off)
                status(p, "the peer has %llu bytes already; resuming there",
                       (unsigned long long)ev->off);
            p->ul_go = true;
            upload_pump(p);
        }
        break;
    case SS_CHAT_EV_DONE:
    case SS_CHAT_EV_FAILED:
    case SS_CHAT_EV_NOFILE:
        if (p->ul && ev->id == p->ul_id) {
            if (p->o.cb.sent)
                p->o.cb.sent(p->o.arg, ev->kind == SS_CHAT_EV_DONE ? 0 : SS_EDIGEST,
                             ss_chat_ul_name(p->ul));
            ss_chat_ul_close(p->ul);
            p->ul = NULL;
        }
        break;
    default:
        break; /* anything else from a peer is ignored */
    }
}

/* The stream k is the one: close the others and the setup. */
static void go_up(ss_chat_p2p *p, struct cand *k)
{
    for (int i = 0; i < CANDS_MAX; i++)
        if (&p->c[i] != k)
            cand_close(&p->c[i]);
    p->probe = NULL;
    if (p->listener) {
        ss_sock_close(p->listener);
        p->listener = NULL;
    }
    if (p->slisten) {
        ss_sock_close(p->slisten);
        p->slisten = NULL;
    }
    /* Another path won: the UDP link goes (we are in k's callback, a
     * kernel socket's, so the stack may be freed under nobody). */
    if (k->kind != C_UDP)
        udp_down(p);
    ss_timer_stop(p->o.loop, &p->phase_timer);
    ss_timer_stop(p->o.loop, &p->retry_timer);
    p->up = k;
    p->phase = PH_UP;
    snprintf(p->path, sizeof p->path, "%s", k->label);
    status(p, "connected: %s", k->label);
    want(p);
}

/* ---- the rendezvous (probe) --------------------------------------------------- */

static void start_punch(ss_chat_p2p *p);
static void start_udp(ss_chat_p2p *p);
static void start_relay(ss_chat_p2p *p);
static void udp_tick(ss_chat_p2p *p);

/* "ADDR:PORT" (IPv4 numbers, as the server and the candidates give them)
 * into a, for sockets of type. */
static bool parse_v4(const char *s, int type, ss_addr *a)
{
    char host[80];
    snprintf(host, sizeof host, "%s", s);
    char *colon = strrchr(host, ':');
    if (!colon)
        return false;
    *colon = '\0';
    return ss_addr_resolve(host, colon + 1, AF_INET, type, false, a, 1) == 1;
}

/* "P2P peer ID PUB CANDS": where the peer is; the direct tries start. */
static void peer_known(ss_chat_p2p *p, const char *pub, const char *cands_in)
{
    snprintf(p->peer_pub, sizeof p->peer_pub, "%s", pub);
    snprintf(p->peer_cands, sizeof p->peer_cands, "%s", cands_in);
    p->phase = PH_DIRECT;
    status(p, "peer at %s (local %s)", p->peer_pub, *p->peer_cands ? p->peer_cands : "none");
    if (p->o.side == 0 && !p->o.no_direct) {
        char cands[256];
        snprintf(cands, sizeof cands, "%s", p->peer_cands);
        for (char *r = cands, *w; *(w = word(&r));) {
            ss_addr a;
            struct cand *k = parse_v4(w, SS_STREAM, &a) ? cand_new(p, C_DIRECT) : NULL;
            if (!k)
                continue;
            if (cand_connect(p, k, &a, false) < 0) {
                cand_close(k);
                continue;
            }
            snprintf(k->label, sizeof k->label, "direct to %s", w);
        }
        status(p, "trying direct connections");
    }
    ss_timer_start(p->o.loop, &p->phase_timer, p->o.no_direct ? 1 : p->o.direct_ms);
}

/* A line from the server on the probe, decoded by the library's client
 * decoder like every other line. */
static void probe_event(void *arg, const ss_chat_ev *ev)
{
    ss_chat_p2p *p = arg;
    if (p->phase == PH_DONE)
        return;
    if (ev->kind == SS_CHAT_EV_P2P && !strcmp(ev->code, "peer") && p->phase == PH_HELLO &&
        *ev->addr) {
        peer_known(p, ev->addr, ev->text);
    } else if (ev->kind == SS_CHAT_EV_OK && !strcmp(ev->code, "p2p")) {
        if (!strncmp(ev->text, "hello ", 6))
            status(p, "the server sees us at %s", ev->text + 6);
    } else if (ev->kind == SS_CHAT_EV_ERR) {
        status(p, "server: %s %s", ev->code, ev->text);
        finish(p, -EPROTO);
    }
}

/* Local addresses at port P: the candidates for a direct connection. */
static void local_candidates(ss_chat_p2p *p, char *buf, size_t cap)
{
    struct ifaddrs *ifs;
    size_t n = 0;
    buf[0] = '\0';
    if (getifaddrs(&ifs) < 0)
        return;
    int count = 0;
    for (struct ifaddrs *i = ifs; i && count < 4; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET ||
            (i->ifa_flags & IFF_LOOPBACK) || !(i->ifa_flags & IFF_UP))
            continue;
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, ip, sizeof ip);
        int k = snprintf(buf + n, cap - n, "%s%s:%d", n ? " " : "", ip, p->port);
        if (k < 0 || (size_t)k >= cap - n)
            break;
        n += (size_t)k;
        count++;
    }
    freeifaddrs(ifs);
}

/* ---- UDP hole punching -------------------------------------------------------- */

static ss_addr v4(uint32_t addr, int port)
{
    ss_addr a = {.len = sizeof(struct sockaddr_in)};
    struct sockaddr_in *sin = (struct sockaddr_in *)&a.sa;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(addr);
    sin->sin_port = htons((uint16_t)port);
    return a;
}

/* The rendezvous hello, padded: the server's answer fits in it. */
static void udp_hello(ss_chat_p2p *p)
{
    char text[64], mac[33], msg[SS_CHAT_P2P_UDP_HELLO + 1];
    snprintf(text, sizeof text, "hello %lld %d", (long long)p->o.id, p->o.side);
    ss_chat_p2p_udp_mac(p->key_hex, text, mac);
    int n = snprintf(msg, sizeof msg, "P2PU %s %s", text, mac);
    memset(msg + n, ' ', SS_CHAT_P2P_UDP_HELLO - (size_t)n);
    ss_sock_sendto(p->udp, msg, SS_CHAT_P2P_UDP_HELLO, &p->udp_server);
}

static void udp_probe(ss_chat_p2p *p)
{
    char msg[48];
    int n = snprintf(msg, sizeof msg, "P2PP %lld %d", (long long)p->o.id, p->o.side);
    ss_sock_sendto(p->udp, msg, (size_t)n, &p->udp_peer);
}

static ss_sockopts udp_sockopts(void)
{
    ss_sockopts so;
    ss_sockopts_init(&so);
    so.nodelay = 1;
    so.keepalive = 1; /* a peer gone without a FIN is found */
    return so;
}

/* Side 1: connect through the stack to side 0 (again after a refusal:
 * side 0's stack may not have been up yet). */
static void udp_connect(ss_chat_p2p *p)
{
    for (int i = 0; i < CANDS_MAX; i++)
        if (p->c[i].s && p->c[i].kind == C_UDP)
            return;
    struct cand *k = cand_new(p, C_UDP);
    if (!k)
        return;
    ss_addr a = v4(UDP_ADDR0, UDP_TCP_PORT);
    ss_sockopts so = udp_sockopts();
    int err = ss_sock_connect_to(p->sbe, &a, SS_STREAM, &so, NULL, &k->s, NULL);
    if (err < 0 && err != -EINPROGRESS) {
        cand_close(k);
        return;
    }
    snprintf(k->label, sizeof k->label, "UDP hole punched with %s (user-space TCP)",
             p->udp_peer_s);
    k->connecting = true;
    ss_sock_watch(k->s, p->o.loop, SS_WRITE, cand_io, k);
}

static void udp_listen_cb(ss_sock *s, unsigned ev, void *arg)
{
    ss_chat_p2p *p = arg;
    ss_sock *ns;
    while (ss_sock_accept(s, &ns, NULL) == 0) {
        struct cand *k = p->phase == PH_UP ? NULL : cand_new(p, C_UDP);
        if (!k) {
            ss_sock_close(ns);
            continue;
        }
        ss_sockopts so = udp_sockopts();
        ss_sock_set_opts(ns, &so, NULL);
        k->s = ns;
        snprintf(k->label, sizeof k->label, "UDP hole punched with %s (user-space TCP)",
                 p->udp_peer_s);
        start_auth(p, k);
    }
}

/* Punched: the UDP socket, connected to the peer, becomes the link of a
 * user-space stack (one datagram, one IPv4 packet), and the stream runs
 * on that stack's TCP: side 0 listens, side 1 connects. */
static void udp_up(ss_loop *loop, void *arg)
{
    ss_chat_p2p *p = arg;
    if (p->phase != PH_UDP || !p->udp || p->tn)
        return;
    struct ss_stack_cfg c;
    ss_stack_cfg_default(&c);
    c.local_addr = UDP_ADDR0 + (uint32_t)p->o.side;
    c.mss = SS_CHAT_P2P_UDP_MSS;
    c.sndbuf = c.rcvbuf = SS_CHAT_P2P_UDP_BUF;
    c.keepalive_idle_s = 10;
    c.keepalive_intvl_s = 5;
    c.keepalive_cnt = 3;
    int err = ss_sock_unwatch(p->udp);
    if (!err)
        err = ss_sock_connect(p->udp, &p->udp_peer);
    if (!err && RAND_bytes(c.isn_secret, sizeof c.isn_secret) != 1)
        err = -EIO;
    if (!err)
        err = ss_tunnet_new(loop, ss_sock_fd(p->udp), &c, NULL, NULL, 0, &p->tn);
    if (!err)
        err = ss_backend_stack_tunnet(p->tn, c.local_addr, &p->sbe);
    if (!err && p->o.side == 0) {
        ss_addr a = v4(UDP_ADDR0, UDP_TCP_PORT);
        ss_sockopts so = udp_sockopts();
        err = ss_sock_listen_on(p->sbe, &a, SS_STREAM, &so, 4, &p->slisten, NULL);
        if (!err)
            err = ss_sock_watch(p->slisten, loop, SS_READ, udp_listen_cb, p);
    }
    if (err) {
        status(p, "UDP hole punched with %s, but the stack over it failed: %s",
               p->udp_peer_s, ss_strerror(err));
        start_relay(p);
        return;
    }
    status(p, "UDP hole punched with %s; user-space TCP over it", p->udp_peer_s);
    if (p->o.side == 1)
        udp_connect(p);
    /* The stream has its own time to open and authenticate. */
    ss_timer_start(loop, &p->phase_timer, p->o.udp_ms);
}

/* "P2PU ok ID SIDE PUB MAC" / "P2PU peer ID SIDE PUB PEERPUB MAC" from
 * the server, checked with the introduction's key. */
static void udp_answer(ss_chat_p2p *p, const char *msg)
{
    char kind[8], pub[80], peer[80], mac[40], text[240], want[33];
    long long id;
    int side;
    int n = sscanf(msg, "P2PU %7s %lld %d %79s %79s %39s", kind, &id, &side, pub, peer, mac);
    if (n == 5 && !strcmp(kind, "ok")) {
        memcpy(mac, peer, sizeof mac);
        snprintf(text, sizeof text, "ok %lld %d %s", id, side, pub);
    } else if (n == 6 && !strcmp(kind, "peer")) {
        snprintf(text, sizeof text, "peer %lld %d %s %s", id, side, pub, peer);
    } else {
        return;
    }
    ss_chat_p2p_udp_mac(p->key_hex, text, want);
    if (id != p->o.id || side != p->o.side || strlen(mac) != 32 ||
        CRYPTO_memcmp(want, mac, 32) != 0)
        return;
    if (!p->udp_seen) {
        p->udp_seen = true;
        status(p, "the server sees our UDP at %s", pub);
    }
    if (n == 6 && !p->udp_peer_known && parse_v4(peer, SS_DGRAM, &p->udp_peer)) {
        p->udp_peer_known = true;
        snprintf(p->udp_peer_s, sizeof p->udp_peer_s, "%s", peer);
        status(p, "UDP hole punching with %s", peer);
        udp_probe(p);
    }
}

static void udp_io(ss_sock *s, unsigned ev, void *arg)
{
    ss_chat_p2p *p = arg;
    for (int i = 0; i < 16 && !p->udp_punched; i++) {
        char buf[SS_CHAT_P2P_UDP_HELLO + 1];
        ss_addr from;
        bool trunc = false;
        ssize_t n = ss_sock_recvfrom(s, buf, sizeof buf - 1, &from, &trunc);
        if (n == -EAGAIN)
            return;
        if (n < 0 || trunc)
            continue; /* e.g. an ICMP error, or not ours */
        buf[n] = '\0';
        if (ss_addr_equal(&from, &p->udp_server)) {
            udp_answer(p, buf);
        } else if (p->udp_peer_known && ss_addr_equal(&from, &p->udp_peer)) {
            /* Anything from the peer's address means our NAT lets it in
             * (the datagram itself may be the first SYN: retransmitted).
             * One probe back, so that the peer knows too, then the stack
             * takes the socket, outside this callback. */
            udp_probe(p);
            p->udp_punched = true;
            ss_sock_watch(s, p->o.loop, 0, udp_io, p);
            ss_loop_defer(p->o.loop, &p->udp_defer);
        }
    }
}

/* Every SS_CHAT_P2P_UDP_RETRY_MS: a hello until the server names the
 * peer, then a probe to the peer; once up, side 1 connects again if its
 * SYN was refused. */
static void udp_tick(ss_chat_p2p *p)
{
    if (p->tn) {
        if (p->o.side == 1)
            udp_connect(p);
    } else if (p->udp && !p->udp_punched) {
        if (p->udp_peer_known)
            udp_probe(p);
        else
            udp_hello(p);
    }
}

static void start_udp(ss_chat_p2p *p)
{
    p->phase = PH_UDP;
    ss_timer_stop(p->o.loop, &p->retry_timer);
    if (p->o.no_udp) {
        start_relay(p);
        return;
    }
    ss_addr any = v4(0, 0);
    int err = ss_addr_resolve(p->o.server_host, p->o.server_port, AF_INET, SS_DGRAM, false,
                              &p->udp_server, 1) == 1
                  ? 0
                  : -EHOSTUNREACH;
    if (!err)
        err = ss_sock_open(ss_backend_kernel(), AF_INET, SS_DGRAM, &p->udp);
    if (!err)
        err = ss_sock_bind(p->udp, &any);
    if (!err)
        err = ss_sock_watch(p->udp, p->o.loop, SS_READ, udp_io, p);
    if (err) {
        status(p, "no UDP hole punching: %s", ss_strerror(err));
        start_relay(p);
        return;
    }
    status(p, "trying UDP hole punching");
    udp_hello(p);
    ss_timer_start(p->o.loop, &p->retry_timer, SS_CHAT_P2P_UDP_RETRY_MS);
    ss_timer_start(p->o.loop, &p->phase_timer, p->o.udp_ms);
}

/* Close the UDP link: the stream's sockets on the stack first, then one
 * last poll (a FIN or RST goes out), the backend, the stack, the socket.
 * Never from a stack socket's callback. */
static void udp_down(ss_chat_p2p *p)
{
    for (int i = 0; i < CANDS_MAX; i++)
        if (p->c[i].s && p->c[i].kind == C_UDP && p->up != &p->c[i])
            cand_close(&p->c[i]);
    if (p->slisten) {
        ss_sock_close(p->slisten);
        p->slisten = NULL;
    }
    if (p->tn)
        ss_stack_poll(ss_tunnet_stack(p->tn), ss_tunnet_now(p->tn));
    ss_backend_stack_free(p->sbe);
    p->sbe = NULL;
    ss_tunnet_free(p->tn);
    p->tn = NULL;
    ss_loop_defer_cancel(p->o.loop, &p->udp_defer);
    if (p->udp) {
        ss_sock_close(p->udp);
        p->udp = NULL;
    }
    p->udp_punched = false;
}

/* ---- phases ----------------------------------------------------------------- */

static void punch_once(ss_chat_p2p *p)
{
    ss_addr a;
    if (!parse_v4(p->peer_pub, SS_STREAM, &a))
        return;
    for (int i = 0; i < CANDS_MAX; i++)
        if (p->c[i].s && p->c[i].kind == C_PUNCH)
            return; /* one attempt at a time */
    struct cand *k = cand_new(p, C_PUNCH);
    if (!k)
        return;
    if (cand_connect(p, k, &a, true) < 0) {
        cand_close(k);
        return;
    }
    snprintf(k->label, sizeof k->label, "hole punched with %s", p->peer_pub);
}

static void retry_cb(ss_loop *loop, ss_timer *t, void *arg)
{
    ss_chat_p2p *p = arg;
    if (p->phase == PH_PUNCH) {
        punch_once(p);
        ss_timer_start(loop, &p->retry_timer, SS_CHAT_P2P_PUNCH_RETRY_MS);
    } else if (p->phase == PH_UDP) {
        udp_tick(p);
        ss_timer_start(loop, &p->retry_timer, SS_CHAT_P2P_UDP_RETRY_MS);
    }
}

static void start_punch(ss_chat_p2p *p)
{
    p->phase = PH_PUNCH;
    if (p->o.no_punch) {
        start_udp(p);
        return;
    }
    status(p, "hole punching with %s", p->peer_pub);
    punch_once(p);
    ss_timer_start(p->o.loop, &p->retry_timer, SS_CHAT_P2P_PUNCH_RETRY_MS);
    ss_timer_start(p->o.loop, &p->phase_timer, p->o.punch_ms);
}

static void start_relay(ss_chat_p2p *p)
{
    p->phase = PH_RELAY;
    ss_timer_stop(p->o.loop, &p->retry_timer);
    udp_down(p); /* (from a timer: no stack callback is running) */
    struct cand *k = cand_new(p, C_RELAY);
    if (!k || cand_connect(p, k, &p->server, false) < 0) {
        if (k)
            cand_close(k);
        finish(p, -EHOSTUNREACH);
        return;
    }
    snprintf(k->label, sizeof k->label, "relayed by the server");
    status(p, "no direct path; falling back to the relay through the server");
    ss_timer_start(p->o.loop, &p->phase_timer, SS_CHAT_P2P_RELAY_MS);
}

static void phase_cb(ss_loop *loop, ss_timer *t, void *arg)
{
    ss_chat_p2p *p = arg;
    if (p->phase == PH_DIRECT)
        start_punch(p);
    else if (p->phase == PH_PUNCH)
        start_udp(p);
    else if (p->phase == PH_UDP)
        start_relay(p);
    else if (p->phase == PH_RELAY || p->phase == PH_HELLO)
        finish(p, -ETIMEDOUT);
}

/* ---- socket events ---------------------------------------------------------- */

/* Lines in k->in from data; stops early when the stream was chosen and
 * the rest belongs to it (returns how much was used). */
static size_t lines_in(ss_chat_p2p *p, struct cand *k, const char *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (d[i] != '\n') {
            if (k->in_len < LINE_MAX_P2P)
                k->in[k->in_len++] = d[i];
            continue;
        }
        if (k->in_len && k->in[k->in_len - 1] == '\r')
            k->in_len--;
        k->in[k->in_len] = '\0';
        k->in_len = 0;
        if (k->kind == C_RELAY && !k->relay_ok) {
            if (!strcmp(k->in, "OK p2p relay")) {
                k->relay_ok = true;
                start_auth(p, k);
                return i + 1;
            }
        } else if (!strcmp(k->in, "USE") && p->o.side == 1 && !p->up) {
            go_up(p, k);
            return i + 1; /* the rest is the session's */
        }
        if (p->phase == PH_DONE)
            return n;
    }
    return n;
}

static void feed(ss_chat_p2p *p, struct cand *k, const char *d, size_t n)
{
    while (n > 0 && k->s) {
        if (k->authing) {
            ssize_t used = ss_auth_input(&k->auth, d, n);
            if (used < 0) {
                status(p, "refused a connection (%s): wrong introduction key", k->label);
                cand_close(k);
                return;
            }
            auth_flush(k);
            k->rx += (uint64_t)used;
            d += used;
            n -= (size_t)used;
            if (!ss_auth_done(&k->auth))
                continue;
            k->authing = false;
            if (p->o.side == 0 && !p->up) {
                raw_send(k, "USE\n", 4);
                go_up(p, k);
            }
            continue;
        }
        bool counted = k->kind != C_RELAY || k->relay_ok;
        size_t used = n;
        if (p->up == k)
            ss_chat_client_feed(p->dec, d, n);
        else if (k == p->probe && k->kind == C_PROBE)
            ss_chat_client_feed(p->probe_dec, d, n);
        else
            used = lines_in(p, k, d, n);
        if (counted)
            k->rx += used; /* not the relay's own "OK p2p relay" line */
        d += used;
        n -= used;
    }
}

static void cand_io(ss_sock *s, unsigned ev, void *arg)
{
    struct cand *k = arg;
    ss_chat_p2p *p = k->p;
    if (k->connecting) {
        int err = ss_sock_error(s);
        if (err) {
            bool probe = k == p->probe;
            cand_close(k);
            if (probe)
                finish(p, err);
            return;
        }
        k->connecting = false;
        if (k == p->probe) {
            char cands[200], line[512];
            local_candidates(p, cands, sizeof cands);
            int n = snprintf(line, sizeof line, "/p2p hello %lld %d %s %s\n",
                             (long long)p->o.id, p->o.side, p->o.key, cands);
            raw_send(k, line, (size_t)n);
            ss_sock_watch(s, p->o.loop, SS_READ, cand_io, k);
        } else if (k->kind == C_RELAY) {
            char line[160];
            int n = snprintf(line, sizeof line, "/p2p relay %lld %d %s\n",
                             (long long)p->o.id, p->o.side, p->o.key);
            raw_send(k, line, (size_t)n);
            ss_sock_watch(s, p->o.loop, SS_READ, cand_io, k);
        } else {
            start_auth(p, k);
        }
        return;
    }
    if (ev & (SS_READ | SS_HUP)) {
        char buf[65536];
        ssize_t n = ss_sock_recv(s, buf, sizeof buf);
        if (n == 0 || (n < 0 && n != -EAGAIN)) {
            bool was_up = p->up == k, probe = k == p->probe;
            cand_close(k);
            if (was_up)
                finish(p, n == 0 ? 0 : (int)n);
            else if (probe && p->phase == PH_HELLO)
                finish(p, -ECONNRESET);
            return;
        }
        if (n > 0)
            feed(p, k, buf, (size_t)n);
    }
    if (p->up == k && k->s && (ev & SS_WRITE) && p->out_len) {
        ssize_t n = ss_sock_send(k->s, p->out, p->out_len);
        if (n < 0 && n != -EAGAIN) {
            finish(p, (int)n);
            return;
        }
        if (n > 0) {
            k->tx += (uint64_t)n;
            memmove(p->out, p->out + n, p->out_len - (size_t)n);
            p->out_len -= (size_t)n;
        }
        upload_pump(p);
        want(p);
    }
}

static void listen_cb(ss_sock *s, unsigned ev, void *arg)
{
    ss_chat_p2p *p = arg;
    ss_sock *ns;
    ss_addr from;
    while (ss_sock_accept(s, &ns, &from) == 0) {
        struct cand *k = p->phase == PH_UP ? NULL : cand_new(p, C_ACCEPTED);
        if (!k) {
            ss_sock_close(ns);
            continue;
        }
        k->s = ns;
        char a[SS_ADDR_STRLEN];
        ss_addr_format(&from, a, sizeof a);
        /* From the peer's public address: our NAT let it in (punched). */
        snprintf(k->label, sizeof k->label, "%s %s",
                 !strcmp(a, p->peer_pub) ? "hole punched with" : "direct from", a);
        start_auth(p, k);
    }
}

/* ---- API ---------------------------------------------------------------------- */

int ss_chat_p2p_start(ss_chat_p2p **out, const ss_chat_p2p_opts *o)
{
    *out = NULL;
    if (!o->loop || !o->key || strlen(o->key) != 32 || (o->side != 0 && o->side != 1))
        return -EINVAL;
    ss_chat_p2p *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->o = *o;
    snprintf(p->nick, sizeof p->nick, "%s", o->nick && *o->nick ? o->nick : "-");
    p->o.nick = p->nick;
    snprintf(p->key_hex, sizeof p->key_hex, "%s", o->key);
    p->o.key = p->key_hex;
    p->out = malloc(OUT_MAX);
    ss_timer_init(&p->phase_timer, phase_cb, p);
    ss_timer_init(&p->retry_timer, retry_cb, p);
    ss_defer_init(&p->udp_defer, udp_up, p);
    int err = p->out && !ss_chat_client_new(&p->dec, session_event, p) &&
                      !ss_chat_client_new(&p->probe_dec, probe_event, p)
                  ? 0
                  : -ENOMEM;
    if (!err)
        err = ss_auth_key_set(&p->key, o->key, 32);
    if (!err && ss_addr_resolve(o->server_host, o->server_port, AF_INET, SS_STREAM, false,
                                &p->server, 1) < 1)
        err = -EHOSTUNREACH;
    /* Listen on P; the probe goes out from the same P. */
    ss_sockopts so;
    reuse_opts(&so);
    ss_addr any;
    if (!err && ss_addr_resolve("0.0.0.0", "0", AF_INET, SS_STREAM, true, &any, 1) < 1)
        err = -EINVAL;
    if (!err)
        err = ss_sock_listen_on(ss_backend_kernel(), &any, SS_STREAM, &so, 16, &p->listener,
                                NULL);
    ss_addr local;
    if (!err && !(err = ss_sock_local_addr(p->listener, &local)))
        p->port = ss_addr_port(&local);
    if (!err)
        err = ss_sock_watch(p->listener, o->loop, SS_READ, listen_cb, p);
    if (!err) {
        p->probe = cand_new(p, C_PROBE);
        err = cand_connect(p, p->probe, &p->server, true);
    }
    if (err) {
        p->phase = PH_DONE;
        ss_chat_p2p_free(p);
        return err;
    }
    ss_timer_start(o->loop, &p->phase_timer, SS_CHAT_P2P_RELAY_MS);
    *out = p;
    return 0;
}

int ss_chat_p2p_send_text(ss_chat_p2p *p, const char *text)
{
    if (!p->up)
        return -ENOTCONN;
    if (strchr(text, '\n'))
        return -EINVAL;
    /* The server's MSG line: our time and nick, then the text. */
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    char ts[40];
    ss_chat_format_ts((int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000, ts, sizeof ts);
    return out_fmt(p, "MSG %s %s %s\n", ts, p->nick, text) ? 0 : -ENOBUFS;
}

int ss_chat_p2p_send_file(ss_chat_p2p *p, const char *path)
{
    if (!p->up)
        return -ENOTCONN;
    if (p->ul)
        return -EBUSY;
    int err = ss_chat_ul_open(&p->ul, path);
    if (err)
        return err;
    p->ul_id = ++p->next_id;
    p->ul_go = false;
    if (!out_fmt(p, "FILE %lld %llu %s %s\n", (long long)p->ul_id,
                 (unsigned long long)ss_chat_ul_size(p->ul), ss_chat_ul_sha256(p->ul),
                 ss_chat_ul_name(p->ul))) {
        ss_chat_ul_close(p->ul);
        p->ul = NULL;
        return -ENOBUFS;
    }
    return 0;
}

const char *ss_chat_p2p_path(const ss_chat_p2p *p) { return p->path; }

void ss_chat_p2p_bytes(const ss_chat_p2p *p, uint64_t *sent, uint64_t *received)
{
    *sent = p->up ? p->up->tx : p->tx;
    *received = p->up ? p->up->rx : p->rx;
}

bool ss_chat_p2p_up(const ss_chat_p2p *p) { return p->up != NULL; }

void ss_chat_p2p_free(ss_chat_p2p *p)
{
    if (!p)
        return;
    ss_timer_stop(p->o.loop, &p->phase_timer);
    ss_timer_stop(p->o.loop, &p->retry_timer);
    for (int i = 0; i < CANDS_MAX; i++)
        cand_close(&p->c[i]);
    if (p->listener)
        ss_sock_close(p->listener);
    p->up = NULL;
    udp_down(p);
    ss_chat_ul_close(p->ul);
    ss_chat_dl_keep(p->dl);
    ss_auth_key_clear(&p->key);
    ss_chat_client_free(p->dec);
    ss_chat_client_free(p->probe_dec);
    free(p->out);
    free(p);
}
