/* tcp_input: segment arrival, RFC 9293 3.10.7 ("SEGMENT ARRIVES").
 *
 * ss__tcp_input: checksum, header, options -> struct ss_seg (the segment
 * under processing, passed by pointer) -> demultiplex -> one handler:
 *   no socket / CLOSED   closed_state()        3.10.7.1
 *   LISTEN               listen_state()        3.10.7.2
 *                        (half-open entries, SYN cookies: tcp_synq.c)
 *   SYN-SENT             syn_sent_state()      3.10.7.3
 *   everything else      synchronized()        3.10.7.4, in the RFC's order:
 *     1 sequence number check   check_timestamp()   (RFC 7323 5.3: PAWS)
 *                               check_sequence()
 *     2 RST bit                 check_rst()         (+ RFC 5961 3.2)
 *     4 SYN bit                 check_syn()         (+ RFC 5961 4.2)
 *     5 ACK field               check_ack()         (+ RFC 5961 5.2)
 *                               synrcvd_ack(), new_ack(), closing_ack()
 *     6 URG bit                 check_urg()
 *     7 segment text            receive_text()
 *     8 FIN bit                 receive_fin()
 * (3, security/compartment, does not apply: no IPSO.)
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sockstack/config.h"
#include "stack_int.h"

enum verdict { CONTINUE, DONE };

static void drop_seg(ss_stack *st, struct ss_pcb *sk, const struct ss_seg *seg, int reason)
{
    ss__trace_drop(st, sk, reason, SS_IPPROTO_TCP, seg->src, seg->dst, seg->sport, seg->dport);
}

static void connection_error(ss_stack *st, struct ss_pcb *sk, int err)
{
    ss__tcp_drop(st, sk, err);
}

static void challenge_ack(ss_stack *st, struct ss_pcb *sk, const struct ss_seg *seg)
{
    /* RFC 5961 3.2 / 4.2: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, at most
     * cfg.challenge_ack_limit per second (RFC 5961 section 7) on each
     * connection: a stack-wide budget lets a RST flood on one connection
     * silence the others, and tells an off-path attacker when a guess hit
     * (CVE-2016-5696). */
    drop_seg(st, sk, seg, SS_DROP_TCP_CHALLENGE);
    struct ss_pcbx *x = ss__sx_take(sk);
    if (!x)
        return;   /* no memory for the budget: none sent */
    ss__sock_ring_idle(st, sk);   /* trim gives sx back once the second is over */
    if (st->now - x->chack_window >= 1000000) {
        x->chack_window = st->now;
        x->chack_count = 0;
    }
    if (x->chack_count >= st->cfg.challenge_ack_limit)
        return;
    x->chack_count++;
    st->stats.tcp_challenge_acks++;
    sk->ack_now = true;   /* sent by ss__tcp_output at the end of input */
}

static void enter_time_wait(ss_stack *st, struct ss_pcb *sk)
{
    ss__set_state(st, sk, SS_TCP_TIME_WAIT);
    sk->t_rtx = sk->t_persist = sk->t_keep = sk->t_delack = sk->t_sws = sk->t_tlp = SS_NEVER;
    sk->t_2msl = st->now + ss__2msl_us(st);
    ss__stack_sock_event(st, sk, SS_EV_CLOSED, 0);
}

/* Our FIN is acknowledged once SND.UNA passed it. */
static bool our_fin_acked(const struct ss_pcb *sk)
{
    return sk->fin_queued && SEQ_GT(sk->snd_una, sk->fin_seq);
}

static void use_peer_mss(ss_stack *st, struct ss_pcb *sk, const struct ss_seg *seg)
{
    /* RFC 9293 3.7.1 (MUST-15): no option means 536; send MSS is the
     * smaller of theirs and ours, never more than the peer announced
     * (the RFC sets no floor; an MSS option of 0 reads as "absent"). */
    uint16_t m = seg->mss ? seg->mss : SS_STACK_DEFAULT_PEER_MSS;
    if (m > st->cfg.mss)
        m = st->cfg.mss;
    sk->snd_mss = m;
}

static void update_window(ss_stack *st, struct ss_pcb *sk, const struct ss_seg *seg)
{
    uint32_t wnd = ss__opt_snd_wnd(sk, seg);   /* scaled (RFC 7323 2.3) */
    if (sk->snd_wnd != wnd)
        ss__trace_win(st, sk, false, sk->snd_wnd, wnd);
    sk->snd_wnd = wnd;
    sk->snd_wl1 = seg->seq;
    sk->snd_wl2 = seg->ack;
    if (sk->snd_wnd > sk->max_snd_wnd)
        sk->max_snd_wnd = sk->snd_wnd;
    if (sk->snd_wnd > 0 && sk->t_persist != SS_NEVER) {
        sk->t_persist = SS_NEVER;
        sk->persist_backoff = 0;
        /* The probe byte went beyond the closed window, it was never in
         * flight: the first segment of the open window sends it as new
         * data, timed (RFC 6298) and not counted as a retransmission. */
        if (sk->snd_nxt == sk->snd_una && sk->snd_max == sk->snd_una + 1) {
            sk->snd_max = sk->snd_una;
            sk->bytes_out--;   /* counted again when it goes */
        }
        if (sk->snd_max != sk->snd_una && sk->t_rtx == SS_NEVER)
            ss__tcp_arm_rtx(st, sk);
    }
}

/* ---- CLOSED (3.10.7.1) ---------------------------------------------------- */
static void closed_state(ss_stack *st, const struct ss_seg *seg)
{
    st->stats.tcp_no_socket++;
    drop_seg(st, NULL, seg, SS_DROP_TCP_NO_SOCKET);
    ss__tcp_send_rst_for(st, seg);
}

