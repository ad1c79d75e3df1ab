/* link layer: PRNG, simulated link, pcap tap, TUN device. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "pkt.h"
#include "sockstack/link.h"

/* ---- PRNG ---------------------------------------------------------------- */

Test(prng, splitmix_seeding_matches_the_reference)
{
    /* splitmix64 from state 0: first output 0xe220a8397b1dcdaf (Vigna's
     * reference implementation), which becomes xoshiro's first word. */
    struct ss_prng r;
    ss_prng_seed(&r, 0);
    cr_assert_eq(r.s[0], 0xe220a8397b1dcdafull);
    cr_assert_eq(r.s[1], 0x6e789e6aa1b965f4ull);
}

Test(prng, same_seed_same_stream_other_seed_other_stream)
{
    struct ss_prng a, b, c;
    ss_prng_seed(&a, 42);
    ss_prng_seed(&b, 42);
    ss_prng_seed(&c, 43);
    int diff = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = ss_prng_next(&a);
        cr_assert_eq(x, ss_prng_next(&b));
        diff += x != ss_prng_next(&c);
    }
    cr_assert_gt(diff, 990);
}

Test(prng, fill_gives_the_bytes_of_next_in_order)
{
    for (size_t len = 0; len < 40; len++) {
        struct ss_prng a, b;
        ss_prng_seed(&a, 7);
        ss_prng_seed(&b, 7);
        uint8_t got[48], want[48];
        memset(got, 0xaa, sizeof got);
        memset(want, 0xaa, sizeof want);
        ss_prng_fill(&a, got, len);
        for (size_t i = 0; i < len; i += 8) {
            uint64_t v = ss_prng_next(&b);
            memcpy(want + i, &v, len - i < 8 ? len - i : 8);
        }
        cr_assert_arr_eq(got, want, sizeof got, "len %zu", len);
        cr_assert_eq(ss_prng_next(&a), ss_prng_next(&b), "state after len %zu", len);
    }
}

Test(prng, below_stays_in_range_and_unit_below_one)
{
    struct ss_prng r;
    ss_prng_seed(&r, 7);
    int seen[10] = {0};
    for (int i = 0; i < 10000; i++) {
        uint64_t v = ss_prng_below(&r, 10);
        cr_assert_lt(v, 10);
        seen[v]++;
        double u = ss_prng_unit(&r);
        cr_assert(u >= 0.0 && u < 1.0);
    }
    for (int i = 0; i < 10; i++)
        cr_assert(seen[i] > 800 && seen[i] < 1200, "bucket %d has %d", i, seen[i]);
    cr_assert_eq(ss_prng_below(&r, 0), 0);
}

/* ---- simulated link ------------------------------------------------------ */

/* A packet whose bytes say which one it is. */
static size_t make_pkt(uint8_t *buf, uint32_t i, size_t len)
{
    for (size_t k = 0; k < len; k++)
        buf[k] = (uint8_t)(i * 31 + k);
    memcpy(buf, &i, sizeof i);
    return len;
}

static uint32_t pkt_id(const uint8_t *buf)
{
    uint32_t i;
    memcpy(&i, buf, sizeof i);
    return i;
}

struct run {
    uint8_t *log; /* (to, at, len, bytes) of every delivery, concatenated */
    size_t len, cap;
    uint32_t ids[20000];
    uint64_t ats[20000];
    size_t n;
};

static void log_bytes(struct run *r, const void *p, size_t n)
{
    if (r->len + n > r->cap) {
        r->cap = (r->len + n) * 2;
        r->log = realloc(r->log, r->cap);
    }
    memcpy(r->log + r->len, p, n);
    r->len += n;
}

/* Send count packets from endpoint 0, one every gap_us, draining the link
 * as virtual time advances; record every delivery. */
