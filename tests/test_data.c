/* tests/test_data.c — the data layer's dataset and sampler (label cpu); synthetic videos are
 * tested by test_synth.c, the sla-data tool by test_sla_data.c.
 *
 * Works in a mkdtemp directory under /tmp (removed at the end).
 * - dataset: files written here with h5_tensor (an independent writer), float32 + float16, opened
 *   as one two-file list; every sample read back exactly; then each error case with its message
 *   (missing dataset, per-sample shapes differing across files, n of latents != n of text, wrong
 *   rank, not HDF5, missing file, empty list entries, integer dtype, n = 0, a sample of 2^34 and
 *   one of 2^28+ elements, NaN in a sample, an index out of range).
 * - sampler: every epoch's order is a permutation; same (seed, epoch) same order, others differ;
 *   first positions are about uniform; the samples of each step equal the stream of concatenated
 *   permutations (epoch wrap mid-batch, batches larger than n); world sizes 1..4 with the same
 *   global batch give the same samples in the same steps; a resumed cursor; cursor validation. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "dataset.h"
#include "h5_rows.h"
#include "h5_tensor.h"
#include "sampler.h"
#include "test_util.h"

static char g_dir[64];

static void tmp_path(char *buf, size_t len, const char *name) { snprintf(buf, len, "%s/%s", g_dir, name); }

enum { C = 16, F = 2, H = 3, W = 5, LT = 4, DT = 6 };

/* Values exactly representable in float16, distinct per (file tag, sample, element). */
static float latent_value(int tag, int64_t row, int64_t j) {
    return (float)((tag * 31 + row * 7 + j) % 97) * 0.25f - 12.0f;
}
static float text_value(int tag, int64_t row, int64_t j) {
    return (float)((tag * 17 + row * 5 + j * 3) % 61) * 0.5f - 15.0f;
}

/* Writes latents [n, c, f, H, W] and text [nt, LT, DT] as dtype; NULL names skip a dataset. */
static void write_file(const char *path, int tag, dtype_t dtype, int n, int nt, int f, const char *lat_name,
                       const char *txt_name) {
    h5_file_t h;
    char err[512];
    EXPECT(h5_create(path, &h, err, sizeof err) == 0, "%s", err);
    int64_t ls[5] = {n, C, f, H, W}, ts[3] = {nt, LT, DT};
    tensor_t lat = tensor_alloc(DTYPE_F32, DEVICE_CPU, 5, ls), txt = tensor_alloc(DTYPE_F32, DEVICE_CPU, 3, ts);
    int64_t per_l = (int64_t)C * f * H * W, per_t = LT * DT;
    for (int64_t i = 0; i < tensor_numel(&lat); i++) ((float *)lat.data)[i] = latent_value(tag, i / per_l, i % per_l);
    for (int64_t i = 0; i < tensor_numel(&txt); i++) ((float *)txt.data)[i] = text_value(tag, i / per_t, i % per_t);
    tensor_t out_l = tensor_alloc(dtype, DEVICE_CPU, 5, ls), out_t = tensor_alloc(dtype, DEVICE_CPU, 3, ts);
    if (dtype == DTYPE_I32) { /* tensor_copy keeps integers and floats apart */
        for (int64_t i = 0; i < tensor_numel(&lat); i++) ((int32_t *)out_l.data)[i] = (int32_t)((float *)lat.data)[i];
        for (int64_t i = 0; i < tensor_numel(&txt); i++) ((int32_t *)out_t.data)[i] = (int32_t)((float *)txt.data)[i];
    } else {
        tensor_copy(&out_l, &lat);
        tensor_copy(&out_t, &txt);
    }
    if (lat_name) EXPECT(h5_write_tensor(&h, lat_name, &out_l, 1, err, sizeof err) == 0, "%s", err);
    if (txt_name) EXPECT(h5_write_tensor(&h, txt_name, &out_t, 0, err, sizeof err) == 0, "%s", err);
    EXPECT(h5_write_attr_string(&h, "/", "description", "test data", err, sizeof err) == 0, "%s", err);
    EXPECT(h5_close(&h, err, sizeof err) == 0, "%s", err);
    tensor_free(&lat), tensor_free(&txt), tensor_free(&out_l), tensor_free(&out_t);
}

