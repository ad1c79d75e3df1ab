/* tcp_timer: retransmission (RFC 6298), tail loss probe (RFC 8985 7),
 * persist (zero-window probe,
 * RFC 9293 3.8.6.1), delayed ACK (RFC 1122 4.2.3.2), keep-alive
 * (RFC 1122 4.2.3.6), TIME-WAIT 2*MSL (RFC 9293 3.10.8).
 *
 * Timers are absolute deadlines in the socket; ss_stack_poll() runs the
 * due ones and asks ss__tcp_next_deadline() when to come back. A timer
 * decides and marks; every segment, probes included, is built in
 * tcp_output.c.
 */
#include <errno.h>

#include "stack_int.h"

#define CLOCK_G_US 1000u   /* clock granularity G of RFC 6298 (2.x): 1 ms */

static uint32_t clamp_rto(const ss_stack *st, uint64_t rto)
{
    uint64_t lo = (uint64_t)st->cfg.rto_min_ms * 1000, hi = (uint64_t)st->cfg.rto_max_ms * 1000;
    return (uint32_t)(rto < lo ? lo : rto > hi ? hi : rto);
}

/* RFC 6298 (2.2) first sample, (2.3) later samples, (2.4)-(2.5) bounds. */
void ss__tcp_rtt_sample(ss_stack *st, struct ss_pcb *sk, uint64_t r)
{
    if (r > UINT32_MAX / 2)
        r = UINT32_MAX / 2;
    if (r == 0)
        r = 1;
    uint32_t R = (uint32_t)r;
    if (!sk->rtt_valid) {
        sk->srtt_us = R;
        sk->rttvar_us = R / 2;
        sk->rtt_valid = true;
    } else {
        uint32_t diff = sk->srtt_us > R ? sk->srtt_us - R : R - sk->srtt_us;
        sk->rttvar_us = (uint32_t)(((uint64_t)sk->rttvar_us * 3 + diff) / 4);
        sk->srtt_us = (uint32_t)(((uint64_t)sk->srtt_us * 7 + R) / 8);
    }
    uint64_t k = 4ull * sk->rttvar_us;
    sk->rto_us = clamp_rto(st, (uint64_t)sk->srtt_us + (k > CLOCK_G_US ? k : CLOCK_G_US));
    ss__cc_hystart_rtt(sk, R);
    ss__trace_rtt(st, sk, R);
}

/* (5.1)/(5.3): (re)start the retransmission timer with the current RTO. */
void ss__tcp_arm_rtx(ss_stack *st, struct ss_pcb *sk)
{
    sk->t_rtx = st->now + sk->rto_us;
    ss__sock_touch(st, sk);
}

/* RFC 8985 7.2 WCDelAckT: the worst-case delayed-ACK time of the peer. */
#define TLP_WC_DELACK_US 200000u

/* RFC 8985 7.2: (re)arm the PTO after new data went out or new data was
 * acknowledged, when SACK is on, the connection is not in recovery and
 * no probe is out. PTO = 2 SRTT (plus WCDelAckT when one segment is in
 * flight: its ACK may be delayed), 1 s without a sample; never later
 * than the RTO, which then comes first. */
void ss__tcp_arm_tlp(ss_stack *st, struct ss_pcb *sk)
{
    if (sk->reo_on && (sk->cc_phase == SS_CC_DISORDER || sk->cc_phase == SS_CC_RECOVERY))
        return;   /* RACK's reordering timer runs (tcp_cc.c set_reo) */
    sk->reo_on = false;
    sk->t_tlp = SS_NEVER;
    if (!st->cfg.tlp || !sk->sack_ok || !sk->cc_started || sk->cc_phase != SS_CC_OPEN ||
        sk->tlp_on || sk->snd_una == sk->snd_max || sk->t_rtx == SS_NEVER)
        return;
    uint64_t pto = 1000000;
    if (sk->rtt_valid) {
        pto = 2ull * sk->srtt_us;
        if (sk->snd_max - sk->snd_una <= sk->snd_mss)
            pto += TLP_WC_DELACK_US;
    }
    if (st->now + pto < sk->t_rtx)
        sk->t_tlp = st->now + pto;
}

static void on_tlp(ss_stack *st, struct ss_pcb *sk)
{
    sk->t_tlp = SS_NEVER;
    if (sk->reo_on) {
        ss__cc_reo_timeout(st, sk);
        return;
    }
    if (sk->cc_phase != SS_CC_OPEN || sk->tlp_on || sk->snd_una == sk->snd_max)
        return;
    ss__tcp_send_tlp(st, sk);
}

void ss__tcp_keep_reset(ss_stack *st, struct ss_pcb *sk)
{
    sk->keep_probes = 0;
    ss__sock_touch(st, sk);
    if (sk->kind != SS_SK_TCP || !sk->keepalive ||
        (sk->state != SS_TCP_ESTABLISHED && sk->state != SS_TCP_CLOSE_WAIT &&
         sk->state != SS_TCP_FIN_WAIT_2)) {
        sk->t_keep = SS_NEVER;
        return;
    }
    sk->t_keep = st->now + (uint64_t)sk->keep_idle_s * 1000000;
}

static void give_up(ss_stack *st, struct ss_pcb *sk)
{
    st->stats.tcp_timeouts++;
    /* A passive half-open connection just disappears (back to LISTEN);
     * everything else reports ETIMEDOUT (or the ICMP error seen). */
    if (sk->state == SS_TCP_SYN_RECEIVED && sk->passive) {
        sk->user = false;
        ss__tcp_drop(st, sk, 0);
        return;
    }
    int err = sk->soft_err ? sk->soft_err : -ETIMEDOUT;
    ss__tcp_drop(st, sk, err);
}

