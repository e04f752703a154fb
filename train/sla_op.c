/* train/sla_op.c — `sla-op`: one SLA forward (and backward) from the command line, HDF5 in and out.
 *
 * sla-op --in IN.h5 --out OUT.h5 [--backend cpu|cuda] [--topk RHO] [--kl FRAC] [--blkq N]
 *        [--blkk N] [--feature softmax|elu|relu] [--variant complement|all]
 * IN.h5: q, k, v float [B,H,N,D]; optional do [B,H,N,D] (then the backward runs too), proj_w
 * [D,D] and proj_b [D] (zero when absent, as at initialisation), lut int [B,H,Tm,kappa] (imposes
 * the critical blocks: each row kappa distinct ascending indices in 0..Tn-1). float16/float64
 * inputs are converted to float32. OUT.h5: o [B,H,N,D], lse [B,H,N] (natural log), lut int32
 * [B,H,Tm,kappa], and with do: dq, dk, dv [B,H,N,D], dproj_w [D,D], dproj_b [D]; the options and
 * derived sizes are root attributes. The CUDA backend runs on bf16 copies (proj in fp32) and its
 * results are written as float32.
 * Exit 0 on success; 2 on any bad input (flag, file, dataset, dtype, shape, lut) with one line
 * "sla-op: <sentence>" on stderr; 1 on an internal failure. OUT.h5 is written to OUT.h5.tmp and
 * renamed only when complete, so a failed run never creates or modifies OUT.h5.
 * This is how SLA is checked against other implementations from Python (h5py). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "cli.h"
#include "h5_tensor.h"
#include "ops.h"


typedef struct options {
    const char *in, *out;
    device_t device;
    sla_config_t cfg;
} options_t;

/* Host tensors: float32 data, int32 lut. */
typedef struct inputs {
    tensor_t q, k, v, dout, proj_w, proj_b, lut;
    int have_dout, have_lut;
} inputs_t;

typedef struct outputs {
    tensor_t o, lse, lut, dq, dk, dv, dproj_w, dproj_b;
} outputs_t;

#define die(...) cli_die("sla-op", CLI_EXIT_BAD_INPUT, __VA_ARGS__)

static void print_help(void) {
    sla_config_t d = sla_config_default();
    printf("usage: sla-op --in IN.h5 --out OUT.h5 [options]\n"
           "Runs SLA (sparse-linear attention) forward on q, k, v from IN.h5, and backward when IN.h5\n"
           "holds do, and writes the results to OUT.h5.\n\n"
           "  --in PATH        input HDF5 file (required): q, k, v float32 [B,H,N,D]; optional do\n"
           "                   [B,H,N,D], proj_w [D,D], proj_b [D] (zero when absent), lut int32\n"
           "                   [B,H,Tm,kappa] (imposed critical key blocks, ascending per row)\n"
           "  --out PATH       output HDF5 file (required): o, lse [B,H,N], lut; with do also dq, dk,\n"
           "                   dv, dproj_w, dproj_b; written to PATH.tmp, renamed when complete\n"
           "  --backend NAME   cpu or cuda (default cpu)\n"
           "  --topk RHO       kept ratio of key blocks, in (0, 1] (default %g)\n"
           "  --kl FRAC        negligible fraction of key blocks, in [0, 1) (default %g)\n"
           "  --blkq N         query block size, a positive integer (default %d)\n"
           "  --blkk N         key block size, a positive integer (default %d)\n"
           "  --feature NAME   feature map: softmax, elu or relu (default %s)\n"
           "  --variant NAME   linear branch: complement or all (default %s)\n"
           "  --help           print this and exit\n\n"
           "kappa = max(1, floor(topk * Tn)), Tn = ceil(N / blkk), Tm = ceil(N / blkq).\n"
           "Exit status: 0 success; 2 bad input (one line on stderr, OUT not written); 1 internal error.\n",
           d.topk, d.kl, d.blk_q, d.blk_k, sla_feature_name(d.feature), sla_variant_name(d.variant));
}

/* ---- flags ------------------------------------------------------------------------------- */

