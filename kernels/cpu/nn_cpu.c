/* kernels/cpu/nn_cpu.c — linear layers, LayerNorm, RMSNorm, modulation, gated residual, GELU-tanh
 * and SiLU on the CPU (fp32 tensors, fp64 math), forward and backward.
 *
 * Contracts as in ../nn_ops.h: activation gradients overwritten (=); parameter gradients dw, db,
 * dweight, dbias accumulated (+=) — the tensor entry points add the fp64 result to the fp32
 * tensor. All sums run in a fixed order (deterministic). The *_f64 functions keep the same
 * contracts on double arrays for the finite-difference tests (tests/test_nn_cpu.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "attention_core.h"
#include "nn_cpu.h"

/* ---- helpers ---------------------------------------------------------------------------------- */

static double *f64_of(const tensor_t *t) { return t ? f64_from_f32(t->data, tensor_numel(t)) : NULL; }
static double *f64_zeros(long n) { return xcalloc((unsigned long)(n > 0 ? n : 1), sizeof(double)); }

/* t (f32) += a (double), rounding once. */
static void f32_add_f64(const tensor_t *t, const double *a) {
    float *d = t->data;
    for (long i = 0; i < tensor_numel(t); i++) d[i] = (float)((double)d[i] + a[i]);
}

static long rows_of(const tensor_t *x) { return (long)(tensor_numel(x) / x->shape[x->ndim - 1]); }
static int last_dim(const tensor_t *x) { return (int)x->shape[x->ndim - 1]; }

/* ---- linear ----------------------------------------------------------------------------------- */

/* Rows of x per block in dw: keeps a block of x in cache while dw [N,K] streams once per block. */
#define LINEAR_ROW_BLOCK 16

void linear_forward_f64(long M, int K, int N, const double *x, const double *w, const double *b, double *y) {
    double *wt = xmalloc(sizeof(double) * (unsigned long)K * N);
    transpose_f64(N, K, w, wt); /* wt [K, N]: the inner loop runs over contiguous outputs */
    for (long m = 0; m < M; m++) {
        double *ym = y + m * N;
        const double *xm = x + m * K;
        for (int n = 0; n < N; n++) ym[n] = b ? b[n] : 0.0;
        for (int k = 0; k < K; k++) {
            double a = xm[k];
            const double *wk = wt + (long)k * N;
            for (int n = 0; n < N; n++) ym[n] += a * wk[n];
        }
    }
    free(wt);
}

void linear_backward_f64(long M, int K, int N, const double *x, const double *w, const double *dy, double *dx,
                         double *dw, double *db) {
    if (dx)
        for (long m = 0; m < M; m++) { /* dx [M,K] = dy [M,N] w [N,K] */
            double *dxm = dx + m * K;
            memset(dxm, 0, sizeof(double) * K);
            for (int n = 0; n < N; n++) {
                double g = dy[m * N + n];
                const double *wn = w + (long)n * K;
                for (int k = 0; k < K; k++) dxm[k] += g * wn[k];
            }
        }
    for (long m0 = 0; m0 < M; m0 += LINEAR_ROW_BLOCK) { /* dw [N,K] += dy^T x, rows in order */
        long m1 = m0 + LINEAR_ROW_BLOCK < M ? m0 + LINEAR_ROW_BLOCK : M;
        for (int n = 0; n < N; n++) {
            double *dwn = dw + (long)n * K;
            for (long m = m0; m < m1; m++) {
                double g = dy[m * N + n];
                const double *xm = x + m * K;
                for (int k = 0; k < K; k++) dwn[k] += g * xm[k];
            }
        }
    }
    if (db)
        for (long m = 0; m < M; m++)
            for (int n = 0; n < N; n++) db[n] += dy[m * N + n];
}

