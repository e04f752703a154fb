/* tests/bench/sla_bench.c — build/bin/sla-bench: times the CUDA SLA operator (label bench, never
 * in the default test run).
 *
 * Shapes: B=1 H=12 N=32760 D=128 (Wan2.1 480p), B=1 H=24 N=32760 D=64, B=1 H=12 N=75600 D=128
 * (720p); rho = 0.05, 0.10 and 1.0 (dense mode: every block critical, linear branch empty);
 * complement variant, softmax feature map, blk_q 128, blk_k 64, random bf16 inputs.
 * For each: median over many CUDA-event-timed runs (after warm-up) of the block map, forward,
 * backward and forward+backward; real TF/s (4 D x keys visited per query row forward, 2.5x that
 * backward) and dense-equivalent TF/s (4 N^2 D B H forward, 2.5x backward).
 * After the timings of each case, one forward and backward run with SLA_CUDA_TIMING set prints the
 * backend's phase breakdown to stderr.
 * Usage: sla-bench [--quick] [--csv FILE] [--profile RHO]   (--quick: the 480p shape only, fewer
 * runs; --profile: nothing timed, two forward + backward calls of the 480p shape at that rho, for
 * running under ncu or compute-sanitizer). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SLA_HAVE_CUDA
#include <cuda_runtime.h>

#include "cuda/cuda_mem.h"
#include "cuda/sla_cuda_ext.h"
#endif
#include "check.h"
#include "ops.h"

#ifdef SLA_HAVE_CUDA
#define CK(call)                                                                                  \
    do {                                                                                          \
        cudaError_t e_ = (call);                                                                  \
        CHECK(e_ == cudaSuccess, "CUDA: %s", cudaGetErrorString(e_));                             \
    } while (0)

static int cmp_f(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

typedef enum { WHAT_SELECT, WHAT_FWD, WHAT_BWD, WHAT_BOTH, WHAT_ATTN_FWD, WHAT_ATTN_BWD } what_t;

typedef struct {
    sla_config_t cfg;
    sla_dims_t d;
    tensor_t q, k, v, o, g, dq, dk, dv, w, b, dw, db, lse;
    sla_saved_t sv;
} bench_t;

static void run_once(bench_t *x, what_t what) {
    switch (what) {
    case WHAT_SELECT: sla_select_cuda(&x->cfg, &x->d, &x->q, &x->k, 0, &x->sv); break;
    case WHAT_FWD: sla_forward(&x->cfg, &x->d, &x->q, &x->k, &x->v, &x->w, &x->b, 0, &x->o, &x->sv); break;
    case WHAT_BWD:
        sla_backward(&x->cfg, &x->d, &x->q, &x->k, &x->v, &x->w, &x->sv, &x->g, &x->dq, &x->dk, &x->dv, &x->dw, &x->db);
        break;
    case WHAT_BOTH:
        sla_forward(&x->cfg, &x->d, &x->q, &x->k, &x->v, &x->w, &x->b, 0, &x->o, &x->sv);
        sla_backward(&x->cfg, &x->d, &x->q, &x->k, &x->v, &x->w, &x->sv, &x->g, &x->dq, &x->dk, &x->dv, &x->dw, &x->db);
        break;
    case WHAT_ATTN_FWD: attn_forward(&x->q, &x->k, &x->v, &x->o, &x->lse); break;
    case WHAT_ATTN_BWD: attn_backward(&x->q, &x->k, &x->v, &x->o, &x->lse, &x->g, &x->dq, &x->dk, &x->dv); break;
    }
}

static void bench_free(bench_t *x) {
    tensor_t *all[] = {&x->q, &x->k, &x->v, &x->g, &x->o, &x->dq, &x->dk, &x->dv, &x->w, &x->b, &x->dw, &x->db, &x->lse};
    for (unsigned i = 0; i < sizeof all / sizeof all[0]; i++) tensor_free(all[i]);
}

/* Median milliseconds of `what` over adaptive repetitions (about `budget_ms` in total). */
static float time_median(bench_t *x, what_t what, float budget_ms) {
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    run_once(x, what); /* warm-up (and workspace growth) */
    CK(cudaDeviceSynchronize());
    CK(cudaEventRecord(e0, 0));
    run_once(x, what);
    CK(cudaEventRecord(e1, 0));
    CK(cudaEventSynchronize(e1));
    float est;
    CK(cudaEventElapsedTime(&est, e0, e1));
    int reps = (int)(budget_ms / (est > 1e-3f ? est : 1e-3f));
    reps = reps < 5 ? 5 : reps > 50 ? 50 : reps;
    float *t = malloc(sizeof(float) * (unsigned long)reps);
    for (int r = 0; r < reps; r++) {
        CK(cudaEventRecord(e0, 0));
        run_once(x, what);
        CK(cudaEventRecord(e1, 0));
        CK(cudaEventSynchronize(e1));
        CK(cudaEventElapsedTime(&t[r], e0, e1));
    }
    qsort(t, (size_t)reps, sizeof(float), cmp_f);
    float med = t[reps / 2];
    free(t);
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
    return med;
}

