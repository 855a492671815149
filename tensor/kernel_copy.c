/* Copies with dtype conversion, fills, and selection (where/masked_fill). */
#include "iter.h"
#include "kernels.h"

#include <math.h>

/* Conversions: float -> integer saturates (NaN -> 0; loom__to_i64 and
 * kin) instead of being undefined, int64 -> int32 wraps as in PyTorch,
 * integers saturate to uint8's range, and the rest convert as C does. bool
 * is read as uint8 and written by to_bool (!= 0). */
typedef float f32;
typedef double f64;
typedef int32_t i32;
typedef int64_t i64;
typedef uint8_t u8;
#define IS_FLOAT(x) _Generic((x), float : 1, double : 1, default : 0)
#define TO_f32(x) ((float)(x))
#define TO_f64(x) ((double)(x))
#define TO_i64(x) (IS_FLOAT(x) ? loom__to_i64((double)(x)) : (i64)(x))
#define TO_i32(x)                                                              \
  (IS_FLOAT(x) ? loom__to_i32((double)(x)) : (i32)(uint32_t)(i64)(x))
#define TO_u8(x)                                                               \
  (IS_FLOAT(x)  ? loom__to_u8((double)(x))                                     \
   : (x) <= 0   ? 0                                                            \
   : (x) >= 255 ? 255                                                          \
                : (u8)(x))

#define CONVERT(TO, TI)                                                        \
  static void cv_##TO##_##TI(char **p, const int64_t *s, int64_t n, void *c) { \
    (void)c;                                                                   \
    for (int64_t i = 0; i < n; i++) {                                          \
      TI x = *(const TI *)(p[1] + i * s[1]);                                   \
      *(TO *)(p[0] + i * s[0]) = (TO)TO_##TO(x);                               \
    }                                                                          \
  }
/* One row per dtype: its conversions from every dtype. */
#define FROM_EACH(TO)                                                          \
  CONVERT(TO, f32)                                                             \
  CONVERT(TO, f64) CONVERT(TO, i32) CONVERT(TO, i64) CONVERT(TO, u8)
#define ROW(TO)                                                                \
  {                                                                            \
    [LOOM_F32] = cv_##TO##_f32, [LOOM_F64] = cv_##TO##_f64,                    \
    [LOOM_I32] = cv_##TO##_i32, [LOOM_I64] = cv_##TO##_i64,                    \
    [LOOM_U8] = cv_##TO##_u8, [LOOM_BOOL] = cv_##TO##_u8                       \
  }
FROM_EACH(f32)
FROM_EACH(f64)
FROM_EACH(i32)
FROM_EACH(i64)
FROM_EACH(u8)

static const loom__iter_fn converters[LOOM_DTYPE_COUNT][LOOM_DTYPE_COUNT] = {
    [LOOM_F32] = ROW(f32), [LOOM_F64] = ROW(f64), [LOOM_I32] = ROW(i32),
    [LOOM_I64] = ROW(i64), [LOOM_U8] = ROW(u8),
};
#undef ROW
#undef FROM_EACH
#undef CONVERT

typedef struct {
  size_t es;
  loom_dtype from;
} copy_ctx;

static void to_bool(char **p, const int64_t *s, int64_t n, void *c) {
  loom_dtype from = ((const copy_ctx *)c)->from;
  for (int64_t i = 0; i < n; i++)
    *(uint8_t *)(p[0] + i * s[0]) = loom__read(p[1] + i * s[1], from) != 0;
}

static void same(char **p, const int64_t *s, int64_t n, void *c) {
  size_t es = ((const copy_ctx *)c)->es;
  if (s[0] == (int64_t)es && s[1] == (int64_t)es) {
    memcpy(p[0], p[1], (size_t)n * es);
    return;
  }
  switch (es) {
  case 4:
    for (int64_t i = 0; i < n; i++)
      *(uint32_t *)(p[0] + i * s[0]) = *(const uint32_t *)(p[1] + i * s[1]);
    break;
  case 8:
    for (int64_t i = 0; i < n; i++)
      *(uint64_t *)(p[0] + i * s[0]) = *(const uint64_t *)(p[1] + i * s[1]);
    break;
  default:
    for (int64_t i = 0; i < n; i++)
      *(uint8_t *)(p[0] + i * s[0]) = *(const uint8_t *)(p[1] + i * s[1]);
  }
}