void linear_forward_cpu(const tensor_t *x, const tensor_t *w, const tensor_t *b, tensor_t *y) {
    long M = rows_of(x);
    int K = last_dim(x), N = (int)w->shape[0];
    double *xd = f64_of(x), *wd = f64_of(w), *bd = f64_of(b), *yd = f64_zeros(M * N);
    linear_forward_f64(M, K, N, xd, wd, bd, yd);
    f32_from_f64(y->data, yd, M * N);
    free(xd), free(wd), free(bd), free(yd);
}

void linear_backward_gelu_input_cpu(const tensor_t *x, const tensor_t *pre, const tensor_t *w, const tensor_t *dy,
                                    tensor_t *dpre, tensor_t *dw, tensor_t *db) {
    linear_backward_cpu(x, w, dy, dpre, 0, dw, db);
    gelu_backward_cpu(pre, dpre, dpre);
}

void linear_backward_cpu(const tensor_t *x, const tensor_t *w, const tensor_t *dy, tensor_t *dx, int dx_accumulate,
                         tensor_t *dw, tensor_t *db) {
    long M = rows_of(x);
    int K = last_dim(x), N = (int)w->shape[0];
    double *xd = f64_of(x), *wd = f64_of(w), *gd = f64_of(dy);
    double *dxd = dx ? f64_zeros(M * K) : NULL, *dwd = f64_zeros((long)N * K), *dbd = db ? f64_zeros(N) : NULL;
    linear_backward_f64(M, K, N, xd, wd, gd, dxd, dwd, dbd);
    if (dx && dx_accumulate) f32_add_f64(dx, dxd);
    else if (dx) f32_from_f64(dx->data, dxd, M * K);
    f32_add_f64(dw, dwd);
    if (db) f32_add_f64(db, dbd);
    free(xd), free(wd), free(gd), free(dxd), free(dwd), free(dbd);
}

/* ---- LayerNorm / RMSNorm ---------------------------------------------------------------------- */

void layernorm_forward_f64(long M, int C, double eps, const double *x, const double *w, const double *b, double *y,
                           double *mean, double *rstd) {
    for (long m = 0; m < M; m++) {
        const double *xm = x + m * C;
        double mu = 0.0, var = 0.0;
        for (int c = 0; c < C; c++) mu += xm[c];
        mu /= C;
        for (int c = 0; c < C; c++) var += (xm[c] - mu) * (xm[c] - mu); /* two passes: no cancellation */
        double r = 1.0 / sqrt(var / C + eps);
        for (int c = 0; c < C; c++) y[m * C + c] = (xm[c] - mu) * r * (w ? w[c] : 1.0) + (b ? b[c] : 0.0);
        mean[m] = mu;
        rstd[m] = r;
    }
}

/* dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy w. */
void layernorm_backward_f64(long M, int C, const double *x, const double *w, const double *mean, const double *rstd,
                            const double *dy, double *dx, double *dw, double *db) {
    for (long m = 0; m < M; m++) {
        const double *xm = x + m * C, *gm = dy + m * C;
        double sg = 0.0, sgx = 0.0;
        for (int c = 0; c < C; c++) {
            double xh = (xm[c] - mean[m]) * rstd[m], g = gm[c] * (w ? w[c] : 1.0);
            sg += g;
            sgx += g * xh;
            if (dw) dw[c] += gm[c] * xh;
            if (db) db[c] += gm[c];
        }
        sg /= C, sgx /= C;
        for (int c = 0; c < C; c++) {
            double xh = (xm[c] - mean[m]) * rstd[m], g = gm[c] * (w ? w[c] : 1.0);
            dx[m * C + c] = rstd[m] * (g - sg - xh * sgx);
        }
    }
}

void rmsnorm_forward_f64(long M, int C, double eps, const double *x, const double *w, double *y, double *rstd) {
    for (long m = 0; m < M; m++) {
        const double *xm = x + m * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += xm[c] * xm[c];
        double r = 1.0 / sqrt(ss / C + eps);
        for (int c = 0; c < C; c++) y[m * C + c] = xm[c] * r * w[c];
        rstd[m] = r;
    }
}

