/* Unit tests: the output queue (chunk chain, windows, pool) and the
 * allow/deny decision. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "server/outq.h"
#include "server/server_int.h"
#include "sockstack/area.h"
#include "sockstack/err.h"
#include "sockstack/sock.h"

TestSuite(outq, .timeout = 10);
TestSuite(acl, .timeout = 10);
TestSuite(area, .timeout = 10);

/* Concatenate the queue's iovecs into buf; returns the byte count. */
static size_t gather(const struct ss__outq *q, char *buf, size_t cap)
{
    struct iovec iov[256];
    int n = ss__outq_iov(q, iov, 256);
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        cr_assert_leq(len + iov[i].iov_len, cap);
        memcpy(buf + len, iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    return len;
}

Test(outq, small_writes_share_a_chunk)
{
    struct ss__bufpool p;
    struct ss__outq q;
    ss__bufpool_init(&p, 16, 4);
    ss__outq_init(&q);
    cr_assert_eq(ss__outq_push(&q, &p, "hello ", 6), 0);
    cr_assert_eq(ss__outq_push(&q, &p, "world", 5), 0);
    cr_assert_eq(q.bytes, 11);
    cr_assert_eq(q.head, q.tail, "11 bytes fit one 16-byte chunk");
    char buf[64];
    cr_assert_eq(gather(&q, buf, sizeof buf), 11);
    cr_assert_eq(memcmp(buf, "hello world", 11), 0);
    ss__outq_clear(&q, &p);
    ss__bufpool_drain(&p);
}

Test(outq, large_write_spans_chunks_in_order_and_consume_is_exact)
{
    struct ss__bufpool p;
    struct ss__outq q;
    ss__bufpool_init(&p, 10, 2);
    ss__outq_init(&q);
    char data[95];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)('A' + i % 26);
    cr_assert_eq(ss__outq_push(&q, &p, data, 3), 0);
    cr_assert_eq(ss__outq_push(&q, &p, data + 3, 92), 0);
    cr_assert_eq(q.bytes, 95);
    struct iovec iov[32];
    cr_assert_eq(ss__outq_iov(&q, iov, 32), 10, "95 bytes in 10-byte chunks");
    cr_assert_eq(ss__outq_iov(&q, iov, 3), 3, "bounded by max");
    char buf[128];
    cr_assert_eq(gather(&q, buf, sizeof buf), 95);
    cr_assert_eq(memcmp(buf, data, 95), 0);
    /* consume part of the first chunk, then across chunk borders */
    ss__outq_consume(&q, &p, 4);
    cr_assert_eq(q.bytes, 91);
    cr_assert_eq(gather(&q, buf, sizeof buf), 91);
    cr_assert_eq(memcmp(buf, data + 4, 91), 0);
    ss__outq_consume(&q, &p, 27);
    cr_assert_eq(gather(&q, buf, sizeof buf), 64);
    cr_assert_eq(memcmp(buf, data + 31, 64), 0);
    cr_assert_eq(p.nfree, 2, "spent chunks are pooled, up to max_free");
    ss__outq_consume(&q, &p, 64);
    cr_assert_eq(q.bytes, 0);
    cr_assert_null(q.head);
    cr_assert_null(q.tail);
    cr_assert_eq(p.nfree, 2, "pool never exceeds max_free");
    /* reuse: new pushes take pooled chunks first */
    cr_assert_eq(ss__outq_push(&q, &p, data, 15), 0);
    cr_assert_eq(p.nfree, 0);
    cr_assert_eq(gather(&q, buf, sizeof buf), 15);
    cr_assert_eq(memcmp(buf, data, 15), 0);
    ss__outq_clear(&q, &p);
    cr_assert_eq(q.bytes, 0);
    ss__bufpool_drain(&p);
    cr_assert_eq(p.nfree, 0);
}

Test(outq, empty_push_and_over_consume_are_harmless)
{
    struct ss__bufpool p;
    struct ss__outq q;
    ss__bufpool_init(&p, 8, 1);
    ss__outq_init(&q);
    cr_assert_eq(ss__outq_push(&q, &p, "", 0), 0);
    cr_assert_null(q.head);
    struct iovec iov[2];
    cr_assert_eq(ss__outq_iov(&q, iov, 2), 0);
    cr_assert_eq(ss__outq_push(&q, &p, "abc", 3), 0);
    ss__outq_consume(&q, &p, 100);
    cr_assert_eq(q.bytes, 0);
    cr_assert_null(q.head);
    ss__bufpool_drain(&p);
}

