/* broadcast send where 255.255.255.255 has no route (a namespace without a
 * default route): it falls back to each up interface's broadcast address,
 * or takes --interface, and says which it used. Root: each test runs in a
 * network namespace of its own (th_enter_netns), gone with its process. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

TestSuite(cli_broadcast, .timeout = 60);

static void sh(const char *cmd)
{
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* lo, and a veth pair with 10.77.0.1/24 on v0: no default route. */
static void no_default_route(void)
{
    th_enter_netns();
    sh("ip link set lo up && ip link add v0 type veth peer name v1 && "
       "ip addr add 10.77.0.1/24 broadcast 10.77.0.255 dev v0 && "
       "ip link set v0 up && ip link set v1 up");
}

static void listen_for(struct th_proc *l, const char *count)
{
    cr_assert_eq(th_spawn_cli(l, "broadcast", "listen", "--port", "9999", "--count", count,
                              NULL), 0);
    cr_assert_eq(th_wait_listening(l, 10000, NULL, 0), 9999);
}

Test(cli_broadcast, limited_broadcast_without_default_route_uses_each_interface)
{
    no_default_route();
    struct th_proc l = {.pid = -1};
    listen_for(&l, "1");
    struct th_result r =
        th_run_cli((const char *const[]){"broadcast", "send", "--port", "9999", "hello", NULL},
                   20000);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.err, " 255.255.255.255:9999: Network is unreachable (no default route); "
                            "sending to each interface's broadcast address instead: "
                            "v0 10.77.0.255:9999\n"), "%s", r.err);
    cr_assert(strstr(r.err, " sent 5 bytes to 10.77.0.255:9999 (v0)\n"), "%s", r.err);
    th_result_free(&r);
    char *out = NULL;
    cr_assert_gt(th_read_all(l.out, &out, 10000), 0);
    cr_assert(strncmp(out, "10.77.0.1:", 10) == 0 && strstr(out, ": hello\n"), "%s", out);
    free(out);
    cr_assert_eq(th_wait(&l, 10000), 0);
    th_reap(&l);
}

Test(cli_broadcast, interface_option_names_the_address_used)
{
    no_default_route();
    struct th_proc l = {.pid = -1};
    listen_for(&l, "1");
    struct th_result r = th_run_cli(
        (const char *const[]){"broadcast", "send", "--port", "9999", "--interface", "v0", "hi",
                              NULL},
        20000);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.err, " sending to the broadcast address of v0 10.77.0.255:9999\n"), "%s",
              r.err);
    cr_assert(strstr(r.err, " sent 2 bytes to 10.77.0.255:9999 (v0)\n"), "%s", r.err);
    th_result_free(&r);
    char *out = NULL;
    cr_assert_gt(th_read_all(l.out, &out, 10000), 0);
    cr_assert(strstr(out, ": hi\n"), "%s", out);
    free(out);
    cr_assert_eq(th_wait(&l, 10000), 0);
    th_reap(&l);
    r = th_run_cli((const char *const[]){"broadcast", "send", "--port", "9999", "--interface",
                                         "v9", "x", NULL},
                   20000);
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert_str_eq(r.err, "sockstack: broadcast send: --interface v9: no such interface up "
                            "with an IPv4 broadcast address\n");
    th_result_free(&r);
}
