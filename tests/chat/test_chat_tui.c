/* The ncurses chat client in a real terminal: tmux runs it, the test types
 * with send-keys and reads the screen with capture-pane. An incoming
 * message must appear in the pane while the half-typed input line stays
 * exactly as typed. The tmux server has its own socket name (-L) with our
 * pid, and is ended through that name only. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <locale.h>
#include <wchar.h>

#include "harness.h"

static char sock_name[64];
static struct th_proc srv, srv2;
static bool srv_up, srv2_up;

static void setup(void)
{
    snprintf(sock_name, sizeof sock_name, "ss-chat-tui-%d", (int)getpid());
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "tmux -L %s kill-server 2>/dev/null", sock_name);
    if (system(cmd)) {
        /* no server left: fine */
    }
    if (srv_up) {
        th_stop(&srv, SIGKILL, 2000);
        th_close_fds(&srv);
    }
    if (srv2_up) {
        th_stop(&srv2, SIGKILL, 2000);
        th_close_fds(&srv2);
    }
    srv_up = srv2_up = false;
}

TestSuite(chat_tui, .init = setup, .fini = teardown, .timeout = 60);

/* The visible screen, one line per row, trailing blanks trimmed by tmux. */
static char *capture(void)
{
    static char buf[16384];
    char cmd[128];
    snprintf(cmd, sizeof cmd, "tmux -L %s capture-pane -p", sock_name);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    pclose(f);
    return buf;
}

static bool screen_has(const char *needle, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        if (strstr(capture(), needle))
            return true;
        usleep(50000);
    }
    return false;
}

static void keys(const char *literal, bool enter)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "tmux -L %s send-keys -l '%s'", sock_name, literal);
    cr_assert_eq(system(cmd), 0);
    if (enter) {
        snprintf(cmd, sizeof cmd, "tmux -L %s send-keys Enter", sock_name);
        cr_assert_eq(system(cmd), 0);
    }
}

static void put_raw(int fd, const char *s)
{
    cr_assert_eq(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* The last non-empty line of the screen. */
static const char *last_line(void)
{
    static char line[512];
    char *s = capture();
    size_t n = strlen(s);
    while (n && s[n - 1] == '\n')
        s[--n] = '\0';
    char *nl = strrchr(s, '\n');
    snprintf(line, sizeof line, "%s", nl ? nl + 1 : s);
    return line;
}

/* `tmux send-keys KEYS` (key names, not literal text). */
static void send_keys(const char *names)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "tmux -L %s send-keys %s", sock_name, names);
    cr_assert_eq(system(cmd), 0);
}

/* Wait until the input line (the last row) is exactly want. */
static void input_is(const char *want)
{
    for (int i = 0; i < 200 && strcmp(last_line(), want); i++)
        usleep(50000);
    cr_assert_str_eq(last_line(), want, "%s", capture());
}

/* What fd receives until needle is in it (10 s at most), into got. */
static void recv_until(int fd, const char *needle, char *got, size_t cap)
{
    size_t len = 0;
    got[0] = '\0';
    for (int i = 0; i < 200 && !strstr(got, needle); i++) {
        ssize_t n = recv(fd, got + len, cap - 1 - len, MSG_DONTWAIT);
        if (n > 0)
            got[len += (size_t)n] = '\0';
        else
            usleep(50000);
    }
    cr_assert(strstr(got, needle), "no \"%s\" in: %s", needle, got);
}

/* A user on a raw socket: connected to 127.0.0.1:port, first line sent. */
static int raw_user(int port, const char *first)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    put_raw(fd, first);
    return fd;
}

/* The server and bob's screen (w x h, in tmux); the server's port. */
static int start_screen(int w, int h)
{
    if (system("command -v tmux >/dev/null") != 0)
        cr_skip_test("tmux not installed");
    cr_assert_eq(th_spawn_cli(&srv, "serve", "chat", "-b", "127.0.0.1", "--port", "0",
                              "--grace", "0", NULL), 0);
    srv_up = true;
    int port = th_wait_listening(&srv, 10000, NULL, 0);
    cr_assert_gt(port, 0);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "tmux -L %s -f /dev/null new-session -d -x %d -y %d "
             "'LANG=C.UTF-8 TERM=screen %s chat 127.0.0.1 %d --name bob'",
             sock_name, w, h, th_sockstack(), port);
    cr_assert_eq(system(cmd), 0);
    cr_assert(screen_has("-- you are bob (1 online)", 10000), "%s", capture());
    return port;
}

