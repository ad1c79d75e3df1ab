/* sockstack chat HOST PORT --name NICK: the chat client.
 *
 * One reactor loop drives the server socket, stdin and the timers
 * (reconnect, connect timeout, liveness).
 * Server bytes go through the library's decoder (ss_chat_client_feed), and
 * this file only renders its events: on a terminal on an ncurses screen
 * (cmd_chat_tui.c), otherwise one line each. /send NICK PATH and incoming
 * files are handled here through the library's ss_chat_ul / ss_chat_dl.
 * Lines typed (or piped) before the connection is up are kept and sent
 * once it is; at stdin EOF the exit status says whether all were sent.
 * If the server goes away (end of stream, reset, or silence for
 * --server-timeout) the client says so and connects to the next address
 * (several --server, or a name with several addresses: nodes of one
 * service), with exponential backoff once every address has failed, and
 * asks for history from shortly before the last line it showed; the
 * decoder drops the repeats.
 *
 * Order: random by default (each client shuffles the addresses once), so
 * that clients spread over the nodes, and the clients of a node that dies
 * spread over the others instead of all landing on the next in the list;
 * --in-order keeps the order given (a primary and its backups).
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cli/chat_ui.h"
#include "cli/cli.h"
#include "cli/client.h"
#include "sockstack/chat.h"
#include "sockstack/chat_client.h"
#include "sockstack/chat_p2p.h"
#include "sockstack/config.h"
#include "sockstack/err.h"
#include "sockstack/reactor.h"
#include "sockstack/sock.h"

/* Output queue towards the server: bounded; stdin and uploads pause at it. */
enum { OUT_MAX = 1 << 20 };

enum { PEERS_MAX = 8 };

/* A point-to-point session with one user (its own tab on the screen). */
struct peer {
    struct chat_client *cl;
    char nick[SS_CHAT_NICK_MAX + 1];
    ss_chat_p2p *p;
    int tab;
    bool dead; /* ended: freed by the deferred sweep */
};

/* A server as given: HOST PORT, or --server HOST:PORT. */
struct server {
    char host[256];
    char port[8];
};

/* One address to try (a server's name may give several). */
struct cand {
    ss_addr addr;
    int server; /* index into servers */
};

struct chat_client {
    ss_loop *loop;
    const char *nick, *password, *dir;
    bool reconnect, in_order;
    /* point-to-point: steps skipped (--p2p-skip, --no-p2p-udp) and the UDP
     * step's time (--p2p-udp-timeout; 0: the library's default) */
    bool p2p_no_direct, p2p_no_punch, p2p_no_udp;
    unsigned p2p_udp_ms;
    struct cli_client_opts co; /* socket options, TLS, --stack, --connect-timeout */
    ss_tls_ctx *tls;           /* --tls: a client context, else NULL */
    struct cli_stack stack;    /* --stack: the user-space stack */
    const ss_backend *be;      /* kernel, or the stack's */
    ss_sock *s;
    enum { ST_OFFLINE, ST_CONNECTING, ST_CONNECTED } state;
    char peer[SS_ADDR_STRLEN];
    /* where to connect */
    struct server servers[SS_CHAT_SERVERS_MAX];
    int nservers;
    struct cand cands[SS_CHAT_ADDRS_MAX];
    int ncands;
    int cur;   /* the address tried or connected now */
    int tried; /* failed addresses in a row (since the last join) */
    ss_timer conn_timer;       /* --connect-timeout */
    /* liveness: a silent server is probed, then given up */
    ss_timer alive;
    int alive_ms;              /* --server-timeout; 0: never */
    uint64_t last_rx, probe_at;
    /* after a reconnect: the nick may still be held by the node that died
     * (its lease) or the node may not reach its store yet; asked again */
    bool joined;               /* this connection got OK nick */
    ss_timer rejoin;
    int rejoins;
    char node_host[SS_ADDR_STRLEN], node_port[8]; /* the node we are on */
    /* server -> us */
    ss_chat_client *dec;
    char me[SS_CHAT_NICK_MAX + 1]; /* the nick the server gave us */
    int quiet_who;                 /* our own /who answers not to print */
    bool got_bye;
    /* us -> server */
    char *out;
    size_t out_len;
    /* lines typed while not connected: sent once connected */
    char *pend;
    size_t pend_len;
    int pend_lines;
    /* stdin (line mode) */
    char line[SS_CHAT_MAX_LINE * 4];
    size_t line_len;
    bool stdin_eof, stdin_paused;
    /* reconnect */
    ss_timer retry;
    unsigned backoff_ms;
    bool quitting;
    int exit_code;
    /* files */
    ss_chat_ul *ul;
    int64_t ul_id;
    ss_chat_dl *dl;
    /* point-to-point sessions */
    struct peer peers[PEERS_MAX];
    ss_defer sweep;
    /* what the status line shows */
    int online;
    struct chat_ui *ui; /* NULL in line mode */
};

static void client_connect(struct chat_client *cl);
static void drop(struct chat_client *cl, const char *why);
static void flush_pending(struct chat_client *cl);
static void sock_cb(ss_sock *s, unsigned ev, void *arg);
static bool peer_input(struct chat_client *cl, const char *nick, const char *line);

/* ---- showing things --------------------------------------------------- */

