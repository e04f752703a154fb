/* kernels/nn_ops.c — dispatch of the non-attention ops (nn_ops.h) to the backend their tensors
 * live on, with the shape, dtype and device checks both backends rely on. A mismatch is a
 * programming error of the caller, so it CHECKs and exits with a sentence naming the op, the
 * argument and what was expected. */
#include "nn_ops.h"

#include <limits.h>
#include <stddef.h>

#include "check.h"
#include "cpu/nn_cpu.h"
#ifdef SLA_HAVE_CUDA
#include "cuda/nn_cuda.h"
#endif

#ifdef SLA_HAVE_CUDA
#define DISPATCH(dev, cpu_call, cuda_call) \
    do {                                   \
        if ((dev) == DEVICE_CPU) cpu_call; \
        else cuda_call;                    \
    } while (0)
#else
#define DISPATCH(dev, cpu_call, cuda_call) \
    do {                                   \
        if ((dev) == DEVICE_CPU) cpu_call; \
        else no_cuda(op);                  \
    } while (0)
static void no_cuda(const char *op) { CHECK(0, "%s: CUDA tensors given, but this build has no CUDA backend", op); }
#endif

/* ---- argument checks ------------------------------------------------------------------------- */

/* kinds[i] for ts[i]: 'a' an activation or parameter (CPU f32; CUDA bf16 or f32), 'f' always f32,
 * 'h' bf16 (CUDA only). NULL tensors are skipped. All given tensors must be on `dev`. */
static void check_args(const char *op, device_t dev, int n, const tensor_t *const *ts, const char *const *names,
                       const char *kinds) {
    for (int i = 0; i < n; i++) {
        const tensor_t *t = ts[i];
        if (!t) continue;
        CHECK(t->device == dev, "%s: %s is on %s, expected %s like the first tensor", op, names[i],
              device_name(t->device), device_name(dev));
        CHECK(t->data != NULL || tensor_numel(t) == 0, "%s: %s has no data", op, names[i]);
        if (kinds[i] == 'h') {
            CHECK(dev == DEVICE_CUDA, "%s: %s (a bf16 copy) is only written on the CUDA backend; pass NULL", op,
                  names[i]);
            CHECK(t->dtype == DTYPE_BF16, "%s: %s is %s, expected bfloat16", op, names[i], dtype_name(t->dtype));
        } else if (dev == DEVICE_CPU || kinds[i] == 'f') {
            CHECK(t->dtype == DTYPE_F32, "%s: %s is %s, expected float32%s", op, names[i], dtype_name(t->dtype),
                  dev == DEVICE_CPU ? " (the CPU backend takes float32)" : "");
        } else {
            CHECK(t->dtype == DTYPE_F32 || t->dtype == DTYPE_BF16, "%s: %s is %s, expected bfloat16 or float32", op,
                  names[i], dtype_name(t->dtype));
        }
    }
}

static void expect_shape(const char *op, const char *name, const tensor_t *t, int ndim, const int64_t *shape) {
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (ok) return;
    tensor_t want = tensor_make(t->dtype, t->device, ndim, shape);
    char got[96], exp[96];
    CHECK(0, "%s: %s has shape %s, expected %s", op, name, tensor_shape_str(t, got, sizeof got),
          tensor_shape_str(&want, exp, sizeof exp));
}

static void expect_same(const char *op, const char *name, const tensor_t *t, const tensor_t *like) {
    expect_shape(op, name, t, like->ndim, like->shape);
}

static void expect_numel(const char *op, const char *name, const tensor_t *t, int64_t n) {
    char got[96];
    CHECK(tensor_numel(t) == n, "%s: %s has shape %s (%lld elements), expected %lld elements", op, name,
          tensor_shape_str(t, got, sizeof got), (long long)tensor_numel(t), (long long)n);
}

static void expect_same_dtype(const char *op, const char *name, const tensor_t *t, const tensor_t *like,
                              const char *like_name) {
    CHECK(t->dtype == like->dtype, "%s: %s is %s but %s is %s; they must match", op, name, dtype_name(t->dtype),
          like_name, dtype_name(like->dtype));
}

static int64_t last_dim(const char *op, const char *name, const tensor_t *t) {
    CHECK(t->ndim >= 1 && t->shape[t->ndim - 1] > 0, "%s: %s needs a non-empty last dimension", op, name);
    return t->shape[t->ndim - 1];
}

