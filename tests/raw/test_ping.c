/* sockstack ping and traceroute in network namespaces, against the kernel
 * and against the user-space stack (`stack up` behind router r2), and side
 * by side with iputils' ping where the output must match. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "netns.h"

static struct th_proc stack_p = {.pid = -1, .in = -1, .out = -1, .err = -1};

static void teardown(void)
{
    th_reap(&stack_p);
    ns_teardown();
}

TestSuite(raw, .init = ns_make_line, .fini = teardown, .timeout = 120);

/* `sockstack ARGS` inside namespace ns; output (stdout+stderr) in *out. */
static int in_ns(int ns, char **out, const char *args)
{
    return ns_capture(out, "ip netns exec %s %s %s", ns_name[ns], th_sockstack(), args);
}

/* Every reply line of a ping with count n: icmp_seq=1..n in order, from
 * addr, with this ttl and a time. */
static void assert_replies(const char *out, const char *addr, int n, int ttl)
{
    const char *p = out;
    for (int seq = 1; seq <= n; seq++) {
        char want[160];
        snprintf(want, sizeof want, "64 bytes from %s: icmp_seq=%d ttl=%d time=", addr, seq,
                 ttl);
        const char *q = strstr(p, want);
        cr_assert(q, "no '%s' in:\n%s", want, out);
        p = q + strlen(want);
    }
}

/* The statistics line without its time. */
static void assert_stats(const char *out, const char *stats)
{
    cr_assert(strstr(out, stats), "no '%s' in:\n%s", stats, out);
}

/* Start `stack up` in r2 on a TUN, the stack at 10.81.4.2, serving echo. */
static void start_stack(void)
{
    const char *argv[] = {"ip", "netns", "exec", ns_name[NS_R2], th_sockstack(), "stack",
                          "up", "--tun", "ssraw0", "--addr", "10.81.4.2/24", "--serve",
                          "echo:7", NULL};
    cr_assert_eq(th_spawn(&stack_p, (char *const *)argv), 0);
    cr_assert_eq(th_wait_listening(&stack_p, 10000, NULL, 0), 7);
}

/* ---- ping ----------------------------------------------------------------- */

Test(raw, ping_kernel_ipv4_across_two_routers)
{
    char *out;
    int st = in_ns(NS_H1, &out, "ping -c 3 -i 0.2 10.81.3.2");
    cr_assert_eq(st, 0, "%s", out);
    cr_assert(strstr(out, "PING 10.81.3.2 (10.81.3.2) 56(84) bytes of data.\n"), "%s", out);
    /* Two routers on the way: 64 - 2. */
    assert_replies(out, "10.81.3.2", 3, 62);
    assert_stats(out, "\n--- 10.81.3.2 ping statistics ---\n"
                      "3 packets transmitted, 3 received, 0% packet loss, time ");
    cr_assert(strstr(out, "rtt min/avg/max/mdev = "), "%s", out);
    free(out);
}

Test(raw, ping_kernel_ipv6)
{
    char *out;
    int st = in_ns(NS_H1, &out, "ping -6 -c 2 -i 0.2 fd81:3::2");
    cr_assert_eq(st, 0, "%s", out);
    cr_assert(strstr(out, "PING fd81:3::2(fd81:3::2) 56 data bytes\n"), "%s", out);
    assert_replies(out, "fd81:3::2", 2, 62);
    assert_stats(out, "2 packets transmitted, 2 received, 0% packet loss, time ");
    free(out);
}

