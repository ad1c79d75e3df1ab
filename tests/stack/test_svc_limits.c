/* Idle limits of the built-in services (stackrun/svc.c, issue 10): a
 * per-peer connection cap and an idle timeout, on the sans-I/O stack with
 * the fixture's captured output and explicit clock. */
#include <errno.h>
#include <string.h>

#include "fixture.h"
#include "sockstack/stackrun.h"

TestSuite(svc_limits, .init = fx_setup, .fini = fx_teardown, .timeout = 30);

#define BAD_IP 0x0a000009u   /* 10.0.0.9: opens idle connections */
#define ECHO 7

static ss_svcs *svcs;

static uint64_t clock_now(void *arg)
{
    (void)arg;
    return now;
}

static void start(uint32_t idle_ms, uint32_t per_peer)
{
    cr_assert_eq(ss_svcs_new(st, clock_now, NULL, &svcs), 0);
    struct ss_svc_limits lim = {.idle_ms = idle_ms, .max_per_peer = per_peer};
    ss_svcs_set_limits(svcs, &lim);
    cr_assert_eq(ss_svcs_add(svcs, SS_SVC_ECHO, ECHO, 0), 0);
}

static void send_from(uint32_t src, uint16_t sport, uint32_t seq, uint32_t ack, uint8_t flags,
                      const void *data, size_t len)
{
    static uint8_t pkt[2000];
    size_t n = mk_tcp(pkt, src, US_IP, sport, ECHO, seq, ack, flags, 65535, 0, data, len);
    ss_stack_input(st, now, pkt, n);
    ss_stack_poll(st, now);
}

/* A handshake from src:sport; returns our ISS. */
static uint32_t connect_from(uint32_t src, uint16_t sport)
{
    cap_clear();
    send_from(src, sport, 100, 0, SS_TCP_SYN, NULL, 0);
    struct tseg sa = one_seg();
    cr_assert_eq(sa.flags, SS_TCP_SYN | SS_TCP_ACK);
    cap_clear();
    send_from(src, sport, 101, sa.seq + 1, SS_TCP_ACK, NULL, 0);
    return sa.seq;
}

static int count_flags(uint8_t flags)
{
    int n = 0;
    for (int i = 0; i < ncap; i++)
        n += (cap_tcp(i).flags & flags) == flags;
    return n;
}

/* The legitimate client: "hi" is echoed. */
static bool echo_works(uint16_t sport)
{
    uint32_t iss = connect_from(PEER_IP, sport);
    if (ncap)   /* reset at accept */
        return false;
    send_from(PEER_IP, sport, 101, iss + 1, SS_TCP_PSH | SS_TCP_ACK, "hi", 2);
    for (int i = 0; i < ncap; i++) {
        struct tseg d = cap_tcp(i);
        if (d.len == 2 && memcmp(d.data, "hi", 2) == 0)
            return true;
    }
    return false;
}

static struct ss_svc_stats svc_stats(void)
{
    struct ss_svc_stats s;
    ss_svcs_get_stats(svcs, &s);
    return s;
}

/* 10x the cap from one address: each beyond the cap is reset as it is
 * accepted, so the sockets stay free and another peer gets in. */
Test(svc_limits, per_peer_cap_resets_the_excess_and_others_get_in)
{
    start(0, 4);
    int resets = 0;
    for (uint16_t i = 0; i < 40; i++) {
        connect_from(BAD_IP, (uint16_t)(20000 + i));
        resets += count_flags(SS_TCP_RST);
    }
    cr_assert_eq(resets, 36);
    struct ss_svc_stats s = svc_stats();
    cr_assert_eq(s.accepted, 4);
    cr_assert_eq(s.refused, 36);
    cr_assert_eq(s.active, 4);
    cr_assert(echo_works(PEER_PORT), "a second peer still gets through");
    cr_assert_eq(svc_stats().active, 5);
    ss_svcs_free(svcs);
}

/* Without a cap the same 40 idle connections take every socket of the
 * fixture's 16: the client's handshake finds none (this is the test
 * above failing, on purpose). */
Test(svc_limits, without_cap_idle_connections_lock_the_client_out)
{
    start(0, 0);
    for (uint16_t i = 0; i < 40; i++)
        connect_from(BAD_IP, (uint16_t)(20000 + i));
    cr_assert_eq(svc_stats().refused, 0);
    cr_assert(!echo_works(PEER_PORT), "no socket is left for the client");
    struct ss_stack_stats s;
    ss_stack_stats(st, &s);
    cr_assert_gt(s.tcp_no_memory, 0);
    ss_svcs_free(svcs);
}

/* idle_ms without a byte either way: reset (RST), and the socket freed;
 * a connection that moved data stays, and the next poll is due when it
 * would become idle. */
Test(svc_limits, idle_connections_reset_after_idle_ms)
{
    start(1000, 0);
    uint64_t t0 = now;
    for (uint16_t i = 0; i < 3; i++)
        connect_from(BAD_IP, (uint16_t)(20000 + i));
    cr_assert_eq(ss_svcs_poll(svcs, now), t0 + 1000 * MS);
    now += 500 * MS;
    cr_assert(echo_works(PEER_PORT));
    uint64_t t1 = now;
    now = t0 + 1000 * MS - 1;
    cap_clear();
    cr_assert_eq(ss_svcs_poll(svcs, now), t0 + 1000 * MS);
    cr_assert_eq(ncap, 0, "not yet");
    now += 1;
    cr_assert_eq(ss_svcs_poll(svcs, now), t1 + 1000 * MS, "the client's turn next");
    cr_assert_eq(count_flags(SS_TCP_RST), 3);
    struct ss_svc_stats s = svc_stats();
    cr_assert_eq(s.idle_closed, 3);
    cr_assert_eq(s.active, 1);
    now = t1 + 1000 * MS;
    cap_clear();
    cr_assert_eq(ss_svcs_poll(svcs, now), UINT64_MAX);
    cr_assert_eq(count_flags(SS_TCP_RST), 1);
    cr_assert_eq(svc_stats().idle_closed, 4);
    ss_svcs_free(svcs);
}
