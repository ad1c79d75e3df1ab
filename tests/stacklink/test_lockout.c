/* Lock-out (issue 10): `stack up` on a TUN device attacked from the
 * kernel's side, each test in a private network namespace of its own
 * worker process (it vanishes with the process, also on failure). The
 * attackers and the legitimate clients are python3 programs
 * (lockout.py), each bounded in count and time:
 *   - 100,000 spoofed SYNs from a raw socket while a client connects,
 *     echoes and closes in a loop: with SYN cookies every try succeeds
 *     within 1 s; with --syncookies 0 tries fail (the test can fail).
 *     The flood runs at the rate the stack takes it in (no drops at the
 *     device, which would hit the client's packets as well: that is
 *     capacity, not lock-out; lockout.py paces it by ICMP echoes), and
 *     reports the rate;
 *   - 10x more idle connections than --max-per-peer from one address:
 *     the excess is reset and a client from another address gets in;
 *   - first fragments that never complete, 8 per round, beside a
 *     fragmented UDP datagram whose echo must come back each round. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define STACK_ADDR "10.97.0.2"
#define KERNEL_ADDR "10.97.0.1"
#define SECOND_ADDR "10.97.0.3"

static struct th_proc stack_p = {.pid = -1, .in = -1, .out = -1, .err = -1};
static struct th_proc att_p = {.pid = -1, .in = -1, .out = -1, .err = -1};
static struct th_proc cli_p = {.pid = -1, .in = -1, .out = -1, .err = -1};
static char dev[32];

static void teardown(void)
{
    th_reap(&att_p);
    th_reap(&cli_p);
    th_reap(&stack_p);
}

TestSuite(lockout, .fini = teardown, .timeout = 150);

/* `stack up --serve echo:7` with the options in opts (NULL-terminated). */
static void stack_up(const char *const opts[])
{
    th_enter_netns();
    snprintf(dev, sizeof dev, "sslo%d", (int)getpid() % 100000);
    const char *argv[24] = {th_sockstack(), "stack", "up", "--tun", dev, "--addr",
                            STACK_ADDR "/24", "--serve", "echo:7"};
    int n = 9;
    while (opts && *opts)
        argv[n++] = *opts++;
    argv[n] = NULL;
    cr_assert_eq(th_spawn(&stack_p, (char *const *)argv), 0);
    char line[256];
    cr_assert_eq(th_wait_listening(&stack_p, 15000, line, sizeof line), 7,
                 "stack up did not come up: %s", line);
}

/* Start lockout.py with args (NULL-terminated) as p. */
static void py_start(struct th_proc *p, const char *const args[])
{
    const char *argv[16] = {"python3", th_source_path("tests/stacklink/lockout.py")};
    int n = 2;
    while (*args)
        argv[n++] = *args++;
    argv[n] = NULL;
    cr_assert_eq(th_spawn(p, (char *const *)argv), 0);
}

/* Its one result line (stdout), once it ended by itself. */
static char *py_result(struct th_proc *p, int timeout_ms)
{
    char *out = NULL;
    ssize_t len = th_read_all(p->out, &out, timeout_ms);
    int st = th_wait(p, 5000);
    p->pid = -1;
    th_close_fds(p);
    out = realloc(out, (size_t)(len > 0 ? len : 0) + 1);
    out[len > 0 ? len : 0] = '\0';
    cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "lockout.py failed: %s", out);
    return out;
}

struct flood_run {
    long sent, ok, fail, max_ms;
};

/* 100,000 spoofed SYNs at the echo port (at most 60 s, at the rate the
 * stack absorbs: lockout.py) while the client loops for the first 15 s
 * of it. */
static struct flood_run syn_flood(const char *cookies)
{
    const char *opts[] = {"--syncookies", cookies, NULL};
    stack_up(opts);
    struct flood_run r = {0};
    const char *legit[] = {"legit", STACK_ADDR, "7", "15", NULL};
    const char *flood[] = {"synflood", STACK_ADDR, "7", "100000", "60", NULL};
    py_start(&att_p, flood);
    py_start(&cli_p, legit);
    char *c = py_result(&cli_p, 30000);
    char *f = py_result(&att_p, 70000);
    cr_assert_eq(sscanf(f, "sent %ld", &r.sent), 1, "%s", f);
    cr_assert_eq(sscanf(c, "legit ok=%ld fail=%ld max_ms=%ld", &r.ok, &r.fail, &r.max_ms), 3,
                 "%s", c);
    fprintf(stderr, "syncookies %s: %s%s", cookies, f, c);
    free(f);
    free(c);
    int st = th_stop(&stack_p, SIGINT, 15000);
    stack_p.pid = -1;
    th_close_fds(&stack_p);
    cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "stack up status %d", st);
    return r;
}

Test(lockout, syn_flood_every_legitimate_connection_within_1s)
{
    struct flood_run r = syn_flood("1");
    cr_assert_eq(r.sent, 100000);
    cr_assert_gt(r.ok, 0);
    cr_assert_eq(r.fail, 0, "%ld of %ld tries failed or took over 1 s", r.fail, r.ok + r.fail);
    cr_assert_lt(r.max_ms, 1000);
}

/* The same without SYN cookies: the spoofed SYNs fill the listener's SYN
 * queue and the client's SYNs are dropped until entries time out. */
Test(lockout, syn_flood_without_cookies_locks_clients_out)
{
    struct flood_run r = syn_flood("0");
    cr_assert_eq(r.sent, 100000);
    cr_assert_gt(r.fail, 0, "no try failed: the flood did not fill the queue");
}

/* 50 idle connections from one address against --max-per-peer 5: 45 are
 * reset as they are accepted, and a client from another address echoes. */
Test(lockout, idle_connections_beyond_the_per_peer_cap_leave_room)
{
    const char *opts[] = {"--max-per-peer", "5", "--idle-timeout", "60", NULL};
    stack_up(opts);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "ip addr add " SECOND_ADDR "/24 dev %s", dev);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    const char *idle[] = {"idle", STACK_ADDR, "7", "50", KERNEL_ADDR, SECOND_ADDR, NULL};
    py_start(&cli_p, idle);
    char *out = py_result(&cli_p, 60000);
    long open = 0, reset = 0;
    char legit[8] = "";
    cr_assert_eq(sscanf(out, "idle open=%ld reset=%ld legit=%7s", &open, &reset, legit), 3,
                 "%s", out);
    cr_assert_eq(open, 50, "%s", out);
    cr_assert_eq(reset, 45, "%s", out);
    cr_assert_str_eq(legit, "ok", "%s", out);
    free(out);
}

/* First fragments that never complete, more than the reassembly slots
 * in every round: the oldest go, and the real datagram is echoed. */
Test(lockout, fragment_slots_never_lock_out_a_datagram)
{
    stack_up(NULL);
    const char *frag[] = {"fragflood", STACK_ADDR, "7", "20", NULL};
    py_start(&cli_p, frag);
    char *out = py_result(&cli_p, 60000);
    long ok = 0, fail = 0;
    cr_assert_eq(sscanf(out, "frag ok=%ld fail=%ld", &ok, &fail), 2, "%s", out);
    cr_assert_eq(ok, 20, "%s", out);
    cr_assert_eq(fail, 0, "%s", out);
    free(out);
}
