/* chatload: fan-out load for chat servers (bench/chat/run).
 *
 *   chatload HOST PORT CLIENTS SENDERS WINDOW SECS MODE
 *
 * PORT may be a list, "P1,P2,P3": the nodes of a cluster on HOST; client i
 * connects to the (i mod n)-th, so clients and senders spread evenly.
 * Opens CLIENTS connections (MODE "ss": each takes a nickname with /nick;
 * MODE "irc": each registers (NICK, USER) and joins #lobby on the chat
 * server's IRC port, and sends PRIVMSG #lobby; MODE "ncat": ncat --chat
 * needs nothing), waits until the join chatter has
 * settled, then SENDERS of them send messages "@@ID:NS@@" (NS = send time,
 * CLOCK_MONOTONIC ns) with at most WINDOW of their own messages in flight: a
 * message is complete when every other client has received it (or after 2 s,
 * counted as a timeout). Every receiver notes the delivery latency. After
 * SECS it prints one line:
 *   clients=N delivered=D rate=R/s p50=X ms p99=Y ms timeouts=T
 *   cpu_us_per_delivery=C busy_pct=B server_us_per_delivery=S
 * (C: the whole machine's busy CPU time over the measured seconds, from
 * /proc/stat -- server, this program and the kernel -- per delivery; on a
 * shared machine it counts other people's work too. S: the server's own
 * CPU time (user + system, /proc/PID/stat) per delivery, when
 * $CHATLOAD_SERVER_PID names it, else -1. On loopback the server's system
 * time includes the receiving side's TCP path, which runs inside its
 * send(); S is the figure to compare servers by when the box is busy.)
 * $CHATLOAD_LOGIN="PREFIX PASSWORD" (MODE "ss"): client i logs in as
 * registered PREFIXi with "/login PREFIXi PASSWORD" instead of /nick
 * (bench/chat/callgrind OFFLINE=1 registers them first).
 * The shell commands in $CHATLOAD_AT_START and $CHATLOAD_AT_END, if set,
 * run just before and just after the measured seconds.
 * One thread, epoll; memory is bounded (a ring of in-flight messages and a
 * latency histogram of 10 us buckets up to 10 s).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "machine_cpu.h"

enum { RING = 1 << 16, BUCKETS = 1000000, BUF = 1 << 16 };

struct client {
    int fd;
    char buf[BUF];
    size_t len;
    int joined;
    int sender;
    int inflight;
};

struct msg {
    uint64_t id;
    uint64_t sent_ns;
    int from;
    int got;
    int live;
};

static struct client *cl;
static struct msg ring[RING];
static uint64_t *hist;
static int n_clients;
static uint64_t next_id = 1, delivered, timeouts, joined_count;
static int measuring;
static int irc; /* MODE "irc" */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* user + system CPU time of process pid so far, in clock ticks; -1 if
 * it cannot be read. */
static long long proc_ticks(const char *pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* after "(comm)": state is field 3, utime 14, stime 15 */
    char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
                     &st) != 2)
        return -1;
    return (long long)(ut + st);
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue; /* short lines only: spin is fine */
            die("send");
        }
        p += w;
        n -= (size_t)w;
    }
}

static void send_msg(int i)
{
    struct client *c = &cl[i];
    uint64_t id = next_id++;
    struct msg *m = &ring[id % RING];
    if (m->live)
        return; /* ring full: skip this turn */
    *m = (struct msg){.id = id, .sent_ns = now_ns(), .from = i, .live = 1};
    char line[128];
    int n = snprintf(line, sizeof line, "%s@@%llu:%llu@@%s", irc ? "PRIVMSG #lobby :" : "",
                     (unsigned long long)id, (unsigned long long)m->sent_ns,
                     irc ? "\r\n" : "\n");
    send_all(c->fd, line, (size_t)n);
    c->inflight++;
}

static void complete(struct msg *m)
{
    m->live = 0;
    cl[m->from].inflight--;
}

/* The decimal number ending just before *pp (scanning backwards), which
 * then points at its first digit; no digits -> -1. Hand-parsed from the
 * line's end, where both servers put the payload: at a few million lines a
 * second sscanf() and memmem() were most of this program's time, and the
 * load generator must not be what a benchmark measures. */
