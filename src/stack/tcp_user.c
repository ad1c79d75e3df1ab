/* tcp_user: the TCP user calls of RFC 9293 3.10.1-3.10.5 (OPEN as
 * listen/connect, SEND, RECEIVE, CLOSE as shutdown/close, ABORT), the
 * way lwIP's tcp.c keeps them apart from segment processing. Each call
 * takes the caller's clock, does what the RFC's event processing says
 * for the connection's state, and lets tcp_output.c send what may go. */
#include <errno.h>
#include <string.h>

#include "stack_int.h"

int ss_tcp_listen(ss_stack *st, uint16_t port, int backlog)
{
    if (backlog < 1)
        backlog = 1;
    if ((uint32_t)backlog > st->cfg.syn_backlog)
        backlog = (int)st->cfg.syn_backlog;
    if (port == 0)
        port = ss__ephemeral_port(st, SS_SK_TCP);
    else if (ss__listener_on(st, port))
        return -EADDRINUSE;
    if (port == 0)
        return -EADDRINUSE;
    if (ss__port_reserve(st, port) < 0)
        return -ENOMEM;
    struct ss_pcb *sk = ss__stack_sock_alloc(st, SS_SK_TCP);
    if (!sk)
        return -EMFILE;
    sk->user = true;
    ss__port_hold(st, sk, port);
    sk->raddr = 0;
    sk->rport = 0;
    sk->backlog = backlog;
    ss__set_state(st, sk, SS_TCP_LISTEN);
    ss__sock_hash(st, sk);
    return sk->id;
}

int ss_tcp_accept(ss_stack *st, int lsd, uint32_t *raddr, uint16_t *rport)
{
    struct ss_pcb *ls = ss__stack_sock_get(st, lsd);
    if (!ls || ls->kind != SS_SK_TCP)
        return -EBADF;
    if (ls->state != SS_TCP_LISTEN)
        return -EINVAL;
    if (ls->accept_head < 0)
        return -EAGAIN;
    struct ss_pcb *sk = ss__sock_at(st, ls->accept_head);
    ss__tcp_unlink_from_listener(st, sk);
    sk->user = true;
    if (raddr)
        *raddr = sk->raddr;
    if (rport)
        *rport = sk->rport;
    return sk->id;
}

/* The checks of an active open, before any socket is touched; picks an
 * ephemeral port for lport 0. */
static int connect_check(ss_stack *st, uint32_t raddr, uint16_t rport, uint16_t *lport)
{
    if (rport == 0 || raddr == 0 || raddr == 0xffffffffu || (raddr >> 28) == 0xe)
        return -EINVAL;
    if (*lport == 0)
        *lport = ss__ephemeral_port(st, SS_SK_TCP);
    else if (ss__tcp_lookup(st, st->cfg.local_addr, *lport, raddr, rport) &&
             ss__tcp_lookup(st, st->cfg.local_addr, *lport, raddr, rport)->state != SS_TCP_LISTEN)
        return -EADDRINUSE;
    if (*lport == 0)
        return -EADDRINUSE;
    return ss__port_reserve(st, *lport);
}

/* RFC 9293 3.10.1 OPEN, CLOSED state: select an ISS, send SYN, SYN-SENT. */
static void open_active(ss_stack *st, struct ss_pcb *sk, uint64_t now_us, uint32_t raddr,
                        uint16_t rport, uint16_t lport)
{
    sk->unopened = false;
    ss__port_hold(st, sk, lport);
    sk->raddr = raddr;
    sk->rport = rport;
    ss__sock_hash(st, sk);
    sk->iss = ss__isn(st, sk->laddr, lport, raddr, rport, now_us);
    sk->snd_una = sk->snd_nxt = sk->snd_max = sk->iss;
    sk->rcv_adv = 0;
    ss__opt_syn_out(st, sk);
    st->stats.tcp_active_opens++;
    ss__set_state(st, sk, SS_TCP_SYN_SENT);
    ss__tcp_output(st, sk);
}

int ss_tcp_connect(ss_stack *st, uint64_t now_us, uint32_t raddr, uint16_t rport, uint16_t lport)
{
    st->now = now_us;
    int err = connect_check(st, raddr, rport, &lport);
    if (err < 0)
        return err;
    struct ss_pcb *sk = ss__stack_sock_alloc(st, SS_SK_TCP);
    if (!sk)
        return -EMFILE;
    sk->user = true;
    open_active(st, sk, now_us, raddr, rport, lport);
    return sk->id;
}

