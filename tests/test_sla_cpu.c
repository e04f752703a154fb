/* tests/test_sla_cpu.c — the CPU SLA oracle checked against first principles (label cpu).
 *
 * 1. Finite differences: for both variants, all three feature maps, kl = 0 and kl > 0, with N a
 *    multiple of neither block size, the analytic gradient of L = sum(G * O) with respect to q, k,
 *    v, proj_w and proj_b matches central differences in fp64 (eps 1e-5), along a random
 *    direction per input (relative error <= 1e-7, element error <= 2e-8 of the largest entry) and element by element on sampled entries.
 * 2. Naive formulas: the sparse branch (each row's softmax over its critical keys sums to 1 and
 *    gives Os) and the linear branch (H_i, Z_i summed key by key over the marginal blocks), and the
 *    block selection (pooled scores, ties to the lower index, negligible = lowest ranked).
 * 3. Identities of SLA.md section 6: rho = 1 complement gives dense attention + b and Ol = 0
 *    with dense gradients; W = b = 0 gives O = Os and a linear branch that sends no gradient; the
 *    order of the critical blocks does not matter; kappa = max(1, floor(rho Tn)).
 * 4. The fp32 tensor entry point (ops.h) agrees with the fp64 one. */
#include <stdlib.h>
#include <string.h>

#include "cpu/sla_cpu.h"
#include "ops.h"
#include "test_util.h"

typedef struct problem {
    sla_config_t cfg;
    sla_dims_t d;
    long n;                    /* B*H*N*D */
    double *q, *k, *v, *w, *b; /* inputs */
    double *g;                 /* dLoss/dO */
    int32_t *lut, *neg;
} problem_t;

static void problem_init(problem_t *p, sla_config_t cfg, int B, int H, int N, int D, uint64_t seed, double wscale) {
    char err[256];
    p->cfg = cfg;
    if (sla_dims_make(&cfg, B, H, N, D, &p->d, NULL, err, sizeof err)) {
        fprintf(stderr, "bad test config: %s\n", err);
        exit(1);
    }
    test_rng_t r = {seed};
    p->n = (long)B * H * N * D;
    p->q = malloc(sizeof(double) * p->n), p->k = malloc(sizeof(double) * p->n), p->v = malloc(sizeof(double) * p->n);
    p->g = malloc(sizeof(double) * p->n);
    p->w = malloc(sizeof(double) * D * D), p->b = malloc(sizeof(double) * D);
    fill_normal_f64(&r, p->q, p->n, 1.0);
    fill_normal_f64(&r, p->k, p->n, 1.0);
    fill_normal_f64(&r, p->v, p->n, 1.0);
    fill_normal_f64(&r, p->g, p->n, 1.0);
    fill_normal_f64(&r, p->w, (long)D * D, wscale);
    fill_normal_f64(&r, p->b, D, wscale);
    p->lut = malloc(sizeof(int32_t) * B * H * p->d.Tm * p->d.kappa);
    p->neg = malloc(sizeof(int32_t) * B * H * p->d.Tm * (p->d.n_negl ? p->d.n_negl : 1));
    sla_select_blocks_f64(&p->d, p->q, p->k, 0, p->lut, p->neg);
}

static void problem_free(problem_t *p) {
    free(p->q), free(p->k), free(p->v), free(p->g), free(p->w), free(p->b), free(p->lut), free(p->neg);
}

typedef struct outputs {
    double *o, *os, *ol, *lse;
} outputs_t;

static outputs_t outputs_alloc(const problem_t *p) {
    outputs_t o;
    o.o = malloc(sizeof(double) * p->n), o.os = malloc(sizeof(double) * p->n), o.ol = malloc(sizeof(double) * p->n);
    o.lse = malloc(sizeof(double) * p->n / p->d.D);
    return o;
}

static void outputs_free(outputs_t *o) { free(o->o), free(o->os), free(o->ol), free(o->lse); }

static void run_forward(const problem_t *p, outputs_t *out) {
    sla_forward_f64(&p->cfg, &p->d, p->q, p->k, p->v, p->w, p->b, p->lut, p->neg, out->o, out->os, out->ol, out->lse);
}

