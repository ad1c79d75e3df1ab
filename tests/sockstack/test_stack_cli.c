/* The CLI's --stack option: serve, connect and listen on the user-space
 * stack over TUN, against the Linux kernel's sockets (python3 and the
 * kernel-backend CLI). Each test that needs the network runs in a private
 * network namespace made in its own worker process (unshare(CLONE_NEWNET)):
 * the namespace, the device and its routes vanish with it, also when an
 * assertion fails; teardown kills every process the test started. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define STACK_ADDR "10.98.0.2"
#define KERNEL_ADDR "10.98.0.1"

static struct th_proc srv_p = {.pid = -1, .in = -1, .out = -1, .err = -1};
static struct th_proc peer_p = {.pid = -1, .in = -1, .out = -1, .err = -1};
static char stack_arg[96];

static void need_root_and_netns(void)
{
    th_enter_netns();
    snprintf(stack_arg, sizeof stack_arg, "tun=sss%d,addr=" STACK_ADDR "/24",
             (int)getpid() % 100000);
}

static void teardown(void)
{
    th_reap(&srv_p);
    th_reap(&peer_p);
}

TestSuite(stack_cli, .fini = teardown, .timeout = 60);

static const char *peer_py(void)
{
    return th_source_path("tests/sockstack/peer.py");
}

/* Start `sockstack serve SVC ARGS... --stack ...`; return its port. */
static int start_serve(const char *svc, const char *const extra[])
{
    const char *argv[24] = {th_sockstack(), "serve", svc, "--stack", stack_arg};
    int n = 5;
    for (int i = 0; extra && extra[i]; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    cr_assert_eq(th_spawn(&srv_p, (char *const *)argv), 0);
    char line[256];
    int port = th_wait_listening(&srv_p, 10000, line, sizeof line);
    cr_assert_gt(port, 0, "serve %s --stack did not come up", svc);
    /* Listening on the stack's own address, not the kernel's wildcard. */
    cr_assert(strstr(line, "listening on " STACK_ADDR ":"), "%s", line);
    return port;
}

/* SIGINT: the server stops gracefully, exit 0. */
static void stop_serve(void)
{
    int st = th_stop(&srv_p, SIGINT, 10000);
    srv_p.pid = -1;
    th_close_fds(&srv_p);
    cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "serve --stack did not exit cleanly (status %d)", st);
}

/* Run peer.py ARGS to completion; its stdout (malloc'd, NUL-terminated). */
static char *run_py(const char *const args[])
{
    const char *argv[16] = {"/usr/bin/python3", peer_py()};
    int n = 2;
    for (int i = 0; args[i]; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    cr_assert_eq(th_spawn(&peer_p, (char *const *)argv), 0);
    char *out = NULL;
    ssize_t len = th_read_all(peer_p.out, &out, 30000);
    int st = th_wait(&peer_p, 5000);
    peer_p.pid = -1;
    char *err = NULL;
    ssize_t elen = th_read_all(peer_p.err, &err, 1000);
    th_close_fds(&peer_p);
    out = realloc(out, (size_t)len + 1);
    out[len] = '\0';
    err = realloc(err, (size_t)(elen > 0 ? elen : 0) + 1);
    err[elen > 0 ? elen : 0] = '\0';
    cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "peer.py %s failed (status %d): %s%s", args[0], st, out, err);
    free(err);
    return out;
}

static void port_str(int port, char buf[8])
{
    snprintf(buf, 8, "%d", port);
}

Test(stack_cli, serve_echo_upper_answers_a_kernel_client_byte_exact)
{
    need_root_and_netns();
    const char *extra[] = {"--upper", NULL};
    char port[8];
    port_str(start_serve("echo", extra), port);
    const char *args[] = {"line", STACK_ADDR, port, "Hello, stack! 0x7a {z}\n", NULL};
    char *out = run_py(args);
    cr_assert_str_eq(out, "HELLO, STACK! 0X7A {Z}\n");
    free(out);
    stop_serve();
}