/* ---- LISTEN (3.10.7.2) ---------------------------------------------------- */
void ss__tcp_passive_tcb(ss_stack *st, struct ss_pcb *sk, const struct ss_seg *syn, uint32_t iss)
{
    /* Third (SYN): RCV.NXT = SEG.SEQ+1, IRS = SEG.SEQ, ISS selected,
     * SND.NXT = ISS+1 once <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> is sent.
     * Data on the SYN is not queued (it will be retransmitted). */
    sk->laddr = syn->dst;
    sk->lport = syn->dport;
    sk->raddr = syn->src;
    sk->rport = syn->sport;
    sk->irs = syn->seq;
    sk->rcv_nxt = syn->seq + 1;
    sk->rcv_adv = sk->rcv_nxt;
    sk->iss = iss;
    sk->snd_una = sk->snd_nxt = sk->snd_max = iss;
    sk->snd_wnd = syn->wnd;
    sk->max_snd_wnd = syn->wnd;
    sk->snd_wl1 = syn->seq;
    sk->snd_wl2 = iss;
    use_peer_mss(st, sk, syn);
    ss__opt_syn_out(st, sk);
    ss__opt_syn_in(st, sk, syn);   /* WS, TS, SACK: what the SYN offers */
    sk->last_rcv = st->now;
}

/* Returns the connection the segment goes on in (a handshake completed by
 * it: tcp_synq.c), or NULL when LISTEN dealt with it. */
static struct ss_pcb *listen_state(ss_stack *st, struct ss_pcb *ls, const struct ss_seg *seg)
{
    struct ss_pcb *conn;
    if (ss__synq_input(st, ls, seg, &conn))   /* a half-open entry's, or a cookie */
        return conn;
    if (seg->flags & SS_TCP_RST)      /* first: an incoming RST is ignored */
        return NULL;
    if (seg->flags & SS_TCP_ACK) {    /* second: any ACK gets <SEQ=SEG.ACK><CTL=RST> */
        drop_seg(st, ls, seg, SS_DROP_TCP_BAD_ACK);
        ss__tcp_send_rst_for(st, seg);
        return NULL;
    }
    if (!(seg->flags & SS_TCP_SYN)) { /* fourth: anything else is dropped */
        drop_seg(st, ls, seg, SS_DROP_TCP_NO_FLAGS);
        return NULL;
    }
    /* Third (SYN): a half-open entry and our SYN,ACK (or a cookie, or a
     * drop when the SYN queue is full): tcp_synq.c. */
    ss__synq_syn(st, ls, seg);
    return NULL;
}

/* ---- SYN-SENT (3.10.7.3) -------------------------------------------------- */
static void established(ss_stack *st, struct ss_pcb *sk)
{
    ss__set_state(st, sk, SS_TCP_ESTABLISHED);
    /* RFC 6298 (5.7): our SYN (or SYN,ACK) timed out and no RTT sample
     * was taken: data transfer starts with an RTO of 3 s, not the
     * backed-off one (Linux: TCP_TIMEOUT_FALLBACK). */
    if (sk->timeouts && !sk->rtt_valid) {
        sk->rto_us = ss__min32(SS_STACK_RTO_SYN_FALLBACK_MS, st->cfg.rto_max_ms) * 1000u;
        ss__trace_rtt(st, sk, 0);
    }
    ss__tcp_keep_reset(st, sk);
    if (sk->passive)
        ss__tcp_established_child(st, sk);
    else
        ss__stack_sock_event(st, sk, SS_EV_CONNECTED | SS_EV_WRITABLE, 0);
    /* A close queued while opening: RFC 9293 3.10.4, now FIN-WAIT-1. */
    if (sk->fin_queued)
        ss__set_state(st, sk, SS_TCP_FIN_WAIT_1);
}

static void syn_sent_state(ss_stack *st, struct ss_pcb *sk, const struct ss_seg *seg)
{
    bool ack_ok = false;
    /* first: the ACK must acknowledge our SYN and nothing more */
    if (seg->flags & SS_TCP_ACK) {
        if (SEQ_LEQ(seg->ack, sk->iss) || SEQ_GT(seg->ack, sk->snd_max)) {
            drop_seg(st, sk, seg, SS_DROP_TCP_BAD_ACK);
            ss__tcp_send_rst_for(st, seg);   /* unless RST: checked inside */
            return;
        }
        ack_ok = SEQ_LEQ(sk->snd_una, seg->ack) && SEQ_LEQ(seg->ack, sk->snd_max);
    }
    /* second: RST with an acceptable ACK refuses the connection */
    if (seg->flags & SS_TCP_RST) {
        st->stats.tcp_rst_in++;
        if (ack_ok)
            connection_error(st, sk, -ECONNREFUSED);
        else
            drop_seg(st, sk, seg, SS_DROP_TCP_RST_INVALID);
        return;
    }
    /* fourth: SYN */
    if (!(seg->flags & SS_TCP_SYN)) {
        drop_seg(st, sk, seg, SS_DROP_TCP_NO_FLAGS);
        return;
    }
    sk->irs = seg->seq;
    sk->rcv_nxt = seg->seq + 1;
    sk->rcv_adv = sk->rcv_nxt;
    use_peer_mss(st, sk, seg);
    ss__opt_syn_in(st, sk, seg);   /* what both SYNs carry is in use */
    if (ack_ok) {
        sk->snd_una = seg->ack;
        if (ss__ts_rtt(st, sk, seg))
            ;   /* RTTM from the echo of our SYN's TSval */
        else if (sk->rtt_timing)   /* Karn: only an unretransmitted SYN */
            ss__tcp_rtt_sample(st, sk, (uint32_t)st->now - sk->rtt_start);
        sk->rtt_timing = false;
        sk->backoff = 0;
        sk->t_rtx = SS_NEVER;
    }
    sk->max_snd_wnd = 0;
    update_window(st, sk, seg);
    sk->ack_now = true;
    if (SEQ_GT(sk->snd_una, sk->iss)) {
        established(st, sk);    /* <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> follows */
    } else {
        /* Simultaneous open: SYN-RECEIVED, <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>. */
        ss__set_state(st, sk, SS_TCP_SYN_RECEIVED);
        sk->snd_nxt = sk->iss;
        sk->t_rtx = SS_NEVER;
        sk->synack_first = true;
    }
}

