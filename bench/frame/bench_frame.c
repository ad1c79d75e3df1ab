/* Framing throughput over loopback TCP, against named peers in one run:
 *   small  N messages of S bytes: sockstack frames (batched writev, decoder)
 *          vs libzmq PUSH/PULL (same count and size)
 *   large  1 MiB messages: sockstack frames (writev, zero-copy receive)
 *          vs a raw TCP pipe moving the same bytes with write()/read()
 *   tls    1 MiB messages over TLS (sock/tls, both ends, the reactor)
 *          vs socat OPENSSL-LISTEN / OPENSSL moving the same bytes
 * Each case forks a receiver, times from start to the receiver's last byte,
 * and prints one line "CASE VALUE UNIT"; the 1 MiB cases also print the
 * CPU each end spent per GB ("large-cpu-send", "tls-cpu-recv", ...). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sockstack/dial.h"
#include "sockstack/frame.h"
#include "sockstack/tls.h"

#ifdef HAVE_ZMQ
#include <zmq.h>
#endif

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds (user + system) of this process (RUSAGE_SELF) or of its
 * waited-for children (RUSAGE_CHILDREN). */
static double cpu_s(int who)
{
    struct rusage r;
    getrusage(who, &r);
    return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
           (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

/* CPU per GB of each end of a transfer: the sender is this process, the
 * receiver its child. What a run costs the machine, whatever else runs. */
struct cpu_mark {
    double self, kids;
};

static struct cpu_mark cpu_mark(void)
{
    return (struct cpu_mark){cpu_s(RUSAGE_SELF), cpu_s(RUSAGE_CHILDREN)};
}

static void cpu_print(const char *name, struct cpu_mark m, double bytes)
{
    double gb = bytes / 1e9;
    printf("%s-cpu-send %.3f s/GB\n", name, (cpu_s(RUSAGE_SELF) - m.self) / gb);
    printf("%s-cpu-recv %.3f s/GB\n", name, (cpu_s(RUSAGE_CHILDREN) - m.kids) / gb);
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* Listening loopback socket on a free port. */
static int listener(int *port)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1) ||
        getsockname(ls, (struct sockaddr *)&a, &al))
        die("listen");
    *port = ntohs(a.sin_port);
    return ls;
}

static int connect_to(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a))
        die("connect");
    return s;
}

struct count {
    uint64_t n, bytes;
};

static int count_cb(const uint8_t *p, size_t len, void *arg)
{
    struct count *c = arg;
    c->n++;
    c->bytes += len;
    return 0;
}

/* Some bytes from a connection: count (> 0), or <= 0 at its end / error. */
typedef ssize_t (*read_fn)(void *src, void *buf, size_t cap);

static ssize_t fd_read(void *src, void *buf, size_t cap)
{
    return read(*(int *)src, buf, cap);
}

/* Receiver for frames: chunked reads + decoder, zero-copy for big payloads. */
static void frame_receive(read_fn rd, void *src, uint64_t want_msgs)
{
    ss_frame_decoder d;
    ss_frame_decoder_init(&d, SS_FRAME_BE32, 64u << 20);
    struct count c = {0};
    static uint8_t buf[256 * 1024];
    while (c.n < want_msgs) {
        uint8_t *room;
        ssize_t r = ss_frame_decoder_room(&d, &room);
        if (r > 65536) {
            ssize_t n = rd(src, room, (size_t)r);
            if (n <= 0)
                die("read");
            ss_frame_decoder_commit(&d, (size_t)n, count_cb, &c);
            continue;
        }
        /* After a large message read just the next length field, so its
         * payload lands in the decoder's buffer directly, not via buf. */
        size_t want = c.n && c.bytes / c.n > 65536 && ss_frame_decoder_idle(&d)
                          ? ss_frame_header_len(SS_FRAME_BE32) : sizeof buf;
        ssize_t n = rd(src, buf, want);
        if (n <= 0)
            die("read");
        if (ss_frame_decode(&d, buf, (size_t)n, count_cb, &c) < 0)
            die("decode");
    }
    ss_frame_decoder_free(&d);
}

