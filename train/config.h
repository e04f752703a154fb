/* train/config.h — the run configuration: every key declared once (config.c's table) with type,
 * default and help; `key = value` files with # comments; --set key=value overrides.
 *
 * Order of resolution: the table's defaults, then the model preset named by `model`, then the
 * file's keys, then --set overrides, in the order given. An unknown key, a malformed value or an
 * inconsistent model is refused with a sentence naming the file:line or override, the key, the
 * value and what was expected. config_format writes the resolved configuration in the same
 * syntax, so that a printed or checkpointed config loads back to the same run_config_t. */
#ifndef SLA_CONFIG_H
#define SLA_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "model_config.h"

typedef struct run_config {
    model_config_t model;
    /* run */
    char backend[8];       /* auto | cpu | cuda */
    uint64_t seed;
    char out_dir[512];
    char init_weights[512]; /* "" or a .h5 / .safetensors file to start from */
    /* data */
    char data[1024];        /* comma-separated HDF5 files */
    int batch, grad_accum;
    /* objective */
    double shift;            /* schedule shift s' = shift s / (1 + (shift - 1) s) */
    char teacher[512];       /* "" or a dense checkpoint for distillation */
    double distill_weight;
    /* optimiser */
    int steps, warmup;
    char lr_schedule[16];    /* constant | cosine */
    double lr, min_lr, weight_decay, beta1, beta2, adam_eps, clip_grad, ema_decay;
    int recompute;
    /* checkpoints and logging */
    int ckpt_every, keep_last;
    char resume[512];        /* "" | auto | a checkpoint path */
    int stop_after;          /* 0, or stop with a checkpoint after this step */
    int log_every;
    int max_bad_steps;       /* consecutive non-finite losses before the run stops */
} run_config_t;

/* Defaults of the table, with the default model preset applied. */
void config_defaults(run_config_t *cfg);

/* Applies one `key = value` (value as text). origin names where it came from for messages
 * ("configs/tiny.cfg:12", "--set"). Returns 0 or -1 with a sentence in err. */
int config_set(run_config_t *cfg, const char *key, const char *value, const char *origin, char *err, size_t errlen);

/* Reads a config file on top of cfg. Returns 0 or -1 with a sentence in err. */
int config_load_file(run_config_t *cfg, const char *path, char *err, size_t errlen);

/* Parses "key=value" (a --set argument) and applies it. */
int config_apply_override(run_config_t *cfg, const char *kv, char *err, size_t errlen);

/* Cross-key checks (model consistency, positive sizes, schedule names). 0 or -1 with err. */
int config_validate(const run_config_t *cfg, char *err, size_t errlen);

/* Writes the resolved config as `key = value` lines into buf (NUL-terminated); returns the length
 * it needed (like snprintf). */
size_t config_format(const run_config_t *cfg, char *buf, size_t len);

/* Prints every key with its type, default and help (for --help). */
void config_print_help(void);

#endif
