/* kernels/cpu/sla_cpu.c — SLA on the CPU: the oracle every other backend is tested against.
 *
 * sla_forward_cpu overwrites o [B,H,N,D] and fills saved (lut unless the caller imposed one, neg,
 * lse, os, ol); sla_backward_cpu overwrites dq, dk, dv [B,H,N,D], dproj_w [D,D], dproj_b [D].
 * fp32 tensors in and out, fp64 arithmetic throughout (the *_f64 entry points skip the fp32
 * conversion for finite-difference tests). Block selection as in sla.h and SLA.md section 1, the
 * sparse branch through attention_core.h, the linear branch in sla_linear_cpu.c.
 * Tested by tests/test_sla_cpu.c (finite differences, identities of SLA.md section 6). */
#include "sla_cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "attention_core.h"
#include "sla_linear_cpu.h"

/* ---- Block selection ------------------------------------------------------------------------ */

typedef struct ranked_block {
    double score;
    int j;
} ranked_block_t;

/* Higher score first; on equal scores the lower block index first. */
static int ranked_block_cmp(const void *pa, const void *pb) {
    const ranked_block_t *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return a->j - b->j;
}

static int int_cmp(const void *pa, const void *pb) { return *(const int32_t *)pa - *(const int32_t *)pb; }

/* Means of x [N, D] over blocks of `blk` rows (true count for the last), minus `offset` [D] if given. */
static void block_means(int N, int D, int blk, const double *x, const double *offset, double *out) {
    int T = (N + blk - 1) / blk;
    memset(out, 0, sizeof(double) * (unsigned long)T * D);
    for (int r = 0; r < N; r++)
        for (int a = 0; a < D; a++) out[(long)(r / blk) * D + a] += x[(long)r * D + a];
    for (int t = 0; t < T; t++) {
        int count = (t + 1) * blk < N ? blk : N - t * blk;
        for (int a = 0; a < D; a++) out[(long)t * D + a] = out[(long)t * D + a] / count - (offset ? offset[a] : 0.0);
    }
}

static void select_head(const sla_dims_t *d, const double *q, const double *k, int lut_given, int32_t *lut,
                        int32_t *neg) {
    int D = d->D, Tm = d->Tm, Tn = d->Tn;
    double *mu = xmalloc(sizeof(double) * D);
    block_means(d->N, D, d->N, k, NULL, mu); /* one block of all N rows: the mean of K */
    double *qbar = xmalloc(sizeof(double) * (unsigned long)Tm * D);
    double *kbar = xmalloc(sizeof(double) * (unsigned long)Tn * D);
    block_means(d->N, D, d->blk_q, q, NULL, qbar);
    block_means(d->N, D, d->blk_k, k, mu, kbar); /* smoothed K: K - mu */
    ranked_block_t *rank = xmalloc(sizeof(ranked_block_t) * (unsigned long)Tn);
    unsigned char *critical = xmalloc((unsigned long)Tn);
    for (int i = 0; i < Tm; i++) {
        for (int j = 0; j < Tn; j++) {
            double s = 0.0;
            for (int a = 0; a < D; a++) s += qbar[(long)i * D + a] * kbar[(long)j * D + a];
            rank[j].score = s, rank[j].j = j;
        }
        qsort(rank, (size_t)Tn, sizeof *rank, ranked_block_cmp);
        int32_t *li = lut + (long)i * d->kappa;
        if (!lut_given) {
            for (int t = 0; t < d->kappa; t++) li[t] = rank[t].j;
            qsort(li, (size_t)d->kappa, sizeof *li, int_cmp);
        }
        memset(critical, 0, (size_t)Tn);
        for (int t = 0; t < d->kappa; t++) critical[li[t]] = 1;
        /* Negligible: the lowest-ranked non-critical blocks. */
        int32_t *ni = neg + (long)i * d->n_negl;
        int taken = 0;
        for (int t = Tn - 1; t >= 0 && taken < d->n_negl; t--)
            if (!critical[rank[t].j]) ni[taken++] = rank[t].j;
        qsort(ni, (size_t)taken, sizeof *ni, int_cmp);
    }
    free(mu), free(qbar), free(kbar), free(rank), free(critical);
}

