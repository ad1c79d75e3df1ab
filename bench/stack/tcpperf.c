/* tcpperf: the kernel-side TCP peer of bench/stack/run, in C so that the
 * peer never caps the figures (python3 did). Prints "key value" lines on
 * stdout; a listener prints "listening on ADDR:PORT (tcp)" on stderr.
 *
 *   send HOST PORT BYTES     connect, send BYTES (0: until the peer goes),
 *                            half-close, read to the peer's EOF;
 *                            "bytes N" "seconds S" "retrans R" (TCP_INFO)
 *   recv HOST PORT           connect, read to EOF; "bytes N" "seconds S"
 *   sink ADDR PORT [N [SECONDS [RCVBUF]]]
 *                            listen (PORT 0: any), accept N connections
 *                            (default 1) and read them all; with SECONDS,
 *                            count what each delivers in the SECONDS after
 *                            the last one was accepted, then close them all;
 *                            "conn I bytes B peer ADDR" per connection,
 *                            "seconds S";
 *                            RCVBUF sets SO_RCVBUF before listen (the
 *                            window the senders see)
 *   source ADDR PORT BYTES   listen, accept one, send BYTES, close
 *   echo ADDR PORT           listen, echo every connection (one at a time)
 *   cps HOST PORT SECONDS    sequential connect, half-close, wait for the
 *                            server's FIN; "connections N" "seconds S"
 *   idle HOST PORT N         open N connections, print "ready", hold them
 *                            until stdin closes
 * $TCPPERF_CC names the congestion control of every socket (e.g. cubic).
 * $TCPPERF_WINDOW, in bytes, clamps the window every socket advertises
 * (TCP_WINDOW_CLAMP; a listener's clamp is its connections'), so that a
 * kernel sender sees exactly that window whatever the receive buffer.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char buf[1 << 20];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "tcpperf: %s: %s\n", what, strerror(errno));
    exit(1);
}

static struct sockaddr_in addr_of(const char *host, const char *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        fprintf(stderr, "tcpperf: '%s' is not an IPv4 address\n", host);
        exit(2);
    }
    return a;
}

/* $TCPPERF_CC (e.g. cubic) as the socket's congestion control: a network
 * namespace may only choose from tcp_allowed_congestion_control, a
 * socket of a CAP_NET_ADMIN process from any loaded one. */
/* The per-socket settings from the environment: $TCPPERF_CC, $TCPPERF_WINDOW. */
static void sock_env(int s)
{
    const char *cc = getenv("TCPPERF_CC"), *win = getenv("TCPPERF_WINDOW");
    if (cc && *cc && setsockopt(s, IPPROTO_TCP, TCP_CONGESTION, cc, (socklen_t)strlen(cc)) < 0)
        die("TCP_CONGESTION");
    int clamp = win ? atoi(win) : 0;
    if (clamp > 0 && setsockopt(s, IPPROTO_TCP, TCP_WINDOW_CLAMP, &clamp, sizeof clamp) < 0)
        die("TCP_WINDOW_CLAMP");
}

static int connect_to(const char *host, const char *port)
{
    struct sockaddr_in a = addr_of(host, port);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0)
        die("socket");
    sock_env(s);
    if (connect(s, (struct sockaddr *)&a, sizeof a) < 0)
        die("connect");
    return s;
}

static int listen_on(const char *host, const char *port, int rcvbuf)
{
    struct sockaddr_in a = addr_of(host, port);
    int one = 1, s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0)
        die("socket");
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sock_env(s);
    if (rcvbuf > 0 && setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) < 0)
        die("SO_RCVBUF");
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 512) < 0)
        die("listen");
    socklen_t len = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &len);
    fprintf(stderr, "listening on %s:%u (tcp)\n", host, ntohs(a.sin_port));
    return s;
}

/* Read s to EOF (or an error); bytes read. */
static unsigned long long drain(int s)
{
    unsigned long long n = 0;
    ssize_t k;
    while ((k = read(s, buf, sizeof buf)) > 0)
        n += (unsigned long long)k;
    return n;
}

static int do_send(char **a)
{
    unsigned long long want = strtoull(a[2], NULL, 10), sent = 0;
    int s = connect_to(a[0], a[1]);
    double t0 = now_s();
    while (want == 0 || sent < want) {
        size_t k = sizeof buf;
        if (want && want - sent < k)
            k = (size_t)(want - sent);
        ssize_t w = write(s, buf, k);
        if (w <= 0)
            break;
        sent += (unsigned long long)w;
    }
    shutdown(s, SHUT_WR);
    drain(s);
    double t = now_s() - t0;
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &len);
    printf("bytes %llu\nseconds %.6f\nretrans %u\n", sent, t, ti.tcpi_total_retrans);
    return want && sent != want;
}

