/* train/checkpoint.h — training checkpoints: HDF5 files that make a resume exact.
 *
 * A checkpoint OUT_DIR/ckpt-<step, 8 digits>.h5 holds the parameters at its root (so it also
 * loads as a weights file), the AdamW moments in groups adam_m/ and adam_v/, the EMA weights in
 * ema/ when the run keeps them, and root attributes: format_version, step, adam_steps, data_epoch,
 * data_position, seed, bad_steps and the resolved config text. Every dataset is chunked with a
 * Fletcher-32 checksum, so a damaged file fails to read. Writing goes to a temporary name that is
 * fsynced and renamed, then older checkpoints beyond keep_last are deleted: at every moment the
 * directory holds complete checkpoints only (plus, after a crash, a stray *.tmp that is ignored).
 * Reading refuses a file with another format version, a parameter missing, extra or misshapen,
 * or a checksum error, with a sentence naming the file and the reason. Version 1 files (no
 * adam_steps: their runs counted every step in AdamW's bias correction) read with adam_steps = step,
 * so that a resume continues exactly what they did. */
#ifndef SLA_CHECKPOINT_H
#define SLA_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "params.h"

#define CKPT_FORMAT_VERSION 2 /* 2: adam_steps */

typedef struct ckpt_state {
    int64_t step;           /* training steps completed (skipped ones included: the data and schedule
                               positions) */
    int64_t adam_steps;     /* AdamW updates applied (step minus the skipped steps): the t of its bias
                               correction, as PyTorch's per-parameter step counts it */
    int64_t data_epoch, data_position;
    uint64_t seed;
    int64_t bad_steps;      /* consecutive non-finite losses at the time of writing */
    float *params, *adam_m, *adam_v; /* fp32 arenas [table.total] */
    float *ema;             /* NULL when the run keeps no EMA */
} ckpt_state_t;

/* Creates out_dir and its parents when missing (mkdir -p). 0 or -1 with err. */
int ckpt_prepare_dir(const char *out_dir, char *err, size_t errlen);

/* Writes OUT_DIR/ckpt-<step>.h5 (creating OUT_DIR if needed) and prunes to keep_last files.
 * path_out receives the file name. 0 or -1 with err. */
int ckpt_write(const char *out_dir, const ckpt_state_t *s, const param_table_t *t, const char *config_text,
               int keep_last, char *path_out, size_t path_len, char *err, size_t errlen);

/* Reads a checkpoint into s (arenas provided by the caller). config_text may be NULL. */
int ckpt_read(const char *path, ckpt_state_t *s, const param_table_t *t, char *config_text, size_t config_len,
              char *err, size_t errlen);

/* Resume from the newest readable checkpoint in out_dir: damaged or mismatched ones are reported
 * on stderr and skipped for the previous one. Returns 1 when one was loaded (its name in path_out),
 * 0 when out_dir holds no checkpoint, -1 (with err) when it holds some but none is usable. */
int ckpt_resume_latest(const char *out_dir, ckpt_state_t *s, const param_table_t *t, char *path_out,
                       size_t path_len, char *err, size_t errlen);

#endif
