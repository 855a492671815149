/* Regularisers for recurrent networks, written with public ops: locked
 * (variational) dropout, embedding dropout, zoneout and weight
 * normalisation. The runner applies them to any cell (nn/runner.c). */
#include "rnn.h"

#include <math.h>

static bool bad_rate(double p) { return !(p >= 0 && p < 1); }

loom_tensor *loom_locked_dropout(const loom_tensor *x, double p, bool training,
                                 loom_rng *g) {
  if (!x)
    return loom_null_argument("locked_dropout");
  if (bad_rate(p))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "locked_dropout: p %g is not in [0, 1)",
                     p);
  if (loom_ndim(x) < 2)
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "locked_dropout: x %s needs (T, B, ...) dims",
                     loom_shape_text(x));
  if (!training || p == 0)
    return (loom_tensor *)x;
  int64_t shape[LOOM_MAX_DIMS];
  for (int d = 0; d < loom_ndim(x); d++)
    shape[d] = d == 0 ? 1 : loom_shape(x)[d];
  loom_tensor *mask =
      loom_bernoulli(g, loom_dtype_of(x), 1 - p, loom_ndim(x), shape);
  return loom_mul(x, loom_mul_scalar(mask, 1 / (1 - p)));
}

loom_tensor *loom_embedding_dropout(const loom_tensor *weight,
                                    const loom_tensor *indices,
                                    int64_t padding_idx, double p,
                                    bool training, loom_rng *g) {
  if (!weight || !indices)
    return loom_null_argument("embedding_dropout");
  if (bad_rate(p))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "embedding_dropout: p %g is not in [0, 1)", p);
  if (loom_ndim(weight) != 2)
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "embedding_dropout: weight %s is not (V, D)",
                     loom_shape_text(weight));
  loom_tensor *e = loom_embedding(weight, indices, padding_idx);
  if (!training || p == 0 || !e)
    return e;
  /* mask[word] * weight[word] for the words looked up: the values of
   * embedding(mask * weight), without scaling all V rows. */
  loom_tensor *mask =
      loom_mul_scalar(loom_bernoulli(g, loom_dtype_of(weight), 1 - p,
                                     LOOM_SHAPE(loom_shape(weight)[0], 1)),
                      1 / (1 - p));
  return loom_mul(e, loom_embedding(mask, indices, -1));
}

loom_tensor *loom_zoneout(const loom_tensor *prev, const loom_tensor *next,
                          double p, bool training, loom_rng *g) {
  if (!prev || !next)
    return loom_null_argument("zoneout");
  if (bad_rate(p))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "zoneout: p %g is not in [0, 1)", p);
  if (!loom_same_shape(prev, next))
    return LOOM_FAIL(LOOM_ERR_SHAPE, "zoneout: states %s and %s differ",
                     loom_shape_text(prev), loom_shape_text(next));
  if (p == 0)
    return (loom_tensor *)next;
  if (!training)
    return loom_add(next, loom_mul_scalar(loom_sub(prev, next), p));
  /* m prev + (1 - m) next: a unit is exactly its old or its new value */
  loom_tensor *mask = loom_bernoulli(g, loom_dtype_of(next), p, loom_ndim(next),
                                     loom_shape(next));
  return loom_add(loom_mul(mask, prev),
                  loom_mul(loom_rsub_scalar(mask, 1), next));
}

/* The dims of v other than dim, for its norm. */
static int other_dims(const loom_tensor *v, int dim, int *dims) {
  int n = 0;
  for (int d = 0; d < loom_ndim(v); d++)
    if (d != dim)
      dims[n++] = d;
  return n;
}

loom_tensor *loom_weight_norm(const loom_tensor *v, const loom_tensor *g,
                              int dim) {
  if (!v || !g)
    return loom_null_argument("weight_norm");
  int nd = loom_ndim(v);
  if (nd < 1 || dim < 0 || dim >= nd)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "weight_norm: dim %d of v %s", dim,
                     loom_shape_text(v));
  int dims[LOOM_MAX_DIMS];
  int n = other_dims(v, dim, dims);
  int64_t shape[LOOM_MAX_DIMS];
  for (int d = 0; d < nd; d++)
    shape[d] = d == dim ? loom_shape(v)[d] : 1;
  if (loom_numel(g) != shape[dim])
    return LOOM_FAIL(
        LOOM_ERR_SHAPE, "weight_norm: g %s needs %lld elements (v %s, dim %d)",
        loom_shape_text(g), (long long)shape[dim], loom_shape_text(v), dim);
  loom_tensor *norm = n ? loom_norm(v, 2, dims, n, true) : loom_abs(v);
  return loom_mul(loom_reshape(g, nd, shape), loom_div(v, norm));
}

loom_tensor *loom_weight_norm_init(const loom_tensor *v, int dim) {
  if (!v)
    return loom_null_argument("weight_norm_init");
  if (dim < 0 || dim >= loom_ndim(v))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "weight_norm_init: dim %d of v %s", dim,
                     loom_shape_text(v));
  int dims[LOOM_MAX_DIMS];
  int n = other_dims(v, dim, dims);
  loom_no_grad_begin();
  loom_tensor *g = n ? loom_norm(v, 2, dims, n, true) : loom_abs(v);
  loom_no_grad_end();
  return g;
}
