/* kernels/tensor_ops.h — small elementwise helpers the model glues its ops with: zeroing, y += a x,
 * adding a row vector to every row, and summing rows into an accumulator. Included by ops.h.
 * Any dtype the backend stores activations in (CPU: f32; CUDA: f32 or bf16, math in fp32);
 * sums over rows run in a fixed order (deterministic). */
#ifndef SLA_TENSOR_OPS_H
#define SLA_TENSOR_OPS_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* x = 0. */
void tensor_zero(tensor_t *x);
/* y = x, converting dtype (same device, same number of elements). */
void tensor_convert(const tensor_t *x, tensor_t *y);
/* x *= alpha. */
void tensor_scale(float alpha, tensor_t *x);
/* y += alpha * x; same number of elements (shapes may differ, e.g. a view). */
void tensor_axpy(float alpha, const tensor_t *x, tensor_t *y);
/* y [R, C] (any leading shape, last dim C) += v [C] in every row. */
void add_row_broadcast(const tensor_t *v, tensor_t *y);
/* acc f32 [C] += sum over the rows of x [R, C] (any leading shape, last dim C). */
void sum_rows_accumulate(const tensor_t *x, tensor_t *acc);

#ifdef __cplusplus
}
#endif
#endif
