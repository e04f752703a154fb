/* model/params.c — the parameter table of the Wan2.1 DiT (params.h). Names and shapes follow the
 * released state dict: patch_embedding, text_embedding.{0,2}, time_embedding.{0,2},
 * time_projection.1, blocks.{i}.{modulation, self_attn.{q,k,v,o,norm_q,norm_k}, norm3,
 * cross_attn.{q,k,v,o,norm_q,norm_k}, ffn.{0,2}}, head.{head, modulation}; plus our SLA proj. */
#include "params.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rng.h"

typedef struct table_builder {
    param_table_t *t;
    int cap;
} table_builder_t;

static void add(table_builder_t *b, int layer, param_init_t init, float scale, int decay, int ndim,
                const int64_t *shape, const char *fmt, ...) {
    param_table_t *t = b->t;
    if (t->count == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        param_info_t *np = realloc(t->p, sizeof(param_info_t) * (size_t)b->cap);
        CHECK(np != NULL, "out of memory growing the parameter table");
        t->p = np;
    }
    param_info_t *p = &t->p[t->count++];
    memset(p, 0, sizeof *p);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->name, sizeof p->name, fmt, ap);
    va_end(ap);
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) p->shape[i] = shape[i], p->numel *= shape[i];
    p->offset = t->total;
    t->total += (size_t)((p->numel + PARAM_ALIGN - 1) / PARAM_ALIGN * PARAM_ALIGN);
    p->init = init, p->init_scale = scale, p->weight_decay = decay, p->layer = layer;
}

/* A Linear layer: prefix.weight [out, in] (xavier, decayed) and prefix.bias [out] (zero). */
static void add_linear(table_builder_t *b, int layer, const char *prefix, int64_t out, int64_t in, param_init_t init,
                       float scale) {
    add(b, layer, init, scale, 1, 2, (int64_t[]){out, in}, "%s.weight", prefix);
    add(b, layer, PARAM_INIT_ZERO, 0, 0, 1, (int64_t[]){out}, "%s.bias", prefix);
}

static void add_attention(table_builder_t *b, int layer, const char *kind, int64_t C) {
    char prefix[64];
    const char *proj[4] = {"q", "k", "v", "o"};
    for (int i = 0; i < 4; i++) {
        snprintf(prefix, sizeof prefix, "blocks.%d.%s.%s", layer, kind, proj[i]);
        add_linear(b, layer, prefix, C, C, PARAM_INIT_XAVIER, 0);
    }
    add(b, layer, PARAM_INIT_ONE, 0, 0, 1, (int64_t[]){C}, "blocks.%d.%s.norm_q.weight", layer, kind);
    add(b, layer, PARAM_INIT_ONE, 0, 0, 1, (int64_t[]){C}, "blocks.%d.%s.norm_k.weight", layer, kind);
}

