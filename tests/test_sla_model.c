/* tests/test_sla_model.c — the sla-model tool end to end (label cpu).
 *
 * Usage: test_sla_model PATH/TO/sla-model. In a mkdtemp directory it writes a tiny SLA config
 * (B=2, F=2, H=8, W=6: 24 tokens in blocks of 8; text 5 of 16 tokens), random weights for every
 * parameter (weights_save), and inputs; runs the tool and compares OUT.h5 with dit_forward /
 * dit_backward called here on the same weights and inputs: pred and every grad/<name> bit for bit
 * (the same CPU code runs). Also: forward only (no grad group), diffusers-named F32 safetensors
 * without the SLA proj (zero-filled: equals the reference with proj zero, reported on stdout and
 * in the proj_zero_filled attribute), --set recompute=1 (bit-identical), and --backend cuda: with
 * a GPU, a CUDA-sized model (SLA sparse, SLA rho = 1, dense) against the CPU reference (pred
 * within 2e-2, each gradient within 1e-1 of its max |ref|: a check of the tool's CUDA path, not
 * the model's bf16 rule), without one refused. Then
 * --help and every error case: exit code 2, one line "sla-model: ..." on stderr containing the
 * expected phrase, and neither OUT.h5 nor OUT.h5.tmp afterwards (an existing OUT.h5 is left as it
 * was). */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "dit.h"
#include "h5_tensor.h"
#include "safetensors.h"
#include "st_write.h"
#include "test_util.h"
#include "tool_run.h"
#include "weights.h"

enum { B = 2, F = 2, HL = 8, WL = 6, LT = 5 };

static const char *g_tool;
static char g_dir[64];
static char g_stdout[8192], g_stderr[8192];

static const char *path_in(const char *name) {
    static char buf[16][512];
    static int next;
    char *p = buf[next++ % 16];
    snprintf(p, 512, "%s/%s", g_dir, name);
    return p;
}

static int file_exists(const char *path) { return access(path, F_OK) == 0; }

/* Runs the tool with args (NULL-terminated; "@name" becomes dir/name); returns its exit status. */
static int run_tool(const char *const *args) {
    const char *argv[48];
    int n = 0;
    argv[n++] = g_tool;
    for (int i = 0; args[i] && n < 47; i++) argv[n++] = args[i][0] == '@' ? path_in(args[i] + 1) : args[i];
    argv[n] = NULL;
    return tool_run(argv, g_dir, g_stdout, sizeof g_stdout, g_stderr, sizeof g_stderr);
}

static void die_setup(const char *what, const char *err) {
    fprintf(stderr, "FAIL: %s: %s\n", what, err);
    exit(1);
}

/* ---- fixtures ---------------------------------------------------------------------------- */

typedef struct inputs {
    tensor_t lat, t, text, dpred;
} inputs_t;

static tensor_t random_tensor(test_rng_t *r, int ndim, const int64_t *shape) {
    tensor_t t = tensor_alloc(DTYPE_F32, DEVICE_CPU, ndim, shape);
    fill_normal_f32(r, t.data, (long)tensor_numel(&t), 1.0);
    return t;
}

static inputs_t make_inputs(int text_dim, int f, int h, int w) {
    test_rng_t r = {11};
    inputs_t in;
    int64_t ls[5] = {B, 16, f, h, w};
    in.lat = random_tensor(&r, 5, ls);
    in.dpred = random_tensor(&r, 5, ls);
    in.text = random_tensor(&r, 3, (int64_t[]){B, LT, text_dim});
    in.t = tensor_alloc(DTYPE_F32, DEVICE_CPU, 1, (int64_t[]){B});
    ((float *)in.t.data)[0] = 731.0f, ((float *)in.t.data)[1] = 88.5f;
    return in;
}

/* Writes the named tensors (NULL skipped) to dir/name. */
static void write_h5(const char *name, const char *const *names, const tensor_t *const *ts, int n) {
    char err[512];
    h5_file_t f;
    if (h5_create(path_in(name), &f, err, sizeof err)) die_setup("h5_create", err);
    for (int i = 0; i < n; i++)
        if (ts[i] && h5_write_tensor(&f, names[i], ts[i], 0, err, sizeof err)) die_setup("h5_write_tensor", err);
    h5_close(&f, err, sizeof err);
}

