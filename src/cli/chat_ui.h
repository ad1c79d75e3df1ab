/* The chat client's ncurses screen: a scrolling message pane, a status line
 * and an input line that incoming messages never disturb. */
#ifndef SS_CLI_CHAT_UI_H
#define SS_CLI_CHAT_UI_H

#include <stddef.h>

struct chat_ui;

/* Take over the terminal; NULL if it cannot. */
struct chat_ui *chat_ui_open(const char *room, const char *nick);
void chat_ui_close(struct chat_ui *ui);
/* Append a message line: time (may be ""), nick to colour (may be NULL). */
void chat_ui_add(struct chat_ui *ui, const char *hhmmss, const char *nick,
                 const char *text);
void chat_ui_room(struct chat_ui *ui, const char *room);
void chat_ui_status(struct chat_ui *ui, int online, const char *state);

enum { CHAT_UI_QUIT = -2 };
/* Handle pending keys. Returns the length of a completed input line (copied
 * to line, UTF-8, NUL-terminated), 0 when no more keys are pending, -1 for
 * a key that was handled (call again), CHAT_UI_QUIT on Ctrl-D / Ctrl-C. */
int chat_ui_key(struct chat_ui *ui, char *line, size_t cap);

#endif