/* ---- synchronized states (3.10.7.4) -------------------------------------- */

/* first: is the segment acceptable? (the table of 3.10.7.4); trims it to
 * the window. Returns DONE when the segment is to be dropped. */
static enum verdict check_sequence(ss_stack *st, struct ss_pcb *sk, struct ss_seg *seg)
{
    uint32_t wnd = SEQ_GT(sk->rcv_adv, sk->rcv_nxt) ? sk->rcv_adv - sk->rcv_nxt : 0;
    uint32_t slen = ss__seg_seqlen(seg);
    uint32_t nxt = sk->rcv_nxt;
    bool ok;
    if (slen == 0 && wnd == 0)
        ok = seg->seq == nxt;
    else if (slen == 0)
        ok = SEQ_IN(seg->seq, nxt, nxt + wnd);
    else if (wnd == 0)
        ok = false;
    else
        ok = SEQ_IN(seg->seq, nxt, nxt + wnd) || SEQ_IN(seg->seq + slen - 1, nxt, nxt + wnd);

    if (!ok && wnd == 0 && seg->seq == nxt && !(seg->flags & SS_TCP_SYN)) {
        /* Zero window: still take valid ACKs and RSTs (3.10.7.4, MUST-66);
         * the text and FIN are dropped, and the ACK we owe tells a
         * probing peer that the window is still closed. */
        if (seg->len || (seg->flags & SS_TCP_FIN)) {
            st->stats.tcp_unacceptable++;
            drop_seg(st, sk, seg, SS_DROP_TCP_UNACCEPTABLE);
            sk->ack_now = true;
        }
        seg->len = 0;
        seg->flags &= (uint8_t)~SS_TCP_FIN;
        return CONTINUE;
    }
    if (!ok) {
        st->stats.tcp_unacceptable++;
        drop_seg(st, sk, seg, SS_DROP_TCP_UNACCEPTABLE);
        if (seg->flags & SS_TCP_RST)
            return DONE;
        if (slen && SEQ_LEQ(seg->seq + slen, nxt))
            st->stats.tcp_dup_data++;
        /* SYN-RECEIVED and the peer resent its SYN: our SYN,ACK got lost. */
        if (sk->state == SS_TCP_SYN_RECEIVED && (seg->flags & SS_TCP_SYN) &&
            seg->seq == sk->irs && !(seg->flags & SS_TCP_ACK)) {
            sk->snd_nxt = sk->iss;
            ss__tcp_output(st, sk);
            return DONE;
        }
        /* TIME-WAIT: a retransmitted FIN restarts the 2 MSL timer. */
        if (sk->state == SS_TCP_TIME_WAIT && (seg->flags & SS_TCP_FIN))
            sk->t_2msl = st->now + ss__2msl_us(st);
        sk->ack_now = true;   /* <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, at the end */
        return DONE;
    }
    /* Trim what is before RCV.NXT (duplicate) and beyond the window. */
    if (SEQ_LT(seg->seq, nxt)) {
        uint32_t cut = nxt - seg->seq;
        if (seg->flags & SS_TCP_SYN) {
            seg->flags &= (uint8_t)~SS_TCP_SYN;
            cut--;
            seg->seq++;
        }
        if (cut > seg->len)
            cut = seg->len;
        if (cut)
            st->stats.tcp_dup_data++;
        seg->data += cut;
        seg->len -= cut;
        seg->seq += cut;
    }
    uint32_t right = nxt + wnd;
    if (SEQ_GT(seg->seq + seg->len, right)) {
        seg->len = SEQ_GT(right, seg->seq) ? right - seg->seq : 0;
        seg->flags &= (uint8_t)~SS_TCP_FIN;
    }
    return CONTINUE;
}

/* Before the sequence check (RFC 7323 5.3): once timestamps are in use,
 * a non-RST segment without one is dropped silently (RFC 7323 3.2), and
 * one with an old TSval (PAWS, R1) is dropped with an ACK. */
static enum verdict check_timestamp(ss_stack *st, struct ss_pcb *sk, const struct ss_seg *seg)
{
    if (!sk->ts_ok || (seg->flags & SS_TCP_RST))
        return CONTINUE;
    bool old = ss__ts_paws(st, sk, seg);
    if (seg->has_ts && !old)
        return CONTINUE;
    st->stats.tcp_paws_dropped++;
    drop_seg(st, sk, seg, SS_DROP_TCP_PAWS);
    if (old)
        sk->ack_now = true;   /* <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, at the end */
    return DONE;
}

/* second: RST. RFC 5961 3.2: exact RCV.NXT resets; elsewhere in the window
 * earns a challenge ACK. */
