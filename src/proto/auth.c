/* Shared-key challenge-response (see include/sockstack/auth.h and
 * docs/protocols.md). The state machine does no I/O; only the key-file
 * helpers and ss_auth_run_fd touch the system. */
#include "sockstack/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "sockstack/err.h"

/* ---- keys --------------------------------------------------------------- */

int ss_auth_key_set(ss_auth_key *k, const void *bytes, size_t len)
{
    if (len == 0 || len > sizeof k->bytes)
        return SS_EKEYFMT;
    memcpy(k->bytes, bytes, len);
    k->len = len;
    return 0;
}

void ss_auth_key_clear(ss_auth_key *k)
{
    OPENSSL_cleanse(k, sizeof *k);
}

int ss_auth_key_load(const char *path, ss_auth_key *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return S_ISDIR(st.st_mode) ? -EISDIR : SS_EKEYFMT;
    }
    /* Like ssh with a private key: a secret others can read is no secret,
     * and one that others can write (or that another user owns and can
     * chmod) can be replaced by them. */
    if (st.st_uid != geteuid()) {
        close(fd);
        return SS_EKEYOWNER;
    }
    if (st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)) {
        close(fd);
        return SS_EKEYPERM;
    }
    uint8_t buf[SS_AUTH_KEY_MAX + 2];
    size_t have = 0;
    for (;;) {
        ssize_t r = read(fd, buf + have, sizeof buf - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = -errno;
            close(fd);
            OPENSSL_cleanse(buf, sizeof buf);
            return e;
        }
        if (r == 0 || memchr(buf + have, '\n', (size_t)r)) {
            have += (size_t)r;
            break;
        }
        have += (size_t)r;
        if (have == sizeof buf)
            break;
    }
    close(fd);
    uint8_t *nl = memchr(buf, '\n', have);
    size_t len = nl ? (size_t)(nl - buf) : have;
    if (!nl && have == sizeof buf)
        len = sizeof buf; /* no end of line within the limit: too long */
    if (len > 0 && buf[len - 1] == '\r')
        len--;
    int rc = len > SS_AUTH_KEY_MAX ? SS_EKEYFMT : ss_auth_key_set(out, buf, len);
    OPENSSL_cleanse(buf, sizeof buf);
    return rc;
}

int ss_auth_keygen(const char *path, bool force)
{
    uint8_t raw[32];
    char hex[66];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return -EIO;
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    hex[64] = '\n';
    OPENSSL_cleanse(raw, sizeof raw);

    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    if (!force && access(path, F_OK) == 0)
        return -EEXIST;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (fchmod(fd, 0600) < 0 || write(fd, hex, 65) != 65 || fsync(fd) < 0)
        rc = errno ? -errno : -EIO;
    OPENSSL_cleanse(hex, sizeof hex);
    if (close(fd) < 0 && !rc)
        rc = -errno;
    if (!rc) {
        /* link() refuses an existing name atomically; rename() replaces. */
        if (force ? rename(tmp, path) < 0 : link(tmp, path) < 0)
            rc = -errno;
    }
    if (rc || !force)
        unlink(tmp);
    return rc;
}

int ss_auth_hmac(const ss_auth_key *k, const void *msg, size_t len,
                 uint8_t out[32])
{
    unsigned int olen = 32;
    if (!HMAC(EVP_sha256(), k->bytes, (int)k->len, msg, len, out, &olen) ||
        olen != 32)
        return -EIO;
    return 0;
}

/* ---- the state machine -------------------------------------------------- */

enum { CL = SS_AUTH_CHALLENGE_LEN };

const char *ss_auth_state_name(enum ss_auth_state s)
{
    switch (s) {
    case SS_AUTH_SEND_CHALLENGE: return "SEND-CHALLENGE";
    case SS_AUTH_WAIT_RESPONSE:  return "WAIT-RESPONSE";
    case SS_AUTH_WAIT_CHALLENGE: return "WAIT-CHALLENGE";
    case SS_AUTH_WAIT_PROOF:     return "WAIT-PROOF";
    case SS_AUTH_DONE:           return "DONE";
    case SS_AUTH_FAILED:         return "FAILED";
    }
    return "?";
}

/* The server's proof: HMAC(key, label || cs || cc). */
static int server_proof(const ss_auth *a, uint8_t out[32])
{
    uint8_t msg[sizeof SS_AUTH_LABEL_SERVER - 1 + 2 * CL];
    size_t l = sizeof SS_AUTH_LABEL_SERVER - 1;
    memcpy(msg, SS_AUTH_LABEL_SERVER, l);
    memcpy(msg + l, a->cs, CL);
    memcpy(msg + l + CL, a->cc, CL);
    return ss_auth_hmac(a->key, msg, sizeof msg, out);
}

