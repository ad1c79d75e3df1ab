/* chat_irc: IRC (RFC 1459 / RFC 2812 with IRCv3 capabilities) in front of
 * the chat room. See chat_irc.h for the paths in and out, and the "IRC"
 * part of the chat section of docs/protocols.md for the mapping.
 *
 * Handlers, one per IRC command, in the order of a session:
 *   CAP, AUTHENTICATE (SASL PLAIN), PASS, NICK, USER -> register()
 *     -> "/login" or "/nick" -> "OK nick" -> welcome() (001-005, MOTD)
 *   JOIN -> "/topic", "/who", "/history" | PART | PRIVMSG/NOTICE -> text,
 *   "/me", "/msg", "/notice" | NAMES, WHO, WHOIS -> "/who" | TOPIC ->
 *   "/topic" | AWAY -> "/away" | CHATHISTORY -> "/history" | QUIT -> "/quit"
 * Replies: on_native() sorts the room's line into a reply to the command
 * in progress (ic->pend) or an event for this user.
 */
#include "apps/chat_irc.h"

#include <errno.h>
#include <fnmatch.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sockstack/config.h"

/* Capabilities a client may request (CAP REQ). */
enum {
    CAP_TIME = 1u << 0,   /* server-time: @time= on messages */
    CAP_TAGS = 1u << 1,   /* message-tags */
    CAP_ECHO = 1u << 2,   /* echo-message */
    CAP_AWAY = 1u << 3,   /* away-notify */
    CAP_SASL = 1u << 4,   /* sasl */
    CAP_BATCH = 1u << 5,  /* batch */
    CAP_HIST = 1u << 6,   /* draft/chathistory */
};

static const struct {
    const char *name;
    const char *value302; /* shown with CAP LS 302 */
    unsigned bit;
} caps[] = {
    {"server-time", NULL, CAP_TIME},  {"message-tags", NULL, CAP_TAGS},
    {"echo-message", NULL, CAP_ECHO}, {"away-notify", NULL, CAP_AWAY},
    {"sasl", "PLAIN", CAP_SASL},      {"batch", NULL, CAP_BATCH},
    {"draft/chathistory", NULL, CAP_HIST},
};

enum { IRC_Q_MAX = 4 };
enum { A_NONE, A_LIST, A_BATCH_END };

/* What the native lines the room sends next answer. */
enum pend {
    P_NONE,
    P_REG,       /* /nick at registration */
    P_LOGIN,     /* /login from SASL or PASS (the hash runs elsewhere) */
    P_NICK,      /* /nick after registration */
    P_CHANMSG,   /* text or /me to the room */
    P_PRIVMSG,   /* /msg */
    P_NOTICE,    /* /notice */
    P_NAMES,     /* /who for NAMES */
    P_WHO,       /* /who for WHO */
    P_WHOIS,     /* /who for WHOIS */
    P_TOPIC,     /* /topic, a query */
    P_TOPIC_SET, /* /topic TEXT */
    P_AWAY,      /* /away */
    P_REPLAY,    /* /history on JOIN */
    P_HISTORY,   /* /history for CHATHISTORY */
    P_QUIT,      /* /quit */
    P_LIST,      /* /topic for LIST */
};

struct ss__irc_hub {
    char server[64];
    char chan[72];
    /* The last shared native event formatted: [0] without tags, [1] with
     * server-time. The room shares one line among all recipients, and so
     * do we: a message to 1,000 IRC users is formatted twice at most. */
    ss_chat_line *src;
    ss_chat_line *out[2];
    bool done[2];
};

/* A growing output buffer of CRLF lines. */
struct obuf {
    char *d;
    size_t len, cap;
    bool oom;
};

struct ss__irc {
    ss__irc_hub *hub;
    ss__irc_io io;
    void *arg;
    ss_chat_conn *cc;
    bool dead;
    /* framing */
    char *part;
    size_t part_len;
    bool discarding;
    /* registration */
    char nick[SS_CHAT_NICK_MAX + 1]; /* wanted, then the registered one */
    bool has_nick, has_user, registered, named, cap_hold, authed, invisible;
    char pass[256];
    bool has_pass;
    unsigned caps;
    /* SASL PLAIN in progress */
    bool sasl;
    char *sasl_buf;
    size_t sasl_len;
    bool sasl_login;
    /* the room as a channel */
    bool joined;
    /* the command in progress */
    enum pend pend;
    char ptarget[SS_CHAT_NICK_MAX + 72];
    const char *ptext;
    bool paction, pfound, pjoin;
    int64_t pnow, pafter;
    char pbatch[16];
    char ptopic[SS_CHAT_TOPIC_MAX + 1];
    struct obuf names; /* NAMES: nicks gathered for one 353 */
    /* A room whose store answers later (cluster mode): the native line in
     * progress is answered after room() returned (waiting), and the next
     * native lines of the same IRC command wait here, with what runs
     * after them (LIST's 322, the end of a history batch). */
    bool waiting;
    struct irc_q {
        enum pend pend;
        bool pjoin;
        int after;          /* A_*: no line, run this */
        char *line;
        size_t len;
    } q[IRC_Q_MAX];
    int nq;
    char ptext_own[SS_CHAT_IRC_LINE + 1];
    unsigned batch_seq;
    char nbuf[SS_CHAT_MAX_LINE + 256]; /* one native line */
};

/* ---- output ------------------------------------------------------------- */

static void ob_add(struct obuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->d, cap);
        if (!d) {
            b->oom = true;
            return;
        }
        b->d = d;
        b->cap = cap;
    }
    memcpy(b->d + b->len, s, n);
    b->len += n;
    b->d[b->len] = '\0';
}

static void ob_free(struct obuf *b)
{
    free(b->d);
    *b = (struct obuf){0};
}

/* The length of s cut to at most max bytes on a UTF-8 boundary. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

/* One line: tags (may be ""), then the message, cut to 510 bytes on a
 * UTF-8 boundary, then CRLF. CR and LF inside become spaces. */
static void ob_line(struct obuf *b, const char *tags, const char *msg, size_t len)
{
    if (tags && *tags) {
        ob_add(b, "@", 1);
        ob_add(b, tags, strlen(tags));
        ob_add(b, " ", 1);
    }
    len = utf8_cut(msg, len, SS_CHAT_IRC_LINE - 2);
    size_t start = b->len;
    ob_add(b, msg, len);
    if (!b->oom)
        for (size_t i = start; i < b->len; i++)
            if (b->d[i] == '\r' || b->d[i] == '\n')
                b->d[i] = ' ';
    ob_add(b, "\r\n", 2);
}

/* Hand b's lines to the client as one shared line. */
static int ob_emit(ss__irc *ic, struct obuf *b)
{
    if (b->oom || ic->dead) {
        ob_free(b);
        return ic->dead ? -ENOBUFS : -ENOMEM;
    }
    if (!b->len)
        return 0;
    ss_chat_line *l = ss_chat_line_new(b->d, b->len);
    ob_free(b);
    int err = l ? ic->io.emit(ic->arg, l) : -ENOMEM;
    ss_chat_line_unref(l);
    if (err < 0)
        ic->dead = true;
    return err;
}

/* The nick a numeric is addressed to: "*" before registration. */
static const char *me(const ss__irc *ic)
{
    return ic->registered || ic->named || ic->has_nick ? ic->nick : "*";
}

bool ss__irc_registered(const ss__irc *ic) { return ic->registered; }

__attribute__((format(printf, 2, 3)))
static void sendf(ss__irc *ic, const char *fmt, ...)
{
    char line[SS_CHAT_IRC_LINE + SS_CHAT_MAX_LINE];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    struct obuf b = {0};
    ob_line(&b, NULL, line, len);
    ob_emit(ic, &b);
}

/* ":server NNN nick REST" */
__attribute__((format(printf, 3, 4)))
static void num(ss__irc *ic, const char *code, const char *fmt, ...)
{
    char rest[SS_CHAT_IRC_LINE + SS_CHAT_MAX_LINE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rest, sizeof rest, fmt, ap);
    va_end(ap);
    sendf(ic, ":%s %s %s %s", ic->hub->server, code, me(ic), rest);
}

/* Tags for a message stamped ts (native format) in batch (may be NULL). */
static void tags_for(const ss__irc *ic, const char *ts, const char *batch, char *out,
                     size_t cap)
{
    out[0] = '\0';
    size_t n = 0;
    if (batch && batch[0] && (ic->caps & CAP_BATCH))
        n += (size_t)snprintf(out + n, cap - n, "batch=%s", batch);
    if (ts && (ic->caps & CAP_TIME) && n < cap)
        snprintf(out + n, cap - n, "%stime=%s", n ? ";" : "", ts);
}

