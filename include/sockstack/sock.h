/* sock: ONE non-blocking socket API over two backends.
 *
 * Applications and the server framework are written against this API once;
 * the backend decides whether the bytes go through the kernel's BSD sockets
 * (ss_backend_kernel) or through sockstack's user-space TCP/IP stack.
 *
 * Conventions (libuv style): every call returns 0 or a count on success and
 * a negative errno (-EAGAIN, -ECONNREFUSED, ...) or SS_E* code on failure;
 * nothing here prints. Sockets are non-blocking unless ss_sock_set_blocking()
 * says otherwise (kernel backend only). Readiness is level-triggered and
 * delivered through the reactor by ss_sock_watch().
 */
#ifndef SOCKSTACK_SOCK_H
#define SOCKSTACK_SOCK_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "sockstack/reactor.h"

#include "sockstack/api.h"
SS_API_BEGIN

/* ---- addresses ---------------------------------------------------------- */

/* Any address sockstack speaks: IPv4, IPv6 or a Unix socket path. */
typedef struct ss_addr {
    struct sockaddr_storage sa;
    socklen_t len;
} ss_addr;

/* Longest text ss_addr_format() writes, with its NUL ("unix:" + path). */
#define SS_ADDR_STRLEN 128

enum ss_socktype { SS_STREAM = 1, SS_DGRAM = 2 };

/* Resolve HOST and PORT with getaddrinfo into out[0..max). host "unix:/path"
 * gives a Unix socket address (port ignored). family: AF_UNSPEC, AF_INET or
 * AF_INET6 (-4/-6). passive: for bind (NULL host means the wildcard).
 * Returns the number of addresses (>= 1) or a negative code: SS_ENOHOST when
 * the name or service is unknown, -ENAMETOOLONG for a Unix path too long. */
int ss_addr_resolve(const char *host, const char *port, int family, int type,
                    bool passive, ss_addr *out, int max);
/* "127.0.0.1:7", "[::1]:7", "unix:/path". Returns length or -ENOSPC. */
int ss_addr_format(const ss_addr *a, char *buf, size_t cap);
/* Port in host order (0 for Unix). */
int ss_addr_port(const ss_addr *a);
int ss_addr_family(const ss_addr *a);
bool ss_addr_is_loopback(const ss_addr *a);
/* a with an IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a dual-stack
 * socket reports for an IPv4 peer) made plain IPv4; any other as is. */
ss_addr ss_addr_unmapped(const ss_addr *a);
/* The same endpoint: family, address and port (IPv6: and scope); other
 * families byte for byte. */
bool ss_addr_equal(const ss_addr *a, const ss_addr *b);

/* A network prefix for allow/deny lists: "10.0.0.0/8", "::1/128", "1.2.3.4". */
typedef struct ss_cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int prefix;
} ss_cidr;

int ss_cidr_parse(const char *s, ss_cidr *out);
/* IPv4-mapped IPv6 peers (::ffff:a.b.c.d) match IPv4 prefixes. */
bool ss_cidr_match(const ss_cidr *c, const ss_addr *a);

/* ---- options ------------------------------------------------------------ */

/* The socket options the classic tutorials list. A field set to -1 (or an
 * empty bind_device) leaves the system default alone. */
typedef struct ss_sockopts {
    int reuseaddr;  /* SO_REUSEADDR, 0/1 */
    int reuseport;  /* SO_REUSEPORT, 0/1 */
    int sndbuf;     /* SO_SNDBUF, bytes */
    int rcvbuf;     /* SO_RCVBUF, bytes */
    int keepalive;  /* SO_KEEPALIVE, 0/1 */
    int keepidle;   /* TCP_KEEPIDLE, seconds */
    int keepintvl;  /* TCP_KEEPINTVL, seconds */
    int keepcnt;    /* TCP_KEEPCNT */
    int linger;     /* SO_LINGER on, with this many seconds */
    int nodelay;    /* TCP_NODELAY, 0/1 */
    int timeout_ms; /* SO_RCVTIMEO and SO_SNDTIMEO (blocking use) */
    int broadcast;  /* SO_BROADCAST, 0/1 */
    int ttl;        /* IP_TTL / IPV6_UNICAST_HOPS */
    int tos;        /* IP_TOS / IPV6_TCLASS */
    int mss;        /* TCP_MAXSEG */
    char bind_device[16]; /* SO_BINDTODEVICE */
} ss_sockopts;

/* Every field "leave as is". */
void ss_sockopts_init(ss_sockopts *o);

/* ---- sockets ------------------------------------------------------------ */

typedef struct ss_sock ss_sock;
typedef struct ss_backend ss_backend;
typedef void (*ss_sock_cb)(ss_sock *s, unsigned events, void *arg);

/* The kernel's BSD sockets. */
const ss_backend *ss_backend_kernel(void);
const char *ss_backend_name(const ss_backend *be);

