/* The viewer in a real browser: Debian's chromium, headless, loads
 * view.html from disk. The URL's "#i=N" moves the cursor (as the scrubber
 * does); the DOM after the script ran (--dump-dom) must show each side's
 * state, the lit boxes of the state diagram and the packet count. A
 * script (tests/raw/cdp.py, the DevTools protocol over a pipe) scrubs the
 * timeline and reads the states; the page must request nothing but its own
 * file. A screenshot is kept in the build directory (view.png). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "netns.h"
#include "pktgen.h"

static char dir[64];

static void teardown(void)
{
    th_rm_rf(dir);
}

TestSuite(view, .fini = teardown, .timeout = 180);

static const char *chromium(void)
{
    if (access("/usr/bin/chromium", X_OK) != 0)
        cr_skip_test("needs Debian's chromium (scripts/install-deps.sh)");
    return "/usr/bin/chromium";
}

static void setup_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/ss-view-%d", (int)getpid());
    mkdir(dir, 0700);
}

/* The page's DOM after its script ran, opened at fragment frag. */
static char *dom(const char *html, const char *frag, const char *extra)
{
    char *out;
    int st = ns_capture(&out,
                        "%s --headless --no-sandbox --disable-gpu --no-first-run "
                        "--user-data-dir=%s/profile %s --dump-dom 'file://%s%s' 2>/dev/null",
                        chromium(), dir, extra ? extra : "", html, frag);
    cr_assert_eq(st, 0, "chromium: %s", out);
    return out;
}

/* The text of the element with this id ("" if none). */
static void text_of(const char *d, const char *id, char *buf, size_t cap)
{
    char needle[64];
    snprintf(needle, sizeof needle, "id=\"%s\">", id);
    const char *p = strstr(d, needle);
    buf[0] = '\0';
    if (p) {
        p += strlen(needle);
        const char *e = strchr(p, '<');
        snprintf(buf, cap, "%.*s", e ? (int)(e - p) : 0, p);
    }
}

/* What tshark reads in frame `frame` of pcap, as the viewer's header table
 * must show it: ip_rows gets the IP header's rows (version to checksum),
 * doff_row and cksum_row the TCP data offset's and checksum's. */
static void tshark_rows(const char *pcap, int frame, char *ip_rows, size_t cap, char *doff_row,
                        char *cksum_row, size_t rcap)
{
    char *out;
    cr_assert_eq(ns_capture(&out,
                            "tshark -r %s -Y frame.number==%d -T fields -E separator=, "
                            "-e ip.version -e ip.hdr_len -e ip.dsfield -e ip.len -e ip.id "
                            "-e ip.flags -e ip.frag_offset -e ip.ttl -e ip.proto -e ip.checksum "
                            "-e tcp.hdr_len -e tcp.checksum 2>/dev/null | tail -n 1",
                            pcap, frame),
                 0, "%s", out);
    unsigned v, hl, ds, len, id, fl, off, ttl, proto, ck, thl, tck;
    cr_assert_eq(sscanf(out, "%u,%u,%x,%u,%x,%x,%u,%u,%u,%x,%u,%x", &v, &hl, &ds, &len, &id,
                        &fl, &off, &ttl, &proto, &ck, &thl, &tck),
                 12, "tshark: %s", out);
    free(out);
    snprintf(ip_rows, cap,
             "  IP version = %u\n  IHL (32-bit words) = %u\n  TOS = %u\n  total length = %u\n"
             "  identification = %u\n  IP flags = %s\n  fragment offset = %u\n  TTL = %u\n"
             "  protocol = %u\n  header checksum = 0x%04x\n",
             v, hl / 4, ds, len, id,
             fl == 2 ? "DF" : fl == 1 ? "MF" : fl == 3 ? "DF,MF" : "-", off, ttl, proto, ck);
    snprintf(doff_row, rcap, "  data offset (32-bit words) = %u\n", thl / 4);
    snprintf(cksum_row, rcap, "  TCP checksum = 0x%04x\n", tck);
}

