/* tests/test_synth.c — the data layer's synthetic videos (label cpu): determinism; latents of about
 * unit variance; a hand-made scene's object centroid moves by its velocity each frame (right and
 * up); drawn samples have correlated but different frames; text is zero past the end token, equal
 * for equal objects, and closer for equal kinds and directions; synth_write round trip through
 * dataset_read (float32 exact, float16 close), in a mkdtemp directory under /tmp (removed at the
 * end), and its error for a directory that does not exist. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "dataset.h"
#include "h5_rows.h"
#include "synth.h"
#include "test_util.h"

static char g_dir[64];

static void tmp_path(char *buf, size_t len, const char *name) { snprintf(buf, len, "%s/%s", g_dir, name); }

static int file_exists(const char *path) { return access(path, F_OK) == 0; }

static synth_config_t synth_cfg(const char *preset) {
    synth_config_t c;
    char err[256];
    CHECK(synth_preset(preset, &c, err, sizeof err) == 0, "%s", err);
    return c;
}

static int64_t latent_count(const synth_config_t *c) {
    return (int64_t)SYNTH_CHANNELS * c->frames * c->height * c->width;
}

static void test_synth_config(void) {
    synth_config_t c = synth_cfg("tiny"), s = synth_cfg("small"), w = synth_cfg("wan480p");
    EXPECT(c.n == 16 && c.frames == 3 && c.height == 8 && c.width == 8 && c.text_len == 16 && c.text_dim == 32, "tiny");
    EXPECT(s.n == 256 && s.frames == 5 && s.height == 16 && s.text_len == 64 && s.text_dim == 512, "small");
    EXPECT(w.frames == 21 && w.height == 60 && w.width == 104 && w.text_len == 512 && w.text_dim == 4096, "wan480p");
    char err[256];
    EXPECT(synth_validate(&w, err, sizeof err) == 0, "wan480p invalid: %s", err);
    EXPECT(synth_preset("huge", &c, err, sizeof err) != 0 && strstr(err, "'huge'") &&
               strstr(err, "tiny, small or wan480p"),
           "'%s'", err);
    c = synth_cfg("tiny"), c.frames = 0;
    EXPECT(synth_validate(&c, err, sizeof err) != 0 && strstr(err, "frames = 0 is outside 1..1024"), "'%s'", err);
    c = synth_cfg("tiny"), c.frames = 1024, c.height = 4096, c.width = 4096;
    EXPECT(synth_validate(&c, err, sizeof err) != 0 && strstr(err, "more than the 2^28"), "'%s'", err);
}

static void test_synth_determinism(void) {
    synth_config_t c = synth_cfg("tiny");
    int64_t nl = latent_count(&c), nt = (int64_t)c.text_len * c.text_dim;
    float *a = malloc((size_t)(nl + nt) * 4), *b = malloc((size_t)(nl + nt) * 4);
    synth_sample(&c, 3, a, a + nl);
    synth_sample(&c, 3, b, b + nl);
    EXPECT(!memcmp(a, b, (size_t)(nl + nt) * 4), "sample 3 twice: different");
    synth_sample(&c, 4, b, b + nl);
    EXPECT(memcmp(a, b, (size_t)nl * 4) != 0, "samples 3 and 4 have the same latents");
    c.seed = 1;
    synth_sample(&c, 3, b, b + nl);
    EXPECT(memcmp(a, b, (size_t)nl * 4) != 0, "seeds 0 and 1 give the same sample 3");
    free(a), free(b);
}

static void test_synth_variance(const char *preset) {
    synth_config_t c = synth_cfg(preset);
    int64_t nl = latent_count(&c);
    float *x = malloc((size_t)nl * 4);
    double sum = 0, ss = 0;
    for (int i = 0; i < 8; i++) {
        synth_sample(&c, i, x, NULL);
        for (int64_t j = 0; j < nl; j++) sum += x[j], ss += (double)x[j] * x[j];
    }
    double mean = sum / (8.0 * nl), var = ss / (8.0 * nl) - mean * mean;
    EXPECT(var > 0.5 && var < 2.0 && fabs(mean) < 0.3, "%s: latent mean %.3f variance %.3f, expected about 0 and 1",
           preset, mean, var);
    printf("synth %s: latent mean %.3f, variance %.3f over 8 samples\n", preset, mean, var);
    free(x);
}

/* Centroid of sum over channels of |a - b| in frame t. */
static void diff_centroid(const synth_config_t *c, const float *a, const float *b, int t, double *cx, double *cy) {
    int64_t plane = (int64_t)c->frames * c->height * c->width;
    double sw = 0, sx = 0, sy = 0;
    for (int y = 0; y < c->height; y++)
        for (int x = 0; x < c->width; x++) {
            double w = 0;
            int64_t p = ((int64_t)t * c->height + y) * c->width + x;
            for (int ch = 0; ch < SYNTH_CHANNELS; ch++) w += fabs(a[ch * plane + p] - b[ch * plane + p]);
            sw += w, sx += w * x, sy += w * y;
        }
    *cx = sx / sw, *cy = sy / sw;
}