static void drive(ss_sim *s, struct run *r, uint32_t count, uint64_t gap_us,
                  size_t plen)
{
    uint8_t buf[2000], out[2000];
    uint64_t now = 0;
    uint32_t sent = 0;
    for (;;) {
        uint64_t next_send = sent < count ? (uint64_t)sent * gap_us : UINT64_MAX;
        uint64_t next_dl = ss_sim_next_deadline(s);
        uint64_t next = next_send < next_dl ? next_send : next_dl;
        if (next == UINT64_MAX)
            break;
        cr_assert_geq(next, now);
        now = next;
        if (next_send == now) {
            size_t n = make_pkt(buf, sent, plen);
            cr_assert_eq(ss_sim_send(s, 0, now, buf, n), 0);
            sent++;
        }
        int to;
        uint64_t at;
        ssize_t got;
        while ((got = ss_sim_deliver(s, now, &to, &at, out, sizeof out)) > 0) {
            cr_assert_eq(to, 1);
            cr_assert_eq(at, now);
            log_bytes(r, &to, sizeof to);
            log_bytes(r, &at, sizeof at);
            log_bytes(r, out, (size_t)got);
            if (r->n < 20000) {
                r->ids[r->n] = pkt_id(out);
                r->ats[r->n] = at;
            }
            r->n++;
        }
        cr_assert_geq(got, 0);
    }
}

static struct ss_sim_params everything(void)
{
    struct ss_sim_params p;
    ss_sim_params_init(&p);
    p.delay_us = 10000;
    p.jitter_us = 2000;
    p.bandwidth_bps = 10000000;
    p.loss = 0.05;
    p.dup = 0.05;
    p.reorder = 0.05;
    p.corrupt = 0.05;
    return p;
}

static ss_sim *new_sim(struct ss_sim_params p, uint64_t seed)
{
    struct ss_sim_params pp[2] = {p, p};
    ss_sim *s = NULL;
    cr_assert_eq(ss_sim_new(&s, pp, seed), 0);
    return s;
}

Test(sim, same_seed_gives_the_same_run_byte_for_byte)
{
    struct run *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b),
               *c = calloc(1, sizeof *c);
    ss_sim *s1 = new_sim(everything(), 1234), *s2 = new_sim(everything(), 1234),
           *s3 = new_sim(everything(), 1235);
    drive(s1, a, 2000, 500, 1000);
    drive(s2, b, 2000, 500, 1000);
    drive(s3, c, 2000, 500, 1000);
    cr_assert_gt(a->len, 0);
    cr_assert_eq(a->len, b->len);
    cr_assert_eq(memcmp(a->log, b->log, a->len), 0);
    cr_assert(a->len != c->len || memcmp(a->log, c->log, a->len) != 0,
              "another seed must give another run");
    struct ss_sim_stats st;
    ss_sim_get_stats(s1, 0, &st);
    cr_assert_eq(st.sent, 2000);
    cr_assert_eq(st.delivered, st.sent - st.lost - st.dropped_queue + st.duplicated);
    cr_assert_eq(ss_sim_pending(s1), 0);
    ss_sim_free(s1);
    ss_sim_free(s2);
    ss_sim_free(s3);
    free(a->log);
    free(b->log);
    free(c->log);
    free(a);
    free(b);
    free(c);
}

Test(sim, perfect_link_delivers_in_order_after_the_delay)
{
    struct ss_sim_params p;
    ss_sim_params_init(&p);
    p.delay_us = 2500;
    ss_sim *s = new_sim(p, 1);
    struct run *r = calloc(1, sizeof *r);
    drive(s, r, 100, 1000, 100);
    cr_assert_eq(r->n, 100);
    for (uint32_t i = 0; i < 100; i++) {
        cr_assert_eq(r->ids[i], i);
        cr_assert_eq(r->ats[i], (uint64_t)i * 1000 + 2500);
    }
    ss_sim_free(s);
    free(r->log);
    free(r);
}

Test(sim, bandwidth_serialises_packets)
{
    struct ss_sim_params p;
    ss_sim_params_init(&p);
    p.bandwidth_bps = 12000000; /* 1500 bytes = 12000 bits = 1 ms */
    p.delay_us = 100;
    ss_sim *s = new_sim(p, 1);
    struct run *r = calloc(1, sizeof *r);
    drive(s, r, 10, 0, 1500); /* all ten at t=0 */
    cr_assert_eq(r->n, 10);
    for (uint32_t i = 0; i < 10; i++)
        cr_assert_eq(r->ats[i], (uint64_t)(i + 1) * 1000 + 100);
    ss_sim_free(s);
    free(r->log);
    free(r);
}

