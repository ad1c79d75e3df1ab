/* The client's decoder (apps/chat_client.c), byte by byte: typed events
 * with exact fields, lines split anywhere, history already seen marked as
 * a duplicate after a reconnect, and text made safe for a terminal. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "sockstack/chat_client.h"

static char got[16][256];
static int ngot;
static char intro[64]; /* key and side of the last P2P intro */
static char peer[64];  /* addr of the last P2P peer */

/* Each event as one line of text, for exact comparison. */
static void record(void *arg, const ss_chat_ev *ev)
{
    cr_assert_lt(ngot, 16);
    snprintf(got[ngot++], sizeof got[0], "%d|%s|%lld|%s|%s|%s|%s|%lld|%llu|%d|%d|%d", ev->kind,
             ev->ts_str, (long long)ev->ts, ev->nick, ev->nick2, ev->code, ev->text,
             (long long)ev->id, (unsigned long long)ev->size, ev->count, ev->online, ev->dup);
    if (ev->kind == SS_CHAT_EV_P2P && !strcmp(ev->code, "intro"))
        snprintf(intro, sizeof intro, "%s %d%s", ev->key, ev->side, ev->addr);
    if (ev->kind == SS_CHAT_EV_P2P && !strcmp(ev->code, "peer"))
        snprintf(peer, sizeof peer, "%s%s %d", ev->addr, ev->key, ev->side);
}

TestSuite(chat_client, .timeout = 10);

Test(chat_client, every_kind_decodes_with_exact_fields_across_splits)
{
    ss_chat_client *cl;
    cr_assert_eq(ss_chat_client_new(&cl, record, NULL), 0);
    ngot = 0;
    const char *in = "MSG 2023-11-14T22:13:20.123Z alice hello there\r\n"
                     "JOIN 2023-11-14T22:13:21.000Z bob 2\n"
                     "NICK 2023-11-14T22:13:22.000Z bob robert\n"
                     "WHO carol offline 2023-11-14T22:00:00.000Z\n"
                     "OK nick alice 3\n"
                     "ERR quota victim has 32 offers waiting\n"
                     "OFFER 7 bob 300 e3b0 a b.txt\n"
                     "P2P intro 4 bob 0123 1\n"
                     "WHAT is this\n"
                     "P2P peer 4 198.51.100.7:4100 10.0.0.2:4100 10.0.0.3:4100\n";
    /* one byte at a time */
    for (const char *p = in; *p; p++)
        ss_chat_client_feed(cl, p, 1);
    cr_assert_eq(ngot, 10);
    cr_assert_str_eq(got[0], "1|2023-11-14T22:13:20.123Z|1700000000123|alice|||hello there|0|0|0|0|0");
    cr_assert_str_eq(got[1], "6|2023-11-14T22:13:21.000Z|1700000001000|bob||||0|0|2|0|0");
    cr_assert_str_eq(got[2], "8|2023-11-14T22:13:22.000Z|1700000002000|bob|robert|||0|0|0|0|0");
    cr_assert_str_eq(got[3], "9|2023-11-14T22:00:00.000Z|1699999200000|carol||||0|0|0|0|0");
    cr_assert_str_eq(got[4], "10||-1|alice||nick|alice|0|0|3|0|0"); /* nick and count */
    cr_assert_str_eq(got[5], "11||-1|||quota|victim has 32 offers waiting|0|0|0|0|0");
    cr_assert_str_eq(got[6], "13||-1|bob|||a b.txt|7|300|0|0|0");
    cr_assert_str_eq(got[7], "20||-1|bob||intro||4|0|0|0|0"); /* and key, side: */
    cr_assert_str_eq(intro, "0123 1"); /* no addr */
    cr_assert_str_eq(got[8], "0||-1||||WHAT is this|0|0|0|0|0");
    /* the rendezvous: id, the peer's public address, its candidates */
    cr_assert_str_eq(got[9], "20||-1|||peer|10.0.0.2:4100 10.0.0.3:4100|4|0|0|0|0");
    cr_assert_str_eq(peer, "198.51.100.7:4100 -1"); /* no key, no side */
    ss_chat_client_free(cl);
}

Test(chat_client, history_seen_before_a_reconnect_is_marked_and_since_is_offered)
{
    ss_chat_client *cl;
    cr_assert_eq(ss_chat_client_new(&cl, record, NULL), 0);
    ngot = 0;
    char since[64];
    cr_assert_eq(ss_chat_client_since(cl, since, sizeof since), 0);
    const char *live = "MSG 2023-11-14T22:13:20.123Z alice one\n"
                       "MSG 2023-11-14T22:13:20.123Z bob two\n";
    ss_chat_client_feed(cl, live, strlen(live));
    ss_chat_client_sent(cl, "me", "mine", false);
    cr_assert_gt(ss_chat_client_since(cl, since, sizeof since), 0);
    cr_assert_str_eq(since, "/since 2023-11-14T22:13:18.123Z\n"); /* 2 s of slack */
    /* after the reconnect: the same two, ours, and a new one */
    ngot = 0;
    const char *hist = "HIST 2023-11-14T22:13:20.123Z MSG alice one\n"
                       "HIST 2023-11-14T22:13:20.123Z MSG bob two\n"
                       "HIST 2023-11-14T22:13:21.000Z MSG me mine\n"
                       "HIST 2023-11-14T22:13:22.000Z MSG carol three\n";
    ss_chat_client_feed(cl, hist, strlen(hist));
    cr_assert_eq(ngot, 4);
    for (int i = 0; i < 3; i++)
        cr_assert(got[i][strlen(got[i]) - 1] == '1', "%s", got[i]);
    cr_assert(got[3][strlen(got[3]) - 1] == '0', "%s", got[3]);
    ss_chat_client_free(cl);
}

