/* Printing, logging and number parsing for the CLI (see cli.h). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "cli/cli.h"
#include "sockstack/server.h"
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

volatile int cli_server_errors;

void cli_server_log(int level, const char *msg, void *arg)
{
    switch (level) {
    case SS_LOG_ERROR:
        cli_server_errors = 1;
        cli_error("%s", msg);
        break;
    case SS_LOG_WARN:
    case SS_LOG_INFO:
        cli_log("%s", msg);
        break;
    default:
        cli_debug("%s", msg);
        break;
    }
}

/* "connect " -> "connect: " for the line's prefix, "" stays "". */
static void usage_line(const char *cmd, const char *msg)
{
    size_t n = cmd ? strlen(cmd) : 0;
    while (n && cmd[n - 1] == ' ')
        n--;
    if (n)
        fprintf(stderr, "sockstack: %.*s: %s (see 'sockstack %.*s --help')\n", (int)n, cmd, msg,
                (int)n, cmd);
    else
        fprintf(stderr, "sockstack: %s (see 'sockstack --help')\n", msg);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    usage_line(cmd, msg);
    return CLI_USAGE;
}

/* Optimal string alignment distance, capped: > cap is reported as cap + 1. */
static size_t edit_distance(const char *a, size_t la, const char *b, size_t lb, size_t cap)
{
    enum { MAXLEN = 64 };
    if (la > MAXLEN || lb > MAXLEN)
        return cap + 1;
    size_t d[MAXLEN + 1][MAXLEN + 1];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t v = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < v)
                v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[la][lb] > cap ? cap + 1 : d[la][lb];
}

int cli_closest(const char *word, size_t wlen, const char *const *names, size_t n)
{
    size_t cap = wlen > 2 ? 2 : wlen ? wlen - 1 : 0;
    int best = -1;
    size_t best_d = cap + 1;
    for (size_t i = 0; i < n; i++) {
        size_t d = edit_distance(word, wlen, names[i], strlen(names[i]), cap);
        if (d < best_d) {
            best_d = d;
            best = (int)i;
        }
    }
    return best;
}

int cli_unknown_command(const char *cmd, const char *word, const char *const *names, size_t n)
{
    int best = cli_closest(word, strlen(word), names, n);
    if (best >= 0)
        return cli_usage_error(cmd, "unknown command '%s'; did you mean %s?", word, names[best]);
    return cli_usage_error(cmd, "unknown command '%s'", word);
}

static const char *getopt_short;
static const struct option *getopt_long_table;

int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts)
{
    opterr = 0;
    getopt_short = shortopts;
    getopt_long_table = longopts;
    return getopt_long(argc, argv, shortopts, longopts, NULL);
}

/* The long option named exactly name[0..len), or NULL. */
static const struct option *long_named(const char *name, size_t len)
{
    for (const struct option *o = getopt_long_table; o && o->name; o++)
        if (strlen(o->name) == len && !strncmp(o->name, name, len))
            return o;
    return NULL;
}

static int long_option_error(const char *cmd, const char *arg)
{
    const char *name = arg + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    char msg[512];
    const struct option *o = long_named(name, len);
    if (o && eq && o->has_arg == no_argument) {
        snprintf(msg, sizeof msg, "option '--%s' takes no value", o->name);
        usage_line(cmd, msg);
        return CLI_USAGE;
    }
    if (o) {
        snprintf(msg, sizeof msg, "option '--%s' needs a value", o->name);
        usage_line(cmd, msg);
        return CLI_USAGE;
    }
    /* An abbreviation of more than one option. */
    int nmatch = 0, off = 0;
    off = snprintf(msg, sizeof msg, "option '--%.*s' is ambiguous: could be", (int)len, name);
    for (const struct option *p = getopt_long_table; p && p->name; p++)
        if (!strncmp(p->name, name, len) && off > 0 && (size_t)off < sizeof msg) {
            off += snprintf(msg + off, sizeof msg - (size_t)off, "%s --%s", nmatch ? "," : "",
                            p->name);
            nmatch++;
        }
    if (nmatch > 1) {
        usage_line(cmd, msg);
        return CLI_USAGE;
    }
    const char *names[256];
    size_t n = 0;
    for (const struct option *p = getopt_long_table; p && p->name && n < 256; p++)
        names[n++] = p->name;
    int best = cli_closest(name, len, names, n);
    if (best >= 0)
        snprintf(msg, sizeof msg, "unknown option '--%.*s'; did you mean --%s?", (int)len, name,
                 names[best]);
    else
        snprintf(msg, sizeof msg, "unknown option '--%.*s'", (int)len, name);
    usage_line(cmd, msg);
    return CLI_USAGE;
}

int cli_option_error(const char *cmd, int c, char **argv)
{
    char msg[512];
    const char *arg = optind > 0 ? argv[optind - 1] : NULL;
    if (c != '?' && c != ':') {
        snprintf(msg, sizeof msg, "option '%s' is not handled here", arg ? arg : "?");
        usage_line(cmd, msg);
        return CLI_USAGE;
    }
    /* A long option: getopt moved past it and left optopt 0 (unknown or
     * ambiguous) or that option's value (a value missing or not wanted). */
    if (arg && !strncmp(arg, "--", 2) && arg[2]) {
        const char *eq = strchr(arg + 2, '=');
        const struct option *o =
            long_named(arg + 2, eq ? (size_t)(eq - arg - 2) : strlen(arg + 2));
        if (optopt == 0 || (o && o->val == optopt))
            return long_option_error(cmd, arg);
    }
    const char *s = getopt_short && optopt ? strchr(getopt_short, optopt) : NULL;
    if (s && s[1] == ':')
        snprintf(msg, sizeof msg, "option '-%c' needs a value", optopt);
    else if (optopt > ' ' && optopt < 127)
        snprintf(msg, sizeof msg, "unknown option '-%c'", optopt);
    else
        snprintf(msg, sizeof msg, "unknown option '%s'", arg ? arg : "?");
    usage_line(cmd, msg);
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

int cli_parse_source_pattern(const char *opt, const char *s, bool *zeros)
{
    if (strcmp(s, "prng") && strcmp(s, "zero")) {
        cli_error("%s: '%s' is not a pattern (prng, zero)", opt, s);
        return -1;
    }
    *zeros = s[0] == 'z';
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