Test(sim, full_queue_drops_the_tail_and_counts_it)
{
    struct ss_sim_params p;
    ss_sim_params_init(&p);
    p.bandwidth_bps = 1000000;
    p.queue_limit = 10;
    ss_sim *s = new_sim(p, 1);
    struct run *r = calloc(1, sizeof *r);
    drive(s, r, 25, 0, 1000);
    struct ss_sim_stats st;
    ss_sim_get_stats(s, 0, &st);
    cr_assert_eq(st.dropped_queue, 15);
    cr_assert_eq(r->n, 10);
    for (uint32_t i = 0; i < 10; i++)
        cr_assert_eq(r->ids[i], i, "the first ten are kept, the tail dropped");
    ss_sim_free(s);
    free(r->log);
    free(r);
}

Test(sim, loss_drops_about_the_given_fraction)
{
    struct ss_sim_params p;
    ss_sim_params_init(&p);
    p.loss = 0.2;
    ss_sim *s = new_sim(p, 99);
    struct run *r = calloc(1, sizeof *r);
    drive(s, r, 10000, 10, 64);
    struct ss_sim_stats st;
    ss_sim_get_stats(s, 0, &st);
    cr_assert_eq(st.lost + r->n, 10000);
    cr_assert(st.lost > 1800 && st.lost < 2200, "lost %lu of 10000 at 20%%",
              (unsigned long)st.lost);
    for (size_t i = 1; i < r->n; i++)
        cr_assert_gt(r->ids[i], r->ids[i - 1], "loss alone must not reorder");
    ss_sim_free(s);
    free(r->log);
    free(r);

    p.loss = 1.0;
    s = new_sim(p, 99);
    r = calloc(1, sizeof *r);
    drive(s, r, 100, 10, 64);
    cr_assert_eq(r->n, 0);
    ss_sim_free(s);
    free(r->log);
    free(r);
}

Test(sim, duplication_delivers_copies_back_to_back)
{
    struct ss_sim_params p;
    ss_sim_params_init(&p);
    p.dup = 1.0;
    ss_sim *s = new_sim(p, 5);
    struct run *r = calloc(1, sizeof *r);
    drive(s, r, 50, 100, 80);
    cr_assert_eq(r->n, 100);
    for (uint32_t i = 0; i < 50; i++) {
        cr_assert_eq(r->ids[2 * i], i);
        cr_assert_eq(r->ids[2 * i + 1], i);
    }
    ss_sim_free(s);
    free(r->log);
    free(r);

    p.dup = 0.1;
    s = new_sim(p, 5);
    r = calloc(1, sizeof *r);
    drive(s, r, 5000, 10, 80);
    struct ss_sim_stats st;
    ss_sim_get_stats(s, 0, &st);
    cr_assert_eq(r->n, 5000 + st.duplicated);
    cr_assert(st.duplicated > 400 && st.duplicated < 600);
    ss_sim_free(s);
    free(r->log);
    free(r);
}

Test(sim, reordering_lets_later_packets_overtake_jitter_does_not)
{
    struct ss_sim_params p;
    ss_sim_params_init(&p);
    p.delay_us = 5000;
    p.jitter_us = 3000;
    ss_sim *s = new_sim(p, 11);
    struct run *r = calloc(1, sizeof *r);
    drive(s, r, 2000, 100, 64);
    cr_assert_eq(r->n, 2000);
    for (size_t i = 1; i < r->n; i++)
        cr_assert_gt(r->ids[i], r->ids[i - 1], "jitter must keep order");
    ss_sim_free(s);
    free(r->log);
    free(r);

    p.reorder = 0.1;
    p.reorder_us = 1000;
    s = new_sim(p, 11);
    r = calloc(1, sizeof *r);
    drive(s, r, 2000, 100, 64);
    cr_assert_eq(r->n, 2000);
    struct ss_sim_stats st;
    ss_sim_get_stats(s, 0, &st);
    size_t inversions = 0;
    for (size_t i = 1; i < r->n; i++)
        inversions += r->ids[i] < r->ids[i - 1];
    cr_assert(st.reordered > 150 && st.reordered < 250);
    /* Each held-back packet is overtaken by the ~10 sent in its 1 ms. */
    cr_assert_gt(inversions, st.reordered / 2);
    cr_assert_leq(inversions, st.reordered);
    ss_sim_free(s);
    free(r->log);
    free(r);
}

