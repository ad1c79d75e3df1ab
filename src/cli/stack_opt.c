/* --stack and the TUN + tunnet setup shared by `stack up` (see stack_opt.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/stack_opt.h"
#include "cli/link_opt.h"
#include "sockstack/config.h"
#include "sockstack/err.h"
#include "sockstack/relay.h"
#include "sockstack/sock_stack.h"

_Static_assert(CLI_RTO_MIN_MAX_MS == SS_STACK_RTO_MAX_MS, "--rto-min reaches the RTO's ceiling");

const char cli_stack_help[] =
    "      --stack tun=NAME,addr=ADDR/PREFIX[,peer=ADDR][,mtu=N][,cc=ALGO]\n"
    "                         run on sockstack's user-space TCP/IP stack instead\n"
    "                         of the kernel's sockets: create TUN device NAME\n"
    "                         (needs CAP_NET_ADMIN), give the stack ADDR and the\n"
    "                         kernel's side peer (default: the first other host\n"
    "                         of the prefix); IPv4 only. More keys: wscale=off,\n"
    "                         timestamps=off, sack=off, hystart=off, prr=off,\n"
    "                         tlp=off (TCP options, HyStart++, PRR and\n"
    "                         RACK-TLP, on by default),\n"
    "                         rcvbuf=BYTES (receive buffer, up to 64M),\n"
    "                         rto_min=MS (least retransmission timeout,\n"
    "                         1-60000; default 1000),\n"
    "                         cc=ALGO (congestion control: cubic, the default,\n"
    "                         or newreno), offload=on (the device's TSO/GRO and\n"
    "                         checksum offloads; default off), uring=off (one\n"
    "                         read(2)/write(2) per packet, not io_uring\n"
    "                         batches)\n";

const char cli_tcpopt_help[] =
    "  --no-wscale         do not use TCP window scaling (RFC 7323)\n"
    "  --no-timestamps     do not use TCP timestamps (RFC 7323: RTTM, PAWS)\n"
    "  --no-sack           do not use selective acknowledgments (RFC 2018)\n"
    "  --no-hystart        plain slow start, without HyStart++ (RFC 9406)\n"
    "  --no-prr            in SACK recovery send cwnd - pipe at once, without\n"
    "                      Proportional Rate Reduction (RFC 6937)\n"
    "  --no-tlp            no RACK-TLP (RFC 8985): a lost tail, and a loss that\n"
    "                      brings fewer than 3 duplicate ACKs, wait for the\n"
    "                      retransmission timeout\n"
    "  --rcvbuf BYTES      receive buffer per connection (K/M suffixes, up to\n"
    "                      64M; default 65535; beyond 64K needs window scaling)\n"
    "  --rto-min MS        least retransmission timeout, 1-60000 ms (default\n"
    "                      1000 as RFC 6298 2.4 says; Linux uses 200)\n";

int cli_tcpopt_getopt(int c, const char *arg, struct cli_tcpopt *t)
{
    switch (c) {
    case CLI_O_NO_WSCALE: t->no_wscale = true; return 1;
    case CLI_O_NO_TIMESTAMPS: t->no_timestamps = true; return 1;
    case CLI_O_NO_SACK: t->no_sack = true; return 1;
    case CLI_O_NO_HYSTART: t->no_hystart = true; return 1;
    case CLI_O_NO_PRR: t->no_prr = true; return 1;
    case CLI_O_NO_TLP: t->no_tlp = true; return 1;
    case CLI_O_RCVBUF:
        return cli_parse_scaled("--rcvbuf", arg, 1024, 1, CLI_RCVBUF_MAX, &t->rcvbuf) < 0
                   ? -CLI_USAGE : 1;
    case CLI_O_RTO_MIN:
        return cli_parse_int("--rto-min", arg, 1, CLI_RTO_MIN_MAX_MS, &t->rto_min_ms) < 0
                   ? -CLI_USAGE : 1;
    default: return 0;
    }
}

void cli_tcpopt_apply(const struct cli_tcpopt *t, struct ss_stack_cfg *cfg)
{
    if (t->no_wscale)
        cfg->wscale = false;
    if (t->no_timestamps)
        cfg->timestamps = false;
    if (t->no_sack)
        cfg->sack = false;
    if (t->no_hystart)
        cfg->hystart = false;
    if (t->no_prr)
        cfg->prr = false;
    if (t->no_tlp)
        cfg->tlp = false;
    if (t->rcvbuf)
        cfg->rcvbuf = (uint32_t)t->rcvbuf;
    if (t->rto_min_ms)
        cfg->rto_min_ms = (uint32_t)t->rto_min_ms;
}

/* "on"/"off" (or 1/0) for a --stack key. */
static int parse_onoff(const char *cmd, const char *key, const char *v, bool *off)
{
    if (!strcmp(v, "on") || !strcmp(v, "1"))
        *off = false;
    else if (!strcmp(v, "off") || !strcmp(v, "0"))
        *off = true;
    else
        return cli_usage_error(cmd, "--stack %s=: '%s' is not on or off", key, v);
    return 0;
}

