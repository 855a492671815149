/* Ops that put a tensor's elements in new places: flip, roll, repeat and
 * tile. Each is a composition of index_select, narrow and concat, so
 * autograd derives the backward (and its backward) from theirs; the cost
 * is one copy per dim that changes, as the results are fresh memory. */
#include "node.h"

/* The positions size-1, ..., 1, 0 (int64), for index_select. */
static loom_tensor *reversed_positions(int64_t size) {
  loom_tensor *ix = loom_empty(LOOM_I64, 1, &size);
  if (ix) {
    int64_t *v = (int64_t *)ix->data;
    for (int64_t i = 0; i < size; i++)
      v[i] = size - 1 - i;
  }
  return ix;
}

/* The size of dim d (a 0-dim tensor has dim 0 of size 1, as in PyTorch). */
static int64_t size_of(const loom_tensor *t, int d) {
  return t->ndim ? t->shape[d] : 1;
}

loom_tensor *loom_flip(const loom_tensor *t, const int *dims, int n) {
  if (!t || (!dims && n > 0))
    return loom_null_argument("flip");
  if (n < 0) /* it was taken as 0: a copy */
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "flip: %d dims (0 or more)", n);
  bool seen[LOOM_MAX_DIMS] = {false};
  for (int k = 0; k < n; k++) {
    int d = loom__dim(dims[k], t->ndim, "flip");
    if (d < 0)
      return NULL;
    if (seen[d])
      return LOOM_FAIL(LOOM_ERR_ARGUMENT, "flip: dim %d named twice", d);
    seen[d] = true;
  }
  const loom_tensor *out = t;
  for (int d = 0; d < t->ndim && out; d++)
    if (seen[d] && t->shape[d] > 1)
      out = loom_index_select(out, d, reversed_positions(t->shape[d]));
  /* A result is fresh memory even when no dim needed reversing. */
  return out == t ? loom_clone(t) : (loom_tensor *)out;
}

/* t rolled by `shift` along d: its last (shift mod size) elements first. */
static const loom_tensor *roll_dim(const loom_tensor *t, int d, int64_t shift) {
  int64_t size = size_of(t, d);
  if (size == 0)
    return t;
  int64_t s = shift % size;
  if (s < 0)
    s += size;
  if (s == 0)
    return t;
  loom_tensor *parts[2] = {loom_narrow(t, d, size - s, s),
                           loom_narrow(t, d, 0, size - s)};
  return parts[0] && parts[1] ? loom_concat(parts, 2, d) : NULL;
}

loom_tensor *loom_roll(const loom_tensor *t, const int64_t *shifts,
                       const int *dims, int n) {
  if (!t || !shifts)
    return loom_null_argument("roll");
  if (n < 1 || (!dims && n != 1))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "roll: %d shifts (at least one; exactly one without "
                     "dims)",
                     n);
  if (!dims) { /* the flattened tensor, rolled, in t's shape again */
    const loom_tensor *flat = loom_reshape(t, 1, (int64_t[]){t->numel});
    if (!flat)
      return NULL;
    const loom_tensor *r = roll_dim(flat, 0, shifts[0]);
    return r == flat ? loom_clone(t) : loom_reshape(r, t->ndim, t->shape);
  }
  const loom_tensor *out = t;
  for (int k = 0; k < n && out; k++) {
    int d = loom__dim(dims[k], t->ndim, "roll");
    if (d < 0)
      return NULL;
    if (t->ndim)
      out = roll_dim(out, d, shifts[k]);
  }
  return out == t ? loom_clone(t) : (loom_tensor *)out;
}

/* The positions 0, 1, ..., size-1 over and over, count of them. */
static loom_tensor *cyclic_positions(int64_t size, int64_t count) {
  loom_tensor *ix = loom_empty(LOOM_I64, 1, &count);
  if (ix) {
    int64_t *v = (int64_t *)ix->data;
    for (int64_t i = 0, k = 0; i < count; i++, k = k + 1 == size ? 0 : k + 1)
      v[i] = k;
  }
  return ix;
}

/* t with new leading size-1 dims up to n, each dim d then taken repeats[d]
 * times over. */
static loom_tensor *repeat_dims(const loom_tensor *t, int n,
                                const int64_t *repeats, const char *op) {
  int64_t shape[LOOM_MAX_DIMS] = {0}, result[LOOM_MAX_DIMS] = {0};
  for (int d = 0; d < n; d++) {
    if (repeats[d] < 0)
      return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                       "%s: %lld repeats of dim %d (must be >= 0)", op,
                       (long long)repeats[d], d);
    shape[d] = d < n - t->ndim ? 1 : t->shape[d - (n - t->ndim)];
    result[d] = loom_size_mul(repeats[d], shape[d], op);
    if (result[d] < 0)
      return NULL;
  }
  if (!loom__sizes_fit(n, result)) { /* before any positions are made */
    char s[128];
    return LOOM_FAIL(LOOM_ERR_SHAPE, "%s: result %s too large", op,
                     loom_format_shape(n, result, s, sizeof s));
  }
  const loom_tensor *x = loom_reshape(t, n, shape);
  const loom_tensor *view = x;
  for (int d = 0; d < n && x; d++)
    if (repeats[d] != 1)
      x = loom_index_select(x, d, cyclic_positions(shape[d], result[d]));
  return x == view ? loom_clone(view) : (loom_tensor *)x;
}

loom_tensor *loom_repeat(const loom_tensor *t, int n, const int64_t *repeats) {
  if (!t || (!repeats && n > 0))
    return loom_null_argument("repeat");
  if (n < t->ndim || n > LOOM_MAX_DIMS)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "repeat: %d repeats for %s (one per dim, new leading "
                     "dims up to %d in all)",
                     n, loom_shape_text(t), LOOM_MAX_DIMS);
  return repeat_dims(t, n, repeats, "repeat");
}

loom_tensor *loom_tile(const loom_tensor *t, int n, const int64_t *reps) {
  if (!t || (!reps && n > 0))
    return loom_null_argument("tile");
  if (n < 0 || n > LOOM_MAX_DIMS)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "tile: %d reps (0 to %d)", n,
                     LOOM_MAX_DIMS);
  int64_t all[LOOM_MAX_DIMS];
  int m = n > t->ndim ? n : t->ndim;
  for (int d = 0; d < m; d++) /* missing reps are leading ones */
    all[d] = d < m - n ? 1 : reps[d - (m - n)];
  return repeat_dims(t, m, all, "tile");
}
