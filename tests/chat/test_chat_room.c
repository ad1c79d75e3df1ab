/* The sans-I/O chat room, driven byte by byte through a fake I/O layer:
 * framing, validation, commands, presence, offline delivery, the store,
 * registration and files. Every assertion is on exact bytes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sockstack/chat.h"
#include "sockstack/config.h"

/* A fake connection: everything the room sends, and a queue limit. */
struct fconn {
    char out[1 << 20];
    size_t len;
    size_t limit; /* 0: none */
    bool closed, overflowed;
    ss_chat_conn *c;
};

static int f_send(void *conn, const void *data, size_t len)
{
    struct fconn *f = conn;
    size_t lim = f->limit ? f->limit : sizeof f->out;
    if (f->len + len > lim) {
        f->overflowed = true;
        return -ENOBUFS;
    }
    memcpy(f->out + f->len, data, len);
    f->len += len;
    return 0;
}

static size_t f_space(void *conn)
{
    struct fconn *f = conn;
    size_t lim = f->limit ? f->limit : sizeof f->out;
    return lim - f->len;
}

static void f_close(void *conn) { ((struct fconn *)conn)->closed = true; }

static const ss_chat_io fio = {.send = f_send, .space = f_space, .close = f_close};

/* 2023-11-14T22:13:20.123Z */
#define T0 1700000000123LL
static const char *TS0 = "2023-11-14T22:13:20.123Z";

static ss_chat_room *room;
static struct fconn fc[4];
static char dbpath[64];

static void open_room(const char *db)
{
    ss_chat_opts o;
    ss_chat_opts_init(&o);
    o.db_path = db;
    o.pbkdf2_iter = 1000; /* fast tests; the default is in config.h */
    o.join_history = 3;
    o.file_quota = 10000;
    cr_assert_eq(ss_chat_room_open(&room, &o, &fio), 0);
}

static void setup(void)
{
    memset(fc, 0, sizeof fc);
    snprintf(dbpath, sizeof dbpath, "/tmp/ss-chat-test-%d.db", (int)getpid());
    unlink(dbpath);
    open_room(dbpath);
}

static void teardown(void)
{
    for (int i = 0; i < 4; i++)
        if (fc[i].c)
            ss_chat_disconnect(fc[i].c, T0);
    ss_chat_room_close(room);
    char p[80];
    unlink(dbpath);
    snprintf(p, sizeof p, "%s-wal", dbpath);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", dbpath);
    unlink(p);
}

TestSuite(chat_room, .init = setup, .fini = teardown, .timeout = 30);

/* Take what conn i received so far, as a string. */
static char *take(int i)
{
    static char buf[4][1 << 20];
    memcpy(buf[i], fc[i].out, fc[i].len);
    buf[i][fc[i].len] = '\0';
    fc[i].len = 0;
    return buf[i];
}

static void in(int i, const char *s) { ss_chat_recv(fc[i].c, s, strlen(s), T0); }

static void join(int i, const char *nick)
{
    fc[i].c = ss_chat_connect(room, &fc[i], T0);
    cr_assert_not_null(fc[i].c);
    char line[64];
    snprintf(line, sizeof line, "/nick %s\n", nick);
    in(i, line);
    for (int k = 0; k < 4; k++)
        take(k);
}

/* Join and register (offline messages and offers are kept only for
 * registered nicks). */
static void join_reg(int i, const char *nick)
{
    join(i, nick);
    in(i, "/register pw1234\n");
    char want[64];
    snprintf(want, sizeof want, "OK register %s\n", nick);
    cr_assert_str_eq(take(i), want);
}

/* Come back as registered `nick` on conn i: what the room said after the
 * login's "OK login NICK\n". */
static char *relogin(int i, const char *nick)
{
    fc[i].c = ss_chat_connect(room, &fc[i], T0);
    take(i);
    char line[96], want[64];
    snprintf(line, sizeof line, "/login %s pw1234\n", nick);
    in(i, line);
    char *s = take(i);
    snprintf(want, sizeof want, "OK login %s\n", nick);
    cr_assert(!strncmp(s, want, strlen(want)), "%s", s);
    return s + strlen(want);
}

static void leave_conn(int i)
{
    ss_chat_disconnect(fc[i].c, T0 + 1000);
    fc[i].c = NULL;
}

