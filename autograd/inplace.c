/* In-place updates: they write into their first argument, bump its version
 * (so a backward that saved it notices), and are never recorded. */
#include "node.h"

#include <math.h>

static bool writable(loom_tensor *t, const loom_tensor *src, const char *op) {
  if (!t)
    return loom_null_argument(op), false;
  for (int d = 0; d < t->ndim; d++)
    if (t->strides[d] == 0 && t->shape[d] > 1) {
      loom_set_error(LOOM_ERR_STATE,
                     "%s: %s is an expanded view whose "
                     "elements share memory; clone it first",
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

/* An integer tensor cannot hold the result of a non-integral scalar, and
 * in place it cannot become float: refuse rather than truncate. */
static bool integral_ok(const loom_tensor *t, double s, const char *op) {
  if (loom_dtype_is_float(t->dtype) || (s == floor(s) && fabs(s) < 9.2e18))
    return true;
  loom_set_error(LOOM_ERR_ARGUMENT,
                 "%s: scalar %g on a %s tensor (in place "
                 "the result must stay integral)",
                 op, s, loom_dtype_name(t->dtype));
  return false;
}

loom_tensor *loom_copy_(loom_tensor *dst, const loom_tensor *src) {
  if (!src || !writable(dst, src, "copy_"))
    return loom_null_argument("copy_");
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
  if (!integral_ok(t, alpha, "add_") || !writable(t, other, "add_"))
    return NULL;
  const loom_tensor *o = loom_to_dtype(other, t->dtype);
  if (!o || loom__kernel_binary(&loom__add_scaled_kernel, t, t, o,
                                (double[]){alpha}) < 0)
    return NULL;
  return t;
}

loom_tensor *loom_mul_(loom_tensor *t, const loom_tensor *other) {
  if (!other || !writable(t, other, "mul_"))
    return loom_null_argument("mul_");
  const loom_tensor *o = loom_to_dtype(other, t->dtype);
  if (!o || loom__kernel_binary(&loom__mul_kernel, t, t, o, NULL) < 0)
    return NULL;
  return t;
}

loom_tensor *loom_mul_scalar_(loom_tensor *t, double s) {
  if (!t)
    return loom_null_argument("mul_scalar_");
  if (!integral_ok(t, s, "mul_scalar_") || !writable(t, NULL, "mul_scalar_"))
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
  loom__kernel_masked_fill(t, t, mask, value);
  return t;
}

loom_tensor *loom_clamp_(loom_tensor *t, double lo, double hi) {
  if (!writable(t, NULL, "clamp_"))
    return NULL;
  if (lo > hi)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "clamp_: lo %g > hi %g", lo, hi);
  loom__clamp_bounds(t->dtype, &lo, &hi);
  if (loom__kernel_unary(&loom__clamp_kernel, t, t, (double[]){lo, hi}) < 0)
    return NULL;
  return t;
}
