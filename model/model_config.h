/* model/model_config.h — the shape of a Wan2.1-style DiT: presets and consistency checks.
 *
 * A model_config_t is filled from a preset (model_config_preset) and then optionally overridden
 * key by key (train/config.c does that from config files); model_config_validate refuses
 * inconsistent settings with a sentence naming the value. Attention per layer: dense, or SLA with
 * the sla_config_t of kernels/sla.h on the layers listed in sla_layers. */
#ifndef SLA_MODEL_CONFIG_H
#define SLA_MODEL_CONFIG_H

#include <stddef.h>

#include "sla.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MODEL_MAX_LAYERS 128

typedef enum { ATTENTION_DENSE = 0, ATTENTION_SLA = 1 } attention_kind_t;

typedef struct model_config {
    char preset[32];
    int in_channels;          /* latent channels (16) */
    int out_channels;         /* predicted channels (16) */
    int patch_f, patch_h, patch_w; /* (1, 2, 2) */
    int dim, ffn_dim, heads, layers;
    int freq_dim;             /* sinusoidal time embedding width (256) */
    int text_len, text_dim;   /* text tokens (zero-padded to text_len) and their width */
    double eps;               /* norms' epsilon (1e-6) */
    attention_kind_t attention;
    sla_config_t sla;
    char sla_layers[256];     /* "all", or a comma list of indices and ranges: "0-9,20,25-29" */
} model_config_t;

/* Names: "tiny" (CPU tests), "small" (one GPU, minutes), "wan2.1-1.3b", "wan2.1-14b".
 * Returns 0, or -1 with a sentence listing the presets. */
int model_config_preset(const char *name, model_config_t *cfg, char *err, size_t errlen);

/* Returns 0, or -1 with a sentence naming the inconsistent value (e.g. dim not divisible by heads,
 * a head dim with no RoPE split, an SLA layer index past the last layer). */
int model_config_validate(const model_config_t *cfg, char *err, size_t errlen);

/* head dim D = dim / heads. */
int model_head_dim(const model_config_t *cfg);
/* RoPE split of the head dim in dims (not pairs): frame, height, width; sums to D. */
void model_rope_split(int head_dim, int *frame, int *height, int *width);
/* Fills use_sla[layers] from attention and sla_layers (0 where a layer is dense). Returns 0 or -1. */
int model_sla_layer_mask(const model_config_t *cfg, unsigned char *use_sla, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
