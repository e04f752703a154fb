/* kernels/cuda/tensor_ops_cuda.h — C-linkage launchers of ../tensor_ops.h for device tensors
 * (f32 or bf16, fp32 math, asynchronous on cuda_stream()). */
#ifndef SLA_TENSOR_OPS_CUDA_H
#define SLA_TENSOR_OPS_CUDA_H

#include "../tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

void tensor_zero_cuda(tensor_t *x);
void tensor_convert_cuda(const tensor_t *x, tensor_t *y);
void tensor_axpy_cuda(float alpha, const tensor_t *x, tensor_t *y);
void add_row_broadcast_cuda(const tensor_t *v, tensor_t *y);
void sum_rows_accumulate_cuda(const tensor_t *x, tensor_t *acc);

#ifdef __cplusplus
}
#endif
#endif
