/* kernels/cuda/norm_cuda.cu — LayerNorm and RMSNorm over the last dim on the GPU, forward and
 * backward. One warp per row; statistics in fp32 with two passes over the row (mean, then the
 * centred variance: no cancellation on Wan's fp32 residual stream); mean and rstd stored f32.
 * x, y, dy, dx bf16 or f32 independently; weight/bias bf16 or f32. dx is overwritten; dweight
 * and dbias (f32) are accumulated (+=) through the deterministic column sums of
 * nn_cuda_common.cuh. Warp sums use xor shuffles, which leave the same bits in every lane. */
#include "nn_cuda.h"
#include "nn_cuda_common.cuh"

#define NORM_WARPS 8 /* rows per block */

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* dtype of an optional parameter pair (weight, bias): either one's, else f32 (unused). */
static dtype_t param_dtype(const tensor_t *a, const tensor_t *b) {
    return a ? a->dtype : b ? b->dtype : DTYPE_F32;
}
static unsigned norm_blocks(int64_t M) { return (unsigned)((M + NORM_WARPS - 1) / NORM_WARPS); }

/* ---- LayerNorm ---------------------------------------------------------------------------------- */

template <class Tx, class Ty, class Tw>
__global__ void layernorm_fwd_kernel(const Tx *x, const Tw *w, const Tw *b, float eps, Ty *y, float *mean,
                                     float *rstd, int64_t M, int C) {
    int64_t row = (int64_t)blockIdx.x * NORM_WARPS + threadIdx.x / 32;
    int lane = threadIdx.x & 31;
    if (row >= M) return;
    const Tx *xr = x + row * C;
    Ty *yr = y + row * C;
    float s = 0.0f;
    for (int c = lane; c < C; c += 32) s += ldf(xr, c);
    float mu = warp_sum(s) / C, v = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float d = ldf(xr, c) - mu;
        v += d * d;
    }
    float r = rsqrtf(warp_sum(v) / C + eps);
    for (int c = lane; c < C; c += 32) {
        float o = (ldf(xr, c) - mu) * r;
        if (w) o *= ldf(w, c);
        if (b) o += ldf(b, c);
        stf(yr, c, o);
    }
    if (lane == 0) mean[row] = mu, rstd[row] = r;
}

/* dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy w. */
template <class Tx, class Tg, class Td, class Tw>
__global__ void layernorm_bwd_kernel(const Tx *x, const Tw *w, const float *mean, const float *rstd, const Tg *dy,
                                     Td *dx, int64_t M, int C) {
    int64_t row = (int64_t)blockIdx.x * NORM_WARPS + threadIdx.x / 32;
    int lane = threadIdx.x & 31;
    if (row >= M) return;
    const Tx *xr = x + row * C;
    const Tg *gr = dy + row * C;
    float mu = mean[row], r = rstd[row], sg = 0.0f, sgx = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float g = ldf(gr, c) * (w ? ldf(w, c) : 1.0f), xh = (ldf(xr, c) - mu) * r;
        sg += g;
        sgx += g * xh;
    }
    sg = warp_sum(sg) / C, sgx = warp_sum(sgx) / C;
    for (int c = lane; c < C; c += 32) {
        float g = ldf(gr, c) * (w ? ldf(w, c) : 1.0f), xh = (ldf(xr, c) - mu) * r;
        stf(dx + row * C, c, r * (g - sg - xh * sgx));
    }
}

/* Column terms of the parameter gradients: dy xhat (dweight) and dy (dbias); rmsnorm: mean = 0. */
template <class Tx, class Tg, int NOUT> struct norm_param_grad_f {
    const Tx *x;
    const Tg *dy;
    const float *mean, *rstd;
    int C;
    __device__ void operator()(int, int64_t r, int c, float *v) const {
        float g = ldf(dy, r * C + c);
        v[0] = g * (ldf(x, r * C + c) - (mean ? mean[r] : 0.0f)) * rstd[r];
        if (NOUT > 1) v[NOUT - 1] = g;
    }
};

extern "C" void layernorm_forward_cuda(const tensor_t *x, const tensor_t *weight, const tensor_t *bias, float eps,
                                       tensor_t *y, tensor_t *mean, tensor_t *rstd) {
    int C = (int)x->shape[x->ndim - 1];
    int64_t M = tensor_numel(x) / C;
    if (M == 0) return;
    with_float_type(x->dtype, [&](auto tx) {
        with_float_type(y->dtype, [&](auto ty) {
            with_float_type(param_dtype(weight, bias), [&](auto tw) {
                typedef TYPE_OF(tx) Tx;
                typedef TYPE_OF(ty) Ty;
                typedef TYPE_OF(tw) Tw;
                layernorm_fwd_kernel<Tx, Ty, Tw><<<norm_blocks(M), NORM_WARPS * 32, 0, cuda_stream()>>>(
                    (const Tx *)x->data, weight ? (const Tw *)weight->data : NULL,
                    bias ? (const Tw *)bias->data : NULL, eps, (Ty *)y->data, (float *)mean->data,
                    (float *)rstd->data, M, C);
                CUDA_CHECK_LAUNCH();
            });
        });
    });
}