/* L = sum(G * O) with the selection held fixed. */
static double loss(const problem_t *p) {
    outputs_t out = outputs_alloc(p);
    run_forward(p, &out);
    double l = 0.0;
    for (long i = 0; i < p->n; i++) l += p->g[i] * out.o[i];
    outputs_free(&out);
    return l;
}

typedef struct grads {
    double *dq, *dk, *dv, *dw, *db;
} grads_t;

static grads_t run_backward(const problem_t *p) {
    outputs_t out = outputs_alloc(p);
    run_forward(p, &out);
    grads_t gr;
    int D = p->d.D;
    gr.dq = malloc(sizeof(double) * p->n), gr.dk = malloc(sizeof(double) * p->n), gr.dv = malloc(sizeof(double) * p->n);
    gr.dw = malloc(sizeof(double) * D * D), gr.db = malloc(sizeof(double) * D);
    sla_backward_f64(&p->cfg, &p->d, p->q, p->k, p->v, p->w, p->lut, p->neg, out.os, out.ol, out.lse, p->g, gr.dq,
                     gr.dk, gr.dv, gr.dw, gr.db);
    outputs_free(&out);
    return gr;
}

static void grads_free(grads_t *g) { free(g->dq), free(g->dk), free(g->dv), free(g->dw), free(g->db); }

/* Central difference of the loss along u (x is modified and restored). */
static double directional_fd(problem_t *p, double *x, const double *u, long n, double eps) {
    for (long i = 0; i < n; i++) x[i] += eps * u[i];
    double lp = loss(p);
    for (long i = 0; i < n; i++) x[i] -= 2 * eps * u[i];
    double lm = loss(p);
    for (long i = 0; i < n; i++) x[i] += eps * u[i];
    return (lp - lm) / (2 * eps);
}

static void check_gradients(const char *label, sla_config_t cfg, int N, uint64_t seed) {
    problem_t p;
    problem_init(&p, cfg, 1, 2, N, 8, seed, 1.0);
    grads_t gr = run_backward(&p);
    int D = p.d.D;
    double *inputs[5] = {p.q, p.k, p.v, p.w, p.b};
    double *grads[5] = {gr.dq, gr.dk, gr.dv, gr.dw, gr.db};
    long sizes[5] = {p.n, p.n, p.n, (long)D * D, D};
    const char *names[5] = {"q", "k", "v", "proj_w", "proj_b"};
    test_rng_t r = {seed * 7 + 1};
    const double eps = 1e-5;
    for (int t = 0; t < 5; t++) {
        double *u = malloc(sizeof(double) * sizes[t]);
        fill_normal_f64(&r, u, sizes[t], 1.0);
        double ana = 0.0;
        for (long i = 0; i < sizes[t]; i++) ana += grads[t][i] * u[i];
        double fd = directional_fd(&p, inputs[t], u, sizes[t], eps);
        double rel = fabs(fd - ana) / (fabs(fd) + 1e-12);
        EXPECT(rel <= 1e-7, "%s d%s: directional derivative analytic %.12g vs finite difference %.12g (rel %.2e)",
               label, names[t], ana, fd, rel);
        /* Element by element on a sample, against the largest gradient entry's scale. */
        double gmax = max_abs_f64(grads[t], sizes[t]), worst = 0.0;
        for (int s = 0; s < 12; s++) {
            long i = (long)(rng_uniform(&r) * sizes[t]);
            memset(u, 0, sizeof(double) * sizes[t]);
            u[i] = 1.0;
            double e = fabs(directional_fd(&p, inputs[t], u, sizes[t], eps) - grads[t][i]) / (gmax + 1e-12);
            if (e > worst) worst = e;
        }
        EXPECT(worst <= 2e-8, "%s d%s: an element differs from its finite difference by %.2e of max |grad|", label,
               names[t], worst);
        printf("  %-28s d%-6s directional rel err %.1e, worst element %.1e\n", label, names[t], rel, worst);
        free(u);
    }
    grads_free(&gr);
    problem_free(&p);
}

/* ---- naive formulas ------------------------------------------------------------------------- */

