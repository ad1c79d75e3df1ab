/* chat_xfer: the client's half of chat file transfer (see chat.h).
 *
 * Download: CHUNK lines are decoded into a temporary file created next to
 * the destination (same directory, so rename is atomic); at FILEEND the
 * size and SHA-256 are checked and only a verified file gets its name.
 * Upload: the file is hashed once on open, then read chunk by chunk as the
 * connection has room, so memory stays at one chunk.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sockstack/chat.h"
#include "sockstack/config.h"
#include "sockstack/err.h"

struct ss_chat_dl {
    int64_t id;
    uint64_t size, off;
    int fd;
    char sha[65];
    char tmp[PATH_MAX + 300];
    char dir[PATH_MAX];
    char name[256];
    EVP_MD_CTX *md;
};

/* A download into tmp (a mkostemp template when resume is false, else a
 * fixed name that may hold the first bytes from an interrupted try). */
static int dl_open(ss_chat_dl **out, const char *dir, int64_t id, uint64_t size,
                   const char *sha_hex, const char *name, bool resume)
{
    *out = NULL;
    /* The name comes from the peer: no directories, nothing hidden. */
    if (!*name || strchr(name, '/') || name[0] == '.' || strlen(name) > 255 ||
        strlen(sha_hex) != 64)
        return -EINVAL;
    ss_chat_dl *d = calloc(1, sizeof *d);
    if (!d)
        return -ENOMEM;
    d->id = id;
    d->size = size;
    snprintf(d->sha, sizeof d->sha, "%s", sha_hex);
    snprintf(d->dir, sizeof d->dir, "%s", dir && *dir ? dir : ".");
    snprintf(d->name, sizeof d->name, "%s", name);
    if (resume) {
        snprintf(d->tmp, sizeof d->tmp, "%s/.%s.%.16s.part", d->dir, name, sha_hex);
        d->fd = open(d->tmp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    } else {
        snprintf(d->tmp, sizeof d->tmp, "%s/.%s.partXXXXXX", d->dir, name);
        d->fd = mkostemp(d->tmp, O_CLOEXEC);
    }
    d->md = EVP_MD_CTX_new();
    int err = d->fd < 0 ? -errno : !d->md || !EVP_DigestInit_ex(d->md, EVP_sha256(), NULL)
                                       ? -ENOMEM : 0;
    /* What an earlier try left: hash it and go on from its end. */
    unsigned char buf[65536];
    ssize_t n;
    while (!err && resume && (n = read(d->fd, buf, sizeof buf)) != 0) {
        if (n < 0 || d->off + (uint64_t)n > d->size) {
            err = n < 0 ? -errno : 0;
            if (!err && (ftruncate(d->fd, 0) < 0 || lseek(d->fd, 0, SEEK_SET) < 0))
                err = -errno;
            d->off = 0;
            EVP_DigestInit_ex(d->md, EVP_sha256(), NULL);
            break;
        }
        EVP_DigestUpdate(d->md, buf, (size_t)n);
        d->off += (uint64_t)n;
    }
    if (err) {
        if (d->fd >= 0) {
            close(d->fd);
            unlink(d->tmp);
        }
        EVP_MD_CTX_free(d->md);
        free(d);
        return err;
    }
    *out = d;
    return 0;
}

int ss_chat_dl_begin(ss_chat_dl **out, const char *dir, int64_t id, uint64_t size,
                     const char *sha_hex, const char *name)
{
    return dl_open(out, dir, id, size, sha_hex, name, false);
}

int ss_chat_dl_resume(ss_chat_dl **out, const char *dir, int64_t id, uint64_t size,
                      const char *sha_hex, const char *name)
{
    return dl_open(out, dir, id, size, sha_hex, name, true);
}

uint64_t ss_chat_dl_offset(const ss_chat_dl *d) { return d->off; }

void ss_chat_dl_keep(ss_chat_dl *d)
{
    if (!d)
        return;
    close(d->fd);
    EVP_MD_CTX_free(d->md);
    free(d);
}

int64_t ss_chat_dl_id(const ss_chat_dl *d) { return d->id; }

int ss_chat_dl_chunk(ss_chat_dl *d, uint64_t off, const char *b64)
{
    size_t blen = strlen(b64);
    unsigned char raw[SS_CHAT_MAX_LINE];
    if (blen % 4 || blen / 4 * 3 > sizeof raw || off != d->off)
        return -EPROTO;
    int n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)blen);
    if (n < 0)
        return -EPROTO;
    n -= (blen > 0 && b64[blen - 1] == '=') + (blen > 1 && b64[blen - 2] == '=');
    if (d->off + (uint64_t)n > d->size)
        return -EPROTO;
    for (size_t done = 0; done < (size_t)n;) {
        ssize_t w = write(d->fd, raw + done, (size_t)n - done);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        done += (size_t)w;
    }
    EVP_DigestUpdate(d->md, raw, (size_t)n);
    d->off += (uint64_t)n;
    return 0;
}

