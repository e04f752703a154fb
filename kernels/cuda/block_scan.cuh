/* kernels/cuda/block_scan.cuh — a block-wide exclusive prefix sum in shared memory, shared by the
 * selection's sort-based top-k (sla_select.cu) and the transposed block lists (sla_lists.cu). */
#ifndef SLA_BLOCK_SCAN_CUH
#define SLA_BLOCK_SCAN_CUH

constexpr int SCAN_THREADS = 512; /* the block size of the kernels that scan */

/* In-place exclusive prefix sum of a[0..n) in shared memory; returns the total. All threads of the
 * block (blockDim.x a multiple of 32, at most 1024) must call it. */
static __device__ int block_excl_scan(int *a, int n) {
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

#endif