/* ---- linear ------------------------------------------------------------------------------------ */

static void linear_check(const char *op, const tensor_t *x, const tensor_t *w, const tensor_t *b,
                         const tensor_t *y, const char *yname) {
    int64_t K = last_dim(op, "x", x);
    CHECK(w->ndim == 2 && w->shape[1] == K, "%s: w must be [N, %lld] (PyTorch layout [out, in])", op, (long long)K);
    int64_t N = w->shape[0];
    tensor_t want = *x;
    want.shape[x->ndim - 1] = N;
    expect_same(op, yname, y, &want);
    if (b) expect_shape(op, "b", b, 1, (int64_t[]){N});
    CHECK(tensor_numel(x) / K <= INT_MAX && K <= INT_MAX && N <= INT_MAX, "%s: sizes exceed the GEMM's int range",
          op);
}

void linear_forward(const tensor_t *x, const tensor_t *w, const tensor_t *b, tensor_t *y) {
    const char *op = "linear_forward";
    linear_check(op, x, w, b, y, "y");
    check_args(op, x->device, 4, (const tensor_t *[]){x, w, b, y}, (const char *[]){"x", "w", "b", "y"}, "aaaa");
    if (x->device == DEVICE_CUDA) {
        expect_same_dtype(op, "w", w, x, "x");
        expect_same_dtype(op, "y", y, x, "x");
        if (b) expect_same_dtype(op, "b", b, x, "x");
    }
    DISPATCH(x->device, linear_forward_cpu(x, w, b, y), linear_forward_cuda(x, w, b, y));
}

void linear_backward(const tensor_t *x, const tensor_t *w, const tensor_t *dy, tensor_t *dx, int dx_accumulate,
                     tensor_t *dw, tensor_t *db) {
    const char *op = "linear_backward";
    CHECK(dw != NULL, "%s: dw is required", op);
    linear_check(op, x, w, NULL, dy, "dy");
    if (dx) expect_same(op, "dx", dx, x);
    expect_same(op, "dw", dw, w);
    if (db) expect_shape(op, "db", db, 1, (int64_t[]){w->shape[0]});
    check_args(op, x->device, 6, (const tensor_t *[]){x, w, dy, dx, dw, db},
               (const char *[]){"x", "w", "dy", "dx", "dw", "db"}, "aaaaff");
    if (x->device == DEVICE_CUDA) {
        expect_same_dtype(op, "w", w, x, "x");
        expect_same_dtype(op, "dy", dy, x, "x");
        CHECK(!dx || dx->dtype == x->dtype || dx->dtype == DTYPE_F32, "%s: dx is %s, expected %s (like x) or float32",
              op, dtype_name(dx->dtype), dtype_name(x->dtype));
    }
    CHECK(!dx || !dx_accumulate || (dx->data != dy->data && dx->data != x->data),
          "%s: dx accumulates, so it may not alias x or dy", op);
    DISPATCH(x->device, linear_backward_cpu(x, w, dy, dx, dx_accumulate, dw, db),
             linear_backward_cuda(x, w, dy, dx, dx_accumulate, dw, db));
}

void linear_backward_gelu_input(const tensor_t *x, const tensor_t *pre, const tensor_t *w, const tensor_t *dy,
                                tensor_t *dpre, tensor_t *dw, tensor_t *db) {
    const char *op = "linear_backward_gelu_input";
    CHECK(dw != NULL && dpre != NULL, "%s: dpre and dw are required", op);
    linear_check(op, x, w, NULL, dy, "dy");
    expect_same(op, "pre", pre, x);
    expect_same(op, "dpre", dpre, x);
    expect_same(op, "dw", dw, w);
    if (db) expect_shape(op, "db", db, 1, (int64_t[]){w->shape[0]});
    check_args(op, x->device, 7, (const tensor_t *[]){x, pre, w, dy, dpre, dw, db},
               (const char *[]){"x", "pre", "w", "dy", "dpre", "dw", "db"}, "aaaaaff");
    if (x->device == DEVICE_CUDA) {
        expect_same_dtype(op, "w", w, x, "x");
        expect_same_dtype(op, "dy", dy, x, "x");
        expect_same_dtype(op, "pre", pre, x, "x");
        expect_same_dtype(op, "dpre", dpre, x, "x");
    }
    DISPATCH(x->device, linear_backward_gelu_input_cpu(x, pre, w, dy, dpre, dw, db),
             linear_backward_gelu_input_cuda(x, pre, w, dy, dpre, dw, db));
}

