/* Tensor objects and their storage: allocation, views, reference counts,
 * destruction, and the read-only queries. */
#include "internal.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>

_Atomic(loom__unlink_fn) loom__unlink_hook;
_Atomic(loom__cleanup_fn) loom__cleanup_hook;

static atomic_llong live_tensors;
static atomic_llong live_bytes;

int64_t loom_debug_live_tensors(void) { return atomic_load(&live_tensors); }
int64_t loom_debug_live_bytes(void) { return atomic_load(&live_bytes); }

/* Storage header and data in one block; data aligned for SIMD loads. */
#define STORAGE_HEADER 64
_Static_assert(sizeof(loom__storage) <= STORAGE_HEADER, "storage header");

static loom__storage *storage_new(int64_t nbytes, const char *op) {
  size_t total = STORAGE_HEADER + (size_t)(nbytes > 0 ? nbytes : 0);
  total = (total + 63) & ~(size_t)63;
  char *block = loom__block_alloc(&total);
  if (!block)
    return LOOM_FAIL(LOOM_ERR_MEMORY, "%s: out of memory allocating %lld bytes",
                     op, (long long)nbytes);
  loom__storage *s = (loom__storage *)block;
  *s = (loom__storage){.refcount = 1,
                       .nbytes = nbytes,
                       .block_bytes = (int64_t)total,
                       .data = block + STORAGE_HEADER};
  atomic_fetch_add(&live_bytes, nbytes);
  return s;
}

static void storage_unref(loom__storage *s) {
  if (!loom__deref(&s->refcount))
    return;
  atomic_fetch_sub(&live_bytes, s->nbytes);
  if (s->release)
    s->release(s->data, s->release_ctx);
  if (s->block_bytes > 0)
    loom__block_free(s, (size_t)s->block_bytes);
  else
    free(s); /* the header of an external buffer */
}

static loom_tensor *tensor_shell(loom__storage *storage, loom_dtype dtype,
                                 int ndim, const int64_t *shape,
                                 const int64_t *strides, int64_t offset) {
  loom_tensor *t = loom__tensor_struct_alloc();
  if (!t)
    return LOOM_FAIL(LOOM_ERR_MEMORY, "out of memory allocating a tensor");
  t->storage = storage;
  t->offset = offset;
  t->data = storage
                ? storage->data + offset * (int64_t)loom_dtype_size(dtype)
                : NULL;
  t->ndim = ndim;
  t->dtype = dtype;
  t->numel = loom__numel_of(ndim, shape);
  for (int i = 0; i < ndim; i++) {
    t->shape[i] = shape[i];
    t->strides[i] = strides[i];
  }
  atomic_init(&t->refcount, 1);
  t->requires_grad = false;
  t->retains_grad = false;
  atomic_init(&t->grad_busy, false);
  t->link = (loom__grad_link){.slot = LOOM__LINK_LEAF};
  t->grad = NULL;
  t->hooks = NULL;
  atomic_fetch_add(&live_tensors, 1);
  return t;
}

static bool valid_shape(int ndim, const int64_t *shape, const char *op) {
  if (ndim < 0 || ndim > LOOM_MAX_DIMS) {
    loom_set_error(LOOM_ERR_SHAPE, "%s: %d dims (at most %d)", op, ndim,
                   LOOM_MAX_DIMS);
    return false;
  }
  if (ndim > 0 && !shape) {
    loom_null_argument(op);
    return false;
  }
  for (int i = 0; i < ndim; i++)
    if (shape[i] < 0) {
      loom_set_error(LOOM_ERR_SHAPE, "%s: negative size %lld in dim %d", op,
                     (long long)shape[i], i);
      return false;
    }
  if (!loom__sizes_fit(ndim, shape)) {
    char buf[160];
    loom_set_error(LOOM_ERR_SHAPE, "%s: shape %s too large", op,
                   loom_format_shape(ndim, shape, buf, sizeof buf));
    return false;
  }
  return true;
}

