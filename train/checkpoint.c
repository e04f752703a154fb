/* train/checkpoint.c — atomic, checksummed, exactly resumable checkpoints (checkpoint.h). */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "h5_tensor.h"
#include "weights.h"

int ckpt_prepare_dir(const char *path, char *err, size_t errlen) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) /* mkdir -p */
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0777);
            *p = '/';
        }
    if (mkdir(buf, 0777) && errno != EEXIST) {
        snprintf(err, errlen, "cannot create directory '%s': %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Steps of the checkpoints in dir (ckpt-<digits>.h5), newest first. Returns the count. */
static int list_checkpoints(const char *dir, int64_t **steps_out) {
    DIR *d = opendir(dir);
    *steps_out = NULL;
    if (!d) return 0;
    int n = 0, cap = 0;
    int64_t *steps = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        long long step;
        char tail[8];
        if (sscanf(e->d_name, "ckpt-%lld.%7s", &step, tail) != 2 || strcmp(tail, "h5")) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            int64_t *grown = realloc(steps, sizeof(int64_t) * (size_t)cap);
            if (!grown) break;
            steps = grown;
        }
        steps[n++] = step;
    }
    closedir(d);
    for (int i = 1; i < n; i++) /* insertion sort, newest first */
        for (int j = i; j > 0 && steps[j] > steps[j - 1]; j--) {
            int64_t x = steps[j];
            steps[j] = steps[j - 1], steps[j - 1] = x;
        }
    *steps_out = steps;
    return n;
}

static void ckpt_name(const char *dir, int64_t step, char *out, size_t len) {
    snprintf(out, len, "%s/ckpt-%08lld.h5", dir, (long long)step);
}

int ckpt_write(const char *out_dir, const ckpt_state_t *s, const param_table_t *t, const char *config_text,
               int keep_last, char *path_out, size_t path_len, char *err, size_t errlen) {
    if (ckpt_prepare_dir(out_dir, err, errlen)) return -1;
    char path[1100];
    ckpt_name(out_dir, s->step, path, sizeof path);
    char seed[32]; /* 64-bit unsigned: stored as text so that no bit is lost */
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)s->seed);
    h5_file_t f;
    if (h5_create_temp(path, &f, err, errlen)) return -1;
    int rc = weights_write_group(&f, "", t, s->params, err, errlen) ||
             weights_write_group(&f, "adam_m", t, s->adam_m, err, errlen) ||
             weights_write_group(&f, "adam_v", t, s->adam_v, err, errlen) ||
             (s->ema && weights_write_group(&f, "ema", t, s->ema, err, errlen)) ||
             h5_write_attr_int(&f, "/", "format_version", CKPT_FORMAT_VERSION, err, errlen) ||
             h5_write_attr_int(&f, "/", "step", s->step, err, errlen) ||
             h5_write_attr_int(&f, "/", "adam_steps", s->adam_steps, err, errlen) ||
             h5_write_attr_int(&f, "/", "data_epoch", s->data_epoch, err, errlen) ||
             h5_write_attr_int(&f, "/", "data_position", s->data_position, err, errlen) ||
             h5_write_attr_int(&f, "/", "bad_steps", s->bad_steps, err, errlen) ||
             h5_write_attr_string(&f, "/", "seed", seed, err, errlen) ||
             h5_write_attr_string(&f, "/", "config", config_text ? config_text : "", err, errlen);
    if (rc) {
        h5_abort(&f);
        return -1;
    }
    if (h5_commit(&f, err, errlen)) return -1;
    if (path_out) snprintf(path_out, path_len, "%s", path);
    int64_t *steps;
    int n = list_checkpoints(out_dir, &steps);
    for (int i = keep_last; i < n; i++) { /* prune the oldest beyond keep_last */
        char old[1100];
        ckpt_name(out_dir, steps[i], old, sizeof old);
        unlink(old);
    }
    free(steps);
    return 0;
}

int ckpt_read(const char *path, ckpt_state_t *s, const param_table_t *t, char *config_text, size_t config_len,
              char *err, size_t errlen) {
    h5_file_t f;
    if (h5_open_read(path, &f, err, errlen)) return -1;
    int64_t version = -1;
    char seed[32];
    int rc = h5_read_attr_int(&f, "/", "format_version", &version, err, errlen);
    if (!rc && (version < 1 || version > CKPT_FORMAT_VERSION)) {
        snprintf(err, errlen, "%s: checkpoint format version %lld, this program reads versions 1 to %d", path,
                 (long long)version, CKPT_FORMAT_VERSION);
        rc = -1;
    }
    rc = rc || h5_read_attr_int(&f, "/", "step", &s->step, err, errlen);
    if (!rc) s->adam_steps = s->step; /* version 1 */
    rc = rc || (version >= 2 && h5_read_attr_int(&f, "/", "adam_steps", &s->adam_steps, err, errlen));
    if (!rc && (s->adam_steps < 0 || s->adam_steps > s->step)) {
        snprintf(err, errlen, "%s: adam_steps %lld is not between 0 and step %lld", path, (long long)s->adam_steps,
                 (long long)s->step);
        rc = -1;
    }
    rc = rc ||
         h5_read_attr_int(&f, "/", "data_epoch", &s->data_epoch, err, errlen) ||
         h5_read_attr_int(&f, "/", "data_position", &s->data_position, err, errlen) ||
         h5_read_attr_int(&f, "/", "bad_steps", &s->bad_steps, err, errlen) ||
         h5_read_attr_string(&f, "/", "seed", seed, sizeof seed, err, errlen) ||
         (config_text && h5_read_attr_string(&f, "/", "config", config_text, config_len, err, errlen));
    if (!rc) s->seed = strtoull(seed, NULL, 10);
    if (!rc && s->ema && !h5_exists(&f, "ema")) {
        snprintf(err, errlen, "%s: the run keeps EMA weights but the checkpoint has none (group ema/ missing)", path);
        rc = -1;
    }
    rc = rc || weights_read_group(&f, "", t, s->params, NULL, err, errlen) ||
         weights_read_group(&f, "adam_m", t, s->adam_m, NULL, err, errlen) ||
         weights_read_group(&f, "adam_v", t, s->adam_v, NULL, err, errlen) ||
         (s->ema && weights_read_group(&f, "ema", t, s->ema, NULL, err, errlen));
    char ignored[8];
    h5_close(&f, ignored, sizeof ignored);
    return rc ? -1 : 0;
}

int ckpt_resume_latest(const char *out_dir, ckpt_state_t *s, const param_table_t *t, char *path_out,
                       size_t path_len, char *err, size_t errlen) {
    int64_t *steps;
    int n = list_checkpoints(out_dir, &steps);
    for (int i = 0; i < n; i++) {
        char path[1100], why[2400];
        ckpt_name(out_dir, steps[i], path, sizeof path);
        if (ckpt_read(path, s, t, NULL, 0, why, sizeof why) == 0) {
            snprintf(path_out, path_len, "%s", path);
            free(steps);
            return 1;
        }
        fprintf(stderr, "warning: skipping a checkpoint: %s\n", why);
    }
    free(steps);
    if (n == 0) return 0;
    snprintf(err, errlen, "%s holds %d checkpoint(s) and none is usable (reasons above)", out_dir, n);
    return -1;
}
