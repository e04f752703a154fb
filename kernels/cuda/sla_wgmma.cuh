/* kernels/cuda/sla_wgmma.cuh — Hopper warpgroup MMA (wgmma, sm_90a) building blocks of the attention
 * kernels in sla_flash_wg.cu and sla_flash_wg_bwd.cu: shared-memory matrix descriptors for the
 * 128-byte-swizzled tile layout, the fence / commit / wait protocol, the three matrix shapes the
 * kernels use, and the mbarrier and bulk tensor copy (TMA) primitives that fill tiles in that
 * layout. Device code only; compiled to real instructions only for the sm_90a target
 * (SLA_WGMMA_DEVICE), elsewhere the bodies are empty and nothing launches them.
 *
 * Tile layout ("sw128", what a TMA copy with the 128-byte swizzle writes for 64-column boxes): a
 * [rows, D] bf16 tile is stored as D / 64 slabs of [rows, 64]; within a slab row r occupies 128
 * bytes at r * 128, and its 16-byte chunk c sits at chunk c ^ (r % 8). Slabs and the tile start
 * are 1024-byte aligned. Read as a K-major operand (K = the 64-wide columns) the
 * descriptor's stride byte offset is 1024 (8-row groups) and a 16-column k-step advances the start
 * address by 32 bytes inside the slab; read as an N-major operand (rows = K, columns = N) the leading
 * byte offset is the slab stride (next 64 columns of N) and the stride byte offset 1024 (next 8 rows
 * of K), and a 16-row k-step advances the start by 2048 bytes.
 *
 * Accumulator layout of m64nN (fp32), per warp w of the warpgroup (rows 16 w .. 16 w + 15), g =
 * lane / 4, t = lane % 4: d[j][e] is (row 16 w + g + 8 (e / 2), column 8 j + 2 t + e % 2), the
 * m16n8k16 C layout of sla_mma.cuh repeated over N / 8 column blocks. A register A operand of
 * m64k16 uses the m16n8k16 A-fragment layout per warp, so P or dS fragments pack straight from an
 * accumulator (sla_mma.cuh's pack_bf16 of columns 16 kk .. 16 kk + 15). */
#ifndef SLA_WGMMA_CUH
#define SLA_WGMMA_CUH

#include "sla_mma.cuh"

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define SLA_WGMMA_DEVICE 1
#endif

/* Descriptor of a 128-byte-swizzled operand at shared address addr (bytes). */
__device__ __forceinline__ uint64_t wg_desc(uint32_t addr, uint32_t lbo, uint32_t sbo) {
    return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)((lbo >> 4) & 0x3FFF) << 16) |
           ((uint64_t)((sbo >> 4) & 0x3FFF) << 32) | ((uint64_t)1 << 62);
}
/* The same descriptor moved by `bytes` (a multiple of 16). The address field (bits 0-13, shared
 * addresses under 256 KB) never carries, so only the low word changes: one 32-bit add where the
 * offset is not a constant, none where it is (the kernels build each operand's descriptor once and
 * move it per k-step and stage instead of rebuilding it from an address, which cost four to five
 * uniform instructions per wgmma). */
__device__ __forceinline__ uint64_t wg_desc_add(uint64_t desc, uint32_t bytes) {
    const uint32_t lo = (uint32_t)desc + (bytes >> 4), hi = (uint32_t)(desc >> 32);
    return ((uint64_t)hi << 32) | lo;
}

#ifdef SLA_WGMMA_DEVICE
__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wg_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
/* The calling warpgroup's registers per thread become R (a multiple of 8, 24 .. 256): dec gives
 * registers back to the CTA's pool, inc waits until the pool has them. Every warp of the warpgroup
 * executes the same one; ptxas allocates the code after it with R. */
template <int R> __device__ __forceinline__ void wg_regs_dec() { asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(R)); }
template <int R> __device__ __forceinline__ void wg_regs_inc() { asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(R)); }
/* Generic-proxy shared-memory writes (cp.async, st.shared) made visible to wgmma's async proxy. */
__device__ __forceinline__ void wg_proxy_fence() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

