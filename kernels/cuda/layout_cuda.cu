/* kernels/cuda/layout_cuda.cu — the data-movement ops of nn_ops.h on the GPU: 3-D RoPE fused with
 * the [B,L,H,D] -> [B,H,L,D] head transpose (and its inverse rotation back), the plain head
 * transpose, patchify/unpatchify and their adjoints.
 *
 * RoPE: a small table of (cos, sin) per axis position and pair is built in fp64 (Wan computes its
 * rotations in fp64) and stored f32; the rotation itself is fp32 with one rounding at the store.
 * RoPE and the head transpose are one row-permutation kernel: a block moves a tile of output
 * D-rows in 8-element chunks (16-byte accesses when D % 8 == 0), each D-row contiguous on both
 * sides (so no shared-memory staging is needed for the data), with the index arithmetic done once
 * per row. Permutations copy values exactly (only a dtype change rounds); the rotation is
 * bit-identical to a scalar x0 c - x1 s, fma(x0, s, x1 c). All outputs are overwritten. */
#include "nn_cuda.h"
#include "nn_cuda_common.cuh"
#include "rope_cuda.cuh"
#include "vec8_cuda.cuh"

/* ---- RoPE ------------------------------------------------------------------------------------------ */

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

const float2 *rope_table_build(int F, int Hg, int Wg, int D, rope_grid_t *g) {
    *g = {F, Hg, Wg, 0, 0, 0};
    rope_axis_pairs(D, &g->pf, &g->ph, &g->pw);
    int64_t entries = (int64_t)F * g->pf + (int64_t)Hg * g->ph + (int64_t)Wg * g->pw;
    float2 *tab = (float2 *)nn_cuda_scratch(sizeof(float2) * (size_t)entries);
    rope_table_kernel<<<grid_for(entries, 256), 256, 0, cuda_stream()>>>(*g, tab);
    CUDA_CHECK_LAUNCH();
    return tab;
}

/* ---- row permutation (+ RoPE): src [B, P, Q, D] -> dst [B, Q, P, D] -------------------------------- */

#define PERM_THREADS 256
#define PERM_MAX_ROWS 256 /* output D-rows per block */
#define PERM_BATCH 4      /* chunks each thread loads before it stores (bytes in flight) */

/* RoPE of a permutation: tab (NULL: a plain copy) and the token of a row: dir > 0: p (src is
 * [B, L, H, D]), dir < 0: q (src is [B, H, L, D]); the rotation is by dir * angle. */
typedef struct rope_arg {
    const float2 *tab;
    rope_grid_t g;
    int dir;
} rope_arg_t;

/* Output D-rows R = (b Q + q) P + p of one block tile: their source offset (and table offsets)
 * are found once per row, in shared memory; the threads then move 8-element chunks of the tile,
 * consecutive threads on consecutive chunks of dst (16-byte accesses when vec). The rotation of
 * a pair is the exact op sequence of the scalar kernel it replaces: x0 c - x1 s without
 * contraction, x0 s + x1 c as fma(x0, s, x1 c). */
