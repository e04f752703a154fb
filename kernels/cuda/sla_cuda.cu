/* kernels/cuda/sla_cuda.cu — the CUDA attention backend's launchers (sla_cuda.h): SLA forward and
 * backward and dense attention, composed from the kernels of sla_select.cu, sla_linear*.cu and
 * the flash kernels (sla_flash_wg*.cu on an sm_90a build and a 9.0 device, else sla_flash.cu).
 *
 * sla_forward_cuda overwrites o and fills saved (lut unless given, neg, lse, os, ol); the
 * backward overwrites dq, dk, dv, dproj_w, dproj_b. Nothing synchronises the host: the whole
 * operator can be captured in a CUDA graph once a first call has sized the workspace (a device
 * buffer grown on demand and shared by all calls on the backend's stream; growing it while a
 * capture is in progress is refused with a message). saved.extra keeps the linear branch's per
 * query block states [H_i | Z_i] (bf16 [BH, Tm, D*D + D]; the "all" variant: the fp32 totals
 * [BH, D*D + D]), so that the backward skips the state kernel and the mask GEMM; it recomputes
 * the index lists from lut and neg.
 *
 * Linear branch: per key block states hs_j -> (GEMM with the 0/1 marginal mask, or the totals
 * for the "all" variant) per query block [H_i | Z_i] -> lin_fwd. Backward: the same states ->
 * lin_bwd_q (dq part, rows [A_i | beta_i]) -> transposed mask GEMM -> lin_bwd_k (dk, dv parts).
 *
 * Order of the forward: selection -> linear branch states -> the wgmma flash kernel, whose
 * epilogue adds the linear branch and the proj (writes o = Os + Ol W^T + b, os, ol, lse). With the
 * mma.sync flash kernel instead: states -> lin_fwd (writes ol and o = Ol W^T + b) -> flash kernel
 * (o += Os, writes os, lse). Backward: lists and Ds -> linear branch (writes its part
 * of dq, dk, dv) -> proj gradients -> sparse dq and dk/dv kernels (add their parts). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sla_cuda.h"
#include "sla_cuda_ext.h"
#include "sla_internal.cuh"

namespace {

/* ---- optional phase timing (SLA_CUDA_TIMING set: events between phases, printed at the end of
 * each call after a synchronisation; a diagnostic for benchmarks, never on in training) -------- */

struct PhaseTimer {
    bool on = false;
    int n = 0;
    cudaEvent_t ev[32] = {};
    const char *name[32] = {};
    const char *op = "";
    void begin(const char *opname) {
        on = getenv("SLA_CUDA_TIMING") != nullptr, n = 0, op = opname;
        mark("start");
    }
    void mark(const char *nm) {
        if (!on || n >= 32) return;
        if (!ev[n]) CUDA_CHECK(cudaEventCreate(&ev[n]));
        CUDA_CHECK(cudaEventRecord(ev[n], cuda_stream()));
        name[n++] = nm;
    }
    void end() {
        if (!on) return;
        CUDA_CHECK(cudaEventSynchronize(ev[n - 1]));
        float total = 0.f;
        fprintf(stderr, "[sla timing] %s:", op);
        for (int i = 1; i < n; i++) {
            float ms;
            CUDA_CHECK(cudaEventElapsedTime(&ms, ev[i - 1], ev[i]));
            total += ms;
            fprintf(stderr, " %s %.3f", name[i], ms);
        }
        fprintf(stderr, " | total %.3f ms\n", total);
    }
};
PhaseTimer g_timer;

/* ---- workspace -------------------------------------------------------------------------------- */

char *g_ws = nullptr;
size_t g_ws_size = 0;

void *ws_reserve(size_t bytes) {
    if (bytes <= g_ws_size) return g_ws;
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    CUDA_CHECK(cudaStreamIsCapturing(cuda_stream(), &cs));
    CHECK(cs == cudaStreamCaptureStatusNone,
          "SLA CUDA: the workspace must grow to %zu bytes during a graph capture; call the op once before capturing",
          bytes);
    if (g_ws) CUDA_CHECK(cudaFree(g_ws)); /* cudaFree waits for work that may still use it */
    g_ws = nullptr, g_ws_size = 0;
    cudaError_t err = cudaMalloc(&g_ws, bytes);
    CHECK(err == cudaSuccess, "SLA CUDA: cannot allocate a %zu-byte workspace: %s", bytes, cudaGetErrorString(err));
    g_ws_size = bytes;
    return g_ws;
}

