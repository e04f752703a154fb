/* tests/test_dit_cpu.c — the whole tiny DiT on the CPU (label cpu):
 * 1. the gradient of L = sum(G * pred) with respect to EVERY parameter tensor matches a central
 *    finite difference along a random direction in that tensor (SLA model with a live linear
 *    branch, and the dense model); all parameters random so that no path is switched off;
 * 2. with the output projections (self o, cross o, ffn.2) zero, every block is the identity;
 * 3. SLA at rho = 1 (complement, proj zero) gives the dense-attention model's output;
 * 4. recomputation in the backward (which reuses each layer's kept self-attention) gives
 *    bit-identical gradients, for SLA, dense and mixed models, after a forward on other inputs;
 *    spoiling a kept attention output, FFN hidden or FFN output changes them (the pass reads them);
 *    both modes keep the same attention stores and recompute keeps less in all;
 * 5. text shorter than text_len is zero-padded: the same as passing the padded text;
 * 6. a forward-only model (DIT_FORWARD_ONLY) predicts bit-identically to a training model on the
 *    same weights and inputs (after a forward on other inputs), for dense, SLA and mixed models,
 *    with no gradients, a smaller arena than recompute's and one shared attention store; its
 *    dit_backward stops with a CHECK that says why (exit 1). */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dit.h"
#include "dit_internal.h"
#include "test_util.h"

enum { B = 2, F = 2, HL = 8, WL = 6, LT = 5 };

typedef struct inputs {
    tensor_t lat, t, text, g, pred;
} inputs_t;

static inputs_t make_inputs(const model_config_t *c, uint64_t seed) {
    inputs_t in;
    test_rng_t r = {seed};
    in.lat = tensor_alloc(DTYPE_F32, DEVICE_CPU, 5, (int64_t[]){B, 16, F, HL, WL});
    in.g = tensor_alloc(DTYPE_F32, DEVICE_CPU, 5, (int64_t[]){B, 16, F, HL, WL});
    in.pred = tensor_alloc(DTYPE_F32, DEVICE_CPU, 5, (int64_t[]){B, 16, F, HL, WL});
    in.t = tensor_alloc(DTYPE_F32, DEVICE_CPU, 1, (int64_t[]){B});
    in.text = tensor_alloc(DTYPE_F32, DEVICE_CPU, 3, (int64_t[]){B, LT, c->text_dim});
    fill_normal_f32(&r, in.lat.data, tensor_numel(&in.lat), 1.0);
    fill_normal_f32(&r, in.g.data, tensor_numel(&in.g), 1.0);
    fill_normal_f32(&r, in.text.data, tensor_numel(&in.text), 1.0);
    ((float *)in.t.data)[0] = 731.0f, ((float *)in.t.data)[1] = 88.5f;
    return in;
}

static void free_inputs(inputs_t *in) {
    tensor_free(&in->lat), tensor_free(&in->t), tensor_free(&in->text), tensor_free(&in->g), tensor_free(&in->pred);
}

static model_config_t tiny(attention_kind_t attn, double topk) {
    model_config_t c;
    char err[256];
    model_config_preset("tiny", &c, err, sizeof err);
    c.attention = attn;
    c.sla.topk = topk, c.sla.blk_q = 8, c.sla.blk_k = 8, c.sla.feature = SLA_FEATURE_ELU;
    return c;
}

static void init_model(dit_t *m, const model_config_t *c, dit_mode_t mode) {
    char err[256];
    if (dit_init(m, c, DEVICE_CPU, B, F, HL, WL, mode, err, sizeof err)) {
        fprintf(stderr, "dit_init: %s\n", err);
        exit(1);
    }
}

/* Every parameter random (scale 0.2; norms around 1) so that every path carries gradient. */
static void randomize(dit_t *m, uint64_t seed) {
    test_rng_t r = {seed};
    float *p = m->params.data;
    for (int i = 0; i < m->table.count; i++) {
        const param_info_t *pi = &m->table.p[i];
        double base = pi->init == PARAM_INIT_ONE ? 1.0 : 0.0;
        for (int64_t j = 0; j < pi->numel; j++) p[pi->offset + j] = (float)(base + 0.2 * rng_normal(&r));
    }
}

static double loss(dit_t *m, inputs_t *in) {
    dit_forward(m, &in->lat, &in->t, &in->text, &in->pred);
    double l = 0;
    const float *p = in->pred.data, *g = in->g.data;
    for (int64_t i = 0; i < tensor_numel(&in->pred); i++) l += (double)g[i] * p[i];
    return l;
}

