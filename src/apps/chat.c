/* chat: the sans-I/O chat room (see include/sockstack/chat.h and the
 * "chat" section of docs/protocols.md).
 *
 * Input path: ss_chat_feed -> (io->admit at each line start) -> frame
 *   lines (LF/CRLF, max_line, UTF-8) -> handle_line -> one handler per
 *   command -> replies and events through the routing seam below.
 * Every stored thing (public message, offline message, user, file) is
 * committed to the store before the sender's acknowledgement leaves the
 * process (under serve chat, history inserts of one loop iteration share
 * one transaction, committed before any line is sent: ss__chat_room_commit).
 *
 * Routing seam. Everything the room sends leaves through three functions,
 * the place where a cluster backend (Redis, issue 14) or another front end
 * (IRC, issue 15) plugs in:
 *   route_conn(c, line)             one connection of this room
 *   route_room(r, except, line)     every named member except `except`
 *   route_presence(r, c, line)      JOIN / LEAVE / NICK events (suppressed
 *                                   above presence_max)
 * and users are found through find_online(r, nick). A line is formatted
 * once (ss_chat_line) and shared by every recipient's queue.
 */
#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "apps/chat_backend.h"
#include "apps/chat_store.h"
#include "sockstack/chat.h"
#include "sockstack/config.h"

struct ss_chat_conn {
    ss_chat_room *room;
    void *io;                   /* the glue's handle */
    void *sink;                 /* its handle for send_line_all (default io) */
    size_t mem_i;               /* index in room->mem while in_mem */
    bool in_mem;                /* in room->mem: named and not dead */
    ss_chat_conn *prev, *next;  /* room->conns */
    ss_chat_conn *hnext;        /* room->nick_tab chain (while named) */
    char nick[SS_CHAT_NICK_MAX + 1];
    bool named;                 /* has joined under nick */
    bool authed;                /* logged in to the registered nick */
    bool dead;                  /* send failed: glue is disconnecting it */
    bool discarding;            /* skipping the rest of an overlong line */
    char *part;                 /* unfinished line (malloc'd on demand) */
    size_t part_len;
    /* upload in progress (/offer ... /chunk ... /done) */
    int64_t up_id;
    uint64_t up_off, up_size;
    char up_sha[65];
    EVP_MD_CTX *up_md;
    char up_node[24];           /* cluster: the recipient's node ("": here) */
    /* download in progress (/accept) */
    int64_t dl_id;
    uint64_t dl_off, dl_size;
    bool dl_remote;             /* cluster: pulled from node dl_node */
    char dl_node[24];
    struct chat_op *dl_op;      /* the chunk being pulled */
    /* offline messages: delivered in pages as the queue drains; rows are
     * deleted once a later drain shows the page left the queue */
    char off_sent[SS__CHAT_ID_MAX];   /* last id deletable ("": none) */
    char off_queued[SS__CHAT_ID_MAX]; /* last id queued */
    bool off_more;
    bool off_fresh;                /* rows queued since off_sent was set */
    struct chat_op *op;            /* the store operation c's lines wait for */
    struct chat_op *off_op;        /* a page of offline messages being read */
    int64_t since;                 /* /since: join history from this time */
    ss_chat_kdf *kdf;              /* password hash running for c */
    char addr[64];                 /* peer address (login throttle) */
    char peer[80];                 /* peer address and port (rendezvous) */
    bool p2p;                      /* named in an introduction */
    bool relayed;                  /* handed to the byte relay: no more lines */
    char *away;                    /* /away text (malloc'd), NULL: here */
};

/* A point-to-point introduction: the server is directory and rendezvous.
 * Side 0 asked (/connect), side 1 is the peer. */
struct p2p_intro {
    int64_t id;                    /* 0: free */
    int64_t expires;
    char key[33];                  /* 16 random bytes, hex: both sides' secret */
    char nick[2][SS_CHAT_NICK_MAX + 1];
    ss_chat_conn *probe[2];        /* /p2p hello connections */
    char pub[2][80];               /* what the server saw of each probe */
    char cands[2][256];            /* local candidates each side announced */
    bool hello[2];                 /* each side said hello (here or on its node) */
    ss_chat_conn *relay[2];        /* /p2p relay connections */
    char upub[2][80];              /* each side's UDP address, from its
                                    * first authentic UDP hello ("": none) */
    bool usent[2];                 /* cluster: upub[side] told the other node */
    /* Cluster: side rside is a user on node `remote` ("": both here); the
     * steps of the other side reach this node over the backend. */
    char remote[24];
    int rside;
};

/* Cluster: an offer shown to a user here whose bytes are on another node. */
struct roffer {
    int64_t id;                    /* 0: free; the uploading node's id */
    char node[24];                 /* where the bytes are */
    char from[SS_CHAT_NICK_MAX + 1], to[SS_CHAT_NICK_MAX + 1];
    uint64_t size;
    char sha[65];
    char name[256];
};

/* A store operation in flight (chat_backend.h): what to do with its result
 * (k, on the loop, only while c is connected) and the command's arguments. */
struct chat_op {
    ss_chat_conn *c;               /* NULL once c was disconnected */
    void (*k)(ss_chat_conn *c, struct chat_op *op);
    void (*kr)(ss_chat_room *r, struct chat_op *op); /* instead of k: no connection */
    ss_chat_room *r;
    int err;
    int state;                     /* OP_CALLING, OP_INLINE, OP_PENDING */
    int64_t now;
    int kind, page, listed, online;
    int64_t since, before;
    struct ss__chat_res res;
    char nick[SS_CHAT_NICK_MAX + 1];
    int iter;                      /* /register: the finished hash */
    uint8_t salt[16], hash[32];
    size_t cap;                    /* bytes of text[] */
    char text[];                   /* a copy of the command's text */
};
enum { OP_CALLING, OP_INLINE, OP_PENDING };

/* struct ss_chat_line: chat_backend.h (the server's queues read it inline) */

enum { KDF_CHECK, KDF_HASH };

struct ss_chat_kdf {
    ss_chat_conn *c;     /* NULL once c was disconnected */
    int kind;
    bool known;          /* CHECK: a registered nick (else a stand-in
                          * record, so unknown nicks cost the same) */
    bool ok;
    int iter;
    uint8_t salt[16], hash[32], out[32];
    char nick[SS_CHAT_NICK_MAX + 1];
    char pw[];
};

/* Failed-login throttle: a bounded table per key kind (nick, address). */
struct thr_slot {
    uint64_t key;
    int fails;
    int64_t next_ok, last;
};

struct ss_chat_room {
    ss_chat_opts o;
    char room_name[64];
    ss_chat_io io;
    ss__chat_store *st;         /* files (and, single-node, everything) */
    ss__chat_be *be;            /* users, history, offline messages */
    ss_chat_conn *conns;
    size_t n_conns;
    /* The members a room line goes to (named, not dead), for the glue's
     * send_line_all: the conns and their sinks side by side, unordered
     * (removal moves the last one into the gap). mem_cap >= n_conns, so
     * joining needs no memory. */
    ss_chat_conn **mem;
    void **mem_sink;
    size_t n_mem, mem_cap;
    ss_chat_conn **nick_tab;    /* named connections by nick, any case:
                                 * chained, nick_cap (a power of 2) heads */
    size_t nick_cap, nick_n;
    int online;     /* named connections here */
    int svc_online; /* cluster: online in the whole service, as last heard */
    char *out;      /* one formatted line */
    size_t out_cap;
    char *scratch;  /* a whole line read at once, while it is handled
                     * (max_line + 2; NULL until first used) */
    bool scratch_busy;
    uint64_t thr_seed;
    struct thr_slot *thr_nick, *thr_addr; /* SS_CHAT_THROTTLE_SLOTS each */
    uint8_t dummy_salt[16], dummy_hash[32]; /* stand-in for unknown nicks */
    struct p2p_intro intros[SS_CHAT_P2P_MAX];
    int64_t next_intro;
    struct roffer *roffers;     /* cluster: SS_CHAT_ROFFER_MAX, on first use */
    struct ss__chat_file roomf; /* the room file (--room-file); id 0: none */
    struct chat_op *op_spare;   /* a finished operation kept for the next */
    bool closing;               /* in ss_chat_room_close: keep none */
};

void ss_chat_opts_init(ss_chat_opts *o)
{
    *o = (ss_chat_opts){
        .db_path = NULL,
        .room = "lobby",
        .max_line = SS_CHAT_MAX_LINE,
        .join_history = SS_CHAT_JOIN_HISTORY,
        .history_max = SS_CHAT_HISTORY_MAX,
        .history_keep = SS_CHAT_DB_HISTORY_KEEP,
        .who_max = SS_CHAT_WHO_MAX,
        .presence_max = SS_CHAT_PRESENCE_MAX,
        .file_max = SS_CHAT_FILE_MAX,
        .file_quota = SS_CHAT_FILE_QUOTA,
        .pbkdf2_iter = SS_CHAT_PBKDF2_ITER,
        .offline_max = SS_CHAT_OFFLINE_MAX,
        .offers_max = SS_CHAT_OFFERS_MAX,
        .login_free = SS_CHAT_LOGIN_FREE,
        .login_delay_max_ms = SS_CHAT_LOGIN_DELAY_MAX_MS,
    };
}

/* The room file: the server's own offer to every user, stored once like
 * an uploaded file (one row per chunk) from sender "*" to recipient "*"
 * (neither is a valid nick, so no user's quota or list counts it), and
 * never deleted by a download or a decline. A room file of an earlier run
 * of this store is dropped first. */
static int room_file_load(ss_chat_room *r, const char *path)
{
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    if (!*name || strlen(name) > 255)
        return -EINVAL;
    int err = ss__chat_forget(r->st, SS_CHAT_ROOM_SENDER);
    if (err)
        return err;
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    struct stat sb;
    if (fstat(fileno(f), &sb) < 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return -EINVAL;
    }
    if ((uint64_t)sb.st_size > r->o.file_max) {
        fclose(f);
        return -EFBIG;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int64_t id = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL)
                     ? ss__chat_file_create(r->st, 0, SS_CHAT_ROOM_SENDER, SS_CHAT_ROOM_SENDER,
                                            name, (uint64_t)sb.st_size, "-")
                     : -ENOMEM;
    err = id < 0 ? (int)id : 0;
    uint64_t off = 0;
    unsigned char buf[SS_CHAT_CHUNK];
    size_t n;
    while (!err && (n = fread(buf, 1, sizeof buf, f)) > 0) {
        if (off + n > (uint64_t)sb.st_size)
            err = -EAGAIN; /* it grew while we read it */
        else
            err = ss__chat_file_write(r->st, id, off, buf, n);
        EVP_DigestUpdate(md, buf, n);
        off += n;
    }
    if (!err && (ferror(f) || off != (uint64_t)sb.st_size))
        err = ferror(f) ? -EIO : -EAGAIN;
    fclose(f);
    char hex[65];
    if (!err) {
        ss__chat_sha256_hex(md, hex);
        err = ss__chat_file_complete_sha(r->st, id, hex);
    }
    EVP_MD_CTX_free(md);
    if (!err)
        err = ss__chat_file_get(r->st, id, &r->roomf);
    if (err && id > 0)
        ss__chat_file_delete(r->st, id);
    if (err)
        r->roomf.id = 0;
    return err;
}

int ss__chat_room_open_be(ss_chat_room **out, const ss_chat_opts *o,
                          const ss_chat_io *io, ss__chat_be *be)
{
    *out = NULL;
    ss_chat_room *r = o->max_line < 64 || o->pbkdf2_iter < 1 ? NULL : calloc(1, sizeof *r);
    if (!r) {
        if (be)
            be->ops->close(be);
        return o->max_line < 64 || o->pbkdf2_iter < 1 ? -EINVAL : -ENOMEM;
    }
    r->o = *o;
    snprintf(r->room_name, sizeof r->room_name, "%s", o->room ? o->room : "lobby");
    r->io = *io;
    /* A line we send: its text (max_line) plus prefix, timestamp, nicks. */
    r->out_cap = o->max_line + 256;
    r->out = malloc(r->out_cap);
    r->nick_cap = SS_CHAT_NICK_TAB_INIT;
    r->nick_tab = calloc(r->nick_cap, sizeof *r->nick_tab);
    r->thr_nick = calloc(SS_CHAT_THROTTLE_SLOTS, sizeof *r->thr_nick);
    r->thr_addr = calloc(SS_CHAT_THROTTLE_SLOTS, sizeof *r->thr_addr);
    int err = r->out && r->nick_tab && r->thr_nick && r->thr_addr ? 0 : -ENOMEM;
    if (!err && (RAND_bytes((uint8_t *)&r->thr_seed, sizeof r->thr_seed) != 1 ||
                 RAND_bytes(r->dummy_salt, 16) != 1 || RAND_bytes(r->dummy_hash, 32) != 1))
        err = -EIO;
    if (!err)
        err = ss__chat_store_open(o->db_path, &r->st);
    /* Without --db the history lives in memory: keep only what /history
     * can ask for (history_max rows). A --db store is the room's archive
     * on disk, paged back with /history N TS: it keeps history_keep rows
     * (--history-keep), so the file does not grow forever. */
    if (!err)
        ss__chat_history_keep(r->st, o->db_path && *o->db_path &&
                                         strcmp(o->db_path, ":memory:")
                                     ? o->history_keep
                                     : o->history_max);
    if (!err)
        err = ss__chat_file_drop_incomplete(r->st);
    if (!err && be && be->ops->claim) {
        /* File ids of the nodes of a cluster must not meet: each node
         * numbers from its own random base (2^24 offers apart). */
        uint32_t rnd;
        err = RAND_bytes((uint8_t *)&rnd, sizeof rnd) == 1
                  ? ss__chat_file_seed(r->st, ((int64_t)(rnd & 0x7fffff) + 1) << 24)
                  : -EIO;
    }
    if (!err && o->room_file)
        err = room_file_load(r, o->room_file);
    if (!err && !be)
        err = ss__chat_be_sqlite_new(r->st, &be);
    r->be = be;
    if (be)
        be->room = r;
    if (err) {
        ss_chat_room_close(r);
        return err;
    }
    *out = r;
    return 0;
}

int ss_chat_room_open(ss_chat_room **out, const ss_chat_opts *o,
                      const ss_chat_io *io)
{
    return ss__chat_room_open_be(out, o, io, NULL);
}

void ss_chat_room_close(ss_chat_room *room)
{
    if (!room)
        return;
    room->closing = true; /* op_free frees from here on */
    if (room->be)
        room->be->ops->close(room->be); /* pending operations end: -ECANCELED */
    free(room->op_spare);
    ss__chat_store_close(room->st);
    free(room->roffers);
    free(room->thr_nick);
    free(room->thr_addr);
    free(room->nick_tab);
    free(room->mem);
    free(room->mem_sink);
    free(room->out);
    free(room->scratch);
    free(room);
}

static bool cluster(const ss_chat_room *r);

void ss__chat_room_batch(ss_chat_room *r, bool on)
{
    if (!cluster(r))
        ss__chat_store_batch(r->st, on);
}

