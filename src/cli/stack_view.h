/* What `sockstack stack demo|diagram` record of a simulated connection, and
 * the views drawn from it: a terminal sequence diagram, the same as SVG, and
 * SVG plots of cwnd, RTT and sequence number over time. CLI-only. */
#ifndef SS_CLI_STACK_VIEW_H
#define SS_CLI_STACK_VIEW_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "sockstack/link.h"
#include "sockstack/stack.h"

/* Rows kept for a diagram; a longer run is drawn up to here and says so. */
#define SV_MAX_ROWS 3000
/* Samples kept for the plots. */
#define SV_MAX_POINTS 200000

enum sv_row_kind { SV_STATE, SV_SEND, SV_DELIVER, SV_LOST };

/* A packet on the simulated link, parsed for display. */
struct sv_wire {
    uint64_t id;
    int from;            /* node 0 (A) or 1 (B) */
    uint64_t t_send, t_arrive;
    int send_row, arrive_row; /* -1 when none */
    bool lost, rtx, tcp;
    uint8_t flags;
    uint32_t seq, ack, len;
    uint16_t win, mss;
    char label[96];      /* filled by sv_finish (needs the ISNs) */
    char other[64];      /* non-TCP description */
};

struct sv_row {
    enum sv_row_kind kind;
    uint64_t t;
    int node;
    int wire;            /* index into wires, or -1 */
    int old_state, new_state;
};

enum sv_series { SV_CWND, SV_INFLIGHT, SV_SRTT, SV_RTT_SAMPLE, SV_SEQ, SV_SEQ_RTX,
                 SV_SSTHRESH, SV_PEER_WND, SV_NSERIES };

struct sv_point {
    uint64_t t;
    double v;
    enum sv_series series;
};

/* A retransmission traced before its packet reached the link. */
struct sv_pending { int node; uint64_t t; uint32_t seq; };
#define SV_MAX_PENDING 64

struct sv_log {
    struct sv_pending pending[SV_MAX_PENDING];
    int npending;
    struct sv_row *rows;
    size_t nrows;
    struct sv_wire *wires;
    size_t nwires;
    bool truncated;
    struct sv_point *pts;
    size_t npts;
    bool isn_known[2];
    uint32_t isn[2];     /* from each side's SYN */
    char name[2][32];    /* "10.0.0.1:49152" */
    uint32_t snd_max, ack_max; /* A's highest seq+len sent, highest ack got */
    bool flight_known;
    /* A's last traced cwnd, ssthresh, peer's window: lines drawn in steps. */
    bool step_known[SV_NSERIES];
    double step_last[SV_NSERIES];
    uint64_t t_end;
};

int sv_init(struct sv_log *l);
void sv_free(struct sv_log *l);
/* Feed a link tap event / a trace event of node `node`. */
void sv_on_tap(struct sv_log *l, enum ss_sim_tap_point pt, int from, uint64_t id,
               uint64_t now, const uint8_t *pkt, size_t len);
void sv_on_trace(struct sv_log *l, int node, const struct ss_trace_event *ev);
/* Build the labels once the run is over. */
void sv_finish(struct sv_log *l, uint64_t t_end);

/* Short description of a packet: "SYN seq=0 win=65535 <mss 1460>". When
 * isn is given, sequence numbers are shown relative to it. */
void sv_describe(const uint8_t *pkt, size_t len, char *buf, size_t cap);

void sv_print_diagram(const struct sv_log *l, FILE *out);
int sv_write_svg(const struct sv_log *l, FILE *out);
int sv_write_plot(const struct sv_log *l, FILE *out);

#endif