static double parse_double(const char *flag, const char *s) {
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end || errno == ERANGE || !isfinite(x)) die("%s: '%s' is not a number", flag, s);
    return x;
}

static int parse_block(const char *flag, const char *s) {
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (end == s || *end || errno == ERANGE) die("%s: '%s' is not an integer (a block size)", flag, s);
    if (x <= 0 || x > INT_MAX) die("%s %s: a block size must be a positive integer", flag, s);
    return (int)x;
}

static void set_option(options_t *o, const char *flag, const char *val) {
    if (!strcmp(flag, "--in")) o->in = val;
    else if (!strcmp(flag, "--out")) o->out = val;
    else if (!strcmp(flag, "--backend")) {
        if (!strcmp(val, "cpu")) o->device = DEVICE_CPU;
        else if (!strcmp(val, "cuda")) o->device = DEVICE_CUDA;
        else die("--backend '%s' is unknown; expected cpu or cuda", val);
    } else if (!strcmp(flag, "--topk")) {
        o->cfg.topk = parse_double(flag, val);
        if (!(o->cfg.topk > 0.0 && o->cfg.topk <= 1.0)) die("--topk %s is outside (0, 1]", val);
    } else if (!strcmp(flag, "--kl")) {
        o->cfg.kl = parse_double(flag, val);
        if (!(o->cfg.kl >= 0.0 && o->cfg.kl < 1.0)) die("--kl %s is outside [0, 1)", val);
    } else if (!strcmp(flag, "--blkq")) o->cfg.blk_q = parse_block(flag, val);
    else if (!strcmp(flag, "--blkk")) o->cfg.blk_k = parse_block(flag, val);
    else if (!strcmp(flag, "--feature")) {
        int f = sla_feature_parse(val);
        if (f < 0) die("--feature '%s' is unknown; expected softmax, elu or relu", val);
        o->cfg.feature = (sla_feature_t)f;
    } else if (!strcmp(flag, "--variant")) {
        int v = sla_variant_parse(val);
        if (v < 0) die("--variant '%s' is unknown; expected complement or all", val);
        o->cfg.variant = (sla_variant_t)v;
    } else die("unknown flag '%s' (see sla-op --help)", flag);
}

static const char *const known_flags[] = {"--in", "--out", "--backend", "--topk", "--kl",
                                        "--blkq", "--blkk", "--feature", "--variant", NULL};

static void on_flag(void *ctx, const char *flag, const char *val) { set_option(ctx, flag, val); }

static void parse_args(int argc, char **argv, options_t *o) {
    memset(o, 0, sizeof *o);
    o->device = DEVICE_CPU;
    o->cfg = sla_config_default();
    cli_parse("sla-op", argc, argv, 1, known_flags, print_help, on_flag, o);
    if (!o->in) die("--in IN.h5 is required (see sla-op --help)");
    if (!o->out) die("--out OUT.h5 is required (see sla-op --help)");
    if (!*o->in || !*o->out) die("--in and --out need a non-empty path");
}

/* The output's directory must exist and be writable: found out before any work is done. */
static void check_out_dir(const char *out) {
    const char *slash = strrchr(out, '/');
    char dir[4096];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else snprintf(dir, sizeof dir, "%.*s", slash == out ? 1 : (int)(slash - out), out);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) die("--out %s: the directory %s does not exist", out, dir);
    if (access(dir, W_OK) != 0) die("--out %s: the directory %s is not writable", out, dir);
}

/* ---- inputs ------------------------------------------------------------------------------ */

static const char *shape_str(int ndim, const int64_t *shape, char *buf, size_t len) {
    tensor_t t = tensor_make(DTYPE_F32, DEVICE_CPU, ndim, shape);
    return tensor_shape_str(&t, buf, len);
}