static void check_all_gradients(const char *label, const model_config_t *c) {
    dit_t m;
    init_model(&m, c, DIT_TRAIN);
    randomize(&m, 5);
    inputs_t in = make_inputs(c, 9);
    loss(&m, &in);
    dit_zero_grads(&m);
    dit_backward(&m, &in.g);
    float *p = m.params.data, *gr = m.grads.data;
    test_rng_t r = {77};
    int worst_i = -1, failures = 0;
    double worst = 0;
    for (int i = 0; i < m.table.count; i++) {
        const param_info_t *pi = &m.table.p[i];
        float *u = malloc(sizeof(float) * pi->numel), *saved = malloc(sizeof(float) * pi->numel);
        fill_normal_f32(&r, u, pi->numel, 1.0);
        memcpy(saved, p + pi->offset, sizeof(float) * pi->numel);
        double ana = 0, scale = 0;
        for (int64_t j = 0; j < pi->numel; j++) ana += (double)gr[pi->offset + j] * u[j], scale += fabs(saved[j]);
        scale = scale / pi->numel + 0.1;
        /* fp32 activations make the loss noisy at ~1e-7 relative: take central differences at eps
         * and eps/2, use their disagreement as the error estimate of the finite difference, and
         * demand agreement within 1% plus that estimate. A wiring error (a lost path, a wrong
         * chunk, a sign) is off by far more. */
        double fd[2];
        for (int h = 0; h < 2; h++) {
            double eps = 4e-3 * scale / (1 << h);
            for (int64_t j = 0; j < pi->numel; j++) p[pi->offset + j] = (float)(saved[j] + eps * u[j]);
            double lp = loss(&m, &in);
            for (int64_t j = 0; j < pi->numel; j++) p[pi->offset + j] = (float)(saved[j] - eps * u[j]);
            double lm = loss(&m, &in);
            fd[h] = (lp - lm) / (2 * eps);
        }
        memcpy(p + pi->offset, saved, sizeof(float) * pi->numel);
        double est = fabs(fd[0] - fd[1]), err = fabs(fd[1] - ana);
        double rel = err / (0.01 * fabs(ana) + 3 * est + 1e-4);
        if (rel > 1) {
            failures++;
            fprintf(stderr, "  %s %s: analytic %.8g vs finite differences %.8g, %.8g\n", label, pi->name, ana, fd[1],
                    fd[0]);
        }
        if (rel > worst) worst = rel, worst_i = i;
        free(u), free(saved);
    }
    EXPECT(failures == 0, "%s: %d of %d parameter tensors fail the directional finite-difference check", label, failures,
           m.table.count);
    printf("%s: %d parameter tensors, worst error / tolerance %.2f (%s)\n", label, m.table.count, worst,
           worst_i >= 0 ? m.table.p[worst_i].name : "-");
    free_inputs(&in);
    dit_free(&m);
}

static void check_identity_blocks(void) {
    model_config_t c = tiny(ATTENTION_SLA, 0.5);
    dit_t m;
    init_model(&m, &c, DIT_TRAIN);
    randomize(&m, 3);
    const char *zero[] = {"self_attn.o.weight", "self_attn.o.bias", "cross_attn.o.weight", "cross_attn.o.bias",
                          "ffn.2.weight", "ffn.2.bias"};
    for (int l = 0; l < c.layers; l++)
        for (int z = 0; z < 6; z++) {
            char name[96];
            snprintf(name, sizeof name, "blocks.%d.%s", l, zero[z]);
            const param_info_t *pi = &m.table.p[param_table_find(&m.table, name)];
            memset((float *)m.params.data + pi->offset, 0, sizeof(float) * pi->numel);
        }
    inputs_t in = make_inputs(&c, 4);
    loss(&m, &in);
    int same = 1;
    for (int l = 0; l < c.layers; l++)
        same &= !memcmp(m.acts->xs[l].data, m.acts->xs[l + 1].data, tensor_bytes(&m.acts->xs[l]));
    EXPECT(same, "with zero output projections a block changed its input");
    free_inputs(&in);
    dit_free(&m);
}

