/* The chat server as an attacker sees it (issue 11, "Accounts and abuse"):
 * one test per attack, each on a real server with raw sockets, asserting
 * exact replies and counts. With SS_CHAT_COMPAT=1 the options the server
 * did not have before are left out, so each test can be run against an
 * older build (SOCKSTACK=...) and seen to fail there. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fixture.h"

TestSuite(chat_abuse, .init = fx_setup, .fini = fx_teardown, .timeout = 90);

#define EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* Register nick (on a fresh connection) and leave. */
static void registered_offline(int port, const char *nick)
{
    static struct stream s[8];
    static int k;
    struct stream *st = &s[k++ % 8];
    int fd = fx_join(port, st, nick);
    put(fd, "/register pw1234\n");
    char want[64];
    snprintf(want, sizeof want, "OK register %s\n", nick);
    cr_assert(expect(st, want, 30000), "%s", st->buf);
    put(fd, "/quit\n");
    EXPECT(st, "BYE");
    close(fd);
}

/* Log in as nick on a fresh connection. */
static int login(int port, struct stream *s, const char *nick)
{
    char line[96];
    snprintf(line, sizeof line, "/login %s pw1234\n", nick);
    return fx_enter(port, s, line, nick);
}

Test(chat_abuse, login_burst_runs_off_the_loop_and_is_throttled)
{
    struct th_proc *srv;
    /* A slow hash (about a second each) makes a stall obvious. */
    const char *extra[] = {"--pbkdf2-iter", "1000000", NULL};
    int port = fx_server(&srv, 0, extra);
    static struct stream w, o, x;
    int owner = fx_join(port, &o, "owner");
    put(owner, "/register pw1234\n");
    cr_assert(expect(&o, "OK register owner\n", 30000));
    int watcher = fx_join(port, &w, "watcher");
    /* 200 logins in one write. */
    static char burst[200 * 32];
    size_t n = 0;
    for (int i = 0; i < 200; i++)
        n += (size_t)snprintf(burst + n, sizeof burst - n, "/login owner x%d\n", i);
    int att = fx_raw(port, 0);
    stream_init(&x, att);
    cr_assert_eq(write(att, burst, n), (ssize_t)n);
    /* Another user is answered while the first hash still runs. */
    put(watcher, "/who\n");
    EXPECT(&w, "OK who 2 0\n");
    pump(&x, 0);
    cr_assert_eq(count(&x, "ERR auth"), 0, "%s", x.buf);
    /* Three wrong passwords are checked; then the nick is throttled and
     * every further try is refused without hashing. */
    cr_assert(expect(&x, "ERR throttled", 30000), "%s", x.buf);
    for (int i = 0; i < 40 && count(&x, "ERR ") < 200; i++)
        pump(&x, 250);
    cr_assert_eq(count(&x, "ERR auth wrong nickname or password\n"), 3, "%s", x.buf);
    cr_assert_eq(count(&x, "ERR throttled too many failed logins; try again in "), 197);
    close(att);
    close(watcher);
    close(owner);
}

Test(chat_abuse, unknown_nick_login_costs_a_hash_and_answers_alike)
{
    struct th_proc *srv;
    const char *extra[] = {"--pbkdf2-iter", "1000000", NULL};
    int port = fx_server(&srv, 0, extra);
    static struct stream a, w;
    int watcher = fx_join(port, &w, "watcher");
    int att = fx_greeted(port, &a);
    put(att, "/login ghost whatever\n");
    put(watcher, "/who\n");
    EXPECT(&w, "OK who 1 ");
    /* The unknown nick is not answered at once (it was, 689x faster than a
     * registered one): it takes one full hash like a wrong password. */
    pump(&a, 0);
    cr_assert_eq(count(&a, "ERR"), 0, "%s", a.buf);
    cr_assert(expect(&a, "ERR auth wrong nickname or password\n", 30000), "%s", a.buf);
    close(att);
    close(watcher);
}

