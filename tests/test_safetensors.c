/* tests/test_safetensors.c — the safetensors reader and the weights import (label cpu).
 *
 * With files this test writes itself (tests/st_write.h) for the tiny model's table, every
 * parameter random: import with the original Wan2.1 names (F32), the diffusers names (BF16, SLA
 * proj left out: zero-filled and counted), mixed BF16/F16/F32 over two shards (a comma list) and
 * over a diffusers-style index.json; each must equal the table's values rounded through their dtype
 * bit for bit. The name map both ways (every parameter round-trips; the pairs confirmed against
 * diffusers). weights_load_any on .h5, safetensors without an extension, HDF5 under another name,
 * garbage and a missing file. Then every malformed file, each refused with its sentence naming
 * the file: short file, header length past the end / over the limit, bad JSON of many kinds,
 * bad dtype, rank, extents, offsets past the end / reversed / of the wrong size, overlap, hole,
 * trailing bytes, duplicate names, metadata; extra, missing, misshapen and twice-given tensors;
 * bad index files. Finally every truncation of a header and random byte mutations parse without
 * a crash, and what parses keeps every tensor inside the data block. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "safetensors.h"
#include "st_write.h"
#include "test_util.h"
#include "weights.h"

static char g_dir[64];

static const char *path_in(const char *name) {
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 512, "%s/%s", g_dir, name);
    return p;
}

static void fill_random(const param_table_t *t, float *arena, uint64_t seed) {
    test_rng_t r = {seed};
    memset(arena, 0, sizeof(float) * t->total);
    for (int i = 0; i < t->count; i++)
        fill_normal_f32(&r, arena + t->p[i].offset, (long)t->p[i].numel, 0.5);
}

static int is_proj(const char *name) { return strstr(name, ".proj_l.") != NULL; }

/* How a test file holds the table: naming, dtype (NULL: BF16/F16/F32 by index), shard k of n. */
typedef struct spec {
    int diffusers;
    const char *dtype;
    int shard, nshards;
    int skip_proj;
} spec_t;

static const char *dtype_of(spec_t s, int i) {
    static const char *const cycle[3] = {"BF16", "F16", "F32"};
    return s.dtype ? s.dtype : cycle[i % 3];
}

static void write_params(const char *path, const param_table_t *t, const float *arena, spec_t s) {
    st_writer_t w = {0};
    for (int i = 0; i < t->count; i++) {
        const param_info_t *p = &t->p[i];
        if (i % s.nshards != s.shard || (s.skip_proj && is_proj(p->name))) continue;
        char name[ST_MAX_NAME];
        if (s.diffusers) st_diffusers_name(p->name, name, sizeof name);
        else snprintf(name, sizeof name, "%s", p->name);
        unsigned char *bytes = malloc((size_t)p->numel * 4);
        size_t n = stw_values(dtype_of(s, i), arena + p->offset, p->numel, bytes);
        stw_add(&w, name, dtype_of(s, i), p->ndim, p->shape, bytes, n);
        free(bytes);
    }
    stw_save(&w, path, "{\"format\":\"pt\",\"note\":\"written by test_safetensors\"}");
    stw_free(&w);
}

static float round_to(const char *dtype, float x) {
    if (!strcmp(dtype, "BF16")) return bf16_to_f32(f32_to_bf16(x));
    if (!strcmp(dtype, "F16")) return f16_to_f32(f32_to_f16(x));
    return x;
}

/* Imports paths and compares every parameter bit for bit with arena rounded per spec. */
static void check_import(const char *label, const char *paths, const param_table_t *t, const float *arena, spec_t s,
                         int want_zero) {
    float *got = malloc(sizeof(float) * t->total);
    for (size_t i = 0; i < t->total; i++) got[i] = 7.0f;
    char err[1024] = "";
    int zf = -1, bad = 0;
    int rc = weights_import_safetensors(paths, t, got, &zf, err, sizeof err);
    EXPECT(rc == 0, "%s: import failed: %s", label, err);
    EXPECT(zf == want_zero, "%s: %d tensors zero-filled, expected %d", label, zf, want_zero);
    for (int i = 0; rc == 0 && i < t->count; i++) {
        const param_info_t *p = &t->p[i];
        for (int64_t j = 0; j < p->numel; j++) {
            float want = s.skip_proj && is_proj(p->name) ? 0.0f : round_to(dtype_of(s, i), arena[p->offset + j]);
            if (memcmp(&want, &got[p->offset + j], 4) && !bad++)
                EXPECT(0, "%s: %s[%lld] = %.9g, expected %.9g", label, p->name, (long long)j, got[p->offset + j], want);
        }
    }
    printf("%s: %d parameters imported, %d zero-filled, %d values differ\n", label, t->count, zf, bad);
    free(got);
}

