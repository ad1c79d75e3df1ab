/* sockstack chat HOST PORT --name NICK: the chat client.
 *
 * One reactor loop drives the server socket, stdin and the reconnect timer.
 * On a terminal it draws an ncurses screen (cmd_chat_tui.c); otherwise it
 * is a plain line client: stdin lines are sent, server lines are printed
 * one per line in a readable form. /send NICK PATH and incoming files are
 * handled here (offer, chunks, SHA-256 check, atomic rename) through the
 * library's ss_chat_ul / ss_chat_dl. If the server goes away the client
 * says so and reconnects with exponential backoff.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/chat_ui.h"
#include "cli/cli.h"
#include "sockstack/chat.h"
#include "sockstack/config.h"
#include "sockstack/err.h"
#include "sockstack/reactor.h"
#include "sockstack/sock.h"

/* Output queue towards the server: bounded; stdin and uploads pause at it. */
enum { OUT_MAX = 1 << 20 };

struct chat_client {
    ss_loop *loop;
    const char *host, *port, *nick, *password, *dir;
    bool reconnect;
    ss_sock *s;
    enum { ST_OFFLINE, ST_CONNECTING, ST_CONNECTED } state;
    char peer[SS_ADDR_STRLEN];
    /* server -> us */
    char in[SS_CHAT_CLIENT_LINE_MAX + 2];
    size_t in_len;
    bool in_skip;
    /* us -> server */
    char *out;
    size_t out_len;
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
    /* what the status line shows */
    int online;
    struct chat_ui *ui; /* NULL in line mode */
};

