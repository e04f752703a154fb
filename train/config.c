/* train/config.c — the table of every configuration key and the `key = value` reader (config.h). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { KEY_INT, KEY_U64, KEY_DOUBLE, KEY_STRING, KEY_CHOICE } key_type_t;

typedef struct config_key {
    const char *name;
    key_type_t type;
    const char *def;     /* default as text; NULL: the model preset decides */
    const char *choices; /* KEY_CHOICE: "a|b|c", stored as the index (int); KEY_STRING: allowed values or NULL */
    size_t offset, size; /* field in run_config_t; size for strings */
    const char *help;
} config_key_t;

#define F(field) offsetof(run_config_t, field), sizeof(((run_config_t *)0)->field)

static const config_key_t keys[] = {
    /* model */
    {"model", KEY_STRING, "tiny", "tiny|small|wan2.1-1.3b|wan2.1-14b", F(model.preset),
     "model preset; sets every model key below (give it before them)"},
    {"dim", KEY_INT, NULL, NULL, F(model.dim), "hidden size C"},
    {"ffn_dim", KEY_INT, NULL, NULL, F(model.ffn_dim), "feed-forward hidden size"},
    {"heads", KEY_INT, NULL, NULL, F(model.heads), "attention heads H (head dim = dim / heads)"},
    {"layers", KEY_INT, NULL, NULL, F(model.layers), "transformer blocks"},
    {"text_len", KEY_INT, NULL, NULL, F(model.text_len), "text tokens (embeddings are zero-padded to this)"},
    {"text_dim", KEY_INT, NULL, NULL, F(model.text_dim), "width of the text embeddings"},
    {"freq_dim", KEY_INT, NULL, NULL, F(model.freq_dim), "width of the sinusoidal time embedding"},
    {"attention", KEY_CHOICE, "sla", "dense|sla", F(model.attention), "self-attention: dense or SLA"},
    {"sla_topk", KEY_DOUBLE, "0.05", NULL, F(model.sla.topk), "SLA kept ratio of key blocks, in (0, 1]"},
    {"sla_kl", KEY_DOUBLE, "0", NULL, F(model.sla.kl), "SLA negligible fraction of key blocks, in [0, 1)"},
    {"sla_blkq", KEY_INT, "128", NULL, F(model.sla.blk_q), "SLA query block size"},
    {"sla_blkk", KEY_INT, "64", NULL, F(model.sla.blk_k), "SLA key block size"},
    {"sla_feature", KEY_CHOICE, "softmax", "softmax|elu|relu", F(model.sla.feature), "SLA linear-branch feature map"},
    {"sla_variant", KEY_CHOICE, "complement", "complement|all", F(model.sla.variant),
     "SLA linear branch over the marginal blocks (paper) or all blocks (public code)"},
    {"sla_layers", KEY_STRING, "all", NULL, F(model.sla_layers), "layers that use SLA: all, or e.g. 0-9,20"},
    /* run */
    {"backend", KEY_STRING, "auto", "auto|cpu|cuda", F(backend), "where to compute; auto picks CUDA when present"},
    {"seed", KEY_U64, "0", NULL, F(seed), "seed of every random stream (init, data order, noise)"},
    {"out_dir", KEY_STRING, "runs/default", NULL, F(out_dir), "checkpoints and metrics go here"},
    {"init_weights", KEY_STRING, "", NULL, F(init_weights), "weights to start from (.h5 or .safetensors); empty: init"},
    /* data */
    {"data", KEY_STRING, "", NULL, F(data), "HDF5 dataset files, comma-separated"},
    {"batch", KEY_INT, "1", NULL, F(batch), "samples per micro-batch (per rank)"},
    {"grad_accum", KEY_INT, "1", NULL, F(grad_accum), "micro-batches per optimizer step"},
    /* objective */
    {"shift", KEY_DOUBLE, "5.0", NULL, F(shift), "timestep schedule shift (Wan: s' = shift s / (1 + (shift-1) s))"},
    {"teacher", KEY_STRING, "", NULL, F(teacher), "dense checkpoint to distil from; empty: no distillation"},
    {"distill_weight", KEY_DOUBLE, "0", NULL, F(distill_weight), "weight of the distillation loss"},
    /* optimiser */
    {"steps", KEY_INT, "100", NULL, F(steps), "optimizer steps of the run"},
    {"warmup", KEY_INT, "0", NULL, F(warmup), "linear warm-up steps"},
    {"lr_schedule", KEY_STRING, "constant", "constant|cosine", F(lr_schedule), "learning rate after warm-up"},
    {"lr", KEY_DOUBLE, "1e-4", NULL, F(lr), "peak learning rate"},
    {"min_lr", KEY_DOUBLE, "0", NULL, F(min_lr), "final learning rate of the cosine schedule"},
    {"weight_decay", KEY_DOUBLE, "0", NULL, F(weight_decay), "AdamW decoupled weight decay (masked by the param table)"},
    {"beta1", KEY_DOUBLE, "0.9", NULL, F(beta1), "AdamW beta1"},
    {"beta2", KEY_DOUBLE, "0.999", NULL, F(beta2), "AdamW beta2"},
    {"adam_eps", KEY_DOUBLE, "1e-8", NULL, F(adam_eps), "AdamW epsilon"},
    {"clip_grad", KEY_DOUBLE, "1.0", NULL, F(clip_grad), "clip the global gradient norm to this; 0: off"},
    {"ema_decay", KEY_DOUBLE, "0", NULL, F(ema_decay), "EMA of the weights; 0: off"},
    {"recompute", KEY_INT, "0", NULL, F(recompute), "1: recompute each block's activations in the backward"},
    /* checkpoints and logging */
    {"ckpt_every", KEY_INT, "50", NULL, F(ckpt_every), "write a checkpoint every this many steps; 0: only at the end"},
    {"keep_last", KEY_INT, "3", NULL, F(keep_last), "checkpoints kept"},
    {"resume", KEY_STRING, "", NULL, F(resume), "empty, auto (newest complete checkpoint in out_dir) or a path"},
    {"stop_after", KEY_INT, "0", NULL, F(stop_after),
     "stop with a checkpoint after this step, as if interrupted (resume continues); 0: run to steps"},
    {"log_every", KEY_INT, "1", NULL, F(log_every), "print a line every this many steps"},
    {"max_bad_steps", KEY_INT, "5", NULL, F(max_bad_steps), "stop after this many non-finite losses in a row"},
};

