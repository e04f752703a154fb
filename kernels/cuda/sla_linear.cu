/* kernels/cuda/sla_linear.cu — SLA's linear branch on the GPU (SLA.md sections 3-5): feature maps,
 * d x d states, the proj, and their gradients. bf16 tensor cores with fp32 accumulation. The fp32
 * master W of the proj enters as bf16 hi + lo (two products); states, phi and Ol enter as single
 * bf16 terms (their rounding, 2^-9 relative per element, averages out over the d-long dot
 * products: about 2^-9 / sqrt(d) on the result, under the bf16 rounding of the outputs).
 *
 * States. lin_state_kernel forms per key block j the row hs_j = [h_j | z_j] (bf16, W = D*D + D
 * values: h_j = phi(K_j)^T V_j, z_j = column sums of phi(K_j)). The complement variant's per
 * query block state [H_i | Z_i] = sum over its marginal key blocks j of hs_j is one dense GEMM per
 * (batch, head) with the 0/1 marginal mask (cuBLAS, bf16 in, fp32 accumulate, bf16 out):
 * mask [Tm, Tn] x hs [Tn, W]. Summing the marginal blocks directly (never "total minus kept")
 * leaves no cancellation, and the dense GEMM on tensor cores costs less than gathering d x d states
 * per kept block. The "all" variant uses the totals (a fixed-order column sum of hs). The backward
 * does the same with the per query block rows [A_i | beta_i] (A_i = sum Q^^T dOl, beta_i = sum Dl
 * Q^) and the transposed mask. cuBLAS without atomics and fixed-order reductions: results are
 * bit-reproducible.
 *
 * lin_state_kernel  per key block: hs_j (bf16 row of W).
 * lin_fwd_kernel    per query block: Ol = phi(Q) H_i / den (0 where den <= 0 or the block has no
 *                   linear key block); ol = Ol; o = Ol W^T + b (the sparse kernel adds Os after).
 * lin_bwdq_kernel   per query block: dOl = dout W, Dl = dOl . Ol, Q^ = phi(Q) / den,
 *                   dq = through phi of (dOl H_i^T - Dl Z_i) / den; the row [A_i | beta_i].
 * lin_bwdk_kernel   per 64-key tile: [Abar_j | betabar_j]; dk = through phi of
 *                   (V Abar^T - betabar), dv = phi(K) Abar (the sparse kernel adds its part after).
 * lin_outer_kernel  per chunk of 512 rows: X^T Y and column sums of X (proj gradients). */
#include <cublas_v2.h>

#include "sla_internal.cuh"

