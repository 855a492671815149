/* In-place updates: they write into their first argument, bump its version
 * (so a backward that saved it notices), and are never recorded. */
#include "node.h"

#include <math.h>

static bool writable(loom_tensor *t, const loom_tensor *src, const char *op) {
  if (!t)
    return loom_null_argument(op), false;
  if (!loom__elements_distinct(t)) {
    loom_set_error(LOOM_ERR_STATE,
                   "%s: %s is a view whose elements share memory (expanded, "
                   "or with overlapping strides); clone it first",
                   op, loom_shape_text(t));
    return false;
  }
  if (src) {
    int64_t shape[LOOM_MAX_DIMS];
    int nd = loom__broadcast_shape(t, src, shape, op);
    if (nd < 0)
      return false;
    if (nd != t->ndim || loom__numel_of(nd, shape) != t->numel) {
      loom_set_error(LOOM_ERR_SHAPE, "%s: %s does not broadcast into %s", op,
                     loom_shape_text(src), loom_shape_text(t));
      return false;
    }
  }
  return loom__inplace_ok(t, op);
}

/* The bytes t's elements span: [*lo, *hi). */
static void span(const loom_tensor *t, const char **lo, const char **hi) {
  int64_t es = (int64_t)loom_dtype_size(t->dtype), a = 0, b = 0;
  for (int d = 0; d < t->ndim; d++) {
    int64_t reach = (t->shape[d] - 1) * t->strides[d] * es;
    *(reach < 0 ? &a : &b) += reach;
  }
  *lo = (const char *)t->data + a;
  *hi = (const char *)t->data + b + es;
}

/* src as the kernel writing dst may read it: itself, or a copy when the
 * two share memory other than element for element (a shifted view of the
 * same storage, or two tensors made over overlapping buffers: a pass in
 * any order would read some elements after writing them, and the copy
 * kernel's memcpy would be undefined). Memory is compared by address, so
 * views of one storage and borrowed buffers are alike. The result is what
 * src held before the write (torch refuses such a partial overlap). */
static const loom_tensor *apart(const loom_tensor *dst,
                                const loom_tensor *src) {
  if (src->numel == 0 || dst->numel == 0)
    return src;
  const char *a0, *a1, *b0, *b1;
  span(dst, &a0, &a1);
  span(src, &b0, &b1);
  if (a1 <= b0 || b1 <= a0)
    return src;
  bool same = src->data == dst->data && src->dtype == dst->dtype &&
              src->ndim == dst->ndim;
  for (int d = 0; same && d < dst->ndim; d++)
    same = src->shape[d] == dst->shape[d] && src->strides[d] == dst->strides[d];
  if (same)
    return src;
  loom_no_grad_begin();
  loom_tensor *copy = loom_clone(src);
  loom_no_grad_end();
  return copy;
}

bool loom__stays_integral(const loom_tensor *t, const loom_tensor *o, double s,
                          const char *op) {
  if (loom_dtype_is_float(t->dtype))
    return true;
  if (o && loom_dtype_is_float(o->dtype)) {
    loom_set_error(LOOM_ERR_DTYPE,
                   "%s: %s operand, %s tensor (the result must stay integral)",
                   op, loom_dtype_name(o->dtype), loom_dtype_name(t->dtype));
    return false;
  }
  if (s == floor(s) && fabs(s) < 9.2e18)
    return true;
  loom_set_error(LOOM_ERR_ARGUMENT,
                 "%s: scalar %g on a %s tensor (the result must stay "
                 "integral)",
                 op, s, loom_dtype_name(t->dtype));
  return false;
}

/* Another operand's values in t's dtype, or NULL with an error: a float
 * operand does not go into an integer tensor (torch refuses the cast;
 * converting would truncate it). */
static const loom_tensor *operand(const loom_tensor *t, const loom_tensor *o,
                                  const char *op) {
  if (!loom__stays_integral(t, o, 0, op))
    return NULL;
  o = apart(t, o);
  /* an integer operand goes into a uint8 tensor modulo 256 (not clamped,
   * as loom_to_dtype does): wrapping arithmetic then gives the
   * int64 result modulo 256, as PyTorch's cast of it */
  return o ? loom__to_promoted(o, t->dtype) : NULL;
}

loom_tensor *loom_copy_(loom_tensor *dst, const loom_tensor *src) {
  if (!src || !writable(dst, src, "copy_"))
    return loom_null_argument("copy_");
  if (!(src = apart(dst, src)))
    return NULL;
  loom__kernel_copy(dst, src);
  return dst;
}

loom_tensor *loom_fill_(loom_tensor *t, double value) {
  if (!writable(t, NULL, "fill_"))
    return NULL;
  loom__kernel_fill(t, value);
  return t;
}

loom_tensor *loom_zero_(loom_tensor *t) { return loom_fill_(t, 0); }

loom_tensor *loom_add_(loom_tensor *t, const loom_tensor *other, double alpha) {
  if (!other || !t)
    return loom_null_argument("add_");
  if (!loom__stays_integral(t, NULL, alpha, "add_") ||
      !writable(t, other, "add_"))
    return NULL;
  const loom_tensor *o = operand(t, other, "add_");
  if (!o || loom__kernel_binary(&loom__add_scaled_kernel, t, t, o,
                                (double[]){alpha}) < 0)
    return NULL;
  return t;
}

loom_tensor *loom_mul_(loom_tensor *t, const loom_tensor *other) {
  if (!other || !writable(t, other, "mul_"))
    return loom_null_argument("mul_");
  const loom_tensor *o = operand(t, other, "mul_");
  if (!o || loom__kernel_binary(&loom__mul_kernel, t, t, o, NULL) < 0)
    return NULL;
  return t;
}

loom_tensor *loom_mul_scalar_(loom_tensor *t, double s) {
  if (!t)
    return loom_null_argument("mul_scalar_");
  if (!loom__stays_integral(t, NULL, s, "mul_scalar_") ||
      !writable(t, NULL, "mul_scalar_"))
    return NULL;
  if (loom__kernel_unary(&loom__mul_scalar_kernel, t, t, (double[]){s}) < 0)
    return NULL;
  return t;
}

loom_tensor *loom_masked_fill_(loom_tensor *t, const loom_tensor *mask,
                               double value) {
  if (!mask || !writable(t, mask, "masked_fill_"))
    return loom_null_argument("masked_fill_");
  if (mask->dtype != LOOM_BOOL && mask->dtype != LOOM_U8)
    return LOOM_FAIL(LOOM_ERR_DTYPE, "masked_fill_: mask must be bool");
  if (!(mask = apart(t, mask)))
    return NULL;
  loom__kernel_masked_fill(t, t, mask, value);
  return t;
}

loom_tensor *loom_clamp_(loom_tensor *t, double lo, double hi) {
  if (!writable(t, NULL, "clamp_"))
    return NULL;
  if (!(lo <= hi)) /* as loom_clamp */
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "clamp_: bounds [%g, %g]", lo, hi);
  if (!loom_dtype_is_float(t->dtype) && loom__clamp_needs_float(lo, hi))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "clamp_: bounds [%g, %g] on a %s tensor (in place the "
                     "result must stay integral)",
                     lo, hi, loom_dtype_name(t->dtype));
  if (loom__kernel_unary(&loom__clamp_kernel, t, t, (double[]){lo, hi}) < 0)
    return NULL;
  return t;
}
