/* kernels/cuda/layout_cuda.cu — the data-movement ops of nn_ops.h on the GPU: 3-D RoPE fused with
 * the [B,L,H,D] -> [B,H,L,D] head transpose (and its inverse rotation back), the plain head
 * transpose, patchify/unpatchify and their adjoints.
 *
 * RoPE: a small table of (cos, sin) per axis position and pair is built in fp64 (Wan computes its
 * rotations in fp64) and stored f32; the rotation itself is fp32 with one rounding at the store.
 * Row kernels give one warp per D-row, so loads and stores are contiguous in D on both sides of
 * the transpose. Permutations copy values exactly (only a dtype change rounds). All outputs
 * are overwritten. */
#include "nn_cuda.h"
#include "nn_cuda_common.cuh"

#define ROW_WARPS 8 /* D-rows per block */

/* ---- RoPE ------------------------------------------------------------------------------------------ */

typedef struct rope_grid {
    int F, Hg, Wg, pf, ph, pw;
} rope_grid_t;

/* tab: F*pf entries (frame axis), then Hg*ph (rows), then Wg*pw (columns): (cos, sin) of
 * pos * 10000^(-2k / width), width = 2 * pairs of the axis. */
__global__ void rope_table_kernel(rope_grid_t g, float2 *tab) {
    int nf = g.F * g.pf, nh = g.Hg * g.ph, n = nf + nh + g.Wg * g.pw;
    GRID_STRIDE(i, n) {
        int j = (int)i, pairs;
        if (j < nf) pairs = g.pf;
        else if (j < nf + nh) j -= nf, pairs = g.ph;
        else j -= nf + nh, pairs = g.pw;
        int pos = j / pairs, k = j % pairs;
        double ang = pos * pow(10000.0, -2.0 * k / (2.0 * pairs)), s, c;
        sincos(ang, &s, &c);
        tab[i] = make_float2((float)c, (float)s);
    }
}

/* dir +1: src [B,L,H,D] -> dst [B,H,L,D] rotated by +angle; dir -1: [B,H,L,D] -> [B,L,H,D] by
 * -angle. Block: ROW_WARPS tokens l of one (b, h) = blockIdx.y; lanes over pairs. */
template <class Ti, class To>
__global__ void rope_kernel(const Ti *src, To *dst, const float2 *tab, rope_grid_t g, int H, int D, int dir) {
    int64_t L = (int64_t)g.F * g.Hg * g.Wg;
    int64_t l = (int64_t)blockIdx.x * ROW_WARPS + threadIdx.x / 32;
    if (l >= L) return;
    int64_t b = blockIdx.y / H, h = blockIdx.y % H;
    int64_t blh = ((b * L + l) * H + h) * D, bhl = ((b * H + h) * L + l) * D;
    const Ti *in = src + (dir > 0 ? blh : bhl);
    To *out = dst + (dir > 0 ? bhl : blh);
    int f = (int)(l / ((int64_t)g.Hg * g.Wg)), hh = (int)(l / g.Wg % g.Hg), ww = (int)(l % g.Wg);
    int of = f * g.pf, oh = g.F * g.pf + hh * g.ph - g.pf, ow = g.F * g.pf + g.Hg * g.ph + ww * g.pw - g.pf - g.ph;
    for (int p = threadIdx.x & 31; p < D / 2; p += 32) {
        float2 cs = tab[p + (p < g.pf ? of : p < g.pf + g.ph ? oh : ow)];
        float s = dir * cs.y, x0 = ldf(in, 2 * p), x1 = ldf(in, 2 * p + 1);
        stf(out, 2 * p, x0 * cs.x - x1 * s);
        stf(out, 2 * p + 1, x0 * s + x1 * cs.x);
    }
}

static void rope_launch(const tensor_t *src, int F, int Hg, int Wg, tensor_t *dst, int dir) {
    const tensor_t *blhd = dir > 0 ? src : dst; /* [B, L, H, D] */
    int64_t B = blhd->shape[0], L = blhd->shape[1], H = blhd->shape[2], D = blhd->shape[3];
    if (B * L * H == 0) return;
    rope_grid_t g = {F, Hg, Wg, 0, 0, 0};
    rope_axis_pairs((int)D, &g.pf, &g.ph, &g.pw);
    CHECK(B * H <= 65535, "rope: B*H = %lld exceeds the grid", (long long)(B * H));
    int64_t entries = (int64_t)F * g.pf + (int64_t)Hg * g.ph + (int64_t)Wg * g.pw;
    float2 *tab = (float2 *)nn_cuda_scratch(sizeof(float2) * (size_t)entries);
    rope_table_kernel<<<grid_for(entries, 256), 256, 0, cuda_stream()>>>(g, tab);
    CUDA_CHECK_LAUNCH();
    dim3 grid((unsigned)((L + ROW_WARPS - 1) / ROW_WARPS), (unsigned)(B * H));
    with_float_type(src->dtype, [&](auto ti) {
        with_float_type(dst->dtype, [&](auto to) {
            typedef TYPE_OF(ti) Ti;
            typedef TYPE_OF(to) To;
            rope_kernel<<<grid, ROW_WARPS * 32, 0, cuda_stream()>>>((const Ti *)src->data, (To *)dst->data, tab, g,
                                                                    (int)H, (int)D, dir);
            CUDA_CHECK_LAUNCH();
        });
    });
}