static void client_connect(struct chat_client *cl);
static void sock_cb(ss_sock *s, unsigned ev, void *arg);

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
    /* Never let a peer's control bytes reach the terminal. */
    for (char *p = text; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    char hhmmss[16] = "";
    if (ts && strlen(ts) >= 19) {
        /* Server time is UTC ISO 8601; show it in local time. */
        struct tm tm = {0};
        if (strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm)) {
            time_t t = timegm(&tm);
            struct tm lt;
            localtime_r(&t, &lt);
            strftime(hhmmss, sizeof hhmmss, "%H:%M:%S", &lt);
        }
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

static void maybe_finish_stdin(struct chat_client *cl)
{
    if (cl->stdin_eof && !cl->ul && !cl->quitting && cl->state == ST_CONNECTED) {
        cl->quitting = true;
        queue(cl, "/quit\n", 6);
    }
}

/* A line the user typed (no EOL). */
static void user_line(struct chat_client *cl, const char *line)
{
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
    size_t n = strlen(line);
    if (cl->state != ST_CONNECTED) {
        show(cl, NULL, NULL, "!! not connected; not sent: %s", line);
        return;
    }
    if (!queue(cl, line, n) || !queue(cl, "\n", 1))
        show(cl, NULL, NULL, "!! output queue full; not sent");
}

/* ---- receiving -------------------------------------------------------- */

/* Split the first space-separated field off *p. */
static char *field(char **p)
{
    char *s = *p;
    if (!s)
        return NULL;
    char *sp = strchr(s, ' ');
    if (sp) {
        *sp = '\0';
        *p = sp + 1;
    } else {
        *p = NULL;
    }
    return s;
}

static void file_line(struct chat_client *cl, const char *kind, char *rest)
{
    if (!strcmp(kind, "FILE")) {
        char *id = field(&rest), *size = field(&rest), *sha = field(&rest);
        if (!id || !size || !sha || !rest)
            return;
        ss_chat_dl_abort(cl->dl);
        cl->dl = NULL;
        int err = ss_chat_dl_begin(&cl->dl, cl->dir, atoll(id),
                                   strtoull(size, NULL, 10), sha, rest);
        if (err)
            show(cl, NULL, NULL, "!! cannot receive %s: %s", rest, ss_strerror(err));
        else
            show(cl, NULL, NULL, "-- receiving %s (%s bytes)", rest, size);
        return;
    }
    if (!strcmp(kind, "CHUNK")) {
        char *id = field(&rest), *off = field(&rest);
        if (!cl->dl || !id || !off || !rest || atoll(id) != ss_chat_dl_id(cl->dl))
            return;
        int err = ss_chat_dl_chunk(cl->dl, strtoull(off, NULL, 10), rest);
        if (err) {
            show(cl, NULL, NULL, "!! file %s: %s; discarded", id, ss_strerror(err));
            ss_chat_dl_abort(cl->dl);
            cl->dl = NULL;
        }
        return;
    }
    /* FILEEND */
    char *id = field(&rest);
    if (!cl->dl || !id || atoll(id) != ss_chat_dl_id(cl->dl))
        return;
    char path[8192];
    int err = ss_chat_dl_finish(cl->dl, path, sizeof path);
    cl->dl = NULL;
    if (err)
        show(cl, NULL, NULL, "!! file %s: %s; discarded", id, ss_strerror(err));
    else
        show(cl, NULL, NULL, "-- received file %s, SHA-256 verified: %s", id, path);
}

/* One line from the server (no EOL): render it or act on it. */
static void server_line(struct chat_client *cl, char *line)
{
    char *rest = line;
    char *kind = field(&rest);
    if (!strcmp(kind, "MSG") || !strcmp(kind, "ME") || !strcmp(kind, "PRIV") ||
        !strcmp(kind, "OFFLINE") || !strcmp(kind, "HIST")) {
        char *ts = field(&rest);
        bool me = !strcmp(kind, "ME");
        if (!strcmp(kind, "HIST")) {
            char *k = field(&rest);
            me = k && !strcmp(k, "ME");
        }
        char *nick = field(&rest);
        if (!ts || !nick)
            return;
        const char *text = rest ? rest : "";
        if (me)
            show(cl, ts, nick, "* %s %s", nick, text);
        else if (!strcmp(kind, "PRIV"))
            show(cl, ts, nick, "*%s* %s", nick, text);
        else if (!strcmp(kind, "OFFLINE"))
            show(cl, ts, nick, "*%s* %s (while you were away)", nick, text);
        else
            show(cl, ts, nick, "<%s> %s", nick, text);
    } else if (!strcmp(kind, "JOIN") || !strcmp(kind, "LEAVE")) {
        char *ts = field(&rest), *nick = field(&rest), *n = field(&rest);
        if (!nick)
            return;
        cl->online = n ? atoi(n) : cl->online;
        set_state(cl, cl->state);
        show(cl, ts, NULL, "-- %s %s (%d online)", nick,
             kind[0] == 'J' ? "joined" : "left", cl->online);
    } else if (!strcmp(kind, "NICK")) {
        char *ts = field(&rest), *old = field(&rest);
        show(cl, ts, NULL, "-- %s is now known as %s", old ? old : "?", rest ? rest : "?");
    } else if (!strcmp(kind, "WHO")) {
        char *nick = field(&rest), *st = field(&rest);
        if (st && !strcmp(st, "offline"))
            show(cl, NULL, NULL, "-- %s offline, last seen %s", nick, rest ? rest : "?");
        else
            show(cl, NULL, NULL, "-- %s online", nick);
    } else if (!strcmp(kind, "OK")) {
        char *what = field(&rest);
        if (!what)
            return;
        if (!strcmp(what, "nick")) {
            char *nick = field(&rest);
            cl->online = rest ? atoi(rest) : cl->online;
            set_state(cl, cl->state);
            show(cl, NULL, NULL, "-- you are %s (%d online)", nick, cl->online);
        } else if (!strcmp(what, "offer") && cl->ul && cl->ul_id == -1 && rest) {
            cl->ul_id = atoll(rest);
            upload_pump(cl);
        } else if (!strcmp(what, "upload")) {
            char *id = field(&rest);
            show(cl, NULL, NULL, "-- file %s uploaded (%s)", id ? id : "?",
                 rest ? rest : "");
            maybe_finish_stdin(cl);
        } else if (!strcmp(what, "who")) {
            char *on = field(&rest);
            show(cl, NULL, NULL, "-- %s online, %s offline listed", on, rest ? rest : "0");
        } else if (!strcmp(what, "msg") && rest && strstr(rest, "stored")) {
            char *to = field(&rest);
            show(cl, NULL, NULL, "-- %s is offline; message stored", to);
        } else if (!strcmp(what, "login") || !strcmp(what, "register")) {
            show(cl, NULL, NULL, "-- %s %s", what == NULL ? "" :
                 !strcmp(what, "login") ? "logged in as" : "registered", rest ? rest : "");
        }
        /* OK sent / msg / history / help / accept / decline: nothing to say. */
    } else if (!strcmp(kind, "ERR")) {
        char *code = field(&rest);
        if (cl->ul && cl->ul_id == -1 && code && strcmp(code, "toolong") &&
            strcmp(code, "utf8") && strcmp(code, "overflow")) {
            show(cl, NULL, NULL, "!! file not sent: %s", rest ? rest : code);
            upload_stop(cl);
            maybe_finish_stdin(cl);
            return;
        }
        show(cl, NULL, NULL, "!! %s", rest ? rest : code ? code : "error");
    } else if (!strcmp(kind, "INFO")) {
        /* The greeting names the room: "welcome to ROOM (sockstack chat)..." */
        char room[64];
        if (cl->ui && rest && sscanf(rest, "welcome to %63s (", room) == 1)
            chat_ui_room(cl->ui, room);
        show(cl, NULL, NULL, "-- %s", rest ? rest : "");
    } else if (!strcmp(kind, "OFFER")) {
        char *id = field(&rest), *from = field(&rest), *size = field(&rest),
             *sha = field(&rest);
        show(cl, NULL, from, "-- %s offers %s (%s bytes, SHA-256 %s): /accept %s or "
             "/decline %s", from, rest ? rest : "?", size, sha, id, id);
    } else if (!strcmp(kind, "FILE") || !strcmp(kind, "CHUNK") ||
               !strcmp(kind, "FILEEND")) {
        file_line(cl, kind, rest);
    } else if (!strcmp(kind, "ACCEPTED") || !strcmp(kind, "DECLINED")) {
        char *id = field(&rest);
        show(cl, NULL, NULL, "-- %s %s file %s", rest ? rest : "?",
             kind[0] == 'A' ? "accepted" : "declined", id);
    } else if (!strcmp(kind, "BYE")) {
        show(cl, NULL, NULL, "-- server: %s", rest ? rest : "bye");
    } else {
        show(cl, NULL, NULL, "%s%s%s", kind, rest ? " " : "", rest ? rest : "");
    }
}

static void feed(struct chat_client *cl, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (ch == '\n') {
            if (!cl->in_skip) {
                if (cl->in_len && cl->in[cl->in_len - 1] == '\r')
                    cl->in_len--;
                cl->in[cl->in_len] = '\0';
                server_line(cl, cl->in);
            }
            cl->in_len = 0;
            cl->in_skip = false;
        } else if (cl->in_len < sizeof cl->in - 1) {
            cl->in[cl->in_len++] = ch;
        } else {
            cl->in_skip = true; /* a server line longer than ours: drop it */
        }
    }
}

