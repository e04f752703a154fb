/* tests/test_nn_layout_cpu.c — the CPU backend of nn_ops.h (label cpu), second part: 3-D RoPE
 * against an explicit complex-number reference written from Wan's rope_params/rope_apply, its
 * inverse and its gradient (finite differences); the RoPE split; head transposes; patchify and
 * unpatchify against their index maps, against a Conv3d with kernel = stride, and as adjoint
 * pairs; the time embedding against Wan's formula; AdamW against PyTorch's update written out
 * over two steps; the squared norm. */
#include <complex.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/nn_cpu.h"
#include "test_util.h"

static test_rng_t rng = {11};

static tensor_t host_tensor(int ndim, const int64_t *shape) {
    tensor_t t = tensor_alloc(DTYPE_F32, DEVICE_CPU, ndim, shape);
    fill_normal_f32(&rng, t.data, (long)tensor_numel(&t), 1.0);
    return t;
}
static float *fp(const tensor_t *t) { return t->data; }
static double dot_f32(const tensor_t *a, const tensor_t *b) {
    double s = 0.0;
    for (long i = 0; i < tensor_numel(a); i++) s += (double)fp(a)[i] * fp(b)[i];
    return s;
}

/* ---- RoPE -------------------------------------------------------------------------------------- */

/* Wan: freqs = cat(rope_params(1024, d - 4*(d//6)), rope_params(1024, 2*(d//6)) x 2) with
 * rope_params(n, dim)[pos, k] = exp(i pos / 10000^(2k/dim)); token (f, h, w) multiplies pair p
 * by the frame part for p < c - 2(c//3), then the height part, then the width part (c = d/2). */
static double complex wan_freq(int D, int f, int h, int w, int p) {
    int c = D / 2, pf = c - 2 * (c / 3), ph = c / 3;
    int pos, k, dim;
    if (p < pf) pos = f, k = p, dim = D - 4 * (D / 6);
    else if (p < pf + ph) pos = h, k = p - pf, dim = 2 * (D / 6);
    else pos = w, k = p - pf - ph, dim = 2 * (D / 6);
    return cexp(I * (pos * (1.0 / pow(10000.0, (double)(2 * k) / dim))));
}

enum { RB = 2, RF = 3, RH = 2, RW = 5, RHEADS = 3 };
static int rope_D;
static double *rx, *rg;

static double rope_loss(void) {
    long n = (long)RB * RF * RH * RW * RHEADS * rope_D;
    double *y = malloc(sizeof(double) * n), s = 0.0;
    rope_forward_f64(RB, RF, RH, RW, RHEADS, rope_D, rx, y);
    for (long i = 0; i < n; i++) s += rg[i] * y[i];
    free(y);
    return s;
}

