/* kernels/cuda/sla_flash_wg.cu — the flash-attention forward on Hopper's warpgroup MMA (wgmma,
 * sm_90a), a drop-in for sla_flash.cu's mma.sync forward with the same FlashParams contract: dense
 * attention without a lut, SLA's sparse branch with one (a query block visits its kept key blocks).
 *
 * wg_fwd_kernel  a persistent grid (as many CTAs as fit at once) whose CTAs take query blocks of
 *                64 NWG rows in turn: one consumer warpgroup (128 threads) per 64 rows and a
 *                producer (a warp; with two consumer warpgroups a whole warpgroup, so that
 *                setmaxnreg can hand its registers to the consumers: 40 / 232 per thread). Q (two
 *                buffers: the next block's loads while this one finishes) and WNST stages of
 *                64-row K/V tiles live in shared memory in the sw128 layout
 *                (sla_wgmma.cuh); the producer fills them with bulk tensor copies (TMA, zero-filled
 *                past the ends) that complete on a "full" mbarrier per stage, and refills a stage
 *                once every consumer warp has arrived on its "empty" mbarrier (stages are numbered
 *                across query blocks), so the warpgroups never wait for each other. Per key tile it of a
 *                warpgroup: S_it = Q K_it^T is issued (Q in registers, loaded once per query block:
 *                shared memory then feeds only K and V), then O += P_{it-1} V_{it-1} (P in registers),
 *                and the online softmax of S_it runs on the CUDA cores while the tensor cores do
 *                the P V product; O is rescaled once that product is done, and only when a row's
 *                maximum moved (MAX_SLACK). Writes o (or o += Os when add), os and lse (natural
 *                log) as flash_fwd_kernel does; keys past Nk get -inf (the tiles holding them are
 *                found once per query block: sla_tiles.cuh), query rows past Nq are computed on
 *                zeros and not stored. Deterministic: a fixed order of operations, no atomics.
 *                Q, the state rows and the outputs stream through L2 with an evict-first policy,
 *                so that the K/V tiles every query block of a head re-reads stay there.
 *                With p.lin (SLA's forward) the epilogue also does the linear branch and the proj
 *                (FlashParams): after a query block's K/V tiles the producer loads three more
 *                stages, the block's state H_i with Z_i and the proj's W^T hi and lo, and each
 *                warpgroup computes phi(Q) from its Q fragments, Ol = phi(Q) H_i / den and o = Os
 *                + Ol W^T + b with two more D x D wgmma products accumulating into Os's registers;
 *                this replaces the separate lin_fwd kernel and its o round trip. os, ol and o then
 *                leave through the warpgroup's Q rows as bulk tensor stores (whole lines; fragment
 *                stores cost 12k of a 20k-cycle epilogue, tests/bench/sla_results.md v18).
 * Only the sm_90a build has the instructions; flash_wg_available() says whether this process can
 * use the wgmma kernels (built for sm_90a, running on a 9.0 device, SLA_FLASH_WG not 0). The TMA
 * tensor maps both wgmma files use are in sla_tma.cu. */
#include <cuda.h>
#include <stdio.h>
#include <stdlib.h>

#include "sla_internal.cuh"
#include "sla_tiles.cuh"
#include "sla_wgmma.cuh"

