/* The analyser on packets built byte by byte and written to a pcap file
 * with libpcap (raw IP): every flag and the states, exactly, through
 * `sockstack sniff -r`. No root needed. */
#include <criterion/criterion.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "pktgen.h"
#include "sockstack/stack.h"

Test(analyze, every_flag_and_state_from_a_built_capture, .timeout = 60)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/ss-analyze-%d.pcap", (int)getpid());
    pcap_t *dead = pcap_open_dead(DLT_RAW, 65535);
    cr_assert(dead);
    pg_dump = pcap_dump_open(dead, path);
    cr_assert(pg_dump);
    const uint8_t A = SS_TCP_ACK;
    pg_seg(0, 100, 0, SS_TCP_SYN, 1000, 0);
    pg_seg(1, 500, 101, SS_TCP_SYN | A, 1000, 0);
    pg_seg(0, 101, 501, A, 1000, 0);
    pg_seg(0, 101, 501, A, 1000, 100);        /* data */
    pg_seg(0, 301, 501, A, 1000, 100);        /* 201..300 never seen: out-of-order */
    pg_seg(1, 501, 201, A, 1000, 0);
    pg_seg(1, 501, 201, A, 1000, 0);          /* dup-ack 1 */
    pg_seg(1, 501, 201, A, 1000, 0);          /* dup-ack 2 */
    pg_seg(0, 201, 501, A, 1000, 100);        /* the hole again: retransmission */
    pg_seg(1, 501, 401, A, 0, 0);             /* zero window */
    pg_seg(0, 401, 501, A, 1000, 1);          /* one byte into it: window probe */
    pg_seg(1, 501, 402, A, 0, 0);             /* still zero */
    pg_icmp_err(3, 4, 402);                   /* a router: fragmentation needed */
    pg_seg(1, 501, 0, SS_TCP_RST, 0, 0);      /* reset */
    pg_seg6(0, 7, 0, SS_TCP_SYN);
    pg_seg6(1, 70, 8, SS_TCP_SYN | A);
    pcap_dump_close(pg_dump);
    pcap_close(dead);

    const char *args[] = {"sniff", "-r", path, NULL};
    struct th_result r = th_run_cli(args, 10000);
    unlink(path);
    cr_assert_eq(r.status, 0, "%s", r.err);
    const char *want =
        "0.000000 10.0.0.1:1000 10.0.0.2:80 > SYN seq=100 win=1000 <mss 1460>\n"
        "0.000000 10.0.0.1:1000 10.0.0.2:80 CLOSED -> SYN-SENT\n"
        "0.000000 10.0.0.2:80 10.0.0.1:1000 LISTEN -> SYN-RECEIVED\n"
        "0.001000 10.0.0.2:80 10.0.0.1:1000 > SYN,ACK seq=500 ack=101 win=1000 <mss 1460>\n"
        "0.001000 10.0.0.1:1000 10.0.0.2:80 SYN-SENT -> ESTABLISHED\n"
        "0.002000 10.0.0.1:1000 10.0.0.2:80 > ACK seq=101 ack=501 win=1000\n"
        "0.002000 10.0.0.2:80 10.0.0.1:1000 SYN-RECEIVED -> ESTABLISHED\n"
        "0.003000 10.0.0.1:1000 10.0.0.2:80 > ACK seq=101 ack=501 win=1000 len=100\n"
        "0.004000 10.0.0.1:1000 10.0.0.2:80 > ACK seq=301 ack=501 win=1000 len=100 "
        "[out-of-order]\n"
        "0.005000 10.0.0.2:80 10.0.0.1:1000 > ACK seq=501 ack=201 win=1000\n"
        "0.006000 10.0.0.2:80 10.0.0.1:1000 > ACK seq=501 ack=201 win=1000 [dup-ack 1]\n"
        "0.007000 10.0.0.2:80 10.0.0.1:1000 > ACK seq=501 ack=201 win=1000 [dup-ack 2]\n"
        "0.008000 10.0.0.1:1000 10.0.0.2:80 > [rtx] ACK seq=201 ack=501 win=1000 len=100\n"
        "0.009000 10.0.0.2:80 10.0.0.1:1000 > ACK seq=501 ack=401 win=0 [zero-window]\n"
        "0.010000 10.0.0.1:1000 10.0.0.2:80 > ACK seq=401 ack=501 win=1000 len=1 "
        "[window-probe]\n"
        "0.011000 10.0.0.2:80 10.0.0.1:1000 > ACK seq=501 ack=402 win=0 [zero-window]\n"
        "0.012000 10.0.0.254 > ICMP type=3 code=4 about 10.0.0.1:1000 10.0.0.2:80 seq=402 "
        "[icmp-error]\n"
        "0.013000 10.0.0.2:80 10.0.0.1:1000 > RST seq=501 win=0 [reset]\n"
        "0.013000 10.0.0.2:80 10.0.0.1:1000 ESTABLISHED -> CLOSED\n"
        "0.013000 10.0.0.1:1000 10.0.0.2:80 ESTABLISHED -> CLOSED\n"
        "0.014000 [fd00::1]:2000 [fd00::2]:443 > SYN seq=7 win=500\n"
        "0.014000 [fd00::1]:2000 [fd00::2]:443 CLOSED -> SYN-SENT\n"
        "0.014000 [fd00::2]:443 [fd00::1]:2000 LISTEN -> SYN-RECEIVED\n"
        "0.015000 [fd00::2]:443 [fd00::1]:2000 > SYN,ACK seq=70 ack=8 win=500\n"
        "0.015000 [fd00::1]:2000 [fd00::2]:443 SYN-SENT -> ESTABLISHED\n";
    cr_assert_str_eq(r.out, want);
    th_result_free(&r);
}
