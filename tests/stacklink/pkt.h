/* Test helpers for the link tests: IPv4/UDP packets built byte by byte with
 * real checksums, and a tshark check of a pcap file. */
#ifndef SS_TEST_PKT_H
#define SS_TEST_PKT_H

#include <stddef.h>
#include <stdint.h>

/* Internet checksum (RFC 1071) of buf, starting from partial sum `sum`. */
uint16_t tp_csum(const void *buf, size_t len, uint32_t sum);

/* Build an IPv4/UDP packet src:sport -> dst:dport (addresses in host
 * order) carrying payload; returns its length (<= cap) or 0. */
size_t tp_udp(uint8_t *out, size_t cap, uint32_t src, uint16_t sport,
              uint32_t dst, uint16_t dport, const void *payload, size_t plen);

/* Run tshark on path. *count gets the number of frames, *bad the number of
 * frames with a bad IP/UDP/TCP/ICMP checksum or a malformed-packet expert
 * item. Returns 0, or -1 if tshark could not run. */
int tp_tshark_check(const char *path, long *count, long *bad);

/* The same, except that TCP segments from `kernel_addr` whose checksum is
 * 0xffff where 0x0000 is computed are not counted: RFC 1624 makes the two
 * equal, Linux's incremental checksum updates emit it, and tshark flags
 * it. The stack's own packets get no such leniency. */
int tp_tshark_check_from_kernel(const char *path, const char *kernel_addr,
                                long *count, long *bad);

#endif
