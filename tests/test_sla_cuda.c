/* tests/test_sla_cuda.c — the CUDA SLA operator and dense attention against the fp64 CPU oracle.
 *
 * For every variant, feature map, head dim 64/128 and blk_q 64/128 (blk_k 64, one case 128), at
 * N = 1000, 4000 and small odd N, on fresh random inputs with random nonzero proj_w/proj_b:
 *  - block selection: lut and neg must equal the CPU's on the same bf16-rounded q, k; a difference
 *    passes only where the two blocks' fp64 pooled scores are within fp32 rounding of each other
 *    (checked, and counted);
 *  - o, lse, dq, dk, dv, dproj_w, dproj_b against the CPU on the fp32 inputs (ref), with the GPU's
 *    selection: the bf16 rule of DESIGN.md. err(GPU, ref) <= 2 err(CPU on bf16-rounded inputs, ref)
 *    plus an allowance for the bf16 rounding of the outputs themselves (u = 2^-8, the bf16 unit
 *    roundoff): relative RMS <= 2 cpu + 2u and max abs <= 2 cpu + 8u max|ref|. Max abs/rel error
 *    and normalised MSE are printed for every output;
 *  - forward and backward run twice must give bit-identical results.
 * The forward's fused selection kernel against the separate kernels on the same inputs: lut, map
 * and mask byte-identical (run_select_fused_case; --select: these cases only).
 * Dense attention (Nq != Nk) likewise. --small: a few tiny cases (for compute-sanitizer).
 * Exit 77 (skipped) without a CUDA device. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cpu/sla_cpu.h"
#include "ops.h"
#include "test_util.h"

#ifdef SLA_HAVE_CUDA
#include "cuda/cuda_mem.h"
#include "cuda/sla_cuda_ext.h"

#define U_BF16 (1.0 / 256.0)

typedef struct {
    double max_abs, ref_max, rms, ref_rms;
} err_t;

static err_t err_of(const double *a, const double *ref, long n) {
    err_t e = {0, 0, 0, 0};
    double se = 0, sr = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs(a[i] - ref[i]);
        if (!(d <= e.max_abs)) e.max_abs = d; /* NaN propagates */
        if (fabs(ref[i]) > e.ref_max) e.ref_max = fabs(ref[i]);
        se += d * d, sr += ref[i] * ref[i];
    }
    e.rms = sqrt(se / (n ? n : 1)), e.ref_rms = sqrt(sr / (n ? n : 1));
    return e;
}

static double nmse(err_t e) { return e.ref_rms > 0 ? (e.rms * e.rms) / (e.ref_rms * e.ref_rms) : e.rms * e.rms; }

/* GPU vs ref, with the CPU-on-bf16 error as the yardstick. */
static void check_output(const char *cs, const char *name, const double *gpu, const double *cpu_b, const double *ref,
                         long n) {
    err_t g = err_of(gpu, ref, n), c = err_of(cpu_b, ref, n);
    double scale = g.ref_rms > 0 ? g.ref_rms : 1.0;
    double rel_g = g.rms / scale, rel_c = c.rms / scale;
    int ok_rms = rel_g <= 2 * rel_c + 2 * U_BF16;
    int ok_max = g.max_abs <= 2 * c.max_abs + 8 * U_BF16 * g.ref_max;
    printf("  %-8s max_abs %.3e max_rel %.3e nmse %.3e | cpu-bf16 max_abs %.3e nmse %.3e %s\n", name, g.max_abs,
           g.ref_max > 0 ? g.max_abs / g.ref_max : g.max_abs, nmse(g), c.max_abs, nmse(c),
           ok_rms && ok_max ? "ok" : "FAIL");
    EXPECT(ok_rms && ok_max, "%s: %s error (max %.3e, rel rms %.3e) exceeds the bf16 rule (cpu-bf16 max %.3e, rel rms %.3e)",
           cs, name, g.max_abs, rel_g, c.max_abs, rel_c);
}

static double *alloc_d(long n) { return xmalloc(sizeof(double) * (unsigned long)(n ? n : 1)); }

static double round_bf16(double x) { return bf16_to_f32(f32_to_bf16((float)x)); }

/* Host doubles <-> device tensors through tensor_copy. */
static void upload(tensor_t *dst, const double *src) {
    tensor_t h = tensor_make(DTYPE_F64, DEVICE_CPU, dst->ndim, dst->shape);
    h.data = (void *)src;
    tensor_copy(dst, &h);
}
static void download(double *dst, const tensor_t *src) {
    tensor_t h = tensor_make(DTYPE_F64, DEVICE_CPU, src->ndim, src->shape);
    h.data = dst;
    tensor_copy(&h, src);
}
static void *download_raw(const tensor_t *t) {
    void *p = xmalloc(tensor_bytes(t));
    tensor_t h = tensor_make(t->dtype, DEVICE_CPU, t->ndim, t->shape);
    h.data = p;
    tensor_copy(&h, t);
    return p;
}
static int same_bits(const tensor_t *t, const void *p) {
    void *q = download_raw(t);
    int same = memcmp(p, q, tensor_bytes(t)) == 0;
    free(q);
    return same;
}

