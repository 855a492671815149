/* The tensor struct and the helpers the library's own files share. Not
 * installed: users see loom_tensor as an opaque type. */
#ifndef LOOM_TENSOR_INTERNAL_H
#define LOOM_TENSOR_INTERNAL_H

#include "tensor.h"

#include <stdatomic.h>
#include <string.h>

/* Reference counts are atomic, so threads may share tensors (a model's
 * parameters): taking a reference is a relaxed increment (the taker
 * already holds one, which keeps the object alive), dropping one an
 * acquire-release decrement (the last holder must see every other
 * holder's writes before it frees). */
typedef _Atomic int64_t loom__refcount;

static inline void loom__ref(loom__refcount *rc) {
  atomic_fetch_add_explicit(rc, 1, memory_order_relaxed);
}

/* Drops a reference; true when it was the last. A count of 1 is the
 * caller's own reference, and no other thread can hold one to change it,
 * so the common case (a temporary dying) needs no locked instruction. */
static inline bool loom__deref(loom__refcount *rc) {
  return atomic_load_explicit(rc, memory_order_acquire) == 1 ||
         atomic_fetch_sub_explicit(rc, 1, memory_order_acq_rel) == 1;
}

typedef struct loom__storage {
  loom__refcount refcount;
  /* Bumped by every in-place write, so autograd can tell whether a tensor it
   * saved still holds the values it saw (shared by all views). */
  int64_t version;
  int64_t nbytes;
  /* Bytes of the block holding header and data (0: an external buffer),
   * which may exceed what nbytes needs when the block was reused. */
  int64_t block_bytes;
  char *data;
  void (*release)(void *data, void *ctx); /* external buffers only */
  void *release_ctx;
} loom__storage;

/* link.slot of a tensor no node produced: a leaf, or a result made with
 * recording off. */
#define LOOM__LINK_LEAF (-1)
/* link.slot of a result whose op could not be recorded (out of memory
 * while recording or saving): backward through it fails with an error
 * instead of giving a wrong gradient. */
#define LOOM__LINK_FAILED (-2)

/* Autograd's link from a tensor to the node that produced it. The node is
 * valid only while the tape slot still has generation `gen`, and only on
 * the thread whose tape is `tape` (each thread records on its own). */
typedef struct loom__grad_link {
  int32_t slot; /* a tape slot, or one of the two values above */
  uint32_t gen;
  int32_t output; /* which output of the node */
  uint32_t tape;  /* the recording thread's tape (never 0 for a node) */
} loom__grad_link;

struct loom_tensor {
  loom__storage *storage;
  char *data;     /* storage->data + offset * itemsize */
  int64_t offset; /* in elements */
  int64_t numel;
  int64_t shape[LOOM_MAX_DIMS];
  int64_t strides[LOOM_MAX_DIMS];
  int32_t ndim;
  loom_dtype dtype;
  loom__refcount refcount;
  /* autograd */
  bool requires_grad;
  bool retains_grad;
  /* Held while a backward writes `grad` (loom__grad_in_place): threads
   * sharing a leaf (a model's parameter) add their gradients in turn. */
  atomic_bool grad_busy;
  loom__grad_link link;
  loom_tensor *grad;       /* owned */
  struct loom_hook *hooks; /* grad-ready and tensor hooks (autograd/hooks.c) */
};

/* t's geometry and data in a stack tensor for kernels: no reference is
 * taken, so it is valid while t lives. Unlike a struct copy it reads
 * neither t's reference count nor its gradient, which other threads may be
 * changing when t is shared. */
static inline loom_tensor loom__geometry(const loom_tensor *t) {
  loom_tensor v = {.storage = t->storage,
                   .data = t->data,
                   .offset = t->offset,
                   .numel = t->numel,
                   .ndim = t->ndim,
                   .dtype = t->dtype,
                   .refcount = 1,
                   .link = {.slot = LOOM__LINK_LEAF}};
  memcpy(v.shape, t->shape, sizeof v.shape);
  memcpy(v.strides, t->strides, sizeof v.strides);
  return v;
}

/* ---- memory blocks (alloc.c): kept per thread for reuse ---- */

