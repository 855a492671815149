/* Ops that move, pad, repeat or mask elements: flip, roll, pad, repeat,
 * tile, tril/triu and masked_select. Values on small examples worked by hand,
 * strided and integer inputs, the edges of their arguments and every error.
 * PyTorch's values on other cases are in test_ops_parity.c, gradchecks in
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
  /* a negative count was taken as 0 */
  ck_assert_ptr_null(loom_flip(x, (int[]){0}, -1));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "flip: -1 dims (0 or more)");
  ck_assert_ptr_null(loom_flip(x, NULL, -1));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "flip: -1 dims");
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

/* ------------------------------------------------------------ pad */

#define PADS(...) (const int64_t[]){__VA_ARGS__}, (int)NARGS_I64(__VA_ARGS__)

START_TEST(test_pad_constant) {
  loom_tensor *v = counting(LOOM_F32, LOOM_SHAPE(3));
  CHECK_VALUES(loom_pad(v, PADS(1, 2), LOOM_PAD_CONSTANT, 7), 0, 7, 0, 1, 2, 7,
               7);
  /* two dims: the last first, then the one before; int64 */
  loom_tensor *m = counting(LOOM_I64, LOOM_SHAPE(2, 2));
  loom_tensor *p = loom_pad(m, PADS(1, 0, 0, 1), LOOM_PAD_CONSTANT, -1);
  CHECK_SHAPE(p, 3, 3);
  ck_assert_int_eq(loom_dtype_of(p), LOOM_I64);
  CHECK_VALUES(p, 0, -1, 0, 1, -1, 2, 3, -1, -1, -1);
  /* negative sizes crop; a transposed view */
  loom_tensor *w = counting(LOOM_F64, LOOM_SHAPE(4));
  CHECK_VALUES(loom_pad(w, PADS(-1, -1), LOOM_PAD_CONSTANT, 0), 0, 1, 2);
  CHECK_SHAPE(loom_pad(w, PADS(-3, -1), LOOM_PAD_CONSTANT, 0), 0);
  CHECK_VALUES(loom_pad(loom_t(m), PADS(0, 0, -1, 1), LOOM_PAD_CONSTANT, 9), 0,
               1, 3, 9, 9);
  /* nothing to pad: a copy */
  check_fresh(loom_pad(w, NULL, 0, LOOM_PAD_REFLECT, 0), w);
  check_fresh(loom_pad(w, PADS(0, 0), LOOM_PAD_CONSTANT, 0), w);

  ck_assert_ptr_null(loom_pad(w, PADS(-3, -2), LOOM_PAD_CONSTANT, 0));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "pad: constant padding (-3, -2) leaves dim 0 "
                                 "of [4] with -1 elements (at least 0)");
  ck_assert_ptr_null(loom_pad(w, PADS(1, 2, 3), LOOM_PAD_CONSTANT, 0));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "pad: 3 padding sizes for [4]");
  ck_assert_ptr_null(loom_pad(w, PADS(1, 2, 3, 4), LOOM_PAD_CONSTANT, 0));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "pad: 4 padding sizes for [4]");
  ck_assert_ptr_null(loom_pad(w, PADS(1, 1), (loom_pad_mode)7, 0));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "pad: unknown mode 7");
  ck_assert_ptr_null(loom_pad(w, PADS(INT64_MAX, 0), LOOM_PAD_CONSTANT, 0));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "pad: padding 9223372036854775807 outside");
  ck_assert_ptr_null(loom_pad(w, PADS(0, INT64_MIN), LOOM_PAD_REPLICATE, 0));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "pad: padding -9223372036854775808 outside");
  ck_assert_ptr_null(
      loom_pad(m, PADS(LOOM_MAX_ELEMENTS, 0), LOOM_PAD_CONSTANT, 0));
  CHECK_ERROR(LOOM_ERR_SHAPE, "too large");
}
END_TEST

