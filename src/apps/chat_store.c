/* chat_store: SQLite persistence for the chat room (see chat_store.h).
 *
 * One connection, WAL journal, synchronous=NORMAL: in WAL mode a commit is
 * durable against a killed process (the WAL is in the OS page cache before
 * COMMIT returns); only a power cut may lose the last transactions.
 * With ss__chat_store_batch on, history inserts share one transaction
 * until ss__chat_store_commit (or SS_CHAT_STORE_BATCH rows, or close):
 * the server commits at the end of each loop iteration, before any
 * reply leaves (chat_server.c).
 * An in-memory store's history (no file, history_keep > 0) is a ring of
 * rows in plain memory, not a table: it has nothing to make durable, and
 * SQLite's insert, trim and commit were about half of the server's
 * instructions per delivery at 100 clients (issue 11). Its ids, order and
 * queries are the table's.
 * Statements are prepared once and reset after each use.
 */
#include "apps/chat_store.h"

#include "sockstack/config.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    Q_USER_GET, Q_USER_TOUCH, Q_USER_REG, Q_USERS_LIST,
    Q_HIST_ADD, Q_HIST_TRIM, Q_HIST_LAST,
    Q_HIST_SINCE, Q_HIST_BEFORE, Q_META_GET, Q_META_SET, Q_FILE_DONE_SHA,
    Q_OFF_ADD, Q_OFF_LIST, Q_OFF_DEL, Q_OFF_COUNT, Q_OFF_DEL_ALL,
    Q_FILE_NEW, Q_FILE_DONE, Q_FILE_GET, Q_FILE_DEL, Q_FILE_BYTES,
    Q_FILE_PENDING, Q_FILE_PROGRESS, Q_FILE_DROP, Q_FILE_COUNT_TO,
    Q_FILE_COUNT_FROM, Q_FILE_DEL_TO, Q_DATA_ADD, Q_DATA_READ, Q_DATA_DEL,
    Q_DATA_DROP, Q_BEGIN, Q_COMMIT, Q_ROLLBACK,
    Q_COUNT
};

