/* Internals of the user-space stack, shared by the files of src/stack/.
 *
 * Input path:  ss_stack_input -> ss__ip_input -> (reassembly) ->
 *              ss__icmp_input | ss__udp_input | ss__tcp_input
 *              ss__tcp_input: parse -> demux -> per-state handler
 *              (tcp_input.c, RFC 9293 3.10.7)
 * Output path: ss__tcp_output (tcp_output.c: what may be sent now)
 *              -> ss__tcp_send_segment -> ss__ip_output -> cfg.output
 * Timers:      ss_stack_poll -> ss__tcp_timers (tcp_timer.c) per socket
 */
#ifndef SS_STACK_INT_H
#define SS_STACK_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/bytes.h"
#include "sockstack/stack.h"

/* ---- wrap-safe sequence arithmetic (RFC 9293 3.4) ---------------------- */
#define SEQ_LT(a, b)  ((int32_t)((uint32_t)(a) - (uint32_t)(b)) < 0)
#define SEQ_LEQ(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) <= 0)
#define SEQ_GT(a, b)  ((int32_t)((uint32_t)(a) - (uint32_t)(b)) > 0)
#define SEQ_GEQ(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) >= 0)
/* a <= x < b, all modulo 2^32 */
#define SEQ_IN(x, a, b) (SEQ_LEQ((a), (x)) && SEQ_LT((x), (b)))

#define SS_NEVER UINT64_MAX
#define SS_IP_HDR 20
#define SS_TCP_HDR 20
#define SS_UDP_HDR 8
#define SS_PKT_MAX 65535
/* Receive ring room beyond cfg.rcvbuf: with window scaling the advertised
 * window is rounded up to 2^shift (at most 2^14) so its right edge never
 * moves left (RFC 7323 2.4); what that promises beyond the buffer fits here. */
#define SS_RCV_SLACK ((1u << 14) - 1)

enum { SS_IPPROTO_ICMP = 1, SS_IPPROTO_TCP = 6, SS_IPPROTO_UDP = 17 };

/* A parsed IPv4 packet (header validated). */
struct ss_ip {
    uint32_t src, dst;
    uint8_t proto, ttl, tos;
    uint16_t id;
    const uint8_t *hdr;     /* the IPv4 header */
    size_t hdr_len;
    const uint8_t *payload;
    size_t len;             /* payload bytes */
};

/* A range [start, end) of sequence space (SACK blocks, scoreboard). */
struct ss_sack_blk {
    uint32_t start, end;
};

/* SACK blocks that fit in 40 option bytes (RFC 2018 3): 4, or 3 with
 * the Timestamps option. */
#define SS_SACK_BLOCKS_MAX 4

/* The TCP segment under processing: parsed once, passed by pointer. */
struct ss_seg {
    uint32_t src, dst;      /* IPv4, host order */
    uint16_t sport, dport;
    uint32_t seq, ack;
    uint8_t flags;
    uint16_t wnd;           /* window field as on the wire (unscaled) */
    uint16_t urp;
    uint16_t mss;           /* MSS option, 0 if absent */
    uint8_t opt_len;
    const uint8_t *opt;     /* the option bytes (opt_len of them) */
    /* Options parsed by ss__tcp_parse_options (tcp_opt.c). */
    bool has_ws;            /* Window Scale (RFC 7323 2), SYN only */
    uint8_t ws;             /* its shift count as sent */
    bool sack_ok;           /* SACK-permitted (RFC 2018 2), SYN only */
    bool has_ts;            /* Timestamps (RFC 7323 3) */
    uint32_t ts_val, ts_ecr;
    uint8_t nsack;          /* SACK blocks (RFC 2018 3), as sent */
    struct ss_sack_blk sack[SS_SACK_BLOCKS_MAX];
    const uint8_t *data;
    uint32_t len;           /* payload bytes (after any trimming) */
};

/* Segment length in sequence space: data + SYN + FIN. */
static inline uint32_t ss__seg_seqlen(const struct ss_seg *s)
{
    return s->len + ((s->flags & SS_TCP_SYN) ? 1 : 0) + ((s->flags & SS_TCP_FIN) ? 1 : 0);
}

/* A byte ring, allocated when the first byte needs it, grown by doubling
 * up to max and given back when it empties (stack.c). */
struct ss_ring {
    uint8_t *buf;           /* NULL while cap is 0 */
    uint32_t cap;           /* bytes allocated now: at most limit, or (the
                             * receive ring) limit + SS_RCV_SLACK */
    uint32_t limit;         /* usable size (SO_SNDBUF/SO_RCVBUF) */
    uint32_t head;          /* index of the first byte */
    uint32_t len;           /* bytes stored */
};

/* An out-of-order range [start, end) already written into the receive ring. */
struct ss_ooo {
    uint32_t start, end;
    uint32_t stamp;         /* sk->ooo_clock when a segment last landed in it
                             * (SACK blocks go most recent first, RFC 2018 4) */
};

/* Bits of ss_pcb.opt_allow: the options a socket may negotiate. */
enum { SS_OPTF_WSCALE = 1, SS_OPTF_TS = 2, SS_OPTF_SACK = 4 };

enum ss_stack_sock_kind { SS_SK_FREE = 0, SS_SK_TCP, SS_SK_UDP };

/* What a TCP connection needs only now and then, apart from the TCB: an
 * idle connection holds none (stack.c trim gives it back). ss_pcb.sx
 * points at ss__sx_none, zero and read-only, until it is taken: readers
 * need no test, writers take it first (a write to ss__sx_none faults).
 *
 * Its first part, up to SS_SX_SACK_END, is the SACK part: the
 * out-of-order and SACK tables with their counts and RACK's state (TCP,
 * tcp_input.c, tcp_opt.c, tcp_cc.c). It is live while ss_pcb.sx_sack is
 * set (ss__sx_own: at the first hole, FIN beyond a hole or SACK block)
 * and zero otherwise, whatever else holds the struct: so the SACK code
 * reads it as it read ss__sx_none, and RACK's "taken" means "there are
 * SACK blocks" (tcp_cc.c). trim clears it when the tables empty and the
 * connection idles, as it gave back the struct before the rest came.
 *
 * The rest (ss__sx_take) is rare: urgent pointers (while snd_up_valid,
 * rcv_up_valid), the challenge-ACK budget (a second from chack_window),
 * and the tail loss probe (while tlp_on). Out of the TCB they made it
 * 536 -> 488 B (issue 10, with what the last congestion trace showed,
 * now in ss_stack.cc_seen); none is touched by an in-order segment. */