/* Carves aligned pieces; with base == null it only measures. */
struct Bump {
    char *base = nullptr;
    size_t off = 0;
    template <typename T> T *take(size_t n) {
        size_t b = (n * sizeof(T) + 255) & ~(size_t)255;
        T *p = base ? reinterpret_cast<T *>(base + off) : nullptr;
        off += b;
        return p;
    }
};

/* The linear branch: active (some key block feeds it), or empty (complement with every block
 * critical or negligible: Ol = 0 and no gradient). */
struct LinMode {
    int active, all;
};

LinMode lin_mode(const sla_config_t *cfg, const sla_dims_t *d) {
    if (cfg->variant == SLA_VARIANT_ALL) return {1, 1};
    return {d->Tn - d->kappa - d->n_negl > 0, 0};
}

struct SlaWs {
    float *qbar, *ksum, *kbar, *scores;
    uint8_t *map;
    bf16 *mask;
    int *cnt, *tlut_off, *tlut_ent, *order;
    bf16 *wsplit;
    bf16 *hs;     /* [BH, sla_tn_pad(Tn), W] key block states; reused for [Abar_j | betabar_j] */
    bf16 *qs;     /* [BH, Tm, W] query block states; reused for [A_i | beta_i] */
    float *tot, *part, *colpart, *Ds, *Ds_exact;
    bf16 *cq, *ck, *cv, *cg; /* bf16 copies of fp32 inputs */
};

void ws_plan(Bump &b, SlaWs &w, const sla_dims_t *d, int conv) {
    size_t BH = (size_t)d->B * d->H, N = d->N, D = d->D, Tm = d->Tm, Tn = d->Tn, W = D * D + D;
    size_t nch = (size_t)lin_outer_nchunk(d->N);
    w.qbar = b.take<float>(BH * Tm * D);
    w.ksum = b.take<float>(BH * Tn * D);
    w.kbar = b.take<float>(BH * Tn * D);
    w.scores = b.take<float>(BH * Tm * Tn);
    w.map = b.take<uint8_t>(BH * Tm * Tn);
    w.mask = b.take<bf16>(BH * Tm * sla_tn_pad(d->Tn));
    w.cnt = b.take<int>(BH * Tn);
    w.tlut_off = b.take<int>(BH * (Tn + 1));
    w.tlut_ent = b.take<int>(BH * Tm * d->kappa);
    w.order = b.take<int>(BH * Tn);
    w.wsplit = b.take<bf16>(2 * D * D);
    w.hs = b.take<bf16>(BH * sla_tn_pad(d->Tn) * W);
    w.qs = b.take<bf16>(BH * Tm * W);
    w.tot = b.take<float>(BH * W);
    w.part = b.take<float>(BH * nch * D * D);
    w.colpart = b.take<float>(BH * nch * D);
    w.Ds = b.take<float>(BH * N);
    w.Ds_exact = b.take<float>(BH * N);
    size_t nconv = conv ? BH * N * D : 0;
    w.cq = b.take<bf16>(nconv), w.ck = b.take<bf16>(nconv), w.cv = b.take<bf16>(nconv), w.cg = b.take<bf16>(nconv);
}

SlaWs ws_get(const sla_dims_t *d, int conv) {
    SlaWs w;
    Bump b;
    ws_plan(b, w, d, conv);
    b.base = static_cast<char *>(ws_reserve(b.off));
    b.off = 0;
    ws_plan(b, w, d, conv);
    return w;
}

__global__ void f32_to_bf16_kernel(const float *x, bf16 *y, long n) {
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        y[i] = __float2bfloat16_rn(x[i]);
}