static void feature(sla_feature_t f, int D, const double *x, double *y) {
    double m = -INFINITY, s = 0;
    for (int a = 0; a < D; a++) {
        if (f == SLA_FEATURE_SOFTMAX) m = fmax(m, x[a]);
        if (f == SLA_FEATURE_ELU) y[a] = x[a] > 0 ? x[a] + 1 : exp(x[a]);
        if (f == SLA_FEATURE_RELU) y[a] = fmax(x[a], 0);
    }
    if (f != SLA_FEATURE_SOFTMAX) return;
    for (int a = 0; a < D; a++) s += exp(x[a] - m);
    for (int a = 0; a < D; a++) y[a] = exp(x[a] - m) / s;
}

static int in_list(const int32_t *list, int n, int j) {
    for (int t = 0; t < n; t++)
        if (list[t] == j) return 1;
    return 0;
}

/* Row by row from the definitions: sparse softmax over critical keys, linear branch over marginal. */
static void check_naive_forward(const char *label, sla_config_t cfg, int N, int D, uint64_t seed) {
    problem_t p;
    problem_init(&p, cfg, 2, 2, N, D, seed, 0.5);
    outputs_t out = outputs_alloc(&p);
    run_forward(&p, &out);
    const sla_dims_t *d = &p.d;
    double gamma = 1.0 / sqrt((double)D), worst_os = 0, worst_ol = 0, worst_sum = 0, worst_o = 0;
    double *pq = malloc(sizeof(double) * D), *pk = malloc(sizeof(double) * D), *os = malloc(sizeof(double) * D);
    double *num = malloc(sizeof(double) * D), *z = malloc(sizeof(double) * D);
    for (long bh = 0; bh < (long)d->B * d->H; bh++) {
        const double *q = p.q + bh * N * D, *k = p.k + bh * N * D, *v = p.v + bh * N * D;
        for (int r = 0; r < N; r++) {
            int i = r / d->blk_q;
            const int32_t *lut = p.lut + (bh * d->Tm + i) * d->kappa, *neg = p.neg + (bh * d->Tm + i) * d->n_negl;
            double lse = out.lse[bh * N + r], psum = 0;
            memset(os, 0, sizeof(double) * D), memset(num, 0, sizeof(double) * D), memset(z, 0, sizeof(double) * D);
            feature(cfg.feature, D, q + (long)r * D, pq);
            int any_linear = 0;
            for (int c = 0; c < N; c++) {
                int j = c / d->blk_k, critical = in_list(lut, d->kappa, j);
                int linear = cfg.variant == SLA_VARIANT_ALL || (!critical && !in_list(neg, d->n_negl, j));
                if (critical) {
                    double s = 0;
                    for (int a = 0; a < D; a++) s += gamma * q[(long)r * D + a] * k[(long)c * D + a];
                    double pr = exp(s - lse);
                    psum += pr;
                    for (int e = 0; e < D; e++) os[e] += pr * v[(long)c * D + e];
                }
                if (linear) {
                    any_linear = 1;
                    feature(cfg.feature, D, k + (long)c * D, pk);
                    double qk = 0;
                    for (int a = 0; a < D; a++) qk += pq[a] * pk[a];
                    for (int e = 0; e < D; e++) num[e] += qk * v[(long)c * D + e];
                    for (int a = 0; a < D; a++) z[a] += pk[a];
                }
            }
            double den = cfg.variant == SLA_VARIANT_ALL ? SLA_ALL_DEN_EPS : 0;
            for (int a = 0; a < D; a++) den += pq[a] * z[a];
            worst_sum = fmax(worst_sum, fabs(psum - 1));
            long row = (bh * N + r) * D;
            for (int e = 0; e < D; e++) {
                double ol = any_linear && den > 0 ? num[e] / den : 0;
                worst_os = fmax(worst_os, fabs(os[e] - out.os[row + e]));
                worst_ol = fmax(worst_ol, fabs(ol - out.ol[row + e]));
            }
            for (int e = 0; e < D; e++) { /* O = Os + Ol W^T + b, from the op's own Os and Ol */
                double o = out.os[row + e] + p.b[e];
                for (int a = 0; a < D; a++) o += out.ol[row + a] * p.w[(long)e * D + a];
                worst_o = fmax(worst_o, fabs(o - out.o[row + e]));
            }
        }
    }
    EXPECT(worst_sum <= 1e-12, "%s: a row's softmax over its critical keys sums to 1 +- %.2e", label, worst_sum);
    EXPECT(worst_os <= 1e-12, "%s: Os differs from the naive formula by %.2e", label, worst_os);
    EXPECT(worst_ol <= 1e-12, "%s: Ol differs from the naive formula by %.2e", label, worst_ol);
    EXPECT(worst_o <= 1e-12, "%s: O differs from Os + Ol W^T + b by %.2e", label, worst_o);
    printf("  %-28s naive: |sum P - 1| %.1e, Os %.1e, Ol %.1e, O %.1e\n", label, worst_sum, worst_os, worst_ol, worst_o);
    free(pq), free(pk), free(os), free(num), free(z);
    outputs_free(&out);
    problem_free(&p);
}