/* Reads dataset name after checking its type and shape (shape NULL: any extents of rank ndim). */
static void load(const h5_file_t *f, const char *name, dtype_t want, int ndim, const int64_t *shape,
                 const char *layout, tensor_t *t) {
    char err[512], got[128], exp[128];
    h5_info_t info;
    if (h5_dataset_info(f, name, &info, err, sizeof err)) die("%s", err);
    if (want == DTYPE_F32 && !info.is_float)
        die("%s: dataset '%s' is %s, expected float32", f->path, name, info.type_name);
    if (want == DTYPE_I32 && !info.is_int)
        die("%s: dataset '%s' is %s, expected int32", f->path, name, info.type_name);
    int ok = info.ndim == ndim;
    for (int i = 0; ok && shape && i < ndim; i++) ok = info.shape[i] == shape[i];
    shape_str(info.ndim, info.shape, got, sizeof got);
    if (!ok && shape)
        die("%s: dataset '%s' has shape %s, expected %s (%s)", f->path, name, got, shape_str(ndim, shape, exp, sizeof exp),
            layout);
    if (!ok) die("%s: dataset '%s' has shape %s, expected rank %d (%s)", f->path, name, got, ndim, layout);
    if (h5_read_tensor(f, name, want, t, NULL, err, sizeof err)) die("%s", err);
}

static void check_qkv_extents(const h5_file_t *f, const tensor_t *q) {
    char got[128];
    for (int i = 0; i < 4; i++)
        if (q->shape[i] < 1 || q->shape[i] > INT_MAX)
            die("%s: dataset 'q' has shape %s; every extent of [B,H,N,D] must be in 1..%d", f->path,
                tensor_shape_str(q, got, sizeof got), INT_MAX);
}

/* Each lut row: kappa distinct ascending key-block indices in 0..Tn-1. */
static void check_lut_rows(const char *path, const tensor_t *lut, const sla_dims_t *d) {
    const int32_t *p = lut->data;
    int64_t rows = (int64_t)d->B * d->H * d->Tm;
    for (int64_t r = 0; r < rows; r++) {
        int b = (int)(r / ((int64_t)d->H * d->Tm)), h = (int)(r / d->Tm % d->H), i = (int)(r % d->Tm);
        for (int j = 0; j < d->kappa; j++) {
            int32_t x = p[r * d->kappa + j];
            if (x < 0 || x >= d->Tn)
                die("%s: dataset 'lut' row (b=%d, h=%d, i=%d) holds key block %d, expected 0..%d (Tn = %d)", path, b,
                    h, i, x, d->Tn - 1, d->Tn);
            if (j > 0 && x <= p[r * d->kappa + j - 1])
                die("%s: dataset 'lut' row (b=%d, h=%d, i=%d) is not strictly ascending (%d after %d); each row "
                    "must hold kappa distinct ascending key-block indices",
                    path, b, h, i, x, p[r * d->kappa + j - 1]);
        }
    }
}

static tensor_t zeros(int ndim, const int64_t *shape) {
    tensor_t t = tensor_alloc(DTYPE_F32, DEVICE_CPU, ndim, shape);
    memset(t.data, 0, tensor_bytes(&t));
    return t;
}

