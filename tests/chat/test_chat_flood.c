/* The flood test of issue 11: six talkers each send 1,000 lines of 1 KB as
 * fast as they can while reading; a watcher reads; one client never reads.
 * No reading client may be disconnected, the watcher must get every line in
 * each sender's order, the non-reader must be cut off, and the server's
 * peak RSS is reported. One poll loop drives all eight sockets. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"

TestSuite(chat_flood, .init = fx_setup, .fini = fx_teardown, .timeout = 240);

enum { TALKERS = 6, LINES = 1000, LINE_LEN = 1024 };

struct peer {
    int fd;
    char *out;              /* what it still has to send */
    size_t out_len, out_off;
    char in[8192];          /* partial line */
    size_t in_len;
    long lines, msgs, errs;
    int next_seq[TALKERS];  /* watcher: next expected line per talker */
    long order_errors;
    bool eof;
};

/* One line received by p: count it, check the order of MSG lines. */
static void got_line(struct peer *p, const char *l)
{
    p->lines++;
    if (!strncmp(l, "ERR", 3)) {
        p->errs++;
        fprintf(stderr, "flood: got %.80s\n", l);
    }
    int t, t2, seq;
    /* MSG ts tK tK NNNN padding (nick, then the text) */
    const char *sp = strchr(l, ' ');
    if (strncmp(l, "MSG ", 4) || !sp || !(sp = strchr(sp + 1, ' ')) ||
        sscanf(sp + 1, "t%d t%d %d", &t, &t2, &seq) != 3 || t != t2 || t < 0 ||
        t >= TALKERS)
        return;
    p->msgs++;
    if (seq != p->next_seq[t])
        p->order_errors++;
    p->next_seq[t] = seq + 1;
}

static void read_some(struct peer *p)
{
    char buf[65536];
    ssize_t n = read(p->fd, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EAGAIN)) {
        p->eof = true;
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == '\n') {
            p->in[p->in_len] = '\0';
            got_line(p, p->in);
            p->in_len = 0;
        } else if (p->in_len < sizeof p->in - 1) {
            p->in[p->in_len++] = buf[i];
        }
    }
}

static long vm_hwm_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6))
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

Test(chat_flood, six_talkers_no_reader_cut_watcher_gets_all_in_order)
{
    struct th_proc *srv;
    const char *extra[] = {"--stall-timeout", "2000", NULL};
    int port = fx_server(&srv, 0, extra);
    static struct peer p[TALKERS + 1];
    static struct stream js[TALKERS + 2];
    char nick[16];
    for (int i = 0; i <= TALKERS; i++) {
        snprintf(nick, sizeof nick, i < TALKERS ? "t%d" : "watcher", i);
        p[i] = (struct peer){.fd = fx_join(port, &js[i], nick)};
        fcntl(p[i].fd, F_SETFL, O_NONBLOCK);
    }
    int quiet = fx_raw(port, 4096);
    stream_init(&js[TALKERS + 1], quiet);
    put(quiet, "/nick quiet\n");
    /* Each talker's 1,000 lines of 1 KB. */
    for (int i = 0; i < TALKERS; i++) {
        p[i].out = malloc((size_t)LINES * LINE_LEN);
        for (int k = 0; k < LINES; k++) {
            char *l = p[i].out + (size_t)k * LINE_LEN;
            int n = snprintf(l, LINE_LEN, "t%d %04d ", i, k);
            memset(l + n, 'a' + i, LINE_LEN - 1 - (size_t)n);
            l[LINE_LEN - 1] = '\n';
        }
        p[i].out_len = (size_t)LINES * LINE_LEN;
    }
    struct peer *w = &p[TALKERS];
    long deadline = now_ms() + 180000;
    while (w->msgs < TALKERS * LINES && now_ms() < deadline) {
        struct pollfd pf[TALKERS + 1];
        for (int i = 0; i <= TALKERS; i++)
            pf[i] = (struct pollfd){
                .fd = p[i].eof ? -1 : p[i].fd,
                .events = POLLIN | (p[i].out_off < p[i].out_len ? POLLOUT : 0)};
        if (poll(pf, TALKERS + 1, 1000) <= 0)
            continue;
        for (int i = 0; i <= TALKERS; i++) {
            if (pf[i].revents & (POLLIN | POLLHUP | POLLERR))
                read_some(&p[i]);
            if ((pf[i].revents & POLLOUT) && p[i].out_off < p[i].out_len) {
                ssize_t n = write(p[i].fd, p[i].out + p[i].out_off,
                                  p[i].out_len - p[i].out_off);
                if (n > 0)
                    p[i].out_off += (size_t)n;
            }
        }
    }
    long hwm = vm_hwm_kb(srv->pid);
    fprintf(stderr, "flood: watcher got %ld of %d lines; server peak RSS %ld kB\n",
            w->msgs, TALKERS * LINES, hwm);
    cr_assert_eq(w->msgs, TALKERS * LINES);
    cr_assert_eq(w->order_errors, 0);
    for (int i = 0; i <= TALKERS; i++) {
        cr_assert(!p[i].eof, "reader %d was disconnected", i);
        cr_assert_eq(p[i].errs, 0, "reader %d got an error line", i);
        cr_assert_eq(p[i].out_off, p[i].out_len);
    }
    /* Talkers got everyone else's lines too. */
    for (int i = 0; i < TALKERS; i++) {
        long until = now_ms() + 30000;
        while (p[i].msgs < (TALKERS - 1) * LINES && now_ms() < until)
            read_some(&p[i]), usleep(p[i].eof ? 0 : 1000);
        cr_assert_eq(p[i].msgs, (TALKERS - 1) * LINES, "talker %d got %ld", i, p[i].msgs);
        cr_assert_eq(p[i].order_errors, 0);
    }
    /* The client that never read was cut off with a reason. */
    struct stream *q = &js[TALKERS + 1];
    long until = now_ms() + 30000;
    while (!q->eof && now_ms() < until)
        pump(q, 200);
    cr_assert(q->eof, "the non-reader was not cut off");
    cr_assert(strstr(q->buf, "ERR stalled you read nothing for 2000 ms") ||
                  count(q, "MSG ") < TALKERS * LINES,
              "non-reader got everything?");
    /* Bounded: a 256 KiB queue per client plus shared lines. Under ASan. */
    cr_assert_lt(hwm, 400 * 1024, "server peak RSS %ld kB", hwm);
    for (int i = 0; i <= TALKERS; i++) {
        free(p[i].out);
        close(p[i].fd);
    }
    close(quiet);
}
