/* Every tunable in sockstack, with its default and the reason for it.
 *
 * Compile-time defaults only; runtime options live in each module's options
 * struct and start from these values. Keep one section per layer, in the
 * order of ../shared/DESIGN.md, and give each value a one-line reason.
 */
#ifndef SOCKSTACK_CONFIG_H
#define SOCKSTACK_CONFIG_H

#include "sockstack/api.h"
SS_API_BEGIN

/* ---- reactor ------------------------------------------------------------ */
/* Events taken from the poller per wait: enough to amortise the syscall,
 * small enough to keep the array on the loop's own allocation. */
#define SS_REACTOR_MAX_EVENTS 256
/* Initial timer-heap capacity; it doubles on demand (the only growth path). */
#define SS_REACTOR_TIMERS_INIT 64
/* Upper bound of --busy-poll: a spin longer than a scheduler tick only
 * burns the CPU another task could use. */
#define SS_REACTOR_BUSY_POLL_MAX_US 10000

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
/* Bytes written to stdout per readiness report where the kernel cannot
 * write without waiting (RWF_NOWAIT refused: a terminal): PIPE_BUF, the
 * most it takes without blocking when it says it is writable. Pipes and
 * sockets take a whole buffer per write instead (see nc.c). */
#define SS_NC_WRITE_CHUNK 4096

/* ---- server framework --------------------------------------------------- */
/* Bytes a connection may have queued for output before the framework stops
 * reading from it (backpressure): one socket buffer's worth. */
#define SS_SERVER_OUTBUF_MAX (256 * 1024)
/* Read chunk per recv(); large enough for bulk echo, small enough for stack. */
#define SS_SERVER_READ_CHUNK (64 * 1024)
/* Seconds in-flight connections get to finish after SIGINT/SIGTERM. */
#define SS_SERVER_GRACE_SECS 5
/* After a server closes a connection whose peer is still sending: how long
 * it reads and drops the peer's bytes (after sending FIN) before closing
 * anyway. Closing with unread bytes sends RST, which makes the peer's TCP
 * drop the server's last reply unread (nginx: lingering_timeout 5 s). */
#define SS_SERVER_LINGER_MS 2000
/* Default cap on simultaneous connections per service. */
#define SS_SERVER_MAX_CONNS 100000
/* Open connections from one IP address at most for `serve exec` and
 * `serve files` (--max-per-addr; the framework's own default is no cap):
 * one host cannot take every descriptor or process slot, while a busy
 * client machine or a NAT still fits. */
#define SS_SERVER_MAX_PER_ADDR 64
/* Output queue chunk: holds a typical reply whole, 4 pages, and 16 of them
 * cover the default queue limit. */
#define SS_SERVER_OUTBUF_CHUNK 16384
/* Spent output chunks kept per event loop for reuse (4 MiB at most). */
#define SS_SERVER_CHUNK_POOL 256
/* Closed connection blocks kept per loop for reuse (no malloc per accept). */
#define SS_SERVER_CONN_POOL 1024
/* accept() calls per listener wake-up: batches under a SYN flood, yet lets
 * the loop serve established connections in between. */
#define SS_SERVER_ACCEPT_BATCH 64
/* Datagrams read per wake-up, for the same reason. */
#define SS_SERVER_DGRAM_BATCH 64
/* Out of descriptors (EMFILE): pause accepting this long instead of spinning
 * on a listener that stays readable. */
#define SS_SERVER_EMFILE_PAUSE_MS 100
/* Largest datagram a datagram service reads (the UDP maximum). */
#define SS_SERVER_DGRAM_MAX 65535

/* ---- proto: framing ---------------------------------------------------- */
/* Largest message a decoder accepts unless configured: big enough for any
 * sane request, small enough that a lying length field cannot hurt. */
#define SS_FRAME_MAX_DEFAULT (16u * 1024 * 1024)
/* Messages one ss_frame_batch gathers for one writev (2 iovecs each, well
 * under IOV_MAX = 1024). */
#define SS_FRAME_BATCH_MAX 64
/* Payloads up to this size are copied, with their headers, into the
 * batch's own buffer so that many small messages share one iovec (the
 * kernel walks iovecs one by one; for tiny messages copying is cheaper). */
