/* Text from the network made safe to print: file names, peer messages and
 * log lines can carry terminal control sequences (ESC [ ...) that would
 * otherwise recolour, retitle or rewrite the reader's terminal. */
#ifndef SOCKSTACK_TEXT_H
#define SOCKSTACK_TEXT_H

#include <stddef.h>

#include "sockstack/api.h"
SS_API_BEGIN

/* Copy len bytes of in to out (cap bytes, always NUL-terminated when cap >
 * 0) with every C0 control (0x00-0x1f, 0x7f) and C1 control (U+0080 to
 * U+009F, bytes C2 80 to C2 9F in UTF-8) written as \xNN per byte, every
 * byte that is not part of well-formed UTF-8 written the same way, and a
 * backslash doubled (unless flags has SS_TEXT_KEEP_BACKSLASH: then text
 * escaped once passes through unchanged a second time). Other UTF-8 is
 * copied unchanged. Returns the length of the whole escaped text (like
 * snprintf: more than cap - 1 means it was cut, never in the middle of an
 * escape). */
enum { SS_TEXT_KEEP_BACKSLASH = 1u };
size_t ss_text_escape(const void *in, size_t len, char *out, size_t cap, unsigned flags);

SS_API_END

#endif
