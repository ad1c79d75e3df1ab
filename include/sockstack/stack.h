/* stack: the user-space IPv4 / ICMP / UDP / TCP protocol core (sans-I/O).
 *
 * The core is a pure state machine. Its inputs are received IPv4 packets
 * (ss_stack_input), the passage of time (ss_stack_poll) and socket calls;
 * its outputs are IPv4 packets (the cfg->output callback), socket events
 * (per-socket callbacks), trace events (cfg->trace) and the absolute time
 * it next wants to be polled. It never reads a clock, never makes a system
 * call and never allocates after ss_stack_new: sockets and their buffers
 * come from pools sized by the configuration.
 *
 * Time: every entry point that can send takes `now_us`, microseconds on
 * any monotonic (or virtual) clock chosen by the caller. Times must not go
 * backwards. Addresses are IPv4 in host byte order; ports in host order.
 *
 * Handles: sockets are small non-negative ints ("sd"), valid from the call
 * that returns them until ss_tcp_close / ss_tcp_abort / ss_udp_close. After
 * close the core may keep the connection (FIN exchange, TIME-WAIT) without a
 * handle; the number may be reused later.
 *
 * Errors: negative errno (-EAGAIN, -ECONNREFUSED, ...) or SS_E* from err.h.
 *
 * Events are edge notifications delivered through the socket's callback
 * (ss_stack_sock_set_cb) only from inside ss_stack_input and ss_stack_poll, after
 * the packet or timer has been fully processed, so a callback may call any
 * socket function (including close). Errors detected inside a socket call
 * that belong to the asynchronous operation are delivered the same way,
 * at the next input/poll. ss_stack_sock_events() gives the level-triggered view.
 *
 * Typical driver:
 *     ss_stack_new(&cfg, &st);
 *     for (;;) {
 *         wait for a packet or until `deadline`;
 *         if (packet) ss_stack_input(st, now, pkt, len);
 *         deadline = ss_stack_poll(st, now);
 *     }
 */
#ifndef SOCKSTACK_STACK_H
#define SOCKSTACK_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "sockstack/api.h"
#include "sockstack/tcp_flags.h"
SS_API_BEGIN

typedef struct ss_stack ss_stack;

/* ---- TCP states (RFC 9293 section 3.3.2) ------------------------------- */
enum ss_tcp_state {
    SS_TCP_CLOSED = 0,
    SS_TCP_LISTEN,
    SS_TCP_SYN_SENT,
    SS_TCP_SYN_RECEIVED,
    SS_TCP_ESTABLISHED,
    SS_TCP_FIN_WAIT_1,
    SS_TCP_FIN_WAIT_2,
    SS_TCP_CLOSE_WAIT,
    SS_TCP_CLOSING,
    SS_TCP_LAST_ACK,
    SS_TCP_TIME_WAIT,
    SS_TCP_NSTATES
};

/* The RFC's name ("SYN-RECEIVED"); "?" for out-of-range values. */
const char *ss_tcp_state_name(int state);

/* TCP header flag bits (SS_TCP_SYN, ...) and ss_tcp_flags_str: in
 * sockstack/tcp_flags.h, included above. */

/* ---- trace events ------------------------------------------------------ */
enum ss_trace_kind {
    SS_TRACE_STATE = 1,   /* u.state: old -> new */
    SS_TRACE_SEG_IN,      /* u.seg: a TCP segment received (after checksum) */
    SS_TRACE_SEG_OUT,     /* u.seg: a TCP segment sent */
    SS_TRACE_RETRANSMIT,  /* u.seg: a TCP segment sent again (RTO, probe) */
    SS_TRACE_RTT,         /* u.rtt: SRTT/RTTVAR/RTO changed (sample or backoff) */
    SS_TRACE_WINDOW,      /* u.win: peer's send window or our advertised window changed */
    SS_TRACE_DROP,        /* u.drop: a packet or segment was dropped */
    SS_TRACE_ICMP_IN,     /* u.icmp */
    SS_TRACE_ICMP_OUT,    /* u.icmp */
    SS_TRACE_UDP_IN,      /* u.udp */
    SS_TRACE_UDP_OUT,     /* u.udp */
    SS_TRACE_CC,          /* u.cc: cwnd, ssthresh or the loss-recovery phase changed */
    SS_TRACE_SYNCOOKIE,   /* u.cookie: a SYN cookie sent, accepted or rejected */
};

/* What happened to a SYN cookie (u.cookie.what). */
enum ss_cookie_what {
    SS_COOKIE_SENT = 1,    /* a SYN,ACK whose ISS is a cookie (SYN queue full, or always) */
    SS_COOKIE_ACCEPTED,    /* a valid cookie ACK made a connection */
    SS_COOKIE_REJECTED,    /* an ACK to a listener whose cookie is wrong or expired (RST) */
};

