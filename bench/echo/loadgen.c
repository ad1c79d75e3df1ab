/* loadgen: an echo load generator for bench/echo/run.
 *
 *   loadgen [-u] -p PORT [-h HOST] [-c CONNS] [-s SIZE] [-w WINDOW]
 *           [-d SECS] [-t THREADS]
 *
 * Opens CONNS connections (TCP, or connected UDP sockets with -u), keeps
 * WINDOW messages of SIZE bytes in flight on each, and counts a message as
 * done when its SIZE bytes came back (TCP) or its datagram came back (UDP).
 * Latency is from sending a message to receiving its last byte. Prints one
 * line:
 *   conns=N msgs=N secs=F msg_per_s=F mb_per_s=F p50_us=N p99_us=N errors=N
 *   cpu_us_per_msg=F busy_pct=F
 * (mb_per_s counts echoed payload bytes, one direction, 10^6 bytes;
 * cpu_us_per_msg is the whole machine's busy CPU time over the run, from
 * /proc/stat, divided by the messages: server, this client and the kernel
 * between them; busy_pct is that busy time against all CPUs' time.)
 * Benchmark tool: prints and exits itself (not library code).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
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

#define HIST_US 200000 /* 1 us buckets up to 200 ms; slower goes in the last */
#define MAX_WINDOW 64

struct conn {
    int fd;
    uint64_t sent_at[MAX_WINDOW]; /* ring of send times, ns */
    int head, inflight;
    size_t got;                   /* bytes of the oldest message received */
    size_t unsent;                /* bytes of the newest message still to write */
};

struct thr {
    pthread_t tid;
    int first, count;
    struct conn *conns;
    uint64_t msgs, errors;
    uint64_t *hist;
};

static const char *host = "127.0.0.1";
static int port, nconns = 1, size = 64, window = 1, nthreads = 1;
static double secs = 3;
static bool udp;
static struct sockaddr_storage dst;
static socklen_t dstlen;
static volatile int stop;
static char *payload;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int open_conn(void)
{
    int fd = socket(dst.ss_family, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    if (!udp)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&dst, dstlen) < 0) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* Write as much of the pending message(s) as the socket takes. */
static void pump(struct thr *t, struct conn *c)
{
    for (;;) {
        if (c->unsent == 0) {
            if (c->inflight >= window)
                return;
            c->sent_at[(c->head + c->inflight) % MAX_WINDOW] = now_ns();
            c->inflight++;
            c->unsent = (size_t)size;
        }
        ssize_t n = send(c->fd, payload + (size_t)size - c->unsent, c->unsent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN)
                t->errors++;
            return;
        }
        c->unsent -= udp ? c->unsent : (size_t)n;
    }
}

static void done_one(struct thr *t, struct conn *c, uint64_t now)
{
    uint64_t us = (now - c->sent_at[c->head]) / 1000;
    t->hist[us < HIST_US ? us : HIST_US - 1]++;
    t->msgs++;
    c->head = (c->head + 1) % MAX_WINDOW;
    c->inflight--;
}

