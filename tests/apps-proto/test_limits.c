/* End to end: descriptor limits, the per-address cap and control codes in
 * listings and logs (issue 13 item 9). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "prun.h"

TestSuite(limits, .init = prun_setup, .fini = prun_teardown, .timeout = 180);

static void touch(const char *dirp, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dirp, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0, "%s: %s", p, strerror(errno));
    close(fd);
}

/* ---- control codes -------------------------------------------------------- */

Test(limits, listing_and_log_lines_escape_c0_and_c1_control_codes)
{
    char root[256];
    snprintf(root, sizeof root, "%s/root", dir);
    cr_assert_eq(mkdir(root, 0755), 0);
    touch(root, "evil\x1b[31mred\x1b[0m\a");
    touch(root, "c1\xc2\x9bx");
    touch(root, "h\xc3\xa9llo");
    touch(root, "back\\slash");
    struct th_proc srv;
    char port[8];
    serve(&srv, port, (char *[]){"files", "--root", root, "--key-file", keyf, NULL});
    struct result r;
    run_cli(&r, 15000, "ls", "127.0.0.1", port, "--key-file", keyf, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, " evil\\x1b[31mred\\x1b[0m\\x07\n") != NULL, "%s", r.out);
    cr_assert(strstr(r.out, " c1\\xc2\\x9bx\n") != NULL, "%s", r.out);
    cr_assert(strstr(r.out, " h\xc3\xa9llo\n") != NULL, "UTF-8 stays: %s", r.out);
    cr_assert(strstr(r.out, " back\\\\slash\n") != NULL, "%s", r.out);
    cr_assert_null(memchr(r.out, 0x1b, r.out_len), "a raw ESC reached the terminal");
    result_free(&r);
    /* A name chosen by the client reaches the server's log line. */
    char src[300];
    snprintf(src, sizeof src, "%s/x", dir);
    touch(dir, "x");
    run_cli(&r, 15000, "put", "127.0.0.1", port, src, "t\x1b]0;owned\a", "--key-file", keyf,
            NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    stop_status(&srv);
    char *log = read_text(srv.err, 2000);
    th_close_fds(&srv);
    bool escaped = strstr(log, "stored t\\x1b]0;owned\\x07 (0 bytes, SHA-256 ok)") != NULL;
    bool raw = strchr(log, 0x1b) != NULL || strchr(log, '\a') != NULL;
    char *copy = strdup(log);
    free(log);
    cr_assert(escaped && !raw, "%s", copy);
    free(copy);
}

/* ---- the per-address cap ---------------------------------------------------- */

/* argv: port. Three echo connections from 127.0.0.1; a fourth is closed
 * at once; one from 127.0.0.2 is served; after one of the three closes,
 * 127.0.0.1 is served again. */
static const char cap_client[] =
    "import socket, sys, time\n"
    "port = int(sys.argv[1])\n"
    "def conn(src):\n"
    "    s = socket.create_connection(('127.0.0.1', port), source_address=(src, 0))\n"
    "    s.settimeout(10)\n"
    "    return s\n"
    "def echo(s):\n"
    "    try:\n"
    "        s.sendall(b'ping')\n"
    "        return s.recv(10)\n"
    "    except (ConnectionResetError, BrokenPipeError):\n"
    "        return b''\n"
    "held = [conn('127.0.0.1') for i in range(3)]\n"
    "print('three', [echo(s) for s in held])\n"
    "print('fourth', echo(conn('127.0.0.1')))\n"
    "other = conn('127.0.0.2')\n"
    "print('other address', echo(other))\n"
    "held.pop().close()\n"
    "got = b''\n"
    "for i in range(100):\n"
    "    got = echo(conn('127.0.0.1'))\n"
    "    if got: break\n"
    "    time.sleep(0.05)\n"
    "print('after a close', got)\n";