static void write_inputs(const char *name, const tensor_t *lat, const tensor_t *t, const tensor_t *text,
                         const tensor_t *dpred) {
    const char *names[4] = {"latents", "t", "text", "dpred"};
    const tensor_t *ts[4] = {lat, t, text, dpred};
    write_h5(name, names, ts, 4);
}

/* The tiny model with SLA in blocks of blk; heads 2 (head dim 32) or 1 (64, as the CUDA kernels need). */
static void write_config(const char *name, int heads, int blk, const char *more) {
    FILE *f = fopen(path_in(name), "w");
    fprintf(f, "# the tiny model for test_sla_model\nmodel = tiny\nheads = %d\nattention = sla\nsla_topk = 0.5\n"
               "sla_blkq = %d\nsla_blkk = %d\nsla_feature = elu\nbackend = cpu\n%s", heads, blk, blk, more);
    fclose(f);
}

/* Loads a config as the tool does and builds its table; random weights around their init. */
static void model_from(const char *cfg_name, run_config_t *rc, param_table_t *t, float **w) {
    char err[2048];
    config_defaults(rc);
    if (config_load_file(rc, path_in(cfg_name), err, sizeof err)) die_setup("config", err);
    if (param_table_build(&rc->model, t, err, sizeof err)) die_setup("param_table_build", err);
    /* every parameter random around its init scale, so that no path is switched off */
    *w = malloc(sizeof(float) * t->total);
    param_table_init(t, 7, *w);
    test_rng_t r = {9};
    for (int i = 0; i < t->count; i++)
        for (int64_t j = 0; j < t->p[i].numel; j++) (*w)[t->p[i].offset + j] += (float)(0.2 * rng_normal(&r));
}

/* The reference: dit_forward (and dit_backward) here. */
typedef struct result {
    tensor_t pred;
    float *grads; /* [table.total] or NULL */
} result_t;

static result_t reference(const model_config_t *mc, const float *weights, const inputs_t *in, int backward,
                          int recompute) {
    char err[512];
    dit_t m;
    const int64_t *s = in->lat.shape;
    if (dit_init(&m, mc, DEVICE_CPU, (int)s[0], (int)s[2], (int)s[3], (int)s[4], recompute, err, sizeof err))
        die_setup("dit_init", err);
    memcpy(m.params.data, weights, sizeof(float) * m.table.total);
    dit_params_changed(&m);
    result_t r = {tensor_alloc(DTYPE_F32, DEVICE_CPU, 5, in->lat.shape), NULL};
    dit_forward(&m, &in->lat, &in->t, &in->text, &r.pred);
    if (backward) {
        dit_zero_grads(&m);
        dit_backward(&m, &in->dpred);
        r.grads = malloc(sizeof(float) * m.table.total);
        memcpy(r.grads, m.grads.data, sizeof(float) * m.table.total);
    }
    dit_free(&m);
    return r;
}

/* max |a - b| / max |b| over n values (0 when bit-equal). */
static double rel_diff(const float *a, const float *b, int64_t n) {
    double d = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (!(e <= d)) d = e;
        if (fabs(b[i]) > m) m = fabs(b[i]);
    }
    return d / (m > 0 ? m : 1);
}