static void check_full_sla_is_dense(void) {
    model_config_t cs = tiny(ATTENTION_SLA, 1.0), cd = tiny(ATTENTION_DENSE, 1.0);
    cs.sla.feature = SLA_FEATURE_SOFTMAX;
    dit_t ms, md;
    init_model(&ms, &cs, DIT_TRAIN);
    init_model(&md, &cd, DIT_TRAIN);
    randomize(&md, 8);
    for (int i = 0; i < ms.table.count; i++) { /* copy by name; SLA's proj stays zero */
        const param_info_t *pi = &ms.table.p[i];
        int j = param_table_find(&md.table, pi->name);
        float *dst = (float *)ms.params.data + pi->offset;
        if (j < 0) memset(dst, 0, sizeof(float) * pi->numel);
        else memcpy(dst, (float *)md.params.data + md.table.p[j].offset, sizeof(float) * pi->numel);
    }
    inputs_t a = make_inputs(&cs, 2), b = make_inputs(&cd, 2);
    loss(&ms, &a), loss(&md, &b);
    double e = 0, mx = 0;
    for (int64_t i = 0; i < tensor_numel(&a.pred); i++) {
        e = fmax(e, fabs(((float *)a.pred.data)[i] - ((float *)b.pred.data)[i]));
        mx = fmax(mx, fabs(((float *)b.pred.data)[i]));
    }
    EXPECT(e <= 1e-5 * mx, "SLA at rho = 1 differs from dense attention by %.2e (max |pred| %.2e)", e, mx);
    printf("SLA rho = 1 vs dense model: max difference %.1e of max |pred| %.1e\n", e, mx);
    free_inputs(&a), free_inputs(&b);
    dit_free(&ms), dit_free(&md);
}

static void check_recompute(const char *label, const model_config_t *c) {
    dit_t m0, m1;
    init_model(&m0, c, DIT_TRAIN);
    init_model(&m1, c, DIT_TRAIN_RECOMPUTE);
    randomize(&m0, 6);
    memcpy(m1.params.data, m0.params.data, tensor_bytes(&m0.params));
    inputs_t in = make_inputs(c, 3), other = make_inputs(c, 11);
    loss(&m0, &in);
    dit_zero_grads(&m0);
    dit_backward(&m0, &in.g);
    loss(&m1, &other); /* the kept attention must be the last forward's */
    loss(&m1, &in);
    dit_zero_grads(&m1);
    dit_backward(&m1, &in.g);
    EXPECT(!memcmp(m0.grads.data, m1.grads.data, tensor_bytes(&m0.grads)), "%s: recomputation changed the gradients",
           label);
    /* the recompute pass really reads the store: spoil layer 0's kept output and the gradients move */
    loss(&m1, &in);
    tensor_zero(&m1.acts->attn[0].ao);
    dit_zero_grads(&m1);
    dit_backward(&m1, &in.g);
    EXPECT(memcmp(m0.grads.data, m1.grads.data, tensor_bytes(&m0.grads)),
           "%s: the recompute pass ignored the kept self-attention output", label);
    /* and the kept FFN hidden (the last layer's: its re-run comes first) */
    loss(&m1, &in);
    tensor_zero(&m1.acts->attn[c->layers - 1].ffn_pre);
    dit_zero_grads(&m1);
    dit_backward(&m1, &in.g);
    EXPECT(memcmp(m0.grads.data, m1.grads.data, tensor_bytes(&m0.grads)),
           "%s: the recompute pass ignored the kept FFN hidden", label);
    loss(&m1, &in); /* and the kept FFN output (its gate's gradient reads it) */
    tensor_zero(&m1.acts->attn[c->layers - 1].ffn_out);
    dit_zero_grads(&m1);
    dit_backward(&m1, &in.g);
    EXPECT(memcmp(m0.grads.data, m1.grads.data, tensor_bytes(&m0.grads)),
           "%s: the recompute pass ignored the kept FFN output", label);
    EXPECT(m0.attn_saved_bytes == m1.attn_saved_bytes && m1.attn_saved_bytes > 0 && m1.arena.size < m0.arena.size,
           "%s: attention stores %zu / %zu bytes, arenas %zu / %zu bytes without / with recompute", label,
           m0.attn_saved_bytes, m1.attn_saved_bytes, m0.arena.size, m1.arena.size);
    printf("%s: arena %zu bytes (attention stores %zu) vs %zu without\n", label,
           m1.arena.size, m1.attn_saved_bytes, m0.arena.size);
    free_inputs(&in), free_inputs(&other);
    dit_free(&m0), dit_free(&m1);
}

