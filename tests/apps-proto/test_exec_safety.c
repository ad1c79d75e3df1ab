/* End to end: the exec service against hostile clients and escaping
 * commands (issue 13): HTTP requests to --compat tutorial, a client that
 * vanishes while its stdin is held back, setsid children, too many
 * arguments. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "prun.h"

TestSuite(exec_safety, .init = prun_setup, .fini = prun_teardown, .timeout = 120);

/* ---- --compat tutorial: nothing but a framed command reaches the shell --- */

/* argv: port, path of the file the HTTP body would create. */
static const char http_post[] =
    "import socket, sys\n"
    "body = ('touch %s\\n' % sys.argv[2]).encode()\n"
    "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
    "s.sendall(b'POST / HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nContent-Type: text/plain\\r\\n'\n"
    "          b'Content-Length: %d\\r\\n\\r\\n' % len(body) + body)\n"
    "s.settimeout(10)\n"
    "got = b''\n"
    "while True:\n"
    "    try: d = s.recv(4096)\n"
    "    except ConnectionResetError: break\n"   /* closed with our bytes unread */
    "    if not d: break\n"
    "    got += d\n"
    "print('reply %r' % got)\n";

static const char framed_echo[] =
    "import socket, struct, sys\n"
    "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
    "cmd = b'echo still serving'\n"
    "s.sendall(struct.pack('<i', len(cmd)) + cmd)\n"
    "b = b''\n"
    "while len(b) < 4: b += s.recv(4 - len(b))\n"
    "n = struct.unpack('<i', b)[0]\n"
    "b = b''\n"
    "while len(b) < n: b += s.recv(n - len(b))\n"
    "print(repr(b))\n";

/* Issue 13 item 2. */
Test(exec_safety, compat_tutorial_runs_nothing_from_an_http_post)
{
    struct th_proc srv;
    cr_assert_eq(th_spawn_cli(&srv, "serve", "exec", "--compat", "tutorial", "--bind",
                              "127.0.0.1", "--port", "0", NULL), 0);
    char start[2048];
    bool up = th_read_until(srv.err, "listening on ", start, sizeof start, 10000);
    if (!up)
        th_reap(&srv);
    cr_assert(up, "server did not start: %s", start);
    char port[8];
    const char *colon = strrchr(strstr(start, "listening on "), ':');
    cr_assert_not_null(colon, "%s", start);
    snprintf(port, sizeof port, "%d", atoi(colon + 1));
    bool warned = strstr(start, "WARNING: serve exec --compat tutorial has no "
                                "authentication") != NULL;
    char pwned[256];
    snprintf(pwned, sizeof pwned, "%s/pwned", dir);
    struct result r, r2;
    python(&r, http_post, port, pwned);
    python(&r2, framed_echo, port, NULL);
    int st = th_stop(&srv, SIGTERM, 10000);
    char *log = read_text(srv.err, 2000);
    th_close_fds(&srv);
    bool ran = access(pwned, F_OK) == 0;
    bool closed = r.status == 0 && !strcmp(r.out, "reply b''\n");
    bool served = r2.status == 0 && !strcmp(r2.out, "b'still serving\\n'\n");
    bool logged = strstr(log, "a request must start with a 4-byte length of 1..1024 "
                              "(got 50 4f 53 54); nothing was run") != NULL;
    result_free(&r);
    result_free(&r2);
    free(log);
    cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "server exit %d", st);
    cr_assert(warned, "no warning banner at start: %s", start);
    cr_assert(!ran, "the HTTP body ran as a command");
    cr_assert(closed, "the connection closes without a reply");
    cr_assert(served, "a framed request still runs");
    cr_assert(logged, "the refusal is logged");
}

/* Two compat clients at once: argv port dir. A's command waits (at most
 * ~10 s) for a file that only B's command creates, so A can answer only
 * if B was served while A's command ran. Prints B's reply, then A's. */
