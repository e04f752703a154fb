/* kernels/cuda/sla_internal.cuh — declarations shared by the CUDA attention files (sla_flash.cu,
 * sla_flash_wg.cu, sla_flash_wg_bwd.cu, sla_select.cu, sla_linear.cu, sla_cuda.cu): kernel parameter
 * blocks, launchers, the tile sequences the flash kernels walk and the common end of the two dq
 * kernels (dq_epilogue).
 * All launchers enqueue on cuda_stream() and never synchronise, so the operator is graph-capturable.
 * Tensors are [BH, N, D] row-major per (batch, head) = bh; D is 64 or 128. */
#ifndef SLA_INTERNAL_CUH
#define SLA_INTERNAL_CUH

#include <cuda.h>
#include <stdint.h>

#include "cuda_common.cuh"
#include "sla_mma.cuh"

/* ---- flash attention (sla_flash.cu) ----------------------------------------------------------- */

struct FlashParams {
    const bf16 *q, *k, *v; /* [BH, Nq, D], [BH, Nk, D] */
    const bf16 *dout;      /* backward: [BH, Nq, D] */
    const float *lse;      /* backward: [BH, Nq] natural log */
    const float *Ds;       /* backward: [BH, Nq] rowsum(dout * o) from the bf16 o */
    float *Ds_exact;       /* backward: [BH, Nq] sum_c P dP, written by the dq kernel, read by dk/dv */
    bf16 *o, *os;          /* forward: o (= Os, or Os + o when add), os optional */
    float *lse_out;        /* forward */
    bf16 *dq, *dk, *dv;    /* backward outputs (+= their bf16 contents when add) */
    /* Sparse mode (lut != null): per query block the kappa key blocks it keeps; a key block is tpb
     * 64-row tiles. dK/dV: per key block the query blocks that keep it (toff [BH, Tk + 1] offsets
     * into tent + bh * tent_stride); a query block is spb 64-row tiles. Dense mode: everything. */
    const int *lut;
    int kappa, tpb, Tq;
    const int *toff, *tent;
    long tent_stride;
    int spb, Tk;
    const int *order;
    int Nq, Nk;
    int add;
    int qsub; /* launcher-internal: CTAs per lut query block (0 or 1: one) */
    /* dK/dV in dense mode with few key tiles: the query tiles are split over qsplit CTAs per key
     * tile, whose fp32 partials ([qsplit][2][BH, Nk, D], dk already scaled) kv_part holds until a
     * fixed-order sum writes dk and dv (flash_dkdv_splits says how many; 0 or 1: no split). */
    int qsplit;
    float *kv_part;
    /* Forward, wgmma kernel only (flash_forward_fuses_linear): SLA's linear branch and the proj in
     * the epilogue, with add = 0. lin 1: Ol = phi(Q) H_i / den, from the bf16 state rows lin_rows
     * [BH, lin_R, D*D + D] (query block qb of head bh reads row bh * lin_R + qb, or bh when lin_R is
     * 1), den = phi(Q) . Z_i (+ 1e-5 when lin_all) with Z_i from that row or, when lin_ztot is
     * given, from the fp32 row lin_ztot [BH, D*D + D] at D*D; o = Os + Ol W^T + b with lin_wt [2, D,
     * D] = W^T hi, lo (bf16, [in][out]); ol written. lin 2: the branch is empty: ol = 0, o = Os + b. */
    int lin, lin_feature, lin_all, lin_R;
    const bf16 *lin_rows, *lin_wt;
    const float *lin_ztot, *lin_b;
    bf16 *ol;
};

constexpr int FLASH_KT = 64; /* key tile rows of the flash kernels */

/* The key tiles a query block visits (CTA qb covers part qb % qsub of lut query block qb / qsub). */
__device__ __forceinline__ TileSeq key_seq(const FlashParams &p, int bh, int qb) {
    TileSeq s;
    if (p.lut) {
        if (p.qsub > 1) qb /= p.qsub;
        s.list = p.lut + ((long)bh * p.Tq + qb) * p.kappa;
        s.len = p.kappa, s.per = p.tpb, s.base = 0, s.count = 0;
    } else {
        s.list = nullptr, s.len = 0, s.per = 1, s.base = 0, s.count = (p.Nk + FLASH_KT - 1) / FLASH_KT;
    }
    return s;
}

/* What the dQ kernels need of query row r: its lse in base 2 (infinite past Nq: P = 0 there) and
 * Ds (0 past Nq). */
