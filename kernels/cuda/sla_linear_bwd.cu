/* kernels/cuda/sla_linear_bwd.cu — the linear branch's backward kernels (lin_bwdq, lin_bwdk) and
 * the proj gradients (lin_outer, lin_reduce); the design is described in sla_linear.cu. */
#include "sla_linear.cuh"

namespace {

constexpr int OUTER_TILES = 24; /* 64-row tiles per lin_outer chunk (N = 32760, BH = 12: 264 CTAs, 2 per SM) */
constexpr int RED_SLICES = 8; /* lin_reduce: warps per CTA, each a fixed slice of the inputs */

/* acc (this warp's part of a D x D sum) += X^T Y over the 64-row tiles tile0 .. tile0 + n - 1
 * (rows >= nrows are zero). Double-buffered in sbuf (4 tiles of 64 x (D + 8)). When with_cs,
 * threads tid < D add the column sums of X to cs. Ends with a barrier. */
template <int D, int NW>
__device__ void accum_xty(float (&acc)[DDT<D, NW>::MT][DDT<D, NW>::NT][4], const bf16 *X, const bf16 *Y, long nrows,
                          int tile0, int n, bf16 *sbuf, bool with_cs, float &cs) {
    constexpr int LD = D + 8, TL = KT * LD, NTH = NW * 32;
    using T = DDT<D, NW>;
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    const int m0 = (w % T::WR) * T::MT * 16, n0 = (w / T::WR) * T::NT * 8;
    if (n <= 0) return;
    auto load = [&](int it, int buf) {
        long r0 = (long)(tile0 + it) * KT;
        load_tile_async_u<D, KT, NTH>(sbuf + buf * 2 * TL, X, r0, nrows, tid);
        load_tile_async_u<D, KT, NTH>(sbuf + buf * 2 * TL + TL, Y, r0, nrows, tid);
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
        if (with_cs && tid < D) {
            float s = 0.f;
            for (int r = 0; r < KT; r++) s += __bfloat162float(xs[r * LD + tid]);
            cs += s;
        }
        __syncthreads();
    }
}

template <int D, int BQ>
__global__ void __launch_bounds__(BQ * 2) lin_bwdq_kernel(LinParams p) {
    constexpr int NW = BQ / 16, NTH = BQ * 2, LD = D + 8, NTD = D / 8, W = D * D + D;
    using T = DDT<D, NW>;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *R0 = reinterpret_cast<bf16 *>(smem_raw); /* H */
    bf16 *Aq = R0 + D * LD, *Ag = Aq + BQ * LD, *Ao = Ag + BQ * LD, *Whi = Ao + BQ * LD, *Wlo = Whi + D * LD;
    float *sZ = reinterpret_cast<float *>(Wlo + D * LD), *sB = sZ + D;
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, g = lane >> 2, t = lane & 3;
    const int bh = blockIdx.y, qb = blockIdx.x, q0 = qb * BQ;
    const long hoff = (long)bh * p.N * D;
    /* Every load in flight at once, in two groups: what dOl = dout W needs, then the rest. */
    load_tile_async<D>(Ag, p.dout + hoff, q0, BQ, p.N, tid, NTH);
    load_tile_async<D>(Whi, p.Wsplit, 0, D, D, tid, NTH);
    load_tile_async<D>(Wlo, p.Wsplit + D * D, 0, D, D, tid, NTH);
    cp_async_commit();
    load_tile_async<D>(Aq, p.q + hoff, q0, BQ, p.N, tid, NTH);
    load_tile_async<D>(Ao, p.ol_in + hoff, q0, BQ, p.N, tid, NTH);
    load_state<D>(p.all ? nullptr : p.cstate + ((long)bh * p.Tm + qb) * W, p.tot + (long)bh * W, R0, sZ, NTH);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();

    bf16 *aq = Aq + w * 16 * LD, *ag = Ag + w * 16 * LD;
    const int row0 = q0 + w * 16 + g, row1 = row0 + 8;
    /* dOl = dout W */
    float dol[1][NTD][4];
    zero_acc<1, NTD>(dol);
    warp_gemm3<1, NTD, false, false>(dol, ag, nullptr, LD, Whi, Wlo, LD, D, lane);
    cp_async_wait<0>();
    __syncthreads();
    /* Dl = dOl . Ol (padded rows of Ol are zero) */
    float Dl0, Dl1;
    {
        float ol[NTD][4];
        frag_load_smem<NTD>(ol, Ao + w * 16 * LD, LD, lane);
        frag_row_dot<NTD>(dol[0], ol, Dl0, Dl1);
    }
    float x[NTD][4];
    frag_load_smem<NTD>(x, aq, LD, lane);
    frag_phi<NTD>(x, p.feature);
    float i0, i1;
    row_inv_den<NTD>(x, [&](int c) { return sZ[c]; }, p.all, i0, i1);
    if (row0 >= p.N) i0 = 0.f; /* padded rows send nothing */
    if (row1 >= p.N) i1 = 0.f;
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
        dd_store_global<D, NW>(acc, arow, R0); /* staged where H_i was */
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
    const bf16 *abar_row = p.all ? nullptr : p.cstate + ((long)bh * sla_tn_pad(p.Tn) + jb) * W;
    load_state<D>(abar_row, p.tot + (long)bh * W, R0, sBb, NTH);
    cp_async_commit();
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

template <int D>
__global__ void __launch_bounds__(256, 2) lin_outer_kernel(const bf16 *X, const bf16 *Y, long N, float *part,
                                                       float *colsum, int nchunk) {
    constexpr int NW = 8;
    using T = DDT<D, NW>;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *R0 = reinterpret_cast<bf16 *>(smem_raw);
    const int bh = blockIdx.y, ch = blockIdx.x, tid = threadIdx.x, lane = tid & 31, w = tid >> 5, g = lane >> 2,
              t = lane & 3;
    const long hoff = (long)bh * N * D;
    const int ntiles = (int)((N + KT - 1) / KT);
    float acc[T::MT][T::NT][4];
    zero_acc<T::MT, T::NT>(acc);
    float cs = 0.f;
    accum_xty<D, NW>(acc, X + hoff, Y + hoff, N, ch * OUTER_TILES, min(OUTER_TILES, ntiles - ch * OUTER_TILES), R0,
                     colsum != nullptr, cs);
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

/* out [G, E] = sum over c < count of in [G, count, E]: a CTA takes 32 consecutive e; warp s sums
 * the inputs c in its fixed slice in order, then warp 0 adds the slices in order (reproducible). */
template <typename TI> __device__ __forceinline__ float to_f32(TI x);
template <> __device__ __forceinline__ float to_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ float to_f32<bf16>(bf16 x) { return __bfloat162float(x); }

template <typename TI>
__global__ void __launch_bounds__(32 * RED_SLICES) lin_reduce_kernel(const TI *in, float *out, int count, long E) {
    __shared__ float part[RED_SLICES][32];
    const int lane = threadIdx.x & 31, sl = threadIdx.x >> 5, gi = blockIdx.y;
    const long e = (long)blockIdx.x * 32 + lane;
    const int c0 = (int)((long)count * sl / RED_SLICES), c1 = (int)((long)count * (sl + 1) / RED_SLICES);
    float s = 0.f;
    if (e < E) {
        const TI *src = in + (long)gi * count * E + e;
#pragma unroll 8
        for (int c = c0; c < c1; c++) s += to_f32(src[(long)c * E]);
    }
    part[sl][lane] = s;
    __syncthreads();
    if (sl == 0 && e < E) {
        float t = 0.f;
#pragma unroll
        for (int i = 0; i < RED_SLICES; i++) t += part[i][lane];
        out[(long)gi * E + e] = t;
    }
}

template <int D, int BQ> void bwdq_launch(const LinParams &p, int BH) {
    constexpr int LD = D + 8, smem = (3 * D * LD + 3 * BQ * LD) * 2 + D * 4 + (BQ / 16) * D * 4;
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

} // namespace

int lin_outer_nchunk(int N) { return (N + KT * OUTER_TILES - 1) / (KT * OUTER_TILES); }

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
    lin_reduce_kernel<float><<<dim3((unsigned)((E + 31) / 32), G), 32 * RED_SLICES, 0, cuda_stream()>>>(in, out, count, E);
    CUDA_CHECK_LAUNCH();
}

void lin_reduce_bf16_launch(const bf16 *in, float *out, int G, int count, long E) {
    lin_reduce_kernel<bf16><<<dim3((unsigned)((E + 31) / 32), G), 32 * RED_SLICES, 0, cuda_stream()>>>(in, out, count, E);
    CUDA_CHECK_LAUNCH();
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
