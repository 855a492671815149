/* Scans and sorting: cumsum, cumprod, sort, argsort, topk. Values worked
 * by hand, the scan kernel against its composition (a product with a
 * triangle of ones) forward and backward, accumulation and overflow,
 * thread counts, stability, NaN and int64 keys, and every error. PyTorch's
 * values on other cases are in test_ops_parity.c, gradchecks in
 * test_gradcheck.c. */
#include "check_values.h"

#include <stdint.h>

static loom_tensor *leaf(loom_tensor *t) {
  return loom_set_requires_grad(t, true);
}

/* ------------------------------------------------------------ cumsum */

START_TEST(test_cumsum_values) {
  loom_tensor *m =
      loom_from_array(LOOM_F32, (float[]){1, 2, 3, 4, 5, 6}, LOOM_SHAPE(2, 3));
  CHECK_VALUES(loom_cumsum(m, 1), 0, 1, 3, 6, 4, 9, 15);
  CHECK_VALUES(loom_cumsum(m, 0), 0, 1, 2, 3, 5, 7, 9);
  CHECK_VALUES(loom_cumsum(m, -1), 0, 1, 3, 6, 4, 9, 15);
  /* a transposed view: its rows are m's columns */
  loom_tensor *c = loom_cumsum(loom_t(m), 1);
  CHECK_SHAPE(c, 3, 2);
  CHECK_VALUES(c, 0, 1, 5, 2, 7, 3, 9);
  /* integers and bools sum in int64, wrapping around as PyTorch's do */
  loom_tensor *b = loom_cumsum(VEC(LOOM_BOOL, 1, 0, 1, 1), 0);
  ck_assert_int_eq(loom_dtype_of(b), LOOM_I64);
  CHECK_VALUES(b, 0, 1, 1, 2, 3);
  loom_tensor *w = loom_cumsum(
      loom_from_array(LOOM_I64, (int64_t[]){INT64_MAX, 1, -2}, LOOM_SHAPE(3)),
      0);
  ck_assert_int_eq(loom_data_i64(w)[1], INT64_MIN);
  ck_assert_int_eq(loom_data_i64(w)[2], INT64_MAX - 1);
  /* float32 sums in double: 2^24 + 1 + 1 is exact, not 2^24 */
  loom_tensor *f = loom_cumsum(VEC(LOOM_F32, 16777216, 1, 1), 0);
  CHECK_VALUES(f, 0, 16777216, 16777216, 16777218);
  /* a 0-dim tensor and an empty one */
  CHECK_VALUES(loom_cumsum(loom_scalar(LOOM_F64, 2.5), -1), 0, 2.5);
  CHECK_SHAPE(loom_cumsum(loom_zeros(LOOM_F32, LOOM_SHAPE(3, 0)), 0), 3, 0);
  /* the gradient is the sum of g from the end */
  loom_tensor *x = leaf(VEC(LOOM_F64, 1, 2, 3, 4));
  ck_assert_int_eq(loom_backward(loom_sum_all(loom_mul(
                       loom_cumsum(x, 0), VEC(LOOM_F64, 1, 10, 100, 1000)))),
                   0);
  CHECK_VALUES(loom_grad(x), 0, 1111, 1110, 1100, 1000);

  ck_assert_ptr_null(loom_cumsum(m, 2));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "cumsum: dim 2 out of range for 2 dims");
  ck_assert_ptr_null(loom_cumprod(m, -3));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "cumprod: dim -3 out of range");
}
END_TEST

/* The kernel equals its composition, x @ triu(ones) along the last dim,
 * forward and backward, on lines wider and narrower than the kernel's
 * lanes, along every dim. */
