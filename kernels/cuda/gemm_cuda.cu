/* kernels/cuda/gemm_cuda.cu — linear layers on the GPU: y = x w^T + b through cuBLASLt (bias fused
 * as its epilogue), dx = dy w and dw += dy^T x through cuBLASLt, db += column sums of dy. The
 * backward of the feed-forward's second linear also applies the GELU derivative in cuBLASLt's
 * DGELU epilogue (dpre = (dy w) gelu'(pre)); where cuBLASLt has no such kernel the same result
 * comes from the plain GEMM and gelu_backward.
 *
 * Inputs bf16 with fp32 compute (tensor cores), or fp32 with fp32 compute (no TF32: Wan runs the
 * time-embedding MLP in fp32). dw and db are fp32 and accumulated (+=, beta = 1); dx and y are
 * overwritten. cuBLASLt's choice per shape is cached; where it offers no algorithm (odd leading
 * dimensions or alignments) the same product goes through cublasGemmEx and a bias kernel.
 * Row-major tensors are handed to the column-major library as their transposes: y^T = w x^T. */
#include <cublasLt.h>
#include <cublas_v2.h>
#include <string.h>

#include "cuda_mem.h"
#include "nn_cuda.h"
#include "nn_cuda_common.cuh"

#define CUBLAS_CHECK(call)                                                                       \
    do {                                                                                         \
        cublasStatus_t st_ = (call);                                                             \
        CHECK(st_ == CUBLAS_STATUS_SUCCESS, "cuBLAS: %s failed with status %d", #call, (int)st_); \
    } while (0)

#define LT_WORKSPACE_BYTES ((size_t)32 << 20)
#define LT_CACHE_SIZE 128

static cublasLtHandle_t lt_handle;
static cublasHandle_t blas_handle;
static void *lt_workspace;

static void gemm_init(void) {
    if (lt_handle) return;
    CUBLAS_CHECK(cublasLtCreate(&lt_handle));
    CUBLAS_CHECK(cublasCreate(&blas_handle));
    lt_workspace = cuda_mem_alloc(LT_WORKSPACE_BYTES);
}

/* What the epilogue does after C = op(A) op(B) + beta C (+ bias). */
enum gemm_epi {
    EPI_NONE,
    EPI_DGELU /* C = result * gelu'(aux) */
};

/* C [m, n] (column-major, ldc) = op(A) op(B) + beta C (+ bias[m] along columns), then epi with
 * aux [m, n] (ld ldc, C's dtype). */
typedef struct gemm {
    cublasOperation_t ta, tb;
    int m, n, k, lda, ldb, ldc;
    cudaDataType_t ab_type, c_type;
    const void *A, *B, *bias;
    void *C;
    float beta;
    int epi;
    void *aux;
} gemm_t;

typedef struct lt_key {
    int ta, tb, m, n, k, lda, ldb, ldc, ab_type, c_type, beta_nonzero, has_bias, epi;
    uint32_t align_a, align_b, align_c, align_aux;
} lt_key_t;

typedef struct lt_entry {
    lt_key_t key;
    int usable; /* 0: cuBLASLt had no algorithm, use the fallback */
    cublasLtMatmulAlgo_t algo;
} lt_entry_t;

static lt_entry_t lt_cache[LT_CACHE_SIZE];
static int lt_cache_used, lt_cache_next;

static uint32_t pointer_alignment(const void *p) {
    uintptr_t a = (uintptr_t)p;
    uint32_t al = 256;
    while (al > 1 && a % al) al >>= 1;
    return al;
}

static lt_key_t make_key(const gemm_t *g) {
    lt_key_t k;
    memset(&k, 0, sizeof k); /* padding too: keys are compared with memcmp */
    k.ta = g->ta, k.tb = g->tb, k.m = g->m, k.n = g->n, k.k = g->k;
    k.lda = g->lda, k.ldb = g->ldb, k.ldc = g->ldc, k.ab_type = g->ab_type, k.c_type = g->c_type;
    k.beta_nonzero = g->beta != 0.0f, k.has_bias = g->bias != NULL, k.epi = g->epi;
    k.align_a = pointer_alignment(g->A), k.align_b = pointer_alignment(g->B), k.align_c = pointer_alignment(g->C);
    k.align_aux = g->aux ? pointer_alignment(g->aux) : 0;
    return k;
}

typedef struct lt_descs {
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
} lt_descs_t;

static void lt_descs_make(const gemm_t *g, lt_descs_t *d) {
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&d->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_TRANSA, &g->ta, sizeof g->ta));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_TRANSB, &g->tb, sizeof g->tb));
    cublasLtEpilogue_t epi = g->epi == EPI_DGELU ? CUBLASLT_EPILOGUE_DGELU
                             : g->bias            ? CUBLASLT_EPILOGUE_BIAS
                                                  : CUBLASLT_EPILOGUE_DEFAULT;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
    if (g->bias) /* bias dtype = C's dtype (the default) */
        CUBLAS_CHECK(
            cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g->bias, sizeof g->bias));
    if (g->epi != EPI_NONE) {
        int64_t ld = g->ldc;
        int32_t aux_type = g->c_type;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &g->aux,
                                                    sizeof g->aux));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof ld));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE, &aux_type,
                                                    sizeof aux_type));
    }
    int ta = g->ta == CUBLAS_OP_T, tb = g->tb == CUBLAS_OP_T;
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d->a, g->ab_type, ta ? g->k : g->m, ta ? g->m : g->k, g->lda));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d->b, g->ab_type, tb ? g->n : g->k, tb ? g->k : g->n, g->ldb));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d->c, g->c_type, g->m, g->n, g->ldc));
}