struct ss_pcbx {
    struct ss_ooo *ooo;     /* ooo_cap ranges, allocated at the first hole and
                             * doubled up to cfg.ooo_max */
    struct ss_sack_blk *sb; /* SACK scoreboard: sb_cap ranges, allocated at
                             * the first SACK, doubled up to cfg.sack_max */
    uint32_t ooo_clock;     /* stamps of ooo entries */
    uint32_t ooo_fin_seq;   /* where the FIN beyond a hole sits (ss_pcb.ooo_fin) */
    /* RACK (RFC 8985 6.2) in recovery, here since holes need SACK blocks:
     * the holes below rack_end are lost by time (ss_pcb.snd_una when
     * the SACK part is taken, and while it is not); those below reo_high
     * will be at reo_due (low 32 bits of st->now, µs) unless they arrive
     * (ss_pcb.reo_holes). */
    uint32_t rack_end, reo_high, reo_due;
    uint16_t ooo_n;         /* ranges of ooo in use (at most ooo_cap) */
    uint16_t sb_n;          /* ranges in use: sorted, disjoint, not touching */
    uint16_t sb_cap;        /* ranges allocated (at most cfg.sack_max) */
    uint16_t ooo_cap;       /* ranges of ooo allocated (at most cfg.ooo_max) */
    /* --- the rest (SS_SX_SACK_END) --- */
    uint64_t chack_window;  /* start of the current challenge-ACK second (RFC 5961 7) */
    uint32_t chack_count;   /* challenge ACKs sent in chack_window */
    uint32_t snd_up, rcv_up;    /* urgent pointers (RFC 9293 3.8.5), as sequence numbers */
    uint32_t tlp_seq, tlp_end;  /* the probe [tlp_seq, ..) and TLP.end_seq (SND.NXT after it) */
};
#define SS_SX_SACK_END offsetof(struct ss_pcbx, chack_window)

/* Per-algorithm congestion-control state (tcp_cc_*.c), one per TCB. */
struct ss__cc_cubic {
    double w_max;           /* segments: window before the last reduction */
    double k;               /* seconds: time to reach w_max again */
    double w_est;           /* segments: the Reno-friendly estimate (RFC 9438 4.3) */
    double cwnd_prior;      /* segments: cwnd when ssthresh was last set */
    uint64_t epoch_start;   /* µs: start of this congestion-avoidance stage */
    /* (its flags are ss_pcb.cubic_epoch and cubic_after_rto: here they
     * would pad this to 48 bytes) */
};
union ss__cc_state {
    struct ss__cc_cubic cubic;
};

/* The stack's protocol control block: one per socket, UDP or TCP (for
 * TCP it is RFC 9293's TCB, 3.3.1), as lwIP's tcp_pcb/udp_pcb. Not the
 * public handle of the one socket API (src/sock: struct ss_sock), which
 * refers to one of these by its descriptor. */
struct ss_pcb {
    /* Fields are grouped by size within each part (8, 4, 2, 1 bytes, then
     * the flags), so the TCB has no holes: an idle connection costs
     * sizeof(struct ss_pcb) and nothing else (tests/stack: tcp_scale). */

    /* --- every socket --- */
    /* Links of the stack's tables and lists (stack.c): the lookup hash
     * chain (the zombie list once released), the timer heap, and the
     * lists of sockets with events to deliver, output deferred by a
     * batch, timers to re-file. */
    struct ss_pcb *h_next;
    struct ss_pcb *ev_next, *out_next, *dirty_next;
    uint64_t deadline;      /* the key it is filed under in the heap */
    ss_stack_sock_cb cb;
    void *cb_arg;
    struct ss_ring snd, rcv;
    uint32_t heap_i;        /* index in st->heap + 1; 0: not in it */
    int id;
    uint32_t max_retries;   /* R2 (SS_SO_MAXRT) */
    uint32_t laddr, raddr;
    uint16_t lport, rport;
    /* Negative errno or SS_E* codes (all above INT16_MIN). */
    int16_t error;          /* pending error for the application */
    int16_t ev_err;         /* error reported with SS_EV_ERROR */
    int16_t soft_err;       /* last ICMP soft error, reported on timeout */
    uint16_t pending_ev;    /* SS_EV_* to deliver at the next dispatch */
    uint8_t kind;           /* enum ss_stack_sock_kind */
    uint8_t state;          /* enum ss_tcp_state (TCP) */
    uint8_t tos;            /* IPv4 TOS / DS field */
    uint8_t persist_backoff;    /* TCP: at most 16 (tcp_timer.c) */

    /* --- flags (here: they fill what the bytes above leave of a word) --- */
    bool on_ev : 1, on_out : 1, on_dirty : 1;  /* on those lists of the stack */
    bool hashed : 1;            /* in the lookup hash */
    bool port_held : 1;         /* counted in st->tcp_port_refs */
    bool user : 1;              /* the application holds the handle */
    bool unopened : 1;          /* from ss_tcp_socket, not connected yet */
    bool passive : 1;           /* came from a listener (SYN-RECEIVED -> LISTEN on RST) */
    bool in_accept_q : 1;
    bool fin_queued : 1;        /* application closed the send side */
    bool fin_rcvd : 1;          /* peer's FIN consumed (EOF) */
    bool ooo_fin : 1;           /* FIN seen beyond a hole, at ooo_fin_seq */
    bool ws_ok : 1, ts_ok : 1, sack_ok : 1;   /* negotiated on the SYN exchange */
    bool nodelay : 1, keepalive : 1;
    bool rtt_valid : 1;         /* first sample taken */
    bool rtt_timing : 1;        /* measuring rtt_seq */
    bool sws_force : 1;         /* the SWS timer expired: send the held sliver now */
    bool ack_now : 1;
    bool synack_first : 1;      /* simultaneous open: the next SYN,ACK is not a retransmission */
    bool snd_up_valid : 1, rcv_up_valid : 1;   /* sx->snd_up, rcv_up set */
    bool out_pending : 1;       /* output deferred to the end of an input batch */
    bool cc_started : 1;        /* IW set (first ACK of our SYN seen) */
    bool cwnd_limited : 1;      /* the last send stopped at cwnd, not at data or SND.WND */
    bool rtx_mark : 1;          /* fast retransmit / partial ACK: send rtx_seq's segment */
    bool cc_traced : 1;         /* an SS_TRACE_CC went out with st->cc_seen[id] */
    bool on_trimq : 1;          /* waits on st->trimq to give back empty buffers */
    bool tlp_on : 1;            /* a probe is out (TLP.end_seq is not None) */
    bool tlp_rtx : 1;           /* TLP.is_retrans: it resent the last segment */
    bool reo_on : 1;            /* t_tlp is RACK's reordering timer (RFC 8985 6.3) */
    bool ccs_live : 1;          /* ccs holds the algorithm's state, no longer HyStart's
                                 * (tcp_cc_cubic.c) */
    bool reo_holes : 1;         /* in recovery, holes below reo_high wait for reo_due */
    bool sx_sack : 1;           /* sx holds the SACK part (ss__sx_own); clear: that
                                 * part of *sx is as new (zero) */
    bool cubic_epoch : 1;       /* CUBIC: a stage is running since epoch_start (else the
                                 * next ACK in congestion avoidance starts one) */
    bool cubic_after_rto : 1;   /* CUBIC: the next stage is the first after a timeout (4.8) */
    /* (TCP congestion control's bytes, here where the flags leave room) */
    uint8_t hs_phase;           /* enum ss__hs_phase: HyStart's fields are live */
    uint8_t rx_n;               /* entries of rx in use */
    uint8_t cc_phase;           /* enum ss_cc_phase */

