/* kernels/cpu/sla_linear_cpu.c — SLA's linear branch on the CPU (SLA.md sections 3 and 5), fp64.
 * Contract in sla_linear_cpu.h. Per key block j: h_j = sum phi(K_c)^T V_c [D, D], z_j = sum
 * phi(K_c) [D]; per query block i: H_i, Z_i summed over its linear key blocks; per row
 * Ol_r = phi(Q_r) H_i / den_r with den_r = phi(Q_r) . Z_i (+ 1e-5 in the "all" variant). A row
 * whose query block has no linear key block, or whose den_r <= 0 (possible with relu), gets
 * Ol_r = 0 and sends no gradient. */
#include "sla_linear_cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"

/* phi applied to one row x [D] into y [D]. */
static void feature_row(sla_feature_t f, int D, const double *x, double *y) {
    if (f == SLA_FEATURE_SOFTMAX) {
        double m = -INFINITY, s = 0.0;
        for (int a = 0; a < D; a++) m = x[a] > m ? x[a] : m;
        for (int a = 0; a < D; a++) s += (y[a] = exp(x[a] - m));
        for (int a = 0; a < D; a++) y[a] /= s;
    } else if (f == SLA_FEATURE_ELU) {
        for (int a = 0; a < D; a++) y[a] = x[a] > 0 ? x[a] + 1.0 : exp(x[a]);
    } else {
        for (int a = 0; a < D; a++) y[a] = x[a] > 0 ? x[a] : 0.0;
    }
}

/* dx [D] += dphi pulled back through phi at x (y = phi(x)). */
static void feature_row_backward(sla_feature_t f, int D, const double *x, const double *y, const double *dy,
                                 double *dx) {
    if (f == SLA_FEATURE_SOFTMAX) {
        double dot = 0.0;
        for (int a = 0; a < D; a++) dot += dy[a] * y[a];
        for (int a = 0; a < D; a++) dx[a] += y[a] * (dy[a] - dot);
    } else if (f == SLA_FEATURE_ELU) {
        for (int a = 0; a < D; a++) dx[a] += dy[a] * (x[a] > 0 ? 1.0 : y[a]);
    } else {
        for (int a = 0; a < D; a++) dx[a] += x[a] > 0 ? dy[a] : 0.0;
    }
}

static double *features(sla_feature_t f, int N, int D, const double *x) {
    double *y = xmalloc(sizeof(double) * (unsigned long)N * D);
    for (int r = 0; r < N; r++) feature_row(f, D, x + (long)r * D, y + (long)r * D);
    return y;
}

/* h [Tn, D, D] and z [Tn, D]: per key block sums of phi(K_c)^T V_c and phi(K_c). */
static void block_states(const sla_dims_t *d, const double *phik, const double *v, double *h, double *z) {
    int D = d->D;
    memset(h, 0, sizeof(double) * (unsigned long)d->Tn * D * D);
    memset(z, 0, sizeof(double) * (unsigned long)d->Tn * D);
    for (int c = 0; c < d->N; c++) {
        int j = c / d->blk_k;
        const double *pk = phik + (long)c * D, *vc = v + (long)c * D;
        double *hj = h + (long)j * D * D, *zj = z + (long)j * D;
        for (int a = 0; a < D; a++) {
            zj[a] += pk[a];
            for (int e = 0; e < D; e++) hj[(long)a * D + e] += pk[a] * vc[e];
        }
    }
}

/* 1 when key block j feeds the linear branch of query block i. */
static int is_linear(const sla_config_t *cfg, const sla_dims_t *d, const unsigned char *mark, int i, int j) {
    return cfg->variant == SLA_VARIANT_ALL || mark[(long)i * d->Tn + j] == SLA_MARK_MARGINAL;
}

/* out [Tm, n] = for each query block i, the sum of in [Tn, n] over its linear key blocks (H_i from
 * h_j with n = D*D, Z_i from z_j with n = D); has_any[i] says whether block i has any. */
static void sum_linear_blocks(const sla_config_t *cfg, const sla_dims_t *d, const unsigned char *mark, int n,
                              const double *in, double *out, int *has_any) {
    memset(out, 0, sizeof(double) * (unsigned long)d->Tm * n);
    for (int i = 0; i < d->Tm; i++) {
        has_any[i] = 0;
        for (int j = 0; j < d->Tn; j++) {
            if (!is_linear(cfg, d, mark, i, j)) continue;
            has_any[i] = 1;
            for (int x = 0; x < n; x++) out[(long)i * n + x] += in[(long)j * n + x];
        }
    }
}

/* den_r for row r of query block i, or 0 when the row sends nothing (see file comment). */
static double row_den(const sla_config_t *cfg, int D, const double *phiq_r, const double *Zi, int has_any) {
    if (!has_any) return 0.0;
    double den = cfg->variant == SLA_VARIANT_ALL ? SLA_ALL_DEN_EPS : 0.0;
    for (int a = 0; a < D; a++) den += phiq_r[a] * Zi[a];
    return den > 0.0 ? den : 0.0;
}

typedef struct linear_state {
    double *phiq, *phik; /* [N, D] */
    double *H, *Z;       /* [Tm, D, D], [Tm, D] */
    int *has_any;        /* [Tm] */
} linear_state_t;

