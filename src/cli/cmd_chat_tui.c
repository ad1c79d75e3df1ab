/* The chat client's terminal screen (see chat_ui.h), on ncursesw.
 *
 *   +-------------------------------------------+---------------+
 *   | [12:00:01] <alice> hello                  | users         |
 *   | [12:00:05] <bob> a long line wraps at a   | * alice       |
 *   |            word, indented under the text  | * bob         |
 *   |  room lobby | 3 online | connected | alice | [lobby] carol |
 *   | > text being typed_                                       |
 *   +-----------------------------------------------------------+
 *
 * Every width is in screen columns (wcwidth): a CJK character takes two,
 * so wrapping never runs into the next row. Incoming lines redraw the pane,
 * the panel and the status line, then the input line last with the cursor
 * put back, so typing is never garbled. SIGWINCH (through the client's
 * loop) lays everything out again at once.
 *
 * Keys: Left Right Home End, Ctrl-A/E (start/end), Ctrl-W (word), Ctrl-U
 * (line), Ctrl-K (to end), Backspace Delete, Up/Down (history), Tab (nick
 * completion), PgUp/PgDn (scroll), Ctrl-N/Ctrl-P (next/previous tab), F2
 * (users panel: Up/Down, Enter opens a point-to-point chat, Esc back),
 * Ctrl-C (clears the line; on an empty line asks, twice quits), Ctrl-D on
 * an empty line quits.
 */
#include <limits.h>
#include <locale.h>
#include <ncurses.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <wchar.h>
#include <wctype.h>

#include "cli/chat_ui.h"
#include "sockstack/config.h"

enum { HIST_MAX = 100, USERS_MAX = 512, TABS_MAX = 9, PANEL_W = 18, ROWS_MAX = 64 };

struct entry {
    wchar_t *w;        /* "[time] text" */
    size_t wn;
    size_t nick_at, nick_len; /* the nick's span in w (len 0: none) */
    int colour;
    int tab;
};

struct user {
    char nick[SS_CHAT_NICK_MAX + 1];
    bool online;
    int64_t seen;
};

