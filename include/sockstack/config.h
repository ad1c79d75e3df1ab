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

/* ---- apps: netcat (connect / listen) ------------------------------------ */
/* Input bytes held for the socket: stdin is read only into free space here,
 * so a slow peer stops stdin (backpressure). One datagram fits. */
#define SS_NC_INBUF (64 * 1024)
/* Received bytes held for stdout (raw, or hex dump lines): nothing more is
 * received while it is full, so a slow stdout stops the socket. */
#define SS_NC_OUTBUF (64 * 1024)
/* Largest datagram sent: the IPv4 UDP payload limit (65535 - 20 - 8); a
 * longer input line is sent as several datagrams. */
#define SS_NC_DGRAM_MAX 65507
/* Default longest datagram received whole: every UDP payload fits, so only
 * an explicit --recv-size (or a large Unix datagram) truncates. */
#define SS_NC_RECV_SIZE 65536
/* Upper bound for --recv-size: bounded memory per conversation. */
#define SS_NC_RECV_SIZE_MAX (1024 * 1024)
/* Default --wait: a UDP reply on loopback or a LAN comes well within 1 s. */
#define SS_NC_WAIT_MS 1000
/* Bytes written to stdout per readiness report: PIPE_BUF, the most a pipe
 * takes without blocking when it says it is writable. */
#define SS_NC_WRITE_CHUNK 4096

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

/* ---- proto: framing ---------------------------------------------------- */
/* Largest message a decoder accepts unless configured: big enough for any
 * sane request, small enough that a lying length field cannot hurt. */
#define SS_FRAME_MAX_DEFAULT (16u * 1024 * 1024)
/* Messages one ss_frame_batch gathers for one writev (2 iovecs each, well
 * under IOV_MAX = 1024). */
#define SS_FRAME_BATCH_MAX 64
/* First allocation of a decoder's collection buffer; it doubles as bytes
 * arrive, up to the message length. */
#define SS_FRAME_BUF_INIT 4096

/* ---- proto: authentication ---------------------------------------------- */
/* Challenge and HMAC-SHA256 sizes on the wire (the tutorial's 32 bytes). */
#define SS_AUTH_CHALLENGE_LEN 32
/* Longest key accepted from a key file (keygen writes 64 hex characters). */
#define SS_AUTH_KEY_MAX 1024
/* Seconds a peer has to finish the handshake before it is dropped. */
#define SS_AUTH_TIMEOUT_SECS 10
/* Addresses whose recent failures are remembered (oldest evicted first). */
#define SS_AUTH_THROTTLE_SLOTS 1024
/* First penalty after a failed attempt; doubles per further failure. */
#define SS_AUTH_THROTTLE_BASE_MS 250
/* Longest penalty: slow a guesser down, never lock a user out for long. */
#define SS_AUTH_THROTTLE_MAX_MS 8000
/* A failure older than this is forgotten. */
#define SS_AUTH_THROTTLE_FORGET_MS (10 * 60 * 1000)

/* ---- apps: exec --------------------------------------------------------- */
/* Largest exec message (request, stdin or output chunk): commands and
 * 64 KiB chunks fit with room to spare; anything bigger is a broken peer. */
#define SS_EXEC_FRAME_MAX (1024 * 1024)
/* Bytes read from a child's pipe per output message. */
#define SS_EXEC_CHUNK (64 * 1024)
/* Stdin bytes buffered for a child that is not reading before the server
 * stops reading the connection (backpressure towards the client). */
#define SS_EXEC_STDIN_MAX (256 * 1024)
/* --compat tutorial: one recv of at most this many bytes is the command
 * (the tutorial's recv(1024)); replies are capped to keep memory bounded. */
#define SS_EXEC_COMPAT_CMD_MAX 1024
#define SS_EXEC_COMPAT_REPLY_MAX (16u * 1024 * 1024)

/* ---- apps: files -------------------------------------------------------- */
/* Data message size: large enough that framing costs nothing, small enough
 * to keep per-connection memory bounded. */
#define SS_FILES_CHUNK (256 * 1024)
/* Largest files message (a data chunk plus its tag). */
#define SS_FILES_FRAME_MAX (SS_FILES_CHUNK + 64 * 1024)
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
