/* Elementwise kernels of two operands: arithmetic, comparisons, and the
 * fused gradient formulas backward passes use (saved value, incoming grad
 * -> input grad), so a backward is one pass instead of several ops. */
#include "iter.h"
#include "map.h"
#include "vmath.h"

#define FLOAT2(NAME, EXPR)                                                     \
  LOOM_MAP2(NAME##_f32, float, float, EXPR)                                    \
  LOOM_MAP2(NAME##_f64, double, double, EXPR)
#define INT2(NAME, EXPR)                                                       \
  LOOM_MAP2(NAME##_i64, int64_t, int64_t, EXPR)                                \
  LOOM_MAP2(NAME##_u8, uint8_t, uint8_t, EXPR)
#define NUM2(NAME, EXPR) FLOAT2(NAME, EXPR) INT2(NAME, EXPR)
#define PRED2(NAME, EXPR)                                                      \
  LOOM_MAP2(NAME##_f32, float, uint8_t, EXPR)                                  \
  LOOM_MAP2(NAME##_f64, double, uint8_t, EXPR)                                 \
  LOOM_MAP2(NAME##_i64, int64_t, uint8_t, EXPR)                                \
  LOOM_MAP2(NAME##_u8, uint8_t, uint8_t, EXPR)

#define TABLE(NAME, BOOL_OUT, COST, ...)                                       \
  const loom_binary_kernel loom_k_##NAME = {                                   \
      #NAME, {__VA_ARGS__}, BOOL_OUT, COST};
#define FLOAT_TABLE(NAME, COST)                                                \
  TABLE(NAME, false, COST, [LOOM_F32] = NAME##_f32, [LOOM_F64] = NAME##_f64)
#define NUM_TABLE(NAME, COST)                                                  \
  TABLE(NAME, false, COST, [LOOM_F32] = NAME##_f32, [LOOM_F64] = NAME##_f64,   \
        [LOOM_I64] = NAME##_i64, [LOOM_U8] = NAME##_u8)
#define PRED_TABLE(NAME)                                                       \
  TABLE(                                                                       \
      NAME, true, 1, [LOOM_F32] = NAME##_f32, [LOOM_F64] = NAME##_f64,         \
      [LOOM_I64] = NAME##_i64, [LOOM_BOOL] = NAME##_u8, [LOOM_U8] = NAME##_u8)

#define SIGMOID(v) (1 / (1 + exp(-(v))))

/* GELU's gradient (a = x) in a loop the compiler vectorises, like the
 * vmath-based unary kernels; other layouts take the generic loop below,
 * with the same function, so results do not depend on the layout. */
static void gelu_grad_strided_f32(char *o, const char *a, const char *b,
                                  int64_t n, int64_t so, int64_t sa, int64_t sb,
                                  const double *p);
LOOM_CLONES static void gelu_grad_run(float *o, const float *x, const float *g,
                                      int64_t n) {
  _Pragma("GCC ivdep") for (int64_t i = 0; i < n; i++) o[i] =
      g[i] * loom__gelu_gradf(x[i]);
}
static void gelu_grad_f32(char *o, const char *a, const char *b, int64_t n,
                          int64_t so, int64_t sa, int64_t sb, const double *p) {
  if (so == 4 && sa == 4 && sb == 4)
    gelu_grad_run((float *)o, (const float *)a, (const float *)b, n);
  else
    gelu_grad_strided_f32(o, a, b, n, so, sa, sb, p);
}

/* The formulas are macro arguments, which clang-format would misread as
 * declarations (a *b). */
/* clang-format off */
NUM2(add, a + b)
NUM2(sub, a - b)
NUM2(mul, a * b)
FLOAT2(div, a / b)
FLOAT2(pow, pow(a, b))
/* NaN propagates, like torch.maximum. */
FLOAT2(maximum, (a != a || a > b) ? a : b)
FLOAT2(minimum, (a != a || a < b) ? a : b)
INT2(maximum, a > b ? a : b)
INT2(minimum, a < b ? a : b)
NUM2(add_scaled, a + (scalar_t)p[0] * b)
PRED2(eq, a == b)
PRED2(ne, a != b)
PRED2(lt, a < b)
PRED2(le, a <= b)
PRED2(gt, a > b)
PRED2(ge, a >= b)
LOOM_MAP2(logical_and_u8, uint8_t, uint8_t, a && b)
LOOM_MAP2(logical_or_u8, uint8_t, uint8_t, a || b)

/* Gradient formulas: a is the saved value (input x or output y, as named),
 * b the incoming gradient g. */
FLOAT2(tanh_grad, b * (1 - a * a))               /* a = y */
FLOAT2(sigmoid_grad, b * a * (1 - a))            /* a = y */
FLOAT2(relu_grad, a > 0 ? b : 0)                 /* a = x */
FLOAT2(leaky_relu_grad, a > 0 ? b : b * (scalar_t)p[0])
LOOM_MAP2(gelu_grad_strided_f32, float, float, b * loom__gelu_gradf(a))
LOOM_MAP2(gelu_grad_f64, double, double,
          b * (0.5 * (1 + erf(a * 0.70710678118654752440)) +
               a * 0.39894228040143267794 * exp(-0.5 * a * a)))
FLOAT2(gelu_tanh_grad,
       b * ((scalar_t)0.5 *
                (1 + tanh((scalar_t)0.79788456080286535588 *
                          (a + (scalar_t)0.044715 * a * a * a))) +
            (scalar_t)0.5 * a *
                (1 - tanh((scalar_t)0.79788456080286535588 *
                          (a + (scalar_t)0.044715 * a * a * a)) *
                         tanh((scalar_t)0.79788456080286535588 *
                              (a + (scalar_t)0.044715 * a * a * a))) *
                (scalar_t)0.79788456080286535588 *
                (1 + 3 * (scalar_t)0.044715 * a * a)))
FLOAT2(elu_grad, a > 0 ? b : b * (scalar_t)p[0] * exp(a))
FLOAT2(silu_grad, b * SIGMOID(a) * (1 + a * (1 - SIGMOID(a))))
FLOAT2(softplus_grad, a * (scalar_t)p[0] > (scalar_t)p[1]
                          ? b
                          : b * SIGMOID(a * (scalar_t)p[0]))
FLOAT2(log_sigmoid_grad, b / (1 + exp(a)))
FLOAT2(clamp_grad, a >= (scalar_t)p[0] && a <= (scalar_t)p[1] ? b : 0)
FLOAT2(sqrt_grad, b / (2 * a))                   /* a = y */
FLOAT2(rsqrt_grad, (scalar_t)-0.5 * b * a * a * a) /* a = y */
FLOAT2(reciprocal_grad, -b * a * a)              /* a = y */
FLOAT2(log_grad, b / a)
FLOAT2(log1p_grad, b / (1 + a))
FLOAT2(abs_grad, a > 0 ? b : a < 0 ? -b : 0)
FLOAT2(sin_grad, b * cos(a))
FLOAT2(cos_grad, -b * sin(a))
FLOAT2(exp_grad, b * a)                          /* a = y */
FLOAT2(expm1_grad, b * (a + 1))                  /* a = y */
FLOAT2(pow_scalar_grad, (scalar_t)p[0] == 0
                            ? 0
                            : b * (scalar_t)p[0] *
                                  pow(a, (scalar_t)p[0] - 1))
FLOAT2(square_grad, 2 * a * b)

NUM_TABLE(add, 1)
NUM_TABLE(sub, 1)
NUM_TABLE(mul, 1)
FLOAT_TABLE(div, 1)
FLOAT_TABLE(pow, 8)
NUM_TABLE(maximum, 1)
NUM_TABLE(minimum, 1)
NUM_TABLE(add_scaled, 1)
PRED_TABLE(eq)
PRED_TABLE(ne)
PRED_TABLE(lt)
PRED_TABLE(le)
PRED_TABLE(gt)
PRED_TABLE(ge)
TABLE(logical_and, true, 1, [LOOM_BOOL] = logical_and_u8, [LOOM_U8] = logical_and_u8)
TABLE(logical_or, true, 1, [LOOM_BOOL] = logical_or_u8, [LOOM_U8] = logical_or_u8)
FLOAT_TABLE(tanh_grad, 1)
FLOAT_TABLE(sigmoid_grad, 1)
FLOAT_TABLE(relu_grad, 1)
FLOAT_TABLE(leaky_relu_grad, 1)
FLOAT_TABLE(gelu_grad, 12)
FLOAT_TABLE(gelu_tanh_grad, 12)
FLOAT_TABLE(elu_grad, 8)
FLOAT_TABLE(silu_grad, 8)
FLOAT_TABLE(softplus_grad, 8)
FLOAT_TABLE(log_sigmoid_grad, 8)
FLOAT_TABLE(clamp_grad, 1)
FLOAT_TABLE(sqrt_grad, 1)
FLOAT_TABLE(rsqrt_grad, 1)
FLOAT_TABLE(reciprocal_grad, 1)
FLOAT_TABLE(log_grad, 1)
FLOAT_TABLE(log1p_grad, 1)
FLOAT_TABLE(abs_grad, 1)
FLOAT_TABLE(sin_grad, 8)
FLOAT_TABLE(cos_grad, 8)
FLOAT_TABLE(exp_grad, 1)
FLOAT_TABLE(expm1_grad, 1)
FLOAT_TABLE(pow_scalar_grad, 8)
FLOAT_TABLE(square_grad, 1)
/* clang-format on */

typedef struct {
  loom_map2_fn fn;
  const double *p;
} map2_ctx;

static void run2(char **ptrs, const int64_t *step, int64_t n, void *c) {
  const map2_ctx *m = c;
  m->fn(ptrs[0], ptrs[1], ptrs[2], n, step[0], step[1], step[2], m->p);
}

int loom_kernel_binary(const loom_binary_kernel *k, loom_tensor *out,
                       const loom_tensor *a, const loom_tensor *b,
                       const double *p) {
  loom_map2_fn fn = k->loop[a->dtype];
  if (!fn) {
    loom_set_error(LOOM_ERR_DTYPE, "%s: not defined for %s", k->name,
                   loom_dtype_name(a->dtype));
    return -1;
  }
  /* Contiguous operands that are not broadcast (equal counts) on one
   * thread are one run: building an iterator would cost more than the
   * arithmetic on the small tensors of a recurrent step. */
  int64_t n = out->numel, cost = k->cost > 0 ? k->cost : 1;
  if (a->numel == n && b->numel == n && loom__threads_for(n * cost) <= 1 &&
      loom__is_contiguous(out) && loom__is_contiguous(a) &&
      loom__is_contiguous(b)) {
    int64_t es = (int64_t)loom_dtype_size(a->dtype);
    int64_t eo = (int64_t)loom_dtype_size(out->dtype);
    fn(out->data, a->data, b->data, n, eo, es, es, p);
    return 0;
  }
  loom_iter it;
  loom__iter_init(&it, 3, (const loom_tensor *[]){out, a, b}, out->ndim,
                  out->shape);
  map2_ctx c = {fn, p};
  loom__iter_run(&it, run2, &c, k->cost);
  return 0;
}
