/* tcp_output: what may be sent now, and building segments.
 *
 * ss__tcp_output() is the one sender: SYN / SYN,ACK in the opening states,
 * then data within min(peer window, congestion window) with Nagle
 * (RFC 896) and sender SWS avoidance (RFC 9293 3.8.6.2.1), then our FIN,
 * then a pure ACK if one is owed. Data is never copied into segments
 * ahead of time: a segment is cut from the send ring at (seq - SND.UNA),
 * so a retransmission is just "send again from SND.UNA".
 */
#include "sockstack/config.h"
#include "stack_int.h"

/* Window we may advertise now, in bytes, as the peer will read it
 * (a multiple of 2^Rcv.Wind.Shift, RFC 7323 2.3). Receiver SWS avoidance
 * (RFC 9293 3.8.6.2.2 / RFC 1122 4.2.3.3): the right edge only moves by
 * at least min(buffer/2, MSS), up to the free space of SO_RCVBUF. It
 * never moves left (SHLD-14, 3.8.6): with scaling, the current window is
 * rounded up to the granularity, which may promise up to 2^shift - 1
 * bytes beyond SO_RCVBUF; the ring's SS_RCV_SLACK holds them. Only if
 * a peer keeps sending odd-sized segments into a buffer the application
 * does not read would the slack run out: then the window is rounded
 * down, a retraction of less than 2^shift that RFC 7323 2.4 foresees,
 * and data up to the edge once advertised (RCV.ADV) is still accepted. */
/* Free receive buffer, at most what the window field can say. */
static uint32_t rcv_room(const struct ss_pcb *sk)
{
    uint32_t room = sk->rcv.limit > sk->rcv.len ? sk->rcv.limit - sk->rcv.len : 0;
    return ss__min32(room, 65535u << sk->rcv_wscale);
}

static uint32_t rcv_cur(const struct ss_pcb *sk)
{
    return SEQ_GT(sk->rcv_adv, sk->rcv_nxt) ? sk->rcv_adv - sk->rcv_nxt : 0;
}

/* Receiver SWS avoidance: may the right edge move right now? */
static bool rcv_window_opens(const struct ss_pcb *sk)
{
    uint32_t thresh = ss__min32(sk->rcv.limit / 2, sk->rcv_mss);
    return rcv_room(sk) >= rcv_cur(sk) + thresh;
}

uint32_t ss__tcp_rcv_window(const struct ss_pcb *sk)
{
    uint32_t gran = 1u << sk->rcv_wscale;
    uint32_t room = rcv_room(sk);
    uint32_t w = rcv_window_opens(sk) ? room : rcv_cur(sk);
    uint64_t up = ((uint64_t)w + gran - 1) & ~(uint64_t)(gran - 1);
    uint32_t phys = sk->rcv.limit + SS_RCV_SLACK - sk->rcv.len;
    return up <= phys && up <= 65535u << sk->rcv_wscale ? (uint32_t)up : w & ~(gran - 1);
}

/* Write the TCP header for h (ports, seq, ack, flags, window, urgent
 * pointer; hl bytes with options already at t + 20) and the checksum over
 * it and the h->len payload bytes that follow it. */
static void put_header(uint8_t *t, const struct ss_seg *h, size_t hl, bool csum_partial)
{
    ss__put16(t, h->sport);
    ss__put16(t + 2, h->dport);
    ss__put32(t + 4, h->seq);
    ss__put32(t + 8, h->ack);
    t[12] = (uint8_t)((hl / 4) << 4);
    t[13] = h->flags;
    ss__put16(t + 14, h->wnd);
    t[16] = t[17] = 0;
    ss__put16(t + 18, h->urp);
    uint32_t tl = (uint32_t)(hl + h->len);
    uint32_t s = ss__pseudo_sum(h->src, h->dst, SS_IPPROTO_TCP, tl);
    /* With checksum offload the field holds the pseudo-header sum, not
     * inverted, and the link sums the rest over it (as Linux's
     * CHECKSUM_PARTIAL): the payload is never read for a checksum here. */
    ss__put16(t + 16, csum_partial ? (uint16_t)s : ss_csum_fold(ss_csum_add(s, t, tl)));
}