int cli_parse_cc(const char *cmd, const char *opt, const char *name, int *algo)
{
    int a = ss_tcp_cc_parse(name);
    if (a > 0) {
        *algo = a;
        return 0;
    }
    char names[64] = "";
    for (int i = 1; i < SS_CC_NALGOS; i++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i > 1 ? ", " : "",
                 ss_tcp_cc_name(i));
    return cli_usage_error(cmd, "%s: unknown congestion control '%s' (valid: %s)", opt, name,
                           names);
}

int cli_parse_addr_prefix(const char *s, struct in_addr *a, unsigned *prefix)
{
    char buf[64];
    const char *slash = strchr(s, '/');
    if (!slash || (size_t)(slash - s) >= sizeof buf)
        return -1;
    memcpy(buf, s, (size_t)(slash - s));
    buf[slash - s] = '\0';
    if (inet_pton(AF_INET, buf, a) != 1)
        return -1;
    char *end;
    errno = 0;
    long p = strtol(slash + 1, &end, 10);
    if (errno || end == slash + 1 || *end || p < 1 || p > 30)
        return -2;
    *prefix = (unsigned)p;
    return 0;
}

int cli_stack_parse(const char *cmd, const char *arg, struct cli_stack_spec *sp)
{
    memset(sp, 0, sizeof *sp);
    char *dup = strdup(arg), *save = NULL;
    bool have_addr = false;
    int rc = 0;
    if (!dup) {
        cli_error("out of memory");
        return CLI_RUNTIME;
    }
    for (char *tok = strtok_r(dup, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) {
            rc = cli_usage_error(cmd, "--stack: '%s' is not KEY=VALUE (keys: tun, addr, peer, "
                                 "mtu, wscale, timestamps, sack, rcvbuf, cc, offload)", tok);
            break;
        }
        *eq = '\0';
        const char *v = eq + 1;
        if (!strcmp(tok, "tun")) {
            if (strlen(v) == 0 || strlen(v) >= sizeof sp->tun)
                rc = cli_usage_error(cmd, "--stack tun=: name must have 1 to 15 characters");
            else
                snprintf(sp->tun, sizeof sp->tun, "%s", v);
        } else if (!strcmp(tok, "addr")) {
            int r = cli_parse_addr_prefix(v, &sp->addr, &sp->prefix);
            if (r == -1)
                rc = cli_usage_error(cmd, "--stack addr=: '%s' is not ADDR/PREFIX (IPv4)", v);
            else if (r < 0)
                rc = cli_usage_error(cmd, "--stack addr=: prefix length must be 1 to 30");
            have_addr = true;
        } else if (!strcmp(tok, "peer")) {
            if (inet_pton(AF_INET, v, &sp->peer) != 1)
                rc = cli_usage_error(cmd, "--stack peer=: '%s' is not an IPv4 address", v);
            sp->have_peer = true;
        } else if (!strcmp(tok, "mtu")) {
            int m;
            if (cli_parse_int("--stack mtu=", v, 576, 65535, &m) < 0)
                rc = CLI_USAGE;
            else
                sp->mtu = (unsigned)m;
        } else if (!strcmp(tok, "wscale")) {
            rc = parse_onoff(cmd, tok, v, &sp->tcp.no_wscale);
        } else if (!strcmp(tok, "timestamps")) {
            rc = parse_onoff(cmd, tok, v, &sp->tcp.no_timestamps);
        } else if (!strcmp(tok, "sack")) {
            rc = parse_onoff(cmd, tok, v, &sp->tcp.no_sack);
        } else if (!strcmp(tok, "hystart")) {
            rc = parse_onoff(cmd, tok, v, &sp->tcp.no_hystart);
        } else if (!strcmp(tok, "prr")) {
            rc = parse_onoff(cmd, tok, v, &sp->tcp.no_prr);
        } else if (!strcmp(tok, "tlp")) {
            rc = parse_onoff(cmd, tok, v, &sp->tcp.no_tlp);
        } else if (!strcmp(tok, "rcvbuf")) {
            if (cli_parse_scaled("--stack rcvbuf=", v, 1024, 1, CLI_RCVBUF_MAX, &sp->tcp.rcvbuf) < 0)
                rc = CLI_USAGE;
        } else if (!strcmp(tok, "rto_min")) {
            if (cli_parse_int("--stack rto_min=", v, 1, CLI_RTO_MIN_MAX_MS, &sp->tcp.rto_min_ms) < 0)
                rc = CLI_USAGE;
        } else if (!strcmp(tok, "cc")) {
            rc = cli_parse_cc(cmd, "--stack cc=", v, &sp->cc_algo);
        } else if (!strcmp(tok, "offload")) {
            bool off = false;
            rc = parse_onoff(cmd, tok, v, &off);
            sp->offload = !off;
        } else if (!strcmp(tok, "uring")) {
            bool off = false;
            rc = parse_onoff(cmd, tok, v, &off);
            sp->no_uring = off;
        } else {
            rc = cli_usage_error(cmd, "--stack: unknown key '%s' (tun, addr, peer, mtu, wscale, "
                                 "timestamps, sack, hystart, prr, tlp, rcvbuf, rto_min, cc, "
                                 "offload, uring)", tok);
        }
    }
    free(dup);
    if (rc)
        return rc;
    if (!sp->tun[0])
        return cli_usage_error(cmd, "--stack: tun=NAME is required");
    if (!have_addr)
        return cli_usage_error(cmd, "--stack: addr=ADDR/PREFIX is required");
    return cli_stack_check(cmd, "--stack addr=", "--stack peer=", sp);
}