    /* --- TCP: a connection's place in its listener's accept queue --- */
    int parent;             /* listener id while in its queues, else -1 */
    int next_q;             /* link in the listener's accept queue */

    /* --- TCP: sequence variables (RFC 9293 3.3.1) --- */
    uint32_t iss, snd_una, snd_nxt, snd_max, snd_wnd, snd_wl1, snd_wl2;
    uint32_t max_snd_wnd;   /* largest window the peer offered (RFC 5961 5.2) */
    uint32_t irs, rcv_nxt, rcv_adv;  /* rcv_adv: right edge advertised */
    uint32_t fin_seq;       /* seq of our FIN when fin_queued */
    uint16_t snd_mss;       /* effective send MSS */
    uint16_t rcv_mss;       /* what we advertise */

    /* --- TCP: out of order, options (tcp_opt.c: RFC 7323, RFC 2018) --- */
    struct ss_pcbx *sx;     /* out-of-order and SACK tables, and what is rare:
                             * ss__sx_none (zero, read-only) until needed */
    struct ss_rxt *rx;      /* retransmissions in SACK recovery, oldest first:
                             * SS_STACK_RXT_MAX, allocated at the first */
    uint64_t ts_recent_at;  /* st->now when TS.Recent was set (PAWS 24 days) */
    uint32_t ts_off;        /* per-connection offset of our TSval clock */
    uint32_t ts_recent;     /* TS.Recent (RFC 7323 4.3) */
    uint32_t last_ack_sent; /* Last.ACK.sent (RFC 7323 4.3) */
    uint8_t opt_allow;      /* SS_OPTF_*: what this socket offers / accepts */
    uint8_t ws_offer;       /* the shift our SYN offers (from the rcv buffer) */
    uint8_t snd_wscale;     /* peer's shift: its window is SEG.WND << snd_wscale */
    uint8_t rcv_wscale;     /* our shift: we send window >> rcv_wscale */

    /* --- TCP: timers (absolute µs, SS_NEVER when off) and RFC 6298 --- */
    uint64_t t_rtx, t_persist, t_delack, t_keep, t_2msl;
    uint64_t t_sws;         /* sender SWS override timeout (RFC 9293 3.8.6.2.1) */
    uint64_t t_tlp;         /* RFC 8985: the PTO (7.2), or with reo_on the reordering timer */
    uint64_t last_rcv;      /* time of the last segment received */
    uint32_t srtt_us, rttvar_us, rto_us;
    uint32_t rtt_seq;
    uint32_t rtt_start;     /* low 32 bits of st->now when rtt_seq went out: a
                             * sample is taken within an RTO (at most 3,600 s,
                             * cfg.rto_max_ms) of it, well inside 2^32 µs */
    uint32_t backoff;       /* consecutive RTO expiries */
    uint32_t keep_idle_s;
    uint16_t keep_intvl_s;  /* 1 .. 32767, as Linux (cfg_valid, setopt) */
    uint8_t keep_cnt;       /* 1 .. 127, as Linux */
    uint8_t keep_probes;    /* at most keep_cnt */
    uint32_t unacked_segs;  /* full-sized segments received since our last ACK */

    /* --- TCP: congestion control (tcp_cc.c: loss recovery; tcp_cc_*.c) --- */
    uint32_t ccs_w0;            /* cwnd when the algorithm's init ran (cubic: W_max) */
    const struct ss__cc_ops *cc;
    uint64_t last_send;         /* time data was last sent (RFC 5681 4.1 idle restart) */
    /* A listener has no congestion control and a connection no queues,
     * and HyStart++ runs only before the algorithm's own state is needed:
     * one place for all three. HyStart's fields while hs_phase is not
     * SS_HS_OFF; the algorithm's (ccs) once ccs_live (tcp_cc_cubic.c makes
     * it live when it first needs it, after HyStart ends, from ccs_w0);
     * the listener fields only in SS_TCP_LISTEN. */
    union {
        union ss__cc_state ccs; /* the algorithm's own state */
        struct {                /* listener */
            int backlog;        /* limit of syn_q + accept_q */
            int syn_q, accept_q;    /* counts */
            int accept_head, accept_tail;
        };
        struct {                /* HyStart++ (RFC 9406), in the initial slow start only */
            uint32_t hs_window_end;     /* a round ends when SND.UNA reaches it */
            uint32_t hs_last_min, hs_cur_min;  /* min RTT (us) of the last and this round */
            uint32_t hs_css_base;       /* cssBaselineMinRtt */
            uint32_t hs_delay_min;      /* least RTT (us) seen in the initial slow start */
            uint32_t hs_round_start, hs_train_last;  /* low 32 bits of st->now (us): this
                                         * round's start, the train's last ACK */
            uint8_t hs_samples;         /* RTT samples in this round (up to N_RTT_SAMPLE) */
            uint8_t hs_css_rounds;      /* rounds spent in CSS */
        };
    };
    uint32_t cwnd, ssthresh;    /* bytes; ssthresh UINT32_MAX until the first loss */
    union {
        uint32_t dupacks;       /* TCP: consecutive duplicate ACKs (RFC 5681 2) */
        uint32_t udp_q;         /* UDP: datagrams queued */
    };
    uint32_t recover;           /* RFC 6582: SND.MAX when recovery (fast or RTO) began */
    uint32_t ca_acked;          /* RFC 3465 byte counter in congestion avoidance */
    uint32_t lt_bytes;          /* new data sent by limited transmit (RFC 3042) */
    /* RFC 6937 PRR, in SACK recovery: bytes delivered to the peer and
     * sent by us since recovery began, and the flight then (RecoverFS). */
    uint32_t prr_delivered, prr_out, prr_recover_fs;
    uint32_t rtx_seq;           /* one retransmission owed at rtx_seq (rtx_mark) */
    uint32_t high_rxt;          /* RFC 6675 HighRxt + 1: end of the highest retransmission */

