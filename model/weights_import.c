/* model/weights_import.c — released Wan2.1 weights from safetensors into the parameter table by
 * name (safetensors.h): the diffusers <-> Wan2.1 name table, the import with its missing / extra /
 * duplicate / misshapen checks, and weights_load_any, which picks HDF5 or safetensors.
 *
 * The names, confirmed against diffusers' scripts/convert_wan_to_diffusers.py
 * (TRANSFORMER_KEYS_RENAME_DICT) and models/transformers/transformer_wan.py: WanTransformerBlock
 * has norm1 (no affine) -> attn1 -> norm2 (affine, cross_attn_norm) -> attn2 -> norm3 (no affine)
 * -> ffn, so diffusers' norm2 is Wan's norm3 (the cross-attention norm; Wan's norm2 and diffusers'
 * norm3 hold no parameters). Shapes and element order are the same in both schemes: the
 * modulations are [1,6,C] / [1,2,C] scale_shift_tables chunked (shift, scale, gate, ...) alike,
 * the time embedding's sinusoid is cos-then-sin in both (flip_sin_to_cos=True), RoPE pairs are
 * adjacent in both, and proj_out emits a patch channel-innermost as Wan's head does. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "weights.h"

typedef struct name_pair {
    const char *diffusers, *wan;
} name_pair_t;

/* Modules (and parameters) directly under the model. */
static const name_pair_t top_names[] = {
    {"condition_embedder.time_embedder.linear_1", "time_embedding.0"},
    {"condition_embedder.time_embedder.linear_2", "time_embedding.2"},
    {"condition_embedder.time_proj", "time_projection.1"},
    {"condition_embedder.text_embedder.linear_1", "text_embedding.0"},
    {"condition_embedder.text_embedder.linear_2", "text_embedding.2"},
    {"proj_out", "head.head"},
    {"scale_shift_table", "head.modulation"}, /* [1,2,C] */
    /* patch_embedding is patch_embedding in both */
};

