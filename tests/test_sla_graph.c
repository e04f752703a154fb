/* tests/test_sla_graph.c — the SLA operator and dense attention captured in a CUDA graph (label
 * gpu; exit 77 without a GPU). After one eager call (which sizes the backend's workspace), the
 * forward and backward of SLA (complement, kl > 0) and of dense attention are captured on a
 * non-default stream and replayed twice; every output must be bit-identical to the eager call's:
 * no host synchronisation or allocation hides inside the ops, and they are deterministic. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "test_util.h"

#ifdef SLA_HAVE_CUDA
#include <cuda_runtime.h>

#include "cuda/cuda_mem.h"

#define CK(call)                                                                          \
    do {                                                                                  \
        cudaError_t e_ = (call);                                                          \
        if (e_ != cudaSuccess) {                                                          \
            fprintf(stderr, "FAIL %s: %s\n", #call, cudaGetErrorString(e_));              \
            exit(1);                                                                      \
        }                                                                                 \
    } while (0)

enum { B = 1, H = 2, N = 1000, D = 64, NOUT = 9 };

typedef struct io {
    tensor_t q, k, v, g, pw, pb, o, dq, dk, dv, dpw, dpb, ao, alse, adq, adk, adv;
    sla_saved_t saved;
} io_t;

static tensor_t random_tensor(test_rng_t *r, dtype_t dt, int ndim, const int64_t *shape, double scale) {
    tensor_t h = tensor_alloc(DTYPE_F32, DEVICE_CPU, ndim, shape), d = tensor_alloc(dt, DEVICE_CUDA, ndim, shape);
    fill_normal_f32(r, h.data, tensor_numel(&h), scale);
    tensor_copy(&d, &h);
    tensor_free(&h);
    return d;
}

static void run_ops(const sla_config_t *cfg, const sla_dims_t *d, io_t *x) {
    sla_forward(cfg, d, &x->q, &x->k, &x->v, &x->pw, &x->pb, 0, &x->o, &x->saved);
    sla_backward(cfg, d, &x->q, &x->k, &x->v, &x->pw, &x->saved, &x->g, &x->dq, &x->dk, &x->dv, &x->dpw, &x->dpb);
    attn_forward(&x->q, &x->k, &x->v, &x->ao, &x->alse);
    attn_backward(&x->q, &x->k, &x->v, &x->ao, &x->alse, &x->g, &x->adq, &x->adk, &x->adv);
}

/* Host copies of the outputs, concatenated as bytes. */
static unsigned char *snapshot(io_t *x, size_t *bytes) {
    tensor_t *outs[] = {&x->o, &x->dq, &x->dk, &x->dv, &x->dpw, &x->dpb, &x->adq, &x->adk, &x->adv};
    size_t total = 0;
    for (int i = 0; i < NOUT; i++) total += tensor_bytes(outs[i]);
    unsigned char *buf = malloc(total), *p = buf;
    for (int i = 0; i < NOUT; i++) {
        cuda_mem_download(p, outs[i]->data, tensor_bytes(outs[i]));
        p += tensor_bytes(outs[i]);
    }
    *bytes = total;
    return buf;
}

int main(void) {
    if (!ops_cuda_available()) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    sla_config_t cfg = sla_config_default();
    cfg.topk = 0.2, cfg.kl = 0.2, cfg.blk_q = 128, cfg.blk_k = 64;
    sla_dims_t d;
    char err[256];
    if (sla_dims_make(&cfg, B, H, N, D, &d, NULL, err, sizeof err)) return 1;
    test_rng_t r = {99};
    int64_t s[4] = {B, H, N, D}, sl[3] = {B, H, N}, w[2] = {D, D}, b[1] = {D};
    io_t x;
    x.q = random_tensor(&r, DTYPE_BF16, 4, s, 1), x.k = random_tensor(&r, DTYPE_BF16, 4, s, 1);
    x.v = random_tensor(&r, DTYPE_BF16, 4, s, 1), x.g = random_tensor(&r, DTYPE_BF16, 4, s, 1);
    x.pw = random_tensor(&r, DTYPE_F32, 2, w, 0.1), x.pb = random_tensor(&r, DTYPE_F32, 1, b, 0.1);
    tensor_t *acts[] = {&x.o, &x.dq, &x.dk, &x.dv, &x.ao, &x.adq, &x.adk, &x.adv};
    for (int i = 0; i < 8; i++) *acts[i] = tensor_alloc(DTYPE_BF16, DEVICE_CUDA, 4, s);
    x.alse = tensor_alloc(DTYPE_F32, DEVICE_CUDA, 3, sl);
    x.dpw = tensor_alloc(DTYPE_F32, DEVICE_CUDA, 2, w), x.dpb = tensor_alloc(DTYPE_F32, DEVICE_CUDA, 1, b);
    sla_saved_alloc(&x.saved, &d, DEVICE_CUDA);

    cudaStream_t stream;
    CK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    cuda_set_stream(stream);
    run_ops(&cfg, &d, &x); /* eager: sizes the workspaces */
    cuda_sync();
    size_t n0, n1;
    unsigned char *eager = snapshot(&x, &n0);

    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    run_ops(&cfg, &d, &x);
    CK(cudaStreamEndCapture(stream, &graph));
    CK(cudaGraphInstantiate(&exec, graph, 0));
    for (int rep = 0; rep < 2; rep++) {
        for (int i = 0; i < 8; i++) tensor_zero(acts[i]); /* poison: the replay must write everything */
        cuda_sync();
        CK(cudaGraphLaunch(exec, stream));
        CK(cudaStreamSynchronize(stream));
        unsigned char *replay = snapshot(&x, &n1);
        EXPECT(n0 == n1 && !memcmp(eager, replay, n0), "graph replay %d differs from the eager call", rep);
        free(replay);
    }
    size_t nodes = 0;
    CK(cudaGraphGetNodes(graph, NULL, &nodes));
    printf("captured SLA fwd+bwd and dense attention fwd+bwd: %zu graph nodes; replays bit-identical to eager\n", nodes);
    CK(cudaGraphExecDestroy(exec));
    CK(cudaGraphDestroy(graph));
    cuda_set_stream(NULL);
    free(eager);
    return test_summary("test_sla_graph");
}
#else
int main(void) {
    printf("built without CUDA: skipped\n");
    return 77;
}
#endif