static void test_rope(int D) {
    int L = RF * RH * RW, P = D / 2;
    long n = (long)RB * L * RHEADS * D;
    printf("rope D=%d, grid %dx%dx%d:\n", D, RF, RH, RW);
    rope_D = D;
    rx = malloc(sizeof(double) * n), rg = malloc(sizeof(double) * n);
    double *y = malloc(sizeof(double) * n), *back = malloc(sizeof(double) * n), *dx = malloc(sizeof(double) * n);
    fill_normal_f64(&rng, rx, n, 1.0);
    fill_normal_f64(&rng, rg, n, 1.0);
    rope_forward_f64(RB, RF, RH, RW, RHEADS, D, rx, y);
    double worst = 0.0;
    for (int b = 0; b < RB; b++)
        for (int f = 0; f < RF; f++)
            for (int h = 0; h < RH; h++)
                for (int w = 0; w < RW; w++)
                    for (int hd = 0; hd < RHEADS; hd++)
                        for (int p = 0; p < P; p++) {
                            int l = (f * RH + h) * RW + w;
                            const double *xi = rx + (((long)b * L + l) * RHEADS + hd) * D + 2 * p;
                            const double *yo = y + (((long)b * RHEADS + hd) * L + l) * D + 2 * p;
                            double complex z = (xi[0] + I * xi[1]) * wan_freq(D, f, h, w, p);
                            worst = fmax(worst, cabs(z - (yo[0] + I * yo[1])));
                        }
    EXPECT(worst <= 1e-13, "rope vs complex reference: %.2e", worst);
    rope_backward_f64(RB, RF, RH, RW, RHEADS, D, y, back);
    double inv = 0.0;
    for (long i = 0; i < n; i++) inv = fmax(inv, fabs(back[i] - rx[i]));
    EXPECT(inv <= 1e-13, "rope backward(forward(x)) = x: %.2e", inv);
    printf("  vs complex reference %.1e, inverse %.1e\n", worst, inv);
    rope_backward_f64(RB, RF, RH, RW, RHEADS, D, rg, dx);
    const double eps = 1e-5; /* the op is linear: central differences are exact up to rounding */
    double *u = malloc(sizeof(double) * n), ana = 0.0;
    fill_normal_f64(&rng, u, n, 1.0);
    for (long i = 0; i < n; i++) ana += dx[i] * u[i], rx[i] += eps * u[i];
    double lp = rope_loss();
    for (long i = 0; i < n; i++) rx[i] -= 2 * eps * u[i];
    double lm = rope_loss(), fd = (lp - lm) / (2 * eps);
    EXPECT(fabs(fd - ana) <= 1e-8 * fabs(fd), "rope dx: analytic %.12g vs finite difference %.12g", ana, fd);
    printf("  dx directional rel err %.1e\n", fabs(fd - ana) / fabs(fd));

    /* Tensor entry points against the fp64 math. */
    int64_t blhd[4] = {RB, L, RHEADS, D}, bhld[4] = {RB, RHEADS, L, D};
    tensor_t xt = host_tensor(4, blhd), yt = host_tensor(4, bhld), bt = host_tensor(4, blhd);
    for (long i = 0; i < n; i++) rx[i] = fp(&xt)[i];
    rope_forward_f64(RB, RF, RH, RW, RHEADS, D, rx, y);
    rope_forward(&xt, RF, RH, RW, &yt);
    double e = 0.0;
    for (long i = 0; i < n; i++) e = fmax(e, fabs(fp(&yt)[i] - y[i]));
    rope_backward(&yt, RF, RH, RW, &bt);
    for (long i = 0; i < n; i++) e = fmax(e, fabs(fp(&bt)[i] - fp(&xt)[i]));
    EXPECT(e <= 1e-6, "rope tensor entry points: %.2e", e);
    tensor_free(&xt), tensor_free(&yt), tensor_free(&bt);
    free(rx), free(rg), free(y), free(back), free(dx), free(u);
}

static void test_rope_split(void) {
    int want[][4] = {{128, 22, 21, 21}, {64, 12, 10, 10}, {40, 8, 6, 6}, {8, 2, 1, 1}};
    for (int i = 0; i < 4; i++) {
        int pf, ph, pw;
        rope_axis_pairs(want[i][0], &pf, &ph, &pw);
        EXPECT(pf == want[i][1] && ph == want[i][2] && pw == want[i][3], "rope split of D=%d: %d/%d/%d", want[i][0],
               pf, ph, pw);
    }
}

static void test_head_transpose(void) {
    enum { B = 2, P = 5, Q = 3, D = 7 };
    tensor_t x = host_tensor(4, (int64_t[]){B, P, Q, D}), y = host_tensor(4, (int64_t[]){B, Q, P, D});
    tensor_t z = host_tensor(4, (int64_t[]){B, P, Q, D});
    head_transpose(&x, &y);
    head_transpose(&y, &z);
    int bad = 0;
    for (int b = 0; b < B; b++)
        for (int p = 0; p < P; p++)
            for (int q = 0; q < Q; q++)
                for (int d = 0; d < D; d++)
                    bad += fp(&y)[((b * Q + q) * P + p) * D + d] != fp(&x)[((b * P + p) * Q + q) * D + d];
    EXPECT(bad == 0 && memcmp(x.data, z.data, tensor_bytes(&x)) == 0, "head transpose map / round trip (%d bad)", bad);
    tensor_free(&x), tensor_free(&y), tensor_free(&z);
}

/* ---- patchify -------------------------------------------------------------------------------- */

