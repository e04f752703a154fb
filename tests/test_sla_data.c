/* tests/test_sla_data.c — the sla-data tool end to end (label cpu).
 *
 * Usage: test_sla_data PATH/TO/sla-data. In a mkdtemp directory: `synth` with a preset and with
 * explicit sizes and float16 writes files that data/dataset opens with the asked shapes, samples
 * equal to synth_sample's, no OUT.tmp left; `info` prints the sample count, shapes and attributes;
 * --help lists every flag. Then every bad command, flag and value: exit code 2, exactly one line
 * on stderr starting "sla-data: " and containing the expected phrase (the flag and what was
 * expected), and neither OUT nor OUT.tmp afterwards; a failed run leaves an existing OUT as it
 * was. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dataset.h"
#include "synth.h"
#include "test_util.h"
#include "tool_run.h"

static const char *g_tool;
static char g_dir[64], g_out[128], g_stdout[16384], g_stderr[4096];

/* Runs the tool with args (NULL-terminated), capturing stdout and stderr; returns the exit code. */
static int run_tool(const char *const *args) {
    const char *argv[32];
    int n = 0;
    argv[n++] = g_tool;
    for (int i = 0; args[i] && n < 31; i++) argv[n++] = args[i];
    argv[n] = NULL;
    return tool_run(argv, g_dir, g_stdout, sizeof g_stdout, g_stderr, sizeof g_stderr);
}

static int file_exists(const char *path) { return access(path, F_OK) == 0; }

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* The run fails with exit 2, one "sla-data: " line containing phrase, and leaves no output. */
static void expect_refused(const char *const *args, const char *phrase) {
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", g_out);
    unlink(g_out);
    int rc = run_tool(args);
    EXPECT(rc == 2, "%s ...: exit %d, expected 2 (stderr: %s)", args[0] ? args[0] : "(none)", rc, g_stderr);
    EXPECT(!strncmp(g_stderr, "sla-data: ", 10) && count_lines(g_stderr) == 1, "not one 'sla-data:' line: '%s'",
           g_stderr);
    EXPECT(strstr(g_stderr, phrase) != NULL, "message '%s' lacks '%s'", g_stderr, phrase);
    EXPECT(!file_exists(g_out) && !file_exists(tmp), "a refused run left %s or its .tmp", g_out);
    printf("  refused: %s", g_stderr);
}

static void test_success(void) {
    char path[160], tmp[170], err[512];
    snprintf(path, sizeof path, "%s/tiny.h5", g_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int rc = run_tool((const char *[]){"synth", "--out", path, "--preset", "tiny", "--n", "5", "--seed", "7", NULL});
    EXPECT(rc == 0, "synth --preset tiny: exit %d: %s", rc, g_stderr);
    EXPECT(strstr(g_stdout, "wrote") && strstr(g_stdout, "5 samples"), "synth output: '%s'", g_stdout);
    EXPECT(file_exists(path) && !file_exists(tmp), "tiny.h5 written without a temporary left");
    dataset_t ds;
    if (dataset_open(path, &ds, err, sizeof err) == 0) {
        EXPECT(ds.n == 5 && ds.channels == 16 && ds.frames == 3 && ds.height == 8 && ds.width == 8 &&
                   ds.text_len == 16 && ds.text_dim == 32,
               "tiny shapes");
        synth_config_t c;
        synth_preset("tiny", &c, err, sizeof err);
        c.n = 5, c.seed = 7;
        float a[16 * 3 * 8 * 8], b[16 * 3 * 8 * 8];
        dataset_read(&ds, 4, a, NULL, err, sizeof err);
        synth_sample(&c, 4, b, NULL);
        EXPECT(!memcmp(a, b, sizeof a), "sample 4 differs from synth_sample with seed 7");
        dataset_close(&ds);
    } else EXPECT(0, "dataset_open: %s", err);

    rc = run_tool((const char *[]){"info", path, NULL});
    EXPECT(rc == 0, "info: exit %d: %s", rc, g_stderr);
    EXPECT(strstr(g_stdout, "5 samples") && strstr(g_stdout, "[16, 3, 8, 8]") && strstr(g_stdout, "[16, 32]") &&
               strstr(g_stdout, "seed = 7") && strstr(g_stdout, "source = \"sla-data synth\"") &&
               strstr(g_stdout, "preset = \"tiny\""),
           "info output lacks counts, shapes or attributes:\n%s", g_stdout);
    printf("info:\n%s", g_stdout);

    char custom[160], list[400];
    snprintf(custom, sizeof custom, "%s/custom.h5", g_dir);
    rc = run_tool((const char *[]){"synth", "--out", custom, "--n", "2", "--frames", "4", "--height", "6", "--width=10",
                                   "--text-len", "5", "--text-dim", "7", "--dtype", "float16", NULL});
    EXPECT(rc == 0, "synth with sizes: exit %d: %s", rc, g_stderr);
    if (dataset_open(custom, &ds, err, sizeof err) == 0) {
        EXPECT(ds.n == 2 && ds.frames == 4 && ds.height == 6 && ds.width == 10 && ds.text_len == 5 &&
                   ds.text_dim == 7 && !strcmp(ds.files[0].latents_type, "float16"),
               "custom shapes or type");
        dataset_close(&ds);
    } else EXPECT(0, "dataset_open: %s", err);
    snprintf(list, sizeof list, "%s,%s", path, custom);
    rc = run_tool((const char *[]){"info", list, NULL});
    EXPECT(rc == 2 && strstr(g_stderr, "custom.h5: dataset 'latents' has per-sample shape [16, 4, 6, 10], but"),
           "info on mismatched files: exit %d, '%s'", rc, g_stderr);

    rc = run_tool((const char *[]){"--help", NULL});
    const char *flags[] = {"--out",      "--preset", "--n",          "--frames", "--height", "--width", "--text-len",
                           "--text-dim", "--seed",   "--world-seed", "--dtype",  "wan480p",  "info"};
    int missing = 0;
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) missing += !strstr(g_stdout, flags[i]);
    EXPECT(rc == 0 && missing == 0, "--help: exit %d, %d flags not listed", rc, missing);
    rc = run_tool((const char *[]){"synth", "--help", NULL});
    EXPECT(rc == 0 && strstr(g_stdout, "usage"), "synth --help: exit %d", rc);
}