static int parse_back(const char **pp, const char *start, uint64_t *out)
{
    const char *p = *pp;
    while (p > start && p[-1] >= '0' && p[-1] <= '9')
        p--;
    if (p == *pp || *pp - p > 20)
        return -1;
    uint64_t v = 0;
    for (const char *q = p; q < *pp; q++)
        v = v * 10 + (uint64_t)(*q - '0');
    *pp = p;
    *out = v;
    return 0;
}

/* Client i takes its nick (or logs in, $CHATLOAD_LOGIN). */
static void send_join(int i)
{
    char nick[160];
    const char *login = getenv("CHATLOAD_LOGIN");
    const char *pw = login ? strchr(login, ' ') : NULL;
    int n = irc ? snprintf(nick, sizeof nick,
                           "NICK u%d_%d\r\nUSER u 0 * :u\r\nJOIN #lobby\r\n", (int)getpid(), i)
            : pw ? snprintf(nick, sizeof nick, "/login %.*s%d %.64s\n",
                            (int)(pw - login) > 32 ? 32 : (int)(pw - login), login, i, pw + 1)
                 : snprintf(nick, sizeof nick, "/nick u%d_%d\n", (int)getpid(), i);
    send_all(cl[i].fd, nick, (size_t)n);
}

/* One line [line, end) (no newline), read at time NOW. Payload lines end
 * in "@@ID:NS@@". */
static void on_line(int i, const char *line, const char *end, uint64_t now)
{
    struct client *c = &cl[i];
    if (end > line && end[-1] == '\r')
        end--;
    if (!c->joined && ((!irc && end - line >= 8 && !memcmp(line, "OK nick ", 8)) ||
                       (irc && end - line > 30 && memmem(line, (size_t)(end - line),
                                                         " 366 ", 5)))) {
        c->joined = 1;
        joined_count++;
        return;
    }
    /* A login refused while the server checks other passwords: again. */
    if (!c->joined && !irc && end - line >= 9 && !memcmp(line, "ERR busy ", 9)) {
        send_join(i);
        return;
    }
    if (end - line < 7 || end[-1] != '@' || end[-2] != '@')
        return;
    const char *p = end - 2;
    uint64_t id, ns;
    if (parse_back(&p, line, &ns) || p - line < 3 || *--p != ':' ||
        parse_back(&p, line, &id) || p - line < 2 || p[-1] != '@' || p[-2] != '@')
        return;
    if (measuring) {
        delivered++;
        uint64_t b = (now - ns) / 10000; /* 10 us buckets */
        hist[b < BUCKETS ? b : BUCKETS - 1]++;
    }
    struct msg *m = &ring[id % RING];
    if (m->live && m->id == id && ++m->got >= n_clients - 1)
        complete(m);
}

static void on_read(int i)
{
    struct client *c = &cl[i];
    for (;;) {
        size_t space = BUF - c->len;
        ssize_t r = recv(c->fd, c->buf + c->len, space, 0);
        if (r == 0) {
            fprintf(stderr, "chatload: client %d: server closed\n", i);
            exit(1);
        }
        if (r < 0) {
            if (errno == EAGAIN)
                return;
            die("recv");
        }
        /* One clock reading per read: every line in it had arrived by now. */
        uint64_t now = now_ns();
        c->len += (size_t)r;
        const char *p = c->buf, *end = c->buf + c->len, *nl;
        while ((nl = memchr(p, '\n', (size_t)(end - p)))) {
            on_line(i, p, nl, now);
            p = nl + 1;
        }
        size_t left = (size_t)(end - p);
        if (left == BUF)
            left = 0; /* an absurd line: drop it */
        memmove(c->buf, p, left);
        c->len = left;
        /* A short read drained the socket: epoll (level-triggered) will say
         * when there is more, so skip the recv that would return EAGAIN. */
        if ((size_t)r < space)
            return;
    }
}

