/* kernels/nn_ops.h — the non-attention ops of the Wan2.1 DiT: linear layers, norms, modulation
 * and gates, activations, 3-D RoPE and head transposes, patchify/unpatchify, the sinusoidal time
 * embedding, the MSE loss, AdamW and the squared norm. Included by ops.h; dispatch is in nn_ops.c.
 *
 * Each call runs on the backend where its tensors live. CPU: every tensor float32, fp64 math.
 * CUDA: activations may be bfloat16 or float32 (each tensor independently unless a comment says
 * otherwise, so that e.g. a norm can read Wan's fp32 residual stream and write bf16), math in
 * fp32; modulation (scale, shift), gates, norm statistics, the time embedding and every
 * parameter gradient are float32; parameters given to an op are bf16 or fp32.
 *
 * Gradient contract: ACTIVATION gradients are overwritten (=); PARAMETER gradients (dw, db of
 * linear, dweight/dbias of the norms) are ACCUMULATED (+=), so that micro-batches add up and the
 * caller zeroes them once per optimizer step. dscale, dshift and dgate are activations of the
 * time path: overwritten. Outputs never alias inputs unless a comment says they may.
 * Reductions are deterministic on both backends (fixed order, no atomics).
 * Tested by tests/test_nn_cpu.c (finite differences, formulas) and tests/test_nn_cuda.c (CUDA
 * against the CPU within the bf16 rule of DESIGN.md). */
#ifndef SLA_NN_OPS_H
#define SLA_NN_OPS_H

#include <stdint.h>

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Linear: y = x w^T + b (PyTorch layout) -------------------------------------------------
 * x [..., K], w [N, K], b [N] or NULL, y [..., N] (same leading dims as x; M = their product).
 * CUDA: x, w, b, y share one dtype (bf16 through cuBLASLt with fp32 compute, or fp32 with fp32
 * compute and no TF32, as Wan runs its time-embedding MLP). */
void linear_forward(const tensor_t *x, const tensor_t *w, const tensor_t *b, tensor_t *y);
/* dy [..., N]; dx [..., K] (NULL when not needed; the dtype of x, or f32 on CUDA) is
 * overwritten (=), or accumulated into (+=) when dx_accumulate is nonzero (e.g. the sum of the
 * q, k and v input gradients); dw f32 [N, K] (+=), db f32 [N] (+=, NULL when there is no bias). */
void linear_backward(const tensor_t *x, const tensor_t *w, const tensor_t *dy, tensor_t *dx, int dx_accumulate,
                     tensor_t *dw, tensor_t *db);
/* linear_backward of a layer whose input is x = gelu(pre) (the feed-forward's second linear):
 * instead of dx it writes the gradient at the GELU's input, dpre = (dy w) * gelu'(pre) (=, like
 * x); dw and db as linear_backward. CUDA: the GELU derivative runs in cuBLASLt's epilogue, so the
 * wide hidden tensor is not read and written again. */
void linear_backward_gelu_input(const tensor_t *x, const tensor_t *pre, const tensor_t *w, const tensor_t *dy,
                                tensor_t *dpre, tensor_t *dw, tensor_t *db);

/* ---- LayerNorm over the last dim C ----------------------------------------------------------
 * y = (x - mean) * rstd * weight + bias, rstd = 1 / sqrt(var + eps) (biased variance).
 * x, y [..., C]; weight, bias [C] or NULL (no affine: 1 and 0); mean, rstd f32 with M = numel/C
 * elements (any shape), overwritten and kept for the backward. */
void layernorm_forward(const tensor_t *x, const tensor_t *weight, const tensor_t *bias, float eps, tensor_t *y,
                       tensor_t *mean, tensor_t *rstd);
/* dx (=, or += when accumulate is nonzero: the residual stream's gradient, which the norm's
 * input feeds besides the norm); dweight = sum dy xhat and dbias = sum dy, f32 [C] (+=), each
 * NULL when its parameter is absent or not trained (dweight must be NULL without weight). */
