/* tests/test_util.h — small helpers shared by the test programs: a seeded RNG, error metrics and
 * a pass/fail tally. Header-only (static functions); each test is one executable.
 *
 * Usage: EXPECT(cond, fmt, ...) records a failure with a message and goes on; test_summary()
 * prints the tally and returns the process exit code (0 only when nothing failed). */
#ifndef SLA_TEST_UTIL_H
#define SLA_TEST_UTIL_H

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int test_failures_ = 0, test_checks_ = 0;

#define EXPECT(cond, ...)                                                       \
    do {                                                                        \
        test_checks_++;                                                         \
        if (!(cond)) {                                                          \
            test_failures_++;                                                   \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
        }                                                                       \
    } while (0)

static inline int test_summary(const char *name) {
    printf("%s: %d checks, %d failed\n", name, test_checks_, test_failures_);
    return test_failures_ ? 1 : 0;
}

/* splitmix64: deterministic, seedable, good enough for test data. */
typedef struct test_rng {
    uint64_t s;
} test_rng_t;

static inline uint64_t rng_next(test_rng_t *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static inline double rng_uniform(test_rng_t *r) { return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

/* Standard normal (Box-Muller). */
static inline double rng_normal(test_rng_t *r) {
    double u = rng_uniform(r), v = rng_uniform(r);
    return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

static inline void fill_normal_f64(test_rng_t *r, double *x, long n, double scale) {
    for (long i = 0; i < n; i++) x[i] = scale * rng_normal(r);
}

static inline void fill_normal_f32(test_rng_t *r, float *x, long n, double scale) {
    for (long i = 0; i < n; i++) x[i] = (float)(scale * rng_normal(r));
}

/* max |a - b| / max(max |b|, tiny): relative to the reference's scale. */
static inline double max_rel_err_f64(const double *a, const double *b, long n) {
    double e = 0.0, m = 1e-300;
    for (long i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]);
        if (!(d <= e)) e = d; /* NaN propagates */
        if (fabs(b[i]) > m) m = fabs(b[i]);
    }
    return e / m;
}

static inline double max_abs_f64(const double *a, long n) {
    double m = 0.0;
    for (long i = 0; i < n; i++)
        if (!(fabs(a[i]) <= m)) m = fabs(a[i]);
    return m;
}

/* A new scratch directory /tmp/<prefix>_XXXXXX, its path in dir[len]; exits when it cannot. */
static inline void test_make_dir(char *dir, size_t len, const char *prefix) {
    snprintf(dir, len, "/tmp/%s_XXXXXX", prefix);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
}

/* Removes the files directly in dir, then dir itself (the tests' scratch directories are flat). */
static inline void test_remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[1024];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    if (d) closedir(d);
    rmdir(dir);
}

#endif
