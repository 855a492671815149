/* The tensor core: creation, random numbers, dtypes and promotion, views,
 * copies, joining and splitting, memory, errors, printing, comparing.
 * Expected values are computed by hand or in closed form (the printed
 * texts are PyTorch's own output for the same tensors). */
#include "check_values.h"

#include "../tensor/internal.h"

#include <float.h>
#include <string.h>

/* ------------------------------------------------------------ creation */

START_TEST(test_constant_fills) {
  loom_tensor *z = loom_zeros(LOOM_DTYPE_DEFAULT, LOOM_SHAPE(2, 3));
  CHECK_SHAPE(z, 2, 3);
  ck_assert_int_eq(loom_dtype_of(z), LOOM_F32);
  CHECK_VALUES(z, 0, 0, 0, 0, 0, 0, 0);
  CHECK_VALUES(loom_ones(LOOM_I64, LOOM_SHAPE(3)), 0, 1, 1, 1);
  loom_tensor *f = loom_full(LOOM_F64, -2.5, LOOM_SHAPE(2, 1));
  CHECK_VALUES(f, 0, -2.5, -2.5);
  CHECK_VALUES(loom_full(LOOM_BOOL, 3, LOOM_SHAPE(2)), 0, 1, 1);
  loom_tensor *s = loom_scalar(LOOM_I64, 7);
  CHECK_SCALAR_SHAPE(s);
  ck_assert_int_eq(loom_numel(s), 1);
  ck_assert_double_eq(loom_item(s), 7);
  ck_assert_int_eq(loom_numel(loom_empty(LOOM_F32, LOOM_SHAPE(4, 0))), 0);

  loom_tensor *like = loom_full_like(f, 9);
  ck_assert_int_eq(loom_dtype_of(like), LOOM_F64);
  CHECK_SHAPE(like, 2, 1);
  CHECK_VALUES(like, 0, 9, 9);
  CHECK_VALUES(loom_zeros_like(s), 0, 0);
  CHECK_VALUES(loom_ones_like(f), 0, 1, 1);
  CHECK_SHAPE(loom_empty_like(f), 2, 1);

  loom_dtype old = loom_set_default_dtype(LOOM_F64);
  ck_assert_int_eq(old, LOOM_F32);
  ck_assert_int_eq(loom_dtype_of(loom_ones(LOOM_DTYPE_DEFAULT, 0, NULL)),
                   LOOM_F64);
  loom_set_default_dtype(old);
  loom_set_default_dtype(LOOM_I64); /* only float dtypes can be default */
  CHECK_ERROR(LOOM_ERR_DTYPE, "set_default_dtype");
  ck_assert_int_eq(loom_default_dtype(), LOOM_F32);

  ck_assert_ptr_null(loom_zeros(LOOM_F32, LOOM_SHAPE(2, -1)));
  CHECK_ERROR(LOOM_ERR_SHAPE, "negative size");
  ck_assert_ptr_null(
      loom_zeros(LOOM_F32, LOOM_MAX_DIMS + 1, (int64_t[LOOM_MAX_DIMS + 1]){1}));
  CHECK_ERROR(LOOM_ERR_SHAPE, "dims");
  /* sizes whose strides would overflow, with or without a zero among them
   * (a zero makes no bytes but not small strides) */
  const int64_t big = (int64_t)1 << 32;
  ck_assert_ptr_null(loom_zeros(LOOM_F32, LOOM_SHAPE(0, big, big)));
  CHECK_ERROR(LOOM_ERR_SHAPE, "shape [0, 4294967296, 4294967296] too large");
  ck_assert_ptr_null(loom_zeros(LOOM_F32, LOOM_SHAPE(big, big)));
  CHECK_ERROR(LOOM_ERR_SHAPE, "too large");
  loom_tensor *none = loom_zeros(LOOM_F32, LOOM_SHAPE(0, 3));
  ck_assert_ptr_null(loom_reshape(none, LOOM_SHAPE(big, big, 0)));
  CHECK_ERROR(LOOM_ERR_SHAPE, "cannot view");
  CHECK_SHAPE(loom_reshape(none, LOOM_SHAPE(big, 0)), big, 0);
}
END_TEST

START_TEST(test_arange) {
  loom_tensor *a = loom_arange(LOOM_F32, 0, 1, 0.1);
  ck_assert_int_eq(loom_numel(a), 10);
  ck_assert_int_eq(loom_dtype_of(a), LOOM_F32);
  for (int i = 0; i < 10; i++)
    ck_assert_float_eq(loom_data_f32(a)[i], (float)(i * 0.1));
  CHECK_VALUES(loom_arange(LOOM_F64, 5, 0, -1.5), 0, 5, 3.5, 2, 0.5);
  CHECK_VALUES(loom_arange(LOOM_I64, -3, 4, 3), 0, -3, 0, 3);
  CHECK_SHAPE(loom_arange(LOOM_F32, 3, 3, 1), 0);
  /* an end on the other side: refused, as torch refuses it */
  ck_assert_ptr_null(loom_arange(LOOM_F32, 3, 0, 1));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "arange: 3..0 runs against step 1");
  loom_clear_error();
  ck_assert_ptr_null(loom_arange(LOOM_I64, 0, 10, -1));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "arange: 0..10 runs against step -1");
  loom_clear_error();
  CHECK_SHAPE(loom_arange(LOOM_F32, 3, 3, -1), 0);
  ck_assert_ptr_null(loom_arange(LOOM_F32, 0, 1, 0));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "arange");
  ck_assert_ptr_null(loom_arange(LOOM_F32, 0, INFINITY, 1));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "arange");
}
END_TEST

START_TEST(test_linspace) {
  loom_tensor *l = loom_linspace(LOOM_F32, -1, 1, 7);
  const float *v = loom_data_f32(l);
  ck_assert_float_eq(v[0], -1.0f); /* endpoints exact */
  ck_assert_float_eq(v[6], 1.0f);
  for (int i = 0; i < 7; i++)
    ck_assert_float_eq_tol(v[i], -1 + i / 3.0, 1e-7);
  CHECK_VALUES(loom_linspace(LOOM_F64, 0, 1, 5), 0, 0, 0.25, 0.5, 0.75, 1);
  /* 0.1 steps do not add up exactly, but the last point is the end */
  loom_tensor *t = loom_linspace(LOOM_F64, 0, 0.3, 4);
  ck_assert_double_eq(loom_data_f64(t)[3], 0.3);
  CHECK_VALUES(t, 1e-15, 0, 0.1, 0.2, 0.3);
  CHECK_VALUES(loom_linspace(LOOM_F64, 4, 9, 1), 0, 4);
  CHECK_SHAPE(loom_linspace(LOOM_F64, 4, 9, 0), 0);
  ck_assert_ptr_null(loom_linspace(LOOM_F64, 0, 1, -1));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "linspace");
  /* a span past DBL_MAX: the step (end - start) / 4 overflowed, and the
   * points were NaN and inf */
  CHECK_VALUES(loom_linspace(LOOM_F64, -1e308, 1e308, 5), 0, -1e308, -5e307, 0,
               5e307, 1e308);
  /* two points are the bounds, though the second share is no step: the
   * step stayed infinite and both points were NaN */
  CHECK_VALUES(loom_linspace(LOOM_F64, -1e308, 1e308, 2), 0, -1e308, 1e308);
  CHECK_VALUES(loom_linspace(LOOM_F64, 1e308, -1e308, 2), 0, 1e308, -1e308);
  ck_assert_ptr_null(loom_linspace(LOOM_F64, 0, INFINITY, 3));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "must be finite");
  ck_assert_ptr_null(loom_linspace(LOOM_F32, NAN, 1, 3));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "linspace");
}
END_TEST

START_TEST(test_eye) {
  CHECK_VALUES(loom_eye(LOOM_F32, 3, -1), 0, 1, 0, 0, 0, 1, 0, 0, 0, 1);
  loom_tensor *r = loom_eye(LOOM_I64, 2, 3);
  CHECK_SHAPE(r, 2, 3);
  CHECK_VALUES(r, 0, 1, 0, 0, 0, 1, 0);
  CHECK_VALUES(loom_eye(LOOM_BOOL, 3, 2), 0, 1, 0, 0, 1, 0, 0);
}
END_TEST

START_TEST(test_from_array_and_back) {
  int64_t in[6] = {1, -2, 3, INT64_MAX, 5, 6};
  loom_tensor *t = loom_from_array(LOOM_I64, in, LOOM_SHAPE(2, 3));
  in[0] = 100; /* a copy, not a view */
  ck_assert_int_eq(loom_data_i64(t)[0], 1);
  ck_assert_int_eq(loom_data_i64(t)[3], INT64_MAX);
  float out[6];
  ck_assert_int_eq(loom_copy_to_array(loom_t(t), LOOM_F32, out, 6), 0);
  ck_assert_float_eq(out[1], (float)INT64_MAX); /* transposed order */
  ck_assert_float_eq(out[2], -2);
  ck_assert_int_eq(loom_copy_to_array(t, LOOM_F32, out, 5), -1);
  CHECK_ERROR(LOOM_ERR_SHAPE, "copy_to_array");
  /* copying out leaves nothing behind in the scope */
  int64_t live = loom_debug_live_tensors();
  for (int i = 0; i < 10; i++)
    loom_copy_to_array(t, LOOM_F32, out, 6);
  ck_assert_int_eq(loom_debug_live_tensors(), live);
  /* a typed pointer of the wrong dtype is an error, not a reinterpretation */
  ck_assert_ptr_null(loom_data_f32(t));
  CHECK_ERROR(LOOM_ERR_DTYPE, "data_f32");
}
END_TEST

static void count_release(void *data, void *ctx) {
  int *count = ctx;
  ck_assert_ptr_nonnull(data);
  (*count)++;
}

START_TEST(test_from_buffer_views_and_release) {
  double buf[12];
  for (int i = 0; i < 12; i++)
    buf[i] = i;
  int released = 0;
  int64_t live = loom_debug_live_tensors();
  int64_t bytes = loom_debug_live_bytes();
  loom_scope *s = loom_scope_begin();
  /* every other column of a 3 x 4 row-major buffer */
  loom_tensor *t =
      loom_from_buffer(LOOM_F64, buf, LOOM_SHAPE(3, 2), (const int64_t[]){4, 2},
                       count_release, &released);
  CHECK_VALUES(t, 0, 0, 2, 4, 6, 8, 10);
  ck_assert(!loom_is_contiguous(t));
  ck_assert_ptr_eq(loom_data(t), buf);
  loom_tensor *col = loom_keep(loom_select(t, 1, 1));
  loom_fill_(loom_select(t, 0, 2), -1); /* writes reach the buffer */
  ck_assert_double_eq(buf[8], -1);
  ck_assert_double_eq(buf[10], -1);
  ck_assert_double_eq(buf[9], 9);
  loom_contiguous(t);
  loom_scope_end(s);
  ck_assert_int_eq(released, 0); /* `col` still views the buffer */
  CHECK_VALUES(col, 0, 2, 6, -1);
  loom_release(col);
  ck_assert_int_eq(released, 1);
  ck_assert_int_eq(loom_debug_live_tensors(), live);
  ck_assert_int_eq(loom_debug_live_bytes(), bytes);

  ck_assert_ptr_null(loom_from_buffer(LOOM_F64, NULL, LOOM_SHAPE(2), NULL,
                                      count_release, &released));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "from_buffer");
  ck_assert_ptr_null(loom_from_buffer(LOOM_F64, buf, LOOM_SHAPE(-2), NULL,
                                      count_release, &released));
  CHECK_ERROR(LOOM_ERR_SHAPE, "from_buffer");
  ck_assert_int_eq(released, 1); /* not called on failure */
}
END_TEST

