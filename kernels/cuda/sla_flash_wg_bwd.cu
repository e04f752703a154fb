/* kernels/cuda/sla_flash_wg_bwd.cu — the flash-attention backward on Hopper's warpgroup MMA (wgmma,
 * sm_90a), with the contracts of sla_flash.cu's flash_dq_kernel (wg_dq_kernel, described at it) and
 * flash_dkdv_kernel (wg_dkdv_kernel): per 64-key tile, over the list
 * of 64-row query tiles that kept its key block (or every query tile in dense mode),
 *   S^T = K Q^T, dP^T = V dO^T, P^T = exp(scale S^T - lse), dS^T = P^T (dP^T - Ds),
 *   dV += P^T dO, dK += scale dS^T Q,
 * with Ds the dq kernel's exact sum_c P dP (Ds_exact) when given. dk and dv are written (or added
 * to, with add) once, by one thread per element, in a fixed order: reruns are bit-identical.
 *
 * wg_dkdv_kernel  one CTA per key tile: one warpgroup (16 keys per warp), two CTAs per SM; thread 0
 *                 issues the bulk copies. K and V are copied once; the query tiles' Q and dO (sw128 layout) stream
 *                 through WBST stages by bulk tensor copies (zeros past the ends) on full/empty
 *                 mbarriers; lse and Ds are staged in shared memory one tile ahead (cp.async). Per
 *                 query tile the warpgroup issues S^T and dP^T as two groups; once S^T is done
 *                 (which also retires the previous tile's dV and dK and frees its stage) it forms
 *                 P^T and issues dV += P^T dO, then, once dP^T is done, dS^T and dK += dS^T Q, so
 *                 the tensor cores always have queued work. Query rows past Nq get P = 0 and dS = 0; keys past Nk are computed on zeros and not stored.
 * Both kernels run the same copy pipeline (BwdPipe: two resident tiles, WBST stages of two streamed
 * ones), and wg_dq_kernel ends with sla_internal.cuh's dq_epilogue, as flash_dq_kernel does. */
#include <cuda.h>
#include <stdlib.h>

#include "sla_internal.cuh"
#include "sla_wgmma.cuh"