static ss_addr addr_of(const char *host)
{
    ss_addr a;
    cr_assert_eq(ss_addr_resolve(host, "1", AF_UNSPEC, SS_STREAM, false, &a, 1), 1);
    return a;
}

static ss_cidr cidr(const char *s)
{
    ss_cidr c;
    cr_assert_eq(ss_cidr_parse(s, &c), 0, "%s", s);
    return c;
}

Test(acl, empty_lists_allow_everyone)
{
    ss_addr a = addr_of("192.0.2.7");
    cr_assert_eq(ss__acl_check(NULL, 0, NULL, 0, &a), 0);
}

Test(acl, allow_list_admits_only_matches)
{
    ss_cidr allow[] = {cidr("10.0.0.0/8"), cidr("::1/128")};
    ss_addr in = addr_of("10.1.2.3"), out = addr_of("11.0.0.1"), v6 = addr_of("::1"),
            v6out = addr_of("::2");
    cr_assert_eq(ss__acl_check(allow, 2, NULL, 0, &in), 0);
    cr_assert_eq(ss__acl_check(allow, 2, NULL, 0, &out), SS_EDENIED);
    cr_assert_eq(ss__acl_check(allow, 2, NULL, 0, &v6), 0);
    cr_assert_eq(ss__acl_check(allow, 2, NULL, 0, &v6out), SS_EDENIED);
}

Test(acl, deny_wins_over_allow)
{
    ss_cidr allow[] = {cidr("127.0.0.0/8")};
    ss_cidr deny[] = {cidr("127.0.0.1")};
    ss_addr one = addr_of("127.0.0.1"), two = addr_of("127.0.0.2");
    cr_assert_eq(ss__acl_check(allow, 1, deny, 1, &one), SS_EDENIED);
    cr_assert_eq(ss__acl_check(allow, 1, deny, 1, &two), 0);
    cr_assert_eq(ss__acl_check(NULL, 0, deny, 1, &two), 0);
}

Test(acl, unix_peers_are_always_allowed)
{
    ss_cidr allow[] = {cidr("10.0.0.0/8")};
    ss_addr u = addr_of("unix:/tmp/x.sock");
    cr_assert_eq(ss__acl_check(allow, 1, allow, 1, &u), 0);
}

static void area_is(const char *req, size_t len, bool trunc, const char *want)
{
    char out[128];
    int n = ss_area_reply(req, len, trunc, out, sizeof out);
    cr_assert_eq((size_t)n, strlen(want), "'%.*s' -> '%s'", (int)len, req, out);
    cr_assert_str_eq(out, want);
}

Test(area, replies_are_exact)
{
    area_is("1", 1, false, "3.1415926535897931\n");
    area_is("2.5\r\n", 5, false, "19.634954084936208\n");
    area_is("0", 1, false, "0\n");
    area_is("1e-3", 4, false, "3.1415926535897933e-06\n");
    area_is("", 0, false, "error: empty request, expected a radius\n");
    area_is(" \n", 2, false, "error: empty request, expected a radius\n");
    area_is("abc", 3, false, "error: not a number\n");
    area_is("1.5x", 4, false, "error: not a number\n");
    area_is("0x10", 4, false, "error: not a number\n");
    area_is("1\0002", 3, false, "error: not a number\n");
    area_is("-2", 2, false, "error: radius must not be negative\n");
    area_is("nan", 3, false, "error: radius must be a finite number\n");
    area_is("-inf", 4, false, "error: radius must be a finite number\n");
    area_is("1e400", 5, false, "error: radius out of range\n");
    area_is("1e200", 5, false, "error: area too large for a double\n");
    area_is("1", 1, true, "error: request too long (at most 64 bytes)\n");
    char big[65];
    memset(big, '1', sizeof big);
    area_is(big, sizeof big, false, "error: request too long (at most 64 bytes)\n");
}