/* Strides from the user are checked: a negative one, or ones whose
 * furthest element passes LOOM_MAX_ELEMENTS, had been taken and made the
 * kernels' offset arithmetic overflow (matmul, in the probe). A zero
 * stride is a broadcast view of the buffer. */
START_TEST(test_from_buffer_checks_strides) {
  float buf[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  int released = 0;
  const int64_t M = LOOM_MAX_ELEMENTS;
  static const struct {
    int ndim;
    int64_t shape[3], strides[3];
  } bad[] = {
      {1, {2}, {-1}},
      {1, {2}, {INT64_MIN}},
      {1, {2}, {INT64_MAX}},
      {1, {1}, {(int64_t)1 << 62}}, /* even along a dim of size 1 */
      {2, {2, 2}, {1, -4}},
      {3, {2, 0, 3}, {INT64_MAX / 2, 7, INT64_MAX / 3}},
      {1, {3}, {((int64_t)1 << 58)}}, /* 2 * 2^58 = 2^59 */
      {2, {2, 2}, {((int64_t)1 << 58), ((int64_t)1 << 58)}},
      {2, {(int64_t)1 << 20, (int64_t)1 << 20}, {(int64_t)1 << 40, 1}},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    ck_assert_ptr_null(loom_from_buffer(LOOM_F32, buf, bad[i].ndim,
                                        bad[i].shape, bad[i].strides,
                                        count_release, &released));
    CHECK_ERROR(LOOM_ERR_SHAPE, "from_buffer");
  }
  ck_assert_int_eq(released, 0);
  /* the furthest element may be LOOM_MAX_ELEMENTS itself (not read here) */
  ck_assert_loom(loom_from_buffer(LOOM_F32, buf, LOOM_SHAPE(2),
                                  (const int64_t[]){M}, NULL, NULL));
  ck_assert_loom(loom_from_buffer(LOOM_F32, buf, LOOM_SHAPE(2, 2),
                                  (const int64_t[]){M / 2, M - M / 2}, NULL,
                                  NULL));
  /* stride 0: every row is the buffer's first three elements */
  loom_tensor *b = loom_from_buffer(LOOM_F32, buf, LOOM_SHAPE(2, 3),
                                    (const int64_t[]){0, 1}, NULL, NULL);
  CHECK_VALUES(b, 0, 1, 2, 3, 1, 2, 3);
  CHECK_VALUES(loom_sum(b, (const int[]){0}, 1, false), 0, 2, 4, 6);
}
END_TEST

/* ------------------------------------------------------------ random */

START_TEST(test_rng_known_stream) {
  /* xoshiro256** seeded by splitmix64: computed independently, so any
   * change to the generator or its seeding breaks this */
  loom_rng *g = loom_rng_new(42);
  ck_assert_uint_eq(loom_rng_u64(g), 0x15780b2e0c2ec716ull);
  ck_assert_uint_eq(loom_rng_u64(g), 0x6104d9866d113a7eull);
  ck_assert_uint_eq(loom_rng_u64(g), 0xae17533239e499a1ull);
  ck_assert_uint_eq(loom_rng_u64(g), 0xecb8ad4703b360a1ull);
  loom_rng_seed(g, 42);
  ck_assert_uint_eq(loom_rng_u64(g), 0x15780b2e0c2ec716ull);
  loom_manual_seed(42);
  ck_assert_uint_eq(loom_rng_u64(NULL), 0x15780b2e0c2ec716ull);
  loom_rng_seed(g, 42);
  ck_assert_double_eq(loom_rng_uniform(g),
                      (double)(0x15780b2e0c2ec716ull >> 11) * 0x1.0p-53);
  loom_rng_free(g);
}
END_TEST

START_TEST(test_same_seed_same_tensors) {
  loom_rng *a = loom_rng_new(7), *b = loom_rng_new(7), *c = loom_rng_new(8);
  loom_tensor *x = loom_randn(a, LOOM_F32, 0, 1, LOOM_SHAPE(5, 7));
  loom_tensor *y = loom_randn(b, LOOM_F32, 0, 1, LOOM_SHAPE(5, 7));
  ck_assert(loom_equal(x, y));
  ck_assert(!loom_equal(x, loom_randn(c, LOOM_F32, 0, 1, LOOM_SHAPE(5, 7))));
  ck_assert(loom_equal(loom_rand(a, LOOM_F64, -1, 1, LOOM_SHAPE(9)),
                       loom_rand(b, LOOM_F64, -1, 1, LOOM_SHAPE(9))));
  ck_assert(
      loom_equal(loom_randint(a, LOOM_DTYPE_DEFAULT, 0, 100, LOOM_SHAPE(9)),
                 loom_randint(b, LOOM_DTYPE_DEFAULT, 0, 100, LOOM_SHAPE(9))));
  ck_assert(loom_equal(loom_randperm(a, 20), loom_randperm(b, 20)));
  loom_manual_seed(3);
  loom_tensor *p = loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(6));
  loom_manual_seed(3);
  ck_assert(loom_equal(p, loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(6))));
  loom_rng_free(a);
  loom_rng_free(b);
  loom_rng_free(c);
}
END_TEST

START_TEST(test_randn_moments) {
  loom_rng *g = loom_rng_new(2024);
  const int n = 100000;
  loom_tensor *x = loom_randn(g, LOOM_F64, 3, 2, LOOM_SHAPE(n));
  const double *v = loom_data_f64(x);
  double s = 0, ss = 0;
  for (int i = 0; i < n; i++) {
    s += v[i];
    ss += (v[i] - 3) * (v[i] - 3);
  }
  /* standard errors: 2/sqrt(n) = 0.006 for the mean, ~0.0045 for the std */
  ck_assert_double_eq_tol(s / n, 3, 0.03);
  ck_assert_double_eq_tol(sqrt(ss / n), 2, 0.025);
  loom_rng_free(g);
}
END_TEST

/* randn had written normal draws into integer dtypes (truncated toward
 * zero, saturated) and taken a negative or NaN std: each is refused at
 * once, as torch's normal_ does. */
START_TEST(test_randn_refuses_bad_arguments) {
  ck_assert_ptr_null(loom_randn(NULL, LOOM_I64, 0, 1, LOOM_SHAPE(3)));
  CHECK_ERROR(LOOM_ERR_DTYPE, "randn: dtype int64");
  ck_assert_ptr_null(loom_randn(NULL, LOOM_BOOL, 0, 1, LOOM_SHAPE(3)));
  CHECK_ERROR(LOOM_ERR_DTYPE, "randn");
  ck_assert_ptr_null(loom_randn(NULL, LOOM_F32, 0, -1, LOOM_SHAPE(3)));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "std -1");
  ck_assert_ptr_null(loom_randn(NULL, LOOM_F64, 0, NAN, LOOM_SHAPE(3)));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "randn");
  ck_assert_ptr_null(loom_randn(NULL, LOOM_F64, INFINITY, 1, LOOM_SHAPE(3)));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "randn");
  ck_assert_int_eq(
      loom_init_normal_(loom_zeros(LOOM_F32, LOOM_SHAPE(2)), 0, -2, NULL), -1);
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "randn");
  /* a std of 0 is a constant, as torch's normal_(mean, 0) */
  CHECK_VALUES(loom_randn(NULL, LOOM_F32, 2, 0, LOOM_SHAPE(2)), 0, 2, 2);
}
END_TEST

START_TEST(test_rand_bounds) {
  loom_rng *g = loom_rng_new(11);
  loom_tensor *x = loom_rand(g, LOOM_F32, -2, 3, LOOM_SHAPE(20000));
  const float *v = loom_data_f32(x);
  float lo = 10, hi = -10;
  for (int i = 0; i < 20000; i++) {
    ck_assert(v[i] >= -2 && v[i] < 3);
    lo = v[i] < lo ? v[i] : lo;
    hi = v[i] > hi ? v[i] : hi;
  }
  ck_assert(lo < -1.99f && hi > 2.99f);
  /* A state whose next draw is 2^64 - 1: uniform gives 1 - 2^-53, which
   * float32 rounds to 1. The interval is half-open all the same. */
  const uint64_t st[LOOM_RNG_STATE_WORDS] = {1, 0x4fc71c71c71c71c7ull, 1, 1, 0,
                                             0};
  ck_assert_int_eq(loom_rng_set_state(g, st), 0);
  ck_assert_uint_eq(loom_rng_u64(g), UINT64_MAX);
  ck_assert_int_eq(loom_rng_set_state(g, st), 0);
  ck_assert_float_lt(
      loom_data_f32(loom_rand(g, LOOM_F32, 0, 1, LOOM_SHAPE(1)))[0], 1.0f);
  loom_rng_free(g);
}
END_TEST

/* A range that holds no value of the dtype is refused: the redraw loop
 * had never ended on it ((-inf, inf), two bounds between neighbouring
 * float32s, an int64 range with no integer), and int32 had saturated
 * draws above its range to INT32_MAX. Integer dtypes draw the integers
 * of the range, within the dtype's, each as likely; float32 draws never
 * round below lo. Each refused call gives LOOM_ERR_ARGUMENT at once. */
