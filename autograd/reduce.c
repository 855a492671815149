/* Reductions. The kernel always writes the keepdim shape; without keepdim
 * the result is that memory viewed without the reduced dims, and backward
 * restores them before broadcasting the gradient back. */
#include "node.h"

#include <math.h>
#include <stdlib.h>

LOOM__OP_TWICE(sum, sum_backward);
LOOM__OP_TWICE(amax, extreme_backward);
LOOM__OP_TWICE(amin, extreme_backward);
LOOM__OP_GRAPH(prod, prod_backward, prod_graph_backward);
LOOM__OP_GRAPH(norm, norm_backward, norm_graph_backward);
LOOM__OP_GRAPH(max, arg_extreme_backward, arg_extreme_graph_backward);
LOOM__OP_GRAPH(min, arg_extreme_backward, arg_extreme_graph_backward);

/* Parsed reduction dims: mask[d] true when d is reduced. */
typedef struct {
  bool mask[LOOM_MAX_DIMS];
  int64_t keep_shape[LOOM_MAX_DIMS]; /* x's ndim, 1 on reduced dims */
  int64_t out_shape[LOOM_MAX_DIMS];
  int out_ndim;
  int64_t count; /* elements per reduced group */
} reduction;

static bool parse(const loom_tensor *x, const int *dims, int n, bool keepdim,
                  reduction *r, const char *op) {
  memset(r->mask, 0, sizeof r->mask);
  if (!dims || n == 0) {
    for (int d = 0; d < x->ndim; d++)
      r->mask[d] = true;
  } else {
    for (int i = 0; i < n; i++) {
      int d = loom__dim(dims[i], x->ndim, op);
      if (d < 0)
        return false;
      if (r->mask[d]) {
        loom_set_error(LOOM_ERR_ARGUMENT, "%s: dim %d repeated", op, d);
        return false;
      }
      r->mask[d] = true;
    }
  }
  r->out_ndim = 0;
  r->count = 1;
  for (int d = 0; d < x->ndim; d++) {
    r->keep_shape[d] = r->mask[d] ? 1 : x->shape[d];
    if (r->mask[d])
      r->count *= x->shape[d];
    if (!r->mask[d] || keepdim)
      r->out_shape[r->out_ndim++] = r->keep_shape[d];
  }
  return true;
}

/* Computes the reduction into the keepdim shape; returns the result in the
 * requested shape (scope-owned). *keep receives the keepdim tensor. */
static loom_tensor *reduce_into(loom__reduce_op op, const loom_tensor *x,
                                loom_dtype dtype, const reduction *r,
                                const char *name) {
  loom_tensor *keep = loom__new(dtype, x->ndim, r->keep_shape, name);
  if (!keep || loom__kernel_reduce(op, keep, x) < 0)
    return NULL;
  if (r->out_ndim == x->ndim)
    return keep;
  int64_t st[LOOM_MAX_DIMS];
  loom__contiguous_strides(r->out_ndim, r->out_shape, st);
  return loom__to_scope(loom__view_of(keep, r->out_ndim, r->out_shape, st, 0));
}

/* g (the output's shape) back to x's ndim with size-1 reduced dims. */
static loom_tensor *keep_shape_of(const loom_tensor *g, const loom__node *n) {
  const loom_tensor *x = loom__input(n, 0);
  int64_t shape[LOOM_MAX_DIMS];
  for (int d = 0; d < x->ndim; d++)
    shape[d] = (n->i[LOOM_MAX_DIMS] >> d) & 1 ? 1 : x->shape[d];
  return loom_reshape(g, x->ndim, shape);
}

static void remember(loom__node *n, const reduction *r) {
  if (!n)
    return;
  int64_t bits = 0;
  for (int d = 0; d < LOOM_MAX_DIMS; d++)
    bits |= (int64_t)r->mask[d] << d;
  n->i[LOOM_MAX_DIMS] = bits;
  n->d[0] = (double)r->count;
}

/* ---- sum and mean ---- */

