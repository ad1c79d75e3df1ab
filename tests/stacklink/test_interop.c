/* The stack on a TUN device against the Linux kernel's own TCP/IP, each
 * test in a private network namespace (unshare(CLONE_NEWNET) in the test's
 * own worker process: the namespace, the device and its routes vanish with
 * it, whatever happens). Kernel peers are python3 socket programs
 * (interop.py) and ping. Every run's pcap must decode cleanly in tshark. */
#include <criterion/criterion.h>
#include <net/if.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "pkt.h"

#define STACK_ADDR "10.99.0.2"
#define KERNEL_ADDR "10.99.0.1"
#define MiB (1024 * 1024)

static char tun_name[32];
static struct th_proc stack_p = {.pid = -1, .in = -1, .out = -1, .err = -1};
static struct th_proc peer_p = {.pid = -1, .in = -1, .out = -1, .err = -1};
static char pcap_path[128];

static void need_root_and_netns(void)
{
    th_enter_netns();
    snprintf(pcap_path, sizeof pcap_path, "/tmp/ss-interop-%d.pcap", (int)getpid());
}

/* Also after a failed assertion: no process outlives its test. */
static void teardown(void)
{
    th_reap(&stack_p);
    th_reap(&peer_p);
    if (pcap_path[0])
        unlink(pcap_path);
}

TestSuite(interop, .fini = teardown, .timeout = 90);

static const char *interop_py(void)
{
    return th_source_path("tests/stacklink/interop.py");
}

/* Start `sockstack stack up` with the services, plus extra args. */
static void start_stack(const char *extra[])
{
    snprintf(tun_name, sizeof tun_name, "ssi%d", (int)getpid() % 100000);
    const char *argv[32] = {th_sockstack(), "stack", "up", "--tun", tun_name,
                            "--addr", STACK_ADDR "/24", "--pcap", pcap_path};
    int n = 9;
    for (int i = 0; extra && extra[i]; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    cr_assert_eq(th_spawn(&stack_p, (char *const *)argv), 0);
}

static void start_services(void)
{
    const char *extra[] = {"--serve", "echo:7,discard:9,source:19",
                           "--source-bytes", "1M", NULL};
    start_stack(extra);
    char line[256];
    int port = th_wait_listening(&stack_p, 10000, line, sizeof line);
    cr_assert_eq(port, 7, "stack did not come up (got %d)", port);
}

/* Every packet of the run, both ways, decodes in tshark without a
 * malformed packet or a bad IP/TCP/UDP/ICMP checksum (a kernel TCP checksum
 * of 0xffff for 0x0000 is the same number, RFC 1624; see pkt.h). */
static void check_pcap(long min_packets)
{
    long count = 0, bad = 0;
    cr_assert_eq(tp_tshark_check_from_kernel(pcap_path, KERNEL_ADDR, &count, &bad), 0,
                 "tshark failed");
    cr_assert_geq(count, min_packets, "pcap has %ld packets", count);
    cr_assert_eq(bad, 0, "%ld bad packets in %s", bad, pcap_path);
}

/* SIGINT: the stack stops cleanly (exit 0) and its pcap is complete. */
static void stop_stack(long min_packets)
{
    int st = th_stop(&stack_p, SIGINT, 15000);
    stack_p.pid = -1;
    th_close_fds(&stack_p);
    cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "stack up did not exit cleanly (status %d)", st);
    check_pcap(min_packets);
}

/* Run a peer to completion; return its stdout (NUL-terminated, malloc'd). */
static char *run_peer(const char *const args[], int timeout_ms)
{
    const char *argv[16];
    int n = 0;
    argv[n++] = args[0];
    for (int i = 1; args[i]; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    struct th_proc p;
    cr_assert_eq(th_spawn(&p, (char *const *)argv), 0);
    char *out = NULL;
    ssize_t len = th_read_all(p.out, &out, timeout_ms);
    int st = th_wait(&p, 5000);
    th_close_fds(&p);
    out = realloc(out, (size_t)len + 1);
    out[len] = '\0';
    cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "%s %s failed (status %d): %s", args[0], args[1], st, out);
    return out;
}

