/* kernels/cuda/sla_tiles.cuh — which tiles of a flash kernel's key tile sequence hold keys at or
 * past Nk, computed once per query block so that the softmax masks only those (host and device:
 * tests/test_sla_tiles.cu checks it against a brute-force enumeration without a GPU).
 *
 * A key tile sequence (TileSeq in sla_mma.cuh) is either the tiles base .. base + count - 1, or,
 * for each entry e of a lut row list (len entries, any order), the tiles list[e] * per + s, s < per
 * (key blocks of per 64-key tiles). Tile t holds keys 64 t .. 64 t + 63, so exactly the tiles
 * t >= Nk / 64 hold keys at or past Nk: in a valid lut row only the last key block can have such
 * tiles, and then they are its tiles from (Nk / 64) % per on. */
#ifndef SLA_TILES_CUH
#define SLA_TILES_CUH

#ifdef __CUDACC__
#define SLA_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define SLA_HOST_DEVICE inline
#endif

/* Positions pit .. pit + span - 1 of the sequence are the tiles holding keys at or past Nk; returns
 * pit, or -1 with span 0 when there are none. list null: the range base .. base + count - 1; else
 * find(blk) must return the first e < len with list[e] == blk, or -1 (the device does it with a
 * warp ballot, the host test with a loop). */
#ifdef __CUDACC__
#pragma nv_exec_check_disable /* find is a host lambda in the host test, a device one in the kernel */
#endif
template <typename Find>
SLA_HOST_DEVICE int tiles_past_nk(const int *list, int per, int base, int count, int Nk, Find find, int &span) {
    const int tp = Nk / 64; /* the first tile holding a key at or past Nk */
    if (!list) {
        const int first = tp > base ? tp : base, end = base + count;
        span = end > first ? end - first : 0;
        return span ? first - base : -1;
    }
    const int e = find(tp / per);
    span = e < 0 ? 0 : per - tp % per;
    return e < 0 ? -1 : e * per + tp % per;
}

#endif
