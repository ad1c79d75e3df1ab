/* End to end: the authenticated echo (python3 tutorial client), our clients
 * against an impostor server, exec, the tutorial compat mode, and files. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "harness.h"
#include "prun.h"

TestSuite(proto_apps, .init = prun_setup, .fini = prun_teardown, .timeout = 120);

/* ---- authenticated echo: the tutorial's python client ------------------- */

static const char tutorial_client[] =
    "import socket, hmac, sys\n"
    "port, keyfile = int(sys.argv[1]), sys.argv[2]\n"
    "key = open(keyfile, 'rb').readline().rstrip(b'\\n')\n"
    "s = socket.create_connection(('127.0.0.1', port))\n"
    "challenge = b''\n"
    "while len(challenge) < 32:\n"
    "    challenge += s.recv(32 - len(challenge))\n"
    "s.sendall(hmac.new(key, challenge, 'sha256').digest())\n"
    "for msg in [b'hello', b'Mixed Case 123']:\n"
    "    s.sendall(msg)\n"
    "    got = b''\n"
    "    while len(got) < len(msg):\n"
    "        d = s.recv(1024)\n"
    "        if not d: break\n"
    "        got += d\n"
    "    print(got.decode())\n";

Test(proto_apps, python_tutorial_client_gets_upper_case_with_the_right_key)
{
    struct th_proc srv;
    char port[8];
    serve(&srv, port, (char *[]){"echo", "--upper", "--key-file", keyf, NULL});
    struct result r;
    python(&r, tutorial_client, port, keyf);
    cr_assert_eq(r.status, 0, "python: %s", r.err);
    cr_assert_str_eq(r.out, "HELLO\nMIXED CASE 123\n");
    result_free(&r);
    stop(&srv);
}

static const char wrong_key_client[] =
    "import socket, hmac, sys\n"
    "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
    "challenge = b''\n"
    "while len(challenge) < 32:\n"
    "    challenge += s.recv(32 - len(challenge))\n"
    "s.sendall(hmac.new(b'not the key', challenge, 'sha256').digest())\n"
    "s.settimeout(10)\n"
    "try:\n"
    "    s.sendall(b'hello')\n"
    "    print('got %r' % s.recv(1024))\n"
    "except ConnectionResetError:\n"
    "    print(\"got b''\")\n";

Test(proto_apps, wrong_key_gets_a_closed_connection_and_nothing_else)
{
    struct th_proc srv;
    char port[8];
    serve(&srv, port, (char *[]){"echo", "--upper", "--key-file", keyf, NULL});
    struct result r;
    python(&r, wrong_key_client, port, NULL);
    cr_assert_eq(r.status, 0, "python: %s", r.err);
    cr_assert_str_eq(r.out, "got b''\n");
    result_free(&r);
    stop_status(&srv);
    char *log = read_text(srv.err, 2000);
    cr_assert(strstr(log, "authentication failed from 127.0.0.1:") != NULL, "log: %s", log);
    free(log);
    th_close_fds(&srv);
}

Test(proto_apps, key_file_readable_by_others_is_refused)
{
    chmod(keyf, 0644);
    struct result r;
    run_cli(&r, 10000, "serve", "echo", "--key-file", keyf, "--port", "0", NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "readable or writable by group or others") != NULL, "%s", r.err);
    result_free(&r);
    /* Issue 13 item 7: writable by group or others, each alone. */
    const mode_t modes[] = {0620, 0602, 0622};
    for (size_t i = 0; i < 3; i++) {
        chmod(keyf, modes[i]);
        run_cli(&r, 10000, "serve", "echo", "--key-file", keyf, "--port", "0", NULL);
        cr_assert_eq(r.status, 1, "mode %04o", (unsigned)modes[i]);
        char want[600];
        snprintf(want, sizeof want, "%s: key file is readable or writable by group or others; "
                 "run 'chmod 600 %s'", keyf, keyf);
        cr_assert(strstr(r.err, want) != NULL, "mode %04o: %s", (unsigned)modes[i], r.err);
        result_free(&r);
    }
}

/* ---- an impostor server ---------------------------------------------------- */

