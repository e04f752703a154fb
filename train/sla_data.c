/* train/sla_data.c — `sla-data`: make synthetic latent datasets and describe dataset files.
 *
 * sla-data synth --out FILE.h5 [--preset tiny|small|wan480p] [--n N] [--frames F] [--height H]
 *                [--width W] [--text-len L] [--text-dim D] [--seed S] [--world-seed S]
 *                [--dtype float32|float16]
 * sla-data info FILE.h5[,FILE.h5...]
 * synth starts from a preset (tiny when none is given) and overrides it flag by flag; the
 * videos and texts are those of data/synth.h. The file is written to FILE.h5.tmp and renamed when
 * complete. info validates the files as the trainer would (data/dataset.h) and prints the shapes,
 * per-file types and attributes, and statistics of the first sample.
 * Exit 0 on success; 2 on any bad input (command, flag, value, file) with one line
 * "sla-data: <sentence>" on stderr and no file written; 1 when writing fails after the start. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "dataset.h"
#include "h5_rows.h"
#include "h5_tensor.h"
#include "synth.h"

#define EXIT_BAD_INPUT CLI_EXIT_BAD_INPUT

#define die(code, ...) cli_die("sla-data", code, __VA_ARGS__)

static void print_help(void) {
    printf("usage: sla-data synth --out FILE.h5 [--preset NAME] [size and seed flags]\n"
           "       sla-data info FILE.h5[,FILE.h5...]\n"
           "Makes synthetic latent video datasets for sla-train and describes dataset files.\n\n"
           "synth: writes latents [n, 16, F, H, W] and text [n, L, D]: videos of 1-%d objects (blobs or\n"
           "squares of %d kinds) moving with constant velocity over a smooth panning background, projected\n"
           "to 16 latent channels (about unit variance), and text tokens that describe them (count, then\n"
           "per object kind, direction, speed, size and position, then an end token; zero-padded to L).\n"
           "  --out PATH         output HDF5 file (required); written to PATH.tmp, renamed when complete\n"
           "  --preset NAME      starting sizes (default tiny), overridden by the flags below:\n"
           "                       tiny     n 16,  F 3,  H 8,  W 8,   text 16 x 32    (the tiny model)\n"
           "                       small    n 256, F 5,  H 16, W 16,  text 64 x 512   (the small model)\n"
           "                       wan480p  n 16,  F 21, H 60, W 104, text 512 x 4096 (Wan2.1 480p)\n"
           "  --n N              samples, 1..%d\n"
           "  --frames F         latent frames, 1..%d\n"
           "  --height H         latent height, 1..%d\n"
           "  --width W          latent width, 1..%d\n"
           "  --text-len L       text tokens per sample, 1..%d\n"
           "  --text-dim D       text embedding width, 1..%d\n"
           "  --seed S           scenes (objects, background, noise), 0..2^63-1 (default 0)\n"
           "  --world-seed S     fixed tables (colours, projection, token embeddings) shared by datasets\n"
           "                     that should describe one world, e.g. train and held-out sets (default 0)\n"
           "  --dtype NAME       float32 or float16 in the file (default float32)\n"
           "  One sample may hold at most 2^28 latent and 2^28 text elements.\n\n"
           "info: validates FILE.h5 (or a comma-separated list, read as one dataset) and prints what it\n"
           "holds: sample count, per-sample shapes, types, attributes and statistics of sample 0.\n\n"
           "  --help             print this and exit\n"
           "Exit status: 0 success; 2 bad input (one line on stderr, no file written); 1 write failure.\n",
           SYNTH_MAX_OBJECTS, SYNTH_KINDS, SYNTH_MAX_N, SYNTH_MAX_FRAMES, SYNTH_MAX_SIDE, SYNTH_MAX_SIDE,
           SYNTH_MAX_TEXT_LEN, SYNTH_MAX_TEXT_DIM);
}

/* ---- synth flags ---------------------------------------------------------------------------- */

typedef struct synth_flags {
    const char *out, *preset;
    const char *value[9]; /* by flag_names index; NULL when not given */
} synth_flags_t;

enum { F_N, F_FRAMES, F_HEIGHT, F_WIDTH, F_TEXT_LEN, F_TEXT_DIM, F_SEED, F_WORLD_SEED, F_DTYPE, F_COUNT };
static const char *const flag_names[F_COUNT] = {"--n",        "--frames", "--height",     "--width", "--text-len",
                                                "--text-dim", "--seed",   "--world-seed", "--dtype"};

static long long parse_int(const char *flag, const char *s, long long lo, long long hi) {
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (end == s || *end || errno == ERANGE)
        die(EXIT_BAD_INPUT, "%s '%s' is not an integer (expected %lld..%lld)", flag, s, lo, hi);
    if (x < lo || x > hi) die(EXIT_BAD_INPUT, "%s %s is outside %lld..%lld", flag, s, lo, hi);
    return x;
}

