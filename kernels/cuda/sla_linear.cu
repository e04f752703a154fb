/* kernels/cuda/sla_linear.cu, sla_linear_bwd.cu — SLA's linear branch on the GPU (SLA.md sections 3-5): feature maps,
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
 * lin_state_kernel  per key block: hs_j (bf16 row of W) and, when asked, the selection's key block
 *                   sum ksum_j of the raw K (so the pooling pass need not read K again);
 *                   persistent, three stages; the forward's proj weight split rides along.
 * lin_fwd_kernel    per query block: Ol = phi(Q) H_i / den (0 where den <= 0 or the block has no
 *                   linear key block); ol = Ol; o = Ol W^T + b (the sparse kernel adds Os after).
 * lin_bwdq_kernel   per query block: dOl = dout W, Dl = dOl . Ol, Q^ = phi(Q) / den,
 *                   dq = through phi of (dOl H_i^T - Dl Z_i) / den; the row [A_i | beta_i].
 * lin_bwdk_kernel   per 64-key tile: [Abar_j | betabar_j]; dk = through phi of
 *                   (V Abar^T - betabar), dv = phi(K) Abar (the sparse kernel adds its part after).
 * lin_outer_kernel  per chunk of 1536 rows: X^T Y and column sums of X (proj gradients);
 *                   lin_reduce_kernel sums the chunks in a fixed order.
 *
 * Latency: every kernel issues all its tile, state and W loads as cp.async at once (no load loop
 * waits on a round trip per iteration); lin_state is a persistent grid that loads the next two key
 * blocks while it works on this one. */
#include <cublas_v2.h>

#include "sla_linear.cuh"

namespace {

/* The proj weight split once per call: wsplit [2, D, D] bf16 = hi, lo of W [out][in] (or of W^T);
 * element i of the D * D. */
__device__ __forceinline__ void w_split_one(const float *W, bf16 *ws, int D, int transposed, int i) {
    const int n = D * D;
    float h, l;
    split_bf16(W[transposed ? (i % D) * D + i / D : i], h, l);
    ws[i] = __float2bfloat16_rn(h), ws[n + i] = __float2bfloat16_rn(l);
}
__global__ void w_split_kernel(const float *W, bf16 *ws, int D, int transposed) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < D * D) w_split_one(W, ws, D, transposed, i);
}

template <int D, int BQ>
__global__ void __launch_bounds__(BQ * 2) lin_fwd_kernel(LinParams p) {
    constexpr int NTH = BQ * 2, LD = D + 8, NTD = D / 8, W = D * D + D;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *R0 = reinterpret_cast<bf16 *>(smem_raw); /* H, then W lo */
    bf16 *Whi = R0 + D * LD;
    bf16 *Ahi = Whi + D * LD; /* Q, then phi(Q), then Ol (bf16) */
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
    /* Everything but W lo in flight at once; W lo replaces H once every warp is done with it. */
    load_tile_async<D>(Ahi, p.q + hoff, q0, BQ, p.N, tid, NTH);
    load_tile_async<D>(Whi, p.Wsplit, 0, D, D, tid, NTH);
    load_state<D>(p.all ? nullptr : p.cstate + ((long)bh * p.Tm + qb) * W, p.tot + (long)bh * W, R0, sZ, NTH);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();

    bf16 *aw = Ahi + w * 16 * LD;
    float x[NTD][4];
    frag_load_smem<NTD>(x, aw, LD, lane);
    frag_phi<NTD>(x, p.feature);
    float i0, i1;
    row_inv_den<NTD>(x, [&](int c) { return sZ[c]; }, p.all, i0, i1);
    frag_store_split<NTD>(x, aw, nullptr, LD, lane);
    __syncwarp();
    float num[1][NTD][4];
    zero_acc<1, NTD>(num);
    warp_gemm<1, NTD, false, false>(num, aw, LD, R0, LD, D, lane);
#pragma unroll
    for (int j = 0; j < NTD; j++) num[0][j][0] *= i0, num[0][j][1] *= i0, num[0][j][2] *= i1, num[0][j][3] *= i1;
    frag_store_global<NTD>(num[0], p.ol + hoff, D, q0 + w * 16, p.N, lane);
    __syncthreads(); /* everyone is done with H */
    load_tile_async<D>(R0, p.Wsplit + D * D, 0, D, D, tid, NTH);
    cp_async_commit();
    frag_store_split<NTD>(num[0], aw, nullptr, LD, lane); /* Ol as saved: bf16 (the warp's own rows) */
    __syncwarp();
    /* o = Ol (W hi + W lo)^T + b: the hi product while W lo arrives */
    float pr[1][NTD][4];
    zero_acc<1, NTD>(pr);
    warp_gemm<1, NTD, false, true>(pr, aw, LD, Whi, LD, D, lane);
    cp_async_wait<0>();
    __syncthreads();
    warp_gemm<1, NTD, false, true>(pr, aw, LD, R0, LD, D, lane);
#pragma unroll
    for (int j = 0; j < NTD; j++) {
        float b0 = p.b[j * 8 + 2 * t], b1 = p.b[j * 8 + 2 * t + 1];
        pr[0][j][0] += b0, pr[0][j][1] += b1, pr[0][j][2] += b0, pr[0][j][3] += b1;
    }
    frag_store_global<NTD>(pr[0], p.o + hoff, D, q0 + w * 16, p.N, lane);
}

