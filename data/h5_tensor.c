/* data/h5_tensor.c — whole-tensor HDF5 reads and writes with checked sizes and sentence errors.
 * Contract in h5_tensor.h. Every HDF5 handle opened in a function is closed before it returns,
 * so a file closes completely (files are also opened with H5F_CLOSE_STRONG). */
#include "h5_tensor.h"
#include "check.h"
#include "h5_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Static_assert(sizeof(hid_t) == sizeof(int64_t), "h5_file_t stores hid_t as int64_t (HDF5 >= 1.10)");

#define CHUNK_TARGET_BYTES ((size_t)1 << 20)

void h5i_quiet(void) {
    static int done;
    if (done) return;
    H5open();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* our messages, not HDF5's stack dumps */
    done = 1;
}

static char *dup_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

static void file_reset(h5_file_t *f) {
    f->id = -1;
    f->path = NULL;
    f->final_path = NULL;
    f->writable = 0;
}

static void file_release(h5_file_t *f) {
    free(f->path);
    free(f->final_path);
    file_reset(f);
}

/* File access list that closes every open object with the file. */
static hid_t strong_fapl(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0) H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    return fapl;
}

int h5_open_read(const char *path, h5_file_t *f, char *err, size_t errlen) {
    h5i_quiet();
    file_reset(f);
    if (access(path, R_OK) != 0) return set_error(err, errlen, "%s: cannot open (%s)", path, strerror(errno));
    if (H5Fis_hdf5(path) <= 0) return set_error(err, errlen, "%s: not an HDF5 file", path);
    hid_t fapl = strong_fapl();
    hid_t id = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (id < 0) return set_error(err, errlen, "%s: cannot open as HDF5 (damaged or unreadable)", path);
    f->id = id;
    f->path = dup_string(path);
    return 0;
}

static int create_at(const char *path, h5_file_t *f, char *err, size_t errlen) {
    /* Probe with open(2) first: HDF5 does not say why a create failed, errno does. */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return set_error(err, errlen, "%s: cannot create (%s)", path, strerror(errno));
    close(fd);
    hid_t fapl = strong_fapl();
    /* The 1.8+ object formats checksum metadata too, so a damaged header fails to read instead of
     * being read wrong; h5py and every HDF5 >= 1.8 read them. */
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST);
    hid_t id = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (id < 0) {
        unlink(path);
        return set_error(err, errlen, "%s: cannot create an HDF5 file there", path);
    }
    f->id = id;
    f->path = dup_string(path);
    f->writable = 1;
    return 0;
}

int h5_create(const char *path, h5_file_t *f, char *err, size_t errlen) {
    h5i_quiet();
    file_reset(f);
    return create_at(path, f, err, errlen);
}

int h5_create_temp(const char *path, h5_file_t *f, char *err, size_t errlen) {
    h5i_quiet();
    file_reset(f);
    size_t n = strlen(path) + 5;
    char *tmp = malloc(n);
    if (!tmp) return set_error(err, errlen, "%s: out of memory", path);
    snprintf(tmp, n, "%s.tmp", path);
    int rc = create_at(tmp, f, err, errlen);
    free(tmp);
    if (rc == 0) f->final_path = dup_string(path);
    return rc;
}

static int fsync_path(const char *path, int flags) {
    int fd = open(path, flags);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* fsync the directory holding path so that the rename itself is durable. */
static void fsync_parent(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) {
        fsync_path(".", O_RDONLY);
        return;
    }
    size_t n = (size_t)(slash - path);
    char *dir = malloc(n + 2);
    if (!dir) return;
    if (n == 0) n = 1; /* "/file": the root */
    memcpy(dir, path, n);
    dir[n] = '\0';
    fsync_path(dir, O_RDONLY);
    free(dir);
}

int h5_commit(h5_file_t *f, char *err, size_t errlen) {
    if (!f->final_path) return h5_close(f, err, errlen);
    int rc = 0;
    if (f->id >= 0 && H5Fclose((hid_t)f->id) < 0) rc = set_error(err, errlen, "%s: closing failed (disk full?)", f->path);
    f->id = -1;
    if (rc == 0 && fsync_path(f->path, O_RDONLY) != 0)
        rc = set_error(err, errlen, "%s: fsync failed (%s)", f->path, strerror(errno));
    if (rc == 0 && rename(f->path, f->final_path) != 0)
        rc = set_error(err, errlen, "%s: cannot rename to %s (%s)", f->path, f->final_path, strerror(errno));
    if (rc == 0) fsync_parent(f->final_path);
    else unlink(f->path);
    file_release(f);
    return rc;
}

