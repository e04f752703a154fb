/* kernels/cuda/sla_select.cu — SLA block selection and the block map built from it, on the GPU
 * without host synchronisation (SLA.md section 1).
 *
 * pool_kernel     qbar_i = mean of Q over query block i, ksum_j = sum of K over key block j (fp32,
 *                 true counts for partial blocks); fixed-order reductions. The SLA forward has the
 *                 linear branch's state kernel write ksum (it reads K anyway) and pools Q only.
 * kmean_kernel    mu = sum_j ksum_j / N; kbar_j = ksum_j / count_j - mu (= mean of K - mu).
 * scores_kernel   s_ij = qbar_i . kbar_j in fp32 (d summed in order).
 * topk_kernel     per query block: bitonic sort of (score desc, j asc) as 64-bit keys; critical =
 *                 the first kappa (or the caller's lut), negligible = the last n_negl non-critical;
 *                 both written ascending. Same rule as the CPU oracle up to rounding of the scores.
 * topk_warp_kernel the same critical set without a sort (a warp radix select over the
 *                 scores held in registers, warp_topk_row) when there is no lut given, no
 *                 negligible list and Tn <= 2048 (any kappa): the common case.
 * rowmap_kernel   mark map [Tm, Tn] (0 marginal, 1 critical, 2 negligible) and the linear
 *                 branch's 0/1 marginal mask (bf16, a GEMM operand).
 * pool_q_kbar_t_kernel + select_fused_kernel  the common case (the SLA forward with the linear
 *                 branch on, whose state kernel wrote ksum) in two launches: per head mu and kbar
 *                 (kmean_kernel's arithmetic, stored transposed) beside the Q pooling, then scores +
 *                 topk_warp + rowmap per 8 query blocks of one head (scores_kernel's arithmetic,
 *                 warp_topk_row): bit-identical lut, map, mask.
 * The backward's transposed lists built from the map are in sla_lists.cu. */
#include <type_traits>

#include "block_scan.cuh"
#include "sla_internal.cuh"

