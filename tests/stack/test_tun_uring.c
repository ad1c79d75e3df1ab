/* ss_tun_txq and ss_tun_rxq (link/tun_uring.c): packets written together
 * and read together, through io_uring and through write(2)/read(2), over
 * an AF_UNIX SOCK_SEQPACKET pair standing in for the TUN device (one
 * packet per read and per write, as a TUN fd gives). Exact bytes, order,
 * counts, system calls and errors either way. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sockstack/link.h"
#include "harness.h"

static int wire[2];

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, wire), 0);
    int big = 4 << 20;
    setsockopt(wire[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    setsockopt(wire[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
}

static void teardown(void)
{
    close(wire[0]);
    if (wire[1] >= 0)
        close(wire[1]);
}

/* Packet i: len(i) bytes, each (i * 7 + k) & 0xff. */
static size_t len_of(unsigned i) { return 20 + (i * 97) % (SS_TUN_TXQ_MTU - 20); }

static void fill(uint8_t *p, unsigned i)
{
    for (size_t k = 0; k < len_of(i); k++)
        p[k] = (uint8_t)(i * 7 + k);
}

/* The next packet on the test's end is packet i, byte for byte. */
static void expect(unsigned i)
{
    uint8_t got[SS_TUN_TXQ_MTU + 1], want[SS_TUN_TXQ_MTU];
    ssize_t n = read(wire[1], got, sizeof got);
    cr_assert_eq(n, (ssize_t)len_of(i), "packet %u: %zd bytes, want %zu", i, n, len_of(i));
    fill(want, i);
    cr_assert_eq(memcmp(got, want, len_of(i)), 0, "packet %u differs", i);
}

static void expect_none(void)
{
    uint8_t b[16];
    cr_assert_eq(read(wire[1], b, sizeof b), -1);
    cr_assert_eq(errno, EAGAIN);
}

static bool uring_allowed(void)
{
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
    int v = 0;
    if (f) {
        if (fscanf(f, "%d", &v) != 1)
            v = 0;
        fclose(f);
    }
    return v == 0;
}

/* 300 packets (more than the 256 slots): the first 256 go out when the
 * 257th is put, the rest on flush; nothing before; all in order. */
static void batch_in_order(unsigned flags)
{
    ss_tun_txq *q;
    cr_assert_eq(ss_tun_txq_new(wire[0], flags, &q), 0);
    if (flags & SS_TUN_TXQ_NO_URING)
        cr_assert_not(ss_tun_txq_uring(q));
    else if (uring_allowed())
        cr_assert(ss_tun_txq_uring(q), "io_uring is allowed here but not in use");
    uint8_t p[SS_TUN_TXQ_MTU];
    uint64_t bytes = 0;
    for (unsigned i = 0; i < 3; i++) {
        fill(p, i);
        cr_assert_eq(ss_tun_txq_put(q, p, len_of(i)), 0);
        bytes += len_of(i);
    }
    cr_assert_eq(ss_tun_txq_pending(q), 3);
    expect_none(); /* queued, not written */
    cr_assert_eq(ss_tun_txq_flush(q), 0);
    cr_assert_eq(ss_tun_txq_pending(q), 0);
    for (unsigned i = 0; i < 3; i++)
        expect(i);
    expect_none();

    for (unsigned i = 3; i < 300; i++) {
        fill(p, i);
        cr_assert_eq(ss_tun_txq_put(q, p, len_of(i)), 0);
        bytes += len_of(i);
    }
    cr_assert_eq(ss_tun_txq_pending(q), 300 - 3 - SS_TUN_TXQ_SLOTS);
    for (unsigned i = 3; i < 3 + SS_TUN_TXQ_SLOTS; i++)
        expect(i);
    expect_none();
    cr_assert_eq(ss_tun_txq_flush(q), 0);
    for (unsigned i = 3 + SS_TUN_TXQ_SLOTS; i < 300; i++)
        expect(i);
    expect_none();
    cr_assert_eq(ss_tun_txq_flush(q), 0); /* empty: nothing, no error */

    struct ss_tun_txq_stats st;
    ss_tun_txq_get_stats(q, &st);
    cr_assert_eq(st.packets, 300);
    cr_assert_eq(st.bytes, bytes);
    cr_assert_eq(st.dropped, 0);
    ss_tun_txq_free(q);
}

