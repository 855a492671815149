/* Dropout: zero each element with probability p and scale the others by
 * 1/(1-p) (inverted dropout), so evaluation needs no rescaling. One pass
 * draws the mask (a byte per element, saved for backward) and writes the
 * output; backward is one pass too. */
#include "node.h"

LOOM__OP_GRAPH(dropout, dropout_backward, dropout_graph_backward);

static void dropout_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *mask = loom__saved(n, 0);
  loom_tensor *gc = loom_contiguous(g[0]);
  loom_tensor *gin = mask && gc ? loom_empty_like(gc) : NULL;
  if (!gin)
    return;
  loom__kernel_dropout_backward(gin, gc, mask, n->d[0]);
  loom__accumulate(n, 0, gin);
}

/* The same in recorded ops (create_graph): g mask / (1 - p). */
static void dropout_graph_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *mask = loom__saved(n, 0);
  if (mask)
    loom__accumulate(
        n, 0,
        loom_mul(g[0], loom_mul_scalar(loom_to_dtype(mask, g[0]->dtype),
                                       1 / (1 - n->d[0]))));
}

loom_tensor *loom_dropout(const loom_tensor *t, double p, bool training,
                          loom_rng *g) {
  if (!t)
    return loom_null_argument("dropout");
  if (!(p >= 0 && p <= 1))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "dropout: p = %g not in [0, 1]", p);
  if (!training || p == 0)
    return loom__to_scope(loom_keep((loom_tensor *)t));
  if (loom__check_float(t, "dropout"))
    return NULL;
  if (p == 1)
    return loom_mul_scalar(t, 0);
  loom_tensor *x = loom_contiguous(t);
  loom_tensor *mask = x ? loom_empty(LOOM_U8, x->ndim, x->shape) : NULL;
  loom_tensor *out =
      mask ? loom__new(x->dtype, x->ndim, x->shape, "dropout") : NULL;
  if (!out)
    return NULL;
  loom__kernel_dropout(out, mask, x, p, g);
  loom__node *n =
      loom__record(&loom__op_dropout, out, 1, (const loom_tensor *[]){x});
  if (n) {
    loom__save(n, mask);
    n->d[0] = p;
  }
  loom__keep_link_only(n, 0); /* backward reads the mask only */
  return out;
}