/* ":from!from@server CMD target :text", split into lines of at most 510
 * bytes without tags; an action keeps its CTCP quotes on every piece. */
static void ob_msg(struct obuf *b, const char *server, const char *tags, const char *from,
                   const char *cmd, const char *target, const char *text, bool action)
{
    char prefix[SS_CHAT_IRC_LINE];
    int pn = snprintf(prefix, sizeof prefix, ":%s!%s@%s %s %s :%s", from, from, server, cmd,
                      target, action ? "\001ACTION " : "");
    size_t room = SS_CHAT_IRC_LINE - 2 - (size_t)pn - (action ? 1 : 0);
    size_t len = strlen(text);
    char line[SS_CHAT_IRC_LINE];
    do {
        size_t take = utf8_cut(text, len, room);
        if (take == 0 && len > 0)
            take = len < room ? len : room; /* not UTF-8 (cannot happen): cut */
        memcpy(line, prefix, (size_t)pn);
        memcpy(line + pn, text, take);
        size_t n = (size_t)pn + take;
        if (action)
            line[n++] = '\001';
        ob_line(b, tags, line, n);
        text += take;
        len -= take;
    } while (len > 0);
}

/* ---- the hub -------------------------------------------------------------- */

int ss__irc_hub_new(ss__irc_hub **out, const char *server_name, const char *room)
{
    ss__irc_hub *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    snprintf(h->server, sizeof h->server, "%s", server_name ? server_name : "sockstack");
    snprintf(h->chan, sizeof h->chan, "#%s", room ? room : "lobby");
    *out = h;
    return 0;
}

static void hub_forget(ss__irc_hub *h)
{
    ss_chat_line_unref(h->src);
    ss_chat_line_unref(h->out[0]);
    ss_chat_line_unref(h->out[1]);
    h->src = h->out[0] = h->out[1] = NULL;
    h->done[0] = h->done[1] = false;
}

void ss__irc_hub_free(ss__irc_hub *h)
{
    if (!h)
        return;
    hub_forget(h);
    free(h);
}

/* ---- connection --------------------------------------------------------------- */

ss__irc *ss__irc_new(ss__irc_hub *h, const ss__irc_io *io, void *arg)
{
    ss__irc *ic = calloc(1, sizeof *ic);
    if (!ic)
        return NULL;
    ic->hub = h;
    ic->io = *io;
    ic->arg = arg;
    return ic;
}

void ss__irc_attach(ss__irc *ic, ss_chat_conn *cc) { ic->cc = cc; }

void ss__irc_free(ss__irc *ic)
{
    if (!ic)
        return;
    free(ic->part);
    for (int i = 0; i < ic->nq; i++)
        free(ic->q[i].line);
    if (ic->sasl_buf)
        OPENSSL_cleanse(ic->sasl_buf, ic->sasl_len);
    free(ic->sasl_buf);
    OPENSSL_cleanse(ic->pass, sizeof ic->pass);
    ob_free(&ic->names);
    free(ic);
}

size_t ss__irc_fatal(const char *note, char *buf, size_t cap)
{
    const char *text = note;
    if (!strncmp(text, "ERR ", 4))
        text += 4;
    size_t len = strcspn(text, "\r\n");
    int n = snprintf(buf, cap, "ERROR :Closing Link: %.*s\r\n", (int)len, text);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

static bool room_busy(const ss__irc *ic)
{
    return ic->waiting || ic->nq > 0 || (ic->cc && ss_chat_busy(ic->cc));
}

/* Feed one native line now, as the reply context pend. */
static void feed_native(ss__irc *ic, enum pend pend, int64_t now, const char *line,
                        size_t len)
{
    ic->pend = pend;
    ic->pnow = now;
    /* The text echoed or reported later must outlive the IRC line. */
    if (ic->ptext && ic->ptext != ic->ptext_own) {
        snprintf(ic->ptext_own, sizeof ic->ptext_own, "%s", ic->ptext);
        ic->ptext = ic->ptext_own;
    }
    size_t used;
    ss_chat_feed(ic->cc, line, len, now, &used);
    /* A login waits for its hash, and a remote store answers later: the
     * answer comes after this returns (ss__irc_ready). */
    if (ic->cc && ss_chat_busy(ic->cc))
        ic->waiting = true;
    else
        ic->pend = P_NONE;
}

static void run_after(ss__irc *ic, int after);

/* Feed one native command line to the room as the reply context pend
 * (queued behind a line the room has not answered yet). */
__attribute__((format(printf, 4, 5)))
static void room(ss__irc *ic, enum pend pend, int64_t now, const char *fmt, ...)
{
    if (ic->dead || !ic->cc)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(ic->nbuf, sizeof ic->nbuf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof ic->nbuf - 1 ? (size_t)n : sizeof ic->nbuf - 2;
    ic->nbuf[len++] = '\n';
    if (!room_busy(ic)) {
        feed_native(ic, pend, now, ic->nbuf, len);
        return;
    }
    char *copy = ic->nq < IRC_Q_MAX ? malloc(len) : NULL;
    if (!copy)
        return; /* at most IRC_Q_MAX lines per IRC command: never reached */
    memcpy(copy, ic->nbuf, len);
    ic->q[ic->nq++] = (struct irc_q){.pend = pend, .pjoin = pend == P_TOPIC && ic->pjoin,
                                     .line = copy, .len = len};
}

/* Run what follows the native lines of a command once they are answered. */
static void after(ss__irc *ic, int what)
{
    if (!room_busy(ic)) {
        run_after(ic, what);
        return;
    }
    if (ic->nq < IRC_Q_MAX)
        ic->q[ic->nq++] = (struct irc_q){.after = what};
}

void ss__irc_ready(ss__irc *ic, int64_t now)
{
    if (!ic->waiting || (ic->cc && ss_chat_busy(ic->cc)))
        return;
    ic->waiting = false;
    ic->pend = P_NONE;
    ic->ptext = NULL;
    ic->pjoin = false;
    while (ic->nq > 0 && !ic->waiting && !ic->dead && ic->cc) {
        struct irc_q e = ic->q[0];
        memmove(ic->q, ic->q + 1, (size_t)--ic->nq * sizeof *ic->q);
        if (e.after) {
            run_after(ic, e.after);
            continue;
        }
        ic->pjoin = e.pjoin;
        ic->pfound = false;
        feed_native(ic, e.pend, now, e.line, e.len);
        if (!ic->waiting)
            ic->pjoin = false;
        free(e.line);
    }
}

/* ---- registration ---------------------------------------------------------- */

static void welcome(ss__irc *ic)
{
    ss__irc_hub *h = ic->hub;
    ic->registered = true;
    num(ic, "001", ":Welcome to the sockstack chat, %s!%s@%s", ic->nick, ic->nick, h->server);
    num(ic, "002", ":Your host is %s, running sockstack chat", h->server);
    num(ic, "003", ":This server speaks IRC beside its native chat protocol");
    num(ic, "004", "%s sockstack-chat i nt", h->server);
    num(ic, "005", "CASEMAPPING=ascii CHANTYPES=# CHANNELLEN=32 NICKLEN=%d TOPICLEN=%d "
        "PREFIX=() CHANMODES=,,,nt NETWORK=sockstack UTF8ONLY CHATHISTORY=%d "
        "MSGREFTYPES=timestamp :are supported by this server", SS_CHAT_NICK_MAX,
        SS_CHAT_TOPIC_MAX, SS_CHAT_IRC_CHATHISTORY_MAX);
    num(ic, "375", ":- %s Message of the day - ", h->server);
    num(ic, "372", ":- This IRC port serves the same room as the native chat port:");
    num(ic, "372", ":- JOIN %s to talk with IRC and native users alike.", h->chan);
    num(ic, "376", ":End of /MOTD command.");
}

/* NICK and USER given and CAP negotiation over: enter the room. */
static void try_register(ss__irc *ic, int64_t now)
{
    if (ic->registered || !ic->has_nick || !ic->has_user || ic->cap_hold || ic->sasl ||
        room_busy(ic))
        return;
    if (ic->named) { /* SASL already took the nick */
        welcome(ic);
        return;
    }
    if (ic->has_pass) {
        ic->has_pass = false;
        room(ic, P_LOGIN, now, "/login %s %s", ic->nick, ic->pass);
        OPENSSL_cleanse(ic->pass, sizeof ic->pass);
        OPENSSL_cleanse(ic->nbuf, sizeof ic->nbuf);
        return;
    }
    room(ic, P_REG, now, "/nick %s", ic->nick);
}

/* ---- IRC messages in ------------------------------------------------------- */

struct msg {
    char *cmd;
    char *p[15];
    int n;
};

/* Split line (tags already removed) into command and parameters. */
static bool parse(char *s, struct msg *m)
{
    m->n = 0;
    while (*s == ' ')
        s++;
    if (*s == ':') { /* a prefix from a client is ignored */
        s = strchr(s, ' ');
        if (!s)
            return false;
        while (*s == ' ')
            s++;
    }
    if (!*s)
        return false;
    m->cmd = s;
    s += strcspn(s, " ");
    if (*s)
        *s++ = '\0';
    while (*s && m->n < 15) {
        while (*s == ' ')
            s++;
        if (!*s)
            break;
        if (*s == ':' || m->n == 14) {
            m->p[m->n++] = *s == ':' ? s + 1 : s;
            break;
        }
        m->p[m->n++] = s;
        s += strcspn(s, " ");
        if (*s)
            *s++ = '\0';
    }
    return true;
}

static bool need(ss__irc *ic, const struct msg *m, int n)
{
    if (m->n >= n && (n == 0 || m->p[n - 1][0]))
        return true;
    num(ic, "461", "%s :Not enough parameters", m->cmd);
    return false;
}

static bool is_chan(const ss__irc *ic, const char *name)
{
    return !strcasecmp(name, ic->hub->chan);
}

static void cmd_cap(ss__irc *ic, struct msg *m, int64_t now)
{
    if (!need(ic, m, 1))
        return;
    const char *sub = m->p[0];
    if (!strcasecmp(sub, "LS")) {
        bool v302 = m->n > 1 && atoi(m->p[1]) >= 302;
        if (!ic->registered)
            ic->cap_hold = true;
        char list[400] = "";
        size_t n = 0;
        for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++)
            n += (size_t)snprintf(list + n, sizeof list - n, "%s%s%s%s", n ? " " : "",
                                  caps[i].name, v302 && caps[i].value302 ? "=" : "",
                                  v302 && caps[i].value302 ? caps[i].value302 : "");
        sendf(ic, ":%s CAP %s LS :%s", ic->hub->server, me(ic), list);
    } else if (!strcasecmp(sub, "LIST")) {
        char list[400] = "";
        size_t n = 0;
        for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++)
            if (ic->caps & caps[i].bit)
                n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", n ? " " : "",
                                      caps[i].name);
        sendf(ic, ":%s CAP %s LIST :%s", ic->hub->server, me(ic), list);
    } else if (!strcasecmp(sub, "REQ")) {
        if (!need(ic, m, 2))
            return;
        if (!ic->registered)
            ic->cap_hold = true;
        /* All or nothing (IRCv3 capability negotiation). */
        unsigned add = 0, del = 0;
        bool ok = true;
        char req[SS_CHAT_IRC_LINE];
        snprintf(req, sizeof req, "%s", m->p[1]);
        for (char *save, *w = strtok_r(req, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
            bool minus = *w == '-';
            const char *name = w + minus;
            unsigned bit = 0;
            for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++)
                if (!strcmp(name, caps[i].name))
                    bit = caps[i].bit;
            if (!bit) {
                ok = false;
                break;
            }
            if (minus)
                del |= bit;
            else
                add |= bit;
        }
        if (ok)
            ic->caps = (ic->caps | add) & ~del;
        sendf(ic, ":%s CAP %s %s :%s", ic->hub->server, me(ic), ok ? "ACK" : "NAK", m->p[1]);
    } else if (!strcasecmp(sub, "END")) {
        ic->cap_hold = false;
        try_register(ic, now);
    } else {
        num(ic, "410", "%s :Invalid CAP command", sub);
    }
}