/* dx = rstd (g - xhat mean(g xhat)), g = dy w, xhat = x rstd. */
void rmsnorm_backward_f64(long M, int C, const double *x, const double *w, const double *rstd, const double *dy,
                          double *dx, double *dw) {
    for (long m = 0; m < M; m++) {
        const double *xm = x + m * C, *gm = dy + m * C;
        double sgx = 0.0;
        for (int c = 0; c < C; c++) {
            double xh = xm[c] * rstd[m];
            sgx += gm[c] * w[c] * xh;
            if (dw) dw[c] += gm[c] * xh;
        }
        sgx /= C;
        for (int c = 0; c < C; c++) dx[m * C + c] = rstd[m] * (gm[c] * w[c] - xm[c] * rstd[m] * sgx);
    }
}

void layernorm_forward_cpu(const tensor_t *x, const tensor_t *weight, const tensor_t *bias, float eps, tensor_t *y,
                           tensor_t *mean, tensor_t *rstd) {
    long M = rows_of(x);
    int C = last_dim(x);
    double *xd = f64_of(x), *wd = f64_of(weight), *bd = f64_of(bias), *yd = f64_zeros(M * C);
    double *md = f64_zeros(M), *rd = f64_zeros(M);
    layernorm_forward_f64(M, C, eps, xd, wd, bd, yd, md, rd);
    f32_from_f64(y->data, yd, M * C);
    f32_from_f64(mean->data, md, M);
    f32_from_f64(rstd->data, rd, M);
    free(xd), free(wd), free(bd), free(yd), free(md), free(rd);
}

void layernorm_backward_cpu(const tensor_t *x, const tensor_t *weight, const tensor_t *mean, const tensor_t *rstd,
                            const tensor_t *dy, tensor_t *dx, int accumulate, tensor_t *dweight, tensor_t *dbias) {
    long M = rows_of(x);
    int C = last_dim(x);
    double *xd = f64_of(x), *wd = f64_of(weight), *md = f64_of(mean), *rd = f64_of(rstd), *gd = f64_of(dy);
    double *dxd = f64_zeros(M * C), *dwd = dweight ? f64_zeros(C) : NULL, *dbd = dbias ? f64_zeros(C) : NULL;
    layernorm_backward_f64(M, C, xd, wd, md, rd, gd, dxd, dwd, dbd);
    if (accumulate) f32_add_f64(dx, dxd);
    else f32_from_f64(dx->data, dxd, M * C);
    if (dweight) f32_add_f64(dweight, dwd);
    if (dbias) f32_add_f64(dbias, dbd);
    free(xd), free(wd), free(md), free(rd), free(gd), free(dxd), free(dwd), free(dbd);
}

void rmsnorm_forward_cpu(const tensor_t *x, const tensor_t *weight, float eps, tensor_t *y, tensor_t *rstd) {
    long M = rows_of(x);
    int C = last_dim(x);
    double *xd = f64_of(x), *wd = f64_of(weight), *yd = f64_zeros(M * C), *rd = f64_zeros(M);
    rmsnorm_forward_f64(M, C, eps, xd, wd, yd, rd);
    f32_from_f64(y->data, yd, M * C);
    f32_from_f64(rstd->data, rd, M);
    free(xd), free(wd), free(yd), free(rd);
}

void rmsnorm_backward_cpu(const tensor_t *x, const tensor_t *weight, const tensor_t *rstd, const tensor_t *dy,
                          tensor_t *dx, tensor_t *dweight) {
    long M = rows_of(x);
    int C = last_dim(x);
    double *xd = f64_of(x), *wd = f64_of(weight), *rd = f64_of(rstd), *gd = f64_of(dy);
    double *dxd = f64_zeros(M * C), *dwd = dweight ? f64_zeros(C) : NULL;
    rmsnorm_backward_f64(M, C, xd, wd, rd, gd, dxd, dwd);
    f32_from_f64(dx->data, dxd, M * C);
    if (dweight) f32_add_f64(dweight, dwd);
    free(xd), free(wd), free(rd), free(gd), free(dxd), free(dwd);
}

