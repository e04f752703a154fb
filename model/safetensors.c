/* model/safetensors.c — the safetensors reader (safetensors.h): a strict JSON parser for exactly
 * the header's grammar (and a value skipper for the shard index), every length, extent and byte
 * offset checked before anything is allocated from it or read through it. The mapping of names
 * and the import into the parameter table are in weights_import.c. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "tensor.h"

#define JSON_MAX_DEPTH 32
#define ST_MAX_TENSORS (1 << 20)
#define ST_MAX_SHARDS 10000

/* ---- JSON --------------------------------------------------------------------------------- */

typedef struct json {
    const unsigned char *s;
    size_t n, i;
    size_t base; /* file offset of s[0], for messages */
    const char *label;
    const char *kind; /* "header" or "index" */
    char *err;
    size_t errlen;
} json_t;

static int json_fail(json_t *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int json_fail(json_t *j, const char *fmt, ...) {
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return set_error(j->err, j->errlen, "%s: malformed %s JSON at byte %zu: %s", j->label, j->kind, j->base + j->i, what);
}

/* The next non-blank character (not consumed), or -1 at the end. */
static int json_peek(json_t *j) {
    while (j->i < j->n && (j->s[j->i] == ' ' || j->s[j->i] == '\t' || j->s[j->i] == '\n' || j->s[j->i] == '\r'))
        j->i++;
    return j->i < j->n ? j->s[j->i] : -1;
}

static int json_expect(json_t *j, char c) {
    int got = json_peek(j);
    if (got < 0) return json_fail(j, "the header ends where '%c' was expected", c);
    if (got != c) return json_fail(j, "expected '%c'", c);
    j->i++;
    return 0;
}

/* Length of the valid UTF-8 sequence at p (at most avail bytes), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t avail) {
    unsigned c = p[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else return 0;
    if (avail < len) return 0;
    for (size_t k = 1; k < len; k++) {
        if ((p[k] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (p[k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static int hex4(json_t *j, uint32_t *v) {
    *v = 0;
    for (int k = 0; k < 4; k++, j->i++) {
        if (j->i >= j->n) return json_fail(j, "unterminated \\u escape");
        unsigned c = j->s[j->i];
        unsigned d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : 99;
        if (d > 15) return json_fail(j, "\\u needs four hex digits");
        *v = *v << 4 | d;
    }
    return 0;
}

static size_t utf8_encode(uint32_t cp, unsigned char *o) {
    if (cp < 0x80) return o[0] = (unsigned char)cp, 1;
    if (cp < 0x800) return o[0] = (unsigned char)(0xC0 | cp >> 6), o[1] = (unsigned char)(0x80 | (cp & 0x3F)), 2;
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | cp >> 12), o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | cp >> 18), o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F)), o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* One escape after the backslash: the code point it stands for (surrogate pairs joined). */
static int json_escape(json_t *j, uint32_t *cp) {
    if (j->i >= j->n) return json_fail(j, "unterminated string");
    unsigned char e = j->s[j->i++];
    const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
    const char *hit = e ? strchr(from, e) : NULL;
    if (hit) return *cp = (unsigned char)to[hit - from], 0;
    if (e != 'u') return json_fail(j, "invalid escape '\\%c'", e >= 0x20 && e < 0x7F ? e : '?');
    if (hex4(j, cp)) return -1;
    if (*cp >= 0xDC00 && *cp <= 0xDFFF) return json_fail(j, "a lone low surrogate in a \\u escape");
    if (*cp >= 0xD800 && *cp <= 0xDBFF) {
        uint32_t lo;
        if (j->i + 2 > j->n || j->s[j->i] != '\\' || j->s[j->i + 1] != 'u')
            return json_fail(j, "a high surrogate without its low surrogate");
        j->i += 2;
        if (hex4(j, &lo)) return -1;
        if (lo < 0xDC00 || lo > 0xDFFF) return json_fail(j, "a high surrogate without its low surrogate");
        *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    return 0;
}

/* A string, decoded into out [cap] (NUL-terminated) or only checked when out is NULL. */
static int json_string(json_t *j, char *out, size_t cap) {
    if (json_expect(j, '"')) return -1;
    size_t o = 0;
    for (;;) {
        if (j->i >= j->n) return json_fail(j, "unterminated string");
        unsigned char c = j->s[j->i], buf[4];
        const unsigned char *src = buf;
        size_t len;
        if (c == '"') {
            j->i++;
            break;
        }
        if (c < 0x20) return json_fail(j, "a control character (0x%02x) inside a string", c);
        if (c == '\\') {
            uint32_t cp = 0;
            j->i++;
            if (json_escape(j, &cp)) return -1;
            if (cp == 0 && out) return json_fail(j, "a NUL character (\\u0000) in a name");
            len = utf8_encode(cp, buf);
        } else {
            if (!(len = utf8_seq(j->s + j->i, j->n - j->i))) return json_fail(j, "invalid UTF-8");
            src = j->s + j->i;
            j->i += len;
        }
        if (out) {
            if (o + len >= cap) return json_fail(j, "a string longer than %zu bytes", cap - 1);
            memcpy(out + o, src, len);
        }
        o += len;
    }
    if (out) out[o] = '\0';
    return 0;
}

/* A non-negative integer without sign, fraction or exponent that fits in 64 bits. */
static int json_uint(json_t *j, uint64_t *v, const char *what) {
    int c = json_peek(j);
    if (c == '-') return json_fail(j, "%s is negative", what);
    if (c < '0' || c > '9') return json_fail(j, "expected a non-negative integer for %s", what);
    if (c == '0' && j->i + 1 < j->n && j->s[j->i + 1] >= '0' && j->s[j->i + 1] <= '9')
        return json_fail(j, "%s has a leading zero", what);
    *v = 0;
    while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9') {
        unsigned d = j->s[j->i] - '0';
        if (*v > (UINT64_MAX - d) / 10) return json_fail(j, "%s does not fit in 64 bits", what);
        *v = *v * 10 + d;
        j->i++;
    }
    if (j->i < j->n && (j->s[j->i] == '.' || j->s[j->i] == 'e' || j->s[j->i] == 'E'))
        return json_fail(j, "%s is not an integer", what);
    return 0;
}

static int json_skip_number(json_t *j) {
    if (j->s[j->i] == '-') j->i++;
    if (j->i >= j->n || j->s[j->i] < '0' || j->s[j->i] > '9') return json_fail(j, "invalid number");
    if (j->s[j->i] == '0') j->i++;
    else
        while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9') j->i++;
    if (j->i < j->n && j->s[j->i] == '.') {
        size_t d = ++j->i;
        while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9') j->i++;
        if (j->i == d) return json_fail(j, "invalid number");
    }
    if (j->i < j->n && (j->s[j->i] == 'e' || j->s[j->i] == 'E')) {
        j->i++;
        if (j->i < j->n && (j->s[j->i] == '+' || j->s[j->i] == '-')) j->i++;
        size_t d = j->i;
        while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9') j->i++;
        if (j->i == d) return json_fail(j, "invalid number");
    }
    return 0;
}

/* Any JSON value, checked and skipped. */
static int json_skip_value(json_t *j, int depth) {
    if (depth > JSON_MAX_DEPTH) return json_fail(j, "values nested deeper than %d levels", JSON_MAX_DEPTH);
    int c = json_peek(j);
    if (c == '"') return json_string(j, NULL, 0);
    if (c == '-' || (c >= '0' && c <= '9')) return json_skip_number(j);
    static const char *const literals[] = {"true", "false", "null"};
    for (int k = 0; k < 3; k++) {
        size_t len = strlen(literals[k]);
        if (c == literals[k][0]) {
            if (j->n - j->i < len || memcmp(j->s + j->i, literals[k], len)) return json_fail(j, "invalid literal");
            j->i += len;
            return 0;
        }
    }
    if (c != '{' && c != '[') return c < 0 ? json_fail(j, "the header ends where a value was expected")
                                           : json_fail(j, "expected a value");
    char close = c == '{' ? '}' : ']';
    j->i++;
    if (json_peek(j) == close) return j->i++, 0;
    for (;;) {
        if (close == '}' && (json_string(j, NULL, 0) || json_expect(j, ':'))) return -1;
        if (json_skip_value(j, depth + 1)) return -1;
        c = json_peek(j);
        if (c == close) return j->i++, 0;
        if (c != ',') return json_fail(j, "expected ',' or '%c'", close);
        j->i++;
    }
}

/* ---- the header --------------------------------------------------------------------------- */

static size_t st_dtype_size(st_dtype_t d) { return d == ST_F32 ? 4 : 2; }

const char *st_dtype_name(st_dtype_t d) { return d == ST_BF16 ? "BF16" : d == ST_F16 ? "F16" : "F32"; }

static int parse_dtype(json_t *j, st_tensor_t *t) {
    char buf[64];
    if (json_string(j, buf, sizeof buf)) return -1;
    for (int d = ST_BF16; d <= ST_F32; d++)
        if (!strcmp(buf, st_dtype_name((st_dtype_t)d))) return t->dtype = (st_dtype_t)d, 0;
    return set_error(j->err, j->errlen, "%s: tensor '%s' has dtype '%s'; expected BF16, F16 or F32", j->label, t->name, buf);
}

static int parse_shape(json_t *j, st_tensor_t *t) {
    if (json_expect(j, '[')) return -1;
    t->ndim = 0, t->numel = 1;
    if (json_peek(j) == ']') return j->i++, 0;
    for (;;) {
        uint64_t v;
        if (t->ndim == ST_MAX_DIMS)
            return set_error(j->err, j->errlen, "%s: tensor '%s' has more than %d dimensions", j->label, t->name, ST_MAX_DIMS);
        if (json_peek(j) == '-')
            return set_error(j->err, j->errlen, "%s: tensor '%s' has a negative extent in its shape", j->label, t->name);
        if (json_uint(j, &v, "an extent")) return -1;
        if (v > (uint64_t)ST_MAX_ELEMENTS || (v && t->numel > ST_MAX_ELEMENTS / (int64_t)v))
            return set_error(j->err, j->errlen, "%s: tensor '%s' has more than 2^34 elements (extent %llu)", j->label, t->name,
                        (unsigned long long)v);
        t->shape[t->ndim++] = (int64_t)v;
        t->numel *= (int64_t)v;
        int c = json_peek(j);
        if (c == ']') return j->i++, 0;
        if (c != ',') return json_fail(j, "expected ',' or ']' in the shape of '%s'", t->name);
        j->i++;
    }
}

static int parse_offsets(json_t *j, st_tensor_t *t) {
    if (json_expect(j, '[') || json_uint(j, &t->begin, "a data offset") || json_expect(j, ',') ||
        json_uint(j, &t->end, "a data offset"))
        return -1;
    if (json_peek(j) != ']')
        return json_fail(j, "data_offsets of '%s' must be exactly two integers [begin, end]", t->name);
    j->i++;
    return 0;
}

/* Offsets against the data block and the byte size against shape x dtype. */
static int check_extent(json_t *j, const st_tensor_t *t, uint64_t data_size) {
    unsigned long long b = t->begin, e = t->end, need = (unsigned long long)t->numel * st_dtype_size(t->dtype);
    if (b > e) return set_error(j->err, j->errlen, "%s: tensor '%s' has data_offsets [%llu, %llu] with begin after end", j->label, t->name, b, e);
    if (e > data_size)
        return set_error(j->err, j->errlen, "%s: tensor '%s' has data_offsets [%llu, %llu] past the end of the data block (%llu bytes)",
                    j->label, t->name, b, e, (unsigned long long)data_size);
    if (e - b != need)
        return set_error(j->err, j->errlen, "%s: tensor '%s' spans %llu bytes, but %d-D %s of %lld elements needs %llu", j->label,
                    t->name, e - b, t->ndim, st_dtype_name(t->dtype), (long long)t->numel, need);
    return 0;
}

/* {"dtype": ..., "shape": [...], "data_offsets": [b, e]}, each key exactly once. */
static int parse_entry(json_t *j, st_tensor_t *t, uint64_t data_size) {
    static const char *const keys[3] = {"dtype", "shape", "data_offsets"};
    int seen[3] = {0, 0, 0};
    if (json_expect(j, '{')) return -1;
    if (json_peek(j) != '}')
        for (;;) {
            char key[64];
            if (json_string(j, key, sizeof key) || json_expect(j, ':')) return -1;
            int k = 0;
            while (k < 3 && strcmp(key, keys[k])) k++;
            if (k == 3)
                return set_error(j->err, j->errlen, "%s: tensor '%s' has an unknown key '%s' (expected dtype, shape, data_offsets)",
                            j->label, t->name, key);
            if (seen[k]++) return set_error(j->err, j->errlen, "%s: tensor '%s' gives '%s' twice", j->label, t->name, key);
            if ((k == 0 && parse_dtype(j, t)) || (k == 1 && parse_shape(j, t)) || (k == 2 && parse_offsets(j, t))) return -1;
            int c = json_peek(j);
            if (c == '}') break;
            if (c != ',') return json_fail(j, "expected ',' or '}' in the entry of '%s'", t->name);
            j->i++;
        }
    j->i++;
    for (int k = 0; k < 3; k++)
        if (!seen[k]) return set_error(j->err, j->errlen, "%s: tensor '%s' has no '%s'", j->label, t->name, keys[k]);
    return check_extent(j, t, data_size);
}

/* "__metadata__": an object of strings. */
static int parse_metadata(json_t *j) {
    if (json_expect(j, '{')) return -1;
    if (json_peek(j) == '}') return j->i++, 0;
    for (;;) {
        if (json_string(j, NULL, 0) || json_expect(j, ':')) return -1;
        if (json_peek(j) != '"') return json_fail(j, "__metadata__ values must be strings");
        if (json_string(j, NULL, 0)) return -1;
        int c = json_peek(j);
        if (c == '}') return j->i++, 0;
        if (c != ',') return json_fail(j, "expected ',' or '}' in __metadata__");
        j->i++;
    }
}

static int parse_header(json_t *j, st_file_t *f) {
    int cap = 0, have_meta = 0;
    if (json_expect(j, '{')) return -1;
    if (json_peek(j) != '}')
        for (;;) {
            char name[ST_MAX_NAME];
            if (json_string(j, name, sizeof name) || json_expect(j, ':')) return -1;
            if (!strcmp(name, "__metadata__")) {
                if (have_meta++) return set_error(j->err, j->errlen, "%s: __metadata__ appears twice in the header", j->label);
                if (parse_metadata(j)) return -1;
            } else {
                if (f->count == ST_MAX_TENSORS) return set_error(j->err, j->errlen, "%s: more than %d tensors", j->label, ST_MAX_TENSORS);
                if (f->count == cap) {
                    cap = cap ? 2 * cap : 64;
                    st_tensor_t *p = realloc(f->tensors, sizeof *p * (size_t)cap);
                    if (!p) return set_error(j->err, j->errlen, "%s: out of memory reading the header", j->label);
                    f->tensors = p;
                }
                st_tensor_t *t = &f->tensors[f->count];
                memset(t, 0, sizeof *t);
                if (!(t->name = strdup(name))) return set_error(j->err, j->errlen, "%s: out of memory", j->label);
                f->count++;
                if (parse_entry(j, t, f->data_size)) return -1;
            }
            int c = json_peek(j);
            if (c == '}') break;
            if (c != ',') return json_fail(j, "expected ',' or '}' after a tensor entry");
            j->i++;
        }
    j->i++;
    if (json_peek(j) >= 0) return json_fail(j, "data after the header object");
    return 0;
}

static int by_name(const void *a, const void *b) {
    return strcmp((*(const st_tensor_t *const *)a)->name, (*(const st_tensor_t *const *)b)->name);
}

static int by_offset(const void *a, const void *b) {
    const st_tensor_t *x = *(const st_tensor_t *const *)a, *y = *(const st_tensor_t *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Unique names; the tensors tile the data block exactly (no overlap, no hole, nothing after). */
static int check_layout(st_file_t *f, char *err, size_t errlen) {
    if (!f->count) {
        if (f->data_size) return set_error(err, errlen, "%s: %llu bytes of data but no tensors", f->path, (unsigned long long)f->data_size);
        return 0;
    }
    const st_tensor_t **v = malloc(sizeof *v * (size_t)f->count);
    if (!v) return set_error(err, errlen, "%s: out of memory", f->path);
    for (int i = 0; i < f->count; i++) v[i] = &f->tensors[i];
    int rc = 0;
    qsort(v, (size_t)f->count, sizeof *v, by_name);
    for (int i = 1; i < f->count && !rc; i++)
        if (!strcmp(v[i]->name, v[i - 1]->name))
            rc = set_error(err, errlen, "%s: tensor '%s' appears twice in the header", f->path, v[i]->name);
    qsort(v, (size_t)f->count, sizeof *v, by_offset);
    uint64_t at = 0;
    for (int i = 0; i < f->count && !rc; i++) {
        if (v[i]->begin < at)
            rc = set_error(err, errlen, "%s: tensors '%s' and '%s' overlap in the data block", f->path, v[i - 1]->name, v[i]->name);
        else if (v[i]->begin > at)
            rc = set_error(err, errlen, "%s: the data block has a hole of %llu bytes before tensor '%s' (offset %llu)", f->path,
                      (unsigned long long)(v[i]->begin - at), v[i]->name, (unsigned long long)v[i]->begin);
        at = v[i]->end;
    }
    if (!rc && at != f->data_size)
        rc = set_error(err, errlen, "%s: the data block has %llu bytes after its last tensor that no tensor uses", f->path,
                  (unsigned long long)(f->data_size - at));
    free(v);
    return rc;
}

static int parse_bytes(const char *label, const unsigned char *bytes, size_t size, int mapped, st_file_t *f, char *err,
                       size_t errlen) {
    memset(f, 0, sizeof *f);
    f->mapped = mapped;
    f->map = bytes, f->size = size;
    if (!(f->path = strdup(label))) return set_error(err, errlen, "%s: out of memory", label);
    if (size < 8)
        return set_error(err, errlen, "%s: %zu bytes is too short for a safetensors file (an 8-byte header length comes first)",
                    label, size);
    uint64_t n = 0;
    for (int k = 7; k >= 0; k--) n = n << 8 | bytes[k];
    if (n > size - 8)
        return set_error(err, errlen, "%s: the header length %llu runs past the end of the file (%zu bytes)", label,
                    (unsigned long long)n, size);
    if (n > ST_MAX_HEADER)
        return set_error(err, errlen, "%s: the header length %llu exceeds the limit of %u bytes", label, (unsigned long long)n,
                    ST_MAX_HEADER);
    f->data = bytes + 8 + n;
    f->data_size = size - 8 - n;
    json_t j = {bytes + 8, (size_t)n, 0, 8, f->path, "header", err, errlen};
    if (parse_header(&j, f)) return -1;
    return check_layout(f, err, errlen);
}

int st_parse(const char *label, const unsigned char *bytes, size_t size, st_file_t *f, char *err, size_t errlen) {
    return parse_bytes(label, bytes, size, 0, f, err, errlen);
}

int st_open(const char *path, st_file_t *f, char *err, size_t errlen) {
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        f->path = strdup(path);
        return set_error(err, errlen, "%s: %s", path, errno == ENOENT ? "no such file" : strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        f->path = strdup(path);
        return set_error(err, errlen, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    if (size < 8) {
        close(fd);
        return parse_bytes(path, (const unsigned char *)"", size, 0, f, err, errlen);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        f->path = strdup(path);
        return set_error(err, errlen, "%s: cannot map the file (%s)", path, strerror(errno));
    }
    return parse_bytes(path, map, size, 1, f, err, errlen);
}

void st_close(st_file_t *f) {
    for (int i = 0; i < f->count; i++) free(f->tensors[i].name);
    free(f->tensors);
    free(f->path);
    if (f->mapped && f->map) munmap((void *)f->map, f->size);
    memset(f, 0, sizeof *f);
}

int st_find(const st_file_t *f, const char *name) {
    for (int i = 0; i < f->count; i++)
        if (!strcmp(f->tensors[i].name, name)) return i;
    return -1;
}

void st_read_f32(const st_file_t *f, int i, float *out) {
    const st_tensor_t *t = &f->tensors[i];
    const unsigned char *p = f->data + t->begin;
    for (int64_t k = 0; k < t->numel; k++) {
        if (t->dtype == ST_F32) {
            uint32_t u = (uint32_t)p[4 * k] | (uint32_t)p[4 * k + 1] << 8 | (uint32_t)p[4 * k + 2] << 16 |
                         (uint32_t)p[4 * k + 3] << 24;
            memcpy(&out[k], &u, 4);
        } else {
            uint16_t h = (uint16_t)(p[2 * k] | p[2 * k + 1] << 8);
            out[k] = t->dtype == ST_BF16 ? bf16_to_f32(h) : f16_to_f32(h);
        }
    }
}

/* ---- the shard index ---------------------------------------------------------------------- */

void st_files_free(char **files, int count) {
    for (int i = 0; i < count; i++) free(files[i]);
    free(files);
}

/* Adds dir/name unless already listed; name must be a plain file name. */
static int add_shard(json_t *j, const char *dir, const char *name, char ***files, int *count) {
    if (!name[0] || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
        return set_error(j->err, j->errlen, "%s: weight_map names the shard '%s', which is not a plain file name next to the index",
                    j->label, name);
    size_t len = strlen(dir) + strlen(name) + 2;
    char *path = malloc(len);
    if (!path) return set_error(j->err, j->errlen, "%s: out of memory", j->label);
    snprintf(path, len, "%s%s", dir, name);
    for (int i = 0; i < *count; i++)
        if (!strcmp((*files)[i], path)) return free(path), 0;
    if (*count == ST_MAX_SHARDS) return free(path), set_error(j->err, j->errlen, "%s: more than %d shards", j->label, ST_MAX_SHARDS);
    char **p = realloc(*files, sizeof *p * (size_t)(*count + 1));
    if (!p) return free(path), set_error(j->err, j->errlen, "%s: out of memory", j->label);
    *files = p;
    p[(*count)++] = path;
    return 0;
}

static int parse_index(json_t *j, const char *dir, char ***files, int *count) {
    int have_map = 0;
    if (json_expect(j, '{')) return -1;
    if (json_peek(j) != '}')
        for (;;) {
            char key[64];
            if (json_string(j, key, sizeof key) || json_expect(j, ':')) return -1;
            if (strcmp(key, "weight_map")) {
                if (json_skip_value(j, 1)) return -1;
            } else {
                if (have_map++) return json_fail(j, "weight_map appears twice");
                if (json_expect(j, '{')) return -1;
                if (json_peek(j) != '}')
                    for (;;) {
                        char shard[ST_MAX_NAME];
                        if (json_string(j, NULL, 0) || json_expect(j, ':') || json_string(j, shard, sizeof shard) ||
                            add_shard(j, dir, shard, files, count))
                            return -1;
                        int c = json_peek(j);
                        if (c == '}') break;
                        if (c != ',') return json_fail(j, "expected ',' or '}' in weight_map");
                        j->i++;
                    }
                j->i++;
            }
            int c = json_peek(j);
            if (c == '}') break;
            if (c != ',') return json_fail(j, "expected ',' or '}'");
            j->i++;
        }
    j->i++;
    if (json_peek(j) >= 0) return json_fail(j, "data after the index object");
    if (!have_map || !*count) return set_error(j->err, j->errlen, "%s: the index has no weight_map naming any shard", j->label);
    return 0;
}

int st_read_index(const char *path, char ***files, int *count, char *err, size_t errlen) {
    *files = NULL, *count = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return set_error(err, errlen, "%s: %s", path, errno == ENOENT ? "no such file" : strerror(errno));
    unsigned char *buf = malloc(ST_MAX_HEADER + 1u);
    size_t n = buf ? fread(buf, 1, ST_MAX_HEADER + 1u, fp) : 0;
    fclose(fp);
    if (!buf) return set_error(err, errlen, "%s: out of memory", path);
    if (n > ST_MAX_HEADER) {
        free(buf);
        return set_error(err, errlen, "%s: an index larger than %u bytes", path, ST_MAX_HEADER);
    }
    const char *slash = strrchr(path, '/');
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path + 1) : 0, path);
    json_t j = {buf, n, 0, 0, path, "index", err, errlen};
    int rc = parse_index(&j, dir, files, count);
    free(buf);
    if (rc) st_files_free(*files, *count), *files = NULL, *count = 0;
    return rc;
}
