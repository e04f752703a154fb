/* kernels/cpu/attention_cpu.c — dense softmax attention on the CPU (fp32 tensors, fp64 math) and
 * the shared row-tile kernel of attention_core.h.
 *
 * attn_forward_cpu overwrites o [B,H,Nq,D] and lse [B,H,Nq]; attn_backward_cpu overwrites dq, dk,
 * dv. Scale 1/sqrt(D), no mask, Nk may differ from Nq (cross-attention).
 * Tested by tests/test_attention_cpu.c (naive formula, finite differences). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "attention_core.h"
#include "sla_cpu.h"

/* Query rows per tile: bounds the score scratch to ROW_TILE * Nk doubles. */
#define ROW_TILE 64

void transpose_f64(int rows, int cols, const double *src, double *dst) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) dst[(long)c * rows + r] = src[(long)r * cols + c];
}

double *f64_from_f32(const float *src, long n) {
    double *d = xmalloc((unsigned long)n * sizeof(double));
    for (long i = 0; i < n; i++) d[i] = src[i];
    return d;
}

void f32_from_f64(float *dst, const double *src, long n) {
    for (long i = 0; i < n; i++) dst[i] = (float)src[i];
}

/* s [nr, nk] = scale * a [nr, D] . bt [D, nk] (bt is b transposed). */
static void scores(int nr, int nk, int D, double scale, const double *a, const double *bt, double *s) {
    for (int r = 0; r < nr; r++) {
        double *sr = s + (long)r * nk;
        memset(sr, 0, sizeof(double) * nk);
        for (int x = 0; x < D; x++) {
            double ax = a[(long)r * D + x] * scale;
            const double *bx = bt + (long)x * nk;
            for (int c = 0; c < nk; c++) sr[c] += ax * bx[c];
        }
    }
}

void attn_core_forward(int nr, int nk, int D, double scale, const double *q, const double *kt, const double *v,
                       double *o, double *lse, double *work) {
    scores(nr, nk, D, scale, q, kt, work);
    for (int r = 0; r < nr; r++) {
        double *p = work + (long)r * nk, *orow = o + (long)r * D;
        double m = -INFINITY, sum = 0.0;
        for (int c = 0; c < nk; c++) m = p[c] > m ? p[c] : m;
        for (int c = 0; c < nk; c++) {
            p[c] = exp(p[c] - m);
            sum += p[c];
        }
        lse[r] = m + log(sum);
        memset(orow, 0, sizeof(double) * D);
        for (int c = 0; c < nk; c++) {
            double w = p[c] / sum;
            const double *vc = v + (long)c * D;
            for (int x = 0; x < D; x++) orow[x] += w * vc[x];
        }
    }
}

void attn_core_backward(int nr, int nk, int D, double scale, const double *q, const double *k, const double *kt,
                        const double *vt, const double *o, const double *lse, const double *dout, double *dq,
                        double *dk, double *dv, double *work) {
    double *dp = xmalloc(sizeof(double) * (unsigned long)nk);
    scores(nr, nk, D, scale, q, kt, work); /* work holds S, then P */
    for (int r = 0; r < nr; r++) {
        double *p = work + (long)r * nk;
        const double *g = dout + (long)r * D;
        double ds = 0.0; /* Ds_r = rowsum(dout_r * o_r) */
        for (int x = 0; x < D; x++) ds += g[x] * o[(long)r * D + x];
        for (int c = 0; c < nk; c++) p[c] = exp(p[c] - lse[r]);
        memset(dp, 0, sizeof(double) * nk); /* dP_r = dout_r . V^T */
        for (int x = 0; x < D; x++) {
            const double *vx = vt + (long)x * nk;
            for (int c = 0; c < nk; c++) dp[c] += g[x] * vx[c];
        }
        double *dqr = dq + (long)r * D;
        const double *qr = q + (long)r * D;
        memset(dqr, 0, sizeof(double) * D);
        for (int c = 0; c < nk; c++) {
            double dsc = p[c] * (dp[c] - ds) * scale;
            const double *kc = k + (long)c * D;
            double *dkc = dk + (long)c * D, *dvc = dv + (long)c * D;
            for (int x = 0; x < D; x++) {
                dqr[x] += dsc * kc[x];
                dkc[x] += dsc * qr[x];
                dvc[x] += p[c] * g[x];
            }
        }
    }
    free(dp);
}

