/* sockstack stack demo|diagram|up: output, determinism, option handling. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* Drop the one line that depends on the machine: "(real N ms)". */
static void strip_real(char *s)
{
    char *p = strstr(s, " (real ");
    if (p) {
        char *e = strchr(p, ')');
        memmove(p, e + 1, strlen(e + 1) + 1);
    }
}

TestSuite(stack_cli, .timeout = 60);

Test(stack_cli, demo_shows_handshake_retransmission_and_summary)
{
    /* Seed 9 at 5% loss: the link loses A's first SYN. */
    const char *args[] = {"stack", "demo", "--loss", "5", "--seed", "9", NULL};
    struct th_result r = th_run_cli(args, 30000);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert(strstr(r.out, "A  CLOSED -> SYN-SENT\n"), "%s", r.out);
    cr_assert(strstr(r.out, "A  > SYN seq="), "%s", r.out);
    cr_assert(strstr(r.out, "link: lost SYN seq="), "%s", r.out);
    cr_assert(strstr(r.out, "A  > [rtx] SYN seq="), "%s", r.out);
    cr_assert(strstr(r.out, "A  < SYN,ACK seq="), "%s", r.out);
    cr_assert(strstr(r.out, "A  SYN-SENT -> ESTABLISHED\n"), "%s", r.out);
    cr_assert(strstr(r.out, "<mss 1460,"), "%s", r.out);
    cr_assert(strstr(r.out, "  sent      20480 bytes  sha256 "), "%s", r.out);
    cr_assert(strstr(r.out, "  received  20480 bytes  sha256 "), "%s", r.out);
    cr_assert(strstr(r.out, "(match)"), "%s", r.out);
    th_result_free(&r);
}

Test(stack_cli, demo_is_the_same_for_the_same_seed_and_pct_sign_is_optional)
{
    const char *a[] = {"stack", "demo", "--loss", "5", "--reorder", "3", "--seed", "16",
                       "--trace", NULL};
    const char *b[] = {"stack", "demo", "--loss", "5%", "--reorder", "3%", "--seed", "16",
                       "--trace", NULL};
    const char *c[] = {"stack", "demo", "--loss", "5", "--reorder", "3", "--seed", "17",
                       "--trace", NULL};
    struct th_result ra = th_run_cli(a, 30000), rb = th_run_cli(b, 30000),
                     rc = th_run_cli(c, 30000);
    strip_real(ra.out);
    strip_real(rb.out);
    strip_real(rc.out);
    cr_assert_gt(strlen(ra.out), 1000);
    cr_assert_str_eq(ra.out, rb.out);
    cr_assert_str_neq(ra.out, rc.out);
    th_result_free(&ra);
    th_result_free(&rb);
    th_result_free(&rc);
}

Test(stack_cli, trace_json_lines_are_json_with_node_and_kind)
{
    char path[128];
    snprintf(path, sizeof path, "/tmp/ss-test-json-%d.txt", (int)getpid());
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "'%s' stack demo --trace-json --bytes 5000 --loss 5 --seed 9 > %s 2>/dev/null",
             th_sockstack(), path);
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c 'import json,sys\n"
             "n=0\n"
             "for l in open(sys.argv[1]):\n"
             "    o=json.loads(l); assert o[\"node\"] in (\"A\",\"B\"); o[\"kind\"]; n+=1\n"
             "assert n>10, n' %s",
             path);
    cr_assert_eq(system(cmd), 0, "not JSON lines: %s", path);
    unlink(path);
}

