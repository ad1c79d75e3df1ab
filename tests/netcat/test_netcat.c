/* sockstack connect / listen end to end: real processes on loopback, with
 * peers written here (forked C servers), python3 and ncat. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

TestSuite(netcat, .timeout = 30);

/* ---- helpers -------------------------------------------------------------- */

#define CLI(...) ((char *[]){(char *)th_sockstack(), __VA_ARGS__, NULL})

static void spawn(struct th_proc *p, char *const argv[])
{
    cr_assert_eq(th_spawn(p, argv), 0, "spawn %s", argv[0]);
}

/* Exit status of p (kills it after timeout_ms). */
static int exit_code(struct th_proc *p, int timeout_ms)
{
    int st = th_wait(p, timeout_ms);
    cr_assert_neq(st, -1, "process did not exit in time");
    cr_assert(WIFEXITED(st), "process died by signal %d", WTERMSIG(st));
    return WEXITSTATUS(st);
}

static char *read_err(struct th_proc *p)
{
    char *e;
    ssize_t n = th_read_all(p->err, &e, 3000);
    e[n < 0 ? 0 : n] = '\0';
    return e;
}

static int port_str(char *buf, int port)
{
    return snprintf(buf, 16, "%d", port);
}

/* A loopback socket of type on an ephemeral port; its port in *port. */
static int loopback_socket(int type, int *port)
{
    int fd = socket(AF_INET, type, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Fork a C server on fd: fn(fd) runs in the child, which then exits. */
static pid_t fork_server(int fd, void (*fn)(int fd))
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        fn(fd);
        _exit(0);
    }
    close(fd);
    return pid;
}

/* A forked UDP server fn on a loopback port: its pid; the port as text in
 * ps (16 bytes) and, if port is not NULL, as a number. */
static pid_t udp_server(void (*fn)(int fd), char *ps, int *port)
{
    int p;
    pid_t pid = fork_server(loopback_socket(SOCK_DGRAM, &p), fn);
    port_str(ps, p);
    if (port)
        *port = p;
    return pid;
}

static void reap(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* Feed in to client p, wait for it to end: its whole stdout must be want
 * and its exit status 0. */
static void exchange_expect(struct th_proc *p, const void *in, size_t len, const char *want)
{
    char *out;
    ssize_t n = th_exchange(p, in, len, &out, 10000);
    cr_assert_geq(n, 0);
    out[n] = '\0';
    cr_assert_str_eq(out, want);
    cr_assert_eq(exit_code(p, 5000), 0);
    free(out);
    th_close_fds(p);
}

/* TCP echo: one connection, everything back, then close (our FIN follows
 * the client's). */
static void tcp_echo(int lfd)
{
    listen(lfd, 1);
    int c = accept(lfd, NULL, NULL);
    char buf[65536];
    ssize_t n;
    while ((n = read(c, buf, sizeof buf)) > 0)
        if (th_write_all(c, buf, (size_t)n) < 0)
            _exit(1);
    close(c);
}

/* UDP: answer each datagram with "<LEN:BYTES>". */
static void udp_tagger(int fd)
{
    char buf[70000], out[70100];
    for (;;) {
        struct sockaddr_storage from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
        if (n < 0)
            _exit(1);
        int h = snprintf(out, sizeof out, "<%zd:", n);
        memcpy(out + h, buf, (size_t)n);
        out[h + n] = '>';
        sendto(fd, out, (size_t)(h + n + 1), 0, (struct sockaddr *)&from, fl);
    }
}

/* UDP: answer each datagram with the same bytes. */
static void udp_echo(int fd)
{
    char buf[70000];
    for (;;) {
        struct sockaddr_storage from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
        if (n < 0)
            _exit(1);
        sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
    }
}

/* UDP: answer any datagram with 100 bytes 'a'..'y' x4. */
static void udp_big_reply(int fd)
{
    char buf[2048], out[100];
    for (int i = 0; i < 100; i++)
        out[i] = (char)('a' + i % 25);
    for (;;) {
        struct sockaddr_storage from;
        socklen_t fl = sizeof from;
        if (recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl) < 0)
            _exit(1);
        sendto(fd, out, sizeof out, 0, (struct sockaddr *)&from, fl);
    }
}

/* Start python3 with an inline script; its first stdout line is a port. */
static int spawn_python(struct th_proc *p, const char *script)
{
    spawn(p, (char *[]){"python3", "-u", "-c", (char *)script, NULL});
    char line[64];
    cr_assert(th_read_until(p->out, "\n", line, sizeof line, 10000),
              "python3 peer did not start");
    return atoi(line);
}

/* Start `sockstack listen ARGS` and return its port. */
static int spawn_listener(struct th_proc *p, char *const argv[])
{
    spawn(p, argv);
    char line[256];
    int port = th_wait_listening(p, 10000, line, sizeof line);
    cr_assert_geq(port, 0, "no 'listening on' line");
    return port;
}

/* ---- TCP ------------------------------------------------------------------ */