static void sum_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *x = loom__input(n, 0);
  loom__accumulate(n, 0,
                   loom_expand(keep_shape_of(g[0], n), x->ndim, x->shape));
}

loom_tensor *loom_sum(const loom_tensor *t, const int *dims, int n,
                      bool keepdim) {
  reduction r;
  if (!t || !parse(t, dims, n, keepdim, &r, "sum"))
    return loom_null_argument("sum");
  if (!loom_dtype_is_float(t->dtype) && t->dtype != LOOM_I64)
    t = loom_to_dtype(t, LOOM_I64);
  loom_tensor *out =
      t ? reduce_into(LOOM__REDUCE_SUM, t, t->dtype, &r, "sum") : NULL;
  loom__node *node = loom__record(&loom__op_sum, out, 1, &t);
  remember(node, &r);
  loom__keep_link_only(node, 0); /* backward reads x's shape only */
  return out;
}

loom_tensor *loom_mean(const loom_tensor *t, const int *dims, int n,
                       bool keepdim) {
  reduction r;
  if (!t || !parse(t, dims, n, keepdim, &r, "mean"))
    return loom_null_argument("mean");
  if (!loom_dtype_is_float(t->dtype))
    t = loom_to_dtype(t, LOOM_DTYPE_DEFAULT);
  return loom_div_scalar(loom_sum(t, dims, n, keepdim), (double)r.count);
}

loom_tensor *loom_sum_all(const loom_tensor *t) {
  return loom_sum(t, NULL, 0, false);
}

loom_tensor *loom_mean_all(const loom_tensor *t) {
  return loom_mean(t, NULL, 0, false);
}

/* ---- variance ---- */

loom_tensor *loom_var(const loom_tensor *t, const int *dims, int n,
                      int64_t correction, bool keepdim) {
  reduction r;
  if (!t || !parse(t, dims, n, keepdim, &r, "var"))
    return loom_null_argument("var");
  if (!loom_dtype_is_float(t->dtype))
    t = loom_to_dtype(t, LOOM_DTYPE_DEFAULT);
  /* Two passes (mean, then squared deviations): accurate where the
   * one-pass formula cancels. */
  loom_tensor *dev = loom_sub(t, loom_mean(t, dims, n, true));
  double denom = (double)r.count - (double)correction;
  return loom_div_scalar(loom_sum(loom_square(dev), dims, n, keepdim),
                         denom > 0 ? denom : 0);
}

loom_tensor *loom_std(const loom_tensor *t, const int *dims, int n,
                      int64_t correction, bool keepdim) {
  /* sqrt(var), with the gradient 0 where the variance is 0 (a constant
   * line), as torch's std: sqrt's infinite slope at 0 times var's zero
   * gradient would be NaN. The root is taken of 1 there instead, and the
   * result masked, so no infinity enters the graph at any order. */
  loom_tensor *v = loom_var(t, dims, n, correction, keepdim);
  loom_tensor *zero = v ? loom_eq_scalar(v, 0) : NULL;
  loom_tensor *root = loom_sqrt(loom_masked_fill(v, zero, 1));
  return loom_masked_fill(root, zero, 0);
}

/* ---- logsumexp ---- */

loom_tensor *loom_logsumexp(const loom_tensor *t, const int *dims, int n,
                            bool keepdim) {
  if (!t)
    return loom_null_argument("logsumexp");
  if (!loom_dtype_is_float(t->dtype))
    t = loom_to_dtype(t, LOOM_DTYPE_DEFAULT);
  if (t && t->numel == 0) /* no shift to find: log of the empty sum, -inf */
    return loom_log(loom_sum(loom_exp(t), dims, n, keepdim));
  /* The shift m does not change the value, so it carries no gradient; an
   * infinite max is replaced by 0 so that rows of -inf give -inf, not NaN. */
  loom_no_grad_begin();
  loom_tensor *m = loom_amax(t, dims, n, true);
  loom_tensor *inf = m ? loom_eq_scalar(loom_abs(m), INFINITY) : NULL;
  m = loom_masked_fill(m, inf, 0);
  loom_no_grad_end();
  loom_tensor *s = loom_log(loom_sum(loom_exp(loom_sub(t, m)), dims, n, true));
  loom_tensor *out = loom_add(s, m);
  if (keepdim || !out)
    return out;
  reduction r;
  parse(t, dims, n, false, &r, "logsumexp");
  return loom_reshape(out, r.out_ndim, r.out_shape);
}