/* Trace, count and send the segment h built in st->tx. sk is NULL for a
 * segment that belongs to no connection. */
static int emit_v(ss_stack *st, struct ss_pcb *sk, const struct ss_seg *h, bool rtx, uint8_t tos,
                  const struct iovec *data, int ndata)
{
    ss__trace_seg(st, sk, rtx ? SS_TRACE_RETRANSMIT : SS_TRACE_SEG_OUT, h);
    st->stats.tcp_out++;
    if (sk)
        sk->segs_out++;
    if (rtx) {
        st->stats.tcp_retransmits++;
        if (sk)
            sk->retransmits++;
    }
    if (h->flags & SS_TCP_RST)
        st->stats.tcp_rst_out++;
    size_t in_tx = SS_TCP_HDR + h->opt_len + (ndata ? 0 : h->len);
    return ss__ip_output_v(st, st->tx, in_tx, data, ndata, h->dst, SS_IPPROTO_TCP, true, tos);
}

static int emit(ss_stack *st, struct ss_pcb *sk, const struct ss_seg *h, bool rtx, uint8_t tos)
{
    return emit_v(st, sk, h, rtx, tos, NULL, 0);
}

int ss__tcp_send_segment(ss_stack *st, struct ss_pcb *sk, uint32_t seq, uint8_t flags,
                         uint32_t len, bool rtx)
{
    uint8_t *t = st->tx + SS_IP_HDR;
    size_t optlen = ss__tcp_write_options(st, sk, t + SS_TCP_HDR, flags, len);
    size_t hl = SS_TCP_HDR + optlen;
    bool synced = !ss__tcp_opening(sk);
    /* The payload: copied after the header, or, when the link completes
     * the checksum and so never needs it here, handed to the link where
     * it is in the send ring (no copy). */
    struct iovec data[2];
    int ndata = 0;
    if (len) {
        uint32_t off = seq - sk->snd_una;
        if (st->cfg.output_offload && st->cfg.tx_csum_offload)
            ndata = ss__ring_view(&sk->snd, off, len, data);
        else
            ss__ring_peek(&sk->snd, off, t + hl, len);
    }
    uint32_t wnd = ss__tcp_rcv_window(sk);
    uint32_t old_adv = sk->rcv_adv - sk->rcv_nxt;
    if (flags & SS_TCP_RST)
        wnd = 0;
    /* RFC 7323 2.2-2.3: the window of a SYN is never scaled; after it,
     * the field is the window >> Rcv.Wind.Shift (exact: wnd is a
     * multiple of the granularity). */
    uint16_t field = (uint16_t)((flags & SS_TCP_SYN) ? ss__min32(wnd, 65535)
                                                      : wnd >> sk->rcv_wscale);
    if (flags & SS_TCP_SYN)
        wnd = field;
    struct ss_seg h = {.src = sk->laddr, .dst = sk->raddr, .sport = sk->lport,
                       .dport = sk->rport, .seq = seq,
                       .ack = (flags & SS_TCP_ACK) ? sk->rcv_nxt : 0, .flags = flags,
                       .wnd = field, .opt = t + SS_TCP_HDR, .opt_len = (uint8_t)optlen,
                       .len = len};
    ss__tcp_parse_options(h.opt, optlen, &h);   /* what the trace shows */
    /* Urgent data pending: URG with the pointer at the octet after it,
     * as an offset from this segment's sequence number (MUST-62). */
    if (sk->snd_up_valid && !(flags & (SS_TCP_SYN | SS_TCP_RST)) && SEQ_GT(sk->sx->snd_up, seq)) {
        uint32_t up = sk->sx->snd_up - seq;
        h.flags |= SS_TCP_URG;
        h.urp = (uint16_t)(up > 65535 ? 65535 : up);
    }
    put_header(t, &h, hl, st->cfg.tx_csum_offload);

    if ((flags & SS_TCP_ACK) && !(flags & SS_TCP_RST)) {
        if (synced || (flags & SS_TCP_SYN)) {
            if (SEQ_GT(sk->rcv_nxt + wnd, sk->rcv_adv) || (flags & SS_TCP_SYN)) {
                if (wnd != old_adv && synced)
                    ss__trace_win(st, sk, true, old_adv, wnd);
                sk->rcv_adv = sk->rcv_nxt + wnd;
            }
        }
        sk->ack_now = false;
        sk->last_ack_sent = sk->rcv_nxt;   /* Last.ACK.sent (RFC 7323 4.3) */
        sk->unacked_segs = 0;
        sk->t_delack = SS_NEVER;
    }
    st->tx_gso = len > sk->snd_mss ? (uint16_t)sk->snd_mss : 0;
    int rc = emit_v(st, sk, &h, rtx, sk->tos, data, ndata);
    st->tx_gso = 0;
    return rc;
}

