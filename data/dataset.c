/* data/dataset.c — the latent dataset over one or more HDF5 files (contract in dataset.h).
 * dataset_open validates everything up front so that a training step never meets a bad file;
 * dataset_read is then one hyperslab read per part, through h5_rows. */
#include "dataset.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "h5_rows.h"

static const char *const latent_dim_names[5] = {"n", "channels", "frames", "height", "width"};
static const char *const text_dim_names[3] = {"n", "text_len", "text_dim"};

/* "[16, 3, 8, 8]" for shape[from..ndim-1]. */
static const char *shape_str(const int64_t *shape, int from, int ndim, char *buf, size_t len) {
    tensor_t t = tensor_make(DTYPE_F32, DEVICE_CPU, ndim - from, shape + from);
    return tensor_shape_str(&t, buf, len);
}

/* One dataset of one file: present, a float, the expected rank, every extent >= 1 and a sample
 * no larger than DATASET_MAX_SAMPLE_ELEMENTS. */
static int check_part(const h5_file_t *f, const char *name, int rank, const char *const *dim_names, const char *layout,
                      h5_info_t *info, char *err, size_t errlen) {
    if (h5_rows_info(f, name, info, err, errlen)) return -1;
    char buf[160];
    if (info->ndim != rank)
        return set_error(err, errlen, "%s: dataset '%s' has rank %d (shape %s), expected rank %d: %s", f->path, name,
                    info->ndim, shape_str(info->shape, 0, info->ndim, buf, sizeof buf), rank, layout);
    if (!info->is_float)
        return set_error(err, errlen, "%s: dataset '%s' is %s, expected float16 or float32", f->path, name, info->type_name);
    int64_t per_sample = 1;
    for (int i = 0; i < rank; i++) {
        if (info->shape[i] < 1)
            return set_error(err, errlen, "%s: dataset '%s' has %s = 0 (shape %s), expected at least 1", f->path, name,
                        dim_names[i], shape_str(info->shape, 0, rank, buf, sizeof buf));
        if (i > 0) per_sample *= info->shape[i]; /* no overflow: h5_rows_info bounds each row by 2^34 */
    }
    if (per_sample > DATASET_MAX_SAMPLE_ELEMENTS)
        return set_error(err, errlen,
                    "%s: dataset '%s' has %lld elements per sample (shape %s), more than the 2^28 "
                    "allowed",
                    f->path, name, (long long)per_sample, shape_str(info->shape, 0, rank, buf, sizeof buf));
    return 0;
}

/* Opens one file and checks both datasets and their agreement on n. */
static int check_file(const char *path, dataset_file_t *df, h5_info_t *lat, h5_info_t *txt, char *err, size_t errlen) {
    h5_file_t f;
    if (h5_open_read(path, &f, err, errlen)) return -1;
    int rc = check_part(&f, "latents", 5, latent_dim_names, "[n, 16, frames, height, width]", lat, err, errlen);
    if (rc == 0) rc = check_part(&f, "text", 3, text_dim_names, "[n, text_len, text_dim]", txt, err, errlen);
    if (rc == 0 && lat->shape[0] != txt->shape[0])
        rc = set_error(err, errlen, "%s: dataset 'latents' holds %lld samples but 'text' holds %lld; they must match", path,
                  (long long)lat->shape[0], (long long)txt->shape[0]);
    h5_close(&f, NULL, 0);
    if (rc) return rc;
    df->n = lat->shape[0];
    snprintf(df->latents_type, sizeof df->latents_type, "%s", lat->type_name);
    snprintf(df->text_type, sizeof df->text_type, "%s", txt->type_name);
    return 0;
}

/* Same per-sample shape as the first file's, else a sentence naming both files. */
static int check_same(const char *path, const char *first_path, const char *name, const h5_info_t *a,
                      const h5_info_t *first, char *err, size_t errlen) {
    int same = a->ndim == first->ndim;
    for (int i = 1; same && i < a->ndim; i++) same = a->shape[i] == first->shape[i];
    if (same) return 0;
    char sa[160], sb[160];
    return set_error(err, errlen, "%s: dataset '%s' has per-sample shape %s, but %s has %s; every file must match", path,
                name, shape_str(a->shape, 1, a->ndim, sa, sizeof sa), first_path,
                shape_str(first->shape, 1, first->ndim, sb, sizeof sb));
}

