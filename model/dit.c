/* model/dit.c — the whole Wan2.1 DiT around its blocks (dit.h): memory layout, patch and text
 * embeddings, the time path (sinusoid -> MLP -> e, e0 = proj(silu(e)) as [6,B,C] chunks), the head
 * (LayerNorm modulated by e + head.modulation, Linear, unpatchify), and their backward. Blocks are
 * in dit_block.c. The time path and the head run in fp32 on every backend, as Wan does. */
#include "dit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dit_internal.h"

static tensor_t param_in(const dit_t *m, const tensor_t *arena, int i) {
    if (i < 0) return tensor_make(DTYPE_F32, m->device, 0, NULL); /* absent: an empty descriptor */
    const param_info_t *p = &m->table.p[i];
    tensor_t t = tensor_make(arena->dtype, m->device, p->ndim, p->shape);
    t.data = (char *)arena->data + p->offset * dtype_size(arena->dtype);
    return t;
}

tensor_t dit_param(const dit_t *m, int i) { return param_in(m, &m->params, i); }
tensor_t dit_param_work(const dit_t *m, int i) { return param_in(m, &m->params_work, i); }
tensor_t dit_grad(const dit_t *m, int i) {
    CHECK(!m->forward_only, "dit_grad: the model was built forward-only (DIT_FORWARD_ONLY) and has no gradients");
    return param_in(m, &m->grads, i);
}

/* How many block_acts_t sets there are: one reused by every block (recompute, forward-only) or one
 * per block; and the set of a layer. */
static int block_sets(const dit_t *m) { return m->recompute || m->forward_only ? 1 : m->cfg.layers; }
static block_acts_t *block_set(const dit_t *m, int layer) { return &m->acts->blocks[block_sets(m) == 1 ? 0 : layer]; }

tensor_t dit_view(const tensor_t *t, int ndim, const int64_t *shape) {
    tensor_t v = tensor_make(t->dtype, t->device, ndim, shape);
    v.data = t->data;
    CHECK(tensor_numel(&v) == tensor_numel(t), "view of %lld elements as %lld", (long long)tensor_numel(t),
          (long long)tensor_numel(&v));
    return v;
}

tensor_t dit_chunk(const tensor_t *e, int k) {
    int64_t B = e->shape[1], C = e->shape[2];
    tensor_t t = tensor_make(e->dtype, e->device, 2, (int64_t[]){B, C});
    t.data = (char *)e->data + (size_t)k * B * C * dtype_size(e->dtype);
    return t;
}

/* Row k of a [1, n, C] modulation parameter, as [C]. */
static tensor_t mod_row(const tensor_t *mod, int k) {
    int64_t C = mod->shape[2];
    tensor_t t = tensor_make(mod->dtype, mod->device, 1, (int64_t[]){C});
    t.data = (char *)mod->data + (size_t)k * C * dtype_size(mod->dtype);
    return t;
}

static int find(const dit_t *m, int layer, const char *suffix) {
    char name[PARAM_NAME_MAX];
    if (layer >= 0) snprintf(name, sizeof name, "blocks.%d.%s", layer, suffix);
    else snprintf(name, sizeof name, "%s", suffix);
    return param_table_find(&m->table, name);
}

static void find_block_params(const dit_t *m, int l, block_params_t *p) {
    const char *names[] = {"modulation", "self_attn.q.weight", "self_attn.q.bias", "self_attn.k.weight",
                           "self_attn.k.bias", "self_attn.v.weight", "self_attn.v.bias", "self_attn.o.weight",
                           "self_attn.o.bias", "self_attn.norm_q.weight", "self_attn.norm_k.weight",
                           "self_attn.proj_l.weight", "self_attn.proj_l.bias", "norm3.weight", "norm3.bias",
                           "cross_attn.q.weight", "cross_attn.q.bias", "cross_attn.k.weight", "cross_attn.k.bias",
                           "cross_attn.v.weight", "cross_attn.v.bias", "cross_attn.o.weight", "cross_attn.o.bias",
                           "cross_attn.norm_q.weight", "cross_attn.norm_k.weight", "ffn.0.weight", "ffn.0.bias",
                           "ffn.2.weight", "ffn.2.bias"};
    int *fields = &p->modulation; /* block_params_t is these ints, in this order */
    CHECK(sizeof *p == sizeof names / sizeof names[0] * sizeof(int), "block_params_t and its name list disagree");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) fields[i] = find(m, l, names[i]);
}

