/* sockstack view (RUN.jsonl | FILE.pcap) -o view.html: the viewer page
 * (viz.h). Parse, read, write. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "sockstack/err.h"
#include "sockstack/viz.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: sockstack view (RUN.jsonl | FILE.pcap) -o VIEW.html [--conn N]\n"
            "\n"
            "Write one self-contained HTML page (no network: everything inline) to\n"
            "step through a TCP connection: a timeline scrubber over its packets\n"
            "(arrow keys too), each side's state at the cursor with RFC 9293's state\n"
            "diagram lit, every header field of the selected packet, the sequence\n"
            "diagram, and zoomable plots. The input is a capture (pcap, pcapng), or a\n"
            "run written by `stack demo --trace-json` (states as the stacks traced\n"
            "them). Open it with '#i=N' after the file name to start at packet N.\n"
            "\n"
            "  -o FILE       the page to write (required)\n"
            "  --conn N      the Nth connection (default 0: the first)\n"
            "  -h, --help    show this help\n");
}

/* A run of the stack's JSON trace, by its first character. */
static bool is_jsonl(const char *path)
{
    FILE *f = fopen(path, "r");
    int c = f ? fgetc(f) : EOF;
    if (f)
        fclose(f);
    return c == '{';
}

int cmd_view(int argc, char **argv)
{
    enum { O_CONN = 1000 };
    static const struct option opts[] = {
        {"conn", required_argument, NULL, O_CONN},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    const char *outp = NULL;
    int conn = 0, c;
    optind = 1;
    while ((c = cli_getopt(argc, argv, "o:h", opts)) != -1) {
        switch (c) {
        case 'o': outp = optarg; break;
        case O_CONN:
            if (cli_parse_int("--conn", optarg, 0, 1 << 20, &conn) < 0)
                return CLI_USAGE;
            break;
        case 'h': usage(stdout); return CLI_OK;
        default: return cli_option_error("view ", c, argv);
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("view ", optind == argc ? "missing RUN.jsonl or FILE.pcap"
                                                       : "too many arguments");
    if (!outp)
        return cli_usage_error("view ", "missing -o VIEW.html");
    const char *in = argv[optind];
    ss_viz *v;
    int rc = ss_viz_new(200000, &v);
    if (rc < 0) {
        cli_error("%s", ss_strerror(rc));
        return CLI_RUNTIME;
    }
    char err[512] = "";
    int status = CLI_RUNTIME;
    rc = is_jsonl(in) ? ss_viz_read_jsonl(v, in, err, sizeof err)
                      : ss_viz_read_pcap(v, in, err, sizeof err);
    if (rc < 0) {
        cli_error("%s", err[0] ? err : ss_strerror(rc));
    } else if (ss_viz_select(v, conn) < 0) {
        cli_error("%s: no TCP connection number %d", in, conn);
    } else {
        FILE *f = fopen(outp, "w");
        rc = f ? ss_viz_html(v, in, f) : -errno;
        if (f && fclose(f) != 0 && rc == 0)
            rc = -errno;
        if (rc < 0)
            cli_error("-o %s: %s", outp, ss_strerror(rc));
        else
            status = CLI_OK;
    }
    ss_viz_free(v);
    return status;
}