Test(stack_cli, diagram_draws_terminal_and_well_formed_svg)
{
    char svg[128], plot[128];
    snprintf(svg, sizeof svg, "/tmp/ss-test-diag-%d.svg", (int)getpid());
    snprintf(plot, sizeof plot, "/tmp/ss-test-plot-%d.svg", (int)getpid());
    const char *args[] = {"stack", "diagram", "--loss", "5", "--seed", "9", "--width", "100",
                          "--svg", svg, "--plot", plot, NULL};
    struct th_result r = th_run_cli(args, 30000);
    cr_assert_eq(r.status, 0, "%s", r.err);
    /* A's SYN (relative seq 0) lost on its way to B's listener (the dashed
     * line 6 left of B's connection's), the RTO's wait, the retransmission
     * answered; each state change on its own line, the accepted
     * connection's beside its own lifeline. */
    static const char head[] =
        "time(s)   10.0.0.1:49152                                         B listening     "
        "10.0.0.2:5001\n"
        "                       |                                            LISTEN :     |\n"
        "  0.000     => SYN-SENT|                                                   :     |\n"
        "  0.000                |--- SYN seq=0 win=65535 <mss 1460,sack,ts,ws 0> --X:     |\n"
        "  0.000                :      ... 1.000 s: retransmission timer (RTO)      :     :\n"
        "  1.000                |- [rtx] SYN seq=0 win=65535 <mss 1460,sack,ts,ws  >:     |\n"
        "  1.010                |< SYN,ACK seq=0 ack=1 win=65535 <mss 1460,sack,ts,ws 0> -|\n"
        "  1.020  => ESTABLISHED|                                                   :     |\n";
    cr_assert(!strncmp(r.out, head, strlen(head)), "%s", r.out);
    cr_assert(strstr(r.out, "\n  1.030                |                                        "
                            "           :     | => SYN-RECEIVED\n"
                            "  1.030                |                                        "
                            "           :     | => ESTABLISHED\n"),
              "%s", r.out);
    cr_assert(strstr(r.out, "TIME-WAIT 60.000 s -> CLOSED"), "%s", r.out);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c 'import sys,xml.dom.minidom as m\n"
             "for f in sys.argv[1:]:\n"
             "    d=m.parse(f); assert d.documentElement.tagName==\"svg\"\n"
             "    assert len(d.getElementsByTagName(\"text\"))>5' %s %s",
             svg, plot);
    cr_assert_eq(system(cmd), 0, "SVG not well-formed");
    FILE *f = fopen(svg, "r");
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    cr_assert(strstr(buf, "SYN,ACK seq=0 ack=1"));
    cr_assert(strstr(buf, "[rtx] SYN seq=0"));
    /* The plot's green line: A's window from SS_TRACE_CC events. */
    f = fopen(plot, "r");
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    const char *g = strstr(buf, "stroke=\"#080\" points=\"");
    cr_assert(g, "no cwnd series in the plot");
    g += strlen("stroke=\"#080\" points=\"");
    cr_assert(*g >= '0' && *g <= '9', "the cwnd line has no points: %.40s", g);
    unlink(svg);
    unlink(plot);
    th_result_free(&r);
}

