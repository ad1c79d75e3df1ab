/* viz: analysis (and, next, drawing) of TCP connections, fed either by
 * packets decoded from a capture (pcap file or live, libpcap) or by the
 * user-space stack's trace events.
 *
 * The analyser follows every connection it sees in a bounded table. For
 * each TCP segment it gives one record: the segment in the notation of the
 * stack's trace ("10.0.0.1:5000 10.0.0.2:80 > SYN seq=... <mss 1460,...>"),
 * each side's state as inferred from the packets (SYN-SENT ... TIME-WAIT,
 * RFC 9293's names), the state changes the segment caused, and flags:
 * retransmission, duplicate ACK, zero window, window probe, out-of-order,
 * reset. ICMP errors that quote a segment of a known connection give a
 * record of their own. Side 0 of a connection is the one that sent the
 * first SYN (or, for a connection caught mid-way, the first segment seen).
 * The library prints nothing; the format functions fill caller buffers. */
#ifndef SOCKSTACK_VIZ_H
#define SOCKSTACK_VIZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sockstack/stack.h"

#include "sockstack/api.h"
SS_API_BEGIN

typedef struct ss_ana ss_ana;

/* Flags of a record (bits). */
enum ss_ana_flag {
    SS_ANA_RTX = 1u << 0,        /* occupies sequence space already sent */
    SS_ANA_DUPACK = 1u << 1,     /* pure ACK repeating the last ACK and window
                                  * while the other side has data outstanding */
    SS_ANA_ZERO_WIN = 1u << 2,   /* advertises a zero window */
    SS_ANA_WIN_PROBE = 1u << 3,  /* probes the other side's zero window */
    SS_ANA_OOO = 1u << 4,        /* starts beyond what the sender was seen to send */
    SS_ANA_RST = 1u << 5,        /* a reset */
    SS_ANA_ICMP = 1u << 6,       /* an ICMP error about this connection */
    SS_ANA_NFLAGS = 7
};

/* Short name of one flag bit ("retransmission", "dup-ack", ...). */
const char *ss_ana_flag_name(unsigned bit);

/* One endpoint: IPv4 or IPv6 address and port. */
struct ss_ana_end {
    int family;                  /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    uint16_t port;
};
/* "10.0.0.1:5000", "[fd00::1]:80". snprintf semantics. */
int ss_ana_end_format(const struct ss_ana_end *e, char *buf, size_t len);

enum ss_ana_rec_kind { SS_ANA_SEG = 1, SS_ANA_ICMP_ERR, SS_ANA_STATE };

#define SS_ANA_MAX_CHANGES 4

struct ss_ana_rec {
    enum ss_ana_rec_kind kind;
    uint64_t t_us;
    int conn;                    /* connection number, from 0, in order seen */
    int from;                    /* SEG: the sender's side (0/1); ICMP_ERR: the side
                                  * whose segment the error quotes; STATE: the side */
    struct ss_ana_end src, dst;  /* SEG, ICMP_ERR: the segment's endpoints */
    struct ss_trace_seg seg;     /* SEG, ICMP_ERR: the (quoted) segment */
    unsigned flags;              /* SS_ANA_* */
    uint32_t dupack;             /* with SS_ANA_DUPACK: 1 for the first duplicate */
    uint8_t icmp_type, icmp_code;
    struct ss_ana_end icmp_from; /* ICMP_ERR: who sent the error (port 0) */
    int nchanges;                /* state changes this record caused */
    struct { int side, old_state, new_state; } change[SS_ANA_MAX_CHANGES];
    int state[2];                /* each side's state after the record */
    /* SEG from a capture (ss_ana_packet): the IP header and the TCP fields
     * that seg does not keep. have is false for a stack's trace events. */
    struct ss_ana_hdr {
        bool have;
        uint8_t version;         /* 4 or 6 */
        uint8_t ihl;             /* IPv4: header length in 32-bit words */
        uint8_t tos;             /* IPv4 TOS / IPv6 traffic class */
        uint16_t tot_len;        /* IPv4 total length / IPv6 payload length */
        uint16_t id;             /* IPv4 identification */
        uint8_t ip_flags;        /* IPv4: 4 reserved, 2 DF, 1 MF */
        uint16_t frag_off;       /* IPv4 fragment offset, 8-byte units */
        uint8_t ttl;             /* TTL / hop limit */
        uint8_t proto;           /* protocol / next header */
        uint16_t ip_cksum;       /* IPv4 header checksum, as on the wire */
        uint32_t flow;           /* IPv6 flow label */
        uint8_t tcp_doff;        /* TCP data offset, 32-bit words */
        uint16_t tcp_cksum;      /* as on the wire */
    } hdr;
};

