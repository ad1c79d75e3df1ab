/* chat_client: the client side of the chat line protocol (docs/protocols.md,
 * "chat"), sans-I/O. Bytes from the server go in (ss_chat_client_feed), typed
 * events come out through a callback. The full-screen client, the line
 * mode, the point-to-point session and the tests share this one decoder.
 *
 * It also remembers the lines it passed on lately (TS and text, the last
 * 1024) and the newest public TS, so that after a reconnect -- to the same
 * server or to another node of a cluster -- the client asks for history
 * from shortly before there (ss_chat_client_since) and the decoder marks
 * what was already shown as a duplicate (ev.dup): history lines, and
 * offline mail delivered again (it is delivered at least once).
 */
#ifndef SOCKSTACK_CHAT_CLIENT_H
#define SOCKSTACK_CHAT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sockstack/api.h"
SS_API_BEGIN

enum ss_chat_ev_kind {
    SS_CHAT_EV_OTHER = 0, /* a line this decoder does not know: raw */
    SS_CHAT_EV_MSG,       /* MSG TS NICK TEXT */
    SS_CHAT_EV_ME,        /* ME TS NICK ACTION */
    SS_CHAT_EV_PRIV,      /* PRIV TS FROM TEXT */
    SS_CHAT_EV_OFFLINE,   /* OFFLINE TS FROM TEXT */
    SS_CHAT_EV_HIST,      /* HIST TS MSG|ME NICK TEXT (code: "MSG"/"ME") */
    SS_CHAT_EV_JOIN,      /* JOIN TS NICK COUNT */
    SS_CHAT_EV_LEAVE,     /* LEAVE TS NICK COUNT */
    SS_CHAT_EV_NICK,      /* NICK TS OLD NEW (nick, nick2) */
    SS_CHAT_EV_WHO,       /* WHO NICK online|offline [TS] (online, seen) */
    SS_CHAT_EV_OK,        /* OK CODE [TEXT] */
    SS_CHAT_EV_ERR,       /* ERR CODE TEXT */
    SS_CHAT_EV_INFO,      /* INFO TEXT */
    SS_CHAT_EV_OFFER,     /* OFFER ID FROM SIZE SHA256 NAME */
    SS_CHAT_EV_FILE,      /* FILE ID SIZE SHA256 NAME */
    SS_CHAT_EV_CHUNK,     /* CHUNK ID OFFSET BASE64 (text: the base64) */
    SS_CHAT_EV_FILEEND,   /* FILEEND ID */
    SS_CHAT_EV_ACCEPTED,  /* ACCEPTED ID NICK */
    SS_CHAT_EV_DECLINED,  /* DECLINED ID NICK */
    SS_CHAT_EV_BYE,       /* BYE TEXT */
    SS_CHAT_EV_P2P,       /* P2P VERB ... (point-to-point rendezvous:
                           * code is the verb, text the rest; for
                           * "P2P intro ID PEER KEY SIDE": id, nick, key,
                           * side, and text ""; for "P2P peer ID PUBLIC
                           * CANDIDATE...": id, addr (PUBLIC) and text
                           * (the candidates, space-separated, maybe "")) */
    /* A point-to-point stream carries MSG, FILE, CHUNK and FILEEND as
     * above, and the receiver's answers to a file: */
    SS_CHAT_EV_RESUME,    /* RESUME ID OFFSET: send from OFFSET on */
    SS_CHAT_EV_DONE,      /* DONE ID: received whole, SHA-256 verified */
    SS_CHAT_EV_FAILED,    /* FAILED ID: size or SHA-256 wrong; discarded */
    SS_CHAT_EV_NOFILE,    /* NOFILE ID: the file cannot be written */
};

/* One decoded line. Strings point into the decoder's buffer and are valid
 * during the callback only; absent fields are "" (strings) or 0 / -1. */
typedef struct ss_chat_ev {
    int kind;             /* enum ss_chat_ev_kind */
    int64_t ts;           /* server time, ms since the epoch; -1 if none */
    const char *ts_str;   /* as sent */
    const char *nick;     /* sender, subject, or OLD for NICK */
    const char *nick2;    /* NEW for NICK; NICK for ACCEPTED/DECLINED */
    const char *code;     /* OK/ERR code; HIST kind; P2P verb */
    const char *text;     /* message text, file name, details (OK nick: the nick) */
    int64_t id;           /* file id */
    uint64_t size, off;
    const char *sha256;
    int count;            /* online count (JOIN, LEAVE, OK nick) */
    bool online;          /* WHO */
    bool me;              /* HIST ME, or ME */
    bool dup;             /* HIST or OFFLINE already passed on before a
                           * reconnect: equal TS, nick and text */
    const char *raw;      /* the line (whole for SS_CHAT_EV_OTHER; other
                           * kinds have NULs between their fields) */
    const char *key;      /* P2P intro: the introduction's key (hex) */
    int side;             /* P2P intro: 0 asked, 1 was asked; -1 none */
    const char *addr;     /* P2P peer: the peer's public HOST:PORT */
} ss_chat_ev;

typedef void (*ss_chat_ev_cb)(void *arg, const ss_chat_ev *ev);

typedef struct ss_chat_client ss_chat_client;

int ss_chat_client_new(ss_chat_client **out, ss_chat_ev_cb cb, void *arg);
void ss_chat_client_free(ss_chat_client *cl);
/* Bytes from the server, in any split. A line longer than the protocol's
 * limit is dropped whole. Returns 0. */
int ss_chat_client_feed(ss_chat_client *cl, const void *buf, size_t n);
/* Forget a partial line (the connection was lost). */
void ss_chat_client_reset(ss_chat_client *cl);
/* "/since TS\n" for a reconnect when a public line was seen (returns its
 * length), else 0. TS is SS_CHAT_RESUME_SLACK_MS before the newest public
 * line: the repeats this brings are marked dup. */
int ss_chat_client_since(const ss_chat_client *cl, char *buf, size_t cap);
/* We sent a public line (shown locally, as the server does not echo it):
 * its later copy in history after a reconnect is marked dup. */
void ss_chat_client_sent(ss_chat_client *cl, const char *nick, const char *text, bool me);
/* Decode one line (no EOL; modified in place) without the state above. */
void ss_chat_client_parse(char *line, ss_chat_ev *ev);

/* Make text safe for a terminal, in place: C0 controls, DEL and C1
 * controls (U+0080..U+009F) become '?'; invalid UTF-8 bytes too. */
void ss_chat_text_clean(char *s);
/* "5 min ago", "2 h ago", or a local date and time, for a last-seen time
 * (ms) seen at now_ms. */
void ss_chat_ago(int64_t then_ms, int64_t now_ms, char *buf, size_t cap);

SS_API_END

#endif