Test(proto_apps, impostor_server_is_detected_and_gets_no_command)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    cr_assert_eq(bind(ls, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(ls, 1), 0);
    getsockname(ls, (struct sockaddr *)&a, &al);
    char port[8];
    snprintf(port, sizeof port, "%d", ntohs(a.sin_port));

    struct th_proc cl;
    char *argv[] = {(char *)th_sockstack(), "exec", "127.0.0.1", port, "--key-file", keyf,
                    "--", "echo secret-command", NULL};
    cr_assert_eq(th_spawn(&cl, argv), 0);
    int c = accept(ls, NULL, NULL);
    cr_assert_geq(c, 0);
    /* The impostor does not know the key: a challenge, then a guess. */
    uint8_t ch[32] = "impostor challenge 0123456789ab", got[256];
    cr_assert_eq(write(c, ch, 32), 32);
    size_t n = 0;
    while (n < 64) {
        ssize_t r = read(c, got + n, 64 - n);
        cr_assert_gt(r, 0);
        n += (size_t)r;
    }
    uint8_t guess[32] = {0};
    cr_assert_eq(write(c, guess, 32), 32);
    /* Nothing more may come: the client must hang up without the command. */
    struct pollfd pf = {c, POLLIN, 0};
    cr_assert_gt(poll(&pf, 1, 10000), 0);
    cr_assert_eq(read(c, got, sizeof got), 0, "the client sent more after a bad proof");
    int st = th_wait(&cl, 10000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 255);
    char *err = read_text(cl.err, 2000);
    cr_assert(strstr(err, "did not prove it knows the key") != NULL, "%s", err);
    free(err);
    th_close_fds(&cl);
    close(c);
    close(ls);
}

/* ---- exec --------------------------------------------------------------- */

static void exec_cmd(struct result *r, const char *port, const char *in, char *const cmd[],
                     EVP_MD_CTX *sha)
{
    char *argv[32];
    int n = 0;
    argv[n++] = (char *)th_sockstack();
    argv[n++] = "exec";
    argv[n++] = "127.0.0.1";
    argv[n++] = (char *)port;
    argv[n++] = "--key-file";
    argv[n++] = keyf;
    argv[n++] = "--";
    for (int i = 0; cmd[i]; i++)
        argv[n++] = cmd[i];
    argv[n] = NULL;
    run_argv(argv, in ? in : "", in ? strlen(in) : 0, 60000, r, sha);
}

Test(proto_apps, exec_exit_codes_signals_stdin_and_both_streams)
{
    struct th_proc srv;
    char port[8];
    serve(&srv, port, (char *[]){"exec", "--key-file", keyf, NULL});
    struct result r;
    exec_cmd(&r, port, NULL, (char *[]){"echo out; echo err >&2; exit 3", NULL}, NULL);
    cr_assert_eq(r.status, 3);
    cr_assert_str_eq(r.out, "out\n");
    cr_assert_str_eq(r.err, "err\n");
    result_free(&r);
    exec_cmd(&r, port, NULL, (char *[]){"kill -TERM $$", NULL}, NULL);
    cr_assert_eq(r.status, 128 + SIGTERM);
    result_free(&r);
    /* Several words: run directly, no shell ($HOME stays literal). */
    exec_cmd(&r, port, NULL, (char *[]){"printf", "%s|", "a b", "$HOME", NULL}, NULL);
    cr_assert_eq(r.status, 0);
    cr_assert_str_eq(r.out, "a b|$HOME|");
    result_free(&r);
    /* Stdin forwarded, EOF included (wc would wait forever otherwise). */
    exec_cmd(&r, port, "one\ntwo\nthree\n", (char *[]){"wc", "-l", NULL}, NULL);
    cr_assert_eq(r.status, 0);
    cr_assert_str_eq(r.out, "3\n");
    result_free(&r);
    exec_cmd(&r, port, NULL, (char *[]){"/nonexistent/prog", "x", NULL}, NULL);
    cr_assert_eq(r.status, 127);
    cr_assert(strstr(r.err, "cannot run /nonexistent/prog") != NULL, "%s", r.err);
    result_free(&r);
    stop(&srv);
}

