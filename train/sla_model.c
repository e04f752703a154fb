/* train/sla_model.c — `sla-model`: one forward (and backward) of the whole DiT from the command
 * line, on given weights and inputs: how anyone checks our model against the PyTorch original.
 *
 * sla-model --config CFG --weights W --in IN.h5 --out OUT.h5 [--backend cpu|cuda] [--set key=value ...]
 * CFG is a run configuration as sla-train reads it (only the model keys, backend and recompute
 * matter here; --set overrides in order). W: an .h5 weights file or checkpoint, or safetensors
 * (one file, a comma-separated list of shards, or an *.index.json), original Wan2.1 or diffusers
 * names (model/safetensors.h); a dense checkpoint loads into an SLA model with proj_l at zero.
 * IN.h5: latents float [B,16,F,H,W], t float [B] (timesteps in 0..1000), text float [B,Lt,Dt]
 * (Lt <= text_len, zero-padded inside as Wan), optional dpred [B,16,F,H,W]: then the backward runs.
 * OUT.h5: pred [B,16,F,H,W] float32; with dpred, grad/<parameter name> float32 for every
 * parameter of the table (the gradient of sum(dpred * pred), from zero); root attributes: tool,
 * backend, weights, config (the resolved config text), backward, proj_zero_filled.
 * The CUDA backend computes with bf16 activations and fp32 master weights (dit.h); inputs are
 * copied to device tensors and results back with tensor_copy, and written as float32.
 * Exit 0 on success; 2 on any bad input (flag, config, weights, dataset, shape, CUDA not
 * available) with one line "sla-model: <sentence>" on stderr; 1 on an internal failure. OUT.h5 is
 * written to OUT.h5.tmp and renamed only when complete, so a failed run leaves no OUT.h5.
 * Tested by tests/test_sla_model.c. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "cli.h"
#include "config.h"
#include "dit.h"
#include "h5_tensor.h"
#include "safetensors.h"

#define MAX_SETS 64

typedef struct options {
    const char *config, *weights, *in, *out, *backend;
    const char *sets[MAX_SETS];
    int nsets;
} options_t;

/* Host tensors, float32. */
typedef struct inputs {
    tensor_t latents, t, text, dpred;
    int have_dpred;
} inputs_t;

#define die(...) cli_die("sla-model", CLI_EXIT_BAD_INPUT, __VA_ARGS__)

static void print_help(void) {
    printf("usage: sla-model --config CFG --weights W --in IN.h5 --out OUT.h5 [options]\n"
           "Runs one forward of the Wan2.1-style DiT on the inputs of IN.h5 (and the backward when IN.h5\n"
           "holds dpred) with the weights W, and writes the prediction and gradients to OUT.h5.\n\n"
           "  --config CFG      run configuration (key = value, as sla-train; required); the model keys,\n"
           "                    backend and recompute are used here (sla-train --help lists the keys)\n"
           "  --weights W       weights (required): an .h5 weights file or checkpoint, or safetensors: one\n"
           "                    file, a comma-separated list of shards, or a *.safetensors.index.json;\n"
           "                    original Wan2.1 or diffusers names; BF16, F16 or F32. A dense checkpoint\n"
           "                    loads into an SLA model with blocks.N.self_attn.proj_l at zero\n"
           "  --in IN.h5        inputs (required): latents float [B,16,F,H,W], t float [B] (timesteps in\n"
           "                    0..1000), text float [B,Lt,Dt] (Lt <= text_len, Dt = text_dim), optional\n"
           "                    dpred [B,16,F,H,W] (runs the backward of sum(dpred * pred))\n"
           "  --out OUT.h5      output (required): pred [B,16,F,H,W] and, with dpred, grad/<name> for every\n"
           "                    parameter; written to OUT.h5.tmp, renamed when complete\n"
           "  --backend NAME    cpu or cuda (default: the config's backend; auto picks CUDA when present)\n"
           "  --set key=value   override a config key (repeatable, applied in order after CFG)\n"
           "  --help            print this and exit\n\n"
           "F, H, W must be divisible by the patch (1x2x2). float16/float64 inputs are read as float32.\n"
           "Exit status: 0 success; 2 bad input (one line on stderr, OUT not written); 1 internal error.\n");
}

/* ---- flags ------------------------------------------------------------------------------- */

static const char *const known_flags[] = {"--config", "--weights", "--in", "--out", "--backend", "--set", NULL};

