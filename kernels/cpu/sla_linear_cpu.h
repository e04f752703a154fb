/* kernels/cpu/sla_linear_cpu.h — SLA's linear branch and feature maps on the CPU, fp64, for one
 * (batch, head). Internal to kernels/cpu/; used by sla_cpu.c.
 *
 * mark [Tm, Tn] classifies every (query block, key block) pair: SLA_MARK_CRITICAL,
 * SLA_MARK_NEGLIGIBLE or SLA_MARK_MARGINAL. The complement variant attends each query block to its
 * marginal key blocks; the "all" variant to every key block (mark ignored). Marginal sums are
 * formed directly (not "total minus kept"), so the oracle carries no cancellation error. */
#ifndef SLA_LINEAR_CPU_H
#define SLA_LINEAR_CPU_H

#include "../sla.h"

enum { SLA_MARK_MARGINAL = 0, SLA_MARK_CRITICAL = 1, SLA_MARK_NEGLIGIBLE = 2 };

/* ol [N, D] overwritten: phi(q) H_i / den. q, k, v [N, D] of one head. */
void sla_linear_forward_head(const sla_config_t *cfg, const sla_dims_t *d, const unsigned char *mark,
                             const double *q, const double *k, const double *v, double *ol);

/* Given dol [N, D] = dLoss/dOl: dq, dk, dv [N, D] accumulated (+=) with the linear branch's part,
 * through the feature map. ol is the forward's. */
void sla_linear_backward_head(const sla_config_t *cfg, const sla_dims_t *d, const unsigned char *mark,
                              const double *q, const double *k, const double *v, const double *ol,
                              const double *dol, double *dq, double *dk, double *dv);

#endif
