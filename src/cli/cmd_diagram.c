/* sockstack diagram FILE.pcap: any capture drawn as a sequence diagram (on
 * the terminal, and as SVG) and plots (viz.h). Parse, read, draw. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sockstack/err.h"
#include "sockstack/viz.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: sockstack diagram [OPTIONS] FILE.pcap\n"
            "\n"
            "Draw one TCP connection of a capture (tcpdump's, tshark's, `stack demo\n"
            "--pcap`'s, `sniff -w`'s): a sequence diagram on the terminal, and with\n"
            "--svg the same as SVG; with --plot the time-sequence graph (data,\n"
            "retransmissions, ACK line, window line, SACK blocks), bytes in flight\n"
            "and RTT, with axes. Back-to-back segments are bundled into one arrow,\n"
            "waits are marked with the timer that ended them, TIME-WAIT is a span.\n"
            "\n"
            "  --width N     terminal diagram width (default: the terminal's, or 80)\n"
            "  --svg FILE    the sequence diagram as SVG\n"
            "  --plot FILE   the plots as SVG\n"
            "  --conn N      the Nth connection of the capture (default 0: the first)\n"
            "  --max N       records kept (default 200000)\n"
            "  -h, --help    show this help\n");
}

int cli_write_view(const char *opt, const char *path,
                   int (*fn)(const struct ss_viz *, FILE *), const struct ss_viz *v)
{
    FILE *f = fopen(path, "w");
    int rc = f ? fn(v, f) : -errno;
    if (f && fclose(f) != 0 && rc == 0)
        rc = -errno;
    if (rc < 0) {
        cli_error("%s %s: %s", opt, path, ss_strerror(rc));
        return CLI_RUNTIME;
    }
    return CLI_OK;
}

int cmd_diagram(int argc, char **argv)
{
    enum { O_WIDTH = 1000, O_SVG, O_PLOT, O_CONN, O_MAX };
    static const struct option opts[] = {
        {"width", required_argument, NULL, O_WIDTH},
        {"svg", required_argument, NULL, O_SVG},
        {"plot", required_argument, NULL, O_PLOT},
        {"conn", required_argument, NULL, O_CONN},
        {"max", required_argument, NULL, O_MAX},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    int width = 0, conn = 0, max = 200000, c;
    const char *svg = NULL, *plot = NULL;
    optind = 1;
    while ((c = cli_getopt(argc, argv, "h", opts)) != -1) {
        switch (c) {
        case O_WIDTH:
            if (cli_parse_int("--width", optarg, 60, 1000, &width) < 0)
                return CLI_USAGE;
            break;
        case O_SVG: svg = optarg; break;
        case O_PLOT: plot = optarg; break;
        case O_CONN:
            if (cli_parse_int("--conn", optarg, 0, 1 << 20, &conn) < 0)
                return CLI_USAGE;
            break;
        case O_MAX:
            if (cli_parse_int("--max", optarg, 100, 10000000, &max) < 0)
                return CLI_USAGE;
            break;
        case 'h': usage(stdout); return CLI_OK;
        default: return cli_option_error("diagram ", c, argv);
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("diagram ", optind == argc ? "missing FILE.pcap"
                                                          : "too many arguments");
    ss_viz *v;
    int rc = ss_viz_new((size_t)max, &v);
    if (rc < 0) {
        cli_error("%s", ss_strerror(rc));
        return CLI_RUNTIME;
    }
    char err[512] = "";
    int status = CLI_RUNTIME;
    rc = ss_viz_read_pcap(v, argv[optind], err, sizeof err);
    if (rc < 0) {
        cli_error("%s", err[0] ? err : ss_strerror(rc));
    } else if (ss_viz_select(v, conn) < 0) {
        cli_error("%s: no TCP connection number %d", argv[optind], conn);
    } else {
        rc = ss_viz_diagram_text(v, width ? width : cli_term_width(), stdout);
        status = CLI_OK;
        if (svg)
            status = cli_write_view("--svg", svg, ss_viz_diagram_svg, v);
        if (status == CLI_OK && plot)
            status = cli_write_view("--plot", plot, ss_viz_plot_svg, v);
    }
    ss_viz_free(v);
    return status;
}
