/* Ops that move, repeat or mask elements: flip, roll, tril/triu and
 * masked_select. Values on small examples worked by hand, strided and
 * integer inputs, the edges of their arguments and every error. PyTorch's
 * values on other cases are in test_ops_parity.c, gradchecks in
 * test_gradcheck.c. */
#include "check_values.h"

#include <stdint.h>

/* 0, 1, ..., n-1 in `shape`, as `dtype`. */
static loom_tensor *counting(loom_dtype dtype, int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++)
    n *= shape[i];
  return loom_reshape(loom_arange(dtype, 0, (double)n, 1), ndim, shape);
}

/* A result is fresh memory: filling it leaves the input as it was. */
static void check_fresh(loom_tensor *result, const loom_tensor *input) {
  loom_tensor *before = loom_clone(input);
  ck_assert_loom(loom_fill_(result, -99));
  ck_assert(loom_equal(input, before));
}

/* ------------------------------------------------------------ flip */

START_TEST(test_flip) {
  loom_tensor *x = counting(LOOM_F32, LOOM_SHAPE(2, 3));
  CHECK_VALUES(loom_flip(x, (int[]){1}, 1), 0, 2, 1, 0, 5, 4, 3);
  CHECK_VALUES(loom_flip(x, (int[]){0}, 1), 0, 3, 4, 5, 0, 1, 2);
  CHECK_VALUES(loom_flip(x, (int[]){-1, 0}, 2), 0, 5, 4, 3, 2, 1, 0);
  /* a transposed view, and int64 */
  loom_tensor *xt = loom_t(counting(LOOM_I64, LOOM_SHAPE(2, 3)));
  loom_tensor *f = loom_flip(xt, (int[]){0}, 1);
  CHECK_SHAPE(f, 3, 2);
  ck_assert_int_eq(loom_dtype_of(f), LOOM_I64);
  CHECK_VALUES(f, 0, 2, 5, 1, 4, 0, 3);
  /* no dims, size-1 dims and a 0-dim tensor: copies */
  check_fresh(loom_flip(x, NULL, 0), x);
  loom_tensor *row = counting(LOOM_F64, LOOM_SHAPE(1, 3));
  check_fresh(loom_flip(row, (int[]){0}, 1), row);
  loom_tensor *s = loom_scalar(LOOM_F64, 4);
  CHECK_SCALAR_SHAPE(loom_flip(s, (int[]){-1}, 1));
  check_fresh(loom_flip(s, (int[]){0}, 1), s);
  check_fresh(loom_flip(x, (int[]){1}, 1), x);
  /* an empty dim */
  CHECK_SHAPE(loom_flip(loom_zeros(LOOM_F32, LOOM_SHAPE(0, 2)), (int[]){0}, 1),
              0, 2);

  ck_assert_ptr_null(loom_flip(x, (int[]){1, -1}, 2));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "flip: dim 1 named twice");
  ck_assert_ptr_null(loom_flip(x, (int[]){2}, 1));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "flip: dim 2 out of range");
  ck_assert_ptr_null(loom_flip(x, NULL, 1));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "flip: NULL argument");
}
END_TEST

/* ------------------------------------------------------------ roll */