namespace {

constexpr int WKT = FLASH_KT; /* key tile rows */
constexpr int WNST = 4;       /* K/V stages: tile it (S), it - 1 (P V) and two copies in flight */
/* With two consumer warpgroups the producer is a whole warpgroup, so that setmaxnreg can move its
 * registers to the consumers (ptxas gives a 384-thread CTA 168 per thread; the consumers' Q and
 * O fragments need more); with one, a single warp (256 threads already allow 255). */
template <int NWG> constexpr int WG_PRODUCER_THREADS = NWG > 1 ? 128 : 32;
constexpr int PRODUCER_REGS = 40, CONSUMER_REGS = 232; /* 128 * 40 + 256 * 232 <= 65536 */
constexpr int LIN_STAGES = 3; /* stages of the linear epilogue per query block: H_i (+ Z_i), W^T hi, W^T lo */

template <int D, int NWG> struct WgFwdSmem {
    static constexpr int BQ = 64 * NWG;
    static constexpr int q = BQ * D * 2;    /* bytes of one Q tile (two buffers) */
    static constexpr int tile = WKT * D * 2; /* bytes of one K or V tile */
    /* A stage: the K and V tiles, or one D x D matrix of the linear epilogue (64-row halves `tile`
     * bytes apart) and, after the two tiles, the Z_i row (at most D fp32). */
    static constexpr int stage = 2 * tile + 1024;
    static constexpr int bars = 2 * q + WNST * stage; /* full[WNST], empty[WNST], qfull[2], qempty[2] */
    static constexpr int total = bars + 8 * (2 * WNST + 4) + 1024; /* + slack for 1024-byte alignment */
};

/* Shared address of (row r0 + lane / 4, columns 8 j + 2 (lane % 4), + 1) of a [ROWS, D] bf16 tile in
 * the sw128 layout at tile: one warp's fragment element of column block j (add 8 * 128 for row + 8). */
template <int ROWS> __device__ __forceinline__ uint32_t sw128_frag_addr(uint32_t tile, int j, int r0, int lane) {
    const int g = lane >> 2;
    return tile + (j >> 3) * ROWS * 128 + (r0 + g) * 128 + (((j & 7) ^ g) << 4) + 4 * (lane & 3);
}

/* One warp's fp32 fragments x (the accumulator layout) of rows r0 .. r0 + 15 (r0 % 8 == 0), as
 * bf16, into the same positions of a [ROWS, D] bf16 sw128 tile at tile. */
template <int D, int ROWS>
__device__ __forceinline__ void frag_store_sw128(const float (&x)[D / 8][4], uint32_t tile, int r0, int lane) {
#pragma unroll
    for (int j = 0; j < D / 8; j++) {
        const uint32_t a = sw128_frag_addr<ROWS>(tile, j, r0, lane);
        asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(a), "r"(pack_bf16(x[j][0], x[j][1])));
        asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(a + 8 * 128), "r"(pack_bf16(x[j][2], x[j][3])));
    }
}

/* Between bf16 A fragments a (D / 16 k-steps, the layout wg_pack_a makes) and the same positions of
 * a sw128 tile as frag_store_sw128's: store = true writes a there, false loads a from there. */
template <int D, int ROWS>
__device__ __forceinline__ void afrag_swap_sw128(uint32_t (&a)[D / 16][4], uint32_t tile, int r0, int lane, bool store) {
#pragma unroll
    for (int j = 0; j < D / 8; j++) {
        const uint32_t ad = sw128_frag_addr<ROWS>(tile, j, r0, lane);
        uint32_t &lo = a[j >> 1][(j & 1) * 2], &hi = a[j >> 1][(j & 1) * 2 + 1];
        if (store) {
            asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(ad), "r"(lo));
            asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(ad + 8 * 128), "r"(hi));
        } else {
            asm volatile("ld.shared.b32 %0, [%1];\n" : "=r"(lo) : "r"(ad));
            asm volatile("ld.shared.b32 %0, [%1];\n" : "=r"(hi) : "r"(ad + 8 * 128));
        }
    }
}

/* The fp32 values of bf16 A fragments a (what wg_pack_a packed from x). */
template <int D> __device__ __forceinline__ void afrag_unpack(float (&x)[D / 8][4], const uint32_t (&a)[D / 16][4]) {
#pragma unroll
    for (int j = 0; j < D / 8; j++) {
        const float2 f0 = unpack_bf16(a[j >> 1][(j & 1) * 2]), f1 = unpack_bf16(a[j >> 1][(j & 1) * 2 + 1]);
        x[j][0] = f0.x, x[j][1] = f0.y, x[j][2] = f1.x, x[j][3] = f1.y;
    }
}

/* phi(Q) H_i / den_i with the per-row factor that cancels left out: x <- phi(x) up to a positive
 * factor per row (the softmax feature map: its exponentials exp(x - max) without the division by
 * their sum; elu+1 and relu: phi itself), then x <- x / den with den = x . Z (+ 1e-5 times the
 * factor when all: the "all" variant's 1e-5 does not scale), and 0 for rows whose den <= 0 (they
 * send nothing). z(c) gives Z's column c. The same Ol as phi(x) H_i / (phi(x) . Z) up to rounding,
 * without the softmax's row sum, its 64 divisions per thread and the 64 scalings of the product. */
template <int NT, typename ZF>
__device__ __forceinline__ void frag_phi_over_den(float (&x)[NT][4], int feature, ZF z, int all, int t) {
    float s0 = 1.f, s1 = 1.f; /* phi = x / s */
    if (feature == 0) {
        frag_softmax_exp<NT>(x);
        if (all) frag_row_sum<NT>(x, s0, s1);
    } else {
        frag_phi<NT>(x, feature);
    }
    float d0 = 0.f, d1 = 0.f;
#pragma unroll
    for (int n = 0; n < NT; n++) {
        const float z0 = z(n * 8 + 2 * t), z1 = z(n * 8 + 2 * t + 1);
        d0 = fmaf(x[n][0], z0, fmaf(x[n][1], z1, d0)), d1 = fmaf(x[n][2], z0, fmaf(x[n][3], z1, d1));
    }
    d0 = quad_sum(d0), d1 = quad_sum(d1);
    if (all) d0 = fmaf(1e-5f, s0, d0), d1 = fmaf(1e-5f, s1, d1);
    const float i0 = d0 > 0.f ? 1.f / d0 : 0.f, i1 = d1 > 0.f ? 1.f / d1 : 0.f;
#pragma unroll
    for (int n = 0; n < NT; n++) x[n][0] *= i0, x[n][1] *= i0, x[n][2] *= i1, x[n][3] *= i1;
}

