/* Point-to-point chat through NAT (issue 11): a "public" namespace holds
 * the server, two "home" namespaces sit behind their own NAT namespace
 * (nftables masquerade; tests/chat/nat_topo.sh builds it and removes it in
 * teardown, also after a failure). Our client runs in each home.
 *   1. both NATs keep one mapping per local port: hole punching, and the
 *      server's counters show no relayed bytes;
 *   2. nat2 maps every connection (and UDP flow) to a random port: TCP and
 *      UDP punching fail, the relay carries it, and the user is told;
 *   3. both peers on one LAN: a direct local connection;
 *   4. nat2 maps TCP to random ports but keeps one UDP mapping per local
 *      port: TCP punching fails, UDP punching works, and the stream is our
 *      user-space TCP over the punched UDP path; nothing relayed; and the
 *      same with 3% of the UDP datagrams through nat2 dropped.
 * In each case the peers exchange messages and a 50 MiB file (SHA-256
 * equal) while the server's own file (--room-file) arrives at the same
 * time.
 * An impostor without the introduction's key is refused (loopback), and
 * the UDP rendezvous answers only authentic hellos, never with more bytes
 * than it got (loopback). Two of our clients on loopback that skip the
 * TCP steps connect over UDP (no root needed). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "sockstack/auth.h"
#include "sockstack/chat.h"
#include "sockstack/config.h"
#include <openssl/evp.h>

static char prefix[32];
static bool topo_up;

static void nat_setup(void)
{
    fx_setup();
    snprintf(prefix, sizeof prefix, "ssn%d", (int)getpid() % 100000);
}

static void nat_teardown(void)
{
    fx_teardown();
    if (topo_up) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "sh %s down %s", th_source_path("tests/chat/nat_topo.sh"),
                 prefix);
        cr_assert_eq(system(cmd), 0);
        topo_up = false;
    }
}

TestSuite(chat_nat, .init = nat_setup, .fini = nat_teardown, .timeout = 300);

/* `ip netns exec PREFIX-NS sockstack ARGS...` */
static struct th_proc *in_ns(const char *ns, const char *const *args)
{
    char name[64];
    snprintf(name, sizeof name, "%s-%s", prefix, ns);
    char *argv[32] = {"ip", "netns", "exec", name, (char *)th_sockstack()};
    int n = 5;
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    struct th_proc p;
    cr_assert_eq(th_spawn(&p, argv), 0);
    return track(p);
}

static void wait_for(struct stream *s, const char *needle, int ms)
{
    cr_assert(expect(s, needle, ms), "did not see \"%s\" in:\n%s", needle,
              s->buf ? (s->len > 3000 ? s->buf + s->len - 3000 : s->buf) : "");
}