namespace {

/* out [D] = the sum of rows r0 .. r1 - 1 of x [., D] (or their mean when mean), by 256 threads in a
 * fixed order; part [256 * 8] scratch. */
__device__ void pool_rows(const bf16 *x, int r0, int r1, int D, float *part, float *out, bool mean) {
    const int tid = threadIdx.x;
    const int cpr = D / 8, phases = 256 / cpr, c = tid % cpr, ph = tid / cpr;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (ph < phases)
#pragma unroll 8
        for (int r = r0 + ph; r < r1; r += phases) {
            uint4 u = *reinterpret_cast<const uint4 *>(x + (long)r * D + c * 8);
            const uint32_t *pu = reinterpret_cast<const uint32_t *>(&u);
#pragma unroll
            for (int i = 0; i < 4; i++) {
                float2 f = unpack_bf16(pu[i]);
                acc[2 * i] += f.x, acc[2 * i + 1] += f.y;
            }
        }
    if (ph < phases)
#pragma unroll
        for (int i = 0; i < 8; i++) part[ph * D + c * 8 + i] = acc[i];
    __syncthreads();
    if (tid < D) {
        float s = 0.f;
        for (int p = 0; p < phases; p++) s += part[p * D + tid];
        out[tid] = mean ? s / (float)(r1 - r0) : s;
    }
}

__global__ void __launch_bounds__(256) pool_kernel(const bf16 *q, const bf16 *k, float *qbar, float *ksum, int N, int D,
                                                   int blk_q, int blk_k, int Tm, int Tn) {
    __shared__ float part[256 * 8];
    const int bh = blockIdx.y;
    const bool isq = (int)blockIdx.x < Tm;
    const int blk = isq ? blockIdx.x : blockIdx.x - Tm, bs = isq ? blk_q : blk_k;
    const int r0 = blk * bs, r1 = min(N, r0 + bs);
    pool_rows((isq ? q : k) + (long)bh * N * D, r0, r1, D, part,
              isq ? qbar + ((long)bh * Tm + blk) * D : ksum + ((long)bh * Tn + blk) * D, isq);
}

/* mu [D] of one head from its ksum ks [Tn, D] in a fixed order: with G = KMEAN_THREADS / D row
 * groups, group g sums key blocks g, g + G, ... in order, then the G partials are added in order
 * and divided by N. Any block size (a multiple of 32); each thread runs items t = g * D + d and
 * t + blockDim.x at once. part [KMEAN_THREADS] scratch; ends synchronised. */
constexpr int KMEAN_THREADS = 1024;
__device__ void head_mu(const float *ks, float *part, float *mu, int N, int D, int Tn) {
    const int G = KMEAN_THREADS / D, items = G * D, nt = blockDim.x;
    for (int t = threadIdx.x; t < items; t += 2 * nt) {
        const int g = t / D, d = t % D, g2 = (t + nt) / D, d2 = (t + nt) % D;
        const bool two = t + nt < items;
        float s = 0.f, s2 = 0.f;
#pragma unroll 8 /* the loads in flight together; each sum keeps its order */
        for (int j = g, j2 = g2; j < Tn; j += G, j2 += G) {
            s += ks[(long)j * D + d];
            if (two && j2 < Tn) s2 += ks[(long)j2 * D + d2];
        }
        part[t] = s;
        if (two) part[t + nt] = s2;
    }
    __syncthreads();
    for (int d = threadIdx.x; d < D; d += nt) {
        float t = 0.f;
        for (int h = 0; h < G; h++) t += part[h * D + d];
        mu[d] = t / (float)N;
    }
    __syncthreads();
}

/* kbar of key block j at one column: its key sum x divided by the block's true count, minus mu
 * (kmean_kernel's and pool_q_kbar_t_kernel's arithmetic, so that the fused path is bit-identical). */
__device__ __forceinline__ float kbar_value(float x, int j, int N, int blk_k, float mu) {
    return x / (float)(min(N, (j + 1) * blk_k) - j * blk_k) - mu;
}

/* The selection's inputs for select_fused_kernel, after lin_state has written ksum: CTA c <
 * BH * nkc (nkc = ceil(Tn / KBT_J)) computes mu of head c / nkc (head_mu, every such CTA of the
 * head the same) and the KBT_J columns j0 = (c % nkc) KBT_J .. of kbarT [D, Tn] = (ksum_j /
 * count_j - mu)^T, kmean_kernel's values transposed (the scores then read them coalesced, straight
 * from L2) through a smem tile; with q, CTA BH nkc + e pools query block e % Tm of head e / Tm as
 * pool_kernel does. The head CTAs come first so that their latency-bound reductions run under the
 * Q pooling. */
constexpr int KBT_J = 32;
__global__ void __launch_bounds__(256) pool_q_kbar_t_kernel(const bf16 *q, const float *ksum, float *qbar, float *kbarT,
                                                            int nhead_ctas, int N, int D, int blk_q, int blk_k, int Tm,
                                                            int Tn) {
    __shared__ float part[256 * 8];                /* pool_rows, or head_mu's KMEAN_THREADS then mu */
    __shared__ float tile[KBT_J][128 + 1];         /* ksum rows j0 .. j0 + KBT_J - 1, 128 columns at a time */
    const int c = blockIdx.x, tid = threadIdx.x;
    if (c >= nhead_ctas) {
        const int e = c - nhead_ctas, bh = e / Tm, blk = e % Tm, r0 = blk * blk_q;
        pool_rows(q + (long)bh * N * D, r0, min(N, r0 + blk_q), D, part, qbar + ((long)bh * Tm + blk) * D, true);
        return;
    }
    const int nkc = (Tn + KBT_J - 1) / KBT_J, bh = c / nkc, j0 = (c % nkc) * KBT_J;
    const float *ks = ksum + (long)bh * Tn * D;
    float *mu = part + KMEAN_THREADS, *kb = kbarT + (long)bh * D * Tn;
    for (int d0 = 0; d0 < D; d0 += 128) {
        const int dc = min(128, D - d0);
        for (int e = tid; e < KBT_J * dc; e += blockDim.x) { /* coalesced rows (the first chunk's during head_mu) */
            const int jj = e / dc, j = j0 + jj;
            tile[jj][e % dc] = j < Tn ? ks[(long)j * D + d0 + e % dc] : 0.f;
        }
        if (d0 == 0) head_mu(ks, part, mu, N, D, Tn); /* ends synchronised */
        else __syncthreads();
        for (int e = tid; e < KBT_J * dc; e += blockDim.x) {
            const int jj = e % KBT_J, d = d0 + e / KBT_J, j = j0 + jj;
            if (j < Tn) kb[(long)d * Tn + j] = kbar_value(tile[jj][d - d0], j, N, blk_k, mu[d]);
        }
        __syncthreads(); /* the tile is read before the next chunk overwrites it */
    }
}

/* One CTA per head of KMEAN_THREADS threads (head_mu), then kbar by D columns x G row groups. */
__global__ void __launch_bounds__(KMEAN_THREADS) kmean_kernel(const float *ksum, float *kbar, int N, int D, int blk_k,
                                                              int Tn) {
    __shared__ float part[KMEAN_THREADS];
    __shared__ float mu_sh[256];
    const int d = threadIdx.x % D, G = KMEAN_THREADS / D;
    const int g = threadIdx.x / D < G ? threadIdx.x / D : Tn; /* threads past G * D (D not a power of 2) idle */
    const float *ks = ksum + (long)blockIdx.x * Tn * D;
    head_mu(ks, part, mu_sh, N, D, Tn);
    const float mu = mu_sh[d];
#pragma unroll 8
    for (int j = g; j < Tn; j += G)
        kbar[((long)blockIdx.x * Tn + j) * D + d] = kbar_value(ks[(long)j * D + d], j, N, blk_k, mu);
}

/* 32 x 32 output tile per block of 32 x 8 threads. */
__global__ void scores_kernel(const float *qbar, const float *kbar, float *S, int D, int Tm, int Tn) {
    __shared__ float A[32][33], Bt[32][33];
    const int bh = blockIdx.z, i0 = blockIdx.y * 32, j0 = blockIdx.x * 32, tx = threadIdx.x, ty = threadIdx.y;
    const float *qa = qbar + (long)bh * Tm * D, *kb = kbar + (long)bh * Tn * D;
    float acc[4] = {0, 0, 0, 0};
    for (int d0 = 0; d0 < D; d0 += 32) {
        for (int r = ty; r < 32; r += 8) {
            A[r][tx] = i0 + r < Tm ? qa[(long)(i0 + r) * D + d0 + tx] : 0.f;
            Bt[r][tx] = j0 + r < Tn ? kb[(long)(j0 + r) * D + d0 + tx] : 0.f;
        }
        __syncthreads();
        for (int dd = 0; dd < 32; dd++)
#pragma unroll
            for (int r = 0; r < 4; r++) acc[r] = fmaf(A[ty + 8 * r][dd], Bt[tx][dd], acc[r]);
        __syncthreads();
    }
#pragma unroll
    for (int r = 0; r < 4; r++)
        if (i0 + ty + 8 * r < Tm && j0 + tx < Tn) S[((long)bh * Tm + i0 + ty + 8 * r) * Tn + j0 + tx] = acc[r];
}

/* Orders by score descending, then block index ascending: rank_ord(s) is the high word (the
 * score's order as an unsigned integer), ~j the low word. */
__device__ __forceinline__ uint32_t rank_ord(float s) {
    s += 0.f; /* -0 -> +0 */
    uint32_t u = __float_as_uint(s);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ unsigned long long ord_key(uint32_t u, int j) {
    return ((unsigned long long)u << 32) | (0xFFFFFFFFu - (uint32_t)j);
}
__device__ __forceinline__ unsigned long long rank_key(float s, int j) { return ord_key(rank_ord(s), j); }
__device__ __forceinline__ int key_j(unsigned long long key) { return (int)(0xFFFFFFFFu - (uint32_t)key); }

/* The kappa largest rank keys of one row by one warp, without a sort. Lane l holds the orders
 * o[s] = rank_ord(score) of blocks j = l + 32 s, s < K (0 past Tn, which is at most 32 K).
 * A radix select finds the kappa-th largest order T in 32 warp counts (redux add); the kept set is
 * every order above T and the lowest-j orders equal to T: the same set as the sort of (score desc,
 * j asc). (Kappa rounds of a warp argmax, the version before, cost about 0.7 us a round.) Writes
 * the winners ascending to lrow [kappa] and, when given, the row's map (1 taken, 0 not) and
 * marginal mask (bf16 1 where not taken, 0 from Tn to krow_len <= 32 K): what rowmap_kernel writes
 * without negligible blocks. */
template <int K>
__device__ void warp_topk_row(const uint32_t (&o)[K], int Tn, int kappa, int *lrow, uint8_t *mrow, bf16 *krow,
                              int krow_len) {
    static_assert(K >= 1 && K <= 64, "warp_topk_row: 1 to 64 slots per lane");
    const int lane = threadIdx.x & 31;

    /* T = the kappa-th largest order: bit by bit from the top, the largest T with at least kappa
     * orders >= T (32 warp counts, independent of kappa). Kept: every order > T, then the orders
     * == T by ascending j until kappa (the sort's tie rule). */
    uint32_t T = 0;
    for (int bit = 31; bit >= 0; bit--) {
        const uint32_t c = T | (1u << bit);
        int n = 0;
#pragma unroll
        for (int s = 0; s < K; s++) n += o[s] >= c; /* c >= 1: slots past Tn (order 0) never count */
        if ((int)__reduce_add_sync(0xffffffffu, (unsigned)n) >= kappa) T = c;
    }
    int above = 0;
#pragma unroll
    for (int s = 0; s < K; s++) above += o[s] > T;
    const int ties = kappa - (int)__reduce_add_sync(0xffffffffu, (unsigned)above); /* >= 1 */
    unsigned long long tk = 0; /* kept slots */
    int seen = 0;                /* orders == T met so far in j order */
#pragma unroll
    for (int s = 0; s < K; s++) {
        const bool valid = lane + 32 * s < Tn, eq = valid && o[s] == T;
        const unsigned bal = __ballot_sync(0xffffffffu, eq);
        const bool keep = valid && (o[s] > T || (eq && seen + __popc(bal & ((1u << lane) - 1u)) < ties));
        if (keep) tk |= 1ull << s;
        seen += __popc(bal);
    }
    int base = 0;
#pragma unroll
    for (int s = 0; s < K; s++) {
        const int j = lane + 32 * s;
        const bool t = j < Tn && ((tk >> s) & 1);
        const unsigned bal = __ballot_sync(0xffffffffu, t);
        if (t) lrow[base + __popc(bal & ((1u << lane) - 1u))] = j;
        base += __popc(bal);
        if (j < Tn && mrow) mrow[j] = t;
        if (j < krow_len && krow) krow[j] = __float2bfloat16_rn(t || j >= Tn ? 0.f : 1.f);
    }
}

/* Slots per lane for Tn key blocks: the smallest of 2, 4, 8, 16, 24, 32, 40, 48, 64 holding
 * ceil(Tn / 32) (0: more than 64). The radix select's work is proportional to the slots, so the
 * steps between 16 and 64 matter: 720p's Tn = 1182 takes 40 slots instead of 64. */
int topk_slots(int Tn) {
    static const int steps[] = {2, 4, 8, 16, 24, 32, 40, 48, 64};
    for (int k : steps)
        if (32 * k >= Tn) return k;
    return 0;
}

/* Calls launch.template operator()<K>() with the slots for Tn (topk_slots(Tn) != 0). */
template <typename F> void with_slots(int Tn, F &&launch) {
    switch (topk_slots(Tn)) {
    case 2: launch(std::integral_constant<int, 2>()); break;
    case 4: launch(std::integral_constant<int, 4>()); break;
    case 8: launch(std::integral_constant<int, 8>()); break;
    case 16: launch(std::integral_constant<int, 16>()); break;
    case 24: launch(std::integral_constant<int, 24>()); break;
    case 32: launch(std::integral_constant<int, 32>()); break;
    case 40: launch(std::integral_constant<int, 40>()); break;
    case 48: launch(std::integral_constant<int, 48>()); break;
    default: launch(std::integral_constant<int, 64>()); break;
    }
}

/* The common case of topk_kernel (no imposed lut, no negligible list, Tn <= TOPK_WARP_TN; any kappa
 * <= Tn: the radix select's work does not depend on it): one warp per query-block row
 * (warp_topk_row), the row's orders in registers. The same keys, so the same set as the sort. */
constexpr int TOPK_WARP_TN = 32 * 64;
template <int K>
__global__ void __launch_bounds__(256) topk_warp_kernel(const float *scores, int *lut, long rows, int Tn, int kappa) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const long row = (long)blockIdx.x * (blockDim.x >> 5) + warp;
    if (row >= rows) return; /* whole warps only; nothing below synchronises the block */
    const float *s = scores + row * Tn;
    uint32_t o[K];
#pragma unroll
    for (int t = 0; t < K; t++) o[t] = lane + 32 * t < Tn ? rank_ord(s[lane + 32 * t]) : 0u;
    warp_topk_row<K>(o, Tn, kappa, lut + row * kappa, nullptr, nullptr, 0);
}

/* scores_kernel + topk_warp_kernel + rowmap_kernel (n_negl = 0) for SEL_ROWS query blocks i0.. of
 * head bh = blockIdx.y, from qbar and pool_q_kbar_t_kernel's kbarT [BH, D, Tn]. Thread tid scores
 * key blocks j = tid + SEL_THREADS u against the SEL_ROWS rows (qbar staged in smem, read as
 * broadcasts; kbar read coalesced from L2, no staging and no barrier in the loop), each score an
 * fmaf chain over d from 0 as in scores_kernel; the scores are kept as rank_ord in smem; then warp
 * w runs warp_topk_row<K> for row i0 + w. map and mask are optional. Dynamic smem (fused_smem):
 * qs [SEL_ROWS][D] f32, ord [SEL_ROWS][Tn] u32. */
constexpr int SEL_ROWS = 8, SEL_THREADS = 32 * SEL_ROWS;
template <int K>
__global__ void __launch_bounds__(SEL_THREADS, K <= 16 ? 3 : 1) /* one wave of 3 per SM at 480p */
    select_fused_kernel(const float *qbar, const float *kbarT, int D, int Tm, int Tn, int kappa, int *lut, uint8_t *map,
                        bf16 *mask, int mask_ld) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    float *qs = reinterpret_cast<float *>(smem_raw);
    uint32_t *ord = reinterpret_cast<uint32_t *>(qs + SEL_ROWS * D);
    const int bh = blockIdx.y, i0 = blockIdx.x * SEL_ROWS, tid = threadIdx.x;
    for (int e = tid; e < SEL_ROWS * D; e += SEL_THREADS)
        qs[e] = i0 + e / D < Tm ? qbar[((long)bh * Tm + i0) * D + e] : 0.f;
    __syncthreads();

