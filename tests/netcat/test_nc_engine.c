/* The nc engine in-process: hex dump lines, and backpressure both ways
 * measured against the kernel's own buffer sizes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "sockstack/config.h"
#include "sockstack/nc.h"
#include "sockstack/sock.h"

TestSuite(nc_engine, .timeout = 20);

Test(nc_engine, hexdump_line_matches_hexdump_C)
{
    char buf[SS_HEXDUMP_LINE_MAX];
    static const unsigned char full[] = "hello world\0\1\2\3\xff";
    int n = ss_hexdump_line(full, 16, 0, buf, sizeof buf);
    cr_assert_str_eq(buf, "00000000  68 65 6c 6c 6f 20 77 6f  72 6c 64 00 01 02 03 ff  |hello world.....|\n");
    cr_assert_eq(n, (int)strlen(buf));
    n = ss_hexdump_line(" ABC", 4, 0x10, buf, sizeof buf);
    cr_assert_str_eq(buf, "00000010  20 41 42 43                                       | ABC|\n");
    /* Exactly eight bytes: the gap after the eighth column is kept. */
    ss_hexdump_line("01234567", 8, 0xabcdef, buf, sizeof buf);
    cr_assert_str_eq(buf, "00abcdef  30 31 32 33 34 35 36 37                           |01234567|\n");
    cr_assert_eq(ss_hexdump_line("x", 1, 0, buf, 40), -ENOSPC);
    /* Past 4 GiB the offset grows, and needs room for it. */
    char big[SS_HEXDUMP_LINE_MAX + 8];
    cr_assert_eq(ss_hexdump_line("x", 1, 0x123456789ull, buf, sizeof buf), -ENOSPC);
    cr_assert_gt(ss_hexdump_line("x", 1, 0x123456789ull, big, sizeof big), 0);
    cr_assert(strncmp(big, "123456789  78 ", 14) == 0, "%s", big);
}

/* A connected TCP pair on loopback: *c (client, for the engine) and *s. */
static void tcp_pair(ss_sock **c, ss_sock **s)
{
    ss_addr a;
    cr_assert_eq(ss_addr_resolve("127.0.0.1", "0", AF_INET, SS_STREAM, true, &a, 1), 1);
    /* Fixed buffers: no autotuning, so the kernel's share is known. */
    ss_sockopts o;
    ss_sockopts_init(&o);
    o.sndbuf = o.rcvbuf = 64 * 1024;
    ss_sock *l;
    cr_assert_eq(ss_sock_listen_on(ss_backend_kernel(), &a, SS_STREAM, &o, 4, &l, NULL), 0);
    cr_assert_eq(ss_sock_local_addr(l, &a), 0);
    int err = ss_sock_connect_to(ss_backend_kernel(), &a, SS_STREAM, &o, NULL, c, NULL);
    cr_assert(err == 0 || err == -EINPROGRESS);
    /* The kernel completes the handshake on its own; wait for it. */
    cr_assert_eq(ss_sock_set_blocking(l, true), 0);
    cr_assert_eq(ss_sock_accept(l, s, NULL), 0);
    ss_sock_close(l);
}

static int sockopt(ss_sock *s, int name)
{
    int v = 0;
    socklen_t len = sizeof v;
    getsockopt(ss_sock_fd(s), SOL_SOCKET, name, &v, &len);
    return v;
}

/* Run the loop until an iteration of 50 ms passes with nothing moving. */
static void run_until_quiet(ss_loop *loop, uint64_t (*probe)(void *), void *arg)
{
    uint64_t last = (uint64_t)-1;
    for (int i = 0; i < 2000; i++) {
        ss_loop_run_once(loop, 50);
        uint64_t now = probe(arg);
        if (now == last)
            return;
        last = now;
    }
    cr_assert_fail("never settled");
}

/* An engine on its own loop, attached to the client end c of a TCP pair
 * (s is the peer), reading in_fd and writing out_fd. */
struct rig {
    ss_loop *loop;
    ss_sock *c, *s;
    ss_nc *nc;
};