struct RowStats {
    float L, D;
};
__device__ __forceinline__ RowStats dq_row_stats(const FlashParams &p, int bh, int r) {
    if (r >= p.Nq) return {INFINITY, 0.f};
    return {p.lse[(long)bh * p.Nq + r] * SLA_LOG2E, p.Ds[(long)bh * p.Nq + r]};
}

/* The 64-row query sub-tiles a key tile is visited by. */
__device__ __forceinline__ TileSeq query_seq(const FlashParams &p, int bh, int kt) {
    TileSeq s;
    if (p.tent) {
        int jb = kt / p.tpb;
        const int *off = p.toff + (long)bh * (p.Tk + 1);
        s.list = p.tent + bh * p.tent_stride + off[jb];
        s.len = off[jb + 1] - off[jb], s.per = p.spb, s.base = 0, s.count = 0;
    } else {
        s.list = nullptr, s.len = 0, s.per = 1, s.base = 0, s.count = (p.Nq + FLASH_KT - 1) / FLASH_KT;
    }
    return s;
}

/* The end of both dq kernels (sla_flash.cu's flash_dq_kernel, sla_flash_wg_bwd.cu's wg_dq_kernel),
 * per warp of 16 query rows rbase + lane / 4 and + 8: acc = sum (P dP - P Ds) K and accy = Y = sum P K
 * in the m16n8k16 accumulator layout over D / 8 column blocks (which is also wgmma's per warp), e0,
 * e1 this thread's parts of the rows' E = sum_c P dP, D0, D1 their Ds. Writes E to Ds_exact (when
 * given) and dq (+)= scale (acc + (Ds - E) Y); acc is overwritten. */
template <int D>
__device__ __forceinline__ void dq_epilogue(float (&acc)[D / 8][4], const float (&accy)[D / 8][4], float e0, float e1,
                                            float D0, float D1, const FlashParams &p, int bh, int rbase, int lane) {
    const int row0 = rbase + (lane >> 2), row1 = row0 + 8;
    e0 = quad_sum(e0), e1 = quad_sum(e1);
    if (p.Ds_exact && (lane & 3) == 0) {
        if (row0 < p.Nq) p.Ds_exact[(long)bh * p.Nq + row0] = e0;
        if (row1 < p.Nq) p.Ds_exact[(long)bh * p.Nq + row1] = e1;
    }
    const float c0 = D0 - e0, c1 = D1 - e1;
#pragma unroll
    for (int j = 0; j < D / 8; j++) {
        acc[j][0] += c0 * accy[j][0], acc[j][1] += c0 * accy[j][1];
        acc[j][2] += c1 * accy[j][2], acc[j][3] += c1 * accy[j][3];
    }
    frag_store_global_add<D / 8>(acc, rsqrtf((float)D), p.dq + (long)bh * p.Nq * D, D, rbase, p.Nq, p.add, lane);
}

/* o, lse (and os) for query blocks of bq rows (64 or 128). */
void flash_forward(const FlashParams &p, int BH, int D, int bq);
/* Whether flash_forward takes the lin fields (the wgmma kernel runs); else the caller runs
 * lin_forward_launch and the flash kernel adds Os to its o. */
bool flash_forward_fuses_linear(int D, int bq);
/* The wgmma (sm_90a) forward of sla_flash_wg.cu: whether this process can use it, and the launcher
 * with flash_forward's contract. */
bool flash_wg_available();
void flash_forward_wg(const FlashParams &p, int BH, int D, int bq);
/* dq (and Ds_exact), dk, dv with flash_backward_dq's and flash_backward_dkdv's contracts
 * (sla_flash_wg_bwd.cu). */
void flash_backward_dq_wg(const FlashParams &p, int BH, int D, int bq);
void flash_backward_dkdv_wg(const FlashParams &p, int BH, int D);
/* Query splits the dK/dV kernel uses in dense mode for these sizes (1 without the wgmma kernels). */
int flash_dkdv_splits(int BH, int Nq, int Nk);
/* The tensor map of the wgmma kernels: a [BH, N, D] bf16 tensor as 64 x 64 boxes in the sw128
 * layout (zeros outside). */
CUtensorMap wg_tile_map(const bf16 *x, int BH, int N, int D);
/* The same for `planes` [rows, D] bf16 matrices whose starts are plane_stride elements apart
 * (a multiple of 8). */
