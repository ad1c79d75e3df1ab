/* End to end: `sockstack serve chat` with real clients — our client in line
 * mode, python3's socket module (tests/chat/pyclient.py), nc, and raw
 * sockets from this file. Every check waits for exact text with a timeout;
 * nothing sleeps as synchronisation where a line can be waited for. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "harness.h"
#include "stream.h"

#include "fixture.h"

/* ---- helpers ------------------------------------------------------------ */

TestSuite(chat_e2e, .init = fx_setup, .fini = fx_teardown, .timeout = 60);

/* The server with up to two extra arguments (NULL: none). */
static int start_server(struct th_proc **out, int port, const char *extra1,
                        const char *extra2)
{
    const char *extra[] = {extra1, extra2, NULL};
    return fx_server(out, port, extra1 ? extra : NULL);
}

/* Our client in line mode. */
static struct th_proc *our_client(int port, const char *nick, struct stream *s,
                                  const char *extra1, const char *extra2)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct th_proc p;
    cr_assert_eq(th_spawn_cli(&p, "chat", "127.0.0.1", portstr, "--name", nick,
                              "--dir", dir, extra1, extra2, NULL), 0);
    struct th_proc *t = track(p);
    stream_init(s, t->out);
    return t;
}

static struct th_proc *py_client(int port, struct stream *s)
{
    char portstr[16], script[512];
    snprintf(portstr, sizeof portstr, "%d", port);
    const char *root = getenv("SS_SOURCE_ROOT");
    snprintf(script, sizeof script, "%s/tests/chat/pyclient.py", root ? root : ".");
    char *argv[] = {"/usr/bin/python3", script, "127.0.0.1", portstr, NULL};
    struct th_proc p;
    cr_assert_eq(th_spawn(&p, argv), 0);
    struct th_proc *t = track(p);
    stream_init(s, t->out);
    return t;
}

static struct th_proc *nc_client(int port, struct stream *s)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    char *argv[] = {"nc", "127.0.0.1", portstr, NULL};
    struct th_proc p;
    cr_assert_eq(th_spawn(&p, argv), 0);
    struct th_proc *t = track(p);
    stream_init(s, t->out);
    return t;
}

/* ---- tests -------------------------------------------------------------- */

Test(chat_e2e, three_clients_nicknames_public_private_who_presence)
{
    struct th_proc *srv;
    int port = start_server(&srv, 0, NULL, NULL);
    static struct stream a, b, c;
    struct th_proc *alice = our_client(port, "alice", &a, NULL, NULL);
    EXPECT(&a, "-- you are alice (1 online)\n");
    struct th_proc *bob = py_client(port, &b);
    EXPECT(&b, "INFO welcome to lobby");
    put(bob->in, "/nick ALICE\n");
    EXPECT(&b, "ERR nicktaken ALICE is online\n");
    put(bob->in, "/nick bob\n");
    EXPECT(&b, "OK nick bob 2\n");
    EXPECT(&a, "-- bob joined (2 online)\n");
    struct th_proc *carol = nc_client(port, &c);
    put(carol->in, "/nick carol\n");
    EXPECT(&c, "OK nick carol 3\n");
    EXPECT(&b, " carol 3\n"); /* JOIN ts carol 3 */

    /* public: everyone else, with sender and server time */
    put(alice->in, "hello all\n");
    EXPECT(&b, "Z alice hello all\n");
    EXPECT(&c, "Z alice hello all\n");
    cr_assert(strstr(b.buf, "MSG 20"), "%s", b.buf);
    put(carol->in, "/me waves\n");
    EXPECT(&a, "* carol waves\n");
    EXPECT(&b, "Z carol waves\n");

    /* private: only the addressee */
    put(bob->in, "/msg alice just for you\n");
    EXPECT(&b, "OK msg alice\n");
    EXPECT(&a, "*bob* just for you\n");
    put(carol->in, "/who\n");
    EXPECT(&c, "OK who 3 0\n");
    cr_assert(strstr(c.buf, "WHO alice online\n") && strstr(c.buf, "WHO bob online\n"),
              "%s", c.buf);
    cr_assert_eq(count(&c, "just for you"), 0);

    /* leave is a presence event; /who then shows last-seen */
    put(bob->in, "/quit\n");
    EXPECT(&b, "BYE");
    EXPECT(&a, "-- bob left (2 online)\n");
    EXPECT(&c, " bob 2\n");
    put(carol->in, "/who\n");
    EXPECT(&c, "WHO bob offline 20");
    EXPECT(&c, "OK who 2 1\n");
}