int cli_stack_check(const char *cmd, const char *addr_opt, const char *peer_opt,
                    struct cli_stack_spec *sp)
{
    uint32_t a = ntohl(sp->addr.s_addr);
    uint32_t mask = ~(uint32_t)0 << (32 - sp->prefix);
    uint32_t net = a & mask, bcast = net | ~mask;
    if (a == net || a == bcast)
        return cli_usage_error(cmd, "%s that is the network or broadcast address", addr_opt);
    if (sp->have_peer) {
        uint32_t p = ntohl(sp->peer.s_addr);
        if ((p & mask) != net || p == a || p == net || p == bcast)
            return cli_usage_error(cmd, "%s must be another host address of the prefix",
                                   peer_opt);
    } else {
        sp->peer.s_addr = htonl(net + 1 == a ? net + 2 : net + 1);
    }
    return 0;
}

const char *cli_stack_addr_str(const struct cli_stack_spec *sp)
{
    static char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sp->addr, buf, sizeof buf);
    return buf;
}

int cli_stack_start(ss_loop *loop, const struct cli_stack_spec *sp,
                    const struct ss_stack_cfg *cfg, ss_pcap *pcap, bool want_backend,
                    struct cli_stack *r)
{
    memset(r, 0, sizeof *r);
    r->offload = sp->offload;
    int rc;
    r->fd = ss_tun_open_opts(sp->tun, sp->offload ? SS_TUN_VNET : 0, r->ifname,
                             sizeof r->ifname);
    if (r->fd < 0) {
        cli_error("cannot open TUN device %s: %s", sp->tun, ss_strerror(r->fd));
        goto fail;
    }
    if (sp->offload && (rc = ss_tun_set_offload(r->fd, true)) < 0) {
        cli_error("%s: cannot switch offloads on: %s", r->ifname, ss_strerror(rc));
        goto fail;
    }
    if ((rc = ss_tun_configure(r->ifname, sp->peer, sp->prefix, sp->mtu)) < 0 ||
        (rc = ss_tun_set_txqueuelen(r->ifname, SS_TUN_TXQLEN)) < 0) {
        cli_error("cannot configure %s: %s", r->ifname, ss_strerror(rc));
        goto fail;
    }
    struct ss_stack_cfg c;
    if (cfg)
        c = *cfg;
    else
        ss_stack_cfg_default(&c);
    c.local_addr = ntohl(sp->addr.s_addr);
    cli_tcpopt_apply(&sp->tcp, &c);
    if (sp->cc_algo)
        c.cc_algo = sp->cc_algo;
    if (getrandom(c.isn_secret, sizeof c.isn_secret, 0) != (ssize_t)sizeof c.isn_secret) {
        cli_error("getrandom: %s", strerror(errno));
        goto fail;
    }
    if ((rc = ss_tunnet_new(loop, r->fd, &c, pcap, sp->have_link ? &sp->link : NULL,
                            (sp->offload ? SS_TUNNET_OFFLOAD : 0) |
                                (sp->no_uring ? SS_TUNNET_NO_URING : 0),
                            &r->tn)) < 0) {
        cli_error("cannot start the stack: %s", ss_strerror(rc));
        goto fail;
    }
    if (want_backend && (rc = ss_backend_stack_tunnet(r->tn, c.local_addr, &r->be)) < 0) {
        cli_error("cannot start the stack backend: %s", ss_strerror(rc));
        goto fail;
    }
    return CLI_OK;
fail:
    cli_stack_stop(r, false);
    return CLI_RUNTIME;
}

