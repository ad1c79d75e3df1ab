/* sockstack link (the impairment relay) and `stack up` with the link model,
 * against the kernel's own TCP/UDP. Each relay test makes two network
 * namespaces named with the worker's pid (ip netns add) and deletes them
 * in the suite's teardown, which also runs after a failed assertion:
 *
 *   ns A: TUN ta, 10.77.1.1/16 ---- sockstack link ---- ns B: TUN tb, 10.77.2.1/16
 *
 * A /16 on both devices routes each side's addresses into its TUN, so
 * 10.77.1.1 and 10.77.2.1 reach each other across the relay. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "pkt.h"
#include "sockstack/link.h"
#include "sockstack/reactor.h"
#include "sockstack/relay.h"

#define ADDR_A "10.77.1.1"
#define ADDR_B "10.77.2.1"

static char ns[2][32];
static char tmpdir[64];
static struct th_proc relay_p = {.pid = -1, .in = -1, .out = -1, .err = -1};
static struct th_proc peer_p = {.pid = -1, .in = -1, .out = -1, .err = -1};

static void teardown(void)
{
    th_reap(&relay_p);
    th_reap(&peer_p);
    char cmd[256];
    for (int i = 0; i < 2; i++) {
        if (ns[i][0]) {
            snprintf(cmd, sizeof cmd, "ip netns del %s 2>/dev/null", ns[i]);
            if (system(cmd) != 0) {
                /* already gone */
            }
        }
    }
    if (tmpdir[0]) {
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
        if (system(cmd) != 0) {
            /* nothing more to do */
        }
    }
}

TestSuite(relay, .fini = teardown, .timeout = 120);

#ifdef SS_RELAY_INTEROP
/* This build holds only the long interop test (its own meson test, so the
 * quick ones stay quick); the helpers of the others go unused. */
#pragma GCC diagnostic ignored "-Wunused-function"
#endif