/* Pooled scores of one head recomputed here; the op's selection must rank by them. */
static void check_selection(const char *label, sla_config_t cfg, int N, int D, uint64_t seed) {
    problem_t p;
    problem_init(&p, cfg, 1, 3, N, D, seed, 1.0);
    const sla_dims_t *d = &p.d;
    int bad = 0;
    for (int h = 0; h < d->H; h++) {
        const double *q = p.q + (long)h * N * D, *k = p.k + (long)h * N * D;
        double *mu = calloc(D, sizeof(double)), *s = malloc(sizeof(double) * d->Tm * d->Tn);
        for (int c = 0; c < N; c++)
            for (int a = 0; a < D; a++) mu[a] += k[(long)c * D + a] / N;
        for (int i = 0; i < d->Tm; i++)
            for (int j = 0; j < d->Tn; j++) {
                double acc = 0;
                for (int a = 0; a < D; a++) {
                    double qb = 0, kb = 0;
                    int nq = 0, nk = 0;
                    for (int r = i * d->blk_q; r < N && r < (i + 1) * d->blk_q; r++, nq++) qb += q[(long)r * D + a];
                    for (int c = j * d->blk_k; c < N && c < (j + 1) * d->blk_k; c++, nk++) kb += k[(long)c * D + a] - mu[a];
                    acc += (qb / nq) * (kb / nk);
                }
                s[i * d->Tn + j] = acc;
            }
        for (int i = 0; i < d->Tm; i++) {
            const int32_t *lut = p.lut + ((long)h * d->Tm + i) * d->kappa, *neg = p.neg + ((long)h * d->Tm + i) * d->n_negl;
            const double *si = s + i * d->Tn;
            for (int t = 1; t < d->kappa; t++) bad += lut[t] <= lut[t - 1];
            for (int t = 1; t < d->n_negl; t++) bad += neg[t] <= neg[t - 1];
            for (int j = 0; j < d->Tn; j++) {
                int cj = in_list(lut, d->kappa, j), nj = in_list(neg, d->n_negl, j);
                bad += cj && nj;
                for (int j2 = 0; j2 < d->Tn; j2++) {
                    int c2 = in_list(lut, d->kappa, j2), n2 = in_list(neg, d->n_negl, j2);
                    /* j ranks above j2 when its score is higher, or equal with a lower index */
                    int above = si[j] > si[j2] || (si[j] == si[j2] && j < j2);
                    if (cj && !c2) bad += !above;
                    if (!cj && !nj && n2) bad += !above;
                }
            }
        }
        free(mu), free(s);
    }
    EXPECT(bad == 0, "%s: %d violations of the selection rules (ranking, ascending order, disjointness)", label, bad);
    printf("  %-28s selection: kappa %d, n_negl %d of Tn %d, %d violations\n", label, d->kappa, d->n_negl, d->Tn, bad);
    problem_free(&p);
}