void sla_select_blocks_f64(const sla_dims_t *d, const double *q, const double *k, int lut_given, int32_t *lut,
                           int32_t *neg) {
    long head = (long)d->N * d->D;
    for (long bh = 0; bh < (long)d->B * d->H; bh++)
        select_head(d, q + bh * head, k + bh * head, lut_given, lut + bh * d->Tm * d->kappa,
                    neg + bh * d->Tm * d->n_negl);
}

/* mark [Tm, Tn] of one head from its lut and neg. */
static void mark_blocks(const sla_dims_t *d, const int32_t *lut, const int32_t *neg, unsigned char *mark) {
    memset(mark, SLA_MARK_MARGINAL, (size_t)d->Tm * d->Tn);
    for (int i = 0; i < d->Tm; i++) {
        for (int t = 0; t < d->kappa; t++) mark[(long)i * d->Tn + lut[(long)i * d->kappa + t]] = SLA_MARK_CRITICAL;
        for (int t = 0; t < d->n_negl; t++) mark[(long)i * d->Tn + neg[(long)i * d->n_negl + t]] = SLA_MARK_NEGLIGIBLE;
    }
}

/* ---- Sparse branch -------------------------------------------------------------------------- */

/* Rows [r0, r1) of query block i and its gathered critical keys. */
typedef struct sparse_tile {
    int r0, nr, nk;
    double *k, *kt, *v, *vt; /* [nk, D] and transposed [D, nk] */
    int *key_row;            /* [nk]: source row of each gathered key */
} sparse_tile_t;

static void sparse_tile_gather(const sla_dims_t *d, const int32_t *lut_i, int i, const double *k, const double *v,
                               sparse_tile_t *t) {
    int D = d->D;
    t->r0 = i * d->blk_q;
    t->nr = t->r0 + d->blk_q <= d->N ? d->blk_q : d->N - t->r0;
    t->nk = 0;
    for (int s = 0; s < d->kappa; s++) {
        int c0 = lut_i[s] * d->blk_k, c1 = c0 + d->blk_k < d->N ? c0 + d->blk_k : d->N;
        for (int c = c0; c < c1; c++, t->nk++) {
            t->key_row[t->nk] = c;
            memcpy(t->k + (long)t->nk * D, k + (long)c * D, sizeof(double) * D);
            memcpy(t->v + (long)t->nk * D, v + (long)c * D, sizeof(double) * D);
        }
    }
    transpose_f64(t->nk, D, t->k, t->kt);
    transpose_f64(t->nk, D, t->v, t->vt);
}

static sparse_tile_t sparse_tile_alloc(const sla_dims_t *d) {
    sparse_tile_t t;
    unsigned long cap = (unsigned long)d->kappa * d->blk_k, D = (unsigned long)d->D;
    t.k = xmalloc(sizeof(double) * cap * D), t.kt = xmalloc(sizeof(double) * cap * D);
    t.v = xmalloc(sizeof(double) * cap * D), t.vt = xmalloc(sizeof(double) * cap * D);
    t.key_row = xmalloc(sizeof(int) * cap);
    return t;
}

static void sparse_tile_free(sparse_tile_t *t) { free(t->k), free(t->kt), free(t->v), free(t->vt), free(t->key_row); }

/* ---- Forward / backward on doubles ---------------------------------------------------------- */