/* A scratch directory, removed in teardown. */
static void make_tmpdir(void)
{
    char cmd[128];
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ss-relay-%d", (int)getpid());
    snprintf(cmd, sizeof cmd, "mkdir -p %s", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

/* Two fresh namespaces with lo up; a scratch directory. */
static void make_namespaces(void)
{
    if (!th_is_root())
        cr_skip_test("needs root: network namespaces and TUN devices");
    char cmd[256];
    for (int i = 0; i < 2; i++) {
        snprintf(ns[i], sizeof ns[i], "ssrl%c-%d", 'a' + i, (int)getpid());
        snprintf(cmd, sizeof cmd, "ip netns add %s && ip -n %s link set lo up", ns[i], ns[i]);
        cr_assert_eq(system(cmd), 0, "%s", cmd);
    }
    make_tmpdir();
}

/* Start `sockstack link` between ta@A and tb@B with extra options; wait for
 * "ready". */
static void start_relay(const char *extra[])
{
    char tun_a[64], tun_b[64];
    snprintf(tun_a, sizeof tun_a, "ta@%s", ns[0]);
    snprintf(tun_b, sizeof tun_b, "tb@%s", ns[1]);
    const char *argv[40] = {th_sockstack(), "link", "--tun-a", tun_a, "--tun-b", tun_b,
                            "--addr-a", ADDR_A "/16", "--addr-b", ADDR_B "/16"};
    int n = 10;
    for (int i = 0; extra && extra[i]; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    cr_assert_eq(th_spawn(&relay_p, (char *const *)argv), 0);
    char buf[1024];
    if (!th_read_until(relay_p.err, "ready", buf, sizeof buf, 10000)) {
        int st = th_wait(&relay_p, 2000);
        relay_p.pid = -1;
        cr_assert_fail("link did not come up (status %d): %s", st, buf);
    }
}

/* One direction's counters as `link` printed them at exit. */
struct counts {
    long received, forwarded, lost, queue_drops, duplicated, corrupted, reordered, not_ipv4;
};

static struct counts parse_counts(const char *out, const char *dir)
{
    struct counts c;
    memset(&c, 0xff, sizeof c);
    const char *p = strstr(out, dir);
    cr_assert(p, "no '%s' line in: %s", dir, out);
    int n = sscanf(p + strlen(dir),
                   ": received=%ld forwarded=%ld lost=%ld queue_drops=%ld duplicated=%ld "
                   "corrupted=%ld reordered=%ld not_ipv4=%ld",
                   &c.received, &c.forwarded, &c.lost, &c.queue_drops, &c.duplicated,
                   &c.corrupted, &c.reordered, &c.not_ipv4);
    cr_assert_eq(n, 8, "cannot parse: %s", p);
    return c;
}

/* SIGINT relay_p, assert a clean exit; its stdout (or stderr), malloc'd. */
static char *stop_collect(bool want_err)
{
    int st = th_stop(&relay_p, SIGINT, 15000);
    relay_p.pid = -1;
    char *out = NULL;
    ssize_t n = th_read_all(want_err ? relay_p.err : relay_p.out, &out, 5000);
    th_close_fds(&relay_p);
    out = realloc(out, (size_t)n + 1);
    out[n] = '\0';
    cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "did not exit cleanly (status %d): %s", st, out);
    return out;
}

/* SIGINT: exit 0; the counters of both directions. */
static void stop_relay(struct counts *ab, struct counts *ba)
{
    char *out = stop_collect(false);
    *ab = parse_counts(out, "a->b");
    *ba = parse_counts(out, "b->a");
    free(out);
}

/* A socket created inside namespace `name` (it stays there). */
static int ns_socket(const char *name, int type)
{
    char path[96];
    snprintf(path, sizeof path, "/run/netns/%s", name);
    int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    int target = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert(self >= 0 && target >= 0);
    cr_assert_eq(setns(target, CLONE_NEWNET), 0, "setns %s: %s", name, strerror(errno));
    int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    cr_assert_eq(setns(self, CLONE_NEWNET), 0);
    close(self);
    close(target);
    cr_assert_geq(fd, 0);
    return fd;
}

static struct sockaddr_in sin_of(const char *addr, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, addr, &a.sin_addr);
    return a;
}

/* n UDP datagrams of 100 bytes from A to B:5000; returns B's socket with
 * whatever arrived waiting in it (nothing is read yet). */
static int send_datagrams(int n)
{
    int rx = ns_socket(ns[1], SOCK_DGRAM);
    int big = 4 << 20; /* room for all of them, whatever rmem_default says */
    cr_assert_eq(setsockopt(rx, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big), 0);
    struct sockaddr_in b = sin_of(ADDR_B, 5000);
    cr_assert_eq(bind(rx, (struct sockaddr *)&b, sizeof b), 0, "%s", strerror(errno));
    int tx = ns_socket(ns[0], SOCK_DGRAM);
    char msg[100];
    memset(msg, 'x', sizeof msg);
    for (int i = 0; i < n; i++) {
        msg[0] = (char)i;
        cr_assert_eq(sendto(tx, msg, sizeof msg, 0, (struct sockaddr *)&b, sizeof b),
                     (ssize_t)sizeof msg, "%s", strerror(errno));
    }
    close(tx);
    return rx;
}

/* Read datagrams until want have come (each wait up to 5 s for the next),
 * then whatever else is already there; returns the count. */
static int count_datagrams(int fd, int want)
{
    char buf[256];
    int got = 0;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (got < want && recv(fd, buf, sizeof buf, 0) > 0)
        got++;
    while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
        got++;
    return got;
}

static void run(const char *cmd)
{
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static void sha256_of(const char *path, char out[65])
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "sha256sum %s", path);
    FILE *f = popen(cmd, "r");
    cr_assert(f);
    cr_assert_eq(fscanf(f, "%64s", out), 1);
    pclose(f);
}

/* ---- (a) a perfect path carries the kernel's TCP exactly ------------------ */

/* Packets in a pcap file (records after the 24-byte file header). */
static long pcap_count(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "%s: %s", path, strerror(errno));
    unsigned char hdr[24], rec[16];
    cr_assert_eq(fread(hdr, 1, sizeof hdr, f), sizeof hdr);
    long n = 0;
    while (fread(rec, 1, sizeof rec, f) == sizeof rec) {
        uint32_t incl;
        memcpy(&incl, rec + 8, 4);
        cr_assert_eq(fseek(f, incl, SEEK_CUR), 0);
        n++;
    }
    fclose(f);
    return n;
}

