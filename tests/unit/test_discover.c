/* The discovery prober (ss_discover_probe) against a real announcer and
 * against a hand-made answerer on loopback: what it reports, once per
 * distinct answer. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sockstack/discover.h"
#include "sockstack/err.h"
#include "sockstack/reactor.h"
#include "sockstack/sock.h"

/* Every answer the callback saw, one "NAME ADDR PORT PROTO" line each. */
struct seen {
    char text[1024];
    int calls;
};

static void on_found(const ss_discover_found *f, void *arg)
{
    struct seen *s = arg;
    size_t n = strlen(s->text);
    snprintf(s->text + n, sizeof s->text - n, "%s %s %d %s\n", f->name, f->addr, f->port,
             f->proto);
    s->calls++;
}

static ss_addr loopback(int port)
{
    ss_addr a;
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    cr_assert_eq(ss_addr_resolve("127.0.0.1", p, AF_INET, SS_DGRAM, false, &a, 1), 1);
    return a;
}

/* A UDP socket on 127.0.0.1 with a port of its own; its port. */
static int udp_bound(int *port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    socklen_t len = sizeof sin;
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

Test(discover, a_probe_finds_the_announced_service)
{
    int port;
    close(udp_bound(&port)); /* a free port for the announcer */
    ss_announcer *a;
    cr_assert_eq(ss_announcer_start(&a, "chat", 7000, "tcp", port), 0);
    ss_loop *loop;
    cr_assert_eq(ss_loop_new(&loop), 0);
    struct seen s = {0};
    ss_addr dst = loopback(port);
    int n = ss_discover_probe(loop, &dst, 3000, on_found, &s);
    ss_loop_free(loop);
    unsigned long answered = ss_announcer_answered(a);
    ss_announcer_stop(a);
    cr_assert_eq(n, 1, "%s", ss_strerror(n));
    cr_assert_str_eq(s.text, "chat 127.0.0.1 7000 tcp\n");
    cr_assert_eq(answered, 1);
}

/* Answers the first probe: the same answer twice, a malformed one, a
 * truncated-looking long one, and a second service. */
static void *answerer(void *arg)
{
    int fd = *(int *)arg;
    char buf[64];
    struct sockaddr_in from;
    socklen_t len = sizeof from;
    ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
    if (n != (ssize_t)strlen(SS_DISCOVER_PROBE) || memcmp(buf, SS_DISCOVER_PROBE, (size_t)n))
        return NULL;
    static char big[300];
    memset(big, 'x', sizeof big);
    const struct { const char *p; size_t n; } answers[] = {
        {"SSSERVICE1 chat 7000 tcp", 24}, {"SSSERVICE1 chat 7000 tcp", 24},
        {"SSSERVICE1 chat", 15},          {big, sizeof big},
        {"SSSERVICE1 echo 7 udp", 21},
    };
    for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++)
        sendto(fd, answers[i].p, answers[i].n, 0, (struct sockaddr *)&from, len);
    return NULL;
}

Test(discover, each_distinct_answer_is_told_once_and_bad_ones_not_at_all)
{
    int port;
    int fd = udp_bound(&port);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, answerer, &fd), 0);
    ss_loop *loop;
    cr_assert_eq(ss_loop_new(&loop), 0);
    struct seen s = {0};
    ss_addr dst = loopback(port);
    int n = ss_discover_probe(loop, &dst, 3000, on_found, &s);
    pthread_join(t, NULL);
    close(fd);
    ss_loop_free(loop);
    cr_assert_eq(n, 2, "%s", ss_strerror(n));
    cr_assert_eq(s.calls, 2);
    cr_assert_str_eq(s.text, "chat 127.0.0.1 7000 tcp\necho 127.0.0.1 7 udp\n");
}

Test(discover, a_probe_that_cannot_be_sent_is_an_error_and_tells_nothing)
{
    ss_loop *loop;
    cr_assert_eq(ss_loop_new(&loop), 0);
    struct seen s = {0};
    ss_addr dst = loopback(0); /* port 0: sendto refuses it */
    int n = ss_discover_probe(loop, &dst, 3000, on_found, &s);
    ss_loop_free(loop);
    cr_assert_eq(n, -EINVAL, "%d %s", n, ss_strerror(n));
    cr_assert_eq(s.calls, 0);
}
