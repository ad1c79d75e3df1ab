/* The handshake as a layer in front of a service (see sockstack/authsvc.h).
 *
 * Per connection: DELAYED (throttled peer waits) -> HANDSHAKE (challenge
 * sent, answer awaited under the timer) -> OPEN (inner service owns it).
 * The wrapper finds its own settings from the service pointer the server
 * was created with: ss_authsvc embeds that ss_service as its first member. */
#include "sockstack/authsvc.h"

#include <errno.h>
#include <stdalign.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "sockstack/err.h"

enum phase { PH_DELAYED = 0, PH_HANDSHAKE, PH_OPEN, PH_FAILED };

/* In a MAP_SHARED mapping made before any fork: the fork model's children
 * record their failures where the parent and every later child see them.
 * The mutex is process-shared and robust: a child killed while holding
 * it does not block the others. */
struct ss_authsvc_shared {
    pthread_mutex_t lock;
    ss_auth_throttle throttle;
    uint64_t failures;
};

static void sh_lock(struct ss_authsvc_shared *sh)
{
    if (pthread_mutex_lock(&sh->lock) == EOWNERDEAD)
        pthread_mutex_consistent(&sh->lock);
}

static void sh_unlock(struct ss_authsvc_shared *sh)
{
    pthread_mutex_unlock(&sh->lock);
}

struct wstate {
    ss_auth auth;
    enum phase phase;
    bool inner_opened;
};

static size_t inner_size(const ss_service *inner)
{
    size_t a = alignof(max_align_t);
    return (inner->conn_ctx_size + a - 1) / a * a;
}

static ss_authsvc *wrap_of(const ss_conn *c)
{
    return (ss_authsvc *)(void *)ss_server_service(ss_conn_server(c));
}

