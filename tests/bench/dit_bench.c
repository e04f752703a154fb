/* tests/bench/dit_bench.c — `dit-bench`: one training step (forward + backward) of a whole DiT on
 * the GPU, dense attention against SLA in the same run (label bench; exit 77 without a GPU).
 *
 * dit-bench [--model wan2.1-1.3b] [--frames 21 --height 60 --width 104] [--batch 1] [--topk 0.05]
 *           [--reps 3] [--no-recompute] [--only dense|sla]
 * Prints per configuration: median step time over reps (after one warm-up step), the share of
 * it spent in attention (the attention ops one layer runs in a step, timed alone on the same
 * shapes, x layers: the self-attention forward and backward, once each also under recompute,
 * which keeps each layer's self-attention; the cross-attention forward, twice under recompute,
 * and backward), peak device memory (total minus the lowest free seen), and model FLOP
 * utilisation as the issue defines it:
 * (6 x params x tokens + attention flops) / time / 989 TF/s (H100 dense bf16), with the attention
 * flops of a dense model (4 N^2 D H per layer forward, 2.5x that backward; self- and
 * cross-attention) and no credit for recomputation; for SLA the same numerator gives a
 * dense-equivalent figure. Random weights and inputs (never zeros). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cuda/cuda_mem.h"
#include "dit.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct result {
    double step_ms, peak_gb, mfu, attn_tflop, attn_ms;
} result_t;

static tensor_t random_bf16(int ndim, const int64_t *shape, unsigned salt) {
    tensor_t h = tensor_alloc(DTYPE_F32, DEVICE_CPU, ndim, shape), d = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, ndim, shape);
    float *x = h.data;
    for (int64_t i = 0; i < tensor_numel(&h); i++) x[i] = (float)(((i * 2654435761u + salt) % 2001) / 1000.0 - 1.0);
    tensor_copy(&d, &h);
    tensor_free(&h);
    return d;
}

/* Milliseconds the attention of one layer takes inside a step, timed alone on the same shapes
 * (median of 5): the self-attention (SLA or dense) forward + backward, once each (recompute keeps
 * its result and does not re-run it), and the dense cross-attention to the text, forward (again
 * in the backward's re-run of the block under recompute) + backward. */
static double layer_attention_ms(const model_config_t *c, int B, int L, int recompute) {
    int H = c->heads, D = c->dim / c->heads, Lt = c->text_len;
    int64_t s[4] = {B, H, L, D}, st[4] = {B, H, Lt, D}, sl[3] = {B, H, L};
    tensor_t q = random_bf16(4, s, 1), k = random_bf16(4, s, 2), v = random_bf16(4, s, 3), g = random_bf16(4, s, 4);
    tensor_t kt = random_bf16(4, st, 5), vt = random_bf16(4, st, 6);
    tensor_t o = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, s), dq = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, s);
    tensor_t dk = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, s), dv = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, s);
    tensor_t dkt = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, st), dvt = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, st);
    tensor_t lse = tensor_alloc(DTYPE_F32, DEVICE_CUDA, 3, sl), co = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, s);
    tensor_t clse = tensor_alloc(DTYPE_F32, DEVICE_CUDA, 3, sl);
    tensor_t pw = tensor_alloc(DTYPE_F32, DEVICE_CUDA, 2, (int64_t[]){D, D}), pb = tensor_alloc(DTYPE_F32, DEVICE_CUDA, 1, (int64_t[]){D});
    tensor_t dpw = tensor_alloc(DTYPE_F32, DEVICE_CUDA, 2, (int64_t[]){D, D}), dpb = tensor_alloc(DTYPE_F32, DEVICE_CUDA, 1, (int64_t[]){D});
    tensor_zero(&pw), tensor_zero(&pb);
    sla_dims_t d;
    sla_saved_t saved;
    char err[256];
    int sla = c->attention == ATTENTION_SLA;
    if (sla) {
        sla_dims_make(&c->sla, B, H, L, D, &d, NULL, err, sizeof err);
        sla_saved_alloc(&saved, &d, DEVICE_CUDA);
    }
    double t[6];
    for (int r = 0; r < 6; r++) {
        cuda_sync();
        double t0 = now_s();
        if (sla) sla_forward(&c->sla, &d, &q, &k, &v, &pw, &pb, 0, &o, &saved);
        else attn_forward(&q, &k, &v, &o, &lse);
        for (int pass = 0; pass < 1 + (recompute ? 1 : 0); pass++) attn_forward(&q, &kt, &vt, &co, &clse);
        if (sla) sla_backward(&c->sla, &d, &q, &k, &v, &pw, &saved, &g, &dq, &dk, &dv, &dpw, &dpb);
        else attn_backward(&q, &k, &v, &o, &lse, &g, &dq, &dk, &dv);
        attn_backward(&q, &kt, &vt, &co, &clse, &g, &dq, &dkt, &dvt);
        cuda_sync();
        t[r] = now_s() - t0;
    }
    qsort(t + 1, 5, sizeof(double), cmp_double);
    if (sla) sla_saved_free(&saved);
    tensor_t *all[] = {&q, &k, &v, &g, &kt, &vt, &o, &dq, &dk, &dv, &dkt, &dvt, &lse, &co, &clse, &pw, &pb, &dpw, &dpb};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tensor_free(all[i]);
    return 1e3 * t[3];
}

