/* End to end: the handshake throttle against guessers (issue 13 item 6):
 * under the fork model, and from rotating source addresses. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"
#include "prun.h"

TestSuite(auth_safety, .init = prun_setup, .fini = prun_teardown, .timeout = 120);

/* argv: port, count, rotate (1: connection i comes from 127.0.i.1).
 * Each connection reads the challenge and answers 32 zero bytes. */
static const char guesser[] =
    "import socket, sys\n"
    "port, n, rotate = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == '1'\n"
    "for i in range(1, n + 1):\n"
    "    src = ('127.0.%d.1' % i, 0) if rotate else None\n"
    "    s = socket.create_connection(('127.0.0.1', port), source_address=src)\n"
    "    s.settimeout(20)\n"
    "    ch = b''\n"
    "    while len(ch) < 32:\n"
    "        d = s.recv(32 - len(ch))\n"
    "        if not d: raise SystemExit('closed before the challenge')\n"
    "        ch += d\n"
    "    s.sendall(bytes(32))\n"
    "    try: got = s.recv(100)\n"
    "    except ConnectionResetError: got = b''\n"
    "    print('guess %d: %r' % (i, got))\n"
    "    s.close()\n";

/* Run the guesser against `serve echo --model fork`; its log (free it). */
static char *guess(const char *n, bool rotate, const char *want_out)
{
    struct th_proc srv;
    char p[8];
    serve(&srv, p, (char *[]){"echo", "--key-file", keyf, "--model", "fork", "--verbose",
                              NULL});
    struct result r;
    char *argv[] = {"python3", "-c", (char *)guesser, p, (char *)n, rotate ? "1" : "0", NULL};
    run_argv(argv, NULL, 0, 60000, &r, NULL);
    stop_status(&srv);
    char *log = read_text(srv.err, 2000);
    th_close_fds(&srv);
    bool ok = r.status == 0 && !strcmp(r.out, want_out);
    char msg[512];
    snprintf(msg, sizeof msg, "%.200s / %.200s", r.out, r.err);
    result_free(&r);
    if (!ok)
        free(log);
    cr_assert(ok, "guesser: %s", msg);
    return log;
}

/* Under --model fork each failure was recorded in the child that saw it
 * and lost with it: no delay ever. */
Test(auth_safety, fork_model_slows_down_an_address_that_failed)
{
    char *log = guess("2", false, "guess 1: b''\nguess 2: b''\n");
    bool failed = strstr(log, "authentication failed from 127.0.0.1:") &&
                  strstr(log, "(failure 2 from this address)");
    bool delayed = strstr(log, "failed recently: challenge delayed") != NULL;
    char *copy = strdup(log);
    free(log);
    cr_assert(failed, "%s", copy);
    cr_assert(delayed, "the second attempt was not slowed down: %s", copy);
    free(copy);
}

/* Nine guesses, each from a new address of 127.0.0.0/8: after
 * SS_AUTH_THROTTLE_KEY_FREE (8) failures with the key, the ninth waits
 * although its address never failed. */
Test(auth_safety, rotating_source_addresses_do_not_escape_the_throttle)
{
    char want[512] = "";
    for (int i = 1; i <= 9; i++) {
        char l[32];
        snprintf(l, sizeof l, "guess %d: b''\n", i);
        strcat(want, l);
    }
    char *log = guess("9", true, want);
    char *ninth = strstr(log, "127.0.9.1:");
    bool delayed = ninth && strstr(ninth, ": challenge delayed ") &&
                   strstr(ninth, "ms: 8 recent failures with this key from any address");
    bool each_first = strstr(log, "(failure 1 from this address)") &&
                      !strstr(log, "(failure 2 from this address)");
    char *copy = strdup(log);
    free(log);
    cr_assert(each_first, "every address failed once: %s", copy);
    cr_assert(delayed, "the ninth address was not slowed down: %s", copy);
    free(copy);
}