/* OUT.h5 against want: pred and (with grads) every grad/<name>; tol 0 means bit-equal. */
static void check_output(const char *label, const param_table_t *t, const result_t *want, double tol_pred,
                         double tol, int64_t want_zero_filled) {
    char err[512];
    h5_file_t f;
    EXPECT(!file_exists(path_in("out.h5.tmp")), "%s: out.h5.tmp left behind", label);
    if (h5_open_read(path_in("out.h5"), &f, err, sizeof err)) {
        EXPECT(0, "%s: %s", label, err);
        return;
    }
    tensor_t x;
    double worst = 0;
    if (h5_read_tensor(&f, "pred", DTYPE_F32, &x, NULL, err, sizeof err) == 0) {
        int same = tensor_same_shape(&x, &want->pred);
        double d = same ? rel_diff(x.data, want->pred.data, tensor_numel(&x)) : 1e30;
        int bits = same && !memcmp(x.data, want->pred.data, tensor_bytes(&x));
        EXPECT(tol_pred == 0 ? bits : d <= tol_pred, "%s: pred differs from dit_forward (relative %.3g)", label, d);
        printf("  %-34s pred      relative diff %.3g%s\n", label, d, bits ? " (bit-equal)" : "");
        tensor_free(&x);
    } else
        EXPECT(0, "%s: %s", label, err);
    EXPECT(h5_exists(&f, "grad") == (want->grads != NULL), "%s: grad group %s", label,
           want->grads ? "missing" : "present without dpred");
    int unequal = 0;
    for (int i = 0; want->grads && i < t->count; i++) {
        const param_info_t *p = &t->p[i];
        char name[PARAM_NAME_MAX + 8];
        snprintf(name, sizeof name, "grad/%s", p->name);
        if (h5_read_tensor(&f, name, DTYPE_F32, &x, NULL, err, sizeof err)) {
            EXPECT(0, "%s: %s", label, err);
            continue;
        }
        const float *g = want->grads + p->offset;
        int same = x.ndim == p->ndim && tensor_numel(&x) == p->numel;
        for (int d = 0; same && d < p->ndim; d++) same = x.shape[d] == p->shape[d];
        double d = same ? rel_diff(x.data, g, p->numel) : 1e30;
        unequal += !same || memcmp(x.data, g, sizeof(float) * (size_t)p->numel) != 0;
        EXPECT(tol == 0 ? same && !memcmp(x.data, g, sizeof(float) * (size_t)p->numel) : d <= tol,
               "%s: %s differs from dit_backward (relative %.3g)", label, name, d);
        if (d > worst) worst = d;
        tensor_free(&x);
    }
    if (want->grads)
        printf("  %-34s %d grads  worst relative diff %.3g, %d not bit-equal\n", label, t->count, worst, unequal);
    int64_t zf = -1;
    EXPECT(h5_read_attr_int(&f, "/", "proj_zero_filled", &zf, err, sizeof err) == 0 && zf == want_zero_filled,
           "%s: proj_zero_filled %lld, expected %lld", label, (long long)zf, (long long)want_zero_filled);
    h5_close(&f, err, sizeof err);
    remove(path_in("out.h5"));
}

/* ---- scenarios --------------------------------------------------------------------------- */

static void good_runs(const model_config_t *mc, const param_table_t *t, const float *weights, const inputs_t *in) {
    result_t full = reference(mc, weights, in, 1, 0), fwd = {full.pred, NULL};
    const char *base[] = {"--config", "@tiny.cfg", "--weights", "@w.h5", "--in", "@in.h5", "--out", "@out.h5",
                          "--backend", "cpu", NULL};
    int rc = run_tool(base);
    EXPECT(rc == 0, "h5 weights: exit %d: %s", rc, g_stderr);
    if (!rc) check_output("h5 weights, forward + backward", t, &full, 0, 0, 0);

    const char *fwd2[] = {"--config", "@tiny.cfg", "--weights", "@w.h5", "--in", "@in_fwd.h5", "--out", "@out.h5", NULL};
    rc = run_tool(fwd2);
    EXPECT(rc == 0, "forward only: exit %d: %s", rc, g_stderr);
    if (!rc) check_output("h5 weights, forward only", t, &fwd, 0, 0, 0);

    const char *rec[] = {"--config", "@tiny.cfg", "--weights", "@w.h5", "--in", "@in.h5", "--out", "@out.h5",
                         "--set", "recompute=1", NULL};
    rc = run_tool(rec);
    EXPECT(rc == 0, "recompute: exit %d: %s", rc, g_stderr);
    if (!rc) check_output("--set recompute=1", t, &full, 0, 0, 0);

    /* diffusers names, F32, no SLA proj: the reference with proj at zero */
    float *dense = malloc(sizeof(float) * t->total);
    memcpy(dense, weights, sizeof(float) * t->total);
    st_writer_t w = {0};
    int nproj = 0;
    for (int i = 0; i < t->count; i++) {
        const param_info_t *p = &t->p[i];
        if (strstr(p->name, ".proj_l.")) {
            memset(dense + p->offset, 0, sizeof(float) * (size_t)p->numel);
            nproj++;
            continue;
        }
        char name[ST_MAX_NAME];
        st_diffusers_name(p->name, name, sizeof name);
        unsigned char *bytes = malloc((size_t)p->numel * 4);
        stw_add(&w, name, "F32", p->ndim, p->shape, bytes, stw_values("F32", weights + p->offset, p->numel, bytes));
        free(bytes);
    }
    stw_save(&w, path_in("diffusers.safetensors"), NULL);
    stw_free(&w);
    result_t zero = reference(mc, dense, in, 1, 0);
    const char *st[] = {"--config", "@tiny.cfg", "--weights", "@diffusers.safetensors", "--in", "@in.h5", "--out",
                        "@out.h5", NULL};
    rc = run_tool(st);
    EXPECT(rc == 0, "safetensors: exit %d: %s", rc, g_stderr);
    EXPECT(strstr(g_stdout, "start at zero") != NULL, "safetensors without proj: no note on stdout: %s", g_stdout);
    if (!rc) check_output("diffusers safetensors, no proj", t, &zero, 0, 0, nproj);

    free(dense), free(zero.grads), tensor_free(&zero.pred);
    free(full.grads), tensor_free(&full.pred);
}