Test(chat_e2e, split_writes_are_one_message_and_one_write_many_messages)
{
    struct th_proc *srv;
    int port = start_server(&srv, 0, NULL, NULL);
    static struct stream a, b;
    our_client(port, "alice", &a, NULL, NULL);
    EXPECT(&a, "-- you are alice");
    struct th_proc *bob = py_client(port, &b);
    put(bob->in, "/nick bob\n");
    EXPECT(&b, "OK nick bob 2\n");
    /* 26 bytes, one send() each, 5 ms apart: one message with one prefix. */
    put(bob->in, "SPLIT split across writes!\n");
    EXPECT(&b, "OK sent 1\n");
    EXPECT(&a, "<bob> split across writes!\n");
    cr_assert_eq(count(&a, "<bob>"), 1, "%s", a.buf);
    /* Three lines (LF, CRLF, LF) in one sendall: three messages. */
    put(bob->in, "RAW one\\ntwo\\r\\nthree\\n\n");
    EXPECT(&a, "<bob> one\n");
    EXPECT(&a, "<bob> two\n");
    EXPECT(&a, "<bob> three\n");
    cr_assert_eq(count(&a, "<bob>"), 4, "%s", a.buf);
}

Test(chat_e2e, overlong_line_and_invalid_utf8_refused_connection_stays_usable)
{
    struct th_proc *srv;
    int port = start_server(&srv, 0, NULL, NULL);
    static struct stream a, r;
    our_client(port, "alice", &a, NULL, NULL);
    EXPECT(&a, "-- you are alice");
    int fd = fx_raw(port, 0);
    stream_init(&r, fd);
    put(fd, "/nick raw\n");
    EXPECT(&r, "OK nick raw 2\n");
    static char big[10001];
    memset(big, 'x', 10000);
    big[10000] = '\n';
    cr_assert_eq(write(fd, big, sizeof big), (ssize_t)sizeof big);
    EXPECT(&r, "ERR toolong lines are limited to 4096 bytes\n");
    put(fd, "bad \xff\xfe bytes\n");
    EXPECT(&r, "ERR utf8 line is not valid UTF-8 text\n");
    put(fd, "still usable \xe2\x9c\x93\n");
    EXPECT(&r, "OK sent 1\n");
    EXPECT(&a, "<raw> still usable \xe2\x9c\x93\n");
    cr_assert_eq(count(&a, "xxxx"), 0);
    cr_assert_eq(count(&a, "bad"), 0);
    close(fd);

    /* a client that half-closes right after its last line (nc -N) still
     * gets every reply, and that last line needs no LF */
    static struct stream h;
    int hc = fx_raw(port, 0);
    stream_init(&h, hc);
    put(hc, "/nick half\n/who\nlast words");
    cr_assert_eq(shutdown(hc, SHUT_WR), 0);
    EXPECT(&h, "OK nick half 2\n");
    EXPECT(&h, "OK who 2 1\n");
    EXPECT(&h, "OK sent 2\n");
    while (!h.eof)
        pump(&h, 1000);
    EXPECT(&a, "<half> last words\n");
    close(hc);
}

