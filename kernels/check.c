/* kernels/check.c — implementation of the CHECK failure path and checked allocation. */
#include "check.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void check_fail(const char *file, int line, const char *cond, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (check `%s` failed at %s:%d)\n", cond, file, line);
    exit(1);
}

int set_error(char *err, unsigned long errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void *xmalloc(unsigned long bytes) {
    void *p = malloc(bytes ? bytes : 1);
    CHECK(p != NULL, "out of host memory allocating %lu bytes", bytes);
    return p;
}

void *xcalloc(unsigned long count, unsigned long size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    CHECK(p != NULL, "out of host memory allocating %lu x %lu bytes", count, size);
    return p;
}
