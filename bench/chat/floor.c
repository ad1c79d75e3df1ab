/* floor: the least a chat fan-out server can do, as a yardstick for
 * bench/chat/run.
 *
 *   floor PORT
 *
 * Listens on 127.0.0.1:PORT. "/nick NAME" gets "OK nick NAME 1"; any other
 * line goes to every other connection as "MSG <fixed timestamp> uFD LINE".
 * Output for a connection is collected during one epoll iteration and sent
 * with one send() at its end, as serve chat does, but without anything
 * serve chat adds: no UTF-8 or length checks, no store, no presence, no
 * output limit (a full socket drops the rest), no error handling beyond
 * closing. What it costs per delivery is what the kernel's TCP path costs
 * on this machine, so serve chat's distance from it is our own overhead.
 * Benchmark tool: prints and exits itself (not library code); runs until
 * killed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_net.h"

enum { MAXFD = 1 << 16, INBUF = 4096, LINE = INBUF + 64 };

struct client {
    char in[INBUF];
    int in_len;
    char *out;
    int out_len, out_cap;
    int live;
};

static struct client *cl;
static int *dirty, n_dirty;
static int *members, n_members, *slot; /* live fds; slot[fd] = index */

static void join(int fd)
{
    cl[fd].live = 1;
    cl[fd].in_len = 0;
    slot[fd] = n_members;
    members[n_members++] = fd;
}

static void part(int fd)
{
    close(fd);
    cl[fd].live = 0;
    int last = members[--n_members];
    members[slot[fd]] = last;
    slot[last] = slot[fd];
}

static void queue(int fd, const char *p, int n)
{
    struct client *c = &cl[fd];
    if (c->out_len + n > c->out_cap) {
        int cap = (c->out_len + n) * 2;
        char *q = realloc(c->out, (size_t)cap);
        if (!q)
            return; /* drop: a yardstick, not a server */
        c->out = q;
        c->out_cap = cap;
    }
    if (c->out_len == 0)
        dirty[n_dirty++] = fd;
    memcpy(c->out + c->out_len, p, (size_t)n);
    c->out_len += n;
}

static void on_line(int fd, char *p)
{
    char line[LINE];
    int n;
    if (!strncmp(p, "/nick ", 6)) {
        n = snprintf(line, sizeof line, "OK nick %s 1\n", p + 6);
        queue(fd, line, n);
        return;
    }
    n = snprintf(line, sizeof line, "MSG 2026-01-01T00:00:00.000Z u%d %s\n", fd, p);
    for (int i = 0; i < n_members; i++)
        if (members[i] != fd)
            queue(members[i], line, n);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: floor PORT\n");
        return 2;
    }
    bench_raise_nofile();
    cl = calloc(MAXFD, sizeof *cl);
    dirty = calloc(MAXFD, sizeof *dirty);
    members = calloc(MAXFD, sizeof *members);
    slot = calloc(MAXFD, sizeof *slot);
    int l = bench_listen_lo(atoi(argv[1])), ep = l < 0 ? -1 : bench_epoll_with(l);
    if (!cl || !dirty || !members || !slot || ep < 0) {
        perror("floor");
        return 1;
    }
    static struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == l) {
                int c;
                while ((c = bench_accept_one(ep, l)) >= 0) {
                    if (c >= MAXFD)
                        close(c);
                    else
                        join(c);
                }
                continue;
            }
            struct client *c = &cl[fd];
            ssize_t r = recv(fd, c->in + c->in_len, sizeof c->in - (size_t)c->in_len - 1, 0);
            if (r <= 0) {
                part(fd);
                continue;
            }
            c->in_len += (int)r;
            char *p = c->in, *end = c->in + c->in_len, *nl;
            while ((nl = memchr(p, '\n', (size_t)(end - p)))) {
                *nl = '\0';
                on_line(fd, p);
                p = nl + 1;
            }
            c->in_len = (int)(end - p) == (int)sizeof c->in - 1 ? 0 : (int)(end - p);
            memmove(c->in, p, (size_t)c->in_len);
        }
        for (int i = 0; i < n_dirty; i++) {
            struct client *c = &cl[dirty[i]];
            if (c->live)
                send(dirty[i], c->out, (size_t)c->out_len, MSG_DONTWAIT | MSG_NOSIGNAL);
            c->out_len = 0;
        }
        n_dirty = 0;
    }
}