Test(tun_txq, io_uring_writes_every_packet_once_in_order, .init = setup, .fini = teardown)
{
    batch_in_order(0);
}

Test(tun_txq, write2_writes_every_packet_once_in_order, .init = setup, .fini = teardown)
{
    batch_in_order(SS_TUN_TXQ_NO_URING);
}

Test(tun_txq, a_packet_above_the_slot_size_is_refused, .init = setup, .fini = teardown)
{
    ss_tun_txq *q;
    cr_assert_eq(ss_tun_txq_new(wire[0], 0, &q), 0);
    static uint8_t p[SS_TUN_TXQ_MTU + 1];
    cr_assert_eq(ss_tun_txq_put(q, p, sizeof p), -EMSGSIZE);
    cr_assert_eq(ss_tun_txq_pending(q), 0);
    cr_assert_eq(ss_tun_txq_put(q, p, SS_TUN_TXQ_MTU), 0);
    cr_assert_eq(ss_tun_txq_pending(q), 1);
    ss_tun_txq_free(q);
}

/* Writes that fail are counted, with their error, and the queue is empty
 * after: the next flush does not write them again. */
static void failed_writes_counted(unsigned flags)
{
    ss_tun_txq *q;
    cr_assert_eq(ss_tun_txq_new(wire[0], flags, &q), 0);
    close(wire[1]);
    wire[1] = -1;
    uint8_t p[64] = {1};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ss_tun_txq_put(q, p, sizeof p), 0);
    cr_assert_eq(ss_tun_txq_flush(q), -EPIPE);
    struct ss_tun_txq_stats st;
    ss_tun_txq_get_stats(q, &st);
    cr_assert_eq(st.dropped, 5);
    cr_assert_eq(st.packets, 0);
    cr_assert_eq(st.last_err, -EPIPE);
    cr_assert_eq(ss_tun_txq_pending(q), 0);
    cr_assert_eq(ss_tun_txq_flush(q), 0);
    ss_tun_txq_get_stats(q, &st);
    cr_assert_eq(st.dropped, 5);
    ss_tun_txq_free(q);
}

Test(tun_txq, io_uring_counts_failed_writes, .init = setup, .fini = teardown)
{
    failed_writes_counted(0);
}

Test(tun_txq, write2_counts_failed_writes, .init = setup, .fini = teardown)
{
    failed_writes_counted(SS_TUN_TXQ_NO_URING);
}

/* ---- reads --------------------------------------------------------------- */

static void put_packets(unsigned from, unsigned to)
{
    uint8_t p[SS_TUN_TXQ_MTU];
    for (unsigned i = from; i < to; i++) {
        fill(p, i);
        cr_assert_eq(write(wire[1], p, len_of(i)), (ssize_t)len_of(i));
    }
}

static void got_packets(const uint8_t **pkts, const size_t *lens, int n, unsigned from)
{
    uint8_t want[SS_TUN_TXQ_MTU];
    for (int k = 0; k < n; k++) {
        unsigned i = from + (unsigned)k;
        cr_assert_eq(lens[k], len_of(i), "packet %u: %zu bytes, want %zu", i, lens[k], len_of(i));
        fill(want, i);
        cr_assert_eq(memcmp(pkts[k], want, len_of(i)), 0, "packet %u differs", i);
    }
}

/* What the device has comes back in order, byte for byte, up to max per
 * call; an empty device gives 0. */