/* One self-attention store (attn_saved_t): the output, and lse (dense) and/or the whole SLA saved
 * state; what is not asked for stays an empty descriptor. */
static void place_attn_store(dit_t *m, arena_t *ar, dtype_t act, int sla, int dense, attn_saved_t *s) {
    int64_t B = m->B, L = m->L, H = m->cfg.heads, D = m->cfg.dim / H;
    memset(s, 0, sizeof *s);
    s->ao = arena_tensor(ar, act, 4, (int64_t[]){B, H, L, D});
    if (sla) {
        sla_saved_describe(&s->sla, &m->acts->sla_dims, m->device);
        tensor_t *t = &s->sla.lut; /* sla_saved_t is SLA_SAVED_TENSORS tensors (sla.h) */
        for (int i = 0; i < SLA_SAVED_TENSORS; i++) arena_place(ar, &t[i]);
    }
    if (dense) s->lse = arena_tensor(ar, DTYPE_F32, 3, (int64_t[]){B, H, L});
}

/* Each layer's self-attention store, or forward-only one store that every layer overwrites (with
 * what the model's kinds of layer need). Returns their bytes in the arena. */
static size_t layout_attn(dit_t *m, arena_t *ar, dtype_t act) {
    attn_saved_t *st = m->acts->attn;
    size_t start = ar->used;
    if (m->forward_only) {
        int any_sla = 0, any_dense = 0;
        for (int l = 0; l < m->cfg.layers; l++) any_sla |= m->use_sla[l], any_dense |= !m->use_sla[l];
        place_attn_store(m, ar, act, any_sla, any_dense, &st[0]);
        for (int l = 1; l < m->cfg.layers; l++) st[l] = st[0];
    } else {
        for (int l = 0; l < m->cfg.layers; l++) place_attn_store(m, ar, act, m->use_sla[l], !m->use_sla[l], &st[l]);
    }
    return ar->used - start;
}

/* Hands out every activation tensor (forward-only: no backward scratch, and the residual stream in
 * two buffers that the blocks alternate on); run once to measure, once to place. */