static void show(struct chat_client *cl, const char *ts, const char *nick,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* One line for the user: "[HH:MM:SS] " + optional <nick> + text. */
static void show(struct chat_client *cl, const char *ts, const char *nick,
                 const char *fmt, ...)
{
    char text[SS_CHAT_CLIENT_LINE_MAX + 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    /* Never let a peer's control bytes (C0 or C1) reach the terminal. */
    ss_chat_text_clean(text);
    char hhmmss[16] = "";
    int64_t ms = ts ? ss_chat_parse_ts(ts) : -1;
    if (ms >= 0) {
        /* Server time is UTC ISO 8601; show it in local time. */
        time_t t = (time_t)(ms / 1000);
        struct tm lt;
        localtime_r(&t, &lt);
        strftime(hhmmss, sizeof hhmmss, "%H:%M:%S", &lt);
    }
    if (cl->ui) {
        chat_ui_add(cl->ui, hhmmss, nick, text);
        return;
    }
    if (*hhmmss)
        printf("[%s] ", hhmmss);
    printf("%s\n", text);
    fflush(stdout);
}

static void set_state(struct chat_client *cl, int st)
{
    cl->state = st;
    if (cl->ui)
        chat_ui_status(cl->ui, cl->online,
                       st == ST_CONNECTED ? "connected" : st == ST_CONNECTING ? "connecting"
                                                                              : "offline");
}

/* Now as a server-style timestamp (for our own lines). */
static const char *now_ts(char *buf, size_t cap)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    ss_chat_format_ts((int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000, buf, cap);
    return buf;
}

/* ---- sending ---------------------------------------------------------- */

static void want_write(struct chat_client *cl)
{
    if (cl->state == ST_CONNECTED)
        ss_sock_watch(cl->s, cl->loop, SS_READ | (cl->out_len ? SS_WRITE : 0), sock_cb, cl);
}

/* Queue bytes for the server; false when the queue is full. */
static bool queue(struct chat_client *cl, const void *data, size_t len)
{
    if (cl->state != ST_CONNECTED || cl->out_len + len > OUT_MAX)
        return false;
    memcpy(cl->out + cl->out_len, data, len);
    cl->out_len += len;
    want_write(cl);
    return true;
}

static void upload_stop(struct chat_client *cl)
{
    ss_chat_ul_close(cl->ul);
    cl->ul = NULL;
    cl->ul_id = 0;
}

/* Fill the queue with chunks of the upload while it is below half. */
static void upload_pump(struct chat_client *cl)
{
    char buf[SS_CHAT_MAX_LINE];
    while (cl->ul && cl->ul_id > 0 && cl->out_len < OUT_MAX / 2) {
        int n = ss_chat_ul_next(cl->ul, cl->ul_id, buf, sizeof buf);
        if (n < 0) {
            show(cl, NULL, NULL, "!! reading %s: %s; upload cancelled",
                 ss_chat_ul_name(cl->ul), ss_strerror(n));
            upload_stop(cl);
            return;
        }
        if (n == 0) {
            n = snprintf(buf, sizeof buf, "/done %lld\n", (long long)cl->ul_id);
            queue(cl, buf, (size_t)n);
            upload_stop(cl);
            return;
        }
        queue(cl, buf, (size_t)n);
    }
}

/* Back on a server after a loss, but not yet joined: what is typed waits. */
static bool rejoining(const struct chat_client *cl)
{
    return cl->me[0] && !cl->joined;
}

static void maybe_finish_stdin(struct chat_client *cl)
{
    if (cl->stdin_eof && !cl->ul && !cl->quitting && cl->state == ST_CONNECTED &&
        !rejoining(cl)) {
        cl->quitting = true;
        queue(cl, "/quit\n", 6);
    }
}

/* Show what the user typed (the server does not echo it), with the time. */
static void show_own(struct chat_client *cl, const char *line)
{
    char ts[32];
    const char *me = cl->me[0] ? cl->me : cl->nick;
    now_ts(ts, sizeof ts);
    if (line[0] != '/' || line[1] == '/') {
        const char *text = line[0] == '/' ? line + 1 : line;
        ss_chat_client_sent(cl->dec, me, text, false);
        show(cl, ts, me, "<%s> %s", me, text);
    } else if (!strncmp(line, "/me ", 4)) {
        ss_chat_client_sent(cl->dec, me, line + 4, true);
        show(cl, ts, me, "* %s %s", me, line + 4);
    } else if (!strncmp(line, "/msg ", 5)) {
        char to[64];
        int n = 0;
        if (sscanf(line + 5, "%63s %n", to, &n) == 1 && n > 0 && line[5 + n])
            show(cl, ts, me, "-> *%s* %s", to, line + 5 + n);
    }
}

/* A line the user typed (no EOL). */
static void user_line(struct chat_client *cl, const char *line)
{
    const char *tab_name;
    if (cl->ui && chat_ui_active(cl->ui, &tab_name) > 0 &&
        (line[0] != '/' || !strncmp(line, "/send ", 6))) {
        peer_input(cl, tab_name, line);
        return;
    }
    if (!strncmp(line, "/to ", 4) || !strncmp(line, "/sendto ", 8)) {
        char nick[SS_CHAT_NICK_MAX + 1];
        int n = 0;
        bool file = line[1] == 's';
        if (sscanf(line + (file ? 8 : 4), "%24s %n", nick, &n) != 1 || !n) {
            show(cl, NULL, NULL, "!! usage: /to NICK TEXT, /sendto NICK PATH");
            return;
        }
        const char *arg = line + (file ? 8 : 4) + n;
        if (file) {
            char cmd[SS_CHAT_MAX_LINE * 4 + 8];
            snprintf(cmd, sizeof cmd, "/send %s", arg);
            peer_input(cl, nick, cmd);
        } else {
            peer_input(cl, nick, arg);
        }
        return;
    }
    if (!strncmp(line, "/send ", 6)) {
        char to[64], path[4096];
        if (sscanf(line + 6, "%63s %4095[^\n]", to, path) != 2) {
            show(cl, NULL, NULL, "!! usage: /send NICK PATH");
            return;
        }
        if (cl->ul) {
            show(cl, NULL, NULL, "!! one upload at a time; %s is still going",
                 ss_chat_ul_name(cl->ul));
            return;
        }
        int err = ss_chat_ul_open(&cl->ul, path);
        if (err) {
            show(cl, NULL, NULL, "!! %s: %s", path, ss_strerror(err));
            return;
        }
        char buf[512];
        int n = snprintf(buf, sizeof buf, "/offer %s %llu %s %s\n", to,
                         (unsigned long long)ss_chat_ul_size(cl->ul),
                         ss_chat_ul_sha256(cl->ul), ss_chat_ul_name(cl->ul));
        if (!queue(cl, buf, (size_t)n)) {
            show(cl, NULL, NULL, "!! not connected; file not sent");
            upload_stop(cl);
            return;
        }
        cl->ul_id = -1; /* waiting for OK offer ID */
        show(cl, NULL, NULL, "-- offering %s (%llu bytes, SHA-256 %s) to %s",
             ss_chat_ul_name(cl->ul), (unsigned long long)ss_chat_ul_size(cl->ul),
             ss_chat_ul_sha256(cl->ul), to);
        return;
    }
    if (!strcmp(line, "/quit") || !strncmp(line, "/quit ", 6))
        cl->quitting = true;
    show_own(cl, line);
    size_t n = strlen(line);
    if (cl->state != ST_CONNECTED || rejoining(cl)) {
        /* Kept until the connection is up (piped input, reconnects). */
        if (cl->pend_len + n + 1 > OUT_MAX) {
            show(cl, NULL, NULL, "!! not connected and %d lines wait; not sent: %s",
                 cl->pend_lines, line);
            cl->exit_code = CLI_RUNTIME;
            return;
        }
        memcpy(cl->pend + cl->pend_len, line, n);
        cl->pend[cl->pend_len + n] = '\n';
        cl->pend_len += n + 1;
        cl->pend_lines++;
        return;
    }
    if (!queue(cl, line, n) || !queue(cl, "\n", 1)) {
        show(cl, NULL, NULL, "!! output queue full; not sent");
        cl->exit_code = CLI_RUNTIME;
    }
}

/* ---- point-to-point ---------------------------------------------------- */

static struct peer *peer_of(struct chat_client *cl, const char *nick)
{
    for (int i = 0; i < PEERS_MAX; i++)
        if (cl->peers[i].p && !cl->peers[i].dead && !strcasecmp(cl->peers[i].nick, nick))
            return &cl->peers[i];
    return NULL;
}

/* Show a line in the peer's tab (line mode: prefixed with [nick]). */
static void peer_show(struct peer *pe, const char *nick, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void peer_show(struct peer *pe, const char *nick, const char *fmt, ...)
{
    struct chat_client *cl = pe->cl;
    char text[SS_CHAT_CLIENT_LINE_MAX + 64], ts[32], hhmmss[16] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    ss_chat_text_clean(text);
    time_t t = (time_t)(ss_chat_parse_ts(now_ts(ts, sizeof ts)) / 1000);
    struct tm lt;
    localtime_r(&t, &lt);
    strftime(hhmmss, sizeof hhmmss, "%H:%M:%S", &lt);
    if (cl->ui) {
        chat_ui_add_to(cl->ui, pe->tab, hhmmss, nick, text);
        return;
    }
    printf("[%s] [%s] %s\n", hhmmss, pe->nick, text);
    fflush(stdout);
}

static void p2p_status(void *arg, const char *text)
{
    peer_show(arg, NULL, "-- %s", text);
}

static void p2p_text(void *arg, const char *text)
{
    struct peer *pe = arg;
    peer_show(pe, pe->nick, "<%s> %s", pe->nick, text);
}

static void p2p_file(void *arg, int err, const char *path)
{
    if (err)
        peer_show(arg, NULL, "!! file from peer: %s; discarded", ss_strerror(err));
    else
        peer_show(arg, NULL, "-- received file from peer, SHA-256 verified: %s", path);
}

static void p2p_sent(void *arg, int err, const char *name)
{
    if (err)
        peer_show(arg, NULL, "!! %s: %s", name, ss_strerror(err));
    else
        peer_show(arg, NULL, "-- %s received by the peer, SHA-256 verified", name);
}

static void p2p_closed(void *arg, int err)
{
    struct peer *pe = arg;
    uint64_t sent = 0, rcvd = 0;
    if (pe->p)
        ss_chat_p2p_bytes(pe->p, &sent, &rcvd);
    peer_show(pe, NULL, "-- point-to-point connection %s%s (%llu bytes sent, %llu received)",
              err ? "failed: " : "closed", err ? ss_strerror(err) : "",
              (unsigned long long)sent, (unsigned long long)rcvd);
    pe->dead = true;
    ss_loop_defer(pe->cl->loop, &pe->cl->sweep);
}

static void sweep_cb(ss_loop *loop, void *arg)
{
    struct chat_client *cl = arg;
    for (int i = 0; i < PEERS_MAX; i++)
        if (cl->peers[i].dead) {
            ss_chat_p2p_free(cl->peers[i].p);
            cl->peers[i] = (struct peer){0};
        }
}

/* "P2P intro ID PEER KEY SIDE" (decoded): the server introduced us; set
 * up the path. */
static void p2p_intro(struct chat_client *cl, const ss_chat_ev *ev)
{
    if (ev->id <= 0 || ev->side < 0 || !ss_chat_nick_valid(ev->nick) || strlen(ev->key) != 32)
        return;
    int64_t id = ev->id;
    int side = ev->side;
    const char *nick = ev->nick, *key = ev->key;
    struct peer *pe = peer_of(cl, nick);
    if (pe) {
        ss_chat_p2p_free(pe->p);
        *pe = (struct peer){0};
    }
    for (int i = 0; i < PEERS_MAX && !pe; i++)
        if (!cl->peers[i].p)
            pe = &cl->peers[i];
    if (!pe) {
        show(cl, NULL, NULL, "!! too many point-to-point sessions; %s refused", nick);
        return;
    }
    *pe = (struct peer){.cl = cl};
    snprintf(pe->nick, sizeof pe->nick, "%s", nick);
    pe->tab = cl->ui ? chat_ui_tab(cl->ui, nick) : 0;
    ss_chat_p2p_opts o;
    ss_chat_p2p_opts_init(&o);
    o.loop = cl->loop;
    /* The rendezvous is on the node we are on, by its address. */
    o.server_host = cl->node_host;
    o.server_port = cl->node_port;
    o.id = id;
    o.side = side;
    o.key = key;
    o.dir = cl->dir;
    o.nick = cl->me[0] ? cl->me : cl->nick;
    o.no_direct = cl->p2p_no_direct;
    o.no_punch = cl->p2p_no_punch;
    o.no_udp = cl->p2p_no_udp;
    if (cl->p2p_udp_ms)
        o.udp_ms = cl->p2p_udp_ms;
    o.cb = (ss_chat_p2p_cb){p2p_status, p2p_text, p2p_file, p2p_sent, p2p_closed};
    o.arg = pe;
    peer_show(pe, NULL, "-- point-to-point with %s: %s", nick,
              side ? "they asked" : "asked the server to introduce us");
    int err = ss_chat_p2p_start(&pe->p, &o);
    if (err) {
        peer_show(pe, NULL, "!! point-to-point: %s", ss_strerror(err));
        *pe = (struct peer){0};
    }
}

/* Text or "/send PATH" for peer nick; true when it was for a peer. */
static bool peer_input(struct chat_client *cl, const char *nick, const char *line)
{
    struct peer *pe = peer_of(cl, nick);
    if (!pe) {
        show(cl, NULL, NULL, "!! no point-to-point session with %s: /connect %s", nick, nick);
        return true;
    }
    int err;
    if (!strncmp(line, "/send ", 6)) {
        err = ss_chat_p2p_send_file(pe->p, line + 6);
        if (!err)
            peer_show(pe, NULL, "-- sending %s to %s (point-to-point)", line + 6, nick);
    } else {
        err = ss_chat_p2p_send_text(pe->p, line);
        if (!err)
            peer_show(pe, cl->me, "<%s> %s", cl->me[0] ? cl->me : cl->nick, line);
    }
    if (err)
        peer_show(pe, NULL, "!! not sent: %s", ss_strerror(err));
    return true;
}

/* ---- receiving -------------------------------------------------------- */

static void file_event(struct chat_client *cl, const ss_chat_ev *ev)
{
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)ev->id);
    if (ev->kind == SS_CHAT_EV_FILE) {
        ss_chat_dl_abort(cl->dl);
        cl->dl = NULL;
        int err = ss_chat_dl_begin(&cl->dl, cl->dir, ev->id, ev->size, ev->sha256, ev->text);
        if (err)
            show(cl, NULL, NULL, "!! cannot receive %s: %s", ev->text, ss_strerror(err));
        else
            show(cl, NULL, NULL, "-- receiving %s (%llu bytes)", ev->text,
                 (unsigned long long)ev->size);
        return;
    }
    if (!cl->dl || ev->id != ss_chat_dl_id(cl->dl))
        return;
    if (ev->kind == SS_CHAT_EV_CHUNK) {
        int err = ss_chat_dl_chunk(cl->dl, ev->off, ev->text);
        if (err) {
            show(cl, NULL, NULL, "!! file %s: %s; discarded", id, ss_strerror(err));
            ss_chat_dl_abort(cl->dl);
            cl->dl = NULL;
        }
        return;
    }
    char path[8192];
    int err = ss_chat_dl_finish(cl->dl, path, sizeof path);
    cl->dl = NULL;
    if (err)
        show(cl, NULL, NULL, "!! file %s: %s; discarded", id, ss_strerror(err));
    else
        show(cl, NULL, NULL, "-- received file %s, SHA-256 verified: %s", id, path);
}

static void ok_event(struct chat_client *cl, const ss_chat_ev *ev)
{
    const char *what = ev->code, *rest = ev->text;
    if (!strcmp(what, "nick")) {
        /* Joined: this address works; the next loss starts afresh. */
        cl->tried = 0;
        cl->backoff_ms = SS_CHAT_BACKOFF_MIN_MS;
        bool was_rejoining = rejoining(cl);
        cl->joined = true;
        cl->rejoins = 0;
        ss_timer_stop(cl->loop, &cl->rejoin);
        snprintf(cl->me, sizeof cl->me, "%s", ev->nick);
        /* Back after a loss: what was typed meanwhile, in order. */
        if (was_rejoining)
            flush_pending(cl);
        cl->online = ev->count;
        if (cl->ui) {
            chat_ui_nick(cl->ui, cl->me);
            chat_ui_user(cl->ui, cl->me, true, 0);
            /* Fill the user list quietly. */
            if (queue(cl, "/who\n", 5))
                cl->quiet_who++;
        }
        set_state(cl, cl->state);
        show(cl, NULL, NULL, "-- you are %s (%d online)", ev->nick, cl->online);
    } else if (!strcmp(what, "offer") && cl->ul && cl->ul_id == -1 && *rest) {
        cl->ul_id = atoll(rest);
        upload_pump(cl);
    } else if (!strcmp(what, "upload")) {
        char id[24] = "?";
        sscanf(rest, "%23s", id);
        const char *how = strchr(rest, ' ');
        show(cl, NULL, NULL, "-- file %s uploaded (%s)", id, how ? how + 1 : "");
        maybe_finish_stdin(cl);
    } else if (!strcmp(what, "who")) {
        if (cl->quiet_who > 0) {
            cl->quiet_who--;
            return;
        }
        int on = 0, off = 0;
        sscanf(rest, "%d %d", &on, &off);
        show(cl, NULL, NULL, "-- %d online, %d offline listed", on, off);
    } else if (!strcmp(what, "msg") && strstr(rest, " stored")) {
        char to[64] = "?";
        sscanf(rest, "%63s", to);
        show(cl, NULL, NULL, "-- %s is offline; message stored", to);
    } else if (!strcmp(what, "login") || !strcmp(what, "register")) {
        show(cl, NULL, NULL, "-- %s %s", !strcmp(what, "login") ? "logged in as" : "registered",
             rest);
    }
    /* OK sent / msg / history / help / accept / decline / since: nothing. */
}

/* One event from the decoder: render it or act on it. */
static void server_event(void *arg, const ss_chat_ev *ev)
{
    struct chat_client *cl = arg;
    char when[64];
    switch (ev->kind) {
    case SS_CHAT_EV_HIST:
        if (ev->dup)
            return; /* shown before the reconnect */
        /* fall through */
    case SS_CHAT_EV_MSG:
    case SS_CHAT_EV_ME:
        if (ev->me)
            show(cl, ev->ts_str, ev->nick, "* %s %s", ev->nick, ev->text);
        else
            show(cl, ev->ts_str, ev->nick, "<%s> %s", ev->nick, ev->text);
        break;
    case SS_CHAT_EV_PRIV:
        show(cl, ev->ts_str, ev->nick, "*%s* %s", ev->nick, ev->text);
        break;
    case SS_CHAT_EV_OFFLINE:
        if (ev->dup)
            return; /* delivered before the reconnect (at least once) */
        show(cl, ev->ts_str, ev->nick, "*%s* %s (while you were away)", ev->nick, ev->text);
        break;
    case SS_CHAT_EV_JOIN:
    case SS_CHAT_EV_LEAVE:
        cl->online = ev->count ? ev->count : cl->online;
        if (cl->ui)
            chat_ui_user(cl->ui, ev->nick, ev->kind == SS_CHAT_EV_JOIN, ev->ts > 0 ? ev->ts : 0);
        set_state(cl, cl->state);
        show(cl, ev->ts_str, NULL, "-- %s %s (%d online)", ev->nick,
             ev->kind == SS_CHAT_EV_JOIN ? "joined" : "left", cl->online);
        break;
    case SS_CHAT_EV_NICK:
        if (cl->ui) {
            chat_ui_user(cl->ui, ev->nick, false, -1); /* -1: forget */
            chat_ui_user(cl->ui, ev->nick2, true, 0);
        }
        show(cl, ev->ts_str, NULL, "-- %s is now known as %s", ev->nick, ev->nick2);
        break;
    case SS_CHAT_EV_WHO: {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        if (cl->ui)
            chat_ui_user(cl->ui, ev->nick, ev->online, ev->ts > 0 ? ev->ts : 0);
        if (cl->quiet_who > 0)
            break;
        if (ev->online) {
            show(cl, NULL, NULL, "-- %s online", ev->nick);
        } else {
            ss_chat_ago(ev->ts, (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000, when,
                        sizeof when);
            show(cl, NULL, NULL, "-- %s offline, last seen %s", ev->nick, when);
        }
        break;
    }
    case SS_CHAT_EV_OK:
        ok_event(cl, ev);
        break;
    case SS_CHAT_EV_ERR:
        if (rejoining(cl) && (!strcmp(ev->code, "nicktaken") || !strcmp(ev->code, "degraded")) &&
            cl->rejoins < SS_CHAT_REJOIN_TRIES) {
            /* Our nick, still held by the node we lost until its lease
             * runs out; or a node not yet on its store. Ask again. */
            if (cl->rejoins++ == 0)
                show(cl, NULL, NULL, "-- %s; asking again every %.1f s",
                     *ev->text ? ev->text : ev->code, SS_CHAT_REJOIN_MS / 1000.0);
            ss_timer_start(cl->loop, &cl->rejoin, SS_CHAT_REJOIN_MS);
            return;
        }
        if (rejoining(cl) && (!strcmp(ev->code, "nicktaken") || !strcmp(ev->code, "degraded") ||
                              !strcmp(ev->code, "auth") || !strcmp(ev->code, "badnick"))) {
            /* Given up: what waits goes out (refused, as without a nick). */
            show(cl, NULL, NULL, "!! %s", *ev->text ? ev->text : ev->code);
            cl->joined = true;
            flush_pending(cl);
            return;
        }
        if (cl->ul && cl->ul_id == -1 && strcmp(ev->code, "toolong") &&
            strcmp(ev->code, "utf8") && strcmp(ev->code, "overflow")) {
            show(cl, NULL, NULL, "!! file not sent: %s", *ev->text ? ev->text : ev->code);
            upload_stop(cl);
            maybe_finish_stdin(cl);
            return;
        }
        show(cl, NULL, NULL, "!! %s", *ev->text ? ev->text : ev->code);
        break;
    case SS_CHAT_EV_INFO: {
        /* The greeting names the room: "welcome to ROOM (sockstack chat)..." */
        char room[64];
        if (cl->ui && sscanf(ev->text, "welcome to %63s (", room) == 1)
            chat_ui_room(cl->ui, room);
        show(cl, NULL, NULL, "-- %s", ev->text);
        break;
    }
    case SS_CHAT_EV_OFFER: {
        /* "*": the server's own room file, offered to everyone at join. */
        bool server = !strcmp(ev->nick, SS_CHAT_ROOM_SENDER);
        show(cl, NULL, server ? NULL : ev->nick, "-- %s offers %s (%llu bytes, SHA-256 %s): "
             "/accept %lld or /decline %lld", server ? "the server" : ev->nick, ev->text,
             (unsigned long long)ev->size, ev->sha256, (long long)ev->id, (long long)ev->id);
        break;
    }
    case SS_CHAT_EV_FILE:
    case SS_CHAT_EV_CHUNK:
    case SS_CHAT_EV_FILEEND:
        file_event(cl, ev);
        break;
    case SS_CHAT_EV_ACCEPTED:
    case SS_CHAT_EV_DECLINED:
        show(cl, NULL, NULL, "-- %s %s file %lld", ev->nick2,
             ev->kind == SS_CHAT_EV_ACCEPTED ? "accepted" : "declined", (long long)ev->id);
        break;
    case SS_CHAT_EV_P2P:
        if (!strcmp(ev->code, "intro"))
            p2p_intro(cl, ev);
        break;
    case SS_CHAT_EV_BYE:
        cl->got_bye = true;
        show(cl, NULL, NULL, "-- server: %s", *ev->text ? ev->text : "bye");
        break;
    default:
        show(cl, NULL, NULL, "%s", ev->raw);
        break;
    }
}

/* ---- where to connect ------------------------------------------------ */

/* Resolve every server into cands (a name may give several addresses) and
 * shuffle them unless --in-order. Names that do not resolve are skipped;
 * 0, or the code of the last failure when none resolved. */
static int resolve_all(struct chat_client *cl)
{
    int last = SS_ENOHOST;
    cl->ncands = 0;
    for (int i = 0; i < cl->nservers && cl->ncands < SS_CHAT_ADDRS_MAX; i++) {
        ss_addr a[SS_CHAT_ADDRS_MAX];
        int n = ss_addr_resolve(cl->servers[i].host, cl->servers[i].port,
                                cl->stack.be ? AF_INET : AF_UNSPEC, SS_STREAM, false, a,
                                SS_CHAT_ADDRS_MAX - cl->ncands);
        if (n < 0) {
            last = n;
            if (cl->nservers > 1)
                show(cl, NULL, NULL, "!! %s: %s", cl->servers[i].host, ss_strerror(n));
            continue;
        }
        for (int k = 0; k < n; k++)
            cl->cands[cl->ncands++] = (struct cand){a[k], i};
    }
    if (!cl->in_order) {
        for (int i = cl->ncands - 1; i > 0; i--) {
            unsigned r;
            if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
                r = (unsigned)rand();
            int j = (int)(r % (unsigned)(i + 1));
            struct cand t = cl->cands[i];
            cl->cands[i] = cl->cands[j];
            cl->cands[j] = t;
        }
    }
    cl->cur = 0;
    return cl->ncands ? 0 : last;
}

/* The numeric host of an address ("127.0.0.1", "::1"). */
static void addr_host(const ss_addr *a, char *buf, size_t cap)
{
    if (getnameinfo((const struct sockaddr *)&a->sa, a->len, buf, (socklen_t)cap, NULL, 0,
                    NI_NUMERICHOST) != 0)
        snprintf(buf, cap, "?");
}

/* ---- connection ------------------------------------------------------- */

static void drop(struct chat_client *cl, const char *why)
{
    ss_timer_stop(cl->loop, &cl->rejoin);
    ss_timer_stop(cl->loop, &cl->conn_timer);
    ss_timer_stop(cl->loop, &cl->alive);
    ss_sock_close(cl->s);
    cl->s = NULL;
    if (cl->out_len && !cl->got_bye)
        cl->exit_code = CLI_RUNTIME; /* some of what was typed did not go out */
    cl->out_len = 0;
    ss_chat_client_reset(cl->dec);
    if (cl->ul) {
        show(cl, NULL, NULL, "!! upload of %s interrupted", ss_chat_ul_name(cl->ul));
        upload_stop(cl);
    }
    ss_chat_dl_abort(cl->dl);
    cl->dl = NULL;
    bool was = cl->state == ST_CONNECTED;
    set_state(cl, ST_OFFLINE);
    /* This address failed (or its node died): the next one follows at once
     * (after the shortest delay); when all have failed in a row, the list
     * is resolved again and the delay doubles. */
    cl->tried++;
    bool round_done = cl->tried >= cl->ncands;
    /* Piped input that has ended is not worth waiting for a server, nor is
     * a lost connection with --no-reconnect; both still try every address
     * once while there are untried ones. */
    bool give_up = (cl->stdin_eof && !cl->ui && round_done) ||
                   (!cl->reconnect && (was || round_done));
    if (cl->quitting || give_up) {
        if (!cl->quitting || !cl->got_bye) {
            if (cl->pend_lines)
                show(cl, NULL, NULL, "!! %s; %d lines not sent", why, cl->pend_lines);
            else if (!cl->quitting || !was)
                show(cl, NULL, NULL, "!! %s", why);
            if (!cl->got_bye)
                cl->exit_code = CLI_RUNTIME;
        }
        ss_loop_stop(cl->loop);
        return;
    }
    unsigned delay = SS_CHAT_BACKOFF_MIN_MS;
    if (round_done) {
        delay = cl->backoff_ms;
        cl->backoff_ms = cl->backoff_ms * 2 > SS_CHAT_BACKOFF_MAX_MS ? SS_CHAT_BACKOFF_MAX_MS
                                                                    : cl->backoff_ms * 2;
        cl->tried = 0;
        cl->ncands = 0; /* resolved again at the next attempt */
    } else {
        cl->cur = (cl->cur + 1) % cl->ncands;
    }
    char next[SS_ADDR_STRLEN + 8] = "";
    if (cl->ncands > 1) {
        snprintf(next, sizeof next, " to ");
        ss_addr_format(&cl->cands[cl->cur].addr, next + 4, sizeof next - 4);
    }
    show(cl, NULL, NULL, "-- %s %s; reconnecting in %.2f s%s", was ? "connection lost:" :
         "cannot connect:", why, delay / 1000.0, next);
    ss_timer_start(cl->loop, &cl->retry, delay);
}

/* Liveness: the server said nothing for half of --server-timeout: ask it
 * something cheap (`/since`, answered `OK since`, changes nothing after
 * the join); nothing for all of it: the node is gone. */
static void alive_cb(ss_loop *loop, ss_timer *t, void *arg)
{
    struct chat_client *cl = arg;
    uint64_t now = ss_loop_now(loop), idle = now - cl->last_rx;
    uint64_t half = (uint64_t)cl->alive_ms / 2;
    if (idle >= (uint64_t)cl->alive_ms) {
        char why[96];
        snprintf(why, sizeof why, "no answer from the server for %.1f s", cl->alive_ms / 1000.0);
        drop(cl, why);
        return;
    }
    if (idle >= half) {
        if (cl->probe_at <= cl->last_rx) {
            char buf[64], ts[40];
            if (ss_chat_client_since(cl->dec, buf, sizeof buf) <= 0)
                snprintf(buf, sizeof buf, "/since %s\n", now_ts(ts, sizeof ts));
            queue(cl, buf, strlen(buf));
            cl->probe_at = now;
        }
        ss_timer_start(loop, t, (uint64_t)cl->alive_ms - idle);
        return;
    }
    ss_timer_start(loop, t, half - idle);
}

/* What was typed or piped while offline (or rejoining), in order. */
static void flush_pending(struct chat_client *cl)
{
    if (cl->pend_len && queue(cl, cl->pend, cl->pend_len)) {
        cl->pend_len = 0;
        cl->pend_lines = 0;
    }
    if (cl->stdin_eof)
        maybe_finish_stdin(cl);
}

/* /since (after a reconnect: history from shortly before the last line
 * shown; the decoder drops what was shown already), then /nick or /login. */
static void n_join(struct chat_client *cl, char *buf, size_t cap)
{
    int n = ss_chat_client_since(cl->dec, buf, cap);
    if (n > 0)
        queue(cl, buf, (size_t)n);
    const char *nick = cl->me[0] ? cl->me : cl->nick;
    n = cl->password ? snprintf(buf, cap, "/login %s %s\n", nick, cl->password)
                     : snprintf(buf, cap, "/nick %s\n", nick);
    queue(cl, buf, (size_t)n);
}

/* TCP is up and, over TLS, the handshake is done: only now is the node
 * "connected" (--connect-timeout covered both). */
static void connected(struct chat_client *cl)
{
    ss_timer_stop(cl->loop, &cl->conn_timer);
    set_state(cl, ST_CONNECTED);
    const struct cand *cd = &cl->cands[cl->cur];
    const struct server *sv = &cl->servers[cd->server];
    addr_host(&cd->addr, cl->node_host, sizeof cl->node_host);
    snprintf(cl->node_port, sizeof cl->node_port, "%d", ss_addr_port(&cd->addr));
    /* Which node: its address, and the name it came from when that was a
     * name (or when there are several servers). */
    if (strcmp(cl->node_host, sv->host) || cl->nservers > 1)
        show(cl, NULL, NULL, "-- connected to %s (%s:%s)", cl->peer, sv->host, sv->port);
    else
        show(cl, NULL, NULL, "-- connected to %s", cl->peer);
    cl->last_rx = ss_loop_now(cl->loop);
    cl->probe_at = 0;
    if (cl->alive_ms > 0)
        ss_timer_start(cl->loop, &cl->alive, (uint64_t)cl->alive_ms / 2);
    cl->joined = false;
    cl->rejoins = 0;
    char buf[256];
    n_join(cl, buf, sizeof buf);
    /* What was typed or piped while offline, in order: at once on the
     * first connection, after the join on a reconnect. */
    if (!rejoining(cl))
        flush_pending(cl);
}

/* Ask for our nick again (rejoin timer). */
static void rejoin_cb(ss_loop *loop, ss_timer *t, void *arg)
{
    struct chat_client *cl = arg;
    if (cl->state != ST_CONNECTED || cl->joined)
        return;
    char buf[256];
    n_join(cl, buf, sizeof buf);
}

/* Why s failed with err: the TLS reason when there is one. */
static const char *sock_why(ss_sock *s, int err, char *buf, size_t cap)
{
    if (ss_sock_is_tls(s) && ss_tls_error(s, buf, cap) > 0)
        return buf;
    return ss_strerror(err);
}

static void sock_cb(ss_sock *s, unsigned ev, void *arg)
{
    struct chat_client *cl = arg;
    char why[256];
    if (cl->state == ST_CONNECTING) {
        int err = ss_sock_is_tls(s) ? 0 : ss_sock_error(s);
        if (err) {
            drop(cl, ss_strerror(err));
            return;
        }
        /* TLS: TCP is up; still connecting until the handshake is done
         * (a certificate that does not verify drops the connection). */
        if (cl->tls && !ss_sock_is_tls(s) && (ss_sock_unwatch(s), true)) {
            const struct server *sv = &cl->servers[cl->cands[cl->cur].server];
            char bare[256];
            const char *name = cl->co.tls.servername
                                   ? cl->co.tls.servername
                                   : cli_tls_host_name(sv->host, bare, sizeof bare);
            if ((err = ss_tls_wrap(cl->tls, s, name, &cl->s)) < 0) {
                drop(cl, ss_strerror(err));
                return;
            }
            s = cl->s;
        }
        if (cl->tls && (err = ss_tls_handshake(s)) != 0) {
            if (err == -EAGAIN)
                ss_sock_watch(s, cl->loop, SS_READ | SS_WRITE, sock_cb, cl);
            else
                drop(cl, sock_why(s, err, why, sizeof why));
            return;
        }
        connected(cl);
        return;
    }
    if (ev & (SS_READ | SS_HUP)) {
        char buf[65536];
        ssize_t n = ss_sock_recv(s, buf, sizeof buf);
        if (n == 0 || (n < 0 && n != -EAGAIN)) {
            drop(cl, n == 0 ? "server closed the connection" : sock_why(s, (int)n, why, sizeof why));
            return;
        }
        if (n > 0) {
            cl->last_rx = ss_loop_now(cl->loop);
            ss_chat_client_feed(cl->dec, buf, (size_t)n);
        }
        if (!cl->s)
            return;
    }
    if ((ev & SS_WRITE) && cl->out_len) {
        ssize_t n = ss_sock_send(s, cl->out, cl->out_len);
        if (n < 0 && n != -EAGAIN) {
            drop(cl, sock_why(s, (int)n, why, sizeof why));
            return;
        }
        if (n > 0) {
            memmove(cl->out, cl->out + n, cl->out_len - (size_t)n);
            cl->out_len -= (size_t)n;
        }
        upload_pump(cl);
        want_write(cl);
    }
}

static void conn_timeout_cb(ss_loop *loop, ss_timer *t, void *arg)
{
    struct chat_client *cl = arg;
    char why[96];
    snprintf(why, sizeof why, "no answer within %.1f s (--connect-timeout)",
             cl->co.connect_timeout_ms / 1000.0);
    drop(cl, why);
}

static void client_connect(struct chat_client *cl)
{
    if (cl->ncands == 0) {
        int n = resolve_all(cl);
        if (n < 0) {
            cl->tried = 0; /* counts as one address that failed */
            cl->ncands = 1;
            cl->cur = 0;
            drop(cl, ss_strerror(n));
            return;
        }
    }
    const ss_addr *a = &cl->cands[cl->cur].addr;
    ss_addr_format(a, cl->peer, sizeof cl->peer);
    const char *failed = NULL;
    int err = ss_sock_connect_to(cl->be, a, SS_STREAM, &cl->co.so, NULL, &cl->s, &failed);
    if (err < 0 && err != -EINPROGRESS) {
        char why[160];
        snprintf(why, sizeof why, "%s%s%s", failed ? failed : "", failed ? ": " : "",
                 ss_strerror(err));
        drop(cl, why);
        return;
    }
    set_state(cl, ST_CONNECTING);
    if (cl->co.connect_timeout_ms > 0)
        ss_timer_start(cl->loop, &cl->conn_timer, (uint64_t)cl->co.connect_timeout_ms);
    ss_sock_watch(cl->s, cl->loop, SS_WRITE, sock_cb, cl);
}

static void retry_cb(ss_loop *loop, ss_timer *t, void *arg)
{
    client_connect(arg);
}

/* ---- stdin (line mode) ------------------------------------------------- */

static void stdin_cb(ss_loop *loop, int fd, unsigned ev, void *arg)
{
    struct chat_client *cl = arg;
    if (cl->ui) {
        char line[SS_CHAT_MAX_LINE * 4];
        int r;
        while ((r = chat_ui_key(cl->ui, line, sizeof line)) != 0) {
            if (r > 0) {
                user_line(cl, line);
            } else if (r == CHAT_UI_OPEN) {
                char cmd[64];
                snprintf(cmd, sizeof cmd, "/connect %.*s", SS_CHAT_NICK_MAX, line);
                user_line(cl, cmd);
            } else if (r == CHAT_UI_QUIT && !cl->quitting) {
                user_line(cl, "/quit");
            }
        }
        if (cl->quitting && cl->state != ST_CONNECTED)
            ss_loop_stop(loop);
        return;
    }
    ssize_t n = read(fd, cl->line + cl->line_len, sizeof cl->line - cl->line_len);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        ss_loop_io_del(loop, fd);
        cl->stdin_eof = true;
        if (cl->line_len) {
            cl->line[cl->line_len] = '\0';
            cl->line_len = 0;
            user_line(cl, cl->line);
        }
        if (cl->state == ST_OFFLINE && cl->tried < cl->ncands) {
            /* Other addresses are still to be tried: drop() decides. */
        } else if (cl->state == ST_OFFLINE) {
            /* Waiting to reconnect: what was piped cannot be sent now. */
            if (cl->pend_lines) {
                show(cl, NULL, NULL, "!! not connected; %d lines not sent", cl->pend_lines);
                cl->exit_code = CLI_RUNTIME;
            }
            ss_loop_stop(loop);
            return;
        }
        maybe_finish_stdin(cl);
        return;
    }
    cl->line_len += (size_t)n;
    char *start = cl->line, *nl;
    while ((nl = memchr(start, '\n', cl->line_len - (size_t)(start - cl->line)))) {
        *nl = '\0';
        if (nl > start && nl[-1] == '\r')
            nl[-1] = '\0';
        user_line(cl, start);
        start = nl + 1;
    }
    size_t left = cl->line_len - (size_t)(start - cl->line);
    if (left == sizeof cl->line) {
        /* Longer than we keep: pass it through; the server refuses it. */
        queue(cl, cl->line, left);
        left = 0;
    }
    memmove(cl->line, start, left);
    cl->line_len = left;
}

/* The terminal was resized: lay out and redraw at the new size now, not
 * at the next key. */
static void winch_cb(ss_loop *loop, int signo, void *arg)
{
    struct chat_client *cl = arg;
    chat_ui_resize(cl->ui);
}

/* ---- main ------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: sockstack chat HOST PORT --name NICK [OPTIONS]\n"
            "       sockstack chat --server HOST:PORT [--server HOST:PORT...] --name NICK\n"
            "                      [OPTIONS]\n"
            "\n"
            "Chat client for `sockstack serve chat`. On a terminal: a full screen\n"
            "(messages, status line, input line; PgUp/PgDn scroll back). Otherwise\n"
            "plain lines: stdin lines are sent, messages printed one per line.\n"
            "\n"
            "Several servers (nodes of one service, e.g. `serve chat --cluster`): each\n"
            "--server, and each address of a name, is one node. The client joins one\n"
            "(in random order, so that clients spread over the nodes; --in-order for\n"
            "the order given) and, when its node dies (connection closed or reset,\n"
            "or silent for --server-timeout), moves to the next one, continuing the\n"
            "history from where it was without showing a line twice.\n"
            "\n"
            "Options:\n"
            "  -n, --name NICK       nickname (required)\n"
            "  -p, --password PW     log in to a registered nickname\n"
            "  -d, --dir DIR         where received files go (default .)\n"
            "  -s, --server HOST:PORT\n"
            "                        a server (repeat for several; [v6addr]:PORT)\n"
            "      --in-order        try the servers in the order given, not shuffled\n"
            "      --server-timeout SECS\n"
            "                        a server silent for SECS is given up (it is probed\n"
            "                        at half of it; default %d; 0: never)\n"
            "      --plain           line mode even on a terminal\n"
            "      --no-reconnect    exit 1 when the connection is lost\n"
            "      --no-p2p-udp      point-to-point: no UDP hole punching (the step\n"
            "                        between TCP hole punching and the relay)\n"
            "      --p2p-udp-timeout SECS\n"
            "                        how long UDP hole punching may take before the\n"
            "                        relay, and then the stream over it (default %d)\n"
            "      --p2p-skip STEPS  point-to-point: skip these steps (comma list of\n"
            "                        direct, punch, udp), e.g. when a NAT is known\n"
            "  -h, --help            this help\n"
            "\n%s\n%s\n%s\n"
            "Typed commands: /send NICK PATH, /accept ID, /decline ID, /msg NICK TEXT,\n"
            "/who, /history [N], /me ACTION, /register PW, /help, /quit.\n"
            "Point-to-point: /connect NICK (or F2 and Enter on the screen) asks the\n"
            "server to introduce you; the path is shown: direct, TCP hole punched\n"
            "through NAT, UDP hole punched (our user-space TCP over UDP), or relayed\n"
            "by the server, tried in that order. Then /to NICK TEXT and /sendto NICK\n"
            "PATH (on the screen: type in the peer's tab, /send PATH there).\n",
            SS_CHAT_SERVER_TIMEOUT_MS / 1000, SS_CHAT_P2P_UDP_MS / 1000, cli_client_help, cli_tls_client_help,
            cli_sockopt_help);
}

/* "HOST:PORT" or "[V6ADDR]:PORT" into sv: 0, or CLI_USAGE after a message. */
static int parse_server(const char *arg, struct server *sv)
{
    const char *colon = strrchr(arg, ':');
    const char *host = arg;
    size_t hlen = colon ? (size_t)(colon - arg) : 0;
    if (arg[0] == '[') {
        const char *close = strchr(arg, ']');
        if (!close || close[1] != ':') {
            colon = NULL;
        } else {
            host = arg + 1;
            hlen = (size_t)(close - host);
            colon = close + 1;
        }
    } else if (colon && memchr(arg, ':', hlen)) {
        return cli_usage_error("chat ", "--server: '%s': an IPv6 address goes in brackets "
                               "([::1]:7000)", arg);
    }
    if (!colon || hlen == 0 || hlen >= sizeof sv->host)
        return cli_usage_error("chat ", "--server: '%s' is not HOST:PORT", arg);
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || port < 1 || port > 65535)
        return cli_usage_error("chat ", "--server: '%s': the port is not a number from 1 "
                               "to 65535", arg);
    memcpy(sv->host, host, hlen);
    sv->host[hlen] = '\0';
    snprintf(sv->port, sizeof sv->port, "%ld", port);
    return 0;
}