    /* --- statistics --- */
    uint32_t tlp_probes;    /* tail loss probes sent (first: with high_rxt, one word) */
    uint64_t bytes_in, bytes_out;
    uint32_t retransmits, timeouts, segs_in, segs_out;  /* 32 bits, as Linux' tcp_info */
};

extern const struct ss_pcbx ss__sx_none;
/* sk->sx holds memory (not ss__sx_none). */
static inline bool ss__sx_taken(const struct ss_pcb *sk)
{
    return sk->sx != &ss__sx_none;
}
/* stack.c: a new zero sk->sx; NULL when out of memory. */
struct ss_pcbx *ss__sx_alloc(struct ss_pcb *sk);
/* sk->sx, allocated if it was ss__sx_none, for the rare part; NULL when
 * out of memory (the caller then does without, and says how). */
static inline struct ss_pcbx *ss__sx_take(struct ss_pcb *sk)
{
    return ss__sx_taken(sk) ? sk->sx : ss__sx_alloc(sk);
}
/* The same with the SACK part live (sx_sack; RACK's rack_end starts at
 * SND.UNA); NULL when out of memory (the caller then does without: a
 * segment or SACK block is not recorded). */
static inline struct ss_pcbx *ss__sx_own(struct ss_pcb *sk)
{
    if (sk->sx_sack)
        return sk->sx;
    struct ss_pcbx *x = ss__sx_take(sk);
    if (x) {
        x->rack_end = sk->snd_una;
        sk->sx_sack = true;
    }
    return x;
}

/* Issue 10 asks at most 512 B per idle connection, tables included; the
 * TCB is 488 B (from 652: the listener's queues share the congestion
 * state's place, UDP's queue count shares dupacks', error codes are 16
 * bits, keep-alive interval and count 16 and 8; from 592: HyStart's
 * fields share that place too, rtt_start is 32 bits, and the
 * out-of-order and SACK tables' pointers and counts are in ss_pcbx,
 * taken only while needed; from 536: urgent pointers, the challenge-ACK
 * budget, the tail loss probe's sequence numbers and the last congestion
 * trace's values are in ss_pcbx too, CUBIC's two flags are bits here,
 * so its state is 40 bytes, not 48). No holes (pahole). Growing it is a
 * decision: change this. */
_Static_assert(sizeof(struct ss_pcb) <= 488, "struct ss_pcb grew past 488 bytes");

/* One retransmission sent in SACK or RTO recovery: [seq, end), and SND.NXT
 * when it went out (`mark`), with the bytes SACKed above it then (`base`).
 * Data above `mark` left after it; once DupThresh segments' worth more is
 * SACKed there while [seq, end) has not arrived, it was lost too. */
struct ss_rxt {
    uint32_t seq, end, mark, base;
    uint64_t due;   /* RACK (RFC 8985 6.2 step 5): sent at + SRTT + reo_wnd */
    bool lost;      /* found lost (ss__cc_rxt_update), to be resent */
    bool timed;     /* data sent after it arrived: lost at `due` if it has not */
};

struct ss_frag {
    bool used;
    uint32_t src, dst;
    uint16_t id;
    uint8_t proto;
    uint64_t deadline;
    uint32_t total;         /* payload length, 0 until the last fragment */
    uint32_t have;          /* bytes received (no overlaps accepted) */
    uint8_t *buf;           /* 65535 bytes */
    uint8_t *map;           /* one bit per 8-byte block */
    uint8_t hdr[60];
    size_t hdr_len;
};

/* A half-open passive connection (tcp_synq.c): what the peer's SYN said
 * and what we answered, about 64 bytes instead of a socket. The socket is
 * made when the handshake's ACK arrives. */
struct ss_synreq {
    uint32_t laddr, raddr;
    uint16_t lport, rport;
    int listener;           /* the listener's sd; -1: the entry is free */
    uint32_t iss, irs;
    uint16_t wnd, mss;      /* the SYN's window field and MSS option (0: none) */
    uint8_t ws;             /* its window scale shift (has_ws) */
    bool has_ws, sack_ok, has_ts;
    uint32_t ts_val;        /* its TSval (has_ts) */
    uint32_t retries;       /* SYN,ACKs sent again */
    uint32_t max_retries;   /* how many may go (fewer when made under pressure) */
    uint64_t sent_at;       /* the first SYN,ACK (RTT sample if never resent) */
    uint64_t deadline;      /* next SYN,ACK retransmission, or giving up */
    uint32_t heap_i;        /* position in the deadline heap + 1 */
    int32_t next;           /* hash chain, or the free list */
};

/* The SYN queue of every listener: a table of cfg.synq_max entries with a
 * keyed hash on the 4-tuple and a min-heap of deadlines. */
struct ss_synq {
    struct ss_synreq *req;
    int32_t *hash;          /* chain heads, hmask + 1 of them */
    uint32_t hmask;
    int32_t free;           /* head of the free list (none while cap is 0) */
    uint32_t cap;           /* entries allocated: grows up to cfg.synq_max */
    uint32_t n;             /* entries in use */
    uint32_t *heap;         /* entry indices, ordered by (deadline, index) */
    uint64_t cookie_at;     /* when the last cookie went out */
    bool cookie_sent;       /* one did */
};

/* Empty buffers are given back TRIM_US after they empty (stack.c). */
#define TRIM_US 1000000u
#define TRIMQ_MAX 65536u
struct ss_trim {
    struct ss_pcb *sk;
    uint64_t at;              /* give back at the first poll from then */
};