static enum verdict check_rst(ss_stack *st, struct ss_pcb *sk, const struct ss_seg *seg,
                              uint32_t orig_seq)
{
    if (!(seg->flags & SS_TCP_RST))
        return CONTINUE;
    st->stats.tcp_rst_in++;
    /* RFC 1337 (TH1): cfg.rfc1337 ignores every RST in TIME-WAIT, so an
     * old RST cannot end it early. Off by default, as Linux' tcp_rfc1337:
     * a valid RST then ends TIME-WAIT (RFC 9293 3.10.7.4). */
    if (sk->state == SS_TCP_TIME_WAIT && st->cfg.rfc1337) {
        drop_seg(st, sk, seg, SS_DROP_TCP_RST_INVALID);
        return DONE;
    }
    if (orig_seq != sk->rcv_nxt) {
        challenge_ack(st, sk, seg);
        return DONE;
    }
    switch (sk->state) {
    case SS_TCP_SYN_RECEIVED:
        if (sk->passive) {       /* passive OPEN: back to LISTEN (the child goes) */
            sk->user = false;
            ss__tcp_drop(st, sk, 0);
        } else {
            connection_error(st, sk, -ECONNREFUSED);
        }
        break;
    case SS_TCP_ESTABLISHED:
    case SS_TCP_FIN_WAIT_1:
    case SS_TCP_FIN_WAIT_2:
    case SS_TCP_CLOSE_WAIT:
        st->stats.tcp_estab_resets++;
        connection_error(st, sk, -ECONNRESET);
        break;
    default:                     /* CLOSING, LAST-ACK, TIME-WAIT: just close */
        ss__tcp_drop(st, sk, 0);
        break;
    }
    return DONE;
}

/* fourth: SYN in a synchronized state. */
static enum verdict check_syn(ss_stack *st, struct ss_pcb *sk, const struct ss_seg *seg)
{
    if (!(seg->flags & SS_TCP_SYN))
        return CONTINUE;
    if (sk->state == SS_TCP_SYN_RECEIVED && sk->passive) {
        /* passive OPEN: return to LISTEN */
        sk->user = false;
        ss__tcp_drop(st, sk, 0);
        return DONE;
    }
    /* RFC 9293 3.10.7.4 fourth / RFC 5961 4.2: a challenge ACK, whatever
     * the sequence number; the connection is not reset. */
    challenge_ack(st, sk, seg);
    return DONE;
}

/* SND.UNA < SEG.ACK =< SND.NXT: new data (or our FIN) acknowledged
 * (3.10.7.4 fifth, ESTABLISHED): free the send buffer, take an RTT sample,
 * restart or stop the retransmission timer (RFC 6298 5.2, 5.3). */
static void new_ack(ss_stack *st, struct ss_pcb *sk, const struct ss_seg *seg)
{
    uint32_t acked = seg->ack - sk->snd_una;
    bool fin_now_acked = sk->fin_queued && SEQ_GT(seg->ack, sk->fin_seq);
    uint32_t data = acked - (fin_now_acked ? 1 : 0);
    if (data > sk->snd.len)
        data = sk->snd.len;
    ss__ring_consume(&sk->snd, data);
    if (!sk->snd.len)
        ss__sock_ring_idle(st, sk);
    sk->snd_una = seg->ack;
    if (sk->snd_up_valid && SEQ_GEQ(sk->snd_una, sk->sx->snd_up))
        sk->snd_up_valid = false;   /* the urgent data is delivered */
    if (SEQ_LT(sk->snd_nxt, sk->snd_una))
        sk->snd_nxt = sk->snd_una;
    /* RFC 7323 4.1: with timestamps, every ACK of new data gives a
     * sample. Else RFC 6298: sample from the timed segment (never a
     * retransmitted one: Karn, rtt_timing was cleared on retransmission). */
    if (sk->ts_ok) {
        ss__ts_rtt(st, sk, seg);
        sk->rtt_timing = false;
    } else if (sk->rtt_timing && SEQ_GT(seg->ack, sk->rtt_seq)) {
        sk->rtt_timing = false;
        ss__tcp_rtt_sample(st, sk, (uint32_t)st->now - sk->rtt_start);
    }
    sk->backoff = 0;
    /* (5.2) all acked: stop the timer; (5.3) else restart it. */
    if (sk->snd_una == sk->snd_max)
        sk->t_rtx = SS_NEVER;
    else if (sk->t_persist == SS_NEVER)
        ss__tcp_arm_rtx(st, sk);
    ss__cc_on_ack(st, sk, acked);
    ss__tcp_arm_tlp(st, sk);   /* RFC 8985 7.2: on an ACK of new data */
    if (data && sk->user)
        ss__stack_sock_event(st, sk, SS_EV_WRITABLE, 0);
}

/* fifth, SYN-RECEIVED: SND.UNA < SEG.ACK =< SND.NXT completes the
 * handshake (ESTABLISHED, and go on processing); otherwise
 * <SEQ=SEG.ACK><CTL=RST>. */
static enum verdict synrcvd_ack(ss_stack *st, struct ss_pcb *sk, const struct ss_seg *seg)
{
    if (!(SEQ_LT(sk->snd_una, seg->ack) && SEQ_LEQ(seg->ack, sk->snd_max))) {
        drop_seg(st, sk, seg, SS_DROP_TCP_BAD_ACK);
        ss__tcp_send_rst_for(st, seg);
        return DONE;
    }
    sk->snd_una = seg->ack;
    if (ss__ts_rtt(st, sk, seg))
        ;   /* RTTM from the echo of our SYN,ACK's TSval */
    else if (sk->rtt_timing)   /* Karn: cleared if the SYN,ACK was retransmitted */
        ss__tcp_rtt_sample(st, sk, (uint32_t)st->now - sk->rtt_start);
    sk->rtt_timing = false;
    sk->backoff = 0;
    sk->t_rtx = SS_NEVER;
    update_window(st, sk, seg);
    if (sk->snd_nxt == sk->iss)
        sk->snd_nxt = sk->iss + 1;
    established(st, sk);
    return CONTINUE;
}