/* ---- congestion control ------------------------------------------------- */
/* Algorithms, chosen per socket (SS_SO_CONGESTION) like Linux's TCP_CONGESTION. */
enum ss_cc_algo {
    SS_CC_NEWRENO = 1,     /* RFC 5681 + RFC 6582 (+ RFC 3465, 3042, 6928) */
    SS_CC_CUBIC,           /* RFC 9438, the default (as Linux) */
    SS_CC_NALGOS
};
/* "newreno", "cubic"; "?" for out-of-range values. */
const char *ss_tcp_cc_name(int algo);
/* The algorithm called name (case-insensitive), or -EINVAL. */
int ss_tcp_cc_parse(const char *name);

/* Loss-recovery phase of a connection's sender (u.cc.phase). */
enum ss_cc_phase {
    SS_CC_OPEN = 0,        /* no loss seen: slow start or congestion avoidance */
    SS_CC_DISORDER,        /* 1 or 2 duplicate ACKs: limited transmit (RFC 3042) */
    SS_CC_RECOVERY,        /* fast recovery (RFC 6582, or RFC 6675 with SACK) */
    SS_CC_LOSS,            /* after an RTO, until SND.MAX of then is acknowledged */
};
/* "open", "disorder", "recovery", "loss"; "?" for out-of-range values. */
const char *ss_cc_phase_name(int phase);

/* What changed the congestion state (u.cc.mark). */
enum ss_cc_mark {
    SS_CC_MARK_NONE = 0,     /* growth on an ACK (slow start / congestion avoidance) */
    SS_CC_MARK_INIT,         /* initial window set (RFC 6928) */
    SS_CC_MARK_FAST_RETRANSMIT, /* third duplicate ACK: fast retransmit, enter fast recovery */
    SS_CC_MARK_PARTIAL_ACK,  /* partial ACK in recovery: the next hole is resent */
    SS_CC_MARK_EXIT_RECOVERY,/* full ACK: fast recovery ends */
    SS_CC_MARK_EXIT_LOSS,    /* SND.MAX at the RTO acknowledged: RTO recovery ends */
    SS_CC_MARK_RTO,          /* retransmission timeout: cwnd = 1 MSS */
    SS_CC_MARK_IDLE_RESTART, /* idle longer than the RTO: cwnd = min(IW, cwnd) */
    SS_CC_MARK_LOST_RXT,     /* a retransmission was lost too: resent (SACK recovery) */
    SS_CC_MARK_HYSTART_CSS,  /* HyStart++: the RTT rose, conservative slow start */
    SS_CC_MARK_HYSTART_SS,   /* HyStart++: the RTT fell again, back to slow start */
    SS_CC_MARK_HYSTART_CA,   /* HyStart++: CSS over, ssthresh = cwnd */
    SS_CC_MARK_TLP,          /* tail loss probe sent (RFC 8985 7.3) */
    SS_CC_MARK_TLP_LOSS,     /* the probe repaired a loss: cwnd reduced (RFC 8985 7.4) */
    SS_CC_MARK_HYSTART_TRAIN,/* HyStart ACK train spans half the min RTT: ssthresh = cwnd */
    SS_CC_MARK_RACK,         /* RACK: SND.UNA's segment lost by time, fast retransmit (RFC 8985 6) */
    SS_CC_MARK_RACK_HOLES,   /* RACK in recovery: what was sent before a delivered segment lost by time */
};

/* Why a packet or segment was dropped (u.drop.reason). */
enum ss_drop_reason {
    SS_DROP_IP_SHORT = 1,      /* shorter than an IPv4 header */
    SS_DROP_IP_VERSION,        /* version != 4 */
    SS_DROP_IP_HDRLEN,         /* IHL < 5 or beyond the packet */
    SS_DROP_IP_TOTLEN,         /* total length inconsistent with the packet */
    SS_DROP_IP_CHECKSUM,       /* header checksum wrong */
    SS_DROP_IP_NOT_US,         /* destination is not our address */
    SS_DROP_IP_SRC,            /* source is broadcast/multicast/ours */
    SS_DROP_IP_FRAG,           /* fragment not reassembled (no slot, overlap, timeout) */
    SS_DROP_IP_PROTO,          /* no handler for the protocol */
    SS_DROP_ICMP_BAD,          /* short or bad checksum */
    SS_DROP_UDP_BAD,           /* short, bad length or bad checksum */
    SS_DROP_UDP_NO_PORT,       /* nobody bound (ICMP port unreachable sent) */
    SS_DROP_UDP_QUEUE_FULL,    /* socket receive queue full */
    SS_DROP_TCP_BAD_CHECKSUM,
    SS_DROP_TCP_BAD_HEADER,    /* data offset out of range, bad options */
    SS_DROP_TCP_NO_SOCKET,     /* no socket (RST sent unless the segment was a RST) */
    SS_DROP_TCP_UNACCEPTABLE,  /* RFC 9293 3.10.7.4 sequence check failed */
    SS_DROP_TCP_BAD_ACK,       /* ACK outside the acceptable range */
    SS_DROP_TCP_RST_INVALID,   /* RST outside window (RFC 5961 3.2) */
    SS_DROP_TCP_CHALLENGE,     /* answered with a challenge ACK (RFC 5961) */
    SS_DROP_TCP_SYN_QUEUE_FULL,/* listen backlog full: SYN dropped silently */
    SS_DROP_TCP_NO_MEMORY,     /* socket pool exhausted */
    SS_DROP_TCP_OOO_FULL,      /* out-of-order queue full */
    SS_DROP_TCP_NO_FLAGS,      /* no ACK/SYN/RST where required */
    SS_DROP_TCP_PAWS,          /* old timestamp (RFC 7323 5.3) or none once negotiated */
    SS_DROP_NREASONS
};