#define SS_FRAME_SMALL_MSG 256
/* That buffer's size: one socket write's worth of small messages. */
#define SS_FRAME_BATCH_SMALL (16 * 1024)
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
/* Failures with one key, from any address, before every new attempt waits
 * too: rotating source addresses (any of 127.0.0.0/8, a /64) does not
 * escape the throttle, while a few typos do not slow everyone down. */
#define SS_AUTH_THROTTLE_KEY_FREE 8

/* ---- apps: exec --------------------------------------------------------- */
/* Largest exec message (request, stdin or output chunk): commands and
 * 64 KiB chunks fit with room to spare; anything bigger is a broken peer. */
#define SS_EXEC_FRAME_MAX (1024 * 1024)
/* Bytes read from a child's pipe per output message. */
#define SS_EXEC_CHUNK (64 * 1024)
/* Stdin bytes buffered for a child that is not reading before the server
 * stops reading the connection (backpressure towards the client). */
#define SS_EXEC_STDIN_MAX (256 * 1024)
/* Most arguments in one request (argv[0] included): more is refused, never
 * cut short. */
#define SS_EXEC_ARGS_MAX 4096
/* --compat tutorial: the longest command line a request may announce (the
 * tutorial's recv(1024)); replies are capped to keep memory bounded. */
#define SS_EXEC_COMPAT_CMD_MAX 1024
#define SS_EXEC_COMPAT_REPLY_MAX (16u * 1024 * 1024)

/* ---- apps: files -------------------------------------------------------- */
/* Data message size: large enough that framing costs nothing, small enough
 * to keep per-connection memory bounded. */
#define SS_FILES_CHUNK (256 * 1024)
/* Largest files message (a data chunk plus its tag). */
#define SS_FILES_FRAME_MAX (SS_FILES_CHUNK + 64 * 1024)
/* Longest name in a request (bytes): longer is refused, never cut. */
#define SS_FILES_NAME_MAX 1023
/* Default largest file a PUT may announce (--max-size): 1 TiB. */
#define SS_FILES_SIZE_MAX (1ull << 40)
/* Default age after which a partial file of an interrupted upload is
 * removed (--part-expire): a day to come back with --resume. */
#define SS_FILES_PART_EXPIRE_SECS (24 * 60 * 60)
/* Most entries the --quota walk of the root visits: a bigger tree counts as
 * over the quota rather than stalling the server. */
#define SS_FILES_QUOTA_WALK_MAX 100000
/* ---- apps: chat (issue 4) ----------------------------------------------- */
/* First size of the chat room's nick index (it doubles as the room fills;
 * one pointer per slot). */
#define SS_CHAT_NICK_TAB_INIT 64
/* Longest line a client may send, bytes without the EOL: a long paragraph,
 * and small enough that one base64 file chunk always fits in it. */
#define SS_CHAT_MAX_LINE 4096
/* Nickname length cap: fits a status line and a log column. */
#define SS_CHAT_NICK_MAX 24
/* Public messages replayed on join: a screenful of context. */
#define SS_CHAT_JOIN_HISTORY 20
/* Text bytes a store operation is allocated with at least, so that the
 * one the room keeps for the next (chat.c, op_free) fits most lines. */
#define SS_CHAT_OP_TEXT 256
/* Largest N for /history N: bounds one reply's queue usage. */
#define SS_CHAT_HISTORY_MAX 1000
/* History rows a --db store keeps, the newest (--history-keep): the same
 * as the cluster's stream (SS_CHAT_HIST_STREAM_MAX), months of a busy
 * room to page back through, and a bound on the file (about 100 bytes a
 * row plus the text). Without --db the store keeps history_max rows. */
#define SS_CHAT_DB_HISTORY_KEEP 100000
/* Offline users listed by /who (most recently seen first). */
#define SS_CHAT_WHO_MAX 200
/* Above this many users online, JOIN/LEAVE/NICK are no longer sent to
 * everyone (each join would cost one line per member: 10,000 joins would
 * be 10^8 lines); /who still lists everyone. Large chat services do the
 * same with presence in big rooms. */
#define SS_CHAT_PRESENCE_MAX 1000
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
/* Hard cap of one chat client's output queue (bytes of the shared lines it
 * references): a memory bound, not flow control. Talkers wait long before
 * a reading client gets near it (SS_CHAT_OUTQ_HIGH). */