static void sasl_reset(ss__irc *ic)
{
    if (ic->sasl_buf)
        OPENSSL_cleanse(ic->sasl_buf, ic->sasl_len);
    free(ic->sasl_buf);
    ic->sasl_buf = NULL;
    ic->sasl_len = 0;
    ic->sasl = false;
}

/* A password the native /login can take as one word: no spaces and no
 * control characters (a decoded LF would start a second native line). */
static bool pw_ok(const char *pw)
{
    if (!pw[0])
        return false;
    for (const unsigned char *p = (const unsigned char *)pw; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            return false;
    return true;
}

/* The whole PLAIN message arrived (base64 in sasl_buf): log in. */
static void sasl_plain(ss__irc *ic, int64_t now)
{
    size_t blen = ic->sasl_len;
    unsigned char *raw = malloc(blen / 4 * 3 + 4);
    int n = -1;
    if (raw && blen % 4 == 0)
        n = EVP_DecodeBlock(raw, (const unsigned char *)ic->sasl_buf, (int)blen);
    if (n >= 0)
        n -= (blen > 0 && ic->sasl_buf[blen - 1] == '=') +
             (blen > 1 && ic->sasl_buf[blen - 2] == '=');
    sasl_reset(ic);
    /* authzid NUL authcid NUL password */
    const char *authz = NULL, *authc = NULL, *pw = NULL;
    if (n > 0) {
        raw[n] = '\0';
        char *z1 = memchr(raw, '\0', (size_t)n);
        char *z2 = z1 ? memchr(z1 + 1, '\0', (size_t)(n - (z1 + 1 - (char *)raw))) : NULL;
        if (z1 && z2) {
            authz = (char *)raw;
            authc = z1 + 1;
            pw = z2 + 1;
        }
    }
    if (!authc || (authz[0] && strcasecmp(authz, authc)) || !ss_chat_nick_valid(authc) ||
        !pw_ok(pw)) {
        num(ic, "904", ":SASL authentication failed");
    } else {
        ic->sasl_login = true;
        room(ic, P_LOGIN, now, "/login %s %s", authc, pw);
        OPENSSL_cleanse(ic->nbuf, sizeof ic->nbuf);
    }
    if (raw) {
        OPENSSL_cleanse(raw, blen / 4 * 3 + 4);
        free(raw);
    }
}

static void cmd_authenticate(ss__irc *ic, struct msg *m, int64_t now)
{
    if (!need(ic, m, 1))
        return;
    const char *a = m->p[0];
    if (!(ic->caps & CAP_SASL)) {
        num(ic, "904", ":SASL authentication failed");
        return;
    }
    if (ic->authed) {
        num(ic, "907", ":You have already authenticated using SASL");
        return;
    }
    if (!strcmp(a, "*")) {
        bool was = ic->sasl;
        sasl_reset(ic);
        num(ic, was ? "906" : "904", was ? ":SASL authentication aborted"
                                         : ":SASL authentication failed");
        try_register(ic, now);
        return;
    }
    if (!ic->sasl) {
        if (strcasecmp(a, "PLAIN")) {
            num(ic, "908", "PLAIN :are available SASL mechanisms");
            num(ic, "904", ":SASL authentication failed");
            return;
        }
        ic->sasl = true;
        sendf(ic, "AUTHENTICATE +");
        return;
    }
    size_t len = strcmp(a, "+") ? strlen(a) : 0;
    if (len > 400 || ic->sasl_len + len > SS_CHAT_IRC_SASL_MAX) {
        sasl_reset(ic);
        num(ic, "905", ":SASL message too long"); /* and aborted (IRCv3 SASL) */
        return;
    }
    char *nb = realloc(ic->sasl_buf, ic->sasl_len + len + 1);
    if (!nb) {
        sasl_reset(ic);
        num(ic, "904", ":SASL authentication failed");
        return;
    }
    ic->sasl_buf = nb;
    memcpy(nb + ic->sasl_len, a, len);
    ic->sasl_len += len;
    nb[ic->sasl_len] = '\0';
    if (len == 400)
        return; /* more follows */
    sasl_plain(ic, now);
}

static void cmd_pass(ss__irc *ic, struct msg *m, int64_t now)
{
    if (ic->registered) {
        num(ic, "462", ":You may not reregister");
        return;
    }
    if (!need(ic, m, 1))
        return;
    snprintf(ic->pass, sizeof ic->pass, "%s", m->p[0]);
    ic->has_pass = pw_ok(ic->pass);
}

static void cmd_nick(ss__irc *ic, struct msg *m, int64_t now)
{
    if (m->n < 1 || !m->p[0][0]) {
        num(ic, "431", ":No nickname given");
        return;
    }
    const char *nick = m->p[0];
    if (!ss_chat_nick_valid(nick)) {
        num(ic, "432", "%s :Erroneous nickname", nick);
        return;
    }
    if (!ic->registered && !ic->named) {
        snprintf(ic->nick, sizeof ic->nick, "%s", nick);
        ic->has_nick = true;
        try_register(ic, now);
        return;
    }
    snprintf(ic->ptarget, sizeof ic->ptarget, "%s", nick);
    room(ic, P_NICK, now, "/nick %s", nick);
}

static void cmd_user(ss__irc *ic, struct msg *m, int64_t now)
{
    if (ic->registered || ic->has_user) {
        num(ic, "462", ":You may not reregister");
        return;
    }
    if (!need(ic, m, 4))
        return;
    ic->has_user = true;
    try_register(ic, now);
}

static void cmd_ping(ss__irc *ic, struct msg *m, int64_t now)
{
    if (m->n < 1 || !m->p[0][0]) {
        num(ic, "409", ":No origin specified");
        return;
    }
    sendf(ic, ":%s PONG %s :%s", ic->hub->server, ic->hub->server, m->p[0]);
}

static void cmd_pong(ss__irc *ic, struct msg *m, int64_t now) {}

static void names_flush(ss__irc *ic, bool last)
{
    if (ic->names.len)
        num(ic, "353", "= %s :%s", ic->hub->chan, ic->names.d);
    ob_free(&ic->names);
    if (last)
        num(ic, "366", "%s :End of /NAMES list", ic->hub->chan);
}

static void cmd_join(ss__irc *ic, struct msg *m, int64_t now)
{
    if (!need(ic, m, 1))
        return;
    if (!strcmp(m->p[0], "0")) {
        if (ic->joined) {
            ic->joined = false;
            sendf(ic, ":%s!%s@%s PART %s", ic->nick, ic->nick, ic->hub->server, ic->hub->chan);
        }
        return;
    }
    char list[SS_CHAT_IRC_LINE];
    snprintf(list, sizeof list, "%s", m->p[0]);
    for (char *save, *ch = strtok_r(list, ",", &save); ch; ch = strtok_r(NULL, ",", &save)) {
        if (!is_chan(ic, ch)) {
            num(ic, "403", "%s :No such channel", ch);
            continue;
        }
        if (ic->joined)
            continue;
        ic->joined = true;
        sendf(ic, ":%s!%s@%s JOIN %s", ic->nick, ic->nick, ic->hub->server, ic->hub->chan);
        ic->pjoin = true;
        ic->pfound = false;
        room(ic, P_TOPIC, now, "/topic");
        if (!ic->waiting)
            ic->pjoin = false;
        room(ic, P_NAMES, now, "/who");
        if (!(ic->caps & CAP_HIST))
            room(ic, P_REPLAY, now, "/history %d", SS_CHAT_IRC_REPLAY);
    }
}

static void cmd_part(ss__irc *ic, struct msg *m, int64_t now)
{
    if (!need(ic, m, 1))
        return;
    char list[SS_CHAT_IRC_LINE];
    snprintf(list, sizeof list, "%s", m->p[0]);
    for (char *save, *ch = strtok_r(list, ",", &save); ch; ch = strtok_r(NULL, ",", &save)) {
        if (!is_chan(ic, ch)) {
            num(ic, "403", "%s :No such channel", ch);
        } else if (!ic->joined) {
            num(ic, "442", "%s :You're not on that channel", ch);
        } else {
            ic->joined = false;
            if (m->n > 1)
                sendf(ic, ":%s!%s@%s PART %s :%s", ic->nick, ic->nick, ic->hub->server,
                      ic->hub->chan, m->p[1]);
            else
                sendf(ic, ":%s!%s@%s PART %s", ic->nick, ic->nick, ic->hub->server,
                      ic->hub->chan);
        }
    }
}

/* "\001ACTION text\001" -> text (in place); NULL when not an action. */
static char *ctcp_action(char *text)
{
    if (strncmp(text, "\001ACTION", 7) || (text[7] != ' ' && text[7] != '\001' && text[7]))
        return NULL;
    char *a = text + 7 + (text[7] == ' ');
    size_t n = strlen(a);
    if (n && a[n - 1] == '\001')
        a[--n] = '\0';
    return a;
}

/* "SEND name ip port size[ token]\1" (name may be "quoted") to native
 * target: the glue fetches it (active DCC only) and offers it natively. */
static void dcc_bridge(ss__irc *ic, const char *target, char *args)
{
    const char *why = "its client has no DCC";
    if (!strncmp(args, "SEND ", 5) && ic->io.dcc_get) {
        char *p = args + 5, *name;
        if (*p == '"') {
            name = ++p;
            p = strchr(p, '"');
            if (p)
                *p++ = '\0';
        } else {
            name = p;
            p = strchr(p, ' ');
            if (p)
                *p++ = '\0';
        }
        unsigned long long ip = 0, port = 0, size = 0;
        if (p && sscanf(p, "%llu %llu %llu", &ip, &port, &size) == 3 && ip <= 0xffffffffull &&
            port <= 65535) {
            if (port == 0) {
                why = "a passive DCC needs the receiver to listen, which the server does not "
                      "do for it; send it as an ordinary (active) DCC";
            } else {
                int err = ic->io.dcc_get(ic->arg, target, name, (uint32_t)ip, (uint16_t)port,
                                         size);
                if (err == 0) {
                    sendf(ic, ":%s NOTICE %s :%s uses the native chat protocol: the server "
                              "takes %s from you over DCC and offers it to %s as a file",
                          ic->hub->server, ic->nick, target, name, target);
                    return;
                }
                if (err == 1)
                    return; /* the room refused the offer and said why */
                why = err == -EPERM  ? "the DCC address is not the one you are connected from"
                      : err == -EBUSY ? "another file from you is still being fetched"
                                      : "the server could not connect to you";
            }
        }
    }
    sendf(ic, ":%s NOTICE %s :%s uses the native chat protocol, so the DCC was not passed "
              "on: %s. Nothing was sent.", ic->hub->server, ic->nick, target, why);
}

static void say_to(ss__irc *ic, const char *target, char *text, bool notice, int64_t now)
{
    if (target[0] == '#') {
        if (!is_chan(ic, target)) {
            if (!notice)
                num(ic, "403", "%s :No such channel", target);
            return;
        }
        if (!ic->joined) {
            if (!notice)
                num(ic, "404", "%s :Cannot send to channel", target);
            return;
        }
        if (notice)
            return; /* the room has no notices: one as a message could set
                     * bots answering each other (see docs) */
        snprintf(ic->ptarget, sizeof ic->ptarget, "%s", ic->hub->chan);
        ic->ptext = text;
        ic->paction = false;
        char *act = ctcp_action(text);
        if (act) {
            ic->paction = true;
            ic->ptext = act;
            if (!*act) {
                if (!notice)
                    num(ic, "412", ":No text to send");
                return;
            }
            room(ic, P_CHANMSG, now, "/me %s", act);
        } else {
            room(ic, P_CHANMSG, now, "%s%s", text[0] == '/' ? "/" : "", text);
        }
        if (!ic->waiting)
            ic->ptext = NULL;
        return;
    }
    /* DCC: between IRC users it passes unchanged; a native user's client
     * has no DCC: a DCC SEND is fetched by the server and becomes a native
     * file offer (dcc_bridge), anything else is refused with the reason. */
    if (!strncmp(text, "\001DCC ", 5) && ic->io.peer_kind &&
        ic->io.peer_kind(ic->arg, target) == SS__IRC_PEER_NATIVE) {
        dcc_bridge(ic, target, text + 5);
        return;
    }
    snprintf(ic->ptarget, sizeof ic->ptarget, "%s", target);
    ic->ptext = text;
    ic->paction = false;
    room(ic, notice ? P_NOTICE : P_PRIVMSG, now, "/%s %s %s", notice ? "notice" : "msg",
         target, text);
    if (!ic->waiting)
        ic->ptext = NULL;
}

static void cmd_privmsg(ss__irc *ic, struct msg *m, int64_t now, bool notice)
{
    if (m->n < 1 || !m->p[0][0]) {
        if (!notice)
            num(ic, "411", ":No recipient given (%s)", m->cmd);
        return;
    }
    if (m->n < 2 || !m->p[1][0]) {
        if (!notice)
            num(ic, "412", ":No text to send");
        return;
    }
    char list[SS_CHAT_IRC_LINE];
    snprintf(list, sizeof list, "%s", m->p[0]);
    int targets = 0;
    for (char *save, *t = strtok_r(list, ",", &save); t && targets < 4;
         t = strtok_r(NULL, ",", &save), targets++) {
        /* Each target gets its own copy: an action is unquoted in place. */
        char text[SS_CHAT_IRC_LINE];
        snprintf(text, sizeof text, "%s", m->p[1]);
        say_to(ic, t, text, notice, now);
    }
}

static void cmd_privmsg_(ss__irc *ic, struct msg *m, int64_t now)
{
    cmd_privmsg(ic, m, now, false);
}

static void cmd_notice(ss__irc *ic, struct msg *m, int64_t now)
{
    cmd_privmsg(ic, m, now, true);
}

static void cmd_names(ss__irc *ic, struct msg *m, int64_t now)
{
    if (m->n >= 1 && !is_chan(ic, m->p[0])) {
        num(ic, "366", "%s :End of /NAMES list", m->p[0]);
        return;
    }
    room(ic, P_NAMES, now, "/who");
}

static void cmd_who(ss__irc *ic, struct msg *m, int64_t now)
{
    snprintf(ic->ptarget, sizeof ic->ptarget, "%s", m->n >= 1 && m->p[0][0] ? m->p[0] : "*");
    room(ic, P_WHO, now, "/who");
}

static void cmd_whois(ss__irc *ic, struct msg *m, int64_t now)
{
    if (m->n < 1 || !m->p[0][0]) {
        num(ic, "431", ":No nickname given");
        return;
    }
    /* WHOIS [server] nick */
    snprintf(ic->ptarget, sizeof ic->ptarget, "%s", m->p[m->n >= 2 ? 1 : 0]);
    ic->pfound = false;
    room(ic, P_WHOIS, now, "/who");
}

static void cmd_topic(ss__irc *ic, struct msg *m, int64_t now)
{
    if (!need(ic, m, 1))
        return;
    if (!is_chan(ic, m->p[0])) {
        num(ic, "403", "%s :No such channel", m->p[0]);
        return;
    }
    if (m->n < 2) {
        ic->pfound = false;
        room(ic, P_TOPIC, now, "/topic");
        return;
    }
    if (!ic->joined) {
        num(ic, "442", "%s :You're not on that channel", m->p[0]);
        return;
    }
    if (!m->p[1][0]) {
        num(ic, "400", "TOPIC :clearing the topic is not supported");
        return;
    }
    room(ic, P_TOPIC_SET, now, "/topic %s", m->p[1]);
}

static void cmd_away(ss__irc *ic, struct msg *m, int64_t now)
{
    if (m->n >= 1 && m->p[0][0])
        room(ic, P_AWAY, now, "/away %s", m->p[0]);
    else
        room(ic, P_AWAY, now, "/away");
}

static void cmd_mode(ss__irc *ic, struct msg *m, int64_t now)
{
    if (!need(ic, m, 1))
        return;
    const char *t = m->p[0];
    if (t[0] == '#') {
        if (!is_chan(ic, t)) {
            num(ic, "403", "%s :No such channel", t);
        } else if (m->n < 2) {
            num(ic, "324", "%s +nt", ic->hub->chan);
        } else if (!strcmp(m->p[1], "b") || !strcmp(m->p[1], "+b")) {
            num(ic, "368", "%s :End of channel ban list", ic->hub->chan);
        } else {
            num(ic, "482", "%s :You're not channel operator", ic->hub->chan);
        }
        return;
    }
    if (strcasecmp(t, ic->nick)) {
        num(ic, "502", ":Cant change mode for other users");
    } else if (m->n < 2) {
        num(ic, "221", "+%s", ic->invisible ? "i" : "");
    } else if (!strcmp(m->p[1], "+i") || !strcmp(m->p[1], "-i")) {
        /* +i is all clients set on connect; it changes nothing here (there
         * is one channel and no global WHO), but it is kept and shown. */
        ic->invisible = m->p[1][0] == '+';
        sendf(ic, ":%s!%s@%s MODE %s :%s", ic->nick, ic->nick, ic->hub->server, ic->nick,
              m->p[1]);
    } else {
        num(ic, "501", ":Unknown MODE flag");
    }
}

static void cmd_motd(ss__irc *ic, struct msg *m, int64_t now)
{
    num(ic, "375", ":- %s Message of the day - ", ic->hub->server);
    num(ic, "372", ":- This IRC port serves the same room as the native chat port:");
    num(ic, "372", ":- JOIN %s to talk with IRC and native users alike.", ic->hub->chan);
    num(ic, "376", ":End of /MOTD command.");
}

/* CHATHISTORY LATEST target *|timestamp=TS limit
 * CHATHISTORY BEFORE target timestamp=TS limit */
static void cmd_chathistory(ss__irc *ic, struct msg *m, int64_t now)
{
    if (m->n < 4) {
        sendf(ic, ":%s FAIL CHATHISTORY INVALID_PARAMS %s :Not enough parameters",
              ic->hub->server, m->n ? m->p[0] : "*");
        return;
    }
    const char *sub = m->p[0], *target = m->p[1], *ref = m->p[2];
    bool latest = !strcasecmp(sub, "LATEST"), before = !strcasecmp(sub, "BEFORE");
    if (!latest && !before) {
        sendf(ic, ":%s FAIL CHATHISTORY INVALID_PARAMS %s :Only LATEST and BEFORE are "
                  "supported", ic->hub->server, sub);
        return;
    }
    int64_t ts = -1;
    if (strcmp(ref, "*")) {
        if (strncmp(ref, "timestamp=", 10)) {
            sendf(ic, ":%s FAIL CHATHISTORY INVALID_MSGREFTYPE %s %s :Only timestamp= "
                      "references are supported", ic->hub->server, sub, ref);
            return;
        }
        ts = ss_chat_parse_ts(ref + 10);
    }
    char *end;
    long limit = strtol(m->p[3], &end, 10);
    if (*end || limit < 1 || ts < -1 || (before && ts < 0) ||
        (ts == -1 && strcmp(ref, "*"))) {
        sendf(ic, ":%s FAIL CHATHISTORY INVALID_PARAMS %s :Bad reference or limit",
              ic->hub->server, sub);
        return;
    }
    if (limit > SS_CHAT_IRC_CHATHISTORY_MAX)
        limit = SS_CHAT_IRC_CHATHISTORY_MAX;
    snprintf(ic->pbatch, sizeof ic->pbatch, "h%u", ++ic->batch_seq);
    if (ic->caps & CAP_BATCH)
        sendf(ic, ":%s BATCH +%s chathistory %s", ic->hub->server, ic->pbatch,
              is_chan(ic, target) ? ic->hub->chan : target);
    if (is_chan(ic, target)) {
        ic->pafter = latest ? ts : -1;
        if (before) {
            char t[32];
            ss_chat_format_ts(ts, t, sizeof t);
            room(ic, P_HISTORY, now, "/history %ld %s", limit, t);
        } else {
            room(ic, P_HISTORY, now, "/history %ld", limit);
        }
    } /* private messages are not kept once delivered: an empty batch */
    after(ic, A_BATCH_END);
}

/* ISON nick...: 303 with those online (RFC 2812 4.9). */
static void cmd_ison(ss__irc *ic, struct msg *m, int64_t now)
{
    if (!need(ic, m, 1))
        return;
    char out[SS_CHAT_IRC_LINE] = "";
    size_t n = 0;
    for (int i = 0; i < m->n; i++) {
        char list[SS_CHAT_IRC_LINE];
        snprintf(list, sizeof list, "%s", m->p[i]);
        for (char *save, *w = strtok_r(list, " ", &save); w; w = strtok_r(NULL, " ", &save))
            if (ss_chat_nick_valid(w) && ic->io.peer_kind(ic->arg, w) != SS__IRC_PEER_NONE &&
                n + strlen(w) + 2 < sizeof out - 64)
                n += (size_t)snprintf(out + n, sizeof out - n, "%s%s", n ? " " : "", w);
    }
    num(ic, "303", ":%s", out);
}

/* USERHOST nick{1..5}: 302 "nick=+nick@server" for those online. */
static void cmd_userhost(ss__irc *ic, struct msg *m, int64_t now)
{
    if (!need(ic, m, 1))
        return;
    char out[SS_CHAT_IRC_LINE] = "";
    size_t n = 0;
    for (int i = 0; i < m->n && i < 5; i++)
        if (ss_chat_nick_valid(m->p[i]) &&
            ic->io.peer_kind(ic->arg, m->p[i]) != SS__IRC_PEER_NONE)
            n += (size_t)snprintf(out + n, sizeof out - n, "%s%s=+%s@%s", n ? " " : "",
                                  m->p[i], m->p[i], ic->hub->server);
    num(ic, "302", ":%s", out);
}

/* LIST: the one channel, its users and topic (321, 322, 323). */
static void cmd_list(ss__irc *ic, struct msg *m, int64_t now)
{
    num(ic, "321", "Channel :Users  Name");
    if (m->n < 1 || is_chan(ic, m->p[0]) || !strcmp(m->p[0], "*")) {
        ic->ptopic[0] = '\0';
        room(ic, P_LIST, now, "/topic");
        after(ic, A_LIST);
        return;
    }
    num(ic, "323", ":End of /LIST");
}

static void run_after(ss__irc *ic, int what)
{
    if (what == A_LIST) {
        num(ic, "322", "%s %d :%s", ic->hub->chan, ic->io.online(ic->arg), ic->ptopic);
        num(ic, "323", ":End of /LIST");
    } else if (what == A_BATCH_END) {
        if (ic->caps & CAP_BATCH)
            sendf(ic, ":%s BATCH -%s", ic->hub->server, ic->pbatch);
        ic->pbatch[0] = '\0';
    }
}

static void cmd_quit(ss__irc *ic, struct msg *m, int64_t now)
{
    snprintf(ic->ptarget, sizeof ic->ptarget, "%s", m->n >= 1 ? m->p[0] : "");
    room(ic, P_QUIT, now, "/quit");
}

static const struct {
    const char *name;
    void (*fn)(ss__irc *ic, struct msg *m, int64_t now);
    bool before_reg; /* allowed before registration */
} commands[] = {
    {"CAP", cmd_cap, true},         {"AUTHENTICATE", cmd_authenticate, true},
    {"PASS", cmd_pass, true},       {"NICK", cmd_nick, true},
    {"USER", cmd_user, true},       {"PING", cmd_ping, true},
    {"PONG", cmd_pong, true},       {"QUIT", cmd_quit, true},
    {"JOIN", cmd_join, false},      {"PART", cmd_part, false},
    {"PRIVMSG", cmd_privmsg_, false}, {"NOTICE", cmd_notice, false},
    {"NAMES", cmd_names, false},    {"WHO", cmd_who, false},
    {"WHOIS", cmd_whois, false},    {"TOPIC", cmd_topic, false},
    {"AWAY", cmd_away, false},      {"MODE", cmd_mode, false},
    {"MOTD", cmd_motd, false},      {"CHATHISTORY", cmd_chathistory, false},
    {"ISON", cmd_ison, false},      {"USERHOST", cmd_userhost, false},
    {"LIST", cmd_list, false},
};

static void handle(ss__irc *ic, char *line, size_t len, int64_t now)
{
    char *s = line;
    if (*s == '@') { /* client tags: accepted and not relayed */
        s = strchr(s, ' ');
        if (!s)
            return;
        if ((size_t)(s - line) > SS_CHAT_IRC_TAGS) {
            num(ic, "417", ":Input line was too long");
            return;
        }
    }
    if (strlen(s) > SS_CHAT_IRC_LINE - 2) {
        num(ic, "417", ":Input line was too long");
        return;
    }
    struct msg m;
    if (!parse(s, &m))
        return;
    if (!ss_utf8_valid(line, len)) {
        sendf(ic, ":%s FAIL %s INVALID_UTF8 :Message rejected, your message was not "
                  "valid UTF-8", ic->hub->server, m.cmd);
        return;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcasecmp(m.cmd, commands[i].name)) {
            if (!ic->registered && !commands[i].before_reg) {
                num(ic, "451", ":You have not registered");
                return;
            }
            commands[i].fn(ic, &m, now);
            return;
        }
    if (!ic->registered)
        num(ic, "451", ":You have not registered");
    else
        num(ic, "421", "%s :Unknown command", m.cmd);
}

int ss__irc_feed(ss__irc *ic, const void *buf, size_t len, int64_t now_ms, size_t *used)
{
    const char *start = buf, *p = buf, *end = p + len;
    size_t keep = SS_CHAT_IRC_TAGS + SS_CHAT_IRC_LINE + 2;
    int err = 0;
    while (p < end && !ic->dead) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t seg = (size_t)((nl ? nl : end) - p);
        if (ic->part_len == 0 && !ic->discarding &&
            (room_busy(ic) || (ic->io.admit && !ic->io.admit(ic->arg, true))))
            break;
        if (ic->discarding) {
            if (nl)
                ic->discarding = false;
            p += seg + (nl != NULL);
            continue;
        }
        if (ic->part_len + seg + 1 > keep) {
            ic->part_len = 0;
            num(ic, "417", ":Input line was too long");
            ic->discarding = nl == NULL;
            p += seg + (nl != NULL);
            continue;
        }
        if (!ic->part)
            ic->part = malloc(keep);
        if (!ic->part) {
            err = -ENOMEM;
            break;
        }
        memcpy(ic->part + ic->part_len, p, seg);
        ic->part_len += seg;
        p += seg;
        if (!nl)
            break;
        p++;
        size_t n = ic->part_len;
        ic->part_len = 0;
        if (n && ic->part[n - 1] == '\r')
            n--;
        if (memchr(ic->part, '\0', n))
            continue; /* NUL is never valid in IRC */
        ic->part[n] = '\0';
        if (n)
            handle(ic, ic->part, n, now_ms);
    }
    if (ic->part_len == 0 && ic->part) {
        free(ic->part);
        ic->part = NULL;
    }
    if (ic->dead)
        p = end;
    *used = (size_t)(p - start);
    return err;
}

