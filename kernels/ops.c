/* kernels/ops.c — dispatch of the op interface (ops.h) to the backend the tensors live on, with
 * the shape and dtype checks both backends rely on. A mismatch here is a programming error of the
 * caller (tools validate user input before calling), so it CHECKs and exits. */
#include "ops.h"

#include "check.h"
#include "cpu/sla_cpu.h"
#ifdef SLA_HAVE_CUDA
#include "cuda/cuda_mem.h"
#include "cuda/sla_cuda.h"
#endif

int ops_cuda_available(void) {
#ifdef SLA_HAVE_CUDA
    return cuda_device_count() > 0;
#else
    return 0;
#endif
}

static void expect_shape(const char *op, const char *name, const tensor_t *t, int ndim, const int64_t *shape) {
    char got[96];
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (ok) return;
    tensor_t want = tensor_make(t->dtype, t->device, ndim, shape);
    char exp[96];
    CHECK(0, "%s: %s has shape %s, expected %s", op, name, tensor_shape_str(t, got, sizeof got),
          tensor_shape_str(&want, exp, sizeof exp));
}

static void expect_device(const char *op, const char *name, const tensor_t *t, device_t dev) {
    CHECK(t->device == dev, "%s: %s is on %s, expected %s", op, name, device_name(t->device), device_name(dev));
    if (dev == DEVICE_CPU)
        CHECK(t->dtype == DTYPE_F32 || t->dtype == DTYPE_I32, "%s: %s is %s; the CPU backend takes float32", op,
              name, dtype_name(t->dtype));
}

#ifndef SLA_HAVE_CUDA
static void no_cuda(const char *op) { CHECK(0, "%s: CUDA tensors given, but this build has no CUDA backend", op); }
#endif

void attn_forward(const tensor_t *q, const tensor_t *k, const tensor_t *v, tensor_t *o, tensor_t *lse) {
    const char *op = "attn_forward";
    CHECK(q->ndim == 4 && k->ndim == 4, "%s: q and k must be [B,H,N,D]", op);
    int64_t B = q->shape[0], H = q->shape[1], Nq = q->shape[2], Nk = k->shape[2], D = q->shape[3];
    expect_shape(op, "k", k, 4, (int64_t[]){B, H, Nk, D});
    expect_shape(op, "v", v, 4, (int64_t[]){B, H, Nk, D});
    expect_shape(op, "o", o, 4, (int64_t[]){B, H, Nq, D});
    expect_shape(op, "lse", lse, 3, (int64_t[]){B, H, Nq});
    const tensor_t *all[] = {q, k, v, o, lse};
    const char *names[] = {"q", "k", "v", "o", "lse"};
    for (int i = 0; i < 5; i++) expect_device(op, names[i], all[i], q->device);
    if (q->device == DEVICE_CPU) return attn_forward_cpu(q, k, v, o, lse);
#ifdef SLA_HAVE_CUDA
    attn_forward_cuda(q, k, v, o, lse);
#else
    no_cuda(op);
#endif
}

void attn_backward(const tensor_t *q, const tensor_t *k, const tensor_t *v, const tensor_t *o, const tensor_t *lse,
                   const tensor_t *dout, tensor_t *dq, tensor_t *dk, tensor_t *dv) {
    const char *op = "attn_backward";
    CHECK(q->ndim == 4 && k->ndim == 4, "%s: q and k must be [B,H,N,D]", op);
    expect_shape(op, "dout", dout, 4, o->shape);
    expect_shape(op, "dq", dq, 4, q->shape);
    expect_shape(op, "dk", dk, 4, k->shape);
    expect_shape(op, "dv", dv, 4, v->shape);
    const tensor_t *all[] = {q, k, v, o, lse, dout, dq, dk, dv};
    const char *names[] = {"q", "k", "v", "o", "lse", "dout", "dq", "dk", "dv"};
    for (int i = 0; i < 9; i++) expect_device(op, names[i], all[i], q->device);
    if (q->device == DEVICE_CPU) return attn_backward_cpu(q, k, v, o, lse, dout, dq, dk, dv);
#ifdef SLA_HAVE_CUDA
    attn_backward_cuda(q, k, v, o, lse, dout, dq, dk, dv);
#else
    no_cuda(op);
#endif
}