Test(chat_abuse, offers_are_capped_and_a_joining_user_gets_a_bounded_list)
{
    struct th_proc *srv;
    const char *extra[] = {"--outq", "65536", "--rate", "0", NULL};
    int port = fx_server(&srv, 0, extra);
    registered_offline(port, "victim");
    static struct stream m, v;
    int att = fx_join(port, &m, "mallory");
    /* 1,500 zero-byte offers, 100 per write. */
    static char buf[100 * 160];
    int id = 1;
    for (int b = 0; b < 15; b++) {
        size_t n = 0;
        for (int i = 0; i < 100; i++, id++)
            n += (size_t)snprintf(buf + n, sizeof buf - n,
                                  "/offer victim 0 " EMPTY_SHA " f%d\n/done %d\n", id, id);
        cr_assert_eq(write(att, buf, n), (ssize_t)n);
        put(att, "/who\n");
        EXPECT(&m, "OK who");
    }
    cr_assert_eq(count(&m, "OK upload "), 32, "%d", count(&m, "OK upload "));
    cr_assert_eq(count(&m, "ERR quota victim has 32 offers waiting\n"), 1500 - 32);
    int vic = login(port, &v, "victim");
    put(vic, "/who\n");
    EXPECT(&v, "OK who");
    cr_assert_eq(count(&v, "OFFER "), 32);
    cr_assert_eq(count(&v, "ERR"), 0);
    close(vic);
    close(att);
}

/* Size of the store on disk (db + WAL). */
static long long store_bytes(void)
{
    long long t = 0;
    const char *sfx[] = {"", "-wal"};
    for (int i = 0; i < 2; i++) {
        char p[256];
        struct stat st;
        snprintf(p, sizeof p, "%s/chat.db%s", dir, sfx[i]);
        if (stat(p, &st) == 0)
            t += (long long)st.st_size;
    }
    return t;
}

Test(chat_abuse, announced_file_size_allocates_nothing)
{
    struct th_proc *srv;
    int port = fx_server(&srv, 0, NULL);
    registered_offline(port, "victim");
    static struct stream s[3];
    int fds[3];
    long long before = store_bytes();
    for (int i = 0; i < 3; i++) {
        char nick[16];
        snprintf(nick, sizeof nick, "big%d", i);
        fds[i] = fx_join(port, &s[i], nick);
        put(fds[i], "/offer victim 67108864 " EMPTY_SHA " big.bin\n");
        cr_assert(expect(&s[i], i < 2 ? "OK offer " : "ERR quota", 10000), "%s", s[i].buf);
    }
    /* Two 64 MiB offers are open and no byte was sent: the store must not
     * have grown by them (it grew by 234 MB in 0.66 s). */
    long long grew = store_bytes() - before;
    cr_assert_lt(grew, 1 << 20, "store grew by %lld bytes", grew);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
}

Test(chat_abuse, offline_messages_capped_paged_and_deleted_once_delivered)
{
    struct th_proc *srv;
    const char *extra[] = {"--outq", "65536", "--offline-max", "100", "--rate", "0", NULL};
    int port = fx_server(&srv, 0, extra);
    registered_offline(port, "victim");
    static struct stream m, v, v2;
    int att = fx_join(port, &m, "mallory");
    static char line[4100];
    for (int i = 0; i < 150; i++) {
        int n = snprintf(line, sizeof line, "/msg victim %04d ", i);
        memset(line + n, 'z', 4000);
        line[n + 4000] = '\n';
        cr_assert_eq(write(att, line, (size_t)n + 4001), n + 4001);
    }
    put(att, "/who\n");
    EXPECT(&m, "OK who");
    cr_assert_eq(count(&m, "OK msg victim stored\n"), 100);
    cr_assert_eq(count(&m, "ERR full victim has 100 messages waiting; not stored\n"), 50);
    /* 400 kB of mail through a 64 kB queue: delivered in pages, all of it,
     * in order, and the victim is not cut off. */
    int vic = login(port, &v, "victim");
    for (int i = 0; i < 100; i++) {
        snprintf(line, sizeof line, " mallory %04d zzz", i);
        cr_assert(expect(&v, line, 10000), "message %d missing", i);
    }
    put(vic, "/who\n");
    EXPECT(&v, "OK who");
    cr_assert_eq(count(&v, "OFFLINE "), 100);
    cr_assert_eq(count(&v, "ERR"), 0);
    put(vic, "/quit\n");
    EXPECT(&v, "BYE");
    close(vic);
    /* Delivered, so deleted: the next login brings none. */
    int vic2 = login(port, &v2, "victim");
    put(vic2, "/who\n");
    EXPECT(&v2, "OK who");
    cr_assert_eq(count(&v2, "OFFLINE "), 0);
    close(vic2);
    close(att);
}

