/* chat_client: the client-side decoder of the chat line protocol (see
 * include/sockstack/chat_client.h).
 *
 * RX: ss_chat_client_feed -> split lines (LF, CRLF) -> ss_chat_client_parse
 *     -> history de-duplication -> cb(ev).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sockstack/chat.h"
#include "sockstack/chat_client.h"
#include "sockstack/config.h"

/* The public and private lines seen lately, (TS, hash) each: a line that
 * comes again in the history after a reconnect (to this node or another)
 * is found here and marked dup. A ring, oldest replaced. */
enum { SEEN_MAX = 1024 };
/* Our own recent public lines (the server does not echo them). */
enum { SEEN_OWN = 64 };

struct seen {
    int64_t ts;
    uint64_t h;
};

struct ss_chat_client {
    ss_chat_ev_cb cb;
    void *arg;
    char in[SS_CHAT_CLIENT_LINE_MAX + 2];
    size_t in_len;
    bool skip;
    int64_t last_ts;  /* newest public line seen; -1 none */
    struct seen seen[SEEN_MAX];
    int nseen, seen_next;
    int64_t floor_ts; /* newest TS pushed out of the ring; -1 none */
    uint64_t own[SEEN_OWN];
    int own_next;
};

int ss_chat_client_new(ss_chat_client **out, ss_chat_ev_cb cb, void *arg)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return -ENOMEM;
    (*out)->cb = cb;
    (*out)->arg = arg;
    (*out)->last_ts = -1;
    (*out)->floor_ts = -1;
    return 0;
}

void ss_chat_client_free(ss_chat_client *cl) { free(cl); }

void ss_chat_client_reset(ss_chat_client *cl)
{
    cl->in_len = 0;
    cl->skip = false;
}

int ss_chat_client_since(const ss_chat_client *cl, char *buf, size_t cap)
{
    if (cl->last_ts < 0)
        return 0;
    /* From a little before the newest line: a line stamped by another node
     * can arrive after a newer one stamped here (pub/sub transit, clock
     * skew); the ring drops what was already shown. */
    int64_t from = cl->last_ts - SS_CHAT_RESUME_SLACK_MS;
    char ts[40];
    ss_chat_format_ts(from > 0 ? from : 0, ts, sizeof ts);
    int n = snprintf(buf, cap, "/since %s\n", ts);
    return n > 0 && (size_t)n < cap ? n : 0;
}

/* ---- text ------------------------------------------------------------- */

void ss_chat_text_clean(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        if (*p < 0x20 || *p == 0x7f) {
            *p++ = '?';
            continue;
        }
        if (*p < 0x80) {
            p++;
            continue;
        }
        /* Length of this UTF-8 sequence, if it is well formed. */
        size_t n = (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 0;
        size_t have = 0;
        while (have < n && p[have])
            have++;
        if (!n || have < n || !ss_utf8_valid(p, n)) {
            *p++ = '?';
            continue;
        }
        if (n == 2 && p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
            /* C1 control (CSI, OSC, ...): two bytes become "??". */
            p[0] = p[1] = '?';
        }
        p += n;
    }
}

void ss_chat_ago(int64_t then_ms, int64_t now_ms, char *buf, size_t cap)
{
    int64_t d = (now_ms - then_ms) / 1000;
    if (then_ms <= 0) {
        snprintf(buf, cap, "never");
    } else if (d < 60) {
        snprintf(buf, cap, "just now");
    } else if (d < 3600) {
        snprintf(buf, cap, "%lld min ago", (long long)(d / 60));
    } else if (d < 86400) {
        snprintf(buf, cap, "%lld h ago", (long long)(d / 3600));
    } else {
        time_t t = (time_t)(then_ms / 1000);
        struct tm lt;
        localtime_r(&t, &lt);
        strftime(buf, cap, "%Y-%m-%d %H:%M", &lt);
    }
}

/* ---- parsing ---------------------------------------------------------- */

/* Split the first space-separated field off *p ("" when none left). */
static char *field(char **p)
{
    char *s = *p;
    char *sp = strchr(s, ' ');
    if (sp) {
        *sp = '\0';
        *p = sp + 1;
    } else {
        *p = s + strlen(s);
    }
    return s;
}

static uint64_t num(const char *s) { return strtoull(s, NULL, 10); }

