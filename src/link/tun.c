/* TUN devices: open, configure by ioctl, read and write packets.
 *
 * IFF_NO_PI: no 4-byte packet-information header, so one read() is exactly
 * one IPv4 packet and one write() injects one. Configuration uses the classic
 * SIOCSIF* ioctls on an AF_INET datagram socket: the library never execs
 * ip(8), and needs nothing beyond CAP_NET_ADMIN. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "sockstack/link.h"
#include "sockstack/stack.h"

int ss_tun_open(const char *name, char *ifname, size_t ifname_cap)
{
    return ss_tun_open_opts(name, 0, ifname, ifname_cap);
}

int ss_tun_open_opts(const char *name, unsigned opts, char *ifname, size_t ifname_cap)
{
    if (name && strlen(name) >= IFNAMSIZ)
        return -ENAMETOOLONG;
    if (ifname_cap < IFNAMSIZ)
        return -EINVAL;
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    if (opts & SS_TUN_VNET)
        ifr.ifr_flags |= IFF_VNET_HDR;
    if (opts & SS_TUN_MULTI_QUEUE)
        ifr.ifr_flags |= IFF_MULTI_QUEUE;
    if (name)
        memcpy(ifr.ifr_name, name, strlen(name));
    int hdr_len = SS_VNET_HDR_LEN;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0 ||
        ((opts & SS_TUN_VNET) && ioctl(fd, TUNSETVNETHDRSZ, &hdr_len) < 0)) {
        int e = errno;
        close(fd);
        return -e;
    }
    memcpy(ifname, ifr.ifr_name, IFNAMSIZ);
    ifname[IFNAMSIZ - 1] = '\0';
    return fd;
}

/* Run one SIOCSIF or SIOCGIF request on a throwaway AF_INET socket. */
static int if_ioctl(unsigned long req, struct ifreq *ifr)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    int rc = ioctl(s, req, ifr) < 0 ? -errno : 0;
    close(s);
    return rc;
}

static void set_sin(struct sockaddr *sa, struct in_addr a)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr = a;
    memcpy(sa, &sin, sizeof sin);
}

static int set_name(struct ifreq *ifr, const char *ifname)
{
    memset(ifr, 0, sizeof *ifr);
    size_t n = strlen(ifname);
    if (n == 0 || n >= IFNAMSIZ)
        return -EINVAL;
    memcpy(ifr->ifr_name, ifname, n);
    return 0;
}

/* The stack speaks IPv4 only: keep the kernel from sending IPv6 router
 * solicitations and MLD reports down the device (best effort: a kernel
 * without IPv6 has no such file, and that is fine too). */
static void disable_ipv6(const char *ifname)
{
    char path[96];
    snprintf(path, sizeof path, "/proc/sys/net/ipv6/conf/%s/disable_ipv6", ifname);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (write(fd, "1", 1) < 0) {
            /* nothing to do: the device still works, with some IPv6 noise */
        }
        close(fd);
    }
}

int ss_tun_configure(const char *ifname, struct in_addr kernel_addr,
                     unsigned prefix, unsigned mtu)
{
    if (prefix < 1 || prefix > 30)
        return -EINVAL; /* the prefix must hold the stack's address too */
    struct ifreq ifr;
    int rc = set_name(&ifr, ifname);
    if (rc < 0)
        return rc;
    set_sin(&ifr.ifr_addr, kernel_addr);
    if ((rc = if_ioctl(SIOCSIFADDR, &ifr)) < 0)
        return rc;
    struct in_addr mask = {htonl(~(uint32_t)0 << (32 - prefix))};
    set_name(&ifr, ifname);
    set_sin(&ifr.ifr_netmask, mask);
    if ((rc = if_ioctl(SIOCSIFNETMASK, &ifr)) < 0)
        return rc;
    return ss_tun_up(ifname, mtu);
}

int ss_tun_up(const char *ifname, unsigned mtu)
{
    struct ifreq ifr;
    int rc = set_name(&ifr, ifname);
    if (rc < 0)
        return rc;
    if (mtu) {
        ifr.ifr_mtu = (int)mtu;
        if ((rc = if_ioctl(SIOCSIFMTU, &ifr)) < 0)
            return rc;
    }
    disable_ipv6(ifname);
    set_name(&ifr, ifname);
    if ((rc = if_ioctl(SIOCGIFFLAGS, &ifr)) < 0)
        return rc;
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    return if_ioctl(SIOCSIFFLAGS, &ifr);
}

