/* model/safetensors.h — safetensors files (the released Wan2.1 weights) read safely, and the
 * import of their tensors into the parameter table by name.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "BF16"|"F16"|"F32", "shape": [...], "data_offsets": [begin, end]}, ...,
 * optional "__metadata__": {"key": "string", ...}}, then the data block; offsets are relative to
 * the data block. The file is untrusted: st_open maps it read-only and refuses, with one sentence
 * naming the file (and the tensor), a header length past the end of the file or over
 * ST_MAX_HEADER bytes, malformed JSON (strict RFC 8259 plus valid UTF-8), unknown or repeated keys
 * in a tensor's entry, a dtype other than BF16/F16/F32, a rank over ST_MAX_DIMS, more than
 * ST_MAX_ELEMENTS elements, offsets with begin > end or end past the data block, a byte size
 * other than numel x dtype size, duplicate names, and tensors that overlap or leave holes in the
 * data block (as the reference implementation, the data block must be covered exactly). After a
 * successful st_open every tensor can be converted without further checks.
 *
 * weights_import_safetensors(paths, ...) fills the fp32 arena [t->total] by parameter name from
 * one file, a comma-separated list of shards, or a diffusers/HF "*.safetensors.index.json" (its
 * weight_map names the shards, found next to the index). Names may be Wan2.1's original
 * state-dict names or the diffusers WanTransformer3DModel names (mapping table in
 * weights_import.c); BF16/F16 values are converted exactly to fp32. Refused, naming the tensor: a
 * name that is no parameter of this model (extra), a parameter given twice (two shards or both
 * naming schemes), a shape other than the table's, and a missing parameter, except the SLA
 * blocks.{i}.self_attn.proj_l.{weight,bias}, which are zero-filled and counted in *n_zero_filled
 * (a dense checkpoint into an SLA model). Alignment padding of the arena is left untouched; on
 * failure the arena's contents are unspecified.
 *
 * weights_load_any picks the reader for a path: HDF5 (weights_load of weights.h) when the file
 * starts with the HDF5 signature or is named NAME.h5 / NAME.hdf5, safetensors otherwise (a list, an
 * index .json, *.safetensors, or a file whose header starts like one). Every function returns 0,
 * or -1 with a sentence in err; nothing here prints or exits. */
#ifndef SLA_SAFETENSORS_H
#define SLA_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "params.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ST_MAX_DIMS 5
#define ST_MAX_HEADER 100000000u             /* bytes of JSON, as the reference implementation */
#define ST_MAX_ELEMENTS (INT64_C(1) << 34)   /* per tensor */
#define ST_MAX_NAME 1024                     /* bytes of a tensor name */

typedef enum { ST_BF16 = 0, ST_F16 = 1, ST_F32 = 2 } st_dtype_t;

typedef struct st_tensor {
    char *name;
    st_dtype_t dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    uint64_t begin, end; /* byte offsets into the data block, validated */
} st_tensor_t;

typedef struct st_file {
    char *path;
    const unsigned char *map; /* the whole file (mmap), or the caller's bytes for st_parse */
    size_t size;
    int mapped;
    const unsigned char *data; /* the data block: map + 8 + N */
    uint64_t data_size;
    int count;
    st_tensor_t *tensors; /* in header order */
} st_file_t;

/* Maps and validates a file. Finish with st_close (also after a failure). */
int st_open(const char *path, st_file_t *f, char *err, size_t errlen);
/* Validates size bytes of a safetensors file held in memory (bytes must outlive f); label names it
 * in messages. For tests and fuzzing. */
int st_parse(const char *label, const unsigned char *bytes, size_t size, st_file_t *f, char *err, size_t errlen);
void st_close(st_file_t *f);
/* Index of a name, or -1. */
int st_find(const st_file_t *f, const char *name);
/* Converts tensor i into out [numel] float32 (bf16/f16 exactly, little-endian on any host). */
void st_read_f32(const st_file_t *f, int i, float *out);
const char *st_dtype_name(st_dtype_t dtype);

/* The shard files of a "*.safetensors.index.json": *files (count entries, allocated; free with
 * st_files_free) are paths next to the index, each named once, in the order of the weight_map. */
int st_read_index(const char *path, char ***files, int *count, char *err, size_t errlen);
void st_files_free(char **files, int count);

/* Wan2.1 name of a name found in a file: a diffusers name is translated, any other name is
 * copied. Returns 1 when translated, 0 when copied, -1 when out is too small. */
int st_wan_name(const char *file_name, char *out, size_t len);
/* The diffusers name of a Wan2.1 parameter name (for messages); the name itself when diffusers
 * uses the same one. */
void st_diffusers_name(const char *wan_name, char *out, size_t len);

int weights_import_safetensors(const char *paths, const param_table_t *t, float *arena, int *n_zero_filled,
                               char *err, size_t errlen);
int weights_load_any(const char *path, const param_table_t *t, float *arena, int *n_zero_filled, char *err,
                     size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
