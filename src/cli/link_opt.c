/* One parser for the link model's options (see link_opt.h). */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/link_opt.h"
#include "sockstack/config.h"
#include "sockstack/relay.h"

/* "5", "5%", "0.5%" -> 0.05 ... as a probability. */
static int parse_pct(const char *opt, const char *s, double *out)
{
    char buf[64];
    size_t n = strlen(s);
    if (n >= sizeof buf) {
        cli_error("%s: '%s' is not a percentage", opt, s);
        return -1;
    }
    memcpy(buf, s, n + 1);
    if (n && buf[n - 1] == '%')
        buf[n - 1] = '\0';
    double v;
    if (cli_parse_double(opt, buf, 0, 100, &v) < 0)
        return -1;
    *out = v / 100.0;
    return 0;
}

/* Milliseconds, fractions allowed, to µs. */
static int parse_ms(const char *opt, const char *s, uint64_t *out_us)
{
    double v;
    if (cli_parse_double(opt, s, 0, 3600000, &v) < 0)
        return -1;
    *out_us = (uint64_t)(v * 1000.0 + 0.5);
    return 0;
}

/* Set one parameter of p: 0 or -1 after a message naming opt. */
static int apply(struct ss_sim_params *p, int c, const char *opt, const char *v)
{
    uint64_t n;
    switch (c) {
    case CLI_LINK_O_LOSS: return parse_pct(opt, v, &p->loss);
    case CLI_LINK_O_DELAY: return parse_ms(opt, v, &p->delay_us);
    case CLI_LINK_O_JITTER: return parse_ms(opt, v, &p->jitter_us);
    case CLI_LINK_O_BW:
        return cli_parse_scaled(opt, v, 1000, 1000, 100000000000ull, &p->bandwidth_bps);
    case CLI_LINK_O_DUP: return parse_pct(opt, v, &p->dup);
    case CLI_LINK_O_REORDER: return parse_pct(opt, v, &p->reorder);
    case CLI_LINK_O_REORDER_MS: return parse_ms(opt, v, &p->reorder_us);
    case CLI_LINK_O_CORRUPT: return parse_pct(opt, v, &p->corrupt);
    case CLI_LINK_O_QUEUE:
        if (cli_parse_u64(opt, v, 1, 1000000, &n) < 0)
            return -1;
        p->queue_limit = (size_t)n;
        return 0;
    }
    return -1;
}

static const struct option link_opts[] = {CLI_LINK_LONGOPTS};

void cli_link_init(struct cli_link *l, const struct ss_sim_params *defaults)
{
    memset(l, 0, sizeof *l);
    l->both = *defaults;
}

int cli_link_opt(struct cli_link *l, int c, const char *arg, const char *opt_name)
{
    if (c == CLI_LINK_O_DIR0 || c == CLI_LINK_O_DIR1) {
        l->dir_spec[c - CLI_LINK_O_DIR0] = arg;
        l->dir_opt[c - CLI_LINK_O_DIR0] = opt_name;
        l->given = true;
        return 0;
    }
    for (size_t i = 0; i < sizeof link_opts / sizeof link_opts[0]; i++) {
        if (link_opts[i].val != c)
            continue;
        char opt[32];
        snprintf(opt, sizeof opt, "--%s", link_opts[i].name);
        l->given = true;
        return apply(&l->both, c, opt, arg);
    }
    return 1;
}

/* "loss=1,delay=20" onto p. */
static int apply_spec(struct ss_sim_params *p, const char *opt, const char *spec)
{
    char *dup = strdup(spec), *save = NULL;
    int rc = 0;
    if (!dup) {
        cli_error("out of memory");
        return -1;
    }
    for (char *tok = strtok_r(dup, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        int code = 0;
        if (eq) {
            *eq = '\0';
            for (size_t i = 0; i < sizeof link_opts / sizeof link_opts[0]; i++)
                if (!strcmp(link_opts[i].name, tok))
                    code = link_opts[i].val;
        }
        if (!code) {
            cli_error("%s: '%s' is not KEY=VALUE with a key of loss, delay, jitter, "
                      "bandwidth, dup, reorder, reorder-ms, corrupt, queue",
                      opt, tok);
            rc = -1;
            break;
        }
        char what[64];
        snprintf(what, sizeof what, "%s %s=", opt, tok);
        rc = apply(p, code, what, eq + 1);
    }
    free(dup);
    return rc;
}

int cli_link_finish(const struct cli_link *l, struct ss_sim_params out[2])
{
    for (int d = 0; d < 2; d++) {
        out[d] = l->both;
        if (l->dir_spec[d] && apply_spec(&out[d], l->dir_opt[d], l->dir_spec[d]) < 0)
            return -1;
    }
    return 0;
}

void cli_link_help(FILE *out)
{
    fputs("  --loss PCT          drop probability, percent ('5' or '5%')\n"
          "  --delay MS          one-way delay in ms (fractions allowed)\n"
          "  --jitter MS         extra delay, uniform 0..MS (keeps order)\n"
          "  --bandwidth RATE    bit/s with k/M/G suffix (default unlimited)\n"
          "  --dup PCT           duplication probability (also --duplicate)\n"
          "  --reorder PCT       probability a packet is held back --reorder-ms\n"
          "  --reorder-ms MS     hold-back of a reordered packet (default 1)\n"
          "  --corrupt PCT       probability one bit is flipped\n",
          out);
    fprintf(out, "  --queue N           packets the link holds per direction, waiting or\n"
                 "                      in flight; beyond: drop-tail (default %d)\n",
            SS_SIM_QUEUE_LIMIT);
}

const char *cli_relay_stats_str(const struct ss_relay_stats *st)
{
    static char buf[384];
    snprintf(buf, sizeof buf,
             "received=%llu forwarded=%llu lost=%llu queue_drops=%llu duplicated=%llu "
             "corrupted=%llu reordered=%llu not_ipv4=%llu too_big=%llu write_drops=%llu",
             (unsigned long long)st->received, (unsigned long long)st->forwarded,
             (unsigned long long)st->link.lost, (unsigned long long)st->link.dropped_queue,
             (unsigned long long)st->link.duplicated, (unsigned long long)st->link.corrupted,
             (unsigned long long)st->link.reordered, (unsigned long long)st->not_ipv4,
             (unsigned long long)st->too_big, (unsigned long long)st->write_dropped);
    return buf;
}