    const float *kb = kbarT + (long)bh * D * Tn;
    const float4 *qs4 = reinterpret_cast<const float4 *>(qs);
    for (int j0 = tid; j0 < Tn; j0 += 2 * SEL_THREADS) { /* two key blocks per thread and pass */
        const int j1 = j0 + SEL_THREADS;
        const bool two = j1 < Tn;
        float a0[SEL_ROWS], a1[SEL_ROWS];
#pragma unroll
        for (int r = 0; r < SEL_ROWS; r++) a0[r] = a1[r] = 0.f;
#pragma unroll 1
        for (int d = 0; d < D; d += 4) {
            float k0[4], k1[4];
#pragma unroll
            for (int u = 0; u < 4; u++) {
                k0[u] = kb[(long)(d + u) * Tn + j0];
                k1[u] = two ? kb[(long)(d + u) * Tn + j1] : 0.f;
            }
#pragma unroll
            for (int r = 0; r < SEL_ROWS; r++) {
                const float4 q = qs4[r * (D / 4) + d / 4];
                a0[r] = fmaf(q.x, k0[0], a0[r]), a1[r] = fmaf(q.x, k1[0], a1[r]);
                a0[r] = fmaf(q.y, k0[1], a0[r]), a1[r] = fmaf(q.y, k1[1], a1[r]);
                a0[r] = fmaf(q.z, k0[2], a0[r]), a1[r] = fmaf(q.z, k1[2], a1[r]);
                a0[r] = fmaf(q.w, k0[3], a0[r]), a1[r] = fmaf(q.w, k1[3], a1[r]);
            }
        }
#pragma unroll
        for (int r = 0; r < SEL_ROWS; r++) {
            ord[r * Tn + j0] = rank_ord(a0[r]);
            if (two) ord[r * Tn + j1] = rank_ord(a1[r]);
        }
    }
    __syncthreads();
    const int w = tid >> 5, lane = tid & 31;
    if (i0 + w >= Tm) return;
    const long row = (long)bh * Tm + i0 + w;
    uint32_t o[K];
#pragma unroll
    for (int t = 0; t < K; t++) o[t] = lane + 32 * t < Tn ? ord[w * Tn + lane + 32 * t] : 0u;
    warp_topk_row<K>(o, Tn, kappa, lut + row * kappa, map ? map + row * Tn : nullptr,
                     mask ? mask + row * mask_ld : nullptr, mask_ld);
}