extern "C" void rope_forward_cuda(const tensor_t *x, int F, int Hg, int Wg, tensor_t *y) {
    rope_launch(x, F, Hg, Wg, y, +1);
}
extern "C" void rope_backward_cuda(const tensor_t *dy, int F, int Hg, int Wg, tensor_t *dx) {
    rope_launch(dy, F, Hg, Wg, dx, -1);
}

/* ---- head transpose: [B, P, Q, D] -> [B, Q, P, D] --------------------------------------------------- */

/* blockIdx.x = b * Q + q; rows p = blockIdx.y * ROW_WARPS + warp; lanes over D. */
template <class Ti, class To>
__global__ void head_transpose_kernel(const Ti *x, To *y, int64_t P, int64_t Q, int D) {
    int64_t p = (int64_t)blockIdx.y * ROW_WARPS + threadIdx.x / 32;
    if (p >= P) return;
    int64_t b = blockIdx.x / Q, q = blockIdx.x % Q;
    const Ti *in = x + ((b * P + p) * Q + q) * D;
    To *out = y + ((b * Q + q) * P + p) * D;
    for (int d = threadIdx.x & 31; d < D; d += 32) stf(out, d, ldf(in, d));
}

extern "C" void head_transpose_cuda(const tensor_t *x, tensor_t *y) {
    int64_t B = x->shape[0], P = x->shape[1], Q = x->shape[2], D = x->shape[3];
    if (B * P * Q * D == 0) return;
    int64_t py = (P + ROW_WARPS - 1) / ROW_WARPS;
    CHECK(B * Q <= 0x7fffffff && py <= 65535, "head_transpose: [%lld, %lld, %lld, %lld] exceeds the grid",
          (long long)B, (long long)P, (long long)Q, (long long)D);
    dim3 grid((unsigned)(B * Q), (unsigned)py);
    with_float_type(x->dtype, [&](auto ti) {
        with_float_type(y->dtype, [&](auto to) {
            typedef TYPE_OF(ti) Ti;
            typedef TYPE_OF(to) To;
            head_transpose_kernel<<<grid, ROW_WARPS * 32, 0, cuda_stream()>>>((const Ti *)x->data, (To *)y->data, P,
                                                                              Q, (int)D);
            CUDA_CHECK_LAUNCH();
        });
    });
}

/* ---- patchify / unpatchify ---------------------------------------------------------------------------- */

typedef struct patch_dims {
    int64_t B, C, F, H, W;
    int pt, ph, pw;
    int channel_inner; /* token layout (kt, kh, kw, c) of the head, else (c, kt, kh, kw) */
} patch_dims_t;

/* One thread per latent element; to_tok copies latent -> token, else token -> latent. */
template <class Ti, class To>
__global__ void patch_kernel(const Ti *src, To *dst, patch_dims_t d, int to_tok) {
    int64_t n = d.B * d.C * d.F * d.H * d.W;
    int64_t Ho = d.H / d.ph, Wo = d.W / d.pw, L = d.F / d.pt * Ho * Wo, P = (int64_t)d.pt * d.ph * d.pw;
    GRID_STRIDE(li, n) {
        int64_t w = li % d.W, r = li / d.W;
        int64_t h = r % d.H;
        r /= d.H;
        int64_t f = r % d.F;
        r /= d.F;
        int64_t c = r % d.C, b = r / d.C;
        int64_t l = ((f / d.pt) * Ho + h / d.ph) * Wo + w / d.pw;
        int64_t k = ((f % d.pt) * d.ph + h % d.ph) * d.pw + w % d.pw;
        int64_t ti = (b * L + l) * d.C * P + (d.channel_inner ? k * d.C + c : c * P + k);
        if (to_tok) stf(dst, ti, ldf(src, li));
        else stf(dst, li, ldf(src, ti));
    }
}

static void patch_launch(const tensor_t *lat, const tensor_t *src, tensor_t *dst, int pt, int ph, int pw,
                         int channel_inner, int to_tok) {
    patch_dims_t d = {lat->shape[0], lat->shape[1], lat->shape[2], lat->shape[3], lat->shape[4],
                      pt, ph, pw, channel_inner};
    int64_t n = tensor_numel(lat);
    if (n == 0) return;
    with_float_type(src->dtype, [&](auto ti) {
        with_float_type(dst->dtype, [&](auto to) {
            typedef TYPE_OF(ti) Ti;
            typedef TYPE_OF(to) To;
            patch_kernel<<<grid_for(n, 256), 256, 0, cuda_stream()>>>((const Ti *)src->data, (To *)dst->data, d,
                                                                      to_tok);
            CUDA_CHECK_LAUNCH();
        });
    });
}

extern "C" void patchify_cuda(const tensor_t *lat, int pt, int ph, int pw, tensor_t *tok) {
    patch_launch(lat, lat, tok, pt, ph, pw, 0, 1);
}
extern "C" void patchify_backward_cuda(const tensor_t *dtok, int pt, int ph, int pw, tensor_t *dlat) {
    patch_launch(dlat, dtok, dlat, pt, ph, pw, 0, 0);
}
extern "C" void unpatchify_cuda(const tensor_t *tok, int pt, int ph, int pw, tensor_t *lat) {
    patch_launch(lat, tok, lat, pt, ph, pw, 1, 0);
}
extern "C" void unpatchify_backward_cuda(const tensor_t *dlat, int pt, int ph, int pw, tensor_t *dtok) {
    patch_launch(dlat, dlat, dtok, pt, ph, pw, 1, 1);
}