/* Short name of a drop reason ("tcp-unacceptable"); "?" if unknown. */
const char *ss_drop_reason_name(int reason);

/* Parsed TCP segment fields as traced. */
struct ss_trace_seg {
    uint8_t flags;         /* SS_TCP_* */
    uint32_t seq, ack;
    uint16_t win;          /* window field as on the wire */
    uint32_t len;          /* payload bytes */
    uint16_t mss;          /* MSS option value, 0 if absent */
    uint8_t opt_len;       /* total option bytes */
    uint16_t urp;          /* urgent pointer field (meaningful with URG) */
    uint8_t opt[40];       /* the option bytes as on the wire (opt_len of them);
                            * the format functions show these when opt_len > 0 */
    /* Decoded options (RFC 7323, RFC 2018); see also ss_tcp_options_format. */
    int8_t wscale;         /* window scale shift, -1 if absent */
    bool sack_ok;          /* SACK-permitted */
    bool ts;               /* timestamps present: */
    uint32_t ts_val, ts_ecr;
    uint8_t nsack;         /* SACK blocks [start, end) */
    uint32_t sack[4][2];
};

/* TCP option bytes in tcpdump's notation, without the angle brackets:
 * "mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7",
 * "nop,nop,TS val 5 ecr 3,nop,nop,sack 1 {3001:4461}" (SACK edges as
 * absolute sequence numbers), "eol", "opt-30:4" for an unknown kind with
 * its length, "bad-opts" where the list is malformed. snprintf semantics. */
int ss_tcp_options_format(const uint8_t *opt, size_t len, char *buf, size_t buflen);

struct ss_trace_event {
    uint64_t time_us;
    enum ss_trace_kind kind;
    int sd;                /* socket handle, -1 if none */
    /* 4-tuple from our side (local = this stack); zero when not known. */
    uint32_t laddr, raddr;
    uint16_t lport, rport;
    union {
        struct { int old_state, new_state; } state;
        struct ss_trace_seg seg;
        struct {
            uint32_t sample_us;    /* 0: no sample (backoff or reset) */
            uint32_t srtt_us, rttvar_us, rto_us;
            uint32_t backoff;      /* number of consecutive RTO expiries */
        } rtt;
        struct {
            bool ours;             /* true: our advertised window; false: peer's */
            uint32_t old_win, new_win;
        } win;
        struct { int reason; uint8_t proto; } drop;  /* proto: IP protocol or 0 */
        struct { uint8_t type, code; uint16_t len; } icmp;
        struct { uint16_t len; } udp;
        struct {
            uint32_t cwnd;         /* congestion window, bytes */
            uint32_t ssthresh;     /* slow-start threshold, bytes; UINT32_MAX: none yet */
            uint32_t flight;       /* FlightSize: SND.MAX - SND.UNA, bytes */
            uint32_t peer_wnd;     /* the peer's window (SND.WND), bytes */
            uint32_t mss;          /* SMSS, to show the window in segments */
            uint8_t phase;         /* enum ss_cc_phase */
            uint8_t mark;          /* enum ss_cc_mark: what just happened */
            uint8_t algo;          /* enum ss_cc_algo */
        } cc;
        struct {
            uint8_t what;          /* enum ss_cookie_what */
            uint16_t mss;          /* the MSS the cookie encodes (0 when rejected) */
            uint32_t isn;          /* the cookie: our ISS (the ACK's SEG.ACK - 1) */
        } cookie;
    } u;
};

/* Format flags for ss_trace_format. */
enum {
    SS_TRACE_FMT_TIME = 1,   /* prefix "12.345678 " (seconds.micro) */
    SS_TRACE_FMT_TUPLE = 2,  /* prefix "10.0.0.2:80 10.0.0.1:5000 " */
};

/* One line of textbook notation, no newline, e.g.
 *   "SYN-SENT -> ESTABLISHED"
 *   "> SYN seq=1000 win=65535 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>"
 *   "< SYN,ACK seq=5000 ack=1001 win=64240 <mss 1460>"
 *   "> [rtx] PSH,ACK seq=1001 ack=5001 win=65535 len=100 <nop,nop,TS val 5 ecr 3>"
 *   "> ACK seq=1 ack=3001 win=501 <nop,nop,TS val 5 ecr 3,nop,nop,sack 1 {4461:5921}>"
 *   "rtt sample=12000us srtt=12000us rttvar=6000us rto=1000000us"
 * '>' is a segment we send, '<' one we receive. win= is the window field
 * as on the wire (unscaled). Options follow in angle brackets, every
 * option in order as on the wire, in tcpdump's notation (see
 * ss_tcp_options_format); an event with opt_len 0 but mss set shows
 * "<mss N>". Returns the length the full
 * line needs (snprintf semantics; truncated to fit len, always terminated
 * when len > 0). */
