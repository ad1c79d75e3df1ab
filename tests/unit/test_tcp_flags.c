/* The one notation of TCP flags (sockstack/tcp_flags.h): the formatter the
 * stack's trace, sniff, the diagrams and the viewer print with, and its
 * inverse, which reads --trace-json runs back (ss_viz_read_jsonl). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sockstack/err.h"
#include "sockstack/tcp_flags.h"
#include "sockstack/viz.h"

Test(tcp_flags, names_in_the_trace_order)
{
    char b[32];
    cr_assert_str_eq(ss_tcp_flags_str(0, b, sizeof b), "none");
    cr_assert_str_eq(ss_tcp_flags_str(SS_TCP_SYN, b, sizeof b), "SYN");
    cr_assert_str_eq(ss_tcp_flags_str(SS_TCP_SYN | SS_TCP_ACK, b, sizeof b), "SYN,ACK");
    cr_assert_str_eq(ss_tcp_flags_str(SS_TCP_FIN | SS_TCP_PSH | SS_TCP_ACK, b, sizeof b),
                     "FIN,PSH,ACK");
    cr_assert_str_eq(ss_tcp_flags_str(SS_TCP_RST | SS_TCP_ACK, b, sizeof b), "RST,ACK");
    cr_assert_str_eq(ss_tcp_flags_str(0xff, b, sizeof b), "SYN,FIN,RST,PSH,ACK,URG,ECE,CWR");
    cr_assert_eq(strlen(b), 31);   /* every flag fits in 32 bytes */
}

Test(tcp_flags, a_short_buffer_keeps_whole_names)
{
    char b[8];
    memset(b, 'x', sizeof b);
    cr_assert_str_eq(ss_tcp_flags_str(SS_TCP_SYN | SS_TCP_FIN | SS_TCP_ACK, b, 8), "SYN,FIN");
    cr_assert_str_eq(ss_tcp_flags_str(SS_TCP_SYN | SS_TCP_FIN | SS_TCP_ACK, b, 7), "SYN");
    cr_assert_str_eq(ss_tcp_flags_str(SS_TCP_ACK, b, 3), "");
    b[0] = 'x';
    ss_tcp_flags_str(SS_TCP_ACK, b, 0);
    cr_assert_eq(b[0], 'x');
}

Test(tcp_flags, parse_is_the_inverse_for_all_256_values)
{
    for (unsigned f = 0; f < 256; f++) {
        char b[32];
        uint8_t got = 0xaa;
        cr_assert_eq(ss_tcp_flags_parse(ss_tcp_flags_str((uint8_t)f, b, sizeof b), &got), 0,
                     "%s", b);
        cr_assert_eq(got, f, "%s: %#x", b, got);
    }
    uint8_t got;
    cr_assert_eq(ss_tcp_flags_parse("ACK,SYN", &got), 0);
    cr_assert_eq(got, SS_TCP_SYN | SS_TCP_ACK);
}

Test(tcp_flags, parse_refuses_what_the_formatter_never_writes)
{
    const char *bad[] = {"", "SYN,", ",SYN", "SYN,,ACK", "syn", "SYNACK", "SYN ACK",
                         "FOO", "none,SYN", "ACKS"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t got = 0xaa;
        cr_assert_eq(ss_tcp_flags_parse(bad[i], &got), -EINVAL, "\"%s\"", bad[i]);
        cr_assert_eq(got, 0, "\"%s\"", bad[i]);
    }
    uint8_t got = 0xaa;
    cr_assert_eq(ss_tcp_flags_parse(NULL, &got), -EINVAL);
    cr_assert_eq(got, 0);
}

/* A --trace-json run is read back through the same names: a SYN line
 * draws a SYN; a line with flags "SYN,AKC" is refused with its number. */
static int read_run(const char *flags, char *err, size_t errlen, char **drawn)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/ss-flags-%d.jsonl", (int)getpid());
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f,
            "{\"node\":\"A\",\"t_us\":0,\"kind\":\"state\",\"sd\":0,\"local\":\"10.0.0.1:49152\","
            "\"remote\":\"10.0.0.2:5001\",\"old\":\"CLOSED\",\"new\":\"SYN-SENT\"}\n"
            "{\"node\":\"A\",\"t_us\":0,\"kind\":\"seg_out\",\"sd\":0,\"local\":"
            "\"10.0.0.1:49152\",\"remote\":\"10.0.0.2:5001\",\"dir\":\"out\",\"flags\":\"%s\","
            "\"seq\":7,\"ack\":0,\"win\":65535,\"len\":0,\"mss\":1460}\n",
            flags);
    fclose(f);
    ss_viz *v;
    cr_assert_eq(ss_viz_new(16, &v), 0);
    int rc = ss_viz_read_jsonl(v, path, err, errlen);
    unlink(path);
    size_t len;
    FILE *m = open_memstream(drawn, &len);
    cr_assert(m);
    if (rc == 0)
        cr_assert_eq(ss_viz_diagram_text(v, 100, m), 0);
    fclose(m);
    ss_viz_free(v);
    return rc;
}

Test(tcp_flags, trace_json_runs_are_read_with_the_same_names)
{
    char err[256] = "", *drawn;
    cr_assert_eq(read_run("SYN", err, sizeof err, &drawn), 0, "%s", err);
    cr_assert(strstr(drawn, " SYN seq=0 win=65535 <mss 1460> "), "%s", drawn);
    free(drawn);
    cr_assert_eq(read_run("SYN,AKC", err, sizeof err, &drawn), SS_EBADPKT);
    cr_assert(strstr(err, ":2: bad TCP flags \"SYN,AKC\""), "%s", err);
    free(drawn);
}
