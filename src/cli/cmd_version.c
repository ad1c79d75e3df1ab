/* sockstack version */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

#ifndef SS_VERSION
#define SS_VERSION "unknown"
#endif

int cmd_version(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("Usage: sockstack version\n\nPrint the version and exit.\n");
        return CLI_OK;
    }
    if (argc > 1)
        return cli_usage_error("version ", "unexpected argument '%s'", argv[1]);
    printf("sockstack %s\n", SS_VERSION);
    return CLI_OK;
}