Test(stack_cli, serve_echo_returns_1MiB_binary_with_equal_sha256)
{
    need_root_and_netns();
    char port[8];
    port_str(start_serve("echo", NULL), port);
    const char *args[] = {"echo-sha", STACK_ADDR, port, "1048576", NULL};
    char *out = run_py(args);
    long sent = 0, got = 0;
    char hs[65] = "", hr[65] = "";
    cr_assert_eq(sscanf(out, "sent %ld %64s\nreceived %ld %64s", &sent, hs, &got, hr), 4,
                 "%s", out);
    cr_assert_eq(sent, 1048576);
    cr_assert_eq(got, 1048576);
    cr_assert_str_eq(hs, hr);
    free(out);
    stop_serve();
}

Test(stack_cli, serve_echo_udp_answers_a_kernel_udp_client)
{
    need_root_and_netns();
    const char *extra[] = {"--udp", NULL};
    char port[8];
    port_str(start_serve("echo", extra), port);
    const char *args[] = {"udp", STACK_ADDR, port, "first\n", "second datagram\n", NULL};
    char *out = run_py(args);
    cr_assert_str_eq(out, "first\nsecond datagram\n");
    free(out);
    stop_serve();
}

Test(stack_cli, serve_area_replies_over_the_stack)
{
    need_root_and_netns();
    char port[8];
    port_str(start_serve("area", NULL), port);
    const char *args[] = {"udp", STACK_ADDR, port, "1\n", "-2", "abc", NULL};
    char *out = run_py(args);
    cr_assert_str_eq(out, "3.1415926535897931\n"
                          "error: radius must not be negative\n"
                          "error: not a number\n");
    free(out);
    stop_serve();
}

/* `connect` (srv_p) has its input closed: it exits 0; its standard
 * error, NUL-terminated (the caller frees it). */
static char *connect_done(void)
{
    char *err = NULL;
    int st = th_wait(&srv_p, 10000);
    ssize_t elen = th_read_all(srv_p.err, &err, 1000);
    err = realloc(err, (size_t)(elen > 0 ? elen : 0) + 1);
    err[elen > 0 ? elen : 0] = '\0';
    srv_p.pid = -1;
    th_close_fds(&srv_p);
    cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "connect: status %d: %s", st,
              err);
    return err;
}

Test(stack_cli, connect_half_closes_and_prints_the_kernel_servers_last_bytes)
{
    need_root_and_netns();
    /* The kernel server listens on the wildcard: its address on the TUN
     * device exists only once `connect --stack` has made the device. */
    const char *pargv[] = {"/usr/bin/python3", peer_py(), "server", "0.0.0.0",
                           "last words after EOF\n", NULL};
    cr_assert_eq(th_spawn(&peer_p, (char *const *)pargv), 0);
    char line[256];
    int kport = th_wait_listening(&peer_p, 10000, line, sizeof line);
    cr_assert_gt(kport, 0);
    char port[8];
    port_str(kport, port);
    const char *cargv[] = {th_sockstack(), "connect", "--info", "--stack", stack_arg,
                           KERNEL_ADDR, port, NULL};
    cr_assert_eq(th_spawn(&srv_p, (char *const *)cargv), 0);
    const char req[] = "request sent from the user-space stack\n"; /* 39 bytes */
    char *out = NULL;
    ssize_t n = th_exchange(&srv_p, req, sizeof req - 1, &out, 20000);
    cr_assert_geq(n, 0);
    out = realloc(out, (size_t)n + 1);
    out[n] = '\0';
    char *err = connect_done();
    /* sha256 of the request, computed by the kernel side. */
    cr_assert_str_eq(out, "got 39 bytes "
                          "92da2c9f1f3f875a43dfff5f967e13bfb68c796147d713b5e2b92c1d77be60ec\n"
                          "last words after EOF\n",
                     "%s", out);
    /* --info works on the stack backend: its TCP state and counters. */
    cr_assert(strstr(err, "tcp info:"), "%s", err);
    cr_assert(strstr(err, "  bytes sent     39\n"), "%s", err);
    cr_assert(strstr(err, "  bytes received 99\n"), "%s", err);
    /* ... and the options Linux negotiated with it: timestamps, SACK and
     * window scaling (the kernel's shift, then ours: 0 for 64 KiB). */
    const char *o = strstr(err, "  options        ts sack wscale:");
    cr_assert(o, "%s", err);
    unsigned theirs = 99, ours = 99;
    cr_assert_eq(sscanf(o, "  options        ts sack wscale:%u,%u", &theirs, &ours), 2, "%s", o);
    cr_assert_leq(theirs, 14);
    cr_assert_eq(ours, 0, "%s", o);
    /* The congestion window, not the peer's: RFC 6928's ten segments
     * (39 bytes never fill it, so it does not grow), no loss yet. */
    cr_assert(strstr(err, "  cwnd           10 segments\n"), "%s", err);
    cr_assert(strstr(err, "  ssthresh       infinite\n"), "%s", err);
    /* Over the TUN device the RTT is far below a second: the RTO is RFC
     * 6298's least, 1 s (--stack rto_min= below). */
    cr_assert(strstr(err, "  rto            1000.000 ms\n"), "%s", err);
    free(out);
    free(err);
    char *pout = NULL;
    ssize_t pl = th_read_all(peer_p.out, &pout, 5000);
    pout = realloc(pout, (size_t)pl + 1);
    pout[pl] = '\0';
    cr_assert_str_eq(pout, "server read 39\n");
    free(pout);
}