int ss__chat_room_commit(ss_chat_room *r) { return ss__chat_store_commit(r->st); }

/* Users online: this node's, or in a cluster the service's. */
static int online_count(const ss_chat_room *r)
{
    return cluster(r) ? r->svc_online : r->online;
}

int ss_chat_online(const ss_chat_room *room) { return online_count(room); }

const char *ss_chat_nick(const ss_chat_conn *c) { return c->named ? c->nick : NULL; }

/* ---- shared lines ------------------------------------------------------ */

const char *ss_chat_line_data(const ss_chat_line *l, size_t *len)
{
    *len = l->len;
    return l->data;
}

/* Loop-thread counters (every room of a process runs on its loop). */
static uint64_t lines_alive, lines_peak, bytes_alive, bytes_peak;

uint64_t ss_chat_lines_alive(uint64_t *peak)
{
    if (peak)
        *peak = lines_peak;
    return lines_alive;
}

uint64_t ss_chat_line_bytes_alive(uint64_t *peak)
{
    if (peak)
        *peak = bytes_peak;
    return bytes_alive;
}

ss_chat_line *ss_chat_line_ref(ss_chat_line *l)
{
    l->refs++;
    return l;
}

void ss_chat_line_unref(ss_chat_line *l)
{
    if (l && --l->refs == 0) {
        lines_alive--;
        bytes_alive -= l->len;
        free(l);
    }
}

static ss_chat_line *line_new(const char *data, size_t len);

ss_chat_line *ss_chat_line_new(const void *data, size_t len)
{
    return line_new(data, len);
}

static ss_chat_line *line_new(const char *data, size_t len)
{
    ss_chat_line *l = malloc(sizeof *l + len);
    if (!l)
        return NULL;
    l->refs = 1;
    l->len = (uint32_t)len;
    if (++lines_alive > lines_peak)
        lines_peak = lines_alive;
    if ((bytes_alive += len) > bytes_peak)
        bytes_peak = bytes_alive;
    memcpy(l->data, data, len);
    return l;
}

/* ---- output: the routing seam (see the top of the file) ----------------- */

static void mem_add(ss_chat_conn *c)
{
    ss_chat_room *r = c->room;
    if (c->in_mem || !c->named || c->dead)
        return;
    c->mem_i = r->n_mem++;
    r->mem[c->mem_i] = c;
    r->mem_sink[c->mem_i] = c->sink;
    c->in_mem = true;
    if (r->io.member)
        r->io.member(c->sink, true);
}

static void mem_del(ss_chat_conn *c)
{
    ss_chat_room *r = c->room;
    if (!c->in_mem)
        return;
    size_t i = c->mem_i, last = --r->n_mem;
    r->mem[i] = r->mem[last];
    r->mem_sink[i] = r->mem_sink[last];
    r->mem[i]->mem_i = i;
    c->in_mem = false;
    if (r->io.member)
        r->io.member(c->sink, false);
}

/* c's send failed: the glue is disconnecting it; it gets nothing more. */
static void conn_dead(ss_chat_conn *c)
{
    c->dead = true;
    mem_del(c);
}

void ss_chat_set_sink(ss_chat_conn *c, void *sink)
{
    c->sink = sink;
    if (c->in_mem)
        c->room->mem_sink[c->mem_i] = sink;
}

/* Hand one line to c's queue; l may be NULL when the room formats for one
 * recipient and the io has no send_line. */
static void route_conn_bytes(ss_chat_conn *c, ss_chat_line *l, const char *data,
                             size_t len)
{
    if (c->dead)
        return;
    const ss_chat_io *io = &c->room->io;
    int err;
    if (io->send_line) {
        ss_chat_line *own = l ? l : line_new(data, len);
        err = own ? io->send_line(c->io, own) : -ENOMEM;
        if (!l)
            ss_chat_line_unref(own);
    } else {
        err = io->send(c->io, data, len);
    }
    if (err < 0)
        conn_dead(c);
}

static void route_conn(ss_chat_conn *c, const char *data, size_t len)
{
    route_conn_bytes(c, NULL, data, len);
}

/* Every named member but `except` (may be NULL): one shared line. */
static void route_room(ss_chat_room *r, ss_chat_conn *except, const char *data,
                       size_t len)
{
    int (*send_line)(void *, ss_chat_line *) = r->io.send_line;
    if (!send_line) {
        for (ss_chat_conn *c = r->conns; c; c = c->next)
            if (c != except && c->named)
                route_conn_bytes(c, NULL, data, len);
        return;
    }
    /* The fan-out: one reference per recipient, the hook loaded once. */
    ss_chat_line *l = line_new(data, len);
    size_t (*all)(void *const *, size_t, const void *, ss_chat_line *) = r->io.send_line_all;
    if (all && l) {
        /* One call for every member (no call per recipient); one that
         * fails is dead and leaves the array, whose last member takes
         * its place and has not been sent to yet. */
        const void *skip = except ? except->sink : NULL;
        size_t i = 0;
        while (i < r->n_mem) {
            i += all(r->mem_sink + i, r->n_mem - i, skip, l);
            if (i < r->n_mem)
                conn_dead(r->mem[i]);
        }
        ss_chat_line_unref(l);
        return;
    }
    for (ss_chat_conn *c = r->conns; c; c = c->next)
        if (c != except && c->named && !c->dead && (!l || send_line(c->io, l) < 0))
            conn_dead(c);
    ss_chat_line_unref(l);
}

/* Presence events go to everyone only while the room is small enough. */
static bool presence(const ss_chat_room *r)
{
    return r->o.presence_max <= 0 || online_count(r) <= r->o.presence_max;
}

static void route_presence(ss_chat_room *r, ss_chat_conn *about, const char *data,
                           size_t len)
{
    if (presence(r))
        route_room(r, about, data, len);
}

/* Format one line (the '\n' is added here) into room->out; returns length. */
static size_t vfmt(ss_chat_room *r, const char *fmt, va_list ap)
{
    int n = vsnprintf(r->out, r->out_cap - 1, fmt, ap);
    size_t len = n < 0 ? 0 : (size_t)n >= r->out_cap - 1 ? r->out_cap - 2 : (size_t)n;
    r->out[len++] = '\n';
    return len;
}

__attribute__((format(printf, 2, 3)))
static size_t fmt_line(ss_chat_room *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t len = vfmt(r, fmt, ap);
    va_end(ap);
    return len;
}

__attribute__((format(printf, 2, 3)))
static void say(ss_chat_conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t len = vfmt(c->room, fmt, ap);
    va_end(ap);
    route_conn(c, c->room->out, len);
}

/* To every named connection except `except` (may be NULL); a presence
 * event (JOIN/LEAVE/NICK) when presence_event. */
static void broadcast_out(ss_chat_room *r, ss_chat_conn *except, bool presence_event,
                          size_t len)
{
    if (r->be && r->be->ops->bcast) {
        /* A cluster: published once; every node (this one too) hands it
         * to its own members (ss__chat_room_bus). */
        r->be->ops->bcast(r->be, except && except->named ? except->nick : "", presence_event,
                          r->out, len, NULL, NULL);
        return;
    }
    if (presence_event)
        route_presence(r, except, r->out, len);
    else
        route_room(r, except, r->out, len);
}

static void vbroadcast(ss_chat_room *r, ss_chat_conn *except, bool presence_event,
                       const char *fmt, va_list ap)
{
    broadcast_out(r, except, presence_event, vfmt(r, fmt, ap));
}

__attribute__((format(printf, 3, 4)))
static void broadcast(ss_chat_room *r, ss_chat_conn *except, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vbroadcast(r, except, false, fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 3, 4)))
static void announce(ss_chat_room *r, ss_chat_conn *about, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vbroadcast(r, about, true, fmt, ap);
    va_end(ap);
}

/* ---- nick index: a join, /msg or /nick looks up one chain, not every
 * connection (10,000 clients joining were O(n^2) string compares) ------ */

static size_t nick_hash(const char *nick, size_t cap)
{
    uint32_t h = 2166136261u; /* FNV-1a over the lower-cased nick */
    for (const unsigned char *p = (const unsigned char *)nick; *p; p++)
        h = (h ^ (uint32_t)tolower(*p)) * 16777619u;
    return h & (cap - 1);
}

static void nick_grow(ss_chat_room *r)
{
    size_t cap = r->nick_cap * 2;
    ss_chat_conn **tab = calloc(cap, sizeof *tab);
    if (!tab)
        return; /* keep the old table: longer chains, still correct */
    for (size_t i = 0; i < r->nick_cap; i++)
        for (ss_chat_conn *c = r->nick_tab[i], *next; c; c = next) {
            next = c->hnext;
            size_t h = nick_hash(c->nick, cap);
            c->hnext = tab[h];
            tab[h] = c;
        }
    free(r->nick_tab);
    r->nick_tab = tab;
    r->nick_cap = cap;
}

static void nick_index(ss_chat_conn *c)
{
    ss_chat_room *r = c->room;
    if (r->nick_n >= r->nick_cap)
        nick_grow(r);
    size_t h = nick_hash(c->nick, r->nick_cap);
    c->hnext = r->nick_tab[h];
    r->nick_tab[h] = c;
    r->nick_n++;
}

static void nick_unindex(ss_chat_conn *c)
{
    ss_chat_room *r = c->room;
    for (ss_chat_conn **pp = &r->nick_tab[nick_hash(c->nick, r->nick_cap)]; *pp;
         pp = &(*pp)->hnext)
        if (*pp == c) {
            *pp = c->hnext;
            c->hnext = NULL;
            r->nick_n--;
            return;
        }
}

static ss_chat_conn *find_online(ss_chat_room *r, const char *nick)
{
    for (ss_chat_conn *c = r->nick_tab[nick_hash(nick, r->nick_cap)]; c; c = c->hnext)
        if (c->named && !c->dead && !strcasecmp(c->nick, nick))
            return c;
    return NULL;
}

int64_t ss_chat_upload_id(const ss_chat_conn *c) { return c->up_id; }

void *ss_chat_find_io(ss_chat_room *room, const char *nick)
{
    ss_chat_conn *c = find_online(room, nick);
    return c ? c->io : NULL;
}

/* ---- store operations (chat_backend.h) ----------------------------------
 * An operation of c (op_new + OP_CALL) makes c's next lines wait until it
 * completes (ss_chat_busy), so replies keep the order of the commands. Its
 * continuation k runs once the backend answered: inside the call for the
 * SQLite backend, later from the loop for Redis; then the io's ready()
 * lets the glue feed c's held lines again. */

/* An operation with room for text, or (text NULL) for n bytes in op->text. */
static struct chat_op *op_alloc_n(ss_chat_conn *c, void (*k)(ss_chat_conn *, struct chat_op *),
                                  int64_t now, const char *text, size_t n)
{
    if (text)
        n = strlen(text);
    /* The room keeps one finished operation for the next (op_free): a
     * calloc and a free per public message were a tenth of the server's
     * own instructions per message (issue 11). */
    ss_chat_room *r = c ? c->room : NULL;
    struct chat_op *op = r ? r->op_spare : NULL;
    if (op && op->cap > n) {
        size_t cap = op->cap;
        r->op_spare = NULL;
        memset(op, 0, sizeof *op);
        op->cap = cap;
    } else {
        size_t cap = n + 1 < SS_CHAT_OP_TEXT ? SS_CHAT_OP_TEXT : n + 1;
        op = calloc(1, sizeof *op + cap);
        if (!op)
            return NULL;
        op->cap = cap;
    }
    op->c = c;
    op->r = c ? c->room : NULL;
    op->k = k;
    op->now = now;
    op->before = -1;
    op->since = -1;
    if (text)
        memcpy(op->text, text, n + 1);
    return op;
}

static struct chat_op *op_alloc(ss_chat_conn *c, void (*k)(ss_chat_conn *, struct chat_op *),
                                int64_t now, const char *text)
{
    return op_alloc_n(c, k, now, text, 0);
}

/* A blocking operation of c: its next lines wait for it. NULL: out of
 * memory (c was told). */
static struct chat_op *op_new(ss_chat_conn *c, void (*k)(ss_chat_conn *, struct chat_op *),
                              int64_t now, const char *text)
{
    struct chat_op *op = op_alloc(c, k, now, text);
    if (!op) {
        say(c, "ERR store out of memory");
        return NULL;
    }
    c->op = op;
    return op;
}

static void op_finish(struct chat_op *op, bool async)
{
    ss_chat_conn *c = op->c;
    if (!c) {
        if (op->kr)
            op->kr(op->r, op);
        return;
    }
    bool blocking = c->op == op;
    if (blocking)
        c->op = NULL;
    if (c->off_op == op)
        c->off_op = NULL;
    if (op->k)
        op->k(c, op);
    if (async && blocking && !c->op && !c->kdf && c->room->io.ready)
        c->room->io.ready(c->io);
}

/* Keep op for the next op_alloc_n, or free it. */
static void op_free(struct chat_op *op)
{
    ss_chat_room *r = op->r;
    if (r && !r->op_spare && !r->closing)
        r->op_spare = op;
    else
        free(op);
}

static void op_done(void *arg, int err)
{
    struct chat_op *op = arg;
    op->err = err;
    if (op->state == OP_CALLING) {
        op->state = OP_INLINE; /* freed by OP_CALL once the call returns */
        op_finish(op, false);
        return;
    }
    op_finish(op, true);
    op_free(op);
}

/* Start backend operation fn for op (the room's backend, arguments, then
 * op_done and op appended). */
#define OP_CALL(r, op, fn, ...)                                                           \
    do {                                                                                  \
        struct chat_op *op_ = (op);                                                       \
        op_->state = OP_CALLING;                                                          \
        (r)->be->ops->fn((r)->be, __VA_ARGS__, op_done, op_);                            \
        if (op_->state == OP_INLINE)                                                      \
            op_free(op_);                                                                 \
        else                                                                              \
            op_->state = OP_PENDING;                                                      \
    } while (0)

/* The connection of op while it is still there. */
static ss_chat_conn *op_conn(void *arg) { return ((struct chat_op *)arg)->c; }

/* Several nodes as one service (a cluster backend)? */
static bool cluster(const ss_chat_room *r) { return r->be->ops->claim != NULL; }

/* A refusal for a failed store operation: "degraded" while the store is
 * unreachable (the client may try again), else "store". */
static void store_err(ss_chat_conn *c, int err, const char *what)
{
    if (err == -ENOTCONN || err == -EAGAIN)
        say(c, "ERR degraded the service is degraded (its store is unreachable): %s", what);
    else
        say(c, "ERR store %s", what);
}

/* ---- connection lifecycle --------------------------------------------- */