struct ss_stack {
    struct ss_stack_cfg cfg;
    struct ss_stack_stats stats;
    /* Sockets, allocated when opened: tab[sd] (NULL when free), grown by
     * doubling up to cfg.max_sockets. Free ids below tab_hi wait in a
     * min-heap, so the lowest free id is taken, as before. */
    struct ss_pcb **tab;
    uint32_t tab_n, tab_hi, nsocks;
    /* Only with cfg.trace: what the last SS_TRACE_CC of socket sd showed
     * (cc_seen[sd], valid while its cc_traced is set; tcp_cc.c
     * ss__cc_trace), for sd < cc_seen_n, grown with tab. */
    struct ss_cc_seen {
        uint32_t cwnd, ssthresh;
        uint8_t phase;
    } *cc_seen;
    uint32_t cc_seen_n;
    int *free_ids;
    uint32_t free_n, free_cap;
    /* Lookup: one chained hash over TCP connections (4-tuple), TCP
     * listeners and UDP sockets (local port), keyed with a secret. */
    struct ss_pcb **hash;
    uint32_t hash_n, hash_used;
    uint64_t hash_key;
    uint32_t *tcp_port_refs[256]; /* [port >> 8][port & 255]: TCP sockets
                                 holding each local port; a block comes
                                 with the first port reserved in it
                                 (ss__port_reserve) and stays */
    /* Timers: a min-heap of sockets by (deadline, id). */
    struct ss_pcb **heap;
    uint32_t heap_n, heap_cap;
    struct ss_pcb *ev_head, *out_head, *dirty_head;
    struct ss_pcb *zombies;  /* released, freed at the next safe point */
    struct ss_pcb **scratch; /* sorted copies of the event / output lists */
    size_t scratch_cap;
    bool scratch_busy;
    uint64_t mem;             /* bytes of ring buffers held */
    struct ss_trim *trimq;    /* sockets whose rings emptied, oldest first: a
                                 ring of trimq_cap, grown up to TRIMQ_MAX */
    uint32_t trimq_head, trimq_n, trimq_cap;
    struct ss_frag *frags;
    uint8_t *fragpool;
    uint32_t frag_mem;      /* fragment bytes held (ipv4.c), <= cfg.frag_mem */
    struct ss_synq synq;    /* half-open connections (tcp_synq.c) */
    uint8_t *tx;            /* scratch packet buffer, SS_PKT_MAX */
    uint16_t ip_id;
    uint16_t next_port;
    uint64_t now;           /* time of the call in progress */
    int dispatching;
    int depth;              /* nesting of calls that may hold sockets */
    bool batching;          /* inside ss_stack_input_batch: defer TCP output */
    uint8_t rx_flags;       /* SS_RX_* of the packet being processed */
    uint16_t tx_gso;        /* gso_size of the TCP segment being sent (0: none) */
};

/* SYN-SENT or SYN-RECEIVED: our SYN is not yet acknowledged, nothing is
 * synchronized (RFC 9293 3.3.2). */
static inline bool ss__tcp_opening(const struct ss_pcb *sk)
{
    return sk->state == SS_TCP_SYN_SENT || sk->state == SS_TCP_SYN_RECEIVED;
}

/* 2*MSL in microseconds: how long TIME-WAIT lasts (RFC 9293 3.10.8). */
static inline uint64_t ss__2msl_us(const ss_stack *st)
{
    return 2ull * st->cfg.msl_ms * 1000;
}

/* checksum.c */
uint32_t ss__pseudo_sum(uint32_t src, uint32_t dst, uint8_t proto, uint32_t len);

/* ipv4.c */
void ss__ip_input(ss_stack *st, const uint8_t *pkt, size_t len);
/* Build the IPv4 header in front of payload (already at pkt + 20) and send. */
/* ss__ip_output with the payload's last bytes in ndata (<= 2) pieces
 * elsewhere: only for a TCP segment to cfg.output_offload. */
int ss__ip_output_v(ss_stack *st, uint8_t *pkt, size_t payload_len, const struct iovec *data,
                    int ndata, uint32_t dst, uint8_t proto, bool df, uint8_t tos);
int ss__ip_output(ss_stack *st, uint8_t *pkt, size_t payload_len, uint32_t dst,
                  uint8_t proto, bool df, uint8_t tos);
uint64_t ss__frag_timers(ss_stack *st, uint64_t now);

/* icmp.c */
void ss__icmp_input(ss_stack *st, const struct ss_ip *ip);
/* Send an ICMP error quoting the offending packet (header + 8 bytes). */
void ss__icmp_error(ss_stack *st, uint8_t type, uint8_t code, const struct ss_ip *ip);

/* udp.c */
void ss__udp_input(ss_stack *st, const struct ss_ip *ip);
void ss__udp_icmp_error(ss_stack *st, int err, const uint8_t *quoted, size_t qlen);

/* tcp_input.c */
void ss__tcp_input(ss_stack *st, const struct ss_ip *ip);
void ss__tcp_icmp_error(ss_stack *st, int err, bool hard, const uint8_t *quoted, size_t qlen);

/* A passive open's TCB from the peer's SYN (RFC 9293 3.10.7.2, third):
 * tuple, IRS, RCV.NXT, ISS, the send variables, MSS and options. sk
 * carries the listener's settings already. */
void ss__tcp_passive_tcb(ss_stack *st, struct ss_pcb *sk, const struct ss_seg *syn, uint32_t iss);

/* stack.c: the keyed hash of a 4-tuple the lookup table uses (a tag of
 * its own, so SYN-queue chains do not mirror the socket chains). */
uint32_t ss__tuple_hash(const ss_stack *st, uint32_t laddr, uint16_t lport, uint32_t raddr,
                        uint16_t rport);

/* tcp_synq.c: the SYN queue (half-open entries) and SYN cookies' use */
void ss__synq_free(ss_stack *st);
/* LISTEN got a SYN (no RST, no ACK): an entry and a SYN,ACK, a cookie
 * SYN,ACK, or a drop when the queue is full. */
void ss__synq_syn(ss_stack *st, struct ss_pcb *ls, const struct ss_seg *seg);
/* A segment to listener ls, before LISTEN's own rules: for a half-open
 * entry or a cookie. Returns true when it was taken; then *conn is NULL,
 * or the new connection (SYN-RECEIVED) the segment is to be processed in. */
bool ss__synq_input(ss_stack *st, struct ss_pcb *ls, const struct ss_seg *seg,
                    struct ss_pcb **conn);
/* SYN,ACK retransmissions and give-ups due by now; the next deadline. */
uint64_t ss__synq_timers(ss_stack *st, uint64_t now);
/* The listener sd closes: its half-open entries go. */
void ss__synq_flush(ss_stack *st, int sd);

/* tcp_syncookie.c: SYN cookies (RFC 4987, Linux's layout) */
/* A keyed hash of msg (SHA-256 with cfg.isn_secret), its first 32 bits. */
uint32_t ss__keyed_hash32(const ss_stack *st, const uint8_t *msg, size_t len);
/* The cookie ISS for this SYN; *mss the MSS the cookie encodes. */
uint32_t ss__syncookie_make(const ss_stack *st, const struct ss_seg *syn, uint16_t *mss);
/* Is SEG.ACK - 1 a cookie of ours for this tuple and SEG.SEQ - 1, of this
 * or the previous time tick? *mss the MSS it encodes. */
bool ss__syncookie_check(const ss_stack *st, const struct ss_seg *ack, uint16_t *mss);
/* Our TSval on a cookie SYN,ACK: tsval moved back by less than 64 so that
 * its low 6 bits hold the window scale (0xf: none) and SACK-permitted. */
uint32_t ss__syncookie_tsval(uint32_t tsval, bool ws_ok, uint8_t ws, bool sack_ok);
/* Those options back from the TSecr of the cookie ACK. */
void ss__syncookie_ts_decode(uint32_t tsecr, bool *has_ws, uint8_t *ws, bool *sack_ok);