/* x[., c] += bias[c] over the fragment's columns (t = lane % 4). */
template <int NT> __device__ __forceinline__ void add_bias(float (&x)[NT][4], const float *bias, int t) {
#pragma unroll
    for (int j = 0; j < NT; j++) {
        const float b0 = bias[j * 8 + 2 * t], b1 = bias[j * 8 + 2 * t + 1];
        x[j][0] += b0, x[j][1] += b1, x[j][2] += b0, x[j][3] += b1;
    }
}

/* acc (+)= A M over the D-long k dimension: A in registers (D / 16 k-steps), M a D x D matrix stored
 * N-major at shared address m as 64-row halves of [64, D] sw128 tiles (WKT * D * 2 bytes apart).
 * Issues only: the caller fences, commits and waits. */
template <int D>
__device__ __forceinline__ void wg_mul_dd(float (&acc)[D / 8][4], const uint32_t (&a)[D / 16][4], uint32_t m, int accumulate) {
    const uint64_t dm = wg_desc(m, WKT * 128, 1024);
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++)
        wgmma_rs_t<D / 8>(acc, a[kk], wg_desc_add(dm, (kk >> 2) * (WKT * D * 2) + (kk & 3) * 2048), accumulate || kk > 0);
}

/* tiles_past_nk (sla_tiles.cuh) of a query block's tile sequence, the lut row scanned by the warp
 * (a ballot per 32 entries) once per query block, so that the softmax compares integers per tile
 * instead of loading the tile's lut entry (a lut load and an integer division on the critical path
 * cost ~45 instructions and a stall per tile). */
__device__ __forceinline__ int seq_tiles_past_nk(const TileSeq &seq, int Nk, int lane, int &span) {
    auto find = [&](int blk) {
        for (int e0 = 0; e0 < seq.len; e0 += 32) {
            const int e = e0 + lane;
            const unsigned hit = __ballot_sync(0xffffffffu, e < seq.len && seq.list[e] == blk);
            if (hit) return e0 + __ffs(hit) - 1;
        }
        return -1;
    };
    return tiles_past_nk(seq.list, seq.per, seq.base, seq.count, Nk, find, span);
}

/* The running maximum of a softmax row moves only when a tile's maximum exceeds it by more than
 * this (log2 units): P = exp2(s - m) then stays below 2^8 (exact in bf16's exponent range, l and O
 * in fp32), and the O rescale, 64 multiplications per thread, drops from most tiles (73% of the
 * 480p rho 0.05 tiles with the exact maximum) to the few where the maximum jumps. lse = m + log2 l
 * is the same value either way. */
constexpr float MAX_SLACK = 8.f;

/* A per-phase cycle profile of the consumer warpgroups (build with -DSLA_FWD_PROFILE; timing only):
 * each warpgroup's first thread adds clock() deltas per phase of every query block to
 * g_fwd_prof, and the launcher prints the means per query block and warpgroup after each launch
 * of the linear-epilogue forward. Phases: FP_Q (wait for Q, load it), FP_FIRST (the first tile's
 * S), FP_LOOP (the rest of the main loop), FP_OS (normalise, lse, os out), FP_PHI (phi(Q), den,
 * the wait for H_i), FP_H (phi(Q) H_i), FP_WWAIT (wait for W^T), FP_W (the W products with ol
 * out), FP_O (o out). */
enum { FP_Q, FP_FIRST, FP_LOOP, FP_OS, FP_PHI, FP_H, FP_WWAIT, FP_W, FP_O, FP_N };
#ifdef SLA_FWD_PROFILE
__device__ unsigned long long g_fwd_prof[FP_N];
#define FWD_PROF_DECL unsigned prof_t = (unsigned)clock(), prof[FP_N] = {}; /* per CTA: fits 32 bits */
#define FWD_PROF(ph) (prof[ph] += (unsigned)clock() - prof_t, prof_t = (unsigned)clock())
#define FWD_PROF_FLUSH                                                                                                 \
    if ((tid & 127) == 0)                                                                                              \
        for (int i = 0; i < FP_N; i++) atomicAdd(&g_fwd_prof[i], (unsigned long long)prof[i]);