CUtensorMap wg_plane_map(const bf16 *x, int planes, int rows, int D, long plane_stride);
/* Ds = rowsum(dout * o) (fp32). */
void flash_bwd_prep(const bf16 *dout, const bf16 *o, float *Ds, long rows, int D);
/* dq over each query block's key list (query blocks of bq rows); also Ds_exact. */
void flash_backward_dq(const FlashParams &p, int BH, int D, int bq);
/* dk, dv over each 64-key tile's query list; with order ([BH, Tk] key blocks by list length,
 * longest first) the CTAs take the long lists first. */
void flash_backward_dkdv(const FlashParams &p, int BH, int D);

/* ---- block selection and index lists (sla_select.cu) ----------------------------------------- */

/* qbar [BH, Tm, D] (means), ksum [BH, Tn, D] (sums), kbar [BH, Tn, D] (smoothed means), scores
 * [BH, Tm, Tn], then lut [BH, Tm, kappa] (unless given) and neg [BH, Tm, neg_ld]. */
void sla_select_launch(const bf16 *q, const bf16 *k, int BH, int N, int D, int blk_q, int blk_k, int Tm, int Tn,
                       int kappa, int n_negl, int lut_given, int *lut, int *neg, int neg_ld, float *qbar, float *ksum,
                       float *kbar, float *scores);

/* The three steps of sla_select_launch. sla_pool_launch with k null pools Q only and takes ksum as
 * already written (lin_state_launch); with kbar null it writes no kbar. */
void sla_pool_launch(const bf16 *q, const bf16 *k, int BH, int N, int D, int blk_q, int blk_k, int Tm, int Tn,
                     float *qbar, float *ksum, float *kbar);
void sla_scores_launch(const float *qbar, const float *kbar, int BH, int D, int Tm, int Tn, float *scores);
void sla_topk_launch(const float *scores, int BH, int Tm, int Tn, int kappa, int n_negl, int lut_given, int *lut,
                     int *neg, int neg_ld, bool warp_ok = true); /* warp_ok false: always the sort (tests) */

/* The linear branch's key-block dimension padded to a multiple of 8: the key block states hs are
 * [BH, Tnp, W] and the 0/1 marginal mask [BH, Tm, Tnp], the rows and columns past Tn zero. The mask
 * GEMMs need it: with Tn = 1182 (720p) cuBLAS's batched GEMMs ran at about 200 TF/s (1.27 and 1.44
 * ms), with 1184 at 600-750 (0.37 and 0.46 ms; a padded leading dimension alone did not help;
 * tests/bench/sla_results.md, seventh session). */
__host__ __device__ inline int sla_tn_pad(int Tn) { return (Tn + 7) & ~7; }

/* Whether sla_select_fused_launch takes these sizes: no lut given, n_negl == 0, 1 <= kappa <= Tn,
 * Tn <= 2048, D a multiple of 32 dividing 1024 (and its shared memory,
 * 32 (D + Tn) bytes, fits). */
bool sla_select_fused_ok(int D, int blk_k, int Tn, int kappa, int n_negl, int lut_given);
/* The fused selection's first step, from ksum [BH, Tn, D] (lin_state_launch or sla_pool_launch):
 * kbarT [BH, D, Tn] = (ksum_j / count_j - mu)^T (kmean's kbar, transposed) and, when q is not
 * null, qbar [BH, Tm, D] as sla_pool_launch writes it. */
void sla_pool_q_kbar_t_launch(const bf16 *q, const float *ksum, int BH, int N, int D, int blk_q, int blk_k, int Tm,
                              int Tn, float *qbar, float *kbarT);
/* scores + top-k + rowmap in one kernel, from qbar [BH, Tm, D] and kbarT: lut [BH, Tm, kappa] and,
 * when not null, map [BH, Tm, Tn] (1 critical, 0 marginal) and mask [BH, Tm, mask_ld] (bf16 1
 * marginal, 0 critical, 0 past Tn; mask_ld Tn or sla_tn_pad(Tn)), bit-identical to what
 * sla_pool_launch's kmean, sla_scores_launch, sla_topk_launch and sla_rowmap_launch write. */
void sla_select_fused_launch(const float *qbar, const float *kbarT, int BH, int D, int blk_k, int Tm, int Tn, int kappa,
                             int *lut, uint8_t *map, bf16 *mask, int mask_ld);

/* map [BH, Tm, Tn] bytes: 0 marginal, 1 critical, 2 negligible; and, when mask != null, the
 * bf16 0/1 marginal mask [BH, Tm, mask_ld] (1 where the key block feeds the query block's linear
 * branch, 0 past Tn; mask_ld Tn or sla_tn_pad(Tn)). */