/* Identical key blocks tie everywhere: the lowest indices are critical, the highest negligible. */
static void check_selection_ties(void) {
    sla_config_t cfg = sla_config_default();
    cfg.blk_q = 4, cfg.blk_k = 4, cfg.topk = 0.3, cfg.kl = 0.25;
    problem_t p;
    problem_init(&p, cfg, 1, 1, 40, 4, 5, 1.0);
    for (int c = 0; c < 40; c++) memcpy(p.k + c * 4, p.k + (c % 4) * 4, sizeof(double) * 4);
    sla_select_blocks_f64(&p.d, p.q, p.k, 0, p.lut, p.neg);
    int bad = 0;
    for (int i = 0; i < p.d.Tm; i++) {
        for (int t = 0; t < p.d.kappa; t++) bad += p.lut[i * p.d.kappa + t] != t;
        for (int t = 0; t < p.d.n_negl; t++) bad += p.neg[i * p.d.n_negl + t] != p.d.Tn - p.d.n_negl + t;
    }
    EXPECT(p.d.kappa == 3 && p.d.n_negl == 2 && bad == 0, "ties: kappa %d n_negl %d, %d wrong indices", p.d.kappa,
           p.d.n_negl, bad);
    problem_free(&p);
}

static void check_dims(void) {
    char err[256];
    sla_dims_t d;
    int clamped;
    sla_config_t cfg = sla_config_default();
    cfg.blk_q = 10, cfg.blk_k = 10;
    cfg.topk = 0.001;
    EXPECT(sla_dims_make(&cfg, 1, 1, 95, 8, &d, &clamped, err, sizeof err) == 0 && d.kappa == 1 && clamped == 1 &&
               d.Tn == 10 && d.Tm == 10,
           "tiny topk: kappa %d clamped %d", d.kappa, clamped);
    cfg.topk = 0.3, cfg.kl = 0.5;
    EXPECT(sla_dims_make(&cfg, 1, 1, 95, 8, &d, &clamped, err, sizeof err) == 0 && d.kappa == 3 && !clamped &&
               d.n_negl == 5,
           "topk 0.3 kl 0.5: kappa %d n_negl %d", d.kappa, d.n_negl);
    cfg.kl = 0.9;
    EXPECT(sla_dims_make(&cfg, 1, 1, 95, 8, &d, NULL, err, sizeof err) == 0 && d.n_negl == 7, "kl 0.9: n_negl %d",
           d.n_negl);
    cfg.kl = 0, cfg.topk = 1.0;
    EXPECT(sla_dims_make(&cfg, 1, 1, 95, 8, &d, NULL, err, sizeof err) == 0 && d.kappa == 10, "topk 1: kappa %d",
           d.kappa);
    const double bad_topk[] = {0.0, -0.5, 1.5, NAN};
    for (int i = 0; i < 4; i++) {
        cfg.topk = bad_topk[i];
        EXPECT(sla_dims_make(&cfg, 1, 1, 95, 8, &d, NULL, err, sizeof err) == -1 && strstr(err, "topk"),
               "topk %g accepted", bad_topk[i]);
    }
    cfg.topk = 0.5, cfg.kl = 1.0;
    EXPECT(sla_dims_make(&cfg, 1, 1, 95, 8, &d, NULL, err, sizeof err) == -1 && strstr(err, "kl"), "kl 1 accepted");
    cfg.kl = 0, cfg.blk_k = 0;
    EXPECT(sla_dims_make(&cfg, 1, 1, 95, 8, &d, NULL, err, sizeof err) == -1 && strstr(err, "block"), "blk_k 0 accepted");
}