__global__ void __launch_bounds__(SCAN_THREADS) topk_kernel(const float *scores, int *lut, int lut_given, int *neg,
                                                            int neg_ld, int Tm, int Tn, int P, int kappa, int n_negl) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    unsigned long long *keys = reinterpret_cast<unsigned long long *>(smem_raw);
    int *sc = reinterpret_cast<int *>(keys + P);
    unsigned char *crit = reinterpret_cast<unsigned char *>(sc + P);
    unsigned char *negl = crit + Tn;
    const int bh = blockIdx.y, i = blockIdx.x, tid = threadIdx.x, nt = blockDim.x;
    const long row = (long)bh * Tm + i;
    const float *s = scores + row * Tn;
    int *lrow = lut + row * kappa, *nrow = neg + row * neg_ld;

    for (int p = tid; p < P; p += nt) keys[p] = p < Tn ? rank_key(s[p], p) : 0ull;
    for (int j = tid; j < Tn; j += nt) crit[j] = 0, negl[j] = 0;
    __syncthreads();
    for (int kk = 2; kk <= P; kk <<= 1)
        for (int jj = kk >> 1; jj > 0; jj >>= 1) {
            for (int q = tid; q < P / 2; q += nt) {
                int a = 2 * jj * (q / jj) + (q % jj), b = a + jj;
                bool desc = (a & kk) == 0;
                unsigned long long x = keys[a], y = keys[b];
                if (desc ? x < y : x > y) keys[a] = y, keys[b] = x;
            }
            __syncthreads();
        }
    if (!lut_given) {
        for (int p = tid; p < kappa; p += nt) crit[key_j(keys[p])] = 1;
    } else {
        for (int p = tid; p < kappa; p += nt) crit[lrow[p]] = 1;
    }
    __syncthreads();
    if (n_negl > 0) {
        if (!lut_given) {
            for (int p = Tn - n_negl + tid; p < Tn; p += nt) negl[key_j(keys[p])] = 1;
        } else {
            for (int p = tid; p < Tn; p += nt) sc[p] = !crit[key_j(keys[p])];
            __syncthreads();
            int T = block_excl_scan(sc, Tn);
            for (int p = tid; p < Tn; p += nt) {
                int j = key_j(keys[p]);
                if (!crit[j] && T - sc[p] - 1 < n_negl) negl[j] = 1;
            }
        }
    }
    __syncthreads();
    if (!lut_given) {
        for (int j = tid; j < Tn; j += nt) sc[j] = crit[j];
        __syncthreads();
        block_excl_scan(sc, Tn);
        for (int j = tid; j < Tn; j += nt)
            if (crit[j]) lrow[sc[j]] = j;
        __syncthreads();
    }
    if (n_negl > 0) {
        for (int j = tid; j < Tn; j += nt) sc[j] = negl[j];
        __syncthreads();
        block_excl_scan(sc, Tn);
        for (int j = tid; j < Tn; j += nt)
            if (negl[j]) nrow[sc[j]] = j;
    }
}