#define SS_CHAT_OUTQ_MAX (256 * 1024)
/* A client queued this far behind makes talkers wait (the server stops
 * reading from them and TCP pushes back) until it is below half of it. */
#define SS_CHAT_OUTQ_HIGH (64 * 1024)
/* Bytes handed to the framework's own (copying) queue ahead of the socket;
 * the rest waits as shared lines. */
#define SS_CHAT_STAGE (32 * 1024)
/* A client's lines go to its socket copied into one buffer of this size
 * and sent as one piece: lines up to SS_CHAT_STAGE, plus one line of at
 * most 64 KiB (a busy room gives each client about one line per talker
 * per loop iteration; one iovec per line cost the kernel more than the
 * copy). A longer line goes alone, from the shared line itself. */
#define SS_CHAT_PUSH_BUF (SS_CHAT_STAGE + 64 * 1024)
/* History inserts in one store transaction at most (chat_store.c); the
 * server commits each loop iteration's inserts before its replies leave,
 * and sooner past this many. */
#define SS_CHAT_STORE_BATCH 1024
/* A client behind that reads nothing for this long is told and cut off:
 * long enough for a paused laptop, short enough that a room waits little. */
#define SS_CHAT_STALL_MS 20000
/* A connection that chose no nickname within this time is closed. */
#define SS_CHAT_NICK_TIMEOUT_MS 30000
/* Connections per peer address (a NAT may hide a household). */
#define SS_CHAT_PER_ADDR_MAX 64
/* Lines per second a client may send, with a burst: faster than anyone
 * types or pastes, slow enough that one client cannot flood the room.
 * File chunks are not counted (TCP and file_max pace them). */
#define SS_CHAT_RATE_LINES 200
#define SS_CHAT_RATE_BURST 400
/* Offline messages kept per recipient, and sent per page on join. */
#define SS_CHAT_OFFLINE_MAX 1000
#define SS_CHAT_OFFLINE_PAGE 32
/* Pending file offers per recipient and per sender (besides the bytes). */
#define SS_CHAT_OFFERS_MAX 32
/* Cluster: offers a node shows its users whose bytes are on another node
 * (each recipient still at most offers_max). */
#define SS_CHAT_ROFFER_MAX 256
/* Cluster mode (serve chat --cluster, issue 14): a node's hold on a nick
 * lasts this long unless its heartbeat (every third of it) renews it; a
 * dead node's users go offline when it runs out. The history stream keeps
 * about this many messages (XADD MAXLEN ~), and a history request by time
 * reads at most SCAN of the newest. */
#define SS_CHAT_LEASE_MS 10000
#define SS_CHAT_HIST_STREAM_MAX 100000
#define SS_CHAT_HIST_SCAN 5000
/* Failed logins per nick or address before each next try waits; the wait
 * doubles from 1 s up to the max. */
#define SS_CHAT_LOGIN_FREE 3
#define SS_CHAT_LOGIN_DELAY_MAX_MS 60000
/* Entries of each login throttle table (nicks, addresses); bounded. */
#define SS_CHAT_THROTTLE_SLOTS 4096
/* Longest room topic (/topic, IRC TOPIC): fits one IRC line with room
 * for the 332 numeric's prefix (TOPICLEN in 005). */
#define SS_CHAT_TOPIC_MAX 300
/* IRC (issue 15). A line is at most 512 bytes with its CRLF (RFC 1459
 * 2.3); IRCv3 allows 8191 more for tags in front of it (message-tags),
 * of which a client may send 4094. */
#define SS_CHAT_IRC_LINE 512
#define SS_CHAT_IRC_TAGS 4096
/* One AUTHENTICATE payload is at most 400 bytes (IRCv3 SASL 3.1); a PLAIN
 * message of nick, nick and password fits in 3 of them. */
#define SS_CHAT_IRC_SASL_MAX 1200
/* Messages replayed on JOIN to a client without draft/chathistory, and
 * the most one CHATHISTORY request returns (CHATHISTORY=N in 005). */
#define SS_CHAT_IRC_REPLAY 20
#define SS_CHAT_IRC_CHATHISTORY_MAX 100
/* Redis connection layer (issue 14, src/apps/chat_redis.c). A connect, or
 * a command with no reply at all, gives up after TIMEOUT (the connection is
 * then dropped and every pending callback gets -ETIMEDOUT). */