ss_chat_conn *ss_chat_connect(ss_chat_room *room, void *conn, int64_t now_ms)
{
    if (room->n_conns == room->mem_cap) {
        size_t cap = room->mem_cap ? room->mem_cap * 2 : 64;
        ss_chat_conn **m = realloc(room->mem, cap * sizeof *m);
        if (!m)
            return NULL;
        room->mem = m;
        void **ms = realloc(room->mem_sink, cap * sizeof *ms);
        if (!ms)
            return NULL;
        room->mem_sink = ms;
        room->mem_cap = cap;
    }
    ss_chat_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    room->n_conns++;
    c->room = room;
    c->io = conn;
    c->sink = conn;
    c->next = room->conns;
    if (room->conns)
        room->conns->prev = c;
    room->conns = c;
    say(c, "INFO welcome to %s (sockstack chat); choose a nickname with /nick NAME, "
           "/help lists commands", room->room_name);
    return c;
}

static void upload_abort(ss_chat_conn *c)
{
    if (c->up_id)
        ss__chat_file_delete(c->room->st, c->up_id);
    EVP_MD_CTX_free(c->up_md);
    c->up_md = NULL;
    c->up_id = 0;
    c->up_node[0] = '\0';
}

/* Offers waiting for an unregistered nick live only while its holder is
 * online: they never go to whoever takes the nick next. */
static void forget_unregistered(ss_chat_conn *c)
{
    ss__chat_be *be = c->room->be;
    be->ops->forget_unregistered(be, c->nick, NULL, NULL);
}

static void touch(ss_chat_room *r, const char *nick, int64_t now)
{
    r->be->ops->user_touch(r->be, nick, now, NULL, NULL);
}

static void p2p_forget(ss_chat_conn *c);
static void roffers_drop(ss_chat_room *r, const char *nick);

static void leave_kr(ss_chat_room *r, struct chat_op *op)
{
    if (op->err < 0)
        return; /* the other nodes announce it when the lease expires */
    r->svc_online = op->res.n;
    char ts[32];
    ss_chat_format_ts(op->now, ts, sizeof ts);
    announce(r, NULL, "LEAVE %s %s %d", ts, op->nick, op->res.n);
}

static void leave(ss_chat_conn *c, int64_t now)
{
    ss_chat_room *r = c->room;
    if (!c->named)
        return;
    nick_unindex(c);
    c->named = false;
    mem_del(c);
    r->online--;
    touch(r, c->nick, now);
    forget_unregistered(c);
    roffers_drop(r, c->nick);
    c->off_more = false;
    if (cluster(r)) {
        /* The nick is free once released; LEAVE says how many are left. */
        struct chat_op *op = op_alloc(NULL, NULL, now, NULL);
        if (!op)
            return;
        op->r = r;
        op->kr = leave_kr;
        snprintf(op->nick, sizeof op->nick, "%s", c->nick);
        OP_CALL(r, op, release, c->nick, &op->res);
        return;
    }
    char ts[32];
    ss_chat_format_ts(now, ts, sizeof ts);
    announce(r, c, "LEAVE %s %s %d", ts, c->nick, r->online);
}

void ss_chat_disconnect(ss_chat_conn *c, int64_t now_ms)
{
    ss_chat_room *r = c->room;
    leave(c, now_ms);
    upload_abort(c);
    if (c->p2p)
        p2p_forget(c);
    if (c->kdf)
        c->kdf->c = NULL; /* the job finishes elsewhere and is only freed */
    if (c->op)
        c->op->c = NULL; /* likewise a store operation */
    if (c->off_op)
        c->off_op->c = NULL;
    if (c->dl_op)
        c->dl_op->c = NULL;
    free(c->away);
    mem_del(c);
    r->n_conns--;
    if (c->prev)
        c->prev->next = c->next;
    else
        r->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->part);
    free(c);
}

/* ---- joining ----------------------------------------------------------- */

static void send_hist(void *arg, int64_t ts, const char *nick, int kind,
                      const char *text)
{
    ss_chat_conn *c = op_conn(arg);
    if (!c)
        return;
    char t[32];
    ss_chat_format_ts(ts, t, sizeof t);
    say(c, "HIST %s %s %s %s", t, kind == SS__CHAT_KIND_ME ? "ME" : "MSG", nick, text);
}

static void send_offline(void *arg, int64_t ts, const char *from, const char *text)
{
    ss_chat_conn *c = op_conn(arg);
    if (!c || c->dead)
        return;
    char t[32];
    ss_chat_format_ts(ts, t, sizeof t);
    say(c, "OFFLINE %s %s %s", t, from, text);
}

static void send_offer(void *arg, const struct ss__chat_file *f)
{
    say(arg, "OFFER %lld %s %llu %s %s", (long long)f->id, f->sender,
        (unsigned long long)f->size, f->sha256, f->name);
}

static void offline_page(ss_chat_conn *c);

/* A page was read (and its lines queued): go on while there is room. */
static void offline_page_k(ss_chat_conn *c, struct chat_op *op)
{
    if (strcmp(op->nick, c->nick)) {
        /* c changed its nick while this page of the old one's was read
         * (take_nick): its rows are not c's to delete now; go on with
         * whatever the new nick has (deliver_waiting_k). */
        offline_page(c);
        return;
    }
    if (op->err < 0 || op->res.n <= 0 || c->dead) {
        c->off_more = false;
    } else {
        snprintf(c->off_queued, sizeof c->off_queued, "%s", op->res.last);
        c->off_fresh = true;
        if (op->res.n < op->page)
            c->off_more = false;
    }
    offline_page(c);
}

/* The next page of c's offline messages if its queue has room for it;
 * when there is nothing more to send now, what was queued since the last
 * delete may be deleted at the next drain (rows already deleted are not
 * deleted again: a drain with nothing new to delete costs nothing). */
static void offline_page(ss_chat_conn *c)
{
    ss_chat_room *r = c->room;
    /* Rows that surely fit: "OFFLINE ts nick text\n" is at most this. */
    size_t row = r->o.max_line + 96;
    size_t rows = c->off_more && !c->dead ? r->io.space(c->io) / row : 0;
    if (rows == 0) {
        /* Deleted at the next drain, once these lines have left the queue;
         * only rows queued since the last delete. */
        if (c->off_fresh) {
            snprintf(c->off_sent, sizeof c->off_sent, "%s", c->off_queued);
            c->off_fresh = false;
        }
        return;
    }
    struct chat_op *op = op_alloc(c, offline_page_k, 0, NULL);
    if (!op) {
        c->off_more = false;
        return;
    }
    op->page = rows < SS_CHAT_OFFLINE_PAGE ? (int)rows : SS_CHAT_OFFLINE_PAGE;
    snprintf(op->nick, sizeof op->nick, "%s", c->nick);
    c->off_op = op;
    OP_CALL(r, op, off_page, c->nick, c->off_queued, op->page, send_offline, op, &op->res);
}

/* Send the next pages of c's offline messages while its queue has room;
 * rows of pages sent before are deleted first (they left the queue). */
static void offline_pump(ss_chat_conn *c)
{
    ss_chat_room *r = c->room;
    if (c->off_op)
        return; /* a page is being read; it goes on by itself */
    if (c->off_sent[0]) {
        r->be->ops->off_delete(r->be, c->nick, c->off_sent, NULL, NULL);
        c->off_sent[0] = '\0';
    }
    offline_page(c);
}

static void deliver_waiting_k(ss_chat_conn *c, struct chat_op *op)
{
    ss_chat_room *r = c->room;
    if (op->err < 0 || strcmp(op->nick, c->nick))
        return;
    if (!op->res.u.registered) {
        /* Left by an earlier holder of an unregistered nick: not c's. */
        forget_unregistered(c);
        return;
    }
    c->off_queued[0] = '\0';
    c->off_sent[0] = '\0';
    c->off_fresh = false;
    c->off_more = true;
    offline_pump(c);
    ss__chat_file_pending(r->st, c->nick, r->o.offers_max, send_offer, c);
}

/* What waits for c at join: offline messages (in pages) and file offers
 * (at most offers_max), only for a nick c owns. */
static void deliver_waiting(ss_chat_conn *c, int64_t now)
{
    struct chat_op *op = op_new(c, deliver_waiting_k, now, NULL);
    if (!op)
        return;
    snprintf(op->nick, sizeof op->nick, "%s", c->nick);
    OP_CALL(c->room, op, user_get, c->nick, &op->res);
}

static void join_hist_k(ss_chat_conn *c, struct chat_op *op) { deliver_waiting(c, op->now); }

/* c becomes `nick` (validated, free, and allowed); online: users online
 * after it in the whole service (< 0: this node's count). */
static void take_nick(ss_chat_conn *c, const char *nick, int64_t now, int online)
{
    ss_chat_room *r = c->room;
    char ts[32];
    ss_chat_format_ts(now, ts, sizeof ts);
    if (c->named) {
        char old[sizeof c->nick];
        snprintf(old, sizeof old, "%s", c->nick);
        touch(r, old, now);
        forget_unregistered(c);
        /* Offline rows of the old nick that were queued but not yet
         * deleted stay in the store (delivered again at its next login,
         * never lost): a delete at the next drain would run under the
         * new nick and take its rows. */
        c->off_sent[0] = '\0';
        c->off_queued[0] = '\0';
        c->off_fresh = false;
        c->off_more = false;
        nick_unindex(c);
        snprintf(c->nick, sizeof c->nick, "%s", nick);
        nick_index(c);
        touch(r, nick, now);
        if (cluster(r) && strcasecmp(old, nick))
            r->be->ops->release(r->be, old, NULL, NULL, NULL);
        say(c, "OK nick %s %d", nick, online < 0 ? r->online : online);
        announce(r, c, "NICK %s %s %s", ts, old, nick);
        deliver_waiting(c, now);
        return;
    }
    snprintf(c->nick, sizeof c->nick, "%s", nick);
    touch(r, nick, now);
    c->named = true;
    mem_add(c);
    nick_index(c);
    r->online++;
    if (online < 0)
        online = r->online;
    say(c, "OK nick %s %d", nick, online);
    if (r->roomf.id)
        send_offer(c, &r->roomf);
    announce(r, c, "JOIN %s %s %d", ts, nick, online);
    int n = c->since > 0 ? r->o.history_max : r->o.join_history;
    if (n <= 0) {
        deliver_waiting(c, now);
        return;
    }
    struct chat_op *op = op_new(c, join_hist_k, now, NULL);
    if (!op)
        return;
    OP_CALL(r, op, hist_range, n, c->since > 0 ? c->since : -1, -1, send_hist, op, &op->res);
}

/* ---- commands ---------------------------------------------------------- */

/* Split the first word off *rest: returns it NUL-terminated, *rest after
 * the following spaces; NULL when there is none. */
static char *word(char **rest)
{
    char *s = *rest;
    while (*s == ' ')
        s++;
    if (!*s)
        return NULL;
    char *w = s;
    while (*s && *s != ' ')
        s++;
    if (*s)
        *s++ = '\0';
    while (*s == ' ')
        s++;
    *rest = s;
    return w;
}

static bool need_nick(ss_chat_conn *c)
{
    if (c->named)
        return true;
    say(c, "ERR nonick choose a nickname first: /nick NAME");
    return false;
}

/* The claim of a nick came back with nobody (no connection) to take it. */
static void claim_gone_kr(ss_chat_room *r, struct chat_op *op)
{
    if (!op->err)
        r->be->ops->release(r->be, op->nick, NULL, NULL, NULL);
}

static void claim_k(ss_chat_conn *c, struct chat_op *op)
{
    if (op->err == -EEXIST) {
        say(c, "ERR nicktaken %s is online", op->nick);
        return;
    }
    if (op->err < 0) {
        store_err(c, op->err, "nickname not taken");
        return;
    }
    if (op->kind == KDF_CHECK) { /* a /login */
        c->authed = true;
        say(c, "OK login %s", op->nick);
    } else if (!(c->authed && !strcasecmp(c->nick, op->nick))) {
        c->authed = false;
    }
    c->room->svc_online = op->res.n;
    take_nick(c, op->nick, op->now, op->res.n);
}

/* c may take nick: in a cluster once this node holds it (SET NX), else
 * now. kind: KDF_CHECK for a /login (its OK comes with the nick). */
static void claim_nick(ss_chat_conn *c, const char *nick, int kind, int64_t now)
{
    ss_chat_room *r = c->room;
    if (!cluster(r) || (c->named && !strcasecmp(c->nick, nick))) {
        if (kind == KDF_CHECK) {
            c->authed = true;
            say(c, "OK login %s", nick);
        } else if (!(c->authed && !strcasecmp(c->nick, nick))) {
            c->authed = false;
        }
        take_nick(c, nick, now, -1);
        return;
    }
    struct chat_op *op = op_new(c, claim_k, now, NULL);
    if (!op)
        return;
    op->kr = claim_gone_kr;
    op->kind = kind;
    snprintf(op->nick, sizeof op->nick, "%s", nick);
    OP_CALL(r, op, claim, nick, &op->res);
}

static void nick_k(ss_chat_conn *c, struct chat_op *op)
{
    const char *nick = op->nick;
    ss_chat_conn *other = find_online(c->room, nick);
    if (other && other != c) { /* taken while the store answered */
        say(c, "ERR nicktaken %s is online", nick);
        return;
    }
    if (op->err < 0) {
        store_err(c, op->err, "the store failed");
        return;
    }
    bool own = c->authed && !strcasecmp(c->nick, nick);
    if (op->res.u.registered && !own) {
        say(c, "ERR registered %s is registered: /login %s PASSWORD", nick, nick);
        return;
    }
    claim_nick(c, nick, KDF_HASH, op->now);
}

static void cmd_nick(ss_chat_conn *c, char *args, int64_t now)
{
    ss_chat_room *r = c->room;
    char *nick = word(&args);
    if (!nick || *args) {
        say(c, "ERR usage /nick NAME");
        return;
    }
    if (!ss_chat_nick_valid(nick)) {
        say(c, "ERR badnick a nickname is 1-%d letters, digits, '_' or '-', "
               "starting with a letter", SS_CHAT_NICK_MAX);
        return;
    }
    if (c->named && !strcmp(c->nick, nick)) {
        say(c, "OK nick %s %d", nick, online_count(r));
        return;
    }
    ss_chat_conn *other = find_online(r, nick);
    if (other && other != c) {
        say(c, "ERR nicktaken %s is online", nick);
        return;
    }
    struct chat_op *op = op_new(c, nick_k, now, NULL);
    if (!op)
        return;
    snprintf(op->nick, sizeof op->nick, "%s", nick);
    OP_CALL(r, op, user_get, nick, &op->res);
}

/* ---- the failed-login throttle ------------------------------------------ */

static uint64_t thr_key(const ss_chat_room *r, const char *s)
{
    uint64_t h = 1469598103934665603ull ^ r->thr_seed; /* FNV-1a, seeded */
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = (h ^ (uint64_t)tolower(*p)) * 1099511628211ull;
    return h | 1; /* 0 marks a free slot */
}

/* The slot for key: found, else a free or the least useful one (probes 8;
 * an entry still delaying someone is evicted last). */