Test(chat_e2e, offline_messages_after_reconnect_and_after_sigkill_restart)
{
    struct th_proc *srv;
    int port = start_server(&srv, 0, NULL, NULL);
    static struct stream a, b1, b2, b3;
    struct th_proc *alice = our_client(port, "alice", &a, "--no-reconnect", NULL);
    EXPECT(&a, "-- you are alice");
    struct th_proc *bob = our_client(port, "bob", &b1, NULL, NULL);
    EXPECT(&b1, "-- you are bob");
    put(bob->in, "/register pw1234\n");
    EXPECT(&b1, "-- registered bob");
    put(bob->in, "/quit\n");
    EXPECT(&a, "-- bob left");
    put(alice->in, "/msg bob first while away\n");
    EXPECT(&a, "-- bob is offline; message stored\n");
    put(alice->in, "/msg bob second while away\n");
    EXPECT(&a, "-- bob is offline; message stored\n");
    put(alice->in, "public before the crash\n");
    /* our client does not print OK sent; a /history round trip orders it */
    put(alice->in, "/history 1\n");
    EXPECT(&a, "<alice> public before the crash\n");

    /* reconnect: delivered in order */
    bob = our_client(port, "bob", &b2, "--password", "pw1234");
    EXPECT(&b2, "*alice* first while away (while you were away)\n");
    EXPECT(&b2, "*alice* second while away (while you were away)\n");
    put(bob->in, "/quit\n");
    EXPECT(&a, "-- bob left");
    put(alice->in, "/msg bob third, then the server dies\n");
    EXPECT(&a, "-- bob is offline; message stored\n");

    /* SIGKILL: no chance to flush anything; then restart on the same db */
    cr_assert_neq(th_stop(srv, SIGKILL, 5000), -1);
    EXPECT(&a, "!! server closed the connection");
    port = start_server(&srv, 0, NULL, NULL);
    our_client(port, "bob", &b3, "--password", "pw1234");
    EXPECT(&b3, "<alice> public before the crash\n"); /* history on join */
    EXPECT(&b3, "*alice* third, then the server dies (while you were away)\n");
    cr_assert_eq(count(&b3, "first while away"), 0); /* delivered once only */
}

Test(chat_e2e, registered_nickname_cannot_be_taken)
{
    struct th_proc *srv;
    int port = start_server(&srv, 0, NULL, NULL);
    static struct stream a, m, a2;
    struct th_proc *alice = our_client(port, "alice", &a, NULL, NULL);
    EXPECT(&a, "-- you are alice");
    put(alice->in, "/register s3cret\n");
    EXPECT(&a, "-- registered alice");
    put(alice->in, "/quit\n");
    EXPECT(&a, "-- server: see you");
    struct th_proc *mallory = py_client(port, &m);
    put(mallory->in, "/nick alice\n");
    EXPECT(&m, "ERR registered alice is registered: /login alice PASSWORD\n");
    put(mallory->in, "/login alice guess\n");
    EXPECT(&m, "ERR auth wrong nickname or password\n");
    put(mallory->in, "hello?\n");
    EXPECT(&m, "ERR nonick");
    our_client(port, "alice", &a2, "--password", "s3cret");
    EXPECT(&a2, "-- logged in as alice");
    EXPECT(&a2, "-- you are alice");
}