START_TEST(test_roll) {
  loom_tensor *v = counting(LOOM_F64, LOOM_SHAPE(5));
  CHECK_VALUES(loom_roll(v, (int64_t[]){2}, (int[]){0}, 1), 0, 3, 4, 0, 1, 2);
  CHECK_VALUES(loom_roll(v, (int64_t[]){-2}, (int[]){0}, 1), 0, 2, 3, 4, 0, 1);
  CHECK_VALUES(loom_roll(v, (int64_t[]){12}, NULL, 1), 0, 3, 4, 0, 1, 2);
  /* shifts at the ends of int64: INT64_MAX = 2 mod 5, INT64_MIN = 2 mod 5 */
  CHECK_VALUES(loom_roll(v, (int64_t[]){INT64_MAX}, (int[]){0}, 1), 0, 3, 4, 0,
               1, 2);
  CHECK_VALUES(loom_roll(v, (int64_t[]){INT64_MIN}, (int[]){0}, 1), 0, 3, 4, 0,
               1, 2);
  /* flattened: the last element comes first, the shape stays */
  loom_tensor *m = counting(LOOM_I64, LOOM_SHAPE(2, 3));
  loom_tensor *r = loom_roll(m, (int64_t[]){1}, NULL, 1);
  CHECK_SHAPE(r, 2, 3);
  CHECK_VALUES(r, 0, 5, 0, 1, 2, 3, 4);
  /* each dim of a transposed view (3 x 2: 0 3 / 1 4 / 2 5) */
  CHECK_VALUES(loom_roll(loom_t(m), (int64_t[]){1, 1}, (int[]){0, -1}, 2), 0, 5,
               2, 3, 0, 4, 1);
  /* whole turns, empty and 0-dim tensors: copies */
  check_fresh(loom_roll(v, (int64_t[]){-10}, (int[]){0}, 1), v);
  check_fresh(loom_roll(m, (int64_t[]){6}, NULL, 1), m);
  CHECK_SHAPE(loom_roll(loom_zeros(LOOM_F32, LOOM_SHAPE(0, 3)),
                        (int64_t[]){2, 1}, (int[]){0, 1}, 2),
              0, 3);
  loom_tensor *s = loom_scalar(LOOM_F32, 3);
  CHECK_VALUES(loom_roll(s, (int64_t[]){4}, (int[]){0}, 1), 0, 3);
  CHECK_VALUES(loom_roll(s, (int64_t[]){4}, NULL, 1), 0, 3);

  ck_assert_ptr_null(loom_roll(v, (int64_t[]){1, 2}, NULL, 2));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "roll: 2 shifts");
  ck_assert_ptr_null(loom_roll(v, (int64_t[]){1}, (int[]){0}, 0));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "roll: 0 shifts");
  ck_assert_ptr_null(loom_roll(m, (int64_t[]){1}, (int[]){-3}, 1));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "roll: dim -3 out of range");
  ck_assert_ptr_null(loom_roll(m, NULL, (int[]){0}, 1));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "roll: NULL argument");
}
END_TEST

/* ------------------------------------------------------------ tril, triu */

