/* kernels/cpu/nn_cpu.h — the CPU backend of nn_ops.h: the oracle for the CUDA kernels and the
 * no-GPU trainer. Tensor entry points (*_cpu) take float32 CPU tensors whose shapes nn_ops.c has
 * checked, and have the contracts of ../nn_ops.h. The *_f64 entry points are the same math on
 * double arrays (same = / += contracts), so that tests can take finite differences without
 * fp32 rounding in the way. Implemented in nn_cpu.c (linear, norms, modulation, activations) and
 * nn_layout_cpu.c (RoPE, transposes, patchify, time embedding, loss, AdamW). */
#ifndef SLA_NN_CPU_H
#define SLA_NN_CPU_H

#include "../nn_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- fp64 math: x [M,K], w [N,K], y [M,N]; rows of C for norms; [B,L,C] for modulation ---- */
void linear_forward_f64(long M, int K, int N, const double *x, const double *w, const double *b, double *y);
/* dx (=, may be NULL), dw (+=), db (+=, may be NULL). */
void linear_backward_f64(long M, int K, int N, const double *x, const double *w, const double *dy, double *dx,
                         double *dw, double *db);
/* w, b may be NULL (1 and 0); dw, db (+=) may be NULL. */
void layernorm_forward_f64(long M, int C, double eps, const double *x, const double *w, const double *b, double *y,
                           double *mean, double *rstd);
void layernorm_backward_f64(long M, int C, const double *x, const double *w, const double *mean, const double *rstd,
                            const double *dy, double *dx, double *dw, double *db);
void rmsnorm_forward_f64(long M, int C, double eps, const double *x, const double *w, double *y, double *rstd);
void rmsnorm_backward_f64(long M, int C, const double *x, const double *w, const double *rstd, const double *dy,
                          double *dx, double *dw);
void modulate_forward_f64(int B, long L, int C, const double *x, const double *scale, const double *shift, double *y);
void modulate_backward_f64(int B, long L, int C, const double *x, const double *scale, const double *dy, double *dx,
                           double *dscale, double *dshift);
void gated_residual_forward_f64(int B, long L, int C, double *x, const double *gate, const double *y);
void gated_residual_backward_f64(int B, long L, int C, const double *y, const double *gate, const double *dx,
                                 double *dy, double *dgate);
void gelu_forward_f64(long n, const double *x, double *y);
void gelu_backward_f64(long n, const double *x, const double *dy, double *dx);
void silu_forward_f64(long n, const double *x, double *y);
void silu_backward_f64(long n, const double *x, const double *dy, double *dx);
/* x [B, L, H, D] -> y [B, H, L, D] and back, L = F * Hg * Wg. */
void rope_forward_f64(int B, int F, int Hg, int Wg, int H, int D, const double *x, double *y);
void rope_backward_f64(int B, int F, int Hg, int Wg, int H, int D, const double *dy, double *dx);
/* Returns the loss; dpred (=) may be NULL. */
double mse_loss_f64(long n, const double *pred, const double *target, double grad_scale, double *dpred);

/* ---- Tensor entry points (float32 CPU tensors, shapes checked by nn_ops.c) ---- */
void linear_forward_cpu(const tensor_t *x, const tensor_t *w, const tensor_t *b, tensor_t *y);
void linear_backward_cpu(const tensor_t *x, const tensor_t *w, const tensor_t *dy, tensor_t *dx, int dx_accumulate,
                         tensor_t *dw, tensor_t *db);
void linear_backward_gelu_input_cpu(const tensor_t *x, const tensor_t *pre, const tensor_t *w, const tensor_t *dy,
                                    tensor_t *dpre, tensor_t *dw, tensor_t *db);
void layernorm_forward_cpu(const tensor_t *x, const tensor_t *weight, const tensor_t *bias, float eps, tensor_t *y,
                           tensor_t *mean, tensor_t *rstd);
void layernorm_backward_cpu(const tensor_t *x, const tensor_t *weight, const tensor_t *mean, const tensor_t *rstd,
                            const tensor_t *dy, tensor_t *dx, int accumulate, tensor_t *dweight, tensor_t *dbias);
void rmsnorm_forward_cpu(const tensor_t *x, const tensor_t *weight, float eps, tensor_t *y, tensor_t *rstd);
void rmsnorm_rope_forward_cpu(const tensor_t *x, const tensor_t *weight, float eps, int F, int Hg, int Wg,
                              tensor_t *y, tensor_t *rstd);
void rmsnorm_backward_cpu(const tensor_t *x, const tensor_t *weight, const tensor_t *rstd, const tensor_t *dy,
                          tensor_t *dx, tensor_t *dweight);
void modulate_forward_cpu(const tensor_t *x, const tensor_t *scale, const tensor_t *shift, tensor_t *y);
void modulate_backward_cpu(const tensor_t *x, const tensor_t *scale, const tensor_t *dy, tensor_t *dx,
                           tensor_t *dscale, tensor_t *dshift);
void gated_residual_forward_cpu(const tensor_t *x, const tensor_t *gate, const tensor_t *y, tensor_t *out);
void gated_residual_backward_cpu(const tensor_t *y, const tensor_t *gate, const tensor_t *dx, tensor_t *dy,
                                 tensor_t *dgate);
void gelu_forward_cpu(const tensor_t *x, tensor_t *y);
void gelu_backward_cpu(const tensor_t *x, const tensor_t *dy, tensor_t *dx);
void silu_forward_cpu(const tensor_t *x, tensor_t *y);
void silu_backward_cpu(const tensor_t *x, const tensor_t *dy, tensor_t *dx);
void rope_forward_cpu(const tensor_t *x, int F, int Hg, int Wg, tensor_t *y);
void rope_backward_cpu(const tensor_t *dy, int F, int Hg, int Wg, tensor_t *dx);
void head_transpose_cpu(const tensor_t *x, tensor_t *y);
void patchify_cpu(const tensor_t *lat, int pt, int ph, int pw, tensor_t *tok);
void patchify_backward_cpu(const tensor_t *dtok, int pt, int ph, int pw, tensor_t *dlat);
void unpatchify_cpu(const tensor_t *tok, int pt, int ph, int pw, tensor_t *lat);
void unpatchify_backward_cpu(const tensor_t *dlat, int pt, int ph, int pw, tensor_t *dtok);
void timestep_embedding_cpu(const tensor_t *t, tensor_t *emb);
double mse_loss_cpu(const tensor_t *pred, const tensor_t *target, double grad_scale, tensor_t *dpred);
void adamw_step_cpu(const adamw_params_t *p, tensor_t *w, const tensor_t *grad, tensor_t *m, tensor_t *v);
double sum_squares_cpu(const tensor_t *x);

#ifdef __cplusplus
}
#endif
#endif