static void test_dataset_round_trip(void) {
    char a[256], b[256], list[600];
    tmp_path(a, sizeof a, "a.h5");
    tmp_path(b, sizeof b, "b.h5");
    write_file(a, 1, DTYPE_F32, 3, 3, F, "latents", "text");
    write_file(b, 2, DTYPE_F16, 2, 2, F, "latents", "text");
    snprintf(list, sizeof list, " %s , %s", a, b);
    dataset_t ds;
    char err[512];
    int rc = dataset_open(list, &ds, err, sizeof err);
    EXPECT(rc == 0, "dataset_open: %s", err);
    if (rc) return;
    EXPECT(ds.nfiles == 2 && ds.n == 5, "two files of 3 + 2 samples: nfiles %d, n %lld", ds.nfiles, (long long)ds.n);
    EXPECT(ds.channels == C && ds.frames == F && ds.height == H && ds.width == W, "latent shape");
    EXPECT(ds.text_len == LT && ds.text_dim == DT, "text shape");
    EXPECT(!strcmp(ds.files[0].latents_type, "float32") && !strcmp(ds.files[1].text_type, "float16"), "types %s %s",
           ds.files[0].latents_type, ds.files[1].text_type);
    EXPECT(!strcmp(ds.files[0].path, a), "names are trimmed: '%s'", ds.files[0].path);
    float lat[C * F * H * W], txt[LT * DT];
    int bad = 0;
    for (int64_t g = 4; g >= 0; g--) { /* backwards: every read switches files at least once */
        int tag = g < 3 ? 1 : 2;
        int64_t row = g < 3 ? g : g - 3;
        EXPECT(dataset_file_of(&ds, g) == tag - 1, "sample %lld is in file %d", (long long)g, tag - 1);
        rc = dataset_read(&ds, g, lat, txt, err, sizeof err);
        EXPECT(rc == 0, "dataset_read %lld: %s", (long long)g, err);
        for (int j = 0; rc == 0 && j < C * F * H * W; j++) bad += lat[j] != latent_value(tag, row, j);
        for (int j = 0; rc == 0 && j < LT * DT; j++) bad += txt[j] != text_value(tag, row, j);
    }
    EXPECT(bad == 0, "%d values differ from what was written", bad);
    EXPECT(dataset_read(&ds, 1, NULL, txt, err, sizeof err) == 0 && txt[0] == text_value(1, 1, 0), "text only");
    EXPECT(dataset_read(&ds, 5, lat, txt, err, sizeof err) != 0 && strstr(err, "sample 5 does not exist"),
           "index 5 of 5: '%s'", err);
    EXPECT(dataset_read(&ds, -1, lat, txt, err, sizeof err) != 0, "index -1 refused");
    EXPECT(dataset_file_of(&ds, 5) == -1, "file of index 5");
    dataset_close(&ds);
    dataset_close(&ds); /* harmless twice */
    printf("dataset round trip: 5 samples over 2 files (float32 + float16) exact\n");
}

/* dataset_open(list) fails and its message contains each of the phrases. */
static void expect_open_error(const char *list, const char *p1, const char *p2) {
    dataset_t ds;
    char err[1024] = "";
    int rc = dataset_open(list, &ds, err, sizeof err);
    EXPECT(rc != 0, "dataset_open('%s') should fail (%s)", list, p1);
    EXPECT(strstr(err, p1) && (!p2 || strstr(err, p2)), "message '%s' lacks '%s' / '%s'", err, p1, p2 ? p2 : "");
    EXPECT(ds.n == 0 && ds.files == NULL, "a failed open leaves the handle empty");
    if (rc == 0) dataset_close(&ds);
    printf("  refused: %s\n", err);
}