namespace {

constexpr int KT = 64;
constexpr int OUTER_TILES = 8; /* 64-row tiles per lin_outer chunk */

/* How NW warps tile a D x D accumulator: MT x NT fragments each, WR warp rows. */
template <int D, int NW> struct DDT {
    static constexpr int MT = (D / 16 / NW) > 1 ? D / 16 / NW : 1;
    static constexpr int WR = D / (MT * 16);
    static constexpr int WC = NW / WR;
    static constexpr int NT = D / 8 / WC;
    static_assert(WR * WC == NW && NT % 2 == 0, "bad D x D warp tiling");
};

/* acc (this warp's part of a D x D sum) += X^T Y over the 64-row tiles of seq (rows >= nrows are
 * zero). Double-buffered in sbuf (4 tiles of 64 x (D + 8)). When cs != null, threads tid < D add
 * the column sums of X to *cs. Ends with a barrier; the caller waits for its own async copies. */
template <int D, int NW>
__device__ void accum_xty(float (&acc)[DDT<D, NW>::MT][DDT<D, NW>::NT][4], const bf16 *X, const bf16 *Y, long nrows,
                          const TileSeq &seq, bf16 *sbuf, float *cs) {
    constexpr int LD = D + 8, TL = KT * LD, NTH = NW * 32;
    using T = DDT<D, NW>;
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    const int m0 = (w % T::WR) * T::MT * 16, n0 = (w / T::WR) * T::NT * 8;
    const int n = seq.size();
    if (n == 0) return;
    auto load = [&](int it, int buf) {
        long r0 = (long)seq.tile(it) * KT;
        load_tile_async<D>(sbuf + buf * 2 * TL, X, r0, KT, nrows, tid, NTH);
        load_tile_async<D>(sbuf + buf * 2 * TL + TL, Y, r0, KT, nrows, tid, NTH);
    };
    load(0, 0);
    cp_async_commit();
    for (int it = 0; it < n; it++) {
        const int buf = it & 1;
        if (it + 1 < n) load(it + 1, buf ^ 1);
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        const bf16 *xs = sbuf + buf * 2 * TL, *ys = xs + TL;
        warp_gemm<T::MT, T::NT, true, false>(acc, xs + m0, LD, ys + n0, LD, KT, lane);
        if (cs && tid < D) {
            float s = 0.f;
            for (int r = 0; r < KT; r++) s += __bfloat162float(xs[r * LD + tid]);
            *cs += s;
        }
        __syncthreads();
    }
}

/* This warp's part of a D x D accumulator as bf16 into a row-major [D][D] global row. */
template <int D, int NW>
__device__ void dd_store_global(const float (&acc)[DDT<D, NW>::MT][DDT<D, NW>::NT][4], bf16 *out) {
    using T = DDT<D, NW>;
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int m0 = (w % T::WR) * T::MT * 16, n0 = (w / T::WR) * T::NT * 8;
#pragma unroll
    for (int mt = 0; mt < T::MT; mt++)
#pragma unroll
        for (int j = 0; j < T::NT; j++) {
            int r = m0 + mt * 16 + g, c = n0 + j * 8 + 2 * t;
            *reinterpret_cast<uint32_t *>(out + r * D + c) = pack_bf16(acc[mt][j][0], acc[mt][j][1]);
            *reinterpret_cast<uint32_t *>(out + (r + 8) * D + c) = pack_bf16(acc[mt][j][2], acc[mt][j][3]);
        }
}

/* A state row [M | m] (M: D x D, m: D) into shared sM (bf16, row stride D + 8) and sm (fp32):
 * from a bf16 row (crow) or, when crow is null, from an fp32 row (trow). */
template <int D>
__device__ void load_state(const bf16 *crow, const float *trow, bf16 *sM, float *sm, int nthreads) {
    const int tid = threadIdx.x;
    if (crow) {
        for (int i = tid * 8; i < D * D; i += nthreads * 8)
            *reinterpret_cast<uint4 *>(sM + (i / D) * (D + 8) + i % D) = *reinterpret_cast<const uint4 *>(crow + i);
        for (int i = tid; i < D; i += nthreads) sm[i] = __bfloat162float(crow[D * D + i]);
    } else {
        for (int i = tid; i < D * D; i += nthreads) sM[(i / D) * (D + 8) + i % D] = __float2bfloat16_rn(trow[i]);
        for (int i = tid; i < D; i += nthreads) sm[i] = trow[D * D + i];
    }
}

/* Row denominators phi . Z (+ eps) of a warp's 16 rows; 1/den, or 0 for rows that send nothing. */
template <int NT>
__device__ __forceinline__ void row_inv_den(const float (&x)[NT][4], const float *sZ, int all, float &i0, float &i1) {
    const int t = threadIdx.x & 3;
    float d0 = 0.f, d1 = 0.f;
#pragma unroll
    for (int n = 0; n < NT; n++) {
        float z0 = sZ[n * 8 + 2 * t], z1 = sZ[n * 8 + 2 * t + 1];
        d0 += x[n][0] * z0 + x[n][1] * z1, d1 += x[n][2] * z0 + x[n][3] * z1;
    }
    d0 = quad_sum(d0), d1 = quad_sum(d1);
    if (all) d0 += 1e-5f, d1 += 1e-5f;
    i0 = d0 > 0.f ? 1.f / d0 : 0.f, i1 = d1 > 0.f ? 1.f / d1 : 0.f;
}

/* The proj weight split once per call: wsplit [2, D, D] bf16 = hi, lo of W [out][in]. */
__global__ void w_split_kernel(const float *W, bf16 *ws, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float h, l;
    split_bf16(W[i], h, l);
    ws[i] = __float2bfloat16_rn(h), ws[n + i] = __float2bfloat16_rn(l);
}

/* wsplit (global, row stride D) -> shared hi/lo tiles [out][in] (row stride D + 8). */
template <int D> __device__ void load_w_split(const bf16 *ws, bf16 *hi, bf16 *lo, int nthreads) {
    for (int i = threadIdx.x * 8; i < D * D; i += nthreads * 8) {
        int off = (i / D) * (D + 8) + i % D;
        *reinterpret_cast<uint4 *>(hi + off) = *reinterpret_cast<const uint4 *>(ws + i);
        *reinterpret_cast<uint4 *>(lo + off) = *reinterpret_cast<const uint4 *>(ws + D * D + i);
    }
}

template <int D, int BQ>
__global__ void __launch_bounds__(BQ * 2) lin_fwd_kernel(LinParams p) {
    constexpr int NTH = BQ * 2, LD = D + 8, NTD = D / 8, W = D * D + D;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *R0 = reinterpret_cast<bf16 *>(smem_raw); /* H, then W hi/lo */
    bf16 *Ahi = R0 + 2 * D * LD;                    /* Q, then phi(Q), then Ol (bf16) */
    float *sZ = reinterpret_cast<float *>(Ahi + BQ * LD);
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, t = lane & 3;
    const int bh = blockIdx.y, qb = blockIdx.x, q0 = qb * BQ;
    const long hoff = (long)bh * p.N * D;
    if (p.empty) { /* no linear key block: Ol = 0, o = b */
        for (int i = tid; i < BQ * D; i += NTH) {
            long r = q0 + i / D;
            if (r < p.N) {
                p.ol[hoff + r * D + i % D] = __float2bfloat16_rn(0.f);
                p.o[hoff + r * D + i % D] = __float2bfloat16_rn(p.b[i % D]);
            }
        }
        return;
    }
    load_tile_async<D>(Ahi, p.q + hoff, q0, BQ, p.N, tid, NTH);
    cp_async_commit();
    load_state<D>(p.all ? nullptr : p.cstate + ((long)bh * p.Tm + qb) * W, p.tot + (long)bh * W, R0, sZ, NTH);
    cp_async_wait<0>();
    __syncthreads();

    float x[NTD][4];
    frag_load_smem<NTD>(x, Ahi + w * 16 * LD, LD, lane);
    frag_phi<NTD>(x, p.feature);
    float i0, i1;
    row_inv_den<NTD>(x, sZ, p.all, i0, i1);
    frag_store_split<NTD>(x, Ahi + w * 16 * LD, nullptr, LD, lane);
    __syncwarp();
    float num[1][NTD][4];
    zero_acc<1, NTD>(num);
    warp_gemm<1, NTD, false, false>(num, Ahi + w * 16 * LD, LD, R0, LD, D, lane);
#pragma unroll
    for (int j = 0; j < NTD; j++) num[0][j][0] *= i0, num[0][j][1] *= i0, num[0][j][2] *= i1, num[0][j][3] *= i1;
    frag_store_global<NTD>(num[0], p.ol + hoff, D, q0 + w * 16, p.N, lane);
    __syncthreads(); /* everyone is done with H */
    load_w_split<D>(p.Wsplit, R0, R0 + D * LD, NTH);
    frag_store_split<NTD>(num[0], Ahi + w * 16 * LD, nullptr, LD, lane); /* Ol as saved: bf16 */
    __syncthreads();
    float pr[1][NTD][4];
    zero_acc<1, NTD>(pr);
    warp_gemm3<1, NTD, false, true>(pr, Ahi + w * 16 * LD, nullptr, LD, R0, R0 + D * LD, LD, D, lane);
#pragma unroll
    for (int j = 0; j < NTD; j++) {
        float b0 = p.b[j * 8 + 2 * t], b1 = p.b[j * 8 + 2 * t + 1];
        pr[0][j][0] += b0, pr[0][j][1] += b1, pr[0][j][2] += b0, pr[0][j][3] += b1;
    }
    frag_store_global<NTD>(pr[0], p.o + hoff, D, q0 + w * 16, p.N, lane);
}

template <int D, int BQ>
__global__ void __launch_bounds__(BQ * 2) lin_bwdq_kernel(LinParams p) {
    constexpr int NW = BQ / 16, NTH = BQ * 2, LD = D + 8, NTD = D / 8, W = D * D + D;
    using T = DDT<D, NW>;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *R0 = reinterpret_cast<bf16 *>(smem_raw); /* H */
    bf16 *Aq = R0 + D * LD, *Ag = Aq + BQ * LD, *Whi = Ag + BQ * LD, *Wlo = Whi + D * LD;
    float *sZ = reinterpret_cast<float *>(Wlo + D * LD), *sB = sZ + D;
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, g = lane >> 2, t = lane & 3;
    const int bh = blockIdx.y, qb = blockIdx.x, q0 = qb * BQ;
    const long hoff = (long)bh * p.N * D;
    load_tile_async<D>(Aq, p.q + hoff, q0, BQ, p.N, tid, NTH);
    load_tile_async<D>(Ag, p.dout + hoff, q0, BQ, p.N, tid, NTH);
    cp_async_commit();
    load_w_split<D>(p.Wsplit, Whi, Wlo, NTH);
    load_state<D>(p.all ? nullptr : p.cstate + ((long)bh * p.Tm + qb) * W, p.tot + (long)bh * W, R0, sZ, NTH);
    cp_async_wait<0>();
    __syncthreads();

    bf16 *aq = Aq + w * 16 * LD, *ag = Ag + w * 16 * LD;
    const int row0 = q0 + w * 16 + g, row1 = row0 + 8;
    float x[NTD][4];
    frag_load_smem<NTD>(x, aq, LD, lane);
    frag_phi<NTD>(x, p.feature);
    float i0, i1;
    row_inv_den<NTD>(x, sZ, p.all, i0, i1);
    if (row0 >= p.N) i0 = 0.f; /* padded rows send nothing */
    if (row1 >= p.N) i1 = 0.f;
    /* dOl = dout W */
    float dol[1][NTD][4];
    zero_acc<1, NTD>(dol);
    warp_gemm3<1, NTD, false, false>(dol, ag, nullptr, LD, Whi, Wlo, LD, D, lane);
    float Dl0 = 0.f, Dl1 = 0.f;
    {
        const bf16 *olg = p.ol_in + hoff;
#pragma unroll
        for (int j = 0; j < NTD; j++) {
            int c = j * 8 + 2 * t;
            if (row0 < p.N) {
                float2 a = unpack_bf16(*reinterpret_cast<const uint32_t *>(olg + (long)row0 * D + c));
                Dl0 += dol[0][j][0] * a.x + dol[0][j][1] * a.y;
            }
            if (row1 < p.N) {
                float2 a = unpack_bf16(*reinterpret_cast<const uint32_t *>(olg + (long)row1 * D + c));
                Dl1 += dol[0][j][2] * a.x + dol[0][j][3] * a.y;
            }
        }
        Dl0 = quad_sum(Dl0), Dl1 = quad_sum(Dl1);
    }
    __syncwarp(); /* the warp's Q and dout rows are consumed: dOl and Q^ take their place */
    frag_store_split<NTD>(dol[0], aq, nullptr, LD, lane);
    /* Q^ rows (bf16) and beta partials */
#pragma unroll
    for (int j = 0; j < NTD; j++) {
        int c = j * 8 + 2 * t;
        float a0 = x[j][0] * i0, a1 = x[j][1] * i0, b0 = x[j][2] * i1, b1 = x[j][3] * i1;
        *reinterpret_cast<uint32_t *>(ag + g * LD + c) = pack_bf16(a0, a1);
        *reinterpret_cast<uint32_t *>(ag + (g + 8) * LD + c) = pack_bf16(b0, b1);
        float v0 = a0 * Dl0 + b0 * Dl1, v1 = a1 * Dl0 + b1 * Dl1;
#pragma unroll
        for (int m = 4; m < 32; m <<= 1) {
            v0 += __shfl_xor_sync(0xffffffffu, v0, m);
            v1 += __shfl_xor_sync(0xffffffffu, v1, m);
        }
        if (g == 0) sB[w * D + c] = v0, sB[w * D + c + 1] = v1;
    }
    __syncwarp();
    /* dphi = (dOl H^T - Dl Z) / den */
    float dph[1][NTD][4];
    zero_acc<1, NTD>(dph);
    warp_gemm<1, NTD, false, true>(dph, aq, LD, R0, LD, D, lane);
#pragma unroll
    for (int j = 0; j < NTD; j++) {
        float z0 = sZ[j * 8 + 2 * t], z1 = sZ[j * 8 + 2 * t + 1];
        dph[0][j][0] = (dph[0][j][0] - Dl0 * z0) * i0, dph[0][j][1] = (dph[0][j][1] - Dl0 * z1) * i0;
        dph[0][j][2] = (dph[0][j][2] - Dl1 * z0) * i1, dph[0][j][3] = (dph[0][j][3] - Dl1 * z1) * i1;
    }
    frag_phi_backward<NTD>(dph[0], x, p.feature);
    frag_store_global<NTD>(dph[0], p.dq + hoff, D, q0 + w * 16, p.N, lane);
    __syncthreads(); /* every warp's Q^ and dOl rows are in place */
    /* [A_i | beta_i]: A_i = Q^^T dOl over the block's rows */
    bf16 *arow = p.astack + ((long)bh * p.Tm + qb) * W;
    {
        float acc[T::MT][T::NT][4];
        zero_acc<T::MT, T::NT>(acc);
        const int m0 = (w % T::WR) * T::MT * 16, n0 = (w / T::WR) * T::NT * 8;
        warp_gemm<T::MT, T::NT, true, false>(acc, Ag + m0, LD, Aq + n0, LD, BQ, lane);
        dd_store_global<D, NW>(acc, arow);
    }
    if (tid < D) {
        float s = 0.f;
        for (int i = 0; i < NW; i++) s += sB[i * D + tid];
        arow[D * D + tid] = __float2bfloat16_rn(s);
    }
}

template <int D>
__global__ void __launch_bounds__(128) lin_bwdk_kernel(LinParams p) {
    constexpr int NTH = 128, LD = D + 8, NTD = D / 8, W = D * D + D;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *R0 = reinterpret_cast<bf16 *>(smem_raw); /* Abar */
    bf16 *Sk = R0 + D * LD, *Sv = Sk + KT * LD;
    float *sBb = reinterpret_cast<float *>(Sv + KT * LD);
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, t = lane & 3;
    const int bh = blockIdx.y, kt = blockIdx.x, jb = kt / p.tpb;
    const long k0 = (long)kt * KT, hoff = (long)bh * p.N * D;
    load_tile_async<D>(Sk, p.k + hoff, k0, KT, p.N, tid, NTH);
    load_tile_async<D>(Sv, p.v + hoff, k0, KT, p.N, tid, NTH);
    cp_async_commit();
    load_state<D>(p.all ? nullptr : p.cstate + ((long)bh * p.Tn + jb) * W, p.tot + (long)bh * W, R0, sBb, NTH);
    cp_async_wait<0>();
    __syncthreads();

    bf16 *sk = Sk + w * 16 * LD, *sv = Sv + w * 16 * LD;
    float x[NTD][4];
    frag_load_smem<NTD>(x, sk, LD, lane);
    frag_phi<NTD>(x, p.feature);
    frag_store_split<NTD>(x, sk, nullptr, LD, lane);
    __syncwarp();
    float d[1][NTD][4];
    zero_acc<1, NTD>(d);
    warp_gemm<1, NTD, false, true>(d, sv, LD, R0, LD, D, lane); /* V Abar^T */
#pragma unroll
    for (int j = 0; j < NTD; j++) {
        float b0 = sBb[j * 8 + 2 * t], b1 = sBb[j * 8 + 2 * t + 1];
        d[0][j][0] -= b0, d[0][j][1] -= b1, d[0][j][2] -= b0, d[0][j][3] -= b1;
    }
    frag_phi_backward<NTD>(d[0], x, p.feature);
    frag_store_global<NTD>(d[0], p.dk + hoff, D, (int)k0 + w * 16, p.N, lane);
    zero_acc<1, NTD>(d);
    warp_gemm<1, NTD, false, false>(d, sk, LD, R0, LD, D, lane); /* phi(K) Abar */
    frag_store_global<NTD>(d[0], p.dv + hoff, D, (int)k0 + w * 16, p.N, lane);
}

/* Per key block j: the row [phi(K_j)^T V_j | colsum phi(K_j)] (bf16) of hs [BH, Tn, W]. */
template <int D>
__global__ void __launch_bounds__(256) lin_state_kernel(const bf16 *k, const bf16 *v, bf16 *hs, int N, int blk_k,
                                                       int Tn, int feature) {
    constexpr int LD = D + 8, EPT = D / 4, NW = 8, W = D * D + D;
    using T = DDT<D, NW>;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *sK = reinterpret_cast<bf16 *>(smem_raw), *sV = sK + 128 * LD;
    const int bh = blockIdx.y, j = blockIdx.x, tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    const int quad = tid >> 2, ql = tid & 3;
    const long r0 = (long)j * blk_k, hoff = (long)bh * N * D;
    load_tile_async<D>(sK, k + hoff, r0, blk_k, N, tid, 256);
    load_tile_async<D>(sV, v + hoff, r0, blk_k, N, tid, 256);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    /* phi in place, a quad per row; rows past N become 0 */
    for (int rb = 0; rb < blk_k; rb += 64) {
        const int r = rb + quad;
        bf16 *row = sK + r * LD + ql * EPT;
        float x[EPT];
#pragma unroll
        for (int c = 0; c < EPT; c += 8) {
            uint4 u = *reinterpret_cast<const uint4 *>(row + c);
            const uint32_t *pu = reinterpret_cast<const uint32_t *>(&u);
#pragma unroll
            for (int i = 0; i < 4; i++) {
                float2 f = unpack_bf16(pu[i]);
                x[c + 2 * i] = f.x, x[c + 2 * i + 1] = f.y;
            }
        }
        if (feature == 0) {
            float m = -INFINITY, s = 0.f;
#pragma unroll
            for (int c = 0; c < EPT; c++) m = fmaxf(m, x[c]);
            m = quad_max(m);
#pragma unroll
            for (int c = 0; c < EPT; c++) s += (x[c] = expf(x[c] - m));
            s = 1.f / quad_sum(s);
#pragma unroll
            for (int c = 0; c < EPT; c++) x[c] *= s;
        } else if (feature == 1) {
#pragma unroll
            for (int c = 0; c < EPT; c++) x[c] = x[c] > 0.f ? x[c] + 1.f : expf(x[c]);
        } else {
#pragma unroll
            for (int c = 0; c < EPT; c++) x[c] = fmaxf(x[c], 0.f);
        }
        const bool ok = r0 + r < N;
#pragma unroll
        for (int c = 0; c < EPT; c += 8) {
            uint4 u;
            uint32_t *pu = reinterpret_cast<uint32_t *>(&u);
#pragma unroll
            for (int i = 0; i < 4; i++) pu[i] = ok ? pack_bf16(x[c + 2 * i], x[c + 2 * i + 1]) : 0u;
            *reinterpret_cast<uint4 *>(row + c) = u;
        }
    }
    __syncthreads();
    bf16 *out = hs + ((long)bh * Tn + j) * W;
    if (tid < D) {
        float s = 0.f;
        for (int r = 0; r < blk_k; r++) s += __bfloat162float(sK[r * LD + tid]);
        out[D * D + tid] = __float2bfloat16_rn(s);
    }
    float acc[T::MT][T::NT][4];
    zero_acc<T::MT, T::NT>(acc);
    const int m0 = (w % T::WR) * T::MT * 16, n0 = (w / T::WR) * T::NT * 8;
    warp_gemm<T::MT, T::NT, true, false>(acc, sK + m0, LD, sV + n0, LD, blk_k, lane);
    dd_store_global<D, NW>(acc, out);
}

template <int D>
__global__ void __launch_bounds__(256) lin_outer_kernel(const bf16 *X, const bf16 *Y, long N, float *part,
                                                       float *colsum, int nchunk) {
    constexpr int NW = 8;
    using T = DDT<D, NW>;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *R0 = reinterpret_cast<bf16 *>(smem_raw);
    const int bh = blockIdx.y, ch = blockIdx.x, tid = threadIdx.x, lane = tid & 31, w = tid >> 5, g = lane >> 2,
              t = lane & 3;
    const long hoff = (long)bh * N * D;
    const int ntiles = (int)((N + KT - 1) / KT);
    TileSeq seq;
    seq.list = nullptr, seq.len = 0, seq.per = 1, seq.base = ch * OUTER_TILES;
    seq.count = min(OUTER_TILES, ntiles - seq.base);
    float acc[T::MT][T::NT][4];
    zero_acc<T::MT, T::NT>(acc);
    float cs = 0.f;
    accum_xty<D, NW>(acc, X + hoff, Y + hoff, N, seq, R0, colsum ? &cs : nullptr);
    const int m0 = (w % T::WR) * T::MT * 16, n0 = (w / T::WR) * T::NT * 8;
    float *out = part + ((long)bh * nchunk + ch) * D * D;
#pragma unroll
    for (int mt = 0; mt < T::MT; mt++)
#pragma unroll
        for (int j = 0; j < T::NT; j++) {
            int r = m0 + mt * 16 + g, c = n0 + j * 8 + 2 * t;
            *reinterpret_cast<float2 *>(out + r * D + c) = make_float2(acc[mt][j][0], acc[mt][j][1]);
            *reinterpret_cast<float2 *>(out + (r + 8) * D + c) = make_float2(acc[mt][j][2], acc[mt][j][3]);
        }
    if (colsum && tid < D) colsum[((long)bh * nchunk + ch) * D + tid] = cs;
}

__global__ void lin_reduce_kernel(const float *in, float *out, int count, long E) {
    const long e = (long)blockIdx.x * blockDim.x + threadIdx.x;
    const int gi = blockIdx.y;
    if (e >= E) return;
    float s = 0.f;
    for (int c = 0; c < count; c++) s += in[((long)gi * count + c) * E + e];
    out[(long)gi * E + e] = s;
}

__global__ void lin_reduce_bf16_kernel(const bf16 *in, float *out, int count, long E) {
    const long e = (long)blockIdx.x * blockDim.x + threadIdx.x;
    const int gi = blockIdx.y;
    if (e >= E) return;
    float s = 0.f;
    for (int c = 0; c < count; c++) s += __bfloat162float(in[((long)gi * count + c) * E + e]);
    out[(long)gi * E + e] = s;
}

template <int D, int BQ> void fwd_launch(const LinParams &p, int BH) {
    constexpr int LD = D + 8, smem = (2 * D * LD + BQ * LD) * 2 + D * 4;
    static bool init = false;
    if (!init) sla_smem_limit(lin_fwd_kernel<D, BQ>, smem), init = true;
    lin_fwd_kernel<D, BQ><<<dim3(p.Tm, BH), BQ * 2, smem, cuda_stream()>>>(p);
    CUDA_CHECK_LAUNCH();
}

template <int D, int BQ> void bwdq_launch(const LinParams &p, int BH) {
    constexpr int LD = D + 8, smem = (3 * D * LD + 2 * BQ * LD) * 2 + D * 4 + (BQ / 16) * D * 4;
    static bool init = false;
    if (!init) sla_smem_limit(lin_bwdq_kernel<D, BQ>, smem), init = true;
    lin_bwdq_kernel<D, BQ><<<dim3(p.Tm, BH), BQ * 2, smem, cuda_stream()>>>(p);
    CUDA_CHECK_LAUNCH();
}

template <int D> void bwdk_launch(const LinParams &p, int BH) {
    constexpr int LD = D + 8, smem = (D * LD + 2 * KT * LD) * 2 + D * 4;
    static bool init = false;
    if (!init) sla_smem_limit(lin_bwdk_kernel<D>, smem), init = true;
    lin_bwdk_kernel<D><<<dim3((p.N + KT - 1) / KT, BH), 128, smem, cuda_stream()>>>(p);
    CUDA_CHECK_LAUNCH();
}

template <int D> void state_launch(const bf16 *k, const bf16 *v, bf16 *hs, int BH, int N, int blk_k, int Tn,
                                   int feature) {
    constexpr int smem = 2 * 128 * (D + 8) * 2;
    static bool init = false;
    if (!init) sla_smem_limit(lin_state_kernel<D>, smem), init = true;
    lin_state_kernel<D><<<dim3(Tn, BH), 256, smem, cuda_stream()>>>(k, v, hs, N, blk_k, Tn, feature);
    CUDA_CHECK_LAUNCH();
}

cublasHandle_t g_cublas = nullptr;

void cublas_check(cublasStatus_t st, const char *what) {
    CHECK(st == CUBLAS_STATUS_SUCCESS, "cuBLAS: %s failed with status %d", what, (int)st);
}

} // namespace

