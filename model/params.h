/* model/params.h — the parameter table: every trainable tensor of the DiT by name.
 *
 * Generated from a model_config_t: Wan2.1's state-dict names (blocks.3.self_attn.q.weight, ...),
 * shapes, initialisation, weight-decay flag and the offset of each tensor in one flat fp32 arena
 * (parameters, gradients, optimizer moments and ZeRO shards all share these offsets). SLA layers
 * add blocks.{i}.self_attn.proj_l.weight [D,D] and .bias [D], zero at init. The optimizer, the
 * checkpoint, the importer and the gradient sync all walk this table. */
#ifndef SLA_PARAMS_H
#define SLA_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "model_config.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PARAM_NAME_MAX 80
#define PARAM_MAX_DIMS 5

typedef enum {
    PARAM_INIT_ZERO = 0,    /* biases, SLA proj, the head (adaLN-Zero style) */
    PARAM_INIT_ONE,         /* norm weights */
    PARAM_INIT_XAVIER,      /* xavier-uniform over (fan_in, fan_out) of the 2-D view */
    PARAM_INIT_NORMAL,      /* N(0, init_scale^2) */
} param_init_t;

typedef struct param_info {
    char name[PARAM_NAME_MAX];
    int ndim;
    int64_t shape[PARAM_MAX_DIMS];
    int64_t numel;
    size_t offset;      /* in elements, into the flat arena; aligned to PARAM_ALIGN elements */
    param_init_t init;
    float init_scale;
    int weight_decay;   /* 1: AdamW decays it (matrices); 0: biases, norms, modulation, SLA proj bias */
    int layer;          /* block index, or -1 outside the blocks */
} param_info_t;

/* Every tensor starts at a multiple of this many elements (128-byte aligned in fp32). */
#define PARAM_ALIGN 32

typedef struct param_table {
    int count;
    param_info_t *p;
    size_t total; /* arena elements, including alignment padding */
} param_table_t;

/* Builds the table for cfg (validated). Returns 0, or -1 with a sentence in err. */
int param_table_build(const model_config_t *cfg, param_table_t *t, char *err, size_t errlen);
void param_table_free(param_table_t *t);
/* Index of a name, or -1. */
int param_table_find(const param_table_t *t, const char *name);
/* Number of trainable elements (without padding). */
int64_t param_table_numel(const param_table_t *t);
/* Fills arena [total] per each tensor's init, from counter-based streams keyed by seed and the
 * tensor's index: the same seed gives the same weights on any number of ranks. Padding is 0. */
void param_table_init(const param_table_t *t, uint64_t seed, float *arena);

#ifdef __cplusplus
}
#endif
#endif
