/* kernels/cuda/sla_cuda.h — C-linkage launchers of the CUDA attention backend. Same contracts as
 * the declarations in ../ops.h (which dispatch here for DEVICE_CUDA tensors); q/k/v/o/dout and
 * dq/dk/dv are bf16 on the device, proj_w/proj_b/dproj_* and lse are fp32. */
#ifndef SLA_SLA_CUDA_H
#define SLA_SLA_CUDA_H

#include <stddef.h>

#include "../sla.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of sla_saved_t.extra the CUDA backend needs for these sizes. */
size_t sla_cuda_extra_bytes(const sla_dims_t *d);

void sla_forward_cuda(const sla_config_t *cfg, const sla_dims_t *dims, const tensor_t *q, const tensor_t *k,
                      const tensor_t *v, const tensor_t *proj_w, const tensor_t *proj_b, int lut_given,
                      tensor_t *o, sla_saved_t *saved);
void sla_backward_cuda(const sla_config_t *cfg, const sla_dims_t *dims, const tensor_t *q, const tensor_t *k,
                       const tensor_t *v, const tensor_t *proj_w, const sla_saved_t *saved, const tensor_t *dout,
                       tensor_t *dq, tensor_t *dk, tensor_t *dv, tensor_t *dproj_w, tensor_t *dproj_b);

void attn_forward_cuda(const tensor_t *q, const tensor_t *k, const tensor_t *v, tensor_t *o, tensor_t *lse);
void attn_backward_cuda(const tensor_t *q, const tensor_t *k, const tensor_t *v, const tensor_t *o,
                        const tensor_t *lse, const tensor_t *dout, tensor_t *dq, tensor_t *dk, tensor_t *dv);

#ifdef __cplusplus
}
#endif
#endif
