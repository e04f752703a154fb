/* train/sla_train.c — `sla-train`: flow-matching fine-tuning of a Wan2.1-style DiT with SLA.
 *
 * sla-train --config FILE [--set key=value ...]   (or --help for every key)
 * The configuration is resolved (defaults, model preset, file, overrides in order), validated
 * before any work, printed, and stored in every checkpoint. Exit status: 0 done (or stopped by a
 * signal or stop_after, with a checkpoint), 1 a failure while running, 2 bad command line,
 * configuration or input files (one line naming what is wrong). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "dist.h"
#include "trainer.h"

#define TOOL "sla-train"
#define MAX_SETS 256

typedef struct options {
    const char *config;
    const char *sets[MAX_SETS];
    int nsets;
} options_t;

static void print_help(void) {
    printf("usage: sla-train --config FILE [--set key=value ...]\n"
           "Fine-tunes a Wan2.1-style video DiT with SLA attention on HDF5 latent datasets.\n"
           "  --config FILE     key = value lines with # comments (required)\n"
           "  --set key=value   override a key after the file (repeatable, applied in order)\n\n");
    config_print_help();
}

static void on_flag(void *ctx, const char *flag, const char *value) {
    options_t *o = ctx;
    if (!strcmp(flag, "--config")) {
        o->config = value;
    } else {
        if (o->nsets == MAX_SETS) cli_die(TOOL, CLI_EXIT_BAD_INPUT, "more than %d --set overrides", MAX_SETS);
        o->sets[o->nsets++] = value;
    }
}

static int run(int argc, char **argv, const dist_t *d) {
    static const char *const known[] = {"--config", "--set", NULL};
    options_t o = {0};
    cli_parse(TOOL, argc, argv, 1, known, print_help, on_flag, &o);
    if (!o.config) cli_die(TOOL, CLI_EXIT_BAD_INPUT, "--config FILE is required (see sla-train --help)");
    run_config_t cfg;
    char err[2048];
    config_defaults(&cfg);
    if (config_load_file(&cfg, o.config, err, sizeof err)) cli_die(TOOL, CLI_EXIT_BAD_INPUT, "%s", err);
    for (int i = 0; i < o.nsets; i++)
        if (config_apply_override(&cfg, o.sets[i], err, sizeof err)) cli_die(TOOL, CLI_EXIT_BAD_INPUT, "%s", err);
    if (config_validate(&cfg, err, sizeof err)) cli_die(TOOL, CLI_EXIT_BAD_INPUT, "%s: %s", o.config, err);
    if (d->world > 1) {
        if (d->rank == 0)
            fprintf(stderr, "sla-train: started as %d ranks, but multi-rank (data-parallel) training is not "
                            "implemented yet: run one rank per job (mpirun -np 1)\n", d->world);
        return CLI_EXIT_BAD_INPUT;
    }
    static char text[16384];
    config_format(&cfg, text, sizeof text);
    printf("# resolved configuration\n%s", text);
    trainer_rank_t who = {d->rank, d->world};
    return trainer_run(&cfg, who);
}

int main(int argc, char **argv) {
    trainer_catch_signals();
    dist_t d;
    dist_init(&argc, &argv, &d);
    int rc = run(argc, argv, &d);
    dist_finalize();
    return rc;
}
