/* tests/test_attention_cpu.c — dense attention on the CPU (label cpu): the forward against the
 * naive formula softmax(q k^T / sqrt(D)) v with Nq != Nk, and the backward against central finite
 * differences of L = sum(G * O) along a random direction per input and on sampled elements. */
#include <stdlib.h>
#include <string.h>

#include "cpu/sla_cpu.h"
#include "test_util.h"

enum { B = 2, H = 2, NQ = 23, NK = 41, D = 8 };

static double q[B * H * NQ * D], k[B * H * NK * D], v[B * H * NK * D], g[B * H * NQ * D];

static double loss(void) {
    static double o[B * H * NQ * D], lse[B * H * NQ];
    attn_forward_f64(B, H, NQ, NK, D, q, k, v, o, lse);
    double l = 0;
    for (int i = 0; i < B * H * NQ * D; i++) l += g[i] * o[i];
    return l;
}

int main(void) {
    test_rng_t r = {42};
    fill_normal_f64(&r, q, B * H * NQ * D, 1.0);
    fill_normal_f64(&r, k, B * H * NK * D, 1.0);
    fill_normal_f64(&r, v, B * H * NK * D, 1.0);
    fill_normal_f64(&r, g, B * H * NQ * D, 1.0);
    static double o[B * H * NQ * D], lse[B * H * NQ];
    attn_forward_f64(B, H, NQ, NK, D, q, k, v, o, lse);

    double worst = 0, worst_lse = 0;
    for (int bh = 0; bh < B * H; bh++)
        for (int i = 0; i < NQ; i++) {
            double s[NK], m = -INFINITY, sum = 0;
            for (int j = 0; j < NK; j++) {
                s[j] = 0;
                for (int a = 0; a < D; a++) s[j] += q[(bh * NQ + i) * D + a] * k[(bh * NK + j) * D + a] / sqrt(D);
                m = fmax(m, s[j]);
            }
            for (int j = 0; j < NK; j++) sum += exp(s[j] - m);
            worst_lse = fmax(worst_lse, fabs(m + log(sum) - lse[bh * NQ + i]));
            for (int e = 0; e < D; e++) {
                double acc = 0;
                for (int j = 0; j < NK; j++) acc += exp(s[j] - m) / sum * v[(bh * NK + j) * D + e];
                worst = fmax(worst, fabs(acc - o[(bh * NQ + i) * D + e]));
            }
        }
    EXPECT(worst <= 1e-13 && worst_lse <= 1e-13, "forward vs naive: o %.2e, lse %.2e", worst, worst_lse);
    printf("forward vs naive formula: o %.1e, lse %.1e\n", worst, worst_lse);

    static double dq[B * H * NQ * D], dk[B * H * NK * D], dv[B * H * NK * D];
    attn_backward_f64(B, H, NQ, NK, D, q, k, v, o, lse, g, dq, dk, dv);
    double *in[3] = {q, k, v}, *gr[3] = {dq, dk, dv};
    long n[3] = {B * H * NQ * D, B * H * NK * D, B * H * NK * D};
    const char *names[3] = {"q", "k", "v"};
    const double eps = 1e-5;
    for (int t = 0; t < 3; t++) {
        double *u = malloc(sizeof(double) * n[t]);
        fill_normal_f64(&r, u, n[t], 1.0);
        double ana = 0;
        for (long i = 0; i < n[t]; i++) ana += gr[t][i] * u[i], in[t][i] += eps * u[i];
        double lp = loss();
        for (long i = 0; i < n[t]; i++) in[t][i] -= 2 * eps * u[i];
        double lm = loss();
        for (long i = 0; i < n[t]; i++) in[t][i] += eps * u[i];
        double fd = (lp - lm) / (2 * eps), rel = fabs(fd - ana) / fabs(fd);
        EXPECT(rel <= 1e-7, "d%s: analytic %.12g vs finite difference %.12g", names[t], ana, fd);
        double gmax = max_abs_f64(gr[t], n[t]), we = 0;
        for (int s = 0; s < 10; s++) {
            long i = (long)(rng_uniform(&r) * n[t]);
            double x = in[t][i];
            in[t][i] = x + eps;
            double a = loss();
            in[t][i] = x - eps;
            double b = loss();
            in[t][i] = x;
            we = fmax(we, fabs((a - b) / (2 * eps) - gr[t][i]) / gmax);
        }
        EXPECT(we <= 2e-8, "d%s: element error %.2e of max |grad|", names[t], we);
        printf("d%s: directional rel err %.1e, worst element %.1e\n", names[t], rel, we);
        free(u);
    }
    return test_summary("test_attention_cpu");
}
