/* train/sla_demo.c — the main job until the trainer exists: SLA against dense attention.
 *
 * sla-demo [--backend cpu|cuda] [--topk RHO] [--n N] [--heads H] [--dim D] [--blkq N] [--blkk N]
 *          [--structure A] [--length L] [--reps R] [--seed S]
 * Makes random, video-like Q/K/V (CPU default B=1, H=2, N=8*12*16=1536, D=64; CUDA default H=12,
 * N=21*30*52=32760, D=128 in bf16), runs SLA forward and backward and dense attention forward and
 * backward on the chosen backend (default: CUDA when a device is present), and prints the kept
 * block ratio kappa/Tn, the share of dense attention mass that falls on the kept blocks, the
 * relative error of SLA's o, dq, dk, dv against dense attention, and the median wall time of each
 * part (GPU parts are timed between cuda_sync() calls, after one warm-up).
 * The data has structure so that block selection means something: tokens sit on a frames x rows x
 * columns grid in raster order; Q and K rows share A * g(position) (--structure A), g a random
 * Fourier feature map with g(p).g(p') ~ D exp(-|p-p'|^2 / 2L^2) (--length L, in tokens), plus unit
 * noise, so each query attends mostly to keys near it in space and time. This is synthetic: the
 * printed error says how SLA does on this data, not on a real model's attention.
 * The proj is zero, as in a freshly converted model, so O is the sparse branch alone; the linear
 * branch is still computed and timed. Exit 0 on success, 2 on a bad flag. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "ops.h"
#ifdef SLA_HAVE_CUDA
#include "cuda/cuda_mem.h"
#endif

typedef struct demo_opts {
    device_t device;
    int B, H, N, D, reps;
    int grid_h, grid_w; /* tokens are (frame, row, column) in raster order on a grid_h x grid_w frame */
    double structure, length;
    uint64_t seed;
    sla_config_t cfg;
} demo_opts_t;

static void usage_error(const char *fmt, const char *a, const char *b) {
    fputs("sla-demo: ", stderr);
    fprintf(stderr, fmt, a, b);
    fputs(" (see sla-demo --help)\n", stderr);
    exit(2);
}

static void print_help(void) {
    printf("usage: sla-demo [options]\n"
           "SLA forward+backward against dense attention on random video-like Q/K/V: kept block ratio,\n"
           "error against dense attention, wall time of each part.\n\n"
           "  --backend NAME  cpu or cuda (default cuda when a CUDA device is present, else cpu)\n"
           "  --topk RHO      kept ratio of key blocks, in (0, 1] (default 0.1)\n"
           "  --n N           tokens (default 1536 = 8x12x16 on cpu, 32760 = 21x30x52 on cuda)\n"
           "  --heads H       heads (default 2 on cpu, 12 on cuda)\n"
           "  --dim D         head dim (default 64 on cpu, 128 on cuda)\n"
           "  --blkq N        query block size (default 64 on cpu, 128 on cuda)\n"
           "  --blkk N        key block size (default 32 on cpu, 64 on cuda)\n"
           "  --structure A   weight of the shared positional component of Q and K (default 1.5)\n"
           "  --length L      its correlation length in tokens (default 1.5)\n"
           "  --reps R        timed repetitions, median reported (default 1 on cpu, 5 on cuda)\n"
           "  --seed S        random seed (default 1)\n");
}

static double number(const char *flag, const char *s, double lo, double hi) {
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end || errno || !(x >= lo && x <= hi)) usage_error("%s: '%s' is not a valid value", flag, s);
    return x;
}

static int integer(const char *flag, const char *s, int lo, int hi) {
    double x = number(flag, s, lo, hi);
    if (x != floor(x)) usage_error("%s: '%s' is not an integer", flag, s);
    return (int)x;
}