/* Find "key N HEX" in text. */
static bool get_result(const char *text, const char *key, long *n, char hex[65])
{
    char pat[32];
    snprintf(pat, sizeof pat, "%s ", key);
    for (const char *p = text; (p = strstr(p, pat)); p++) {
        if (p != text && p[-1] != '\n')
            continue;
        char h[80] = "";
        if (sscanf(p + strlen(pat), "%ld %79s", n, h) >= 1) {
            if (hex)
                snprintf(hex, 65, "%s", h);
            return true;
        }
    }
    return false;
}

static bool get_kv(const char *text, const char *key, long *n, char hex[65])
{
    /* stack up prints "sent N sha256=HEX" */
    char pat[32];
    snprintf(pat, sizeof pat, "%s ", key);
    const char *p = strstr(text, pat);
    if (!p)
        return false;
    char h[80] = "";
    if (sscanf(p + strlen(pat), "%ld sha256=%79s", n, h) != 2)
        return false;
    snprintf(hex, 65, "%s", h);
    return true;
}

/* A kernel echo client sends bytes to the stack's echo port and gets
 * every one back (SHA-256 equal). */
static void kernel_echo_exact(long bytes)
{
    char n[24];
    snprintf(n, sizeof n, "%ld", bytes);
    const char *args[] = {"/usr/bin/python3", interop_py(), "echo-client", STACK_ADDR,
                          "7", n, NULL};
    char *out = run_peer(args, 60000);
    long sent = 0, got = 0;
    char hs[65], hr[65];
    cr_assert(get_result(out, "sent", &sent, hs), "%s", out);
    cr_assert(get_result(out, "received", &got, hr), "%s", out);
    cr_assert_eq(sent, bytes);
    cr_assert_eq(got, bytes, "echoed %ld of %ld bytes", got, bytes);
    cr_assert_str_eq(hs, hr);
    free(out);
}

Test(interop, kernel_client_echo_10MiB_kernel_closes_first)
{
    need_root_and_netns();
    start_services();
    kernel_echo_exact(10 * MiB);
    stop_stack(1000);
}

/* A kernel server on any address, port 0; returns its port. */
static int start_kernel_server(const char *mode, const char *bytes)
{
    const char *argv[] = {"/usr/bin/python3", interop_py(), "server", "0.0.0.0", mode,
                          bytes, NULL};
    cr_assert_eq(th_spawn(&peer_p, (char *const *)argv), 0);
    int port = th_wait_listening(&peer_p, 10000, NULL, 0);
    cr_assert_gt(port, 0, "kernel server did not start");
    return port;
}

/* The stack client's stdout; its log too when log is not NULL. */
static char *wait_stack_client_log(char **log)
{
    char *out = NULL;
    ssize_t len = th_read_all(stack_p.out, &out, 60000);
    int st = th_wait(&stack_p, 10000);
    stack_p.pid = -1;
    out = realloc(out, (size_t)len + 1);
    out[len] = '\0';
    char *err = NULL;
    ssize_t elen = th_read_all(stack_p.err, &err, 1000);
    err = realloc(err, (size_t)elen + 1);
    err[elen] = '\0';
    th_close_fds(&stack_p);
    cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "stack client failed (status %d): %s", st, err);
    if (log)
        *log = err;
    else
        free(err);
    return out;
}

static char *wait_stack_client(void) { return wait_stack_client_log(NULL); }

static char *wait_peer(void)
{
    char *out = NULL;
    ssize_t len = th_read_all(peer_p.out, &out, 30000);
    int st = th_wait(&peer_p, 10000);
    peer_p.pid = -1;
    th_close_fds(&peer_p);
    out = realloc(out, (size_t)len + 1);
    out[len] = '\0';
    cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "peer failed: %s", out);
    return out;
}

/* The stack connects to a kernel echo server, sends `bytes` and reads
 * the echo back: the kernel's copy and the echo must both equal what the
 * stack sent (SHA-256). more: extra `stack up` options (NULL-terminated,
 * at most 8). The stack's log goes to *log when log is not NULL; the
 * pcap must hold at least min_packets. */