/* ---- modulation and gated residual ------------------------------------------------------------- */

void modulate_forward_f64(int B, long L, int C, const double *x, const double *scale, const double *shift, double *y) {
    for (int b = 0; b < B; b++)
        for (long l = 0; l < L; l++) {
            long o = ((long)b * L + l) * C;
            for (int c = 0; c < C; c++) y[o + c] = x[o + c] * (1.0 + scale[b * C + c]) + shift[b * C + c];
        }
}

void modulate_backward_f64(int B, long L, int C, const double *x, const double *scale, const double *dy, double *dx,
                           double *dscale, double *dshift) {
    memset(dscale, 0, sizeof(double) * B * C);
    memset(dshift, 0, sizeof(double) * B * C);
    for (int b = 0; b < B; b++)
        for (long l = 0; l < L; l++) {
            long o = ((long)b * L + l) * C;
            for (int c = 0; c < C; c++) {
                double g = dy[o + c];
                dscale[b * C + c] += g * x[o + c];
                dshift[b * C + c] += g;
                dx[o + c] = g * (1.0 + scale[b * C + c]);
            }
        }
}

void gated_residual_forward_f64(int B, long L, int C, double *x, const double *gate, const double *y) {
    for (int b = 0; b < B; b++)
        for (long l = 0; l < L; l++) {
            long o = ((long)b * L + l) * C;
            for (int c = 0; c < C; c++) x[o + c] += gate[b * C + c] * y[o + c];
        }
}

void gated_residual_backward_f64(int B, long L, int C, const double *y, const double *gate, const double *dx,
                                 double *dy, double *dgate) {
    memset(dgate, 0, sizeof(double) * B * C);
    for (int b = 0; b < B; b++)
        for (long l = 0; l < L; l++) {
            long o = ((long)b * L + l) * C;
            for (int c = 0; c < C; c++) {
                dgate[b * C + c] += dx[o + c] * y[o + c];
                dy[o + c] = dx[o + c] * gate[b * C + c];
            }
        }
}

/* [B, L, C] sizes of x, with B and C from the [B, C] modulation tensor. */
static void blc(const tensor_t *x, int *B, long *L, int *C) {
    *B = (int)x->shape[0];
    *C = (int)x->shape[x->ndim - 1];
    *L = (long)(tensor_numel(x) / ((int64_t)*B * *C));
}

void modulate_forward_cpu(const tensor_t *x, const tensor_t *scale, const tensor_t *shift, tensor_t *y) {
    int B, C;
    long L;
    blc(x, &B, &L, &C);
    double *xd = f64_of(x), *sd = f64_of(scale), *hd = f64_of(shift), *yd = f64_zeros(B * L * C);
    modulate_forward_f64(B, L, C, xd, sd, hd, yd);
    f32_from_f64(y->data, yd, B * L * C);
    free(xd), free(sd), free(hd), free(yd);
}

void modulate_backward_cpu(const tensor_t *x, const tensor_t *scale, const tensor_t *dy, tensor_t *dx,
                           tensor_t *dscale, tensor_t *dshift) {
    int B, C;
    long L;
    blc(x, &B, &L, &C);
    double *xd = f64_of(x), *sd = f64_of(scale), *gd = f64_of(dy), *dxd = f64_zeros(B * L * C);
    double *dsd = f64_zeros((long)B * C), *dhd = f64_zeros((long)B * C);
    modulate_backward_f64(B, L, C, xd, sd, gd, dxd, dsd, dhd);
    f32_from_f64(dx->data, dxd, B * L * C);
    f32_from_f64(dscale->data, dsd, (long)B * C);
    f32_from_f64(dshift->data, dhd, (long)B * C);
    free(xd), free(sd), free(gd), free(dxd), free(dsd), free(dhd);
}

