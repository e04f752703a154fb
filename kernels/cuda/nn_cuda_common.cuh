/* kernels/cuda/nn_cuda_common.cuh — shared by the nn_*.cu / *_cuda.cu files of nn_cuda.h:
 * bf16/f32 loads and stores through float, the host-side dtype switch, grid sizing, the
 * backend's grow-only scratch buffer, and two deterministic reductions:
 *   colsum<NOUT>(f, G, R, C, out0, out1, accumulate): out_k[g, c] (= or +=) sum over the R rows
 *     of group g of f(g, r, c)[k] — bias, norm-weight, modulation and gate gradients;
 *   reduce_sum(f, n): sum over i < n of f(i) in fp64 — the loss and the squared norm.
 * Both sum in a fixed order that depends only on the sizes (no atomics), so results repeat
 * bit for bit. Also ew_launch(f, n, vec), the vectorised elementwise kernel of the pointwise ops
 * (16-byte loads and stores, several vectors in flight per thread, per-sample broadcast vectors
 * indexed once per vector). Device code only; C code uses nn_cuda.h. */
#ifndef SLA_NN_CUDA_COMMON_CUH
#define SLA_NN_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <stdint.h>

#include "../tensor.h"
#include "cuda_common.cuh"

typedef __nv_bfloat16 bf16;

