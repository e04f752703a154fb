/* kernels/cpu/attention_core.h — softmax attention of a tile of query rows against a gathered set
 * of keys, in fp64: the one kernel that both dense attention and SLA's sparse branch use on the
 * CPU. Internal to kernels/cpu/.
 *
 * Layouts (row-major doubles): q, o, dout, dq [nr, D]; k, v, dk, dv [nk, D]; kt, vt [D, nk] are
 * k and v transposed (the caller transposes once per gathered key set, so the inner loops run
 * over contiguous memory and vectorise); lse [nr] natural log; work [nr * nk] scratch. */
#ifndef SLA_ATTENTION_CORE_H
#define SLA_ATTENTION_CORE_H

/* o and lse overwritten. */
void attn_core_forward(int nr, int nk, int D, double scale, const double *q, const double *kt, const double *v,
                       double *o, double *lse, double *work);

/* dq overwritten; dk and dv accumulated (+=). o and lse are the forward's. */
void attn_core_backward(int nr, int nk, int D, double scale, const double *q, const double *k, const double *kt,
                        const double *vt, const double *o, const double *lse, const double *dout, double *dq,
                        double *dk, double *dv, double *work);

/* dst [cols, rows] = src [rows, cols] transposed. */
void transpose_f64(int rows, int cols, const double *src, double *dst);

/* fp32 tensor data <-> freshly allocated / existing double arrays. */
double *f64_from_f32(const float *src, long n);
void f32_from_f64(float *dst, const double *src, long n);

#endif
