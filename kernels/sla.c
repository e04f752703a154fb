/* kernels/sla.c — SLA configuration checks, derived sizes (kappa, n_negl) and saved-state memory.
 * Backend-independent; the math is in cpu/sla_cpu.c and cuda/sla_*.cu. */
#include "sla.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#ifdef SLA_HAVE_CUDA
#include "cuda/sla_cuda.h"
#endif

sla_config_t sla_config_default(void) {
    sla_config_t c;
    c.topk = 0.05;
    c.kl = 0.0;
    c.blk_q = 128;
    c.blk_k = 64;
    c.feature = SLA_FEATURE_SOFTMAX;
    c.variant = SLA_VARIANT_COMPLEMENT;
    return c;
}

/* floor(x * n) with a small guard so that 0.1 * 30 counts as 3 whatever the rounding of 0.1. */
static int floor_fraction(double x, int n) { return (int)floor(x * n + 1e-9); }

int sla_dims_make(const sla_config_t *cfg, int B, int H, int N, int D, sla_dims_t *d, int *kappa_clamped,
                  char *err, size_t errlen) {
    if (kappa_clamped) *kappa_clamped = 0;
    if (!(cfg->topk > 0.0 && cfg->topk <= 1.0)) {
        snprintf(err, errlen, "topk = %g is outside (0, 1]", cfg->topk);
        return -1;
    }
    if (!(cfg->kl >= 0.0 && cfg->kl < 1.0)) {
        snprintf(err, errlen, "kl = %g is outside [0, 1)", cfg->kl);
        return -1;
    }
    if (cfg->blk_q < 1 || cfg->blk_k < 1) {
        snprintf(err, errlen, "block sizes must be positive (blk_q = %d, blk_k = %d)", cfg->blk_q, cfg->blk_k);
        return -1;
    }
    if ((unsigned)cfg->feature > SLA_FEATURE_RELU || (unsigned)cfg->variant > SLA_VARIANT_ALL) {
        snprintf(err, errlen, "unknown feature map or variant");
        return -1;
    }
    if (B < 1 || H < 1 || N < 1 || D < 1) {
        snprintf(err, errlen, "sizes must be positive (B = %d, H = %d, N = %d, D = %d)", B, H, N, D);
        return -1;
    }
    memset(d, 0, sizeof *d);
    d->B = B, d->H = H, d->N = N, d->D = D;
    d->blk_q = cfg->blk_q, d->blk_k = cfg->blk_k;
    d->Tm = (N + cfg->blk_q - 1) / cfg->blk_q;
    d->Tn = (N + cfg->blk_k - 1) / cfg->blk_k;
    d->kappa = floor_fraction(cfg->topk, d->Tn);
    if (d->kappa < 1) {
        d->kappa = 1;
        if (kappa_clamped) *kappa_clamped = 1;
    }
    if (d->kappa > d->Tn) d->kappa = d->Tn;
    d->n_negl = floor_fraction(cfg->kl, d->Tn);
    if (d->n_negl > d->Tn - d->kappa) d->n_negl = d->Tn - d->kappa;
    return 0;
}

int sla_feature_parse(const char *s) {
    if (!strcmp(s, "softmax")) return SLA_FEATURE_SOFTMAX;
    if (!strcmp(s, "elu")) return SLA_FEATURE_ELU;
    if (!strcmp(s, "relu")) return SLA_FEATURE_RELU;
    return -1;
}

int sla_variant_parse(const char *s) {
    if (!strcmp(s, "complement")) return SLA_VARIANT_COMPLEMENT;
    if (!strcmp(s, "all")) return SLA_VARIANT_ALL;
    return -1;
}

const char *sla_feature_name(sla_feature_t f) {
    return f == SLA_FEATURE_SOFTMAX ? "softmax" : f == SLA_FEATURE_ELU ? "elu" : "relu";
}

const char *sla_variant_name(sla_variant_t v) { return v == SLA_VARIANT_COMPLEMENT ? "complement" : "all"; }

void sla_saved_describe(sla_saved_t *s, const sla_dims_t *d, device_t device) {
    int64_t B = d->B, H = d->H, N = d->N, D = d->D;
    dtype_t act = device == DEVICE_CPU ? DTYPE_F32 : DTYPE_BF16;
    memset(s, 0, sizeof *s);
    s->lut = tensor_make(DTYPE_I32, device, 4, (int64_t[]){B, H, d->Tm, d->kappa});
    s->neg = tensor_make(DTYPE_I32, device, 4, (int64_t[]){B, H, d->Tm, d->n_negl > 0 ? d->n_negl : 1});
    s->lse = tensor_make(DTYPE_F32, device, 3, (int64_t[]){B, H, N});
    s->os = tensor_make(act, device, 4, (int64_t[]){B, H, N, D});
    s->ol = tensor_make(act, device, 4, (int64_t[]){B, H, N, D});
    int64_t extra = 0;
#ifdef SLA_HAVE_CUDA
    if (device == DEVICE_CUDA) extra = (int64_t)sla_cuda_extra_bytes(d);
#endif
    s->extra = tensor_make(DTYPE_I32, device, 1, (int64_t[]){(extra + 3) / 4});
}

_Static_assert(sizeof(sla_saved_t) == SLA_SAVED_TENSORS * sizeof(tensor_t),
               "sla_saved_t and SLA_SAVED_TENSORS disagree");

void sla_saved_alloc(sla_saved_t *s, const sla_dims_t *d, device_t device) {
    sla_saved_describe(s, d, device);
    tensor_t *t = &s->lut;
    for (int i = 0; i < SLA_SAVED_TENSORS; i++) t[i] = tensor_alloc(t[i].dtype, device, t[i].ndim, t[i].shape);
}

void sla_saved_free(sla_saved_t *s) {
    tensor_t *t = &s->lut;
    for (int i = 0; i < SLA_SAVED_TENSORS; i++) tensor_free(&t[i]);
}