/* bob's screen and alice on a raw socket. */
static int start_bob(int w, int h, int *alice)
{
    int port = start_screen(w, h);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    put_raw(fd, "/nick alice\n");
    cr_assert(screen_has("-- alice joined", 10000), "%s", capture());
    *alice = fd;
    return port;
}

Test(chat_tui, incoming_message_never_garbles_the_input_line)
{
    int port = start_screen(80, 20);
    char cmd[1024];
    cr_assert(screen_has(" room lobby | 1 online | connected | bob | [lobby]", 5000), "%s",
              capture());

    keys("typing in prog", false);
    cr_assert(screen_has("> typing in prog", 5000), "%s", capture());

    /* alice (a raw socket) talks while bob is mid-word */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    const char *hello = "/nick alice\nhello bob, incoming\n";
    cr_assert_eq(write(fd, hello, strlen(hello)), (ssize_t)strlen(hello));

    cr_assert(screen_has("<alice> hello bob, incoming", 10000), "%s", capture());
    cr_assert(screen_has(" room lobby | 2 online | connected | bob | [lobby]", 5000), "%s",
              capture());
    cr_assert_str_eq(last_line(), "> typing in prog");

    /* finish the word and send: alice gets the whole line */
    keys("ress", true);
    char got[4096] = "";
    size_t len = 0;
    for (int i = 0; i < 100 && !strstr(got, " bob typing in progress\n"); i++) {
        ssize_t n = recv(fd, got + len, sizeof got - 1 - len, MSG_DONTWAIT);
        if (n > 0) {
            len += (size_t)n;
            got[len] = '\0';
        } else {
            usleep(50000);
        }
    }
    cr_assert(strstr(got, " bob typing in progress\n"), "%s", got);
    /* bob sees his own line too, with the time */
    cr_assert(screen_has("] <bob> typing in progress", 5000), "%s", capture());
    /* the input line is empty again (tmux trims the trailing blank) */
    for (int i = 0; i < 100 && strcmp(last_line(), ">"); i++)
        usleep(50000);
    cr_assert_str_eq(last_line(), ">");

    /* scrollback: 40 more lines push "hello bob, incoming" off the pane;
     * PgUp brings it back and says so on the status line, PgDn returns */
    char burst[2048];
    size_t n = 0;
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(burst + n, sizeof burst - n, "filler %02d\n", i);
    cr_assert_eq(write(fd, burst, n), (ssize_t)n);
    cr_assert(screen_has("<alice> filler 39", 10000), "%s", capture());
    cr_assert_null(strstr(capture(), "hello bob, incoming"));
    snprintf(cmd, sizeof cmd, "tmux -L %s send-keys PPage PPage", sock_name);
    cr_assert_eq(system(cmd), 0);
    cr_assert(screen_has("hello bob, incoming", 5000), "%s", capture());
    cr_assert(screen_has("| scrolled back ", 5000), "%s", capture());
    snprintf(cmd, sizeof cmd, "tmux -L %s send-keys NPage NPage NPage", sock_name);
    cr_assert_eq(system(cmd), 0);
    cr_assert(screen_has("<alice> filler 39", 5000), "%s", capture());
    cr_assert_null(strstr(capture(), "scrolled back"));

    /* resize: the status and input lines move to the new bottom at once,
     * before any key is pressed */
    keys("before", false);
    snprintf(cmd, sizeof cmd, "tmux -L %s resize-window -x 60 -y 12", sock_name);
    cr_assert_eq(system(cmd), 0);
    for (int i = 0; i < 100 && strcmp(last_line(), "> before"); i++)
        usleep(50000);
    cr_assert_str_eq(last_line(), "> before", "%s", capture());
    cr_assert(strstr(capture(), "| bob | [lobby]\n> before"), "%s", capture());
    /* a line arriving after the resize is drawn at the new width */
    put_raw(fd, "after the resize this line is longer than sixty columns so it wraps\n");
    cr_assert(screen_has("wraps", 5000), "%s", capture());
    keys("\x15", false); /* Ctrl-U */
    keys("after resize", false);
    for (int i = 0; i < 100 && strcmp(last_line(), "> after resize"); i++)
        usleep(50000);
    cr_assert_str_eq(last_line(), "> after resize");
    char *scr = capture();
    int rows = 0;
    for (char *p = scr; *p; p++)
        rows += *p == '\n';
    cr_assert_eq(rows, 12, "%s", scr);
    cr_assert(strstr(scr, " room lobby | 2 online | connected | bob | [lobby]\n> after resize"),
              "%s", scr);
    close(fd);
}