Test(sim, corruption_flips_exactly_one_bit)
{
    struct ss_sim_params p;
    ss_sim_params_init(&p);
    p.corrupt = 1.0;
    ss_sim *s = new_sim(p, 3);
    uint8_t buf[600], out[600];
    for (uint32_t i = 0; i < 200; i++) {
        size_t n = make_pkt(buf, i, sizeof buf);
        cr_assert_eq(ss_sim_send(s, 1, i, buf, n), 0);
        int to;
        ssize_t got = ss_sim_deliver(s, i, &to, NULL, out, sizeof out);
        cr_assert_eq(got, (ssize_t)n);
        cr_assert_eq(to, 0);
        int bits = 0;
        for (size_t k = 0; k < n; k++)
            bits += __builtin_popcount((unsigned)(buf[k] ^ out[k]));
        cr_assert_eq(bits, 1);
    }
    struct ss_sim_stats st;
    ss_sim_get_stats(s, 1, &st);
    cr_assert_eq(st.corrupted, 200);
    ss_sim_free(s);
}

/* A fate callback decides packet by packet (this is how fuzz_simnet steers
 * the link); returning false leaves the packet to the parameters. */
static int fate_calls;
static bool scripted_fate(void *arg, int from, const uint8_t *pkt, size_t len,
                          struct ss_sim_fate *f)
{
    (void)arg;
    cr_assert_eq(from, 0);
    cr_assert_eq(len, 80);
    cr_assert_eq(pkt_id(pkt), (uint32_t)fate_calls);
    switch (fate_calls++) {
    case 0: *f = (struct ss_sim_fate){0}; return true;
    case 1: *f = (struct ss_sim_fate){.lose = true}; return true;
    case 2: *f = (struct ss_sim_fate){.dup = true}; return true;
    case 3: *f = (struct ss_sim_fate){.hold_us = 5000}; return true;
    case 4:
        *f = (struct ss_sim_fate){.corrupt = true, .corrupt_at = 90, .corrupt_mask = 0xff};
        return true; /* offset 90 of 80 bytes: byte 10 */
    case 5: *f = (struct ss_sim_fate){.extra_delay_us = 300}; return true;
    default: return false;
    }
}

Test(sim, a_fate_callback_decides_each_packet)
{
    struct ss_sim_params p;
    ss_sim_params_init(&p);
    p.delay_us = 1000;
    ss_sim *s = new_sim(p, 9);
    ss_sim_set_fate(s, scripted_fate, NULL);
    fate_calls = 0;
    struct run *r = calloc(1, sizeof *r);
    drive(s, r, 10, 100, 80);
    cr_assert_eq(fate_calls, 10);
    /* 1 lost, 2 twice, 3 held back behind all others, 5 delayed by 300 µs
     * and (order kept) 6-8 behind it at the same instant. */
    static const uint32_t ids[] = {0, 2, 2, 4, 5, 6, 7, 8, 9, 3};
    static const uint64_t ats[] = {1000, 1200, 1200, 1400, 1800, 1800, 1800, 1800, 1900, 6300};
    cr_assert_eq(r->n, 10);
    for (size_t i = 0; i < 10; i++) {
        cr_assert_eq(r->ids[i], ids[i], "delivery %zu: packet %u", i, r->ids[i]);
        cr_assert_eq(r->ats[i], ats[i], "delivery %zu at %llu", i,
                     (unsigned long long)r->ats[i]);
    }
    /* Packet 4 (delivery 3): byte 10 is XORed with 0xff. Each log entry is
     * (to, at, 80 bytes). */
    size_t entry = sizeof(int) + sizeof(uint64_t) + 80;
    cr_assert_eq(r->log[3 * entry + sizeof(int) + sizeof(uint64_t) + 10],
                 (uint8_t)((4 * 31 + 10) ^ 0xff));
    struct ss_sim_stats st;
    ss_sim_get_stats(s, 0, &st);
    cr_assert_eq(st.lost, 1);
    cr_assert_eq(st.duplicated, 1);
    cr_assert_eq(st.reordered, 1);
    cr_assert_eq(st.corrupted, 1);
    cr_assert_eq(st.delivered, 10);
    ss_sim_free(s);
    free(r->log);
    free(r);
}

