/* Elementwise kernels of one tensor (and one or two scalar parameters):
 * the forward and gradient loops of every op in unary_ops.def, and the
 * comparisons with a scalar. */
#include "iter.h"
#include "map.h"
#include "vmath.h"

/* ---- the ops of unary_ops.def: forward and gradient loops ---- */

/* Formula helpers (see unary_ops.def). F32 selects at compile time, so a
 * float32 loop holds only its own form. */
#define F32(a, b) _Generic((scalar_t)0, float : (a), default : (b))
/* W(v) is v, or v in uint64_t in integer loops: their arithmetic wraps in
 * two's complement, as in PyTorch (the conversion to the dtype keeps the
 * low bits), where int32_t or int64_t arithmetic could overflow, which is
 * undefined. WS(v) is a scalar parameter (a double) the same way: scalar_t,
 * or in integer loops its int64 value (saturated) in uint64_t, whose low
 * bits are the value wrapped into the dtype, as PyTorch converts it. */
/* clang-format off */
#define W(v) _Generic((scalar_t)0, float: (v), double: (v), default: (uint64_t)(v))
#define WS(v) _Generic((scalar_t)0, float: (float)(v), double: (v), \
                       default: (uint64_t)loom__to_i64(v))
/* BOUND(v): a bound for comparing with scalar_t, saturated in integer
 * loops (an infinite or out-of-range one converted as is is undefined). */
#define BOUND(v) _Generic((scalar_t)0, float: (float)(v), double: (v), \
                          int32_t: loom__to_i32(v), default: loom__to_i64(v))
/* clang-format on */
#define SIGMOID(v) (1 / (1 + exp(-(v))))
/* POW(v, e): v to the power e (a scalar_t), in PyTorch's forms for the
 * exponents it computes without pow, so that results match to the bit:
 * sqrt, 1 / sqrt, squares, cubes and reciprocals. */
#define POW(v, e)                                                              \
  ((e) == (scalar_t)0.5    ? sqrt(v)                                           \
   : (e) == (scalar_t)-0.5 ? 1 / sqrt(v)                                       \
   : (e) == 2              ? (v) * (v)                                         \
   : (e) == 3              ? (v) * (v) * (v)                                   \
   : (e) == -1             ? 1 / (v)                                           \
   : (e) == -2             ? 1 / ((v) * (v))                                   \
                           : pow(v, e))

/* Forward loops per dtype set. VEC's float32 loop is compiled per
 * instruction set with fused multiply-adds (the vmath.h functions
 * vectorise: libm's scalar tanhf is ~20x slower, erff ~5x), contiguous
 * elements and strided ones in one function, so that a result never
 * depends on the layout. */
