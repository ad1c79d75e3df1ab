/* Shared logic for the netcat-style commands (connect, listen): the
 * options both take, their checks, address resolution, the stack setup,
 * the run, and the printing. Each command keeps its own option table and
 * getopt loop; the cases they share go through nc_cli_parse_opt. */
#ifndef SS_CLI_NC_H
#define SS_CLI_NC_H

#include <stdbool.h>
#include <stdint.h>

#include "cli/stack_opt.h"
#include "cli/tls_cli.h"
#include "sockstack/nc.h"
#include "sockstack/sock.h"

/* The options connect and listen share, as parsed. */
struct nc_cli_opts {
    const char *cmd;             /* "connect ": prefix of usage errors */
    ss_sockopts so;
    ss_nc_opts no;
    bool udp, want4, want6, info, use_stack;
    bool raw_set, recv_set, wait_set; /* wait_set: connect's --wait */
    uint64_t recv_size;
    struct cli_stack_spec stack_spec;
    struct cli_tls tls;          /* --tls* (client or server options) */
};

void nc_cli_opts_init(struct nc_cli_opts *o, const char *cmd);
/* The getopt cases both commands share (-u --raw --recv-size -4 -6 -x -i
 * --stack, the socket options, missing values and unknown options): 0 when
 * c was taken, else CLI_USAGE after a message. */
int nc_cli_parse_opt(struct nc_cli_opts *o, int c, const char *arg, char **argv);
/* Conflicting combinations, in the order the commands report them: 0 or
 * CLI_USAGE after a message. family: -4/-6; udp: --raw, --wait,
 * --recv-size, --info; stack: --stack with -6 or unix:. */
int nc_cli_check_family(const struct nc_cli_opts *o, bool is_unix);
int nc_cli_check_udp(const struct nc_cli_opts *o, bool is_unix);
int nc_cli_check_stack(const struct nc_cli_opts *o, bool is_unix);
/* The socket type and address family the options ask for. */
int nc_cli_type(const struct nc_cli_opts *o);
int nc_cli_family(const struct nc_cli_opts *o);
/* Addresses a name may resolve to that connect tries / listen binds. */
#define NC_CLI_MAX_ADDRS 16

/* Resolve host/port (host NULL: every address, shown as "*") into addrs:
 * the count, or -1 after a message. */
int nc_cli_resolve(const struct nc_cli_opts *o, const char *host, const char *port,
                   bool passive, ss_addr *addrs, int cap);
/* "event loop: ..." on failure: 0 or CLI_RUNTIME. */
int nc_cli_loop_new(ss_loop **loop);
/* The backend to use: the kernel's, or with --stack a stack started in
 * loop (run). CLI_OK, or CLI_RUNTIME after a message (loop is then freed). */
int nc_cli_backend(const struct nc_cli_opts *o, ss_loop *loop, struct cli_stack *run,
                   const ss_backend **be);
/* "OPT: error" when a socket option failed, else "VERB ADDR: error". */
void nc_cli_report_open(const char *verb, const ss_addr *a, const char *failed_opt,
                        int err);
/* Run loop: 0, or CLI_RUNTIME after "event loop: ..." on failure. */
int nc_cli_run(ss_loop *loop);
/* Stop the stack (if any) and free the loop. */
void nc_cli_teardown(struct cli_stack *run, ss_loop *loop);

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