static void stack_client_echo(long bytes, const char *const more[], char **log,
                              long min_packets)
{
    int port = start_kernel_server("echo", "0");
    char dest[64], n[24];
    snprintf(dest, sizeof dest, KERNEL_ADDR ":%d", port);
    snprintf(n, sizeof n, "%ld", bytes);
    const char *extra[16] = {"--connect", dest, "--send", n};
    for (int i = 0; more && more[i] && i < 8; i++)
        extra[4 + i] = more[i];
    start_stack(extra);
    char *out = wait_stack_client_log(log);
    char *srv = wait_peer();
    long sent = 0, got = 0, srv_got = 0;
    char hs[65], hr[65], hsrv[65];
    cr_assert(get_kv(out, "sent", &sent, hs), "%s", out);
    cr_assert(get_kv(out, "received", &got, hr), "%s", out);
    cr_assert(get_result(srv, "received", &srv_got, hsrv), "%s", srv);
    cr_assert_eq(sent, bytes);
    cr_assert_eq(srv_got, bytes, "kernel got %ld bytes", srv_got);
    cr_assert_eq(got, bytes, "echo back: %ld bytes", got);
    cr_assert_str_eq(hs, hsrv, "kernel received other bytes than the stack sent");
    cr_assert_str_eq(hs, hr, "the echo differs");
    free(out);
    free(srv);
    check_pcap(min_packets);
}

Test(interop, stack_client_to_kernel_echo_10MiB_stack_closes_first)
{
    need_root_and_netns();
    stack_client_echo(10 * MiB, NULL, NULL, 1000);
}

Test(interop, kernel_server_closes_first_stack_closes_passively)
{
    need_root_and_netns();
    int port = start_kernel_server("send-close", "1048576");
    char dest[64];
    snprintf(dest, sizeof dest, KERNEL_ADDR ":%d", port);
    const char *extra[] = {"--connect", dest, "--wait-eof", NULL};
    start_stack(extra);
    char *out = wait_stack_client();
    char *srv = wait_peer();
    long got = 0, srv_sent = 0;
    char hr[65], hsrv[65];
    cr_assert(get_kv(out, "received", &got, hr), "%s", out);
    cr_assert(get_result(srv, "sent", &srv_sent, hsrv), "%s", srv);
    cr_assert_eq(got, MiB);
    cr_assert_eq(srv_sent, MiB);
    cr_assert_str_eq(hr, hsrv);
    free(out);
    free(srv);
    check_pcap(100);
}

Test(interop, stack_source_closes_first_kernel_reads_to_eof)
{
    need_root_and_netns();
    start_services();
    const char *args[] = {"/usr/bin/python3", interop_py(), "read-all", STACK_ADDR, "19",
                          NULL};
    char *out = run_peer(args, 30000);
    long got = 0;
    cr_assert(get_result(out, "received", &got, NULL), "%s", out);
    cr_assert_eq(got, MiB, "source sent %ld bytes", got);
    free(out);
    stop_stack(100);
}

/* A kernel client resets its echo connection (SO_LINGER 0): with -v the
 * stack up log names the service, the peer and what failed, in the words
 * of sockstack serve's log (the same helper, cli_server_log). */
Test(interop, peer_reset_is_logged_with_service_peer_and_call)
{
    need_root_and_netns();
    const char *extra[] = {"-v", "--serve", "echo:7", NULL};
    start_stack(extra);
    char line[256];
    cr_assert_eq(th_wait_listening(&stack_p, 10000, line, sizeof line), 7);
    const char *args[] = {"/usr/bin/python3", interop_py(), "reset", STACK_ADDR, "7", NULL};
    char *out = run_peer(args, 20000);
    int port = 0;
    cr_assert_eq(sscanf(out, "local %d", &port), 1, "%s", out);
    free(out);
    char want[160], log[8192];
    snprintf(want, sizeof want,
             " echo: connection #1 from " KERNEL_ADDR ":%d closed: recv: Connection reset by "
             "peer\n", port);
    cr_assert(th_read_until(stack_p.err, want, log, sizeof log, 10000), "want '%s' in:\n%s",
              want, log);
    stop_stack(6);
}

Test(interop, ping_is_answered)
{
    need_root_and_netns();
    start_services();
    const char *args[] = {"ping", "-n", "-c", "3", "-i", "0.2", "-W", "3", STACK_ADDR, NULL};
    char *out = run_peer(args, 20000);
    cr_assert(strstr(out, "3 received"), "%s", out);
    free(out);
    cr_assert_neq(if_nametoindex(tun_name), 0, "the device exists while up");
    stop_stack(6);
    cr_assert_eq(if_nametoindex(tun_name), 0, "%s is still there after SIGINT", tun_name);
}