extern "C" void layernorm_backward_cuda(const tensor_t *x, const tensor_t *weight, const tensor_t *mean,
                                        const tensor_t *rstd, const tensor_t *dy, tensor_t *dx, tensor_t *dweight,
                                        tensor_t *dbias) {
    int C = (int)x->shape[x->ndim - 1];
    int64_t M = tensor_numel(x) / C;
    with_float_type(x->dtype, [&](auto tx) {
        with_float_type(dy->dtype, [&](auto tg) {
            typedef TYPE_OF(tx) Tx;
            typedef TYPE_OF(tg) Tg;
            if (dweight || dbias) /* before dx: dx may not alias dy, but this order never needs it */
                colsum<2>(norm_param_grad_f<Tx, Tg, 2>{(const Tx *)x->data, (const Tg *)dy->data,
                                                    (const float *)mean->data, (const float *)rstd->data, C},
                          1, M, C, dweight ? (float *)dweight->data : NULL, dbias ? (float *)dbias->data : NULL, 1);
            if (M == 0) return;
            with_float_type(dx->dtype, [&](auto td) {
                with_float_type(param_dtype(weight, NULL), [&](auto tw) {
                    typedef TYPE_OF(td) Td;
                    typedef TYPE_OF(tw) Tw;
                    layernorm_bwd_kernel<Tx, Tg, Td, Tw><<<norm_blocks(M), NORM_WARPS * 32, 0, cuda_stream()>>>(
                        (const Tx *)x->data, weight ? (const Tw *)weight->data : NULL, (const float *)mean->data,
                        (const float *)rstd->data, (const Tg *)dy->data, (Td *)dx->data, M, C);
                    CUDA_CHECK_LAUNCH();
                });
            });
        });
    });
}

/* ---- RMSNorm ------------------------------------------------------------------------------------ */

template <class Tx, class Ty, class Tw>
__global__ void rmsnorm_fwd_kernel(const Tx *x, const Tw *w, float eps, Ty *y, float *rstd, int64_t M, int C) {
    int64_t row = (int64_t)blockIdx.x * NORM_WARPS + threadIdx.x / 32;
    int lane = threadIdx.x & 31;
    if (row >= M) return;
    const Tx *xr = x + row * C;
    float ss = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float v = ldf(xr, c);
        ss += v * v;
    }
    float r = rsqrtf(warp_sum(ss) / C + eps);
    for (int c = lane; c < C; c += 32) stf(y + row * C, c, ldf(xr, c) * r * ldf(w, c));
    if (lane == 0) rstd[row] = r;
}

/* dx = rstd (g - xhat mean(g xhat)), g = dy w, xhat = x rstd. */
template <class Tx, class Tg, class Td, class Tw>
__global__ void rmsnorm_bwd_kernel(const Tx *x, const Tw *w, const float *rstd, const Tg *dy, Td *dx, int64_t M,
                                   int C) {
    int64_t row = (int64_t)blockIdx.x * NORM_WARPS + threadIdx.x / 32;
    int lane = threadIdx.x & 31;
    if (row >= M) return;
    const Tx *xr = x + row * C;
    const Tg *gr = dy + row * C;
    float r = rstd[row], sgx = 0.0f;
    for (int c = lane; c < C; c += 32) sgx += ldf(gr, c) * ldf(w, c) * ldf(xr, c) * r;
    sgx = warp_sum(sgx) / C;
    for (int c = lane; c < C; c += 32) stf(dx + row * C, c, r * (ldf(gr, c) * ldf(w, c) - ldf(xr, c) * r * sgx));
}

extern "C" void rmsnorm_forward_cuda(const tensor_t *x, const tensor_t *weight, float eps, tensor_t *y,
                                     tensor_t *rstd) {
    int C = (int)x->shape[x->ndim - 1];
    int64_t M = tensor_numel(x) / C;
    if (M == 0) return;
    with_float_type(x->dtype, [&](auto tx) {
        with_float_type(y->dtype, [&](auto ty) {
            with_float_type(weight->dtype, [&](auto tw) {
                typedef TYPE_OF(tx) Tx;
                typedef TYPE_OF(ty) Ty;
                typedef TYPE_OF(tw) Tw;
                rmsnorm_fwd_kernel<Tx, Ty, Tw><<<norm_blocks(M), NORM_WARPS * 32, 0, cuda_stream()>>>(
                    (const Tx *)x->data, (const Tw *)weight->data, eps, (Ty *)y->data, (float *)rstd->data, M, C);
                CUDA_CHECK_LAUNCH();
            });
        });
    });
}

extern "C" void rmsnorm_backward_cuda(const tensor_t *x, const tensor_t *weight, const tensor_t *rstd,
                                      const tensor_t *dy, tensor_t *dx, tensor_t *dweight) {
    int C = (int)x->shape[x->ndim - 1];
    int64_t M = tensor_numel(x) / C;
    with_float_type(x->dtype, [&](auto tx) {
        with_float_type(dy->dtype, [&](auto tg) {
            typedef TYPE_OF(tx) Tx;
            typedef TYPE_OF(tg) Tg;
            if (dweight)
                colsum<1>(norm_param_grad_f<Tx, Tg, 1>{(const Tx *)x->data, (const Tg *)dy->data, NULL,
                                                    (const float *)rstd->data, C},
                          1, M, C, (float *)dweight->data, NULL, 1);
            if (M == 0) return;
            with_float_type(dx->dtype, [&](auto td) {
                with_float_type(weight->dtype, [&](auto tw) {
                    typedef TYPE_OF(td) Td;
                    typedef TYPE_OF(tw) Tw;
                    rmsnorm_bwd_kernel<Tx, Tg, Td, Tw><<<norm_blocks(M), NORM_WARPS * 32, 0, cuda_stream()>>>(
                        (const Tx *)x->data, (const Tw *)weight->data, (const float *)rstd->data,
                        (const Tg *)dy->data, (Td *)dx->data, M, C);
                    CUDA_CHECK_LAUNCH();
                });
            });
        });
    });
}