static void set_option(options_t *o, const char *flag, const char *val) {
    if (!*val) die("%s needs a non-empty value", flag);
    if (!strcmp(flag, "--config")) o->config = val;
    else if (!strcmp(flag, "--weights")) o->weights = val;
    else if (!strcmp(flag, "--in")) o->in = val;
    else if (!strcmp(flag, "--out")) o->out = val;
    else if (!strcmp(flag, "--backend")) {
        if (strcmp(val, "cpu") && strcmp(val, "cuda")) die("--backend '%s' is unknown; expected cpu or cuda", val);
        o->backend = val;
    } else {
        if (o->nsets == MAX_SETS) die("more than %d --set overrides", MAX_SETS);
        o->sets[o->nsets++] = val;
    }
}

static void on_flag(void *ctx, const char *flag, const char *val) { set_option(ctx, flag, val); }

static void parse_args(int argc, char **argv, options_t *o) {
    memset(o, 0, sizeof *o);
    cli_parse("sla-model", argc, argv, 1, known_flags, print_help, on_flag, o);
    const char *need[4][2] = {{"--config CFG", o->config}, {"--weights W", o->weights}, {"--in IN.h5", o->in},
                              {"--out OUT.h5", o->out}};
    for (int i = 0; i < 4; i++)
        if (!need[i][1]) die("%s is required (see sla-model --help)", need[i][0]);
}

/* The output's directory must exist and be writable: found out before any work is done. */
static void check_out_dir(const char *out) {
    const char *slash = strrchr(out, '/');
    char dir[4096];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else snprintf(dir, sizeof dir, "%.*s", slash == out ? 1 : (int)(slash - out), out);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) die("--out %s: the directory %s does not exist", out, dir);
    if (access(dir, W_OK) != 0) die("--out %s: the directory %s is not writable", out, dir);
}

static void load_config(const options_t *o, run_config_t *cfg) {
    char err[2048];
    config_defaults(cfg);
    if (config_load_file(cfg, o->config, err, sizeof err)) die("%s", err);
    for (int i = 0; i < o->nsets; i++)
        if (config_apply_override(cfg, o->sets[i], err, sizeof err)) die("%s", err);
    if (config_validate(cfg, err, sizeof err)) die("%s: %s", o->config, err);
}

static device_t pick_device(const options_t *o, const run_config_t *cfg) {
    const char *b = o->backend ? o->backend : cfg->backend;
    const char *from = o->backend ? "--backend cuda" : "backend = cuda (config)";
    if (!strcmp(b, "cpu")) return DEVICE_CPU;
    if (!strcmp(b, "cuda") && !ops_cuda_available())
        die("%s: no CUDA device is available (or this build has no CUDA backend); use --backend cpu", from);
    if (!strcmp(b, "cuda")) return DEVICE_CUDA;
    return ops_cuda_available() ? DEVICE_CUDA : DEVICE_CPU;
}

/* ---- inputs ------------------------------------------------------------------------------ */

static const char *shape_str(int ndim, const int64_t *shape, char *buf, size_t len) {
    tensor_t t = tensor_make(DTYPE_F32, DEVICE_CPU, ndim, shape);
    return tensor_shape_str(&t, buf, len);
}

/* Reads float dataset name of rank ndim; where want is not NULL, extents >= 0 must match it. */
static void load(const h5_file_t *f, const char *name, int ndim, const int64_t *want, const char *layout,
                 tensor_t *t) {
    char err[512], got[128];
    h5_info_t info;
    if (h5_dataset_info(f, name, &info, err, sizeof err)) die("%s", err);
    if (!info.is_float) die("%s: dataset '%s' is %s, expected float32", f->path, name, info.type_name);
    int ok = info.ndim == ndim;
    for (int i = 0; ok && want && i < ndim; i++) ok = want[i] < 0 || info.shape[i] == want[i];
    for (int i = 0; ok && i < ndim; i++) ok = info.shape[i] >= 1 && info.shape[i] <= INT_MAX;
    if (!ok) {
        shape_str(info.ndim, info.shape, got, sizeof got);
        die("%s: dataset '%s' has shape %s, expected %s", f->path, name, got, layout);
    }
    if (h5_read_tensor(f, name, DTYPE_F32, t, NULL, err, sizeof err)) die("%s", err);
}