Test(raw, ping_unprivileged_datagram_socket_ipv4_and_ipv6)
{
    char *out;
    int st = in_ns(NS_H1, &out, "ping --dgram -c 2 -i 0.2 -s 100 10.81.1.1");
    cr_assert_eq(st, 0, "%s", out);
    cr_assert(strstr(out, "PING 10.81.1.1 (10.81.1.1) 100(128) bytes of data.\n"), "%s", out);
    const char *p = out;
    for (int seq = 1; seq <= 2; seq++) {
        char want[96];
        snprintf(want, sizeof want, "108 bytes from 10.81.1.1: icmp_seq=%d ttl=64 time=", seq);
        cr_assert((p = strstr(p, want)), "no '%s' in:\n%s", want, out);
    }
    free(out);
    st = in_ns(NS_H1, &out, "ping --dgram -6 -c 2 -i 0.2 fd81:1::1");
    cr_assert_eq(st, 0, "%s", out);
    assert_replies(out, "fd81:1::1", 2, 64);
    free(out);
}

/* Without CAP_NET_RAW the raw socket is refused and ping falls back to the
 * ICMP datagram socket by itself, when net.ipv4.ping_group_range (per
 * namespace) lets the user's group have one; when it does not, both are
 * refused and ping says so (exit 2, as iputils). Run as nobody. */
Test(raw, ping_falls_back_to_the_datagram_socket_without_cap_net_raw)
{
    char *out;
    const char *nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all";
    cr_assert_eq(ns_capture(&out, "ip netns exec %s sysctl -qw net.ipv4.ping_group_range='1 0'",
                            ns_name[NS_H1]), 0, "%s", out);
    free(out);
    int st = ns_capture(&out, "ip netns exec %s %s %s ping -c 1 10.81.1.1", ns_name[NS_H1],
                        nobody, th_sockstack());
    cr_assert_eq(st, 2, "no socket at all: exit 2; got %d:\n%s", st, out);
    cr_assert(strstr(out, "ping: socket: "), "%s", out);
    free(out);
    cr_assert_eq(ns_capture(&out, "ip netns exec %s sysctl -qw "
                                  "net.ipv4.ping_group_range='0 2147483647'", ns_name[NS_H1]),
                 0, "%s", out);
    free(out);
    st = ns_capture(&out, "ip netns exec %s %s %s ping -c 2 -i 0.2 10.81.1.1", ns_name[NS_H1],
                    nobody, th_sockstack());
    cr_assert_eq(st, 0, "%s", out);
    assert_replies(out, "10.81.1.1", 2, 64);
    assert_stats(out, "2 packets transmitted, 2 received, 0% packet loss, time ");
    free(out);
}

Test(raw, ping_user_space_stack_answers)
{
    start_stack();
    char *out;
    /* A second apart: after the last request ping waits for its reply no
     * longer than the interval (iputils: twice the longest RTT, at least
     * the interval), and a stack that shares busy cores with the test may
     * take a few hundred ms to answer. */
    int st = in_ns(NS_H1, &out, "ping -c 3 -i 1 10.81.4.2");
    cr_assert_eq(st, 0, "%s", out);
    /* The stack's TTL is 64; r2 and r1 forward the reply on its way back. */
    assert_replies(out, "10.81.4.2", 3, 62);
    assert_stats(out, "3 packets transmitted, 3 received, 0% packet loss, time ");
    free(out);
}

/* s with its times replaced by "X": each reply's " time=0.123 ms", the
 * statistics' ", time 201ms", the rtt line's figures. */
static void untime(char *s)
{
    char *w = s;
    for (const char *r = s; *r;) {
        const char *e = strchr(r, '\n');
        size_t len = e ? (size_t)(e - r) + 1 : strlen(r);
        const char *t = memmem(r, len, " time=", 6);
        const char *st = memmem(r, len, ", time ", 7);
        if (!strncmp(r, "rtt min/avg/max/mdev = ", 23)) {
            w += sprintf(w, "rtt min/avg/max/mdev = X%s", e ? "\n" : "");
        } else if (t || st) {
            const char *m = t ? t : st;
            const char *after = t ? strstr(m, " ms") + 3 : strstr(m, "ms") + 2;
            memmove(w, r, (size_t)(m - r));
            w += m - r;
            w += sprintf(w, "%s", t ? " time=X" : ", time X");
            size_t rest = len - (size_t)(after - r);
            memmove(w, after, rest);
            w += rest;
        } else {
            memmove(w, r, len);
            w += len;
        }
        r += len;
    }
    *w = '\0';
}

