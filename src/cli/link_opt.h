/* The link model's options (loss, delay, jitter, bandwidth, queue,
 * reordering, duplication, corruption), one parser for every command that
 * puts packets through it: `stack demo|diagram` (simulated link),
 * `stack up` (between the TUN device and the stack) and `link` (between
 * two TUN devices).
 *
 * Each option sets both directions. Commands with directions add two
 * options (e.g. --a-to-b, --b-to-a) whose value is KEY=VALUE,... with the
 * same keys ("loss=1,delay=20"); they override the both-direction options
 * for their direction, whatever the order on the command line.
 */
#ifndef SS_CLI_LINK_OPT_H
#define SS_CLI_LINK_OPT_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include "sockstack/link.h"

enum {
    CLI_LINK_O_LOSS = 0x4c00,
    CLI_LINK_O_DELAY,
    CLI_LINK_O_JITTER,
    CLI_LINK_O_BW,
    CLI_LINK_O_DUP,
    CLI_LINK_O_REORDER,
    CLI_LINK_O_REORDER_MS,
    CLI_LINK_O_CORRUPT,
    CLI_LINK_O_QUEUE,
    CLI_LINK_O_DIR0, /* the per-direction options */
    CLI_LINK_O_DIR1,
};

/* Entries for a getopt_long table. */
#define CLI_LINK_LONGOPTS                                                   \
    {"loss", required_argument, 0, CLI_LINK_O_LOSS},                        \
    {"delay", required_argument, 0, CLI_LINK_O_DELAY},                      \
    {"jitter", required_argument, 0, CLI_LINK_O_JITTER},                    \
    {"bandwidth", required_argument, 0, CLI_LINK_O_BW},                     \
    {"dup", required_argument, 0, CLI_LINK_O_DUP},                          \
    {"duplicate", required_argument, 0, CLI_LINK_O_DUP},                    \
    {"reorder", required_argument, 0, CLI_LINK_O_REORDER},                  \
    {"reorder-ms", required_argument, 0, CLI_LINK_O_REORDER_MS},            \
    {"corrupt", required_argument, 0, CLI_LINK_O_CORRUPT},                  \
    {"queue", required_argument, 0, CLI_LINK_O_QUEUE}
/* The two per-direction options, named by the command. */
#define CLI_LINK_DIR_LONGOPTS(name0, name1)                                 \
    {name0, required_argument, 0, CLI_LINK_O_DIR0},                         \
    {name1, required_argument, 0, CLI_LINK_O_DIR1}

struct cli_link {
    struct ss_sim_params both; /* what the plain options set */
    const char *dir_spec[2];   /* KEY=VALUE,... per direction, or NULL */
    const char *dir_opt[2];    /* their option names, for messages */
    bool given;                /* any link option on the command line */
};

/* Start from defaults (both directions). */
void cli_link_init(struct cli_link *l, const struct ss_sim_params *defaults);
/* Option c with value arg: 0 when taken, 1 when c is not a link option,
 * -1 after a message naming the option. opt_name is how the command
 * spells a per-direction option in messages. */
int cli_link_opt(struct cli_link *l, int c, const char *arg, const char *opt_name);
/* The parameters of both directions: 0, or -1 after a message. */
int cli_link_finish(const struct cli_link *l, struct ss_sim_params out[2]);
/* Print the options' help lines (indented as the other --help lines). */
void cli_link_help(FILE *out);

/* One direction's relay counters as "received=N forwarded=N lost=N ..."
 * (static buffer, valid until the next call). */
struct ss_relay_stats;
const char *cli_relay_stats_str(const struct ss_relay_stats *st);

#endif