static void cap_run(const char *model)
{
    struct th_proc srv;
    char port[8];
    serve(&srv, port, (char *[]){"echo", "--max-per-addr", "3", "--model", (char *)model, NULL});
    struct result r;
    char *argv[] = {"python3", "-c", (char *)cap_client, port, NULL};
    run_argv(argv, NULL, 0, 30000, &r, NULL);
    stop_status(&srv);
    char *log = read_text(srv.err, 2000);
    th_close_fds(&srv);
    bool ok = r.status == 0 && !strcmp(r.out, "three [b'ping', b'ping', b'ping']\n"
                                              "fourth b''\n"
                                              "other address b'ping'\n"
                                              "after a close b'ping'\n");
    bool logged = strstr(log, "connections open from this address (--max-per-addr)") &&
                  strstr(log, "refused 127.0.0.1:");
    char msg[1024];
    snprintf(msg, sizeof msg, "%s: %.300s / %.200s / %.300s", model, r.out, r.err, log);
    free(log);
    result_free(&r);
    cr_assert(ok && logged, "%s", msg);
}

Test(limits, the_per_address_cap_refuses_the_next_connection_from_one_address)
{
    cap_run("event");
    cap_run("fork");
}

/* ---- descriptor limit --------------------------------------------------------- */

/* argv: port, count. Opens count connections (from 127.0.1.1-22, 50 each
 * at 1,100: under exec's cap of 64 per address) that never
 * answer the challenge, says "held", waits for a line on stdin. */
static const char idle_holder[] =
    "import resource, socket, sys, time\n"
    "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
    "resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))\n"
    "port, n = int(sys.argv[1]), int(sys.argv[2])\n"
    "held = []\n"
    "for i in range(n):\n"
    "    s = socket.socket()\n"
    "    s.setblocking(False)\n"
    "    s.bind(('127.0.1.%d' % (i % 22 + 1), 0))\n"
    "    s.connect_ex(('127.0.0.1', port))\n"
    "    held.append(s)\n"
    "time.sleep(2)\n"
    "print('held %d' % len(held), flush=True)\n"
    "sys.stdin.readline()\n";

/* 1,100 idle handshakes against a server started with a soft limit of
 * 1,024 descriptors: it raises its limit to the hard one, so legitimate
 * runs still get through, every one of them. */
Test(limits, idle_handshakes_past_ulimit_1024_do_not_stop_legitimate_runs)
{
    char logf[256], cmd[1024];
    snprintf(logf, sizeof logf, "%s/server.log", dir);
    snprintf(cmd, sizeof cmd,
             "ulimit -Hn 4096 2>/dev/null; ulimit -Sn 1024 && exec '%s' serve exec "
             "--key-file '%s' --auth-timeout 60 --bind 127.0.0.1 --port 0 2>'%s'",
             th_sockstack(), keyf, logf);
    struct th_proc srv;
    char *sargv[] = {"sh", "-c", cmd, NULL};
    cr_assert_eq(th_spawn(&srv, sargv), 0);
    int port = 0;
    for (int i = 0; i < 200 && !port; i++) {
        usleep(50000);
        FILE *f = fopen(logf, "r");
        char line[512];
        while (f && fgets(line, sizeof line, f)) {
            char *at = strstr(line, "listening on 127.0.0.1:");
            if (at)
                port = atoi(at + strlen("listening on 127.0.0.1:"));
        }
        if (f)
            fclose(f);
    }
    if (!port)
        th_reap(&srv);
    cr_assert_gt(port, 0, "server did not start");
    char ports[8];
    snprintf(ports, sizeof ports, "%d", port);
    struct th_proc idle;
    char *iargv[] = {"python3", "-c", (char *)idle_holder, ports, "1100", NULL};
    cr_assert_eq(th_spawn(&idle, iargv), 0);
    char line[64];
    bool held = th_read_until(idle.out, "held 1100\n", line, sizeof line, 30000);
    int ok = 0;
    char why[512] = "";
    for (int i = 0; held && i < 5; i++) {
        struct result r;
        run_cli(&r, 30000, "exec", "127.0.0.1", ports, "--key-file", keyf, "--", "echo ok",
                NULL);
        if (r.status == 0 && !strcmp(r.out, "ok\n"))
            ok++;
        else if (!why[0])
            snprintf(why, sizeof why, "run %d: status %d: %.300s", i, r.status, r.err);
        result_free(&r);
    }
    th_write_all(idle.in, "\n", 1);
    th_wait(&idle, 10000);
    th_close_fds(&idle);
    int st = th_stop(&srv, SIGTERM, 20000);
    th_close_fds(&srv);
    cr_assert(held, "the idle connections were not opened: %s", line);
    cr_assert_eq(ok, 5, "legitimate runs completed: %d of 5 (%s)", ok, why);
    cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "server exit %d", st);
}
