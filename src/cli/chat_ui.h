/* The chat client's ncurses screen: a scrolling message pane with tabs (the
 * room, and one per point-to-point chat), a side panel of users with their
 * presence, a status line and an input line that incoming messages never
 * disturb. Widths are screen columns (wcwidth), not characters. */
#ifndef SS_CLI_CHAT_UI_H
#define SS_CLI_CHAT_UI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct chat_ui;

/* Take over the terminal; NULL if it cannot. */
struct chat_ui *chat_ui_open(const char *room, const char *nick);
void chat_ui_close(struct chat_ui *ui);
/* Append a message line to the room's tab: time (may be ""), nick to colour
 * (may be NULL). */
void chat_ui_add(struct chat_ui *ui, const char *hhmmss, const char *nick,
                 const char *text);
/* The same into tab (0: the room). */
void chat_ui_add_to(struct chat_ui *ui, int tab, const char *hhmmss, const char *nick,
                    const char *text);
/* The tab named name (a peer's nick), opened if needed; its index. */
int chat_ui_tab(struct chat_ui *ui, const char *name);
/* The tab the user is typing in (0: the room) and its name. */
int chat_ui_active(const struct chat_ui *ui, const char **name);
void chat_ui_room(struct chat_ui *ui, const char *room);
void chat_ui_nick(struct chat_ui *ui, const char *nick);
void chat_ui_status(struct chat_ui *ui, int online, const char *state);
/* A user in the side panel: online or not, last seen (ms, 0 unknown);
 * seen_ms -1 removes the entry (a nick change). */
void chat_ui_user(struct chat_ui *ui, const char *nick, bool online, int64_t seen_ms);
/* Follow the terminal's new size (SIGWINCH) and redraw. */
void chat_ui_resize(struct chat_ui *ui);

enum { CHAT_UI_QUIT = -2, CHAT_UI_OPEN = -3 };
/* Handle pending keys. Returns the length of a completed input line (copied
 * to line, UTF-8, NUL-terminated), 0 when no more keys are pending, -1 for
 * a key that was handled (call again), CHAT_UI_QUIT (Ctrl-C twice, or
 * Ctrl-D on an empty line), or CHAT_UI_OPEN when a user was chosen in the
 * panel (F2, arrows, Enter): the nick is in line. */
int chat_ui_key(struct chat_ui *ui, char *line, size_t cap);

#endif