/* Reads and validates everything in IN.h5; fills dims. Returns 1 when kappa was clamped. */
static int read_inputs(const options_t *o, inputs_t *in, sla_dims_t *dims) {
    char err[512], lay[160];
    h5_file_t f;
    memset(in, 0, sizeof *in);
    if (h5_open_read(o->in, &f, err, sizeof err)) die("%s", err);
    load(&f, "q", DTYPE_F32, 4, NULL, "[B,H,N,D]", &in->q);
    check_qkv_extents(&f, &in->q);
    const int64_t *s = in->q.shape, D = s[3];
    load(&f, "k", DTYPE_F32, 4, s, "[B,H,N,D] like q", &in->k);
    load(&f, "v", DTYPE_F32, 4, s, "[B,H,N,D] like q", &in->v);
    if ((in->have_dout = h5_exists(&f, "do"))) load(&f, "do", DTYPE_F32, 4, s, "[B,H,N,D] like q", &in->dout);
    if (h5_exists(&f, "proj_w")) load(&f, "proj_w", DTYPE_F32, 2, (int64_t[]){D, D}, "[D,D]", &in->proj_w);
    else in->proj_w = zeros(2, (int64_t[]){D, D});
    if (h5_exists(&f, "proj_b")) load(&f, "proj_b", DTYPE_F32, 1, (int64_t[]){D}, "[D]", &in->proj_b);
    else in->proj_b = zeros(1, (int64_t[]){D});

    int clamped = 0;
    if (sla_dims_make(&o->cfg, (int)s[0], (int)s[1], (int)s[2], (int)D, dims, &clamped, err, sizeof err))
        die("%s: %s", o->in, err);
    if ((in->have_lut = h5_exists(&f, "lut"))) {
        snprintf(lay, sizeof lay, "[B,H,Tm,kappa] (N = %d, --blkq %d, --blkk %d, --topk %g)", dims->N, dims->blk_q,
                 dims->blk_k, o->cfg.topk);
        int64_t ls[4] = {dims->B, dims->H, dims->Tm, dims->kappa};
        load(&f, "lut", DTYPE_I32, 4, ls, lay, &in->lut);
        check_lut_rows(o->in, &in->lut, dims);
    }
    h5_close(&f, err, sizeof err);
    return clamped;
}

static void free_inputs(inputs_t *in) {
    tensor_t *all[] = {&in->q, &in->k, &in->v, &in->dout, &in->proj_w, &in->proj_b, &in->lut};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) tensor_free(all[i]);
}

/* ---- compute ----------------------------------------------------------------------------- */

static tensor_t upload(const tensor_t *host, dtype_t dtype, device_t dev) {
    tensor_t t = tensor_alloc(dtype, dev, host->ndim, host->shape);
    tensor_copy(&t, host);
    return t;
}

static tensor_t download(const tensor_t *dev, dtype_t dtype) {
    tensor_t t = tensor_alloc(dtype, DEVICE_CPU, dev->ndim, dev->shape);
    tensor_copy(&t, dev);
    return t;
}

/* Runs the op on o->device (CPU: fp32; CUDA: bf16 activations, fp32 proj) and returns host results. */
static void run_sla(const options_t *o, const sla_dims_t *d, const inputs_t *in, outputs_t *out) {
    device_t dev = o->device;
    dtype_t act = dev == DEVICE_CPU ? DTYPE_F32 : DTYPE_BF16;
    tensor_t q = upload(&in->q, act, dev), k = upload(&in->k, act, dev), v = upload(&in->v, act, dev);
    tensor_t w = upload(&in->proj_w, DTYPE_F32, dev), b = upload(&in->proj_b, DTYPE_F32, dev);
    tensor_t od = tensor_alloc(act, dev, 4, in->q.shape);
    sla_saved_t saved;
    sla_saved_alloc(&saved, d, dev);
    if (in->have_lut) tensor_copy(&saved.lut, &in->lut);
    sla_forward(&o->cfg, d, &q, &k, &v, &w, &b, in->have_lut, &od, &saved);
    memset(out, 0, sizeof *out);
    out->o = download(&od, DTYPE_F32);
    out->lse = download(&saved.lse, DTYPE_F32);
    out->lut = download(&saved.lut, DTYPE_I32);
    if (in->have_dout) {
        tensor_t g = upload(&in->dout, act, dev);
        tensor_t dq = tensor_alloc(act, dev, 4, q.shape), dk = tensor_alloc(act, dev, 4, q.shape);
        tensor_t dv = tensor_alloc(act, dev, 4, q.shape);
        tensor_t dw = tensor_alloc(DTYPE_F32, dev, 2, w.shape), db = tensor_alloc(DTYPE_F32, dev, 1, b.shape);
        sla_backward(&o->cfg, d, &q, &k, &v, &w, &saved, &g, &dq, &dk, &dv, &dw, &db);
        out->dq = download(&dq, DTYPE_F32);
        out->dk = download(&dk, DTYPE_F32);
        out->dv = download(&dv, DTYPE_F32);
        out->dproj_w = download(&dw, DTYPE_F32);
        out->dproj_b = download(&db, DTYPE_F32);
        tensor_t *grads[] = {&g, &dq, &dk, &dv, &dw, &db};
        for (size_t i = 0; i < sizeof grads / sizeof *grads; i++) tensor_free(grads[i]);
    }
    tensor_t *all[] = {&q, &k, &v, &w, &b, &od};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) tensor_free(all[i]);
    sla_saved_free(&saved);
}