START_TEST(test_cumsum_is_the_triangle_product) {
  loom_rng *g = loom_rng_new(11);
  loom_tensor *x = leaf(loom_randn(g, LOOM_F64, 0, 1, LOOM_SHAPE(3, 70, 130)));
  loom_tensor *r = loom_randn(g, LOOM_F64, 0, 1, LOOM_SHAPE(3, 70, 130));
  loom_rng_free(g);
  for (int d = 0; d < 3; d++) {
    int64_t n = loom_size(x, d);
    loom_tensor *ones = loom_triu(loom_ones(LOOM_F64, LOOM_SHAPE(n, n)), 0);
    loom_tensor *composed =
        loom_transpose(loom_matmul(loom_transpose(x, d, -1), ones), d, -1);
    ck_assert_int_eq(loom_backward(loom_sum_all(loom_mul(composed, r))), 0);
    loom_tensor *want = loom_clone(loom_grad(x));
    loom_zero_grad(x);
    loom_tensor *got = loom_cumsum(x, d);
    ck_assert(loom_allclose(got, composed, 1e-12, 1e-12));
    ck_assert_int_eq(loom_backward(loom_sum_all(loom_mul(got, r))), 0);
    ck_assert(loom_allclose(loom_grad(x), want, 1e-12, 1e-12));
    loom_zero_grad(x);
  }
}
END_TEST

/* Each line is one thread's: 1 and 2 threads give the same bits. */
START_TEST(test_scans_independent_of_threads) {
  loom_tensor *x = loom_randn(NULL, LOOM_F32, 1, 0.1, LOOM_SHAPE(300, 500));
  loom_set_num_threads(1);
  loom_tensor *s1 = loom_cumsum(x, 0), *p1 = loom_cumprod(x, 1);
  loom_set_num_threads(2);
  loom_tensor *s2 = loom_cumsum(x, 0), *p2 = loom_cumprod(x, 1);
  loom_set_num_threads(0);
  ck_assert(loom_equal(s1, s2));
  ck_assert(loom_equal(p1, p2));
}
END_TEST

/* ------------------------------------------------------------ cumprod */

START_TEST(test_cumprod) {
  loom_tensor *m = loom_from_array(LOOM_F64, (double[]){1, 2, 3, -1, 0.5, 4},
                                   LOOM_SHAPE(2, 3));
  CHECK_VALUES(loom_cumprod(m, 1), 0, 1, 2, 6, -1, -0.5, -2);
  CHECK_VALUES(loom_cumprod(m, 0), 0, 1, 2, 3, -1, 1, 12);
  loom_tensor *i = loom_cumprod(IVEC(3, -2, 5), 0);
  ck_assert_int_eq(loom_dtype_of(i), LOOM_I64);
  CHECK_VALUES(i, 0, 3, -6, -30);
  /* d y_j / d x_k = product of x_i, i <= j, i != k, through zeros: with
   * x = (2, 0, 3, 0, 5) and g = 1, x_0 gets 1 (from y_0), x_1 gets 2 + 2*3
   * (y_1, y_2; y_3 and y_4 hold x_3 = 0), the others nothing */
  loom_tensor *x = leaf(VEC(LOOM_F64, 2, 0, 3, 0, 5));
  loom_tensor *y = loom_cumprod(x, 0);
  CHECK_VALUES(y, 0, 2, 0, 0, 0, 0);
  ck_assert_int_eq(loom_backward(loom_sum_all(y)), 0);
  CHECK_VALUES(loom_grad(x), 0, 1, 8, 0, 0, 0);
  /* no zero: sums of the later products over x_k */
  loom_tensor *z = leaf(VEC(LOOM_F64, 2, -1, 3));
  ck_assert_int_eq(loom_backward(loom_sum_all(loom_cumprod(z, 0))), 0);
  CHECK_VALUES(loom_grad(z), 1e-15, 1 - 1 - 3, 2 + 6, -2);
  /* a line of one */
  loom_tensor *one = leaf(loom_full(LOOM_F64, 0, LOOM_SHAPE(2, 1)));
  ck_assert_int_eq(loom_backward(loom_sum_all(
                       loom_mul(loom_cumprod(one, 1), VEC(LOOM_F64, 3)))),
                   0);
  CHECK_VALUES(loom_grad(one), 0, 3, 3);
}
END_TEST

/* Second derivatives through exact zeros of the input itself (the
 * gradcheck suite's zeros come from a constant mask, which hides the
 * terms a first-order formula drops): the gradient recorded with
 * create_graph is the O(n^2) form. */
static int cumprod_of(loom_tensor *const *in, int n, loom_tensor **out, int max,
                      void *ctx) {
  (void)n, (void)max, (void)ctx;
  out[0] = loom_cumprod(in[0], -1);
  return out[0] ? 1 : -1;
}