/* ---- connection ------------------------------------------------------- */

static void drop(struct chat_client *cl, const char *why)
{
    ss_sock_close(cl->s);
    cl->s = NULL;
    cl->out_len = 0;
    cl->in_len = 0;
    if (cl->ul) {
        show(cl, NULL, NULL, "!! upload of %s interrupted", ss_chat_ul_name(cl->ul));
        upload_stop(cl);
    }
    ss_chat_dl_abort(cl->dl);
    cl->dl = NULL;
    bool was = cl->state == ST_CONNECTED;
    set_state(cl, ST_OFFLINE);
    if (cl->quitting || !cl->reconnect) {
        if (!cl->quitting) {
            show(cl, NULL, NULL, "!! %s", why);
            cl->exit_code = CLI_RUNTIME;
        }
        ss_loop_stop(cl->loop);
        return;
    }
    show(cl, NULL, NULL, "-- %s %s; reconnecting in %.2f s", was ? "connection lost:" :
         "cannot connect:", why, cl->backoff_ms / 1000.0);
    ss_timer_start(cl->loop, &cl->retry, cl->backoff_ms);
    cl->backoff_ms = cl->backoff_ms * 2 > SS_CHAT_BACKOFF_MAX_MS ? SS_CHAT_BACKOFF_MAX_MS
                                                                : cl->backoff_ms * 2;
}

static void connected(struct chat_client *cl)
{
    set_state(cl, ST_CONNECTED);
    cl->backoff_ms = SS_CHAT_BACKOFF_MIN_MS;
    show(cl, NULL, NULL, "-- connected to %s", cl->peer);
    char buf[256];
    int n = cl->password
                ? snprintf(buf, sizeof buf, "/login %s %s\n", cl->nick, cl->password)
                : snprintf(buf, sizeof buf, "/nick %s\n", cl->nick);
    queue(cl, buf, (size_t)n);
    if (cl->stdin_eof)
        maybe_finish_stdin(cl);
}