/* tcp_output.c */
void ss__tcp_output(ss_stack *st, struct ss_pcb *sk);
/* Inside ss_stack_input_batch: run ss__tcp_output for sk once the batch
 * is in (stack.c). */
void ss__tcp_defer_output(ss_stack *st, struct ss_pcb *sk);
void ss__tcp_send_ack(ss_stack *st, struct ss_pcb *sk);
int ss__tcp_send_segment(ss_stack *st, struct ss_pcb *sk, uint32_t seq, uint8_t flags,
                         uint32_t len, bool rtx);
void ss__tcp_send_rst_for(ss_stack *st, const struct ss_seg *seg);
void ss__tcp_send_rst(ss_stack *st, struct ss_pcb *sk);
uint32_t ss__tcp_rcv_window(const struct ss_pcb *sk);

/* tcp_timer.c */
void ss__tcp_timers(ss_stack *st, struct ss_pcb *sk, uint64_t now);
uint64_t ss__tcp_next_deadline(const struct ss_pcb *sk);
void ss__tcp_rtt_sample(ss_stack *st, struct ss_pcb *sk, uint64_t rtt_us);
void ss__tcp_arm_rtx(ss_stack *st, struct ss_pcb *sk);
/* RFC 8985 7.2: (re)arm the tail loss probe's timer, or stop it. */
void ss__tcp_arm_tlp(ss_stack *st, struct ss_pcb *sk);
/* RFC 1122 4.2.3.6: send a keep-alive probe (tcp_output.c). */
void ss__tcp_send_keepalive(ss_stack *st, struct ss_pcb *sk);
/* RFC 9293 3.8.6.1: send the zero-window probe (tcp_output.c). */
void ss__tcp_send_zwp(ss_stack *st, struct ss_pcb *sk);
/* RFC 8985 7.3: send the probe (tcp_output.c). */
void ss__tcp_send_tlp(ss_stack *st, struct ss_pcb *sk);
/* RFC 8985 7.4: an ACK while a probe is out: did it repair a loss? */
void ss__cc_tlp_ack(ss_stack *st, struct ss_pcb *sk, const struct ss_seg *seg);
void ss__tcp_keep_reset(ss_stack *st, struct ss_pcb *sk);

/* tcp_cc.c: one congestion-control algorithm (tcp_cc_newreno.c,
 * tcp_cc_cubic.c). The shared loss recovery in tcp_cc.c (duplicate ACKs,
 * fast retransmit, fast recovery, limited transmit, RTO, idle restart)
 * calls these; cwnd and ssthresh are bytes, in the TCB. */
struct ss__cc_ops {
    const char *name;
    enum ss_cc_algo algo;
    /* Fresh algorithm state (connection start, or SS_SO_CONGESTION). */
    void (*init)(ss_stack *st, struct ss_pcb *sk);
    /* acked bytes of new data acknowledged outside fast recovery: grow cwnd
     * (slow start below ssthresh, congestion avoidance above). */
    void (*on_ack)(ss_stack *st, struct ss_pcb *sk, uint32_t acked);
    /* Loss detected (third duplicate ACK, or an RTO that is not a repeat):
     * the new ssthresh. The algorithm records what it needs (W_max ...). */
    uint32_t (*ssthresh)(ss_stack *st, struct ss_pcb *sk);
    /* After an RTO set cwnd to one segment. */
    void (*on_rto)(ss_stack *st, struct ss_pcb *sk);
    /* Fast recovery ends with a full ACK: the cwnd to continue with. */
    uint32_t (*exit_recovery)(ss_stack *st, struct ss_pcb *sk);
    /* Restart after idle (RFC 5681 4.1) is about to cut cwnd. */
    void (*on_idle)(ss_stack *st, struct ss_pcb *sk);
};
extern const struct ss__cc_ops ss__cc_newreno, ss__cc_cubic;
const struct ss__cc_ops *ss__cc_ops_of(int algo);

/* HyStart++ (RFC 9406): SS_HS_OFF once the initial slow start is over (or
 * never, cfg.hystart false); SS_HS_SS in slow start, watching the RTT;
 * SS_HS_CSS in Conservative Slow Start. ss__cc_hystart_rtt() takes every
 * RTT sample; ss__cc_slow_start() does the rest. */
enum ss__hs_phase { SS_HS_OFF, SS_HS_SS, SS_HS_CSS };
void ss__cc_hystart_rtt(struct ss_pcb *sk, uint32_t rtt_us);

void ss__cc_init(ss_stack *st, struct ss_pcb *sk);
int ss__cc_select(ss_stack *st, struct ss_pcb *sk, int algo);
/* Our SYN is acknowledged: the initial window (RFC 6928, RFC 5681 3.1). */
void ss__cc_start(ss_stack *st, struct ss_pcb *sk);
/* New data acknowledged (SND.UNA already advanced by acked bytes). */
void ss__cc_on_ack(ss_stack *st, struct ss_pcb *sk, uint32_t acked);
/* A duplicate ACK as RFC 5681 2 defines it. */
void ss__cc_on_dupack(ss_stack *st, struct ss_pcb *sk);
/* RACK's reordering timer expired (tcp_timer.c): out of recovery,
 * SND.UNA's segment is lost; in recovery, the holes below the highest
 * SACK of reo_wnd ago, and the retransmissions whose time is up. */
void ss__cc_reo_timeout(ss_stack *st, struct ss_pcb *sk);
/* After an ACK's SACK and PRR processing (tcp_input.c): in SACK recovery,
 * arm RACK's reordering timer for what the ACK showed may be lost. */
void ss__cc_rack_arm(ss_stack *st, struct ss_pcb *sk);
/* The retransmission timer expired (data, not the SYN). */
void ss__cc_on_timeout(ss_stack *st, struct ss_pcb *sk);
/* Before sending new data: restart after idle (RFC 5681 4.1). */
void ss__cc_before_send(ss_stack *st, struct ss_pcb *sk);
/* Bytes the congestion state allows in flight (cwnd, plus limited transmit). */
uint32_t ss__cc_window(const struct ss_pcb *sk);
/* FlightSize: SND.MAX - SND.UNA. */
uint32_t ss__cc_flight(const struct ss_pcb *sk);
/* FlightSize for ssthresh: without what limited transmit sent (RFC 5681 3.2 (2)). */
uint32_t ss__cc_flight_loss(const struct ss_pcb *sk);
/* A segment of `bytes` went out, new_bytes of them for the first time:
 * limited transmit's and PRR's (prr_out) shares are counted. */
