/* tests/test_sla_op.c — the sla-op tool end to end (label cpu).
 *
 * Usage: test_sla_op PATH/TO/sla-op. In a mkdtemp directory it writes random inputs with
 * data/h5_tensor (B=1, H=2, N=150, D=16: N is no multiple of any block size), runs sla-op, reads
 * OUT.h5 and compares o, lse, lut, dq, dk, dv, dproj_w, dproj_b with direct sla_forward /
 * sla_backward calls on the same inputs (max abs diff <= 1e-6 of max |reference|; they run the
 * same code, so they should be equal), for three option sets covering every feature map, both
 * variants and kl > 0. Then: inputs without do/proj (zero proj, no gradients written), float16 and
 * float64 inputs (converted on read), the kappa-clamp warning, an imposed lut (output lut equals
 * it, o matches the direct call with that lut and differs from the predicted-lut run; imposing the
 * predicted lut reproduces that run), --help, and every error case: exit code 2, one line on
 * stderr containing the expected phrase, and neither OUT.h5 nor OUT.h5.tmp afterwards (a failed
 * run also leaves an existing OUT.h5 untouched). Prints each comparison's max error. */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "h5_tensor.h"
#include "ops.h"
#include "test_util.h"
#include "tool_run.h"

enum { B = 1, H = 2, N = 150, D = 16 };

static const char *g_tool;
static char g_dir[64];
static char g_stdout[8192], g_stderr[8192];

typedef struct inputs {
    tensor_t q, k, v, dout, w, b;
} inputs_t;

typedef struct results {
    tensor_t o, lse, lut, dq, dk, dv, dw, db;
} results_t;

static const char *const result_names[8] = {"o", "lse", "lut", "dq", "dk", "dv", "dproj_w", "dproj_b"};

static tensor_t *result_at(results_t *r, int i) {
    tensor_t *all[8] = {&r->o, &r->lse, &r->lut, &r->dq, &r->dk, &r->dv, &r->dw, &r->db};
    return all[i];
}

static void results_free(results_t *r) {
    for (int i = 0; i < 8; i++) tensor_free(result_at(r, i));
}

static const char *path_in_dir(const char *name) {
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 512, "%s/%s", g_dir, name);
    return p;
}

static int file_exists(const char *path) { return access(path, F_OK) == 0; }

