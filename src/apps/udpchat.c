/* udpchat: datagram format, receiver accounting and the relay (see
 * include/sockstack/udpchat.h). No I/O here except in the small service
 * glue at the end, which the server framework drives. */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sockstack/chat.h"
#include "sockstack/config.h"
#include "sockstack/err.h"
#include "sockstack/server.h"
#include "sockstack/udpchat.h"

int ss_udpchat_encode(char *buf, size_t cap, size_t max, uint32_t seq,
                      const char *nick, const char *text)
{
    if (!ss_chat_nick_valid(nick) || !ss_utf8_valid(text, strlen(text)) ||
        memchr(text, '\n', strlen(text)))
        return -EINVAL;
    size_t need = (size_t)snprintf(NULL, 0, "UC1 %u %s %s", seq, nick, text);
    if (need > max)
        return -EMSGSIZE;
    if (need + 1 > cap)
        return -ENOSPC;
    snprintf(buf, cap, "UC1 %u %s %s", seq, nick, text);
    return (int)need;
}

int ss_udpchat_decode(const void *buf, size_t len, uint32_t *seq, char *nick,
                      size_t nick_cap, const char **text, size_t *text_len)
{
    const char *p = buf, *end = p + len;
    if (len < 6 || memcmp(p, "UC1 ", 4) || !ss_utf8_valid(buf, len))
        return SS_EBADPKT;
    p += 4;
    uint64_t v = 0;
    const char *digits = p;
    while (p < end && *p >= '0' && *p <= '9' && p - digits < 10)
        v = v * 10 + (uint64_t)(*p++ - '0');
    if (p == digits || p >= end || *p != ' ' || v > UINT32_MAX)
        return SS_EBADPKT;
    p++;
    const char *n = p;
    while (p < end && *p != ' ')
        p++;
    size_t nlen = (size_t)(p - n);
    if (nlen == 0 || nlen >= nick_cap)
        return SS_EBADPKT;
    memcpy(nick, n, nlen);
    nick[nlen] = '\0';
    if (!ss_chat_nick_valid(nick))
        return SS_EBADPKT;
    if (p < end)
        p++; /* the space before the text */
    *seq = (uint32_t)v;
    *text = p;
    *text_len = (size_t)(end - p);
    return 0;
}

/* ---- receiver ----------------------------------------------------------- */

struct rx_sender {
    char nick[SS_CHAT_NICK_MAX + 1];
    uint32_t next;                  /* highest seen + 1 */
    uint32_t missing[SS_UDPCHAT_RX_MISSING];   /* ring of gaps not yet filled */
    size_t nmissing, head;
};

struct ss_udpchat_rx {
    struct rx_sender s[SS_UDPCHAT_RX_SENDERS];
    size_t n;
    ss_udpchat_stats st;
};

int ss_udpchat_rx_new(ss_udpchat_rx **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? 0 : -ENOMEM;
}

void ss_udpchat_rx_free(ss_udpchat_rx *rx) { free(rx); }

ss_udpchat_stats *ss_udpchat_rx_stats(ss_udpchat_rx *rx) { return &rx->st; }

static void miss_add(struct rx_sender *s, uint32_t seq)
{
    if (s->nmissing == SS_UDPCHAT_RX_MISSING) { /* forget the oldest gap */
        s->head = (s->head + 1) % SS_UDPCHAT_RX_MISSING;
        s->nmissing--;
    }
    s->missing[(s->head + s->nmissing++) % SS_UDPCHAT_RX_MISSING] = seq;
}

static bool miss_take(struct rx_sender *s, uint32_t seq)
{
    for (size_t i = 0; i < s->nmissing; i++) {
        size_t at = (s->head + i) % SS_UDPCHAT_RX_MISSING;
        if (s->missing[at] == seq) {
            /* move the last one into its place */
            size_t last = (s->head + s->nmissing - 1) % SS_UDPCHAT_RX_MISSING;
            s->missing[at] = s->missing[last];
            s->nmissing--;
            return true;
        }
    }
    return false;
}