#define SS_RDS_TIMEOUT_MS 5000
/* Reconnect backoff: starts at MIN, doubles after each failed try up to
 * MAX (default of ss__rds_cfg.backoff_max_ms). */
#define SS_RDS_BACKOFF_MIN_MS 50
#define SS_RDS_BACKOFF_MAX_MS 2000
/* Commands accepted and not yet answered (all nodes together); one more
 * is -EAGAIN: a slow Redis pushes back instead of growing our memory. */
#define SS_RDS_MAX_PENDING 4096
/* Redis nodes one layer knows (seeds plus what CLUSTER SLOTS and MOVED
 * name): a cluster of 64 masters. */
#define SS_RDS_MAX_NODES 64
/* Channels subscribed at once, and the longest channel name. */
#define SS_RDS_MAX_SUBS 4096
#define SS_RDS_CHANNEL_MAX 256
/* A subscriber connection's unsent commands and unparsed input: beyond
 * either it is dropped (-ENOBUFS / -EMSGSIZE) and reconnects. */
#define SS_RDS_SUB_OBUF_MAX (1024 * 1024)
#define SS_RDS_SUB_INBUF_MAX (64 * 1024 * 1024)
/* MOVED/ASK redirections one command may follow before it fails. */
#define SS_RDS_MAX_REDIRECTS 5

/* Point-to-point introductions in progress, and how long one is valid. */
#define SS_CHAT_P2P_MAX 256
#define SS_CHAT_P2P_TTL_MS 120000
/* Cluster: requests from one node to the node of a user (a /connect
 * across nodes) waiting for an answer, and how long one waits: the other
 * node answers at once, so silence means it died or Redis went away. */
#define SS_CHAT_ASK_MAX 256
#define SS_CHAT_ASK_TIMEOUT_MS 5000
/* Point-to-point setup: direct tries (LAN) get this long before punching
 * starts, punching (retried every RETRY ms, a SYN each) this long before the
 * relay; the whole setup gives up after RELAY ms. */
#define SS_CHAT_P2P_DIRECT_MS 1500
#define SS_CHAT_P2P_PUNCH_MS 5000
#define SS_CHAT_P2P_PUNCH_RETRY_MS 300
#define SS_CHAT_P2P_RELAY_MS 20000
/* UDP hole punching (between TCP punching and the relay): this long in
 * all, the rendezvous hellos and the probes to the peer sent every RETRY
 * ms; a hello is padded to HELLO bytes, and the server's answer, never
 * longer than the hello it answers, fits in it (no amplification). Then a
 * user-space TCP runs over the punched UDP path with segments of MSS
 * bytes (an IPv4 packet of the stack plus 28 bytes of UDP/IPv4 stay under
 * 1500), windows of BUF bytes, and a dead peer found by keepalives. */
#define SS_CHAT_P2P_UDP_MS 5000
#define SS_CHAT_P2P_UDP_RETRY_MS 200
#define SS_CHAT_P2P_UDP_HELLO 200
#define SS_CHAT_P2P_UDP_MSS 1340
#define SS_CHAT_P2P_UDP_BUF (1024 * 1024)
/* Password hash jobs waiting for the worker thread. */
#define SS_CHAT_KDF_QUEUE 64
/* SO_SNDBUF of each chat connection (the kernel doubles it): without a
 * bound, send-buffer autotuning parks megabytes for a stuck reader before
 * our own queue notices; 64 kB still streams files at loopback speed. */
#define SS_CHAT_SNDBUF (64 * 1024)
/* Client: reconnect backoff starts here and doubles up to the cap. */
#define SS_CHAT_BACKOFF_MIN_MS 250
#define SS_CHAT_BACKOFF_MAX_MS 8000
/* Client: after a reconnect, history is asked from this long before the
 * newest line seen (duplicates are dropped): on a cluster a line stamped by
 * another node can arrive after a newer one stamped by ours (pub/sub
 * transit, clock skew), and must not fall before the resume point. */
#define SS_CHAT_RESUME_SLACK_MS 2000
/* Client: a server silent this long is dead (a probe is sent at half of
 * it), and the client moves on to the next server (--server-timeout). */
