/* train/cli.h — the command-line conventions every tool shares: flags as "--flag VALUE" or
 * "--flag=VALUE", --help/-h, and bad usage answered with one line "<tool>: <sentence>" on stderr
 * and exit status 2 (CLI_EXIT_BAD_INPUT). */
#ifndef SLA_CLI_H
#define SLA_CLI_H

#define CLI_EXIT_BAD_INPUT 2

/* Prints "tool: <message>" and exits with status `code`. */
void cli_die(const char *tool, int code, const char *fmt, ...) __attribute__((noreturn, format(printf, 3, 4)));

/* Walks argv[first..argc): --help or -h calls help() and exits 0; every other argument must be a
 * flag from `known` (NULL-terminated) with a value, handed to on_flag(ctx, flag, value). Anything
 * else (a stray word, an unknown flag, a missing value) is answered with cli_die. */
void cli_parse(const char *tool, int argc, char **argv, int first, const char *const *known, void (*help)(void),
               void (*on_flag)(void *ctx, const char *flag, const char *value), void *ctx);

#endif