static void run_case(const char *mode, const char *bob_ns, const char *path,
                     const char *relays)
{
    if (!th_is_root())
        cr_skip_test("needs root for network namespaces");
    if (system("command -v nft >/dev/null") != 0)
        cr_skip_test("nftables not installed (scripts/install-deps.sh)");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "sh %s up %s %s", th_source_path("tests/chat/nat_topo.sh"),
             prefix, mode);
    topo_up = true;
    cr_assert_eq(system(cmd), 0, "topology");
    snprintf(cmd, sizeof cmd, "mkdir -p %s/a %s/b && head -c 52428800 /dev/urandom > %s/big.bin"
             " && head -c 300000 /dev/urandom > %s/small.bin", dir, dir, dir, dir);
    cr_assert_eq(system(cmd), 0);

    char db[200], small[200];
    snprintf(db, sizeof db, "%s/chat.db", dir);
    snprintf(small, sizeof small, "%s/small.bin", dir);
    /* The server's own file: offered to every user at join. */
    const char *sargs[] = {"serve", "chat", "-b", "203.0.113.1", "--port", "7200", "--db", db,
                           "--pbkdf2-iter", "1000", "--grace", "0", "--room-file", small,
                           NULL};
    struct th_proc *srv = in_ns("pub", sargs);
    cr_assert_gt(th_wait_listening(srv, 10000, NULL, 0), 0);

    char adir[200], bdir[200];
    snprintf(adir, sizeof adir, "%s/a", dir);
    snprintf(bdir, sizeof bdir, "%s/b", dir);
    const char *aargs[] = {"chat", "203.0.113.1", "7200", "--name", "alice", "--dir", adir,
                           NULL};
    const char *bargs[] = {"chat", "203.0.113.1", "7200", "--name", "bob", "--dir", bdir,
                           NULL};
    static struct stream a, b;
    struct th_proc *bob = in_ns(bob_ns, bargs);
    stream_init(&b, bob->out);
    wait_for(&b, "-- you are bob", 10000);
    wait_for(&b, "-- the server offers small.bin (300000 bytes, SHA-256 ", 10000);
    struct th_proc *alice = in_ns("h1", aargs);
    stream_init(&a, alice->out);
    wait_for(&a, "-- you are alice", 10000);

    put(alice->in, "/connect bob\n");
    char want[128];
    snprintf(want, sizeof want, "[bob] -- connected: %s", path);
    wait_for(&a, want, 30000);
    snprintf(want, sizeof want, "[alice] -- connected: %s", path);
    wait_for(&b, want, 30000);
    if (!strcmp(mode, "symmetric")) {
        cr_assert_eq(count(&a, "[bob] -- no direct path; falling back to the relay through "
                               "the server\n"), 1, "%s", a.buf);
        /* The UDP step ran and failed first: nat2's random UDP ports. */
        cr_assert_eq(count(&a, "[bob] -- trying UDP hole punching\n"), 1, "%s", a.buf);
        cr_assert_eq(count(&a, "UDP hole punched"), 0, "%s", a.buf);
    }
    if (!strncmp(mode, "udp", 3)) {
        /* TCP punching ran and failed first; the stream is the stack's. */
        cr_assert_eq(count(&a, "[bob] -- hole punching with 203.0.113.12:"), 1, "%s", a.buf);
        cr_assert_eq(count(&a, "[bob] -- connected: UDP hole punched with 203.0.113.12:"), 1,
                     "%s", a.buf);
        cr_assert_eq(count(&b, "[alice] -- connected: UDP hole punched with 203.0.113.11:"),
                     1, "%s", b.buf);
        const char *at = strstr(a.buf, "[bob] -- connected: UDP hole punched with ");
        unsigned port = 0;
        char tail[40] = "";
        cr_assert_eq(sscanf(at, "[bob] -- connected: UDP hole punched with 203.0.113.12:%u "
                                "%39[^\n]", &port, tail), 2, "%s", at);
        cr_assert_str_eq(tail, "(user-space TCP)");
    }

    put(alice->in, "/to bob hello over the point-to-point path\n");
    wait_for(&b, "[alice] <alice> hello over the point-to-point path\n", 10000);
    put(bob->in, "/to alice and back\n");
    wait_for(&a, "[bob] <bob> and back\n", 10000);

    /* 50 MiB point-to-point while the server's own file comes. */
    snprintf(cmd, sizeof cmd, "/sendto bob %s/big.bin\n", dir);
    put(alice->in, cmd);
    wait_for(&a, "big.bin to bob (point-to-point)\n", 10000);
    put(bob->in, "/accept 1\n");
    wait_for(&b, "-- received file 1, SHA-256 verified:", 60000);
    cr_assert_eq(count(&b, "received file from peer"), 0,
                 "the server's file should arrive while the peer's is still coming");
    wait_for(&b, "[alice] -- received file from peer, SHA-256 verified:", 240000);
    wait_for(&a, "[bob] -- big.bin received by the peer, SHA-256 verified", 20000);
    snprintf(cmd, sizeof cmd, "cmp %s/big.bin %s/b/big.bin && cmp %s/small.bin %s/b/small.bin",
             dir, dir, dir, dir);
    cr_assert_eq(system(cmd), 0);
    if (!strcmp(mode, "udploss")) {
        /* nat2 did drop datagrams of the stream (its rule's counter). */
        snprintf(cmd, sizeof cmd, "ip netns exec %s-nat2 nft list table ip loss", prefix);
        FILE *f = popen(cmd, "r");
        char rules[2048] = "";
        size_t got = f ? fread(rules, 1, sizeof rules - 1, f) : 0;
        rules[got] = '\0';
        if (f)
            pclose(f);
        const char *at = strstr(rules, "counter packets ");
        cr_assert(at, "%s", rules);
        cr_assert_gt(atol(at + strlen("counter packets ")), 100, "%s", rules);
    }

    /* alice leaves: bob's side closes and says how many bytes its stream
     * carried each way; over the relay, the server passed exactly those. */
    put(alice->in, "/quit\n");
    wait_for(&b, "[alice] -- point-to-point connection closed (", 20000);
    unsigned long long sent, rcvd;
    cr_assert_eq(sscanf(b.buf + b.pos, "%llu bytes sent, %llu received)", &sent, &rcvd), 2,
                 "%s", b.buf + b.pos);
    /* At least the 50 MiB file went to bob, as base64 lines. */
    cr_assert_gt(rcvd, 52428800ull / 3 * 4);
    char relayed[96];
    if (!relays) {
        snprintf(relayed, sizeof relayed, "chat: 1 relays, %llu bytes relayed;", sent + rcvd);
        relays = relayed;
    }
    /* The server's own count of relayed bytes. */
    th_stop(srv, SIGTERM, 10000);
    char *err = NULL;
    th_read_all(srv->err, &err, 2000);
    cr_assert(err && strstr(err, relays), "server said (want \"%s\"):\n%s", relays,
              err ? err : "");
    free(err);
}

