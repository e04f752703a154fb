/* train/objective.h — the rectified-flow objective of Wan2.1 and the learning-rate schedule.
 *
 * flow_noise_batch: for each sample i of a micro-batch, s_i ~ U(0,1) shifted by
 * s' = shift s / (1 + (shift - 1) s), eps_i ~ N(0, I); x_s = (1 - s') x0 + s' eps, target
 * v = eps - x0, t = 1000 s'. The random numbers come from counter-based streams keyed by
 * (seed, step, slot), slot = the sample's position in the step's global batch, so a resumed run
 * and a run on another number of ranks draw the same numbers for the same sample. All arrays are
 * host f32: x0, xs, target [B, n]; t [B]. */
#ifndef SLA_OBJECTIVE_H
#define SLA_OBJECTIVE_H

#include <stdint.h>

void flow_noise_batch(uint64_t seed, int64_t step, int64_t first_slot, int B, long n, double shift, const float *x0,
                      float *xs, float *target, float *t);

/* Shifted timestep fraction for u in [0, 1). */
double flow_shift(double u, double shift);

/* Learning rate at optimizer step (1-based): linear warm-up from 0 over `warmup` steps, then
 * constant, or cosine from lr down to min_lr at step `steps`. */
double lr_at(int64_t step, int64_t steps, int64_t warmup, double lr, double min_lr, int cosine);

#endif
