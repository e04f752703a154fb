/* kernels/cuda/elementwise_cuda.cu — the pointwise ops of nn_ops.h on the GPU: adaLN modulation,
 * gated residual, GELU-tanh, SiLU (each forward and backward), Wan's sinusoidal time embedding,
 * the MSE loss, AdamW and the squared norm.
 *
 * Math in fp32 with bf16/f32 tensors, as Wan runs modulation and gates; the time embedding in
 * fp64 as Wan's sinusoidal_embedding_1d. dx/dy outputs are overwritten; dscale, dshift and dgate
 * (f32 [B, C]) are overwritten through the deterministic column sums; the loss and the squared
 * norm are fp64 sums in a fixed order (nn_cuda_common.cuh). The pointwise ops are functors run by
 * ew_launch (nn_cuda_common.cuh): 16-byte vectors when the pointers are aligned, each element computed
 * with the same scalar formula. */
#include "nn_cuda.h"
#include "nn_cuda_common.cuh"

#define EW_THREADS 256

/* ---- modulation and gated residual -------------------------------------------------------------- */

/* x, y [B, L, C] (LC = L*C); scale, shift, gate f32 [B, C], broadcast over the L tokens. */
struct bcast_dims {
    int64_t LC;
    int C;
    bool rows; /* C % EW_VEC == 0 and every broadcast vector 16-byte aligned (see ld_bcast) */
};

static bcast_dims bcast_of(const tensor_t *x, const tensor_t *s0, const tensor_t *s1) {
    int64_t C = x->shape[2];
    return {x->shape[1] * C, (int)C, C % EW_VEC == 0 && aligned16(s0->data) && (!s1 || aligned16(s1->data))};
}

/* y = x * (1 + scale) + shift. */
template <class Tx, class Ty> struct modulate_fwd_op {
    const Tx *x;
    const float *scale, *shift;
    Ty *y;
    bcast_dims d;
    static constexpr int IN_BYTES = sizeof(Tx);
    template <int V> struct in {
        pack<Tx, V> x;
        pack<float, V> s, t;
    };
    template <int V> __device__ in<V> load(int64_t i) const {
        return {ldp<V>(x, i), ld_bcast<V>(scale, i, d.LC, d.C, d.rows), ld_bcast<V>(shift, i, d.LC, d.C, d.rows)};
    }
    template <int V> __device__ void store(int64_t i, const in<V> &a) const {
        pack<Ty, V> o;
#pragma unroll
        for (int k = 0; k < V; k++) stf(o.v, k, ldf(a.x.v, k) * (1.0f + a.s.v[k]) + a.t.v[k]);
        stp<V>(y, i, o);
    }
};

/* out = x + gate * y (out may be x). */
template <class Tx, class Ty> struct gated_residual_op {
    const Tx *x;
    const float *gate;
    const Ty *y;
    Tx *out;
    bcast_dims d;
    static constexpr int IN_BYTES = sizeof(Tx) + sizeof(Ty);
    template <int V> struct in {
        pack<Tx, V> x;
        pack<float, V> g;
        pack<Ty, V> y;
    };
    template <int V> __device__ in<V> load(int64_t i) const {
        return {ldp<V>(x, i), ld_bcast<V>(gate, i, d.LC, d.C, d.rows), ldp<V>(y, i)};
    }
    template <int V> __device__ void store(int64_t i, const in<V> &a) const {
        pack<Tx, V> o;
#pragma unroll
        for (int k = 0; k < V; k++) stf(o.v, k, ldf(a.x.v, k) + a.g.v[k] * ldf(a.y.v, k));
        stp<V>(out, i, o);
    }
};

/* The backward of modulate and of the gate in one pass over the tokens: the per-sample column
 * sums v[0] = a b, v[1] = a (for NOUT = 2), and, written on the way (colsum visits every element
 * once), out = a * (plus1 + s[g, c]) — dx of modulate (plus1 = 1), dy of the gate (plus1 = 0). */