/* ---- norms ------------------------------------------------------------------------------------- */

static void norm_check(const char *op, const tensor_t *x, const tensor_t *y, const char *yname, const tensor_t *w,
                       const tensor_t *b, const tensor_t *s1, const char *s1name, const tensor_t *s2,
                       const char *s2name) {
    int64_t C = last_dim(op, "x", x), M = tensor_numel(x) / C;
    expect_same(op, yname, y, x);
    if (w) expect_shape(op, "weight", w, 1, (int64_t[]){C});
    if (b) expect_shape(op, "bias", b, 1, (int64_t[]){C});
    if (s1) expect_numel(op, s1name, s1, M);
    if (s2) expect_numel(op, s2name, s2, M);
}

void layernorm_forward(const tensor_t *x, const tensor_t *weight, const tensor_t *bias, float eps, tensor_t *y,
                       tensor_t *mean, tensor_t *rstd) {
    const char *op = "layernorm_forward";
    CHECK(eps > 0.0f, "%s: eps must be positive, got %g", op, (double)eps);
    norm_check(op, x, y, "y", weight, bias, mean, "mean", rstd, "rstd");
    check_args(op, x->device, 6, (const tensor_t *[]){x, weight, bias, y, mean, rstd},
               (const char *[]){"x", "weight", "bias", "y", "mean", "rstd"}, "aaaaff");
    if (weight && bias) expect_same_dtype(op, "bias", bias, weight, "weight");
    DISPATCH(x->device, layernorm_forward_cpu(x, weight, bias, eps, y, mean, rstd),
             layernorm_forward_cuda(x, weight, bias, eps, y, mean, rstd));
}

void layernorm_backward(const tensor_t *x, const tensor_t *weight, const tensor_t *mean, const tensor_t *rstd,
                        const tensor_t *dy, tensor_t *dx, int accumulate, tensor_t *dweight, tensor_t *dbias) {
    const char *op = "layernorm_backward";
    norm_check(op, x, dy, "dy", weight, NULL, mean, "mean", rstd, "rstd");
    expect_same(op, "dx", dx, x);
    CHECK(!dweight || weight, "%s: dweight given for a LayerNorm without weight", op);
    int64_t C = x->shape[x->ndim - 1];
    if (dweight) expect_shape(op, "dweight", dweight, 1, (int64_t[]){C});
    if (dbias) expect_shape(op, "dbias", dbias, 1, (int64_t[]){C});
    check_args(op, x->device, 8, (const tensor_t *[]){x, weight, mean, rstd, dy, dx, dweight, dbias},
               (const char *[]){"x", "weight", "mean", "rstd", "dy", "dx", "dweight", "dbias"}, "aaffaaff");
    CHECK(!accumulate || (dx->data != dy->data && dx->data != x->data), "%s: dx accumulates, so it may not alias dy or x",
          op);
    DISPATCH(x->device, layernorm_backward_cpu(x, weight, mean, rstd, dy, dx, accumulate, dweight, dbias),
             layernorm_backward_cuda(x, weight, mean, rstd, dy, dx, accumulate, dweight, dbias));
}

void rmsnorm_forward(const tensor_t *x, const tensor_t *weight, float eps, tensor_t *y, tensor_t *rstd) {
    const char *op = "rmsnorm_forward";
    CHECK(eps > 0.0f, "%s: eps must be positive, got %g", op, (double)eps);
    CHECK(weight != NULL, "%s: weight is required", op);
    norm_check(op, x, y, "y", weight, NULL, rstd, "rstd", NULL, NULL);
    check_args(op, x->device, 4, (const tensor_t *[]){x, weight, y, rstd}, (const char *[]){"x", "weight", "y", "rstd"},
               "aaaf");
    DISPATCH(x->device, rmsnorm_forward_cpu(x, weight, eps, y, rstd), rmsnorm_forward_cuda(x, weight, eps, y, rstd));
}

static void rope_check(const char *op, const tensor_t *blhd, const char *n1, const tensor_t *bhld, const char *n2,
                       int F, int Hg, int Wg);

