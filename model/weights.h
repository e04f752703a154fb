/* model/weights.h — model weights by name in HDF5 files: one dataset per parameter name.
 *
 * weights_write_group writes every tensor of the table from a flat fp32 arena [t->total] into
 * group ("" = the file's root) as chunked float32 datasets with Fletcher-32 checksums.
 * weights_read_group reads them back by name into the arena and refuses, with a sentence naming
 * the tensor: a missing tensor, a tensor of another shape, and a dataset in the group that the
 * table does not know (extra). A dense checkpoint loads into an SLA model: a missing
 * blocks.{i}.self_attn.proj_l.{weight,bias} is zero-filled (as at initialisation) and counted in
 * *n_zero_filled. Nothing in the arena is trusted to survive a failed read. */
#ifndef SLA_WEIGHTS_H
#define SLA_WEIGHTS_H

#include <stddef.h>

#include "h5_tensor.h"
#include "params.h"

#ifdef __cplusplus
extern "C" {
#endif

int weights_write_group(h5_file_t *f, const char *group, const param_table_t *t, const float *arena, char *err,
                        size_t errlen);
int weights_read_group(const h5_file_t *f, const char *group, const param_table_t *t, float *arena,
                       int *n_zero_filled, char *err, size_t errlen);

/* Whole files: save writes PATH atomically (temp + rename); load reads an .h5 written by save or
 * a checkpoint (its root holds the parameters). */
int weights_save(const char *path, const param_table_t *t, const float *arena, char *err, size_t errlen);
int weights_load(const char *path, const param_table_t *t, float *arena, int *n_zero_filled, char *err,
                 size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
