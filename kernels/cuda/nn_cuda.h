/* kernels/cuda/nn_cuda.h — C-linkage launchers of the CUDA backend of ../nn_ops.h (which checks
 * shapes and dtypes, then dispatches here for DEVICE_CUDA tensors). Same contracts as there:
 * activations bf16 or f32, fp32 math, f32 statistics/modulation/gates and parameter gradients
 * (+=), deterministic reductions. Everything runs asynchronously on cuda_stream(), except
 * mse_loss_cuda and sum_squares_cuda, which return a host value and so synchronise.
 * Implemented in gemm_cuda.cu (linear through cuBLASLt), norm_cuda.cu (LayerNorm, RMSNorm, RMSNorm + RoPE),
 * elementwise_cuda.cu (modulation, gates, activations, time embedding, loss, AdamW) and
 * layout_cuda.cu (RoPE, head transposes, patchify). */
#ifndef SLA_NN_CUDA_H
#define SLA_NN_CUDA_H

#include "../nn_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

void linear_forward_cuda(const tensor_t *x, const tensor_t *w, const tensor_t *b, tensor_t *y);
void linear_backward_cuda(const tensor_t *x, const tensor_t *w, const tensor_t *dy, tensor_t *dx, int dx_accumulate,
                          tensor_t *dw, tensor_t *db);
void linear_backward_gelu_input_cuda(const tensor_t *x, const tensor_t *pre, const tensor_t *w, const tensor_t *dy,
                                     tensor_t *dpre, tensor_t *dw, tensor_t *db);
void layernorm_forward_cuda(const tensor_t *x, const tensor_t *weight, const tensor_t *bias, float eps, tensor_t *y,
                            tensor_t *mean, tensor_t *rstd);
void layernorm_backward_cuda(const tensor_t *x, const tensor_t *weight, const tensor_t *mean, const tensor_t *rstd,
                             const tensor_t *dy, tensor_t *dx, int accumulate, tensor_t *dweight, tensor_t *dbias);
void rmsnorm_forward_cuda(const tensor_t *x, const tensor_t *weight, float eps, tensor_t *y, tensor_t *rstd);
void rmsnorm_rope_forward_cuda(const tensor_t *x, const tensor_t *weight, float eps, int F, int Hg, int Wg,
                               tensor_t *y, tensor_t *rstd);
void rmsnorm_backward_cuda(const tensor_t *x, const tensor_t *weight, const tensor_t *rstd, const tensor_t *dy,
                           tensor_t *dx, tensor_t *dweight);
void modulate_forward_cuda(const tensor_t *x, const tensor_t *scale, const tensor_t *shift, tensor_t *y);
void modulate_backward_cuda(const tensor_t *x, const tensor_t *scale, const tensor_t *dy, tensor_t *dx,
                            tensor_t *dscale, tensor_t *dshift);
void gated_residual_forward_cuda(const tensor_t *x, const tensor_t *gate, const tensor_t *y, tensor_t *out);
void gated_residual_backward_cuda(const tensor_t *y, const tensor_t *gate, const tensor_t *dx, tensor_t *dy,
                                  tensor_t *dgate);
void gelu_forward_cuda(const tensor_t *x, tensor_t *y);
void gelu_backward_cuda(const tensor_t *x, const tensor_t *dy, tensor_t *dx);
void silu_forward_cuda(const tensor_t *x, tensor_t *y);
void silu_backward_cuda(const tensor_t *x, const tensor_t *dy, tensor_t *dx);
void rope_forward_cuda(const tensor_t *x, int F, int Hg, int Wg, tensor_t *y);
void rope_backward_cuda(const tensor_t *dy, int F, int Hg, int Wg, tensor_t *dx);
void head_transpose_cuda(const tensor_t *x, tensor_t *y);
void patchify_cuda(const tensor_t *lat, int pt, int ph, int pw, tensor_t *tok);
void patchify_backward_cuda(const tensor_t *dtok, int pt, int ph, int pw, tensor_t *dlat);
void unpatchify_cuda(const tensor_t *tok, int pt, int ph, int pw, tensor_t *lat);
void unpatchify_backward_cuda(const tensor_t *dlat, int pt, int ph, int pw, tensor_t *dtok);
void timestep_embedding_cuda(const tensor_t *t, tensor_t *emb);
double mse_loss_cuda(const tensor_t *pred, const tensor_t *target, double grad_scale, tensor_t *dpred);
void adamw_step_cuda(const adamw_params_t *p, tensor_t *w, const tensor_t *grad, tensor_t *m, tensor_t *v,
                     tensor_t *w_bf16);
double sum_squares_cuda(const tensor_t *x);

#ifdef __cplusplus
}
#endif
#endif
