/* kernels/cuda/sla_linear.cu — SLA's linear branch on the GPU (SLA.md sections 3-5): feature maps,
 * d x d states, the proj, and their gradients. bf16 tensor cores with fp32 accumulation; where an
 * fp32 value must enter a product (states, phi(Q), Ol, W) it is split into bf16 hi + lo and three
 * products are summed (the fp32 W of the proj); states, phi and Ol enter as single bf16 terms
 * (their rounding, 2^-9 relative per element, averages out over the d-long dot products: about
 * 2^-9 / sqrt(d) on the result, well under the bf16 rounding of the outputs).
 *
 * A query block's state H_i = sum over its linear key blocks of phi(K)^T V is formed in the kernel
 * that uses it, from the 64-row tiles of phi(K) and V: either directly over the marginal blocks
 * (sub = 0) or as Htot - sum over critical + negligible ones (sub = 1), whichever list is shorter;
 * the "all" variant uses Htot alone. The backward does the same with A_i = sum Q^^T dOl over the
 * query blocks of a key block. Totals come from lin_outer (per-chunk partials, then lin_reduce in a
 * fixed order): no atomics, so every result is bit-reproducible.
 *
 * lin_phik_kernel   phik = phi(K) (bf16) and z_j = per key block sums of phik.
 * lin_outer_kernel  per chunk of 512 rows: X^T Y (D x D) and column sums of X.
 * lin_fwd_kernel    per query block: H_i, Z_i; Ol = phi(Q) H_i / den (0 where den <= 0 or the
 *                   block has no linear key block); ol = Ol; o = Ol W^T + b (the sparse kernel
 *                   adds Os afterwards).
 * lin_bwdq_kernel   per query block: dOl = dout W, Dl, Q^ = phi(Q) / den, dq = through phi of
 *                   (dOl H_i^T - Dl Z_i) / den; writes qhat, dol, beta_i = sum Dl Q^.
 * lin_bwdk_kernel   per 64-key tile: Abar, betabar; dk = through phi of (V Abar^T - betabar),
 *                   dv = phi(K) Abar (the sparse kernel adds its part afterwards). */
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

/* base - acc (sub) or acc, for this warp's part of a D x D matrix, into shared hi/lo tiles. */
template <int D, int NW>
__device__ void dd_store(float (&acc)[DDT<D, NW>::MT][DDT<D, NW>::NT][4], const float *base, int sub, bf16 *hi,
                         bf16 *lo) {
    constexpr int LD = D + 8;
    using T = DDT<D, NW>;
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int m0 = (w % T::WR) * T::MT * 16, n0 = (w / T::WR) * T::NT * 8;
#pragma unroll
    for (int mt = 0; mt < T::MT; mt++) {
#pragma unroll
        for (int j = 0; j < T::NT; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int r = m0 + mt * 16 + g + (e >> 1) * 8, c = n0 + j * 8 + 2 * t + (e & 1);
                acc[mt][j][e] = sub ? base[r * D + c] - acc[mt][j][e] : acc[mt][j][e];
            }
        frag_store_split<T::NT>(acc[mt], hi + (m0 + mt * 16) * LD + n0, lo ? lo + (m0 + mt * 16) * LD + n0 : nullptr,
                                LD, lane);
    }
}

/* The key tiles of query block qb's linear list. */
__device__ __forceinline__ TileSeq lin_key_seq(const LinParams &p, int bh, int qb) {
    TileSeq s;
    s.list = p.L > 0 ? p.list + ((long)bh * p.Tm + qb) * p.L : nullptr;
    s.len = p.L, s.per = p.tpb, s.base = 0, s.count = 0;
    return s;
}

/* Shared between forward and backward: H_i (bf16 into R0, row stride D + 8) and Z_i (fp32 into
 * sZ), then a barrier. */