static void test_dataset_errors(void) {
    char a[256], p[256], list[600], err[512];
    tmp_path(a, sizeof a, "a.h5"); /* written by the round trip */
    printf("dataset errors:\n");
    tmp_path(p, sizeof p, "no_text.h5");
    write_file(p, 3, DTYPE_F32, 2, 2, F, "latents", NULL);
    expect_open_error(p, "dataset 'text' is missing", "no_text.h5");
    tmp_path(p, sizeof p, "frames3.h5");
    write_file(p, 3, DTYPE_F32, 2, 2, F + 1, "latents", "text");
    snprintf(list, sizeof list, "%s,%s", a, p);
    expect_open_error(list, "frames3.h5: dataset 'latents' has per-sample shape [16, 3, 3, 5], but",
                      "a.h5 has [16, 2, 3, 5]");
    tmp_path(p, sizeof p, "n_mismatch.h5");
    write_file(p, 3, DTYPE_F32, 3, 2, F, "latents", "text");
    expect_open_error(p, "n_mismatch.h5: dataset 'latents' holds 3 samples but 'text' holds 2", NULL);
    tmp_path(p, sizeof p, "rank4.h5");
    {
        h5_file_t h;
        int64_t s4[4] = {2, C, H, W}, ts[3] = {2, LT, DT};
        tensor_t t4 = tensor_alloc(DTYPE_F32, DEVICE_CPU, 4, s4), tt = tensor_alloc(DTYPE_F32, DEVICE_CPU, 3, ts);
        memset(t4.data, 0, tensor_bytes(&t4)), memset(tt.data, 0, tensor_bytes(&tt));
        h5_create(p, &h, err, sizeof err);
        h5_write_tensor(&h, "latents", &t4, 0, err, sizeof err);
        h5_write_tensor(&h, "text", &tt, 0, err, sizeof err);
        h5_close(&h, err, sizeof err);
        tensor_free(&t4), tensor_free(&tt);
    }
    expect_open_error(p, "rank4.h5: dataset 'latents' has rank 4 (shape [2, 16, 3, 5]), expected rank 5",
                      "[n, 16, frames, height, width]");
    tmp_path(p, sizeof p, "int.h5");
    write_file(p, 3, DTYPE_I32, 2, 2, F, "latents", "text");
    expect_open_error(p, "int.h5: dataset 'latents' is int32, expected float16 or float32", NULL);
    tmp_path(p, sizeof p, "empty.h5");
    write_file(p, 3, DTYPE_F32, 0, 0, F, "latents", "text");
    expect_open_error(p, "empty.h5: dataset 'latents' has n = 0", "expected at least 1");
    tmp_path(p, sizeof p, "not_h5.h5");
    FILE *fp = fopen(p, "w");
    fputs("latents = [1, 2, 3]\n", fp);
    fclose(fp);
    expect_open_error(p, "not_h5.h5: not an HDF5 file", NULL);
    tmp_path(p, sizeof p, "absent.h5");
    expect_open_error(p, "absent.h5: cannot open", NULL);
    expect_open_error("", "dataset list is empty", NULL);
    snprintf(list, sizeof list, "%s,,%s", a, a);
    expect_open_error(list, "has an empty name at position 2", NULL);
    /* Claimed sizes: datasets created without data (HDF5 stores nothing for unwritten chunks). */
    tmp_path(p, sizeof p, "huge.h5");
    for (int huge = 0; huge < 2; huge++) {
        h5_file_t h;
        int64_t ls[5] = {1, 16, huge ? 2000 : 100, 1000, 1000}, ts[3] = {1, LT, DT};
        h5_create(p, &h, err, sizeof err);
        EXPECT(h5_create_rows(&h, "latents", DTYPE_F16, 5, ls, err, sizeof err) == 0, "%s", err);
        EXPECT(h5_create_rows(&h, "text", DTYPE_F32, 3, ts, err, sizeof err) == 0, "%s", err);
        h5_close(&h, err, sizeof err);
        if (huge) expect_open_error(p, "huge.h5: dataset 'latents' claims more than 2^34 elements per sample", NULL);
        else
            expect_open_error(p, "huge.h5: dataset 'latents' has 1600000000 elements per sample",
                              "more than the 2^28 allowed");
    }
    /* NaN in a sample: opens (values are not read up front), refused when read. */
    tmp_path(p, sizeof p, "nan.h5");
    {
        h5_file_t h;
        int64_t ls[5] = {2, C, F, H, W}, ts[3] = {2, LT, DT};
        float lat[C * F * H * W] = {0}, txt[LT * DT] = {0};
        h5_create(p, &h, err, sizeof err);
        h5_create_rows(&h, "latents", DTYPE_F32, 5, ls, err, sizeof err);
        h5_create_rows(&h, "text", DTYPE_F32, 3, ts, err, sizeof err);
        for (int r = 0; r < 2; r++) {
            lat[7] = r ? NAN : 0.0f;
            h5_write_row_f32(&h, "latents", r, lat, C * F * H * W, err, sizeof err);
            h5_write_row_f32(&h, "text", r, txt, LT * DT, err, sizeof err);
        }
        h5_close(&h, err, sizeof err);
        dataset_t ds;
        EXPECT(dataset_open(p, &ds, err, sizeof err) == 0, "%s", err);
        EXPECT(dataset_read(&ds, 0, lat, txt, err, sizeof err) == 0, "clean sample: %s", err);
        EXPECT(dataset_read(&ds, 1, lat, txt, err, sizeof err) != 0 &&
                   strstr(err, "nan.h5: sample 1 of dataset 'latents' (global sample 1) holds NaN at element 7"),
               "NaN: '%s'", err);
        printf("  refused: %s\n", err);
        dataset_close(&ds);
    }
}

