/* Packets built byte by byte (with real checksums for IPv4 and ICMP) and
 * written to a pcap file (raw IP) for the analyser and drawing tests.
 * pg_seg: between A 10.0.0.1:1000 (dir 0 sends) and B 10.0.0.2:80 (dir 1);
 * a SYN carries <mss 1460>. Each packet is pg_step_us after the last. */
#ifndef SS_TEST_PKTGEN_H
#define SS_TEST_PKTGEN_H

#include <pcap/pcap.h>
#include <stddef.h>
#include <stdint.h>

extern pcap_dumper_t *pg_dump;
extern uint64_t pg_now_us, pg_step_us;

void pg_put16(uint8_t *p, uint16_t v);
void pg_put32(uint8_t *p, uint32_t v);
void pg_write_pkt(const uint8_t *p, size_t len);
size_t pg_ip4(uint8_t *p, const char *src, const char *dst, uint8_t proto, size_t len);
size_t pg_tcp(uint8_t *t, uint16_t sp, uint16_t dp, uint32_t seq, uint32_t ack, uint8_t flags,
              uint16_t win, uint32_t len, uint16_t mss);
void pg_seg(int dir, uint32_t seq, uint32_t ack, uint8_t flags, uint16_t win, uint32_t len);
void pg_sack(uint32_t seq, uint32_t ack, uint16_t win, const uint32_t (*blocks)[2], int n);
void pg_icmp_err(uint8_t type, uint8_t code, uint32_t seq);
void pg_seg6(int dir, uint32_t seq, uint32_t ack, uint8_t flags);

/* The drawing and viewer tests' connection, into a pcap at path:
 * handshake, six back-to-back 1000-byte segments of which the third is
 * lost, three ACKs, a one-second wait, the retransmission, the close, and
 * 4 s later another connection's SYN (so TIME-WAIT lasts 4 s). 16 packets
 * of connection 0. */
void pg_small_capture(const char *path);

#endif