int ss_udpchat_rx_seen(ss_udpchat_rx *rx, const char *nick, uint32_t seq,
                       uint32_t *missing)
{
    struct rx_sender *s = NULL;
    for (size_t i = 0; i < rx->n; i++)
        if (!strcasecmp(rx->s[i].nick, nick))
            s = &rx->s[i];
    *missing = 0;
    if (!s) {
        /* First message heard from nick: whatever came before is history. */
        s = &rx->s[rx->n < SS_UDPCHAT_RX_SENDERS ? rx->n++ : (size_t)(seq % SS_UDPCHAT_RX_SENDERS)];
        memset(s, 0, sizeof *s);
        snprintf(s->nick, sizeof s->nick, "%s", nick);
        s->next = seq + 1;
        rx->st.received++;
        return SS_UDPCHAT_NEW;
    }
    if (seq == s->next) {
        s->next++;
        rx->st.received++;
        return SS_UDPCHAT_NEW;
    }
    if (seq > s->next) {
        uint32_t gap = seq - s->next;
        for (uint32_t k = s->next; k < seq && k - s->next < SS_UDPCHAT_RX_MISSING; k++)
            miss_add(s, k);
        rx->st.lost += gap;
        s->next = seq + 1;
        rx->st.received++;
        *missing = gap;
        return SS_UDPCHAT_GAP;
    }
    if (miss_take(s, seq)) {
        rx->st.lost--;
        rx->st.reordered++;
        rx->st.received++;
        return SS_UDPCHAT_LATE;
    }
    rx->st.duplicates++;
    return SS_UDPCHAT_DUP;
}

/* ---- relay -------------------------------------------------------------- */

struct relay_peer {
    ss_addr addr;
    uint64_t heard;
    char nick[SS_CHAT_NICK_MAX + 1]; /* owned by this address while it lives */
};

struct ss_udpchat_relay {
    struct relay_peer *peers;
    size_t n, max;
    unsigned ttl_ms;
    uint8_t secret[32];   /* keys the return-path cookies */
    ss_udpchat_relay_stats st;
};

int ss_udpchat_relay_new(ss_udpchat_relay **out, unsigned peer_ttl_ms, size_t max_peers)
{
    ss_udpchat_relay *r = calloc(1, sizeof *r);
    if (!r || !(r->peers = calloc(max_peers, sizeof *r->peers))) {
        free(r);
        return -ENOMEM;
    }
    r->max = max_peers;
    r->ttl_ms = peer_ttl_ms;
    if (RAND_bytes(r->secret, sizeof r->secret) != 1) {
        ss_udpchat_relay_free(r);
        return -EIO;
    }
    *out = r;
    return 0;
}

void ss_udpchat_relay_free(ss_udpchat_relay *r)
{
    if (!r)
        return;
    free(r->peers);
    free(r);
}

size_t ss_udpchat_relay_peers(const ss_udpchat_relay *r) { return r->n; }

const ss_udpchat_relay_stats *ss_udpchat_relay_stats_get(const ss_udpchat_relay *r)
{
    return &r->st;
}

/* The cookie for (from, nick) in time slot `slot`: 16 hex characters of
 * HMAC-SHA256(secret, address || nick || slot). */