/* An analyser following up to max_conns connections. */
int ss_ana_new(size_t max_conns, ss_ana **out);
void ss_ana_free(ss_ana *a);

/* One IP packet (IPv4 or IPv6, from its IP header) seen at t_us. Returns 1
 * with *rec filled for a TCP segment or an ICMP error about a known
 * connection, 0 for anything else, -ENOSPC when a new connection does not
 * fit the table (the packet is counted and skipped). */
int ss_ana_packet(ss_ana *a, uint64_t t_us, const uint8_t *pkt, size_t len,
                  struct ss_ana_rec *rec);

/* One trace event of a stack: its SEG_OUT / RETRANSMIT (sent) and SEG_IN
 * (received) segments, and its STATE changes, which replace the inference
 * for that side from then on. Feed the events of one stack per connection
 * (both ends' SEG_OUT would show each segment twice). Returns as
 * ss_ana_packet. */
int ss_ana_trace(ss_ana *a, const struct ss_trace_event *ev, struct ss_ana_rec *rec);

/* Number of connections seen; the endpoints of connection i (side 0, 1). */
size_t ss_ana_nconns(const ss_ana *a);
int ss_ana_conn_ends(const ss_ana *a, int conn, struct ss_ana_end *side0,
                     struct ss_ana_end *side1);

/* The record as one line in the trace's notation, no newline:
 *   SEG:      "10.0.0.1:5000 10.0.0.2:80 > [rtx] PSH,ACK seq=... len=100 [dup-ack 2]"
 *             (sender first; flags other than rtx in brackets at the end)
 *   ICMP_ERR: "10.0.0.9 > ICMP type=3 code=4 about 10.0.0.1:5000 10.0.0.2:80 > ACK ..."
 *   STATE:    "10.0.0.1:5000 10.0.0.2:80 SYN-SENT -> ESTABLISHED"
 * SS_TRACE_FMT_TIME prefixes "S.UUUUUU ", the time since t0 (0: as
 * recorded). snprintf semantics. */
int ss_ana_format(const struct ss_ana_rec *rec, unsigned fmt, uint64_t t0, char *buf,
                  size_t len);
/* Change i of rec: "10.0.0.1:5000 10.0.0.2:80 SYN-SENT -> ESTABLISHED" (the
 * side that changed first), as the stack's trace writes a state line. */
int ss_ana_format_change(const struct ss_ana_rec *rec, int i, char *buf, size_t len);

/* ---- capture ------------------------------------------------------------ */

struct ss_sniff_cfg {
    const char *iface;           /* live capture on this device, or */
    const char *read_path;       /* read this pcap / pcapng file */
    const char *write_path;      /* also write every captured packet here (pcap) */
    const char *filter;          /* BPF filter expression, NULL: all */
    uint64_t count;              /* stop after this many packets; 0: no limit */
    size_t max_conns;            /* connection table size */
    void (*ready)(void *ctx);    /* called once the capture is active (or NULL) */
    size_t buffer_bytes;         /* live: the kernel's capture buffer; 0: 8 MiB */
    struct ss_sniff_stats *stats; /* live: filled when the capture ends (or NULL) */
};

/* What a live capture saw: packets delivered to us, and packets the kernel
 * dropped because its buffer was full (pcap_stats' ps_drop). */
struct ss_sniff_stats {
    uint64_t seen, dropped;
};

typedef void (*ss_sniff_cb)(void *ctx, const struct ss_ana_rec *rec);

/* Capture (or read) until the file ends, count packets, or SIGINT/SIGTERM;
 * every record goes to cb. Live capture prints nothing of its own; errors
 * (no such device, bad filter, unreadable file) are returned with their
 * text in err. Returns 0 or a negative code. */