static void layout(dit_t *m, arena_t *ar) {
    dit_acts_t *A = m->acts;
    device_t dev = m->device;
    dtype_t act = dev == DEVICE_CPU ? DTYPE_F32 : DTYPE_BF16, res = DTYPE_F32;
    int64_t B = m->B, L = m->L, C = m->cfg.dim, H = m->cfg.heads, D = C / H, Lt = m->cfg.text_len;
    int64_t Fd = m->cfg.ffn_dim, Dt = m->cfg.text_dim, P = (int64_t)m->cfg.patch_f * m->cfg.patch_h * m->cfg.patch_w;
    int64_t BLC[3] = {B, L, C}, BL[1] = {B * L}, BHLD[4] = {B, H, L, D}, BHtD[4] = {B, H, Lt, D}, BtC[3] = {B, Lt, C};
    int64_t BC[2] = {B, C}, E6[3] = {6, B, C};
    (void)dev;
    for (int s = 0; s < block_sets(m); s++) {
        block_acts_t *a = &A->blocks[s];
        a->n1 = arena_tensor(ar, act, 3, BLC), a->h1 = arena_tensor(ar, act, 3, BLC);
        a->n1_mean = arena_tensor(ar, res, 1, BL), a->n1_rstd = arena_tensor(ar, res, 1, BL);
        a->q_lin = arena_tensor(ar, act, 3, BLC), a->k_lin = arena_tensor(ar, act, 3, BLC);
        a->v_lin = arena_tensor(ar, act, 3, BLC);
        a->q_rstd = arena_tensor(ar, res, 1, BL), a->k_rstd = arena_tensor(ar, res, 1, BL);
        a->qh = arena_tensor(ar, act, 4, BHLD), a->kh = arena_tensor(ar, act, 4, BHLD);
        a->vh = arena_tensor(ar, act, 4, BHLD);
        a->am = arena_tensor(ar, act, 3, BLC), a->y1 = arena_tensor(ar, act, 3, BLC);
        a->x1 = arena_tensor(ar, res, 3, BLC);
        a->n3 = arena_tensor(ar, act, 3, BLC);
        a->n3_mean = arena_tensor(ar, res, 1, BL), a->n3_rstd = arena_tensor(ar, res, 1, BL);
        a->cq_lin = arena_tensor(ar, act, 3, BLC), a->cq_rstd = arena_tensor(ar, res, 1, BL);
        a->cqn = arena_tensor(ar, act, 3, BLC), a->cqh = arena_tensor(ar, act, 4, BHLD);
        a->ck_lin = arena_tensor(ar, act, 3, BtC), a->ck_rstd = arena_tensor(ar, res, 1, (int64_t[]){B * Lt});
        a->ckn = arena_tensor(ar, act, 3, BtC), a->ckh = arena_tensor(ar, act, 4, BHtD);
        a->cv_lin = arena_tensor(ar, act, 3, BtC), a->cvh = arena_tensor(ar, act, 4, BHtD);
        a->co = arena_tensor(ar, act, 4, BHLD), a->clse = arena_tensor(ar, res, 3, (int64_t[]){B, H, L});
        a->cm = arena_tensor(ar, act, 3, BLC), a->y3 = arena_tensor(ar, act, 3, BLC);
        a->x2 = arena_tensor(ar, res, 3, BLC);
        a->n2 = arena_tensor(ar, act, 3, BLC), a->h2 = arena_tensor(ar, act, 3, BLC);
        a->n2_mean = arena_tensor(ar, res, 1, BL), a->n2_rstd = arena_tensor(ar, res, 1, BL);
        if (!m->recompute) a->f1 = arena_tensor(ar, act, 3, (int64_t[]){B, L, Fd}); /* else per layer, below */
        a->f2 = arena_tensor(ar, act, 3, (int64_t[]){B, L, Fd});
        if (!m->recompute) a->y2 = arena_tensor(ar, act, 3, BLC);
    }
    m->attn_saved_bytes = layout_attn(m, ar, act);
    if (m->recompute)
        for (int l = 0; l < m->cfg.layers; l++) {
            A->attn[l].ffn_pre = arena_tensor(ar, act, 3, (int64_t[]){B, L, Fd});
            A->attn[l].ffn_out = arena_tensor(ar, act, 3, BLC);
        }
    for (int l = 0; l <= m->cfg.layers; l++)
        A->xs[l] = m->forward_only && l >= 2 ? A->xs[l & 1] : arena_tensor(ar, res, 3, BLC);
    for (int l = 0; l < m->cfg.layers; l++) A->e_blk[l] = arena_tensor(ar, res, 3, E6);
    A->ones = arena_tensor(ar, res, 2, BC);
    A->patches = arena_tensor(ar, act, 3, (int64_t[]){B, L, m->cfg.in_channels * P});
    A->x0_act = arena_tensor(ar, act, 3, BLC);
    A->ctx_in = arena_tensor(ar, act, 3, (int64_t[]){B, Lt, Dt});
    A->ctx_h1 = arena_tensor(ar, act, 3, BtC), A->ctx_h2 = arena_tensor(ar, act, 3, BtC), A->ctx = arena_tensor(ar, act, 3, BtC);
    A->temb = arena_tensor(ar, res, 2, (int64_t[]){B, m->cfg.freq_dim});
    A->e1 = arena_tensor(ar, res, 2, BC), A->e1s = arena_tensor(ar, res, 2, BC);
    A->e = arena_tensor(ar, res, 2, BC), A->es = arena_tensor(ar, res, 2, BC);
    A->e0flat = arena_tensor(ar, res, 2, (int64_t[]){B, 6 * C}), A->e0 = arena_tensor(ar, res, 3, E6);
    A->eh = arena_tensor(ar, res, 3, (int64_t[]){2, B, C});
    A->hn = arena_tensor(ar, res, 3, BLC), A->hm = arena_tensor(ar, res, 3, BLC);
    A->hn_mean = arena_tensor(ar, res, 1, BL), A->hn_rstd = arena_tensor(ar, res, 1, BL);
    A->ho = arena_tensor(ar, res, 3, (int64_t[]){B, L, P * m->cfg.out_channels});
    if (m->forward_only) return; /* the rest is the backward's */
    grad_scratch_t *g = &A->gs;
    g->g = arena_tensor(ar, res, 3, BLC), g->dh1 = arena_tensor(ar, res, 3, BLC);
    g->dact_a = arena_tensor(ar, act, 3, BLC), g->dact_b = arena_tensor(ar, act, 3, BLC);
    g->dff = arena_tensor(ar, act, 3, (int64_t[]){B, L, Fd});
    g->dq = arena_tensor(ar, act, 4, BHLD), g->dk = arena_tensor(ar, act, 4, BHLD), g->dv = arena_tensor(ar, act, 4, BHLD);
    g->dcq = arena_tensor(ar, act, 4, BHLD), g->dck = arena_tensor(ar, act, 4, BHtD), g->dcv = arena_tensor(ar, act, 4, BHtD);
    g->dctx_lin = arena_tensor(ar, act, 3, BtC), g->dctx_tmp = arena_tensor(ar, act, 3, BtC);
    g->dproj_w = arena_tensor(ar, res, 2, (int64_t[]){D, D}), g->dproj_b = arena_tensor(ar, res, 1, (int64_t[]){D});
    g->de = arena_tensor(ar, res, 3, E6);
    A->dctx = arena_tensor(ar, res, 3, BtC);
    A->de0 = arena_tensor(ar, res, 3, E6), A->de_e = arena_tensor(ar, res, 2, BC);
    A->dho = arena_tensor(ar, res, 3, (int64_t[]){B, L, P * m->cfg.out_channels});
    A->dhm = arena_tensor(ar, res, 3, BLC), A->dhn = arena_tensor(ar, res, 3, BLC);
    A->deh = arena_tensor(ar, res, 3, (int64_t[]){2, B, C});
    A->de0flat = arena_tensor(ar, res, 2, (int64_t[]){B, 6 * C});
    A->des = arena_tensor(ar, res, 2, BC), A->de1s = arena_tensor(ar, res, 2, BC);
    A->dctx_act = arena_tensor(ar, act, 3, BtC), A->dctx_h2 = arena_tensor(ar, act, 3, BtC);
    A->dctx_h1 = arena_tensor(ar, act, 3, BtC);
    A->dx0_act = arena_tensor(ar, act, 3, BLC);
}