static void reads_in_order(unsigned flags)
{
    ss_tun_rxq *q;
    cr_assert_eq(ss_tun_rxq_new(wire[0], SS_TUN_TXQ_MTU, 64, NULL, 0, flags, &q), 0);
    if (flags & SS_TUN_TXQ_NO_URING)
        cr_assert_not(ss_tun_rxq_uring(q));
    else if (uring_allowed())
        cr_assert(ss_tun_rxq_uring(q), "io_uring is allowed here but not in use");
    const uint8_t *pkts[64];
    size_t lens[64];
    cr_assert_eq(ss_tun_rxq_read(q, pkts, lens, 64), 0);
    put_packets(0, 5);
    int n = ss_tun_rxq_read(q, pkts, lens, 64);
    cr_assert_eq(n, 5);
    got_packets(pkts, lens, n, 0);
    cr_assert_eq(ss_tun_rxq_read(q, pkts, lens, 64), 0);
    put_packets(5, 15);
    n = ss_tun_rxq_read(q, pkts, lens, 4);
    cr_assert_eq(n, 4);
    got_packets(pkts, lens, n, 5);
    n = ss_tun_rxq_read(q, pkts, lens, 64);
    cr_assert_eq(n, 6);
    got_packets(pkts, lens, n, 9);
    put_packets(15, 115); /* more than the 64 slots */
    n = ss_tun_rxq_read(q, pkts, lens, 64);
    cr_assert_eq(n, 64);
    got_packets(pkts, lens, n, 15);
    n = ss_tun_rxq_read(q, pkts, lens, 64);
    cr_assert_eq(n, 36);
    got_packets(pkts, lens, n, 79);
    ss_tun_rxq_free(q);
}

Test(tun_rxq, io_uring_reads_every_packet_once_in_order, .init = setup, .fini = teardown)
{
    reads_in_order(0);
}

Test(tun_rxq, read2_reads_every_packet_once_in_order, .init = setup, .fini = teardown)
{
    reads_in_order(SS_TUN_TXQ_NO_URING);
}

/* The rounds: 2 reads first, doubled while every read brings a packet;
 * the next call starts from what the last one found, and after a call
 * that found one or none, from 2 again. 40 packets: rounds of 2, 4, 8, 16
 * and 32 (10 found): five system calls. */
Test(tun_rxq, rounds_double_while_every_read_brings_a_packet, .init = setup, .fini = teardown)
{
    if (!uring_allowed())
        cr_skip_test("io_uring is disabled on this machine (kernel.io_uring_disabled)");
    ss_tun_rxq *q;
    cr_assert_eq(ss_tun_rxq_new(wire[0], SS_TUN_TXQ_MTU, 64, NULL, 0, 0, &q), 0);
    const uint8_t *pkts[64];
    size_t lens[64];
    struct ss_tun_rxq_stats st;
    put_packets(0, 40);
    cr_assert_eq(ss_tun_rxq_read(q, pkts, lens, 64), 40);
    ss_tun_rxq_get_stats(q, &st);
    cr_assert_eq(st.submits, 5);
    put_packets(40, 41); /* one round of 40 reads: one packet */
    cr_assert_eq(ss_tun_rxq_read(q, pkts, lens, 64), 1);
    got_packets(pkts, lens, 1, 40);
    ss_tun_rxq_get_stats(q, &st);
    cr_assert_eq(st.submits, 6);
    put_packets(41, 43); /* back to rounds of 2: 2, then 4 (none) */
    cr_assert_eq(ss_tun_rxq_read(q, pkts, lens, 64), 2);
    ss_tun_rxq_get_stats(q, &st);
    cr_assert_eq(st.submits, 8);
    ss_tun_rxq_free(q);
}

/* On a TUN device (in a private network namespace of this test's process):
 * ss_tun_fd_mtu gives its MTU, and a packet longer than a read slot (the
 * device's MTU grew after the slots were sized) is dropped and counted,
 * while the ones around it come whole (64 bytes: exactly a slot). A TUN
 * read returns what it copied; the IPv4 total length shows the cut. */