START_TEST(test_rand_refuses_empty_ranges) {
  static const struct {
    loom_dtype dtype;
    double lo, hi;
  } bad[] = {
      {LOOM_F32, -INFINITY, INFINITY},
      {LOOM_F64, -DBL_MAX, DBL_MAX},
      {LOOM_F64, 0, NAN},
      {LOOM_F32, 1e39, 1e40},
      {LOOM_F32, 0, 1e39},
      {LOOM_I64, -0.9, -0.2},
      {LOOM_U8, -5, -1},
      {LOOM_BOOL, 0.5, 0.9},
      {LOOM_F32, 1 - 1e-9, 1 - 5e-10},
      {LOOM_I32, 3e9, 4e9},
      {LOOM_I64, 9.3e18, 1e19},
      {LOOM_F64, 2, 1},
      {LOOM_I64, 3, 3},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    loom_tensor *t =
        loom_rand(NULL, bad[i].dtype, bad[i].lo, bad[i].hi, LOOM_SHAPE(4));
    ck_assert_msg(!t, "[%g, %g) %s accepted", bad[i].lo, bad[i].hi,
                  loom_dtype_name(bad[i].dtype));
    ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
    ck_assert_msg(strstr(loom_last_error(), "rand") &&
                      strstr(loom_last_error(), loom_dtype_name(bad[i].dtype)),
                  "%s", loom_last_error());
    loom_clear_error();
  }
  /* the initialisers draw through loom_rand: an error, not a hang (nn/
   * may refuse such a bound itself first, in its own words) */
  loom_tensor *w = loom_zeros(LOOM_F32, LOOM_SHAPE(3, 3));
  ck_assert_int_eq(loom_init_xavier_uniform_(w, INFINITY, NULL), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
  loom_clear_error();
  ck_assert_int_eq(loom_init_uniform_(w, -INFINITY, 0, NULL), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
  loom_clear_error();

  loom_rng *g = loom_rng_new(5);
  enum { N = 4000 };
  /* integers: those of the range the dtype holds, from the least to the
   * greatest */
  static const struct {
    loom_dtype dtype;
    double lo, hi;
    int first, last;
  } ok[] = {{LOOM_U8, -5, 300, 0, 255},
            {LOOM_U8, 0.5, 3, 1, 2},
            {LOOM_I64, -2.5, 3, -2, 2},
            {LOOM_I32, -3e9, -2147483000.5, INT32_MIN, -2147483001},
            {LOOM_BOOL, -1, 7, 0, 1}};
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
    loom_tensor *t =
        loom_rand(g, ok[i].dtype, ok[i].lo, ok[i].hi, LOOM_SHAPE(N));
    ck_assert_loom(t);
    static double v[N];
    ck_assert_int_eq(loom_copy_to_array(t, LOOM_F64, v, N), 0);
    double lo = v[0], hi = v[0];
    for (int k = 0; k < N; k++) {
      ck_assert_msg(v[k] >= ok[i].lo && v[k] < ok[i].hi && v[k] == floor(v[k]),
                    "%s [%g, %g): %g", loom_dtype_name(ok[i].dtype), ok[i].lo,
                    ok[i].hi, v[k]);
      lo = v[k] < lo ? v[k] : lo;
      hi = v[k] > hi ? v[k] : hi;
    }
    ck_assert_double_eq(lo, ok[i].first);
    ck_assert_double_eq(hi, ok[i].last);
  }
  /* one float32 in [1 + 1e-8, 1 + 2e-7): draws below 1 + 2^-24 used to
   * round to 1, below lo */
  loom_tensor *f = loom_rand(g, LOOM_F32, 1 + 1e-8, 1 + 2e-7, LOOM_SHAPE(N));
  ck_assert_loom(f);
  for (int k = 0; k < N; k++)
    ck_assert_float_eq(loom_data_f32(f)[k], 1 + 0x1p-23f);
  /* lo == hi, as torch's uniform_(a, a) (Xavier with gain 0) */
  CHECK_VALUES(loom_rand(g, LOOM_F64, 0.25, 0.25, LOOM_SHAPE(3)), 0, 0.25, 0.25,
               0.25);
  ck_assert_int_eq(loom_init_xavier_uniform_(w, 0, NULL), 0);
  loom_rng_free(g);
}
END_TEST

START_TEST(test_randint_bernoulli_randperm) {
  loom_rng *g = loom_rng_new(5);
  loom_tensor *r = loom_randint(g, LOOM_DTYPE_DEFAULT, -3, 4, LOOM_SHAPE(7000));
  ck_assert_int_eq(loom_dtype_of(r), LOOM_I64);
  int seen[7] = {0};
  for (int i = 0; i < 7000; i++) {
    int64_t v = loom_data_i64(r)[i];
    ck_assert(v >= -3 && v < 4);
    seen[v + 3]++;
  }
  for (int k = 0; k < 7; k++) /* each ~1000 */
    ck_assert_int_gt(seen[k], 850);
  ck_assert_ptr_null(loom_randint(g, LOOM_I64, 4, 4, LOOM_SHAPE(2)));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "randint");
  /* int32: the whole range, and a range beyond it refused */
  loom_tensor *r32 =
      loom_randint(g, LOOM_I32, INT32_MIN, 1ll << 31, LOOM_SHAPE(2000));
  ck_assert_int_eq(loom_dtype_of(r32), LOOM_I32);
  int negative = 0;
  for (int k = 0; k < 2000; k++)
    negative += loom_data_i32(r32)[k] < 0;
  ck_assert(negative > 900 && negative < 1100);
  CHECK_VALUES(loom_randint(g, LOOM_I32, -2, -1, LOOM_SHAPE(2)), 0, -2, -2);
  ck_assert_ptr_null(
      loom_randint(g, LOOM_I32, 0, (1ll << 31) + 1, LOOM_SHAPE(2)));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "does not fit int32");
  ck_assert_ptr_null(
      loom_randint(g, LOOM_I32, INT32_MIN - 1ll, 0, LOOM_SHAPE(2)));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "does not fit int32");
  /* uint8, bool and the floats: only ranges whose every integer they hold
   * exactly (else values saturate or round out of [lo, hi)), as PyTorch */
  CHECK_VALUES(loom_randint(g, LOOM_U8, 255, 256, LOOM_SHAPE(2)), 0, 255, 255);
  CHECK_VALUES(loom_randint(g, LOOM_BOOL, 1, 2, LOOM_SHAPE(2)), 0, 1, 1);
  CHECK_VALUES(loom_randint(g, LOOM_F32, 16777215, 16777217, LOOM_SHAPE(1)),
               0.5, 16777215.5); /* one of the two */
  CHECK_VALUES(loom_randint(g, LOOM_F32, -16777216, -16777215, LOOM_SHAPE(1)),
               0, -16777216);
  CHECK_VALUES(
      loom_randint(g, LOOM_F64, 1ll << 53, (1ll << 53) + 1, LOOM_SHAPE(1)), 0,
      0x1p53);
  ck_assert_ptr_null(loom_randint(g, LOOM_U8, -1000, 1000, LOOM_SHAPE(2)));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "does not fit uint8 [0, 255]");
  ck_assert_ptr_null(loom_randint(g, LOOM_U8, 0, 257, LOOM_SHAPE(2)));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "does not fit uint8 [0, 255]");
  ck_assert_ptr_null(loom_randint(g, LOOM_BOOL, -5, 5, LOOM_SHAPE(2)));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "does not fit bool [0, 1]");
  ck_assert_ptr_null(loom_randint(g, LOOM_BOOL, 0, 3, LOOM_SHAPE(2)));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "does not fit bool [0, 1]");
  ck_assert_ptr_null(
      loom_randint(g, LOOM_F32, 16777217, 16777218, LOOM_SHAPE(2)));
  CHECK_ERROR(LOOM_ERR_ARGUMENT,
              "does not fit float32 [-16777216, 16777216] (the integers it "
              "holds exactly)");
  ck_assert_ptr_null(loom_randint(g, LOOM_F32, -16777217, 0, LOOM_SHAPE(2)));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "float32 [-16777216, 16777216]");
  ck_assert_ptr_null(
      loom_randint(g, LOOM_F64, 0, (1ll << 53) + 2, LOOM_SHAPE(2)));
  CHECK_ERROR(LOOM_ERR_ARGUMENT,
              "float64 [-9007199254740992, 9007199254740992]");

  loom_tensor *b = loom_bernoulli(g, LOOM_F32, 0.25, LOOM_SHAPE(40000));
  ck_assert_double_eq_tol(loom_item(loom_mean_all(b)), 0.25, 0.012);
  CHECK_VALUES(loom_bernoulli(g, LOOM_I64, 0, LOOM_SHAPE(3)), 0, 0, 0, 0);
  CHECK_VALUES(loom_bernoulli(g, LOOM_BOOL, 1, LOOM_SHAPE(3)), 0, 1, 1, 1);
  ck_assert_ptr_null(loom_bernoulli(g, LOOM_F32, 1.5, LOOM_SHAPE(3)));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "bernoulli");

  loom_tensor *p = loom_randperm(g, 1000);
  bool hit[1000] = {false};
  int moved = 0;
  for (int i = 0; i < 1000; i++) {
    int64_t v = loom_data_i64(p)[i];
    ck_assert(v >= 0 && v < 1000 && !hit[v]);
    hit[v] = true;
    moved += v != i;
  }
  ck_assert_int_gt(moved, 900);
  CHECK_SHAPE(loom_randperm(g, 0), 0);
  loom_rng_free(g);
}
END_TEST

START_TEST(test_rng_state_round_trip) {
  loom_rng *g = loom_rng_new(99);
  loom_rng_normal(g); /* leaves a spare normal in the state */
  uint64_t st[LOOM_RNG_STATE_WORDS];
  loom_rng_get_state(g, st);
  double first[5];
  for (int i = 0; i < 5; i++)
    first[i] = loom_rng_normal(g);
  loom_rng_u64(g);
  ck_assert_int_eq(loom_rng_set_state(g, st), 0);
  for (int i = 0; i < 5; i++)
    ck_assert_double_eq(loom_rng_normal(g), first[i]);
  /* the default generator too */
  loom_manual_seed(1);
  loom_rng_get_state(NULL, st);
  double u = loom_rng_uniform(NULL);
  loom_rng_set_state(NULL, st);
  ck_assert_double_eq(loom_rng_uniform(NULL), u);
  const uint64_t zero[LOOM_RNG_STATE_WORDS] = {0};
  ck_assert_int_eq(loom_rng_set_state(g, zero), -1);
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "rng_set_state");
  loom_rng_free(g);
}
END_TEST

/* ------------------------------------------------------------ dtypes */

START_TEST(test_dtype_queries) {
  ck_assert_uint_eq(loom_dtype_size(LOOM_F32), 4);
  ck_assert_uint_eq(loom_dtype_size(LOOM_F64), 8);
  ck_assert_uint_eq(loom_dtype_size(LOOM_I64), 8);
  ck_assert_uint_eq(loom_dtype_size(LOOM_BOOL), 1);
  ck_assert_uint_eq(loom_dtype_size(LOOM_U8), 1);
  ck_assert_str_eq(loom_dtype_name(LOOM_F64), "float64");
  ck_assert_str_eq(loom_dtype_name(LOOM_U8), "uint8");
  ck_assert(loom_dtype_is_float(LOOM_DTYPE_DEFAULT));
  ck_assert(!loom_dtype_is_float(LOOM_I64));
  ck_assert(!loom_dtype_is_float(LOOM_BOOL));
}
END_TEST

START_TEST(test_conversions_saturate) {
  loom_tensor *f = VEC(LOOM_F64, 1.9, -1.9, NAN, 1e30, -1e30, 9.3e18);
  CHECK_VALUES(loom_to_dtype(f, LOOM_I64), 0, 1, -1, 0, (double)INT64_MAX,
               (double)INT64_MIN, (double)INT64_MAX);
  ck_assert_int_eq(loom_data_i64(loom_to_dtype(f, LOOM_I64))[3], INT64_MAX);
  ck_assert_int_eq(loom_data_i64(loom_to_dtype(f, LOOM_I64))[4], INT64_MIN);
  loom_tensor *g = VEC(LOOM_F32, -5, 0.5, 254.9, 300, NAN, INFINITY);
  CHECK_VALUES(loom_to_dtype(g, LOOM_U8), 0, 0, 0, 254, 255, 0, 255);
  CHECK_VALUES(loom_to_dtype(VEC(LOOM_F32, -0.0, 0.0, 0.5, NAN, -3), LOOM_BOOL),
               0, 0, 0, 1, 1, 1);
  CHECK_VALUES(loom_to_dtype(IVEC(-1, 256, 7), LOOM_U8), 0, 0, 255, 7);
  CHECK_VALUES(loom_to_dtype(IVEC(-1, 0, 2), LOOM_BOOL), 0, 1, 0, 1);
  loom_tensor *big = IVEC((1ll << 53) + 1);
  ck_assert_double_eq(loom_data_f64(loom_to_dtype(big, LOOM_F64))[0],
                      9007199254740992.0); /* nearest double */
  ck_assert_float_eq(
      loom_data_f32(loom_to_dtype(VEC(LOOM_F64, 0.1), LOOM_F32))[0], 0.1f);
  CHECK_VALUES(loom_to_dtype(VEC(LOOM_BOOL, 1, 0), LOOM_F32), 0, 1, 0);
  CHECK_VALUES(loom_to_dtype(VEC(LOOM_U8, 200, 3), LOOM_I64), 0, 200, 3);
  /* loom_set converts the same way */
  loom_tensor *u = loom_zeros(LOOM_U8, LOOM_SHAPE(2));
  loom_set(u, (int64_t[]){0}, 1000);
  loom_set(u, (int64_t[]){1}, -1);
  CHECK_VALUES(u, 0, 255, 0);
  ck_assert_ptr_null(loom_to_dtype(f, (loom_dtype)42));
  CHECK_ERROR(LOOM_ERR_DTYPE, "to_dtype");
}
END_TEST

