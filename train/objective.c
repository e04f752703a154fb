/* train/objective.c — rectified flow noising and the learning-rate schedule (objective.h). */
#include "objective.h"

#include <math.h>
#include <stdlib.h>

#include "rng.h"

double flow_shift(double u, double shift) { return shift * u / (1.0 + (shift - 1.0) * u); }

void flow_noise_batch(uint64_t seed, int64_t step, int64_t first_slot, int B, long n, double shift, const float *x0,
                      float *xs, float *target, float *t) {
    rng_key_t time_key = {seed, RNG_PURPOSE_TIME}, noise_key = {seed, RNG_PURPOSE_NOISE};
    for (int i = 0; i < B; i++) {
        uint32_t slot = (uint32_t)(first_slot + i);
        float u;
        rng_uniform_fill(time_key, (uint32_t)step, slot, &u, 1);
        double s = flow_shift(u, shift);
        t[i] = (float)(1000.0 * s);
        float *eps = target + (size_t)i * n; /* the noise first, then overwritten by the target */
        rng_normal_fill(noise_key, (uint32_t)step, slot, eps, n, 1.0f);
        const float *x = x0 + (size_t)i * n;
        float *y = xs + (size_t)i * n;
        for (long j = 0; j < n; j++) {
            y[j] = (float)((1.0 - s) * x[j] + s * eps[j]);
            eps[j] = eps[j] - x[j];
        }
    }
}

double lr_at(int64_t step, int64_t steps, int64_t warmup, double lr, double min_lr, int cosine) {
    if (warmup > 0 && step <= warmup) return lr * (double)step / (double)warmup;
    if (!cosine || steps <= warmup) return lr;
    double progress = (double)(step - warmup) / (double)(steps - warmup);
    if (progress > 1) progress = 1;
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + cos(3.14159265358979323846 * progress));
}