/* Screen columns of one UTF-8 line (wide characters count two). */
static int columns(const char *s)
{
    int cols = 0;
    mbstate_t ps;
    memset(&ps, 0, sizeof ps);
    while (*s) {
        wchar_t c;
        size_t r = mbrtowc(&c, s, strlen(s), &ps);
        if (r == (size_t)-1 || r == (size_t)-2 || r == 0)
            return -1;
        int k = wcwidth(c);
        cols += k < 0 ? 1 : k;
        s += r;
    }
    return cols;
}

Test(chat_tui, wide_characters_wrap_by_columns_and_never_overwrite_the_next_line)
{
    setlocale(LC_ALL, "C.UTF-8");
    int alice;
    start_bob(60, 20, &alice);
    /* 100 CJK characters: 200 columns at 2 each, several rows of the pane
     * (counted as characters they would be half as many rows). */
    char line[1024] = "";
    for (int i = 0; i < 100; i++)
        strcat(line, i % 2 ? "語" : "日");
    strcat(line, " end\nnext line stays whole\n");
    put_raw(alice, line);
    cr_assert(screen_has("<alice> next line stays whole", 5000), "%s", capture());
    char *scr = capture();
    /* No row is wider than the terminal; the CJK text spans several rows
     * and every one of its characters is on screen. */
    int cjk = 0;
    for (char *row = strtok(scr, "\n"); row; row = strtok(NULL, "\n")) {
        int c = columns(row);
        cr_assert(c >= 0 && c <= 60, "row of %d columns: %s", c, row);
        for (char *p = row; (p = strstr(p, "日")) || 0; p += 3)
            cjk++;
        for (char *p = row; (p = strstr(p, "語")); p += 3)
            cjk++;
    }
    cr_assert_eq(cjk, 100, "%s", capture());
    close(alice);
}

Test(chat_tui, editing_keys_history_and_nick_completion)
{
    int alice;
    start_bob(80, 20, &alice);
    char cmd[256];
    /* world, Home, "hello ", End, "!" -> "hello world!" */
    keys("world", false);
    snprintf(cmd, sizeof cmd, "tmux -L %s send-keys Home", sock_name);
    cr_assert_eq(system(cmd), 0);
    keys("hello ", false);
    snprintf(cmd, sizeof cmd, "tmux -L %s send-keys End", sock_name);
    cr_assert_eq(system(cmd), 0);
    keys("!", false);
    cr_assert(screen_has("> hello world!", 5000), "%s", capture());
    /* Left twice, Backspace removes the "l" before the cursor */
    snprintf(cmd, sizeof cmd, "tmux -L %s send-keys Left Left BSpace", sock_name);
    cr_assert_eq(system(cmd), 0);
    cr_assert(screen_has("> hello word!", 5000), "%s", capture());
    /* Ctrl-E, Ctrl-W deletes the last word; Ctrl-A then Ctrl-K clears */
    snprintf(cmd, sizeof cmd, "tmux -L %s send-keys C-e C-w", sock_name);
    cr_assert_eq(system(cmd), 0);
    input_is("> hello"); /* "word!" went, the blank before it stays */
    snprintf(cmd, sizeof cmd, "tmux -L %s send-keys C-a C-k", sock_name);
    cr_assert_eq(system(cmd), 0);
    for (int i = 0; i < 100 && strcmp(last_line(), ">"); i++)
        usleep(50000);
    cr_assert_str_eq(last_line(), ">");
    /* Tab completes a nick at the start of the line with ": " */
    keys("al", false);
    snprintf(cmd, sizeof cmd, "tmux -L %s send-keys Tab", sock_name);
    cr_assert_eq(system(cmd), 0);
    keys("hi there", true);
    char got[4096];
    recv_until(alice, " bob alice: hi there\n", got, sizeof got);
    /* Up brings the sent line back */
    snprintf(cmd, sizeof cmd, "tmux -L %s send-keys Up", sock_name);
    cr_assert_eq(system(cmd), 0);
    cr_assert(screen_has("> alice: hi there", 5000), "%s", capture());
    /* Ctrl-C clears a line, then asks, then quits */
    snprintf(cmd, sizeof cmd, "tmux -L %s send-keys C-c", sock_name);
    cr_assert_eq(system(cmd), 0);
    for (int i = 0; i < 100 && strcmp(last_line(), ">"); i++)
        usleep(50000);
    cr_assert_str_eq(last_line(), ">");
    snprintf(cmd, sizeof cmd, "tmux -L %s send-keys C-c", sock_name);
    cr_assert_eq(system(cmd), 0);
    cr_assert(screen_has("Ctrl-C again to quit", 5000), "%s", capture());
    /* the status bar follows /nick */
    keys("/nick robert", true);
    cr_assert(screen_has("| connected | robert |", 5000), "%s", capture());
    close(alice);
}

