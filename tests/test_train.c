/* tests/test_train.c — sla-train end to end on the CPU (label cpu), running the built binaries:
 * 1. exact resume: 12 steps straight equal 6 steps, stop (stop_after), resume, 6 steps — identical losses in
 *    metrics.jsonl and bit-identical parameters, moments and EMA (with grad_accum 2, EMA on);
 * 2. SIGKILL at random moments, including during checkpoint writes (one per step): a resume with
 *    resume = auto always finds a complete checkpoint and continues;
 * 3. SIGTERM finishes the step, writes a checkpoint and exits 0;
 * 4. the loss decreases on the synthetic data;
 * 5. configuration errors exit 2 naming the key, value or file, before any work;
 * 6. distillation: a student equal to its dense teacher (SLA at rho = 1, proj zero) adds exactly
 *    nothing to the loss; a sparse student adds a positive term;
 * 7. a non-finite step (latents near the float32 limit overflow) is skipped with a warning, and
 *    max_bad_steps in a row stop the run (exit 1) before its end; allowed to go on, the checkpoint
 *    and metrics.jsonl count the AdamW updates (adam_steps = steps - skipped) and every metrics
 *    line stays JSON (null for the non-finite loss and norm);
 * 8. a resume from a checkpoint older than the last logged step (as after a crash) leaves each
 *    step once in metrics.jsonl, the re-run steps with the same losses, and no torn last line;
 * 9. a sample that fails its checksum, read by the data prefetch thread, stops the run (exit 1)
 *    with the reader's sentence after the checkpoint of the step before.
 * argv: sla-train, sla-data [cuda]. With "cuda" (label gpu; exit 77 without a GPU) the model runs
 * on the GPU with head dim 64 and checks 1 and 4: resume is bit-exact there too. */
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

#include "checkpoint.h"
#include "h5_rows.h"
#include "h5_tensor.h"
#include "sampler.h"
#include "ops.h"
#include "test_util.h"

static const char *train_bin, *data_bin;
static char dir[] = "/tmp/test_train_XXXXXX";
static char data[600];

/* Runs sla-train with the common settings plus extra "--set k=v" words; returns the exit status.
 * stderr of the child goes to dir/stderr.txt. */
static int run_train(const char *out, const char *extra) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "%s --config %s/base.cfg --set out_dir=%s/%s --set data=%s %s > %s/stdout.txt 2> %s/stderr.txt", train_bin,
             dir, dir, out, data, extra ? extra : "", dir, dir);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int stderr_has(const char *phrase) {
    char path[700], buf[8192];
    snprintf(path, sizeof path, "%s/stderr.txt", dir);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    return strstr(buf, phrase) != NULL;
}

/* Losses by step from out's metrics.jsonl (the last line for a step wins); times[step - 1] (if given,
 * zeroed first) counts the lines of each step, *lines (if given) every line. Returns the highest
 * step seen. */
static int read_metrics(const char *out, double *loss, int max, int *times, int *lines) {
    char path[700], line[1024];
    snprintf(path, sizeof path, "%s/%s/metrics.jsonl", dir, out);
    FILE *f = fopen(path, "r");
    int n = 0;
    if (times) memset(times, 0, sizeof(int) * (size_t)max);
    if (lines) *lines = 0;
    while (f && fgets(line, sizeof line, f)) {
        long step;
        double l;
        if (lines) (*lines)++;
        if (sscanf(line, "{\"step\": %ld, \"loss\": %lf", &step, &l) == 2 && step >= 1 && step <= max) {
            loss[step - 1] = l;
            if (times) times[step - 1]++;
            if (step > n) n = (int)step;
        }
    }
    if (f) fclose(f);
    return n;
}

static int read_losses(const char *out, double *loss, int max) { return read_metrics(out, loss, max, NULL, NULL); }