/* ---- sampler -------------------------------------------------------------------------------- */

static int is_permutation(const int64_t *p, int64_t n) {
    char *seen = calloc((size_t)n, 1);
    int ok = 1;
    for (int64_t i = 0; i < n && ok; i++) {
        ok = p[i] >= 0 && p[i] < n && !seen[p[i]];
        if (ok) seen[p[i]] = 1;
    }
    free(seen);
    return ok;
}

static void test_sampler_permutations(void) {
    const int64_t sizes[] = {1, 2, 7, 100, 1000};
    int64_t *p = malloc(1000 * sizeof *p), *q = malloc(1000 * sizeof *q);
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
        for (int64_t e = 0; e < 5; e++) {
            sampler_permutation(42, e, sizes[s], p);
            EXPECT(is_permutation(p, sizes[s]), "n %lld epoch %lld: not a permutation", (long long)sizes[s],
                   (long long)e);
            sampler_permutation(42, e, sizes[s], q);
            EXPECT(!memcmp(p, q, (size_t)sizes[s] * sizeof *p), "n %lld epoch %lld: not deterministic",
                   (long long)sizes[s], (long long)e);
        }
    sampler_permutation(42, 0, 1000, p);
    sampler_permutation(42, 1, 1000, q);
    EXPECT(memcmp(p, q, 1000 * sizeof *p) != 0, "epochs 0 and 1 give the same order");
    sampler_permutation(43, 0, 1000, q);
    EXPECT(memcmp(p, q, 1000 * sizeof *p) != 0, "seeds 42 and 43 give the same order");
    int fixed = 0;
    for (int i = 0; i < 1000; i++) fixed += p[i] == i;
    EXPECT(fixed < 10, "%d of 1000 samples stay in place: not shuffled", fixed);
    /* First position over 20000 epochs of n = 5: each sample about 4000 times (sd 57). */
    int count[5] = {0};
    for (int64_t e = 0; e < 20000; e++) {
        sampler_permutation(7, e, 5, p);
        count[p[0]]++;
    }
    for (int i = 0; i < 5; i++) EXPECT(abs(count[i] - 4000) < 300, "sample %d first %d times of 20000", i, count[i]);
    free(p), free(q);
    printf("sampler permutations: valid, deterministic, shuffled; first-position counts %d %d %d %d %d\n", count[0],
           count[1], count[2], count[3], count[4]);
}

/* The reference stream: concatenated permutations of epochs 0, 1, ... */
static int64_t stream_at(uint64_t seed, int64_t n, int64_t offset, int64_t *scratch) {
    sampler_permutation(seed, offset / n, n, scratch);
    return scratch[offset % n];
}

