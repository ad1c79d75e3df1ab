/* Internal text helpers shared by the library's formatters. */
#ifndef SS_CORE_FMT_H
#define SS_CORE_FMT_H

#include <stddef.h>

/* Append to buf (len bytes) at *n with snprintf semantics: *n counts what
 * the full text needs, even past len; buf stays terminated. */
void ss__fmt_app(char *buf, size_t len, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