#define SS_CHAT_SERVER_TIMEOUT_MS 30000
/* Client: after a reconnect, a nick still held by the lost node (until
 * its lease runs out: --lease, 10 s by default) or a node not yet on its
 * store is asked for again this often, this many times. */
#define SS_CHAT_REJOIN_MS 500
#define SS_CHAT_REJOIN_TRIES 120
/* Client: --server addresses kept (a name may give several each). */
#define SS_CHAT_SERVERS_MAX 16
#define SS_CHAT_ADDRS_MAX 32
/* Client: longest server line it accepts (a max line plus its prefix). */
#define SS_CHAT_CLIENT_LINE_MAX (SS_CHAT_MAX_LINE + 256)
/* Client scrollback lines kept in the ncurses pane. */
#define SS_CHAT_SCROLLBACK 2000
/* Server: corked output kept per client between bursts. With many talkers a
 * client gets a few KiB per loop iteration; freeing and regrowing the buffer
 * each time cost more than the fan-out itself (malloc, page faults). Well
 * inside SS_CHAT_OUTQ_MAX, which already bounds each client. */
#define SS_CHAT_PEND_KEEP 32768
/* Server: ms the "ERR overflow" notice gets to leave before the connection
 * of a client that stopped reading is cut. */
#define SS_CHAT_OVERFLOW_LINGER_MS 1000

/* ---- apps: udp-chat ----------------------------------------------------- */
/* Largest datagram: stays under the IPv4 minimum-reassembly-safe 1472-byte
 * payload of a 1500-byte Ethernet MTU, so no fragmentation. */
#define SS_UDPCHAT_MAX_DGRAM 1400
/* Seconds a peer stays on the relay list after its last datagram. */
#define SS_UDPCHAT_PEER_TTL 300
/* A udp-chat cookie is valid for this slot of time and the next. */
#define SS_UDPCHAT_COOKIE_MS 60000
/* Peers the relay remembers (bounded table). */
#define SS_UDPCHAT_MAX_PEERS 4096
/* Receiver: senders whose sequence numbers are tracked, and missing sequence
 * numbers remembered per sender (older ones are counted lost for good). */
#define SS_UDPCHAT_RX_SENDERS 256
#define SS_UDPCHAT_RX_MISSING 256

/* ---- apps: broadcast and discovery -------------------------------------- */
/* UDP port discovery probes go to when --port is not given. */
#define SS_DISCOVER_PORT 7999
/* Seconds `sockstack discover` waits for answers by default. */
#define SS_DISCOVER_WAIT 2
/* Distinct answers one probe keeps (to drop repeats) and tells. */
#define SS_DISCOVER_FOUND_MAX 256
/* ---- stack (user-space TCP/IP core) ------------------------------------ */
/* TTL of packets we originate: the common Linux/BSD default. */
#define SS_STACK_TTL 64
/* MSS we advertise: Ethernet/TUN MTU 1500 - 20 (IPv4) - 20 (TCP). */
#define SS_STACK_MSS 1460
/* Largest payload of one TCP segment handed to a link with segmentation
 * offload (cfg.tso_max): an IPv4 packet of at most 65535 bytes with the
 * largest IP (20) and TCP (60) headers; the kernel's GSO limit is 64 KiB. */
#define SS_STACK_TSO_MAX (65535 - 20 - 60)
/* MSS assumed when the peer sends no MSS option (RFC 9293 3.7.1, MUST-15). */
#define SS_STACK_DEFAULT_PEER_MSS 536
/* Per-socket send buffer limit: 4 MiB, as Linux' tcp_wmem maximum, so
 * that a path of 100 ms at 300 Mbit/s is not limited by it. Memory is
 * taken only as data waits (4 KiB first, doubling) and given back when
 * it is acknowledged; ss_stack_cfg.mem_max bounds the stack's total. */
#define SS_STACK_SNDBUF (4 * 1024 * 1024)
/* Per-socket receive buffer: the largest window without window scaling
 * (larger ones, up to 1 GiB, need a peer that negotiates it). */
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
/* RFC 6298 (5.7): RTO once data flows after the SYN timed out and no RTT
 * sample was taken (3 s, the initial RTO of RFC 1122). */