int dit_init(dit_t *m, const model_config_t *cfg, device_t device, int B, int F, int H, int W, dit_mode_t mode,
             char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    if (mode != DIT_TRAIN && mode != DIT_TRAIN_RECOMPUTE && mode != DIT_FORWARD_ONLY) {
        snprintf(err, errlen, "dit_init: mode %d is not DIT_TRAIN (0), DIT_TRAIN_RECOMPUTE (1) or DIT_FORWARD_ONLY (2)",
                 (int)mode);
        return -1;
    }
    if (param_table_build(cfg, &m->table, err, errlen)) return -1;
    if (B < 1 || F < 1 || H < 1 || W < 1 || F % cfg->patch_f || H % cfg->patch_h || W % cfg->patch_w) {
        snprintf(err, errlen, "latent shape [%d, %d, %d, %d, %d] is not positive or not divisible by the patch %dx%dx%d", B,
                 cfg->in_channels, F, H, W, cfg->patch_f, cfg->patch_h, cfg->patch_w);
        param_table_free(&m->table);
        return -1;
    }
    if (device == DEVICE_CUDA && !ops_cuda_available()) {
        snprintf(err, errlen, "the CUDA backend was asked for, but %s", "no CUDA device is available in this build");
        param_table_free(&m->table);
        return -1;
    }
    int D = cfg->dim / cfg->heads;
    if (device == DEVICE_CUDA && D != 64 && D != 128) {
        snprintf(err, errlen, "head dim %d (dim %d / heads %d): the CUDA attention kernels take head dims 64 and 128",
                 D, cfg->dim, cfg->heads);
        param_table_free(&m->table);
        return -1;
    }
    if (device == DEVICE_CUDA && cfg->attention == ATTENTION_SLA &&
        ((cfg->sla.blk_q != 64 && cfg->sla.blk_q != 128) || (cfg->sla.blk_k != 64 && cfg->sla.blk_k != 128))) {
        snprintf(err, errlen, "SLA blocks %d x %d: the CUDA kernels take sla_blkq and sla_blkk of 64 or 128",
                 cfg->sla.blk_q, cfg->sla.blk_k);
        param_table_free(&m->table);
        return -1;
    }
    m->cfg = *cfg;
    m->device = device;
    m->B = B, m->F = F, m->H = H, m->W = W;
    m->recompute = mode == DIT_TRAIN_RECOMPUTE, m->forward_only = mode == DIT_FORWARD_ONLY;
    m->Fp = F / cfg->patch_f, m->Hp = H / cfg->patch_h, m->Wp = W / cfg->patch_w;
    m->L = m->Fp * m->Hp * m->Wp;
    model_sla_layer_mask(cfg, m->use_sla, err, errlen);
    int64_t total = (int64_t)m->table.total;
    m->params = tensor_alloc(DTYPE_F32, device, 1, &total);
    if (m->forward_only) m->grads = tensor_make(DTYPE_F32, device, 1, (int64_t[]){0}); /* no data */
    else m->grads = tensor_alloc(DTYPE_F32, device, 1, &total), tensor_zero(&m->grads);
    m->params_work = device == DEVICE_CPU ? m->params : tensor_alloc(DTYPE_BF16, device, 1, &total);
    tensor_zero(&m->params);

    dit_acts_t *A = xcalloc(1, sizeof *A);
    m->acts = A;
    A->bp = xcalloc((unsigned long)cfg->layers, sizeof *A->bp);
    for (int l = 0; l < cfg->layers; l++) find_block_params(m, l, &A->bp[l]);
    A->blocks = xcalloc((unsigned long)block_sets(m), sizeof *A->blocks);
    A->attn = xcalloc((unsigned long)cfg->layers, sizeof *A->attn);
    A->xs = xcalloc((unsigned long)cfg->layers + 1, sizeof *A->xs);
    A->e_blk = xcalloc((unsigned long)cfg->layers, sizeof *A->e_blk);
    int any_sla = 0;
    for (int l = 0; l < cfg->layers; l++) any_sla |= m->use_sla[l];
    if (any_sla && sla_dims_make(&cfg->sla, B, cfg->heads, m->L, D, &A->sla_dims, NULL, err, errlen)) {
        dit_free(m);
        return -1;
    }
    arena_begin_measure(&m->arena, device);
    layout(m, &m->arena);
    arena_commit(&m->arena);
    layout(m, &m->arena);
    /* ones for the ungated residual add */
    float *host = xmalloc(sizeof(float) * (unsigned long)B * cfg->dim);
    for (long i = 0; i < (long)B * cfg->dim; i++) host[i] = 1.0f;
    tensor_t h = tensor_make(DTYPE_F32, DEVICE_CPU, 2, A->ones.shape);
    h.data = host;
    tensor_copy(&A->ones, &h);
    free(host);
    return 0;
}

