/* chat_irc: IRC in front of the chat room (issue 15), internal to src/apps.
 *
 * Sans-I/O, one object per IRC connection. It does not hold a room of its
 * own: every IRC command becomes zero or more native command lines fed to
 * the room (ss_chat_feed), and every native line the room sends to this
 * connection is formatted here as IRC lines. So native and IRC users share
 * one room, one nick index, one store, one flow control, and the routing
 * seam of chat.c (route_conn / route_room / route_presence) is unchanged:
 * a connection's protocol only decides how its lines are written.
 *
 *   RX: bytes -> ss__irc_feed -> frame (512 + tags, ERR_INPUTTOOLONG)
 *         -> io->admit (rate, readers behind) -> one handler per command
 *         -> native line -> ss_chat_feed (the room answers synchronously,
 *            except a SASL/PASS login, whose hash runs on the worker)
 *   TX: room -> the glue's send_line -> ss__irc_out -> the reply to the
 *         command in progress (numerics), or an event (PRIVMSG, JOIN, QUIT,
 *         NICK, AWAY, TOPIC) -> io->emit, CRLF lines, long ones split.
 * Events for many recipients (MSG, ME, JOIN, ...) are formatted once per
 * tag variant and shared (the hub's cache), as the room shares its lines.
 */
#ifndef SS_APPS_CHAT_IRC_H
#define SS_APPS_CHAT_IRC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sockstack/chat.h"

typedef struct ss__irc ss__irc;
typedef struct ss__irc_hub ss__irc_hub;

/* How an online user is reached, for DCC (ss__irc_io.peer_kind). */
enum { SS__IRC_PEER_NONE = 0, SS__IRC_PEER_NATIVE = 1, SS__IRC_PEER_IRC = 2 };

typedef struct ss__irc_io {
    /* Queue one or more CRLF-terminated lines (take a reference to keep
     * l). 0, or negative: the connection is being cut. */
    int (*emit)(void *arg, ss_chat_line *l);
    /* May a new line from the client start now? (the native admit) */
    bool (*admit)(void *arg, bool counted);
    /* Online user nick: SS__IRC_PEER_*. */
    int (*peer_kind)(void *arg, const char *nick);
    /* A DCC SEND from this user to native user nick (active: ip:port):
     * fetch it and offer it natively. 0 started, 1 refused by the room
     * (which said why), -EPERM (not the user's address), -EBUSY, or
     * another negative code. NULL: DCC to native users is refused. */
    int (*dcc_get)(void *arg, const char *nick, const char *name, uint32_t ip,
                   uint16_t port, uint64_t size);
    /* A native file offer (room id) to this IRC user: listen for its DCC
     * connection; 0 and the address to announce in *ip, *port, or
     * negative (-EBUSY: one at a time). NULL: a NOTICE instead. */
    int (*dcc_offer)(void *arg, int64_t id, uint32_t *ip, uint16_t *port);
    /* Bytes of that file (from the room's CHUNK lines), in order; len 0:
     * the end (FILEEND). 0, or negative to stop. */
    int (*dcc_data)(void *arg, int64_t id, const void *data, size_t len);
    /* Users online in the room (LIST). */
    int (*online)(void *arg);
} ss__irc_io;

/* Shared by every IRC connection of one server: names and the cache. */
int ss__irc_hub_new(ss__irc_hub **out, const char *server_name, const char *room);
void ss__irc_hub_free(ss__irc_hub *h);

ss__irc *ss__irc_new(ss__irc_hub *h, const ss__irc_io *io, void *arg);
/* The room connection this IRC connection drives (after ss_chat_connect). */
void ss__irc_attach(ss__irc *ic, ss_chat_conn *cc);
void ss__irc_free(ss__irc *ic);

/* Welcomed (001 sent). Before that the room sends no offline messages:
 * the glue reports no space (a client takes no PRIVMSG before 001). */
bool ss__irc_registered(const ss__irc *ic);
/* Bytes from the client, in any split. *used: how many were taken; it
 * stops before a line io->admit refused or while a login hash runs (feed
 * the rest again later). Returns 0 or a negative code (the store). */
int ss__irc_feed(ss__irc *ic, const void *buf, size_t len, int64_t now_ms, size_t *used);
/* The room answered the native line it was waiting for (a login hash, or
 * a store that answers later, io->ready): go on with the native lines
 * queued behind it. */
void ss__irc_ready(ss__irc *ic, int64_t now_ms);
/* A native line the room sends to this connection. 0 or negative (the
 * connection is being cut). */
int ss__irc_out(ss__irc *ic, ss_chat_line *native);
/* The last line before the server cuts the connection, from the native
 * "ERR code text\n" note: "ERROR :Closing Link: code text\r\n" into buf. */
size_t ss__irc_fatal(const char *native_note, char *buf, size_t cap);

#endif
