/* kernels/cuda/norm_cuda.cu — LayerNorm and RMSNorm over the last dim on the GPU, forward and
 * backward (contracts in nn_ops.h), and RMSNorm fused with RoPE into the attention layout (the
 * forward's store rotates and transposes; rope_cuda.cuh). x, y, dy, dx bf16 or f32 independently; weight/bias bf16 or
 * f32; mean and rstd f32; dx is overwritten; dweight and dbias (f32) are accumulated (+=).
 *
 * A row of C elements is held by a row group of tpr threads (one warp, or several warps when C
 * is large) in registers: thread t holds the 8-element chunks t, t + tpr, ... (NV of them), read
 * once from global memory with 16-byte accesses when C % 8 == 0 (scalar otherwise). RMSNorm is
 * LayerNorm with mean 0 and no bias. Statistics are fp32 with two passes over the registers
 * (mean, then the centred variance: no cancellation on Wan's fp32 residual stream). Row sums run
 * in a fixed order: each thread over its chunks in turn, an xor-shuffle tree in the warp (the same
 * bits in every lane), then the warps of the row in order; nothing is atomic, so reruns repeat bit
 * for bit. Rows longer than one register span (512 threads x NV chunks: C > 24576 forward,
 * C > 8192 backward) are walked in segments, reloaded for each pass.
 *
 * Backward: a row group walks NORM_GROUP_ROWS consecutive rows and keeps its columns' dweight and
 * dbias terms in registers, writes one partial row per group, and a column kernel adds those
 * partials in order into dweight/dbias; x and dy are read once in all. (With row segments the
 * parameter terms go through colsum of nn_cuda_common.cuh instead.) Without parameter gradients a
 * group is one row (more rows in flight). LayerNorm's dx may be accumulated (+=) into. */
#include "nn_cuda.h"
#include "nn_cuda_common.cuh"
#include "rope_cuda.cuh"
#include "vec8_cuda.cuh"

#define NORM_BLOCK 256      /* threads per block, unless one row takes more */
#define NORM_MAX_TPR 512    /* threads per row at most (and per block) */
#define NORM_GROUP_ROWS 16  /* rows per row group in the backward with parameter gradients (one partial
                               row each); without them every row is its own group */
#define NORM_BWD_NV 2       /* chunks per thread in the backward (x, dy and two partials in registers) */

/* ---- row layout --------------------------------------------------------------------------------- */

typedef struct norm_layout {
    int nv;    /* chunks per thread and segment (a template argument) */
    int tpr;   /* threads per row: a multiple of 32, at most NORM_MAX_TPR */
    int rpb;   /* row groups per block */
    int nseg;  /* register spans per row (1 unless C is very large) */
} norm_layout_t;

/* The nv of nvs (in order of preference) that leaves the fewest idle chunk slots. */
static norm_layout_t norm_layout(int C, const int *nvs, int count) {
    int64_t nch = (C + 7) / 8;
    norm_layout_t best = {0, 0, 0, 0};
    int64_t best_waste = -1;
    for (int k = 0; k < count; k++) {
        int64_t nw = (nch + 32 * nvs[k] - 1) / (32 * nvs[k]);
        if (nw > NORM_MAX_TPR / 32) nw = NORM_MAX_TPR / 32;
        int64_t span = 32 * nw * nvs[k], nseg = (nch + span - 1) / span, waste = nseg * span - nch;
        if (best_waste < 0 || waste < best_waste) {
            best_waste = waste;
            best.nv = nvs[k], best.tpr = (int)(32 * nw), best.nseg = (int)nseg;
        }
    }
    best.rpb = best.tpr >= NORM_BLOCK ? 1 : NORM_BLOCK / best.tpr;
    return best;
}

/* Calls fn(nv_tag<nv>()) for nv in {2, 4, 6}. */
template <int N> struct nv_tag {
    static constexpr int value = N;
};
template <class Fn> static void with_nv(int nv, Fn &&fn) {
    switch (nv) {
    case 2: fn(nv_tag<2>()); break;
    case 4: fn(nv_tag<4>()); break;
    case 6: fn(nv_tag<6>()); break;
    default: CHECK(0, "norm: no kernel for %d chunks per thread", nv);
    }
}