void ss_chat_dl_abort(ss_chat_dl *d)
{
    if (!d)
        return;
    close(d->fd);
    unlink(d->tmp);
    EVP_MD_CTX_free(d->md);
    free(d);
}

int ss_chat_dl_finish(ss_chat_dl *d, char *path, size_t cap)
{
    unsigned char md[32];
    char hex[65];
    EVP_DigestFinal_ex(d->md, md, NULL);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    if (d->off != d->size || strcmp(hex, d->sha)) {
        ss_chat_dl_abort(d);
        return SS_EDIGEST;
    }
    int err = fsync(d->fd) < 0 ? -errno : 0;
    for (int k = 0; !err && k < 1000; k++) {
        if (k == 0)
            snprintf(path, cap, "%s/%s", d->dir, d->name);
        else
            snprintf(path, cap, "%s/%s.%d", d->dir, d->name, k);
        /* RENAME_NOREPLACE: atomic, and never over someone's file. */
        if (renameat2(AT_FDCWD, d->tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0) {
            d->tmp[0] = '\0';
            break;
        }
        if (errno != EEXIST)
            err = -errno;
    }
    if (d->tmp[0]) {
        unlink(d->tmp);
        if (!err)
            err = -EEXIST;
    }
    close(d->fd);
    EVP_MD_CTX_free(d->md);
    free(d);
    return err;
}

struct ss_chat_ul {
    int fd;
    uint64_t size, off;
    char sha[65];
    char name[256];
};

int ss_chat_ul_open(ss_chat_ul **out, const char *path)
{
    *out = NULL;
    ss_chat_ul *u = calloc(1, sizeof *u);
    if (!u)
        return -ENOMEM;
    int err = ss_chat_file_sha256(path, u->sha, &u->size);
    if (!err) {
        u->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (u->fd < 0)
            err = -errno;
    }
    if (err) {
        free(u);
        return err;
    }
    const char *base = strrchr(path, '/');
    snprintf(u->name, sizeof u->name, "%s", base ? base + 1 : path);
    *out = u;
    return 0;
}

uint64_t ss_chat_ul_size(const ss_chat_ul *u) { return u->size; }
void ss_chat_ul_seek(ss_chat_ul *u, uint64_t off) { u->off = off < u->size ? off : u->size; }
const char *ss_chat_ul_sha256(const ss_chat_ul *u) { return u->sha; }
const char *ss_chat_ul_name(const ss_chat_ul *u) { return u->name; }

int ss_chat_ul_next(ss_chat_ul *u, int64_t id, char *buf, size_t cap)
{
    if (u->off >= u->size)
        return 0;
    unsigned char raw[SS_CHAT_CHUNK];
    size_t want = u->size - u->off < sizeof raw ? (size_t)(u->size - u->off) : sizeof raw;
    ssize_t n = pread(u->fd, raw, want, (off_t)u->off);
    if (n < 0)
        return -errno;
    if (n == 0)
        return -EIO; /* the file shrank since it was hashed */
    int head = snprintf(buf, cap, "/chunk %lld %llu ", (long long)id,
                        (unsigned long long)u->off);
    size_t need = (size_t)head + ((size_t)n + 2) / 3 * 4 + 2;
    if (head < 0 || need > cap)
        return -ENOSPC;
    int b = EVP_EncodeBlock((unsigned char *)buf + head, raw, (int)n);
    buf[head + b] = '\n';
    u->off += (uint64_t)n;
    return head + b + 1;
}

void ss_chat_ul_close(ss_chat_ul *u)
{
    if (!u)
        return;
    close(u->fd);
    free(u);
}
