/* kernels/cuda/sla_mma.cuh — warp-level building blocks of the attention kernels: bf16 tensor-core
 * MMA (m16n8k16, fp32 accumulate), ldmatrix fragment loads, cp.async tile copies, hi/lo splitting
 * of fp32 values into two bf16 terms (x ~ hi + lo to about 2^-16 relative), fragment-layout row
 * reductions and the three feature maps. Device code only.
 *
 * Fragment layout (PTX m16n8k16): g = lane / 4, t = lane % 4. An accumulator c[4] of a 16x8 tile
 * holds (row g, cols 2t, 2t+1) in c[0], c[1] and (row g + 8, same cols) in c[2], c[3]. Shared-memory
 * tiles are row-major bf16 with a row stride of (cols + 8) elements, so ldmatrix rows of one 8x8
 * matrix fall in different banks. */
#ifndef SLA_MMA_CUH
#define SLA_MMA_CUH

#include <cuda_bf16.h>
#include <stdint.h>

typedef __nv_bfloat16 bf16;

#define SLA_LOG2E 1.4426950408889634f
#define SLA_LN2 0.6931471805599453f

__device__ __forceinline__ uint32_t smem_u32(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}

__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}

__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Two floats to a bf16 pair; `lo` lands in the low half (the lower column index). */
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

__device__ __forceinline__ float2 unpack_bf16(uint32_t u) {
    __nv_bfloat162 v = *reinterpret_cast<__nv_bfloat162 *>(&u);
    return __bfloat1622float2(v);
}

/* x ~ hi + lo, both bf16. */
__device__ __forceinline__ void split_bf16(float x, float &hi, float &lo) {
    hi = __bfloat162float(__float2bfloat16_rn(x));
    lo = x - hi;
}

__device__ __forceinline__ float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* ---- cp.async -------------------------------------------------------------------------------- */

/* 16 bytes global -> shared; zero-filled when !valid (src is then not read but must be mapped). */
__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, bool valid) {
    int n = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(smem)), "l"(gmem), "r"(n));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

/* Rows row0 .. row0 + rows - 1 of a [nrows, D] bf16 array at base (row stride D) into a shared
 * tile (row stride D + 8); rows at or past nrows are zero-filled (and never addressed). Called by
 * all `nthreads` threads of the CTA. */
template <int D>
__device__ __forceinline__ void load_tile_async(bf16 *s, const bf16 *base, long row0, int rows, long nrows, int tid,
                                                int nthreads) {
    constexpr int CPR = D / 8; /* 16-byte chunks per row */
    for (int c = tid; c < rows * CPR; c += nthreads) {
        int r = c / CPR, k = (c % CPR) * 8;
        bool ok = row0 + r < nrows;
        cp_async16(s + r * (D + 8) + k, ok ? base + (row0 + r) * D + k : base, ok);
    }
}

/* load_tile_async with the tile's rows and the CTA's threads known at compile time: no loop
 * bookkeeping, every thread issues exactly ROWS * D / 8 / NTH copies. */
template <int D, int ROWS, int NTH>
__device__ __forceinline__ void load_tile_async_u(bf16 *s, const bf16 *base, long row0, long nrows, int tid) {
    constexpr int CPR = D / 8, STEP = NTH / CPR; /* rows covered per pass */
    static_assert(NTH % CPR == 0 && ROWS % STEP == 0, "tile chunks must split evenly over the threads");
    const int r = tid / CPR, k = (tid % CPR) * 8;
    const long lim = nrows - row0 - r; /* pass i is in range when i * STEP < lim */
    const bf16 *src = base + (row0 + r) * D + k;
    bf16 *dst = s + r * (D + 8) + k;
#pragma unroll
    for (int i = 0; i < ROWS / STEP; i++) {
        const bool ok = i * STEP < lim;
        cp_async16(dst + i * STEP * (D + 8), ok ? src + (long)i * STEP * D : base, ok);
    }
}

/* 4 bytes global -> shared; zero-filled when !valid (src is then not read but must be mapped). */
__device__ __forceinline__ void cp_async4(void *smem, const void *gmem, bool valid) {
    int n = valid ? 4 : 0;
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_u32(smem)), "l"(gmem), "r"(n));
}

