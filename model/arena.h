/* model/arena.h — one allocation carved into many tensors, so that a step allocates nothing.
 *
 * Two passes over the same layout code: with arena_begin_measure the arena only counts bytes
 * (tensors get data = NULL); arena_commit then allocates that many bytes on the device once, and
 * the layout code runs again to hand out real pointers in the same order. Every tensor starts on
 * a 256-byte boundary. */
#ifndef SLA_ARENA_H
#define SLA_ARENA_H

#include <stddef.h>

#include "tensor.h"

typedef struct arena {
    device_t device;
    char *base; /* NULL while measuring */
    size_t used, size;
} arena_t;

void arena_begin_measure(arena_t *a, device_t device);
/* Allocates the measured size and rewinds; the layout must then be replayed. */
void arena_commit(arena_t *a);
tensor_t arena_tensor(arena_t *a, dtype_t dtype, int ndim, const int64_t *shape);
/* Gives a described tensor (tensor_make: dtype, shape, data NULL) its place: arena_tensor of the same. */
void arena_place(arena_t *a, tensor_t *t);
void arena_free(arena_t *a);

#endif