Test(interop, explicit_peer_address_is_the_kernels_side)
{
    need_root_and_netns();
    const char *extra[] = {"--serve", "echo:7", "--peer", "10.99.0.77", NULL};
    start_stack(extra);
    cr_assert_eq(th_wait_listening(&stack_p, 10000, NULL, 0), 7);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ip -4 -o addr show dev %s | grep -q ' 10.99.0.77/24 '",
             tun_name);
    cr_assert_eq(system(cmd), 0, "the kernel's side is not 10.99.0.77/24");
    const char *args[] = {"ping", "-n", "-c", "1", "-W", "3", "-I", "10.99.0.77",
                          STACK_ADDR, NULL};
    char *out = run_peer(args, 20000);
    cr_assert(strstr(out, "1 received"), "%s", out);
    free(out);
    int st = th_stop(&stack_p, SIGTERM, 15000);
    stack_p.pid = -1;
    th_close_fds(&stack_p);
    cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "SIGTERM: status %d", st);
    cr_assert_eq(if_nametoindex(tun_name), 0);
}

Test(interop, udp_echo)
{
    need_root_and_netns();
    start_services();
    const char *args[] = {"/usr/bin/python3", interop_py(), "udp-echo", STACK_ADDR, "7",
                          NULL};
    char *out = run_peer(args, 20000);
    cr_assert_str_eq(out, "udp ok\n");
    free(out);
    stop_stack(8);
}

/* A peer connecting to closed port 8 over proto ("tcp", "udp") gets
 * ECONNREFUSED; returns how many packets from the stack in the run's pcap
 * match the tshark display filter `what` (ANDed with ip.src == stack). */
static int refused_then_count(const char *proto, const char *what)
{
    need_root_and_netns();
    start_services();
    const char *args[] = {"/usr/bin/python3", interop_py(), "refused", STACK_ADDR, "8",
                          proto, NULL};
    char *out = run_peer(args, 20000);
    cr_assert_str_eq(out, "error ECONNREFUSED\n");
    free(out);
    stop_stack(2);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "tshark -r '%s' -Y 'ip.src==" STACK_ADDR " && %s' 2>/dev/null | wc -l",
             pcap_path, what);
    FILE *f = popen(cmd, "r");
    int n = 0;
    cr_assert_eq(fscanf(f, "%d", &n), 1);
    pclose(f);
    return n;
}

Test(interop, closed_tcp_port_is_refused_with_rst)
{
    /* The refusal is a RST,ACK from the stack. */
    cr_assert_geq(refused_then_count("tcp", "tcp.flags.reset==1"), 1);
}

Test(interop, closed_udp_port_is_refused_with_icmp)
{
    cr_assert_eq(refused_then_count("udp", "icmp.type==3 && icmp.code==3"), 1);
}

Test(interop, trace_json_over_tun_is_one_json_object_per_line)
{
    need_root_and_netns();
    const char *extra[] = {"--serve", "echo:7", "--trace-json", NULL};
    start_stack(extra);
    cr_assert_eq(th_wait_listening(&stack_p, 10000, NULL, 0), 7);
    const char *args[] = {"/usr/bin/python3", interop_py(), "udp-echo", STACK_ADDR, "7",
                          NULL};
    char *out = run_peer(args, 20000);
    cr_assert_str_eq(out, "udp ok\n");
    free(out);
    int st = th_stop(&stack_p, SIGINT, 15000);
    cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    stack_p.pid = -1;
    char *trace = NULL;
    ssize_t n = th_read_all(stack_p.out, &trace, 5000);
    th_close_fds(&stack_p);
    cr_assert_gt(n, 0);
    char path[128];
    snprintf(path, sizeof path, "/tmp/ss-interop-trace-%d.json", (int)getpid());
    FILE *f = fopen(path, "w");
    fwrite(trace, 1, (size_t)n, f);
    fclose(f);
    free(trace);
    char cmd[512];
    /* Four datagrams in and four out, each a JSON object. */
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c 'import json,sys\n"
             "k=[json.loads(l)[\"kind\"] for l in open(sys.argv[1])]\n"
             "assert k.count(\"udp_in\")==4 and k.count(\"udp_out\")==4, k' %s",
             path);
    int rc = system(cmd);
    unlink(path);
    cr_assert_eq(rc, 0, "trace is not 4 udp_in + 4 udp_out JSON lines");
}

