/* IRC on the chat server (issue 15), byte for byte over sockets:
 * `sockstack serve chat --irc-port 0` with raw IRC clients and raw native
 * clients in the same room. Every reply is compared as the exact bytes the
 * server must send (CRLF included); times come from the native side's
 * copy of the same event, so no test reads a clock to compare.
 *
 * irctest (progval/irctest) cannot be fetched here; the cases of its
 * server tests that apply are written out below, each marked "irctest:".
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "sockstack/chat.h"
#include "stream.h"

#include "fixture.h"

TestSuite(chat_irc, .init = fx_setup, .fini = fx_teardown, .timeout = 60);

static int irc_port;

/* The server with --irc-port 0: returns the native port, sets irc_port. */
static int irc_server(const char *const *extra)
{
    char db[200];
    snprintf(db, sizeof db, "%s/chat.db", dir);
    char *argv[40];
    int n = 0;
    const char *base[] = {th_sockstack(), "serve", "chat", "-b", "127.0.0.1", "--port", "0",
                          "--irc-port", "0", "--db", db, "--pbkdf2-iter", "1000",
                          "--grace", "0", NULL};
    for (int i = 0; base[i]; i++)
        argv[n++] = (char *)base[i];
    for (int i = 0; extra && extra[i] && n < 38; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    struct th_proc p;
    cr_assert_eq(th_spawn(&p, argv), 0);
    struct th_proc *t = track(p);
    return fx_irc_ports(t, &irc_port);
}

static int irc_raw(struct stream *s)
{
    int fd = fx_raw(irc_port, 0);
    stream_init(s, fd);
    return fd;
}

#define SRV ":sockstack "

/* The registration burst for nick, byte for byte (after CAP END). */
static void burst(char *out, size_t cap, const char *nick)
{
    snprintf(out, cap,
             SRV "001 %s :Welcome to the sockstack chat, %s!%s@sockstack\r\n"
             SRV "002 %s :Your host is sockstack, running sockstack chat\r\n"
             SRV "003 %s :This server speaks IRC beside its native chat protocol\r\n"
             SRV "004 %s sockstack sockstack-chat i nt\r\n"
             SRV "005 %s CASEMAPPING=ascii CHANTYPES=# CHANNELLEN=32 NICKLEN=24 "
             "TOPICLEN=300 PREFIX=() CHANMODES=,,,nt NETWORK=sockstack UTF8ONLY "
             "CHATHISTORY=100 MSGREFTYPES=timestamp :are supported by this server\r\n"
             SRV "375 %s :- sockstack Message of the day - \r\n"
             SRV "372 %s :- This IRC port serves the same room as the native chat port:\r\n"
             SRV "372 %s :- JOIN #lobby to talk with IRC and native users alike.\r\n"
             SRV "376 %s :End of /MOTD command.\r\n",
             nick, nick, nick, nick, nick, nick, nick, nick, nick, nick, nick);
}

/* An IRC user registered with caps (may be "") and joined to #lobby. */
static int irc_join(struct stream *s, const char *nick, const char *caps)
{
    int fd = irc_raw(s);
    char line[512], want[2048];
    if (caps && *caps) {
        snprintf(line, sizeof line, "CAP LS 302\r\nCAP REQ :%s\r\n", caps);
        put(fd, line);
        snprintf(want, sizeof want, "CAP * ACK :%s\r\n", caps);
        EXPECT(s, want);
    }
    snprintf(line, sizeof line, "NICK %s\r\nUSER %s 0 * :%s\r\nCAP END\r\nJOIN #lobby\r\n", nick,
             nick, nick);
    put(fd, line);
    burst(want, sizeof want, nick);
    EXPECT(s, want);
    snprintf(want, sizeof want, ":%s!%s@sockstack JOIN #lobby\r\n", nick, nick);
    EXPECT(s, want);
    EXPECT(s, " :End of /NAMES list\r\n");
    return fd;
}

/* The timestamp in the native line starting with prefix ("MSG "). */
static void native_ts(struct stream *s, const char *prefix, char ts[32])
{
    EXPECT(s, prefix);
    memcpy(ts, s->buf + s->pos, 24);
    ts[24] = '\0';
    cr_assert_eq(ts[23], 'Z', "%s", ts);
}

/* ---- registration ---------------------------------------------------------- */

/* irctest: connection_registration (NICK/USER, the welcome), cap (LS 302
 * values, REQ ACK). */
Test(chat_irc, registration_burst_exact)
{
    irc_server(NULL);
    static struct stream s;
    int fd = irc_raw(&s);
    put(fd, "CAP LS 302\r\nNICK alice\r\nUSER alice 0 * :Alice A\r\n");
    EXPECT(&s, SRV "CAP * LS :server-time message-tags echo-message away-notify sasl=PLAIN "
                   "batch draft/chathistory\r\n");
    put(fd, "CAP REQ :server-time echo-message\r\nCAP END\r\n");
    char want[2048];
    burst(want, sizeof want, "alice");
    char all[2200];
    snprintf(all, sizeof all, SRV "CAP alice ACK :server-time echo-message\r\n%s", want);
    EXPECT(&s, all);
    /* Nothing was held back and nothing else came: the burst ended it. */
    cr_assert_eq(s.len, s.pos, "extra bytes: %s", s.buf + s.pos);
    put(fd, "CAP LIST\r\nPING :tok 1\r\n");
    EXPECT(&s, SRV "CAP alice LIST :server-time echo-message\r\n"
                   SRV "PONG sockstack :tok 1\r\n");
}

/* irctest: cap (NAK of the whole set when one is unknown, CAP LS without
 * 302 lists no values), connection_registration (451 before it). */
Test(chat_irc, cap_nak_and_not_registered)
{
    irc_server(NULL);
    static struct stream s;
    int fd = irc_raw(&s);
    put(fd, "CAP LS\r\nCAP REQ :server-time bogus-cap\r\nCAP FOO\r\nJOIN #lobby\r\nPRIVMSG x y\r\n"
            "LUSERS\r\n");
    EXPECT(&s, SRV "CAP * LS :server-time message-tags echo-message away-notify sasl batch "
                   "draft/chathistory\r\n"
                   SRV "CAP * NAK :server-time bogus-cap\r\n"
                   SRV "410 * FOO :Invalid CAP command\r\n"
                   SRV "451 * :You have not registered\r\n"
                   SRV "451 * :You have not registered\r\n"
                   SRV "451 * :You have not registered\r\n");
    put(fd, "CAP LIST\r\nCAP REQ :-server-time away-notify\r\nCAP LIST\r\n");
    EXPECT(&s, SRV "CAP * LIST :\r\n"
                   SRV "CAP * ACK :-server-time away-notify\r\n"
                   SRV "CAP * LIST :away-notify\r\n");
}

/* irctest: connection_registration (431, 432, 433, 461, 462, PING 409). */
Test(chat_irc, nick_and_user_refusals)
{
    int native = irc_server(NULL);
    static struct stream n;
    fx_join(native, &n, "bob");
    static struct stream s;
    int fd = irc_raw(&s);
    put(fd, "NICK\r\nNICK 9lives\r\nNICK bob\r\nUSER x\r\nUSER x 0 * :X\r\nPING\r\n");
    EXPECT(&s, SRV "431 * :No nickname given\r\n"
                   SRV "432 * 9lives :Erroneous nickname\r\n"
                   SRV "461 bob USER :Not enough parameters\r\n"
                   SRV "433 * bob :Nickname is already in use\r\n"
                   SRV "409 * :No origin specified\r\n");
    put(fd, "NICK carol\r\n");
    char want[2048];
    burst(want, sizeof want, "carol");
    EXPECT(&s, want);
    put(fd, "USER x 0 * :X\r\nPASS foo\r\nNICK bob\r\nNICK dave\r\n");
    EXPECT(&s, SRV "462 carol :You may not reregister\r\n"
                   SRV "462 carol :You may not reregister\r\n"
                   SRV "433 carol bob :Nickname is already in use\r\n"
                   ":carol!carol@sockstack NICK :dave\r\n");
    /* The native side sees the nick change as a native event. */
    EXPECT(&n, " carol dave\n");
}

/* irctest: sasl (PLAIN success 900/903, failure 904, other mechanism
 * 908+904, abort 906, 907 after success, 905 too long, 400-byte chunks). */
Test(chat_irc, sasl_plain)
{
    int native = irc_server(NULL);
    static struct stream n;
    int nfd = fx_join(native, &n, "carol");
    put(nfd, "/register secret1\n/quit\n");
    EXPECT(&n, "OK register carol\n");
    EXPECT(&n, "BYE ");
    static struct stream s;
    int fd = irc_raw(&s);
    put(fd, "CAP LS 302\r\nNICK carol\r\nUSER c 0 * :C\r\nCAP REQ :sasl\r\n"
            "AUTHENTICATE SCRAM-SHA-256\r\nAUTHENTICATE PLAIN\r\nAUTHENTICATE *\r\n");
    EXPECT(&s, SRV "CAP carol ACK :sasl\r\n"
                   SRV "908 carol PLAIN :are available SASL mechanisms\r\n"
                   SRV "904 carol :SASL authentication failed\r\n"
                   "AUTHENTICATE +\r\n"
                   SRV "906 carol :SASL authentication aborted\r\n");
    /* A decoded LF must not start a second native line: base64 of
     * "\0carol\0secret1\n/quit" is refused, and nothing else runs. */
    put(fd, "AUTHENTICATE PLAIN\r\nAUTHENTICATE AGNhcm9sAHNlY3JldDEKL3F1aXQ=\r\n");
    EXPECT(&s, "AUTHENTICATE +\r\n" SRV "904 carol :SASL authentication failed\r\n");
    /* base64("\0carol\0wrong") and then the right one */
    put(fd, "AUTHENTICATE PLAIN\r\nAUTHENTICATE AGNhcm9sAHdyb25n\r\n");
    EXPECT(&s, "AUTHENTICATE +\r\n" SRV "904 carol :SASL authentication failed\r\n");
    put(fd, "AUTHENTICATE PLAIN\r\nAUTHENTICATE AGNhcm9sAHNlY3JldDE=\r\n");
    EXPECT(&s, "AUTHENTICATE +\r\n"
               SRV "900 carol carol!carol@sockstack carol :You are now logged in as carol\r\n"
               SRV "903 carol :SASL authentication successful\r\n");
    put(fd, "AUTHENTICATE PLAIN\r\nCAP END\r\n");
    char want[2048];
    burst(want, sizeof want, "carol");
    char all[2200];
    snprintf(all, sizeof all, SRV "907 carol :You have already authenticated using SASL\r\n%s",
             want);
    EXPECT(&s, all);

    /* A payload of 400 bytes waits for more; past 1200 it is refused. */
    static struct stream t;
    int fd2 = irc_raw(&t);
    char big[460];
    memset(big, 'A', 400);
    big[400] = '\0';
    char line[1500];
    snprintf(line, sizeof line, "CAP REQ :sasl\r\nAUTHENTICATE PLAIN\r\nAUTHENTICATE %s\r\n",
             big);
    put(fd2, line);
    snprintf(line, sizeof line, "AUTHENTICATE %s\r\nAUTHENTICATE %s\r\nAUTHENTICATE %s\r\n",
             big, big, big);
    put(fd2, line);
    EXPECT(&t, SRV "CAP * ACK :sasl\r\nAUTHENTICATE +\r\n"
                   SRV "905 * :SASL message too long\r\n");
    /* A registered nick without SASL is refused with 433. */
    put(fd, "QUIT\r\n");
    EXPECT(&s, "ERROR :Closing Link: carol (Quit: bye)\r\n");
    put(fd2, "NICK carol\r\nUSER c 0 * :C\r\nCAP END\r\n");
    EXPECT(&t, SRV "433 * carol :Nickname is registered: log in with SASL (or PASS)\r\n");
}

/* PASS logs in to a registered nick as /login does (irssi's -password). */
Test(chat_irc, pass_login)
{
    int native = irc_server(NULL);
    static struct stream n;
    int nfd = fx_join(native, &n, "carol");
    put(nfd, "/register secret1\n/quit\n");
    EXPECT(&n, "BYE ");
    static struct stream s;
    int fd = irc_raw(&s);
    put(fd, "PASS wrong1\r\nNICK carol\r\nUSER c 0 * :C\r\n");
    EXPECT(&s, SRV "464 carol :Password incorrect\r\n");
    put(fd, "PASS secret1\r\nNICK carol\r\n");
    char want[2048];
    burst(want, sizeof want, "carol");
    EXPECT(&s, want);
}

/* ---- the channel and messages --------------------------------------------------- */

/* irctest: messages (PRIVMSG to channel and nick, 401, 403, 404, 411,
 * 412), echo-message, server-time; native users see the same. */
Test(chat_irc, messages_both_ways)
{
    int native = irc_server(NULL);
    static struct stream n;
    int nfd = fx_join(native, &n, "bob");
    static struct stream s;
    int fd = irc_raw(&s);
    put(fd, "CAP REQ :server-time echo-message\r\nNICK alice\r\nUSER a 0 * :A\r\nCAP END\r\n"
            "PRIVMSG #lobby :too early\r\n");
    EXPECT(&s, SRV "404 alice #lobby :Cannot send to channel\r\n");
    EXPECT(&n, " alice 2\n"); /* JOIN ts alice 2 */
    put(fd, "JOIN #lobby\r\n");
    EXPECT(&s, ":alice!alice@sockstack JOIN #lobby\r\n"
               SRV "353 alice = #lobby :alice bob\r\n"
               SRV "366 alice #lobby :End of /NAMES list\r\n");
    put(fd, "PRIVMSG #lobby :hello bob\r\n");
    char ts[32], want[512];
    native_ts(&n, "MSG ", ts);
    EXPECT(&n, " alice hello bob\n");
    snprintf(want, sizeof want, "@time=%s :alice!alice@sockstack PRIVMSG #lobby :hello bob\r\n",
             ts);
    EXPECT(&s, want); /* echo-message, stamped with the stored time */
    put(nfd, "hi alice\n");
    EXPECT(&n, "OK sent ");
    put(nfd, "/history 1\n"); /* OK has no time: take it from history */
    native_ts(&n, "HIST ", ts);
    snprintf(want, sizeof want, "@time=%s :bob!bob@sockstack PRIVMSG #lobby :hi alice\r\n", ts);
    EXPECT(&s, want);
    put(fd, "PRIVMSG bob :a secret\r\n");
    native_ts(&n, "PRIV ", ts);
    EXPECT(&n, " alice a secret\n");
    snprintf(want, sizeof want, "@time=%s :alice!alice@sockstack PRIVMSG bob :a secret\r\n", ts);
    EXPECT(&s, want);
    put(nfd, "/msg alice back at you\n");
    EXPECT(&s, ":bob!bob@sockstack PRIVMSG alice :back at you\r\n");
    put(fd, "NOTICE bob :a notice\r\nNOTICE nobody :lost\r\nNOTICE #nowhere :lost\r\n");
    EXPECT(&n, " alice a notice\n");
    put(nfd, "/notice alice noted\n");
    EXPECT(&s, ":bob!bob@sockstack NOTICE alice :noted\r\n");
    /* refusals: NOTICE never gets one (RFC 2812 3.3.2), PRIVMSG does */
    put(fd, "PRIVMSG\r\nPRIVMSG bob\r\nPRIVMSG bob :\r\nPRIVMSG nobody :x\r\nPRIVMSG #nowhere :x\r\n");
    EXPECT(&s, SRV "411 alice :No recipient given (PRIVMSG)\r\n"
                   SRV "412 alice :No text to send\r\n"
                   SRV "412 alice :No text to send\r\n"
                   SRV "401 alice nobody :No such nick/channel (no user nobody)\r\n"
                   SRV "403 alice #nowhere :No such channel\r\n");
}

/* CTCP: ACTION both ways (native /me), quoting kept when split, DCC
 * relayed unchanged between IRC users and refused with a reason towards a
 * native user. */
Test(chat_irc, ctcp_action_and_dcc)
{
    int native = irc_server(NULL);
    static struct stream n, a, b;
    int nfd = fx_join(native, &n, "nat");
    int afd = irc_join(&a, "alice", "");
    int bfd = irc_join(&b, "bobby", "");
    put(afd, "PRIVMSG #lobby :\001ACTION waves\001\r\n");
    EXPECT(&n, " alice waves\n");
    cr_assert(strstr(n.buf, "ME "), "%s", n.buf);
    EXPECT(&b, ":alice!alice@sockstack PRIVMSG #lobby :\001ACTION waves\001\r\n");
    put(nfd, "/me grins\n");
    EXPECT(&a, ":nat!nat@sockstack PRIVMSG #lobby :\001ACTION grins\001\r\n");
    /* a long action: every piece is a whole CTCP ACTION of <= 510 bytes */
    char act[1100] = "/me ";
    memset(act + 4, 'a', 1000);
    strcpy(act + 1004, "\n");
    put(nfd, act);
    char want[600];
    char *p = want + sprintf(want, ":nat!nat@sockstack PRIVMSG #lobby :\001ACTION ");
    size_t first = 510 - (size_t)(p - want) - 1;
    memset(p, 'a', first);
    strcpy(p + first, "\001\r\n");
    EXPECT(&a, want);
    EXPECT(&a, want);
    p = want + sprintf(want, ":nat!nat@sockstack PRIVMSG #lobby :\001ACTION ");
    memset(p, 'a', 1000 - 2 * first);
    strcpy(p + 1000 - 2 * first, "\001\r\n");
    EXPECT(&a, want);
    /* DCC SEND (passive, with a token) from alice to bobby: unchanged */
    put(afd, "PRIVMSG bobby :\001DCC SEND file.bin 199 0 20971520 77\001\r\n");
    EXPECT(&b, ":alice!alice@sockstack PRIVMSG bobby :\001DCC SEND file.bin 199 0 20971520 77"
               "\001\r\n");
    put(bfd, "PRIVMSG alice :\001DCC SEND file.bin 2130706433 4000 20971520 77\001\r\n");
    EXPECT(&a, ":bobby!bobby@sockstack PRIVMSG alice :\001DCC SEND file.bin 2130706433 4000 "
               "20971520 77\001\r\n");
    /* DCC CHAT towards a native user: not sent, and why */
    put(afd, "PRIVMSG nat :\001DCC CHAT chat 2130706433 4001\001\r\n");
    EXPECT(&a, SRV "NOTICE alice :nat uses the native chat protocol, so the DCC was not passed "
                   "on: its client has no DCC. Nothing was sent.\r\n");
    put(nfd, "/history 1\n");
    EXPECT(&n, "OK history 1\n");
    cr_assert_null(strstr(n.buf, "DCC"), "%s", n.buf);
}

/* Long native lines become several IRC lines of at most 512 bytes, cut on
 * UTF-8 boundaries; long IRC input gets 417 and the connection goes on. */
Test(chat_irc, split_and_inputtoolong)
{
    int native = irc_server(NULL);
    static struct stream n, a;
    int nfd = fx_join(native, &n, "nat");
    int afd = irc_join(&a, "alice", "");
    /* 700 two-byte characters (1400 bytes) */
    char msg[1500];
    for (int i = 0; i < 700; i++)
        memcpy(msg + 2 * i, "\xc3\xa9", 2);
    strcpy(msg + 1400, "\n");
    put(nfd, msg);
    const char *prefix = ":nat!nat@sockstack PRIVMSG #lobby :";
    size_t room = 510 - strlen(prefix); /* 475: odd, so a piece takes 474 */
    size_t piece = room & ~(size_t)1;
    size_t left = 1400;
    while (left) {
        size_t take = left < piece ? left : piece;
        char want[600];
        size_t k = (size_t)sprintf(want, "%s", prefix);
        for (size_t i = 0; i < take / 2; i++, k += 2)
            memcpy(want + k, "\xc3\xa9", 2);
        strcpy(want + k, "\r\n");
        cr_assert_leq(strlen(want), 512);
        EXPECT(&a, want);
        left -= take;
    }
    /* 510 bytes + CRLF is the longest line; 511 is refused with 417 */
    char line[600];
    int k = sprintf(line, "PRIVMSG #lobby :");
    memset(line + k, 'x', 510 - (size_t)k);
    strcpy(line + 510, "\r\n");
    put(afd, line);
    EXPECT(&n, "xxxxxxxxxxxxxxxxxxxx\n");
    k = sprintf(line, "PRIVMSG #lobby :");
    memset(line + k, 'y', 511 - (size_t)k);
    strcpy(line + 511, "\r\n");
    put(afd, line);
    EXPECT(&a, SRV "417 alice :Input line was too long\r\n");
    /* 9000 bytes without an end: 417 once, the rest skipped, then normal */
    char huge[9001];
    memset(huge, 'z', 9000);
    huge[9000] = '\0';
    put(afd, huge);
    put(afd, "zzz\r\nPING :after\r\n");
    EXPECT(&a, SRV "417 alice :Input line was too long\r\n" SRV "PONG sockstack :after\r\n");
    /* tags up to 4094 bytes are accepted (and not relayed) */
    char tagged[4200] = "@+x=";
    memset(tagged + 4, 't', 4000);
    strcpy(tagged + 4004, " PING :tagged\r\n");
    put(afd, tagged);
    EXPECT(&a, SRV "PONG sockstack :tagged\r\n");
    /* not UTF-8 (IRCv3 UTF8ONLY) */
    put(afd, "PRIVMSG #lobby :\xff\xfe\r\n");
    EXPECT(&a, SRV "FAIL PRIVMSG INVALID_UTF8 :Message rejected, your message was not valid "
                   "UTF-8\r\n");
    cr_assert_null(strstr(n.buf, "yyyy"), "the 417 line reached the room");
}

/* Presence: JOIN, QUIT, NICK, AWAY (away-notify, 301/305/306), WHO,
 * WHOIS, NAMES, TOPIC (331/332/333) and the channel-mode numerics. */
Test(chat_irc, presence_and_queries)
{
    int native = irc_server(NULL);
    static struct stream n, a;
    int afd = irc_join(&a, "alice", "away-notify");
    int nfd = fx_join(native, &n, "bob");
    EXPECT(&a, ":bob!bob@sockstack JOIN #lobby\r\n");
    put(nfd, "/away lunch\n");
    EXPECT(&a, ":bob!bob@sockstack AWAY :lunch\r\n");
    put(afd, "WHOIS bob\r\nWHO #lobby\r\nNAMES\r\nNAMES #other\r\nWHOIS nobody\r\nWHOIS\r\n");
    EXPECT(&a, SRV "311 alice bob bob sockstack * :bob\r\n"
                   SRV "319 alice bob :#lobby\r\n"
                   SRV "312 alice bob sockstack :sockstack chat\r\n"
                   SRV "301 alice bob :lunch\r\n"
                   SRV "318 alice bob :End of /WHOIS list\r\n"
                   SRV "352 alice #lobby bob sockstack sockstack bob G :0 bob\r\n"
                   SRV "352 alice #lobby alice sockstack sockstack alice H :0 alice\r\n"
                   SRV "315 alice #lobby :End of WHO list\r\n"
                   SRV "353 alice = #lobby :bob alice\r\n"
                   SRV "366 alice #lobby :End of /NAMES list\r\n"
                   SRV "366 alice #other :End of /NAMES list\r\n"
                   SRV "401 alice nobody :No such nick/channel\r\n"
                   SRV "318 alice nobody :End of /WHOIS list\r\n"
                   SRV "431 alice :No nickname given\r\n");
    put(nfd, "/away\n");
    EXPECT(&a, ":bob!bob@sockstack AWAY\r\n");
    put(afd, "AWAY :gone\r\nAWAY\r\n");
    EXPECT(&a, SRV "306 alice :You have been marked as being away\r\n"
                   SRV "305 alice :You are no longer marked as being away\r\n");
    EXPECT(&n, " alice gone\n");
    EXPECT(&n, "BACK ");
    put(afd, "TOPIC #lobby\r\nTOPIC #lobby :the topic\r\nTOPIC #lobby\r\nTOPIC #x\r\nTOPIC\r\n");
    char ts[32];
    native_ts(&n, "TOPIC ", ts);
    EXPECT(&n, " alice the topic\n");
    char want[600];
    snprintf(want, sizeof want, SRV "331 alice #lobby :No topic is set\r\n"
             ":alice!alice@sockstack TOPIC #lobby :the topic\r\n"
             SRV "332 alice #lobby :the topic\r\n"
             SRV "333 alice #lobby alice %lld\r\n"
             SRV "403 alice #x :No such channel\r\n"
             SRV "461 alice TOPIC :Not enough parameters\r\n",
             (long long)(ss_chat_parse_ts(ts) / 1000));
    EXPECT(&a, want);
    put(afd, "MODE #lobby\r\nMODE #lobby b\r\nMODE #lobby +o bob\r\nMODE alice\r\nMODE alice +w\r\n"
             "MODE bob\r\nMODE\r\nFOO bar\r\nPART #x\r\nPART #lobby :bye\r\nPART #lobby\r\n"
             "JOIN #x,#y\r\nJOIN\r\n");
    EXPECT(&a, SRV "324 alice #lobby +nt\r\n"
                   SRV "368 alice #lobby :End of channel ban list\r\n"
                   SRV "482 alice #lobby :You're not channel operator\r\n"
                   SRV "221 alice +\r\n"
                   SRV "501 alice :Unknown MODE flag\r\n"
                   SRV "502 alice :Cant change mode for other users\r\n"
                   SRV "461 alice MODE :Not enough parameters\r\n"
                   SRV "421 alice FOO :Unknown command\r\n"
                   SRV "403 alice #x :No such channel\r\n"
                   ":alice!alice@sockstack PART #lobby :bye\r\n"
                   SRV "442 alice #lobby :You're not on that channel\r\n"
                   SRV "403 alice #x :No such channel\r\n"
                   SRV "403 alice #y :No such channel\r\n"
                   SRV "461 alice JOIN :Not enough parameters\r\n");
    put(afd, "MODE alice +i\r\nMODE alice\r\n");
    EXPECT(&a, ":alice!alice@sockstack MODE alice :+i\r\n" SRV "221 alice +i\r\n");
    put(nfd, "/nick bobby\n");
    EXPECT(&a, ":bob!bob@sockstack NICK :bobby\r\n");
    put(nfd, "/quit\n");
    /* alice left the channel (PART): the quit is not shown in it */
    put(afd, "JOIN #lobby\r\n");
    EXPECT(&a, ":alice!alice@sockstack JOIN #lobby\r\n");
    static struct stream c;
    int cfd = irc_join(&c, "carl", "");
    EXPECT(&a, ":carl!carl@sockstack JOIN #lobby\r\n");
    put(cfd, "QUIT :see you\r\n");
    EXPECT(&c, "ERROR :Closing Link: carl (Quit: see you)\r\n");
    EXPECT(&a, ":carl!carl@sockstack QUIT :Quit\r\n");
}

/* Offline messages arrive after the welcome with their original time;
 * history comes as a replay with tags, or by CHATHISTORY in a batch. */
Test(chat_irc, offline_and_history)
{
    int native = irc_server(NULL);
    static struct stream n;
    int nfd = fx_join(native, &n, "carol");
    put(nfd, "/register secret1\nfirst\n");
    EXPECT(&n, "OK sent ");
    usleep(20000); /* two messages a clock tick apart, for BEFORE/LATEST */
    put(nfd, "second\n/quit\n");
    EXPECT(&n, "BYE ");
    static struct stream d;
    int dfd = fx_join(native, &d, "dave");
    put(dfd, "/msg carol while you were out\n/history 2\n");
    EXPECT(&d, "OK msg carol stored\n");
    char t1[32], t2[32];
    native_ts(&d, "HIST ", t1);
    EXPECT(&d, " MSG carol first\n");
    native_ts(&d, "HIST ", t2);
    cr_assert_str_neq(t1, t2);
    /* carol logs in over IRC: the message keeps the time it was sent,
     * which is after t2 (the history) and before the login */
    static struct stream s;
    int fd = irc_raw(&s);
    put(fd, "CAP LS 302\r\nCAP REQ :server-time sasl batch draft/chathistory\r\nNICK carol\r\n"
            "USER c 0 * :C\r\nAUTHENTICATE PLAIN\r\nAUTHENTICATE AGNhcm9sAHNlY3JldDE=\r\n");
    EXPECT(&s, SRV "903 carol :SASL authentication successful\r\n");
    cr_assert_null(strstr(s.buf, "PRIVMSG"), "offline message before the welcome: %s", s.buf);
    put(fd, "CAP END\r\n");
    EXPECT(&s, SRV "376 carol :End of /MOTD command.\r\n@time=");
    char ts[32];
    memcpy(ts, s.buf + s.pos, 24);
    ts[24] = '\0';
    EXPECT(&s, " :dave!dave@sockstack PRIVMSG carol :while you were out\r\n");
    cr_assert_geq(ss_chat_parse_ts(ts), ss_chat_parse_ts(t2), "%s before %s", ts, t2);
    /* JOIN with draft/chathistory: no replay; CHATHISTORY asks for it */
    put(fd, "JOIN #lobby\r\nCHATHISTORY LATEST #lobby * 5\r\n");
    char want[1024];
    snprintf(want, sizeof want,
             SRV "366 carol #lobby :End of /NAMES list\r\n"
             SRV "BATCH +h1 chathistory #lobby\r\n"
             "@batch=h1;time=%s :carol!carol@sockstack PRIVMSG #lobby :first\r\n"
             "@batch=h1;time=%s :carol!carol@sockstack PRIVMSG #lobby :second\r\n"
             SRV "BATCH -h1\r\n", t1, t2);
    EXPECT(&s, want);
    snprintf(want, sizeof want,
             "CHATHISTORY BEFORE #lobby timestamp=%s 10\r\n"
             "CHATHISTORY LATEST #lobby timestamp=%s 10\r\n"
             "CHATHISTORY AFTER #lobby * 10\r\nCHATHISTORY LATEST #lobby msgid=x 10\r\n"
             "CHATHISTORY LATEST #lobby\r\n", t2, t1);
    put(fd, want);
    snprintf(want, sizeof want,
             SRV "BATCH +h2 chathistory #lobby\r\n"
             "@batch=h2;time=%s :carol!carol@sockstack PRIVMSG #lobby :first\r\n"
             SRV "BATCH -h2\r\n"
             SRV "BATCH +h3 chathistory #lobby\r\n"
             "@batch=h3;time=%s :carol!carol@sockstack PRIVMSG #lobby :second\r\n"
             SRV "BATCH -h3\r\n"
             SRV "FAIL CHATHISTORY INVALID_PARAMS AFTER :Only LATEST and BEFORE are supported\r\n"
             SRV "FAIL CHATHISTORY INVALID_MSGREFTYPE LATEST msgid=x :Only timestamp= "
             "references are supported\r\n"
             SRV "FAIL CHATHISTORY INVALID_PARAMS LATEST :Not enough parameters\r\n", t1, t2);
    EXPECT(&s, want);
    /* without chathistory: a replay with tags on JOIN */
    static struct stream r;
    irc_join(&r, "rita", "server-time");
    snprintf(want, sizeof want,
             "@time=%s :carol!carol@sockstack PRIVMSG #lobby :first\r\n"
             "@time=%s :carol!carol@sockstack PRIVMSG #lobby :second\r\n", t1, t2);
    EXPECT(&r, want);
}

/* The native abuse protections hold for IRC: the registration deadline
 * and the per-address cap, told as an IRC ERROR. */
Test(chat_irc, limits_as_native)
{
    const char *extra[] = {"--nick-timeout", "300", "--per-addr", "2", NULL};
    irc_server(extra);
    static struct stream a, b, c;
    irc_raw(&a);
    irc_raw(&b);
    irc_raw(&c);
    EXPECT(&c, "ERROR :Closing Link: toomany 2 connections from your address already\r\n");
    EXPECT(&a, "ERROR :Closing Link: timeout no /nick within 300 ms; disconnecting\r\n");
}

/* TLS: with --tls-cert the IRC port speaks TLS too (the 6697 convention);
 * openssl s_client is the client. */
Test(chat_irc, tls_on_the_irc_port)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "%s keygen --tls %s/tls >/dev/null 2>&1", th_sockstack(), dir);
    cr_assert_eq(system(cmd), 0);
    char cert[200], key[200];
    snprintf(cert, sizeof cert, "%s/tls/cert.pem", dir);
    snprintf(key, sizeof key, "%s/tls/key.pem", dir);
    const char *extra[] = {"--tls-cert", cert, "--tls-key", key, NULL};
    irc_server(extra);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", irc_port);
    char *argv[] = {"openssl", "s_client", "-quiet", "-connect", addr, NULL};
    struct th_proc p;
    cr_assert_eq(th_spawn(&p, argv), 0);
    struct th_proc *t = track(p);
    static struct stream s;
    stream_init(&s, t->out);
    put(t->in, "NICK tlsuser\r\nUSER u 0 * :u\r\n");
    char want[2048];
    burst(want, sizeof want, "tlsuser");
    EXPECT(&s, want);
}

