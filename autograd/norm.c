/* Layer and batch normalisation as one op each (kernel_norm.c,
 * kernel_batch_norm.c), differentiable in the input, the weight and the
 * bias.
 *
 * Double backward (create_graph): by composition. Each op is rebuilt from
 * public ops (mean, variance, normalise, affine) and that is
 * differentiated (loom__backward_by_composition); the fused backward
 * serves every other pass unchanged. */
#include "node.h"

LOOM__OP_GRAPH(layer_norm, layer_norm_backward, layer_norm_graph_backward);

/* Node: inputs x[, weight][, bias]; i[0] = has weight, i[1] = has bias,
 * i[2] = rows, i[3] = cols, d[0] = eps; saved x, mean, rstd[, weight]. */
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

/* t * weight + bias, each parameter (when the node has it) viewed as
 * `shape` to broadcast against t. */
static loom_tensor *affine(const loom__node *n, loom_tensor *const *in,
                           loom_tensor *t, int ndim, const int64_t *shape) {
  bool has_w = n->i[0], has_b = n->i[1];
  if (has_w)
    t = loom_mul(t, loom_reshape(in[1], ndim, shape));
  if (has_b)
    t = loom_add(t, loom_reshape(in[has_w ? 2 : 1], ndim, shape));
  return t;
}

/* Layer norm in public ops: x as (rows, cols), each row normalised by its
 * mean and population variance, then the affine map. */
static int layer_norm_compose(const loom__node *n, loom_tensor *const *in,
                              loom_tensor **out) {
  const loom_tensor *x = in[0];
  int64_t rows = n->i[2], cols = n->i[3];
  loom_tensor *xr = loom_reshape(x, LOOM_SHAPE(rows, cols));
  loom_tensor *centred = loom_sub(xr, loom_mean(xr, (int[]){1}, 1, true));
  loom_tensor *var = loom_mean(loom_square(centred), (int[]){1}, 1, true);
  loom_tensor *y = loom_mul(centred, loom_rsqrt(loom_add_scalar(var, n->d[0])));
  y = y ? affine(n, in, y, LOOM_SHAPE(cols)) : NULL;
  out[0] = y ? loom_reshape(y, x->ndim, x->shape) : NULL;
  return out[0] ? 0 : -1;
}

static void layer_norm_graph_backward(loom__node *n, loom_tensor *const *g) {
  loom__backward_by_composition(n, g, layer_norm_compose);
}

/* x and the tensors that go with it (each *t[i] may be NULL) in their
 * promoted float dtype, each converted by the differentiable loom_to_dtype
 * where it differs, as loom_linear takes a float32 weight with float64
 * input: a float64 batch through a float32 model's norms computes in
 * float64 and hands the float32 parameters float32 gradients. False, with
 * LOOM_ERR_DTYPE, for a tensor that is not float. */
static bool promote_floats(const char *op, const loom_tensor **t[], int n) {
  loom_dtype to = (*t[0])->dtype;
  for (int i = 0; i < n; i++)
    if (*t[i]) {
      if (loom__check_float(*t[i], op))
        return false;
      to = loom__promote(to, (*t[i])->dtype);
    }
  for (int i = 0; i < n; i++)
    if (*t[i] && (*t[i])->dtype != to && !(*t[i] = loom_to_dtype(*t[i], to)))
      return false;
  return true;
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
  if (!promote_floats("layer_norm",
                      (const loom_tensor **[]){&x, &weight, &bias}, 3))
    return NULL;
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
    n->d[0] = eps;
    loom__save(n, xc);
    loom__save(n, mean);
    loom__save(n, rstd);
    if (w)
      loom__save(n, w);
  }
  return out;
}

/* ---- batch normalisation ---- */

LOOM__OP_GRAPH(batch_norm, batch_norm_backward, batch_norm_graph_backward);
/* relu(batch_norm(x)) in one kernel each way (kernel_batch_norm.c says why) */
LOOM__OP_GRAPH(batch_norm_relu, batch_norm_backward, batch_norm_graph_backward);

/* Node: inputs x[, weight][, bias]; i[0] has weight, i[1] has bias, i[2]
 * training (batch statistics), i[3..5] = n, c, l, d[0] = eps; saved x,
 * mean, rstd[, weight][, the output: batch_norm_relu]. */