START_TEST(test_pad_modes) {
  loom_tensor *v = counting(LOOM_F64, LOOM_SHAPE(5));
  CHECK_VALUES(loom_pad(v, PADS(2, 1), LOOM_PAD_REFLECT, 0), 0, 2, 1, 0, 1, 2,
               3, 4, 3);
  CHECK_VALUES(loom_pad(v, PADS(2, 1), LOOM_PAD_REPLICATE, 0), 0, 0, 0, 0, 1, 2,
               3, 4, 4);
  CHECK_VALUES(loom_pad(v, PADS(2, 1), LOOM_PAD_CIRCULAR, 0), 0, 3, 4, 0, 1, 2,
               3, 4, 0);
  /* cropping one side while padding the other pads from the uncropped
   * input, as PyTorch does */
  CHECK_VALUES(loom_pad(v, PADS(-3, 3), LOOM_PAD_REFLECT, 0), 0, 3, 4, 3, 2, 1);
  CHECK_VALUES(loom_pad(v, PADS(-6, 7), LOOM_PAD_REPLICATE, 0), 0, 4, 4, 4, 4,
               4, 4);
  CHECK_VALUES(loom_pad(v, PADS(4, 0), LOOM_PAD_REFLECT, 0), 0, 4, 3, 2, 1, 0,
               1, 2, 3, 4);
  CHECK_VALUES(loom_pad(v, PADS(0, 5), LOOM_PAD_CIRCULAR, 0), 0, 0, 1, 2, 3, 4,
               0, 1, 2, 3, 4);
  /* two dims of a transposed view, replicated: [[0 2] [1 3]] */
  loom_tensor *m = loom_t(counting(LOOM_I64, LOOM_SHAPE(2, 2)));
  CHECK_VALUES(loom_pad(m, PADS(1, 0, 0, 1), LOOM_PAD_REPLICATE, 0), 0, 0, 0, 2,
               1, 1, 3, 1, 1, 3);
  /* the gradient of replicated ends adds up there */
  loom_tensor *x = loom_set_requires_grad(VEC(LOOM_F64, 5, 6), true);
  ck_assert_int_eq(loom_backward(loom_sum_all(
                       loom_pad(x, PADS(2, 1), LOOM_PAD_REPLICATE, 0))),
                   0);
  CHECK_VALUES(loom_grad(x), 0, 3, 2);

  ck_assert_ptr_null(loom_pad(v, PADS(5, 0), LOOM_PAD_REFLECT, 0));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "pad: reflect padding (5, 0) must be less "
                                 "than the size 5 of dim 0 of [5]");
  ck_assert_ptr_null(loom_pad(v, PADS(-4, -1), LOOM_PAD_REFLECT, 0));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "leaves dim 0 of [5] with 0 elements (at "
                                 "least 1)");
  ck_assert_ptr_null(loom_pad(loom_zeros(LOOM_F32, LOOM_SHAPE(2, 0)),
                              PADS(1, 1), LOOM_PAD_REPLICATE, 0));
  CHECK_ERROR(LOOM_ERR_ARGUMENT,
              "pad: replicate padding of dim 1 of [2, 0], which is empty");
  ck_assert_ptr_null(loom_pad(v, PADS(6, 0), LOOM_PAD_CIRCULAR, 0));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "pad: circular padding (6, 0) must be 0 to "
                                 "the size 5 of dim 0 of [5]");
  ck_assert_ptr_null(loom_pad(v, PADS(-1, 2), LOOM_PAD_CIRCULAR, 0));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "pad: circular padding (-1, 2)");
  /* the result's size is checked before any positions are made */
  int64_t big = (int64_t)1 << 40;
  ck_assert_ptr_null(loom_pad(m, PADS(big, 0, big, 0), LOOM_PAD_REPLICATE, 0));
  CHECK_ERROR(LOOM_ERR_SHAPE, "pad: result [1099511627778, 1099511627778] too "
                              "large");
}
END_TEST

/* ------------------------------------------------------------ repeat, tile */