/* Splits list at commas into trimmed, non-empty names (allocated in ds->files[i].path). */
static int split_list(const char *list, dataset_t *ds, char *err, size_t errlen) {
    if (!list) return set_error(err, errlen, "no dataset given (expected a file name or a comma-separated list)");
    int count = 1;
    for (const char *p = list; *p; p++) count += *p == ',';
    if (count > DATASET_MAX_FILES)
        return set_error(err, errlen, "dataset list names %d files, more than the %d allowed", count, DATASET_MAX_FILES);
    ds->files = calloc((size_t)count, sizeof *ds->files);
    if (!ds->files) return set_error(err, errlen, "out of memory for a list of %d dataset files", count);
    ds->nfiles = count;
    const char *start = list;
    for (int i = 0; i < count; i++) {
        const char *end = strchr(start, ',');
        if (!end) end = start + strlen(start);
        const char *a = start, *b = end;
        while (a < b && isspace((unsigned char)*a)) a++;
        while (b > a && isspace((unsigned char)b[-1])) b--;
        if (a == b) {
            if (count == 1) return set_error(err, errlen, "dataset list is empty (expected a file name)");
            return set_error(err, errlen, "dataset list '%s' has an empty name at position %d", list, i + 1);
        }
        ds->files[i].path = malloc((size_t)(b - a) + 1);
        if (!ds->files[i].path) return set_error(err, errlen, "out of memory reading the dataset list");
        memcpy(ds->files[i].path, a, (size_t)(b - a));
        ds->files[i].path[b - a] = '\0';
        start = *end ? end + 1 : end;
    }
    return 0;
}

static void dataset_reset(dataset_t *ds) {
    memset(ds, 0, sizeof *ds);
    ds->open_file.id = -1;
    ds->open_index = -1;
}

static void set_shapes(dataset_t *ds, const h5_info_t *lat, const h5_info_t *txt) {
    ds->channels = (int)lat->shape[1], ds->frames = (int)lat->shape[2];
    ds->height = (int)lat->shape[3], ds->width = (int)lat->shape[4];
    ds->text_len = (int)txt->shape[1], ds->text_dim = (int)txt->shape[2];
    ds->latent_numel = lat->shape[1] * lat->shape[2] * lat->shape[3] * lat->shape[4];
    ds->text_numel = txt->shape[1] * txt->shape[2];
}

int dataset_open(const char *list, dataset_t *ds, char *err, size_t errlen) {
    dataset_reset(ds);
    int rc = split_list(list, ds, err, errlen);
    h5_info_t lat0, txt0;
    for (int i = 0; rc == 0 && i < ds->nfiles; i++) {
        dataset_file_t *df = &ds->files[i];
        h5_info_t lat, txt;
        rc = check_file(df->path, df, &lat, &txt, err, errlen);
        if (rc == 0 && i == 0) lat0 = lat, txt0 = txt;
        if (rc == 0) rc = check_same(df->path, ds->files[0].path, "latents", &lat, &lat0, err, errlen);
        if (rc == 0) rc = check_same(df->path, ds->files[0].path, "text", &txt, &txt0, err, errlen);
        if (rc == 0 && df->n > INT64_MAX / 2 - ds->n)
            rc = set_error(err, errlen, "%s: the files hold more samples together than can be counted", df->path);
        if (rc == 0) df->first = ds->n, ds->n += df->n;
    }
    if (rc) {
        dataset_close(ds);
        return -1;
    }
    set_shapes(ds, &lat0, &txt0);
    return 0;
}

int dataset_file_of(const dataset_t *ds, int64_t index) {
    if (index < 0 || index >= ds->n) return -1;
    int lo = 0, hi = ds->nfiles - 1; /* the last file whose first <= index */
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        if (ds->files[mid].first <= index) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

/* A sample with NaN or Inf would poison a step; refuse it with its place. */
static int check_finite(const dataset_t *ds, int file, int64_t index, const char *name, const float *x, int64_t n,
                        char *err, size_t errlen) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return set_error(err, errlen, "%s: sample %lld of dataset '%s' (global sample %lld) holds %s at element %lld",
                        ds->files[file].path, (long long)(index - ds->files[file].first), name, (long long)index,
                        isnan(x[i]) ? "NaN" : "Inf", (long long)i);
    return 0;
}

int dataset_read(dataset_t *ds, int64_t index, float *latents, float *text, char *err, size_t errlen) {
    int file = dataset_file_of(ds, index);
    if (file < 0)
        return set_error(err, errlen, "dataset sample %lld does not exist (the dataset holds %lld samples)",
                    (long long)index, (long long)ds->n);
    if (ds->open_index != file) {
        if (ds->open_index >= 0) h5_close(&ds->open_file, NULL, 0);
        ds->open_index = -1;
        if (h5_open_read(ds->files[file].path, &ds->open_file, err, errlen)) return -1;
        ds->open_index = file;
    }
    int64_t row = index - ds->files[file].first;
    if (latents) {
        if (h5_read_row_f32(&ds->open_file, "latents", row, latents, ds->latent_numel, err, errlen)) return -1;
        if (check_finite(ds, file, index, "latents", latents, ds->latent_numel, err, errlen)) return -1;
    }
    if (text) {
        if (h5_read_row_f32(&ds->open_file, "text", row, text, ds->text_numel, err, errlen)) return -1;
        if (check_finite(ds, file, index, "text", text, ds->text_numel, err, errlen)) return -1;
    }
    return 0;
}

void dataset_close(dataset_t *ds) {
    if (ds->open_index >= 0) h5_close(&ds->open_file, NULL, 0);
    for (int i = 0; i < ds->nfiles && ds->files; i++) free(ds->files[i].path);
    free(ds->files);
    dataset_reset(ds);
}