/* One object over a background (flat when flat_bg): its centroid follows x_mid + v (t - tm). */
static double motion_error(int kind, int direction, int flat_bg) {
    synth_config_t c = synth_cfg("tiny");
    c.frames = 9, c.height = 32, c.width = 48, c.seed = 3;
    synth_scene_t s, bg;
    synth_scene_draw(&c, 0, &s);
    if (flat_bg) memset(s.wave_amp, 0, sizeof s.wave_amp);
    bg = s;
    bg.nobjects = 0;
    s.nobjects = 1;
    s.objects[0] =
        (synth_object_t){.kind = kind, .direction = direction, .speed = 1.5f, .x_mid = 24, .y_mid = 16, .radius = 4};
    int64_t nl = latent_count(&c);
    float *a = malloc((size_t)nl * 4), *b = malloc((size_t)nl * 4);
    synth_render(&c, &s, 0, a, NULL);
    synth_render(&c, &bg, 0, b, NULL);
    double worst = 0, dx = direction == 0 ? 1.5 : 0, dy = direction == 2 ? -1.5 : 0;
    for (int t = 0; t < c.frames; t++) {
        double cx, cy;
        diff_centroid(&c, a, b, t, &cx, &cy);
        double e = hypot(cx - (24 + dx * (t - 4)), cy - (16 + dy * (t - 4)));
        if (e > worst) worst = e;
    }
    free(a), free(b);
    return worst;
}

static void test_synth_motion(void) {
    double e0 = motion_error(1, 0, 1), e1 = motion_error(0, 2, 1), e2 = motion_error(1, 0, 0),
           e3 = motion_error(0, 2, 0);
    EXPECT(e0 < 0.05 && e1 < 0.05, "flat background: centroid off its path by %.3f (square, right) %.3f (blob, up)", e0,
           e1);
    EXPECT(e2 < 0.75 && e3 < 0.75, "background: centroid off its path by %.3f (square, right) %.3f (blob, up)", e2, e3);
    printf("synth motion: object centroid moves 1.5 px/frame over 9 frames; worst error %.3f / %.3f px (flat "
           "background), %.3f / %.3f px (waves)\n",
           e0, e1, e2, e3);
    /* Drawn samples: neighbouring frames strongly correlated, yet different. */
    synth_config_t c = synth_cfg("small");
    int64_t nl = latent_count(&c), plane = (int64_t)c.height * c.width;
    float *x = malloc((size_t)nl * 4);
    double corr_min = 1, change_min = 1e30;
    for (int i = 0; i < 8; i++) {
        synth_sample(&c, i, x, NULL);
        for (int t = 0; t + 1 < c.frames; t++) {
            double sab = 0, saa = 0, sbb = 0, sa = 0, sb = 0, n = 0;
            for (int ch = 0; ch < SYNTH_CHANNELS; ch++)
                for (int64_t p = 0; p < plane; p++) {
                    double u = x[(ch * c.frames + t) * plane + p], v = x[(ch * c.frames + t + 1) * plane + p];
                    sab += u * v, saa += u * u, sbb += v * v, sa += u, sb += v, n++;
                }
            double cov = sab / n - sa * sb / (n * n), va = saa / n - sa * sa / (n * n),
                   vb = sbb / n - sb * sb / (n * n);
            double corr = cov / sqrt(va * vb), change = (va + vb - 2 * cov) / (va + vb);
            if (corr < corr_min) corr_min = corr;
            if (change < change_min) change_min = change;
        }
    }
    EXPECT(corr_min > 0.5, "neighbouring frames correlate only %.3f", corr_min);
    EXPECT(change_min > 0.01, "neighbouring frames nearly equal: relative change %.4f", change_min);
    printf("synth frames (small, 8 samples): neighbour correlation >= %.3f, relative change >= %.3f\n", corr_min,
           change_min);
    free(x);
}