void f32_to_bf16_launch(const float *x, bf16 *y, long n) {
    f32_to_bf16_kernel<<<(unsigned)((n + 255) / 256 < 4096 ? (n + 255) / 256 : 4096), 256, 0, cuda_stream()>>>(x, y, n);
    CUDA_CHECK_LAUNCH();
}

/* The bf16 data of an input tensor: its own, or a converted copy in `scratch`. */
const bf16 *as_bf16(const tensor_t *t, bf16 *scratch, const char *op, const char *name) {
    CHECK(t->device == DEVICE_CUDA, "%s: %s must be on the GPU", op, name);
    if (t->dtype == DTYPE_BF16) return static_cast<const bf16 *>(t->data);
    CHECK(t->dtype == DTYPE_F32, "%s: %s is %s; the CUDA backend takes bfloat16 (or float32, converted)", op, name,
          dtype_name(t->dtype));
    CHECK(scratch, "%s: internal error: no conversion buffer for %s", op, name);
    f32_to_bf16_launch(static_cast<const float *>(t->data), scratch, tensor_numel(t));
    return scratch;
}

void expect_dtype(const char *op, const char *name, const tensor_t *t, dtype_t want) {
    CHECK(t->device == DEVICE_CUDA && t->dtype == want, "%s: %s must be a %s tensor on the GPU (got %s on %s)", op,
          name, dtype_name(want), dtype_name(t->dtype), device_name(t->device));
}

void check_sla_dims(const char *op, const sla_dims_t *d) {
    CHECK(d->D == 64 || d->D == 128, "%s: head dim %d unsupported by the CUDA backend (64 or 128)", op, d->D);
    CHECK(d->blk_q == 64 || d->blk_q == 128, "%s: blk_q = %d unsupported by the CUDA backend (64 or 128)", op,
          d->blk_q);
    CHECK(d->blk_k == 64 || d->blk_k == 128, "%s: blk_k = %d unsupported by the CUDA backend (64 or 128)", op,
          d->blk_k);
}

int any_f32(const tensor_t *a, const tensor_t *b, const tensor_t *c, const tensor_t *e) {
    return a->dtype == DTYPE_F32 || b->dtype == DTYPE_F32 || c->dtype == DTYPE_F32 || (e && e->dtype == DTYPE_F32);
}

LinParams lin_params(const sla_config_t *cfg, const sla_dims_t *d, const LinMode &lm) {
    LinParams p;
    memset(&p, 0, sizeof p);
    p.tpb = d->blk_k / 64;
    p.N = d->N, p.Tm = d->Tm, p.Tn = d->Tn;
    p.feature = (int)cfg->feature, p.all = lm.all, p.empty = !lm.active;
    return p;
}

/* From the key block states in w.hs: per query block states [H_i | Z_i] into qs (complement) or
 * the totals into tot ("all"). */
void lin_query_states(const sla_dims_t *d, const LinMode &lm, const SlaWs &w, bf16 *qs, float *tot) {
    const int BH = d->B * d->H;
    const long W = (long)d->D * d->D + d->D;
    const int Tnp = sla_tn_pad(d->Tn);
    if (Tnp > d->Tn) /* hs's rows past Tn: zero, for the GEMM's padded products and the totals */
        CUDA_CHECK(cudaMemset2DAsync(w.hs + (long)d->Tn * W, (size_t)Tnp * W * sizeof(bf16), 0,
                                     (size_t)(Tnp - d->Tn) * W * sizeof(bf16), BH, cuda_stream()));
    if (lm.all) lin_reduce_bf16_launch(w.hs, tot, BH, Tnp, W);
    else lin_mask_gemm(w.hs, w.mask, qs, BH, d->Tm, d->Tn, W, 0);
    g_timer.mark("state_gemm");
}

} // namespace

/* saved.extra: the per query block states (bf16) or, for the "all" variant, the fp32 totals. */
extern "C" size_t sla_cuda_extra_bytes(const sla_dims_t *d) {
    const size_t BH = (size_t)d->B * d->H, W = (size_t)d->D * d->D + d->D;
    const size_t rows = BH * d->Tm * W * sizeof(bf16), tot = BH * W * sizeof(float);
    return rows > tot ? rows : tot;
}