Test(chat_e2e, file_sent_between_two_clients_sha256_equal)
{
    struct th_proc *srv;
    int port = start_server(&srv, 0, NULL, NULL);
    /* 300 kB of random bytes: every byte value, \0 and \n included. */
    char src[256], cmd[600];
    snprintf(src, sizeof src, "%s/src/payload.bin", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p %s/src && head -c 300000 /dev/urandom > %s", dir, src);
    cr_assert_eq(system(cmd), 0);
    static struct stream a, b;
    struct th_proc *alice = our_client(port, "alice", &a, NULL, NULL);
    EXPECT(&a, "-- you are alice");
    struct th_proc *bob = our_client(port, "bob", &b, NULL, NULL);
    EXPECT(&b, "-- you are bob");
    char line[400];
    snprintf(line, sizeof line, "/send bob %s\n", src);
    put(alice->in, line);
    EXPECT(&a, "-- offering payload.bin (300000 bytes, SHA-256 ");
    EXPECT(&a, "-- file 1 uploaded (offered)\n");
    EXPECT(&b, "-- alice offers payload.bin (300000 bytes, SHA-256 ");
    EXPECT(&b, ": /accept 1 or /decline 1\n");
    put(bob->in, "/accept 1\n");
    EXPECT(&b, "-- receiving payload.bin (300000 bytes)\n");
    char done[300];
    snprintf(done, sizeof done, "-- received file 1, SHA-256 verified: %s/payload.bin\n", dir);
    EXPECT(&b, done);
    EXPECT(&a, "-- bob accepted file 1\n");
    snprintf(cmd, sizeof cmd, "cmp %s %s/payload.bin", src, dir);
    cr_assert_eq(system(cmd), 0);
    /* no temporary file left behind */
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A %s | grep part)\"", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(chat_e2e, file_offer_to_offline_user_survives_restart_then_accepted)
{
    struct th_proc *srv;
    int port = start_server(&srv, 0, NULL, NULL);
    char src[256], cmd[600];
    snprintf(src, sizeof src, "%s/src/notes.bin", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p %s/src && head -c 50000 /dev/urandom > %s", dir, src);
    cr_assert_eq(system(cmd), 0);
    static struct stream b1, a, b2;
    struct th_proc *bob = our_client(port, "bob", &b1, NULL, NULL);
    EXPECT(&b1, "-- you are bob");
    put(bob->in, "/register pw1234\n");
    EXPECT(&b1, "-- registered bob");
    put(bob->in, "/quit\n");
    EXPECT(&b1, "-- server: see you");
    struct th_proc *alice = our_client(port, "alice", &a, "--no-reconnect", NULL);
    EXPECT(&a, "-- you are alice");
    char line[400];
    snprintf(line, sizeof line, "/send bob %s\n", src);
    put(alice->in, line);
    EXPECT(&a, "-- file 1 uploaded (stored)\n");
    cr_assert_neq(th_stop(srv, SIGKILL, 5000), -1);
    port = start_server(&srv, 0, NULL, NULL);
    bob = our_client(port, "bob", &b2, "--password", "pw1234");
    EXPECT(&b2, "-- alice offers notes.bin (50000 bytes, SHA-256 ");
    put(bob->in, "/accept 1\n");
    char done[300];
    snprintf(done, sizeof done, "-- received file 1, SHA-256 verified: %s/notes.bin\n", dir);
    EXPECT(&b2, done);
    snprintf(cmd, sizeof cmd, "cmp %s %s/notes.bin", src, dir);
    cr_assert_eq(system(cmd), 0);
}

Test(chat_e2e, client_that_stops_reading_is_disconnected_others_keep_receiving)
{
    struct th_proc *srv;
    int port = start_server(&srv, 0, "--stall-timeout", "1500");
    static struct stream a, c, s;
    int alice = fx_raw(port, 0), carol = fx_raw(port, 0);
    stream_init(&a, alice);
    stream_init(&c, carol);
    put(alice, "/nick alice\n");
    EXPECT(&a, "OK nick alice 1\n");
    int stuck = fx_raw(port, 4096);
    put(stuck, "/nick stuck\n");
    EXPECT(&a, " stuck 2\n");
    put(carol, "/nick carol\n");
    EXPECT(&c, "OK nick carol 3\n");
    /* alice sends 2000 lines of 1000 bytes (2 MB), 20 at a time, each batch
     * after the server acknowledged the last one; carol keeps reading, stuck
     * never does: 2 MB is far more than its socket buffers and its queue.
     * Alice is held while stuck is behind, until stuck is cut off (1.5 s
     * without reading progress); nobody else is disconnected. */
    enum { LINES = 2000, BATCH = 20 };
    static char line[1100];
    for (int i = 0; i < LINES; i += BATCH) {
        for (int k = i; k < i + BATCH; k++) {
            int n = snprintf(line, sizeof line, "%04d ", k);
            memset(line + n, 'y', 995);
            line[n + 995] = '\n';
            cr_assert_eq(write(alice, line, (size_t)n + 996), n + 996);
        }
        char ack[32];
        snprintf(ack, sizeof ack, "OK sent %d\n", i + BATCH);
        EXPECT(&a, ack);
        pump(&c, 0);
    }
    cr_assert(expect(&c, "Z alice 1999 ", 30000), "carol got %d, eof %d",
              count(&c, "Z alice "), c.eof);
    cr_assert_eq(count(&c, "Z alice "), LINES);
    cr_assert_eq(count(&c, "ERR "), 0);
    cr_assert_eq(count(&a, "ERR "), 0);
    c.pos = 0; /* the LEAVE came somewhere in the middle of the burst */
    EXPECT(&c, " stuck 2\n"); /* LEAVE ts stuck 2 */
    put(carol, "/who\n");
    EXPECT(&c, "WHO stuck offline");
    EXPECT(&c, "OK who 2 1\n");
    /* stuck finally reads: part of the burst, the notice, then the end */
    stream_init(&s, stuck);
    long deadline = now_ms() + 10000;
    while (!s.eof && now_ms() < deadline)
        pump(&s, 100);
    cr_assert(s.eof, "stuck client was not disconnected");
    cr_assert_lt(count(&s, "Z alice "), LINES);
    close(stuck);
    close(carol);
    close(alice);
}

Test(chat_e2e, client_reconnects_with_backoff_and_says_so)
{
    struct th_proc *srv;
    int port = start_server(&srv, 0, NULL, NULL);
    static struct stream a;
    our_client(port, "alice", &a, NULL, NULL);
    EXPECT(&a, "-- you are alice");
    cr_assert_neq(th_stop(srv, SIGTERM, 5000), -1);
    EXPECT(&a, "-- connection lost: server closed the connection; reconnecting in 0.25 s\n");
    EXPECT(&a, "-- cannot connect: Connection refused; reconnecting in 0.50 s\n");
    start_server(&srv, port, NULL, NULL);
    EXPECT(&a, "-- connected to 127.0.0.1:");
    EXPECT(&a, "-- you are alice (1 online)\n");
}

/* ---- the client (issue 11) ---------------------------------------------- */

/* Run `sh -c CMD` with $SS set to the CLI; its exit status. */
static int sh(const char *cmd)
{
    setenv("SS", th_sockstack(), 1);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(chat_e2e, piped_input_is_sent_once_connected_and_the_exit_status_says_so)
{
    struct th_proc *srv;
    int port = start_server(&srv, 0, NULL, NULL);
    static struct stream a;
    int alice = fx_join(port, &a, "alice");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "printf 'hi\\nsecond line\\n' | \"$SS\" chat 127.0.0.1 %d "
             "--name bot > %s/bot.out 2>&1", port, dir);
    cr_assert_eq(sh(cmd), 0);
    EXPECT(&a, " bot hi\n");
    EXPECT(&a, " bot second line\n");
    (void)alice;
    /* Nobody listening: nothing can be sent, and the status says so. */
    snprintf(cmd, sizeof cmd, "printf 'a\\nb\\n' | \"$SS\" chat 127.0.0.1 1 --name bot "
             "> %s/none.out 2>&1", dir);
    cr_assert_eq(sh(cmd), 1);
    snprintf(cmd, sizeof cmd, "grep -q '2 lines not sent' %s/none.out", dir);
    cr_assert_eq(sh(cmd), 0);
}

Test(chat_e2e, own_lines_are_shown_and_control_codes_never_reach_the_terminal)
{
    struct th_proc *srv;
    int port = start_server(&srv, 0, NULL, NULL);
    static struct stream b, a;
    struct th_proc *bob = our_client(port, "bob", &b, "--plain", NULL);
    EXPECT(&b, "-- you are bob");
    int alice = fx_join(port, &a, "alice");
    /* CSI (C1, U+009B) clear-screen, an OSC title (ESC ] ... BEL), DEL. */
    put(alice, "evil \xc2\x9b" "2J \x1b]0;pwned\x07 \x7f done\n");
    EXPECT(&b, "done\n");
    cr_assert_null(memchr(b.buf, 0x1b, b.len));
    cr_assert_null(memchr(b.buf, 0x07, b.len));
    cr_assert_null(memchr(b.buf, 0x7f, b.len));
    cr_assert_null(strstr(b.buf, "\xc2\x9b"));
    cr_assert(strstr(b.buf, "<alice> evil ??2J ?]0;pwned? ? done\n"), "%s", b.buf);
    /* bob's own lines, with a time: public, action, private */
    put(bob->in, "my own words\n/me nods\n/msg alice psst\n");
    EXPECT(&b, "] <bob> my own words\n");
    EXPECT(&b, "] * bob nods\n");
    EXPECT(&b, "] -> *alice* psst\n");
    EXPECT(&a, "PRIV ");
}

Test(chat_e2e, reconnect_continues_history_without_duplicates)
{
    struct th_proc *srv;
    int port = start_server(&srv, 0, NULL, NULL);
    static struct stream b, a1, a2;
    our_client(port, "bob", &b, NULL, NULL);
    EXPECT(&b, "-- you are bob");
    int alice = fx_join(port, &a1, "alice");
    put(alice, "line one\nline two\n");
    EXPECT(&b, "<alice> line two\n");
    close(alice);
    cr_assert_neq(th_stop(srv, SIGKILL, 5000), -1);
    EXPECT(&b, "-- connection lost");
    start_server(&srv, port, NULL, NULL);
    alice = fx_join(port, &a2, "alice");
    put(alice, "line three\n");
    EXPECT(&a2, "OK sent ");
    EXPECT(&b, "<alice> line three\n");
    for (int i = 0; i < 100 && count(&b, "-- you are bob") < 2; i++)
        pump(&b, 100);
    cr_assert_eq(count(&b, "-- you are bob"), 2, "%s", b.buf);
    put(alice, "/who\n");
    EXPECT(&a2, "OK who");
    pump(&b, 500);
    cr_assert_eq(count(&b, "<alice> line one\n"), 1, "%s", b.buf);
    cr_assert_eq(count(&b, "<alice> line two\n"), 1, "%s", b.buf);
    cr_assert_eq(count(&b, "<alice> line three\n"), 1, "%s", b.buf);
    close(alice);
}

/* ---- the server's own file (--room-file) -------------------------------- */

/* Lowercase hex SHA-256 of data. */
static void sha256_hex(const void *data, size_t n, char hex[65])
{
    unsigned char d[32];
    cr_assert_eq(EVP_Digest(data, n, d, NULL, EVP_sha256(), NULL), 1);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

/* After "FILE ..." on s: every CHUNK of file id up to its FILEEND, in
 * order from offset 0, decoded into out (cap bytes). Returns the length. */
static size_t raw_download(struct stream *s, long long id, unsigned char *out, size_t cap)
{
    char end[40];
    snprintf(end, sizeof end, "FILEEND %lld\n", id);
    size_t from = s->pos;
    EXPECT(s, end);
    size_t stop = s->pos - strlen(end), got = 0;
    char prefix[40];
    int plen = snprintf(prefix, sizeof prefix, "CHUNK %lld ", id);
    for (char *l = s->buf + from; l < s->buf + stop;) {
        char *nl = memchr(l, '\n', (size_t)(s->buf + stop - l));
        cr_assert(nl, "unterminated line");
        cr_assert(!strncmp(l, prefix, (size_t)plen), "not a chunk of %lld: %.60s", id, l);
        char *b64 = strchr(l + plen, ' ');
        cr_assert(b64);
        cr_assert_eq(strtoull(l + plen, NULL, 10), got, "chunk out of order");
        b64++;
        size_t blen = (size_t)(nl - b64);
        cr_assert(got + blen / 4 * 3 <= cap + 2);
        unsigned char tmp[4096];
        cr_assert(blen / 4 * 3 <= sizeof tmp);
        int n = EVP_DecodeBlock(tmp, (const unsigned char *)b64, (int)blen);
        cr_assert_geq(n, 0);
        n -= (blen > 0 && b64[blen - 1] == '=') + (blen > 1 && b64[blen - 2] == '=');
        cr_assert_leq(got + (size_t)n, cap);
        memcpy(out + got, tmp, (size_t)n);
        got += (size_t)n;
        l = nl + 1;
    }
    return got;
}

Test(chat_e2e, the_server_offers_its_room_file_to_every_user_and_keeps_it)
{
    enum { SIZE = 100000 };
    char src[256], cmd[600];
    snprintf(src, sizeof src, "%s/src/welcome.bin", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p %s/src %s/b && head -c %d /dev/urandom > %s", dir, dir,
             SIZE, src);
    cr_assert_eq(system(cmd), 0);
    size_t len;
    unsigned char *want = (unsigned char *)th_read_file(src, &len);
    cr_assert_eq(len, SIZE);
    char sha[65], line[300];
    sha256_hex(want, len, sha);
    struct th_proc *srv;
    int port = start_server(&srv, 0, "--room-file", src);

    /* A raw client: the offer right after the join, then the bytes. */
    static struct stream a, b, c, d;
    int alice = fx_join(port, &a, "alice");
    snprintf(line, sizeof line, "1\nOFFER 1 * %d %s welcome.bin\n", SIZE, sha);
    EXPECT(&a, line);
    put(alice, "/accept 1\n");
    snprintf(line, sizeof line, "OK accept 1\nFILE 1 %d %s welcome.bin\n", SIZE, sha);
    EXPECT(&a, line);
    static unsigned char got[SIZE + 4];
    cr_assert_eq(raw_download(&a, 1, got, sizeof got), SIZE);
    char got_sha[65];
    sha256_hex(got, SIZE, got_sha);
    cr_assert_str_eq(got_sha, sha);
    cr_assert_eq(memcmp(got, want, SIZE), 0);

    /* The file stays: our client, joining later, is offered it too. */
    char bdir[200];
    snprintf(bdir, sizeof bdir, "%s/b", dir);
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct th_proc p;
    cr_assert_eq(th_spawn_cli(&p, "chat", "127.0.0.1", portstr, "--name", "bob", "--dir", bdir,
                              NULL), 0);
    struct th_proc *bob = track(p);
    stream_init(&b, bob->out);
    snprintf(line, sizeof line, "-- the server offers welcome.bin (%d bytes, SHA-256 %s): "
             "/accept 1 or /decline 1\n", SIZE, sha);
    EXPECT(&b, line);
    put(bob->in, "/accept 1\n");
    snprintf(line, sizeof line, "-- received file 1, SHA-256 verified: %s/welcome.bin\n", bdir);
    EXPECT(&b, line);
    snprintf(cmd, sizeof cmd, "cmp %s %s/welcome.bin", src, bdir);
    cr_assert_eq(system(cmd), 0);

    /* A decline is for the one who declines: the next user is offered it. */
    int carol = fx_join(port, &c, "carol");
    snprintf(line, sizeof line, "3\nOFFER 1 * %d %s welcome.bin\n", SIZE, sha);
    EXPECT(&c, line);
    put(carol, "/decline 1\n");
    EXPECT(&c, "OK decline 1\n");
    fx_join(port, &d, "dave");
    snprintf(line, sizeof line, "4\nOFFER 1 * %d %s welcome.bin\n", SIZE, sha);
    EXPECT(&d, line);
    /* Nobody's offers are counted against it, and nobody is told ACCEPTED. */
    cr_assert_eq(count(&a, "ACCEPTED"), 0);
    cr_assert_eq(count(&a, "OFFER "), 1);
    free(want);
}

Test(chat_e2e, a_room_file_larger_than_file_max_is_refused_at_start)
{
    char src[256], cmd[600];
    snprintf(src, sizeof src, "%s/big.bin", dir);
    snprintf(cmd, sizeof cmd, "head -c 1001 /dev/zero > %s", src);
    cr_assert_eq(system(cmd), 0);
    const char *args[] = {"serve", "chat", "-b", "127.0.0.1", "--port", "0", "--file-max",
                          "1000", "--room-file", src, NULL};
    struct th_result r = th_run_cli(args, 10000);
    char want[400];
    snprintf(want, sizeof want, "serve chat: --room-file %s: larger than --file-max (1000 "
             "bytes)\n", src);
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert(strstr(r.err, want), "%s", r.err);
    th_result_free(&r);
}

/* ---- /who in words ------------------------------------------------------ */

/* Set nick's last-seen time ago_ms back in the server's store, beside the
 * running server (python3's sqlite3; WAL lets both in). */
static void set_last_seen(const char *nick, long ago_ms)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd,
             "python3 -c \"import sqlite3, time; d = sqlite3.connect('%s/chat.db'); "
             "d.execute('UPDATE users SET last_seen = ? WHERE nick = ?', "
             "(int(time.time() * 1000) - %ld, '%s')); d.commit()\"", dir, ago_ms, nick);
    cr_assert_eq(system(cmd), 0);
}

Test(chat_e2e, who_shows_a_last_seen_time_as_minutes_ago)
{
    struct th_proc *srv;
    int port = start_server(&srv, 0, NULL, NULL);
    static struct stream a, c;
    struct th_proc *alice = our_client(port, "alice", &a, NULL, NULL);
    EXPECT(&a, "-- you are alice");
    int carol = fx_join(port, &c, "carol");
    EXPECT(&a, "-- carol joined (2 online)\n");
    put(carol, "/quit\n");
    EXPECT(&a, "-- carol left (1 online)\n");
    /* carol was last seen 5 min 30 s ago: the store says so. */
    set_last_seen("carol", 330000);
    put(alice->in, "/who\n");
    EXPECT(&a, "-- alice online\n");
    EXPECT(&a, "-- carol offline, last seen 5 min ago\n");
    EXPECT(&a, "-- 1 online, 1 offline listed\n");
    /* Hours ago is "N h ago". */
    set_last_seen("carol", 2 * 3600000 + 60000);
    put(alice->in, "/who\n");
    EXPECT(&a, "-- carol offline, last seen 2 h ago\n");
    close(carol);
}

/* ---- history inserts are committed as a batch (issue 11) ----------------- */

/* Rows in the history table of the server's store, read beside the running
 * server by another SQLite connection (python3's sqlite3; WAL). */
static int history_rows(void)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd,
             "python3 -c \"import sqlite3, sys; d = sqlite3.connect('%s/chat.db'); "
             "sys.exit(d.execute('SELECT COUNT(*) FROM history').fetchone()[0])\"", dir);
    int st = system(cmd);
    cr_assert(WIFEXITED(st));
    return WEXITSTATUS(st);
}