Test(chat_room, greeting_then_nick_then_join_event)
{
    fc[0].c = ss_chat_connect(room, &fc[0], T0);
    cr_assert_str_eq(take(0), "INFO welcome to lobby (sockstack chat); choose a "
                              "nickname with /nick NAME, /help lists commands\n");
    in(0, "hello\n");
    cr_assert_str_eq(take(0), "ERR nonick choose a nickname first: /nick NAME\n");
    in(0, "/nick alice\n");
    cr_assert_str_eq(take(0), "OK nick alice 1\n");
    fc[1].c = ss_chat_connect(room, &fc[1], T0);
    take(1);
    in(1, "/nick bob\r\n");
    cr_assert_str_eq(take(1), "OK nick bob 2\n");
    char want[128];
    snprintf(want, sizeof want, "JOIN %s bob 2\n", TS0);
    cr_assert_str_eq(take(0), want);
    cr_assert_eq(ss_chat_online(room), 2);
    leave_conn(1);
    snprintf(want, sizeof want, "LEAVE 2023-11-14T22:13:21.123Z bob 1\n");
    cr_assert_str_eq(take(0), want);
}

Test(chat_room, public_message_goes_to_everyone_else_with_sender_and_time)
{
    join(0, "alice");
    join(1, "bob");
    join(2, "carol");
    in(0, "hello world\n");
    cr_assert_str_eq(take(0), "OK sent 1\n");
    char want[128];
    snprintf(want, sizeof want, "MSG %s alice hello world\n", TS0);
    cr_assert_str_eq(take(1), want);
    cr_assert_str_eq(take(2), want);
    in(1, "/me waves\n");
    snprintf(want, sizeof want, "ME %s bob waves\n", TS0);
    cr_assert_str_eq(take(0), want);
    in(2, "//slash first\n");
    snprintf(want, sizeof want, "MSG %s carol /slash first\n", TS0);
    cr_assert_str_eq(take(0), want);
}

Test(chat_room, a_line_split_byte_by_byte_is_one_message)
{
    join(0, "alice");
    join(1, "bob");
    const char *s = "split across many reads\r\n";
    for (size_t i = 0; s[i]; i++)
        ss_chat_recv(fc[0].c, s + i, 1, T0);
    char want[128];
    snprintf(want, sizeof want, "MSG %s alice split across many reads\n", TS0);
    cr_assert_str_eq(take(1), want);
}

Test(chat_room, many_lines_in_one_read_are_many_messages)
{
    join(0, "alice");
    join(1, "bob");
    in(0, "one\ntwo\r\nthree\npart");
    char want[256];
    snprintf(want, sizeof want, "MSG %s alice one\nMSG %s alice two\nMSG %s alice three\n",
             TS0, TS0, TS0);
    cr_assert_str_eq(take(1), want);
    in(0, "ial\n");
    snprintf(want, sizeof want, "MSG %s alice partial\n", TS0);
    cr_assert_str_eq(take(1), want);
}

Test(chat_room, overlong_line_refused_and_connection_stays_usable)
{
    join(0, "alice");
    join(1, "bob");
    size_t n = SS_CHAT_MAX_LINE + 1;
    char *big = malloc(n + 2);
    memset(big, 'x', n);
    big[n] = '\n';
    big[n + 1] = '\0';
    /* In pieces, so the refusal does not depend on one read holding it. */
    ss_chat_recv(fc[0].c, big, 1000, T0);
    ss_chat_recv(fc[0].c, big + 1000, n + 1 - 1000, T0);
    cr_assert_str_eq(take(0), "ERR toolong lines are limited to 4096 bytes\n");
    cr_assert_str_eq(take(1), "");
    /* Exactly the limit, with CRLF, is fine. */
    big[SS_CHAT_MAX_LINE] = '\r';
    big[SS_CHAT_MAX_LINE + 1] = '\n';
    ss_chat_recv(fc[0].c, big, SS_CHAT_MAX_LINE + 2, T0);
    cr_assert_str_eq(take(0), "OK sent 1\n");
    cr_assert_eq(strlen(take(1)), 4 + strlen(TS0) + 7 + SS_CHAT_MAX_LINE + 1);
    in(0, "still here\n");
    cr_assert_str_eq(take(0), "OK sent 2\n");
    free(big);
}

Test(chat_room, invalid_utf8_refused_and_connection_stays_usable)
{
    join(0, "alice");
    join(1, "bob");
    in(0, "bad \xc3\x28 byte\n");
    cr_assert_str_eq(take(0), "ERR utf8 line is not valid UTF-8 text\n");
    in(0, "overlong \xc0\xaf slash\n");
    cr_assert_str_eq(take(0), "ERR utf8 line is not valid UTF-8 text\n");
    cr_assert_str_eq(take(1), "");
    in(0, "gr\xc3\xbc\xc3\x9f" "e \xf0\x9f\x98\x80\n");
    cr_assert_str_eq(take(0), "OK sent 1\n");
}

