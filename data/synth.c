/* data/synth.c — synthetic moving-object latent videos and their text (contract in synth.h).
 * Everything is a pure function of (config, sample index): scenes from the seed, fixed tables
 * from the world seed, both through Philox, so any sample can be made alone and in any order. */
#include "synth.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "h5_rows.h"
#include "h5_tensor.h"
#include "rng.h"

#define PI 3.14159265358979323846
#define WORLD_C0 0xffffffffu /* counter word of the fixed tables; sample indices stay below it */
/* Measured: with this gain the latents of the presets have a variance of about 1 (see test_data). */
#define LATENT_GAIN 2.2f
#define LATENT_NOISE 0.05f

/* Layout of a scene's uniforms (counter c1 = 0): fixed, so that each field always uses the same
 * numbers. */
enum {
    U_COUNT = 0,
    U_OBJECTS = 1,
    U_PER_OBJECT = 6,
    U_WAVES = U_OBJECTS + SYNTH_MAX_OBJECTS * U_PER_OBJECT,
    U_PAN = U_WAVES + SYNTH_FEATURES * SYNTH_BG_WAVES * 4,
    U_TOTAL = U_PAN + 2
};

/* Fixed tables of a world. Text tables: rows of Dt floats. */
typedef struct world {
    float colour[SYNTH_KINDS][SYNTH_FEATURES];
    float proj[SYNTH_CHANNELS][SYNTH_FEATURES];
    float *text;                                                 /* the buffer behind all rows below */
    float *kind_emb;                                             /* [SYNTH_KINDS][Dt] */
    float *dir_emb;                                              /* [SYNTH_DIRECTIONS][Dt] */
    float *count_emb;                                            /* [SYNTH_MAX_OBJECTS + 1][Dt] */
    float *end_emb, *speed_vec, *size_vec, *posx_vec, *posy_vec; /* [Dt] each */
} world_t;

enum { WORLD_TEXT_ROWS = SYNTH_KINDS + SYNTH_DIRECTIONS + SYNTH_MAX_OBJECTS + 1 + 5 };

static void world_make(const synth_config_t *cfg, world_t *w) {
    rng_key_t key = {cfg->world_seed, RNG_PURPOSE_SYNTH};
    rng_normal_fill(key, WORLD_C0, 0, &w->colour[0][0], SYNTH_KINDS * SYNTH_FEATURES, 1.0f);
    for (int k = 0; k < SYNTH_KINDS; k++) { /* every colour as strong as every other: norm sqrt(K) */
        double ss = 0;
        for (int f = 0; f < SYNTH_FEATURES; f++) ss += (double)w->colour[k][f] * w->colour[k][f];
        float s = (float)sqrt(SYNTH_FEATURES / (ss + 1e-12));
        for (int f = 0; f < SYNTH_FEATURES; f++) w->colour[k][f] *= s;
    }
    rng_normal_fill(key, WORLD_C0, 1, &w->proj[0][0], SYNTH_CHANNELS * SYNTH_FEATURES,
                    (float)(1.0 / sqrt(SYNTH_FEATURES)));
    size_t dt = (size_t)cfg->text_dim;
    w->text = xmalloc(WORLD_TEXT_ROWS * dt * sizeof(float));
    rng_normal_fill(key, WORLD_C0, 2, w->text, (long)(WORLD_TEXT_ROWS * dt), 1.0f);
    float *p = w->text;
    w->kind_emb = p, p += SYNTH_KINDS * dt;
    w->dir_emb = p, p += SYNTH_DIRECTIONS * dt;
    w->count_emb = p, p += (SYNTH_MAX_OBJECTS + 1) * dt;
    w->end_emb = p, p += dt;
    w->speed_vec = p, p += dt;
    w->size_vec = p, p += dt;
    w->posx_vec = p, p += dt;
    w->posy_vec = p;
}

static void world_free(world_t *w) {
    free(w->text);
    w->text = NULL;
}

/* ---- configuration -------------------------------------------------------------------------- */