/* A pure ACK carries SND.MAX, the highest sequence number sent, not
 * SND.NXT: after a retransmission timeout SND.NXT is pulled back to
 * SND.UNA, and an ACK carrying it would be "old" at a peer that already
 * has those bytes, so the peer would answer it with an ACK of its own
 * (an ACK ping-pong); BSD does the same. Without a retransmission
 * outstanding the two are equal. */
void ss__tcp_send_ack(ss_stack *st, struct ss_pcb *sk)
{
    /* While probing a zero window the probe byte is beyond the peer's
     * window: the ACK stays at SND.NXT (= SND.UNA) where the peer accepts it. */
    uint32_t seq = sk->t_persist != SS_NEVER ? sk->snd_nxt : sk->snd_max;
    ss__tcp_send_segment(st, sk, seq, SS_TCP_ACK, 0, false);
}

/* ABORT / reset of a connection we have: <SEQ=SND.NXT><CTL=RST>. */
void ss__tcp_send_rst(ss_stack *st, struct ss_pcb *sk)
{
    ss__tcp_send_segment(st, sk, sk->snd_nxt, SS_TCP_RST, 0, false);
}

/* RST for a segment that has no connection (RFC 9293 3.10.7.1), built
 * from the segment's fields alone (as lwIP's tcp_rst()):
 * ACK set:  <SEQ=SEG.ACK><CTL=RST>
 * ACK off:  <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
 * Never in answer to a RST. */
void ss__tcp_send_rst_for(ss_stack *st, const struct ss_seg *seg)
{
    if (seg->flags & SS_TCP_RST)
        return;
    bool acked = seg->flags & SS_TCP_ACK;
    struct ss_seg h = {.src = seg->dst, .dst = seg->src, .sport = seg->dport,
                       .dport = seg->sport, .seq = acked ? seg->ack : 0,
                       .ack = acked ? 0 : seg->seq + ss__seg_seqlen(seg),
                       .flags = acked ? SS_TCP_RST : SS_TCP_RST | SS_TCP_ACK};
    put_header(st->tx + SS_IP_HDR, &h, SS_TCP_HDR, st->cfg.tx_csum_offload);
    emit(st, NULL, &h, false, 0);
}

static bool sends_data(enum ss_tcp_state s)
{
    return s == SS_TCP_ESTABLISHED || s == SS_TCP_CLOSE_WAIT || s == SS_TCP_FIN_WAIT_1 ||
           s == SS_TCP_CLOSING || s == SS_TCP_LAST_ACK;
}

/* The one builder of data segments: [seq, seq+len) of the send ring,
 * with PSH when it empties the ring and FIN when it reaches our FIN
 * (len may be 0 for a FIN alone). New data, go-back-N after an RTO, a
 * fast retransmission and a partial ACK's hole all come through here.
 * Returns the sequence space used. */
