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

/* ---- apps: chat (issue 4) ----------------------------------------------- */
/* Longest line a client may send, bytes without the EOL: a long paragraph,
 * and small enough that one base64 file chunk always fits in it. */
#define SS_CHAT_MAX_LINE 4096
/* Nickname length cap: fits a status line and a log column. */
#define SS_CHAT_NICK_MAX 24
/* Public messages replayed on join: a screenful of context. */
#define SS_CHAT_JOIN_HISTORY 20
/* Largest N for /history N: bounds one reply's queue usage. */
#define SS_CHAT_HISTORY_MAX 1000
/* Offline users listed by /who (most recently seen first). */
#define SS_CHAT_WHO_MAX 200
/* Largest single file offer: stored in SQLite until accepted. */
#define SS_CHAT_FILE_MAX (64ull * 1024 * 1024)
/* Pending offer bytes kept per recipient (online or offline). */
#define SS_CHAT_FILE_QUOTA (128ull * 1024 * 1024)
/* Raw bytes per file chunk line: 2048 bytes -> 2732 base64 characters,
 * which leaves room for the command inside SS_CHAT_MAX_LINE. */
#define SS_CHAT_CHUNK 2048
/* PBKDF2-HMAC-SHA256 iterations for registered passwords (OWASP's 2023
 * figure is 600k; 100k keeps a login near 50 ms on one core). */
#define SS_CHAT_PBKDF2_ITER 100000
/* Per-client output queue in the chat server: a client that falls this far
 * behind is told and disconnected, so it never slows the others. */
#define SS_CHAT_OUTQ_MAX (256 * 1024)
/* SO_SNDBUF of each chat connection (the kernel doubles it): without a
 * bound, send-buffer autotuning parks megabytes for a stuck reader before
 * our own queue notices; 64 kB still streams files at loopback speed. */
#define SS_CHAT_SNDBUF (64 * 1024)
/* Client: reconnect backoff starts here and doubles up to the cap. */
#define SS_CHAT_BACKOFF_MIN_MS 250
#define SS_CHAT_BACKOFF_MAX_MS 8000
/* Client: longest server line it accepts (a max line plus its prefix). */
#define SS_CHAT_CLIENT_LINE_MAX (SS_CHAT_MAX_LINE + 256)
/* Client scrollback lines kept in the ncurses pane. */
#define SS_CHAT_SCROLLBACK 2000

/* ---- apps: udp-chat ----------------------------------------------------- */
/* Largest datagram: stays under the IPv4 minimum-reassembly-safe 1472-byte
 * payload of a 1500-byte Ethernet MTU, so no fragmentation. */
#define SS_UDPCHAT_MAX_DGRAM 1400
/* Seconds a peer stays on the relay list after its last datagram. */
#define SS_UDPCHAT_PEER_TTL 300
/* Peers the relay remembers (bounded table). */
#define SS_UDPCHAT_MAX_PEERS 4096

/* ---- apps: broadcast and discovery -------------------------------------- */
/* UDP port discovery probes go to when --port is not given. */
#define SS_DISCOVER_PORT 7999
/* Seconds `sockstack discover` waits for answers by default. */
#define SS_DISCOVER_WAIT 2

#endif