static const struct {
    const char *name;
    int64_t n;
    int frames, height, width, text_len, text_dim;
} presets[] = {
    {"tiny", 16, 3, 8, 8, 16, 32},           /* the tiny model: CPU tests and CI */
    {"small", 256, 5, 16, 16, 64, 512},      /* the small model: one GPU, minutes */
    {"wan480p", 16, 21, 60, 104, 512, 4096}, /* Wan2.1 480p (832 x 480, 81 frames) */
};

int synth_preset(const char *name, synth_config_t *cfg, char *err, size_t errlen) {
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        if (strcmp(name, presets[i].name) != 0) continue;
        memset(cfg, 0, sizeof *cfg);
        snprintf(cfg->preset, sizeof cfg->preset, "%s", presets[i].name);
        cfg->n = presets[i].n;
        cfg->frames = presets[i].frames, cfg->height = presets[i].height, cfg->width = presets[i].width;
        cfg->text_len = presets[i].text_len, cfg->text_dim = presets[i].text_dim;
        cfg->dtype = DTYPE_F32;
        return 0;
    }
    return set_error(err, errlen, "unknown synthetic dataset preset '%s' (expected tiny, small or wan480p)", name);
}

int synth_validate(const synth_config_t *c, char *err, size_t errlen) {
    if (c->n < 1 || c->n > SYNTH_MAX_N)
        return set_error(err, errlen, "n = %lld is outside 1..%d", (long long)c->n, SYNTH_MAX_N);
    if (c->frames < 1 || c->frames > SYNTH_MAX_FRAMES)
        return set_error(err, errlen, "frames = %d is outside 1..%d", c->frames, SYNTH_MAX_FRAMES);
    if (c->height < 1 || c->height > SYNTH_MAX_SIDE)
        return set_error(err, errlen, "height = %d is outside 1..%d", c->height, SYNTH_MAX_SIDE);
    if (c->width < 1 || c->width > SYNTH_MAX_SIDE)
        return set_error(err, errlen, "width = %d is outside 1..%d", c->width, SYNTH_MAX_SIDE);
    if (c->text_len < 1 || c->text_len > SYNTH_MAX_TEXT_LEN)
        return set_error(err, errlen, "text_len = %d is outside 1..%d", c->text_len, SYNTH_MAX_TEXT_LEN);
    if (c->text_dim < 1 || c->text_dim > SYNTH_MAX_TEXT_DIM)
        return set_error(err, errlen, "text_dim = %d is outside 1..%d", c->text_dim, SYNTH_MAX_TEXT_DIM);
    int64_t lat = (int64_t)SYNTH_CHANNELS * c->frames * c->height * c->width;
    if (lat > SYNTH_MAX_SAMPLE_ELEMENTS)
        return set_error(err, errlen, "one latent video of 16 x %d x %d x %d has %lld elements, more than the 2^28 allowed",
                    c->frames, c->height, c->width, (long long)lat);
    if ((int64_t)c->text_len * c->text_dim > SYNTH_MAX_SAMPLE_ELEMENTS)
        return set_error(err, errlen, "one text of %d x %d has more than the 2^28 elements allowed", c->text_len,
                    c->text_dim);
    if (c->seed > (uint64_t)INT64_MAX || c->world_seed > (uint64_t)INT64_MAX) /* stored as int64 attributes */
        return set_error(err, errlen, "seed %llu or world seed %llu is above 2^63 - 1", (unsigned long long)c->seed,
                    (unsigned long long)c->world_seed);
    if (c->dtype != DTYPE_F32 && c->dtype != DTYPE_F16)
        return set_error(err, errlen, "dtype %s cannot be stored (expected float32 or float16)", dtype_name(c->dtype));
    return 0;
}

/* ---- scenes --------------------------------------------------------------------------------- */

static float side_min(const synth_config_t *cfg) {
    return (float)(cfg->height < cfg->width ? cfg->height : cfg->width);
}