__global__ void __launch_bounds__(256) rowmap_kernel(const int *lut, const int *neg, int neg_ld, int Tm, int Tn,
                                                     int kappa, int n_negl, uint8_t *map, bf16 *mask, int mask_ld) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    unsigned char *mk = smem_raw;
    const int bh = blockIdx.y, i = blockIdx.x, tid = threadIdx.x, nt = blockDim.x;
    const long row = (long)bh * Tm + i;
    for (int j = tid; j < Tn; j += nt) mk[j] = 0;
    __syncthreads();
    for (int p = tid; p < kappa; p += nt) mk[lut[row * kappa + p]] = 1;
    for (int p = tid; p < n_negl; p += nt) mk[neg[row * neg_ld + p]] = 2;
    __syncthreads();
    for (int j = tid; j < Tn; j += nt) map[row * Tn + j] = mk[j];
    if (mask)
        for (int j = tid; j < mask_ld; j += nt)
            mask[row * mask_ld + j] = __float2bfloat16_rn(j < Tn && mk[j] == 0 ? 1.f : 0.f);
}

int next_pow2(int x) {
    int p = 1;
    while (p < x) p <<= 1;
    return p;
}

} // namespace

void sla_pool_launch(const bf16 *q, const bf16 *k, int BH, int N, int D, int blk_q, int blk_k, int Tm, int Tn,
                     float *qbar, float *ksum, float *kbar) {
    CHECK(D % 32 == 0 && D <= 256, "SLA selection: head dim %d must be a multiple of 32 up to 256", D);
    cudaStream_t st = cuda_stream();
    pool_kernel<<<dim3(k ? Tm + Tn : Tm, BH), 256, 0, st>>>(q, k, qbar, ksum, N, D, blk_q, blk_k, Tm, Tn);
    CUDA_CHECK_LAUNCH();
    if (!kbar) return;
    kmean_kernel<<<BH, KMEAN_THREADS, 0, st>>>(ksum, kbar, N, D, blk_k, Tn);
    CUDA_CHECK_LAUNCH();
}

