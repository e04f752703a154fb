/* kernels/cpu/sla_cpu.h — the CPU attention backend: the oracle every other backend is tested
 * against. Tensor entry points take fp32 CPU tensors (contracts as in ../ops.h) and compute in
 * fp64. The *_f64 entry points expose the same math on double arrays so that tests can check
 * gradients by finite differences without fp32 rounding in the way. */
#ifndef SLA_SLA_CPU_H
#define SLA_SLA_CPU_H

#include <stdint.h>

#include "../sla.h"

#ifdef __cplusplus
extern "C" {
#endif

void sla_forward_cpu(const sla_config_t *cfg, const sla_dims_t *dims, const tensor_t *q, const tensor_t *k,
                     const tensor_t *v, const tensor_t *proj_w, const tensor_t *proj_b, int lut_given,
                     tensor_t *o, sla_saved_t *saved);
void sla_backward_cpu(const sla_config_t *cfg, const sla_dims_t *dims, const tensor_t *q, const tensor_t *k,
                      const tensor_t *v, const tensor_t *proj_w, const sla_saved_t *saved, const tensor_t *dout,
                      tensor_t *dq, tensor_t *dk, tensor_t *dv, tensor_t *dproj_w, tensor_t *dproj_b);
void attn_forward_cpu(const tensor_t *q, const tensor_t *k, const tensor_t *v, tensor_t *o, tensor_t *lse);
void attn_backward_cpu(const tensor_t *q, const tensor_t *k, const tensor_t *v, const tensor_t *o,
                       const tensor_t *lse, const tensor_t *dout, tensor_t *dq, tensor_t *dk, tensor_t *dv);

/* Block selection alone (fp64 pooled scores): fills lut int32 [B,H,Tm,kappa] unless lut_given,
 * and neg int32 [B,H,Tm,n_negl] (ascending). q, k: [B,H,N,D] doubles. */
void sla_select_blocks_f64(const sla_dims_t *d, const double *q, const double *k, int lut_given, int32_t *lut,
                           int32_t *neg);

/* Forward on doubles with a given selection (lut, neg as above): o, os, ol [B,H,N,D], lse [B,H,N]. */
void sla_forward_f64(const sla_config_t *cfg, const sla_dims_t *d, const double *q, const double *k,
                     const double *v, const double *proj_w, const double *proj_b, const int32_t *lut,
                     const int32_t *neg, double *o, double *os, double *ol, double *lse);
/* Backward on doubles: dq, dk, dv [B,H,N,D], dproj_w [D,D], dproj_b [D] overwritten. */
void sla_backward_f64(const sla_config_t *cfg, const sla_dims_t *d, const double *q, const double *k,
                      const double *v, const double *proj_w, const int32_t *lut, const int32_t *neg,
                      const double *os, const double *ol, const double *lse, const double *dout, double *dq,
                      double *dk, double *dv, double *dproj_w, double *dproj_b);

/* Dense attention on doubles, q [B,H,Nq,D], k/v [B,H,Nk,D]. */
void attn_forward_f64(int B, int H, int Nq, int Nk, int D, const double *q, const double *k, const double *v,
                      double *o, double *lse);
void attn_backward_f64(int B, int H, int Nq, int Nk, int D, const double *q, const double *k, const double *v,
                       const double *o, const double *lse, const double *dout, double *dq, double *dk, double *dv);

#ifdef __cplusplus
}
#endif
#endif