static const char *const sql_text[Q_COUNT] = {
    [Q_USER_GET] = "SELECT salt, hash, iter, last_seen FROM users WHERE nick = ?1",
    [Q_USER_TOUCH] = "INSERT INTO users(nick, last_seen) VALUES(?1, ?2) "
                     "ON CONFLICT(nick) DO UPDATE SET last_seen = ?2",
    [Q_USER_REG] = "INSERT INTO users(nick, salt, hash, iter, last_seen) "
                   "VALUES(?1, ?2, ?3, ?4, 0) ON CONFLICT(nick) DO UPDATE "
                   "SET salt = ?2, hash = ?3, iter = ?4",
    [Q_USERS_LIST] = "SELECT nick, last_seen FROM users "
                     "ORDER BY last_seen DESC, nick LIMIT ?1",
    [Q_HIST_ADD] = "INSERT INTO history(ts, nick, kind, text) VALUES(?1, ?2, ?3, ?4)",
    /* A range on the primary key: cost is the rows dropped, not the table. */
    [Q_HIST_TRIM] = "DELETE FROM history WHERE id <= ?1",
    [Q_HIST_LAST] = "SELECT ts, nick, kind, text FROM (SELECT * FROM history "
                    "ORDER BY id DESC LIMIT ?1) ORDER BY id",
    [Q_HIST_SINCE] = "SELECT ts, nick, kind, text FROM (SELECT * FROM history "
                     "WHERE ts >= ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
    [Q_HIST_BEFORE] = "SELECT ts, nick, kind, text FROM (SELECT * FROM history "
                      "WHERE ts < ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
    [Q_META_GET] = "SELECT v FROM meta WHERE k = ?1",
    [Q_META_SET] = "INSERT INTO meta(k, v) VALUES(?1, ?2) "
                   "ON CONFLICT(k) DO UPDATE SET v = ?2",
    [Q_OFF_ADD] = "INSERT INTO offline(ts, sender, recipient, text) "
                  "VALUES(?1, ?2, ?3, ?4)",
    [Q_OFF_LIST] = "SELECT id, ts, sender, text FROM offline "
                   "WHERE recipient = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
    [Q_OFF_DEL] = "DELETE FROM offline WHERE recipient = ?1 AND id <= ?2",
    [Q_OFF_COUNT] = "SELECT COUNT(*) FROM offline WHERE recipient = ?1",
    [Q_OFF_DEL_ALL] = "DELETE FROM offline WHERE recipient = ?1",
    [Q_FILE_NEW] = "INSERT INTO files(ts, sender, recipient, name, size, sha256, "
                   "received, complete) VALUES(?1, ?2, ?3, ?4, ?5, ?6, 0, 0)",
    [Q_FILE_DONE] = "UPDATE files SET complete = 1 WHERE id = ?1",
    [Q_FILE_DONE_SHA] = "UPDATE files SET complete = 1, sha256 = ?2 WHERE id = ?1",
    [Q_FILE_GET] = "SELECT id, ts, sender, recipient, name, size, received, sha256, "
                   "complete FROM files WHERE id = ?1",
    [Q_FILE_DEL] = "DELETE FROM files WHERE id = ?1",
    [Q_FILE_BYTES] = "SELECT COALESCE(SUM(size), 0) FROM files WHERE recipient = ?1",
    [Q_FILE_PENDING] = "SELECT id, ts, sender, recipient, name, size, received, "
                       "sha256, complete FROM files WHERE recipient = ?1 "
                       "AND complete = 1 ORDER BY id LIMIT ?2",
    [Q_FILE_PROGRESS] = "UPDATE files SET received = ?2 WHERE id = ?1",
    [Q_FILE_DROP] = "DELETE FROM files WHERE complete = 0",
    [Q_FILE_COUNT_TO] = "SELECT COUNT(*) FROM files WHERE recipient = ?1",
    [Q_FILE_COUNT_FROM] = "SELECT COUNT(*) FROM files WHERE sender = ?1",
    [Q_FILE_DEL_TO] = "DELETE FROM files WHERE recipient = ?1",
    [Q_DATA_ADD] = "INSERT INTO file_data(file, off, data) VALUES(?1, ?2, ?3)",
    /* The piece holding ?2 and those after it, in order. */
    [Q_DATA_READ] = "SELECT off, data FROM file_data WHERE file = ?1 AND off >= "
                    "(SELECT COALESCE(MAX(off), 0) FROM file_data WHERE file = ?1 "
                    "AND off <= ?2) ORDER BY off",
    [Q_DATA_DEL] = "DELETE FROM file_data WHERE file = ?1",
    [Q_DATA_DROP] = "DELETE FROM file_data WHERE file NOT IN (SELECT id FROM files)",
    /* The group commit's, prepared once: sqlite3_exec parsed them each
     * time, a tenth of the store's cost per message (issue 11). */
    [Q_BEGIN] = "BEGIN",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS users("
    " nick TEXT PRIMARY KEY COLLATE NOCASE, salt BLOB, hash BLOB,"
    " iter INTEGER, last_seen INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS history("
    " id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, nick TEXT NOT NULL,"
    " kind INTEGER NOT NULL, text TEXT NOT NULL);"
    /* Room settings (the topic), one row each. */
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS offline("
    " id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, sender TEXT NOT NULL,"
    " recipient TEXT NOT NULL COLLATE NOCASE, text TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS offline_rcpt ON offline(recipient, id);"
    "CREATE TABLE IF NOT EXISTS files("
    " id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, sender TEXT NOT NULL,"
    " recipient TEXT NOT NULL COLLATE NOCASE, name TEXT NOT NULL,"
    " size INTEGER NOT NULL, sha256 TEXT NOT NULL, received INTEGER NOT NULL,"
    " complete INTEGER NOT NULL, data BLOB);"
    "CREATE INDEX IF NOT EXISTS files_rcpt ON files(recipient, id);"
    "CREATE INDEX IF NOT EXISTS files_sender ON files(sender COLLATE NOCASE);"
    /* File bytes, one row per uploaded chunk: the store grows as data
     * arrives, nothing is allocated for the announced size up front. */
    "CREATE TABLE IF NOT EXISTS file_data("
    " file INTEGER NOT NULL, off INTEGER NOT NULL, data BLOB NOT NULL,"
    " PRIMARY KEY(file, off));";

/* One history row of the in-memory ring: nick and text side by side. */
struct hrow {
    int64_t ts;
    int kind;
    size_t cap;          /* bytes allocated, this header included */
    const char *text;
    char nick[];
};

struct ss__chat_store {
    sqlite3 *db;
    sqlite3_stmt *q[Q_COUNT];
    bool mem;      /* no file: the history may live in the ring */
    /* The ring (mem and hist_keep > 0): ring_n rows, the oldest at
     * ring_head, ids ring_next - ring_n .. ring_next - 1. */
    struct hrow **ring;
    int ring_head, ring_n;
    int64_t ring_next;
    int hist_keep; /* > 0: history rows kept (the newest); 0: all */
    bool batch;    /* history inserts share a transaction (store_batch) */
    bool in_txn;   /* that transaction is open */
    int txn_rows;  /* history rows in it */
    int64_t hist_last; /* the newest history id written in it */
};

int ss__chat_store_open(const char *path, ss__chat_store **out)
{
    *out = NULL;
    ss__chat_store *st = calloc(1, sizeof *st);
    if (!st)
        return -ENOMEM;
    if (!path || !*path)
        path = ":memory:";
    st->mem = !strcmp(path, ":memory:");
    st->ring_next = 1; /* the table's first rowid */
    int rc = sqlite3_open_v2(path, &st->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                 SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK)
        goto fail;
    sqlite3_busy_timeout(st->db, 2000);
    /* WAL: readers never block the writer; commits survive a killed process. */
    if (sqlite3_exec(st->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                             "PRAGMA foreign_keys=ON;", NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    if (sqlite3_exec(st->db, schema, NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    for (int i = 0; i < Q_COUNT; i++)
        if (sqlite3_prepare_v3(st->db, sql_text[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &st->q[i], NULL) != SQLITE_OK)
            goto fail;
    *out = st;
    return 0;
fail:
    ss__chat_store_close(st);
    return rc == SQLITE_CANTOPEN ? -ENOENT : -EIO;
}

void ss__chat_store_close(ss__chat_store *st)
{
    if (!st)
        return;
    ss__chat_store_commit(st); /* a clean shutdown keeps the last batch */
    for (int i = 0; i < st->ring_n; i++)
        free(st->ring[(st->ring_head + i) % st->hist_keep]);
    free(st->ring);
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(st->q[i]);
    sqlite3_close(st->db);
    free(st);
}

/* The prepared statement i, reset and unbound, ready for binding. */
static sqlite3_stmt *q(ss__chat_store *st, int i)
{
    sqlite3_reset(st->q[i]);
    sqlite3_clear_bindings(st->q[i]);
    return st->q[i];
}

/* Run a statement that returns no rows; 0 or -EIO. */
static int run(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

static void copy_text(char *dst, size_t cap, sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

int ss__chat_user_get(ss__chat_store *st, const char *nick, struct ss__chat_user *u)
{
    memset(u, 0, sizeof *u);
    sqlite3_stmt *s = q(st, Q_USER_GET);
    sqlite3_bind_text(s, 1, nick, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        u->exists = true;
        if (sqlite3_column_bytes(s, 0) == 16 && sqlite3_column_bytes(s, 1) == 32) {
            u->registered = true;
            memcpy(u->salt, sqlite3_column_blob(s, 0), 16);
            memcpy(u->hash, sqlite3_column_blob(s, 1), 32);
            u->iter = sqlite3_column_int(s, 2);
        }
        u->last_seen = sqlite3_column_int64(s, 3);
        rc = SQLITE_DONE;
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

int ss__chat_user_touch(ss__chat_store *st, const char *nick, int64_t now)
{
    sqlite3_stmt *s = q(st, Q_USER_TOUCH);
    sqlite3_bind_text(s, 1, nick, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, now);
    return run(s);
}

int ss__chat_user_register(ss__chat_store *st, const char *nick, int iter,
                           const uint8_t salt[16], const uint8_t hash[32])
{
    sqlite3_stmt *s = q(st, Q_USER_REG);
    sqlite3_bind_text(s, 1, nick, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 2, salt, 16, SQLITE_STATIC);
    sqlite3_bind_blob(s, 3, hash, 32, SQLITE_STATIC);
    sqlite3_bind_int(s, 4, iter);
    return run(s);
}

int ss__chat_users_list(ss__chat_store *st, int max, ss__chat_user_cb cb, void *arg)
{
    sqlite3_stmt *s = q(st, Q_USERS_LIST);
    sqlite3_bind_int(s, 1, max);
    int n = 0, rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        cb(arg, (const char *)sqlite3_column_text(s, 0), sqlite3_column_int64(s, 1));
        n++;
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? n : -EIO;
}

/* Drop the history rows below the newest `keep` ones: ids only grow (one
 * writer, rows only trimmed from the old end), so the rows at or below
 * newest - keep are exactly the surplus. */
static int hist_trim(ss__chat_store *st, int64_t newest)
{
    if (st->hist_keep <= 0 || newest <= st->hist_keep)
        return 0;
    sqlite3_stmt *s = q(st, Q_HIST_TRIM);
    sqlite3_bind_int64(s, 1, newest - st->hist_keep);
    return run(s);
}

void ss__chat_store_batch(ss__chat_store *st, bool on)
{
    if (!on)
        ss__chat_store_commit(st);
    st->batch = on;
}

bool ss__chat_store_pending(const ss__chat_store *st) { return st->in_txn; }

int ss__chat_store_commit(ss__chat_store *st)
{
    if (!st->in_txn)
        return 0;
    st->in_txn = false;
    st->txn_rows = 0;
    if (!hist_trim(st, st->hist_last) && !run(st->q[Q_COMMIT]))
        return 0;
    run(st->q[Q_ROLLBACK]);
    return -EIO;
}

/* The ring's insert: the oldest row goes once hist_keep are there. */
static int64_t ring_add(ss__chat_store *st, int64_t ts, const char *nick, int kind,
                        const char *text)
{
    size_t nn = strlen(nick) + 1, tn = strlen(text) + 1, need = sizeof(struct hrow) + nn + tn;
    bool full = st->ring_n == st->hist_keep;
    struct hrow *h = full ? st->ring[st->ring_head] : NULL;
    if (!h || h->cap < need) {
        /* Sizes in steps of 64, so that the row that falls out usually
         * takes the new one (no malloc and free per message). */
        size_t cap = (need + 63) & ~(size_t)63;
        struct hrow *nh = malloc(cap);
        if (!nh)
            return -ENOMEM;
        free(h);
        h = nh;
        h->cap = cap;
    }
    h->ts = ts;
    h->kind = kind;
    memcpy(h->nick, nick, nn);
    memcpy(h->nick + nn, text, tn);
    h->text = h->nick + nn;
    if (full) {
        st->ring[st->ring_head] = h;
        st->ring_head = (st->ring_head + 1) % st->hist_keep;
    } else {
        st->ring[(st->ring_head + st->ring_n++) % st->hist_keep] = h;
    }
    return st->ring_next++;
}

/* The ring's queries, as Q_HIST_LAST/SINCE/BEFORE: of the rows with
 * lo <= ts <= hi, the newest n, oldest first. */
static int ring_rows(ss__chat_store *st, int n, int64_t lo, int64_t hi, ss__chat_hist_cb cb,
                     void *arg)
{
    int k = st->ring_n, got = 0;
    while (k > 0 && got < n) { /* back from the newest to the n-th match */
        const struct hrow *h = st->ring[(st->ring_head + --k) % st->hist_keep];
        got += h->ts >= lo && h->ts <= hi;
    }
    for (int left = got; left > 0; k++) {
        const struct hrow *h = st->ring[(st->ring_head + k) % st->hist_keep];
        if (h->ts >= lo && h->ts <= hi) {
            cb(arg, h->ts, h->nick, h->kind, h->text);
            left--;
        }
    }
    return got;
}

int64_t ss__chat_history_add(ss__chat_store *st, int64_t ts, const char *nick,
                             int kind, const char *text)
{
    if (st->ring)
        return ring_add(st, ts, nick, kind, text);
    if (st->batch && !st->in_txn) {
        if (run(st->q[Q_BEGIN]))
            return -EIO;
        st->in_txn = true;
    }
    sqlite3_stmt *s = q(st, Q_HIST_ADD);
    sqlite3_bind_int64(s, 1, ts);
    sqlite3_bind_text(s, 2, nick, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 3, kind);
    sqlite3_bind_text(s, 4, text, -1, SQLITE_STATIC);
    int err = run(s);
    if (err)
        return err;
    int64_t id = sqlite3_last_insert_rowid(st->db);
    if (!st->in_txn) {
        /* At most one row per insert once the table is full. */
        err = hist_trim(st, id);
        return err ? err : id;
    }
    /* Trimmed once per transaction, at its commit. */
    st->hist_last = id;
    if (++st->txn_rows >= SS_CHAT_STORE_BATCH && (err = ss__chat_store_commit(st)))
        return err;
    return id;
}

void ss__chat_history_keep(ss__chat_store *st, int keep)
{
    if (st->ring)
        return; /* the ring's size is set once, at open, before any row */
    st->hist_keep = keep > 0 ? keep : 0;
    /* In memory: the ring (without memory for it, the table, trimmed). */
    if (st->mem && st->hist_keep)
        st->ring = calloc((size_t)st->hist_keep, sizeof *st->ring);
}


/* Each row (id, nick, time, text) of a history statement to cb; the
 * count of rows, or -EIO. */
static int hist_rows(sqlite3_stmt *s, ss__chat_hist_cb cb, void *arg)
{
    int count = 0, rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        cb(arg, sqlite3_column_int64(s, 0), (const char *)sqlite3_column_text(s, 1),
           sqlite3_column_int(s, 2), (const char *)sqlite3_column_text(s, 3));
        count++;
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? count : -EIO;
}
int ss__chat_history_last(ss__chat_store *st, int n, int64_t since,
                          ss__chat_hist_cb cb, void *arg)
{
    if (st->ring)
        return ring_rows(st, n, since >= 0 ? since : INT64_MIN, INT64_MAX, cb, arg);
    sqlite3_stmt *s = q(st, since >= 0 ? Q_HIST_SINCE : Q_HIST_LAST);
    if (since >= 0) {
        sqlite3_bind_int64(s, 1, since);
        sqlite3_bind_int(s, 2, n);
    } else {
        sqlite3_bind_int(s, 1, n);
    }
    return hist_rows(s, cb, arg);
}

int ss__chat_history_before(ss__chat_store *st, int n, int64_t before,
                            ss__chat_hist_cb cb, void *arg)
{
    if (st->ring)
        return before == INT64_MIN ? 0 : ring_rows(st, n, INT64_MIN, before - 1, cb, arg);
    sqlite3_stmt *s = q(st, Q_HIST_BEFORE);
    sqlite3_bind_int64(s, 1, before);
    sqlite3_bind_int(s, 2, n);
    return hist_rows(s, cb, arg);
}

int ss__chat_meta_get(ss__chat_store *st, const char *k, char *v, size_t cap)
{
    sqlite3_stmt *s = q(st, Q_META_GET);
    sqlite3_bind_text(s, 1, k, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    int ret = 0;
    if (rc == SQLITE_ROW) {
        snprintf(v, cap, "%s", (const char *)sqlite3_column_text(s, 0));
        ret = 1;
    } else if (rc != SQLITE_DONE) {
        ret = -EIO;
    }
    sqlite3_reset(s);
    return ret;
}

int ss__chat_meta_set(ss__chat_store *st, const char *k, const char *v)
{
    sqlite3_stmt *s = q(st, Q_META_SET);
    sqlite3_bind_text(s, 1, k, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, v, -1, SQLITE_STATIC);
    return run(s);
}

int64_t ss__chat_offline_add(ss__chat_store *st, int64_t ts, const char *from,
                             const char *to, const char *text)
{
    sqlite3_stmt *s = q(st, Q_OFF_ADD);
    sqlite3_bind_int64(s, 1, ts);
    sqlite3_bind_text(s, 2, from, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, to, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, text, -1, SQLITE_STATIC);
    int err = run(s);
    return err ? err : sqlite3_last_insert_rowid(st->db);
}

int ss__chat_offline_page(ss__chat_store *st, const char *to, int64_t after, int max,
                          ss__chat_off_cb cb, void *arg, int64_t *last)
{
    sqlite3_stmt *s = q(st, Q_OFF_LIST);
    sqlite3_bind_text(s, 1, to, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, after);
    sqlite3_bind_int(s, 3, max);
    *last = after;
    int n = 0, rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        *last = sqlite3_column_int64(s, 0);
        cb(arg, sqlite3_column_int64(s, 1), (const char *)sqlite3_column_text(s, 2),
           (const char *)sqlite3_column_text(s, 3));
        n++;
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? n : -EIO;
}

int ss__chat_offline_delete(ss__chat_store *st, const char *to, int64_t upto)
{
    sqlite3_stmt *s = q(st, upto < 0 ? Q_OFF_DEL_ALL : Q_OFF_DEL);
    sqlite3_bind_text(s, 1, to, -1, SQLITE_STATIC);
    if (upto >= 0)
        sqlite3_bind_int64(s, 2, upto);
    return run(s);
}

/* One COUNT(*) with a text key. */
static int count_by(ss__chat_store *st, int qi, const char *key)
{
    sqlite3_stmt *s = q(st, qi);
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    int n = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : -EIO;
    sqlite3_reset(s);
    return n;
}

int ss__chat_offline_count(ss__chat_store *st, const char *to)
{
    return count_by(st, Q_OFF_COUNT, to);
}

int ss__chat_file_count(ss__chat_store *st, const char *to, const char *from)
{
    return to ? count_by(st, Q_FILE_COUNT_TO, to) : count_by(st, Q_FILE_COUNT_FROM, from);
}

int ss__chat_forget(ss__chat_store *st, const char *nick)
{
    int err = ss__chat_offline_delete(st, nick, -1);
    sqlite3_stmt *s = q(st, Q_FILE_DEL_TO);
    sqlite3_bind_text(s, 1, nick, -1, SQLITE_STATIC);
    int e2 = run(s);
    int e3 = run(q(st, Q_DATA_DROP));
    return err ? err : e2 ? e2 : e3;
}

int64_t ss__chat_file_create(ss__chat_store *st, int64_t ts, const char *from,
                             const char *to, const char *name, uint64_t size,
                             const char *sha256)
{
    sqlite3_stmt *s = q(st, Q_FILE_NEW);
    sqlite3_bind_int64(s, 1, ts);
    sqlite3_bind_text(s, 2, from, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, to, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, (sqlite3_int64)size);
    sqlite3_bind_text(s, 6, sha256, -1, SQLITE_STATIC);
    int err = run(s);
    return err ? err : sqlite3_last_insert_rowid(st->db);
}

int ss__chat_file_write(ss__chat_store *st, int64_t id, uint64_t off,
                        const void *data, size_t len)
{
    sqlite3_stmt *s = q(st, Q_DATA_ADD);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)off);
    sqlite3_bind_blob(s, 3, data, (int)len, SQLITE_STATIC);
    int err = run(s);
    if (err)
        return err;
    s = q(st, Q_FILE_PROGRESS);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)(off + len));
    return run(s);
}

int ss__chat_file_read(ss__chat_store *st, int64_t id, uint64_t off, void *buf,
                       size_t len)
{
    sqlite3_stmt *s = q(st, Q_DATA_READ);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)off);
    unsigned char *out = buf;
    size_t got = 0;
    int rc;
    while (got < len && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        uint64_t at = (uint64_t)sqlite3_column_int64(s, 0);
        const unsigned char *p = sqlite3_column_blob(s, 1);
        size_t n = (size_t)sqlite3_column_bytes(s, 1);
        uint64_t want = off + got;
        if (at > want || at + n <= want)
            break; /* a hole: the file is not all there */
        size_t skip = (size_t)(want - at), take = n - skip;
        if (take > len - got)
            take = len - got;
        memcpy(out + got, p + skip, take);
        got += take;
    }
    sqlite3_reset(s);
    return got == len ? 0 : -EINVAL;
}

int ss__chat_file_complete(ss__chat_store *st, int64_t id)
{
    sqlite3_stmt *s = q(st, Q_FILE_DONE);
    sqlite3_bind_int64(s, 1, id);
    return run(s);
}

int ss__chat_file_complete_sha(ss__chat_store *st, int64_t id, const char *sha256)
{
    sqlite3_stmt *s = q(st, Q_FILE_DONE_SHA);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_text(s, 2, sha256, -1, SQLITE_STATIC);
    return run(s);
}

static void file_row(sqlite3_stmt *s, struct ss__chat_file *f)
{
    f->id = sqlite3_column_int64(s, 0);
    f->ts = sqlite3_column_int64(s, 1);
    copy_text(f->sender, sizeof f->sender, s, 2);
    copy_text(f->recipient, sizeof f->recipient, s, 3);
    copy_text(f->name, sizeof f->name, s, 4);
    f->size = (uint64_t)sqlite3_column_int64(s, 5);
    f->received = (uint64_t)sqlite3_column_int64(s, 6);
    copy_text(f->sha256, sizeof f->sha256, s, 7);
    f->complete = sqlite3_column_int(s, 8) != 0;
}

int ss__chat_file_get(ss__chat_store *st, int64_t id, struct ss__chat_file *f)
{
    sqlite3_stmt *s = q(st, Q_FILE_GET);
    sqlite3_bind_int64(s, 1, id);
    int rc = sqlite3_step(s);
    int err = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : -EIO;
    if (!err)
        file_row(s, f);
    sqlite3_reset(s);
    return err;
}

int ss__chat_file_delete(ss__chat_store *st, int64_t id)
{
    sqlite3_stmt *s = q(st, Q_DATA_DEL);
    sqlite3_bind_int64(s, 1, id);
    int err = run(s);
    s = q(st, Q_FILE_DEL);
    sqlite3_bind_int64(s, 1, id);
    int e2 = run(s);
    return err ? err : e2;
}

int ss__chat_file_pending_bytes(ss__chat_store *st, const char *to, uint64_t *out)
{
    sqlite3_stmt *s = q(st, Q_FILE_BYTES);
    sqlite3_bind_text(s, 1, to, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    *out = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : -EIO;
}

int ss__chat_file_pending(ss__chat_store *st, const char *to, int max,
                          ss__chat_file_cb cb, void *arg)
{
    sqlite3_stmt *s = q(st, Q_FILE_PENDING);
    sqlite3_bind_text(s, 1, to, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, max);
    int n = 0, rc;
    struct ss__chat_file f;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        file_row(s, &f);
        cb(arg, &f);
        n++;
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? n : -EIO;
}

int ss__chat_file_drop_incomplete(ss__chat_store *st)
{
    int err = run(q(st, Q_FILE_DROP));
    return err ? err : run(q(st, Q_DATA_DROP));
}

int ss__chat_file_seed(ss__chat_store *st, int64_t base)
{
    static const char sql[] =
        "INSERT INTO files(id, ts, sender, recipient, name, size, sha256, received, "
        "complete) SELECT ?1, 0, '', '', '', 0, '', 0, 1 WHERE NOT EXISTS "
        "(SELECT 1 FROM files)";
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
        return -EIO;
    sqlite3_bind_int64(s, 1, base);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : -EIO;
}
