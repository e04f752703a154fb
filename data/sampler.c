/* data/sampler.c — the global data order (contract in sampler.h). Permutations are cached for
 * two epochs, enough for any batch that straddles one epoch boundary without recomputing. */
#include "sampler.h"

#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "rng.h"

void sampler_permutation(uint64_t seed, int64_t epoch, int64_t n, int64_t *perm) {
    rng_key_t key = {seed, RNG_PURPOSE_DATA};
    uint32_t c0 = (uint32_t)epoch, c1 = (uint32_t)((uint64_t)epoch >> 32);
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    uint32_t r[4];
    /* Swap k (k = 0, 1, ...) exchanges perm[i] with perm[j], i = n - 1 - k, j uniform in [0, i],
     * from 64 random bits: lanes (0, 1) of counter k / 2 for even k, lanes (2, 3) for odd k. The
     * modulo's bias is below (i + 1) / 2^64, far below anything a training run could notice. */
    for (int64_t k = 0; k < n - 1; k++) {
        if (k % 2 == 0) rng_philox(key, c0, c1, (uint32_t)(k / 2), r);
        int lane = (int)(k % 2) * 2;
        uint64_t bits = ((uint64_t)r[lane] << 32) | r[lane + 1];
        int64_t i = n - 1 - k;
        int64_t j = (int64_t)(bits % (uint64_t)(i + 1));
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

int sampler_init(sampler_t *s, uint64_t seed, int64_t n, char *err, size_t errlen) {
    s->seed = seed;
    s->n = 0;
    s->perm[0] = s->perm[1] = NULL;
    s->cached_epoch[0] = s->cached_epoch[1] = -1;
    s->next_slot = 0;
    if (n < 1) {
        if (err && errlen) snprintf(err, errlen, "the sampler needs at least one sample, got n = %lld", (long long)n);
        return -1;
    }
    /* The shuffle's counter (swap / 2) is 32 bits wide; no dataset is near that many samples. */
    if ((uint64_t)n > ((uint64_t)1 << 33)) {
        if (err && errlen)
            snprintf(err, errlen, "the sampler supports at most 2^33 samples, got n = %lld", (long long)n);
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        s->perm[i] = malloc((size_t)n * sizeof *s->perm[i]);
        if (!s->perm[i]) {
            sampler_free(s);
            if (err && errlen) snprintf(err, errlen, "out of memory for the order of %lld samples", (long long)n);
            return -1;
        }
    }
    s->n = n;
    return 0;
}

void sampler_free(sampler_t *s) {
    for (int i = 0; i < 2; i++) {
        free(s->perm[i]);
        s->perm[i] = NULL;
        s->cached_epoch[i] = -1;
    }
    s->n = 0;
}

static const int64_t *epoch_perm(sampler_t *s, int64_t epoch) {
    for (int i = 0; i < 2; i++)
        if (s->cached_epoch[i] == epoch) return s->perm[i];
    int slot = s->next_slot;
    s->next_slot ^= 1;
    sampler_permutation(s->seed, epoch, s->n, s->perm[slot]);
    s->cached_epoch[slot] = epoch;
    return s->perm[slot];
}

int64_t sampler_at(sampler_t *s, int64_t epoch, int64_t position) {
    CHECK(s->n > 0 && epoch >= 0 && position >= 0 && position < s->n,
          "sampler_at(epoch %lld, position %lld) outside a sampler of %lld samples", (long long)epoch,
          (long long)position, (long long)s->n);
    return epoch_perm(s, epoch)[position];
}

sampler_cursor_t sampler_offset(const sampler_t *s, sampler_cursor_t cursor, int64_t offset) {
    CHECK(s->n > 0 && offset >= 0 && cursor.position >= 0 && cursor.position < s->n && cursor.epoch >= 0,
          "sampler_offset: cursor (%lld, %lld) + %lld outside a sampler of %lld samples", (long long)cursor.epoch,
          (long long)cursor.position, (long long)offset, (long long)s->n);
    /* position < n and offset < 2^62: the sum cannot overflow */
    int64_t total = cursor.position + offset;
    sampler_cursor_t c = {cursor.epoch + total / s->n, total % s->n};
    return c;
}

void sampler_indices(sampler_t *s, sampler_cursor_t cursor, int rank, int world, int batch, int64_t *out) {
    CHECK(world >= 1 && rank >= 0 && rank < world && batch >= 1, "sampler_indices: rank %d of world %d, batch %d", rank,
          world, batch);
    sampler_cursor_t c = sampler_offset(s, cursor, (int64_t)rank * batch);
    for (int j = 0; j < batch; j++) {
        out[j] = sampler_at(s, c.epoch, c.position);
        if (++c.position == s->n) c.position = 0, c.epoch++;
    }
}

sampler_cursor_t sampler_advance(const sampler_t *s, sampler_cursor_t cursor, int world, int batch) {
    CHECK(world >= 1 && batch >= 1, "sampler_advance: world %d, batch %d", world, batch);
    return sampler_offset(s, cursor, (int64_t)world * batch);
}

int sampler_cursor_check(const sampler_t *s, sampler_cursor_t cursor, char *err, size_t errlen) {
    if (cursor.epoch < 0 || cursor.epoch > (INT64_C(1) << 40)) {
        if (err && errlen)
            snprintf(err, errlen, "data cursor epoch %lld is outside [0, 2^40]", (long long)cursor.epoch);
        return -1;
    }
    if (cursor.position < 0 || cursor.position >= s->n) {
        if (err && errlen)
            snprintf(err, errlen, "data cursor position %lld is outside [0, %lld) for a dataset of %lld samples",
                     (long long)cursor.position, (long long)s->n, (long long)s->n);
        return -1;
    }
    return 0;
}