static void sla_check_common(const char *op, const sla_dims_t *d, const tensor_t *q, const tensor_t *k,
                             const tensor_t *v, const tensor_t *proj_w, const sla_saved_t *s) {
    int64_t B = d->B, H = d->H, N = d->N, D = d->D;
    int64_t qkv[4] = {B, H, N, D};
    expect_shape(op, "q", q, 4, qkv);
    expect_shape(op, "k", k, 4, qkv);
    expect_shape(op, "v", v, 4, qkv);
    expect_shape(op, "proj_w", proj_w, 2, (int64_t[]){D, D});
    expect_shape(op, "saved.lut", &s->lut, 4, (int64_t[]){B, H, d->Tm, d->kappa});
    expect_shape(op, "saved.lse", &s->lse, 3, (int64_t[]){B, H, N});
    expect_shape(op, "saved.os", &s->os, 4, qkv);
    expect_shape(op, "saved.ol", &s->ol, 4, qkv);
    expect_shape(op, "saved.neg", &s->neg, 4, (int64_t[]){B, H, d->Tm, d->n_negl > 0 ? d->n_negl : 1});
    CHECK(proj_w->dtype == DTYPE_F32, "%s: proj_w must be float32 master weights", op);
    const tensor_t *all[] = {q, k, v, proj_w, &s->lut, &s->neg, &s->lse, &s->os, &s->ol};
    const char *names[] = {"q", "k", "v", "proj_w", "lut", "neg", "lse", "os", "ol"};
    for (int i = 0; i < 9; i++) expect_device(op, names[i], all[i], q->device);
}

void sla_forward(const sla_config_t *cfg, const sla_dims_t *d, const tensor_t *q, const tensor_t *k, const tensor_t *v,
                 const tensor_t *proj_w, const tensor_t *proj_b, int lut_given, tensor_t *o, sla_saved_t *saved) {
    const char *op = "sla_forward";
    sla_check_common(op, d, q, k, v, proj_w, saved);
    expect_shape(op, "proj_b", proj_b, 1, (int64_t[]){d->D});
    expect_shape(op, "o", o, 4, q->shape);
    expect_device(op, "o", o, q->device);
    expect_device(op, "proj_b", proj_b, q->device);
    if (q->device == DEVICE_CPU) return sla_forward_cpu(cfg, d, q, k, v, proj_w, proj_b, lut_given, o, saved);
#ifdef SLA_HAVE_CUDA
    sla_forward_cuda(cfg, d, q, k, v, proj_w, proj_b, lut_given, o, saved);
#else
    no_cuda(op);
#endif
}

void sla_backward(const sla_config_t *cfg, const sla_dims_t *d, const tensor_t *q, const tensor_t *k,
                  const tensor_t *v, const tensor_t *proj_w, const sla_saved_t *saved, const tensor_t *dout,
                  tensor_t *dq, tensor_t *dk, tensor_t *dv, tensor_t *dproj_w, tensor_t *dproj_b) {
    const char *op = "sla_backward";
    sla_check_common(op, d, q, k, v, proj_w, saved);
    expect_shape(op, "dout", dout, 4, q->shape);
    expect_shape(op, "dq", dq, 4, q->shape);
    expect_shape(op, "dk", dk, 4, q->shape);
    expect_shape(op, "dv", dv, 4, q->shape);
    expect_shape(op, "dproj_w", dproj_w, 2, proj_w->shape);
    expect_shape(op, "dproj_b", dproj_b, 1, (int64_t[]){d->D});
    const tensor_t *all[] = {dout, dq, dk, dv, dproj_w, dproj_b};
    const char *names[] = {"dout", "dq", "dk", "dv", "dproj_w", "dproj_b"};
    for (int i = 0; i < 6; i++) expect_device(op, names[i], all[i], q->device);
    if (q->device == DEVICE_CPU)
        return sla_backward_cpu(cfg, d, q, k, v, proj_w, saved, dout, dq, dk, dv, dproj_w, dproj_b);
#ifdef SLA_HAVE_CUDA
    sla_backward_cuda(cfg, d, q, k, v, proj_w, saved, dout, dq, dk, dv, dproj_w, dproj_b);
#else
    no_cuda(op);
#endif
}