/* --p2p-skip direct,punch,udp */
static int parse_p2p_skip(const char *arg, struct chat_client *cl)
{
    char buf[64];
    if (strlen(arg) >= sizeof buf || !*arg)
        return cli_usage_error("chat ", "--p2p-skip: a comma list of direct, punch, udp");
    snprintf(buf, sizeof buf, "%s", arg);
    char *save = NULL;
    for (char *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        if (!strcmp(w, "direct"))
            cl->p2p_no_direct = true;
        else if (!strcmp(w, "punch"))
            cl->p2p_no_punch = true;
        else if (!strcmp(w, "udp"))
            cl->p2p_no_udp = true;
        else
            return cli_usage_error("chat ", "--p2p-skip: unknown step '%s' (direct, punch, "
                                   "udp; the relay is always the last resort)", w);
    }
    return 0;
}

int cmd_chat(int argc, char **argv)
{
    enum { OPT_PLAIN = 0x100, OPT_NORECONNECT, OPT_IN_ORDER, OPT_SERVER_TIMEOUT,
           OPT_NO_P2P_UDP, OPT_P2P_UDP_TIMEOUT, OPT_P2P_SKIP };
    static const struct option longopts[] = {
        {"name", required_argument, NULL, 'n'},
        {"password", required_argument, NULL, 'p'},
        {"dir", required_argument, NULL, 'd'},
        {"server", required_argument, NULL, 's'},
        {"in-order", no_argument, NULL, OPT_IN_ORDER},
        {"server-timeout", required_argument, NULL, OPT_SERVER_TIMEOUT},
        {"plain", no_argument, NULL, OPT_PLAIN},
        {"no-reconnect", no_argument, NULL, OPT_NORECONNECT},
        {"no-p2p-udp", no_argument, NULL, OPT_NO_P2P_UDP},
        {"p2p-udp-timeout", required_argument, NULL, OPT_P2P_UDP_TIMEOUT},
        {"p2p-skip", required_argument, NULL, OPT_P2P_SKIP},
        {"help", no_argument, NULL, 'h'},
        CLI_CLIENT_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    struct chat_client cl = {.dir = ".", .reconnect = true,
                             .backoff_ms = SS_CHAT_BACKOFF_MIN_MS,
                             .alive_ms = SS_CHAT_SERVER_TIMEOUT_MS,
                             .stack = {.fd = -1}};
    cli_client_opts_init(&cl.co);
    bool plain = false;
    struct server given[SS_CHAT_SERVERS_MAX];
    int ngiven = 0;
    double d;
    int c;
    optind = 1;
    while ((c = cli_getopt(argc, argv, "n:p:d:s:h", longopts)) != -1) {
        switch (c) {
        case 'n': cl.nick = optarg; break;
        case 'p': cl.password = optarg; break;
        case 'd': cl.dir = optarg; break;
        case 's':
            if (ngiven == SS_CHAT_SERVERS_MAX)
                return cli_usage_error("chat ", "--server: at most %d servers",
                                       SS_CHAT_SERVERS_MAX);
            if (parse_server(optarg, &given[ngiven]) != 0)
                return CLI_USAGE;
            ngiven++;
            break;
        case OPT_IN_ORDER: cl.in_order = true; break;
        case OPT_SERVER_TIMEOUT:
            if (cli_parse_double("--server-timeout", optarg, 0, 86400, &d) < 0)
                return CLI_USAGE;
            if (d > 0 && d < 0.2)
                return cli_usage_error("chat ", "--server-timeout: at least 0.2 s (or 0)");
            cl.alive_ms = (int)(d * 1000.0 + 0.5);
            break;
        case OPT_PLAIN: plain = true; break;
        case OPT_NORECONNECT: cl.reconnect = false; break;
        case OPT_NO_P2P_UDP: cl.p2p_no_udp = true; break;
        case OPT_P2P_UDP_TIMEOUT:
            if (cli_parse_double("--p2p-udp-timeout", optarg, 0.2, 600, &d) < 0)
                return CLI_USAGE;
            cl.p2p_udp_ms = (unsigned)(d * 1000.0 + 0.5);
            break;
        case OPT_P2P_SKIP:
            if (parse_p2p_skip(optarg, &cl) != 0)
                return CLI_USAGE;
            break;
        case 'h': usage(stdout); return CLI_OK;
        default:
            switch (cli_client_parse(c, optarg, &cl.co, "chat ")) {
            case 1: continue;
            case -1: return CLI_USAGE;
            }
            return cli_option_error("chat ", c, argv);
        }
    }
    if (cli_client_check(&cl.co, "chat ") != 0)
        return CLI_USAGE;
    int npos = argc - optind;
    if (npos != 2 && !(npos == 0 && ngiven > 0))
        return cli_usage_error("chat ", ngiven ? "expected HOST PORT or only --server"
                                               : "expected HOST PORT (or --server HOST:PORT)");
    if (!cl.nick)
        return cli_usage_error("chat ", "--name NICK is required");
    if (!ss_chat_nick_valid(cl.nick))
        return cli_usage_error("chat ", "--name: '%s' is not a valid nickname "
                               "(1-%d letters, digits, '_' or '-', a letter first)",
                               cl.nick, SS_CHAT_NICK_MAX);
    if (cl.password && strchr(cl.password, ' '))
        return cli_usage_error("chat ", "--password must not contain spaces");
    if (npos == 2) {
        /* HOST PORT: the first server (more may follow with --server). */
        int port;
        if (cli_parse_int("PORT", argv[optind + 1], 1, 65535, &port) < 0)
            return CLI_USAGE;
        if (strlen(argv[optind]) >= sizeof cl.servers[0].host)
            return cli_usage_error("chat ", "HOST: too long");
        snprintf(cl.servers[0].host, sizeof cl.servers[0].host, "%s", argv[optind]);
        snprintf(cl.servers[0].port, sizeof cl.servers[0].port, "%d", port);
        cl.nservers = 1;
    }
    if (ngiven && cl.nservers + ngiven > SS_CHAT_SERVERS_MAX)
        return cli_usage_error("chat ", "at most %d servers", SS_CHAT_SERVERS_MAX);
    for (int i = 0; i < ngiven; i++)
        cl.servers[cl.nservers++] = given[i];
    if (cli_tls_ctx(&cl.co.tls, false, &cl.tls) != 0)
        return CLI_RUNTIME;

    cl.out = malloc(OUT_MAX);
    cl.pend = malloc(OUT_MAX);
    if (!cl.out || !cl.pend || ss_chat_client_new(&cl.dec, server_event, &cl) < 0 ||
        ss_loop_new(&cl.loop) < 0) {
        cli_error("out of memory");
        free(cl.out);
        free(cl.pend);
        ss_chat_client_free(cl.dec);
        ss_tls_ctx_free(cl.tls);
        return CLI_RUNTIME;
    }
    cl.be = ss_backend_kernel();
    if (cl.co.use_stack) {
        if (cli_stack_start(cl.loop, &cl.co.stack_spec, NULL, NULL, true, &cl.stack) !=
            CLI_OK) {
            ss_loop_free(cl.loop);
            free(cl.out);
            free(cl.pend);
            ss_chat_client_free(cl.dec);
            ss_tls_ctx_free(cl.tls);
            return CLI_RUNTIME;
        }
        cl.be = cl.stack.be;
    }
    ss_timer_init(&cl.retry, retry_cb, &cl);
    ss_timer_init(&cl.conn_timer, conn_timeout_cb, &cl);
    ss_timer_init(&cl.alive, alive_cb, &cl);
    ss_timer_init(&cl.rejoin, rejoin_cb, &cl);
    ss_defer_init(&cl.sweep, sweep_cb, &cl);
    if (!plain && isatty(0) && isatty(1)) {
        cl.ui = chat_ui_open("?", cl.nick);
        if (!cl.ui)
            cli_error("cannot start the terminal screen; using line mode");
    }
    ss_loop_io_add(cl.loop, 0, SS_READ, stdin_cb, &cl);
    if (cl.ui)
        ss_loop_signal_add(cl.loop, SIGWINCH, winch_cb, &cl);
    client_connect(&cl);
    ss_loop_run(cl.loop);

    ss_timer_stop(cl.loop, &cl.retry);
    ss_timer_stop(cl.loop, &cl.conn_timer);
    ss_timer_stop(cl.loop, &cl.alive);
    ss_timer_stop(cl.loop, &cl.rejoin);
    ss_loop_defer_cancel(cl.loop, &cl.sweep);
    for (int i = 0; i < PEERS_MAX; i++)
        ss_chat_p2p_free(cl.peers[i].p);
    ss_sock_close(cl.s);
    cli_stack_stop(&cl.stack, false);
    upload_stop(&cl);
    ss_chat_dl_abort(cl.dl);
    if (cl.ui)
        chat_ui_close(cl.ui);
    ss_loop_free(cl.loop);
    free(cl.out);
    free(cl.pend);
    ss_chat_client_free(cl.dec);
    ss_tls_ctx_free(cl.tls);
    return cl.exit_code;
}
