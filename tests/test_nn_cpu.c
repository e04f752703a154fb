/* tests/test_nn_cpu.c — the CPU backend of nn_ops.h (label cpu): gradients and formulas of the
 * DiT's math ops. Every backward (linear, LayerNorm with and without affine, RMSNorm, modulate,
 * gated residual, GELU-tanh, SiLU, RoPE, MSE) is checked against central finite differences of
 * L = sum(G * out) in fp64 through the *_f64 entry points, along a random direction per input
 * and on sampled elements; forwards against the written-out formulas; the tensor entry points
 * against the fp64 math and for the += contract of parameter gradients. The layout ops, the time
 * embedding and AdamW are in tests/test_nn_layout_cpu.c. */
#include <stdlib.h>
#include <string.h>

#include "cpu/nn_cpu.h"
#include "test_util.h"

static test_rng_t rng = {7};

/* Central differences of loss() along a random direction of in[n] and on 8 sampled elements,
 * against grad[n]. Tolerances sit far below the O(1) error of any wrong term. */
static void fd_check(const char *what, double (*loss)(void), double *in, const double *grad, long n) {
    const double eps = 1e-5;
    double *u = malloc(sizeof(double) * n), ana = 0.0;
    fill_normal_f64(&rng, u, n, 1.0);
    for (long i = 0; i < n; i++) ana += grad[i] * u[i], in[i] += eps * u[i];
    double lp = loss();
    for (long i = 0; i < n; i++) in[i] -= 2 * eps * u[i];
    double lm = loss();
    for (long i = 0; i < n; i++) in[i] += eps * u[i];
    double fd = (lp - lm) / (2 * eps), rel = fabs(fd - ana) / fmax(fabs(fd), 1e-300);
    EXPECT(rel <= 1e-7, "%s: analytic %.12g vs finite difference %.12g", what, ana, fd);
    double gmax = fmax(max_abs_f64(grad, n), 1e-300), we = 0.0;
    for (int s = 0; s < 8; s++) {
        long i = (long)(rng_uniform(&rng) * n);
        double x = in[i];
        in[i] = x + eps;
        double a = loss();
        in[i] = x - eps;
        double b = loss();
        in[i] = x;
        we = fmax(we, fabs((a - b) / (2 * eps) - grad[i]) / gmax);
    }
    EXPECT(we <= 1e-7, "%s: element error %.2e of max |grad|", what, we);
    printf("  %-22s directional rel err %.1e, worst element %.1e\n", what, rel, we);
}