static void frame_receiver(int fd, uint64_t want_msgs)
{
    frame_receive(fd_read, &fd, want_msgs);
}

static double run_frames(uint64_t msgs, size_t size)
{
    int port;
    int ls = listener(&port);
    uint8_t *payload = calloc(1, size ? size : 1);
    double t0 = now();
    pid_t pid = fork();
    if (pid == 0) {
        int fd = accept(ls, NULL, NULL);
        frame_receiver(fd, msgs);
        _exit(0);
    }
    close(ls);
    int fd = connect_to(port);
    ss_frame_batch b;
    ss_frame_batch_init(&b, SS_FRAME_BE32, 64u << 20);
    /* Small messages: gather many per writev; large: a few. */
    int per = size >= 65536 ? 4 : 1 << 30; /* small: until the batch is full */
    for (uint64_t i = 0; i < msgs;) {
        ss_frame_batch_reset(&b);
        for (int k = 0; k < per && i < msgs; k++, i++)
            if (ss_frame_batch_add(&b, payload, size) < 0)
                break;
        if (ss_frame_batch_writev(&b, fd) < 0)
            die("writev");
    }
    int st;
    waitpid(pid, &st, 0);
    double t = now() - t0;
    close(fd);
    free(payload);
    return t;
}

static double run_raw(uint64_t bytes, size_t chunk)
{
    int port;
    int ls = listener(&port);
    uint8_t *buf = calloc(1, chunk);
    double t0 = now();
    pid_t pid = fork();
    if (pid == 0) {
        int fd = accept(ls, NULL, NULL);
        uint64_t got = 0;
        while (got < bytes) {
            ssize_t n = read(fd, buf, chunk);
            if (n <= 0)
                die("read");
            got += (uint64_t)n;
        }
        _exit(0);
    }
    close(ls);
    int fd = connect_to(port);
    for (uint64_t sent = 0; sent < bytes;) {
        ssize_t w = write(fd, buf, chunk);
        if (w <= 0)
            die("write");
        sent += (uint64_t)w;
    }
    int st;
    waitpid(pid, &st, 0);
    double t = now() - t0;
    close(fd);
    free(buf);
    return t;
}

#ifdef HAVE_ZMQ
static double run_zmq(uint64_t msgs, size_t size)
{
    void *ctx = zmq_ctx_new();
    void *push = zmq_socket(ctx, ZMQ_PUSH);
    if (zmq_bind(push, "tcp://127.0.0.1:*"))
        die("zmq_bind");
    char ep[256];
    size_t epl = sizeof ep;
    zmq_getsockopt(push, ZMQ_LAST_ENDPOINT, ep, &epl);
    uint8_t *payload = calloc(1, size ? size : 1);
    double t0 = now();
    pid_t pid = fork();
    if (pid == 0) {
        void *c2 = zmq_ctx_new();
        void *pull = zmq_socket(c2, ZMQ_PULL);
        if (zmq_connect(pull, ep))
            die("zmq_connect");
        zmq_msg_t m;
        zmq_msg_init(&m);
        for (uint64_t i = 0; i < msgs; i++)
            if (zmq_msg_recv(&m, pull, 0) < 0)
                die("zmq_recv");
        zmq_msg_close(&m);
        zmq_close(pull);
        zmq_ctx_term(c2);
        _exit(0);
    }
    for (uint64_t i = 0; i < msgs; i++)
        if (zmq_send(push, payload, size, 0) < 0)
            die("zmq_send");
    int st;
    waitpid(pid, &st, 0);
    double t = now() - t0;
    int linger = 0;
    zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(push);
    zmq_ctx_term(ctx);
    free(payload);
    return t;
}
#endif

/* ---- TLS -------------------------------------------------------------------- */

static char tls_dir[64];