/* lin_state_kernel's side job: the proj weight split (w_split_one) when W is not null, so that the
 * forward needs no launch for it. */
struct WSplitArgs {
    const float *W;
    bf16 *ws;
    int D, transposed;
};

/* Per key block j: the row [phi(K_j)^T V_j | colsum phi(K_j)] (bf16) of hs [BH, Tnp, W]. A
 * persistent grid: CTA c takes the blocks c, c + gridDim.x, ... of the BH * Tn through
 * STATE_STAGES shared stages, loading two blocks ahead while it works on this one. */
constexpr int STATE_STAGES = 3; /* key blocks in shared memory: this one and two loading */
template <int D, int BK>
__global__ void __launch_bounds__(256, BK == 64 ? 2 : 1) lin_state_kernel(const bf16 *k, const bf16 *v, bf16 *hs,
                                                                           float *ksum, int N, int Tn, int Tnp,
                                                                           int items, int feature, WSplitArgs wsa) {
    constexpr int LD = D + 8, EPT = D / 4, NW = 8, W = D * D + D, STAGE = 2 * BK * LD;
    using T = DDT<D, NW>;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *sbase = reinterpret_cast<bf16 *>(smem_raw);
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    const int quad = tid >> 2, ql = tid & 3;
    const int m0 = (w % T::WR) * T::MT * 16, n0 = (w / T::WR) * T::NT * 8;
    auto load = [&](int it, bf16 *sK) {
        const long r0 = (long)(it % Tn) * BK, hoff = (long)(it / Tn) * N * D;
        load_tile_async<D>(sK, k + hoff, r0, BK, N, tid, 256);
        load_tile_async<D>(sK + BK * LD, v + hoff, r0, BK, N, tid, 256);
    };
    const int G = gridDim.x;
    for (int s = 0; s < STATE_STAGES - 1; s++) {
        if ((int)blockIdx.x + s * G < items) load(blockIdx.x + s * G, sbase + s * STAGE);
        cp_async_commit();
    }
    if (wsa.W)
        for (int i = blockIdx.x * 256 + tid; i < wsa.D * wsa.D; i += G * 256) w_split_one(wsa.W, wsa.ws, wsa.D, wsa.transposed, i);
    for (int it = blockIdx.x, n = 0; it < items; it += G, n++) {
        const int ahead = it + (STATE_STAGES - 1) * G; /* into the stage block it - G used */
        if (ahead < items) load(ahead, sbase + ((n + STATE_STAGES - 1) % STATE_STAGES) * STAGE);
        cp_async_commit();
        cp_async_wait<STATE_STAGES - 1>();
        __syncthreads();
        bf16 *sK = sbase + (n % STATE_STAGES) * STAGE, *sV = sK + BK * LD;
        const long r0 = (long)(it % Tn) * BK;
        if (ksum) { /* the selection's sums of the raw K (rows past N are zero) */
            if (tid < D) {
                float s = 0.f;
#pragma unroll 16
                for (int r = 0; r < BK; r++) s += __bfloat162float(sK[r * LD + tid]);
                ksum[(long)it * D + tid] = s;
            }
            __syncthreads();
        }
        /* phi in place, a quad per row; rows past N become 0 */
#pragma unroll 1
        for (int rb = 0; rb < BK; rb += 64) {
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
                m = quad_max(m) * SLA_LOG2E;
#pragma unroll
                for (int c = 0; c < EPT; c++) s += (x[c] = softmax_exp(x[c], m)); /* as frag_softmax_exp */
                s = 1.f / quad_sum(s);
#pragma unroll
                for (int c = 0; c < EPT; c++) x[c] *= s;
            } else if (feature == 1) {
#pragma unroll
                for (int c = 0; c < EPT; c++) x[c] = elu_plus_one(x[c]);
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
        bf16 *out = hs + ((long)(it / Tn) * Tnp + it % Tn) * W; /* it = bh * Tn + j */
        if (tid < D) {
            float s = 0.f;
#pragma unroll 16
            for (int r = 0; r < BK; r++) s += __bfloat162float(sK[r * LD + tid]);
            out[D * D + tid] = __float2bfloat16_rn(s);
        }
        float acc[T::MT][T::NT][4];
        zero_acc<T::MT, T::NT>(acc);
        warp_gemm<T::MT, T::NT, true, false>(acc, sK + m0, LD, sV + n0, LD, BK, lane);
        dd_store_global<D, NW>(acc, out, sK); /* staged where K and V were (D <= 2 BK rows) */
        __syncthreads(); /* this stage is free for the load STATE_STAGES - 1 blocks ahead */
    }
}

template <int D, int BQ> void fwd_launch(const LinParams &p, int BH) {
    constexpr int LD = D + 8, smem = (2 * D * LD + BQ * LD) * 2 + D * 4; /* H | W hi | Q, sZ */
    static bool init = false;
    if (!init) sla_smem_limit(lin_fwd_kernel<D, BQ>, smem), init = true;
    lin_fwd_kernel<D, BQ><<<dim3(p.Tm, BH), BQ * 2, smem, cuda_stream()>>>(p);
    CUDA_CHECK_LAUNCH();
}

/* The persistent grid of a kernel: as many CTAs as fit on the device at once (at most `items`). */
template <typename K> int resident_grid(K kernel, int threads, int smem, long items) {
    int dev, sms, per;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per, kernel, threads, smem));
    long n = (long)sms * (per > 0 ? per : 1);
    return (int)(n < items ? n : items);
}