/* --backend cuda: refused without a GPU; with one, a CUDA-sized tiny model (head dim 64, blocks of
 * 64, 128 tokens: 2 key blocks, 1 kept; then rho = 1; then dense) against the CPU reference. */
static void cuda_run(void) {
    const char *cu[] = {"--config", "@tiny.cfg", "--weights", "@w.h5", "--in", "@in.h5", "--out", "@out.h5",
                        "--backend", "cuda", NULL};
    if (!ops_cuda_available()) {
        int rc = run_tool(cu);
        EXPECT(rc == 2 && strstr(g_stderr, "no CUDA device is available"), "--backend cuda without a GPU: exit %d: %s",
               rc, g_stderr);
        printf("  --backend cuda: no GPU here, refused as expected\n");
        return;
    }
    static const char *const variants[][2] = {
        {"SLA topk 0.5", ""}, {"SLA topk 1", "sla_topk = 1\n"}, {"dense", "attention = dense\n"}};
    for (int v = 0; v < 3; v++) {
        char err[512], label[64];
        run_config_t rc;
        param_table_t t;
        float *w;
        write_config("cuda.cfg", 1, 64, variants[v][1]);
        model_from("cuda.cfg", &rc, &t, &w);
        /* modest modulations: at full scale the shifts dominate the tokens, the last block's attention
         * is nearly uniform and its q/k gradients (30x smaller than block 0's) drown in bf16 rounding */
        for (int i = 0; i < t.count; i++)
            if (strstr(t.p[i].name, "modulation") || strstr(t.p[i].name, "time_projection"))
                for (int64_t j = 0; j < t.p[i].numel; j++) w[t.p[i].offset + j] *= 0.1f;
        if (weights_save(path_in("w_cuda.h5"), &t, w, err, sizeof err)) die_setup("weights_save", err);
        inputs_t in = make_inputs(rc.model.text_dim, 2, 16, 16);
        write_inputs("in_cuda.h5", &in.lat, &in.t, &in.text, &in.dpred);
        result_t ref = reference(&rc.model, w, &in, 1, 0);
        const char *args[] = {"--config", "@cuda.cfg", "--weights", "@w_cuda.h5", "--in", "@in_cuda.h5", "--out",
                              "@out.h5", "--backend", "cuda", NULL};
        int code = run_tool(args);
        EXPECT(code == 0, "--backend cuda: exit %d: %s", code, g_stderr);
        snprintf(label, sizeof label, "cuda vs CPU, %s", variants[v][0]);
        if (!code) check_output(label, &t, &ref, 2e-2, 1e-1, 0);
        free(ref.grads), tensor_free(&ref.pred), free(w);
        tensor_free(&in.lat), tensor_free(&in.t), tensor_free(&in.text), tensor_free(&in.dpred);
        remove(path_in("w_cuda.h5"));
        param_table_free(&t);
    }
}

typedef struct error_case {
    const char *in;     /* input file (written by write_error_inputs) or NULL for the good one */
    const char *args[10]; /* extra args after the standard ones (or, after "!", instead of them) */
    const char *phrase;
} error_case_t;

static void expect_error(const error_case_t *c) {
    const char *args[24];
    int n = 0;
    int replace = c->args[0] && !strcmp(c->args[0], "!");
    if (!replace) {
        const char *std[] = {"--config", "@tiny.cfg", "--weights", "@w.h5", "--in", c->in ? c->in : "@in.h5", "--out",
                             "@out.h5"};
        for (int i = 0; i < 8; i++) args[n++] = std[i];
    }
    for (int i = replace; i < 10 && c->args[i]; i++) args[n++] = c->args[i];
    args[n] = NULL;
    int rc = run_tool(args);
    size_t len = strlen(g_stderr);
    int one_line = len > 0 && g_stderr[len - 1] == '\n' && strchr(g_stderr, '\n') == g_stderr + len - 1;
    EXPECT(rc == 2 && one_line && !strncmp(g_stderr, "sla-model: ", 11) && strstr(g_stderr, c->phrase),
           "expected exit 2 and one line with '%s'; got exit %d and: %s", c->phrase, rc, g_stderr);
    EXPECT(!file_exists(path_in("out.h5")) && !file_exists(path_in("out.h5.tmp")), "'%s': an output file was left",
           c->phrase);
}