#define NKEYS (sizeof keys / sizeof keys[0])

static const config_key_t *find_key(const char *name) {
    for (size_t i = 0; i < NKEYS; i++)
        if (!strcmp(keys[i].name, name)) return &keys[i];
    return NULL;
}

/* Index of value in "a|b|c", or -1. */
static int choice_index(const char *choices, const char *value) {
    size_t n = strlen(value);
    int idx = 0;
    for (const char *p = choices; *p; idx++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, value, n)) return idx;
        if (!bar) break;
        p = bar + 1;
    }
    return -1;
}

static const char *choice_name(const char *choices, int index, char *buf, size_t len) {
    const char *p = choices;
    for (int i = 0; i < index && p; i++) {
        p = strchr(p, '|');
        if (p) p++;
    }
    if (!p) return "?";
    const char *bar = strchr(p, '|');
    size_t n = bar ? (size_t)(bar - p) : strlen(p);
    snprintf(buf, len, "%.*s", (int)n, p);
    return buf;
}

int config_set(run_config_t *cfg, const char *key, const char *value, const char *origin, char *err, size_t errlen) {
    const config_key_t *k = find_key(key);
    if (!k) {
        snprintf(err, errlen, "%s: unknown key '%s' (sla-train --help lists the keys)", origin, key);
        return -1;
    }
    void *field = (char *)cfg + k->offset;
    char *end;
    errno = 0;
    switch (k->type) {
    case KEY_INT: {
        long x = strtol(value, &end, 10);
        if (end == value || *end || errno || x < -2147483647L || x > 2147483647L) {
            snprintf(err, errlen, "%s: %s = '%s' is not an integer", origin, key, value);
            return -1;
        }
        *(int *)field = (int)x;
        break;
    }
    case KEY_U64: {
        unsigned long long x = strtoull(value, &end, 10);
        if (end == value || *end || errno || value[0] == '-') {
            snprintf(err, errlen, "%s: %s = '%s' is not a non-negative integer", origin, key, value);
            return -1;
        }
        *(uint64_t *)field = (uint64_t)x;
        break;
    }
    case KEY_DOUBLE: {
        double x = strtod(value, &end);
        if (end == value || *end || errno || !isfinite(x)) {
            snprintf(err, errlen, "%s: %s = '%s' is not a finite number", origin, key, value);
            return -1;
        }
        *(double *)field = x;
        break;
    }
    case KEY_CHOICE: {
        int idx = choice_index(k->choices, value);
        if (idx < 0) {
            snprintf(err, errlen, "%s: %s = '%s' is not one of %s", origin, key, value, k->choices);
            return -1;
        }
        *(int *)field = idx;
        break;
    }
    case KEY_STRING:
        if (k->choices && choice_index(k->choices, value) < 0) {
            snprintf(err, errlen, "%s: %s = '%s' is not one of %s", origin, key, value, k->choices);
            return -1;
        }
        if (strlen(value) >= k->size) {
            snprintf(err, errlen, "%s: %s is longer than %zu characters", origin, key, k->size - 1);
            return -1;
        }
        if (!strcmp(key, "model")) { /* a preset resets every model key */
            model_config_t m;
            if (model_config_preset(value, &m, err, errlen)) return -1;
            cfg->model = m;
            return 0;
        }
        snprintf((char *)field, k->size, "%s", value);
        break;
    }
    return 0;
}

