/* Softmax and log-softmax along a dim, fused (max-shifted, one kernel). */
#include "node.h"

LOOM__OP_GRAPH(softmax, softmax_backward, softmax_graph_backward);
LOOM__OP_GRAPH(log_softmax, softmax_backward, softmax_graph_backward);

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

/* The same in recorded ops (create_graph), on the output y (in the
 * graph): softmax y (g - sum(g y)), log_softmax g - exp(y) sum(g). */
static void softmax_graph_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *y = loom__saved(n, 0);
  if (!y)
    return;
  int dim = (int)n->i[0];
  if (n->op == &loom__op_log_softmax)
    loom__accumulate(
        n, 0,
        loom_sub(g[0], loom_mul(loom_exp(y), loom_sum(g[0], &dim, 1, true))));
  else
    loom__accumulate(n, 0,
                     loom_mul(y, loom_sub(g[0], loom_sum(loom_mul(g[0], y),
                                                         &dim, 1, true))));
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
  loom__keep_link_only(n, 0); /* backward reads the output only */
  return out;
}

loom_tensor *loom_softmax(const loom_tensor *t, int dim) {
  return softmax(&loom__op_softmax, t, dim);
}

loom_tensor *loom_log_softmax(const loom_tensor *t, int dim) {
  return softmax(&loom__op_log_softmax, t, dim);
}
