/* tests/test_config.c — the configuration reader (label cpu): defaults and presets, file parsing
 * with comments, --set overrides, the printed config loading back to the same values, and every
 * error case naming the file:line, key and value. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "test_util.h"

static char dir[] = "/tmp/test_config_XXXXXX";

static const char *write_file(const char *name, const char *text) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

/* Loads text as a config file and expects failure with every phrase in `want` (NULL-terminated). */
static void expect_file_error(const char *text, const char *want1, const char *want2) {
    run_config_t c;
    config_defaults(&c);
    char err[512] = "";
    const char *path = write_file("bad.cfg", text);
    int rc = config_load_file(&c, path, err, sizeof err);
    if (rc == 0) rc = config_validate(&c, err, sizeof err);
    EXPECT(rc == -1 && strstr(err, want1) && (!want2 || strstr(err, want2)),
           "config '%s': expected an error with '%s'%s%s, got rc %d '%s'", text, want1, want2 ? " and " : "",
           want2 ? want2 : "", rc, err);
}

int main(void) {
    if (!mkdtemp(dir)) return 1;
    run_config_t c;
    char err[512];
    config_defaults(&c);
    EXPECT(!strcmp(c.model.preset, "tiny") && c.model.dim == 64 && c.model.heads == 2 && c.model.sla.topk == 0.05 &&
               c.steps == 100 && config_validate(&c, err, sizeof err) == 0,
           "defaults: preset %s dim %d", c.model.preset, c.model.dim);

    const char *path = write_file("ok.cfg", "# a run\n  steps = 7   # trailing comment\nsla_topk=0.1\n"
                                            "attention = sla\nsla_feature = elu\nmodel = wan2.1-1.3b\n"
                                            "dim = 1536\n\nlr = 3e-5\n");
    EXPECT(config_load_file(&c, path, err, sizeof err) == 0, "load: %s", err);
    EXPECT(c.steps == 7 && c.model.sla.topk == 0.1 && c.model.sla.feature == SLA_FEATURE_ELU && c.model.layers == 30 &&
               c.model.heads == 12 && c.lr == 3e-5,
           "file values: steps %d topk %g feature %d layers %d (model must apply before other keys)", c.steps,
           c.model.sla.topk, c.model.sla.feature, c.model.layers);
    EXPECT(config_apply_override(&c, "steps=9", err, sizeof err) == 0 && c.steps == 9, "--set steps=9");
    EXPECT(config_apply_override(&c, "sla_variant = all", err, sizeof err) == 0 &&
               c.model.sla.variant == SLA_VARIANT_ALL,
           "--set sla_variant");

    /* Round trip: the formatted config loads back to identical values. */
    char text[8192];
    config_format(&c, text, sizeof text);
    run_config_t back;
    config_defaults(&back);
    EXPECT(config_load_file(&back, write_file("round.cfg", text), err, sizeof err) == 0, "reload: %s", err);
    char text2[8192];
    config_format(&back, text2, sizeof text2);
    EXPECT(!strcmp(text, text2), "formatted config does not load back to the same values:\n%s\nvs\n%s", text, text2);

    expect_file_error("stepz = 3\n", "bad.cfg:1", "unknown key 'stepz'");
    expect_file_error("# c\nsteps = three\n", "bad.cfg:2", "steps = 'three' is not an integer");
    expect_file_error("lr = nan\n", "lr = 'nan'", "finite");
    expect_file_error("steps 3\n", "expected 'key = value'", NULL);
    expect_file_error("attention = sparse\n", "attention = 'sparse'", "dense|sla");
    expect_file_error("model = wan3\n", "model = 'wan3'", "tiny|small");
    expect_file_error("heads = 3\n", "dim = 64 is not divisible by heads = 3", NULL);
    expect_file_error("dim = 8\nheads = 2\n", "head dim 4", "RoPE");
    expect_file_error("sla_topk = 1.5\n", "topk = 1.5", NULL);
    expect_file_error("sla_blkq = 0\n", "block sizes", NULL);
    expect_file_error("sla_layers = 0-7\n", "sla_layers", "outside");
    expect_file_error("sla_layers = x\n", "sla_layers = 'x'", NULL);
    expect_file_error("batch = 0\n", "batch = 0", "at least 1");
    expect_file_error("lr_schedule = linear\n", "lr_schedule = 'linear'", "constant|cosine");
    expect_file_error("distill_weight = 0.5\n", "teacher", NULL);
    EXPECT(config_apply_override(&c, "nokey=1", err, sizeof err) == -1 && strstr(err, "--set") &&
               strstr(err, "'nokey'"),
           "--set nokey: '%s'", err);
    EXPECT(config_apply_override(&c, "steps", err, sizeof err) == -1 && strstr(err, "key=value"), "--set steps: '%s'",
           err);
    EXPECT(config_load_file(&c, "/nonexistent/x.cfg", err, sizeof err) == -1 && strstr(err, "/nonexistent/x.cfg"),
           "missing file: '%s'", err);

    unlink(write_file("ok.cfg", "")), unlink(write_file("round.cfg", "")), unlink(write_file("bad.cfg", ""));
    rmdir(dir);
    return test_summary("test_config");
}