/* ---- device pieces ------------------------------------------------------------------------------ */

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* v[k] = the sum of v[k] over the tpr threads of this thread's row group, in a fixed order (the
 * same bits in all of them). Every thread of the block must call it (it may __syncthreads). */
template <int N> __device__ __forceinline__ void row_sum(float (&v)[N], int tpr) {
    __shared__ float sh[NORM_MAX_TPR / 32][N];
#pragma unroll
    for (int k = 0; k < N; k++) v[k] = warp_sum(v[k]);
    if (tpr == 32) return;
    int warp = threadIdx.x / 32, first = threadIdx.x / tpr * (tpr / 32);
    __syncthreads(); /* the previous call's readers are done */
    if ((threadIdx.x & 31) == 0)
#pragma unroll
        for (int k = 0; k < N; k++) sh[warp][k] = v[k];
    __syncthreads();
#pragma unroll
    for (int k = 0; k < N; k++) {
        float s = sh[first][k];
        for (int w = 1; w < tpr / 32; w++) s += sh[first + w][k];
        v[k] = s;
    }
}

/* Where this thread's chunk j of segment s of a row starts, and how many of its 8 elements exist. */
struct norm_span {
    int t, tpr, span, C;
    __device__ int start(int s, int j) const { return 8 * (s * span + j * tpr + t); }
    __device__ int count(int s, int j) const { return C - start(s, j); }
};

/* v[j] = chunk j of segment s of row r (zeros where the row has no elements, or r is dead). */
template <int NV, class T>
__device__ __forceinline__ void load_span(float (&v)[NV][8], const T *p, int64_t r, bool live, norm_span sp, int s,
                                          bool vec) {
#pragma unroll
    for (int j = 0; j < NV; j++) {
        int e = sp.start(s, j), n = sp.count(s, j);
        if (live && n > 0) ld8(p, r * sp.C + e, n, vec, v[j]);
        else
#pragma unroll
            for (int i = 0; i < 8; i++) v[j][i] = 0.0f;
    }
}

/* ---- forward: y = (x - mean) rstd w + b; RMSNorm: mean == NULL (0), b == NULL -------------------- */

/* The fused RMSNorm + RoPE output (tab NULL: none, y has x's layout): row b L + l of x [B, L, H D]
 * is written rotated to y [B, H, L, D] (rmsnorm_rope_forward). */
typedef struct norm_rope {
    const float2 *tab;
    rope_grid_t g;
    int D;
    int64_t L;
} norm_rope_t;

/* Stores the n <= 8 normalised values o of row `row` from column e on: to y's row (plain), or
 * rotated into the attention layout. vec: 16-byte stores (C % 8 == 0, aligned). */