static int load(const char *path, const param_table_t *t, ckpt_state_t *s) {
    char err[2048];
    size_t n = t->total;
    s->params = calloc(n, 4), s->adam_m = calloc(n, 4), s->adam_v = calloc(n, 4), s->ema = calloc(n, 4);
    int rc = ckpt_read(path, s, t, NULL, 0, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    return rc;
}

static void check_exact_resume(const param_table_t *t) {
    const char *common = "--set grad_accum=2 --set ema_decay=0.9 --set ckpt_every=0";
    char extra[512];
    snprintf(extra, sizeof extra, "%s --set steps=12", common);
    EXPECT(run_train("straight", extra) == 0, "straight run failed");
    snprintf(extra, sizeof extra, "%s --set steps=12 --set stop_after=6", common);
    EXPECT(run_train("split", extra) == 0, "first half failed");
    snprintf(extra, sizeof extra, "%s --set steps=12", common);
    EXPECT(run_train("split", extra) == 0, "resumed half failed");
    /* A resume under another seed keeps the checkpoint's streams (data order and noise). */
    snprintf(extra, sizeof extra, "%s --set steps=12 --set stop_after=6", common);
    EXPECT(run_train("reseeded", extra) == 0, "first half (reseeded) failed");
    snprintf(extra, sizeof extra, "%s --set steps=12 --set seed=77", common);
    EXPECT(run_train("reseeded", extra) == 0 && stderr_has("replaces the config's seed 77"), "reseeded resume failed");
    double a[12] = {0}, b[12] = {0}, c[12] = {0};
    int na = read_losses("straight", a, 12), nb = read_losses("split", b, 12), nc = read_losses("reseeded", c, 12);
    EXPECT(na == 12 && nb == 12 && !memcmp(a, b, sizeof a), "losses differ after resume (%d and %d steps logged)", na, nb);
    EXPECT(nc == 12 && !memcmp(a, c, sizeof a), "a resume with another seed in the config changed the losses");
    char pa[700], pb[700];
    snprintf(pa, sizeof pa, "%s/straight/ckpt-00000012.h5", dir);
    snprintf(pb, sizeof pb, "%s/split/ckpt-00000012.h5", dir);
    ckpt_state_t sa, sb;
    memset(&sa, 0, sizeof sa), memset(&sb, 0, sizeof sb);
    int ok = !load(pa, t, &sa) && !load(pb, t, &sb);
    size_t bytes = t->total * sizeof(float);
    EXPECT(ok && !memcmp(sa.params, sb.params, bytes) && !memcmp(sa.adam_m, sb.adam_m, bytes) &&
               !memcmp(sa.adam_v, sb.adam_v, bytes) && !memcmp(sa.ema, sb.ema, bytes) &&
               sa.data_epoch == sb.data_epoch && sa.data_position == sb.data_position,
           "resumed run is not bit-identical to the straight run");
    printf("exact resume: 12 losses equal (last %.6f), parameters/moments/EMA bit-identical\n", a[11]);
    free(sa.params), free(sa.adam_m), free(sa.adam_v), free(sa.ema);
    free(sb.params), free(sb.adam_m), free(sb.adam_v), free(sb.ema);
}

/* Waits (up to 60 s) until out_dir holds a checkpoint, i.e. the run is past its start-up. Any
 * ckpt-*.h5 counts: older ones are pruned as the run goes (keep_last). */
static int wait_for_checkpoint(const char *out) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, out);
    for (int i = 0; i < 600; i++) {
        DIR *d = opendir(path);
        struct dirent *e;
        int found = 0;
        while (d && (e = readdir(d)))
            found |= !strncmp(e->d_name, "ckpt-", 5) && strstr(e->d_name, ".h5") && !strstr(e->d_name, ".tmp");
        if (d) closedir(d);
        if (found) return 1;
        sleep_s(0.1);
    }
    return 0;
}

/* Starts sla-train in the background; returns its pid. */
static pid_t spawn_train(const char *out, int steps) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        char cfg[700], o[700], d[700], st[64], log[700];
        snprintf(cfg, sizeof cfg, "%s/base.cfg", dir);
        snprintf(o, sizeof o, "out_dir=%s/%s", dir, out);
        snprintf(d, sizeof d, "data=%s", data);
        snprintf(st, sizeof st, "steps=%d", steps);
        snprintf(log, sizeof log, "%s/bg.txt", dir);
        if (!freopen(log, "w", stdout) || !freopen(log, "a", stderr)) _exit(99);
        execl(train_bin, train_bin, "--config", cfg, "--set", o, "--set", d, "--set", st, "--set", "ckpt_every=1",
              "--set", "keep_last=2", (char *)NULL);
        _exit(98);
    }
    return pid;
}

