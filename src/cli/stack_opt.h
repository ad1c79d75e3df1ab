/* The user-space stack on a TUN device, for any command:
 *   - `--stack tun=NAME,addr=ADDR/PREFIX[,peer=ADDR][,mtu=N]`, the option
 *     serve, connect and listen share (cli_stack_parse);
 *   - the device + tunnet setup that option and `sockstack stack up` both
 *     run (cli_stack_start / cli_stack_stop).
 */
#ifndef SS_CLI_STACK_OPT_H
#define SS_CLI_STACK_OPT_H

#include <netinet/in.h>
#include <stdbool.h>

#include "sockstack/link.h"
#include "sockstack/reactor.h"
#include "sockstack/sock.h"
#include "sockstack/stack.h"
#include "sockstack/stackrun.h"

/* TCP options of a user-space stack (RFC 7323, RFC 2018), shared by
 * `stack up`, `stack demo`/`diagram` (--no-wscale, --no-timestamps,
 * --no-sack, --no-hystart, --no-prr, --no-tlp, --rcvbuf BYTES, --rto-min
 * MS) and --stack (wscale=off, timestamps=off, sack=off, hystart=off,
 * prr=off, tlp=off, rcvbuf=BYTES, rto_min=MS). */
struct cli_tcpopt {
    bool no_wscale, no_timestamps, no_sack, no_hystart, no_prr, no_tlp;
    uint64_t rcvbuf;       /* 0: the default */
    int rto_min_ms;        /* 0: the default (RFC 6298 2.4: 1 s) */
};
#define CLI_RCVBUF_MAX (64ull << 20)
#define CLI_RTO_MIN_MAX_MS 60000   /* SS_STACK_RTO_MAX_MS: the RTO's ceiling */
enum { CLI_O_NO_WSCALE = 900, CLI_O_NO_TIMESTAMPS, CLI_O_NO_SACK, CLI_O_RCVBUF,
       CLI_O_NO_HYSTART, CLI_O_NO_PRR, CLI_O_NO_TLP, CLI_O_RTO_MIN };
/* The getopt_long entries of the eight options. */
#define CLI_TCPOPT_OPTIONS                                               \
    {"no-wscale", no_argument, 0, CLI_O_NO_WSCALE},                      \
    {"no-timestamps", no_argument, 0, CLI_O_NO_TIMESTAMPS},              \
    {"no-sack", no_argument, 0, CLI_O_NO_SACK},                          \
    {"no-hystart", no_argument, 0, CLI_O_NO_HYSTART},                    \
    {"no-prr", no_argument, 0, CLI_O_NO_PRR},                            \
    {"no-tlp", no_argument, 0, CLI_O_NO_TLP},                            \
    {"rcvbuf", required_argument, 0, CLI_O_RCVBUF},                      \
    {"rto-min", required_argument, 0, CLI_O_RTO_MIN}
/* Their --help lines. */
extern const char cli_tcpopt_help[];
/* getopt code c with argument arg: 1 when it was one of the eight (0 when
 * not), CLI_USAGE (negated: -CLI_USAGE) after a message for a bad value. */
int cli_tcpopt_getopt(int c, const char *arg, struct cli_tcpopt *t);
/* Put the choices into a stack configuration. */
void cli_tcpopt_apply(const struct cli_tcpopt *t, struct ss_stack_cfg *cfg);

/* What the device and the stack look like. */
struct cli_stack_spec {
    char tun[16];          /* device name (1..15 characters) */
    struct in_addr addr;   /* the stack's address */
    unsigned prefix;       /* the link's prefix length (1..30) */
    struct in_addr peer;   /* the kernel's side of the device */
    bool have_peer;        /* else: the first other host of the prefix */
    unsigned mtu;          /* 0: the device's */
    bool have_link;        /* put the link model between device and stack */
    struct ss_tunnet_link link;
    struct cli_tcpopt tcp; /* wscale=, timestamps=, sack=, ..., rcvbuf=, rto_min= */
    int cc_algo;           /* enum ss_cc_algo; 0: the stack's default */
    bool offload;          /* virtio-net header, TSO/GRO and checksum offload */
    bool no_uring;         /* write(2) per packet (SS_TUNNET_NO_URING) */
};

/* name of a congestion-control algorithm for option opt ("--cc",
 * "--stack cc=") into *algo: 0, or CLI_USAGE after a message listing the
 * valid names. */
int cli_parse_cc(const char *cmd, const char *opt, const char *name, int *algo);

/* The --help lines for --stack. */
extern const char cli_stack_help[];

/* "ADDR/PREFIX" (IPv4, prefix 1..30) into *a and *prefix: 0, -1 when the
 * address or the form is wrong, -2 when the prefix length is. Prints
 * nothing: the caller names its option. */
int cli_parse_addr_prefix(const char *s, struct in_addr *a, unsigned *prefix);

/* Parse the value of --stack for command cmd ("serve "): 0, or CLI_USAGE
 * after a message naming what is wrong. */
int cli_stack_parse(const char *cmd, const char *arg, struct cli_stack_spec *sp);

/* Check addr/peer against the prefix and fill in the default peer. opt
 * names the options in messages ("--addr", "--peer" or "--stack addr=",
 * "--stack peer="). 0 or CLI_USAGE after a message. */
int cli_stack_check(const char *cmd, const char *addr_opt, const char *peer_opt,
                    struct cli_stack_spec *sp);

/* A stack running on a TUN device in a loop. */
struct cli_stack {
    char ifname[32];
    int fd;                /* -1: none */
    bool offload;
    ss_tunnet *tn;
    ss_backend *be;        /* the sock backend over it, with want_backend */
};

/* Open and configure the device, start a tunnet in loop with cfg (the
 * stack's address is set from sp; trace callbacks kept; a random ISN
 * secret is drawn), and with want_backend a sock backend over it.
 * Prints why on failure and returns CLI_RUNTIME (r is then stopped);
 * CLI_OK on success. */
int cli_stack_start(ss_loop *loop, const struct cli_stack_spec *sp,
                    const struct ss_stack_cfg *cfg, ss_pcap *pcap, bool want_backend,
                    struct cli_stack *r);
/* Send what is pending (e.g. RSTs of aborted connections), optionally log
 * the packet and TCP counters, free everything and take the device down.
 * Safe on a zeroed or half-started r (fd -1). */
void cli_stack_stop(struct cli_stack *r, bool log_stats);

/* "10.0.0.2" for the spec's stack address (static buffer). */
const char *cli_stack_addr_str(const struct cli_stack_spec *sp);

#endif
