/* train/trainer.c — the training loop (trainer.h). */
#include "trainer.h"

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "checkpoint.h"
#include "dataset.h"
#include "dit.h"
#include "objective.h"
#include "safetensors.h"
#include "sampler.h"
#include "weights.h"

static volatile sig_atomic_t stop_requested = 0;
static void on_signal(int sig) { stop_requested = sig; }

void trainer_catch_signals(void) {
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
}

/* One micro-batch on the host, read and noised: the samples at `cursor` for (step, micro). */
typedef struct host_batch {
    int64_t step;                         /* optimizer step (1-based) it belongs to; 0 when empty */
    int micro;
    sampler_cursor_t cursor, next_cursor; /* where it was read, and the cursor after it */
    int64_t *indices;                     /* [batch] */
    float *x0, *xs, *target, *t, *text;   /* [batch, latent_numel] x3, [batch], [batch, text_numel] */
} host_batch_t;

/* What the data prefetch thread is asked to prepare, and its result (prefetch_start). */
typedef struct prefetch_job {
    struct trainer *tr;
    host_batch_t *h;
    int64_t step;
    int micro;
    sampler_cursor_t cursor;
    int rc;          /* prepare_batch's result, and its message */
    char err[1024];
} prefetch_job_t;

typedef struct trainer {
    const run_config_t *cfg;
    trainer_rank_t who;
    dataset_t data;
    sampler_t sampler;
    dit_t model;
    dit_t teacher;                        /* frozen dense model, forward-only, when distilling (else no table) */
    tensor_t adam_m, adam_v, ema;         /* f32 [total] on the device (ema empty when off) */
    int64_t step, bad_steps;
    int64_t adam_steps;                   /* AdamW updates applied: step minus the skipped steps */
    sampler_cursor_t cursor;
    uint64_t seed;
    host_batch_t staged[2];               /* host micro-batches: the current one and the prefetched next */
    pthread_t prefetcher;                 /* the thread preparing the next micro-batch ... */
    int prefetching;                      /* ... while this is 1 (prefetch_wait ends it) */
    prefetch_job_t prefetch;              /* its job and result */
    tensor_t d_lat, d_t, d_text, d_target, d_pred, d_dpred;
    tensor_t d_tpred, d_dpred2;           /* teacher prediction and the distillation gradient */
    FILE *metrics;
    char config_text[8192];
    double sparsity;                      /* fraction of key blocks skipped by SLA's sparse branch */
    double time_data, time_opt;           /* this step: host data work not hidden behind the GPU, optimizer */
} trainer_t;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Prints "fmt % detail" and returns status 2 (bad input: config, data, weights, checkpoint); run-time
 * failures return 1. */
static int fail(const char *fmt, const char *detail) {
    fprintf(stderr, fmt, detail);
    fputc('\n', stderr);
    return 2;
}

/* A resumed run logs the steps after its checkpoint again (with the same losses: resume is exact),
 * so before appending, metrics.jsonl keeps only the lines of steps <= last_step, and no line cut
 * short by a crash. The kept lines go to path.tmp, which is fsynced and renamed over path.
 * Returns 0, or -1 with err set (path left as it was). */
static int metrics_trim(const char *path, int64_t last_step, long *dropped, char *err, size_t errlen) {
    *dropped = 0;
    FILE *in = fopen(path, "r");
    if (!in) return 0; /* nothing logged yet */
    char tmp[1200], line[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *out = fopen(tmp, "w");
    if (!out) {
        fclose(in);
        snprintf(err, errlen, "cannot write %s", tmp);
        return -1;
    }
    while (fgets(line, sizeof line, in)) {
        long long step;
        size_t n = strlen(line);
        if (n > 0 && line[n - 1] == '\n' && sscanf(line, "{\"step\": %lld,", &step) == 1 && step <= last_step)
            fputs(line, out);
        else
            (*dropped)++;
    }
    fclose(in);
    int ok = fflush(out) == 0 && fsync(fileno(out)) == 0;
    ok = fclose(out) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        snprintf(err, errlen, "cannot rewrite %s", path);
        return -1;
    }
    return 0;
}