/* ---- native lines out ---------------------------------------------------------- */

/* Split the first word off *rest (NUL-terminated in place). */
static char *word(char **rest)
{
    char *s = *rest;
    while (*s == ' ')
        s++;
    if (!*s)
        return NULL;
    char *w = s;
    while (*s && *s != ' ')
        s++;
    if (*s)
        *s++ = '\0';
    *rest = s;
    return w;
}

/* A shared event: formatted once per tag variant for every recipient. */
static int shared(ss__irc *ic, ss_chat_line *src, const char *kind, char *rest)
{
    ss__irc_hub *h = ic->hub;
    int v = (ic->caps & CAP_TIME) ? 1 : 0;
    if (h->src != src) {
        hub_forget(h);
        h->src = ss_chat_line_ref(src);
    }
    if (!h->done[v]) {
        h->done[v] = true;
        char *ts = word(&rest);
        char tags[64] = "";
        if (v && ts)
            snprintf(tags, sizeof tags, "time=%s", ts);
        struct obuf b = {0};
        char line[SS_CHAT_IRC_LINE];
        if (!strcmp(kind, "MSG") || !strcmp(kind, "ME")) {
            char *nick = word(&rest);
            if (nick)
                ob_msg(&b, h->server, tags, nick, "PRIVMSG", h->chan, rest,
                       !strcmp(kind, "ME"));
        } else if (!strcmp(kind, "JOIN") || !strcmp(kind, "LEAVE") || !strcmp(kind, "BACK")) {
            char *nick = word(&rest);
            if (nick) {
                int n = !strcmp(kind, "JOIN")
                            ? snprintf(line, sizeof line, ":%s!%s@%s JOIN %s", nick, nick,
                                       h->server, h->chan)
                        : !strcmp(kind, "LEAVE")
                            ? snprintf(line, sizeof line, ":%s!%s@%s QUIT :Quit", nick, nick,
                                       h->server)
                            : snprintf(line, sizeof line, ":%s!%s@%s AWAY", nick, nick,
                                       h->server);
                ob_line(&b, tags, line, (size_t)n);
            }
        } else if (!strcmp(kind, "NICK")) {
            char *old = word(&rest), *nw = word(&rest);
            if (old && nw)
                ob_line(&b, tags, line,
                        (size_t)snprintf(line, sizeof line, ":%s!%s@%s NICK :%s", old, old,
                                         h->server, nw));
        } else if (!strcmp(kind, "AWAY") || !strcmp(kind, "TOPIC")) {
            char *nick = word(&rest);
            if (nick) {
                char msg[SS_CHAT_IRC_LINE + SS_CHAT_MAX_LINE];
                int n = !strcmp(kind, "AWAY")
                            ? snprintf(msg, sizeof msg, ":%s!%s@%s AWAY :%s", nick, nick,
                                       h->server, rest)
                            : snprintf(msg, sizeof msg, ":%s!%s@%s TOPIC %s :%s", nick, nick,
                                       h->server, h->chan, rest);
                ob_line(&b, tags, msg,
                        (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
            }
        }
        if (!b.oom && b.len)
            h->out[v] = ss_chat_line_new(b.d, b.len);
        ob_free(&b);
    }
    if (!h->out[v])
        return 0;
    int err = ic->io.emit(ic->arg, h->out[v]);
    if (err < 0)
        ic->dead = true;
    return err;
}

/* A private message or notice to this user; offline ones keep their time. */
static void private_in(ss__irc *ic, const char *cmd, const char *ts, const char *from,
                       const char *text, bool offline)
{
    char tags[64];
    tags_for(ic, ts, NULL, tags, sizeof tags);
    struct obuf b = {0};
    char *act = NULL, copy[SS_CHAT_MAX_LINE + 1];
    snprintf(copy, sizeof copy, "%s", text);
    if (!offline && strcmp(cmd, "NOTICE"))
        act = ctcp_action(copy); /* re-quoted (and split) by ob_msg */
    if (offline && !(ic->caps & CAP_TIME)) {
        /* Without server-time the client would show the time of delivery. */
        char msg[SS_CHAT_MAX_LINE + 64];
        snprintf(msg, sizeof msg, "[sent %s] %s", ts, text);
        ob_msg(&b, ic->hub->server, tags, from, cmd, ic->nick, msg, false);
    } else {
        ob_msg(&b, ic->hub->server, tags, from, cmd, ic->nick, act ? act : text, act != NULL);
    }
    ob_emit(ic, &b);
}

static void hist_in(ss__irc *ic, char *rest)
{
    char *ts = word(&rest), *kind = word(&rest), *nick = word(&rest);
    if (!ts || !kind || !nick)
        return;
    if (ic->pend == P_HISTORY && ic->pafter >= 0 && ss_chat_parse_ts(ts) <= ic->pafter)
        return; /* LATEST timestamp=: only what came after it */
    char tags[96];
    tags_for(ic, ts, ic->pend == P_HISTORY ? ic->pbatch : NULL, tags, sizeof tags);
    struct obuf b = {0};
    ob_msg(&b, ic->hub->server, tags, nick, "PRIVMSG", ic->hub->chan, rest,
           !strcmp(kind, "ME"));
    ob_emit(ic, &b);
}

/* "WHO nick online [away TEXT]" for NAMES, WHO or WHOIS in progress. */
static void who_in(ss__irc *ic, char *rest)
{
    char *nick = word(&rest), *state = word(&rest);
    if (!nick || !state || strcmp(state, "online"))
        return; /* offline users are not in the channel */
    char *away = NULL;
    if (!strncmp(rest, "away ", 5))
        away = rest + 5;
    const char *srv = ic->hub->server;
    switch (ic->pend) {
    case P_NAMES:
        if (ic->names.len + strlen(nick) + 1 > 400)
            names_flush(ic, false);
        if (ic->names.len)
            ob_add(&ic->names, " ", 1);
        ob_add(&ic->names, nick, strlen(nick));
        break;
    case P_WHO:
        if (!strcmp(ic->ptarget, "*") || !strcmp(ic->ptarget, "0") ||
            is_chan(ic, ic->ptarget) || !fnmatch(ic->ptarget, nick, FNM_CASEFOLD))
            num(ic, "352", "%s %s %s %s %s %s :0 %s", ic->hub->chan, nick, srv, srv, nick,
                away ? "G" : "H", nick);
        break;
    case P_WHOIS:
        if (strcasecmp(ic->ptarget, nick))
            break;
        ic->pfound = true;
        num(ic, "311", "%s %s %s * :%s", nick, nick, srv, nick);
        num(ic, "319", "%s :%s", nick, ic->hub->chan);
        num(ic, "312", "%s %s :sockstack chat", nick, srv);
        if (away)
            num(ic, "301", "%s :%s", nick, away);
        break;
    default:
        break;
    }
}

/* "TOPIC ts nick text": an answer (332/333) or a change (TOPIC). */
static void topic_in(ss__irc *ic, ss_chat_line *l, char *rest)
{
    if (ic->pend == P_LIST) {
        char *ts = word(&rest), *nick = word(&rest);
        if (ts && nick)
            snprintf(ic->ptopic, sizeof ic->ptopic, "%s", rest);
        return;
    }
    if (ic->pend == P_TOPIC) {
        char *ts = word(&rest), *nick = word(&rest);
        if (!ts || !nick)
            return;
        ic->pfound = true;
        num(ic, "332", "%s :%s", ic->hub->chan, rest);
        num(ic, "333", "%s %s %lld", ic->hub->chan, nick,
            (long long)(ss_chat_parse_ts(ts) / 1000));
        return;
    }
    if (ic->joined)
        shared(ic, l, "TOPIC", rest);
}

/* "ERR code text": the refusal as the command in progress maps it. */
static void err_in(ss__irc *ic, char *rest)
{
    char *code = word(&rest);
    if (!code)
        return;
    const char *t = ic->ptarget;
    bool quiet = ic->pend == P_NOTICE;
    switch (ic->pend) {
    case P_REG:
    case P_NICK:
        if (ic->pend == P_REG)
            ic->has_nick = false; /* the client must send another NICK */
        if (!strcmp(code, "badnick"))
            num(ic, "432", "%s :Erroneous nickname", ic->pend == P_REG ? ic->nick : t);
        else if (!strcmp(code, "nicktaken"))
            num(ic, "433", "%s :Nickname is already in use", ic->pend == P_REG ? ic->nick : t);
        else if (!strcmp(code, "registered"))
            num(ic, "433", "%s :Nickname is registered: log in with SASL (or PASS)",
                ic->pend == P_REG ? ic->nick : t);
        else
            num(ic, "400", "NICK :%s", rest);
        return;
    case P_LOGIN:
        if (ic->sasl_login) {
            ic->sasl_login = false;
            if (!strcmp(code, "throttled") || !strcmp(code, "busy"))
                num(ic, "263", "AUTHENTICATE :%s", rest);
            num(ic, "904", ":SASL authentication failed");
        } else {
            if (!strcmp(code, "throttled") || !strcmp(code, "busy"))
                num(ic, "263", "PASS :%s", rest);
            num(ic, "464", ":Password incorrect");
        }
        return;
    default:
        break;
    }
    if (quiet)
        return;
    if (!strcmp(code, "nouser") || !strcmp(code, "notregistered"))
        num(ic, "401", "%s :No such nick/channel (%s)", t, rest);
    else if (!strcmp(code, "toolong"))
        num(ic, "417", ":Input line was too long");
    else if (!strcmp(code, "busy") || !strcmp(code, "throttled"))
        num(ic, "263", "%s :%s", t[0] ? t : "*", rest);
    else if (!strcmp(code, "utf8"))
        sendf(ic, ":%s FAIL * INVALID_UTF8 :%s", ic->hub->server, rest);
    else
        num(ic, "400", "%s :%s", t[0] ? t : "*", rest);
}

/* "OK cmd ...": what the command in progress still owes the client. */
static void ok_in(ss__irc *ic, char *rest)
{
    char *what = word(&rest);
    if (!what)
        return;
    const char *srv = ic->hub->server;
    char ts[32];
    ss_chat_format_ts(ic->pnow, ts, sizeof ts);
    char tags[64];
    tags_for(ic, ts, NULL, tags, sizeof tags);
    if (!strcmp(what, "nick")) {
        char *nick = word(&rest);
        if (!nick)
            return;
        if (ic->registered) {
            sendf(ic, ":%s!%s@%s NICK :%s", ic->nick, ic->nick, srv, nick);
            snprintf(ic->nick, sizeof ic->nick, "%s", nick);
            return;
        }
        snprintf(ic->nick, sizeof ic->nick, "%s", nick);
        ic->named = true;
        if (ic->pend == P_REG || (ic->has_nick && ic->has_user && !ic->cap_hold))
            welcome(ic);
        return;
    }
    if (!strcmp(what, "login")) {
        char *nick = word(&rest);
        if (!nick)
            return;
        ic->authed = true;
        snprintf(ic->nick, sizeof ic->nick, "%s", nick);
        if (ic->sasl_login) {
            ic->sasl_login = false;
            num(ic, "900", "%s!%s@%s %s :You are now logged in as %s", nick, nick, srv, nick,
                nick);
            num(ic, "903", ":SASL authentication successful");
        }
        return;
    }
    if (!strcmp(what, "sent") && ic->pend == P_CHANMSG && ic->ptext && (ic->caps & CAP_ECHO)) {
        struct obuf b = {0};
        ob_msg(&b, srv, tags, ic->nick, "PRIVMSG", ic->hub->chan, ic->ptext, ic->paction);
        ob_emit(ic, &b);
        return;
    }
    if ((!strcmp(what, "msg") || !strcmp(what, "notice")) && ic->ptext) {
        char *to = word(&rest);
        bool stored = !strcmp(rest, "stored");
        if (to && (ic->caps & CAP_ECHO)) {
            struct obuf b = {0};
            ob_msg(&b, srv, tags, ic->nick, ic->pend == P_NOTICE ? "NOTICE" : "PRIVMSG", to,
                   ic->ptext, false);
            ob_emit(ic, &b);
        }
        if (to && stored)
            sendf(ic, ":%s NOTICE %s :%s is offline: the message is stored and delivered "
                      "when %s logs in", srv, ic->nick, to, to);
        return;
    }
    if (!strcmp(what, "who")) {
        if (ic->pend == P_NAMES) {
            names_flush(ic, true);
        } else if (ic->pend == P_WHO) {
            num(ic, "315", "%s :End of WHO list", ic->ptarget);
        } else if (ic->pend == P_WHOIS) {
            if (!ic->pfound)
                num(ic, "401", "%s :No such nick/channel", ic->ptarget);
            num(ic, "318", "%s :End of /WHOIS list", ic->ptarget);
        }
        return;
    }
    /* No topic: 331 for TOPIC; nothing on JOIN (RFC 2812 3.2.1). */
    if (!strcmp(what, "topic") && ic->pend == P_TOPIC && !*rest && !ic->pfound &&
        !ic->pjoin) {
        num(ic, "331", "%s :No topic is set", ic->hub->chan);
        return;
    }
    if (!strcmp(what, "upload")) { /* a DCC fetched for a native user */
        char *id = word(&rest);
        if (id)
            sendf(ic, ":%s NOTICE %s :file %s received over DCC and %s as a native file offer",
                  srv, ic->nick, id, !strcmp(rest, "offered") ? "offered" : "stored");
        return;
    }
    if (!strcmp(what, "away")) {
        num(ic, "306", ":You have been marked as being away");
        return;
    }
    if (!strcmp(what, "back")) {
        num(ic, "305", ":You are no longer marked as being away");
        return;
    }
}

static bool kind_is(const char *d, size_t len, const char *k)
{
    size_t n = strlen(k);
    return len > n && !memcmp(d, k, n) && d[n] == ' ';
}

/* The event the hub formatted for the last recipient comes again (a
 * fan-out): 1 and sent (or filtered out) without parsing; 0 otherwise. */
static int shared_again(ss__irc *ic, ss_chat_line *l, const char *d, size_t len)
{
    ss__irc_hub *h = ic->hub;
    int v = (ic->caps & CAP_TIME) ? 1 : 0;
    if (h->src != l || !h->done[v])
        return 0;
    bool want;
    if (kind_is(d, len, "MSG") || kind_is(d, len, "ME") || kind_is(d, len, "JOIN"))
        want = ic->joined;
    else if (kind_is(d, len, "LEAVE") || kind_is(d, len, "NICK"))
        want = true;
    else if (kind_is(d, len, "AWAY") || kind_is(d, len, "BACK"))
        want = ic->caps & CAP_AWAY;
    else
        return 0;
    if (want && h->out[v] && ic->io.emit(ic->arg, h->out[v]) < 0)
        ic->dead = true;
    return 1;
}

/* A native file offer: announced as a DCC SEND from its sender, with the
 * server as the sending end (the glue listens and streams the file). */
static void offer_in(ss__irc *ic, char *id, const char *from, const char *size,
                     const char *sha, const char *name)
{
    uint32_t ip;
    uint16_t port;
    int err = ic->io.dcc_offer ? ic->io.dcc_offer(ic->arg, strtoll(id, NULL, 10), &ip, &port)
                               : -ENOTSUP;
    if (err < 0) {
        sendf(ic, ":%s NOTICE %s :%s offers you the file %s (%s bytes) through the native "
                  "chat; %s: take it with the sockstack chat client (/accept %s), or wait "
                  "for the next login", ic->hub->server, ic->nick, from, name, size,
              err == -EBUSY ? "another file is being offered to you over DCC now"
                            : "it cannot be offered over DCC here", id);
        return;
    }
    sendf(ic, ":%s NOTICE %s :%s offers you the file %s (%s bytes, SHA-256 %s) through the "
              "native chat; the server sends it over DCC", ic->hub->server, ic->nick, from,
          name, size, sha);
    bool quote = strchr(name, ' ') != NULL;
    sendf(ic, ":%s!%s@%s PRIVMSG %s :\001DCC SEND %s%s%s %u %u %s\001", from, from,
          ic->hub->server, ic->nick, quote ? "\"" : "", name, quote ? "\"" : "", ip, port, size);
}

/* "CHUNK id off base64": bytes of the file being sent over DCC. */
static void chunk_in(ss__irc *ic, char *rest)
{
    char *id = word(&rest), *off = word(&rest), *b64 = word(&rest);
    if (!id || !off || !b64 || !ic->io.dcc_data)
        return;
    size_t blen = strlen(b64);
    unsigned char raw[SS_CHAT_CHUNK + 3];
    int n = -1;
    if (blen % 4 == 0 && blen / 4 * 3 <= sizeof raw)
        n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)blen);
    if (n >= 0)
        n -= (blen > 0 && b64[blen - 1] == '=') + (blen > 1 && b64[blen - 2] == '=');
    if (n >= 0)
        ic->io.dcc_data(ic->arg, strtoll(id, NULL, 10), raw, (size_t)n);
}

