/* kernels/cuda/sla_select.cu — SLA block selection and the index lists built from it, on the GPU
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
 * topk_warp_kernel the same critical set without a sort (kappa rounds of a warp argmax) when there
 *                 is no lut given, no negligible list and kappa <= 64: the common case.
 * rowmap_kernel   mark map [Tm, Tn] (0 marginal, 1 critical, 2 negligible) and the linear
 *                 branch's 0/1 marginal mask (bf16, a GEMM operand).
 * col_* kernels   transposed lists: per key block the ascending query blocks whose mark matches. */
#include "sla_internal.cuh"

namespace {

constexpr int SCAN_THREADS = 512;

/* In-place exclusive prefix sum of a[0..n) in shared memory; returns the total. All threads of the
 * block (blockDim.x a multiple of 32, at most 1024) must call it. */
__device__ int block_excl_scan(int *a, int n) {
    __shared__ int warp_tot[32];
    __shared__ int total;
    const int nt = blockDim.x, tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    const int per = (n + nt - 1) / nt, b = tid * per, e = min(n, b + per);
    int local = 0;
    for (int i = b; i < e; i++) local += a[i];
    int incl = local;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        int y = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += y;
    }
    if (lane == 31) warp_tot[w] = incl;
    __syncthreads();
    if (w == 0) {
        int nw = nt >> 5;
        int x = lane < nw ? warp_tot[lane] : 0, xi = x;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            int y = __shfl_up_sync(0xffffffffu, xi, o);
            if (lane >= o) xi += y;
        }
        if (lane < nw) warp_tot[lane] = xi - x;
        if (lane == nw - 1) total = xi;
    }
    __syncthreads();
    int run = warp_tot[w] + incl - local;
    for (int i = b; i < e; i++) {
        int v = a[i];
        a[i] = run;
        run += v;
    }
    __syncthreads();
    return total;
}

__global__ void __launch_bounds__(256) pool_kernel(const bf16 *q, const bf16 *k, float *qbar, float *ksum, int N, int D,
                                                   int blk_q, int blk_k, int Tm, int Tn) {
    __shared__ float part[256 * 8];
    const int bh = blockIdx.y, tid = threadIdx.x;
    const bool isq = (int)blockIdx.x < Tm;
    const int blk = isq ? blockIdx.x : blockIdx.x - Tm, bs = isq ? blk_q : blk_k;
    const bf16 *x = (isq ? q : k) + (long)bh * N * D;
    const int r0 = blk * bs, r1 = min(N, r0 + bs);
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
        if (isq) qbar[((long)bh * Tm + blk) * D + tid] = s / (float)(r1 - r0);
        else ksum[((long)bh * Tn + blk) * D + tid] = s;
    }
}

/* One CTA per head of KMEAN_THREADS threads: D columns x G = KMEAN_THREADS / D row groups; group g
 * sums key blocks g, g + G, ... and the groups' partials are added in order (a fixed order). */