/* Two servers: the screen follows bob to the second when the first dies,
 * and the room keeps going there. */
Test(chat_tui, the_screen_follows_a_failover_to_the_next_server)
{
    if (system("command -v tmux >/dev/null") != 0)
        cr_skip_test("tmux not installed");
    cr_assert_eq(th_spawn_cli(&srv, "serve", "chat", "-b", "127.0.0.1", "--port", "0",
                              "--grace", "0", NULL), 0);
    srv_up = true;
    int pa = th_wait_listening(&srv, 10000, NULL, 0);
    cr_assert_eq(th_spawn_cli(&srv2, "serve", "chat", "-b", "127.0.0.1", "--port", "0",
                              "--grace", "0", NULL), 0);
    srv2_up = true;
    int pb = th_wait_listening(&srv2, 10000, NULL, 0);
    cr_assert(pa > 0 && pb > 0);
    char cmd[1024], want[128];
    snprintf(cmd, sizeof cmd,
             "tmux -L %s -f /dev/null new-session -d -x 140 -y 20 "
             "'LANG=C.UTF-8 TERM=screen %s chat --server 127.0.0.1:%d --server 127.0.0.1:%d "
             "--in-order --name bob'",
             sock_name, th_sockstack(), pa, pb);
    cr_assert_eq(system(cmd), 0);
    snprintf(want, sizeof want, "-- connected to 127.0.0.1:%d (127.0.0.1:%d)", pa, pa);
    cr_assert(screen_has(want, 10000), "%s", capture());
    cr_assert(screen_has("-- you are bob (1 online)", 10000), "%s", capture());
    cr_assert_neq(th_stop(&srv, SIGKILL, 5000), -1);
    th_close_fds(&srv);
    srv_up = false;
    snprintf(want, sizeof want, "reconnecting in 0.25 s to 127.0.0.1:%d", pb);
    cr_assert(screen_has(want, 10000), "%s", capture());
    snprintf(want, sizeof want, "-- connected to 127.0.0.1:%d (127.0.0.1:%d)", pb, pb);
    cr_assert(screen_has(want, 10000), "%s", capture());
    cr_assert(screen_has("| 1 online | connected | bob |", 10000), "%s", capture());
    int fd = raw_user(pb, "/nick alice\nhello on node two\n");
    cr_assert(screen_has("<alice> hello on node two", 10000), "%s", capture());
    cr_assert(screen_has("| 2 online | connected | bob |", 10000), "%s", capture());
    close(fd);
}

Test(chat_tui, right_down_and_ctrl_w_edit_exactly)
{
    int alice;
    start_bob(80, 20, &alice);
    /* Right: Home, Right twice, then "X" lands after the second character. */
    keys("hello", false);
    input_is("> hello");
    send_keys("Home Right Right");
    keys("X", false);
    input_is("> heXllo");
    /* Right stops at the end of the line. */
    send_keys("Right Right Right Right Right");
    keys("!", false);
    input_is("> heXllo!");
    /* Ctrl-W removes the word before the cursor and the blanks after it,
     * nothing more. */
    send_keys("C-u");
    input_is(">");
    keys("one two  three", false);
    input_is("> one two  three");
    send_keys("C-w");
    keys("X", false); /* the blanks before "three" stay */
    input_is("> one two  X");
    send_keys("BSpace Left Left C-w");
    keys("Y", false); /* "two" went; the cursor is where it started */
    input_is("> one Y");
    send_keys("C-e");
    keys("Z", false);
    input_is("> one Y  Z");
    send_keys("C-a C-w"); /* at the start: nothing to delete */
    input_is("> one Y  Z");
    send_keys("C-e C-u");
    input_is(">");
    /* Down: after Up Up, Down steps forward through the history, and past
     * the newest entry it gives an empty line. */
    keys("first line", true);
    input_is(">");
    keys("second line", true);
    input_is(">");
    send_keys("Up Up");
    input_is("> first line");
    send_keys("Down");
    input_is("> second line");
    send_keys("Down");
    input_is(">");
    close(alice);
}

