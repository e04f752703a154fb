/* kernels/cuda/sla_tma.cu — the TMA tensor maps of the wgmma attention kernels (sla_flash_wg.cu,
 * sla_flash_wg_bwd.cu): bf16 [rows, D] planes as 64 x 64 boxes in the 128-byte-swizzled layout
 * (sla_wgmma.cuh's sw128), zeros outside. Host code, in every build (the maps are only used where
 * the sm_90a kernels run). */
#include <cuda.h>
#include <cudaTypedefs.h>

#include "sla_internal.cuh"

/* cuTensorMapEncodeTiled through the runtime (no link against the driver library). */
static PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
    static PFN_cuTensorMapEncodeTiled_v12000 fn = nullptr;
    if (!fn) {
        void *ptr = nullptr;
        cudaDriverEntryPointQueryResult qr;
        CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &ptr, 12000, cudaEnableDefault, &qr));
        CHECK(qr == cudaDriverEntryPointSuccess && ptr, "the CUDA driver has no cuTensorMapEncodeTiled");
        fn = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(ptr);
    }
    return fn;
}

/* `planes` [rows, D] bf16 matrices at x, plane_stride elements apart, as 64 x 64 boxes with the
 * 128-byte swizzle, zeros outside. */
CUtensorMap wg_plane_map(const bf16 *x, int planes, int rows, int D, long plane_stride) {
    CUtensorMap m;
    const int BH = planes, N = rows;
    const cuuint64_t dims[3] = {(cuuint64_t)D, (cuuint64_t)rows, (cuuint64_t)planes};
    const cuuint64_t strides[2] = {(cuuint64_t)D * 2, (cuuint64_t)plane_stride * 2};
    const cuuint32_t box[3] = {64, 64, 1}, estr[3] = {1, 1, 1};
    CUresult r = tensor_map_encoder()(&m, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, const_cast<bf16 *>(x), dims, strides, box,
                                      estr, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                      CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    CHECK(r == CUDA_SUCCESS, "cuTensorMapEncodeTiled failed (%d) for a [%d, %d, %d] tensor", (int)r, BH, N, D);
    return m;
}

/* The [BH, N, D] bf16 tensor at x. */
CUtensorMap wg_tile_map(const bf16 *x, int BH, int N, int D) { return wg_plane_map(x, BH, N, D, (long)N * D); }