static void test_names(const param_table_t *t) {
    static const char *const pairs[][2] = {
        {"blocks.3.norm2.weight", "blocks.3.norm3.weight"},
        {"blocks.0.scale_shift_table", "blocks.0.modulation"},
        {"scale_shift_table", "head.modulation"},
        {"proj_out.bias", "head.head.bias"},
        {"blocks.1.attn2.to_out.0.bias", "blocks.1.cross_attn.o.bias"},
        {"blocks.12.attn1.norm_k.weight", "blocks.12.self_attn.norm_k.weight"},
        {"blocks.0.ffn.net.0.proj.weight", "blocks.0.ffn.0.weight"},
        {"blocks.0.ffn.net.2.bias", "blocks.0.ffn.2.bias"},
        {"condition_embedder.time_proj.weight", "time_projection.1.weight"},
        {"condition_embedder.time_embedder.linear_2.bias", "time_embedding.2.bias"},
        {"condition_embedder.text_embedder.linear_1.weight", "text_embedding.0.weight"},
        {"patch_embedding.weight", "patch_embedding.weight"},
        {"blocks.2.self_attn.q.weight", "blocks.2.self_attn.q.weight"},
        {"norm_out.linear.weight", "norm_out.linear.weight"},
    };
    char out[ST_MAX_NAME];
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        st_wan_name(pairs[i][0], out, sizeof out);
        EXPECT(!strcmp(out, pairs[i][1]), "st_wan_name(%s) = %s, expected %s", pairs[i][0], out, pairs[i][1]);
    }
    int translated = 0;
    for (int i = 0; i < t->count; i++) {
        char back[ST_MAX_NAME];
        st_diffusers_name(t->p[i].name, out, sizeof out);
        translated += st_wan_name(out, back, sizeof back) == 1;
        EXPECT(!strcmp(back, t->p[i].name), "%s -> %s -> %s does not round-trip", t->p[i].name, out, back);
    }
    /* only patch_embedding.{weight,bias} keep their names */
    EXPECT(translated == t->count - 2, "%d of %d names differ between the schemes, expected %d", translated, t->count,
           t->count - 2);
}