/* The native token bucket paces IRC lines too: with --rate 20 --burst 1,
 * five lines in one write are taken one per token, so the talker waits
 * exactly four times for its rate (the server's counters at exit). */
Test(chat_irc, rate_limit_as_native)
{
    const char *extra[] = {"--rate", "20", "--burst", "1", NULL};
    irc_server(extra);
    struct th_proc *srv = &procs[nprocs - 1];
    static struct stream s;
    int fd = irc_raw(&s);
    put(fd, "NICK a\r\nUSER a 0 * :a\r\nPING :1\r\nPING :2\r\nPING :3\r\n");
    EXPECT(&s, SRV "PONG sockstack :1\r\n" SRV "PONG sockstack :2\r\n"
                   SRV "PONG sockstack :3\r\n");
    close(fd);
    cr_assert_eq(th_stop(srv, SIGTERM, 10000), 0);
    char *err = NULL;
    th_read_all(srv->err, &err, 2000);
    cr_assert(err && strstr(err, "talkers waited 0 times for readers, 4 for their rate"),
              "%s", err ? err : "");
    free(err);
}

/* ISON, USERHOST and LIST, asked of the room (online users, topic). */
Test(chat_irc, ison_userhost_list)
{
    int native = irc_server(NULL);
    static struct stream n, a;
    int nfd = fx_join(native, &n, "bob");
    int afd = irc_join(&a, "alice", "");
    put(nfd, "/topic our room\n");
    EXPECT(&a, ":bob!bob@sockstack TOPIC #lobby :our room\r\n");
    put(afd, "ISON bob carol alice\r\nISON\r\nUSERHOST bob nobody\r\nLIST\r\nLIST #other\r\n");
    EXPECT(&a, SRV "303 alice :bob alice\r\n"
                   SRV "461 alice ISON :Not enough parameters\r\n"
                   SRV "302 alice :bob=+bob@sockstack\r\n"
                   SRV "321 alice Channel :Users  Name\r\n"
                   SRV "322 alice #lobby 2 :our room\r\n"
                   SRV "323 alice :End of /LIST\r\n"
                   SRV "321 alice Channel :Users  Name\r\n"
                   SRV "323 alice :End of /LIST\r\n");
}