constexpr int KMEAN_THREADS = 1024;
__global__ void __launch_bounds__(KMEAN_THREADS) kmean_kernel(const float *ksum, float *kbar, int N, int D, int blk_k,
                                                              int Tn) {
    __shared__ float part[KMEAN_THREADS];
    __shared__ float mu_sh[256];
    const int bh = blockIdx.x, d = threadIdx.x % D, G = KMEAN_THREADS / D;
    const int g = threadIdx.x / D < G ? threadIdx.x / D : Tn; /* threads past G * D (D not a power of 2) idle */
    const float *ks = ksum + (long)bh * Tn * D;
    float s = 0.f;
#pragma unroll 8 /* the loads in flight together; the sum keeps its order */
    for (int j = g; j < Tn; j += G) s += ks[(long)j * D + d];
    if (g < G) part[g * D + d] = s;
    __syncthreads();
    if (g == 0) {
        float t = 0.f;
        for (int h = 0; h < G; h++) t += part[h * D + d];
        mu_sh[d] = t / (float)N;
    }
    __syncthreads();
    const float mu = mu_sh[d];
#pragma unroll 8
    for (int j = g; j < Tn; j += G) {
        int cnt = min(N, (j + 1) * blk_k) - j * blk_k;
        kbar[((long)bh * Tn + j) * D + d] = ks[(long)j * D + d] / (float)cnt - mu;
    }
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

/* Orders by score descending, then block index ascending. */
__device__ __forceinline__ unsigned long long rank_key(float s, int j) {
    s += 0.f; /* -0 -> +0 */
    uint32_t u = __float_as_uint(s);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ((unsigned long long)u << 32) | (0xFFFFFFFFu - (uint32_t)j);
}
__device__ __forceinline__ int key_j(unsigned long long key) { return (int)(0xFFFFFFFFu - (uint32_t)key); }

/* The common case of topk_kernel (no imposed lut, no negligible list, kappa <= TOPK_WARP_MAX): one
 * warp per query-block row picks the kappa largest rank keys one at a time (each lane keeps the
 * best of its slice, the warp takes the best of the lanes, the winner's lane rescans), then writes
 * the winners ascending. The same keys, so the same set as the sort. Dynamic smem: keys [warps][Tn]. */
constexpr int TOPK_WARP_MAX = 64;
constexpr int TOPK_WARP_SMEM = 32 * 1024;
__global__ void __launch_bounds__(256) topk_warp_kernel(const float *scores, int *lut, long rows, int Tn, int kappa) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const long row = (long)blockIdx.x * (blockDim.x >> 5) + warp;
    if (row >= rows) return; /* whole warps only; nothing below synchronises the block */
    unsigned long long *keys = reinterpret_cast<unsigned long long *>(smem_raw) + (long)warp * Tn;
    const float *s = scores + row * Tn;
    unsigned long long mine = 0; /* the best key of this lane's slice j = lane, lane + 32, ... */
    for (int j = lane; j < Tn; j += 32) {
        unsigned long long k = rank_key(s[j], j);
        keys[j] = k;
        mine = k > mine ? k : mine;
    }
    for (int r = 0; r < kappa; r++) {
        unsigned long long best = mine;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            unsigned long long y = __shfl_xor_sync(0xffffffffu, best, o);
            best = y > best ? y : best;
        }
        const int jw = key_j(best); /* real keys are never 0: their low word is 0xFFFFFFFF - j */
        if ((jw & 31) == lane) {
            keys[jw] = 0; /* taken */
            mine = 0;
            for (int j = lane; j < Tn; j += 32) mine = keys[j] > mine ? keys[j] : mine;
        }
    }
    __syncwarp();
    int *lrow = lut + row * kappa, base = 0;
    for (int j0 = 0; j0 < Tn; j0 += 32) {
        const int j = j0 + lane;
        const bool taken = j < Tn && keys[j] == 0;
        const unsigned m = __ballot_sync(0xffffffffu, taken);
        if (taken) lrow[base + __popc(m & ((1u << lane) - 1u))] = j;
        base += __popc(m);
    }
}

/* Dynamic smem: keys [P] u64, crit [Tn] u8, negl [Tn] u8 (padded), scan [max(P, Tn)] int. */
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
                                                     int kappa, int n_negl, uint8_t *map, bf16 *mask) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    unsigned char *mk = smem_raw;
    const int bh = blockIdx.y, i = blockIdx.x, tid = threadIdx.x, nt = blockDim.x;
    const long row = (long)bh * Tm + i;
    for (int j = tid; j < Tn; j += nt) mk[j] = 0;
    __syncthreads();
    for (int p = tid; p < kappa; p += nt) mk[lut[row * kappa + p]] = 1;
    for (int p = tid; p < n_negl; p += nt) mk[neg[row * neg_ld + p]] = 2;
    __syncthreads();
    for (int j = tid; j < Tn; j += nt) {
        map[row * Tn + j] = mk[j];
        if (mask) mask[row * Tn + j] = __float2bfloat16_rn(mk[j] == 0 ? 1.f : 0.f);
    }
}

__device__ __forceinline__ bool map_pred(uint8_t m, int pred) { return pred == 0 ? m == 1 : pred == 1 ? m != 0 : m == 0; }

__global__ void col_count_kernel(const uint8_t *map, int Tm, int Tn, int pred, int *cnt) {
    const int bh = blockIdx.y, j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= Tn) return;
    const uint8_t *m = map + (long)bh * Tm * Tn + j;
    int c = 0;
    for (int i = 0; i < Tm; i++) c += map_pred(m[(long)i * Tn], pred);
    cnt[(long)bh * Tn + j] = c;
}

/* Dynamic smem: [Tn] int. */
__global__ void __launch_bounds__(SCAN_THREADS) col_offsets_kernel(const int *cnt, int Tn, int *off) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    int *sc = reinterpret_cast<int *>(smem_raw);
    const int bh = blockIdx.x;
    for (int j = threadIdx.x; j < Tn; j += blockDim.x) sc[j] = cnt[(long)bh * Tn + j];
    __syncthreads();
    int T = block_excl_scan(sc, Tn);
    for (int j = threadIdx.x; j < Tn; j += blockDim.x) off[(long)bh * (Tn + 1) + j] = sc[j];
    if (threadIdx.x == 0) off[(long)bh * (Tn + 1) + Tn] = T;
}

__global__ void col_fill_kernel(const uint8_t *map, int Tm, int Tn, int pred, const int *off, int *ent,
                                long ent_stride) {
    const int bh = blockIdx.y, j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= Tn) return;
    const uint8_t *m = map + (long)bh * Tm * Tn + j;
    int *e = ent + bh * ent_stride;
    int pos = off[(long)bh * (Tn + 1) + j];
    for (int i = 0; i < Tm; i++)
        if (map_pred(m[(long)i * Tn], pred)) e[pos++] = i;
}

