/* tests/test_params.c — the parameter table (label cpu): Wan2.1-1.3B's released parameter count
 * (1,418,996,800 with dense attention) and names, SLA's proj per layer, unique names, aligned
 * non-overlapping offsets, and an init that is deterministic, seed-dependent and zero where it
 * must be (SLA proj, head, biases). */
#include <stdlib.h>
#include <string.h>

#include "params.h"
#include "test_util.h"

int main(void) {
    model_config_t cfg;
    char err[256];
    param_table_t t;
    model_config_preset("wan2.1-1.3b", &cfg, err, sizeof err);
    cfg.attention = ATTENTION_DENSE;
    EXPECT(param_table_build(&cfg, &t, err, sizeof err) == 0, "build: %s", err);
    EXPECT(param_table_numel(&t) == 1418996800LL, "Wan2.1-1.3B dense: %lld parameters, expected 1418996800",
           (long long)param_table_numel(&t));
    const char *names[] = {"patch_embedding.weight", "text_embedding.2.bias", "time_projection.1.weight",
                           "blocks.29.cross_attn.norm_k.weight", "blocks.0.ffn.2.weight", "head.modulation",
                           "blocks.7.modulation", "blocks.3.norm3.bias"};
    for (int i = 0; i < 8; i++) EXPECT(param_table_find(&t, names[i]) >= 0, "missing %s", names[i]);
    int pe = param_table_find(&t, "patch_embedding.weight");
    EXPECT(t.p[pe].ndim == 5 && t.p[pe].shape[1] == 16 && t.p[pe].shape[4] == 2, "patch embedding shape");
    EXPECT(param_table_find(&t, "blocks.0.self_attn.proj_l.weight") < 0, "dense model has an SLA proj");
    param_table_free(&t);

    cfg.attention = ATTENTION_SLA;
    snprintf(cfg.sla_layers, sizeof cfg.sla_layers, "0-9,20");
    EXPECT(param_table_build(&cfg, &t, err, sizeof err) == 0, "build: %s", err);
    EXPECT(param_table_numel(&t) == 1418996800LL + 11LL * (128 * 128 + 128), "SLA on 11 layers: %lld",
           (long long)param_table_numel(&t));
    EXPECT(param_table_find(&t, "blocks.20.self_attn.proj_l.bias") >= 0 &&
               param_table_find(&t, "blocks.11.self_attn.proj_l.weight") < 0,
           "SLA proj on the wrong layers");
    param_table_free(&t);

    model_config_preset("tiny", &cfg, err, sizeof err);
    EXPECT(param_table_build(&cfg, &t, err, sizeof err) == 0, "tiny: %s", err);
    int dup = 0, overlap = 0, misaligned = 0;
    for (int i = 0; i < t.count; i++) {
        misaligned += t.p[i].offset % PARAM_ALIGN != 0;
        if (i) overlap += t.p[i].offset < t.p[i - 1].offset + (size_t)t.p[i - 1].numel;
        for (int j = 0; j < i; j++) dup += !strcmp(t.p[i].name, t.p[j].name);
    }
    EXPECT(!dup && !overlap && !misaligned && t.p[t.count - 1].offset + t.p[t.count - 1].numel <= t.total,
           "tiny table: %d duplicates, %d overlaps, %d misaligned", dup, overlap, misaligned);
    float *a = malloc(sizeof(float) * t.total), *b = malloc(sizeof(float) * t.total), *c = malloc(sizeof(float) * t.total);
    param_table_init(&t, 7, a), param_table_init(&t, 7, b), param_table_init(&t, 8, c);
    EXPECT(!memcmp(a, b, sizeof(float) * t.total), "init is not deterministic");
    int qi = param_table_find(&t, "blocks.0.self_attn.q.weight");
    EXPECT(memcmp(a + t.p[qi].offset, c + t.p[qi].offset, sizeof(float) * t.p[qi].numel), "init ignores the seed");
    const char *zeros[] = {"blocks.1.self_attn.proj_l.weight", "blocks.1.self_attn.proj_l.bias", "head.head.weight",
                           "blocks.0.ffn.0.bias"};
    for (int z = 0; z < 4; z++) {
        int i = param_table_find(&t, zeros[z]);
        EXPECT(i >= 0, "missing %s", zeros[z]);
        if (i < 0) continue;
        float m = 0;
        for (int64_t j = 0; j < t.p[i].numel; j++) m = fmaxf(m, fabsf(a[t.p[i].offset + j]));
        EXPECT(m == 0.0f, "%s is not zero at init (max %g)", zeros[z], m);
    }
    /* xavier bound sqrt(6 / (fan_in + fan_out)) for the 64 x 64 q projection */
    float m = 0;
    for (int64_t j = 0; j < t.p[qi].numel; j++) m = fmaxf(m, fabsf(a[t.p[qi].offset + j]));
    EXPECT(m > 0.9f * sqrtf(6.0f / 128.0f) && m <= sqrtf(6.0f / 128.0f), "xavier q weight max %g", m);
    free(a), free(b), free(c);
    param_table_free(&t);
    return test_summary("test_params");
}