/* -s on the raw socket (root, as the tests run): the header gives the
 * payload (IPv4: and the IP packet, 28 more), every reply 8 more bytes
 * than the payload (the ICMP header); IPv4 and IPv6, from the kernel two
 * routers away and from the user-space stack; under 16 bytes (no room for
 * iputils' timestamp) no time and no rtt line. Each output is the expected
 * text, and iputils' ping run the same way in the same place prints the
 * same, the times apart. */
Test(raw, ping_size_on_the_raw_socket_exact_as_iputils)
{
    start_stack();
    static const char *const cases[][2] = {
        {"-c 2 -i 0.2 -s 100 10.81.3.2",
         "PING 10.81.3.2 (10.81.3.2) 100(128) bytes of data.\n"
         "108 bytes from 10.81.3.2: icmp_seq=1 ttl=62 time=X\n"
         "108 bytes from 10.81.3.2: icmp_seq=2 ttl=62 time=X\n\n"
         "--- 10.81.3.2 ping statistics ---\n"
         "2 packets transmitted, 2 received, 0% packet loss, time X\n"
         "rtt min/avg/max/mdev = X\n"},
        {"-c 2 -i 1 -s 1000 10.81.4.2",   /* the stack: a second to answer */
         "PING 10.81.4.2 (10.81.4.2) 1000(1028) bytes of data.\n"
         "1008 bytes from 10.81.4.2: icmp_seq=1 ttl=62 time=X\n"
         "1008 bytes from 10.81.4.2: icmp_seq=2 ttl=62 time=X\n\n"
         "--- 10.81.4.2 ping statistics ---\n"
         "2 packets transmitted, 2 received, 0% packet loss, time X\n"
         "rtt min/avg/max/mdev = X\n"},
        {"-6 -c 2 -i 0.2 -s 200 fd81:3::2",
         "PING fd81:3::2(fd81:3::2) 200 data bytes\n"
         "208 bytes from fd81:3::2: icmp_seq=1 ttl=62 time=X\n"
         "208 bytes from fd81:3::2: icmp_seq=2 ttl=62 time=X\n\n"
         "--- fd81:3::2 ping statistics ---\n"
         "2 packets transmitted, 2 received, 0% packet loss, time X\n"
         "rtt min/avg/max/mdev = X\n"},
        {"-c 2 -i 0.2 -s 8 10.81.3.2",
         "PING 10.81.3.2 (10.81.3.2) 8(36) bytes of data.\n"
         "16 bytes from 10.81.3.2: icmp_seq=1 ttl=62\n"
         "16 bytes from 10.81.3.2: icmp_seq=2 ttl=62\n\n"
         "--- 10.81.3.2 ping statistics ---\n"
         "2 packets transmitted, 2 received, 0% packet loss, time X\n\n"},
        {"-6 -c 1 -s 0 fd81:3::2",
         "PING fd81:3::2(fd81:3::2) 0 data bytes\n"
         "8 bytes from fd81:3::2: icmp_seq=1 ttl=62\n\n"
         "--- fd81:3::2 ping statistics ---\n"
         "1 packets transmitted, 1 received, 0% packet loss, time X\n\n"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char *out, *ref, args[96];
        snprintf(args, sizeof args, "ping %s", cases[k][0]);
        int st = in_ns(NS_H1, &out, args);
        cr_assert_eq(st, 0, "%s: %s", cases[k][0], out);
        untime(out);
        cr_assert_str_eq(out, cases[k][1], "%s", cases[k][0]);
        int rst = ns_capture(&ref, "ip netns exec %s ping %s", ns_name[NS_H1], cases[k][0]);
        cr_assert_eq(rst, 0, "iputils %s: %s", cases[k][0], ref);
        untime(ref);
        cr_assert_str_eq(out, ref, "%s", cases[k][0]);
        free(out);
        free(ref);
    }
}

/* A host that never answers: iputils' 100% loss line and exit status 1,
 * the same lines as iputils' own ping in the same place. */
Test(raw, ping_unanswered_host_100pct_loss_exit_1_as_iputils)
{
    ns_sh("ip netns exec %s sysctl -qw net.ipv4.icmp_echo_ignore_all=1", ns_name[NS_H2]);
    char *out, *ref;
    int st = in_ns(NS_H1, &out, "ping -c 3 -i 0.2 -W 1 10.81.3.2");
    cr_assert_eq(st, 1, "%s", out);
    assert_stats(out, "3 packets transmitted, 0 received, 100% packet loss, time ");
    cr_assert_null(strstr(out, "rtt "), "%s", out);
    int rst = ns_capture(&ref, "ip netns exec %s ping -c 3 -i 0.2 -W 1 10.81.3.2",
                         ns_name[NS_H1]);
    cr_assert_eq(rst, st, "iputils: %d, ours: %d", rst, st);
    /* Same text up to the time figure. */
    char *t1 = strstr(out, ", time "), *t2 = strstr(ref, ", time ");
    cr_assert(t1 && t2);
    *t1 = *t2 = '\0';
    cr_assert_str_eq(out, ref);
    free(out);
    free(ref);
}

Test(raw, ping_ttl_1_gets_time_exceeded_from_the_first_router)
{
    char *out;
    int st = in_ns(NS_H1, &out, "ping -c 2 -i 0.2 -W 1 -t 1 10.81.3.2");
    cr_assert_eq(st, 1, "%s", out);
    cr_assert(strstr(out, "From 10.81.1.1 icmp_seq=1 Time to live exceeded\n"
                          "From 10.81.1.1 icmp_seq=2 Time to live exceeded\n"),
              "%s", out);
    assert_stats(out, "2 packets transmitted, 0 received, +2 errors, 100% packet loss, time ");
    free(out);
}

/* IPv6's hop limit 1: r1 answers time exceeded; the same text as iputils'
 * ping in the same place, the time apart. */
Test(raw, ping_ipv6_hop_limit_1_gets_time_exceeded_as_iputils)
{
    char *out, *ref;
    int st = in_ns(NS_H1, &out, "ping -6 -c 2 -i 0.2 -W 1 -t 1 fd81:3::2");
    cr_assert_eq(st, 1, "%s", out);
    untime(out);
    cr_assert_str_eq(out, "PING fd81:3::2(fd81:3::2) 56 data bytes\n"
                          "From fd81:1::1 icmp_seq=1 Time exceeded: Hop limit\n"
                          "From fd81:1::1 icmp_seq=2 Time exceeded: Hop limit\n\n"
                          "--- fd81:3::2 ping statistics ---\n"
                          "2 packets transmitted, 0 received, +2 errors, 100% packet loss, "
                          "time X\n\n");
    int rst = ns_capture(&ref, "ip netns exec %s ping -6 -c 2 -i 0.2 -W 1 -t 1 fd81:3::2",
                         ns_name[NS_H1]);
    cr_assert_eq(rst, st, "iputils: %d, ours: %d\n%s", rst, st, ref);
    untime(ref);
    cr_assert_str_eq(out, ref);
    free(out);
    free(ref);
}

Test(raw, ping_usage_and_unknown_host)
{
    char *out;
    cr_assert_eq(in_ns(NS_H1, &out, "ping -c 0 10.81.1.1"), 2, "%s", out);
    free(out);
    cr_assert_eq(in_ns(NS_H1, &out, "ping no-such-host.invalid"), 2, "%s", out);
    cr_assert(strstr(out, "ping: no-such-host.invalid: Name or service not known"), "%s", out);
    free(out);
}

/* ---- traceroute ------------------------------------------------------------ */

/* The three hop lines of a trace to dst through r1 and r2. */
static void assert_three_hops(const char *out, const char *dst, const char *hop1,
                              const char *hop2)
{
    char want[128];
    snprintf(want, sizeof want, "traceroute to %s (%s), 30 hops max, ", dst, dst);
    cr_assert(strstr(out, want), "%s", out);
    const char *hops[3] = {hop1, hop2, dst};
    for (int i = 0; i < 3; i++) {
        snprintf(want, sizeof want, "\n %d  %s  ", i + 1, hops[i]);
        const char *l = strstr(out, want);
        cr_assert(l, "no hop line '%s' in:\n%s", want + 1, out);
        /* three answers, each "N.NNN ms", no stars, no marks */
        const char *e = strchr(l + 1, '\n');
        int ms = 0;
        for (const char *q = l; q && q < e; q = strstr(q + 1, " ms"))
            if (q != l)
                ms++;
        cr_assert_eq(ms, 3, "hop %d: %.*s\n%s", i + 1, (int)(e - l), l, out);
        cr_assert_null(memchr(l, '*', (size_t)(e - l)));
        cr_assert_null(memchr(l, '!', (size_t)(e - l)));
    }
    snprintf(want, sizeof want, "\n 4 ");
    cr_assert_null(strstr(out, want), "a fourth hop:\n%s", out);
}

Test(raw, traceroute_udp_icmp_tcp_to_the_kernel_three_hops)
{
    const char *modes[] = {"-U", "-I", "-T -p 7"};
    for (int i = 0; i < 3; i++) {
        char *out, args[96];
        snprintf(args, sizeof args, "traceroute %s -w 2 10.81.3.2", modes[i]);
        int st = in_ns(NS_H1, &out, args);
        cr_assert_eq(st, 0, "%s: %s", modes[i], out);
        assert_three_hops(out, "10.81.3.2", "10.81.1.1", "10.81.2.2");
        free(out);
    }
}

Test(raw, traceroute_ipv6_udp_icmp_tcp_three_hops)
{
    const char *modes[] = {"-U", "-I", "-T -p 22"};
    for (int i = 0; i < 3; i++) {
        char *out, cmd[96];
        snprintf(cmd, sizeof cmd, "traceroute -6 %s -w 2 fd81:3::2", modes[i]);
        int st = in_ns(NS_H1, &out, cmd);
        cr_assert_eq(st, 0, "%s: %s", modes[i], out);
        if (i == 0)
            cr_assert(strstr(out, "30 hops max, 80 byte packets\n"), "%s", out);
        assert_three_hops(out, "fd81:3::2", "fd81:1::1", "fd81:2::2");
        free(out);
    }
}

Test(raw, traceroute_udp_icmp_tcp_to_the_user_space_stack_three_hops)
{
    start_stack();
    const char *modes[] = {"-U", "-I", "-T -p 7", "-T -p 9"};
    for (int i = 0; i < 4; i++) {
        char *out, args[96];
        snprintf(args, sizeof args, "traceroute %s -w 2 10.81.4.2", modes[i]);
        int st = in_ns(NS_H1, &out, args);
        cr_assert_eq(st, 0, "%s: %s", modes[i], out);
        assert_three_hops(out, "10.81.4.2", "10.81.1.1", "10.81.2.2");
        free(out);
    }
}

Test(raw, traceroute_unreachable_net_is_marked_and_ends)
{
    /* r1 has no route to 10.81.9.0/24: r2... no, r1 answers net unreachable. */
    ns_sh("ip -n %s route add unreachable 10.81.9.0/24", ns_name[NS_R1]);
    char *out;
    int st = in_ns(NS_H1, &out, "traceroute -q 2 -w 1 10.81.9.9");
    cr_assert_eq(st, 1, "%s", out);
    cr_assert(strstr(out, "\n 1  10.81.1.1  "), "%s", out);
    cr_assert(strstr(out, " ms !H\n") || strstr(out, " ms !N\n"), "%s", out);
    cr_assert_null(strstr(out, "\n 2 "), "%s", out);
    free(out);
}