/* Rank of each key block by list length (longest first, ties by index): O(Tn^2) per head in one
 * CTA, a few microseconds for Tn ~ 1000. Dynamic smem: [Tn] int. */
__global__ void __launch_bounds__(1024) order_kernel(const int *off, int Tn, int *order) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    int *len = reinterpret_cast<int *>(smem_raw);
    const int bh = blockIdx.x;
    const int *o = off + (long)bh * (Tn + 1);
    for (int j = threadIdx.x; j < Tn; j += blockDim.x) len[j] = o[j + 1] - o[j];
    __syncthreads();
    for (int j = threadIdx.x; j < Tn; j += blockDim.x) {
        int lj = len[j], r = 0;
        for (int i = 0; i < Tn; i++) r += len[i] > lj || (len[i] == lj && i < j);
        order[(long)bh * Tn + r] = j;
    }
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
    kmean_kernel<<<BH, KMEAN_THREADS, 0, st>>>(ksum, kbar, N, D, blk_k, Tn);
    CUDA_CHECK_LAUNCH();
}

void sla_scores_launch(const float *qbar, const float *kbar, int BH, int D, int Tm, int Tn, float *scores) {
    scores_kernel<<<dim3((Tn + 31) / 32, (Tm + 31) / 32, BH), dim3(32, 8), 0, cuda_stream()>>>(qbar, kbar, scores, D,
                                                                                               Tm, Tn);
    CUDA_CHECK_LAUNCH();
}

void sla_topk_launch(const float *scores, int BH, int Tm, int Tn, int kappa, int n_negl, int lut_given, int *lut,
                     int *neg, int neg_ld) {
    CHECK(Tn <= 8192, "SLA selection: %d key blocks exceed the GPU top-k limit of 8192", Tn);
    if (!lut_given && n_negl == 0 && kappa <= TOPK_WARP_MAX && Tn * 8 <= TOPK_WARP_SMEM) {
        const int warps = min(8, TOPK_WARP_SMEM / (Tn * 8));
        const long rows = (long)BH * Tm;
        topk_warp_kernel<<<(unsigned)((rows + warps - 1) / warps), 32 * warps, warps * Tn * 8, cuda_stream()>>>(
            scores, lut, rows, Tn, kappa);
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

void sla_select_launch(const bf16 *q, const bf16 *k, int BH, int N, int D, int blk_q, int blk_k, int Tm, int Tn,
                       int kappa, int n_negl, int lut_given, int *lut, int *neg, int neg_ld, float *qbar, float *ksum,
                       float *kbar, float *scores) {
    sla_pool_launch(q, k, BH, N, D, blk_q, blk_k, Tm, Tn, qbar, ksum, kbar);
    sla_scores_launch(qbar, kbar, BH, D, Tm, Tn, scores);
    sla_topk_launch(scores, BH, Tm, Tn, kappa, n_negl, lut_given, lut, neg, neg_ld);
}

void sla_rowmap_launch(const int *lut, const int *neg, int neg_ld, int BH, int Tm, int Tn, int kappa, int n_negl,
                       uint8_t *map, bf16 *mask) {
    const int smem = ((Tn + 15) / 16 + 1) * 16;
    rowmap_kernel<<<dim3(Tm, BH), 256, smem, cuda_stream()>>>(lut, neg, neg_ld, Tm, Tn, kappa, n_negl, map, mask);
    CUDA_CHECK_LAUNCH();
}

void sla_collist_launch(const uint8_t *map, int BH, int Tm, int Tn, int pred, int *cnt, int *off, int *ent,
                        long ent_stride) {
    cudaStream_t st = cuda_stream();
    dim3 grid((Tn + 127) / 128, BH);
    col_count_kernel<<<grid, 128, 0, st>>>(map, Tm, Tn, pred, cnt);
    CUDA_CHECK_LAUNCH();
    col_offsets_kernel<<<BH, SCAN_THREADS, ((Tn + 3) / 4 + 1) * 16, st>>>(cnt, Tn, off);
    CUDA_CHECK_LAUNCH();
    col_fill_kernel<<<grid, 128, 0, st>>>(map, Tm, Tn, pred, off, ent, ent_stride);
    CUDA_CHECK_LAUNCH();
}

void sla_order_launch(const int *off, int BH, int Tn, int *order) {
    /* padded: the compiler may read the ranks in aligned 16-byte vectors */
    order_kernel<<<BH, 1024, ((Tn + 3) / 4 + 1) * 16, cuda_stream()>>>(off, Tn, order);
    CUDA_CHECK_LAUNCH();
}