void rmsnorm_rope_forward(const tensor_t *x, const tensor_t *weight, float eps, int F, int Hg, int Wg, tensor_t *y,
                          tensor_t *rstd) {
    const char *op = "rmsnorm_rope_forward";
    CHECK(eps > 0.0f, "%s: eps must be positive, got %g", op, (double)eps);
    CHECK(weight != NULL, "%s: weight is required", op);
    CHECK(x->ndim == 3, "%s: x must be [B, L, C], got %d dims", op, x->ndim);
    CHECK(y->ndim == 4 && y->shape[1] * y->shape[3] == x->shape[2],
          "%s: y must be [B, H, L, D] with H D = C = %lld", op, (long long)x->shape[2]);
    tensor_t x4 = *x; /* x as [B, L, H, D] for the RoPE checks */
    x4.ndim = 4, x4.shape[2] = y->shape[1], x4.shape[3] = y->shape[3];
    rope_check(op, &x4, "x", y, "y", F, Hg, Wg);
    expect_shape(op, "weight", weight, 1, (int64_t[]){x->shape[2]});
    expect_numel(op, "rstd", rstd, x->shape[0] * x->shape[1]);
    check_args(op, x->device, 4, (const tensor_t *[]){x, weight, y, rstd}, (const char *[]){"x", "weight", "y", "rstd"},
               "aaaf");
    DISPATCH(x->device, rmsnorm_rope_forward_cpu(x, weight, eps, F, Hg, Wg, y, rstd),
             rmsnorm_rope_forward_cuda(x, weight, eps, F, Hg, Wg, y, rstd));
}

void rmsnorm_backward(const tensor_t *x, const tensor_t *weight, const tensor_t *rstd, const tensor_t *dy,
                      tensor_t *dx, tensor_t *dweight) {
    const char *op = "rmsnorm_backward";
    CHECK(weight != NULL, "%s: weight is required", op);
    norm_check(op, x, dy, "dy", weight, NULL, rstd, "rstd", NULL, NULL);
    expect_same(op, "dx", dx, x);
    if (dweight) expect_same(op, "dweight", dweight, weight);
    check_args(op, x->device, 6, (const tensor_t *[]){x, weight, rstd, dy, dx, dweight},
               (const char *[]){"x", "weight", "rstd", "dy", "dx", "dweight"}, "aafaaf");
    DISPATCH(x->device, rmsnorm_backward_cpu(x, weight, rstd, dy, dx, dweight),
             rmsnorm_backward_cuda(x, weight, rstd, dy, dx, dweight));
}

/* ---- modulation and gates ---------------------------------------------------------------------- */

/* x [B, L, C] and a per-sample [B, C] tensor. */
static void blc_check(const char *op, const char *xname, const tensor_t *x, const char *mname, const tensor_t *m) {
    CHECK(x->ndim == 3, "%s: %s must be [B, L, C], got %d dims", op, xname, x->ndim);
    expect_shape(op, mname, m, 2, (int64_t[]){x->shape[0], x->shape[2]});
}

void modulate_forward(const tensor_t *x, const tensor_t *scale, const tensor_t *shift, tensor_t *y) {
    const char *op = "modulate_forward";
    blc_check(op, "x", x, "scale", scale);
    expect_same(op, "shift", shift, scale);
    expect_same(op, "y", y, x);
    check_args(op, x->device, 4, (const tensor_t *[]){x, scale, shift, y}, (const char *[]){"x", "scale", "shift", "y"},
               "affa");
    if (y->data == x->data) expect_same_dtype(op, "y (in place)", y, x, "x");
    DISPATCH(x->device, modulate_forward_cpu(x, scale, shift, y), modulate_forward_cuda(x, scale, shift, y));
}

void modulate_backward(const tensor_t *x, const tensor_t *scale, const tensor_t *dy, tensor_t *dx, tensor_t *dscale,
                       tensor_t *dshift) {
    const char *op = "modulate_backward";
    blc_check(op, "x", x, "scale", scale);
    expect_same(op, "dy", dy, x);
    expect_same(op, "dx", dx, x);
    expect_same(op, "dscale", dscale, scale);
    expect_same(op, "dshift", dshift, scale);
    check_args(op, x->device, 6, (const tensor_t *[]){x, scale, dy, dx, dscale, dshift},
               (const char *[]){"x", "scale", "dy", "dx", "dscale", "dshift"}, "afaaff");
    DISPATCH(x->device, modulate_backward_cpu(x, scale, dy, dx, dscale, dshift),
             modulate_backward_cuda(x, scale, dy, dx, dscale, dshift));
}