static void sock_cb(ss_sock *s, unsigned ev, void *arg)
{
    struct chat_client *cl = arg;
    if (cl->state == ST_CONNECTING) {
        int err = ss_sock_error(s);
        if (err) {
            drop(cl, ss_strerror(err));
            return;
        }
        connected(cl);
        return;
    }
    if (ev & (SS_READ | SS_HUP)) {
        char buf[65536];
        ssize_t n = ss_sock_recv(s, buf, sizeof buf);
        if (n == 0 || (n < 0 && n != -EAGAIN)) {
            drop(cl, n == 0 ? "server closed the connection" : ss_strerror((int)n));
            return;
        }
        if (n > 0)
            feed(cl, buf, (size_t)n);
        if (!cl->s)
            return;
    }
    if ((ev & SS_WRITE) && cl->out_len) {
        ssize_t n = ss_sock_send(s, cl->out, cl->out_len);
        if (n < 0 && n != -EAGAIN) {
            drop(cl, ss_strerror((int)n));
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

static void client_connect(struct chat_client *cl)
{
    ss_addr addrs[4];
    int n = ss_addr_resolve(cl->host, cl->port, AF_UNSPEC, SS_STREAM, false, addrs, 4);
    if (n < 0) {
        drop(cl, ss_strerror(n));
        return;
    }
    ss_addr_format(&addrs[0], cl->peer, sizeof cl->peer);
    int err = ss_sock_connect_to(ss_backend_kernel(), &addrs[0], SS_STREAM, NULL, NULL,
                                 &cl->s, NULL);
    if (err < 0 && err != -EINPROGRESS) {
        drop(cl, ss_strerror(err));
        return;
    }
    set_state(cl, ST_CONNECTING);
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
            if (r > 0)
                user_line(cl, line);
            else if (r == CHAT_UI_QUIT && !cl->quitting)
                user_line(cl, "/quit");
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
        if (cl->state != ST_CONNECTED && !cl->reconnect)
            ss_loop_stop(loop);
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

/* ---- main ------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: sockstack chat HOST PORT --name NICK [OPTIONS]\n"
            "\n"
            "Chat client for `sockstack serve chat`. On a terminal: a full screen\n"
            "(messages, status line, input line; PgUp/PgDn scroll back). Otherwise\n"
            "plain lines: stdin lines are sent, messages printed one per line.\n"
            "\n"
            "Options:\n"
            "  -n, --name NICK       nickname (required)\n"
            "  -p, --password PW     log in to a registered nickname\n"
            "  -d, --dir DIR         where received files go (default .)\n"
            "      --plain           line mode even on a terminal\n"
            "      --no-reconnect    exit 1 when the connection is lost\n"
            "  -h, --help            this help\n"
            "\n"
            "Typed commands: /send NICK PATH, /accept ID, /decline ID, /msg NICK TEXT,\n"
            "/who, /history [N], /me ACTION, /register PW, /help, /quit.\n");
}

int cmd_chat(int argc, char **argv)
{
    enum { OPT_PLAIN = 0x100, OPT_NORECONNECT };
    static const struct option longopts[] = {
        {"name", required_argument, NULL, 'n'},
        {"password", required_argument, NULL, 'p'},
        {"dir", required_argument, NULL, 'd'},
        {"plain", no_argument, NULL, OPT_PLAIN},
        {"no-reconnect", no_argument, NULL, OPT_NORECONNECT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct chat_client cl = {.dir = ".", .reconnect = true,
                             .backoff_ms = SS_CHAT_BACKOFF_MIN_MS};
    bool plain = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "n:p:d:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'n': cl.nick = optarg; break;
        case 'p': cl.password = optarg; break;
        case 'd': cl.dir = optarg; break;
        case OPT_PLAIN: plain = true; break;
        case OPT_NORECONNECT: cl.reconnect = false; break;
        case 'h': usage(stdout); return CLI_OK;
        default: return cli_usage_error("chat ", "unknown option");
        }
    }
    if (argc - optind != 2)
        return cli_usage_error("chat ", "expected HOST PORT");
    if (!cl.nick)
        return cli_usage_error("chat ", "--name NICK is required");
    if (!ss_chat_nick_valid(cl.nick))
        return cli_usage_error("chat ", "--name: '%s' is not a valid nickname "
                               "(1-%d letters, digits, '_' or '-', a letter first)",
                               cl.nick, SS_CHAT_NICK_MAX);
    if (cl.password && strchr(cl.password, ' '))
        return cli_usage_error("chat ", "--password must not contain spaces");
    int port;
    if (cli_parse_int("PORT", argv[optind + 1], 1, 65535, &port) < 0)
        return CLI_USAGE;
    cl.host = argv[optind];
    cl.port = argv[optind + 1];

    cl.out = malloc(OUT_MAX);
    if (!cl.out || ss_loop_new(&cl.loop) < 0) {
        cli_error("out of memory");
        free(cl.out);
        return CLI_RUNTIME;
    }
    ss_timer_init(&cl.retry, retry_cb, &cl);
    if (!plain && isatty(0) && isatty(1)) {
        cl.ui = chat_ui_open("?", cl.nick);
        if (!cl.ui)
            cli_error("cannot start the terminal screen; using line mode");
    }
    ss_loop_io_add(cl.loop, 0, SS_READ, stdin_cb, &cl);
    client_connect(&cl);
    ss_loop_run(cl.loop);

    ss_timer_stop(cl.loop, &cl.retry);
    ss_sock_close(cl.s);
    upload_stop(&cl);
    ss_chat_dl_abort(cl.dl);
    if (cl.ui)
        chat_ui_close(cl.ui);
    ss_loop_free(cl.loop);
    free(cl.out);
    return cl.exit_code;
}