int ss_trace_format(const struct ss_trace_event *ev, unsigned flags,
                    char *buf, size_t len);

/* The event as one JSON object line (no newline), e.g.
 *   {"t_us":1000,"kind":"seg_out","sd":3,"local":"10.0.0.2:80",
 *    "remote":"10.0.0.1:5000","flags":"SYN,ACK","seq":5000,...}
 * Returns the length needed (snprintf semantics) or a negative errno. */
int ss_trace_format_json(const struct ss_trace_event *ev, char *buf, size_t len);

/* Name of a trace kind ("state", "seg_in", ...). */
const char *ss_trace_kind_name(int kind);

/* Decode a TCP header (and its options, as the stack parses them) of a
 * segment of len bytes (header + payload) into out, as a trace event holds
 * it: what a capture needs to be shown in the trace's notation. Checksums
 * are not checked. Returns the header length or SS_EBADPKT. */
int ss_tcp_seg_decode(const uint8_t *tcp, size_t len, uint16_t *sport, uint16_t *dport,
                      struct ss_trace_seg *out);

/* ---- configuration ----------------------------------------------------- */
typedef int (*ss_stack_output_fn)(void *ctx, const uint8_t *pkt, size_t len);
/* A TCP segment for a link with offloads (cfg.output_offload), in iovcnt
 * pieces to be sent as one packet (as writev): iov[0] holds the IPv4 and
 * TCP headers, and the payload follows in it or, when the checksum is
 * left to the link, in up to two more pieces that point into the
 * connection's send buffer (no copy), valid for the call only.
 * gso_size > 0 means the payload is longer than one MSS and the link cuts
 * it into gso_size pieces (TSO/GSO, as a virtio-net header's gso_size);
 * csum_partial means the TCP checksum field holds only the pseudo-header
 * sum, for the link to complete over the TCP header and payload. */
typedef int (*ss_stack_output_offload_fn)(void *ctx, const struct iovec *iov, int iovcnt,
                                          uint16_t gso_size, bool csum_partial);
typedef void (*ss_stack_trace_fn)(void *ctx, const struct ss_trace_event *ev);

struct ss_stack_cfg {
    uint32_t local_addr;        /* our IPv4 address, host byte order */
    uint8_t ttl;                /* TTL of packets we originate */
    uint16_t mss;               /* MSS we advertise and our send cap */
    uint32_t sndbuf, rcvbuf;    /* per-socket buffer limits in bytes; memory is
                                 * taken as data is queued, given back idle */
    uint64_t mem_max;           /* bytes of socket buffers in all (0: no limit) */
    uint32_t msl_ms;            /* TIME-WAIT lasts 2 * msl_ms */
    uint32_t rto_min_ms, rto_max_ms, rto_initial_ms;
    uint32_t max_retries;       /* RTO expiries before ETIMEDOUT (data/FIN) */
    uint32_t syn_retries;       /* SYN / SYN,ACK retransmissions before giving up */
    uint32_t keepalive_idle_s, keepalive_intvl_s, keepalive_cnt; /* intvl 1 .. 32767,
                                 * cnt 1 .. 127 (Linux' limits) */
    uint32_t delack_ms;         /* longest delay of an ACK (RFC 1122: < 500) */
    uint32_t syn_backlog;       /* cap on a listener's backlog argument */
    uint32_t max_sockets;       /* TCP + UDP sockets, including TIME-WAIT (up to
                                 * 16,777,216; each is allocated when opened) */
    uint32_t ooo_max;           /* out-of-order ranges kept per connection (up to
                                 * 4,096; the table grows from 16 as holes appear) */
    uint32_t udp_rcvq_max;      /* datagrams queued per UDP socket */
    uint32_t frag_slots;        /* IPv4 reassemblies in progress at once */
    uint32_t frag_timeout_ms;   /* an incomplete reassembly is dropped after */
    uint32_t frag_mem;          /* bytes of fragments held across all reassemblies;
                                 * past it (or with every slot taken) the oldest
                                 * reassembly is dropped */
    uint8_t isn_secret[32];     /* RFC 6528 secret: caller fills >= 16 random bytes;
                                 * all zero is refused (-EINVAL, MUST-9) */
    uint32_t challenge_ack_limit; /* challenge ACKs per second and connection (RFC 5961 7) */
    bool rfc1337;               /* ignore RSTs in TIME-WAIT (RFC 1337); Linux' default: off */
    /* TCP options, each offered and accepted only when true (a socket can
     * switch each off: SS_SO_WSCALE, SS_SO_TIMESTAMPS, SS_SO_SACK). */
    bool wscale;                /* window scaling (RFC 7323 2) */
    bool timestamps;            /* timestamps: RTTM and PAWS (RFC 7323 3-5) */
    bool sack;                  /* selective acknowledgments (RFC 2018) */
    uint32_t sack_max;          /* SACKed ranges remembered per connection */
    int cc_algo;                /* enum ss_cc_algo of new sockets */
    bool hystart;               /* HyStart++ (RFC 9406) in the initial slow start */
    bool prr;                   /* Proportional Rate Reduction (RFC 6937) in SACK recovery */
    bool tlp;                   /* Tail Loss Probe (RFC 8985 7) with SACK */
    uint32_t init_cwnd;         /* IW in segments: min(N*MSS, max(2*MSS, N*1460)),
                                 * RFC 6928 with N = 10 */
    /* SYN flood defence (RFC 4987). A SYN to a listener takes a small
     * half-open entry (not a socket) until the handshake completes; a
     * listener holds at most its backlog of them, the stack synq_max. */
    uint32_t synq_max;          /* half-open entries across all listeners */
    int syncookies;             /* SYN cookies: 0 never, 1 when the listener's SYN
                                 * queue is full, 2 for every SYN */
    ss_stack_output_fn output;  /* required: receives whole IPv4 packets */
    void *output_ctx;
    /* Offloads of the link, e.g. a TUN device with IFF_VNET_HDR (all off by
     * default: a link without them, the simulated one too, sees the same
     * packets as ever). With output_offload set, every TCP segment goes
     * there (with output_ctx) instead of output. */
    ss_stack_output_offload_fn output_offload;
    uint32_t tso_max;           /* > 0: a data segment may carry up to this many
                                 * payload bytes (whole MSS, at most SS_STACK_TSO_MAX),
                                 * for the link to cut (gso_size = MSS); needs
                                 * output_offload. Not while SACK blocks are sent. */
    bool tx_csum_offload;       /* TCP checksums left partial for the link; needs
                                 * output_offload */
    bool defer_user_output;     /* what ss_tcp_send and ss_tcp_recv make
                                 * sendable (data, a window update) waits for
                                 * the end of the input batch they run in, or
                                 * for the next ss_stack_poll; and
                                 * ss_stack_input_batch runs the batch's socket
                                 * callbacks before its output. So many small
                                 * sends leave as one (TSO) segment and many
                                 * reads as one window update, on the batch's
                                 * ACK. Off by default: the simulated runs keep
                                 * their packets */
    ss_stack_trace_fn trace;    /* optional */
    void *trace_ctx;
};