/* fp64 pooled scores of one query block (as the CPU selection computes them), into s [Tn]; also a
 * bound on their fp32 rounding (sum of |qbar_a kbar_a| over a, scaled). */
static void pooled_scores(const sla_dims_t *d, const double *q, const double *k, int i, double *s, double *tol) {
    int D = d->D, N = d->N;
    double *mu = calloc((size_t)D, sizeof(double)), *qb = calloc((size_t)D, sizeof(double));
    double *kb = calloc((size_t)D, sizeof(double));
    for (int r = 0; r < N; r++)
        for (int a = 0; a < D; a++) mu[a] += k[(long)r * D + a];
    for (int a = 0; a < D; a++) mu[a] /= N;
    int r0 = i * d->blk_q, r1 = r0 + d->blk_q < N ? r0 + d->blk_q : N;
    for (int r = r0; r < r1; r++)
        for (int a = 0; a < D; a++) qb[a] += q[(long)r * D + a];
    for (int a = 0; a < D; a++) qb[a] /= (r1 - r0);
    double mag = 0;
    for (int j = 0; j < d->Tn; j++) {
        int c0 = j * d->blk_k, c1 = c0 + d->blk_k < N ? c0 + d->blk_k : N;
        memset(kb, 0, sizeof(double) * D);
        for (int c = c0; c < c1; c++)
            for (int a = 0; a < D; a++) kb[a] += k[(long)c * D + a];
        double sc = 0, m = 0;
        for (int a = 0; a < D; a++) {
            double kv = kb[a] / (c1 - c0) - mu[a];
            sc += qb[a] * kv, m += fabs(qb[a]) * (fabs(kb[a] / (c1 - c0)) + fabs(mu[a]));
        }
        s[j] = sc;
        if (m > mag) mag = m;
    }
    *tol = 1e-5 * mag; /* fp32 pooled means and dot: a few hundred ulps of the terms at most */
    free(mu), free(qb), free(kb);
}

/* Compares one row's set (GPU vs CPU); a block in only one of them must be a near-tie with the
 * boundary of the CPU's set. Returns the number of differing blocks (-1: a real mismatch). */
static int compare_set(const int *g, const int *c, int n, const double *s, double tol, int Tn) {
    unsigned char *in_g = calloc((size_t)Tn, 1), *in_c = calloc((size_t)Tn, 1);
    for (int t = 0; t < n; t++) in_g[g[t]] = 1, in_c[c[t]] = 1;
    double lo = INFINITY, hi = -INFINITY; /* score range of the CPU's set */
    for (int t = 0; t < n; t++) lo = fmin(lo, s[c[t]]), hi = fmax(hi, s[c[t]]);
    int diff = 0, bad = 0;
    for (int j = 0; j < Tn; j++)
        if (in_g[j] != in_c[j]) {
            diff++;
            if (!(fabs(s[j] - lo) <= tol || fabs(s[j] - hi) <= tol)) bad = 1;
        }
    for (int t = 1; t < n; t++)
        if (g[t] <= g[t - 1]) bad = 1; /* ascending, distinct */
    free(in_g), free(in_c);
    return bad ? -1 : diff;
}

typedef struct {
    sla_variant_t variant;
    sla_feature_t feature;
    int D, blk_q, blk_k, B, H, N;
    double topk, kl;
    int lut_given;
} sla_case_t;