static loom__iter_fn converter(loom_dtype to, loom_dtype from) {
  if (to == from || (to == LOOM_U8 && from == LOOM_BOOL))
    return same;
  if (to == LOOM_BOOL)
    return to_bool;
  return converters[to][from];
}

void loom__kernel_copy(loom_tensor *out, const loom_tensor *x) {
  loom__iter it;
  loom__iter_init(&it, 2, (const loom_tensor *[]){out, x}, out->ndim,
                  out->shape);
  copy_ctx c = {loom_dtype_size(x->dtype), x->dtype};
  loom__iter_run(&it, converter(out->dtype, x->dtype), &c, 1);
}

static void fill(char **p, const int64_t *s, int64_t n, void *c) {
  const copy_ctx *f = c;
  const char *value = (const char *)(f + 1);
  for (int64_t i = 0; i < n; i++)
    memcpy(p[0] + i * s[0], value, f->es);
}

void loom__kernel_fill(loom_tensor *out, double value) {
  struct {
    copy_ctx c;
    char value[8];
  } f = {{loom_dtype_size(out->dtype), out->dtype}, {0}};
  loom__write(f.value, out->dtype, value);
  loom__iter it;
  loom__iter_init(&it, 1, (const loom_tensor *[]){out}, out->ndim, out->shape);
  if (it.ndim == 1 && it.strides[0][0] == (int64_t)f.c.es && value == 0 &&
      !signbit(value)) {
    memset(out->data, 0, (size_t)out->numel * f.c.es);
    return;
  }
  loom__iter_run(&it, fill, &f, 1);
}

static void where_fn(char **p, const int64_t *s, int64_t n, void *c) {
  size_t es = ((const copy_ctx *)c)->es;
  for (int64_t i = 0; i < n; i++) {
    const char *src =
        *(const uint8_t *)(p[1] + i * s[1]) ? p[2] + i * s[2] : p[3] + i * s[3];
    memcpy(p[0] + i * s[0], src, es);
  }
}

void loom__kernel_where(loom_tensor *out, const loom_tensor *cond,
                        const loom_tensor *a, const loom_tensor *b) {
  loom__iter it;
  loom__iter_init(&it, 4, (const loom_tensor *[]){out, cond, a, b}, out->ndim,
                  out->shape);
  copy_ctx c = {loom_dtype_size(out->dtype), out->dtype};
  loom__iter_run(&it, where_fn, &c, 2);
}

static void masked_fn(char **p, const int64_t *s, int64_t n, void *c) {
  const copy_ctx *f = c;
  const char *value = (const char *)(f + 1);
  for (int64_t i = 0; i < n; i++) {
    const char *src =
        *(const uint8_t *)(p[2] + i * s[2]) ? value : p[1] + i * s[1];
    memmove(p[0] + i * s[0], src, f->es);
  }
}

void loom__kernel_masked_fill(loom_tensor *out, const loom_tensor *x,
                              const loom_tensor *mask, double value) {
  struct {
    copy_ctx c;
    char value[8];
  } f = {{loom_dtype_size(out->dtype), out->dtype}, {0}};
  loom__write(f.value, out->dtype, value);
  loom__iter it;
  loom__iter_init(&it, 3, (const loom_tensor *[]){out, x, mask}, out->ndim,
                  out->shape);
  loom__iter_run(&it, masked_fn, &f, 2);
}

static void nonfinite_fn(char **p, const int64_t *s, int64_t n, void *c) {
  bool *found = c, bad = false;
  for (int64_t i = 0; i < n; i++)
    bad |= !isfinite(*(const float *)(p[0] + i * s[0]));
  *found |= bad;
}

static void nonfinite_fn64(char **p, const int64_t *s, int64_t n, void *c) {
  bool *found = c, bad = false;
  for (int64_t i = 0; i < n; i++)
    bad |= !isfinite(*(const double *)(p[0] + i * s[0]));
  *found |= bad;
}

bool loom__kernel_has_nonfinite(const loom_tensor *x) {
  if (!loom_dtype_is_float(x->dtype))
    return false;
  loom__iter it;
  loom__iter_init(&it, 1, (const loom_tensor *[]){x}, x->ndim, x->shape);
  bool found = false;
  if (x->dtype == LOOM_F32)
    loom__iter_run_serial(&it, nonfinite_fn, &found);
  else
    loom__iter_run_serial(&it, nonfinite_fn64, &found);
  return found;
}
