/* data/h5_internal.h — helpers shared by h5_tensor.c and h5_rows.c (defined in h5_tensor.c); not
 * part of the data layer's interface. */
#ifndef SLA_H5_INTERNAL_H
#define SLA_H5_INTERNAL_H

#include <hdf5.h>

#include "h5_tensor.h"

/* Switches HDF5's error-stack printing off (once). */
void h5i_quiet(void);
/* Fills info's type fields (is_float, is_int, type_name) from an HDF5 type. */
void h5i_describe_type(hid_t type, h5_info_t *info);
/* Opens dataset name (new handle in *ds) or fails naming the file and dataset. */
int h5i_open_dataset(const h5_file_t *f, const char *name, hid_t *ds, char *err, size_t errlen);
/* A 2-byte float type: float16 (exp_bits 5) or bfloat16 (8), little-endian. New handle. */
hid_t h5i_half_type(int exp_bits);

#endif