static void assert_at(const char *html, int i, const char *a, const char *b)
{
    char frag[32], got[64];
    snprintf(frag, sizeof frag, "#i=%d", i);
    char *d = dom(html, frag, NULL);
    text_of(d, "state-a", got, sizeof got);
    cr_assert_str_eq(got, a, "A at packet %d", i);
    text_of(d, "state-b", got, sizeof got);
    cr_assert_str_eq(got, b, "B at packet %d", i);
    text_of(d, "pos", got, sizeof got);
    char want[64];
    snprintf(want, sizeof want, "packet %d of 16", i + 1);
    cr_assert_str_eq(got, want);
    /* The state diagram lights A's box and B's (both: one box, both classes). */
    char box[96];
    snprintf(box, sizeof box, "id=\"fsm-%s\" x=", a);
    const char *r = strstr(d, box);
    cr_assert(r, "no box %s", a);
    const char *cls = strstr(r, "class=\"");
    cr_assert(cls && cls < strchr(r, '>'), "%s not lit", a);
    cr_assert(!strncmp(cls, "class=\"a", 8), "%.30s", cls);
    free(d);
}

/* Inside a network namespace of its own (when root), so that nothing the
 * browser itself might try (updates, accounts) can leave the machine. */
static void private_net(void)
{
    if (th_is_root())
        th_enter_netns();
}

