/* Every command alike: usage errors are one line and exit 2, with "did you
 * mean" for a mistyped option or command; `help CMD` is `CMD --help`. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

TestSuite(cli_usage, .timeout = 60);

/* Run args; assert exit status and that stderr is exactly want (one line). */
static void fails_with(const char *const args[], int status, const char *want)
{
    struct th_result r = th_run_cli(args, 20000);
    cr_assert_eq(r.status, status, "status %d, stderr: %s", r.status, r.err);
    cr_assert_str_eq(r.err, want);
    cr_assert_str_eq(r.out, "");
    th_result_free(&r);
}

/* A usage error: exit 2. */
static void usage_error(const char *const args[], const char *want)
{
    fails_with(args, 2, want);
}

Test(cli_usage, mistyped_long_option_is_one_line_with_a_suggestion)
{
    usage_error((const char *const[]){"serve", "echo", "--uper", NULL},
                "sockstack: serve: unknown option '--uper'; did you mean --upper? "
                "(see 'sockstack serve --help')\n");
    usage_error((const char *const[]){"exec", "--nodely", "h", "1", "id", NULL},
                "sockstack: exec: unknown option '--nodely'; did you mean --nodelay? "
                "(see 'sockstack exec --help')\n");
    usage_error((const char *const[]){"connect", "--sndbfu", "64k", "h", "1", NULL},
                "sockstack: connect: unknown option '--sndbfu'; did you mean --sndbuf? "
                "(see 'sockstack connect --help')\n");
}

Test(cli_usage, far_option_has_no_suggestion)
{
    usage_error((const char *const[]){"connect", "--uper", "h", "1", NULL},
                "sockstack: connect: unknown option '--uper' (see 'sockstack connect --help')\n");
    usage_error((const char *const[]){"keygen", "-Z", NULL},
                "sockstack: keygen: unknown option '-Z' (see 'sockstack keygen --help')\n");
}

Test(cli_usage, missing_or_unwanted_value)
{
    usage_error((const char *const[]){"serve", "echo", "--port", NULL},
                "sockstack: serve: option '--port' needs a value "
                "(see 'sockstack serve --help')\n");
    usage_error((const char *const[]){"ping", "-c", NULL},
                "sockstack: ping: option '-c' needs a value (see 'sockstack ping --help')\n");
    usage_error((const char *const[]){"serve", "echo", "--upper=1", NULL},
                "sockstack: serve: option '--upper' takes no value "
                "(see 'sockstack serve --help')\n");
}

Test(cli_usage, mistyped_commands)
{
    usage_error((const char *const[]){"conect", "h", "1", NULL},
                "sockstack: unknown command 'conect'; did you mean connect? "
                "(see 'sockstack --help')\n");
    usage_error((const char *const[]){"xyzzy", NULL},
                "sockstack: unknown command 'xyzzy' (see 'sockstack --help')\n");
    usage_error((const char *const[]){"stack", "dmeo", NULL},
                "sockstack: stack: unknown command 'dmeo'; did you mean demo? "
                "(see 'sockstack stack --help')\n");
    usage_error((const char *const[]){"broadcast", "sned", NULL},
                "sockstack: broadcast: unknown command 'sned'; did you mean send? "
                "(see 'sockstack broadcast --help')\n");
    usage_error((const char *const[]){"serve", "ehco", NULL},
                "sockstack: serve: unknown service 'ehco'; did you mean echo? "
                "(see 'sockstack serve --help')\n");
}

/* `sockstack help CMD [SUB]` prints exactly what `CMD [SUB] --help` prints. */
static void same_help(const char *const help[], const char *const direct[])
{
    struct th_result a = th_run_cli(help, 20000), b = th_run_cli(direct, 20000);
    cr_assert_eq(a.status, 0, "stderr: %s", a.err);
    cr_assert_eq(b.status, 0, "stderr: %s", b.err);
    cr_assert_str_eq(a.out, b.out);
    cr_assert(strncmp(a.out, "Usage: sockstack ", 17) == 0, "%s", a.out);
    th_result_free(&a);
    th_result_free(&b);
}