/* A DCC SEND from an IRC user to a native one: the server connects to the
 * sender (active DCC, only at the sender's own address), acknowledges as
 * a DCC receiver does, and offers the file natively with its SHA-256. */
Test(chat_irc, dcc_send_to_native_becomes_an_offer)
{
    int native = irc_server(NULL);
    static struct stream n, a;
    int nfd = fx_join(native, &n, "nat");
    int afd = irc_join(&a, "alice", "");
    /* refused: a passive DCC, and an address that is not alice's */
    put(afd, "PRIVMSG nat :\001DCC SEND f.bin 16843009 0 5000 7\001\r\n"
             "PRIVMSG nat :\001DCC SEND f.bin 16843009 4000 5000\001\r\n");
    EXPECT(&a, SRV "NOTICE alice :nat uses the native chat protocol, so the DCC was not passed "
                   "on: a passive DCC needs the receiver to listen, which the server does not "
                   "do for it; send it as an ordinary (active) DCC. Nothing was sent.\r\n"
                   SRV "NOTICE alice :nat uses the native chat protocol, so the DCC was not passed "
                   "on: the DCC address is not the one you are connected from. Nothing was "
                   "sent.\r\n");
    /* alice offers 5000 bytes from a port she listens on */
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    cr_assert_eq(bind(ls, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(ls, 1), 0);
    socklen_t sl = sizeof sa;
    getsockname(ls, (struct sockaddr *)&sa, &sl);
    char line[200];
    snprintf(line, sizeof line, "PRIVMSG nat :\001DCC SEND f.bin 2130706433 %d 5000\001\r\n",
             ntohs(sa.sin_port));
    put(afd, line);
    EXPECT(&a, SRV "NOTICE alice :nat uses the native chat protocol: the server takes f.bin from "
                   "you over DCC and offers it to nat as a file\r\n");
    int c = accept(ls, NULL, NULL);
    cr_assert_geq(c, 0);
    unsigned char data[5000];
    for (int i = 0; i < 5000; i++)
        data[i] = (unsigned char)(i * 7 + 3);
    cr_assert_eq(write(c, data, sizeof data), 5000);
    /* acks: 32-bit big-endian counts; the last one is 5000 */
    unsigned char ack[4] = {0};
    long deadline = now_ms() + 10000;
    while (now_ms() < deadline && !(ack[2] == 0x13 && ack[3] == 0x88)) {
        struct pollfd p = {.fd = c, .events = POLLIN};
        if (poll(&p, 1, 100) == 1)
            cr_assert_eq(read(c, ack, 4), 4);
    }
    cr_assert(ack[0] == 0 && ack[1] == 0 && ack[2] == 0x13 && ack[3] == 0x88);
    close(c);
    close(ls);
    char path[200], hex[65];
    snprintf(path, sizeof path, "%s/f.bin", dir);
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, sizeof data, f);
    fclose(f);
    uint64_t size;
    cr_assert_eq(ss_chat_file_sha256(path, hex, &size), 0);
    char want[200];
    snprintf(want, sizeof want, " alice 5000 %s f.bin\n", hex);
    EXPECT(&n, "OFFER ");
    EXPECT(&n, want);
    EXPECT(&a, " received over DCC and offered as a native file offer\r\n");
    (void)nfd;
}

