/* Elementwise ops of one tensor: math functions, activations, and the
 * scalar forms of arithmetic. Each is a row of tensor/unary_ops.def (its
 * forward formula beside its derivative); this file turns every row into a
 * registered op with one forward and one backward, and writes the public
 * functions of the rows with scalar parameters. */
#include "node.h"

#include <math.h>

/* What backward needs: the input (X), the output (Y), or nothing (OPS). */
typedef enum { FROM_X, FROM_Y, FROM_OPS } grad_from;

typedef const loom_tensor *(*grad_ops_fn)(const loom_tensor *g,
                                          const double *p);

typedef struct {
  const loom__op_def *def;
  const loom__unary_kernel *fwd;
  grad_from from;
  const loom__binary_kernel *grad; /* X, Y: (saved, g) -> input gradient */
  grad_ops_fn grad_ops;            /* OPS */
} unary_spec;

#define GRAD_KERNEL_X(name) &loom__##name##_grad_kernel
#define GRAD_KERNEL_Y GRAD_KERNEL_X
#define GRAD_KERNEL_OPS(name) NULL
#define GRAD_OPS_X(name) NULL
#define GRAD_OPS_Y(name) NULL
#define GRAD_OPS_OPS(name) name##_grad_ops

/* Registration, and the OPS rows' gradients. */
#define GRAD_OPS_FN_X(name, gradient)
#define GRAD_OPS_FN_Y(name, gradient)
#define GRAD_OPS_FN_OPS(name, gradient)                                        \
  static const loom_tensor *name##_grad_ops(const loom_tensor *g,              \
                                            const double *p) {                 \
    (void)g, (void)p;                                                          \
    return gradient;                                                           \
  }
#define UNARY(name, dtypes, cost, forward, from, gradient, grad_cost)          \
  LOOM__OP_GRAPH(name, unary_backward, unary_graph_backward);                  \
  GRAD_OPS_FN_##from(name, gradient)
#define UNARY_P UNARY
#include "../tensor/unary_ops.def"
#undef UNARY
#undef UNARY_P

enum {
#define UNARY(name, ...) U_##name,
#define UNARY_P UNARY
#include "../tensor/unary_ops.def"
#undef UNARY
#undef UNARY_P
};

static const unary_spec specs[] = {
#define UNARY(name, dtypes, cost, forward, from, gradient, grad_cost)          \
  [U_##name] = {&loom__op_##name, &loom__##name##_kernel, FROM_##from,         \
                GRAD_KERNEL_##from(name), GRAD_OPS_##from(name)},
#define UNARY_P UNARY
#include "../tensor/unary_ops.def"
#undef UNARY
#undef UNARY_P
};

static void unary_backward(loom__node *n, loom_tensor *const *gout) {
  const unary_spec *s = &specs[n->i[0]];
  const loom_tensor *g = gout[0];
  if (s->from == FROM_OPS) {
    loom__accumulate(n, 0, s->grad_ops(g, n->d));
    return;
  }
  const loom_tensor *v = loom__saved(n, 0);
  if (!v)
    return;
  loom_tensor *gin = loom__new(g->dtype, g->ndim, g->shape, s->def->name);
  if (gin && loom__kernel_binary(s->grad, gin, v, g, n->d) == 0)
    loom__accumulate(n, 0, gin);
}

/* ---- double backward ----
 * With create_graph, a row whose gradient is a kernel (X, Y) has it
 * written again in recorded ops: in the output y for Y rows (y is in the
 * graph, linked to the op), in the input x for X rows. OPS rows' gradients
 * are recorded ops already. */

/* gelu'(x) = Phi(x) + x phi(x), with its own derivative phi(x) (2 - x^2):
 * there is no erf op to write it with, so it is an op of its own (not in
 * the registry: the gradgradcheck of gelu differentiates it). */
static void gelu_derivative_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *x = loom__saved(n, 0);
  loom_tensor *phi = loom_mul_scalar(
      loom_exp(loom_mul_scalar(loom_square(x), -0.5)), 0.39894228040143267794);
  loom__accumulate(
      n, 0, loom_mul(g[0], loom_mul(phi, loom_rsub_scalar(loom_square(x), 2))));
}

static const loom__op_def gelu_derivative_op = {
    "gelu_derivative", gelu_derivative_backward, gelu_derivative_backward};

static loom_tensor *gelu_derivative(const loom_tensor *x) {
  loom_tensor *out = loom__new(x->dtype, x->ndim, x->shape, "gelu");
  loom_tensor *one = loom_ones(x->dtype, x->ndim, x->shape);
  if (!out || !one ||
      loom__kernel_binary(&loom__gelu_grad_kernel, out, x, one, NULL) < 0)
    return NULL;
  loom__save(loom__record(&gelu_derivative_op, out, 1, &x), x);
  return out;
}