/* rho = 1, complement: Os is dense attention, Ol = 0, O = dense + b; gradients are dense ones. */
static void check_full_density(void) {
    sla_config_t cfg = sla_config_default();
    cfg.topk = 1.0, cfg.blk_q = 16, cfg.blk_k = 12;
    problem_t p;
    problem_init(&p, cfg, 2, 2, 53, 8, 11, 1.0);
    outputs_t out = outputs_alloc(&p);
    run_forward(&p, &out);
    const sla_dims_t *d = &p.d;
    double *o = malloc(sizeof(double) * p.n), *lse = malloc(sizeof(double) * p.n / 8);
    attn_forward_f64(2, 2, 53, 53, 8, p.q, p.k, p.v, o, lse);
    double e_os = max_rel_err_f64(out.os, o, p.n), ol_max = max_abs_f64(out.ol, p.n), e_o = 0;
    for (long i = 0; i < p.n; i++) e_o = fmax(e_o, fabs(out.o[i] - (o[i] + p.b[i % 8])));
    EXPECT(d->kappa == d->Tn && e_os <= 1e-13 && ol_max == 0.0 && e_o <= 1e-12,
           "rho = 1: Os vs dense %.2e, max |Ol| %.2e, O vs dense + b %.2e", e_os, ol_max, e_o);
    grads_t gr = run_backward(&p);
    double *dq = malloc(sizeof(double) * p.n), *dk = malloc(sizeof(double) * p.n), *dv = malloc(sizeof(double) * p.n);
    attn_backward_f64(2, 2, 53, 53, 8, p.q, p.k, p.v, o, lse, p.g, dq, dk, dv);
    double e = fmax(max_rel_err_f64(gr.dq, dq, p.n), fmax(max_rel_err_f64(gr.dk, dk, p.n), max_rel_err_f64(gr.dv, dv, p.n)));
    double e_db = 0;
    for (int x = 0; x < 8; x++) {
        double s = 0;
        for (long r = 0; r < p.n / 8; r++) s += p.g[r * 8 + x];
        e_db = fmax(e_db, fabs(s - gr.db[x]));
    }
    EXPECT(e <= 1e-12 && max_abs_f64(gr.dw, 64) == 0.0 && e_db <= 1e-12,
           "rho = 1: gradients vs dense %.2e, max |dW| %.2e, db vs sum G %.2e", e, max_abs_f64(gr.dw, 64), e_db);
    printf("  rho = 1 identity: Os/dense %.1e, O/(dense+b) %.1e, grads/dense %.1e\n", e_os, e_o, e);
    free(o), free(lse), free(dq), free(dk), free(dv);
    grads_free(&gr);
    outputs_free(&out);
    problem_free(&p);
}

/* W = b = 0: O = Os, and the gradients do not depend on the linear branch's settings. */
static void check_zero_proj(void) {
    grads_t ref = {0};
    const sla_feature_t feats[3] = {SLA_FEATURE_SOFTMAX, SLA_FEATURE_ELU, SLA_FEATURE_RELU};
    for (int t = 0; t < 6; t++) {
        sla_config_t cfg = sla_config_default();
        cfg.topk = 0.3, cfg.kl = 0.2, cfg.blk_q = 8, cfg.blk_k = 6;
        cfg.feature = feats[t % 3], cfg.variant = t < 3 ? SLA_VARIANT_COMPLEMENT : SLA_VARIANT_ALL;
        problem_t p;
        problem_init(&p, cfg, 1, 2, 45, 8, 3, 0.0); /* proj scale 0: W = b = 0 */
        outputs_t out = outputs_alloc(&p);
        run_forward(&p, &out);
        double e = max_rel_err_f64(out.o, out.os, p.n);
        EXPECT(e == 0.0, "W = b = 0 (%s/%s): O differs from Os by %.2e", sla_feature_name(cfg.feature),
               sla_variant_name(cfg.variant), e);
        grads_t gr = run_backward(&p);
        if (t == 0) {
            ref = gr;
        } else {
            double eg = fmax(max_rel_err_f64(gr.dq, ref.dq, p.n),
                             fmax(max_rel_err_f64(gr.dk, ref.dk, p.n), max_rel_err_f64(gr.dv, ref.dv, p.n)));
            EXPECT(eg == 0.0, "W = b = 0 (%s/%s): the linear branch changed dq/dk/dv by %.2e",
                   sla_feature_name(cfg.feature), sla_variant_name(cfg.variant), eg);
            grads_free(&gr);
        }
        outputs_free(&out);
        problem_free(&p);
    }
    grads_free(&ref);
}

