/* kernels/cuda/rope_cuda.cuh — Wan's 3-D RoPE pieces shared by layout_cuda.cu (RoPE fused with the
 * head transpose) and norm_cuda.cu (RMSNorm fused with RoPE and the transpose): the token grid,
 * the (cos, sin) table built once per call, a token's table offsets and the rotation of one
 * 8-element chunk of a head row. The rotation is bit-identical to a scalar x0 c - x1 s (no
 * contraction), fma(x0, s, x1 c); the table holds fp64 angles' cos/sin as f32 (rope_table_build). */
#ifndef SLA_ROPE_CUDA_CUH
#define SLA_ROPE_CUDA_CUH

#include "nn_cuda_common.cuh"

typedef struct rope_grid {
    int F, Hg, Wg, pf, ph, pw; /* token grid, and the complex pairs of each axis (rope_axis_pairs) */
} rope_grid_t;

/* The table for head dim D over the grid (F, Hg, Wg), in the backend's scratch buffer (valid until
 * the next nn_cuda_scratch user); g gets the grid and the pair split. Built on cuda_stream(). */
const float2 *rope_table_build(int F, int Hg, int Wg, int D, rope_grid_t *g);

/* Table offsets of token l for its frame, row and column pairs (index = pair + off[axis]). */
__device__ __forceinline__ void rope_token_offsets(const rope_grid_t &g, int64_t l, int off[3]) {
    int f = (int)(l / ((int64_t)g.Hg * g.Wg)), hh = (int)(l / g.Wg % g.Hg), ww = (int)(l % g.Wg);
    off[0] = f * g.pf;
    off[1] = g.F * g.pf + hh * g.ph - g.pf;
    off[2] = g.F * g.pf + g.Hg * g.ph + ww * g.pw - g.pf - g.ph;
}

/* Rotates the pairs of v (8 values from head-row element e on, n of them real) by dir * angle. */
__device__ __forceinline__ void rope_rotate8(float (&v)[8], int e, int n, const float2 *tab, const rope_grid_t &g,
                                             const int off[3], float dir) {
    const int pfh = g.pf + g.ph;
#pragma unroll
    for (int k = 0; k < 4; k++) {
        if (2 * k >= n) break;
        int pr = e / 2 + k;
        float2 cs = tab[pr + (pr < g.pf ? off[0] : pr < pfh ? off[1] : off[2])];
        float s = dir * cs.y, x0 = v[2 * k], x1 = v[2 * k + 1];
        v[2 * k] = __fsub_rn(__fmul_rn(x0, cs.x), __fmul_rn(x1, s));
        v[2 * k + 1] = __fmaf_rn(x0, s, __fmul_rn(x1, cs.x));
    }
}

#endif
