/* Elementwise kernels of one operand (and one or two scalar parameters). */
#include "iter.h"
#include "map.h"
#include "vmath.h"

/* Float loops: EXPR for float and double. */
#define FLOAT1(NAME, EXPR)                                                     \
  LOOM_MAP1(NAME##_f32, float, float, EXPR)                                    \
  LOOM_MAP1(NAME##_f64, double, double, EXPR)
/* Loops for every numeric dtype (integers keep their type). */
#define NUM1(NAME, EXPR)                                                       \
  FLOAT1(NAME, EXPR)                                                           \
  LOOM_MAP1(NAME##_i64, int64_t, int64_t, EXPR)
/* Predicates: any input dtype, bool output. */
#define PRED1(NAME, EXPR)                                                      \
  LOOM_MAP1(NAME##_f32, float, uint8_t, EXPR)                                  \
  LOOM_MAP1(NAME##_f64, double, uint8_t, EXPR)                                 \
  LOOM_MAP1(NAME##_i64, int64_t, uint8_t, EXPR)                                \
  LOOM_MAP1(NAME##_u8, uint8_t, uint8_t, EXPR)

/* float32 exp, tanh, sigmoid, silu and gelu use the vectorisable functions
 * of vmath.h (1-3 ulp; libm's scalar tanhf is ~20x slower, erff ~5x). The
 * strided path calls the same functions, so a result never depends on the
 * layout. */
static inline float silu_f(float x) { return x * loom__sigmoidf(x); }
#define VEC_F32(NAME, FN)                                                      \
  LOOM_CLONES static void NAME##_run(float *o, const float *x, int64_t n) {    \
    _Pragma("GCC ivdep") for (int64_t i = 0; i < n; i++) o[i] = FN(x[i]);      \
  }                                                                            \
  static void NAME##_f32(char *o, const char *x, int64_t n, int64_t so,        \
                         int64_t sx, const double *p) {                        \
    (void)p;                                                                   \
    if (so == 4 && sx == 4) {                                                  \
      NAME##_run((float *)o, (const float *)x, n);                             \
      return;                                                                  \
    }                                                                          \
    for (int64_t i = 0; i < n; i++)                                            \
      *(float *)(o + i * so) = FN(*(const float *)(x + i * sx));               \
  }
VEC_F32(exp, loom__expf)
VEC_F32(tanh, loom__tanhf)
VEC_F32(sigmoid, loom__sigmoidf)
VEC_F32(silu, silu_f)
VEC_F32(gelu, loom__geluf)

#define FLOAT_TABLE(NAME, COST)                                                \
  const loom_unary_kernel loom_k_##NAME = {                                    \
      #NAME, {[LOOM_F32] = NAME##_f32, [LOOM_F64] = NAME##_f64}, COST};
#define INT_TABLE(NAME, COST)                                                  \
  const loom_unary_kernel loom_k_##NAME = {#NAME,                              \
                                           {[LOOM_F32] = NAME##_f32,           \
                                            [LOOM_F64] = NAME##_f64,           \
                                            [LOOM_I64] = NAME##_i64},          \
                                           COST};
#define ALL_TABLE(NAME, COST)                                                  \
  const loom_unary_kernel loom_k_##NAME = {#NAME,                              \
                                           {[LOOM_F32] = NAME##_f32,           \
                                            [LOOM_F64] = NAME##_f64,           \
                                            [LOOM_I64] = NAME##_i64,           \
                                            [LOOM_BOOL] = NAME##_u8,           \
                                            [LOOM_U8] = NAME##_u8},            \
                                           COST};

#define SIGMOID(v) (1 / (1 + exp(-(v))))

LOOM_MAP1(exp_f64, double, double, exp(x))
/* The formulas are macro arguments, which clang-format would misread as
 * declarations (a *b). */
/* clang-format off */
FLOAT1(expm1, expm1(x))
FLOAT1(log, log(x))
FLOAT1(log1p, log1p(x))
FLOAT1(sqrt, sqrt(x))
FLOAT1(rsqrt, 1 / sqrt(x))
FLOAT1(reciprocal, 1 / x)
FLOAT1(sin, sin(x))
FLOAT1(cos, cos(x))
LOOM_MAP1(tanh_f64, double, double, tanh(x))
LOOM_MAP1(sigmoid_f64, double, double, SIGMOID(x))
/* log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|)): no overflow either way. */
FLOAT1(log_sigmoid, (x < 0 ? x : 0) - log1p(exp(-fabs(x))))
FLOAT1(leaky_relu, x < 0 ? x * (scalar_t)p[0] : x)
LOOM_MAP1(gelu_f64, double, double,
          0.5 * x * (1 + erf(x * 0.70710678118654752440)))
FLOAT1(gelu_tanh,
       (scalar_t)0.5 * x *
           (1 + tanh((scalar_t)0.79788456080286535588 *
                     (x + (scalar_t)0.044715 * x * x * x))))
FLOAT1(elu, x > 0 ? x : (scalar_t)p[0] * expm1(x))
LOOM_MAP1(silu_f64, double, double, x / (1 + exp(-x)))
FLOAT1(softplus, x * (scalar_t)p[0] > (scalar_t)p[1]
                     ? x
                     : log1p(exp(x * (scalar_t)p[0])) /
                           (scalar_t)p[0])
FLOAT1(pow_scalar, pow(x, (scalar_t)p[0]))

NUM1(neg, -x)
NUM1(square, x * x)
NUM1(abs, x < 0 ? -x : x)
NUM1(sign, (x > 0) - (x < 0))
NUM1(relu, x < 0 ? 0 : x)
/* The scalar is first rounded to the tensor's dtype, as PyTorch does; the
 * op layer saturates integer bounds so these conversions are defined. */
NUM1(add_scalar, x + (scalar_t)p[0])
NUM1(mul_scalar, x * (scalar_t)p[0])
FLOAT1(div_scalar, x / (scalar_t)p[0])
NUM1(rsub_scalar, (scalar_t)p[0] - x)
NUM1(clamp, x < (scalar_t)p[0] ? (scalar_t)p[0]
            : x > (scalar_t)p[1] ? (scalar_t)p[1] : x)

PRED1(eq_scalar, (double)x == p[0])
PRED1(ne_scalar, (double)x != p[0])
PRED1(lt_scalar, (double)x < p[0])
PRED1(le_scalar, (double)x <= p[0])
PRED1(gt_scalar, (double)x > p[0])
PRED1(ge_scalar, (double)x >= p[0])
LOOM_MAP1(logical_not_u8, uint8_t, uint8_t, !x)
LOOM_MAP1(isfinite_f32, float, uint8_t, isfinite(x))
LOOM_MAP1(isfinite_f64, double, uint8_t, isfinite(x))

FLOAT_TABLE(exp, 8)
FLOAT_TABLE(expm1, 8)
FLOAT_TABLE(log, 8)
FLOAT_TABLE(log1p, 8)
FLOAT_TABLE(sqrt, 2)
FLOAT_TABLE(rsqrt, 2)
FLOAT_TABLE(reciprocal, 1)
FLOAT_TABLE(sin, 8)
FLOAT_TABLE(cos, 8)
FLOAT_TABLE(tanh, 8)
FLOAT_TABLE(sigmoid, 8)
FLOAT_TABLE(log_sigmoid, 12)
FLOAT_TABLE(leaky_relu, 1)
FLOAT_TABLE(gelu, 8)
FLOAT_TABLE(gelu_tanh, 8)
FLOAT_TABLE(elu, 8)
FLOAT_TABLE(silu, 8)
FLOAT_TABLE(softplus, 12)
FLOAT_TABLE(pow_scalar, 8)
INT_TABLE(neg, 1)
INT_TABLE(square, 1)
INT_TABLE(abs, 1)
INT_TABLE(sign, 1)
INT_TABLE(relu, 1)
INT_TABLE(add_scalar, 1)
INT_TABLE(mul_scalar, 1)
INT_TABLE(rsub_scalar, 1)
FLOAT_TABLE(div_scalar, 1)
INT_TABLE(clamp, 1)
ALL_TABLE(eq_scalar, 1)
ALL_TABLE(ne_scalar, 1)
ALL_TABLE(lt_scalar, 1)
ALL_TABLE(le_scalar, 1)
ALL_TABLE(gt_scalar, 1)
ALL_TABLE(ge_scalar, 1)
/* clang-format on */
const loom_unary_kernel loom_k_logical_not = {
    "logical_not",
    {[LOOM_BOOL] = logical_not_u8, [LOOM_U8] = logical_not_u8},
    1};
const loom_unary_kernel loom_k_isfinite = {
    "isfinite", {[LOOM_F32] = isfinite_f32, [LOOM_F64] = isfinite_f64}, 1};

typedef struct {
  loom_map1_fn fn;
  const double *p;
} map1_ctx;

static void run1(char **ptrs, const int64_t *step, int64_t n, void *c) {
  const map1_ctx *m = c;
  m->fn(ptrs[0], ptrs[1], n, step[0], step[1], m->p);
}

int loom_kernel_unary(const loom_unary_kernel *k, loom_tensor *out,
                      const loom_tensor *x, const double *p) {
  loom_map1_fn fn = k->loop[x->dtype];
  if (!fn) {
    loom_set_error(LOOM_ERR_DTYPE, "%s: not defined for %s", k->name,
                   loom_dtype_name(x->dtype));
    return -1;
  }
  /* One contiguous run on one thread needs no iterator (as in
   * loom_kernel_binary). */
  int64_t n = out->numel, cost = k->cost > 0 ? k->cost : 1;
  if (x->numel == n && loom__threads_for(n * cost) <= 1 &&
      loom__is_contiguous(out) && loom__is_contiguous(x)) {
    fn(out->data, x->data, n, (int64_t)loom_dtype_size(out->dtype),
       (int64_t)loom_dtype_size(x->dtype), p);
    return 0;
  }
  loom_iter it;
  loom__iter_init(&it, 2, (const loom_tensor *[]){out, x}, out->ndim,
                  out->shape);
  map1_ctx c = {fn, p};
  loom__iter_run(&it, run1, &c, k->cost);
  return 0;
}
