/* data/sampler.h — the deterministic global data order, independent of the number of ranks.
 *
 * The order is an endless stream: epoch 0's permutation of [0, n), then epoch 1's, and so on;
 * each permutation is a Fisher-Yates shuffle drawn from Philox keyed by (seed, RNG_PURPOSE_DATA)
 * with counter (epoch low word, epoch high word, swap / 2). A cursor {epoch, position} points
 * into the stream. Each micro-step consumes one global batch of batch * world samples: rank r of
 * world W takes the samples at stream offsets cursor + r * batch .. cursor + r * batch + batch - 1,
 * then every rank advances the cursor by batch * world. So the global batch is the same for any
 * W with the same batch * world (W = 1 with batch b * W sees the same samples in the same steps as
 * W ranks with batch b), and a batch that runs past the end of an epoch continues with the next
 * epoch's permutation (a batch larger than n spans several epochs).
 * The cursor is plain data (two int64) for checkpoints; sampler_cursor_check validates one read
 * from a file. Programming errors (rank outside [0, world), batch < 1) stop through CHECK. */
#ifndef SLA_SAMPLER_H
#define SLA_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sampler_cursor {
    int64_t epoch;    /* >= 0 */
    int64_t position; /* in [0, n): the next sample of the epoch's permutation */
} sampler_cursor_t;

typedef struct sampler {
    uint64_t seed;
    int64_t n;
    int64_t cached_epoch[2]; /* epochs whose permutations are cached (-1: none) */
    int64_t *perm[2];        /* [n] each */
    int next_slot;           /* the slot to replace next */
} sampler_t;

/* Writes epoch's permutation of [0, n) into perm [n]. Pure: the same arguments, the same order. */
void sampler_permutation(uint64_t seed, int64_t epoch, int64_t n, int64_t *perm);

/* n >= 1 samples. Returns 0, or -1 with a sentence (n < 1, out of memory). */
int sampler_init(sampler_t *s, uint64_t seed, int64_t n, char *err, size_t errlen);
void sampler_free(sampler_t *s);

/* The sample at position (0 <= position < n) of epoch's permutation. */
int64_t sampler_at(sampler_t *s, int64_t epoch, int64_t position);

/* The cursor at stream offset cursor + offset (offset >= 0). */
sampler_cursor_t sampler_offset(const sampler_t *s, sampler_cursor_t cursor, int64_t offset);

/* Rank `rank` of `world`: out [batch] receives its sample indices for the step at cursor. */
void sampler_indices(sampler_t *s, sampler_cursor_t cursor, int rank, int world, int batch, int64_t *out);

/* The cursor of the next step: cursor + batch * world. */
sampler_cursor_t sampler_advance(const sampler_t *s, sampler_cursor_t cursor, int world, int batch);

/* 0 when cursor is valid for this sampler (epoch >= 0, 0 <= position < n), else -1 with a
 * sentence naming the bad value. */
int sampler_cursor_check(const sampler_t *s, sampler_cursor_t cursor, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
