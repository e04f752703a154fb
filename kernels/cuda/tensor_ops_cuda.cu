/* kernels/cuda/tensor_ops_cuda.cu — device side of ../tensor_ops.h: grid-stride elementwise
 * kernels over f32 or bf16 storage with fp32 math; sum_rows_accumulate gives each column one
 * thread that walks the rows in order, so the result does not depend on the launch. */
#include <cuda_bf16.h>

#include "cuda_common.cuh"
#include "tensor_ops_cuda.h"

namespace {

__device__ __forceinline__ float load(const void *p, int bf16, long long i) {
    return bf16 ? __bfloat162float(((const __nv_bfloat16 *)p)[i]) : ((const float *)p)[i];
}

__device__ __forceinline__ void store(void *p, int bf16, long long i, float x) {
    if (bf16) ((__nv_bfloat16 *)p)[i] = __float2bfloat16(x);
    else ((float *)p)[i] = x;
}

__global__ void axpy_kernel(float alpha, const void *x, int xb, void *y, int yb, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        store(y, yb, i, load(y, yb, i) + alpha * load(x, xb, i));
}

__global__ void convert_kernel(const void *x, int xb, void *y, int yb, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        store(y, yb, i, load(x, xb, i));
}

__global__ void add_rows_kernel(const void *v, int vb, void *y, int yb, long long n, long long C) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        store(y, yb, i, load(y, yb, i) + load(v, vb, i % C));
}

__global__ void sum_rows_kernel(const void *x, int xb, float *acc, long long R, long long C) {
    long long c = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (c >= C) return;
    float s = 0.f;
    for (long long r = 0; r < R; r++) s += load(x, xb, r * C + c);
    acc[c] += s;
}

int blocks_for(long long n) {
    long long b = (n + 255) / 256;
    return (int)(b < 4096 ? (b > 0 ? b : 1) : 4096);
}

int is_bf16(const tensor_t *t) { return t->dtype == DTYPE_BF16; }

}  // namespace

extern "C" void tensor_zero_cuda(tensor_t *x) {
    CUDA_CHECK(cudaMemsetAsync(x->data, 0, tensor_bytes(x), cuda_stream()));
}

extern "C" void tensor_convert_cuda(const tensor_t *x, tensor_t *y) {
    long long n = tensor_numel(y);
    if (!n) return;
    convert_kernel<<<blocks_for(n), 256, 0, cuda_stream()>>>(x->data, is_bf16(x), y->data, is_bf16(y), n);
    CUDA_CHECK_LAUNCH();
}

extern "C" void tensor_axpy_cuda(float alpha, const tensor_t *x, tensor_t *y) {
    long long n = tensor_numel(y);
    if (!n) return;
    axpy_kernel<<<blocks_for(n), 256, 0, cuda_stream()>>>(alpha, x->data, is_bf16(x), y->data, is_bf16(y), n);
    CUDA_CHECK_LAUNCH();
}

extern "C" void add_row_broadcast_cuda(const tensor_t *v, tensor_t *y) {
    long long n = tensor_numel(y), C = y->shape[y->ndim - 1];
    if (!n) return;
    add_rows_kernel<<<blocks_for(n), 256, 0, cuda_stream()>>>(v->data, is_bf16(v), y->data, is_bf16(y), n, C);
    CUDA_CHECK_LAUNCH();
}

extern "C" void sum_rows_accumulate_cuda(const tensor_t *x, tensor_t *acc) {
    long long C = x->shape[x->ndim - 1], R = C ? tensor_numel(x) / C : 0;
    if (!C) return;
    sum_rows_kernel<<<(int)((C + 127) / 128), 128, 0, cuda_stream()>>>(x->data, is_bf16(x), (float *)acc->data, R, C);
    CUDA_CHECK_LAUNCH();
}
