/* Layer normalisation as one op (kernel_norm.c), differentiable in the
 * input, the weight and the bias. */
#include "node.h"

LOOM__OP(layer_norm, layer_norm_backward);

/* Node: inputs x[, weight][, bias]; i[0] = has weight, i[1] = has bias,
 * i[2] = rows, i[3] = cols; saved x, mean, rstd[, weight]. */
static void layer_norm_backward(loom__node *n, loom_tensor *const *g) {
  bool has_w = n->i[0], has_b = n->i[1];
  int64_t rows = n->i[2], cols = n->i[3];
  const loom_tensor *x = loom__saved(n, 0), *mean = loom__saved(n, 1),
                    *rstd = loom__saved(n, 2);
  const loom_tensor *w = has_w ? loom__saved(n, 3) : NULL;
  loom_tensor *gy = loom_contiguous(g[0]);
  if (!x || !mean || !rstd || (has_w && !w) || !gy)
    return;
  loom_dtype dt = x->dtype;
  const loom_tensor *in_w = has_w ? loom__input(n, 1) : NULL;
  loom_tensor *dx =
      loom__needs_grad(n, 0) ? loom_empty(dt, x->ndim, x->shape) : NULL;
  loom_tensor *dw = has_w && loom__needs_grad(n, 1)
                        ? loom_empty(dt, in_w->ndim, in_w->shape)
                        : NULL;
  int ib = has_w ? 2 : 1;
  const loom_tensor *in_b = has_b ? loom__input(n, ib) : NULL;
  loom_tensor *db = has_b && loom__needs_grad(n, ib)
                        ? loom_empty(dt, in_b->ndim, in_b->shape)
                        : NULL;
  loom__kernel_layer_norm_grad(dt, rows, cols, gy->data, x->data,
                               w ? w->data : NULL, mean->data, rstd->data,
                               dx ? dx->data : NULL, dw ? dw->data : NULL,
                               db ? db->data : NULL);
  if (dx)
    loom__accumulate(n, 0, dx);
  if (dw)
    loom__accumulate(n, 1, dw);
  if (db)
    loom__accumulate(n, ib, db);
}

/* The affine parameter as a contiguous tensor of x's dtype and the
 * normalised shape, or NULL with an error. */
static const loom_tensor *param(const loom_tensor *p, const loom_tensor *x,
                                int ndims, const char *what) {
  bool ok = p->ndim == ndims && p->dtype == x->dtype;
  for (int i = 0; ok && i < ndims; i++)
    ok = p->shape[i] == x->shape[x->ndim - ndims + i];
  if (!ok)
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "layer_norm: %s %s %s does not match the last %d dims "
                     "of input %s %s",
                     what, loom_dtype_name(p->dtype), loom_shape_text(p), ndims,
                     loom_dtype_name(x->dtype), loom_shape_text(x));
  return loom_contiguous(p);
}

loom_tensor *loom_layer_norm(const loom_tensor *x, int ndims,
                             const loom_tensor *weight, const loom_tensor *bias,
                             double eps) {
  /* A NULL weight or bias with an error pending is a failed op's result,
   * not "none". */
  if ((!weight || !bias) && loom_last_status() != LOOM_OK)
    return NULL;
  if (!x)
    return loom_null_argument("layer_norm");
  if (loom__check_float(x, "layer_norm"))
    return NULL;
  if (ndims < 1 || ndims > x->ndim || !(eps >= 0))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "layer_norm: cannot normalise the last %d dims of %s "
                     "with eps %g",
                     ndims, loom_shape_text(x), eps);
  const loom_tensor *w = weight ? param(weight, x, ndims, "weight") : NULL;
  const loom_tensor *b = bias ? param(bias, x, ndims, "bias") : NULL;
  if ((weight && !w) || (bias && !b))
    return NULL;
  int64_t cols = 1;
  for (int i = x->ndim - ndims; i < x->ndim; i++)
    cols *= x->shape[i];
  int64_t rows = cols ? x->numel / cols : 0;
  const loom_tensor *xc = loom_contiguous(x);
  loom_tensor *out =
      xc ? loom__new(x->dtype, x->ndim, x->shape, "layer_norm") : NULL;
  int64_t nrows = rows;
  loom_tensor *mean = out ? loom_empty(x->dtype, 1, &nrows) : NULL;
  loom_tensor *rstd = out ? loom_empty(x->dtype, 1, &nrows) : NULL;
  if (!mean || !rstd)
    return NULL;
  if (cols > 0)
    loom__kernel_layer_norm(x->dtype, rows, cols, xc->data, w ? w->data : NULL,
                            b ? b->data : NULL, eps, out->data, mean->data,
                            rstd->data);
  const loom_tensor *in[3] = {x};
  int n_in = 1;
  if (weight)
    in[n_in++] = weight;
  if (bias)
    in[n_in++] = bias;
  loom__node *n = loom__record(&loom__op_layer_norm, out, n_in, in);
  if (n) {
    n->i[0] = weight != NULL;
    n->i[1] = bias != NULL;
    n->i[2] = rows;
    n->i[3] = cols;
    loom__save(n, xc);
    loom__save(n, mean);
    loom__save(n, rstd);
    if (w)
      loom__save(n, w);
  }
  return out;
}