template <class Ta, class Tb, class To, int NOUT> struct token_sum_scale_f {
    const Ta *a;
    const Tb *b;
    const float *s;
    float plus1;
    To *out;
    int64_t L;
    int C;
    __device__ void operator()(int g, int64_t r, int c, float *v) const {
        int64_t i = ((int64_t)g * L + r) * C + c;
        float av = ldf(a, i);
        v[0] = av * ldf(b, i);
        if (NOUT > 1) v[NOUT - 1] = av;
        stf(out, i, av * (plus1 + s[(int64_t)g * C + c]));
    }
};

/* colsum<NOUT> of token_sum_scale_f over [B, L, C] with a, b, out of any float dtypes. */
template <int NOUT>
static void token_sum_scale(const tensor_t *a, const tensor_t *b, const tensor_t *s, float plus1, tensor_t *out,
                            tensor_t *sum0, tensor_t *sum1) {
    int B = (int)b->shape[0], C = (int)b->shape[2];
    int64_t L = b->shape[1];
    with_float_type(a->dtype, [&](auto ta) {
        with_float_type(b->dtype, [&](auto tb) {
            with_float_type(out->dtype, [&](auto to) {
                typedef TYPE_OF(ta) Ta;
                typedef TYPE_OF(tb) Tb;
                typedef TYPE_OF(to) To;
                token_sum_scale_f<Ta, Tb, To, NOUT> f = {(const Ta *)a->data, (const Tb *)b->data,
                                                         (const float *)s->data, plus1, (To *)out->data, L, C};
                colsum<NOUT>(f, B, L, C, (float *)sum0->data, sum1 ? (float *)sum1->data : NULL, 0);
            });
        });
    });
}

extern "C" void modulate_forward_cuda(const tensor_t *x, const tensor_t *scale, const tensor_t *shift, tensor_t *y) {
    int64_t n = tensor_numel(x);
    if (n == 0) return;
    with_float_type(x->dtype, [&](auto tx) {
        with_float_type(y->dtype, [&](auto ty) {
            typedef TYPE_OF(tx) Tx;
            typedef TYPE_OF(ty) Ty;
            modulate_fwd_op<Tx, Ty> f = {(const Tx *)x->data, (const float *)scale->data,
                                         (const float *)shift->data, (Ty *)y->data, bcast_of(x, scale, shift)};
            ew_launch(f, n, aligned16(x->data) && aligned16(y->data));
        });
    });
}

extern "C" void modulate_backward_cuda(const tensor_t *x, const tensor_t *scale, const tensor_t *dy, tensor_t *dx,
                                       tensor_t *dscale, tensor_t *dshift) {
    token_sum_scale<2>(dy, x, scale, 1.0f, dx, dscale, dshift);
}

extern "C" void gated_residual_forward_cuda(const tensor_t *x, const tensor_t *gate, const tensor_t *y,
                                            tensor_t *out) {
    int64_t n = tensor_numel(x);
    if (n == 0) return;
    with_float_type(x->dtype, [&](auto tx) {
        with_float_type(y->dtype, [&](auto ty) {
            typedef TYPE_OF(tx) Tx;
            typedef TYPE_OF(ty) Ty;
            gated_residual_op<Tx, Ty> f = {(const Tx *)x->data, (const float *)gate->data, (const Ty *)y->data,
                                           (Tx *)out->data, bcast_of(x, gate, NULL)};
            ew_launch(f, n, aligned16(x->data) && aligned16(y->data) && aligned16(out->data));
        });
    });
}

extern "C" void gated_residual_backward_cuda(const tensor_t *y, const tensor_t *gate, const tensor_t *dx,
                                             tensor_t *dy, tensor_t *dgate) {
    token_sum_scale<1>(dx, y, gate, 0.0f, dy, dgate, NULL);
}

/* ---- activations ---------------------------------------------------------------------------------- */

#define GELU_K0 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_K1 0.044715f

enum act_kind { ACT_GELU_FWD, ACT_GELU_BWD, ACT_SILU_FWD, ACT_SILU_BWD };