Test(chat_nat, both_behind_port_keeping_nats_connect_by_hole_punching)
{
    run_case("cone", "h2", "hole punched with 203.0.113.", "chat: 0 relays, 0 bytes relayed;");
}

Test(chat_nat, a_nat_that_defeats_punching_falls_back_to_the_relay)
{
    run_case("symmetric", "h2", "relayed by the server", NULL);
}

Test(chat_nat, two_peers_on_one_lan_connect_directly)
{
    run_case("cone", "h1b", "direct ", "chat: 0 relays, 0 bytes relayed;");
}

Test(chat_nat, a_nat_that_defeats_tcp_punching_is_punched_over_udp)
{
    run_case("udp", "h2", "UDP hole punched with 203.0.113.1",
             "chat: 0 relays, 0 bytes relayed;");
}

/* The same with 3% of the UDP datagrams through nat2 lost, either way:
 * the hellos and probes are retried, and our TCP over the path
 * retransmits, so lines and the 50 MiB arrive whole. */
Test(chat_nat, the_udp_path_carries_the_file_whole_across_loss)
{
    run_case("udploss", "h2", "UDP hole punched with 203.0.113.1",
             "chat: 0 relays, 0 bytes relayed;");
}

/* ---- the introduction's key ----------------------------------------------- */

/* Our client as alice on the loopback server, files into d. */
static struct th_proc *start_alice(int port, const char *d, struct stream *a)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct th_proc p;
    cr_assert_eq(th_spawn_cli(&p, "chat", "127.0.0.1", portstr, "--name", "alice", "--dir",
                              d, NULL), 0);
    struct th_proc *alice = track(p);
    stream_init(a, alice->out);
    wait_for(a, "-- you are alice", 10000);
    return alice;
}

/* alice asks for bob (this test, on stream b): the introduction's id and
 * key as bob got them; returns the port alice listens on. */