loom_tensor *loom__alloc(loom_dtype dtype, int ndim, const int64_t *shape,
                         const char *op) {
  dtype = loom__resolve(dtype);
  if (dtype <= LOOM_DTYPE_DEFAULT || dtype >= LOOM_DTYPE_COUNT)
    return LOOM_FAIL(LOOM_ERR_DTYPE, "%s: unknown dtype %d", op, (int)dtype);
  if (!valid_shape(ndim, shape, op))
    return NULL;
  int64_t strides[LOOM_MAX_DIMS];
  loom__contiguous_strides(ndim, shape, strides);
  int64_t n = loom__numel_of(ndim, shape);
  loom__storage *s = storage_new(n * (int64_t)loom_dtype_size(dtype), op);
  if (!s)
    return NULL;
  loom_tensor *t = tensor_shell(s, dtype, ndim, shape, strides, 0);
  if (!t)
    storage_unref(s);
  return t;
}

loom_tensor *loom__new(loom_dtype dtype, int ndim, const int64_t *shape,
                       const char *op) {
  return loom__to_scope(loom__alloc(dtype, ndim, shape, op));
}

loom_tensor *loom__view_of(const loom_tensor *base, int ndim,
                           const int64_t *shape, const int64_t *strides,
                           int64_t offset) {
  loom_tensor *t =
      tensor_shell(base->storage, base->dtype, ndim, shape, strides, offset);
  if (t)
    loom__ref(&base->storage->refcount);
  return t;
}

loom_tensor *loom__stand_in(const loom_tensor *t) {
  return tensor_shell(NULL, t->dtype, t->ndim, t->shape, t->strides,
                      t->offset);
}

/* A user's strides for from_buffer (the shape already checked). Kernels
 * add up index * stride in int64 without checks, as the tensors loom makes
 * itself have strides bounded by their sizes: strides of any size had let
 * that overflow (undefined behaviour; seen in matmul). Each stride is
 * bounded, so any sum of strides fits too, and so is the furthest element,
 * as sizes are: every offset, every size * stride (iter.c merges dims by
 * that product) and any sum of strides then stays far below 2^63. */
static bool valid_strides(int ndim, const int64_t *shape,
                          const int64_t *strides) {
  char sh[160], st[160];
  int64_t extent = 0, step;
  for (int i = 0; i < ndim; i++) {
    if (strides[i] < 0 || strides[i] > LOOM_MAX_ELEMENTS) {
      loom_set_error(LOOM_ERR_SHAPE,
                     "from_buffer: stride %lld in dim %d of strides %s is "
                     "outside [0, %lld] (2^59 - 1; no negative strides)",
                     (long long)strides[i], i,
                     loom_format_shape(ndim, strides, st, sizeof st),
                     (long long)LOOM_MAX_ELEMENTS);
      return false;
    }
    if (shape[i] > 1 &&
        (__builtin_mul_overflow(shape[i] - 1, strides[i], &step) ||
         __builtin_add_overflow(extent, step, &extent) ||
         extent > LOOM_MAX_ELEMENTS)) {
      loom_set_error(LOOM_ERR_SHAPE,
                     "from_buffer: shape %s with strides %s reaches past "
                     "element %lld (2^59 - 1)",
                     loom_format_shape(ndim, shape, sh, sizeof sh),
                     loom_format_shape(ndim, strides, st, sizeof st),
                     (long long)LOOM_MAX_ELEMENTS);
      return false;
    }
  }
  return true;
}

loom_tensor *loom_from_buffer(loom_dtype dtype, void *data, int ndim,
                              const int64_t *shape, const int64_t *strides,
                              void (*release)(void *, void *), void *ctx) {
  dtype = loom__resolve(dtype);
  if (dtype <= LOOM_DTYPE_DEFAULT || dtype >= LOOM_DTYPE_COUNT)
    return LOOM_FAIL(LOOM_ERR_DTYPE, "from_buffer: unknown dtype %d",
                     (int)dtype);
  if (!data)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "from_buffer: NULL data");
  if (!valid_shape(ndim, shape, "from_buffer"))
    return NULL;
  int64_t cstrides[LOOM_MAX_DIMS];
  if (!strides) {
    loom__contiguous_strides(ndim, shape, cstrides);
    strides = cstrides;
  } else if (!valid_strides(ndim, shape, strides)) {
    return NULL;
  }
  loom__storage *s = malloc(sizeof *s);
  if (!s)
    return LOOM_FAIL(LOOM_ERR_MEMORY, "from_buffer: out of memory");
  *s = (loom__storage){
      .refcount = 1, .data = data, .release = release, .release_ctx = ctx};
  loom_tensor *t = tensor_shell(s, dtype, ndim, shape, strides, 0);
  if (!t) {
    free(s);
    return NULL;
  }
  return loom__to_scope(t);
}