/* ---- amax / amin ---- */

/* The gradient is shared evenly among the elements equal to the extreme. */
static void extreme_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *x = loom__input(n, 0), *y = loom__saved(n, 0);
  if (!y)
    return;
  int dims[LOOM_MAX_DIMS], nd = 0;
  for (int d = 0; d < x->ndim; d++)
    if ((n->i[LOOM_MAX_DIMS] >> d) & 1)
      dims[nd++] = d;
  loom_tensor *hit = loom_to_dtype(loom_eq(x, y), x->dtype);
  loom_tensor *count = loom_sum(hit, dims, nd, true);
  loom_tensor *share = loom_div(keep_shape_of(g[0], n), count);
  loom__accumulate(n, 0, loom_mul(hit, share));
}

static loom_tensor *extreme(const loom__op_def *def, loom__reduce_op op,
                            const loom_tensor *t, const int *dims, int n,
                            bool keepdim) {
  reduction r;
  if (!t)
    return loom_null_argument(def->name);
  if (!parse(t, dims, n, keepdim, &r, def->name))
    return NULL;
  /* An empty group has no extreme (torch refuses it too); an empty
   * tensor reduced over dims that are not empty gives an empty result. */
  if (t->numel == 0 && r.count == 0)
    return LOOM_FAIL(LOOM_ERR_SHAPE, "%s: empty tensor %s", def->name,
                     loom_shape_text(t));
  loom_tensor *out = reduce_into(op, t, t->dtype, &r, def->name);
  loom__node *node = loom__record(def, out, 1, &t);
  remember(node, &r);
  if (node) /* saved in keepdim shape, to compare with x */
    loom__save(node, loom_reshape(loom_detach(out), t->ndim, r.keep_shape));
  return out;
}

loom_tensor *loom_amax(const loom_tensor *t, const int *dims, int n,
                       bool keepdim) {
  return extreme(&loom__op_amax, LOOM__REDUCE_MAX, t, dims, n, keepdim);
}

loom_tensor *loom_amin(const loom_tensor *t, const int *dims, int n,
                       bool keepdim) {
  return extreme(&loom__op_amin, LOOM__REDUCE_MIN, t, dims, n, keepdim);
}

/* ---- max / min along a dim, with indices ---- */

static void arg_extreme_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *x = loom__input(n, 0), *idx = loom__saved(n, 0);
  if (!idx)
    return;
  int dim = (int)n->i[0];
  loom_tensor *gin = loom_zeros(g[0]->dtype, x->ndim, x->shape);
  loom_tensor *gk = loom_contiguous(keep_shape_of(g[0], n));
  if (!gin || !gk)
    return;
  loom__kernel_scatter_add(gin, dim, idx, gk);
  loom__accumulate(n, 0, gin);
}

/* The same, as a recorded scatter (create_graph). */
static void arg_extreme_graph_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *x = loom__input(n, 0), *idx = loom__saved(n, 0);
  if (idx)
    loom__accumulate(
        n, 0,
        loom_scatter_add(loom_zeros(g[0]->dtype, x->ndim, x->shape),
                         (int)n->i[0], idx, keep_shape_of(g[0], n)));
}