#else
#define FWD_PROF_DECL
#define FWD_PROF(ph) ((void)0)
#define FWD_PROF_FLUSH
#endif

/* Persistent: CTA c does the query blocks (items) c, c + gridDim.x, ... (item = bh * nqb + qb).
 * The K/V stages are numbered across items (g), so the producer runs ahead into the next item's
 * Q (two buffers) and tiles while the consumers finish this one's P V and write it out. */
template <int D, int NWG>
__global__ void __launch_bounds__(NWG * 128 + WG_PRODUCER_THREADS<NWG>, 1)
    wg_fwd_kernel(const __grid_constant__ CUtensorMap tq, const __grid_constant__ CUtensorMap tk,
                  const __grid_constant__ CUtensorMap tv, const __grid_constant__ CUtensorMap th,
                  const __grid_constant__ CUtensorMap tw, const __grid_constant__ CUtensorMap tos,
                  const __grid_constant__ CUtensorMap tol, const __grid_constant__ CUtensorMap to, FlashParams p,
                  int nqb, int items) {
#ifdef SLA_WGMMA_DEVICE
    using S = WgFwdSmem<D, NWG>;
    constexpr int BQ = S::BQ, ND = D / 8, T = S::tile, W = D * D + D;
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    const uint32_t sQ = (smem_u32(smem_raw) + 1023u) & ~1023u, sKV = sQ + 2 * S::q, sBar = sQ + S::bars;
    auto full = [&](int st) { return sBar + 8 * st; };
    auto empty = [&](int st) { return sBar + 8 * (WNST + st); };
    auto qfull = [&](int b) { return sBar + 8 * (2 * WNST + b); };
    auto qempty = [&](int b) { return sBar + 8 * (2 * WNST + 2 + b); };
    const int tid = threadIdx.x, wg = tid >> 7, w = (tid >> 5) & 3, lane = tid & 31, t = lane & 3;

    if (tid == 0) {
        for (int st = 0; st < WNST; st++) mbar_init(full(st), 1), mbar_init(empty(st), NWG * 4);
        for (int b = 0; b < 2; b++) mbar_init(qfull(b), 1), mbar_init(qempty(b), NWG * 4);
        wg_proxy_fence();
    }
    __syncthreads();
    if (tid >= NWG * 128) { /* the producer: one thread issues every copy */
        if constexpr (NWG > 1) wg_regs_dec<PRODUCER_REGS>();
        if (tid == NWG * 128) {
            /* Q and the state rows are read once: evict first, so that the K/V tiles (every query
             * block of a head re-reads them) stay in L2; W^T is read by every item: evict last. */
            const uint64_t once = l2_evict_first(), often = l2_evict_last();
            uint32_t g = 0; /* stages filled so far, over all items */
            for (int item = blockIdx.x, k = 0; item < items; item += gridDim.x, k++) {
                const int bh = item / nqb, qb = item % nqb, b = k & 1;
                const TileSeq seq = key_seq(p, bh, qb);
                const int n = seq.size();
                if (k >= 2) mbar_wait(qempty(b), ((k >> 1) - 1) & 1); /* item k - 2 is done with buffer b */
                mbar_expect_tx(qfull(b), S::q);
                for (int gq = 0; gq < NWG; gq++)
                    for (int sl = 0; sl < D / 64; sl++)
                        tma_load_3d_hint(sQ + b * S::q + sl * BQ * 128 + gq * 64 * 128, &tq, sl * 64, qb * BQ + gq * 64,
                                         bh, qfull(b), once);
                for (int i = 0; i < n; i++, g++) {
                    const int st = (int)(g % WNST), row = seq.tile(i) * WKT;
                    if (g >= WNST) mbar_wait(empty(st), (int)((g / WNST - 1) & 1));
                    mbar_expect_tx(full(st), 2 * T);
                    for (int sl = 0; sl < D / 64; sl++) {
                        tma_load_3d(sKV + st * S::stage + sl * WKT * 128, &tk, sl * 64, row, bh, full(st));
                        tma_load_3d(sKV + st * S::stage + T + sl * WKT * 128, &tv, sl * 64, row, bh, full(st));
                    }
                }
                if (p.lin == 1) { /* then H_i with Z_i, W^T hi and W^T lo, one stage each */
                    const int srow = bh * p.lin_R + (p.lin_R > 1 ? qb : 0);
                    for (int e = 0; e < LIN_STAGES; e++, g++) {
                        const int st = (int)(g % WNST);
                        const uint32_t dst = sKV + st * S::stage;
                        const int zbytes = e ? 0 : (p.lin_ztot ? D * 4 : D * 2);
                        if (g >= WNST) mbar_wait(empty(st), (int)((g / WNST - 1) & 1));
                        mbar_expect_tx(full(st), D * D * 2 + zbytes);
                        for (int h = 0; h < D / 64; h++)
                            for (int sl = 0; sl < D / 64; sl++)
                                tma_load_3d_hint(dst + h * T + sl * WKT * 128, e ? &tw : &th, sl * 64, h * 64,
                                                 e ? e - 1 : srow, full(st), e ? often : once);
                        if (zbytes) {
                            const void *z = p.lin_ztot ? (const void *)(p.lin_ztot + (long)bh * W + D * D)
                                                       : (const void *)(p.lin_rows + (long)srow * W + D * D);
                            bulk_load(dst + 2 * T, z, zbytes, full(st));
                        }
                    }
                }
            }
        }
        return;
    }

    if constexpr (NWG > 1) wg_regs_inc<CONSUMER_REGS>();
    const float sl2 = SLA_LOG2E * rsqrtf((float)D);
    FWD_PROF_DECL
    uint32_t g0 = 0;    /* this item's first tile in the stage numbering */
    /* Stage 0's K (K-major) and V (N-major) operand descriptors; stage st is st * S::stage further. */
    const uint64_t dK0 = wg_desc(sKV, 16, 1024), dV0 = wg_desc(sKV + T, WKT * 128, 1024);
    int q_pending = -1; /* a Q buffer whose release waits for bulk stores (see the epilogue) */
    for (int item = blockIdx.x, k = 0; item < items; item += gridDim.x, k++) {
        const int bh = item / nqb, qb = item % nqb, q0 = qb * BQ, b = k & 1;
        const TileSeq seq = key_seq(p, bh, qb);
        const int n = seq.size();
        float o[ND][4], s[8][4];
        uint32_t pa[4][4];
        float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
#pragma unroll
        for (int j = 0; j < ND; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
        const int wrow = wg * 64 + w * 16; /* this warp's first row in the query block */
        uint32_t qa[D / 16][4];          /* its Q rows as the A operand of S = Q K^T */
        int pspan;
        const int pit = seq_tiles_past_nk(seq, p.Nk, lane, pspan); /* its lut loads overlap the wait for Q */
        mbar_wait(qfull(b), (k >> 1) & 1);
        afrag_swap_sw128<D, BQ>(qa, sQ + b * S::q, wrow, lane, false);
        __syncwarp();
        /* Q buffer b is free once read, unless the linear epilogue writes its outputs through it */
        if (p.lin != 1 && lane == 0) mbar_arrive(qempty(b));
        FWD_PROF(FP_Q);

        /* Iteration it: wait for tile it, issue S = Q K_it^T. */
        auto stage_of = [&](int it) { return (g0 + (uint32_t)it) % WNST; };
        auto stage_and_issue_s = [&](int it) {
            const uint32_t gi = g0 + (uint32_t)it, st = gi % WNST;
            mbar_wait(full(st), (int)((gi / WNST) & 1));
            const uint64_t dk = wg_desc_add(dK0, st * S::stage);
            wg_fence();
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++)
                wgmma_rs_n64<0>(s, qa[kk], wg_desc_add(dk, (kk >> 2) * WKT * 128 + (kk & 3) * 32), kk > 0);
            wg_commit();
        };
        /* Tile it is no longer read by this warp. */
        auto release = [&](int it) {
            if (lane == 0) mbar_arrive(empty(stage_of(it)));
        };
        /* o += P V_it (P in pa). */
        auto issue_pv = [&](int it) {
            const uint64_t dv = wg_desc_add(dV0, stage_of(it) * S::stage);
#pragma unroll
            for (int kk = 0; kk < 4; kk++) wgmma_rs_t<ND>(o, pa[kk], wg_desc_add(dv, kk * 2048), 1);
            wg_commit();
        };
        /* s <- exp2(scale s - m) with the running max m (moved lazily, MAX_SLACK) and sum updated;
         * c: the old terms' factor. Keys past Nk are masked only in the tiles that hold some
         * (tiles_past_nk); the scale is folded into the exponent. */
        auto softmax = [&](int it, float &c0, float &c1) {
            if ((unsigned)(it - pit) < (unsigned)pspan) {
                const int k0 = seq.tile(it) * WKT;
#pragma unroll
                for (int j = 0; j < 8; j++)
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        if (k0 + j * 8 + 2 * t + (e & 1) >= p.Nk) s[j][e] = -INFINITY;
            }
            float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
            for (int j = 0; j < 8; j++)
                mx0 = fmaxf(mx0, fmaxf(s[j][0], s[j][1])), mx1 = fmaxf(mx1, fmaxf(s[j][2], s[j][3]));
            mx0 = quad_max(mx0) * sl2, mx1 = quad_max(mx1) * sl2;
            const bool mv0 = mx0 > m0 + MAX_SLACK, mv1 = mx1 > m1 + MAX_SLACK; /* -inf: never moves */
            const float r0 = mv0 ? mx0 : m0 == -INFINITY ? 0.f : m0, r1 = mv1 ? mx1 : m1 == -INFINITY ? 0.f : m1;
            c0 = mv0 ? fast_exp2(m0 - r0) : 1.f, c1 = mv1 ? fast_exp2(m1 - r1) : 1.f;
            if (mv0) m0 = mx0;
            if (mv1) m1 = mx1;
            float ps0 = 0.f, ps1 = 0.f;
#pragma unroll
            for (int j = 0; j < 8; j++) {
                s[j][0] = fast_exp2(fmaf(s[j][0], sl2, -r0)), s[j][1] = fast_exp2(fmaf(s[j][1], sl2, -r0));
                s[j][2] = fast_exp2(fmaf(s[j][2], sl2, -r1)), s[j][3] = fast_exp2(fmaf(s[j][3], sl2, -r1));
                ps0 += s[j][0] + s[j][1], ps1 += s[j][2] + s[j][3];
            }
            l0 = l0 * c0 + ps0, l1 = l1 * c1 + ps1;
        };

        if (n > 0) {
            float c0, c1;
            stage_and_issue_s(0);
            wg_wait<0>();
            wg_pin(s);
            softmax(0, c0, c1);
#pragma unroll
            for (int kk = 0; kk < 4; kk++) wg_pack_a<8>(pa[kk], s, kk);
        }
        if (q_pending >= 0) { /* only in the leader: the previous item's o stores */
            bulk_wait_read();
            mbar_arrive(qempty(q_pending));
            q_pending = -1;
        }
        FWD_PROF(FP_FIRST);
        for (int it = 1; it < n; it++) {
            float c0, c1;
            stage_and_issue_s(it);
            issue_pv(it - 1);
            wg_wait<1>(); /* S_it is in s; P_{it-1} V_{it-1} may still run */
            wg_pin(s);
            softmax(it, c0, c1);
            wg_wait<0>();
            wg_pin(o);
            wg_pin(pa);
            release(it - 1);
            if (__any_sync(0xffffffffu, c0 != 1.f || c1 != 1.f)) { /* only where a maximum moved (MAX_SLACK) */
#pragma unroll
                for (int j = 0; j < ND; j++) o[j][0] *= c0, o[j][1] *= c0, o[j][2] *= c1, o[j][3] *= c1;
            }
#pragma unroll
            for (int kk = 0; kk < 4; kk++) wg_pack_a<8>(pa[kk], s, kk);
        }
        if (n > 0) {
            wg_fence();
            issue_pv(n - 1);
            wg_wait<0>();
            wg_pin(o);
            release(n - 1);
        }
        g0 += n;
        FWD_PROF(FP_LOOP);

        const float L0 = quad_sum(l0), L1 = quad_sum(l1);
        const float i0 = L0 > 0.f ? 1.f / L0 : 0.f, i1 = L1 > 0.f ? 1.f / L1 : 0.f;
        const int rbase = q0 + wg * 64 + w * 16, row0 = rbase + (lane >> 2), row1 = row0 + 8;
        if (t == 0) {
            if (row0 < p.Nq) p.lse_out[(long)bh * p.Nq + row0] = (m0 + log2f(L0)) * SLA_LN2;
            if (row1 < p.Nq) p.lse_out[(long)bh * p.Nq + row1] = (m1 + log2f(L1)) * SLA_LN2;
        }
#pragma unroll
        for (int j = 0; j < ND; j++) o[j][0] *= i0, o[j][1] *= i0, o[j][2] *= i1, o[j][3] *= i1;
        if (p.os && p.lin != 1) frag_store_global<ND>(o, p.os + (long)bh * p.Nq * D, D, rbase, p.Nq, lane);
        if (!p.lin) {
            frag_store_global_add<ND>(o, 1.f, p.o + (long)bh * p.Nq * D, D, rbase, p.Nq, p.add, lane);
            continue;
        }

        /* The linear branch and the proj: o = Os + Ol W^T + b (SLA.md sections 3 and 4), with Os in
         * o's registers (fp32) as the accumulator of the W products. This warpgroup's rows of Q
         * buffer b (sOut; Q itself is in qa) carry os, ol and o out in turn, each as bulk tensor
         * stores issued by one thread (whole lines, rows past Nq clipped): os's before the linear
         * branch, ol's while the W products run. Q buffer b is released once the last has read them. */
        if (p.lin == 2) { /* empty branch: Ol = 0 */
            const float zero[8][4] = {};
#pragma unroll
            for (int j = 0; j < ND; j += 8) /* 64 columns at a time */
                frag_store_global<8>(zero, p.ol + (long)bh * p.Nq * D + j * 8, D, rbase, p.Nq, lane);
            add_bias<ND>(o, p.lin_b, t);
            frag_store_global<ND>(o, p.o + (long)bh * p.Nq * D, D, rbase, p.Nq, lane);
            continue;
        }
        const uint32_t sQw = sQ + b * S::q;
        const uint32_t sOut = sQw + wg * 64 * 128; /* D / 64 boxes of [64, 64], BQ * 128 bytes apart */
        const bool leader = (tid & 127) == 0;
        auto wg_sync = [&]() { asm volatile("bar.sync %0, 128;\n" ::"r"(1 + wg) : "memory"); };
        auto store_rows = [&](const CUtensorMap *m) { /* sOut's rows to the tensor of map m (written once) */
            wg_proxy_fence();
            wg_sync();
            if (leader) {
                const uint64_t once = l2_evict_first();
                for (int sl = 0; sl < D / 64; sl++)
                    tma_store_3d_hint(m, sOut + sl * BQ * 128, sl * 64, q0 + wg * 64, bh, once);
                bulk_commit();
            }
        };
        auto rows_read = [&]() { /* the stores have read sOut: it may be written again */
            if (leader) bulk_wait_read();
            wg_sync();
        };
        if (p.os) {
            frag_store_sw128<D, BQ>(o, sQw, wrow, lane);
            store_rows(&tos);
        }
        FWD_PROF(FP_OS);
        /* phi(Q) / den from qa and Z_i (in the stage after the item's tiles, with H_i) as the A
         * operand of Ol = phi(Q) H_i / den (SLA.md section 3). Computing phi while the last P V runs
         * made ptxas serialise every wgmma of the kernel (C7518/C7517): keep it here. */
        const uint32_t sH = sKV + (int)(g0 % WNST) * S::stage;
        uint32_t pq[D / 16][4]; /* phi(Q) / den, then Ol, as A operands */
        {
            float x[ND][4];
            afrag_unpack<D>(x, qa);
            mbar_wait(full((int)(g0 % WNST)), (int)((g0 / WNST) & 1));
            const unsigned char *zrow = smem_raw + (sH + 2 * T - smem_u32(smem_raw));
            if (p.lin_ztot)
                frag_phi_over_den<ND>(x, p.lin_feature, [&](int c) { return reinterpret_cast<const float *>(zrow)[c]; },
                                      p.lin_all, t);
            else
                frag_phi_over_den<ND>(x, p.lin_feature,
                                      [&](int c) { return __bfloat162float(reinterpret_cast<const bf16 *>(zrow)[c]); },
                                      p.lin_all, t);
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++) wg_pack_a<ND>(pq[kk], x, kk);
        }
        FWD_PROF(FP_PHI);
        {
            float acc[ND][4];
            wg_fence();
            wg_mul_dd<D>(acc, pq, sH, 0); /* phi(Q) H_i */
            wg_commit();
            wg_wait<0>();
            wg_pin(acc);
            wg_pin(pq);
            release(0);
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++) wg_pack_a<ND>(pq[kk], acc, kk); /* Ol as saved (bf16) */
        }
        add_bias<ND>(o, p.lin_b, t);
        FWD_PROF(FP_H);
        mbar_wait(full((int)((g0 + 1) % WNST)), (int)(((g0 + 1) / WNST) & 1));
        mbar_wait(full((int)((g0 + 2) % WNST)), (int)(((g0 + 2) / WNST) & 1));
        FWD_PROF(FP_WWAIT);
        wg_fence();
        wg_mul_dd<D>(o, pq, sKV + (int)((g0 + 1) % WNST) * S::stage, 1); /* o += Ol W^T: hi, then lo */
        wg_mul_dd<D>(o, pq, sKV + (int)((g0 + 2) % WNST) * S::stage, 1);
        wg_commit();
        if (p.os) rows_read(); /* os is out */
        afrag_swap_sw128<D, BQ>(pq, sQw, wrow, lane, true); /* Ol (bf16) */
        store_rows(&tol);
        wg_wait<0>();
        wg_pin(o);
        wg_pin(pq);
        release(1);
        release(2);
        g0 += LIN_STAGES;
        FWD_PROF(FP_W);
        rows_read(); /* ol is out */
        frag_store_sw128<D, BQ>(o, sQw, wrow, lane); /* o */
        store_rows(&to);
        /* Q buffer b is free once o's stores have read it; the leader (lane 0 of warp 0) waits for
         * that only after the next item's first tile, the other warps arrive now. */
        if (leader) q_pending = b;
        else if (lane == 0) mbar_arrive(qempty(b));
        FWD_PROF(FP_O);
    }
    FWD_PROF_FLUSH
    if ((tid & 127) == 0) bulk_wait(); /* every bulk store of this warpgroup is complete */