namespace {

constexpr int WBST = 2; /* stages of the streamed tiles: two CTAs of ~97 KB share an SM */

/* The bulk-copy pipeline of both kernels. Dynamic shared memory, from a 1024-byte aligned base: two
 * resident 64-row sw128 tiles copied once (dQ: Q, dO; dK/dV: K, V), WBST stages of two streamed
 * 64-row tiles (dQ: K, V of its key tiles; dK/dV: Q, dO of its query tiles), then the mbarriers
 * once, full[WBST], empty[WBST]. Tile i of the sequence goes to stage i % WBST, whose barriers are
 * then in phase i / WBST. Thread 0 issues every copy (zeros past the ends); the four warps release
 * a stage (lane 0 arrives on its empty barrier) once past the products that read it. */
template <int D> struct BwdPipe {
    static constexpr int tile = 64 * D * 2; /* bytes of one 64-row bf16 tile */
    static constexpr int stage_bytes = 2 * tile;
    static constexpr int bars = 2 * tile + WBST * stage_bytes;
    static constexpr int smem = bars + 8 * (2 * WBST + 1) + 1024; /* dynamic bytes, with the alignment slack */

    uint32_t base;              /* shared address of the first resident tile */
    const CUtensorMap *ma, *mb; /* the streamed tiles' maps */
    int bh;

    __device__ __forceinline__ BwdPipe(unsigned char *smem_raw, const CUtensorMap &a, const CUtensorMap &b, int bh_)
        : base((smem_u32(smem_raw) + 1023u) & ~1023u), ma(&a), mb(&b), bh(bh_) {}
    __device__ __forceinline__ uint32_t resident(int k) const { return base + k * tile; }
    __device__ __forceinline__ uint32_t stage(int st) const { return base + 2 * tile + st * stage_bytes; }
    __device__ __forceinline__ uint32_t once() const { return base + bars; }
    __device__ __forceinline__ uint32_t full(int st) const { return base + bars + 8 * (1 + st); }
    __device__ __forceinline__ uint32_t empty(int st) const { return base + bars + 8 * (1 + WBST + st); }

    /* The barriers, seen by every thread on return. */
    __device__ __forceinline__ void init(int tid) const {
        if (tid == 0) {
            mbar_init(once(), 1);
            for (int st = 0; st < WBST; st++) mbar_init(full(st), 1), mbar_init(empty(st), 4);
            wg_proxy_fence();
        }
        __syncthreads();
    }
    /* Thread 0 only: the streamed tile i into stage i % WBST (rows seq.tile(i) * 64 of ma and mb). */
    __device__ __forceinline__ void issue(int i, const TileSeq &seq) const {
        const int st = i % WBST, row = seq.tile(i) * 64;
        const uint32_t dst = stage(st);
        mbar_expect_tx(full(st), 2 * tile);
        for (int sl = 0; sl < D / 64; sl++) {
            tma_load_3d(dst + sl * 64 * 128, ma, sl * 64, row, bh, full(st));
            tma_load_3d(dst + tile + sl * 64 * 128, mb, sl * 64, row, bh, full(st));
        }
    }
    /* Thread 0: the resident tiles (rows row .. row + 63 of r0 and r1), then the first WBST of the n
     * streamed tiles. */
    __device__ __forceinline__ void start(int tid, const CUtensorMap &r0, const CUtensorMap &r1, int row,
                                          const TileSeq &seq, int n) const {
        if (tid == 0) {
            mbar_expect_tx(once(), 2 * tile);
            for (int sl = 0; sl < D / 64; sl++) {
                tma_load_3d(resident(0) + sl * 64 * 128, &r0, sl * 64, row, bh, once());
                tma_load_3d(resident(1) + sl * 64 * 128, &r1, sl * 64, row, bh, once());
            }
            for (int i = 0; i < WBST && i < n; i++) issue(i, seq);
        }
    }
    __device__ __forceinline__ void wait_resident() const { mbar_wait(once(), 0); }
    /* Waits for streamed tile it; returns its stage's address (the second tile at + tile). */
    __device__ __forceinline__ uint32_t wait(int it) const {
        const int st = it % WBST;
        mbar_wait(full(st), (it / WBST) & 1);
        return stage(st);
    }
    /* Called by every thread once past the products that read tile it - 1: its stage takes tile
     * it - 1 + WBST when every warp has released it. */
    __device__ __forceinline__ void release(int it, const TileSeq &seq, int n, int tid, int lane) const {
        if (it == 0) return;
        const int st = (it - 1) % WBST;
        if (lane == 0) mbar_arrive(empty(st));
        if (tid == 0 && it - 1 + WBST < n) {
            mbar_wait(empty(st), ((it - 1) / WBST) & 1);
            issue(it - 1 + WBST, seq);
        }
    }
};

template <int D>
__global__ void __launch_bounds__(128, 2)
    wg_dkdv_kernel(const __grid_constant__ CUtensorMap tq, const __grid_constant__ CUtensorMap tk,
                   const __grid_constant__ CUtensorMap tv, const __grid_constant__ CUtensorMap tdo, FlashParams p) {
#ifdef SLA_WGMMA_DEVICE
    constexpr int ND = D / 8, T = BwdPipe<D>::tile;
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    const int tid = threadIdx.x, w = (tid >> 5) & 3, lane = tid & 31, t = lane & 3;
    const int bh = blockIdx.y;
    /* with an order, CTA x takes the x-th longest key block's tiles */
    const int kt = p.order ? p.order[(long)bh * p.Tk + blockIdx.x / p.tpb] * p.tpb + blockIdx.x % p.tpb : blockIdx.x;
    const int k0 = kt * 64;
    TileSeq seq = query_seq(p, bh, kt);
    const int sp = blockIdx.z; /* query split (dense mode only) */
    if (p.qsplit > 1) {
        const int per = (seq.count + p.qsplit - 1) / p.qsplit;
        seq.base = sp * per, seq.count = max(0, min(per, seq.count - seq.base));
    }
    const int n = seq.size();

    /* K and V resident, the query tiles' Q and dO streamed */
    const BwdPipe<D> pipe(smem_raw, tq, tdo, bh);
    const uint32_t sK = pipe.resident(0), sV = pipe.resident(1);
    pipe.init(tid);
    pipe.start(tid, tk, tv, k0, seq, n);

    const float sl2 = SLA_LOG2E * rsqrtf((float)D);
    float dk[ND][4], dv[ND][4], s[8][4], dp[8][4];
    uint32_t pa[4][4], pd[4][4];
#pragma unroll
    for (int j = 0; j < ND; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) dk[j][e] = dv[j][e] = 0.f;
    const uint64_t dK = wg_desc(sK, 16, 1024), dV = wg_desc(sV, 16, 1024);
    pipe.wait_resident();

    /* Per query tile, lse and Ds staged in shared memory one tile ahead by cp.async (one value per
     * thread, zeros past Nq: those columns are masked to P = 0, so dS = 0 too). */
    __shared__ __align__(16) float sLD[2][128];
    const float *lse = p.lse + (long)bh * p.Nq, *Dsg = (p.Ds_exact ? p.Ds_exact : p.Ds) + (long)bh * p.Nq;
    auto stage_stats = [&](int i) {
        const int q = seq.tile(i) * 64 + (tid & 63);
        const bool ok = q < p.Nq;
        const float *src = tid < 64 ? lse : Dsg;
        cp_async4(&sLD[i & 1][tid], src + (ok ? q : 0), ok);
        cp_async_commit();
    };
    if (n > 0) stage_stats(0);
    cp_async_wait<0>();
    __syncthreads();

    for (int it = 0; it < n; it++) {
        const float *Lt = sLD[it & 1], *Dt = Lt + 64;
        const uint32_t base = pipe.wait(it);
        /* the stage's Q and dO as K-major (S^T, dP^T) and N-major (dK, dV) operands */
        const uint64_t dQk = wg_desc(base, 16, 1024), dQn = wg_desc(base, 64 * 128, 1024);
        const uint64_t dOk = wg_desc_add(dQk, T), dOn = wg_desc_add(dQn, T);
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            const uint32_t off = (kk >> 2) * 64 * 128 + (kk & 3) * 32;
            wgmma_ss_n64(s, wg_desc_add(dK, off), wg_desc_add(dQk, off), kk > 0);
        }
        wg_commit(); /* group: S^T */
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            const uint32_t off = (kk >> 2) * 64 * 128 + (kk & 3) * 32;
            wgmma_ss_n64(dp, wg_desc_add(dV, off), wg_desc_add(dOk, off), kk > 0);
        }
        wg_commit(); /* group: dP^T */
        if (it + 1 < n) stage_stats(it + 1);
        wg_wait<1>(); /* S^T, and the previous tile's dV and dK: its stage is free */
        wg_pin(s);
        wg_pin(dk);
        wg_pin(dv);
        wg_pin(pa);
        wg_pin(pd);
        pipe.release(it, seq, n, tid, lane);
        const int q0 = seq.tile(it) * 64;
        if (q0 + 64 > p.Nq) {
#pragma unroll
            for (int j = 0; j < 8; j++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    if (q0 + j * 8 + 2 * t + (e & 1) >= p.Nq) s[j][e] = -INFINITY;
        }
#pragma unroll
        for (int j = 0; j < 8; j++) { /* P^T, with lse as log2 */
            const float2 l = *reinterpret_cast<const float2 *>(Lt + j * 8 + 2 * t);
            const float lx = __fmul_rn(l.x, SLA_LOG2E), ly = __fmul_rn(l.y, SLA_LOG2E);
            s[j][0] = fast_exp2(fmaf(s[j][0], sl2, -lx)), s[j][1] = fast_exp2(fmaf(s[j][1], sl2, -ly));
            s[j][2] = fast_exp2(fmaf(s[j][2], sl2, -lx)), s[j][3] = fast_exp2(fmaf(s[j][3], sl2, -ly));
        }
#pragma unroll
        for (int kk = 0; kk < 4; kk++) wg_pack_a<8>(pa[kk], s, kk);
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < 4; kk++) wgmma_rs_t<ND>(dv, pa[kk], wg_desc_add(dOn, kk * 2048), 1);
        wg_commit(); /* group: dV += P^T dO */
        wg_wait<1>(); /* dP^T */
        wg_pin(dp);
#pragma unroll
        for (int j = 0; j < 8; j++) { /* dS^T */
            const float2 d = *reinterpret_cast<const float2 *>(Dt + j * 8 + 2 * t);
            dp[j][0] = s[j][0] * (dp[j][0] - d.x), dp[j][1] = s[j][1] * (dp[j][1] - d.y);
            dp[j][2] = s[j][2] * (dp[j][2] - d.x), dp[j][3] = s[j][3] * (dp[j][3] - d.y);
        }
#pragma unroll
        for (int kk = 0; kk < 4; kk++) wg_pack_a<8>(pd[kk], dp, kk);
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < 4; kk++) wgmma_rs_t<ND>(dk, pd[kk], wg_desc_add(dQn, kk * 2048), 1);
        wg_commit();
        cp_async_wait<0>(); /* this thread's part of tile it + 1's lse and Ds */
        __syncthreads();    /* ... everyone's; and sLD[it & 1] is free for tile it + 2 */
    }
    wg_wait<0>();
    wg_pin(dk);
    wg_pin(dv);

    const float scale = rsqrtf((float)D);
    const int r0 = k0 + w * 16;
    if (p.qsplit > 1) { /* fp32 partials of this split */
        const long plane = (long)gridDim.y * p.Nk * D;
        float *pk = p.kv_part + (long)sp * 2 * plane + (long)bh * p.Nk * D, *pv = pk + plane;
        const int ra = r0 + (lane >> 2), rb = ra + 8;
#pragma unroll
        for (int j = 0; j < ND; j++) {
            const int c = j * 8 + 2 * t;
            if (ra < p.Nk) {
                *reinterpret_cast<float2 *>(pk + (long)ra * D + c) = make_float2(dk[j][0] * scale, dk[j][1] * scale);
                *reinterpret_cast<float2 *>(pv + (long)ra * D + c) = make_float2(dv[j][0], dv[j][1]);
            }
            if (rb < p.Nk) {
                *reinterpret_cast<float2 *>(pk + (long)rb * D + c) = make_float2(dk[j][2] * scale, dk[j][3] * scale);
                *reinterpret_cast<float2 *>(pv + (long)rb * D + c) = make_float2(dv[j][2], dv[j][3]);
            }
        }
        return;
    }
    frag_store_global_add<ND>(dk, scale, p.dk + (long)bh * p.Nk * D, D, r0, p.Nk, p.add, lane);
    frag_store_global_add<ND>(dv, 1.f, p.dv + (long)bh * p.Nk * D, D, r0, p.Nk, p.add, lane);