/* d (+)= A B^T-style: A [64 x 16] and B [64 x 16] both K-major in shared memory (descriptors). */
__device__ __forceinline__ void wgmma_ss_n64(float (&d)[8][4], uint64_t da, uint64_t db, int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
        : "l"(da), "l"(db), "r"(accumulate));
}

/* d (+)= A B: A [64 x 16] bf16 in registers (a: the m16n8k16 A-fragment layout per warp), B [16 x 64]
 * in shared memory (descriptor): N-major (transposed read) when TB is 1, K-major when 0. */
template <int TB>
__device__ __forceinline__ void wgmma_rs_n64(float (&d)[8][4], const uint32_t (&a)[4], uint64_t db, int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}\n"
        : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(accumulate), "n"(TB));
}

/* d (+)= A B: A [64 x 16] bf16 in registers (a: the m16n8k16 A-fragment layout per warp), B [16 x 128]
 * N-major in shared memory (descriptor, transposed read). */
__device__ __forceinline__ void wgmma_rs_n128_t(float (&d)[16][4], const uint32_t (&a)[4], uint64_t db, int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
        : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3]), "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]), "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]), "+f"(d[10][0]), "+f"(d[10][1]), "+f"(d[10][2]), "+f"(d[10][3]), "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]), "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]), "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]), "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]), "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(accumulate));
}

/* ---- mbarriers and the bulk tensor copy (TMA) ---- */
__device__ __forceinline__ void mbar_init(uint32_t bar, int count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
/* One arrival that also announces `bytes` of copies completing on the barrier. */
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
/* Waits until the barrier's phase with the given parity has completed. */
__device__ __forceinline__ void mbar_wait(uint32_t bar, int parity) {
    uint32_t done = 0;
    while (!done)
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done)
                     : "r"(bar), "r"(parity)
                     : "memory");
}
/* Box (c0, c1, c2) of a 3-D tensor map into shared memory at dst, completing on bar. */
__device__ __forceinline__ void tma_load_3d(uint32_t dst, const void *map, int c0, int c1, int c2, uint32_t bar) {
    asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(dst),
                 "l"(map), "r"(c0), "r"(c1), "r"(c2), "r"(bar)
                 : "memory");
}
/* An L2 cache policy for the copies below: evict_first for data read or written once (streamed
 * through, so that it does not push out what other CTAs re-read), evict_last for data every CTA
 * re-reads. */
__device__ __forceinline__ uint64_t l2_evict_first() {
    uint64_t p;
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(p));
    return p;
}
__device__ __forceinline__ uint64_t l2_evict_last() {
    uint64_t p;
    asm volatile("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;\n" : "=l"(p));
    return p;
}
/* tma_load_3d with an L2 cache policy. */
__device__ __forceinline__ void tma_load_3d_hint(uint32_t dst, const void *map, int c0, int c1, int c2, uint32_t bar,
                                                 uint64_t policy) {
    asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1, {%2, %3, %4}], [%5], %6;\n" ::"r"(dst),
                 "l"(map), "r"(c0), "r"(c1), "r"(c2), "r"(bar), "l"(policy)
                 : "memory");
}
/* `bytes` (a multiple of 16) contiguous bytes from global src into shared dst, completing on bar. */
__device__ __forceinline__ void bulk_load(uint32_t dst, const void *src, uint32_t bytes, uint32_t bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst),
                 "l"(src), "r"(bytes), "r"(bar)
                 : "memory");
}
/* Box (c0, c1, c2) of a 3-D tensor map from shared memory at src (the async proxy reads it: the
 * writers fence first), in the issuing thread's current bulk group, with an L2 cache policy. */