/* int32 beside the other dtypes, as torch.int32. */
START_TEST(test_int32_dtype) {
  ck_assert_uint_eq(loom_dtype_size(LOOM_I32), 4);
  ck_assert_str_eq(loom_dtype_name(LOOM_I32), "int32");
  ck_assert(!loom_dtype_is_float(LOOM_I32));
  ck_assert_int_eq(LOOM_I32 + 1, LOOM_DTYPE_COUNT); /* old values stay */
  ck_assert_int_eq(LOOM_U8, 5);
  /* the typed accessor: the data of an int32 tensor, NULL and an error
   * for any other dtype, as loom_data_i64 */
  loom_tensor *a = loom_from_array(
      LOOM_I32, (const int32_t[]){INT32_MIN, -1, 0, INT32_MAX}, LOOM_SHAPE(4));
  int32_t *d = loom_data_i32(a);
  ck_assert_ptr_nonnull(d);
  ck_assert_int_eq(d[0], INT32_MIN);
  ck_assert_int_eq(d[3], INT32_MAX);
  ck_assert_ptr_null(loom_data_i64(a));
  CHECK_ERROR(LOOM_ERR_DTYPE, "data_i64: tensor is int32");
  ck_assert_ptr_null(loom_data_i32(IVEC(1)));
  CHECK_ERROR(LOOM_ERR_DTYPE, "data_i32: tensor is int64");
  ck_assert_ptr_null(loom_data_i32(NULL));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "data_i32");
  ck_assert_double_eq(loom_get(a, (int64_t[]){0}), -2147483648.0);
  ck_assert_int_eq(loom_set(a, (int64_t[]){1}, 1e12), 0); /* saturates */
  ck_assert_int_eq(d[1], INT32_MAX);
  CHECK_VALUES(loom_full(LOOM_I32, -7, LOOM_SHAPE(2)), 0, -7, -7);
  CHECK_VALUES(loom_arange(LOOM_I32, -3, 4, 3), 0, -3, 0, 3);
  int32_t back[4];
  ck_assert_int_eq(loom_copy_to_array(IVEC(5, -6, 7, 8), LOOM_I32, back, 4), 0);
  ck_assert_int_eq(back[1], -6);
}
END_TEST

/* Conversions to and from int32: floats saturate (NaN to 0) and truncate
 * toward zero, int64 wraps (as PyTorch), uint8 saturates, bool is != 0. */
START_TEST(test_int32_conversions) {
  loom_tensor *f = VEC(LOOM_F64, 1.9, -1.9, NAN, 3e9, -3e9, 2147483647.5);
  loom_tensor *i = loom_to_dtype(f, LOOM_I32);
  ck_assert_int_eq(loom_dtype_of(i), LOOM_I32);
  CHECK_VALUES(i, 0, 1, -1, 0, 2147483647, -2147483648.0, 2147483647);
  CHECK_VALUES(loom_to_dtype(VEC(LOOM_F32, -2.5f, 16777216), LOOM_I32), 0, -2,
               16777216);
  loom_tensor *w = loom_to_dtype(
      IVEC(1ll << 31, (1ll << 32) + 5, -(1ll << 31) - 1, INT64_MIN), LOOM_I32);
  CHECK_VALUES(w, 0, -2147483648.0, 5, 2147483647, 0);
  CHECK_VALUES(loom_to_dtype(VEC(LOOM_U8, 0, 255), LOOM_I32), 0, 0, 255);
  CHECK_VALUES(loom_to_dtype(VEC(LOOM_BOOL, 1, 0), LOOM_I32), 0, 1, 0);
  loom_tensor *a = loom_from_array(
      LOOM_I32, (const int32_t[]){INT32_MIN, -1, 0, 300, INT32_MAX},
      LOOM_SHAPE(5));
  CHECK_VALUES(loom_to_dtype(a, LOOM_I64), 0, -2147483648.0, -1, 0, 300,
               2147483647);
  CHECK_VALUES(loom_to_dtype(a, LOOM_F64), 0, -2147483648.0, -1, 0, 300,
               2147483647);
  CHECK_VALUES(loom_to_dtype(a, LOOM_F32), 0, -2147483648.0, -1, 0, 300,
               2147483648.0); /* nearest float */
  CHECK_VALUES(loom_to_dtype(a, LOOM_U8), 0, 0, 0, 0, 255, 255);
  CHECK_VALUES(loom_to_dtype(a, LOOM_BOOL), 0, 1, 1, 0, 1, 1);
  /* a strided source converts element by element */
  loom_tensor *col = loom_select(
      loom_reshape(loom_arange(LOOM_I32, 0, 6, 1), LOOM_SHAPE(3, 2)), 1, 1);
  CHECK_VALUES(loom_to_dtype(col, LOOM_F64), 0, 1, 3, 5);
}
END_TEST

START_TEST(test_promotion) {
  loom_tensor *i = IVEC(1, 2, 3);
  loom_tensor *f = VEC(LOOM_F32, 0.5, 0.5, 0.5);
  loom_tensor *r = loom_add(i, f);
  ck_assert_int_eq(loom_dtype_of(r), LOOM_F32);
  CHECK_VALUES(r, 0, 1.5, 2.5, 3.5);
  /* a 0-dim float64 does not raise a float32 tensor's precision ... */
  loom_tensor *d0 = loom_scalar(LOOM_F64, 0.1);
  loom_tensor *r2 = loom_mul(f, d0);
  ck_assert_int_eq(loom_dtype_of(r2), LOOM_F32);
  ck_assert_float_eq(loom_data_f32(r2)[0], 0.5f * 0.1f);
  ck_assert_int_eq(loom_dtype_of(loom_mul(d0, f)), LOOM_F32);
  /* ... but it does between 0-dim tensors, for an integer tensor, and a
   * dimensioned float64 always does */
  ck_assert_int_eq(loom_dtype_of(loom_add(loom_scalar(LOOM_F32, 1), d0)),
                   LOOM_F64);
  ck_assert_int_eq(loom_dtype_of(loom_add(i, d0)), LOOM_F64);
  ck_assert_int_eq(
      loom_dtype_of(loom_add(loom_scalar(LOOM_F32, 1), VEC(LOOM_F64, 1))),
      LOOM_F64);
  ck_assert_int_eq(loom_dtype_of(loom_add(VEC(LOOM_BOOL, 1), i)), LOOM_I64);
  ck_assert_int_eq(loom_dtype_of(loom_add(VEC(LOOM_U8, 250), i)), LOOM_I64);
  ck_assert_int_eq(loom_dtype_of(loom_mul(VEC(LOOM_U8, 2), VEC(LOOM_F64, 2))),
                   LOOM_F64);
  /* true division of integers gives the default float dtype */
  loom_tensor *q = loom_div(IVEC(1, 7, -7), IVEC(2, 2, 2));
  ck_assert_int_eq(loom_dtype_of(q), LOOM_F32);
  CHECK_VALUES(q, 0, 0.5, 3.5, -3.5);
  loom_set_default_dtype(LOOM_F64);
  loom_tensor *q64 = loom_div(IVEC(1), IVEC(3));
  loom_set_default_dtype(LOOM_F32);
  ck_assert_int_eq(loom_dtype_of(q64), LOOM_F64);
  ck_assert_double_eq(loom_data_f64(q64)[0], 1.0 / 3);
  /* int32 sits between uint8 and int64, as in PyTorch */
  loom_tensor *i32 = loom_to_dtype(IVEC(1, 2, 3), LOOM_I32);
  ck_assert_int_eq(loom_dtype_of(loom_add(i32, i)), LOOM_I64);
  ck_assert_int_eq(loom_dtype_of(loom_add(i32, f)), LOOM_F32);
  ck_assert_int_eq(loom_dtype_of(loom_add(i32, VEC(LOOM_F64, 1))), LOOM_F64);
  ck_assert_int_eq(loom_dtype_of(loom_add(VEC(LOOM_BOOL, 1), i32)), LOOM_I32);
  ck_assert_int_eq(loom_dtype_of(loom_add(VEC(LOOM_U8, 250), i32)), LOOM_I32);
  ck_assert_int_eq(loom_dtype_of(loom_div(i32, i32)), LOOM_F32);
  /* a 0-dim integer does not raise a dimensioned integer's dtype, nor
   * does a 0-dim float a float's; across kinds it does */
  ck_assert_int_eq(loom_dtype_of(loom_add(i32, loom_scalar(LOOM_I64, 5))),
                   LOOM_I32);
  ck_assert_int_eq(
      loom_dtype_of(loom_add(VEC(LOOM_U8, 250), loom_scalar(LOOM_I64, 300))),
      LOOM_U8);
  ck_assert_int_eq(loom_dtype_of(loom_add(loom_scalar(LOOM_I32, 5), i)),
                   LOOM_I64);
  ck_assert_int_eq(
      loom_dtype_of(loom_add(VEC(LOOM_BOOL, 1), loom_scalar(LOOM_I64, 2))),
      LOOM_I64);
  ck_assert_int_eq(loom_dtype_of(loom_add(i32, loom_scalar(LOOM_F64, 0.5))),
                   LOOM_F64);
  /* integer arithmetic stays integer and exact */
  loom_tensor *big = loom_mul(IVEC(3037000499ll), IVEC(3037000499ll));
  ck_assert_int_eq(loom_dtype_of(big), LOOM_I64);
  ck_assert_int_eq(loom_data_i64(big)[0], 9223372030926249001ll);
}
END_TEST