static struct thr_slot *thr_slot(struct thr_slot *tab, uint64_t key, int64_t now)
{
    struct thr_slot *best = NULL;
    for (int i = 0; i < 8; i++) {
        struct thr_slot *e = &tab[(key + (uint64_t)i) & (SS_CHAT_THROTTLE_SLOTS - 1)];
        if (e->key == key)
            return e;
        if (!best || (e->next_ok <= now && best->next_ok > now) ||
            (((e->next_ok <= now) == (best->next_ok <= now)) && e->last < best->last))
            best = e;
    }
    *best = (struct thr_slot){.key = key};
    return best;
}

/* ms until c may try to log in to nick again (0: now). */
static int64_t thr_wait(ss_chat_conn *c, const char *nick, int64_t now)
{
    ss_chat_room *r = c->room;
    int64_t a = thr_slot(r->thr_nick, thr_key(r, nick), now)->next_ok - now;
    int64_t b = c->addr[0] ? thr_slot(r->thr_addr, thr_key(r, c->addr), now)->next_ok - now : 0;
    int64_t w = a > b ? a : b;
    return w > 0 ? w : 0;
}

static void thr_note(ss_chat_room *r, struct thr_slot *e, bool ok, int64_t now)
{
    e->last = now;
    if (ok) {
        e->fails = 0;
        e->next_ok = 0;
        return;
    }
    e->fails++;
    if (e->fails >= r->o.login_free) {
        int shift = e->fails - r->o.login_free;
        int64_t d = shift >= 16 ? r->o.login_delay_max_ms : 1000ll << shift;
        e->next_ok = now + (d < r->o.login_delay_max_ms ? d : r->o.login_delay_max_ms);
    }
}

static void thr_result(ss_chat_conn *c, const char *nick, bool ok, int64_t now)
{
    ss_chat_room *r = c->room;
    thr_note(r, thr_slot(r->thr_nick, thr_key(r, nick), now), ok, now);
    if (c->addr[0])
        thr_note(r, thr_slot(r->thr_addr, thr_key(r, c->addr), now), ok, now);
}

void ss_chat_conn_set_addr(ss_chat_conn *c, const char *addr)
{
    snprintf(c->addr, sizeof c->addr, "%s", addr ? addr : "");
}

void ss_chat_conn_set_peer(ss_chat_conn *c, const char *peer)
{
    snprintf(c->peer, sizeof c->peer, "%s", peer ? peer : "");
}

bool ss_chat_relayed(const ss_chat_conn *c) { return c->relayed; }

/* ---- password hashing, off the loop when the io can ---------------------- */

void ss_chat_kdf_run(ss_chat_kdf *j)
{
    if (PKCS5_PBKDF2_HMAC(j->pw, (int)strlen(j->pw), j->salt, 16, j->iter, EVP_sha256(),
                          32, j->out) != 1) {
        j->ok = false;
        return;
    }
    j->ok = j->kind == KDF_HASH || (j->known && CRYPTO_memcmp(j->out, j->hash, 32) == 0);
}

static ss_chat_kdf *kdf_new(ss_chat_conn *c, int kind, const char *nick, const char *pw)
{
    size_t n = strlen(pw);
    ss_chat_kdf *j = calloc(1, sizeof *j + n + 1);
    if (!j)
        return NULL;
    j->c = c;
    j->kind = kind;
    snprintf(j->nick, sizeof j->nick, "%s", nick);
    memcpy(j->pw, pw, n + 1);
    return j;
}

static void kdf_finish(ss_chat_kdf *j, int64_t now);

/* Run j: on the io's worker (c waits, ss_chat_busy) or inline. */
static void kdf_start(ss_chat_conn *c, ss_chat_kdf *j, int64_t now)
{
    if (c->room->io.kdf) {
        c->kdf = j;
        if (c->room->io.kdf(c->io, j) == 0)
            return;
        c->kdf = NULL;
        OPENSSL_cleanse(j->pw, strlen(j->pw));
        free(j);
        say(c, "ERR busy the server is busy checking passwords; try again");
        return;
    }
    ss_chat_kdf_run(j);
    kdf_finish(j, now);
}

static void login_done(ss_chat_conn *c, ss_chat_kdf *j, int64_t now)
{
    ss_chat_room *r = c->room;
    thr_result(c, j->nick, j->ok, now);
    if (!j->ok) {
        /* One answer for unknown nick and wrong password: no nick probing. */
        say(c, "ERR auth wrong nickname or password");
        return;
    }
    ss_chat_conn *other = find_online(r, j->nick);
    if (other && other != c) {
        say(c, "ERR nicktaken %s is online", j->nick);
        return;
    }
    if (c->named && !strcmp(c->nick, j->nick)) {
        c->authed = true;
        say(c, "OK login %s", j->nick);
        return;
    }
    claim_nick(c, j->nick, KDF_CHECK, now);
}

static void register_stored_k(ss_chat_conn *c, struct chat_op *op)
{
    if (op->err < 0) {
        store_err(c, op->err, "could not store the password");
        return;
    }
    c->authed = true;
    say(c, "OK register %s", op->nick);
}

static void register_check_k(ss_chat_conn *c, struct chat_op *op)
{
    /* c may have changed nick while the hash ran; and someone else may
     * have registered it meanwhile. */
    if (op->err < 0 || !c->named || strcmp(c->nick, op->nick) ||
        (op->res.u.registered && !c->authed)) {
        say(c, "ERR store could not store the password");
        return;
    }
    struct chat_op *st = op_new(c, register_stored_k, op->now, NULL);
    if (!st)
        return;
    snprintf(st->nick, sizeof st->nick, "%s", op->nick);
    OP_CALL(c->room, st, user_register, op->nick, op->iter, op->salt, op->hash);
}

static void register_done(ss_chat_conn *c, ss_chat_kdf *j, int64_t now)
{
    if (!j->ok) {
        say(c, "ERR store could not store the password");
        return;
    }
    struct chat_op *op = op_new(c, register_check_k, now, NULL);
    if (!op)
        return;
    snprintf(op->nick, sizeof op->nick, "%s", j->nick);
    op->iter = j->iter;
    memcpy(op->salt, j->salt, 16);
    memcpy(op->hash, j->out, 32);
    OP_CALL(c->room, op, user_get, j->nick, &op->res);
}

static void kdf_finish(ss_chat_kdf *j, int64_t now)
{
    ss_chat_conn *c = j->c;
    if (c) {
        c->kdf = NULL;
        if (j->kind == KDF_CHECK)
            login_done(c, j, now);
        else
            register_done(c, j, now);
    }
    OPENSSL_cleanse(j->pw, strlen(j->pw));
    free(j);
}

void ss_chat_kdf_done(ss_chat_kdf *job, int64_t now_ms) { kdf_finish(job, now_ms); }

void *ss_chat_kdf_conn(const ss_chat_kdf *job) { return job->c ? job->c->io : NULL; }

bool ss_chat_busy(const ss_chat_conn *c) { return c->kdf || c->op; }

static void login_k(ss_chat_conn *c, struct chat_op *op)
{
    ss_chat_room *r = c->room;
    const struct ss__chat_user *u = &op->res.u;
    ss_chat_kdf *j = op->err < 0 ? NULL : kdf_new(c, KDF_CHECK, op->nick, op->text);
    OPENSSL_cleanse(op->text, strlen(op->text));
    if (op->err < 0) {
        store_err(c, op->err, "the store failed");
        return;
    }
    if (!j) {
        say(c, "ERR store out of memory");
        return;
    }
    /* An unknown nick costs one full hash too, against a stand-in record:
     * the answer and its time are the same as for a wrong password. */
    j->known = u->registered;
    j->iter = u->registered ? u->iter : r->o.pbkdf2_iter;
    memcpy(j->salt, u->registered ? u->salt : r->dummy_salt, 16);
    memcpy(j->hash, u->registered ? u->hash : r->dummy_hash, 32);
    kdf_start(c, j, op->now);
}

static void cmd_login(ss_chat_conn *c, char *args, int64_t now)
{
    ss_chat_room *r = c->room;
    char *nick = word(&args);
    char *pw = word(&args);
    if (!nick || !pw || *args) {
        say(c, "ERR usage /login NICK PASSWORD");
        return;
    }
    if (!ss_chat_nick_valid(nick)) {
        say(c, "ERR auth wrong nickname or password");
        return;
    }
    int64_t wait = thr_wait(c, nick, now);
    if (wait > 0) {
        say(c, "ERR throttled too many failed logins; try again in %lld s",
            (long long)(wait + 999) / 1000);
        return;
    }
    struct chat_op *op = op_new(c, login_k, now, pw);
    if (!op)
        return;
    snprintf(op->nick, sizeof op->nick, "%s", nick);
    OP_CALL(r, op, user_get, nick, &op->res);
}

static void register_k(ss_chat_conn *c, struct chat_op *op)
{
    ss_chat_room *r = c->room;
    const char *nick = op->nick;
    ss_chat_kdf *j = NULL;
    if (op->err < 0)
        store_err(c, op->err, "the store failed");
    else if (op->res.u.registered && !c->authed)
        say(c, "ERR registered %s is registered: /login %s PASSWORD", nick, nick);
    else if (!(j = kdf_new(c, KDF_HASH, nick, op->text)) || RAND_bytes(j->salt, 16) != 1) {
        free(j);
        j = NULL;
        say(c, "ERR store could not store the password");
    }
    OPENSSL_cleanse(op->text, strlen(op->text));
    if (!j)
        return;
    j->iter = r->o.pbkdf2_iter;
    kdf_start(c, j, op->now);
}

static void cmd_register(ss_chat_conn *c, char *args, int64_t now)
{
    ss_chat_room *r = c->room;
    if (!need_nick(c))
        return;
    char *pw = word(&args);
    if (!pw || *args || strlen(pw) < 4) {
        say(c, "ERR usage /register PASSWORD (4 or more characters, no spaces)");
        return;
    }
    struct chat_op *op = op_new(c, register_k, now, pw);
    if (!op)
        return;
    snprintf(op->nick, sizeof op->nick, "%s", c->nick);
    OP_CALL(r, op, user_get, c->nick, &op->res);
}

/* May things be stored for offline `nick` (its record in u)? Says why not
 * to c. */
static bool storable_for(ss_chat_conn *c, const char *nick, int err,
                         const struct ss__chat_user *u)
{
    if (err < 0 || !u->exists) {
        say(c, "ERR nouser no user %s", nick);
        return false;
    }
    if (!u->registered) {
        say(c, "ERR notregistered %s is not registered; nothing stored", nick);
        return false;
    }
    return true;
}

static void msg_stored_k(ss_chat_conn *c, struct chat_op *op)
{
    if (op->err == -ENOSPC)
        say(c, "ERR full %s has %d messages waiting; not stored", op->nick,
            c->room->o.offline_max);
    else if (op->err < 0)
        store_err(c, op->err, "message not stored");
    else
        say(c, "OK msg %s stored", op->nick);
}

static void msg_offline_k(ss_chat_conn *c, struct chat_op *op)
{
    ss_chat_room *r = c->room;
    ss_chat_conn *to = find_online(r, op->nick);
    if (to) { /* came online while the store answered */
        char ts[32];
        ss_chat_format_ts(op->now, ts, sizeof ts);
        say(to, "PRIV %s %s %s", ts, c->nick, op->text);
        say(c, "OK msg %s", to->nick);
        return;
    }
    if (!storable_for(c, op->nick, op->err, &op->res.u))
        return;
    struct chat_op *st = op_new(c, msg_stored_k, op->now, NULL);
    if (!st)
        return;
    snprintf(st->nick, sizeof st->nick, "%s", op->nick);
    OP_CALL(r, st, off_add, op->now, c->nick, op->nick, op->text, r->o.offline_max,
            &st->res);
}

/* /msg to nick, not online here: stored if nick may keep mail. */
static void msg_offline(ss_chat_conn *c, const char *nick, const char *text, int64_t now)
{
    struct chat_op *op = op_new(c, msg_offline_k, now, text);
    if (!op)
        return;
    snprintf(op->nick, sizeof op->nick, "%s", nick);
    OP_CALL(c->room, op, user_get, nick, &op->res);
}

static void msg_remote_k(ss_chat_conn *c, struct chat_op *op)
{
    if (op->err < 0) {
        store_err(c, op->err, "message not sent");
        return;
    }
    if (op->res.found) {
        say(c, "OK msg %s", op->nick);
        return;
    }
    msg_offline(c, op->nick, op->text, op->now);
}

static void cmd_msg(ss_chat_conn *c, char *args, int64_t now)
{
    ss_chat_room *r = c->room;
    if (!need_nick(c))
        return;
    char *nick = word(&args);
    if (!nick || !*args) {
        say(c, "ERR usage /msg NICK TEXT");
        return;
    }
    char ts[32];
    ss_chat_format_ts(now, ts, sizeof ts);
    ss_chat_conn *to = find_online(r, nick);
    if (to) {
        say(to, "PRIV %s %s %s", ts, c->nick, args);
        say(c, "OK msg %s", to->nick);
        return;
    }
    if (!ss_chat_nick_valid(nick)) {
        say(c, "ERR nouser no user %s", nick);
        return;
    }
    if (cluster(r)) {
        /* Online on another node? Published to that node's channel. */
        struct chat_op *op = op_new(c, msg_remote_k, now, args);
        if (!op)
            return;
        snprintf(op->nick, sizeof op->nick, "%s", nick);
        size_t len = fmt_line(r, "PRIV %s %s %s", ts, c->nick, args);
        OP_CALL(r, op, direct, nick, r->out, len, &op->res);
        return;
    }
    msg_offline(c, nick, args, now);
}

static void who_row(void *arg, const char *nick, int64_t last_seen)
{
    struct chat_op *op = arg;
    ss_chat_conn *c = op->c;
    if (!c || find_online(c->room, nick))
        return;
    char ts[32];
    ss_chat_format_ts(last_seen, ts, sizeof ts);
    say(c, "WHO %s offline %s", nick, ts);
    op->listed++;
}

static void who_k(ss_chat_conn *c, struct chat_op *op)
{
    if (op->err < 0)
        store_err(c, op->err, "no list");
    else
        say(c, "OK who %d %d", op->online, op->listed);
}

static void who_any_row(void *arg, const char *nick, bool online, const char *away,
                        int64_t last_seen)
{
    struct chat_op *op = arg;
    ss_chat_conn *c = op->c;
    if (!c)
        return;
    if (online) {
        say(c, "WHO %s online%s%s", nick, away ? " away " : "", away ? away : "");
        op->online++;
        return;
    }
    char ts[32];
    ss_chat_format_ts(last_seen, ts, sizeof ts);
    say(c, "WHO %s offline %s", nick, ts);
    op->listed++;
}

static void cmd_who(ss_chat_conn *c, char *args, int64_t now)
{
    ss_chat_room *r = c->room;
    if (cluster(r)) {
        struct chat_op *op = op_new(c, who_k, now, NULL);
        if (op)
            OP_CALL(r, op, who, r->o.who_max, who_any_row, op, &op->res);
        return;
    }
    int online = 0;
    for (ss_chat_conn *o = r->conns; o; o = o->next)
        if (o->named && !o->dead) {
            say(c, "WHO %s online%s%s", o->nick, o->away ? " away " : "",
                o->away ? o->away : "");
            online++;
        }
    struct chat_op *op = op_new(c, who_k, now, NULL);
    if (!op)
        return;
    op->online = online;
    OP_CALL(r, op, users_list, r->o.who_max + online, who_row, op, &op->res);
}