#endif
}

/* dQ: per 64 query rows (one warpgroup; thread 0 issues the bulk copies), over its key
 * tiles (kept list, or all): S = Q K^T, dP = dO V^T, P = exp(scale S - lse), E += rowsum(P dP),
 * acc += (P dP - P Ds) K and Y += P K; at the end dq (+)= scale (acc + (Ds - E) Y), which equals
 * scale sum dS K with dS = P (dP - E), the Ds consistent with the P and dP used, and E is written
 * to Ds_exact for the dK/dV kernel. Keys past Nk get P = 0. */
template <int D>
__global__ void __launch_bounds__(128, 2)
    wg_dq_kernel(const __grid_constant__ CUtensorMap tq, const __grid_constant__ CUtensorMap tk,
                 const __grid_constant__ CUtensorMap tv, const __grid_constant__ CUtensorMap tdo, FlashParams p) {
#ifdef SLA_WGMMA_DEVICE
    constexpr int BQ = 64, ND = D / 8, T = BwdPipe<D>::tile;
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    const int tid = threadIdx.x, w = tid >> 5, lane = tid & 31, t = lane & 3;
    const int bh = blockIdx.y, q0 = blockIdx.x * BQ;
    const TileSeq seq = key_seq(p, bh, blockIdx.x); /* CTA x: part x % qsub of lut query block x / qsub */
    const int n = seq.size();

    /* Q and dO resident, the key tiles' K and V streamed */
    const BwdPipe<D> pipe(smem_raw, tk, tv, bh);
    const uint32_t sQ = pipe.resident(0), sO = pipe.resident(1);
    pipe.init(tid);
    pipe.start(tid, tq, tdo, q0, seq, n);

    const float sl2 = SLA_LOG2E * rsqrtf((float)D);
    const int row0 = q0 + w * 16 + (lane >> 2), row1 = row0 + 8;
    const RowStats r0s = dq_row_stats(p, bh, row0), r1s = dq_row_stats(p, bh, row1);
    const float L0 = r0s.L, L1 = r1s.L, D0 = r0s.D, D1 = r1s.D;
    float acc[ND][4], accy[ND][4], s[8][4], dp[8][4];
    uint32_t ap[4][4], ad[4][4];
#pragma unroll
    for (int j = 0; j < ND; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc[j][e] = accy[j][e] = 0.f;
    float e0 = 0.f, e1 = 0.f;
    const uint64_t dQ = wg_desc(sQ, 16, 1024), dO = wg_desc(sO, 16, 1024);
    pipe.wait_resident();

    for (int it = 0; it < n; it++) {
        const uint32_t sK = pipe.wait(it);
        /* the stage's K as a K-major (S) and N-major (acc, Y) operand, V as K-major (dP) */
        const uint64_t dKk = wg_desc(sK, 16, 1024), dKn = wg_desc(sK, 64 * 128, 1024), dVk = wg_desc_add(dKk, T);
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++)
            wgmma_ss_n64(s, wg_desc_add(dQ, (kk >> 2) * BQ * 128 + (kk & 3) * 32),
                         wg_desc_add(dKk, (kk >> 2) * 64 * 128 + (kk & 3) * 32), kk > 0);
        wg_commit(); /* group: S */
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++)
            wgmma_ss_n64(dp, wg_desc_add(dO, (kk >> 2) * BQ * 128 + (kk & 3) * 32),
                         wg_desc_add(dVk, (kk >> 2) * 64 * 128 + (kk & 3) * 32), kk > 0);
        wg_commit(); /* group: dP */
        wg_wait<1>(); /* S, and the previous tile's acc and Y products: its stage is free */
        wg_pin(s);
        wg_pin(acc);
        wg_pin(accy);
        wg_pin(ap);
        wg_pin(ad);
        pipe.release(it, seq, n, tid, lane);
        const long k0 = (long)seq.tile(it) * 64;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            s[j][0] = fast_exp2(fmaf(s[j][0], sl2, -L0)), s[j][1] = fast_exp2(fmaf(s[j][1], sl2, -L0));
            s[j][2] = fast_exp2(fmaf(s[j][2], sl2, -L1)), s[j][3] = fast_exp2(fmaf(s[j][3], sl2, -L1));
        }
        if (k0 + 64 > p.Nk) {
#pragma unroll
            for (int j = 0; j < 8; j++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    if (k0 + j * 8 + 2 * t + (e & 1) >= p.Nk) s[j][e] = 0.f;
        }
#pragma unroll
        for (int kk = 0; kk < 4; kk++) wg_pack_a<8>(ap[kk], s, kk);
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < 4; kk++) wgmma_rs_t<ND>(accy, ap[kk], wg_desc_add(dKn, kk * 2048), 1);
        wg_commit(); /* group: Y += P K */
        wg_wait<1>(); /* dP */
        wg_pin(dp);