int param_table_build(const model_config_t *cfg, param_table_t *t, char *err, size_t errlen) {
    if (model_config_validate(cfg, err, errlen)) return -1;
    memset(t, 0, sizeof *t);
    table_builder_t b = {t, 0};
    int64_t C = cfg->dim, F = cfg->ffn_dim, D = model_head_dim(cfg);
    int64_t patch = (int64_t)cfg->patch_f * cfg->patch_h * cfg->patch_w;
    unsigned char use_sla[MODEL_MAX_LAYERS];
    if (model_sla_layer_mask(cfg, use_sla, err, errlen)) return -1;

    add(&b, -1, PARAM_INIT_XAVIER, 0, 1, 5, (int64_t[]){C, cfg->in_channels, cfg->patch_f, cfg->patch_h, cfg->patch_w},
        "patch_embedding.weight");
    add(&b, -1, PARAM_INIT_ZERO, 0, 0, 1, (int64_t[]){C}, "patch_embedding.bias");
    add_linear(&b, -1, "text_embedding.0", C, cfg->text_dim, PARAM_INIT_NORMAL, 0.02f);
    add_linear(&b, -1, "text_embedding.2", C, C, PARAM_INIT_NORMAL, 0.02f);
    add_linear(&b, -1, "time_embedding.0", C, cfg->freq_dim, PARAM_INIT_NORMAL, 0.02f);
    add_linear(&b, -1, "time_embedding.2", C, C, PARAM_INIT_NORMAL, 0.02f);
    add_linear(&b, -1, "time_projection.1", 6 * C, C, PARAM_INIT_XAVIER, 0);
    for (int l = 0; l < cfg->layers; l++) {
        char prefix[64];
        add(&b, l, PARAM_INIT_NORMAL, (float)(1.0 / sqrt((double)C)), 0, 3, (int64_t[]){1, 6, C}, "blocks.%d.modulation",
            l);
        add_attention(&b, l, "self_attn", C);
        if (use_sla[l]) {
            add(&b, l, PARAM_INIT_ZERO, 0, 1, 2, (int64_t[]){D, D}, "blocks.%d.self_attn.proj_l.weight", l);
            add(&b, l, PARAM_INIT_ZERO, 0, 0, 1, (int64_t[]){D}, "blocks.%d.self_attn.proj_l.bias", l);
        }
        add(&b, l, PARAM_INIT_ONE, 0, 0, 1, (int64_t[]){C}, "blocks.%d.norm3.weight", l);
        add(&b, l, PARAM_INIT_ZERO, 0, 0, 1, (int64_t[]){C}, "blocks.%d.norm3.bias", l);
        add_attention(&b, l, "cross_attn", C);
        snprintf(prefix, sizeof prefix, "blocks.%d.ffn.0", l);
        add_linear(&b, l, prefix, F, C, PARAM_INIT_XAVIER, 0);
        snprintf(prefix, sizeof prefix, "blocks.%d.ffn.2", l);
        add_linear(&b, l, prefix, C, F, PARAM_INIT_XAVIER, 0);
    }
    add(&b, -1, PARAM_INIT_ZERO, 0, 1, 2, (int64_t[]){patch * cfg->out_channels, C}, "head.head.weight");
    add(&b, -1, PARAM_INIT_ZERO, 0, 0, 1, (int64_t[]){patch * cfg->out_channels}, "head.head.bias");
    add(&b, -1, PARAM_INIT_NORMAL, (float)(1.0 / sqrt((double)C)), 0, 3, (int64_t[]){1, 2, C}, "head.modulation");
    return 0;
}

void param_table_free(param_table_t *t) {
    free(t->p);
    memset(t, 0, sizeof *t);
}

int param_table_find(const param_table_t *t, const char *name) {
    for (int i = 0; i < t->count; i++)
        if (!strcmp(t->p[i].name, name)) return i;
    return -1;
}

int64_t param_table_numel(const param_table_t *t) {
    int64_t n = 0;
    for (int i = 0; i < t->count; i++) n += t->p[i].numel;
    return n;
}

void param_table_init(const param_table_t *t, uint64_t seed, float *arena) {
    memset(arena, 0, sizeof(float) * t->total);
    rng_key_t key = {seed, RNG_PURPOSE_INIT};
    for (int i = 0; i < t->count; i++) {
        const param_info_t *p = &t->p[i];
        float *x = arena + p->offset;
        switch (p->init) {
        case PARAM_INIT_ZERO: break;
        case PARAM_INIT_ONE:
            for (int64_t j = 0; j < p->numel; j++) x[j] = 1.0f;
            break;
        case PARAM_INIT_NORMAL: rng_normal_fill(key, (uint32_t)i, 0, x, p->numel, p->init_scale); break;
        case PARAM_INIT_XAVIER: {
            /* 2-D view [out, in * receptive field]: bound = sqrt(6 / (fan_in + fan_out)) */
            double fan_out = (double)p->shape[0], fan_in = (double)p->numel / fan_out;
            float bound = (float)sqrt(6.0 / (fan_in + fan_out));
            rng_uniform_fill(key, (uint32_t)i, 0, x, p->numel);
            for (int64_t j = 0; j < p->numel; j++) x[j] = (2.0f * x[j] - 1.0f) * bound;
            break;
        }
        }
    }
}
