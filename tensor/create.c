/* Creating tensors: constant fills, ranges, identity, from C arrays. */
#include "kernels.h"

#include <math.h>

loom_tensor *loom_empty(loom_dtype dtype, int ndim, const int64_t *shape) {
  return loom__new(dtype, ndim, shape, "empty");
}

loom_tensor *loom_full(loom_dtype dtype, double value, int ndim,
                       const int64_t *shape) {
  loom_tensor *t = loom__new(dtype, ndim, shape, "full");
  if (t)
    loom__kernel_fill(t, value);
  return t;
}

loom_tensor *loom_zeros(loom_dtype dtype, int ndim, const int64_t *shape) {
  return loom_full(dtype, 0, ndim, shape);
}

loom_tensor *loom_ones(loom_dtype dtype, int ndim, const int64_t *shape) {
  return loom_full(dtype, 1, ndim, shape);
}

loom_tensor *loom_scalar(loom_dtype dtype, double value) {
  return loom_full(dtype, value, 0, NULL);
}

loom_tensor *loom_empty_like(const loom_tensor *t) {
  return t ? loom_empty(t->dtype, t->ndim, t->shape)
           : loom_null_argument("empty_like");
}
loom_tensor *loom_zeros_like(const loom_tensor *t) {
  return t ? loom_zeros(t->dtype, t->ndim, t->shape)
           : loom_null_argument("zeros_like");
}
loom_tensor *loom_ones_like(const loom_tensor *t) {
  return t ? loom_ones(t->dtype, t->ndim, t->shape)
           : loom_null_argument("ones_like");
}
loom_tensor *loom_full_like(const loom_tensor *t, double value) {
  return t ? loom_full(t->dtype, value, t->ndim, t->shape)
           : loom_null_argument("full_like");
}

loom_tensor *loom_arange(loom_dtype dtype, double start, double end,
                         double step) {
  if (step == 0 || !isfinite(start) || !isfinite(end) || !isfinite(step))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "arange: bad range %g..%g step %g",
                     start, end, step);
  if (step > 0 ? end < start : end > start) /* torch refuses it too */
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "arange: %g..%g runs against step %g (an empty range "
                     "has end == start)",
                     start, end, step);
  double count = ceil((end - start) / step);
  if (!(count <= (double)LOOM_MAX_ELEMENTS)) /* inf when end - start is */
    return LOOM_FAIL(
        LOOM_ERR_SHAPE,
        "arange: %g..%g step %g has %g elements (at most 2^59 - 1)", start, end,
        step, count);
  int64_t n = count > 0 ? (int64_t)count : 0;
  loom_tensor *t = loom__new(dtype, 1, &n, "arange");
  if (!t)
    return NULL;
  size_t es = loom_dtype_size(t->dtype);
  for (int64_t i = 0; i < n; i++)
    loom__write(t->data + (size_t)i * es, t->dtype, start + (double)i * step);
  return t;
}

loom_tensor *loom_linspace(loom_dtype dtype, double start, double end,
                           int64_t steps) {
  if (steps < 0)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "linspace: steps %lld < 0",
                     (long long)steps);
  if (!isfinite(start) || !isfinite(end))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "linspace: start %g and end %g must be finite", start,
                     end);
  loom_tensor *t = loom__new(dtype, 1, &steps, "linspace");
  if (!t)
    return NULL;
  size_t es = loom_dtype_size(t->dtype);
  double step = steps > 1 ? (end - start) / (double)(steps - 1) : 0;
  /* A span wider than the largest double (-1e308 to 1e308) makes that
   * step infinite, and every point NaN or inf (as PyTorch's are); the
   * difference of the bounds' shares is finite for 3 points or more. Two
   * points are the bounds themselves (each is a bound plus 0 * step, which
   * an infinite step would make NaN), so their step is 0. */
  if (isinf(step))
    step =
        steps > 2 ? end / (double)(steps - 1) - start / (double)(steps - 1) : 0;
  /* Like PyTorch: the first half counts up from start, the second half
   * down from end, so both endpoints are exact (one point is start). */
  for (int64_t i = 0; i < steps; i++) {
    double v = i < steps / 2 || steps == 1
                   ? start + step * (double)i
                   : end - step * (double)(steps - 1 - i);
    loom__write(t->data + (size_t)i * es, t->dtype, v);
  }
  return t;
}

loom_tensor *loom_eye(loom_dtype dtype, int64_t n, int64_t m) {
  if (m < 0)
    m = n;
  loom_tensor *t = loom_zeros(dtype, 2, (int64_t[]){n, m});
  if (!t)
    return NULL;
  size_t es = loom_dtype_size(t->dtype);
  for (int64_t i = 0; i < n && i < m; i++)
    loom__write(t->data + (size_t)(i * m + i) * es, t->dtype, 1);
  return t;
}

loom_tensor *loom_from_array(loom_dtype dtype, const void *data, int ndim,
                             const int64_t *shape) {
  loom_tensor *t = loom__new(dtype, ndim, shape, "from_array");
  if (!t)
    return NULL;
  if (t->numel > 0 && !data)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "from_array: NULL data");
  if (t->numel > 0)
    memcpy(t->data, data, (size_t)t->numel * loom_dtype_size(t->dtype));
  return t;
}

int loom_copy_to_array(const loom_tensor *t, loom_dtype dtype, void *dst,
                       int64_t n) {
  if (!t)
    return loom_null_argument("copy_to_array"), -1;
  dtype = loom__resolve(dtype);
  if (n != t->numel) {
    loom_set_error(LOOM_ERR_SHAPE, "copy_to_array: %lld elements for %s",
                   (long long)n, loom_shape_text(t));
    return -1;
  }
  if (dtype <= LOOM_DTYPE_DEFAULT || dtype >= LOOM_DTYPE_COUNT) {
    loom_set_error(LOOM_ERR_DTYPE, "copy_to_array: unknown dtype %d",
                   (int)dtype);
    return -1;
  }
  if (n == 0) /* nothing to copy: dst may be NULL, as memcpy's with 0 */
    return 0;
  if (!dst) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "copy_to_array: NULL dst for %lld elements of %s",
                   (long long)n, loom_shape_text(t));
    return -1;
  }
  /* A stack view of dst: a scope-owned one would pile up in a loop. */
  loom__storage s = {.refcount = 1, .data = dst};
  loom_tensor view = {.storage = &s,
                      .data = dst,
                      .ndim = t->ndim,
                      .dtype = dtype,
                      .numel = t->numel,
                      .refcount = 1};
  memcpy(view.shape, t->shape, sizeof view.shape);
  loom__contiguous_strides(t->ndim, t->shape, view.strides);
  loom__kernel_copy(&view, t);
  return 0;
}