static void rig_start(struct rig *r, int in_fd, int out_fd)
{
    cr_assert_eq(ss_loop_new(&r->loop), 0);
    tcp_pair(&r->c, &r->s);
    ss_nc_opts o;
    ss_nc_opts_init(&o);
    o.in_fd = in_fd;
    o.out_fd = out_fd;
    cr_assert_eq(ss_nc_new(r->loop, &o, NULL, NULL, &r->nc), 0);
    cr_assert_eq(ss_nc_attach(r->nc, r->c), 0);
}

static void rig_stop(struct rig *r)
{
    ss_nc_free(r->nc);
    ss_sock_close(r->c);
    ss_sock_close(r->s);
    ss_loop_free(r->loop);
}

static void close4(int in[2], int out[2])
{
    close(in[0]);
    close(in[1]);
    close(out[0]);
    close(out[1]);
}

static uint64_t probe_sent(void *nc) { return ss_nc_bytes_sent(nc); }
static uint64_t probe_received(void *nc) { return ss_nc_bytes_received(nc); }

Test(nc_engine, stdin_is_not_read_faster_than_the_peer_takes)
{
    int in[2], out[2];
    cr_assert_eq(pipe2(in, O_NONBLOCK), 0);
    cr_assert_eq(pipe2(out, O_NONBLOCK), 0);
    fcntl(in[1], F_SETPIPE_SZ, 1 << 20);
    struct rig r;
    rig_start(&r, in[0], out[1]);
    ss_loop *loop = r.loop;
    ss_sock *c = r.c, *s = r.s;
    ss_nc *nc = r.nc;

    /* Offer far more than all buffers hold; the peer (s) never reads. */
    size_t offered = 0;
    char chunk[65536];
    memset(chunk, 'x', sizeof chunk);
    for (int round = 0; round < 4; round++) {
        ssize_t n;
        while ((n = write(in[1], chunk, sizeof chunk)) > 0)
            offered += (size_t)n;
        run_until_quiet(loop, probe_sent, nc);
    }
    int left = 0;
    ioctl(in[0], FIONREAD, &left);
    size_t consumed = offered - (size_t)left;
    uint64_t sent = ss_nc_bytes_sent(nc);
    size_t bound = SS_NC_INBUF + (size_t)sockopt(c, SO_SNDBUF) + (size_t)sockopt(s, SO_RCVBUF);
    cr_assert_gt(left, 0, "all %zu offered bytes were taken", offered);
    cr_assert_leq(consumed, bound, "read %zu bytes of stdin, buffers hold %zu", consumed, bound);
    cr_assert_leq(consumed - sent, (size_t)SS_NC_INBUF, "held %zu unsent", (size_t)(consumed - sent));
    cr_assert_geq(sent, (uint64_t)sockopt(s, SO_RCVBUF) / 2, "sent only %llu",
                  (unsigned long long)sent);

    rig_stop(&r);
    close4(in, out);
}

Test(nc_engine, socket_is_not_read_faster_than_stdout_takes)
{
    int in[2], out[2];
    cr_assert_eq(pipe2(in, O_NONBLOCK), 0);
    cr_assert_eq(pipe2(out, O_NONBLOCK), 0);
    int pipe_cap = fcntl(out[1], F_GETPIPE_SZ);
    struct rig r;
    rig_start(&r, in[0], out[1]);
    ss_loop *loop = r.loop;
    ss_sock *s = r.s;
    ss_nc *nc = r.nc;

    /* The peer sends far more than fits; nobody reads the engine's stdout. */
    char chunk[65536];
    memset(chunk, 'y', sizeof chunk);
    size_t pushed = 0;
    for (int round = 0; round < 4; round++) {
        ssize_t n;
        while ((n = ss_sock_send(s, chunk, sizeof chunk)) > 0)
            pushed += (size_t)n;
        run_until_quiet(loop, probe_received, nc);
    }
    uint64_t received = ss_nc_bytes_received(nc);
    size_t bound = (size_t)pipe_cap + SS_NC_OUTBUF + SS_NC_RECV_SIZE;
    cr_assert_lt(received, pushed, "took everything (%zu)", pushed);
    /* It did fill stdout and its own buffer before stopping. */
    cr_assert_geq(received, (uint64_t)pipe_cap + SS_NC_OUTBUF,
                  "received only %llu", (unsigned long long)received);
    cr_assert_leq(received, bound, "received %llu, stdout side holds %zu",
                  (unsigned long long)received, bound);

    rig_stop(&r);
    close4(in, out);
}