static float frame_span(const synth_config_t *cfg) { return (float)(cfg->frames > 1 ? cfg->frames - 1 : 1); }

static int pick(float u, int count) {
    int i = (int)(u * (float)count);
    return i < count ? i : count - 1;
}

void synth_scene_draw(const synth_config_t *cfg, int64_t index, synth_scene_t *s) {
    float u[U_TOTAL];
    rng_uniform_fill((rng_key_t){cfg->seed, RNG_PURPOSE_SYNTH}, (uint32_t)index, 0, u, U_TOTAL);
    memset(s, 0, sizeof *s);
    float side = side_min(cfg), span = frame_span(cfg);
    s->nobjects = 1 + pick(u[U_COUNT], SYNTH_MAX_OBJECTS);
    for (int j = 0; j < s->nobjects; j++) {
        const float *v = u + U_OBJECTS + j * U_PER_OBJECT;
        synth_object_t *o = &s->objects[j];
        o->kind = pick(v[0], SYNTH_KINDS);
        o->direction = pick(v[1], SYNTH_DIRECTIONS);
        o->speed = (0.2f + 0.3f * v[2]) * side / span; /* travels 0.2 .. 0.5 of the short side */
        o->x_mid = (0.25f + 0.5f * v[3]) * (float)cfg->width;
        o->y_mid = (0.25f + 0.5f * v[4]) * (float)cfg->height;
        o->radius = fmaxf(1.0f, (0.1f + 0.1f * v[5]) * side);
    }
    const float *w = u + U_WAVES;
    for (int f = 0; f < SYNTH_FEATURES; f++)
        for (int k = 0; k < SYNTH_BG_WAVES; k++, w += 4) {
            s->wave_amp[f][k] = 0.2f + 0.3f * w[0];
            s->wave_kx[f][k] = 3.0f * w[1] - 1.5f;
            s->wave_ky[f][k] = 3.0f * w[2] - 1.5f;
            s->wave_phase[f][k] = (float)(2 * PI) * w[3];
        }
    s->pan_x = (2 * u[U_PAN] - 1) * 0.1f * side / span;
    s->pan_y = (2 * u[U_PAN + 1] - 1) * 0.1f * side / span;
}

/* ---- rendering ------------------------------------------------------------------------------ */

static void object_velocity(const synth_object_t *o, float *vx, float *vy) {
    double a = o->direction * (2 * PI / SYNTH_DIRECTIONS);
    *vx = (float)(o->speed * cos(a));
    *vy = (float)(-o->speed * sin(a)); /* y grows downwards: direction 2 moves up */
}

/* Coverage of pixel offset (dx, dy) from the object's centre: a Gaussian for even kinds, a square
 * with one-pixel soft edges for odd kinds. */
static float object_alpha(const synth_object_t *o, float dx, float dy) {
    if (o->kind % 2 == 0) {
        float sigma = 0.6f * o->radius;
        return expf(-0.5f * (dx * dx + dy * dy) / (sigma * sigma));
    }
    float h = 0.8f * o->radius;
    float ax = fminf(fmaxf(h - fabsf(dx) + 0.5f, 0.0f), 1.0f), ay = fminf(fmaxf(h - fabsf(dy) + 0.5f, 0.0f), 1.0f);
    return ax * ay;
}

/* feat [SYNTH_FEATURES] at pixel (x, y) of frame t. */
static void pixel_features(const synth_config_t *cfg, const synth_scene_t *s, const world_t *w, int t, int y, int x,
                           float *feat) {
    float bx = ((float)x - s->pan_x * (float)t) / (float)cfg->width;
    float by = ((float)y - s->pan_y * (float)t) / (float)cfg->height;
    for (int f = 0; f < SYNTH_FEATURES; f++) {
        float v = 0;
        for (int k = 0; k < SYNTH_BG_WAVES; k++)
            v += s->wave_amp[f][k] *
                 cosf((float)(2 * PI) * (s->wave_kx[f][k] * bx + s->wave_ky[f][k] * by) + s->wave_phase[f][k]);
        feat[f] = v;
    }
    float tm = 0.5f * (float)(cfg->frames - 1);
    for (int j = 0; j < s->nobjects; j++) {
        const synth_object_t *o = &s->objects[j];
        float vx, vy;
        object_velocity(o, &vx, &vy);
        float cx = o->x_mid + vx * ((float)t - tm), cy = o->y_mid + vy * ((float)t - tm);
        float a = object_alpha(o, (float)x - cx, (float)y - cy);
        for (int f = 0; f < SYNTH_FEATURES; f++) feat[f] += a * (w->colour[o->kind][f] - feat[f]);
    }
}