/* fifth, the closing states: what the acknowledgment of our FIN does. */
static enum verdict closing_ack(ss_stack *st, struct ss_pcb *sk)
{
    switch (sk->state) {
    case SS_TCP_FIN_WAIT_1:   /* FIN acknowledged: FIN-WAIT-2 */
        if (our_fin_acked(sk)) {
            ss__set_state(st, sk, SS_TCP_FIN_WAIT_2);
            if (!sk->user)   /* orphaned: do not wait for the peer forever */
                sk->t_2msl = st->now + ss__2msl_us(st);
        }
        return CONTINUE;
    case SS_TCP_CLOSING:      /* FIN acknowledged: TIME-WAIT; else ignore */
        if (our_fin_acked(sk))
            enter_time_wait(st, sk);
        return DONE;
    case SS_TCP_LAST_ACK:     /* FIN acknowledged: delete the TCB */
        if (our_fin_acked(sk)) {
            ss__tcp_drop(st, sk, 0);
            return DONE;
        }
        return CONTINUE;
    default:                  /* TIME-WAIT: a retransmitted FIN, see eighth */
        return CONTINUE;
    }
}

/* RFC 5681 2 (without SACK): a duplicate ACK (a) acknowledges outstanding
 * data, (b) carries no data, (c) has neither SYN nor FIN, (d) SEG.ACK == SND.UNA,
 * (e) repeats the last advertised window. A zero window is flow control,
 * not loss: its ACKs (answers to probes) never count. */
static bool is_dupack(const struct ss_pcb *sk, const struct ss_seg *seg)
{
    return sk->snd_max != sk->snd_una && seg->len == 0 &&
           !(seg->flags & (SS_TCP_SYN | SS_TCP_FIN)) && seg->ack == sk->snd_una &&
           ss__opt_snd_wnd(sk, seg) == sk->snd_wnd && sk->snd_wnd != 0;
}

/* fifth: ACK. */
static enum verdict check_ack(ss_stack *st, struct ss_pcb *sk, const struct ss_seg *seg)
{
    if (!(seg->flags & SS_TCP_ACK)) {
        drop_seg(st, sk, seg, SS_DROP_TCP_NO_FLAGS);
        return DONE;
    }
    if (sk->state == SS_TCP_SYN_RECEIVED && synrcvd_ack(st, sk, seg) == DONE)
        return DONE;
    /* RFC 5961 5.2: acceptable if SND.UNA - MAX.SND.WND <= SEG.ACK <= SND.NXT. */
    if (SEQ_GT(seg->ack, sk->snd_max)) {
        drop_seg(st, sk, seg, SS_DROP_TCP_BAD_ACK);
        sk->ack_now = true;
        return DONE;
    }
    if (SEQ_LT(seg->ack, sk->snd_una - sk->max_snd_wnd)) {
        drop_seg(st, sk, seg, SS_DROP_TCP_BAD_ACK);
        challenge_ack(st, sk, seg);
        return DONE;
    }
    /* The scoreboard first: RFC 6675 Update(). With SACK, RFC 6675 2
     * counts an ACK as a duplicate when it SACKs new octets, whatever its
     * window or data, and even when it also moves SND.UNA (after the
     * cumulative ACK has reset DupAcks, step (1)). */
    uint32_t una = sk->snd_una, sacked = ss__sack_sacked_bytes(sk);
    bool fresh = ss__sack_update(st, sk, seg);
    if (SEQ_GT(seg->ack, sk->snd_una)) {
        new_ack(st, sk, seg);
        if (fresh && sk->snd_max != sk->snd_una)
            ss__cc_on_dupack(st, sk);
    } else if (sk->sack_ok ? fresh && sk->snd_max != sk->snd_una : is_dupack(sk, seg)) {
        ss__cc_on_dupack(st, sk);
    }
    /* RFC 6937 DeliveredData: SND.UNA's advance plus the change in
     * SACKed bytes (which falls when the cumulative ACK covers them). */
    int64_t delivered = (int64_t)(sk->snd_una - una) + ss__sack_sacked_bytes(sk) - sacked;
    ss__cc_on_delivered(st, sk, delivered > 0 ? (uint32_t)delivered : 0);
    ss__cc_rack_arm(st, sk);
    if (sk->tlp_on)
        ss__cc_tlp_ack(st, sk, seg);
    /* Window update (3.10.7.4 fifth, ESTABLISHED): if SND.UNA =< SEG.ACK,
     * from a newer segment, or the same one acknowledging more. */
    if (SEQ_LEQ(sk->snd_una, seg->ack) &&
        (SEQ_LT(sk->snd_wl1, seg->seq) ||
         (sk->snd_wl1 == seg->seq && SEQ_LEQ(sk->snd_wl2, seg->ack))))
        update_window(st, sk, seg);
    return closing_ack(st, sk);
}