static double token_cos(const float *a, const float *b, int d) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < d; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return ab / sqrt(aa * bb + 1e-300);
}

static void test_synth_text(void) {
    synth_config_t c = synth_cfg("small");
    int lt = c.text_len, dt = c.text_dim;
    float *t1 = malloc((size_t)lt * dt * 4), *t2 = malloc((size_t)lt * dt * 4);
    int bad_zero = 0, differ = 0, pairs = 0;
    for (int i = 0; i < 16; i++) {
        synth_scene_t s;
        synth_scene_draw(&c, i, &s);
        synth_render(&c, &s, i, NULL, t1);
        for (int tok = 0; tok < lt; tok++) {
            double norm = 0;
            for (int d = 0; d < dt; d++) norm += fabs(t1[tok * dt + d]);
            bad_zero += (tok <= s.nobjects + 1) != (norm > 0);
        }
        synth_scene_t s2;
        synth_scene_draw(&c, i + 1, &s2);
        if (s2.nobjects != s.nobjects || s2.objects[0].kind != s.objects[0].kind) {
            synth_render(&c, &s2, i + 1, NULL, t2);
            pairs++;
            differ += memcmp(t1, t2, (size_t)lt * dt * 4) != 0;
        }
    }
    EXPECT(bad_zero == 0, "%d tokens are zero before the end token or non-zero after it", bad_zero);
    EXPECT(pairs > 0 && differ == pairs, "%d of %d sample pairs with different objects have the same text",
           pairs - differ, pairs);
    /* Hand-made scenes: text ignores the background, and object tokens compose kind and direction. */
    synth_scene_t a, b;
    synth_scene_draw(&c, 0, &a);
    a.nobjects = 1;
    a.objects[0] = (synth_object_t){.kind = 2, .direction = 3, .speed = 1.4f, .x_mid = 8, .y_mid = 8, .radius = 2.4f};
    synth_render(&c, &a, 0, NULL, t1);
    synth_scene_draw(&c, 5, &b);
    b.nobjects = 1, b.objects[0] = a.objects[0];
    synth_render(&c, &b, 5, NULL, t2);
    EXPECT(!memcmp(t1, t2, (size_t)lt * dt * 4), "same objects over another background: different text");
    double cos_same, cos_kind, cos_none;
    b.objects[0].speed = 1.0f, b.objects[0].x_mid = 10;
    synth_render(&c, &b, 5, NULL, t2);
    cos_same = token_cos(t1 + dt, t2 + dt, dt);
    b.objects[0] = a.objects[0], b.objects[0].direction = 6;
    synth_render(&c, &b, 5, NULL, t2);
    cos_kind = token_cos(t1 + dt, t2 + dt, dt);
    b.objects[0].kind = 5;
    synth_render(&c, &b, 5, NULL, t2);
    cos_none = token_cos(t1 + dt, t2 + dt, dt);
    EXPECT(cos_same > 0.75 && cos_kind > 0.3 && cos_kind < 0.7 && fabs(cos_none) < 0.25,
           "object token cosines: same kind and direction %.3f (> 0.75), same kind %.3f (~0.5), neither %.3f (~0)",
           cos_same, cos_kind, cos_none);
    printf("synth text: object token cosine %.3f same kind+direction, %.3f same kind, %.3f neither\n", cos_same,
           cos_kind, cos_none);
    free(t1), free(t2);
}