void sla_scores_launch(const float *qbar, const float *kbar, int BH, int D, int Tm, int Tn, float *scores) {
    scores_kernel<<<dim3((Tn + 31) / 32, (Tm + 31) / 32, BH), dim3(32, 8), 0, cuda_stream()>>>(qbar, kbar, scores, D,
                                                                                               Tm, Tn);
    CUDA_CHECK_LAUNCH();
}

void sla_topk_launch(const float *scores, int BH, int Tm, int Tn, int kappa, int n_negl, int lut_given, int *lut,
                     int *neg, int neg_ld, bool warp_ok) {
    CHECK(Tn <= 8192, "SLA selection: %d key blocks exceed the GPU top-k limit of 8192", Tn);
    if (warp_ok && !lut_given && n_negl == 0 && kappa <= Tn && Tn <= TOPK_WARP_TN) {
        const long rows = (long)BH * Tm;
        with_slots(Tn, [&](auto k) {
            constexpr int K = decltype(k)::value;
            topk_warp_kernel<K><<<(unsigned)((rows + 7) / 8), 256, 0, cuda_stream()>>>(scores, lut, rows, Tn, kappa);
        });
        CUDA_CHECK_LAUNCH();
        return;
    }
    int P = next_pow2(Tn);
    int smem = P * 8 + P * 4 + 2 * ((Tn + 15) / 16) * 16 + 16;
    static int limit = 0;
    if (smem > 48 * 1024 && smem > limit) sla_smem_limit(topk_kernel, smem), limit = smem;
    topk_kernel<<<dim3(Tm, BH), SCAN_THREADS, smem, cuda_stream()>>>(scores, lut, lut_given, neg, neg_ld, Tm, Tn, P,
                                                                     kappa, n_negl);
    CUDA_CHECK_LAUNCH();
}