Test(stack_cli, options_are_checked)
{
    static const char *const bad[][12] = {
        {"stack", "demo", "--loss", "101", NULL},
        {"stack", "demo", "--loss", "five", NULL},
        {"stack", "demo", "--trace", "--trace-json", NULL},
        {"stack", "demo", "--svg", "x.svg", NULL},
        {"stack", "demo", "--bytes", "-1", NULL},
        {"stack", "demo", "--bandwidth", "fast", NULL},
        {"stack", "demo", "--bandwidth", "500", NULL},
        {"stack", "demo", "--bytes", "2000G", NULL},
        {"stack", "demo", "extra", NULL},
        {"stack", "demo", "--nope", NULL},
        {"stack", "frobnicate", NULL},
        {"stack", NULL},
        {"stack", "up", "--addr", "10.0.0.2/24", "--serve", "echo:7", NULL},
        {"stack", "up", "--tun", "x", "--serve", "echo:7", NULL},
        {"stack", "up", "--tun", "x", "--addr", "10.0.0.2/24", NULL},
        {"stack", "up", "--tun", "x", "--addr", "10.0.0.2/24", "--serve", "ftp:21", NULL},
        {"stack", "up", "--tun", "x", "--addr", "10.0.0.2/24", "--serve", "echo:7",
         "--peer", "10.0.1.1", NULL},
        {"stack", "up", "--tun", "x", "--addr", "10.0.0.0/24", "--serve", "echo:7", NULL},
        {"stack", "up", "--tun", "x", "--addr", "10.0.0.2/24", "--serve", "source:19",
         "--source-pattern", "ones", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct th_result r = th_run_cli(bad[i], 30000);
        cr_expect_eq(r.status, 2, "case %zu (%s %s): status %d, stderr %s", i, bad[i][1],
                     bad[i][2] ? bad[i][2] : "", r.status, r.err);
        cr_expect(strstr(r.err, "sockstack: "), "case %zu: no message", i);
        th_result_free(&r);
    }
    static const char *const help[][4] = {
        {"stack", "--help", NULL}, {"stack", "demo", "--help", NULL},
        {"stack", "diagram", "-h", NULL}, {"stack", "up", "--help", NULL}};
    for (size_t i = 0; i < sizeof help / sizeof help[0]; i++) {
        struct th_result r = th_run_cli(help[i], 30000);
        cr_expect_eq(r.status, 0);
        cr_expect(strstr(r.out, "Usage: sockstack stack"), "%s", r.out);
        th_result_free(&r);
    }
}

/* --no-sack / --no-timestamps / --no-wscale / --rcvbuf reach both stacks:
 * the SYNs show exactly the options left (RFC 7323, RFC 2018). */
Test(stack_cli, demo_tcp_options_switch_off_and_rcvbuf_sets_the_shift)
{
    const char *a[] = {"stack", "demo", "--bytes", "1K", "--trace", "--no-sack",
                       "--no-timestamps", NULL};
    struct th_result r = th_run_cli(a, 30000);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    int n = 0;
    for (const char *p = r.out; (p = strstr(p, "<mss 1460,nop,wscale 0>\n")); p++)
        n++;
    cr_assert_eq(n, 4, "A's SYN and B's SYN,ACK, each sent and received: %s", r.out);
    cr_assert(!strstr(r.out, "sackOK") && !strstr(r.out, "TS val"), "%s", r.out);
    th_result_free(&r);
    const char *b[] = {"stack", "demo", "--bytes", "1K", "--trace", "--no-wscale",
                       "--rcvbuf", "4M", NULL};
    r = th_run_cli(b, 30000);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert(strstr(r.out, "A  > SYN seq="), "%s", r.out);
    cr_assert(!strstr(r.out, "wscale"), "%s", r.out);
    cr_assert(strstr(r.out, "<mss 1460,sackOK,TS val "), "%s", r.out);
    th_result_free(&r);
    const char *c[] = {"stack", "demo", "--bytes", "1K", "--trace", "--rcvbuf", "4M", NULL};
    r = th_run_cli(c, 30000);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert(strstr(r.out, " ecr 0,nop,wscale 7>\n"), "4 MiB: shift 7: %s", r.out);
    th_result_free(&r);
    const char *d[] = {"stack", "demo", "--rcvbuf", "65M", NULL};
    r = th_run_cli(d, 30000);
    cr_assert_eq(r.status, 2, "above 64M is a usage error");
    th_result_free(&r);
}

/* Seed 4 of this 5%-loss run loses the FIN (with the last 896 bytes)
 * in recovery, and RACK finds it lost above the highest SACK: it is
 * resent as those bytes and the FIN, never as one more byte of data (a
 * first version sent 897 bytes, and B received 4194305). */
Test(stack_cli, a_fin_lost_in_recovery_is_resent_as_a_fin)
{
    const char *a[] = {"stack", "demo", "--seed", "4", "--bandwidth", "50M", "--delay", "5",
                       "--queue", "62", "--loss", "5", "--bytes", "4M", "--rcvbuf", "4M", "--trace",
                       NULL};
    struct th_result r = th_run_cli(a, 60000);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert(strstr(r.out, "  received  4194304 bytes  sha256 "), "%s", r.err);
    cr_assert(strstr(r.out, " A  > [rtx] FIN,PSH,ACK "), "the FIN resent");
    cr_assert(strstr(r.out, "(match)"));
    th_result_free(&r);
}

/* --rto-min sets the least RTO of both stacks: over the demo's 20 ms
 * round trip RFC 6298's formula stays far below either floor, so every
 * RTT sample's RTO is that floor. */
Test(stack_cli, demo_rto_min_is_the_least_rto)
{
    const char *a[] = {"stack", "demo", "--bytes", "20K", "--trace", "--rto-min", "200", NULL};
    const char *b[] = {"stack", "demo", "--bytes", "20K", "--trace", NULL};
    const char *const *runs[] = {a, b};
    const char *want[] = {"rto=200000us", "rto=1000000us"};
    for (int k = 0; k < 2; k++) {
        struct th_result r = th_run_cli(runs[k], 30000);
        cr_assert_eq(r.status, 0, "stderr: %s", r.err);
        int n = 0, all = 0;
        for (const char *p = r.out; (p = strstr(p, " rto=")); p++, all++)
            n += !strncmp(p + 1, want[k], strlen(want[k]));
        cr_assert_eq(n, 5, "%s: %d of %d: %s", want[k], n, all, r.out);
        cr_assert_eq(all, 5, "%s", r.out);
        th_result_free(&r);
    }
    const char *c[] = {"stack", "demo", "--rto-min", "60001", NULL};
    struct th_result r = th_run_cli(c, 30000);
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "--rto-min: 60001 is out of range (1 to 60000)"), "%s", r.err);
    th_result_free(&r);
}