static linear_state_t linear_state_build(const sla_config_t *cfg, const sla_dims_t *d, const unsigned char *mark,
                                         const double *q, const double *k, const double *v) {
    int D = d->D;
    linear_state_t s;
    s.phiq = features(cfg->feature, d->N, D, q);
    s.phik = features(cfg->feature, d->N, D, k);
    double *h = xmalloc(sizeof(double) * (unsigned long)d->Tn * D * D);
    double *z = xmalloc(sizeof(double) * (unsigned long)d->Tn * D);
    block_states(d, s.phik, v, h, z);
    s.H = xmalloc(sizeof(double) * (unsigned long)d->Tm * D * D);
    s.Z = xmalloc(sizeof(double) * (unsigned long)d->Tm * D);
    s.has_any = xmalloc(sizeof(int) * (unsigned long)d->Tm);
    sum_linear_blocks(cfg, d, mark, D * D, h, s.H, s.has_any);
    sum_linear_blocks(cfg, d, mark, D, z, s.Z, s.has_any);
    free(h), free(z);
    return s;
}

static void linear_state_free(linear_state_t *s) { free(s->phiq), free(s->phik), free(s->H), free(s->Z), free(s->has_any); }

void sla_linear_forward_head(const sla_config_t *cfg, const sla_dims_t *d, const unsigned char *mark,
                             const double *q, const double *k, const double *v, double *ol) {
    int D = d->D;
    linear_state_t s = linear_state_build(cfg, d, mark, q, k, v);
    for (int r = 0; r < d->N; r++) {
        int i = r / d->blk_q;
        const double *pq = s.phiq + (long)r * D, *Hi = s.H + (long)i * D * D;
        double *olr = ol + (long)r * D;
        double den = row_den(cfg, D, pq, s.Z + (long)i * D, s.has_any[i]);
        memset(olr, 0, sizeof(double) * D);
        if (den == 0.0) continue;
        for (int a = 0; a < D; a++) {
            double w = pq[a] / den;
            for (int e = 0; e < D; e++) olr[e] += w * Hi[(long)a * D + e];
        }
    }
    linear_state_free(&s);
}

void sla_linear_backward_head(const sla_config_t *cfg, const sla_dims_t *d, const unsigned char *mark,
                              const double *q, const double *k, const double *v, const double *ol,
                              const double *dol, double *dq, double *dk, double *dv) {
    int D = d->D;
    linear_state_t s = linear_state_build(cfg, d, mark, q, k, v);
    double *A = xcalloc((unsigned long)d->Tm * D * D, sizeof(double)); /* A_i = sum Q^_r^T dOl_r */
    double *beta = xcalloc((unsigned long)d->Tm * D, sizeof(double));   /* beta_i = sum Dl_r Q^_r */
    double *dphi = xmalloc(sizeof(double) * D);
    for (int r = 0; r < d->N; r++) {
        int i = r / d->blk_q;
        const double *pq = s.phiq + (long)r * D, *Hi = s.H + (long)i * D * D, *Zi = s.Z + (long)i * D;
        const double *g = dol + (long)r * D, *olr = ol + (long)r * D;
        double den = row_den(cfg, D, pq, Zi, s.has_any[i]);
        if (den == 0.0) continue;
        double dl = 0.0;
        for (int e = 0; e < D; e++) dl += g[e] * olr[e];
        for (int a = 0; a < D; a++) { /* dphi(Q_r) = (dOl_r H_i^T - Dl_r Z_i) / den_r */
            double acc = 0.0;
            for (int e = 0; e < D; e++) acc += g[e] * Hi[(long)a * D + e];
            dphi[a] = (acc - dl * Zi[a]) / den;
        }
        feature_row_backward(cfg->feature, D, q + (long)r * D, pq, dphi, dq + (long)r * D);
        double *Ai = A + (long)i * D * D, *bi = beta + (long)i * D;
        for (int a = 0; a < D; a++) {
            double qh = pq[a] / den;
            bi[a] += dl * qh;
            for (int e = 0; e < D; e++) Ai[(long)a * D + e] += qh * g[e];
        }
    }
    /* Per key block j: Abar_j, betabar_j summed over the query blocks that use j linearly. */
    double *Abar = xmalloc(sizeof(double) * (unsigned long)D * D), *bbar = xmalloc(sizeof(double) * D);
    for (int j = 0; j < d->Tn; j++) {
        memset(Abar, 0, sizeof(double) * (unsigned long)D * D);
        memset(bbar, 0, sizeof(double) * D);
        for (int i = 0; i < d->Tm; i++) {
            if (!is_linear(cfg, d, mark, i, j)) continue;
            for (int x = 0; x < D * D; x++) Abar[x] += A[(long)i * D * D + x];
            for (int a = 0; a < D; a++) bbar[a] += beta[(long)i * D + a];
        }
        int c1 = (j + 1) * d->blk_k < d->N ? (j + 1) * d->blk_k : d->N;
        for (int c = j * d->blk_k; c < c1; c++) {
            const double *vc = v + (long)c * D, *pk = s.phik + (long)c * D;
            double *dvc = dv + (long)c * D;
            for (int a = 0; a < D; a++) { /* dphi(K_c) = V_c Abar_j^T - betabar_j; dV_c += phi(K_c) Abar_j */
                double acc = 0.0;
                const double *Aa = Abar + (long)a * D;
                for (int e = 0; e < D; e++) {
                    acc += vc[e] * Aa[e];
                    dvc[e] += pk[a] * Aa[e];
                }
                dphi[a] = acc - bbar[a];
            }
            feature_row_backward(cfg->feature, D, k + (long)c * D, pk, dphi, dk + (long)c * D);
        }
    }
    free(Abar), free(bbar), free(A), free(beta), free(dphi);
    linear_state_free(&s);
}