static void run_sla_case(const sla_case_t *tc, unsigned long long seed) {
    sla_config_t cfg = sla_config_default();
    cfg.variant = tc->variant, cfg.feature = tc->feature, cfg.blk_q = tc->blk_q, cfg.blk_k = tc->blk_k;
    cfg.topk = tc->topk, cfg.kl = tc->kl;
    sla_dims_t d;
    char err[256], cs[256];
    int clamped;
    CHECK(sla_dims_make(&cfg, tc->B, tc->H, tc->N, tc->D, &d, &clamped, err, sizeof err) == 0, "%s", err);
    snprintf(cs, sizeof cs, "sla %s/%s D%d bq%d bk%d B%d H%d N%d topk%.2f kl%.2f%s (kappa %d, negl %d)",
             sla_variant_name(cfg.variant), sla_feature_name(cfg.feature), d.D, d.blk_q, d.blk_k, d.B, d.H, d.N,
             cfg.topk, cfg.kl, tc->lut_given ? " lut_given" : "", d.kappa, d.n_negl);
    printf("%s\n", cs);
    fflush(stdout);
    const int D = d.D;
    const long n = (long)d.B * d.H * d.N * D, nl = (long)d.B * d.H * d.N, BH = (long)d.B * d.H;
    const long nlut = BH * d.Tm * d.kappa, nneg = BH * d.Tm * d.n_negl;
    test_rng_t rng = {seed};
    double *q = alloc_d(n), *k = alloc_d(n), *v = alloc_d(n), *g = alloc_d(n), *w = alloc_d((long)D * D),
           *b = alloc_d(D);
    fill_normal_f64(&rng, q, n, 1.0);
    fill_normal_f64(&rng, k, n, 1.0);
    fill_normal_f64(&rng, v, n, 1.0);
    fill_normal_f64(&rng, g, n, 1.0);
    fill_normal_f64(&rng, w, (long)D * D, 1.0 / sqrt((double)D));
    fill_normal_f64(&rng, b, D, 0.5);
    for (long i = 0; i < n; i++) q[i] = (float)q[i], k[i] = (float)k[i], v[i] = (float)v[i], g[i] = (float)g[i];
    for (long i = 0; i < (long)D * D; i++) w[i] = (float)w[i];
    for (int i = 0; i < D; i++) b[i] = (float)b[i];
    double *qb = alloc_d(n), *kb = alloc_d(n), *vb = alloc_d(n), *gb = alloc_d(n);
    for (long i = 0; i < n; i++)
        qb[i] = round_bf16(q[i]), kb[i] = round_bf16(k[i]), vb[i] = round_bf16(v[i]), gb[i] = round_bf16(g[i]);

    /* GPU */
    int64_t shp[4] = {d.B, d.H, d.N, D}, wsh[2] = {D, D}, bsh[1] = {D};
    tensor_t tq = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, shp), tk = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, shp);
    tensor_t tv = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, shp), tg = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, shp);
    tensor_t to = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, shp);
    tensor_t tdq = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, shp), tdk = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, shp);
    tensor_t tdv = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, shp);
    tensor_t tw = tensor_alloc(DTYPE_F32, DEVICE_CUDA, 2, wsh), tb = tensor_alloc(DTYPE_F32, DEVICE_CUDA, 1, bsh);
    tensor_t tdw = tensor_alloc(DTYPE_F32, DEVICE_CUDA, 2, wsh), tdb = tensor_alloc(DTYPE_F32, DEVICE_CUDA, 1, bsh);
    upload(&tq, q), upload(&tk, k), upload(&tv, v), upload(&tg, g), upload(&tw, w), upload(&tb, b);
    sla_saved_t sv;
    sla_saved_alloc(&sv, &d, DEVICE_CUDA);
    int32_t *lut_given = NULL;
    if (tc->lut_given) { /* random distinct ascending blocks per row */
        lut_given = xmalloc(sizeof(int32_t) * (unsigned long)nlut);
        unsigned char *mark = xmalloc((size_t)d.Tn);
        for (long r = 0; r < BH * d.Tm; r++) {
            memset(mark, 0, (size_t)d.Tn);
            for (int t = 0; t < d.kappa;) {
                int j = (int)(rng_next(&rng) % (uint64_t)d.Tn);
                if (!mark[j]) mark[j] = 1, t++;
            }
            for (int j = 0, t = 0; j < d.Tn; j++)
                if (mark[j]) lut_given[r * d.kappa + t++] = j;
        }
        free(mark);
        tensor_t h = tensor_make(DTYPE_I32, DEVICE_CPU, 4, sv.lut.shape);
        h.data = lut_given;
        tensor_copy(&sv.lut, &h);
    }
    sla_forward(&cfg, &d, &tq, &tk, &tv, &tw, &tb, tc->lut_given, &to, &sv);
    sla_backward(&cfg, &d, &tq, &tk, &tv, &tw, &sv, &tg, &tdq, &tdk, &tdv, &tdw, &tdb);
    cuda_sync();
    void *raw_o = download_raw(&to), *raw_lse = download_raw(&sv.lse), *raw_lut = download_raw(&sv.lut);
    void *raw_neg = download_raw(&sv.neg);
    void *raw_dq = download_raw(&tdq), *raw_dk = download_raw(&tdk), *raw_dv = download_raw(&tdv);
    void *raw_dw = download_raw(&tdw), *raw_db = download_raw(&tdb);
    /* Determinism: run both again (poisoning the outputs first) and compare bits. */
    {
        double *poison = alloc_d(n);
        for (long i = 0; i < n; i++) poison[i] = NAN;
        upload(&to, poison), upload(&tdq, poison), upload(&tdk, poison), upload(&tdv, poison);
        free(poison);
        sla_forward(&cfg, &d, &tq, &tk, &tv, &tw, &tb, tc->lut_given, &to, &sv);
        sla_backward(&cfg, &d, &tq, &tk, &tv, &tw, &sv, &tg, &tdq, &tdk, &tdv, &tdw, &tdb);
        cuda_sync();
        int same = same_bits(&to, raw_o) && same_bits(&sv.lse, raw_lse) && same_bits(&sv.lut, raw_lut) &&
                   same_bits(&sv.neg, raw_neg);
        EXPECT(same, "%s: forward run twice differs", cs);
        same = same_bits(&tdq, raw_dq) && same_bits(&tdk, raw_dk) && same_bits(&tdv, raw_dv) &&
               same_bits(&tdw, raw_dw) && same_bits(&tdb, raw_db);
        EXPECT(same, "%s: backward run twice differs", cs);
    }
    double *go = alloc_d(n), *glse = alloc_d(nl), *gdq = alloc_d(n), *gdk = alloc_d(n), *gdv = alloc_d(n);
    double *gdw = alloc_d((long)D * D), *gdb = alloc_d(D);
    download(go, &to), download(glse, &sv.lse), download(gdq, &tdq), download(gdk, &tdk), download(gdv, &tdv);
    download(gdw, &tdw), download(gdb, &tdb);
    int32_t *glut = raw_lut, *gneg_full = raw_neg;
    const int neg_ld = (int)sv.neg.shape[3];
    int32_t *gneg = xmalloc(sizeof(int32_t) * (unsigned long)(nneg ? nneg : 1));
    for (long r = 0; r < BH * d.Tm; r++)
        for (int t = 0; t < d.n_negl; t++) gneg[r * d.n_negl + t] = gneg_full[r * neg_ld + t];

    /* Selection against the CPU on the same bf16 inputs. */
    {
        int32_t *clut = xmalloc(sizeof(int32_t) * (unsigned long)nlut);
        int32_t *cneg = xmalloc(sizeof(int32_t) * (unsigned long)(nneg ? nneg : 1));
        if (tc->lut_given) memcpy(clut, lut_given, sizeof(int32_t) * (unsigned long)nlut);
        sla_select_blocks_f64(&d, qb, kb, tc->lut_given, clut, cneg);
        double *s = alloc_d(d.Tn);
        int rows_diff = 0, blocks_diff = 0, bad = 0;
        for (long r = 0; r < BH * d.Tm; r++) {
            long bh = r / d.Tm;
            int i = (int)(r % d.Tm);
            int dl = memcmp(glut + r * d.kappa, clut + r * d.kappa, sizeof(int32_t) * d.kappa) != 0;
            int dn = d.n_negl && memcmp(gneg + r * d.n_negl, cneg + r * d.n_negl, sizeof(int32_t) * d.n_negl) != 0;
            if (!dl && !dn) continue;
            double tol;
            pooled_scores(&d, qb + bh * d.N * D, kb + bh * d.N * D, i, s, &tol);
            int a = dl ? compare_set(glut + r * d.kappa, clut + r * d.kappa, d.kappa, s, tol, d.Tn) : 0;
            int c = dn ? compare_set(gneg + r * d.n_negl, cneg + r * d.n_negl, d.n_negl, s, tol, d.Tn) : 0;
            if (a < 0 || c < 0) bad++;
            else rows_diff++, blocks_diff += a + c;
        }
        printf("  selection: %ld rows, %d differ at near-ties (%d blocks), %d differ for real\n", BH * d.Tm,
               rows_diff, blocks_diff, bad);
        EXPECT(bad == 0, "%s: %d rows select different blocks than the CPU beyond rounding", cs, bad);
        free(clut), free(cneg), free(s);
    }

    /* References with the GPU's selection: fp32 inputs (ref) and bf16-rounded inputs (cpu_b). */
    double *ro = alloc_d(n), *ros = alloc_d(n), *rol = alloc_d(n), *rlse = alloc_d(nl);
    double *bo = alloc_d(n), *bos = alloc_d(n), *bol = alloc_d(n), *blse = alloc_d(nl);
    sla_forward_f64(&cfg, &d, q, k, v, w, b, glut, gneg, ro, ros, rol, rlse);
    sla_forward_f64(&cfg, &d, qb, kb, vb, w, b, glut, gneg, bo, bos, bol, blse);
    double *rdq = alloc_d(n), *rdk = alloc_d(n), *rdv = alloc_d(n), *rdw = alloc_d((long)D * D), *rdb = alloc_d(D);
    double *bdq = alloc_d(n), *bdk = alloc_d(n), *bdv = alloc_d(n), *bdw = alloc_d((long)D * D), *bdb = alloc_d(D);
    sla_backward_f64(&cfg, &d, q, k, v, w, glut, gneg, ros, rol, rlse, g, rdq, rdk, rdv, rdw, rdb);
    sla_backward_f64(&cfg, &d, qb, kb, vb, w, glut, gneg, bos, bol, blse, gb, bdq, bdk, bdv, bdw, bdb);
    check_output(cs, "o", go, bo, ro, n);
    check_output(cs, "lse", glse, blse, rlse, nl);
    check_output(cs, "dq", gdq, bdq, rdq, n);
    check_output(cs, "dk", gdk, bdk, rdk, n);
    check_output(cs, "dv", gdv, bdv, rdv, n);
    check_output(cs, "dproj_w", gdw, bdw, rdw, (long)D * D);
    check_output(cs, "dproj_b", gdb, bdb, rdb, D);

    free(q), free(k), free(v), free(g), free(w), free(b), free(qb), free(kb), free(vb), free(gb);
    free(go), free(glse), free(gdq), free(gdk), free(gdv), free(gdw), free(gdb), free(gneg), free(lut_given);
    free(raw_o), free(raw_lse), free(raw_lut), free(raw_neg), free(raw_dq), free(raw_dk), free(raw_dv);
    free(raw_dw), free(raw_db);
    free(ro), free(ros), free(rol), free(rlse), free(bo), free(bos), free(bol), free(blse);
    free(rdq), free(rdk), free(rdv), free(rdw), free(rdb), free(bdq), free(bdk), free(bdv), free(bdw), free(bdb);
    tensor_free(&tq), tensor_free(&tk), tensor_free(&tv), tensor_free(&tg), tensor_free(&to);
    tensor_free(&tdq), tensor_free(&tdk), tensor_free(&tdv), tensor_free(&tw), tensor_free(&tb);
    tensor_free(&tdw), tensor_free(&tdb);
    sla_saved_free(&sv);
}