Test(interop, stack_client_to_a_closed_kernel_port_is_refused)
{
    need_root_and_netns();
    const char *extra[] = {"--connect", KERNEL_ADDR ":1", "--send", "100", NULL};
    start_stack(extra);
    char *out = NULL, *err = NULL;
    ssize_t n = th_read_all(stack_p.out, &out, 20000);
    ssize_t e = th_read_all(stack_p.err, &err, 5000);
    int st = th_wait(&stack_p, 10000);
    stack_p.pid = -1;
    th_close_fds(&stack_p);
    err = realloc(err, (size_t)e + 1);
    err[e] = '\0';
    cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %d: %s", st, err);
    cr_assert(strstr(err, "onnection refused"), "%s", err);
    cr_assert_geq(n, 0);
    free(out);
    free(err);
    check_pcap(2);
}

/* Lines tshark prints for a display filter (fields ip.src and extra),
 * joined into buf; returns the number of lines. */
static int tshark_lines(const char *filter, const char *extra, char *buf, size_t len)
{
    char cmd[768];
    snprintf(cmd, sizeof cmd, "tshark -r %s -Y '%s' -T fields -E separator=, -e ip.src %s "
             "2>/dev/null", pcap_path, filter, extra);
    FILE *f = popen(cmd, "r");
    cr_assert(f, "popen tshark");
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    cr_assert_eq(pclose(f), 0, "tshark failed");
    int lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += buf[i] == '\n';
    return lines;
}

/* Linux and the stack negotiate window scaling, timestamps and SACK
 * (RFC 7323, RFC 2018): both SYNs carry all three, the stack's shift is 7
 * for a 4 MiB receive buffer, and every segment but RSTs carries TS. */
Test(interop, kernel_negotiates_wscale_timestamps_sack)
{
    need_root_and_netns();
    const char *extra[] = {"--serve", "echo:7", "--rcvbuf", "4M", NULL};
    start_stack(extra);
    int port = th_wait_listening(&stack_p, 10000, NULL, 0);
    cr_assert_eq(port, 7, "stack did not come up (got %d)", port);
    kernel_echo_exact(4 * MiB);
    stop_stack(100);
    char buf[4096];
    int n = tshark_lines("tcp.flags.syn==1 && tcp.options.sack_perm && "
                         "tcp.options.timestamp.tsval && tcp.options.wscale.shift",
                         "-e tcp.flags.ack -e tcp.options.wscale.shift", buf, sizeof buf);
    cr_assert_eq(n, 2, "SYN and SYN,ACK with sackOK, TS and wscale: %s", buf);
    cr_assert(strstr(buf, KERNEL_ADDR ",0,"), "the kernel's SYN: %s", buf);
    cr_assert(strstr(buf, STACK_ADDR ",1,7\n"), "our SYN,ACK, shift 7: %s", buf);
    n = tshark_lines("tcp && tcp.flags.reset==0 && !tcp.options.timestamp.tsval", "", buf,
                     sizeof buf);
    cr_assert_eq(n, 0, "segments without TS: %s", buf);
    n = tshark_lines("tcp && tcp.flags.syn==0 && tcp.window_size_scalefactor!=128 && "
                     "ip.src==" STACK_ADDR, "", buf, sizeof buf);
    cr_assert_eq(n, 0, "our windows scaled by 128 in tshark's eyes: %s", buf);
}

/* ---- offloads (stack up --offload: IFF_VNET_HDR, TSO/GRO, checksums) ---- */

/* Stop the stack (SIGINT, clean exit, clean pcap) and return its log. */
static char *stop_stack_log(long min_packets)
{
    int st = th_stop(&stack_p, SIGINT, 15000);
    stack_p.pid = -1;
    char *err = NULL;
    ssize_t len = th_read_all(stack_p.err, &err, 2000);
    err = realloc(err, (size_t)(len > 0 ? len : 0) + 1);
    err[len > 0 ? len : 0] = '\0';
    th_close_fds(&stack_p);
    cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "stack up did not exit cleanly (status %d): %s", st, err);
    check_pcap(min_packets);
    return err;
}

/* The log's "offload: N segments above the MSS in, M out, C checksums"
 * line: with offloads both counts must be above zero (the kernel handed
 * us coalesced segments, and ours were cut by the kernel); without, the
 * line is absent. */