static loom_tensor *arg_extreme(bool is_max, const loom_tensor *t, int dim,
                                bool keepdim, loom_tensor **indices,
                                bool values_wanted) {
  if (!t)
    return loom_null_argument(is_max ? "max" : "min");
  const char *name = is_max ? "max" : "min";
  int d = loom__dim(dim, t->ndim, name);
  if (d < 0)
    return NULL;
  /* As amax: an empty dim has no extreme, while other dims of size 0
   * give an empty result. */
  if (t->numel == 0 && t->shape[d] == 0)
    return LOOM_FAIL(LOOM_ERR_SHAPE, "%s: empty tensor %s", name,
                     loom_shape_text(t));
  reduction r;
  int dims[1] = {d};
  if (!parse(t, t->ndim ? dims : NULL, t->ndim ? 1 : 0, keepdim, &r, name))
    return NULL;
  loom_tensor *v = loom__new(t->dtype, t->ndim, r.keep_shape, name);
  loom_tensor *ix = loom__new(LOOM_I64, t->ndim, r.keep_shape, name);
  if (!v || !ix)
    return NULL;
  if (t->ndim == 0) {
    loom__kernel_copy(v, t);
    loom__kernel_fill(ix, 0);
  } else {
    loom__kernel_arg_reduce(is_max, v, ix, t, d);
  }
  loom_tensor *ixo = keepdim ? ix : loom_reshape(ix, r.out_ndim, r.out_shape);
  if (indices)
    *indices = ixo;
  if (!values_wanted)
    return ixo;
  loom_tensor *out = v;
  if (!keepdim) {
    int64_t st[LOOM_MAX_DIMS];
    loom__contiguous_strides(r.out_ndim, r.out_shape, st);
    out = loom__to_scope(loom__view_of(v, r.out_ndim, r.out_shape, st, 0));
  }
  loom__node *n =
      loom__record(is_max ? &loom__op_max : &loom__op_min, out, 1, &t);
  remember(n, &r);
  if (n) {
    n->i[0] = d;
    loom__save(n, ix);
  }
  return out;
}

loom_tensor *loom_max(const loom_tensor *t, int dim, bool keepdim,
                      loom_tensor **indices) {
  return arg_extreme(true, t, dim, keepdim, indices, true);
}

loom_tensor *loom_min(const loom_tensor *t, int dim, bool keepdim,
                      loom_tensor **indices) {
  return arg_extreme(false, t, dim, keepdim, indices, true);
}

loom_tensor *loom_argmax(const loom_tensor *t, int dim, bool keepdim) {
  return arg_extreme(true, t, dim, keepdim, NULL, false);
}

loom_tensor *loom_argmin(const loom_tensor *t, int dim, bool keepdim) {
  return arg_extreme(false, t, dim, keepdim, NULL, false);
}

/* ---- prod ---- */

/* d prod / d x_i = product of the others, computed with prefix and suffix
 * products so zeros are handled exactly. */
static void prod_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *x = loom__saved(n, 0);
  if (!x)
    return;
  int perm[LOOM_MAX_DIMS], k = 0;
  for (int d = 0; d < x->ndim; d++)
    if (!((n->i[LOOM_MAX_DIMS] >> d) & 1))
      perm[k++] = d;
  int kept = k;
  for (int d = 0; d < x->ndim; d++)
    if ((n->i[LOOM_MAX_DIMS] >> d) & 1)
      perm[k++] = d;
  /* rows: kept dims flattened; columns: reduced dims flattened */
  loom_tensor *xp =
      loom_contiguous(loom_to_dtype(loom_permute(x, perm), LOOM_F64));
  if (!xp)
    return;
  int64_t cols = (int64_t)n->d[0], rows = cols ? x->numel / cols : 0;
  loom_tensor *others = loom_empty(LOOM_F64, xp->ndim, xp->shape);
  if (!others)
    return;
  const double *xv = (const double *)xp->data;
  double *ov = (double *)others->data;
  for (int64_t r = 0; r < rows; r++) {
    double acc = 1;
    for (int64_t c = 0; c < cols; c++) {
      ov[r * cols + c] = acc;
      acc *= xv[r * cols + c];
    }
    acc = 1;
    for (int64_t c = cols - 1; c >= 0; c--) {
      ov[r * cols + c] *= acc;
      acc *= xv[r * cols + c];
    }
  }
  int inv[LOOM_MAX_DIMS];
  for (int i = 0; i < x->ndim; i++)
    inv[perm[i]] = i;
  (void)kept;
  loom_tensor *o = loom_to_dtype(loom_permute(others, inv), x->dtype);
  loom__accumulate(n, 0, loom_mul(keep_shape_of(g[0], n), o));
}