/* Modules (and parameters) under blocks.N. */
static const name_pair_t block_names[] = {
    {"attn1.to_q", "self_attn.q"},
    {"attn1.to_k", "self_attn.k"},
    {"attn1.to_v", "self_attn.v"},
    {"attn1.to_out.0", "self_attn.o"},
    {"attn1.norm_q", "self_attn.norm_q"},
    {"attn1.norm_k", "self_attn.norm_k"},
    {"attn1.proj_l", "self_attn.proj_l"}, /* ours (SLA), in diffusers' style */
    {"attn2.to_q", "cross_attn.q"},
    {"attn2.to_k", "cross_attn.k"},
    {"attn2.to_v", "cross_attn.v"},
    {"attn2.to_out.0", "cross_attn.o"},
    {"attn2.norm_q", "cross_attn.norm_q"},
    {"attn2.norm_k", "cross_attn.norm_k"},
    {"norm2", "norm3"}, /* the cross-attention LayerNorm (affine) */
    {"ffn.net.0.proj", "ffn.0"},
    {"ffn.net.2", "ffn.2"},
    {"scale_shift_table", "modulation"}, /* [1,6,C] */
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Length of "blocks.N." at the start of name, or 0. */
static size_t block_prefix(const char *name) {
    if (strncmp(name, "blocks.", 7)) return 0;
    size_t k = 7;
    while (name[k] >= '0' && name[k] <= '9') k++;
    return k > 7 && name[k] == '.' ? k + 1 : 0;
}

/* Rewrites name (after its first `skip` bytes) by the table, from column `from` (0: diffusers,
 * 1: wan) to the other. An entry matches the whole rest or the rest up to a '.'. */
static int translate(const char *name, size_t skip, const name_pair_t *table, size_t n, int from, char *out,
                     size_t len) {
    const char *rest = name + skip;
    for (size_t i = 0; i < n; i++) {
        const char *a = from ? table[i].wan : table[i].diffusers, *b = from ? table[i].diffusers : table[i].wan;
        size_t la = strlen(a);
        if (strncmp(rest, a, la) || (rest[la] != '\0' && rest[la] != '.')) continue;
        int w = snprintf(out, len, "%.*s%s%s", (int)skip, name, b, rest + la);
        return w < 0 || (size_t)w >= len ? -1 : 1;
    }
    return 0;
}

static int map_name(const char *name, int from, char *out, size_t len) {
    size_t skip = block_prefix(name);
    int r = skip ? translate(name, skip, block_names, COUNT(block_names), from, out, len)
                 : translate(name, 0, top_names, COUNT(top_names), from, out, len);
    if (r) return r;
    int w = snprintf(out, len, "%s", name);
    return w < 0 || (size_t)w >= len ? -1 : 0;
}

int st_wan_name(const char *file_name, char *out, size_t len) { return map_name(file_name, 0, out, len); }

void st_diffusers_name(const char *wan_name, char *out, size_t len) {
    if (map_name(wan_name, 1, out, len) < 0 && len) out[0] = '\0';
}

/* ---- the import --------------------------------------------------------------------------- */

static int fail_shape(const st_file_t *f, const st_tensor_t *s, const param_info_t *p, char *err, size_t errlen) {
    char got[128] = "[", want[128] = "[";
    for (int d = 0; d < s->ndim; d++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "", (long long)s->shape[d]);
    for (int d = 0; d < p->ndim; d++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? ", " : "", (long long)p->shape[d]);
    strcat(got, "]"), strcat(want, "]");
    if (strcmp(s->name, p->name))
        snprintf(err, errlen, "%s: tensor '%s' (%s) has shape %s, expected %s", f->path, s->name, p->name, got, want);
    else
        snprintf(err, errlen, "%s: tensor '%s' has shape %s, expected %s", f->path, s->name, got, want);
    return -1;
}

typedef struct source {
    int file;            /* 1-based index into the file list; 0: not yet seen */
    char name[ST_MAX_NAME]; /* the name it had in that file */
} source_t;

/* Every tensor of one file into the arena; records where each parameter came from. */
static int import_file(const char *path, int file_no, char **paths, const param_table_t *t, float *arena,
                       source_t *src, char *err, size_t errlen) {
    st_file_t f;
    if (st_open(path, &f, err, errlen)) {
        st_close(&f);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < f.count && !rc; i++) {
        const st_tensor_t *s = &f.tensors[i];
        char wan[ST_MAX_NAME];
        int mapped = st_wan_name(s->name, wan, sizeof wan);
        int k = mapped < 0 ? -1 : param_table_find(t, wan);
        if (k < 0) {
            rc = -1;
            snprintf(err, errlen, "%s: tensor '%s' is not a parameter of this model (extra tensor)", f.path, s->name);
        } else if (src[k].file) {
            rc = -1;
            snprintf(err, errlen, "%s: parameter '%s' is given twice: as '%s' in %s and as '%s' in %s", f.path, wan,
                     src[k].name, paths[src[k].file - 1], s->name, f.path);
        } else {
            const param_info_t *p = &t->p[k];
            int same = s->ndim == p->ndim;
            for (int d = 0; same && d < p->ndim; d++) same = s->shape[d] == p->shape[d];
            if (!same) rc = fail_shape(&f, s, p, err, errlen);
            else {
                st_read_f32(&f, i, arena + p->offset);
                src[k].file = file_no;
                snprintf(src[k].name, sizeof src[k].name, "%s", s->name);
            }
        }
    }
    st_close(&f);
    return rc;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* The list of files: a shard index, or the comma-separated paths. */
static int list_files(const char *paths, char ***files, int *count, char *err, size_t errlen) {
    *files = NULL, *count = 0;
    if (!strchr(paths, ',') && ends_with(paths, ".json")) return st_read_index(paths, files, count, err, errlen);
    for (const char *p = paths;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (!n) {
            st_files_free(*files, *count);
            snprintf(err, errlen, "'%s': an empty file name in the list of safetensors files", paths);
            return -1;
        }
        char **grown = realloc(*files, sizeof *grown * (size_t)(*count + 1));
        char *one = malloc(n + 1);
        if (!grown || !one) {
            free(one);
            if (grown) *files = grown;
            st_files_free(*files, *count);
            snprintf(err, errlen, "out of memory listing safetensors files");
            return -1;
        }
        memcpy(one, p, n), one[n] = '\0';
        *files = grown;
        grown[(*count)++] = one;
        if (!comma) return 0;
        p = comma + 1;
    }
}

static int is_sla_proj(const char *name) { return strstr(name, ".self_attn.proj_l.") != NULL; }

int weights_import_safetensors(const char *paths, const param_table_t *t, float *arena, int *n_zero_filled,
                               char *err, size_t errlen) {
    char **files;
    int nfiles;
    if (list_files(paths, &files, &nfiles, err, errlen)) return -1;
    source_t *src = calloc((size_t)t->count, sizeof *src);
    if (!src) {
        st_files_free(files, nfiles);
        snprintf(err, errlen, "out of memory importing %s", paths);
        return -1;
    }
    int rc = 0, zero_filled = 0;
    for (int i = 0; i < nfiles && !rc; i++) rc = import_file(files[i], i + 1, files, t, arena, src, err, errlen);
    for (int k = 0; k < t->count && !rc; k++) {
        const param_info_t *p = &t->p[k];
        if (src[k].file) continue;
        if (is_sla_proj(p->name)) { /* a dense checkpoint: SLA's proj starts at zero, as at initialisation */
            memset(arena + p->offset, 0, sizeof(float) * (size_t)p->numel);
            zero_filled++;
            continue;
        }
        char alt[ST_MAX_NAME];
        st_diffusers_name(p->name, alt, sizeof alt);
        rc = -1;
        if (strcmp(alt, p->name))
            snprintf(err, errlen, "%s: missing tensor '%s' (diffusers name '%s')", paths, p->name, alt);
        else
            snprintf(err, errlen, "%s: missing tensor '%s'", paths, p->name);
    }
    if (!rc && n_zero_filled) *n_zero_filled = zero_filled;
    free(src);
    st_files_free(files, nfiles);
    return rc;
}

/* ---- either format ------------------------------------------------------------------------ */

int weights_load_any(const char *path, const param_table_t *t, float *arena, int *n_zero_filled, char *err,
                     size_t errlen) {
    static const unsigned char hdf5_sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    if (strchr(path, ',') || ends_with(path, ".json") || ends_with(path, ".safetensors"))
        return weights_import_safetensors(path, t, arena, n_zero_filled, err, errlen);
    if (ends_with(path, ".h5") || ends_with(path, ".hdf5"))
        return weights_load(path, t, arena, n_zero_filled, err, errlen);
    unsigned char head[9] = {0};
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "%s: %s", path, errno == ENOENT ? "no such file" : strerror(errno));
        return -1;
    }
    size_t n = fread(head, 1, sizeof head, fp);
    fclose(fp);
    if (n >= 8 && !memcmp(head, hdf5_sig, 8)) return weights_load(path, t, arena, n_zero_filled, err, errlen);
    if (n == 9 && head[8] == '{') return weights_import_safetensors(path, t, arena, n_zero_filled, err, errlen);
    snprintf(err, errlen, "%s: neither an HDF5 file nor a safetensors file (judged by its first bytes and its name)", path);
    return -1;
}