static void test_good_files(const param_table_t *t, const float *arena) {
    int nproj = 0;
    for (int i = 0; i < t->count; i++) nproj += is_proj(t->p[i].name);
    spec_t wan = {0, "F32", 0, 1, 0}, dif = {1, "BF16", 0, 1, 1};
    write_params(path_in("wan.safetensors"), t, arena, wan);
    check_import("Wan names, F32", path_in("wan.safetensors"), t, arena, wan, 0);
    write_params(path_in("diffusers.safetensors"), t, arena, dif);
    check_import("diffusers names, BF16, no proj", path_in("diffusers.safetensors"), t, arena, dif, nproj);

    spec_t s0 = {0, NULL, 0, 2, 0}, s1 = {0, NULL, 1, 2, 0};
    write_params(path_in("mixed-1.safetensors"), t, arena, s0);
    write_params(path_in("mixed-2.safetensors"), t, arena, s1);
    char list[1100];
    snprintf(list, sizeof list, "%s,%s", path_in("mixed-1.safetensors"), path_in("mixed-2.safetensors"));
    check_import("mixed dtypes, two shards", list, t, arena, s0, 0);

    spec_t d0 = {1, NULL, 0, 2, 0}, d1 = {1, NULL, 1, 2, 0};
    write_params(path_in("diffusion_pytorch_model-00001-of-00002.safetensors"), t, arena, d0);
    write_params(path_in("diffusion_pytorch_model-00002-of-00002.safetensors"), t, arena, d1);
    FILE *f = fopen(path_in("diffusion_pytorch_model.safetensors.index.json"), "w");
    fprintf(f, "{\n  \"metadata\": {\"total_size\": 123, \"nested\": [1, -2.5e3, true, null, {\"x\": \"y\"}]},\n"
               "  \"weight_map\": {\n");
    for (int i = 0; i < t->count; i++) {
        char name[ST_MAX_NAME];
        st_diffusers_name(t->p[i].name, name, sizeof name);
        fprintf(f, "    \"%s\": \"diffusion_pytorch_model-0000%d-of-00002.safetensors\"%s\n", name, 1 + i % 2,
                i + 1 < t->count ? "," : "");
    }
    fprintf(f, "  }\n}\n");
    fclose(f);
    check_import("diffusers index.json, two shards", path_in("diffusion_pytorch_model.safetensors.index.json"), t, arena,
                 d0, 0);

    /* weights_load_any by content and name */
    char err[1024];
    float *got = malloc(sizeof(float) * t->total);
    int zf;
    EXPECT(weights_save(path_in("w.h5"), t, arena, err, sizeof err) == 0, "weights_save: %s", err);
    rename(path_in("wan.safetensors"), path_in("wan.bin"));
    const char *ok[] = {"w.h5", "wan.bin"};
    for (int k = 0; k < 2; k++) {
        memset(got, 0, sizeof(float) * t->total);
        int rc = weights_load_any(path_in(ok[k]), t, got, &zf, err, sizeof err);
        EXPECT(rc == 0 && !memcmp(got, arena, sizeof(float) * t->total), "weights_load_any(%s): %s", ok[k],
               rc ? err : "values differ");
    }
    rename(path_in("w.h5"), path_in("w.weights"));
    EXPECT(weights_load_any(path_in("w.weights"), t, got, &zf, err, sizeof err) == 0, "HDF5 by signature: %s", err);
    stw_write_file(path_in("garbage.txt"), "hello, world", 12);
    const char *bad[][2] = {{"garbage.txt", "neither an HDF5 file nor a safetensors file"},
                            {"nope.bin", "no such file"},
                            {"nope.safetensors", "no such file"},
                            {"nope.h5", "nope.h5"}};
    for (int k = 0; k < 4; k++) {
        err[0] = 0;
        int rc = weights_load_any(path_in(bad[k][0]), t, got, &zf, err, sizeof err);
        EXPECT(rc == -1 && strstr(err, bad[k][1]), "weights_load_any(%s): rc %d, '%s'", bad[k][0], rc, err);
    }
    free(got);
}

/* ---- malformed files ---------------------------------------------------------------------- */

static unsigned char *with_header(const char *hdr, size_t hlen, const void *data, size_t dlen, size_t *size) {
    *size = 8 + hlen + dlen;
    unsigned char *b = malloc(*size);
    for (int k = 0; k < 8; k++) b[k] = (unsigned char)((uint64_t)hlen >> (8 * k));
    memcpy(b + 8, hdr, hlen);
    if (dlen) memcpy(b + 8 + hlen, data, dlen);
    return b;
}

static void expect_refused(const char *label, const unsigned char *b, size_t n, const char *phrase) {
    st_file_t f;
    char err[1024] = "";
    int rc = st_parse("bad.safetensors", b, n, &f, err, sizeof err);
    EXPECT(rc == -1 && strstr(err, phrase) && !strncmp(err, "bad.safetensors: ", 17),
           "%s: rc %d, message '%s', expected '%s'", label, rc, err, phrase);
    st_close(&f);
}

static void expect_header_refused(const char *hdr, size_t dlen, const char *phrase) {
    static const unsigned char zeros[64];
    size_t n;
    unsigned char *b = with_header(hdr, strlen(hdr), zeros, dlen, &n);
    expect_refused(hdr, b, n, phrase);
    free(b);
}

#define E_A "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"
#define E_B "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[8,14]}"