static void history_k(ss_chat_conn *c, struct chat_op *op)
{
    if (op->err < 0)
        store_err(c, op->err, "no history");
    else
        say(c, "OK history %d", op->res.n);
}

static void cmd_history(ss_chat_conn *c, char *args, int64_t now)
{
    ss_chat_room *r = c->room;
    char *a = word(&args), *b = word(&args);
    long n = 20;
    int64_t before = -1;
    if (a) {
        char *end;
        n = strtol(a, &end, 10);
        if (*end || n < 1 || n > r->o.history_max || *args ||
            (b && (before = ss_chat_parse_ts(b)) < 0)) {
            say(c, "ERR usage /history [N [TIMESTAMP]], N from 1 to %d", r->o.history_max);
            return;
        }
    }
    struct chat_op *op = op_new(c, history_k, now, NULL);
    if (!op)
        return;
    OP_CALL(r, op, hist_range, (int)n, -1, before, send_hist, op, &op->res);
}

/* /since TS (before /nick): the join history is every message from TS on
 * (up to history_max), so a reconnecting client continues where it was. */
static void cmd_since(ss_chat_conn *c, char *args, int64_t now)
{
    char *a = word(&args);
    int64_t ms;
    if (!a || *args || (ms = ss_chat_parse_ts(a)) < 0) {
        say(c, "ERR usage /since TIMESTAMP (as in MSG lines, before /nick)");
        return;
    }
    c->since = ms;
    say(c, "OK since");
}

static void publish_k(ss_chat_conn *c, struct chat_op *op)
{
    if (op->err < 0) {
        store_err(c, op->err, "message not stored");
        return;
    }
    /* The two lines of every public message, put together by hand:
     * vsnprintf was a tenth of the server's own time at 100 clients. */
    ss_chat_room *r = c->room;
    size_t idn = strlen(op->res.id);
    memcpy(r->out, "OK sent ", 8);
    memcpy(r->out + 8, op->res.id, idn);
    r->out[8 + idn] = '\n';
    route_conn(c, r->out, 8 + idn + 1);
    char ts[32];
    ss_chat_format_ts(op->now, ts, sizeof ts);
    size_t tsn = strlen(ts), nn = strlen(c->nick), tn = strlen(op->text);
    size_t kn = op->kind == SS__CHAT_KIND_ME ? 2 : 3;
    if (kn + tsn + nn + tn + 4 > r->out_cap - 1) { /* vfmt would cut it short */
        broadcast(r, c, "%s %s %s %s", kn == 2 ? "ME" : "MSG", ts, c->nick, op->text);
        return;
    }
    char *o = r->out;
    memcpy(o, kn == 2 ? "ME " : "MSG ", kn + 1);
    o += kn + 1;
    memcpy(o, ts, tsn);
    o += tsn;
    *o++ = ' ';
    memcpy(o, c->nick, nn);
    o += nn;
    *o++ = ' ';
    memcpy(o, op->text, tn);
    o += tn;
    *o++ = '\n';
    broadcast_out(r, c, false, (size_t)(o - r->out));
}

/* A public message or action: stored, then acknowledged, then fanned out. */
static void publish(ss_chat_conn *c, int kind, const char *text, int64_t now)
{
    ss_chat_room *r = c->room;
    if (!need_nick(c))
        return;
    struct chat_op *op = op_new(c, publish_k, now, text);
    if (!op)
        return;
    op->kind = kind;
    OP_CALL(r, op, hist_add, now, c->nick, kind, text, &op->res);
}

static void notice_remote_k(ss_chat_conn *c, struct chat_op *op)
{
    if (op->err < 0)
        store_err(c, op->err, "notice not sent");
    else if (!op->res.found)
        say(c, "ERR nouser %s is not online", op->nick);
    else
        say(c, "OK notice %s", op->nick);
}

/* /notice NICK TEXT: to an online user only, never stored, and (as IRC
 * asks of notices) nothing automatic answers it. */
static void cmd_notice(ss_chat_conn *c, char *args, int64_t now)
{
    if (!need_nick(c))
        return;
    char *nick = word(&args);
    if (!nick || !*args) {
        say(c, "ERR usage /notice NICK TEXT");
        return;
    }
    ss_chat_conn *to = find_online(c->room, nick);
    char ts[32];
    ss_chat_format_ts(now, ts, sizeof ts);
    if (!to && cluster(c->room) && ss_chat_nick_valid(nick)) {
        struct chat_op *op = op_new(c, notice_remote_k, now, NULL);
        if (!op)
            return;
        snprintf(op->nick, sizeof op->nick, "%s", nick);
        size_t len = fmt_line(c->room, "NOTICE %s %s %s", ts, c->nick, args);
        OP_CALL(c->room, op, direct, nick, c->room->out, len, &op->res);
        return;
    }
    if (!to) {
        say(c, "ERR nouser %s is not online", nick);
        return;
    }
    say(to, "NOTICE %s %s %s", ts, c->nick, args);
    say(c, "OK notice %s", to->nick);
}

/* /away TEXT marks c away (shown by /who, announced as a presence event);
 * /away alone: back. */
static void cmd_away(ss_chat_conn *c, char *args, int64_t now)
{
    ss_chat_room *r = c->room;
    if (!need_nick(c))
        return;
    char ts[32];
    ss_chat_format_ts(now, ts, sizeof ts);
    free(c->away);
    c->away = NULL;
    if (cluster(r))
        r->be->ops->set_away(r->be, c->nick, *args ? args : NULL, NULL, NULL);
    if (!*args) {
        say(c, "OK back");
        announce(r, c, "BACK %s %s", ts, c->nick);
        return;
    }
    c->away = strdup(args);
    if (!c->away) {
        say(c, "ERR store out of memory");
        return;
    }
    say(c, "OK away");
    announce(r, c, "AWAY %s %s %s", ts, c->nick, args);
}

static void topic_get_k(ss_chat_conn *c, struct chat_op *op)
{
    if (op->err < 0) {
        store_err(c, op->err, "the store failed");
        return;
    }
    if (op->res.found)
        say(c, "TOPIC %s", op->res.v);
    say(c, "OK topic");
}

static void topic_set_k(ss_chat_conn *c, struct chat_op *op)
{
    if (op->err < 0) {
        store_err(c, op->err, "topic not stored");
        return;
    }
    broadcast(c->room, NULL, "TOPIC %s", op->text);
    say(c, "OK topic set");
}

/* /topic: "TOPIC TS NICK TEXT" (if set) and "OK topic"; /topic TEXT sets
 * it (stored) and everyone, c too, gets the TOPIC line. */
static void cmd_topic(ss_chat_conn *c, char *args, int64_t now)
{
    ss_chat_room *r = c->room;
    char v[SS_CHAT_TOPIC_MAX + 96];
    if (!*args) {
        struct chat_op *op = op_new(c, topic_get_k, now, NULL);
        if (op)
            OP_CALL(r, op, meta_get, "topic", &op->res);
        return;
    }
    if (!need_nick(c))
        return;
    if (strlen(args) > SS_CHAT_TOPIC_MAX) {
        say(c, "ERR toolong topics are limited to %d bytes", SS_CHAT_TOPIC_MAX);
        return;
    }
    char ts[32];
    ss_chat_format_ts(now, ts, sizeof ts);
    snprintf(v, sizeof v, "%s %s %s", ts, c->nick, args);
    struct chat_op *op = op_new(c, topic_set_k, now, v);
    if (op)
        OP_CALL(r, op, meta_set, "topic", v);
}

static const char *const help_lines[] = {
    "/nick NAME            choose or change your nickname",
    "/msg NICK TEXT        private message (stored if NICK is offline)",
    "/who                  online users, and offline users with last-seen time",
    "/history [N [TS]]     the last N public messages (default 20), before TS",
    "/notice NICK TEXT     a notice to an online user (never stored or answered)",
    "/away [TEXT]          mark yourself away (no TEXT: back)",
    "/topic [TEXT]         show or set the room's topic",
    "/since TIMESTAMP      (before /nick) join history from that time on",
    "/me ACTION            an action (\"* alice waves\")",
    "/register PASSWORD    protect your nickname",
    "/login NICK PASSWORD  take your registered nickname",
    "/send NICK PATH       send a file (the sockstack chat client does this)",
    "/accept ID            accept a file offer; /decline ID refuses it",
    "/connect NICK         a point-to-point connection with NICK (our client)",
    "/quit                 leave",
    "anything else         a public message (start it with // to begin with /)",
};

static void cmd_help(ss_chat_conn *c, char *args, int64_t now)
{
    for (size_t i = 0; i < sizeof help_lines / sizeof help_lines[0]; i++)
        say(c, "INFO %s", help_lines[i]);
    say(c, "OK help");
}

static void cmd_quit(ss_chat_conn *c, char *args, int64_t now)
{
    say(c, "BYE see you");
    leave(c, now);
    if (!c->dead)
        c->room->io.close(c->io);
    conn_dead(c);
}

/* ---- files ------------------------------------------------------------- */

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno)
        return false;
    *out = v;
    return true;
}

static bool hex64(const char *s)
{
    if (strlen(s) != 64)
        return false;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static void offer_store(ss_chat_conn *c, const char *rcpt, uint64_t size, const char *sha,
                        const char *name, int64_t now);

/* "NICK SIZE SHA256 NAME" of an /offer checked already. */
static void offer_k(ss_chat_conn *c, struct chat_op *op)
{
    char *args = op->text;
    char *nick = word(&args), *size_s = word(&args), *sha = word(&args);
    uint64_t size = strtoull(size_s, NULL, 10);
    ss_chat_conn *to = find_online(c->room, nick);
    if (!to && !storable_for(c, nick, op->err, &op->res.u))
        return;
    offer_store(c, to ? to->nick : nick, size, sha, args, op->now);
}

static void offer_remote_k(ss_chat_conn *c, struct chat_op *op);

static void cmd_offer(ss_chat_conn *c, char *args, int64_t now)
{
    ss_chat_room *r = c->room;
    if (!need_nick(c))
        return;
    char all[SS_CHAT_MAX_LINE + 1];
    snprintf(all, sizeof all, "%s", args);
    char *nick = word(&args), *size_s = word(&args), *sha = word(&args);
    const char *name = args;
    uint64_t size;
    /* SHA256 "-": the server computes it (a file it relays from IRC DCC,
     * whose digest nobody knows up front). */
    bool computed = sha && !strcmp(sha, "-");
    if (!nick || !parse_u64(size_s, &size) || !sha || (!hex64(sha) && !computed) || !*name ||
        strlen(name) > 255 || strchr(name, '/') || !strcmp(name, ".") ||
        !strcmp(name, "..")) {
        say(c, "ERR usage /offer NICK SIZE SHA256 NAME (NAME without '/')");
        return;
    }
    if (c->up_id) {
        say(c, "ERR busy finish upload %lld first", (long long)c->up_id);
        return;
    }
    if (size > r->o.file_max) {
        say(c, "ERR toobig files are limited to %llu bytes",
            (unsigned long long)r->o.file_max);
        return;
    }
    ss_chat_conn *to = find_online(r, nick);
    if (to) {
        offer_store(c, to->nick, size, sha, name, now);
        return;
    }
    if (!ss_chat_nick_valid(nick)) {
        say(c, "ERR nouser no user %s", nick);
        return;
    }
    if (cluster(r)) {
        /* Online on another node? Its node says, and whether it has room. */
        struct chat_op *op = op_new(c, offer_remote_k, now, all);
        if (op) {
            snprintf(op->nick, sizeof op->nick, "%s", nick);
            OP_CALL(r, op, ask, NULL, nick, "foffer", &op->res);
        }
        return;
    }
    struct chat_op *op = op_new(c, offer_k, now, all);
    if (op)
        OP_CALL(r, op, user_get, nick, &op->res);
}

/* The offer, its recipient known (online, or registered and offline). */
static void offer_store(ss_chat_conn *c, const char *rcpt, uint64_t size, const char *sha,
                        const char *name, int64_t now)
{
    ss_chat_room *r = c->room;
    if (ss__chat_file_count(r->st, rcpt, NULL) >= r->o.offers_max) {
        say(c, "ERR quota %s has %d offers waiting", rcpt, r->o.offers_max);
        return;
    }
    if (ss__chat_file_count(r->st, NULL, c->nick) >= r->o.offers_max) {
        say(c, "ERR quota you have %d offers waiting to be accepted", r->o.offers_max);
        return;
    }
    uint64_t pending;
    if (ss__chat_file_pending_bytes(r->st, rcpt, &pending) < 0) {
        say(c, "ERR store the store failed");
        return;
    }
    if (pending + size > r->o.file_quota) {
        say(c, "ERR quota %s has %llu of %llu bytes of offers waiting", rcpt,
            (unsigned long long)pending, (unsigned long long)r->o.file_quota);
        return;
    }
    int64_t id = ss__chat_file_create(r->st, now, c->nick, rcpt, name, size, sha);
    if (id < 0) {
        say(c, "ERR store offer not stored");
        return;
    }
    c->up_md = EVP_MD_CTX_new();
    if (!c->up_md || !EVP_DigestInit_ex(c->up_md, EVP_sha256(), NULL)) {
        ss__chat_file_delete(r->st, id);
        EVP_MD_CTX_free(c->up_md);
        c->up_md = NULL;
        say(c, "ERR store out of memory");
        return;
    }
    c->up_id = id;
    c->up_off = 0;
    c->up_size = size;
    snprintf(c->up_sha, sizeof c->up_sha, "%s", sha);
    say(c, "OK offer %lld", (long long)id);
}

static void cmd_chunk(ss_chat_conn *c, char *args, int64_t now)
{
    ss_chat_room *r = c->room;
    char *id_s = word(&args), *off_s = word(&args), *b64 = word(&args);
    uint64_t id, off;
    if (!parse_u64(id_s, &id) || !parse_u64(off_s, &off) || !b64 || *args) {
        say(c, "ERR usage /chunk ID OFFSET BASE64");
        return;
    }
    if (!c->up_id || (int64_t)id != c->up_id) {
        say(c, "ERR nofile no upload %llu in progress", (unsigned long long)id);
        return;
    }
    size_t blen = strlen(b64);
    unsigned char raw[SS_CHAT_MAX_LINE];
    int n = -1;
    if (blen % 4 == 0 && blen / 4 * 3 <= sizeof raw)
        n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)blen);
    if (n >= 0) /* DecodeBlock counts the padding as zero bytes */
        n -= (blen > 0 && b64[blen - 1] == '=') + (blen > 1 && b64[blen - 2] == '=');
    if (n < 0 || off != c->up_off || off + (uint64_t)n > c->up_size) {
        say(c, "ERR chunk bad chunk for %lld at offset %llu (expected %llu); upload "
               "cancelled", (long long)c->up_id, (unsigned long long)off,
            (unsigned long long)c->up_off);
        upload_abort(c);
        return;
    }
    if (n > 0 && ss__chat_file_write(r->st, c->up_id, off, raw, (size_t)n) < 0) {
        say(c, "ERR store chunk not stored; upload cancelled");
        upload_abort(c);
        return;
    }
    EVP_DigestUpdate(c->up_md, raw, (size_t)n);
    c->up_off += (uint64_t)n;
}