/* --stack rto_min= reaches the stack: over the TUN device's sub-
 * millisecond RTT the RTO is the least one allowed, 200 ms (Linux's) here
 * where the test above sees 1 s. */
Test(stack_cli, connect_with_rto_min_reports_that_rto)
{
    need_root_and_netns();
    const char *pargv[] = {"/usr/bin/python3", peer_py(), "server", "0.0.0.0", "bye\n", NULL};
    cr_assert_eq(th_spawn(&peer_p, (char *const *)pargv), 0);
    char line[256], port[8], arg[128];
    int kport = th_wait_listening(&peer_p, 10000, line, sizeof line);
    cr_assert_gt(kport, 0);
    port_str(kport, port);
    snprintf(arg, sizeof arg, "%s,rto_min=200", stack_arg);
    const char *cargv[] = {th_sockstack(), "connect", "--info", "--stack", arg, KERNEL_ADDR,
                           port, NULL};
    cr_assert_eq(th_spawn(&srv_p, (char *const *)cargv), 0);
    char *out = NULL;
    cr_assert_geq(th_exchange(&srv_p, "hi\n", 3, &out, 20000), 0);
    char *err = connect_done();
    cr_assert(strstr(err, "  rto            200.000 ms\n"), "%s", err);
    free(out);
    free(err);
}

/* --rcvbuf on an active open: set before the SYN, so the kernel server
 * sends its 6000-byte answer through a 1000-byte window. */
Test(stack_cli, connect_with_small_rcvbuf_reads_a_large_answer)
{
    need_root_and_netns();
    static char last[6001];
    for (int i = 0; i < 6000; i++)
        last[i] = (char)('a' + i % 26);
    last[5999] = '\n';
    const char *pargv[] = {"/usr/bin/python3", peer_py(), "server", "0.0.0.0", last, NULL};
    cr_assert_eq(th_spawn(&peer_p, (char *const *)pargv), 0);
    char line[256];
    int kport = th_wait_listening(&peer_p, 10000, line, sizeof line);
    cr_assert_gt(kport, 0);
    char port[8];
    port_str(kport, port);
    const char *cargv[] = {th_sockstack(), "connect", "--rcvbuf", "1000", "--stack", stack_arg,
                           KERNEL_ADDR, port, NULL};
    cr_assert_eq(th_spawn(&srv_p, (char *const *)cargv), 0);
    char *out = NULL;
    ssize_t n = th_exchange(&srv_p, "x\n", 2, &out, 20000);
    cr_assert_geq(n, 0);
    char *err = connect_done();
const char head[] = "got 2 bytes "
                        "73cb3858a687a8494ca3323053016282f3dad39d42cf62ca4e79dda2aac7d9ac\n";
    cr_assert_eq((size_t)n, sizeof head - 1 + 6000, "%zd bytes: %s", n, err);
    cr_assert_eq(memcmp(out, head, sizeof head - 1), 0);
    cr_assert_eq(memcmp(out + sizeof head - 1, last, 6000), 0);
    free(out);
    free(err);
}