static void test_malformed_headers(void) {
    static const char *const cases[][2] = {
        {"", "the header ends where '{' was expected"},
        {"[]", "expected '{'"},
        {"{" E_A, "expected ',' or '}'"},
        {"{\"a\" {}}", "expected ':'"},
        {"{" E_A "," E_B ",}", "expected '\"'"},
        {"{\"a", "unterminated string"},
        {"{\"a\xff\":{}}", "invalid UTF-8"},
        {"{\"a\xc0\xaf\":{}}", "invalid UTF-8"},
        {"{\"a\x01\":{}}", "control character"},
        {"{\"a\\q\":{}}", "invalid escape"},
        {"{\"a\\u0000\":{}}", "NUL character"},
        {"{\"a\\udc00\":{}}", "lone low surrogate"},
        {"{\"a\\ud800x\":{}}", "high surrogate without"},
        {"{\"a\\u12\":{}}", "four hex digits"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[00,8]}}", "leading zero"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8.0]}}", "not an integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-1,8]}}", "is negative"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,18446744073709551616]}}", "does not fit in 64 bits"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}", "exactly two integers"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":\"0-8\"}}", "expected '['"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", "tensor 'a' has a negative extent"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,2],\"data_offsets\":[0,8]}}", "tensor 'a' has more than 5 dimensions"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[17179869185],\"data_offsets\":[0,8]}}", "more than 2^34 elements"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1048576,1048576,1048576],\"data_offsets\":[0,8]}}", "more than 2^34"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,],\"data_offsets\":[0,8]}}", "non-negative integer for an extent"},
        {"{" E_A "} x", "data after the header object"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"offsets\":[0,8]}}", "tensor 'a' has an unknown key 'offsets'"},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", "tensor 'a' has no 'shape'"},
        {"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "tensor 'a' gives 'dtype' twice"},
        {"{\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", "tensor 'a' has dtype 'I64'; expected BF16, F16 or F32"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", "tensor 'a' has data_offsets [8, 0] with begin after end"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", "tensor 'a' has data_offsets [8, 16] past the end of the data block (14 bytes)"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,6]}}", "tensor 'a' spans 6 bytes, but 1-D F32 of 2 elements needs 8"},
        {"{" E_A ",\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[6,12]}}", "tensors 'a' and 'b' overlap"},
        {"{" E_A ",\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[10,14]}}", "hole of 2 bytes before tensor 'b'"},
        {"{" E_A ",\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[8,12]}}", "2 bytes after its last tensor"},
        {"{" E_A "," E_B ",\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[14,14]}}", "tensor 'a' appears twice"},
        {"{" E_A "," E_B ",\"__metadata__\":{\"format\":3}}", "__metadata__ values must be strings"},
        {"{\"__metadata__\":{}," E_A "," E_B ",\"__metadata__\":{}}", "__metadata__ appears twice"},
        {"{}", "14 bytes of data but no tensors"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) expect_header_refused(cases[i][0], 14, cases[i][1]);

    /* the good base, escapes and padding accepted */
    const char *good = "{\"__metadata__\":{\"k\":\"v\\n\"}, " E_A " ,\"b\\u00e9\\ud83d\\ude00\":{\"dtype\":\"BF16\","
                       "\"shape\":[3],\"data_offsets\":[8,14]}}    ";
    size_t n;
    unsigned char *b = with_header(good, strlen(good), "abcdefghijklmn", 14, &n);
    st_file_t f;
    char err[1024] = "";
    int rc = st_parse("good", b, n, &f, err, sizeof err);
    EXPECT(rc == 0 && f.count == 2 && st_find(&f, "b\xc3\xa9\xf0\x9f\x98\x80") == 1 && f.tensors[1].numel == 3,
           "the good header: rc %d '%s'", rc, err);
    st_close(&f);

    /* file-level lengths */
    expect_refused("5 bytes", b, 5, "5 bytes is too short");
    b[0] = (unsigned char)(strlen(good) + 15);
    expect_refused("header past the end", b, n, "runs past the end of the file");
    free(b);
    size_t big = ST_MAX_HEADER + 64;
    unsigned char *huge = calloc(big, 1);
    uint64_t hl = ST_MAX_HEADER + 1u;
    for (int k = 0; k < 8; k++) huge[k] = (unsigned char)(hl >> (8 * k));
    expect_refused("header over the limit", huge, big, "exceeds the limit of 100000000 bytes");
    free(huge);
}