static void read_inputs(const options_t *o, const model_config_t *mc, inputs_t *in) {
    char err[512], lay[256];
    h5_file_t f;
    memset(in, 0, sizeof *in);
    if (h5_open_read(o->in, &f, err, sizeof err)) die("%s", err);
    snprintf(lay, sizeof lay, "[B, %d, F, H, W] (in_channels = %d of the config)", mc->in_channels, mc->in_channels);
    load(&f, "latents", 5, (int64_t[]){-1, mc->in_channels, -1, -1, -1}, lay, &in->latents);
    const int64_t *s = in->latents.shape, B = s[0];
    if (s[2] % mc->patch_f || s[3] % mc->patch_h || s[4] % mc->patch_w)
        die("%s: dataset 'latents' has frames x height x width %lld x %lld x %lld, not divisible by the patch %dx%dx%d",
            o->in, (long long)s[2], (long long)s[3], (long long)s[4], mc->patch_f, mc->patch_h, mc->patch_w);
    int64_t tokens = s[2] / mc->patch_f * (s[3] / mc->patch_h) * (s[4] / mc->patch_w);
    if (tokens > INT_MAX / 2) die("%s: dataset 'latents' makes %lld tokens per sample, too many", o->in, (long long)tokens);
    snprintf(lay, sizeof lay, "[%lld] (B of latents)", (long long)B);
    load(&f, "t", 1, &B, lay, &in->t);
    const float *tv = in->t.data;
    for (int64_t b = 0; b < B; b++)
        if (!(tv[b] >= 0.0f && tv[b] <= 1000.0f))
            die("%s: dataset 't' holds %g at index %lld; timesteps must be in [0, 1000]", o->in, tv[b], (long long)b);
    snprintf(lay, sizeof lay, "[%lld, Lt, %d] with 1 <= Lt <= %d (text_len and text_dim of the config)", (long long)B,
             mc->text_dim, mc->text_len);
    load(&f, "text", 3, (int64_t[]){B, -1, mc->text_dim}, lay, &in->text);
    if (in->text.shape[1] > mc->text_len) {
        char got[128];
        die("%s: dataset 'text' has shape %s, expected %s", o->in, tensor_shape_str(&in->text, got, sizeof got), lay);
    }
    if ((in->have_dpred = h5_exists(&f, "dpred"))) {
        char want[128];
        snprintf(lay, sizeof lay, "%s (the shape of latents)", shape_str(5, s, want, sizeof want));
        load(&f, "dpred", 5, s, lay, &in->dpred);
    }
    h5_close(&f, err, sizeof err);
}

static void free_inputs(inputs_t *in) {
    tensor_free(&in->latents), tensor_free(&in->t), tensor_free(&in->text), tensor_free(&in->dpred);
}

/* The weights into a host arena, by the table of cfg: refused before any model memory is taken. */
static float *load_weights(const options_t *o, const model_config_t *mc, int *zero_filled) {
    char err[2048];
    param_table_t table;
    if (param_table_build(mc, &table, err, sizeof err)) die("%s: %s", o->config, err);
    float *arena = xcalloc(table.total ? table.total : 1, sizeof(float));
    if (weights_load_any(o->weights, &table, arena, zero_filled, err, sizeof err)) die("%s", err);
    param_table_free(&table);
    return arena;
}

/* ---- compute ----------------------------------------------------------------------------- */

static tensor_t upload(const tensor_t *host, device_t dev) {
    tensor_t t = tensor_alloc(DTYPE_F32, dev, host->ndim, host->shape);
    tensor_copy(&t, host);
    return t;
}

static tensor_t flat_host(float *data, size_t n) {
    int64_t len = (int64_t)n;
    tensor_t t = tensor_make(DTYPE_F32, DEVICE_CPU, 1, &len);
    t.data = data;
    return t;
}

/* Runs forward (and backward) on dev; returns pred on the host and, with dpred, fills grads_host. */
static tensor_t run_model(dit_t *m, const float *weights, const inputs_t *in, float *grads_host) {
    device_t dev = m->device;
    tensor_t w = flat_host((float *)weights, m->table.total);
    tensor_copy(&m->params, &w);
    dit_params_changed(m);
    tensor_t lat = upload(&in->latents, dev), t = upload(&in->t, dev), text = upload(&in->text, dev);
    tensor_t pred = tensor_alloc(DTYPE_F32, dev, 5, in->latents.shape);
    dit_forward(m, &lat, &t, &text, &pred);
    tensor_t pred_host = tensor_alloc(DTYPE_F32, DEVICE_CPU, 5, in->latents.shape);
    tensor_copy(&pred_host, &pred);
    if (in->have_dpred) {
        tensor_t dpred = upload(&in->dpred, dev);
        dit_zero_grads(m);
        dit_backward(m, &dpred);
        tensor_t g = flat_host(grads_host, m->table.total);
        tensor_copy(&g, &m->grads);
        tensor_free(&dpred);
    }
    tensor_free(&lat), tensor_free(&t), tensor_free(&text), tensor_free(&pred);
    return pred_host;
}