static void write_error_inputs(const inputs_t *in, int text_dim) {
    test_rng_t r = {5};
    tensor_t lat8 = random_tensor(&r, 5, (int64_t[]){B, 8, F, HL, WL});
    tensor_t lat7 = random_tensor(&r, 5, (int64_t[]){B, 16, F, 7, WL});
    tensor_t t3 = random_tensor(&r, 1, (int64_t[]){3});
    tensor_t tbig = random_tensor(&r, 1, (int64_t[]){B}), tnan = random_tensor(&r, 1, (int64_t[]){B});
    ((float *)tbig.data)[0] = 10.0f, ((float *)tbig.data)[1] = 1500.0f;
    ((float *)tnan.data)[0] = NAN, ((float *)tnan.data)[1] = 10.0f;
    tensor_t text_dt = random_tensor(&r, 3, (int64_t[]){B, LT, text_dim - 1});
    tensor_t text_long = random_tensor(&r, 3, (int64_t[]){B, 17, text_dim});
    tensor_t text_int = tensor_alloc(DTYPE_I32, DEVICE_CPU, 3, in->text.shape);
    memset(text_int.data, 0, tensor_bytes(&text_int));
    tensor_t dpred_bad = random_tensor(&r, 5, (int64_t[]){B, 16, F, HL, 4});
    write_inputs("in_fwd.h5", &in->lat, &in->t, &in->text, NULL);
    write_inputs("no_latents.h5", NULL, &in->t, &in->text, NULL);
    write_inputs("lat8.h5", &lat8, &in->t, &in->text, NULL);
    write_inputs("lat7.h5", &lat7, &in->t, &in->text, NULL);
    write_inputs("t3.h5", &in->lat, &t3, &in->text, NULL);
    write_inputs("tbig.h5", &in->lat, &tbig, &in->text, NULL);
    write_inputs("tnan.h5", &in->lat, &tnan, &in->text, NULL);
    write_inputs("no_text.h5", &in->lat, &in->t, NULL, NULL);
    write_inputs("text_dt.h5", &in->lat, &in->t, &text_dt, NULL);
    write_inputs("text_long.h5", &in->lat, &in->t, &text_long, NULL);
    write_inputs("text_int.h5", &in->lat, &in->t, &text_int, NULL);
    write_inputs("dpred_bad.h5", &in->lat, &in->t, &in->text, &dpred_bad);
    tensor_t *all[] = {&lat8, &lat7, &t3, &tbig, &tnan, &text_dt, &text_long, &text_int, &dpred_bad};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) tensor_free(all[i]);
    stw_write_file(path_in("garbage.txt"), "not weights at all", 18);
}