static int introduce(struct stream *a, struct stream *b, struct th_proc *alice,
                     long long *id, char key[40])
{
    put(alice->in, "/connect bob\n");
    wait_for(b, "P2P intro ", 10000);
    cr_assert_eq(sscanf(b->buf + b->pos, "%lld alice %39s 1", id, key), 2, "%s", b->buf);
    wait_for(a, "-- the server sees us at 127.0.0.1:", 10000);
    int port = atoi(a->buf + a->pos);
    cr_assert_gt(port, 0);
    return port;
}

Test(chat_nat, an_impostor_without_the_key_is_refused)
{
    struct th_proc *srv;
    int port = fx_server(&srv, 0, NULL);
    static struct stream a, b, m;
    struct th_proc *alice = start_alice(port, dir, &a);
    /* bob is this test: it learns the key from the introduction. */
    int bob = fx_join(port, &b, "bob");
    long long id;
    char key[40];
    int alice_port = introduce(&a, &b, alice, &id, key);

    /* The relay refuses a wrong key for the right introduction. */
    int mal = fx_raw(port, 0);
    stream_init(&m, mal);
    char line[200];
    snprintf(line, sizeof line, "/p2p relay %lld 1 %032d\n", id, 7);
    put(mal, line);
    wait_for(&m, "ERR p2p no such introduction (or a wrong key)\n", 10000);
    close(mal);

    /* alice's own port refuses a peer that cannot answer with the key. */
    ss_auth_key wrong, right;
    ss_auth_key_set(&wrong, "0123456789abcdef0123456789abcdef", 32);
    ss_auth_key_set(&right, key, 32);
    ss_auth st;
    mal = fx_raw(alice_port, 0);
    ss_auth_init(&st, SS_AUTH_CLIENT, SS_AUTH_MUTUAL, &wrong, NULL);
    cr_assert_neq(ss_auth_run_fd(&st, mal, 5000), 0);
    wait_for(&a, "[bob] -- refused a connection (direct from 127.0.0.1:", 10000);
    wait_for(&a, "): wrong introduction key\n", 1000);
    close(mal);
    cr_assert_eq(count(&a, "connected:"), 0);

    /* The real bob, with the key, is accepted and told to use this one. */
    int real = fx_raw(alice_port, 0);
    ss_auth_init(&st, SS_AUTH_CLIENT, SS_AUTH_MUTUAL, &right, NULL);
    cr_assert_eq(ss_auth_run_fd(&st, real, 5000), 0);
    static struct stream r;
    stream_init(&r, real);
    wait_for(&r, "USE\n", 10000);
    wait_for(&a, "[bob] -- connected: direct from 127.0.0.1:", 10000);
    put(real, "MSG 2026-12-03T12:00:00.000Z bob hello from the real bob\n");
    wait_for(&a, "[bob] <bob> hello from the real bob\n", 10000);
    /* alice's lines are the server's MSG lines: her time and nick. */
    put(alice->in, "/to bob hi back\n");
    wait_for(&r, "MSG 20", 10000);
    wait_for(&r, "Z alice hi back\n", 10000);
    close(real);
    close(bob);
}

/* This test as the peer of our client: a fresh introduction, then the
 * authenticated stream (auth client, side 1) once alice said "USE". */
static int peer_stream(struct stream *a, struct stream *b, struct th_proc *alice,
                       struct stream *r)
{
    long long id;
    char key[40];
    int port = introduce(a, b, alice, &id, key);
    ss_auth_key k;
    ss_auth_key_set(&k, key, 32);
    ss_auth st;
    int fd = fx_raw(port, 0);
    ss_auth_init(&st, SS_AUTH_CLIENT, SS_AUTH_MUTUAL, &k, NULL);
    cr_assert_eq(ss_auth_run_fd(&st, fd, 5000), 0);
    stream_init(r, fd);
    wait_for(r, "USE\n", 10000);
    return fd;
}

