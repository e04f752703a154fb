/* model/arena.c — the bump allocator of arena.h. */
#include "arena.h"

#include <string.h>

#include "check.h"

void arena_begin_measure(arena_t *a, device_t device) {
    memset(a, 0, sizeof *a);
    a->device = device;
}

void arena_commit(arena_t *a) {
    CHECK(a->base == NULL, "arena committed twice");
    tensor_t block = tensor_alloc(DTYPE_I32, a->device, 1, (int64_t[]){(int64_t)(a->used + 3) / 4});
    a->base = block.data;
    a->size = a->used;
    a->used = 0;
}

tensor_t arena_tensor(arena_t *a, dtype_t dtype, int ndim, const int64_t *shape) {
    tensor_t t = tensor_make(dtype, a->device, ndim, shape);
    size_t bytes = (tensor_bytes(&t) + 255) & ~(size_t)255;
    if (a->base) {
        CHECK(a->used + bytes <= a->size, "arena overflow: the layout changed between measuring and allocating");
        t.data = a->base + a->used;
    }
    a->used += bytes;
    return t;
}

void arena_place(arena_t *a, tensor_t *t) { *t = arena_tensor(a, t->dtype, t->ndim, t->shape); }

void arena_free(arena_t *a) {
    if (!a->base) return;
    tensor_t block = tensor_make(DTYPE_I32, a->device, 1, (int64_t[]){1});
    block.data = a->base;
    tensor_free(&block);
    a->base = NULL;
}
