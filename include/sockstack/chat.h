/* chat: a sans-I/O chat room with a SQLite store (issue 4).
 *
 * The room does no socket I/O and reads no clock. The server glue feeds it
 * the bytes each connection received (ss_chat_recv) together with the
 * current wall-clock time, and the room answers through the callbacks in
 * ss_chat_io: queue these bytes for that connection, how much room is left
 * in its output queue, close it after flushing. This is what lets the unit
 * tests drive a whole room byte by byte without a socket.
 *
 * Lines are framed here, never by recv() boundaries: a line split across
 * many calls is one message, many lines in one call are many messages. LF
 * or CRLF ends a line. A line longer than max_line, or one that is not valid
 * UTF-8, is refused with an ERR reply and the connection stays usable.
 * The wire format is in docs/protocols.md ("chat").
 */
#ifndef SOCKSTACK_CHAT_H
#define SOCKSTACK_CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sockstack/api.h"
SS_API_BEGIN

typedef struct ss_chat_room ss_chat_room;
typedef struct ss_chat_conn ss_chat_conn;

/* One line the room sends (with its '\n'), formatted once and shared by
 * reference by every recipient's queue: a message to 1,000 members is one
 * allocation, not 1,000 copies. Immutable; freed with its last reference. */
typedef struct ss_chat_line ss_chat_line;
const char *ss_chat_line_data(const ss_chat_line *l, size_t *len);
ss_chat_line *ss_chat_line_ref(ss_chat_line *l);
void ss_chat_line_unref(ss_chat_line *l);
/* A new line holding a copy of data (one reference), NULL without memory:
 * for a front end that formats its own lines (IRC). */
ss_chat_line *ss_chat_line_new(const void *data, size_t len);
/* Lines allocated now in this process, and the most at once (*peak). */
uint64_t ss_chat_lines_alive(uint64_t *peak);
/* Bytes in those lines now, and the most at once (*peak): the memory the
 * shared lines hold, each counted once however many queues refer to it. */
uint64_t ss_chat_line_bytes_alive(uint64_t *peak);

/* A PBKDF2-HMAC-SHA256 job of /login or /register. The room hands it to
 * io->kdf so that the hash runs off the event loop; ss_chat_kdf_run is the
 * only call allowed on another thread, and it touches nothing but the job. */
typedef struct ss_chat_kdf ss_chat_kdf;
void ss_chat_kdf_run(ss_chat_kdf *job);
/* Back on the loop thread, after ss_chat_kdf_run: the room answers the
 * command and takes the job back (frees it). Safe after the connection
 * that asked was disconnected: the job is then only freed. */
void ss_chat_kdf_done(ss_chat_kdf *job, int64_t now_ms);
/* The io handle of the connection that asked, NULL once it is gone. */
void *ss_chat_kdf_conn(const ss_chat_kdf *job);

/* How the room reaches a connection. conn is the glue's own handle. */
typedef struct ss_chat_io {
    /* Queue len bytes for conn. 0, or a negative code when conn's bounded
     * output queue would overflow: the glue then tells the client and
     * disconnects it (later, never from inside this call), and the room
     * sends it nothing more. */
    int (*send)(void *conn, const void *data, size_t len);
    /* Bytes conn's output queue can still take (paces file downloads and
     * offline-message pages). */
    size_t (*space)(void *conn);
    /* Close conn once what is queued has been sent (/quit). */
    void (*close)(void *conn);
    /* Optional: queue a shared line (take a reference to keep it). Same
     * return as send. NULL: the room calls send with the line's bytes. */
    int (*send_line)(void *conn, ss_chat_line *l);
    /* Optional, with send_line: a room line to many members in one call
     * (the fan-out without a call per recipient). sinks[0..n) are the
     * members' sinks (ss_chat_set_sink; the conn by default); the one equal
     * to skip (may be NULL) is left out. As send_line for each, in order;
     * stops at the first that fails and returns its index, else n. */
    size_t (*send_line_all)(void *const *sinks, size_t n, const void *skip,
                            ss_chat_line *l);
    /* Optional: the sink of a connection that joined (in: true) or left
     * the members send_line_all is given (named, not dead). Called before
     * the room's first line to it and after its last (a glue that keeps
     * one room log and a cursor per member learns its readers here). */
    void (*member)(void *sink, bool in);
    /* Optional flow control: may the room start on a new line from conn
     * now? counted is false for a line that is not rate-limited (file
     * chunks). NULL: always. When it says no, ss_chat_feed stops there. */
    bool (*admit)(void *conn, bool counted);
    /* Optional: run ss_chat_kdf_run(job) on another thread, then call
     * ss_chat_kdf_done(job, now) on the loop thread. 0 = accepted; a
     * negative code = cannot now (the room answers "ERR busy"). NULL: the
     * room hashes inline (tests, fuzzing). */
    int (*kdf)(void *conn, ss_chat_kdf *job);
    /* Optional: from now on, pass bytes between a and b unchanged (the
     * fallback relay of a point-to-point connection). The room sends them
     * nothing more; ss_chat_relayed() is true for both. */
    void (*relay)(void *a, void *b);
    /* Optional: a store operation that made conn's lines wait
     * (ss_chat_busy) finished later than the call that started it (a
     * remote store): feed conn's held lines again. */
    void (*ready)(void *conn);
} ss_chat_io;

