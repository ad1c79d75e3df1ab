/* The chat client's terminal screen (see chat_ui.h), on ncursesw.
 *
 *   +--------------------------------------------+
 *   | [12:00:01] <alice> hello                   |  pane: scrollback ring,
 *   | ...                                        |  PgUp/PgDn move through it
 *   |  lobby | 3 online | connected | alice      |  status line (reverse)
 *   | > text being typed_                        |  input line
 *   +--------------------------------------------+
 *
 * Incoming lines redraw the pane and the status line, then the input line
 * is redrawn last with the cursor put back, so typing is never garbled.
 */
#include <limits.h>
#include <locale.h>
#include <ncurses.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "cli/chat_ui.h"
#include "sockstack/config.h"

struct entry {
    char *time, *nick, *text;
};

struct chat_ui {
    WINDOW *pane, *status, *input;
    struct entry lines[SS_CHAT_SCROLLBACK];
    size_t first, count; /* ring */
    int scroll;          /* entries scrolled back from the bottom */
    wchar_t in[SS_CHAT_MAX_LINE];
    size_t in_len;
    char room[64], nick[64], state[32];
    int online;
};

static int nick_colour(const char *nick)
{
    unsigned h = 5381;
    for (const char *p = nick; *p; p++)
        h = h * 33 + (unsigned char)*p;
    return 1 + (int)(h % 6);
}

static void layout(struct chat_ui *ui)
{
    if (ui->pane)
        delwin(ui->pane);
    if (ui->status)
        delwin(ui->status);
    if (ui->input)
        delwin(ui->input);
    int rows = LINES < 3 ? 3 : LINES;
    ui->pane = newwin(rows - 2, COLS, 0, 0);
    ui->status = newwin(1, COLS, rows - 2, 0);
    ui->input = newwin(1, COLS, rows - 1, 0);
    keypad(ui->input, TRUE);
    nodelay(ui->input, TRUE);
    wbkgd(ui->status, A_REVERSE);
}

static struct entry *entry_at(struct chat_ui *ui, size_t i)
{
    return &ui->lines[(ui->first + i) % SS_CHAT_SCROLLBACK];
}

/* Rows an entry takes at this width (characters, not bytes). */
static int rows_of(const struct entry *e, int width)
{
    size_t chars = strlen(e->time) + (e->time[0] ? 3 : 0);
    for (const char *p = e->text; *p; p++)
        if (((unsigned char)*p & 0xc0) != 0x80)
            chars++;
    return width > 0 ? (int)((chars + (size_t)width - 1) / (size_t)width) + (chars == 0)
                     : 1;
}

static void draw_pane(struct chat_ui *ui)
{
    int h = getmaxy(ui->pane), w = getmaxx(ui->pane);
    werase(ui->pane);
    /* From the newest visible entry upwards, as many as fit whole. */
    size_t end = ui->count > (size_t)ui->scroll ? ui->count - (size_t)ui->scroll : 0;
    size_t start = end;
    int used = 0;
    while (start > 0) {
        int r = rows_of(entry_at(ui, start - 1), w);
        if (used + r > h)
            break;
        used += r;
        start--;
    }
    int y = h - used;
    for (size_t i = start; i < end; i++) {
        struct entry *e = entry_at(ui, i);
        wmove(ui->pane, y, 0);
        if (e->time[0]) {
            waddstr(ui->pane, "[");
            waddstr(ui->pane, e->time);
            waddstr(ui->pane, "] ");
        }
        /* Colour the nickname where it appears in the text. */
        const char *at = e->nick[0] ? strstr(e->text, e->nick) : NULL;
        if (at && has_colors()) {
            waddnstr(ui->pane, e->text, (int)(at - e->text));
            wattron(ui->pane, COLOR_PAIR(nick_colour(e->nick)) | A_BOLD);
            waddstr(ui->pane, e->nick);
            wattroff(ui->pane, COLOR_PAIR(nick_colour(e->nick)) | A_BOLD);
            waddstr(ui->pane, at + strlen(e->nick));
        } else {
            waddstr(ui->pane, e->text);
        }
        y += rows_of(e, w);
    }
    wnoutrefresh(ui->pane);
}

static void draw_status(struct chat_ui *ui)
{
    werase(ui->status);
    mvwprintw(ui->status, 0, 0, " room %s | %d online | %s | %s", ui->room, ui->online,
              ui->state, ui->nick);
    if (ui->scroll)
        wprintw(ui->status, " | scrolled back %d (PgDn)", ui->scroll);
    wnoutrefresh(ui->status);
}

static void draw_input(struct chat_ui *ui)
{
    int w = getmaxx(ui->input);
    werase(ui->input);
    mvwaddstr(ui->input, 0, 0, "> ");
    size_t show = (size_t)(w > 4 ? w - 3 : 1);
    size_t from = ui->in_len > show ? ui->in_len - show : 0;
    waddnwstr(ui->input, ui->in + from, (int)(ui->in_len - from));
    wnoutrefresh(ui->input); /* last: the cursor stays on the input line */
}

