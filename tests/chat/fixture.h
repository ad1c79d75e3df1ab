/* Test fixture for the chat server tests: the processes a test started
 * (stopped by PID in teardown), a scratch directory, the server, and raw
 * client sockets. Header-only (static), like stream.h. */
#ifndef SS_TEST_CHAT_FIXTURE_H
#define SS_TEST_CHAT_FIXTURE_H

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "stream.h"

static struct th_proc procs[64];
static int nprocs;
static char dir[128];

static inline struct th_proc *track(struct th_proc p)
{
    cr_assert_lt(nprocs, 64);
    procs[nprocs] = p;
    return &procs[nprocs++];
}

static inline void fx_setup(void)
{
    nprocs = 0;
    snprintf(dir, sizeof dir, "/tmp/ss-chat-test-%d", (int)getpid());
    /* A directory left by a killed run whose PID this worker reuses would
     * bring its chat.db (old history, message ids): start empty. */
    th_rm_rf(dir);
    mkdir(dir, 0700);
}

static inline void fx_teardown(void)
{
    for (int i = 0; i < nprocs; i++) {
        if (procs[i].pid > 0 && kill(procs[i].pid, 0) == 0)
            th_stop(&procs[i], SIGKILL, 2000);
        th_close_fds(&procs[i]);
    }
    streams_free();
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* Options the chat server had before issue 11: with SS_CHAT_COMPAT=1 in
 * the environment the others (and their values) are left out, so that an
 * attack test can be run against an older build to see it fail there. */
static inline bool fx_old_option(const char *opt)
{
    static const char *const old[] = {"--outq", "--join-history", "--file-quota",
                                      "--file-max", "--pbkdf2-iter", "--presence-max",
                                      "--max-line", "--room", "--db", NULL};
    for (int i = 0; old[i]; i++)
        if (!strcmp(opt, old[i]))
            return true;
    return false;
}

/* Start the chat server on 127.0.0.1 with a db in dir; extra is a
 * NULL-terminated list of "--option", "value" pairs (may be NULL). */
static inline int fx_server(struct th_proc **out, int port, const char *const *extra)
{
    char db[200], portstr[16];
    snprintf(db, sizeof db, "%s/chat.db", dir);
    snprintf(portstr, sizeof portstr, "%d", port);
    char *argv[64];
    int n = 0;
    const char *base[] = {th_sockstack(), "serve", "chat", "-b", "127.0.0.1", "--port",
                          portstr, "--db", db, "--pbkdf2-iter", "1000", "--grace", "0",
                          NULL};
    for (int i = 0; base[i]; i++)
        argv[n++] = (char *)base[i];
    bool compat = getenv("SS_CHAT_COMPAT") != NULL;
    for (int i = 0; extra && extra[i] && n < 60; i += 2) {
        if (compat && !fx_old_option(extra[i]))
            continue;
        argv[n++] = (char *)extra[i];
        if (extra[i + 1])
            argv[n++] = (char *)extra[i + 1];
        else
            break;
    }
    argv[n] = NULL;
    struct th_proc p;
    cr_assert_eq(th_spawn(&p, argv), 0);
    *out = track(p);
    int got = th_wait_listening(*out, 10000, NULL, 0);
    cr_assert_gt(got, 0, "server did not start");
    return got;
}

/* The ports of a server started with --irc-port 0: "chat: IRC on
 * 127.0.0.1:P (tcp)" comes first on stderr, then "listening on". Returns
 * the native port; the IRC one in *irc. */
static inline int fx_irc_ports(struct th_proc *t, int *irc_port)
{
    char buf[4096];
    size_t len = 0;
    char *irc = NULL, *nat = NULL;
    long deadline = now_ms() + 20000;
    while (!(irc && nat && strstr(nat, " (tcp)")) && now_ms() < deadline) {
        struct pollfd pfd = {.fd = t->err, .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t r = read(t->err, buf + len, sizeof buf - 1 - len);
        cr_assert_gt(r, 0, "server exited: %.*s", (int)len, buf);
        len += (size_t)r;
        buf[len] = '\0';
        irc = strstr(buf, "chat: IRC on 127.0.0.1:");
        nat = strstr(buf, "listening on 127.0.0.1:");
    }
    cr_assert(irc && nat, "no ports in: %s", buf);
    *irc_port = atoi(irc + strlen("chat: IRC on 127.0.0.1:"));
    int native = atoi(nat + strlen("listening on 127.0.0.1:"));
    cr_assert_gt(native, 0);
    cr_assert_gt(*irc_port, 0);
    return native;
}

/* A raw TCP client, optionally with a small receive buffer. */
static inline int fx_raw(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    if (rcvbuf)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* A raw client with its stream, past the whole "INFO welcome ..." line. */
static inline int fx_greeted(int port, struct stream *s)
{
    int fd = fx_raw(port, 0);
    stream_init(s, fd);
    cr_assert(expect(s, "INFO welcome", 10000), "no welcome in:\n%s", s->buf);
    cr_assert(expect(s, "\n", 10000), "%s", s->buf);
    return fd;
}

/* A raw client with its stream, entered with cmd ("/nick X\n" or
 * "/login X PW\n"): waits for "OK nick X ". */
static inline int fx_enter(int port, struct stream *s, const char *cmd, const char *nick)
{
    int fd = fx_raw(port, 0);
    stream_init(s, fd);
    put(fd, cmd);
    char want[64];
    snprintf(want, sizeof want, "OK nick %s ", nick);
    cr_assert(expect(s, want, 30000), "did not see \"%s\" in:\n%s", want, s->buf);
    return fd;
}

/* A raw client with its stream, already named. */
static inline int fx_join(int port, struct stream *s, const char *nick)
{
    char line[64];
    snprintf(line, sizeof line, "/nick %s\n", nick);
    return fx_enter(port, s, line, nick);
}

/* The lines our line-mode client showed as "[HH:MM:SS] MARK...", in order,
 * without the time: one per line into out ("" when none). */
static inline void fx_shown(struct stream *s, const char *mark, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, "] %s", mark);
    size_t n = 0;
    out[0] = '\0';
    for (char *p = s->buf; (p = strstr(p, pat)) && n < cap; p++) {
        char *end = strchr(p, '\n');
        if (!end)
            break;
        n += (size_t)snprintf(out + n, cap - n, "%.*s\n", (int)(end - p - 2), p + 2);
    }
}

#endif
