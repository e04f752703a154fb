/* model/dit_block.c — one Wan2.1 block, forward and backward (DESIGN.md "The model"):
 *   x1 = x  + g0 * o(Attn(rope(rmsnorm(q(h1))), rope(rmsnorm(k(h1))), v(h1))),  h1 = LN1(x)(1+s0) + b0
 *   x2 = x1 + co(Attn(rmsnorm(cq(LN3(x1))), rmsnorm(ck(ctx)), cv(ctx)))          (LN3 affine, no gate)
 *   x3 = x2 + g1 * ffn2(gelu(ffn0(h2))),                                      h2 = LN2(x2)(1+s1) + b1
 * with (b0, s0, g0, b1, s1, g1) = e_blk chunks 0..5 and Attn SLA or dense per layer.
 * block_forward overwrites a, acts->attn[layer] and x_out (unless kept); block_backward
 * turns the residual gradient gs.g (= dLoss/dx3) into dLoss/dx in place, accumulates parameter
 * gradients (+=), the text-context gradient into acts->dctx (+=) and writes the block's modulation
 * gradient to gs.de (=). */
#include <string.h>

#include "dit_internal.h"

static void lin_fwd(const dit_t *m, int wi, int bi, const tensor_t *x, tensor_t *y) {
    tensor_t w = dit_param_work(m, wi), b = dit_param_work(m, bi);
    linear_forward(x, &w, &b, y);
}

/* dx = (or += with dx_acc) the input gradient; the parameter gradients accumulate. */
static void lin_bwd(const dit_t *m, int wi, int bi, const tensor_t *x, const tensor_t *dy, tensor_t *dx, int dx_acc) {
    tensor_t w = dit_param_work(m, wi), gw = dit_grad(m, wi), gb = dit_grad(m, bi);
    linear_backward(x, &w, dy, dx, dx_acc, &gw, &gb);
}

/* [B,N,C] <-> [B,N,H,D] views for the head transposes. */
static tensor_t heads_view(const dit_t *m, const tensor_t *t, int64_t N) {
    int64_t H = m->cfg.heads, D = m->cfg.dim / H;
    return dit_view(t, 4, (int64_t[]){m->B, N, H, D});
}

/* The FFN hidden before GELU and the FFN output of this layer: its own stores under recompute,
 * else the block set's. */
static tensor_t *ffn_pre(dit_t *m, int layer, block_acts_t *a) {
    return m->recompute ? &m->acts->attn[layer].ffn_pre : &a->f1;
}
static tensor_t *ffn_out(dit_t *m, int layer, block_acts_t *a) {
    return m->recompute ? &m->acts->attn[layer].ffn_out : &a->y2;
}