int ss_tcp_socket(ss_stack *st)
{
    struct ss_pcb *sk = ss__stack_sock_alloc(st, SS_SK_TCP);
    if (!sk)
        return -EMFILE;
    sk->user = true;
    sk->unopened = true;
    return sk->id;
}

int ss_tcp_connect_sd(ss_stack *st, uint64_t now_us, int sd, uint32_t raddr, uint16_t rport,
                      uint16_t lport)
{
    st->now = now_us;
    struct ss_pcb *sk = ss__stack_sock_get(st, sd);
    if (!sk || sk->kind != SS_SK_TCP)
        return -EBADF;
    if (!sk->unopened)
        return sk->state == SS_TCP_CLOSED ? -EINVAL : -EISCONN;
    int err = connect_check(st, raddr, rport, &lport);
    if (err < 0)
        return err;
    open_active(st, sk, now_us, raddr, rport, lport);
    return 0;
}

static struct ss_pcb *tcp_get(ss_stack *st, int sd)
{
    struct ss_pcb *sk = ss__stack_sock_get(st, sd);
    return sk && sk->kind == SS_SK_TCP ? sk : NULL;
}

/* Send what a user call made sendable, or with cfg.defer_user_output
 * leave it to the end of the input batch (a callback of its events) or to
 * the next ss_stack_poll. */
static void output_now_or_after_batch(ss_stack *st, struct ss_pcb *sk)
{
    if (st->batching || st->cfg.defer_user_output)
        ss__tcp_defer_output(st, sk);
    else
        ss__tcp_output(st, sk);
}

/* Queue what the send buffer takes, growing its ring as needed: the
 * bytes queued, 0 when the buffer is full, -ENOBUFS when the stack's
 * memory limit leaves no room at all. */
static ssize_t queue_send(ss_stack *st, struct ss_pcb *sk, const void *buf, size_t len)
{
    uint32_t want = ss__min32(len > UINT32_MAX ? UINT32_MAX : (uint32_t)len, ss__ring_free(&sk->snd));
    if (!want)
        return 0;
    if (!ss__ring_reserve(st, &sk->snd, sk->snd.len + want) && sk->snd.cap == sk->snd.len)
        return -ENOBUFS;
    return ss__ring_write(&sk->snd, buf, want);
}

ssize_t ss_tcp_send(ss_stack *st, uint64_t now_us, int sd, const void *buf, size_t len)
{
    st->now = now_us;
    struct ss_pcb *sk = tcp_get(st, sd);
    if (!sk)
        return -EBADF;
    if (sk->error)
        return sk->error;
    if (sk->state == SS_TCP_LISTEN)
        return -ENOTCONN;
    if (sk->state == SS_TCP_CLOSED)
        return -ENOTCONN;
    if (!ss__tcp_can_send(sk))
        return -EPIPE;
    if (len == 0)
        return 0;
    ssize_t n = queue_send(st, sk, buf, len);
    if (n <= 0)
        return n ? n : -EAGAIN;
    output_now_or_after_batch(st, sk);
    return n;
}

ssize_t ss_tcp_send_urgent(ss_stack *st, uint64_t now_us, int sd, const void *buf, size_t len)
{
    struct ss_pcb *sk = tcp_get(st, sd);
    if (!sk)
        return -EBADF;
    if (!ss__tcp_can_send(sk) || len == 0)
        return ss_tcp_send(st, now_us, sd, buf, len);
    if (!ss__sx_take(sk))
        return -ENOMEM;   /* no room for the urgent pointer */
    /* Queue first, then mark the end of what was queued as urgent. */
    ssize_t n = queue_send(st, sk, buf, len);
    if (n <= 0)
        return n ? n : sk->error ? sk->error : -EAGAIN;
    bool opening = ss__tcp_opening(sk);
    sk->sx->snd_up = sk->snd_una + sk->snd.len + (opening ? 1 : 0);
    sk->snd_up_valid = true;
    st->now = now_us;
    ss__tcp_output(st, sk);
    return n;
}

int ss_tcp_urgent(const ss_stack *st, int sd)
{
    struct ss_pcb *sk = ss__stack_sock_get(st, sd);
    if (!sk || sk->kind != SS_SK_TCP)
        return -EBADF;
    if (!sk->rcv_up_valid)
        return 0;
    uint32_t read_seq = sk->rcv_nxt - sk->rcv.len;
    return SEQ_GT(sk->sx->rcv_up, read_seq) ? (int)(sk->sx->rcv_up - read_seq) : 0;
}