Test(stack_cli, demo_pcap_is_clean_and_complete)
{
    char path[128];
    snprintf(path, sizeof path, "/tmp/ss-test-demo-%d.pcap", (int)getpid());
    const char *args[] = {"stack", "demo", "--loss", "5", "--seed", "9", "--pcap", path,
                          NULL};
    struct th_result r = th_run_cli(args, 30000);
    cr_assert_eq(r.status, 0);
    /* The summary's packet count is the file's. */
    const char *p = strstr(r.out, "  pcap: ");
    cr_assert(p, "%s", r.out);
    long said = atol(p + 8);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "tshark -r '%s' -o tcp.check_checksum:TRUE -o ip.check_checksum:TRUE "
             "-T fields -e tcp.checksum.status -e ip.checksum.status 2>/dev/null "
             "| sort | uniq -c", path);
    FILE *f = popen(cmd, "r");
    char line[128];
    long good = 0;
    while (fgets(line, sizeof line, f)) {
        long n;
        char a[16], b[16];
        cr_assert_eq(sscanf(line, "%ld %15s %15s", &n, a, b), 3, "%s", line);
        cr_assert_str_eq(a, "1", "tcp checksum status %s (1 = good)", a);
        cr_assert_str_eq(b, "1", "ip checksum status %s (1 = good)", b);
        good += n;
    }
    pclose(f);
    cr_assert_eq(good, said);
    unlink(path);
    th_result_free(&r);
}

Test(stack_cli, same_seed_gives_the_same_pcap_file_byte_for_byte)
{
    char a[128], b[128], cmd[768];
    snprintf(a, sizeof a, "/tmp/ss-test-det-a-%d.pcap", (int)getpid());
    snprintf(b, sizeof b, "/tmp/ss-test-det-b-%d.pcap", (int)getpid());
    const char *fmt = "'%s' stack demo --loss 10 --dup 2 --reorder 5 --jitter 3 "
                      "--seed 77 --pcap %s >/dev/null 2>&1";
    snprintf(cmd, sizeof cmd, fmt, th_sockstack(), a);
    system(cmd);
    snprintf(cmd, sizeof cmd, fmt, th_sockstack(), b);
    system(cmd);
    snprintf(cmd, sizeof cmd, "test -s %s && cmp -s %s %s", a, a, b);
    cr_assert_eq(system(cmd), 0, "two runs with seed 77 wrote different pcaps");
    unlink(a);
    unlink(b);
}

/* The simulated link stays byte-identical per seed: the SHA-256 of a
 * seeded run's JSON trace (every segment, option, RTT, window and
 * congestion event of both stacks) and of its pcap (every byte of every
 * packet, checksums included) are stored here. Any change to what the
 * stack does over the simulated link changes them. A change that means to
 * alter the simulation updates the digests in the same commit and says
 * why; a change that should not (a new link driver, offloads, a faster
 * checksum) must leave them alone. */
struct sim_digest {
    const char *args;   /* stack demo options */
    const char *trace;  /* sha256 of --trace-json's stdout */
    const char *pcap;   /* sha256 of --pcap's file */
};

