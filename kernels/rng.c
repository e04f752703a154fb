/* kernels/rng.c — Philox4x32-10 on the host (rng.h). The CUDA twin must produce the same bits. */
#include "rng.h"

#include <math.h>

static void mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

void rng_philox(rng_key_t key, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t out[4]) {
    /* key words: the seed's two halves mixed with the purpose */
    uint32_t k0 = (uint32_t)key.seed ^ (key.purpose * 0x85ebca6bu), k1 = (uint32_t)(key.seed >> 32);
    uint32_t x0 = c0, x1 = c1, x2 = c2, x3 = key.purpose;
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo(0xD2511F53u, x0, &hi0, &lo0);
        mulhilo(0xCD9E8D57u, x2, &hi1, &lo1);
        uint32_t y0 = hi1 ^ x1 ^ k0, y1 = lo1, y2 = hi0 ^ x3 ^ k1, y3 = lo0;
        x0 = y0, x1 = y1, x2 = y2, x3 = y3;
        k0 += 0x9E3779B9u, k1 += 0xBB67AE85u;
    }
    out[0] = x0, out[1] = x1, out[2] = x2, out[3] = x3;
}

static float u01(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

void rng_uniform_fill(rng_key_t key, uint32_t c0, uint32_t c1, float *x, long n) {
    uint32_t r[4];
    for (long i = 0; i < n; i++) {
        if (i % 4 == 0) rng_philox(key, c0, c1, (uint32_t)(i / 4), r);
        x[i] = u01(r[i % 4]);
    }
}

void rng_normal_fill(rng_key_t key, uint32_t c0, uint32_t c1, float *x, long n, float scale) {
    uint32_t r[4];
    for (long i = 0; i < n; i += 2) {
        if (i % 4 == 0) rng_philox(key, c0, c1, (uint32_t)(i / 4), r);
        int pair = (int)(i % 4); /* lanes (0,1) and (2,3) form Box-Muller pairs: cos, then sin */
        double u = (r[pair] >> 8) * (1.0 / 16777216.0) + (0.5 / 16777216.0), v = u01(r[pair + 1]);
        double rad = scale * sqrt(-2.0 * log(u)), ang = 6.283185307179586 * v;
        x[i] = (float)(rad * cos(ang));
        if (i + 1 < n) x[i + 1] = (float)(rad * sin(ang));
    }
}
