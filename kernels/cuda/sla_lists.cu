/* kernels/cuda/sla_lists.cu — the index lists the backward builds from the block map (SLA.md
 * section 5: "the dK/dV pass needs, per key block, the list of query blocks that selected it"), on
 * the GPU without host synchronisation.
 *
 * col_count_kernel, col_offsets_kernel, col_fill_kernel  per key block j the ascending query
 *                 blocks i whose map entry matches pred: counts (each 32-key-block slab's columns
 *                 scanned by 8 warps), their exclusive prefix sum per head, then the entries.
 * order_kernel    the key blocks ranked by list length (longest first), so that the dK/dV kernel
 *                 starts the longest lists first. */
#include "block_scan.cuh"
#include "sla_internal.cuh"

namespace {

__device__ __forceinline__ bool map_pred(uint8_t m, int pred) { return pred == 0 ? m == 1 : pred == 1 ? m != 0 : m == 0; }

/* The transposed lists of a slab of 32 key blocks (lane l: block j = 32 blockIdx.x + l) of head
 * blockIdx.y, with the query blocks split over COL_WARPS warps (warp w: rows w R .. w R + R - 1),
 * so that each thread scans Tm / COL_WARPS map bytes, not Tm. part[w][l]: matches of warp w's rows
 * in column j; returned with the row range. */
constexpr int COL_WARPS = 8;
__device__ __forceinline__ void col_slab_counts(const uint8_t *map, int Tm, int Tn, int pred, int (&part)[COL_WARPS][32],
                                                int &i0, int &i1) {
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, j = blockIdx.x * 32 + lane;
    const int R = (Tm + COL_WARPS - 1) / COL_WARPS;
    i0 = min(Tm, w * R), i1 = min(Tm, i0 + R);
    int c = 0;
    if (j < Tn) {
        const uint8_t *m = map + (long)blockIdx.y * Tm * Tn + j;
#pragma unroll 8
        for (int i = i0; i < i1; i++) c += map_pred(m[(long)i * Tn], pred);
    }
    part[w][lane] = c;
    __syncthreads();
}

__global__ void __launch_bounds__(32 * COL_WARPS) col_count_kernel(const uint8_t *map, int Tm, int Tn, int pred, int *cnt) {
    __shared__ int part[COL_WARPS][32];
    int i0, i1;
    col_slab_counts(map, Tm, Tn, pred, part, i0, i1);
    const int lane = threadIdx.x & 31, j = blockIdx.x * 32 + lane;
    if (threadIdx.x < 32 && j < Tn) {
        int c = 0;
        for (int w = 0; w < COL_WARPS; w++) c += part[w][lane];
        cnt[(long)blockIdx.y * Tn + j] = c;
    }
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

/* Each warp writes its rows' matches after those of the warps before it: ascending query blocks. */
__global__ void __launch_bounds__(32 * COL_WARPS) col_fill_kernel(const uint8_t *map, int Tm, int Tn, int pred,
                                                                  const int *off, int *ent, long ent_stride) {
    __shared__ int part[COL_WARPS][32];
    int i0, i1;
    col_slab_counts(map, Tm, Tn, pred, part, i0, i1);
    const int bh = blockIdx.y, lane = threadIdx.x & 31, w = threadIdx.x >> 5, j = blockIdx.x * 32 + lane;
    if (j >= Tn) return;
    int pos = off[(long)bh * (Tn + 1) + j];
    for (int k = 0; k < w; k++) pos += part[k][lane];
    const uint8_t *m = map + (long)bh * Tm * Tn + j;
    int *e = ent + bh * ent_stride;
    for (int i = i0; i < i1; i++)
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

} // namespace

void sla_collist_launch(const uint8_t *map, int BH, int Tm, int Tn, int pred, int *cnt, int *off, int *ent,
                        long ent_stride) {
    cudaStream_t st = cuda_stream();
    dim3 grid((Tn + 31) / 32, BH);
    col_count_kernel<<<grid, 32 * COL_WARPS, 0, st>>>(map, Tm, Tn, pred, cnt);
    CUDA_CHECK_LAUNCH();
    col_offsets_kernel<<<BH, SCAN_THREADS, ((Tn + 3) / 4 + 1) * 16, st>>>(cnt, Tn, off);
    CUDA_CHECK_LAUNCH();
    col_fill_kernel<<<grid, 32 * COL_WARPS, 0, st>>>(map, Tm, Tn, pred, off, ent, ent_stride);
    CUDA_CHECK_LAUNCH();
}

void sla_order_launch(const int *off, int BH, int Tn, int *order) {
    /* padded: the compiler may read the ranks in aligned 16-byte vectors */
    order_kernel<<<BH, 1024, ((Tn + 3) / 4 + 1) * 16, cuda_stream()>>>(off, Tn, order);
    CUDA_CHECK_LAUNCH();
}
