/* kernels/sla.h — SLA (Sparse-Linear Attention) configuration, derived sizes and saved state.
 *
 * The operator itself is declared in ops.h; ../shared/SLA.md (mirrored in README) is the math.
 * Block selection: kappa = max(1, floor(topk * Tn)) critical key blocks per query block, kept as
 * ascending indices (lut); with kl > 0 a further n_negl = min(floor(kl * Tn), Tn - kappa) blocks
 * of lowest pooled score are negligible (neg, ascending) and skipped by both branches; the rest
 * are marginal and go to the linear branch. The "all" variant ignores neg in its linear branch,
 * exactly as the public implementations do. */
#ifndef SLA_SLA_H
#define SLA_SLA_H

#include <stddef.h>

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { SLA_FEATURE_SOFTMAX = 0, SLA_FEATURE_ELU = 1, SLA_FEATURE_RELU = 2 } sla_feature_t;
typedef enum { SLA_VARIANT_COMPLEMENT = 0, SLA_VARIANT_ALL = 1 } sla_variant_t;

/* Denominator offset of the "all" variant (the public code's epsilon). */
#define SLA_ALL_DEN_EPS 1e-5

typedef struct sla_config {
    double topk;           /* rho, kept ratio of key blocks, in (0, 1] */
    double kl;             /* negligible fraction of key blocks, in [0, 1) */
    int blk_q, blk_k;      /* query / key block sizes, >= 1 */
    sla_feature_t feature; /* phi */
    sla_variant_t variant;
} sla_config_t;

/* Defaults: topk 0.05, kl 0, blk_q 128, blk_k 64, softmax, complement. */
sla_config_t sla_config_default(void);

typedef struct sla_dims {
    int B, H, N, D;
    int Tm, Tn;  /* ceil(N / blk_q), ceil(N / blk_k) */
    int kappa;   /* critical key blocks per query block, 1..Tn */
    int n_negl;  /* negligible key blocks per query block, 0..Tn-kappa */
    int blk_q, blk_k;
} sla_dims_t;

/* Validates cfg and the sizes and fills dims. Returns 0, or -1 with a sentence in err naming the
 * offending value. *kappa_clamped is set to 1 when floor(topk * Tn) was 0 and kappa became 1 (the
 * caller may warn). */
int sla_dims_make(const sla_config_t *cfg, int B, int H, int N, int D, sla_dims_t *dims,
                  int *kappa_clamped, char *err, size_t errlen);

/* Parse / print enum names: "softmax" "elu" "relu"; "complement" "all". Return -1 if unknown. */
int sla_feature_parse(const char *s);
int sla_variant_parse(const char *s);
const char *sla_feature_name(sla_feature_t f);
const char *sla_variant_name(sla_variant_t v);

/* What the forward leaves for the backward, besides the op's inputs; the backward reads nothing
 * else (no backend keeps state between the two calls outside it). Allocate with sla_saved_alloc
 * on the device and dtype family of the call (CPU: fp32; CUDA: bf16 os/ol), or describe it with
 * sla_saved_describe and place each of its SLA_SAVED_TENSORS tensors in memory of your own. */
typedef struct sla_saved {
    tensor_t lut; /* int32 [B,H,Tm,kappa]: critical key blocks, ascending */
    tensor_t neg; /* int32 [B,H,Tm,max(n_negl,1)]: negligible key blocks, ascending (n_negl used) */
    tensor_t lse; /* f32 [B,H,N]: natural-log sum of exp over each row's critical keys */
    tensor_t os;  /* [B,H,N,D] sparse-branch output */
    tensor_t ol;  /* [B,H,N,D] linear-branch output before proj */
    tensor_t extra; /* int32 words private to the backend (CPU: none; CUDA: the linear branch's per
                     * query block states, bf16 [B*H, Tm, D*D + D], that the backward reuses) */
} sla_saved_t;

/* sla_saved_t is exactly this many tensor_t, in declaration order (callers may walk it as an array). */
#define SLA_SAVED_TENSORS 6

/* Shapes and dtypes only (data NULL), for a caller that places the tensors itself. */
void sla_saved_describe(sla_saved_t *s, const sla_dims_t *d, device_t device);
/* sla_saved_describe plus one tensor_alloc per tensor; release with sla_saved_free. */
void sla_saved_alloc(sla_saved_t *s, const sla_dims_t *d, device_t device);
void sla_saved_free(sla_saved_t *s);

#ifdef __cplusplus
}
#endif
#endif