/* Fill cfg with the defaults of config.h (addresses, secret, callbacks zero). */
void ss_stack_cfg_default(struct ss_stack_cfg *cfg);

/* Create a stack. Allocates every pool now. -EINVAL on a bad cfg (no output
 * callback, zero sizes, buffers above 1 GiB, ...), -ENOMEM. A receive
 * buffer above 65535 bytes is advertised in full only to peers that
 * negotiate window scaling. */
int ss_stack_new(const struct ss_stack_cfg *cfg, ss_stack **out);
void ss_stack_free(ss_stack *st);

/* Our IPv4 address (cfg.local_addr), host byte order. */
uint32_t ss_stack_addr(const ss_stack *st);

/* Process one received IPv4 packet (header included). Never fails: bad
 * packets are counted and dropped. Returns 0, or SS_EBADPKT if the packet
 * was dropped as malformed (informational). */
int ss_stack_input(ss_stack *st, uint64_t now_us, const uint8_t *pkt, size_t len);

/* Process n received packets as one batch (e.g. everything one wake-up
 * read from the device): every packet is processed before any TCP output
 * (ACKs, window updates, data an ACK released) is sent, so ACKs are
 * aggregated (RFC 9293 MUST-58, MUST-59); with cfg.defer_user_output
 * the socket callbacks of the batch's events run before that output too,
 * and what they send goes with it. Returns how many were dropped as
 * malformed. */
int ss_stack_input_batch(ss_stack *st, uint64_t now_us, const uint8_t *const *pkts,
                         const size_t *lens, size_t n);

/* Per-packet facts a link with offloads knows (ss_stack_input_batch_flags). */
enum {
    SS_RX_CSUM_OK = 1,  /* the TCP/UDP checksum was checked by the link, or the
                         * packet never left the host and its checksum is
                         * partial (virtio-net NEEDS_CSUM / DATA_VALID):
                         * not verified again */
};
/* ss_stack_input_batch with flags[i] (SS_RX_*) per packet; flags may be
 * NULL. A TCP segment may carry more than one MSS (a link's GRO). */
int ss_stack_input_batch_flags(ss_stack *st, uint64_t now_us, const uint8_t *const *pkts,
                               const size_t *lens, const uint8_t *flags, size_t n);

/* Run due timers, send pending output, deliver events. Returns the absolute
 * time (µs) of the next deadline, UINT64_MAX if none. Call it after input,
 * after socket calls, and when the deadline passes. */
uint64_t ss_stack_poll(ss_stack *st, uint64_t now_us);