Test(chat_nat, an_interrupted_file_resumes_where_it_stopped)
{
    struct th_proc *srv;
    int port = fx_server(&srv, 0, NULL);
    static struct stream a, b, r1, r2;
    char rdir[200];
    snprintf(rdir, sizeof rdir, "%s/recv", dir);
    mkdir(rdir, 0700);
    struct th_proc *alice = start_alice(port, rdir, &a);
    int bob = fx_join(port, &b, "bob");
    /* 40 chunks of 2048 bytes; the first try stops after 15. */
    enum { CHUNKS = 40, CUT = 15, CH = 2048 };
    static unsigned char data[CHUNKS * CH];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 7 + i / 251);
    char src[256], sha[80], cmd[600];
    snprintf(src, sizeof src, "%s/data.bin", dir);
    FILE *f = fopen(src, "wb");
    cr_assert(f && fwrite(data, 1, sizeof data, f) == sizeof data);
    fclose(f);
    snprintf(cmd, sizeof cmd, "sha256sum %s | cut -c1-64 > %s/sha", src, dir);
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s/sha", dir);
    f = fopen(cmd, "r");
    cr_assert(f && fscanf(f, "%64s", sha) == 1);
    fclose(f);

    char line[4000], b64[3000];
    int fd = peer_stream(&a, &b, alice, &r1);
    snprintf(line, sizeof line, "FILE 1 %zu %s data.bin\n", sizeof data, sha);
    put(fd, line);
    wait_for(&r1, "RESUME 1 0\n", 10000);
    for (int c = 0; c < CUT; c++) {
        EVP_EncodeBlock((unsigned char *)b64, data + c * CH, CH);
        snprintf(line, sizeof line, "CHUNK 1 %d %s\n", c * CH, b64);
        put(fd, line);
    }
    /* A round trip, so that the chunks were taken before the cut. */
    /* The nick shown is the introduction's, whatever the line says. */
    put(fd, "MSG 2026-12-03T12:00:00.000Z mallory cut here\n");
    wait_for(&a, "[bob] <bob> cut here\n", 10000);
    close(fd);
    wait_for(&a, "[bob] -- point-to-point connection closed", 10000);

    /* A second introduction: alice says where to go on from. */
    fd = peer_stream(&a, &b, alice, &r2);
    snprintf(line, sizeof line, "FILE 1 %zu %s data.bin\n", sizeof data, sha);
    put(fd, line);
    snprintf(line, sizeof line, "RESUME 1 %d\n", CUT * CH);
    wait_for(&r2, line, 10000);
    for (int c = CUT; c < CHUNKS; c++) {
        EVP_EncodeBlock((unsigned char *)b64, data + c * CH, CH);
        snprintf(line, sizeof line, "CHUNK 1 %d %s\n", c * CH, b64);
        put(fd, line);
    }
    put(fd, "FILEEND 1\n");
    wait_for(&r2, "DONE 1\n", 10000);
    wait_for(&a, "-- received file from peer, SHA-256 verified:", 10000);
    snprintf(cmd, sizeof cmd, "cmp %s %s/data.bin", src, rdir);
    cr_assert_eq(system(cmd), 0);
    /* No partial file is left behind. */
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A %s | grep part)\"", rdir);
    cr_assert_eq(system(cmd), 0);
    close(fd);
    close(bob);
}

/* ---- UDP hole punching on loopback ---------------------------------------- */

/* A UDP socket on 127.0.0.1, connected to the server's UDP port; its own
 * port in *own. */
static int udp_to(int port, int *own)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *own = ntohs(a.sin_port);
    a.sin_port = htons((uint16_t)port);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* "P2PU hello ID SIDE MAC" with key, padded with spaces to pad bytes (0:
 * not padded); its length. */
static size_t hello(char *buf, long long id, int side, const char *key, size_t pad)
{
    char text[64], mac[33];
    snprintf(text, sizeof text, "hello %lld %d", id, side);
    ss_chat_p2p_udp_mac(key, text, mac);
    size_t n = (size_t)snprintf(buf, 256, "P2PU %s %s", text, mac);
    for (; n < pad; n++)
        buf[n] = ' ';
    return n;
}