static void cookie(const ss_udpchat_relay *r, const ss_addr *from, const char *nick,
                   uint64_t slot, char out[17])
{
    uint8_t msg[sizeof from->sa + SS_CHAT_NICK_MAX + 8], mac[32];
    size_t n = 0;
    memcpy(msg, &from->sa, from->len);
    n += from->len;
    size_t nl = strlen(nick);
    memcpy(msg + n, nick, nl);
    n += nl;
    memcpy(msg + n, &slot, 8);
    n += 8;
    unsigned ml = sizeof mac;
    HMAC(EVP_sha256(), r->secret, sizeof r->secret, msg, n, mac, &ml);
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

/* A valid cookie for this address and nick (this minute or the last). */
static bool cookie_ok(const ss_udpchat_relay *r, const ss_addr *from, const char *nick,
                      const char *text, size_t tlen, uint64_t now_ms)
{
    if (tlen != 7 + 16 || memcmp(text, "cookie=", 7))
        return false;
    uint64_t slot = now_ms / SS_UDPCHAT_COOKIE_MS;
    for (uint64_t k = 0; k < 2; k++) {
        char want[17];
        cookie(r, from, nick, slot - k, want);
        if (CRYPTO_memcmp(want, text + 7, 16) == 0)
            return true;
    }
    return false;
}

int ss_udpchat_relay_input(ss_udpchat_relay *r, const void *data, size_t len,
                           const ss_addr *from, uint64_t now_ms,
                           ss_udpchat_send_fn send, void *arg)
{
    uint32_t seq;
    char nick[SS_CHAT_NICK_MAX + 1];
    const char *text;
    size_t tlen;
    if (ss_udpchat_decode(data, len, &seq, nick, sizeof nick, &text, &tlen) < 0) {
        r->st.dropped++;
        return SS_EBADPKT;
    }
    /* Forget the silent; find the sender and the nick's owner. */
    struct relay_peer *me = NULL, *owner = NULL;
    for (size_t i = 0; i < r->n;) {
        if (now_ms > r->peers[i].heard && now_ms - r->peers[i].heard > r->ttl_ms) {
            r->peers[i] = r->peers[--r->n];
            continue;
        }
        if (ss_addr_equal(&r->peers[i].addr, from))
            me = &r->peers[i];
        if (!strcasecmp(r->peers[i].nick, nick))
            owner = &r->peers[i];
        i++;
    }
    if (seq == 0) {
        /* A hello. Registered: a keep-alive. Else the address must prove
         * it receives what we send (return path) before it is added: the
         * answer is a cookie no longer than the hello, so a spoofed hello
         * cannot be amplified. */
        if (me && !strcasecmp(me->nick, nick)) {
            me->heard = now_ms;
            return 0;
        }
        if (owner || me) {
            r->st.refused_nick++;
            return SS_EBADPKT; /* the nick, or this address, belongs to another */
        }
        if (cookie_ok(r, from, nick, text, tlen, now_ms)) {
            if (r->n == r->max) {
                r->st.dropped++;
                return 0;
            }
            me = &r->peers[r->n++];
            me->addr = *from;
            me->heard = now_ms;
            snprintf(me->nick, sizeof me->nick, "%s", nick);
            r->st.registered++;
            return 0;
        }
        char reply[32];
        memcpy(reply, "UC1C ", 5);
        cookie(r, from, nick, now_ms / SS_UDPCHAT_COOKIE_MS, reply + 5);
        if (len < 5 + 16) {
            r->st.dropped++; /* shorter than the answer: no reply at all */
            return 0;
        }
        send(arg, reply, 5 + 16, from);
        r->st.cookies++;
        return 0;
    }
    /* A message: only from a registered address, under its own nick. */
    if (!me || strcasecmp(me->nick, nick)) {
        r->st.dropped++;
        return SS_EBADPKT;
    }
    me->heard = now_ms;
    int sent = 0;
    for (size_t i = 0; i < r->n; i++)
        if (&r->peers[i] != me) {
            send(arg, data, len, &r->peers[i].addr);
            sent++;
        }
    r->st.relayed += (uint64_t)sent;
    return sent;
}

/* ---- the service ---------------------------------------------------------- */

static void relay_send(void *arg, const void *data, size_t len, const ss_addr *to)
{
    ss_server_sendto(arg, data, len, to);
}

static int on_datagram(ss_server *srv, const void *data, size_t len, bool truncated,
                       const ss_addr *from)
{
    ss_udpchat_relay *r = ss_server_ctx(srv);
    if (truncated) {
        ss_server_log(srv, SS_LOG_DEBUG, "truncated datagram dropped (over %d bytes)",
                      SS_UDPCHAT_MAX_DGRAM);
        return SS_ETRUNC;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    int n = ss_udpchat_relay_input(r, data, len, from, now, relay_send, srv);
    return n < 0 ? n : 0;
}

static const ss_service udpchat_service = {
    .name = "udp-chat",
    .on_datagram = on_datagram,
};

const struct ss_service *ss_udpchat_service(void) { return &udpchat_service; }
