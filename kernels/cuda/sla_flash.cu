/* kernels/cuda/sla_flash.cu — FlashAttention-2 style kernels on bf16 tensor cores (mma.sync
 * m16n8k16, fp32 accumulation, online softmax in base 2), shared by dense attention and SLA's
 * sparse branch: with a lut a query block visits only its kept key blocks, without one every key.
 *
 * flash_fwd_kernel   one CTA per query block (bq = 64 or 128 rows, a warp per 16 or 32 rows); K/V
 *                    64-row tiles double-buffered with cp.async. Writes o (or o += Os when add:
 *                    the linear branch wrote Ol W^T + b there first), os and lse (natural log).
 * flash_dq_kernel    one CTA per 64 query rows (two per 128-row block), same loop; recomputes P,
 *                    dP, dS; dq (+)= scale dS K, with Ds made consistent with the P and dP used
 *                    (sum_c P dP, also handed to the dK/dV kernel): rows whose keys are alike
 *                    then get dQ ~ 0 as they should.
 * flash_dkdv_kernel  one CTA per 64-key tile over the list of query blocks that kept its key block
 *                    (64-row query sub-tiles); dk (+)= scale dS^T Q, dv (+)= P^T dO.
 * Deterministic: no atomics; every output element is written by one thread in a fixed order.
 * Per iteration: one barrier (the next tile's copies are issued right after it) and, in the dq and
 * dk/dv kernels, the list index of iteration it + 2 read during iteration it (TilePipe).
 * Keys past Nk get -inf in the forward/dq (zero-filled tiles); query rows past Nq get zero Q, dO,
 * lse and Ds in dk/dv, so that they add exact zeros (P = 1 there, but dO = 0 and dS = 0). */

#include "sla_internal.cuh"