/* A 64-byte aligned block of at least *bytes (a multiple of 64); *bytes
 * receives its real size, which loom__block_free must be given. */
void *loom__block_alloc(size_t *bytes);
void loom__block_free(void *block, size_t bytes);
/* Uninitialised memory for one loom_tensor, and its release. */
loom_tensor *loom__tensor_struct_alloc(void);
void loom__tensor_struct_free(loom_tensor *t);
/* Frees everything the thread keeps for reuse. */
void loom__alloc_release(void);

/* ---- allocation (tensor.c) ---- */

/* A new contiguous tensor with one reference owned by the caller (not yet in
 * any scope). dtype must be concrete. NULL + error on bad shape / memory. */
loom_tensor *loom__alloc(loom_dtype dtype, int ndim, const int64_t *shape,
                         const char *op);
/* A view of `base` with the given geometry, one caller-owned reference. */
loom_tensor *loom__view_of(const loom_tensor *base, int ndim,
                           const int64_t *shape, const int64_t *strides,
                           int64_t offset);
/* A tensor with t's dtype and geometry but no storage (storage and data
 * NULL), so it holds none of t's memory; one caller-owned reference. What
 * autograd keeps of an input whose values its backward never reads: the
 * shape, dtype and grad link (the caller sets the link). */
loom_tensor *loom__stand_in(const loom_tensor *t);
/* Puts a caller-owned reference into the innermost scope and returns t. */
loom_tensor *loom__to_scope(loom_tensor *t);
/* Scope-owned results (the common case): alloc + to_scope. */
loom_tensor *loom__new(loom_dtype dtype, int ndim, const int64_t *shape,
                       const char *op);
/* Drops one reference (the function behind loom_release). */
void loom__unref(loom_tensor *t);

/* Called when a tensor with a valid grad link is destroyed (set by
 * autograd, so tensor/ never calls up into it directly). Atomic: the first
 * recording thread sets them while others read. */
typedef void (*loom__unlink_fn)(loom_tensor *t);
typedef bool (*loom__cleanup_fn)(void);
extern _Atomic(loom__unlink_fn) loom__unlink_hook;
/* Called by loom_cleanup before scopes are drained; false (an error set):
 * the thread's tape is in use, and loom_cleanup frees nothing. */
extern _Atomic(loom__cleanup_fn) loom__cleanup_hook;

/* ---- geometry (shape.c) ---- */

int64_t loom__numel_of(int ndim, const int64_t *shape);
/* Whether sizes (each >= 0; entries < 0 are skipped) multiply, zeros
 * counted as ones, to at most LOOM_MAX_ELEMENTS: then element counts, byte
 * counts and contiguous strides cannot overflow, even for a shape with a
 * zero in it. */
bool loom__sizes_fit(int ndim, const int64_t *shape);
void loom__contiguous_strides(int ndim, const int64_t *shape, int64_t *strides);
/* Whether t's elements lie at distinct addresses (no expanded dim, no
 * strides that overlap): what an in-place write or a gradient that backward
 * adds into needs. Conservative: a view whose strides interleave without
 * overlapping counts as overlapping. */
bool loom__elements_distinct(const loom_tensor *t);
bool loom__is_contiguous(const loom_tensor *t);
/* Normalises a possibly negative dim for a tensor of `ndim` dims (ndim+1
 * for insert positions); -1 + error naming `op` when out of range. */
int loom__dim(int dim, int ndim, const char *op);
/* NumPy broadcast of two shapes; -1 + error naming op and shapes. */
int loom__broadcast_shape(const loom_tensor *a, const loom_tensor *b,
                          int64_t *out_shape, const char *op);
/* Strides that view t as broadcast to `shape` (stride 0 on broadcast dims);
 * t's shape must be broadcastable. */
void loom__broadcast_strides(const loom_tensor *t, int ndim,
                             const int64_t *shape, int64_t *strides);

/* ---- dtypes ---- */

loom_dtype loom__resolve(loom_dtype dtype); /* DEFAULT -> thread default */
loom_dtype loom__promote(loom_dtype a, loom_dtype b);
/* Promotion where a 0-dim tensor does not raise the dtype of a dimensioned
 * tensor of the same kind, float or integer (PyTorch's rule for wrapped
 * scalars). */