template <bool ROPE, class Ty>
__device__ __forceinline__ void norm_store(Ty *y, float (&o)[8], int64_t row, int e, int n, int C, bool vec,
                                           const norm_rope_t &ro, const int off[3]) {
    if (!ROPE) {
        st8(y, row * C + e, n, vec, o);
        return;
    }
    const int64_t b = row / ro.L, l = row - b * ro.L, H = C / ro.D;
    if (vec && ro.D % 8 == 0) { /* the chunk is within one head */
        const int h = e / ro.D, d = e - h * ro.D;
        rope_rotate8(o, d, n, ro.tab, ro.g, off, 1.0f);
        st8(y, ((b * H + h) * ro.L + l) * ro.D + d, n, vec, o);
        return;
    }
#pragma unroll
    for (int k = 0; k < 4; k++) { /* pair by pair (pairs never straddle heads: D is even) */
        if (2 * k >= n) break;
        const int col = e + 2 * k, h = col / ro.D, d = col - h * ro.D;
        float t[8] = {o[2 * k], o[2 * k + 1], 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
        rope_rotate8(t, d, 2, ro.tab, ro.g, off, 1.0f);
        const int64_t at = ((b * H + h) * ro.L + l) * ro.D + d;
        stf(y, at, t[0]), stf(y, at + 1, t[1]);
    }
}

template <int NV, bool ROPE, class Tx, class Ty, class Tw>
__global__ void __launch_bounds__(NORM_MAX_TPR)
    norm_fwd_kernel(const Tx *x, const Tw *w, const Tw *b, float eps, Ty *y, float *mean, float *rstd, int64_t M,
                    int C, int tpr, int nseg, int vec, norm_rope_t ro) {
    const norm_span sp = {(int)(threadIdx.x % tpr), tpr, tpr * NV, C};
    const int64_t row = (int64_t)blockIdx.x * (blockDim.x / tpr) + threadIdx.x / tpr;
    const bool live = row < M;
    float xv[NV][8];
    if (nseg == 1) load_span(xv, x, row, live, sp, 0, vec);
    float mu = 0.0f, acc[1] = {0.0f};
    if (mean) {
        for (int s = 0; s < nseg; s++) {
            if (nseg > 1) load_span(xv, x, row, live, sp, s, vec);
#pragma unroll
            for (int j = 0; j < NV; j++)
#pragma unroll
                for (int i = 0; i < 8; i++) acc[0] += xv[j][i]; /* absent elements are 0 */
        }
        row_sum(acc, tpr);
        mu = acc[0] / C, acc[0] = 0.0f;
    }
    for (int s = 0; s < nseg; s++) {
        if (nseg > 1) load_span(xv, x, row, live, sp, s, vec);
#pragma unroll
        for (int j = 0; j < NV; j++)
#pragma unroll
            for (int i = 0; i < 8; i++)
                if (i < sp.count(s, j)) {
                    float d = xv[j][i] - mu;
                    acc[0] += d * d;
                }
    }
    row_sum(acc, tpr);
    const float r = rsqrtf(acc[0] / C + eps);
    if (!live) return;
    int off[3] = {0, 0, 0};
    if (ROPE) rope_token_offsets(ro.g, row % ro.L, off);
    for (int s = 0; s < nseg; s++) {
        if (nseg > 1) load_span(xv, x, row, live, sp, s, vec);
#pragma unroll
        for (int j = 0; j < NV; j++) {
            int e = sp.start(s, j), n = sp.count(s, j);
            if (n <= 0) continue;
            float wv[8], bv[8], o[8];
            if (w) ld8(w, e, n, vec, wv);
            if (b) ld8(b, e, n, vec, bv);
#pragma unroll
            for (int i = 0; i < 8; i++) {
                o[i] = (xv[j][i] - mu) * r;
                if (w) o[i] *= wv[i];
                if (b) o[i] += bv[i];
            }
            norm_store<ROPE>(y, o, row, e, n, C, vec, ro, off);
        }
    }
    if (sp.t == 0) {
        if (mean) mean[row] = mu;
        rstd[row] = r;
    }
}

template <class Tx, class Ty, class Tw>
static void norm_forward(const tensor_t *x, const tensor_t *weight, const tensor_t *bias, float eps, tensor_t *y,
                         tensor_t *mean, tensor_t *rstd, norm_rope_t ro) {
    int C = (int)x->shape[x->ndim - 1];
    int64_t M = C ? tensor_numel(x) / C : 0;
    if (M == 0) return;
    static const int nvs[] = {6, 4, 2};
    norm_layout_t lay = norm_layout(C, nvs, 3);
    const void *ptrs[] = {x->data, y->data, weight ? weight->data : NULL, bias ? bias->data : NULL};
    int vec = C % 8 == 0;
    for (int k = 0; k < 4; k++) vec = vec && vec8_aligned(ptrs[k]);
    int64_t blocks = (M + lay.rpb - 1) / lay.rpb;
    CHECK(blocks <= 0x7fffffff, "norm: %lld rows exceed the grid", (long long)M);
    with_nv(lay.nv, [&](auto nv) {
        auto kernel = ro.tab ? norm_fwd_kernel<decltype(nv)::value, true, Tx, Ty, Tw>
                             : norm_fwd_kernel<decltype(nv)::value, false, Tx, Ty, Tw>;
        kernel<<<(unsigned)blocks, lay.rpb * lay.tpr, 0, cuda_stream()>>>(
            (const Tx *)x->data, weight ? (const Tw *)weight->data : NULL, bias ? (const Tw *)bias->data : NULL, eps,
            (Ty *)y->data, mean ? (float *)mean->data : NULL, (float *)rstd->data, M, C, lay.tpr, lay.nseg, vec, ro);
        CUDA_CHECK_LAUNCH();
    });
}

/* dtype of an optional parameter pair (weight, bias): either one's, else f32 (unused). */
static dtype_t param_dtype(const tensor_t *a, const tensor_t *b) {
    return a ? a->dtype : b ? b->dtype : DTYPE_F32;
}

static void norm_forward_any(const tensor_t *x, const tensor_t *weight, const tensor_t *bias, float eps, tensor_t *y,
                             tensor_t *mean, tensor_t *rstd, norm_rope_t ro) {
    with_float_type(x->dtype, [&](auto tx) {
        with_float_type(y->dtype, [&](auto ty) {
            with_float_type(param_dtype(weight, bias), [&](auto tw) {
                norm_forward<TYPE_OF(tx), TYPE_OF(ty), TYPE_OF(tw)>(x, weight, bias, eps, y, mean, rstd, ro);
            });
        });
    });
}

extern "C" void layernorm_forward_cuda(const tensor_t *x, const tensor_t *weight, const tensor_t *bias, float eps,
                                       tensor_t *y, tensor_t *mean, tensor_t *rstd) {
    norm_forward_any(x, weight, bias, eps, y, mean, rstd, norm_rope_t{});
}

extern "C" void rmsnorm_forward_cuda(const tensor_t *x, const tensor_t *weight, float eps, tensor_t *y,
                                     tensor_t *rstd) {
    norm_forward_any(x, weight, NULL, eps, y, NULL, rstd, norm_rope_t{});
}

extern "C" void rmsnorm_rope_forward_cuda(const tensor_t *x, const tensor_t *weight, float eps, int F, int Hg, int Wg,
                                          tensor_t *y, tensor_t *rstd) {
    norm_rope_t ro;
    ro.D = (int)y->shape[3], ro.L = x->shape[1];
    if (tensor_numel(x) == 0) return;
    ro.tab = rope_table_build(F, Hg, Wg, ro.D, &ro.g);
    norm_forward_any(x, weight, NULL, eps, y, NULL, rstd, ro);
}

/* ---- backward: dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy w, xhat = (x - mean) rstd ------- */

/* wv = chunk j of segment s of the weight (an L1 hit after the first row), or ones without one. */
template <class Tw>
__device__ __forceinline__ void weight_chunk(float (&wv)[8], const Tw *w, norm_span sp, int s, int j, bool vec) {
    int n = sp.count(s, j);
    if (w && n > 0) ld8(w, sp.start(s, j), n, vec, wv);
    else
#pragma unroll
        for (int i = 0; i < 8; i++) wv[i] = 1.0f;
}

/* part (NULL: no parameter gradients here): row group k of ng writes sum over its rows of dy xhat
 * (want & 1) to part[k, :] and of dy (want & 2) to part[ng + k, :]. RMSNorm: mean == NULL. */
template <int NV, class Tx, class Tg, class Td, class Tw>
__global__ void __launch_bounds__(NORM_MAX_TPR)
    norm_bwd_kernel(const Tx *x, const Tw *w, const float *mean, const float *rstd, const Tg *dy, Td *dx,
                    float *part, int want, int accumulate, int64_t M, int C, int tpr, int nseg, int vec,
                    int grows) {
    const norm_span sp = {(int)(threadIdx.x % tpr), tpr, tpr * NV, C};
    const int64_t grp = (int64_t)blockIdx.x * (blockDim.x / tpr) + threadIdx.x / tpr;
    const int64_t ng = (M + grows - 1) / grows;
    float xv[NV][8], gv[NV][8], pw[NV][8], pb[NV][8];
#pragma unroll
    for (int j = 0; j < NV; j++)
#pragma unroll
        for (int i = 0; i < 8; i++) pw[j][i] = 0.0f, pb[j][i] = 0.0f;
    for (int k = 0; k < grows; k++) { /* the same trip count in every group: row_sum syncs */
        const int64_t row = grp * grows + k;
        const bool live = row < M;
        const float mu = live && mean ? mean[row] : 0.0f, r = live ? rstd[row] : 0.0f;
        auto load = [&](int s) {
            load_span(xv, x, row, live, sp, s, vec);
            load_span(gv, dy, row, live, sp, s, vec);
        };
        if (nseg == 1) load(0);
        float acc[2] = {0.0f, 0.0f};
        for (int s = 0; s < nseg; s++) {
            if (nseg > 1) load(s);
#pragma unroll
            for (int j = 0; j < NV; j++) {
                float wv[8];
                weight_chunk(wv, w, sp, s, j, vec);
#pragma unroll
                for (int i = 0; i < 8; i++)
                    if (i < sp.count(s, j)) {
                        float g = gv[j][i] * wv[i], xh = (xv[j][i] - mu) * r;
                        acc[0] += g;
                        acc[1] += g * xh;
                    }
            }
        }
        row_sum(acc, tpr);
        const float sg = mean ? acc[0] / C : 0.0f, sgx = acc[1] / C;
        if (!live) continue;
        for (int s = 0; s < nseg; s++) {
            if (nseg > 1) load(s);
#pragma unroll
            for (int j = 0; j < NV; j++) {
                int e = sp.start(s, j), n = sp.count(s, j);
                if (n <= 0) continue;
                float o[8], wv[8], prev[8];
                weight_chunk(wv, w, sp, s, j, vec);
                if (accumulate) ld8(dx, row * C + e, n, vec, prev);
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    float g = gv[j][i] * wv[i], xh = (xv[j][i] - mu) * r;
                    o[i] = r * (g - sg - xh * sgx);
                    if (accumulate) o[i] += prev[i];
                    if (part) pw[j][i] += gv[j][i] * xh, pb[j][i] += gv[j][i];
                }
                st8(dx, row * C + e, n, vec, o);
            }
        }
    }
    if (!part || grp >= ng) return;
#pragma unroll
    for (int j = 0; j < NV; j++) {
        int e = sp.start(0, j), n = sp.count(0, j);
        if (n <= 0) continue;
        if (want & 1) st8(part, grp * C + e, n, vec, pw[j]);
        if (want & 2) st8(part, (ng + grp) * C + e, n, vec, pb[j]);
    }
}