static void test_patchify(int pt, int ph, int pw) {
    enum { B = 2, C = 3, F = 2, H = 4, W = 6, DIM = 5 };
    printf("patchify patch (%d,%d,%d):\n", pt, ph, pw);
    int Fo = F / pt, Ho = H / ph, Wo = W / pw, L = Fo * Ho * Wo, P = pt * ph * pw;
    tensor_t lat = host_tensor(5, (int64_t[]){B, C, F, H, W}), tok = host_tensor(3, (int64_t[]){B, L, C * P});
    tensor_t tok2 = host_tensor(3, (int64_t[]){B, L, C * P}), lat2 = host_tensor(5, (int64_t[]){B, C, F, H, W});
    patchify(&lat, pt, ph, pw, &tok);
    unpatchify(&tok2, pt, ph, pw, &lat2);
    int bad = 0, bad2 = 0;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int f = 0; f < Fo; f++)
                for (int h = 0; h < Ho; h++)
                    for (int w = 0; w < Wo; w++)
                        for (int kt = 0; kt < pt; kt++)
                            for (int kh = 0; kh < ph; kh++)
                                for (int kw = 0; kw < pw; kw++) {
                                    long li = ((((long)b * C + c) * F + f * pt + kt) * H + h * ph + kh) * W + w * pw + kw;
                                    long l = ((long)b * L + (f * Ho + h) * Wo + w) * C * P;
                                    long k = (kt * ph + kh) * pw + kw;
                                    bad += fp(&tok)[l + c * P + k] != fp(&lat)[li];  /* (c, kt, kh, kw) */
                                    bad2 += fp(&lat2)[li] != fp(&tok2)[l + k * C + c]; /* (kt, kh, kw, c) */
                                }
    EXPECT(bad == 0, "patchify index map: %d wrong", bad);
    EXPECT(bad2 == 0, "unpatchify index map: %d wrong", bad2);

    /* Patch embedding = Conv3d(C -> DIM, kernel = stride = patch) with weight [DIM, C, pt, ph, pw]. */
    tensor_t wt = host_tensor(2, (int64_t[]){DIM, C * P}), emb = host_tensor(3, (int64_t[]){B, L, DIM});
    linear_forward(&tok, &wt, NULL, &emb);
    double worst = 0.0;
    for (int b = 0; b < B; b++)
        for (int f = 0; f < Fo; f++)
            for (int h = 0; h < Ho; h++)
                for (int w = 0; w < Wo; w++)
                    for (int o = 0; o < DIM; o++) {
                        double s = 0.0;
                        for (int c = 0; c < C; c++)
                            for (int kt = 0; kt < pt; kt++)
                                for (int kh = 0; kh < ph; kh++)
                                    for (int kw = 0; kw < pw; kw++)
                                        s += (double)fp(&wt)[(((o * C + c) * pt + kt) * ph + kh) * pw + kw] *
                                             fp(&lat)[((((long)b * C + c) * F + f * pt + kt) * H + h * ph + kh) * W +
                                                      w * pw + kw];
                        worst = fmax(worst, fabs(s - fp(&emb)[((long)b * L + (f * Ho + h) * Wo + w) * DIM + o]));
                    }
    EXPECT(worst <= 1e-5, "patchify + linear vs Conv3d: %.2e", worst);

    /* Backwards are the adjoints: <P x, t> = <x, P^T t>; and P^T P = identity (permutations). */
    tensor_t t = host_tensor(3, (int64_t[]){B, L, C * P}), x = host_tensor(5, (int64_t[]){B, C, F, H, W});
    tensor_t pt_t = host_tensor(5, (int64_t[]){B, C, F, H, W}), ut_x = host_tensor(3, (int64_t[]){B, L, C * P});
    patchify_backward(&t, pt, ph, pw, &pt_t);
    unpatchify_backward(&x, pt, ph, pw, &ut_x);
    unpatchify(&t, pt, ph, pw, &lat2);
    double a1 = dot_f32(&tok, &t) - dot_f32(&lat, &pt_t), a2 = dot_f32(&lat2, &x) - dot_f32(&t, &ut_x);
    EXPECT(fabs(a1) <= 1e-9 && fabs(a2) <= 1e-9, "adjoint identities: %.2e %.2e", a1, a2);
    patchify_backward(&tok, pt, ph, pw, &pt_t);
    unpatchify_backward(&lat2, pt, ph, pw, &ut_x);
    EXPECT(memcmp(pt_t.data, lat.data, tensor_bytes(&lat)) == 0, "patchify_backward(patchify(x)) = x");
    EXPECT(memcmp(ut_x.data, t.data, tensor_bytes(&t)) == 0, "unpatchify_backward(unpatchify(t)) = t");
    printf("  index maps exact, vs Conv3d %.1e, adjoints %.1e %.1e\n", worst, a1, a2);
    tensor_t *ts[] = {&lat, &tok, &tok2, &lat2, &wt, &emb, &t, &x, &pt_t, &ut_x};
    for (int i = 0; i < 10; i++) tensor_free(ts[i]);
}

