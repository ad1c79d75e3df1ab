/* The README's tour, run as written: the test takes the shell blocks that
 * follow "**Watch TCP work**" and "**Raw sockets and captures**" out of
 * README.md and runs each with sh -e in a directory of its own, with the
 * built sockstack first on PATH. So the README cannot drift from what runs.
 * The root block runs in a private network namespace (its TUN, ping, sniff
 * and the echo connection never leave it). */
#include <criterion/criterion.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "netns.h"

static char dir[64];

static void teardown(void)
{
    th_rm_rf(dir);
}

TestSuite(tour, .fini = teardown, .timeout = 240);

/* The ```sh block after the line that starts with `heading`, into
 * dir/NAME; returns its text (malloc'd). */
static char *block(const char *heading, const char *name)
{
    FILE *f = fopen(th_source_path("README.md"), "r");
    cr_assert(f, "README.md");
    static char readme[1 << 17];
    size_t n = fread(readme, 1, sizeof readme - 1, f);
    readme[n] = '\0';
    fclose(f);
    const char *h = strstr(readme, heading);
    cr_assert(h, "no \"%s\" in README.md", heading);
    const char *b = strstr(h, "\n```sh\n");
    cr_assert(b, "no shell block after %s", heading);
    b += 7;
    const char *e = strstr(b, "\n```\n");
    cr_assert(e);
    char *text = strndup(b, (size_t)(e - b) + 1);
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
    return text;
}

static void setup_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/ss-tour-%d", (int)getpid());
    mkdir(dir, 0700);
}

/* Runs dir/NAME with sh -e in dir, sockstack on PATH; its output. */
static char *run(const char *name)
{
    char bin[512];
    snprintf(bin, sizeof bin, "%s", th_sockstack());
    cr_assert(strchr(bin, '/'), "SOCKSTACK is not a path: %s", bin);
    char *out;
    /* In a process group of its own: whatever the block left running when
     * it failed or hung (stack up, sniff) is ended with it, and the output's
     * pipe closes. A block that hangs is stopped after 150 s (exit 124),
     * inside the test's own limit, and its logs are shown so that the step
     * that waited can be seen. */
    int st = ns_capture(&out,
                        "cd %s && PATH=%s:$PATH setsid --wait sh -c 'timeout --foreground 150 sh -e %s; "
                        "rc=$?; trap \"\" TERM; kill -TERM -$$; if [ $rc != 0 ]; then "
                        "for f in *.log *.txt; do [ -f $f ] && echo \"== $f\" && tail -n 30 $f; done; fi; "
                        "exit $rc'",
                        dir, dirname(bin), name);
    cr_assert_eq(st, 0, "the README's block %s failed (%d):\n%s", name, st, out);
    return out;
}

static long tshark_count(const char *pcap)
{
    char *out;
    cr_assert_eq(ns_capture(&out, "tshark -r %s/%s 2>/dev/null | wc -l", dir, pcap), 0);
    long n = atol(out);
    free(out);
    return n;
}

static long file_size(const char *name)
{
    char path[128];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cr_assert_eq(stat(path, &sb), 0, "%s was not written", name);
    return (long)sb.st_size;
}

static bool has_tshark(void)
{
    return access("/usr/bin/tshark", X_OK) == 0;
}