Test(proto_apps, exec_100_mib_output_arrives_complete_and_in_order)
{
    struct th_proc srv;
    char port[8];
    serve(&srv, port, (char *[]){"exec", "--key-file", keyf, NULL});
    /* 11650845 lines of 9 bytes: 104857605 bytes, every line different. */
    const char *gen = "seq 10000000 21650844";
    EVP_MD_CTX *want = EVP_MD_CTX_new(), *got = EVP_MD_CTX_new();
    EVP_DigestInit_ex(want, EVP_sha256(), NULL);
    EVP_DigestInit_ex(got, EVP_sha256(), NULL);
    struct result local, r;
    run_argv((char *[]){"sh", "-c", (char *)gen, NULL}, NULL, 0, 60000, &local, want);
    exec_cmd(&r, port, NULL, (char *[]){(char *)gen, NULL}, got);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_eq(r.out_len, 104857605);
    cr_assert_eq(local.out_len, r.out_len);
    uint8_t a[32], b[32];
    unsigned al = 32, bl = 32;
    EVP_DigestFinal_ex(want, a, &al);
    EVP_DigestFinal_ex(got, b, &bl);
    cr_assert_eq(memcmp(a, b, 32), 0, "output differs (order or content)");
    EVP_MD_CTX_free(want);
    EVP_MD_CTX_free(got);
    result_free(&local);
    result_free(&r);
    stop(&srv);
}

Test(proto_apps, client_disconnect_kills_the_whole_process_group)
{
    struct th_proc srv;
    char port[8];
    serve(&srv, port, (char *[]){"exec", "--key-file", keyf, NULL});
    struct th_proc cl;
    char *argv[] = {(char *)th_sockstack(), "exec", "127.0.0.1", port, "--key-file", keyf,
                    "--", "sleep 300 & echo $$ $!; wait", NULL};
    cr_assert_eq(th_spawn(&cl, argv), 0);
    char line[64] = {0};
    size_t n = 0;
    struct pollfd pf = {cl.out, POLLIN, 0};
    while (!strchr(line, '\n') && poll(&pf, 1, 10000) > 0 && n < sizeof line - 1) {
        ssize_t r = read(cl.out, line + n, sizeof line - 1 - n);
        cr_assert_gt(r, 0);
        n += (size_t)r;
    }
    int sh = 0, bg = 0;
    cr_assert_eq(sscanf(line, "%d %d", &sh, &bg), 2, "got '%s'", line);
    cr_assert_eq(kill(bg, 0), 0, "the background child runs");
    th_stop(&cl, SIGKILL, 5000);
    th_close_fds(&cl);
    cr_assert(gone_within(sh, 10000), "shell %d survived the disconnect", sh);
    cr_assert(gone_within(bg, 10000), "its child %d survived the disconnect", bg);
    stop(&srv);
}

Test(proto_apps, exec_timeout_kills_the_group_and_reports_it)
{
    struct th_proc srv;
    char port[8];
    serve(&srv, port, (char *[]){"exec", "--key-file", keyf, "--timeout", "1", NULL});
    struct result r;
    exec_cmd(&r, port, NULL, (char *[]){"sleep 60", NULL}, NULL);
    cr_assert_eq(r.status, 128 + SIGKILL);
    cr_assert(strstr(r.err, "timed out") != NULL, "%s", r.err);
    result_free(&r);
    stop(&srv);
}

/* ---- --compat tutorial ------------------------------------------------------ */

static const char compat_client[] =
    "import socket, struct, sys\n"
    "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
    "def recvall(n):\n"
    "    b = b''\n"
    "    while len(b) < n:\n"
    "        d = s.recv(n - len(b))\n"
    "        if not d: raise SystemExit('closed')\n"
    "        b += d\n"
    "    return b\n"
    "for cmd in ['echo hello', 'echo out; echo oops >&2', 'true']:\n"
    "    s.sendall(struct.pack('i', len(cmd)) + cmd.encode())\n"
    "    length = struct.unpack('i', recvall(4))[0]\n"
    "    print(repr(recvall(length)))\n";

Test(proto_apps, compat_tutorial_serves_the_python_client)
{
    struct th_proc srv;
    char port[8];
    serve(&srv, port, (char *[]){"exec", "--compat", "tutorial", NULL});
    struct result r;
    python(&r, compat_client, port, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "b'hello\\n'\nb'oops\\n'\nb''\n");
    result_free(&r);
    stop(&srv);
}

Test(proto_apps, compat_tutorial_refuses_a_non_loopback_bind)
{
    struct result r;
    run_cli(&r, 10000, "serve", "exec", "--compat", "tutorial", "--bind", "0.0.0.0",
            "--port", "0", NULL);
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "no authentication") && strstr(r.err, "loopback"), "%s", r.err);
    result_free(&r);
    run_cli(&r, 10000, "serve", "exec", "--compat", "tutorial", "--port", "0", NULL);
    cr_assert_eq(r.status, 2, "the wildcard address is refused too");
    result_free(&r);
}

/* ---- handshake timeout and slowing down ----------------------------------- */