/* ---- outputs ----------------------------------------------------------------------------- */

static int write_attrs(h5_file_t *f, const options_t *o, const sla_dims_t *d, const inputs_t *in, int clamped,
                       char *err, size_t len) {
    const sla_config_t *c = &o->cfg;
    const char *sv[][2] = {{"tool", "sla-op"},
                           {"backend", device_name(o->device)},
                           {"feature", sla_feature_name(c->feature)},
                           {"variant", sla_variant_name(c->variant)}};
    for (size_t i = 0; i < sizeof sv / sizeof *sv; i++)
        if (h5_write_attr_string(f, "/", sv[i][0], sv[i][1], err, len)) return -1;
    if (h5_write_attr_double(f, "/", "topk", c->topk, err, len) || h5_write_attr_double(f, "/", "kl", c->kl, err, len))
        return -1;
    struct { const char *name; int64_t v; } iv[] = {
        {"blkq", d->blk_q}, {"blkk", d->blk_k},      {"B", d->B},
        {"H", d->H},        {"N", d->N},             {"D", d->D},
        {"Tm", d->Tm},      {"Tn", d->Tn},           {"kappa", d->kappa},
        {"n_negl", d->n_negl}, {"kappa_clamped", clamped}, {"lut_given", in->have_lut},
        {"backward", in->have_dout}};
    for (size_t i = 0; i < sizeof iv / sizeof *iv; i++)
        if (h5_write_attr_int(f, "/", iv[i].name, iv[i].v, err, len)) return -1;
    return 0;
}

static void write_outputs(const options_t *o, const sla_dims_t *d, const inputs_t *in, const outputs_t *out,
                          int clamped) {
    char err[512];
    h5_file_t f;
    if (h5_create_temp(o->out, &f, err, sizeof err)) die("%s", err);
    struct { const char *name; const tensor_t *t; } ds[] = {
        {"o", &out->o},   {"lse", &out->lse}, {"lut", &out->lut},         {"dq", &out->dq},
        {"dk", &out->dk}, {"dv", &out->dv},   {"dproj_w", &out->dproj_w}, {"dproj_b", &out->dproj_b}};
    size_t n = in->have_dout ? 8 : 3;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) rc = h5_write_tensor(&f, ds[i].name, ds[i].t, 1, err, sizeof err);
    if (rc == 0) rc = write_attrs(&f, o, d, in, clamped, err, sizeof err);
    if (rc) {
        h5_abort(&f);
        die("%s", err);
    }
    if (h5_commit(&f, err, sizeof err)) die("%s", err);
}

int main(int argc, char **argv) {
    options_t opt;
    parse_args(argc, argv, &opt);
    if (opt.device == DEVICE_CUDA && !ops_cuda_available())
        die("--backend cuda: no CUDA device is available (or this build has no CUDA backend); use --backend cpu");
    inputs_t in;
    sla_dims_t dims;
    check_out_dir(opt.out);
    int clamped = read_inputs(&opt, &in, &dims);
    outputs_t out;
    run_sla(&opt, &dims, &in, &out);
    write_outputs(&opt, &dims, &in, &out, clamped);
    /* After success only, so that a failing run prints exactly one line. */
    if (clamped)
        fprintf(stderr, "sla-op: warning: --topk %g keeps floor(%g * %d) = 0 of Tn = %d key blocks; kappa is set to 1\n",
                opt.cfg.topk, opt.cfg.topk, dims.Tn, dims.Tn);
    tensor_t *all[] = {&out.o, &out.lse, &out.lut, &out.dq, &out.dk, &out.dv, &out.dproj_w, &out.dproj_b};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) tensor_free(all[i]);
    free_inputs(&in);
    return 0;
}
