/* Value and shape assertions shared by the tensor suites. Tensors are read
 * through loom_copy_to_array, so any dtype and any strides work. */
#ifndef LOOM_CHECK_VALUES_H
#define LOOM_CHECK_VALUES_H

#include "check_util.h"

#include <string.h>

#define NARGS_F64(...)                                                         \
  ((int64_t)(sizeof((double[]){__VA_ARGS__}) / sizeof(double)))
#define NARGS_I64(...)                                                         \
  ((int64_t)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))

/* 1-D tensors from literal lists. */
#define VEC(dtype, ...)                                                        \
  vec_of_((dtype), (const double[]){__VA_ARGS__}, NARGS_F64(__VA_ARGS__))
#define IVEC(...)                                                              \
  loom_from_array(LOOM_I64, (const int64_t[]){__VA_ARGS__}, 1,                 \
                  (const int64_t[]){NARGS_I64(__VA_ARGS__)})

/* t's elements in row-major order equal the list: exactly when tol is 0
 * (NaN matches NaN), else within tol * (1 + |expected|). */
#define CHECK_VALUES(t, tol, ...)                                              \
  check_values_((t), (tol), (const double[]){__VA_ARGS__},                     \
                NARGS_F64(__VA_ARGS__), __LINE__)
#define CHECK_SHAPE(t, ...)                                                    \
  check_shape_((t), (const int64_t[]){__VA_ARGS__},                            \
               (int)NARGS_I64(__VA_ARGS__), __LINE__)
/* A 0-dim tensor. */
#define CHECK_SCALAR_SHAPE(t) check_shape_((t), NULL, 0, __LINE__)
/* The pending error has this status and its message contains `text`. */
#define CHECK_ERROR(status, text) check_error_((status), (text), __LINE__)

static inline loom_tensor *vec_of_(loom_dtype dtype, const double *v,
                                   int64_t n) {
  loom_tensor *t = loom_from_array(LOOM_F64, v, 1, &n);
  return loom_to_dtype(t, dtype);
}

/* Big enough for every tensor these suites compare element by element. */
#define CHECK_VALUES_MAX 4096
static double check_values_buf_[CHECK_VALUES_MAX];

static inline double *values_of_(const loom_tensor *t, int line) {
  ck_assert_msg(t != NULL, "line %d: loom error: %s", line, loom_last_error());
  int64_t n = loom_numel(t);
  ck_assert_msg(n <= CHECK_VALUES_MAX, "line %d: too many elements", line);
  ck_assert_int_eq(loom_copy_to_array(t, LOOM_F64, check_values_buf_, n), 0);
  return check_values_buf_;
}

static inline void check_values_(const loom_tensor *t, double tol,
                                 const double *want, int64_t n, int line) {
  const double *got = values_of_(t, line);
  ck_assert_msg(loom_numel(t) == n, "line %d: %lld elements, expected %lld",
                line, (long long)loom_numel(t), (long long)n);
  for (int64_t i = 0; i < n; i++) {
    bool ok = got[i] == want[i] || (isnan(got[i]) && isnan(want[i])) ||
              fabs(got[i] - want[i]) <= tol * (1 + fabs(want[i]));
    ck_assert_msg(ok, "line %d: element %lld is %.17g, expected %.17g", line,
                  (long long)i, got[i], want[i]);
  }
}

static inline void check_shape_(const loom_tensor *t, const int64_t *want,
                                int n, int line) {
  ck_assert_msg(t != NULL, "line %d: loom error: %s", line, loom_last_error());
  char buf[128];
  ck_assert_msg(loom_ndim(t) == n, "line %d: shape %s has %d dims, not %d",
                line, loom_shape_str(t, buf, sizeof buf), loom_ndim(t), n);
  for (int i = 0; i < n; i++)
    ck_assert_msg(loom_shape(t)[i] == want[i],
                  "line %d: shape %s, dim %d "
                  "should be %lld",
                  line, loom_shape_str(t, buf, sizeof buf), i,
                  (long long)want[i]);
}

static inline void check_error_(loom_status status, const char *text,
                                int line) {
  ck_assert_msg(loom_last_status() == status,
                "line %d: status %d, expected %d (%s)", line,
                (int)loom_last_status(), (int)status, loom_last_error());
  ck_assert_msg(strstr(loom_last_error(), text) != NULL,
                "line %d: message \"%s\" lacks \"%s\"", line, loom_last_error(),
                text);
  loom_clear_error();
}

#endif
