/* Printing, logging and number parsing for the CLI (see cli.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "cli/cli.h"
#include "sockstack/text.h"

int cli_log_level = CLI_LOG_INFO;

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sockstack: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void cli_vlog(int level, const char *fmt, va_list ap)
{
    if (cli_log_level < level)
        return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    char line[1024], safe[2048];
    int n = vsnprintf(line, sizeof line, fmt, ap);
    /* Names and text from peers reach log lines: no control code gets to
     * the terminal (ESC sequences, a bare CR rewriting the line). */
    ss_text_escape(line, n < 0 ? 0 : (size_t)n < sizeof line ? (size_t)n : sizeof line - 1,
                   safe, sizeof safe, SS_TEXT_KEEP_BACKSLASH); /* the server's are escaped */
    /* One write per line so lines from several workers never interleave. */
    fprintf(stderr, "%s.%03ld %s\n", ts, (long)(tv.tv_usec / 1000), safe);
}

void cli_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cli_vlog(CLI_LOG_INFO, fmt, ap);
    va_end(ap);
}

void cli_debug(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cli_vlog(CLI_LOG_DEBUG, fmt, ap);
    va_end(ap);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sockstack: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fprintf(stderr, "Try 'sockstack %s--help'.\n", cmd && *cmd ? cmd : "");
    return CLI_USAGE;
}

int cli_parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max,
                  uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+') {
        cli_error("%s: '%s' is not a whole number", opt, s ? s : "");
        return -1;
    }
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0') {
        cli_error("%s: '%s' is not a whole number", opt, s);
        return -1;
    }
    if (errno == ERANGE || v < min || v > max) {
        cli_error("%s: %s is out of range (%llu to %llu)", opt, s,
                  (unsigned long long)min, (unsigned long long)max);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_scaled(const char *opt, const char *s, unsigned base, uint64_t min,
                     uint64_t max, uint64_t *out)
{
    char buf[64];
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= sizeof buf) {
        cli_error("%s: '%s' is not a number", opt, s ? s : "");
        return -1;
    }
    memcpy(buf, s, n + 1);
    uint64_t mul = 1;
    switch (buf[n - 1]) {
    case 'k': case 'K': mul = base; break;
    case 'm': case 'M': mul = (uint64_t)base * base; break;
    case 'g': case 'G': mul = (uint64_t)base * base * base; break;
    }
    if (mul > 1)
        buf[--n] = '\0';
    char *end;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (n == 0 || buf[0] < '0' || buf[0] > '9' || *end != '\0') {
        cli_error("%s: '%s' is not a number", opt, s);
        return -1;
    }
    if (errno == ERANGE || v > max / mul || v * mul < min) {
        cli_error("%s: %s is out of range (%llu to %llu)", opt, s, (unsigned long long)min,
                  (unsigned long long)max);
        return -1;
    }
    *out = v * mul;
    return 0;
}

int cli_parse_int(const char *opt, const char *s, int min, int max, int *out)
{
    uint64_t v;
    if (min < 0) {
        errno = 0;
        char *end;
        long long x = s && *s ? strtoll(s, &end, 10) : 0;
        if (!s || !*s || *end != '\0') {
            cli_error("%s: '%s' is not a whole number", opt, s ? s : "");
            return -1;
        }
        if (errno == ERANGE || x < min || x > max) {
            cli_error("%s: %s is out of range (%d to %d)", opt, s, min, max);
            return -1;
        }
        *out = (int)x;
        return 0;
    }
    if (cli_parse_u64(opt, s, (uint64_t)min, (uint64_t)max, &v) < 0)
        return -1;
    *out = (int)v;
    return 0;
}

int cli_parse_double(const char *opt, const char *s, double min, double max,
                     double *out)
{
    errno = 0;
    char *end;
    double v = s && *s ? strtod(s, &end) : NAN;
    if (!s || !*s || *end != '\0' || !isfinite(v)) {
        cli_error("%s: '%s' is not a number", opt, s ? s : "");
        return -1;
    }
    if (v < min || v > max) {
        cli_error("%s: %s is out of range (%g to %g)", opt, s, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

/* The terminal's width, else $COLUMNS, else 80. */
int cli_term_width(void)
{
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    const char *c = getenv("COLUMNS");
    int n = c ? atoi(c) : 0;
    return n >= 20 ? n : 80;
}