static uint32_t send_data_at(ss_stack *st, struct ss_pcb *sk, uint32_t seq, uint32_t len)
{
    uint32_t data_end = sk->snd_una + sk->snd.len;
    bool rtx = SEQ_LT(seq, sk->snd_max);
    uint8_t flags = SS_TCP_ACK;
    if (len && seq + len == data_end)
        flags |= SS_TCP_PSH;
    if (sk->fin_queued && seq + len == sk->fin_seq)
        flags |= SS_TCP_FIN;
    ss__tcp_send_segment(st, sk, seq, flags, len, rtx);
    sk->last_send = st->now;
    uint32_t end = seq + len + ((flags & SS_TCP_FIN) ? 1 : 0);
    /* Count payload sent for the first time: a segment that starts in a
     * retransmission may go on past SND.MAX with new data. */
    uint32_t fresh = SEQ_GT(seq + len, sk->snd_max) ? seq + len - sk->snd_max : 0;
    sk->bytes_out += fresh;
    ss__cc_sent(sk, fresh, len);
    bool original = SEQ_GT(end, sk->snd_max);
    if (SEQ_GT(end, sk->snd_nxt))
        sk->snd_nxt = end;
    if (SEQ_GT(end, sk->snd_max)) {
        /* RFC 6298 / Karn: time one segment of new data at a time. */
        if (!sk->rtt_timing && !rtx) {
            sk->rtt_timing = true;
            sk->rtt_seq = seq;
            sk->rtt_start = (uint32_t)st->now;
        }
        sk->snd_max = end;
    }
    if (sk->t_rtx == SS_NEVER)
        ss__tcp_arm_rtx(st, sk);
    sk->t_persist = SS_NEVER;
    if (rtx && len)
        ss__cc_rxt_sent(st, sk, seq, seq + len);
    if (original)
        ss__tcp_arm_tlp(st, sk);   /* RFC 8985 7.2: after an original transmission */
    return end - seq;
}

/* RFC 1122 4.2.3.6: <SEQ=SND.NXT-1> with no data elicits an ACK. */
void ss__tcp_send_keepalive(ss_stack *st, struct ss_pcb *sk)
{
    ss__tcp_send_segment(st, sk, sk->snd_nxt - 1, SS_TCP_ACK, 0, false);
}

/* RFC 9293 3.8.6.1: the zero-window probe, one byte at SND.UNA beyond
 * the closed window (the same byte again on later probes). It counts in
 * SND.MAX (so an ACK for it is acceptable) but not in SND.NXT: it is
 * outside the window, not in flight. */
void ss__tcp_send_zwp(ss_stack *st, struct ss_pcb *sk)
{
    bool again = SEQ_GT(sk->snd_max, sk->snd_una);
    ss__tcp_send_segment(st, sk, sk->snd_una, SS_TCP_ACK, 1, again);
    if (!again) {
        sk->snd_max = sk->snd_una + 1;
        sk->bytes_out++;   /* the probe byte is new data, sent once */
    }
    sk->snd_nxt = sk->snd_una;
}

/* RFC 8985 7.3: the PTO fired in the open state. A new segment if there
 * is one and the peer's window takes it, else the most recently sent
 * one again; either way whatever cwnd says (FlightSize may exceed it by
 * one segment), so that its ACK, or its SACK, tells what happened to
 * the tail. Then the RTO restarts. */
void ss__tcp_send_tlp(ss_stack *st, struct ss_pcb *sk)
{
    struct ss_pcbx *x = ss__sx_take(sk);
    if (!x)
        return;   /* no memory for the probe's state: the RTO covers the tail */
    uint32_t data_end = sk->snd_una + sk->snd.len;
    uint32_t avail = SEQ_GT(data_end, sk->snd_max) ? data_end - sk->snd_max : 0;
    uint32_t len = ss__min32(avail, sk->snd_mss), seq;
    bool fresh = len && sk->snd_nxt == sk->snd_max &&
                 SEQ_LEQ(sk->snd_max + len, sk->snd_una + sk->snd_wnd);
    if (fresh) {
        seq = sk->snd_max;
    } else {
        /* The last segment of data sent (our FIN with it, if sent). */
        uint32_t end = sk->fin_queued && SEQ_GT(sk->snd_max, sk->fin_seq) ? sk->fin_seq : sk->snd_max;
        len = ss__min32(end - sk->snd_una, sk->snd_mss);
        seq = end - len;
    }
    sk->tlp_on = true;   /* before sending: no new PTO for the probe itself */
    sk->tlp_rtx = !fresh;
    x->tlp_seq = seq;
    send_data_at(st, sk, seq, len);
    x->tlp_end = sk->snd_nxt;   /* TLP.end_seq = SND.NXT */
    sk->tlp_probes++;
    ss__cc_trace(st, sk, SS_CC_MARK_TLP);
    ss__tcp_arm_rtx(st, sk);
}