#pragma unroll
        for (int j = 0; j < 8; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const float pd = s[j][e] * dp[j][e];
                if (e < 2) e0 += pd; else e1 += pd;
                dp[j][e] = pd - s[j][e] * (e < 2 ? D0 : D1);
            }
#pragma unroll
        for (int kk = 0; kk < 4; kk++) wg_pack_a<8>(ad[kk], dp, kk);
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < 4; kk++) wgmma_rs_t<ND>(acc, ad[kk], wg_desc_add(dKn, kk * 2048), 1);
        wg_commit(); /* group: acc += (P dP - P Ds) K */
    }
    wg_wait<0>();
    wg_pin(acc);
    wg_pin(accy);

    dq_epilogue<D>(acc, accy, e0, e1, D0, D1, p, bh, q0 + w * 16, lane);
#endif
}

/* qsub CTAs of 64 rows per lut query block of bq rows. */
template <int D> void launch_wg_dq(const FlashParams &p0, int BH, int qsub) {
    constexpr int smem = BwdPipe<D>::smem;
    static bool init = false;
    if (!init) sla_smem_limit(wg_dq_kernel<D>, smem), init = true;
    if (p0.Nq == 0) return;
    FlashParams p = p0;
    p.qsub = qsub;
    const CUtensorMap tq = wg_tile_map(p.q, BH, p.Nq, D), tk = wg_tile_map(p.k, BH, p.Nk, D);
    const CUtensorMap tv = wg_tile_map(p.v, BH, p.Nk, D), tdo = wg_tile_map(p.dout, BH, p.Nq, D);
    dim3 grid((p.Nq + 63) / 64, BH);
    wg_dq_kernel<D><<<grid, 128, smem, cuda_stream()>>>(tq, tk, tv, tdo, p);
    CUDA_CHECK_LAUNCH();
}