void dit_free(dit_t *m) {
    if (!m->acts) return;
    free(m->acts->bp), free(m->acts->blocks), free(m->acts->attn), free(m->acts->xs), free(m->acts->e_blk);
    free(m->acts);
    arena_free(&m->arena);
    if (m->params_work.data != m->params.data) tensor_free(&m->params_work);
    tensor_free(&m->params), tensor_free(&m->grads);
    param_table_free(&m->table);
    memset(m, 0, sizeof *m);
}

void dit_params_changed(dit_t *m) {
    if (m->params_work.data != m->params.data) tensor_convert(&m->params, &m->params_work);
}

void dit_zero_grads(dit_t *m) {
    CHECK(!m->forward_only, "dit_zero_grads: the model was built forward-only (DIT_FORWARD_ONLY) and has no gradients");
    tensor_zero(&m->grads);
}

/* y = x w^T + b with parameters from the master (fp32) arena: the time path and the head. */
static void lin_f32(const dit_t *m, const char *w, const char *b, const tensor_t *x, tensor_t *y) {
    tensor_t tw = dit_param(m, find(m, -1, w)), tb = dit_param(m, find(m, -1, b));
    linear_forward(x, &tw, &tb, y);
}

static void lin_f32_bwd(const dit_t *m, const char *w, const char *b, const tensor_t *x, const tensor_t *dy,
                        tensor_t *dx) {
    int wi = find(m, -1, w), bi = find(m, -1, b);
    tensor_t tw = dit_param(m, wi), gw = dit_grad(m, wi), gb = dit_grad(m, bi);
    linear_backward(x, &tw, dy, dx, 0, &gw, &gb);
}

