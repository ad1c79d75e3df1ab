#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <linux/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include "sockstack/err.h"
#include "sockstack/sock.h"

TestSuite(addr, .timeout = 10);
TestSuite(sock, .timeout = 10);

static void fmt(const char *host, const char *port, int family, const char *want)
{
    ss_addr a;
    char buf[SS_ADDR_STRLEN];
    cr_assert_eq(ss_addr_resolve(host, port, family, SS_STREAM, false, &a, 1), 1,
                 "resolve %s", host);
    cr_assert_gt(ss_addr_format(&a, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, want);
}

Test(addr, formats_every_family)
{
    fmt("127.0.0.1", "7", AF_UNSPEC, "127.0.0.1:7");
    fmt("[::1]", "80", AF_UNSPEC, "[::1]:80");
    fmt("::1", "80", AF_INET6, "[::1]:80");
    fmt("unix:/tmp/x.sock", NULL, AF_UNSPEC, "unix:/tmp/x.sock");
    fmt("unix:@abstract", NULL, AF_UNSPEC, "unix:@abstract");
}

Test(addr, unknown_names_and_long_paths_are_errors)
{
    ss_addr a;
    cr_assert_eq(ss_addr_resolve("no-such-host.invalid", "7", AF_UNSPEC, SS_STREAM,
                                 false, &a, 1), SS_ENOHOST);
    cr_assert_eq(ss_addr_resolve("127.0.0.1", "no-such-service", AF_UNSPEC, SS_STREAM,
                                 false, &a, 1), SS_ENOHOST);
    char longp[200];
    memset(longp, 'a', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    memcpy(longp, "unix:/", 6);
    cr_assert_eq(ss_addr_resolve(longp, NULL, AF_UNSPEC, SS_STREAM, false, &a, 1),
                 -ENAMETOOLONG);
}

Test(addr, cidr_matches_prefixes_and_mapped_v4)
{
    ss_cidr c;
    ss_addr a;
    cr_assert_eq(ss_cidr_parse("10.1.0.0/16", &c), 0);
    ss_addr_resolve("10.1.200.3", "1", AF_INET, SS_STREAM, false, &a, 1);
    cr_assert(ss_cidr_match(&c, &a));
    ss_addr_resolve("10.2.0.1", "1", AF_INET, SS_STREAM, false, &a, 1);
    cr_assert_not(ss_cidr_match(&c, &a));
    ss_addr_resolve("::ffff:10.1.2.3", "1", AF_INET6, SS_STREAM, false, &a, 1);
    cr_assert(ss_cidr_match(&c, &a));
    cr_assert_eq(ss_cidr_parse("127.0.0.1/33", &c), -EINVAL);
    cr_assert_eq(ss_cidr_parse("nonsense", &c), -EINVAL);
    cr_assert_eq(ss_cidr_parse("::1", &c), 0);
    cr_assert_eq(c.prefix, 128);
    cr_assert_eq(ss_cidr_parse("10.0.0.0/", &c), -EINVAL);
}

Test(addr, loopback_detection)
{
    ss_addr a;
    ss_addr_resolve("127.5.5.5", "1", AF_INET, SS_STREAM, false, &a, 1);
    cr_assert(ss_addr_is_loopback(&a));
    ss_addr_resolve("::1", "1", AF_INET6, SS_STREAM, false, &a, 1);
    cr_assert(ss_addr_is_loopback(&a));
    ss_addr_resolve("10.0.0.1", "1", AF_INET, SS_STREAM, false, &a, 1);
    cr_assert_not(ss_addr_is_loopback(&a));
}

/* ss_addr_equal: one endpoint is the same address and port, whatever
 * padding the two structures carry; another port, address or family is
 * another endpoint. */
Test(addr, equal_is_address_and_port)
{
    ss_addr a, b, c, d;
    cr_assert_eq(ss_addr_resolve("10.0.0.1", "7", AF_INET, SS_DGRAM, false, &a, 1), 1);
    b = a;
    memset(b.sa.__ss_padding + 16, 0x5a, 8); /* bytes past the sockaddr_in */
    cr_assert(ss_addr_equal(&a, &b));
    cr_assert_eq(ss_addr_resolve("10.0.0.1", "8", AF_INET, SS_DGRAM, false, &c, 1), 1);
    cr_assert_not(ss_addr_equal(&a, &c));
    cr_assert_eq(ss_addr_resolve("10.0.0.2", "7", AF_INET, SS_DGRAM, false, &c, 1), 1);
    cr_assert_not(ss_addr_equal(&a, &c));
    cr_assert_eq(ss_addr_resolve("::ffff:10.0.0.1", "7", AF_INET6, SS_DGRAM, false, &d, 1), 1);
    cr_assert_not(ss_addr_equal(&a, &d));
    ss_addr u = ss_addr_unmapped(&d);
    cr_assert(ss_addr_equal(&a, &u));
    cr_assert_eq(ss_addr_resolve("::1", "7", AF_INET6, SS_DGRAM, false, &c, 1), 1);
    d = c;
    cr_assert(ss_addr_equal(&c, &d));
    ((struct sockaddr_in6 *)&d.sa)->sin6_scope_id = 2;
    cr_assert_not(ss_addr_equal(&c, &d));
}

struct pair {
    ss_sock *listener, *client, *server;
};

static void tcp_pair(struct pair *p)
{
    ss_addr a, bound;
    cr_assert_eq(ss_addr_resolve("127.0.0.1", "0", AF_INET, SS_STREAM, true, &a, 1), 1);
    cr_assert_eq(ss_sock_listen_on(ss_backend_kernel(), &a, SS_STREAM, NULL, 16,
                                   &p->listener, NULL), 0);
    cr_assert_eq(ss_sock_local_addr(p->listener, &bound), 0);
    cr_assert_gt(ss_addr_port(&bound), 0);
    int err = ss_sock_connect_to(ss_backend_kernel(), &bound, SS_STREAM, NULL, NULL,
                                 &p->client, NULL);
    cr_assert(err == 0 || err == -EINPROGRESS);
    ss_sock_set_blocking(p->listener, true);
    cr_assert_eq(ss_sock_accept(p->listener, &p->server, NULL), 0);
    ss_sock_set_blocking(p->client, true);
    ss_sock_set_blocking(p->server, true);
}

static void close_pair(struct pair *p)
{
    ss_sock_close(p->client);
    ss_sock_close(p->server);
    ss_sock_close(p->listener);
}

Test(sock, tcp_bytes_both_ways_and_half_close)
{
    struct pair p;
    tcp_pair(&p);
    cr_assert_eq(ss_sock_send(p.client, "ping", 4), 4);
    char buf[16] = {0};
    cr_assert_eq(ss_sock_recv(p.server, buf, sizeof buf), 4);
    cr_assert_str_eq(buf, "ping");
    cr_assert_eq(ss_sock_shutdown(p.client, SHUT_WR), 0);
    cr_assert_eq(ss_sock_recv(p.server, buf, sizeof buf), 0, "EOF after half-close");
    cr_assert_eq(ss_sock_send(p.server, "last", 4), 4);
    memset(buf, 0, sizeof buf);
    cr_assert_eq(ss_sock_recv(p.client, buf, sizeof buf), 4);
    cr_assert_str_eq(buf, "last");
    close_pair(&p);
}

Test(sock, nonblocking_recv_says_eagain)
{
    struct pair p;
    tcp_pair(&p);
    ss_sock_set_blocking(p.server, false);
    char c;
    cr_assert_eq(ss_sock_recv(p.server, &c, 1), -EAGAIN);
    close_pair(&p);
}

Test(sock, connect_to_closed_port_is_refused)
{
    struct pair p;
    tcp_pair(&p);
    ss_addr bound;
    ss_sock_local_addr(p.listener, &bound);
    close_pair(&p);
    ss_sock *c;
    int err = ss_sock_connect_to(ss_backend_kernel(), &bound, SS_STREAM, NULL, NULL, &c, NULL);
    if (err == -EINPROGRESS) {
        ss_sock_set_blocking(c, true);
        char x;
        err = (int)ss_sock_recv(c, &x, 1);
        ss_sock_close(c);
    }
    cr_assert_eq(err, -ECONNREFUSED);
}

Test(sock, options_are_applied)
{
    struct pair p;
    tcp_pair(&p);
    ss_sockopts o;
    ss_sockopts_init(&o);
    o.nodelay = 1;
    o.keepalive = 1;
    o.keepidle = 30;
    o.keepintvl = 5;
    o.keepcnt = 4;
    o.ttl = 17;
    o.linger = 3;
    const char *failed = "unset";
    cr_assert_eq(ss_sock_set_opts(p.client, &o, &failed), 0);
    cr_assert_null(failed);
    int fd = ss_sock_fd(p.client), v;
    socklen_t len = sizeof v;
    getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len);
    cr_assert_eq(v, 1);
    getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, &len);
    cr_assert_eq(v, 30);
    getsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &v, &len);
    cr_assert_eq(v, 4);
    getsockopt(fd, IPPROTO_IP, IP_TTL, &v, &len);
    cr_assert_eq(v, 17);
    struct linger l;
    len = sizeof l;
    getsockopt(fd, SOL_SOCKET, SO_LINGER, &l, &len);
    cr_assert_eq(l.l_onoff, 1);
    cr_assert_eq(l.l_linger, 3);
    close_pair(&p);
}

