/* kernels/cuda/nn_common_cuda.cu — the pieces of nn_cuda_common.cuh that are not templates: the
 * grow-only scratch buffer and the last stage of the fp64 reduction. */
#include "nn_cuda_common.cuh"

static void *scratch_ptr = NULL;
static size_t scratch_bytes = 0;

void *nn_cuda_scratch(size_t bytes) {
    if (bytes <= scratch_bytes) return scratch_ptr;
    if (scratch_ptr) {
        CUDA_CHECK(cudaStreamSynchronize(cuda_stream())); /* earlier kernels may still read it */
        CUDA_CHECK(cudaFree(scratch_ptr));
    }
    size_t want = bytes < ((size_t)1 << 20) ? ((size_t)1 << 20) : bytes + bytes / 4;
    cudaError_t err = cudaMalloc(&scratch_ptr, want);
    CHECK(err == cudaSuccess, "CUDA: cannot allocate %zu bytes of scratch: %s", want, cudaGetErrorString(err));
    scratch_bytes = want;
    return scratch_ptr;
}

static __global__ void reduce_finish_kernel(double *partial, int nblocks) {
    __shared__ double sh[REDUCE_THREADS];
    double acc = 0.0;
    for (int i = threadIdx.x; i < nblocks; i += REDUCE_THREADS) acc += partial[i];
    sh[threadIdx.x] = acc;
    block_tree_sum(sh);
    if (threadIdx.x == 0) partial[nblocks] = sh[0];
}

double reduce_finish(double *partial, int nblocks) {
    reduce_finish_kernel<<<1, REDUCE_THREADS, 0, cuda_stream()>>>(partial, nblocks);
    CUDA_CHECK_LAUNCH();
    double out = 0.0;
    CUDA_CHECK(cudaMemcpyAsync(&out, partial + nblocks, sizeof(double), cudaMemcpyDeviceToHost, cuda_stream()));
    CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
    return out;
}