Test(sim, bad_arguments_are_refused)
{
    struct ss_sim_params p[2];
    ss_sim_params_init(&p[0]);
    ss_sim_params_init(&p[1]);
    p[1].loss = 1.5;
    ss_sim *s = NULL;
    cr_assert_eq(ss_sim_new(&s, p, 1), -EINVAL);
    cr_assert_eq(ss_sim_new(&s, NULL, 1), 0);
    uint8_t big[2000] = {0}, small[10];
    cr_assert_eq(ss_sim_send(s, 0, 0, big, sizeof big), -EMSGSIZE);
    cr_assert_eq(ss_sim_send(s, 2, 0, big, 10), -EINVAL);
    cr_assert_eq(ss_sim_send(s, 0, 0, big, 100), 0);
    int to;
    cr_assert_eq(ss_sim_deliver(s, 0, &to, NULL, small, sizeof small), -EMSGSIZE);
    cr_assert_eq(ss_sim_pending(s), 1, "a packet too big for the buffer stays");
    cr_assert_eq(ss_sim_deliver(s, 0, &to, NULL, big, sizeof big), 100);
    cr_assert_eq(ss_sim_next_deadline(s), UINT64_MAX);
    ss_sim_free(s);
}

/* ---- pcap ---------------------------------------------------------------- */

static void tmp_path(char *buf, size_t cap, const char *tag)
{
    snprintf(buf, cap, "/tmp/ss-test-%s-%d.pcap", tag, (int)getpid());
}

struct tap_ctx { ss_pcap *pcap; int sends; };

static void tap_to_pcap(void *arg, enum ss_sim_tap_point pt, int from,
                        uint64_t id, uint64_t now, const uint8_t *pkt, size_t len)
{
    struct tap_ctx *t = arg;
    cr_assert_eq(pt, SS_SIM_TAP_SEND);
    cr_assert_eq(id, (uint64_t)t->sends);
    cr_assert_eq(ss_pcap_write(t->pcap, now, pkt, len), 0);
    t->sends++;
}

Test(pcap, sim_tap_writes_a_file_tshark_reads_clean, .timeout = 60)
{
    char path[128];
    tmp_path(path, sizeof path, "tap");
    struct tap_ctx t = {0};
    cr_assert_eq(ss_pcap_open(&t.pcap, path), 0);
    struct ss_sim_params p = everything();
    ss_sim *s = new_sim(p, 8);
    ss_sim_set_tap(s, SS_SIM_TAP_SEND, tap_to_pcap, &t);
    uint8_t pkt[1500], out[1500];
    uint64_t now = 0;
    for (int i = 0; i < 40; i++, now += 1000) {
        char msg[64];
        int m = snprintf(msg, sizeof msg, "datagram %d", i);
        size_t n = tp_udp(pkt, sizeof pkt, 0x0a000001, 5000, 0x0a000002,
                          (uint16_t)(6000 + i), msg, (size_t)m);
        cr_assert_eq(ss_sim_send(s, i & 1, now, pkt, n), 0);
        int to;
        while (ss_sim_deliver(s, now, &to, NULL, out, sizeof out) > 0)
            ;
    }
    cr_assert_eq(t.sends, 40);
    cr_assert_eq(ss_pcap_count(t.pcap), 40);
    ss_pcap_close(t.pcap);
    ss_sim_free(s);
    long count, bad;
    cr_assert_eq(tp_tshark_check(path, &count, &bad), 0, "tshark failed on %s", path);
    cr_assert_eq(count, 40);
    cr_assert_eq(bad, 0);
    /* Timestamps come from the virtual clock: frame 3 at t = 2 ms. */
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "tshark -r '%s' -Y frame.number==3 -T fields -e frame.time_epoch "
             "-e udp.dstport 2>/dev/null", path);
    FILE *f = popen(cmd, "r");
    char line[128] = "";
    cr_assert(fgets(line, sizeof line, f));
    pclose(f);
    cr_assert_str_eq(line, "0.002000000\t6002\n");
    unlink(path);
}

