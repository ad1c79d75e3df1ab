/* libFuzzer: the chat room on arbitrary client bytes, a fresh room (in-memory
 * store) per input so that every crash reproduces from its input alone.
 *
 * Byte 0 picks a chunk size, byte 1 the I/O weather: how much queue space
 * the room sees (file downloads and offline pages are paced by it), whether
 * io->admit holds lines back (flow control: the rest is fed again later),
 * which sends fail (as a cut-off client's would), and whether password
 * hashes complete at once or one chunk later (the worker thread's order).
 * The rest goes, chunk by chunk, to one of two connections (bit 7 of each
 * chunk's first byte picks the second), so that a point-to-point
 * introduction, its hello and its relay pairing can be reached; a third
 * connection watches. Before the input, "victim" is registered and has an
 * offline message and a file offer waiting, so /login, /accept and offline
 * delivery are reachable.
 *
 * Every line the room sends must be exactly one line: ends in '\n', no
 * other '\n', valid UTF-8, no longer than the room's output bound.
 *
 * The client side too: every line the room sends goes through the client
 * decoder (ss_chat_client_feed, which the clients and the point-to-point
 * stream use), and so does the raw input, as if a server or a peer had
 * sent it, in the same chunks. Each event must have its strings set, a
 * known kind, text that ss_chat_text_clean makes terminal-safe; a
 * "P2P intro" the room sent must decode to an id, a valid nick, a 32-digit
 * key and a side of 0 or 1 (its key is taken from the decoded event); a
 * "P2P peer" the room sent (the rendezvous line the point-to-point session
 * decodes) must decode to an id, the public address the room saw ("-" or
 * the one peer address set here) and the candidates, which put back
 * together give the room's line byte for byte.
 *
 * The UDP rendezvous of the point-to-point step: each chunk also goes to
 * it as a datagram, and so does an authentic hello for the last
 * introduction (its key from the decoded intro; side, padding and which of
 * two source addresses from the chunk's first byte), so that the first
 * hello of a side, a second address, a short hello and the "peer" answer
 * are reached. No answer may be longer than the datagram it answers, and
 * every answer is one "P2PU ok|peer ..." of printable text. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/chat_backend.h"
#include "sockstack/chat.h"
#include "sockstack/chat_client.h"
#include "sockstack/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fconn {
    int id;
    bool relayed;
};

static uint8_t weather;
static char intro_key[33]; /* the key of the last "P2P intro": "@K" in the input */
static long long intro_id;  /* its id */
static unsigned sends;
static ss_chat_kdf *pending[8];
static int npending;
static ss_chat_client *dec_room, *dec_raw; /* the room's lines; the input */
static const char *room_line;              /* the line dec_room is decoding */
static size_t room_len;
#define PEER_B "192.0.2.2:4000"            /* the only peer address set */