static void on_rtx(ss_stack *st, struct ss_pcb *sk)
{
    sk->t_rtx = SS_NEVER;
    sk->t_tlp = SS_NEVER;
    sk->tlp_on = false;   /* the RTO takes over from any probe */
    sk->reo_on = false;
    if (sk->snd_una == sk->snd_max)
        return;
    /* MUST-37 (RFC 9293 3.8.6.1): the peer shrank its window to zero with
     * data outstanding. The retransmissions now probe the window, and one
     * the peer answered (a segment arrived since the previous one went)
     * does not count towards R2: the connection stays open as long as the
     * peer answers. An orphan is not kept alive so (as Linux). */
    bool answered = sk->snd_wnd == 0 && !ss__tcp_opening(sk) && sk->user &&
                    st->now - sk->last_rcv <= sk->rto_us;
    if (!answered)
        sk->backoff++;
    sk->timeouts++;
    uint32_t limit = ss__tcp_opening(sk) ? st->cfg.syn_retries : sk->max_retries;
    if (sk->backoff > limit) {
        give_up(st, sk);
        return;
    }
    /* (5.5) back off the timer; (5.6) restart it; Karn: no sample from a
     * retransmitted segment. */
    sk->rto_us = clamp_rto(st, (uint64_t)sk->rto_us * 2);
    sk->rtt_timing = false;
    ss__trace_rtt(st, sk, 0);
    /* Mark what must be resent, as lwIP's tcp_rexmit_rto(): SND.NXT back
     * to SND.UNA (go-back-N within the loss window of one segment that
     * ss__cc_on_timeout() sets), and the first segment owed whatever the
     * peer's window (RFC 6298 (5.4)). ss__tcp_output() builds it; the
     * handshake's SYN is not data, so no loss window there. */
    sk->snd_nxt = sk->snd_una;
    if (!ss__tcp_opening(sk) && sk->snd_una != sk->iss) {
        ss__cc_on_timeout(st, sk);
        sk->rtx_mark = true;
        sk->rtx_seq = sk->snd_una;
    }
    ss__tcp_output(st, sk);
    ss__tcp_arm_rtx(st, sk);
}

/* Zero-window probe (built by tcp_output.c): one byte of new data beyond
 * the closed window, then the same byte again, with exponential backoff,
 * for as long as the peer answers (a probe is never counted as a
 * retransmission failure). */
static void on_persist(ss_stack *st, struct ss_pcb *sk)
{
    sk->t_persist = SS_NEVER;
    if (sk->snd_wnd != 0 || sk->snd.len == 0)
        return;
    ss__tcp_send_zwp(st, sk);
    if (sk->persist_backoff < 16)
        sk->persist_backoff++;
    uint64_t d = (uint64_t)sk->rto_us << sk->persist_backoff;
    sk->t_persist = st->now + ss__min64(d, (uint64_t)st->cfg.rto_max_ms * 1000);
}

static void on_keepalive(ss_stack *st, struct ss_pcb *sk)
{
    sk->t_keep = SS_NEVER;
    if (!sk->keepalive)
        return;
    if (sk->keep_probes >= sk->keep_cnt) {
        give_up(st, sk);
        return;
    }
    /* Only when idle: data in flight is covered by the retransmission
     * timer. */
    if (sk->snd_una == sk->snd_max) {
        ss__tcp_send_keepalive(st, sk);
        sk->keep_probes++;
    }
    sk->t_keep = st->now + (uint64_t)sk->keep_intvl_s * 1000000;
}

void ss__tcp_timers(ss_stack *st, struct ss_pcb *sk, uint64_t now)
{
    if (sk->state == SS_TCP_CLOSED || sk->state == SS_TCP_LISTEN)
        return;
    if (now >= sk->t_2msl) {
        /* TIME-WAIT over (or an orphaned FIN-WAIT-2 gave up): delete TCB. */
        sk->t_2msl = SS_NEVER;
        ss__tcp_drop(st, sk, 0);
        return;
    }
    if (now >= sk->t_rtx) {
        on_rtx(st, sk);
        if (sk->kind != SS_SK_TCP || sk->state == SS_TCP_CLOSED)
            return;
    }
    if (now >= sk->t_tlp)
        on_tlp(st, sk);
    if (now >= sk->t_persist)
        on_persist(st, sk);
    if (now >= sk->t_sws) {   /* SWS override: ss__tcp_output, next, sends the sliver */
        sk->t_sws = SS_NEVER;
        sk->sws_force = true;
    }
    if (now >= sk->t_delack) {
        sk->t_delack = SS_NEVER;
        ss__tcp_send_ack(st, sk);
    }
    if (now >= sk->t_keep) {
        on_keepalive(st, sk);
    }
}

uint64_t ss__tcp_next_deadline(const struct ss_pcb *sk)
{
    if (sk->state == SS_TCP_CLOSED || sk->state == SS_TCP_LISTEN)
        return SS_NEVER;
    uint64_t d = sk->t_rtx;
    d = ss__min64(d, sk->t_tlp);
    d = ss__min64(d, sk->t_persist);
    d = ss__min64(d, sk->t_sws);
    d = ss__min64(d, sk->t_delack);
    d = ss__min64(d, sk->t_keep);
    d = ss__min64(d, sk->t_2msl);
    return d;
}