void sla_forward_f64(const sla_config_t *cfg, const sla_dims_t *d, const double *q, const double *k, const double *v,
                     const double *proj_w, const double *proj_b, const int32_t *lut, const int32_t *neg, double *o,
                     double *os, double *ol, double *lse) {
    int D = d->D;
    long head = (long)d->N * D;
    double scale = 1.0 / sqrt((double)D);
    sparse_tile_t t = sparse_tile_alloc(d);
    double *work = xmalloc(sizeof(double) * (unsigned long)d->blk_q * d->kappa * d->blk_k);
    unsigned char *mark = xmalloc((unsigned long)d->Tm * d->Tn);
    for (long bh = 0; bh < (long)d->B * d->H; bh++) {
        const double *qh = q + bh * head, *kh = k + bh * head, *vh = v + bh * head;
        const int32_t *luth = lut + bh * d->Tm * d->kappa;
        for (int i = 0; i < d->Tm; i++) {
            sparse_tile_gather(d, luth + (long)i * d->kappa, i, kh, vh, &t);
            attn_core_forward(t.nr, t.nk, D, scale, qh + (long)t.r0 * D, t.kt, t.v, os + bh * head + (long)t.r0 * D,
                              lse + bh * d->N + t.r0, work);
        }
        mark_blocks(d, luth, neg + bh * d->Tm * d->n_negl, mark);
        sla_linear_forward_head(cfg, d, mark, qh, kh, vh, ol + bh * head);
    }
    /* O = Os + Ol W^T + b */
    for (long r = 0; r < (long)d->B * d->H * d->N; r++)
        for (int e = 0; e < D; e++) {
            double acc = os[r * D + e] + proj_b[e];
            for (int a = 0; a < D; a++) acc += ol[r * D + a] * proj_w[(long)e * D + a];
            o[r * D + e] = acc;
        }
    sparse_tile_free(&t);
    free(work), free(mark);
}

void sla_backward_f64(const sla_config_t *cfg, const sla_dims_t *d, const double *q, const double *k, const double *v,
                      const double *proj_w, const int32_t *lut, const int32_t *neg, const double *os,
                      const double *ol, const double *lse, const double *dout, double *dq, double *dk, double *dv,
                      double *dproj_w, double *dproj_b) {
    int D = d->D;
    long head = (long)d->N * D, rows = (long)d->B * d->H * d->N;
    double scale = 1.0 / sqrt((double)D);
    /* Proj: dW = sum G^T Ol, db = sum G, dOl = G W (dOs = G). */
    double *dol = xmalloc(sizeof(double) * (unsigned long)rows * D);
    memset(dproj_w, 0, sizeof(double) * (unsigned long)D * D);
    memset(dproj_b, 0, sizeof(double) * D);
    for (long r = 0; r < rows; r++) {
        const double *g = dout + r * D, *olr = ol + r * D;
        double *dolr = dol + r * D;
        memset(dolr, 0, sizeof(double) * D);
        for (int e = 0; e < D; e++) {
            dproj_b[e] += g[e];
            for (int a = 0; a < D; a++) {
                dproj_w[(long)e * D + a] += g[e] * olr[a];
                dolr[a] += g[e] * proj_w[(long)e * D + a];
            }
        }
    }
    memset(dk, 0, sizeof(double) * (unsigned long)rows * D);
    memset(dv, 0, sizeof(double) * (unsigned long)rows * D);
    sparse_tile_t t = sparse_tile_alloc(d);
    unsigned long cap = (unsigned long)d->kappa * d->blk_k;
    double *work = xmalloc(sizeof(double) * (unsigned long)d->blk_q * cap);
    double *dkg = xmalloc(sizeof(double) * cap * D), *dvg = xmalloc(sizeof(double) * cap * D);
    unsigned char *mark = xmalloc((unsigned long)d->Tm * d->Tn);
    for (long bh = 0; bh < (long)d->B * d->H; bh++) {
        const double *qh = q + bh * head, *kh = k + bh * head, *vh = v + bh * head;
        double *dqh = dq + bh * head, *dkh = dk + bh * head, *dvh = dv + bh * head;
        const int32_t *luth = lut + bh * d->Tm * d->kappa;
        for (int i = 0; i < d->Tm; i++) {
            sparse_tile_gather(d, luth + (long)i * d->kappa, i, kh, vh, &t);
            memset(dkg, 0, sizeof(double) * (unsigned long)t.nk * D);
            memset(dvg, 0, sizeof(double) * (unsigned long)t.nk * D);
            long row = bh * head + (long)t.r0 * D;
            attn_core_backward(t.nr, t.nk, D, scale, q + row, t.k, t.kt, t.vt, os + row, lse + bh * d->N + t.r0,
                               dout + row, dq + row, dkg, dvg, work);
            for (int c = 0; c < t.nk; c++)
                for (int a = 0; a < D; a++) {
                    dkh[(long)t.key_row[c] * D + a] += dkg[(long)c * D + a];
                    dvh[(long)t.key_row[c] * D + a] += dvg[(long)c * D + a];
                }
        }
        mark_blocks(d, luth, neg + bh * d->Tm * d->n_negl, mark);
        sla_linear_backward_head(cfg, d, mark, qh, kh, vh, ol + bh * head, dol + bh * head, dqh, dkh, dvh);
    }
    sparse_tile_free(&t);
    free(work), free(dkg), free(dvg), free(mark), free(dol);
}

