/* data/dataset.h — the latent dataset: one HDF5 file or a comma-separated list, read one sample
 * at a time.
 *
 * Each file holds latents [n, C, F, H, W] (C = 16 for Wan) and text [n, Lt, Dt], float16, bfloat16,
 * float32 or float64, with n >= 1 equal for both, plus optional attributes (description, source,
 * ...). All files must have the same per-sample shapes; samples are numbered globally by
 * concatenating the files in list order. Files may come from anywhere: dataset_open checks every
 * file (datasets present, ranks, dtypes, n, extents >= 1, at most DATASET_MAX_SAMPLE_ELEMENTS
 * elements per sample, total n without overflow) before anything is read, and dataset_read
 * refuses a sample holding NaN or Inf. Nothing here exits or prints: functions return 0, or -1
 * with one sentence in err naming the file, the dataset and what was expected, e.g.
 * "b.h5: dataset 'latents' has per-sample shape [16, 5, 8, 8], but a.h5 has [16, 3, 8, 8]; every
 * file must match". The handle keeps the file it read last open; it is not thread-safe. */
#ifndef SLA_DATASET_H
#define SLA_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "h5_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Per-sample limit for latents and for text (2^28 elements = 1 GiB of float32). */
#define DATASET_MAX_SAMPLE_ELEMENTS (INT64_C(1) << 28)
/* At most this many files in a list. */
#define DATASET_MAX_FILES 100000

typedef struct dataset_file {
    char *path;
    int64_t n;             /* samples in this file */
    int64_t first;         /* global index of its first sample */
    char latents_type[24]; /* "float16", "float32", ... as stored */
    char text_type[24];
} dataset_file_t;

typedef struct dataset {
    int nfiles;
    dataset_file_t *files;
    int64_t n;                           /* total samples over all files */
    int channels, frames, height, width; /* latents per sample: [C, F, H, W] */
    int text_len, text_dim;              /* text per sample: [Lt, Dt] */
    int64_t latent_numel, text_numel;    /* C*F*H*W and Lt*Dt */
    h5_file_t open_file;                 /* the file read last, kept open */
    int open_index;                      /* its index in files, or -1 */
} dataset_t;

/* Opens and validates every file of list ("a.h5" or "a.h5,b.h5"; spaces around names are
 * ignored). On failure *ds is left empty (dataset_close is harmless on it). */
int dataset_open(const char *list, dataset_t *ds, char *err, size_t errlen);

/* Reads global sample index (0 <= index < ds->n) as float32: latents [C, F, H, W] and text
 * [Lt, Dt]; either pointer may be NULL to skip that part. Fails on a bad index, a read error
 * (damaged file, checksum mismatch) or a non-finite value. */
int dataset_read(dataset_t *ds, int64_t index, float *latents, float *text, char *err, size_t errlen);

/* Which file holds global sample index, or -1 when out of range. */
int dataset_file_of(const dataset_t *ds, int64_t index);

/* Closes the open file and frees everything; leaves *ds empty. */
void dataset_close(dataset_t *ds);

#ifdef __cplusplus
}
#endif
#endif