/* Extra, missing, misshapen, twice-given tensors and bad lists/indexes, through the import. */
static void expect_import_refused(const char *label, const char *paths, const param_table_t *t, const char *phrase) {
    float *got = malloc(sizeof(float) * t->total);
    char err[2048] = "";
    int zf, rc = weights_import_safetensors(paths, t, got, &zf, err, sizeof err);
    EXPECT(rc == -1 && strstr(err, phrase), "%s: rc %d, message '%s', expected '%s'", label, rc, err, phrase);
    free(got);
}

static void test_import_errors(const param_table_t *t, const float *arena) {
    const char *victim = "blocks.1.cross_attn.k.bias";
    int vi = param_table_find(t, victim), mi = param_table_find(t, "blocks.0.modulation");
    const float *x = arena + t->p[vi].offset;
    for (int kind = 0; kind < 4; kind++) {
        st_writer_t w = {0};
        for (int i = 0; i < t->count; i++) {
            const param_info_t *p = &t->p[i];
            unsigned char *bytes = malloc((size_t)p->numel * 4);
            size_t n = stw_values("F32", arena + p->offset, p->numel, bytes);
            if (!(kind == 1 && i == vi)) {
                int64_t flat[2] = {6, p->numel / 6};
                if (kind == 2 && i == mi) stw_add(&w, p->name, "F32", 2, flat, bytes, n);
                else stw_add(&w, p->name, "F32", p->ndim, p->shape, bytes, n);
            }
            free(bytes);
        }
        unsigned char extra[8] = {0};
        if (kind == 0) stw_add(&w, "norm_out.linear.weight", "F32", 1, (int64_t[]){2}, extra, 8);
        if (kind == 3) {
            unsigned char bytes[256];
            size_t n = stw_values("BF16", x, t->p[vi].numel, bytes);
            stw_add(&w, "blocks.1.attn2.to_k.bias", "BF16", 1, t->p[vi].shape, bytes, n);
        }
        stw_save(&w, path_in("err.safetensors"), NULL);
        stw_free(&w);
        static const char *const phrases[4] = {
            "err.safetensors: tensor 'norm_out.linear.weight' is not a parameter of this model (extra tensor)",
            "missing tensor 'blocks.1.cross_attn.k.bias' (diffusers name 'blocks.1.attn2.to_k.bias')",
            "err.safetensors: tensor 'blocks.0.modulation' has shape [6, 64], expected [1, 6, 64]",
            "parameter 'blocks.1.cross_attn.k.bias' is given twice: as 'blocks.1.cross_attn.k.bias' in"};
        expect_import_refused(phrases[kind], path_in("err.safetensors"), t, phrases[kind]);
    }
    /* twice over two shards, a diffusers name misshapen, a list with a hole, a missing shard */
    char list[1100];
    snprintf(list, sizeof list, "%s,%s", path_in("diffusers.safetensors"), path_in("mixed-1.safetensors"));
    expect_import_refused("two shards overlap", list, t, "is given twice");
    st_writer_t w = {0};
    float one[2] = {1, 2};
    unsigned char bytes[8];
    stw_add(&w, "blocks.0.attn1.norm_q.weight", "F32", 1, (int64_t[]){2}, bytes, stw_values("F32", one, 2, bytes));
    stw_save(&w, path_in("short.safetensors"), NULL);
    stw_free(&w);
    expect_import_refused("diffusers misshapen", path_in("short.safetensors"), t,
                          "tensor 'blocks.0.attn1.norm_q.weight' (blocks.0.self_attn.norm_q.weight) has shape [2], expected [64]");
    snprintf(list, sizeof list, "%s,,%s", path_in("mixed-1.safetensors"), path_in("mixed-2.safetensors"));
    expect_import_refused("empty list item", list, t, "an empty file name");
    expect_import_refused("missing shard", path_in("absent.safetensors"), t, "absent.safetensors: no such file");
    expect_header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 7, "past the end");

    /* bad indexes */
    static const char *const idx[][2] = {
        {"{\"weight_map\": {\"a\": \"../x.safetensors\"}}", "'../x.safetensors', which is not a plain file name"},
        {"{\"weight_map\": {\"a\": \"sub/x.safetensors\"}}", "not a plain file name"},
        {"{\"metadata\": {}}", "has no weight_map naming any shard"},
        {"{\"weight_map\": {}}", "has no weight_map naming any shard"},
        {"{\"weight_map\": {\"a\": 3}}", "malformed index JSON"},
        {"{\"metadata\": [1, 2,], \"weight_map\": {}}", "malformed index JSON"},
        {"{\"weight_map\": {\"a\": \"x\"}, \"weight_map\": {}}", "weight_map appears twice"},
        {"{\"weight_map\": {\"a\": \"absent.safetensors\"}}", "absent.safetensors: no such file"},
    };
    for (size_t i = 0; i < sizeof idx / sizeof idx[0]; i++) {
        stw_write_file(path_in("bad.index.json"), idx[i][0], strlen(idx[i][0]));
        expect_import_refused(idx[i][0], path_in("bad.index.json"), t, idx[i][1]);
    }
}

