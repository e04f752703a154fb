/* model/weights.c — model weights by name in HDF5 (weights.h). */
#include "weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "group/name", or "name" for the root. */
static void dataset_path(const char *group, const char *name, char *out, size_t len) {
    if (group && group[0]) snprintf(out, len, "%s/%s", group, name);
    else snprintf(out, len, "%s", name);
}

static int is_sla_proj(const char *name) { return strstr(name, ".self_attn.proj_l.") != NULL; }

int weights_write_group(h5_file_t *f, const char *group, const param_table_t *t, const float *arena, char *err,
                        size_t errlen) {
    for (int i = 0; i < t->count; i++) {
        const param_info_t *p = &t->p[i];
        char path[PARAM_NAME_MAX + 64];
        dataset_path(group, p->name, path, sizeof path);
        tensor_t view = tensor_make(DTYPE_F32, DEVICE_CPU, p->ndim, p->shape);
        view.data = (void *)(arena + p->offset);
        if (h5_write_tensor(f, path, &view, 1, err, errlen)) return -1;
    }
    return 0;
}

int weights_read_group(const h5_file_t *f, const char *group, const param_table_t *t, float *arena,
                       int *n_zero_filled, char *err, size_t errlen) {
    int zero_filled = 0;
    char **names = NULL;
    int count = 0;
    if (h5_list_datasets(f, group && group[0] ? group : "/", &names, &count, err, errlen)) return -1;
    for (int n = 0; n < count; n++)
        if (param_table_find(t, names[n]) < 0) {
            snprintf(err, errlen, "%s: tensor '%s%s%s' is not a parameter of this model (extra tensor)", f->path,
                     group && group[0] ? group : "", group && group[0] ? "/" : "", names[n]);
            h5_names_free(names, count);
            return -1;
        }
    h5_names_free(names, count);
    for (int i = 0; i < t->count; i++) {
        const param_info_t *p = &t->p[i];
        char path[PARAM_NAME_MAX + 64];
        dataset_path(group, p->name, path, sizeof path);
        float *dst = arena + p->offset;
        if (!h5_exists(f, path)) {
            if (is_sla_proj(p->name)) { /* a dense checkpoint: SLA's proj starts at zero */
                memset(dst, 0, sizeof(float) * (size_t)p->numel);
                zero_filled++;
                continue;
            }
            snprintf(err, errlen, "%s: missing tensor '%s'", f->path, path);
            return -1;
        }
        h5_info_t info;
        if (h5_dataset_info(f, path, &info, err, errlen)) return -1;
        int same = info.ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = info.shape[d] == p->shape[d];
        if (!same) {
            tensor_t want = tensor_make(DTYPE_F32, DEVICE_CPU, p->ndim, p->shape);
            tensor_t got = tensor_make(DTYPE_F32, DEVICE_CPU, info.ndim, info.shape);
            char a[96], b[96];
            snprintf(err, errlen, "%s: tensor '%s' has shape %s, expected %s", f->path, path,
                     tensor_shape_str(&got, a, sizeof a), tensor_shape_str(&want, b, sizeof b));
            return -1;
        }
        tensor_t x;
        if (h5_read_tensor(f, path, DTYPE_F32, &x, NULL, err, errlen)) return -1;
        memcpy(dst, x.data, sizeof(float) * (size_t)p->numel);
        tensor_free(&x);
    }
    if (n_zero_filled) *n_zero_filled = zero_filled;
    return 0;
}

int weights_save(const char *path, const param_table_t *t, const float *arena, char *err, size_t errlen) {
    h5_file_t f;
    if (h5_create_temp(path, &f, err, errlen)) return -1;
    if (weights_write_group(&f, "", t, arena, err, errlen) ||
        h5_write_attr_string(&f, "/", "content", "sla-dit model weights", err, errlen)) {
        h5_abort(&f);
        return -1;
    }
    return h5_commit(&f, err, errlen);
}

int weights_load(const char *path, const param_table_t *t, float *arena, int *n_zero_filled, char *err,
                 size_t errlen) {
    h5_file_t f;
    if (h5_open_read(path, &f, err, errlen)) return -1;
    int rc = weights_read_group(&f, "", t, arena, n_zero_filled, err, errlen);
    char ignored[8];
    h5_close(&f, ignored, sizeof ignored);
    return rc;
}