/* ---- outputs ----------------------------------------------------------------------------- */

static int write_attrs(h5_file_t *f, const options_t *o, const run_config_t *cfg, device_t dev, const inputs_t *in,
                       int zero_filled, char *err, size_t len) {
    size_t need = config_format(cfg, NULL, 0) + 1;
    char *text = xmalloc(need);
    config_format(cfg, text, need);
    int rc = h5_write_attr_string(f, "/", "tool", "sla-model", err, len) ||
             h5_write_attr_string(f, "/", "backend", device_name(dev), err, len) ||
             h5_write_attr_string(f, "/", "weights", o->weights, err, len) ||
             h5_write_attr_string(f, "/", "config", text, err, len) ||
             h5_write_attr_int(f, "/", "backward", in->have_dpred, err, len) ||
             h5_write_attr_int(f, "/", "proj_zero_filled", zero_filled, err, len);
    free(text);
    return rc ? -1 : 0;
}

static void write_outputs(const options_t *o, const run_config_t *cfg, const dit_t *m, const inputs_t *in,
                          const tensor_t *pred, const float *grads, int zero_filled) {
    char err[1024];
    h5_file_t f;
    if (h5_create_temp(o->out, &f, err, sizeof err)) die("%s", err);
    int rc = h5_write_tensor(&f, "pred", pred, 1, err, sizeof err);
    for (int i = 0; rc == 0 && in->have_dpred && i < m->table.count; i++) {
        const param_info_t *p = &m->table.p[i];
        char name[PARAM_NAME_MAX + 8];
        snprintf(name, sizeof name, "grad/%s", p->name);
        tensor_t g = tensor_make(DTYPE_F32, DEVICE_CPU, p->ndim, p->shape);
        g.data = (void *)(grads + p->offset);
        rc = h5_write_tensor(&f, name, &g, 1, err, sizeof err);
    }
    if (rc == 0) rc = write_attrs(&f, o, cfg, m->device, in, zero_filled, err, sizeof err);
    if (rc) {
        h5_abort(&f);
        die("%s", err);
    }
    if (h5_commit(&f, err, sizeof err)) die("%s", err);
}

int main(int argc, char **argv) {
    options_t opt;
    parse_args(argc, argv, &opt);
    run_config_t cfg;
    load_config(&opt, &cfg);
    device_t dev = pick_device(&opt, &cfg);
    check_out_dir(opt.out);
    inputs_t in;
    read_inputs(&opt, &cfg.model, &in);
    int zero_filled = 0;
    float *weights = load_weights(&opt, &cfg.model, &zero_filled);

    dit_t m;
    char err[1024];
    const int64_t *s = in.latents.shape;
    if (dit_init(&m, &cfg.model, dev, (int)s[0], (int)s[2], (int)s[3], (int)s[4], cfg.recompute, err, sizeof err))
        die("%s: cannot build the model for these latents: %s", opt.in, err);
    float *grads = in.have_dpred ? xmalloc(sizeof(float) * m.table.total) : NULL;
    tensor_t pred = run_model(&m, weights, &in, grads);
    write_outputs(&opt, &cfg, &m, &in, &pred, grads, zero_filled);
    printf("sla-model: %s of %s on latents [%lld, %lld, %lld, %lld, %lld] (%s) -> %s\n",
           in.have_dpred ? "forward and backward" : "forward", cfg.model.preset, (long long)s[0], (long long)s[1],
           (long long)s[2], (long long)s[3], (long long)s[4], device_name(dev), opt.out);
    if (zero_filled)
        printf("sla-model: %d SLA projection tensors were not in %s and start at zero (a dense checkpoint)\n",
               zero_filled, opt.weights);
    tensor_free(&pred);
    free(grads), free(weights);
    dit_free(&m);
    free_inputs(&in);
    return 0;
}
