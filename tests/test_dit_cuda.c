/* tests/test_dit_cuda.c — the CUDA DiT against the CPU DiT (label gpu; exit 77 without a GPU).
 *
 * On the tiny and small presets with SLA (Wan's initialisation plus noise on every parameter, so
 * the head, biases and SLA's proj are live) and inputs whose sizes are not multiples of the kernels' tiles, the CUDA model's
 * prediction and every parameter gradient are compared with the CPU model's (fp32 data, fp64
 * math). The bf16 rule of DESIGN.md, at model scale: the reference error is that of the CPU model
 * run on bf16-rounded parameters and inputs; the CUDA error may be at most 4x that (the CUDA
 * model also rounds every activation to bf16, not just the inputs) plus 1e-4 relative L2 (1e-2 for
 * the key biases, whose gradient is a cancellation residue: see the comment in compare()).
 * Also: recomputation on the GPU gives bit-identical gradients, and two backward passes give
 * bit-identical gradients (no atomics). */
#include <stdlib.h>
#include <string.h>

#include "dit.h"
#include "test_util.h"

typedef struct run {
    float *pred, *grads;
} run_t;

static void round_bf16(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = bf16_to_f32(f32_to_bf16(x[i]));
}

/* Runs forward + backward on device dev with the given host parameters and inputs. */
static run_t run_model(const model_config_t *c, device_t dev, int recompute, const float *params, int B, int F, int H,
                       int W, int Lt, const float *lat, const float *t, const float *text, const float *g, int twice,
                       int *bit_same) {
    char err[256];
    dit_t m;
    if (dit_init(&m, c, dev, B, F, H, W, recompute, err, sizeof err)) {
        fprintf(stderr, "dit_init: %s\n", err);
        exit(1);
    }
    int64_t ls[5] = {B, 16, F, H, W};
    tensor_t hl = tensor_make(DTYPE_F32, DEVICE_CPU, 5, ls), ht = tensor_make(DTYPE_F32, DEVICE_CPU, 1, (int64_t[]){B});
    tensor_t hx = tensor_make(DTYPE_F32, DEVICE_CPU, 3, (int64_t[]){B, Lt, c->text_dim}), hg = hl;
    tensor_t hp = tensor_make(DTYPE_F32, DEVICE_CPU, 1, (int64_t[]){(int64_t)m.table.total});
    hl.data = (void *)lat, ht.data = (void *)t, hx.data = (void *)text, hg.data = (void *)g, hp.data = (void *)params;
    tensor_t dl = tensor_alloc(DTYPE_F32, dev, 5, ls), dt = tensor_alloc(DTYPE_F32, dev, 1, (int64_t[]){B});
    tensor_t dx = tensor_alloc(DTYPE_F32, dev, 3, hx.shape), dg = tensor_alloc(DTYPE_F32, dev, 5, ls);
    tensor_t dp = tensor_alloc(DTYPE_F32, dev, 5, ls);
    tensor_copy(&dl, &hl), tensor_copy(&dt, &ht), tensor_copy(&dx, &hx), tensor_copy(&dg, &hg);
    tensor_copy(&m.params, &hp);
    dit_params_changed(&m);
    dit_forward(&m, &dl, &dt, &dx, &dp);
    dit_zero_grads(&m);
    dit_backward(&m, &dg);
    run_t r;
    size_t n = (size_t)B * 16 * F * H * W;
    r.pred = malloc(sizeof(float) * n), r.grads = malloc(sizeof(float) * m.table.total);
    tensor_t op = tensor_make(DTYPE_F32, DEVICE_CPU, 5, ls), og = hp;
    op.data = r.pred, og.data = r.grads;
    tensor_copy(&op, &dp), tensor_copy(&og, &m.grads);
    if (twice) {
        float *again = malloc(sizeof(float) * m.table.total);
        dit_zero_grads(&m);
        dit_backward(&m, &dg);
        og.data = again;
        tensor_copy(&og, &m.grads);
        *bit_same = !memcmp(again, r.grads, sizeof(float) * m.table.total);
        free(again);
    }
    tensor_free(&dl), tensor_free(&dt), tensor_free(&dx), tensor_free(&dg), tensor_free(&dp);
    dit_free(&m);
    return r;
}

/* Relative L2 error of a against reference b over n elements. */
static double rel_l2(const float *a, const float *b, size_t n) {
    double e = 0, r = 0;
    for (size_t i = 0; i < n; i++) e += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), r += (double)b[i] * b[i];
    return sqrt(e / (r + 1e-300));
}