void attn_forward_f64(int B, int H, int Nq, int Nk, int D, const double *q, const double *k, const double *v,
                      double *o, double *lse) {
    double scale = 1.0 / sqrt((double)D);
    double *kt = xmalloc(sizeof(double) * (unsigned long)Nk * D);
    double *work = xmalloc(sizeof(double) * (unsigned long)ROW_TILE * Nk);
    for (long bh = 0; bh < (long)B * H; bh++) {
        const double *kh = k + bh * Nk * D, *vh = v + bh * Nk * D;
        transpose_f64(Nk, D, kh, kt);
        for (int r0 = 0; r0 < Nq; r0 += ROW_TILE) {
            int nr = Nq - r0 < ROW_TILE ? Nq - r0 : ROW_TILE;
            long row = bh * Nq + r0;
            attn_core_forward(nr, Nk, D, scale, q + row * D, kt, vh, o + row * D, lse + row, work);
        }
    }
    free(kt);
    free(work);
}

void attn_backward_f64(int B, int H, int Nq, int Nk, int D, const double *q, const double *k, const double *v,
                       const double *o, const double *lse, const double *dout, double *dq, double *dk, double *dv) {
    double scale = 1.0 / sqrt((double)D);
    double *kt = xmalloc(sizeof(double) * (unsigned long)Nk * D);
    double *vt = xmalloc(sizeof(double) * (unsigned long)Nk * D);
    double *work = xmalloc(sizeof(double) * (unsigned long)ROW_TILE * Nk);
    memset(dk, 0, sizeof(double) * (unsigned long)B * H * Nk * D);
    memset(dv, 0, sizeof(double) * (unsigned long)B * H * Nk * D);
    for (long bh = 0; bh < (long)B * H; bh++) {
        const double *kh = k + bh * Nk * D;
        transpose_f64(Nk, D, kh, kt);
        transpose_f64(Nk, D, v + bh * Nk * D, vt);
        for (int r0 = 0; r0 < Nq; r0 += ROW_TILE) {
            int nr = Nq - r0 < ROW_TILE ? Nq - r0 : ROW_TILE;
            long row = bh * Nq + r0;
            attn_core_backward(nr, Nk, D, scale, q + row * D, kh, kt, vt, o + row * D, lse + row, dout + row * D,
                               dq + row * D, dk + bh * Nk * D, dv + bh * Nk * D, work);
        }
    }
    free(kt);
    free(vt);
    free(work);
}

void attn_forward_cpu(const tensor_t *q, const tensor_t *k, const tensor_t *v, tensor_t *o, tensor_t *lse) {
    int B = (int)q->shape[0], H = (int)q->shape[1], Nq = (int)q->shape[2], Nk = (int)k->shape[2], D = (int)q->shape[3];
    double *qd = f64_from_f32(q->data, tensor_numel(q)), *kd = f64_from_f32(k->data, tensor_numel(k));
    double *vd = f64_from_f32(v->data, tensor_numel(v));
    double *od = xmalloc(sizeof(double) * (unsigned long)tensor_numel(o));
    double *ld = xmalloc(sizeof(double) * (unsigned long)tensor_numel(lse));
    attn_forward_f64(B, H, Nq, Nk, D, qd, kd, vd, od, ld);
    f32_from_f64(o->data, od, tensor_numel(o));
    f32_from_f64(lse->data, ld, tensor_numel(lse));
    free(qd), free(kd), free(vd), free(od), free(ld);
}

void attn_backward_cpu(const tensor_t *q, const tensor_t *k, const tensor_t *v, const tensor_t *o,
                       const tensor_t *lse, const tensor_t *dout, tensor_t *dq, tensor_t *dk, tensor_t *dv) {
    int B = (int)q->shape[0], H = (int)q->shape[1], Nq = (int)q->shape[2], Nk = (int)k->shape[2], D = (int)q->shape[3];
    double *in[6];
    const tensor_t *src[6] = {q, k, v, o, lse, dout};
    for (int i = 0; i < 6; i++) in[i] = f64_from_f32(src[i]->data, tensor_numel(src[i]));
    double *dqd = xmalloc(sizeof(double) * (unsigned long)tensor_numel(dq));
    double *dkd = xmalloc(sizeof(double) * (unsigned long)tensor_numel(dk));
    double *dvd = xmalloc(sizeof(double) * (unsigned long)tensor_numel(dv));
    attn_backward_f64(B, H, Nq, Nk, D, in[0], in[1], in[2], in[3], in[4], in[5], dqd, dkd, dvd);
    f32_from_f64(dq->data, dqd, tensor_numel(dq));
    f32_from_f64(dk->data, dkd, tensor_numel(dk));
    f32_from_f64(dv->data, dvd, tensor_numel(dv));
    for (int i = 0; i < 6; i++) free(in[i]);
    free(dqd), free(dkd), free(dvd);
}