/* ---- warp GEMM on shared-memory operands -----------------------------------------------------
 * acc[MT][NT] (a (16 MT) x (8 NT) tile) += A * B over k in [0, K), K a multiple of 16, NT even.
 * A element (m, k) sits at A[m * lda + k], or at A[k * lda + m] when AT; B element (k, n) at
 * B[k * ldb + n], or at B[n * ldb + k] when BT. A and B point at the warp tile's origin. */
template <int MT, int NT, bool AT, bool BT>
__device__ __forceinline__ void warp_gemm(float (&acc)[MT][NT][4], const bf16 *A, int lda, const bf16 *B, int ldb,
                                          int K, int lane) {
    static_assert(NT % 2 == 0, "NT must be even");
    for (int k0 = 0; k0 < K; k0 += 16) {
        uint32_t a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            if (!AT) {
                ldsm_x4(a[mt], A + (mt * 16 + (lane & 15)) * lda + k0 + (lane >> 4) * 8);
            } else {
                ldsm_x4_t(a[mt], A + (k0 + (lane & 7) + (lane >> 4) * 8) * lda + mt * 16 + ((lane >> 3) & 1) * 8);
            }
        }
#pragma unroll
        for (int np = 0; np < NT / 2; np++) {
            uint32_t b[4];
            if (BT) {
                ldsm_x4(b, B + (np * 16 + (lane & 7) + (lane >> 4) * 8) * ldb + k0 + ((lane >> 3) & 1) * 8);
            } else {
                ldsm_x4_t(b, B + (k0 + (lane & 7) + ((lane >> 3) & 1) * 8) * ldb + np * 16 + (lane >> 4) * 8);
            }
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                mma16816(acc[mt][2 * np], a[mt], b[0], b[1]);
                mma16816(acc[mt][2 * np + 1], a[mt], b[2], b[3]);
            }
        }
    }
}

/* Fragment loads of warp_gemm, one k-step. */
template <int MT, bool AT>
__device__ __forceinline__ void load_a_frags(uint32_t (&a)[MT][4], const bf16 *A, int lda, int k0, int lane) {
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        if (!AT) ldsm_x4(a[mt], A + (mt * 16 + (lane & 15)) * lda + k0 + (lane >> 4) * 8);
        else ldsm_x4_t(a[mt], A + (k0 + (lane & 7) + (lane >> 4) * 8) * lda + mt * 16 + ((lane >> 3) & 1) * 8);
    }
}
template <bool BT>
__device__ __forceinline__ void load_b_frags(uint32_t (&b)[4], const bf16 *B, int ldb, int k0, int np, int lane) {
    if (BT) ldsm_x4(b, B + (np * 16 + (lane & 7) + (lane >> 4) * 8) * ldb + k0 + ((lane >> 3) & 1) * 8);
    else ldsm_x4_t(b, B + (k0 + (lane & 7) + ((lane >> 3) & 1) * 8) * ldb + np * 16 + (lane >> 4) * 8);
}

/* acc += (Ahi + Alo)(Bhi + Blo) without the lo*lo term; Alo may equal null (A exact in bf16).
 * Not on hot paths: the k loop stays rolled to keep registers low. */
template <int MT, int NT, bool AT, bool BT>
__device__ __forceinline__ void warp_gemm3(float (&acc)[MT][NT][4], const bf16 *Ahi, const bf16 *Alo, int lda,
                                           const bf16 *Bhi, const bf16 *Blo, int ldb, int K, int lane) {
#pragma unroll 1
    for (int k0 = 0; k0 < K; k0 += 16) {
        uint32_t ah[MT][4], al[MT][4];
        load_a_frags<MT, AT>(ah, Ahi, lda, k0, lane);
        if (Alo) load_a_frags<MT, AT>(al, Alo, lda, k0, lane);
#pragma unroll
        for (int np = 0; np < NT / 2; np++) {
            uint32_t bh[4], bl[4];
            load_b_frags<BT>(bh, Bhi, ldb, k0, np, lane);
            load_b_frags<BT>(bl, Blo, ldb, k0, np, lane);
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                mma16816(acc[mt][2 * np], ah[mt], bh[0], bh[1]);
                mma16816(acc[mt][2 * np + 1], ah[mt], bh[2], bh[3]);
                mma16816(acc[mt][2 * np], ah[mt], bl[0], bl[1]);
                mma16816(acc[mt][2 * np + 1], ah[mt], bl[2], bl[3]);
                if (Alo) {
                    mma16816(acc[mt][2 * np], al[mt], bh[0], bh[1]);
                    mma16816(acc[mt][2 * np + 1], al[mt], bh[2], bh[3]);
                }
            }
        }
    }
}