void h5_abort(h5_file_t *f) {
    if (f->id >= 0) H5Fclose((hid_t)f->id);
    if (f->final_path && f->path) unlink(f->path);
    file_release(f);
}

int h5_close(h5_file_t *f, char *err, size_t errlen) {
    int rc = 0;
    if (f->id >= 0 && H5Fclose((hid_t)f->id) < 0) rc = set_error(err, errlen, "%s: closing failed", f->path);
    file_release(f);
    return rc;
}

int h5_exists(const h5_file_t *f, const char *name) {
    h5i_quiet();
    if (f->id < 0 || !name || !*name) return 0;
    return H5Lexists((hid_t)f->id, name, H5P_DEFAULT) > 0;
}

int h5_list_datasets(const h5_file_t *f, const char *group, char ***names, int *count, char *err, size_t errlen) {
    h5i_quiet();
    *names = NULL, *count = 0;
    hid_t gid = H5Gopen2((hid_t)f->id, group, H5P_DEFAULT);
    if (gid < 0) return set_error(err, errlen, "%s: no group '%s'", f->path, group);
    H5G_info_t ginfo;
    if (H5Gget_info(gid, &ginfo) < 0 || ginfo.nlinks > (hsize_t)H5_MAX_ELEMENTS) {
        H5Gclose(gid);
        return set_error(err, errlen, "%s: cannot list group '%s'", f->path, group);
    }
    char **list = calloc(ginfo.nlinks ? ginfo.nlinks : 1, sizeof(char *));
    int n = 0, rc = 0;
    for (hsize_t i = 0; list && i < ginfo.nlinks && !rc; i++) {
        char name[512];
        ssize_t len = H5Lget_name_by_idx(gid, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT);
        if (len < 0 || len >= (ssize_t)sizeof name) {
            rc = set_error(err, errlen, "%s: unreadable or over-long link name in group '%s'", f->path, group);
            break;
        }
        hid_t oid = H5Oopen(gid, name, H5P_DEFAULT);
        if (oid < 0) continue; /* dangling link: not a dataset */
        int is_dataset = H5Iget_type(oid) == H5I_DATASET;
        H5Oclose(oid);
        if (is_dataset && !(list[n++] = strdup(name))) rc = set_error(err, errlen, "out of memory listing '%s'", group);
    }
    H5Gclose(gid);
    if (!list) return set_error(err, errlen, "out of memory listing '%s'", group);
    if (rc) {
        h5_names_free(list, n);
        return -1;
    }
    *names = list, *count = n;
    return 0;
}

void h5_names_free(char **names, int count) {
    for (int i = 0; i < count; i++) free(names[i]);
    free(names);
}

/* ---- dataset description ------------------------------------------------------------------ */

void h5i_describe_type(hid_t type, h5_info_t *info) {
    size_t bits = H5Tget_size(type) * 8;
    info->is_float = info->is_int = 0;
    switch (H5Tget_class(type)) {
    case H5T_FLOAT:
        info->is_float = 1;
        if (bits == 16 && H5Tget_ebias(type) == 127) snprintf(info->type_name, sizeof info->type_name, "bfloat16");
        else snprintf(info->type_name, sizeof info->type_name, "float%zu", bits);
        break;
    case H5T_INTEGER:
        info->is_int = 1;
        snprintf(info->type_name, sizeof info->type_name, "%sint%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "",
                 bits);
        break;
    case H5T_STRING: snprintf(info->type_name, sizeof info->type_name, "string"); break;
    case H5T_COMPOUND: snprintf(info->type_name, sizeof info->type_name, "compound"); break;
    case H5T_ENUM: snprintf(info->type_name, sizeof info->type_name, "enum"); break;
    case H5T_ARRAY: snprintf(info->type_name, sizeof info->type_name, "array"); break;
    default: snprintf(info->type_name, sizeof info->type_name, "a non-numeric type"); break;
    }
}