Test(view, scrubbing_a_capture_in_headless_chromium)
{
    chromium();
    private_net();
    setup_dir();
    char pcap[96], html[96], cmd[1024];
    snprintf(pcap, sizeof pcap, "%s/small.pcap", dir);
    snprintf(html, sizeof html, "%s/view.html", dir);
    pg_small_capture(pcap);
    const char *args[] = {"view", pcap, "-o", html, NULL};
    struct th_result r = th_run_cli(args, 20000);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_result_free(&r);

    /* Self-contained: a policy that allows no fetch, and nothing to fetch. */
    char *page = th_read_file(html, NULL);
    cr_assert(page, "%s", html);
    cr_assert(strstr(page, "content=\"default-src 'none'; "));
    for (const char *p = strstr(page, "http"); p; p = strstr(p + 1, "http"))
        cr_assert(!strncmp(p, "http://www.w3.org/2000/svg\"", 27) ||
                      !strncmp(p, "http-equiv", 10),
                  "a URL in the page: %.60s", p);
    cr_assert_null(strstr(page, " src="));
    cr_assert_null(strstr(page, " href="));
    free(page);

    char *d = dom(html, "", NULL);
    char got[64];
    text_of(d, "count", got, sizeof got);
    cr_assert_str_eq(got, "16 packets");
    size_t items = 0;
    for (const char *p = strstr(d, "<li"); p; p = strstr(p + 1, "<li"))
        if (p[3] == '>' || p[3] == ' ')
            items++;
    cr_assert_eq(items, 16);
    free(d);

    /* Opened at a packet ("#i=N"): the states and the lit boxes. */
    assert_at(html, 2, "ESTABLISHED", "ESTABLISHED");
    assert_at(html, 14, "TIME-WAIT", "LAST-ACK");
    /* A time instead of a packet: the last packet at or before it. */
    d = dom(html, "#t=1.0012", NULL);
    text_of(d, "pos", got, sizeof got);
    cr_assert_str_eq(got, "packet 13 of 16");
    char line[256];
    text_of(d, "line", line, sizeof line);
    cr_assert_str_eq(line, "B 10.0.0.2:80 10.0.0.1:1000 &gt; ACK seq=5001 ack=7001 win=64000");
    free(d);

    /* Scrubbing as the range input does (DevTools protocol: show(i)), and
     * every request the page made: the file itself, nothing else. */
    char *log;
    cr_assert_eq(ns_capture(&log, "python3 %s /usr/bin/chromium %s/cdp-profile 'file://%s' "
                                  "0 2 11 13 14 15 slide:12 table next prev prev",
                            th_source_path("tests/raw/cdp.py"), dir, html),
                 0, "%s", log);
    /* The header table of packet 13, reached by moving the range input;
     * its IP header and TCP checksum as tshark reads them. Then one step
     * each way with the buttons. */
    char ip_rows[512], doff[64], ck[64], want[4096];
    tshark_rows(pcap, 13, ip_rows, sizeof ip_rows, doff, ck, sizeof doff);
    snprintf(want, sizeof want,
             "at 0: SYN-SENT|SYN-RECEIVED|packet 1 of 16|fsm-SYN-SENT|fsm-SYN-RECEIVED\n"
             "at 2: ESTABLISHED|ESTABLISHED|packet 3 of 16|fsm-ESTABLISHED|fsm-ESTABLISHED\n"
             "at 11: ESTABLISHED|ESTABLISHED|packet 12 of 16|fsm-ESTABLISHED|fsm-ESTABLISHED\n"
             "at 13: FIN-WAIT-1|CLOSE-WAIT|packet 14 of 16|fsm-FIN-WAIT-1|fsm-CLOSE-WAIT\n"
             "at 14: TIME-WAIT|LAST-ACK|packet 15 of 16|fsm-TIME-WAIT|fsm-LAST-ACK\n"
             "at 15: TIME-WAIT|CLOSED|packet 16 of 16|fsm-TIME-WAIT|fsm-CLOSED\n"
             "slide:12: ESTABLISHED|ESTABLISHED|packet 13 of 16|fsm-ESTABLISHED|fsm-ESTABLISHED\n"
             "%s"
             "  source = 10.0.0.2:80\n"
             "  destination = 10.0.0.1:1000\n"
             "  sequence number = 5001\n"
             "  acknowledgment number = 7001\n"
             "%s"
             "  flags = ACK\n"
             "  window = 64000\n"
             "%s"
             "  urgent pointer = 0\n"
             "  payload bytes = 0\n"
             "  options = \n"
             "  analysis = -\n"
             "  state changes = -\n"
             "next: FIN-WAIT-1|CLOSE-WAIT|packet 14 of 16|fsm-FIN-WAIT-1|fsm-CLOSE-WAIT\n"
             "prev: ESTABLISHED|ESTABLISHED|packet 13 of 16|fsm-ESTABLISHED|fsm-ESTABLISHED\n"
             "prev: ESTABLISHED|ESTABLISHED|packet 12 of 16|fsm-ESTABLISHED|fsm-ESTABLISHED\n"
             "request: file://%s\n"
             "done\n",
             ip_rows, doff, ck, html);
    cr_assert_str_eq(log, want);
    free(log);

    /* Zoom: one turn of the mouse wheel over each picture (the diagram, and
     * the plots: time-sequence, cwnd and RTT) shrinks its viewBox to 0.8 of
     * its size around the pointer; a double click puts it back. */
    cr_assert_eq(ns_capture(&log, "python3 %s /usr/bin/chromium %s/cdp-profile 'file://%s' "
                                  "zoom:diagram reset:diagram zoom:plots reset:plots",
                            th_source_path("tests/raw/cdp.py"), dir, html),
                 0, "%s", log);
    const char *ids[] = {"diagram", "plots"};
    const char *l = log;
    for (int k = 0; k < 2; k++) {
        double a[4], b[4], c[4];
        char fmt[128];
        int used = 0;
        snprintf(fmt, sizeof fmt, "zoom:%s: %%lf %%lf %%lf %%lf -> %%lf %%lf %%lf %%lf\n%%n",
                 ids[k]);
        cr_assert_eq(sscanf(l, fmt, &a[0], &a[1], &a[2], &a[3], &b[0], &b[1], &b[2], &b[3],
                            &used),
                     8, "%s", log);
        cr_assert_gt(used, 0, "%s", log);
        l += used;
        cr_assert(a[0] == 0 && a[1] == 0 && a[2] > 0 && a[3] > 0, "%s", log);
        cr_assert(fabs(b[2] - 0.8 * a[2]) < 1e-6 && fabs(b[3] - 0.8 * a[3]) < 1e-6, "%s", log);
        cr_assert(b[0] > 0 && b[0] < a[2] - b[2] && b[1] > 0 && b[1] < a[3] - b[3], "%s", log);
        snprintf(fmt, sizeof fmt, "reset:%s: %%lf %%lf %%lf %%lf\n%%n", ids[k]);
        used = 0;
        cr_assert_eq(sscanf(l, fmt, &c[0], &c[1], &c[2], &c[3], &used), 4, "%s", log);
        cr_assert_gt(used, 0, "%s", log);
        l += used;
        cr_assert(!memcmp(a, c, sizeof a), "%s", log);
    }
    free(log);

    /* A screenshot at the retransmission, kept beside the test. */
    enum { SHOT_W = 1400, SHOT_H = 1100 };
    const char *art = getenv("SS_ARTIFACT_DIR");
    char png[256];
    snprintf(png, sizeof png, "%s/view.png", art ? art : dir);
    snprintf(cmd, sizeof cmd,
             "%s --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir=%s/profile "
             "--window-size=%d,%d --screenshot=%s 'file://%s#i=11' >/dev/null 2>&1",
             chromium(), dir, SHOT_W, SHOT_H, png, html);
    cr_assert_eq(system(cmd), 0);
    /* A PNG of the viewport's size: the signature, then IHDR's width and
     * height (big-endian, RFC 2083 4.1.1). */
    size_t n;
    unsigned char *b = (unsigned char *)th_read_file(png, &n);
    cr_assert(b, "%s", png);
    cr_assert_geq(n, 24);
    cr_assert(!memcmp(b, "\x89PNG\r\n\x1a\n", 8) && !memcmp(b + 12, "IHDR", 4), "%s", png);
    uint32_t w = (uint32_t)b[16] << 24 | (uint32_t)b[17] << 16 | (uint32_t)b[18] << 8 | b[19];
    uint32_t h = (uint32_t)b[20] << 24 | (uint32_t)b[21] << 16 | (uint32_t)b[22] << 8 | b[23];
    cr_assert_eq(w, SHOT_W, "%s: %u x %u", png, w, h);
    cr_assert_eq(h, SHOT_H, "%s: %u x %u", png, w, h);
    free(b);
}

