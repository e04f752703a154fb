/* tests/test_checkpoint.c — checkpoints and weights files (label cpu): a bit-exact round trip of
 * parameters, moments, EMA and counters; keep_last pruning; a stray temporary and a damaged newest
 * checkpoint are skipped for the previous one; a checkpoint of another model shape is refused
 * naming the tensor; a dense checkpoint loads into an SLA model with zero proj; an extra tensor
 * in a weights file is refused by name; format version 1 (no adam_steps) reads with adam_steps =
 * step, another version or an adam_steps past step is refused. */
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "test_util.h"
#include "weights.h"

static char dir[] = "/tmp/test_ckpt_XXXXXX";

/* Edits a checkpoint's root attributes in place with the HDF5 library: format_version and
 * adam_steps set (a value < 0 deletes adam_steps). 1 on success. */
static int edit_root_attrs(const char *path, long long version, long long adam_steps) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) return 0;
    int ok = 1;
    const char *names[2] = {"format_version", "adam_steps"};
    long long values[2] = {version, adam_steps};
    for (int i = 0; i < 2 && ok; i++) {
        if (values[i] < 0) {
            ok = H5Adelete(f, names[i]) >= 0;
            continue;
        }
        hid_t a = H5Aopen(f, names[i], H5P_DEFAULT);
        ok = a >= 0 && H5Awrite(a, H5T_NATIVE_LLONG, &values[i]) >= 0;
        if (a >= 0) H5Aclose(a);
    }
    return H5Fclose(f) >= 0 && ok;
}

static void fill(float *x, size_t n, uint64_t seed) {
    test_rng_t r = {seed};
    fill_normal_f32(&r, x, (long)n, 1.0);
}

static ckpt_state_t state_alloc(const param_table_t *t, int ema) {
    ckpt_state_t s;
    memset(&s, 0, sizeof s);
    s.params = calloc(t->total, sizeof(float)), s.adam_m = calloc(t->total, sizeof(float));
    s.adam_v = calloc(t->total, sizeof(float)), s.ema = ema ? calloc(t->total, sizeof(float)) : NULL;
    return s;
}

static void state_free(ckpt_state_t *s) { free(s->params), free(s->adam_m), free(s->adam_v), free(s->ema); }

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* A value no random fill produces: its bytes in the file mark where a dataset's data lies. */
static const float MARK = 12345.678f;

/* Flips the bytes of the first MARK found in the file: damage inside a dataset's data (damage in
 * unused bytes would be harmless, and metadata is checksummed too in the file format we write). */
static int damage(const char *path) {
    FILE *f = fopen(path, "r+b");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    unsigned char *buf = malloc((size_t)size);
    fseek(f, 0, SEEK_SET);
    int found = fread(buf, 1, (size_t)size, f) == (size_t)size ? 0 : -1;
    for (long at = 0; !found && at + 4 <= size; at++)
        if (!memcmp(buf + at, &MARK, 4)) {
            unsigned char flipped[4] = {buf[at] ^ 0x5a, buf[at + 1], buf[at + 2], buf[at + 3]};
            fseek(f, at, SEEK_SET);
            fwrite(flipped, 1, 4, f);
            found = 1;
        }
    fclose(f);
    free(buf);
    return found == 1;
}