struct ss_stack_stats {
    uint64_t ip_in, ip_out, ip_delivered;
    uint64_t ip_bad_header, ip_bad_checksum, ip_bad_len;
    uint64_t ip_not_for_us, ip_bad_src, ip_unknown_proto, ip_out_err;
    uint64_t ip_frag_in, ip_frag_reassembled, ip_frag_dropped, ip_frag_timeout;
    uint64_t ip_frag_evicted;   /* reassemblies dropped oldest-first for room (slots, frag_mem) */
    uint64_t icmp_in, icmp_out, icmp_bad, icmp_echo_in, icmp_unreach_in;
    uint64_t udp_in, udp_out, udp_bad, udp_bad_checksum, udp_no_port, udp_queue_full;
    uint64_t tcp_in, tcp_out, tcp_bad_checksum, tcp_bad_header, tcp_no_socket;
    uint64_t tcp_rst_in, tcp_rst_out, tcp_retransmits, tcp_timeouts;
    uint64_t tcp_unacceptable, tcp_challenge_acks, tcp_syn_queue_full;
    uint64_t tcp_ooo_in, tcp_ooo_dropped, tcp_dup_data, tcp_no_memory;
    uint64_t tcp_active_opens, tcp_passive_opens, tcp_estab_resets;
    uint64_t tcp_tw_recycled;   /* TIME-WAIT ended early: pool full, or a new SYN reused the tuple */
    uint64_t tcp_paws_dropped;  /* old timestamp (PAWS, RFC 7323 5) or none where required */
    uint64_t mem_refused;       /* buffer growth refused: cfg.mem_max reached, or malloc failed */
    uint64_t tcp_syncookies_sent;   /* SYN,ACKs with a cookie for ISS */
    uint64_t tcp_syncookies_recv;   /* valid cookie ACKs: connections made from them */
    uint64_t tcp_syncookies_failed; /* ACKs to a listener with a wrong or expired cookie */
    uint64_t tcp_synq_timeouts;     /* half-open entries given up after their SYN,ACK retries */
};
/* Sockets open and bytes of socket buffers held now (memory is taken on
 * demand): for tools and tests. */
struct ss_stack_mem {
    uint32_t sockets;           /* open, TIME-WAIT included */
    uint64_t socket_bytes;      /* the sockets' own state */
    uint64_t buffer_bytes;      /* ring buffers and out-of-order / SACK tables */
    uint64_t table_bytes;       /* lookup hash, timer heap, socket table */
};
void ss_stack_mem(const ss_stack *st, struct ss_stack_mem *out);
void ss_stack_stats(const ss_stack *st, struct ss_stack_stats *out);

/* ---- sockets ----------------------------------------------------------- */
/* Event bits (callback and ss_stack_sock_events). */
enum {
    SS_EV_READABLE = 0x01,  /* data, EOF (recv returns 0) or error to read */
    SS_EV_WRITABLE = 0x02,  /* send buffer has room */
    SS_EV_ACCEPT   = 0x04,  /* listener: a connection is ready for accept */
    SS_EV_CONNECTED= 0x08,  /* active open completed (ESTABLISHED) */
    SS_EV_CLOSED   = 0x10,  /* both FINs exchanged and acknowledged (TIME-WAIT or
                             * CLOSED), or the connection ended without error */
    SS_EV_ERROR    = 0x20,  /* err holds a negative errno (-ECONNREFUSED, ...) */
    SS_EV_URGENT   = 0x40,  /* the peer's urgent pointer advanced (ss_tcp_urgent) */
    SS_EV_RDHUP    = 0x80,  /* the peer sends no more: its FIN arrived, or the
                             * connection reset or closed (bytes before the FIN
                             * may still wait unread): epoll's EPOLLRDHUP */
};

/* err is 0 unless SS_EV_ERROR is set. */
typedef void (*ss_stack_sock_cb)(void *arg, ss_stack *st, int sd, unsigned events, int err);

enum ss_stack_sock_proto { SS_PROTO_TCP = 6, SS_PROTO_UDP = 17 };

/* Attach a callback. Accepted sockets inherit their listener's callback. */
int ss_stack_sock_set_cb(ss_stack *st, int sd, ss_stack_sock_cb cb, void *arg);

/* Level-triggered readiness (SS_EV_* bits) or negative errno for a bad sd. */
int ss_stack_sock_events(const ss_stack *st, int sd);

/* Pending error (negative errno) once, then 0; like SO_ERROR. */
int ss_stack_sock_error(ss_stack *st, int sd);

enum ss_sockopt {
    SS_SO_NODELAY = 1,     /* int bool: disable Nagle (RFC 896) */
    SS_SO_KEEPALIVE,       /* int bool */
    SS_SO_KEEPIDLE,        /* seconds */
    SS_SO_KEEPINTVL,       /* seconds */
    SS_SO_KEEPCNT,         /* probes */
    SS_SO_SNDBUF,          /* bytes, 1 .. cfg.sndbuf (the pool size) */
    SS_SO_RCVBUF,          /* bytes, 1 .. cfg.rcvbuf; on a listener, or on a
                            * socket from ss_tcp_socket before connect */
    SS_SO_MAXRT,           /* RTO expiries before ETIMEDOUT (R2 of RFC 9293
                            * 3.8.3), 1 .. 1000; default cfg.max_retries */
    SS_SO_TOS,             /* IPv4 TOS / DS field for this socket, 0 .. 255 */
    /* int bool, default from the stack's cfg; set on a listener (its
     * connections inherit it) or on a socket from ss_tcp_socket before
     * connect (-EISCONN later): may the connection use ... */
    SS_SO_WSCALE,          /* window scaling (RFC 7323 2) */
    SS_SO_TIMESTAMPS,      /* timestamps (RFC 7323 3-5) */
    SS_SO_SACK,            /* selective acknowledgments (RFC 2018) */
    SS_SO_CONGESTION,      /* enum ss_cc_algo (Linux: TCP_CONGESTION); any time,
                            * the window is kept and the new algorithm starts afresh */
};
int ss_stack_sock_setopt(ss_stack *st, int sd, int opt, int value);
int ss_stack_sock_getopt(const ss_stack *st, int sd, int opt, int *value);