void gated_residual_forward(const tensor_t *x, const tensor_t *gate, const tensor_t *y, tensor_t *out) {
    const char *op = "gated_residual_forward";
    blc_check(op, "x", x, "gate", gate);
    expect_same(op, "y", y, x);
    expect_same(op, "out", out, x);
    check_args(op, x->device, 4, (const tensor_t *[]){x, gate, y, out}, (const char *[]){"x", "gate", "y", "out"},
               "afaa");
    expect_same_dtype(op, "out", out, x, "x");
    CHECK(out->data != y->data, "%s: out may alias x, not y", op);
    DISPATCH(x->device, gated_residual_forward_cpu(x, gate, y, out), gated_residual_forward_cuda(x, gate, y, out));
}

void gated_residual_backward(const tensor_t *y, const tensor_t *gate, const tensor_t *dx, tensor_t *dy,
                             tensor_t *dgate) {
    const char *op = "gated_residual_backward";
    blc_check(op, "y", y, "gate", gate);
    expect_same(op, "dx", dx, y);
    expect_same(op, "dy", dy, y);
    expect_same(op, "dgate", dgate, gate);
    check_args(op, y->device, 5, (const tensor_t *[]){y, gate, dx, dy, dgate},
               (const char *[]){"y", "gate", "dx", "dy", "dgate"}, "afaaf");
    DISPATCH(y->device, gated_residual_backward_cpu(y, gate, dx, dy, dgate),
             gated_residual_backward_cuda(y, gate, dx, dy, dgate));
}

/* ---- activations ------------------------------------------------------------------------------- */

static void act_check(const char *op, const tensor_t *x, const tensor_t *dy, const tensor_t *out) {
    if (dy) expect_same(op, "dy", dy, x);
    expect_same(op, dy ? "dx" : "y", out, x);
    check_args(op, x->device, 3, (const tensor_t *[]){x, dy, out}, (const char *[]){"x", "dy", dy ? "dx" : "y"},
               "aaa");
    const tensor_t *in = dy ? dy : x; /* the allowed alias */
    if (out->data == in->data) expect_same_dtype(op, "the in-place output", out, in, dy ? "dy" : "x");
}

void gelu_forward(const tensor_t *x, tensor_t *y) {
    const char *op = "gelu_forward";
    act_check(op, x, NULL, y);
    DISPATCH(x->device, gelu_forward_cpu(x, y), gelu_forward_cuda(x, y));
}
void gelu_backward(const tensor_t *x, const tensor_t *dy, tensor_t *dx) {
    const char *op = "gelu_backward";
    act_check(op, x, dy, dx);
    DISPATCH(x->device, gelu_backward_cpu(x, dy, dx), gelu_backward_cuda(x, dy, dx));
}
void silu_forward(const tensor_t *x, tensor_t *y) {
    const char *op = "silu_forward";
    act_check(op, x, NULL, y);
    DISPATCH(x->device, silu_forward_cpu(x, y), silu_forward_cuda(x, y));
}
void silu_backward(const tensor_t *x, const tensor_t *dy, tensor_t *dx) {
    const char *op = "silu_backward";
    act_check(op, x, dy, dx);
    DISPATCH(x->device, silu_backward_cpu(x, dy, dx), silu_backward_cuda(x, dy, dx));
}

/* ---- RoPE and head transposes ------------------------------------------------------------------ */

void rope_axis_pairs(int D, int *pf, int *ph, int *pw) {
    int s = D / 6; /* dims: D - 4 floor(D/6) for frames, 2 floor(D/6) each for rows and columns */
    *pf = (D - 4 * s) / 2;
    *ph = s;
    *pw = s;
}