int h5i_open_dataset(const h5_file_t *f, const char *name, hid_t *ds, char *err, size_t errlen) {
    h5i_quiet();
    if (!h5_exists(f, name)) return set_error(err, errlen, "%s: dataset '%s' is missing", f->path, name);
    *ds = H5Dopen2((hid_t)f->id, name, H5P_DEFAULT);
    if (*ds < 0) return set_error(err, errlen, "%s: '%s' is not a dataset", f->path, name);
    return 0;
}

/* Rank and extents, refused before anything is allocated when they are out of range. */
static int describe_space(const h5_file_t *f, const char *name, hid_t ds, h5_info_t *info, char *err, size_t errlen) {
    hid_t sp = H5Dget_space(ds);
    if (sp < 0) return set_error(err, errlen, "%s: dataset '%s' has an unreadable dataspace", f->path, name);
    int rc = 0;
    int nd = H5Sget_simple_extent_ndims(sp);
    hsize_t dims[H5S_MAX_RANK];
    if (H5Sget_simple_extent_type(sp) == H5S_NULL || nd < 0)
        rc = set_error(err, errlen, "%s: dataset '%s' holds no data (null dataspace)", f->path, name);
    else if (nd > TENSOR_MAX_DIMS)
        rc = set_error(err, errlen, "%s: dataset '%s' has rank %d, more than the %d supported", f->path, name, nd,
                  TENSOR_MAX_DIMS);
    else if (H5Sget_simple_extent_dims(sp, dims, NULL) < 0)
        rc = set_error(err, errlen, "%s: dataset '%s' has unreadable extents", f->path, name);
    H5Sclose(sp);
    if (rc) return rc;
    uint64_t count = 1;
    for (int i = 0; i < nd; i++) {
        if (dims[i] > (hsize_t)H5_MAX_ELEMENTS || (dims[i] && count > (uint64_t)H5_MAX_ELEMENTS / dims[i]))
            return set_error(err, errlen, "%s: dataset '%s' claims more than 2^34 elements (extent %llu in dim %d)",
                        f->path, name, (unsigned long long)dims[i], i);
        count *= dims[i];
        info->shape[i] = (int64_t)dims[i];
    }
    info->ndim = nd;
    return 0;
}

int h5_dataset_info(const h5_file_t *f, const char *name, h5_info_t *info, char *err, size_t errlen) {
    hid_t ds;
    memset(info, 0, sizeof *info);
    if (h5i_open_dataset(f, name, &ds, err, errlen)) return -1;
    hid_t type = H5Dget_type(ds);
    int rc = 0;
    if (type < 0) rc = set_error(err, errlen, "%s: dataset '%s' has an unreadable type", f->path, name);
    else h5i_describe_type(type, info);
    if (type >= 0) H5Tclose(type);
    if (rc == 0) rc = describe_space(f, name, ds, info, err, errlen);
    H5Dclose(ds);
    return rc;
}

/* ---- reading ------------------------------------------------------------------------------- */

static int read_ints(const h5_file_t *f, const char *name, hid_t ds, const h5_info_t *info, int32_t *dst,
                     int64_t n, char *err, size_t errlen) {
    if (!strcmp(info->type_name, "int32")) {
        if (H5Dread(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0) return -2;
        return 0;
    }
    /* Any other width: through int64 (HDF5 clamps values that overflow it), then range-checked. */
    int64_t *wide = malloc((size_t)(n ? n : 1) * sizeof *wide);
    if (!wide) return set_error(err, errlen, "%s: out of memory reading dataset '%s'", f->path, name);
    int rc = 0;
    if (H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, wide) < 0) rc = -2;
    for (int64_t i = 0; rc == 0 && i < n; i++) {
        if (wide[i] < INT32_MIN || wide[i] > INT32_MAX)
            rc = set_error(err, errlen, "%s: dataset '%s' (%s) holds %lld at element %lld, outside the int32 range",
                      f->path, name, info->type_name, (long long)wide[i], (long long)i);
        else dst[i] = (int32_t)wide[i];
    }
    free(wide);
    return rc;
}