static int fail(ss_auth *a, int err)
{
    a->state = SS_AUTH_FAILED;
    a->err = err;
    a->out_len = a->out_off = 0;
    return err;
}

int ss_auth_init(ss_auth *a, enum ss_auth_role role, enum ss_auth_mode mode,
                 const ss_auth_key *key, const uint8_t *challenge)
{
    memset(a, 0, sizeof *a);
    a->role = role;
    a->mode = mode;
    a->key = key;
    uint8_t *mine = role == SS_AUTH_SERVER ? a->cs : a->cc;
    if (challenge)
        memcpy(mine, challenge, CL);
    else if (RAND_bytes(mine, CL) != 1)
        return fail(a, -EIO);
    if (role == SS_AUTH_SERVER) {
        memcpy(a->out, a->cs, CL);
        a->out_len = CL;
        a->state = SS_AUTH_SEND_CHALLENGE;
        a->in_need = mode == SS_AUTH_MUTUAL ? 2 * CL : CL;
    } else {
        a->state = SS_AUTH_WAIT_CHALLENGE;
        a->in_need = CL;
    }
    return 0;
}

/* A complete input unit has arrived in a->in: act on it. */
static int step(ss_auth *a)
{
    uint8_t mac[32];
    a->in_have = 0;
    switch (a->state) {
    case SS_AUTH_SEND_CHALLENGE:
    case SS_AUTH_WAIT_RESPONSE:
        if (ss_auth_hmac(a->key, a->cs, CL, mac) < 0)
            return fail(a, -EIO);
        if (CRYPTO_memcmp(mac, a->in, 32) != 0)
            return fail(a, SS_EAUTH);
        a->in_need = 0;
        if (a->mode == SS_AUTH_MUTUAL) {
            memcpy(a->cc, a->in + CL, CL);
            if (server_proof(a, mac) < 0)
                return fail(a, -EIO);
            /* The challenge may not have been fully sent only if the peer
             * answered before receiving it, which a real peer cannot. */
            memcpy(a->out, mac, 32);
            a->out_len = 32;
            a->out_off = 0;
        }
        a->state = SS_AUTH_DONE;
        return 0;
    case SS_AUTH_WAIT_CHALLENGE:
        memcpy(a->cs, a->in, CL);
        if (ss_auth_hmac(a->key, a->cs, CL, a->out) < 0)
            return fail(a, -EIO);
        a->out_len = 32;
        a->out_off = 0;
        if (a->mode == SS_AUTH_MUTUAL) {
            memcpy(a->out + 32, a->cc, CL);
            a->out_len += CL;
            a->state = SS_AUTH_WAIT_PROOF;
            a->in_need = 32;
        } else {
            a->state = SS_AUTH_DONE;
            a->in_need = 0;
        }
        return 0;
    case SS_AUTH_WAIT_PROOF:
        if (server_proof(a, mac) < 0)
            return fail(a, -EIO);
        if (CRYPTO_memcmp(mac, a->in, 32) != 0)
            return fail(a, SS_EAUTH);
        a->state = SS_AUTH_DONE;
        a->in_need = 0;
        return 0;
    case SS_AUTH_DONE:
    case SS_AUTH_FAILED:
        break;
    }
    return 0;
}

ssize_t ss_auth_input(ss_auth *a, const void *data, size_t len)
{
    const uint8_t *p = data;
    size_t off = 0;
    if (a->state == SS_AUTH_FAILED)
        return a->err;
    while (off < len && a->in_need > 0) {
        size_t take = a->in_need - a->in_have;
        if (take > len - off)
            take = len - off;
        memcpy(a->in + a->in_have, p + off, take);
        a->in_have += take;
        off += take;
        if (a->in_have == a->in_need) {
            int rc = step(a);
            if (rc < 0)
                return rc;
        }
    }
    return (ssize_t)off;
}

size_t ss_auth_output(const ss_auth *a, const uint8_t **p)
{
    *p = a->out + a->out_off;
    return a->out_len - a->out_off;
}

void ss_auth_output_done(ss_auth *a, size_t n)
{
    a->out_off += n;
    if (a->out_off > a->out_len)
        a->out_off = a->out_len;
    if (a->out_off == a->out_len && a->state == SS_AUTH_SEND_CHALLENGE)
        a->state = SS_AUTH_WAIT_RESPONSE;
}

size_t ss_auth_want(const ss_auth *a)
{
    return a->in_need - a->in_have;
}

bool ss_auth_done(const ss_auth *a)
{
    return a->state == SS_AUTH_DONE && a->out_off == a->out_len;
}

bool ss_auth_failed(const ss_auth *a)
{
    return a->state == SS_AUTH_FAILED;
}

