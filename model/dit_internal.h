/* model/dit_internal.h — what dit.c and dit_block.c share: parameter indices per block, the saved
 * activations of one block, what each layer's self-attention keeps, gradient scratch, and the whole
 * model's activation set. Not a public interface. Dtypes: "res" f32 (the residual stream, norms'
 * statistics, modulation); "act" the backend's activation dtype (CPU f32, CUDA bf16). */
#ifndef SLA_DIT_INTERNAL_H
#define SLA_DIT_INTERNAL_H

#include "dit.h"

/* Indices into the parameter table of one block (-1 where absent). */
typedef struct block_params {
    int modulation;
    int q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b, norm_q, norm_k, proj_w, proj_b;
    int norm3_w, norm3_b;
    int cq_w, cq_b, ck_w, ck_b, cv_w, cv_b, co_w, co_b, cnorm_q, cnorm_k;
    int ffn0_w, ffn0_b, ffn2_w, ffn2_b;
} block_params_t;

/* What one layer's self-attention forward produced, kept per layer in both training modes (with
 * recompute the backward's re-run of the block skips the attention and reads this instead): its
 * output and everything the attention backward reads besides q, k, v, which are recomputed (dense:
 * lse; SLA: the whole sla_saved_t; ops.h's backends keep nothing else between forward and
 * backward). Forward-only, every layer's entry is the same store, with lse and/or sla as the
 * model's layers need. Under recompute each layer also keeps its feed-forward hidden before the
 * GELU (ffn_pre) and the feed-forward's output (ffn_out), so that the re-run skips both FFN GEMMs
 * and only re-applies the GELU; without recompute they are empty descriptors and the block set's
 * f1 and y2 hold them. */
typedef struct attn_saved {
    tensor_t ao;      /* act [B,H,L,D] */
    tensor_t lse;     /* f32 [B,H,L] on dense layers; an empty descriptor on SLA layers */
    sla_saved_t sla;  /* SLA layers; empty descriptors on dense layers */
    tensor_t ffn_pre; /* act [B,L,ffn_dim] under recompute */
    tensor_t ffn_out; /* act [B,L,C] under recompute */
} attn_saved_t;

/* What the rest of one block's backward needs (one set per block, or a single reused set with
 * recompute and forward-only). */
typedef struct block_acts {
    tensor_t n1, h1, n1_mean, n1_rstd;             /* LN1 out, modulated (act [B,L,C]); stats f32 [B*L] */
    tensor_t q_lin, k_lin, v_lin, q_rstd, k_rstd;  /* projections (act [B,L,C]), RMSNorm stats */
    tensor_t qh, kh, vh;                           /* attention inputs [B,H,L,D] (act) */
    tensor_t am, y1, x1;                           /* merged heads, o-proj out (act), x + g*y1 (res) */
    tensor_t n3, n3_mean, n3_rstd;                 /* LN3 (affine) */
    tensor_t cq_lin, cq_rstd, cqn, cqh;            /* cross q */
    tensor_t ck_lin, ck_rstd, ckn, ckh, cv_lin, cvh; /* cross k, v of the text [B,Lt,C] / [B,H,Lt,D] */
    tensor_t co, clse, cm, y3, x2;                 /* cross out, merged, o-proj out, x1 + y3 (res) */
    tensor_t n2, h2, n2_mean, n2_rstd;             /* LN2, modulated */
    tensor_t f1, f2, y2;                           /* FFN hidden pre/post GELU (act [B,L,F]), out (f1 and
                                                      y2 empty under recompute: attn_saved_t) */
} block_acts_t;

/* Gradient scratch shared by every block's backward. */
typedef struct grad_scratch {
    tensor_t g;                     /* res [B,L,C]: dLoss/d(residual stream), updated in place */
    tensor_t dh1;                   /* res [B,L,C]: sum of the q, k, v input gradients */
    tensor_t dact_a, dact_b;        /* act [B,L,C] */
    tensor_t dff;                   /* act [B,L,F] */
    tensor_t dq, dk, dv;            /* act [B,H,L,D] */
    tensor_t dcq, dck, dcv;         /* act [B,H,L,D] and [B,H,Lt,D] x2 */
    tensor_t dctx_lin, dctx_tmp;    /* act [B,Lt,C] */
    tensor_t dproj_w, dproj_b;      /* f32 [D,D], [D]: SLA overwrites, the model accumulates */
    tensor_t de;                    /* f32 [6,B,C]: one block's modulation gradient */
} grad_scratch_t;

struct dit_acts {
    block_params_t *bp;             /* [layers] */
    block_acts_t *blocks;           /* [layers], or [1] with recompute or forward-only */
    attn_saved_t *attn;             /* [layers] (forward-only: copies of one shared store) */
    sla_dims_t sla_dims;            /* SLA sizes of every SLA layer (set when there is one) */
    tensor_t *xs;                   /* res [layers+1] x [B,L,C]: each block's input, then the last output
                                       (forward-only: xs[l] = xs[l & 1], two buffers) */
    tensor_t *e_blk;                /* f32 [layers] x [6,B,C]: e0 + the block's modulation */
    tensor_t ones;                  /* f32 [B,C] of ones: an ungated residual add */
    /* embeddings */
    tensor_t patches, x0_act;       /* act [B,L,16*4], patch embedding out (act [B,L,C]) */
    tensor_t ctx_in, ctx_h1, ctx_h2, ctx; /* text [B,Lt,Dt] padded, MLP hidden pre/post GELU, out [B,Lt,C] */
    tensor_t temb, e1, e1s, e, es, e0flat, e0; /* f32 time path: [B,256], [B,C] x4, [B,6C], [6,B,C] */
    /* head */
    tensor_t eh, hn, hn_mean, hn_rstd, hm, ho; /* f32 [2,B,C], LN out, stats, modulated, out [B,L,64] */
    /* backward (not placed forward-only: empty descriptors) */
    grad_scratch_t gs;
    tensor_t dctx;                  /* res [B,Lt,C]: sum over blocks */
    tensor_t de0, de_e;             /* f32 [6,B,C], [B,C] */
    tensor_t dho, dhm, dhn, deh;    /* head gradients */
    tensor_t de0flat, des, de1s, dctx_act, dctx_h2, dctx_h1, dx0_act;
};

/* dit_block.c. With kept (the recompute pass), block_forward takes the self-attention's result and
 * the FFN's hidden before GELU and output from acts->attn[layer] (written by an earlier call for
 * the same input) instead of computing them, and writes no x_out (it may be NULL). */
void block_forward(dit_t *m, int layer, block_acts_t *a, const tensor_t *x_in, tensor_t *x_out, int kept);
void block_backward(dit_t *m, int layer, block_acts_t *a);

/* The same data under another shape with as many elements (CHECKed). */
tensor_t dit_view(const tensor_t *t, int ndim, const int64_t *shape);
/* Views into a [6,B,C] or [2,B,C] modulation tensor: chunk k as [B,C]. */
tensor_t dit_chunk(const tensor_t *e, int k);

#endif