int h5_read_tensor(const h5_file_t *f, const char *name, dtype_t want, tensor_t *out, h5_info_t *info_out, char *err,
                   size_t errlen) {
    memset(out, 0, sizeof *out);
    if (want != DTYPE_F32 && want != DTYPE_I32)
        return set_error(err, errlen, "%s: dataset '%s' requested as %s; only float32 and int32 reads exist", f->path,
                    name, dtype_name(want));
    h5_info_t info;
    if (h5_dataset_info(f, name, &info, err, errlen)) return -1;
    if (info_out) *info_out = info;
    if (want == DTYPE_F32 && !info.is_float)
        return set_error(err, errlen, "%s: dataset '%s' is %s, expected float32", f->path, name, info.type_name);
    if (want == DTYPE_I32 && !info.is_int)
        return set_error(err, errlen, "%s: dataset '%s' is %s, expected int32", f->path, name, info.type_name);

    tensor_t t = tensor_make(want, DEVICE_CPU, info.ndim, info.shape);
    size_t bytes = tensor_bytes(&t);
    t.data = malloc(bytes ? bytes : 1);
    if (!t.data) return set_error(err, errlen, "%s: out of memory reading dataset '%s' (%zu bytes)", f->path, name, bytes);
    hid_t ds;
    if (h5i_open_dataset(f, name, &ds, err, errlen)) {
        free(t.data);
        return -1;
    }
    int rc;
    if (want == DTYPE_F32) rc = H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data) < 0 ? -2 : 0;
    else rc = read_ints(f, name, ds, &info, t.data, tensor_numel(&t), err, errlen);
    H5Dclose(ds);
    if (rc == -2) rc = set_error(err, errlen, "%s: dataset '%s' could not be read (damaged file or checksum mismatch)",
                            f->path, name);
    if (rc) {
        free(t.data);
        return -1;
    }
    *out = t;
    return 0;
}

/* ---- writing ------------------------------------------------------------------------------- */

/* A 2-byte IEEE-style float type: float16 (5 exponent bits) or bfloat16 (8), little-endian, as
 * h5py and numpy write float16. */
hid_t h5i_half_type(int exp_bits) {
    int man_bits = 15 - exp_bits;
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    H5Tset_fields(t, 15, (size_t)man_bits, (size_t)exp_bits, 0, (size_t)man_bits);
    H5Tset_size(t, 2);
    H5Tset_ebias(t, exp_bits == 5 ? 15 : 127);
    return t;
}

/* File type (new handle) and memory type (new handle) for a dtype; -1 when unsupported. */
static int types_for(dtype_t dt, hid_t *file_type, hid_t *mem_type) {
    switch (dt) {
    case DTYPE_F32: *file_type = H5Tcopy(H5T_IEEE_F32LE), *mem_type = H5Tcopy(H5T_NATIVE_FLOAT); return 0;
    case DTYPE_F64: *file_type = H5Tcopy(H5T_IEEE_F64LE), *mem_type = H5Tcopy(H5T_NATIVE_DOUBLE); return 0;
    case DTYPE_I32: *file_type = H5Tcopy(H5T_STD_I32LE), *mem_type = H5Tcopy(H5T_NATIVE_INT32); return 0;
    case DTYPE_F16: *file_type = h5i_half_type(5), *mem_type = h5i_half_type(5); return 0; /* little-endian hosts */
    case DTYPE_BF16: *file_type = h5i_half_type(8), *mem_type = h5i_half_type(8); return 0;
    }
    return -1;
}

/* Chunk shape of about CHUNK_TARGET_BYTES: trailing dims whole, leading dims cut. */
static void chunk_shape(const tensor_t *t, hsize_t *chunk) {
    size_t rest = dtype_size(t->dtype);
    for (int i = 0; i < t->ndim; i++) chunk[i] = (hsize_t)t->shape[i];
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (rest * (size_t)t->shape[i] > CHUNK_TARGET_BYTES) {
            size_t c = CHUNK_TARGET_BYTES / rest;
            chunk[i] = c < 1 ? 1 : c;
            for (int j = i - 1; j >= 0; j--) chunk[j] = 1;
            return;
        }
        rest *= (size_t)t->shape[i];
    }
}

static hid_t make_dcpl(const tensor_t *t, int chunked) {
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (!chunked || t->ndim == 0 || tensor_numel(t) == 0) return dcpl;
    hsize_t chunk[TENSOR_MAX_DIMS];
    chunk_shape(t, chunk);
    H5Pset_chunk(dcpl, t->ndim, chunk);
    H5Pset_fletcher32(dcpl);
    return dcpl;
}