namespace {
/* saved.extra as the states' storage, checked against the size this backend asked for. */
void *saved_states(const char *op, const sla_dims_t *d, const sla_saved_t *saved) {
    const size_t have = (size_t)tensor_numel(&saved->extra) * 4;
    CHECK(have >= sla_cuda_extra_bytes(d) && saved->extra.dtype == DTYPE_I32,
          "%s: saved.extra holds %zu bytes, the CUDA backend needs %zu (allocate saved with sla_saved_alloc or "
          "sla_saved_describe for the cuda device)",
          op, have, sla_cuda_extra_bytes(d));
    return saved->extra.data;
}
} // namespace

extern "C" size_t sla_cuda_workspace_bytes(void) { return g_ws_size; }

extern "C" void sla_select_cuda(const sla_config_t *cfg, const sla_dims_t *d, const tensor_t *q, const tensor_t *k,
                                int lut_given, sla_saved_t *saved) {
    const char *op = "sla_select_cuda";
    check_sla_dims(op, d);
    SlaWs w = ws_get(d, q->dtype == DTYPE_F32 || k->dtype == DTYPE_F32);
    const bf16 *qb = as_bf16(q, w.cq, op, "q"), *kb = as_bf16(k, w.ck, op, "k");
    sla_select_launch(qb, kb, d->B * d->H, d->N, d->D, d->blk_q, d->blk_k, d->Tm, d->Tn, d->kappa, d->n_negl,
                      lut_given, static_cast<int *>(saved->lut.data), static_cast<int *>(saved->neg.data),
                      (int)saved->neg.shape[3], w.qbar, w.ksum, w.kbar, w.scores);
}

extern "C" int sla_select_map_cuda(const sla_dims_t *d, const tensor_t *q, const tensor_t *k, int fused, void *lut,
                                   void *map, void *mask) {
    const char *op = "sla_select_map_cuda";
    check_sla_dims(op, d);
    CHECK(d->n_negl == 0 && lut && map, "%s: needs n_negl = 0 (got %d), lut and map", op, d->n_negl);
    if (fused && !sla_select_fused_ok(d->D, d->blk_k, d->Tn, d->kappa, 0, 0)) return 0;
    SlaWs w = ws_get(d, q->dtype == DTYPE_F32 || k->dtype == DTYPE_F32);
    const bf16 *qb = as_bf16(q, w.cq, op, "q"), *kb = as_bf16(k, w.ck, op, "k");
    const int BH = d->B * d->H;
    int *l = static_cast<int *>(lut);
    uint8_t *m = static_cast<uint8_t *>(map);
    bf16 *mk = static_cast<bf16 *>(mask);
    sla_pool_launch(qb, kb, BH, d->N, d->D, d->blk_q, d->blk_k, d->Tm, d->Tn, w.qbar, w.ksum, fused ? nullptr : w.kbar);
    if (fused) {
        sla_pool_q_kbar_t_launch(nullptr, w.ksum, BH, d->N, d->D, d->blk_q, d->blk_k, d->Tm, d->Tn, w.qbar, w.kbar);
        sla_select_fused_launch(w.qbar, w.kbar, BH, d->D, d->blk_k, d->Tm, d->Tn, d->kappa, l, m, mk, d->Tn);
    } else {
        sla_scores_launch(w.qbar, w.kbar, BH, d->D, d->Tm, d->Tn, w.scores);
        sla_topk_launch(w.scores, BH, d->Tm, d->Tn, d->kappa, 0, 0, l, nullptr, 0, fused == 0);
        sla_rowmap_launch(l, nullptr, 0, BH, d->Tm, d->Tn, d->kappa, 0, m, mk, d->Tn);
    }
    return 1;
}