/* The forward's fused selection kernel against the separate kernels (kmean, scores, top-k, rowmap),
 * with the warp top-k and with the full sort, on the same bf16 q, k: lut, map and mask must be
 * byte-identical. The three runs' buffers are poisoned with different bytes first, so an entry
 * none writes also differs. mode 0: normal data; 1: q, k small integers (many equal scores); 2: k
 * constant (every kbar 0: all scores +0, a pure tie broken by block index). */
static void run_select_fused_case(int D, int blk_q, int blk_k, int B, int H, int N, int kappa, int mode,
                                  unsigned long long seed) {
    sla_config_t cfg = sla_config_default();
    cfg.blk_q = blk_q, cfg.blk_k = blk_k, cfg.kl = 0.0;
    sla_dims_t d;
    char err[256], cs[160];
    CHECK(sla_dims_make(&cfg, B, H, N, D, &d, NULL, err, sizeof err) == 0, "%s", err);
    CHECK(kappa >= 1 && kappa <= d.Tn && d.n_negl == 0, "bad test case: kappa %d, Tn %d", kappa, d.Tn);
    d.kappa = kappa;
    snprintf(cs, sizeof cs, "select fused D%d bq%d bk%d B%d H%d N%d kappa %d mode %d (Tm %d, Tn %d)", D, blk_q, blk_k,
             B, H, N, kappa, mode, d.Tm, d.Tn);
    const long n = (long)B * H * N * D, rows = (long)B * H * d.Tm;
    test_rng_t rng = {seed};
    double *q = alloc_d(n), *k = alloc_d(n);
    fill_normal_f64(&rng, q, n, 1.0);
    fill_normal_f64(&rng, k, n, 1.0);
    if (mode == 1)
        for (long i = 0; i < n; i++) q[i] = round(q[i] / 1.5), k[i] = round(k[i] / 1.5); /* mostly -1, 0, 1 */
    if (mode == 2)
        for (long i = 0; i < n; i++) k[i] = 0.75;
    int64_t shp[4] = {B, H, N, D};
    tensor_t tq = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, shp), tk = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, shp);
    upload(&tq, q), upload(&tk, k);
    const size_t blut = sizeof(int32_t) * (size_t)(rows * kappa), bmap = (size_t)(rows * d.Tn), bmask = 2 * bmap;
    void *dev[3][3], *host[3][3]; /* [separate, fused, separate with the sort][lut, map, mask] */
    const size_t bytes[3] = {blut, bmap, bmask};
    for (int f = 0; f < 3; f++) {
        for (int b = 0; b < 3; b++) {
            dev[f][b] = cuda_mem_alloc(bytes[b]);
            host[f][b] = xmalloc(bytes[b]);
            memset(host[f][b], 0xA5 + 0x3C * f, bytes[b]);
            cuda_mem_upload(dev[f][b], host[f][b], bytes[b]);
        }
        int took = sla_select_map_cuda(&d, &tq, &tk, f, dev[f][0], dev[f][1], dev[f][2]);
        EXPECT(took, "%s: the fused kernel does not take this case", cs);
        cuda_sync();
        for (int b = 0; b < 3; b++) cuda_mem_download(host[f][b], dev[f][b], bytes[b]);
    }
    int same_lut = 1, same_map = 1, same_mask = 1;
    for (int f = 1; f < 3; f++) {
        same_lut &= !memcmp(host[0][0], host[f][0], blut), same_map &= !memcmp(host[0][1], host[f][1], bmap);
        same_mask &= !memcmp(host[0][2], host[f][2], bmask);
    }
    /* and the reference is a selection: each row kappa ascending blocks, marked 1 in map, 0 in mask */
    int bad_rows = 0;
    const int32_t *lut = host[0][0];
    const uint8_t *map = host[0][1];
    const uint16_t *mask = host[0][2];
    for (long r = 0; r < rows; r++) {
        int ok = 1, ones = 0;
        for (int t = 0; t < kappa; t++) {
            int j = lut[r * kappa + t];
            ok &= j >= 0 && j < d.Tn && (t == 0 || j > lut[r * kappa + t - 1]) && map[r * d.Tn + j] == 1;
        }
        for (int j = 0; ok && j < d.Tn; j++) {
            ones += map[r * d.Tn + j];
            ok &= map[r * d.Tn + j] <= 1 && mask[r * d.Tn + j] == (map[r * d.Tn + j] ? 0 : 0x3F80);
        }
        bad_rows += !(ok && ones == kappa);
    }
    if (mode == 2) /* every score ties: the first kappa blocks */
        for (long r = 0; r < rows; r++)
            for (int t = 0; t < kappa; t++) bad_rows += lut[r * kappa + t] != t;
    printf("%s: lut %s, map %s, mask %s, %d bad rows\n", cs, same_lut ? "same" : "DIFFER", same_map ? "same" : "DIFFER",
           same_mask ? "same" : "DIFFER", bad_rows);
    EXPECT(same_lut && same_map && same_mask, "%s: the fused selection, the separate kernels and the sort differ",
           cs);
    EXPECT(bad_rows == 0, "%s: %d rows are not a valid selection", cs, bad_rows);
    for (int f = 0; f < 3; f++)
        for (int b = 0; b < 3; b++) cuda_mem_free(dev[f][b]), free(host[f][b]);
    free(q), free(k);
    tensor_free(&tq), tensor_free(&tk);
}

