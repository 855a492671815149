/* Ops that copy: contiguous, clone, dtype conversion. */
#include "node.h"

LOOM__OP_TWICE(contiguous, identity_backward);
LOOM__OP_TWICE(clone, identity_backward);
LOOM__OP_TWICE(to_dtype, identity_backward);

/* The gradient passes through; loom__accumulate converts it back to the
 * input's dtype for to_dtype. */
static void identity_backward(loom__node *n, loom_tensor *const *g) {
  loom__accumulate(n, 0, g[0]);
}

static loom_tensor *copy_as(const loom__op_def *def, const loom_tensor *t,
                            loom_dtype dtype) {
  loom_tensor *out = loom__new(dtype, t->ndim, t->shape, def->name);
  if (!out)
    return NULL;
  loom__kernel_copy(out, t);
  /* Only float -> float conversions carry a gradient. */
  if (def != &loom__op_to_dtype ||
      (loom_dtype_is_float(t->dtype) && loom_dtype_is_float(dtype)))
    loom__keep_link_only(loom__record(def, out, 1, &t), 0);
  return out;
}

loom_tensor *loom_contiguous(const loom_tensor *t) {
  if (!t)
    return loom_null_argument("contiguous");
  if (loom__is_contiguous(t))
    return loom__to_scope(loom_keep((loom_tensor *)t));
  return copy_as(&loom__op_contiguous, t, t->dtype);
}

loom_tensor *loom_clone(const loom_tensor *t) {
  return t ? copy_as(&loom__op_clone, t, t->dtype)
           : loom_null_argument("clone");
}

loom_tensor *loom_to_dtype(const loom_tensor *t, loom_dtype dtype) {
  if (!t)
    return loom_null_argument("to_dtype");
  dtype = loom__resolve(dtype);
  if (dtype <= LOOM_DTYPE_DEFAULT || dtype >= LOOM_DTYPE_COUNT)
    return LOOM_FAIL(LOOM_ERR_DTYPE, "to_dtype: unknown dtype %d", (int)dtype);
  if (t->dtype == dtype)
    return loom__to_scope(loom_keep((loom_tensor *)t));
  return copy_as(&loom__op_to_dtype, t, dtype);
}

loom_tensor *loom__to_promoted(const loom_tensor *x, loom_dtype t) {
  if (t != LOOM_U8 || (x->dtype != LOOM_I32 && x->dtype != LOOM_I64))
    return loom_to_dtype(x, t);
  /* Only a 0-dim operand is promoted downwards; read as an integer (a
   * double would round int64 values above 2^53). */
  loom_tensor *c = loom_contiguous(loom_to_dtype(x, LOOM_I64));
  loom_tensor *out =
      c ? loom__new(LOOM_U8, x->ndim, x->shape, "to_dtype") : NULL;
  if (!out)
    return NULL;
  const int64_t *v = (const int64_t *)c->data;
  for (int64_t i = 0; i < out->numel; i++)
    ((uint8_t *)out->data)[i] = (uint8_t)(uint64_t)v[i];
  return out;
}