static result_t bench(const model_config_t *c, int B, int F, int H, int W, int recompute, int reps) {
    char err[512];
    size_t free0, total, free_now, free_min;
    cuda_mem_info(&free0, &total);
    free_min = free0;
    dit_t m;
    if (dit_init(&m, c, DEVICE_CUDA, B, F, H, W, recompute ? DIT_TRAIN_RECOMPUTE : DIT_TRAIN, err, sizeof err)) {
        fprintf(stderr, "dit-bench: %s\n", err);
        exit(2);
    }
    float *hp = malloc(sizeof(float) * m.table.total);
    param_table_init(&m.table, 1, hp);
    for (size_t i = 0; i < m.table.total; i += 7) hp[i] += 1e-3f; /* head and SLA proj nonzero */
    tensor_t h = tensor_make(DTYPE_F32, DEVICE_CPU, 1, m.params.shape);
    h.data = hp;
    tensor_copy(&m.params, &h);
    dit_params_changed(&m);
    free(hp);
    int64_t ls[5] = {B, 16, F, H, W};
    tensor_t lat = tensor_alloc(DTYPE_F32, DEVICE_CUDA, 5, ls), g = tensor_alloc(DTYPE_F32, DEVICE_CUDA, 5, ls);
    tensor_t pred = tensor_alloc(DTYPE_F32, DEVICE_CUDA, 5, ls), t = tensor_alloc(DTYPE_F32, DEVICE_CUDA, 1, (int64_t[]){B});
    tensor_t text = tensor_alloc(DTYPE_F32, DEVICE_CUDA, 3, (int64_t[]){B, c->text_len, c->text_dim});
    tensor_t *fill[4] = {&lat, &g, &t, &text};
    for (int k = 0; k < 4; k++) {
        int64_t n = tensor_numel(fill[k]);
        float *x = malloc(sizeof(float) * n);
        for (int64_t i = 0; i < n; i++) x[i] = (float)((i * 2654435761u % 1000) / 1000.0 - 0.5) * (k == 2 ? -1000 : 1);
        tensor_t hx = tensor_make(DTYPE_F32, DEVICE_CPU, fill[k]->ndim, fill[k]->shape);
        hx.data = x;
        tensor_copy(fill[k], &hx);
        free(x);
    }
    double *times = malloc(sizeof(double) * (reps + 1));
    for (int r = 0; r <= reps; r++) {
        cuda_sync();
        double t0 = now_s();
        dit_forward(&m, &lat, &t, &text, &pred);
        dit_zero_grads(&m);
        dit_backward(&m, &g);
        cuda_sync();
        times[r] = now_s() - t0;
        cuda_mem_info(&free_now, &total);
        if (free_now < free_min) free_min = free_now;
    }
    qsort(times + 1, (size_t)reps, sizeof(double), cmp_double);
    result_t res;
    res.step_ms = 1e3 * times[1 + reps / 2];
    res.peak_gb = (double)(total - free_min) / 1e9;
    double tokens = (double)B * m.L, D = (double)c->dim / c->heads, Lt = c->text_len;
    double self = 4.0 * m.L * (double)m.L * D * c->heads * B, cross = 4.0 * m.L * Lt * D * c->heads * B;
    double per_layer = (self + cross) * (1.0 + 2.5);
    res.attn_tflop = per_layer * c->layers / 1e12;
    double lin_flops = 6.0 * (double)param_table_numel(&m.table) * tokens;
    res.mfu = (lin_flops + per_layer * c->layers) / (res.step_ms * 1e-3) / 989e12;
    free(times);
    res.attn_ms = layer_attention_ms(c, B, m.L, recompute) * c->layers;
    tensor_free(&lat), tensor_free(&g), tensor_free(&pred), tensor_free(&t), tensor_free(&text);
    dit_free(&m);
    return res;
}