extern "C" void sla_forward_cuda(const sla_config_t *cfg, const sla_dims_t *d, const tensor_t *q, const tensor_t *k,
                                 const tensor_t *v, const tensor_t *proj_w, const tensor_t *proj_b, int lut_given,
                                 tensor_t *o, sla_saved_t *saved) {
    const char *op = "sla_forward (cuda)";
    check_sla_dims(op, d);
    expect_dtype(op, "o", o, DTYPE_BF16);
    expect_dtype(op, "saved.os", &saved->os, DTYPE_BF16);
    expect_dtype(op, "saved.ol", &saved->ol, DTYPE_BF16);
    expect_dtype(op, "saved.lse", &saved->lse, DTYPE_F32);
    expect_dtype(op, "saved.lut", &saved->lut, DTYPE_I32);
    expect_dtype(op, "saved.neg", &saved->neg, DTYPE_I32);
    expect_dtype(op, "proj_w", proj_w, DTYPE_F32);
    expect_dtype(op, "proj_b", proj_b, DTYPE_F32);
    const int BH = d->B * d->H;
    LinMode lm = lin_mode(cfg, d);
    SlaWs w = ws_get(d, any_f32(q, k, v, nullptr));
    const bf16 *qb = as_bf16(q, w.cq, op, "q"), *kb = as_bf16(k, w.ck, op, "k"), *vb = as_bf16(v, w.cv, op, "v");
    int *lut = static_cast<int *>(saved->lut.data), *neg = static_cast<int *>(saved->neg.data);
    const int neg_ld = (int)saved->neg.shape[3];

    g_timer.begin("forward");
    /* The linear branch's key block states first: that pass also sums K for the selection and splits
     * the proj weight (W^T for the flash epilogue's products, W for lin_fwd's). */
    const bool fused = flash_forward_fuses_linear(d->D, d->blk_q);
    if (lm.active)
        lin_state_launch(kb, vb, w.hs, w.ksum, BH, d->N, d->D, d->blk_k, d->Tn, (int)cfg->feature,
                         static_cast<const float *>(proj_w->data), w.wsplit, fused);
    g_timer.mark("states");
    /* The common case: the Q pooling with mu and kbar, then scores, top-k and the marginal mask in
     * one kernel (no scores buffer, no rowmap launch below). The forward's map is not written:
     * nothing reads it (the backward rebuilds map from lut). */
    const bool fused_sel = lm.active && sla_select_fused_ok(d->D, d->blk_k, d->Tn, d->kappa, d->n_negl, lut_given);
    if (fused_sel) /* kbarT [BH, D, Tn] in w.kbar */
        sla_pool_q_kbar_t_launch(qb, w.ksum, BH, d->N, d->D, d->blk_q, d->blk_k, d->Tm, d->Tn, w.qbar, w.kbar);
    else
        sla_pool_launch(qb, lm.active ? nullptr : kb, BH, d->N, d->D, d->blk_q, d->blk_k, d->Tm, d->Tn, w.qbar, w.ksum,
                        w.kbar);
    g_timer.mark("pool");
    if (fused_sel) {
        sla_select_fused_launch(w.qbar, w.kbar, BH, d->D, d->blk_k, d->Tm, d->Tn, d->kappa, lut, nullptr,
                                lm.all ? nullptr : w.mask, sla_tn_pad(d->Tn));
        g_timer.mark("select");
    } else {
        sla_scores_launch(w.qbar, w.kbar, BH, d->D, d->Tm, d->Tn, w.scores);
        g_timer.mark("scores");
        sla_topk_launch(w.scores, BH, d->Tm, d->Tn, d->kappa, d->n_negl, lut_given, lut, neg, neg_ld);
        g_timer.mark("topk");
    }

    /* The linear branch's states; its output and the proj run in the flash kernel's epilogue when
     * that kernel can (the wgmma forward), else in lin_fwd before it. */
    const long W = (long)d->D * d->D + d->D;
    void *states = lm.active ? saved_states(op, d, saved) : nullptr;
    LinParams lp = lin_params(cfg, d, lm);
    lp.q = qb, lp.v = vb, lp.cstate = static_cast<bf16 *>(states), lp.tot = static_cast<float *>(states);
    lp.W = static_cast<const float *>(proj_w->data), lp.b = static_cast<const float *>(proj_b->data);
    lp.ol = static_cast<bf16 *>(saved->ol.data), lp.o = static_cast<bf16 *>(o->data);
    lp.Wsplit = w.wsplit;
    if (lm.active) {
        if (!lm.all && !fused_sel) {
            sla_rowmap_launch(lut, neg, neg_ld, BH, d->Tm, d->Tn, d->kappa, d->n_negl, w.map, w.mask,
                              sla_tn_pad(d->Tn));
            g_timer.mark("rowmap");
        }
        lin_query_states(d, lm, w, static_cast<bf16 *>(states), static_cast<float *>(states));
        if (fused && lm.all) f32_to_bf16_launch(lp.tot, w.hs, BH * W); /* the totals as one bf16 state row per head */
    }
    if (!fused) lin_forward_launch(lp, BH, d->D, d->blk_q);
    g_timer.mark("lin_fwd");

    FlashParams fp;
    memset(&fp, 0, sizeof fp);
    fp.q = qb, fp.k = kb, fp.v = vb;
    fp.o = static_cast<bf16 *>(o->data), fp.os = static_cast<bf16 *>(saved->os.data);
    fp.lse_out = static_cast<float *>(saved->lse.data);
    fp.lut = lut, fp.kappa = d->kappa, fp.tpb = d->blk_k / 64, fp.Tq = d->Tm;
    fp.Nq = d->N, fp.Nk = d->N, fp.add = !fused;
    if (fused) {
        fp.lin = lm.active ? 1 : 2, fp.lin_feature = (int)cfg->feature, fp.lin_all = lm.all;
        fp.lin_R = lm.all ? 1 : d->Tm;
        fp.lin_rows = lm.all ? w.hs : lp.cstate, fp.lin_ztot = lm.all ? lp.tot : nullptr;
        fp.lin_wt = w.wsplit, fp.lin_b = lp.b, fp.ol = lp.ol;
    }
    flash_forward(fp, BH, d->D, d->blk_q);
    g_timer.mark("flash_fwd");
    g_timer.end();
}

