/* ss_tun_txq (link/tun_txq.c): packets queued by copy and written together,
 * through io_uring and through write(2), over an AF_UNIX SOCK_SEQPACKET
 * pair standing in for the TUN device (one packet per read and per write,
 * as a TUN fd gives). Exact bytes, order, counts and errors either way. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sockstack/link.h"

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
