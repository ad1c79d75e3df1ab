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

/* ---- stack (user-space TCP/IP core) ------------------------------------ */
/* TTL of packets we originate: the common Linux/BSD default. */
#define SS_STACK_TTL 64
/* MSS we advertise: Ethernet/TUN MTU 1500 - 20 (IPv4) - 20 (TCP). */
#define SS_STACK_MSS 1460
/* MSS assumed when the peer sends no MSS option (RFC 9293 3.7.1, MUST-15). */
#define SS_STACK_DEFAULT_PEER_MSS 536
/* Per-socket send buffer: several windows of data in flight. */
#define SS_STACK_SNDBUF (128 * 1024)
/* Per-socket receive buffer: the largest window without window scaling. */
#define SS_STACK_RCVBUF 65535
/* Maximum segment lifetime; TIME-WAIT is 2*MSL. RFC 9293 says 2 minutes;
 * 30 s like Linux' 60 s TIME-WAIT keeps ports from piling up. */
#define SS_STACK_MSL_MS 30000
/* RFC 6298 (2.4): RTO minimum 1 s (Linux uses 200 ms; configurable). */
#define SS_STACK_RTO_MIN_MS 1000
/* RFC 6298 (2.5): a maximum of at least 60 s may be placed on RTO. */
#define SS_STACK_RTO_MAX_MS 60000
/* RFC 6298 (2.1): initial RTO of 1 s. */
#define SS_STACK_RTO_INITIAL_MS 1000
/* RTO expiries before a connection gives up with ETIMEDOUT (Linux tcp_retries2). */
#define SS_STACK_MAX_RETRIES 15
/* SYN retransmissions before connect fails: 7 gives 1+2+4+8+16+32+60+60
 * = 183 s, RFC 9293 MUST-23 asks for at least 3 minutes (Linux' 6: 127 s). */
#define SS_STACK_SYN_RETRIES 7
/* Keep-alive (RFC 1122 4.2.3.6): idle 2 h, then probes every 75 s, 9 of them. */
#define SS_STACK_KEEPIDLE_S 7200
#define SS_STACK_KEEPINTVL_S 75
#define SS_STACK_KEEPCNT 9
/* Delayed ACK bound (RFC 1122 4.2.3.2: < 0.5 s); 40 ms like Linux' minimum. */
#define SS_STACK_DELACK_MS 40
/* Largest listen backlog (SYN-RECEIVED + unaccepted). */
#define SS_STACK_SYN_BACKLOG 128
/* Sockets in the pool (TCP incl. TIME-WAIT, UDP, listeners). */
#define SS_STACK_MAX_SOCKETS 64
/* Out-of-order ranges kept per connection before new ones are dropped. */
#define SS_STACK_OOO_MAX 16
/* Datagrams queued per UDP socket before new ones are dropped. */
#define SS_STACK_UDP_RCVQ_MAX 64
/* IPv4 reassemblies in progress; each holds up to 64 KiB. */
#define SS_STACK_FRAG_SLOTS 4
/* RFC 791 suggests a 15 s reassembly timer lower bound; Linux uses 30 s. */
#define SS_STACK_FRAG_TIMEOUT_MS 30000
/* Challenge ACKs per second per stack (RFC 5961 section 7; Linux' old
 * default 1000): bounds what a blind attacker can make us send. */
#define SS_STACK_CHALLENGE_ACK_LIMIT 1000
/* Ephemeral port range (RFC 6335 dynamic ports). */
#define SS_STACK_EPHEMERAL_LO 49152
#define SS_STACK_EPHEMERAL_HI 65535

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
/* Bytes read from the TUN device per wake-up and handed to the stack as one
 * batch: four largest packets, or the whole 64-packet batch at MTU 1500. */
#define SS_TUN_BATCH_BYTES (4 * SS_TUN_BUF)

#endif