/* blhd [B, L, H, D] and bhld [B, H, L, D] with L = F*Hg*Wg and D even. */
static void rope_check(const char *op, const tensor_t *blhd, const char *n1, const tensor_t *bhld, const char *n2,
                       int F, int Hg, int Wg) {
    CHECK(F > 0 && Hg > 0 && Wg > 0, "%s: grid (%d, %d, %d) must be positive", op, F, Hg, Wg);
    CHECK(blhd->ndim == 4, "%s: %s must be [B, L, H, D], got %d dims", op, n1, blhd->ndim);
    int64_t B = blhd->shape[0], L = blhd->shape[1], H = blhd->shape[2], D = blhd->shape[3];
    CHECK(L == (int64_t)F * Hg * Wg, "%s: %s has L = %lld tokens but the grid %d x %d x %d has %lld", op, n1,
          (long long)L, F, Hg, Wg, (long long)F * Hg * Wg);
    CHECK(D >= 2 && D % 2 == 0, "%s: head dim %lld must be even (complex pairs)", op, (long long)D);
    expect_shape(op, n2, bhld, 4, (int64_t[]){B, H, L, D});
    check_args(op, blhd->device, 2, (const tensor_t *[]){blhd, bhld}, (const char *[]){n1, n2}, "aa");
}

void rope_forward(const tensor_t *x, int F, int Hg, int Wg, tensor_t *y) {
    const char *op = "rope_forward";
    rope_check(op, x, "x", y, "y", F, Hg, Wg);
    DISPATCH(x->device, rope_forward_cpu(x, F, Hg, Wg, y), rope_forward_cuda(x, F, Hg, Wg, y));
}

void rope_backward(const tensor_t *dy, int F, int Hg, int Wg, tensor_t *dx) {
    const char *op = "rope_backward";
    rope_check(op, dx, "dx", dy, "dy", F, Hg, Wg);
    DISPATCH(dy->device, rope_backward_cpu(dy, F, Hg, Wg, dx), rope_backward_cuda(dy, F, Hg, Wg, dx));
}

void head_transpose(const tensor_t *x, tensor_t *y) {
    const char *op = "head_transpose";
    CHECK(x->ndim == 4, "%s: x must be 4-D [B, P, Q, D], got %d dims", op, x->ndim);
    expect_shape(op, "y", y, 4, (int64_t[]){x->shape[0], x->shape[2], x->shape[1], x->shape[3]});
    check_args(op, x->device, 2, (const tensor_t *[]){x, y}, (const char *[]){"x", "y"}, "aa");
    CHECK(x->data != y->data || tensor_numel(x) == 0, "%s: y must not alias x", op);
    DISPATCH(x->device, head_transpose_cpu(x, y), head_transpose_cuda(x, y));
}

/* ---- patchify ---------------------------------------------------------------------------------- */

/* lat [B, C, F, H, W] against tok [B, L, C*pt*ph*pw]. */
static void patch_check(const char *op, const tensor_t *lat, const char *ln, const tensor_t *tok, const char *tn,
                        int pt, int ph, int pw) {
    CHECK(pt > 0 && ph > 0 && pw > 0, "%s: patch (%d, %d, %d) must be positive", op, pt, ph, pw);
    CHECK(lat->ndim == 5, "%s: %s must be [B, C, F, H, W], got %d dims", op, ln, lat->ndim);
    int64_t B = lat->shape[0], C = lat->shape[1], F = lat->shape[2], H = lat->shape[3], W = lat->shape[4];
    CHECK(F % pt == 0 && H % ph == 0 && W % pw == 0, "%s: %s frames/height/width (%lld, %lld, %lld) are not multiples "
          "of the patch (%d, %d, %d)", op, ln, (long long)F, (long long)H, (long long)W, pt, ph, pw);
    expect_shape(op, tn, tok, 3, (int64_t[]){B, (F / pt) * (H / ph) * (W / pw), C * pt * ph * pw});
    check_args(op, lat->device, 2, (const tensor_t *[]){lat, tok}, (const char *[]){ln, tn}, "aa");
}