static void redraw(struct chat_ui *ui)
{
    draw_pane(ui);
    draw_status(ui);
    draw_input(ui);
    doupdate();
}

struct chat_ui *chat_ui_open(const char *room, const char *nick)
{
    setlocale(LC_ALL, "");
    struct chat_ui *ui = calloc(1, sizeof *ui);
    if (!ui)
        return NULL;
    if (!initscr()) {
        free(ui);
        return NULL;
    }
    cbreak();
    noecho();
    nonl();
    if (has_colors()) {
        start_color();
        use_default_colors();
        short fg[] = {COLOR_RED, COLOR_GREEN, COLOR_YELLOW, COLOR_BLUE, COLOR_MAGENTA,
                      COLOR_CYAN};
        for (short i = 0; i < 6; i++)
            init_pair((short)(i + 1), fg[i], -1);
    }
    snprintf(ui->room, sizeof ui->room, "%s", room);
    snprintf(ui->nick, sizeof ui->nick, "%s", nick);
    snprintf(ui->state, sizeof ui->state, "connecting");
    layout(ui);
    redraw(ui);
    return ui;
}

void chat_ui_close(struct chat_ui *ui)
{
    for (size_t i = 0; i < ui->count; i++) {
        struct entry *e = entry_at(ui, i);
        free(e->time);
        free(e->nick);
        free(e->text);
    }
    delwin(ui->pane);
    delwin(ui->status);
    delwin(ui->input);
    endwin();
    free(ui);
}

void chat_ui_add(struct chat_ui *ui, const char *hhmmss, const char *nick,
                 const char *text)
{
    if (ui->count == SS_CHAT_SCROLLBACK) {
        struct entry *old = entry_at(ui, 0);
        free(old->time);
        free(old->nick);
        free(old->text);
        ui->first = (ui->first + 1) % SS_CHAT_SCROLLBACK;
        ui->count--;
    }
    struct entry *e = entry_at(ui, ui->count++);
    e->time = strdup(hhmmss ? hhmmss : "");
    e->nick = strdup(nick ? nick : "");
    e->text = strdup(text);
    if (ui->scroll)
        ui->scroll++; /* keep the view where the reader left it */
    redraw(ui);
}

void chat_ui_room(struct chat_ui *ui, const char *room)
{
    snprintf(ui->room, sizeof ui->room, "%s", room);
}

void chat_ui_status(struct chat_ui *ui, int online, const char *state)
{
    ui->online = online;
    snprintf(ui->state, sizeof ui->state, "%s", state);
    draw_status(ui);
    draw_input(ui);
    doupdate();
}

int chat_ui_key(struct chat_ui *ui, char *line, size_t cap)
{
    wint_t ch;
    int r = wget_wch(ui->input, &ch);
    if (r == ERR)
        return 0;
    int page = getmaxy(ui->pane) > 2 ? getmaxy(ui->pane) - 1 : 1;
    if (r == KEY_CODE_YES) {
        switch (ch) {
        case KEY_PPAGE:
            ui->scroll += page;
            if ((size_t)ui->scroll > ui->count)
                ui->scroll = (int)ui->count;
            break;
        case KEY_NPAGE:
            ui->scroll = ui->scroll > page ? ui->scroll - page : 0;
            break;
        case KEY_RESIZE:
            layout(ui);
            break;
        case KEY_BACKSPACE:
            if (ui->in_len)
                ui->in_len--;
            break;
        case KEY_ENTER:
            goto enter;
        default:
            break;
        }
        redraw(ui);
        return -1;
    }
    if (ch == 3 || ch == 4) /* Ctrl-C, Ctrl-D */
        return CHAT_UI_QUIT;
    if (ch == '\r' || ch == '\n')
        goto enter;
    if (ch == 127 || ch == 8) {
        if (ui->in_len)
            ui->in_len--;
    } else if (ch == 21) { /* Ctrl-U: clear the line */
        ui->in_len = 0;
    } else if (ch >= 0x20 && ui->in_len < sizeof ui->in / sizeof ui->in[0] - 1) {
        ui->in[ui->in_len++] = (wchar_t)ch;
    }
    draw_input(ui);
    doupdate();
    return -1;
enter:;
    size_t n = 0;
    mbstate_t ps;
    memset(&ps, 0, sizeof ps);
    for (size_t i = 0; i < ui->in_len; i++) {
        char mb[MB_LEN_MAX];
        size_t k = wcrtomb(mb, ui->in[i], &ps);
        if (k == (size_t)-1 || n + k + 1 > cap)
            break;
        memcpy(line + n, mb, k);
        n += k;
    }
    line[n] = '\0';
    ui->in_len = 0;
    ui->scroll = 0;
    redraw(ui);
    return n ? (int)n : -1;
}