__device__ __forceinline__ float ldf(const float *p, int64_t i) { return p[i]; }
__device__ __forceinline__ float ldf(const bf16 *p, int64_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void stf(float *p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void stf(bf16 *p, int64_t i, float v) { p[i] = __float2bfloat16_rn(v); }

template <class T> struct type_tag {
    typedef T type;
};

/* Calls fn(type_tag<T>()) with T = bf16 or float by dtype (nn_ops.c admitted only those two). */
template <class Fn> static inline void with_float_type(dtype_t dt, Fn &&fn) {
    CHECK(dt == DTYPE_BF16 || dt == DTYPE_F32, "CUDA op given a %s tensor; expected bfloat16 or float32",
          dtype_name(dt));
    if (dt == DTYPE_BF16) fn(type_tag<bf16>());
    else fn(type_tag<float>());
}
#define TYPE_OF(tag) typename decltype(tag)::type

/* Grid of a grid-stride loop over n items: enough blocks to fill the GPU, never more than n needs. */
static inline unsigned grid_for(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    if (b > (1 << 16)) b = 1 << 16;
    return (unsigned)(b < 1 ? 1 : b);
}

#define GRID_STRIDE(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

/* A device buffer of at least `bytes`, valid until the next call (ops on one stream use it one
 * after another). Grows by reallocation (after synchronising), so steady state never allocates. */
void *nn_cuda_scratch(size_t bytes);

/* ---- column sums ------------------------------------------------------------------------------- */

#define COLSUM_CHUNK 256 /* rows per partial sum */
#define COLSUM_ROWS 8    /* threadIdx.y extent */

template <int NOUT, class F>
__global__ void colsum_partial_kernel(F f, int64_t R, int C, int64_t chunk, int nchunks, float *partial) {
    __shared__ float sh[NOUT][COLSUM_ROWS][33];
    int c = blockIdx.x * 32 + threadIdx.x, ch = blockIdx.y, g = blockIdx.z;
    float acc[NOUT];
    for (int k = 0; k < NOUT; k++) acc[k] = 0.0f;
    int64_t r0 = (int64_t)ch * chunk, r1 = r0 + chunk < R ? r0 + chunk : R;
    if (c < C)
        for (int64_t r = r0 + threadIdx.y; r < r1; r += COLSUM_ROWS) {
            float v[NOUT];
            f(g, r, c, v);
            for (int k = 0; k < NOUT; k++) acc[k] += v[k];
        }
    for (int k = 0; k < NOUT; k++) sh[k][threadIdx.y][threadIdx.x] = acc[k];
    __syncthreads();
    if (threadIdx.y == 0 && c < C)
        for (int k = 0; k < NOUT; k++) {
            float s = 0.0f;
            for (int y = 0; y < COLSUM_ROWS; y++) s += sh[k][y][threadIdx.x];
            partial[(((int64_t)k * gridDim.z + g) * nchunks + ch) * C + c] = s;
        }
}

template <int NOUT>
__global__ void colsum_finish_kernel(const float *partial, int G, int C, int nchunks, float *out0, float *out1,
                                     int accumulate) {
    GRID_STRIDE(i, (int64_t)G * C) {
        int64_t g = i / C, c = i % C;
        for (int k = 0; k < NOUT; k++) {
            float *out = k == 0 ? out0 : out1;
            if (!out) continue;
            /* in chunk order; eight loads in flight before their adds */
            const float *pp = partial + ((int64_t)k * G + g) * nchunks * C + c;
            float s = 0.0f;
            int ch = 0;
            for (; ch + 8 <= nchunks; ch += 8) {
                float v[8];
#pragma unroll
                for (int u = 0; u < 8; u++) v[u] = pp[(int64_t)(ch + u) * C];
#pragma unroll
                for (int u = 0; u < 8; u++) s += v[u];
            }
            for (; ch < nchunks; ch++) s += pp[(int64_t)ch * C];
            out[i] = accumulate ? out[i] + s : s;
        }
    }
}

template <int NOUT, class F>
static void colsum(F f, int G, int64_t R, int C, float *out0, float *out1, int accumulate) {
    CHECK(G >= 1 && G <= 65535, "colsum: %d groups exceed the grid", G);
    if (C == 0) return;
    int64_t chunk = COLSUM_CHUNK, nch = (R + chunk - 1) / chunk;
    if (nch > 65535) chunk = (R + 65534) / 65535, nch = (R + chunk - 1) / chunk;
    if (nch < 1) nch = 1;
    float *partial = (float *)nn_cuda_scratch(sizeof(float) * NOUT * (size_t)G * nch * C);
    dim3 grid((C + 31) / 32, (unsigned)nch, G), block(32, COLSUM_ROWS);
    colsum_partial_kernel<NOUT><<<grid, block, 0, cuda_stream()>>>(f, R, C, chunk, (int)nch, partial);
    CUDA_CHECK_LAUNCH();
    colsum_finish_kernel<NOUT><<<grid_for((int64_t)G * C, 256), 256, 0, cuda_stream()>>>(partial, G, C, (int)nch,
                                                                                          out0, out1, accumulate);
    CUDA_CHECK_LAUNCH();
}

/* ---- fp64 sum over elements ---------------------------------------------------------------------- */

#define REDUCE_THREADS 256
#define REDUCE_MAX_BLOCKS 1024

/* Tree over a block's threads in a fixed order; the result is in sh[0]. */
__device__ __forceinline__ void block_tree_sum(double *sh) {
    for (int s = REDUCE_THREADS / 2; s > 0; s >>= 1) {
        __syncthreads();
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
    }
    __syncthreads();
}

template <class F> __global__ void reduce_partial_kernel(F f, int64_t n, double *partial) {
    __shared__ double sh[REDUCE_THREADS];
    double acc = 0.0;
    GRID_STRIDE(i, n) acc += f(i);
    sh[threadIdx.x] = acc;
    block_tree_sum(sh);
    if (threadIdx.x == 0) partial[blockIdx.x] = sh[0];
}

/* Sums partial[0..nblocks) in a fixed order into partial[nblocks] and returns it (synchronises). */
double reduce_finish(double *partial, int nblocks);
/* Returns sum over i < n of f(i) (f may also write per-element outputs); synchronises. */
template <class F> static double reduce_sum(F f, int64_t n) {
    int64_t nb = (n + REDUCE_THREADS * 8 - 1) / (REDUCE_THREADS * 8);
    int nblocks = (int)(nb < 1 ? 1 : nb > REDUCE_MAX_BLOCKS ? REDUCE_MAX_BLOCKS : nb);
    double *partial = (double *)nn_cuda_scratch(sizeof(double) * (nblocks + 1));
    reduce_partial_kernel<<<nblocks, REDUCE_THREADS, 0, cuda_stream()>>>(f, n, partial);
    CUDA_CHECK_LAUNCH();
    return reduce_finish(partial, nblocks);
}

/* ---- vectorised elementwise kernels -------------------------------------------------------------- */
/* ew_launch(f, n, vec) runs the functor f over elements [0, n) of its tensors. f gives
 *   IN_BYTES          the bytes it reads per element (sets how many vectors a thread keeps in flight);
 *   load<V>(i)        a struct holding elements i .. i+V-1 of its inputs (packs, below);
 *   store<V>(i, in)   computes those V elements, one by one with the scalar formula, and stores them.
 * With vec (every pointer 16-byte aligned) V = EW_VEC: 16-byte loads and stores, the last n % EW_VEC
 * elements one at a time; else V = 1. A thread loads all its vectors before it stores any, and each
 * element is read and written by one thread only, so outputs may alias inputs exactly. */

#define EW_VEC 8      /* elements per vector: 16 bytes of bf16, 32 of float */
#define EW_BLOCK 256

template <class T, int V> struct alignas(sizeof(T) * V < 16 ? sizeof(T) * V : 16) pack {
    T v[V];
};
template <int V, class T> __device__ __forceinline__ pack<T, V> ldp(const T *p, int64_t i) {
    return *(const pack<T, V> *)(p + i);
}
template <int V, class T> __device__ __forceinline__ void stp(T *p, int64_t i, const pack<T, V> &x) {
    *(pack<T, V> *)(p + i) = x;
}

static inline bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

/* a / d for a >= 0, d > 0, in 32-bit arithmetic when both fit. */
__device__ __forceinline__ int64_t ew_div(int64_t a, int64_t d) {
    return ((uint64_t)a | (uint64_t)d) >> 32 ? a / d : (int64_t)((uint32_t)a / (uint32_t)d);
}

/* Elements i .. i+V-1 of s[i / LC * C + i % C]: a [B, C] vector broadcast over the L tokens of a
 * [B, L, C] tensor (LC = L*C). rows: V divides C and s is 16-byte aligned, so the V elements lie in one
 * row and come in one vector load; otherwise one index per element. */
template <int V, class T>
__device__ __forceinline__ pack<T, V> ld_bcast(const T *s, int64_t i, int64_t LC, int64_t C, bool rows) {
    if (V > 1 && rows) {
        int64_t b = ew_div(i, LC), c = i - b * LC;
        return ldp<V>(s, b * C + (c - ew_div(c, C) * C));
    }
    pack<T, V> r;
#pragma unroll
    for (int k = 0; k < V; k++) r.v[k] = s[(i + k) / LC * C + (i + k) % C];
    return r;
}

template <int V, int U, class F> __global__ void __launch_bounds__(EW_BLOCK) ew_kernel(F f, int64_t n) {
    int64_t nv = n / V, v0 = (int64_t)blockIdx.x * U * EW_BLOCK + threadIdx.x;
    decltype(f.template load<V>(0)) in[U];
#pragma unroll
    for (int u = 0; u < U; u++)
        if (v0 + u * EW_BLOCK < nv) in[u] = f.template load<V>((v0 + u * EW_BLOCK) * V);
#pragma unroll
    for (int u = 0; u < U; u++)
        if (v0 + u * EW_BLOCK < nv) f.template store<V>((v0 + u * EW_BLOCK) * V, in[u]);
    if (V > 1 && blockIdx.x == gridDim.x - 1) { /* the n % V tail, fewer than EW_BLOCK elements */
        int64_t i = nv * V + threadIdx.x;
        if (i < n) f.template store<1>(i, f.template load<1>(i));
    }
}

template <int V, class F> static void ew_launch_v(F f, int64_t n) {
    constexpr int per = 128 / (V * F::IN_BYTES), U = per < 1 ? 1 : per > 4 ? 4 : per; /* ~128 B in flight */
    int64_t b = (n / V + U * EW_BLOCK - 1) / (U * EW_BLOCK);
    CHECK(b < (1ll << 31), "elementwise op: %lld elements exceed the grid", (long long)n);
    ew_kernel<V, U><<<(unsigned)(b < 1 ? 1 : b), EW_BLOCK, 0, cuda_stream()>>>(f, n);
    CUDA_CHECK_LAUNCH();
}

template <class F> static void ew_launch(F f, int64_t n, bool vec) {
    if (n <= 0) return;
    if (vec) ew_launch_v<EW_VEC>(f, n);
    else ew_launch_v<1>(f, n);
}

#endif