START_TEST(test_triangles) {
  loom_tensor *m = loom_add_scalar(counting(LOOM_F32, LOOM_SHAPE(3, 4)), 1);
  CHECK_VALUES(loom_tril(m, 0), 0, 1, 0, 0, 0, 5, 6, 0, 0, 9, 10, 11, 0);
  CHECK_VALUES(loom_triu(m, 0), 0, 1, 2, 3, 4, 0, 6, 7, 8, 0, 0, 11, 12);
  CHECK_VALUES(loom_tril(m, 1), 0, 1, 2, 0, 0, 5, 6, 7, 0, 9, 10, 11, 12);
  CHECK_VALUES(loom_triu(m, -1), 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 10, 11, 12);
  /* diagonals beyond any matrix */
  CHECK_VALUES(loom_tril(m, INT64_MIN), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  check_fresh(loom_tril(m, INT64_MAX), m);
  CHECK_VALUES(loom_triu(m, INT64_MAX), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  check_fresh(loom_triu(m, INT64_MIN), m);
  /* every matrix of a batch, through a transposed view, in int64 */
  loom_tensor *b = loom_transpose(counting(LOOM_I64, LOOM_SHAPE(2, 2, 2)), 1,
                                  2); /* [[0 2] [1 3]], [[4 6] [5 7]] */
  loom_tensor *lower = loom_tril(b, 0);
  ck_assert_int_eq(loom_dtype_of(lower), LOOM_I64);
  CHECK_VALUES(lower, 0, 0, 0, 1, 3, 4, 0, 5, 7);
  /* bool */
  CHECK_VALUES(loom_triu(loom_ones(LOOM_BOOL, LOOM_SHAPE(2, 2)), 1), 0, 0, 1, 0,
               0);
  /* no elements, whatever the matrix size would be */
  CHECK_SHAPE(
      loom_tril(loom_zeros(LOOM_F32, LOOM_SHAPE(0, 1 << 29, 1 << 29)), 0), 0,
      1 << 29, 1 << 29);

  ck_assert_ptr_null(loom_tril(VEC(LOOM_F32, 1, 2), 0));
  CHECK_ERROR(LOOM_ERR_SHAPE, "tril: needs at least 2 dims, got [2]");
  ck_assert_ptr_null(loom_triu(loom_scalar(LOOM_F32, 1), 0));
  CHECK_ERROR(LOOM_ERR_SHAPE, "triu: needs at least 2 dims, got []");
  ck_assert_ptr_null(loom_triu(NULL, 0));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "triu: NULL argument");
}
END_TEST

/* ------------------------------------------------------------ masked_select */

START_TEST(test_masked_select) {
  loom_tensor *x = counting(LOOM_F64, LOOM_SHAPE(2, 3));
  loom_tensor *picked = loom_masked_select(x, loom_gt_scalar(x, 2.5));
  CHECK_SHAPE(picked, 3);
  CHECK_VALUES(picked, 0, 3, 4, 5);
  /* a mask broadcast over rows; a transposed input (0 3 / 1 4 / 2 5) */
  CHECK_VALUES(loom_masked_select(x, VEC(LOOM_BOOL, 1, 0, 1)), 0, 0, 2, 3, 5);
  CHECK_VALUES(loom_masked_select(loom_t(x), VEC(LOOM_U8, 0, 1)), 0, 3, 4, 5);
  /* an input broadcast by the mask: its elements picked once per use, and
   * their gradients added up */
  loom_tensor *col = loom_set_requires_grad(
      loom_from_array(LOOM_F64, (double[]){10, 20}, LOOM_SHAPE(2, 1)), true);
  loom_tensor *mask = loom_from_array(LOOM_BOOL, (uint8_t[]){1, 1, 0, 0, 1, 1},
                                      LOOM_SHAPE(2, 3));
  loom_tensor *y = loom_masked_select(col, mask);
  CHECK_VALUES(y, 0, 10, 10, 20, 20);
  ck_assert_int_eq(
      loom_backward(loom_sum_all(loom_mul(y, VEC(LOOM_F64, 1, 2, 3, 4)))), 0);
  CHECK_VALUES(loom_grad(col), 0, 3, 7);
  /* nothing selected */
  CHECK_SHAPE(loom_masked_select(x, loom_zeros(LOOM_BOOL, LOOM_SHAPE(3))), 0);
  CHECK_VALUES(
      loom_masked_select(loom_scalar(LOOM_I64, 7), loom_scalar(LOOM_BOOL, 1)),
      0, 7);

  ck_assert_ptr_null(loom_masked_select(x, VEC(LOOM_F32, 1, 0, 1)));
  CHECK_ERROR(LOOM_ERR_DTYPE, "masked_select: mask must be bool, got float32");
  ck_assert_ptr_null(loom_masked_select(x, VEC(LOOM_BOOL, 1, 0)));
  CHECK_ERROR(LOOM_ERR_SHAPE, "masked_select");
  ck_assert_ptr_null(loom_masked_select(NULL, VEC(LOOM_BOOL, 1, 0)));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "masked_select: NULL argument");
}
END_TEST

int main(void) {
  Suite *s = suite_create("shape_ops");
  TCase *tc = tcase_create("shape_ops");
  tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
  tcase_add_test(tc, test_flip);
  tcase_add_test(tc, test_roll);
  tcase_add_test(tc, test_triangles);
  tcase_add_test(tc, test_masked_select);
  suite_add_tcase(s, tc);
  return loom_run_suite(s);
}
