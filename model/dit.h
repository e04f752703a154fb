/* model/dit.h — the Wan2.1 text-to-video DiT, forward and backward, on either backend.
 *
 * dit_init builds the parameter table for cfg, allocates parameters (fp32 master weights, plus a
 * bf16 working copy on CUDA) and, for the mode (dit_mode_t), gradients (fp32) and every activation
 * for one batch shape (B, F, H, W of the latents) in arenas: a step allocates nothing.
 * DIT_TRAIN keeps every block's activations. DIT_TRAIN_RECOMPUTE keeps each block's input, what
 * its self-attention produced (output, lse or SLA's saved state) and its feed-forward hidden
 * before the GELU and output; the rest of the block is re-run in the backward, the self-attention
 * and both FFN GEMMs skipped: gradients are bit-identical to DIT_TRAIN. At Wan2.1-1.3B 480p
 * (B = 1, 32760 tokens, bf16) that is 102 MB per dense layer and 304 MB per SLA layer (rho 0.05,
 * blocks 128/64) of attention store plus 688 MB of FFN hidden and output, and the step fits one
 * 80 GB GPU at batch 1.
 * DIT_FORWARD_ONLY (inference, a frozen teacher) allocates no gradients, no backward scratch, no
 * per-layer attention stores (one store shared by every layer) and two residual buffers instead
 * of one per block; its forward output is bit-identical to the training modes'. dit_backward,
 * dit_zero_grads and dit_grad on it stop with a CHECK.
 *
 * dit_forward: latents [B,16,F,H,W] and t [B] (timesteps in 0..1000) f32, text [B,Lt,Dt] with
 * Lt <= text_len (zero-padded inside, padded tokens NOT masked, as Wan), pred [B,16,F,H,W] f32
 * overwritten; keeps what the backward needs (training modes). dit_backward: dpred [B,16,F,H,W] f32; ACCUMULATES
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

/* What dit_init allocates for. 0 and 1 are the values of the `recompute` config key, so a
 * recompute flag can be passed as is. */
typedef enum dit_mode {
    DIT_TRAIN = 0,           /* forward + backward, every block's activations kept */
    DIT_TRAIN_RECOMPUTE = 1, /* forward + backward, blocks re-run in the backward (self-attention kept) */
    DIT_FORWARD_ONLY = 2     /* forward only: no gradients, no backward memory */
} dit_mode_t;

typedef struct dit {
    model_config_t cfg;
    param_table_t table;
    device_t device;
    int B, F, H, W;      /* latent shape */
    int Fp, Hp, Wp, L;   /* token grid and tokens per sample */
    int recompute;        /* DIT_TRAIN_RECOMPUTE */
    int forward_only;     /* DIT_FORWARD_ONLY */
    unsigned char use_sla[MODEL_MAX_LAYERS];
    tensor_t params;      /* f32 [table.total] master weights */
    tensor_t params_work; /* bf16 [table.total] on CUDA (matmul operands); aliases params on CPU */
    tensor_t grads;       /* f32 [table.total]; no data when forward-only */
    arena_t arena;        /* activations, scratch and the per-layer attention stores: arena.size bytes */
    size_t attn_saved_bytes; /* of arena.size: every layer's self-attention store (acts->attn), or
                                forward-only the one store they share */
    dit_acts_t *acts;
} dit_t;

int dit_init(dit_t *m, const model_config_t *cfg, device_t device, int B, int F, int H, int W, dit_mode_t mode,
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