template <int MT, int NT> __device__ __forceinline__ void zero_acc(float (&acc)[MT][NT][4]) {
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.f;
}

/* ---- row-wise work on a warp's 16 x (8 NT) fragment tile (each quad holds whole rows) ------- */

__device__ __forceinline__ float quad_sum(float x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    x += __shfl_xor_sync(0xffffffffu, x, 2);
    return x;
}
__device__ __forceinline__ float quad_max(float x) {
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
    return x;
}

/* Row sums of x (rows g and g + 8). */
template <int NT> __device__ __forceinline__ void frag_row_sum(const float (&x)[NT][4], float &s0, float &s1) {
    s0 = 0.f, s1 = 0.f;
#pragma unroll
    for (int n = 0; n < NT; n++) s0 += x[n][0] + x[n][1], s1 += x[n][2] + x[n][3];
    s0 = quad_sum(s0), s1 = quad_sum(s1);
}

/* Row dot products of x and y. */
template <int NT>
__device__ __forceinline__ void frag_row_dot(const float (&x)[NT][4], const float (&y)[NT][4], float &s0, float &s1) {
    s0 = 0.f, s1 = 0.f;
#pragma unroll
    for (int n = 0; n < NT; n++) s0 += x[n][0] * y[n][0] + x[n][1] * y[n][1], s1 += x[n][2] * y[n][2] + x[n][3] * y[n][3];
    s0 = quad_sum(s0), s1 = quad_sum(s1);
}

/* The feature maps' elementwise pieces, one expression each for every kernel that applies phi
 * (frag_phi, the fused forward's frag_phi_over_den, lin_state_kernel), so that the forward and the
 * backward's recomputation agree to the bit. exp is the hardware ex2 (denormal results flushed to
 * 0). softmax_exp(x, m * log2e) = exp(x - m), one fmaf and ex2 (relative error about |m| 2^-24). */
__device__ __forceinline__ float softmax_exp(float x, float m_log2e) { return fast_exp2(fmaf(x, SLA_LOG2E, -m_log2e)); }
__device__ __forceinline__ float elu_plus_one(float x) { return x > 0.f ? x + 1.f : fast_exp2(x * SLA_LOG2E); }

/* x <- exp(x - row max), the softmax feature map before its division by the row sum. */
template <int NT> __device__ __forceinline__ void frag_softmax_exp(float (&x)[NT][4]) {
    float m0 = -INFINITY, m1 = -INFINITY;
#pragma unroll
    for (int n = 0; n < NT; n++) m0 = fmaxf(m0, fmaxf(x[n][0], x[n][1])), m1 = fmaxf(m1, fmaxf(x[n][2], x[n][3]));
    m0 = quad_max(m0) * SLA_LOG2E, m1 = quad_max(m1) * SLA_LOG2E;
#pragma unroll
    for (int n = 0; n < NT; n++) {
        x[n][0] = softmax_exp(x[n][0], m0), x[n][1] = softmax_exp(x[n][1], m0);
        x[n][2] = softmax_exp(x[n][2], m1), x[n][3] = softmax_exp(x[n][3], m1);
    }
}