static void test_refusals(void) {
    char not_h5[160], missing_dir[160], tmp_out[170];
    snprintf(not_h5, sizeof not_h5, "%s/not_h5.h5", g_dir);
    snprintf(missing_dir, sizeof missing_dir, "%s/nowhere/x.h5", g_dir);
    snprintf(tmp_out, sizeof tmp_out, "%s.tmp", g_out);
    FILE *f = fopen(not_h5, "w");
    fputs("hello\n", f);
    fclose(f);
    const char *o = g_out;
    printf("refusals:\n");
    expect_refused((const char *[]){NULL}, "expected a command, synth or info");
    expect_refused((const char *[]){"frobnicate", NULL}, "unknown command 'frobnicate'");
    expect_refused((const char *[]){"synth", NULL}, "synth needs --out");
    expect_refused((const char *[]){"synth", "--out", o, "--bogus", "1", NULL}, "unknown flag '--bogus'");
    expect_refused((const char *[]){"synth", "--out", o, "stray", NULL}, "unexpected argument 'stray'");
    expect_refused((const char *[]){"synth", "--out", o, "--n", NULL}, "--n needs a value");
    expect_refused((const char *[]){"synth", "--out", o, "--n=", NULL}, "--n needs a non-empty value");
    expect_refused((const char *[]){"synth", "--out", o, "--n", "0", NULL}, "--n 0 is outside 1..10000000");
    expect_refused((const char *[]){"synth", "--out", o, "--n", "abc", NULL}, "--n 'abc' is not an integer");
    expect_refused((const char *[]){"synth", "--out", o, "--n", "99999999999999999999", NULL}, "is not an integer");
    expect_refused((const char *[]){"synth", "--out", o, "--frames", "2000", NULL}, "--frames 2000 is outside 1..1024");
    expect_refused((const char *[]){"synth", "--out", o, "--height", "-1", NULL}, "--height -1 is outside 1..4096");
    expect_refused((const char *[]){"synth", "--out", o, "--width=0", NULL}, "--width 0 is outside 1..4096");
    expect_refused((const char *[]){"synth", "--out", o, "--text-len", "1.5", NULL},
                   "--text-len '1.5' is not an integer");
    expect_refused((const char *[]){"synth", "--out", o, "--text-dim", "70000", NULL}, "--text-dim 70000 is outside");
    expect_refused((const char *[]){"synth", "--out", o, "--seed", "-5", NULL}, "--seed -5 is outside 0..");
    expect_refused((const char *[]){"synth", "--out", o, "--world-seed", "x", NULL},
                   "--world-seed 'x' is not an integer");
    expect_refused((const char *[]){"synth", "--out", o, "--preset", "huge", NULL},
                   "--preset: unknown synthetic dataset preset 'huge'");
    expect_refused((const char *[]){"synth", "--out", o, "--dtype", "float64", NULL},
                   "--dtype 'float64' is unknown; expected float32 or float16");
    expect_refused(
        (const char *[]){"synth", "--out", o, "--frames", "1024", "--height", "4096", "--width", "4096", NULL},
        "--frames 1024 x --height 4096 x --width 4096 x 16 channels = 274877906944 latent elements per "
        "sample, more than the 2^28 allowed");
    expect_refused((const char *[]){"synth", "--out", o, "--text-len", "65536", "--text-dim", "65536", NULL},
                   "--text-len 65536 x --text-dim 65536 = 4294967296 text elements per sample, more than the 2^28");
    expect_refused((const char *[]){"synth", "--out", missing_dir, NULL}, "nowhere does not exist");
    expect_refused((const char *[]){"synth", "--out", g_dir, NULL}, "is a directory");
    expect_refused((const char *[]){"synth", "--out", tmp_out, NULL}, "ending in .tmp is reserved");
    expect_refused((const char *[]){"info", NULL}, "info needs a dataset");
    expect_refused((const char *[]){"info", not_h5, NULL}, "not_h5.h5: not an HDF5 file");
    expect_refused((const char *[]){"info", missing_dir, NULL}, "x.h5: cannot open");
    expect_refused((const char *[]){"info", not_h5, "extra", NULL}, "info takes one argument");
    /* A refused run leaves an existing OUT as it was. */
    f = fopen(g_out, "w");
    fputs("precious\n", f);
    fclose(f);
    int rc = run_tool((const char *[]){"synth", "--out", o, "--n", "0", NULL});
    char buf[64];
    f = fopen(g_out, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = '\0';
    if (f) fclose(f);
    EXPECT(rc == 2 && !strcmp(buf, "precious\n") && !file_exists(tmp_out), "existing OUT changed by a refused run");
    unlink(g_out);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_sla_data PATH/TO/sla-data\n");
        return 2;
    }
    g_tool = argv[1];
    test_make_dir(g_dir, sizeof g_dir, "test_sla_data");
    snprintf(g_out, sizeof g_out, "%s/out.h5", g_dir);
    test_success();
    test_refusals();
    test_remove_dir(g_dir);
    return test_summary("test_sla_data");
}