int ss_tun_set_txqueuelen(const char *ifname, unsigned packets)
{
    struct ifreq ifr;
    int rc = set_name(&ifr, ifname);
    if (rc < 0)
        return rc;
    ifr.ifr_qlen = (int)packets;
    return if_ioctl(SIOCSIFTXQLEN, &ifr);
}

int ss_tun_fd_mtu(int fd)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    if (ioctl(fd, TUNGETIFF, &ifr) < 0)
        return -errno;
    int rc = if_ioctl(SIOCGIFMTU, &ifr);
    return rc < 0 ? rc : ifr.ifr_mtu;
}

int ss_tun_down(const char *ifname)
{
    struct ifreq ifr;
    int rc = set_name(&ifr, ifname);
    if (rc < 0)
        return rc;
    if ((rc = if_ioctl(SIOCGIFFLAGS, &ifr)) < 0)
        return rc;
    ifr.ifr_flags &= ~IFF_UP;
    return if_ioctl(SIOCSIFFLAGS, &ifr);
}

ssize_t ss_tun_read(int fd, void *buf, size_t cap)
{
    for (;;) {
        ssize_t n = read(fd, buf, cap);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

int ss_tun_write(int fd, const void *pkt, size_t len)
{
    for (;;) {
        ssize_t n = write(fd, pkt, len);
        if (n >= 0)
            return 0;
        if (errno == EINTR)
            continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

int ss_tun_set_offload(int fd, bool on)
{
    unsigned long off = on ? TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 : 0;
    return ioctl(fd, TUNSETOFFLOAD, off) < 0 ? -errno : 0;
}

_Static_assert(sizeof(struct virtio_net_hdr_mrg_rxbuf) == SS_VNET_HDR_LEN, "vnet header");

int ss_vnet_hdr_get(const uint8_t *hdr, struct ss_vnet_rx *out)
{
    struct virtio_net_hdr h;
    memcpy(&h, hdr, sizeof h);
    memset(out, 0, sizeof *out);
    out->csum_partial = h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM;
    out->csum_ok = out->csum_partial || (h.flags & VIRTIO_NET_HDR_F_DATA_VALID);
    out->csum_start = h.csum_start;
    out->csum_offset = h.csum_offset;
    uint8_t type = h.gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;
    if (type == VIRTIO_NET_HDR_GSO_NONE)
        return 0;
    if (type != VIRTIO_NET_HDR_GSO_TCPV4 && type != VIRTIO_NET_HDR_GSO_TCPV6)
        return -EINVAL;
    out->gso_size = h.gso_size;
    return 0;
}

void ss_vnet_hdr_put(uint8_t *hdr, const uint8_t *pkt, size_t len, uint16_t gso_size,
                     bool csum_partial)
{
    struct virtio_net_hdr_mrg_rxbuf m;
    memset(&m, 0, sizeof m);
    size_t ihl = len ? (size_t)(pkt[0] & 15) * 4 : 0;
    uint8_t proto = len > 9 ? pkt[9] : 0;
    if (csum_partial && (proto == IPPROTO_TCP || proto == IPPROTO_UDP) && len > ihl) {
        m.hdr.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        m.hdr.csum_start = (uint16_t)ihl;
        m.hdr.csum_offset = proto == IPPROTO_TCP ? 16 : 6;
    }
    if (gso_size && proto == IPPROTO_TCP && len >= ihl + 20) {
        m.hdr.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
        m.hdr.gso_size = gso_size;
        m.hdr.hdr_len = (uint16_t)(ihl + (size_t)(pkt[ihl + 12] >> 4) * 4);
    }
    memcpy(hdr, &m, sizeof m);
}

int ss_csum_complete(uint8_t *pkt, size_t len, size_t start, size_t offset)
{
    if (start >= len || start + offset + 2 > len)
        return -EINVAL;
    uint16_t c = ss_csum_fold(ss_csum_add(0, pkt + start, len - start));
    pkt[start + offset] = (uint8_t)(c >> 8);
    pkt[start + offset + 1] = (uint8_t)c;
    return 0;
}

int ss_tun_write2(int fd, const void *hdr, size_t hdr_len, const void *pkt, size_t len)
{
    struct iovec iov[2] = {{(void *)hdr, hdr_len}, {(void *)pkt, len}};
    return ss_tun_writev(fd, iov, 2);
}

int ss_tun_writev(int fd, const struct iovec *iov, int iovcnt)
{
    for (;;) {
        ssize_t n = writev(fd, iov, iovcnt);
        if (n >= 0)
            return 0;
        if (errno == EINTR)
            continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}