/* out0[c] += sum over k < ng of part[k, c], out1[c] += the same of part[ng + k, c] (each if
 * given), in a fixed order: rows y, y + 32, ... per thread row y, then the 32 thread rows. */
__global__ void __launch_bounds__(1024) norm_partial_sum_kernel(const float *part, int64_t ng, int C, float *out0,
                                                                float *out1) {
    __shared__ float sh[2][32][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    float a0 = 0.0f, a1 = 0.0f;
    if (c < C)
        for (int64_t k = threadIdx.y; k < ng; k += 32) {
            if (out0) a0 += part[k * C + c];
            if (out1) a1 += part[(ng + k) * C + c];
        }
    sh[0][threadIdx.y][threadIdx.x] = a0, sh[1][threadIdx.y][threadIdx.x] = a1;
    __syncthreads();
    if (threadIdx.y != 0 || c >= C) return;
    for (int y = 1; y < 32; y++) a0 += sh[0][y][threadIdx.x], a1 += sh[1][y][threadIdx.x];
    if (out0) out0[c] += a0;
    if (out1) out1[c] += a1;
}

/* Column terms for colsum (rows walked in segments only): dy xhat and dy; rmsnorm: mean = 0. */
template <class Tx, class Tg> struct norm_param_grad_f {
    const Tx *x;
    const Tg *dy;
    const float *mean, *rstd;
    int C;
    __device__ void operator()(int, int64_t r, int c, float *v) const {
        float g = ldf(dy, r * C + c);
        v[0] = g * (ldf(x, r * C + c) - (mean ? mean[r] : 0.0f)) * rstd[r];
        v[1] = g;
    }
};

template <class Tx, class Tg, class Td, class Tw>
static void norm_backward(const tensor_t *x, const tensor_t *weight, const tensor_t *mean, const tensor_t *rstd,
                          const tensor_t *dy, tensor_t *dx, int accumulate, tensor_t *dweight, tensor_t *dbias) {
    int C = (int)x->shape[x->ndim - 1];
    int64_t M = C ? tensor_numel(x) / C : 0;
    if (M == 0) return;
    static const int nvs[] = {NORM_BWD_NV};
    norm_layout_t lay = norm_layout(C, nvs, 1);
    const void *ptrs[] = {x->data, dy->data, dx->data, weight ? weight->data : NULL};
    int vec = C % 8 == 0;
    for (int k = 0; k < 4; k++) vec = vec && vec8_aligned(ptrs[k]);
    float *dw = dweight ? (float *)dweight->data : NULL, *db = dbias ? (float *)dbias->data : NULL;
    const float *mu = mean ? (const float *)mean->data : NULL;
    int want = (dw ? 1 : 0) | (db ? 2 : 0), fused = want && lay.nseg == 1;
    if (want && !fused)
        colsum<2>(norm_param_grad_f<Tx, Tg>{(const Tx *)x->data, (const Tg *)dy->data, mu, (const float *)rstd->data,
                                            C},
                  1, M, C, dw, db, 1);
    int grows = fused ? NORM_GROUP_ROWS : 1;
    int64_t ng = (M + grows - 1) / grows, blocks = (ng + lay.rpb - 1) / lay.rpb;
    CHECK(blocks <= 0x7fffffff, "norm: %lld rows exceed the grid", (long long)M);
    float *part = fused ? (float *)nn_cuda_scratch(sizeof(float) * 2 * (size_t)ng * C) : NULL;
    norm_bwd_kernel<NORM_BWD_NV, Tx, Tg, Td, Tw><<<(unsigned)blocks, lay.rpb * lay.tpr, 0, cuda_stream()>>>(
        (const Tx *)x->data, weight ? (const Tw *)weight->data : NULL, mu, (const float *)rstd->data,
        (const Tg *)dy->data, (Td *)dx->data, part, want, accumulate, M, C, lay.tpr, lay.nseg, vec, grows);
    CUDA_CHECK_LAUNCH();
    if (!fused) return;
    norm_partial_sum_kernel<<<(unsigned)((C + 31) / 32), dim3(32, 32), 0, cuda_stream()>>>(part, ng, C, dw, db);
    CUDA_CHECK_LAUNCH();
}

static void norm_backward_any(const tensor_t *x, const tensor_t *weight, const tensor_t *mean, const tensor_t *rstd,
                              const tensor_t *dy, tensor_t *dx, int accumulate, tensor_t *dweight,
                              tensor_t *dbias) {
    with_float_type(x->dtype, [&](auto tx) {
        with_float_type(dy->dtype, [&](auto tg) {
            with_float_type(dx->dtype, [&](auto td) {
                with_float_type(param_dtype(weight, NULL), [&](auto tw) {
                    norm_backward<TYPE_OF(tx), TYPE_OF(tg), TYPE_OF(td), TYPE_OF(tw)>(x, weight, mean, rstd, dy, dx,
                                                                                      accumulate, dweight, dbias);
                });
            });
        });
    });
}

extern "C" void layernorm_backward_cuda(const tensor_t *x, const tensor_t *weight, const tensor_t *mean,
                                        const tensor_t *rstd, const tensor_t *dy, tensor_t *dx, int accumulate,
                                        tensor_t *dweight, tensor_t *dbias) {
    norm_backward_any(x, weight, mean, rstd, dy, dx, accumulate, dweight, dbias);
}

extern "C" void rmsnorm_backward_cuda(const tensor_t *x, const tensor_t *weight, const tensor_t *rstd,
                                      const tensor_t *dy, tensor_t *dx, tensor_t *dweight) {
    norm_backward_any(x, weight, NULL, rstd, dy, dx, 0, dweight, NULL);
}