/* The next datagram within ms into buf (NUL-terminated): its length, or
 * -1 when none came. */
static ssize_t udp_answer(int fd, char *buf, size_t cap, int ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (poll(&pfd, 1, ms) <= 0)
        return -1;
    ssize_t n = recv(fd, buf, cap - 1, 0);
    cr_assert_geq(n, 0);
    buf[n] = '\0';
    return n;
}

/* Send the n-byte hello msg on fd: the answer must be "P2PU TEXT MAC",
 * MAC that of text with key, and no longer than the hello. */
static void answered(int fd, const char *msg, size_t n, const char *key, const char *text)
{
    char ans[512], mac[33], want[300];
    cr_assert_eq(send(fd, msg, n, 0), (ssize_t)n);
    ssize_t got = udp_answer(fd, ans, sizeof ans, 3000);
    ss_chat_p2p_udp_mac(key, text, mac);
    snprintf(want, sizeof want, "P2PU %s %s", text, mac);
    cr_assert_str_eq(ans, want);
    cr_assert_leq(got, (ssize_t)n);
}

Test(chat_nat, the_udp_rendezvous_answers_only_authentic_hellos_never_with_more_bytes)
{
    struct th_proc *srv;
    int port = fx_server(&srv, 0, NULL);
    static struct stream a, b;
    int alice = fx_join(port, &a, "alice");
    int bob = fx_join(port, &b, "bob");
    put(alice, "/connect bob\n");
    wait_for(&b, "P2P intro ", 10000);
    long long id;
    char key[40];
    cr_assert_eq(sscanf(b.buf + b.pos, "%lld alice %39s 1", &id, key), 2, "%s", b.buf);
    int p0, p1, p2;
    int u0 = udp_to(port, &p0), u1 = udp_to(port, &p1), u2 = udp_to(port, &p2);
    char msg[512], ans[512], text[240];
    enum { HELLO = SS_CHAT_P2P_UDP_HELLO };

    /* A hello with the wrong key: ignored. */
    size_t n = hello(msg, id, 0, "0123456789abcdef0123456789abcdef", HELLO);
    cr_assert_eq(send(u0, msg, n, 0), (ssize_t)n);
    cr_assert_eq(udp_answer(u0, ans, sizeof ans, 300), -1, "answered: %s", ans);
    /* An authentic hello too short to hold the answer: ignored (no
     * amplification: the answer would be longer than the hello). */
    n = hello(msg, id, 0, key, 0);
    cr_assert_lt(n, 60);
    cr_assert_eq(send(u0, msg, n, 0), (ssize_t)n);
    cr_assert_eq(udp_answer(u0, ans, sizeof ans, 300), -1, "answered: %s", ans);
    /* Longer than a hello: ignored. */
    memset(msg, ' ', HELLO + 1);
    cr_assert_eq(send(u0, msg, HELLO + 1, 0), HELLO + 1);
    cr_assert_eq(udp_answer(u0, ans, sizeof ans, 300), -1, "answered: %s", ans);

    /* The real one: the address the server saw, with the key's MAC, in no
     * more bytes than the hello. */
    n = hello(msg, id, 0, key, HELLO);
    cr_assert_eq(n, HELLO);
    snprintf(text, sizeof text, "ok %lld 0 127.0.0.1:%d", id, p0);
    answered(u0, msg, n, key, text);
    /* The same authentic hello replayed from another address (a spoofer
     * who saw it): side 0's address is taken, nothing changes. */
    cr_assert_eq(send(u2, msg, n, 0), (ssize_t)n);
    cr_assert_eq(udp_answer(u2, ans, sizeof ans, 300), -1, "answered: %s", ans);

    /* Side 1: both addresses known, each side's answer names the other. */
    n = hello(msg, id, 1, key, HELLO);
    snprintf(text, sizeof text, "peer %lld 1 127.0.0.1:%d 127.0.0.1:%d", id, p1, p0);
    answered(u1, msg, n, key, text);
    n = hello(msg, id, 0, key, HELLO);
    snprintf(text, sizeof text, "peer %lld 0 127.0.0.1:%d 127.0.0.1:%d", id, p0, p1);
    answered(u0, msg, n, key, text);

    close(u0);
    close(u1);
    close(u2);
    close(alice);
    close(bob);
    th_stop(srv, SIGTERM, 10000);
    char *err = NULL;
    th_read_all(srv->err, &err, 2000);
    /* Answered: 3 (side 0, side 1, side 0 again); ignored: the wrong key,
     * the short one, the long one, the replay. */
    cr_assert(err && strstr(err, "UDP rendezvous: 3 hellos answered, 4 datagrams ignored\n"),
              "%s", err ? err : "");
    free(err);
}