void ss__cc_sent(struct ss_pcb *sk, uint32_t new_bytes, uint32_t bytes);
/* An ACK delivered `delivered` bytes to the peer (SND.UNA's advance plus
 * the change in SACKed bytes): in SACK recovery, RFC 6937 PRR sets cwnd
 * to pipe + what may be sent now. */
void ss__cc_on_delivered(ss_stack *st, struct ss_pcb *sk, uint32_t delivered);
/* RFC 6675: is sk in fast recovery driven by the SACK scoreboard (SACK
 * negotiated)? Then tcp_output.c sends by ss__cc_next_seg() while
 * cwnd - pipe >= 1 SMSS. */
/* Retransmissions in SACK or RTO recovery (RFC 6675 has no rule for one that is
 * lost too; RFC 8985's RACK finds it by time, this by sequence, as in
 * draft-scheffenegger-tcpm-lrd: DupThresh segments' worth sent after it
 * arrived, it did not).
 * - ss__cc_rxt_sent: remember one just sent, with SACK, in recovery or
 *   after an RTO (not when SS_STACK_RXT_MAX are remembered: the newest
 *   goes untracked, the RTO still covers it);
 * - ss__cc_rxt_update: after an ACK, forget what arrived and mark what
 *   was lost (it leaves pipe); true if one waits to be resent;
 * - ss__cc_lost_rxt: take the oldest marked one, to be resent. */
void ss__cc_rxt_sent(const ss_stack *st, struct ss_pcb *sk, uint32_t seq, uint32_t end);
bool ss__cc_rxt_update(ss_stack *st, struct ss_pcb *sk);
uint32_t ss__cc_rxt_lost_bytes(const struct ss_pcb *sk);
bool ss__cc_lost_rxt(struct ss_pcb *sk, uint32_t *seq, uint32_t *len);
bool ss__cc_sack_recovery(const struct ss_pcb *sk);
/* RFC 6675 SetPipe(): octets estimated in the network. */
uint32_t ss__cc_pipe(const struct ss_pcb *sk);
/* RFC 6675 NextSeg() rules (1) and (3): a retransmission [*seq, *seq+*len)
 * of the first unSACKed hole above HighRxt, IsLost for rule (1)
 * (lost = true) or any for rule (3) (lost = false); false if none. */
bool ss__cc_next_hole(const struct ss_pcb *sk, bool lost, uint32_t *seq, uint32_t *len);
/* Trace (SS_TRACE_CC) the congestion state with mark, or (MARK_NONE) only
 * when cwnd, ssthresh or the phase changed since the last time. */
void ss__cc_trace(ss_stack *st, struct ss_pcb *sk, enum ss_cc_mark mark);
/* Slow start with byte counting (RFC 3465, L = 2*SMSS), shared by algorithms,
 * with HyStart++ in the initial one: returns the acked bytes left over once
 * cwnd reached ssthresh (or HyStart++ ended slow start). */
uint32_t ss__cc_slow_start(ss_stack *st, struct ss_pcb *sk, uint32_t acked);

/* tcp_opt.c: options (RFC 9293 3.1, RFC 7323, RFC 2018) */
/* Parse the TCP header at t (len bytes with data) into seg; the data
 * offset, or -1 for a bad offset or option list (the fixed fields are
 * set even then). */
int ss__tcp_parse_header(const uint8_t *t, size_t len, struct ss_seg *seg);
/* Parse options into seg (mss, ws, sack_ok, ts, sack blocks). Returns 0,
 * or -1 for a malformed list. */
int ss__tcp_parse_options(const uint8_t *opt, size_t len, struct ss_seg *seg);
/* Write the options of a segment sk sends with these flags and len bytes
 * of data at p (room for 40 bytes); returns their length, a multiple of 4. */
size_t ss__tcp_write_options(ss_stack *st, const struct ss_pcb *sk, uint8_t *p, uint8_t flags,
                             uint32_t len);

/* ---- SACK scoreboard (tcp_opt.c): what the peer SACKed (RFC 2018, RFC 6675)
 * The peer's SACK blocks, kept per connection as at most cfg.sack_max
 * ranges [start, end), sorted, disjoint and not touching, all within
 * [SND.UNA, SND.MAX]. Updated from every acceptable ACK (ss__sack_update,
 * before SND.UNA moves); ranges at or below the cumulative ACK are pruned
 * there. Blocks outside [max(SND.UNA, SEG.ACK), SND.MAX] or empty are
 * ignored (RFC 2018 / RFC 6675 validity; D-SACK blocks fall below). When
 * the table is full, the highest range is forgotten (that data then only
 * looks unSACKed: safe, at worst sent again). Empty unless SACK was
 * negotiated. No allocation: the table is a pool slice. */
/* Returns true if the blocks SACKed octets not SACKed before (RFC 6675 2:
 * what makes an ACK a duplicate ACK when SACK is in use). */
bool ss__sack_update(ss_stack *st, struct ss_pcb *sk, const struct ss_seg *seg);
/* Forget every SACKed range (e.g. after an RTO, RFC 2018 8 / RFC 6675 5.1). */
void ss__sack_clear(struct ss_pcb *sk);
/* Is the byte at seq SACKed? */
bool ss__sack_is_sacked(const struct ss_pcb *sk, uint32_t seq);
/* Bytes SACKed in total (all ranges). */
uint32_t ss__sack_sacked_bytes(const struct ss_pcb *sk);
/* Bytes SACKed at sequence numbers greater than seq (seq itself excluded). */
uint32_t ss__sack_sacked_above(const struct ss_pcb *sk, uint32_t seq);
/* Number of SACKed ranges lying wholly above seq (discontiguous SACKed
 * sequences for IsLost, RFC 6675 4 with DupThresh). */
uint32_t ss__sack_ranges_above(const struct ss_pcb *sk, uint32_t seq);
/* RFC 6675 IsLost(seq): dupthresh discontiguous SACKed ranges above seq,
 * or more than (dupthresh - 1) * SMSS bytes SACKed above it. */
bool ss__sack_is_lost(const struct ss_pcb *sk, uint32_t seq, uint32_t dupthresh);
/* End (one past the highest byte) of the highest SACKed range: RFC 6675's
 * HighSACKed + 1; SND.UNA when nothing is SACKed. */
uint32_t ss__sack_high(const struct ss_pcb *sk);
/* The first range not SACKed at or after seq and below ss__sack_high():
 * true with [*start, *end) (start >= seq), false if there is none (seq at
 * or beyond the highest SACKed byte). Holes are what NextSeg() rule (1)
 * looks at. */