static const char compat_two[] =
    "import os, socket, struct, sys, time\n"
    "port, d = int(sys.argv[1]), sys.argv[2]\n"
    "def ask(cmd):\n"
    "    s = socket.create_connection(('127.0.0.1', port))\n"
    "    s.settimeout(18)\n"
    "    s.sendall(struct.pack('<i', len(cmd)) + cmd.encode())\n"
    "    return s\n"
    "def reply(s):\n"
    "    b = b''\n"
    "    while len(b) < 4: b += s.recv(4 - len(b))\n"
    "    n = struct.unpack('<i', b)[0]\n"
    "    b = b''\n"
    "    while len(b) < n: b += s.recv(n - len(b))\n"
    "    return b\n"
    "a = ask('touch %s/a-runs; i=0; while [ ! -e %s/go ] && [ $i -lt 200 ]; do "
    "sleep 0.05; i=$((i+1)); done; if [ -e %s/go ]; then echo late; "
    "else echo gave up; fi' % (d, d, d))\n"
    "for i in range(400):\n"
    "    if os.path.exists(d + '/a-runs'): break\n"
    "    time.sleep(0.025)\n"
    "b = ask('touch %s/go; echo fast' % d)\n"
    "print(repr(reply(b)))\n"
    "print(repr(reply(a)))\n";

/* The compat service waits in the server's loop, not in a poll() of its
 * own: while one client's command runs, another's is served. */
Test(exec_safety, compat_tutorial_serves_a_second_client_while_a_command_runs)
{
    struct th_proc srv;
    char port[8];
    serve(&srv, port, (char *[]){"exec", "--compat", "tutorial", NULL});
    struct result r;
    python(&r, compat_two, port, dir);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "b'fast\\n'\nb'late\\n'\n");
    result_free(&r);
    stop(&srv);
}

/* ---- a client that vanishes while its stdin is held back ---------------- */

/* Start `exec -- CMD` with stdin piped; return the first line of its
 * stdout (the command prints a pid first). */
static pid_t start_and_read_pid_with(struct th_proc *cl, const char *port, const char *cmd,
                                     bool tls)
{
    char *argv[] = {(char *)th_sockstack(), "exec", "127.0.0.1", (char *)port, "--key-file",
                    keyf, "--", (char *)cmd, NULL};
    char *targv[] = {(char *)th_sockstack(), "exec", "127.0.0.1", (char *)port, "--key-file",
                     keyf, "--tls", "--tls-insecure", "--", (char *)cmd, NULL};
    cr_assert_eq(th_spawn(cl, tls ? targv : argv), 0);
    char line[64];
    cr_assert(th_read_until(cl->out, "\n", line, sizeof line, 10000), "got '%s'", line);
    int pid = 0;
    cr_assert_eq(sscanf(line, "%d", &pid), 1, "got '%s'", line);
    return (pid_t)pid;
}

static pid_t start_and_read_pid(struct th_proc *cl, const char *port, const char *cmd)
{
    return start_and_read_pid_with(cl, port, cmd, false);
}

/* kill -9 the client; is pid gone within 10 s? (If not, it is killed here:
 * a failed test leaves nothing running.) */
static bool kill_client_then_gone(struct th_proc *cl, pid_t pid)
{
    th_stop(cl, SIGKILL, 5000);
    th_close_fds(cl);
    bool gone = gone_within(pid, 10000);
    if (!gone)
        kill(pid, SIGKILL);
    return gone;
}

/* Issue 13 item 3: 336 KiB of stdin for a command that never reads it:
 * 64 KiB fill its pipe, 256 KiB more fill the server's buffer and the
 * server stops reading the connection; the last 16 KiB wait in the
 * server's socket. Then the client dies. (It was 400 KiB: what the
 * server's receive window could not take stayed in the client's send
 * queue, and a killed client's kernel then keeps probing the zero window
 * instead of sending its FIN, so the server could not know; under load
 * that happened in one CI run.) */
