/* Cumulative sums and products along a dim: torch.cumsum and torch.cumprod.
 *
 * Each is a kernel of its own: written with existing ops a scan is a
 * product with a triangular matrix of ones, O(n^2) per line where the
 * kernel is O(n) (bench/scan.c measures both; tests/test_scan_sort.c holds
 * them equal). Their backward passes are written in ops, so they can be
 * differentiated again.
 */
#include "node.h"

LOOM__OP_TWICE(cumsum, cumsum_backward);
LOOM__OP_TWICE(cumprod, cumprod_backward);

/* The scan of t along dim (from the last element back when reverse), the
 * node keeping dim and direction; integer and bool tensors scan in int64,
 * as in PyTorch. */
static loom_tensor *scan(const loom__op_def *def, const loom_tensor *t, int dim,
                         bool reverse) {
  if (!t)
    return loom_null_argument(def->name);
  int d = loom__dim(dim, t->ndim, def->name);
  if (d < 0)
    return NULL;
  const loom_tensor *x = loom_contiguous(
      loom_dtype_is_float(t->dtype) ? t : loom_to_dtype(t, LOOM_I64));
  loom_tensor *out =
      x ? loom__new(x->dtype, x->ndim, x->shape, def->name) : NULL;
  if (!out)
    return NULL;
  loom__kernel_cumulative(out, x, d, def == &loom__op_cumprod, reverse);
  loom__node *n = loom__record(def, out, 1, &x);
  if (n) {
    n->i[0] = d;
    n->i[1] = reverse;
    if (def == &loom__op_cumprod)
      loom__save(n, out);
  }
  return out;
}

loom_tensor *loom_cumsum(const loom_tensor *t, int dim) {
  return scan(&loom__op_cumsum, t, dim, false);
}

loom_tensor *loom_cumprod(const loom_tensor *t, int dim) {
  return scan(&loom__op_cumprod, t, dim, false);
}

/* The gradient of a sum from the start is the sum from the end. */
static void cumsum_backward(loom__node *n, loom_tensor *const *g) {
  loom__accumulate(n, 0, scan(&loom__op_cumsum, g[0], (int)n->i[0], !n->i[1]));
}

/* ---- cumprod's gradient: g_k = sum over j >= k of g_j y_j / x_k ---- */

/* The formula above where x holds no zero. */
static loom_tensor *cumprod_grad_nonzero(const loom_tensor *x,
                                         const loom_tensor *y,
                                         const loom_tensor *g, int d) {
  return loom_div(scan(&loom__op_cumsum, loom_mul(g, y), d, true), x);
}

/* With zeros, when the gradient is not differentiated again, in O(n): of
 * each line, the positions before its first zero z take the formula above
 * (their products after z are 0 anyway); z takes the product of x before
 * it times sum over j >= z of g_j prod_{z < i <= j} x_i; the positions
 * after z take 0, as every product through them holds x_z = 0. */
static loom_tensor *cumprod_grad_zeros(const loom_tensor *x,
                                       const loom_tensor *y,
                                       const loom_tensor *g, int d) {
  loom_tensor *zero = loom_eq_scalar(x, 0);
  loom_tensor *zeros_so_far = scan(&loom__op_cumsum, zero, d, false);
  loom_tensor *before = loom_eq_scalar(zeros_so_far, 0);
  loom_tensor *not_before = loom_logical_not(before);
  loom_tensor *first = loom_logical_and(loom_eq_scalar(zeros_so_far, 1), zero);
  loom_tensor *after =
      loom_logical_and(not_before, loom_logical_not(first)); /* past z */
  loom_tensor *head = loom_masked_fill(
      cumprod_grad_nonzero(loom_masked_fill(x, not_before, 1), y, g, d),
      not_before, 0);
  loom_tensor *prefix =
      loom_prod(loom_masked_fill(x, not_before, 1), &d, 1, true);
  loom_tensor *tail_products =
      loom_cumprod(loom_masked_fill(x, loom_logical_not(after), 1), d);
  loom_tensor *tail = loom_sum(
      loom_masked_fill(loom_mul(g, tail_products), before, 0), &d, 1, true);
  loom_tensor *at_zero =
      loom_where(first, loom_mul(prefix, tail), loom_scalar(x->dtype, 0));
  return loom_add(head, at_zero);
}

/* With zeros, in ops whose own gradient is right (a second derivative
 * reaches through the zeros), at O(n^2) memory per line: along the dim
 * moved last, row k of a (n, n) matrix is x with x_k replaced by 1; its
 * cumulative product, upper triangle kept, holds prod_{i <= j, i != k}
 * x_i = d y_j / d x_k, summed against g. */
static loom_tensor *cumprod_grad_twice(const loom_tensor *x,
                                       const loom_tensor *g, int d) {
  int64_t n = x->ndim ? x->shape[d] : 1;
  loom_tensor *xm = loom_transpose(x, d, -1), *gm = loom_transpose(g, d, -1);
  loom_tensor *rows =
      loom_where(loom_eye(LOOM_BOOL, n, n), loom_scalar(x->dtype, 1),
                 loom_unsqueeze(xm, -2));
  loom_tensor *dy_dx = loom_triu(loom_cumprod(rows, -1), 0);
  loom_tensor *gx =
      loom_sum(loom_mul(dy_dx, loom_unsqueeze(gm, -2)), (int[]){-1}, 1, false);
  return loom_transpose(gx, d, -1);
}

static void cumprod_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *x = loom__input_value(n, 0), *y = loom__saved(n, 0);
  if (!x || !y)
    return;
  int d = (int)n->i[0];
  if ((x->ndim ? x->shape[d] : 1) == 1) { /* y = x */
    loom__accumulate(n, 0, g[0]);
    return;
  }
  loom_tensor *zeros = loom_sum_all(loom_eq_scalar(x, 0));
  if (!zeros)
    return;
  if (loom_item(zeros) == 0)
    loom__accumulate(n, 0, cumprod_grad_nonzero(x, y, g[0], d));
  else if (!loom__should_record(2, (const loom_tensor *[]){x, g[0]}))
    loom__accumulate(n, 0, cumprod_grad_zeros(x, y, g[0], d));
  else
    loom__accumulate(n, 0, cumprod_grad_twice(x, g[0], d));
}
