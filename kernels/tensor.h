/* kernels/tensor.h — the tensor descriptor every op takes, and its memory helpers.
 *
 * A tensor_t is a view: data pointer, dtype, device and a row-major shape (last index fastest).
 * It owns nothing by itself; tensor_alloc/tensor_free manage memory for callers that want it.
 * Ops read dtype and device from their arguments and refuse combinations they do not support.
 * Project-wide letters in shape comments: B batch, L tokens, Lt text tokens, C dim, H heads,
 * D head dim, N sequence length of one attention call. */
#ifndef SLA_TENSOR_H
#define SLA_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TENSOR_MAX_DIMS 6

typedef enum { DTYPE_F32 = 0, DTYPE_BF16 = 1, DTYPE_F16 = 2, DTYPE_I32 = 3, DTYPE_F64 = 4 } dtype_t;
typedef enum { DEVICE_CPU = 0, DEVICE_CUDA = 1 } device_t;

typedef struct tensor {
    void *data;
    dtype_t dtype;
    device_t device;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
} tensor_t;

size_t dtype_size(dtype_t dtype);
const char *dtype_name(dtype_t dtype);
const char *device_name(device_t device);

int64_t tensor_numel(const tensor_t *t);
size_t tensor_bytes(const tensor_t *t);

/* A descriptor without data: tensor_make(DTYPE_F32, DEVICE_CPU, 3, (int64_t[]){B, N, D}). */
tensor_t tensor_make(dtype_t dtype, device_t device, int ndim, const int64_t *shape);
/* tensor_make plus memory (host malloc or cudaMalloc); contents are undefined. */
tensor_t tensor_alloc(dtype_t dtype, device_t device, int ndim, const int64_t *shape);
void tensor_free(tensor_t *t);

/* 1 when both have the same ndim and shape. */
int tensor_same_shape(const tensor_t *a, const tensor_t *b);
/* Writes "[2, 3, 4]" into buf. */
const char *tensor_shape_str(const tensor_t *t, char *buf, size_t len);

/* Copies src into dst (same shape), converting dtype (f32 <-> bf16/f16/f64, i32 <-> i32) and
 * moving between host and device as needed. Synchronous. */
void tensor_copy(tensor_t *dst, const tensor_t *src);

/* bf16 <-> f32 on the host, round-to-nearest-even (NaN stays NaN). */
uint16_t f32_to_bf16(float x);
float bf16_to_f32(uint16_t x);
uint16_t f32_to_f16(float x);
float f16_to_f32(uint16_t x);

#ifdef __cplusplus
}
#endif
#endif
