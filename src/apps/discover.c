/* discover: probe/answer formats and the announcer thread (see discover.h).
 * The announcer runs its own reactor loop on its own thread, so any
 * service (whatever its concurrency model) can announce itself. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sockstack/discover.h"
#include "sockstack/config.h"
#include "sockstack/err.h"
#include "sockstack/reactor.h"
#include "sockstack/sock.h"

int ss_discover_answer_format(char *buf, size_t cap, const char *name, int port,
                              const char *proto)
{
    if (!*name || strchr(name, ' ') || strlen(name) > 31 || port < 0 || port > 65535 ||
        !*proto || strchr(proto, ' ') || strlen(proto) > 7)
        return -EINVAL;
    int n = snprintf(buf, cap, "SSSERVICE1 %s %d %s", name, port, proto);
    return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}

int ss_discover_answer_parse(const void *buf, size_t len, char *name, size_t name_cap,
                             int *port, char *proto, size_t proto_cap)
{
    char tmp[128], n[32], p[8];
    if (len >= sizeof tmp || name_cap < 32 || proto_cap < 8)
        return SS_EBADPKT;
    memcpy(tmp, buf, len);
    tmp[len] = '\0';
    int pt, used = 0;
    if (sscanf(tmp, "SSSERVICE1 %31s %d %7s%n", n, &pt, p, &used) != 3 ||
        (size_t)used != len || pt < 0 || pt > 65535)
        return SS_EBADPKT;
    snprintf(name, name_cap, "%s", n);
    snprintf(proto, proto_cap, "%s", p);
    *port = pt;
    return 0;
}

bool ss_discover_is_probe(const void *buf, size_t len)
{
    return len == strlen(SS_DISCOVER_PROBE) && !memcmp(buf, SS_DISCOVER_PROBE, len);
}

struct ss_announcer {
    ss_loop *loop;
    ss_sock *s;
    pthread_t thread;
    char answer[80];
    int answer_len;
    unsigned long answered;
};

static void on_probe(ss_sock *s, unsigned ev, void *arg)
{
    ss_announcer *a = arg;
    char buf[64];
    ss_addr from;
    bool trunc;
    ssize_t n = ss_sock_recvfrom(s, buf, sizeof buf, &from, &trunc);
    if (n > 0 && !trunc && ss_discover_is_probe(buf, (size_t)n) &&
        ss_sock_sendto(s, a->answer, (size_t)a->answer_len, &from) > 0)
        __atomic_add_fetch(&a->answered, 1, __ATOMIC_RELAXED);
}

static void *run(void *arg)
{
    ss_announcer *a = arg;
    ss_loop_run(a->loop);
    return NULL;
}

int ss_announcer_start(ss_announcer **out, const char *name, int port,
                       const char *proto, int disc_port)
{
    *out = NULL;
    ss_announcer *a = calloc(1, sizeof *a);
    if (!a)
        return -ENOMEM;
    a->answer_len = ss_discover_answer_format(a->answer, sizeof a->answer, name, port, proto);
    int err = a->answer_len < 0 ? a->answer_len : 0;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", disc_port);
    ss_addr any;
    if (!err && (err = ss_addr_resolve("0.0.0.0", portstr, AF_INET, SS_DGRAM, true, &any, 1)) > 0)
        err = 0;
    ss_sockopts o;
    ss_sockopts_init(&o);
    o.reuseaddr = 1;
    o.broadcast = 1;
    if (!err)
        err = ss_sock_listen_on(ss_backend_kernel(), &any, SS_DGRAM, &o, 0, &a->s, NULL);
    if (!err)
        err = ss_loop_new(&a->loop);
    if (!err)
        err = ss_sock_watch(a->s, a->loop, SS_READ, on_probe, a);
    if (!err)
        err = -pthread_create(&a->thread, NULL, run, a);
    if (err) {
        ss_sock_close(a->s);
        if (a->loop)
            ss_loop_free(a->loop);
        free(a);
        return err;
    }
    *out = a;
    return 0;
}

unsigned long ss_announcer_answered(const ss_announcer *a)
{
    return __atomic_load_n(&a->answered, __ATOMIC_RELAXED);
}

void ss_announcer_stop(ss_announcer *a)
{
    if (!a)
        return;
    ss_loop_stop(a->loop);
    pthread_join(a->thread, NULL);
    ss_sock_close(a->s);
    ss_loop_free(a->loop);
    free(a);
}

/* ---- the prober ------------------------------------------------------------ */

struct prober {
    ss_discover_found seen[SS_DISCOVER_FOUND_MAX];
    int n;
    ss_discover_cb cb;
    void *arg;
};

static void on_answer(ss_sock *s, unsigned ev, void *arg)
{
    struct prober *p = arg;
    char buf[128];
    ss_addr from;
    bool trunc;
    ssize_t n = ss_sock_recvfrom(s, buf, sizeof buf, &from, &trunc);
    ss_discover_found f;
    if (n <= 0 || trunc || ss_discover_answer_parse(buf, (size_t)n, f.name, sizeof f.name,
                                                    &f.port, f.proto, sizeof f.proto) < 0)
        return;
    ss_addr_format(&from, f.addr, sizeof f.addr);
    char *colon = strrchr(f.addr, ':'); /* the answer's own port is not the service's */
    if (colon)
        *colon = '\0';
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->seen[i].name, f.name) && !strcmp(p->seen[i].addr, f.addr) &&
            p->seen[i].port == f.port && !strcmp(p->seen[i].proto, f.proto))
            return;
    if (p->n == SS_DISCOVER_FOUND_MAX)
        return;
    p->seen[p->n++] = f;
    p->cb(&f, p->arg);
}

static void on_wait_over(ss_loop *loop, ss_timer *t, void *arg)
{
    *(bool *)arg = true;
}

int ss_discover_probe(ss_loop *loop, const ss_addr *dst, unsigned wait_ms, ss_discover_cb cb,
                      void *arg)
{
    ss_addr any;
    int err = ss_addr_resolve("0.0.0.0", "0", AF_INET, SS_DGRAM, true, &any, 1);
    if (err < 0)
        return err;
    ss_sockopts o;
    ss_sockopts_init(&o);
    o.broadcast = 1;
    ss_sock *s;
    if ((err = ss_sock_listen_on(ss_backend_kernel(), &any, SS_DGRAM, &o, 0, &s, NULL)) < 0)
        return err;
    ssize_t sent = ss_sock_sendto(s, SS_DISCOVER_PROBE, strlen(SS_DISCOVER_PROBE), dst);
    struct prober *p = sent < 0 ? NULL : calloc(1, sizeof *p);
    if (!p) {
        ss_sock_close(s);
        return sent < 0 ? (int)sent : -ENOMEM;
    }
    p->cb = cb;
    p->arg = arg;
    bool over = false;
    ss_timer t;
    ss_timer_init(&t, on_wait_over, &over);
    ss_timer_start(loop, &t, wait_ms);
    err = ss_sock_watch(s, loop, SS_READ, on_answer, p);
    while (err == 0 && !over) {
        int r = ss_loop_run_once(loop, -1);
        if (r < 0)
            err = r;
    }
    ss_timer_stop(loop, &t);
    int found = p->n;
    ss_sock_close(s);
    free(p);
    return err < 0 ? err : found;
}