/* Each element's product of the others along the last dim of xl, as
 * PyTorch's prod double backward computes it: the exclusive cumulative
 * product from the start times the one from the end, in ops, so exact
 * with any number of zeros and differentiable again (cumprod). */
static loom_tensor *products_of_others(const loom_tensor *xl) {
  int last = xl->ndim - 1;
  int64_t k = xl->shape[last], shape[LOOM_MAX_DIMS];
  memcpy(shape, xl->shape, sizeof shape);
  shape[last] = 1;
  loom_tensor *ones = loom_ones(xl->dtype, xl->ndim, shape);
  loom_tensor *head[] = {ones, loom_narrow(xl, last, 0, k - 1)};
  loom_tensor *tail[] = {ones,
                         loom_flip(loom_narrow(xl, last, 1, k - 1), &last, 1)};
  loom_tensor *before = loom_cumprod(loom_concat(head, 2, last), last);
  loom_tensor *after =
      loom_flip(loom_cumprod(loom_concat(tail, 2, last), last), &last, 1);
  return loom_mul(before, after);
}

/* prod's backward in recorded ops (create_graph): the reduced dims moved
 * last and flattened into one, whose products of the others scale g. */
static void prod_graph_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *x = loom__input_value(n, 0);
  if (!x)
    return;
  if (x->numel == 0) {
    loom__accumulate(n, 0, loom_zeros_like(x));
    return;
  }
  int perm[LOOM_MAX_DIMS], inv[LOOM_MAX_DIMS], k = 0;
  int64_t lines[LOOM_MAX_DIMS + 1];
  for (int d = 0; d < x->ndim; d++)
    if (!((n->i[LOOM_MAX_DIMS] >> d) & 1))
      lines[k] = x->shape[d], perm[k++] = d;
  int kept = k;
  for (int d = 0; d < x->ndim; d++)
    if ((n->i[LOOM_MAX_DIMS] >> d) & 1)
      perm[k++] = d;
  for (int i = 0; i < x->ndim; i++)
    inv[perm[i]] = i;
  lines[kept] = (int64_t)n->d[0];
  loom_tensor *xp = loom_permute(x, perm);
  loom_tensor *others =
      xp ? products_of_others(loom_reshape(xp, kept + 1, lines)) : NULL;
  if (!others)
    return;
  others = loom_permute(loom_reshape(others, xp->ndim, xp->shape), inv);
  loom__accumulate(n, 0, loom_mul(keep_shape_of(g[0], n), others));
}

loom_tensor *loom_prod(const loom_tensor *t, const int *dims, int n,
                       bool keepdim) {
  reduction r;
  if (!t || !parse(t, dims, n, keepdim, &r, "prod"))
    return loom_null_argument("prod");
  if (!loom_dtype_is_float(t->dtype) && t->dtype != LOOM_I64)
    t = loom_to_dtype(t, LOOM_I64);
  loom_tensor *out =
      t ? reduce_into(LOOM__REDUCE_PROD, t, t->dtype, &r, "prod") : NULL;
  loom__node *node = loom__record(&loom__op_prod, out, 1, &t);
  remember(node, &r);
  loom__save(node, t);
  return out;
}

/* ---- norm ---- */