Test(chat_abuse, nothing_is_stored_for_an_unregistered_nick)
{
    struct th_proc *srv;
    int port = fx_server(&srv, 0, NULL);
    static struct stream a, b, m;
    int alice = fx_join(port, &a, "alice");
    int bob = fx_join(port, &b, "bob");
    /* An offer to bob while he is online and unregistered... */
    put(alice, "/offer bob 0 " EMPTY_SHA " for-bob.txt\n/done 1\n");
    EXPECT(&a, "OK upload 1 offered\n");
    EXPECT(&b, "OFFER 1 alice 0 " EMPTY_SHA " for-bob.txt\n");
    put(bob, "/quit\n");
    EXPECT(&b, "BYE");
    close(bob);
    EXPECT(&a, " bob 1\n"); /* LEAVE */
    /* ... and a message to him once he is gone. */
    put(alice, "/msg bob are you there\n");
    EXPECT(&a, "ERR notregistered bob is not registered; nothing stored\n");
    /* Whoever takes the nick next gets neither. */
    int mal = fx_join(port, &m, "bob");
    put(mal, "/accept 1\n");
    EXPECT(&m, "ERR nofile no offer 1 for you\n");
    cr_assert_eq(count(&m, "OFFER"), 0, "%s", m.buf);
    cr_assert_eq(count(&m, "OFFLINE"), 0, "%s", m.buf);
    close(mal);
    close(alice);
}

Test(chat_abuse, silent_connections_time_out_and_each_address_is_capped)
{
    struct th_proc *srv;
    const char *extra[] = {"--nick-timeout", "800", "--per-addr", "4", NULL};
    int port = fx_server(&srv, 0, extra);
    static struct stream s[5];
    int fd[5];
    for (int i = 0; i < 4; i++)
        fd[i] = fx_greeted(port, &s[i]);
    fd[4] = fx_raw(port, 0);
    stream_init(&s[4], fd[4]);
    EXPECT(&s[4], "ERR toomany 4 connections from your address already\n");
    while (!s[4].eof)
        pump(&s[4], 1000);
    for (int i = 0; i < 4; i++) {
        EXPECT(&s[i], "ERR timeout no /nick within 800 ms; disconnecting\n");
        long deadline = now_ms() + 5000;
        while (!s[i].eof && now_ms() < deadline)
            pump(&s[i], 100);
        cr_assert(s[i].eof);
        close(fd[i]);
    }
    /* The slots are free again once the server has finished closing those
     * connections (its on_close, which can come after our read saw EOF; a
     * connection accepted before that is still refused: retried). */
    close(fd[4]);
    static struct stream ok[10];
    for (int k = 0;; k++) {
        cr_assert_lt(k, 10, "still refused after 10 tries");
        int late = fx_raw(port, 0);
        stream_init(&ok[k], late);
        put(late, "/nick late\n");
        bool in = expect(&ok[k], "OK nick late 1\n", 10000);
        close(late);
        if (in)
            break;
        cr_assert_eq(count(&ok[k], "ERR toomany 4 connections from your address already\n"), 1,
                     "%s", ok[k].buf);
        usleep(100 * 1000);
    }
}

