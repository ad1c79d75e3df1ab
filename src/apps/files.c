/* files service and clients (see sockstack/files.h for the wire format).
 *
 * Server, per connection (event style): IDLE -> a request -> one of
 *   PUT_DATA     DATA frames go to the temporary file (holes for zero runs)
 *                and into SHA-256; END checks size and digest, fsyncs and
 *                renames into place, then OK.
 *   PUT_DISCARD  a write failed (ERROR already sent, temp file removed):
 *                DATA is ignored until END, so the client reads the reason
 *                instead of a reset.
 *   GET_SEND     producer: DATA chunks while the output queue has room
 *                (more on on_drain), then END.
 *   LIST_SEND    producer: ENTRY per directory entry, then LISTEND.
 * and back to IDLE for the next request on the same connection.
 */
#include "sockstack/files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "sockstack/err.h"
#include "sockstack/frame.h"
#include "core/bytes.h"

/* ---- helpers shared by both sides ---------------------------------------- */

static bool all_zero(const uint8_t *p, size_t n)
{
    static const uint8_t zero[4096];
    while (n) {
        size_t k = n < sizeof zero ? n : sizeof zero;
        if (memcmp(p, zero, k))
            return false;
        p += k;
        n -= k;
    }
    return true;
}

/* Write n bytes at the current offset; an all-zero chunk becomes a hole. */
static int write_sparse(int fd, const uint8_t *p, size_t n)
{
    if (n >= 4096 && all_zero(p, n))
        return lseek(fd, (off_t)n, SEEK_CUR) < 0 ? -errno : 0;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Hash the first len bytes of fd (from offset 0) into sha. */
static int hash_prefix(int fd, uint64_t len, EVP_MD_CTX *sha)
{
    uint8_t *buf = malloc(SS_FILES_CHUNK);
    if (!buf)
        return -ENOMEM;
    uint64_t off = 0;
    int rc = 0;
    while (off < len) {
        size_t want = len - off < SS_FILES_CHUNK ? (size_t)(len - off) : SS_FILES_CHUNK;
        ssize_t r = pread(fd, buf, want, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = r < 0 ? -errno : -EIO;
            break;
        }
        EVP_DigestUpdate(sha, buf, (size_t)r);
        off += (uint64_t)r;
    }
    free(buf);
    return rc;
}

int ss_files_part_name(const char *path, char *out, size_t cap)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    int n = snprintf(out, cap, "%.*s.%s.sockstack-part",
                     slash ? (int)(base - path) : 0, path, base);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* A name the server accepts: relative, no "..", no empty last part. */
static int check_name(const char *name, bool allow_empty)
{
    if (!*name)
        return allow_empty ? 0 : SS_EPATH;
    if (name[0] == '/')
        return SS_EPATH;
    const char *p = name;
    while (*p) {
        const char *e = strchrnul(p, '/');
        if (e - p == 2 && p[0] == '.' && p[1] == '.')
            return SS_EPATH;
        p = *e ? e + 1 : e;
    }
    size_t n = strlen(name);
    if (name[n - 1] == '/' && !allow_empty)
        return SS_EPATH;
    return 0;
}

int ss_files_open_beneath(int root_fd, const char *name, int flags, int mode)
{
    int rc = check_name(name, true);
    if (rc < 0)
        return rc;
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .mode = (flags & O_CREAT) ? (uint64_t)mode : 0,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(SYS_openat2, root_fd, *name ? name : ".", &how, sizeof how);
    if (fd < 0)
        return errno == EXDEV ? SS_EPATH : -errno;
    return (int)fd;
}

int ss_files_opts_open(ss_files_opts *o)
{
    o->root_fd = open(o->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return o->root_fd < 0 ? -errno : 0;
}

void ss_files_opts_close(ss_files_opts *o)
{
    if (o->root_fd >= 0)
        close(o->root_fd);
    o->root_fd = -1;
}

/* ---- server --------------------------------------------------------------- */

enum fstate { F_IDLE = 0, F_PUT_DATA, F_PUT_DISCARD, F_GET_SEND, F_LIST_SEND };

struct fconn {
    ss_conn *c;
    ss_frame_decoder dec;
    enum fstate st;
    char name[1024];
    /* put */
    int dirfd, tmpfd, lockfd;
    char base[256], part[300], lock[300];
    uint64_t size, got;
    uint32_t mode;
    bool replace; /* PUT's SS_FILES_FLAG_REPLACE */
    EVP_MD_CTX *sha;
    /* get / list */
    int rfd;
    DIR *dir;
    uint8_t *buf;
};

/* Copy a request's name (n bytes, no NUL) into x->name; a name longer
 * than SS_FILES_NAME_MAX is refused (its start is kept for the message),
 * never cut to what fits. */
static int take_name(struct fconn *x, const uint8_t *p, size_t n)
{
    _Static_assert(SS_FILES_NAME_MAX < sizeof x->name, "name buffer");
    if (n > SS_FILES_NAME_MAX) {
        snprintf(x->name, sizeof x->name, "%.40s... (%zu bytes, more than %d)",
                 (const char *)p, n, SS_FILES_NAME_MAX);
        return -ENAMETOOLONG;
    }
    memcpy(x->name, p, n);
    x->name[n] = '\0';
    return 0;
}

static const ss_files_opts *opts_of(ss_conn *c)
{
    static const ss_files_opts none = {.root_fd = -1};
    const ss_files_opts *o = ss_conn_server_ctx(c);
    return o ? o : &none;
}

static int root_of(ss_conn *c)
{
    return opts_of(c)->root_fd;
}

static int send_msg(ss_conn *c, uint8_t type, const void *a, size_t alen,
                    const void *b, size_t blen)
{
    uint8_t hdr[5];
    ss_frame_header_write(SS_FRAME_BE32, 1 + alen + blen, hdr);
    hdr[4] = type;
    struct iovec iov[3] = {{hdr, 5}, {(void *)a, alen}, {(void *)b, blen}};
    return ss_conn_writev(c, iov, 3);
}

static int send_error(struct fconn *x, int err, const char *what)
{
    char msg[1400];
    int n = snprintf(msg, sizeof msg, "%s: %s%s%s", x->name[0] ? x->name : "/",
                     what ? what : "", what ? ": " : "", ss_strerror(err));
    ss_server_log(ss_conn_server(x->c), SS_LOG_INFO, "%s: %s", ss_conn_peer_str(x->c), msg);
    return send_msg(x->c, SS_FILES_ERROR, msg,
                    (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1, NULL, 0);
}

static void put_cleanup(struct fconn *x, bool remove_part)
{
    if (x->tmpfd >= 0)
        close(x->tmpfd);
    x->tmpfd = -1;
    /* Only the owner of the name touches its partial file. */
    if (remove_part && x->lockfd >= 0 && x->part[0])
        unlinkat(x->dirfd, x->part, 0);
    if (x->lockfd >= 0) {
        /* Removed while still held: a waiter that opened this inode sees
         * that the name no longer leads to it and takes the new one. */
        unlinkat(x->dirfd, x->lock, 0);
        close(x->lockfd);
        x->lockfd = -1;
    }
    if (x->dirfd >= 0)
        close(x->dirfd);
    x->dirfd = -1;
    x->part[0] = '\0';
    if (x->sha)
        EVP_MD_CTX_free(x->sha);
    x->sha = NULL;
}

static int put_fail(struct fconn *x, int err, const char *what)
{
    put_cleanup(x, true);
    x->st = F_PUT_DISCARD;
    return send_error(x, err, what);
}

/* Refused before OK: nothing was accepted, the next request may follow. */
static int put_refuse(struct fconn *x, int err, const char *what)
{
    put_cleanup(x, true);
    x->st = F_IDLE;
    return send_error(x, err, what);
}

/* Split name into its directory (opened beneath root) and last part. */
static int open_parent(struct fconn *x, const char *name)
{
    const char *slash = strrchr(name, '/');
    const char *base = slash ? slash + 1 : name;
    if (!*base || !strcmp(base, ".") || !strcmp(base, "..") || strlen(base) >= 200)
        return SS_EPATH;
    char dir[1024];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - name) : 0, name);
    int fd = ss_files_open_beneath(root_of(x->c), dir, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0)
        return fd;
    x->dirfd = fd;
    snprintf(x->base, sizeof x->base, "%s", base);
    snprintf(x->part, sizeof x->part, ".%s.sockstack-part", base);
    snprintf(x->lock, sizeof x->lock, ".%s.sockstack-lock", base);
    return 0;
}

/* Bytes of the regular files under dirfd (not following links), at most
 * *budget entries visited (then -EDQUOT: too big to count). */
static int tree_bytes(int dirfd, int depth, size_t *budget, uint64_t *sum)
{
    if (depth > 64)
        return -EDQUOT;
    int fd = dup(dirfd);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (!d) {
        if (fd >= 0)
            close(fd);
        return -errno;
    }
    rewinddir(d);
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if ((*budget)-- == 0) {
            rc = -EDQUOT;
            break;
        }
        struct stat st;
        if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (S_ISREG(st.st_mode)) {
            *sum += (uint64_t)st.st_size;
        } else if (S_ISDIR(st.st_mode)) {
            int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) {
                rc = tree_bytes(sub, depth + 1, budget, sum);
                close(sub);
            }
        }
    }
    closedir(d);
    return rc;
}