/* The fused selection kernel: N not a multiple of the blocks, kappa 1 .. Tn (past 64, where an
 * earlier version stopped), Tm not a multiple of its 8 rows, Tn past its thread stride and every
 * slot count from 2 to 64 per lane (N 1000 .. 120000: Tn 16 .. 1875), ties. */
static void run_select_fused_cases(unsigned long long *seed) {
    const int Nsel[4] = {1000, 4000, 5000, 33000};
    for (int ni = 0; ni < 4; ni++)
        for (int D = 64; D <= 128; D *= 2)
            for (int bq = 64; bq <= 128; bq *= 2) {
                const int Tn = (Nsel[ni] + 63) / 64, kmax = Tn < 64 ? Tn : 64;
                const int kappas[4] = {1, 7 < Tn ? 7 : Tn, Tn / 4 < 1 ? 1 : Tn / 4 > 40 ? 40 : Tn / 4, kmax};
                const int B = ni == 3 ? 1 : 2, H = ni == 3 ? 3 : 3 - ni % 2;
                for (int ki = 0; ki < 4; ki++)
                    run_select_fused_case(D, bq, 64, B, H, Nsel[ni], kappas[ki], ki == 2, (*seed)++);
            }
    run_select_fused_case(128, 128, 128, 1, 3, 4000, 31, 0, (*seed)++);
    run_select_fused_case(64, 64, 128, 3, 1, 1000, 8, 1, (*seed)++);
    run_select_fused_case(128, 128, 64, 1, 3, 1000, 5, 2, (*seed)++);
    run_select_fused_case(64, 128, 64, 2, 2, 4000, 63, 2, (*seed)++);
    run_select_fused_case(64, 128, 64, 1, 3, 70000, 64, 0, (*seed)++); /* Tn 1094: 40 slots per lane */
    run_select_fused_case(64, 64, 64, 1, 3, 70000, 25, 1, (*seed)++);
    run_select_fused_case(128, 128, 64, 1, 2, 70000, 118, 0, (*seed)++); /* 720p's rho 0.10 kappa */
    run_select_fused_case(64, 128, 64, 1, 2, 33000, 300, 1, (*seed)++);  /* Tn 516: 24 slots */
    run_select_fused_case(64, 128, 64, 2, 1, 4000, 63, 0, (*seed)++);    /* kappa = Tn */
    run_select_fused_case(64, 128, 64, 1, 2, 90000, 700, 2, (*seed)++);  /* Tn 1407: 48 slots, ties */
    run_select_fused_case(64, 128, 64, 1, 1, 120000, 1874, 1, (*seed)++); /* Tn 1875: 64 slots, kappa Tn - 1 */
}