static void check_offload_log(const char *log, bool on)
{
    const char *p = strstr(log, "offload: ");
    if (!on) {
        cr_assert_null(p, "offload line without --offload: %s", log);
        return;
    }
    long in = -1, out = -1, csum = -1;
    cr_assert(p && sscanf(p, "offload: %ld segments above the MSS in, %ld out, %ld checksums",
                          &in, &out, &csum) == 3, "%s", log);
    cr_assert_gt(in, 0, "no coalesced segment from the kernel: %s", log);
    cr_assert_gt(out, 0, "no segment of ours above the MSS: %s", log);
    cr_assert_gt(csum, 0, "%s", log);
}

/* The log's "output: WAY, N batches" or "input: WAY, N rounds" line (what
 * is "output" or "input"): the way named, and with io_uring fewer batches
 * (rounds) than packets out (in), one system call each; with write(2) or
 * read(2) none at all. */
static void check_io_log(const char *log, const char *what, const char *way)
{
    long in = -1, out = -1, n = -1;
    const char *p = strstr(log, " packets in, ");
    cr_assert(p, "%s", log);
    while (p > log && p[-1] != ' ')
        p--;
    cr_assert(sscanf(p, "%ld packets in, %ld out", &in, &out) == 2, "%s", log);
    char key[16], got[16] = "";
    snprintf(key, sizeof key, "%s: ", what);
    p = strstr(log, key);
    cr_assert(p && sscanf(p + strlen(key), "%15[^,], %ld", got, &n) == 2, "%s", log);
    cr_assert_str_eq(got, way, "%s", log);
    if (!strcmp(way, "io_uring")) {
        cr_assert_gt(n, 0, "%s", log);
        cr_assert_lt(n, strcmp(what, "input") ? out : in,
                     "no %s of more than one packet: %s", what, log);
    } else {
        cr_assert_eq(n, 0, "%s", log);
    }
}

/* A kernel client sends 8 MiB to the stack's echo and reads it back:
 * kernel -> stack and stack -> kernel in one connection, every byte
 * checked by SHA-256 at the kernel; the pcap (checksums completed as the
 * kernel does) decodes cleanly in tshark. */
static void offload_kernel_echo(bool on)
{
    need_root_and_netns();
    const char *extra[] = {"--serve", "echo:7", "--rcvbuf", "1M", "--sndbuf", "1M",
                           on ? "--offload" : NULL, NULL};
    start_stack(extra);
    cr_assert_eq(th_wait_listening(&stack_p, 10000, NULL, 0), 7);
    kernel_echo_exact(8 * MiB);
    char *log = stop_stack_log(256);
    check_offload_log(log, on);
    if (!on)
        check_io_log(log, "output", "io_uring");
    check_io_log(log, "input", "io_uring");
    free(log);
}

Test(interop, offload_on_kernel_echo_8MiB_exact)
{
    offload_kernel_echo(true);
}

Test(interop, offload_off_kernel_echo_8MiB_exact)
{
    offload_kernel_echo(false);
}

/* --no-uring: every packet with its own write(2), the same bytes. */
Test(interop, no_uring_kernel_echo_8MiB_exact)
{
    need_root_and_netns();
    const char *extra[] = {"--serve", "echo:7", "--rcvbuf", "1M", "--sndbuf", "1M",
                           "--no-uring", NULL};
    start_stack(extra);
    cr_assert_eq(th_wait_listening(&stack_p, 10000, NULL, 0), 7);
    kernel_echo_exact(8 * MiB);
    char *log = stop_stack_log(256);
    check_io_log(log, "output", "write(2)");
    check_io_log(log, "input", "read(2)");
    free(log);
}

/* The stack opens the connection and sends 8 MiB to a kernel echo
 * server: our TSO segments out, the kernel's coalesced echo in; the
 * kernel's copy and the echo both match what the stack sent. */
static void offload_stack_client(bool on)
{
    need_root_and_netns();
    const char *more[] = {"--rcvbuf", "1M", "--sndbuf", "1M", on ? "--offload" : NULL, NULL};
    char *log = NULL;
    /* 8 MiB each way is at least 128 segments each way of 64 KiB. */
    stack_client_echo(8 * MiB, more, &log, 256);
    check_offload_log(log, on);
    free(log);
}

Test(interop, offload_on_stack_client_8MiB_exact)
{
    offload_stack_client(true);
}

Test(interop, offload_off_stack_client_8MiB_exact)
{
    offload_stack_client(false);
}