static loom_tensor *as_float(const loom_tensor *mask, const loom_tensor *like) {
  return loom_to_dtype(mask, like->dtype);
}

/* The input gradient of row `which` for g, in recorded ops of x (X rows)
 * or y (Y rows). */
static loom_tensor *graph_gradient(int which, const loom_tensor *x,
                                   const loom_tensor *y, const loom_tensor *g,
                                   const double *p) {
  switch (which) {
  case U_square:
    return loom_mul(g, loom_mul_scalar(x, 2));
  case U_abs:
    return loom_mul(g, loom_sign(x));
  case U_reciprocal:
    return loom_neg(loom_mul(g, loom_square(y)));
  case U_sqrt:
    return loom_div(g, loom_mul_scalar(y, 2));
  case U_rsqrt:
    return loom_mul(g, loom_mul_scalar(loom_mul(loom_square(y), y), -0.5));
  case U_pow_scalar:
    return p[0] == 0 ? loom_zeros_like(g)
                     : loom_mul(g, loom_mul_scalar(loom_pow_scalar(x, p[0] - 1),
                                                   p[0]));
  case U_clamp:
    return loom_mul(g, as_float(loom_logical_and(loom_ge_scalar(x, p[0]),
                                                 loom_le_scalar(x, p[1])),
                                g));
  case U_exp:
    return loom_mul(g, y);
  case U_expm1:
    return loom_mul(g, loom_add_scalar(y, 1));
  case U_log:
    return loom_div(g, x);
  case U_log1p:
    return loom_div(g, loom_add_scalar(x, 1));
  case U_sin:
    return loom_mul(g, loom_cos(x));
  case U_cos:
    return loom_neg(loom_mul(g, loom_sin(x)));
  case U_tanh:
    return loom_mul(g, loom_rsub_scalar(loom_square(y), 1));
  case U_sigmoid:
    return loom_mul(g, loom_mul(y, loom_rsub_scalar(y, 1)));
  case U_log_sigmoid:
    return loom_mul(g, loom_sigmoid(loom_neg(x)));
  case U_relu:
    return loom_mul(g, as_float(loom_gt_scalar(x, 0), g));
  case U_silu: {
    loom_tensor *s = loom_sigmoid(x);
    return loom_mul(
        g,
        loom_mul(s, loom_add_scalar(loom_mul(x, loom_rsub_scalar(s, 1)), 1)));
  }
  case U_leaky_relu:
    return loom_where(loom_gt_scalar(x, 0), g, loom_mul_scalar(g, p[0]));
  case U_elu:
    return loom_where(loom_le_scalar(x, 0),
                      loom_mul(g, loom_mul_scalar(loom_exp(x), p[0])), g);
  case U_softplus: {
    loom_tensor *bx = loom_mul_scalar(x, p[0]);
    return loom_where(loom_gt_scalar(bx, p[1]), g,
                      loom_mul(g, loom_sigmoid(bx)));
  }
  case U_gelu:
    return loom_mul(g, gelu_derivative(x));
  case U_gelu_tanh: {
    const double c = 0.79788456080286535588, a = 0.044715;
    loom_tensor *x2 = loom_square(x);
    loom_tensor *t = loom_tanh(
        loom_mul_scalar(loom_add(x, loom_mul_scalar(loom_mul(x2, x), a)), c));
    loom_tensor *d = loom_add(
        loom_mul_scalar(loom_add_scalar(t, 1), 0.5),
        loom_mul(loom_mul_scalar(x, 0.5 * c),
                 loom_mul(loom_rsub_scalar(loom_square(t), 1),
                          loom_add_scalar(loom_mul_scalar(x2, 3 * a), 1))));
    return loom_mul(g, d);
  }
  default:
    return LOOM_FAIL(LOOM_ERR_STATE, "%s: no double backward written",
                     specs[which].def->name);
  }
}

static void unary_graph_backward(loom__node *n, loom_tensor *const *gout) {
  const unary_spec *s = &specs[n->i[0]];
  if (s->from == FROM_OPS) {
    loom__accumulate(n, 0, s->grad_ops(gout[0], n->d));
    return;
  }
  const loom_tensor *v = loom__saved(n, 0);
  if (!v)
    return;
  const loom_tensor *x = s->from == FROM_X ? v : NULL;
  const loom_tensor *y = s->from == FROM_Y ? v : NULL;
  loom__accumulate(n, 0, graph_gradient((int)n->i[0], x, y, gout[0], n->d));
}

