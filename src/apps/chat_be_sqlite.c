/* chat_be_sqlite: the room's backend on its SQLite store (single node).
 * Every operation is one committed statement and completes before the
 * call returns (see chat_backend.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/chat_backend.h"

struct be_sqlite {
    ss__chat_be be;
    ss__chat_store *st;
};

static ss__chat_store *st_of(ss__chat_be *be) { return ((struct be_sqlite *)be)->st; }

static void finish(ss__chat_done done, void *arg, int err)
{
    if (done)
        done(arg, err < 0 ? err : 0);
}

static void be_close(ss__chat_be *be) { free(be); }

static void be_user_get(ss__chat_be *be, const char *nick, struct ss__chat_res *res,
                        ss__chat_done done, void *arg)
{
    finish(done, arg, ss__chat_user_get(st_of(be), nick, &res->u));
}

static void be_user_touch(ss__chat_be *be, const char *nick, int64_t now,
                          ss__chat_done done, void *arg)
{
    finish(done, arg, ss__chat_user_touch(st_of(be), nick, now));
}

static void be_user_register(ss__chat_be *be, const char *nick, int iter,
                             const uint8_t salt[16], const uint8_t hash[32],
                             ss__chat_done done, void *arg)
{
    finish(done, arg, ss__chat_user_register(st_of(be), nick, iter, salt, hash));
}

static void be_users_list(ss__chat_be *be, int max, ss__chat_user_cb row, void *row_arg,
                          struct ss__chat_res *res, ss__chat_done done, void *arg)
{
    int n = ss__chat_users_list(st_of(be), max, row, row_arg);
    res->n = n < 0 ? 0 : n;
    finish(done, arg, n);
}

static void be_hist_add(ss__chat_be *be, int64_t ts, const char *nick, int kind,
                        const char *text, struct ss__chat_res *res, ss__chat_done done,
                        void *arg)
{
    int64_t id = ss__chat_history_add(st_of(be), ts, nick, kind, text);
    if (id >= 0) { /* the id in decimal, once per public message: by hand */
        char tmp[24];
        int n = 0;
        uint64_t v = (uint64_t)id;
        do
            tmp[n++] = (char)('0' + v % 10);
        while ((v /= 10) && n < (int)sizeof tmp);
        for (int i = 0; i < n; i++)
            res->id[i] = tmp[n - 1 - i];
        res->id[n] = '\0';
    }
    finish(done, arg, id < 0 ? (int)id : 0);
}

static void be_hist_range(ss__chat_be *be, int n, int64_t since, int64_t before,
                          ss__chat_hist_cb row, void *row_arg, struct ss__chat_res *res,
                          ss__chat_done done, void *arg)
{
    int got = before >= 0 ? ss__chat_history_before(st_of(be), n, before, row, row_arg)
                          : ss__chat_history_last(st_of(be), n, since, row, row_arg);
    res->n = got < 0 ? 0 : got;
    finish(done, arg, got);
}

static void be_meta_get(ss__chat_be *be, const char *k, struct ss__chat_res *res,
                        ss__chat_done done, void *arg)
{
    int got = ss__chat_meta_get(st_of(be), k, res->v, sizeof res->v);
    res->found = got > 0;
    finish(done, arg, got);
}

static void be_meta_set(ss__chat_be *be, const char *k, const char *v, ss__chat_done done,
                        void *arg)
{
    finish(done, arg, ss__chat_meta_set(st_of(be), k, v));
}

static void be_off_add(ss__chat_be *be, int64_t ts, const char *from, const char *to,
                       const char *text, int max, struct ss__chat_res *res,
                       ss__chat_done done, void *arg)
{
    ss__chat_store *st = st_of(be);
    int n = ss__chat_offline_count(st, to);
    if (n < 0 || n >= max) {
        finish(done, arg, n < 0 ? n : -ENOSPC);
        return;
    }
    int64_t id = ss__chat_offline_add(st, ts, from, to, text);
    if (id >= 0)
        snprintf(res->id, sizeof res->id, "%lld", (long long)id);
    finish(done, arg, id < 0 ? (int)id : 0);
}

static void be_off_page(ss__chat_be *be, const char *to, const char *after, int max,
                        ss__chat_off_cb row, void *row_arg, struct ss__chat_res *res,
                        ss__chat_done done, void *arg)
{
    int64_t from = after[0] ? strtoll(after, NULL, 10) : 0, last = from;
    int n = ss__chat_offline_page(st_of(be), to, from, max, row, row_arg, &last);
    res->n = n < 0 ? 0 : n;
    snprintf(res->last, sizeof res->last, "%lld", (long long)last);
    finish(done, arg, n);
}

static void be_off_delete(ss__chat_be *be, const char *to, const char *upto,
                          ss__chat_done done, void *arg)
{
    finish(done, arg, ss__chat_offline_delete(st_of(be), to, strtoll(upto, NULL, 10)));
}

static void be_forget_unregistered(ss__chat_be *be, const char *nick, ss__chat_done done,
                                   void *arg)
{
    struct ss__chat_user u;
    int err = ss__chat_user_get(st_of(be), nick, &u);
    if (!err && !u.registered)
        err = ss__chat_forget(st_of(be), nick);
    finish(done, arg, err);
}

static const struct ss__chat_be_ops sqlite_ops = {
    .close = be_close,
    .user_get = be_user_get,
    .user_touch = be_user_touch,
    .user_register = be_user_register,
    .users_list = be_users_list,
    .hist_add = be_hist_add,
    .hist_range = be_hist_range,
    .meta_get = be_meta_get,
    .meta_set = be_meta_set,
    .off_add = be_off_add,
    .off_page = be_off_page,
    .off_delete = be_off_delete,
    .forget_unregistered = be_forget_unregistered,
};

int ss__chat_be_sqlite_new(ss__chat_store *st, ss__chat_be **out)
{
    struct be_sqlite *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    b->be.ops = &sqlite_ops;
    b->st = st;
    *out = &b->be;
    return 0;
}