/* A retransmission owed by the loss recovery (tcp_cc.c: fast retransmit,
 * a partial ACK's hole; tcp_timer.c: the RTO's first segment): one
 * segment at rtx_seq, of what was sent before, whatever the windows
 * (RFC 5681 3.2 (2), RFC 6298 (5.4)). */
static void send_marked(ss_stack *st, struct ss_pcb *sk)
{
    sk->rtx_mark = false;
    uint32_t seq = SEQ_LT(sk->rtx_seq, sk->snd_una) ? sk->snd_una : sk->rtx_seq;
    uint32_t data_end = sk->snd_una + sk->snd.len;
    uint32_t data = SEQ_GT(data_end, seq) ? data_end - seq : 0;
    uint32_t sent = SEQ_GT(sk->snd_max, seq) ? sk->snd_max - seq : 0;
    uint32_t len = ss__min32(ss__min32(data, sent), sk->snd_mss);
    bool fin = sk->fin_queued && seq + len == sk->fin_seq && SEQ_GT(sk->snd_max, sk->fin_seq);
    if (len || fin)
        send_data_at(st, sk, seq, len);
    if (SEQ_GT(seq + len, sk->high_rxt))
        sk->high_rxt = seq + len;   /* RFC 6675 (4.3): HighRxt */
}

/* Go-back-N after an RTO with SACK: SND.NXT skips what the peer SACKed,
 * and a segment stops where the next SACKed range starts; returns the
 * bytes SACKed in [SND.UNA, SND.NXT), which the window does not count
 * (they have left the network). Like Linux, the scoreboard is kept
 * across an RTO (RFC 6675 5.1 allows it; only a reneging peer would make
 * this wrong, and then the next RTO resends from SND.UNA again), so
 * SACKed data is never sent twice. *cap is the room before the next
 * SACKed range (UINT32_MAX if none). */
static uint32_t skip_sacked(struct ss_pcb *sk, uint32_t *cap)
{
    *cap = UINT32_MAX;
    bool back = SEQ_LT(sk->snd_nxt, sk->snd_max);
    /* Still in RTO recovery once the go-back-N has reached SND.MAX: what
     * the peer SACKed has left the network, and new data may take its
     * place (without this, the window stayed full of SACKed data). */
    if (!sk->sack_ok || (!back && sk->cc_phase != SS_CC_LOSS))
        return 0;
    uint32_t n = back ? ss__sack_count(sk) : 0;
    for (uint32_t i = 0; i < n; i++) {
        struct ss_sack_blk r = ss__sack_range(sk, i);
        if (SEQ_LEQ(r.start, sk->snd_nxt) && SEQ_LT(sk->snd_nxt, r.end))
            sk->snd_nxt = r.end;
        else if (SEQ_GT(r.start, sk->snd_nxt)) {
            *cap = r.start - sk->snd_nxt;
            break;
        }
    }
    uint32_t all = ss__sack_sacked_bytes(sk);
    uint32_t above = ss__sack_sacked_above(sk, sk->snd_nxt - 1);
    return all - above;
}

/* The most payload one segment may carry: the MSS or, when the link cuts
 * segments itself (cfg.tso_max, TSO/GSO), as many whole MSS as fit. Not
 * while we send SACK blocks: the link copies the header into every piece,
 * and those would outgrow the MSS the peer asked for. */
static uint32_t seg_max(const ss_stack *st, const struct ss_pcb *sk)
{
    uint32_t n = st->cfg.tso_max / sk->snd_mss;
    return n > 1 && sk->sx->ooo_n == 0 ? n * sk->snd_mss : sk->snd_mss;
}

