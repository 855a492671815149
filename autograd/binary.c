/* Elementwise ops of two tensors, with NumPy broadcasting and PyTorch's
 * dtype promotion. Backward passes full-shape gradients to
 * loom__accumulate, which sums them back over broadcast dims. */
#include "node.h"

#include <math.h>

LOOM__OP_TWICE(add, add_backward);
LOOM__OP_TWICE(sub, sub_backward);
LOOM__OP_TWICE(add_scaled, add_scaled_backward);
LOOM__OP_TWICE(mul, mul_backward);
LOOM__OP_TWICE(div, div_backward);
LOOM__OP_TWICE(pow, pow_backward);
LOOM__OP_TWICE(maximum, extremum_backward);
LOOM__OP_TWICE(minimum, extremum_backward);

typedef enum {
  SAVE_NONE = 0,
  SAVE_INPUTS = 1,
  SAVE_OUTPUT = 2,
} save_mode;

typedef struct {
  const char *name;
  const loom__op_def *def; /* NULL: not differentiable */
  const loom__binary_kernel *kernel;
  bool float_result; /* integer inputs give the default float */
  int save;
} binary_spec;

static loom_tensor *binary(const binary_spec *s, const loom_tensor *a,
                           const loom_tensor *b, double alpha) {
  if (!a || !b)
    return loom_null_argument(s->name);
  int64_t shape[LOOM_MAX_DIMS];
  int nd = loom__broadcast_shape(a, b, shape, s->name);
  if (nd < 0)
    return NULL;
  loom_dtype t = loom__promote_tensors(a, b);
  if (s->float_result && !loom_dtype_is_float(t))
    t = loom__resolve(LOOM_DTYPE_DEFAULT);
  /* Converting only when needed keeps two scope entries (and their
   * release) off the path of every same-dtype op. */
  if (a->dtype != t)
    a = loom__to_promoted(a, t);
  if (b->dtype != t)
    b = loom__to_promoted(b, t);
  if (!a || !b)
    return NULL;
  loom_tensor *out =
      loom__new(s->kernel->to_bool ? LOOM_BOOL : t, nd, shape, s->name);
  if (!out)
    return NULL;
  double p[1] = {alpha};
  if (loom__kernel_binary(s->kernel, out, a, b, p) < 0)
    return NULL;
  if (s->def) {
    loom__node *n = loom__record(s->def, out, 2, (const loom_tensor *[]){a, b});
    if (n) {
      n->d[0] = alpha;
      if (s->save & SAVE_INPUTS) {
        loom__save(n, a);
        loom__save(n, b);
      } else { /* backward reads the inputs' shapes only */
        loom__keep_link_only(n, 0);
        loom__keep_link_only(n, 1);
      }
      if (s->save & SAVE_OUTPUT)
        loom__save(n, out);
    }
  }
  return out;
}

static void add_backward(loom__node *n, loom_tensor *const *g) {
  loom__accumulate(n, 0, g[0]);
  loom__accumulate(n, 1, g[0]);
}

static void sub_backward(loom__node *n, loom_tensor *const *g) {
  loom__accumulate(n, 0, g[0]);
  if (loom__needs_grad(n, 1))
    loom__accumulate(n, 1, loom_neg(g[0]));
}

static void add_scaled_backward(loom__node *n, loom_tensor *const *g) {
  loom__accumulate(n, 0, g[0]);
  if (loom__needs_grad(n, 1))
    loom__accumulate(n, 1, loom_mul_scalar(g[0], n->d[0]));
}

static void mul_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *a = loom__saved(n, 0), *b = loom__saved(n, 1);
  if (loom__needs_grad(n, 0))
    loom__accumulate(n, 0, loom_mul(g[0], b));
  if (loom__needs_grad(n, 1))
    loom__accumulate(n, 1, loom_mul(g[0], a));
}

static void div_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *a = loom__saved(n, 0), *b = loom__saved(n, 1);
  if (loom__needs_grad(n, 0))
    loom__accumulate(n, 0, loom_div(g[0], b));
  /* -g (a / b) / b, as torch's: b * b underflows to 0 for |b| below
   * 1e-154 (1e-19 in float32), which made -a / b^2 NaN or inf where the
   * gradient is finite */
  if (loom__needs_grad(n, 1))
    loom__accumulate(n, 1,
                     loom_neg(loom_mul(g[0], loom_div(loom_div(a, b), b))));
}

