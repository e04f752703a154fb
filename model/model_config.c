/* model/model_config.c — presets and consistency checks of the DiT's shape (model_config.h). */
#include "model_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct preset {
    const char *name;
    int dim, ffn_dim, heads, layers, text_len, text_dim;
} preset_t;

static const preset_t presets[] = {
    {"tiny", 64, 128, 2, 2, 16, 32},              /* CPU tests and CI */
    {"small", 512, 2048, 8, 8, 64, 512},           /* one GPU, trains in minutes */
    {"wan2.1-1.3b", 1536, 8960, 12, 30, 512, 4096}, /* released Wan2.1 T2V 1.3B */
    {"wan2.1-14b", 5120, 13824, 40, 40, 512, 4096}, /* released Wan2.1 T2V 14B (memory planning) */
};

int model_config_preset(const char *name, model_config_t *cfg, char *err, size_t errlen) {
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        const preset_t *p = &presets[i];
        if (strcmp(p->name, name)) continue;
        memset(cfg, 0, sizeof *cfg);
        snprintf(cfg->preset, sizeof cfg->preset, "%s", p->name);
        cfg->in_channels = cfg->out_channels = 16;
        cfg->patch_f = 1, cfg->patch_h = 2, cfg->patch_w = 2;
        cfg->dim = p->dim, cfg->ffn_dim = p->ffn_dim, cfg->heads = p->heads, cfg->layers = p->layers;
        cfg->freq_dim = 256;
        cfg->text_len = p->text_len, cfg->text_dim = p->text_dim;
        cfg->eps = 1e-6;
        cfg->attention = ATTENTION_SLA;
        cfg->sla = sla_config_default();
        snprintf(cfg->sla_layers, sizeof cfg->sla_layers, "all");
        return 0;
    }
    snprintf(err, errlen, "unknown model preset '%s' (expected tiny, small, wan2.1-1.3b or wan2.1-14b)", name);
    return -1;
}

int model_head_dim(const model_config_t *cfg) { return cfg->heads > 0 ? cfg->dim / cfg->heads : 0; }

void model_rope_split(int head_dim, int *frame, int *height, int *width) {
    int hw = 2 * (head_dim / 6);
    *height = *width = hw;
    *frame = head_dim - 2 * hw;
}

/* Parses "all" or "a-b,c,..." into use_sla; -1 with a message on a malformed or out-of-range item. */
static int parse_layer_list(const char *list, int layers, unsigned char *use, char *err, size_t errlen) {
    memset(use, 0, (size_t)layers);
    if (!strcmp(list, "all")) {
        memset(use, 1, (size_t)layers);
        return 0;
    }
    const char *p = list;
    while (*p) {
        char *end;
        long a = strtol(p, &end, 10), b = a;
        if (end == p) goto bad;
        if (*end == '-') {
            const char *q = end + 1;
            b = strtol(q, &end, 10);
            if (end == q) goto bad;
        }
        if (a < 0 || b < a || b >= layers) {
            snprintf(err, errlen, "sla_layers = '%s': range %ld-%ld is outside the model's layers 0-%d", list, a, b,
                     layers - 1);
            return -1;
        }
        for (long l = a; l <= b; l++) use[l] = 1;
        if (*end == ',') end++;
        else if (*end) goto bad;
        p = end;
    }
    return 0;
bad:
    snprintf(err, errlen, "sla_layers = '%s' is not 'all' or a list like '0-9,20,25-29'", list);
    return -1;
}

int model_sla_layer_mask(const model_config_t *cfg, unsigned char *use_sla, char *err, size_t errlen) {
    if (cfg->attention == ATTENTION_DENSE) {
        memset(use_sla, 0, (size_t)cfg->layers);
        return 0;
    }
    return parse_layer_list(cfg->sla_layers, cfg->layers, use_sla, err, errlen);
}

int model_config_validate(const model_config_t *c, char *err, size_t errlen) {
    const struct {
        const char *name;
        int value;
    } positive[] = {{"dim", c->dim},           {"ffn_dim", c->ffn_dim},   {"heads", c->heads},
                    {"layers", c->layers},     {"text_len", c->text_len}, {"text_dim", c->text_dim},
                    {"freq_dim", c->freq_dim}, {"in_channels", c->in_channels}};
    for (size_t i = 0; i < sizeof positive / sizeof positive[0]; i++)
        if (positive[i].value <= 0) {
            snprintf(err, errlen, "%s = %d must be positive", positive[i].name, positive[i].value);
            return -1;
        }
    if (c->layers > MODEL_MAX_LAYERS) {
        snprintf(err, errlen, "layers = %d exceeds the supported maximum %d", c->layers, MODEL_MAX_LAYERS);
        return -1;
    }
    if (c->dim % c->heads) {
        snprintf(err, errlen, "dim = %d is not divisible by heads = %d", c->dim, c->heads);
        return -1;
    }
    int D = c->dim / c->heads;
    if (D % 2 || D < 6) {
        snprintf(err, errlen, "head dim %d (dim %d / heads %d) has no 3-D RoPE split: it must be even and at least 6",
                 D, c->dim, c->heads);
        return -1;
    }
    if (c->freq_dim % 2) {
        snprintf(err, errlen, "freq_dim = %d must be even (cos and sin halves)", c->freq_dim);
        return -1;
    }
    if (!(c->eps > 0 && c->eps < 1)) {
        snprintf(err, errlen, "eps = %g must be in (0, 1)", c->eps);
        return -1;
    }
    if (c->attention == ATTENTION_SLA) {
        sla_dims_t dims;
        char sub[200];
        if (sla_dims_make(&c->sla, 1, 1, 1, D, &dims, NULL, sub, sizeof sub)) {
            snprintf(err, errlen, "SLA settings: %s", sub);
            return -1;
        }
        unsigned char use[MODEL_MAX_LAYERS];
        if (model_sla_layer_mask(c, use, err, errlen)) return -1;
    }
    return 0;
}