/* x <- phi(x) row-wise. feature: 0 softmax over the row, 1 elu(x) + 1, 2 relu. */
template <int NT> __device__ __forceinline__ void frag_phi(float (&x)[NT][4], int feature) {
    if (feature == 0) {
        frag_softmax_exp<NT>(x);
        float s0, s1;
        frag_row_sum<NT>(x, s0, s1);
        float i0 = 1.f / s0, i1 = 1.f / s1;
#pragma unroll
        for (int n = 0; n < NT; n++) x[n][0] *= i0, x[n][1] *= i0, x[n][2] *= i1, x[n][3] *= i1;
    } else if (feature == 1) {
#pragma unroll
        for (int n = 0; n < NT; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) x[n][e] = elu_plus_one(x[n][e]);
    } else {
#pragma unroll
        for (int n = 0; n < NT; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) x[n][e] = fmaxf(x[n][e], 0.f);
    }
}

/* Row denominators phi . Z (+ 1e-5 when all) of a warp's 16 rows from fp32 phi fragments; z(c)
 * gives Z's column c as a float. Returns 1/den, or 0 for rows that send nothing (den <= 0). */
template <int NT, typename ZF>
__device__ __forceinline__ void row_inv_den(const float (&x)[NT][4], ZF z, int all, float &i0, float &i1) {
    const int t = threadIdx.x & 3;
    float d0 = 0.f, d1 = 0.f;
#pragma unroll
    for (int n = 0; n < NT; n++) {
        const float z0 = z(n * 8 + 2 * t), z1 = z(n * 8 + 2 * t + 1);
        d0 += x[n][0] * z0 + x[n][1] * z1, d1 += x[n][2] * z0 + x[n][3] * z1;
    }
    d0 = quad_sum(d0), d1 = quad_sum(d1);
    if (all) d0 += 1e-5f, d1 += 1e-5f;
    i0 = d0 > 0.f ? 1.f / d0 : 0.f, i1 = d1 > 0.f ? 1.f / d1 : 0.f;
}

/* d <- dLoss/dx given d = dLoss/dphi and phi = phi(x). elu+1: x > 0 exactly when phi > 1 (and
 * where x + 1 rounds to 1 both branches give dphi); relu: x > 0 exactly when phi > 0. */
template <int NT>
__device__ __forceinline__ void frag_phi_backward(float (&d)[NT][4], const float (&phi)[NT][4], int feature) {
    if (feature == 0) {
        float s0, s1;
        frag_row_dot<NT>(d, phi, s0, s1);
#pragma unroll
        for (int n = 0; n < NT; n++) {
            d[n][0] = phi[n][0] * (d[n][0] - s0), d[n][1] = phi[n][1] * (d[n][1] - s0);
            d[n][2] = phi[n][2] * (d[n][2] - s1), d[n][3] = phi[n][3] * (d[n][3] - s1);
        }
    } else if (feature == 1) {
#pragma unroll
        for (int n = 0; n < NT; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) d[n][e] *= fminf(phi[n][e], 1.f);
    } else {
#pragma unroll
        for (int n = 0; n < NT; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) d[n][e] = phi[n][e] > 0.f ? d[n][e] : 0.f;
    }
}

/* Fragment tile <-> shared / global bf16 tiles (row stride ld). Rows are the warp's 16 rows. */
template <int NT> __device__ __forceinline__ void frag_load_smem(float (&x)[NT][4], const bf16 *s, int ld, int lane) {
    int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int n = 0; n < NT; n++) {
        float2 a = unpack_bf16(*reinterpret_cast<const uint32_t *>(s + g * ld + n * 8 + 2 * t));
        float2 b = unpack_bf16(*reinterpret_cast<const uint32_t *>(s + (g + 8) * ld + n * 8 + 2 * t));
        x[n][0] = a.x, x[n][1] = a.y, x[n][2] = b.x, x[n][3] = b.y;
    }
}

/* Writes hi (and lo when lo != nullptr) of x at the fragment positions. */
template <int NT>
__device__ __forceinline__ void frag_store_split(const float (&x)[NT][4], bf16 *hi, bf16 *lo, int ld, int lane) {
    int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int n = 0; n < NT; n++) {
        float h[4], l[4];
#pragma unroll
        for (int e = 0; e < 4; e++) split_bf16(x[n][e], h[e], l[e]);
        *reinterpret_cast<uint32_t *>(hi + g * ld + n * 8 + 2 * t) = pack_bf16(h[0], h[1]);
        *reinterpret_cast<uint32_t *>(hi + (g + 8) * ld + n * 8 + 2 * t) = pack_bf16(h[2], h[3]);
        if (lo) {
            *reinterpret_cast<uint32_t *>(lo + g * ld + n * 8 + 2 * t) = pack_bf16(l[0], l[1]);
            *reinterpret_cast<uint32_t *>(lo + (g + 8) * ld + n * 8 + 2 * t) = pack_bf16(l[2], l[3]);
        }
    }
}