static void upload_done_remote(ss_chat_conn *c, const struct ss__chat_file *f, int64_t now);

static void cmd_done(ss_chat_conn *c, char *args, int64_t now)
{
    ss_chat_room *r = c->room;
    char *id_s = word(&args);
    uint64_t id;
    if (!parse_u64(id_s, &id) || *args) {
        say(c, "ERR usage /done ID");
        return;
    }
    if (!c->up_id || (int64_t)id != c->up_id) {
        say(c, "ERR nofile no upload %llu in progress", (unsigned long long)id);
        return;
    }
    char hex[65];
    ss__chat_sha256_hex(c->up_md, hex);
    bool computed = !strcmp(c->up_sha, "-");
    if (c->up_off != c->up_size || (!computed && strcmp(hex, c->up_sha))) {
        say(c, "ERR digest file %llu: got %llu of %llu bytes, SHA-256 %s; discarded",
            (unsigned long long)id, (unsigned long long)c->up_off,
            (unsigned long long)c->up_size, hex);
        upload_abort(c);
        return;
    }
    EVP_MD_CTX_free(c->up_md);
    c->up_md = NULL;
    c->up_id = 0;
    struct ss__chat_file f;
    if ((computed ? ss__chat_file_complete_sha(r->st, (int64_t)id, hex)
                  : ss__chat_file_complete(r->st, (int64_t)id)) < 0 ||
        ss__chat_file_get(r->st, (int64_t)id, &f) < 0) {
        say(c, "ERR store file not stored");
        ss__chat_file_delete(r->st, (int64_t)id);
        return;
    }
    ss_chat_conn *to = find_online(r, f.recipient);
    if (!to && c->up_node[0]) {
        upload_done_remote(c, &f, now);
        return;
    }
    say(c, "OK upload %lld %s", (long long)f.id, to ? "offered" : "stored");
    if (to)
        send_offer(to, &f);
}

static void pump_remote(ss_chat_conn *c);

/* Send chunks of the current download while c's queue has room. */
static void pump(ss_chat_conn *c)
{
    ss_chat_room *r = c->room;
    if (c->dl_remote) {
        pump_remote(c);
        return;
    }
    /* One chunk line: "CHUNK id off " + base64 + '\n'. */
    size_t line = 64 + (SS_CHAT_CHUNK + 2) / 3 * 4;
    while (c->dl_id && !c->dead && r->io.space(c->io) >= 2 * line) {
        unsigned char raw[SS_CHAT_CHUNK];
        size_t n = c->dl_size - c->dl_off < SS_CHAT_CHUNK ? c->dl_size - c->dl_off
                                                           : SS_CHAT_CHUNK;
        if (n > 0) {
            if (ss__chat_file_read(r->st, c->dl_id, c->dl_off, raw, n) < 0) {
                say(c, "ERR store file %lld could not be read", (long long)c->dl_id);
                c->dl_id = 0;
                return;
            }
            char b64[(SS_CHAT_CHUNK + 2) / 3 * 4 + 1];
            EVP_EncodeBlock((unsigned char *)b64, raw, (int)n);
            say(c, "CHUNK %lld %llu %s", (long long)c->dl_id,
                (unsigned long long)c->dl_off, b64);
            c->dl_off += n;
        }
        if (c->dl_off == c->dl_size) {
            say(c, "FILEEND %lld", (long long)c->dl_id);
            if (c->dl_id != r->roomf.id) /* the room file stays for the next user */
                ss__chat_file_delete(r->st, c->dl_id);
            c->dl_id = 0;
        }
    }
}

/* The offer `id_s` if it is c's to answer. */
static bool my_offer(ss_chat_conn *c, const char *cmd, char *args,
                     struct ss__chat_file *f)
{
    char *id_s = word(&args);
    uint64_t id;
    if (!parse_u64(id_s, &id) || *args) {
        say(c, "ERR usage /%s ID", cmd);
        return false;
    }
    bool room_file = (int64_t)id == c->room->roomf.id;
    if (ss__chat_file_get(c->room->st, (int64_t)id, f) < 0 || !f->complete ||
        (strcasecmp(f->recipient, c->nick) && !room_file) || (int64_t)id == c->dl_id) {
        say(c, "ERR nofile no offer %llu for you", (unsigned long long)id);
        return false;
    }
    return true;
}

static struct roffer *roffer_mine(ss_chat_conn *c, const char *args);
static void accept_remote(ss_chat_conn *c, struct roffer *ro, int64_t now);
static void decline_remote(ss_chat_conn *c, struct roffer *ro);

static void cmd_accept(ss_chat_conn *c, char *args, int64_t now)
{
    if (!need_nick(c))
        return;
    struct roffer *ro = roffer_mine(c, args);
    if (ro) {
        accept_remote(c, ro, now);
        return;
    }
    struct ss__chat_file f;
    if (!my_offer(c, "accept", args, &f))
        return;
    if (c->dl_id) {
        say(c, "ERR busy file %lld is still downloading", (long long)c->dl_id);
        return;
    }
    say(c, "OK accept %lld", (long long)f.id);
    ss_chat_conn *from = find_online(c->room, f.sender);
    if (from)
        say(from, "ACCEPTED %lld %s", (long long)f.id, c->nick);
    say(c, "FILE %lld %llu %s %s", (long long)f.id, (unsigned long long)f.size,
        f.sha256, f.name);
    c->dl_id = f.id;
    c->dl_off = 0;
    c->dl_size = f.size;
    pump(c);
}

static void cmd_decline(ss_chat_conn *c, char *args, int64_t now)
{
    if (!need_nick(c))
        return;
    struct roffer *ro = roffer_mine(c, args);
    if (ro) {
        decline_remote(c, ro);
        return;
    }
    struct ss__chat_file f;
    if (!my_offer(c, "decline", args, &f))
        return;
    if (f.id != c->room->roomf.id)
        ss__chat_file_delete(c->room->st, f.id);
    say(c, "OK decline %lld", (long long)f.id);
    ss_chat_conn *from = find_online(c->room, f.sender);
    if (from)
        say(from, "DECLINED %lld %s", (long long)f.id, c->nick);
}

/* ---- files across nodes (cluster) ---------------------------------------
 * The bytes stay on the node they were uploaded to (A). An offer to a user
 * online on node B: A asks B first ("foffer": online there, and room for
 * one more offer), takes the upload, then tells B ("offer ..."), which
 * keeps the offer in a bounded table (roffers) and shows OFFER. /accept on
 * B asks A ("faccept"), then pulls the file one chunk per request ("fread
 * ID NICK OFF", answered "ok BASE64") whenever the recipient's queue has
 * room for two chunks: one chunk per download in flight, so the
 * recipient's queue is the flow control and Redis holds at most one chunk
 * of each download. FILEEND on B tells A to delete ("fend"); /decline on
 * B tells A ("fdecline"). */

/* A request to the node of nick timed out (cluster). */
static void say_no_answer(ss_chat_conn *c, const char *nick)
{
    say(c, "ERR timeout %s's node did not answer; try again", nick);
}

/* A line for nick wherever it is online (nothing if nowhere). */
static void tell_user(ss_chat_room *r, const char *nick, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void tell_user(ss_chat_room *r, const char *nick, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t len = vfmt(r, fmt, ap);
    va_end(ap);
    ss_chat_conn *c = find_online(r, nick);
    if (c) {
        route_conn(c, r->out, len);
        return;
    }
    if (!cluster(r))
        return;
    struct chat_op *op = op_alloc(NULL, NULL, 0, NULL);
    if (op) {
        op->r = r;
        OP_CALL(r, op, direct, nick, r->out, len, &op->res);
    }
}

static int roffers_for(const ss_chat_room *r, const char *nick)
{
    int n = 0;
    for (int i = 0; r->roffers && i < SS_CHAT_ROFFER_MAX; i++)
        if (r->roffers[i].id && !strcasecmp(r->roffers[i].to, nick))
            n++;
    return n;
}

static void roffers_drop(ss_chat_room *r, const char *nick)
{
    for (int i = 0; r->roffers && i < SS_CHAT_ROFFER_MAX; i++)
        if (r->roffers[i].id && !strcasecmp(r->roffers[i].to, nick))
            r->roffers[i].id = 0;
}

/* The remote offer "ID" in args if it is c's. */
static struct roffer *roffer_mine(ss_chat_conn *c, const char *args)
{
    ss_chat_room *r = c->room;
    uint64_t id;
    char *end;
    if (!r->roffers || !args || *args < '0' || *args > '9')
        return NULL;
    errno = 0;
    id = strtoull(args, &end, 10);
    if (*end || errno)
        return NULL;
    for (int i = 0; i < SS_CHAT_ROFFER_MAX; i++)
        if (r->roffers[i].id == (int64_t)id && !strcasecmp(r->roffers[i].to, c->nick))
            return &r->roffers[i];
    return NULL;
}

static struct roffer *roffer_find(ss_chat_room *r, int64_t id, const char *nick)
{
    for (int i = 0; r->roffers && i < SS_CHAT_ROFFER_MAX; i++)
        if (r->roffers[i].id == id && !strcasecmp(r->roffers[i].to, nick))
            return &r->roffers[i];
    return NULL;
}

/* The recipient's node answered "foffer": "ok NODE NICK", "quota N",
 * "nouser" (or nobody answered: not online anywhere). */
static void offer_remote_k(ss_chat_conn *c, struct chat_op *op)
{
    ss_chat_room *r = c->room;
    if (op->err == -ETIMEDOUT) {
        say_no_answer(c, op->nick);
        return;
    }
    if (op->err < 0) {
        store_err(c, op->err, "offer not stored");
        return;
    }
    char node[24], nick[SS_CHAT_NICK_MAX + 2];
    int n;
    if (op->res.found && sscanf(op->res.v, "quota %d", &n) == 1) {
        say(c, "ERR quota %s has %d offers waiting", op->nick, n);
        return;
    }
    if (op->res.found && sscanf(op->res.v, "ok %23s %25s", node, nick) == 2 &&
        ss_chat_nick_valid(nick)) {
        char *args = op->text;
        word(&args); /* the nick as typed */
        char *size_s = word(&args), *sha = word(&args);
        snprintf(c->up_node, sizeof c->up_node, "%s", node);
        offer_store(c, nick, strtoull(size_s, NULL, 10), sha, args, op->now);
        if (!c->up_id)
            c->up_node[0] = '\0';
        return;
    }
    /* Not online anywhere: as on one node, kept here if registered. */
    struct chat_op *st = op_new(c, offer_k, op->now, op->text);
    if (st)
        OP_CALL(r, st, user_get, op->nick, &st->res);
}

static void upload_done_remote_k(ss_chat_conn *c, struct chat_op *op)
{
    bool shown = !op->err && op->res.found && !strcmp(op->res.v, "ok");
    say(c, "OK upload %lld %s", (long long)op->before, shown ? "offered" : "stored");
}

/* The upload f for a user on node c->up_node is complete: that node shows
 * it (else it waits here, as for an offline user). */
static void upload_done_remote(ss_chat_conn *c, const struct ss__chat_file *f, int64_t now)
{
    ss_chat_room *r = c->room;
    char node[sizeof c->up_node];
    snprintf(node, sizeof node, "%s", c->up_node);
    c->up_node[0] = '\0';
    struct chat_op *op = op_new(c, upload_done_remote_k, now, NULL);
    if (!op)
        return;
    op->before = f->id;
    char text[512];
    snprintf(text, sizeof text, "offer %lld %s %s %llu %s %s", (long long)f->id,
             r->be->ops->node_id(r->be), f->sender, (unsigned long long)f->size, f->sha256,
             f->name);
    OP_CALL(r, op, ask, node, f->recipient, text, &op->res);
}

/* The node with the bytes said "faccept" is fine: the download starts. */
static void accept_remote_k(ss_chat_conn *c, struct chat_op *op)
{
    struct roffer *ro = roffer_find(c->room, op->before, c->nick);
    if (!ro) { /* c changed nick meanwhile */
        say(c, "ERR nofile no offer %lld for you", (long long)op->before);
        return;
    }
    if (op->err == -ETIMEDOUT) {
        say(c, "ERR timeout the node with file %lld did not answer; try again",
            (long long)ro->id);
        return;
    }
    if (op->err < 0) {
        store_err(c, op->err, "file not accepted");
        return;
    }
    if (!op->res.found || strcmp(op->res.v, "ok")) {
        say(c, "ERR nofile no offer %lld for you", (long long)ro->id);
        ro->id = 0;
        return;
    }
    if (c->dl_id) {
        say(c, "ERR busy file %lld is still downloading", (long long)c->dl_id);
        return;
    }
    say(c, "OK accept %lld", (long long)ro->id);
    say(c, "FILE %lld %llu %s %s", (long long)ro->id, (unsigned long long)ro->size, ro->sha,
        ro->name);
    c->dl_id = ro->id;
    c->dl_off = 0;
    c->dl_size = ro->size;
    c->dl_remote = true;
    snprintf(c->dl_node, sizeof c->dl_node, "%s", ro->node);
    ro->id = 0;
    pump(c);
}

static void accept_remote(ss_chat_conn *c, struct roffer *ro, int64_t now)
{
    ss_chat_room *r = c->room;
    if (c->dl_id) {
        say(c, "ERR busy file %lld is still downloading", (long long)c->dl_id);
        return;
    }
    struct chat_op *op = op_new(c, accept_remote_k, now, NULL);
    if (!op)
        return;
    op->before = ro->id;
    char text[96];
    snprintf(text, sizeof text, "faccept %lld %s", (long long)ro->id, c->nick);
    OP_CALL(r, op, ask, ro->node, NULL, text, &op->res);
}

static void decline_remote(ss_chat_conn *c, struct roffer *ro)
{
    ss_chat_room *r = c->room;
    char text[96];
    snprintf(text, sizeof text, "fdecline %lld %s", (long long)ro->id, c->nick);
    r->be->ops->to_node(r->be, ro->node, text, NULL, NULL, NULL);
    say(c, "OK decline %lld", (long long)ro->id);
    ro->id = 0;
}

/* "ok BASE64" of the chunk at c->dl_off came back. */
static void chunk_remote_k(ss_chat_conn *c, struct chat_op *op)
{
    c->dl_op = NULL;
    if (!c->dl_id || c->dead)
        return;
    uint64_t want = c->dl_size - c->dl_off < SS_CHAT_CHUNK ? c->dl_size - c->dl_off
                                                           : SS_CHAT_CHUNK;
    const char *b64 = op->text + 3;
    size_t blen = strlen(op->text) >= 3 ? strlen(b64) : 0;
    unsigned char raw[SS_CHAT_CHUNK + 3];
    int n = -1;
    if (!op->err && op->res.found && !strncmp(op->text, "ok ", 3) && blen % 4 == 0 &&
        blen / 4 * 3 <= sizeof raw)
        n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)blen);
    if (n >= 0)
        n -= (blen > 0 && b64[blen - 1] == '=') + (blen > 1 && b64[blen - 2] == '=');
    if (n < 0 || (uint64_t)n != want) {
        if (op->err == -ETIMEDOUT)
            say(c, "ERR timeout the node with file %lld did not answer; download stopped",
                (long long)c->dl_id);
        else
            say(c, "ERR store file %lld could not be read", (long long)c->dl_id);
        c->dl_id = 0;
        c->dl_remote = false;
        return;
    }
    say(c, "CHUNK %lld %llu %s", (long long)c->dl_id, (unsigned long long)c->dl_off, b64);
    c->dl_off += (uint64_t)n;
    pump_remote(c);
}