static void run_attn_case(int B, int H, int Nq, int Nk, int D, unsigned long long seed) {
    char cs[128];
    snprintf(cs, sizeof cs, "attn D%d B%d H%d Nq%d Nk%d", D, B, H, Nq, Nk);
    printf("%s\n", cs);
    const long nq = (long)B * H * Nq * D, nk = (long)B * H * Nk * D, nl = (long)B * H * Nq;
    test_rng_t rng = {seed};
    double *q = alloc_d(nq), *k = alloc_d(nk), *v = alloc_d(nk), *g = alloc_d(nq);
    fill_normal_f64(&rng, q, nq, 1.0), fill_normal_f64(&rng, k, nk, 1.0);
    fill_normal_f64(&rng, v, nk, 1.0), fill_normal_f64(&rng, g, nq, 1.0);
    for (long i = 0; i < nq; i++) q[i] = (float)q[i], g[i] = (float)g[i];
    for (long i = 0; i < nk; i++) k[i] = (float)k[i], v[i] = (float)v[i];
    double *qb = alloc_d(nq), *kb = alloc_d(nk), *vb = alloc_d(nk), *gb = alloc_d(nq);
    for (long i = 0; i < nq; i++) qb[i] = round_bf16(q[i]), gb[i] = round_bf16(g[i]);
    for (long i = 0; i < nk; i++) kb[i] = round_bf16(k[i]), vb[i] = round_bf16(v[i]);
    int64_t sq[4] = {B, H, Nq, D}, sk[4] = {B, H, Nk, D}, sl[3] = {B, H, Nq};
    tensor_t tq = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, sq), tk = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, sk);
    tensor_t tv = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, sk), tg = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, sq);
    tensor_t to = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, sq), tl = tensor_alloc(DTYPE_F32, DEVICE_CUDA, 3, sl);
    tensor_t tdq = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, sq), tdk = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, sk);
    tensor_t tdv = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, sk);
    upload(&tq, q), upload(&tk, k), upload(&tv, v), upload(&tg, g);
    attn_forward(&tq, &tk, &tv, &to, &tl);
    attn_backward(&tq, &tk, &tv, &to, &tl, &tg, &tdq, &tdk, &tdv);
    cuda_sync();
    void *r1 = download_raw(&tdq), *r2 = download_raw(&tdk), *r3 = download_raw(&tdv);
    attn_backward(&tq, &tk, &tv, &to, &tl, &tg, &tdq, &tdk, &tdv);
    cuda_sync();
    EXPECT(same_bits(&tdq, r1) && same_bits(&tdk, r2) && same_bits(&tdv, r3), "%s: backward run twice differs", cs);
    free(r1), free(r2), free(r3);
    double *go = alloc_d(nq), *gl = alloc_d(nl), *gdq = alloc_d(nq), *gdk = alloc_d(nk), *gdv = alloc_d(nk);
    download(go, &to), download(gl, &tl), download(gdq, &tdq), download(gdk, &tdk), download(gdv, &tdv);
    double *ro = alloc_d(nq), *rl = alloc_d(nl), *rdq = alloc_d(nq), *rdk = alloc_d(nk), *rdv = alloc_d(nk);
    double *bo = alloc_d(nq), *bl = alloc_d(nl), *bdq = alloc_d(nq), *bdk = alloc_d(nk), *bdv = alloc_d(nk);
    attn_forward_f64(B, H, Nq, Nk, D, q, k, v, ro, rl);
    attn_forward_f64(B, H, Nq, Nk, D, qb, kb, vb, bo, bl);
    attn_backward_f64(B, H, Nq, Nk, D, q, k, v, ro, rl, g, rdq, rdk, rdv);
    attn_backward_f64(B, H, Nq, Nk, D, qb, kb, vb, bo, bl, gb, bdq, bdk, bdv);
    check_output(cs, "o", go, bo, ro, nq);
    check_output(cs, "lse", gl, bl, rl, nl);
    check_output(cs, "dq", gdq, bdq, rdq, nq);
    check_output(cs, "dk", gdk, bdk, rdk, nk);
    check_output(cs, "dv", gdv, bdv, rdv, nk);
    free(q), free(k), free(v), free(g), free(qb), free(kb), free(vb), free(gb);
    free(go), free(gl), free(gdq), free(gdk), free(gdv), free(ro), free(rl), free(rdq), free(rdk), free(rdv);
    free(bo), free(bl), free(bdq), free(bdk), free(bdv);
    tensor_free(&tq), tensor_free(&tk), tensor_free(&tv), tensor_free(&tg), tensor_free(&to), tensor_free(&tl);
    tensor_free(&tdq), tensor_free(&tdk), tensor_free(&tdv);
}