static void parse(int argc, char **argv, demo_opts_t *o) {
    memset(o, 0, sizeof *o);
    o->device = ops_cuda_available() ? DEVICE_CUDA : DEVICE_CPU;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) print_help(), exit(0);
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--backend")) {
            if (!strcmp(argv[i + 1], "cpu")) o->device = DEVICE_CPU;
            else if (!strcmp(argv[i + 1], "cuda")) o->device = DEVICE_CUDA;
            else usage_error("--backend '%s' is unknown; expected cpu or cuda%s", argv[i + 1], "");
        }
    int gpu = o->device == DEVICE_CUDA;
    o->cfg = sla_config_default();
    o->cfg.topk = 0.1, o->cfg.blk_q = gpu ? 128 : 64, o->cfg.blk_k = gpu ? 64 : 32;
    o->B = 1, o->H = gpu ? 12 : 2, o->N = gpu ? 21 * 30 * 52 : 8 * 12 * 16, o->D = gpu ? 128 : 64;
    o->grid_h = gpu ? 30 : 12, o->grid_w = gpu ? 52 : 16;
    o->reps = gpu ? 5 : 1, o->structure = 1.5, o->length = 1.5, o->seed = 1;
    for (int i = 1; i < argc; i += 2) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage_error("%s needs a value%s", f, "");
        if (!strcmp(f, "--backend")) continue;
        else if (!strcmp(f, "--topk")) o->cfg.topk = number(f, v, 1e-9, 1.0);
        else if (!strcmp(f, "--n")) o->N = integer(f, v, 1, 1 << 24);
        else if (!strcmp(f, "--heads")) o->H = integer(f, v, 1, 1024);
        else if (!strcmp(f, "--dim")) o->D = integer(f, v, 1, 512);
        else if (!strcmp(f, "--blkq")) o->cfg.blk_q = integer(f, v, 1, 1 << 20);
        else if (!strcmp(f, "--blkk")) o->cfg.blk_k = integer(f, v, 1, 1 << 20);
        else if (!strcmp(f, "--structure")) o->structure = number(f, v, 0, 100);
        else if (!strcmp(f, "--length")) o->length = number(f, v, 1e-3, 1e6);
        else if (!strcmp(f, "--reps")) o->reps = integer(f, v, 1, 1000);
        else if (!strcmp(f, "--seed")) o->seed = (uint64_t)integer(f, v, 0, 1 << 30);
        else usage_error("unknown flag '%s'%s", f, "");
    }
    if (o->device == DEVICE_CUDA && !ops_cuda_available())
        usage_error("--backend cuda: no CUDA device is available (or this build has no CUDA backend)%s%s", "", "");
}

/* ---- data -------------------------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double gaussian(uint64_t *s) {
    double u1 = ((splitmix(s) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (splitmix(s) >> 11) * (1.0 / 9007199254740992.0);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static tensor_t host_tensor(int ndim, const int64_t *shape) { return tensor_alloc(DTYPE_F32, DEVICE_CPU, ndim, shape); }

static void fill_gaussian(tensor_t *t, uint64_t *s) {
    float *p = t->data;
    for (int64_t i = 0; i < tensor_numel(t); i++) p[i] = (float)gaussian(s);
}

/* q, k [B,H,N,D] = A * g(position) + unit noise, where g is a random Fourier feature map of the
 * token's (frame, row, column) position: g(p) . g(p') ~ D exp(-|p - p'|^2 / (2 l^2)), so each
 * query attends mostly to keys near it in space and time, as in a video DiT. */
static void fill_structured(const demo_opts_t *o, tensor_t *q, tensor_t *k, uint64_t *s) {
    int D = o->D;
    double *w = xmalloc(sizeof(double) * 3 * (size_t)D), *phase = xmalloc(sizeof(double) * (size_t)D);
    float *qp = q->data, *kp = k->data;
    for (int bh = 0; bh < o->B * o->H; bh++) {
        for (int c = 0; c < D; c++) {
            for (int a = 0; a < 3; a++) w[3 * c + a] = gaussian(s) / o->length;
            phase[c] = 6.283185307179586 * (splitmix(s) >> 11) * (1.0 / 9007199254740992.0);
        }
        for (int64_t t = 0; t < o->N; t++) {
            double x = (double)(t % o->grid_w), y = (double)(t / o->grid_w % o->grid_h);
            double f = (double)(t / ((int64_t)o->grid_w * o->grid_h));
            size_t row = ((size_t)bh * o->N + (size_t)t) * D;
            for (int c = 0; c < D; c++) {
                double g = 1.4142135623730951 * cos(w[3 * c] * f + w[3 * c + 1] * y + w[3 * c + 2] * x + phase[c]);
                qp[row + c] = (float)(o->structure * g + gaussian(s));
                kp[row + c] = (float)(o->structure * g + gaussian(s));
            }
        }
    }
    free(w), free(phase);
}