static void check_ev(void *arg, const ss_chat_ev *ev)
{
    if (!ev->ts_str || !ev->nick || !ev->nick2 || !ev->code || !ev->text || !ev->sha256 ||
        !ev->raw || !ev->key || ev->kind < SS_CHAT_EV_OTHER || ev->kind > SS_CHAT_EV_NOFILE ||
        ev->side < -1 || ev->side > 1)
        abort();
    bool intro = ev->kind == SS_CHAT_EV_P2P && !strcmp(ev->code, "intro");
    if (arg == &dec_room && intro &&
        (ev->id <= 0 || !ss_chat_nick_valid(ev->nick) || strlen(ev->key) != 32 || ev->side < 0))
        abort();
    if (arg == &dec_room && intro) {
        memcpy(intro_key, ev->key, sizeof intro_key);
        intro_id = (long long)ev->id;
    }
    if (!ev->addr || (ev->kind != SS_CHAT_EV_P2P && *ev->addr))
        abort();
    if (arg == &dec_room && ev->kind == SS_CHAT_EV_P2P && !strcmp(ev->code, "peer")) {
        char back[SS_CHAT_MAX_LINE + 256];
        int n = snprintf(back, sizeof back, "P2P peer %lld %s %s\n", (long long)ev->id,
                         ev->addr, ev->text);
        if (ev->id <= 0 || (strcmp(ev->addr, "-") && strcmp(ev->addr, PEER_B)) ||
            (size_t)n != room_len || memcmp(back, room_line, room_len))
            abort();
    }
    char t[SS_CHAT_CLIENT_LINE_MAX + 1];
    snprintf(t, sizeof t, "%s", ev->text);
    ss_chat_text_clean(t);
    for (const unsigned char *p = (const unsigned char *)t; *p; p++)
        if (*p < 0x20 || *p == 0x7f || (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
            abort();
    char ago[64];
    ss_chat_ago(ev->ts, 1700000000000, ago, sizeof ago);
}

static void check_line(const char *s, size_t len)
{
    if (len == 0 || s[len - 1] != '\n' || memchr(s, '\n', len - 1) ||
        !ss_utf8_valid(s, len) || len > SS_CHAT_MAX_LINE + 256)
        abort();
}

static int f_send(void *conn, const void *p, size_t len)
{
    check_line(p, len);
    room_line = p;
    room_len = len;
    ss_chat_client_feed(dec_room, p, len);
    /* Weather bits 4-5: every 7th, 31st or 127th send fails (0: none). */
    static const unsigned every[4] = {0, 7, 31, 127};
    unsigned e = every[(weather >> 4) & 3];
    return e && ++sends % e == 0 ? -ENOBUFS : 0;
}

static int f_send_line(void *conn, ss_chat_line *l)
{
    size_t len;
    const char *d = ss_chat_line_data(l, &len);
    return f_send(conn, d, len);
}

static size_t f_space(void *conn)
{
    static const size_t space[4] = {0, 3000, 70000, 1 << 20};
    return space[weather & 3];
}

static void f_close(void *conn) {}

static bool f_admit(void *conn, bool counted)
{
    /* Weather bit 2: hold every line that counts against the rate. */
    return !((weather & 4) && counted);
}

static int f_kdf(void *conn, ss_chat_kdf *job)
{
    if (npending == 8)
        return -EAGAIN;
    ss_chat_kdf_run(job);
    pending[npending++] = job;
    return 0;
}

static void f_relay(void *a, void *b)
{
    ((struct fconn *)a)->relayed = ((struct fconn *)b)->relayed = true;
}

static void finish_kdf(void)
{
    while (npending > 0)
        ss_chat_kdf_done(pending[--npending], 1700000000001);
}

static const ss_chat_io io_sync = {.send = f_send, .space = f_space, .close = f_close,
                                   .send_line = f_send_line};
static const ss_chat_io io_async = {.send = f_send, .space = f_space, .close = f_close,
                                    .send_line = f_send_line, .admit = f_admit,
                                    .kdf = f_kdf, .relay = f_relay};

/* Feed everything, as the glue would: what is held back is fed again once
 * the hash is done or flow control lets it through. "@K" in the input
 * stands for the key of the last introduction (which is random), so that
 * /p2p hello and /p2p relay get past the key check. */
static void feed_all(ss_chat_conn *c, const uint8_t *in, size_t len, int64_t now)
{
    static uint8_t buf[64 * 16];
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (intro_key[0] && i + 1 < len && in[i] == '@' && in[i + 1] == 'K') {
            memcpy(buf + n, intro_key, 32);
            n += 32;
            i++;
        } else {
            buf[n++] = in[i];
        }
    }
    const uint8_t *p = buf;
    for (int rounds = 0; n > 0 && rounds < 4; rounds++) {
        size_t used = 0;
        ss_chat_feed(c, p, n, now, &used);
        p += used;
        n -= used;
        finish_kdf();
        weather &= (uint8_t)~4; /* the held lines go through next time */
        if (ss_chat_relayed(c))
            return;
    }
}

/* A datagram to the UDP rendezvous: the answer is never longer than it,
 * and is one printable "P2PU ok ..." or "P2PU peer ..." line. */
static void udp_one(ss_chat_room *room, const void *d, size_t n, const char *from, int64_t now)
{
    char out[SS_CHAT_P2P_UDP_HELLO];
    size_t len = ss__chat_room_p2p_udp(room, d, n, from, out, sizeof out, now);
    if (!len)
        return;
    if (len > n || len >= sizeof out ||
        (memcmp(out, "P2PU ok ", 8) && memcmp(out, "P2PU peer ", 10)))
        abort();
    for (size_t i = 0; i < len; i++)
        if (out[i] < 0x20 || out[i] > 0x7e)
            abort();
}

static void udp_feed(ss_chat_room *room, const uint8_t *d, size_t n, int64_t now)
{
    const char *from = (d[0] & 2) ? "198.51.100.7:4000" : "203.0.113.9:5000";
    udp_one(room, d, n, from, now);
    if (!intro_key[0])
        return;
    char text[64], mac[33], msg[SS_CHAT_P2P_UDP_HELLO];
    snprintf(text, sizeof text, "hello %lld %d", intro_id, d[0] & 1);
    ss_chat_p2p_udp_mac(intro_key, text, mac);
    size_t len = (size_t)snprintf(msg, sizeof msg, "P2PU %s %s", text, mac);
    size_t pad = (d[0] & 4) ? sizeof msg : len + (d[0] >> 3);
    for (; len < pad && len < sizeof msg; len++)
        msg[len] = ' ';
    udp_one(room, msg, len, from, now);
}

static void prepare(ss_chat_room *room)
{
    struct fconn v = {0};
    ss_chat_conn *c = ss_chat_connect(room, &v, 1699999999000);
    static const char setup[] =
        "/nick victim\n/register secret1\n/quit\n";
    ss_chat_recv(c, setup, sizeof setup - 1, 1699999999000);
    ss_chat_disconnect(c, 1699999999000);
    struct fconn w = {0};
    c = ss_chat_connect(room, &w, 1699999999100);
    static const char mail[] =
        "/nick sender\n/msg victim waiting for you\n"
        "/offer victim 3 ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad "
        "a.txt\n/chunk 1 0 YWJj\n/done 1\n";
    ss_chat_recv(c, mail, sizeof mail - 1, 1699999999100);
    ss_chat_disconnect(c, 1699999999100);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t chunk = (size_t)data[0] % 64 + 1;
    weather = data[1];
    sends = 0;
    intro_key[0] = '\0';
    intro_id = 0;
    data += 2;
    size -= 2;
    ss_chat_opts o;
    ss_chat_opts_init(&o);
    o.pbkdf2_iter = 1000;
    o.file_max = 1 << 16;
    o.offline_max = 8;
    o.offers_max = 4;
    if (ss_chat_client_new(&dec_room, check_ev, &dec_room) < 0 ||
        ss_chat_client_new(&dec_raw, check_ev, &dec_raw) < 0)
        abort();
    ss_chat_room *room;
    /* Weather bit 3: the io a test sees (synchronous) or the server's. */
    if (ss_chat_room_open(&room, &o, (weather & 8) ? &io_async : &io_sync) < 0)
        abort();
    prepare(room);
    struct fconn fa = {.id = 1}, fb = {.id = 2}, fw = {.id = 3};
    ss_chat_conn *ca = ss_chat_connect(room, &fa, 1700000000000);
    ss_chat_conn *cb = ss_chat_connect(room, &fb, 1700000000000);
    ss_chat_conn *cw = ss_chat_connect(room, &fw, 1700000000000);
    ss_chat_conn_set_addr(ca, "192.0.2.1");
    ss_chat_conn_set_peer(cb, PEER_B);
    ss_chat_recv(cw, "/nick watcher\n", 14, 1700000000000);
    for (size_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        bool second = data[off] & 0x80;
        ss_chat_conn *c = second ? cb : ca;
        struct fconn *f = second ? &fb : &fa;
        if (!f->relayed)
            feed_all(c, data + off, n, 1700000000001 + (int64_t)off);
        ss_chat_drain(c);
        ss_chat_client_feed(dec_raw, data + off, n);
        udp_feed(room, data + off, n, 1700000000001 + (int64_t)off);
    }
    char since[64];
    if (ss_chat_client_since(dec_raw, since, sizeof since) < 0)
        abort();
    finish_kdf();
    ss_chat_eof(ca, 1700000000002);
    finish_kdf();
    ss_chat_disconnect(ca, 1700000000003);
    ss_chat_disconnect(cb, 1700000000003);
    ss_chat_disconnect(cw, 1700000000003);
    finish_kdf(); /* none left; a job of a gone connection is only freed */
    ss_chat_room_close(room);
    ss_chat_client_free(dec_room);
    ss_chat_client_free(dec_raw);
    return 0;
}