static double pct(double q)
{
    uint64_t total = 0, seen = 0;
    for (int b = 0; b < BUCKETS; b++)
        total += hist[b];
    if (!total)
        return 0;
    for (int b = 0; b < BUCKETS; b++) {
        seen += hist[b];
        if (seen >= (uint64_t)(q * (double)total))
            return (b + 1) * 0.01; /* ms, bucket upper edge */
    }
    return BUCKETS * 0.01;
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: chatload HOST PORT CLIENTS SENDERS WINDOW SECS ss|irc|ncat\n");
        return 2;
    }
    const char *host = argv[1];
    int ports[16], n_ports = 0;
    for (char *p = argv[2]; *p && n_ports < 16; p = strchr(p, ',') ? strchr(p, ',') + 1 : "")
        ports[n_ports++] = atoi(p);
    n_clients = atoi(argv[3]);
    int senders = atoi(argv[4]), window = atoi(argv[5]);
    double secs = atof(argv[6]);
    irc = !strcmp(argv[7], "irc");
    int ss = !strcmp(argv[7], "ss") || irc;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    static struct epoll_event evs[1024];
    cl = calloc((size_t)n_clients, sizeof *cl);
    hist = calloc(BUCKETS, sizeof *hist);
    int ep = epoll_create1(0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, host, &a.sin_addr);
    for (int i = 0; i < n_clients; i++) {
        a.sin_port = htons((uint16_t)ports[i % n_ports]);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            die("socket");
        if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
            die("connect");
        /* ncat accepts slowly with a small backlog, and quits when it
         * accepts a connection the kernel already dropped: pace it. */
        if (!ss)
            usleep(2000);
        /* read while connecting: join chatter must not fill our buffers */
        int got = epoll_wait(ep, evs, 1024, 0);
        for (int k = 0; k < got; k++)
            on_read((int)evs[k].data.u32);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(fd, F_SETFL, O_NONBLOCK);
        cl[i].fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        if (ss)
            send_join(i);
    }
    /* Wait for every /nick answer, then for the presence chatter to end. */
    uint64_t quiet_since = now_ns();
    for (;;) {
        int n = epoll_wait(ep, evs, 1024, 50);
        if (n > 0)
            quiet_since = now_ns();
        for (int k = 0; k < n; k++)
            on_read((int)evs[k].data.u32);
        if ((!ss || joined_count == (uint64_t)n_clients) && now_ns() - quiet_since > 300000000ull)
            break;
    }
    for (int s = 0; s < senders; s++)
        cl[s].sender = 1;
    /* bench/chat/cluster reads Redis's counters around the measured time */
    const char *hook = getenv("CHATLOAD_AT_START");
    if (hook && system(hook) != 0)
        fprintf(stderr, "chatload: CHATLOAD_AT_START failed\n");
    measuring = 1;
    uint64_t busy0, total0, busy1, total1;
    const char *spid = getenv("CHATLOAD_SERVER_PID");
    long long srv0 = spid ? proc_ticks(spid) : -1, srv1 = -1;
    machine_ticks(&busy0, &total0);
    uint64_t start = now_ns(), end = start + (uint64_t)(secs * 1e9), last_sweep = start;
    while (now_ns() < end) {
        for (int s = 0; s < senders; s++)
            while (cl[s].inflight < window)
                send_msg(s);
        int n = epoll_wait(ep, evs, 1024, 10);
        for (int k = 0; k < n; k++)
            on_read((int)evs[k].data.u32);
        /* messages not complete after 2 s: count and release. The ring is
         * 64 Ki entries: sweep it ten times a second, not every wakeup. */
        uint64_t now = now_ns();
        if (now - last_sweep < 100000000ull)
            continue;
        last_sweep = now;
        for (int r = 0; r < RING; r += 1) {
            struct msg *m = &ring[r];
            if (m->live && now - m->sent_ns > 2000000000ull) {
                timeouts++;
                complete(m);
            }
        }
    }
    double took = (double)(now_ns() - start) / 1e9;
    measuring = 0;
    machine_ticks(&busy1, &total1);
    if (srv0 >= 0)
        srv1 = proc_ticks(spid);
    hook = getenv("CHATLOAD_AT_END");
    if (hook && system(hook) != 0)
        fprintf(stderr, "chatload: CHATLOAD_AT_END failed\n");
    double cpu_us = delivered ? (double)(busy1 - busy0) * machine_tick_us() / (double)delivered : 0;
    double busy_pct =
        total1 > total0 ? 100.0 * (double)(busy1 - busy0) / (double)(total1 - total0) : 0;
    double srv_us = srv1 >= srv0 && srv0 >= 0 && delivered
                        ? (double)(srv1 - srv0) * machine_tick_us() / (double)delivered
                        : -1;
    printf("clients=%d senders=%d window=%d delivered=%llu rate=%.0f/s p50=%.2f ms "
           "p99=%.2f ms timeouts=%llu cpu_us_per_delivery=%.2f busy_pct=%.0f "
           "server_us_per_delivery=%.3f\n",
           n_clients, senders, window, (unsigned long long)delivered,
           (double)delivered / took, pct(0.50), pct(0.99), (unsigned long long)timeouts, cpu_us,
           busy_pct, srv_us);
    return 0;
}