Test(chat_tui, long_lines_wrap_at_words_with_an_indent_under_the_text)
{
    int alice;
    start_bob(60, 20, &alice);
    /* 30 words of 4 characters: several rows of the 42-column pane (60
     * minus the users panel). */
    char line[512] = "";
    for (int i = 0; i < 30; i++)
        snprintf(line + strlen(line), sizeof line - strlen(line), "w%02d%c ", i,
                 'a' + i % 26);
    line[strlen(line) - 1] = '\n';
    put_raw(alice, line);
    cr_assert(screen_has("w29d", 5000), "%s", capture());
    /* The rows of that message in the pane (the first 42 columns; the
     * panel follows): the first has "<alice> w00a", each next one is
     * exactly 11 blanks (the width of "[HH:MM:SS] ") and whole words. */
    char *scr = capture();
    char *first = strstr(scr, "<alice> w00a ");
    cr_assert(first, "%s", scr);
    int words = 0, rows = 0;
    for (char *row = first - 11; row && *row; rows++) {
        char pane[64];
        snprintf(pane, sizeof pane, "%.42s", row);
        char *nl = strchr(pane, '\n');
        if (nl)
            *nl = '\0';
        if (rows > 0 && strncmp(pane, "           w", 12))
            break; /* the message ended */
        char *p = rows ? pane + 11 : strstr(pane, "> ") + 2;
        for (char *t = strtok(p, " "); t; t = strtok(NULL, " ")) {
            cr_assert(strlen(t) == 4 && t[0] == 'w' && t[1] >= '0' && t[1] <= '9' &&
                          t[2] >= '0' && t[2] <= '9' && t[3] >= 'a' && t[3] <= 'z',
                      "a word cut at a row's end: \"%s\" in\n%s", t, scr);
            words++;
        }
        row = strchr(row, '\n');
        row = row ? row + 1 : NULL;
    }
    cr_assert_eq(words, 30, "%s", scr);
    cr_assert_eq(rows, 6, "%d rows:\n%s", rows, scr);
    close(alice);
}

Test(chat_tui, opening_a_user_in_the_panel_starts_a_point_to_point_tab)
{
    int alice;
    int port = start_bob(80, 20, &alice);
    /* carol joins too: the panel lists alice, bob and carol. */
    int carol = raw_user(port, "/nick carol\n");
    cr_assert(screen_has("-- carol joined", 10000), "%s", capture());
    cr_assert(screen_has("| * carol", 5000), "%s", capture());
    cr_assert(screen_has("users (F2)", 5000), "%s", capture());
    /* F2 focuses the panel; Down twice from alice selects carol. */
    send_keys("F2");
    cr_assert(screen_has("users (Enter)", 5000), "%s", capture());
    send_keys("Down Down Enter");
    /* carol's tab opens beside the lobby, and the server introduced bob to
     * carol (not to alice). */
    cr_assert(screen_has("| connected | bob | [lobby] carol", 10000), "%s", capture());
    cr_assert(screen_has("users (F2)", 5000), "%s", capture());
    char got[4096];
    recv_until(carol, "P2P intro ", got, sizeof got);
    char *intro = strstr(got, "P2P intro ");
    long long id;
    char peer[32], key[40];
    int side;
    cr_assert_eq(sscanf(intro, "P2P intro %lld %31s %39s %d", &id, peer, key, &side), 4, "%s",
                 intro);
    cr_assert_str_eq(peer, "bob");
    cr_assert_eq(side, 1);
    cr_assert_eq(strlen(key), 32);
    /* alice was not asked. */
    char other[4096];
    ssize_t n = recv(alice, other, sizeof other - 1, MSG_DONTWAIT);
    other[n > 0 ? n : 0] = '\0';
    cr_assert_null(strstr(other, "P2P"), "%s", other);
    /* Ctrl-N shows carol's tab: the introduction's first line is there. */
    send_keys("C-n");
    cr_assert(screen_has("| connected | bob | lobby [carol]", 5000), "%s", capture());
    cr_assert(screen_has("-- point-to-point with carol: asked the server to", 5000), "%s",
              capture());
    close(carol);
    close(alice);
}