START_TEST(test_scalar_operands) {
  loom_tensor *f = VEC(LOOM_F32, 1, 2);
  loom_tensor *a = loom_add_scalar(f, 0.1);
  ck_assert_int_eq(loom_dtype_of(a), LOOM_F32);
  ck_assert_float_eq(loom_data_f32(a)[0], 1.0f + 0.1f); /* scalar in f32 */
  loom_tensor *i = IVEC(1, 2);
  ck_assert_int_eq(loom_dtype_of(loom_add_scalar(i, 3)), LOOM_I64);
  CHECK_VALUES(loom_add_scalar(i, 3), 0, 4, 5);
  loom_tensor *h = loom_add_scalar(i, 0.5); /* non-integral: goes float */
  ck_assert_int_eq(loom_dtype_of(h), LOOM_F32);
  CHECK_VALUES(h, 0, 1.5, 2.5);
  /* a scalar no int64 can hold also goes float (not an undefined cast) */
  CHECK_VALUES(loom_add_scalar(i, INFINITY), 0, INFINITY, INFINITY);
  CHECK_VALUES(loom_mul_scalar(i, 1e30), 0, (float)1e30, (float)2e30);
  ck_assert_int_eq(loom_dtype_of(loom_mul_scalar(i, -0x1p63)), LOOM_F32);
  CHECK_VALUES(loom_sub_scalar(i, 1), 0, 0, 1);
  CHECK_VALUES(loom_rsub_scalar(i, 10), 0, 9, 8);
  CHECK_VALUES(loom_mul_scalar(i, -4), 0, -4, -8);
  CHECK_VALUES(loom_mul_scalar(i, 0.25), 0, 0.25, 0.5);
  loom_tensor *d = loom_div_scalar(i, 4);
  ck_assert_int_eq(loom_dtype_of(d), LOOM_F32);
  CHECK_VALUES(d, 0, 0.25, 0.5);
  CHECK_VALUES(loom_pow_scalar(VEC(LOOM_F64, 4, 9), 0.5), 0, 2, 3);
  CHECK_VALUES(loom_pow_scalar(VEC(LOOM_F64, 2, -3), 3), 0, 8, -27);
  CHECK_VALUES(loom_pow_scalar(VEC(LOOM_F64, 2, -3), 2), 0, 4, 9);
  CHECK_VALUES(loom_pow_scalar(VEC(LOOM_F64, 2, -3), 1), 0, 2, -3);
  CHECK_VALUES(loom_pow_scalar(VEC(LOOM_F64, 2, 0), -1), 0, 0.5, INFINITY);
}
END_TEST

/* ------------------------------------------------------------ views */

static loom_tensor *range_f64(int64_t n) {
  return loom_arange(LOOM_F64, 0, (double)n, 1);
}

START_TEST(test_reshape_and_view) {
  loom_tensor *x = range_f64(24);
  loom_tensor *r = loom_reshape(x, LOOM_SHAPE(2, -1, 4));
  CHECK_SHAPE(r, 2, 3, 4);
  ck_assert_ptr_eq(loom_data(r), loom_data(x));
  ck_assert_int_eq(loom_strides(r)[0], 12);
  ck_assert_int_eq(loom_strides(r)[1], 4);
  ck_assert_int_eq(loom_strides(r)[2], 1);
  /* a transposed tensor cannot be flattened in place: reshape copies ... */
  loom_tensor *tr = loom_transpose(r, 1, 2); /* 2 x 4 x 3 */
  loom_tensor *flat = loom_reshape(tr, LOOM_SHAPE(-1));
  ck_assert_ptr_ne(loom_data(flat), loom_data(x));
  CHECK_VALUES(loom_narrow(flat, 0, 0, 6), 0, 0, 4, 8, 1, 5, 9);
  /* ... and view refuses */
  ck_assert_ptr_null(loom_view(tr, LOOM_SHAPE(24)));
  CHECK_ERROR(LOOM_ERR_SHAPE, "view");
  /* splitting a dim of a non-contiguous tensor is still a view */
  loom_tensor *v = loom_view(tr, LOOM_SHAPE(2, 2, 2, 3));
  ck_assert_ptr_eq(loom_data(v), loom_data(x));
  ck_assert_int_eq(loom_strides(v)[1], 2);
  ck_assert_int_eq(loom_strides(v)[2], 1);
  ck_assert_int_eq(loom_strides(v)[3], 4);
  /* merging the rows of a column slice is a view too */
  loom_tensor *cols = loom_narrow(loom_reshape(x, LOOM_SHAPE(4, 6)), 1, 1, 2);
  loom_tensor *m = loom_view(cols, LOOM_SHAPE(2, 2, 2));
  ck_assert_ptr_nonnull(m);
  CHECK_VALUES(m, 0, 1, 2, 7, 8, 13, 14, 19, 20);
  ck_assert_ptr_null(loom_reshape(x, LOOM_SHAPE(5, -1)));
  CHECK_ERROR(LOOM_ERR_SHAPE, "reshape");
  ck_assert_ptr_null(loom_reshape(x, LOOM_SHAPE(-1, -1)));
  CHECK_ERROR(LOOM_ERR_SHAPE, "-1");
  CHECK_SCALAR_SHAPE(
      loom_reshape(loom_ones(LOOM_F32, LOOM_SHAPE(1, 1)), 0, NULL));
}
END_TEST

START_TEST(test_transpose_permute_t) {
  loom_tensor *x = loom_reshape(range_f64(24), LOOM_SHAPE(2, 3, 4));
  loom_tensor *t = loom_transpose(x, 0, -1);
  CHECK_SHAPE(t, 4, 3, 2);
  ck_assert_int_eq(loom_strides(t)[0], 1);
  ck_assert_int_eq(loom_strides(t)[2], 12);
  ck_assert(!loom_is_contiguous(t));
  ck_assert_double_eq(loom_get(t, (int64_t[]){3, 1, 1}), 12 + 4 + 3);
  loom_tensor *p = loom_permute(x, (const int[]){2, 0, 1});
  CHECK_SHAPE(p, 4, 2, 3);
  ck_assert_double_eq(loom_get(p, (int64_t[]){1, 1, 2}), 12 + 8 + 1);
  ck_assert_ptr_null(loom_permute(x, (const int[]){0, 0, 1}));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "permute");
  loom_tensor *m = loom_reshape(range_f64(6), LOOM_SHAPE(2, 3));
  CHECK_VALUES(loom_t(m), 0, 0, 3, 1, 4, 2, 5);
  CHECK_SHAPE(loom_t(x), 2, 4, 3); /* the last two dims of a batch */
  CHECK_VALUES(loom_t(range_f64(3)), 0, 0, 1, 2); /* 1-D: unchanged */
  ck_assert_ptr_null(loom_transpose(x, 0, 3));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "transpose");
}
END_TEST

START_TEST(test_narrow_slice_select) {
  loom_tensor *x = loom_reshape(range_f64(20), LOOM_SHAPE(4, 5));
  loom_tensor *n = loom_narrow(x, 1, 1, 3);
  CHECK_SHAPE(n, 4, 3);
  CHECK_VALUES(loom_select(n, 0, 1), 0, 6, 7, 8);
  ck_assert_ptr_eq(loom_data(n), loom_data_f64(x) + 1);
  CHECK_VALUES(loom_narrow(x, 0, -1, 1), 0, 15, 16, 17, 18, 19);
  ck_assert_ptr_null(loom_narrow(x, 1, 3, 3));
  CHECK_ERROR(LOOM_ERR_INDEX, "narrow");

  loom_tensor *r = range_f64(10);
  CHECK_VALUES(loom_slice(r, 0, 1, 8, 3), 0, 1, 4, 7);
  ck_assert_int_eq(loom_strides(loom_slice(r, 0, 1, 8, 3))[0], 3);
  CHECK_VALUES(loom_slice(r, 0, -3, 100, 1), 0, 7, 8, 9); /* clamped */
  CHECK_VALUES(loom_slice(r, 0, -100, 2, 1), 0, 0, 1);
  CHECK_SHAPE(loom_slice(r, 0, 6, 2, 1), 0); /* empty, not an error */
  CHECK_VALUES(loom_slice(r, 0, 0, -7, 2), 0, 0, 2);
  CHECK_VALUES(loom_slice(x, 1, 0, 5, 4), 0, 0, 4, 5, 9, 10, 14, 15, 19);
  ck_assert_ptr_null(loom_slice(r, 0, 0, 5, 0));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "slice");

  loom_tensor *s = loom_select(x, 1, -1);
  CHECK_SHAPE(s, 4);
  CHECK_VALUES(s, 0, 4, 9, 14, 19);
  CHECK_SCALAR_SHAPE(loom_select(r, 0, -10));
  ck_assert_double_eq(loom_item(loom_select(r, 0, -10)), 0);
  ck_assert_ptr_null(loom_select(x, 0, 4));
  CHECK_ERROR(LOOM_ERR_INDEX, "select");
  ck_assert_ptr_null(loom_select(x, 0, -5));
  CHECK_ERROR(LOOM_ERR_INDEX, "select");
}
END_TEST

START_TEST(test_squeeze_unsqueeze_expand_flatten) {
  loom_tensor *x = loom_ones(LOOM_F32, LOOM_SHAPE(2, 1, 3, 1));
  CHECK_SHAPE(loom_squeeze(x, 1), 2, 3, 1);
  CHECK_SHAPE(loom_squeeze(x, -1), 2, 1, 3);
  CHECK_SHAPE(loom_squeeze(x, 0), 2, 1, 3, 1); /* size 2: no-op */
  CHECK_SHAPE(loom_squeeze_all(x), 2, 3);
  CHECK_SCALAR_SHAPE(loom_squeeze_all(loom_ones(LOOM_F32, LOOM_SHAPE(1, 1))));
  CHECK_SHAPE(loom_unsqueeze(x, 0), 1, 2, 1, 3, 1);
  CHECK_SHAPE(loom_unsqueeze(x, -1), 2, 1, 3, 1, 1);
  CHECK_SHAPE(loom_unsqueeze(loom_scalar(LOOM_F32, 1), 0), 1);
  ck_assert_ptr_null(loom_unsqueeze(x, 6));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "unsqueeze");

  loom_tensor *col = loom_reshape(range_f64(3), LOOM_SHAPE(3, 1));
  loom_tensor *e = loom_expand(col, LOOM_SHAPE(2, 3, 4));
  CHECK_SHAPE(e, 2, 3, 4);
  ck_assert_int_eq(loom_strides(e)[0], 0);
  ck_assert_int_eq(loom_strides(e)[2], 0);
  ck_assert_ptr_eq(loom_data(e), loom_data(col));
  ck_assert_double_eq(loom_get(e, (int64_t[]){1, 2, 3}), 2);
  CHECK_SHAPE(loom_expand(col, LOOM_SHAPE(-1, 5)), 3, 5);
  CHECK_SHAPE(loom_expand_as(col, x), 2, 1, 3, 1);
  ck_assert_ptr_null(loom_expand(col, LOOM_SHAPE(4, 2)));
  CHECK_ERROR(LOOM_ERR_SHAPE, "expand");
  /* expanded elements share memory: in-place writes are refused */
  ck_assert_ptr_null(loom_fill_(e, 1));
  CHECK_ERROR(LOOM_ERR_STATE, "expanded");

  loom_tensor *y = loom_reshape(range_f64(24), LOOM_SHAPE(2, 3, 4));
  CHECK_SHAPE(loom_flatten(y, 0, -1), 24);
  CHECK_SHAPE(loom_flatten(y, 1, 2), 2, 12);
  CHECK_SHAPE(loom_flatten(y, 0, 1), 6, 4);
  CHECK_SHAPE(loom_flatten(loom_scalar(LOOM_F32, 2), 0, -1), 1);
  loom_tensor *ft = loom_flatten(loom_transpose(y, 0, 2), 0, 1); /* copies */
  CHECK_SHAPE(ft, 12, 2);
  CHECK_VALUES(loom_select(ft, 0, 1), 0, 4, 16);
  ck_assert_ptr_null(loom_flatten(y, 2, 1));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "flatten");
}
END_TEST