static int do_recv(char **a)
{
    int s = connect_to(a[0], a[1]);
    double t0 = now_s();
    unsigned long long n = drain(s);
    printf("bytes %llu\nseconds %.6f\n", n, now_s() - t0);
    return 0;
}

static int do_sink(int argc, char **a)
{
    int n = argc > 2 ? atoi(a[2]) : 1;
    double seconds = argc > 3 ? atof(a[3]) : 0;
    int l = listen_on(a[0], a[1], argc > 4 ? atoi(a[4]) : 0);
    if (n < 1 || n > 16)
        n = 1;
    struct pollfd p[16];
    unsigned long long bytes[16] = {0};
    char peer[16][INET_ADDRSTRLEN];
    for (int i = 0; i < n; i++) {
        struct sockaddr_in from;
        socklen_t flen = sizeof from;
        p[i].fd = accept(l, (struct sockaddr *)&from, &flen);
        inet_ntop(AF_INET, &from.sin_addr, peer[i], sizeof peer[i]);
        if (p[i].fd < 0)
            die("accept");
        p[i].events = POLLIN;
    }
    double t0 = now_s(), end = seconds > 0 ? t0 + seconds : 0;
    int open = n;
    while (open) {
        int wait = -1;
        if (end) {
            double left = end - now_s();
            if (left <= 0)
                break;
            wait = (int)(left * 1000) + 1;
        }
        if (poll(p, (nfds_t)n, wait) < 0 && errno != EINTR)
            die("poll");
        for (int i = 0; i < n; i++) {
            if (p[i].fd < 0 || !p[i].revents)
                continue;
            ssize_t k = read(p[i].fd, buf, sizeof buf);
            if (k > 0) {
                bytes[i] += (unsigned long long)k;
            } else {
                close(p[i].fd);
                p[i].fd = -1;
                open--;
            }
        }
    }
    double t = now_s() - t0;
    for (int i = 0; i < n; i++) {
        printf("conn %d bytes %llu peer %s\n", i, bytes[i], peer[i]);
        if (p[i].fd >= 0)
            close(p[i].fd);
    }
    printf("seconds %.6f\n", end ? seconds : t);
    return 0;
}

static int do_source(char **a)
{
    unsigned long long want = strtoull(a[2], NULL, 10), sent = 0;
    int l = listen_on(a[0], a[1], 0);
    int s = accept(l, NULL, NULL);
    if (s < 0)
        die("accept");
    while (sent < want) {
        size_t k = want - sent < sizeof buf ? (size_t)(want - sent) : sizeof buf;
        ssize_t w = write(s, buf, k);
        if (w <= 0)
            die("write");
        sent += (unsigned long long)w;
    }
    close(s);
    return 0;
}

static int do_echo(char **a)
{
    int l = listen_on(a[0], a[1], 0);
    for (;;) {
        int s = accept(l, NULL, NULL);
        if (s < 0)
            die("accept");
        ssize_t k;
        while ((k = read(s, buf, sizeof buf)) > 0)
            if (write(s, buf, (size_t)k) != k)
                break;
        close(s);
    }
    return 0;
}

static int do_cps(char **a)
{
    double seconds = atof(a[2]), t0 = now_s();
    unsigned long long n = 0;
    while (now_s() - t0 < seconds) {
        int s = connect_to(a[0], a[1]);
        shutdown(s, SHUT_WR);
        char c;
        if (read(s, &c, 1) < 0) /* the server's FIN: the connection completed */
            die("read");
        close(s);
        n++;
    }
    printf("connections %llu\nseconds %.6f\n", n, now_s() - t0);
    return 0;
}

static int do_idle(char **a)
{
    int n = atoi(a[2]);
    for (int i = 0; i < n; i++)
        connect_to(a[0], a[1]); /* held open until we exit */
    printf("ready\n");
    fflush(stdout);
    while (read(0, buf, sizeof buf) > 0) {
    }
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    const char *m = argc > 1 ? argv[1] : "";
    int n = argc - 2;
    char **a = argv + 2;
    if (!strcmp(m, "send") && n == 3)
        return do_send(a);
    if (!strcmp(m, "recv") && n == 2)
        return do_recv(a);
    if (!strcmp(m, "sink") && n >= 2 && n <= 5)
        return do_sink(n, a);
    if (!strcmp(m, "source") && n == 3)
        return do_source(a);
    if (!strcmp(m, "echo") && n == 2)
        return do_echo(a);
    if (!strcmp(m, "cps") && n == 3)
        return do_cps(a);
    if (!strcmp(m, "idle") && n == 3)
        return do_idle(a);
    fprintf(stderr, "usage: tcpperf send|recv|sink|source|echo|cps|idle ... (see the source)\n");
    return 2;
}