extern "C" void sla_backward_cuda(const sla_config_t *cfg, const sla_dims_t *d, const tensor_t *q, const tensor_t *k,
                                  const tensor_t *v, const tensor_t *proj_w, const sla_saved_t *saved,
                                  const tensor_t *dout, tensor_t *dq, tensor_t *dk, tensor_t *dv, tensor_t *dproj_w,
                                  tensor_t *dproj_b) {
    const char *op = "sla_backward (cuda)";
    check_sla_dims(op, d);
    expect_dtype(op, "dq", dq, DTYPE_BF16);
    expect_dtype(op, "dk", dk, DTYPE_BF16);
    expect_dtype(op, "dv", dv, DTYPE_BF16);
    expect_dtype(op, "saved.os", &saved->os, DTYPE_BF16);
    expect_dtype(op, "saved.ol", &saved->ol, DTYPE_BF16);
    expect_dtype(op, "saved.lse", &saved->lse, DTYPE_F32);
    expect_dtype(op, "proj_w", proj_w, DTYPE_F32);
    expect_dtype(op, "dproj_w", dproj_w, DTYPE_F32);
    expect_dtype(op, "dproj_b", dproj_b, DTYPE_F32);
    const int BH = d->B * d->H, D = d->D;
    const long W = (long)D * D + D;
    LinMode lm = lin_mode(cfg, d);
    SlaWs w = ws_get(d, any_f32(q, k, v, dout));
    const bf16 *qb = as_bf16(q, w.cq, op, "q"), *kb = as_bf16(k, w.ck, op, "k"), *vb = as_bf16(v, w.cv, op, "v");
    const bf16 *gb = as_bf16(dout, w.cg, op, "dout");
    const int *lut = static_cast<const int *>(saved->lut.data), *neg = static_cast<const int *>(saved->neg.data);
    const int neg_ld = (int)saved->neg.shape[3];
    const bf16 *os = static_cast<const bf16 *>(saved->os.data), *ol = static_cast<const bf16 *>(saved->ol.data);
    bf16 *dqb = static_cast<bf16 *>(dq->data), *dkb = static_cast<bf16 *>(dk->data), *dvb = static_cast<bf16 *>(dv->data);

    /* Critical blocks transposed (for dK/dV) and the marginal mask. */
    g_timer.begin("backward");
    sla_rowmap_launch(lut, neg, neg_ld, BH, d->Tm, d->Tn, d->kappa, d->n_negl, w.map,
                      lm.active && !lm.all ? w.mask : nullptr, sla_tn_pad(d->Tn));
    g_timer.mark("rowmap");
    sla_collist_launch(w.map, BH, d->Tm, d->Tn, 0, w.cnt, w.tlut_off, w.tlut_ent, (long)d->Tm * d->kappa);
    sla_order_launch(w.tlut_off, BH, d->Tn, w.order);
    g_timer.mark("tlist");
    flash_bwd_prep(gb, os, w.Ds, (long)BH * d->N, D);
    g_timer.mark("prep");

    if (lm.active) {
        void *states = saved_states(op, d, saved); /* the forward's [H_i | Z_i] or totals */
        LinParams lp = lin_params(cfg, d, lm);
        lp.q = qb, lp.k = kb, lp.v = vb, lp.dout = gb, lp.ol_in = ol;
        lp.W = static_cast<const float *>(proj_w->data), lp.Wsplit = w.wsplit;
        lin_w_split_launch(lp.W, w.wsplit, D, 0);
        lp.cstate = static_cast<const bf16 *>(states), lp.tot = static_cast<const float *>(states), lp.astack = w.qs;
        lp.dq = dqb, lp.dk = dkb, lp.dv = dvb;
        lin_backward_q_launch(lp, BH, D, d->blk_q);
        g_timer.mark("lin_bwd_q");
        if (lm.all) lin_reduce_bf16_launch(w.qs, w.tot, BH, d->Tm, W);
        else lin_mask_gemm(w.qs, w.mask, w.hs, BH, d->Tm, d->Tn, W, 1);
        g_timer.mark("grad_gemm");
        lp.cstate = w.hs, lp.tot = w.tot;
        lin_backward_k_launch(lp, BH, D);
        g_timer.mark("lin_bwd_k");
    }

    /* Proj: dW = sum dout^T Ol, db = sum dout, over every row of every head. */
    int nch = lin_outer_launch(gb, ol, BH, d->N, D, w.part, w.colpart);
    lin_reduce_launch(w.part, static_cast<float *>(dproj_w->data), 1, BH * nch, (long)D * D);
    lin_reduce_launch(w.colpart, static_cast<float *>(dproj_b->data), 1, BH * nch, D);
    g_timer.mark("proj_grads");

    FlashParams fp;
    memset(&fp, 0, sizeof fp);
    fp.q = qb, fp.k = kb, fp.v = vb, fp.dout = gb;
    fp.lse = static_cast<const float *>(saved->lse.data), fp.Ds = w.Ds, fp.Ds_exact = w.Ds_exact;
    fp.dq = dqb, fp.dk = dkb, fp.dv = dvb;
    fp.lut = lut, fp.kappa = d->kappa, fp.tpb = d->blk_k / 64, fp.Tq = d->Tm;
    fp.toff = w.tlut_off, fp.tent = w.tlut_ent, fp.tent_stride = (long)d->Tm * d->kappa;
    fp.spb = d->blk_q / 64, fp.Tk = d->Tn, fp.order = w.order;
    fp.Nq = d->N, fp.Nk = d->N, fp.add = lm.active;
    flash_backward_dq(fp, BH, D, d->blk_q);
    g_timer.mark("flash_dq");
    flash_backward_dkdv(fp, BH, D);
    g_timer.mark("flash_dkdv");
    g_timer.end();
}

