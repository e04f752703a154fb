/* kernels/cpu/nn_layout_cpu.c — the data-movement and bookkeeping ops of nn_ops.h on the CPU:
 * 3-D RoPE fused with the head transpose (and RMSNorm + RoPE, as the two ops), the plain head transpose, patchify/unpatchify, Wan's
 * sinusoidal time embedding, the MSE loss, AdamW and the squared norm (fp32 tensors, fp64 math).
 *
 * Every output is overwritten (=); AdamW updates w, m, v in place. Permutations copy values
 * exactly. Sums run in index order (deterministic). Tested by tests/test_nn_cpu.c (complex-number
 * RoPE reference, index maps, formulas). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "attention_core.h"
#include "nn_cpu.h"

/* ---- RoPE ------------------------------------------------------------------------------------- */

/* cos/sin of every (token, pair) of the grid: cs [L, P, 2], from Wan's per-axis series. */
static double *rope_table(int F, int Hg, int Wg, int D) {
    int pa[3], P = D / 2;
    rope_axis_pairs(D, &pa[0], &pa[1], &pa[2]);
    long L = (long)F * Hg * Wg;
    double *cs = xmalloc(sizeof(double) * (unsigned long)(L * P * 2));
    for (long l = 0; l < L; l++) {
        int pos[3] = {(int)(l / ((long)Hg * Wg)), (int)(l / Wg % Hg), (int)(l % Wg)};
        int p = 0;
        for (int a = 0; a < 3; a++)
            for (int k = 0; k < pa[a]; k++, p++) {
                double ang = pos[a] * pow(10000.0, -2.0 * k / (2.0 * pa[a]));
                cs[(l * P + p) * 2] = cos(ang);
                cs[(l * P + p) * 2 + 1] = sin(ang);
            }
    }
    return cs;
}

/* dir +1: x [B,L,H,D] -> y [B,H,L,D] rotated by +angle; dir -1: y layout -> x layout by -angle. */
static void rope_apply_f64(int B, int F, int Hg, int Wg, int H, int D, const double *src, double *dst, int dir) {
    long L = (long)F * Hg * Wg;
    int P = D / 2;
    double *cs = rope_table(F, Hg, Wg, D);
    for (int b = 0; b < B; b++)
        for (long l = 0; l < L; l++)
            for (int h = 0; h < H; h++) {
                long blh = (((long)b * L + l) * H + h) * D, bhl = (((long)b * H + h) * L + l) * D;
                const double *in = src + (dir > 0 ? blh : bhl);
                double *out = dst + (dir > 0 ? bhl : blh);
                for (int p = 0; p < P; p++) {
                    double c = cs[(l * P + p) * 2], s = dir * cs[(l * P + p) * 2 + 1];
                    double x0 = in[2 * p], x1 = in[2 * p + 1];
                    out[2 * p] = x0 * c - x1 * s;
                    out[2 * p + 1] = x0 * s + x1 * c;
                }
            }
    free(cs);
}

void rope_forward_f64(int B, int F, int Hg, int Wg, int H, int D, const double *x, double *y) {
    rope_apply_f64(B, F, Hg, Wg, H, D, x, y, +1);
}

void rope_backward_f64(int B, int F, int Hg, int Wg, int H, int D, const double *dy, double *dx) {
    rope_apply_f64(B, F, Hg, Wg, H, D, dy, dx, -1);
}

static void rope_cpu(const tensor_t *src, int F, int Hg, int Wg, tensor_t *dst, int dir) {
    /* src is [B,L,H,D] going forward and [B,H,L,D] going back. */
    int B = (int)src->shape[0], D = (int)src->shape[3];
    int H = (int)(dir > 0 ? src->shape[2] : src->shape[1]);
    long n = (long)tensor_numel(src);
    double *s = f64_from_f32(src->data, n), *d = xmalloc(sizeof(double) * (unsigned long)n);
    rope_apply_f64(B, F, Hg, Wg, H, D, s, d, dir);
    f32_from_f64(dst->data, d, n);
    free(s), free(d);
}

void rope_forward_cpu(const tensor_t *x, int F, int Hg, int Wg, tensor_t *y) { rope_cpu(x, F, Hg, Wg, y, +1); }
void rope_backward_cpu(const tensor_t *dy, int F, int Hg, int Wg, tensor_t *dx) { rope_cpu(dy, F, Hg, Wg, dx, -1); }

void rmsnorm_rope_forward_cpu(const tensor_t *x, const tensor_t *weight, float eps, int F, int Hg, int Wg,
                              tensor_t *y, tensor_t *rstd) {
    tensor_t n = tensor_alloc(DTYPE_F32, DEVICE_CPU, x->ndim, x->shape), n4 = n;
    rmsnorm_forward_cpu(x, weight, eps, &n, rstd);
    n4.ndim = 4, n4.shape[2] = y->shape[1], n4.shape[3] = y->shape[3]; /* [B, L, H, D] */
    rope_forward_cpu(&n4, F, Hg, Wg, y);
    tensor_free(&n);
}

void head_transpose_cpu(const tensor_t *x, tensor_t *y) {
    long B = x->shape[0], P = x->shape[1], Q = x->shape[2], D = x->shape[3];
    const float *s = x->data;
    float *d = y->data;
    for (long b = 0; b < B; b++)
        for (long p = 0; p < P; p++)
            for (long q = 0; q < Q; q++)
                memcpy(d + ((b * Q + q) * P + p) * D, s + ((b * P + p) * Q + q) * D, sizeof(float) * (size_t)D);
}