template <int D, int NW>
__device__ void build_state(const LinParams &p, int bh, int qb, bf16 *R0, float *sZ) {
    using T = DDT<D, NW>;
    const long hoff = (long)bh * p.N * D;
    float acc[T::MT][T::NT][4];
    zero_acc<T::MT, T::NT>(acc);
    TileSeq seq = lin_key_seq(p, bh, qb);
    accum_xty<D, NW>(acc, p.phik + hoff, p.v + hoff, p.N, seq, R0, nullptr);
    const int tid = threadIdx.x;
    if (tid < D) {
        float zs = 0.f;
        for (int e = 0; e < p.L; e++) zs += p.z[((long)bh * p.Tn + seq.list[e]) * D + tid];
        sZ[tid] = p.sub ? p.Ztot[(long)bh * D + tid] - zs : zs;
    }
    cp_async_wait<0>();
    __syncthreads();
    dd_store<D, NW>(acc, p.Htot + (long)bh * D * D, p.sub, R0, nullptr);
    __syncthreads();
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

/* W [out][in] fp32 (global) -> shared hi/lo tiles [out][in] (row stride D + 8). */
template <int D> __device__ void load_w_split(const float *W, bf16 *hi, bf16 *lo, int nthreads) {
#pragma unroll 1
    for (int i = threadIdx.x; i < D * D; i += nthreads) {
        float h, l;
        split_bf16(W[i], h, l);
        hi[(i / D) * (D + 8) + i % D] = __float2bfloat16_rn(h);
        lo[(i / D) * (D + 8) + i % D] = __float2bfloat16_rn(l);
    }
}

template <int D, int BQ>
__global__ void __launch_bounds__(BQ * 2) lin_fwd_kernel(LinParams p) {
    constexpr int NW = BQ / 16, NTH = BQ * 2, LD = D + 8, NTD = D / 8;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *R0 = reinterpret_cast<bf16 *>(smem_raw);
    bf16 *Ahi = R0 + 4 * KT * LD; /* Q, then phi(Q), then Ol (bf16) */
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
    build_state<D, NW>(p, bh, qb, R0, sZ);

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
    load_w_split<D>(p.W, R0, R0 + D * LD, NTH);
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
    constexpr int NW = BQ / 16, NTH = BQ * 2, LD = D + 8, NTD = D / 8;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *R0 = reinterpret_cast<bf16 *>(smem_raw);
    bf16 *Aq = R0 + 4 * KT * LD, *Ag = Aq + BQ * LD, *Whi = Ag + BQ * LD, *Wlo = Whi + D * LD;
    float *sZ = reinterpret_cast<float *>(Wlo + D * LD), *sB = sZ + D;
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, g = lane >> 2, t = lane & 3;
    const int bh = blockIdx.y, qb = blockIdx.x, q0 = qb * BQ;
    const long hoff = (long)bh * p.N * D;
    if (p.empty) {
        for (int i = tid; i < BQ * D; i += NTH) {
            long r = q0 + i / D;
            if (r < p.N) p.dq[hoff + r * D + i % D] = __float2bfloat16_rn(0.f);
        }
        return;
    }
    load_tile_async<D>(Aq, p.q + hoff, q0, BQ, p.N, tid, NTH);
    load_tile_async<D>(Ag, p.dout + hoff, q0, BQ, p.N, tid, NTH);
    cp_async_commit();
    load_w_split<D>(p.W, Whi, Wlo, NTH);
    build_state<D, NW>(p, bh, qb, R0, sZ);

    bf16 *aq = Aq + w * 16 * LD, *ag = Ag + w * 16 * LD;
    const int row0 = q0 + w * 16 + g, row1 = row0 + 8;
    float x[NTD][4];
    frag_load_smem<NTD>(x, aq, LD, lane);
    frag_phi<NTD>(x, p.feature);
    float i0, i1;
    row_inv_den<NTD>(x, sZ, p.all, i0, i1);
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
    frag_store_global<NTD>(dol[0], p.dol + hoff, D, q0 + w * 16, p.N, lane);
    __syncwarp(); /* the warp's Q and dout rows are consumed: dOl hi/lo take their place */
    frag_store_split<NTD>(dol[0], aq, nullptr, LD, lane);
    /* qhat and beta partials */
    {
        bf16 *qh = p.qhat + hoff;
#pragma unroll
        for (int j = 0; j < NTD; j++) {
            int c = j * 8 + 2 * t;
            float a0 = x[j][0] * i0, a1 = x[j][1] * i0, b0 = x[j][2] * i1, b1 = x[j][3] * i1;
            if (row0 < p.N) *reinterpret_cast<uint32_t *>(qh + (long)row0 * D + c) = pack_bf16(a0, a1);
            if (row1 < p.N) *reinterpret_cast<uint32_t *>(qh + (long)row1 * D + c) = pack_bf16(b0, b1);
            float v0 = a0 * Dl0 + b0 * Dl1, v1 = a1 * Dl0 + b1 * Dl1;
#pragma unroll
            for (int m = 4; m < 32; m <<= 1) {
                v0 += __shfl_xor_sync(0xffffffffu, v0, m);
                v1 += __shfl_xor_sync(0xffffffffu, v1, m);
            }
            if (g == 0) sB[w * D + c] = v0, sB[w * D + c + 1] = v1;
        }
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
    __syncthreads();
    if (tid < D) {
        float s = 0.f;
        for (int i = 0; i < NW; i++) s += sB[i * D + tid];
        p.beta[((long)bh * p.Tm + qb) * D + tid] = s;
    }
}

template <int D>
__global__ void __launch_bounds__(128) lin_bwdk_kernel(LinParams p) {
    constexpr int NW = 4, NTH = 128, LD = D + 8, NTD = D / 8;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *R0 = reinterpret_cast<bf16 *>(smem_raw);
    bf16 *Sk = R0 + 4 * KT * LD, *Sv = Sk + KT * LD;
    float *sBb = reinterpret_cast<float *>(Sv + KT * LD);
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, t = lane & 3;
    const int bh = blockIdx.y, kt = blockIdx.x;
    const long k0 = (long)kt * KT, hoff = (long)bh * p.N * D;
    load_tile_async<D>(Sk, p.k + hoff, k0, KT, p.N, tid, NTH);
    load_tile_async<D>(Sv, p.v + hoff, k0, KT, p.N, tid, NTH);
    cp_async_commit();

    using T = DDT<D, NW>;
    float acc[T::MT][T::NT][4];
    zero_acc<T::MT, T::NT>(acc);
    TileSeq seq;
    seq.list = nullptr, seq.len = 0, seq.per = p.spb, seq.base = 0, seq.count = 0;
    if (p.tent) {
        const int jb = kt / p.tpb;
        const int *off = p.toff + (long)bh * (p.Tn + 1);
        seq.list = p.tent + bh * p.tent_stride + off[jb];
        seq.len = off[jb + 1] - off[jb];
    }
    accum_xty<D, NW>(acc, p.qhat_in + hoff, p.dol_in + hoff, p.N, seq, R0, nullptr);
    if (tid < D) {
        float bs = 0.f;
        for (int e = 0; e < seq.len; e++) bs += p.beta_in[((long)bh * p.Tm + seq.list[e]) * D + tid];
        sBb[tid] = p.sub ? p.betatot[(long)bh * D + tid] - bs : bs;
    }
    cp_async_wait<0>();
    __syncthreads();
    dd_store<D, NW>(acc, p.Atot + (long)bh * D * D, p.sub, R0, nullptr);
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

/* 4 threads per row, D / 4 contiguous columns each; a CTA per key block (<= 128 rows). */
template <int D>
__global__ void __launch_bounds__(256) lin_phik_kernel(const bf16 *k, bf16 *phik, float *z, int N, int blk_k, int Tn,
                                                      int feature) {
    constexpr int EPT = D / 4;
    __shared__ __align__(16) bf16 sphi[128 * D];
    const int bh = blockIdx.y, j = blockIdx.x, tid = threadIdx.x, quad = tid >> 2, ql = tid & 3;
    const long r0 = (long)j * blk_k;
    const int nr = (int)min((long)blk_k, (long)N - r0);
    const bf16 *kg = k + ((long)bh * N + r0) * D;
    bf16 *pg = phik + ((long)bh * N + r0) * D;
    for (int rb = 0; rb < blk_k; rb += 64) {
        const int r = rb + quad;
        const bool ok = r < nr;
        float x[EPT];
#pragma unroll
        for (int c = 0; c < EPT; c += 8) {
            uint4 u = make_uint4(0, 0, 0, 0);
            if (ok) u = *reinterpret_cast<const uint4 *>(kg + (long)r * D + ql * EPT + c);
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
        if (ok) {
#pragma unroll
            for (int c = 0; c < EPT; c += 8) {
                uint4 u;
                uint32_t *pu = reinterpret_cast<uint32_t *>(&u);
#pragma unroll
                for (int i = 0; i < 4; i++) pu[i] = pack_bf16(x[c + 2 * i], x[c + 2 * i + 1]);
                *reinterpret_cast<uint4 *>(pg + (long)r * D + ql * EPT + c) = u;
                *reinterpret_cast<uint4 *>(sphi + r * D + ql * EPT + c) = u;
            }
        }
    }
    __syncthreads();
    if (tid < D) {
        float s = 0.f;
        for (int r = 0; r < nr; r++) s += __bfloat162float(sphi[r * D + tid]);
        z[((long)bh * Tn + j) * D + tid] = s;
    }
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

template <int D, int BQ> void fwd_launch(const LinParams &p, int BH) {
    constexpr int LD = D + 8, smem = (4 * KT * LD + BQ * LD) * 2 + D * 4;
    static bool init = false;
    if (!init) sla_smem_limit(lin_fwd_kernel<D, BQ>, smem), init = true;
    lin_fwd_kernel<D, BQ><<<dim3(p.Tm, BH), BQ * 2, smem, cuda_stream()>>>(p);
    CUDA_CHECK_LAUNCH();
}

template <int D, int BQ> void bwdq_launch(const LinParams &p, int BH) {
    constexpr int LD = D + 8, smem = (4 * KT * LD + 2 * BQ * LD + 2 * D * LD) * 2 + D * 4 + (BQ / 16) * D * 4;
    static bool init = false;
    if (!init) sla_smem_limit(lin_bwdq_kernel<D, BQ>, smem), init = true;
    lin_bwdq_kernel<D, BQ><<<dim3(p.Tm, BH), BQ * 2, smem, cuda_stream()>>>(p);
    CUDA_CHECK_LAUNCH();
}

template <int D> void bwdk_launch(const LinParams &p, int BH) {
    constexpr int LD = D + 8, smem = (4 * KT * LD + 2 * KT * LD) * 2 + D * 4;
    static bool init = false;
    if (!init) sla_smem_limit(lin_bwdk_kernel<D>, smem), init = true;
    lin_bwdk_kernel<D><<<dim3((p.N + KT - 1) / KT, BH), 128, smem, cuda_stream()>>>(p);
    CUDA_CHECK_LAUNCH();
}

} // namespace

int lin_outer_nchunk(int N) { return (N + KT * OUTER_TILES - 1) / (KT * OUTER_TILES); }

void lin_phik_launch(const bf16 *k, bf16 *phik, float *z, int BH, int N, int D, int blk_k, int Tn, int feature) {
    CHECK(blk_k <= 128, "SLA linear branch: key block %d > 128", blk_k);
    dim3 grid(Tn, BH);
    if (D == 128) lin_phik_kernel<128><<<grid, 256, 0, cuda_stream()>>>(k, phik, z, N, blk_k, Tn, feature);
    else if (D == 64) lin_phik_kernel<64><<<grid, 256, 0, cuda_stream()>>>(k, phik, z, N, blk_k, Tn, feature);
    else CHECK(0, "SLA linear branch: unsupported head dim %d", D);
    CUDA_CHECK_LAUNCH();
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