Test(sock, option_failure_names_the_option)
{
    ss_sock *u;
    cr_assert_eq(ss_sock_open(ss_backend_kernel(), AF_INET, SS_DGRAM, &u), 0);
    ss_sockopts o;
    ss_sockopts_init(&o);
    o.nodelay = 1; /* TCP-only */
    const char *failed = NULL;
    cr_assert_eq(ss_sock_set_opts(u, &o, &failed), -ENOPROTOOPT);
    cr_assert_str_eq(failed, "--nodelay");
    ss_sockopts_init(&o);
    strcpy(o.bind_device, "nosuchif0");
    cr_assert_lt(ss_sock_set_opts(u, &o, &failed), 0);
    cr_assert_str_eq(failed, "--bind-device");
    ss_sock_close(u);
}

Test(sock, tcp_info_reports_established)
{
    struct pair p;
    tcp_pair(&p);
    ss_sock_send(p.client, "x", 1);
    char c;
    ss_sock_recv(p.server, &c, 1);
    ss_tcp_info ti;
    cr_assert_eq(ss_sock_tcp_info(p.client, &ti), 0);
    cr_assert_str_eq(ti.state, "ESTABLISHED");
    cr_assert_eq(ti.bytes_sent, 1);
    ss_tcp_info si;
    cr_assert_eq(ss_sock_tcp_info(p.server, &si), 0);
    cr_assert_eq(si.bytes_received, 1);
    char buf[1024];
    cr_assert_gt(ss_tcp_info_format(&ti, buf, sizeof buf), 0);
    cr_assert(strstr(buf, "state          ESTABLISHED"));
    close_pair(&p);
}

Test(sock, udp_truncation_is_reported)
{
    ss_addr a, bound;
    ss_sock *srv, *cli;
    ss_addr_resolve("127.0.0.1", "0", AF_INET, SS_DGRAM, true, &a, 1);
    cr_assert_eq(ss_sock_listen_on(ss_backend_kernel(), &a, SS_DGRAM, NULL, 0, &srv, NULL), 0);
    ss_sock_local_addr(srv, &bound);
    cr_assert_eq(ss_sock_open(ss_backend_kernel(), AF_INET, SS_DGRAM, &cli), 0);
    cr_assert_eq(ss_sock_sendto(cli, "0123456789", 10, &bound), 10);
    ss_sock_set_blocking(srv, true);
    char buf[4];
    bool trunc = false;
    ss_addr from;
    cr_assert_eq(ss_sock_recvfrom(srv, buf, sizeof buf, &from, &trunc), 4);
    cr_assert(trunc);
    cr_assert_eq(memcmp(buf, "0123", 4), 0);
    ss_sock_close(cli);
    ss_sock_close(srv);
}