/* ---- timing ------------------------------------------------------------------------------ */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void device_sync(device_t dev) {
#ifdef SLA_HAVE_CUDA
    if (dev == DEVICE_CUDA) cuda_sync();
#else
    (void)dev;
#endif
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* ---- the run ----------------------------------------------------------------------------- */

typedef struct device_set {
    tensor_t q, k, v, g, w, b;            /* inputs */
    tensor_t o, dq, dk, dv, dw, db;       /* SLA outputs */
    tensor_t od, lsed, dqd, dkd, dvd;     /* dense outputs */
    sla_saved_t saved;
} device_set_t;

static tensor_t upload(const tensor_t *h, dtype_t dt, device_t dev) {
    tensor_t t = tensor_alloc(dt, dev, h->ndim, h->shape);
    tensor_copy(&t, h);
    return t;
}

static tensor_t download(const tensor_t *t) {
    tensor_t h = host_tensor(t->ndim, t->shape);
    tensor_copy(&h, t);
    return h;
}

static void setup(const demo_opts_t *o, const sla_dims_t *d, device_set_t *s) {
    int64_t shp[4] = {o->B, o->H, o->N, o->D}, wd[2] = {o->D, o->D}, bd[1] = {o->D}, ld[3] = {o->B, o->H, o->N};
    device_t dev = o->device;
    dtype_t act = dev == DEVICE_CPU ? DTYPE_F32 : DTYPE_BF16;
    uint64_t seed = o->seed * 0x2545f4914f6cdd1dull + 7;
    tensor_t q = host_tensor(4, shp), k = host_tensor(4, shp), v = host_tensor(4, shp), g = host_tensor(4, shp);
    tensor_t w = host_tensor(2, wd), b = host_tensor(1, bd);
    fill_structured(o, &q, &k, &seed);
    fill_gaussian(&v, &seed), fill_gaussian(&g, &seed);
    memset(w.data, 0, tensor_bytes(&w)), memset(b.data, 0, tensor_bytes(&b));
    s->q = upload(&q, act, dev), s->k = upload(&k, act, dev), s->v = upload(&v, act, dev), s->g = upload(&g, act, dev);
    s->w = upload(&w, DTYPE_F32, dev), s->b = upload(&b, DTYPE_F32, dev);
    tensor_t *hs[] = {&q, &k, &v, &g, &w, &b};
    for (int i = 0; i < 6; i++) tensor_free(hs[i]);
    s->o = tensor_alloc(act, dev, 4, shp), s->dq = tensor_alloc(act, dev, 4, shp);
    s->dk = tensor_alloc(act, dev, 4, shp), s->dv = tensor_alloc(act, dev, 4, shp);
    s->dw = tensor_alloc(DTYPE_F32, dev, 2, wd), s->db = tensor_alloc(DTYPE_F32, dev, 1, bd);
    s->od = tensor_alloc(act, dev, 4, shp), s->lsed = tensor_alloc(DTYPE_F32, dev, 3, ld);
    s->dqd = tensor_alloc(act, dev, 4, shp), s->dkd = tensor_alloc(act, dev, 4, shp), s->dvd = tensor_alloc(act, dev, 4, shp);
    sla_saved_alloc(&s->saved, d, dev);
}

static void teardown(device_set_t *s) {
    tensor_t *all[] = {&s->q, &s->k, &s->v, &s->g, &s->w, &s->b, &s->o, &s->dq, &s->dk,
                       &s->dv, &s->dw, &s->db, &s->od, &s->lsed, &s->dqd, &s->dkd, &s->dvd};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) tensor_free(all[i]);
    sla_saved_free(&s->saved);
}

enum { PART_SLA_FWD, PART_SLA_BWD, PART_DENSE_FWD, PART_DENSE_BWD, N_PARTS };

static void run_part(int part, const demo_opts_t *o, const sla_dims_t *d, device_set_t *s) {
    switch (part) {
    case PART_SLA_FWD: sla_forward(&o->cfg, d, &s->q, &s->k, &s->v, &s->w, &s->b, 0, &s->o, &s->saved); break;
    case PART_SLA_BWD:
        sla_backward(&o->cfg, d, &s->q, &s->k, &s->v, &s->w, &s->saved, &s->g, &s->dq, &s->dk, &s->dv, &s->dw, &s->db);
        break;
    case PART_DENSE_FWD: attn_forward(&s->q, &s->k, &s->v, &s->od, &s->lsed); break;
    case PART_DENSE_BWD: attn_backward(&s->q, &s->k, &s->v, &s->od, &s->lsed, &s->g, &s->dqd, &s->dkd, &s->dvd); break;
    }
}

/* Median seconds of each part over reps (after one warm-up on the GPU). */
static void time_parts(const demo_opts_t *o, const sla_dims_t *d, device_set_t *s, double *secs) {
    double *t = xmalloc(sizeof(double) * (size_t)o->reps);
    if (o->device == DEVICE_CUDA)
        for (int p = 0; p < N_PARTS; p++) run_part(p, o, d, s);
    for (int p = 0; p < N_PARTS; p++) {
        for (int r = 0; r < o->reps; r++) {
            device_sync(o->device);
            double t0 = now_s();
            run_part(p, o, d, s);
            device_sync(o->device);
            t[r] = now_s() - t0;
        }
        secs[p] = median(t, o->reps);
    }
    free(t);
}

