/* One row per elementwise op of one tensor (tensor/unary_ops.def): its
 * values are checked against a float64 reference in float32 and float64
 * (test_tensor_ops.c), and its gradient by gradcheck in float64, on
 * contiguous and transposed inputs (test_gradcheck.c). A new op is one row
 * (and the reference, when libm has none); the registry test of
 * test_gradcheck.c fails while an op has none. */
#ifndef LOOM_UNARY_CASES_H
#define LOOM_UNARY_CASES_H

#include <loom/loom.h>
#include <math.h>

/* Input domains, for both tests. */
enum {
  POSITIVE = 1, /* values in (0, ...) (gradcheck: shifted to (0.5, ...)) */
  SPREAD = 4,   /* values well apart (for the kinks of relu, clamp, ...) */
  WIDE = 16,    /* gradcheck at 8x the usual magnitudes */
};

typedef struct {
  const char *name;
  loom_tensor *(*op)(const loom_tensor *);
  double (*ref)(double); /* float64 truth; float32 is compared rounded */
  int domain;
} unary_case;

/* Ops with scalar parameters, at fixed ones. */
static loom_tensor *leaky_relu_(const loom_tensor *t) {
  return loom_leaky_relu(t, 0.1);
}
static loom_tensor *gelu_(const loom_tensor *t) { return loom_gelu(t, false); }
static loom_tensor *gelu_tanh_(const loom_tensor *t) {
  return loom_gelu(t, true);
}
static loom_tensor *elu_(const loom_tensor *t) { return loom_elu(t, 1.3); }
static loom_tensor *softplus_(const loom_tensor *t) {
  return loom_softplus(t, 2, 3);
}
static loom_tensor *clamp_(const loom_tensor *t) {
  return loom_clamp(t, -0.5, 0.7);
}
static loom_tensor *pow_scalar_(const loom_tensor *t) {
  return loom_pow_scalar(t, 2.5);
}
static loom_tensor *add_scalar_(const loom_tensor *t) {
  return loom_add_scalar(t, 1.5);
}
static loom_tensor *rsub_scalar_(const loom_tensor *t) {
  return loom_rsub_scalar(t, 2);
}
static loom_tensor *mul_scalar_(const loom_tensor *t) {
  return loom_mul_scalar(t, -3);
}
static loom_tensor *div_scalar_(const loom_tensor *t) {
  return loom_div_scalar(t, 1.7);
}

static double r_neg(double x) { return -x; }
static double r_square(double x) { return x * x; }
static double r_sign(double x) { return (x > 0) - (x < 0); }
static double r_reciprocal(double x) { return 1 / x; }
static double r_rsqrt(double x) { return 1 / sqrt(x); }
static double r_sigmoid(double x) { return 1 / (1 + exp(-x)); }
static double r_log_sigmoid(double x) { return -log1p(exp(-x)); }
static double r_relu(double x) { return x > 0 ? x : 0; }
static double r_leaky_relu(double x) { return x > 0 ? x : 0.1 * x; }
static double r_gelu(double x) { return 0.5 * x * (1 + erf(x / sqrt(2))); }
static double r_gelu_tanh(double x) {
  const double pi = 3.14159265358979323846;
  return 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x * x * x)));
}
static double r_elu(double x) { return x > 0 ? x : 1.3 * expm1(x); }
static double r_silu(double x) { return x / (1 + exp(-x)); }
static double r_softplus(double x) {
  return 2 * x > 3 ? x : log1p(exp(2 * x)) / 2;
}
static double r_clamp(double x) { return x < -0.5 ? -0.5 : x > 0.7 ? 0.7 : x; }
static double r_pow_scalar(double x) { return pow(x, 2.5); }
static double r_add_scalar(double x) { return x + 1.5; }
static double r_rsub_scalar(double x) { return 2 - x; }
static double r_mul_scalar(double x) { return x * -3; }
static double r_div_scalar(double x) { return x / 1.7; }

static const unary_case unary_cases[] = {
    {"neg", loom_neg, r_neg, 0},
    {"square", loom_square, r_square, 0},
    {"abs", loom_abs, fabs, SPREAD},
    {"sign", loom_sign, r_sign, SPREAD},
    {"reciprocal", loom_reciprocal, r_reciprocal, POSITIVE},
    {"sqrt", loom_sqrt, sqrt, POSITIVE},
    {"rsqrt", loom_rsqrt, r_rsqrt, POSITIVE},
    {"add_scalar", add_scalar_, r_add_scalar, 0},
    {"rsub_scalar", rsub_scalar_, r_rsub_scalar, 0},
    {"mul_scalar", mul_scalar_, r_mul_scalar, 0},
    {"div_scalar", div_scalar_, r_div_scalar, 0},
    {"pow_scalar", pow_scalar_, r_pow_scalar, POSITIVE},
    {"clamp", clamp_, r_clamp, SPREAD},
    {"exp", loom_exp, exp, 0},
    {"expm1", loom_expm1, expm1, 0},
    {"log", loom_log, log, POSITIVE},
    {"log1p", loom_log1p, log1p, POSITIVE},
    {"sin", loom_sin, sin, 0},
    {"cos", loom_cos, cos, 0},
    {"tanh", loom_tanh, tanh, 0},
    {"sigmoid", loom_sigmoid, r_sigmoid, 0},
    {"log_sigmoid", loom_log_sigmoid, r_log_sigmoid, WIDE},
    {"relu", loom_relu, r_relu, SPREAD},
    {"silu", loom_silu, r_silu, 0},
    {"leaky_relu", leaky_relu_, r_leaky_relu, SPREAD},
    {"elu", elu_, r_elu, SPREAD},
    {"softplus", softplus_, r_softplus, SPREAD},
    {"gelu", gelu_, r_gelu, 0},
    {"gelu_tanh", gelu_tanh_, r_gelu_tanh, 0},
};
enum { N_UNARY_CASES = sizeof unary_cases / sizeof unary_cases[0] };

#endif