static void receive_fin(ss_stack *st, struct ss_pcb *sk)
{
    sk->rcv_nxt++;
    sk->fin_rcvd = true;
    sk->ooo_fin = false;
    sk->ack_now = true;
    ss__stack_sock_event(st, sk, SS_EV_READABLE | SS_EV_RDHUP, 0);
    switch (sk->state) {
    case SS_TCP_SYN_RECEIVED:
    case SS_TCP_ESTABLISHED:
        ss__set_state(st, sk, SS_TCP_CLOSE_WAIT);
        break;
    case SS_TCP_FIN_WAIT_1:
        if (our_fin_acked(sk))
            enter_time_wait(st, sk);
        else
            ss__set_state(st, sk, SS_TCP_CLOSING);
        break;
    case SS_TCP_FIN_WAIT_2:
        enter_time_wait(st, sk);
        break;
    case SS_TCP_TIME_WAIT:
        sk->t_2msl = st->now + ss__2msl_us(st);
        break;
    default:
        break;
    }
}

/* sixth: URG (RFC 9293 3.10.7.4). RCV.UP <- max(RCV.UP, SEG.SEQ+SEG.UP);
 * tell the application when it moves ahead of what it has read. The data
 * itself is delivered in line. seq is the segment's sequence number as it
 * arrived (the pointer is relative to it). */
static void check_urg(ss_stack *st, struct ss_pcb *sk, const struct ss_seg *seg, uint32_t seq)
{
    if (!(seg->flags & SS_TCP_URG) || seg->urp == 0)
        return;
    if (sk->state != SS_TCP_ESTABLISHED && sk->state != SS_TCP_FIN_WAIT_1 &&
        sk->state != SS_TCP_FIN_WAIT_2)
        return;
    uint32_t up = seq + seg->urp;
    if ((sk->rcv_up_valid && SEQ_LEQ(up, sk->sx->rcv_up)) || !ss__sx_take(sk))
        return;   /* (without memory the pointer is not kept: the data is in line) */
    sk->sx->rcv_up = up;
    sk->rcv_up_valid = true;
    uint32_t read_seq = sk->rcv_nxt - sk->rcv.len;
    if (SEQ_GT(up, read_seq))
        ss__stack_sock_event(st, sk, SS_EV_URGENT, 0);
}

/* Record an out-of-order range (already written into the ring), merging
 * with neighbours. The table is allocated at the first hole (given back
 * idle) and doubles while it is full, up to max ranges. Returns false
 * when it is full at max, or cannot grow. */
static bool ooo_insert(struct ss_pcb *sk, uint32_t start, uint32_t end, uint32_t max)
{
    if (!max || !ss__sx_own(sk))
        return false;   /* no table (as full at max): the segment is dropped */
    uint32_t stamp = ++sk->sx->ooo_clock;   /* this range took the latest segment */
    for (uint32_t i = 0; i < sk->sx->ooo_n; i++) {
        struct ss_ooo *o = &sk->sx->ooo[i];
        if (SEQ_LEQ(start, o->end) && SEQ_LEQ(o->start, end)) {
            o->stamp = stamp;
            if (SEQ_LT(start, o->start))
                o->start = start;
            if (SEQ_GT(end, o->end))
                o->end = end;
            /* The grown range may now touch others: fold them in. */
            for (uint32_t j = 0; j < sk->sx->ooo_n;) {
                struct ss_ooo *p = &sk->sx->ooo[j];
                if (j != i && SEQ_LEQ(o->start, p->end) && SEQ_LEQ(p->start, o->end)) {
                    if (SEQ_LT(p->start, o->start))
                        o->start = p->start;
                    if (SEQ_GT(p->end, o->end))
                        o->end = p->end;
                    *p = sk->sx->ooo[--sk->sx->ooo_n];
                    if (i == sk->sx->ooo_n)
                        i = j, o = &sk->sx->ooo[i];
                    o->stamp = stamp;
                    continue;
                }
                j++;
            }
            return true;
        }
    }
    if (sk->sx->ooo_n >= sk->sx->ooo_cap) {
        if (sk->sx->ooo_cap >= max)
            return false;
        uint32_t cap = sk->sx->ooo_cap ? 2u * sk->sx->ooo_cap : SS_STACK_OOO_MIN;
        cap = cap < max ? cap : max;
        struct ss_ooo *no = realloc(sk->sx->ooo, cap * sizeof *no);
        if (!no)
            return false;
        sk->sx->ooo = no;
        sk->sx->ooo_cap = (uint16_t)cap;
    }
    sk->sx->ooo[sk->sx->ooo_n++] = (struct ss_ooo){start, end, stamp};
    return true;
}

/* After RCV.NXT advanced: take in every queued range it reached. */
static void ooo_advance(struct ss_pcb *sk)
{
    bool moved = true;
    while (moved) {
        moved = false;
        for (uint32_t i = 0; i < sk->sx->ooo_n; i++) {
            struct ss_ooo *o = &sk->sx->ooo[i];
            if (SEQ_LEQ(o->start, sk->rcv_nxt)) {
                if (SEQ_GT(o->end, sk->rcv_nxt)) {
                    sk->rcv.len += o->end - sk->rcv_nxt;
                    sk->bytes_in += o->end - sk->rcv_nxt;
                    sk->rcv_nxt = o->end;
                }
                sk->sx->ooo[i] = sk->sx->ooo[--sk->sx->ooo_n];
                moved = true;
                break;
            }
        }
    }
}