/* Pull the next chunk of a download from another node if c's queue has
 * room for it (one chunk in flight); FILEEND after the last. */
static void pump_remote(ss_chat_conn *c)
{
    ss_chat_room *r = c->room;
    size_t line = 64 + (SS_CHAT_CHUNK + 2) / 3 * 4;
    if (!c->dl_id || c->dl_op || c->dead || r->io.space(c->io) < 2 * line)
        return;
    char text[128];
    if (c->dl_off == c->dl_size) {
        say(c, "FILEEND %lld", (long long)c->dl_id);
        snprintf(text, sizeof text, "fend %lld %s", (long long)c->dl_id, c->nick);
        r->be->ops->to_node(r->be, c->dl_node, text, NULL, NULL, NULL);
        c->dl_id = 0;
        c->dl_remote = false;
        return;
    }
    struct chat_op *op = op_alloc_n(c, chunk_remote_k, 0, NULL, line);
    if (!op) {
        say(c, "ERR store out of memory");
        c->dl_id = 0;
        c->dl_remote = false;
        return;
    }
    op->res.buf = op->text;
    op->res.buf_cap = line;
    c->dl_op = op;
    snprintf(text, sizeof text, "fread %lld %s %llu", (long long)c->dl_id, c->nick,
             (unsigned long long)c->dl_off);
    OP_CALL(r, op, ask, c->dl_node, NULL, text, &op->res);
}

/* The file id, complete, for recipient rcpt (another node asks for it). */
static bool file_for(ss_chat_room *r, long long id, const char *rcpt, struct ss__chat_file *f)
{
    return ss__chat_file_get(r->st, id, f) == 0 && f->complete && f->recipient[0] &&
           !strcasecmp(f->recipient, rcpt);
}

/* Requests about files from other nodes (ss__chat_room_ask). */
static void file_ask(ss_chat_room *r, const char *nick, const char *token, const char *text)
{
    ss__chat_be *be = r->be;
    long long id;
    unsigned long long off, size;
    char rcpt[SS_CHAT_NICK_MAX + 2], from[SS_CHAT_NICK_MAX + 2], node[24], sha[80];
    int n = 0;
    struct ss__chat_file f;
    if (!strcmp(text, "foffer")) { /* may nick (here) be offered one more? */
        ss_chat_conn *to = find_online(r, nick);
        if (!to) {
            be->ops->answer(be, token, "nouser");
            return;
        }
        int waiting = roffers_for(r, to->nick) + ss__chat_file_count(r->st, to->nick, NULL);
        char ans[80];
        if (waiting >= r->o.offers_max)
            snprintf(ans, sizeof ans, "quota %d", r->o.offers_max);
        else
            snprintf(ans, sizeof ans, "ok %s %s", be->ops->node_id(be), to->nick);
        be->ops->answer(be, token, ans);
        return;
    }
    if (sscanf(text, "offer %lld %23s %25s %llu %79s %n", &id, node, from, &size, sha, &n) ==
            5 && n) { /* show nick the offer whose bytes are on node */
        const char *name = text + n;
        ss_chat_conn *to = find_online(r, nick);
        if (!to || strlen(from) > SS_CHAT_NICK_MAX || strlen(sha) != 64 || !*name ||
            strlen(name) > 255) {
            be->ops->answer(be, token, "nouser");
            return;
        }
        if (!r->roffers)
            r->roffers = calloc(SS_CHAT_ROFFER_MAX, sizeof *r->roffers);
        struct roffer *ro = NULL;
        for (int i = 0; r->roffers && i < SS_CHAT_ROFFER_MAX && !ro; i++)
            if (!r->roffers[i].id)
                ro = &r->roffers[i];
        if (!ro || roffers_for(r, to->nick) + ss__chat_file_count(r->st, to->nick, NULL) >=
                       r->o.offers_max) {
            be->ops->answer(be, token, "quota");
            return;
        }
        *ro = (struct roffer){.id = id, .size = size};
        snprintf(ro->node, sizeof ro->node, "%s", node);
        memcpy(ro->from, from, strlen(from) + 1);
        snprintf(ro->to, sizeof ro->to, "%s", to->nick);
        memcpy(ro->sha, sha, 65);
        snprintf(ro->name, sizeof ro->name, "%s", name);
        say(to, "OFFER %lld %s %llu %s %s", id, from, size, sha, name);
        be->ops->answer(be, token, "ok");
        return;
    }
    if (sscanf(text, "faccept %lld %25s", &id, rcpt) == 2) {
        if (!file_for(r, id, rcpt, &f)) {
            be->ops->answer(be, token, "nofile");
            return;
        }
        be->ops->answer(be, token, "ok");
        tell_user(r, f.sender, "ACCEPTED %lld %s", id, rcpt);
        return;
    }
    if (sscanf(text, "fread %lld %25s %llu", &id, rcpt, &off) == 3) {
        unsigned char raw[SS_CHAT_CHUNK];
        char ans[(SS_CHAT_CHUNK + 2) / 3 * 4 + 8] = "ok ";
        size_t len = 0;
        if (file_for(r, id, rcpt, &f) && off < f.size) {
            len = f.size - off < SS_CHAT_CHUNK ? (size_t)(f.size - off) : SS_CHAT_CHUNK;
            if (ss__chat_file_read(r->st, id, off, raw, len) < 0)
                len = 0;
        }
        if (!len) {
            be->ops->answer(be, token, "nofile");
            return;
        }
        EVP_EncodeBlock((unsigned char *)ans + 3, raw, (int)len);
        be->ops->answer(be, token, ans);
    }
}

/* One-way lines about files from other nodes (ss__chat_room_node). */
static void file_note(ss_chat_room *r, const char *text)
{
    long long id;
    char rcpt[SS_CHAT_NICK_MAX + 2];
    struct ss__chat_file f;
    if (sscanf(text, "fend %lld %25s", &id, rcpt) == 2) {
        if (file_for(r, id, rcpt, &f))
            ss__chat_file_delete(r->st, id);
    } else if (sscanf(text, "fdecline %lld %25s", &id, rcpt) == 2) {
        if (file_for(r, id, rcpt, &f)) {
            ss__chat_file_delete(r->st, id);
            tell_user(r, f.sender, "DECLINED %lld %s", id, rcpt);
        }
    }
}

/* ---- point-to-point introductions --------------------------------------- */

static void p2p_forget(ss_chat_conn *c)
{
    ss_chat_room *r = c->room;
    for (int i = 0; i < SS_CHAT_P2P_MAX; i++)
        for (int k = 0; k < 2; k++) {
            if (r->intros[i].probe[k] == c)
                r->intros[i].probe[k] = NULL;
            if (r->intros[i].relay[k] == c)
                r->intros[i].relay[k] = NULL;
        }
}

/* A free introduction slot with a fresh id and key, or NULL (all busy). */
static struct p2p_intro *intro_new(ss_chat_room *r, int64_t now)
{
    struct p2p_intro *in = NULL;
    for (int i = 0; i < SS_CHAT_P2P_MAX && !in; i++)
        if (!r->intros[i].id || r->intros[i].expires <= now)
            in = &r->intros[i];
    uint8_t key[16];
    if (!in || RAND_bytes(key, sizeof key) != 1)
        return NULL;
    *in = (struct p2p_intro){.id = ++r->next_intro, .expires = now + SS_CHAT_P2P_TTL_MS};
    for (int i = 0; i < 16; i++)
        snprintf(in->key + 2 * i, 3, "%02x", key[i]);
    return in;
}

/* The live introduction id with key (a cluster's nodes share both). */
static struct p2p_intro *intro_find(ss_chat_room *r, int64_t id, const char *key, int64_t now)
{
    if (!key || strlen(key) != 32)
        return NULL;
    for (int i = 0; i < SS_CHAT_P2P_MAX; i++) {
        struct p2p_intro *in = &r->intros[i];
        if (in->id == id && in->expires > now && CRYPTO_memcmp(in->key, key, 32) == 0)
            return in;
    }
    return NULL;
}

static void say_busy_intro(ss_chat_conn *c)
{
    say(c, "ERR busy too many introductions in progress; try again");
}

/* The answer of the target's node ("ok NODE NICK", "nouser", "busy"). */
static void connect_remote_k(ss_chat_conn *c, struct chat_op *op)
{
    ss_chat_room *r = c->room;
    struct p2p_intro *in = NULL;
    for (int i = 0; i < SS_CHAT_P2P_MAX && !in; i++)
        if (r->intros[i].id == op->before)
            in = &r->intros[i];
    char node[24], nick[SS_CHAT_NICK_MAX + 1];
    bool ok = !op->err && op->res.found &&
              sscanf(op->res.v, "ok %23s %24s", node, nick) == 2 && in;
    if (!ok) {
        if (in)
            in->id = 0;
        if (op->err == -ETIMEDOUT)
            say_no_answer(c, op->nick);
        else if (op->err == -EAGAIN || !strcmp(op->res.v, "busy"))
            say_busy_intro(c);
        else if (op->err < 0)
            store_err(c, op->err, "no introduction");
        else
            say(c, "ERR nouser %s is not online", op->nick);
        return;
    }
    snprintf(in->nick[1], sizeof in->nick[1], "%s", nick);
    snprintf(in->remote, sizeof in->remote, "%s", node);
    say(c, "OK connect %lld %s", (long long)in->id, nick);
    say(c, "P2P intro %lld %s %s 0", (long long)in->id, nick, in->key);
}

/* The asker left before the answer: its slot is free again. */
static void connect_gone_kr(ss_chat_room *r, struct chat_op *op)
{
    for (int i = 0; i < SS_CHAT_P2P_MAX; i++)
        if (r->intros[i].id == op->before)
            r->intros[i].id = 0;
}

/* /connect to nick, not here: ask the node that holds nick (cluster). The
 * slot is ours from now on, so that the other side's steps find it. */
static void connect_remote(ss_chat_conn *c, const char *nick, int64_t now)
{
    ss_chat_room *r = c->room;
    struct p2p_intro *in = intro_new(r, now);
    if (!in) {
        say_busy_intro(c);
        return;
    }
    snprintf(in->nick[0], sizeof in->nick[0], "%s", c->nick);
    snprintf(in->nick[1], sizeof in->nick[1], "%s", nick);
    in->rside = 1;
    snprintf(in->remote, sizeof in->remote, "?"); /* known from the answer */
    struct chat_op *op = op_new(c, connect_remote_k, now, NULL);
    if (!op) {
        in->id = 0;
        return;
    }
    op->kr = connect_gone_kr;
    op->before = in->id;
    snprintf(op->nick, sizeof op->nick, "%s", nick);
    char text[160];
    snprintf(text, sizeof text, "intro %lld %s %s %s", (long long)in->id, in->key, c->nick,
             r->be->ops->node_id(r->be));
    OP_CALL(r, op, ask, NULL, nick, text, &op->res);
}

/* /connect NICK: introduce c to NICK with a fresh key for both. */
static void cmd_connect(ss_chat_conn *c, char *args, int64_t now)
{
    ss_chat_room *r = c->room;
    if (!need_nick(c))
        return;
    char *nick = word(&args);
    if (!nick || *args) {
        say(c, "ERR usage /connect NICK");
        return;
    }
    ss_chat_conn *to = find_online(r, nick);
    if (!to && cluster(r) && ss_chat_nick_valid(nick)) {
        connect_remote(c, nick, now);
        return;
    }
    if (!to || to == c) {
        say(c, "ERR nouser %s is not online", nick);
        return;
    }
    struct p2p_intro *in = intro_new(r, now);
    if (!in) {
        say_busy_intro(c);
        return;
    }
    snprintf(in->nick[0], sizeof in->nick[0], "%s", c->nick);
    snprintf(in->nick[1], sizeof in->nick[1], "%s", to->nick);
    say(c, "OK connect %lld %s", (long long)in->id, to->nick);
    say(c, "P2P intro %lld %s %s 0", (long long)in->id, to->nick, in->key);
    say(to, "P2P intro %lld %s %s 1", (long long)in->id, c->nick, in->key);
}

/* The introduction named by "ID SIDE KEY" in *args, if the key is right. */
static struct p2p_intro *p2p_find(ss_chat_conn *c, char **args, int *side, int64_t now)
{
    char *id_s = word(args), *side_s = word(args), *key = word(args);
    uint64_t id;
    if (!parse_u64(id_s, &id) || !side_s || (strcmp(side_s, "0") && strcmp(side_s, "1")))
        return NULL;
    *side = side_s[0] - '0';
    struct p2p_intro *in = intro_find(c->room, (int64_t)id, key, now);
    /* a remote side says hello on its own node */
    return in && in->remote[0] && *side == in->rside ? NULL : in;
}

/* Both sides said hello: each one here learns the other's addresses. */
static void p2p_peers(struct p2p_intro *in)
{
    if (in->hello[0] && in->hello[1])
        for (int k = 0; k < 2; k++)
            if (in->probe[k])
                say(in->probe[k], "P2P peer %lld %s %s", (long long)in->id, in->pub[!k],
                    in->cands[!k]);
}

/* /p2p hello ID SIDE KEY [CANDIDATES]: on a fresh connection from the port
 * the client will punch from. /p2p relay ID SIDE KEY: pair two fresh
 * connections into a byte relay when direct paths fail. */
