/* data/h5_rows.c — row-wise HDF5 reads and writes (hyperslabs of one first index) and attribute
 * listing. Contract in h5_rows.h. Every HDF5 handle opened in a function is closed before it
 * returns. HDF5's error-stack printing is off: h5_tensor's functions switch it off on first use,
 * and every entry point here calls h5_exists (which does) before any other HDF5 call. */
#include "h5_rows.h"
#include "check.h"
#include "h5_internal.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rank and extents with the row-wise limits; dims receives the extents. */
static int row_space(const h5_file_t *f, const char *name, hid_t ds, int *ndim, hsize_t *dims, char *err,
                     size_t errlen) {
    hid_t sp = H5Dget_space(ds);
    if (sp < 0) return set_error(err, errlen, "%s: dataset '%s' has an unreadable dataspace", f->path, name);
    int rc = 0;
    int nd = H5Sget_simple_extent_ndims(sp);
    if (H5Sget_simple_extent_type(sp) != H5S_SIMPLE || nd < 1)
        rc = set_error(err, errlen, "%s: dataset '%s' is a scalar or empty, expected an array of samples", f->path, name);
    else if (nd > TENSOR_MAX_DIMS)
        rc = set_error(err, errlen, "%s: dataset '%s' has rank %d, more than the %d supported", f->path, name, nd,
                  TENSOR_MAX_DIMS);
    else if (H5Sget_simple_extent_dims(sp, dims, NULL) < 0)
        rc = set_error(err, errlen, "%s: dataset '%s' has unreadable extents", f->path, name);
    H5Sclose(sp);
    if (rc) return rc;
    if (dims[0] > (hsize_t)H5_MAX_ROWS)
        return set_error(err, errlen, "%s: dataset '%s' claims %llu samples, more than 2^40", f->path, name,
                    (unsigned long long)dims[0]);
    uint64_t count = 1;
    for (int i = 1; i < nd; i++) {
        if (dims[i] > (hsize_t)H5_MAX_ELEMENTS || (dims[i] && count > (uint64_t)H5_MAX_ELEMENTS / dims[i]))
            return set_error(err, errlen,
                        "%s: dataset '%s' claims more than 2^34 elements per sample (extent %llu in dim %d)", f->path,
                        name, (unsigned long long)dims[i], i);
        count *= dims[i];
    }
    *ndim = nd;
    return 0;
}

int h5_rows_info(const h5_file_t *f, const char *name, h5_info_t *info, char *err, size_t errlen) {
    memset(info, 0, sizeof *info);
    hid_t ds;
    if (h5i_open_dataset(f, name, &ds, err, errlen)) return -1;
    int rc = 0;
    hid_t type = H5Dget_type(ds);
    if (type < 0) rc = set_error(err, errlen, "%s: dataset '%s' has an unreadable type", f->path, name);
    else h5i_describe_type(type, info);
    if (type >= 0) H5Tclose(type);
    hsize_t dims[H5S_MAX_RANK];
    if (rc == 0) rc = row_space(f, name, ds, &info->ndim, dims, err, errlen);
    for (int i = 0; rc == 0 && i < info->ndim; i++) info->shape[i] = (int64_t)dims[i];
    H5Dclose(ds);
    return rc;
}

/* Opens the dataset and selects row `row` in its file space; checks count against the row size. */
static int select_row(const h5_file_t *f, const char *name, int64_t row, int64_t count, hid_t *ds, hid_t *fsp,
                      char *err, size_t errlen) {
    if (h5i_open_dataset(f, name, ds, err, errlen)) return -1;
    int nd;
    hsize_t dims[H5S_MAX_RANK];
    if (row_space(f, name, *ds, &nd, dims, err, errlen)) {
        H5Dclose(*ds);
        return -1;
    }
    int64_t row_elems = 1;
    for (int i = 1; i < nd; i++) row_elems *= (int64_t)dims[i];
    int rc = 0;
    if (row < 0 || (uint64_t)row >= dims[0])
        rc = set_error(err, errlen, "%s: dataset '%s' has %llu samples, sample %lld does not exist", f->path, name,
                  (unsigned long long)dims[0], (long long)row);
    else if (row_elems != count)
        rc = set_error(err, errlen, "%s: dataset '%s' has %lld elements per sample, expected %lld", f->path, name,
                  (long long)row_elems, (long long)count);
    if (rc) {
        H5Dclose(*ds);
        return rc;
    }
    hsize_t start[H5S_MAX_RANK] = {0}, cnt[H5S_MAX_RANK];
    start[0] = (hsize_t)row;
    cnt[0] = 1;
    for (int i = 1; i < nd; i++) cnt[i] = dims[i];
    *fsp = H5Dget_space(*ds);
    if (*fsp < 0 || H5Sselect_hyperslab(*fsp, H5S_SELECT_SET, start, NULL, cnt, NULL) < 0) {
        if (*fsp >= 0) H5Sclose(*fsp);
        H5Dclose(*ds);
        return set_error(err, errlen, "%s: dataset '%s': cannot select sample %lld", f->path, name, (long long)row);
    }
    return 0;
}

