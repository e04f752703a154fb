/* kernels/cuda/cuda_mem.cu — implementation of cuda_mem.h. */
#include "cuda_common.cuh"
#include "cuda_mem.h"

static cudaStream_t g_stream = 0;

extern "C" cudaStream_t cuda_stream(void) { return g_stream; }

extern "C" void cuda_set_stream(void *stream) { g_stream = static_cast<cudaStream_t>(stream); }

extern "C" int cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky "no device" error */
        return 0;
    }
    return n;
}

extern "C" void *cuda_mem_alloc(size_t bytes) {
    void *p = NULL;
    cudaError_t err = cudaMalloc(&p, bytes ? bytes : 1);
    CHECK(err == cudaSuccess, "CUDA: cannot allocate %zu bytes on the device: %s", bytes, cudaGetErrorString(err));
    return p;
}

extern "C" void cuda_mem_free(void *p) { CUDA_CHECK(cudaFree(p)); }

extern "C" void cuda_mem_upload(void *dst, const void *src, size_t bytes) {
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}

extern "C" void cuda_mem_download(void *dst, const void *src, size_t bytes) {
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}

extern "C" void cuda_mem_copy_d2d(void *dst, const void *src, size_t bytes) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda_stream()));
}

extern "C" void cuda_mem_info(size_t *free_bytes, size_t *total_bytes) {
    CUDA_CHECK(cudaMemGetInfo(free_bytes, total_bytes));
}

extern "C" void cuda_sync(void) { CUDA_CHECK(cudaStreamSynchronize(cuda_stream())); }
