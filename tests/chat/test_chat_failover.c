/* The chat client over several servers (issue 14, "Clients"): it joins one,
 * and when that node dies (killed, silent, or never answering) it moves to
 * the next, continues the history from where it was and shows no line
 * twice. Real processes: `serve chat` nodes sharing one SQLite database
 * (WAL; what one node stores the other's history has) and our client in
 * line mode. Every check waits for exact text. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "stream.h"

#include "fixture.h"

TestSuite(chat_failover, .init = fx_setup, .fini = fx_teardown, .timeout = 90);

/* A node on addr (127.0.0.x) and port (0: any); the db is shared. */
static int node(struct th_proc **out, const char *addr, int port)
{
    const char *extra[] = {"-b", addr, NULL};
    return fx_server(out, port, extra);
}

/* Two nodes on 127.0.0.1: their ports in port[2], "127.0.0.1:PORT" in sa
 * and sb. */
static void two_nodes(struct th_proc **a, struct th_proc **b, int port[2], char sa[32],
                      char sb[32])
{
    port[0] = node(a, "127.0.0.1", 0);
    port[1] = node(b, "127.0.0.1", 0);
    snprintf(sa, 32, "127.0.0.1:%d", port[0]);
    snprintf(sb, 32, "127.0.0.1:%d", port[1]);
}