static void long_packet_dropped(unsigned flags)
{
    if (!th_is_root())
        cr_skip_test("needs root: TUN device in a private network namespace");
    cr_assert_eq(unshare(CLONE_NEWNET), 0, "unshare: %s", strerror(errno));
    char ifname[32];
    int fd = ss_tun_open("ssrx%d", ifname, sizeof ifname);
    cr_assert_geq(fd, 0, "tun open: %s", strerror(-fd));
    struct in_addr kaddr = {htonl(0x0a090001)};
    cr_assert_eq(ss_tun_configure(ifname, kaddr, 24, 1400), 0);
    cr_assert_eq(ss_tun_fd_mtu(fd), 1400);
    cr_assert_lt(ss_tun_fd_mtu(wire[0]), 0, "a socket has no TUN MTU");
    ss_tun_rxq *q;
    static _Alignas(16) uint8_t slots[8 * 64]; /* the caller's slots */
    cr_assert_eq(ss_tun_rxq_new(fd, 64, 8, slots, sizeof slots, flags, &q), 0); /* 64-byte slots */
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(7),
                             .sin_addr = {htonl(0x0a090002)}};
    static const size_t sizes[3] = {36, 72, 10}; /* IPv4 packets of 64, 100, 38 */
    char data[100];
    memset(data, 'x', sizeof data);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(sendto(s, data, sizes[i], 0, (struct sockaddr *)&to, sizeof to),
                     (ssize_t)sizes[i]);
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, 5000), 1);
    usleep(20000); /* all three queued */
    const uint8_t *pkts[8];
    size_t lens[8];
    cr_assert_eq(ss_tun_rxq_read(q, pkts, lens, 8), 2);
    cr_assert_eq(lens[0], 64);
    cr_assert_eq(lens[1], 38);
    cr_assert_eq(memcmp(pkts[1] + 28, data, 10), 0);
    struct ss_tun_rxq_stats st;
    ss_tun_rxq_get_stats(q, &st);
    cr_assert_eq(st.truncated, 1);
    ss_tun_rxq_free(q);
    close(s);
    close(fd);
}

Test(tun_rxq, io_uring_drops_and_counts_a_packet_above_the_slot, .init = setup, .fini = teardown,
     .timeout = 30)
{
    long_packet_dropped(0);
}

Test(tun_rxq, read2_drops_and_counts_a_packet_above_the_slot, .init = setup, .fini = teardown,
     .timeout = 30)
{
    long_packet_dropped(SS_TUN_TXQ_NO_URING);
}

Test(tun_rxq, bad_sizes_are_refused)
{
    ss_tun_rxq *q = NULL;
    cr_assert_eq(ss_tun_rxq_new(0, 63, 8, NULL, 0, 0, &q), -EINVAL);
    cr_assert_eq(ss_tun_rxq_new(0, 2048, 0, NULL, 0, 0, &q), -EINVAL);
    cr_assert_eq(ss_tun_rxq_new(0, 2048, SS_TUN_RXQ_SLOTS_MAX + 1, NULL, 0, 0, &q), -EINVAL);
    static _Alignas(16) uint8_t mem[8 * 112];
    cr_assert_eq(ss_tun_rxq_new(0, 100, 8, mem, sizeof mem - 1, 0, &q), -EINVAL); /* 8 x 112 */
    cr_assert_eq(ss_tun_rxq_new(0, 100, 8, mem + 8, sizeof mem - 8, 0, &q), -EINVAL);
    cr_assert_null(q);
    cr_assert_eq(ss_tun_rxq_new(0, 100, 8, mem, sizeof mem, 0, &q), 0);
    ss_tun_rxq_free(q); /* the caller's memory stays the caller's */
    q = NULL;
    cr_assert_null(q);
}
