/* Capture for the analyser: libpcap, live (with a BPF filter) or from a
 * file, optionally written to a pcap file as well.
 *
 * Path of a packet: (live) reactor readable -> on_readable() ->
 *   pcap_dispatch() -> on_packet(); (file) pcap_next_ex() -> on_packet();
 *   on_packet() -> dump -> strip the link header (link_offset) ->
 *   ss_ana_packet() -> the caller's callback. */
#include <errno.h>
#include <pcap/pcap.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "sockstack/err.h"
#include "sockstack/reactor.h"
#include "sockstack/viz.h"
#include "core/bytes.h"

enum { SNAPLEN = 65535, BUFFER_DEFAULT = 8 << 20 };

struct sniff {
    const struct ss_sniff_cfg *cfg;
    ss_sniff_cb cb;
    void *ctx;
    pcap_t *p;
    pcap_dumper_t *dump;
    ss_ana *ana;
    int dlt;
    uint64_t seen;
    ss_loop *loop;
};

/* Bytes before the IP header for this link type; -1 when not IP. */
static long link_offset(int dlt, const uint8_t *f, size_t len)
{
    switch (dlt) {
    case DLT_EN10MB: {
        size_t off = 12;
        while (len >= off + 2 && (ss__get16(f + off) == 0x8100 || ss__get16(f + off) == 0x88a8))
            off += 4;
        if (len < off + 2)
            return -1;
        uint16_t et = ss__get16(f + off);
        return et == 0x0800 || et == 0x86dd ? (long)off + 2 : -1;
    }
    case DLT_RAW:
#ifdef DLT_IPV4
    case DLT_IPV4:
    case DLT_IPV6:
#endif
        return 0;
    case DLT_LINUX_SLL:
        return len >= 16 && (ss__get16(f + 14) == 0x0800 || ss__get16(f + 14) == 0x86dd) ? 16 : -1;
#ifdef DLT_LINUX_SLL2
    case DLT_LINUX_SLL2:
        return len >= 20 && (ss__get16(f) == 0x0800 || ss__get16(f) == 0x86dd) ? 20 : -1;
#endif
    case DLT_NULL:
    case DLT_LOOP:
        return len >= 4 ? 4 : -1;
    default:
        return -1;
    }
}

static void on_packet(u_char *arg, const struct pcap_pkthdr *h, const u_char *f)
{
    struct sniff *s = (struct sniff *)arg;
    s->seen++;
    if (s->dump)
        pcap_dump((u_char *)s->dump, h, f);
    long off = link_offset(s->dlt, f, h->caplen);
    if (off >= 0) {
        struct ss_ana_rec rec;
        uint64_t t = (uint64_t)h->ts.tv_sec * 1000000u + (uint64_t)h->ts.tv_usec;
        if (ss_ana_packet(s->ana, t, f + off, h->caplen - (size_t)off, &rec) == 1)
            s->cb(s->ctx, &rec);
    }
    if (s->cfg->count && s->seen >= s->cfg->count) {
        if (s->loop)
            ss_loop_stop(s->loop);
        pcap_breakloop(s->p);
    }
}

static void on_readable(ss_loop *loop, int fd, unsigned events, void *arg)
{
    struct sniff *s = arg;
    if (pcap_dispatch(s->p, -1, on_packet, (u_char *)s) == PCAP_ERROR)
        ss_loop_stop(loop);
}

static void on_signal(ss_loop *loop, int signo, void *arg)
{
    ss_loop_stop(loop);
}

static int open_live(struct sniff *s, char *err)
{
    s->p = pcap_create(s->cfg->iface, err);
    if (!s->p)
        return -ENODEV;
    /* The kernel's ring holds buffer / frame packets, and a frame holds a
     * whole snapshot when the device has offloads (a TUN with
     * TUNSETOFFLOAD: libpcap cannot size frames by the MTU). 262,144 bytes,
     * tcpdump's snapshot, in libpcap's default 2 MB left 8 frames, and a
     * burst of more than 8 packets before we ran lost the rest, unseen
     * (the README's tour waited for a close that was never captured).
     * 65,535 bytes hold any IPv4 packet, GSO's included; with 8 MiB that
     * is 128 frames. */
    pcap_set_snaplen(s->p, SNAPLEN);
    pcap_set_buffer_size(s->p, (int)(s->cfg->buffer_bytes ? s->cfg->buffer_bytes : BUFFER_DEFAULT));
    pcap_set_immediate_mode(s->p, 1);
    pcap_set_timeout(s->p, 100);
    int r = pcap_activate(s->p);
    if (r < 0) {
        snprintf(err, PCAP_ERRBUF_SIZE, "%s: %s", s->cfg->iface, pcap_geterr(s->p));
        return r == PCAP_ERROR_NO_SUCH_DEVICE ? -ENODEV
               : r == PCAP_ERROR_PERM_DENIED  ? -EPERM
                                              : -EIO;
    }
    if (pcap_setnonblock(s->p, 1, err) < 0)
        return -EIO;
    return 0;
}