template <int D, int BK>
void state_launch(const bf16 *k, const bf16 *v, bf16 *hs, float *ksum, int BH, int N, int Tn, int feature,
                  WSplitArgs wsa) {
    constexpr int smem = STATE_STAGES * 2 * BK * (D + 8) * 2; /* stages of K, V */
    static int grid = 0;
    if (!grid) {
        sla_smem_limit(lin_state_kernel<D, BK>, smem);
        grid = resident_grid(lin_state_kernel<D, BK>, 256, smem, 1L << 30);
    }
    const int items = BH * Tn;
    lin_state_kernel<D, BK><<<items < grid ? items : grid, 256, smem, cuda_stream()>>>(k, v, hs, ksum, N, Tn,
                                                                                       sla_tn_pad(Tn), items, feature,
                                                                                       wsa);
    CUDA_CHECK_LAUNCH();
}

cublasHandle_t g_cublas = nullptr;

void cublas_check(cublasStatus_t st, const char *what) {
    CHECK(st == CUBLAS_STATUS_SUCCESS, "cuBLAS: %s failed with status %d", what, (int)st);
}

} // namespace

void lin_w_split_launch(const float *W, bf16 *wsplit, int D, int transposed) {
    w_split_kernel<<<(D * D + 255) / 256, 256, 0, cuda_stream()>>>(W, wsplit, D, transposed);
    CUDA_CHECK_LAUNCH();
}

