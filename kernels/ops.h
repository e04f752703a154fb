/* kernels/ops.h — the op interface. Model code is written once against these declarations; each
 * call runs on the backend where its tensors live (DEVICE_CPU: fp32 data, fp64 arithmetic;
 * DEVICE_CUDA: bf16 data, fp32 accumulation). Shapes use the letters of tensor.h.
 * Gradient outputs are overwritten (=), never accumulated, unless a comment says +=. */
#ifndef SLA_OPS_H
#define SLA_OPS_H

#include "sla.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when this build has the CUDA backend and a CUDA device is present. */
int ops_cuda_available(void);

/* ---- Dense attention (scale 1/sqrt(D), no mask) -------------------------------------------
 * q [B,H,Nq,D], k/v [B,H,Nk,D]; o [B,H,Nq,D] and lse f32 [B,H,Nq] (natural log) overwritten. */
void attn_forward(const tensor_t *q, const tensor_t *k, const tensor_t *v, tensor_t *o, tensor_t *lse);
/* dq, dk, dv overwritten; o and lse are the forward's. */
void attn_backward(const tensor_t *q, const tensor_t *k, const tensor_t *v, const tensor_t *o,
                   const tensor_t *lse, const tensor_t *dout, tensor_t *dq, tensor_t *dk, tensor_t *dv);

/* ---- SLA ----------------------------------------------------------------------------------
 * q, k, v [B,H,N,D]; proj_w f32 [D,D] (out x in), proj_b f32 [D]; o [B,H,N,D] overwritten;
 * saved filled (see sla.h). With lut_given the caller wrote saved->lut (each row kappa distinct
 * ascending indices in 0..Tn-1) and it is used as the critical set; negligible blocks are then
 * chosen among the others by pooled score. */
void sla_forward(const sla_config_t *cfg, const sla_dims_t *dims, const tensor_t *q, const tensor_t *k,
                 const tensor_t *v, const tensor_t *proj_w, const tensor_t *proj_b, int lut_given,
                 tensor_t *o, sla_saved_t *saved);

/* dq, dk, dv [B,H,N,D], dproj_w f32 [D,D], dproj_b f32 [D] overwritten. */
void sla_backward(const sla_config_t *cfg, const sla_dims_t *dims, const tensor_t *q, const tensor_t *k,
                  const tensor_t *v, const tensor_t *proj_w, const sla_saved_t *saved, const tensor_t *dout,
                  tensor_t *dq, tensor_t *dk, tensor_t *dv, tensor_t *dproj_w, tensor_t *dproj_b);

#include "nn_ops.h"
#include "tensor_ops.h"

#ifdef __cplusplus
}
#endif
#endif