/* Wait (bounded) until the engine's socket has len bytes queued to read. */
static void wait_queued(ss_sock *c, int len)
{
    for (int i = 0; i < 5000; i++) {
        int q = 0;
        ioctl(ss_sock_fd(c), FIONREAD, &q);
        if (q >= len)
            return;
        poll(NULL, 0, 1);
    }
    cr_assert_fail("the peer's bytes never arrived");
}

/* stdout a pipe (blocking, as a shell makes it): what one recv took goes
 * out in the same turn of the loop, in one write -- not in PIPE_BUF pieces
 * that each wait for the loop to report the pipe writable. */
Test(nc_engine, stdout_pipe_gets_a_whole_read_in_one_turn)
{
    int in[2], out[2];
    cr_assert_eq(pipe2(in, O_NONBLOCK), 0);
    cr_assert_eq(pipe2(out, 0), 0);
    cr_assert_geq(fcntl(out[1], F_SETPIPE_SZ, 1 << 20), 1 << 20);
    struct rig r;
    rig_start(&r, in[0], out[1]);
    ss_loop *loop = r.loop;
    ss_sock *c = r.c, *s = r.s;
    ss_nc *nc = r.nc;

    enum { LEN = 48000 }; /* one recv: under SS_NC_RECV_SIZE and SS_NC_OUTBUF */
    static char data[LEN], got[LEN];
    for (int i = 0; i < LEN; i++)
        data[i] = (char)(i % 253);
    cr_assert_eq(ss_sock_send(s, data, LEN), LEN);
    wait_queued(c, LEN);
    int turns = 0;
    while (ss_nc_bytes_received(nc) < LEN && turns < 100) {
        ss_loop_run_once(loop, 1000);
        turns++;
    }
    cr_assert_eq(ss_nc_bytes_received(nc), LEN);
    int in_pipe = 0;
    ioctl(out[0], FIONREAD, &in_pipe);
    cr_assert_eq(in_pipe, LEN, "the turn that received %d bytes wrote %d of them", LEN, in_pipe);
    cr_assert_eq(read(out[0], got, LEN), LEN);
    cr_assert_eq(memcmp(got, data, LEN), 0);

    rig_stop(&r);
    close4(in, out);
}

/* stdout a terminal: the kernel refuses RWF_NOWAIT there, and the engine
 * falls back to PIPE_BUF pieces per readiness report; every byte arrives. */
Test(nc_engine, stdout_terminal_gets_every_byte)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    cr_assert_geq(m, 0);
    cr_assert_eq(grantpt(m), 0);
    cr_assert_eq(unlockpt(m), 0);
    int t = open(ptsname(m), O_RDWR | O_NOCTTY);
    cr_assert_geq(t, 0);
    struct termios tio;
    cr_assert_eq(tcgetattr(t, &tio), 0);
    cfmakeraw(&tio); /* bytes as they are: no \n -> \r\n */
    cr_assert_eq(tcsetattr(t, TCSANOW, &tio), 0);
    fcntl(m, F_SETFL, O_NONBLOCK);

    struct rig r;
    rig_start(&r, -1, t);
    ss_loop *loop = r.loop;
    ss_sock *s = r.s;

    enum { LEN = 40000 }; /* more than a terminal buffers */
    static char data[LEN], got[LEN];
    for (int i = 0; i < LEN; i++)
        data[i] = (char)(i % 251);
    cr_assert_eq(ss_sock_send(s, data, LEN), LEN);
    size_t have = 0;
    for (int i = 0; i < 5000 && have < LEN; i++) {
        ss_loop_run_once(loop, 1);
        ssize_t n = read(m, got + have, LEN - have);
        if (n > 0)
            have += (size_t)n;
    }
    cr_assert_eq(have, (size_t)LEN);
    cr_assert_eq(memcmp(got, data, LEN), 0);

    rig_stop(&r);
    close(t);
    close(m);
}