int h5_read_row_f32(const h5_file_t *f, const char *name, int64_t row, float *dst, int64_t count, char *err,
                    size_t errlen) {
    h5_info_t info;
    if (h5_rows_info(f, name, &info, err, errlen)) return -1;
    if (!info.is_float)
        return set_error(err, errlen, "%s: dataset '%s' is %s, expected float16 or float32", f->path, name, info.type_name);
    hid_t ds, fsp;
    if (select_row(f, name, row, count, &ds, &fsp, err, errlen)) return -1;
    int rc = 0;
    if (count > 0) {
        hsize_t m = (hsize_t)count;
        hid_t msp = H5Screate_simple(1, &m, NULL);
        if (H5Dread(ds, H5T_NATIVE_FLOAT, msp, fsp, H5P_DEFAULT, dst) < 0)
            rc = set_error(err, errlen,
                      "%s: sample %lld of dataset '%s' could not be read (damaged file or checksum "
                      "mismatch)",
                      f->path, (long long)row, name);
        H5Sclose(msp);
    }
    H5Sclose(fsp);
    H5Dclose(ds);
    return rc;
}

/* One row per chunk when a row is at most H5_ROW_CHUNK_BYTES; else the row's trailing dims whole
 * and its leading dims cut, to about that size. */
static void row_chunk(int ndim, const int64_t *shape, size_t elem_bytes, hsize_t *chunk) {
    chunk[0] = 1;
    for (int i = 1; i < ndim; i++) chunk[i] = (hsize_t)shape[i];
    size_t rest = elem_bytes;
    for (int i = ndim - 1; i >= 1; i--) {
        if (rest * (size_t)shape[i] > H5_ROW_CHUNK_BYTES) {
            size_t c = H5_ROW_CHUNK_BYTES / rest;
            chunk[i] = c < 1 ? 1 : c;
            for (int j = i - 1; j >= 1; j--) chunk[j] = 1;
            return;
        }
        rest *= (size_t)shape[i];
    }
}

int h5_create_rows(h5_file_t *f, const char *name, dtype_t dtype, int ndim, const int64_t *shape, char *err,
                   size_t errlen) {
    if (f->id < 0 || !f->writable) return set_error(err, errlen, "%s: not open for writing", f->path ? f->path : "?");
    if (h5_exists(f, name)) return set_error(err, errlen, "%s: dataset '%s' already exists", f->path, name);
    if (dtype != DTYPE_F32 && dtype != DTYPE_F16)
        return set_error(err, errlen, "%s: dataset '%s': rows are stored as float32 or float16, not %s", f->path, name,
                    dtype_name(dtype));
    if (ndim < 1 || ndim > TENSOR_MAX_DIMS)
        return set_error(err, errlen, "%s: dataset '%s': rank %d is outside 1..%d", f->path, name, ndim, TENSOR_MAX_DIMS);
    hsize_t dims[TENSOR_MAX_DIMS], chunk[TENSOR_MAX_DIMS];
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1)
            return set_error(err, errlen, "%s: dataset '%s': extent %lld in dim %d, expected at least 1", f->path, name,
                        (long long)shape[i], i);
        dims[i] = (hsize_t)shape[i];
    }
    row_chunk(ndim, shape, dtype_size(dtype), chunk);
    hid_t ftype = dtype == DTYPE_F16 ? h5i_half_type(5) : H5Tcopy(H5T_IEEE_F32LE);
    hid_t sp = H5Screate_simple(ndim, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, ndim, chunk);
    H5Pset_fletcher32(dcpl);
    hid_t ds = H5Dcreate2((hid_t)f->id, name, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    int rc = ds < 0 ? set_error(err, errlen, "%s: cannot create dataset '%s'", f->path, name) : 0;
    if (ds >= 0) H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(sp);
    H5Tclose(ftype);
    return rc;
}