static loom_tensor *unary(int which, const loom_tensor *x, double p0,
                          double p1) {
  const unary_spec *s = &specs[which];
  if (!x)
    return loom_null_argument(s->def->name);
  /* Ops without an integer loop compute integers in the default float. */
  if (!s->fwd->loop[LOOM_I64] && !loom_dtype_is_float(x->dtype))
    x = loom_to_dtype(x, LOOM_DTYPE_DEFAULT);
  if (!x)
    return NULL;
  if (x->dtype == LOOM_BOOL || x->dtype == LOOM_U8)
    x = loom_to_dtype(x, LOOM_I64);
  if (!x)
    return NULL;
  loom_tensor *out = loom__new(x->dtype, x->ndim, x->shape, s->def->name);
  if (!out)
    return NULL;
  double p[2] = {p0, p1};
  if (loom__kernel_unary(s->fwd, out, x, p) < 0)
    return NULL;
  loom__node *n = loom__record(s->def, out, 1, &x);
  if (n) {
    n->i[0] = which;
    n->d[0] = p0;
    n->d[1] = p1;
    if (s->from == FROM_X)
      loom__save(n, x);
    else /* backward reads x only as saved */
      loom__keep_link_only(n, 0);
    if (s->from == FROM_Y)
      loom__save(n, out);
  }
  return out;
}

/* The public functions of UNARY rows: loom_<name>(t). */
#define UNARY(name, ...)                                                       \
  loom_tensor *loom_##name(const loom_tensor *t) {                             \
    return unary(U_##name, t, 0, 0);                                           \
  }
#define UNARY_P(...)
#include "../tensor/unary_ops.def"
#undef UNARY
#undef UNARY_P

/* ---- ops with scalar parameters ---- */

loom_tensor *loom_leaky_relu(const loom_tensor *t, double slope) {
  return unary(U_leaky_relu, t, slope, 0);
}
loom_tensor *loom_gelu(const loom_tensor *t, bool tanh_approx) {
  return unary(tanh_approx ? U_gelu_tanh : U_gelu, t, 0, 0);
}
loom_tensor *loom_elu(const loom_tensor *t, double alpha) {
  return unary(U_elu, t, alpha, 0);
}
loom_tensor *loom_softplus(const loom_tensor *t, double beta,
                           double threshold) {
  if (beta == 0)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "softplus: beta must not be 0");
  return unary(U_softplus, t, beta, threshold);
}

/* Whether an int64 holds s exactly: an integer tensor takes such a scalar
 * in its own dtype, and computes in float with any other (converting it
 * would be undefined, or rounding it would change the result). */
static bool integral(double s) { return s == floor(s) && fabs(s) < 0x1p63; }

bool loom__clamp_needs_float(double lo, double hi) {
  return (isfinite(lo) && !integral(lo)) || (isfinite(hi) && !integral(hi));
}

loom_tensor *loom_clamp(const loom_tensor *t, double lo, double hi) {
  if (!t)
    return loom_null_argument("clamp");
  if (!(lo <= hi)) /* lo > hi, or a NaN bound: a mistake, not a limit */
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "clamp: bounds [%g, %g]", lo, hi);
  /* between two integers or beyond int64: the result is float, as the
   * scalar ops' (the bounds rounded inwards could cross: [0.2, 0.8] became
   * [1, 0]; [1e30, 2e30] gave 2^63) */
  if (!loom_dtype_is_float(t->dtype) && loom__clamp_needs_float(lo, hi) &&
      !(t = loom_to_dtype(t, LOOM_DTYPE_DEFAULT)))
    return NULL;
  return unary(U_clamp, t, lo, hi);
}

loom_tensor *loom_pow_scalar(const loom_tensor *t, double exponent) {
  if (exponent == 1)
    return unary(U_mul_scalar, t, 1, 0);
  if (exponent == 2)
    return unary(U_square, t, 0, 0);
  return unary(U_pow_scalar, t, exponent, 0);
}

/* An integer tensor with a scalar no int64 holds computes in float. */
static const loom_tensor *for_scalar(const loom_tensor *t, double s) {
  if (t && !loom_dtype_is_float(t->dtype) && !integral(s))
    return loom_to_dtype(t, LOOM_DTYPE_DEFAULT);
  return t;
}

loom_tensor *loom_add_scalar(const loom_tensor *t, double s) {
  return unary(U_add_scalar, for_scalar(t, s), s, 0);
}
loom_tensor *loom_sub_scalar(const loom_tensor *t, double s) {
  return unary(U_add_scalar, for_scalar(t, s), -s, 0);
}
loom_tensor *loom_rsub_scalar(const loom_tensor *t, double s) {
  return unary(U_rsub_scalar, for_scalar(t, s), s, 0);
}
loom_tensor *loom_mul_scalar(const loom_tensor *t, double s) {
  return unary(U_mul_scalar, for_scalar(t, s), s, 0);
}
loom_tensor *loom_div_scalar(const loom_tensor *t, double s) {
  return unary(U_div_scalar, t, s, 0);
}
