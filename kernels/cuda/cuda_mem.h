/* kernels/cuda/cuda_mem.h — device memory, the backend's stream, and CUDA error checks, callable
 * from C. All calls CHECK and exit on failure with the CUDA error string. */
#ifndef SLA_CUDA_MEM_H
#define SLA_CUDA_MEM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Number of CUDA devices (0 when the driver or device is absent; never fails). */
int cuda_device_count(void);
void *cuda_mem_alloc(size_t bytes);
void cuda_mem_free(void *p);
void cuda_mem_upload(void *dst, const void *src, size_t bytes);
void cuda_mem_download(void *dst, const void *src, size_t bytes);
void cuda_mem_copy_d2d(void *dst, const void *src, size_t bytes);
/* Free and total bytes of device memory (cudaMemGetInfo). */
void cuda_mem_info(size_t *free_bytes, size_t *total_bytes);
/* Makes `stream` (a cudaStream_t; NULL for the default stream) the stream every op of the backend
 * runs on from now on, e.g. a stream being captured into a CUDA graph. */
void cuda_set_stream(void *stream);
/* Waits for all work on the backend's stream. */
void cuda_sync(void);

#ifdef __cplusplus
}
#endif
#endif