void sla_rowmap_launch(const int *lut, const int *neg, int neg_ld, int BH, int Tm, int Tn, int kappa, int n_negl,
                       uint8_t *map, bf16 *mask, int mask_ld);

/* Per key block the ascending query blocks i whose map entry matches pred (0: == 1 critical,
 * 1: != 0, 2: == 0): off [BH, Tn + 1], ent [BH, ent_stride]. cnt [BH, Tn] scratch. */
void sla_collist_launch(const uint8_t *map, int BH, int Tm, int Tn, int pred, int *cnt, int *off, int *ent,
                        long ent_stride);
/* order [BH, Tn]: key blocks sorted by list length (off) descending, ties by index. */
void sla_order_launch(const int *off, int BH, int Tn, int *order);

/* ---- linear branch (sla_linear.cu) ------------------------------------------------------------
 * State rows have W = D*D + D values: [M | m] with M row-major D x D. */

struct LinParams {
    const bf16 *q, *k, *v, *dout, *ol_in;
    const float *W, *b;
    const bf16 *Wsplit; /* [2, D, D]: W hi, W lo (lin_w_split_launch) */
    const bf16 *cstate; /* per query block [H_i | Z_i] (fwd, bwd_q; [BH, Tm, W]) or per key block
                           [Abar_j | betabar_j] (bwd_k; [BH, sla_tn_pad(Tn), W]); unused in the "all"
                           variant */
    const float *tot;   /* [BH, W]: [Htot | Ztot] or [Atot | betatot] ("all" variant) */
    bf16 *astack;       /* bwd_q output [BH, Tm, W]: [A_i | beta_i] (may alias cstate) */
    int tpb;            /* 64-row tiles per key block */
    int N, Tm, Tn;
    int feature, all, empty;
    bf16 *ol, *o, *dq, *dk, *dv;
};

/* wsplit [2, D, D] bf16 = hi, lo of the fp32 proj weight W [out][in], or of W^T ([in][out]) when
 * transposed. */
void lin_w_split_launch(const float *W, bf16 *wsplit, int D, int transposed);
/* hs [BH, sla_tn_pad(Tn), W]: per key block [phi(K_j)^T V_j | colsum phi(K_j)] (bf16; the rows
 * past Tn not written: sla_cuda.cu zeroes them); with ksum (else null)
 * also ksum [BH, Tn, D], the fp32 sums of K per key block that sla_pool_launch would write; with
 * proj_w (else null) also what lin_w_split_launch(proj_w, wsplit, D, w_transposed) writes. */
void lin_state_launch(const bf16 *k, const bf16 *v, bf16 *hs, float *ksum, int BH, int N, int D, int blk_k, int Tn,
                      int feature, const float *proj_w, bf16 *wsplit, int w_transposed);
/* out = mask rows (per head: out [Tm, W] = mask [Tm, Tnp] rows [Tnp, W]) or, transposed,
 * out [Tnp, W] = mask^T rows [Tm, W], Tnp = sla_tn_pad(Tn): mask's columns past Tn and, not
 * transposed, rows' rows past Tn must be zero (the transposed product's rows past Tn come out 0).
 * cuBLAS, fp32 accumulation, bf16 out. */
void lin_mask_gemm(const bf16 *rows, const bf16 *mask, bf16 *out, int BH, int Tm, int Tn, long W, int transposed);
/* part [BH, nchunk, D, D] = per chunk of 1536 rows sum X^T Y; colsum [BH, nchunk, D] = per chunk
 * column sums of X (optional). Returns nchunk. */
int lin_outer_launch(const bf16 *X, const bf16 *Y, int BH, int N, int D, float *part, float *colsum);
int lin_outer_nchunk(int N);
/* out [G, E] = sum over c < count of in [G, count, E], in order (fp32 / bf16 inputs). */
void lin_reduce_launch(const float *in, float *out, int G, int count, long E);
void lin_reduce_bf16_launch(const bf16 *in, float *out, int G, int count, long E);
/* ol, o (= Ol W^T + b, bf16) per query block. */
void lin_forward_launch(const LinParams &p, int BH, int D, int bq);
/* dq (linear part) and astack rows per query block. */
void lin_backward_q_launch(const LinParams &p, int BH, int D, int bq);
/* dk, dv (linear part) per 64-key tile. */
void lin_backward_k_launch(const LinParams &p, int BH, int D);

/* Sets the dynamic shared-memory limit of a kernel once. */
template <typename K> static inline void sla_smem_limit(K kernel, int bytes) {
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}

#endif