Test(netcat, tcp_binary_safe_1mib_both_ways_through_echo_server)
{
    int port;
    int lfd = loopback_socket(SOCK_STREAM, &port);
    pid_t srv = fork_server(lfd, tcp_echo);
    size_t len = 1 << 20;
    unsigned char *data = malloc(len);
    for (size_t i = 0; i < len; i++)
        data[i] = (unsigned char)((i * 2654435761u) >> 13); /* every byte value */
    char ps[16];
    port_str(ps, port);
    struct th_proc p;
    spawn(&p, CLI("connect", "127.0.0.1", ps));
    char *out;
    ssize_t n = th_exchange(&p, data, len, &out, 20000);
    cr_assert_eq(n, (ssize_t)len, "echoed %zd of %zu bytes", n, len);
    cr_assert(memcmp(out, data, len) == 0, "echoed bytes differ");
    cr_assert_eq(exit_code(&p, 5000), 0);
    free(out);
    free(data);
    th_close_fds(&p);
    reap(srv);
}

Test(netcat, half_close_delivers_reply_sent_after_eof_python_peer)
{
    struct th_proc py;
    int port = spawn_python(&py,
        "import socket\n"
        "s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(1)\n"
        "print(s.getsockname()[1])\n"
        "c,_=s.accept(); d=b''\n"
        "while True:\n"
        "  x=c.recv(65536)\n"
        "  if not x: break\n"
        "  d+=x\n"
        "c.sendall(b'got %d bytes: %s\\n' % (len(d), d)); c.close()\n");
    char ps[16];
    port_str(ps, port);
    struct th_proc p;
    spawn(&p, CLI("connect", "localhost", ps, "-4"));
    char *out;
    ssize_t n = th_exchange(&p, "hello", 5, &out, 10000);
    cr_assert_eq(n, 19, "got %zd bytes", n);
    cr_assert_eq(memcmp(out, "got 5 bytes: hello\n", 19), 0, "got '%.*s'", (int)n, out);
    cr_assert_eq(exit_code(&p, 5000), 0);
    free(out);
    th_close_fds(&p);
    th_stop(&py, SIGKILL, 2000);
    th_close_fds(&py);
}

Test(netcat, peer_half_closes_first_and_still_gets_stdin_python_peer)
{
    /* The peer says bye and shuts its side; the client must keep sending
     * (both directions of TCP are independent) until its stdin ends. */
    struct th_proc py;
    int port = spawn_python(&py,
        "import socket\n"
        "s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(1)\n"
        "print(s.getsockname()[1])\n"
        "c,_=s.accept(); c.sendall(b'bye\\n'); c.shutdown(socket.SHUT_WR); d=b''\n"
        "while True:\n"
        "  x=c.recv(65536)\n"
        "  if not x: break\n"
        "  d+=x\n"
        "print(d.decode(), end='')\n");
    char ps[16], buf[256];
    port_str(ps, port);
    struct th_proc p;
    spawn(&p, CLI("connect", "127.0.0.1", ps));
    cr_assert(th_read_until(p.out, "bye\n", buf, sizeof buf, 10000), "client printed '%s'", buf);
    cr_assert_eq(th_write_all(p.in, "after your FIN\n", 15), 0);
    close(p.in);
    p.in = -1;
    cr_assert(th_read_until(py.out, "after your FIN\n", buf, sizeof buf, 10000),
              "peer got '%s'", buf);
    cr_assert_eq(exit_code(&p, 5000), 0);
    cr_assert_eq(exit_code(&py, 5000), 0);
    th_close_fds(&p);
    th_close_fds(&py);
}

Test(netcat, connect_refused_exit_1_with_exact_message)
{
    int port;
    int fd = loopback_socket(SOCK_STREAM, &port); /* bound, not listening */
    char ps[16], want[128];
    port_str(ps, port);
    struct th_proc p;
    spawn(&p, CLI("connect", "127.0.0.1", ps));
    close(p.in);
    p.in = -1;
    char *err = read_err(&p);
    snprintf(want, sizeof want, "sockstack: connect 127.0.0.1:%d: Connection refused\n", port);
    cr_assert_str_eq(err, want);
    cr_assert_eq(exit_code(&p, 5000), 1);
    free(err);
    th_close_fds(&p);
    close(fd);
}

Test(netcat, connect_timeout_bounds_an_unanswered_attempt)
{
    /* A listener with backlog 0 and one connection queued drops further
     * SYNs: the next connect stays in SYN-SENT until --timeout. */
    int port;
    int lfd = loopback_socket(SOCK_STREAM, &port);
    cr_assert_eq(listen(lfd, 0), 0);
    int filler = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(filler, (struct sockaddr *)&a, sizeof a), 0);
    char ps[16], want[128];
    port_str(ps, port);
    struct th_proc p;
    spawn(&p, CLI("connect", "--timeout", "0.3", "127.0.0.1", ps));
    char *err = read_err(&p);
    snprintf(want, sizeof want, "sockstack: connect 127.0.0.1:%d: Connection timed out\n", port);
    cr_assert_str_eq(err, want);
    cr_assert_eq(exit_code(&p, 5000), 1);
    free(err);
    th_close_fds(&p);
    close(filler);
    close(lfd);
}

Test(netcat, hex_dump_exact_bytes_over_tcp)
{
    int port;
    int lfd = loopback_socket(SOCK_STREAM, &port);
    pid_t srv = fork_server(lfd, tcp_echo);
    char ps[16];
    port_str(ps, port);
    struct th_proc p;
    spawn(&p, CLI("connect", "--hex", "127.0.0.1", ps));
    static const char in[] = "hello world\0\1\2\3\xff ABC";
    /* Same lines as `hexdump -C` (which adds a final offset line). */
    exchange_expect(&p, in, sizeof in - 1,
        "00000000  68 65 6c 6c 6f 20 77 6f  72 6c 64 00 01 02 03 ff  |hello world.....|\n"
        "00000010  20 41 42 43                                       | ABC|\n");
    reap(srv);
}