/* Send one segment of data/FIN starting at SND.NXT; returns false when
 * nothing (more) may be sent now. */
static bool send_next(ss_stack *st, struct ss_pcb *sk)
{
    uint32_t cap, sacked = skip_sacked(sk, &cap);
    uint32_t data_end = sk->snd_una + sk->snd.len;
    uint32_t avail = SEQ_GT(data_end, sk->snd_nxt) ? data_end - sk->snd_nxt : 0;
    uint32_t in_flight = sk->snd_nxt - sk->snd_una;
    uint32_t cw = ss__cc_window(sk);
    uint32_t wnd = ss__min32(sk->snd_wnd, cw > UINT32_MAX - sacked ? UINT32_MAX : cw + sacked);
    uint32_t right = sk->snd_una + wnd;
    uint32_t usable = SEQ_GT(right, sk->snd_nxt) ? right - sk->snd_nxt : 0;
    bool rtx = SEQ_LT(sk->snd_nxt, sk->snd_max);
    uint32_t len = ss__min32(ss__min32(ss__min32(avail, usable), seg_max(st, sk)), cap);

    if (len > 0) {
        bool full = len >= sk->snd_mss;
        bool all = len == avail;
        /* Nagle (RFC 896, RFC 9293 3.7.4): a short segment only when
         * nothing is unacknowledged, unless switched off or closing.
         * Sender SWS avoidance (RFC 9293 3.8.6.2.1): send (1) a full
         * segment, (2) all queued data, (3) at least half the largest
         * window the peer offered, or (4) after the override timeout. A
         * sliver held with nothing in flight (no ACK will come to look
         * again) starts that timer; NODELAY does not skip it. */
        bool nagle_ok = sk->nodelay || in_flight == 0 || sk->fin_queued;
        bool half = sk->max_snd_wnd && len >= sk->max_snd_wnd / 2;
        if (!(full || rtx || (all && nagle_ok) || (half && nagle_ok) || sk->sws_force)) {
            if (in_flight == 0 && sk->t_sws == SS_NEVER)
                sk->t_sws = st->now + SS_STACK_SWS_OVERRIDE_MS * 1000ull;
            return false;
        }
        sk->t_sws = SS_NEVER;
        send_data_at(st, sk, sk->snd_nxt, len);
        return true;
    }
    if (sk->fin_queued && sk->snd_nxt == sk->fin_seq && avail == 0) {
        send_data_at(st, sk, sk->snd_nxt, 0);
        return false;
    }
    /* Zero window with data waiting and nothing in flight that an RTO
     * would cover: the persist timer probes (RFC 9293 3.8.6.1). */
    if (avail > 0 && usable == 0 && sk->snd_wnd == 0 && sk->snd_max == sk->snd_una &&
        sk->t_persist == SS_NEVER && sk->t_rtx == SS_NEVER) {
        uint64_t d = (uint64_t)sk->rto_us << ss__min32(sk->persist_backoff, 16);
        sk->t_persist = st->now + ss__min64(d, (uint64_t)st->cfg.rto_max_ms * 1000);
    }
    return false;
}

/* RFC 6675 (4.4) / (C): in SACK recovery, one segment by NextSeg()
 * while cwnd - pipe >= 1 SMSS: rule (1) a lost hole above HighRxt, rule
 * (2) new data (send_next(), whose window ss__cc_window() makes the
 * room cwnd - pipe), rule (3) any hole above HighRxt. A SACKed byte is
 * never chosen: holes are the unSACKed ranges. */
static bool send_next_seg(ss_stack *st, struct ss_pcb *sk)
{
    uint32_t pipe = ss__cc_pipe(sk), seq, len;
    if (sk->cwnd < pipe || sk->cwnd - pipe < sk->snd_mss)
        return false;
    /* Before NextSeg's rule (1): a retransmission that was lost too is
     * resent (it lies below HighRxt, where NextSeg no longer looks). */
    if (ss__cc_lost_rxt(sk, &seq, &len)) {
        send_data_at(st, sk, seq, len);
        return true;
    }
    bool hole = ss__cc_next_hole(sk, true, &seq, &len);
    if (!hole) {
        if (send_next(st, sk))
            return true;
        hole = ss__cc_next_hole(sk, false, &seq, &len);
    }
    if (!hole)
        return false;
    send_data_at(st, sk, seq, len);
    sk->high_rxt = seq + len;
    return true;
}

