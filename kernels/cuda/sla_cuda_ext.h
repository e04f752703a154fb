/* kernels/cuda/sla_cuda_ext.h — extra C entry points of the CUDA SLA backend for benchmarks and
 * tests (not part of the op interface in ops.h). */
#ifndef SLA_SLA_CUDA_EXT_H
#define SLA_SLA_CUDA_EXT_H

#include "../sla.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Block selection alone: fills saved->lut (unless lut_given) and saved->neg from bf16 q, k on the
 * device, exactly as sla_forward_cuda does. */
void sla_select_cuda(const sla_config_t *cfg, const sla_dims_t *dims, const tensor_t *q, const tensor_t *k,
                     int lut_given, sla_saved_t *saved);

/* Block selection without negligible blocks (dims->n_negl == 0) from bf16 q, k on the device, into
 * device buffers: lut [B, H, Tm, kappa] int32, map [B, H, Tm, Tn] bytes (1 critical, 0 marginal)
 * and mask [B, H, Tm, Tn] bf16 (1 marginal, 0 critical; may be NULL). fused 1: with the
 * forward's fused kernel (returns 0, writing nothing, when it does not take these dims); 0: with
 * the separate kernels (kmean, scores, top-k, rowmap); 2: the same with the top-k by a full sort
 * (never the warp kernel). All pool ksum from k. Returns 1. For tests. */
int sla_select_map_cuda(const sla_dims_t *dims, const tensor_t *q, const tensor_t *k, int fused, void *lut, void *map,
                        void *mask);

/* Bytes of device workspace the backend holds (grown on demand, reused by every call). */
size_t sla_cuda_workspace_bytes(void);

#ifdef __cplusplus
}
#endif
#endif
