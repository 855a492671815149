/* Elementwise kernels of two tensors: arithmetic, comparisons and logic.
 * (The gradient kernels of the ops of one tensor are in kernel_unary.c,
 * beside their forward formulas.) */
#include "iter.h"
#include "map.h"

#define FLOAT2(NAME, EXPR)                                                     \
  LOOM__MAP2(NAME##_f32, float, float, EXPR)                                   \
  LOOM__MAP2(NAME##_f64, double, double, EXPR)
#define INT2(NAME, EXPR)                                                       \
  LOOM__MAP2(NAME##_i32, int32_t, int32_t, EXPR)                               \
  LOOM__MAP2(NAME##_i64, int64_t, int64_t, EXPR)                               \
  LOOM__MAP2(NAME##_u8, uint8_t, uint8_t, EXPR)
#define PRED2(NAME, EXPR)                                                      \
  LOOM__MAP2(NAME##_f32, float, uint8_t, EXPR)                                 \
  LOOM__MAP2(NAME##_f64, double, uint8_t, EXPR)                                \
  LOOM__MAP2(NAME##_i32, int32_t, uint8_t, EXPR)                               \
  LOOM__MAP2(NAME##_i64, int64_t, uint8_t, EXPR)                               \
  LOOM__MAP2(NAME##_u8, uint8_t, uint8_t, EXPR)

#define TABLE(NAME, BOOL_OUT, COST, ...)                                       \
  const loom__binary_kernel loom__##NAME##_kernel = {                          \
      #NAME, {__VA_ARGS__}, BOOL_OUT, COST};
#define FLOAT_LOOPS(NAME) [LOOM_F32] = NAME##_f32, [LOOM_F64] = NAME##_f64
#define INT_LOOPS(NAME)                                                        \
  [LOOM_I32] = NAME##_i32, [LOOM_I64] = NAME##_i64, [LOOM_U8] = NAME##_u8
#define FLOAT_TABLE(NAME, COST) TABLE(NAME, false, COST, FLOAT_LOOPS(NAME))
#define NUM_TABLE(NAME, COST)                                                  \
  TABLE(NAME, false, COST, FLOAT_LOOPS(NAME), INT_LOOPS(NAME))
#define PRED_TABLE(NAME)                                                       \
  TABLE(NAME, true, 1, FLOAT_LOOPS(NAME),                                      \
        INT_LOOPS(NAME), [LOOM_BOOL] = NAME##_u8)

/* Integer arithmetic wraps in two's complement, as in PyTorch: it is done in
 * uint64_t, where overflow is defined, and the conversion back to the
 * dtype keeps the low bits (GCC and clang define it so). Signed overflow
 * would be undefined behaviour. */
#define WRAP(a) ((uint64_t)(a))

/* The formulas are macro arguments, which clang-format would misread as
 * declarations (a *b). */
/* clang-format off */
FLOAT2(add, a + b)
FLOAT2(sub, a - b)
FLOAT2(mul, a * b)
INT2(add, WRAP(a) + WRAP(b))
INT2(sub, WRAP(a) - WRAP(b))
INT2(mul, WRAP(a) * WRAP(b))
FLOAT2(div, a / b)
FLOAT2(pow, pow(a, b))
/* NaN propagates, like torch.maximum. */
FLOAT2(maximum, (a != a || a > b) ? a : b)
FLOAT2(minimum, (a != a || a < b) ? a : b)
INT2(maximum, a > b ? a : b)
INT2(minimum, a < b ? a : b)
FLOAT2(add_scaled, a + (scalar_t)p[0] * b)
INT2(add_scaled, WRAP(a) + WRAP(loom__to_i64(p[0])) * WRAP(b))
PRED2(eq, a == b)
PRED2(ne, a != b)
PRED2(lt, a < b)
PRED2(le, a <= b)
PRED2(gt, a > b)
PRED2(ge, a >= b)
LOOM__MAP2(logical_and_u8, uint8_t, uint8_t, a && b)
LOOM__MAP2(logical_or_u8, uint8_t, uint8_t, a || b)

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
/* clang-format on */

typedef struct {
  loom__map2_fn fn;
  const double *p;
} map2_ctx;

static void run2(char **ptrs, const int64_t *step, int64_t n, void *c) {
  const map2_ctx *m = c;
  m->fn(ptrs[0], ptrs[1], ptrs[2], n, step[0], step[1], step[2], m->p);
}

int loom__kernel_binary(const loom__binary_kernel *k, loom_tensor *out,
                        const loom_tensor *a, const loom_tensor *b,
                        const double *p) {
  loom__map2_fn fn = k->loop[a->dtype];
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
  loom__iter it;
  loom__iter_init(&it, 3, (const loom_tensor *[]){out, a, b}, out->ndim,
                  out->shape);
  map2_ctx c = {fn, p};
  loom__iter_run(&it, run2, &c, k->cost);
  return 0;
}