struct ss_stack_sock_info {
    int proto;             /* SS_PROTO_* */
    int state;             /* enum ss_tcp_state (UDP: CLOSED) */
    int error;             /* pending error, not cleared */
    uint32_t laddr, raddr;
    uint16_t lport, rport;
    uint32_t iss, irs, snd_una, snd_nxt, snd_wnd, rcv_nxt, rcv_wnd;
    uint16_t snd_mss, rcv_mss;
    uint32_t srtt_us, rttvar_us, rto_us;
    uint32_t cwnd, ssthresh;   /* bytes; ssthresh UINT32_MAX: none yet */
    int cc_algo;               /* enum ss_cc_algo */
    int cc_phase;              /* enum ss_cc_phase */
    uint64_t retransmits, timeouts;
    uint64_t tlp_probes;       /* tail loss probes sent (RFC 8985 7) */
    uint64_t bytes_in, bytes_out, segs_in, segs_out;  /* bytes: payload, each byte
                                * once (retransmissions not counted again) */
    uint32_t snd_queued, rcv_queued;   /* bytes in the buffers */
    uint32_t accept_queued, syn_queued;/* listener only */
    int soft_error;        /* last ICMP soft error (RFC 9293 MUST-47), 0 if none */
    unsigned options;      /* SS_TCPI_OPT_*: negotiated, as Linux' tcpi_options */
    uint8_t snd_wscale;    /* the peer's window shift (0 without scaling) */
    uint8_t rcv_wscale;    /* ours */
    uint32_t sacked_bytes; /* bytes the peer SACKed above SND.UNA */
};
/* Bits of ss_stack_sock_info.options (the values of Linux' TCPI_OPT_*). */
enum { SS_TCPI_OPT_TIMESTAMPS = 1, SS_TCPI_OPT_SACK = 2, SS_TCPI_OPT_WSCALE = 4 };
int ss_stack_sock_info(const ss_stack *st, int sd, struct ss_stack_sock_info *out);

/* What the peer has SACKed (RFC 2018), for tools and tests: up to max
 * ranges [start, end) of sequence space, lowest first, into ranges.
 * Returns how many the connection holds (may exceed max), or -EBADF. */
int ss_stack_sock_sacked(const ss_stack *st, int sd, uint32_t (*ranges)[2], int max);

/* ---- TCP --------------------------------------------------------------- */
/* Passive open on our address:port (port 0 picks an ephemeral one).
 * backlog bounds the SYN-RECEIVED plus not-yet-accepted connections
 * (capped by cfg.syn_backlog). When full, new SYNs are dropped silently
 * (counted, traced as SS_DROP_TCP_SYN_QUEUE_FULL) so the peer retransmits
 * its SYN later. Returns the listening sd, -EADDRINUSE, -EMFILE. */
int ss_tcp_listen(ss_stack *st, uint16_t port, int backlog);

/* Take an established connection: sd, or -EAGAIN if none. Data (and even
 * the peer's FIN) may have arrived before accept: query ss_stack_sock_events()
 * once after accepting, since events before accept are not delivered. */
int ss_tcp_accept(ss_stack *st, int lsd, uint32_t *raddr, uint16_t *rport);

/* Active open: sends SYN now. lport 0 = ephemeral. Returns sd; completion
 * is SS_EV_CONNECTED, failure SS_EV_ERROR with -ECONNREFUSED, -ETIMEDOUT,
 * -EHOSTUNREACH, ... Returns -EMFILE, -EADDRINUSE, -EINVAL immediately. */
int ss_tcp_connect(ss_stack *st, uint64_t now_us, uint32_t raddr, uint16_t rport,
                   uint16_t lport);

/* Active open in two steps, so that options that must precede the SYN
 * (SS_SO_RCVBUF: the window it advertises) can be set in between:
 * ss_tcp_socket() makes a TCP socket in CLOSED that has sent nothing
 * (sd, or -EMFILE; ss_tcp_close/ss_tcp_abort release it), and
 * ss_tcp_connect_sd() opens it as ss_tcp_connect would: 0, or -EBADF,
 * -EISCONN / -EINVAL (not a fresh socket), -EINVAL, -EADDRINUSE. On
 * failure the socket stays fresh, for another try or close. */
int ss_tcp_socket(ss_stack *st);
int ss_tcp_connect_sd(ss_stack *st, uint64_t now_us, int sd, uint32_t raddr, uint16_t rport,
                      uint16_t lport);

/* Queue bytes and send what window and Nagle allow: count queued (may be
 * < len), -EAGAIN if the send buffer is full (SS_EV_WRITABLE follows when
 * ACKs free room), -EPIPE after shutdown, -ENOTCONN on a listener or a
 * closed connection, or the connection's error (-ECONNRESET ...). Data
 * queued in SYN-SENT is sent after the handshake. */
