/* pcap tap: packets to a file tcpdump, tshark and Wireshark read.
 *
 * Written with libpcap's savefile API on a "dead" handle of link type
 * DLT_RAW (LINKTYPE_RAW: each record begins with the IP header). Timestamps
 * are whatever clock the link runs on: wall time over TUN, virtual time
 * (starting at the epoch) over the simulated link. */
#include <errno.h>
#include <pcap/pcap.h>
#include <stdlib.h>

#include "sockstack/config.h"
#include "sockstack/link.h"

struct ss_pcap {
    pcap_t *dead;
    pcap_dumper_t *dumper;
    uint64_t count;
};

int ss_pcap_open(ss_pcap **out, const char *path)
{
    ss_pcap *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->dead = pcap_open_dead_with_tstamp_precision(DLT_RAW, SS_PCAP_SNAPLEN,
                                                   PCAP_TSTAMP_PRECISION_MICRO);
    if (!p->dead) {
        free(p);
        return -ENOMEM;
    }
    errno = 0;
    p->dumper = pcap_dump_open(p->dead, path);
    if (!p->dumper) {
        int e = errno ? errno : EIO;
        pcap_close(p->dead);
        free(p);
        return -e;
    }
    *out = p;
    return 0;
}

int ss_pcap_write(ss_pcap *p, uint64_t time_us, const void *pkt, size_t len)
{
    if (len > SS_PCAP_SNAPLEN)
        return -EMSGSIZE;
    struct pcap_pkthdr h;
    h.ts.tv_sec = (time_t)(time_us / 1000000u);
    h.ts.tv_usec = (suseconds_t)(time_us % 1000000u);
    h.caplen = (bpf_u_int32)len;
    h.len = (bpf_u_int32)len;
    /* pcap_dump reports no error; ferror on the stream is checked at flush. */
    pcap_dump((u_char *)p->dumper, &h, pkt);
    p->count++;
    return 0;
}

int ss_pcap_flush(ss_pcap *p)
{
    errno = 0;
    if (pcap_dump_flush(p->dumper) < 0)
        return errno ? -errno : -EIO;
    return 0;
}

uint64_t ss_pcap_count(const ss_pcap *p) { return p->count; }

void ss_pcap_close(ss_pcap *p)
{
    if (!p)
        return;
    pcap_dump_close(p->dumper);
    pcap_close(p->dead);
    free(p);
}
