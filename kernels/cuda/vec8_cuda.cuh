/* kernels/cuda/vec8_cuda.cuh — chunked loads and stores for the memory-bound row kernels of
 * norm_cuda.cu and layout_cuda.cu: a chunk is 8 consecutive elements moved through float.
 *   ld8(p, i, n, vec, v): v[k] = p[i + k] for k < n, 0 for n <= k < 8;
 *   st8(p, i, n, vec, v): p[i + k] = v[k] for k < n (rounding to nearest even for bf16).
 * With vec (the caller guarantees n == 8 and p + i 16-byte aligned) a chunk is one 16-byte access
 * for bf16 and two for f32; otherwise it is up to 8 scalar accesses. The values are the same bits
 * either way (ldf/stf of nn_cuda_common.cuh). vec8_aligned(p) tests a base pointer. */
#ifndef SLA_VEC8_CUDA_CUH
#define SLA_VEC8_CUDA_CUH

#include "nn_cuda_common.cuh"

static inline bool vec8_aligned(const void *p) { return ((uintptr_t)p & 15) == 0; }

__device__ __forceinline__ void ld8_vec(const float *p, float *v) {
    float4 a = *(const float4 *)p, b = *(const float4 *)(p + 4);
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}
__device__ __forceinline__ void ld8_vec(const bf16 *p, float *v) {
    uint4 u = *(const uint4 *)p;
    const __nv_bfloat162 *h = (const __nv_bfloat162 *)&u;
#pragma unroll
    for (int k = 0; k < 4; k++) {
        float2 f = __bfloat1622float2(h[k]);
        v[2 * k] = f.x, v[2 * k + 1] = f.y;
    }
}
__device__ __forceinline__ void st8_vec(float *p, const float *v) {
    *(float4 *)p = make_float4(v[0], v[1], v[2], v[3]);
    *(float4 *)(p + 4) = make_float4(v[4], v[5], v[6], v[7]);
}
__device__ __forceinline__ void st8_vec(bf16 *p, const float *v) {
    uint4 u;
    __nv_bfloat162 *h = (__nv_bfloat162 *)&u;
#pragma unroll
    for (int k = 0; k < 4; k++) h[k] = __floats2bfloat162_rn(v[2 * k], v[2 * k + 1]);
    *(uint4 *)p = u;
}

template <class T> __device__ __forceinline__ void ld8(const T *p, int64_t i, int n, bool vec, float *v) {
    if (vec) {
        ld8_vec(p + i, v);
        return;
    }
#pragma unroll
    for (int k = 0; k < 8; k++) v[k] = k < n ? ldf(p, i + k) : 0.0f;
}
template <class T> __device__ __forceinline__ void st8(T *p, int64_t i, int n, bool vec, const float *v) {
    if (vec) {
        st8_vec(p + i, v);
        return;
    }
#pragma unroll
    for (int k = 0; k < 8; k++)
        if (k < n) stf(p, i + k, v[k]);
}

#endif