static void render_latents(const synth_config_t *cfg, const synth_scene_t *s, const world_t *w, int64_t index,
                           float *lat) {
    int64_t plane = (int64_t)cfg->frames * cfg->height * cfg->width;
    rng_normal_fill((rng_key_t){cfg->seed, RNG_PURPOSE_SYNTH}, (uint32_t)index, 1, lat, (long)(SYNTH_CHANNELS * plane),
                    LATENT_NOISE);
    float feat[SYNTH_FEATURES];
    int64_t p = 0;
    for (int t = 0; t < cfg->frames; t++)
        for (int y = 0; y < cfg->height; y++)
            for (int x = 0; x < cfg->width; x++, p++) {
                pixel_features(cfg, s, w, t, y, x, feat);
                for (int c = 0; c < SYNTH_CHANNELS; c++) {
                    float v = 0;
                    for (int f = 0; f < SYNTH_FEATURES; f++) v += w->proj[c][f] * feat[f];
                    lat[c * plane + p] += LATENT_GAIN * v;
                }
            }
}

/* Adds scale * v [Dt] to token. */
static void add_scaled(float *token, const float *v, float scale, int dt) {
    for (int i = 0; i < dt; i++) token[i] += scale * v[i];
}

static void render_text(const synth_config_t *cfg, const synth_scene_t *s, const world_t *w, float *text) {
    int dt = cfg->text_dim, lt = cfg->text_len;
    float side = side_min(cfg), span = frame_span(cfg);
    memset(text, 0, (size_t)lt * (size_t)dt * sizeof *text);
    add_scaled(text, w->count_emb + (size_t)s->nobjects * dt, 1.0f, dt);
    for (int j = 0; j < s->nobjects && 1 + j < lt; j++) {
        const synth_object_t *o = &s->objects[j];
        float *tok = text + (size_t)(1 + j) * dt;
        float r = (float)(1.0 / sqrt(2.0));
        add_scaled(tok, w->kind_emb + (size_t)o->kind * dt, r, dt);
        add_scaled(tok, w->dir_emb + (size_t)o->direction * dt, r, dt);
        /* continuous attributes mapped to about [-1, 1], at half weight */
        add_scaled(tok, w->speed_vec, 0.5f * ((o->speed * span / side - 0.35f) / 0.15f), dt);
        add_scaled(tok, w->size_vec, 0.5f * ((o->radius / side - 0.15f) / 0.05f), dt);
        add_scaled(tok, w->posx_vec, 0.5f * ((o->x_mid / (float)cfg->width - 0.5f) / 0.25f), dt);
        add_scaled(tok, w->posy_vec, 0.5f * ((o->y_mid / (float)cfg->height - 0.5f) / 0.25f), dt);
    }
    if (1 + s->nobjects < lt) add_scaled(text + (size_t)(1 + s->nobjects) * dt, w->end_emb, 1.0f, dt);
}

void synth_render(const synth_config_t *cfg, const synth_scene_t *scene, int64_t index, float *latents, float *text) {
    world_t w;
    world_make(cfg, &w);
    if (latents) render_latents(cfg, scene, &w, index, latents);
    if (text) render_text(cfg, scene, &w, text);
    world_free(&w);
}

void synth_sample(const synth_config_t *cfg, int64_t index, float *latents, float *text) {
    synth_scene_t s;
    synth_scene_draw(cfg, index, &s);
    synth_render(cfg, &s, index, latents, text);
}