static void lin_work(const dit_t *m, const char *w, const char *b, const tensor_t *x, tensor_t *y) {
    tensor_t tw = dit_param_work(m, find(m, -1, w)), tb = dit_param_work(m, find(m, -1, b));
    linear_forward(x, &tw, &tb, y);
}

static void lin_work_bwd(const dit_t *m, const char *w, const char *b, const tensor_t *x, const tensor_t *dy,
                         tensor_t *dx) {
    int wi = find(m, -1, w), bi = find(m, -1, b);
    tensor_t tw = dit_param_work(m, wi), gw = dit_grad(m, wi), gb = dit_grad(m, bi);
    linear_backward(x, &tw, dy, dx, 0, &gw, &gb);
}

/* The patch embedding's Conv3d weight [C, 16, 1, 2, 2] as a Linear weight [C, 64]. */
static tensor_t as_matrix(const tensor_t *w) { return dit_view(w, 2, (int64_t[]){w->shape[0], tensor_numel(w) / w->shape[0]}); }

static void check_inputs(const dit_t *m, const tensor_t *latents, const tensor_t *t, const tensor_t *text) {
    int64_t want[5] = {m->B, m->cfg.in_channels, m->F, m->H, m->W};
    for (int i = 0; i < 5; i++)
        CHECK(latents->ndim == 5 && latents->shape[i] == want[i], "dit_forward: latents must be [%d,%d,%d,%d,%d]",
              m->B, m->cfg.in_channels, m->F, m->H, m->W);
    CHECK(t->ndim == 1 && t->shape[0] == m->B && t->dtype == DTYPE_F32, "dit_forward: t must be float32 [%d]", m->B);
    CHECK(text->ndim == 3 && text->shape[0] == m->B && text->shape[1] <= m->cfg.text_len &&
              text->shape[2] == m->cfg.text_dim,
          "dit_forward: text must be [%d, <= %d, %d]", m->B, m->cfg.text_len, m->cfg.text_dim);
}

