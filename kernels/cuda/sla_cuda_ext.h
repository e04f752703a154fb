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

/* Bytes of device workspace the backend holds (grown on demand, reused by every call). */
size_t sla_cuda_workspace_bytes(void);

#ifdef __cplusplus
}
#endif
#endif