template <int KIND> __device__ __forceinline__ float act_eval(float v, float g) {
    if (KIND == ACT_GELU_FWD || KIND == ACT_GELU_BWD) {
        float t = tanhf(GELU_K0 * (v + GELU_K1 * v * v * v));
        if (KIND == ACT_GELU_FWD) return 0.5f * v * (1.0f + t);
        return g * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * GELU_K0 * (1.0f + 3.0f * GELU_K1 * v * v));
    }
    float s = 1.0f / (1.0f + expf(-v));
    if (KIND == ACT_SILU_FWD) return v * s;
    return g * s * (1.0f + v * (1.0f - s));
}

/* out = f(x) or dy * f'(x) (the backward kinds read dy). */
template <int KIND, class Tx, class Tg, class To> struct act_op {
    const Tx *x;
    const Tg *dy;
    To *out;
    static constexpr bool BWD = KIND == ACT_GELU_BWD || KIND == ACT_SILU_BWD;
    static constexpr int IN_BYTES = sizeof(Tx) + (BWD ? sizeof(Tg) : 0);
    template <int V> struct in {
        pack<Tx, V> x;
        pack<Tg, V> g;
    };
    template <int V> __device__ in<V> load(int64_t i) const {
        in<V> a;
        a.x = ldp<V>(x, i);
        if (BWD) a.g = ldp<V>(dy, i);
        return a;
    }
    template <int V> __device__ void store(int64_t i, const in<V> &a) const {
        pack<To, V> o;
#pragma unroll
        for (int k = 0; k < V; k++) stf(o.v, k, act_eval<KIND>(ldf(a.x.v, k), BWD ? ldf(a.g.v, k) : 0.0f));
        stp<V>(out, i, o);
    }
};

template <int KIND> static void act_launch(const tensor_t *x, const tensor_t *dy, tensor_t *out) {
    int64_t n = tensor_numel(x);
    if (n == 0) return;
    with_float_type(x->dtype, [&](auto tx) {
        with_float_type(dy ? dy->dtype : x->dtype, [&](auto tg) {
            with_float_type(out->dtype, [&](auto to) {
                typedef TYPE_OF(tx) Tx;
                typedef TYPE_OF(tg) Tg;
                typedef TYPE_OF(to) To;
                act_op<KIND, Tx, Tg, To> f = {(const Tx *)x->data, dy ? (const Tg *)dy->data : NULL, (To *)out->data};
                ew_launch(f, n, aligned16(x->data) && (!dy || aligned16(dy->data)) && aligned16(out->data));
            });
        });
    });
}

extern "C" void gelu_forward_cuda(const tensor_t *x, tensor_t *y) { act_launch<ACT_GELU_FWD>(x, NULL, y); }
extern "C" void gelu_backward_cuda(const tensor_t *x, const tensor_t *dy, tensor_t *dx) {
    act_launch<ACT_GELU_BWD>(x, dy, dx);
}
extern "C" void silu_forward_cuda(const tensor_t *x, tensor_t *y) { act_launch<ACT_SILU_FWD>(x, NULL, y); }
extern "C" void silu_backward_cuda(const tensor_t *x, const tensor_t *dy, tensor_t *dx) {
    act_launch<ACT_SILU_BWD>(x, dy, dx);
}

/* ---- time embedding ------------------------------------------------------------------------------- */

__global__ void timestep_embedding_kernel(const float *t, float *emb, int64_t B, int half) {
    GRID_STRIDE(i, B * half) {
        int64_t b = i / half;
        int k = (int)(i % half);
        double a = (double)t[b] * pow(10000.0, -(double)k / (double)half);
        emb[b * 2 * half + k] = (float)cos(a);
        emb[b * 2 * half + half + k] = (float)sin(a);
    }
}

extern "C" void timestep_embedding_cuda(const tensor_t *t, tensor_t *emb) {
    int64_t B = t->shape[0];
    int half = (int)(emb->shape[1] / 2);
    if (B == 0) return;
    timestep_embedding_kernel<<<grid_for(B * half, EW_THREADS), EW_THREADS, 0, cuda_stream()>>>(
        (const float *)t->data, (float *)emb->data, B, half);
    CUDA_CHECK_LAUNCH();
}

/* ---- loss and squared norm ------------------------------------------------------------------------ */

