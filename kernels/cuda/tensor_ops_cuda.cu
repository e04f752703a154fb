/* kernels/cuda/tensor_ops_cuda.cu — device side of ../tensor_ops.h over f32 or bf16 storage (any
 * dtype other than bf16 is read as f32) with fp32 math. convert, axpy and add_row_broadcast are
 * elementwise functors run by ew_launch (nn_cuda_common.cuh): 16-byte vectors when the pointers
 * allow, one element at a time otherwise; y may alias x exactly (tensor_scale is axpy(alpha-1, x, x)).
 * sum_rows_accumulate gives each column one thread that walks the rows in order, so the result does
 * not depend on the launch. */
#include "nn_cuda_common.cuh"
#include "tensor_ops_cuda.h"

namespace {

/* y = x converted. */
template <class Tx, class Ty> struct convert_op {
    const Tx *x;
    Ty *y;
    static constexpr int IN_BYTES = sizeof(Tx);
    template <int V> __device__ pack<Tx, V> load(int64_t i) const { return ldp<V>(x, i); }
    template <int V> __device__ void store(int64_t i, const pack<Tx, V> &a) const {
        pack<Ty, V> o;
#pragma unroll
        for (int k = 0; k < V; k++) stf(o.v, k, ldf(a.v, k));
        stp<V>(y, i, o);
    }
};

/* y = y + alpha x. */
template <class Tx, class Ty> struct axpy_op {
    float alpha;
    const Tx *x;
    Ty *y;
    static constexpr int IN_BYTES = sizeof(Tx) + sizeof(Ty);
    template <int V> struct in {
        pack<Tx, V> x;
        pack<Ty, V> y;
    };
    template <int V> __device__ in<V> load(int64_t i) const { return {ldp<V>(x, i), ldp<V>(y, i)}; }
    template <int V> __device__ void store(int64_t i, const in<V> &a) const {
        pack<Ty, V> o;
#pragma unroll
        for (int k = 0; k < V; k++) stf(o.v, k, ldf(a.y.v, k) + alpha * ldf(a.x.v, k));
        stp<V>(y, i, o);
    }
};

/* y [R, C] = y + v [C] on every row: v broadcast as one [1, C] sample over n / C tokens. */
template <class Tv, class Ty> struct add_rows_op {
    const Tv *v;
    Ty *y;
    int64_t n, C;
    bool rows;
    static constexpr int IN_BYTES = sizeof(Ty);
    template <int V> struct in {
        pack<Ty, V> y;
        pack<Tv, V> v;
    };
    template <int V> __device__ in<V> load(int64_t i) const { return {ldp<V>(y, i), ld_bcast<V>(v, i, n, C, rows)}; }
    template <int V> __device__ void store(int64_t i, const in<V> &a) const {
        pack<Ty, V> o;
#pragma unroll
        for (int k = 0; k < V; k++) stf(o.v, k, ldf(a.y.v, k) + ldf(a.v.v, k));
        stp<V>(y, i, o);
    }
};

template <class T> __global__ void sum_rows_kernel(const T *x, float *acc, long long R, long long C) {
    long long c = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (c >= C) return;
    float s = 0.f;
    for (long long r = 0; r < R; r++) s += ldf(x, r * C + c);
    acc[c] += s;
}

/* Calls fn(type_tag<T>()) with T = bf16 for bf16 tensors, float for any other. */
template <class Fn> void with_type(const tensor_t *t, Fn &&fn) {
    if (t->dtype == DTYPE_BF16) fn(type_tag<bf16>());
    else fn(type_tag<float>());
}

}  // namespace

extern "C" void tensor_zero_cuda(tensor_t *x) {
    CUDA_CHECK(cudaMemsetAsync(x->data, 0, tensor_bytes(x), cuda_stream()));
}

extern "C" void tensor_convert_cuda(const tensor_t *x, tensor_t *y) {
    with_type(x, [&](auto tx) {
        with_type(y, [&](auto ty) {
            typedef TYPE_OF(tx) Tx;
            typedef TYPE_OF(ty) Ty;
            ew_launch(convert_op<Tx, Ty>{(const Tx *)x->data, (Ty *)y->data}, tensor_numel(y),
                      aligned16(x->data) && aligned16(y->data));
        });
    });
}

extern "C" void tensor_axpy_cuda(float alpha, const tensor_t *x, tensor_t *y) {
    with_type(x, [&](auto tx) {
        with_type(y, [&](auto ty) {
            typedef TYPE_OF(tx) Tx;
            typedef TYPE_OF(ty) Ty;
            ew_launch(axpy_op<Tx, Ty>{alpha, (const Tx *)x->data, (Ty *)y->data}, tensor_numel(y),
                      aligned16(x->data) && aligned16(y->data));
        });
    });
}

extern "C" void add_row_broadcast_cuda(const tensor_t *v, tensor_t *y) {
    int64_t n = tensor_numel(y), C = y->shape[y->ndim - 1];
    if (!n) return;
    with_type(v, [&](auto tv) {
        with_type(y, [&](auto ty) {
            typedef TYPE_OF(tv) Tv;
            typedef TYPE_OF(ty) Ty;
            add_rows_op<Tv, Ty> f = {(const Tv *)v->data, (Ty *)y->data, n, C,
                                     C % EW_VEC == 0 && aligned16(v->data)};
            ew_launch(f, n, aligned16(y->data));
        });
    });
}

extern "C" void sum_rows_accumulate_cuda(const tensor_t *x, tensor_t *acc) {
    long long C = x->shape[x->ndim - 1], R = C ? tensor_numel(x) / C : 0;
    if (!C) return;
    with_type(x, [&](auto tx) {
        typedef TYPE_OF(tx) Tx;
        sum_rows_kernel<<<(int)((C + 127) / 128), 128, 0, cuda_stream()>>>((const Tx *)x->data, (float *)acc->data,
                                                                          R, C);
        CUDA_CHECK_LAUNCH();
    });
}