/* seventh: segment text (ESTABLISHED, FIN-WAIT-1, FIN-WAIT-2). */
static void receive_text(ss_stack *st, struct ss_pcb *sk, const struct ss_seg *seg)
{
    if (seg->len == 0)
        return;
    if (sk->state != SS_TCP_ESTABLISHED && sk->state != SS_TCP_FIN_WAIT_1 &&
        sk->state != SS_TCP_FIN_WAIT_2)
        return;   /* after the peer's FIN: ignore */
    if (!sk->user && sk->parent < 0) {
        /* Data for a connection the application closed: nobody will read
         * it. Reset (RFC 1122 4.2.2.13; Linux does the same) instead of
         * letting the window close on a peer that waits forever. */
        ss__tcp_send_rst(st, sk);
        ss__tcp_drop(st, sk, 0);
        return;
    }
    uint32_t off = seg->seq - sk->rcv_nxt;   /* >= 0 after trimming */
    if (!ss__ring_reserve(st, &sk->rcv, sk->rcv.len + off + seg->len)) {
        /* No memory for what the window promised: drop it, as Linux does
         * under memory pressure; the peer retransmits. */
        st->stats.tcp_no_memory++;
        drop_seg(st, sk, seg, SS_DROP_TCP_NO_MEMORY);
        return;
    }
    ss__ring_poke(&sk->rcv, sk->rcv.len + off, seg->data, seg->len);
    if (off == 0) {
        bool had_ooo = sk->sx->ooo_n > 0;
        sk->rcv.len += seg->len;
        sk->rcv_nxt += seg->len;
        sk->bytes_in += seg->len;
        ooo_advance(sk);
        ss__stack_sock_event(st, sk, SS_EV_READABLE, 0);
        /* RFC 1122 4.2.3.2 / RFC 5681 4.2: ACK at least every second
         * full-sized segment, at once when a hole is filled, else within
         * delack_ms. */
        /* A segment the link coalesced (GRO) counts as the full-sized
         * segments it holds, so it is ACKed at once, as Linux does. */
        sk->unacked_segs += seg->len / ss__min32(sk->rcv_mss, sk->snd_mss);
        if (had_ooo || sk->unacked_segs >= 2)
            sk->ack_now = true;
        else if (sk->t_delack == SS_NEVER)
            sk->t_delack = st->now + (uint64_t)st->cfg.delack_ms * 1000;
    } else {
        st->stats.tcp_ooo_in++;
        if (!ooo_insert(sk, seg->seq, seg->seq + seg->len, st->cfg.ooo_max)) {
            st->stats.tcp_ooo_dropped++;
            drop_seg(st, sk, seg, SS_DROP_TCP_OOO_FULL);
        }
        sk->ack_now = true;   /* duplicate ACK tells the sender about the hole */
    }
}

static void synchronized(ss_stack *st, struct ss_pcb *sk, struct ss_seg *seg)
{
    /* Simultaneous open (RFC 9293 figure 8, line 6): the peer's SYN,ACK
     * repeats the SYN we already took; pass its ACK on without the SYN. */
    if (sk->state == SS_TCP_SYN_RECEIVED && !sk->passive &&
        (seg->flags & (SS_TCP_SYN | SS_TCP_ACK | SS_TCP_RST)) == (SS_TCP_SYN | SS_TCP_ACK) &&
        seg->seq + 1 == sk->rcv_nxt && seg->ack == sk->iss + 1) {
        seg->flags &= (uint8_t)~SS_TCP_SYN;
        seg->seq++;
    }
    uint32_t orig_seq = seg->seq;
    if (check_timestamp(st, sk, seg) == DONE)
        return;
    if (check_sequence(st, sk, seg) == DONE)
        return;
    ss__ts_update(st, sk, seg, orig_seq);   /* RFC 7323 5.3 R3 */
    if (check_rst(st, sk, seg, orig_seq) == DONE)
        return;
    if (check_syn(st, sk, seg) == DONE)
        return;
    if (check_ack(st, sk, seg) == DONE)
        return;
    if (sk->kind != SS_SK_TCP || sk->state == SS_TCP_CLOSED)
        return;
    check_urg(st, sk, seg, orig_seq);
    receive_text(st, sk, seg);
    if (sk->kind != SS_SK_TCP || sk->state == SS_TCP_CLOSED)
        return;
    /* eighth: FIN, only once everything before it has arrived */
    if (seg->flags & SS_TCP_FIN) {
        uint32_t fseq = seg->seq + seg->len;
        if (fseq == sk->rcv_nxt) {
            receive_fin(st, sk);
        } else if (SEQ_GT(fseq, sk->rcv_nxt) && ss__sx_own(sk)) {
            /* (without memory for it the FIN is not kept: sent again) */
            sk->ooo_fin = true;
            sk->sx->ooo_fin_seq = fseq;
        }
    }
    if (sk->ooo_fin && sk->sx->ooo_fin_seq == sk->rcv_nxt && !sk->fin_rcvd)
        receive_fin(st, sk);
}

/* ---- entry ---------------------------------------------------------------- */

/* A new SYN for a tuple in TIME-WAIT may reopen it (RFC 9293 3.6.1 MAY-2,
 * RFC 1122 4.2.2.13) when it cannot be an old duplicate, as RFC 6191
 * decides:
 *   - both incarnations with timestamps (the old one used them, the SYN
 *     offers them and we would accept them): SEG.TSval > TS.Recent, or
 *     equal with SEG.SEQ above the old RCV.NXT; PAWS guards the new
 *     connection from old segments, so the ISS does not matter;
 *   - otherwise by sequence numbers: SEG.SEQ above the old RCV.NXT, and
 *     the ISS the new connection gets above the largest sequence number
 *     the old one used (SND.MAX), so it cannot meet old segments.
 * Else the TIME-WAIT stays: it answers the SYN as any segment (the
 * sequence-number case) or drops it silently (the timestamp case, RFC
 * 6191 2). Not done: (2) of 3.6.1, going back to TIME-WAIT when the SYN
 * turns out to be an old duplicate (docs/rfc9293.md, MUST-13). */
enum tw_verdict { TW_KEEP, TW_REOPEN, TW_DROP };