static int run_live(struct sniff *s)
{
    int fd = pcap_get_selectable_fd(s->p);
    if (fd < 0)
        return -EOPNOTSUPP;
    int r = ss_loop_new(&s->loop);
    if (r == 0)
        r = ss_loop_signal_add(s->loop, SIGINT, on_signal, NULL);
    if (r == 0)
        r = ss_loop_signal_add(s->loop, SIGTERM, on_signal, NULL);
    if (r == 0)
        r = ss_loop_io_add(s->loop, fd, SS_READ, on_readable, s);
    /* Ready only now: a SIGINT right after "capturing" must find its
     * handler (before, it could end the process before the last packets
     * and the counts were read). */
    if (r == 0 && s->cfg->ready)
        s->cfg->ready(s->ctx);
    if (r == 0)
        r = ss_loop_run(s->loop);
    /* What the kernel still holds when we stop. */
    if (r == 0 && !(s->cfg->count && s->seen >= s->cfg->count))
        pcap_dispatch(s->p, -1, on_packet, (u_char *)s);
    struct pcap_stat ps;
    if (s->cfg->stats && pcap_stats(s->p, &ps) == 0)
        *s->cfg->stats = (struct ss_sniff_stats){.seen = s->seen, .dropped = ps.ps_drop};
    ss_loop_free(s->loop);
    s->loop = NULL;
    return r;
}

int ss_sniff_run(const struct ss_sniff_cfg *cfg, ss_sniff_cb cb, void *ctx, char *err,
                 size_t errlen)
{
    char e[PCAP_ERRBUF_SIZE] = "";
    if (!!cfg->iface == !!cfg->read_path) {
        snprintf(err, errlen, "give one of a device and a file");
        return -EINVAL;
    }
    struct sniff s = {.cfg = cfg, .cb = cb, .ctx = ctx};
    int r = ss_ana_new(cfg->max_conns ? cfg->max_conns : 4096, &s.ana);
    if (r < 0)
        return r;
    if (cfg->read_path) {
        s.p = pcap_open_offline(cfg->read_path, e);
        r = s.p ? 0 : -ENOENT;
    } else {
        r = open_live(&s, e);
    }
    if (r == 0 && cfg->filter) {
        struct bpf_program prog = {0};
        if (pcap_compile(s.p, &prog, cfg->filter, 1, PCAP_NETMASK_UNKNOWN) < 0 ||
            pcap_setfilter(s.p, &prog) < 0) {
            snprintf(e, sizeof e, "filter '%s': %s", cfg->filter, pcap_geterr(s.p));
            r = -EINVAL;
        }
        if (r == 0 || prog.bf_insns)
            pcap_freecode(&prog);
    }
    if (r == 0 && cfg->write_path) {
        s.dump = pcap_dump_open(s.p, cfg->write_path);
        if (!s.dump) {
            snprintf(e, sizeof e, "%s: %s", cfg->write_path, pcap_geterr(s.p));
            r = -EIO;
        }
    }
    if (r == 0) {
        s.dlt = pcap_datalink(s.p);
        if (cfg->read_path) {
            if (cfg->ready)
                cfg->ready(ctx);
            struct pcap_pkthdr *h;
            const u_char *f;
            int k;
            while ((k = pcap_next_ex(s.p, &h, &f)) == 1) {
                on_packet((u_char *)&s, h, f);
                if (cfg->count && s.seen >= cfg->count)
                    break;
            }
            if (k == PCAP_ERROR) {
                snprintf(e, sizeof e, "%s: %s", cfg->read_path, pcap_geterr(s.p));
                r = SS_EBADPKT;
            }
        } else {
            r = run_live(&s);
        }
    }
    if (s.dump)
        pcap_dump_close(s.dump);
    if (s.p)
        pcap_close(s.p);
    ss_ana_free(s.ana);
    snprintf(err, errlen, "%s", e);
    return r;
}