/* ---- time embedding, AdamW, squared norm -------------------------------------------------------- */

static void test_timestep_embedding(void) {
    enum { B = 4, DIM = 256, HALF = 128 };
    float ts[B] = {0.0f, 1.0f, 437.25f, 999.0f};
    tensor_t t = tensor_make(DTYPE_F32, DEVICE_CPU, 1, (int64_t[]){B}), e = host_tensor(2, (int64_t[]){B, DIM});
    t.data = ts;
    timestep_embedding(&t, &e);
    double worst = 0.0;
    for (int b = 0; b < B; b++)
        for (int k = 0; k < HALF; k++) { /* torch.pow(10000, -arange(half).div(half)), cos first */
            double a = ts[b] * pow(10000.0, -(double)k / HALF);
            worst = fmax(worst, fabs(fp(&e)[b * DIM + k] - cos(a)));
            worst = fmax(worst, fabs(fp(&e)[b * DIM + HALF + k] - sin(a)));
        }
    EXPECT(worst <= 6e-8, "time embedding vs formula: %.2e", worst);
    EXPECT(fp(&e)[0] == 1.0f && fp(&e)[HALF] == 0.0f, "t = 0 gives cos 1, sin 0");
    EXPECT(fabs(fp(&e)[3 * DIM] - cos(999.0)) <= 6e-8, "k = 0 at t = 999 is cos(999)");
    printf("time embedding vs formula: %.1e\n", worst);
    tensor_free(&e);
}

static void test_adamw(void) {
    enum { N = 37 };
    adamw_params_t p = {.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1,
                        .grad_scale = 0.5, .step = 1};
    tensor_t w = host_tensor(1, (int64_t[]){N}), g = host_tensor(1, (int64_t[]){N});
    tensor_t m = host_tensor(1, (int64_t[]){N}), v = host_tensor(1, (int64_t[]){N});
    for (int i = 0; i < N; i++) fp(&m)[i] = 0.0f, fp(&v)[i] = 0.0f;
    double w0[N], g0[N], mm[N], vv[N], worst = 0.0;
    for (int i = 0; i < N; i++) w0[i] = fp(&w)[i], g0[i] = fp(&g)[i], mm[i] = 0.0, vv[i] = 0.0;
    for (p.step = 1; p.step <= 2; p.step++) {
        adamw_step(&p, &w, &g, &m, &v, NULL);
        for (int i = 0; i < N; i++) { /* torch.optim.AdamW._single_tensor_adamw, written out */
            double gi = 0.5 * g0[i];
            w0[i] *= 1.0 - p.lr * p.weight_decay;
            mm[i] += (gi - mm[i]) * (1.0 - p.beta1);
            vv[i] = vv[i] * p.beta2 + (1.0 - p.beta2) * gi * gi;
            double bc1 = 1.0 - pow(p.beta1, p.step), bc2 = 1.0 - pow(p.beta2, p.step);
            w0[i] -= p.lr / bc1 * mm[i] / (sqrt(vv[i]) / sqrt(bc2) + p.eps);
            /* fp32 storage of w, m, v between steps: relative to each one's scale */
            worst = fmax(worst, fabs(fp(&w)[i] - w0[i]) / fmax(fabs(w0[i]), p.lr));
            worst = fmax(worst, fabs(fp(&m)[i] - mm[i]) / fabs(mm[i]));
            worst = fmax(worst, fabs(fp(&v)[i] - vv[i]) / fabs(vv[i]));
        }
    }
    EXPECT(worst <= 1e-6, "adamw two steps vs formula: rel %.2e", worst);
    printf("adamw two steps vs formula: rel %.1e\n", worst);
    double s = 0.0;
    for (int i = 0; i < N; i++) s += (double)fp(&g)[i] * fp(&g)[i];
    EXPECT(sum_squares(&g) == s, "sum of squares in index order, fp64");
    tensor_free(&w), tensor_free(&g), tensor_free(&m), tensor_free(&v);
}

int main(void) {
    test_rope_split();
    test_rope(40);
    test_rope(128);
    test_head_transpose();
    test_patchify(1, 2, 2);
    test_patchify(2, 2, 3);
    test_timestep_embedding();
    test_adamw();
    return test_summary("test_nn_layout_cpu");
}