/* The gradient of y = ||x||_p (y in keepdim shape). */
static void norm_gradient(loom__node *n, const loom_tensor *x,
                          const loom_tensor *y, loom_tensor *const *g) {
  double p = n->d[1];
  loom_tensor *gk = keep_shape_of(g[0], n);
  loom_tensor *d;
  if (isinf(p)) { /* to the elements of largest |x|, shared evenly */
    /* A NaN norm comes from NaN elements: they share it (as torch's), and
     * their sign of 0 gives each a 0, where no element equals NaN and an
     * empty share had given every element NaN. */
    loom_tensor *top =
        loom_logical_or(loom_eq(loom_abs(x), y),
                        loom_logical_and(loom_ne(x, x), loom_ne(y, y)));
    loom_tensor *hit = loom_to_dtype(top, x->dtype);
    int dims[LOOM_MAX_DIMS], nd = 0;
    for (int k = 0; k < x->ndim; k++)
      if ((n->i[LOOM_MAX_DIMS] >> k) & 1)
        dims[nd++] = k;
    loom_tensor *count = loom_sum(hit, dims, nd, true);
    d = loom_mul(loom_mul(hit, loom_sign(x)), loom_div(gk, count));
  } else if (p == 1) {
    d = loom_mul(loom_sign(x), gk);
  } else {
    /* g sign(x) |x|^(p-1) / y^(p-1), and 0 where y == 0 */
    loom_tensor *safe_y = loom_masked_fill(y, loom_eq_scalar(y, 0), 1);
    loom_tensor *num =
        p == 2 ? (loom_tensor *)x
               : loom_mul(loom_sign(x), loom_pow_scalar(loom_abs(x), p - 1));
    if (p < 1) /* |0|^(p - 1) is inf and sign(0) 0: 0 there, as torch */
      num = loom_masked_fill(num, loom_eq_scalar(x, 0), 0);
    loom_tensor *den = p == 2 ? safe_y : loom_pow_scalar(safe_y, p - 1);
    d = loom_mul(loom_div(num, den), gk);
    d = loom_masked_fill(d, loom_expand_as(loom_eq_scalar(y, 0), x), 0);
  }
  loom__accumulate(n, 0, d);
}

static void norm_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *x = loom__saved(n, 0), *y = loom__saved(n, 1);
  if (x && y)
    norm_gradient(n, x, y, g);
}

/* With create_graph the norm is recomputed as a recorded op, so that the
 * gradient's dependence on it through y is in the graph (the saved y was
 * computed with recording off). */
static void norm_graph_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *x = loom__saved(n, 0);
  int dims[LOOM_MAX_DIMS], nd = 0;
  for (int k = 0; x && k < x->ndim; k++)
    if ((n->i[LOOM_MAX_DIMS] >> k) & 1)
      dims[nd++] = k;
  const loom_tensor *y = x ? loom_norm(x, n->d[1], dims, nd, true) : NULL;
  if (y)
    norm_gradient(n, x, y, g);
}

loom_tensor *loom_norm(const loom_tensor *t, double p, const int *dims, int n,
                       bool keepdim) {
  reduction r;
  if (!t || !parse(t, dims, n, keepdim, &r, "norm"))
    return loom_null_argument("norm");
  if (!(p > 0))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "norm: p = %g must be > 0", p);
  if (!loom_dtype_is_float(t->dtype))
    t = loom_to_dtype(t, LOOM_DTYPE_DEFAULT);
  loom_tensor *keep;
  loom_no_grad_begin();
  loom_tensor *ax = loom_abs(t);
  if (isinf(p))
    keep = loom_amax(ax, dims, n, true);
  else if (p == 2)
    keep = loom_sqrt(loom_sum(loom_square(t), dims, n, true));
  else if (p == 1)
    keep = loom_sum(ax, dims, n, true);
  else
    keep =
        loom_pow_scalar(loom_sum(loom_pow_scalar(ax, p), dims, n, true), 1 / p);
  loom_no_grad_end();
  if (!keep)
    return NULL;
  loom_tensor *out = keep;
  if (!keepdim) {
    int64_t st[LOOM_MAX_DIMS];
    loom__contiguous_strides(r.out_ndim, r.out_shape, st);
    out = loom__to_scope(
        loom__view_of(keep, r.out_ndim, r.out_shape, st, keep->offset));
  }
  loom__node *node = loom__record(&loom__op_norm, out, 1, &t);
  remember(node, &r);
  if (node) {
    node->d[1] = p;
    loom__save(node, t);
    loom__save(node, keep);
  }
  return out;
}