void lin_w_split_launch(const float *W, bf16 *wsplit, int D) {
    w_split_kernel<<<(D * D + 255) / 256, 256, 0, cuda_stream()>>>(W, wsplit, D * D);
    CUDA_CHECK_LAUNCH();
}

int lin_outer_nchunk(int N) { return (N + KT * OUTER_TILES - 1) / (KT * OUTER_TILES); }

void lin_state_launch(const bf16 *k, const bf16 *v, bf16 *hs, int BH, int N, int D, int blk_k, int Tn, int feature) {
    CHECK(blk_k == 64 || blk_k == 128, "SLA linear branch: key block %d (64 or 128)", blk_k);
    if (D == 128) state_launch<128>(k, v, hs, BH, N, blk_k, Tn, feature);
    else if (D == 64) state_launch<64>(k, v, hs, BH, N, blk_k, Tn, feature);
    else CHECK(0, "SLA linear branch: unsupported head dim %d", D);
}

void lin_mask_gemm(const bf16 *rows, const bf16 *mask, bf16 *out, int BH, int Tm, int Tn, long W, int transposed) {
    if (!g_cublas) cublas_check(cublasCreate(&g_cublas), "cublasCreate");
    cublas_check(cublasSetStream(g_cublas, cuda_stream()), "cublasSetStream");
    const float one = 1.f, zero = 0.f;
    if (!transposed) { /* out [Tm, W] = mask [Tm, Tn] rows [Tn, W] */
        cublas_check(cublasGemmStridedBatchedEx(g_cublas, CUBLAS_OP_N, CUBLAS_OP_N, (int)W, Tm, Tn, &one, rows,
                                                CUDA_R_16BF, (int)W, (long long)Tn * W, mask, CUDA_R_16BF, Tn,
                                                (long long)Tm * Tn, &zero, out, CUDA_R_16BF, (int)W,
                                                (long long)Tm * W, BH, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                     "mask GEMM");
    } else { /* out [Tn, W] = mask^T [Tn, Tm] rows [Tm, W] */
        cublas_check(cublasGemmStridedBatchedEx(g_cublas, CUBLAS_OP_N, CUBLAS_OP_T, (int)W, Tn, Tm, &one, rows,
                                                CUDA_R_16BF, (int)W, (long long)Tm * W, mask, CUDA_R_16BF, Tn,
                                                (long long)Tm * Tn, &zero, out, CUDA_R_16BF, (int)W,
                                                (long long)Tn * W, BH, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                     "transposed mask GEMM");
    }
}

int lin_outer_launch(const bf16 *X, const bf16 *Y, int BH, int N, int D, float *part, float *colsum) {
    int nchunk = lin_outer_nchunk(N);
    dim3 grid(nchunk, BH);
    int smem = 4 * KT * (D + 8) * 2;
    if (D == 128) {
        static bool init = false;
        if (!init) sla_smem_limit(lin_outer_kernel<128>, smem), init = true;
        lin_outer_kernel<128><<<grid, 256, smem, cuda_stream()>>>(X, Y, N, part, colsum, nchunk);
    } else if (D == 64) {
        lin_outer_kernel<64><<<grid, 256, smem, cuda_stream()>>>(X, Y, N, part, colsum, nchunk);
    } else {
        CHECK(0, "SLA linear branch: unsupported head dim %d", D);
    }
    CUDA_CHECK_LAUNCH();
    return nchunk;
}

void lin_reduce_launch(const float *in, float *out, int G, int count, long E) {
    dim3 grid((unsigned)((E + 255) / 256), G);
    lin_reduce_kernel<<<grid, 256, 0, cuda_stream()>>>(in, out, count, E);
    CUDA_CHECK_LAUNCH();
}

void lin_reduce_bf16_launch(const bf16 *in, float *out, int G, int count, long E) {
    dim3 grid((unsigned)((E + 255) / 256), G);
    lin_reduce_bf16_kernel<<<grid, 256, 0, cuda_stream()>>>(in, out, count, E);
    CUDA_CHECK_LAUNCH();
}

void lin_forward_launch(const LinParams &p, int BH, int D, int bq) {
    if (D == 128 && bq == 128) fwd_launch<128, 128>(p, BH);
    else if (D == 128 && bq == 64) fwd_launch<128, 64>(p, BH);
    else if (D == 64 && bq == 128) fwd_launch<64, 128>(p, BH);
    else if (D == 64 && bq == 64) fwd_launch<64, 64>(p, BH);
    else CHECK(0, "SLA linear branch: unsupported head dim %d / query block %d", D, bq);
}

void lin_backward_q_launch(const LinParams &p, int BH, int D, int bq) {
    if (D == 128 && bq == 128) bwdq_launch<128, 128>(p, BH);
    else if (D == 128 && bq == 64) bwdq_launch<128, 64>(p, BH);
    else if (D == 64 && bq == 128) bwdq_launch<64, 128>(p, BH);
    else if (D == 64 && bq == 64) bwdq_launch<64, 64>(p, BH);
    else CHECK(0, "SLA linear branch: unsupported head dim %d / query block %d", D, bq);
}

void lin_backward_k_launch(const LinParams &p, int BH, int D) {
    if (D == 128) bwdk_launch<128>(p, BH);
    else if (D == 64) bwdk_launch<64>(p, BH);
    else CHECK(0, "SLA linear branch: unsupported head dim %d", D);
}