Test(relay, no_impairment_forwards_a_kernel_tcp_transfer_exactly)
{
    make_namespaces();
    char tap[96];
    snprintf(tap, sizeof tap, "%s/a.pcap", tmpdir);
    const char *extra[] = {"--pcap-a", tap, NULL};
    start_relay(extra);
    char cmd[512], src[96], dst[96];
    snprintf(src, sizeof src, "%s/data", tmpdir);
    snprintf(dst, sizeof dst, "%s/got", tmpdir);
    snprintf(cmd, sizeof cmd, "head -c 4194304 /dev/urandom > %s", src);
    run(cmd);
    const char *srv[] = {"ip", "netns", "exec", ns[1], "socat", "-u",
                         "TCP-LISTEN:5001,bind=" ADDR_B ",reuseaddr", NULL, NULL};
    char create[128];
    snprintf(create, sizeof create, "CREATE:%s", dst);
    srv[7] = create;
    cr_assert_eq(th_spawn(&peer_p, (char *const *)srv), 0);
    /* socat has bound when a connect no longer fails; retry the sender. */
    snprintf(cmd, sizeof cmd,
             "for i in $(seq 100); do ip netns exec %s socat -u FILE:%s "
             "TCP:" ADDR_B ":5001 2>/dev/null && exit 0; sleep 0.05; done; exit 1",
             ns[0], src);
    run(cmd);
    int st = th_wait(&peer_p, 20000);
    peer_p.pid = -1;
    th_close_fds(&peer_p);
    cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "socat server: %d", st);
    char h1[65], h2[65];
    sha256_of(src, h1);
    sha256_of(dst, h2);
    cr_assert_str_eq(h1, h2, "what arrived differs from what was sent");
    struct counts ab, ba;
    stop_relay(&ab, &ba);
    /* Everything offered went through: no fate but delivery. */
    cr_assert_geq(ab.received, 2897, "4 MiB in segments of at most 1448 bytes: %ld",
                  ab.received);
    cr_assert_eq(ab.forwarded, ab.received);
    cr_assert_eq(ba.forwarded, ba.received);
    cr_assert_eq(ab.lost + ab.queue_drops + ab.duplicated + ab.corrupted + ab.reordered, 0);
    cr_assert_eq(ba.lost + ba.queue_drops + ba.duplicated + ba.corrupted + ba.reordered, 0);
    cr_assert_eq(ab.not_ipv4 + ba.not_ipv4, 0);
    /* Side A's tap: what A sent into the path and what it got back. */
    cr_assert_eq(pcap_count(tap), ab.received + ba.forwarded);
}

/* ---- (b) a dead direction passes nothing, and counts what it ate --------- */

Test(relay, full_loss_one_way_passes_nothing_and_counts_every_packet)
{
    make_namespaces();
    const char *extra[] = {"--a-to-b", "loss=100", NULL};
    start_relay(extra);
    int rx = send_datagrams(50);
    struct counts ab, ba;
    stop_relay(&ab, &ba); /* the path is gone: nothing can still arrive */
    char buf[256];
    cr_assert_eq(recv(rx, buf, sizeof buf, MSG_DONTWAIT), -1, "a datagram got through");
    close(rx);
    cr_assert_eq(ab.received, 50);
    cr_assert_eq(ab.lost, 50);
    cr_assert_eq(ab.forwarded, 0);
    cr_assert_eq(ba.received, 0);
    cr_assert_eq(ba.forwarded, 0);
}

/* ---- (c) a seed gives the same fates for the same packets ---------------- */

/* What the model itself decides for n packets of 128 bytes (100 of UDP
 * payload + 28 of headers) at this loss and seed, one direction only. */
static uint64_t model_losses(int n, double loss, uint64_t seed)
{
    struct ss_sim_params p[2];
    ss_sim_params_init(&p[0]);
    p[0].loss = loss;
    p[0].mtu = 65535;
    p[1] = p[0];
    ss_sim *s;
    cr_assert_eq(ss_sim_new(&s, p, seed), 0);
    uint8_t pkt[128] = {0x45};
    for (int i = 0; i < n; i++)
        cr_assert_eq(ss_sim_send(s, 0, 0, pkt, sizeof pkt), 0);
    struct ss_sim_stats st;
    ss_sim_get_stats(s, 0, &st);
    ss_sim_free(s);
    return st.lost;
}

static void seeded_run(const char *seed, long want_lost)
{
    const char *extra[] = {"--loss", "10", "--seed", seed, NULL};
    start_relay(extra);
    int rx = send_datagrams(300);
    int got = count_datagrams(rx, 300 - (int)want_lost);
    close(rx);
    struct counts ab, ba;
    stop_relay(&ab, &ba);
    cr_assert_eq(ab.received, 300);
    cr_assert_eq(ab.lost, want_lost, "seed %s: %ld lost", seed, ab.lost);
    cr_assert_eq(ab.forwarded, 300 - want_lost);
    cr_assert_eq(got, 300 - want_lost, "B received %d", got);
    cr_assert_eq(ba.received, 0);
}