START_TEST(test_cumprod_second_derivative_through_zeros) {
  loom_tensor *x = leaf(loom_from_array(
      LOOM_F64, (double[]){2, 0, 3, 0, 5, 0, -1.5, 0.5, 4, 1.25},
      LOOM_SHAPE(2, 5)));
  loom_gradcheck_result r;
  ck_assert_int_eq(loom_gradgradcheck(cumprod_of, NULL, &x, 1, NULL, &r), 1);
  /* d(sum y)/dx_1 = x_0 + x_0 x_2 + x_0 x_2 x_3 + x_0 x_2 x_3 x_4; its
   * derivative in x_3 is x_0 x_2 + x_0 x_2 x_4 = 36, though x_3 = 0 */
  loom_tensor *g;
  loom_tensor *y = loom_sum_all(loom_cumprod(x, -1));
  ck_assert_int_eq(loom_autograd_grad(&y, 1, &x, 1, NULL, &g,
                                      &(loom_grad_opts){.create_graph = true}),
                   0);
  loom_tensor *h;
  loom_tensor *g1 = loom_select(loom_select(g, 0, 0), 0, 1);
  ck_assert_int_eq(loom_autograd_grad(&g1, 1, &x, 1, NULL, &h, NULL), 0);
  CHECK_VALUES(h, 1e-15, 1 + 3, 0, 2, 2 * 3 + 2 * 3 * 5, 0, 0, 0, 0, 0, 0);
}
END_TEST

/* ------------------------------------------------------------ sort */

START_TEST(test_sort) {
  loom_tensor *v = VEC(LOOM_F64, 3, 1, NAN, 2, 1, -INFINITY, 3);
  loom_tensor *ix;
  CHECK_VALUES(loom_sort(v, 0, false, &ix), 0, -INFINITY, 1, 1, 2, 3, 3, NAN);
  ck_assert_int_eq(loom_dtype_of(ix), LOOM_I64);
  CHECK_VALUES(ix, 0, 5, 1, 4, 3, 0, 6, 2); /* ties in their order */
  CHECK_VALUES(loom_sort(v, 0, true, &ix), 0, NAN, 3, 3, 2, 1, 1, -INFINITY);
  CHECK_VALUES(ix, 0, 2, 0, 6, 3, 1, 4, 5);
  CHECK_VALUES(loom_argsort(v, -1, true), 0, 2, 0, 6, 3, 1, 4, 5);
  /* along dim 0 of a transposed view ([[4 1] [2 5] [2 0]]) */
  loom_tensor *m = loom_t(
      loom_from_array(LOOM_F32, (float[]){4, 2, 2, 1, 5, 0}, LOOM_SHAPE(2, 3)));
  loom_tensor *s = loom_sort(m, 0, false, &ix);
  CHECK_VALUES(s, 0, 2, 0, 2, 1, 4, 5);
  CHECK_VALUES(ix, 0, 1, 2, 2, 0, 0, 1);
  /* int64 keys beyond 2^53 stay apart; bools */
  int64_t big[] = {((int64_t)1 << 53) + 1, (int64_t)1 << 53, INT64_MIN,
                   INT64_MAX};
  CHECK_VALUES(
      loom_argsort(loom_from_array(LOOM_I64, big, LOOM_SHAPE(4)), 0, false), 0,
      2, 1, 0, 3);
  CHECK_VALUES(loom_argsort(VEC(LOOM_BOOL, 1, 0, 1, 0), 0, true), 0, 0, 2, 1,
               3);
  /* long lines (many merge passes, a ragged last run) stay sorted and
   * stable: 1000 values of 10 kinds */
  loom_tensor *kinds = loom_randint(NULL, LOOM_I64, 0, 10, LOOM_SHAPE(1000));
  loom_tensor *order = loom_argsort(kinds, 0, false);
  const int64_t *k = loom_data_i64(kinds), *o = loom_data_i64(order);
  for (int j = 1; j < 1000; j++)
    ck_assert(k[o[j - 1]] < k[o[j]] ||
              (k[o[j - 1]] == k[o[j]] && o[j - 1] < o[j]));
  /* 0-dim and empty */
  loom_tensor *seven = leaf(loom_scalar(LOOM_F64, 7));
  CHECK_VALUES(loom_sort(seven, 0, false, &ix), 0, 7);
  CHECK_SCALAR_SHAPE(ix);
  ck_assert_int_eq(
      loom_backward(loom_mul_scalar(loom_topk(seven, 1, -1, true, NULL), 3)),
      0);
  CHECK_VALUES(loom_grad(seven), 0, 3);
  CHECK_SHAPE(loom_argsort(loom_zeros(LOOM_F32, LOOM_SHAPE(0, 4)), 1, false), 0,
              4);
  /* the gradient goes back to where each value came from */
  loom_tensor *x = leaf(VEC(LOOM_F64, 0.5, -1, 2));
  ck_assert_int_eq(loom_backward(loom_sum_all(loom_mul(
                       loom_sort(x, 0, false, NULL), VEC(LOOM_F64, 1, 2, 3)))),
                   0);
  CHECK_VALUES(loom_grad(x), 0, 2, 1, 3);

  ix = v;
  ck_assert_ptr_null(loom_sort(v, 1, false, &ix));
  ck_assert_ptr_null(ix);
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "sort: dim 1 out of range");
  ck_assert_ptr_null(loom_argsort(v, -2, false));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "argsort: dim -2 out of range");
}
END_TEST