/* No crash on any header truncation or random byte mutations; what parses stays in bounds. */
static void test_robustness(void) {
    const char *good = "{\"__metadata__\":{\"format\":\"pt\"}," E_A "," E_B "}";
    size_t hl = strlen(good), n, parsed = 0, refused = 0;
    for (size_t k = 0; k < hl; k++) {
        unsigned char *b = with_header(good, k, "abcdefghijklmn", 14, &n);
        st_file_t f;
        char err[512];
        refused += st_parse("cut", b, n, &f, err, sizeof err) != 0;
        st_close(&f);
        free(b);
    }
    EXPECT(refused == hl, "%zu of %zu truncated headers refused", refused, hl);
    test_rng_t r = {99};
    refused = 0;
    for (int it = 0; it < 20000; it++) {
        unsigned char *b = with_header(good, hl, "abcdefghijklmn", 14, &n);
        int flips = 1 + (int)(rng_next(&r) % 4);
        for (int k = 0; k < flips; k++) {
            size_t at = (size_t)(rng_next(&r) % (it % 10 == 0 ? n : hl + 8));
            unsigned char c = (unsigned char)"{}[]\",:0919-e.\\u"[rng_next(&r) % 17];
            b[at] = rng_next(&r) % 3 == 0 ? c : (unsigned char)rng_next(&r);
        }
        st_file_t f;
        char err[512];
        if (st_parse("mutant", b, n, &f, err, sizeof err) == 0) {
            parsed++;
            for (int i = 0; i < f.count; i++) {
                const st_tensor_t *t = &f.tensors[i];
                EXPECT(t->begin <= t->end && t->end <= f.data_size && f.data + f.data_size == b + n,
                       "mutant %d: tensor %d out of bounds", it, i);
                float out[16];
                if (t->numel <= 16) st_read_f32(&f, i, out);
            }
        } else
            refused++;
        st_close(&f);
        free(b);
    }
    printf("mutations: %zu parsed, %zu refused, no crash\n", parsed, refused);
}

int main(void) {
    test_make_dir(g_dir, sizeof g_dir, "test_safetensors");
    model_config_t cfg;
    char err[256];
    param_table_t t;
    if (model_config_preset("tiny", &cfg, err, sizeof err) || param_table_build(&cfg, &t, err, sizeof err)) {
        fprintf(stderr, "FAIL: %s\n", err);
        return 1;
    }
    float *arena = malloc(sizeof(float) * t.total);
    fill_random(&t, arena, 3);
    test_names(&t);
    test_good_files(&t, arena);
    test_malformed_headers();
    test_import_errors(&t, arena);
    test_robustness();
    free(arena);
    param_table_free(&t);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd)) fprintf(stderr, "warning: could not remove %s\n", g_dir);
    return test_summary("test_safetensors");
}