/* dk, dv (+)= the sum of the qsplit partials in split order (n = BH Nk D elements each). */
__global__ void kv_split_sum_kernel(const float *part, int qsplit, long n, bf16 *dk, bf16 *dv, int add) {
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < 2 * n; i += (long)gridDim.x * blockDim.x) {
        const int which = i >= n; /* 0: dk, 1: dv */
        const long e = i - which * n;
        float s = 0.f;
        for (int sp = 0; sp < qsplit; sp++) s += part[((long)sp * 2 + which) * n + e];
        bf16 *out = which ? dv : dk;
        out[e] = __float2bfloat16_rn(add ? s + __bfloat162float(out[e]) : s);
    }
}

template <int D> void launch_wg_dkdv(const FlashParams &p, int BH) {
    constexpr int smem = BwdPipe<D>::smem;
    static bool init = false;
    if (!init) sla_smem_limit(wg_dkdv_kernel<D>, smem), init = true;
    if (p.Nk == 0) return;
    const CUtensorMap tq = wg_tile_map(p.q, BH, p.Nq, D), tk = wg_tile_map(p.k, BH, p.Nk, D);
    const CUtensorMap tv = wg_tile_map(p.v, BH, p.Nk, D), tdo = wg_tile_map(p.dout, BH, p.Nq, D);
    /* ordered: every tile of every key block (an all-padding last tile writes nothing) */
    const int qsplit = p.tent || p.qsplit < 1 ? 1 : p.qsplit;
    CHECK(qsplit == 1 || p.kv_part, "flash_backward_dkdv_wg: %d query splits without a partial buffer", qsplit);
    FlashParams pp = p;
    pp.qsplit = qsplit;
    dim3 grid(p.order ? p.Tk * p.tpb : (p.Nk + 63) / 64, BH, qsplit);
    wg_dkdv_kernel<D><<<grid, 128, smem, cuda_stream()>>>(tq, tk, tv, tdo, pp);
    CUDA_CHECK_LAUNCH();
    if (qsplit > 1) {
        const long n = (long)BH * p.Nk * D;
        kv_split_sum_kernel<<<(unsigned)((2 * n + 255) / 256 < 4096 ? (2 * n + 255) / 256 : 4096), 256, 0, cuda_stream()>>>(
            p.kv_part, qsplit, n, p.dk, p.dv, p.add);
        CUDA_CHECK_LAUNCH();
    }
}

} // namespace