/* Destruction is iterative: freeing a tensor can free an autograd node,
 * which drops the tensors it kept, and a long unrolled graph must not turn
 * that into deep recursion. */
static _Thread_local loom_tensor **dying;
static _Thread_local int64_t dying_n, dying_cap;
static _Thread_local bool draining;

static void destroy(loom_tensor *t) {
  loom__unlink_fn unlink =
      atomic_load_explicit(&loom__unlink_hook, memory_order_relaxed);
  if (t->link.slot >= 0 && unlink)
    unlink(t);
  if (t->grad)
    loom__unref(t->grad);
  if (t->storage) /* a stand-in has none */
    storage_unref(t->storage);
  atomic_fetch_sub(&live_tensors, 1);
  loom__tensor_struct_free(t);
}

void loom__unref(loom_tensor *t) {
  if (!t || !loom__deref(&t->refcount))
    return;
  if (dying_n == dying_cap) {
    int64_t cap = dying_cap ? 2 * dying_cap : 64;
    loom_tensor **grown = realloc(dying, (size_t)cap * sizeof *grown);
    if (!grown) { /* cannot queue: destroy now (recursion is bounded) */
      destroy(t);
      return;
    }
    dying = grown;
    dying_cap = cap;
  }
  dying[dying_n++] = t;
  if (draining)
    return;
  draining = true;
  while (dying_n > 0)
    destroy(dying[--dying_n]);
  draining = false;
  if (dying_cap > 4096) { /* do not hold on to a spike */
    free(dying);
    dying = NULL;
    dying_cap = 0;
  }
}

loom_tensor *loom_keep(loom_tensor *t) {
  if (t)
    loom__ref(&t->refcount);
  return t;
}

void loom_release(loom_tensor *t) { loom__unref(t); }

void loom_cleanup(void) {
  loom__cleanup_fn cleanup =
      atomic_load_explicit(&loom__cleanup_hook, memory_order_relaxed);
  if (cleanup && !cleanup())
    return;
  loom__scope_drain_all();
  loom__alloc_release();
  free(dying);
  dying = NULL;
  dying_cap = dying_n = 0;
}

/* ---- queries ---- */

int loom_ndim(const loom_tensor *t) {
  if (!t)
    return loom_null_argument("ndim"), -1;
  return t->ndim;
}

int64_t loom_size(const loom_tensor *t, int dim) {
  if (!t)
    return loom_null_argument("size"), -1;
  int d = loom__dim(dim, t->ndim, "size");
  return d < 0 ? -1 : t->shape[d];
}

const int64_t *loom_shape(const loom_tensor *t) {
  return t ? t->shape : loom_null_argument("shape");
}
const int64_t *loom_strides(const loom_tensor *t) {
  return t ? t->strides : loom_null_argument("strides");
}
int64_t loom_numel(const loom_tensor *t) { return t ? t->numel : 0; }
loom_dtype loom_dtype_of(const loom_tensor *t) {
  return t ? t->dtype : LOOM_DTYPE_DEFAULT;
}
bool loom_is_contiguous(const loom_tensor *t) {
  return t && loom__is_contiguous(t);
}

bool loom_same_shape(const loom_tensor *a, const loom_tensor *b) {
  if (!a || !b || a->ndim != b->ndim)
    return false;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i])
      return false;
  return true;
}