/* 2026-12-02, SYN queue (issue 10): the listener's SYN makes a half-open
 * entry, not a socket, so its SYN,ACK and the handshake's ACK are traced
 * with sd -1 and the socket's CLOSED -> SYN-RECEIVED comes with the ACK;
 * six trace lines per run moved, the packets (pcap) are unchanged.
 * 2026-12-02, send buffer limit 4 MiB: A's application queues everything
 * at once, so its shutdown (ESTABLISHED -> FIN-WAIT-1) is traced at the
 * start; the packets are unchanged.
 * 2026-12-03, loss recovery: lost retransmissions are resent without the
 * RTO, a SACK that carries new octets is a duplicate ACK whatever the
 * window, and a loss at the old RecoveryPoint starts recovery: the
 * packets of all three runs change (each still delivers every byte).
 * 2026-12-03, PRR (RFC 6937) and the tail loss probe: the reordering run
 * traces cwnd per ACK in recovery (its packets are unchanged); the
 * queue-limited run sends differently in recovery (all bytes arrive);
 * the first run has no recovery that PRR or a probe changes.
 * 2026-12-03, RACK's reordering timer (RFC 8985 6, for SND.UNA): the
 * reordering run enters recovery twice and the queue-limited run once
 * on the timer, SRTT / 4 after a first duplicate ACK, instead of on a
 * third (each still delivers every byte, with the same retransmission
 * count; the first run's recoveries all start on a third duplicate
 * ACK sooner).
 * 2026-12-04, RACK in recovery (RFC 8985 6.2): holes below the highest
 * SACK whose reordering window has passed count as lost, and so does a
 * retransmission sent more than an RTT plus the window before the
 * newest delivered one: the reordering run traces one cwnd in recovery
 * one MSS lower (pipe counts a hole as lost; its packets are
 * unchanged); the queue-limited run marks holes lost by RACK once and
 * resends them sooner (all bytes arrive, 13 retransmissions); the first
 * run is unchanged.
 * 2026-12-04, RACK above the highest SACK: what was sent before a
 * retransmission that arrived is lost reo_wnd later, SACKed above or
 * not: the queue-limited run finds one such loss (14 queue drops, 14
 * retransmissions, all bytes arrive); the other two are unchanged. */
static const struct sim_digest sim_digests[] = {
    {"--seed 3 --loss 2 --bytes 300K",
     "318f94320b8f90974094797c3d358a289a88e92f8ceac6ed3e26f777925f130e",
     "479f866209e3dad0981a1ba96902bfbaea39451ce8fde3f41e67da963375564b"},
    {"--seed 21 --cc newreno --loss 3 --reorder 5 --dup 2 --corrupt 1 --jitter 2 --bytes 200K",
     "5a75f1ee19c832c8ba66b692567b8d311cf389bbb6cf1864eeaa089231c60b47",
     "5d7b8f49d177a789b41a6dca83d2c7fe35052f21f6265a01dc7e844d56a9391d"},
    {"--seed 5 --bandwidth 5M --delay 20 --queue 10 --bytes 500K --rcvbuf 256K",
     "72e1fd3620eab3ffd54ae32bf75a741bf052e45d7a100ef511775c27d885ee36",
     "a0cc0a23a7fae800a97c439f1e313e8feda1219d8f66a371baa295ce833d243c"},
    {NULL, NULL, NULL},
};

static void sha256_of_cmd(const char *cmd, char out[65])
{
    FILE *f = popen(cmd, "r");
    cr_assert(f, "popen %s", cmd);
    char line[160] = "";
    char *got = fgets(line, sizeof line, f);
    int st = pclose(f);
    cr_assert(got && st == 0, "%s: status %d", cmd, st);
    cr_assert(sscanf(line, "%64s", out) == 1);
}

Test(stack_cli, seeded_simulated_runs_match_their_stored_digests)
{
    char pcap[128], cmd[1024], trace[65], pc[65];
    snprintf(pcap, sizeof pcap, "/tmp/ss-test-digest-%d.pcap", (int)getpid());
    for (const struct sim_digest *d = sim_digests; d->args; d++) {
        snprintf(cmd, sizeof cmd, "'%s' stack demo %s --trace-json 2>/dev/null | sha256sum",
                 th_sockstack(), d->args);
        sha256_of_cmd(cmd, trace);
        snprintf(cmd, sizeof cmd, "'%s' stack demo %s --pcap %s >/dev/null 2>&1 && sha256sum %s",
                 th_sockstack(), d->args, pcap, pcap);
        sha256_of_cmd(cmd, pc);
        unlink(pcap);
        cr_expect_str_eq(trace, d->trace, "stack demo %s: the trace changed", d->args);
        cr_expect_str_eq(pc, d->pcap, "stack demo %s: the packets changed", d->args);
    }
}
