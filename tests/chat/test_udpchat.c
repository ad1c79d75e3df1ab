/* UDP chat: the datagram codec and receiver accounting byte by byte, our
 * relay with three clients, and our client behind a python relay that drops,
 * reorders, duplicates and sends an oversized datagram. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "sockstack/config.h"
#include "sockstack/err.h"
#include "sockstack/udpchat.h"
#include "stream.h"

static struct th_proc procs[8];
static int nprocs;

static struct th_proc *track(struct th_proc p)
{
    procs[nprocs] = p;
    return &procs[nprocs++];
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
}

TestSuite(udpchat, .fini = teardown, .timeout = 60);

Test(udpchat, codec_round_trip_and_refusals)
{
    char buf[SS_UDPCHAT_MAX_DGRAM + 64];
    int n = ss_udpchat_encode(buf, sizeof buf, SS_UDPCHAT_MAX_DGRAM, 42, "alice", "hi there");
    cr_assert_eq(n, 21);
    cr_assert_eq(memcmp(buf, "UC1 42 alice hi there", 21), 0);
    uint32_t seq;
    char nick[32];
    const char *text;
    size_t tlen;
    cr_assert_eq(ss_udpchat_decode(buf, (size_t)n, &seq, nick, sizeof nick, &text, &tlen), 0);
    cr_assert_eq(seq, 42);
    cr_assert_str_eq(nick, "alice");
    cr_assert_eq(tlen, 8);
    cr_assert_eq(memcmp(text, "hi there", 8), 0);
    /* exactly the maximum is fine, one more byte is refused */
    char big[SS_UDPCHAT_MAX_DGRAM + 1];
    size_t room = SS_UDPCHAT_MAX_DGRAM - strlen("UC1 1 alice ");
    memset(big, 'x', room);
    big[room] = '\0';
    cr_assert_eq(ss_udpchat_encode(buf, sizeof buf, SS_UDPCHAT_MAX_DGRAM, 1, "alice", big),
                 SS_UDPCHAT_MAX_DGRAM);
    big[room] = 'x';
    big[room + 1] = '\0';
    cr_assert_eq(ss_udpchat_encode(buf, sizeof buf, SS_UDPCHAT_MAX_DGRAM, 1, "alice", big),
                 -EMSGSIZE);
    cr_assert_eq(ss_udpchat_encode(buf, sizeof buf, 100, 1, "9bad", "x"), -EINVAL);
    cr_assert_eq(ss_udpchat_decode("UC2 1 a x", 9, &seq, nick, sizeof nick, &text, &tlen),
                 SS_EBADPKT);
    cr_assert_eq(ss_udpchat_decode("UC1 x a x", 9, &seq, nick, sizeof nick, &text, &tlen),
                 SS_EBADPKT);
    cr_assert_eq(ss_udpchat_decode("UC1 1 \xff x", 9, &seq, nick, sizeof nick, &text, &tlen),
                 SS_EBADPKT);
}

Test(udpchat, receiver_counts_loss_reordering_duplicates)
{
    ss_udpchat_rx *rx;
    cr_assert_eq(ss_udpchat_rx_new(&rx), 0);
    uint32_t miss;
    uint32_t order[] = {1, 2, 4, 6, 5, 7, 8, 8, 10};
    int want[] = {SS_UDPCHAT_NEW, SS_UDPCHAT_NEW, SS_UDPCHAT_GAP, SS_UDPCHAT_GAP,
                  SS_UDPCHAT_LATE, SS_UDPCHAT_NEW, SS_UDPCHAT_NEW, SS_UDPCHAT_DUP,
                  SS_UDPCHAT_GAP};
    for (int i = 0; i < 9; i++)
        cr_assert_eq(ss_udpchat_rx_seen(rx, "alice", order[i], &miss), want[i], "i=%d", i);
    cr_assert_eq(miss, 1); /* 9 missing before 10 */
    ss_udpchat_stats *st = ss_udpchat_rx_stats(rx);
    cr_assert_eq(st->received, 8);
    cr_assert_eq(st->lost, 2); /* 3 and 9 */
    cr_assert_eq(st->reordered, 1);
    cr_assert_eq(st->duplicates, 1);
    /* a second sender is counted apart; its first message starts it */
    cr_assert_eq(ss_udpchat_rx_seen(rx, "bob", 17, &miss), SS_UDPCHAT_NEW);
    cr_assert_eq(st->lost, 2);
    ss_udpchat_rx_free(rx);
}

