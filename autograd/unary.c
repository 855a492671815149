/* Elementwise ops of one tensor: math functions, activations, and the
 * scalar forms of arithmetic. One table row per op: its forward kernel and
 * the fused kernel that turns (saved value, incoming gradient) into the
 * input gradient. */
#include "node.h"

#include <math.h>

typedef enum {
  GRAD_FROM_X, /* grad kernel reads the input */
  GRAD_FROM_Y, /* grad kernel reads the output */
  GRAD_SAME,   /* gradient passes unchanged */
  GRAD_NEG,    /* gradient negated */
  GRAD_SCALE,  /* gradient times p[0] */
  GRAD_DIVIDE, /* gradient divided by p[0] */
  GRAD_ZERO,   /* piecewise constant */
} grad_kind;

typedef struct {
  const loom_op_def *def;
  const loom_unary_kernel *fwd;
  const loom_binary_kernel *grad;
  grad_kind kind;
  bool float_only; /* integer inputs are converted to the default float */
} unary_spec;

#define OPS(X)                                                                 \
  X(neg, neg, NULL, GRAD_NEG, false)                                           \
  X(exp, exp, exp_grad, GRAD_FROM_Y, true)                                     \
  X(expm1, expm1, expm1_grad, GRAD_FROM_Y, true)                               \
  X(log, log, log_grad, GRAD_FROM_X, true)                                     \
  X(log1p, log1p, log1p_grad, GRAD_FROM_X, true)                               \
  X(sqrt, sqrt, sqrt_grad, GRAD_FROM_Y, true)                                  \
  X(rsqrt, rsqrt, rsqrt_grad, GRAD_FROM_Y, true)                               \
  X(square, square, square_grad, GRAD_FROM_X, false)                           \
  X(reciprocal, reciprocal, reciprocal_grad, GRAD_FROM_Y, true)                \
  X(abs, abs, abs_grad, GRAD_FROM_X, false)                                    \
  X(sign, sign, NULL, GRAD_ZERO, false)                                        \
  X(sin, sin, sin_grad, GRAD_FROM_X, true)                                     \
  X(cos, cos, cos_grad, GRAD_FROM_X, true)                                     \
  X(tanh, tanh, tanh_grad, GRAD_FROM_Y, true)                                  \
  X(sigmoid, sigmoid, sigmoid_grad, GRAD_FROM_Y, true)                         \
  X(log_sigmoid, log_sigmoid, log_sigmoid_grad, GRAD_FROM_X, true)             \
  X(relu, relu, relu_grad, GRAD_FROM_X, false)                                 \
  X(leaky_relu, leaky_relu, leaky_relu_grad, GRAD_FROM_X, true)                \
  X(gelu, gelu, gelu_grad, GRAD_FROM_X, true)                                  \
  X(gelu_tanh, gelu_tanh, gelu_tanh_grad, GRAD_FROM_X, true)                   \
  X(elu, elu, elu_grad, GRAD_FROM_X, true)                                     \
  X(silu, silu, silu_grad, GRAD_FROM_X, true)                                  \
  X(softplus, softplus, softplus_grad, GRAD_FROM_X, true)                      \
  X(clamp, clamp, clamp_grad, GRAD_FROM_X, false)                              \
  X(pow_scalar, pow_scalar, pow_scalar_grad, GRAD_FROM_X, true)                \
  X(add_scalar, add_scalar, NULL, GRAD_SAME, false)                            \
  X(rsub_scalar, rsub_scalar, NULL, GRAD_NEG, false)                           \
  X(mul_scalar, mul_scalar, NULL, GRAD_SCALE, false)                           \
  X(div_scalar, div_scalar, NULL, GRAD_DIVIDE, true)

#define DEFINE(name, fwd, grad, kind, fo) LOOM_OP(name, unary_backward);
OPS(DEFINE)
#undef DEFINE

enum {
#define ENUM(name, fwd, grad, kind, fo) U_##name,
  OPS(ENUM)
#undef ENUM
};

#define KERNEL_OR_NULL_NULL NULL
#define SPEC(name, fwd, grad, kind, fo)                                        \
  [U_##name] = {&loom_op_##name, &loom_k_##fwd, GRAD_PTR_##kind(grad), kind,   \
                fo},
#define GRAD_PTR_GRAD_FROM_X(g) &loom_k_##g
#define GRAD_PTR_GRAD_FROM_Y(g) &loom_k_##g
#define GRAD_PTR_GRAD_SAME(g) NULL
#define GRAD_PTR_GRAD_NEG(g) NULL
#define GRAD_PTR_GRAD_SCALE(g) NULL
#define GRAD_PTR_GRAD_DIVIDE(g) NULL
#define GRAD_PTR_GRAD_ZERO(g) NULL
static const unary_spec specs[] = {OPS(SPEC)};

