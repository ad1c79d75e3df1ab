/* chat_store: the chat room's SQLite store (internal to src/apps).
 *
 * WAL journal. Every write is its own committed transaction before the
 * call returns, so the room acknowledges a message only after commit and a
 * server killed with SIGKILL loses nothing it acknowledged. The exception
 * is opt-in (ss__chat_store_batch): history inserts then share one
 * transaction, which the caller commits before any acknowledgement
 * leaves the process. Nicknames
 * compare case-insensitively (COLLATE NOCASE). All calls return 0 (or a
 * count / id) or a negative code; SQLite errors map to -EIO.
 */
#ifndef SS_APPS_CHAT_STORE_H
#define SS_APPS_CHAT_STORE_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ss__chat_store ss__chat_store;

/* Finish a SHA-256 digest into the 64 lower-case hex digits the store
 * keeps (chat_util.c). */
void ss__chat_sha256_hex(EVP_MD_CTX *md, char hex[65]);

enum { SS__CHAT_KIND_MSG = 0, SS__CHAT_KIND_ME = 1 };

struct ss__chat_user {
    bool exists;
    bool registered;
    int iter;
    uint8_t salt[16];
    uint8_t hash[32];
    int64_t last_seen;
};

struct ss__chat_file {
    int64_t id;
    int64_t ts;
    char sender[64];
    char recipient[64];
    char name[256];
    uint64_t size;
    uint64_t received; /* bytes uploaded so far */
    char sha256[65];
    bool complete;
};

int ss__chat_store_open(const char *path, ss__chat_store **out);
/* Commits a pending batch, then closes. */
void ss__chat_store_close(ss__chat_store *st);
/* Batch history inserts (on): the first one opens a transaction, which
 * stays open (every other write made meanwhile joins it) until
 * ss__chat_store_commit, SS_CHAT_STORE_BATCH history rows, or close.
 * The history trim (history_keep) runs once per commit. Off commits. */
void ss__chat_store_batch(ss__chat_store *st, bool on);
/* Commit the open batch, if any: 0, or -EIO (rolled back: its rows are
 * gone). */
int ss__chat_store_commit(ss__chat_store *st);
/* A batch is open (uncommitted writes). */
bool ss__chat_store_pending(const ss__chat_store *st);

int ss__chat_user_get(ss__chat_store *st, const char *nick, struct ss__chat_user *u);
int ss__chat_user_touch(ss__chat_store *st, const char *nick, int64_t now);
int ss__chat_user_register(ss__chat_store *st, const char *nick, int iter,
                           const uint8_t salt[16], const uint8_t hash[32]);
/* Known users, most recently seen first, at most max. */
typedef void (*ss__chat_user_cb)(void *arg, const char *nick, int64_t last_seen);
int ss__chat_users_list(ss__chat_store *st, int max, ss__chat_user_cb cb, void *arg);

/* Public history. Returns the new row id. */
int64_t ss__chat_history_add(ss__chat_store *st, int64_t ts, const char *nick,
                             int kind, const char *text);
typedef void (*ss__chat_hist_cb)(void *arg, int64_t ts, const char *nick,
                                 int kind, const char *text);
/* Keep at most `keep` history rows, the newest; each add drops the rows
 * that fall out (keep <= 0: keep all, the default). */
void ss__chat_history_keep(ss__chat_store *st, int keep);
/* The last n messages (since >= 0: of those stamped at or after since),
 * oldest first. Returns how many. */
int ss__chat_history_last(ss__chat_store *st, int n, int64_t since,
                          ss__chat_hist_cb cb, void *arg);

/* The last n messages stamped before `before`, oldest first. */
int ss__chat_history_before(ss__chat_store *st, int n, int64_t before,
                            ss__chat_hist_cb cb, void *arg);

/* Room settings: 1 and the value in v, 0 when unset, or -EIO. */
int ss__chat_meta_get(ss__chat_store *st, const char *k, char *v, size_t cap);
int ss__chat_meta_set(ss__chat_store *st, const char *k, const char *v);

/* Offline private messages. */
int64_t ss__chat_offline_add(ss__chat_store *st, int64_t ts, const char *from,
                             const char *to, const char *text);
typedef void (*ss__chat_off_cb)(void *arg, int64_t ts, const char *from,
                                const char *text);
/* Up to max stored messages for `to` with id > after, in order; *last is
 * the id of the last one (after when none). Nothing is deleted. */
int ss__chat_offline_page(ss__chat_store *st, const char *to, int64_t after, int max,
                          ss__chat_off_cb cb, void *arg, int64_t *last);
/* Delete `to`'s messages with id <= upto (upto < 0: all of them). */
int ss__chat_offline_delete(ss__chat_store *st, const char *to, int64_t upto);
int ss__chat_offline_count(ss__chat_store *st, const char *to);
/* Drop every offline message and file offer waiting for nick. */
int ss__chat_forget(ss__chat_store *st, const char *nick);

/* Files: the bytes live in file_data, one row per chunk written; the store
 * grows as data arrives. */
int64_t ss__chat_file_create(ss__chat_store *st, int64_t ts, const char *from,
                             const char *to, const char *name, uint64_t size,
                             const char *sha256);
int ss__chat_file_write(ss__chat_store *st, int64_t id, uint64_t off,
                        const void *data, size_t len);
int ss__chat_file_complete(ss__chat_store *st, int64_t id);
/* The same, storing the digest computed while it arrived. */
int ss__chat_file_complete_sha(ss__chat_store *st, int64_t id, const char *sha256);
int ss__chat_file_get(ss__chat_store *st, int64_t id, struct ss__chat_file *f);
int ss__chat_file_read(ss__chat_store *st, int64_t id, uint64_t off, void *buf,
                       size_t len);
int ss__chat_file_delete(ss__chat_store *st, int64_t id);
/* Bytes of offers (complete or in progress) waiting for `to`. */
int ss__chat_file_pending_bytes(ss__chat_store *st, const char *to, uint64_t *out);
typedef void (*ss__chat_file_cb)(void *arg, const struct ss__chat_file *f);
/* Offers waiting for `to` (from NULL) or sent by `from` (to NULL), complete
 * or not. */
int ss__chat_file_count(ss__chat_store *st, const char *to, const char *from);
/* Complete offers waiting for `to`, oldest first, at most max. */
int ss__chat_file_pending(ss__chat_store *st, const char *to, int max,
                          ss__chat_file_cb cb, void *arg);
/* Drop offers whose upload never completed (server restart). */
int ss__chat_file_drop_incomplete(ss__chat_store *st);
/* Cluster: an empty file table gets a placeholder row (no sender, no
 * recipient) at id base, so that this node's offers are numbered from
 * base + 1 and do not meet another node's. */
int ss__chat_file_seed(ss__chat_store *st, int64_t base);

#endif
