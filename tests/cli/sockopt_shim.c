/* LD_PRELOAD shim for the client socket-option test (client_sockopts.py):
 * the first time a process connects or sends on an IPv4/IPv6 socket, it
 * asks the kernel (getsockopt) what the socket has and appends one line to
 * $SS_SOCKOPT_LOG:
 *   "tcp nodelay=1 sndbuf=131072 ttl=9 dst=127.0.0.1"  (udp: nodelay=-)
 * It changes nothing the program does. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { FDS = 4096 };
static unsigned char logged[FDS];

static int geti(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof v;
    return getsockopt(fd, level, name, &v, &len) == 0 ? v : -1;
}

static void report(int fd, const struct sockaddr *to)
{
    if (fd < 0 || fd >= FDS || logged[fd])
        return;
    int saved = errno;
    struct sockaddr_storage me;
    socklen_t len = sizeof me;
    int type = geti(fd, SOL_SOCKET, SO_TYPE);
    if (getsockname(fd, (struct sockaddr *)&me, &len) != 0 ||
        (me.ss_family != AF_INET && me.ss_family != AF_INET6) ||
        (type != SOCK_STREAM && type != SOCK_DGRAM)) {
        errno = saved;
        return;
    }
    logged[fd] = 1;
    int v6 = me.ss_family == AF_INET6;
    int ttl = v6 ? geti(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS) : geti(fd, IPPROTO_IP, IP_TTL);
    char nodelay[8] = "-";
    if (type == SOCK_STREAM)
        snprintf(nodelay, sizeof nodelay, "%d", geti(fd, IPPROTO_TCP, TCP_NODELAY) ? 1 : 0);
    char dst[64] = "?";
    if (to && to->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)to)->sin_addr, dst, sizeof dst);
    else if (to && to->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)to)->sin6_addr, dst, sizeof dst);
    char line[256];
    int n = snprintf(line, sizeof line, "%s nodelay=%s sndbuf=%d ttl=%d dst=%s\n",
                     type == SOCK_STREAM ? "tcp" : "udp", nodelay,
                     geti(fd, SOL_SOCKET, SO_SNDBUF), ttl, dst);
    const char *path = getenv("SS_SOCKOPT_LOG");
    int lf = path ? open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600) : -1;
    if (lf >= 0) {
        if (write(lf, line, (size_t)n) != n) {
            /* the test then misses a line and says so */
        }
        close(lf);
    }
    errno = saved;
}

int connect(int fd, const struct sockaddr *a, socklen_t len)
{
    static int (*real)(int, const struct sockaddr *, socklen_t);
    if (!real)
        real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
    int r = real(fd, a, len);
    int saved = errno;
    report(fd, a);
    errno = saved;
    return r;
}

ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *a,
               socklen_t len)
{
    static ssize_t (*real)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
    if (!real)
        real = (ssize_t(*)(int, const void *, size_t, int, const struct sockaddr *,
                           socklen_t))dlsym(RTLD_NEXT, "sendto");
    report(fd, a);
    return real(fd, buf, n, flags, a, len);
}

ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
    static ssize_t (*real)(int, const struct msghdr *, int);
    if (!real)
        real = (ssize_t(*)(int, const struct msghdr *, int))dlsym(RTLD_NEXT, "sendmsg");
    report(fd, m ? (const struct sockaddr *)m->msg_name : NULL);
    return real(fd, m, flags);
}

int close(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "close");
    if (fd >= 0 && fd < FDS)
        logged[fd] = 0;
    return real(fd);
}
