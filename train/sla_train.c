/* train/sla_train.c — `sla-train`: flow-matching fine-tuning of a Wan2.1-style DiT with SLA.
 *
 * sla-train --config FILE [--set key=value ...]   (or --help for every key)
 * The configuration is resolved (defaults, model preset, file, overrides), validated before any
 * work, printed, and stored in every checkpoint. Exit status: 0 done (or stopped by a signal with a
 * checkpoint), 1 a failure while running, 2 bad command line or configuration. */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "dist.h"
#include "trainer.h"

static void usage(FILE *f) {
    fprintf(f, "usage: sla-train --config FILE [--set key=value ...]\n"
               "       sla-train --help\n"
               "Fine-tunes a Wan2.1-style video DiT with SLA attention on HDF5 latent datasets.\n\n");
}

static int run(int argc, char **argv, const dist_t *d);

int main(int argc, char **argv) {
    trainer_catch_signals();
    dist_t d;
    dist_init(&argc, &argv, &d);
    int rc = run(argc, argv, &d);
    dist_finalize();
    return rc;
}

static int run(int argc, char **argv, const dist_t *d) {
    run_config_t cfg;
    config_defaults(&cfg);
    char err[2048];
    const char *config_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            config_print_help();
            return 0;
        }
        if (!strcmp(argv[i], "--config") || !strcmp(argv[i], "--set")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "sla-train: %s needs a value\n", argv[i]);
                return 2;
            }
            if (!strcmp(argv[i], "--config")) {
                config_path = argv[++i];
                continue;
            }
            i++;
            continue; /* overrides apply after the file, in order: second pass below */
        }
        fprintf(stderr, "sla-train: unknown argument '%s' (sla-train --help lists the options)\n", argv[i]);
        return 2;
    }
    if (!config_path) {
        usage(stderr);
        fprintf(stderr, "sla-train: --config FILE is required\n");
        return 2;
    }
    if (config_load_file(&cfg, config_path, err, sizeof err)) {
        fprintf(stderr, "sla-train: %s\n", err);
        return 2;
    }
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--set") && config_apply_override(&cfg, argv[++i], err, sizeof err)) {
            fprintf(stderr, "sla-train: %s\n", err);
            return 2;
        } else if (!strcmp(argv[i], "--config")) {
            i++;
        }
    if (config_validate(&cfg, err, sizeof err)) {
        fprintf(stderr, "sla-train: %s: %s\n", config_path, err);
        return 2;
    }
    if (d->world > 1) {
        if (d->rank == 0)
            fprintf(stderr, "sla-train: started as %d ranks, but multi-rank (data-parallel) training is not "
                            "implemented yet: run one rank per job (mpirun -np 1)\n", d->world);
        return 2;
    }
    static char text[16384];
    config_format(&cfg, text, sizeof text);
    printf("# resolved configuration\n%s", text);
    trainer_rank_t who = {d->rank, d->world};
    return trainer_run(&cfg, who);
}
