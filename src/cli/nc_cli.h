/* Shared printing for the netcat-style commands (connect, listen). */
#ifndef SS_CLI_NC_H
#define SS_CLI_NC_H

#include "sockstack/nc.h"
#include "sockstack/sock.h"

/* Report how a conversation ended (ev is SS_NC_DONE with err != 0):
 * "sockstack: recv 127.0.0.1:7: Connection reset by peer". Quiet for a
 * closed stdout (EPIPE). peer: the peer's name, kept from the start
 * (getpeername fails once the connection is gone): the reader went away, as with `| head`. */
void nc_cli_report_done(const ss_nc_event *ev, const char *peer);
/* "sockstack: datagram from ADDR truncated to N bytes (--recv-size)". */
void nc_cli_report_truncated(const ss_nc_event *ev);
/* Print the TCP_INFO block of s (connected to peer) on stderr (--info). */
void nc_cli_print_info(ss_sock *s, const char *peer);
/* a as text, an IPv4-mapped IPv6 address (a dual-stack listener's IPv4
 * peer) shown as plain IPv4: "127.0.0.1:7", not "[::ffff:127.0.0.1]:7". */
void nc_cli_addr_name(const ss_addr *a, char *buf, size_t cap);
/* "127.0.0.1:7" of s's peer (or "?") into buf. */
void nc_cli_peer_name(ss_sock *s, char *buf, size_t cap);

#endif