/* A native file offer to an IRC user: the server sends it by DCC, as a
 * CTCP DCC SEND from the native sender with the server's own address. */
Test(chat_irc, native_offer_becomes_a_dcc_send)
{
    int native = irc_server(NULL);
    static struct stream n, a;
    int nfd = fx_join(native, &n, "nat");
    irc_join(&a, "alice", "");
    char path[200], hex[65];
    snprintf(path, sizeof path, "%s/a.bin", dir);
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < 3000; i++)
        fputc('A', f);
    fclose(f);
    uint64_t size;
    cr_assert_eq(ss_chat_file_sha256(path, hex, &size), 0);
    static char line[4200];
    snprintf(line, sizeof line, "/offer alice 3000 %s a.bin\n", hex);
    put(nfd, line);
    EXPECT(&n, "OK offer 1\n");
    int k = sprintf(line, "/chunk 1 0 ");
    for (int i = 0; i < 1000; i++, k += 4)
        memcpy(line + k, "QUFB", 4); /* base64 of "AAA" */
    strcpy(line + k, "\n/done 1\n");
    put(nfd, line);
    EXPECT(&n, "OK upload 1 offered\n");
    char want[400];
    snprintf(want, sizeof want, SRV "NOTICE alice :nat offers you the file a.bin (3000 bytes, "
             "SHA-256 %s) through the native chat; the server sends it over DCC\r\n"
             ":nat!nat@sockstack PRIVMSG alice :\001DCC SEND a.bin 2130706433 ", hex);
    EXPECT(&a, want);
    int port = atoi(a.buf + a.pos);
    snprintf(want, sizeof want, "%d 3000\001\r\n", port);
    EXPECT(&a, want);
    /* another address (127.0.0.2) is not alice: closed at once, unserved */
    int o = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in from = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000002)};
    cr_assert_eq(bind(o, (struct sockaddr *)&from, sizeof from), 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(0x7f000001)};
    cr_assert_eq(connect(o, (struct sockaddr *)&to, sizeof to), 0);
    struct pollfd po = {.fd = o, .events = POLLIN};
    cr_assert_eq(poll(&po, 1, 5000), 1);
    char one;
    cr_assert_leq(read(o, &one, 1), 0, "a stranger got file bytes");
    close(o);
    /* alice's client connects and reads, acknowledging as DCC does */
    int c = fx_raw(port, 0);
    char got[3001];
    size_t have = 0;
    long deadline = now_ms() + 10000;
    while (have < 3000 && now_ms() < deadline) {
        struct pollfd p = {.fd = c, .events = POLLIN};
        if (poll(&p, 1, 100) != 1)
            continue;
        ssize_t r = read(c, got + have, sizeof got - 1 - have);
        cr_assert_gt(r, 0);
        have += (size_t)r;
        uint32_t ack = htonl((uint32_t)have);
        cr_assert_eq(write(c, &ack, 4), 4);
    }
    cr_assert_eq(have, 3000);
    for (int i = 0; i < 3000; i++)
        cr_assert_eq(got[i], 'A');
    /* then the server shuts its side: EOF, nothing more */
    struct pollfd p = {.fd = c, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 5000), 1);
    cr_assert_eq(read(c, got, 1), 0);
    close(c);
    EXPECT(&n, "ACCEPTED 1 alice\n");
}