Test(chat_room, utf8_validator_edges)
{
    cr_assert(ss_utf8_valid("", 0));
    cr_assert(ss_utf8_valid("\xe2\x82\xac", 3));       /* euro sign */
    cr_assert(ss_utf8_valid("\xf4\x8f\xbf\xbf", 4));   /* U+10FFFF */
    cr_assert_not(ss_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    cr_assert_not(ss_utf8_valid("\xed\xa0\x80", 3));   /* surrogate */
    cr_assert_not(ss_utf8_valid("\xe2\x82", 2));       /* truncated */
    cr_assert_not(ss_utf8_valid("\x80", 1));           /* stray continuation */
    cr_assert_not(ss_utf8_valid("\xff", 1));
}

Test(chat_room, nick_rules_and_uniqueness)
{
    join(0, "alice");
    fc[1].c = ss_chat_connect(room, &fc[1], T0);
    take(1);
    in(1, "/nick 9lives\n");
    cr_assert_str_eq(take(1), "ERR badnick a nickname is 1-24 letters, digits, '_' or "
                              "'-', starting with a letter\n");
    in(1, "/nick ALICE\n");
    cr_assert_str_eq(take(1), "ERR nicktaken ALICE is online\n");
    in(1, "/nick a b\n");
    cr_assert_str_eq(take(1), "ERR usage /nick NAME\n");
    in(1, "/nick bob\n");
    take(0);
    take(1);
    in(1, "/nick robert\n");
    cr_assert_str_eq(take(1), "OK nick robert 2\n");
    char want[128];
    snprintf(want, sizeof want, "NICK %s bob robert\n", TS0);
    cr_assert_str_eq(take(0), want);
    in(1, "/bogus\n");
    cr_assert_str_eq(take(1), "ERR unknown no command /bogus; /help lists them\n");
}

Test(chat_room, private_message_online_and_offline_in_order)
{
    join(0, "alice");
    join_reg(1, "bob");
    join(2, "carol");
    in(0, "/msg bob psst\n");
    cr_assert_str_eq(take(0), "OK msg bob\n");
    char want[256];
    snprintf(want, sizeof want, "PRIV %s alice psst\n", TS0);
    cr_assert_str_eq(take(1), want);
    cr_assert_str_eq(take(2), "");
    leave_conn(1);
    take(0);
    take(2);
    in(0, "/msg bob first\n");
    cr_assert_str_eq(take(0), "OK msg bob stored\n");
    in(2, "/msg BOB second\n");
    cr_assert_str_eq(take(2), "OK msg BOB stored\n");
    in(0, "/msg nobody hi\n");
    cr_assert_str_eq(take(0), "ERR nouser no user nobody\n");
    snprintf(want, sizeof want,
             "OK nick bob 3\nOFFLINE %s alice first\nOFFLINE %s carol second\n", TS0, TS0);
    cr_assert_str_eq(relogin(1, "bob"), want);
    /* Deleted once the page left the queue (the next drain). */
    ss_chat_drain(fc[1].c);
    /* Delivered once: a second login brings nothing. */
    leave_conn(1);
    cr_assert_str_eq(relogin(1, "bob"), "OK nick bob 3\n");
}

/* Offline lines that never left the server's queue (the connection was
 * lost before a drain) come again at the next login; a page that left is
 * deleted. Each line nearly a row, so one fits per page. */
Test(chat_room, offline_page_lost_before_it_left_the_queue_comes_again)
{
    join(0, "alice");
    join_reg(1, "bob");
    leave_conn(1);
    take(0);
    static char line[3][4100], want[3][4200];
    for (int i = 0; i < 3; i++) {
        char text[4001];
        memset(text, 'a' + i, 4000);
        text[4000] = '\0';
        snprintf(line[i], sizeof line[i], "/msg bob %s\n", text);
        in(0, line[i]);
        cr_assert_str_eq(take(0), "OK msg bob stored\n");
        snprintf(want[i], sizeof want[i], "OFFLINE %s alice %s\n", TS0, text);
    }
    /* Room for two of the three. */
    fc[1].limit = 8300;
    char exp[9000];
    snprintf(exp, sizeof exp, "OK nick bob 2\n%s%s", want[0], want[1]);
    cr_assert_str_eq(relogin(1, "bob"), exp);
    /* Those two left the queue: the drain deletes them and queues the third,
     * and the connection is lost before that one left. */
    ss_chat_drain(fc[1].c);
    cr_assert_str_eq(take(1), want[2]);
    leave_conn(1);
    snprintf(exp, sizeof exp, "OK nick bob 2\n%s", want[2]);
    cr_assert_str_eq(relogin(1, "bob"), exp);
    /* Now it left: deleted, nothing more. */
    ss_chat_drain(fc[1].c);
    cr_assert_str_eq(take(1), "");
    leave_conn(1);
    cr_assert_str_eq(relogin(1, "bob"), "OK nick bob 2\n");
}

Test(chat_room, who_lists_online_and_offline_with_last_seen)
{
    join(0, "alice");
    join(1, "bob");
    leave_conn(1);
    take(0);
    in(0, "/who\n");
    cr_assert_str_eq(take(0), "WHO alice online\n"
                              "WHO bob offline 2023-11-14T22:13:21.123Z\n"
                              "OK who 1 1\n");
}

Test(chat_room, history_on_join_and_on_request)
{
    join(0, "alice");
    for (int i = 1; i <= 5; i++) {
        char m[32];
        snprintf(m, sizeof m, "m%d\n", i);
        in(0, m);
    }
    in(0, "/me sighs\n");
    take(0);
    fc[1].c = ss_chat_connect(room, &fc[1], T0);
    take(1);
    in(1, "/nick bob\n");
    char want[512];
    snprintf(want, sizeof want,
             "OK nick bob 2\nHIST %s MSG alice m4\nHIST %s MSG alice m5\n"
             "HIST %s ME alice sighs\n", TS0, TS0, TS0);
    cr_assert_str_eq(take(1), want);
    in(1, "/history 2\n");
    snprintf(want, sizeof want,
             "HIST %s MSG alice m5\nHIST %s ME alice sighs\nOK history 2\n", TS0, TS0);
    cr_assert_str_eq(take(1), want);
    in(1, "/history 0\n");
    cr_assert_str_eq(take(1), "ERR usage /history [N [TIMESTAMP]], N from 1 to 1000\n");
}

Test(chat_room, store_survives_reopen)
{
    join(0, "alice");
    join_reg(1, "bob");
    in(0, "kept\n");
    take(0);
    leave_conn(1);
    take(0);
    in(0, "/msg bob later\n");
    cr_assert_str_eq(take(0), "OK msg bob stored\n");
    leave_conn(0);
    ss_chat_room_close(room);
    memset(fc, 0, sizeof fc);
    open_room(dbpath);
    char want[256];
    snprintf(want, sizeof want, "OK nick bob 1\nHIST %s MSG alice kept\n"
                                "OFFLINE %s alice later\n", TS0, TS0);
    cr_assert_str_eq(relogin(1, "bob"), want);
}

Test(chat_room, registered_nickname_is_protected)
{
    join(0, "alice");
    in(0, "/register secret1\n");
    cr_assert_str_eq(take(0), "OK register alice\n");
    leave_conn(0);
    fc[1].c = ss_chat_connect(room, &fc[1], T0);
    take(1);
    in(1, "/nick alice\n");
    cr_assert_str_eq(take(1), "ERR registered alice is registered: /login alice PASSWORD\n");
    in(1, "/login alice wrong\n");
    cr_assert_str_eq(take(1), "ERR auth wrong nickname or password\n");
    in(1, "/login nobody secret1\n");
    cr_assert_str_eq(take(1), "ERR auth wrong nickname or password\n");
    in(1, "/login Alice secret1\n");
    cr_assert_str_eq(take(1), "OK login Alice\nOK nick Alice 1\n");
}

Test(chat_room, quit_says_bye_and_closes)
{
    join(0, "alice");
    join(1, "bob");
    in(1, "/quit\nignored after quit\n");
    cr_assert_str_eq(take(1), "BYE see you\n");
    cr_assert(fc[1].closed);
    char want[128];
    snprintf(want, sizeof want, "LEAVE %s bob 1\n", TS0);
    cr_assert_str_eq(take(0), want);
}

Test(chat_room, overflowing_client_gets_nothing_more_and_others_continue)
{
    join(0, "alice");
    join(1, "bob");
    join(2, "carol");
    fc[1].limit = 200; /* bob stops reading */
    for (int i = 0; i < 20; i++)
        in(0, "a message that fills the queue\n");
    cr_assert(fc[1].overflowed);
    cr_assert_lt(fc[1].len, 200);
    /* carol got all 20 */
    char *s = take(2);
    int n = 0;
    for (char *p = s; (p = strstr(p, "MSG ")); p++)
        n++;
    cr_assert_eq(n, 20);
    in(2, "/who\n");
    /* bob is being disconnected: no longer online. */
    char want[256];
    snprintf(want, sizeof want, "WHO carol online\nWHO alice online\n"
                                "WHO bob offline %s\nOK who 2 1\n", TS0);
    cr_assert_str_eq(take(2), want);
}

/* Base64 of a whole buffer (for building /chunk lines). */
static void b64(const unsigned char *raw, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, raw, (int)n);
}