int main(void) {
    if (!mkdtemp(dir)) return 1;
    char err[1024], path[1200], cfgtext[64];
    model_config_t cfg;
    param_table_t t;
    model_config_preset("tiny", &cfg, err, sizeof err);
    param_table_build(&cfg, &t, err, sizeof err);

    ckpt_state_t a = state_alloc(&t, 1);
    fill(a.params, t.total, 1), fill(a.adam_m, t.total, 2), fill(a.adam_v, t.total, 3), fill(a.ema, t.total, 4);
    a.adam_v[t.p[param_table_find(&t, "blocks.1.ffn.2.weight")].offset + 7] = MARK;
    a.data_epoch = 3, a.data_position = 17, a.seed = 0xfedcba9876543210ull, a.bad_steps = 2;
    for (int step = 1; step <= 4; step++) {
        a.step = step, a.adam_steps = step - 1; /* one skipped step */
        a.params[0] = (float)step;
        EXPECT(ckpt_write(dir, &a, &t, "model = tiny\n", 2, path, sizeof path, err, sizeof err) == 0, "write: %s", err);
    }
    snprintf(path, sizeof path, "%s/ckpt-00000002.h5", dir);
    EXPECT(!file_exists(path), "keep_last = 2 left step 2 behind");
    snprintf(path, sizeof path, "%s/ckpt-00000003.h5", dir);
    EXPECT(file_exists(path), "keep_last = 2 removed step 3");

    ckpt_state_t b = state_alloc(&t, 1);
    snprintf(path, sizeof path, "%s/ckpt-00000004.h5", dir);
    EXPECT(ckpt_read(path, &b, &t, cfgtext, sizeof cfgtext, err, sizeof err) == 0, "read: %s", err);
    EXPECT(!memcmp(a.params, b.params, sizeof(float) * t.total) && !memcmp(a.adam_m, b.adam_m, sizeof(float) * t.total) &&
               !memcmp(a.adam_v, b.adam_v, sizeof(float) * t.total) && !memcmp(a.ema, b.ema, sizeof(float) * t.total),
           "round trip is not bit-exact");
    EXPECT(b.step == 4 && b.adam_steps == 3 && b.data_epoch == 3 && b.data_position == 17 && b.seed == a.seed &&
               b.bad_steps == 2 && !strcmp(cfgtext, "model = tiny\n"),
           "counters: step %lld adam_steps %lld epoch %lld pos %lld seed %llx config '%s'", (long long)b.step,
           (long long)b.adam_steps, (long long)b.data_epoch, (long long)b.data_position, (unsigned long long)b.seed,
           cfgtext);

    /* Format version 1 (no adam_steps) reads as adam_steps = step; version 3 and adam_steps > step
     * are refused. Copies of step 4 under other step numbers, each edited. */
    char cmd0[8000], p1[1200], p2[1200], p3[1200];
    snprintf(p1, sizeof p1, "%s/v1.h5", dir), snprintf(p2, sizeof p2, "%s/v3.h5", dir);
    snprintf(p3, sizeof p3, "%s/big.h5", dir);
    snprintf(cmd0, sizeof cmd0, "cp %s %s && cp %s %s && cp %s %s", path, p1, path, p2, path, p3);
    EXPECT(system(cmd0) == 0 && edit_root_attrs(p1, 1, -1) && edit_root_attrs(p2, 3, 3) && edit_root_attrs(p3, 2, 5),
           "editing copies of %s", path);
    b.adam_steps = -7;
    EXPECT(ckpt_read(p1, &b, &t, NULL, 0, err, sizeof err) == 0 && b.step == 4 && b.adam_steps == 4,
           "version 1: rc/err '%s', adam_steps %lld (expected 4)", err, (long long)b.adam_steps);
    EXPECT(ckpt_read(p2, &b, &t, NULL, 0, err, sizeof err) == -1 && strstr(err, "v3.h5") && strstr(err, "version 3"),
           "version 3: '%s'", err);
    EXPECT(ckpt_read(p3, &b, &t, NULL, 0, err, sizeof err) == -1 && strstr(err, "adam_steps 5"),
           "adam_steps 5 > step 4: '%s'", err);
    printf("format version 1 read with adam_steps = step; refused: %s\n", err);
    unlink(p1), unlink(p2), unlink(p3);

    /* A stray temporary and a damaged newest checkpoint: resume uses step 3. */
    snprintf(path, sizeof path, "%s/ckpt-00000009.h5.tmp", dir);
    fclose(fopen(path, "w"));
    snprintf(path, sizeof path, "%s/ckpt-00000004.h5", dir);
    EXPECT(damage(path), "the marked value was not found in %s", path);
    char used[1200];
    int rc = ckpt_resume_latest(dir, &b, &t, used, sizeof used, err, sizeof err);
    EXPECT(rc == 1 && strstr(used, "ckpt-00000003.h5") && b.step == 3 && b.params[0] == 3.0f,
           "resume after damage: rc %d used '%s' step %lld", rc, used, (long long)b.step);
    EXPECT(ckpt_read(path, &b, &t, NULL, 0, err, sizeof err) == -1 && strstr(err, "ckpt-00000004.h5"),
           "damaged checkpoint read: '%s'", err);
    printf("damaged checkpoint refused with: %s\n", err);

    /* Another model shape: refused naming the tensor. */
    model_config_t other = cfg;
    other.ffn_dim = 96;
    param_table_t t2;
    param_table_build(&other, &t2, err, sizeof err);
    ckpt_state_t c = state_alloc(&t2, 0);
    snprintf(path, sizeof path, "%s/ckpt-00000003.h5", dir);
    EXPECT(ckpt_read(path, &c, &t2, NULL, 0, err, sizeof err) == -1 && strstr(err, "ffn.0.weight") &&
               strstr(err, "expected [96, 64]"),
           "mismatched model: '%s'", err);
    state_free(&c);
    param_table_free(&t2);

    /* EMA asked for but absent. */
    ckpt_state_t noema = state_alloc(&t, 0);
    noema.step = 5;
    EXPECT(ckpt_write(dir, &noema, &t, "", 5, NULL, 0, err, sizeof err) == 0, "write without ema: %s", err);
    snprintf(path, sizeof path, "%s/ckpt-00000005.h5", dir);
    EXPECT(ckpt_read(path, &b, &t, NULL, 0, err, sizeof err) == -1 && strstr(err, "EMA"), "missing EMA: '%s'", err);
    state_free(&noema);

    /* A dense model's weights load into an SLA model with zero proj; an extra tensor is refused. */
    model_config_t dense = cfg;
    dense.attention = ATTENTION_DENSE;
    param_table_t td;
    param_table_build(&dense, &td, err, sizeof err);
    float *wd = malloc(sizeof(float) * td.total), *ws = malloc(sizeof(float) * t.total);
    fill(wd, td.total, 9);
    fill(ws, t.total, 10);
    snprintf(path, sizeof path, "%s/dense.h5", dir);
    EXPECT(weights_save(path, &td, wd, err, sizeof err) == 0, "save dense: %s", err);
    int zeroed = -1;
    EXPECT(weights_load(path, &t, ws, &zeroed, err, sizeof err) == 0 && zeroed == 2 * cfg.layers,
           "dense -> SLA: %s (zero-filled %d)", err, zeroed);
    int pw = param_table_find(&t, "blocks.1.self_attn.proj_l.weight"), q = param_table_find(&t, "blocks.1.self_attn.q.weight");
    int qd = param_table_find(&td, "blocks.1.self_attn.q.weight");
    EXPECT(ws[t.p[pw].offset] == 0.0f && ws[t.p[pw].offset + 5] == 0.0f &&
               !memcmp(ws + t.p[q].offset, wd + td.p[qd].offset, sizeof(float) * t.p[q].numel),
           "dense -> SLA values");
    snprintf(path, sizeof path, "%s/sla.h5", dir);
    EXPECT(weights_save(path, &t, ws, err, sizeof err) == 0, "save sla: %s", err);
    EXPECT(weights_load(path, &td, wd, NULL, err, sizeof err) == -1 && strstr(err, "proj_l") && strstr(err, "extra"),
           "SLA weights into a dense model: '%s'", err);
    param_table_free(&td);
    free(wd), free(ws);

    state_free(&a), state_free(&b);
    param_table_free(&t);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) return 1;
    return test_summary("test_checkpoint");
}
