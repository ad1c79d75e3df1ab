/* Broadcast and discovery, only inside network namespaces this test makes:
 * a hub namespace with a bridge, and three host namespaces each joined to it
 * by a veth pair (10.213.0.1-3/24). Names carry our pid; everything is
 * deleted in teardown, also after a failed assertion, and namespaces left
 * by a crashed earlier run (dead pid) are deleted in setup. Nothing here
 * touches the machine's own interfaces. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "stream.h"

static char hub[32], ns[4][32];
static bool made;
static struct th_proc procs[8];
static int nprocs;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

/* Namespaces named ssb?<pid> whose pid is gone: leftovers of a crash. */
static void reap_stale(void)
{
    FILE *f = popen("ip netns list 2>/dev/null", "r");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        char name[64];
        int pid;
        if (sscanf(line, "%63s", name) == 1 && !strncmp(name, "ssb", 3) &&
            sscanf(name + 4, "%d", &pid) == 1 && pid > 0 && kill(pid, 0) != 0)
            sh("ip netns del %s 2>/dev/null", name);
    }
    pclose(f);
}

static void setup(void)
{
    if (!th_is_root())
        return;
    reap_stale();
    int pid = (int)getpid();
    snprintf(hub, sizeof hub, "ssbh%d", pid);
    for (int i = 1; i <= 3; i++)
        snprintf(ns[i], sizeof ns[i], "ssb%d%d", i, pid);
    made = true;
    int err = sh("ip netns add %s && ip -n %s link add br0 type bridge && "
                 "ip -n %s link set br0 up", hub, hub, hub);
    for (int i = 1; i <= 3 && !err; i++)
        err = sh("ip netns add %s && "
                 "ip link add v%d netns %s type veth peer name h%d netns %s && "
                 "ip -n %s link set h%d master br0 && ip -n %s link set h%d up && "
                 "ip -n %s link set lo up && ip -n %s link set v%d up && "
                 "ip -n %s addr add 10.213.0.%d/24 dev v%d && "
                 /* a default route, so the limited broadcast has a way out */
                 "ip -n %s route add default dev v%d",
                 ns[i], i, ns[i], i, hub, hub, i, hub, i, ns[i], ns[i], i, ns[i], i, i,
                 ns[i], i);
    cr_assert_eq(err, 0, "could not build the namespaces");
}

static void teardown(void)
{
    for (int i = 0; i < nprocs; i++) {
        if (procs[i].pid > 0 && kill(procs[i].pid, 0) == 0)
            th_stop(&procs[i], SIGKILL, 2000);
        th_close_fds(&procs[i]);
    }
    nprocs = 0;
    streams_free();
    if (made) {
        for (int i = 1; i <= 3; i++)
            sh("ip netns del %s 2>/dev/null", ns[i]);
        sh("ip netns del %s 2>/dev/null", hub);
        made = false;
    }
}

TestSuite(broadcast, .init = setup, .fini = teardown, .timeout = 60);

/* `sockstack ARGS... NULL` inside namespace i. */
static struct th_proc *in_ns(int i, ...)
{
    char *argv[24] = {"ip", "netns", "exec", ns[i], (char *)th_sockstack()};
    int n = 5;
    va_list ap;
    va_start(ap, i);
    char *a;
    while ((a = va_arg(ap, char *)) != NULL && n < 23)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    struct th_proc p;
    cr_assert_eq(th_spawn(&p, argv), 0);
    procs[nprocs] = p;
    return &procs[nprocs++];
}

#define NEED_ROOT()                                                  \
    do {                                                             \
        if (!th_is_root())                                           \
            cr_skip_test("needs root: network namespaces and veth"); \
    } while (0)

Test(broadcast, send_reaches_listeners_in_other_namespaces)
{
    NEED_ROOT();
    struct th_proc *l1 = in_ns(1, "broadcast", "listen", "--port", "9999", "--count", "3", NULL);
    struct th_proc *l3 = in_ns(3, "broadcast", "listen", "--port", "9999", "--count", "3", NULL);
    cr_assert_eq(th_wait_listening(l1, 10000, NULL, 0), 9999);
    cr_assert_eq(th_wait_listening(l3, 10000, NULL, 0), 9999);
    /* default destination: the limited broadcast address */
    struct th_proc *s = in_ns(2, "broadcast", "send", "--port", "9999", "--count", "2",
                              "--interval", "0.05", "hello lan", NULL);
    cr_assert_eq(th_wait(s, 10000), 0);
    /* and a subnet-directed broadcast */
    s = in_ns(2, "broadcast", "send", "--port", "9999", "--to", "10.213.0.255",
              "directed", NULL);
    cr_assert_eq(th_wait(s, 10000), 0);
    static struct stream o1, o3;
    stream_init(&o1, l1->out);
    stream_init(&o3, l3->out);
    EXPECT(&o1, "10.213.0.2:");
    EXPECT(&o1, ": hello lan\n");
    EXPECT(&o1, ": directed\n");
    EXPECT(&o3, ": directed\n");
    cr_assert_eq(count(&o1, "hello lan\n"), 2);
    cr_assert_eq(count(&o3, "hello lan\n"), 2);
    cr_assert_eq(th_wait(l1, 10000), 0); /* --count 3 reached: exits 0 */
}

Test(broadcast, discover_lists_services_that_announce)
{
    NEED_ROOT();
    struct th_proc *chat = in_ns(2, "serve", "chat", "--port", "0", "--announce", "--grace",
                                 "0", NULL);
    struct th_proc *udp = in_ns(3, "serve", "udp-chat", "--port", "0", "--announce",
                                "--grace", "0", NULL);
    int pc = th_wait_listening(chat, 10000, NULL, 0);
    int pu = th_wait_listening(udp, 10000, NULL, 0);
    cr_assert_gt(pc, 0);
    cr_assert_gt(pu, 0);
    struct th_proc *d = in_ns(1, "discover", "--wait", "1", NULL);
    static struct stream o;
    stream_init(&o, d->out);
    char want[64];
    snprintf(want, sizeof want, "chat 10.213.0.2 %d tcp\n", pc);
    EXPECT(&o, want);
    o.pos = 0;
    snprintf(want, sizeof want, "udp-chat 10.213.0.3 %d udp\n", pu);
    EXPECT(&o, want);
    cr_assert_eq(th_wait(d, 10000), 0);
    /* nothing answers on another port: exit status 1 */
    d = in_ns(1, "discover", "--port", "7998", "--wait", "0.3", NULL);
    cr_assert_eq(WEXITSTATUS(th_wait(d, 10000)), 1);
}