namespace {
int fused_smem(int D, int Tn) { return (SEL_ROWS * D + SEL_ROWS * Tn) * 4; }
} // namespace

bool sla_select_fused_ok(int D, int blk_k, int Tn, int kappa, int n_negl, int lut_given) {
    static int optin = -1;
    if (optin < 0) {
        int dev;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    }
    return !lut_given && n_negl == 0 && kappa >= 1 && kappa <= Tn && Tn <= TOPK_WARP_TN &&
           D % 32 == 0 && D <= 256 && KMEAN_THREADS % D == 0 && blk_k > 0 &&
           fused_smem(D, Tn) <= optin;
}

void sla_pool_q_kbar_t_launch(const bf16 *q, const float *ksum, int BH, int N, int D, int blk_q, int blk_k, int Tm,
                              int Tn, float *qbar, float *kbarT) {
    CHECK(D % 32 == 0 && D <= 256 && KMEAN_THREADS % D == 0 && blk_k > 0,
          "SLA selection: head dim %d / key block %d not taken by the fused pooling", D, blk_k);
    const int nhead_ctas = BH * ((Tn + KBT_J - 1) / KBT_J);
    pool_q_kbar_t_kernel<<<nhead_ctas + (q ? BH * Tm : 0), 256, 0, cuda_stream()>>>(q, ksum, qbar, kbarT, nhead_ctas, N,
                                                                                    D, blk_q, blk_k, Tm, Tn);
    CUDA_CHECK_LAUNCH();
}