/* Two of our clients on loopback that skip the TCP steps: the path is
 * UDP hole punching, the stream our user-space TCP over it; lines both
 * ways, a file, and the close reach the other side; nothing relayed. */
Test(chat_nat, clients_that_skip_tcp_connect_over_udp_with_the_user_space_stack)
{
    struct th_proc *srv;
    int port = fx_server(&srv, 0, NULL);
    char portstr[16], adir[200], bdir[200], cmd[600];
    snprintf(portstr, sizeof portstr, "%d", port);
    snprintf(adir, sizeof adir, "%s/a", dir);
    snprintf(bdir, sizeof bdir, "%s/b", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p %s %s && head -c 3000000 /dev/urandom > %s/f.bin",
             adir, bdir, dir);
    cr_assert_eq(system(cmd), 0);
    static struct stream a, b;
    struct th_proc p;
    cr_assert_eq(th_spawn_cli(&p, "chat", "127.0.0.1", portstr, "--name", "bob", "--dir", bdir,
                              "--p2p-skip", "direct,punch", NULL), 0);
    struct th_proc *bob = track(p);
    stream_init(&b, bob->out);
    wait_for(&b, "-- you are bob", 10000);
    cr_assert_eq(th_spawn_cli(&p, "chat", "127.0.0.1", portstr, "--name", "alice", "--dir",
                              adir, "--p2p-skip", "direct,punch", NULL), 0);
    struct th_proc *alice = track(p);
    stream_init(&a, alice->out);
    wait_for(&a, "-- you are alice", 10000);
    put(alice->in, "/connect bob\n");
    wait_for(&a, "[bob] -- connected: UDP hole punched with 127.0.0.1:", 10000);
    wait_for(&a, " (user-space TCP)\n", 1000);
    wait_for(&b, "[alice] -- connected: UDP hole punched with 127.0.0.1:", 10000);
    cr_assert_eq(count(&a, "hole punching with 127.0.0.1"), 1, "%s", a.buf); /* UDP's only */

    put(alice->in, "/to bob over our own TCP\n");
    wait_for(&b, "[alice] <alice> over our own TCP\n", 10000);
    put(bob->in, "/to alice and back\n");
    wait_for(&a, "[bob] <bob> and back\n", 10000);
    snprintf(cmd, sizeof cmd, "/sendto bob %s/f.bin\n", dir);
    put(alice->in, cmd);
    wait_for(&b, "[alice] -- received file from peer, SHA-256 verified:", 60000);
    wait_for(&a, "[bob] -- f.bin received by the peer, SHA-256 verified", 20000);
    snprintf(cmd, sizeof cmd, "cmp %s/f.bin %s/f.bin", dir, bdir);
    cr_assert_eq(system(cmd), 0);
    /* alice leaves: her stack's FIN reaches bob over UDP. */
    put(alice->in, "/quit\n");
    wait_for(&b, "[alice] -- point-to-point connection closed (", 20000);
    th_stop(srv, SIGTERM, 10000);
    char *err = NULL;
    th_read_all(srv->err, &err, 2000);
    cr_assert(err && strstr(err, "chat: 0 relays, 0 bytes relayed;"), "%s", err ? err : "");
    free(err);
}