template <class Tp, class Tt, class Td> struct mse_f {
    const Tp *p;
    const Tt *t;
    Td *d;
    double coef; /* grad_scale * 2 / n */
    __device__ double operator()(int64_t i) const {
        double diff = (double)ldf(p, i) - (double)ldf(t, i);
        if (d) stf(d, i, (float)(coef * diff));
        return diff * diff;
    }
};

extern "C" double mse_loss_cuda(const tensor_t *pred, const tensor_t *target, double grad_scale, tensor_t *dpred) {
    int64_t n = tensor_numel(pred);
    double sum = 0.0;
    with_float_type(pred->dtype, [&](auto tp) {
        with_float_type(target->dtype, [&](auto tt) {
            with_float_type(dpred ? dpred->dtype : DTYPE_F32, [&](auto td) {
                typedef TYPE_OF(tp) Tp;
                typedef TYPE_OF(tt) Tt;
                typedef TYPE_OF(td) Td;
                mse_f<Tp, Tt, Td> f = {(const Tp *)pred->data, (const Tt *)target->data,
                                       dpred ? (Td *)dpred->data : NULL, grad_scale * 2.0 / (double)n};
                sum = reduce_sum(f, n);
            });
        });
    });
    return sum / (double)n;
}

struct square_f {
    const float *x;
    __device__ double operator()(int64_t i) const {
        double v = x[i];
        return v * v;
    }
};

extern "C" double sum_squares_cuda(const tensor_t *x) {
    return reduce_sum(square_f{(const float *)x->data}, tensor_numel(x));
}

/* ---- AdamW ------------------------------------------------------------------------------------------ */

struct adamw_coef {
    float lr_wd_decay, beta1, beta2, eps, step_size, bc2_sqrt, grad_scale;
};

struct adamw_op {
    adamw_coef k;
    float *w;
    const float *g;
    float *m, *v;
    bf16 *w16;
    static constexpr int IN_BYTES = 16;
    template <int V> struct in {
        pack<float, V> w, g, m, v;
    };
    template <int V> __device__ in<V> load(int64_t i) const {
        return {ldp<V>(w, i), ldp<V>(g, i), ldp<V>(m, i), ldp<V>(v, i)};
    }
    template <int V> __device__ void store(int64_t i, const in<V> &a) const {
        pack<float, V> mo, vo, wo;
        pack<bf16, V> bo;
#pragma unroll
        for (int j = 0; j < V; j++) {
            float gi = k.grad_scale * a.g.v[j];
            float mi = a.m.v[j] + (gi - a.m.v[j]) * (1.0f - k.beta1); /* PyTorch: m.lerp_(g, 1 - beta1) */
            float vi = a.v.v[j] * k.beta2 + (1.0f - k.beta2) * gi * gi;
            float wi = a.w.v[j] * k.lr_wd_decay - k.step_size * mi / (sqrtf(vi) / k.bc2_sqrt + k.eps);
            mo.v[j] = mi, vo.v[j] = vi, wo.v[j] = wi;
            bo.v[j] = __float2bfloat16_rn(wi);
        }
        stp<V>(m, i, mo), stp<V>(v, i, vo), stp<V>(w, i, wo);
        if (w16) stp<V>(w16, i, bo);
    }
};

extern "C" void adamw_step_cuda(const adamw_params_t *p, tensor_t *w, const tensor_t *grad, tensor_t *m, tensor_t *v,
                                tensor_t *w_bf16) {
    int64_t n = tensor_numel(w);
    if (n == 0) return;
    double bc1 = 1.0 - pow(p->beta1, (double)p->step), bc2 = 1.0 - pow(p->beta2, (double)p->step);
    adamw_coef k = {(float)(1.0 - p->lr * p->weight_decay), (float)p->beta1, (float)p->beta2, (float)p->eps,
                    (float)(p->lr / bc1), (float)sqrt(bc2), (float)p->grad_scale};
    adamw_op f = {k, (float *)w->data, (const float *)grad->data, (float *)m->data, (float *)v->data,
                  w_bf16 ? (bf16 *)w_bf16->data : NULL};
    ew_launch(f, n,
              aligned16(f.w) && aligned16(f.g) && aligned16(f.m) && aligned16(f.v) && (!f.w16 || aligned16(f.w16)));
}