static struct th_proc *client(int port, const char *nick, struct stream *s)
{
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    struct th_proc pr;
    cr_assert_eq(th_spawn_cli(&pr, "udp-chat", "127.0.0.1", p, "--name", nick,
                              "--linger", "0.3", NULL), 0);
    struct th_proc *t = track(pr);
    stream_init(s, t->out);
    return t;
}

Test(udpchat, relay_delivers_to_every_recent_peer_but_the_sender)
{
    struct th_proc srv;
    cr_assert_eq(th_spawn_cli(&srv, "serve", "udp-chat", "-b", "127.0.0.1", "--port", "0",
                              "--grace", "0", NULL), 0);
    track(srv);
    int port = th_wait_listening(&procs[0], 10000, NULL, 0);
    cr_assert_gt(port, 0);
    static struct stream a, b, c;
    struct th_proc *alice = client(port, "alice", &a);
    struct th_proc *bob = client(port, "bob", &b);
    struct th_proc *carol = client(port, "carol", &c);
    /* alice hears bob and carol: all three are known to the relay. Each
     * retries until heard, since the hellos race the first message. */
    bool heard = false;
    for (int i = 0; i < 20 && !heard; i++) {
        put(bob->in, "bob here\n");
        heard = expect(&a, "<bob> #", 300);
    }
    cr_assert(heard, "%s", a.buf);
    heard = false;
    for (int i = 0; i < 20 && !heard; i++) {
        put(carol->in, "carol here\n");
        heard = expect(&a, "<carol> #", 300);
    }
    cr_assert(heard, "%s", a.buf);
    put(alice->in, "hello udp\n");
    EXPECT(&b, "<alice> #1 hello udp\n");
    EXPECT(&c, "<alice> #1 hello udp\n");
    close(alice->in);
    alice->in = -1;
    EXPECT(&a, "-- udp-chat: sent 1, received ");
    cr_assert_eq(count(&a, "hello udp"), 0); /* not back to its sender */
}

Test(udpchat, client_shows_loss_reordering_duplicates_truncation_and_refuses_oversize)
{
    const char *root = getenv("SS_SOURCE_ROOT");
    char script[512];
    snprintf(script, sizeof script, "%s/tests/chat/pyrelay.py", root ? root : ".");
    char *argv[] = {"/usr/bin/python3", script, NULL};
    struct th_proc relay;
    cr_assert_eq(th_spawn(&relay, argv), 0);
    track(relay);
    int port = th_wait_listening(&procs[0], 10000, NULL, 0);
    cr_assert_gt(port, 0);
    static struct stream a, b;
    struct th_proc *alice = client(port, "alice", &a);
    struct th_proc *bob = client(port, "bob", &b);
    /* bob must be known to the relay before alice's numbered messages:
     * alice's "warm-up" messages are numbered 1 and 2 and relayed as is */
    bool heard = false;
    for (int i = 0; i < 20 && !heard; i++) {
        put(bob->in, "ping\n");
        heard = expect(&a, "<bob> #", 300);
    }
    cr_assert(heard, "%s", a.buf);
    char big[1500];
    memset(big, 'q', sizeof big - 2);
    big[sizeof big - 2] = '\n';
    big[sizeof big - 1] = '\0';
    put(alice->in, big);
    EXPECT(&a, "!! message too long: ");
    for (int i = 1; i <= 10; i++) {
        char line[32];
        snprintf(line, sizeof line, "m%d\n", i);
        put(alice->in, line);
    }
    EXPECT(&b, "<alice> #1 m1\n");
    EXPECT(&b, "<alice> #2 m2\n");
    EXPECT(&b, "-- lost 1 message from alice before #4\n");
    EXPECT(&b, "<alice> #4 m4\n");
    EXPECT(&b, "-- lost 1 message from alice before #6\n");
    EXPECT(&b, "<alice> #6 m6\n");
    EXPECT(&b, "-- out of order: #5 from alice arrived late\n");
    EXPECT(&b, "<alice> #5 m5\n");
    EXPECT(&b, "<alice> #8 m8\n");
    EXPECT(&b, "-- duplicate #8 from alice ignored\n");
    EXPECT(&b, "<alice> #10 m10\n");
    EXPECT(&b, "!! truncated datagram from 127.0.0.1:");
    close(bob->in);
    bob->in = -1;
    EXPECT(&b, "-- udp-chat: sent ");
    EXPECT(&b, ", received 9, lost 1, out of order 1, duplicates 1, truncated 1\n");
}