Test(netcat, info_prints_tcp_info_block_on_close)
{
    int port;
    int lfd = loopback_socket(SOCK_STREAM, &port);
    pid_t srv = fork_server(lfd, tcp_echo);
    char ps[16];
    port_str(ps, port);
    struct th_proc p;
    spawn(&p, CLI("connect", "--info", "127.0.0.1", ps));
    char *out;
    ssize_t n = th_exchange(&p, "ping\n", 5, &out, 10000);
    cr_assert_eq(n, 5);
    char *err = read_err(&p);
    cr_assert_eq(exit_code(&p, 5000), 0);
    cr_assert(strstr(err, "tcp info:"), "stderr: %s", err);
    cr_assert(strstr(err, "rtt "), "stderr: %s", err);
    cr_assert(strstr(err, "cwnd"), "stderr: %s", err);
    cr_assert(strstr(err, "bytes acked"), "stderr: %s", err);
    /* We half-closed, then the peer closed: a closing state, by RFC name. */
    cr_assert(strstr(err, "state          ESTABLISHED") || strstr(err, "CLOSED") ||
              strstr(err, "TIME-WAIT") || strstr(err, "FIN-WAIT-2") ||
              strstr(err, "CLOSE-WAIT") || strstr(err, "LAST-ACK"), "stderr: %s", err);
    cr_assert(strstr(err, "bytes sent     5\n"), "stderr: %s", err);
    free(out);
    free(err);
    th_close_fds(&p);
    reap(srv);
}

/* ---- UDP ------------------------------------------------------------------ */

Test(netcat, udp_one_datagram_per_line_and_replies_printed)
{
    char ps[16];
    pid_t srv = udp_server(udp_tagger, ps, NULL);
    struct th_proc p;
    spawn(&p, CLI("connect", "--udp", "--wait", "0.5", "127.0.0.1", ps));
    exchange_expect(&p, "one\ntwo\nthree", 13, "<4:one\n><4:two\n><5:three>");
    reap(srv);
}

Test(netcat, udp_raw_one_datagram_per_read)
{
    char ps[16];
    pid_t srv = udp_server(udp_tagger, ps, NULL);
    struct th_proc p;
    spawn(&p, CLI("connect", "-u", "--raw", "--wait", "0.5", "127.0.0.1", ps));
    /* One write of 6 bytes to a pipe is one read for the client. */
    exchange_expect(&p, "a\nb\nc\n", 6, "<6:a\nb\nc\n>");
    reap(srv);
}

/* UDP: answer each datagram with its length only. */
static void udp_sizer(int fd)
{
    static char buf[70000];
    char out[32];
    for (;;) {
        struct sockaddr_storage from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
        if (n < 0)
            _exit(1);
        int h = snprintf(out, sizeof out, "%zd\n", n);
        sendto(fd, out, (size_t)h, 0, (struct sockaddr *)&from, fl);
    }
}

Test(netcat, udp_raw_from_a_file_sends_at_most_65507_per_datagram)
{
    /* A regular file is always readable: the reads must still be cut at
     * the largest UDP payload, also before the socket is connected. */
    char path[64], ps[16], cmd[512];
    snprintf(path, sizeof path, "/tmp/ss-nc-raw-%d", (int)getpid());
    FILE *f = fopen(path, "w");
    cr_assert(f);
    for (int i = 0; i < 70000; i++)
        fputc('r', f);
    fclose(f);
    pid_t srv = udp_server(udp_sizer, ps, NULL);
    snprintf(cmd, sizeof cmd, "exec '%s' connect -u --raw --wait 0.5 127.0.0.1 %s < %s",
             th_sockstack(), ps, path);
    struct th_proc p;
    spawn(&p, (char *[]){"sh", "-c", cmd, NULL});
    char *out;
    ssize_t n = th_read_all(p.out, &out, 10000);
    out[n] = '\0';
    cr_assert_str_eq(out, "65507\n4493\n");
    cr_assert_eq(exit_code(&p, 5000), 0);
    free(out);
    th_close_fds(&p);
    reap(srv);
    unlink(path);
}

Test(netcat, udp_truncated_datagram_reported)
{
    char ps[16];
    int port;
    pid_t srv = udp_server(udp_big_reply, ps, &port);
    struct th_proc p;
    spawn(&p, CLI("connect", "-u", "--recv-size", "10", "--wait", "0.5", "127.0.0.1", ps));
    char *out;
    ssize_t n = th_exchange(&p, "x\n", 2, &out, 10000);
    cr_assert_eq(n, 10);
    cr_assert_eq(memcmp(out, "abcdefghij", 10), 0);
    char *err = read_err(&p);
    char want[128];
    snprintf(want, sizeof want,
             "sockstack: datagram from 127.0.0.1:%d truncated to 10 bytes (--recv-size)\n", port);
    cr_assert_str_eq(err, want);
    cr_assert_eq(exit_code(&p, 5000), 0);
    free(out);
    free(err);
    th_close_fds(&p);
    reap(srv);
}

Test(netcat, udp_hex_dump_per_datagram)
{
    char ps[16];
    pid_t srv = udp_server(udp_echo, ps, NULL);
    struct th_proc p;
    spawn(&p, CLI("connect", "-u", "-x", "--wait", "0.5", "127.0.0.1", ps));
    /* Each datagram is dumped from offset 0. */
    exchange_expect(&p, "AB\n\x01\x7f\n", 6,
        "00000000  41 42 0a                                          |AB.|\n"
        "00000000  01 7f 0a                                          |...|\n");
    reap(srv);
}

