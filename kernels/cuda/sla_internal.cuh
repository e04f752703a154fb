/* kernels/cuda/sla_internal.cuh — host-side declarations shared by the CUDA attention files
 * (sla_flash.cu, sla_select.cu, sla_linear.cu, sla_cuda.cu): kernel parameter blocks and launchers.
 * All launchers enqueue on cuda_stream() and never synchronise, so the operator is graph-capturable.
 * Tensors are [BH, N, D] row-major per (batch, head) = bh; D is 64 or 128. */
#ifndef SLA_INTERNAL_CUH
#define SLA_INTERNAL_CUH

#include <stdint.h>

#include "cuda_common.cuh"
#include "sla_mma.cuh"

/* ---- flash attention (sla_flash.cu) ----------------------------------------------------------- */

struct FlashParams {
    const bf16 *q, *k, *v; /* [BH, Nq, D], [BH, Nk, D] */
    const bf16 *dout;      /* backward: [BH, Nq, D] */
    const float *lse;      /* backward: [BH, Nq] natural log */
    const float *Ds;       /* backward: [BH, Nq] rowsum(dout * o) */
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
    int Nq, Nk;
    int add;
};

/* o, lse (and os) for query blocks of bq rows (64 or 128). */
void flash_forward(const FlashParams &p, int BH, int D, int bq);
/* Ds = rowsum(dout * o) (fp32). */
void flash_bwd_prep(const bf16 *dout, const bf16 *o, float *Ds, long rows, int D);
/* dq over each query block's key list (query blocks of bq rows). */
void flash_backward_dq(const FlashParams &p, int BH, int D, int bq);
/* dk, dv over each 64-key tile's query list. */
void flash_backward_dkdv(const FlashParams &p, int BH, int D);

/* ---- block selection and index lists (sla_select.cu) ----------------------------------------- */

/* qbar [BH, Tm, D] (means), ksum [BH, Tn, D] (sums), kbar [BH, Tn, D] (smoothed means), scores
 * [BH, Tm, Tn], then lut [BH, Tm, kappa] (unless given) and neg [BH, Tm, neg_ld]. */
void sla_select_launch(const bf16 *q, const bf16 *k, int BH, int N, int D, int blk_q, int blk_k, int Tm, int Tn,
                       int kappa, int n_negl, int lut_given, int *lut, int *neg, int neg_ld, float *qbar, float *ksum,
                       float *kbar, float *scores);

/* The three steps of sla_select_launch. */
void sla_pool_launch(const bf16 *q, const bf16 *k, int BH, int N, int D, int blk_q, int blk_k, int Tm, int Tn,
                     float *qbar, float *ksum, float *kbar);
void sla_scores_launch(const float *qbar, const float *kbar, int BH, int D, int Tm, int Tn, float *scores);
void sla_topk_launch(const float *scores, int BH, int Tm, int Tn, int kappa, int n_negl, int lut_given, int *lut,
                     int *neg, int neg_ld);

/* map [BH, Tm, Tn] bytes: 0 marginal, 1 critical, 2 negligible; and, when lin_list != null, per
 * query block the ascending key blocks with (sub ? map != 0 : map == 0) ([BH, Tm, L]). */
void sla_rowmap_launch(const int *lut, const int *neg, int neg_ld, int BH, int Tm, int Tn, int kappa, int n_negl,
                       uint8_t *map, int sub, int *lin_list, int L);

/* Per key block the ascending query blocks i whose map entry matches pred (0: == 1 critical,
 * 1: != 0, 2: == 0): off [BH, Tn + 1], ent [BH, ent_stride]. cnt [BH, Tn] scratch. */
void sla_collist_launch(const uint8_t *map, int BH, int Tm, int Tn, int pred, int *cnt, int *off, int *ent,
                        long ent_stride);

/* ---- linear branch (sla_linear.cu) ------------------------------------------------------------ */

struct LinParams {
    const bf16 *q, *k, *v, *phik, *dout, *ol_in, *qhat_in, *dol_in;
    const float *z, *Htot, *Ztot, *W, *b, *beta_in, *Atot, *betatot;
    const int *list; /* [BH, Tm, L]: key blocks per query block */
    int L;
    const int *toff, *tent; /* per key block: query blocks (bwd_k) */
    long tent_stride;
    int sub;   /* 1: H = Htot - sum over list; 0: H = sum over list */
    int tpb;   /* 64-row tiles per key block */
    int spb;   /* 64-row tiles per query block */
    int N, Tm, Tn;
    int feature, all, empty;
    bf16 *ol, *o, *dq, *dk, *dv, *qhat, *dol;
    float *beta;
};

/* phik [BH, N, D] (bf16) = phi(k) and z [BH, Tn, D] = per key block sums of phik. */
void lin_phik_launch(const bf16 *k, bf16 *phik, float *z, int BH, int N, int D, int blk_k, int Tn, int feature);
/* part [BH, nchunk, D, D] = per chunk of `rows_per_chunk` rows sum X^T Y; colsum [BH, nchunk, D]
 * = per chunk column sums of X (optional). Returns nchunk. */
int lin_outer_launch(const bf16 *X, const bf16 *Y, int BH, int N, int D, float *part, float *colsum);
int lin_outer_nchunk(int N);
/* out [G, E] = sum over c < count of in [G, count, E], in order. */
void lin_reduce_launch(const float *in, float *out, int G, int count, long E);
/* ol, o (= Ol W^T + b, bf16) per query block. */
void lin_forward_launch(const LinParams &p, int BH, int D, int bq);
/* dq (linear part), qhat, dol, beta per query block. */
void lin_backward_q_launch(const LinParams &p, int BH, int D, int bq);
/* dk, dv (linear part) per 64-key tile. */
void lin_backward_k_launch(const LinParams &p, int BH, int D);

/* Sets the dynamic shared-memory limit of a kernel once. */
template <typename K> static inline void sla_smem_limit(K kernel, int bytes) {
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}

#endif
