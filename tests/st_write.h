/* tests/st_write.h — writes small safetensors files for the tests (header-only; no dependency).
 *
 * st_writer_t collects tensors: stw_add(w, name, dtype "BF16"|"F16"|"F32"|anything, ndim, shape,
 * bytes, nbytes) appends a header entry with data_offsets [end of data, + nbytes] and the bytes;
 * stw_raw_entry appends a header entry verbatim (for malformed headers) and stw_raw_data raw
 * bytes. stw_bytes returns the whole file (8-byte length, header, data) in a malloc'ed buffer;
 * stw_save writes it to a path. stw_values converts float32 values to a dtype's little-endian
 * bytes (bf16/f16 by round-to-nearest-even, as tensor.h). Aborts the test on allocation failure. */
#ifndef SLA_TEST_ST_WRITE_H
#define SLA_TEST_ST_WRITE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor.h"

typedef struct st_writer {
    char *json;
    size_t jlen;
    unsigned char *data;
    size_t dlen;
    int count;
} st_writer_t;

static void stw_append(char **buf, size_t *len, const void *src, size_t n) {
    char *p = realloc(*buf, *len + n + 1);
    if (!p) {
        fprintf(stderr, "st_write: out of memory\n");
        exit(1);
    }
    memcpy(p + *len, src, n);
    *len += n;
    p[*len] = '\0';
    *buf = p;
}

static void stw_raw_entry(st_writer_t *w, const char *entry) {
    if (w->count++) stw_append(&w->json, &w->jlen, ",", 1);
    stw_append(&w->json, &w->jlen, entry, strlen(entry));
}

static void stw_raw_data(st_writer_t *w, const void *bytes, size_t n) {
    stw_append((char **)&w->data, &w->dlen, bytes, n);
}

static void stw_add(st_writer_t *w, const char *name, const char *dtype, int ndim, const int64_t *shape,
                    const void *bytes, size_t nbytes) {
    char entry[4096];
    int n = snprintf(entry, sizeof entry, "\"%s\":{\"dtype\":\"%s\",\"shape\":[", name, dtype);
    for (int d = 0; d < ndim; d++) n += snprintf(entry + n, sizeof entry - (size_t)n, "%s%lld", d ? "," : "", (long long)shape[d]);
    snprintf(entry + n, sizeof entry - (size_t)n, "],\"data_offsets\":[%zu,%zu]}", w->dlen, w->dlen + nbytes);
    stw_raw_entry(w, entry);
    stw_raw_data(w, bytes, nbytes);
}

/* float32 values -> little-endian bytes of dtype ("F32", "BF16", "F16"); returns the byte count. */
static size_t stw_values(const char *dtype, const float *x, int64_t n, unsigned char *out) {
    for (int64_t i = 0; i < n; i++) {
        if (!strcmp(dtype, "F32")) {
            uint32_t u;
            memcpy(&u, &x[i], 4);
            for (int k = 0; k < 4; k++) out[4 * i + k] = (unsigned char)(u >> (8 * k));
        } else {
            uint16_t h = !strcmp(dtype, "BF16") ? f32_to_bf16(x[i]) : f32_to_f16(x[i]);
            out[2 * i] = (unsigned char)h, out[2 * i + 1] = (unsigned char)(h >> 8);
        }
    }
    return (size_t)n * (strcmp(dtype, "F32") ? 2 : 4);
}

/* The file's bytes: header length N (little-endian), "{" entries [, "__metadata__": meta] "}", data. */
static unsigned char *stw_bytes(const st_writer_t *w, const char *metadata, size_t *size) {
    char *hdr = NULL;
    size_t hlen = 0;
    stw_append(&hdr, &hlen, "{", 1);
    if (w->jlen) stw_append(&hdr, &hlen, w->json, w->jlen);
    if (metadata) {
        if (w->jlen) stw_append(&hdr, &hlen, ",", 1);
        stw_append(&hdr, &hlen, "\"__metadata__\":", 15);
        stw_append(&hdr, &hlen, metadata, strlen(metadata));
    }
    stw_append(&hdr, &hlen, "}", 1);
    *size = 8 + hlen + w->dlen;
    unsigned char *out = malloc(*size ? *size : 1);
    if (!out) {
        fprintf(stderr, "st_write: out of memory\n");
        exit(1);
    }
    for (int k = 0; k < 8; k++) out[k] = (unsigned char)((uint64_t)hlen >> (8 * k));
    memcpy(out + 8, hdr, hlen);
    if (w->dlen) memcpy(out + 8 + hlen, w->data, w->dlen);
    free(hdr);
    return out;
}

static void stw_write_file(const char *path, const void *bytes, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(bytes, 1, n, f) != n || fclose(f)) {
        fprintf(stderr, "st_write: cannot write %s\n", path);
        exit(1);
    }
}

static void stw_save(const st_writer_t *w, const char *path, const char *metadata) {
    size_t n;
    unsigned char *b = stw_bytes(w, metadata, &n);
    stw_write_file(path, b, n);
    free(b);
}

static void stw_free(st_writer_t *w) {
    free(w->json), free(w->data);
    memset(w, 0, sizeof *w);
}

#endif