/* Whether t's elements lie at distinct addresses: with its dims of more
 * than one element in increasing stride order, each stride passes the
 * furthest offset the dims before it reach (strides are not negative).
 * This is the layout of any dense or sliced tensor; a view whose strides
 * interleave without overlapping is counted as overlapping. */
bool loom__elements_distinct(const loom_tensor *t) {
  int64_t stride[LOOM_MAX_DIMS], size[LOOM_MAX_DIMS];
  int n = 0;
  for (int d = 0; d < t->ndim; d++)
    if (t->shape[d] > 1) { /* insertion sort by stride */
      int k = n++;
      for (; k > 0 && stride[k - 1] > t->strides[d]; k--) {
        stride[k] = stride[k - 1];
        size[k] = size[k - 1];
      }
      stride[k] = t->strides[d];
      size[k] = t->shape[d];
    }
  int64_t reach = 0; /* furthest offset of the dims so far */
  for (int k = 0; k < n; k++) {
    if (stride[k] <= reach)
      return false;
    reach += (size[k] - 1) * stride[k];
  }
  return true;
}

char *loom_shape_str(const loom_tensor *t, char *buf, size_t size) {
  if (!buf) /* snprintf into NULL with a size > 0 writes through it */
    return loom_null_argument("shape_str");
  if (!t) {
    snprintf(buf, size, "(null)");
    return buf;
  }
  return loom_format_shape(t->ndim, t->shape, buf, size);
}

void *loom_data(const loom_tensor *t) {
  return t ? t->data : loom_null_argument("data");
}

static void *typed(const loom_tensor *t, loom_dtype want, loom_dtype alt,
                   const char *fn) {
  if (!t)
    return loom_null_argument(fn);
  if (t->dtype != want && t->dtype != alt)
    return LOOM_FAIL(LOOM_ERR_DTYPE, "%s: tensor is %s", fn,
                     loom_dtype_name(t->dtype));
  return t->data;
}

float *loom_data_f32(const loom_tensor *t) {
  return typed(t, LOOM_F32, LOOM_F32, "data_f32");
}
double *loom_data_f64(const loom_tensor *t) {
  return typed(t, LOOM_F64, LOOM_F64, "data_f64");
}
int64_t *loom_data_i64(const loom_tensor *t) {
  return typed(t, LOOM_I64, LOOM_I64, "data_i64");
}
int32_t *loom_data_i32(const loom_tensor *t) {
  return typed(t, LOOM_I32, LOOM_I32, "data_i32");
}
uint8_t *loom_data_u8(const loom_tensor *t) {
  return typed(t, LOOM_U8, LOOM_BOOL, "data_u8");
}

static char *element(const loom_tensor *t, const int64_t *index,
                     const char *fn) {
  int64_t off = 0;
  for (int i = 0; i < t->ndim; i++) {
    if (index[i] < 0 || index[i] >= t->shape[i]) {
      loom_set_error(LOOM_ERR_INDEX,
                     "%s: index %lld out of range for dim %d "
                     "of %s",
                     fn, (long long)index[i], i, loom_shape_text(t));
      return NULL;
    }
    off += index[i] * t->strides[i];
  }
  return t->data + off * (int64_t)loom_dtype_size(t->dtype);
}

double loom_get(const loom_tensor *t, const int64_t *index) {
  if (!t || (!index && t->ndim > 0))
    return loom_null_argument("get"), NAN;
  char *p = element(t, index, "get");
  return p ? loom__read(p, t->dtype) : NAN;
}

double loom_item(const loom_tensor *t) {
  if (!t)
    return loom_null_argument("item"), NAN;
  if (t->numel != 1) {
    loom_set_error(LOOM_ERR_SHAPE, "item: tensor %s has %lld elements, not 1",
                   loom_shape_text(t), (long long)t->numel);
    return NAN;
  }
  return loom__read(t->data, t->dtype);
}

int loom_set(loom_tensor *t, const int64_t *index, double value) {
  if (!t || (!index && t->ndim > 0))
    return loom_null_argument("set"), -1;
  char *p = element(t, index, "set");
  if (!p)
    return -1;
  loom__write(p, t->dtype, value);
  loom__bump_version(t);
  return 0;
}
