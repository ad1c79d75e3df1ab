/* sockstack: one binary, one subcommand per tool or service.
 *
 * main() only finds the subcommand; each cmd_*.c parses its own options,
 * calls the library and chooses the exit status (0 ok, 1 runtime, 2 usage).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/serve.h"

static const struct cli_cmd commands[] = {
    {"version", cmd_version, "print the version"},
    {"serve", cmd_serve, "run a service:"},
    {"connect", cmd_connect, "netcat-style client: stdin to a TCP/UDP/Unix peer, replies to stdout"},
    {"listen", cmd_listen, "netcat-style listener: talk with one peer at a time"},
    {"keygen", cmd_keygen, "write a new shared key file (mode 0600)"},
    {"exec", cmd_exec, "run a command on a serve exec server"},
    {"put", cmd_put, "send a file to a serve files server"},
    {"get", cmd_get, "fetch a file from a serve files server"},
    {"ls", cmd_ls, "list a directory of a serve files server"},
    {"chat", cmd_chat, "chat client (line mode, or a full screen on a terminal)"},
    {"udp-chat", cmd_udpchat, "chat over UDP datagrams (loss and reordering shown)"},
    {"stack", cmd_stack, "the user-space TCP/IP stack: up (TUN), demo, diagram"},
    {"link", cmd_link, "an impaired path (loss, delay, bandwidth...) between two TUN devices"},
    {"broadcast", cmd_broadcast, "send or listen for UDP broadcast datagrams"},
    {"discover", cmd_discover, "list services that answer a broadcast probe"},
    {"ping", cmd_ping, "ICMP echo over a raw socket, in iputils' format"},
    {"traceroute", cmd_traceroute, "the routers on the way: UDP, ICMP or TCP SYN probes"},
    {"sniff", cmd_sniff, "capture TCP (libpcap): segments, inferred states, retransmissions..."},
    {"diagram", cmd_diagram, "draw a capture: sequence diagram (terminal, SVG) and plots"},
    {"view", cmd_view, "one HTML page to step through a connection (no network needed)"},
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: sockstack COMMAND [OPTIONS] [ARGS]\n"
            "\n"
            "TCP and UDP made real and visible: socket tools on the kernel's\n"
            "sockets, and a user-space TCP/IP stack you can watch at work.\n"
            "\n"
            "Commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        fprintf(out, "  %-12s %s", commands[i].name, commands[i].summary);
        if (commands[i].fn == cmd_serve) /* its services, by name */
            for (size_t j = 0; j < serve_services_count; j++)
                fprintf(out, "%s %s", j ? "," : "", serve_services[j].name);
        fputc('\n', out);
    }
    fprintf(out, "\nRun 'sockstack COMMAND --help' or 'sockstack help COMMAND' for a command's\n"
                 "options.\n"
                 "See sockstack(1) for details.\n");
}

/* `sockstack help CMD ...` is `sockstack CMD ... --help`. */
static int help_for(int argc, char **argv, const struct cli_cmd *cmd)
{
    char *args[8];
    int n = 0;
    for (int i = 0; i < argc && n < 6; i++)
        args[n++] = argv[i];
    args[n++] = (char *)"--help";
    args[n] = NULL;
    return cmd->fn(n, args);
}

static int unknown_command(const char *name)
{
    enum { N = sizeof commands / sizeof commands[0] };
    const char *names[N];
    for (size_t i = 0; i < N; i++)
        names[i] = commands[i].name;
    return cli_unknown_command("", name, names, N);
}

static const struct cli_cmd *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(name, commands[i].name))
            return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    /* A peer that vanishes must give EPIPE, not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (!strcmp(argv[1], "help") && argc > 2) {
        const struct cli_cmd *cmd = find_command(argv[2]);
        return cmd ? help_for(argc - 2, argv + 2, cmd) : unknown_command(argv[2]);
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return CLI_OK;
    }
    if (!strcmp(argv[1], "--version"))
        return cmd_version(argc - 1, argv + 1);
    const struct cli_cmd *cmd = find_command(argv[1]);
    return cmd ? cmd->fn(argc - 1, argv + 1) : unknown_command(argv[1]);
}