namespace {

constexpr int KT = FLASH_KT; /* key tile rows */

template <int D> struct FlashSmem {
    static constexpr int LD = D + 8;
    static constexpr int tile = KT * LD; /* elements of one 64-row tile */
};

/* The tile pipeline of the three kernels: tiles alternate between two buffers. At the top of
 * iteration it (begin): wait for tile it's copies, one barrier (after it every warp is done with
 * the other buffer, read in iteration it - 1), then tile it + 1's copies into that buffer. With RA
 * (the dq and dk/dv kernels) the list entry of it + 2 is read during it, into a register; the
 * forward re-reads tile(it) where it needs it (an L1 hit: on an H100 the read-ahead cost it more in
 * registers than it saved). The constructor issues tile 0's copies. (Measured in the first session
 * against two barriers per iteration and other orders: sla_results.md, flash-kernel tuning.) */
template <bool RA> struct TilePipe {
    TileSeq seq;
    int n, cur, nxt, nxt2; /* with RA: the tiles of iterations it, it + 1, it + 2 */
    template <typename Load> __device__ __forceinline__ TilePipe(const TileSeq &s, Load &&load) : seq(s), n(s.size()) {
        cur = n > 0 ? seq.tile(0) : 0, nxt = RA && n > 1 ? seq.tile(1) : 0, nxt2 = 0;
        if (n > 0) load(cur, 0);
        cp_async_commit();
    }
    template <typename Load> __device__ __forceinline__ void begin(int it, Load &&load) {
        const int tnext = RA ? nxt : (it + 1 < n ? seq.tile(it + 1) : 0);
        if (RA) nxt2 = it + 2 < n ? seq.tile(it + 2) : 0;
        cp_async_wait<0>();
        __syncthreads();
        if (it + 1 < n) load(tnext, (it & 1) ^ 1);
        cp_async_commit();
    }
    __device__ __forceinline__ int tile(int it) const { return RA ? cur : seq.tile(it); }
    __device__ __forceinline__ void end() {
        if (RA) cur = nxt, nxt = nxt2;
    }
};

/* WM 16-row m-tiles per warp: BQ / (16 WM) warps. Two m-tiles halve the K/V fragment loads from
 * shared memory per MMA (every B fragment feeds both). */
template <int D, int BQ, int WM>
__global__ void __launch_bounds__(BQ * 2 / WM) flash_fwd_kernel(FlashParams p) {
    constexpr int LD = D + 8, NTD = D / 8, NTH = BQ * 2 / WM, RW = 16 * WM;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *sQ = reinterpret_cast<bf16 *>(smem_raw);
    bf16 *sK = sQ + BQ * LD, *sV = sK + 2 * FlashSmem<D>::tile;
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, g = lane >> 2, t = lane & 3;
    const int bh = blockIdx.y, qb = blockIdx.x, q0 = qb * BQ;
    const bf16 *qg = p.q + (long)bh * p.Nq * D, *kg = p.k + (long)bh * p.Nk * D, *vg = p.v + (long)bh * p.Nk * D;
    load_tile_async_u<D, BQ, NTH>(sQ, qg, q0, p.Nq, tid);
    auto load_kv = [&](int tile, int buf) {
        const long k0 = (long)tile * KT;
        load_tile_async_u<D, KT, NTH>(sK + buf * FlashSmem<D>::tile, kg, k0, p.Nk, tid);
        load_tile_async_u<D, KT, NTH>(sV + buf * FlashSmem<D>::tile, vg, k0, p.Nk, tid);
    };
    TilePipe<false> pipe(key_seq(p, bh, qb), load_kv);
    const int n = pipe.n;

    const float sl2 = SLA_LOG2E * rsqrtf((float)D);
    float m[WM][2], l[WM][2];
    float acc[WM][NTD][4];
#pragma unroll
    for (int i = 0; i < WM; i++) m[i][0] = m[i][1] = -INFINITY, l[i][0] = l[i][1] = 0.f;
    zero_acc<WM, NTD>(acc);

    for (int it = 0; it < n; it++) {
        const int buf = it & 1;
        pipe.begin(it, load_kv);
        const bf16 *ks = sK + buf * FlashSmem<D>::tile, *vs = sV + buf * FlashSmem<D>::tile;
        float s[WM][8][4];
        zero_acc<WM, 8>(s);
        warp_gemm<WM, 8, false, true>(s, sQ + w * RW * LD, LD, ks, LD, D, lane);
        const long k0 = (long)pipe.tile(it) * KT;
        const bool partial = k0 + KT > p.Nk;
#pragma unroll
        for (int i = 0; i < WM; i++) {
            float mx0 = m[i][0], mx1 = m[i][1];
#pragma unroll
            for (int j = 0; j < 8; j++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    float x = s[i][j][e] * sl2;
                    if (partial && k0 + j * 8 + 2 * t + (e & 1) >= p.Nk) x = -INFINITY;
                    s[i][j][e] = x;
                    if (e < 2) mx0 = fmaxf(mx0, x); else mx1 = fmaxf(mx1, x);
                }
            mx0 = quad_max(mx0), mx1 = quad_max(mx1);
            const float r0 = mx0 == -INFINITY ? 0.f : mx0, r1 = mx1 == -INFINITY ? 0.f : mx1;
            const float c0 = fast_exp2(m[i][0] - r0), c1 = fast_exp2(m[i][1] - r1);
            m[i][0] = mx0, m[i][1] = mx1;
            float ps0 = 0.f, ps1 = 0.f;
#pragma unroll
            for (int j = 0; j < 8; j++) {
                s[i][j][0] = fast_exp2(s[i][j][0] - r0), s[i][j][1] = fast_exp2(s[i][j][1] - r0);
                s[i][j][2] = fast_exp2(s[i][j][2] - r1), s[i][j][3] = fast_exp2(s[i][j][3] - r1);
                ps0 += s[i][j][0] + s[i][j][1], ps1 += s[i][j][2] + s[i][j][3];
            }
            l[i][0] = l[i][0] * c0 + ps0, l[i][1] = l[i][1] * c1 + ps1;
#pragma unroll
            for (int j = 0; j < NTD; j++) acc[i][j][0] *= c0, acc[i][j][1] *= c0, acc[i][j][2] *= c1, acc[i][j][3] *= c1;
        }
#pragma unroll
        for (int kc = 0; kc < 4; kc++) {
            uint32_t a[WM][4];
#pragma unroll
            for (int i = 0; i < WM; i++) {
                a[i][0] = pack_bf16(s[i][2 * kc][0], s[i][2 * kc][1]), a[i][1] = pack_bf16(s[i][2 * kc][2], s[i][2 * kc][3]);
                a[i][2] = pack_bf16(s[i][2 * kc + 1][0], s[i][2 * kc + 1][1]);
                a[i][3] = pack_bf16(s[i][2 * kc + 1][2], s[i][2 * kc + 1][3]);
            }
#pragma unroll
            for (int dp = 0; dp < D / 16; dp++) {
                uint32_t b[4];
                ldsm_x4_t(b, vs + (kc * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + dp * 16 + (lane >> 4) * 8);
#pragma unroll
                for (int i = 0; i < WM; i++) {
                    mma16816(acc[i][2 * dp], a[i], b[0], b[1]);
                    mma16816(acc[i][2 * dp + 1], a[i], b[2], b[3]);
                }
            }
        }
        pipe.end();
    }
    cp_async_wait<0>();

    bf16 *og = p.o + (long)bh * p.Nq * D;
#pragma unroll
    for (int i = 0; i < WM; i++) {
        const float l0 = quad_sum(l[i][0]), l1 = quad_sum(l[i][1]);
        const float i0 = l0 > 0.f ? 1.f / l0 : 0.f, i1 = l1 > 0.f ? 1.f / l1 : 0.f;
        const int rbase = q0 + w * RW + i * 16, row0 = rbase + g, row1 = row0 + 8;
        if (t == 0) {
            if (row0 < p.Nq) p.lse_out[(long)bh * p.Nq + row0] = (m[i][0] + log2f(l0)) * SLA_LN2;
            if (row1 < p.Nq) p.lse_out[(long)bh * p.Nq + row1] = (m[i][1] + log2f(l1)) * SLA_LN2;
        }
#pragma unroll
        for (int j = 0; j < NTD; j++) acc[i][j][0] *= i0, acc[i][j][1] *= i0, acc[i][j][2] *= i1, acc[i][j][3] *= i1;
        if (p.os) frag_store_global<NTD>(acc[i], p.os + (long)bh * p.Nq * D, D, rbase, p.Nq, lane);
        frag_store_global_add<NTD>(acc[i], 1.f, og, D, rbase, p.Nq, p.add, lane);
    }
}

template <int D, int BQ>
__global__ void __launch_bounds__(BQ * 2) flash_dq_kernel(FlashParams p) {
    constexpr int LD = D + 8, NTD = D / 8, NTH = BQ * 2;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *sQ = reinterpret_cast<bf16 *>(smem_raw);
    bf16 *sO = sQ + BQ * LD; /* dout */
    bf16 *sK = sO + BQ * LD, *sV = sK + 2 * FlashSmem<D>::tile;
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, g = lane >> 2, t = lane & 3;
    const int bh = blockIdx.y, qb = blockIdx.x, q0 = qb * BQ;
    const bf16 *qg = p.q + (long)bh * p.Nq * D, *kg = p.k + (long)bh * p.Nk * D, *vg = p.v + (long)bh * p.Nk * D;
    load_tile_async_u<D, BQ, NTH>(sQ, qg, q0, p.Nq, tid);
    load_tile_async_u<D, BQ, NTH>(sO, p.dout + (long)bh * p.Nq * D, q0, p.Nq, tid);
    auto load_kv = [&](int tile, int buf) {
        const long k0 = (long)tile * KT;
        load_tile_async_u<D, KT, NTH>(sK + buf * FlashSmem<D>::tile, kg, k0, p.Nk, tid);
        load_tile_async_u<D, KT, NTH>(sV + buf * FlashSmem<D>::tile, vg, k0, p.Nk, tid);
    };
    TilePipe<true> pipe(key_seq(p, bh, qb), load_kv);
    const int n = pipe.n;

    const float sl2 = SLA_LOG2E * rsqrtf((float)D);
    const int row0 = q0 + w * 16 + g, row1 = row0 + 8;
    const RowStats r0s = dq_row_stats(p, bh, row0), r1s = dq_row_stats(p, bh, row1);
    const float L0 = r0s.L, L1 = r1s.L, D0 = r0s.D, D1 = r1s.D;
    /* acc = sum dS K with the approximate Ds (from the bf16 o); Y = sum P K and the exact
     * E = sum P dP correct it: dQ = scale (acc + (Ds - E) Y), so that sum_c dS_rc = 0 holds for
     * the P and dP actually used (the dK/dV kernel uses E too). */
    float acc[1][NTD][4], accy[1][NTD][4];
    zero_acc<1, NTD>(acc);
    zero_acc<1, NTD>(accy);
    float e0 = 0.f, e1 = 0.f;

    for (int it = 0; it < n; it++) {
        const int buf = it & 1;
        pipe.begin(it, load_kv);
        const bf16 *ks = sK + buf * FlashSmem<D>::tile, *vs = sV + buf * FlashSmem<D>::tile;
        float s[1][8][4], dp[1][8][4];
        zero_acc<1, 8>(s);
        zero_acc<1, 8>(dp);
        warp_gemm<1, 8, false, true>(s, sQ + w * 16 * LD, LD, ks, LD, D, lane);
        warp_gemm<1, 8, false, true>(dp, sO + w * 16 * LD, LD, vs, LD, D, lane);
        const long k0 = (long)pipe.tile(it) * KT;
        const bool partial = k0 + KT > p.Nk;
#pragma unroll
        for (int j = 0; j < 8; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float pr = fast_exp2(s[0][j][e] * sl2 - (e < 2 ? L0 : L1));
                if (partial && k0 + j * 8 + 2 * t + (e & 1) >= p.Nk) pr = 0.f;
                float pd = pr * dp[0][j][e];
                if (e < 2) e0 += pd; else e1 += pd;
                s[0][j][e] = pr;
                dp[0][j][e] = pd - pr * (e < 2 ? D0 : D1);
            }
#pragma unroll
        for (int kc = 0; kc < 4; kc++) {
            uint32_t a[4] = {pack_bf16(dp[0][2 * kc][0], dp[0][2 * kc][1]), pack_bf16(dp[0][2 * kc][2], dp[0][2 * kc][3]),
                             pack_bf16(dp[0][2 * kc + 1][0], dp[0][2 * kc + 1][1]),
                             pack_bf16(dp[0][2 * kc + 1][2], dp[0][2 * kc + 1][3])};
            uint32_t ap[4] = {pack_bf16(s[0][2 * kc][0], s[0][2 * kc][1]), pack_bf16(s[0][2 * kc][2], s[0][2 * kc][3]),
                              pack_bf16(s[0][2 * kc + 1][0], s[0][2 * kc + 1][1]),
                              pack_bf16(s[0][2 * kc + 1][2], s[0][2 * kc + 1][3])};
#pragma unroll
            for (int d2 = 0; d2 < D / 16; d2++) {
                uint32_t b[4];
                ldsm_x4_t(b, ks + (kc * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + d2 * 16 + (lane >> 4) * 8);
                mma16816(acc[0][2 * d2], a, b[0], b[1]);
                mma16816(acc[0][2 * d2 + 1], a, b[2], b[3]);
                mma16816(accy[0][2 * d2], ap, b[0], b[1]);
                mma16816(accy[0][2 * d2 + 1], ap, b[2], b[3]);
            }
        }
        pipe.end();
    }
    cp_async_wait<0>();

    dq_epilogue<D>(acc[0], accy[0], e0, e1, D0, D1, p, bh, q0 + w * 16, lane);
}

/* 4 warps, 16 keys each; query sub-tiles of 64 rows. */
template <int D>
__global__ void __launch_bounds__(128) flash_dkdv_kernel(FlashParams p) {
    constexpr int LD = D + 8, NTD = D / 8, NTH = 128, TL = FlashSmem<D>::tile;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *sK = reinterpret_cast<bf16 *>(smem_raw);
    bf16 *sV = sK + TL, *sQ = sV + TL, *sO = sQ + 2 * TL; /* sQ, sO: two buffers each */
    float *sL = reinterpret_cast<float *>(sO + 2 * TL), *sD = sL + 2 * KT; /* lse (natural log), Ds */
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, t = lane & 3;
    const int bh = blockIdx.y;
    /* with an order, CTA x takes the x-th longest key block's tiles */
    const int kt = p.order ? p.order[(long)bh * p.Tk + blockIdx.x / p.tpb] * p.tpb + blockIdx.x % p.tpb : blockIdx.x;
    const long k0 = (long)kt * KT;
    const bf16 *qg = p.q + (long)bh * p.Nq * D, *og = p.dout + (long)bh * p.Nq * D;
    const float *lse = p.lse + (long)bh * p.Nq, *Dsg = (p.Ds_exact ? p.Ds_exact : p.Ds) + (long)bh * p.Nq;
    load_tile_async_u<D, KT, NTH>(sK, p.k + (long)bh * p.Nk * D, k0, p.Nk, tid);
    load_tile_async_u<D, KT, NTH>(sV, p.v + (long)bh * p.Nk * D, k0, p.Nk, tid);
    /* Query rows past Nq get zero Q, dO, lse and Ds: P = 1 there but dS = 0 and dO = 0, so they
     * add exact zeros to dK and dV. */
    auto load_q = [&](int tile, int buf) {
        const long r0 = (long)tile * KT;
        load_tile_async_u<D, KT, NTH>(sQ + buf * TL, qg, r0, p.Nq, tid);
        load_tile_async_u<D, KT, NTH>(sO + buf * TL, og, r0, p.Nq, tid);
        if (tid < KT) {
            const long r = r0 + tid;
            const bool ok = r < p.Nq;
            cp_async4(sL + buf * KT + tid, ok ? lse + r : lse, ok);
            cp_async4(sD + buf * KT + tid, ok ? Dsg + r : Dsg, ok);
        }
    };
    TilePipe<true> pipe(query_seq(p, bh, kt), load_q);
    const int n = pipe.n;

    const float sl2 = SLA_LOG2E * rsqrtf((float)D);
    float dk[1][NTD][4], dv[1][NTD][4];
    zero_acc<1, NTD>(dk);
    zero_acc<1, NTD>(dv);

    for (int it = 0; it < n; it++) {
        const int buf = it & 1;
        pipe.begin(it, load_q);
        const bf16 *qs = sQ + buf * TL, *os = sO + buf * TL;
        const float *Lb = sL + buf * KT, *Db = sD + buf * KT;
        float s[1][8][4], dp[1][8][4];
        zero_acc<1, 8>(s);
        zero_acc<1, 8>(dp);
        warp_gemm<1, 8, false, true>(s, sK + w * 16 * LD, LD, qs, LD, D, lane);  /* S^T = K Q^T */
        warp_gemm<1, 8, false, true>(dp, sV + w * 16 * LD, LD, os, LD, D, lane); /* dP^T = V dO^T */
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const float2 Lr = *reinterpret_cast<const float2 *>(Lb + j * 8 + 2 * t);
            const float2 Dr = *reinterpret_cast<const float2 *>(Db + j * 8 + 2 * t);
            const float L2[2] = {__fmul_rn(Lr.x, SLA_LOG2E), __fmul_rn(Lr.y, SLA_LOG2E)}, D2[2] = {Dr.x, Dr.y};
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float pr = fast_exp2(s[0][j][e] * sl2 - L2[e & 1]);
                s[0][j][e] = pr;
                dp[0][j][e] = pr * (dp[0][j][e] - D2[e & 1]);
            }
        }
#pragma unroll
        for (int kc = 0; kc < 4; kc++) {
            uint32_t a[4] = {pack_bf16(s[0][2 * kc][0], s[0][2 * kc][1]), pack_bf16(s[0][2 * kc][2], s[0][2 * kc][3]),
                             pack_bf16(s[0][2 * kc + 1][0], s[0][2 * kc + 1][1]),
                             pack_bf16(s[0][2 * kc + 1][2], s[0][2 * kc + 1][3])};
            uint32_t ad[4] = {pack_bf16(dp[0][2 * kc][0], dp[0][2 * kc][1]), pack_bf16(dp[0][2 * kc][2], dp[0][2 * kc][3]),
                              pack_bf16(dp[0][2 * kc + 1][0], dp[0][2 * kc + 1][1]),
                              pack_bf16(dp[0][2 * kc + 1][2], dp[0][2 * kc + 1][3])};
#pragma unroll
            for (int d2 = 0; d2 < D / 16; d2++) {
                uint32_t b[4];
                const int off = (kc * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + d2 * 16 + (lane >> 4) * 8;
                ldsm_x4_t(b, os + off);
                mma16816(dv[0][2 * d2], a, b[0], b[1]);
                mma16816(dv[0][2 * d2 + 1], a, b[2], b[3]);
                ldsm_x4_t(b, qs + off);
                mma16816(dk[0][2 * d2], ad, b[0], b[1]);
                mma16816(dk[0][2 * d2 + 1], ad, b[2], b[3]);
            }
        }
        pipe.end();
    }
    cp_async_wait<0>();

    const float scale = rsqrtf((float)D);
    bf16 *dkg = p.dk + (long)bh * p.Nk * D, *dvg = p.dv + (long)bh * p.Nk * D;
    const int r0 = (int)k0 + w * 16;
    frag_store_global_add<NTD>(dk[0], scale, dkg, D, r0, p.Nk, p.add, lane);
    frag_store_global_add<NTD>(dv[0], 1.f, dvg, D, r0, p.Nk, p.add, lane);
}

/* Ds[r] = sum_d dout[r][d] * o[r][d]; D / 8 threads per row, 16-byte loads. */
template <int D> __global__ void __launch_bounds__(256) flash_prep_kernel(const bf16 *dout, const bf16 *o, float *Ds, long rows) {
    constexpr int TPR = D / 8;
    long r = (long)blockIdx.x * (256 / TPR) + threadIdx.x / TPR;
    int c = (threadIdx.x % TPR) * 8;
    float s = 0.f;
    if (r < rows) {
        uint4 a = *reinterpret_cast<const uint4 *>(dout + r * D + c);
        uint4 b = *reinterpret_cast<const uint4 *>(o + r * D + c);
        const uint32_t *pa = reinterpret_cast<const uint32_t *>(&a), *pb = reinterpret_cast<const uint32_t *>(&b);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            float2 x = unpack_bf16(pa[i]), y = unpack_bf16(pb[i]);
            s += x.x * y.x + x.y * y.y;
        }
    }
#pragma unroll
    for (int m = TPR / 2; m > 0; m >>= 1) s += __shfl_xor_sync(0xffffffffu, s, m);
    if (r < rows && threadIdx.x % TPR == 0) Ds[r] = s;
}

template <int D, int BQ> void launch_fwd(const FlashParams &p, int BH) {
    constexpr int smem = (BQ + 4 * KT) * (D + 8) * 2, WM = BQ == 128 ? 2 : 1;
    static bool init = false;
    if (!init) sla_smem_limit(flash_fwd_kernel<D, BQ, WM>, smem), init = true;
    dim3 grid((p.Nq + BQ - 1) / BQ, BH);
    flash_fwd_kernel<D, BQ, WM><<<grid, BQ * 2 / WM, smem, cuda_stream()>>>(p);
    CUDA_CHECK_LAUNCH();
}

/* qsub CTAs of 64 rows per lut query block (qsub = blk_q / 64): two CTAs of 4 warps per 128-row
 * block (2 per SM, their barriers and softmax phases interleave) measured faster than one of 8. */
template <int D> void launch_dq(const FlashParams &p0, int BH, int qsub) {
    constexpr int BQ = 64, smem = (2 * BQ + 4 * KT) * (D + 8) * 2;
    static bool init = false;
    if (!init) sla_smem_limit(flash_dq_kernel<D, BQ>, smem), init = true;
    FlashParams p = p0;
    p.qsub = qsub;
    dim3 grid((p.Nq + BQ - 1) / BQ, BH);
    flash_dq_kernel<D, BQ><<<grid, BQ * 2, smem, cuda_stream()>>>(p);
    CUDA_CHECK_LAUNCH();
}

template <int D> void launch_dkdv(const FlashParams &p, int BH) {
    constexpr int smem = 6 * KT * (D + 8) * 2 + 4 * KT * 4;
    static bool init = false;
    if (!init) sla_smem_limit(flash_dkdv_kernel<D>, smem), init = true;
    /* ordered: every tile of every key block (an all-padding last tile writes nothing) */
    dim3 grid(p.order ? p.Tk * p.tpb : (p.Nk + KT - 1) / KT, BH);
    flash_dkdv_kernel<D><<<grid, 128, smem, cuda_stream()>>>(p);
    CUDA_CHECK_LAUNCH();
}

} // namespace