Test(relay, seeded_loss_counts_are_reproducible)
{
    make_namespaces();
    /* The relay's fates are the model's: the same counts as ss_sim itself. */
    cr_assert_eq(model_losses(300, 0.10, 7), 31);
    cr_assert_eq(model_losses(300, 0.10, 8), 29);
    seeded_run("7", 31);
    seeded_run("7", 31);
    seeded_run("8", 29);
}

/* ---- stack up: the stack behind the same model --------------------------- */

Test(relay, stack_up_link_options_put_the_stack_behind_the_model)
{
    th_enter_netns();
    char tun[32];
    snprintf(tun, sizeof tun, "ssr%d", (int)getpid() % 100000);
    const char *argv[] = {th_sockstack(), "stack", "up", "--tun", tun, "--addr",
                          "10.78.0.2/24", "--serve", "echo:7", "--from-stack", "loss=100",
                          NULL};
    cr_assert_eq(th_spawn(&relay_p, (char *const *)argv), 0);
    cr_assert_eq(th_wait_listening(&relay_p, 10000, NULL, 0), 7);
    /* Echo requests reach the stack; its replies all die on the way out. */
    run("ping -n -q -c 3 -i 0.2 -W 1 10.78.0.2 >/dev/null 2>&1; test $? = 1");
    char *err = stop_collect(true);
    cr_assert(strstr(err, "link stack -> device: received=3 forwarded=0 lost=3 "), "%s", err);
    cr_assert(strstr(err, "link device -> stack: received=3 forwarded=3 lost=0 "), "%s", err);
    free(err);
}

#ifdef SS_RELAY_INTEROP
/* ---- the kernel's TCP and ours across the lossy path ---------------------- */

#define STACK_ADDR "10.79.0.2"
#define KERNEL_ADDR "10.79.0.1"

/* Frames of pcap matching the tshark display filter. */
static long tshark_count(const char *pcap, const char *filter)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "tshark -n -r '%s' -Y '%s' 2>/dev/null | wc -l", pcap, filter);
    FILE *f = popen(cmd, "r");
    cr_assert(f);
    long n = -1;
    cr_assert_eq(fscanf(f, "%ld", &n), 1);
    pclose(f);
    return n;
}

/* 20 MiB from the kernel to the stack's echo service and 20 MiB back, at
 * 1% loss and 20 ms each way: what comes back is what went out, and every
 * packet of the run decodes cleanly in tshark. */