static const char silent_then_wrong[] =
    "import socket, hmac, sys\n"
    "port = int(sys.argv[1])\n"
    "s = socket.create_connection(('127.0.0.1', port))\n"
    "ch = b''\n"
    "while len(ch) < 32:\n"
    "    ch += s.recv(32 - len(ch))\n"
    "s.settimeout(20)\n"
    "print('silent peer got %r' % s.recv(100))\n"   /* closed by the timeout */
    "s = socket.create_connection(('127.0.0.1', port))\n"
    "ch = b''\n"
    "while len(ch) < 32:\n"
    "    ch += s.recv(32 - len(ch))\n"
    "print('second challenge %d bytes' % len(ch))\n";

Test(proto_apps, handshake_timeout_closes_and_repeat_failures_are_delayed)
{
    struct th_proc srv;
    char port[8];
    serve(&srv, port, (char *[]){"echo", "--key-file", keyf, "--auth-timeout", "0.5",
                                 "--verbose", NULL});
    struct result r;
    python(&r, silent_then_wrong, port, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "silent peer got b''\nsecond challenge 32 bytes\n");
    result_free(&r);
    stop_status(&srv);
    char *log = read_text(srv.err, 2000);
    cr_assert(strstr(log, "authentication failed from 127.0.0.1:") &&
              strstr(log, "no answer within the handshake timeout"), "%s", log);
    cr_assert(strstr(log, "failed recently: challenge delayed") != NULL,
              "the second attempt was slowed down: %s", log);
    free(log);
    th_close_fds(&srv);
}

/* ---- many commands at once --------------------------------------------------- */

Test(proto_apps, many_concurrent_commands)
{
    struct th_proc srv;
    char port[8];
    serve(&srv, port, (char *[]){"exec", "--key-file", keyf, NULL});
    enum { N = 24 };
    struct th_proc cl[N];
    for (int i = 0; i < N; i++) {
        char cmd[64];
        snprintf(cmd, sizeof cmd, "sleep 0.3; echo job %d", i);
        char *argv[] = {(char *)th_sockstack(), "exec", "127.0.0.1", port, "--key-file", keyf,
                        "-n", "--", cmd, NULL};
        cr_assert_eq(th_spawn(&cl[i], argv), 0);
    }
    for (int i = 0; i < N; i++) {
        char *out;
        ssize_t n = th_read_all(cl[i].out, &out, 30000);
        char want[32];
        int wl = snprintf(want, sizeof want, "job %d\n", i);
        bool ok = n == wl && !memcmp(out, want, (size_t)wl);
        free(out);
        cr_assert(ok, "job %d: wrong output (%zd bytes)", i, n);
        int st = th_wait(&cl[i], 10000);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        th_close_fds(&cl[i]);
    }
    stop(&srv);
}

/* ---- the documented mutual exchange, from python; an oversized frame ------- */

static const char mutual_client[] =
    "import socket, hmac, os, sys\n"
    "key = open(sys.argv[2], 'rb').readline().rstrip(b'\\n')\n"
    "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
    "def recvall(n):\n"
    "    b = b''\n"
    "    while len(b) < n:\n"
    "        d = s.recv(n - len(b))\n"
    "        if not d: raise SystemExit('closed after %d bytes' % len(b))\n"
    "        b += d\n"
    "    return b\n"
    "cs = recvall(32)\n"
    "cc = os.urandom(32)\n"
    "s.sendall(hmac.new(key, cs, 'sha256').digest() + cc)\n"
    "proof = recvall(32)\n"
    "want = hmac.new(key, b'sockstack-auth-v1 server' + cs + cc, 'sha256').digest()\n"
    "print('proof ok' if hmac.compare_digest(proof, want) else 'proof BAD')\n"
    "s.sendall(b'\\x00\\x10\\x00\\x01')\n"   /* 1 MiB + 1: above exec's maximum */
    "s.settimeout(10)\n"
    "print('after oversized: %r' % s.recv(100))\n";

Test(proto_apps, documented_mutual_exchange_and_oversized_frame_closes_with_a_reason)
{
    struct th_proc srv;
    char port[8];
    serve(&srv, port, (char *[]){"exec", "--key-file", keyf, NULL});
    struct result r;
    python(&r, mutual_client, port, keyf);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "proof ok\nafter oversized: b''\n");
    result_free(&r);
    stop_status(&srv);
    char *log = read_text(srv.err, 2000);
    cr_assert(strstr(log, "closing: message length exceeds the configured maximum") != NULL,
              "%s", log);
    free(log);
    th_close_fds(&srv);
}