static const struct {
    const char *word;
    int kind;
} kinds[] = {
    {"MSG", SS_CHAT_EV_MSG},           {"ME", SS_CHAT_EV_ME},
    {"PRIV", SS_CHAT_EV_PRIV},         {"OFFLINE", SS_CHAT_EV_OFFLINE},
    {"HIST", SS_CHAT_EV_HIST},         {"JOIN", SS_CHAT_EV_JOIN},
    {"LEAVE", SS_CHAT_EV_LEAVE},       {"NICK", SS_CHAT_EV_NICK},
    {"WHO", SS_CHAT_EV_WHO},           {"OK", SS_CHAT_EV_OK},
    {"ERR", SS_CHAT_EV_ERR},           {"INFO", SS_CHAT_EV_INFO},
    {"OFFER", SS_CHAT_EV_OFFER},       {"FILE", SS_CHAT_EV_FILE},
    {"CHUNK", SS_CHAT_EV_CHUNK},       {"FILEEND", SS_CHAT_EV_FILEEND},
    {"ACCEPTED", SS_CHAT_EV_ACCEPTED}, {"DECLINED", SS_CHAT_EV_DECLINED},
    {"BYE", SS_CHAT_EV_BYE},           {"P2P", SS_CHAT_EV_P2P},
    {"RESUME", SS_CHAT_EV_RESUME},     {"DONE", SS_CHAT_EV_DONE},
    {"FAILED", SS_CHAT_EV_FAILED},     {"NOFILE", SS_CHAT_EV_NOFILE},
};

static void stamp(ss_chat_ev *ev, char **rest)
{
    ev->ts_str = field(rest);
    ev->ts = ss_chat_parse_ts(ev->ts_str);
}

void ss_chat_client_parse(char *line, ss_chat_ev *ev)
{
    *ev = (ss_chat_ev){.ts = -1, .ts_str = "", .nick = "", .nick2 = "", .code = "",
                       .text = "", .sha256 = "", .raw = line, .key = "", .side = -1,
                       .addr = ""};
    char *rest = line;
    char *word = field(&rest);
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(word, kinds[i].word))
            ev->kind = kinds[i].kind;
    switch (ev->kind) {
    case SS_CHAT_EV_MSG:
    case SS_CHAT_EV_ME:
    case SS_CHAT_EV_PRIV:
    case SS_CHAT_EV_OFFLINE:
        stamp(ev, &rest);
        ev->nick = field(&rest);
        ev->text = rest;
        ev->me = ev->kind == SS_CHAT_EV_ME;
        break;
    case SS_CHAT_EV_HIST:
        stamp(ev, &rest);
        ev->code = field(&rest);
        ev->me = !strcmp(ev->code, "ME");
        ev->nick = field(&rest);
        ev->text = rest;
        break;
    case SS_CHAT_EV_JOIN:
    case SS_CHAT_EV_LEAVE:
        stamp(ev, &rest);
        ev->nick = field(&rest);
        ev->count = atoi(field(&rest));
        break;
    case SS_CHAT_EV_NICK:
        stamp(ev, &rest);
        ev->nick = field(&rest);
        ev->nick2 = field(&rest);
        break;
    case SS_CHAT_EV_WHO:
        ev->nick = field(&rest);
        ev->online = !strcmp(field(&rest), "online");
        if (!ev->online)
            stamp(ev, &rest);
        break;
    case SS_CHAT_EV_OK:
    case SS_CHAT_EV_ERR:
    case SS_CHAT_EV_P2P:
        ev->code = field(&rest);
        ev->text = rest;
        if (ev->kind == SS_CHAT_EV_OK && !strcmp(ev->code, "nick")) {
            ev->nick = field(&rest);
            ev->count = atoi(rest);
        } else if (ev->kind == SS_CHAT_EV_P2P && !strcmp(ev->code, "intro")) {
            ev->id = (int64_t)num(field(&rest));
            ev->nick = field(&rest);
            ev->key = field(&rest);
            const char *side = field(&rest);
            ev->side = !strcmp(side, "0") ? 0 : !strcmp(side, "1") ? 1 : -1;
            ev->text = "";
        } else if (ev->kind == SS_CHAT_EV_P2P && !strcmp(ev->code, "peer")) {
            ev->id = (int64_t)num(field(&rest));
            ev->addr = field(&rest);
            ev->text = rest;
        }
        break;
    case SS_CHAT_EV_INFO:
    case SS_CHAT_EV_BYE:
        ev->text = rest;
        break;
    case SS_CHAT_EV_OFFER:
        ev->id = (int64_t)num(field(&rest));
        ev->nick = field(&rest);
        ev->size = num(field(&rest));
        ev->sha256 = field(&rest);
        ev->text = rest;
        break;
    case SS_CHAT_EV_FILE:
        ev->id = (int64_t)num(field(&rest));
        ev->size = num(field(&rest));
        ev->sha256 = field(&rest);
        ev->text = rest;
        break;
    case SS_CHAT_EV_CHUNK:
    case SS_CHAT_EV_RESUME:
        ev->id = (int64_t)num(field(&rest));
        ev->off = num(field(&rest));
        ev->text = rest;
        break;
    case SS_CHAT_EV_FILEEND:
    case SS_CHAT_EV_DONE:
    case SS_CHAT_EV_FAILED:
    case SS_CHAT_EV_NOFILE:
        ev->id = (int64_t)num(field(&rest));
        break;
    case SS_CHAT_EV_ACCEPTED:
    case SS_CHAT_EV_DECLINED:
        ev->id = (int64_t)num(field(&rest));
        ev->nick2 = field(&rest);
        break;
    default:
        /* Unknown: the whole line, as it came. */
        if (rest != word + strlen(word))
            word[strlen(word)] = ' ';
        ev->text = line;
        break;
    }
}