/* Random bf16 device tensor (uniform in [-2, 2) through a cheap LCG, never zero on average). */
static void fill_random(tensor_t *t, unsigned long long seed) {
    long n = tensor_numel(t);
    float *h = malloc(sizeof(float) * (unsigned long)n);
    unsigned long long s = seed * 6364136223846793005ull + 1442695040888963407ull;
    for (long i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        h[i] = (float)((double)(s >> 11) * (4.0 / 9007199254740992.0) - 2.0);
    }
    tensor_t ht = tensor_make(DTYPE_F32, DEVICE_CPU, t->ndim, t->shape);
    ht.data = h;
    tensor_copy(t, &ht);
    free(h);
}
#endif

int main(int argc, char **argv) {
#ifndef SLA_HAVE_CUDA
    (void)argc, (void)argv;
    fprintf(stderr, "sla-bench: built without the CUDA backend\n");
    return 77;
#else
    int quick = 0;
    double profile_rho = 0.0;
    const char *csv = NULL;
    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--csv") && i + 1 < argc) csv = argv[++i];
        else if (!strcmp(argv[i], "--profile") && i + 1 < argc) {
            profile_rho = strtod(argv[++i], &end);
            if (end == argv[i] || *end || !(profile_rho > 0.0 && profile_rho <= 1.0)) {
                fprintf(stderr, "sla-bench: --profile takes a rho in (0, 1], got '%s'\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "sla-bench: bad argument '%s'\nusage: sla-bench [--quick] [--csv FILE] [--profile RHO in (0, 1]]\n",
                    argv[i]);
            return 2;
        }
    }
    if (!ops_cuda_available()) {
        fprintf(stderr, "sla-bench: no CUDA device\n");
        return 77;
    }
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("sla-bench on %s (%d SMs, L2 %d MB)\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);
    FILE *fc = csv ? fopen(csv, "w") : NULL;
    if (csv) CHECK(fc, "sla-bench: cannot write %s", csv);
    if (fc) fprintf(fc, "B,H,N,D,rho,kappa,map_ms,fwd_ms,bwd_ms,total_ms,fwd_tfs_real,fwd_tfs_dense,bwd_tfs_real,"
                        "bwd_tfs_dense,total_tfs_dense,attn_fwd_ms,attn_bwd_ms\n");
    const int shapes[3][4] = {{1, 12, 32760, 128}, {1, 24, 32760, 64}, {1, 12, 75600, 128}};
    const double rhos[3] = {0.05, 0.10, 1.0};
    const float budget = quick ? 300.f : 1500.f;
    char lines[16][256];
    int nl = 0;
    for (int s = 0; s < (quick ? 1 : 3); s++) {
        const int B = shapes[s][0], H = shapes[s][1], N = shapes[s][2], D = shapes[s][3];
        bench_t x;
        memset(&x, 0, sizeof x);
        int64_t shp[4] = {B, H, N, D}, wsh[2] = {D, D}, bsh[1] = {D}, lsh[3] = {B, H, N};
        x.q = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, shp), x.k = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, shp);
        x.v = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, shp), x.g = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, shp);
        x.o = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, shp), x.dq = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, shp);
        x.dk = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, shp), x.dv = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, shp);
        x.w = tensor_alloc(DTYPE_F32, DEVICE_CUDA, 2, wsh), x.b = tensor_alloc(DTYPE_F32, DEVICE_CUDA, 1, bsh);
        x.dw = tensor_alloc(DTYPE_F32, DEVICE_CUDA, 2, wsh), x.db = tensor_alloc(DTYPE_F32, DEVICE_CUDA, 1, bsh);
        x.lse = tensor_alloc(DTYPE_F32, DEVICE_CUDA, 3, lsh);
        fill_random(&x.q, 1), fill_random(&x.k, 2), fill_random(&x.v, 3), fill_random(&x.g, 4);
        fill_random(&x.w, 5), fill_random(&x.b, 6);
        if (profile_rho > 0.0) { /* two untimed forward + backward calls, then stop */
            x.cfg = sla_config_default();
            x.cfg.topk = profile_rho;
            char err[256];
            CHECK(sla_dims_make(&x.cfg, B, H, N, D, &x.d, NULL, err, sizeof err) == 0, "%s", err);
            sla_saved_alloc(&x.sv, &x.d, DEVICE_CUDA);
            for (int r = 0; r < 2; r++) run_once(&x, WHAT_BOTH);
            CK(cudaDeviceSynchronize());
            printf("sla-bench --profile %.3f: B%d H%d N%d D%d kappa %d, two forward + backward calls done\n",
                   profile_rho, B, H, N, D, x.d.kappa);
            sla_saved_free(&x.sv);
            bench_free(&x);
            return 0;
        }
        /* Dense attention through the same flash kernels (the anchor our dense mode is held to). */
        float attn_f = time_median(&x, WHAT_ATTN_FWD, budget), attn_b = time_median(&x, WHAT_ATTN_BWD, budget);
        const double dense = 4.0 * (double)N * N * D * B * H;
        printf("B%d H%d N%d D%d dense attention (own kernels): fwd %.3f ms (%.0f TF/s), bwd %.3f ms (%.0f TF/s)\n",
               B, H, N, D, attn_f, dense / attn_f * 1e-9, attn_b, 2.5 * dense / attn_b * 1e-9);
        for (int r = 0; r < 3; r++) {
            x.cfg = sla_config_default();
            x.cfg.topk = rhos[r];
            char err[256];
            CHECK(sla_dims_make(&x.cfg, B, H, N, D, &x.d, NULL, err, sizeof err) == 0, "%s", err);
            sla_saved_alloc(&x.sv, &x.d, DEVICE_CUDA);
            float tm = time_median(&x, WHAT_SELECT, budget), tf = time_median(&x, WHAT_FWD, budget);
            float tb = time_median(&x, WHAT_BWD, budget), tt = time_median(&x, WHAT_BOTH, budget);
            /* One more forward and backward with the backend's phase timer on (stderr). */
            setenv("SLA_CUDA_TIMING", "1", 1);
            fprintf(stderr, "B%d H%d N%d D%d rho %.2f phases (ms):\n", B, H, N, D, rhos[r]);
            run_once(&x, WHAT_BOTH);
            CK(cudaDeviceSynchronize());
            unsetenv("SLA_CUDA_TIMING");
            /* Keys visited per query row: kappa blocks, the last one partial when kept. */
            const double real = 4.0 * (double)N * ((double)x.d.kappa * x.d.blk_k) * D * B * H;
            printf("B%d H%d N%d D%d rho %.2f kappa %d: map %.3f ms, fwd %.3f ms (%.0f real / %.0f dense-eq TF/s), "
                   "bwd %.3f ms (%.0f / %.0f), fwd+bwd %.3f ms (%.0f dense-eq TF/s); workspace %.0f MB\n",
                   B, H, N, D, rhos[r], x.d.kappa, tm, tf, real / tf * 1e-9, dense / tf * 1e-9, tb,
                   2.5 * real / tb * 1e-9, 2.5 * dense / tb * 1e-9, tt, 3.5 * dense / tt * 1e-9,
                   sla_cuda_workspace_bytes() / 1048576.0);
            fflush(stdout);
            snprintf(lines[nl++], sizeof lines[0], "| %2d | %2d | %5d | %3d | %4.2f | %4d | %7.3f | %8.3f | %8.3f | %8.3f | %4.0f / %4.0f | %4.0f / %4.0f |",
                     B, H, N, D, rhos[r], x.d.kappa, tm, tf, tb, tt, real / tf * 1e-9, dense / tf * 1e-9,
                     2.5 * real / tb * 1e-9, 2.5 * dense / tb * 1e-9);
            if (fc)
                fprintf(fc, "%d,%d,%d,%d,%.2f,%d,%.4f,%.4f,%.4f,%.4f,%.1f,%.1f,%.1f,%.1f,%.1f,%.4f,%.4f\n", B, H, N, D,
                        rhos[r], x.d.kappa, tm, tf, tb, tt, real / tf * 1e-9, dense / tf * 1e-9,
                        2.5 * real / tb * 1e-9, 2.5 * dense / tb * 1e-9, 3.5 * dense / tt * 1e-9, attn_f, attn_b);
            sla_saved_free(&x.sv);
        }
        snprintf(lines[nl++], sizeof lines[0], "| %2d | %2d | %5d | %3d | dense attn | | | %8.3f | %8.3f | %8.3f | %4.0f | %4.0f |",
                 B, H, N, D, attn_f, attn_b, attn_f + attn_b, dense / attn_f * 1e-9, 2.5 * dense / attn_b * 1e-9);
        bench_free(&x);
    }
    if (fc) fclose(fc);
    printf("\n| B | H | N | D | rho | kappa | map ms | fwd ms | bwd ms | fwd+bwd ms | fwd TF/s real / dense-eq | bwd TF/s real / dense-eq |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < nl; i++) printf("%s\n", lines[i]);
    return 0;
#endif
}