/* ||a - b|| / ||b|| over two device tensors (downloaded as float32). */
static double rel_error(const tensor_t *a, const tensor_t *b) {
    tensor_t x = download(a), y = download(b);
    double num = 0, den = 0;
    const float *p = x.data, *q = y.data;
    for (int64_t i = 0; i < tensor_numel(&x); i++) {
        double e = (double)p[i] - q[i];
        num += e * e, den += (double)q[i] * q[i];
    }
    tensor_free(&x), tensor_free(&y);
    return sqrt(num / (den > 0 ? den : 1));
}

/* Share of each row's dense softmax mass on its critical keys: exp(lse_sla - lse_dense). */
static void kept_mass(const tensor_t *lse_sla, const tensor_t *lse_dense, double *mean, double *min) {
    tensor_t x = download(lse_sla), y = download(lse_dense);
    const float *p = x.data, *q = y.data;
    int64_t n = tensor_numel(&x);
    double sum = 0;
    *min = 1;
    for (int64_t i = 0; i < n; i++) {
        double m = exp((double)p[i] - q[i]);
        sum += m;
        if (m < *min) *min = m;
    }
    *mean = sum / (double)n;
    tensor_free(&x), tensor_free(&y);
}

static void report(const demo_opts_t *o, const sla_dims_t *d, device_set_t *s, const double *secs) {
    double mass, mass_min;
    kept_mass(&s->saved.lse, &s->lsed, &mass, &mass_min);
    double ratio = (double)d->kappa / d->Tn;
    printf("  blocks: Tm %d, Tn %d, kappa %d -> kept block ratio kappa/Tn = %.4f (sparsity %.1f%%)\n", d->Tm, d->Tn,
           d->kappa, ratio, 100 * (1 - ratio));
    printf("  proj = 0 (as at conversion): O is the sparse branch; the linear branch is computed but adds nothing\n");
    printf("  dense attention mass on the kept blocks: mean %.4f, min %.4f\n", mass, mass_min);
    printf("  relative error vs dense (||sla - dense|| / ||dense||): o %.4g, dq %.4g, dk %.4g, dv %.4g\n",
           rel_error(&s->o, &s->od), rel_error(&s->dq, &s->dqd), rel_error(&s->dk, &s->dkd),
           rel_error(&s->dv, &s->dvd));
    double flops = 4.0 * o->N * (double)o->N * o->D * o->B * o->H; /* dense forward */
    const char *names[N_PARTS] = {"sla forward", "sla backward", "dense forward", "dense backward"};
    const double mult[N_PARTS] = {1.0, 2.5, 1.0, 2.5};
    printf("  time (median of %d%s):\n", o->reps, o->device == DEVICE_CUDA ? ", after a warm-up" : "");
    for (int p = 0; p < N_PARTS; p++)
        printf("    %-15s %10.3f ms  (%.3g dense-equivalent TFLOP/s)\n", names[p], 1e3 * secs[p],
               mult[p] * flops / secs[p] * 1e-12);
    printf("  speed-up of SLA over dense: forward %.2fx, backward %.2fx, forward+backward %.2fx\n",
           secs[PART_DENSE_FWD] / secs[PART_SLA_FWD], secs[PART_DENSE_BWD] / secs[PART_SLA_BWD],
           (secs[PART_DENSE_FWD] + secs[PART_DENSE_BWD]) / (secs[PART_SLA_FWD] + secs[PART_SLA_BWD]));
}

int main(int argc, char **argv) {
    demo_opts_t o;
    parse(argc, argv, &o);
    sla_dims_t d;
    int clamped;
    char err[256];
    if (sla_dims_make(&o.cfg, o.B, o.H, o.N, o.D, &d, &clamped, err, sizeof err)) {
        fprintf(stderr, "sla-demo: %s\n", err);
        return 2;
    }
    printf("sla-demo: backend %s (%s), B %d, H %d, N %d, D %d, blkq %d, blkk %d, topk %g, %s/%s, structure %g, length %g\n",
           device_name(o.device), o.device == DEVICE_CUDA ? "bf16 data, fp32 accumulation" : "fp32 data, fp64 sums",
           o.B, o.H, o.N, o.D, d.blk_q, d.blk_k, o.cfg.topk, sla_feature_name(o.cfg.feature),
           sla_variant_name(o.cfg.variant), o.structure, o.length);
    if (clamped) printf("  note: floor(topk * Tn) = 0, so kappa is clamped to 1\n");
    fflush(stdout);
    device_set_t s;
    setup(&o, &d, &s);
    double secs[N_PARTS];
    time_parts(&o, &d, &s, secs);
    report(&o, &d, &s, secs);
    teardown(&s);
    return 0;
}