/* Global rows r0 (lane's row g) and r0 + 8 of a [*, ld] bf16 array; rows >= nrows skipped. */
template <int NT>
__device__ __forceinline__ void frag_store_global(const float (&x)[NT][4], bf16 *gm, int ld, int row0, int nrows,
                                                  int lane) {
    int g = lane >> 2, t = lane & 3;
    int r0 = row0 + g, r1 = r0 + 8;
#pragma unroll
    for (int n = 0; n < NT; n++) {
        if (r0 < nrows) *reinterpret_cast<uint32_t *>(gm + (long)r0 * ld + n * 8 + 2 * t) = pack_bf16(x[n][0], x[n][1]);
        if (r1 < nrows) *reinterpret_cast<uint32_t *>(gm + (long)r1 * ld + n * 8 + 2 * t) = pack_bf16(x[n][2], x[n][3]);
    }
}

/* gm[r][c] = x + (add ? gm[r][c] : 0), pair by pair (no second fragment array). */
template <int NT>
__device__ __forceinline__ void frag_store_global_add(const float (&x)[NT][4], float scale, bf16 *gm, int ld, int row0,
                                                      int nrows, int add, int lane) {
    int g = lane >> 2, t = lane & 3;
    int r0 = row0 + g, r1 = r0 + 8;
#pragma unroll
    for (int n = 0; n < NT; n++) {
        if (r0 < nrows) {
            uint32_t *ptr = reinterpret_cast<uint32_t *>(gm + (long)r0 * ld + n * 8 + 2 * t);
            float2 a = add ? unpack_bf16(*ptr) : make_float2(0.f, 0.f);
            *ptr = pack_bf16(x[n][0] * scale + a.x, x[n][1] * scale + a.y);
        }
        if (r1 < nrows) {
            uint32_t *ptr = reinterpret_cast<uint32_t *>(gm + (long)r1 * ld + n * 8 + 2 * t);
            float2 a = add ? unpack_bf16(*ptr) : make_float2(0.f, 0.f);
            *ptr = pack_bf16(x[n][2] * scale + a.x, x[n][3] * scale + a.y);
        }
    }
}

template <int NT>
__device__ __forceinline__ void frag_load_global(float (&x)[NT][4], const bf16 *gm, int ld, int row0, int nrows,
                                                 int lane) {
    int g = lane >> 2, t = lane & 3;
    int r0 = row0 + g, r1 = r0 + 8;
#pragma unroll
    for (int n = 0; n < NT; n++) {
        float2 a = make_float2(0.f, 0.f), b = make_float2(0.f, 0.f);
        if (r0 < nrows) a = unpack_bf16(*reinterpret_cast<const uint32_t *>(gm + (long)r0 * ld + n * 8 + 2 * t));
        if (r1 < nrows) b = unpack_bf16(*reinterpret_cast<const uint32_t *>(gm + (long)r1 * ld + n * 8 + 2 * t));
        x[n][0] = a.x, x[n][1] = a.y, x[n][2] = b.x, x[n][3] = b.y;
    }
}

/* A sequence of 64-row tiles: either tiles base .. base + count - 1, or for each entry e of list
 * (length len) the tiles list[e] * per + s, s < per (a block of `per` 64-row tiles). */
struct TileSeq {
    const int *list;
    int len, per, base, count;
    __device__ __forceinline__ int size() const { return list ? len * per : count; }
    /* per is 1 (64-row blocks) or 2: the common case skips the integer division (~25 instructions
     * in a kernel's main loop) */
    __device__ __forceinline__ int tile(int it) const {
        return !list ? base + it : per == 1 ? list[it] : list[it / per] * per + it % per;
    }
};

#endif