static int write_checked(h5_file_t *f, const char *name, const tensor_t *t, char *err, size_t errlen) {
    if (f->id < 0 || !f->writable) return set_error(err, errlen, "%s: not open for writing", f->path ? f->path : "?");
    if (t->device != DEVICE_CPU)
        return set_error(err, errlen, "%s: dataset '%s': only CPU tensors can be written", f->path, name);
    if (!t->data && tensor_numel(t) > 0)
        return set_error(err, errlen, "%s: dataset '%s': tensor has no data", f->path, name);
    if (h5_exists(f, name)) return set_error(err, errlen, "%s: dataset '%s' already exists", f->path, name);
    return 0;
}

int h5_write_tensor(h5_file_t *f, const char *name, const tensor_t *t, int chunked, char *err, size_t errlen) {
    h5i_quiet();
    if (write_checked(f, name, t, err, errlen)) return -1;
    hid_t ftype, mtype;
    if (types_for(t->dtype, &ftype, &mtype))
        return set_error(err, errlen, "%s: dataset '%s': dtype %s cannot be written", f->path, name, dtype_name(t->dtype));
    hsize_t dims[TENSOR_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++) dims[i] = (hsize_t)t->shape[i];
    hid_t sp = t->ndim ? H5Screate_simple(t->ndim, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t dcpl = make_dcpl(t, chunked);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE); /* "group/name" creates the group on the way */
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t ds = H5Dcreate2((hid_t)f->id, name, ftype, sp, lcpl, dcpl, H5P_DEFAULT);
    H5Pclose(lcpl);
    int rc = 0;
    if (ds < 0) rc = set_error(err, errlen, "%s: cannot create dataset '%s'", f->path, name);
    else if (tensor_numel(t) > 0 && H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->data) < 0)
        rc = set_error(err, errlen, "%s: writing dataset '%s' failed (disk full?)", f->path, name);
    if (ds >= 0) H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(sp);
    H5Tclose(ftype);
    H5Tclose(mtype);
    return rc;
}

/* ---- attributes ---------------------------------------------------------------------------- */