/* Does an upload of size bytes to x->base (from offset `have` of a kept
 * partial file) fit the size limit and the quota? 0, or why not. */
static int check_limits(struct fconn *x, uint64_t have, const char **what)
{
    const ss_files_opts *o = opts_of(x->c);
    uint64_t max = o->max_size ? o->max_size : SS_FILES_SIZE_MAX;
    static _Thread_local char why[96];
    if (x->size > max) {
        snprintf(why, sizeof why, "larger than the server's limit of %llu bytes",
                 (unsigned long long)max);
        *what = why;
        return -EFBIG;
    }
    if (!o->quota)
        return 0;
    size_t budget = SS_FILES_QUOTA_WALK_MAX;
    uint64_t used = 0;
    int rc = tree_bytes(root_of(x->c), 0, &budget, &used);
    struct stat st;
    /* The file it replaces and the part already kept are counted once. */
    if (fstatat(x->dirfd, x->base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
        used -= (uint64_t)st.st_size < used ? (uint64_t)st.st_size : used;
    used -= have < used ? have : used;
    if (rc == 0 && (x->size > o->quota || used > o->quota - x->size))
        rc = -EDQUOT;
    if (rc < 0) {
        snprintf(why, sizeof why, "over the quota of %llu bytes (%llu in use)",
                 (unsigned long long)o->quota, (unsigned long long)used);
        *what = why;
    }
    return rc;
}

/* --part-expire in seconds; UINT_MAX: never. */
static unsigned part_expire_secs(const ss_files_opts *o)
{
    return o->part_expire_s ? o->part_expire_s : SS_FILES_PART_EXPIRE_SECS;
}

/* Remove the partial files of interrupted uploads in dirfd that have not
 * changed for secs, unless their upload still runs (its name is locked);
 * with depth >= 0, also in the directories below (not following links;
 * at most *budget entries, 64 levels). *next: the earliest time a partial
 * file that stays may expire. */
static void expire_parts_in(int dirfd, int depth, size_t *budget, ss_server *srv,
                            unsigned secs, time_t now, time_t *next)
{
    int fd = dup(dirfd);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    rewinddir(d);
    static const char sfx[] = ".sockstack-part";
    struct dirent *e;
    while ((e = readdir(d)) != NULL && *budget > 0) {
        (*budget)--;
        size_t n = strlen(e->d_name);
        struct stat st;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (S_ISDIR(st.st_mode) && depth >= 0 && depth < 64) {
            int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) {
                expire_parts_in(sub, depth + 1, budget, srv, secs, now, next);
                close(sub);
            }
            continue;
        }
        if (e->d_name[0] != '.' || n < sizeof sfx || n >= 250 || !S_ISREG(st.st_mode) ||
            strcmp(e->d_name + n - (sizeof sfx - 1), sfx) != 0)
            continue;
        if (now - st.st_mtime < (time_t)secs) {
            if (st.st_mtime + (time_t)secs < *next)
                *next = st.st_mtime + (time_t)secs;
            continue;
        }
        char lock[300];
        snprintf(lock, sizeof lock, "%.*s.sockstack-lock", (int)(n - (sizeof sfx - 1)),
                 e->d_name);
        int lfd = openat(dirfd, lock, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (lfd >= 0 && flock(lfd, LOCK_EX | LOCK_NB) < 0) {
            close(lfd); /* its upload is still running */
            continue;
        }
        if (unlinkat(dirfd, e->d_name, 0) == 0)
            ss_server_log(srv, SS_LOG_INFO,
                          "removed %s: partial file unchanged for more than %u s", e->d_name,
                          secs);
        if (lfd >= 0) {
            unlinkat(dirfd, lock, 0);
            close(lfd);
        }
    }
    closedir(d);
}

/* At a PUT: the stale partial files of its directory. */
static void expire_parts(struct fconn *x)
{
    unsigned secs = part_expire_secs(opts_of(x->c));
    if (secs == UINT_MAX)
        return;
    time_t now = time(NULL), next = now + secs;
    size_t budget = SS_FILES_QUOTA_WALK_MAX;
    expire_parts_in(x->dirfd, -1, &budget, ss_conn_server(x->c), secs, now, &next);
}

/* The server's timer: the stale partial files of the whole tree, with no
 * request needed; again when the next one that stays would expire (at
 * least 1 s later, at most --part-expire). */
static uint64_t files_tick(ss_server *srv)
{
    const ss_files_opts *o = ss_server_ctx(srv);
    unsigned secs = o ? part_expire_secs(o) : UINT_MAX;
    if (secs == UINT_MAX || o->root_fd < 0)
        return 0;
    time_t now = time(NULL), next = now + secs;
    size_t budget = SS_FILES_QUOTA_WALK_MAX;
    expire_parts_in(o->root_fd, 0, &budget, srv, secs, now, &next);
    return next > now ? (uint64_t)(next - now) * 1000 : 1000;
}

/* Own the name for this upload: an exclusive flock on .NAME.sockstack-lock
 * beside it. A second upload to the same name is refused (-EBUSY) instead
 * of sharing the partial file. The holder removes the lock file when it is
 * done, so a lock taken on an inode that has meanwhile left the name is
 * dropped and taken again on the new one. */
static int lock_name(struct fconn *x)
{
    for (int tries = 0; tries < 4; tries++) {
        int fd = openat(x->dirfd, x->lock,
                        O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
        if (fd < 0)
            return -errno;
        struct stat st, now;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
            close(fd);
            return -EINVAL;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
            int e = errno;
            close(fd);
            return e == EWOULDBLOCK ? -EBUSY : -e;
        }
        if (fstatat(x->dirfd, x->lock, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
            now.st_dev == st.st_dev && now.st_ino == st.st_ino) {
            x->lockfd = fd;
            return 0;
        }
        close(fd);
    }
    return -EBUSY;
}

/* The partial file of this upload, never reached through a link: a fresh
 * upload removes any old one and creates its own with O_EXCL; a resumed one
 * reopens the kept file only if it is a regular file with no other name
 * (a hard link planted there could point at a file outside the root). */
static int open_part(struct fconn *x, bool resume)
{
    int fd = -1;
    if (resume) {
        fd = openat(x->dirfd, x->part, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0 && errno != ENOENT)
            return -errno;
    }
    if (fd < 0) {
        if (unlinkat(x->dirfd, x->part, 0) < 0 && errno != ENOENT)
            return -errno;
        fd = openat(x->dirfd, x->part,
                    O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
        if (fd < 0)
            return -errno;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
        close(fd);
        return -EMLINK;
    }
    return fd;
}

static int req_put(struct fconn *x, const uint8_t *p, size_t len)
{
    if (len < 1 + 8 + 4 + 1)
        return SS_EPEERPROTO;
    bool resume = p[0] & SS_FILES_FLAG_RESUME;
    x->replace = p[0] & SS_FILES_FLAG_REPLACE;
    x->size = ss__get64(p + 1);
    x->mode = ss__get32(p + 9) & 07777;
    if (memchr(p + 13, '\0', len - 13))
        return SS_EPEERPROTO;
    x->got = 0;
    x->st = F_PUT_DATA;
    int rc = take_name(x, p + 13, len - 13);
    if (rc < 0)
        return put_refuse(x, rc, "refused");
    rc = check_name(x->name, false);
    if (rc < 0 || (rc = open_parent(x, x->name)) < 0)
        return put_refuse(x, rc, "refused");
    expire_parts(x);
    if ((rc = lock_name(x)) < 0)
        return put_refuse(x, rc, rc == -EBUSY ? "another upload to this name is in progress"
                                              : "cannot lock the name");
    struct stat ex;
    if (!x->replace && fstatat(x->dirfd, x->base, &ex, AT_SYMLINK_NOFOLLOW) == 0)
        return put_refuse(x, -EEXIST, "exists (put --force replaces it)");
    x->tmpfd = open_part(x, resume);
    if (x->tmpfd < 0)
        return put_refuse(x, x->tmpfd, x->tmpfd == -EMLINK
                                           ? "the partial file has other links: not used"
                                           : "cannot create");
    uint64_t off = 0;
    struct stat st;
    if (fstat(x->tmpfd, &st) < 0)
        return put_refuse(x, -errno, NULL);
    const char *why = NULL;
    if ((rc = check_limits(x, (uint64_t)st.st_size, &why)) < 0)
        return put_refuse(x, rc, why);
    if (resume) {
        off = (uint64_t)st.st_size < x->size ? (uint64_t)st.st_size : x->size;
        if (ftruncate(x->tmpfd, (off_t)off) < 0 || lseek(x->tmpfd, (off_t)off, SEEK_SET) < 0)
            return put_refuse(x, -errno, NULL);
    }
    x->got = off;
    ss_server_log(ss_conn_server(x->c), SS_LOG_DEBUG, "%s: put %s (%llu bytes, from %llu)",
                  ss_conn_peer_str(x->c), x->name, (unsigned long long)x->size,
                  (unsigned long long)off);
    uint8_t v[8];
    ss__put64(v, off);
    return send_msg(x->c, SS_FILES_OK, v, 8, NULL, 0);
}

static int put_data(struct fconn *x, const uint8_t *p, size_t len)
{
    if (x->st == F_PUT_DISCARD)
        return 0;
    if (x->got + len > x->size)
        return put_fail(x, SS_EPEERPROTO, "more data than announced");
    int rc = write_sparse(x->tmpfd, p, len);
    if (rc < 0)
        return put_fail(x, rc, "write failed");
    x->got += len;
    return 0;
}

static int put_end(struct fconn *x, const uint8_t *p, size_t len)
{
    if (x->st == F_PUT_DISCARD) {
        x->st = F_IDLE;
        return 0;
    }
    x->st = F_IDLE;
    if (len != 32)
        return SS_EPEERPROTO;
    if (x->got != x->size) {
        int rc = put_fail(x, SS_EPEERPROTO, "fewer bytes than announced");
        x->st = F_IDLE;
        return rc;
    }
    /* The digest is taken over the file as it will be renamed, not over
     * the stream: what is checked is what gets stored. */
    int rc = 0;
    const char *what = NULL;
    uint8_t md[32];
    unsigned mdlen = 32;
    struct stat st;
    if (ftruncate(x->tmpfd, (off_t)x->size) < 0 || fsync(x->tmpfd) < 0) {
        rc = -errno;
        what = "cannot complete the file";
    } else if (fstat(x->tmpfd, &st) < 0 || st.st_nlink != 1) {
        rc = -EMLINK;
        what = "the partial file gained another link: not stored";
    } else if (!x->sha && !(x->sha = EVP_MD_CTX_new())) {
        rc = -ENOMEM;
    } else if (!EVP_DigestInit_ex(x->sha, EVP_sha256(), NULL)) {
        rc = -ENOMEM;
    } else if ((rc = hash_prefix(x->tmpfd, x->size, x->sha)) < 0) {
        what = "cannot read the file back";
    } else if (!EVP_DigestFinal_ex(x->sha, md, &mdlen) || CRYPTO_memcmp(md, p, 32) != 0) {
        rc = SS_EDIGEST;
        what = "not stored";
    } else if (fchmod(x->tmpfd, x->mode & 0777) < 0) {
        rc = -errno;
        what = "cannot complete the file";
    } else if (renameat2(x->dirfd, x->part, x->dirfd, x->base,
                         x->replace ? 0 : RENAME_NOREPLACE) < 0) {
        rc = -errno;
        what = errno == EEXIST ? "exists (put --force replaces it)" : "cannot rename into place";
    }
    if (rc < 0) {
        put_fail(x, rc, what);
        x->st = F_IDLE;
        return 0;
    }
    fsync(x->dirfd); /* the rename itself survives a crash */
    x->part[0] = '\0';
    put_cleanup(x, false);
    ss_server_log(ss_conn_server(x->c), SS_LOG_INFO, "%s: stored %s (%llu bytes, SHA-256 ok)",
                  ss_conn_peer_str(x->c), x->name, (unsigned long long)x->size);
    uint8_t v[8];
    ss__put64(v, x->size);
    return send_msg(x->c, SS_FILES_OK, v, 8, NULL, 0);
}

static int get_produce(struct fconn *x)
{
    while (x->st == F_GET_SEND && !ss_conn_out_full(x->c)) {
        ssize_t r = read(x->rfd, x->buf, SS_FILES_CHUNK);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno; /* the client sees a cut connection, keeps no file */
        if (r == 0) {
            uint8_t md[32];
            unsigned mdlen = 32;
            EVP_DigestFinal_ex(x->sha, md, &mdlen);
            close(x->rfd);
            x->rfd = -1;
            x->st = F_IDLE;
            return send_msg(x->c, SS_FILES_END, md, 32, NULL, 0);
        }
        EVP_DigestUpdate(x->sha, x->buf, (size_t)r);
        int rc = send_msg(x->c, SS_FILES_DATA, x->buf, (size_t)r, NULL, 0);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int req_get(struct fconn *x, const uint8_t *p, size_t len)
{
    if (len < 1 + 8 || memchr(p + 9, '\0', len - 9))
        return SS_EPEERPROTO;
    uint64_t off = ss__get64(p + 1);
    int rc = take_name(x, p + 9, len - 9);
    if (rc < 0)
        return send_error(x, rc, "refused");
    rc = check_name(x->name, false);
    /* O_NONBLOCK: opening a FIFO (or a device) must not wait for a writer
     * with the whole server stopped; fstat then turns it away. */
    int fd = rc < 0 ? rc
                    : ss_files_open_beneath(root_of(x->c), x->name,
                                            O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
    if (fd < 0)
        return send_error(x, fd, "refused");
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return send_error(x, -EINVAL, "not a regular file");
    }
    if (off > (uint64_t)st.st_size)
        off = 0;
    x->rfd = fd;
    x->sha = x->sha ? x->sha : EVP_MD_CTX_new();
    if (!x->buf)
        x->buf = malloc(SS_FILES_CHUNK);
    if (!x->sha || !x->buf || !EVP_DigestInit_ex(x->sha, EVP_sha256(), NULL))
        return -ENOMEM;
    if ((rc = hash_prefix(fd, off, x->sha)) < 0 || lseek(fd, (off_t)off, SEEK_SET) < 0)
        return send_error(x, rc < 0 ? rc : -errno, "cannot read");
    uint8_t h[12];
    ss__put64(h, (uint64_t)st.st_size);
    ss__put32(h + 8, (uint32_t)(st.st_mode & 07777));
    if ((rc = send_msg(x->c, SS_FILES_HEADER, h, 12, NULL, 0)) < 0)
        return rc;
    ss_server_log(ss_conn_server(x->c), SS_LOG_DEBUG, "%s: get %s from %llu",
                  ss_conn_peer_str(x->c), x->name, (unsigned long long)off);
    x->st = F_GET_SEND;
    return get_produce(x);
}

static int list_produce(struct fconn *x)
{
    while (x->st == F_LIST_SEND && !ss_conn_out_full(x->c)) {
        errno = 0;
        struct dirent *d = readdir(x->dir);
        if (!d) {
            closedir(x->dir);
            x->dir = NULL;
            x->st = F_IDLE;
            return send_msg(x->c, SS_FILES_LISTEND, NULL, 0, NULL, 0);
        }
        if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
            continue;
        struct stat st;
        if (fstatat(dirfd(x->dir), d->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        uint8_t e[21];
        e[0] = S_ISREG(st.st_mode) ? 'f' : S_ISDIR(st.st_mode) ? 'd' : S_ISLNK(st.st_mode) ? 'l' : 'o';
        ss__put64(e + 1, (uint64_t)st.st_size);
        ss__put32(e + 9, (uint32_t)(st.st_mode & 07777));
        ss__put64(e + 13, (uint64_t)st.st_mtime);
        int rc = send_msg(x->c, SS_FILES_ENTRY, e, 21, d->d_name, strlen(d->d_name));
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int req_list(struct fconn *x, const uint8_t *p, size_t len)
{
    if (memchr(p, '\0', len))
        return SS_EPEERPROTO;
    int rc = take_name(x, p, len);
    if (rc < 0)
        return send_error(x, rc, "refused");
    int fd = ss_files_open_beneath(root_of(x->c), x->name, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0)
        return send_error(x, fd, "refused");
    x->dir = fdopendir(fd);
    if (!x->dir) {
        close(fd);
        return send_error(x, -errno, NULL);
    }
    x->st = F_LIST_SEND;
    return list_produce(x);
}

static int srv_msg(const uint8_t *p, size_t len, void *arg)
{
    struct fconn *x = arg;
    if (len == 0)
        return SS_EPEERPROTO;
    uint8_t t = p[0];
    p++;
    len--;
    switch (x->st) {
    case F_IDLE:
        if (t == SS_FILES_PUT)
            return req_put(x, p, len);
        if (t == SS_FILES_GET)
            return req_get(x, p, len);
        if (t == SS_FILES_LIST)
            return req_list(x, p, len);
        return SS_EPEERPROTO;
    case F_PUT_DATA:
    case F_PUT_DISCARD:
        if (t == SS_FILES_DATA)
            return put_data(x, p, len);
        if (t == SS_FILES_END)
            return put_end(x, p, len);
        return SS_EPEERPROTO;
    default:
        return SS_EPEERPROTO; /* the client must wait for our answer */
    }
}

static int f_open(ss_conn *c)
{
    struct fconn *x = ss_conn_ctx(c);
    x->c = c;
    x->dirfd = x->tmpfd = x->rfd = x->lockfd = -1;
    ss_frame_decoder_init(&x->dec, SS_FRAME_BE32, SS_FILES_FRAME_MAX);
    return 0;
}

static int f_data(ss_conn *c, const void *data, size_t len)
{
    struct fconn *x = ss_conn_ctx(c);
    ssize_t r = ss_frame_decode(&x->dec, data, len, srv_msg, x);
    if (r < 0)
        ss_server_log(ss_conn_server(c), SS_LOG_WARN, "%s: closing: %s",
                      ss_conn_peer_str(c), ss_strerror((int)r));
    return r < 0 ? (int)r : 0;
}

static int f_drain(ss_conn *c)
{
    struct fconn *x = ss_conn_ctx(c);
    if (x->st == F_GET_SEND)
        return get_produce(x);
    if (x->st == F_LIST_SEND)
        return list_produce(x);
    return 0;
}

static int f_eof(ss_conn *c)
{
    ss_conn_close(c);
    return 0;
}

static void f_close(ss_conn *c, int err)
{
    struct fconn *x = ss_conn_ctx(c);
    if (x->st == F_PUT_DATA && x->part[0])
        ss_server_log(ss_conn_server(c), SS_LOG_INFO,
                      "%s: put %s interrupted at %llu of %llu bytes; kept for --resume",
                      ss_conn_peer_str(c), x->name, (unsigned long long)x->got,
                      (unsigned long long)x->size);
    put_cleanup(x, false); /* an interrupted upload stays resumable */
    if (x->rfd >= 0)
        close(x->rfd);
    if (x->dir)
        closedir(x->dir);
    free(x->buf);
    ss_frame_decoder_free(&x->dec);
}

static const ss_service files_service = {
    .name = "files",
    .conn_ctx_size = sizeof(struct fconn),
    .on_open = f_open,
    .on_data = f_data,
    .on_eof = f_eof,
    .on_drain = f_drain,
    .on_close = f_close,
    .on_tick = files_tick,
};

const ss_service *ss_files_service(void)
{
    return &files_service;
}

/* ---- clients ---------------------------------------------------------------- */

static int send_st(ss_stream *st, uint8_t type, const void *a, size_t alen,
                   const void *b, size_t blen)
{
    uint8_t hdr[5];
    ss_frame_header_write(SS_FRAME_BE32, 1 + alen + blen, hdr);
    hdr[4] = type;
    struct iovec iov[3] = {{hdr, 5}, {(void *)a, alen}, {(void *)b, blen}};
    return ss_stream_sendv_all(st, iov, 3);
}

/* A message just read: 1, or SS_EPEERPROTO for an empty one, or SS_EREMOTE
 * with the text of an ERROR in err (the message is then freed). */
static int msg_check(uint8_t **p, size_t *len, ss_files_err *err)
{
    if (*len == 0) {
        free(*p);
        *p = NULL;
        return SS_EPEERPROTO;
    }
    if ((*p)[0] == SS_FILES_ERROR) {
        snprintf(err->msg, sizeof err->msg, "%.*s", (int)(*len - 1), (const char *)*p + 1);
        free(*p);
        *p = NULL;
        return SS_EREMOTE;
    }
    return 1;
}

/* Next message: 1 with *p and *len (free *p), or a negative code. An ERROR
 * message becomes SS_EREMOTE with its text in err. */
static int recv_msg(ss_stream *st, uint8_t **p, size_t *len, ss_files_err *err)
{
    int rc = ss_frame_read_stream(st, SS_FRAME_BE32, SS_FILES_FRAME_MAX, p, len);
    if (rc == 0)
        return -ECONNRESET;
    if (rc < 0)
        return rc == -EPIPE ? -ECONNRESET : rc;
    return msg_check(p, len, err);
}

/* During the data the server speaks only to refuse (disk full ...): 0 if
 * it has said nothing yet (without waiting), else its message as recv_msg
 * gives it. A TLS socket may be readable for records that carry no data
 * (session tickets): only a message counts. */
static int recv_msg_now(ss_stream *st, uint8_t **p, size_t *len, ss_files_err *err)
{
    uint8_t hdr[4];
    ssize_t n = ss_sock_recv(st->sock, hdr, sizeof hdr);
    if (n == -EAGAIN)
        return 0;
    if (n <= 0)
        return n == 0 ? -ECONNRESET : (int)n;
    int rc = (size_t)n < sizeof hdr ? ss_stream_read_exact(st, hdr + n, sizeof hdr - (size_t)n) : 0;
    if (rc != 0)
        return rc == 1 || rc == -EPIPE ? -ECONNRESET : rc;
    uint64_t need = ss_frame_header_read(SS_FRAME_BE32, hdr);
    if (need > SS_FILES_FRAME_MAX)
        return SS_EFRAMESIZE;
    *p = malloc(need ? need : 1);
    if (!*p)
        return -ENOMEM;
    *len = (size_t)need;
    rc = ss_stream_read_exact(st, *p, *len);
    if (rc != 0) {
        free(*p);
        *p = NULL;
        return rc == 1 || rc == -EPIPE ? -ECONNRESET : rc;
    }
    return msg_check(p, len, err);
}

static int expect(ss_stream *st, uint8_t type, size_t minlen, uint8_t **p, size_t *len,
                  ss_files_err *err)
{
    int rc = recv_msg(st, p, len, err);
    if (rc < 0)
        return rc;
    if ((*p)[0] != type || *len < minlen) {
        free(*p);
        *p = NULL;
        return SS_EPEERPROTO;
    }
    return 0;
}

/* The server's refusal of a PUT to a name that exists (see req_put). */
static bool refused_exists(const ss_files_err *err)
{
    static const char tail[] = ": exists (put --force replaces it): File exists";
    size_t n = strlen(err->msg), t = sizeof tail - 1;
    return n >= t && !strcmp(err->msg + n - t, tail);
}

int ss_files_put(ss_stream *cs, const char *local, const char *remote, unsigned flags,
                 ss_files_progress_cb cb, void *arg, ss_files_err *err)
{
    err->msg[0] = '\0';
    int lfd = open(local, O_RDONLY | O_CLOEXEC);
    if (lfd < 0) {
        snprintf(err->msg, sizeof err->msg, "%.300s: %s", local, strerror(errno));
        return -errno;
    }
    struct stat st;
    if (fstat(lfd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err->msg, sizeof err->msg, "%s: not a regular file", local);
        close(lfd);
        return -EINVAL;
    }
    uint64_t size = (uint64_t)st.st_size;
    uint8_t h[13];
    h[0] = (uint8_t)(flags & (SS_FILES_FLAG_RESUME | SS_FILES_FLAG_REPLACE));
    ss__put64(h + 1, size);
    ss__put32(h + 9, (uint32_t)(st.st_mode & 07777));
    uint8_t *m = NULL, *buf = NULL;
    size_t mlen;
    EVP_MD_CTX *sha = EVP_MD_CTX_new();
    int rc = sha && EVP_DigestInit_ex(sha, EVP_sha256(), NULL) ? 0 : -ENOMEM;
    if (!rc)
        rc = send_st(cs, SS_FILES_PUT, h, 13, remote, strlen(remote));
    if (!rc)
        rc = expect(cs, SS_FILES_OK, 9, &m, &mlen, err);
    if (rc == SS_EREMOTE && refused_exists(err))
        rc = -EEXIST;
    if (rc < 0)
        goto out;
    uint64_t off = ss__get64(m + 1);
    free(m);
    m = NULL;
    if (off > size) {
        rc = SS_EPEERPROTO;
        goto out;
    }
    if ((rc = hash_prefix(lfd, off, sha)) < 0)
        goto out;
    if (cb)
        cb(off, size, arg); /* where the transfer starts: off > 0 on a resume */
    if (lseek(lfd, (off_t)off, SEEK_SET) < 0) {
        rc = -errno;
        goto out;
    }
    buf = malloc(SS_FILES_CHUNK);
    if (!buf) {
        rc = -ENOMEM;
        goto out;
    }
    uint64_t done = off;
    while (done < size) {
        ssize_t r = read(lfd, buf, SS_FILES_CHUNK);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = r < 0 ? -errno : -EIO; /* the file shrank under us */
            snprintf(err->msg, sizeof err->msg, "%s: read failed", local);
            goto out;
        }
        if ((uint64_t)r > size - done)
            r = (ssize_t)(size - done);
        EVP_DigestUpdate(sha, buf, (size_t)r);
        if ((rc = send_st(cs, SS_FILES_DATA, buf, (size_t)r, NULL, 0)) < 0)
            break;
        done += (uint64_t)r;
        if (cb)
            cb(done, size, arg);
        /* The server speaks during the data only to refuse (disk full ...). */
        if ((rc = recv_msg_now(cs, &m, &mlen, err)) != 0) {
            if (rc > 0) {
                free(m);
                m = NULL;
                rc = SS_EPEERPROTO;
            }
            goto out;
        }
    }
    if (rc == -EPIPE || rc == -ECONNRESET) {
        /* Refused mid-way: the reason is waiting to be read. */
        int r2 = recv_msg(cs, &m, &mlen, err);
        if (r2 == SS_EREMOTE)
            rc = r2;
        else if (r2 > 0)
            free(m), m = NULL;
        goto out;
    }
    if (rc < 0)
        goto out;
    uint8_t md[32];
    unsigned mdl = 32;
    EVP_DigestFinal_ex(sha, md, &mdl);
    if ((rc = send_st(cs, SS_FILES_END, md, 32, NULL, 0)) < 0)
        goto out;
    if ((rc = expect(cs, SS_FILES_OK, 9, &m, &mlen, err)) < 0)
        goto out;
    rc = ss__get64(m + 1) == size ? 0 : SS_EPEERPROTO;
    free(m);
    m = NULL;
out:
    free(buf);
    EVP_MD_CTX_free(sha);
    close(lfd);
    return rc;
}

int ss_files_get(ss_stream *cs, const char *remote, const char *local, unsigned flags,
                 ss_files_progress_cb cb, void *arg, ss_files_err *err)
{
    err->msg[0] = '\0';
    bool resume = flags & SS_FILES_FLAG_RESUME, replace = flags & SS_FILES_FLAG_REPLACE;
    struct stat lst;
    if (!replace && lstat(local, &lst) == 0) {
        snprintf(err->msg, sizeof err->msg, "%.300s", local);
        return -EEXIST;
    }
    char part[4096];
    if (ss_files_part_name(local, part, sizeof part) < 0)
        return -ENAMETOOLONG;
    int tfd = open(part, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (resume ? 0 : O_TRUNC), 0600);
    if (tfd < 0) {
        snprintf(err->msg, sizeof err->msg, "%.300s: %s", part, strerror(errno));
        return -errno;
    }
    EVP_MD_CTX *sha = EVP_MD_CTX_new();
    int rc = sha && EVP_DigestInit_ex(sha, EVP_sha256(), NULL) ? 0 : -ENOMEM;
    uint64_t off = 0;
    bool keep_part = true; /* for --resume, unless the data is known bad */
    uint8_t *m = NULL;
    size_t mlen;
    if (!rc && resume) {
        struct stat st;
        int rfd = open(part, O_RDONLY | O_CLOEXEC);
        if (rfd < 0 || fstat(rfd, &st) < 0)
            rc = -errno;
        else {
            off = (uint64_t)st.st_size;
            rc = hash_prefix(rfd, off, sha);
        }
        if (rfd >= 0)
            close(rfd);
    }
    if (!rc && lseek(tfd, (off_t)off, SEEK_SET) < 0)
        rc = -errno;
    uint8_t g[9];
    g[0] = resume ? SS_FILES_FLAG_RESUME : 0; /* REPLACE is the client's business */
    ss__put64(g + 1, off);
    if (!rc)
        rc = send_st(cs, SS_FILES_GET, g, 9, remote, strlen(remote));
    if (!rc)
        rc = expect(cs, SS_FILES_HEADER, 13, &m, &mlen, err);
    if (rc < 0) {
        keep_part = resume && rc != SS_EREMOTE;
        goto out;
    }
    uint64_t size = ss__get64(m + 1);
    uint32_t mode = ss__get32(m + 9);
    free(m);
    m = NULL;
    if (off > size) { /* the remote file changed: start over */
        keep_part = false;
        rc = SS_EDIGEST;
        goto out;
    }
    uint64_t done = off;
    if (cb)
        cb(off, size, arg); /* where the transfer starts: off > 0 on a resume */
    for (;;) {
        if ((rc = recv_msg(cs, &m, &mlen, err)) < 0)
            goto out;
        if (m[0] == SS_FILES_DATA) {
            if (done + (mlen - 1) > size) {
                rc = SS_EPEERPROTO;
                keep_part = false;
                goto out;
            }
            EVP_DigestUpdate(sha, m + 1, mlen - 1);
            if ((rc = write_sparse(tfd, m + 1, mlen - 1)) < 0) {
                snprintf(err->msg, sizeof err->msg, "%.300s: %s", part, strerror(-rc));
                keep_part = false;
                goto out;
            }
            done += mlen - 1;
            free(m);
            m = NULL;
            if (cb)
                cb(done, size, arg);
            continue;
        }
        if (m[0] != SS_FILES_END || mlen != 33 || done != size) {
            rc = SS_EPEERPROTO;
            keep_part = false;
            goto out;
        }
        break;
    }
    uint8_t md[32];
    unsigned mdl = 32;
    EVP_DigestFinal_ex(sha, md, &mdl);
    if (CRYPTO_memcmp(md, m + 1, 32) != 0) {
        rc = SS_EDIGEST;
        keep_part = false;
        snprintf(err->msg, sizeof err->msg, "%s: SHA-256 mismatch; nothing kept", remote);
        goto out;
    }
    if (ftruncate(tfd, (off_t)size) < 0 || fchmod(tfd, mode & 0777) < 0 || fsync(tfd) < 0 ||
        renameat2(AT_FDCWD, part, AT_FDCWD, local, replace ? 0 : RENAME_NOREPLACE) < 0) {
        rc = -errno;
        keep_part = false;
        snprintf(err->msg, sizeof err->msg, "%.300s: %s", local, strerror(errno));
        goto out;
    }
    keep_part = true; /* renamed: nothing left under the part name */
    rc = 0;
out:
    free(m);
    EVP_MD_CTX_free(sha);
    close(tfd);
    if (!keep_part)
        unlink(part);
    return rc;
}

int ss_files_ls(ss_stream *cs, const char *dir, ss_files_entry_cb cb, void *arg,
                ss_files_err *err)
{
    err->msg[0] = '\0';
    int rc = send_st(cs, SS_FILES_LIST, dir, strlen(dir), NULL, 0);
    while (rc >= 0) {
        uint8_t *m;
        size_t mlen;
        if ((rc = recv_msg(cs, &m, &mlen, err)) < 0)
            break;
        if (m[0] == SS_FILES_LISTEND) {
            free(m);
            return 0;
        }
        if (m[0] != SS_FILES_ENTRY || mlen < 22) {
            free(m);
            return SS_EPEERPROTO;
        }
        ss_files_entry e = {.kind = (char)m[1], .size = ss__get64(m + 2),
                            .mode = ss__get32(m + 10), .mtime = ss__get64(m + 14)};
        snprintf(e.name, sizeof e.name, "%.*s", (int)(mlen - 22), (const char *)m + 22);
        free(m);
        cb(&e, arg);
    }
    return rc;
}