static void check_kill_resume(const param_table_t *t) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    test_rng_t r = {(uint64_t)ts.tv_nsec};
    int bad = 0;
    for (int round = 0; round < 6; round++) {
        pid_t pid = spawn_train("killed", 100000);
        if (round == 0) EXPECT(wait_for_checkpoint("killed"), "no first checkpoint within 60 s");
        sleep_s(0.05 + 0.3 * rng_uniform(&r));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        char out[700], used[1200], err[2048];
        snprintf(out, sizeof out, "%s/killed", dir);
        ckpt_state_t s;
        memset(&s, 0, sizeof s);
        s.params = calloc(t->total, 4), s.adam_m = calloc(t->total, 4), s.adam_v = calloc(t->total, 4);
        int rc = ckpt_resume_latest(out, &s, t, used, sizeof used, err, sizeof err);
        bad += rc != 1;
        if (rc != 1) fprintf(stderr, "round %d: no usable checkpoint: %s\n", round, rc < 0 ? err : "none");
        else if (round == 5) printf("SIGKILL x6: latest complete checkpoint each time (last at step %lld)\n", (long long)s.step);
        free(s.params), free(s.adam_m), free(s.adam_v);
    }
    EXPECT(bad == 0, "%d of 6 SIGKILLs left no usable checkpoint", bad);
}

static void check_sigterm(void) {
    pid_t pid = spawn_train("term", 100000);
    EXPECT(wait_for_checkpoint("term"), "no first checkpoint within 60 s");
    sleep_s(0.1);
    kill(pid, SIGTERM);
    int st;
    waitpid(pid, &st, 0);
    char path[700];
    snprintf(path, sizeof path, "%s/bg.txt", dir);
    FILE *f = fopen(path, "r");
    char buf[1 << 16];
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(buf, "stopped after step") && strstr(buf, "checkpoint "),
           "SIGTERM: status %d, output tail: %s", st, n > 200 ? buf + n - 200 : buf);
}

static void check_loss_decreases(void) {
    EXPECT(run_train("learn", "--set steps=60 --set ckpt_every=0") == 0, "60-step run failed");
    double l[60] = {0};
    read_losses("learn", l, 60);
    double first = 0, last = 0;
    for (int i = 0; i < 10; i++) first += l[i] / 10, last += l[50 + i] / 10;
    EXPECT(last < 0.9 * first, "loss did not decrease: first 10 steps %.4f, last 10 %.4f", first, last);
    printf("loss: first 10 steps %.4f, last 10 steps %.4f\n", first, last);
}