/* ---- writing -------------------------------------------------------------------------------- */

static int write_attrs(h5_file_t *f, const synth_config_t *c, char *err, size_t errlen) {
    char buf[512];
    snprintf(buf, sizeof buf,
             "synthetic latent videos: 1-%d objects (Gaussian blobs or squares, %d kinds) moving with constant "
             "velocity in %d directions over a panning smooth background, %d feature channels projected to %d "
             "latent channels; text tokens describe the count, then per object its kind, direction, speed, size "
             "and position, then an end token, zero-padded to text_len",
             SYNTH_MAX_OBJECTS, SYNTH_KINDS, SYNTH_DIRECTIONS, SYNTH_FEATURES, SYNTH_CHANNELS);
    struct {
        const char *name;
        int64_t value;
    } ints[] = {{"n", c->n},
                {"frames", c->frames},
                {"height", c->height},
                {"width", c->width},
                {"text_len", c->text_len},
                {"text_dim", c->text_dim},
                {"seed", (int64_t)c->seed},
                {"world_seed", (int64_t)c->world_seed},
                {"max_objects", SYNTH_MAX_OBJECTS},
                {"kinds", SYNTH_KINDS},
                {"directions", SYNTH_DIRECTIONS},
                {"features", SYNTH_FEATURES}};
    if (h5_write_attr_string(f, "/", "description", buf, err, errlen) ||
        h5_write_attr_string(f, "/", "source", "sla-data synth", err, errlen) ||
        h5_write_attr_string(f, "/", "generator", "sla-data synth v1 (data/synth.c)", err, errlen) ||
        h5_write_attr_string(f, "/", "preset", c->preset[0] ? c->preset : "custom", err, errlen) ||
        h5_write_attr_string(f, "/", "dtype", dtype_name(c->dtype), err, errlen))
        return -1;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (h5_write_attr_int(f, "/", ints[i].name, ints[i].value, err, errlen)) return -1;
    return 0;
}

static int write_samples(h5_file_t *f, const synth_config_t *c, char *err, size_t errlen) {
    int64_t lat_shape[5] = {c->n, SYNTH_CHANNELS, c->frames, c->height, c->width};
    int64_t txt_shape[3] = {c->n, c->text_len, c->text_dim};
    if (h5_create_rows(f, "latents", c->dtype, 5, lat_shape, err, errlen) ||
        h5_create_rows(f, "text", c->dtype, 3, txt_shape, err, errlen))
        return -1;
    int64_t nl = (int64_t)SYNTH_CHANNELS * c->frames * c->height * c->width, nt = (int64_t)c->text_len * c->text_dim;
    float *lat = malloc((size_t)nl * sizeof *lat), *txt = malloc((size_t)nt * sizeof *txt);
    world_t w;
    world_make(c, &w);
    int rc = lat && txt ? 0 : set_error(err, errlen, "%s: out of memory for one sample", f->path);
    for (int64_t i = 0; rc == 0 && i < c->n; i++) {
        synth_scene_t s;
        synth_scene_draw(c, i, &s);
        render_latents(c, &s, &w, i, lat);
        render_text(c, &s, &w, txt);
        rc = h5_write_row_f32(f, "latents", i, lat, nl, err, errlen);
        if (rc == 0) rc = h5_write_row_f32(f, "text", i, txt, nt, err, errlen);
    }
    world_free(&w);
    free(lat);
    free(txt);
    return rc;
}

int synth_write(const synth_config_t *cfg, const char *path, char *err, size_t errlen) {
    if (synth_validate(cfg, err, errlen)) return -1;
    h5_file_t f;
    if (h5_create_temp(path, &f, err, errlen)) return -1;
    if (write_samples(&f, cfg, err, errlen) || write_attrs(&f, cfg, err, errlen)) {
        h5_abort(&f);
        return -1;
    }
    return h5_commit(&f, err, errlen);
}