void dit_forward(dit_t *m, const tensor_t *latents, const tensor_t *t, const tensor_t *text, tensor_t *pred) {
    dit_acts_t *A = m->acts;
    check_inputs(m, latents, t, text);
    int64_t Lt_in = text->shape[1], Dt = m->cfg.text_dim;
    /* time path (fp32) */
    timestep_embedding(t, &A->temb);
    lin_f32(m, "time_embedding.0.weight", "time_embedding.0.bias", &A->temb, &A->e1);
    silu_forward(&A->e1, &A->e1s);
    lin_f32(m, "time_embedding.2.weight", "time_embedding.2.bias", &A->e1s, &A->e);
    silu_forward(&A->e, &A->es);
    lin_f32(m, "time_projection.1.weight", "time_projection.1.bias", &A->es, &A->e0flat);
    tensor_t e0flat4 = dit_view(&A->e0flat, 4, (int64_t[]){1, m->B, 6, m->cfg.dim});
    tensor_t e04 = dit_view(&A->e0, 4, (int64_t[]){1, 6, m->B, m->cfg.dim});
    head_transpose(&e0flat4, &e04);
    for (int l = 0; l < m->cfg.layers; l++) {
        tensor_copy(&A->e_blk[l], &A->e0);
        tensor_t mod = dit_param(m, A->bp[l].modulation);
        for (int k = 0; k < 6; k++) {
            tensor_t row = mod_row(&mod, k), chunk = dit_chunk(&A->e_blk[l], k);
            add_row_broadcast(&row, &chunk);
        }
    }
    /* text: zero-padded to text_len, then Linear, GELU, Linear */
    tensor_zero(&A->ctx_in);
    for (int b = 0; b < m->B; b++) {
        tensor_t src = tensor_make(text->dtype, text->device, 1, (int64_t[]){Lt_in * Dt});
        src.data = (char *)text->data + (size_t)b * Lt_in * Dt * dtype_size(text->dtype);
        tensor_t dst = tensor_make(A->ctx_in.dtype, m->device, 1, (int64_t[]){Lt_in * Dt});
        dst.data = (char *)A->ctx_in.data + (size_t)b * m->cfg.text_len * Dt * dtype_size(A->ctx_in.dtype);
        tensor_convert(&src, &dst);
    }
    lin_work(m, "text_embedding.0.weight", "text_embedding.0.bias", &A->ctx_in, &A->ctx_h1);
    gelu_forward(&A->ctx_h1, &A->ctx_h2);
    lin_work(m, "text_embedding.2.weight", "text_embedding.2.bias", &A->ctx_h2, &A->ctx);
    /* patches -> tokens */
    patchify(latents, m->cfg.patch_f, m->cfg.patch_h, m->cfg.patch_w, &A->patches);
    int pe = find(m, -1, "patch_embedding.weight");
    tensor_t pw = dit_param_work(m, pe), pw2 = as_matrix(&pw), pb = dit_param_work(m, find(m, -1, "patch_embedding.bias"));
    linear_forward(&A->patches, &pw2, &pb, &A->x0_act);
    tensor_convert(&A->x0_act, &A->xs[0]);
    for (int l = 0; l < m->cfg.layers; l++)
        block_forward(m, l, block_set(m, l), &A->xs[l], &A->xs[l + 1], 0);
    /* head */
    tensor_t hmod = dit_param(m, find(m, -1, "head.modulation"));
    for (int k = 0; k < 2; k++) {
        tensor_t chunk = dit_chunk(&A->eh, k), row = mod_row(&hmod, k);
        tensor_copy(&chunk, &A->e);
        add_row_broadcast(&row, &chunk);
    }
    tensor_t shift = dit_chunk(&A->eh, 0), scale = dit_chunk(&A->eh, 1);
    layernorm_forward(&A->xs[m->cfg.layers], NULL, NULL, (float)m->cfg.eps, &A->hn, &A->hn_mean, &A->hn_rstd);
    modulate_forward(&A->hn, &scale, &shift, &A->hm);
    lin_f32(m, "head.head.weight", "head.head.bias", &A->hm, &A->ho);
    unpatchify(&A->ho, m->cfg.patch_f, m->cfg.patch_h, m->cfg.patch_w, pred);
}

/* acc f32 [n, C] (a [1, n, C] modulation gradient) += the batch sums of the n chunks of de [n,B,C]. */
static void modulation_grad(const tensor_t *de, int n, tensor_t *gmod) {
    for (int k = 0; k < n; k++) {
        tensor_t chunk = dit_chunk(de, k), row = mod_row(gmod, k);
        sum_rows_accumulate(&chunk, &row);
    }
}