static void killed_client_takes_the_command_along(bool tls)
{
    struct th_proc srv;
    char port[8], cmdline[600], cert[300], key[300];
    snprintf(cert, sizeof cert, "%s/tls/cert.pem", dir);
    snprintf(key, sizeof key, "%s/tls/key.pem", dir);
    if (tls) {
        snprintf(cmdline, sizeof cmdline, "'%s' keygen --tls '%s/tls' >/dev/null 2>&1",
                 th_sockstack(), dir);
        cr_assert_eq(system(cmdline), 0);
        serve(&srv, port, (char *[]){"exec", "--key-file", keyf, "--tls-cert", cert,
                                     "--tls-key", key, NULL});
    } else {
        serve(&srv, port, (char *[]){"exec", "--key-file", keyf, NULL});
    }
    struct th_proc cl;
    pid_t cmd = start_and_read_pid_with(&cl, port, "echo $$; exec sleep 300", tls);
    enum { IN = 336 * 1024 };
    static char in[IN];
    memset(in, 'x', sizeof in);
    cr_assert_eq(th_write_all(cl.in, in, sizeof in), 0, "the client took all of its stdin");
    usleep(500000); /* let it cross the connection: not asserted, only waited for */
    cr_assert_eq(kill(cmd, 0), 0, "the command runs");
    bool gone = kill_client_then_gone(&cl, cmd);
    cr_assert(gone, "command %d survived its client", (int)cmd);
    stop(&srv);
}

Test(exec_safety, client_killed_while_its_stdin_is_held_back_takes_the_command_along)
{
    killed_client_takes_the_command_along(false);
}

/* The same over TLS: the hang-up is the FIN under the records (the TLS
 * layer passes SS_RDHUP through to its socket). */
Test(exec_safety, over_tls_a_client_killed_while_its_stdin_is_held_back_takes_the_command_along)
{
    killed_client_takes_the_command_along(true);
}

/* Issue 13 item 8: a child that left the process group (setsid). */
Test(exec_safety, a_setsid_child_does_not_survive_the_disconnect)
{
    struct th_proc srv;
    char port[8];
    serve(&srv, port, (char *[]){"exec", "--key-file", keyf, NULL});
    struct th_proc cl;
    pid_t child = start_and_read_pid(&cl, port, "setsid sleep 301 & echo $!; wait");
    cr_assert_eq(kill(child, 0), 0, "the setsid child runs");
    bool gone = kill_client_then_gone(&cl, child);
    stop_status(&srv);
    char *log = read_text(srv.err, 2000);
    th_close_fds(&srv);
    if (strstr(log, "process-group kill only")) {
        free(log);
        cr_skip_test("no cgroup v2 to create cgroups in (the server said: process-group "
                     "kill only): a setsid child escapes by design there");
    }
    free(log);
    cr_assert(gone, "setsid child %d survived the disconnect", (int)child);
}

/* Issue 13 item 8: 5,000 arguments are refused, not run as the first 4,094. */
Test(exec_safety, five_thousand_arguments_are_refused_not_cut_short)
{
    struct th_proc srv;
    char port[8];
    serve(&srv, port, (char *[]){"exec", "--key-file", keyf, NULL});
    char mark[256];
    snprintf(mark, sizeof mark, "%s/ran", dir);
    enum { ARGS = 5000 };
    char **argv = calloc(ARGS + 16, sizeof *argv);
    int n = 0;
    argv[n++] = (char *)th_sockstack();
    argv[n++] = "exec";
    argv[n++] = "127.0.0.1";
    argv[n++] = port;
    argv[n++] = "--key-file";
    argv[n++] = keyf;
    argv[n++] = "--";
    argv[n++] = "touch";
    argv[n++] = mark;
    while (n < 7 + ARGS)
        argv[n++] = mark;
    argv[n] = NULL;
    struct result r;
    run_argv(argv, NULL, 0, 20000, &r, NULL);
    free(argv);
    cr_assert_eq(r.status, 126, "%s", r.err);
    cr_assert(strstr(r.err, "refused: 5000 arguments; the limit is 4095") != NULL, "%s", r.err);
    result_free(&r);
    cr_assert_neq(access(mark, F_OK), 0, "a cut-short command ran");
    stop(&srv);
}