ssize_t ss_tcp_send(ss_stack *st, uint64_t now_us, int sd, const void *buf, size_t len);

/* Read bytes: count, 0 at end of stream (peer's FIN), -EAGAIN if nothing
 * yet, or the connection's error (-ECONNRESET). May send a window update. */
ssize_t ss_tcp_recv(ss_stack *st, uint64_t now_us, int sd, void *buf, size_t len);

/* Receiving and sending without a copy (scatter/gather views of the
 * socket's rings), for an application that can work on bytes in place:
 *
 * ss_tcp_recv_view() points out[] at the bytes ss_tcp_recv would read,
 * where they lie: returns 1 or 2 (the ring wraps), or what ss_tcp_recv
 * returns with nothing to read (0 at end of stream, -EAGAIN, the error).
 * ss_tcp_recv_done() then takes n of them (at most what was shown, else
 * -EINVAL) as ss_tcp_recv would have, window update included.
 *
 * ss_tcp_send_view() points out[] at room for up to `want` bytes at the
 * end of the send buffer: returns 1 or 2, -EAGAIN when the buffer is
 * full, -ENOBUFS at the stack's memory limit, or ss_tcp_send's errors.
 * The caller writes there, and ss_tcp_send_commit() queues the first n
 * bytes and sends as ss_tcp_send. n must be at most the room shown; the
 * stack keeps no record of it, and refuses (-EINVAL) only what is beyond
 * the ring's room.
 *
 * The spans stay valid only until the next call into the stack: rings
 * move when they grow and are given back when idle. */
int ss_tcp_recv_view(ss_stack *st, int sd, struct iovec out[2]);
ssize_t ss_tcp_recv_done(ss_stack *st, uint64_t now_us, int sd, size_t n);
int ss_tcp_send_view(ss_stack *st, int sd, size_t want, struct iovec out[2]);
ssize_t ss_tcp_send_commit(ss_stack *st, uint64_t now_us, int sd, size_t n);

/* Like ss_tcp_send, and the bytes queued end the urgent data: segments
 * carry URG with the urgent pointer at the octet after them (RFC 9293
 * 3.8.5, MUST-62) until that point is acknowledged. */
ssize_t ss_tcp_send_urgent(ss_stack *st, uint64_t now_us, int sd, const void *buf,
                           size_t len);

/* Urgent bytes not yet read: the peer's urgent pointer (RCV.UP) minus what
 * recv has consumed, 0 if none (RFC 9293 MUST-33). Urgent data is delivered
 * in line, in order, by ss_tcp_recv; SS_EV_URGENT says when it advances. */
int ss_tcp_urgent(const ss_stack *st, int sd);

/* shutdown(SHUT_WR): a FIN follows the queued data. */
int ss_tcp_shutdown(ss_stack *st, uint64_t now_us, int sd);

/* Graceful close: like shutdown plus releasing the handle; the FIN
 * exchange and TIME-WAIT continue without it. Unread received data makes
 * it an abort (RST), as RFC 9293 3.10.4 / RFC 1122 4.2.2.13 allow, and so
 * does data arriving afterwards (nobody would read it). */
int ss_tcp_close(ss_stack *st, uint64_t now_us, int sd);

/* Abort: send RST (if synchronized), drop everything, release the handle. */
int ss_tcp_abort(ss_stack *st, uint64_t now_us, int sd);

/* ---- UDP --------------------------------------------------------------- */
/* Bind our address:port (0 = ephemeral). Returns sd, -EADDRINUSE, -EMFILE. */
int ss_udp_bind(ss_stack *st, uint16_t port);

/* Send one datagram now: len, -EMSGSIZE (> 65507 or beyond the packet
 * buffer), or a pending ICMP error for this socket (-ECONNREFUSED ...). */
ssize_t ss_udp_sendto(ss_stack *st, uint64_t now_us, int sd, uint32_t raddr,
                      uint16_t rport, const void *buf, size_t len);

/* Take one datagram: bytes copied (the rest of a longer datagram is
 * discarded), -EAGAIN, or a pending ICMP error. Source into raddr/rport. */
ssize_t ss_udp_recvfrom(ss_stack *st, int sd, void *buf, size_t len,
                        uint32_t *raddr, uint16_t *rport);

/* ss_udp_recvfrom that also says whether the datagram was longer than len
 * (its rest discarded), as MSG_TRUNC does: *truncated (if not NULL) is
 * set on success, untouched on error. */
ssize_t ss_udp_recvmsg(ss_stack *st, int sd, void *buf, size_t len,
                       uint32_t *raddr, uint16_t *rport, bool *truncated);

int ss_udp_close(ss_stack *st, int sd);

/* ---- helpers ----------------------------------------------------------- */
/* The Internet checksum (RFC 1071) of buf, folded, not complemented,
 * starting from sum (for pseudo-headers). */
uint32_t ss_csum_add(uint32_t sum, const void *buf, size_t len);
uint16_t ss_csum_fold(uint32_t sum);   /* ~fold(sum), ready for the wire */

SS_API_END

#endif