static ss_tls_ctx *tls_ctx(bool server)
{
    char cert[128], key[128], err[256];
    snprintf(cert, sizeof cert, "%s/cert.pem", tls_dir);
    snprintf(key, sizeof key, "%s/key.pem", tls_dir);
    ss_tls_opts o;
    ss_tls_opts_init(&o);
    if (server) {
        o.cert = cert;
        o.key = key;
    } else {
        o.ca = cert;
    }
    ss_tls_ctx *c;
    if (ss_tls_ctx_new(&o, server, &c, err, sizeof err) < 0) {
        fprintf(stderr, "tls: %s\n", err);
        exit(1);
    }
    return c;
}

static ssize_t stream_read(void *src, void *buf, size_t cap)
{
    return ss_stream_recv(src, buf, cap);
}

/* Frames of size bytes over TLS: the receiver decodes in place. */
static double run_frames_tls(uint64_t msgs, size_t size)
{
    ss_addr a;
    ss_addr_resolve("127.0.0.1", "0", AF_INET, SS_STREAM, true, &a, 1);
    ss_sock *ls;
    if (ss_sock_listen_on(ss_backend_kernel(), &a, SS_STREAM, NULL, 4, &ls, NULL) < 0)
        die("listen");
    ss_sock_local_addr(ls, &a);
    char port[16];
    snprintf(port, sizeof port, "%d", ss_addr_port(&a));
    uint8_t *payload = calloc(1, size ? size : 1);
    double t0 = now();
    pid_t pid = fork();
    if (pid == 0) {
        ss_loop *loop;
        ss_loop_new(&loop);
        ss_tls_ctx *ctx = tls_ctx(true);
        ss_sock *c = NULL;
        while (ss_sock_accept(ls, &c, NULL) == -EAGAIN)
            ss_sock_wait(ls, loop, SS_READ, -1);
        if (!c || ss_tls_wrap(ctx, c, NULL, &c) < 0)
            die("accept");
        ss_stream st = {.sock = c, .loop = loop, .timeout_ms = 30000};
        frame_receive(stream_read, &st, msgs);
        _exit(0);
    }
    ss_sock_close(ls);
    ss_loop *loop;
    ss_loop_new(&loop);
    ss_tls_ctx *ctx = tls_ctx(false);
    ss_dial_opts o;
    ss_dial_opts_init(&o);
    o.tls = ctx;
    ss_sock *s;
    char err[256];
    if (ss_dial(loop, "127.0.0.1", port, &o, &s, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    ss_stream st = {.sock = s, .loop = loop, .timeout_ms = 30000};
    for (uint64_t i = 0; i < msgs; i++) {
        uint8_t hdr[4];
        ss_frame_header_write(SS_FRAME_BE32, size, hdr);
        struct iovec iov[2] = {{hdr, 4}, {payload, size}};
        if (ss_stream_sendv_all(&st, iov, 2) < 0)
            die("tls write");
    }
    int stt;
    waitpid(pid, &stt, 0);
    double t = now() - t0;
    ss_sock_close(s);
    ss_tls_ctx_free(ctx);
    ss_loop_free(loop);
    free(payload);
    return t;
}

/* socat OPENSSL-LISTEN -> stdout (/dev/null) and stdin -> socat OPENSSL,
 * fed `bytes` from a pipe: the same bytes through socat's TLS. < 0 when
 * socat is missing. */
static double run_socat_tls(uint64_t bytes)
{
    int port;
    close(listener(&port)); /* a free port */
    char lspec[512], cspec[256];
    snprintf(lspec, sizeof lspec,
             "OPENSSL-LISTEN:%d,bind=127.0.0.1,reuseaddr,cert=%s/cert.pem,key=%s/key.pem,verify=0",
             port, tls_dir, tls_dir);
    snprintf(cspec, sizeof cspec, "OPENSSL:127.0.0.1:%d,cafile=%s/cert.pem", port, tls_dir);
    pid_t rx = fork();
    if (rx == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        execlp("socat", "socat", "-u", lspec, "-", (char *)NULL);
        _exit(127);
    }
    /* Wait until it listens (a probe would use up its one connection). */
    for (int i = 0; i < 200; i++) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "ss -Hltn 'sport = :%d' | grep -q .", port);
        if (system(cmd) == 0)
            break;
        usleep(20000);
    }
    int pfd[2];
    if (pipe(pfd) < 0)
        die("pipe");
    double t0 = now();
    pid_t tx = fork();
    if (tx == 0) {
        dup2(pfd[0], 0);
        close(pfd[0]);
        close(pfd[1]);
        execlp("socat", "socat", "-u", "-", cspec, (char *)NULL);
        _exit(127);
    }
    close(pfd[0]);
    static uint8_t chunk[1 << 20];
    for (uint64_t sent = 0; sent < bytes;) {
        ssize_t w = write(pfd[1], chunk, sizeof chunk);
        if (w <= 0)
            break;
        sent += (uint64_t)w;
    }
    close(pfd[1]);
    int st1, st2;
    waitpid(tx, &st1, 0);
    waitpid(rx, &st2, 0);
    double t = now() - t0;
    if (!WIFEXITED(st1) || WEXITSTATUS(st1) != 0 || !WIFEXITED(st2) || WEXITSTATUS(st2) != 0)
        return -1;
    return t;
}