/* ---- random inputs ----------------------------------------------------------------------- */

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static float uniform(void) { /* [-1, 1) */
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (float)((g_rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static tensor_t random_tensor(int ndim, const int64_t *shape, float scale) {
    tensor_t t = tensor_alloc(DTYPE_F32, DEVICE_CPU, ndim, shape);
    float *p = t.data;
    for (int64_t i = 0; i < tensor_numel(&t); i++) p[i] = scale * uniform();
    return t;
}

static inputs_t make_inputs(void) {
    int64_t s[4] = {B, H, N, D};
    inputs_t in;
    in.q = random_tensor(4, s, 1.5f);
    in.k = random_tensor(4, s, 1.5f);
    in.v = random_tensor(4, s, 1.0f);
    in.dout = random_tensor(4, s, 1.0f);
    in.w = random_tensor(2, (int64_t[]){D, D}, 0.3f);
    in.b = random_tensor(1, (int64_t[]){D}, 0.3f);
    return in;
}

static void inputs_free(inputs_t *in) {
    tensor_t *all[] = {&in->q, &in->k, &in->v, &in->dout, &in->w, &in->b};
    for (int i = 0; i < 6; i++) tensor_free(all[i]);
}

/* Writes the named tensors (NULL entries skipped) to dir/name; aborts the test on failure. */
static void write_file(const char *name, const char *const *names, const tensor_t *const *ts, int n) {
    char err[512];
    h5_file_t f;
    if (h5_create(path_in_dir(name), &f, err, sizeof err)) {
        fprintf(stderr, "FAIL: %s\n", err);
        exit(1);
    }
    for (int i = 0; i < n; i++)
        if (ts[i] && h5_write_tensor(&f, names[i], ts[i], i % 2, err, sizeof err)) {
            fprintf(stderr, "FAIL: %s\n", err);
            exit(1);
        }
    h5_close(&f, err, sizeof err);
}

static void write_inputs(const char *name, const inputs_t *in, int with_grad_and_proj, const tensor_t *lut) {
    const char *names[] = {"q", "k", "v", "do", "proj_w", "proj_b", "lut"};
    const tensor_t *ts[] = {&in->q, &in->k, &in->v, with_grad_and_proj ? &in->dout : NULL,
                            with_grad_and_proj ? &in->w : NULL, with_grad_and_proj ? &in->b : NULL, lut};
    write_file(name, names, ts, 7);
}

/* ---- running the tool -------------------------------------------------------------------- */

/* Runs sla-op with args (NULL-terminated; "@IN"/"@OUT" become dir/in_name and dir/out.h5);
 * returns its exit status and leaves its stdout/stderr in g_stdout/g_stderr. */
static int run_tool(const char *in_name, const char *const *args) {
    const char *argv[40];
    int n = 0;
    argv[n++] = g_tool;
    for (int i = 0; args[i] && n < 39; i++)
        argv[n++] = !strcmp(args[i], "@IN") ? path_in_dir(in_name) : !strcmp(args[i], "@OUT") ? path_in_dir("out.h5")
                  : !strcmp(args[i], "@NODIR") ? path_in_dir("nodir/out.h5") : args[i];
    argv[n] = NULL;
    return tool_run(argv, g_dir, g_stdout, sizeof g_stdout, g_stderr, sizeof g_stderr);
}

/* ---- reference and comparison ------------------------------------------------------------ */

static sla_config_t config_from(double topk, double kl, int bq, int bk, const char *feature, const char *variant) {
    sla_config_t c = sla_config_default();
    c.topk = topk, c.kl = kl, c.blk_q = bq, c.blk_k = bk;
    c.feature = (sla_feature_t)sla_feature_parse(feature);
    c.variant = (sla_variant_t)sla_variant_parse(variant);
    return c;
}

/* Direct calls: sla_forward (with lut imposed when not NULL) and sla_backward when grads. */
static results_t reference(const sla_config_t *cfg, const inputs_t *in, int with_grad_and_proj, const tensor_t *lut) {
    char err[256];
    sla_dims_t d;
    int clamped;
    if (sla_dims_make(cfg, B, H, N, D, &d, &clamped, err, sizeof err)) {
        fprintf(stderr, "FAIL: %s\n", err);
        exit(1);
    }
    tensor_t w = tensor_alloc(DTYPE_F32, DEVICE_CPU, 2, (int64_t[]){D, D}), b = tensor_alloc(DTYPE_F32, DEVICE_CPU, 1, (int64_t[]){D});
    memset(w.data, 0, tensor_bytes(&w)), memset(b.data, 0, tensor_bytes(&b));
    if (with_grad_and_proj) tensor_copy(&w, &in->w), tensor_copy(&b, &in->b);
    sla_saved_t s;
    sla_saved_alloc(&s, &d, DEVICE_CPU);
    if (lut) tensor_copy(&s.lut, lut);
    results_t r;
    memset(&r, 0, sizeof r);
    r.o = tensor_alloc(DTYPE_F32, DEVICE_CPU, 4, in->q.shape);
    sla_forward(cfg, &d, &in->q, &in->k, &in->v, &w, &b, lut != NULL, &r.o, &s);
    if (with_grad_and_proj) {
        r.dq = tensor_alloc(DTYPE_F32, DEVICE_CPU, 4, in->q.shape);
        r.dk = tensor_alloc(DTYPE_F32, DEVICE_CPU, 4, in->q.shape);
        r.dv = tensor_alloc(DTYPE_F32, DEVICE_CPU, 4, in->q.shape);
        r.dw = tensor_alloc(DTYPE_F32, DEVICE_CPU, 2, w.shape);
        r.db = tensor_alloc(DTYPE_F32, DEVICE_CPU, 1, b.shape);
        sla_backward(cfg, &d, &in->q, &in->k, &in->v, &w, &s, &in->dout, &r.dq, &r.dk, &r.dv, &r.dw, &r.db);
    }
    r.lse = s.lse, r.lut = s.lut;
    s.lse.data = s.lut.data = NULL; /* moved into r */
    sla_saved_free(&s);
    tensor_free(&w), tensor_free(&b);
    return r;
}

/* Reads OUT.h5's datasets (gradients only when expected); checks gradients are absent otherwise. */
static results_t read_output(int with_grad) {
    char err[512];
    h5_file_t f;
    results_t r;
    memset(&r, 0, sizeof r);
    if (h5_open_read(path_in_dir("out.h5"), &f, err, sizeof err)) {
        EXPECT(0, "%s", err);
        return r;
    }
    for (int i = 0; i < 8; i++) {
        int want = i < 3 || with_grad;
        EXPECT(h5_exists(&f, result_names[i]) == want, "OUT.h5: dataset '%s' %s", result_names[i],
               want ? "missing" : "present without do");
        if (want && h5_read_tensor(&f, result_names[i], i == 2 ? DTYPE_I32 : DTYPE_F32, result_at(&r, i), NULL, err,
                                   sizeof err))
            EXPECT(0, "%s", err);
    }
    h5_close(&f, err, sizeof err);
    return r;
}

/* Max |got - want| / max |want|; prints it and returns it (1e30 on a shape mismatch). */
static double compare(const char *label, const char *name, const tensor_t *got, const tensor_t *want) {
    if (!got->data || !want->data || !tensor_same_shape(got, want) || got->dtype != want->dtype) {
        EXPECT(0, "%s: %s missing or of another shape/dtype", label, name);
        return 1e30;
    }
    double maxdiff = 0, maxref = 0;
    for (int64_t i = 0; i < tensor_numel(want); i++) {
        double g = got->dtype == DTYPE_I32 ? ((int32_t *)got->data)[i] : ((float *)got->data)[i];
        double w = want->dtype == DTYPE_I32 ? ((int32_t *)want->data)[i] : ((float *)want->data)[i];
        maxdiff = fmax(maxdiff, fabs(g - w));
        maxref = fmax(maxref, fabs(w));
    }
    double rel = maxdiff / (maxref > 0 ? maxref : 1);
    printf("  %-26s %-8s max abs diff %.3g (relative %.3g, max |ref| %.3g)\n", label, name, maxdiff, rel, maxref);
    return rel;
}

static void compare_all(const char *label, results_t *got, results_t *want, int with_grad) {
    for (int i = 0; i < (with_grad ? 8 : 3); i++) {
        double rel = compare(label, result_names[i], result_at(got, i), result_at(want, i));
        EXPECT(rel <= 1e-6, "%s: %s differs from the direct call (relative %.3g)", label, result_names[i], rel);
    }
}

/* ---- scenarios --------------------------------------------------------------------------- */

static void check_attrs(double topk, const char *feature, int64_t kappa, int64_t lut_given) {
    char err[512], s[32] = "";
    h5_file_t f;
    double t = -1;
    int64_t k = -1, lg = -1;
    if (h5_open_read(path_in_dir("out.h5"), &f, err, sizeof err)) return;
    EXPECT(h5_read_attr_double(&f, "/", "topk", &t, err, sizeof err) == 0 && t == topk, "attr topk %g", t);
    EXPECT(h5_read_attr_string(&f, "/", "feature", s, sizeof s, err, sizeof err) == 0 && !strcmp(s, feature),
           "attr feature '%s'", s);
    EXPECT(h5_read_attr_int(&f, "/", "kappa", &k, err, sizeof err) == 0 && k == kappa, "attr kappa %lld", (long long)k);
    EXPECT(h5_read_attr_int(&f, "/", "lut_given", &lg, err, sizeof err) == 0 && lg == lut_given, "attr lut_given");
    h5_close(&f, err, sizeof err);
}

typedef struct option_set {
    const char *topk, *kl, *bq, *bk, *feature, *variant;
    int kappa;
} option_set_t;

/* Runs sla-op with option set o on dir/in_name and compares OUT.h5 with the direct calls (with
 * lut imposed when not NULL: in_name must then hold it). */
static void round_trip(const option_set_t *o, const inputs_t *in, const char *in_name, int with_grad,
                       const tensor_t *lut, const char *label) {
    const char *args[] = {"--in", "@IN", "--out", "@OUT", "--topk", o->topk, "--kl", o->kl, "--blkq", o->bq,
                          "--blkk", o->bk, "--feature", o->feature, "--variant", o->variant, NULL};
    int rc = run_tool(in_name, args);
    EXPECT(rc == 0, "%s: sla-op exited %d: %s", label, rc, g_stderr);
    if (rc) return;
    EXPECT(!file_exists(path_in_dir("out.h5.tmp")), "%s: out.h5.tmp left behind", label);
    sla_config_t cfg = config_from(atof(o->topk), atof(o->kl), atoi(o->bq), atoi(o->bk), o->feature, o->variant);
    results_t got = read_output(with_grad), want = reference(&cfg, in, with_grad, lut);
    compare_all(label, &got, &want, with_grad);
    check_attrs(atof(o->topk), o->feature, o->kappa, lut != NULL);
    results_free(&got), results_free(&want);
}

static const option_set_t k_sets[] = {
    {"0.4", "0", "64", "32", "softmax", "complement", 2},
    {"0.2", "0.2", "32", "64", "elu", "all", 1},
    {"0.6", "0.2", "64", "32", "relu", "complement", 3},
};

/* Imposed lut: a selection disjoint from the predicted one, then the predicted one itself. */
static void imposed_lut(const inputs_t *in) {
    const option_set_t *o = &k_sets[0]; /* Tm = 3, Tn = 5, kappa = 2 */
    round_trip(o, in, "in.h5", 1, NULL, "predicted lut");
    results_t pred = read_output(1);
    int Tn = 5, kappa = 2;
    tensor_t lut = tensor_alloc(DTYPE_I32, DEVICE_CPU, 4, pred.lut.shape);
    for (int64_t r = 0; r < tensor_numel(&lut) / kappa; r++) {
        const int32_t *p = (int32_t *)pred.lut.data + r * kappa;
        int32_t *dst = (int32_t *)lut.data + r * kappa;
        for (int j = 0, n = 0; j < Tn && n < kappa; j++)
            if (j != p[0] && j != p[1]) dst[n++] = j;
    }
    const tensor_t *luts[2] = {&lut, &pred.lut};
    const char *labels[2] = {"imposed (other) lut", "imposed (predicted) lut"};
    for (int t = 0; t < 2; t++) {
        write_inputs("in_lut.h5", in, 1, luts[t]);
        round_trip(o, in, "in_lut.h5", 1, luts[t], labels[t]);
        results_t got = read_output(1);
        EXPECT(compare(labels[t], "lut/in", &got.lut, luts[t]) == 0, "output lut differs from the imposed one");
        double d = compare(labels[t], "o/pred", &got.o, &pred.o);
        if (t == 0) EXPECT(d > 1e-3, "o with another lut equals the predicted-lut o (relative diff %.3g)", d);
        else EXPECT(d <= 1e-6, "imposing the predicted lut changed o (relative diff %.3g)", d);
        results_free(&got);
    }
    tensor_free(&lut);
    results_free(&pred);
}

/* q as float16, k as float64, v float32: converted on read; the reference uses the same values. */
static void converted_inputs(const inputs_t *in) {
    inputs_t r = *in;
    tensor_t q16 = tensor_alloc(DTYPE_F16, DEVICE_CPU, 4, in->q.shape), k64 = tensor_alloc(DTYPE_F64, DEVICE_CPU, 4, in->k.shape);
    tensor_copy(&q16, &in->q), tensor_copy(&k64, &in->k);
    r.q = tensor_alloc(DTYPE_F32, DEVICE_CPU, 4, in->q.shape);
    tensor_copy(&r.q, &q16);
    const char *names[] = {"q", "k", "v"};
    const tensor_t *ts[] = {&q16, &k64, &in->v};
    write_file("in_conv.h5", names, ts, 3);
    round_trip(&k_sets[0], &r, "in_conv.h5", 0, NULL, "float16/float64 inputs");
    tensor_free(&q16), tensor_free(&k64), tensor_free(&r.q);
}

static void clamp_warning(void) {
    const char *args[] = {"--in", "@IN", "--out", "@OUT", "--topk", "0.01", "--blkq", "64", "--blkk", "32", NULL};
    int rc = run_tool("in.h5", args);
    EXPECT(rc == 0, "--topk 0.01 should run with a warning, exit %d: %s", rc, g_stderr);
    EXPECT(strstr(g_stderr, "warning") && strstr(g_stderr, "kappa"), "no kappa clamp warning: '%s'", g_stderr);
    if (rc == 0) check_attrs(0.01, "softmax", 1, 0);
    printf("  kappa clamp: exit %d, stderr: %s", rc, g_stderr);
}

static void help(void) {
    const char *args[] = {"--help", NULL};
    int rc = run_tool("in.h5", args);
    EXPECT(rc == 0, "--help exited %d", rc);
    const char *flags[] = {"--in", "--out", "--backend", "--topk", "--kl", "--blkq", "--blkk", "--feature", "--variant",
                           "0.05", "128", "64", "softmax", "complement"};
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++)
        EXPECT(strstr(g_stdout, flags[i]) != NULL, "--help does not mention '%s'", flags[i]);
}

/* ---- error cases ------------------------------------------------------------------------- */

static tensor_t view(dtype_t dt, int ndim, const int64_t *shape, void *data) {
    tensor_t t = tensor_make(dt, DEVICE_CPU, ndim, shape);
    t.data = data;
    return t;
}

/* A valid [B,H,Tm,kappa] = [1,2,3,kappa] lut with one row (b=0, h=1, i=2) replaced by last. */
static tensor_t lut_with_row(int kappa, const int32_t *last) {
    tensor_t t = tensor_alloc(DTYPE_I32, DEVICE_CPU, 4, (int64_t[]){B, H, 3, kappa});
    int32_t *p = t.data;
    for (int r = 0; r < B * H * 3; r++)
        for (int j = 0; j < kappa; j++) p[r * kappa + j] = r == B * H * 3 - 1 ? last[j] : j + r % 2;
    return t;
}

/* Writes the malformed inputs the error cases read. */
static void write_bad_files(const inputs_t *in) {
    const char *qkv[] = {"q", "k", "v", "do", "proj_w", "proj_b"};
    int32_t ints[B * H * N * D];
    for (int i = 0; i < B * H * N * D; i++) ints[i] = i % 7;
    tensor_t qi = view(DTYPE_I32, 4, in->q.shape, ints), q3 = view(DTYPE_F32, 3, (int64_t[]){H, N, D}, in->q.data);
    tensor_t q0 = view(DTYPE_F32, 4, (int64_t[]){B, H, 0, D}, in->q.data);
    tensor_t k8 = view(DTYPE_F32, 4, (int64_t[]){B, H, N, 8}, in->k.data);
    tensor_t dbad = view(DTYPE_F32, 4, (int64_t[]){B, H, N / 2, 2 * D}, in->dout.data);
    tensor_t wbad = view(DTYPE_F32, 2, (int64_t[]){D, D + 1}, in->q.data);
    tensor_t bbad = view(DTYPE_F32, 1, (int64_t[]){D + 1}, in->q.data);
    struct { const char *name; const tensor_t *t[6]; } files[] = {
        {"no_v.h5", {&in->q, &in->k}},
        {"int_q.h5", {&qi, &in->k, &in->v}},
        {"rank3_q.h5", {&q3, &in->k, &in->v}},
        {"zero_q.h5", {&q0, &q0, &q0}},
        {"bad_k.h5", {&in->q, &k8, &in->v}},
        {"bad_do.h5", {&in->q, &in->k, &in->v, &dbad}},
        {"bad_w.h5", {&in->q, &in->k, &in->v, NULL, &wbad, &in->b}},
        {"bad_b.h5", {&in->q, &in->k, &in->v, NULL, &in->w, &bbad}},
    };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) write_file(files[i].name, qkv, files[i].t, 6);
    struct { const char *name; int kappa; int32_t last[3]; } luts[] = {
        {"lut_shape.h5", 3, {0, 1, 2}}, {"lut_order.h5", 2, {3, 1}}, {"lut_dup.h5", 2, {2, 2}}, {"lut_range.h5", 2, {1, 5}},
        {"lut_neg.h5", 2, {-1, 2}}};
    for (size_t i = 0; i < sizeof luts / sizeof *luts; i++) {
        tensor_t lut = lut_with_row(luts[i].kappa, luts[i].last);
        write_inputs(luts[i].name, in, 0, &lut);
        tensor_free(&lut);
    }
    tensor_t lutf = tensor_alloc(DTYPE_F32, DEVICE_CPU, 4, (int64_t[]){B, H, 3, 2});
    memset(lutf.data, 0, tensor_bytes(&lutf));
    write_inputs("lut_float.h5", in, 0, &lutf);
    tensor_free(&lutf);
    FILE *f = fopen(path_in_dir("not_h5.h5"), "w");
    if (f) fputs("q, k, v\n", f), fclose(f);
}

#define IO "--in", "@IN", "--out", "@OUT"
#define LUT_OPTS "--topk", "0.4", "--blkq", "64", "--blkk", "32"

typedef struct error_case {
    const char *input;  /* @IN */
    const char *args[14];
    const char *phrase; /* must appear in the one stderr line */
} error_case_t;

static const error_case_t k_errors[] = {
    {"in.h5", {IO, "--bogus", NULL}, "unknown flag '--bogus'"},
    {"in.h5", {IO, "--topk", NULL}, "--topk needs a value"},
    {"in.h5", {IO, "--topk", "--kl", "0", NULL}, "--topk needs a value"},
    {"in.h5", {IO, "--topk", "abc", NULL}, "--topk: 'abc' is not a number"},
    {"in.h5", {IO, "--topk", "0", NULL}, "--topk 0 is outside (0, 1]"},
    {"in.h5", {IO, "--topk", "1.5", NULL}, "--topk 1.5 is outside (0, 1]"},
    {"in.h5", {IO, "--topk", "nan", NULL}, "--topk: 'nan' is not a number"},
    {"in.h5", {IO, "--kl", "1", NULL}, "--kl 1 is outside [0, 1)"},
    {"in.h5", {IO, "--kl", "-0.1", NULL}, "--kl -0.1 is outside [0, 1)"},
    {"in.h5", {IO, "--blkq", "0", NULL}, "--blkq 0: a block size must be a positive integer"},
    {"in.h5", {IO, "--blkk", "-3", NULL}, "--blkk -3: a block size must be a positive integer"},
    {"in.h5", {IO, "--blkq", "12x", NULL}, "--blkq: '12x' is not an integer"},
    {"in.h5", {IO, "--blkk=1.5", NULL}, "--blkk: '1.5' is not an integer"},
    {"in.h5", {IO, "--feature", "gelu", NULL}, "--feature 'gelu' is unknown"},
    {"in.h5", {IO, "--variant", "some", NULL}, "--variant 'some' is unknown"},
    {"in.h5", {IO, "--backend", "tpu", NULL}, "--backend 'tpu' is unknown"},
    {"in.h5", {"--out", "@OUT", NULL}, "--in IN.h5 is required"},
    {"in.h5", {"--in", "@IN", NULL}, "--out OUT.h5 is required"},
    {"in.h5", {IO, "stray", NULL}, "unexpected argument 'stray'"},
    {"in.h5", {"--in", "@IN", "--out", "@NODIR", NULL}, "nodir does not exist"},
    {"missing.h5", {IO, NULL}, "missing.h5: cannot open (No such file"},
    {"not_h5.h5", {IO, NULL}, "not_h5.h5: not an HDF5 file"},
    {"no_v.h5", {IO, NULL}, "dataset 'v' is missing"},
    {"int_q.h5", {IO, NULL}, "dataset 'q' is int32, expected float32"},
    {"rank3_q.h5", {IO, NULL}, "dataset 'q' has shape [2, 150, 16], expected rank 4"},
    {"zero_q.h5", {IO, NULL}, "dataset 'q' has shape [1, 2, 0, 16]; every extent"},
    {"bad_k.h5", {IO, NULL}, "dataset 'k' has shape [1, 2, 150, 8], expected [1, 2, 150, 16]"},
    {"bad_do.h5", {IO, NULL}, "dataset 'do' has shape [1, 2, 75, 32], expected [1, 2, 150, 16]"},
    {"bad_w.h5", {IO, NULL}, "dataset 'proj_w' has shape [16, 17], expected [16, 16]"},
    {"bad_b.h5", {IO, NULL}, "dataset 'proj_b' has shape [17], expected [16]"},
    {"lut_shape.h5", {IO, LUT_OPTS, NULL}, "dataset 'lut' has shape [1, 2, 3, 3], expected [1, 2, 3, 2]"},
    {"lut_float.h5", {IO, LUT_OPTS, NULL}, "dataset 'lut' is float32, expected int32"},
    {"lut_order.h5", {IO, LUT_OPTS, NULL}, "dataset 'lut' row (b=0, h=1, i=2) is not strictly ascending"},
    {"lut_dup.h5", {IO, LUT_OPTS, NULL}, "dataset 'lut' row (b=0, h=1, i=2) is not strictly ascending"},
    {"lut_range.h5", {IO, LUT_OPTS, NULL}, "dataset 'lut' row (b=0, h=1, i=2) holds key block 5, expected 0..4"},
    {"lut_neg.h5", {IO, LUT_OPTS, NULL}, "dataset 'lut' row (b=0, h=1, i=2) holds key block -1, expected 0..4"},
};

static void count_lines(const char *s, int *lines) {
    *lines = 0;
    for (; *s; s++) *lines += *s == '\n';
}

static void expect_failure(const error_case_t *c) {
    int rc = run_tool(c->input, c->args), lines;
    count_lines(g_stderr, &lines);
    printf("  exit %d: %s", rc, g_stderr[0] ? g_stderr : "(no stderr)\n");
    EXPECT(rc == 2, "case '%s': exit code %d, expected 2", c->phrase, rc);
    EXPECT(strstr(g_stderr, c->phrase) != NULL, "case '%s': stderr lacks the phrase", c->phrase);
    EXPECT(lines == 1 && !strncmp(g_stderr, "sla-op: ", 8), "case '%s': stderr is not one 'sla-op: ' line", c->phrase);
    EXPECT(!file_exists(path_in_dir("out.h5")), "case '%s': out.h5 left behind", c->phrase);
    EXPECT(!file_exists(path_in_dir("out.h5.tmp")), "case '%s': out.h5.tmp left behind", c->phrase);
}

static void error_cases(const inputs_t *in) {
    write_bad_files(in);
    unlink(path_in_dir("out.h5"));
    printf("error cases:\n");
    for (size_t i = 0; i < sizeof k_errors / sizeof *k_errors; i++) expect_failure(&k_errors[i]);
    if (!ops_cuda_available()) {
        error_case_t c = {"in.h5", {IO, "--backend", "cuda", NULL}, "--backend cuda: no CUDA device"};
        expect_failure(&c);
    }
    /* A failed run leaves an existing OUT.h5 as it was. */
    FILE *f = fopen(path_in_dir("out.h5"), "w");
    if (f) fputs("old", f), fclose(f);
    error_case_t c = {"int_q.h5", {IO, NULL}, "expected float32"};
    int rc = run_tool(c.input, c.args);
    char old[16];
    tool_read_file(path_in_dir("out.h5"), old, sizeof old);
    EXPECT(rc == 2 && !strcmp(old, "old"), "a failed run modified an existing out.h5 (exit %d)", rc);
    EXPECT(!file_exists(path_in_dir("out.h5.tmp")), "out.h5.tmp left behind");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_sla_op PATH/TO/sla-op\n");
        return 1;
    }
    g_tool = argv[1];
    snprintf(g_dir, sizeof g_dir, "/tmp/test_sla_op.XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    inputs_t in = make_inputs();
    write_inputs("in.h5", &in, 1, NULL);
    write_inputs("in_fwd.h5", &in, 0, NULL);
    printf("round trips (B=%d H=%d N=%d D=%d):\n", B, H, N, D);
    char label[64];
    for (size_t i = 0; i < sizeof k_sets / sizeof *k_sets; i++) {
        snprintf(label, sizeof label, "%s/%s kl=%s", k_sets[i].feature, k_sets[i].variant, k_sets[i].kl);
        round_trip(&k_sets[i], &in, "in.h5", 1, NULL, label);
    }
    round_trip(&k_sets[0], &in, "in_fwd.h5", 0, NULL, "no do, no proj");
    converted_inputs(&in);
    clamp_warning();
    imposed_lut(&in);
    help();
    error_cases(&in);
    inputs_free(&in);
    test_remove_dir(g_dir);
    return test_summary("test_sla_op");
}
