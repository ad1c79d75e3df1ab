/* Every tunable in sockstack, with its default and the reason for it.
 *
 * Compile-time defaults only; runtime options live in each module's options
 * struct and start from these values. Keep one section per layer, in the
 * order of ../shared/DESIGN.md, and give each value a one-line reason.
 */
#ifndef SOCKSTACK_CONFIG_H
#define SOCKSTACK_CONFIG_H

/* ---- reactor ------------------------------------------------------------ */
/* Events taken from the poller per wait: enough to amortise the syscall,
 * small enough to keep the array on the loop's own allocation. */
#define SS_REACTOR_MAX_EVENTS 256
/* Initial timer-heap capacity; it doubles on demand (the only growth path). */
#define SS_REACTOR_TIMERS_INIT 64

/* ---- sock (kernel backend) ---------------------------------------------- */
/* listen() backlog: the kernel caps it at somaxconn; 5 belongs to 1983. */
#define SS_LISTEN_BACKLOG 511

/* ---- server framework --------------------------------------------------- */
/* Bytes a connection may have queued for output before the framework stops
 * reading from it (backpressure): one socket buffer's worth. */
#define SS_SERVER_OUTBUF_MAX (256 * 1024)
/* Read chunk per recv(); large enough for bulk echo, small enough for stack. */
#define SS_SERVER_READ_CHUNK (64 * 1024)
/* Seconds in-flight connections get to finish after SIGINT/SIGTERM. */
#define SS_SERVER_GRACE_SECS 5
/* Default cap on simultaneous connections per service. */
#define SS_SERVER_MAX_CONNS 100000

/* ---- link --------------------------------------------------------------- */
/* Packets a simulated link holds per direction before drop-tail: about a
 * router's default txqueuelen (1000), so queueing loss appears only when the
 * sender really overruns the bandwidth-delay product. */
#define SS_SIM_QUEUE_LIMIT 1000
/* Longest packet the simulated link carries: Ethernet's 1500-byte MTU, what
 * a TUN device has by default and what the stack's MSS of 1460 assumes. */
#define SS_SIM_MTU 1500
/* Hold-back of a reordered packet when none is given: 1 ms is enough for the
 * next few packets to overtake it at any delay the demo uses. */
#define SS_SIM_REORDER_US 1000
/* Snap length of pcap files: the largest IPv4 packet, so nothing is cut. */
#define SS_PCAP_SNAPLEN 65535
/* Read buffer for one TUN packet: the largest IPv4 packet. */
#define SS_TUN_BUF 65536

#endif