static void tls_cleanup(void)
{
    char p[128];
    snprintf(p, sizeof p, "%s/cert.pem", tls_dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/key.pem", tls_dir);
    unlink(p);
    rmdir(tls_dir);
}

int main(int argc, char **argv)
{
    uint64_t small_n = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000;
    size_t small_size = argc > 2 ? strtoul(argv[2], NULL, 10) : 16;
    uint64_t large_n = argc > 3 ? strtoull(argv[3], NULL, 10) : 4096;
    size_t large = 1u << 20;

    double t = run_frames(small_n, small_size);
    printf("small-sockstack %.0f msg/s (%llu x %zu B)\n", (double)small_n / t,
           (unsigned long long)small_n, small_size);
#ifdef HAVE_ZMQ
    t = run_zmq(small_n, small_size);
    printf("small-zmq %.0f msg/s (%llu x %zu B, libzmq %d.%d.%d PUSH/PULL)\n",
           (double)small_n / t, (unsigned long long)small_n, small_size, ZMQ_VERSION_MAJOR,
           ZMQ_VERSION_MINOR, ZMQ_VERSION_PATCH);
#else
    printf("small-zmq unavailable (built without libzmq)\n");
#endif
    struct cpu_mark m = cpu_mark();
    t = run_frames(large_n, large);
    printf("large-sockstack %.1f MB/s (%llu x 1 MiB)\n", (double)large_n * large / t / 1e6,
           (unsigned long long)large_n);
    cpu_print("large", m, (double)large_n * large);
    t = run_raw((uint64_t)large_n * large, large);
    printf("large-raw %.1f MB/s (write/read of 1 MiB buffers)\n",
           (double)large_n * large / t / 1e6);
    if (getenv("BENCH_TLS") && large_n > 1) {
        char err[256];
        snprintf(tls_dir, sizeof tls_dir, "/tmp/ss-bench-tls-XXXXXX");
        if (!mkdtemp(tls_dir) || ss_tls_keygen(tls_dir, 1, false, err, sizeof err) < 0)
            die("keygen");
        m = cpu_mark();
        t = run_frames_tls(large_n, large);
        printf("tls-sockstack %.1f MB/s (%llu x 1 MiB over TLS)\n",
               (double)large_n * large / t / 1e6, (unsigned long long)large_n);
        cpu_print("tls", m, (double)large_n * large);
        t = run_socat_tls((uint64_t)large_n * large);
        if (t > 0)
            printf("tls-socat %.1f MB/s (socat OPENSSL, same bytes)\n",
                   (double)large_n * large / t / 1e6);
        else
            printf("tls-socat unavailable\n");
        tls_cleanup();
    }
    return 0;
}