#define SS_STACK_RTO_SYN_FALLBACK_MS 3000
/* Sender SWS avoidance override timeout (RFC 9293 3.8.6.2.1: 0.1-1 s): how
 * long a sliver (less than an MSS and half the peer's largest window)
 * waits for more window before it goes anyway. */
#define SS_STACK_SWS_OVERRIDE_MS 200
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
/* Sockets at most (TCP incl. TIME-WAIT, UDP, listeners); each is
 * allocated when opened, so the limit costs nothing until used. */
#define SS_STACK_MAX_SOCKETS 65536
/* Socket buffer memory of one stack in all (ss_stack_cfg.mem_max). */
#define SS_STACK_MEM_MAX (1024ull * 1024 * 1024)
/* Out-of-order ranges kept per connection before new ones are dropped
 * (each a hole's right edge: the data sits in the receive ring). A queue
 * overflow at 50 Mbit/s and 10 ms drops every other segment of a burst:
 * with 16 ranges the receiver threw away 55 segments it had received
 * (`stack demo --delay 5 --bandwidth 50M --queue 65 --rcvbuf 4M --bytes
 * 50M`: 153 sent again for 98 drops). The table starts at 16 ranges and
 * doubles as holes appear: 12 KiB at most, only under such loss. */
#define SS_STACK_OOO_MAX 1024
#define SS_STACK_OOO_MIN 16
/* Datagrams queued per UDP socket before new ones are dropped. */
#define SS_STACK_UDP_RCVQ_MAX 64
/* IPv4 reassemblies in progress; each holds up to 64 KiB. */
#define SS_STACK_FRAG_SLOTS 4
/* Bytes of fragment data held at once across all reassemblies (Linux:
 * ipfrag_high_thresh): three largest datagrams, so a fourth pushes out the
 * oldest instead of the slots' whole 256 KiB filling with partial ones. */
#define SS_STACK_FRAG_MEM (3 * 65536)
/* RFC 791 suggests a 15 s reassembly timer lower bound; Linux uses 30 s. */
#define SS_STACK_FRAG_TIMEOUT_MS 30000
/* Challenge ACKs per second per connection (RFC 5961 section 7; Linux'
 * old default 1000): bounds what a blind attacker can make us send. Per
 * connection, so a flood on one never silences another's (CVE-2016-5696). */
#define SS_STACK_CHALLENGE_ACK_LIMIT 1000
/* RFC 1337 TIME-WAIT assassination protection (RSTs in TIME-WAIT ignored):
 * off, as Linux' net.ipv4.tcp_rfc1337 = 0, where a valid RST ends TIME-WAIT
 * as RFC 9293 3.10.7.4 says. */
#define SS_STACK_RFC1337 0
/* TCP options offered by default, as Linux does: window scaling and
 * timestamps (RFC 7323), SACK (RFC 2018). */
#define SS_STACK_WSCALE 1
#define SS_STACK_TIMESTAMPS 1
#define SS_STACK_SACK 1
/* HyStart++ (RFC 9406): leave the initial slow start when the RTT grows,
 * before the queue overflows (Linux's CUBIC has HyStart on by default). */
#define SS_STACK_HYSTART 1
/* RFC 6937 PRR in SACK recovery (cfg.prr), as Linux since 3.2. */
#define SS_STACK_PRR 1
/* RFC 8985 7 Tail Loss Probe (cfg.tlp), as Linux since 3.10: a probe
 * 2 SRTT after the last send, so a lost tail or lost ACKs cost an RTT
 * or two, not the RTO. */
#define SS_STACK_TLP 1
/* SACKed ranges remembered per connection: a loss pattern with more
 * holes than this only loses precision (the highest range is dropped,
 * and its data looks unSACKed: sent again). A queue overflow in slow
 * start at 50 Mbit/s and 100 ms leaves hundreds of holes; with 64 the
 * stack resent 1,042 segments for 817 lost. The array starts at 16
 * ranges and doubles as needed: 8 KiB at most, only under such loss. */
#define SS_STACK_SACK_MAX 1024
#define SS_STACK_SACK_MIN 16
/* Retransmissions in SACK recovery remembered per connection, to find a
 * retransmission that was lost too (tcp_cc.c, ss__cc_lost_rxt). */