Test(chat_client, text_clean_replaces_c0_c1_and_invalid_bytes)
{
    char s[] = "a\x1b[2Jb\xc2\x9b" "c\x07\x7f\xc3\xa9\xe6\x97\xa5\xff!";
    ss_chat_text_clean(s);
    cr_assert_str_eq(s, "a?[2Jb??c??\xc3\xa9\xe6\x97\xa5?!");
}

Test(chat_client, resume_on_another_node_keeps_late_lines_and_drops_repeats)
{
    ss_chat_client *cl;
    cr_assert_eq(ss_chat_client_new(&cl, record, NULL), 0);
    ngot = 0;
    /* Node 1 stamped 22:13:20.500; a line stamped 20.400 by node 2 was
     * stored but had not reached us when node 1 died. */
    const char *live = "MSG 2023-11-14T22:13:20.000Z alice one\n"
                       "MSG 2023-11-14T22:13:20.500Z bob two\n"
                       "OFFLINE 2023-11-14T22:10:00.000Z carol psst\n";
    ss_chat_client_feed(cl, live, strlen(live));
    char since[64];
    cr_assert_gt(ss_chat_client_since(cl, since, sizeof since), 0);
    cr_assert_str_eq(since, "/since 2023-11-14T22:13:18.500Z\n");
    ngot = 0;
    const char *again = "HIST 2023-11-14T22:13:20.000Z MSG alice one\n"
                        "HIST 2023-11-14T22:13:20.400Z MSG dave late\n"
                        "HIST 2023-11-14T22:13:20.500Z MSG bob two\n"
                        "HIST 2023-11-14T22:13:20.500Z ME bob two\n"
                        "OFFLINE 2023-11-14T22:10:00.000Z carol psst\n"
                        "OFFLINE 2023-11-14T22:10:01.000Z carol more\n";
    ss_chat_client_feed(cl, again, strlen(again));
    cr_assert_eq(ngot, 6);
    /* seen: dup; the late line and the action (another line) are new;
     * offline mail delivered a second time: dup */
    const char want[] = {'1', '0', '1', '0', '1', '0'};
    for (int i = 0; i < 6; i++)
        cr_assert_eq(got[i][strlen(got[i]) - 1], want[i], "%d: %s", i, got[i]);
    /* the late line does not move the resume point back */
    cr_assert_gt(ss_chat_client_since(cl, since, sizeof since), 0);
    cr_assert_str_eq(since, "/since 2023-11-14T22:13:18.500Z\n");
    ss_chat_client_free(cl);
}

/* kind|id|off|size|sha256|text: the fields of a file's lines. */
static void record_file(void *arg, const ss_chat_ev *ev)
{
    cr_assert_lt(ngot, 16);
    snprintf(got[ngot++], sizeof got[0], "%d|%lld|%llu|%llu|%s|%s", ev->kind, (long long)ev->id,
             (unsigned long long)ev->off, (unsigned long long)ev->size, ev->sha256, ev->text);
}

/* The point-to-point stream (apps/chat_p2p.c) goes through this decoder
 * too: the sender's FILE, CHUNK and FILEEND as from a server, and the
 * receiver's answers. */
Test(chat_client, point_to_point_file_lines_decode_with_exact_fields)
{
    ss_chat_client *cl;
    cr_assert_eq(ss_chat_client_new(&cl, record_file, NULL), 0);
    ngot = 0;
    /* three bytes at a time */
    static const char in[] = "FILE 1 81920 ab12 data.bin\nCHUNK 1 2048 QUJD\nFILEEND 1\n"
                             "RESUME 1 30720\nDONE 1\nFAILED 2\nNOFILE 3\n";
    for (size_t off = 0; off < sizeof in - 1; off += 3)
        ss_chat_client_feed(cl, in + off, sizeof in - 1 - off < 3 ? sizeof in - 1 - off : 3);
    cr_assert_eq(ngot, 7);
    cr_assert_str_eq(got[0], "14|1|0|81920|ab12|data.bin");
    cr_assert_str_eq(got[1], "15|1|2048|0||QUJD");
    cr_assert_str_eq(got[2], "16|1|0|0||");
    cr_assert_str_eq(got[3], "21|1|30720|0||");
    cr_assert_str_eq(got[4], "22|1|0|0||");
    cr_assert_str_eq(got[5], "23|2|0|0||");
    cr_assert_str_eq(got[6], "24|3|0|0||");
    ss_chat_client_free(cl);
}