int main(int argc, char **argv) {
    const char *preset = "wan2.1-1.3b";
    int F = 21, H = 60, W = 104, B = 1, reps = 3, recompute = 1;
    const char *only = NULL; /* one configuration alone (e.g. under a profiler), no comparison table */
    double topk = 0.05;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-recompute")) recompute = 0;
        else if (v && !strcmp(a, "--model")) preset = v, i++;
        else if (v && !strcmp(a, "--frames")) F = atoi(v), i++;
        else if (v && !strcmp(a, "--height")) H = atoi(v), i++;
        else if (v && !strcmp(a, "--width")) W = atoi(v), i++;
        else if (v && !strcmp(a, "--batch")) B = atoi(v), i++;
        else if (v && !strcmp(a, "--reps")) reps = atoi(v), i++;
        else if (v && !strcmp(a, "--topk")) topk = atof(v), i++;
        else if (v && !strcmp(a, "--only") && (!strcmp(v, "dense") || !strcmp(v, "sla"))) only = v, i++;
        else {
            fprintf(stderr, "dit-bench: unknown or incomplete argument '%s'\n", a);
            return 2;
        }
    }
    if (!ops_cuda_available()) {
        printf("dit-bench: no CUDA device: skipped\n");
        return 77;
    }
    model_config_t c;
    char err[256];
    if (model_config_preset(preset, &c, err, sizeof err)) {
        fprintf(stderr, "dit-bench: %s\n", err);
        return 2;
    }
    c.sla.topk = topk, c.sla.blk_q = 128, c.sla.blk_k = 64;
    model_config_t dense = c;
    dense.attention = ATTENTION_DENSE;
    printf("dit-bench: %s, latents [%d,16,%d,%d,%d], recompute %d, %d reps (median)\n", preset, B, F, H, W, recompute,
           reps);
    if (only) {
        result_t r = bench(!strcmp(only, "sla") ? &c : &dense, B, F, H, W, recompute, reps);
        printf("%s: step %.1f ms, attention %.0f ms, peak %.1f GB, MFU %.1f%%\n", only, r.step_ms, r.attn_ms,
               r.peak_gb, 100 * r.mfu);
        return 0;
    }
    result_t rd = bench(&dense, B, F, H, W, recompute, reps);
    result_t rs = bench(&c, B, F, H, W, recompute, reps);
    printf("| attention | step ms | speed-up | attention share | peak GB | MFU |\n");
    printf("|---|---|---|---|---|---|\n");
    printf("| dense | %.1f | 1.00 | %.0f%% | %.1f | %.1f%% |\n", rd.step_ms, 100 * rd.attn_ms / rd.step_ms, rd.peak_gb,
           100 * rd.mfu);
    printf("| SLA topk %.2f | %.1f | %.2f | %.0f%% | %.1f | %.1f%% (dense-equivalent) |\n", topk, rs.step_ms,
           rd.step_ms / rs.step_ms, 100 * rs.attn_ms / rs.step_ms, rs.peak_gb, 100 * rs.mfu);
    printf("attention (self + cross, forward + backward%s) per step: dense %.0f ms, SLA %.0f ms; model flops per "
           "step %.0f TFLOP of which attention %.0f\n", recompute ? " + recomputed cross forward" : "", rd.attn_ms,
           rs.attn_ms, rd.mfu * rd.step_ms * 1e-3 * 989, rd.attn_tflop);
    return 0;
}
