/* model/dit.h — the Wan2.1 text-to-video DiT, forward and backward, on either backend.
 *
 * dit_init builds the parameter table for cfg, allocates parameters (fp32 master weights, plus a
 * bf16 working copy on CUDA), gradients (fp32) and every activation for one batch shape
 * (B, F, H, W of the latents) in arenas: a step allocates nothing. With recompute, each block's
 * input and what its self-attention produced (output, lse or SLA's saved state) are kept, and the
 * rest of the block is re-run in the backward, the self-attention skipped: gradients are
 * bit-identical to those without recompute. At Wan2.1-1.3B 480p (B = 1, 32760 tokens, bf16) the
 * attention store is 102 MB per dense layer and 304 MB per SLA layer (rho 0.05, blocks 128/64), and
 * the step fits one 80 GB GPU at batch 1.
 *
 * dit_forward: latents [B,16,F,H,W] and t [B] (timesteps in 0..1000) f32, text [B,Lt,Dt] with
 * Lt <= text_len (zero-padded inside, padded tokens NOT masked, as Wan), pred [B,16,F,H,W] f32
 * overwritten; keeps what the backward needs. dit_backward: dpred [B,16,F,H,W] f32; ACCUMULATES
 * every parameter gradient into grads (zero them with dit_zero_grads once per optimizer step).
 * Tensors are on the model's device. After writing params (load, optimizer without its bf16
 * output), call dit_params_changed to refresh the bf16 copy. */
#ifndef SLA_DIT_H
#define SLA_DIT_H

#include <stddef.h>

#include "arena.h"
#include "model_config.h"
#include "ops.h"
#include "params.h"

typedef struct dit_acts dit_acts_t;

typedef struct dit {
    model_config_t cfg;
    param_table_t table;
    device_t device;
    int B, F, H, W;      /* latent shape */
    int Fp, Hp, Wp, L;   /* token grid and tokens per sample */
    int recompute;
    unsigned char use_sla[MODEL_MAX_LAYERS];
    tensor_t params;      /* f32 [table.total] master weights */
    tensor_t params_work; /* bf16 [table.total] on CUDA (matmul operands); aliases params on CPU */
    tensor_t grads;       /* f32 [table.total] */
    arena_t arena;        /* activations, scratch and the per-layer attention stores: arena.size bytes */
    size_t attn_saved_bytes; /* of arena.size: every layer's self-attention store (acts->attn) */
    dit_acts_t *acts;
} dit_t;

int dit_init(dit_t *m, const model_config_t *cfg, device_t device, int B, int F, int H, int W, int recompute,
             char *err, size_t errlen);
void dit_free(dit_t *m);
void dit_params_changed(dit_t *m);
void dit_zero_grads(dit_t *m);
void dit_forward(dit_t *m, const tensor_t *latents, const tensor_t *t, const tensor_t *text, tensor_t *pred);
void dit_backward(dit_t *m, const tensor_t *dpred);

/* A view of parameter i of the table in the master (f32), working (bf16 on CUDA) or gradient arena. */
tensor_t dit_param(const dit_t *m, int i);
tensor_t dit_param_work(const dit_t *m, int i);
tensor_t dit_grad(const dit_t *m, int i);

#endif