void block_forward(dit_t *m, int layer, block_acts_t *a, const tensor_t *x_in, tensor_t *x_out, int kept) {
    const block_params_t *p = &m->acts->bp[layer];
    attn_saved_t *at = &m->acts->attn[layer];
    const tensor_t *e = &m->acts->e_blk[layer];
    tensor_t shift0 = dit_chunk(e, 0), scale0 = dit_chunk(e, 1), gate0 = dit_chunk(e, 2);
    tensor_t shift1 = dit_chunk(e, 3), scale1 = dit_chunk(e, 4), gate1 = dit_chunk(e, 5);
    float eps = (float)m->cfg.eps;
    int64_t L = m->L, Lt = m->cfg.text_len;

    /* self-attention */
    layernorm_forward(x_in, NULL, NULL, eps, &a->n1, &a->n1_mean, &a->n1_rstd);
    modulate_forward(&a->n1, &scale0, &shift0, &a->h1);
    lin_fwd(m, p->q_w, p->q_b, &a->h1, &a->q_lin);
    lin_fwd(m, p->k_w, p->k_b, &a->h1, &a->k_lin);
    lin_fwd(m, p->v_w, p->v_b, &a->h1, &a->v_lin);
    tensor_t nq = dit_param(m, p->norm_q), nk = dit_param(m, p->norm_k), v4 = heads_view(m, &a->v_lin, L);
    rmsnorm_rope_forward(&a->q_lin, &nq, eps, m->Fp, m->Hp, m->Wp, &a->qh, &a->q_rstd);
    rmsnorm_rope_forward(&a->k_lin, &nk, eps, m->Fp, m->Hp, m->Wp, &a->kh, &a->k_rstd);
    head_transpose(&v4, &a->vh);
    if (!kept) { /* else at holds this layer's result for this very input, bit for bit */
        if (m->use_sla[layer]) {
            tensor_t pw = dit_param(m, p->proj_w), pb = dit_param(m, p->proj_b);
            sla_forward(&m->cfg.sla, &m->acts->sla_dims, &a->qh, &a->kh, &a->vh, &pw, &pb, 0, &at->ao, &at->sla);
        } else {
            attn_forward(&a->qh, &a->kh, &a->vh, &at->ao, &at->lse);
        }
    }
    tensor_t am4 = heads_view(m, &a->am, L);
    head_transpose(&at->ao, &am4);
    lin_fwd(m, p->o_w, p->o_b, &a->am, &a->y1);
    gated_residual_forward(x_in, &gate0, &a->y1, &a->x1);

    /* cross-attention to the text (dense, no gate) */
    tensor_t n3w = dit_param(m, p->norm3_w), n3b = dit_param(m, p->norm3_b);
    layernorm_forward(&a->x1, &n3w, &n3b, eps, &a->n3, &a->n3_mean, &a->n3_rstd);
    lin_fwd(m, p->cq_w, p->cq_b, &a->n3, &a->cq_lin);
    lin_fwd(m, p->ck_w, p->ck_b, &m->acts->ctx, &a->ck_lin);
    lin_fwd(m, p->cv_w, p->cv_b, &m->acts->ctx, &a->cv_lin);
    tensor_t cnq = dit_param(m, p->cnorm_q), cnk = dit_param(m, p->cnorm_k);
    rmsnorm_forward(&a->cq_lin, &cnq, eps, &a->cqn, &a->cq_rstd);
    rmsnorm_forward(&a->ck_lin, &cnk, eps, &a->ckn, &a->ck_rstd);
    tensor_t cqn4 = heads_view(m, &a->cqn, L), ckn4 = heads_view(m, &a->ckn, Lt), cv4 = heads_view(m, &a->cv_lin, Lt);
    head_transpose(&cqn4, &a->cqh);
    head_transpose(&ckn4, &a->ckh);
    head_transpose(&cv4, &a->cvh);
    attn_forward(&a->cqh, &a->ckh, &a->cvh, &a->co, &a->clse);
    tensor_t cm4 = heads_view(m, &a->cm, L);
    head_transpose(&a->co, &cm4);
    lin_fwd(m, p->co_w, p->co_b, &a->cm, &a->y3);
    gated_residual_forward(&a->x1, &m->acts->ones, &a->y3, &a->x2);

    /* feed-forward */
    layernorm_forward(&a->x2, NULL, NULL, eps, &a->n2, &a->n2_mean, &a->n2_rstd);
    modulate_forward(&a->n2, &scale1, &shift1, &a->h2);
    tensor_t *f1 = ffn_pre(m, layer, a), *y2 = ffn_out(m, layer, a);
    if (!kept) lin_fwd(m, p->ffn0_w, p->ffn0_b, &a->h2, f1); /* else f1 and y2 are this input's, bit for bit */
    gelu_forward(f1, &a->f2); /* not in the GEMM's epilogue: the re-run must give the same f2 */
    if (kept) return; /* the backward needs nothing past f2 that is not kept */
    lin_fwd(m, p->ffn2_w, p->ffn2_b, &a->f2, y2);
    gated_residual_forward(&a->x2, &gate1, y2, x_out);
}

/* g += LayerNorm backward of dy at x (no affine unless weight/bias given). */
static void layernorm_backward_add(dit_t *m, const tensor_t *x, int wi, int bi, const tensor_t *mean,
                                   const tensor_t *rstd, const tensor_t *dy) {
    grad_scratch_t *gs = &m->acts->gs;
    tensor_t w = dit_param(m, wi), gw = dit_grad(m, wi), gb = dit_grad(m, bi);
    layernorm_backward(x, wi >= 0 ? &w : NULL, mean, rstd, dy, &gs->g, 1, wi >= 0 ? &gw : NULL, bi >= 0 ? &gb : NULL);
}