static double *normal(long n, double scale) {
    double *p = malloc(sizeof(double) * (n > 0 ? n : 1));
    fill_normal_f64(&rng, p, n, scale);
    return p;
}
static double *zeros(long n) { return calloc(n > 0 ? n : 1, sizeof(double)); }
static double dot(const double *a, const double *b, long n) {
    double s = 0.0;
    for (long i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* f32 tensor on the host from doubles (rounded), and back. */
static tensor_t host_tensor(int ndim, const int64_t *shape, const double *init) {
    tensor_t t = tensor_alloc(DTYPE_F32, DEVICE_CPU, ndim, shape);
    for (long i = 0; i < tensor_numel(&t); i++) ((float *)t.data)[i] = init ? (float)init[i] : 0.0f;
    return t;
}
static double max_diff_f32(const tensor_t *t, const double *ref) {
    double e = 0.0;
    for (long i = 0; i < tensor_numel(t); i++) e = fmax(e, fabs(((float *)t->data)[i] - ref[i]));
    return e;
}

/* ---- linear ------------------------------------------------------------------------------------ */

enum { LM = 13, LK = 11, LN = 7 };
static double *lx, *lw, *lb, *lg;

static double linear_loss(void) {
    double y[LM * LN];
    linear_forward_f64(LM, LK, LN, lx, lw, lb, y);
    return dot(lg, y, LM * LN);
}

static void test_linear(void) {
    printf("linear [%d,%d] x [%d,%d]^T:\n", LM, LK, LN, LK);
    lx = normal(LM * LK, 1), lw = normal(LN * LK, 0.5), lb = normal(LN, 1), lg = normal(LM * LN, 1);
    double y[LM * LN], worst = 0.0;
    linear_forward_f64(LM, LK, LN, lx, lw, lb, y);
    for (int m = 0; m < LM; m++)
        for (int n = 0; n < LN; n++) {
            double s = lb[n];
            for (int k = 0; k < LK; k++) s += lx[m * LK + k] * lw[n * LK + k];
            worst = fmax(worst, fabs(s - y[m * LN + n]));
        }
    EXPECT(worst <= 1e-13, "linear forward vs formula: %.2e", worst);
    double *dx = zeros(LM * LK), *dw = zeros(LN * LK), *db = zeros(LN);
    linear_backward_f64(LM, LK, LN, lx, lw, lg, dx, dw, db);
    fd_check("linear dx", linear_loss, lx, dx, LM * LK);
    fd_check("linear dw", linear_loss, lw, dw, LN * LK);
    fd_check("linear db", linear_loss, lb, db, LN);

    /* Tensor entry points: forward against fp64, dw/db accumulate (called twice from a start). */
    tensor_t x = host_tensor(3, (int64_t[]){1, LM, LK}, lx), w = host_tensor(2, (int64_t[]){LN, LK}, lw);
    tensor_t b = host_tensor(1, (int64_t[]){LN}, lb), yt = host_tensor(3, (int64_t[]){1, LM, LN}, NULL);
    tensor_t g = host_tensor(3, (int64_t[]){1, LM, LN}, lg), dxt = host_tensor(3, (int64_t[]){1, LM, LK}, NULL);
    double *start = normal(LN * LK, 1), *startb = normal(LN, 1);
    tensor_t dwt = host_tensor(2, (int64_t[]){LN, LK}, start), dbt = host_tensor(1, (int64_t[]){LN}, startb);
    linear_forward(&x, &w, &b, &yt);
    EXPECT(max_diff_f32(&yt, y) <= 1e-5 * max_abs_f64(y, LM * LN), "linear tensor forward");
    linear_backward(&x, &w, &g, &dxt, 0, &dwt, &dbt);
    linear_backward(&x, &w, &g, NULL, 0, &dwt, &dbt);
    for (int i = 0; i < LN * LK; i++) start[i] += 2 * dw[i];
    for (int i = 0; i < LN; i++) startb[i] += 2 * db[i];
    EXPECT(max_diff_f32(&dwt, start) <= 1e-5 * max_abs_f64(start, LN * LK), "linear dw must accumulate (+=)");
    EXPECT(max_diff_f32(&dbt, startb) <= 1e-5 * max_abs_f64(startb, LN), "linear db must accumulate (+=)");
    EXPECT(max_diff_f32(&dxt, dx) <= 1e-5 * max_abs_f64(dx, LM * LK), "linear tensor dx");
    linear_backward(&x, &w, &g, &dxt, 1, &dwt, NULL); /* dx += */
    for (int i = 0; i < LM * LK; i++) dx[i] *= 2;
    EXPECT(max_diff_f32(&dxt, dx) <= 1e-5 * max_abs_f64(dx, LM * LK), "linear dx must accumulate (+=)");
    tensor_t *ts[] = {&x, &w, &b, &yt, &g, &dxt, &dwt, &dbt};
    for (int i = 0; i < 8; i++) tensor_free(ts[i]);
    free(lx), free(lw), free(lb), free(lg), free(dx), free(dw), free(db), free(start), free(startb);
}

/* ---- norms ------------------------------------------------------------------------------------- */

enum { NM = 9, NC = 37 };
static double *nx, *nw, *nb, *ng;
static int n_rms;

static double norm_loss(void) {
    double y[NM * NC], mean[NM], rstd[NM];
    if (n_rms) rmsnorm_forward_f64(NM, NC, 1e-6, nx, nw, y, rstd);
    else layernorm_forward_f64(NM, NC, 1e-6, nx, nw, nb, y, mean, rstd);
    return dot(ng, y, NM * NC);
}

static void test_norm(int rms, int affine) {
    const char *name = rms ? "rmsnorm" : affine ? "layernorm affine" : "layernorm plain";
    printf("%s [%d,%d]:\n", name, NM, NC);
    n_rms = rms;
    nx = normal(NM * NC, 2.0), ng = normal(NM * NC, 1.0);
    for (int i = 0; i < NM * NC; i++) nx[i] += 0.7; /* a non-zero mean */
    nw = affine ? normal(NC, 1.0) : NULL, nb = affine && !rms ? normal(NC, 1.0) : NULL;
    double y[NM * NC], mean[NM], rstd[NM], worst = 0.0;
    if (rms) rmsnorm_forward_f64(NM, NC, 1e-6, nx, nw, y, rstd);
    else layernorm_forward_f64(NM, NC, 1e-6, nx, nw, nb, y, mean, rstd);
    for (int m = 0; m < NM; m++) { /* the formula, written out */
        double mu = 0, var = 0;
        for (int c = 0; c < NC; c++) mu += nx[m * NC + c] / NC;
        if (rms) mu = 0;
        for (int c = 0; c < NC; c++) var += (nx[m * NC + c] - mu) * (nx[m * NC + c] - mu) / NC;
        for (int c = 0; c < NC; c++) {
            double want = (nx[m * NC + c] - mu) / sqrt(var + 1e-6) * (nw ? nw[c] : 1) + (nb ? nb[c] : 0);
            worst = fmax(worst, fabs(want - y[m * NC + c]));
        }
        worst = fmax(worst, fabs(rstd[m] - 1 / sqrt(var + 1e-6)));
        if (!rms) worst = fmax(worst, fabs(mean[m] - mu));
    }
    EXPECT(worst <= 1e-12, "%s forward vs formula: %.2e", name, worst);
    double *dx = zeros(NM * NC), *dw = zeros(NC), *db = zeros(NC);
    if (rms) rmsnorm_backward_f64(NM, NC, nx, nw, rstd, ng, dx, dw);
    else layernorm_backward_f64(NM, NC, nx, nw, mean, rstd, ng, dx, nw ? dw : NULL, nb ? db : NULL);
    fd_check("dx", norm_loss, nx, dx, NM * NC);
    if (nw) fd_check("dweight", norm_loss, nw, dw, NC);
    if (nb) fd_check("dbias", norm_loss, nb, db, NC);

    if (affine) { /* tensor entry points: dweight accumulates */
        tensor_t x = host_tensor(2, (int64_t[]){NM, NC}, nx), w = host_tensor(1, (int64_t[]){NC}, nw);
        tensor_t b = host_tensor(1, (int64_t[]){NC}, nb), yt = host_tensor(2, (int64_t[]){NM, NC}, NULL);
        tensor_t mt = host_tensor(1, (int64_t[]){NM}, NULL), rt = host_tensor(1, (int64_t[]){NM}, NULL);
        tensor_t g = host_tensor(2, (int64_t[]){NM, NC}, ng), dxt = host_tensor(2, (int64_t[]){NM, NC}, NULL);
        double *start = normal(NC, 1.0);
        tensor_t dwt = host_tensor(1, (int64_t[]){NC}, start);
        if (rms) rmsnorm_forward(&x, &w, 1e-6f, &yt, &rt);
        else layernorm_forward(&x, &w, &b, 1e-6f, &yt, &mt, &rt);
        EXPECT(max_diff_f32(&yt, y) <= 1e-5 * max_abs_f64(y, NM * NC), "%s tensor forward", name);
        for (int k = 0; k < 2; k++)
            if (rms) rmsnorm_backward(&x, &w, &rt, &g, &dxt, &dwt);
            else layernorm_backward(&x, &w, &mt, &rt, &g, &dxt, 0, &dwt, NULL);
        for (int c = 0; c < NC; c++) start[c] += 2 * dw[c];
        EXPECT(max_diff_f32(&dwt, start) <= 1e-5 * max_abs_f64(start, NC), "%s dweight must accumulate (+=)", name);
        EXPECT(max_diff_f32(&dxt, dx) <= 1e-5 * max_abs_f64(dx, NM * NC), "%s tensor dx", name);
        if (!rms) { /* accumulate: dx += the gradient, so a second call doubles it */
            layernorm_backward(&x, &w, &mt, &rt, &g, &dxt, 1, NULL, NULL);
            for (long i = 0; i < (long)NM * NC; i++) dx[i] *= 2;
            EXPECT(max_diff_f32(&dxt, dx) <= 1e-5 * max_abs_f64(dx, NM * NC), "layernorm dx must accumulate (+=)");
        }
        tensor_t *ts[] = {&x, &w, &b, &yt, &mt, &rt, &g, &dxt, &dwt};
        for (int i = 0; i < 9; i++) tensor_free(ts[i]);
        free(start);
    }
    free(nx), free(nw), free(nb), free(ng), free(dx), free(dw), free(db);
}

/* ---- modulate and gated residual ---------------------------------------------------------------- */

enum { MB = 2, ML = 7, MC = 13 };
static double *mx, *ms, *mh, *mg, *my;

static double modulate_loss(void) {
    double y[MB * ML * MC];
    modulate_forward_f64(MB, ML, MC, mx, ms, mh, y);
    return dot(mg, y, MB * ML * MC);
}

static double gate_loss(void) {
    double x[MB * ML * MC];
    memcpy(x, mx, sizeof x);
    gated_residual_forward_f64(MB, ML, MC, x, ms, my);
    return dot(mg, x, MB * ML * MC);
}

static void test_modulate_gate(void) {
    enum { N = MB * ML * MC };
    printf("modulate / gated residual [%d,%d,%d]:\n", MB, ML, MC);
    mx = normal(N, 1), ms = normal(MB * MC, 0.5), mh = normal(MB * MC, 0.5), mg = normal(N, 1), my = normal(N, 1);
    double y[N], worst = 0.0;
    modulate_forward_f64(MB, ML, MC, mx, ms, mh, y);
    for (int i = 0; i < N; i++) {
        int b = i / (ML * MC), c = i % MC;
        worst = fmax(worst, fabs(mx[i] * (1 + ms[b * MC + c]) + mh[b * MC + c] - y[i]));
    }
    EXPECT(worst <= 1e-14, "modulate forward vs formula: %.2e", worst);
    double *dx = zeros(N), *dsc = zeros(MB * MC), *dsh = zeros(MB * MC);
    modulate_backward_f64(MB, ML, MC, mx, ms, mg, dx, dsc, dsh);
    fd_check("modulate dx", modulate_loss, mx, dx, N);
    fd_check("modulate dscale", modulate_loss, ms, dsc, MB * MC);
    fd_check("modulate dshift", modulate_loss, mh, dsh, MB * MC);

    double *dy = zeros(N), *dgate = zeros(MB * MC);
    gated_residual_backward_f64(MB, ML, MC, my, ms, mg, dy, dgate);
    fd_check("gated residual dy", gate_loss, my, dy, N);
    fd_check("gated residual dgate", gate_loss, ms, dgate, MB * MC);

    /* Tensor entry points, with y aliasing x for modulate (allowed) and the = contract of dscale. */
    int64_t sx[3] = {MB, ML, MC}, sm[2] = {MB, MC};
    tensor_t x = host_tensor(3, sx, mx), s = host_tensor(2, sm, ms), h = host_tensor(2, sm, mh);
    tensor_t g = host_tensor(3, sx, mg), dxt = host_tensor(3, sx, NULL), dst = host_tensor(2, sm, mh);
    tensor_t dht = host_tensor(2, sm, ms);
    modulate_backward(&x, &s, &g, &dxt, &dst, &dht);
    EXPECT(max_diff_f32(&dst, dsc) <= 1e-5 * max_abs_f64(dsc, MB * MC), "modulate dscale is overwritten (=)");
    EXPECT(max_diff_f32(&dht, dsh) <= 1e-5 * max_abs_f64(dsh, MB * MC), "modulate dshift is overwritten (=)");
    modulate_forward(&x, &s, &h, &x);
    EXPECT(max_diff_f32(&x, y) <= 1e-5 * max_abs_f64(y, N), "modulate in place");
    tensor_t *ts[] = {&x, &s, &h, &g, &dxt, &dst, &dht};
    for (int i = 0; i < 7; i++) tensor_free(ts[i]);
    free(mx), free(ms), free(mh), free(mg), free(my), free(dx), free(dsc), free(dsh), free(dy), free(dgate);
}

/* ---- activations, loss --------------------------------------------------------------------------- */

enum { AN = 64 };
static double *ax, *ag;
static int a_silu;

static double act_loss(void) {
    double y[AN];
    if (a_silu) silu_forward_f64(AN, ax, y);
    else gelu_forward_f64(AN, ax, y);
    return dot(ag, y, AN);
}

static void test_activations(void) {
    printf("activations:\n");
    double one = 1.0, neg = -2.5, v;
    gelu_forward_f64(1, &one, &v); /* torch.nn.functional.gelu(1.0, approximate='tanh') */
    EXPECT(fabs(v - 0.8411919906082768) <= 1e-15, "gelu(1) = %.17g", v);
    gelu_forward_f64(1, &neg, &v);
    EXPECT(fabs(v - (-0.5 * 2.5 * (1 + tanh(sqrt(2 / 3.141592653589793) * (-2.5 - 0.044715 * 15.625))))) <= 1e-15, "gelu(-2.5)");
    silu_forward_f64(1, &one, &v);
    EXPECT(fabs(v - 0.7310585786300049) <= 1e-15, "silu(1) = %.17g", v);
    ax = normal(AN, 2.0), ag = normal(AN, 1.0);
    double dx[AN];
    for (a_silu = 0; a_silu < 2; a_silu++) {
        if (a_silu) silu_backward_f64(AN, ax, ag, dx);
        else gelu_backward_f64(AN, ax, ag, dx);
        fd_check(a_silu ? "silu dx" : "gelu dx", act_loss, ax, dx, AN);
        /* tensor entry points in place (allowed): dx overwrites dy */
        tensor_t x = host_tensor(1, (int64_t[]){AN}, ax), g = host_tensor(1, (int64_t[]){AN}, ag);
        if (a_silu) silu_backward(&x, &g, &g);
        else gelu_backward(&x, &g, &g);
        EXPECT(max_diff_f32(&g, dx) <= 1e-5 * max_abs_f64(dx, AN), "activation tensor backward in place");
        tensor_free(&x), tensor_free(&g);
    }
    free(ax), free(ag);
}

static double *lp, *lt;
enum { SN = 50 };
static double mse_loss_only(void) { return mse_loss_f64(SN, lp, lt, 1.0, NULL); }

static void test_mse(void) {
    printf("mse:\n");
    lp = normal(SN, 1), lt = normal(SN, 1);
    double d[SN], want = 0.0;
    double loss = mse_loss_f64(SN, lp, lt, 1.0, d);
    for (int i = 0; i < SN; i++) want += (lp[i] - lt[i]) * (lp[i] - lt[i]) / SN;
    EXPECT(fabs(loss - want) <= 1e-15 * want, "mse vs formula: %.17g vs %.17g", loss, want);
    fd_check("mse dpred", mse_loss_only, lp, d, SN);
    tensor_t p = host_tensor(1, (int64_t[]){SN}, lp), t = host_tensor(1, (int64_t[]){SN}, lt);
    tensor_t g = host_tensor(1, (int64_t[]){SN}, NULL);
    double lt32 = mse_loss(&p, &t, 0.25, &g);
    for (int i = 0; i < SN; i++) d[i] *= 0.25;
    EXPECT(fabs(lt32 - want) <= 1e-6 * want, "mse tensor loss");
    EXPECT(max_diff_f32(&g, d) <= 1e-6 * max_abs_f64(d, SN), "mse tensor dpred with grad_scale");
    tensor_free(&p), tensor_free(&t), tensor_free(&g);
    free(lp), free(lt);
}

int main(void) {
    test_linear();
    test_norm(0, 1);
    test_norm(0, 0);
    test_norm(1, 1);
    test_modulate_gate();
    test_activations();
    test_mse();
    return test_summary("test_nn_cpu");
}