/* One warpgroup of 64 rows per CTA, two CTAs per SM: a second warpgroup sharing the K/V tiles
 * would need setmaxnreg and a producer warpgroup to keep ~250 registers per thread. */
void flash_backward_dq_wg(const FlashParams &p, int BH, int D, int bq) {
    if (D == 128 && (bq == 64 || bq == 128)) launch_wg_dq<128>(p, BH, bq / 64);
    else if (D == 64 && (bq == 64 || bq == 128)) launch_wg_dq<64>(p, BH, bq / 64);
    else CHECK(0, "flash_backward_dq_wg: unsupported head dim %d / query block %d", D, bq);
}

/* Enough CTAs for two per SM when the key tiles alone are fewer, at most 8 splits and at least
 * 16 query tiles per split. */
int flash_dkdv_splits(int BH, int Nq, int Nk) {
    if (!flash_wg_available()) return 1;
    static int sms = 0;
    if (!sms) {
        int dev = 0;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    }
    const long ctas = (long)BH * ((Nk + 63) / 64), qt = (Nq + 63) / 64;
    int s = 1;
    while (s < 8 && ctas * s < 2L * sms && qt / (2 * s) >= 16) s *= 2;
    return s;
}

void flash_backward_dkdv_wg(const FlashParams &p, int BH, int D) {
    if (D == 128) launch_wg_dkdv<128>(p, BH);
    else if (D == 64) launch_wg_dkdv<64>(p, BH);
    else CHECK(0, "flash_backward_dkdv_wg: unsupported head dim %d", D);
}