void layernorm_backward(const tensor_t *x, const tensor_t *weight, const tensor_t *mean, const tensor_t *rstd,
                        const tensor_t *dy, tensor_t *dx, int accumulate, tensor_t *dweight, tensor_t *dbias);

/* ---- RMSNorm over the last dim C (Wan applies it to q and k over the whole dim) -------------
 * y = x * rstd * weight, rstd = 1 / sqrt(mean(x^2) + eps); weight [C]; rstd f32, M elements. */
void rmsnorm_forward(const tensor_t *x, const tensor_t *weight, float eps, tensor_t *y, tensor_t *rstd);
/* RMSNorm then RoPE into the attention layout, for q and k: x [B, L, C] (C = H D, tokens on the
 * grid F x Hg x Wg) -> y [B, H, L, D] = rope_forward(rmsnorm(x) viewed as [B, L, H, D]); rstd as
 * rmsnorm_forward (the backward is rope_backward, then rmsnorm_backward). CUDA: one pass, the
 * normalised values rotated before their one rounding. */
void rmsnorm_rope_forward(const tensor_t *x, const tensor_t *weight, float eps, int F, int Hg, int Wg, tensor_t *y,
                          tensor_t *rstd);
/* dx (=); dweight f32 [C] (+=, NULL when not trained). */
void rmsnorm_backward(const tensor_t *x, const tensor_t *weight, const tensor_t *rstd, const tensor_t *dy,
                      tensor_t *dx, tensor_t *dweight);

/* ---- adaLN modulation and gated residual (per-sample broadcast over tokens) -----------------
 * x, y [B, L, C]; scale, shift, gate f32 [B, C] (contiguous; a chunk of Wan's e0 [B,6,C] must be
 * given as its own [B, C] block). */
/* y = x * (1 + scale) + shift. y may alias x. */
void modulate_forward(const tensor_t *x, const tensor_t *scale, const tensor_t *shift, tensor_t *y);
/* dx = dy * (1 + scale) (=); dscale = sum_L dy * x, dshift = sum_L dy (=, f32 [B, C]). */
void modulate_backward(const tensor_t *x, const tensor_t *scale, const tensor_t *dy, tensor_t *dx, tensor_t *dscale,
                       tensor_t *dshift);
/* out = x + gate * y (out like x; it may alias x). */
void gated_residual_forward(const tensor_t *x, const tensor_t *gate, const tensor_t *y, tensor_t *out);
/* dx is the gradient of the updated x (it also flows on to the old x unchanged, which is the
 * caller's business); dy = dx * gate (=); dgate = sum_L dx * y (=, f32 [B, C]). */
void gated_residual_backward(const tensor_t *y, const tensor_t *gate, const tensor_t *dx, tensor_t *dy,
                             tensor_t *dgate);

/* ---- Activations (elementwise, any shape) ---------------------------------------------------
 * gelu: tanh approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); silu: x sigmoid(x).
 * y may alias x; dx (=) may alias dy. */
void gelu_forward(const tensor_t *x, tensor_t *y);
void gelu_backward(const tensor_t *x, const tensor_t *dy, tensor_t *dx);
void silu_forward(const tensor_t *x, tensor_t *y);
void silu_backward(const tensor_t *x, const tensor_t *dy, tensor_t *dx);

/* ---- 3-D RoPE fused with the head transpose -------------------------------------------------
 * Head dim D (even) holds D/2 complex pairs (x[2i], x[2i+1]). Pairs [0, pf) rotate with the frame
 * index, [pf, pf+ph) with the row, the rest with the column: rope_axis_pairs gives pf, ph, pw
 * (dims D - 4 floor(D/6), 2 floor(D/6), 2 floor(D/6); 22/21/21 pairs at D = 128). Each axis has
 * its own series: pair k of an axis of width 2n rotates by pos * 10000^(-2k/(2n)) (angles and
 * their cos/sin in fp64, as Wan). Tokens are ordered (f, h, w) row-major over grid
 * (F, Hg, Wg), L = F * Hg * Wg.
 * x [B, L, H, D] (as the q/k linear leaves it) -> y [B, H, L, D] (the attention layout). */