static void check_errors(void) {
    const struct {
        const char *extra, *phrase;
    } cases[] = {
        {"--set stepz=3", "unknown key 'stepz'"},
        {"--set steps=x", "steps = 'x' is not an integer"},
        {"--set heads=3", "not divisible by heads"},
        {"--set sla_topk=0", "topk"},
        {"--set data=/nonexistent.h5", "/nonexistent.h5"},
        {"--set text_dim=48", "text_dim is 48"},
        {"--set init_weights=/nonexistent_w.h5", "/nonexistent_w.h5"},
        {"--set backend=tpu", "backend = 'tpu'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = run_train("errors", cases[i].extra);
        EXPECT(rc == 2 && stderr_has(cases[i].phrase), "'%s': exit %d, expected 2 and '%s' on stderr", cases[i].extra, rc,
               cases[i].phrase);
    }
    char path[700];
    snprintf(path, sizeof path, "%s/errors/ckpt-00000001.h5", dir);
    EXPECT(access(path, F_OK) != 0, "a refused run wrote a checkpoint");
}

static void check_distillation(void) {
    EXPECT(run_train("teacher", "--set attention=dense --set steps=5 --set ckpt_every=0") == 0, "teacher run failed");
    char w[800], extra[2048];
    snprintf(w, sizeof w, "--set init_weights=%s/teacher/ckpt-00000005.h5 --set steps=1 --set ckpt_every=0", dir);
    snprintf(extra, sizeof extra, "%s --set sla_topk=1", w);
    EXPECT(run_train("plain", extra) == 0, "student without distillation failed");
    snprintf(extra, sizeof extra, "%s --set sla_topk=1 --set teacher=%s/teacher/ckpt-00000005.h5 --set distill_weight=1",
             w, dir);
    EXPECT(run_train("same", extra) == 0, "distillation from an identical teacher failed");
    snprintf(extra, sizeof extra, "%s --set teacher=%s/teacher/ckpt-00000005.h5 --set distill_weight=1", w, dir);
    EXPECT(run_train("sparse", extra) == 0, "distillation into a sparse student failed");
    EXPECT(run_train("sparse_plain", w) == 0, "sparse student without distillation failed");
    double a[1] = {0}, b[1] = {0}, c[1] = {0}, d[1] = {0};
    read_losses("plain", a, 1), read_losses("same", b, 1), read_losses("sparse", c, 1), read_losses("sparse_plain", d, 1);
    EXPECT(a[0] > 0 && a[0] == b[0], "identical teacher changed the loss: %.9g vs %.9g", a[0], b[0]);
    EXPECT(c[0] > d[0], "a sparse student's distillation term is not positive: %.9g vs %.9g", c[0], d[0]);
    printf("distillation: step-1 loss %.6f without, %.6f with an identical teacher; sparse student %.6f without, "
           "%.6f with\n", a[0], b[0], d[0], c[0]);
}

static void check_bad_steps(const param_table_t *t) {
    char path[700], err[512];
    snprintf(path, sizeof path, "%s/huge.h5", dir);
    h5_file_t f;
    tensor_t lat = tensor_alloc(DTYPE_F32, DEVICE_CPU, 5, (int64_t[]){4, 16, 3, 8, 8});
    tensor_t text = tensor_alloc(DTYPE_F32, DEVICE_CPU, 3, (int64_t[]){4, 16, 32});
    for (int64_t i = 0; i < tensor_numel(&lat); i++) ((float *)lat.data)[i] = (i % 2 ? 3e38f : -3e38f);
    memset(text.data, 0, tensor_bytes(&text));
    int ok = !h5_create(path, &f, err, sizeof err) && !h5_write_tensor(&f, "latents", &lat, 0, err, sizeof err) &&
             !h5_write_tensor(&f, "text", &text, 0, err, sizeof err) && !h5_close(&f, err, sizeof err);
    EXPECT(ok, "writing %s: %s", path, err);
    tensor_free(&lat), tensor_free(&text);
    char extra[900];
    /* Steps with small noise levels overflow, others stay finite (clipping tames them): stop at the first. */
    snprintf(extra, sizeof extra, "--set data=%s --set max_bad_steps=1 --set steps=20 --set ckpt_every=0", path);
    int rc = run_train("bad", extra);
    snprintf(path, sizeof path, "%s/bad/ckpt-00000020.h5", dir);
    EXPECT(rc == 1 && stderr_has("step skipped (1 in a row)") && stderr_has("1 non-finite steps in a row") &&
               access(path, F_OK) != 0,
           "non-finite steps: exit %d (expected 1 at the first skipped step, no final checkpoint)", rc);

    /* Allowed to go on: the checkpoint counts the AdamW updates (steps not skipped), and every
     * metrics line is JSON (null, never nan, for the skipped steps' loss and norm). */
    char huge[700];
    snprintf(huge, sizeof huge, "%s/huge.h5", dir);
    snprintf(extra, sizeof extra, "--set data=%s --set max_bad_steps=100 --set steps=12 --set ckpt_every=0", huge);
    rc = run_train("bad_on", extra);
    snprintf(path, sizeof path, "%s/bad_on/metrics.jsonl", dir);
    FILE *m = fopen(path, "r");
    char line[1024];
    int nlines = 0, nskip = 0, nonjson = 0, adam_ok = 1;
    while (m && fgets(line, sizeof line, m)) {
        nlines++;
        nskip += strstr(line, "\"skipped\": true") != NULL;
        nonjson += strstr(line, "nan") != NULL || strstr(line, "inf") != NULL;
        const char *a = strstr(line, "\"adam_steps\": ");
        adam_ok = adam_ok && a && atoi(a + 14) == nlines - nskip;
    }
    if (m) fclose(m);
    ckpt_state_t s; /* this run keeps no EMA */
    memset(&s, 0, sizeof s);
    s.params = calloc(t->total, 4), s.adam_m = calloc(t->total, 4), s.adam_v = calloc(t->total, 4);
    snprintf(path, sizeof path, "%s/bad_on/ckpt-00000012.h5", dir);
    int loaded = rc == 0 && !ckpt_read(path, &s, t, NULL, 0, err, sizeof err);
    EXPECT(loaded && nlines == 12 && nskip > 0 && nskip < 12 && nonjson == 0 && adam_ok && s.step == 12 &&
               s.adam_steps == 12 - nskip,
           "skipped steps: exit %d, %d lines, %d skipped, %d with nan/inf, adam_steps %s, checkpoint %s step %lld "
           "adam_steps %lld",
           rc, nlines, nskip, nonjson, adam_ok ? "counted" : "WRONG", loaded ? "read" : err, (long long)s.step,
           (long long)s.adam_steps);
    printf("non-finite steps: %d of 12 skipped, checkpoint adam_steps %lld\n", nskip, (long long)s.adam_steps);
    free(s.params), free(s.adam_m), free(s.adam_v);
}

/* A sample that fails its checksum, read by the prefetch thread (the second sample in the
 * sampler's order, batch 1): the checkpoint of step 1 is still written, then the run stops at
 * step 2 with exit 1 and the reader's sentence. */
static void check_unreadable_sample(void) {
    char path[700], err[512];
    snprintf(path, sizeof path, "%s/damaged.h5", dir);
    const float MARK = 12345.678f; /* its bytes in the file mark the damaged sample's chunk */
    sampler_t smp;
    EXPECT(sampler_init(&smp, 5, 2, err, sizeof err) == 0, "sampler: %s", err); /* base.cfg's seed */
    const int64_t bad = sampler_at(&smp, 0, 1);
    sampler_free(&smp);
    const int64_t lat_shape[5] = {2, 16, 3, 8, 8}, txt_shape[3] = {2, 16, 32};
    float lat[16 * 3 * 8 * 8], txt[16 * 32];
    h5_file_t f;
    int ok = !h5_create(path, &f, err, sizeof err) &&
             !h5_create_rows(&f, "latents", DTYPE_F32, 5, lat_shape, err, sizeof err) &&
             !h5_create_rows(&f, "text", DTYPE_F32, 3, txt_shape, err, sizeof err);
    for (int64_t i = 0; i < 2 && ok; i++) {
        for (int e = 0; e < 16 * 3 * 8 * 8; e++) lat[e] = i == bad ? MARK : 0.01f * (float)(e % 7);
        for (int e = 0; e < 16 * 32; e++) txt[e] = 0.02f * (float)(e % 5);
        ok = !h5_write_row_f32(&f, "latents", i, lat, 16 * 3 * 8 * 8, err, sizeof err) &&
             !h5_write_row_f32(&f, "text", i, txt, 16 * 32, err, sizeof err);
    }
    ok = ok && !h5_close(&f, err, sizeof err);
    EXPECT(ok, "writing %s: %s", path, err);
    FILE *fp = fopen(path, "r+b");
    long size = 0;
    unsigned char *buf = NULL;
    if (fp && !fseek(fp, 0, SEEK_END) && (size = ftell(fp)) > 0 && !fseek(fp, 0, SEEK_SET)) {
        buf = malloc((size_t)size);
        if (buf && fread(buf, 1, (size_t)size, fp) != (size_t)size) size = 0;
    }
    long at = -1;
    for (long o = 0; buf && o + 4 <= size && at < 0; o++)
        if (!memcmp(buf + o, &MARK, 4)) at = o;
    if (at >= 0) {
        buf[at] ^= 0x40; /* one bit of the damaged sample's first value */
        ok = !fseek(fp, at, SEEK_SET) && fwrite(buf + at, 1, 1, fp) == 1;
    }
    if (fp) fclose(fp);
    free(buf);
    EXPECT(at >= 0 && ok, "could not damage sample %lld of %s", (long long)bad, path);
    char extra[900];
    snprintf(extra, sizeof extra, "--set data=%s --set batch=1 --set steps=4 --set ckpt_every=1", path);
    int rc = run_train("unreadable", extra);
    char c1[760], c2[760];
    snprintf(c1, sizeof c1, "%s/unreadable/ckpt-00000001.h5", dir);
    snprintf(c2, sizeof c2, "%s/unreadable/ckpt-00000002.h5", dir);
    EXPECT(rc == 1 && stderr_has("could not be read") && stderr_has("damaged.h5") && access(c1, F_OK) == 0 &&
               access(c2, F_OK) != 0,
           "unreadable sample %lld: exit %d (expected 1 at step 2, with ckpt 1 and without ckpt 2)", (long long)bad,
           rc);
    printf("unreadable sample (read by the prefetch thread): exit %d with the reader's sentence, step 1 kept\n", rc);
}

static void check_metrics_after_crash(void) {
    /* 6 steps logged, checkpoints at 4 and 6; the one at 6 "never written" and a torn line appended */
    EXPECT(run_train("crash", "--set steps=8 --set ckpt_every=4 --set keep_last=3 --set stop_after=6") == 0,
           "first part failed");
    double before[8] = {0}, after[8] = {0};
    int nb = read_losses("crash", before, 8);
    char path[700];
    snprintf(path, sizeof path, "%s/crash/ckpt-00000006.h5", dir);
    EXPECT(nb == 6 && unlink(path) == 0, "expected 6 logged steps and ckpt-00000006.h5 (%d)", nb);
    snprintf(path, sizeof path, "%s/crash/metrics.jsonl", dir);
    FILE *f = fopen(path, "a");
    if (f) fputs("{\"step\": 7, \"loss\": 1.2", f), fclose(f);
    EXPECT(run_train("crash", "--set steps=8 --set ckpt_every=4 --set keep_last=3") == 0, "resume failed");
    int times[8], lines, na = read_metrics("crash", after, 8, times, &lines), once = 1;
    for (int k = 0; k < 8; k++) once = once && times[k] == 1;
    EXPECT(lines == 8 && once && na == 8, "metrics.jsonl after the resume: %d lines, step 5 %d times", lines, times[4]);
    EXPECT(!memcmp(before, after, 6 * sizeof(double)), "the re-run steps 5 and 6 logged other losses");
    printf("resume after a crash: metrics.jsonl holds steps 1-8 once each, steps 5-6 with the same losses\n");
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    train_bin = argv[1], data_bin = argv[2];
    int cuda = argc > 3 && !strcmp(argv[3], "cuda");
    if (cuda && !ops_cuda_available()) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    if (!mkdtemp(dir)) return 1;
    snprintf(data, sizeof data, "%s/tiny.h5", dir);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s synth --preset tiny --n 24 --seed 3 --out %s > /dev/null", data_bin, data);
    if (system(cmd)) return 1;
    snprintf(cmd, sizeof cmd, "%s/base.cfg", dir);
    FILE *f = fopen(cmd, "w");
    fputs("model = tiny\nsla_topk = 0.34\nsla_blkq = 16\nsla_blkk = 16\nbatch = 2\nlr = 1e-3\nwarmup = 2\n"
          "lr_schedule = cosine\nweight_decay = 0.01\nseed = 5\nresume = auto\nlog_every = 100\n",
          f);
    /* the CUDA kernels take head dim 64 and blocks of 64 */
    fputs(cuda ? "backend = cuda\nheads = 1\nsla_blkq = 64\nsla_blkk = 64\n" : "backend = cpu\n", f);
    fclose(f);
    model_config_t mc;
    char err[256];
    model_config_preset("tiny", &mc, err, sizeof err);
    mc.sla.blk_q = 16, mc.sla.blk_k = 16, mc.sla.topk = 0.34;
    if (cuda) mc.heads = 1;
    param_table_t t;
    param_table_build(&mc, &t, err, sizeof err);

    check_exact_resume(&t);
    check_loss_decreases();
    if (!cuda) {
        check_kill_resume(&t);
        check_sigterm();
        check_errors();
        check_distillation();
        check_bad_steps(&t);
        check_unreadable_sample();
        check_metrics_after_crash();
    }

    param_table_free(&t);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) return 1;
    return test_summary("test_train");
}
