/* Names, checksums, trace formats and configuration checks. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "fixture.h"

TestSuite(basics, .init = fx_setup, .fini = fx_teardown, .timeout = 10);

Test(basics, state_names_are_the_rfcs)
{
    const char *want[] = {"CLOSED", "LISTEN", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED",
                          "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK",
                          "TIME-WAIT"};
    for (int i = 0; i < SS_TCP_NSTATES; i++)
        cr_assert_str_eq(ss_tcp_state_name(i), want[i]);
    cr_assert_str_eq(ss_tcp_state_name(99), "?");
    cr_assert_str_eq(ss_tcp_state_name(-1), "?");
}

Test(basics, internet_checksum_rfc1071_example)
{
    /* RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2. */
    uint8_t b[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
    cr_assert_eq(ss_csum_add(0, b, sizeof b), 0xddf2);
    cr_assert_eq(ss_csum_fold(0xddf2), (uint16_t)~0xddf2);
    uint8_t odd[] = {0x01};
    cr_assert_eq(ss_csum_add(0, odd, 1), 0x0100);
}

/* RFC 1071's definition, one big-endian 16-bit word at a time: the
 * reference the word-at-a-time ss_csum_add must agree with. */
static uint32_t csum_ref(uint32_t sum, const uint8_t *p, size_t len)
{
    uint64_t s = sum;
    for (size_t i = 0; i + 1 < len; i += 2)
        s += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (len & 1)
        s += (uint32_t)(p[len - 1] << 8);
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint32_t)s;
}

Test(basics, internet_checksum_agrees_with_rfc1071_at_every_length_and_alignment)
{
    static uint8_t buf[2100];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof buf; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    memset(buf + 1000, 0xff, 600); /* long carries */
    for (size_t off = 0; off < 8; off++)
        for (size_t len = 0; len + off <= sizeof buf; len += (len < 80 ? 1 : 37))
            for (uint32_t start = 0; start <= 0xffff; start += 0x7fff)
                cr_assert_eq(ss_csum_add(start, buf + off, len), csum_ref(start, buf + off, len),
                             "off %zu len %zu start %#x", off, len, start);
    uint8_t ones[64];
    memset(ones, 0xff, sizeof ones);
    cr_assert_eq(ss_csum_add(0, ones, sizeof ones), 0xffff);
    memset(ones, 0, sizeof ones);
    cr_assert_eq(ss_csum_add(0, ones, sizeof ones), 0);
}

Test(basics, trace_text_lines)
{
    char b[128];
    struct ss_trace_event ev = {.kind = SS_TRACE_STATE, .time_us = 1500000};
    ev.u.state.old_state = SS_TCP_SYN_SENT;
    ev.u.state.new_state = SS_TCP_ESTABLISHED;
    cr_assert_eq(ss_trace_format(&ev, 0, b, sizeof b), 23);
    cr_assert_str_eq(b, "SYN-SENT -> ESTABLISHED");
    ss_trace_format(&ev, SS_TRACE_FMT_TIME, b, sizeof b);
    cr_assert_str_eq(b, "1.500000 SYN-SENT -> ESTABLISHED");

    ev = (struct ss_trace_event){.kind = SS_TRACE_SEG_OUT};
    ev.u.seg = (struct ss_trace_seg){.flags = SS_TCP_SYN, .seq = 1000, .win = 65535, .mss = 1460};
    ss_trace_format(&ev, 0, b, sizeof b);
    cr_assert_str_eq(b, "> SYN seq=1000 win=65535 <mss 1460>");
    ev.kind = SS_TRACE_SEG_IN;
    ev.u.seg = (struct ss_trace_seg){.flags = SS_TCP_SYN | SS_TCP_ACK, .seq = 5000, .ack = 1001,
                                     .win = 64240, .mss = 1460};
    ss_trace_format(&ev, 0, b, sizeof b);
    cr_assert_str_eq(b, "< SYN,ACK seq=5000 ack=1001 win=64240 <mss 1460>");
    ev.kind = SS_TRACE_RETRANSMIT;
    ev.u.seg = (struct ss_trace_seg){.flags = SS_TCP_PSH | SS_TCP_ACK, .seq = 1001,
                                     .ack = 5001, .win = 65535, .len = 100};
    ss_trace_format(&ev, 0, b, sizeof b);
    cr_assert_str_eq(b, "> [rtx] PSH,ACK seq=1001 ack=5001 win=65535 len=100");
    ev.laddr = US_IP; ev.lport = 80; ev.raddr = PEER_IP; ev.rport = 5000;
    ss_trace_format(&ev, SS_TRACE_FMT_TUPLE, b, sizeof b);
    cr_assert_str_eq(b, "10.0.0.2:80 10.0.0.1:5000 > [rtx] PSH,ACK seq=1001 ack=5001 win=65535 len=100");
    /* truncation follows snprintf */
    char small[8];
    int need = ss_trace_format(&ev, 0, small, sizeof small);
    cr_assert_eq(need, 51);
    cr_assert_str_eq(small, "> [rtx]");
    ev = (struct ss_trace_event){.kind = SS_TRACE_DROP};
    ev.u.drop.reason = SS_DROP_TCP_SYN_QUEUE_FULL;
    ss_trace_format(&ev, 0, b, sizeof b);
    cr_assert_str_eq(b, "drop tcp-syn-queue-full");
}