Test(stack_cli, listen_prints_what_a_kernel_client_sends)
{
    need_root_and_netns();
    const char *largv[] = {th_sockstack(), "listen", "--stack", stack_arg, "0", NULL};
    cr_assert_eq(th_spawn(&srv_p, (char *const *)largv), 0);
    close(srv_p.in); /* nothing to send back */
    srv_p.in = -1;
    char line[256];
    int lport = th_wait_listening(&srv_p, 10000, line, sizeof line);
    cr_assert_gt(lport, 0);
    cr_assert(strstr(line, "listening on " STACK_ADDR ":"), "%s", line);
    char port[8];
    port_str(lport, port);
    const char *args[] = {"line", STACK_ADDR, port, "to the listener on the stack\n", NULL};
    char *reply = run_py(args);
    cr_assert_str_eq(reply, "");
    free(reply);
    char *out = NULL;
    ssize_t n = th_read_all(srv_p.out, &out, 10000);
    out = realloc(out, (size_t)n + 1);
    out[n] = '\0';
    int st = th_wait(&srv_p, 10000);
    srv_p.pid = -1;
    cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "listen: status %d", st);
    cr_assert_str_eq(out, "to the listener on the stack\n");
    free(out);
}

/* ---- usage errors (no root needed: checked before any device) ---------- */

static void expect_usage(const char *const args[], const char *needle)
{
    struct th_result r = th_run_cli(args, 5000);
    cr_assert_eq(r.status, 2, "exit %d: %s", r.status, r.err);
    cr_assert(strstr(r.err, needle), "expected '%s' in: %s", needle, r.err);
    th_result_free(&r);
}

Test(stack_cli, stack_with_fork_or_thread_model_or_workers_is_a_usage_error)
{
    const char *a[] = {"serve", "echo", "--stack", "tun=ssx0,addr=10.97.0.2/24", "--model",
                       "fork", NULL};
    expect_usage(a, "--stack runs on --model event only");
    const char *b[] = {"serve", "echo", "--model", "thread", "--stack",
                       "tun=ssx0,addr=10.97.0.2/24", NULL};
    expect_usage(b, "--stack runs on --model event only");
    const char *c[] = {"serve", "echo", "--stack", "tun=ssx0,addr=10.97.0.2/24", "--workers",
                       "2", NULL};
    expect_usage(c, "--workers does not apply");
    const char *d[] = {"connect", "-6", "--stack", "tun=ssx0,addr=10.97.0.2/24", "::1", "7",
                       NULL};
    expect_usage(d, "--stack is IPv4 only");
}