/* Device tensors of one micro-batch, in f32. */
static void alloc_batch(trainer_t *tr) {
    const dataset_t *ds = &tr->data;
    device_t dev = tr->model.device;
    int64_t B = tr->cfg->batch;
    int64_t lat[5] = {B, ds->channels, ds->frames, ds->height, ds->width};
    for (int k = 0; k < 2; k++) {
        host_batch_t *h = &tr->staged[k];
        h->step = 0;
        h->indices = xcalloc((unsigned long)B, sizeof(int64_t));
        h->x0 = xmalloc(sizeof(float) * (unsigned long)(B * ds->latent_numel));
        h->xs = xmalloc(sizeof(float) * (unsigned long)(B * ds->latent_numel));
        h->target = xmalloc(sizeof(float) * (unsigned long)(B * ds->latent_numel));
        h->text = xmalloc(sizeof(float) * (unsigned long)(B * ds->text_numel));
        h->t = xmalloc(sizeof(float) * (unsigned long)B);
    }
    tr->d_lat = tensor_alloc(DTYPE_F32, dev, 5, lat);
    tr->d_target = tensor_alloc(DTYPE_F32, dev, 5, lat);
    tr->d_pred = tensor_alloc(DTYPE_F32, dev, 5, lat);
    tr->d_dpred = tensor_alloc(DTYPE_F32, dev, 5, lat);
    tr->d_t = tensor_alloc(DTYPE_F32, dev, 1, &B);
    tr->d_text = tensor_alloc(DTYPE_F32, dev, 3, (int64_t[]){B, ds->text_len, ds->text_dim});
}

static void upload(tensor_t *dst, const float *host) {
    tensor_t h = tensor_make(DTYPE_F32, DEVICE_CPU, dst->ndim, dst->shape);
    h.data = (void *)host;
    tensor_copy(dst, &h);
}

static void download(float *host, const tensor_t *src) {
    tensor_t h = tensor_make(DTYPE_F32, DEVICE_CPU, src->ndim, src->shape);
    h.data = host;
    tensor_copy(&h, src);
}

/* The model's view of the data must match it; say which number differs. */
static int check_data_fits_model(const trainer_t *tr) {
    const dataset_t *ds = &tr->data;
    const model_config_t *mc = &tr->cfg->model;
    char msg[512];
    if (ds->channels != mc->in_channels)
        snprintf(msg, sizeof msg, "the dataset has %d latent channels, the model expects %d", ds->channels, mc->in_channels);
    else if (ds->text_dim != mc->text_dim)
        snprintf(msg, sizeof msg, "the dataset's text embeddings have width %d, the model's text_dim is %d", ds->text_dim,
                 mc->text_dim);
    else if (ds->text_len > mc->text_len)
        snprintf(msg, sizeof msg, "the dataset has %d text tokens, more than the model's text_len %d", ds->text_len,
                 mc->text_len);
    else if (ds->frames % mc->patch_f || ds->height % mc->patch_h || ds->width % mc->patch_w)
        snprintf(msg, sizeof msg, "latent frames x height x width %d x %d x %d are not divisible by the patch %dx%dx%d",
                 ds->frames, ds->height, ds->width, mc->patch_f, mc->patch_h, mc->patch_w);
    else
        return 0;
    return fail("sla-train: data: %s", msg);
}

static device_t pick_device(const char *backend) {
    if (!strcmp(backend, "cpu")) return DEVICE_CPU;
    if (!strcmp(backend, "cuda")) return DEVICE_CUDA;
    return ops_cuda_available() ? DEVICE_CUDA : DEVICE_CPU;
}

static ckpt_state_t host_state(const trainer_t *tr) {
    ckpt_state_t s;
    memset(&s, 0, sizeof s);
    size_t n = tr->model.table.total;
    s.params = xmalloc(sizeof(float) * n), s.adam_m = xmalloc(sizeof(float) * n), s.adam_v = xmalloc(sizeof(float) * n);
    s.ema = tr->ema.data ? xmalloc(sizeof(float) * n) : NULL;
    return s;
}

static void free_host_state(ckpt_state_t *s) { free(s->params), free(s->adam_m), free(s->adam_v), free(s->ema); }

static void prefetch_wait(trainer_t *tr);