/* ---- dense attention ---------------------------------------------------------------------------- */

namespace {
struct AttnWs {
    float *Ds, *Ds_exact;
    bf16 *cq, *ck, *cv, *cg, *co;
    float *kv_part; /* dK/dV query-split partials (backward) */
};
AttnWs attn_ws(long BH, long Nq, long Nk, long D, int conv, int qsplit) {
    AttnWs w;
    Bump b;
    for (int pass = 0; pass < 2; pass++) {
        b.off = 0;
        w.kv_part = b.take<float>(qsplit > 1 ? (long)qsplit * 2 * BH * Nk * D : 0);
        w.Ds = b.take<float>(BH * Nq);
        w.Ds_exact = b.take<float>(BH * Nq);
        w.cq = b.take<bf16>(conv ? BH * Nq * D : 0), w.cg = b.take<bf16>(conv ? BH * Nq * D : 0);
        w.co = b.take<bf16>(conv ? BH * Nq * D : 0);
        w.ck = b.take<bf16>(conv ? BH * Nk * D : 0), w.cv = b.take<bf16>(conv ? BH * Nk * D : 0);
        if (pass == 0) b.base = static_cast<char *>(ws_reserve(b.off));
    }
    return w;
}
} // namespace

extern "C" void attn_forward_cuda(const tensor_t *q, const tensor_t *k, const tensor_t *v, tensor_t *o, tensor_t *lse) {
    const char *op = "attn_forward (cuda)";
    const int B = (int)q->shape[0], H = (int)q->shape[1], Nq = (int)q->shape[2], Nk = (int)k->shape[2];
    const int D = (int)q->shape[3];
    CHECK(D == 64 || D == 128, "%s: head dim %d unsupported by the CUDA backend (64 or 128)", op, D);
    expect_dtype(op, "o", o, DTYPE_BF16);
    expect_dtype(op, "lse", lse, DTYPE_F32);
    AttnWs w = attn_ws((long)B * H, Nq, Nk, D, any_f32(q, k, v, nullptr), 1);
    FlashParams fp;
    memset(&fp, 0, sizeof fp);
    fp.q = as_bf16(q, w.cq, op, "q"), fp.k = as_bf16(k, w.ck, op, "k"), fp.v = as_bf16(v, w.cv, op, "v");
    fp.o = static_cast<bf16 *>(o->data), fp.lse_out = static_cast<float *>(lse->data);
    fp.Nq = Nq, fp.Nk = Nk;
    flash_forward(fp, B * H, D, 128);
}