/* ---- history de-duplication across reconnects ------------------------- */

/* A line's identity apart from its TS: class (public, action, private),
 * nick and text. */
static uint64_t line_hash(const ss_chat_ev *ev, char cls)
{
    uint64_t h = 1469598103934665603ull;
    const char tag[2] = {cls, 0};
    const char *parts[] = {ev->nick, "\x01", ev->text, tag};
    for (size_t i = 0; i < 4; i++)
        for (const unsigned char *p = (const unsigned char *)parts[i]; *p; p++)
            h = (h ^ *p) * 1099511628211ull;
    return h;
}

static char line_class(const ss_chat_ev *ev)
{
    if (ev->kind == SS_CHAT_EV_PRIV || ev->kind == SS_CHAT_EV_OFFLINE)
        return 'p';
    return ev->me ? 'a' : 'm';
}

static bool seen_has(const ss_chat_client *cl, int64_t ts, uint64_t h)
{
    for (int i = 0; i < cl->nseen; i++)
        if (cl->seen[i].ts == ts && cl->seen[i].h == h)
            return true;
    return false;
}

static void seen_add(ss_chat_client *cl, int64_t ts, uint64_t h)
{
    if (cl->nseen == SEEN_MAX) {
        int64_t old = cl->seen[cl->seen_next].ts;
        if (old > cl->floor_ts)
            cl->floor_ts = old;
    } else {
        cl->nseen++;
    }
    cl->seen[cl->seen_next] = (struct seen){ts, h};
    cl->seen_next = (cl->seen_next + 1) % SEEN_MAX;
}

/* A stamped line: mark a repeat (history, offline mail), remember it, and
 * keep the newest public TS for the next /since. Live lines are never
 * repeats: one connection sends each once. */
static void track(ss_chat_client *cl, ss_chat_ev *ev)
{
    if (ev->ts < 0)
        return;
    uint64_t h = line_hash(ev, line_class(ev));
    bool again = ev->kind == SS_CHAT_EV_HIST || ev->kind == SS_CHAT_EV_OFFLINE;
    if (again && seen_has(cl, ev->ts, h)) {
        ev->dup = true;
        return;
    }
    if (ev->kind == SS_CHAT_EV_HIST) {
        /* Older than all we remember, at or below a line we forgot. */
        ev->dup = ev->ts <= cl->floor_ts;
        for (int i = 0; i < SEEN_OWN && !ev->dup; i++)
            if (cl->own[i] == h) {
                cl->own[i] = 0; /* shown when typed; once is enough */
                ev->dup = true;
            }
    }
    seen_add(cl, ev->ts, h);
    if (ev->kind != SS_CHAT_EV_PRIV && ev->kind != SS_CHAT_EV_OFFLINE && ev->ts > cl->last_ts)
        cl->last_ts = ev->ts;
}

static void line_done(ss_chat_client *cl)
{
    if (cl->in_len && cl->in[cl->in_len - 1] == '\r')
        cl->in_len--;
    cl->in[cl->in_len] = '\0';
    ss_chat_ev ev;
    ss_chat_client_parse(cl->in, &ev);
    if (ev.kind == SS_CHAT_EV_MSG || ev.kind == SS_CHAT_EV_ME || ev.kind == SS_CHAT_EV_HIST ||
        ev.kind == SS_CHAT_EV_PRIV || ev.kind == SS_CHAT_EV_OFFLINE)
        track(cl, &ev);
    cl->cb(cl->arg, &ev);
}

int ss_chat_client_feed(ss_chat_client *cl, const void *buf, size_t n)
{
    const char *p = buf;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n') {
            if (!cl->skip)
                line_done(cl);
            cl->in_len = 0;
            cl->skip = false;
        } else if (cl->in_len < sizeof cl->in - 1) {
            cl->in[cl->in_len++] = p[i];
        } else {
            cl->skip = true; /* longer than any server line: drop it */
        }
    }
    return 0;
}

void ss_chat_client_sent(ss_chat_client *cl, const char *nick, const char *text, bool me)
{
    ss_chat_ev ev = {.nick = nick, .text = text, .me = me};
    cl->own[cl->own_next] = line_hash(&ev, line_class(&ev));
    cl->own_next = (cl->own_next + 1) % SEEN_OWN;
}