/* RECEIVE with nothing to read: the pending error (once), 0 at the end of
 * the stream, else -EAGAIN. */
static int nothing_to_read(struct ss_pcb *sk)
{
    if (sk->error) {
        int e = sk->error;
        sk->error = 0;
        return e;
    }
    return sk->fin_rcvd || sk->state == SS_TCP_CLOSED ? 0 : -EAGAIN;
}

/* n bytes read: they leave the ring, and the window opens. */
static void consume_rcv(ss_stack *st, struct ss_pcb *sk, uint32_t n)
{
    ss__ring_consume(&sk->rcv, n);
    if (!sk->rcv.len)
        ss__sock_ring_idle(st, sk);
    /* Out-of-order bytes sit beyond rcv.len at offsets from the head:
     * the ring head moved, and so did they. Nothing else to adjust. */
    output_now_or_after_batch(st, sk);   /* window update if it opened enough */
}

ssize_t ss_tcp_recv(ss_stack *st, uint64_t now_us, int sd, void *buf, size_t len)
{
    st->now = now_us;
    struct ss_pcb *sk = tcp_get(st, sd);
    if (!sk)
        return -EBADF;
    if (sk->state == SS_TCP_LISTEN)
        return -ENOTCONN;
    uint32_t n = ss__min32(sk->rcv.len, len > UINT32_MAX ? UINT32_MAX : (uint32_t)len);
    if (n == 0)
        return nothing_to_read(sk);
    ss__ring_peek(&sk->rcv, 0, buf, n);
    consume_rcv(st, sk, n);
    return (ssize_t)n;
}

/* RECEIVE without a copy: the readable bytes where they lie in the receive
 * ring, one span or two when they wrap. */
int ss_tcp_recv_view(ss_stack *st, int sd, struct iovec out[2])
{
    struct ss_pcb *sk = tcp_get(st, sd);
    if (!sk)
        return -EBADF;
    if (sk->state == SS_TCP_LISTEN)
        return -ENOTCONN;
    if (!sk->rcv.len)
        return nothing_to_read(sk);
    return ss__ring_view(&sk->rcv, 0, sk->rcv.len, out);
}

ssize_t ss_tcp_recv_done(ss_stack *st, uint64_t now_us, int sd, size_t n)
{
    st->now = now_us;
    struct ss_pcb *sk = tcp_get(st, sd);
    if (!sk)
        return -EBADF;
    if (sk->state == SS_TCP_LISTEN)
        return -ENOTCONN;
    if (n > sk->rcv.len)
        return -EINVAL;
    if (n)
        consume_rcv(st, sk, (uint32_t)n);
    return (ssize_t)n;
}

/* SEND without a copy: room in the send ring for up to want bytes (grown
 * now, as ss_tcp_send grows it), one span or two when it wraps. The bytes
 * count once ss_tcp_send_commit says how many were written. */
int ss_tcp_send_view(ss_stack *st, int sd, size_t want, struct iovec out[2])
{
    struct ss_pcb *sk = tcp_get(st, sd);
    if (!sk)
        return -EBADF;
    if (sk->error)
        return sk->error;
    if (sk->state == SS_TCP_LISTEN || sk->state == SS_TCP_CLOSED)
        return -ENOTCONN;
    if (!ss__tcp_can_send(sk))
        return -EPIPE;
    if (!want)
        return -EINVAL;
    uint32_t room = ss__min32(want > UINT32_MAX ? UINT32_MAX : (uint32_t)want,
                              ss__ring_free(&sk->snd));
    if (!room)
        return -EAGAIN;
    if (!ss__ring_reserve(st, &sk->snd, sk->snd.len + room)) {
        room = sk->snd.cap - sk->snd.len;   /* the stack's memory limit */
        if (!room)
            return -ENOBUFS;
    }
    return ss__ring_view(&sk->snd, sk->snd.len, room, out);
}

ssize_t ss_tcp_send_commit(ss_stack *st, uint64_t now_us, int sd, size_t n)
{
    st->now = now_us;
    struct ss_pcb *sk = tcp_get(st, sd);
    if (!sk)
        return -EBADF;
    if (sk->error)
        return sk->error;
    if (!ss__tcp_can_send(sk) || sk->state == SS_TCP_LISTEN || sk->state == SS_TCP_CLOSED)
        return -EPIPE;
    if (n > ss__min32(ss__ring_free(&sk->snd), sk->snd.cap - sk->snd.len))
        return -EINVAL;
    if (!n)
        return 0;
    sk->snd.len += (uint32_t)n;
    output_now_or_after_batch(st, sk);
    return (ssize_t)n;
}