Test(pcap, a_corrupted_checksum_is_what_tshark_flags)
{
    /* The check itself can fail: a packet with a broken checksum is seen. */
    char path[128];
    tmp_path(path, sizeof path, "bad");
    ss_pcap *pc;
    cr_assert_eq(ss_pcap_open(&pc, path), 0);
    uint8_t pkt[100];
    size_t n = tp_udp(pkt, sizeof pkt, 0x0a000001, 1, 0x0a000002, 2, "xy", 2);
    cr_assert_eq(ss_pcap_write(pc, 1, pkt, n), 0);
    pkt[10] ^= 0xff; /* IP header checksum */
    cr_assert_eq(ss_pcap_write(pc, 2, pkt, n), 0);
    ss_pcap_close(pc);
    long count, bad;
    cr_assert_eq(tp_tshark_check(path, &count, &bad), 0);
    cr_assert_eq(count, 2);
    cr_assert_eq(bad, 1);
    unlink(path);
}

Test(pcap, unwritable_path_is_an_error)
{
    ss_pcap *pc = NULL;
    int rc = ss_pcap_open(&pc, "/nonexistent-dir/x.pcap");
    cr_assert_eq(rc, -ENOENT);
}

/* ---- TUN ----------------------------------------------------------------- */

Test(tun, kernel_packets_come_out_and_ours_go_in, .timeout = 30)
{
    if (!th_is_root())
        cr_skip_test("needs root: TUN device in a private network namespace");
    /* A private namespace of this test process only: it and the device
     * vanish when the process exits, also when an assertion fails. */
    cr_assert_eq(unshare(CLONE_NEWNET), 0, "unshare: %s", strerror(errno));
    char ifname[32];
    int fd = ss_tun_open("sstest%d", ifname, sizeof ifname);
    cr_assert_geq(fd, 0, "tun open: %s", strerror(-fd));
    cr_assert_eq(strncmp(ifname, "sstest", 6), 0);
    struct in_addr kaddr = {htonl(0x0a090001)};
    cr_assert_eq(ss_tun_configure(ifname, kaddr, 24, 1400), 0);
    uint8_t buf[2000];
    cr_assert_eq(ss_tun_read(fd, buf, sizeof buf), -EAGAIN, "non-blocking");
    char v6[128];
    snprintf(v6, sizeof v6, "/proc/sys/net/ipv6/conf/%s/disable_ipv6", ifname);
    FILE *f6 = fopen(v6, "r");
    if (f6) { /* IPv6 off: nothing but IPv4 comes out of the device */
        cr_assert_eq(fgetc(f6), '1');
        fclose(f6);
    }

    /* Kernel -> device: a UDP datagram to the stack's address 10.9.0.2. */
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in me = {.sin_family = AF_INET, .sin_port = htons(4000),
                             .sin_addr = kaddr};
    cr_assert_eq(bind(s, (struct sockaddr *)&me, sizeof me), 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(7),
                             .sin_addr = {htonl(0x0a090002)}};
    cr_assert_eq(sendto(s, "hello", 5, 0, (struct sockaddr *)&to, sizeof to), 5);
    ssize_t n;
    {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        cr_assert_eq(poll(&pfd, 1, 5000), 1);
        n = ss_tun_read(fd, buf, sizeof buf);
        cr_assert_eq(buf[0], 0x45, "first packet out is our IPv4 datagram");
        cr_assert_eq(buf[9], 17);
    }
    cr_assert_eq(n, 33);
    cr_assert_eq(memcmp(buf + 12, "\x0a\x09\x00\x01\x0a\x09\x00\x02", 8), 0);
    cr_assert_eq(memcmp(buf + 20, "\x0f\xa0\x00\x07", 4), 0);
    cr_assert_eq(memcmp(buf + 28, "hello", 5), 0);

    /* Device -> kernel: our reply, built byte by byte, reaches the socket. */
    uint8_t pkt[100];
    size_t len = tp_udp(pkt, sizeof pkt, 0x0a090002, 7, 0x0a090001, 4000, "HELLO", 5);
    cr_assert_eq(ss_tun_write(fd, pkt, len), 0);
    struct pollfd pfd = {.fd = s, .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, 5000), 1);
    char got[16];
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    cr_assert_eq(recvfrom(s, got, sizeof got, 0, (struct sockaddr *)&from, &fl), 5);
    cr_assert_eq(memcmp(got, "HELLO", 5), 0);
    cr_assert_eq(ntohs(from.sin_port), 7);
    close(s);
    cr_assert_eq(ss_tun_down(ifname), 0);
    close(fd);
}