void dit_backward(dit_t *m, const tensor_t *dpred) {
    CHECK(!m->forward_only, "dit_backward: the model was built forward-only (DIT_FORWARD_ONLY): it has no gradients "
                            "or backward memory; build it with DIT_TRAIN or DIT_TRAIN_RECOMPUTE to train it");
    dit_acts_t *A = m->acts;
    grad_scratch_t *gs = &A->gs;
    /* head */
    unpatchify_backward(dpred, m->cfg.patch_f, m->cfg.patch_h, m->cfg.patch_w, &A->dho);
    lin_f32_bwd(m, "head.head.weight", "head.head.bias", &A->hm, &A->dho, &A->dhm);
    tensor_t scale = dit_chunk(&A->eh, 1), dshift = dit_chunk(&A->deh, 0), dscale = dit_chunk(&A->deh, 1);
    modulate_backward(&A->hn, &scale, &A->dhm, &A->dhn, &dscale, &dshift);
    layernorm_backward(&A->xs[m->cfg.layers], NULL, &A->hn_mean, &A->hn_rstd, &A->dhn, &gs->g, 0, NULL, NULL);
    int hm = find(m, -1, "head.modulation");
    tensor_t ghmod = dit_grad(m, hm);
    modulation_grad(&A->deh, 2, &ghmod);
    tensor_copy(&A->de_e, &dshift); /* e feeds both head chunks */
    tensor_axpy(1.0f, &dscale, &A->de_e);
    /* blocks */
    tensor_zero(&A->dctx), tensor_zero(&A->de0);
    for (int l = m->cfg.layers - 1; l >= 0; l--) {
        block_acts_t *a = block_set(m, l);
        if (m->recompute) block_forward(m, l, a, &A->xs[l], NULL, 1); /* self-attention and FFN kept */
        block_backward(m, l, a);
        tensor_t gmod = dit_grad(m, A->bp[l].modulation);
        modulation_grad(&gs->de, 6, &gmod);
        tensor_axpy(1.0f, &gs->de, &A->de0);
    }
    /* patch embedding (the latents need no gradient) */
    tensor_convert(&gs->g, &A->dx0_act);
    int pe = find(m, -1, "patch_embedding.weight"), peb = find(m, -1, "patch_embedding.bias");
    tensor_t pw = dit_param_work(m, pe), pw2 = as_matrix(&pw), gw = dit_grad(m, pe), gw2 = as_matrix(&gw);
    tensor_t gb = dit_grad(m, peb);
    linear_backward(&A->patches, &pw2, &A->dx0_act, NULL, 0, &gw2, &gb);
    /* text MLP */
    tensor_convert(&A->dctx, &A->dctx_act);
    lin_work_bwd(m, "text_embedding.2.weight", "text_embedding.2.bias", &A->ctx_h2, &A->dctx_act, &A->dctx_h2);
    gelu_backward(&A->ctx_h1, &A->dctx_h2, &A->dctx_h1);
    lin_work_bwd(m, "text_embedding.0.weight", "text_embedding.0.bias", &A->ctx_in, &A->dctx_h1, NULL);
    /* time path */
    tensor_t de04 = dit_view(&A->de0, 4, (int64_t[]){1, 6, m->B, m->cfg.dim});
    tensor_t de0flat4 = dit_view(&A->de0flat, 4, (int64_t[]){1, m->B, 6, m->cfg.dim});
    head_transpose(&de04, &de0flat4);
    lin_f32_bwd(m, "time_projection.1.weight", "time_projection.1.bias", &A->es, &A->de0flat, &A->des);
    silu_backward(&A->e, &A->des, &A->des);
    tensor_axpy(1.0f, &A->des, &A->de_e);
    lin_f32_bwd(m, "time_embedding.2.weight", "time_embedding.2.bias", &A->e1s, &A->de_e, &A->de1s);
    silu_backward(&A->e1, &A->de1s, &A->de1s);
    lin_f32_bwd(m, "time_embedding.0.weight", "time_embedding.0.bias", &A->temb, &A->de1s, NULL);
}