static int write_checkpoint(trainer_t *tr) {
    prefetch_wait(tr); /* no HDF5 call while the prefetch thread reads the dataset */
    ckpt_state_t s = host_state(tr);
    download(s.params, &tr->model.params), download(s.adam_m, &tr->adam_m), download(s.adam_v, &tr->adam_v);
    if (s.ema) download(s.ema, &tr->ema);
    s.step = tr->step, s.adam_steps = tr->adam_steps;
    s.data_epoch = tr->cursor.epoch, s.data_position = tr->cursor.position;
    s.seed = tr->seed, s.bad_steps = tr->bad_steps;
    char path[1200], err[2048];
    int rc = ckpt_write(tr->cfg->out_dir, &s, &tr->model.table, tr->config_text, tr->cfg->keep_last, path, sizeof path,
                        err, sizeof err);
    free_host_state(&s);
    if (rc) {
        fprintf(stderr, "sla-train: checkpoint not written: %s\n", err);
        return 1;
    }
    printf("checkpoint %s\n", path);
    return 0;
}

/* Parameters and optimizer state from a checkpoint, init_weights or a seeded init. */
static int load_start_state(trainer_t *tr) {
    const run_config_t *cfg = tr->cfg;
    ckpt_state_t s = host_state(tr);
    char err[2400], path[1200];
    int loaded = 0;
    if (!strcmp(cfg->resume, "auto")) {
        loaded = ckpt_resume_latest(cfg->out_dir, &s, &tr->model.table, path, sizeof path, err, sizeof err);
        if (loaded < 0) {
            free_host_state(&s);
            return fail("sla-train: resume = auto: %s", err);
        }
    } else if (cfg->resume[0]) {
        if (ckpt_read(cfg->resume, &s, &tr->model.table, NULL, 0, err, sizeof err)) {
            free_host_state(&s);
            return fail("sla-train: resume: %s", err);
        }
        snprintf(path, sizeof path, "%s", cfg->resume);
        loaded = 1;
    }
    if (loaded) {
        sampler_cursor_t c = {s.data_epoch, s.data_position};
        if (sampler_cursor_check(&tr->sampler, c, err, sizeof err)) {
            free_host_state(&s);
            return fail("sla-train: the checkpoint's data cursor does not fit this dataset: %s", err);
        }
        if (s.seed != cfg->seed) { /* the data order and noise continue the checkpoint's streams */
            fprintf(stderr, "warning: the checkpoint's seed %llu replaces the config's seed %llu\n",
                    (unsigned long long)s.seed, (unsigned long long)cfg->seed);
            sampler_free(&tr->sampler);
            if (sampler_init(&tr->sampler, s.seed, tr->data.n, err, sizeof err)) {
                free_host_state(&s);
                return fail("sla-train: %s", err);
            }
        }
        tr->step = s.step, tr->adam_steps = s.adam_steps, tr->cursor = c;
        tr->seed = s.seed, tr->bad_steps = s.bad_steps;
        printf("resumed from %s at step %lld\n", path, (long long)s.step);
    } else {
        memset(s.adam_m, 0, sizeof(float) * tr->model.table.total);
        memset(s.adam_v, 0, sizeof(float) * tr->model.table.total);
        if (cfg->init_weights[0]) {
            int zeroed = 0;
            memset(s.params, 0, sizeof(float) * tr->model.table.total);
            if (weights_load_any(cfg->init_weights, &tr->model.table, s.params, &zeroed, err, sizeof err)) {
                free_host_state(&s);
                return fail("sla-train: init_weights: %s", err);
            }
            printf("initial weights from %s%s\n", cfg->init_weights,
                   zeroed ? " (dense checkpoint: SLA projections start at zero)" : "");
        } else {
            param_table_init(&tr->model.table, tr->seed, s.params);
        }
        if (s.ema) memcpy(s.ema, s.params, sizeof(float) * tr->model.table.total);
    }
    upload(&tr->model.params, s.params), upload(&tr->adam_m, s.adam_m), upload(&tr->adam_v, s.adam_v);
    if (s.ema) upload(&tr->ema, s.ema);
    dit_params_changed(&tr->model);
    free_host_state(&s);
    return 0;
}

/* Reads and noises the micro-batch (step, micro) at `cursor` into h. 0, or -1 with err (a sample
 * that cannot be read). */