void patchify(const tensor_t *lat, int pt, int ph, int pw, tensor_t *tok) {
    const char *op = "patchify";
    patch_check(op, lat, "lat", tok, "tok", pt, ph, pw);
    DISPATCH(lat->device, patchify_cpu(lat, pt, ph, pw, tok), patchify_cuda(lat, pt, ph, pw, tok));
}
void patchify_backward(const tensor_t *dtok, int pt, int ph, int pw, tensor_t *dlat) {
    const char *op = "patchify_backward";
    patch_check(op, dlat, "dlat", dtok, "dtok", pt, ph, pw);
    DISPATCH(dlat->device, patchify_backward_cpu(dtok, pt, ph, pw, dlat), patchify_backward_cuda(dtok, pt, ph, pw, dlat));
}
void unpatchify(const tensor_t *tok, int pt, int ph, int pw, tensor_t *lat) {
    const char *op = "unpatchify";
    patch_check(op, lat, "lat", tok, "tok", pt, ph, pw);
    DISPATCH(lat->device, unpatchify_cpu(tok, pt, ph, pw, lat), unpatchify_cuda(tok, pt, ph, pw, lat));
}
void unpatchify_backward(const tensor_t *dlat, int pt, int ph, int pw, tensor_t *dtok) {
    const char *op = "unpatchify_backward";
    patch_check(op, dlat, "dlat", dtok, "dtok", pt, ph, pw);
    DISPATCH(dlat->device, unpatchify_backward_cpu(dlat, pt, ph, pw, dtok),
             unpatchify_backward_cuda(dlat, pt, ph, pw, dtok));
}

/* ---- time embedding, loss, optimizer ----------------------------------------------------------- */

void timestep_embedding(const tensor_t *t, tensor_t *emb) {
    const char *op = "timestep_embedding";
    CHECK(t->ndim == 1, "%s: t must be [B], got %d dims", op, t->ndim);
    CHECK(emb->ndim == 2 && emb->shape[0] == t->shape[0] && emb->shape[1] > 0 && emb->shape[1] % 2 == 0,
          "%s: emb must be [%lld, dim] with dim even and positive", op, (long long)t->shape[0]);
    check_args(op, t->device, 2, (const tensor_t *[]){t, emb}, (const char *[]){"t", "emb"}, "ff");
    DISPATCH(t->device, timestep_embedding_cpu(t, emb), timestep_embedding_cuda(t, emb));
}

double mse_loss(const tensor_t *pred, const tensor_t *target, double grad_scale, tensor_t *dpred) {
    const char *op = "mse_loss";
    CHECK(tensor_numel(pred) > 0, "%s: pred is empty", op);
    expect_same(op, "target", target, pred);
    if (dpred) expect_same(op, "dpred", dpred, pred);
    check_args(op, pred->device, 3, (const tensor_t *[]){pred, target, dpred},
               (const char *[]){"pred", "target", "dpred"}, "aaa");
    double loss = 0.0;
    DISPATCH(pred->device, loss = mse_loss_cpu(pred, target, grad_scale, dpred),
             loss = mse_loss_cuda(pred, target, grad_scale, dpred));
    return loss;
}

void adamw_step(const adamw_params_t *p, tensor_t *w, const tensor_t *grad, tensor_t *m, tensor_t *v,
                tensor_t *w_bf16) {
    const char *op = "adamw_step";
    CHECK(p->step >= 1, "%s: step counts from 1, got %lld", op, (long long)p->step);
    CHECK(p->beta1 >= 0.0 && p->beta1 < 1.0 && p->beta2 >= 0.0 && p->beta2 < 1.0,
          "%s: betas (%g, %g) must lie in [0, 1)", op, p->beta1, p->beta2);
    CHECK(p->eps > 0.0 && p->lr >= 0.0 && p->weight_decay >= 0.0, "%s: need eps > 0, lr >= 0, weight_decay >= 0 "
          "(got %g, %g, %g)", op, p->eps, p->lr, p->weight_decay);
    expect_same(op, "grad", grad, w);
    expect_same(op, "m", m, w);
    expect_same(op, "v", v, w);
    if (w_bf16) expect_same(op, "w_bf16", w_bf16, w);
    check_args(op, w->device, 5, (const tensor_t *[]){w, grad, m, v, w_bf16},
               (const char *[]){"w", "grad", "m", "v", "w_bf16"}, "ffffh");
    DISPATCH(w->device, adamw_step_cpu(p, w, grad, m, v), adamw_step_cuda(p, w, grad, m, v, w_bf16));
}

double sum_squares(const tensor_t *x) {
    const char *op = "sum_squares";
    check_args(op, x->device, 1, (const tensor_t *[]){x}, (const char *[]){"x"}, "f");
    double s = 0.0;
    DISPATCH(x->device, s = sum_squares_cpu(x), s = sum_squares_cuda(x));
    return s;
}
