/* Internal text helpers shared by the library's formatters. */
#include "core/fmt.h"

#include <stdarg.h>
#include <stdio.h>

void ss__fmt_app(char *buf, size_t len, size_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(*n < len ? buf + *n : NULL, *n < len ? len - *n : 0, fmt, ap);
    va_end(ap);
    if (w > 0)
        *n += (size_t)w;
}
