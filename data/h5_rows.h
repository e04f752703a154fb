/* data/h5_rows.h — one row (sample) at a time in and out of HDF5 datasets, and attribute listing.
 *
 * A row of a dataset of rank r >= 1 is every element whose first index is the row number: one
 * sample of latents [n, C, F, H, W] or text [n, Lt, Dt]. Datasets read this way may be far larger
 * than memory, so h5_rows_info limits each row (at most H5_MAX_ELEMENTS elements) and the row
 * count (at most H5_MAX_ROWS) instead of the whole dataset as h5_dataset_info does. Reads convert
 * any float type (float16, bfloat16, float32, float64) to float32; writes store float32 or float16
 * (chunked one row per chunk where a row is at most H5_ROW_CHUNK_BYTES, with Fletcher-32).
 * Works on the h5_file_t handles of h5_tensor.h and follows its rules: nothing exits or prints,
 * each function returns 0, or -1 with one sentence in err naming the file, the dataset and what
 * was expected; every HDF5 handle opened inside is closed before returning. Not thread-safe. */
#ifndef SLA_H5_ROWS_H
#define SLA_H5_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "h5_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Refuse datasets claiming more rows than this (2^40). */
#define H5_MAX_ROWS (INT64_C(1) << 40)
/* Rows up to this size are one chunk each; larger rows are cut into chunks of about this size. */
#define H5_ROW_CHUNK_BYTES ((size_t)64 << 20)

/* Rank, shape and element type of a dataset read row by row: fails on a missing dataset, rank 0
 * or > TENSOR_MAX_DIMS, more than H5_MAX_ROWS rows or more than H5_MAX_ELEMENTS per row. */
int h5_rows_info(const h5_file_t *f, const char *name, h5_info_t *info, char *err, size_t errlen);

/* Reads row `row` of a float dataset into dst [count] as float32; count must equal the number of
 * elements of one row (a mismatch is refused: the caller states what it expects). */
int h5_read_row_f32(const h5_file_t *f, const char *name, int64_t row, float *dst, int64_t count, char *err,
                    size_t errlen);

/* Creates an empty dataset of shape[ndim] (ndim >= 1) stored as dtype (DTYPE_F32 or DTYPE_F16),
 * chunked by rows with Fletcher-32 checksums, to be filled with h5_write_row_f32. */
int h5_create_rows(h5_file_t *f, const char *name, dtype_t dtype, int ndim, const int64_t *shape, char *err,
                   size_t errlen);

/* Writes src [count] (float32, converted to the dataset's type) as row `row`. */
int h5_write_row_f32(h5_file_t *f, const char *name, int64_t row, const float *src, int64_t count, char *err,
                     size_t errlen);

/* Number of attributes on obj ("/" for the file), or -1 when obj does not exist. */
int h5_attr_count(const h5_file_t *f, const char *obj);
/* Name of attribute `index` (0-based, in alphabetical order) into buf; -1 when there is no such
 * attribute or the name does not fit. */
int h5_attr_name(const h5_file_t *f, const char *obj, int index, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