Test(relay, kernel_and_stack_exchange_20MiB_each_way_at_1pct_loss_20ms, .timeout = 360)
{
    th_enter_netns();
    make_tmpdir();
    char tun[32], pcap[96], src[96], dst[96], cmd[512];
    snprintf(tun, sizeof tun, "ssk%d", (int)getpid() % 100000);
    snprintf(pcap, sizeof pcap, "%s/stack.pcap", tmpdir);
    snprintf(src, sizeof src, "%s/data", tmpdir);
    snprintf(dst, sizeof dst, "%s/back", tmpdir);
    const char *argv[] = {th_sockstack(), "stack", "up", "--tun", tun, "--addr",
                          STACK_ADDR "/24", "--serve", "echo:7", "--loss", "1", "--delay",
                          "20", "--seed", "3", "--pcap", pcap, NULL};
    cr_assert_eq(th_spawn(&relay_p, (char *const *)argv), 0);
    cr_assert_eq(th_wait_listening(&relay_p, 10000, NULL, 0), 7);
    snprintf(cmd, sizeof cmd, "head -c 20971520 /dev/urandom > %s", src);
    run(cmd);
    /* Kernel TCP: the file out, the echo into another file; socat waits for
     * the echo's end of stream after its own (-t). */
    snprintf(cmd, sizeof cmd,
             "socat -t 200 -b 65536 OPEN:%s,rdonly!!CREATE:%s TCP:" STACK_ADDR ":7", src, dst);
    run(cmd);
    char h1[65], h2[65];
    sha256_of(src, h1);
    sha256_of(dst, h2);
    cr_assert_str_eq(h1, h2, "the echo differs from what was sent");
    char *err = stop_collect(true);
    cr_assert(strstr(err, "link stack -> device: received="), "%s", err);
    free(err);
    long count = 0, bad = 0;
    cr_assert_eq(tp_tshark_check_from_kernel(pcap, KERNEL_ADDR, &count, &bad), 0);
    cr_assert_geq(count, 2 * 14364, "20 MiB each way is at least 14364 segments: %ld", count);
    cr_assert_eq(bad, 0, "%ld malformed or bad-checksum packets in %s", bad, pcap);
    /* Window scaling, timestamps and SACK offered by both SYNs... */
    const char *all3 = "tcp.options.wscale.shift && tcp.options.timestamp.tsval && "
                       "tcp.options.sack_perm";
    char f[512];
    snprintf(f, sizeof f, "tcp.flags.syn==1 && tcp.flags.ack==0 && ip.src==" KERNEL_ADDR);
    long syn = tshark_count(pcap, f);
    snprintf(f, sizeof f, "tcp.flags.syn==1 && tcp.flags.ack==0 && ip.src==" KERNEL_ADDR
                          " && %s", all3);
    cr_assert_eq(tshark_count(pcap, f), syn, "the kernel's SYN lacks an option");
    snprintf(f, sizeof f, "tcp.flags.syn==1 && tcp.flags.ack==1 && ip.src==" STACK_ADDR);
    long synack = tshark_count(pcap, f);
    cr_assert_geq(synack, 1);
    snprintf(f, sizeof f, "tcp.flags.syn==1 && tcp.flags.ack==1 && ip.src==" STACK_ADDR
                          " && %s", all3);
    cr_assert_eq(tshark_count(pcap, f), synack, "the stack's SYN,ACK lacks an option");
    /* ...timestamps on every segment after them (RSTs aside)... */
    cr_assert_eq(tshark_count(pcap, "tcp && !tcp.options.timestamp.tsval && "
                                    "tcp.flags.reset==0"), 0);
    /* ...and SACK blocks in use both ways: 1% loss leaves holes each way. */
    cr_assert_gt(tshark_count(pcap, "tcp.options.sack_le && ip.src==" STACK_ADDR), 0);
    cr_assert_gt(tshark_count(pcap, "tcp.options.sack_le && ip.src==" KERNEL_ADDR), 0);
}

#else /* the quick tests */

/* ---- the library: two application sides, no devices, no root ----------- */

struct app_rx {
    int n[2];    /* packets delivered to side 0 / 1 */
    size_t bytes;
};

static void app_deliver(void *arg, int side, const uint8_t *pkt, size_t len)
{
    struct app_rx *rx = arg;
    rx->n[side]++;
    rx->bytes += len;
}

/* Inject n 128-byte IPv4 packets from side 0 (and one not-IPv4 packet),
 * run the loop until the link is empty; the counters of A -> B. */
static struct ss_relay_stats app_run(const struct ss_sim_params *ab, uint64_t seed, int n,
                                     struct app_rx *rx)
{
    ss_loop *loop;
    cr_assert_eq(ss_loop_new(&loop), 0);
    struct ss_relay_cfg cfg;
    ss_relay_cfg_default(&cfg);
    cfg.link[0] = *ab;
    cfg.seed = seed;
    cfg.deliver = app_deliver;
    cfg.deliver_arg = rx;
    ss_relay *r;
    cr_assert_eq(ss_relay_new(loop, &cfg, &r), 0);
    uint8_t pkt[128] = {0x45};
    for (int i = 0; i < n; i++)
        cr_assert_eq(ss_relay_inject(r, 0, pkt, sizeof pkt), 0);
    uint8_t v6[40] = {0x60};
    cr_assert_eq(ss_relay_inject(r, 0, v6, sizeof v6), 0);
    for (int i = 0; i < 1000 && ss_relay_pending(r); i++)
        ss_loop_run_once(loop, 100);
    ss_loop_run_once(loop, 0); /* the deferred service of the last inject */
    cr_assert_eq(ss_relay_pending(r), 0);
    struct ss_relay_stats st, back;
    ss_relay_get_stats(r, 0, &st);
    ss_relay_get_stats(r, 1, &back);
    cr_assert_eq(back.received, 0);
    ss_relay_free(r);
    ss_loop_free(loop);
    return st;
}