static void lt_descs_free(lt_descs_t *d) {
    cublasLtMatrixLayoutDestroy(d->a);
    cublasLtMatrixLayoutDestroy(d->b);
    cublasLtMatrixLayoutDestroy(d->c);
    cublasLtMatmulDescDestroy(d->op);
}

/* The cached entry for g, asking cuBLASLt's heuristic on a miss. */
static const lt_entry_t *lt_lookup(const gemm_t *g, const lt_descs_t *d) {
    lt_key_t key = make_key(g);
    for (int i = 0; i < lt_cache_used; i++)
        if (memcmp(&lt_cache[i].key, &key, sizeof key) == 0) return &lt_cache[i];
    lt_entry_t *e = &lt_cache[lt_cache_next];
    lt_cache_next = (lt_cache_next + 1) % LT_CACHE_SIZE;
    if (lt_cache_used < LT_CACHE_SIZE) lt_cache_used++;
    memset(e, 0, sizeof *e);
    e->key = key;
    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = LT_WORKSPACE_BYTES;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &key.align_a,
                                                      sizeof key.align_a));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &key.align_b,
                                                      sizeof key.align_b));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &key.align_c,
                                                      sizeof key.align_c));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &key.align_c,
                                                      sizeof key.align_c));
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt_handle, d->op, d->a, d->b, d->c, d->c, pref, 1, &res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st == CUBLAS_STATUS_SUCCESS && found > 0 && res.state == CUBLAS_STATUS_SUCCESS) {
        e->usable = 1;
        e->algo = res.algo;
    }
    return e;
}

template <class T> __global__ void add_bias_kernel(T *y, const T *b, int64_t n, int N) {
    GRID_STRIDE(i, n) stf(y, i, ldf(y, i) + ldf(b, i % N));
}