/* Visiting the critical blocks in another order changes nothing but rounding. */
static void check_order_invariance(void) {
    sla_config_t cfg = sla_config_default();
    cfg.topk = 0.5, cfg.blk_q = 8, cfg.blk_k = 8;
    problem_t p;
    problem_init(&p, cfg, 1, 2, 61, 8, 17, 1.0);
    outputs_t a = outputs_alloc(&p), b = outputs_alloc(&p);
    run_forward(&p, &a);
    grads_t ga = run_backward(&p);
    for (long row = 0; row < (long)p.d.H * p.d.Tm; row++) /* reverse each row's list */
        for (int s = 0, t = p.d.kappa - 1; s < t; s++, t--) {
            int32_t x = p.lut[row * p.d.kappa + s];
            p.lut[row * p.d.kappa + s] = p.lut[row * p.d.kappa + t], p.lut[row * p.d.kappa + t] = x;
        }
    run_forward(&p, &b);
    grads_t gb = run_backward(&p);
    double e = fmax(max_rel_err_f64(b.o, a.o, p.n), fmax(max_rel_err_f64(gb.dq, ga.dq, p.n),
                                                         fmax(max_rel_err_f64(gb.dk, ga.dk, p.n), max_rel_err_f64(gb.dv, ga.dv, p.n))));
    EXPECT(e <= 1e-13, "reversed block order changes results by %.2e", e);
    printf("  order invariance: %.1e\n", e);
    grads_free(&ga), grads_free(&gb);
    outputs_free(&a), outputs_free(&b);
    problem_free(&p);
}

/* The fp32 tensor entry points of ops.h agree with the fp64 core. */
static void check_tensor_path(void) {
    sla_config_t cfg = sla_config_default();
    cfg.topk = 0.25, cfg.kl = 0.1, cfg.blk_q = 16, cfg.blk_k = 8, cfg.feature = SLA_FEATURE_ELU;
    problem_t p;
    problem_init(&p, cfg, 1, 2, 75, 16, 23, 0.3);
    const sla_dims_t *d = &p.d;
    /* Round the inputs to fp32 first so both paths see the same numbers. */
    double *arrays[6] = {p.q, p.k, p.v, p.g, p.w, p.b};
    long sizes[6] = {p.n, p.n, p.n, p.n, 256, 16};
    for (int t = 0; t < 6; t++)
        for (long i = 0; i < sizes[t]; i++) arrays[t][i] = (float)arrays[t][i];
    sla_select_blocks_f64(d, p.q, p.k, 0, p.lut, p.neg);
    int64_t shp[4] = {1, 2, 75, 16};
    tensor_t tq = tensor_alloc(DTYPE_F32, DEVICE_CPU, 4, shp), tk = tensor_alloc(DTYPE_F32, DEVICE_CPU, 4, shp);
    tensor_t tv = tensor_alloc(DTYPE_F32, DEVICE_CPU, 4, shp), tg = tensor_alloc(DTYPE_F32, DEVICE_CPU, 4, shp);
    tensor_t tw = tensor_alloc(DTYPE_F32, DEVICE_CPU, 2, (int64_t[]){16, 16});
    tensor_t tb = tensor_alloc(DTYPE_F32, DEVICE_CPU, 1, (int64_t[]){16});
    tensor_t *ts[6] = {&tq, &tk, &tv, &tg, &tw, &tb};
    for (int t = 0; t < 6; t++)
        for (long i = 0; i < sizes[t]; i++) ((float *)ts[t]->data)[i] = (float)arrays[t][i];
    tensor_t to = tensor_alloc(DTYPE_F32, DEVICE_CPU, 4, shp);
    sla_saved_t saved;
    sla_saved_alloc(&saved, d, DEVICE_CPU);
    sla_forward(&cfg, d, &tq, &tk, &tv, &tw, &tb, 0, &to, &saved);
    outputs_t out = outputs_alloc(&p);
    run_forward(&p, &out);
    double e_o = 0;
    for (long i = 0; i < p.n; i++) e_o = fmax(e_o, fabs(((float *)to.data)[i] - out.o[i]));
    int lut_same = !memcmp(saved.lut.data, p.lut, sizeof(int32_t) * d->Tm * d->kappa * 2) &&
                   !memcmp(saved.neg.data, p.neg, sizeof(int32_t) * d->Tm * d->n_negl * 2);
    EXPECT(lut_same && e_o <= 1e-5 * max_abs_f64(out.o, p.n), "fp32 path: lut same %d, o differs by %.2e", lut_same, e_o);
    tensor_t tdq = tensor_alloc(DTYPE_F32, DEVICE_CPU, 4, shp), tdk = tensor_alloc(DTYPE_F32, DEVICE_CPU, 4, shp);
    tensor_t tdv = tensor_alloc(DTYPE_F32, DEVICE_CPU, 4, shp);
    tensor_t tdw = tensor_alloc(DTYPE_F32, DEVICE_CPU, 2, (int64_t[]){16, 16});
    tensor_t tdb = tensor_alloc(DTYPE_F32, DEVICE_CPU, 1, (int64_t[]){16});
    sla_backward(&cfg, d, &tq, &tk, &tv, &tw, &saved, &tg, &tdq, &tdk, &tdv, &tdw, &tdb);
    grads_t gr = run_backward(&p);
    double *gs[5] = {gr.dq, gr.dk, gr.dv, gr.dw, gr.db};
    tensor_t *tgs[5] = {&tdq, &tdk, &tdv, &tdw, &tdb};
    long gsz[5] = {p.n, p.n, p.n, 256, 16};
    for (int t = 0; t < 5; t++) {
        double e = 0;
        for (long i = 0; i < gsz[t]; i++) e = fmax(e, fabs(((float *)tgs[t]->data)[i] - gs[t][i]));
        e /= max_abs_f64(gs[t], gsz[t]);
        EXPECT(e <= 1e-5, "fp32 path: gradient %d differs by %.2e relative", t, e);
    }
    printf("  fp32 tensor path: o %.1e\n", e_o);
    for (int t = 0; t < 6; t++) tensor_free(ts[t]);
    for (int t = 0; t < 5; t++) tensor_free(tgs[t]);
    tensor_free(&to);
    sla_saved_free(&saved);
    grads_free(&gr);
    outputs_free(&out);
    problem_free(&p);
}