/* HDF5 1.10's soft conversion from float32 to 16-bit floats drops the carry when rounding rounds
 * the mantissa up to the next power of two (0.49989 became 0.25), so 16-bit rows are converted
 * here (round to nearest even, tensor.h) and written without conversion. *half is 0 (not a 16-bit
 * float), 5 (float16) or 8 (bfloat16 exponent bits). */
static hid_t write_mem_type(hid_t ds, int *half) {
    hid_t ft = H5Dget_type(ds);
    *half = 0;
    if (ft >= 0 && H5Tget_class(ft) == H5T_FLOAT && H5Tget_size(ft) == 2) {
        *half = H5Tget_ebias(ft) == 127 ? 8 : 5;
        return ft; /* the file's own type: no conversion */
    }
    if (ft >= 0) H5Tclose(ft);
    return H5Tcopy(H5T_NATIVE_FLOAT);
}

int h5_write_row_f32(h5_file_t *f, const char *name, int64_t row, const float *src, int64_t count, char *err,
                     size_t errlen) {
    if (f->id < 0 || !f->writable) return set_error(err, errlen, "%s: not open for writing", f->path ? f->path : "?");
    hid_t ds, fsp;
    if (select_row(f, name, row, count, &ds, &fsp, err, errlen)) return -1;
    int rc = 0, half;
    hid_t mt = write_mem_type(ds, &half);
    uint16_t *conv = NULL;
    if (half && count > 0) {
        conv = malloc((size_t)count * sizeof *conv);
        if (!conv) rc = set_error(err, errlen, "%s: out of memory writing dataset '%s'", f->path, name);
        for (int64_t i = 0; conv && i < count; i++) conv[i] = half == 5 ? f32_to_f16(src[i]) : f32_to_bf16(src[i]);
    }
    if (rc == 0 && count > 0) {
        hsize_t m = (hsize_t)count;
        hid_t msp = H5Screate_simple(1, &m, NULL);
        if (H5Dwrite(ds, mt, msp, fsp, H5P_DEFAULT, half ? (const void *)conv : (const void *)src) < 0)
            rc = set_error(err, errlen, "%s: writing sample %lld of dataset '%s' failed (disk full?)", f->path,
                      (long long)row, name);
        H5Sclose(msp);
    }
    free(conv);
    H5Tclose(mt);
    H5Sclose(fsp);
    H5Dclose(ds);
    return rc;
}

/* ---- attribute listing ---------------------------------------------------------------------- */

static hid_t open_object(const h5_file_t *f, const char *obj) {
    if (f->id < 0 || !obj) return -1;
    if (strcmp(obj, "/") != 0 && !h5_exists(f, obj)) return -1;
    h5_exists(f, "/"); /* switches HDF5's error printing off when obj is "/" */
    return H5Oopen((hid_t)f->id, obj, H5P_DEFAULT);
}

static herr_t count_one(hid_t loc, const char *name, const H5A_info_t *info, void *data) {
    (void)loc, (void)name, (void)info;
    (*(int *)data)++;
    return 0;
}

int h5_attr_count(const h5_file_t *f, const char *obj) {
    hid_t oid = open_object(f, obj);
    if (oid < 0) return -1;
    int n = 0;
    hsize_t idx = 0;
    if (H5Aiterate2(oid, H5_INDEX_NAME, H5_ITER_INC, &idx, count_one, &n) < 0) n = -1;
    H5Oclose(oid);
    return n;
}

int h5_attr_name(const h5_file_t *f, const char *obj, int index, char *buf, size_t len) {
    if (index < 0 || len == 0) return -1;
    hid_t oid = open_object(f, obj);
    if (oid < 0) return -1;
    ssize_t n = H5Aget_name_by_idx(oid, ".", H5_INDEX_NAME, H5_ITER_INC, (hsize_t)index, buf, len, H5P_DEFAULT);
    H5Oclose(oid);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}