static void unary_backward(loom_node *n, loom_tensor *const *gout) {
  const unary_spec *s = &specs[n->i[0]];
  const loom_tensor *g = gout[0];
  loom_tensor *gin = NULL;
  switch (s->kind) {
  case GRAD_SAME:
    gin = (loom_tensor *)g;
    break;
  case GRAD_NEG:
    gin = loom_neg(g);
    break;
  case GRAD_SCALE:
    gin = loom_mul_scalar(g, n->d[0]);
    break;
  case GRAD_DIVIDE:
    gin = loom_div_scalar(g, n->d[0]);
    break;
  case GRAD_ZERO:
    return;
  default: {
    const loom_tensor *v = loom__saved(n, 0);
    if (!v)
      return;
    gin = loom__new(g->dtype, g->ndim, g->shape, s->def->name);
    if (gin)
      loom_kernel_binary(s->grad, gin, v, g, n->d);
  }
  }
  loom__accumulate(n, 0, gin);
}

static loom_tensor *unary(int which, const loom_tensor *x, double p0,
                          double p1) {
  if (!x)
    return NULL;
  const unary_spec *s = &specs[which];
  if (s->float_only && !loom_dtype_is_float(x->dtype))
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
  if (loom_kernel_unary(s->fwd, out, x, p) < 0)
    return NULL;
  loom_node *n = loom__record(s->def, out, 1, &x);
  if (n) {
    n->i[0] = which;
    n->d[0] = p0;
    n->d[1] = p1;
    if (s->kind == GRAD_FROM_X)
      loom__save(n, x);
    else if (s->kind == GRAD_FROM_Y)
      loom__save(n, out);
  }
  return out;
}

loom_tensor *loom_neg(const loom_tensor *t) { return unary(U_neg, t, 0, 0); }
loom_tensor *loom_exp(const loom_tensor *t) { return unary(U_exp, t, 0, 0); }
loom_tensor *loom_expm1(const loom_tensor *t) {
  return unary(U_expm1, t, 0, 0);
}
loom_tensor *loom_log(const loom_tensor *t) { return unary(U_log, t, 0, 0); }
loom_tensor *loom_log1p(const loom_tensor *t) {
  return unary(U_log1p, t, 0, 0);
}
loom_tensor *loom_sqrt(const loom_tensor *t) { return unary(U_sqrt, t, 0, 0); }
loom_tensor *loom_rsqrt(const loom_tensor *t) {
  return unary(U_rsqrt, t, 0, 0);
}
loom_tensor *loom_square(const loom_tensor *t) {
  return unary(U_square, t, 0, 0);
}
loom_tensor *loom_reciprocal(const loom_tensor *t) {
  return unary(U_reciprocal, t, 0, 0);
}
loom_tensor *loom_abs(const loom_tensor *t) { return unary(U_abs, t, 0, 0); }
loom_tensor *loom_sign(const loom_tensor *t) { return unary(U_sign, t, 0, 0); }
loom_tensor *loom_sin(const loom_tensor *t) { return unary(U_sin, t, 0, 0); }
loom_tensor *loom_cos(const loom_tensor *t) { return unary(U_cos, t, 0, 0); }
loom_tensor *loom_tanh(const loom_tensor *t) { return unary(U_tanh, t, 0, 0); }
loom_tensor *loom_sigmoid(const loom_tensor *t) {
  return unary(U_sigmoid, t, 0, 0);
}
loom_tensor *loom_log_sigmoid(const loom_tensor *t) {
  return unary(U_log_sigmoid, t, 0, 0);
}
loom_tensor *loom_relu(const loom_tensor *t) { return unary(U_relu, t, 0, 0); }
loom_tensor *loom_leaky_relu(const loom_tensor *t, double slope) {
  return unary(U_leaky_relu, t, slope, 0);
}
loom_tensor *loom_gelu(const loom_tensor *t, bool tanh_approx) {
  return unary(tanh_approx ? U_gelu_tanh : U_gelu, t, 0, 0);
}
loom_tensor *loom_elu(const loom_tensor *t, double alpha) {
  return unary(U_elu, t, alpha, 0);
}
loom_tensor *loom_silu(const loom_tensor *t) { return unary(U_silu, t, 0, 0); }
loom_tensor *loom_softplus(const loom_tensor *t, double beta,
                           double threshold) {
  if (beta == 0)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "softplus: beta must not be 0");
  return unary(U_softplus, t, beta, threshold);
}

/* Integer tensors take integer bounds: saturate so the kernel's
 * conversions are defined. */
static double int_bound(double v) {
  return v != v ? 0 : v < -9.2e18 ? -9.2e18 : v > 9.2e18 ? 9.2e18 : v;
}

loom_tensor *loom_clamp(const loom_tensor *t, double lo, double hi) {
  if (!t)
    return NULL;
  if (lo > hi)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "clamp: lo %g > hi %g", lo, hi);
  if (!loom_dtype_is_float(t->dtype)) {
    lo = int_bound(ceil(lo));
    hi = int_bound(floor(hi));
  }
  return unary(U_clamp, t, lo, hi);
}

loom_tensor *loom_pow_scalar(const loom_tensor *t, double exponent) {
  if (exponent == 1)
    return unary(U_mul_scalar, t, 1, 0);
  if (exponent == 2)
    return unary(U_square, t, 0, 0);
  return unary(U_pow_scalar, t, exponent, 0);
}

/* An integer tensor with a non-integral scalar, or one no int64 holds
 * (converting it would be undefined), computes in float. */
static const loom_tensor *for_scalar(const loom_tensor *t, double s) {
  if (t && !loom_dtype_is_float(t->dtype) &&
      (s != floor(s) || fabs(s) >= 0x1p63))
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