Test(view, stack_demo_html_and_its_jsonl_show_the_run)
{
    chromium();
    private_net();
    setup_dir();
    char html[96], html2[96], jsonl[96], pcap[96];
    snprintf(html, sizeof html, "%s/demo.html", dir);
    snprintf(html2, sizeof html2, "%s/run.html", dir);
    snprintf(jsonl, sizeof jsonl, "%s/run.jsonl", dir);
    snprintf(pcap, sizeof pcap, "%s/run.pcap", dir);
    /* The README's run: seed 35 at 5% loss, 8K. */
    const char *args[] = {"stack", "demo", "--loss", "5", "--seed", "35", "--bytes", "8K",
                          "--html", html, "--pcap", pcap, NULL};
    struct th_result r = th_run_cli(args, 30000);
    cr_assert_eq(r.status, 0, "%s", r.err);
    const char *pc = strstr(r.out, "  pcap: ");
    cr_assert(pc, "%s", r.out);
    int npk = atoi(pc + 8);
    th_result_free(&r);
    char *d = dom(html, "#i=0", NULL);
    char got[64], want[64];
    text_of(d, "count", got, sizeof got);
    snprintf(want, sizeof want, "%d packets", npk);
    cr_assert_str_eq(got, want, "every packet the link carried, as the pcap has them");
    text_of(d, "state-a", got, sizeof got);
    cr_assert_str_eq(got, "SYN-SENT");
    free(d);
    /* In TIME-WAIT's minute: A waits, B has closed; after it, A too (the
     * stacks' own states, traced). */
    d = dom(html, "#t=30", NULL);
    text_of(d, "state-a", got, sizeof got);
    cr_assert_str_eq(got, "TIME-WAIT");
    text_of(d, "state-b", got, sizeof got);
    cr_assert_str_eq(got, "CLOSED");
    free(d);
    d = dom(html, "#t=100", NULL);
    text_of(d, "state-a", got, sizeof got);
    cr_assert_str_eq(got, "CLOSED");
    text_of(d, "pos", got, sizeof got);
    snprintf(want, sizeof want, "state change after packet %d of %d", npk, npk);
    cr_assert_str_eq(got, want);
    free(d);
    /* The same run as JSON lines, viewed: A's segments as A traced them. */
    char *out;
    cr_assert_eq(ns_capture(&out, "%s stack demo --loss 5 --seed 35 --bytes 8K --trace-json "
                                  "> %s 2>/dev/null && %s view %s -o %s",
                            th_sockstack(), jsonl, th_sockstack(), jsonl, html2),
                 0);
    free(out);
    d = dom(html2, "#t=30", NULL);
    text_of(d, "state-a", got, sizeof got);
    cr_assert_str_eq(got, "TIME-WAIT");
    free(d);
}

