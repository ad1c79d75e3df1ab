/* libFuzzer: the chat room on arbitrary client bytes.
 * Byte 0 picks a chunk size. The input goes to one named connection in
 * chunks (then EOF); a second connection watches. Every write the room
 * makes to either must be exactly one line: ends in '\n', no other '\n',
 * valid UTF-8, and no longer than the room's output bound. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sockstack/chat.h"
#include "sockstack/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int f_send(void *conn, const void *p, size_t len)
{
    const char *s = p;
    if (len == 0 || s[len - 1] != '\n' || memchr(s, '\n', len - 1) ||
        !ss_utf8_valid(s, len) || len > SS_CHAT_MAX_LINE + 256)
        abort();
    return 0;
}

static size_t f_space(void *conn) { return 1 << 20; }
static void f_close(void *conn) {}

static const ss_chat_io io = {.send = f_send, .space = f_space, .close = f_close};
static ss_chat_room *room;
static unsigned runs;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A fresh in-memory store now and then keeps long runs bounded. */
    if (room && ++runs % 10000 == 0) {
        ss_chat_room_close(room);
        room = NULL;
    }
    if (!room) {
        ss_chat_opts o;
        ss_chat_opts_init(&o);
        o.pbkdf2_iter = 1000;
        o.file_max = 1 << 16;
        if (ss_chat_room_open(&room, &o, &io) < 0)
            abort();
    }
    if (size < 1)
        return 0;
    size_t chunk = (size_t)data[0] % 64 + 1;
    data++;
    size--;
    int a, b;
    ss_chat_conn *ca = ss_chat_connect(room, &a, 1700000000000);
    ss_chat_conn *cb = ss_chat_connect(room, &b, 1700000000000);
    ss_chat_recv(cb, "/nick watcher\n", 14, 1700000000000);
    ss_chat_recv(ca, "/nick fuzz\n", 11, 1700000000000);
    for (size_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        ss_chat_recv(ca, data + off, n, 1700000000001);
        ss_chat_drain(ca);
    }
    ss_chat_eof(ca, 1700000000002);
    ss_chat_disconnect(ca, 1700000000003);
    ss_chat_disconnect(cb, 1700000000003);
    return 0;
}
