/* train/cli.c — shared command-line parsing of the tools (cli.h). */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_die(const char *tool, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", tool);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

static int is_known(const char *const *known, const char *flag) {
    for (int i = 0; known[i]; i++)
        if (!strcmp(known[i], flag)) return 1;
    return 0;
}

void cli_parse(const char *tool, int argc, char **argv, int first, const char *const *known, void (*help)(void),
               void (*on_flag)(void *ctx, const char *flag, const char *value), void *ctx) {
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            exit(0);
        }
        if (strncmp(a, "--", 2) != 0)
            cli_die(tool, CLI_EXIT_BAD_INPUT, "unexpected argument '%s' (flags start with --; see %s --help)", a, tool);
        char flag[64];
        const char *eq = strchr(a, '='), *val;
        snprintf(flag, sizeof flag, "%.*s", (int)(eq ? (size_t)(eq - a) : strlen(a)), a);
        if (!is_known(known, flag)) cli_die(tool, CLI_EXIT_BAD_INPUT, "unknown flag '%s' (see %s --help)", flag, tool);
        if (eq) val = eq + 1;
        else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) val = argv[++i];
        else cli_die(tool, CLI_EXIT_BAD_INPUT, "%s needs a value (see %s --help)", flag, tool);
        on_flag(ctx, flag, val);
    }
}