/* Our client in line mode with extra arguments (NULL-terminated). */
static struct th_proc *client(struct stream *s, const char *nick, const char *const *extra)
{
    char *argv[32];
    int n = 0;
    const char *base[] = {th_sockstack(), "chat", "--name", nick, "--plain", "--dir", dir,
                          NULL};
    for (int i = 0; base[i]; i++)
        argv[n++] = (char *)base[i];
    for (int i = 0; extra[i] && n < 31; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    struct th_proc p;
    cr_assert_eq(th_spawn(&p, argv), 0);
    struct th_proc *t = track(p);
    stream_init(s, t->out);
    return t;
}

/* A python3 listener on 127.0.0.1 that never answers: `body` runs after
 * s is bound, with `port` the line the harness waits for. Its port. */
static int python_listener(const char *body)
{
    char script[1024];
    snprintf(script, sizeof script,
             "import socket,sys,time\n"
             "s=socket.socket(); s.bind(('127.0.0.1',0))\n"
             "port='listening on 127.0.0.1:%%d (tcp)' %% s.getsockname()[1]\n%s",
             body);
    char *argv[] = {"python3", "-c", script, NULL};
    struct th_proc py;
    cr_assert_eq(th_spawn(&py, argv), 0);
    int port = th_wait_listening(track(py), 10000, NULL, 0);
    cr_assert_gt(port, 0);
    return port;
}

/* bob, given the silent server first and then the live one (with `more`
 * options), says after --connect-timeout 0.5 (the line starting `lead`)
 * that the first never answered, joins the second, and says it once. */
static void given_up_then_next(struct stream *bs, int silent, int live,
                               const char *const *more, const char *lead)
{
    char ss[32], sl[32], want[256];
    snprintf(ss, sizeof ss, "127.0.0.1:%d", silent);
    snprintf(sl, sizeof sl, "127.0.0.1:%d", live);
    const char *extra[16] = {"--server", ss, "--server", sl, "--in-order",
                             "--connect-timeout", "0.5"};
    for (int i = 0, n = 7; more && more[i] && n < 15; i++)
        extra[n++] = more[i];
    client(bs, "bob", extra);
    snprintf(want, sizeof want, "%sno answer within 0.5 s (--connect-timeout); reconnecting "
             "in 0.25 s to %s\n", lead, sl);
    EXPECT(bs, want);
    snprintf(want, sizeof want, "-- connected to %s (%s)\n", sl, sl);
    EXPECT(bs, want);
    EXPECT(bs, "-- you are bob (1 online)\n");
    cr_assert_eq(count(bs, "no answer within"), 1, "%s", bs->buf);
}

/* Wait until s has seen needle count times. */
static void expect_n(struct stream *s, const char *needle, int times)
{
    for (int i = 0; i < 100 && count(s, needle) < times; i++)
        pump(s, 100);
    cr_assert_eq(count(s, needle), times, "want %d x \"%s\" in:\n%s", times, needle, s->buf);
}

Test(chat_failover, node_killed_client_moves_on_and_resumes_history_without_duplicates)
{
    struct th_proc *a, *b;
    char sa[32], sb[32], want[256];
    int p[2];
    two_nodes(&a, &b, p, sa, sb);
    static struct stream bs, as, cs;
    const char *extra[] = {"--server", sa, "--server", sb, "--in-order", NULL};
    client(&bs, "bob", extra);
    snprintf(want, sizeof want, "-- connected to %s (%s)\n", sa, sa);
    EXPECT(&bs, want);
    EXPECT(&bs, "-- you are bob (1 online)\n");

    /* alice talks on node A: bob sees it live */
    int alice = fx_join(p[0], &as, "alice");
    put(alice, "line one\nline two\n");
    EXPECT(&bs, "<alice> line two\n");
    /* carol talks on node B: stored (shared history), bob is not there */
    int carol = fx_join(p[1], &cs, "carol");
    put(carol, "line three\n");
    EXPECT(&cs, "OK sent ");

    /* node A dies: bob goes to B, gets line three from the history and
     * not lines one and two again */
    cr_assert_neq(th_stop(a, SIGKILL, 5000), -1);
    snprintf(want, sizeof want, "-- connection lost: server closed the connection; "
             "reconnecting in 0.25 s to %s\n", sb);
    EXPECT(&bs, want);
    snprintf(want, sizeof want, "-- connected to %s (%s)\n", sb, sb);
    EXPECT(&bs, want);
    EXPECT(&bs, "-- you are bob (2 online)\n");
    EXPECT(&bs, "<carol> line three\n");
    put(carol, "line four\n");
    EXPECT(&bs, "<carol> line four\n");
    /* and nothing else comes late */
    put(carol, "/who\n");
    EXPECT(&cs, "OK who");
    pump(&bs, 300);
    char got[1024];
    fx_shown(&bs, "<", got, sizeof got);
    cr_assert_str_eq(got, "<alice> line one\n<alice> line two\n<carol> line three\n"
                          "<carol> line four\n", "%s", bs.buf);
    close(alice);
    close(carol);
}

Test(chat_failover, a_name_with_two_addresses_is_two_nodes)
{
    /* The name "chatnodes" gives 127.0.0.1 and 127.0.0.2 through a hosts
     * file mounted over /etc/hosts in the client's own mount namespace
     * (getaddrinfo, as for DNS). */
    if (!th_is_root() || system("command -v unshare >/dev/null") != 0)
        cr_skip_test("needs root and unshare(1) to give a name two addresses");
    struct th_proc *n1, *n2;
    int port = node(&n1, "127.0.0.1", 0);
    node(&n2, "127.0.0.2", port);
    char hosts[256], script[1024], spec[64];
    snprintf(hosts, sizeof hosts, "%s/hosts", dir);
    FILE *f = fopen(hosts, "w");
    cr_assert_not_null(f);
    fprintf(f, "127.0.0.1 chatnodes\n127.0.0.2 chatnodes\n");
    fclose(f);
    snprintf(spec, sizeof spec, "chatnodes:%d", port);
    /* shuffled (the default): whichever it joins, it moves to the other */
    snprintf(script, sizeof script,
             "mount --bind %s /etc/hosts && exec '%s' chat --server %s --name bob --plain "
             "--dir %s",
             hosts, th_sockstack(), spec, dir);
    char *argv[] = {"unshare", "-m", "sh", "-c", script, NULL};
    struct th_proc p;
    cr_assert_eq(th_spawn(&p, argv), 0);
    static struct stream bs, xs;
    stream_init(&bs, track(p)->out);
    EXPECT(&bs, "-- you are bob (1 online)\n");
    char first[8] = "";
    char *at = strstr(bs.buf, "-- connected to 127.0.0.");
    cr_assert_not_null(at, "%s", bs.buf);
    first[0] = at[strlen("-- connected to 127.0.0.")];
    cr_assert(first[0] == '1' || first[0] == '2', "%s", bs.buf);
    char want[256];
    snprintf(want, sizeof want, "-- connected to 127.0.0.%c:%d (%s)\n", first[0], port, spec);
    cr_assert(strstr(bs.buf, want), "%s", bs.buf);
    char other = first[0] == '1' ? '2' : '1';
    cr_assert_neq(th_stop(first[0] == '1' ? n1 : n2, SIGKILL, 5000), -1);
    snprintf(want, sizeof want, "reconnecting in 0.25 s to 127.0.0.%c:%d\n", other, port);
    EXPECT(&bs, want);
    snprintf(want, sizeof want, "-- connected to 127.0.0.%c:%d (%s)\n", other, port, spec);
    EXPECT(&bs, want);
    EXPECT(&bs, "-- you are bob (1 online)\n");
    /* live on the other node */
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    char ip[16];
    snprintf(ip, sizeof ip, "127.0.0.%c", other);
    inet_pton(AF_INET, ip, &sin.sin_addr);
    int x = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(connect(x, (struct sockaddr *)&sin, sizeof sin), 0);
    stream_init(&xs, x);
    put(x, "/nick xavier\nover here\n");
    EXPECT(&bs, "<xavier> over here\n");
    close(x);
}

Test(chat_failover, a_silent_node_is_probed_then_given_up)
{
    struct th_proc *a, *b;
    char sa[32], sb[32], want[256];
    int p[2];
    two_nodes(&a, &b, p, sa, sb);
    static struct stream bs;
    const char *extra[] = {"--server", sa, "--server", sb, "--in-order",
                           "--server-timeout", "1", NULL};
    client(&bs, "bob", extra);
    EXPECT(&bs, "-- you are bob (1 online)\n");
    /* An idle room is not a dead node: the probe at 0.5 s gets an answer,
     * so 3 s of silence from the room keep bob where he is. */
    long until = now_ms() + 3000;
    while (now_ms() < until)
        pump(&bs, 100);
    cr_assert_eq(count(&bs, "connection lost"), 0, "%s", bs.buf);
    /* A stopped node keeps the connection open and answers nothing. */
    cr_assert_eq(kill(a->pid, SIGSTOP), 0);
    snprintf(want, sizeof want, "-- connection lost: no answer from the server for 1.0 s; "
             "reconnecting in 0.25 s to %s\n", sb);
    EXPECT(&bs, want);
    snprintf(want, sizeof want, "-- connected to %s (%s)\n", sb, sb);
    EXPECT(&bs, want);
    expect_n(&bs, "-- you are bob (1 online)\n", 2);
    kill(a->pid, SIGCONT);
}

Test(chat_failover, a_node_that_never_answers_is_given_up_after_connect_timeout)
{
    /* A listener with a full accept queue: the kernel drops further SYNs,
     * so a connect there neither succeeds nor fails. */
    int pdead = python_listener("s.listen(0)\n"
                                "c=socket.create_connection(s.getsockname())\n"
                                "print(port, file=sys.stderr, flush=True)\n"
                                "time.sleep(60)\n");
    struct th_proc *b;
    int pb = node(&b, "127.0.0.1", 0);
    static struct stream bs;
    given_up_then_next(&bs, pdead, pb, NULL, "-- cannot connect: ");
    cr_assert_eq(count(&bs, "-- connected to"), 1, "%s", bs.buf);
}

Test(chat_failover, piped_input_tries_every_server_once_then_says_what_was_not_sent)
{
    struct th_proc *b;
    int pb = node(&b, "127.0.0.1", 0);
    static struct stream as;
    int alice = fx_join(pb, &as, "alice");
    /* port 1 refuses; the client goes on to the live node */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "printf 'hi from a pipe\\n' | '%s' chat --server 127.0.0.1:1 "
             "--server 127.0.0.1:%d --in-order --name bot > %s/bot.out 2>&1",
             th_sockstack(), pb, dir);
    cr_assert_eq(system(cmd), 0);
    EXPECT(&as, " bot hi from a pipe\n");
    /* every server refuses: each tried once, then the exit status says so */
    snprintf(cmd, sizeof cmd, "printf 'a\\nb\\n' | '%s' chat --server 127.0.0.1:1 "
             "--server 127.0.0.1:2 --in-order --name bot > %s/none.out 2>&1; echo $? >> "
             "%s/none.out", th_sockstack(), dir, dir);
    cr_assert_eq(system(cmd), 0);
    char path[256];
    snprintf(path, sizeof path, "%s/none.out", dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    /* what it said, its own echoed lines ("[time] <bot> a") left out */
    char line[512], said[2048] = "";
    while (fgets(line, sizeof line, f))
        if (!strstr(line, "] <bot> "))
            strncat(said, line, sizeof said - strlen(said) - 1);
    fclose(f);
    cr_assert_str_eq(said, "-- cannot connect: Connection refused; reconnecting in 0.25 s "
                           "to 127.0.0.1:2\n!! Connection refused; 2 lines not sent\n1\n");
    close(alice);
}

/* Over TLS, --connect-timeout also covers the handshake: a server that
 * accepts the TCP connection and never answers the ClientHello is given
 * up on like one that never answers the SYN. */
Test(chat_failover, connect_timeout_covers_the_tls_handshake)
{
    char cmd[400], cert[200], key[200];
    snprintf(cmd, sizeof cmd, "%s keygen --tls %s/tls >/dev/null 2>&1", th_sockstack(), dir);
    cr_assert_eq(system(cmd), 0);
    snprintf(cert, sizeof cert, "%s/tls/cert.pem", dir);
    snprintf(key, sizeof key, "%s/tls/key.pem", dir);
    int pmute = python_listener("s.listen(8)\n"
                                "print(port, file=sys.stderr, flush=True)\n"
                                "held=[]\n"
                                "while True: held.append(s.accept()[0])\n");
    struct th_proc *b;
    const char *tls_node[] = {"-b", "127.0.0.1", "--tls-cert", cert, "--tls-key", key, NULL};
    int pb = fx_server(&b, 0, tls_node);
    static struct stream bs;
    const char *tls[] = {"--tls", "--tls-insecure", NULL};
    /* TCP connected but no handshake: not "connected" to it (only to the
     * live node), so "-- cannot connect: ". */
    given_up_then_next(&bs, pmute, pb, tls, "-- cannot connect: ");
    cr_assert_eq(count(&bs, "-- connected to"), 1, "%s", bs.buf);
}