static void pow_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *a = loom__saved(n, 0), *b = loom__saved(n, 1),
                    *y = loom__saved(n, 2);
  if (loom__needs_grad(n, 0)) { /* g b a^(b-1), 0 where b == 0 */
    loom_tensor *d =
        loom_mul(loom_mul(g[0], b), loom_pow(a, loom_sub_scalar(b, 1)));
    loom__accumulate(n, 0, loom_masked_fill(d, loom_eq_scalar(b, 0), 0));
  }
  if (loom__needs_grad(n, 1)) { /* g y log(a), 0 where a == 0 and b >= 0 */
    loom_tensor *d = loom_mul(g[0], loom_mul(y, loom_log(a)));
    loom_tensor *zero =
        loom_logical_and(loom_eq_scalar(a, 0), loom_ge_scalar(b, 0));
    loom__accumulate(n, 1, loom_masked_fill(d, zero, 0));
  }
}

/* maximum/minimum: the gradient goes to the chosen input, split evenly on
 * ties, and to both where a NaN is compared (neither loses), as PyTorch's:
 * a NaN in the forward pass is not hidden from the backward one. */
static void extremum_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *a = loom__saved(n, 0), *b = loom__saved(n, 1);
  bool is_max = n->op == &loom__op_maximum;
  loom_tensor *tie = loom_eq(a, b);
  loom_tensor *half = loom_mul_scalar(g[0], 0.5);
  loom_tensor *a_loses = is_max ? loom_lt(a, b) : loom_gt(a, b);
  loom_tensor *b_loses = is_max ? loom_gt(a, b) : loom_lt(a, b);
  loom_tensor *zero = loom_zeros_like(g[0]);
  if (loom__needs_grad(n, 0))
    loom__accumulate(n, 0,
                     loom_where(tie, half, loom_where(a_loses, zero, g[0])));
  if (loom__needs_grad(n, 1))
    loom__accumulate(n, 1,
                     loom_where(tie, half, loom_where(b_loses, zero, g[0])));
}

#define SPEC(var, name, def, kernel, fl, save)                                 \
  static const binary_spec var = {name, def, &loom__##kernel##_kernel, fl,     \
                                  save};
SPEC(s_add, "add", &loom__op_add, add, false, SAVE_NONE)
SPEC(s_sub, "sub", &loom__op_sub, sub, false, SAVE_NONE)
SPEC(s_add_scaled, "add_scaled", &loom__op_add_scaled, add_scaled, false,
     SAVE_NONE)
SPEC(s_mul, "mul", &loom__op_mul, mul, false, SAVE_INPUTS)
SPEC(s_div, "div", &loom__op_div, div, true, SAVE_INPUTS)
SPEC(s_pow, "pow", &loom__op_pow, pow, true, SAVE_INPUTS | SAVE_OUTPUT)
SPEC(s_max, "maximum", &loom__op_maximum, maximum, false, SAVE_INPUTS)
SPEC(s_min, "minimum", &loom__op_minimum, minimum, false, SAVE_INPUTS)
SPEC(s_eq, "eq", NULL, eq, false, 0)
SPEC(s_ne, "ne", NULL, ne, false, 0)
SPEC(s_lt, "lt", NULL, lt, false, 0)
SPEC(s_le, "le", NULL, le, false, 0)
SPEC(s_gt, "gt", NULL, gt, false, 0)
SPEC(s_ge, "ge", NULL, ge, false, 0)