Test(stack_cli, bad_stack_syntax_names_the_problem)
{
    const char *a[] = {"serve", "echo", "--stack", "tun=ssx0", NULL};
    expect_usage(a, "--stack: addr=ADDR/PREFIX is required");
    const char *b[] = {"serve", "echo", "--stack", "addr=10.97.0.2/24", NULL};
    expect_usage(b, "--stack: tun=NAME is required");
    const char *c[] = {"connect", "--stack", "tun=ssx0,addr=10.97.0.2", "10.97.0.1", "7", NULL};
    expect_usage(c, "--stack addr=: '10.97.0.2' is not ADDR/PREFIX");
    const char *d[] = {"listen", "--stack", "tun=ssx0,addr=10.97.0.2/24,speed=9", "7", NULL};
    expect_usage(d, "--stack: unknown key 'speed'");
    const char *e[] = {"serve", "echo", "--stack", "tun=ssx0,addr=10.97.0.0/24", NULL};
    expect_usage(e, "--stack addr= that is the network or broadcast address");
    const char *f[] = {"serve", "echo", "--stack", "tun=ssx0,addr=10.97.0.2/24,peer=10.5.0.1",
                       NULL};
    expect_usage(f, "--stack peer= must be another host address of the prefix");
    const char *g[] = {"serve", "echo", "--stack", "tun=ssx0,addr=10.97.0.2/31", NULL};
    expect_usage(g, "--stack addr=: prefix length must be 1 to 30");
    const char *h[] = {"serve", "echo", "--stack", "tun", NULL};
    expect_usage(h, "--stack: 'tun' is not KEY=VALUE");
    const char *i[] = {"connect", "--stack", "tun=ssx0,addr=10.97.0.2/24,rto_min=0", "10.97.0.1",
                       "7", NULL};
    expect_usage(i, "--stack rto_min=: 0 is out of range (1 to 60000)");
    const char *j[] = {"serve", "echo", "--stack", "tun=ssx0,addr=10.97.0.2/24,uring=maybe",
                       NULL};
    expect_usage(j, "--stack uring=: 'maybe' is not on or off");
}

/* The chat client on the user-space stack (issue 13: every client takes
 * --stack): a kernel `serve chat`, alice on a kernel socket, bob through
 * `chat --stack`; his line reaches her, and he joined through the stack's
 * address. */
Test(stack_cli, chat_client_over_the_stack_talks_to_a_kernel_server)
{
    need_root_and_netns();
    cr_assert_eq(system("ip link set lo up"), 0); /* alice talks over loopback */
    char db[64];
    snprintf(db, sizeof db, "/tmp/ss-stack-chat-%d.db", (int)getpid());
    const char *sargv[] = {th_sockstack(), "serve", "chat", "-b", "0.0.0.0", "--port", "0",
                           "--db", db, "--grace", "0", "-v", NULL};
    cr_assert_eq(th_spawn(&peer_p, (char *const *)sargv), 0);
    int cport = th_wait_listening(&peer_p, 10000, NULL, 0);
    cr_assert_gt(cport, 0);
    int alice = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cport)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    cr_assert_eq(connect(alice, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(th_write_all(alice, "/nick alice\n", 12), 0);
    char buf[4096];
    cr_assert(th_read_until(alice, "OK nick alice 1\n", buf, sizeof buf, 10000), "%s", buf);
    char server[32];
    snprintf(server, sizeof server, KERNEL_ADDR ":%d", cport);
    const char *cargv[] = {th_sockstack(), "chat", "--stack", stack_arg, "--server", server,
                           "--name", "bob", "--plain", NULL};
    cr_assert_eq(th_spawn(&srv_p, (char *const *)cargv), 0);
    const char line[] = "hello from the user-space stack\n";
    cr_assert_eq(th_write_all(srv_p.in, line, sizeof line - 1), 0);
    cr_assert(th_read_until(alice, " bob hello from the user-space stack\n", buf, sizeof buf,
                            20000), "%s", buf);
    close(srv_p.in);
    srv_p.in = -1;
    char *out = NULL;
    ssize_t n = th_read_all(srv_p.out, &out, 20000);
    int st = th_wait(&srv_p, 10000);
    srv_p.pid = -1;
    out = realloc(out, (size_t)(n > 0 ? n : 0) + 1);
    out[n > 0 ? n : 0] = '\0';
    char want[96];
    snprintf(want, sizeof want, "-- connected to %s\n", server);
    cr_assert(strstr(out, want), "%s", out);
    cr_assert(strstr(out, "-- you are bob (2 online)\n"), "%s", out);
    cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "chat: status %d: %s", st, out);
    free(out);
    /* The server saw bob come from the stack's address, not the kernel's. */
    cr_assert(th_read_until(peer_p.err, STACK_ADDR ":", buf, sizeof buf, 5000), "%s", buf);
    close(alice);
    unlink(db);
}
