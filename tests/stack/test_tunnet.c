/* tunnet driving a stack under the reactor, with an AF_UNIX SOCK_SEQPACKET
 * pair standing in for the TUN device (one packet per read and per write,
 * as a TUN fd gives): the test's end plays the kernel, with segments built
 * byte by byte by the fixture. The services run as `stack up --serve`
 * runs them: the server framework on the stack's backend of sock.h. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixture.h"
#include "sockstack/echo.h"
#include "sockstack/reactor.h"
#include "sockstack/server.h"
#include "sockstack/sock_stack.h"
#include "sockstack/stackrun.h"

static ss_loop *loop;
static ss_tunnet *tn;
static ss_backend *be;
static ss_server *srv;
static int wire[2]; /* [0] the tunnet's "device", [1] the test's */

static void tn_setup(void)
{
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, wire), 0);
    cr_assert_eq(ss_loop_new(&loop), 0);
    struct ss_stack_cfg c;
    ss_stack_cfg_default(&c);
    c.local_addr = US_IP;
    memset(c.isn_secret, 0x5a, sizeof c.isn_secret);
    cr_assert_eq(ss_tunnet_new(loop, wire[0], &c, NULL, NULL, 0, &tn), 0);
    cr_assert_eq(ss_backend_stack_tunnet(tn, US_IP, &be), 0);
    static const ss_echo_opts plain;
    ss_server_opts o;
    ss_server_opts_init(&o);
    o.backend = be;
    o.loop = loop;
    o.bind_host = "10.0.0.2";
    o.port = "80";
    o.type = SS_STREAM;
    o.handle_signals = false;
    o.svc_ctx = (void *)&plain;
    o.sockopts.nodelay = 1;
    cr_assert_eq(ss_server_new(ss_echo_service(), &o, &srv), 0);
    cr_assert_eq(ss_server_attach(srv), 0);
}

static void tn_teardown(void)
{
    ss_server_detach(srv);
    ss_server_free(srv);
    ss_backend_stack_free(be);
    ss_tunnet_free(tn);
    ss_loop_free(loop);
    close(wire[0]);
    close(wire[1]);
}

/* The next packet the stack wrote, as TCP; false if there is none. */
static bool next_out(struct tseg *s, uint8_t *buf, size_t cap)
{
    ssize_t n = read(wire[1], buf, cap);
    if (n < 0) {
        cr_assert_eq(errno, EAGAIN);
        return false;
    }
    cr_assert_geq(n, 40);
    memset(s, 0, sizeof *s);
    size_t ihl = (size_t)(buf[0] & 15) * 4;
    const uint8_t *t = buf + ihl;
    s->seq = (uint32_t)t[4] << 24 | (uint32_t)t[5] << 16 | (uint32_t)t[6] << 8 | t[7];
    s->ack = (uint32_t)t[8] << 24 | (uint32_t)t[9] << 16 | (uint32_t)t[10] << 8 | t[11];
    s->flags = t[13];
    size_t doff = (size_t)(t[12] >> 4) * 4;
    s->data = t + doff;
    s->len = (size_t)n - ihl - doff;
    return true;
}

static void from_peer(uint32_t seq, uint32_t ack, uint8_t flags, const void *data, size_t len)
{
    uint8_t pkt[1600];
    size_t n = mk_tcp(pkt, PEER_IP, US_IP, PEER_PORT, US_PORT, seq, ack, flags, 65535, 1460,
                      data, len);
    cr_assert_eq(write(wire[1], pkt, n), (ssize_t)n);
}

/* Loop iterations that find nothing more to do end the settling. */
static void settle(void)
{
    for (int i = 0; i < 20; i++)
        cr_assert_eq(ss_loop_run_once(loop, 0), 0);
}

/* The peer opens a connection to the echo service: the stack's ISS. */
static uint32_t handshake(void)
{
    uint8_t buf[2048];
    struct tseg s;
    from_peer(PEER_ISS, 0, 0x02 /* SYN */, NULL, 0);
    settle();
    cr_assert(next_out(&s, buf, sizeof buf), "no SYN,ACK");
    cr_assert_eq(s.flags, 0x12);
    cr_assert_eq(s.ack, PEER_ISS + 1);
    uint32_t iss = s.seq;
    from_peer(PEER_ISS + 1, iss + 1, 0x10 /* ACK */, NULL, 0);
    settle();
    cr_assert_not(next_out(&s, buf, sizeof buf), "unexpected output after the handshake");
    return iss;
}

/* The echo service's reply leaves in the loop iteration whose read brought
 * the request: the sockets' deferred callbacks run first and the stack's
 * output after them in the same iteration (before, the output waited for
 * one more epoll_wait: a system call in every request/response). */
Test(tunnet, a_reply_leaves_in_the_wake_up_that_brought_the_request, .init = tn_setup,
     .fini = tn_teardown)
{
    uint8_t buf[2048];
    struct tseg s;
    uint32_t iss = handshake();
    from_peer(PEER_ISS + 1, iss + 1, 0x18 /* PSH,ACK */, "hello", 5);
    cr_assert_eq(ss_loop_run_once(loop, 1000), 0); /* exactly one iteration */
    cr_assert(next_out(&s, buf, sizeof buf), "the reply did not leave in this iteration");
    cr_assert_eq(s.len, 5);
    cr_assert_eq(memcmp(s.data, "hello", 5), 0);
    cr_assert_eq(s.seq, iss + 1);
    cr_assert_eq(s.ack, PEER_ISS + 6);
    cr_assert_not(next_out(&s, buf, sizeof buf), "more than the one reply");
}

/* Plain output is gathered per wake-up and written in one flush (one
 * io_uring submission, where the kernel has io_uring): three requests read
 * in one iteration bring three replies, all in that iteration's one flush,
 * in order. */
Test(tunnet, the_replies_of_one_wake_up_leave_in_one_flush, .init = tn_setup,
     .fini = tn_teardown)
{
    uint8_t buf[2048];
    struct tseg s;
    uint32_t iss = handshake();

    struct ss_tunnet_stats a, b;
    ss_tunnet_get_stats(tn, &a);
    static const char *req[3] = {"one", "two!", "three"};
    uint32_t seq = PEER_ISS + 1;
    for (int i = 0; i < 3; i++) {
        from_peer(seq, iss + 1, 0x18 /* PSH,ACK */, req[i], strlen(req[i]));
        seq += (uint32_t)strlen(req[i]);
    }
    cr_assert_eq(ss_loop_run_once(loop, 1000), 0); /* exactly one iteration */
    ss_tunnet_get_stats(tn, &b);
    cr_assert_eq(b.tx_flushes - a.tx_flushes, 1);
    char got[64] = "";
    size_t pk = 0;
    while (next_out(&s, buf, sizeof buf)) {
        pk++;
        strncat(got, (const char *)s.data, s.len);
    }
    cr_assert_str_eq(got, "onetwo!three");
    cr_assert_eq(b.tx_packets - a.tx_packets, pk);
    cr_assert_eq(b.tx_dropped, 0);
}