/* A new socket of family (AF_INET, AF_INET6, AF_UNIX) and SS_STREAM/SS_DGRAM. */
int ss_sock_open(const ss_backend *be, int family, int type, ss_sock **out);
/* Apply every set field of o. On failure returns the code and, if failed
 * is not NULL, the option's CLI name ("--sndbuf") in *failed. */
int ss_sock_set_opts(ss_sock *s, const ss_sockopts *o, const char **failed);
/* Bind to a. A pathname Unix address whose file is in the way (EADDRINUSE)
 * is taken over when the file is a socket nobody listens on (connect is
 * refused: its server died without removing it); SS_ELISTENING when a
 * server answers there; anything that is not a socket is never removed
 * (-EADDRINUSE). */
int ss_sock_bind(ss_sock *s, const ss_addr *a);
int ss_sock_listen(ss_sock *s, int backlog);
/* Accept one pending connection; -EAGAIN when none. peer may be NULL. */
int ss_sock_accept(ss_sock *s, ss_sock **out, ss_addr *peer);
/* 0 if connected at once, -EINPROGRESS (watch for SS_WRITE, then
 * ss_sock_error), or a negative code. */
int ss_sock_connect(ss_sock *s, const ss_addr *a);
/* Pending error (SO_ERROR) as a negative code, or 0. Clears it. */
int ss_sock_error(ss_sock *s);

ssize_t ss_sock_send(ss_sock *s, const void *buf, size_t len);
ssize_t ss_sock_sendv(ss_sock *s, const struct iovec *iov, int iovcnt);
/* Bytes read, 0 at end of stream, -EAGAIN when nothing is ready. */
ssize_t ss_sock_recv(ss_sock *s, void *buf, size_t cap);
ssize_t ss_sock_sendto(ss_sock *s, const void *buf, size_t len, const ss_addr *to);
/* One datagram. *truncated (if not NULL) says it was longer than cap. */
ssize_t ss_sock_recvfrom(ss_sock *s, void *buf, size_t cap, ss_addr *from,
                         bool *truncated);
/* SHUT_RD, SHUT_WR or SHUT_RDWR. */
int ss_sock_shutdown(ss_sock *s, int how);
/* Close and free; unwatches first. Returns the close() result. */
int ss_sock_close(ss_sock *s);

int ss_sock_local_addr(ss_sock *s, ss_addr *out);
int ss_sock_peer_addr(ss_sock *s, ss_addr *out);
int ss_sock_type(const ss_sock *s);
/* The kernel descriptor, or -1 on a backend that has none. */
int ss_sock_fd(const ss_sock *s);
/* Blocking mode for thread/process-per-connection handlers and simple
 * clients; SS_ENOTSUP on backends without blocking support. */
int ss_sock_set_blocking(ss_sock *s, bool blocking);

/* Call cb(s, ready, arg) from loop while any of events (SS_READ|SS_WRITE)
 * is ready. Calling again changes the events. events == 0 pauses. */
int ss_sock_watch(ss_sock *s, ss_loop *loop, unsigned events, ss_sock_cb cb,
                  void *arg);
int ss_sock_unwatch(ss_sock *s);

/* Convenience: open, apply options, bind, listen (streams) for a server. */
int ss_sock_listen_on(const ss_backend *be, const ss_addr *a, int type,
                      const ss_sockopts *o, int backlog, ss_sock **out,
                      const char **failed_opt);
/* Convenience: open, apply options, optional bind, then connect. Returns
 * 0 or -EINPROGRESS with *out set, or a code with *out NULL. */
int ss_sock_connect_to(const ss_backend *be, const ss_addr *a, int type,
                       const ss_sockopts *o, const ss_addr *bind_addr,
                       ss_sock **out, const char **failed_opt);

/* ---- what TCP tells --------------------------------------------------- */

/* What the kernel reports in TCP_INFO (or the user-space stack, same
 * fields), in units a person reads. */
typedef struct ss_tcp_info {
    char state[16];         /* RFC name: "ESTABLISHED", "TIME-WAIT", ... */
    uint32_t rtt_us;
    uint32_t rttvar_us;
    uint32_t rto_us;
    uint32_t snd_mss, rcv_mss;
    uint32_t snd_cwnd;      /* segments */
    uint32_t snd_ssthresh;  /* segments; UINT32_MAX when "infinite" */
    uint32_t retransmits;   /* total retransmitted segments */
    uint64_t bytes_acked;
    uint64_t bytes_received;
    uint64_t bytes_sent;
    /* TCP options in use (Linux' tcpi_options): SS_TCPI_OPT_* of stack.h
     * (timestamps 1, SACK 2, window scaling 4), and the two shifts. */
    unsigned options;
    uint8_t snd_wscale, rcv_wscale;
} ss_tcp_info;

int ss_sock_tcp_info(ss_sock *s, ss_tcp_info *out);
/* A readable multi-line block of info into buf. Returns length. */
int ss_tcp_info_format(const ss_tcp_info *ti, char *buf, size_t cap);

SS_API_END

#endif