/* ---- patchify / unpatchify ---------------------------------------------------------------------- */

/* Visits every (latent element, token element) pair of the patch map. channel_inner selects the
 * token layout (kt, kh, kw, c) of the head instead of (c, kt, kh, kw) of the patch embedding;
 * to_tok copies latent -> token, else token -> latent. lat is [B, C, F, H, W]. */
static void patch_map(const tensor_t *lat, int pt, int ph, int pw, float *latp, float *tokp, int channel_inner,
                      int to_tok) {
    long B = lat->shape[0], C = lat->shape[1], F = lat->shape[2], H = lat->shape[3], W = lat->shape[4];
    long Fo = F / pt, Ho = H / ph, Wo = W / pw, P = (long)pt * ph * pw, L = Fo * Ho * Wo;
    for (long b = 0; b < B; b++)
        for (long c = 0; c < C; c++)
            for (long f = 0; f < F; f++)
                for (long h = 0; h < H; h++)
                    for (long w = 0; w < W; w++) {
                        long l = ((f / pt) * Ho + h / ph) * Wo + w / pw;
                        long k = ((f % pt) * ph + h % ph) * pw + w % pw;
                        long j = channel_inner ? k * C + c : c * P + k;
                        long li = (((b * C + c) * F + f) * H + h) * W + w, ti = (b * L + l) * C * P + j;
                        if (to_tok) tokp[ti] = latp[li];
                        else latp[li] = tokp[ti];
                    }
}

void patchify_cpu(const tensor_t *lat, int pt, int ph, int pw, tensor_t *tok) {
    patch_map(lat, pt, ph, pw, lat->data, tok->data, 0, 1);
}
void patchify_backward_cpu(const tensor_t *dtok, int pt, int ph, int pw, tensor_t *dlat) {
    patch_map(dlat, pt, ph, pw, dlat->data, dtok->data, 0, 0);
}
void unpatchify_cpu(const tensor_t *tok, int pt, int ph, int pw, tensor_t *lat) {
    patch_map(lat, pt, ph, pw, lat->data, tok->data, 1, 0);
}
void unpatchify_backward_cpu(const tensor_t *dlat, int pt, int ph, int pw, tensor_t *dtok) {
    patch_map(dlat, pt, ph, pw, dlat->data, dtok->data, 1, 1);
}

/* ---- time embedding, loss, optimizer ----------------------------------------------------------- */

void timestep_embedding_cpu(const tensor_t *t, tensor_t *emb) {
    long B = t->shape[0], dim = emb->shape[1], half = dim / 2;
    const float *ts = t->data;
    float *e = emb->data;
    for (long b = 0; b < B; b++)
        for (long k = 0; k < half; k++) {
            double a = (double)ts[b] * pow(10000.0, -(double)k / (double)half);
            e[b * dim + k] = (float)cos(a);
            e[b * dim + half + k] = (float)sin(a);
        }
}

double mse_loss_f64(long n, const double *pred, const double *target, double grad_scale, double *dpred) {
    double s = 0.0;
    for (long i = 0; i < n; i++) {
        double d = pred[i] - target[i];
        s += d * d;
        if (dpred) dpred[i] = grad_scale * 2.0 * d / (double)n;
    }
    return s / (double)n;
}

double mse_loss_cpu(const tensor_t *pred, const tensor_t *target, double grad_scale, tensor_t *dpred) {
    long n = (long)tensor_numel(pred);
    const float *p = pred->data, *t = target->data;
    float *g = dpred ? dpred->data : NULL;
    double s = 0.0;
    for (long i = 0; i < n; i++) { /* dpred may alias pred or target: read both first */
        double d = (double)p[i] - (double)t[i];
        s += d * d;
        if (g) g[i] = (float)(grad_scale * 2.0 * d / (double)n);
    }
    return s / (double)n;
}

void adamw_step_cpu(const adamw_params_t *p, tensor_t *w, const tensor_t *grad, tensor_t *m, tensor_t *v) {
    long n = (long)tensor_numel(w);
    float *ws = w->data, *ms = m->data, *vs = v->data;
    const float *gs = grad->data;
    double bc1 = 1.0 - pow(p->beta1, (double)p->step), bc2 = 1.0 - pow(p->beta2, (double)p->step);
    double step_size = p->lr / bc1, bc2_sqrt = sqrt(bc2), decay = 1.0 - p->lr * p->weight_decay;
    for (long i = 0; i < n; i++) {
        double g = p->grad_scale * gs[i];
        double mi = p->beta1 * ms[i] + (1.0 - p->beta1) * g;
        double vi = p->beta2 * vs[i] + (1.0 - p->beta2) * g * g;
        double wi = ws[i] * decay - step_size * mi / (sqrt(vi) / bc2_sqrt + p->eps);
        ms[i] = (float)mi, vs[i] = (float)vi, ws[i] = (float)wi;
    }
}

double sum_squares_cpu(const tensor_t *x) {
    const float *s = x->data;
    double acc = 0.0;
    for (long i = 0; i < (long)tensor_numel(x); i++) acc += (double)s[i] * s[i];
    return acc;
}