Test(cli_usage, help_cmd_is_cmd_help)
{
    same_help((const char *const[]){"help", "connect", NULL},
              (const char *const[]){"connect", "--help", NULL});
    same_help((const char *const[]){"help", "put", NULL},
              (const char *const[]){"put", "--help", NULL});
    same_help((const char *const[]){"help", "serve", "echo", NULL},
              (const char *const[]){"serve", "echo", "--help", NULL});
    same_help((const char *const[]){"help", "stack", "up", NULL},
              (const char *const[]){"stack", "up", "--help", NULL});
    usage_error((const char *const[]){"help", "conect", NULL},
                "sockstack: unknown command 'conect'; did you mean connect? "
                "(see 'sockstack --help')\n");
}

Test(cli_usage, services_listed_by_name)
{
    struct th_result r = th_run_cli((const char *const[]){"--help", NULL}, 20000);
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "  serve        run a service: echo, discard, source, area, exec, "
                            "files, chat, udp-chat\n"), "%s", r.out);
    th_result_free(&r);
    r = th_run_cli((const char *const[]){"serve", "--help", NULL}, 20000);
    cr_assert_eq(r.status, 0);
    const char *names[] = {"echo", "discard", "source", "area", "exec", "files", "chat",
                           "udp-chat"};
    for (size_t i = 0; i < 8; i++) {
        char line[32];
        snprintf(line, sizeof line, "\n  %-12s ", names[i]);
        cr_assert(strstr(r.out, line), "%s missing: %s", names[i], r.out);
    }
    th_result_free(&r);
    usage_error((const char *const[]){"serve", NULL},
                "sockstack: serve: which service? (one of: echo, discard, source, area, exec, "
                "files, chat, udp-chat) (see 'sockstack serve --help')\n");
}

Test(cli_usage, chat_servers_are_checked)
{
    usage_error((const char *const[]){"chat", "--server", "1.2.3.4", "--name", "a", NULL},
                "sockstack: chat: --server: '1.2.3.4' is not HOST:PORT "
                "(see 'sockstack chat --help')\n");
    usage_error((const char *const[]){"chat", "--server", "::1:7", "--name", "a", NULL},
                "sockstack: chat: --server: '::1:7': an IPv6 address goes in brackets "
                "([::1]:7000) (see 'sockstack chat --help')\n");
    usage_error((const char *const[]){"chat", "--server", "[::1]:0", "--name", "a", NULL},
                "sockstack: chat: --server: '[::1]:0': the port is not a number from 1 "
                "to 65535 (see 'sockstack chat --help')\n");
    usage_error((const char *const[]){"chat", "--name", "a", NULL},
                "sockstack: chat: expected HOST PORT (or --server HOST:PORT) "
                "(see 'sockstack chat --help')\n");
    usage_error((const char *const[]){"chat", "h", "--server", "h:1", "--name", "a", NULL},
                "sockstack: chat: expected HOST PORT or only --server "
                "(see 'sockstack chat --help')\n");
    usage_error((const char *const[]){"chat", "h", "1", "--server-timeout", "0.1", "--name",
                                      "a", NULL},
                "sockstack: chat: --server-timeout: at least 0.2 s (or 0) "
                "(see 'sockstack chat --help')\n");
    /* The point-to-point steps: the relay cannot be skipped. */
    usage_error((const char *const[]){"chat", "h", "1", "--name", "a", "--p2p-skip",
                                      "punch,relay", NULL},
                "sockstack: chat: --p2p-skip: unknown step 'relay' (direct, punch, udp; "
                "the relay is always the last resort) (see 'sockstack chat --help')\n");
    usage_error((const char *const[]){"chat", "h", "1", "--name", "a", "--p2p-udp-timeout",
                                      "0.1", NULL},
                "sockstack: --p2p-udp-timeout: 0.1 is out of range (0.2 to 600)\n");
}

/* A Unix socket cannot be shared by workers (no SO_REUSEPORT): the server
 * library refuses it, and the CLI, which no longer checks it twice, says
 * so in the library's one line. */
Test(cli_usage, unix_socket_with_workers_is_refused_by_the_server_once)
{
    fails_with((const char *const[]){"serve", "echo", "-b", "unix:/tmp/ss-usage-workers.sock",
                                     "--workers", "2", NULL},
               1, "sockstack: echo: workers need SO_REUSEPORT, which Unix sockets lack\n");
}