static enum tw_verdict time_wait_reuse(ss_stack *st, const struct ss_pcb *sk,
                                       const struct ss_seg *seg)
{
    if (sk->ts_ok && seg->has_ts && (sk->opt_allow & SS_OPTF_TS)) {
        if (SEQ_GT(seg->ts_val, sk->ts_recent) ||
            (seg->ts_val == sk->ts_recent && SEQ_GT(seg->seq, sk->rcv_nxt)))
            return TW_REOPEN;
        return TW_DROP;
    }
    if (!SEQ_GT(seg->seq, sk->rcv_nxt))
        return TW_KEEP;
    uint32_t iss = ss__isn(st, sk->laddr, sk->lport, sk->raddr, sk->rport, st->now);
    return SEQ_GT(iss, sk->snd_max) ? TW_REOPEN : TW_KEEP;
}

void ss__tcp_input(ss_stack *st, const struct ss_ip *ip)
{
    st->stats.tcp_in++;
    const uint8_t *t = ip->payload;
    struct ss_seg seg = {.src = ip->src, .dst = ip->dst};
    if (ip->len < SS_TCP_HDR) {
        st->stats.tcp_bad_header++;
        drop_seg(st, NULL, &seg, SS_DROP_TCP_BAD_HEADER);
        return;
    }
    uint32_t s = ss__pseudo_sum(ip->src, ip->dst, SS_IPPROTO_TCP, (uint32_t)ip->len);
    if (!(st->rx_flags & SS_RX_CSUM_OK) && ss_csum_fold(ss_csum_add(s, t, ip->len)) != 0) {
        st->stats.tcp_bad_checksum++;
        drop_seg(st, NULL, &seg, SS_DROP_TCP_BAD_CHECKSUM);
        return;
    }
    if (ss__tcp_parse_header(t, ip->len, &seg) < 0) {
        st->stats.tcp_bad_header++;
        drop_seg(st, NULL, &seg, SS_DROP_TCP_BAD_HEADER);
        return;
    }
    if (seg.sport == 0 || seg.dport == 0) {
        st->stats.tcp_bad_header++;
        drop_seg(st, NULL, &seg, SS_DROP_TCP_BAD_HEADER);
        return;
    }

    struct ss_pcb *sk = ss__tcp_lookup(st, ip->dst, seg.dport, ip->src, seg.sport);
    if (sk && sk->state == SS_TCP_TIME_WAIT &&
        (seg.flags & (SS_TCP_SYN | SS_TCP_ACK | SS_TCP_RST)) == SS_TCP_SYN) {
        enum tw_verdict v = time_wait_reuse(st, sk, &seg);
        if (v == TW_DROP) {
            ss__trace_seg(st, sk, SS_TRACE_SEG_IN, &seg);
            st->stats.tcp_paws_dropped++;
            drop_seg(st, sk, &seg, SS_DROP_TCP_PAWS);
            return;
        }
        if (v == TW_REOPEN) {
            st->stats.tcp_tw_recycled++;
            ss__tcp_drop(st, sk, 0);
            sk = ss__tcp_lookup(st, ip->dst, seg.dport, ip->src, seg.sport);
        }
    }
    ss__trace_seg(st, sk && sk->state != SS_TCP_LISTEN ? sk : NULL, SS_TRACE_SEG_IN, &seg);
    if (!sk || sk->state == SS_TCP_CLOSED) {
        closed_state(st, &seg);
        return;
    }
    if (sk->state == SS_TCP_LISTEN) {
        sk = listen_state(st, sk, &seg);
        if (!sk)
            return;
    }
    sk->segs_in++;
    sk->last_rcv = st->now;
    ss__sock_touch(st, sk);   /* its timers may change: re-filed before the next poll */
    if (sk->state == SS_TCP_SYN_SENT)
        syn_sent_state(st, sk, &seg);
    else
        synchronized(st, sk, &seg);
    if (sk->kind == SS_SK_TCP && sk->state != SS_TCP_CLOSED) {
        /* Not only when the timer runs: FIN-WAIT-1 stops it, and the
         * FIN-WAIT-2 that follows needs it again (a peer that vanished). */
        if (sk->keepalive)
            ss__tcp_keep_reset(st, sk);
        if (st->batching)
            ss__tcp_defer_output(st, sk);   /* MUST-59: ACK after the whole batch */
        else
            ss__tcp_output(st, sk);
    }
}

void ss__tcp_icmp_error(ss_stack *st, int err, bool hard, const uint8_t *q, size_t qlen)
{
    size_t ihl = (size_t)(q[0] & 15) * 4;
    (void)qlen;
    uint32_t dst = ss__get32(q + 16);
    uint16_t sport = ss__get16(q + ihl), dport = ss__get16(q + ihl + 2);
    uint32_t seq = ss__get32(q + ihl + 4);
    struct ss_pcb *sk = ss__tcp_lookup(st, st->cfg.local_addr, sport, dst, dport);
    if (!sk || sk->state == SS_TCP_LISTEN || sk->state == SS_TCP_CLOSED)
        return;
    ss__sock_touch(st, sk);
    /* RFC 5927 4.1: the quoted seq must be in flight, SND.UNA =< SEQ <
     * SND.NXT (here SND.MAX); with nothing in flight, nothing is. */
    if (!SEQ_IN(seq, sk->snd_una, sk->snd_max))
        return;
    /* RFC 1122 4.2.3.9: hard errors (protocol/port unreachable) abort a
     * connection still opening; otherwise remember the error and report it
     * if the connection then times out (soft error). */
    if (hard && ss__tcp_opening(sk)) {
        connection_error(st, sk, err);
        return;
    }
    sk->soft_err = err;
}