Test(basics, trace_json_line)
{
    char b[512];
    struct ss_trace_event ev = {.kind = SS_TRACE_SEG_OUT, .time_us = 42, .sd = 3,
                                .laddr = US_IP, .lport = 80, .raddr = PEER_IP, .rport = 5000};
    ev.u.seg = (struct ss_trace_seg){.flags = SS_TCP_SYN | SS_TCP_ACK, .seq = 7, .ack = 8,
                                     .win = 100, .mss = 1460};
    int n = ss_trace_format_json(&ev, b, sizeof b);
    cr_assert_gt(n, 0);
    cr_assert_eq((size_t)n, strlen(b));
    json_error_t err;
    json_t *o = json_loads(b, 0, &err);
    cr_assert_not_null(o, "valid JSON: %s", b);
    cr_assert_str_eq(json_string_value(json_object_get(o, "kind")), "seg_out");
    cr_assert_str_eq(json_string_value(json_object_get(o, "flags")), "SYN,ACK");
    cr_assert_str_eq(json_string_value(json_object_get(o, "local")), "10.0.0.2:80");
    cr_assert_eq(json_integer_value(json_object_get(o, "seq")), 7);
    cr_assert_eq(json_integer_value(json_object_get(o, "mss")), 1460);
    cr_assert_eq(json_integer_value(json_object_get(o, "t_us")), 42);
    json_decref(o);
}

Test(basics, config_is_validated)
{
    struct ss_stack_cfg c;
    ss_stack *s2;
    ss_stack_cfg_default(&c);
    cr_assert_eq(ss_stack_new(&c, &s2), -EINVAL, "no output callback");
    c = cfg;
    c.rcvbuf = (1u << 30) + 1;
    cr_assert_eq(ss_stack_new(&c, &s2), -EINVAL, "window > 2^30 (RFC 7323 2.3: shift 14)");
    c = cfg;
    c.delack_ms = 500;
    cr_assert_eq(ss_stack_new(&c, &s2), -EINVAL, "RFC 1122: delay < 0.5 s");
    c = cfg;
    cr_assert_eq(ss_stack_new(&c, &s2), 0);
    ss_stack_free(s2);
}

Test(basics, bad_handles)
{
    char b[4];
    cr_assert_eq(ss_tcp_send(st, now, 5, "x", 1), -EBADF);
    cr_assert_eq(ss_tcp_recv(st, now, -1, b, 1), -EBADF);
    cr_assert_eq(ss_stack_sock_events(st, 1000), -EBADF);
    int u = ss_udp_bind(st, 53);
    cr_assert_eq(ss_tcp_send(st, now, u, "x", 1), -EBADF);
    cr_assert_eq(ss_udp_bind(st, 53), -EADDRINUSE);
    cr_assert_eq(ss_stack_sock_setopt(st, u, 999, 1), -ENOPROTOOPT);
    cr_assert_eq(ss_udp_close(st, u), 0);
    cr_assert_eq(ss_udp_close(st, u), -EBADF);
}

Test(basics, handshake_and_data_traced_in_textbook_notation)
{
    uint32_t iss;
    int sd = fx_passive(&iss);
    ss_tcp_send(st, now, sd, "hi", 2);
    char want[9][128];
    snprintf(want[0], sizeof want[0], "CLOSED -> LISTEN");
    snprintf(want[1], sizeof want[1], "< SYN seq=1000 win=65535 <mss 1460>");
    /* The SYN makes a half-open entry, not a socket (tcp_synq.c): the
     * socket, and so its first state, comes with the handshake's ACK. */
    snprintf(want[2], sizeof want[2], "> SYN,ACK seq=%u ack=1001 win=8192 <mss 1460>", iss);
    snprintf(want[3], sizeof want[3], "< ACK seq=1001 ack=%u win=65535", iss + 1);
    snprintf(want[4], sizeof want[4], "CLOSED -> SYN-RECEIVED");
    snprintf(want[5], sizeof want[5], "rtt sample=1us srtt=1us rttvar=0us rto=1000000us");
    snprintf(want[6], sizeof want[6], "SYN-RECEIVED -> ESTABLISHED");
    /* The congestion state as data starts: RFC 6928's initial window of
     * ten 1460-byte segments, no ssthresh yet, the default algorithm. */
    snprintf(want[7], sizeof want[7],
             "initial window: cwnd=14600 ssthresh=inf flight=0 peer-wnd=65535 open cubic");
    snprintf(want[8], sizeof want[8], "> PSH,ACK seq=%u ack=1001 win=8192 len=2", iss + 1);
    cr_assert_geq(ntrace, 9);
    for (int i = 0; i < 9; i++)
        cr_assert_str_eq(trace_lines[i], want[i], "line %d", i);
}

Test(basics, stack_addr_is_the_configured_address)
{
    cr_assert_eq(ss_stack_addr(st), US_IP);
}