#endif
}

template <int D, int NWG> void launch_wg_fwd(const FlashParams &p, int BH) {
    constexpr int smem = WgFwdSmem<D, NWG>::total, threads = NWG * 128 + WG_PRODUCER_THREADS<NWG>;
    static int ctas = 0; /* resident CTAs on the whole GPU */
    if (!ctas) {
        sla_smem_limit(wg_fwd_kernel<D, NWG>, smem);
        int dev = 0, sms = 0, per_sm = 0;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
        CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, wg_fwd_kernel<D, NWG>, threads, smem));
        ctas = sms * (per_sm > 0 ? per_sm : 1);
    }
    if (p.Nq == 0) return;
    const CUtensorMap tq = wg_tile_map(p.q, BH, p.Nq, D), tk = wg_tile_map(p.k, BH, p.Nk, D), tv = wg_tile_map(p.v, BH, p.Nk, D);
    const int nqb = (p.Nq + 64 * NWG - 1) / (64 * NWG), items = nqb * BH;
    CHECK(p.lin != 1 || p.lin_R == 1 || p.lin_R == nqb, "flash_forward_wg: %d state rows per head for %d query blocks",
          p.lin_R, nqb);
    /* The linear epilogue's state rows and W^T (unused maps repeat tq when it is off). */
    const CUtensorMap th = p.lin == 1 ? wg_plane_map(p.lin_rows, BH * p.lin_R, D, D, (long)D * D + D) : tq;
    const CUtensorMap tw = p.lin == 1 ? wg_plane_map(p.lin_wt, 2, D, D, (long)D * D) : tq;
    /* ... and the maps its bulk stores write os, ol and o through */
    const CUtensorMap tos = p.lin == 1 && p.os ? wg_tile_map(p.os, BH, p.Nq, D) : tq;
    const CUtensorMap tol = p.lin == 1 ? wg_tile_map(p.ol, BH, p.Nq, D) : tq;
    const CUtensorMap to = p.lin == 1 ? wg_tile_map(p.o, BH, p.Nq, D) : tq;
    wg_fwd_kernel<D, NWG><<<items < ctas ? items : ctas, threads, smem, cuda_stream()>>>(tq, tk, tv, th, tw, tos, tol, to,
                                                                                         p, nqb, items);
    CUDA_CHECK_LAUNCH();