static void check_padding(void) {
    model_config_t c = tiny(ATTENTION_SLA, 0.5);
    dit_t m;
    init_model(&m, &c, DIT_TRAIN);
    randomize(&m, 6);
    inputs_t in = make_inputs(&c, 3);
    /* the same text, explicitly zero-padded to text_len */
    tensor_t padded = tensor_alloc(DTYPE_F32, DEVICE_CPU, 3, (int64_t[]){B, c.text_len, c.text_dim});
    memset(padded.data, 0, tensor_bytes(&padded));
    for (int b = 0; b < B; b++)
        memcpy((float *)padded.data + (size_t)b * c.text_len * c.text_dim,
               (float *)in.text.data + (size_t)b * LT * c.text_dim, sizeof(float) * LT * c.text_dim);
    tensor_t p1 = tensor_alloc(DTYPE_F32, DEVICE_CPU, 5, in.pred.shape);
    dit_forward(&m, &in.lat, &in.t, &in.text, &in.pred);
    dit_forward(&m, &in.lat, &in.t, &padded, &p1);
    EXPECT(!memcmp(p1.data, in.pred.data, tensor_bytes(&p1)), "short text is not the same as zero-padded text");
    tensor_free(&padded), tensor_free(&p1);
    free_inputs(&in);
    dit_free(&m);
}

/* Runs dit_backward on a forward-only model in a child; returns its exit status, its stderr in msg. */
static int backward_in_child(dit_t *m, const tensor_t *dpred, char *msg, size_t len) {
    int fd[2];
    if (pipe(fd)) return -1;
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], 2);
        dit_backward(m, dpred);
        _exit(0);
    }
    close(fd[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < len && (r = read(fd[0], msg + n, len - 1 - n)) > 0) n += (size_t)r;
    msg[n] = '\0';
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void check_forward_only(const char *label, const model_config_t *c) {
    dit_t m0, m1, m2; /* training, recompute (arena sizes), forward-only */
    init_model(&m0, c, DIT_TRAIN);
    init_model(&m1, c, DIT_TRAIN_RECOMPUTE);
    init_model(&m2, c, DIT_FORWARD_ONLY);
    randomize(&m0, 12);
    memcpy(m2.params.data, m0.params.data, tensor_bytes(&m0.params));
    inputs_t in = make_inputs(c, 5), other = make_inputs(c, 13), ref = make_inputs(c, 5);
    loss(&m0, &ref);
    loss(&m2, &other); /* the shared buffers must not leak the previous forward */
    loss(&m2, &in);
    EXPECT(!memcmp(in.pred.data, ref.pred.data, tensor_bytes(&in.pred)), "%s: forward-only prediction differs", label);
    EXPECT(m2.forward_only && !m2.recompute && m2.grads.data == NULL, "%s: a forward-only model has gradients", label);
    int uniform = 1; /* all layers of one kind: the shared store is one layer's */
    for (int l = 1; l < c->layers; l++) uniform &= m0.use_sla[l] == m0.use_sla[0];
    EXPECT(m2.arena.size < m1.arena.size && m2.attn_saved_bytes < m1.attn_saved_bytes &&
               (!uniform || m2.attn_saved_bytes * (size_t)c->layers == m1.attn_saved_bytes),
           "%s: forward-only arena %zu (attention %zu) bytes vs recompute %zu (%zu)", label, m2.arena.size,
           m2.attn_saved_bytes, m1.arena.size, m1.attn_saved_bytes);
    char msg[1024];
    int rc = backward_in_child(&m2, &in.g, msg, sizeof msg);
    EXPECT(rc == 1 && strstr(msg, "dit_backward") && strstr(msg, "forward-only"),
           "%s: dit_backward on a forward-only model: exit %d, stderr '%s'", label, rc, msg);
    printf("%s: arena %zu bytes (attention store %zu) vs %zu with recompute, %zu without\n", label, m2.arena.size,
           m2.attn_saved_bytes, m1.arena.size, m0.arena.size);
    free_inputs(&in), free_inputs(&other), free_inputs(&ref);
    dit_free(&m0), dit_free(&m1), dit_free(&m2);
}

int main(void) {
    model_config_t sla = tiny(ATTENTION_SLA, 0.5), dense = tiny(ATTENTION_DENSE, 1.0);
    check_all_gradients("tiny SLA (topk 0.5, elu, complement)", &sla);
    check_all_gradients("tiny dense", &dense);
    check_identity_blocks();
    check_full_sla_is_dense();
    model_config_t mixed = sla;
    snprintf(mixed.sla_layers, sizeof mixed.sla_layers, "1"); /* layer 0 dense, layer 1 SLA */
    check_recompute("recompute, SLA", &sla);
    check_recompute("recompute, dense", &dense);
    check_recompute("recompute, mixed", &mixed);
    check_padding();
    check_forward_only("forward-only, SLA", &sla);
    check_forward_only("forward-only, dense", &dense);
    check_forward_only("forward-only, mixed", &mixed);
    return test_summary("test_dit_cpu");
}
