/* tests/test_sla_op_cuda.c — `sla-op --backend cuda` gives the same files as `--backend cpu`
 * (label gpu; exit 77 without a GPU). Inputs are bf16-representable (so both backends see the
 * same numbers and choose the same blocks), N is a multiple of neither block size, proj and do are
 * random. Every output of the CUDA file must match the CPU file: lut exactly; o, lse, dq, dk, dv,
 * dproj_w, dproj_b within relative RMS 1e-2 (the bf16 storage of q/k/v/o and of the gradients
 * bounds this at a few 2^-9; test_sla_cuda holds the per-kernel bf16-rule checks).
 * argv[1]: the sla-op binary. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5_tensor.h"
#include "ops.h"
#include "test_util.h"

static char dir[] = "/tmp/test_sla_op_cuda_XXXXXX";

static void put(h5_file_t *f, const char *name, int ndim, const int64_t *shape, test_rng_t *r, double scale) {
    char err[512];
    tensor_t t = tensor_alloc(DTYPE_F32, DEVICE_CPU, ndim, shape);
    float *x = t.data;
    for (int64_t i = 0; i < tensor_numel(&t); i++) x[i] = bf16_to_f32(f32_to_bf16((float)(scale * rng_normal(r))));
    if (h5_write_tensor(f, name, &t, 0, err, sizeof err)) fprintf(stderr, "%s\n", err), exit(1);
    tensor_free(&t);
}

static double rel_rms(const tensor_t *a, const tensor_t *b) {
    double e = 0, r = 0;
    const float *x = a->data, *y = b->data;
    for (int64_t i = 0; i < tensor_numel(b); i++) e += (double)(x[i] - y[i]) * (x[i] - y[i]), r += (double)y[i] * y[i];
    return sqrt(e / (r + 1e-300));
}

int main(int argc, char **argv) {
    if (!ops_cuda_available()) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    if (argc < 2 || !mkdtemp(dir)) return 2;
    char in[600], out_cpu[600], out_gpu[600], cmd[2400], err[512];
    snprintf(in, sizeof in, "%s/in.h5", dir);
    snprintf(out_cpu, sizeof out_cpu, "%s/cpu.h5", dir);
    snprintf(out_gpu, sizeof out_gpu, "%s/gpu.h5", dir);
    const int64_t B = 1, H = 3, N = 1000, D = 64;
    test_rng_t r = {2026};
    h5_file_t f;
    if (h5_create(in, &f, err, sizeof err)) return 1;
    int64_t qs[4] = {B, H, N, D};
    put(&f, "q", 4, qs, &r, 1.0), put(&f, "k", 4, qs, &r, 1.0), put(&f, "v", 4, qs, &r, 1.0);
    put(&f, "do", 4, qs, &r, 1.0);
    put(&f, "proj_w", 2, (int64_t[]){D, D}, &r, 0.1), put(&f, "proj_b", 1, (int64_t[]){D}, &r, 0.1);
    h5_close(&f, err, sizeof err);
    const char *opts[] = {"--topk 0.2 --blkq 128 --blkk 64", "--topk 0.3 --kl 0.2 --blkq 64 --blkk 64 --feature elu",
                          "--topk 0.1 --blkq 128 --blkk 64 --variant all --feature relu"};
    const char *names[] = {"o", "lse", "lut", "dq", "dk", "dv", "dproj_w", "dproj_b"};
    for (int c = 0; c < 3; c++) {
        for (int b = 0; b < 2; b++) {
            snprintf(cmd, sizeof cmd, "%s --in %s --out %s --backend %s %s", argv[1], in, b ? out_gpu : out_cpu,
                     b ? "cuda" : "cpu", opts[c]);
            EXPECT(system(cmd) == 0, "'%s' failed", cmd);
        }
        h5_file_t fc, fg;
        if (h5_open_read(out_cpu, &fc, err, sizeof err) || h5_open_read(out_gpu, &fg, err, sizeof err)) {
            EXPECT(0, "%s", err);
            continue;
        }
        printf("%s:", opts[c]);
        for (int i = 0; i < 8; i++) {
            int is_lut = !strcmp(names[i], "lut");
            tensor_t a, g;
            if (h5_read_tensor(&fc, names[i], is_lut ? DTYPE_I32 : DTYPE_F32, &a, NULL, err, sizeof err) ||
                h5_read_tensor(&fg, names[i], is_lut ? DTYPE_I32 : DTYPE_F32, &g, NULL, err, sizeof err)) {
                EXPECT(0, "%s", err);
                continue;
            }
            if (is_lut) {
                EXPECT(tensor_same_shape(&a, &g) && !memcmp(a.data, g.data, tensor_bytes(&a)), "%s: lut differs", opts[c]);
            } else {
                double e = rel_rms(&g, &a);
                EXPECT(e <= 1e-2, "%s: %s relative RMS %.2e", opts[c], names[i], e);
                printf(" %s %.1e", names[i], e);
            }
            tensor_free(&a), tensor_free(&g);
        }
        printf("\n");
        h5_close(&fc, err, sizeof err), h5_close(&fg, err, sizeof err);
        unlink(out_cpu), unlink(out_gpu);
    }
    unlink(in), rmdir(dir);
    return test_summary("test_sla_op_cuda");
}