void sla_select_fused_launch(const float *qbar, const float *kbarT, int BH, int D, int blk_k, int Tm, int Tn, int kappa,
                             int *lut, uint8_t *map, bf16 *mask, int mask_ld) {
    CHECK(mask_ld >= Tn && mask_ld <= sla_tn_pad(Tn), "SLA selection: mask row length %d for %d key blocks", mask_ld,
          Tn);
    CHECK(sla_select_fused_ok(D, blk_k, Tn, kappa, 0, 0),
          "SLA selection: the fused kernel does not take D %d, blk_k %d, Tn %d, kappa %d", D, blk_k, Tn, kappa);
    const int smem = fused_smem(D, Tn);
    with_slots(Tn, [&](auto k) {
        constexpr int K = decltype(k)::value;
        static int limit = 0;
        if (smem > 48 * 1024 && smem > limit) sla_smem_limit(select_fused_kernel<K>, smem), limit = smem;
        select_fused_kernel<K><<<dim3((Tm + SEL_ROWS - 1) / SEL_ROWS, BH), SEL_THREADS, smem, cuda_stream()>>>(
            qbar, kbarT, D, Tm, Tn, kappa, lut, map, mask, mask_ld);
    });
    CUDA_CHECK_LAUNCH();
}

void sla_select_launch(const bf16 *q, const bf16 *k, int BH, int N, int D, int blk_q, int blk_k, int Tm, int Tn,
                       int kappa, int n_negl, int lut_given, int *lut, int *neg, int neg_ld, float *qbar, float *ksum,
                       float *kbar, float *scores) {
    sla_pool_launch(q, k, BH, N, D, blk_q, blk_k, Tm, Tn, qbar, ksum, kbar);
    sla_scores_launch(qbar, kbar, BH, D, Tm, Tn, scores);
    sla_topk_launch(scores, BH, Tm, Tn, kappa, n_negl, lut_given, lut, neg, neg_ld);
}

void sla_rowmap_launch(const int *lut, const int *neg, int neg_ld, int BH, int Tm, int Tn, int kappa, int n_negl,
                       uint8_t *map, bf16 *mask, int mask_ld) {
    CHECK(!mask || (mask_ld >= Tn && mask_ld <= sla_tn_pad(Tn)), "SLA rowmap: mask row length %d for %d key blocks",
          mask_ld, Tn);
    const int smem = ((Tn + 15) / 16 + 1) * 16;
    rowmap_kernel<<<dim3(Tm, BH), 256, smem, cuda_stream()>>>(lut, neg, neg_ld, Tm, Tn, kappa, n_negl, map, mask,
                                                              mask_ld);
    CUDA_CHECK_LAUNCH();
}
