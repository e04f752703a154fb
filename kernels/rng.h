/* kernels/rng.h — counter-based random numbers (Philox4x32-10), identical on host and device.
 *
 * Every random stream of a run is keyed, never stateful: philox(key = (seed, purpose), counter =
 * (step, rank/param/sample, index)) — so resuming, changing the number of ranks or skipping work
 * reproduces the same numbers. rng_normal_fill / rng_uniform_fill fill arrays from one stream,
 * element i using counter (c0, c1, i / 4) lane i % 4 (normals pair lanes by Box-Muller). */
#ifndef SLA_RNG_H
#define SLA_RNG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rng_key {
    uint64_t seed;
    uint32_t purpose; /* RNG_PURPOSE_* */
} rng_key_t;

enum {
    RNG_PURPOSE_INIT = 1,     /* parameter init: c0 = parameter index */
    RNG_PURPOSE_DATA = 2,     /* data order: c0 = epoch */
    RNG_PURPOSE_NOISE = 3,    /* flow-matching noise: c0 = step, c1 = global sample index */
    RNG_PURPOSE_TIME = 4,     /* timesteps: c0 = step, c1 = global sample index */
    RNG_PURPOSE_SYNTH = 5,    /* synthetic datasets: c0 = sample index */
};

/* Four 32-bit outputs for counter (c0, c1, c2). */
void rng_philox(rng_key_t key, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t out[4]);
/* x[i] ~ U[0, 1) (24-bit resolution, never 1). */
void rng_uniform_fill(rng_key_t key, uint32_t c0, uint32_t c1, float *x, long n);
/* x[i] ~ N(0, 1) * scale. */
void rng_normal_fill(rng_key_t key, uint32_t c0, uint32_t c1, float *x, long n, float scale);

#ifdef __cplusplus
}
#endif
#endif