loom_dtype loom__promote_tensors(const loom_tensor *a, const loom_tensor *b);
double loom__read(const char *p, loom_dtype dtype);
void loom__write(char *p, loom_dtype dtype, double v);

/* Float -> integer conversions saturate (NaN -> 0) instead of being
 * undefined. */
static inline int64_t loom__to_i64(double v) {
  return v != v                        ? 0
         : v >= 9.2233720368547758e18  ? INT64_MAX
         : v <= -9.2233720368547758e18 ? INT64_MIN
                                       : (int64_t)v;
}
static inline int32_t loom__to_i32(double v) {
  return v != v               ? 0
         : v >= 2147483647.0  ? INT32_MAX
         : v <= -2147483648.0 ? INT32_MIN
                              : (int32_t)v;
}
static inline uint8_t loom__to_u8(double v) {
  return v != v || v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v;
}

/* ---- errors ---- */

/* True (and error recorded) when t is NULL or not of a float dtype. */
bool loom__check_float(const loom_tensor *t, const char *op);

/* ---- versions ---- */
static inline void loom__bump_version(loom_tensor *t) { t->storage->version++; }

/* ---- scopes ---- */
void loom__scope_drain_all(void);

/* ---- tensor maps ---- */
/* Why `name` cannot name a tensor of a map ("is the safetensors header's
 * own key", ...), or NULL when it can (tensor_map.c). */
const char *loom__tensor_name_problem(const char *name);

/* ---- threads ---- */
/* Below this many elements a kernel stays on one thread (cost model: thread
 * wake-up ~ several microseconds; scaled by the per-element cost). */
#define LOOM__PAR_MIN 32768
int loom__threads_for(int64_t work);
/* Calls fn(ctx, lo, hi) on nt contiguous parts of [0, n), part t being
 * [n t / nt, n (t + 1) / nt), on loom's workers and the calling thread,
 * and returns when all are done (tensor/threads.c). A call made while the
 * workers are busy (from a worker, or from another thread) runs the same
 * parts one after the other, so a kernel whose parts write disjoint
 * outputs gives the same results either way. */
typedef void (*loom__range_fn)(void *ctx, int64_t lo, int64_t hi);
void loom__parallel_for(int nt, int64_t n, loom__range_fn fn, void *ctx);
/* The same, for parts that may run at uneven speeds (a core shared with
 * another process, or one further from the data): fn(ctx, part, lo, hi)
 * runs pieces [lo, hi) that together hold each item of [0, n) once, in any
 * order. Part t owns [n t / nt', n (t + 1) / nt') (nt' = nt, at most n and
 * 64; past 2^32 items the parts keep their own ranges); its first piece is all
 * of that but the last `tail` items (or `grain` items, if more), its later
 * pieces `grain` items each; once its own are taken, it takes the last pieces
 * of the others' ranges, so that all finish together. `part` names the part
 * that runs the piece (0 <= part < nt'): no two pieces run at once with the
 * same part, so it may index per-part scratch. fn must not care which thread
 * runs a piece. */
typedef void (*loom__piece_fn)(void *ctx, int part, int64_t lo, int64_t hi);
void loom__parallel_for_balanced(int nt, int64_t n, int64_t grain, int64_t tail,
                                 loom__piece_fn fn, void *ctx);
/* loom__parallel_for_balanced for items of equal cost and no reuse
 * between them (elementwise work, attention's blocks): each part's first
 * three quarters at once, the rest in sixteenths. On a host that slows one
 * core or the other, static parts had waited 5-25 % of such kernels' time
 * in an encoder step. */
void loom__parallel_for_even_out(int nt, int64_t n, loom__piece_fn fn,
                                 void *ctx);

/* A lock for short sections (a gradient's accumulation): one locked
 * instruction when nobody else holds it; a waiter spins, then yields. */
void loom__spin_wait(atomic_bool *lock);
static inline void loom__spin_lock(atomic_bool *lock) {
  if (atomic_exchange_explicit(lock, true, memory_order_acquire))
    loom__spin_wait(lock);
}
static inline void loom__spin_unlock(atomic_bool *lock) {
  atomic_store_explicit(lock, false, memory_order_release);
}

#endif