static int prepare_batch(trainer_t *tr, host_batch_t *h, int64_t step, int micro, sampler_cursor_t cursor, char *err,
                         size_t errlen) {
    const dataset_t *ds = &tr->data;
    int B = tr->cfg->batch, W = tr->who.world;
    sampler_indices(&tr->sampler, cursor, tr->who.rank, W, B, h->indices);
    for (int i = 0; i < B; i++)
        if (dataset_read(&tr->data, h->indices[i], h->x0 + (size_t)i * ds->latent_numel,
                         h->text + (size_t)i * ds->text_numel, err, errlen))
            return -1;
    int64_t first_slot = ((int64_t)micro * W + tr->who.rank) * B;
    flow_noise_batch(tr->seed, step, first_slot, B, (long)ds->latent_numel, tr->cfg->shift, h->x0, h->xs, h->target,
                     h->t);
    h->step = step, h->micro = micro, h->cursor = cursor;
    h->next_cursor = sampler_advance(&tr->sampler, cursor, W, B);
    return 0;
}

/* prepare_batch, or the message and exit status 1 (a dataset that fails mid-run). */
static void prepare_batch_or_exit(trainer_t *tr, host_batch_t *h, int64_t step, int micro, sampler_cursor_t cursor) {
    char err[1024];
    if (prepare_batch(tr, h, step, micro, cursor, err, sizeof err)) {
        fprintf(stderr, "sla-train: %s\n", err);
        exit(1);
    }
}

/* The prefetch: prepare_batch on a thread of its own, started as soon as the current micro-batch is
 * on the device, so that reading and noising the next one overlaps the whole forward and backward.
 * (Run on the main thread after the backward was enqueued, it did not overlap: 480p steps took
 * 1.14 s, the last one, which prefetches nothing, 0.83 s; H100, 2026-11-24 23:23Z. Likely the host
 * sits in the backward's kernel launches until the launch queue drains.) The numbers are those of
 * prepare_batch on the main thread; the main thread makes no HDF5 call while it runs (HDF5 is not
 * thread-safe): prefetch_wait comes first in batch_for, write_checkpoint and teardown. A sample
 * that cannot be read ends the run when batch_for needs it (a checkpoint due before that is still
 * written). */
static void *prefetch_main(void *arg) {
    prefetch_job_t *j = arg;
    j->rc = prepare_batch(j->tr, j->h, j->step, j->micro, j->cursor, j->err, sizeof j->err);
    return NULL;
}

/* Waits for the prefetch thread, if one runs; its result stays in tr->prefetch. */
static void prefetch_wait(trainer_t *tr) {
    if (!tr->prefetching) return;
    CHECK(pthread_join(tr->prefetcher, NULL) == 0, "sla-train: joining the data prefetch thread failed");
    tr->prefetching = 0;
}

/* Starts preparing (step, micro) at cursor into h. The thread blocks SIGTERM and SIGINT (they are
 * for the main thread, which finishes the step), so that no read of the dataset is interrupted. */
static void prefetch_start(trainer_t *tr, host_batch_t *h, int64_t step, int micro, sampler_cursor_t cursor) {
    prefetch_wait(tr);
    tr->prefetch = (prefetch_job_t){tr, h, step, micro, cursor, 0, ""};
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM), sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int rc = pthread_create(&tr->prefetcher, NULL, prefetch_main, &tr->prefetch);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0) tr->prefetching = 1;
    else prepare_batch_or_exit(tr, h, step, micro, cursor); /* no thread to be had: prepare it here */
}

/* The staged batch for (step, micro) at the current cursor, prepared now if it was not prefetched. */
static host_batch_t *batch_for(trainer_t *tr, int64_t step, int micro) {
    prefetch_wait(tr);
    if (tr->prefetch.rc) {
        fprintf(stderr, "sla-train: %s\n", tr->prefetch.err);
        exit(1);
    }
    for (int k = 0; k < 2; k++) {
        host_batch_t *h = &tr->staged[k];
        if (h->step == step && h->micro == micro && h->cursor.epoch == tr->cursor.epoch &&
            h->cursor.position == tr->cursor.position)
            return h;
    }
    prepare_batch_or_exit(tr, &tr->staged[0], step, micro, tr->cursor);
    return &tr->staged[0];
}

/* One micro-batch: upload, forward, loss, backward; meanwhile a thread reads and noises the next
 * micro-batch (the same numbers as without prefetching: they depend only on seed, step, slot and
 * cursor). Returns the loss or NaN. */
