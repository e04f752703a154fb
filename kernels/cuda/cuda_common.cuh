/* kernels/cuda/cuda_common.cuh — shared by the .cu files: CUDA_CHECK, the launch check and the
 * backend's stream. Device code only; C code uses cuda_mem.h. */
#ifndef SLA_CUDA_COMMON_CUH
#define SLA_CUDA_COMMON_CUH

#include <cuda_runtime.h>

#include "../check.h"

#define CUDA_CHECK(call)                                                                  \
    do {                                                                                  \
        cudaError_t err_ = (call);                                                        \
        CHECK(err_ == cudaSuccess, "CUDA: %s", cudaGetErrorString(err_));                 \
    } while (0)

/* After every launch: catches bad configurations at once (asynchronous faults surface later). */
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

/* The stream every op of the backend runs on (the default stream until cuda_set_stream). */
extern "C" cudaStream_t cuda_stream(void);

#endif