/* The sender (and recipient) of the room file's OFFER: not a valid nick. */
#define SS_CHAT_ROOM_SENDER "*"

typedef struct ss_chat_opts {
    const char *db_path;     /* SQLite file; NULL or ":memory:" for none */
    const char *room;        /* room name shown to clients */
    size_t max_line;         /* longest accepted line, bytes without EOL */
    int join_history;        /* public messages shown on join */
    int history_max;         /* largest N for /history N */
    int history_keep;        /* history rows a db_path store keeps, the
                              * newest (0: all); without db_path the store
                              * keeps history_max */
    int who_max;             /* offline users listed by /who */
    int presence_max;        /* above this many online, no JOIN/LEAVE/NICK
                              * broadcasts (0: always broadcast) */
    uint64_t file_max;       /* largest file one /offer may announce */
    uint64_t file_quota;     /* pending offer bytes kept per recipient */
    int pbkdf2_iter;         /* PBKDF2-HMAC-SHA256 iterations */
    int offline_max;         /* offline messages kept per recipient */
    int offers_max;          /* pending offers per recipient and per sender */
    int login_free;          /* failed logins per nick / address before the
                              * throttle delays the next one */
    int login_delay_max_ms;  /* the throttle's longest delay */
    const char *room_file;   /* the server's own file, offered to every user
                              * at join (sender "*"), at most file_max bytes;
                              * NULL: none */
} ss_chat_opts;

/* Defaults from config.h. */
void ss_chat_opts_init(ss_chat_opts *o);

/* Open the room and its store (WAL mode), and load o->room_file into the
 * store. Returns 0 or a negative code (-EFBIG: the room file is larger
 * than file_max; -EINVAL: it is not a regular file). */
int ss_chat_room_open(ss_chat_room **out, const ss_chat_opts *o,
                      const ss_chat_io *io);
/* Close the store; every connection must have been disconnected first. */
void ss_chat_room_close(ss_chat_room *room);

/* A connection arrived: the room greets it. now_ms is wall-clock ms since
 * the epoch. Returns NULL only when out of memory. */
ss_chat_conn *ss_chat_connect(ss_chat_room *room, void *conn, int64_t now_ms);
/* Bytes received on c, in any split. Returns 0, or a negative code when the
 * store failed (the room stays consistent; the glue may log it). For an io
 * without admit and kdf (everything is consumed). */
int ss_chat_recv(ss_chat_conn *c, const void *buf, size_t len, int64_t now_ms);
/* The same with flow control: stops before a new line when io->admit says
 * no or while a /login or /register hash is running (ss_chat_busy);
 * *used says how many bytes were taken. Feed the rest again later. */
int ss_chat_feed(ss_chat_conn *c, const void *buf, size_t len, int64_t now_ms,
                 size_t *used);
/* True while c waits for a password hash (io->kdf) or a store operation
 * (io->ready says when it is over). */
bool ss_chat_busy(const ss_chat_conn *c);
/* The peer's address without port (for the per-address login throttle). */
void ss_chat_conn_set_addr(ss_chat_conn *c, const char *addr);
/* The peer's address and port as the server sees it ("203.0.113.7:4000"):
 * what a point-to-point introduction tells the other side. */
void ss_chat_conn_set_peer(ss_chat_conn *c, const char *peer);
/* c was handed to the byte relay (io->relay): feed it no more lines. */
bool ss_chat_relayed(const ss_chat_conn *c);
/* The peer half-closed: a final line without LF still counts. */
void ss_chat_eof(ss_chat_conn *c, int64_t now_ms);
/* c's output queue has room again: continue a file download. */
void ss_chat_drain(ss_chat_conn *c);
/* What io->send_line_all gets for c instead of its conn (e.g. the glue's
 * own state, saving a lookup per recipient). */
void ss_chat_set_sink(ss_chat_conn *c, void *sink);
/* c is gone (closed, overflowed, timed out): presence event, last-seen,
 * and c is freed. */
void ss_chat_disconnect(ss_chat_conn *c, int64_t now_ms);