static struct wstate *st_of(ss_conn *c)
{
    return (struct wstate *)((char *)ss_conn_ctx(c) + inner_size(wrap_of(c)->inner));
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const struct sockaddr *peer_sa(const ss_conn *c)
{
    return (const struct sockaddr *)&ss_conn_peer(c)->sa;
}

/* Failed: log, slow the address down, close without a word. */
static int refuse(ss_conn *c, struct wstate *s, int err, const char *why)
{
    ss_authsvc *w = wrap_of(c);
    sh_lock(w->sh);
    uint32_t n = ss_auth_throttle_fail(&w->sh->throttle, peer_sa(c), now_ms());
    w->sh->failures++;
    sh_unlock(w->sh);
    ss_server_log(ss_conn_server(c), SS_LOG_WARN,
                  "authentication failed from %s: %s (failure %u from this address)",
                  ss_conn_peer_str(c), why, n);
    s->phase = PH_FAILED;
    ss_conn_timer_stop(c);
    ss_conn_abort(c, err);
    return 0;
}

static int flush_auth(ss_conn *c, struct wstate *s)
{
    const uint8_t *p;
    size_t n = ss_auth_output(&s->auth, &p);
    if (n) {
        int rc = ss_conn_write(c, p, n);
        if (rc < 0)
            return rc;
        ss_auth_output_done(&s->auth, n);
    }
    return 0;
}

static int start_handshake(ss_conn *c, struct wstate *s)
{
    ss_authsvc *w = wrap_of(c);
    int rc = ss_auth_init(&s->auth, SS_AUTH_SERVER, w->mode, w->key, NULL);
    if (rc < 0)
        return rc;
    s->phase = PH_HANDSHAKE;
    ss_conn_resume_read(c);
    rc = ss_conn_timer_start(c, w->timeout_ms);
    return rc < 0 ? rc : flush_auth(c, s);
}

/* How long this peer's challenge waits: its address's recent failures,
 * or the key's from all addresses, whichever is longer (the table is
 * shared by every worker thread and child). Logged with the reason. */
static uint64_t peer_delay(ss_authsvc *w, ss_conn *c)
{
    uint64_t now = now_ms();
    uint32_t key_n;
    sh_lock(w->sh);
    uint64_t delay = ss_auth_throttle_delay(&w->sh->throttle, peer_sa(c), now);
    uint64_t key = ss_auth_throttle_key_delay(&w->sh->throttle, now, &key_n);
    sh_unlock(w->sh);
    if (key > delay)
        ss_server_log(ss_conn_server(c), SS_LOG_DEBUG,
                      "%s: challenge delayed %llu ms: %u recent failures with this key "
                      "from any address", ss_conn_peer_str(c), (unsigned long long)key, key_n);
    else if (delay)
        ss_server_log(ss_conn_server(c), SS_LOG_DEBUG,
                      "%s failed recently: challenge delayed %llu ms", ss_conn_peer_str(c),
                      (unsigned long long)delay);
    return key > delay ? key : delay;
}

static int w_open(ss_conn *c)
{
    ss_authsvc *w = wrap_of(c);
    struct wstate *s = st_of(c);
    uint64_t delay = peer_delay(w, c);
    if (delay) {
        s->phase = PH_DELAYED;
        ss_conn_pause_read(c);
        return ss_conn_timer_start(c, delay);
    }
    return start_handshake(c, s);
}

static int w_data(ss_conn *c, const void *data, size_t len)
{
    ss_authsvc *w = wrap_of(c);
    struct wstate *s = st_of(c);
    if (s->phase == PH_OPEN)
        return w->inner->on_data ? w->inner->on_data(c, data, len) : 0;
    if (s->phase != PH_HANDSHAKE)
        return 0; /* delayed peers' bytes, or after failure: ignored */
    ssize_t used = ss_auth_input(&s->auth, data, len);
    if (used < 0)
        return refuse(c, s, (int)used, "wrong answer to the challenge");
    int rc = flush_auth(c, s);
    if (rc < 0)
        return rc;
    if (s->auth.state != SS_AUTH_DONE)
        return 0;
    ss_conn_timer_stop(c);
    sh_lock(w->sh);
    ss_auth_throttle_ok(&w->sh->throttle, peer_sa(c));
    sh_unlock(w->sh);
    ss_server_log(ss_conn_server(c), SS_LOG_DEBUG, "%s authenticated",
                  ss_conn_peer_str(c));
    s->phase = PH_OPEN;
    s->inner_opened = true;
    if (w->inner->on_open && (rc = w->inner->on_open(c)) < 0)
        return rc;
    if ((size_t)used < len && w->inner->on_data)
        return w->inner->on_data(c, (const uint8_t *)data + used, len - (size_t)used);
    return 0;
}

static int w_eof(ss_conn *c)
{
    ss_authsvc *w = wrap_of(c);
    struct wstate *s = st_of(c);
    if (s->phase == PH_OPEN && w->inner->on_eof)
        return w->inner->on_eof(c);
    if (s->phase == PH_HANDSHAKE)
        return refuse(c, s, SS_EAUTH, "closed before answering");
    ss_conn_close(c);
    return 0;
}

static int w_drain(ss_conn *c)
{
    ss_authsvc *w = wrap_of(c);
    if (st_of(c)->phase == PH_OPEN && w->inner->on_drain)
        return w->inner->on_drain(c);
    return 0;
}

static int w_timer(ss_conn *c)
{
    ss_authsvc *w = wrap_of(c);
    struct wstate *s = st_of(c);
    switch (s->phase) {
    case PH_DELAYED:
        return start_handshake(c, s);
    case PH_HANDSHAKE:
        return refuse(c, s, -ETIMEDOUT, "no answer within the handshake timeout");
    case PH_OPEN:
        return w->inner->on_timer ? w->inner->on_timer(c) : -ETIMEDOUT;
    case PH_FAILED:
        break;
    }
    return 0;
}

/* Only set when the inner service has its own: a peer gone while its
 * challenge is delayed is dropped at once. */
static int w_hangup(ss_conn *c)
{
    ss_authsvc *w = wrap_of(c);
    if (st_of(c)->phase == PH_OPEN)
        return w->inner->on_hangup(c);
    ss_conn_abort(c, -ECONNRESET);
    return 0;
}

static void w_close(ss_conn *c, int err)
{
    ss_authsvc *w = wrap_of(c);
    if (st_of(c)->inner_opened && w->inner->on_close)
        w->inner->on_close(c, err);
    memset(&st_of(c)->auth, 0, sizeof(ss_auth));
}

/* Blocking services: the handshake over ss_conn_read / ss_conn_write_all. */
static int w_handle(ss_conn *c)
{
    ss_authsvc *w = wrap_of(c);
    struct wstate *s = st_of(c);
    uint64_t delay = peer_delay(w, c);
    if (delay) {
        struct timespec ts = {(time_t)(delay / 1000), (long)(delay % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    int rc = ss_auth_init(&s->auth, SS_AUTH_SERVER, w->mode, w->key, NULL);
    if (rc < 0)
        return rc;
    s->phase = PH_HANDSHAKE;
    while (!ss_auth_done(&s->auth)) {
        const uint8_t *p;
        size_t n = ss_auth_output(&s->auth, &p);
        if (n) {
            if ((rc = ss_conn_write_all(c, p, n)) < 0)
                return rc;
            ss_auth_output_done(&s->auth, n);
            continue;
        }
        uint8_t buf[2 * SS_AUTH_CHALLENGE_LEN];
        size_t want = ss_auth_want(&s->auth);
        ssize_t r = ss_conn_read(c, buf, want);
        if (r <= 0) {
            refuse(c, s, r == 0 ? SS_EAUTH : (int)r,
                   r == 0 ? "closed before answering" : ss_strerror((int)r));
            return 0;
        }
        if (ss_auth_input(&s->auth, buf, (size_t)r) < 0) {
            refuse(c, s, SS_EAUTH, "wrong answer to the challenge");
            return 0;
        }
    }
    sh_lock(w->sh);
    ss_auth_throttle_ok(&w->sh->throttle, peer_sa(c));
    sh_unlock(w->sh);
    s->phase = PH_OPEN;
    s->inner_opened = true;
    if (w->inner->on_open && (rc = w->inner->on_open(c)) < 0)
        return rc;
    return w->inner->handle(c);
}

int ss_authsvc_init(ss_authsvc *w, const ss_service *inner,
                    const ss_auth_key *key, enum ss_auth_mode mode,
                    unsigned timeout_ms)
{
    if (inner->on_datagram && !inner->handle && !inner->on_data)
        return -EINVAL; /* no connection to authenticate */
    memset(w, 0, sizeof *w);
    w->inner = inner;
    w->key = key;
    w->mode = mode;
    w->timeout_ms = timeout_ms ? timeout_ms : SS_AUTH_TIMEOUT_SECS * 1000u;
    void *m = mmap(NULL, sizeof *w->sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    if (m == MAP_FAILED)
        return -errno;
    w->sh = m; /* zero-filled */
    ss_auth_throttle_init(&w->sh->throttle);
    pthread_mutexattr_t at;
    pthread_mutexattr_init(&at);
    pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST);
    int rc = pthread_mutex_init(&w->sh->lock, &at);
    pthread_mutexattr_destroy(&at);
    if (rc) {
        munmap(w->sh, sizeof *w->sh);
        w->sh = NULL;
        return -rc;
    }
    w->svc.name = inner->name;
    w->svc.conn_ctx_size = inner_size(inner) + sizeof(struct wstate);
    w->svc.on_close = w_close;
    w->svc.on_tick = inner->on_tick; /* service-wide: no handshake */
    if (inner->handle) {
        w->svc.handle = w_handle;
        return 0;
    }
    w->svc.on_open = w_open;
    w->svc.on_data = w_data;
    w->svc.on_eof = w_eof;
    w->svc.on_drain = w_drain;
    w->svc.on_timer = w_timer;
    if (inner->on_hangup)
        w->svc.on_hangup = w_hangup;
    return 0;
}

void ss_authsvc_destroy(ss_authsvc *w)
{
    if (!w->sh)
        return;
    pthread_mutex_destroy(&w->sh->lock);
    munmap(w->sh, sizeof *w->sh);
    w->sh = NULL;
}

uint64_t ss_authsvc_failures(ss_authsvc *w)
{
    sh_lock(w->sh);
    uint64_t n = w->sh->failures;
    sh_unlock(w->sh);
    return n;
}