void lin_state_launch(const bf16 *k, const bf16 *v, bf16 *hs, float *ksum, int BH, int N, int D, int blk_k, int Tn,
                      int feature, const float *proj_w, bf16 *wsplit, int w_transposed) {
    CHECK(blk_k == 64 || blk_k == 128, "SLA linear branch: key block %d (64 or 128)", blk_k);
    const WSplitArgs wsa = {proj_w, wsplit, D, w_transposed};
    if (D == 128 && blk_k == 64) state_launch<128, 64>(k, v, hs, ksum, BH, N, Tn, feature, wsa);
    else if (D == 128) state_launch<128, 128>(k, v, hs, ksum, BH, N, Tn, feature, wsa);
    else if (D == 64 && blk_k == 64) state_launch<64, 64>(k, v, hs, ksum, BH, N, Tn, feature, wsa);
    else if (D == 64) state_launch<64, 128>(k, v, hs, ksum, BH, N, Tn, feature, wsa);
    else CHECK(0, "SLA linear branch: unsupported head dim %d", D);
}

void lin_mask_gemm(const bf16 *rows, const bf16 *mask, bf16 *out, int BH, int Tm, int Tn, long W, int transposed) {
    if (!g_cublas) cublas_check(cublasCreate(&g_cublas), "cublasCreate");
    cublas_check(cublasSetStream(g_cublas, cuda_stream()), "cublasSetStream");
    const float one = 1.f, zero = 0.f;
    const int Tnp = sla_tn_pad(Tn);
    if (!transposed) { /* out [Tm, W] = mask [Tm, Tnp] rows [Tnp, W] */
        cublas_check(cublasGemmStridedBatchedEx(g_cublas, CUBLAS_OP_N, CUBLAS_OP_N, (int)W, Tm, Tnp, &one, rows,
                                                CUDA_R_16BF, (int)W, (long long)Tnp * W, mask, CUDA_R_16BF, Tnp,
                                                (long long)Tm * Tnp, &zero, out, CUDA_R_16BF, (int)W,
                                                (long long)Tm * W, BH, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                     "mask GEMM");
    } else { /* out [Tnp, W] = mask^T [Tnp, Tm] rows [Tm, W] */
        cublas_check(cublasGemmStridedBatchedEx(g_cublas, CUBLAS_OP_N, CUBLAS_OP_T, (int)W, Tnp, Tm, &one, rows,
                                                CUDA_R_16BF, (int)W, (long long)Tm * W, mask, CUDA_R_16BF, Tnp,
                                                (long long)Tm * Tnp, &zero, out, CUDA_R_16BF, (int)W,
                                                (long long)Tnp * W, BH, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                     "transposed mask GEMM");
    }
}

void lin_forward_launch(const LinParams &p, int BH, int D, int bq) {
    if (D == 128 && bq == 128) fwd_launch<128, 128>(p, BH);
    else if (D == 128 && bq == 64) fwd_launch<128, 64>(p, BH);
    else if (D == 64 && bq == 128) fwd_launch<64, 128>(p, BH);
    else if (D == 64 && bq == 64) fwd_launch<64, 64>(p, BH);
    else CHECK(0, "SLA linear branch: unsupported head dim %d / query block %d", D, bq);
}