static void error_cases(void) {
    static const error_case_t cases[] = {
        {NULL, {"!", NULL}, "--config CFG is required"},
        {NULL, {"!", "--config", "@tiny.cfg", NULL}, "--weights W is required"},
        {NULL, {"!", "--config", "@tiny.cfg", "--weights", "@w.h5", "--in", "@in.h5", NULL}, "--out OUT.h5 is required"},
        {NULL, {"--bogus", "1", NULL}, "unknown flag '--bogus'"},
        {NULL, {"stray", NULL}, "unexpected argument 'stray'"},
        {NULL, {"--backend", "tpu", NULL}, "--backend 'tpu' is unknown; expected cpu or cuda"},
        {NULL, {"--set", NULL}, "--set needs a value"},
        {NULL, {"--weights=", NULL}, "--weights needs a non-empty value"},
        {NULL, {"--config", "@nope.cfg", NULL}, "cannot open config file"},
        {NULL, {"--set", "nokey=1", NULL}, "unknown key 'nokey'"},
        {NULL, {"--set", "heads=3", NULL}, "tiny.cfg"},
        {NULL, {"--set", "dim=96", NULL}, "w.h5: tensor 'patch_embedding.weight' has shape [64, 16, 1, 2, 2], expected [96, 16, 1, 2, 2]"},
        {NULL, {"--set", "attention=dense", NULL}, "is not a parameter of this model (extra tensor)"},
        {NULL, {"--weights", "@nope.safetensors", NULL}, "nope.safetensors: no such file"},
        {NULL, {"--weights", "@garbage.txt", NULL}, "neither an HDF5 file nor a safetensors file"},
        {NULL, {"--weights", "@in.h5", NULL}, "in.h5: tensor 'dpred' is not a parameter of this model"},
        {"@nope.h5", {NULL}, "nope.h5"},
        {"@no_latents.h5", {NULL}, "'latents'"},
        {"@lat8.h5", {NULL}, "dataset 'latents' has shape [2, 8, 2, 8, 6], expected [B, 16, F, H, W]"},
        {"@lat7.h5", {NULL}, "frames x height x width 2 x 7 x 6, not divisible by the patch 1x2x2"},
        {"@t3.h5", {NULL}, "dataset 't' has shape [3], expected [2] (B of latents)"},
        {"@tbig.h5", {NULL}, "dataset 't' holds 1500 at index 1; timesteps must be in [0, 1000]"},
        {"@tnan.h5", {NULL}, "at index 0; timesteps must be in [0, 1000]"},
        {"@no_text.h5", {NULL}, "'text'"},
        {"@text_dt.h5", {NULL}, "dataset 'text' has shape [2, 5, 31], expected [2, Lt, 32] with 1 <= Lt <= 16"},
        {"@text_long.h5", {NULL}, "dataset 'text' has shape [2, 17, 32]"},
        {"@text_int.h5", {NULL}, "dataset 'text' is int32, expected float32"},
        {"@dpred_bad.h5", {NULL}, "dataset 'dpred' has shape [2, 16, 2, 8, 4], expected [2, 16, 2, 8, 6]"},
        {NULL, {"!", "--config", "@tiny.cfg", "--weights", "@w.h5", "--in", "@in.h5", "--out", NULL}, "--out needs a value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) expect_error(&cases[i]);
    /* --out into a missing directory */
    const char *nodir[] = {"--config", "@tiny.cfg", "--weights", "@w.h5", "--in", "@in.h5", "--out", "@nodir/out.h5", NULL};
    int rc = run_tool(nodir);
    EXPECT(rc == 2 && strstr(g_stderr, "does not exist"), "--out in a missing directory: exit %d: %s", rc, g_stderr);
    /* a failing run leaves an existing OUT.h5 as it was */
    stw_write_file(path_in("out.h5"), "keep", 4);
    const char *bad[] = {"--config", "@tiny.cfg", "--weights", "@w.h5", "--in", "@tbig.h5", "--out", "@out.h5", NULL};
    rc = run_tool(bad);
    char kept[16];
    tool_read_file(path_in("out.h5"), kept, sizeof kept);
    EXPECT(rc == 2 && !strcmp(kept, "keep") && !file_exists(path_in("out.h5.tmp")), "an existing OUT.h5 was touched");
    remove(path_in("out.h5"));
    const char *help[] = {"--help", NULL};
    rc = run_tool(help);
    const char *topics[] = {"--config", "--weights", "--in", "--out", "--backend", "--set", "latents", "dpred",
                            "grad/<name>", "safetensors", "diffusers", "Exit status"};
    for (size_t i = 0; i < sizeof topics / sizeof *topics; i++)
        EXPECT(rc == 0 && strstr(g_stdout, topics[i]), "--help does not mention %s", topics[i]);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH/TO/sla-model\n", argv[0]);
        return 2;
    }
    g_tool = argv[1];
    snprintf(g_dir, sizeof g_dir, "/tmp/test_sla_model.XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    char err[2048];
    run_config_t rc;
    param_table_t t;
    float *w;
    write_config("tiny.cfg", 2, 8, "");
    model_from("tiny.cfg", &rc, &t, &w);
    if (weights_save(path_in("w.h5"), &t, w, err, sizeof err)) die_setup("weights_save", err);
    inputs_t in = make_inputs(rc.model.text_dim, F, HL, WL);
    write_inputs("in.h5", &in.lat, &in.t, &in.text, &in.dpred);
    write_error_inputs(&in, rc.model.text_dim);

    good_runs(&rc.model, &t, w, &in);
    cuda_run();
    error_cases();

    tensor_free(&in.lat), tensor_free(&in.t), tensor_free(&in.text), tensor_free(&in.dpred);
    free(w);
    param_table_free(&t);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd)) fprintf(stderr, "warning: could not remove %s\n", g_dir);
    return test_summary("test_sla_model");
}