static void on_synth_flag(void *ctx, const char *flag, const char *val) {
    synth_flags_t *fl = ctx;
    if (!*val) die(EXIT_BAD_INPUT, "%s needs a non-empty value", flag);
    if (!strcmp(flag, "--out")) fl->out = val;
    else if (!strcmp(flag, "--preset")) fl->preset = val;
    for (int k = 0; k < F_COUNT; k++)
        if (!strcmp(flag, flag_names[k])) fl->value[k] = val;
}

static void parse_synth_args(int argc, char **argv, synth_flags_t *fl) {
    const char *known[F_COUNT + 3] = {"--out", "--preset"};
    for (int k = 0; k < F_COUNT; k++) known[2 + k] = flag_names[k];
    memset(fl, 0, sizeof *fl);
    cli_parse("sla-data", argc, argv, 2, known, print_help, on_synth_flag, fl);
    if (!fl->out) die(EXIT_BAD_INPUT, "synth needs --out FILE.h5 (see sla-data --help)");
}

/* The preset, then every flag given, each checked against its range. */
static void build_config(const synth_flags_t *fl, synth_config_t *c) {
    char err[512];
    const char *preset = fl->preset ? fl->preset : "tiny";
    if (synth_preset(preset, c, err, sizeof err)) die(EXIT_BAD_INPUT, "--preset: %s", err);
    const char *const *v = fl->value;
    synth_config_t base = *c;
    if (v[F_N]) c->n = parse_int("--n", v[F_N], 1, SYNTH_MAX_N);
    if (v[F_FRAMES]) c->frames = (int)parse_int("--frames", v[F_FRAMES], 1, SYNTH_MAX_FRAMES);
    if (v[F_HEIGHT]) c->height = (int)parse_int("--height", v[F_HEIGHT], 1, SYNTH_MAX_SIDE);
    if (v[F_WIDTH]) c->width = (int)parse_int("--width", v[F_WIDTH], 1, SYNTH_MAX_SIDE);
    if (v[F_TEXT_LEN]) c->text_len = (int)parse_int("--text-len", v[F_TEXT_LEN], 1, SYNTH_MAX_TEXT_LEN);
    if (v[F_TEXT_DIM]) c->text_dim = (int)parse_int("--text-dim", v[F_TEXT_DIM], 1, SYNTH_MAX_TEXT_DIM);
    if (v[F_SEED]) c->seed = (uint64_t)parse_int("--seed", v[F_SEED], 0, INT64_MAX);
    if (v[F_WORLD_SEED]) c->world_seed = (uint64_t)parse_int("--world-seed", v[F_WORLD_SEED], 0, INT64_MAX);
    if (v[F_DTYPE]) {
        if (!strcmp(v[F_DTYPE], "float32")) c->dtype = DTYPE_F32;
        else if (!strcmp(v[F_DTYPE], "float16")) c->dtype = DTYPE_F16;
        else die(EXIT_BAD_INPUT, "--dtype '%s' is unknown; expected float32 or float16", v[F_DTYPE]);
    }
    int64_t lat = (int64_t)SYNTH_CHANNELS * c->frames * c->height * c->width, txt = (int64_t)c->text_len * c->text_dim;
    if (lat > SYNTH_MAX_SAMPLE_ELEMENTS)
        die(EXIT_BAD_INPUT,
            "--frames %d x --height %d x --width %d x 16 channels = %lld latent elements per sample, "
            "more than the 2^28 allowed",
            c->frames, c->height, c->width, (long long)lat);
    if (txt > SYNTH_MAX_SAMPLE_ELEMENTS)
        die(EXIT_BAD_INPUT, "--text-len %d x --text-dim %d = %lld text elements per sample, more than the 2^28 allowed",
            c->text_len, c->text_dim, (long long)txt);
    if (synth_validate(c, err, sizeof err)) die(EXIT_BAD_INPUT, "%s", err);
    /* Other sizes than the preset's: record "custom" (n, seeds and dtype keep the preset's name). */
    if (c->frames != base.frames || c->height != base.height || c->width != base.width ||
        c->text_len != base.text_len || c->text_dim != base.text_dim)
        snprintf(c->preset, sizeof c->preset, "custom");
}

/* The output's directory must exist and be writable, found out before any work is done. */
static void check_out(const char *out) {
    size_t len = strlen(out);
    if (len >= 4 && !strcmp(out + len - 4, ".tmp"))
        die(EXIT_BAD_INPUT, "--out %s: a name ending in .tmp is reserved for files being written", out);
    struct stat st;
    if (stat(out, &st) == 0 && S_ISDIR(st.st_mode))
        die(EXIT_BAD_INPUT, "--out %s is a directory, expected a file name", out);
    const char *slash = strrchr(out, '/');
    char dir[4096];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else snprintf(dir, sizeof dir, "%.*s", slash == out ? 1 : (int)(slash - out), out);
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        die(EXIT_BAD_INPUT, "--out %s: the directory %s does not exist", out, dir);
    if (access(dir, W_OK) != 0) die(EXIT_BAD_INPUT, "--out %s: the directory %s is not writable", out, dir);
}