bool ss__sack_next_hole(const struct ss_pcb *sk, uint32_t seq, uint32_t *start, uint32_t *end);
/* Ranges in use, and range i (0 = lowest) for iteration. */
uint32_t ss__sack_count(const struct ss_pcb *sk);
struct ss_sack_blk ss__sack_range(const struct ss_pcb *sk, uint32_t i);

/* Negotiation: ss__opt_syn_out before our SYN / SYN,ACK; ss__opt_syn_in
 * with the peer's SYN (LISTEN) or SYN,ACK (SYN-SENT). */
void ss__opt_syn_out(ss_stack *st, struct ss_pcb *sk);
void ss__opt_syn_in(ss_stack *st, struct ss_pcb *sk, const struct ss_seg *seg);
/* The peer's window in bytes: SEG.WND scaled, except on a SYN. */
uint32_t ss__opt_snd_wnd(const struct ss_pcb *sk, const struct ss_seg *seg);
/* PAWS (RFC 7323 5.3 R1): true when the segment is an old duplicate. */
bool ss__ts_paws(ss_stack *st, struct ss_pcb *sk, const struct ss_seg *seg);
/* TS.Recent update (RFC 7323 4.3 (2)); seq as the segment arrived. */
void ss__ts_update(ss_stack *st, struct ss_pcb *sk, const struct ss_seg *seg, uint32_t seq);
/* RTTM (RFC 7323 4.1): a sample from TSecr; true when one was taken. */
bool ss__ts_rtt(ss_stack *st, struct ss_pcb *sk, const struct ss_seg *seg);
/* Our TSval clock (RFC 7323 4.1): st->now in milliseconds plus the
 * connection's offset. */
uint32_t ss__ts_now(const ss_stack *st, const struct ss_pcb *sk);

/* trace.c */
void ss__trace(ss_stack *st, struct ss_trace_event *ev);
void ss__trace_state(ss_stack *st, struct ss_pcb *sk, int old_state, int new_state);
void ss__trace_seg(ss_stack *st, struct ss_pcb *sk, enum ss_trace_kind kind,
                   const struct ss_seg *seg);
void ss__trace_drop(ss_stack *st, struct ss_pcb *sk, int reason, uint8_t proto,
                    uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport);
void ss__trace_rtt(ss_stack *st, struct ss_pcb *sk, uint32_t sample);
void ss__trace_win(ss_stack *st, struct ss_pcb *sk, bool ours, uint32_t o, uint32_t n);
void ss__trace_cc(ss_stack *st, struct ss_pcb *sk, enum ss_cc_mark mark);
void ss__trace_cookie(ss_stack *st, const struct ss_seg *seg, enum ss_cookie_what what,
                      uint32_t isn, uint16_t mss);

/* stack.c: sockets, pools, rings, events */
struct ss_pcb *ss__stack_sock_alloc(ss_stack *st, enum ss_stack_sock_kind kind);
void ss__stack_sock_release(ss_stack *st, struct ss_pcb *sk);
struct ss_pcb *ss__stack_sock_get(const ss_stack *st, int sd);
/* The socket with id sd whatever its state (NULL if free). */
struct ss_pcb *ss__sock_at(const ss_stack *st, int sd);
/* sk's timers may have changed: re-file it in the timer heap before the
 * next ss_stack_poll decides what is due. */
void ss__sock_touch(ss_stack *st, struct ss_pcb *sk);
/* File a TCP socket under its 4-tuple (after laddr/lport/raddr/rport are
 * set), or a listener / UDP socket under its port; and take it out. */
void ss__sock_hash(ss_stack *st, struct ss_pcb *sk);
void ss__sock_unhash(ss_stack *st, struct ss_pcb *sk);
/* Make room in a ring for need bytes from its head (growing it up to
 * max, within the stack's memory limit). false: no memory. */
bool ss__ring_reserve(ss_stack *st, struct ss_ring *r, uint32_t need);
/* A ring emptied: give back the memory sk holds and does not use. */
void ss__sock_ring_idle(ss_stack *st, struct ss_pcb *sk);
struct ss_pcb *ss__tcp_lookup(ss_stack *st, uint32_t laddr, uint16_t lport,
                               uint32_t raddr, uint16_t rport);
struct ss_pcb *ss__udp_lookup(ss_stack *st, uint16_t lport);
void ss__set_state(ss_stack *st, struct ss_pcb *sk, enum ss_tcp_state ns);
void ss__stack_sock_event(ss_stack *st, struct ss_pcb *sk, unsigned ev, int err);
/* Tear down a TCP connection: state CLOSED, timers off, report err (0: none). */
void ss__tcp_drop(ss_stack *st, struct ss_pcb *sk, int err);
uint32_t ss__isn(ss_stack *st, uint32_t laddr, uint16_t lport, uint32_t raddr,
                 uint16_t rport, uint64_t now);
/* Ports: the lowest free ephemeral port for kind (0 if none), whether a
 * port is taken, whether a TCP listener has it; sk holds port (counted). */
uint16_t ss__ephemeral_port(ss_stack *st, enum ss_stack_sock_kind kind);
bool ss__port_in_use(ss_stack *st, enum ss_stack_sock_kind kind, uint16_t port);
bool ss__listener_on(ss_stack *st, uint16_t port);
int ss__port_reserve(ss_stack *st, uint16_t port);
void ss__port_hold(ss_stack *st, struct ss_pcb *sk, uint16_t port);
/* Take sk out of its listener's SYN or accept queue. */
void ss__tcp_unlink_from_listener(ss_stack *st, struct ss_pcb *sk);
/* May the application queue data on sk (SEND allowed in this state)? */
bool ss__tcp_can_send(const struct ss_pcb *sk);
void ss__tcp_listener_add_child(ss_stack *st, struct ss_pcb *ls, struct ss_pcb *sk);
void ss__tcp_established_child(ss_stack *st, struct ss_pcb *sk);

uint32_t ss__ring_free(const struct ss_ring *r);
uint32_t ss__ring_write(struct ss_ring *r, const void *data, uint32_t len);
/* Copy len bytes at offset off from the head into out (no consume). */
void ss__ring_peek(const struct ss_ring *r, uint32_t off, void *out, uint32_t len);
/* [off, off+len) of the ring as 1 or 2 pieces, in place: their count. */
int ss__ring_view(const struct ss_ring *r, uint32_t off, uint32_t len, struct iovec out[2]);
/* Write at offset off beyond the stored bytes' head (for out-of-order data). */
void ss__ring_poke(struct ss_ring *r, uint32_t off, const void *data, uint32_t len);
void ss__ring_consume(struct ss_ring *r, uint32_t len);

static inline uint64_t ss__min64(uint64_t a, uint64_t b) { return a < b ? a : b; }
static inline uint32_t ss__min32(uint32_t a, uint32_t b) { return a < b ? a : b; }

#endif