template <class Ti, class To>
__global__ void __launch_bounds__(PERM_THREADS, 3)
    permute_rows_kernel(const Ti *__restrict__ src, To *__restrict__ dst, int64_t P, int64_t Q, int64_t nrows, int D,
                        int tile_rows, int vec, rope_arg_t rope) {
    __shared__ int64_t s_in[PERM_MAX_ROWS];
    __shared__ int s_tab[PERM_MAX_ROWS][3];
    const int64_t row0 = (int64_t)blockIdx.x * tile_rows;
    for (int r = threadIdx.x; r < tile_rows; r += PERM_THREADS) {
        int64_t R = row0 + r;
        if (R >= nrows) break;
        int64_t bq = R / P, p = R - bq * P, b = bq / Q, q = bq - b * Q;
        s_in[r] = ((b * P + p) * Q + q) * D;
        if (rope.tab) rope_token_offsets(rope.g, rope.dir > 0 ? p : q, s_tab[r]);
    }
    __syncthreads();
    const unsigned dv = (unsigned)((D + 7) / 8);
    const int64_t rows_here = nrows - row0 < tile_rows ? nrows - row0 : tile_rows;
    const unsigned nchunks = (unsigned)rows_here * dv;
    for (unsigned base = threadIdx.x; base < nchunks; base += PERM_THREADS * PERM_BATCH) {
        float v[PERM_BATCH][8];
#pragma unroll
        for (int u = 0; u < PERM_BATCH; u++) {
            unsigned i = base + u * PERM_THREADS, r = i / dv, e = (i - r * dv) * 8;
            if (i < nchunks) ld8(src, s_in[r] + e, D - (int)e, vec, v[u]);
        }
#pragma unroll
        for (int u = 0; u < PERM_BATCH; u++) {
            unsigned i = base + u * PERM_THREADS, r = i / dv, e = (i - r * dv) * 8;
            if (i >= nchunks) break;
            if (rope.tab) rope_rotate8(v[u], (int)e, D - (int)e, rope.tab, rope.g, s_tab[r], (float)rope.dir);
            st8(dst, (row0 + r) * D + e, D - (int)e, vec, v[u]);
        }
    }
}

/* dst [B, Q, P, D] = src [B, P, Q, D], rotated when rope.tab. */
static void permute_rows(const tensor_t *src, tensor_t *dst, int64_t B, int64_t P, int64_t Q, int64_t D,
                         rope_arg_t rope) {
    int64_t nrows = B * P * Q, dv = (D + 7) / 8;
    if (nrows == 0 || D == 0) return;
    int64_t tile = (int64_t)PERM_THREADS * PERM_BATCH / dv;
    tile = tile < 1 ? 1 : tile > PERM_MAX_ROWS ? PERM_MAX_ROWS : tile;
    int64_t blocks = (nrows + tile - 1) / tile;
    CHECK(D <= 0x7fffffff && tile * dv <= 0xffffffffLL && blocks <= 0x7fffffff,
          "permute: [%lld, %lld, %lld, %lld] exceeds the grid", (long long)B, (long long)P, (long long)Q,
          (long long)D);
    int vec = D % 8 == 0 && vec8_aligned(src->data) && vec8_aligned(dst->data);
    with_float_type(src->dtype, [&](auto ti) {
        with_float_type(dst->dtype, [&](auto to) {
            typedef TYPE_OF(ti) Ti;
            typedef TYPE_OF(to) To;
            permute_rows_kernel<<<(unsigned)blocks, PERM_THREADS, 0, cuda_stream()>>>(
                (const Ti *)src->data, (To *)dst->data, P, Q, nrows, (int)D, (int)tile, vec, rope);
            CUDA_CHECK_LAUNCH();
        });
    });
}

static void rope_launch(const tensor_t *src, int F, int Hg, int Wg, tensor_t *dst, int dir) {
    const tensor_t *blhd = dir > 0 ? src : dst; /* [B, L, H, D] */
    int64_t B = blhd->shape[0], L = blhd->shape[1], H = blhd->shape[2], D = blhd->shape[3];
    if (B * L * H == 0) return;
    rope_arg_t rope;
    rope.tab = rope_table_build(F, Hg, Wg, (int)D, &rope.g);
    rope.dir = dir;
    if (dir > 0) permute_rows(src, dst, B, L, H, D, rope);
    else permute_rows(src, dst, B, H, L, D, rope);
}

extern "C" void rope_forward_cuda(const tensor_t *x, int F, int Hg, int Wg, tensor_t *y) {
    rope_launch(x, F, Hg, Wg, y, +1);
}
extern "C" void rope_backward_cuda(const tensor_t *dy, int F, int Hg, int Wg, tensor_t *dx) {
    rope_launch(dy, F, Hg, Wg, dx, -1);
}

extern "C" void head_transpose_cuda(const tensor_t *x, tensor_t *y) {
    rope_arg_t none = {NULL, {0, 0, 0, 0, 0, 0}, 0};
    permute_rows(x, y, x->shape[0], x->shape[1], x->shape[2], x->shape[3], none);
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