/* Online users right now (named connections). */
int ss_chat_online(const ss_chat_room *room);
/* The id of c's upload in progress (/offer ... /done), 0 when none. */
int64_t ss_chat_upload_id(const ss_chat_conn *c);
/* The io handle of the online user nick (any case), or NULL. */
void *ss_chat_find_io(ss_chat_room *room, const char *nick);
/* Nickname of c, or NULL before /nick. */
const char *ss_chat_nick(const ss_chat_conn *c);

/* ---- the chat service on the server framework (server.h) ------------- */

struct ss_service;
typedef struct ss_chat_server ss_chat_server;

/* Flow control and limits of the server glue. */
typedef struct ss_chat_server_opts {
    size_t outq_max;      /* hard cap of one client's queue (bytes of the
                           * lines it references); past it: told and cut */
    size_t outq_high;     /* a client this far behind makes talkers wait */
    unsigned stall_ms;    /* a client behind and not reading this long is
                           * told and cut off */
    unsigned nick_timeout_ms; /* a connection without a nick is closed */
    int per_addr_max;     /* connections per peer address (0: no cap) */
    unsigned rate_lines;  /* lines per second a client may send ... */
    unsigned rate_burst;  /* ... with this burst (0: no rate limit) */
    /* Cluster mode (issue 14): "redis://HOST:PORT[,HOST:PORT...]" makes
     * this server one node of a service whose store and bus is Redis (or
     * Redis Cluster); NULL: single node on SQLite. Needs loop (the one the
     * server will run on); lease_ms: how long a dead node's users stay
     * online (0: SS_CHAT_LEASE_MS). */
    const char *cluster;
    struct ss_loop *loop;
    unsigned lease_ms;
} ss_chat_server_opts;
void ss_chat_server_opts_init(ss_chat_server_opts *so);

/* The room plus what the glue needs; pass it as the framework's svc_ctx.
 * so NULL: defaults. The framework's outbuf_max should be at least
 * SS_CHAT_STAGE (lines are handed to it that far ahead). */
int ss_chat_server_new(const ss_chat_opts *o, const ss_chat_server_opts *so,
                       ss_chat_server **out);
void ss_chat_server_free(ss_chat_server *cs);
ss_chat_room *ss_chat_server_room(ss_chat_server *cs);
typedef struct ss_chat_server_stats {
    uint64_t overflows;   /* cut off at the hard queue cap */
    uint64_t stalled;     /* cut off for not reading (stall_ms) */
    uint64_t nick_timeouts, addr_refused;
    uint64_t waits;       /* times a talker was made to wait for readers */
    uint64_t rate_waits;  /* times a talker waited for its rate */
    uint64_t relayed_bytes; /* bytes passed through point-to-point relays */
    uint64_t relays;      /* relays set up */
    uint64_t p2p_udp_answered; /* UDP rendezvous hellos answered */
    uint64_t p2p_udp_ignored;  /* datagrams on it ignored: not an authentic
                                * hello of a live introduction, a side's
                                * hello from a second address, or one too
                                * short to hold the answer */
    uint64_t lines_alive; /* shared lines allocated now */
    uint64_t lines_peak;
    uint64_t line_bytes_peak; /* most bytes held in shared lines at once */
    uint64_t queue_peak;  /* most bytes one client had queued (its lines
                           * plus what was staged for its socket): never
                           * above outq_max */
    uint64_t commit_errors; /* store batches that failed to commit */
    /* The room log (one copy of every room line, a cursor per native
     * member): bytes appended so far, the bytes it holds now for its
     * slowest reader (from the lowest cursor to its end), the most it
     * ever held, and its readers now. */
    uint64_t log_end;
    uint64_t log_held;
    uint64_t log_peak;
    uint64_t log_readers;
} ss_chat_server_stats;
void ss_chat_server_stats_get(const ss_chat_server *cs, ss_chat_server_stats *out);
/* One connection's output, by nick (tests): whether it reads the room
 * log, its cursor (log bytes before it are sent, counted like log_end),
 * the log bytes it has still to get (its own lines not counted), its
 * private lines waiting (entries and bytes; entries include the skips of
 * its own room lines), what waits in the framework's queue, and all it
 * has queued (the sum of those three). -ENOENT: no such nick here. */
typedef struct ss_chat_server_conn_info {
    bool reader;
    uint64_t log_pos;
    uint64_t log_backlog;
    uint64_t q_entries;
    uint64_t q_bytes;
    uint64_t staged;      /* in the framework's queue */
    uint64_t queued;
    bool behind;
} ss_chat_server_conn_info;
int ss_chat_server_conn_info_get(ss_chat_server *cs, const char *nick,
                                 ss_chat_server_conn_info *out);
/* The event-style service (on_open/on_data/on_eof/on_drain/on_close). */
const struct ss_service *ss_chat_service(void);
/* The same room for IRC clients (issue 15): run it as a second server on
 * the same loop with the same svc_ctx (ss_server_attach). */