START_TEST(test_writes_through_views) {
  loom_tensor *base = loom_zeros(LOOM_F64, LOOM_SHAPE(3, 4));
  loom_tensor *row = loom_select(base, 0, 1);
  loom_tensor *col = loom_select(loom_t(base), 0, 2); /* column 2 */
  loom_fill_(row, 5);
  loom_set(col, (int64_t[]){2}, 7);
  loom_copy_(loom_slice(loom_reshape(base, LOOM_SHAPE(12)), 0, 0, 12, 5),
             VEC(LOOM_I64, -1, -2, -3));
  CHECK_VALUES(base, 0, -1, 0, 0, 0, 5, -2, 5, 5, 0, 0, -3, 0);
  loom_tensor *u = loom_unsqueeze(base, 0);
  loom_mul_scalar_(u, 2);
  ck_assert_double_eq(loom_get(base, (int64_t[]){1, 3}), 10);
  ck_assert_double_eq(loom_get(col, (int64_t[]){1}), 10);
  ck_assert_double_eq(loom_get(col, (int64_t[]){2}), -6); /* 7, then -3 */
}
END_TEST

/* ------------------------------------------------------------ copies */

START_TEST(test_contiguous_clone_copy) {
  loom_tensor *x = loom_reshape(range_f64(6), LOOM_SHAPE(2, 3));
  ck_assert_ptr_eq(loom_contiguous(x), x);
  loom_tensor *c = loom_contiguous(loom_t(x));
  ck_assert(loom_is_contiguous(c));
  CHECK_VALUES(c, 0, 0, 3, 1, 4, 2, 5);
  loom_tensor *k = loom_clone(x);
  ck_assert_ptr_ne(loom_data(k), loom_data(x));
  loom_fill_(k, 0);
  CHECK_VALUES(x, 0, 0, 1, 2, 3, 4, 5);
  ck_assert_ptr_eq(loom_to_dtype(x, LOOM_F64), x);

  /* copy_: broadcast a row into every row, converting the dtype */
  loom_tensor *dst = loom_zeros(LOOM_F32, LOOM_SHAPE(3, 2));
  ck_assert_ptr_eq(loom_copy_(dst, IVEC(4, -5)), dst);
  CHECK_VALUES(dst, 0, 4, -5, 4, -5, 4, -5);
  loom_copy_(loom_t(dst), loom_reshape(IVEC(1, 2), LOOM_SHAPE(2, 1)));
  CHECK_VALUES(dst, 0, 1, 2, 1, 2, 1, 2);
  ck_assert_ptr_null(loom_copy_(dst, IVEC(1, 2, 3)));
  CHECK_ERROR(LOOM_ERR_SHAPE, "copy_");
  ck_assert_ptr_null(loom_copy_(IVEC(1), IVEC(1, 2))); /* would grow dst */
  CHECK_ERROR(LOOM_ERR_SHAPE, "copy_");
}
END_TEST

START_TEST(test_concat_and_stack) {
  loom_tensor *a = IVEC(1, 2);
  loom_tensor *b = VEC(LOOM_F32, 0.5, 1.5, 2.5);
  loom_tensor *ab = loom_concat((loom_tensor *[]){a, b}, 2, 0);
  ck_assert_int_eq(loom_dtype_of(ab), LOOM_F32);
  CHECK_VALUES(ab, 0, 1, 2, 0.5, 1.5, 2.5);
  loom_tensor *m = loom_reshape(range_f64(4), LOOM_SHAPE(2, 2));
  loom_tensor *n = loom_t(loom_reshape(range_f64(6), LOOM_SHAPE(3, 2)));
  loom_tensor *mn = loom_concat((loom_tensor *[]){m, n}, 2, -1);
  CHECK_SHAPE(mn, 2, 5);
  CHECK_VALUES(mn, 0, 0, 1, 0, 2, 4, 2, 3, 1, 3, 5);
  ck_assert_ptr_null(loom_concat((loom_tensor *[]){m, n}, 2, 0));
  CHECK_ERROR(LOOM_ERR_SHAPE, "concat");
  ck_assert_ptr_null(loom_concat((loom_tensor *[]){m, NULL}, 2, 0));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "concat: NULL argument");

  loom_tensor *s0 =
      loom_stack((loom_tensor *[]){a, IVEC(3, 4), IVEC(5, 6)}, 3, 0);
  CHECK_SHAPE(s0, 3, 2);
  CHECK_VALUES(s0, 0, 1, 2, 3, 4, 5, 6);
  loom_tensor *s1 = loom_stack((loom_tensor *[]){a, IVEC(3, 4)}, 2, -1);
  CHECK_SHAPE(s1, 2, 2);
  CHECK_VALUES(s1, 0, 1, 3, 2, 4);
  ck_assert_ptr_null(loom_stack((loom_tensor *[]){a, b}, 2, 0));
  CHECK_ERROR(LOOM_ERR_SHAPE, "stack");
}
END_TEST

START_TEST(test_split_and_chunk) {
  loom_tensor *x = loom_reshape(range_f64(14), LOOM_SHAPE(7, 2));
  loom_tensor *out[8];
  ck_assert_int_eq(loom_split(x, 3, 0, out, 8), 3);
  CHECK_SHAPE(out[0], 3, 2);
  CHECK_SHAPE(out[2], 1, 2);
  CHECK_VALUES(out[2], 0, 12, 13);
  ck_assert_ptr_eq(loom_data(out[1]), loom_data_f64(x) + 6); /* views */
  ck_assert_int_eq(loom_split(x, 3, 0, out, 2), -1); /* too many pieces */
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "split");
  ck_assert_int_eq(loom_split_sizes(x, (const int64_t[]){2, 0, 5}, 3, 0, out),
                   3);
  CHECK_SHAPE(out[1], 0, 2);
  CHECK_VALUES(loom_select(out[2], 1, 1), 0, 5, 7, 9, 11, 13);
  ck_assert_int_eq(loom_split_sizes(x, (const int64_t[]){2, 4}, 2, 0, out), -1);
  CHECK_ERROR(LOOM_ERR_SHAPE, "split");
  /* like torch.chunk: 5 in 3 -> 2, 2, 1; 6 in 4 -> 2, 2, 2 (three pieces) */
  loom_tensor *r5 = range_f64(5), *r6 = range_f64(6);
  ck_assert_int_eq(loom_chunk(r5, 3, 0, out, 8), 3);
  CHECK_VALUES(out[2], 0, 4);
  ck_assert_int_eq(loom_chunk(r6, 4, 0, out, 8), 3);
  CHECK_VALUES(out[2], 0, 4, 5);
  ck_assert_int_eq(loom_chunk(x, 2, 1, out, 8), 2);
  CHECK_VALUES(out[1], 0, 1, 3, 5, 7, 9, 11, 13);
  ck_assert_int_eq(loom_chunk(r6, 0, 0, out, 8), -1);
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "chunk");
}
END_TEST

/* ------------------------------------------------------------ memory */

START_TEST(test_scope_frees_everything) {
  int64_t live = loom_debug_live_tensors(), bytes = loom_debug_live_bytes();
  loom_scope *s = loom_scope_begin();
  loom_tensor *x = loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(64, 64));
  loom_tensor *y = loom_tanh(loom_add(loom_matmul(x, x), x));
  loom_split(loom_t(y), 10, 0, (loom_tensor *[8]){NULL}, 8);
  ck_assert_int_gt(loom_debug_live_tensors(), live);
  ck_assert_int_ge(loom_debug_live_bytes(), bytes + 3 * 64 * 64 * 4);
  loom_scope_end(s);
  ck_assert_int_eq(loom_debug_live_tensors(), live);
  ck_assert_int_eq(loom_debug_live_bytes(), bytes);
}
END_TEST

START_TEST(test_keep_release_autorelease) {
  int64_t live = loom_debug_live_tensors();
  loom_scope *s = loom_scope_begin();
  loom_tensor *kept = loom_keep(loom_full(LOOM_F64, 4, LOOM_SHAPE(3)));
  loom_tensor *view = loom_keep(loom_narrow(kept, 0, 1, 2));
  loom_scope_end(s);
  ck_assert_int_eq(loom_debug_live_tensors(), live + 2);
  CHECK_VALUES(kept, 0, 4, 4, 4);
  loom_release(kept); /* the view keeps the storage alive */
  CHECK_VALUES(view, 0, 4, 4);
  s = loom_scope_begin();
  ck_assert_ptr_eq(loom_autorelease(view), view); /* the scope owns it now */
  loom_scope_end(s);
  ck_assert_int_eq(loom_debug_live_tensors(), live);
  ck_assert_ptr_null(loom_keep(NULL));
  loom_release(NULL);
}
END_TEST

START_TEST(test_nested_scopes) {
  int64_t live = loom_debug_live_tensors();
  loom_scope *outer = loom_scope_begin();
  loom_ones(LOOM_F32, LOOM_SHAPE(2));
  loom_scope *inner = loom_scope_begin();
  loom_ones(LOOM_F32, LOOM_SHAPE(3));
  loom_scope_begin(); /* never ended by hand */
  loom_ones(LOOM_F32, LOOM_SHAPE(4));
  loom_scope_end(outer); /* ends the inner ones too */
  ck_assert_int_eq(loom_debug_live_tensors(), live);
  ck_assert_int_eq(loom_last_status(), LOOM_OK);
  loom_scope_end(inner); /* already over */
  CHECK_ERROR(LOOM_ERR_STATE, "scope_end");
  /* results now go to the test's own scope, which is still open */
  loom_tensor *t = loom_ones(LOOM_F32, LOOM_SHAPE(2));
  ck_assert_int_eq(loom_debug_live_tensors(), live + 1);
  CHECK_VALUES(t, 0, 1, 1);
}
END_TEST

/* An ended scope's handle stays ended: the next scope opened at the same
 * depth reuses its record, and ending the old handle again (a double end
 * in a loop) ended the new scope and freed tensors its caller still
 * held. */
START_TEST(test_stale_scope_handle) {
  int64_t live = loom_debug_live_tensors();
  loom_scope *old = loom_scope_begin();
  loom_ones(LOOM_F32, LOOM_SHAPE(2));
  loom_scope_end(old);
  loom_scope *now = loom_scope_begin();
  ck_assert_ptr_ne(now, old);
  loom_tensor *t = loom_ones(LOOM_F32, LOOM_SHAPE(3));
  loom_scope_end(old);
  CHECK_ERROR(LOOM_ERR_STATE, "scope_end");
  ck_assert_int_eq(loom_debug_live_tensors(), live + 1);
  CHECK_VALUES(t, 0, 1, 1, 1);
  loom_tensor *k = loom_keep(loom_zeros(LOOM_F32, LOOM_SHAPE(1)));
  ck_assert_ptr_eq(loom_scope_return(old, k), k); /* refused, k kept */
  CHECK_ERROR(LOOM_ERR_STATE, "scope_end");
  ck_assert_int_eq(loom_debug_live_tensors(), live + 2);
  loom_scope_end(now);
  ck_assert_int_eq(loom_last_status(), LOOM_OK);
  ck_assert_int_eq(loom_debug_live_tensors(), live + 1); /* k, kept */
  loom_release(k);
  ck_assert_int_eq(loom_debug_live_tensors(), live);
}
END_TEST