__device__ __forceinline__ void tma_store_3d_hint(const void *map, uint32_t src, int c0, int c1, int c2, uint64_t policy) {
    asm volatile("cp.async.bulk.tensor.3d.global.shared::cta.bulk_group.L2::cache_hint [%0, {%2, %3, %4}], [%1], %5;\n" ::"l"(map),
                 "r"(src), "r"(c0), "r"(c1), "r"(c2), "l"(policy)
                 : "memory");
}
__device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
/* Waits until this thread's bulk stores have read their shared memory (read) or completed. */
__device__ __forceinline__ void bulk_wait_read() { asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory"); }
__device__ __forceinline__ void bulk_wait() { asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory"); }
#else
__device__ __forceinline__ void wg_fence() {}
__device__ __forceinline__ void wg_commit() {}
template <int N> __device__ __forceinline__ void wg_wait() {}
template <int R> __device__ __forceinline__ void wg_regs_dec() {}
template <int R> __device__ __forceinline__ void wg_regs_inc() {}
__device__ __forceinline__ void wg_proxy_fence() {}
template <int NB> __device__ __forceinline__ void wgmma_ss_n64(float (&)[NB][4], uint64_t, uint64_t, int) {}
template <int TB> __device__ __forceinline__ void wgmma_rs_n64(float (&)[8][4], const uint32_t (&)[4], uint64_t, int) {}
template <int NB> __device__ __forceinline__ void wgmma_rs_n128_t(float (&)[NB][4], const uint32_t (&)[4], uint64_t, int) {}
__device__ __forceinline__ void mbar_init(uint32_t, int) {}
__device__ __forceinline__ void mbar_expect_tx(uint32_t, uint32_t) {}
__device__ __forceinline__ void mbar_arrive(uint32_t) {}
__device__ __forceinline__ void mbar_wait(uint32_t, int) {}
__device__ __forceinline__ void tma_load_3d(uint32_t, const void *, int, int, int, uint32_t) {}
__device__ __forceinline__ void bulk_load(uint32_t, const void *, uint32_t, uint32_t) {}
__device__ __forceinline__ uint64_t l2_evict_first() { return 0; }
__device__ __forceinline__ uint64_t l2_evict_last() { return 0; }
__device__ __forceinline__ void tma_load_3d_hint(uint32_t, const void *, int, int, int, uint32_t, uint64_t) {}
__device__ __forceinline__ void tma_store_3d_hint(const void *, uint32_t, int, int, int, uint64_t) {}
__device__ __forceinline__ void bulk_commit() {}
__device__ __forceinline__ void bulk_wait_read() {}
__device__ __forceinline__ void bulk_wait() {}
#endif

/* d (+)= A B with B N-major, N = 8 NB (64 or 128). */
template <int NB>
__device__ __forceinline__ void wgmma_rs_t(float (&d)[NB][4], const uint32_t (&a)[4], uint64_t db, int accumulate) {
    static_assert(NB == 8 || NB == 16, "N must be 64 or 128");
    if constexpr (NB == 8) wgmma_rs_n64<1>(d, a, db, accumulate);
    else wgmma_rs_n128_t(d, a, db, accumulate);
}

/* Keeps the compiler from moving reads or writes of an accumulator across an asynchronous wgmma. */
template <int NB> __device__ __forceinline__ void wg_pin(float (&d)[NB][4]) {
#pragma unroll
    for (int j = 0; j < NB; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) asm volatile("" : "+f"(d[j][e])::"memory");
}
template <int K> __device__ __forceinline__ void wg_pin(uint32_t (&a)[K][4]) {
#pragma unroll
    for (int j = 0; j < K; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) asm volatile("" : "+r"(a[j][e])::"memory");
}

/* A 16-column k-step kk of accumulator columns as a register A operand. */
template <int NB> __device__ __forceinline__ void wg_pack_a(uint32_t (&a)[4], const float (&s)[NB][4], int kk) {
    a[0] = pack_bf16(s[2 * kk][0], s[2 * kk][1]), a[1] = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
    a[2] = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]), a[3] = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
}

#endif
