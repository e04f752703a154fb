/* kernels/cuda/sla_linear.cuh — device helpers shared by sla_linear.cu (forward, states) and
 * sla_linear_bwd.cu (backward, proj gradients): the warp tiling of a D x D accumulator, state row
 * loads and stores, row denominators. See sla_linear.cu for the kernels. */
#ifndef SLA_LINEAR_CUH
#define SLA_LINEAR_CUH

#include "sla_internal.cuh"

namespace {

constexpr int KT = 64; /* key / row tile of the linear kernels */

/* How NW warps tile a D x D accumulator: MT x NT fragments each, WR warp rows. */
template <int D, int NW> struct DDT {
    static constexpr int MT = (D / 16 / NW) > 1 ? D / 16 / NW : 1;
    static constexpr int WR = D / (MT * 16);
    static constexpr int WC = NW / WR;
    static constexpr int NT = D / 8 / WC;
    static_assert(WR * WC == NW && NT % 2 == 0, "bad D x D warp tiling");
};

/* A D x D accumulator held by the CTA's NW warps as bf16 into the row-major [D][D] global row out,
 * through stage (shared, D x (D + 8) bf16) so that the global writes are whole 16-byte pieces.
 * Every thread of the CTA calls it; it synchronises the CTA before writing stage (no warp may still
 * read it) and in the middle; the caller synchronises again before it reuses stage. */
template <int D, int NW>
__device__ void dd_store_global(const float (&acc)[DDT<D, NW>::MT][DDT<D, NW>::NT][4], bf16 *out, bf16 *stage) {
    using T = DDT<D, NW>;
    constexpr int LD = D + 8;
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int m0 = (w % T::WR) * T::MT * 16, n0 = (w / T::WR) * T::NT * 8;
    __syncthreads();
#pragma unroll
    for (int mt = 0; mt < T::MT; mt++)
#pragma unroll
        for (int j = 0; j < T::NT; j++) {
            int r = m0 + mt * 16 + g, c = n0 + j * 8 + 2 * t;
            *reinterpret_cast<uint32_t *>(stage + r * LD + c) = pack_bf16(acc[mt][j][0], acc[mt][j][1]);
            *reinterpret_cast<uint32_t *>(stage + (r + 8) * LD + c) = pack_bf16(acc[mt][j][2], acc[mt][j][3]);
        }
    __syncthreads();
    for (int i = threadIdx.x; i < D * D / 8; i += NW * 32) {
        const int r = i / (D / 8), c = (i % (D / 8)) * 8;
        *reinterpret_cast<uint4 *>(out + r * D + c) = *reinterpret_cast<const uint4 *>(stage + r * LD + c);
    }
}

/* A state row [M | m] (M: D x D, m: D) into shared sM (bf16, row stride D + 8) and sm (fp32):
 * from a bf16 row (crow: M by cp.async, in the caller's next commit group) or, when crow is null,
 * from an fp32 row (trow, converted here). */
template <int D>
__device__ void load_state(const bf16 *crow, const float *trow, bf16 *sM, float *sm, int nthreads) {
    const int tid = threadIdx.x;
    if (crow) {
        load_tile_async<D>(sM, crow, 0, D, D, tid, nthreads);
        for (int i = tid; i < D; i += nthreads) sm[i] = __bfloat162float(crow[D * D + i]);
    } else {
#pragma unroll 4
        for (int i = tid * 4; i < D * D; i += nthreads * 4) {
            const float4 f = *reinterpret_cast<const float4 *>(trow + i);
            *reinterpret_cast<uint2 *>(sM + (i / D) * (D + 8) + i % D) =
                make_uint2(pack_bf16(f.x, f.y), pack_bf16(f.z, f.w));
        }
        for (int i = tid; i < D; i += nthreads) sm[i] = trow[D * D + i];
    }
}

} // namespace

#endif
