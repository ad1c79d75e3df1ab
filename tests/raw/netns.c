/* Named network namespaces for the raw-socket tests (see netns.h). */
#include "netns.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

char ns_name[NS_COUNT][32];

static void vfmt(char *buf, size_t cap, const char *fmt, va_list ap)
{
    int n = vsnprintf(buf, cap, fmt, ap);
    cr_assert(n > 0 && (size_t)n < cap, "command too long");
}

void ns_sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vfmt(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "failed: %s", cmd);
}

int ns_capture(char **out, const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vfmt(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    strcat(cmd, " 2>&1");
    FILE *f = popen(cmd, "r");
    cr_assert(f, "popen %s", cmd);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    cr_assert(buf);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
            cr_assert(buf);
        }
    }
    buf[n] = '\0';
    *out = buf;
    int st = pclose(f);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void ns_teardown(void)
{
    for (int i = 0; i < NS_COUNT; i++) {
        if (!ns_name[i][0])
            continue;
        char cmd[256];
        snprintf(cmd, sizeof cmd, "ip netns del %s 2>/dev/null", ns_name[i]);
        if (system(cmd) != 0) {
            /* already gone */
        }
        ns_name[i][0] = '\0';
    }
}

/* A veth pair between namespaces a and b with v4 and v6 addresses. */
static void link_pair(int a, int b, int net)
{
    const char *A = ns_name[a], *B = ns_name[b];
    ns_sh("ip link add v%da netns %s type veth peer name v%db netns %s", net, A, net, B);
    ns_sh("ip -n %s addr add 10.81.%d.%d/24 dev v%da && ip -n %s link set v%da up", A, net,
          a == NS_H1 ? 2 : 1, net, A, net);
    ns_sh("ip -n %s addr add 10.81.%d.%d/24 dev v%db && ip -n %s link set v%db up", B, net,
          a == NS_H1 ? 1 : 2, net, B, net);
    ns_sh("ip -n %s addr add fd81:%d::%d/64 dev v%da nodad", A, net, a == NS_H1 ? 2 : 1, net);
    ns_sh("ip -n %s addr add fd81:%d::%d/64 dev v%db nodad", B, net, a == NS_H1 ? 1 : 2, net);
}

void ns_make_line(void)
{
    if (!th_is_root())
        cr_skip_test("needs root: network namespaces");
    static const char *const role[NS_COUNT] = {"h1", "r1", "r2", "h2"};
    for (int i = 0; i < NS_COUNT; i++) {
        snprintf(ns_name[i], sizeof ns_name[i], "ssraw%s-%d", role[i], (int)getpid());
        ns_sh("ip netns add %s && ip -n %s link set lo up", ns_name[i], ns_name[i]);
        /* Every ICMP error answered: no rate limit inside the test. */
        ns_sh("ip netns exec %s sysctl -qw net.ipv4.icmp_ratelimit=0 "
              "net.ipv6.icmp.ratelimit=0 net.ipv4.ping_group_range='0 2147483647' "
              "net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0",
              ns_name[i]);
    }
    link_pair(NS_H1, NS_R1, 1);
    link_pair(NS_R1, NS_R2, 2);
    /* r2 -- h2 is net 3; addresses .1 on r2 and .2 on h2. */
    ns_sh("ip link add v3a netns %s type veth peer name v3b netns %s", ns_name[NS_R2],
          ns_name[NS_H2]);
    ns_sh("ip -n %s addr add 10.81.3.1/24 dev v3a && ip -n %s link set v3a up",
          ns_name[NS_R2], ns_name[NS_R2]);
    ns_sh("ip -n %s addr add 10.81.3.2/24 dev v3b && ip -n %s link set v3b up",
          ns_name[NS_H2], ns_name[NS_H2]);
    ns_sh("ip -n %s addr add fd81:3::1/64 dev v3a nodad", ns_name[NS_R2]);
    ns_sh("ip -n %s addr add fd81:3::2/64 dev v3b nodad", ns_name[NS_H2]);
    for (int r = NS_R1; r <= NS_R2; r++)
        ns_sh("ip netns exec %s sysctl -qw net.ipv4.ip_forward=1 "
              "net.ipv6.conf.all.forwarding=1", ns_name[r]);
    ns_sh("ip -n %s route add default via 10.81.1.1", ns_name[NS_H1]);
    ns_sh("ip -n %s -6 route add default via fd81:1::1", ns_name[NS_H1]);
    ns_sh("ip -n %s route add 10.81.3.0/24 via 10.81.2.2", ns_name[NS_R1]);
    ns_sh("ip -n %s route add 10.81.4.0/24 via 10.81.2.2", ns_name[NS_R1]);
    ns_sh("ip -n %s -6 route add fd81:3::/64 via fd81:2::2", ns_name[NS_R1]);
    ns_sh("ip -n %s route add default via 10.81.2.1", ns_name[NS_R2]);
    ns_sh("ip -n %s -6 route add default via fd81:2::1", ns_name[NS_R2]);
    ns_sh("ip -n %s route add default via 10.81.3.1", ns_name[NS_H2]);
    ns_sh("ip -n %s -6 route add default via fd81:3::1", ns_name[NS_H2]);
}
