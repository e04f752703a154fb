/* data/synth.h — synthetic latent videos with real structure, and text that describes them.
 *
 * A scene is a smooth background (two plane waves per feature channel, panning slowly) and 1 to
 * SYNTH_MAX_OBJECTS objects. Each object has a kind (shape: even kinds are Gaussian blobs, odd
 * kinds soft squares; and a colour: a fixed vector in the SYNTH_FEATURES feature channels), a
 * size, a position at the middle frame and a constant velocity along one of SYNTH_DIRECTIONS
 * compass directions (direction d points at angle d * 45 degrees counter-clockwise from +x, with
 * y growing downwards, so 2 is up). Objects are alpha-composited in order over the background in
 * feature space; a fixed random projection maps the features to 16 latent channels, scaled to
 * about unit variance, plus a little noise. The text is a token sequence as a text encoder would
 * give, zero-padded to text_len as Wan pads: token 0 says how many objects there are, then one
 * token per object = (embedding of its kind + embedding of its direction + speed, size and
 * position along fixed random vectors) / sqrt 2, then an end token; tokens past text_len are cut.
 * So text and video are correlated: the same kind and direction give the same text features.
 *
 * Randomness is Philox keyed by (seed, RNG_PURPOSE_SYNTH) with c0 = sample index for the scenes
 * and noise, and (world_seed, RNG_PURPOSE_SYNTH) with c0 = 0xffffffff for the fixed tables
 * (colours, projection, token embeddings): datasets made with different seeds but the same
 * world_seed share one "world" (a training and a held-out set), and every sample depends only on
 * (config, index). synth_write stores float32 or float16 through a temporary file that is renamed
 * when complete, with root attributes naming the generator and every parameter. */
#ifndef SLA_SYNTH_H
#define SLA_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SYNTH_CHANNELS 16
#define SYNTH_FEATURES 6
#define SYNTH_KINDS 8
#define SYNTH_DIRECTIONS 8
#define SYNTH_MAX_OBJECTS 3
#define SYNTH_BG_WAVES 2

/* Limits checked by synth_validate (and by sla-data for its flags). */
#define SYNTH_MAX_N 10000000
#define SYNTH_MAX_FRAMES 1024
#define SYNTH_MAX_SIDE 4096
#define SYNTH_MAX_TEXT_LEN 65536
#define SYNTH_MAX_TEXT_DIM 65536
#define SYNTH_MAX_SAMPLE_ELEMENTS (INT64_C(1) << 28)

typedef struct synth_config {
    char preset[16];           /* "tiny", "small", "wan480p" or "custom": recorded, not used */
    int64_t n;                 /* samples */
    int frames, height, width; /* latent video [16, F, H, W] */
    int text_len, text_dim;    /* text [Lt, Dt] */
    uint64_t seed;             /* scenes */
    uint64_t world_seed;       /* fixed tables */
    dtype_t dtype;             /* stored as DTYPE_F32 or DTYPE_F16 */
} synth_config_t;

typedef struct synth_object {
    int kind;           /* 0 .. SYNTH_KINDS-1 */
    int direction;      /* 0 .. SYNTH_DIRECTIONS-1 */
    float speed;        /* pixels per frame */
    float x_mid, y_mid; /* position at frame (F-1)/2, in pixels */
    float radius;       /* pixels */
} synth_object_t;

typedef struct synth_scene {
    int nobjects;
    synth_object_t objects[SYNTH_MAX_OBJECTS];
    float wave_amp[SYNTH_FEATURES][SYNTH_BG_WAVES];
    float wave_kx[SYNTH_FEATURES][SYNTH_BG_WAVES],
        wave_ky[SYNTH_FEATURES][SYNTH_BG_WAVES]; /* cycles per frame width/height */
    float wave_phase[SYNTH_FEATURES][SYNTH_BG_WAVES];
    float pan_x, pan_y; /* background drift, pixels per frame */
} synth_scene_t;

/* Sizes of "tiny" (n 16, F 3, H 8, W 8, text 16 x 32: the tiny model), "small" (n 256, F 5,
 * H 16, W 16, text 64 x 512: the small model) and "wan480p" (n 16, F 21, H 60, W 104, text
 * 512 x 4096: Wan2.1 at 480p, 81 frames); seed 0, world_seed 0, float32. Returns 0, or -1 with a
 * sentence listing the presets. */
int synth_preset(const char *name, synth_config_t *cfg, char *err, size_t errlen);

/* 0, or -1 with a sentence naming the value out of range (see the SYNTH_MAX_* limits). */
int synth_validate(const synth_config_t *cfg, char *err, size_t errlen);

/* The scene of sample index. */
void synth_scene_draw(const synth_config_t *cfg, int64_t index, synth_scene_t *scene);

/* Renders scene: latents [16, F, H, W] and text [Lt, Dt] (either may be NULL); index selects the
 * noise. cfg must be valid. */
void synth_render(const synth_config_t *cfg, const synth_scene_t *scene, int64_t index, float *latents, float *text);

/* synth_scene_draw + synth_render. */
void synth_sample(const synth_config_t *cfg, int64_t index, float *latents, float *text);

/* Writes the dataset to path through path.tmp, renamed when complete: on failure path is left as
 * it was and path.tmp is removed. Returns 0, or -1 with a sentence. */
int synth_write(const synth_config_t *cfg, const char *path, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