int ss_tcp_shutdown(ss_stack *st, uint64_t now_us, int sd)
{
    st->now = now_us;
    struct ss_pcb *sk = tcp_get(st, sd);
    if (!sk)
        return -EBADF;
    switch (sk->state) {
    case SS_TCP_LISTEN:
    case SS_TCP_CLOSED:
        return -ENOTCONN;
    case SS_TCP_SYN_SENT:
        /* RFC 9293 3.10.4: in SYN-SENT, a CLOSE deletes the TCB. We keep
         * it simple: queue the FIN for after the handshake. */
    case SS_TCP_SYN_RECEIVED:
    case SS_TCP_ESTABLISHED:
    case SS_TCP_CLOSE_WAIT:
        if (!sk->fin_queued) {
            sk->fin_queued = true;
            /* The FIN follows the last queued byte; before the handshake
             * completes SND.UNA is still ISS (the SYN), data starts at ISS+1. */
            sk->fin_seq = sk->snd_una + sk->snd.len + (ss__tcp_opening(sk) ? 1 : 0);
        }
        /* RFC 9293 3.10.4 CLOSE: ESTABLISHED -> FIN-WAIT-1,
         * CLOSE-WAIT -> LAST-ACK; SYN-RECEIVED with nothing queued sends its
         * FIN now (FIN-WAIT-1), else after ESTABLISHED, like SYN-SENT. */
        if (sk->state == SS_TCP_ESTABLISHED ||
            (sk->state == SS_TCP_SYN_RECEIVED && sk->snd.len == 0))
            ss__set_state(st, sk, SS_TCP_FIN_WAIT_1);
        else if (sk->state == SS_TCP_CLOSE_WAIT)
            ss__set_state(st, sk, SS_TCP_LAST_ACK);
        break;
    default:
        return 0;   /* already closing */
    }
    ss__tcp_output(st, sk);
    return 0;
}

int ss_tcp_abort(ss_stack *st, uint64_t now_us, int sd)
{
    st->now = now_us;
    struct ss_pcb *sk = tcp_get(st, sd);
    if (!sk)
        return -EBADF;
    sk->user = false;
    if (sk->state == SS_TCP_LISTEN) {
        ss__synq_flush(st, sk->id);
        /* Abort everything still queued on the listener. */
        for (uint32_t i = 0; i < st->tab_hi; i++) {
            struct ss_pcb *c = st->tab[i];
            if (c && c->kind == SS_SK_TCP && c->parent == sk->id) {
                ss__tcp_send_rst(st, c);
                c->user = false;
                ss__tcp_drop(st, c, 0);
            }
        }
    } else if (sk->state >= SS_TCP_SYN_RECEIVED && sk->state <= SS_TCP_CLOSE_WAIT) {
        /* RFC 9293 3.10.5 ABORT: send <SEQ=SND.NXT><CTL=RST>. */
        ss__tcp_send_rst(st, sk);
    }
    sk->pending_ev = 0;
    ss__tcp_drop(st, sk, 0);
    return 0;
}

int ss_tcp_close(ss_stack *st, uint64_t now_us, int sd)
{
    st->now = now_us;
    struct ss_pcb *sk = tcp_get(st, sd);
    if (!sk)
        return -EBADF;
    switch (sk->state) {
    case SS_TCP_LISTEN:
    case SS_TCP_SYN_SENT:   /* RFC 9293 3.10.4: delete the TCB */
    case SS_TCP_CLOSED:
        return ss_tcp_abort(st, now_us, sd);
    default:
        break;
    }
    if (sk->rcv.len) /* unread data: abort (RFC 1122 4.2.2.13) */
        return ss_tcp_abort(st, now_us, sd);
    int rc = ss_tcp_shutdown(st, now_us, sd);
    sk->user = false;
    sk->pending_ev = 0;
    /* An orphan in FIN-WAIT-2 must not wait for the peer forever. */
    if (sk->state == SS_TCP_FIN_WAIT_2 && sk->t_2msl == SS_NEVER) {
        sk->t_2msl = now_us + ss__2msl_us(st);
        ss__sock_touch(st, sk);
    }
    if (sk->state == SS_TCP_CLOSED)
        ss__stack_sock_release(st, sk);
    return rc < 0 && rc != -ENOTCONN ? rc : 0;
}