void rope_axis_pairs(int D, int *pf, int *ph, int *pw);
void rope_forward(const tensor_t *x, int F, int Hg, int Wg, tensor_t *y);
/* The inverse rotation: dy [B, H, L, D] -> dx [B, L, H, D] (=). */
void rope_backward(const tensor_t *dy, int F, int Hg, int Wg, tensor_t *dx);
/* x [B, P, Q, D] -> y [B, Q, P, D]: heads split ([B,L,H,D] -> [B,H,L,D], for v) and merge (the
 * attention output back), and each one's backward. */
void head_transpose(const tensor_t *x, tensor_t *y);

/* ---- Patchify / unpatchify, patch (pt, ph, pw) = (1, 2, 2) in Wan2.1 --------------------------
 * lat [B, Cin, F, H, W] -> tok [B, (F/pt)(H/ph)(W/pw), Cin*pt*ph*pw], tokens (f, h, w) row-major,
 * a patch flattened channel-outermost (c, kt, kh, kw) like Conv3d weights [dim, Cin, pt, ph, pw],
 * so the patch embedding is patchify + linear. */
void patchify(const tensor_t *lat, int pt, int ph, int pw, tensor_t *tok);
/* The adjoint (a permutation): dtok -> dlat (=). */
void patchify_backward(const tensor_t *dtok, int pt, int ph, int pw, tensor_t *dlat);
/* tok [B, L, pt*ph*pw*Cout] flattened channel-innermost (kt, kh, kw, c), as Wan's head emits it,
 * -> lat [B, Cout, F, H, W]. */
void unpatchify(const tensor_t *tok, int pt, int ph, int pw, tensor_t *lat);
/* dlat -> dtok (=). */
void unpatchify_backward(const tensor_t *dlat, int pt, int ph, int pw, tensor_t *dtok);

/* ---- Sinusoidal timestep embedding (Wan's) --------------------------------------------------
 * t f32 [B] (0..1000) -> emb f32 [B, dim] (dim even, 256 in Wan): half = dim/2,
 * freq_k = 10000^(-k/half), emb = [cos(t freq_k) for k < half, sin(t freq_k) for k < half].
 * Computed in fp64 on both backends (Wan does). No backward (t is data). */
void timestep_embedding(const tensor_t *t, tensor_t *emb);

/* ---- Loss ------------------------------------------------------------------------------------
 * Returns mean((pred - target)^2) over all elements (fp64, deterministic order; on CUDA this
 * synchronises). dpred (=, NULL when not needed) = grad_scale * 2 (pred - target) / numel. */
double mse_loss(const tensor_t *pred, const tensor_t *target, double grad_scale, tensor_t *dpred);

/* ---- Optimizer -------------------------------------------------------------------------------
 * AdamW as PyTorch's: w *= 1 - lr wd; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
 * w -= lr / (1 - b1^step) * m / (sqrt(v) / sqrt(1 - b2^step) + eps), with g = grad_scale * grad
 * (grad_scale carries clipping or loss scaling). step counts from 1. */
typedef struct adamw_params {
    double lr, beta1, beta2, eps, weight_decay;
    double grad_scale;
    int64_t step;
} adamw_params_t;
/* w, grad, m, v f32 of one shape (a parameter or a flat shard); w, m, v updated in place.
 * w_bf16 (CUDA only, else NULL): bf16 copy of the updated w, same shape, overwritten. */
void adamw_step(const adamw_params_t *p, tensor_t *w, const tensor_t *grad, tensor_t *m, tensor_t *v,
                tensor_t *w_bf16);
/* sum(x^2) of an f32 tensor in fp64, deterministic (the gradient norm). Synchronises on CUDA. */
double sum_squares(const tensor_t *x);

#ifdef __cplusplus
}
#endif
#endif