static void *run(void *arg)
{
    struct thr *t = arg;
    int ep = epoll_create1(0);
    static __thread char buf[1 << 16];
    for (int i = 0; i < t->count; i++) {
        struct conn *c = &t->conns[i];
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        pump(t, c);
    }
    struct epoll_event evs[256];
    while (!stop) {
        int n = epoll_wait(ep, evs, 256, 100);
        uint64_t now = now_ns();
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            for (;;) {
                ssize_t r = recv(c->fd, buf, sizeof buf, 0);
                if (r <= 0) {
                    if (r == 0 || errno != EAGAIN) {
                        t->errors++;
                        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    }
                    break;
                }
                if (udp) {
                    if (c->inflight > 0)
                        done_one(t, c, now);
                    if (c->inflight == 0)
                        break; /* nothing more can be on its way */
                    continue;
                }
                size_t left = (size_t)r;
                while (left > 0 && c->inflight > 0) {
                    size_t need = (size_t)size - c->got;
                    size_t take = left < need ? left : need;
                    c->got += take;
                    left -= take;
                    if (c->got == (size_t)size) {
                        c->got = 0;
                        done_one(t, c, now);
                    }
                }
                if ((size_t)r < sizeof buf)
                    break; /* drained: skip the EAGAIN round trip */
            }
            pump(t, c);
        }
        /* UDP: a lost datagram would stall its connection; resend it. */
        if (udp && n == 0) {
            for (int i = 0; i < t->count; i++) {
                struct conn *c = &t->conns[i];
                if (c->inflight > 0 && now - c->sent_at[c->head] > 200000000u) {
                    t->errors++;
                    c->head = (c->head + 1) % MAX_WINDOW;
                    c->inflight--;
                    pump(t, c);
                }
            }
        }
    }
    close(ep);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: loadgen [-u] -p PORT [-h HOST] [-c CONNS] [-s SIZE] "
                    "[-w WINDOW] [-d SECS] [-t THREADS]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "uh:p:c:s:w:d:t:")) != -1) {
        switch (opt) {
        case 'u': udp = true; break;
        case 'h': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'c': nconns = atoi(optarg); break;
        case 's': size = atoi(optarg); break;
        case 'w': window = atoi(optarg); break;
        case 'd': secs = atof(optarg); break;
        case 't': nthreads = atoi(optarg); break;
        default: usage();
        }
    }
    if (port <= 0 || nconns < 1 || size < 1 || size > 65000 || window < 1 ||
        window > MAX_WINDOW || nthreads < 1 || secs <= 0)
        usage();
    if (nthreads > nconns)
        nthreads = nconns;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);

    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo hints = {.ai_socktype = udp ? SOCK_DGRAM : SOCK_STREAM}, *ai;
    if (getaddrinfo(host, ps, &hints, &ai) != 0) {
        fprintf(stderr, "loadgen: cannot resolve %s\n", host);
        return 1;
    }
    memcpy(&dst, ai->ai_addr, ai->ai_addrlen);
    dstlen = ai->ai_addrlen;
    freeaddrinfo(ai);

    payload = malloc((size_t)size);
    for (int i = 0; i < size; i++)
        payload[i] = (char)('a' + i % 26);
    struct conn *conns = calloc((size_t)nconns, sizeof *conns);
    for (int i = 0; i < nconns; i++) {
        if ((conns[i].fd = open_conn()) < 0) {
            fprintf(stderr, "loadgen: connection %d: %s\n", i, strerror(errno));
            return 1;
        }
    }
    struct thr *th = calloc((size_t)nthreads, sizeof *th);
    int per = nconns / nthreads, extra = nconns % nthreads, at = 0;
    uint64_t busy0, total0, busy1, total1;
    machine_ticks(&busy0, &total0);
    uint64_t t0 = now_ns();
    for (int i = 0; i < nthreads; i++) {
        th[i].first = at;
        th[i].count = per + (i < extra);
        th[i].conns = conns + at;
        th[i].hist = calloc(HIST_US, sizeof(uint64_t));
        at += th[i].count;
        pthread_create(&th[i].tid, NULL, run, &th[i]);
    }
    struct timespec d = {.tv_sec = (time_t)secs,
                         .tv_nsec = (long)((secs - (double)(time_t)secs) * 1e9)};
    nanosleep(&d, NULL);
    stop = 1;
    uint64_t msgs = 0, errors = 0;
    uint64_t *hist = calloc(HIST_US, sizeof(uint64_t));
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i].tid, NULL);
        msgs += th[i].msgs;
        errors += th[i].errors;
        for (int k = 0; k < HIST_US; k++)
            hist[k] += th[i].hist[k];
        free(th[i].hist);
    }
    double el = (double)(now_ns() - t0) / 1e9;
    machine_ticks(&busy1, &total1);
    double tick_us = machine_tick_us();
    double cpu_us = msgs ? (double)(busy1 - busy0) * tick_us / (double)msgs : 0;
    double busy_pct = total1 > total0 ? 100.0 * (double)(busy1 - busy0) / (double)(total1 - total0) : 0;
    uint64_t p50 = 0, p99 = 0, acc = 0;
    bool have50 = false;
    for (int k = 0; k < HIST_US && msgs; k++) {
        acc += hist[k];
        if (!have50 && acc * 100 >= msgs * 50) {
            p50 = (uint64_t)k;
            have50 = true;
        }
        if (acc * 100 >= msgs * 99) {
            p99 = (uint64_t)k;
            break;
        }
    }
    printf("conns=%d msgs=%llu secs=%.2f msg_per_s=%.0f mb_per_s=%.2f p50_us=%llu "
           "p99_us=%llu errors=%llu cpu_us_per_msg=%.2f busy_pct=%.0f\n",
           nconns, (unsigned long long)msgs, el, (double)msgs / el,
           (double)msgs * size / el / 1e6, (unsigned long long)p50,
           (unsigned long long)p99, (unsigned long long)errors, cpu_us, busy_pct);
    for (int i = 0; i < nconns; i++)
        close(conns[i].fd);
    free(conns);
    free(th);
    free(hist);
    free(payload);
    return 0;
}