static void compare(const char *preset, int F, int H, int W) {
    model_config_t c;
    char err[256];
    model_config_preset(preset, &c, err, sizeof err);
    c.sla.topk = 0.3, c.sla.blk_q = 64, c.sla.blk_k = 64;
    if (c.dim / c.heads < 64) c.heads = c.dim / 64; /* the CUDA attention kernels take head dims 64 and 128 */
    int B = 2, Lt = c.text_len - 3;
    param_table_t t;
    param_table_build(&c, &t, err, sizeof err);
    test_rng_t r = {11};
    float *p = malloc(sizeof(float) * t.total);
    /* Wan's initialisation, plus N(0, 0.02^2) everywhere so that the zero-initialised tensors (the
     * head, biases, SLA's proj) are live and every path carries gradient. */
    param_table_init(&t, 3, p);
    for (size_t i = 0; i < t.total; i++) p[i] += (float)(0.02 * rng_normal(&r));
    size_t nl = (size_t)B * 16 * F * H * W, nx = (size_t)B * Lt * c.text_dim;
    float *lat = malloc(sizeof(float) * nl), *g = malloc(sizeof(float) * nl), *text = malloc(sizeof(float) * nx);
    float tt[2] = {917.0f, 42.0f};
    fill_normal_f32(&r, lat, (long)nl, 1.0), fill_normal_f32(&r, g, (long)nl, 1.0), fill_normal_f32(&r, text, (long)nx, 1.0);
    int same = 0, same_rc = 0;
    run_t cpu = run_model(&c, DEVICE_CPU, 0, p, B, F, H, W, Lt, lat, tt, text, g, 0, NULL);
    run_t gpu = run_model(&c, DEVICE_CUDA, 0, p, B, F, H, W, Lt, lat, tt, text, g, 1, &same);
    run_t gpu_rc = run_model(&c, DEVICE_CUDA, 1, p, B, F, H, W, Lt, lat, tt, text, g, 0, NULL);
    same_rc = !memcmp(gpu.grads, gpu_rc.grads, sizeof(float) * t.total);
    round_bf16(p, t.total), round_bf16(lat, nl), round_bf16(text, nx);
    run_t ref = run_model(&c, DEVICE_CPU, 0, p, B, F, H, W, Lt, lat, tt, text, g, 0, NULL);
    double e_pred = rel_l2(gpu.pred, cpu.pred, nl), r_pred = rel_l2(ref.pred, cpu.pred, nl);
    EXPECT(e_pred <= 4 * r_pred + 1e-4, "%s pred: CUDA rel L2 %.2e, bf16-input reference %.2e", preset, e_pred, r_pred);
    printf("%s [%d,16,%d,%d,%d]: pred rel L2 %.2e (bf16-input reference %.2e)\n", preset, B, F, H, W, e_pred, r_pred);
    int bad = 0;
    double worst = 0;
    const char *worst_name = "-";
    for (int i = 0; i < t.count; i++) {
        const param_info_t *pi = &t.p[i];
        double e = rel_l2(gpu.grads + pi->offset, cpu.grads + pi->offset, (size_t)pi->numel);
        double rr = rel_l2(ref.grads + pi->offset, cpu.grads + pi->offset, (size_t)pi->numel);
        /* A key bias shifts every key of a query by the same amount before the RMSNorm, and softmax
         * ignores such shifts: its gradient is the small residue of large terms that cancel, and
         * the bf16 rounding of dS inside the attention backward (as in FlashAttention and cuDNN)
         * does not cancel. Those tensors get a floor of 1e-2 relative L2 instead of 1e-4. */
        double floor = strstr(pi->name, ".k.bias") ? 1e-2 : 1e-4;
        if (e > 4 * rr + floor) {
            bad++;
            fprintf(stderr, "  %s grad %s: CUDA rel L2 %.2e, reference %.2e\n", preset, pi->name, e, rr);
        }
        if (e / (4 * rr + floor) > worst) worst = e / (4 * rr + floor), worst_name = pi->name;
    }
    EXPECT(bad == 0, "%s: %d of %d parameter gradients outside the bf16 rule", preset, bad, t.count);
    EXPECT(same, "%s: two backward passes on the GPU differ", preset);
    EXPECT(same_rc, "%s: recomputation changed the GPU gradients", preset);
    printf("%s: %d gradients, worst error / bound %.2f (%s); reruns bit-identical %d; recompute bit-identical %d\n",
           preset, t.count, worst, worst_name, same, same_rc);
    free(cpu.pred), free(cpu.grads), free(gpu.pred), free(gpu.grads), free(gpu_rc.pred), free(gpu_rc.grads);
    free(ref.pred), free(ref.grads), free(p), free(lat), free(g), free(text);
    param_table_free(&t);
}

int main(void) {
    if (!ops_cuda_available()) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    compare("tiny", 3, 10, 14);  /* 105 tokens: not a multiple of the 64-token blocks */
    compare("small", 2, 10, 14); /* 70 tokens */
    return test_summary("test_dit_cuda");
}