START_TEST(test_repeat_and_tile) {
  loom_tensor *v = VEC(LOOM_F32, 1, 2);
  loom_tensor *r = loom_repeat(v, 2, (int64_t[]){2, 3});
  CHECK_SHAPE(r, 2, 6);
  CHECK_VALUES(r, 0, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2);
  loom_tensor *col = loom_reshape(IVEC(1, 2), LOOM_SHAPE(2, 1));
  loom_tensor *rc = loom_repeat(col, 2, (int64_t[]){1, 3});
  ck_assert_int_eq(loom_dtype_of(rc), LOOM_I64);
  CHECK_VALUES(rc, 0, 1, 1, 1, 2, 2, 2);
  /* a transposed view ([[0 2] [1 3]]) along both dims */
  loom_tensor *m = loom_t(counting(LOOM_F64, LOOM_SHAPE(2, 2)));
  CHECK_VALUES(loom_repeat(m, 2, (int64_t[]){2, 2}), 0, 0, 2, 0, 2, 1, 3, 1, 3,
               0, 2, 0, 2, 1, 3, 1, 3);
  /* ones: a copy with the leading dims added; zeros: empty */
  loom_tensor *same = loom_repeat(m, 3, (int64_t[]){1, 1, 1});
  CHECK_SHAPE(same, 1, 2, 2);
  check_fresh(same, m);
  CHECK_SHAPE(loom_repeat(v, 2, (int64_t[]){3, 0}), 3, 0);
  CHECK_VALUES(loom_repeat(loom_scalar(LOOM_BOOL, 1), 1, (int64_t[]){3}), 0, 1,
               1, 1);
  /* the gradient of each element adds over its copies */
  loom_tensor *x = loom_set_requires_grad(VEC(LOOM_F64, 5, 6), true);
  ck_assert_int_eq(
      loom_backward(loom_sum_all(loom_mul(loom_repeat(x, 1, (int64_t[]){3}),
                                          VEC(LOOM_F64, 1, 2, 3, 4, 5, 6)))),
      0);
  CHECK_VALUES(loom_grad(x), 0, 9, 12);

  /* tile: missing reps are leading ones, extra ones add dims */
  CHECK_VALUES(loom_tile(m, 1, (int64_t[]){2}), 0, 0, 2, 0, 2, 1, 3, 1, 3);
  CHECK_SHAPE(loom_tile(m, 1, (int64_t[]){2}), 2, 4);
  loom_tensor *t = loom_tile(v, 3, (int64_t[]){2, 1, 2});
  CHECK_SHAPE(t, 2, 1, 4);
  CHECK_VALUES(t, 0, 1, 2, 1, 2, 1, 2, 1, 2);
  check_fresh(loom_tile(v, 0, NULL), v);

  ck_assert_ptr_null(loom_repeat(m, 1, (int64_t[]){2}));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "repeat: 1 repeats for [2, 2]");
  ck_assert_ptr_null(loom_repeat(v, 9, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "repeat: 9 repeats");
  ck_assert_ptr_null(loom_repeat(v, 2, (int64_t[]){2, -1}));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "repeat: -1 repeats of dim 1 (must be >= 0)");
  ck_assert_ptr_null(loom_repeat(v, 1, (int64_t[]){INT64_MAX}));
  CHECK_ERROR(LOOM_ERR_SHAPE, "repeat: size 9223372036854775807 x 2");
  ck_assert_ptr_null(
      loom_repeat(v, 2, (int64_t[]){(int64_t)1 << 40, (int64_t)1 << 40}));
  CHECK_ERROR(LOOM_ERR_SHAPE, "too large");
  ck_assert_ptr_null(loom_tile(v, 2, (int64_t[]){-2, 1}));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "tile: -2 repeats of dim 0");
  ck_assert_ptr_null(loom_tile(v, -1, (int64_t[]){1}));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "tile: -1 reps");
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
  tcase_add_test(tc, test_pad_constant);
  tcase_add_test(tc, test_pad_modes);
  tcase_add_test(tc, test_repeat_and_tile);
  tcase_add_test(tc, test_triangles);
  tcase_add_test(tc, test_masked_select);
  suite_add_tcase(s, tc);
  return loom_run_suite(s);
}