Test(chat_abuse, rate_lets_the_burst_through_then_paces_without_loss)
{
    struct th_proc *srv;
    /* One line per second past a bucket of 11: the connection's /nick and
     * ten lines go at once; the next line needs a second's refill. */
    const char *extra[] = {"--rate", "1", "--burst", "11", NULL};
    int port = fx_server(&srv, 0, extra);
    static struct stream w, t;
    int watcher = fx_join(port, &w, "watcher");
    /* A fresh connection starts with a full bucket: /nick, 20 /chunk lines
     * (not counted) and 15 messages in one write. */
    int talker = fx_raw(port, 0);
    stream_init(&t, talker);
    static char buf[4096];
    size_t n = (size_t)snprintf(buf, sizeof buf, "/nick talker\n");
    for (int i = 0; i < 20; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "/chunk 99 0 AAAA\n");
    for (int i = 0; i < 15; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "line %02d\n", i);
    cr_assert_eq(write(talker, buf, n), (ssize_t)n);
    /* The first ten are fanned out at once (paced, the tenth would take 9 s;
     * with the chunks counted, the first would take 10 s)... */
    cr_assert(expect(&w, " talker line 09\n", 5000), "%s", w.buf);
    pump(&w, 0);
    cr_assert_eq(count(&w, "MSG "), 10, "%s", w.buf);
    for (int i = 0; i < 20 && count(&t, "OK sent ") < 10; i++)
        pump(&t, 50);
    cr_assert_eq(count(&t, "OK sent "), 10, "%s", t.buf);
    cr_assert_eq(count(&t, "ERR nofile"), 20, "%s", t.buf);
    /* ... and the rest follow, one per refill, in order, none lost. */
    for (int i = 10; i < 15; i++) {
        char want[32];
        snprintf(want, sizeof want, " talker line %02d\n", i);
        EXPECT(&w, want);
    }
    put(talker, "/who\n");
    cr_assert(expect(&t, "OK who 2 ", 10000), "%s", t.buf);
    cr_assert_eq(count(&w, "MSG "), 15, "%s", w.buf);
    cr_assert_eq(count(&t, "OK sent "), 15, "%s", t.buf);
    cr_assert_eq(count(&t, "ERR "), 20, "%s", t.buf);
    close(talker);
    close(watcher);
}

Test(chat_abuse, failed_logins_throttle_the_address_for_any_nick)
{
    struct th_proc *srv;
    int port = fx_server(&srv, 0, NULL);
    registered_offline(port, "owner");
    static struct stream a, b;
    int c1 = fx_greeted(port, &a);
    int c2 = fx_greeted(port, &b);
    /* Three nicks fail once each: no nick reaches its limit, the address
     * does. The next tries, an unknown nick and a known one with the right
     * password, are refused at once without a hash. */
    put(c1, "/login ghost1 x\n/login ghost2 x\n/login ghost3 x\n"
            "/login ghost4 x\n/login owner pw1234\n");
    for (int i = 0; i < 40 && count(&a, "ERR ") < 5; i++)
        pump(&a, 250);
    cr_assert_str_eq(a.buf + a.pos, "ERR auth wrong nickname or password\n"
                                    "ERR auth wrong nickname or password\n"
                                    "ERR auth wrong nickname or password\n"
                                    "ERR throttled too many failed logins; try again in 1 s\n"
                                    "ERR throttled too many failed logins; try again in 1 s\n");
    /* Another connection from the same address is throttled too. */
    put(c2, "/login owner pw1234\n");
    EXPECT(&b, "ERR throttled too many failed logins; try again in 1 s\n");
    cr_assert_eq(count(&b, "ERR "), 1, "%s", b.buf);
    cr_assert_eq(count(&b, "OK "), 0, "%s", b.buf);
    close(c2);
    close(c1);
}