static void cmd_p2p(ss_chat_conn *c, char *args, int64_t now)
{
    ss_chat_room *r = c->room;
    char *verb = word(&args);
    int side;
    struct p2p_intro *in = verb ? p2p_find(c, &args, &side, now) : NULL;
    if (!in) {
        say(c, "ERR p2p no such introduction (or a wrong key)");
        return;
    }
    c->p2p = true;
    if (!strcmp(verb, "hello")) {
        in->probe[side] = c;
        in->hello[side] = true;
        snprintf(in->pub[side], sizeof in->pub[side], "%s", c->peer[0] ? c->peer : "-");
        snprintf(in->cands[side], sizeof in->cands[side], "%s", args);
        say(c, "OK p2p hello %s", in->pub[side]);
        if (in->remote[0] && in->remote[0] != '?') {
            /* the other side's node tells its user (ss__chat_room_node) */
            char text[512];
            snprintf(text, sizeof text, "hello %lld %s %d %s %s", (long long)in->id, in->key,
                     side, in->pub[side], in->cands[side]);
            r->be->ops->to_node(r->be, in->remote, text, NULL, NULL, NULL);
        }
        p2p_peers(in);
        return;
    }
    if (!strcmp(verb, "relay") && !*args) {
        if (!r->io.relay) {
            say(c, "ERR p2p no relay here");
            return;
        }
        if (in->remote[0]) {
            say(c, "ERR p2p no relay across nodes: %s is on another node",
                in->nick[in->rside]);
            return;
        }
        in->relay[side] = c;
        if (!in->relay[0] || !in->relay[1])
            return;
        ss_chat_conn *a = in->relay[0], *b = in->relay[1];
        in->relay[0] = in->relay[1] = NULL;
        say(a, "OK p2p relay");
        say(b, "OK p2p relay");
        a->relayed = b->relayed = true;
        r->io.relay(a->io, b->io);
        return;
    }
    say(c, "ERR usage /p2p hello|relay ID SIDE KEY ...");
}

static void cmd_send(ss_chat_conn *c, char *args, int64_t now)
{
    say(c, "ERR usage /send is done by the client: it sends /offer, /chunk and "
           "/done (see docs/protocols.md)");
}

static void cmd_me(ss_chat_conn *c, char *args, int64_t now)
{
    if (!*args) {
        say(c, "ERR usage /me ACTION");
        return;
    }
    publish(c, SS__CHAT_KIND_ME, args, now);
}

static const struct {
    const char *name;
    void (*fn)(ss_chat_conn *c, char *args, int64_t now);
} commands[] = {
    {"nick", cmd_nick},       {"msg", cmd_msg},         {"who", cmd_who},
    {"history", cmd_history}, {"me", cmd_me},           {"help", cmd_help},
    {"quit", cmd_quit},       {"register", cmd_register}, {"login", cmd_login},
    {"send", cmd_send},       {"offer", cmd_offer},     {"chunk", cmd_chunk},
    {"done", cmd_done},       {"accept", cmd_accept},   {"decline", cmd_decline},
    {"since", cmd_since},     {"connect", cmd_connect}, {"p2p", cmd_p2p},
    {"notice", cmd_notice},   {"away", cmd_away},       {"topic", cmd_topic},
};

/* One complete line (no EOL, NUL-terminated in place, valid UTF-8). */
static void handle_line(ss_chat_conn *c, char *line, size_t len, int64_t now)
{
    if (len == 0)
        return;
    if (line[0] != '/' || line[1] == '/') {
        publish(c, SS__CHAT_KIND_MSG, line[0] == '/' ? line + 1 : line, now);
        return;
    }
    char *args = line + 1;
    char *name = args;
    while (*args && *args != ' ')
        args++;
    if (*args)
        *args++ = '\0';
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcasecmp(name, commands[i].name)) {
            commands[i].fn(c, args, now);
            return;
        }
    say(c, "ERR unknown no command /%s; /help lists them", name);
}

/* Check and dispatch one framed line of len bytes (EOL removed). */
static void line_in(ss_chat_conn *c, char *line, size_t len, int64_t now)
{
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len > c->room->o.max_line) {
        say(c, "ERR toolong lines are limited to %zu bytes", c->room->o.max_line);
        return;
    }
    if (!ss_utf8_valid(line, len) || memchr(line, '\0', len)) {
        say(c, "ERR utf8 line is not valid UTF-8 text");
        return;
    }
    line[len] = '\0';
    handle_line(c, line, len, now);
}

/* May c start on a new line beginning at p (n bytes seen of it)? */
static bool admit(ss_chat_conn *c, const char *p, size_t n)
{
    if (c->kdf || c->op)
        return false;
    if (!c->room->io.admit)
        return true;
    /* File chunks are paced by TCP and bounded by file_max, not rated. */
    bool chunk = n >= 7 && !memcmp(p, "/chunk ", 7);
    return c->room->io.admit(c->io, !chunk);
}

int ss_chat_feed(ss_chat_conn *c, const void *buf, size_t len, int64_t now_ms,
                 size_t *used)
{
    ss_chat_room *r = c->room;
    const char *start = buf, *p = buf, *end = p + len;
    /* Room for the longest line, its '\r' and a NUL. */
    size_t keep = r->o.max_line + 2;
    int err = 0;
    while (p < end && !c->dead && !c->relayed) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t seg = (size_t)((nl ? nl : end) - p);
        if (c->part_len == 0 && !c->discarding && !admit(c, p, seg))
            break;
        if (c->discarding) {
            if (nl)
                c->discarding = false;
            p += seg + (nl != NULL);
            continue;
        }
        if (c->part_len + seg + 1 > keep) {
            /* Overlong: refuse now, skip to the end of this line. */
            free(c->part);
            c->part = NULL;
            c->part_len = 0;
            say(c, "ERR toolong lines are limited to %zu bytes", r->o.max_line);
            c->discarding = nl == NULL;
            p += seg + (nl != NULL);
            continue;
        }
        if (nl && c->part_len == 0 && !r->scratch_busy &&
            (r->scratch || (r->scratch = malloc(keep)))) {
            /* A whole line in this read (the usual case): handled from the
             * room's buffer, not a buffer allocated for it. Busy while
             * handled, in case a handler feeds another connection. */
            memcpy(r->scratch, p, seg);
            p = nl + 1;
            r->scratch_busy = true;
            line_in(c, r->scratch, seg, now_ms);
            r->scratch_busy = false;
            continue;
        }
        if (!c->part)
            c->part = malloc(keep);
        if (!c->part) {
            err = -ENOMEM;
            break;
        }
        memcpy(c->part + c->part_len, p, seg);
        c->part_len += seg;
        p += seg;
        if (!nl)
            break;
        p++; /* the '\n' */
        size_t n = c->part_len;
        c->part_len = 0;
        line_in(c, c->part, n, now_ms);
    }
    if (c->part_len == 0 && c->part) {
        free(c->part);
        c->part = NULL;
    }
    if (c->dead && !c->relayed)
        p = end; /* nothing more is read from it */
    *used = (size_t)(p - start);
    return err;
}

int ss_chat_recv(ss_chat_conn *c, const void *buf, size_t len, int64_t now_ms)
{
    size_t used;
    return ss_chat_feed(c, buf, len, now_ms, &used);
}

void ss_chat_eof(ss_chat_conn *c, int64_t now_ms)
{
    if (c->part_len > 0 && !c->dead && !c->discarding) {
        size_t n = c->part_len;
        c->part_len = 0;
        line_in(c, c->part, n, now_ms);
    }
    free(c->part);
    c->part = NULL;
    c->part_len = 0;
}

void ss_chat_drain(ss_chat_conn *c)
{
    /* Every push that empties a queue comes here: skip the offline pump
     * when it has nothing to read, delete or remember. */
    if (c->named && (c->off_more || c->off_op || c->off_sent[0] || c->off_fresh))
        offline_pump(c);
    pump(c);
}

/* ---- a cluster backend's calls (chat_backend.h) -------------------------- */

void ss__chat_room_bus(ss_chat_room *r, char kind, const char *nick, const char *line,
                       size_t len)
{
    ss_chat_conn *c = nick[0] ? find_online(r, nick) : NULL;
    /* "JOIN TS NICK N" / "LEAVE TS NICK N": N online after it. */
    if (kind == 'P' && (!strncmp(line, "JOIN ", 5) || !strncmp(line, "LEAVE ", 6))) {
        const char *sp = NULL;
        for (const char *p = line; p < line + len; p++)
            if (*p == ' ')
                sp = p;
        if (sp)
            r->svc_online = atoi(sp + 1);
    }
    if (kind == 'D') {
        if (c)
            route_conn(c, line, len);
    } else if (kind == 'P') {
        route_presence(r, c, line, len);
    } else if (kind == 'R') {
        route_room(r, c, line, len);
    }
}

void ss__chat_room_state(ss_chat_room *r, bool up)
{
    size_t len = fmt_line(r, up ? "INFO restored the store is reachable again"
                                : "INFO degraded the store is unreachable: messages are "
                                  "refused (ERR degraded) until it is back");
    for (ss_chat_conn *c = r->conns; c; c = c->next)
        if (!c->relayed)
            route_conn(c, r->out, len);
}

void ss__chat_room_reaped(ss_chat_room *r, const char *nick, int online, int64_t now)
{
    char ts[32];
    ss_chat_format_ts(now, ts, sizeof ts);
    r->svc_online = online;
    announce(r, NULL, "LEAVE %s %s %d", ts, nick, online);
}

/* A request from another node for the local user nick: "intro ID KEY FROM
 * NODE" (a /connect across nodes), answered "ok NODE NICK", "nouser" or
 * "busy". */
void ss__chat_room_ask(ss_chat_room *r, const char *nick, const char *token,
                       const char *text, int64_t now)
{
    long long id;
    char key[40], from[SS_CHAT_NICK_MAX + 2], node[24];
    if (text[0] == 'f' || !strncmp(text, "offer ", 6)) {
        file_ask(r, nick, token, text);
        return;
    }
    if (sscanf(text, "intro %lld %39s %25s %23s", &id, key, from, node) != 4 ||
        strlen(key) != 32 || strlen(from) > SS_CHAT_NICK_MAX || !ss_chat_nick_valid(from))
        return;
    ss_chat_conn *to = find_online(r, nick);
    if (!to || to->dead) {
        r->be->ops->answer(r->be, token, "nouser");
        return;
    }
    struct p2p_intro *in = intro_new(r, now);
    if (!in) {
        r->be->ops->answer(r->be, token, "busy");
        return;
    }
    in->id = id; /* the asking node's id and key name it on both nodes */
    memcpy(in->key, key, 33);
    memcpy(in->nick[0], from, strlen(from) + 1);
    snprintf(in->nick[1], sizeof in->nick[1], "%s", to->nick);
    snprintf(in->remote, sizeof in->remote, "%s", node);
    in->rside = 0;
    say(to, "P2P intro %lld %s %s 1", id, from, key);
    char ans[80];
    snprintf(ans, sizeof ans, "ok %s %s", r->be->ops->node_id(r->be), to->nick);
    r->be->ops->answer(r->be, token, ans);
}

/* A step of an introduction across nodes: "hello ID KEY SIDE PUB
 * [CANDIDATES]", the other side's rendezvous on its node, or "uhello ID
 * KEY SIDE PUB", its UDP address from its node's UDP rendezvous. */
void ss__chat_room_node(ss_chat_room *r, const char *text, int64_t now)
{
    long long id;
    char key[40], pub[80];
    int side, n = 0;
    if (text[0] == 'f') {
        file_note(r, text);
        return;
    }
    if (text[0] == 'u') {
        /* "uhello ID KEY SIDE PUB": the other side's UDP address, as its
         * node's rendezvous saw it */
        struct p2p_intro *in = NULL;
        if (sscanf(text, "uhello %lld %39s %d %79s", &id, key, &side, pub) == 4 &&
            (in = intro_find(r, id, key, now)) && in->remote[0] && side == in->rside &&
            !in->upub[side][0])
            snprintf(in->upub[side], sizeof in->upub[side], "%s", pub);
        return;
    }
    if (sscanf(text, "hello %lld %39s %d %79s %n", &id, key, &side, pub, &n) != 4 || !n)
        return;
    struct p2p_intro *in = intro_find(r, id, key, now);
    if (!in || !in->remote[0] || side != in->rside)
        return;
    in->hello[side] = true;
    snprintf(in->pub[side], sizeof in->pub[side], "%s", pub);
    snprintf(in->cands[side], sizeof in->cands[side], "%s", text + n);
    p2p_peers(in);
}

/* ---- the UDP rendezvous ---------------------------------------------------- */

/* "P2PU hello ID SIDE MAC" (padded with spaces) from `from`: the answer
 * into out, "P2PU ok ID SIDE PUB MAC" or, once the other side's UDP
 * address is known, "P2PU peer ID SIDE PUB PEERPUB MAC" (MACs with the
 * introduction's key). Returns its length, 0: ignore the datagram. The
 * first authentic hello of a side fixes its address; the answer is never
 * longer than the hello (n). Across cluster nodes each side says hello to
 * its own node, which passes the address to the other's once ("uhello",
 * ss__chat_room_node). */
size_t ss__chat_room_p2p_udp(ss_chat_room *r, const char *d, size_t n, const char *from,
                             char *out, size_t cap, int64_t now)
{
    char msg[SS_CHAT_P2P_UDP_HELLO + 1], mac[40], want[33], text[240];
    long long id;
    int side, end = 0;
    if (n > SS_CHAT_P2P_UDP_HELLO)
        return 0;
    memcpy(msg, d, n);
    msg[n] = '\0';
    if (strlen(msg) != n ||
        sscanf(msg, "P2PU hello %lld %d %39s%n", &id, &side, mac, &end) != 3 ||
        (side != 0 && side != 1) || strlen(mac) != 32 || strspn(msg + end, " ") != n - (size_t)end)
        return 0;
    /* The live introduction with this id whose key made the MAC (in a
     * cluster two may share an id: each node numbers its own). */
    struct p2p_intro *in = NULL;
    snprintf(text, sizeof text, "hello %lld %d", id, side);
    for (int i = 0; i < SS_CHAT_P2P_MAX && !in; i++) {
        struct p2p_intro *c = &r->intros[i];
        if (c->id != id || c->expires <= now)
            continue;
        ss_chat_p2p_udp_mac(c->key, text, want);
        if (CRYPTO_memcmp(want, mac, 32) == 0)
            in = c;
    }
    if (!in || (in->remote[0] && side == in->rside))
        return 0; /* none, or a side that says hello on its own node */
    if (!in->upub[side][0])
        snprintf(in->upub[side], sizeof in->upub[side], "%s", from);
    else if (strcmp(in->upub[side], from))
        return 0; /* the side's address is taken: a replay from elsewhere */
    if (in->remote[0] && in->remote[0] != '?' && !in->usent[side]) {
        /* the other side's node answers its user with this address */
        char note[200];
        snprintf(note, sizeof note, "uhello %lld %s %d %s", id, in->key, side, in->upub[side]);
        r->be->ops->to_node(r->be, in->remote, note, NULL, NULL, NULL);
        in->usent[side] = true;
    }
    if (in->upub[!side][0])
        snprintf(text, sizeof text, "peer %lld %d %s %s", id, side, in->upub[side],
                 in->upub[!side]);
    else
        snprintf(text, sizeof text, "ok %lld %d %s", id, side, in->upub[side]);
    ss_chat_p2p_udp_mac(in->key, text, want);
    int len = snprintf(out, cap, "P2PU %s %s", text, want);
    if (len < 0 || (size_t)len >= cap || (size_t)len > n)
        return 0;
    return (size_t)len;
}