/* ss_auth_run_fd waits in a private loop of the reactor, not in poll(). */
struct fd_run {
    ss_auth *a;
    int fd;
    int rc;
    bool timed_out;
};

/* One step on fd: send what the handshake has, or read what it needs. */
static void fd_step(ss_loop *loop, int fd, unsigned events, void *arg)
{
    struct fd_run *r = arg;
    const uint8_t *p;
    size_t out = ss_auth_output(r->a, &p);
    if (out) {
        ssize_t w = send(fd, p, out, MSG_NOSIGNAL);
        if (w < 0 && errno == ENOTSOCK)
            w = write(fd, p, out);
        if (w < 0 && errno != EINTR && errno != EAGAIN)
            r->rc = -errno;
        else if (w > 0)
            ss_auth_output_done(r->a, (size_t)w);
    } else {
        uint8_t buf[2 * SS_AUTH_CHALLENGE_LEN];
        size_t want = ss_auth_want(r->a);
        ssize_t n = read(fd, buf, want < sizeof buf ? want : sizeof buf);
        if (n < 0 && errno != EINTR && errno != EAGAIN)
            r->rc = -errno;
        else if (n == 0)
            r->rc = -ECONNRESET;
        else if (n > 0) {
            ssize_t c = ss_auth_input(r->a, buf, (size_t)n);
            if (c < 0)
                r->rc = (int)c;
        }
    }
    if (r->rc == 0 && !ss_auth_done(r->a))
        ss_loop_io_mod(loop, fd, ss_auth_output(r->a, &p) ? SS_WRITE : SS_READ);
}

static void fd_timeout(ss_loop *loop, ss_timer *t, void *arg)
{
    struct fd_run *r = arg;
    r->timed_out = true;
}

int ss_auth_run_fd(ss_auth *a, int fd, int timeout_ms)
{
    ss_loop *loop;
    int rc = ss_loop_new(&loop);
    if (rc < 0)
        return rc;
    struct fd_run r = {.a = a, .fd = fd};
    ss_timer t;
    ss_timer_init(&t, fd_timeout, &r);
    const uint8_t *p;
    rc = ss_loop_io_add(loop, fd, ss_auth_output(a, &p) ? SS_WRITE : SS_READ, fd_step, &r);
    if (rc == 0)
        rc = ss_timer_start(loop, &t, (uint64_t)(timeout_ms > 0 ? timeout_ms : 0));
    while (rc == 0 && r.rc == 0 && !r.timed_out && !ss_auth_done(a) && !ss_auth_failed(a))
        rc = ss_loop_run_once(loop, -1);
    if (rc == 0)
        rc = ss_auth_failed(a) ? a->err : r.rc ? r.rc : ss_auth_done(a) ? 0 : -ETIMEDOUT;
    ss_timer_stop(loop, &t);
    ss_loop_io_del(loop, fd);
    ss_loop_free(loop);
    return rc;
}

/* ---- throttle ----------------------------------------------------------- */

void ss_auth_throttle_init(ss_auth_throttle *t)
{
    memset(t, 0, sizeof *t);
}

/* Normalise an address to (family, 16 bytes); IPv4-mapped IPv6 is IPv4. */
static void addr_key(const struct sockaddr *sa, uint8_t *fam, uint8_t key[16])
{
    memset(key, 0, 16);
    if (sa->sa_family == AF_INET) {
        *fam = AF_INET;
        memcpy(key, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            *fam = AF_INET;
            memcpy(key, a6->s6_addr + 12, 4);
        } else {
            *fam = AF_INET6;
            memcpy(key, a6->s6_addr, 16);
        }
    } else {
        *fam = (uint8_t)(sa->sa_family ? sa->sa_family : 255); /* unix: one bucket */
    }
}

static ss_auth_throttle_slot *find(ss_auth_throttle *t, const struct sockaddr *sa,
                                   bool create, uint64_t now)
{
    uint8_t fam, key[16];
    addr_key(sa, &fam, key);
    ss_auth_throttle_slot *free_slot = NULL, *lru = NULL;
    for (size_t i = 0; i < SS_AUTH_THROTTLE_SLOTS; i++) {
        ss_auth_throttle_slot *s = &t->slot[i];
        if (s->family == 0) {
            if (!free_slot)
                free_slot = s;
            continue;
        }
        if (s->family == fam && !memcmp(s->addr, key, 16))
            return s;
        if (!lru || s->last_ms < lru->last_ms)
            lru = s;
    }
    ss_auth_throttle_slot *victim = free_slot ? free_slot : lru;
    if (!create)
        return NULL;
    *victim = (ss_auth_throttle_slot){.family = fam, .last_ms = now};
    memcpy(victim->addr, key, 16);
    return victim;
}

