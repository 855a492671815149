/* Softmax and log-softmax along a dim, fused (max-shifted, one kernel). */
#include "node.h"

LOOM__OP(softmax, softmax_backward);
LOOM__OP(log_softmax, softmax_backward);

static void softmax_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *y = loom__saved(n, 0);
  loom_tensor *gc = loom_contiguous(g[0]);
  if (!y || !gc)
    return;
  loom_tensor *gin = loom_empty(y->dtype, y->ndim, y->shape);
  if (!gin)
    return;
  loom__kernel_softmax_grad(gin, y, gc, (int)n->i[0],
                            n->op == &loom__op_log_softmax);
  loom__accumulate(n, 0, gin);
}

static loom_tensor *softmax(const loom__op_def *def, const loom_tensor *t,
                            int dim) {
  if (!t)
    return loom_null_argument(def->name);
  int d = loom__dim(dim, t->ndim, def->name);
  if (d < 0)
    return NULL;
  if (!loom_dtype_is_float(t->dtype))
    t = loom_to_dtype(t, LOOM_DTYPE_DEFAULT);
  const loom_tensor *x = loom_contiguous(t);
  loom_tensor *out =
      x ? loom__new(x->dtype, x->ndim, x->shape, def->name) : NULL;
  if (!out)
    return NULL;
  loom__kernel_softmax(out, x, d, def == &loom__op_log_softmax);
  loom__node *n = loom__record(def, out, 1, &t);
  if (n) {
    n->i[0] = d;
    loom__save(n, out);
  }
  return out;
}

loom_tensor *loom_softmax(const loom_tensor *t, int dim) {
  return softmax(&loom__op_softmax, t, dim);
}

loom_tensor *loom_log_softmax(const loom_tensor *t, int dim) {
  return softmax(&loom__op_log_softmax, t, dim);
}
