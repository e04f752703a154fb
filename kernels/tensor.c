/* kernels/tensor.c — tensor descriptors, host/device allocation and dtype-converting copies.
 * Device memory goes through kernels/cuda/cuda_mem.h when the CUDA backend is built; without it a
 * DEVICE_CUDA tensor is refused with a message. */
#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#ifdef SLA_HAVE_CUDA
#include "cuda/cuda_mem.h"
#endif

size_t dtype_size(dtype_t dtype) {
    switch (dtype) {
    case DTYPE_F32: return 4;
    case DTYPE_BF16: return 2;
    case DTYPE_F16: return 2;
    case DTYPE_I32: return 4;
    case DTYPE_F64: return 8;
    }
    return 0;
}

const char *dtype_name(dtype_t dtype) {
    switch (dtype) {
    case DTYPE_F32: return "float32";
    case DTYPE_BF16: return "bfloat16";
    case DTYPE_F16: return "float16";
    case DTYPE_I32: return "int32";
    case DTYPE_F64: return "float64";
    }
    return "?";
}

const char *device_name(device_t device) { return device == DEVICE_CPU ? "cpu" : "cuda"; }

int64_t tensor_numel(const tensor_t *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t tensor_bytes(const tensor_t *t) { return (size_t)tensor_numel(t) * dtype_size(t->dtype); }

tensor_t tensor_make(dtype_t dtype, device_t device, int ndim, const int64_t *shape) {
    CHECK(ndim >= 0 && ndim <= TENSOR_MAX_DIMS, "tensor rank %d is outside 0..%d", ndim, TENSOR_MAX_DIMS);
    tensor_t t;
    memset(&t, 0, sizeof t);
    t.dtype = dtype;
    t.device = device;
    t.ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        CHECK(shape[i] >= 0, "negative tensor extent %lld in dim %d", (long long)shape[i], i);
        t.shape[i] = shape[i];
    }
    return t;
}

tensor_t tensor_alloc(dtype_t dtype, device_t device, int ndim, const int64_t *shape) {
    tensor_t t = tensor_make(dtype, device, ndim, shape);
    size_t bytes = tensor_bytes(&t);
    if (device == DEVICE_CPU) {
        t.data = xmalloc(bytes);
    } else {
#ifdef SLA_HAVE_CUDA
        t.data = cuda_mem_alloc(bytes);
#else
        CHECK(0, "a CUDA tensor was requested but this build has no CUDA backend");
#endif
    }
    return t;
}

void tensor_free(tensor_t *t) {
    if (!t->data) return;
    if (t->device == DEVICE_CPU) {
        free(t->data);
    } else {
#ifdef SLA_HAVE_CUDA
        cuda_mem_free(t->data);
#endif
    }
    t->data = NULL;
}

int tensor_same_shape(const tensor_t *a, const tensor_t *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

const char *tensor_shape_str(const tensor_t *t, char *buf, size_t len) {
    size_t used = 0;
    used += (size_t)snprintf(buf + used, len - used, "[");
    for (int i = 0; i < t->ndim && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (used < len) snprintf(buf + used, len - used, "]");
    return buf;
}

uint16_t f32_to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float bf16_to_f32(uint16_t x) {
    uint32_t u = (uint32_t)x << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0) {
        float f = ldexpf((float)man, -24);
        return sign ? -f : f;
    }
    if (exp == 31) u = sign | 0x7f800000u | (man << 13);
    else u = sign | ((exp + 112) << 23) | (man << 13);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t f32_to_f16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    float a = fabsf(x);
    if (isnan(x)) return sign | 0x7e00;
    if (a >= 65520.0f) return sign | 0x7c00;
    if (a < 6.103515625e-05f) /* subnormal: multiples of 2^-24, nearest even via rintf */
        return sign | (uint16_t)rintf(a * 16777216.0f);
    uint32_t ua;
    memcpy(&ua, &a, 4);
    ua += 0x0fffu + ((ua >> 13) & 1u);
    return sign | (uint16_t)(((ua >> 23) - 112) << 10 | ((ua >> 13) & 0x3ff));
}

static double host_load(const void *p, dtype_t dt, int64_t i) {
    switch (dt) {
    case DTYPE_F32: return ((const float *)p)[i];
    case DTYPE_BF16: return bf16_to_f32(((const uint16_t *)p)[i]);
    case DTYPE_F16: return f16_to_f32(((const uint16_t *)p)[i]);
    case DTYPE_I32: return ((const int32_t *)p)[i];
    case DTYPE_F64: return ((const double *)p)[i];
    }
    return 0;
}

static void host_store(void *p, dtype_t dt, int64_t i, double x) {
    switch (dt) {
    case DTYPE_F32: ((float *)p)[i] = (float)x; break;
    case DTYPE_BF16: ((uint16_t *)p)[i] = f32_to_bf16((float)x); break;
    case DTYPE_F16: ((uint16_t *)p)[i] = f32_to_f16((float)x); break;
    case DTYPE_I32: ((int32_t *)p)[i] = (int32_t)x; break;
    case DTYPE_F64: ((double *)p)[i] = x; break;
    }
}

static void host_convert(void *dst, dtype_t ddt, const void *src, dtype_t sdt, int64_t n) {
    if (ddt == sdt) {
        memcpy(dst, src, (size_t)n * dtype_size(ddt));
        return;
    }
    CHECK((ddt == DTYPE_I32) == (sdt == DTYPE_I32), "cannot convert %s to %s", dtype_name(sdt), dtype_name(ddt));
    for (int64_t i = 0; i < n; i++) host_store(dst, ddt, i, host_load(src, sdt, i));
}

void tensor_copy(tensor_t *dst, const tensor_t *src) {
    char a[96], b[96];
    CHECK(tensor_same_shape(dst, src), "tensor_copy: shape %s into %s", tensor_shape_str(src, a, sizeof a),
          tensor_shape_str(dst, b, sizeof b));
    int64_t n = tensor_numel(src);
    if (src->device == DEVICE_CPU && dst->device == DEVICE_CPU) {
        host_convert(dst->data, dst->dtype, src->data, src->dtype, n);
        return;
    }
#ifdef SLA_HAVE_CUDA
    /* Convert on the host side of the transfer: this path serves tools and tests, not steps. */
    if (src->device == DEVICE_CPU) {
        void *tmp = xmalloc(tensor_bytes(dst));
        host_convert(tmp, dst->dtype, src->data, src->dtype, n);
        cuda_mem_upload(dst->data, tmp, tensor_bytes(dst));
        free(tmp);
    } else if (dst->device == DEVICE_CPU) {
        void *tmp = xmalloc(tensor_bytes(src));
        cuda_mem_download(tmp, src->data, tensor_bytes(src));
        host_convert(dst->data, dst->dtype, tmp, src->dtype, n);
        free(tmp);
    } else {
        CHECK(dst->dtype == src->dtype, "device-to-device copy with conversion %s -> %s is not supported",
              dtype_name(src->dtype), dtype_name(dst->dtype));
        cuda_mem_copy_d2d(dst->data, src->data, tensor_bytes(src));
    }
#else
    CHECK(0, "a CUDA tensor was passed but this build has no CUDA backend");
#endif
}