uint64_t ss_auth_throttle_delay(ss_auth_throttle *t, const struct sockaddr *sa,
                                uint64_t now_ms)
{
    ss_auth_throttle_slot *s = find(t, sa, false, now_ms);
    if (!s)
        return 0;
    if (now_ms - s->last_ms > SS_AUTH_THROTTLE_FORGET_MS) {
        s->family = 0;
        return 0;
    }
    return s->until_ms > now_ms ? s->until_ms - now_ms : 0;
}

/* The key's count: one more failure from anywhere. */
static void key_fail(ss_auth_throttle *t, uint64_t now_ms)
{
    ss_auth_throttle_slot *k = &t->key;
    if (now_ms - k->last_ms > SS_AUTH_THROTTLE_FORGET_MS)
        k->failures = 0;
    k->failures++;
    k->last_ms = now_ms;
    if (k->failures < SS_AUTH_THROTTLE_KEY_FREE)
        return;
    uint64_t pen = SS_AUTH_THROTTLE_BASE_MS;
    for (uint32_t i = SS_AUTH_THROTTLE_KEY_FREE; i < k->failures && pen < SS_AUTH_THROTTLE_MAX_MS;
         i++)
        pen *= 2;
    k->until_ms = now_ms + (pen < SS_AUTH_THROTTLE_MAX_MS ? pen : SS_AUTH_THROTTLE_MAX_MS);
}

uint64_t ss_auth_throttle_key_delay(ss_auth_throttle *t, uint64_t now_ms, uint32_t *failures)
{
    ss_auth_throttle_slot *k = &t->key;
    if (k->failures && now_ms - k->last_ms > SS_AUTH_THROTTLE_FORGET_MS)
        memset(k, 0, sizeof *k);
    if (failures)
        *failures = k->failures;
    return k->until_ms > now_ms ? k->until_ms - now_ms : 0;
}

uint32_t ss_auth_throttle_fail(ss_auth_throttle *t, const struct sockaddr *sa,
                               uint64_t now_ms)
{
    key_fail(t, now_ms);
    ss_auth_throttle_slot *s = find(t, sa, true, now_ms);
    if (now_ms - s->last_ms > SS_AUTH_THROTTLE_FORGET_MS)
        s->failures = 0;
    s->failures++;
    s->last_ms = now_ms;
    uint64_t pen = SS_AUTH_THROTTLE_BASE_MS;
    for (uint32_t i = 1; i < s->failures && pen < SS_AUTH_THROTTLE_MAX_MS; i++)
        pen *= 2;
    if (pen > SS_AUTH_THROTTLE_MAX_MS)
        pen = SS_AUTH_THROTTLE_MAX_MS;
    uint64_t base = s->until_ms > now_ms ? s->until_ms : now_ms;
    s->until_ms = base + pen > now_ms + SS_AUTH_THROTTLE_MAX_MS
                      ? now_ms + SS_AUTH_THROTTLE_MAX_MS : base + pen;
    return s->failures;
}

void ss_auth_throttle_ok(ss_auth_throttle *t, const struct sockaddr *sa)
{
    ss_auth_throttle_slot *s = find(t, sa, false, 0);
    if (s)
        memset(s, 0, sizeof *s);
}

int ss_auth_run_stream(ss_auth *a, ss_stream *st, int timeout_ms)
{
    ss_loop_update_time(st->loop);
    uint64_t deadline = ss_loop_now(st->loop) + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    while (!ss_auth_done(a)) {
        if (ss_auth_failed(a))
            return a->err;
        const uint8_t *p;
        size_t out = ss_auth_output(a, &p);
        ssize_t n;
        if (out) {
            n = ss_sock_send(st->sock, p, out);
            if (n > 0)
                ss_auth_output_done(a, (size_t)n);
        } else {
            uint8_t buf[2 * SS_AUTH_CHALLENGE_LEN];
            size_t want = ss_auth_want(a);
            n = ss_sock_recv(st->sock, buf, want < sizeof buf ? want : sizeof buf);
            if (n == 0)
                return -ECONNRESET;
            if (n > 0) {
                ssize_t c = ss_auth_input(a, buf, (size_t)n);
                if (c < 0)
                    return (int)c;
            }
        }
        if (n >= 0)
            continue;
        if (n != -EAGAIN && n != -EINTR)
            return (int)n;
        ss_loop_update_time(st->loop);
        uint64_t now = ss_loop_now(st->loop);
        if (timeout_ms > 0 && now >= deadline)
            return -ETIMEDOUT;
        int r = ss_sock_wait(st->sock, st->loop, out ? SS_WRITE : SS_READ,
                             timeout_ms > 0 ? (int)(deadline - now) : -1);
        if (r < 0)
            return r;
    }
    return 0;
}
