/* data/h5_tensor.h — whole tensors in and out of HDF5 files, with errors as sentences.
 *
 * Reads a dataset into a freshly allocated CPU tensor (float datasets of 16, 32 or 64 bits become
 * float32; integer datasets of any width become int32 when every value fits), writes a CPU tensor
 * as a dataset (optionally chunked with Fletcher-32 checksums), tests for datasets, and writes and
 * reads string and scalar attributes. Files may come from anywhere: every rank and extent is
 * checked before anything is allocated (rank <= TENSOR_MAX_DIMS, at most H5_MAX_ELEMENTS
 * elements), and nothing here exits or prints: each function returns 0, or -1 with one sentence
 * in err naming the file, the dataset or attribute and what was expected, e.g.
 * "IN.h5: dataset 'q' is int32, expected float32". HDF5's own error-stack printing is switched off
 * the first time any function here runs.
 *
 * Atomic writes: h5_create_temp(PATH) creates PATH.tmp; the caller writes into it; h5_commit
 * closes it, fsyncs it and renames it to PATH (then fsyncs the directory), so PATH is either the
 * old file or the complete new one; h5_abort closes and deletes PATH.tmp. Every file handle must
 * end with exactly one of h5_close, h5_commit or h5_abort (all accept a handle whose open failed).
 * Not thread-safe (HDF5 serial). */
#ifndef SLA_H5_TENSOR_H
#define SLA_H5_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Refuse datasets with more elements than this (2^34): a corrupt or hostile header. */
#define H5_MAX_ELEMENTS (INT64_C(1) << 34)

typedef struct h5_file {
    int64_t id;       /* hid_t; negative when not open */
    char *path;       /* the file actually open (PATH.tmp for a temporary) */
    char *final_path; /* PATH for a temporary, else NULL */
    int writable;
} h5_file_t;

/* What a dataset holds, as found in the file. */
typedef struct h5_info {
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    int is_float;        /* float class: h5_read_tensor(DTYPE_F32) reads it */
    int is_int;          /* integer class: h5_read_tensor(DTYPE_I32) reads it */
    char type_name[24];  /* "float16", "float32", "float64", "int32", "uint8", "string", ... */
} h5_info_t;

/* Opens an existing file read-only ("IN.h5: no such file", "IN.h5: not an HDF5 file"). */
int h5_open_read(const char *path, h5_file_t *f, char *err, size_t errlen);
/* Creates (truncates) a file for writing. */
int h5_create(const char *path, h5_file_t *f, char *err, size_t errlen);
/* Creates PATH.tmp for writing; finish with h5_commit or h5_abort. */
int h5_create_temp(const char *path, h5_file_t *f, char *err, size_t errlen);
/* Closes, fsyncs and renames PATH.tmp to PATH. On failure the temporary is deleted. */
int h5_commit(h5_file_t *f, char *err, size_t errlen);
/* Closes and deletes the temporary (or, for h5_create files, just closes). Never fails. */
void h5_abort(h5_file_t *f);
/* Closes a file opened by h5_open_read or h5_create. */
int h5_close(h5_file_t *f, char *err, size_t errlen);

/* 1 when a link called name exists in the file, else 0. */
int h5_exists(const h5_file_t *f, const char *name);

/* Names of the datasets directly in group ("/" for the root; subgroups are not listed), in name
 * order, allocated here; free with h5_names_free. */
int h5_list_datasets(const h5_file_t *f, const char *group, char ***names, int *count, char *err, size_t errlen);
void h5_names_free(char **names, int count);

/* Rank, shape and element type of a dataset; fails on a missing dataset, rank > TENSOR_MAX_DIMS
 * or more than H5_MAX_ELEMENTS elements. */
int h5_dataset_info(const h5_file_t *f, const char *name, h5_info_t *info, char *err, size_t errlen);

/* Reads a whole dataset into *out (allocated here on the CPU, free with tensor_free). want is
 * DTYPE_F32 (the dataset must be a float) or DTYPE_I32 (it must be an integer whose values all fit
 * in int32). info, when not NULL, receives the dataset's description. */
int h5_read_tensor(const h5_file_t *f, const char *name, dtype_t want, tensor_t *out, h5_info_t *info, char *err,
                   size_t errlen);

/* Writes a CPU tensor (float32, float64, float16 or int32) as a new dataset; a name "a/b" creates
 * group a when needed. With chunked != 0 it
 * is stored in chunks of about 1 MiB with Fletcher-32 checksums (rank-0 and empty tensors are
 * stored contiguously). Fails if the dataset exists. */
int h5_write_tensor(h5_file_t *f, const char *name, const tensor_t *t, int chunked, char *err, size_t errlen);

/* Attributes on an object: obj is "/" for the file itself or a dataset name. Writing replaces an
 * existing attribute of the same name. Strings are written as variable-length UTF-8; reads accept
 * fixed- or variable-length strings and fail when the value does not fit in len bytes. */
int h5_write_attr_string(h5_file_t *f, const char *obj, const char *name, const char *value, char *err,
                         size_t errlen);
int h5_write_attr_double(h5_file_t *f, const char *obj, const char *name, double value, char *err, size_t errlen);
int h5_write_attr_int(h5_file_t *f, const char *obj, const char *name, int64_t value, char *err, size_t errlen);
int h5_read_attr_string(const h5_file_t *f, const char *obj, const char *name, char *buf, size_t len, char *err,
                        size_t errlen);
int h5_read_attr_double(const h5_file_t *f, const char *obj, const char *name, double *value, char *err,
                        size_t errlen);
int h5_read_attr_int(const h5_file_t *f, const char *obj, const char *name, int64_t *value, char *err,
                     size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