#define FORWARD_FLOAT(NAME, EXPR)                                              \
  LOOM__MAP1(NAME##_f32, float, float, EXPR)                                   \
  LOOM__MAP1(NAME##_f64, double, double, EXPR)
#define FORWARD_NUM(NAME, EXPR)                                                \
  FORWARD_FLOAT(NAME, EXPR)                                                    \
  LOOM__MAP1(NAME##_i32, int32_t, int32_t, EXPR)                               \
  LOOM__MAP1(NAME##_i64, int64_t, int64_t, EXPR)
#define FORWARD_VEC(NAME, EXPR)                                                \
  LOOM__ISA_FUNCTION_FMA(NAME##_f32,                                           \
                         (char *o_, const char *x_, int64_t n, int64_t so,     \
                          int64_t sx, const double *p),                        \
                         (o_, x_, n, so, sx, p)) {                             \
    LOOM__MAP1_BODY(float, float, EXPR);                                       \
  }                                                                            \
  LOOM__MAP1(NAME##_f64, double, double, EXPR)

/* Gradient loops: the saved value (named x or y, as the row's `from`
 * says) and the incoming gradient g. Gradients are float only. */
#define GRADIENT_FLOAT(NAME, V, EXPR)                                          \
  LOOM__MAP2_AS(NAME##_grad_f32, float, float, V, g, EXPR)                     \
  LOOM__MAP2_AS(NAME##_grad_f64, double, double, V, g, EXPR)
#define GRADIENT_NUM GRADIENT_FLOAT
#define GRADIENT_VEC(NAME, V, EXPR)                                            \
  LOOM__ISA_FUNCTION_FMA(NAME##_grad_f32,                                      \
                         (char *o_, const char *a_, const char *b_, int64_t n, \
                          int64_t so, int64_t sa, int64_t sb,                  \
                          const double *p),                                    \
                         (o_, a_, b_, n, so, sa, sb, p)) {                     \
    LOOM__MAP2_BODY(float, float, V, g, EXPR);                                 \
  }                                                                            \
  LOOM__MAP2_AS(NAME##_grad_f64, double, double, V, g, EXPR)

/* Kernel tables: the loops of each dtype. */
#define LOOPS_FLOAT(NAME) [LOOM_F32] = NAME##_f32, [LOOM_F64] = NAME##_f64
#define LOOPS_VEC LOOPS_FLOAT
#define LOOPS_NUM(NAME)                                                        \
  LOOPS_FLOAT(NAME), [LOOM_I32] = NAME##_i32, [LOOM_I64] = NAME##_i64

/* A row whose gradient reads x or y has a gradient kernel; OPS rows have
 * none (autograd/unary.c computes theirs with ops). */
#define GRADIENT_X(NAME, DT, EXPR, COST)                                       \
  GRADIENT_KERNEL(NAME, DT, x, EXPR, COST)
#define GRADIENT_Y(NAME, DT, EXPR, COST)                                       \
  GRADIENT_KERNEL(NAME, DT, y, EXPR, COST)
#define GRADIENT_OPS(NAME, DT, EXPR, COST)
#define GRADIENT_KERNEL(NAME, DT, V, EXPR, COST)                               \
  GRADIENT_##DT(NAME, V, EXPR)                                                 \
      const loom__binary_kernel loom__##NAME##_grad_kernel = {                 \
          #NAME "_grad", {LOOPS_FLOAT(NAME##_grad)}, false, COST};

#define UNARY(NAME, DT, COST, FWD, FROM, GRAD, GRAD_COST)                      \
  FORWARD_##DT(NAME, FWD) const loom__unary_kernel loom__##NAME##_kernel = {   \
      #NAME, {LOOPS_##DT(NAME)}, COST};                                        \
  GRADIENT_##FROM(NAME, DT, GRAD, GRAD_COST)
#define UNARY_P UNARY
#include "unary_ops.def"
#undef UNARY
#undef UNARY_P

/* ---- kernels no gradient passes through ---- */

/* Predicates: any input dtype, bool output. */
#define PRED1(NAME, EXPR)                                                      \
  LOOM__MAP1(NAME##_f32, float, uint8_t, EXPR)                                 \
  LOOM__MAP1(NAME##_f64, double, uint8_t, EXPR)                                \
  LOOM__MAP1(NAME##_i32, int32_t, uint8_t, EXPR)                               \
  LOOM__MAP1(NAME##_i64, int64_t, uint8_t, EXPR)                               \
  LOOM__MAP1(NAME##_u8, uint8_t, uint8_t, EXPR)
#define PRED_TABLE(NAME)                                                       \
  const loom__unary_kernel loom__##NAME##_kernel = {#NAME,                     \
                                                    {[LOOM_F32] = NAME##_f32,  \
                                                     [LOOM_F64] = NAME##_f64,  \
                                                     [LOOM_I32] = NAME##_i32,  \
                                                     [LOOM_I64] = NAME##_i64,  \
                                                     [LOOM_BOOL] = NAME##_u8,  \
                                                     [LOOM_U8] = NAME##_u8},   \
                                                    1};

/* The formulas are macro arguments, which clang-format would misread as
 * declarations (a *b). */
/* clang-format off */
PRED1(eq_scalar, (double)x == p[0])
PRED1(ne_scalar, (double)x != p[0])
PRED1(lt_scalar, (double)x < p[0])
PRED1(le_scalar, (double)x <= p[0])
PRED1(gt_scalar, (double)x > p[0])
PRED1(ge_scalar, (double)x >= p[0])
LOOM__MAP1(logical_not_u8, uint8_t, uint8_t, !x)

PRED_TABLE(eq_scalar)
PRED_TABLE(ne_scalar)
PRED_TABLE(lt_scalar)
PRED_TABLE(le_scalar)
PRED_TABLE(gt_scalar)
PRED_TABLE(ge_scalar)
/* clang-format on */
const loom__unary_kernel loom__logical_not_kernel = {
    "logical_not",
    {[LOOM_BOOL] = logical_not_u8, [LOOM_U8] = logical_not_u8},
    1};

typedef struct {
  loom__map1_fn fn;
  const double *p;
} map1_ctx;

static void run1(char **ptrs, const int64_t *step, int64_t n, void *c) {
  const map1_ctx *m = c;
  m->fn(ptrs[0], ptrs[1], n, step[0], step[1], m->p);
}

int loom__kernel_unary(const loom__unary_kernel *k, loom_tensor *out,
                       const loom_tensor *x, const double *p) {
  loom__map1_fn fn = k->loop[x->dtype];
  if (!fn) {
    loom_set_error(LOOM_ERR_DTYPE, "%s: not defined for %s", k->name,
                   loom_dtype_name(x->dtype));
    return -1;
  }
  /* One contiguous run on one thread needs no iterator (as in
   * loom__kernel_binary). */
  int64_t n = out->numel, cost = k->cost > 0 ? k->cost : 1;
  if (x->numel == n && loom__threads_for(n * cost) <= 1 &&
      loom__is_contiguous(out) && loom__is_contiguous(x)) {
    fn(out->data, x->data, n, (int64_t)loom_dtype_size(out->dtype),
       (int64_t)loom_dtype_size(x->dtype), p);
    return 0;
  }
  loom__iter it;
  loom__iter_init(&it, 2, (const loom_tensor *[]){out, x}, out->ndim,
                  out->shape);
  map1_ctx c = {fn, p};
  loom__iter_run(&it, run1, &c, k->cost);
  return 0;
}