static double micro_step(trainer_t *tr, int micro) {
    const run_config_t *cfg = tr->cfg;
    int64_t step = tr->step + 1;
    double t0 = now_s();
    host_batch_t *h = batch_for(tr, step, micro);
    upload(&tr->d_lat, h->xs), upload(&tr->d_target, h->target), upload(&tr->d_t, h->t);
    upload(&tr->d_text, h->text);
    tr->cursor = h->next_cursor;
    int last = micro + 1 == cfg->grad_accum;
    if (!last || step < cfg->steps) /* into the slot not in use */
        prefetch_start(tr, h == &tr->staged[0] ? &tr->staged[1] : &tr->staged[0], last ? step + 1 : step,
                       last ? 0 : micro + 1, tr->cursor);
    tr->time_data += now_s() - t0;
    dit_forward(&tr->model, &tr->d_lat, &tr->d_t, &tr->d_text, &tr->d_pred);
    double loss = mse_loss(&tr->d_pred, &tr->d_target, 1.0 / cfg->grad_accum, &tr->d_dpred);
    if (tr->teacher.acts) { /* distillation: + w * mean((pred - teacher pred)^2) */
        dit_forward(&tr->teacher, &tr->d_lat, &tr->d_t, &tr->d_text, &tr->d_tpred);
        loss += cfg->distill_weight *
                mse_loss(&tr->d_pred, &tr->d_tpred, cfg->distill_weight / cfg->grad_accum, &tr->d_dpred2);
        tensor_axpy(1.0f, &tr->d_dpred2, &tr->d_dpred);
    }
    if (isfinite(loss)) dit_backward(&tr->model, &tr->d_dpred);
    return loss;
}

/* AdamW on every parameter tensor, with the table's weight-decay mask; then the EMA. */
static void optimizer_step(trainer_t *tr, double lr, double grad_scale) {
    const run_config_t *cfg = tr->cfg;
    dit_t *m = &tr->model;
    for (int i = 0; i < m->table.count; i++) {
        const param_info_t *p = &m->table.p[i];
        adamw_params_t ap = {lr, cfg->beta1, cfg->beta2, cfg->adam_eps, p->weight_decay ? cfg->weight_decay : 0.0,
                             grad_scale, tr->adam_steps};
        tensor_t w = dit_param(m, i), g = dit_grad(m, i), wb = dit_param_work(m, i);
        tensor_t mm = tensor_make(DTYPE_F32, m->device, p->ndim, p->shape), vv = mm;
        mm.data = (float *)tr->adam_m.data + p->offset, vv.data = (float *)tr->adam_v.data + p->offset;
        adamw_step(&ap, &w, &g, &mm, &vv, m->device == DEVICE_CUDA ? &wb : NULL);
    }
    if (tr->ema.data) {
        tensor_scale((float)cfg->ema_decay, &tr->ema);
        tensor_axpy((float)(1.0 - cfg->ema_decay), &m->params, &tr->ema);
    }
}

/* x as a JSON number (%.9g), or null when it is not finite (JSON has no NaN or infinity). */
static const char *json_num(char *buf, size_t len, double x) {
    if (isfinite(x)) snprintf(buf, len, "%.9g", x);
    else snprintf(buf, len, "null");
    return buf;
}

static void log_step(trainer_t *tr, double loss, double gnorm, double lr, double dt, int skipped, double t_start,
                     int64_t first_step) {
    const run_config_t *cfg = tr->cfg;
    double tokens = (double)cfg->batch * cfg->grad_accum * tr->model.L * tr->who.world;
    double elapsed = now_s() - t_start, per_step = elapsed / (double)(tr->step - first_step);
    double eta = per_step * (double)(cfg->steps - tr->step);
    if (tr->step % cfg->log_every == 0 || tr->step == cfg->steps || skipped)
        printf("step %lld/%d  loss %.5f  grad %.3f  lr %.2e  %.3f s/step (data %.3f, norm+opt %.3f)  %.0f tok/s  "
               "ETA %.0fs%s\n",
               (long long)tr->step, cfg->steps, loss, gnorm, lr, dt, tr->time_data, tr->time_opt, tokens / dt, eta,
               skipped ? "  (skipped)" : "");
    if (tr->metrics) {
        char lb[32], gb[32];
        fprintf(tr->metrics,
                "{\"step\": %lld, \"loss\": %s, \"grad_norm\": %s, \"lr\": %.9g, \"time\": %.6f, "
                "\"time_data\": %.6f, \"time_opt\": %.6f, \"tokens_per_s\": %.3f, \"sparsity\": %.6f, "
                "\"adam_steps\": %lld, \"skipped\": %s}\n",
                (long long)tr->step, json_num(lb, sizeof lb, loss), json_num(gb, sizeof gb, gnorm), lr, dt,
                tr->time_data, tr->time_opt, tokens / dt, tr->sparsity, (long long)tr->adam_steps,
                skipped ? "true" : "false");
        fflush(tr->metrics);
    }
    fflush(stdout);
}