static int run_synth(int argc, char **argv) {
    synth_flags_t fl;
    synth_config_t c;
    parse_synth_args(argc, argv, &fl);
    build_config(&fl, &c);
    check_out(fl.out);
    char err[512];
    if (synth_write(&c, fl.out, err, sizeof err)) die(1, "%s", err);
    double gib = (double)c.n * (16.0 * c.frames * c.height * c.width + (double)c.text_len * c.text_dim) *
                 (c.dtype == DTYPE_F16 ? 2 : 4) / (1 << 30);
    printf("wrote %s: %lld samples, latents [16, %d, %d, %d], text [%d, %d], %s, seed %llu, world seed %llu "
           "(%.3f GiB of data)\n",
           fl.out, (long long)c.n, c.frames, c.height, c.width, c.text_len, c.text_dim, dtype_name(c.dtype),
           (unsigned long long)c.seed, (unsigned long long)c.world_seed, gib);
    return 0;
}

/* ---- info ----------------------------------------------------------------------------------- */

static void print_attrs(const char *path) {
    h5_file_t f;
    char err[512];
    if (h5_open_read(path, &f, err, sizeof err)) die(EXIT_BAD_INPUT, "%s", err);
    int n = h5_attr_count(&f, "/");
    for (int i = 0; i < n; i++) {
        char name[256], s[4096];
        int64_t iv;
        double dv;
        if (h5_attr_name(&f, "/", i, name, sizeof name)) continue;
        if (h5_read_attr_int(&f, "/", name, &iv, NULL, 0) == 0) printf("    %s = %lld\n", name, (long long)iv);
        else if (h5_read_attr_double(&f, "/", name, &dv, NULL, 0) == 0) printf("    %s = %.9g\n", name, dv);
        else if (h5_read_attr_string(&f, "/", name, s, sizeof s, NULL, 0) == 0) printf("    %s = \"%s\"\n", name, s);
        else printf("    %s = (not a single number or string)\n", name);
    }
    if (n <= 0) printf("    (no attributes)\n");
    h5_close(&f, NULL, 0);
}

static void print_stats(const char *what, const float *x, int64_t n) {
    double sum = 0, ss = 0, lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        sum += x[i], ss += (double)x[i] * x[i];
        lo = fmin(lo, x[i]), hi = fmax(hi, x[i]);
    }
    double mean = sum / (double)n, var = fmax(ss / (double)n - mean * mean, 0.0);
    printf("  %s: mean %.4f, std %.4f, min %.4f, max %.4f\n", what, mean, sqrt(var), lo, hi);
}

static int run_info(int argc, char **argv) {
    if (argc < 3) die(EXIT_BAD_INPUT, "info needs a dataset: sla-data info FILE.h5[,FILE.h5...]");
    if (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h")) {
        print_help();
        return 0;
    }
    if (argc > 3)
        die(EXIT_BAD_INPUT, "info takes one argument (a file or a comma-separated list), got also '%s'", argv[3]);
    dataset_t ds;
    char err[512];
    if (dataset_open(argv[2], &ds, err, sizeof err)) die(EXIT_BAD_INPUT, "%s", err);
    printf("dataset %s: %d file%s, %lld samples\n", argv[2], ds.nfiles, ds.nfiles == 1 ? "" : "s", (long long)ds.n);
    printf("  latents per sample: [%d, %d, %d, %d] (channels, frames, height, width)\n", ds.channels, ds.frames,
           ds.height, ds.width);
    printf("  text per sample: [%d, %d] (tokens, width)\n", ds.text_len, ds.text_dim);
    for (int i = 0; i < ds.nfiles; i++) {
        const dataset_file_t *df = &ds.files[i];
        printf("file %s: samples %lld..%lld, latents %s, text %s\n", df->path, (long long)df->first,
               (long long)(df->first + df->n - 1), df->latents_type, df->text_type);
        print_attrs(df->path);
    }
    float *lat = malloc((size_t)ds.latent_numel * sizeof *lat), *txt = malloc((size_t)ds.text_numel * sizeof *txt);
    if (!lat || !txt) die(1, "out of memory for one sample");
    if (dataset_read(&ds, 0, lat, txt, err, sizeof err)) die(EXIT_BAD_INPUT, "%s", err);
    printf("sample 0:\n");
    print_stats("latents", lat, ds.latent_numel);
    print_stats("text", txt, ds.text_numel);
    int used = 0;
    for (int t = 0; t < ds.text_len; t++) {
        int nz = 0;
        for (int d = 0; d < ds.text_dim && !nz; d++) nz = txt[(size_t)t * ds.text_dim + d] != 0.0f;
        used += nz;
    }
    printf("  text tokens not zero: %d of %d\n", used, ds.text_len);
    free(lat);
    free(txt);
    dataset_close(&ds);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) die(EXIT_BAD_INPUT, "expected a command, synth or info (see sla-data --help)");
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        print_help();
        return 0;
    }
    if (!strcmp(cmd, "synth")) return run_synth(argc, argv);
    if (!strcmp(cmd, "info")) return run_info(argc, argv);
    die(EXIT_BAD_INPUT, "unknown command '%s'; expected synth or info (see sla-data --help)", cmd);
}