/* A connection of the kernel's own TCP, captured by tshark on loopback in a
 * private namespace while python3 moves 20000 bytes one way and "ok" back
 * (the capture stops once tshark's file holds the client's last ACK, ack=4
 * of the server's "ok" and FIN):
 * `diagram` draws it with the inferred states, `view` shows every packet
 * tshark saw, and A (the client, which closes first) ends in TIME-WAIT while
 * B has closed. */
Test(view, diagram_and_view_of_a_kernel_tcp_connection)
{
    chromium();
    if (access("/usr/bin/tshark", X_OK) != 0)
        cr_skip_test("needs tshark (scripts/install-deps.sh)");
    th_enter_netns(); /* skips without root: tshark captures on lo */
    setup_dir();
    ns_sh("ip link set lo up");
    char pcap[96], html[96], svg[96];
    snprintf(pcap, sizeof pcap, "%s/kernel.pcap", dir);
    snprintf(html, sizeof html, "%s/kernel.html", dir);
    snprintf(svg, sizeof svg, "%s/kernel.svg", dir);
    char *out;
    int st = ns_capture(
        &out,
        "cd %s && tshark -i lo -F pcap -w %s -f 'tcp port 5555' 2>tshark.log & pid=$!; "
        "i=0; until grep -q Capturing %s/tshark.log; do i=$((i+1)); if [ $i -gt 600 ]; then "
        "echo 'tshark did not start in 60 s'; kill $pid; exit 1; fi; sleep 0.1; done; "
        "python3 -c '\n"
        "import socket, threading\n"
        "ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "ls.bind((\"127.0.0.1\", 5555)); ls.listen(1)\n"
        "def serve():\n"
        "    c, _ = ls.accept(); n = 0\n"
        "    while True:\n"
        "        b = c.recv(65536)\n"
        "        if not b: break\n"
        "        n += len(b)\n"
        "    c.sendall(b\"ok\" if n == 20000 else b\"no\"); c.close()\n"
        "t = threading.Thread(target=serve); t.start()\n"
        "s = socket.create_connection((\"127.0.0.1\", 5555)); s.sendall(bytes(20000))\n"
        "s.shutdown(socket.SHUT_WR); print(s.recv(10).decode()); s.close(); t.join()\n"
        "'; i=0; until [ -n \"$(tshark -r %s -Y 'tcp.srcport!=5555 && tcp.ack==4 && "
        "tcp.flags.fin==0' 2>/dev/null)\" ]; do i=$((i+1)); if [ $i -gt 600 ]; then "
        "echo 'tshark wrote no final ACK in 60 s'; kill -INT $pid; wait $pid; exit 1; fi; "
        "sleep 0.1; done; kill -INT $pid; wait $pid",
        dir, pcap, dir, pcap);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert(strstr(out, "ok\n"), "%s", out);
    free(out);
    cr_assert_eq(ns_capture(&out, "tshark -r %s 2>/dev/null | wc -l", pcap), 0);
    int npk = atoi(out);
    free(out);
    cr_assert_geq(npk, 8, "a handshake, data, two FINs: %d", npk);

    /* The diagram: the client's and server's states, inferred. */
    const char *dargs[] = {"diagram", pcap, "--width", "100", "--svg", svg, NULL};
    struct th_result r = th_run_cli(dargs, 20000);
    cr_assert_eq(r.status, 0, "%s", r.err);
    static const char *const changes[] = {
        "B listening     127.0.0.1:5555\n", "  LISTEN :     |\n",
        " SYN seq=0 win=65495 <mss 65495,sack,ts,ws ", ">:     |\n",
        "=> SYN-SENT|",   "| => SYN-RECEIVED", "=> ESTABLISHED|",
        "| => ESTABLISHED",   "=> FIN-WAIT-1|", "| => CLOSE-WAIT",   "=> FIN-WAIT-2|",
        "| => LAST-ACK",      "=> TIME-WAIT|",  "| => CLOSED",       " 1:20001 ",
        " 1:3 ack=20002 ",    "127.0.0.1:5555",
    };
    for (size_t k = 0; k < sizeof changes / sizeof *changes; k++)
        cr_assert(strstr(r.out, changes[k]), "no '%s' in:\n%s", changes[k], r.out);
    th_result_free(&r);
    char *pic = th_read_file(svg, NULL);
    cr_assert(pic, "%s", svg);
    cr_assert(strstr(pic, "class=\"timewait\""));
    cr_assert(strstr(pic, "</svg>\n"));
    free(pic);

    /* The viewer: every packet tshark saw; at the last, A waits in
     * TIME-WAIT and B has closed. */
    const char *vargs[] = {"view", pcap, "-o", html, NULL};
    r = th_run_cli(vargs, 20000);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_result_free(&r);
    char frag[32], got[64], want[64];
    snprintf(frag, sizeof frag, "#i=%d", npk - 1);
    char *d = dom(html, frag, NULL);
    text_of(d, "count", got, sizeof got);
    snprintf(want, sizeof want, "%d packets", npk);
    cr_assert_str_eq(got, want);
    size_t items = 0;
    for (const char *p = strstr(d, "<li"); p; p = strstr(p + 1, "<li"))
        if (p[3] == '>' || p[3] == ' ')
            items++;
    cr_assert_eq(items, (size_t)npk);
    text_of(d, "pos", got, sizeof got);
    snprintf(want, sizeof want, "packet %d of %d", npk, npk);
    cr_assert_str_eq(got, want);
    text_of(d, "state-a", got, sizeof got);
    cr_assert_str_eq(got, "TIME-WAIT");
    text_of(d, "state-b", got, sizeof got);
    cr_assert_str_eq(got, "CLOSED");
    free(d);
    /* The last packet's header table (the range input moved there): the
     * kernel's IP header and TCP checksum as tshark reads them. */
    char ip_rows[512], doff[64], ck[64], *log;
    tshark_rows(pcap, npk, ip_rows, sizeof ip_rows, doff, ck, sizeof doff);
    cr_assert_eq(ns_capture(&log, "python3 %s /usr/bin/chromium %s/cdp-profile 'file://%s' "
                                  "slide:%d table",
                            th_source_path("tests/raw/cdp.py"), dir, html, npk - 1),
                 0, "%s", log);
    cr_assert(strstr(log, ip_rows), "%s\nwant:\n%s", log, ip_rows);
    cr_assert(strstr(log, doff), "%s", log);
    cr_assert(strstr(log, ck), "%s", log);
    snprintf(want, sizeof want, "slide:%d: TIME-WAIT|CLOSED|packet %d of %d", npk - 1, npk, npk);
    cr_assert(strstr(log, want), "%s", log);
    free(log);
}