static void test_sampler_stream(int64_t n, int batch, int steps) {
    sampler_t s;
    char err[256];
    EXPECT(sampler_init(&s, 9, n, err, sizeof err) == 0, "%s", err);
    int64_t *scratch = malloc((size_t)n * sizeof *scratch), out[64];
    sampler_cursor_t c = {0, 0};
    int bad = 0;
    for (int step = 0; step < steps; step++) {
        sampler_indices(&s, c, 0, 1, batch, out);
        for (int j = 0; j < batch; j++) bad += out[j] != stream_at(9, n, (int64_t)step * batch + j, scratch);
        c = sampler_advance(&s, c, 1, batch);
    }
    int64_t end = (int64_t)steps * batch;
    EXPECT(bad == 0, "n %lld batch %d: %d samples differ from the stream", (long long)n, batch, bad);
    EXPECT(c.epoch == end / n && c.position == end % n, "n %lld batch %d: cursor (%lld, %lld) after %d steps",
           (long long)n, batch, (long long)c.epoch, (long long)c.position, steps);
    free(scratch);
    sampler_free(&s);
}

static void test_sampler_worlds(void) {
    const int64_t n = 37;
    const int global = 12, steps = 20;
    sampler_t s;
    char err[256];
    EXPECT(sampler_init(&s, 5, n, err, sizeof err) == 0, "%s", err);
    int64_t ref[20][12];
    sampler_cursor_t c = {0, 0}, ref_end;
    for (int step = 0; step < steps; step++) {
        sampler_indices(&s, c, 0, 1, global, ref[step]);
        c = sampler_advance(&s, c, 1, global);
    }
    ref_end = c;
    for (int world = 2; world <= 4; world++) {
        int batch = global / world, bad = 0;
        sampler_cursor_t cw = {0, 0};
        for (int step = 0; step < steps; step++) {
            for (int r = 0; r < world; r++) {
                int64_t out[12];
                sampler_indices(&s, cw, r, world, batch, out);
                for (int j = 0; j < batch; j++) bad += out[j] != ref[step][r * batch + j];
            }
            cw = sampler_advance(&s, cw, world, batch);
        }
        EXPECT(bad == 0, "world %d x batch %d: %d samples differ from world 1 x batch %d", world, batch, bad, global);
        EXPECT(cw.epoch == ref_end.epoch && cw.position == ref_end.position, "world %d: cursor differs", world);
    }
    /* A resumed sampler (fresh cache, cursor from a "checkpoint") continues identically. */
    sampler_t s2;
    sampler_init(&s2, 5, n, err, sizeof err);
    sampler_cursor_t mid = sampler_offset(&s2, (sampler_cursor_t){0, 0}, 10 * (int64_t)global);
    int64_t out[12];
    sampler_indices(&s2, mid, 0, 1, global, out);
    EXPECT(!memcmp(out, ref[10], sizeof out), "resumed at step 10: different samples");
    EXPECT(sampler_cursor_check(&s2, mid, err, sizeof err) == 0, "%s", err);
    EXPECT(sampler_cursor_check(&s2, (sampler_cursor_t){0, 37}, err, sizeof err) != 0 &&
               strstr(err, "position 37 is outside [0, 37)"),
           "'%s'", err);
    EXPECT(sampler_cursor_check(&s2, (sampler_cursor_t){-1, 0}, err, sizeof err) != 0 && strstr(err, "epoch -1"),
           "'%s'", err);
    sampler_free(&s2);
    EXPECT(sampler_init(&s2, 5, 0, err, sizeof err) != 0 && strstr(err, "n = 0"), "n = 0: '%s'", err);
    sampler_free(&s2); /* harmless after a failed init */
    sampler_free(&s);
    printf("sampler: world sizes 1-4 with global batch 12 over n = 37 give identical steps\n");
}

int main(void) {
    test_make_dir(g_dir, sizeof g_dir, "test_data");
    test_dataset_round_trip();
    test_dataset_errors();
    test_sampler_permutations();
    test_sampler_stream(10, 4, 12); /* wraps mid-batch */
    test_sampler_stream(3, 8, 5);   /* batches span several epochs */
    test_sampler_stream(1, 1, 3);
    test_sampler_worlds();
    printf("sampler stream: epoch wrap mid-batch and batches larger than n match the concatenated permutations\n");
    test_remove_dir(g_dir);
    return test_summary("test_data");
}