static void gemm_fallback(const gemm_t *g) {
    const float alpha = 1.0f;
    CUBLAS_CHECK(cublasSetStream(blas_handle, cuda_stream()));
    CUBLAS_CHECK(cublasGemmEx(blas_handle, g->ta, g->tb, g->m, g->n, g->k, &alpha, g->A, g->ab_type, g->lda, g->B,
                              g->ab_type, g->ldb, &g->beta, g->C, g->c_type, g->ldc, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
    if (!g->bias) return;
    int64_t n = (int64_t)g->m * g->n;
    if (g->c_type == CUDA_R_16BF)
        add_bias_kernel<<<grid_for(n, 256), 256, 0, cuda_stream()>>>((bf16 *)g->C, (const bf16 *)g->bias, n, g->m);
    else
        add_bias_kernel<<<grid_for(n, 256), 256, 0, cuda_stream()>>>((float *)g->C, (const float *)g->bias, n, g->m);
    CUDA_CHECK_LAUNCH();
}

/* Runs g through cuBLASLt; 0 when it has no kernel for it (nothing was written then). */
static int gemm_lt(const gemm_t *g) {
    gemm_init();
    lt_descs_t d;
    lt_descs_make(g, &d);
    const lt_entry_t *e = lt_lookup(g, &d);
    int done = 0;
    if (e->usable) {
        const float alpha = 1.0f;
        cublasStatus_t st = cublasLtMatmul(lt_handle, d.op, &alpha, g->A, d.a, g->B, d.b, &g->beta, g->C, d.c, g->C,
                                           d.c, &e->algo, lt_workspace, LT_WORKSPACE_BYTES, cuda_stream());
        done = st == CUBLAS_STATUS_SUCCESS;
    }
    lt_descs_free(&d);
    return done;
}

/* g without an epilogue (bias aside), through cuBLASLt or else cublasGemmEx. */
static void gemm_run(const gemm_t *g) {
    if (g->m == 0 || g->n == 0) return;
    if (!gemm_lt(g)) gemm_fallback(g);
}

static cudaDataType_t cuda_type(dtype_t dt) { return dt == DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_32F; }

extern "C" void linear_forward_cuda(const tensor_t *x, const tensor_t *w, const tensor_t *b, tensor_t *y) {
    int K = (int)x->shape[x->ndim - 1], N = (int)w->shape[0], M = (int)(tensor_numel(x) / K);
    gemm_t g = {CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, K, K, N, cuda_type(x->dtype), cuda_type(y->dtype),
                w->data, x->data, b ? b->data : NULL, y->data, 0.0f, EPI_NONE, NULL};
    gemm_run(&g);
}

struct bias_grad_f {
    const void *dy;
    int bf;
    int N;
    __device__ void operator()(int, int64_t r, int c, float *v) const {
        int64_t i = r * N + c;
        v[0] = bf ? ldf((const bf16 *)dy, i) : ldf((const float *)dy, i);
    }
};

extern "C" void linear_backward_cuda(const tensor_t *x, const tensor_t *w, const tensor_t *dy, tensor_t *dx,
                                     int dx_accumulate, tensor_t *dw, tensor_t *db) {
    int K = (int)x->shape[x->ndim - 1], N = (int)w->shape[0], M = (int)(tensor_numel(x) / K);
    cudaDataType_t t = cuda_type(x->dtype);
    if (dx) { /* dx^T [K, M] (=, +=) w^T [K, N] dy^T [N, M] */
        gemm_t g = {CUBLAS_OP_N, CUBLAS_OP_N, K, M, N, K, N, K, t, cuda_type(dx->dtype), w->data, dy->data, NULL,
                    dx->data, dx_accumulate ? 1.0f : 0.0f, EPI_NONE, NULL};
        gemm_run(&g);
    }
    if (M > 0) { /* dw^T [K, N] += x^T [K, M] dy [M, N] */
        gemm_t g = {CUBLAS_OP_N, CUBLAS_OP_T, K, N, M, K, N, K, t, CUDA_R_32F, x->data, dy->data, NULL, dw->data, 1.0f,
                    EPI_NONE, NULL};
        gemm_run(&g);
    }
    if (db) colsum<1>(bias_grad_f{dy->data, dy->dtype == DTYPE_BF16, N}, 1, M, N, (float *)db->data, NULL, 1);
}

extern "C" void linear_backward_gelu_input_cuda(const tensor_t *x, const tensor_t *pre, const tensor_t *w,
                                                const tensor_t *dy, tensor_t *dpre, tensor_t *dw, tensor_t *db) {
    int K = (int)x->shape[x->ndim - 1], N = (int)w->shape[0], M = (int)(tensor_numel(x) / K);
    cudaDataType_t t = cuda_type(x->dtype);
    /* dpre^T [K, M] = (w^T [K, N] dy^T [N, M]) gelu'(pre^T) */
    gemm_t g = {CUBLAS_OP_N, CUBLAS_OP_N, K, M, N, K, N, K, t, t, w->data, dy->data, NULL, dpre->data, 0.0f,
                EPI_DGELU, pre->data};
    if (M > 0 && K > 0 && gemm_lt(&g)) {
        linear_backward_cuda(x, w, dy, NULL, 0, dw, db);
        return;
    }
    linear_backward_cuda(x, w, dy, dpre, 0, dw, db);
    gelu_backward_cuda(pre, dpre, dpre);
}
