/* kernels/tensor_ops.c — the helpers of tensor_ops.h: argument checks, the CPU loops, and dispatch
 * to cuda/tensor_ops_cuda.cu for device tensors. */
#include "tensor_ops.h"

#include <string.h>

#include "check.h"
#ifdef SLA_HAVE_CUDA
#include "cuda/tensor_ops_cuda.h"
#endif

static int64_t last_dim(const tensor_t *t) { return t->ndim ? t->shape[t->ndim - 1] : 1; }

static void same_device(const char *op, const tensor_t *a, const tensor_t *b) {
    CHECK(a->device == b->device, "%s: tensors on %s and %s", op, device_name(a->device), device_name(b->device));
    if (a->device == DEVICE_CPU)
        CHECK(a->dtype == DTYPE_F32 && b->dtype == DTYPE_F32, "%s: the CPU backend takes float32", op);
}

#ifndef SLA_HAVE_CUDA
#define CUDA_OR_FAIL(op, call) CHECK(0, "%s: CUDA tensors given, but this build has no CUDA backend", op)
#else
#define CUDA_OR_FAIL(op, call) call
#endif

void tensor_zero(tensor_t *x) {
    if (x->device == DEVICE_CPU) {
        memset(x->data, 0, tensor_bytes(x));
        return;
    }
    CUDA_OR_FAIL("tensor_zero", tensor_zero_cuda(x));
}

void tensor_convert(const tensor_t *x, tensor_t *y) {
    CHECK(tensor_numel(x) == tensor_numel(y), "tensor_convert: %lld and %lld elements", (long long)tensor_numel(x),
          (long long)tensor_numel(y));
    if (x->device == DEVICE_CPU && y->device == DEVICE_CPU) {
        tensor_t view = *x;
        view.ndim = y->ndim;
        for (int i = 0; i < y->ndim; i++) view.shape[i] = y->shape[i];
        tensor_copy(y, &view);
        return;
    }
    same_device("tensor_convert", x, y);
    CUDA_OR_FAIL("tensor_convert", tensor_convert_cuda(x, y));
}

void tensor_scale(float alpha, tensor_t *x) {
    if (x->device == DEVICE_CPU) {
        CHECK(x->dtype == DTYPE_F32, "tensor_scale: the CPU backend takes float32");
        float *xs = x->data;
        for (int64_t i = 0, n = tensor_numel(x); i < n; i++) xs[i] *= alpha;
        return;
    }
    CUDA_OR_FAIL("tensor_scale", tensor_axpy_cuda(alpha - 1.0f, x, x));
}

void tensor_axpy(float alpha, const tensor_t *x, tensor_t *y) {
    same_device("tensor_axpy", x, y);
    CHECK(tensor_numel(x) == tensor_numel(y), "tensor_axpy: %lld and %lld elements", (long long)tensor_numel(x),
          (long long)tensor_numel(y));
    if (x->device == DEVICE_CPU) {
        const float *xs = x->data;
        float *ys = y->data;
        for (int64_t i = 0, n = tensor_numel(x); i < n; i++) ys[i] += alpha * xs[i];
        return;
    }
    CUDA_OR_FAIL("tensor_axpy", tensor_axpy_cuda(alpha, x, y));
}

void add_row_broadcast(const tensor_t *v, tensor_t *y) {
    same_device("add_row_broadcast", v, y);
    int64_t C = last_dim(y);
    CHECK(tensor_numel(v) == C, "add_row_broadcast: vector of %lld elements for rows of %lld",
          (long long)tensor_numel(v), (long long)C);
    if (y->device == DEVICE_CPU) {
        const float *vs = v->data;
        float *ys = y->data;
        for (int64_t i = 0, n = tensor_numel(y); i < n; i++) ys[i] += vs[i % C];
        return;
    }
    CUDA_OR_FAIL("add_row_broadcast", add_row_broadcast_cuda(v, y));
}

void sum_rows_accumulate(const tensor_t *x, tensor_t *acc) {
    same_device("sum_rows_accumulate", x, acc);
    int64_t C = last_dim(x), R = C ? tensor_numel(x) / C : 0;
    CHECK(acc->dtype == DTYPE_F32 && tensor_numel(acc) == C, "sum_rows_accumulate: accumulator must be float32 [%lld]",
          (long long)C);
    if (x->device == DEVICE_CPU) {
        const float *xs = x->data;
        float *a = acc->data;
        for (int64_t c = 0; c < C; c++) {
            double s = 0;
            for (int64_t r = 0; r < R; r++) s += xs[r * C + c];
            a[c] += (float)s;
        }
        return;
    }
    CUDA_OR_FAIL("sum_rows_accumulate", sum_rows_accumulate_cuda(x, acc));
}