/* SYN (SYN-SENT) or SYN,ACK (SYN-RECEIVED, or closed from there with
 * our SYN still unacknowledged), when SND.NXT is back at ISS. */
static void send_syn(ss_stack *st, struct ss_pcb *sk)
{
    if (sk->snd_nxt != sk->iss) {
        if (sk->ack_now && sk->state == SS_TCP_SYN_RECEIVED)
            ss__tcp_send_ack(st, sk);
        return;
    }
    /* RFC 9293 3.10.1 / 3.10.7.2: <SEQ=ISS><CTL=SYN> or
     * <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>, with our MSS. */
    uint8_t f = sk->state == SS_TCP_SYN_SENT ? SS_TCP_SYN : SS_TCP_SYN | SS_TCP_ACK;
    bool rtx = SEQ_GT(sk->snd_max, sk->iss) && !sk->synack_first;
    sk->synack_first = false;
    ss__tcp_send_segment(st, sk, sk->iss, f, 0, rtx);
    if (!rtx) {
        sk->rtt_timing = true;
        sk->rtt_seq = sk->iss;
        sk->rtt_start = (uint32_t)st->now;
    }
    sk->snd_nxt = sk->iss + 1;
    if (SEQ_GT(sk->snd_nxt, sk->snd_max))
        sk->snd_max = sk->snd_nxt;
    if (sk->t_rtx == SS_NEVER)
        ss__tcp_arm_rtx(st, sk);
}

void ss__tcp_output(ss_stack *st, struct ss_pcb *sk)
{
    ss__sock_touch(st, sk);   /* what it sends arms timers */
    switch (sk->state) {
    case SS_TCP_CLOSED:
    case SS_TCP_LISTEN:
        return;
    case SS_TCP_SYN_SENT:
    case SS_TCP_SYN_RECEIVED:
        send_syn(st, sk);
        return;
    default:
        break;
    }
    if (sk->snd_una == sk->iss && sk->snd_nxt == sk->iss) {
        send_syn(st, sk);   /* closed from SYN-RECEIVED: the RTO resends our SYN */
        return;
    }
    bool sent = false;
    if (sends_data(sk->state)) {
        if (!sk->cc_started)
            ss__cc_start(st, sk);
        ss__cc_before_send(st, sk);
        if (sk->rtx_mark) {
            send_marked(st, sk);
            sent = true;
        }
        /* A retransmission lost too: in SACK recovery NextSeg resends
         * it within pipe (send_next_seg); after an RTO, where the go-back-N
         * has passed it, one is resent per ACK, as a fast retransmit. */
        if (ss__cc_rxt_update(st, sk) && sk->cc_phase == SS_CC_LOSS) {
            uint32_t seq, len;
            if (ss__cc_lost_rxt(sk, &seq, &len)) {
                send_data_at(st, sk, seq, len);
                sent = true;
            }
        }
        bool (*next)(ss_stack *, struct ss_pcb *) =
            ss__cc_sack_recovery(sk) ? send_next_seg : send_next;
        for (int i = 0; i < 1 << 16 && next(st, sk); i++)
            sent = true;
        ss__cc_trace(st, sk, SS_CC_MARK_NONE);
    }
    sk->sws_force = false;
    /* A window update owed to the peer after the application read. */
    if (!sent && sk->state != SS_TCP_TIME_WAIT) {
        if (rcv_window_opens(sk) && ss__tcp_rcv_window(sk) > rcv_cur(sk) && !sk->fin_rcvd)
            sk->ack_now = true;
    }
    if (sk->ack_now)
        ss__tcp_send_ack(st, sk);
}