/* A scope that loom_cleanup drained (and whose record it freed) is no
 * longer open: ending it, or returning through it, is refused without
 * reading the freed record (a read AddressSanitizer catches: the suite's
 * ASan run is what makes this test fail on the old code). */
START_TEST(test_scope_after_cleanup) {
  loom_scope *s = loom_scope_begin();
  loom_ones(LOOM_F32, LOOM_SHAPE(2));
  loom_cleanup();
  loom_scope_end(s);
  CHECK_ERROR(LOOM_ERR_STATE, "scope_end");
  loom_tensor *t = loom_keep(loom_ones(LOOM_F32, LOOM_SHAPE(3)));
  ck_assert_ptr_eq(loom_scope_return(s, t), t);
  CHECK_ERROR(LOOM_ERR_STATE, "scope_end");
  CHECK_VALUES(t, 0, 1, 1, 1);
  loom_release(t); /* the root scope holds the reference handed back */
  loom_cleanup();
}
END_TEST

/* The allocator's cache of big blocks (tensor/alloc.c), by default and
 * with a slack of 50 %, in a loop shaped like a training step: a block
 * whose size changes from step to step beside blocks of one size, all freed
 * at the step's end. From the second step on, the fixed-size blocks must
 * come back from the cache: a marker written into each before it was freed
 * is still there. (Blocks of 40 MiB come from mmap, so one handed back and
 * made again would be fresh, zeroed pages.) Under the eighth-of-live rule
 * (-1) a miss of the changing block, with few bytes live, evicts fixed-size
 * ones, which then miss in turn. Under AddressSanitizer nothing is cached,
 * so only the argument checks run. */
START_TEST(test_block_cache_keeps_steady_blocks) {
  ck_assert_int_eq(loom_set_cache_slack(-2), -1);
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "-1..1000");
  ck_assert_int_eq(loom_set_cache_slack(1001), -1);
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "-1..1000");
#if defined(__SANITIZE_ADDRESS__)
  return;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  return;
#endif
#endif
  const size_t mib = (size_t)1 << 20, mark_at = 20 * mib;
  const uint64_t mark = 0x6c6f6f6d;
  for (int step = 0; step < 24; step++) {
    /* From step 12 the same under an explicit slack, with blocks of a size
     * the cache holds none of yet. */
    if (step == 12)
      ck_assert_int_eq(loom_set_cache_slack(50), 0);
    size_t fixed = (step < 12 ? 40 : 48) * mib;
    size_t vb = (8 + (size_t)(step * 3 % 5)) * mib, fb[3];
    char *v = loom__block_alloc(&vb), *f[3];
    ck_assert_ptr_nonnull(v);
    for (int i = 0; i < 3; i++) {
      fb[i] = fixed;
      f[i] = loom__block_alloc(&fb[i]);
      ck_assert_ptr_nonnull(f[i]);
      uint64_t got;
      memcpy(&got, f[i] + mark_at, sizeof got);
      if (step % 12 > 0)
        ck_assert_msg(got == mark, "step %d: fixed block %d was not cached",
                      step, i);
      memcpy(f[i] + mark_at, &mark, sizeof mark);
    }
    loom__block_free(v, vb);
    for (int i = 0; i < 3; i++)
      loom__block_free(f[i], fb[i]);
  }
  ck_assert_int_eq(loom_set_cache_slack(LOOM_CACHE_SLACK_DEFAULT), 0);
}
END_TEST

/* ------------------------------------------------------------ errors */

START_TEST(test_null_propagates_first_error_wins) {
  loom_tensor *a = loom_ones(LOOM_F32, LOOM_SHAPE(2, 3));
  loom_tensor *bad = loom_reshape(a, LOOM_SHAPE(4, 4));
  ck_assert_ptr_null(bad);
  char first[512];
  snprintf(first, sizeof first, "%s", loom_last_error());
  ck_assert(strstr(first, "reshape") && strstr(first, "[2, 3]") &&
            strstr(first, "[4, 4]"));
  /* every op given NULL returns NULL and leaves the first error alone */
  ck_assert_ptr_null(loom_add(bad, a));
  ck_assert_ptr_null(loom_matmul(a, bad));
  ck_assert_ptr_null(loom_sum(bad, NULL, 0, false));
  ck_assert_ptr_null(loom_transpose(bad, 0, 1));
  ck_assert_ptr_null(loom_to_dtype(bad, LOOM_F64));
  ck_assert_ptr_null(loom_softmax(bad, 0));
  ck_assert_ptr_null(loom_zeros_like(bad));
  ck_assert_int_eq(loom_split(bad, 1, 0, NULL, 0), -1);
  ck_assert(isnan(loom_item(bad)));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_SHAPE);
  ck_assert_str_eq(loom_last_error(), first);
  /* a second real failure does not overwrite it either */
  loom_transpose(a, 0, 9);
  ck_assert_str_eq(loom_last_error(), first);
  loom_set_error(LOOM_ERR_IO, "user %d", 1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_SHAPE);
  loom_clear_error();
  ck_assert_str_eq(loom_last_error(), "");
  loom_set_error(LOOM_ERR_IO, "user %d", 2);
  CHECK_ERROR(LOOM_ERR_IO, "user 2");
}
END_TEST

/* NULL output buffers and streams are refused with an error naming the
 * function (they had been written through: a crash), and zero elements
 * copy into a NULL array (memcpy's convention; it had been refused as "bad
 * dtype 1 or NULL argument"). */
START_TEST(test_null_outputs_refused) {
  loom_tensor *t = loom_zeros(LOOM_F32, LOOM_SHAPE(2));
  char buf[32];
  ck_assert_ptr_null(loom_shape_str(t, NULL, 10));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "shape_str");
  ck_assert_ptr_null(loom_format_shape(2, (const int64_t[]){2, 3}, NULL, 16));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "format_shape");
  ck_assert_ptr_null(loom_format_shape(2, NULL, buf, sizeof buf));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "format_shape");
  ck_assert_str_eq(loom_format_shape(0, NULL, buf, sizeof buf), "[]");
  ck_assert_str_eq(loom_shape_str(NULL, buf, sizeof buf), "(null)");
  ck_assert_uint_eq(loom_format(t, NULL, 100), 0);
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "format");
  /* (NULL, 0) asks for the length only */
  ck_assert_uint_eq(loom_format(t, NULL, 0), strlen("tensor([0., 0.])"));
  ck_assert_int_eq(loom_last_status(), LOOM_OK);
  loom_fprint(NULL, t);
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "fprint");

  loom_tensor *empty = loom_zeros(LOOM_F32, LOOM_SHAPE(0, 3));
  ck_assert_int_eq(loom_copy_to_array(empty, LOOM_F32, NULL, 0), 0);
  ck_assert_int_eq(loom_last_status(), LOOM_OK);
  ck_assert_int_eq(loom_copy_to_array(t, LOOM_F32, NULL, 2), -1);
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "NULL dst");
  float out[2];
  ck_assert_int_eq(loom_copy_to_array(t, (loom_dtype)99, out, 2), -1);
  CHECK_ERROR(LOOM_ERR_DTYPE, "unknown dtype 99");

  /* these queries answer NULL without an error, as their header says */
  ck_assert_int_eq(loom_numel(NULL), 0);
  ck_assert_int_eq(loom_dtype_of(NULL), LOOM_DTYPE_DEFAULT);
  ck_assert(!loom_is_contiguous(NULL));
  ck_assert_int_eq(loom_last_status(), LOOM_OK);
}
END_TEST

START_TEST(test_bad_dims_and_items) {
  loom_tensor *x = loom_ones(LOOM_F32, LOOM_SHAPE(2, 3));
  ck_assert_ptr_null(loom_sum(x, (const int[]){2}, 1, false));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "sum: dim 2 out of range");
  ck_assert_ptr_null(loom_mean(x, (const int[]){-3}, 1, false));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "dim -3");
  ck_assert_ptr_null(loom_sum(x, (const int[]){1, -1}, 2, false));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "repeated");
  ck_assert_ptr_null(loom_softmax(x, 2));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "softmax");
  ck_assert_ptr_null(loom_select(x, 5, 0));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "select");
  ck_assert_int_eq(loom_size(x, 2), -1);
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "size");
  ck_assert_int_eq(loom_size(x, -1), 3);

  ck_assert(isnan(loom_item(x)));
  CHECK_ERROR(LOOM_ERR_SHAPE, "item");
  ck_assert_double_eq(loom_item(loom_full(LOOM_I64, -4, LOOM_SHAPE(1, 1))), -4);
  ck_assert(isnan(loom_get(x, (int64_t[]){2, 0})));
  CHECK_ERROR(LOOM_ERR_INDEX, "get");
  ck_assert_int_eq(loom_set(x, (int64_t[]){0, -1}, 1), -1);
  CHECK_ERROR(LOOM_ERR_INDEX, "set");
  ck_assert_int_eq(loom_ndim(NULL), -1);
  ck_assert_int_eq(loom_numel(NULL), 0);
  ck_assert(!loom_same_shape(x, NULL));
  char buf[32];
  ck_assert_str_eq(loom_shape_str(x, buf, sizeof buf), "[2, 3]");
  ck_assert_str_eq(loom_shape_str(loom_scalar(LOOM_F32, 0), buf, sizeof buf),
                   "[]");
}
END_TEST

/* ------------------------------------------------------------ printing */

static const char *fmt(const loom_tensor *t) {
  static char buf[8192];
  size_t n = loom_format(t, buf, sizeof buf);
  ck_assert_uint_lt(n, sizeof buf);
  return buf;
}