extern "C" void attn_backward_cuda(const tensor_t *q, const tensor_t *k, const tensor_t *v, const tensor_t *o,
                                   const tensor_t *lse, const tensor_t *dout, tensor_t *dq, tensor_t *dk, tensor_t *dv) {
    const char *op = "attn_backward (cuda)";
    const int B = (int)q->shape[0], H = (int)q->shape[1], Nq = (int)q->shape[2], Nk = (int)k->shape[2];
    const int D = (int)q->shape[3];
    CHECK(D == 64 || D == 128, "%s: head dim %d unsupported by the CUDA backend (64 or 128)", op, D);
    expect_dtype(op, "lse", lse, DTYPE_F32);
    expect_dtype(op, "dq", dq, DTYPE_BF16);
    expect_dtype(op, "dk", dk, DTYPE_BF16);
    expect_dtype(op, "dv", dv, DTYPE_BF16);
    const int qsplit = flash_dkdv_splits(B * H, Nq, Nk);
    AttnWs w = attn_ws((long)B * H, Nq, Nk, D, any_f32(q, k, v, dout) || o->dtype == DTYPE_F32, qsplit);
    FlashParams fp;
    memset(&fp, 0, sizeof fp);
    fp.q = as_bf16(q, w.cq, op, "q"), fp.k = as_bf16(k, w.ck, op, "k"), fp.v = as_bf16(v, w.cv, op, "v");
    fp.dout = as_bf16(dout, w.cg, op, "dout");
    const bf16 *ob = as_bf16(o, w.co, op, "o");
    flash_bwd_prep(fp.dout, ob, w.Ds, (long)B * H * Nq, D);
    fp.lse = static_cast<const float *>(lse->data), fp.Ds = w.Ds, fp.Ds_exact = w.Ds_exact;
    fp.dq = static_cast<bf16 *>(dq->data), fp.dk = static_cast<bf16 *>(dk->data), fp.dv = static_cast<bf16 *>(dv->data);
    fp.Nq = Nq, fp.Nk = Nk, fp.qsplit = qsplit, fp.kv_part = w.kv_part;
    flash_backward_dq(fp, B * H, D, 128);
    flash_backward_dkdv(fp, B * H, D);
}