loom_tensor *loom_add(const loom_tensor *a, const loom_tensor *b) {
  return binary(&s_add, a, b, 0);
}
loom_tensor *loom_sub(const loom_tensor *a, const loom_tensor *b) {
  return binary(&s_sub, a, b, 0);
}
loom_tensor *loom_add_scaled(const loom_tensor *a, const loom_tensor *b,
                             double alpha) {
  /* integer operands give an integer sum: a fractional alpha cannot be
   * applied to it (torch refuses it too) */
  if (a && b && !loom_dtype_is_float(loom__promote_tensors(a, b)) &&
      !(alpha == floor(alpha) && fabs(alpha) < 9.2e18))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "add_scaled: alpha %g with %s operands (the sum is "
                     "integral)",
                     alpha, loom_dtype_name(loom__promote_tensors(a, b)));
  return binary(&s_add_scaled, a, b, alpha);
}
loom_tensor *loom_mul(const loom_tensor *a, const loom_tensor *b) {
  return binary(&s_mul, a, b, 0);
}
loom_tensor *loom_div(const loom_tensor *a, const loom_tensor *b) {
  return binary(&s_div, a, b, 0);
}
loom_tensor *loom_pow(const loom_tensor *a, const loom_tensor *b) {
  return binary(&s_pow, a, b, 0);
}
loom_tensor *loom_maximum(const loom_tensor *a, const loom_tensor *b) {
  return binary(&s_max, a, b, 0);
}
loom_tensor *loom_minimum(const loom_tensor *a, const loom_tensor *b) {
  return binary(&s_min, a, b, 0);
}
loom_tensor *loom_eq(const loom_tensor *a, const loom_tensor *b) {
  return binary(&s_eq, a, b, 0);
}
loom_tensor *loom_ne(const loom_tensor *a, const loom_tensor *b) {
  return binary(&s_ne, a, b, 0);
}
loom_tensor *loom_lt(const loom_tensor *a, const loom_tensor *b) {
  return binary(&s_lt, a, b, 0);
}
loom_tensor *loom_le(const loom_tensor *a, const loom_tensor *b) {
  return binary(&s_le, a, b, 0);
}
loom_tensor *loom_gt(const loom_tensor *a, const loom_tensor *b) {
  return binary(&s_gt, a, b, 0);
}
loom_tensor *loom_ge(const loom_tensor *a, const loom_tensor *b) {
  return binary(&s_ge, a, b, 0);
}

static loom_tensor *logical(const loom__binary_kernel *k, const char *name,
                            const loom_tensor *a, const loom_tensor *b) {
  if (!a || !b)
    return loom_null_argument(name);
  int64_t shape[LOOM_MAX_DIMS];
  int nd = loom__broadcast_shape(a, b, shape, name);
  if (nd < 0)
    return NULL;
  a = loom_to_dtype(a, LOOM_BOOL);
  b = loom_to_dtype(b, LOOM_BOOL);
  loom_tensor *out = a && b ? loom__new(LOOM_BOOL, nd, shape, name) : NULL;
  if (out)
    loom__kernel_binary(k, out, a, b, NULL);
  return out;
}

loom_tensor *loom_logical_and(const loom_tensor *a, const loom_tensor *b) {
  return logical(&loom__logical_and_kernel, "logical_and", a, b);
}
loom_tensor *loom_logical_or(const loom_tensor *a, const loom_tensor *b) {
  return logical(&loom__logical_or_kernel, "logical_or", a, b);
}

loom_tensor *loom_logical_not(const loom_tensor *t) {
  if (!t)
    return loom_null_argument("logical_not");
  t = loom_to_dtype(t, LOOM_BOOL);
  loom_tensor *out =
      t ? loom__new(LOOM_BOOL, t->ndim, t->shape, "logical_not") : NULL;
  if (out)
    loom__kernel_unary(&loom__logical_not_kernel, out, t, NULL);
  return out;
}

static loom_tensor *compare_scalar(const loom__unary_kernel *k,
                                   const loom_tensor *t, double s) {
  if (!t)
    return loom_null_argument(k->name);
  if (t->dtype == LOOM_F32) /* PyTorch compares in the tensor's precision */
    s = (float)s;
  loom_tensor *out = loom__new(LOOM_BOOL, t->ndim, t->shape, k->name);
  if (out && loom__kernel_unary(k, out, t, (double[]){s}) < 0)
    return NULL;
  return out;
}

loom_tensor *loom_eq_scalar(const loom_tensor *t, double s) {
  return compare_scalar(&loom__eq_scalar_kernel, t, s);
}
loom_tensor *loom_ne_scalar(const loom_tensor *t, double s) {
  return compare_scalar(&loom__ne_scalar_kernel, t, s);
}
loom_tensor *loom_lt_scalar(const loom_tensor *t, double s) {
  return compare_scalar(&loom__lt_scalar_kernel, t, s);
}
loom_tensor *loom_le_scalar(const loom_tensor *t, double s) {
  return compare_scalar(&loom__le_scalar_kernel, t, s);
}
loom_tensor *loom_gt_scalar(const loom_tensor *t, double s) {
  return compare_scalar(&loom__gt_scalar_kernel, t, s);
}
loom_tensor *loom_ge_scalar(const loom_tensor *t, double s) {
  return compare_scalar(&loom__ge_scalar_kernel, t, s);
}