START_TEST(test_format_like_pytorch) {
  ck_assert_str_eq(fmt(VEC(LOOM_F32, 1, 2, 3)), "tensor([1., 2., 3.])");
  ck_assert_str_eq(fmt(loom_reshape(IVEC(1, 2, 3, 4), LOOM_SHAPE(2, 2))),
                   "tensor([[1, 2],\n        [3, 4]])");
  ck_assert_str_eq(fmt(VEC(LOOM_BOOL, 1, 0)), "tensor([ True, False])");
  ck_assert_str_eq(fmt(VEC(LOOM_F32, 0.5, -1.25)),
                   "tensor([ 0.5000, -1.2500])");
  ck_assert_str_eq(fmt(VEC(LOOM_F64, 1, 2)),
                   "tensor([1., 2.], dtype=torch.float64)");
  ck_assert_str_eq(fmt(VEC(LOOM_U8, 1, 2)),
                   "tensor([1, 2], dtype=torch.uint8)");
  ck_assert_str_eq(fmt(loom_scalar(LOOM_F32, 3)), "tensor(3.)");
  ck_assert_str_eq(fmt(loom_scalar(LOOM_I64, -7)), "tensor(-7)");
  ck_assert_str_eq(fmt(VEC(LOOM_I32, -2147483648.0, 7)),
                   "tensor([-2147483648,           7], dtype=torch.int32)");
  /* int64 prints exactly, not through a double (where 2^63 - 1 rounds to
   * 2^63, which no int64 holds) */
  ck_assert_str_eq(fmt(IVEC(INT64_MAX, (1ll << 62) + 1)),
                   "tensor([9223372036854775807, 4611686018427387905])");
  ck_assert_str_eq(fmt(IVEC(INT64_MIN, 5)),
                   "tensor([-9223372036854775808,                    5])");
  ck_assert_str_eq(fmt(VEC(LOOM_F32, 1e-5, 1)),
                   "tensor([1.0000e-05, 1.0000e+00])");
  ck_assert_str_eq(fmt(VEC(LOOM_F32, 1, 10000)),
                   "tensor([1.0000e+00, 1.0000e+04])");
  ck_assert_str_eq(fmt(VEC(LOOM_F32, 1, INFINITY)), "tensor([1., inf])");
  ck_assert_str_eq(fmt(VEC(LOOM_F32, NAN, 1.5)), "tensor([   nan, 1.5000])");
  ck_assert_str_eq(fmt(VEC(LOOM_F32, 0, 0)), "tensor([0., 0.])");
  ck_assert_str_eq(fmt(loom_zeros(LOOM_F32, LOOM_SHAPE(0))), "tensor([])");
  ck_assert_str_eq(fmt(loom_zeros(LOOM_F64, LOOM_SHAPE(2, 0))),
                   "tensor([], size=(2, 0), dtype=torch.float64)");
  ck_assert_str_eq(
      fmt(loom_t(loom_reshape(VEC(LOOM_F64, 1.5, 2, 3, 4), LOOM_SHAPE(2, 2)))),
      "tensor([[1.5000, 3.0000],\n"
      "        [2.0000, 4.0000]], dtype=torch.float64)");
  /* rows wrap at 80 columns */
  ck_assert_str_eq(fmt(loom_arange(LOOM_F32, 0, 1, 0.1)),
                   "tensor([0.0000, 0.1000, 0.2000, 0.3000, 0.4000, 0.5000, "
                   "0.6000, 0.7000, 0.8000,\n        0.9000])");
  /* with float64 as the default dtype, float32 is the one that is named */
  loom_set_default_dtype(LOOM_F64);
  ck_assert_str_eq(fmt(VEC(LOOM_F32, 2)), "tensor([2.], dtype=torch.float32)");
  loom_set_default_dtype(LOOM_F32);
  ck_assert_str_eq(fmt(NULL), "(null)");
}
END_TEST

START_TEST(test_format_summarises) {
  const char *all = fmt(loom_arange(LOOM_I64, 0, 1000, 1)); /* not cut */
  ck_assert_ptr_null(strstr(all, "..."));
  const char *tail = "993,\n        994, 995, 996, 997, 998, 999])";
  ck_assert_str_eq(all + strlen(all) - strlen(tail), tail);
  ck_assert_str_eq(fmt(loom_arange(LOOM_I64, 0, 2000, 1)),
                   "tensor([   0,    1,    2,  ..., 1997, 1998, 1999])");
  const char *m = fmt(
      loom_reshape(loom_arange(LOOM_F64, 0, 1200, 0.5), LOOM_SHAPE(40, 60)));
  const char *want =
      "tensor([[0.0000e+00, 5.0000e-01, 1.0000e+00,  ..., 2.8500e+01, "
      "2.9000e+01,\n         2.9500e+01],\n"
      "        [3.0000e+01, 3.0500e+01, 3.1000e+01,  ..., 5.8500e+01, "
      "5.9000e+01,\n         5.9500e+01],\n"
      "        [6.0000e+01, 6.0500e+01, 6.1000e+01,  ..., 8.8500e+01, "
      "8.9000e+01,\n         8.9500e+01],\n"
      "        ...,\n";
  ck_assert_msg(strncmp(m, want, strlen(want)) == 0, "got:\n%s", m);
  const char *cube = fmt(
      loom_reshape(loom_arange(LOOM_I64, 0, 3000, 1), LOOM_SHAPE(10, 10, 30)));
  ck_assert_ptr_nonnull(strstr(cube, " [ 870,  871,  872,  ...,  897,  898,  "
                                     "899]],\n\n        ...,\n\n        "
                                     "[[2100, 2101,"));
  /* truncation: the length it would need, and a terminated prefix */
  char small[8];
  ck_assert_uint_eq(loom_format(VEC(LOOM_F32, 1, 2, 3), small, sizeof small),
                    strlen("tensor([1., 2., 3.])"));
  ck_assert_str_eq(small, "tensor(");
}
END_TEST

/* ------------------------------------------------------------ comparing */

START_TEST(test_allclose_and_equal) {
  loom_tensor *a = VEC(LOOM_F64, 1, 2, NAN);
  loom_tensor *b = VEC(LOOM_F32, 1, 2.0001, NAN);
  ck_assert(loom_allclose(a, b, 1e-4, 0));
  ck_assert(!loom_allclose(a, b, 1e-5, 0));
  ck_assert(loom_allclose(a, b, 0, 2e-4));
  ck_assert(!loom_equal(a, b));
  ck_assert(loom_equal(a, loom_clone(a))); /* NaN equals NaN here */
  ck_assert(loom_equal(IVEC(1, 2), VEC(LOOM_F32, 1, 2)));
  ck_assert(!loom_equal(IVEC(1, 2), IVEC(1, 3)));
  ck_assert(!loom_allclose(a, VEC(LOOM_F64, 1, 2), 1, 1)); /* shapes */
  /* an infinity is close to itself alone: rtol |inf| had taken any
   * finite value (torch.isclose agrees) */
  loom_tensor *inf = VEC(LOOM_F64, INFINITY, -INFINITY);
  ck_assert(loom_allclose(inf, loom_clone(inf), 0.1, 0));
  ck_assert(!loom_allclose(VEC(LOOM_F64, 1e300, -1e300), inf, 0.1, 1));
  ck_assert(!loom_allclose(inf, VEC(LOOM_F64, -INFINITY, INFINITY), 0.1, 1));
  ck_assert(!loom_allclose(IVEC(5, 5), inf, 0.1, 1));
  ck_assert(!loom_allclose(inf, IVEC(5, 5), 0.1, INFINITY));
  ck_assert(
      !loom_equal(IVEC(1, 2), loom_reshape(IVEC(1, 2), LOOM_SHAPE(2, 1))));
  ck_assert(!loom_allclose(NULL, a, 1, 1));
  ck_assert(!loom_equal(a, NULL));
  /* strided operands are compared element by element */
  loom_tensor *m = loom_reshape(range_f64(6), LOOM_SHAPE(2, 3));
  ck_assert(loom_equal(loom_t(m), loom_contiguous(loom_t(m))));
  ck_assert(
      !loom_equal(loom_t(m), loom_reshape(range_f64(6), LOOM_SHAPE(3, 2))));
  ck_assert(
      loom_allclose(VEC(LOOM_F64, INFINITY), VEC(LOOM_F64, INFINITY), 0, 0));
}
END_TEST

START_TEST(test_integers_compared_exactly) {
  /* each pair differs by 1 but is the same double */
  loom_tensor *a = IVEC(INT64_MAX, (1ll << 62) + 1, INT64_MIN + 1);
  loom_tensor *b = IVEC(INT64_MAX - 1, 1ll << 62, INT64_MIN);
  ck_assert(!loom_equal(a, b));
  ck_assert(loom_equal(a, loom_clone(a)));
  ck_assert(!loom_allclose(a, b, 0, 0));
  ck_assert(!loom_allclose(a, b, 0, 0.99));
  ck_assert(loom_allclose(a, b, 0, 1));
  ck_assert(loom_allclose(a, loom_clone(a), 0, 0));
  /* the extremes are 2^64 - 1 apart, more than an int64 holds */
  ck_assert(!loom_allclose(IVEC(INT64_MIN), IVEC(INT64_MAX), 0, 1e19));
  ck_assert(loom_allclose(IVEC(INT64_MIN), IVEC(INT64_MAX), 0, 2e19));
  ck_assert(loom_allclose(IVEC(INT64_MIN), IVEC(INT64_MAX), 2, 0));
  ck_assert(!loom_allclose(IVEC(1, 2), IVEC(1, 3), NAN, 0));
  /* against a float, the integer's exact value counts */
  loom_tensor *f = VEC(LOOM_F64, 0x1p62, 0x1p63, -0x1p63);
  loom_tensor *i = IVEC(1ll << 62, INT64_MAX, INT64_MIN);
  ck_assert(loom_equal(i, IVEC(1ll << 62, INT64_MAX, INT64_MIN)));
  ck_assert(!loom_equal(i, f)); /* INT64_MAX is 1 below 2^63 */
  ck_assert(!loom_equal(f, i));
  ck_assert(!loom_allclose(i, f, 0, 0));
  ck_assert(loom_allclose(i, f, 0, 1));
  ck_assert(!loom_equal(IVEC((1ll << 62) + 1), VEC(LOOM_F64, 0x1p62)));
  ck_assert(loom_allclose(IVEC(3), VEC(LOOM_F32, 3.25), 0, 0.25));
  ck_assert(!loom_allclose(IVEC(3), VEC(LOOM_F32, 3.25), 0, 0.2));
  ck_assert(!loom_allclose(IVEC(3), VEC(LOOM_F32, NAN), 1, 1));
  /* uint8, bool and int32 against int64 */
  ck_assert(loom_equal(VEC(LOOM_U8, 255, 0), IVEC(255, 0)));
  ck_assert(loom_equal(VEC(LOOM_BOOL, 1, 0), VEC(LOOM_I32, 1, 0)));
  ck_assert(!loom_equal(VEC(LOOM_I32, -1), VEC(LOOM_U8, 255)));
}
END_TEST

int main(void) {
  Suite *s = suite_create("tensor");
  struct {
    const char *name;
    const TTest *tests[16];
  } cases[] = {
      {"create",
       {test_constant_fills, test_arange, test_linspace, test_eye,
        test_from_array_and_back, test_from_buffer_views_and_release,
        test_from_buffer_checks_strides}},
      {"random",
       {test_rng_known_stream, test_same_seed_same_tensors, test_randn_moments,
        test_randn_refuses_bad_arguments, test_rand_bounds,
        test_rand_refuses_empty_ranges, test_randint_bernoulli_randperm,
        test_rng_state_round_trip}},
      {"dtypes",
       {test_dtype_queries, test_conversions_saturate, test_int32_dtype,
        test_int32_conversions, test_promotion, test_scalar_operands}},
      {"views",
       {test_reshape_and_view, test_transpose_permute_t,
        test_narrow_slice_select, test_squeeze_unsqueeze_expand_flatten,
        test_writes_through_views}},
      {"copies",
       {test_contiguous_clone_copy, test_concat_and_stack,
        test_split_and_chunk}},
      {"memory",
       {test_scope_frees_everything, test_keep_release_autorelease,
        test_nested_scopes, test_stale_scope_handle, test_scope_after_cleanup,
        test_block_cache_keeps_steady_blocks}},
      {"errors",
       {test_null_propagates_first_error_wins, test_bad_dims_and_items,
        test_null_outputs_refused}},
      {"print", {test_format_like_pytorch, test_format_summarises}},
      {"compare", {test_allclose_and_equal, test_integers_compared_exactly}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    TCase *tc = tcase_create(cases[i].name);
    tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
    for (int j = 0; cases[i].tests[j]; j++)
      tcase_add_test(tc, cases[i].tests[j]);
    suite_add_tcase(s, tc);
  }
  return loom_run_suite(s);
}