void cli_stack_stop(struct cli_stack *r, bool log_stats)
{
    if (r->tn) {
        /* Let pending output (e.g. the RSTs of aborts) go before the device. */
        ss_stack_poll(ss_tunnet_stack(r->tn), ss_tunnet_now(r->tn));
        if (log_stats) {
            struct ss_tunnet_stats ts;
            struct ss_stack_stats ss;
            ss_tunnet_get_stats(r->tn, &ts);
            ss_stack_stats(ss_tunnet_stack(r->tn), &ss);
            cli_log("%s: %llu packets in, %llu out, %llu not sent; tcp: %llu passive and "
                    "%llu active opens, %llu retransmissions, %llu resets sent",
                    r->ifname, (unsigned long long)ts.rx_packets,
                    (unsigned long long)ts.tx_packets, (unsigned long long)ts.tx_dropped,
                    (unsigned long long)ss.tcp_passive_opens,
                    (unsigned long long)ss.tcp_active_opens,
                    (unsigned long long)ss.tcp_retransmits, (unsigned long long)ss.tcp_rst_out);
            if (!r->offload && !ss_tunnet_relay(r->tn))
                cli_log("%s: output: %s, %llu batches", r->ifname,
                        ss_tunnet_uring(r->tn) ? "io_uring" : "write(2)",
                        (unsigned long long)ts.tx_flushes);
            if (!ss_tunnet_relay(r->tn))
                cli_log("%s: input: %s, %llu rounds", r->ifname,
                        ts.rx_rounds ? "io_uring" : "read(2)",
                        (unsigned long long)ts.rx_rounds);
            if (ts.rx_truncated)
                cli_log("%s: %llu packets above the device's MTU at start dropped",
                        r->ifname, (unsigned long long)ts.rx_truncated);
            if (r->offload)
                cli_log("%s: offload: %llu segments above the MSS in, %llu out, %llu checksums "
                        "left to the kernel", r->ifname, (unsigned long long)ts.rx_gso,
                        (unsigned long long)ts.tx_gso, (unsigned long long)ts.rx_csum_skipped);
            const ss_relay *rl = ss_tunnet_relay(r->tn);
            for (int d = 0; rl && d < 2; d++) {
                struct ss_relay_stats rs;
                ss_relay_get_stats(rl, d, &rs);
                cli_log("%s: link %s: %s", r->ifname, d == 0 ? "stack -> device" : "device -> stack",
                        cli_relay_stats_str(&rs));
            }
        }
    }
    ss_backend_stack_free(r->be);
    r->be = NULL;
    if (r->tn)
        ss_tunnet_free(r->tn);
    r->tn = NULL;
    if (r->fd > 0) {
        ss_tun_down(r->ifname);
        close(r->fd);
    }
    r->fd = -1;
}