static void batch_norm_backward(loom__node *n, loom_tensor *const *g) {
  bool has_w = n->i[0], has_b = n->i[1], train = n->i[2];
  bool relu = n->op == &loom__op_batch_norm_relu;
  const loom_tensor *x = loom__saved(n, 0), *mean = loom__saved(n, 1),
                    *rstd = loom__saved(n, 2);
  const loom_tensor *w = has_w ? loom__saved(n, 3) : NULL;
  const loom_tensor *y = relu ? loom__saved(n, has_w ? 4 : 3) : NULL;
  loom_tensor *gy = loom_contiguous(g[0]);
  if (!x || !mean || !rstd || (has_w && !w) || (relu && !y) || !gy)
    return;
  loom_dtype dt = x->dtype;
  int ib = has_w ? 2 : 1;
  loom_tensor *dx =
      loom__needs_grad(n, 0) ? loom_empty(dt, x->ndim, x->shape) : NULL;
  loom_tensor *dw =
      has_w && loom__needs_grad(n, 1) ? loom_empty(dt, 1, &n->i[4]) : NULL;
  loom_tensor *db =
      has_b && loom__needs_grad(n, ib) ? loom_empty(dt, 1, &n->i[4]) : NULL;
  if ((loom__needs_grad(n, 0) && !dx) ||
      (has_w && loom__needs_grad(n, 1) && !dw) ||
      (has_b && loom__needs_grad(n, ib) && !db) ||
      loom__kernel_batch_norm_grad(
          dt, n->i[3], n->i[4], n->i[5], gy->data, x->data, w ? w->data : NULL,
          mean->data, rstd->data, train, y ? y->data : NULL,
          dx ? dx->data : NULL, dw ? dw->data : NULL, db ? db->data : NULL) < 0)
    return;
  if (dx)
    loom__accumulate(n, 0, dx);
  if (dw)
    loom__accumulate(n, 1, dw);
  if (db)
    loom__accumulate(n, ib, db);
}

/* Batch norm in public ops: x as (N, C, L); in training each channel is
 * normalised by its batch mean and population variance, recomputed here;
 * in evaluation by the given statistics, which the node saved as the mean
 * and 1 / sqrt(var + eps) (constants: no gradient reaches them). Running
 * statistics are the caller's and are not touched. */
static int batch_norm_compose(const loom__node *n, loom_tensor *const *in,
                              loom_tensor **out) {
  const loom_tensor *x = in[0];
  int64_t N = n->i[3], C = n->i[4], L = n->i[5];
  loom_tensor *xr = loom_reshape(x, LOOM_SHAPE(N, C, L)), *y;
  if (n->i[2]) {
    int dims[] = {0, 2};
    loom_tensor *centred = loom_sub(xr, loom_mean(xr, dims, 2, true));
    loom_tensor *var = loom_mean(loom_square(centred), dims, 2, true);
    y = loom_mul(centred, loom_rsqrt(loom_add_scalar(var, n->d[0])));
  } else {
    const loom_tensor *mean = loom__saved(n, 1), *rstd = loom__saved(n, 2);
    y = mean && rstd
            ? loom_mul(loom_sub(xr, loom_reshape(mean, LOOM_SHAPE(1, C, 1))),
                       loom_reshape(rstd, LOOM_SHAPE(1, C, 1)))
            : NULL;
  }
  y = y ? affine(n, in, y, LOOM_SHAPE(1, C, 1)) : NULL;
  if (n->op == &loom__op_batch_norm_relu)
    y = loom_relu(y);
  out[0] = y ? loom_reshape(y, x->ndim, x->shape) : NULL;
  return out[0] ? 0 : -1;
}

static void batch_norm_graph_backward(loom__node *n, loom_tensor *const *g) {
  loom__backward_by_composition(n, g, batch_norm_compose);
}

/* A per-channel tensor (C) of x's dtype, contiguous, or NULL with an
 * error. */
static const loom_tensor *channel(const loom_tensor *p, const loom_tensor *x,
                                  const char *what, const char *op) {
  if (p->ndim != 1 || p->shape[0] != x->shape[1] || p->dtype != x->dtype)
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "%s: %s %s %s is not one value per channel of "
                     "input %s %s",
                     op, what, loom_dtype_name(p->dtype), loom_shape_text(p),
                     loom_dtype_name(x->dtype), loom_shape_text(x));
  return loom_contiguous(p);
}