void gated_residual_forward_cpu(const tensor_t *x, const tensor_t *gate, const tensor_t *y, tensor_t *out) {
    int B, C;
    long L;
    blc(x, &B, &L, &C);
    double *xd = f64_of(x), *gd = f64_of(gate), *yd = f64_of(y);
    gated_residual_forward_f64(B, L, C, xd, gd, yd);
    f32_from_f64(out->data, xd, B * L * C);
    free(xd), free(gd), free(yd);
}

void gated_residual_backward_cpu(const tensor_t *y, const tensor_t *gate, const tensor_t *dx, tensor_t *dy,
                                 tensor_t *dgate) {
    int B, C;
    long L;
    blc(y, &B, &L, &C);
    double *yd = f64_of(y), *gd = f64_of(gate), *dxd = f64_of(dx), *dyd = f64_zeros(B * L * C);
    double *dgd = f64_zeros((long)B * C);
    gated_residual_backward_f64(B, L, C, yd, gd, dxd, dyd, dgd);
    f32_from_f64(dy->data, dyd, B * L * C);
    f32_from_f64(dgate->data, dgd, (long)B * C);
    free(yd), free(gd), free(dxd), free(dyd), free(dgd);
}

/* ---- activations -------------------------------------------------------------------------------- */

#define GELU_K0 0.7978845608028654 /* sqrt(2/pi) */
#define GELU_K1 0.044715

void gelu_forward_f64(long n, const double *x, double *y) {
    for (long i = 0; i < n; i++) {
        double v = x[i];
        y[i] = 0.5 * v * (1.0 + tanh(GELU_K0 * (v + GELU_K1 * v * v * v)));
    }
}

void gelu_backward_f64(long n, const double *x, const double *dy, double *dx) {
    for (long i = 0; i < n; i++) {
        double v = x[i], t = tanh(GELU_K0 * (v + GELU_K1 * v * v * v));
        double d = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * GELU_K0 * (1.0 + 3.0 * GELU_K1 * v * v);
        dx[i] = dy[i] * d;
    }
}

void silu_forward_f64(long n, const double *x, double *y) {
    for (long i = 0; i < n; i++) y[i] = x[i] / (1.0 + exp(-x[i]));
}

void silu_backward_f64(long n, const double *x, const double *dy, double *dx) {
    for (long i = 0; i < n; i++) {
        double s = 1.0 / (1.0 + exp(-x[i]));
        dx[i] = dy[i] * s * (1.0 + x[i] * (1.0 - s));
    }
}

/* Elementwise ops convert one element at a time: no buffers, and in-place use is safe.
 * fwd(1, &x, &y) or bwd(1, &x, &dy, &dx) is applied to every element. */
static void map_forward(void (*fwd)(long, const double *, double *), const tensor_t *x, tensor_t *y) {
    const float *xs = x->data;
    float *ys = y->data;
    for (long i = 0; i < tensor_numel(x); i++) {
        double a = xs[i], r;
        fwd(1, &a, &r);
        ys[i] = (float)r;
    }
}

static void map_backward(void (*bwd)(long, const double *, const double *, double *), const tensor_t *x,
                         const tensor_t *dy, tensor_t *dx) {
    const float *xs = x->data, *gs = dy->data;
    float *ds = dx->data;
    for (long i = 0; i < tensor_numel(x); i++) {
        double a = xs[i], g = gs[i], r;
        bwd(1, &a, &g, &r);
        ds[i] = (float)r;
    }
}

void gelu_forward_cpu(const tensor_t *x, tensor_t *y) { map_forward(gelu_forward_f64, x, y); }
void gelu_backward_cpu(const tensor_t *x, const tensor_t *dy, tensor_t *dx) { map_backward(gelu_backward_f64, x, dy, dx); }
void silu_forward_cpu(const tensor_t *x, tensor_t *y) { map_forward(silu_forward_f64, x, y); }
void silu_backward_cpu(const tensor_t *x, const tensor_t *dy, tensor_t *dx) { map_backward(silu_backward_f64, x, dy, dx); }