/* ---- fp32 tensor entry points --------------------------------------------------------------- */

void sla_forward_cpu(const sla_config_t *cfg, const sla_dims_t *d, const tensor_t *q, const tensor_t *k,
                     const tensor_t *v, const tensor_t *proj_w, const tensor_t *proj_b, int lut_given, tensor_t *o,
                     sla_saved_t *saved) {
    long n = tensor_numel(q);
    double *qd = f64_from_f32(q->data, n), *kd = f64_from_f32(k->data, n), *vd = f64_from_f32(v->data, n);
    double *wd = f64_from_f32(proj_w->data, (long)d->D * d->D), *bd = f64_from_f32(proj_b->data, d->D);
    double *od = xmalloc(sizeof(double) * n), *osd = xmalloc(sizeof(double) * n), *old = xmalloc(sizeof(double) * n);
    double *lsed = xmalloc(sizeof(double) * (unsigned long)tensor_numel(&saved->lse));
    sla_select_blocks_f64(d, qd, kd, lut_given, saved->lut.data, saved->neg.data);
    sla_forward_f64(cfg, d, qd, kd, vd, wd, bd, saved->lut.data, saved->neg.data, od, osd, old, lsed);
    f32_from_f64(o->data, od, n);
    f32_from_f64(saved->os.data, osd, n);
    f32_from_f64(saved->ol.data, old, n);
    f32_from_f64(saved->lse.data, lsed, tensor_numel(&saved->lse));
    free(qd), free(kd), free(vd), free(wd), free(bd), free(od), free(osd), free(old), free(lsed);
}

void sla_backward_cpu(const sla_config_t *cfg, const sla_dims_t *d, const tensor_t *q, const tensor_t *k,
                      const tensor_t *v, const tensor_t *proj_w, const sla_saved_t *saved, const tensor_t *dout,
                      tensor_t *dq, tensor_t *dk, tensor_t *dv, tensor_t *dproj_w, tensor_t *dproj_b) {
    long n = tensor_numel(q), DD = (long)d->D * d->D;
    double *qd = f64_from_f32(q->data, n), *kd = f64_from_f32(k->data, n), *vd = f64_from_f32(v->data, n);
    double *wd = f64_from_f32(proj_w->data, DD), *gd = f64_from_f32(dout->data, n);
    double *osd = f64_from_f32(saved->os.data, n), *old = f64_from_f32(saved->ol.data, n);
    double *lsed = f64_from_f32(saved->lse.data, tensor_numel(&saved->lse));
    double *dqd = xmalloc(sizeof(double) * n), *dkd = xmalloc(sizeof(double) * n), *dvd = xmalloc(sizeof(double) * n);
    double *dwd = xmalloc(sizeof(double) * DD), *dbd = xmalloc(sizeof(double) * d->D);
    sla_backward_f64(cfg, d, qd, kd, vd, wd, saved->lut.data, saved->neg.data, osd, old, lsed, gd, dqd, dkd, dvd, dwd,
                     dbd);
    f32_from_f64(dq->data, dqd, n);
    f32_from_f64(dk->data, dkd, n);
    f32_from_f64(dv->data, dvd, n);
    f32_from_f64(dproj_w->data, dwd, DD);
    f32_from_f64(dproj_b->data, dbd, d->D);
    free(qd), free(kd), free(vd), free(wd), free(gd), free(osd), free(old), free(lsed);
    free(dqd), free(dkd), free(dvd), free(dwd), free(dbd);
}