const struct ss_service *ss_chat_irc_service(void);
/* The point-to-point UDP rendezvous (datagrams): run it as a second server
 * of type SS_DGRAM on the same loop with the same svc_ctx, at the chat
 * port's number (clients send their UDP hellos there). */
const struct ss_service *ss_chat_p2p_udp_service(void);

/* ---- file transfer, client side -------------------------------------- */

/* A download in progress: chunks go to a temporary file in dir; finishing
 * checks size and SHA-256 and only then renames it atomically to its name
 * (never over an existing file: "name.1", "name.2", ... instead). */
typedef struct ss_chat_dl ss_chat_dl;
int ss_chat_dl_begin(ss_chat_dl **out, const char *dir, int64_t id, uint64_t size,
                     const char *sha_hex, const char *name);
/* The same, resumable: the temporary file is named after the file and its
 * SHA-256 (".NAME.SHA16.part"), and bytes an earlier try left there are
 * kept (hashed again); ss_chat_dl_offset says where to go on from. */
int ss_chat_dl_resume(ss_chat_dl **out, const char *dir, int64_t id, uint64_t size,
                      const char *sha_hex, const char *name);
uint64_t ss_chat_dl_offset(const ss_chat_dl *d);
/* Stop without deleting what arrived (for a later ss_chat_dl_resume). */
void ss_chat_dl_keep(ss_chat_dl *d);
int64_t ss_chat_dl_id(const ss_chat_dl *d);
/* One CHUNK's offset and base64 payload: 0, or -EPROTO (bad base64, wrong
 * offset, past the size) / a negative errno from the disk. */
int ss_chat_dl_chunk(ss_chat_dl *d, uint64_t off, const char *b64);
/* Verify and rename; d is freed either way. 0 with the final path in path,
 * SS_EDIGEST (temporary file removed), or a negative errno. */
int ss_chat_dl_finish(ss_chat_dl *d, char *path, size_t cap);
/* Remove the temporary file and free d. NULL is fine. */
void ss_chat_dl_abort(ss_chat_dl *d);

/* An upload: the file's size and SHA-256 are computed on open. */
typedef struct ss_chat_ul ss_chat_ul;
int ss_chat_ul_open(ss_chat_ul **out, const char *path);
uint64_t ss_chat_ul_size(const ss_chat_ul *u);
const char *ss_chat_ul_sha256(const ss_chat_ul *u);
/* Go on from off (the receiver already has the bytes before it). */
void ss_chat_ul_seek(ss_chat_ul *u, uint64_t off);
/* The file's base name, as announced. */
const char *ss_chat_ul_name(const ss_chat_ul *u);
/* The next "/chunk ID OFFSET BASE64\n" line into buf (cap >= 2900):
 * its length, 0 when every byte has been sent, or a negative errno. */
int ss_chat_ul_next(ss_chat_ul *u, int64_t id, char *buf, size_t cap);
void ss_chat_ul_close(ss_chat_ul *u);

/* ---- helpers shared with the client and the tests ---------------------- */

/* True when buf[0..len) is well-formed UTF-8 (no overlongs, surrogates or
 * code points above U+10FFFF). */
bool ss_utf8_valid(const void *buf, size_t len);
/* True when s is an acceptable nickname: 1..SS_CHAT_NICK_MAX characters,
 * a letter first, then letters, digits, '_' or '-'. */
bool ss_chat_nick_valid(const char *s);
/* "2026-11-21T05:40:44.123Z" for ms since the epoch; buf >= 32 bytes. */
void ss_chat_format_ts(int64_t ms, char *buf, size_t cap);
/* The inverse: ms since the epoch, or -1 when s is not that format. */
int64_t ss_chat_parse_ts(const char *s);
/* Lowercase hex SHA-256 of a file, into hex (65 bytes). Returns 0 and the
 * size in *size, or a negative errno. */
int ss_chat_file_sha256(const char *path, char hex[65], uint64_t *size);

/* The point-to-point UDP rendezvous (docs/protocols.md, "Point-to-point",
 * UDP): the MAC of one of its messages, the first 16 bytes of
 * HMAC-SHA256(key, text) as 32 lowercase hex digits into out (33 bytes);
 * key is the introduction's 32 hex digits, used as they are (the same 32
 * bytes as the stream's authentication key). */
void ss_chat_p2p_udp_mac(const char *key, const char *text, char out[33]);

/* Passwords: a salted PBKDF2-HMAC-SHA256 record and its check. */
int ss_chat_pw_hash(const char *pw, int iter, uint8_t salt[16], uint8_t hash[32]);
bool ss_chat_pw_check(const char *pw, int iter, const uint8_t salt[16],
                      const uint8_t hash[32]);

SS_API_END

#endif