int main(void) {
    const sla_feature_t feats[3] = {SLA_FEATURE_SOFTMAX, SLA_FEATURE_ELU, SLA_FEATURE_RELU};
    printf("finite differences (N = 37, blk_q 8, blk_k 6, D 8):\n");
    for (int v = 0; v < 2; v++)
        for (int f = 0; f < 3; f++)
            for (int kl = 0; kl < 2; kl++) {
                sla_config_t cfg = sla_config_default();
                cfg.topk = 0.3, cfg.kl = kl ? 0.3 : 0.0, cfg.blk_q = 8, cfg.blk_k = 6;
                cfg.feature = feats[f], cfg.variant = v ? SLA_VARIANT_ALL : SLA_VARIANT_COMPLEMENT;
                char label[64];
                snprintf(label, sizeof label, "%s/%s/kl=%.1f", sla_variant_name(cfg.variant),
                         sla_feature_name(cfg.feature), cfg.kl);
                check_gradients(label, cfg, 37, 100 + v * 10 + f * 2 + kl);
            }
    printf("naive formulas:\n");
    const struct {
        int blk_q, blk_k, N, D;
        double topk, kl;
    } shapes[] = {{8, 6, 37, 8, 0.3, 0.3}, {64, 64, 200, 16, 0.5, 0.0}, {128, 64, 300, 12, 0.2, 0.3},
                  {8, 8, 70, 8, 0.56, 0.45} /* kappa + n_negl = Tn: no marginal block */};
    for (int s = 0; s < 4; s++)
        for (int v = 0; v < 2; v++)
            for (int f = 0; f < 3; f++) {
                sla_config_t cfg = sla_config_default();
                cfg.blk_q = shapes[s].blk_q, cfg.blk_k = shapes[s].blk_k, cfg.topk = shapes[s].topk, cfg.kl = shapes[s].kl;
                cfg.feature = feats[f], cfg.variant = v ? SLA_VARIANT_ALL : SLA_VARIANT_COMPLEMENT;
                char label[64];
                snprintf(label, sizeof label, "N%d bq%d bk%d %s/%s", shapes[s].N, cfg.blk_q, cfg.blk_k,
                         sla_variant_name(cfg.variant), sla_feature_name(cfg.feature));
                check_naive_forward(label, cfg, shapes[s].N, shapes[s].D, 200 + s * 10 + v * 3 + f);
                if (f == 0) check_selection(label, cfg, shapes[s].N, shapes[s].D, 300 + s);
            }
    check_selection_ties();
    check_dims();
    printf("identities:\n");
    check_full_density();
    check_zero_proj();
    check_order_invariance();
    check_tensor_path();
    return test_summary("test_sla_cpu");
}