#define SS_STACK_RXT_MAX 64
/* Congestion control of new sockets: CUBIC (RFC 9438), Linux's default. */
#define SS_STACK_CC_ALGO SS_CC_CUBIC
/* Initial window in segments, RFC 6928: IW = min(10*MSS, max(2*MSS, 14600)). */
#define SS_STACK_INIT_CWND 10
/* Half-open connections (SYN queue entries) across all listeners: Linux's
 * tcp_max_syn_backlog default; an entry is about 64 bytes, not a socket. */
#define SS_STACK_SYNQ_MAX 1024
/* SYN cookies when a listener's SYN queue is full (Linux' tcp_syncookies=1). */
#define SS_STACK_SYNCOOKIES 1
/* Seconds per tick of the cookie's time counter; a cookie is accepted in
 * its tick and the next, so it lives 64-128 s (Linux: 60 s ticks, 2 of them). */
#define SS_STACK_SYNCOOKIE_PERIOD_S 64
/* SYN,ACK retransmissions of a half-open entry made while its listener's
 * SYN queue was more than half full (otherwise cfg.syn_retries): a flood's
 * entries give their place up after 1 + 2 + 4 s instead of 3 minutes
 * (Linux prunes young requests the same way). */
#define SS_STACK_SYNACK_RETRIES_PRESSURE 2
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
/* Transmit queue of the stack's TUN device (kernel -> stack), packets. The
 * kernel's default of 500 overflows when a kernel sender's burst (TSO cut
 * into MSS packets, several at once) meets a reader that takes 64 per
 * wake-up: bench/stack/speed saw 1,235 and 7,713 retransmissions per
 * 300 MB at MTU 1500 with 500, none with 4000. */
#define SS_TUN_TXQLEN 4096
/* Read buffer for one TUN packet: the largest IPv4 packet. */
#define SS_TUN_BUF 65536
/* Bytes read from the TUN device per wake-up and handed to the stack as one
 * batch: sixteen largest packets (GRO segments with --offload: one ACK per
 * batch, so four made one ACK per 256 KiB), or the whole 64-packet batch
 * at MTU 1500. */
#define SS_TUN_BATCH_BYTES (16 * SS_TUN_BUF)
/* Packets read from the TUN device per readiness callback: enough to
 * amortise the wake-up, few enough that timers and other descriptors are not
 * starved. */
#define SS_TUN_BATCH 64
/* Services (echo, discard, source) one `stack up --serve` can run. */
#define SS_STACKRUN_SVC_MAX 16
/* `stack up --serve`: a service's TCP connection with no byte either way
 * for this long is closed (nginx's keepalive_timeout is 75 s): idle peers
 * cannot hold sockets for ever. */
#define SS_STACKRUN_IDLE_MS 60000
/* `stack up --serve`: TCP connections one peer address may hold at a
 * service, so one address never takes every socket. */
#define SS_STACKRUN_MAX_PER_PEER 32
/* The source service's write: a few full-size segments per call. */
#define SS_SOURCE_CHUNK 16384
/* Plaintext one TLS send takes at most (SSL_write cuts it into 16 KiB
 * records): four records per call amortise the call, and it is also what
 * a TLS socket keeps for the caller when the kernel's buffer is full. */
#define SS_TLS_WRITE_CHUNK 65536
/* A TLS send whose first piece is at least this long encrypts it in place;
 * smaller pieces (a frame header and its data) are copied together first,
 * so they become one record instead of one each. */
#define SS_TLS_WRITE_MIN_DIRECT 4096
/* A client's connection attempt (connect, then the TLS handshake) to one
 * address gives up after this long: an unreachable host must not hang a
 * command silently (TCP's own SYN retries take over two minutes). */
#define SS_DIAL_TIMEOUT_MS 10000
/* TLS records a connection collects before one send() (and the most it
 * holds unsent): four full records; on a machine where a system call costs
 * more than encrypting 16 KiB, one send per record halves the rate. */
#define SS_TLS_WBUF (4 * (16384 + 256))
/* Bytes a TLS connection asks the socket for per recv() (the layer's own
 * read-ahead buffer, taken on the first read): several records per system
 * call. */
#define SS_TLS_READ_AHEAD 65536
/* Validity of the pair `sockstack keygen --tls` makes. */
#define SS_TLS_KEYGEN_DAYS 365

SS_API_END

#endif