static void test_synth_write(dtype_t dtype) {
    synth_config_t c = synth_cfg("tiny");
    c.n = 4, c.seed = 11, c.dtype = dtype;
    char path[256], tmp[300], err[512];
    tmp_path(path, sizeof path, dtype == DTYPE_F16 ? "synth16.h5" : "synth32.h5");
    EXPECT(synth_write(&c, path, err, sizeof err) == 0, "synth_write: %s", err);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    EXPECT(file_exists(path) && !file_exists(tmp), "%s written, no temporary left", path);
    dataset_t ds;
    if (dataset_open(path, &ds, err, sizeof err)) {
        EXPECT(0, "dataset_open on synth output: %s", err);
        return;
    }
    EXPECT(ds.n == 4 && ds.channels == 16 && ds.frames == 3 && ds.text_len == 16 && ds.text_dim == 32, "shapes");
    int64_t nl = ds.latent_numel, nt = ds.text_numel;
    float *a = malloc((size_t)(nl + nt) * 4), *b = malloc((size_t)(nl + nt) * 4);
    /* float16 rounds to nearest: within half a unit in the last place (2^-11 relative, 2^-25 absolute
     * for subnormals); a conversion that loses a carry into the exponent is off by far more. */
    double worst = 0, worst_ulps = 0;
    for (int i = 0; i < 4; i++) {
        EXPECT(dataset_read(&ds, i, a, a + nl, err, sizeof err) == 0, "%s", err);
        synth_sample(&c, i, b, b + nl);
        for (int64_t j = 0; j < nl + nt; j++) {
            double d = fabs(a[j] - b[j]);
            worst = fmax(worst, d);
            worst_ulps = fmax(worst_ulps, d / (fabs(b[j]) * ldexp(1, -11) + ldexp(1, -25)));
        }
    }
    EXPECT(dtype == DTYPE_F32 ? worst == 0 : worst_ulps <= 1.0, "%s: read back differs by %g (%.2f half-ulps)",
           dtype_name(dtype), worst, worst_ulps);
    h5_file_t f;
    int64_t seed = -1;
    char src[64] = "";
    h5_open_read(path, &f, err, sizeof err);
    EXPECT(h5_read_attr_int(&f, "/", "seed", &seed, err, sizeof err) == 0 && seed == 11, "attribute seed %lld",
           (long long)seed);
    EXPECT(h5_read_attr_string(&f, "/", "source", src, sizeof src, err, sizeof err) == 0 &&
               !strcmp(src, "sla-data synth"),
           "attribute source '%s'", src);
    EXPECT(h5_attr_count(&f, "/") >= 15, "%d attributes", h5_attr_count(&f, "/"));
    h5_close(&f, NULL, 0);
    dataset_close(&ds);
    free(a), free(b);
    printf("synth_write %s: 4 samples read back, max difference %g\n", dtype_name(dtype), worst);
    tmp_path(path, sizeof path, "missing_dir/x.h5");
    EXPECT(synth_write(&c, path, err, sizeof err) != 0 && strstr(err, "missing_dir/x.h5.tmp: cannot create"), "'%s'",
           err);
}

int main(void) {
    test_make_dir(g_dir, sizeof g_dir, "test_synth");
    test_synth_config();
    test_synth_determinism();
    test_synth_variance("tiny");
    test_synth_variance("small");
    test_synth_variance("wan480p");
    test_synth_motion();
    test_synth_text();
    test_synth_write(DTYPE_F32);
    test_synth_write(DTYPE_F16);
    test_remove_dir(g_dir);
    return test_summary("test_synth");
}