bool flash_forward_fuses_linear(int D, int bq) {
    return flash_wg_available() && (D == 64 || D == 128) && (bq == 64 || bq == 128);
}

void flash_forward(const FlashParams &p, int BH, int D, int bq) {
    if (flash_forward_fuses_linear(D, bq)) flash_forward_wg(p, BH, D, bq);
    else if (p.lin) CHECK(0, "flash_forward: the linear epilogue needs the wgmma kernel (head dim %d, query block %d)", D, bq);
    else if (D == 128 && bq == 128) launch_fwd<128, 128>(p, BH);
    else if (D == 128 && bq == 64) launch_fwd<128, 64>(p, BH);
    else if (D == 64 && bq == 128) launch_fwd<64, 128>(p, BH);
    else if (D == 64 && bq == 64) launch_fwd<64, 64>(p, BH);
    else CHECK(0, "flash_forward: unsupported head dim %d / query block %d", D, bq);
}

void flash_backward_dq(const FlashParams &p, int BH, int D, int bq) {
    if (flash_wg_available() && (D == 64 || D == 128) && (bq == 64 || bq == 128)) flash_backward_dq_wg(p, BH, D, bq);
    else if (D == 128 && (bq == 64 || bq == 128)) launch_dq<128>(p, BH, bq / 64);
    else if (D == 64 && (bq == 64 || bq == 128)) launch_dq<64>(p, BH, bq / 64);
    else CHECK(0, "flash_backward_dq: unsupported head dim %d / query block %d", D, bq);
}

void flash_backward_dkdv(const FlashParams &p, int BH, int D) {
    if (flash_wg_available() && (D == 64 || D == 128)) flash_backward_dkdv_wg(p, BH, D);
    else if (D == 128) launch_dkdv<128>(p, BH);
    else if (D == 64) launch_dkdv<64>(p, BH);
    else CHECK(0, "flash_backward_dkdv: unsupported head dim %d", D);
}

void flash_bwd_prep(const bf16 *dout, const bf16 *o, float *Ds, long rows, int D) {
    if (rows == 0) return;
    if (D == 128) {
        flash_prep_kernel<128><<<(unsigned)((rows + 15) / 16), 256, 0, cuda_stream()>>>(dout, o, Ds, rows);
    } else if (D == 64) {
        flash_prep_kernel<64><<<(unsigned)((rows + 31) / 32), 256, 0, cuda_stream()>>>(dout, o, Ds, rows);
    } else {
        CHECK(0, "flash_bwd_prep: unsupported head dim %d", D);
    }
    CUDA_CHECK_LAUNCH();
}