/* ---- the relay against spoofing (issue 11) --------------------------------- */

/* Everything the relay sends, counted per destination port. */
struct sent_log {
    size_t datagrams, bytes;
    size_t to_victim;  /* datagrams to ports 20000..20999 */
    char last[64];
    size_t last_len;
};

static void log_send(void *arg, const void *data, size_t len, const ss_addr *to)
{
    struct sent_log *l = arg;
    l->datagrams++;
    l->bytes += len;
    int port = ss_addr_port(to);
    if (port >= 20000 && port < 21000)
        l->to_victim++;
    l->last_len = len < sizeof l->last ? len : sizeof l->last - 1;
    memcpy(l->last, data, l->last_len);
    l->last[l->last_len] = '\0';
}

static ss_addr addr_at(int port)
{
    ss_addr a;
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    cr_assert_eq(ss_addr_resolve("127.0.0.9", p, AF_INET, SS_DGRAM, false, &a, 1), 1);
    return a;
}

/* A client's hello, then its cookie back if the relay asked for one. */
static void join_relay(ss_udpchat_relay *r, const char *nick, const ss_addr *from,
                       struct sent_log *l)
{
    char dg[128];
    int n = snprintf(dg, sizeof dg, "UC1 0 %s pad=0000000000000000", nick);
    l->last_len = 0;
    ss_udpchat_relay_input(r, dg, (size_t)n, from, 1001, log_send, l);
    if (l->last_len == 21 && !memcmp(l->last, "UC1C ", 5)) {
        n = snprintf(dg, sizeof dg, "UC1 0 %s cookie=%.16s", nick, l->last + 5);
        ss_udpchat_relay_input(r, dg, (size_t)n, from, 1001, log_send, l);
    }
}

Test(udpchat, spoofed_hellos_are_not_amplified_and_nicks_are_owned)
{
    ss_udpchat_relay *r;
    cr_assert_eq(ss_udpchat_relay_new(&r, 300000, 4096), 0);
    struct sent_log l = {0};
    /* 1,000 hellos "from" the victim's ports: none can answer a cookie. */
    size_t in_bytes = 0;
    for (int i = 0; i < 1000; i++) {
        ss_addr v = addr_at(20000 + i);
        char dg[64];
        int n = snprintf(dg, sizeof dg, "UC1 0 v%d pad=0000000000000000", i);
        in_bytes += (size_t)n;
        ss_udpchat_relay_input(r, dg, (size_t)n, &v, 1000, log_send, &l);
    }
    cr_assert_leq(l.bytes, in_bytes, "the relay sent more than it got");
    size_t before = l.to_victim;
    /* A real sender passes the return-path check and sends 1,400 bytes. */
    ss_addr alice = addr_at(30001), bob = addr_at(30002);
    join_relay(r, "alice", &alice, &l);
    join_relay(r, "bob", &bob, &l);
    static char big[SS_UDPCHAT_MAX_DGRAM + 1];
    int n = ss_udpchat_encode(big, sizeof big, SS_UDPCHAT_MAX_DGRAM, 1, "alice", "");
    cr_assert_gt(n, 0);
    memset(big + n, 'x', SS_UDPCHAT_MAX_DGRAM - (size_t)n);
    size_t sends = l.datagrams;
    ss_udpchat_relay_input(r, big, SS_UDPCHAT_MAX_DGRAM, &alice, 1001, log_send, &l);
    cr_assert_eq(l.to_victim, before, "relayed to spoofed addresses");
    cr_assert_eq(l.datagrams - sends, 1, "to bob only");
    /* Nick ownership: another address cannot be alice, nor send as alice. */
    ss_addr mallory = addr_at(30003);
    sends = l.datagrams;
    join_relay(r, "alice", &mallory, &l);
    n = ss_udpchat_encode(big, sizeof big, SS_UDPCHAT_MAX_DGRAM, 2, "alice", "it is me");
    cr_assert_lt(ss_udpchat_relay_input(r, big, (size_t)n, &mallory, 1002, log_send, &l), 0);
    n = ss_udpchat_encode(big, sizeof big, SS_UDPCHAT_MAX_DGRAM, 5, "carol", "as bob");
    cr_assert_lt(ss_udpchat_relay_input(r, big, (size_t)n, &bob, 1003, log_send, &l), 0);
    cr_assert_eq(l.datagrams, sends, "nothing relayed for an impostor");
    ss_udpchat_relay_free(r);
}