static int write_attr(h5_file_t *f, const char *obj, const char *name, hid_t ftype, hid_t mtype, const void *buf,
                      char *err, size_t errlen) {
    h5i_quiet();
    if (f->id < 0 || !f->writable) return set_error(err, errlen, "%s: not open for writing", f->path ? f->path : "?");
    hid_t oid = H5Oopen((hid_t)f->id, obj, H5P_DEFAULT);
    if (oid < 0) return set_error(err, errlen, "%s: no object '%s' to hold attribute '%s'", f->path, obj, name);
    if (H5Aexists(oid, name) > 0) H5Adelete(oid, name);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(oid, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = 0;
    if (a < 0 || H5Awrite(a, mtype, buf) < 0)
        rc = set_error(err, errlen, "%s: cannot write attribute '%s' of '%s'", f->path, name, obj);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    H5Oclose(oid);
    return rc;
}

int h5_write_attr_string(h5_file_t *f, const char *obj, const char *name, const char *value, char *err,
                         size_t errlen) {
    h5i_quiet();
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    int rc = write_attr(f, obj, name, t, t, &value, err, errlen);
    H5Tclose(t);
    return rc;
}

int h5_write_attr_double(h5_file_t *f, const char *obj, const char *name, double value, char *err, size_t errlen) {
    return write_attr(f, obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value, err, errlen);
}

int h5_write_attr_int(h5_file_t *f, const char *obj, const char *name, int64_t value, char *err, size_t errlen) {
    return write_attr(f, obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value, err, errlen);
}

/* Opens a single-valued attribute; *type receives its file type. */
static int open_attr(const h5_file_t *f, const char *obj, const char *name, hid_t *oid, hid_t *a, hid_t *type,
                     char *err, size_t errlen) {
    h5i_quiet();
    *oid = H5Oopen((hid_t)f->id, obj, H5P_DEFAULT);
    if (*oid < 0) return set_error(err, errlen, "%s: no object '%s' (looking for attribute '%s')", f->path, obj, name);
    if (H5Aexists(*oid, name) <= 0 || (*a = H5Aopen(*oid, name, H5P_DEFAULT)) < 0) {
        H5Oclose(*oid);
        return set_error(err, errlen, "%s: attribute '%s' of '%s' is missing", f->path, name, obj);
    }
    hid_t sp = H5Aget_space(*a);
    hssize_t npts = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (sp >= 0) H5Sclose(sp);
    *type = H5Aget_type(*a);
    if (npts != 1 || *type < 0) {
        if (*type >= 0) H5Tclose(*type);
        H5Aclose(*a);
        H5Oclose(*oid);
        return set_error(err, errlen, "%s: attribute '%s' of '%s' is not a single value", f->path, name, obj);
    }
    return 0;
}

static void close_attr(hid_t oid, hid_t a, hid_t type) {
    H5Tclose(type);
    H5Aclose(a);
    H5Oclose(oid);
}

static int read_string_value(hid_t a, hid_t type, char **out) {
    if (H5Tis_variable_str(type) > 0) {
        hid_t m = H5Tcopy(H5T_C_S1);
        H5Tset_size(m, H5T_VARIABLE);
        H5Tset_cset(m, H5Tget_cset(type));
        char *p = NULL;
        int rc = H5Aread(a, m, &p) < 0 ? -1 : 0;
        H5Tclose(m);
        if (rc == 0) *out = dup_string(p ? p : "");
        if (p) H5free_memory(p);
        return rc || !*out ? -1 : 0;
    }
    size_t size = H5Tget_size(type);
    char *buf = calloc(size + 1, 1);
    if (!buf) return -1;
    hid_t m = H5Tcopy(type);
    int rc = H5Aread(a, m, buf) < 0 ? -1 : 0;
    H5Tclose(m);
    if (rc) free(buf);
    else *out = buf;
    return rc;
}

int h5_read_attr_string(const h5_file_t *f, const char *obj, const char *name, char *buf, size_t len, char *err,
                        size_t errlen) {
    hid_t oid, a, type;
    if (open_attr(f, obj, name, &oid, &a, &type, err, errlen)) return -1;
    int rc = 0;
    char *s = NULL;
    if (H5Tget_class(type) != H5T_STRING)
        rc = set_error(err, errlen, "%s: attribute '%s' of '%s' is not a string", f->path, name, obj);
    else if (read_string_value(a, type, &s))
        rc = set_error(err, errlen, "%s: attribute '%s' of '%s' could not be read", f->path, name, obj);
    else if (strlen(s) >= len)
        rc = set_error(err, errlen, "%s: attribute '%s' of '%s' is longer than %zu bytes", f->path, name, obj, len - 1);
    else memcpy(buf, s, strlen(s) + 1);
    free(s);
    close_attr(oid, a, type);
    return rc;
}

int h5_read_attr_double(const h5_file_t *f, const char *obj, const char *name, double *value, char *err,
                        size_t errlen) {
    hid_t oid, a, type;
    if (open_attr(f, obj, name, &oid, &a, &type, err, errlen)) return -1;
    H5T_class_t cls = H5Tget_class(type);
    int rc = 0;
    if (cls != H5T_FLOAT && cls != H5T_INTEGER)
        rc = set_error(err, errlen, "%s: attribute '%s' of '%s' is not a number", f->path, name, obj);
    else if (H5Aread(a, H5T_NATIVE_DOUBLE, value) < 0)
        rc = set_error(err, errlen, "%s: attribute '%s' of '%s' could not be read", f->path, name, obj);
    close_attr(oid, a, type);
    return rc;
}

int h5_read_attr_int(const h5_file_t *f, const char *obj, const char *name, int64_t *value, char *err,
                     size_t errlen) {
    hid_t oid, a, type;
    if (open_attr(f, obj, name, &oid, &a, &type, err, errlen)) return -1;
    int rc = 0;
    if (H5Tget_class(type) != H5T_INTEGER)
        rc = set_error(err, errlen, "%s: attribute '%s' of '%s' is not an integer", f->path, name, obj);
    else if (H5Aread(a, H5T_NATIVE_INT64, value) < 0)
        rc = set_error(err, errlen, "%s: attribute '%s' of '%s' could not be read", f->path, name, obj);
    close_attr(oid, a, type);
    return rc;
}