Test(tun, bad_names_are_refused)
{
    char ifname[32];
    cr_assert_eq(ss_tun_open("a-name-that-is-too-long", ifname, sizeof ifname),
                 -ENAMETOOLONG);
    cr_assert_eq(ss_tun_configure("", (struct in_addr){0}, 24, 0), -EINVAL);
    cr_assert_eq(ss_tun_configure("x", (struct in_addr){0}, 31, 0), -EINVAL);
}

struct story { int sends, lost, qdrop, delivered; uint64_t last_id; int id_errors; };

static void tap_story(void *arg, enum ss_sim_tap_point pt, int from, uint64_t id,
                      uint64_t now, const uint8_t *pkt, size_t len)
{
    struct story *s = arg;
    switch (pt) {
    case SS_SIM_TAP_SEND:
        s->id_errors += id != (uint64_t)s->sends;
        s->sends++;
        s->last_id = id;
        break;
    case SS_SIM_TAP_LOST: s->lost++; s->id_errors += id != s->last_id; break;
    case SS_SIM_TAP_QDROP: s->qdrop++; s->id_errors += id != s->last_id; break;
    case SS_SIM_TAP_DELIVER:
        s->delivered++;
        s->id_errors += id != pkt_id(pkt);
        break;
    }
}

Test(sim, tap_tells_every_packets_fate)
{
    struct ss_sim_params p;
    ss_sim_params_init(&p);
    p.loss = 0.3;
    p.dup = 0.2;
    p.bandwidth_bps = 8000000;
    p.queue_limit = 20;
    ss_sim *s = new_sim(p, 77);
    struct story st = {0};
    ss_sim_set_tap(s, SS_SIM_TAP_SEND | SS_SIM_TAP_DELIVER | SS_SIM_TAP_LOST |
                          SS_SIM_TAP_QDROP, tap_story, &st);
    struct run *r = calloc(1, sizeof *r);
    drive(s, r, 3000, 500, 1000); /* 1 ms to send each, offered every 0.5 ms */
    struct ss_sim_stats ss;
    ss_sim_get_stats(s, 0, &ss);
    cr_assert_eq(st.id_errors, 0);
    cr_assert_eq(st.sends, 3000);
    cr_assert_eq((uint64_t)st.lost, ss.lost);
    cr_assert_eq((uint64_t)st.qdrop, ss.dropped_queue);
    cr_assert_gt(ss.dropped_queue, 0);
    cr_assert_eq((uint64_t)st.delivered, ss.delivered);
    cr_assert_eq(ss.delivered, 3000 - ss.lost - ss.dropped_queue + ss.duplicated);
    ss_sim_free(s);
    free(r->log);
    free(r);
}