/* batch_norm, or with relu batch_norm_relu (their messages name op). */
static loom_tensor *batch_norm(const loom_tensor *x, const loom_tensor *weight,
                               const loom_tensor *bias, const loom_tensor *mean,
                               const loom_tensor *var, double eps,
                               loom_tensor **batch_mean,
                               loom_tensor **batch_var, bool relu) {
  const char *op = relu ? "batch_norm_relu" : "batch_norm";
  /* a NULL optional argument with an error pending is a failed op's
   * result, not "none" */
  if ((!weight || !bias || !mean || !var) && loom_last_status() != LOOM_OK)
    return NULL;
  if (!x)
    return loom_null_argument(op);
  if (loom__check_float(x, op))
    return NULL;
  if (x->ndim < 2 || !(eps >= 0) || !mean != !var)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "%s: input %s (needs (N, C, ...)), eps %g, %s", op,
                     loom_shape_text(x), eps,
                     !mean != !var ? "a mean without a variance or the "
                                     "reverse"
                                   : "statistics given or not");
  if (!promote_floats(
          op, (const loom_tensor **[]){&x, &weight, &bias, &mean, &var}, 5))
    return NULL;
  const loom_tensor *w = weight ? channel(weight, x, "weight", op) : NULL;
  const loom_tensor *b = bias ? channel(bias, x, "bias", op) : NULL;
  const loom_tensor *m = mean ? channel(mean, x, "mean", op) : NULL;
  const loom_tensor *v = var ? channel(var, x, "variance", op) : NULL;
  if ((weight && !w) || (bias && !b) || (mean && !m) || (var && !v))
    return NULL;
  int64_t N = x->shape[0], C = x->shape[1],
          L = C ? x->numel / C / (N ? N : 1) : 0;
  bool train = mean == NULL;
  if (train && N * L <= 1)
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "%s: one value per channel in input %s: no "
                     "batch statistics",
                     op, loom_shape_text(x));
  const loom_tensor *xc = loom_contiguous(x);
  loom_tensor *out = xc ? loom__new(x->dtype, x->ndim, x->shape, op) : NULL;
  loom_tensor *mu = train && out ? loom_empty(x->dtype, 1, &C) : NULL;
  loom_tensor *sq = train && out ? loom_empty(x->dtype, 1, &C) : NULL;
  loom_tensor *rstd = out ? loom_empty(x->dtype, 1, &C) : NULL;
  if (!rstd || (train && (!mu || !sq)))
    return NULL;
  const loom_tensor *stat_m = train ? mu : m, *stat_v = train ? sq : v;
  if (x->numel > 0)
    loom__kernel_batch_norm(x->dtype, N, C, L, xc->data, w ? w->data : NULL,
                            b ? b->data : NULL, eps, train, relu, stat_m->data,
                            stat_v->data, rstd->data, out->data);
  const loom_tensor *in[3] = {x};
  int n_in = 1;
  if (weight)
    in[n_in++] = weight;
  if (bias)
    in[n_in++] = bias;
  loom__node *n = loom__record(
      relu ? &loom__op_batch_norm_relu : &loom__op_batch_norm, out, n_in, in);
  if (n) {
    n->i[0] = weight != NULL;
    n->i[1] = bias != NULL;
    n->i[2] = train;
    n->i[3] = N;
    n->i[4] = C;
    n->i[5] = L;
    n->d[0] = eps;
    loom__save(n, xc);
    loom__save(n, stat_m);
    loom__save(n, rstd);
    if (w)
      loom__save(n, w);
    if (relu)
      loom__save(n, out);
  }
  if (batch_mean)
    *batch_mean = train ? mu : NULL;
  if (batch_var)
    *batch_var = train ? sq : NULL;
  return out;
}

loom_tensor *loom_batch_norm(const loom_tensor *x, const loom_tensor *weight,
                             const loom_tensor *bias, const loom_tensor *mean,
                             const loom_tensor *var, double eps,
                             loom_tensor **batch_mean,
                             loom_tensor **batch_var) {
  return batch_norm(x, weight, bias, mean, var, eps, batch_mean, batch_var,
                    false);
}

loom_tensor *
loom_batch_norm_relu(const loom_tensor *x, const loom_tensor *weight,
                     const loom_tensor *bias, const loom_tensor *mean,
                     const loom_tensor *var, double eps,
                     loom_tensor **batch_mean, loom_tensor **batch_var) {
  return batch_norm(x, weight, bias, mean, var, eps, batch_mean, batch_var,
                    true);
}