int ss_sniff_run(const struct ss_sniff_cfg *cfg, ss_sniff_cb cb, void *ctx, char *err,
                 size_t errlen);

/* ---- drawing ------------------------------------------------------------- */

/* A recording of analysed records (bounded) and of the stack's congestion
 * and RTT figures, from which the pictures are drawn: a sequence diagram
 * (terminal or SVG) and plots (tcptrace's time-sequence graph, cwnd and
 * ssthresh, RTT) with axes, ticks and units. One connection is drawn:
 * the first one recorded unless ss_viz_select says otherwise. */
typedef struct ss_viz ss_viz;

/* Room for max_recs records (a longer run is drawn up to there and says so). */
int ss_viz_new(size_t max_recs, ss_viz **out);
void ss_viz_free(ss_viz *v);

/* An IP packet seen (or sent on a simulated link) at t_us: analysed and
 * recorded. Returns the record's index (>= 0), -1 when it is not TCP, or a
 * negative errno (-ENOSPC: the recording is full). */
long ss_viz_packet(ss_viz *v, uint64_t t_us, const uint8_t *pkt, size_t len);
/* A record from an analyser of the caller's (sniff's callback). */
long ss_viz_add(ss_viz *v, const struct ss_ana_rec *rec);
/* What a simulated link knows: record i arrived at t_us, or was lost. */
void ss_viz_arrived(ss_viz *v, long i, uint64_t t_us);
void ss_viz_lost(ss_viz *v, long i);
/* A trace event of the stack on `side` (0: the connection's opener):
 * SS_TRACE_CC gives cwnd and ssthresh, SS_TRACE_RTT the RTT. */
void ss_viz_trace(ss_viz *v, int side, const struct ss_trace_event *ev);
/* A trace event of a user-space stack, node 0 being the connection's
 * opener: STATE events of both (the stacks' own states, not inferred),
 * node 0's segments when `segments` (else they come as packets, from a
 * link tap, each once), node 0's SS_TRACE_CC and SS_TRACE_RTT. Returns as
 * ss_viz_packet. */
long ss_viz_stack_event(ss_viz *v, int node, const struct ss_trace_event *ev, bool segments);
/* Read a run written by `stack demo --trace-json` (one JSON object a line,
 * with "node":"A"/"B") through ss_viz_stack_event. 0, -ENOENT, SS_EBADPKT
 * (a line that is not such an object, or a segment whose "flags" are not
 * in ss_tcp_flags_str's notation; its number in err). */
int ss_viz_read_jsonl(ss_viz *v, const char *path, char *err, size_t errlen);
/* The end of the run (TIME-WAIT is drawn up to here). */
void ss_viz_finish(ss_viz *v, uint64_t t_end_us);
/* Draw connection conn (default 0). -EINVAL if there is no such one. */
int ss_viz_select(ss_viz *v, int conn);
/* Read a whole capture file into v (ss_sniff_run's reader). */
int ss_viz_read_pcap(ss_viz *v, const char *path, char *err, size_t errlen);

/* The sequence diagram as text at most width columns wide (>= 60). */
int ss_viz_diagram_text(const ss_viz *v, int width, FILE *out);
/* The same as SVG: one lifeline per side, and the listener apart from the
 * connection it accepted; back-to-back segments bundled into one arrow;
 * waits marked with the timer that ended them; TIME-WAIT as a span. Every
 * text is 12px monospace (7.2px a character), and no two overlap. */
int ss_viz_diagram_svg(const ss_viz *v, FILE *out);
/* Plots as SVG: time-sequence graph (data segments, retransmissions, ACK
 * line, receive-window line, SACK blocks), cwnd/ssthresh (from the trace;
 * bytes in flight from packets), RTT; axes with ticks and units. */
int ss_viz_plot_svg(const ss_viz *v, FILE *out);
/* One self-contained HTML page (no network: inline script, style and SVG,
 * and a Content-Security-Policy that forbids fetching anything): a timeline
 * scrubber over the connection's packets, the sequence diagram, each
 * side's state at the cursor with RFC 9293's state diagram lit, every
 * header field of the selected packet, zoomable plots. "#i=N" in the URL
 * opens it at packet N. */
int ss_viz_html(const ss_viz *v, const char *title, FILE *out);

SS_API_END

#endif