static void sha_hex(const unsigned char *raw, size_t n, char hex[65])
{
    unsigned char d[32];
    EVP_Digest(raw, n, d, NULL, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", d[i]);
}

Test(chat_room, file_offer_upload_accept_download_binary_safe)
{
    join(0, "alice");
    join(1, "bob");
    unsigned char raw[5000];
    for (size_t i = 0; i < sizeof raw; i++)
        raw[i] = (unsigned char)(i * 7 + (i >> 8)); /* includes \0 \n \r */
    char hex[65];
    sha_hex(raw, sizeof raw, hex);
    char line[SS_CHAT_MAX_LINE];
    snprintf(line, sizeof line, "/offer bob %zu %s data.bin\n", sizeof raw, hex);
    in(0, line);
    cr_assert_str_eq(take(0), "OK offer 1\n");
    for (size_t off = 0; off < sizeof raw; off += 2048) {
        size_t n = sizeof raw - off < 2048 ? sizeof raw - off : 2048;
        char enc[2800];
        b64(raw + off, n, enc);
        snprintf(line, sizeof line, "/chunk 1 %zu %s\n", off, enc);
        in(0, line);
    }
    cr_assert_str_eq(take(1), "");
    in(0, "/done 1\n");
    cr_assert_str_eq(take(0), "OK upload 1 offered\n");
    snprintf(line, sizeof line, "OFFER 1 alice 5000 %s data.bin\n", hex);
    cr_assert_str_eq(take(1), line);
    in(1, "/accept 1\n");
    cr_assert_str_eq(take(0), "ACCEPTED 1 bob\n");
    char *s = take(1);
    snprintf(line, sizeof line, "OK accept 1\nFILE 1 5000 %s data.bin\n", hex);
    cr_assert_eq(strncmp(s, line, strlen(line)), 0);
    /* Decode the CHUNK lines back and compare. */
    unsigned char got[5000];
    size_t have = 0;
    char *p = s + strlen(line);
    while (!strncmp(p, "CHUNK 1 ", 8)) {
        char *sp = strchr(p + 8, ' ');
        char *nl = strchr(sp, '\n');
        cr_assert_eq(strtoul(p + 8, NULL, 10), have);
        size_t blen = (size_t)(nl - sp - 1);
        unsigned char tmp[3000];
        int n = EVP_DecodeBlock(tmp, (unsigned char *)sp + 1, (int)blen);
        n -= (sp[blen] == '=') + (sp[blen - 1] == '=');
        memcpy(got + have, tmp, (size_t)n);
        have += (size_t)n;
        p = nl + 1;
    }
    cr_assert_str_eq(p, "FILEEND 1\n");
    cr_assert_eq(have, sizeof raw);
    cr_assert_eq(memcmp(got, raw, sizeof raw), 0);
    /* Gone once delivered. */
    in(1, "/accept 1\n");
    cr_assert_str_eq(take(1), "ERR nofile no offer 1 for you\n");
}

Test(chat_room, offers_to_offline_users_kept_within_quota)
{
    join(0, "alice");
    join_reg(1, "bob");
    leave_conn(1);
    take(0);
    unsigned char raw[3] = {0, 1, 2};
    char hex[65], line[256], enc[8];
    sha_hex(raw, 3, hex);
    b64(raw, 3, enc);
    snprintf(line, sizeof line, "/offer bob 3 %s a.bin\n/chunk 1 0 %s\n/done 1\n", hex, enc);
    in(0, line);
    cr_assert_str_eq(take(0), "OK offer 1\nOK upload 1 stored\n");
    /* Quota is 10000 bytes per recipient in these tests. */
    snprintf(line, sizeof line, "/offer bob 9998 %s b.bin\n", hex);
    in(0, line);
    cr_assert_str_eq(take(0), "ERR quota bob has 3 of 10000 bytes of offers waiting\n");
    /* A wrong digest is refused at /done and frees the quota. */
    snprintf(line, sizeof line, "/offer bob 3 %s c.bin\n/chunk 2 0 AAAA\n/done 2\n", hex);
    in(0, line);
    char *s = take(0);
    cr_assert(strstr(s, "OK offer 2\nERR digest file 2: got 3 of 3 bytes"), "%s", s);
    snprintf(line, sizeof line, "OK nick bob 2\nOFFER 1 alice 3 %s a.bin\n", hex);
    cr_assert_str_eq(relogin(1, "bob"), line);
    take(0);
    in(1, "/decline 1\n");
    cr_assert_str_eq(take(1), "OK decline 1\n");
    cr_assert_str_eq(take(0), "DECLINED 1 bob\n");
}

Test(chat_room, download_is_paced_by_queue_space)
{
    join(0, "alice");
    join(1, "bob");
    static unsigned char raw[9000];
    memset(raw, 'z', sizeof raw);
    char hex[65], line[SS_CHAT_MAX_LINE];
    sha_hex(raw, sizeof raw, hex);
    snprintf(line, sizeof line, "/offer bob %zu %s z\n", sizeof raw, hex);
    in(0, line);
    for (size_t off = 0; off < sizeof raw; off += 2048) {
        size_t n = sizeof raw - off < 2048 ? sizeof raw - off : 2048;
        char enc[2800];
        b64(raw + off, n, enc);
        snprintf(line, sizeof line, "/chunk 1 %zu %s\n", off, enc);
        in(0, line);
    }
    in(0, "/done 1\n");
    cr_assert_str_eq(take(0), "OK offer 1\nOK upload 1 offered\n");
    take(1);
    fc[1].limit = 8000; /* room for one chunk line at a time */
    in(1, "/accept 1\n");
    cr_assert_not(fc[1].overflowed);
    cr_assert_null(strstr(take(1), "FILEEND"));
    int rounds = 0;
    while (rounds++ < 50) {
        ss_chat_drain(fc[1].c);
        if (strstr(take(1), "FILEEND 1\n"))
            break;
    }
    cr_assert_lt(rounds, 50);
    cr_assert_gt(rounds, 3);
    cr_assert_not(fc[1].overflowed);
}

/* The nick index (a hash table that doubles from 64 slots) must answer the
 * same as a scan of every connection: through growth, renames and leaves,
 * case-insensitively. */
Test(chat_room, nick_index_holds_across_growth_renames_and_leaves)
{
    enum { N = 150 };
    struct fconn *many = malloc(N * sizeof *many);
    cr_assert_not_null(many);
    for (int i = 0; i < N; i++) {
        many[i].len = 0;
        many[i].limit = 0;
        many[i].closed = many[i].overflowed = false;
        many[i].c = ss_chat_connect(room, &many[i], T0);
        char line[32];
        snprintf(line, sizeof line, "/nick n%d\n", i);
        ss_chat_recv(many[i].c, line, strlen(line), T0);
    }
    fc[0].c = ss_chat_connect(room, &fc[0], T0);
    take(0);
    for (int i = 0; i < N; i += 7) {
        char line[32], want[64];
        snprintf(line, sizeof line, "/nick N%d\n", i);
        in(0, line);
        snprintf(want, sizeof want, "ERR nicktaken N%d is online\n", i);
        cr_assert_str_eq(take(0), want);
    }
    ss_chat_recv(many[5].c, "/nick renamed\n", 14, T0);
    in(0, "/nick n5\n");
    cr_assert_str_eq(take(0), "OK nick n5 151\n");
    in(0, "/nick RENAMED\n");
    cr_assert_str_eq(take(0), "ERR nicktaken RENAMED is online\n");
    ss_chat_disconnect(many[7].c, T0);
    many[7].c = NULL;
    take(0);
    in(0, "/nick n7\n");
    cr_assert_str_eq(take(0), "OK nick n7 150\n");
    many[149].len = 0;
    in(0, "/msg N149 hello\n");
    cr_assert_str_eq(take(0), "OK msg n149\n");
    char want[128];
    snprintf(want, sizeof want, "PRIV %s n7 hello\n", TS0);
    cr_assert_eq(many[149].len, strlen(want));
    cr_assert_eq(memcmp(many[149].out, want, strlen(want)), 0);
    for (int i = 0; i < N; i++)
        if (many[i].c)
            ss_chat_disconnect(many[i].c, T0);
    free(many);
}

/* ---- shared lines: a message is stored once for all its recipients ---- */

static ss_chat_line *held[16];
static int nheld;

static int f_send_line(void *conn, ss_chat_line *l)
{
    cr_assert_lt(nheld, 16);
    held[nheld++] = ss_chat_line_ref(l);
    size_t len;
    const char *d = ss_chat_line_data(l, &len);
    return f_send(conn, d, len);
}

Test(chat_room, one_public_message_is_one_shared_line_for_every_recipient)
{
    ss_chat_room_close(room);
    ss_chat_opts o;
    ss_chat_opts_init(&o);
    o.db_path = dbpath;
    o.pbkdf2_iter = 1000;
    static const ss_chat_io sio = {.send = f_send, .space = f_space, .close = f_close,
                                   .send_line = f_send_line};
    cr_assert_eq(ss_chat_room_open(&room, &o, &sio), 0);
    for (int i = 0; i < 4; i++)
        join(i, (const char *[]){"alice", "bob", "carol", "dave"}[i]);
    for (int i = 0; i < nheld; i++)
        ss_chat_line_unref(held[i]);
    nheld = 0;
    uint64_t before = ss_chat_lines_alive(NULL);
    in(0, "to all of you\n");
    /* "OK sent 1" to alice and one MSG line held by bob, carol and dave. */
    cr_assert_eq(nheld, 4);
    cr_assert_eq(ss_chat_lines_alive(NULL) - before, 2);
    cr_assert_eq(held[1], held[2]);
    cr_assert_eq(held[2], held[3]);
    size_t len;
    cr_assert_eq(strncmp(ss_chat_line_data(held[1], &len), "MSG ", 4), 0);
    for (int i = 0; i < nheld; i++)
        ss_chat_line_unref(held[i]);
    nheld = 0;
    cr_assert_eq(ss_chat_lines_alive(NULL), before);
}

/* Issue 15's native commands (what IRC's NOTICE, AWAY and TOPIC map to). */
Test(chat_room, notice_away_topic)
{
    join(0, "alice");
    join(1, "bob");
    in(0, "/notice bob psst\n/notice carol x\n/notice bob\n");
    cr_assert_str_eq(take(0), "OK notice bob\nERR nouser carol is not online\n"
                              "ERR usage /notice NICK TEXT\n");
    cr_assert_str_eq(take(1), "NOTICE 2023-11-14T22:13:20.123Z alice psst\n");
    in(0, "/away at lunch\n/who\n");
    cr_assert_str_eq(take(0), "OK away\nWHO bob online\nWHO alice online away at lunch\n"
                              "OK who 2 0\n");
    cr_assert_str_eq(take(1), "AWAY 2023-11-14T22:13:20.123Z alice at lunch\n");
    in(0, "/away\n");
    cr_assert_str_eq(take(0), "OK back\n");
    cr_assert_str_eq(take(1), "BACK 2023-11-14T22:13:20.123Z alice\n");
    in(1, "/topic\n/topic news of the day\n/topic\n");
    cr_assert_str_eq(take(1), "OK topic\n"
                              "TOPIC 2023-11-14T22:13:20.123Z bob news of the day\n"
                              "OK topic set\n"
                              "TOPIC 2023-11-14T22:13:20.123Z bob news of the day\n"
                              "OK topic\n");
    cr_assert_str_eq(take(0), "TOPIC 2023-11-14T22:13:20.123Z bob news of the day\n");
    char big[400] = "/topic ";
    memset(big + 7, 't', 301);
    strcpy(big + 308, "\n");
    in(1, big);
    cr_assert_str_eq(take(1), "ERR toolong topics are limited to 300 bytes\n");
}

/* /history N TS: the last N before TS. */
Test(chat_room, history_before)
{
    join(0, "alice");
    ss_chat_recv(fc[0].c, "one\n", 4, T0);
    ss_chat_recv(fc[0].c, "two\n", 4, T0 + 1000);
    ss_chat_recv(fc[0].c, "three\n", 6, T0 + 2000);
    take(0);
    in(0, "/history 5 2023-11-14T22:13:22.123Z\n");
    cr_assert_str_eq(take(0), "HIST 2023-11-14T22:13:20.123Z MSG alice one\n"
                              "HIST 2023-11-14T22:13:21.123Z MSG alice two\n"
                              "OK history 2\n");
    in(0, "/history 1 2023-11-14T22:13:22.123Z\n/history 1 yesterday\n");
    cr_assert_str_eq(take(0), "HIST 2023-11-14T22:13:21.123Z MSG alice two\n"
                              "OK history 1\n"
                              "ERR usage /history [N [TIMESTAMP]], N from 1 to 1000\n");
}

/* The rows of dbpath's history table, and the lowest and highest id. */
static int db_history_rows(int64_t *lo, int64_t *hi)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    cr_assert_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT COUNT(*), MIN(id), MAX(id) FROM history",
                                    -1, &s, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
    int n = sqlite3_column_int(s, 0);
    *lo = sqlite3_column_int64(s, 1);
    *hi = sqlite3_column_int64(s, 2);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

/* A --db store keeps history_keep rows (--history-keep; chat13 found the
 * file's history growing forever): seven lines into a store that keeps
 * four leave exactly rows 4 to 7 in the file, also across a reopen, and
 * history_keep 0 keeps them all. */
Test(chat_room, db_history_keeps_history_keep_rows)
{
    ss_chat_room_close(room);
    ss_chat_opts o;
    ss_chat_opts_init(&o);
    cr_assert_eq(o.history_keep, 100000);
    o.db_path = dbpath;
    o.pbkdf2_iter = 1000;
    o.history_keep = 4;
    cr_assert_eq(ss_chat_room_open(&room, &o, &fio), 0);
    join(0, "alice");
    for (int i = 1; i <= 7; i++) {
        char m[16];
        snprintf(m, sizeof m, "m%d\n", i);
        ss_chat_recv(fc[0].c, m, strlen(m), T0 + i * 1000);
    }
    int64_t lo, hi;
    cr_assert_eq(db_history_rows(&lo, &hi), 4);
    cr_assert_eq(lo, 4);
    cr_assert_eq(hi, 7);
    take(0);
    in(0, "/history 10\n");
    cr_assert_str_eq(take(0), "HIST 2023-11-14T22:13:24.123Z MSG alice m4\n"
                              "HIST 2023-11-14T22:13:25.123Z MSG alice m5\n"
                              "HIST 2023-11-14T22:13:26.123Z MSG alice m6\n"
                              "HIST 2023-11-14T22:13:27.123Z MSG alice m7\n"
                              "OK history 4\n");
    /* Reopened: the next line still leaves four. */
    ss_chat_disconnect(fc[0].c, T0);
    fc[0].c = NULL;
    ss_chat_room_close(room);
    cr_assert_eq(ss_chat_room_open(&room, &o, &fio), 0);
    join(0, "alice");
    in(0, "m8\n");
    cr_assert_eq(db_history_rows(&lo, &hi), 4);
    cr_assert_eq(lo, 5);
    cr_assert_eq(hi, 8);
    /* 0: everything is kept. */
    ss_chat_disconnect(fc[0].c, T0);
    fc[0].c = NULL;
    ss_chat_room_close(room);
    o.history_keep = 0;
    cr_assert_eq(ss_chat_room_open(&room, &o, &fio), 0);
    join(0, "alice");
    in(0, "m9\nm10\n");
    cr_assert_eq(db_history_rows(&lo, &hi), 6);
    cr_assert_eq(lo, 5);
    cr_assert_eq(hi, 10);
}

/* Without --db the history is in memory and keeps only history_max rows
 * (issue 11): five lines into a room that keeps three, then paging back
 * from the newest finds exactly the other two kept, none older. */
Test(chat_room, memory_history_keeps_history_max_rows)
{
    ss_chat_room_close(room);
    ss_chat_opts o;
    ss_chat_opts_init(&o);
    o.db_path = NULL;
    o.history_max = 3;
    o.join_history = 3;
    cr_assert_eq(ss_chat_room_open(&room, &o, &fio), 0);
    join(0, "alice");
    for (int i = 1; i <= 5; i++) {
        char m[16];
        snprintf(m, sizeof m, "m%d\n", i);
        ss_chat_recv(fc[0].c, m, strlen(m), T0 + i * 1000);
    }
    take(0);
    in(0, "/history 3\n");
    cr_assert_str_eq(take(0), "HIST 2023-11-14T22:13:23.123Z MSG alice m3\n"
                              "HIST 2023-11-14T22:13:24.123Z MSG alice m4\n"
                              "HIST 2023-11-14T22:13:25.123Z MSG alice m5\n"
                              "OK history 3\n");
    /* Everything before m5: only m3 and m4 are left (m1, m2 trimmed). */
    in(0, "/history 3 2023-11-14T22:13:25.123Z\n");
    cr_assert_str_eq(take(0), "HIST 2023-11-14T22:13:23.123Z MSG alice m3\n"
                              "HIST 2023-11-14T22:13:24.123Z MSG alice m4\n"
                              "OK history 2\n");
}