#endif /* SLA_HAVE_CUDA */

int main(int argc, char **argv) {
#ifndef SLA_HAVE_CUDA
    (void)argc, (void)argv;
    printf("test_sla_cuda: built without the CUDA backend, skipped\n");
    return 77;
#else
    if (!ops_cuda_available()) {
        printf("test_sla_cuda: no CUDA device, skipped\n");
        return 77;
    }
    int small = argc > 1 && !strcmp(argv[1], "--small");
    unsigned long long seed = 1234;
    if (argc > 1 && !strcmp(argv[1], "--select")) {
        run_select_fused_cases(&seed);
        return test_summary("test_sla_cuda --select");
    }
    const sla_variant_t variants[2] = {SLA_VARIANT_COMPLEMENT, SLA_VARIANT_ALL};
    const sla_feature_t features[3] = {SLA_FEATURE_SOFTMAX, SLA_FEATURE_ELU, SLA_FEATURE_RELU};
    if (small) {
        sla_case_t cs[] = {
            {SLA_VARIANT_COMPLEMENT, SLA_FEATURE_SOFTMAX, 128, 128, 64, 1, 1, 333, 0.3, 0.2, 0},
            {SLA_VARIANT_ALL, SLA_FEATURE_ELU, 64, 64, 64, 1, 2, 200, 0.3, 0.0, 0},
            {SLA_VARIANT_COMPLEMENT, SLA_FEATURE_RELU, 64, 128, 128, 1, 1, 333, 0.5, 0.0, 1},
            {SLA_VARIANT_COMPLEMENT, SLA_FEATURE_SOFTMAX, 128, 64, 64, 1, 1, 300, 0.5, 0.3, 0},
        };
        for (unsigned c = 0; c < sizeof cs / sizeof cs[0]; c++) run_sla_case(&cs[c], seed++);
        run_select_fused_case(128, 128, 64, 1, 3, 1000, 5, 0, seed++);
        run_attn_case(1, 1, 200, 150, 64, seed++);
        run_attn_case(1, 1, 130, 257, 128, seed++);
        return test_summary("test_sla_cuda --small");
    }
    run_select_fused_cases(&seed);
    /* Every variant x feature x head dim x blk_q at N = 1000 and a small odd N. */
    const int Ns[2] = {1000, 333};
    for (int ni = 0; ni < 2; ni++)
        for (int vi = 0; vi < 2; vi++)
            for (int fi = 0; fi < 3; fi++)
                for (int D = 64; D <= 128; D *= 2)
                    for (int bq = 64; bq <= 128; bq *= 2) {
                        sla_case_t c = {variants[vi], features[fi], D, bq, 64, 2, 2, Ns[ni], 0.25,
                                        (fi + D / 64) % 2 ? 0.1 : 0.0, 0};
                        run_sla_case(&c, seed++);
                    }
    /* N = 4000. */
    for (int vi = 0; vi < 2; vi++)
        for (int fi = 0; fi < 3; fi++) {
            sla_case_t c = {variants[vi], features[fi], fi == 1 ? 64 : 128, fi == 1 ? 64 : 128, 64, 1, 2, 4000, 0.1,
                            0.05, 0};
            run_sla_case(&c, seed++);
        }
    /* Special cases: dense mode (linear branch empty), marginal list shorter than the kept one,
     * blk_k 128, an imposed lut. */
    sla_case_t special[] = {
        {SLA_VARIANT_COMPLEMENT, SLA_FEATURE_SOFTMAX, 128, 128, 64, 1, 2, 1000, 1.0, 0.0, 0},
        {SLA_VARIANT_ALL, SLA_FEATURE_SOFTMAX, 64, 64, 64, 1, 2, 1000, 1.0, 0.0, 0},
        {SLA_VARIANT_COMPLEMENT, SLA_FEATURE_ELU, 128, 128, 64, 1, 2, 1000, 0.5, 0.3, 0},
        {SLA_VARIANT_COMPLEMENT, SLA_FEATURE_SOFTMAX, 128, 128, 128, 1, 2, 1000, 0.3, 0.1, 0},
        {SLA_VARIANT_COMPLEMENT, SLA_FEATURE_RELU, 64, 64, 128, 2, 1, 777, 0.4, 0.2, 0},
        {SLA_VARIANT_COMPLEMENT, SLA_FEATURE_SOFTMAX, 128, 128, 64, 1, 2, 1000, 0.25, 0.2, 1},
        {SLA_VARIANT_ALL, SLA_FEATURE_RELU, 64, 128, 64, 1, 2, 1000, 0.25, 0.0, 1},
    };
    for (unsigned c = 0; c < sizeof special / sizeof special[0]; c++) run_sla_case(&special[c], seed++);
    run_attn_case(1, 2, 1000, 777, 128, seed++);
    run_attn_case(2, 1, 333, 1000, 64, seed++);
    run_attn_case(1, 1, 2000, 2000, 128, seed++);
    /* cross-attention shapes of the DiT: few text keys (tiny 16, small 64, Wan 512), B > 1 */
    run_attn_case(2, 2, 105, 16, 64, seed++);
    run_attn_case(2, 8, 70, 64, 64, seed++);
    run_attn_case(1, 4, 1500, 512, 128, seed++);
    /* few key tiles, many query tiles: the dK/dV kernel splits the query tiles (4 ways here) */
    run_attn_case(1, 2, 4100, 100, 128, seed++);
    return test_summary("test_sla_cuda");
#endif
}