void config_defaults(run_config_t *cfg) {
    char err[256];
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].def && config_set(cfg, keys[i].name, keys[i].def, "default", err, sizeof err)) {
            fprintf(stderr, "internal error: %s\n", err);
            abort();
        }
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}

/* Splits "key = value" in place; returns 0 or -1 when there is no '='. */
static int split_kv(char *line, char **key, char **value) {
    char *eq = strchr(line, '=');
    if (!eq) return -1;
    *eq = 0;
    *key = trim(line);
    *value = trim(eq + 1);
    return **key ? 0 : -1;
}

int config_load_file(run_config_t *cfg, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open config file '%s': %s", path, strerror(errno));
        return -1;
    }
    /* Two passes: `model` first (it resets the model keys), then everything in file order. */
    for (int pass = 0; pass < 2; pass++) {
        char line[2048];
        int lineno = 0;
        rewind(f);
        while (fgets(line, sizeof line, f)) {
            lineno++;
            if (!strchr(line, '\n') && !feof(f)) {
                snprintf(err, errlen, "%s:%d: line longer than %zu characters", path, lineno, sizeof line - 2);
                fclose(f);
                return -1;
            }
            char *hash = strchr(line, '#');
            if (hash) *hash = 0;
            char *s = trim(line), *key, *value;
            if (!*s) continue;
            char origin[600];
            snprintf(origin, sizeof origin, "%s:%d", path, lineno);
            if (split_kv(s, &key, &value)) {
                snprintf(err, errlen, "%s: expected 'key = value', got '%s'", origin, s);
                fclose(f);
                return -1;
            }
            if ((pass == 0) != !strcmp(key, "model")) continue;
            if (config_set(cfg, key, value, origin, err, errlen)) {
                fclose(f);
                return -1;
            }
        }
    }
    fclose(f);
    return 0;
}

int config_apply_override(run_config_t *cfg, const char *kv, char *err, size_t errlen) {
    char buf[2048], *key, *value;
    if (strlen(kv) >= sizeof buf) {
        snprintf(err, errlen, "--set: override longer than %zu characters", sizeof buf - 1);
        return -1;
    }
    snprintf(buf, sizeof buf, "%s", kv);
    if (split_kv(buf, &key, &value)) {
        snprintf(err, errlen, "--set '%s': expected key=value", kv);
        return -1;
    }
    return config_set(cfg, key, value, "--set", err, errlen);
}