void block_backward(dit_t *m, int layer, block_acts_t *a) {
    const block_params_t *p = &m->acts->bp[layer];
    grad_scratch_t *gs = &m->acts->gs;
    const tensor_t *e = &m->acts->e_blk[layer];
    tensor_t scale0 = dit_chunk(e, 1), gate0 = dit_chunk(e, 2), scale1 = dit_chunk(e, 4), gate1 = dit_chunk(e, 5);
    tensor_t de[6];
    for (int k = 0; k < 6; k++) de[k] = dit_chunk(&gs->de, k);
    int64_t L = m->L, Lt = m->cfg.text_len;

    /* feed-forward: x3 = x2 + g1 * y2 */
    gated_residual_backward(ffn_out(m, layer, a), &gate1, &gs->g, &gs->dact_a, &de[5]);
    tensor_t f2w = dit_param_work(m, p->ffn2_w), gf2w = dit_grad(m, p->ffn2_w), gf2b = dit_grad(m, p->ffn2_b);
    linear_backward_gelu_input(&a->f2, ffn_pre(m, layer, a), &f2w, &gs->dact_a, &gs->dff, &gf2w, &gf2b);
    lin_bwd(m, p->ffn0_w, p->ffn0_b, &a->h2, &gs->dff, &gs->dact_a, 0);
    modulate_backward(&a->n2, &scale1, &gs->dact_a, &gs->dact_b, &de[4], &de[3]);
    layernorm_backward_add(m, &a->x2, -1, -1, &a->n2_mean, &a->n2_rstd, &gs->dact_b);

    /* cross-attention: x2 = x1 + y3 */
    tensor_convert(&gs->g, &gs->dact_a);
    lin_bwd(m, p->co_w, p->co_b, &a->cm, &gs->dact_a, &gs->dact_b, 0);
    tensor_t dcm4 = heads_view(m, &gs->dact_b, L);
    head_transpose(&dcm4, &gs->dq); /* dco */
    attn_backward(&a->cqh, &a->ckh, &a->cvh, &a->co, &a->clse, &gs->dq, &gs->dcq, &gs->dck, &gs->dcv);
    tensor_t dcqn4 = heads_view(m, &gs->dact_a, L);
    head_transpose(&gs->dcq, &dcqn4);
    tensor_t cnq = dit_param(m, p->cnorm_q), gcnq = dit_grad(m, p->cnorm_q);
    rmsnorm_backward(&a->cq_lin, &cnq, &a->cq_rstd, &gs->dact_a, &gs->dact_b, &gcnq);
    lin_bwd(m, p->cq_w, p->cq_b, &a->n3, &gs->dact_b, &gs->dact_a, 0); /* d(LN3 out) */
    tensor_t dckn4 = heads_view(m, &gs->dctx_lin, Lt);
    head_transpose(&gs->dck, &dckn4);
    tensor_t cnk = dit_param(m, p->cnorm_k), gcnk = dit_grad(m, p->cnorm_k);
    rmsnorm_backward(&a->ck_lin, &cnk, &a->ck_rstd, &gs->dctx_lin, &gs->dctx_tmp, &gcnk);
    lin_bwd(m, p->ck_w, p->ck_b, &m->acts->ctx, &gs->dctx_tmp, &m->acts->dctx, 1);
    tensor_t dcv4 = heads_view(m, &gs->dctx_tmp, Lt);
    head_transpose(&gs->dcv, &dcv4);
    lin_bwd(m, p->cv_w, p->cv_b, &m->acts->ctx, &gs->dctx_tmp, &m->acts->dctx, 1);
    layernorm_backward_add(m, &a->x1, p->norm3_w, p->norm3_b, &a->n3_mean, &a->n3_rstd, &gs->dact_a);

    /* self-attention: x1 = x + g0 * y1 */
    gated_residual_backward(&a->y1, &gate0, &gs->g, &gs->dact_a, &de[2]);
    lin_bwd(m, p->o_w, p->o_b, &a->am, &gs->dact_a, &gs->dact_b, 0);
    tensor_t dam4 = heads_view(m, &gs->dact_b, L);
    tensor_t dao = gs->dcq; /* [B,H,L,D] scratch free again */
    head_transpose(&dam4, &dao);
    const attn_saved_t *at = &m->acts->attn[layer];
    if (m->use_sla[layer]) {
        tensor_t pw = dit_param(m, p->proj_w), gw = dit_grad(m, p->proj_w), gb = dit_grad(m, p->proj_b);
        sla_backward(&m->cfg.sla, &m->acts->sla_dims, &a->qh, &a->kh, &a->vh, &pw, &at->sla, &dao, &gs->dq, &gs->dk,
                     &gs->dv, &gs->dproj_w, &gs->dproj_b);
        tensor_axpy(1.0f, &gs->dproj_w, &gw); /* SLA overwrites its proj gradient; parameters accumulate */
        tensor_axpy(1.0f, &gs->dproj_b, &gb);
    } else {
        attn_backward(&a->qh, &a->kh, &a->vh, &at->ao, &at->lse, &dao, &gs->dq, &gs->dk, &gs->dv);
    }
    tensor_t nq = dit_param(m, p->norm_q), gnq = dit_grad(m, p->norm_q);
    tensor_t nk = dit_param(m, p->norm_k), gnk = dit_grad(m, p->norm_k);
    tensor_t d4 = heads_view(m, &gs->dact_a, L);
    rope_backward(&gs->dq, m->Fp, m->Hp, m->Wp, &d4); /* dh1 = q, k and v's input gradients */
    rmsnorm_backward(&a->q_lin, &nq, &a->q_rstd, &gs->dact_a, &gs->dact_b, &gnq);
    lin_bwd(m, p->q_w, p->q_b, &a->h1, &gs->dact_b, &gs->dh1, 0);
    rope_backward(&gs->dk, m->Fp, m->Hp, m->Wp, &d4);
    rmsnorm_backward(&a->k_lin, &nk, &a->k_rstd, &gs->dact_a, &gs->dact_b, &gnk);
    lin_bwd(m, p->k_w, p->k_b, &a->h1, &gs->dact_b, &gs->dh1, 1);
    head_transpose(&gs->dv, &d4);
    lin_bwd(m, p->v_w, p->v_b, &a->h1, &gs->dact_a, &gs->dh1, 1);
    modulate_backward(&a->n1, &scale0, &gs->dh1, &gs->dact_a, &de[1], &de[0]);
    layernorm_backward_add(m, &m->acts->xs[layer], -1, -1, &a->n1_mean, &a->n1_rstd, &gs->dact_a);
}