Test(chat_e2e, batched_history_is_committed_before_the_ack_and_on_a_clean_stop)
{
    struct th_proc *srv;
    int port = start_server(&srv, 0, NULL, NULL);
    static struct stream a, b;
    int ada = fx_join(port, &a, "ada");
    /* 50 lines in one write: one loop iteration inserts them in one
     * transaction; its commit comes before any reply leaves. */
    char buf[50 * 16];
    size_t n = 0;
    for (int i = 1; i <= 50; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "line %d\n", i);
    cr_assert_eq(write(ada, buf, n), (ssize_t)n);
    EXPECT(&a, "OK sent 50\n");
    /* Another connection sees all 50 once the last ack is out. */
    cr_assert_eq(history_rows(), 50);
    put(ada, "the last line before a clean stop\n");
    EXPECT(&a, "OK sent 51\n");
    /* A clean stop (SIGTERM) keeps everything; a joiner after the restart
     * gets it in its replay. */
    cr_assert_eq(th_stop(srv, SIGTERM, 5000), 0);
    cr_assert_eq(history_rows(), 51);
    port = start_server(&srv, 0, NULL, NULL);
    fx_join(port, &b, "bob");
    EXPECT(&b, " ada line 50\n");
    EXPECT(&b, " ada the last line before a clean stop\n");
    close(ada);
}