/* The frozen dense-attention teacher: the student's shape with dense attention, built forward-only
 * (no gradients, no backward memory, no per-layer attention stores), weights from cfg->teacher. */
static int setup_teacher(trainer_t *tr, device_t dev) {
    const run_config_t *cfg = tr->cfg;
    char err[2048];
    model_config_t tc = cfg->model;
    tc.attention = ATTENTION_DENSE;
    if (dit_init(&tr->teacher, &tc, dev, cfg->batch, tr->data.frames, tr->data.height, tr->data.width,
                 DIT_FORWARD_ONLY, err, sizeof err))
        return fail("sla-train: teacher: %s", err);
    float *host = xcalloc(tr->teacher.table.total, sizeof(float));
    int rc = weights_load_any(cfg->teacher, &tr->teacher.table, host, NULL, err, sizeof err);
    if (!rc) {
        upload(&tr->teacher.params, host);
        dit_params_changed(&tr->teacher);
    }
    free(host);
    if (rc) return fail("sla-train: teacher (a dense-attention checkpoint or weights file): %s", err);
    tr->d_tpred = tensor_alloc(DTYPE_F32, dev, 5, tr->d_pred.shape);
    tr->d_dpred2 = tensor_alloc(DTYPE_F32, dev, 5, tr->d_pred.shape);
    printf("distilling from the dense teacher %s (weight %g)\n", cfg->teacher, cfg->distill_weight);
    return 0;
}

static int setup(trainer_t *tr, const run_config_t *cfg, trainer_rank_t who) {
    char err[2048];
    memset(tr, 0, sizeof *tr);
    tr->cfg = cfg, tr->who = who, tr->seed = cfg->seed;
    config_format(cfg, tr->config_text, sizeof tr->config_text);
    if (!cfg->data[0]) return fail("sla-train: %s", "data is empty: give the dataset files (data = a.h5,b.h5)");
    if (dataset_open(cfg->data, &tr->data, err, sizeof err)) return fail("sla-train: data: %s", err);
    if (check_data_fits_model(tr)) return 2;
    if (sampler_init(&tr->sampler, cfg->seed, tr->data.n, err, sizeof err)) return fail("sla-train: %s", err);
    device_t dev = pick_device(cfg->backend);
    if (dit_init(&tr->model, &cfg->model, dev, cfg->batch, tr->data.frames, tr->data.height, tr->data.width,
                 cfg->recompute ? DIT_TRAIN_RECOMPUTE : DIT_TRAIN, err, sizeof err))
        return fail("sla-train: model: %s", err);
    int64_t total = (int64_t)tr->model.table.total;
    tr->adam_m = tensor_alloc(DTYPE_F32, dev, 1, &total);
    tr->adam_v = tensor_alloc(DTYPE_F32, dev, 1, &total);
    if (cfg->ema_decay > 0) tr->ema = tensor_alloc(DTYPE_F32, dev, 1, &total);
    alloc_batch(tr);
    if (cfg->distill_weight > 0 && setup_teacher(tr, dev)) return 2;
    sla_dims_t d;
    if (cfg->model.attention == ATTENTION_SLA &&
        !sla_dims_make(&cfg->model.sla, 1, 1, tr->model.L, cfg->model.dim / cfg->model.heads, &d, NULL, err, sizeof err))
        tr->sparsity = 1.0 - (double)d.kappa / d.Tn;
    printf("model %s on %s: %lld parameters, %d tokens per sample, attention %s (sparsity %.3f)\n", cfg->model.preset,
           device_name(dev), (long long)param_table_numel(&tr->model.table), tr->model.L,
           cfg->model.attention == ATTENTION_SLA ? "sla" : "dense", tr->sparsity);
    printf("data %s: %lld samples of [%d, %d, %d, %d], text [%d, %d]\n", cfg->data, (long long)tr->data.n,
           tr->data.channels, tr->data.frames, tr->data.height, tr->data.width, tr->data.text_len, tr->data.text_dim);
    if (load_start_state(tr)) return 2;
    if (tr->who.rank == 0) {
        char mpath[1100];
        if (ckpt_prepare_dir(cfg->out_dir, err, sizeof err)) return fail("sla-train: out_dir: %s", err);
        snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", cfg->out_dir);
        long dropped = 0;
        if (tr->step > 0 && metrics_trim(mpath, tr->step, &dropped, err, sizeof err))
            return fail("sla-train: metrics: %s", err);
        if (dropped > 0)
            printf("metrics.jsonl: %ld line(s) past step %lld dropped (those steps run again)\n", dropped,
                   (long long)tr->step);
        tr->metrics = fopen(mpath, "a");
        if (!tr->metrics) return fail("sla-train: cannot append to %s", mpath);
    }
    return 0;
}