Test(netcat, udp_listen_prints_datagrams_and_replies_to_sender)
{
    struct th_proc l;
    int port = spawn_listener(&l, CLI("listen", "--udp", "-4", "--bind", "127.0.0.1", "0"));
    /* python3 as the foreign UDP peer. */
    char script[512];
    snprintf(script, sizeof script,
             "import socket\n"
             "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(10)\n"
             "s.sendto(b'ping\\n',('127.0.0.1',%d))\n"
             "print(0)\n"
             "d,_=s.recvfrom(100); print(d.decode().strip())\n", port);
    struct th_proc py;
    spawn(&py, (char *[]){"python3", "-u", "-c", script, NULL});
    char buf[256];
    cr_assert(th_read_until(l.out, "ping\n", buf, sizeof buf, 10000), "listener printed '%s'", buf);
    cr_assert(th_read_until(l.err, "datagrams from 127.0.0.1:", buf, sizeof buf, 5000), "%s", buf);
    cr_assert_eq(th_write_all(l.in, "pong\n", 5), 0);
    cr_assert(th_read_until(py.out, "pong\n", buf, sizeof buf, 10000), "python got '%s'", buf);
    cr_assert_eq(exit_code(&py, 5000), 0);
    int st = th_stop(&l, SIGTERM, 5000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    th_close_fds(&l);
    th_close_fds(&py);
}

/* ---- listen + connect ----------------------------------------------------- */

Test(netcat, listen_and_connect_talk_both_ways)
{
    struct th_proc l, c;
    int port = spawn_listener(&l, CLI("listen", "--port", "0"));
    char ps[16], buf[512];
    port_str(ps, port);
    spawn(&c, CLI("connect", "127.0.0.1", ps));
    cr_assert(th_read_until(l.err, "connection from 127.0.0.1:", buf, sizeof buf, 10000), "%s", buf);
    cr_assert_eq(th_write_all(c.in, "from client\n", 12), 0);
    cr_assert(th_read_until(l.out, "from client\n", buf, sizeof buf, 10000), "%s", buf);
    cr_assert_eq(th_write_all(l.in, "from server\n", 12), 0);
    cr_assert(th_read_until(c.out, "from server\n", buf, sizeof buf, 10000), "%s", buf);
    /* Client's EOF: the listener sees the peer leave, closes, both exit 0. */
    close(c.in);
    c.in = -1;
    cr_assert_eq(exit_code(&l, 10000), 0);
    cr_assert_eq(exit_code(&c, 10000), 0);
    th_close_fds(&l);
    th_close_fds(&c);
}

Test(netcat, keep_open_serves_second_peer)
{
    struct th_proc l;
    int port = spawn_listener(&l, CLI("listen", "--keep-open", "0"));
    char ps[16], buf[512];
    port_str(ps, port);
    const char *msgs[2] = {"first peer\n", "second peer\n"};
    for (int i = 0; i < 2; i++) {
        struct th_proc c;
        spawn(&c, CLI("connect", "127.0.0.1", ps));
        char *out;
        th_exchange(&c, msgs[i], strlen(msgs[i]), &out, 10000);
        free(out);
        cr_assert_eq(exit_code(&c, 10000), 0);
        th_close_fds(&c);
        cr_assert(th_read_until(l.out, msgs[i], buf, sizeof buf, 10000), "%s", buf);
    }
    int st = th_stop(&l, SIGTERM, 5000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    th_close_fds(&l);
}

Test(netcat, keep_open_serves_one_peer_at_a_time)
{
    /* B connects and sends while A is served: B waits in the backlog, so
     * what A sends after B's bytes still comes out first. */
    struct th_proc l, a, b;
    int port = spawn_listener(&l, CLI("listen", "-k", "-4", "--bind", "127.0.0.1", "0"));
    char ps[16], buf[512], script[512];
    port_str(ps, port);
    spawn(&a, CLI("connect", "127.0.0.1", ps));
    cr_assert_eq(th_write_all(a.in, "A1\n", 3), 0);
    cr_assert(th_read_until(l.out, "A1\n", buf, sizeof buf, 10000), "%s", buf);
    snprintf(script, sizeof script,
             "import socket,sys\n"
             "c=socket.create_connection(('127.0.0.1',%d)); c.sendall(b'B1\\n')\n"
             "print('sent')\n"
             "sys.stdin.read(); c.close()\n", port);
    spawn(&b, (char *[]){"python3", "-u", "-c", script, NULL});
    cr_assert(th_read_until(b.out, "sent\n", buf, sizeof buf, 10000), "%s", buf);
    cr_assert_eq(th_write_all(a.in, "A2\n", 3), 0);
    cr_assert(th_read_until(l.out, "A2\n", buf, sizeof buf, 10000), "%s", buf);
    cr_assert_str_eq(buf, "A2\n", "B was served during A: '%s'", buf);
    close(a.in);
    a.in = -1;
    cr_assert_eq(exit_code(&a, 10000), 0);
    cr_assert(th_read_until(l.out, "B1\n", buf, sizeof buf, 10000), "%s", buf);
    close(b.in);
    b.in = -1;
    cr_assert_eq(exit_code(&b, 10000), 0);
    int st = th_stop(&l, SIGTERM, 5000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    th_close_fds(&l);
    th_close_fds(&a);
    th_close_fds(&b);
}

Test(netcat, help_prints_usage_and_exits_0)
{
    const char *cmds[2] = {"connect", "listen"};
    for (int i = 0; i < 2; i++) {
        struct th_proc p;
        spawn(&p, CLI((char *)cmds[i], "--help"));
        char *out;
        ssize_t n = th_read_all(p.out, &out, 5000);
        out[n] = '\0';
        char want[64];
        snprintf(want, sizeof want, "Usage: sockstack %s ", cmds[i]);
        cr_assert(strstr(out, want), "%s", out);
        cr_assert(strstr(out, "--keepalive"), "socket options missing: %s", out);
        cr_assert_eq(exit_code(&p, 5000), 0);
        free(out);
        th_close_fds(&p);
    }
}

Test(netcat, ipv6_loopback_listen_and_connect)
{
    struct th_proc l, c;
    int port = spawn_listener(&l, CLI("listen", "-6", "--bind", "::1", "0"));
    char ps[16], buf[512];
    port_str(ps, port);
    spawn(&c, CLI("connect", "[::1]", ps));
    char *out;
    th_exchange(&c, "over six\n", 9, &out, 10000);
    free(out);
    cr_assert(th_read_until(l.out, "over six\n", buf, sizeof buf, 10000), "%s", buf);
    cr_assert(th_read_until(l.err, "connection from [::1]:", buf, sizeof buf, 10000), "%s", buf);
    cr_assert_eq(exit_code(&c, 10000), 0);
    cr_assert_eq(exit_code(&l, 10000), 0);
    th_close_fds(&l);
    th_close_fds(&c);
}

Test(netcat, unix_stream_and_datagram)
{
    char path[128], arg[140], buf[512];
    snprintf(path, sizeof path, "/tmp/ss-nc-test-%d.sock", (int)getpid());
    snprintf(arg, sizeof arg, "unix:%s", path);
    unlink(path);

    struct th_proc l, c;
    spawn_listener(&l, CLI("listen", "--bind", arg));
    spawn(&c, CLI("connect", arg));
    char *out;
    cr_assert_eq(th_write_all(l.in, "hi stream\n", 10), 0);
    th_exchange(&c, "to unix\n", 8, &out, 10000);
    cr_assert(th_read_until(l.out, "to unix\n", buf, sizeof buf, 10000), "%s", buf);
    cr_assert_eq(memcmp(out, "hi stream\n", 10), 0);
    free(out);
    cr_assert_eq(exit_code(&c, 10000), 0);
    cr_assert_eq(exit_code(&l, 10000), 0);
    th_close_fds(&l);
    th_close_fds(&c);
    struct stat st;
    cr_assert_neq(stat(path, &st), 0, "listener left %s behind", path);

    spawn_listener(&l, CLI("listen", "--udp", "--bind", arg));
    spawn(&c, CLI("connect", "--udp", "--wait", "2", arg));
    cr_assert_eq(th_write_all(c.in, "dgram\n", 6), 0);
    cr_assert(th_read_until(l.out, "dgram\n", buf, sizeof buf, 10000), "%s", buf);
    cr_assert_eq(th_write_all(l.in, "back\n", 5), 0);
    cr_assert(th_read_until(c.out, "back\n", buf, sizeof buf, 10000), "%s", buf);
    close(c.in);
    c.in = -1;
    cr_assert_eq(exit_code(&c, 10000), 0);
    int s = th_stop(&l, SIGTERM, 5000);
    cr_assert(WIFEXITED(s) && WEXITSTATUS(s) == 0);
    th_close_fds(&l);
    th_close_fds(&c);
}

/* A listener killed by SIGKILL leaves its socket file; the next one takes
 * it over (stream and datagram). While one listens, a second exits 1. */
Test(netcat, listen_takes_over_a_stale_unix_socket_but_not_a_live_one)
{
    char path[128], arg[140], buf[512];
    snprintf(path, sizeof path, "/tmp/ss-nc-stale-%d.sock", (int)getpid());
    snprintf(arg, sizeof arg, "unix:%s", path);
    unlink(path);
    for (int udp = 0; udp < 2; udp++) {
        struct th_proc l, c;
        if (udp)
            spawn_listener(&l, CLI("listen", "--udp", "--bind", arg));
        else
            spawn_listener(&l, CLI("listen", "--bind", arg));
        int st = th_stop(&l, SIGKILL, 5000);
        cr_assert(WIFSIGNALED(st), "status 0x%x", st);
        th_close_fds(&l);
        struct stat sb;
        cr_assert_eq(lstat(path, &sb), 0, "SIGKILL leaves %s", path);

        if (udp)
            spawn_listener(&l, CLI("listen", "--udp", "--bind", arg));
        else
            spawn_listener(&l, CLI("listen", "--bind", arg));
        struct th_result r = th_run_cli(
            udp ? (const char *[]){"listen", "--udp", "--bind", arg, NULL}
                : (const char *[]){"listen", "--bind", arg, NULL},
            10000);
        char want[200];
        snprintf(want, sizeof want, "listen: another server is listening on %s\n", arg);
        cr_assert_eq(r.status, 1, "second listener: stderr %s", r.err);
        cr_assert(strstr(r.err, want), "stderr: %s", r.err);
        th_result_free(&r);

        if (udp)
            spawn(&c, CLI("connect", "--udp", "--wait", "2", arg));
        else
            spawn(&c, CLI("connect", arg));
        cr_assert_eq(th_write_all(c.in, "taken over\n", 11), 0);
        cr_assert(th_read_until(l.out, "taken over\n", buf, sizeof buf, 10000), "%s", buf);
        close(c.in);
        c.in = -1;
        cr_assert_eq(exit_code(&c, 10000), 0);
        if (udp) {
            st = th_stop(&l, SIGTERM, 5000);
            cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        } else {
            cr_assert_eq(exit_code(&l, 10000), 0);
        }
        th_close_fds(&l);
        th_close_fds(&c);
        cr_assert_neq(lstat(path, &sb), 0, "listener left %s behind", path);
    }
}

Test(netcat, ncat_as_foreign_client_of_listen)
{
    struct th_proc l, n;
    int port = spawn_listener(&l, CLI("listen", "-4", "0"));
    char ps[16], buf[512];
    port_str(ps, port);
    cr_assert_eq(th_write_all(l.in, "hello ncat\n", 11), 0);
    spawn(&n, (char *[]){"ncat", "127.0.0.1", ps, NULL});
    char *out;
    ssize_t got = th_exchange(&n, "hello sockstack\n", 16, &out, 10000);
    cr_assert(th_read_until(l.out, "hello sockstack\n", buf, sizeof buf, 10000), "%s", buf);
    cr_assert_eq(got, 11, "ncat got %zd bytes", got);
    cr_assert_eq(memcmp(out, "hello ncat\n", 11), 0);
    free(out);
    cr_assert_eq(exit_code(&l, 10000), 0);
    th_wait(&n, 5000);
    th_close_fds(&l);
    th_close_fds(&n);
}

Test(netcat, listen_info_on_peer_close)
{
    struct th_proc l, c;
    int port = spawn_listener(&l, CLI("listen", "--info", "0"));
    char ps[16];
    port_str(ps, port);
    spawn(&c, CLI("connect", "127.0.0.1", ps));
    char *out;
    th_exchange(&c, "abc", 3, &out, 10000);
    free(out);
    cr_assert_eq(exit_code(&c, 10000), 0);
    cr_assert_eq(exit_code(&l, 10000), 0);
    char *err = read_err(&l);
    cr_assert(strstr(err, "connection from 127.0.0.1:"), "stderr: %s", err);
    cr_assert(strstr(err, "tcp info:") && strstr(err, "rtt ") && strstr(err, "state "),
              "stderr: %s", err);
    free(err);
    th_close_fds(&l);
    th_close_fds(&c);
}

Test(netcat, udp_port_unreachable_is_connection_refused)
{
    int port;
    close(loopback_socket(SOCK_DGRAM, &port)); /* a port nobody has now */
    char ps[16], want[128];
    port_str(ps, port);
    struct th_proc p;
    spawn(&p, CLI("connect", "-u", "--wait", "5", "127.0.0.1", ps));
    char *out;
    th_exchange(&p, "anyone?\n", 8, &out, 10000);
    free(out);
    char *err = read_err(&p);
    snprintf(want, sizeof want, "sockstack: recv 127.0.0.1:%d: Connection refused\n", port);
    cr_assert_str_eq(err, want);
    cr_assert_eq(exit_code(&p, 5000), 1);
    free(err);
    th_close_fds(&p);
}

Test(netcat, stdin_from_regular_file_and_dev_null)
{
    /* epoll refuses regular files and /dev/null: they must still work. */
    char path[64], ps[16], cmd[512];
    snprintf(path, sizeof path, "/tmp/ss-nc-in-%d", (int)getpid());
    FILE *f = fopen(path, "w");
    cr_assert(f);
    for (int i = 0; i < 20000; i++)
        fprintf(f, "line %d\n", i);
    long size = ftell(f);
    fclose(f);
    for (int k = 0; k < 2; k++) {
        int port;
        int lfd = loopback_socket(SOCK_STREAM, &port);
        pid_t srv = fork_server(lfd, tcp_echo);
        port_str(ps, port);
        snprintf(cmd, sizeof cmd, "exec '%s' connect 127.0.0.1 %s < %s", th_sockstack(), ps,
                 k == 0 ? path : "/dev/null");
        struct th_proc p;
        spawn(&p, (char *[]){"sh", "-c", cmd, NULL});
        char *out;
        ssize_t n = th_read_all(p.out, &out, 10000);
        cr_assert_eq(n, k == 0 ? size : 0, "echoed %zd bytes", n);
        cr_assert_eq(exit_code(&p, 5000), 0);
        free(out);
        th_close_fds(&p);
        reap(srv);
    }
    unlink(path);
}

Test(netcat, listen_applies_socket_options)
{
    /* Every TCP option accepted on a listener (exit 0, peer served), and the
     * MSS it advertises, inherited by the accepted socket, seen by python3. */
    struct th_proc l;
    int port = spawn_listener(&l, CLI("listen", "-4", "--bind", "127.0.0.1", "--ttl", "17",
                                      "--nodelay", "--keepalive", "--sndbuf", "1m",
                                      "--rcvbuf", "1m", "--reuseport", "--linger", "0",
                                      "--tos", "16", "--mss", "1200", "--bind-device", "lo",
                                      "--timeout", "3", "0"));
    char script[1024], buf[256];
    snprintf(script, sizeof script,
             "import socket\n"
             "c=socket.create_connection(('127.0.0.1',%d)); c.settimeout(10)\n"
             "print('mss=%%d' %% c.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG))\n"
             "print(c.recv(100).decode(), end='')\n", port);
    struct th_proc py;
    spawn(&py, (char *[]){"python3", "-u", "-c", script, NULL});
    cr_assert(th_read_until(l.err, "connection from", buf, sizeof buf, 10000), "%s", buf);
    cr_assert_eq(th_write_all(l.in, "opts ok\n", 8), 0);
    cr_assert(th_read_until(py.out, "opts ok\n", buf, sizeof buf, 10000), "python: %s", buf);
    int mss = 0;
    cr_assert_eq(sscanf(buf, "mss=%d", &mss), 1, "%s", buf);
    cr_assert(mss > 0 && mss <= 1200, "python's MSS %d, --mss 1200", mss);
    cr_assert_eq(exit_code(&py, 5000), 0);
    cr_assert_eq(exit_code(&l, 10000), 0);
    th_close_fds(&l);
    th_close_fds(&py);
}

/* ---- socket options ------------------------------------------------------- */

struct badopt {
    const char *opt, *val, *named;
};

Test(netcat, invalid_socket_option_values_exit_2_naming_the_option)
{
    static const struct badopt bad[] = {
        {"--sndbuf", "abc", "--sndbuf"},   {"--rcvbuf", "-1", "--rcvbuf"},
        {"--ttl", "300", "--ttl"},         {"--ttl", "0", "--ttl"},
        {"--keepalive=1,2", NULL, "--keepalive"},
        {"--keepalive=a,2,3", NULL, "--keepalive"},
        {"--linger", "x", "--linger"},     {"--timeout", "-3", "--timeout"},
        {"--tos", "256", "--tos"},         {"--mss", "10", "--mss"},
        {"--bind-device", "an-interface-name-too-long", "--bind-device"},
        {"--wait", "soon", "--wait"},      {"--recv-size", "0", "--recv-size"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (int cmd = 0; cmd < 2; cmd++) {
            if (cmd == 1 && !strcmp(bad[i].opt, "--wait"))
                continue; /* listen has no --wait */
            struct th_proc p;
            char *argv[12];
            int k = 0;
            argv[k++] = (char *)th_sockstack();
            argv[k++] = cmd ? "listen" : "connect";
            argv[k++] = "--udp";
            argv[k++] = (char *)bad[i].opt;
            if (bad[i].val)
                argv[k++] = (char *)bad[i].val;
            if (!cmd)
                argv[k++] = "127.0.0.1";
            argv[k++] = "9";
            argv[k] = NULL;
            spawn(&p, argv);
            char *err = read_err(&p);
            int rc = exit_code(&p, 5000);
            cr_assert_eq(rc, 2, "%s %s %s: exit %d (%s)", argv[1], bad[i].opt,
                         bad[i].val ? bad[i].val : "", rc, err);
            cr_assert(strncmp(err, "sockstack: ", 11) == 0 && strstr(err, bad[i].named),
                      "%s %s: message does not name it: %s", argv[1], bad[i].opt, err);
            free(err);
            th_close_fds(&p);
        }
    }
}

/* Buffer sizes go through the one scaled-number parser (k, m, g are
 * powers of 1024): the exact refusals. */
Test(netcat, buffer_sizes_are_parsed_as_scaled_numbers)
{
    static const char *const cases[][2] = {
        {"abc", "sockstack: --sndbuf: 'abc' is not a number\n"},
        {"0", "sockstack: --sndbuf: 0 is out of range (1 to 2147483647)\n"},
        {"2g", "sockstack: --sndbuf: 2g is out of range (1 to 2147483647)\n"},
        {"64q", "sockstack: --sndbuf: '64q' is not a number\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct th_proc p;
        char *argv[] = {(char *)th_sockstack(), "connect", "--udp", "--sndbuf",
                        (char *)cases[i][0], "127.0.0.1", "9", NULL};
        spawn(&p, argv);
        char *err = read_err(&p);
        int rc = exit_code(&p, 5000);
        cr_assert_eq(rc, 2, "--sndbuf %s: exit %d (%s)", cases[i][0], rc, err);
        cr_assert_str_eq(err, cases[i][1]);
        free(err);
        th_close_fds(&p);
    }
}

Test(netcat, usage_errors_exit_2)
{
    char *cases[][8] = {
        {"connect", NULL},
        {"connect", "127.0.0.1", NULL},
        {"connect", "-4", "-6", "127.0.0.1", "9", NULL},
        {"connect", "--raw", "127.0.0.1", "9", NULL},
        {"connect", "--info", "-u", "127.0.0.1", "9", NULL},
        {"connect", "127.0.0.1", "99999", NULL},
        {"listen", NULL},
        {"listen", "-u", "-k", "0", NULL},
        {"listen", "--bogus", "0", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[10] = {(char *)th_sockstack()};
        for (int k = 0; cases[i][k]; k++)
            argv[k + 1] = cases[i][k];
        struct th_proc p;
        spawn(&p, argv);
        char *err = read_err(&p);
        cr_assert_eq(exit_code(&p, 5000), 2, "case %zu: %s", i, err);
        cr_assert(strncmp(err, "sockstack: ", 11) == 0, "case %zu: %s", i, err);
        free(err);
        th_close_fds(&p);
    }
}

Test(netcat, every_socket_option_accepted_and_applied)
{
    /* A TCP peer that reports the MSS it may send us (our --mss) and echoes. */
    struct th_proc py;
    int port = spawn_python(&py,
        "import socket\n"
        "s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(1)\n"
        "print(s.getsockname()[1])\n"
        "c,_=s.accept()\n"
        "c.sendall(b'mss=%d\\n' % c.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG))\n"
        "while c.recv(65536): pass\n"
        "c.close()\n");
    char ps[16];
    port_str(ps, port);
    struct th_proc p;
    spawn(&p, CLI("connect", "127.0.0.1", ps, "--reuseaddr", "--reuseport", "--sndbuf", "64k",
                  "--rcvbuf", "128k", "--keepalive=30,5,3", "--linger", "1", "--nodelay",
                  "--timeout", "2.5", "--ttl", "33", "--tos", "0x10", "--bind-device", "lo",
                  "--mss", "1000"));
    char *out;
    ssize_t n = th_exchange(&p, "", 0, &out, 10000);
    out[n] = '\0';
    char *err = read_err(&p);
    cr_assert_eq(exit_code(&p, 5000), 0, "stderr: %s", err);
    int mss = 0;
    cr_assert_eq(sscanf(out, "mss=%d", &mss), 1, "peer said '%s'", out);
    /* Our TCP_MAXSEG caps what the peer may send (less room for options). */
    cr_assert(mss > 0 && mss <= 1000, "peer's MSS %d, --mss was 1000", mss);
    free(out);
    free(err);
    th_close_fds(&p);
    th_stop(&py, SIGKILL, 2000);
    th_close_fds(&py);

    /* UDP: python reads the TTL and TOS our datagrams arrived with. */
    port = spawn_python(&py,
        "import socket\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('127.0.0.1',0))\n"
        "IP_TTL, IP_TOS, IP_RECVTTL, IP_RECVTOS = 2, 1, 12, 13  # Linux <netinet/in.h>\n"
        "s.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)\n"
        "s.setsockopt(socket.IPPROTO_IP, IP_RECVTOS, 1)\n"
        "print(s.getsockname()[1])\n"
        "d,anc,_,a=s.recvmsg(100, 256)\n"
        "v={}\n"
        "for lvl,t,data in anc: v[t]=data[0]\n"
        "s.sendto(b'ttl=%d tos=%d\\n' % (v.get(IP_TTL,-1), v.get(IP_TOS,-1)), a)\n");
    port_str(ps, port);
    spawn(&p, CLI("connect", "-u", "127.0.0.1", ps, "--ttl", "42", "--tos", "0x20",
                  "--broadcast", "--sndbuf", "32k", "--rcvbuf", "32k", "--wait", "0.5"));
    n = th_exchange(&p, "x\n", 2, &out, 10000);
    out[n] = '\0';
    cr_assert_str_eq(out, "ttl=42 tos=32\n");
    cr_assert_eq(exit_code(&p, 5000), 0);
    free(out);
    th_close_fds(&p);
    th_wait(&py, 5000);
    th_close_fds(&py);
}

Test(netcat, socket_options_seen_by_the_kernel_via_ss)
{
    if (access("/usr/bin/ss", X_OK) != 0 && access("/bin/ss", X_OK) != 0)
        cr_skip_test("needs ss (iproute2)");
    struct th_proc py, p, ss;
    int port = spawn_python(&py,
        "import socket\n"
        "s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(1)\n"
        "print(s.getsockname()[1])\n"
        "c,_=s.accept(); print('accepted')\n"
        "while c.recv(65536): pass\n");
    char ps[16], buf[256], filter[64];
    port_str(ps, port);
    spawn(&p, CLI("connect", "--sndbuf", "48k", "--rcvbuf", "40k", "--keepalive=30,5,3",
                  "--bind-device", "lo", "127.0.0.1", ps));
    cr_assert(th_read_until(py.out, "accepted\n", buf, sizeof buf, 10000), "%s", buf);
    snprintf(filter, sizeof filter, "( dport = :%d )", port);
    spawn(&ss, (char *[]){"ss", "-tnoime", "state", "established", filter, NULL});
    char *out;
    ssize_t n = th_read_all(ss.out, &out, 5000);
    out[n] = '\0';
    th_wait(&ss, 2000);
    th_close_fds(&ss);
    /* The kernel doubles SO_SNDBUF/SO_RCVBUF; SO_BINDTODEVICE shows as %lo;
     * SO_KEEPALIVE with TCP_KEEPIDLE 30 as a keepalive timer. */
    cr_assert(strstr(out, "127.0.0.1%lo:"), "ss: %s", out);
    cr_assert(strstr(out, "timer:(keepalive,"), "ss: %s", out);
    cr_assert(strstr(out, "rb81920,"), "ss: %s", out);
    cr_assert(strstr(out, "tb98304,"), "ss: %s", out);
    free(out);
    close(p.in);
    p.in = -1;
    cr_assert_eq(exit_code(&p, 5000), 0);
    cr_assert_eq(exit_code(&py, 5000), 0);
    th_close_fds(&p);
    th_close_fds(&py);
}

Test(netcat, option_the_kernel_refuses_is_runtime_error_naming_it)
{
    int port;
    int fd = loopback_socket(SOCK_STREAM, &port);
    char ps[16];
    port_str(ps, port);
    struct th_proc p;
    spawn(&p, CLI("connect", "--bind-device", "nosuchif0", "127.0.0.1", ps));
    char *err = read_err(&p);
    cr_assert_eq(exit_code(&p, 5000), 1, "%s", err);
    cr_assert_str_eq(err, "sockstack: --bind-device: No such device\n");
    free(err);
    th_close_fds(&p);
    close(fd);
}