Test(tour, watch_tcp_work_block_runs_as_written)
{
    setup_dir();
    char *text = block("**Watch TCP work**", "watch.sh");
    /* demo, diagram and --html draw the same run (and test_view.c's). */
    int same = 0;
    for (const char *p = strstr(text, "sockstack stack "); p; p = strstr(p + 1, "sockstack stack "))
    {
        const char *q = strstr(p, " --loss 5 --seed 35 --bytes 8K ");
        if (q && q < strchr(p, '\n'))
            same++;
    }
    cr_assert_eq(same, 3, "the tour's demo, diagram and --html run differ");
    free(text);
    char *out = run("watch.sh");
    /* The same run: the demo's, the diagram's and the page's summaries are
     * one (the payload's digest, the retransmissions, every packet the link
     * carried and lost), but for the real time; the last demo (20% loss)
     * is another. The diagram and the page mark exactly the packets the
     * link lost. */
    char *sum[4];
    size_t ns = 0;
    for (char *p = strstr(out, "summary (seed "); p; p = strstr(p + 1, "summary (seed ")) {
        cr_assert_lt(ns, 4, "%s", out);
        char *e = strstr(p, "queue drops\n");
        cr_assert(e && (e = strstr(e + 1, "queue drops\n")), "%s", p);
        sum[ns] = strndup(p, (size_t)(e - p));
        char *real = strstr(sum[ns], " (real ");
        cr_assert(real, "%s", sum[ns]);
        memmove(real, strchr(real, ')') + 1, strlen(strchr(real, ')') + 1) + 1);
        ns++;
    }
    cr_assert_eq(ns, 4, "%s", out);
    cr_assert_str_eq(sum[1], sum[0]);
    cr_assert_str_eq(sum[2], sum[0]);
    cr_assert_str_neq(sum[3], sum[0]);
    unsigned lost_ab, lost_ba;
    const char *l = strstr(sum[0], "link A->B: ");
    cr_assert(l && sscanf(l, "link A->B: %*u packets, %u lost", &lost_ab) == 1, "%s", sum[0]);
    l = strstr(sum[0], "link B->A: ");
    cr_assert(l && sscanf(l, "link B->A: %*u packets, %u lost", &lost_ba) == 1, "%s", sum[0]);
    for (size_t k = 0; k < ns; k++)
        free(sum[k]);
    const char *pics[] = {"conn.svg", "run.html"};
    for (int k = 0; k < 2; k++) {
        char *n;
        cr_assert_eq(ns_capture(&n, "grep -o '<path class=\"lossmark\"' %s/%s | wc -l", dir,
                                pics[k]),
                     0);
        cr_assert_eq(atol(n), (long)(lost_ab + lost_ba), "%s: %s loss marks", pics[k], n);
        free(n);
    }
    cr_assert(file_size("plots.svg") > 1000);
    /* The last demo's pcap holds the packets the demo counted. */
    const char *pc = strstr(out, "  pcap: ");
    cr_assert(pc, "%s", out);
    long npk = atol(pc + 8);
    if (has_tshark())
        cr_assert_eq(tshark_count("run.pcap"), npk);
    free(out);
}

Test(tour, raw_sockets_and_captures_block_runs_as_written)
{
    th_enter_netns(); /* skips without root */
    setup_dir();
    free(block("**Raw sockets and captures**", "raw.sh"));
    char *out = run("raw.sh");
    cr_assert(strstr(out, "3 packets transmitted, 3 received, 0% packet loss"), "%s", out);
    cr_assert(strstr(out, "\nhello\n"), "no echo: %s", out);
    /* sniff's text: one line per segment (" > "), as many as it wrote. */
    long segs = 0;
    for (const char *p = strstr(out, " > "); p; p = strstr(p + 1, " > "))
        segs++;
    /* "hello\n" each way, and the echo server's side closes last. */
    long data = 0;
    for (const char *p = strstr(out, " len=6 "); p; p = strstr(p + 1, " len=6 "))
        data++;
    cr_assert_eq(data, 2, "%s", out);
    cr_assert(strstr(out, ":7 FIN-WAIT-2 -> TIME-WAIT\n"), "%s", out);
    cr_assert(strstr(out, ":7 10.0.0.1:"), "%s", out);
    cr_assert(strstr(out, " LAST-ACK -> CLOSED\n"), "%s", out);
    if (has_tshark())
        cr_assert_eq(tshark_count("echo.pcap"), segs, "%s", out);
    cr_assert(file_size("echo.svg") > 1000 && file_size("echo-plots.svg") > 1000);
    char *html;
    cr_assert_eq(ns_capture(&html, "grep -c 'default-src' %s/view.html", dir), 0);
    cr_assert_str_eq(html, "1\n");
    free(html);
    free(out);
}