static void teardown(trainer_t *tr) {
    prefetch_wait(tr); /* a batch it could not read was not needed */
    if (tr->metrics) fclose(tr->metrics);
    for (int k = 0; k < 2; k++) {
        host_batch_t *h = &tr->staged[k];
        free(h->indices), free(h->x0), free(h->xs), free(h->target), free(h->text), free(h->t);
    }
    tensor_free(&tr->d_lat), tensor_free(&tr->d_t), tensor_free(&tr->d_text), tensor_free(&tr->d_target);
    tensor_free(&tr->d_pred), tensor_free(&tr->d_dpred), tensor_free(&tr->d_tpred), tensor_free(&tr->d_dpred2);
    dit_free(&tr->teacher);
    tensor_free(&tr->adam_m), tensor_free(&tr->adam_v), tensor_free(&tr->ema);
    dit_free(&tr->model);
    sampler_free(&tr->sampler);
    dataset_close(&tr->data);
}

int trainer_run(const run_config_t *cfg, trainer_rank_t who) {
    trainer_t tr;
    int rc = setup(&tr, cfg, who);
    if (rc) {
        teardown(&tr);
        return rc;
    }
    int64_t first_step = tr.step;
    double t_start = now_s();
    while (tr.step < cfg->steps) {
        double t0 = now_s(), loss = 0.0;
        tr.time_data = 0;
        dit_zero_grads(&tr.model);
        for (int micro = 0; micro < cfg->grad_accum; micro++) loss += micro_step(&tr, micro) / cfg->grad_accum;
        tr.step++;
        double gnorm = NAN, lr = lr_at(tr.step, cfg->steps, cfg->warmup, cfg->lr, cfg->min_lr,
                                       !strcmp(cfg->lr_schedule, "cosine"));
        int skipped = !isfinite(loss);
        double t_opt = now_s();
        if (!skipped) {
            gnorm = sqrt(sum_squares(&tr.model.grads));
            skipped = !isfinite(gnorm);
        }
        if (skipped) {
            tr.bad_steps++;
            fprintf(stderr, "warning: step %lld: non-finite loss or gradient (loss %g, grad norm %g); step skipped (%lld in a row)\n",
                    (long long)tr.step, loss, gnorm, (long long)tr.bad_steps);
            if (tr.bad_steps >= cfg->max_bad_steps) {
                fprintf(stderr, "sla-train: %lld non-finite steps in a row (max_bad_steps = %d); stopping without "
                                "updating the weights further\n", (long long)tr.bad_steps, cfg->max_bad_steps);
                teardown(&tr);
                return 1;
            }
        } else {
            tr.bad_steps = 0;
            tr.adam_steps++;
            double clip = cfg->clip_grad > 0 && gnorm > cfg->clip_grad ? cfg->clip_grad / (gnorm + 1e-6) : 1.0;
            optimizer_step(&tr, lr, clip);
        }
        tr.time_opt = now_s() - t_opt; /* the norm waits for the backward: it counts here */
        log_step(&tr, loss, gnorm, lr, now_s() - t0, skipped, t_start, first_step);
        int stop_here = cfg->stop_after > 0 && tr.step >= cfg->stop_after;
        int due = cfg->ckpt_every > 0 && tr.step % cfg->ckpt_every == 0;
        if ((due || tr.step == cfg->steps || stop_requested || stop_here) && tr.who.rank == 0 && write_checkpoint(&tr)) {
            teardown(&tr);
            return 1;
        }
        if (stop_requested || stop_here) {
            if (stop_requested) printf("signal %d: ", (int)stop_requested);
            printf("stopped after step %lld with a checkpoint (resume = auto continues)\n", (long long)tr.step);
            break;
        }
    }
    teardown(&tr);
    return 0;
}