START_TEST(test_topk) {
  loom_tensor *m = loom_from_array(
      LOOM_F32, (float[]){5, 1, 4, 1, 9, 2, 6, 5, 3, 5}, LOOM_SHAPE(2, 5));
  loom_tensor *ix;
  loom_tensor *top = loom_topk(m, 2, 1, true, &ix);
  CHECK_SHAPE(top, 2, 2);
  CHECK_VALUES(top, 0, 9, 5, 6, 5);
  CHECK_VALUES(ix, 0, 4, 0, 1, 2); /* tie 5, 5: the first */
  CHECK_VALUES(loom_topk(m, 3, -1, false, &ix), 0, 1, 1, 4, 2, 3, 5);
  CHECK_VALUES(ix, 0, 1, 3, 2, 0, 3, 2);
  CHECK_VALUES(loom_topk(m, 1, 0, true, &ix), 0, 5, 6, 5, 3, 9);
  CHECK_VALUES(ix, 0, 0, 1, 1, 1, 0);
  CHECK_SHAPE(loom_topk(m, 0, 1, true, &ix), 2, 0);
  CHECK_SHAPE(ix, 2, 0);
  CHECK_VALUES(loom_topk(m, 5, 1, true, NULL), 0, 9, 5, 4, 1, 1, 6, 5, 5, 3, 2);
  /* the gradient reaches the chosen elements only */
  loom_tensor *x = leaf(VEC(LOOM_F64, 0.5, -1, 2, 3));
  ck_assert_int_eq(loom_backward(loom_sum_all(loom_topk(x, 2, 0, false, NULL))),
                   0);
  CHECK_VALUES(loom_grad(x), 0, 1, 1, 0, 0);

  ix = m;
  ck_assert_ptr_null(loom_topk(m, 6, 1, true, &ix));
  ck_assert_ptr_null(ix);
  CHECK_ERROR(LOOM_ERR_ARGUMENT,
              "topk: k = 6 outside 0..5, the size of dim 1 of [2, 5]");
  ck_assert_ptr_null(loom_topk(m, -1, 0, true, NULL));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "topk: k = -1 outside 0..2");
  ck_assert_ptr_null(loom_topk(m, 1, 2, true, NULL));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "topk: dim 2 out of range");
}
END_TEST

int main(void) {
  Suite *s = suite_create("scan_sort");
  TCase *tc = tcase_create("scan_sort");
  tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_cumsum_values);
  tcase_add_test(tc, test_cumsum_is_the_triangle_product);
  tcase_add_test(tc, test_scans_independent_of_threads);
  tcase_add_test(tc, test_cumprod);
  tcase_add_test(tc, test_cumprod_second_derivative_through_zeros);
  tcase_add_test(tc, test_sort);
  tcase_add_test(tc, test_topk);
  suite_add_tcase(s, tc);
  return loom_run_suite(s);
}