#ifdef SLA_FWD_PROFILE
    if (p.lin == 1) {
        unsigned long long h[FP_N], zero[FP_N] = {};
        CUDA_CHECK(cudaMemcpyFromSymbol(h, g_fwd_prof, sizeof h));
        CUDA_CHECK(cudaMemcpyToSymbol(g_fwd_prof, zero, sizeof zero));
        const double per = 1.0 / ((double)items * NWG);
        fprintf(stderr, "[wg_fwd profile] D %d NWG %d items %d kappa %d, cycles per query block and warpgroup: q %.0f "
                "first %.0f loop %.0f os %.0f phi %.0f H %.0f wwait %.0f W %.0f o %.0f\n", D, NWG, items, p.kappa, h[FP_Q] * per,
                h[FP_FIRST] * per, h[FP_LOOP] * per, h[FP_OS] * per, h[FP_PHI] * per, h[FP_H] * per,
                h[FP_WWAIT] * per, h[FP_W] * per, h[FP_O] * per);
    }
#endif
}

} // namespace

bool flash_wg_available() {
#ifdef SLA_WGMMA
    static int avail = -1;
    if (avail < 0) {
        const char *e = getenv("SLA_FLASH_WG");
        int dev = 0, major = 0, minor = 0;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
        avail = major == 9 && minor == 0 && !(e && *e && atoi(e) == 0);
    }
    return avail != 0;
#else
    return false;
#endif
}

void flash_forward_wg(const FlashParams &p, int BH, int D, int bq) {
    if (D == 128 && bq == 128) launch_wg_fwd<128, 2>(p, BH);
    else if (D == 128 && bq == 64) launch_wg_fwd<128, 1>(p, BH);
    else if (D == 64 && bq == 128) launch_wg_fwd<64, 2>(p, BH);
    else if (D == 64 && bq == 64) launch_wg_fwd<64, 1>(p, BH);
    else CHECK(0, "flash_forward_wg: unsupported head dim %d / query block %d", D, bq);
}