int ss__irc_out(ss__irc *ic, ss_chat_line *l)
{
    if (ic->dead)
        return -ENOBUFS;
    size_t len;
    const char *d = ss_chat_line_data(l, &len);
    if (shared_again(ic, l, d, len))
        return ic->dead ? -ENOBUFS : 0;
    char *buf = malloc(len + 1);
    if (!buf)
        return -ENOMEM;
    memcpy(buf, d, len);
    if (len && buf[len - 1] == '\n')
        len--;
    buf[len] = '\0';
    char *rest = buf;
    char *kind = word(&rest);
    char *copy = rest; /* the event's fields, for shared() */
    if (!kind) {
        free(buf);
        return 0;
    }
    if (!strcmp(kind, "MSG") || !strcmp(kind, "ME") || !strcmp(kind, "JOIN")) {
        if (ic->joined)
            shared(ic, l, kind, copy);
    } else if (!strcmp(kind, "LEAVE")) {
        shared(ic, l, kind, copy);
    } else if (!strcmp(kind, "NICK")) {
        shared(ic, l, kind, copy);
    } else if (!strcmp(kind, "AWAY") || !strcmp(kind, "BACK")) {
        if (ic->caps & CAP_AWAY)
            shared(ic, l, kind, copy);
    } else if (!strcmp(kind, "TOPIC")) {
        topic_in(ic, l, copy);
    } else if (!strcmp(kind, "PRIV") || !strcmp(kind, "NOTICE") || !strcmp(kind, "OFFLINE")) {
        char *ts = word(&rest), *from = word(&rest);
        if (ts && from)
            private_in(ic, !strcmp(kind, "NOTICE") ? "NOTICE" : "PRIVMSG", ts, from, rest,
                       !strcmp(kind, "OFFLINE"));
    } else if (!strcmp(kind, "HIST")) {
        if (ic->pend == P_REPLAY || ic->pend == P_HISTORY)
            hist_in(ic, rest);
    } else if (!strcmp(kind, "WHO")) {
        who_in(ic, rest);
    } else if (!strcmp(kind, "OK")) {
        ok_in(ic, rest);
    } else if (!strcmp(kind, "ERR")) {
        err_in(ic, rest);
    } else if (!strcmp(kind, "BYE")) {
        sendf(ic, "ERROR :Closing Link: %s (Quit: %s)", ic->nick,
              ic->ptarget[0] ? ic->ptarget : "bye");
    } else if (!strcmp(kind, "OFFER")) {
        char *id = word(&rest), *from = word(&rest), *size = word(&rest), *sha = word(&rest);
        if (id && from && size && sha)
            offer_in(ic, id, from, size, sha, rest);
    } else if (!strcmp(kind, "CHUNK")) {
        chunk_in(ic, rest);
    } else if (!strcmp(kind, "FILEEND")) {
        char *id = word(&rest);
        if (id && ic->io.dcc_data)
            ic->io.dcc_data(ic->arg, strtoll(id, NULL, 10), NULL, 0);
    } else if (!strcmp(kind, "P2P")) {
        char *verb = word(&rest), *id = word(&rest), *peer = word(&rest);
        if (verb && !strcmp(verb, "intro") && id && peer)
            sendf(ic, ":%s NOTICE %s :%s asked for a point-to-point connection, which IRC "
                      "clients cannot take part in; use DCC between IRC users, or messages",
                  ic->hub->server, ic->nick, peer);
    }
    /* INFO, FILE, CHUNK, FILEEND, ACCEPTED, DECLINED: nothing for IRC. */
    free(buf);
    return ic->dead ? -ENOBUFS : 0;
}