Test(relay, library_fates_are_the_models_and_every_packet_is_counted)
{
    struct ss_sim_params p;
    ss_sim_params_init(&p);
    p.mtu = 65535;
    p.loss = 0.10;
    struct app_rx rx = {{0, 0}, 0};
    struct ss_relay_stats st = app_run(&p, 7, 300, &rx);
    cr_assert_eq(st.received, 301);
    cr_assert_eq(st.not_ipv4, 1);
    cr_assert_eq(st.link.lost, model_losses(300, 0.10, 7));
    cr_assert_eq(st.link.lost, 31);
    cr_assert_eq(st.forwarded, 269);
    cr_assert_eq(rx.n[1], 269);
    cr_assert_eq(rx.n[0], 0);
    cr_assert_eq(rx.bytes, 269 * 128);
}

Test(relay, library_duplicates_and_counts_queue_drops)
{
    struct ss_sim_params p;
    ss_sim_params_init(&p);
    p.mtu = 65535;
    p.dup = 1.0;
    p.delay_us = 20000; /* everything is held at once: the queue decides */
    p.queue_limit = 50;
    struct app_rx rx = {{0, 0}, 0};
    struct ss_relay_stats st = app_run(&p, 1, 40, &rx);
    /* 25 packets and their copies fill the 50 places; 15 find it full. */
    cr_assert_eq(st.link.duplicated, 25);
    cr_assert_eq(st.link.dropped_queue, 15);
    cr_assert_eq(st.forwarded, 50);
    cr_assert_eq(rx.n[1], 50);
}

Test(relay, library_rejects_what_it_cannot_run)
{
    ss_loop *loop;
    cr_assert_eq(ss_loop_new(&loop), 0);
    struct ss_relay_cfg cfg;
    ss_relay_cfg_default(&cfg);
    ss_relay *r = NULL;
    cr_assert_eq(ss_relay_new(loop, &cfg, &r), -EINVAL, "application sides need deliver");
    cfg.deliver = app_deliver;
    cfg.link[1].loss = 1.5;
    cr_assert_eq(ss_relay_new(loop, &cfg, &r), -EINVAL, "a probability above 1");
    cfg.link[1].loss = 0;
    cr_assert_eq(ss_relay_new(loop, &cfg, &r), 0);
    uint8_t pkt[20] = {0x45};
    cr_assert_eq(ss_relay_inject(r, 2, pkt, sizeof pkt), -EINVAL);
    cr_assert_eq(ss_relay_inject(r, 0, pkt, 0), -EINVAL);
    ss_relay_free(r);
    ss_loop_free(loop);
}

/* ---- options --------------------------------------------------------------- */

static void usage_error(const char *const args[], const char *needle)
{
    struct th_result r = th_run_cli(args, 10000);
    cr_assert_eq(r.status, 2, "status %d: %s", r.status, r.err);
    cr_assert(strstr(r.err, needle), "%s", r.err);
    th_result_free(&r);
}

Test(relay, usage_errors_exit_2_with_a_reason)
{
    const char *a[] = {"link", "--tun-a", "x", NULL};
    usage_error(a, "--tun-a and --tun-b are both required");
    const char *b[] = {"link", "--tun-a", "x", "--tun-b", "x", NULL};
    usage_error(b, "name the same device");
    const char *c[] = {"link", "--tun-a", "x", "--tun-b", "y", "--a-to-b", "lose=1", NULL};
    usage_error(c, "--a-to-b: 'lose' is not KEY=VALUE");
    const char *d[] = {"link", "--tun-a", "x", "--tun-b", "y", "--loss", "101", NULL};
    usage_error(d, "--loss");
    const char *e[] = {"link", "--tun-a", "x@", "--tun-b", "y", NULL};
    usage_error(e, "empty namespace");
    const char *f[] = {"stack", "up", "--tun", "x", "--addr", "10.0.0.2/24", "--serve",
                       "echo:7", "--seed", "3", NULL};
    usage_error(f, "--seed is the link model's");
    const char *g[] = {"stack", "demo", "--b-to-a", "delay=x", NULL};
    usage_error(g, "--b-to-a delay=");
}

Test(relay, help_lists_the_shared_link_options)
{
    const char *cmds[][3] = {{"link", "--help", NULL}, {"stack", "up", "--help"},
                             {"stack", "demo", "--help"}};
    for (int i = 0; i < 3; i++) {
        const char *args[4] = {cmds[i][0], cmds[i][1], cmds[i][2], NULL};
        struct th_result r = th_run_cli(args, 10000);
        cr_assert_eq(r.status, 0);
        cr_assert(strstr(r.out, "  --loss PCT          drop probability"), "%s", r.out);
        cr_assert(strstr(r.out, "  --queue N           packets the link holds"), "%s", r.out);
        th_result_free(&r);
    }
}

#endif
