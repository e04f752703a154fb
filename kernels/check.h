/* kernels/check.h — fail-fast checks for compute paths.
 *
 * CHECK(cond, fmt, ...) prints "error: <message> (check `cond` failed at file:line)" to stderr and
 * exits with status 1. Use it where the caller cannot do better than stop (a failed allocation
 * inside a step, a shape that the op's caller already promised). Where the caller can do better
 * (files, configs, CLI values), return a status with a message instead. */
#ifndef SLA_CHECK_H
#define SLA_CHECK_H

#ifdef __cplusplus
extern "C" {
#endif

void check_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (!(cond)) check_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);        \
    } while (0)

/* For functions that return a status with a sentence: writes the message into err (when err is
 * not NULL) and returns -1, so that `return set_error(err, errlen, "...", ...);` reads as one step. */
int set_error(char *err, unsigned long errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* malloc/calloc that never return NULL (they CHECK). */
void *xmalloc(unsigned long bytes);
void *xcalloc(unsigned long count, unsigned long size);

#ifdef __cplusplus
}
#endif
#endif