struct chat_ui {
    WINDOW *pane, *panel, *status, *input;
    struct entry lines[SS_CHAT_SCROLLBACK];
    size_t first, count; /* ring */
    int scroll;          /* rows of the active tab scrolled back */
    wchar_t in[SS_CHAT_MAX_LINE];
    size_t in_len, cur;
    char *hist[HIST_MAX];
    int hist_n, hist_pos;
    size_t comp_at;      /* Tab completion: where the word starts */
    int comp_next;       /* next user to try */
    bool completing;
    wchar_t typed[SS_CHAT_NICK_MAX + 1]; /* what was typed before the first Tab */
    size_t typed_n;
    bool quit_armed;
    struct user users[USERS_MAX];
    int nusers, sel;
    bool panel_focus;
    char tabs[TABS_MAX][SS_CHAT_NICK_MAX + 1];
    bool unread[TABS_MAX];
    int ntabs, active;
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

static int panel_width(void) { return COLS >= 60 ? PANEL_W : 0; }

static void layout(struct chat_ui *ui)
{
    WINDOW **w[] = {&ui->pane, &ui->panel, &ui->status, &ui->input};
    for (size_t i = 0; i < 4; i++)
        if (*w[i]) {
            delwin(*w[i]);
            *w[i] = NULL;
        }
    int rows = LINES < 3 ? 3 : LINES, pw = panel_width();
    ui->pane = newwin(rows - 2, COLS - pw, 0, 0);
    if (pw)
        ui->panel = newwin(rows - 2, pw, 0, COLS - pw);
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

static int cols_of(wchar_t c)
{
    int k = wcwidth(c);
    return k < 0 ? 1 : k;
}

/* Where each screen row of w[0..n) starts at this width: words are kept
 * whole where they fit, rows after the first are indented. Returns rows. */
static int wrap(const wchar_t *w, size_t n, int width, int indent, size_t *starts)
{
    int rows = 0;
    size_t i = 0;
    if (width < 2)
        width = 2;
    if (indent > width / 2)
        indent = width / 2;
    do {
        int avail = rows == 0 ? width : width - indent;
        if (rows > 0)
            while (i < n && w[i] == L' ')
                i++;
        starts[rows++] = i;
        int col = 0;
        size_t j = i, last_space = 0;
        while (j < n && col + cols_of(w[j]) <= avail) {
            if (w[j] == L' ')
                last_space = j;
            col += cols_of(w[j]);
            j++;
        }
        if (j < n && last_space > i)
            j = last_space; /* break at the last space of the row */
        if (j == i)
            j++; /* a character wider than the row: give it one */
        i = j;
    } while (i < n && rows < ROWS_MAX);
    return rows;
}

/* The indent of continuation rows: under the text, after "[time] ". */
static int indent_of(const struct entry *e)
{
    int k = 0;
    if (e->wn && e->w[0] == L'[')
        for (size_t i = 0; i < e->wn && e->w[i] != L']'; i++)
            k++;
    return k ? k + 2 : 2;
}

static int rows_of(const struct entry *e, int width)
{
    size_t starts[ROWS_MAX];
    return wrap(e->w, e->wn, width, indent_of(e), starts);
}

/* Draw w[a..b) at (y, x), the nick's span in colour. */
static void draw_span(struct chat_ui *ui, const struct entry *e, int y, int x, size_t a,
                      size_t b)
{
    wmove(ui->pane, y, x);
    size_t na = e->nick_at, nb = e->nick_at + e->nick_len;
    for (size_t i = a; i < b;) {
        bool in_nick = e->nick_len && i >= na && i < nb && has_colors();
        size_t end = in_nick ? (nb < b ? nb : b) : (e->nick_len && i < na && na < b ? na : b);
        if (in_nick)
            wattron(ui->pane, COLOR_PAIR(e->colour) | A_BOLD);
        waddnwstr(ui->pane, e->w + i, (int)(end - i));
        if (in_nick)
            wattroff(ui->pane, COLOR_PAIR(e->colour) | A_BOLD);
        i = end;
    }
}

static void draw_pane(struct chat_ui *ui)
{
    int h = getmaxy(ui->pane), w = getmaxx(ui->pane);
    werase(ui->pane);
    /* Rows from the newest entry of the active tab upwards. */
    int skip = ui->scroll, y = h;
    for (size_t k = ui->count; k > 0 && y > 0; k--) {
        struct entry *e = entry_at(ui, k - 1);
        if (e->tab != ui->active)
            continue;
        size_t starts[ROWS_MAX];
        int indent = indent_of(e);
        int r = wrap(e->w, e->wn, w, indent, starts);
        for (int row = r - 1; row >= 0 && y > 0; row--) {
            if (skip > 0) {
                skip--;
                continue;
            }
            y--;
            size_t a = starts[row], b = row + 1 < r ? starts[row + 1] : e->wn;
            while (b > a && e->w[b - 1] == L' ')
                b--;
            draw_span(ui, e, y, row ? (indent > w / 2 ? w / 2 : indent) : 0, a, b);
        }
    }
    wnoutrefresh(ui->pane);
}

static int user_cmp(const void *a, const void *b)
{
    const struct user *x = a, *y = b;
    if (x->online != y->online)
        return x->online ? -1 : 1;
    return strcasecmp(x->nick, y->nick);
}

static void draw_panel(struct chat_ui *ui)
{
    if (!ui->panel)
        return;
    int h = getmaxy(ui->panel);
    werase(ui->panel);
    mvwvline(ui->panel, 0, 0, '|', h);
    mvwaddstr(ui->panel, 0, 2, ui->panel_focus ? "users (Enter)" : "users (F2)");
    int first = ui->sel >= h - 1 ? ui->sel - (h - 2) : 0;
    for (int i = first, y = 1; i < ui->nusers && y < h; i++, y++) {
        struct user *u = &ui->users[i];
        bool hi = ui->panel_focus && i == ui->sel;
        if (hi)
            wattron(ui->panel, A_REVERSE);
        if (!u->online)
            wattron(ui->panel, A_DIM);
        mvwprintw(ui->panel, y, 2, "%c %-.*s", u->online ? '*' : ' ', PANEL_W - 5, u->nick);
        wattroff(ui->panel, A_REVERSE | A_DIM);
    }
    wnoutrefresh(ui->panel);
}

static void draw_status(struct chat_ui *ui)
{
    werase(ui->status);
    mvwprintw(ui->status, 0, 0, " room %s | %d online | %s | %s |", ui->room, ui->online,
              ui->state, ui->nick);
    for (int i = 0; i < ui->ntabs; i++)
        wprintw(ui->status, i == ui->active ? " [%s]" : " %s%s", ui->tabs[i],
                i != ui->active && ui->unread[i] ? "*" : "");
    if (ui->scroll)
        wprintw(ui->status, " | scrolled back (PgDn)");
    if (ui->quit_armed)
        wprintw(ui->status, " | Ctrl-C again to quit");
    wnoutrefresh(ui->status);
}

static void draw_input(struct chat_ui *ui)
{
    int w = getmaxx(ui->input) - 3;
    werase(ui->input);
    mvwaddstr(ui->input, 0, 0, "> ");
    /* Start far enough right that the cursor is visible. */
    size_t from = 0;
    int col = 0;
    for (size_t i = ui->cur; i > 0; i--) {
        if (col + cols_of(ui->in[i - 1]) > w)
            break;
        col += cols_of(ui->in[i - 1]);
        from = i - 1;
    }
    if (ui->cur == 0)
        from = 0;
    size_t to = from;
    int used = 0;
    while (to < ui->in_len && used + cols_of(ui->in[to]) <= w)
        used += cols_of(ui->in[to++]);
    waddnwstr(ui->input, ui->in + from, (int)(to - from));
    int cx = 2;
    for (size_t i = from; i < ui->cur; i++)
        cx += cols_of(ui->in[i]);
    wmove(ui->input, 0, cx);
    wnoutrefresh(ui->input); /* last: the cursor stays on the input line */
}

static void redraw(struct chat_ui *ui)
{
    draw_pane(ui);
    draw_panel(ui);
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
    raw(); /* Ctrl-C is a key here: it asks before quitting */
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
    snprintf(ui->tabs[0], sizeof ui->tabs[0], "%s", room);
    ui->ntabs = 1;
    layout(ui);
    redraw(ui);
    return ui;
}

void chat_ui_close(struct chat_ui *ui)
{
    for (size_t i = 0; i < ui->count; i++)
        free(entry_at(ui, i)->w);
    for (int i = 0; i < ui->hist_n; i++)
        free(ui->hist[i]);
    WINDOW *w[] = {ui->pane, ui->panel, ui->status, ui->input};
    for (size_t i = 0; i < 4; i++)
        if (w[i])
            delwin(w[i]);
    endwin();
    free(ui);
}

void chat_ui_resize(struct chat_ui *ui)
{
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col)
        resizeterm(ws.ws_row, ws.ws_col);
    layout(ui);
    clearok(curscr, TRUE);
    redraw(ui);
}

/* UTF-8 to a malloc'd wide string; invalid bytes become '?'. */
static wchar_t *widen(const char *s, size_t *n)
{
    size_t len = strlen(s);
    wchar_t *w = malloc((len + 1) * sizeof *w);
    if (!w)
        return NULL;
    mbstate_t ps;
    memset(&ps, 0, sizeof ps);
    size_t k = 0;
    while (*s) {
        wchar_t c;
        size_t r = mbrtowc(&c, s, strlen(s), &ps);
        if (r == (size_t)-1 || r == (size_t)-2 || r == 0) {
            c = L'?';
            r = 1;
            memset(&ps, 0, sizeof ps);
        }
        w[k++] = iswprint((wint_t)c) ? c : L'?';
        s += r;
    }
    w[k] = 0;
    *n = k;
    return w;
}

void chat_ui_add_to(struct chat_ui *ui, int tab, const char *hhmmss, const char *nick,
                    const char *text)
{
    if (ui->count == SS_CHAT_SCROLLBACK) {
        free(entry_at(ui, 0)->w);
        ui->first = (ui->first + 1) % SS_CHAT_SCROLLBACK;
        ui->count--;
    }
    char *full = malloc(strlen(text) + 32);
    if (!full)
        return;
    if (hhmmss && *hhmmss)
        sprintf(full, "[%s] %s", hhmmss, text);
    else
        strcpy(full, text);
    struct entry *e = entry_at(ui, ui->count);
    *e = (struct entry){.tab = tab};
    e->w = widen(full, &e->wn);
    free(full);
    if (!e->w)
        return;
    ui->count++;
    if (nick && *nick) {
        size_t nn;
        wchar_t *wn = widen(nick, &nn);
        wchar_t *at = wn && nn ? wcsstr(e->w, wn) : NULL;
        if (at) {
            e->nick_at = (size_t)(at - e->w);
            e->nick_len = nn;
            e->colour = nick_colour(nick);
        }
        free(wn);
    }
    if (tab != ui->active && tab < TABS_MAX)
        ui->unread[tab] = true;
    if (ui->scroll && tab == ui->active)
        ui->scroll += rows_of(e, getmaxx(ui->pane)); /* keep the view still */
    redraw(ui);
}

void chat_ui_add(struct chat_ui *ui, const char *hhmmss, const char *nick, const char *text)
{
    chat_ui_add_to(ui, 0, hhmmss, nick, text);
}

int chat_ui_tab(struct chat_ui *ui, const char *name)
{
    for (int i = 1; i < ui->ntabs; i++)
        if (!strcasecmp(ui->tabs[i], name))
            return i;
    if (ui->ntabs == TABS_MAX)
        return 0;
    snprintf(ui->tabs[ui->ntabs], sizeof ui->tabs[0], "%s", name);
    ui->unread[ui->ntabs] = false;
    draw_status(ui);
    doupdate();
    return ui->ntabs++;
}

int chat_ui_active(const struct chat_ui *ui, const char **name)
{
    if (name)
        *name = ui->tabs[ui->active];
    return ui->active;
}

void chat_ui_room(struct chat_ui *ui, const char *room)
{
    snprintf(ui->room, sizeof ui->room, "%s", room);
    snprintf(ui->tabs[0], sizeof ui->tabs[0], "%s", room);
}

void chat_ui_nick(struct chat_ui *ui, const char *nick)
{
    snprintf(ui->nick, sizeof ui->nick, "%s", nick);
    draw_status(ui);
    draw_input(ui);
    doupdate();
}

void chat_ui_status(struct chat_ui *ui, int online, const char *state)
{
    ui->online = online;
    snprintf(ui->state, sizeof ui->state, "%s", state);
    draw_status(ui);
    draw_input(ui);
    doupdate();
}

void chat_ui_user(struct chat_ui *ui, const char *nick, bool online, int64_t seen_ms)
{
    int i = 0;
    while (i < ui->nusers && strcasecmp(ui->users[i].nick, nick))
        i++;
    if (seen_ms < 0) {
        if (i < ui->nusers)
            ui->users[i] = ui->users[--ui->nusers];
    } else {
        if (i == ui->nusers) {
            if (ui->nusers == USERS_MAX)
                return;
            ui->nusers++;
        }
        struct user *u = &ui->users[i];
        snprintf(u->nick, sizeof u->nick, "%s", nick);
        u->online = online;
        u->seen = seen_ms;
    }
    qsort(ui->users, (size_t)ui->nusers, sizeof ui->users[0], user_cmp);
    if (ui->sel >= ui->nusers)
        ui->sel = ui->nusers ? ui->nusers - 1 : 0;
    draw_panel(ui);
    draw_input(ui);
    doupdate();
}

/* ---- input editing ------------------------------------------------------- */

static void put_line(struct chat_ui *ui, const char *s)
{
    size_t n;
    wchar_t *w = widen(s, &n);
    if (!w)
        return;
    if (n > sizeof ui->in / sizeof ui->in[0] - 1)
        n = sizeof ui->in / sizeof ui->in[0] - 1;
    wmemcpy(ui->in, w, n);
    ui->in_len = ui->cur = n;
    free(w);
}

static size_t to_utf8(const wchar_t *w, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    mbstate_t ps;
    memset(&ps, 0, sizeof ps);
    for (size_t i = 0; i < n; i++) {
        char mb[MB_LEN_MAX];
        size_t r = wcrtomb(mb, w[i], &ps);
        if (r == (size_t)-1 || k + r + 1 > cap)
            break;
        memcpy(out + k, mb, r);
        k += r;
    }
    out[k] = '\0';
    return k;
}

static void delete_range(struct chat_ui *ui, size_t a, size_t b)
{
    wmemmove(ui->in + a, ui->in + b, ui->in_len - b);
    ui->in_len -= b - a;
    ui->cur = a;
}

static void history_add(struct chat_ui *ui, const char *line)
{
    if (ui->hist_n && !strcmp(ui->hist[ui->hist_n - 1], line))
        return;
    if (ui->hist_n == HIST_MAX) {
        free(ui->hist[0]);
        memmove(ui->hist, ui->hist + 1, (HIST_MAX - 1) * sizeof ui->hist[0]);
        ui->hist_n--;
    }
    ui->hist[ui->hist_n++] = strdup(line);
    if (!ui->hist[ui->hist_n - 1])
        ui->hist_n--;
}

/* Tab: complete the word before the cursor with the next nick that
 * starts with it (again: the one after). */
static void complete(struct chat_ui *ui)
{
    if (!ui->completing) {
        ui->comp_at = ui->cur;
        while (ui->comp_at > 0 && ui->in[ui->comp_at - 1] != L' ')
            ui->comp_at--;
        ui->comp_next = 0;
        ui->completing = true;
    }
    char prefix[SS_CHAT_NICK_MAX * 4 + 1];
    if (ui->comp_next == 0) {
        ui->typed_n = ui->cur - ui->comp_at > SS_CHAT_NICK_MAX ? SS_CHAT_NICK_MAX
                                                               : ui->cur - ui->comp_at;
        wmemcpy(ui->typed, ui->in + ui->comp_at, ui->typed_n);
    }
    to_utf8(ui->typed, ui->typed_n, prefix, sizeof prefix);
    for (int k = 0; k < ui->nusers; k++) {
        int i = (ui->comp_next + k) % ui->nusers;
        if (strncasecmp(ui->users[i].nick, prefix, strlen(prefix)))
            continue;
        char with[SS_CHAT_NICK_MAX + 3];
        snprintf(with, sizeof with, "%s%s", ui->users[i].nick, ui->comp_at == 0 ? ": " : " ");
        size_t n;
        wchar_t *w = widen(with, &n);
        if (!w || ui->in_len - (ui->cur - ui->comp_at) + n >= sizeof ui->in / sizeof ui->in[0]) {
            free(w);
            return;
        }
        delete_range(ui, ui->comp_at, ui->cur);
        wmemmove(ui->in + ui->comp_at + n, ui->in + ui->comp_at, ui->in_len - ui->comp_at);
        wmemcpy(ui->in + ui->comp_at, w, n);
        ui->in_len += n;
        ui->cur = ui->comp_at + n;
        free(w);
        ui->comp_next = i + 1;
        return;
    }
}

static int panel_key(struct chat_ui *ui, int r, wint_t ch, char *line, size_t cap)
{
    if (r == KEY_CODE_YES && ch == KEY_UP && ui->sel > 0)
        ui->sel--;
    else if (r == KEY_CODE_YES && ch == KEY_DOWN && ui->sel + 1 < ui->nusers)
        ui->sel++;
    else if ((r == KEY_CODE_YES && (ch == KEY_F(2) || ch == KEY_LEFT)) || ch == 27)
        ui->panel_focus = false;
    else if ((ch == '\r' || ch == '\n' || (r == KEY_CODE_YES && ch == KEY_ENTER)) &&
             ui->nusers) {
        ui->panel_focus = false;
        snprintf(line, cap, "%s", ui->users[ui->sel].nick);
        redraw(ui);
        return CHAT_UI_OPEN;
    }
    redraw(ui);
    return -1;
}

int chat_ui_key(struct chat_ui *ui, char *line, size_t cap)
{
    wint_t ch;
    int r = wget_wch(ui->input, &ch);
    if (r == ERR)
        return 0;
    if (ui->panel_focus)
        return panel_key(ui, r, ch, line, cap);
    bool was_completing = ui->completing;
    ui->completing = false;
    if (!(r == OK && ch == 3))
        ui->quit_armed = false;
    int page = getmaxy(ui->pane) > 2 ? getmaxy(ui->pane) - 1 : 1;
    if (r == KEY_CODE_YES) {
        switch (ch) {
        case KEY_PPAGE: ui->scroll += page; break;
        case KEY_NPAGE: ui->scroll = ui->scroll > page ? ui->scroll - page : 0; break;
        case KEY_RESIZE: layout(ui); break;
        case KEY_LEFT: if (ui->cur) ui->cur--; break;
        case KEY_RIGHT: if (ui->cur < ui->in_len) ui->cur++; break;
        case KEY_HOME: ui->cur = 0; break;
        case KEY_END: ui->cur = ui->in_len; break;
        case KEY_BACKSPACE:
            if (ui->cur)
                delete_range(ui, ui->cur - 1, ui->cur);
            break;
        case KEY_DC:
            if (ui->cur < ui->in_len)
                delete_range(ui, ui->cur, ui->cur + 1);
            break;
        case KEY_UP:
            if (ui->hist_pos > 0)
                put_line(ui, ui->hist[--ui->hist_pos]);
            break;
        case KEY_DOWN:
            if (ui->hist_pos < ui->hist_n - 1) {
                put_line(ui, ui->hist[++ui->hist_pos]);
            } else {
                ui->hist_pos = ui->hist_n;
                ui->in_len = ui->cur = 0;
            }
            break;
        case KEY_F(2):
            ui->panel_focus = ui->nusers > 0;
            break;
        case KEY_ENTER:
            goto enter;
        default:
            break;
        }
        redraw(ui);
        return -1;
    }
    switch (ch) {
    case 3: /* Ctrl-C: clear the line, or ask, or quit */
        if (ui->in_len) {
            ui->in_len = ui->cur = 0;
        } else if (ui->quit_armed) {
            return CHAT_UI_QUIT;
        } else {
            ui->quit_armed = true;
        }
        break;
    case 4: /* Ctrl-D */
        if (!ui->in_len)
            return CHAT_UI_QUIT;
        if (ui->cur < ui->in_len)
            delete_range(ui, ui->cur, ui->cur + 1);
        break;
    case 1: ui->cur = 0; break;                                    /* Ctrl-A */
    case 5: ui->cur = ui->in_len; break;                           /* Ctrl-E */
    case 2: if (ui->cur) ui->cur--; break;                         /* Ctrl-B */
    case 6: if (ui->cur < ui->in_len) ui->cur++; break;            /* Ctrl-F */
    case 11: ui->in_len = ui->cur; break;                          /* Ctrl-K */
    case 21: delete_range(ui, 0, ui->cur); break;                  /* Ctrl-U */
    case 23: {                                                     /* Ctrl-W */
        size_t a = ui->cur;
        while (a > 0 && ui->in[a - 1] == L' ')
            a--;
        while (a > 0 && ui->in[a - 1] != L' ')
            a--;
        delete_range(ui, a, ui->cur);
        break;
    }
    case 14: /* Ctrl-N, Ctrl-P: tabs */
    case 16:
        ui->active = (ui->active + (ch == 14 ? 1 : ui->ntabs - 1)) % ui->ntabs;
        ui->unread[ui->active] = false;
        ui->scroll = 0;
        break;
    case '\t':
        ui->completing = was_completing;
        complete(ui);
        break;
    case 127:
    case 8:
        if (ui->cur)
            delete_range(ui, ui->cur - 1, ui->cur);
        break;
    case '\r':
    case '\n':
        goto enter;
    default:
        if (ch >= 0x20 && ui->in_len < sizeof ui->in / sizeof ui->in[0] - 1) {
            wmemmove(ui->in + ui->cur + 1, ui->in + ui->cur, ui->in_len - ui->cur);
            ui->in[ui->cur++] = (wchar_t)ch;
            ui->in_len++;
        }
        break;
    }
    redraw(ui);
    return -1;
enter:;
    size_t n = to_utf8(ui->in, ui->in_len, line, cap);
    if (n)
        history_add(ui, line);
    ui->hist_pos = ui->hist_n;
    ui->in_len = ui->cur = 0;
    ui->scroll = 0;
    redraw(ui);
    return n ? (int)n : -1;
}
