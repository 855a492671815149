/* Dropout: multiply by a saved mask of 0 and 1/(1-p) (inverted dropout), so
 * evaluation needs no rescaling. The product records as "mul", which saves
 * the mask for backward. */
#include "node.h"

loom_tensor *loom_dropout(const loom_tensor *t, double p, bool training,
                          loom_rng *g) {
  if (!t)
    return NULL;
  if (!(p >= 0 && p <= 1))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "dropout: p = %g not in [0, 1]", p);
  if (!training || p == 0)
    return loom__to_scope(loom_keep((loom_tensor *)t));
  if (loom__check_float(t, "dropout"))
    return NULL;
  if (p == 1)
    return loom_mul_scalar(t, 0);
  loom_tensor *mask = loom_bernoulli(g, t->dtype, 1 - p, t->ndim, t->shape);
  return loom_mul(t, loom_mul_scalar(mask, 1 / (1 - p)));
}