int config_validate(const run_config_t *c, char *err, size_t errlen) {
    if (model_config_validate(&c->model, err, errlen)) return -1;
    const struct {
        const char *name;
        int value, min;
    } ints[] = {{"batch", c->batch, 1},         {"grad_accum", c->grad_accum, 1}, {"steps", c->steps, 1},
                {"warmup", c->warmup, 0},       {"ckpt_every", c->ckpt_every, 0}, {"keep_last", c->keep_last, 1},
                {"log_every", c->log_every, 1}, {"stop_after", c->stop_after, 0}, {"max_bad_steps", c->max_bad_steps, 1},
                {"recompute", c->recompute, 0}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (ints[i].value < ints[i].min) {
            snprintf(err, errlen, "%s = %d must be at least %d", ints[i].name, ints[i].value, ints[i].min);
            return -1;
        }
    if (c->recompute > 1) {
        snprintf(err, errlen, "recompute = %d must be 0 or 1", c->recompute);
        return -1;
    }
    const struct {
        const char *name;
        double value, lo, hi;
    } reals[] = {{"lr", c->lr, 0, 1},           {"min_lr", c->min_lr, 0, 1},
                 {"beta1", c->beta1, 0, 0.999999}, {"beta2", c->beta2, 0, 0.99999999},
                 {"adam_eps", c->adam_eps, 0, 1}, {"weight_decay", c->weight_decay, 0, 10},
                 {"clip_grad", c->clip_grad, 0, 1e9}, {"ema_decay", c->ema_decay, 0, 0.999999999},
                 {"shift", c->shift, 1e-3, 1e3},  {"distill_weight", c->distill_weight, 0, 1e3}};
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++)
        if (!(reals[i].value >= reals[i].lo && reals[i].value <= reals[i].hi)) {
            snprintf(err, errlen, "%s = %g is outside [%g, %g]", reals[i].name, reals[i].value, reals[i].lo, reals[i].hi);
            return -1;
        }
    if (c->distill_weight > 0 && !c->teacher[0]) {
        snprintf(err, errlen, "distill_weight = %g needs a teacher checkpoint (teacher = PATH)", c->distill_weight);
        return -1;
    }
    return 0;
}

static int format_value(const run_config_t *cfg, const config_key_t *k, char *buf, size_t len) {
    const void *field = (const char *)cfg + k->offset;
    char tmp[64];
    switch (k->type) {
    case KEY_INT: return snprintf(buf, len, "%d", *(const int *)field);
    case KEY_U64: return snprintf(buf, len, "%llu", (unsigned long long)*(const uint64_t *)field);
    case KEY_DOUBLE: return snprintf(buf, len, "%.17g", *(const double *)field);
    case KEY_CHOICE: return snprintf(buf, len, "%s", choice_name(k->choices, *(const int *)field, tmp, sizeof tmp));
    case KEY_STRING: return snprintf(buf, len, "%s", (const char *)field);
    }
    return 0;
}

size_t config_format(const run_config_t *cfg, char *buf, size_t len) {
    size_t used = 0;
    char value[1100];
    for (size_t i = 0; i < NKEYS; i++) {
        format_value(cfg, &keys[i], value, sizeof value);
        int n = snprintf(used < len ? buf + used : NULL, used < len ? len - used : 0, "%s = %s\n", keys[i].name, value);
        used += (size_t)n;
    }
    if (len && used >= len) buf[len - 1] = 0;
    return used;
}

void config_print_help(void) {
    static const char *types[] = {"int", "uint", "real", "text", "choice"};
    printf("Configuration keys (file lines `key = value`, # comments; --set key=value overrides):\n");
    for (size_t i = 0; i < NKEYS; i++) {
        char def[80];
        snprintf(def, sizeof def, "%s", keys[i].def ? (keys[i].def[0] ? keys[i].def : "\"\"") : "(preset)");
        printf("  %-15s %-6s default %-14s %s%s%s\n", keys[i].name, types[keys[i].type], def, keys[i].help,
               keys[i].choices ? "; one of " : "", keys[i].choices ? keys[i].choices : "");
    }
}