Test(chat_abuse, offers_are_capped_per_sender_and_per_recipient)
{
    struct th_proc *srv;
    const char *extra[] = {"--offers-max", "3", NULL};
    int port = fx_server(&srv, 0, extra);
    for (int i = 1; i <= 4; i++) {
        char nick[8];
        snprintf(nick, sizeof nick, "r%d", i);
        registered_offline(port, nick);
    }
    static struct stream s, s2, r;
    /* One sender, four recipients: the fourth offer is over its cap. */
    int snd = fx_join(port, &s, "sender");
    static char buf[2048];
    size_t n = 0;
    for (int i = 1; i <= 3; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n,
                              "/offer r%d 0 " EMPTY_SHA " f%d\n/done %d\n", i, i, i);
    n += (size_t)snprintf(buf + n, sizeof buf - n, "/offer r4 0 " EMPTY_SHA " f4\n");
    n += (size_t)snprintf(buf + n, sizeof buf - n, "/who\n");
    cr_assert_eq(write(snd, buf, n), (ssize_t)n);
    EXPECT(&s, "OK who");
    cr_assert_eq(count(&s, "OK upload "), 3, "%s", s.buf);
    cr_assert_eq(count(&s, "ERR quota you have 3 offers waiting to be accepted\n"), 1, "%s",
                 s.buf);
    cr_assert_eq(count(&s, "ERR "), 1, "%s", s.buf);
    /* Another sender, one recipient: r1 holds one already, two more fit. */
    int snd2 = fx_join(port, &s2, "sender2");
    n = 0;
    for (int i = 4; i <= 5; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n,
                              "/offer r1 0 " EMPTY_SHA " g%d\n/done %d\n", i, i);
    n += (size_t)snprintf(buf + n, sizeof buf - n, "/offer r1 0 " EMPTY_SHA " g6\n");
    n += (size_t)snprintf(buf + n, sizeof buf - n, "/who\n");
    cr_assert_eq(write(snd2, buf, n), (ssize_t)n);
    EXPECT(&s2, "OK who");
    cr_assert_eq(count(&s2, "OK upload "), 2, "%s", s2.buf);
    cr_assert_eq(count(&s2, "ERR quota r1 has 3 offers waiting\n"), 1, "%s", s2.buf);
    cr_assert_eq(count(&s2, "ERR "), 1, "%s", s2.buf);
    /* r1 gets exactly its three at login. */
    int rc = login(port, &r, "r1");
    put(rc, "/who\n");
    EXPECT(&r, "OK who");
    cr_assert_eq(count(&r, "OFFER "), 3, "%s", r.buf);
    cr_assert_eq(count(&r, "ERR"), 0, "%s", r.buf);
    close(rc);
    close(snd2);
    close(snd);
}

Test(chat_abuse, who_lists_an_offline_user_with_the_time_of_its_leave)
{
    struct th_proc *srv;
    int port = fx_server(&srv, 0, NULL);
    static struct stream a, b;
    int alice = fx_join(port, &a, "alice");
    int bob = fx_join(port, &b, "bob");
    put(bob, "/register pw1234\n");
    EXPECT(&b, "OK register bob\n");
    put(bob, "/quit\n");
    EXPECT(&b, "BYE");
    close(bob);
    /* LEAVE TS bob 1: the last-seen time /who reports. */
    EXPECT(&a, "LEAVE ");
    char ts[40];
    cr_assert_eq(sscanf(a.buf + a.pos, "%39s bob 1\n", ts), 1, "%s", a.buf);
    cr_assert_eq(strlen(ts), strlen("2026-01-01T00:00:00.000Z"), "%s", ts);
    char want[128];
    snprintf(want, sizeof want, "LEAVE %s bob 1\n", ts);
    cr_assert_eq(count(&a, want), 1, "%s", a.buf);
    put(alice, "/who\n");
    snprintf(want, sizeof want, "WHO alice online\nWHO bob offline %s\nOK who 1 1\n", ts);
    EXPECT(&a, want);
    close(alice);
}
