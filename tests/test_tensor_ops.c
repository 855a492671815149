/* Forward values of the ops: indexing, elementwise math against libm,
 * reductions (accuracy and thread-count independence), softmax, matrix
 * products, convolution and pooling (against direct loops written here).
 * Gradients are tested in test_gradcheck.c. */
#include "check_values.h"
#include "unary_cases.h"

#include "../tensor/kernels.h"

#include <float.h>
#include <string.h>

static loom_tensor *range_f64(int64_t n) {
  return loom_arange(LOOM_F64, 0, (double)n, 1);
}

static loom_tensor *matrix(loom_dtype dtype, int64_t rows, int64_t cols,
                           const double *v) {
  return loom_to_dtype(loom_from_array(LOOM_F64, v, LOOM_SHAPE(rows, cols)),
                       dtype);
}

/* ------------------------------------------------------------ indexing */

START_TEST(test_gather_and_index_select) {
  loom_tensor *t = matrix(LOOM_F32, 2, 3, (double[]){1, 2, 3, 4, 5, 6});
  loom_tensor *g1 =
      loom_gather(t, 1, loom_reshape(IVEC(2, 0, 1, 1), LOOM_SHAPE(2, 2)));
  CHECK_SHAPE(g1, 2, 2);
  CHECK_VALUES(g1, 0, 3, 1, 5, 5);
  CHECK_VALUES(loom_gather(t, 0, loom_reshape(IVEC(1, 0, 1), LOOM_SHAPE(1, 3))),
               0, 4, 2, 6);
  /* a transposed (strided) source */
  CHECK_VALUES(
      loom_gather(loom_t(t), -1, loom_reshape(IVEC(1, 1, 0), LOOM_SHAPE(3, 1))),
      0, 4, 5, 3);

  loom_tensor *m = loom_t(loom_reshape(range_f64(6), LOOM_SHAPE(2, 3)));
  loom_tensor *s0 = loom_index_select(m, 0, IVEC(2, 0, 2));
  CHECK_SHAPE(s0, 3, 2);
  CHECK_VALUES(s0, 0, 2, 5, 0, 3, 2, 5);
  CHECK_VALUES(loom_index_select(m, 1, IVEC(1)), 0, 3, 4, 5);
  CHECK_SHAPE(loom_index_select(m, 0, loom_zeros(LOOM_I64, LOOM_SHAPE(0))), 0,
              2);

  ck_assert_ptr_null(
      loom_gather(t, 1, loom_full(LOOM_I64, 3, LOOM_SHAPE(2, 1))));
  CHECK_ERROR(LOOM_ERR_INDEX, "gather: index 3");
  ck_assert_ptr_null(loom_gather(t, 1, loom_zeros(LOOM_F32, LOOM_SHAPE(2, 1))));
  CHECK_ERROR(LOOM_ERR_DTYPE, "gather");
  ck_assert_ptr_null(loom_gather(t, 1, IVEC(0)));
  CHECK_ERROR(LOOM_ERR_SHAPE, "gather");
  ck_assert_ptr_null(loom_index_select(m, 1, IVEC(0, -1)));
  CHECK_ERROR(LOOM_ERR_INDEX, "index_select: index -1");
  /* a 0-dim tensor takes one index: its result has room for no more (two
   * had returned uninitialised memory, and index_add added nothing) */
  loom_tensor *five = loom_scalar(LOOM_F64, 5);
  CHECK_VALUES(loom_index_select(five, 0, IVEC(0)), 0, 5);
  loom_tensor *two = loom_scalar(LOOM_F64, 2);
  CHECK_VALUES(loom_index_add(five, 0, IVEC(0), two, 1), 0, 7);
  ck_assert_ptr_null(loom_index_select(five, 0, IVEC(0, 0)));
  CHECK_ERROR(LOOM_ERR_SHAPE, "index_select: a 0-dim tensor takes one index, "
                              "got 2");
  ck_assert_ptr_null(loom_index_add(five, 0, IVEC(0, 0), two, 1));
  CHECK_ERROR(LOOM_ERR_SHAPE, "index_add: a 0-dim tensor takes one index");
  ck_assert_ptr_null(
      loom_index_select(five, 0, loom_zeros(LOOM_I64, LOOM_SHAPE(0))));
  CHECK_ERROR(LOOM_ERR_SHAPE, "got 0");
}
END_TEST

START_TEST(test_scatter_add_and_index_add) {
  /* bool has no scaled sum: an error and no result */
  loom_tensor *flags = loom_zeros(LOOM_BOOL, LOOM_SHAPE(3));
  ck_assert_ptr_null(loom_index_add(flags, 0, IVEC(0),
                                    loom_ones(LOOM_BOOL, LOOM_SHAPE(1)), 1));
  CHECK_ERROR(LOOM_ERR_DTYPE, "index_add: not defined for bool");
  /* repeated indices accumulate */
  CHECK_VALUES(loom_scatter_add(loom_zeros(LOOM_F64, LOOM_SHAPE(3)), 0,
                                IVEC(0, 2, 0, 0), VEC(LOOM_F64, 1, 2, 3, 4)),
               0, 8, 0, 2);
  loom_tensor *base = loom_ones(LOOM_F32, LOOM_SHAPE(2, 3));
  loom_tensor *sa = loom_scatter_add(
      base, 1, loom_reshape(IVEC(0, 0, 2, 1), LOOM_SHAPE(2, 2)),
      matrix(LOOM_F64, 2, 2, (double[]){1, 2, 3, 4}));
  ck_assert_int_eq(loom_dtype_of(sa), LOOM_F32);
  CHECK_VALUES(sa, 0, 4, 1, 1, 1, 5, 4);
  CHECK_VALUES(base, 0, 1, 1, 1, 1, 1, 1); /* a copy of t */
  ck_assert_ptr_null(loom_scatter_add(base, 0, IVEC(2), VEC(LOOM_F32, 1)));
  CHECK_ERROR(LOOM_ERR_SHAPE, "scatter_add");
  ck_assert_ptr_null(loom_scatter_add(base, 0,
                                      loom_reshape(IVEC(2), LOOM_SHAPE(1, 1)),
                                      loom_ones(LOOM_F32, LOOM_SHAPE(1, 1))));
  CHECK_ERROR(LOOM_ERR_INDEX, "scatter_add: index 2");

  loom_tensor *ones = loom_ones(LOOM_F64, LOOM_SHAPE(4, 2));
  loom_tensor *src = matrix(LOOM_F64, 3, 2, (double[]){1, 1, 2, 2, 3, 3});
  CHECK_VALUES(loom_index_add(ones, 0, IVEC(0, 3, 0), src, 2), 0, 9, 9, 1, 1, 1,
               1, 5, 5);
  CHECK_VALUES(loom_index_add(ones, 0, IVEC(0, 3, 0), src, 1), 0, 5, 5, 1, 1, 1,
               1, 3, 3);
  loom_tensor *strided = loom_t(loom_ones(LOOM_F64, LOOM_SHAPE(2, 4)));
  CHECK_VALUES(loom_index_add(ones, 1, IVEC(1, 1), strided, -0.5), 0, 1, 0, 1,
               0, 1, 0, 1, 0);
  ck_assert_ptr_null(loom_index_add(ones, 0, IVEC(0, 4, 0), src, 1));
  CHECK_ERROR(LOOM_ERR_INDEX, "index_add: index 4");
  ck_assert_ptr_null(loom_index_add(ones, 0, IVEC(0, 1), src, 1));
  CHECK_ERROR(LOOM_ERR_SHAPE, "index_add");

  /* an integer t keeps its dtype: what loom_add_ refuses is refused (0.5
   * or 0.75 added twice was truncated to 0) */
  loom_tensor *counts = loom_zeros(LOOM_I64, LOOM_SHAPE(3));
  ck_assert_ptr_null(loom_index_add(counts, 0, IVEC(0, 0),
                                    loom_ones(LOOM_I64, LOOM_SHAPE(2)), 0.5));
  CHECK_ERROR(LOOM_ERR_ARGUMENT,
              "index_add: scalar 0.5 on a int64 tensor (the result must stay "
              "integral)");
  ck_assert_ptr_null(
      loom_index_add(counts, 0, IVEC(0, 0), VEC(LOOM_F32, 0.75, 0.75), 1));
  CHECK_ERROR(LOOM_ERR_DTYPE, "index_add: float32 operand, int64 tensor (the "
                              "result must stay integral)");
  ck_assert_ptr_null(
      loom_scatter_add(counts, 0, IVEC(0, 0), VEC(LOOM_F32, 0.75, 0.75)));
  CHECK_ERROR(LOOM_ERR_DTYPE, "scatter_add: float32 operand, int64 tensor");
  ck_assert_ptr_null(loom_scatter_add(loom_zeros(LOOM_U8, LOOM_SHAPE(3)), 0,
                                      IVEC(1), VEC(LOOM_F64, 2)));
  CHECK_ERROR(LOOM_ERR_DTYPE, "scatter_add: float64 operand, uint8 tensor");
  /* an integral alpha, an integer src, and a float t take them */
  CHECK_VALUES(loom_index_add(counts, 0, IVEC(0, 0),
                              loom_ones(LOOM_I32, LOOM_SHAPE(2)), -3),
               0, -6, 0, 0);
  CHECK_VALUES(loom_scatter_add(counts, 0, IVEC(2), IVEC(7)), 0, 0, 0, 7);
  CHECK_VALUES(loom_index_add(loom_zeros(LOOM_F32, LOOM_SHAPE(3)), 0,
                              IVEC(0, 0), IVEC(1, 1), 0.5),
               0, 1, 0, 0);
}
END_TEST

START_TEST(test_embedding_and_one_hot) {
  loom_tensor *w = loom_reshape(range_f64(12), LOOM_SHAPE(4, 3));
  loom_tensor *ix = loom_reshape(IVEC(0, 3, 1, 1), LOOM_SHAPE(2, 2));
  loom_tensor *e = loom_embedding(w, ix, -1);
  CHECK_SHAPE(e, 2, 2, 3);
  CHECK_VALUES(e, 0, 0, 1, 2, 9, 10, 11, 3, 4, 5, 3, 4, 5);
  loom_tensor *e0 = loom_embedding(w, loom_scalar(LOOM_I64, 2), -1);
  CHECK_SHAPE(e0, 3);
  CHECK_VALUES(e0, 0, 6, 7, 8);
  CHECK_SHAPE(loom_embedding(w, loom_t(ix), 0), 2, 2, 3);
  loom_tensor *et = loom_embedding(w, loom_t(ix), 0); /* strided indices */
  CHECK_VALUES(loom_select(et, 0, 0), 0, 0, 1, 2, 3, 4, 5);
  CHECK_VALUES(loom_select(et, 0, 1), 0, 9, 10, 11, 3, 4, 5);
  ck_assert_ptr_null(loom_embedding(w, IVEC(1, 4), -1));
  CHECK_ERROR(LOOM_ERR_INDEX, "embedding: index 4");
  ck_assert_ptr_null(loom_embedding(w, IVEC(-1), -1));
  CHECK_ERROR(LOOM_ERR_INDEX, "embedding");

  loom_tensor *oh = loom_one_hot(IVEC(2, 0, 1), -1);
  CHECK_SHAPE(oh, 3, 3);
  ck_assert_int_eq(loom_dtype_of(oh), LOOM_I64);
  CHECK_VALUES(oh, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0);
  loom_tensor *oh2 =
      loom_one_hot(loom_reshape(IVEC(3, 0), LOOM_SHAPE(2, 1)), 5);
  CHECK_SHAPE(oh2, 2, 1, 5);
  CHECK_VALUES(oh2, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0);
  ck_assert_ptr_null(loom_one_hot(IVEC(5), 4));
  CHECK_ERROR(LOOM_ERR_INDEX, "one_hot: index 5");
  /* only -1 infers the count: -100 had been taken as -1 */
  ck_assert_ptr_null(loom_one_hot(IVEC(2, 0), -100));
  CHECK_ERROR(LOOM_ERR_ARGUMENT,
              "one_hot: num_classes -100 (0 and up, or -1 to infer it)");
  ck_assert_ptr_null(loom_one_hot(IVEC(0), -2));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "one_hot: num_classes -2");
  CHECK_SHAPE(loom_one_hot(loom_zeros(LOOM_I64, LOOM_SHAPE(0)), 0), 0, 0);
}
END_TEST

static loom_tensor *i32_vec(int n, const int32_t *v) {
  return loom_from_array(LOOM_I32, v, LOOM_SHAPE(n));
}
#define I32VEC(...)                                                            \
  i32_vec((int)(sizeof((int32_t[]){__VA_ARGS__}) / sizeof(int32_t)),           \
          (const int32_t[]){__VA_ARGS__})

/* int32 indices where PyTorch 1.13 takes them (index_select, index_add,
 * embedding), with the same results and out-of-range errors as int64;
 * refused where it refuses them (gather, scatter_add, one_hot, class
 * targets of the losses). */
START_TEST(test_int32_indices) {
  loom_tensor *m = loom_reshape(range_f64(6), LOOM_SHAPE(3, 2));
  loom_tensor *s = loom_index_select(m, 0, I32VEC(2, 0, 2));
  CHECK_SHAPE(s, 3, 2);
  CHECK_VALUES(s, 0, 4, 5, 0, 1, 4, 5);
  ck_assert_ptr_null(loom_index_select(m, 0, I32VEC(0, 3)));
  CHECK_ERROR(LOOM_ERR_INDEX, "index_select: index 3 out of range [0, 3)");
  ck_assert_ptr_null(loom_index_select(m, 0, I32VEC(INT32_MIN)));
  CHECK_ERROR(LOOM_ERR_INDEX, "index_select: index -2147483648");
  ck_assert_ptr_null(loom_index_select(m, 0, VEC(LOOM_F32, 0)));
  CHECK_ERROR(LOOM_ERR_DTYPE, "index must be int64 or int32, got float32");
  CHECK_VALUES(loom_index_add(loom_zeros(LOOM_F64, LOOM_SHAPE(3)), 0,
                              I32VEC(2, 0, 2), VEC(LOOM_F64, 1, 2, 3), 2),
               0, 4, 0, 8);

  loom_tensor *w = loom_reshape(range_f64(8), LOOM_SHAPE(4, 2));
  loom_tensor *ix = loom_reshape(I32VEC(3, 0, 1, 3), LOOM_SHAPE(2, 2));
  loom_tensor *e = loom_embedding(w, ix, -1);
  CHECK_SHAPE(e, 2, 2, 2);
  ck_assert(loom_equal(e, loom_embedding(w, loom_to_dtype(ix, LOOM_I64), -1)));
  ck_assert_ptr_null(loom_embedding(w, I32VEC(1, 4), -1));
  CHECK_ERROR(LOOM_ERR_INDEX, "embedding: index 4 out of range [0, 4)");
  /* the layer's max_norm renormalises the rows int32 indices look up */
  loom_embedding_layer *layer = loom_embedding_layer_new(3, 2, -1);
  ck_assert_ptr_nonnull(layer);
  layer->max_norm = 1;
  loom_no_grad_begin();
  loom_copy_(layer->weight,
             matrix(LOOM_F32, 3, 2, (double[]){3, 4, 0.3, 0.4, 6, 8}));
  loom_no_grad_end();
  loom_tensor *looked = loom_embedding_layer_forward(layer, I32VEC(2, 0, 2));
  CHECK_VALUES(looked, 1e-6, 0.6, 0.8, 0.6, 0.8, 0.6, 0.8);
  CHECK_VALUES(layer->weight, 1e-6, 0.6, 0.8, 0.3, 0.4, 0.6, 0.8);
  loom_embedding_layer_free(layer);

  loom_tensor *t = loom_ones(LOOM_F32, LOOM_SHAPE(2, 2));
  loom_tensor *ix2 = loom_reshape(I32VEC(1, 0), LOOM_SHAPE(1, 2));
  ck_assert_ptr_null(loom_gather(t, 0, ix2));
  CHECK_ERROR(LOOM_ERR_DTYPE, "gather: index must be int64, got int32");
  ck_assert_ptr_null(
      loom_scatter_add(t, 0, ix2, loom_ones(LOOM_F32, LOOM_SHAPE(1, 2))));
  CHECK_ERROR(LOOM_ERR_DTYPE, "scatter_add: index must be int64, got int32");
  ck_assert_ptr_null(loom_one_hot(I32VEC(1), 2));
  CHECK_ERROR(LOOM_ERR_DTYPE, "one_hot: index must be int64, got int32");
  loom_tensor *logits = loom_zeros(LOOM_F32, LOOM_SHAPE(2, 3));
  ck_assert_ptr_null(loom_cross_entropy(logits, I32VEC(0, 2), NULL));
  CHECK_ERROR(LOOM_ERR_DTYPE, "cross_entropy: targets must be int64");
  ck_assert_ptr_null(loom_nll_loss(logits, I32VEC(0, 2), NULL));
  CHECK_ERROR(LOOM_ERR_DTYPE, "nll_loss: targets must be int64");
  /* integer log-probabilities (torch refuses them too; a crash before) */
  const loom_dtype ints[] = {LOOM_I64, LOOM_U8};
  for (int d = 0; d < 2; d++)
    for (int r = 0; r < 3; r++) {
      loom_cross_entropy_opts o = loom_cross_entropy_defaults();
      o.reduction = (loom_reduction[]){LOOM_MEAN, LOOM_SUM, LOOM_NONE}[r];
      ck_assert_ptr_null(loom_nll_loss(
          loom_zeros(ints[d], LOOM_SHAPE(2, 3)),
          loom_from_array(LOOM_I64, (int64_t[]){0, 2}, LOOM_SHAPE(2)), &o));
      CHECK_ERROR(LOOM_ERR_DTYPE,
                  "nll_loss: log-probabilities must be float32 or float64");
    }
}
END_TEST

START_TEST(test_masked_fill_and_where) {
  loom_tensor *x = matrix(LOOM_F32, 2, 3, (double[]){1, 2, 3, 4, 5, 6});
  loom_tensor *mask = VEC(LOOM_BOOL, 0, 1, 0);
  CHECK_VALUES(loom_masked_fill(x, mask, -INFINITY), 0, 1, -INFINITY, 3, 4,
               -INFINITY, 6);
  CHECK_VALUES(loom_masked_fill(loom_t(x), loom_gt_scalar(loom_t(x), 3.5), 0),
               0, 1, 0, 2, 0, 3, 0);
  ck_assert_ptr_null(loom_masked_fill(x, VEC(LOOM_F32, 0, 1, 0), 0));
  CHECK_ERROR(LOOM_ERR_DTYPE, "masked_fill");
  ck_assert_ptr_null(loom_masked_fill(
      VEC(LOOM_F32, 1, 2, 3), loom_ones(LOOM_BOOL, LOOM_SHAPE(2, 3)), 0));
  CHECK_ERROR(LOOM_ERR_SHAPE, "masked_fill");

  /* cond [3, 1], a [1, 4], b 0-dim: everything broadcasts to [3, 4] */
  loom_tensor *cond = loom_reshape(VEC(LOOM_BOOL, 1, 0, 1), LOOM_SHAPE(3, 1));
  loom_tensor *a = loom_reshape(IVEC(10, 20, 30, 40), LOOM_SHAPE(1, 4));
  loom_tensor *w = loom_where(cond, a, loom_scalar(LOOM_F32, -0.5));
  CHECK_SHAPE(w, 3, 4);
  ck_assert_int_eq(loom_dtype_of(w), LOOM_F32);
  CHECK_VALUES(w, 0, 10, 20, 30, 40, -0.5, -0.5, -0.5, -0.5, 10, 20, 30, 40);
  ck_assert_ptr_null(loom_where(IVEC(1), a, a));
  CHECK_ERROR(LOOM_ERR_DTYPE, "where");
  ck_assert_ptr_null(loom_where(VEC(LOOM_BOOL, 1, 0), a, a));
  CHECK_ERROR(LOOM_ERR_SHAPE, "where");
}
END_TEST

/* ------------------------------------------------------------ elementwise */

/* Every op of unary_cases.h against its float64 reference: float64
 * within 1e-15, float32 within 4 float epsilons of the reference rounded. */
START_TEST(test_unary_values) {
  const double any[] = {-3.7, -1.25, -0.3, 0.2, 0.7, 1.9, 4.5};
  const double pos[] = {0.01, 0.2, 0.7, 1.9, 4.5, 30, 1e5};
  for (int k = 0; k < N_UNARY_CASES; k++) {
    const unary_case *c = &unary_cases[k];
    const double *v = c->domain & POSITIVE ? pos : any;
    loom_tensor *x64 = loom_from_array(LOOM_F64, v, LOOM_SHAPE(7));
    loom_tensor *y64 = c->op(x64);
    loom_tensor *y32 = c->op(loom_to_dtype(x64, LOOM_F32));
    ck_assert_msg(y64 && y32, "%s: %s", c->name, loom_last_error());
    ck_assert_int_eq(loom_dtype_of(y64), LOOM_F64);
    ck_assert_int_eq(loom_dtype_of(y32), LOOM_F32);
    for (int i = 0; i < 7; i++) {
      double want = c->ref(v[i]), got = loom_data_f64(y64)[i];
      ck_assert_msg(fabs(got - want) <= 1e-15 * (1 + fabs(want)),
                    "%s(%g) = %.17g, want %.17g", c->name, v[i], got, want);
      float wf = (float)c->ref((float)v[i]), gf = loom_data_f32(y32)[i];
      ck_assert_msg(fabsf(gf - wf) <= 4 * FLT_EPSILON * (1 + fabsf(wf)),
                    "%s(%gf) = %.9g, want %.9g", c->name, v[i], (double)gf,
                    (double)wf);
    }
  }
}
END_TEST

START_TEST(test_activation_details) {
  /* closed forms: Phi(1), and the tanh approximation at 1 */
  CHECK_VALUES(loom_gelu(VEC(LOOM_F64, 1, -1, 0), false), 1e-15,
               0.8413447460685429, -0.15865525393145707, 0);
  CHECK_VALUES(loom_gelu(VEC(LOOM_F64, 1), true), 1e-15, 0.8411919906082768);
  /* softplus is exactly linear above the threshold (beta x > threshold) */
  loom_tensor *sp = loom_softplus(VEC(LOOM_F64, 25, 19, 2, 1), 1, 20);
  CHECK_VALUES(sp, 1e-15, 25, 19.000000005602796, log1p(exp(2)), log1p(exp(1)));
  CHECK_VALUES(loom_softplus(VEC(LOOM_F64, 2, 1), 2, 3), 1e-15, 2,
               log1p(exp(2)) / 2);
  ck_assert_ptr_null(loom_softplus(VEC(LOOM_F64, 1), 0, 20));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "softplus");
  /* no overflow at the extremes */
  CHECK_VALUES(loom_log_sigmoid(VEC(LOOM_F32, -1000, 1000)), 0, -1000, -0.0);
  CHECK_VALUES(loom_sigmoid(VEC(LOOM_F64, -1000, 1000)), 0, 0, 1);
  CHECK_VALUES(loom_softplus(VEC(LOOM_F32, -200), 1, 20), 0, 0);
  /* integer inputs: neg/abs/sign/relu keep int64; the rest go float */
  loom_tensor *i = IVEC(-3, 0, 2);
  ck_assert_int_eq(loom_dtype_of(loom_abs(i)), LOOM_I64);
  CHECK_VALUES(loom_abs(i), 0, 3, 0, 2);
  CHECK_VALUES(loom_sign(i), 0, -1, 0, 1);
  CHECK_VALUES(loom_neg(i), 0, 3, 0, -2);
  CHECK_VALUES(loom_relu(i), 0, 0, 0, 2);
  ck_assert_int_eq(loom_dtype_of(loom_exp(i)), LOOM_F32);
  CHECK_VALUES(loom_sqrt(IVEC(4, 9)), 0, 2, 3);
  CHECK_VALUES(loom_sign(VEC(LOOM_F64, -0.5, 0, 3)), 0, -1, 0, 1);
}
END_TEST

/* float32 gelu and its gradient, whose erf is loom's own polynomial, on a
 * dense grid against double: within a few ulp of the value, plus the
 * cancellation any float32 x Phi(x) has where Phi is near 0. */
START_TEST(test_gelu_float32_dense) {
  const double pi_ = 3.14159265358979323846;
  enum { N = 24001 };
  static float xs[N];
  for (int i = 0; i < N; i++)
    xs[i] = -6.0f + 12.0f * (float)i / (N - 1);
  loom_tensor *x = loom_set_requires_grad(
      loom_from_array(LOOM_F32, xs, LOOM_SHAPE(N)), true);
  loom_tensor *y = loom_gelu(x, false);
  ck_assert_int_eq(loom_backward(loom_sum_all(y)), 0);
  const float *yv = loom_data_f32(y), *gv = loom_data_f32(loom_grad(x));
  for (int i = 0; i < N; i++) {
    double v = xs[i], phi = 0.5 * (1 + erf(v / sqrt(2.0)));
    double want = v * phi, dwant = phi + v * exp(-v * v / 2) / sqrt(2 * pi_);
    double tol = 4 * FLT_EPSILON * (fabs(want) + fabs(v));
    ck_assert_msg(fabs(yv[i] - want) <= tol, "gelu(%.9g) = %.9g, want %.9g", v,
                  (double)yv[i], want);
    ck_assert_msg(fabs(gv[i] - dwant) <= 4 * FLT_EPSILON * (1 + fabs(v)),
                  "gelu'(%.9g) = %.9g, want %.9g", v, (double)gv[i], dwant);
  }
}
END_TEST

/* Units in the last place between a float32 result and the exact value
 * (computed in double): the exact value's ulp, subnormals' below 2^-126;
 * an exact value past float's range rounds to an infinity. */
static double ulps_off(float got, double want) {
  if (fabs(want) >= 0x1p128 - 0x1p103)
    want = want > 0 ? INFINITY : -INFINITY;
  if (isnan(want) || isinf(want))
    return (isnan(want) && isnan(got)) || got == want ? 0 : INFINITY;
  int e = 0;
  frexp(want, &e);
  return fabs((double)got - want) / ldexp(1, (e < -125 ? -125 : e) - 24);
}

/* float32 exp, tanh and sigmoid (vmath.h's polynomials, as the running
 * level compiles them) against double on every 4099th float, within the
 * bounds vmath.h states: the worst over all floats, measured with
 * LOOM_ULPS_ALL=1 in the environment, which runs every float (a minute
 * or two). */
START_TEST(test_vector_math_ulps) {
  const char *all = getenv("LOOM_ULPS_ALL");
  uint64_t step = all && strcmp(all, "1") == 0 ? 1 : 4099;
  enum { N = 1 << 20 };
  float *xs = malloc(N * sizeof *xs);
  ck_assert_ptr_nonnull(xs);
  static const char *const names[] = {"exp", "tanh", "sigmoid"};
  static const double bound[] = {1.02, 1.34, 2.83};
  for (int f = 0; f < 3; f++) {
    double worst = 0;
    float at = 0;
    for (uint64_t b = 0; b < 1ull << 32;) {
      int64_t n = 0;
      for (; n < N && b < 1ull << 32; n++, b += step) {
        uint32_t bits = (uint32_t)b;
        memcpy(&xs[n], &bits, sizeof bits);
      }
      loom_scope *s = loom_scope_begin();
      loom_tensor *x = loom_from_array(LOOM_F32, xs, LOOM_SHAPE(n));
      loom_tensor *y = f == 0   ? loom_exp(x)
                       : f == 1 ? loom_tanh(x)
                                : loom_sigmoid(x);
      ck_assert_ptr_nonnull(y);
      const float *yv = loom_data_f32(y);
      for (int64_t i = 0; i < n; i++) {
        double v = xs[i];
        double want = f == 0 ? exp(v) : f == 1 ? tanh(v) : 1 / (1 + exp(-v));
        double off = ulps_off(yv[i], want);
        if (off > worst) {
          worst = off;
          at = xs[i];
        }
      }
      loom_scope_end(s);
    }
    if (step == 1)
      printf("%s at %s: %.3f ulp at %a\n", names[f], loom_isa(), worst,
             (double)at);
    ck_assert_msg(worst <= bound[f], "%s(%a) is %.3f ulp off (at most %.2f)",
                  names[f], (double)at, worst, bound[f]);
  }
  free(xs);
}
END_TEST

/* y = op k of vmath.h's float32 ops (exp, tanh, sigmoid, silu, gelu) of
 * x, and x's gradient for the upstream gradient w, both made contiguous
 * (scope-owned). */
static void vector_op(int k, loom_tensor *x, const loom_tensor *w,
                      loom_tensor **y, loom_tensor **dx) {
  loom_tensor *leaf = loom_set_requires_grad(loom_detach(x), true);
  loom_tensor *in = x->ndim == 2 && x->strides[0] == 1 ? loom_t(leaf) : leaf;
  loom_tensor *out = k == 0   ? loom_exp(in)
                     : k == 1 ? loom_tanh(in)
                     : k == 2 ? loom_sigmoid(in)
                     : k == 3 ? loom_silu(in)
                              : loom_gelu(in, false);
  ck_assert_int_eq(loom_backward_with(out, in == leaf ? w : loom_t(w), NULL),
                   0);
  *y = loom_contiguous(in == leaf ? out : loom_t(out));
  *dx = loom_contiguous(loom_grad(leaf));
}

/* The float32 loops of vmath.h's functions contract into fused
 * multiply-adds (AVX2, AVX-512): vector loops and the scalar code of their
 * tails and of strided operands must contract alike, or a result would
 * depend on the layout and on where a thread's range ends (gelu's
 * gradient did). Forward and gradient of each op on the same values:
 * contiguous, read through a transpose, as prefixes of 1-80 elements, and
 * on 1 and 3 threads. */
START_TEST(test_vector_math_layout_free) {
  enum { R = 96, C = 128, N = R * C };
  loom_rng *g = loom_rng_new(5);
  loom_tensor *x = loom_randn(g, LOOM_F32, 0, 3, LOOM_SHAPE(R, C));
  loom_tensor *w = loom_randn(g, LOOM_F32, 0, 1, LOOM_SHAPE(R, C));
  loom_rng_free(g);
  /* x's values as the transpose of a column-major matrix */
  loom_tensor *xt = loom_t(loom_contiguous(loom_t(x)));
  for (int k = 0; k < 5; k++) {
    loom_scope *s = loom_scope_begin();
    loom_tensor *y, *dx, *y2, *dx2;
    vector_op(k, x, w, &y, &dx);
    vector_op(k, xt, w, &y2, &dx2);
    size_t bytes = N * sizeof(float);
    ck_assert_msg(!memcmp(loom_data(y), loom_data(y2), bytes) &&
                      !memcmp(loom_data(dx), loom_data(dx2), bytes),
                  "op %d: strided operands change its bits", k);
    loom_tensor *flat_x = loom_reshape(x, 1, (int64_t[]){N});
    loom_tensor *flat_w = loom_reshape(w, 1, (int64_t[]){N});
    for (int64_t n = 1; n <= 80; n++) {
      vector_op(k, loom_narrow(flat_x, 0, 0, n), loom_narrow(flat_w, 0, 0, n),
                &y2, &dx2);
      ck_assert_msg(
          !memcmp(loom_data(y), loom_data(y2), n * sizeof(float)) &&
              !memcmp(loom_data(dx), loom_data(dx2), n * sizeof(float)),
          "op %d: the first %lld elements alone change its bits", k,
          (long long)n);
    }
    for (int t = 1; t <= 3; t += 2) {
      loom_set_num_threads(t);
      vector_op(k, x, w, &y2, &dx2);
      ck_assert_msg(!memcmp(loom_data(y), loom_data(y2), bytes) &&
                        !memcmp(loom_data(dx), loom_data(dx2), bytes),
                    "op %d: %d threads change its bits", k, t);
    }
    loom_set_num_threads(0);
    loom_scope_end(s);
  }
}
END_TEST

START_TEST(test_nan_and_clamp) {
  loom_tensor *a = VEC(LOOM_F64, NAN, 1, 2, NAN);
  loom_tensor *b = VEC(LOOM_F64, 1, NAN, 3, NAN);
  CHECK_VALUES(loom_maximum(a, b), 0, NAN, NAN, 3, NAN);
  CHECK_VALUES(loom_minimum(a, b), 0, NAN, NAN, 2, NAN);
  CHECK_VALUES(loom_maximum(VEC(LOOM_F32, NAN, 1), VEC(LOOM_F32, 1, NAN)), 0,
               NAN, NAN);
  CHECK_VALUES(loom_relu(VEC(LOOM_F32, NAN, -1)), 0, NAN, 0);
  CHECK_VALUES(loom_maximum(IVEC(1, 5), IVEC(3, 2)), 0, 3, 5);
  /* NaN keeps its gradient, as torch's: relu passes it, maximum and
   * minimum give it to both inputs (they had given 0) */
  for (int k = 0; k < 3; k++) {
    loom_tensor *p = loom_set_requires_grad(loom_clone(a), true);
    loom_tensor *q = loom_set_requires_grad(loom_clone(b), true);
    loom_tensor *y = k == 0   ? loom_relu(p)
                     : k == 1 ? loom_maximum(p, q)
                              : loom_minimum(p, q);
    ck_assert_int_eq(loom_backward(loom_sum_all(y)), 0);
    /* only the 2 against 3 has a loser: a for maximum, b for minimum */
    CHECK_VALUES(loom_grad(p), 0, 1, 1, k == 1 ? 0 : 1, 1);
    if (k)
      CHECK_VALUES(loom_grad(q), 0, 1, 1, k == 2 ? 0 : 1, 1);
  }
  /* abs(-0) is +0 */
  ck_assert(!signbit(loom_item(loom_abs(loom_scalar(LOOM_F32, -0.0)))));
  ck_assert(!signbit(loom_item(loom_abs(loom_scalar(LOOM_F64, -0.0)))));
  loom_tensor *x = VEC(LOOM_F32, -5, -0.5, 0.5, 5, NAN);
  CHECK_VALUES(loom_clamp(x, -1, 1), 0, -1, -0.5, 0.5, 1, NAN);
  CHECK_VALUES(loom_clamp(x, -INFINITY, 1), 0, -5, -0.5, 0.5, 1, NAN);
  CHECK_VALUES(loom_clamp(x, 0, INFINITY), 0, 0, 0, 0.5, 5, NAN);
  CHECK_VALUES(loom_clamp(x, -INFINITY, INFINITY), 0, -5, -0.5, 0.5, 5, NAN);
  ck_assert_ptr_null(loom_clamp(x, 1, -1));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "clamp");
  /* integer tensors stay integers at integral or infinite bounds; at a
   * fractional one the result is float (as torch's), not in place */
  loom_tensor *i = IVEC(-5, 0, 7);
  CHECK_VALUES(loom_clamp(i, -INFINITY, INFINITY), 0, -5, 0, 7);
  CHECK_VALUES(loom_clamp(i, -0.5, 6.5), 0, -0.5, 0, 6.5);
  ck_assert_int_eq(loom_dtype_of(loom_clamp(i, -0.5, 6.5)), LOOM_F32);
  loom_tensor *j = loom_clone(i);
  CHECK_VALUES(loom_clamp_(j, -INFINITY, INFINITY), 0, -5, 0, 7);
  CHECK_VALUES(loom_clamp_(j, 0, 6), 0, 0, 0, 6);
  ck_assert_ptr_null(loom_clamp_(j, -0.5, 6.5));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "clamp_: bounds [-0.5, 6.5]");
  /* infinite bounds leave int64's extremes as they are, in place too (they
   * had been moved to +-9.2e18) */
  loom_tensor *ext = IVEC(INT64_MAX, INT64_MIN, 5);
  const int64_t *e = loom_data_i64(loom_clamp(ext, -INFINITY, INFINITY));
  ck_assert(e[0] == INT64_MAX && e[1] == INT64_MIN && e[2] == 5);
  e = loom_data_i64(loom_clamp(ext, 9.21e18, INFINITY));
  ck_assert(e[0] == INT64_MAX && e[1] == 9210000000000000000 &&
            e[2] == 9210000000000000000);
  e = loom_data_i64(loom_clamp_(ext, -INFINITY, 4));
  ck_assert(e[0] == 4 && e[1] == INT64_MIN && e[2] == 4);
  /* at bounds beyond int64 an integer tensor computes in float (it had
   * saturated to 9.2e18) */
  CHECK_VALUES(loom_clamp(i, 1e30, 2e30), 1e-7, 1e30, 1e30, 1e30);
  ck_assert_ptr_null(loom_clamp_(j, 1e30, 2e30));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "clamp_: bounds [1e+30, 2e+30]");
}
END_TEST

START_TEST(test_binary_and_comparisons) {
  loom_tensor *col = loom_reshape(VEC(LOOM_F64, 1, 2, 3), LOOM_SHAPE(3, 1));
  loom_tensor *row = VEC(LOOM_F64, 2, 2, 0.5);
  loom_tensor *s = loom_sub(col, row);
  CHECK_SHAPE(s, 3, 3);
  CHECK_VALUES(s, 0, -1, -1, 0.5, 0, 0, 1.5, 1, 1, 2.5);
  CHECK_VALUES(loom_div(row, col), 0, 2, 2, 0.5, 1, 1, 0.25, 2.0 / 3, 2.0 / 3,
               0.5 / 3);
  CHECK_VALUES(loom_pow(VEC(LOOM_F64, 2, 9, 0), VEC(LOOM_F64, 3, 0.5, 0)), 0, 8,
               3, 1);
  CHECK_VALUES(loom_add_scaled(row, col, -2), 0, 0, 0, -1.5, -2, -2, -3.5, -4,
               -4, -5.5);
  /* a strided operand (the transpose) broadcast against a row */
  loom_tensor *m = loom_reshape(range_f64(6), LOOM_SHAPE(2, 3));
  CHECK_VALUES(loom_mul(loom_t(m), VEC(LOOM_F64, 10, 100)), 0, 0, 300, 10, 400,
               20, 500);
  ck_assert_ptr_null(loom_add(m, VEC(LOOM_F64, 1, 2)));
  CHECK_ERROR(LOOM_ERR_SHAPE, "add: shapes [2, 3] and [2]");

  loom_tensor *lt = loom_lt(col, row);
  ck_assert_int_eq(loom_dtype_of(lt), LOOM_BOOL);
  CHECK_VALUES(lt, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0);
  CHECK_VALUES(loom_le(col, row), 0, 1, 1, 0, 1, 1, 0, 0, 0, 0);
  CHECK_VALUES(loom_gt(col, row), 0, 0, 0, 1, 0, 0, 1, 1, 1, 1);
  CHECK_VALUES(loom_ge(col, row), 0, 0, 0, 1, 1, 1, 1, 1, 1, 1);
  CHECK_VALUES(loom_eq(col, row), 0, 0, 0, 0, 1, 1, 0, 0, 0, 0);
  CHECK_VALUES(loom_ne(IVEC(1, 2), VEC(LOOM_F32, 1, 2.5)), 0, 0, 1);
  loom_tensor *v = VEC(LOOM_F32, 0.1, 1, NAN);
  /* the scalar is rounded to the tensor's precision, as in PyTorch */
  CHECK_VALUES(loom_eq_scalar(v, 0.1), 0, 1, 0, 0);
  CHECK_VALUES(loom_le_scalar(v, 0.1), 0, 1, 0, 0);
  CHECK_VALUES(loom_ne_scalar(v, 1), 0, 1, 0, 1);
  CHECK_VALUES(loom_lt_scalar(IVEC(1, 2), 1.5), 0, 1, 0);
  CHECK_VALUES(loom_gt_scalar(IVEC(1, 2), 1.5), 0, 0, 1);
  CHECK_VALUES(loom_ge_scalar(VEC(LOOM_F64, 0.1, 0.2), 0.1), 0, 1, 1);

  loom_tensor *p = VEC(LOOM_BOOL, 1, 1, 0, 0),
              *q = VEC(LOOM_F32, 2, 0, -0.0, 3);
  CHECK_VALUES(loom_logical_and(p, q), 0, 1, 0, 0, 0);
  CHECK_VALUES(loom_logical_or(p, q), 0, 1, 1, 0, 1);
  CHECK_VALUES(loom_logical_not(q), 0, 0, 1, 1, 0);
  ck_assert_int_eq(loom_dtype_of(loom_logical_not(q)), LOOM_BOOL);
}
END_TEST

/* Integer arithmetic wraps in two's complement, as in PyTorch, for int32
 * and int64 alike (computed so that no C signed overflow happens, which
 * UBSan would report), and int32 keeps its dtype where PyTorch does. */
START_TEST(test_integer_overflow_wraps) {
  loom_tensor *a = I32VEC(INT32_MAX, INT32_MIN, 46341, -7);
  loom_tensor *one = loom_scalar(LOOM_I32, 1);
  CHECK_VALUES(loom_add(a, one), 0, -2147483648.0, -2147483647, 46342, -6);
  CHECK_VALUES(loom_sub(a, one), 0, 2147483646, 2147483647, 46340, -8);
  CHECK_VALUES(loom_mul(a, a), 0, 1, 0, -2147479015, 49);
  CHECK_VALUES(loom_neg(a), 0, -2147483647, -2147483648.0, -46341, 7);
  CHECK_VALUES(loom_abs(a), 0, 2147483647, -2147483648.0, 46341, 7);
  CHECK_VALUES(loom_square(a), 0, 1, 0, -2147479015, 49);
  CHECK_VALUES(loom_add_scalar(a, 1), 0, -2147483648.0, -2147483647, 46342, -6);
  CHECK_VALUES(loom_mul_scalar(a, 2), 0, -2, 0, 92682, -14);
  CHECK_VALUES(loom_rsub_scalar(a, -1), 0, -2147483648.0, 2147483647, -46342,
               6);
  /* a scalar beyond int32 wraps into it first, as PyTorch converts it */
  CHECK_VALUES(loom_add_scalar(a, 0x1p32 + 3), 0, -2147483646, -2147483645,
               46344, -4);
  for (int k = 0; k < 9; k++) /* each of these keeps int32 */
    ck_assert_int_eq(loom_dtype_of((loom_tensor *[]){
                         loom_add(a, one), loom_sub(a, one), loom_mul(a, a),
                         loom_neg(a), loom_abs(a), loom_square(a), loom_relu(a),
                         loom_sign(a), loom_maximum(a, one)}[k]),
                     LOOM_I32);
  CHECK_VALUES(loom_relu(a), 0, 2147483647, 0, 46341, 0);
  CHECK_VALUES(loom_sign(a), 0, 1, -1, 1, -1);
  ck_assert_int_eq(loom_dtype_of(loom_exp(a)), LOOM_F32);
  /* clamp's bounds saturate to int32's range */
  loom_tensor *c = loom_clamp(a, -3e9, 3e9);
  ck_assert_int_eq(loom_dtype_of(c), LOOM_I32);
  CHECK_VALUES(c, 0, 2147483647, -2147483648.0, 46341, -7);
  CHECK_VALUES(loom_clamp(a, -5, 5), 0, 5, -5, 5, -5);
  /* in place too */
  loom_tensor *b = loom_clone(a);
  ck_assert_ptr_nonnull(loom_add_(b, I32VEC(1, -1, 0, 0), 3));
  CHECK_VALUES(b, 0, -2147483646, 2147483645, 46341, -7);
  ck_assert_ptr_nonnull(loom_mul_scalar_(b, 0x1p32 + 2));
  CHECK_VALUES(b, 0, 4, -6, 92682, -14);
  /* reductions: sums and products give int64 (wrapping there), max, min
   * and the scatter sum keep int32 */
  loom_tensor *sum = loom_sum_all(a);
  ck_assert_int_eq(loom_dtype_of(sum), LOOM_I64);
  ck_assert_int_eq(loom_data_i64(sum)[0], -1 + 46341 - 7);
  loom_tensor *big = IVEC(INT64_MAX, 1, INT64_MIN);
  ck_assert_int_eq(loom_data_i64(loom_sum_all(IVEC(INT64_MAX, 1, 1)))[0],
                   INT64_MIN + 1);
  ck_assert_int_eq(loom_data_i64(loom_add(big, IVEC(1)))[0], INT64_MIN);
  ck_assert_int_eq(loom_data_i64(loom_mul_scalar(big, 2))[0], -2);
  ck_assert_int_eq(loom_data_i64(loom_neg(big))[2], INT64_MIN);
  ck_assert_int_eq(loom_data_i64(loom_prod(big, NULL, 0, false))[0], INT64_MIN);
  loom_tensor *mx = loom_amax(a, NULL, 0, false);
  ck_assert_int_eq(loom_dtype_of(mx), LOOM_I32);
  ck_assert_int_eq(loom_data_i32(mx)[0], INT32_MAX);
  ck_assert_int_eq(loom_data_i32(loom_amin(a, NULL, 0, false))[0], INT32_MIN);
  ck_assert_int_eq(
      loom_data_i32(loom_amax(I32VEC(INT32_MIN), NULL, 0, false))[0],
      INT32_MIN);
  loom_tensor *at = NULL;
  loom_tensor *mn = loom_min(a, 0, false, &at);
  ck_assert_int_eq(loom_dtype_of(mn), LOOM_I32);
  ck_assert_int_eq(loom_data_i32(mn)[0], INT32_MIN);
  ck_assert_int_eq(loom_data_i64(at)[0], 1);
  ck_assert_int_eq(loom_data_i64(loom_argmax(a, 0, false))[0], 0);
  loom_tensor *into =
      loom_from_array(LOOM_I32, (const int32_t[]){INT32_MAX, 0}, LOOM_SHAPE(2));
  loom_tensor *sc = loom_scatter_add(into, 0, IVEC(0, 0, 1), I32VEC(1, 1, 5));
  ck_assert_int_eq(loom_dtype_of(sc), LOOM_I32);
  CHECK_VALUES(sc, 0, -2147483647, 5);
}
END_TEST

/* A 0-dim int32 or int64 operand beside a uint8 tensor gives uint8 (the
 * same kind), its value wrapped modulo 256 as PyTorch casts it: 300 acts
 * as 44 and -1 as 255, where the saturating conversion would give 255 and
 * 0 (u + torch.tensor(-1) would leave u unchanged). */
START_TEST(test_uint8_with_0dim_integer_wraps) {
  loom_tensor *u =
      loom_from_array(LOOM_U8, (const uint8_t[]){5, 0, 250}, LOOM_SHAPE(3));
  loom_tensor *minus = loom_add(u, loom_scalar(LOOM_I64, -1));
  ck_assert_int_eq(loom_dtype_of(minus), LOOM_U8);
  CHECK_VALUES(minus, 0, 4, 255, 249);
  CHECK_VALUES(loom_add(loom_scalar(LOOM_I32, 300), u), 0, 49, 44, 38);
  CHECK_VALUES(loom_sub(u, loom_scalar(LOOM_I64, 0x1p40 + 7)), 0, 254, 249,
               243);
  CHECK_VALUES(loom_mul(u, loom_scalar(LOOM_I32, -1)), 0, 251, 0, 6);
  loom_tensor *mask =
      loom_from_array(LOOM_BOOL, (const uint8_t[]){1, 0, 1}, LOOM_SHAPE(3));
  loom_tensor *w = loom_where(mask, u, loom_scalar(LOOM_I64, -2));
  ck_assert_int_eq(loom_dtype_of(w), LOOM_U8);
  CHECK_VALUES(w, 0, 5, 254, 250);
  /* in place, sized and 0-dim operands alike (torch 1.13's values) */
  loom_tensor *v =
      loom_from_array(LOOM_U8, (const uint8_t[]){250, 3}, LOOM_SHAPE(2));
  ck_assert_ptr_eq(loom_add_(v, VEC(LOOM_I64, 300, -5), 1), v);
  CHECK_VALUES(v, 0, 38, 254);
  loom_add_(v, loom_scalar(LOOM_I64, 300), 1);
  CHECK_VALUES(v, 0, 82, 42);
  loom_add_(v, VEC(LOOM_I32, 3, -1), -300);
  CHECK_VALUES(v, 0, 206, 86);
  loom_mul_(v, VEC(LOOM_I64, 3, -1));
  CHECK_VALUES(v, 0, 106, 170);
}
END_TEST

START_TEST(test_inplace_updates) {
  loom_tensor *x = loom_ones(LOOM_F64, LOOM_SHAPE(2, 3));
  ck_assert_ptr_eq(loom_add_(x, VEC(LOOM_F32, 1, 2, 3), 0.5), x);
  CHECK_VALUES(x, 0, 1.5, 2, 2.5, 1.5, 2, 2.5);
  loom_mul_(x, loom_reshape(VEC(LOOM_F64, 2, -1), LOOM_SHAPE(2, 1)));
  CHECK_VALUES(x, 0, 3, 4, 5, -1.5, -2, -2.5);
  loom_masked_fill_(x, VEC(LOOM_BOOL, 1, 0, 0), 9);
  CHECK_VALUES(x, 0, 9, 4, 5, 9, -2, -2.5);
  loom_clamp_(x, -2, 4.5);
  CHECK_VALUES(x, 0, 4.5, 4, 4.5, 4.5, -2, -2);
  loom_zero_(loom_select(x, 1, 0));
  CHECK_VALUES(x, 0, 0, 4, 4.5, 0, -2, -2);
  ck_assert_ptr_null(loom_add_(x, loom_ones(LOOM_F64, LOOM_SHAPE(3, 3)), 1));
  CHECK_ERROR(LOOM_ERR_SHAPE, "add_");
  loom_clear_error();
  /* a buffer whose elements overlap ([0] [1] [1] [2]) is not written into
   * (an add_ would add twice into the middle element) */
  static double buf[3];
  loom_tensor *o = loom_from_buffer(LOOM_F64, buf, 2, (int64_t[]){2, 2},
                                    (int64_t[]){1, 1}, NULL, NULL);
  ck_assert_ptr_null(loom_add_(o, loom_ones(LOOM_F64, LOOM_SHAPE(2, 2)), 1));
  CHECK_ERROR(LOOM_ERR_STATE, "elements share memory");
}
END_TEST

/* ------------------------------------------------------------ reductions */

/* Sums over the rows of a matrix (a bias gradient's shape) add each
 * column's values in row order in double, then round once: bit for bit
 * the sequential sum, for row counts around the eight-row blocks, rows
 * further apart than their length (a narrowed matrix), float32 and 64,
 * and 1 or 2 threads. Values of mixed magnitude make the order show. */
START_TEST(test_column_sums_in_row_order) {
  static const int64_t row_counts[] = {0, 1, 7, 8, 9, 17, 40, 2051};
  for (int f64 = 0; f64 < 2; f64++)
    for (int threads = 1; threads <= 2; threads++)
      for (size_t k = 0; k < sizeof row_counts / sizeof *row_counts; k++) {
        loom_set_num_threads(threads);
        loom_dtype t = f64 ? LOOM_F64 : LOOM_F32;
        int64_t rows = row_counts[k], cols = 37;
        loom_manual_seed(11);
        loom_tensor *wide = loom_mul(
            loom_randn(NULL, t, 0, 1, LOOM_SHAPE(rows, cols + 3)),
            loom_exp(loom_rand(NULL, t, -12, 12, LOOM_SHAPE(rows, cols + 3))));
        loom_tensor *x = loom_narrow(wide, 1, 2, cols);
        loom_tensor *sum = loom_sum(x, (const int[]){0}, 1, false);
        ck_assert_loom(sum);
        loom_tensor *xc = loom_contiguous(loom_to_dtype(x, LOOM_F64));
        for (int64_t j = 0; j < cols; j++) {
          double want = 0;
          for (int64_t i = 0; i < rows; i++)
            want += loom_data_f64(xc)[i * cols + j];
          double got = f64 ? loom_data_f64(sum)[j] : loom_data_f32(sum)[j];
          double rounded = f64 ? want : (double)(float)want;
          ck_assert_msg(got == rounded,
                        "f64 %d threads %d rows %lld column %lld: %.17g "
                        "against %.17g",
                        f64, threads, (long long)rows, (long long)j, got,
                        rounded);
        }
      }
  loom_set_num_threads(0);
}
END_TEST

START_TEST(test_sum_mean_over_dims) {
  /* x[i][j][k] = 12 i + 4 j + k */
  loom_tensor *x = loom_reshape(range_f64(24), LOOM_SHAPE(2, 3, 4));
  loom_tensor *all = loom_sum_all(x);
  CHECK_SCALAR_SHAPE(all);
  ck_assert_double_eq(loom_item(all), 276);
  CHECK_VALUES(loom_sum(x, (const int[]){0}, 1, false), 0, 12, 14, 16, 18, 20,
               22, 24, 26, 28, 30, 32, 34);
  loom_tensor *s02 = loom_sum(x, (const int[]){0, 2}, 2, true);
  CHECK_SHAPE(s02, 1, 3, 1);
  CHECK_VALUES(s02, 0, 60, 92, 124);
  CHECK_SHAPE(loom_sum(x, (const int[]){-1}, 1, true), 2, 3, 1);
  CHECK_VALUES(loom_sum(x, (const int[]){-1}, 1, false), 0, 6, 22, 38, 54, 70,
               86);
  CHECK_SHAPE(loom_sum(x, NULL, 0, true), 1, 1, 1);
  CHECK_VALUES(loom_mean(x, (const int[]){1}, 1, false), 0, 4, 5, 6, 7, 16, 17,
               18, 19);
  ck_assert_double_eq(loom_item(loom_mean_all(x)), 11.5);
  /* non-contiguous inputs: a permutation and a strided slice */
  loom_tensor *p = loom_permute(x, (const int[]){2, 0, 1}); /* [k][i][j] */
  CHECK_VALUES(loom_sum(p, (const int[]){1}, 1, false), 0, 12, 20, 28, 14, 22,
               30, 16, 24, 32, 18, 26, 34);
  CHECK_VALUES(loom_sum(p, (const int[]){0, 2}, 2, false), 0, 66, 210);
  CHECK_VALUES(loom_mean(p, (const int[]){0}, 1, true), 0, 1.5, 5.5, 9.5, 13.5,
               17.5, 21.5);
  ck_assert_double_eq(loom_item(loom_sum_all(loom_slice(x, 2, 0, 4, 2))), 132);
  /* integer sums stay exact; bool and uint8 sum to int64 */
  loom_tensor *b = loom_sum_all(VEC(LOOM_BOOL, 1, 0, 1, 1));
  ck_assert_int_eq(loom_dtype_of(b), LOOM_I64);
  ck_assert_double_eq(loom_item(b), 3);
  ck_assert_int_eq(loom_dtype_of(loom_sum_all(VEC(LOOM_U8, 200, 100))),
                   LOOM_I64);
  ck_assert_double_eq(loom_item(loom_sum_all(VEC(LOOM_U8, 200, 100))), 300);
  loom_tensor *big = loom_sum_all(IVEC(INT64_MAX - 10, 5, 5));
  ck_assert_int_eq(loom_data_i64(big)[0], INT64_MAX);
  ck_assert_int_eq(loom_dtype_of(loom_mean_all(IVEC(1, 2))), LOOM_F32);
  ck_assert_double_eq(loom_item(loom_mean_all(IVEC(1, 2))), 1.5);
  ck_assert_double_eq(
      loom_item(loom_sum_all(loom_zeros(LOOM_F32, LOOM_SHAPE(0)))), 0);
}
END_TEST

START_TEST(test_var_std_prod_norm) {
  loom_tensor *v = VEC(LOOM_F64, 1, 2, 3, 4);
  ck_assert_double_eq(loom_item(loom_var(v, NULL, 0, 0, false)), 1.25);
  ck_assert_double_eq_tol(loom_item(loom_var(v, NULL, 0, 1, false)), 5.0 / 3,
                          1e-15);
  ck_assert_double_eq_tol(loom_item(loom_std(v, NULL, 0, 1, false)),
                          sqrt(5.0 / 3), 1e-15);
  loom_tensor *m = matrix(LOOM_F64, 2, 4, (double[]){1, 2, 3, 4, 2, 4, 6, 8});
  CHECK_VALUES(loom_var(m, (const int[]){1}, 1, 1, false), 1e-15, 5.0 / 3,
               20.0 / 3);
  loom_tensor *v0 = loom_var(m, (const int[]){0}, 1, 0, true);
  CHECK_SHAPE(v0, 1, 4);
  CHECK_VALUES(v0, 1e-15, 0.25, 1, 2.25, 4);
  CHECK_VALUES(loom_std(loom_t(m), (const int[]){0}, 1, 0, false), 1e-15,
               sqrt(1.25), sqrt(5));
  /* two passes: a large offset does not cancel the variance away */
  loom_tensor *off = loom_add_scalar(v, 1e9);
  ck_assert_double_eq_tol(loom_item(loom_var(off, NULL, 0, 0, false)), 1.25,
                          1e-6);
  ck_assert(isnan(loom_item(loom_var(VEC(LOOM_F64, 3), NULL, 0, 1, false))));

  loom_tensor *p = matrix(LOOM_F64, 2, 3, (double[]){1, 2, 3, 4, 5, 6});
  ck_assert_double_eq(loom_item(loom_prod(p, NULL, 0, false)), 720);
  CHECK_VALUES(loom_prod(p, (const int[]){0}, 1, false), 0, 4, 10, 18);
  loom_tensor *p1 = loom_prod(p, (const int[]){1}, 1, true);
  CHECK_SHAPE(p1, 2, 1);
  CHECK_VALUES(p1, 0, 6, 120);
  loom_tensor *pi = loom_prod(IVEC(3, -4, 5), NULL, 0, false);
  ck_assert_int_eq(loom_dtype_of(pi), LOOM_I64);
  ck_assert_double_eq(loom_item(pi), -60);
  ck_assert_double_eq(
      loom_item(loom_prod(VEC(LOOM_BOOL, 1, 1), NULL, 0, false)), 1);

  loom_tensor *n = VEC(LOOM_F64, 3, -4, 0, 12);
  ck_assert_double_eq(loom_item(loom_norm(n, 1, NULL, 0, false)), 19);
  ck_assert_double_eq(loom_item(loom_norm(n, 2, NULL, 0, false)), 13);
  ck_assert_double_eq_tol(loom_item(loom_norm(n, 3, NULL, 0, false)),
                          cbrt(27 + 64 + 1728), 1e-13);
  ck_assert_double_eq(loom_item(loom_norm(n, INFINITY, NULL, 0, false)), 12);
  loom_tensor *q = matrix(LOOM_F32, 2, 2, (double[]){3, 4, -6, 8});
  CHECK_VALUES(loom_norm(q, 2, (const int[]){1}, 1, false), 0, 5, 10);
  CHECK_SHAPE(loom_norm(q, 2, (const int[]){0}, 1, true), 1, 2);
  CHECK_VALUES(loom_norm(q, INFINITY, (const int[]){0}, 1, true), 0, 6, 8);
  ck_assert_ptr_null(loom_norm(q, -1, NULL, 0, false));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "norm");
}
END_TEST

START_TEST(test_logsumexp_and_extremes) {
  ck_assert_double_eq_tol(
      loom_item(loom_logsumexp(VEC(LOOM_F64, 1, 2, 3), NULL, 0, false)),
      3 + log(1 + exp(-1) + exp(-2)), 1e-15);
  loom_tensor *x =
      matrix(LOOM_F32, 3, 2,
             (double[]){1000, 1000, -INFINITY, -INFINITY, 0, -INFINITY});
  loom_tensor *l = loom_logsumexp(x, (const int[]){1}, 1, false);
  CHECK_SHAPE(l, 3);
  CHECK_VALUES(l, 1e-7, 1000 + log(2), -INFINITY, 0);
  CHECK_SHAPE(loom_logsumexp(x, (const int[]){0}, 1, true), 1, 2);
  CHECK_VALUES(loom_logsumexp(VEC(LOOM_F64, INFINITY, 1), NULL, 0, false), 0,
               INFINITY);

  loom_tensor *m = matrix(LOOM_F64, 2, 3, (double[]){1, 5, 5, 7, -1, 7});
  CHECK_VALUES(loom_amax(m, (const int[]){1}, 1, false), 0, 5, 7);
  CHECK_VALUES(loom_amin(m, (const int[]){1}, 1, false), 0, 1, -1);
  CHECK_VALUES(loom_amax(m, (const int[]){0}, 1, true), 0, 7, 5, 7);
  ck_assert_double_eq(loom_item(loom_amax(m, NULL, 0, false)), 7);
  ck_assert(
      isnan(loom_item(loom_amax(VEC(LOOM_F64, 1, NAN, 3), NULL, 0, false))));
  ck_assert(
      isnan(loom_item(loom_amin(VEC(LOOM_F32, 1, NAN, -3), NULL, 0, false))));
  ck_assert_double_eq(loom_item(loom_amax(IVEC(-7, -9), NULL, 0, false)), -7);
  ck_assert_ptr_null(
      loom_amax(loom_zeros(LOOM_F32, LOOM_SHAPE(0)), NULL, 0, false));
  CHECK_ERROR(LOOM_ERR_SHAPE, "amax");

  loom_tensor *ix;
  loom_tensor *mx = loom_max(m, 1, false, &ix);
  CHECK_VALUES(mx, 0, 5, 7);
  CHECK_VALUES(ix, 0, 1, 0); /* first occurrence on ties */
  ck_assert_int_eq(loom_dtype_of(ix), LOOM_I64);
  loom_tensor *mn = loom_min(m, 0, true, &ix);
  CHECK_SHAPE(mn, 1, 3);
  CHECK_SHAPE(ix, 1, 3);
  CHECK_VALUES(mn, 0, 1, -1, 5);
  CHECK_VALUES(ix, 0, 0, 1, 0);
  CHECK_VALUES(loom_max(loom_t(m), 0, false, &ix), 0, 5, 7);
  CHECK_VALUES(ix, 0, 1, 0);
  loom_tensor *nan = VEC(LOOM_F32, 1, NAN, 5, NAN);
  CHECK_VALUES(loom_max(nan, 0, false, &ix), 0, NAN);
  CHECK_VALUES(ix, 0, 1); /* NaN wins, the first one */
  CHECK_VALUES(loom_argmin(nan, 0, false), 0, 1);
  CHECK_VALUES(loom_argmax(m, -1, false), 0, 1, 0);
  CHECK_VALUES(loom_argmin(m, 1, true), 0, 0, 1);
  CHECK_SHAPE(loom_argmin(m, 1, true), 2, 1);
  CHECK_VALUES(loom_argmax(IVEC(3, 9, 9), 0, false), 0, 1);
  CHECK_SCALAR_SHAPE(loom_argmax(IVEC(3, 9, 9), 0, false));
  ck_assert_ptr_null(loom_argmax(m, 2, false));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "max");
}
END_TEST

/* 16M float32 copies of 0.1: naive float accumulation would be off by
 * percents; the kernels accumulate in double. */
START_TEST(test_large_sum_is_accurate) {
  const int64_t n = 1 << 24;
  loom_tensor *x = loom_full(LOOM_F32, 0.1, LOOM_SHAPE(n));
  double want = (double)n * (double)0.1f;
  ck_assert_double_eq_tol(loom_item(loom_sum_all(x)), want, want * 1e-6);
  ck_assert_double_eq_tol(loom_item(loom_mean_all(x)), 0.1f, 1e-7);
  loom_tensor *m = loom_reshape(x, LOOM_SHAPE(4, n / 4));
  CHECK_VALUES(loom_sum(m, (const int[]){1}, 1, false), 1e-6, want / 4,
               want / 4, want / 4, want / 4);
}
END_TEST

/* Identical bits with one thread and two, for reductions over every kind
 * of dim, elementwise ops, products and layer norm, all above the
 * threading threshold. */
START_TEST(test_results_independent_of_threads) {
  loom_rng *g = loom_rng_new(17);
  loom_tensor *x = loom_randn(g, LOOM_F32, 0, 1, LOOM_SHAPE(512, 600));
  loom_tensor *y = loom_randn(g, LOOM_F64, 0, 1, LOOM_SHAPE(600, 512));
  loom_rng_free(g);
  loom_tensor *res[2][16];
  loom_tensor *w = loom_set_requires_grad(loom_narrow(x, 0, 0, 300), true);
  /* thin products split by columns into unequal parts */
  loom_rng *g2 = loom_rng_new(18);
  loom_tensor *p = loom_randn(g2, LOOM_F32, 0, 1, LOOM_SHAPE(32, 1400));
  loom_tensor *q = loom_randn(g2, LOOM_F32, 0, 1, LOOM_SHAPE(1400, 48));
  loom_tensor *r16 = loom_randn(g2, LOOM_F32, 0, 1, LOOM_SHAPE(16, 3000));
  loom_tensor *u = loom_randn(g2, LOOM_F32, 0, 1, LOOM_SHAPE(3000, 48));
  loom_rng_free(g2);
  for (int r = 0; r < 2; r++) {
    loom_set_num_threads(r + 1);
    ck_assert_int_eq(loom_num_threads(), r + 1);
    res[r][0] = loom_sum_all(x);
    res[r][1] = loom_sum(x, (const int[]){0}, 1, false);
    res[r][2] = loom_sum(x, (const int[]){1}, 1, true);
    res[r][3] = loom_mean(loom_t(x), (const int[]){0}, 1, false);
    res[r][4] = loom_mean_all(y);
    res[r][5] = loom_sum(loom_t(y), (const int[]){1}, 1, false);
    res[r][6] = loom_exp(x);
    res[r][7] = loom_add(x, loom_t(y));
    res[r][8] = loom_softmax(x, 0);
    res[r][9] = loom_amax(y, (const int[]){0}, 1, false);
    /* products: split over threads by rows, by columns, packed */
    res[r][10] = loom_matmul(x, loom_t(x));
    res[r][11] = loom_matmul(loom_narrow(x, 0, 0, 64), loom_t(x));
    loom_fixed_weights_begin();
    res[r][12] = loom_linear(loom_narrow(x, 0, 0, 32), w, NULL);
    loom_fixed_weights_end();
    res[r][13] = loom_layer_norm(y, 1, NULL, NULL, 1e-5);
    res[r][14] = loom_matmul(p, q);
    res[r][15] = loom_matmul(r16, u);
  }
  loom_set_num_threads(0);
  for (int k = 0; k < 16; k++) {
    size_t bytes = (size_t)loom_numel(res[0][k]) *
                   loom_dtype_size(loom_dtype_of(res[0][k]));
    ck_assert(loom_same_shape(res[0][k], res[1][k]));
    ck_assert_msg(memcmp(loom_data(res[0][k]), loom_data(res[1][k]), bytes) ==
                      0,
                  "result %d differs between 1 and 2 threads", k);
  }
  /* and the values are right: the sum of the column sums */
  double s = 0;
  const float *cols = loom_data_f32(res[0][1]);
  for (int j = 0; j < 600; j++)
    s += cols[j];
  ck_assert_double_eq_tol(loom_item(res[0][0]), s, 1e-3);
}
END_TEST

/* ------------------------------------------------------------ softmax */

START_TEST(test_softmax) {
  loom_tensor *x =
      matrix(LOOM_F64, 2, 3, (double[]){1, 2, 3, 1000, 1000, 1000});
  double z = 1 + exp(-1) + exp(-2);
  CHECK_VALUES(loom_softmax(x, 1), 1e-15, exp(-2) / z, exp(-1) / z, 1 / z,
               1.0 / 3, 1.0 / 3, 1.0 / 3);
  CHECK_VALUES(loom_log_softmax(x, -1), 1e-15, -2 - log(z), -1 - log(z),
               -log(z), -log(3), -log(3), -log(3));
  /* along the outer dim */
  loom_tensor *c = matrix(LOOM_F32, 2, 2, (double[]){1, 2, 3, 4});
  double e2 = exp(2);
  CHECK_VALUES(loom_softmax(c, 0), 1e-7, 1 / (1 + e2), 1 / (1 + e2),
               e2 / (1 + e2), e2 / (1 + e2));
  CHECK_VALUES(loom_log_softmax(VEC(LOOM_F32, 1000, 0), 0), 0, 0, -1000);
  CHECK_VALUES(loom_softmax(VEC(LOOM_F64, 0, -INFINITY), 0), 0, 1, 0);
  /* NaN or +inf anywhere in a row makes it NaN, as torch (the general
   * loop and the float32 last-dim one); a row of -inf alone gives zeros */
  for (int dt = 0; dt < 2; dt++) {
    loom_tensor *bad = matrix(
        dt ? LOOM_F32 : LOOM_F64, 3, 3,
        (double[]){NAN, 1, 2, INFINITY, 1, 2, -INFINITY, -INFINITY, -INFINITY});
    CHECK_VALUES(loom_softmax(bad, 1), 0, NAN, NAN, NAN, NAN, NAN, NAN, 0, 0,
                 0);
  }
  /* a middle dim of a strided input: every slice sums to 1 */
  loom_rng *g = loom_rng_new(3);
  loom_tensor *r =
      loom_permute(loom_randn(g, LOOM_F64, 0, 3, LOOM_SHAPE(4, 5, 6)),
                   (const int[]){2, 0, 1});
  loom_rng_free(g);
  loom_tensor *sm = loom_softmax(r, 1);
  CHECK_SHAPE(sm, 6, 4, 5);
  loom_tensor *sums = loom_sum(sm, (const int[]){1}, 1, false);
  for (int i = 0; i < 30; i++)
    ck_assert_double_eq_tol(loom_data_f64(sums)[i], 1, 1e-14);
  ck_assert(loom_allclose(loom_log_softmax(r, 1), loom_log(sm), 1e-12, 1e-12));
  CHECK_VALUES(loom_softmax(IVEC(0, 0), 0), 0, 0.5, 0.5); /* ints: float */
}
END_TEST

/* ------------------------------------------------------------ matmul */

/* c (n x m) = a (n x k) b (k x m), all contiguous */
static void naive_mm(const double *a, const double *b, double *c, int64_t n,
                     int64_t k, int64_t m) {
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < m; j++) {
      double s = 0;
      for (int64_t q = 0; q < k; q++)
        s += a[i * k + q] * b[q * m + j];
      c[i * m + j] = s;
    }
}

START_TEST(test_matmul_shapes_and_values) {
  loom_tensor *a = matrix(LOOM_F64, 3, 2, (double[]){1, 2, 3, 4, 5, 6});
  loom_tensor *b = matrix(LOOM_F64, 2, 3, (double[]){1, 0, 2, 0, 1, 3});
  loom_tensor *ab = loom_matmul(a, b);
  CHECK_SHAPE(ab, 3, 3);
  CHECK_VALUES(ab, 0, 1, 2, 8, 3, 4, 18, 5, 6, 28);
  loom_tensor *dot =
      loom_matmul(VEC(LOOM_F64, 1, 2, 3), VEC(LOOM_F64, 4, 5, 6));
  CHECK_SCALAR_SHAPE(dot);
  ck_assert_double_eq(loom_item(dot), 32);
  loom_tensor *mv = loom_matmul(a, VEC(LOOM_F64, 1, 1));
  CHECK_SHAPE(mv, 3);
  CHECK_VALUES(mv, 0, 3, 7, 11);
  loom_tensor *vm = loom_matmul(VEC(LOOM_F64, 1, 1, 1), a);
  CHECK_SHAPE(vm, 2);
  CHECK_VALUES(vm, 0, 9, 12);
  /* transposed operands give the values of their contiguous copies */
  CHECK_VALUES(loom_matmul(loom_t(b), loom_t(a)), 0, 1, 3, 5, 2, 4, 6, 8, 18,
               28);
  CHECK_VALUES(loom_matmul(loom_t(b), VEC(LOOM_F64, 1, -1)), 0, 1, -1, -1);
  /* empty inner dim: zeros */
  CHECK_VALUES(loom_matmul(loom_ones(LOOM_F32, LOOM_SHAPE(2, 0)),
                           loom_ones(LOOM_F32, LOOM_SHAPE(0, 2))),
               0, 0, 0, 0, 0);
  CHECK_SHAPE(loom_matmul(loom_ones(LOOM_F32, LOOM_SHAPE(0, 3)),
                          loom_ones(LOOM_F32, LOOM_SHAPE(3, 2))),
              0, 2);
  /* float32 @ float64 promotes; integers are refused */
  loom_tensor *mixed = loom_matmul(loom_to_dtype(a, LOOM_F32), b);
  ck_assert_int_eq(loom_dtype_of(mixed), LOOM_F64);
  CHECK_VALUES(mixed, 0, 1, 2, 8, 3, 4, 18, 5, 6, 28);
  ck_assert_ptr_null(loom_matmul(IVEC(1, 2), IVEC(1, 2)));
  CHECK_ERROR(LOOM_ERR_DTYPE, "matmul");
  ck_assert_ptr_null(loom_matmul(loom_zeros(LOOM_F32, LOOM_SHAPE(2, 3)),
                                 loom_zeros(LOOM_F32, LOOM_SHAPE(4, 5))));
  CHECK_ERROR(LOOM_ERR_SHAPE, "[2, 3] @ [4, 5]");
  ck_assert_ptr_null(loom_matmul(loom_scalar(LOOM_F32, 1), a));
  CHECK_ERROR(LOOM_ERR_SHAPE, "matmul");
  ck_assert_ptr_null(loom_bmm(a, b));
  CHECK_ERROR(LOOM_ERR_SHAPE, "bmm");
}
END_TEST

/* Every batch of out equals naive_mm of the matching (broadcast) slices. */
static void check_batched(const loom_tensor *out, const loom_tensor *a,
                          const loom_tensor *b, int64_t batches,
                          const int64_t *ia, const int64_t *ib) {
  int64_t n = loom_size(a, -2), k = loom_size(a, -1), m = loom_size(b, -1);
  loom_tensor *ac = loom_contiguous(loom_to_dtype(a, LOOM_F64));
  loom_tensor *bc = loom_contiguous(loom_to_dtype(b, LOOM_F64));
  loom_tensor *oc = loom_contiguous(loom_to_dtype(out, LOOM_F64));
  double want[64];
  for (int64_t i = 0; i < batches; i++) {
    naive_mm(loom_data_f64(ac) + ia[i] * n * k,
             loom_data_f64(bc) + ib[i] * k * m, want, n, k, m);
    for (int64_t e = 0; e < n * m; e++)
      ck_assert_double_eq_tol(loom_data_f64(oc)[i * n * m + e], want[e],
                              1e-12 * (1 + fabs(want[e])));
  }
}

START_TEST(test_matmul_batched_broadcast) {
  loom_rng *g = loom_rng_new(8);
  /* [2, 1, 3, 2] @ [4, 2, 3] -> [2, 4, 3, 3] */
  loom_tensor *a = loom_randn(g, LOOM_F64, 0, 1, LOOM_SHAPE(2, 1, 3, 2));
  loom_tensor *b = loom_randn(g, LOOM_F64, 0, 1, LOOM_SHAPE(4, 2, 3));
  loom_tensor *c = loom_matmul(a, b);
  CHECK_SHAPE(c, 2, 4, 3, 3);
  check_batched(c, a, b, 8, (const int64_t[]){0, 0, 0, 0, 1, 1, 1, 1},
                (const int64_t[]){0, 1, 2, 3, 0, 1, 2, 3});
  /* a 3-D left operand with a 2-D right one (folded into one GEMM), and
   * the same with a transposed, non-foldable left operand */
  loom_tensor *l = loom_randn(g, LOOM_F64, 0, 1, LOOM_SHAPE(3, 4, 5));
  loom_tensor *r = loom_randn(g, LOOM_F64, 0, 1, LOOM_SHAPE(5, 2));
  loom_tensor *lr = loom_matmul(l, r);
  CHECK_SHAPE(lr, 3, 4, 2);
  check_batched(lr, l, loom_expand(r, LOOM_SHAPE(3, 5, 2)), 3,
                (const int64_t[]){0, 1, 2}, (const int64_t[]){0, 0, 0});
  loom_tensor *lt =
      loom_transpose(loom_randn(g, LOOM_F64, 0, 1, LOOM_SHAPE(4, 3, 5)), 0, 1);
  check_batched(loom_matmul(lt, r), lt, loom_expand(r, LOOM_SHAPE(3, 5, 2)), 3,
                (const int64_t[]){0, 1, 2}, (const int64_t[]){0, 0, 0});
  /* size-1 dims among strided batch dims: the fold into one GEMM must
   * not read a size-1 dim's stride as a row stride (a regression) */
  double buf[6] = {1, -2, 3, 0.5, -1, 4}; /* sb[i][0][j][0] = buf[i + 2j] */
  loom_tensor *sb = loom_from_buffer(LOOM_F64, buf, LOOM_SHAPE(2, 1, 3, 1),
                                     (const int64_t[]){1, 1, 2, 1}, NULL, NULL);
  CHECK_VALUES(
      loom_matmul(sb, loom_reshape(VEC(LOOM_F64, 1, 2, 3), LOOM_SHAPE(1, 3))),
      0, 1, 2, 3, 3, 6, 9, -1, -2, -3, -2, -4, -6, 0.5, 1, 1.5, 4, 8, 12);
  /* transposed batches on both sides: bmm of t() views */
  loom_tensor *p = loom_randn(g, LOOM_F32, 0, 1, LOOM_SHAPE(2, 5, 3));
  loom_tensor *q = loom_randn(g, LOOM_F32, 0, 1, LOOM_SHAPE(2, 4, 5));
  loom_tensor *pq = loom_bmm(loom_t(p), loom_t(q));
  CHECK_SHAPE(pq, 2, 3, 4);
  ck_assert(loom_allclose(
      pq, loom_bmm(loom_contiguous(loom_t(p)), loom_contiguous(loom_t(q))),
      1e-6, 1e-6));
  /* a vector against a batch */
  loom_tensor *vb =
      loom_matmul(VEC(LOOM_F64, 1, 0, -1),
                  loom_reshape(range_f64(12), LOOM_SHAPE(2, 3, 2)));
  CHECK_SHAPE(vb, 2, 2);
  CHECK_VALUES(vb, 0, -4, -4, -4, -4);
  loom_rng_free(g);
}
END_TEST

START_TEST(test_addmm_baddbmm_linear) {
  loom_tensor *a = matrix(LOOM_F64, 2, 2, (double[]){1, 2, 3, 4});
  loom_tensor *b = matrix(LOOM_F64, 2, 3, (double[]){1, 0, 1, 0, 1, 1});
  /* a @ b = [[1, 2, 3], [3, 4, 7]] */
  loom_tensor *c = VEC(LOOM_F64, 10, 20, 30);
  CHECK_VALUES(loom_addmm(c, a, b, 0.5, 2), 0, 7, 14, 21, 11, 18, 29);
  CHECK_VALUES(
      loom_addmm(loom_full(LOOM_F64, NAN, LOOM_SHAPE(2, 3)), a, b, 0, 1), 0, 1,
      2, 3, 3, 4, 7); /* beta 0 ignores c, NaN included */
  CHECK_VALUES(
      loom_addmm(loom_t(matrix(LOOM_F64, 3, 2, (double[]){1, 2, 3, 4, 5, 6})),
                 loom_t(a), b, 1, -1),
      0, 0, 0, 1, 0, 0, 0);
  ck_assert_ptr_null(loom_addmm(VEC(LOOM_F64, 1, 2), a, b, 1, 1));
  CHECK_ERROR(LOOM_ERR_SHAPE, "addmm");

  loom_tensor *ba = loom_stack((loom_tensor *[]){a, loom_neg(a)}, 2, 0);
  loom_tensor *bb = loom_stack((loom_tensor *[]){b, b}, 2, 0);
  loom_tensor *bc = loom_reshape(VEC(LOOM_F64, 1, -1), LOOM_SHAPE(2, 1, 1));
  CHECK_VALUES(loom_baddbmm(bc, ba, bb, 3, 1), 0, 4, 5, 6, 6, 7, 10, -4, -5, -6,
               -6, -7, -10);
  ck_assert_ptr_null(loom_baddbmm(bc, a, b, 1, 1));
  CHECK_ERROR(LOOM_ERR_SHAPE, "baddbmm");

  /* linear on [2, 3, 4] input: x @ w^T + bias on the last dim */
  loom_tensor *x = loom_reshape(range_f64(24), LOOM_SHAPE(2, 3, 4));
  loom_tensor *w = matrix(LOOM_F64, 2, 4, (double[]){1, 0, 0, 0, 1, 1, 1, 1});
  loom_tensor *y = loom_linear(x, w, VEC(LOOM_F64, 0.5, -1));
  CHECK_SHAPE(y, 2, 3, 2);
  CHECK_VALUES(y, 0, 0.5, 5, 4.5, 21, 8.5, 37, 12.5, 53, 16.5, 69, 20.5, 85);
  loom_tensor *y1 = loom_linear(VEC(LOOM_F64, 1, 2, 3, 4), w, NULL);
  CHECK_SHAPE(y1, 2);
  CHECK_VALUES(y1, 0, 1, 10);
  CHECK_VALUES(
      loom_linear(loom_reshape(VEC(LOOM_F64, 1, 2, 3, 4), LOOM_SHAPE(1, 4)), w,
                  NULL),
      0, 1, 10);
  ck_assert_ptr_null(loom_linear(VEC(LOOM_F64, 1, 2, 3), w, NULL));
  CHECK_ERROR(LOOM_ERR_SHAPE, "linear");
  ck_assert_ptr_null(loom_linear(x, w, VEC(LOOM_F64, 1, 2, 3)));
  CHECK_ERROR(LOOM_ERR_SHAPE, "linear");
}
END_TEST

/* einsum on worked examples (PyTorch's values on others are in
 * test_ops_parity.c), its edges, and every error. */
START_TEST(test_einsum) {
  loom_tensor *a = matrix(LOOM_F64, 2, 2, (double[]){1, 2, 3, 4});
  loom_tensor *b = matrix(LOOM_F64, 2, 3, (double[]){1, 0, 1, 0, 1, 1});
  loom_tensor *ab = loom_einsum("ij,jk->ik", (loom_tensor *[]){a, b}, 2);
  CHECK_SHAPE(ab, 2, 3);
  CHECK_VALUES(ab, 0, 1, 2, 3, 3, 4, 7);
  /* float32 against float64: promoted */
  ab =
      loom_einsum("ij,jk", (loom_tensor *[]){loom_to_dtype(a, LOOM_F32), b}, 2);
  ck_assert_int_eq(loom_dtype_of(ab), LOOM_F64);
  CHECK_VALUES(ab, 0, 1, 2, 3, 3, 4, 7);
  CHECK_VALUES(loom_einsum("ii", &a, 1), 0, 5);
  CHECK_VALUES(loom_einsum("ii->i", &a, 1), 0, 1, 4);
  CHECK_VALUES(loom_einsum("ij->j", &a, 1), 0, 4, 6);
  CHECK_VALUES(loom_einsum("ba", &a, 1), 0, 1, 3, 2, 4); /* implicit: ab */
  CHECK_VALUES(loom_einsum("i,i",
                           (loom_tensor *[]){VEC(LOOM_F64, 1, 2, 3),
                                             VEC(LOOM_F64, 4, 5, 6)},
                           2),
               0, 32);
  /* a size-1 dim broadcasts against the other operand's */
  CHECK_VALUES(
      loom_einsum("i,i->i",
                  (loom_tensor *[]){VEC(LOOM_F64, 1, 2, 3), VEC(LOOM_F64, 10)},
                  2),
      0, 10, 20, 30);
  /* the ellipsis of 0-dimensional operands; an empty contraction */
  CHECK_VALUES(loom_einsum("...,...->...",
                           (loom_tensor *[]){loom_scalar(LOOM_F64, 3),
                                             loom_scalar(LOOM_F64, 4)},
                           2),
               0, 12);
  loom_tensor *empty =
      loom_einsum("ij,jk->ik",
                  (loom_tensor *[]){loom_ones(LOOM_F64, LOOM_SHAPE(2, 0)),
                                    loom_ones(LOOM_F64, LOOM_SHAPE(0, 3))},
                  2);
  CHECK_SHAPE(empty, 2, 3);
  CHECK_VALUES(empty, 0, 0, 0, 0, 0, 0, 0);
  /* a result is never a view of its operand */
  loom_tensor *same = loom_einsum("ij->ij", &a, 1);
  loom_tensor *before = loom_clone(a);
  ck_assert_loom(loom_fill_(same, -1));
  ck_assert(loom_equal(a, before));

  /* errors */
  loom_tensor *v = VEC(LOOM_F64, 1, 2);
  loom_tensor *two[] = {a, b};
  ck_assert_ptr_null(loom_einsum("ij", two, 2));
  CHECK_ERROR(LOOM_ERR_ARGUMENT,
              "einsum: the equation 'ij' has 1 terms for 2 operands");
  ck_assert_ptr_null(loom_einsum("ij,jk,k", two, 2));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "einsum: the equation 'ij,jk,k' has more "
                                 "terms than the 2 operands given");
  ck_assert_ptr_null(loom_einsum("i", &a, 1));
  CHECK_ERROR(LOOM_ERR_SHAPE, "einsum: operand 0 is [2, 2], but its term has "
                              "1 subscripts and no ellipsis");
  ck_assert_ptr_null(loom_einsum("ijk...", &a, 1));
  CHECK_ERROR(LOOM_ERR_SHAPE, "einsum: operand 0 is [2, 2], but its term has "
                              "3 subscripts besides the ellipsis");
  ck_assert_ptr_null(loom_einsum("i.j", &a, 1));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "einsum: a '.' in operand 0's term that is "
                                 "not part of one ellipsis '...'");
  ck_assert_ptr_null(loom_einsum("......", &a, 1));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "einsum: a '.' in operand 0's term");
  ck_assert_ptr_null(loom_einsum("ij->i->j", &a, 1));
  CHECK_ERROR(LOOM_ERR_ARGUMENT,
              "einsum: '-' in the output (subscripts are letters");
  ck_assert_ptr_null(loom_einsum("i1", &a, 1));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "einsum: '1' in operand 0's term");
  /* a byte beyond ASCII (here the first of UTF-8's e acute) or a control
   * is named by value: as a character it made the message invalid UTF-8 */
  ck_assert_ptr_null(loom_einsum("i\xc3\xa9", &a, 1));
  CHECK_ERROR(LOOM_ERR_ARGUMENT,
              "einsum: byte 0xc3 at position 1 of the equation");
  ck_assert_ptr_null(loom_einsum("i\tj", &a, 1));
  CHECK_ERROR(LOOM_ERR_ARGUMENT,
              "einsum: byte 0x09 at position 1 of the equation");
  /* whichever message would quote the equation */
  ck_assert_ptr_null(loom_einsum("i,\xc3", &a, 1));
  CHECK_ERROR(LOOM_ERR_ARGUMENT,
              "einsum: byte 0xc3 at position 2 of the equation");
  ck_assert_ptr_null(loom_einsum("i->\xc3", two, 2));
  CHECK_ERROR(LOOM_ERR_ARGUMENT,
              "einsum: byte 0xc3 at position 3 of the equation");
  ck_assert_ptr_null(loom_einsum("abcdefghi", &a, 1));
  CHECK_ERROR(LOOM_ERR_ARGUMENT,
              "einsum: more than 8 subscripts in operand 0's term");
  ck_assert_ptr_null(loom_einsum("ij->k", &a, 1));
  CHECK_ERROR(LOOM_ERR_ARGUMENT,
              "einsum: output subscript k is in no operand's term");
  ck_assert_ptr_null(loom_einsum("ij->ii", &a, 1));
  CHECK_ERROR(LOOM_ERR_ARGUMENT,
              "einsum: output subscript i appears more than once");
  ck_assert_ptr_null(loom_einsum("ii", &b, 1));
  CHECK_ERROR(LOOM_ERR_SHAPE, "einsum: subscript i repeated in operand 0 [2, "
                              "3] with sizes 2 and 3");
  ck_assert_ptr_null(loom_einsum("ij,ij", two, 2));
  CHECK_ERROR(LOOM_ERR_SHAPE, "einsum: subscript j has size 3 in operand 1 "
                              "and 2 before (sizes must be equal or 1)");
  ck_assert_ptr_null(
      loom_einsum("...,...", (loom_tensor *[]){v, VEC(LOOM_F64, 1, 2, 3)}, 2));
  CHECK_ERROR(LOOM_ERR_SHAPE, "einsum: the ellipsis of operand 1 [3] does not "
                              "broadcast with the other operands'");
  loom_tensor *big = loom_ones(LOOM_F64, LOOM_SHAPE(1, 1, 1, 1, 1));
  ck_assert_ptr_null(
      loom_einsum("abcde,fghij", (loom_tensor *[]){big, big}, 2));
  CHECK_ERROR(LOOM_ERR_SHAPE, "einsum: an output of more than 8 dims for "
                              "'abcde,fghij'");
  ck_assert_ptr_null(loom_einsum("abcde,fghij,abcde,fghij->",
                                 (loom_tensor *[]){big, big, big, big}, 4));
  CHECK_ERROR(LOOM_ERR_SHAPE, "einsum: contracting operand 1 gives 10 dims");
  ck_assert_ptr_null(loom_einsum("i", (loom_tensor *[]){IVEC(1, 2)}, 1));
  CHECK_ERROR(LOOM_ERR_DTYPE, "einsum: expected a float tensor, got int64");
  ck_assert_ptr_null(loom_einsum("", two, 0));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "einsum: 0 operands (1 to 16)");
  ck_assert_ptr_null(loom_einsum("i,i", (loom_tensor *[]){v, NULL}, 2));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "einsum: NULL argument");
}
END_TEST

/* ------------------------------------------------------------ convolution */

typedef struct {
  int64_t n, c, h, w, oc, kh, kw, sh, sw, ph, pw, dh, dw, groups;
} conv_case;

/* Direct convolution from the definition, in double. */
static void naive_conv(const conv_case *p, const double *x, const double *w,
                       const double *b, double *y, int64_t oh, int64_t ow) {
  int64_t cg = p->c / p->groups, og = p->oc / p->groups;
  for (int64_t n = 0; n < p->n; n++)
    for (int64_t o = 0; o < p->oc; o++)
      for (int64_t i = 0; i < oh; i++)
        for (int64_t j = 0; j < ow; j++) {
          double s = b ? b[o] : 0;
          for (int64_t ci = 0; ci < cg; ci++)
            for (int64_t ki = 0; ki < p->kh; ki++)
              for (int64_t kj = 0; kj < p->kw; kj++) {
                int64_t r = i * p->sh - p->ph + ki * p->dh;
                int64_t q = j * p->sw - p->pw + kj * p->dw;
                if (r < 0 || r >= p->h || q < 0 || q >= p->w)
                  continue;
                int64_t c = o / og * cg + ci;
                s += x[((n * p->c + c) * p->h + r) * p->w + q] *
                     w[((o * cg + ci) * p->kh + ki) * p->kw + kj];
              }
          y[((n * p->oc + o) * oh + i) * ow + j] = s;
        }
}

START_TEST(test_conv2d_vs_direct) {
  const conv_case cases[] = {
      {2, 4, 7, 6, 6, 3, 2, 2, 1, 1, 2, 1, 2, 2}, /* everything at once */
      {1, 3, 5, 5, 2, 3, 3, 1, 1, 0, 0, 1, 1, 1}, /* plain */
      {2, 3, 4, 5, 4, 1, 1, 1, 1, 0, 0, 1, 1, 1}, /* pointwise */
      {1, 4, 6, 6, 4, 3, 3, 2, 2, 1, 1, 1, 1, 4}, /* depthwise, strided */
      {1, 2, 9, 8, 2, 2, 3, 3, 2, 2, 0, 3, 1, 1}, /* dilation, asymmetric */
  };
  loom_rng *g = loom_rng_new(21);
  static double want[4096];
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const conv_case *p = &cases[k];
    loom_tensor *x =
        loom_randn(g, LOOM_F64, 0, 1, LOOM_SHAPE(p->n, p->c, p->h, p->w));
    loom_tensor *w = loom_randn(
        g, LOOM_F64, 0, 1, LOOM_SHAPE(p->oc, p->c / p->groups, p->kh, p->kw));
    loom_tensor *b =
        k % 2 ? NULL : loom_randn(g, LOOM_F64, 0, 1, LOOM_SHAPE(p->oc));
    loom_conv2d_opts o = {
        {p->sh, p->sw}, {p->ph, p->pw}, {p->dh, p->dw}, p->groups};
    loom_tensor *y = loom_conv2d(x, w, b, o);
    int64_t oh = (p->h + 2 * p->ph - p->dh * (p->kh - 1) - 1) / p->sh + 1;
    int64_t ow = (p->w + 2 * p->pw - p->dw * (p->kw - 1) - 1) / p->sw + 1;
    CHECK_SHAPE(y, p->n, p->oc, oh, ow);
    naive_conv(p, loom_data_f64(x), loom_data_f64(w),
               b ? loom_data_f64(b) : NULL, want, oh, ow);
    for (int64_t i = 0; i < loom_numel(y); i++)
      ck_assert_msg(fabs(loom_data_f64(y)[i] - want[i]) <= 1e-12,
                    "case %zu element %lld: %.17g vs %.17g", k, (long long)i,
                    loom_data_f64(y)[i], want[i]);
  }
  /* an unbatched float32 input with a float64 weight: promoted, 3-D out */
  loom_tensor *x3 = loom_ones(LOOM_F32, LOOM_SHAPE(1, 3, 3));
  loom_tensor *y3 = loom_conv2d(x3, loom_ones(LOOM_F64, LOOM_SHAPE(1, 1, 2, 2)),
                                NULL, (loom_conv2d_opts){{0}, {1, 1}, {0}, 0});
  CHECK_SHAPE(y3, 1, 4, 4);
  ck_assert_int_eq(loom_dtype_of(y3), LOOM_F64);
  CHECK_VALUES(y3, 0, 1, 2, 2, 1, 2, 4, 4, 2, 2, 4, 4, 2, 1, 2, 2, 1);
  ck_assert_ptr_null(loom_conv2d(loom_ones(LOOM_F32, LOOM_SHAPE(1, 3, 4, 4)),
                                 loom_ones(LOOM_F32, LOOM_SHAPE(2, 2, 3, 3)),
                                 NULL, (loom_conv2d_opts){{0}, {0}, {0}, 0}));
  CHECK_ERROR(LOOM_ERR_SHAPE, "conv2d");
  ck_assert_ptr_null(loom_conv2d(x3,
                                 loom_ones(LOOM_F32, LOOM_SHAPE(1, 1, 5, 5)),
                                 NULL, (loom_conv2d_opts){{0}, {0}, {0}, 0}));
  CHECK_ERROR(LOOM_ERR_SHAPE, "conv2d");
  loom_rng_free(g);
}
END_TEST

/* conv1d against the definition (naive_conv over one row), worked causal
 * values, and every error. */
START_TEST(test_conv1d) {
  const conv_case cases[] = {
      /* n, c, h, w, oc, kh, kw, sh, sw, ph, pw, dh, dw, groups */
      {2, 3, 1, 9, 4, 1, 3, 1, 1, 0, 0, 1, 1, 1},  /* plain */
      {2, 4, 1, 11, 6, 1, 3, 1, 2, 0, 2, 1, 3, 2}, /* everything at once */
  };
  loom_rng *g = loom_rng_new(5);
  double want[256];
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const conv_case *p = &cases[k];
    loom_tensor *x =
        loom_randn(g, LOOM_F64, 0, 1, LOOM_SHAPE(p->n, p->c, p->w));
    loom_tensor *w = loom_randn(g, LOOM_F64, 0, 1,
                                LOOM_SHAPE(p->oc, p->c / p->groups, p->kw));
    loom_tensor *b = loom_randn(g, LOOM_F64, 0, 1, LOOM_SHAPE(p->oc));
    loom_tensor *y = loom_conv1d(x, w, b,
                                 (loom_conv1d_opts){.stride = p->sw,
                                                    .padding = p->pw,
                                                    .dilation = p->dw,
                                                    .groups = p->groups});
    int64_t ow = (p->w + 2 * p->pw - p->dw * (p->kw - 1) - 1) / p->sw + 1;
    CHECK_SHAPE(y, p->n, p->oc, ow);
    naive_conv(p, loom_data_f64(x), loom_data_f64(w), loom_data_f64(b), want, 1,
               ow);
    for (int64_t i = 0; i < loom_numel(y); i++)
      ck_assert_msg(fabs(loom_data_f64(y)[i] - want[i]) <= 1e-12,
                    "case %zu element %lld: %.17g vs %.17g", k, (long long)i,
                    loom_data_f64(y)[i], want[i]);
  }
  loom_rng_free(g);

  /* causal, unbatched: out[i] = x[i - d] + 10 x[i], zeros before the start */
  loom_tensor *x = loom_reshape(VEC(LOOM_F32, 1, 2, 3, 4), LOOM_SHAPE(1, 4));
  loom_tensor *w = loom_reshape(VEC(LOOM_F32, 1, 10), LOOM_SHAPE(1, 1, 2));
  loom_tensor *y = loom_conv1d(x, w, NULL, (loom_conv1d_opts){.causal = true});
  CHECK_SHAPE(y, 1, 4);
  CHECK_VALUES(y, 0, 10, 21, 32, 43);
  CHECK_VALUES(loom_conv1d(x, w, VEC(LOOM_F32, 0.5),
                           (loom_conv1d_opts){.dilation = 2, .causal = true}),
               0, 10.5, 20.5, 31.5, 42.5);
  /* strided: steps 0 and 2 */
  CHECK_VALUES(
      loom_conv1d(x, w, NULL, (loom_conv1d_opts){.stride = 2, .causal = true}),
      0, 10, 32);
  /* a kernel of one step needs no padding */
  CHECK_VALUES(loom_conv1d(x, loom_full(LOOM_F32, 2, LOOM_SHAPE(1, 1, 1)), NULL,
                           (loom_conv1d_opts){.causal = true}),
               0, 2, 4, 6, 8);

  ck_assert_ptr_null(loom_conv1d(
      x, w, NULL, (loom_conv1d_opts){.padding = 1, .causal = true}));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "conv1d: stride 0, padding 1 (causal), "
                                 "dilation 0, groups 0 (stride, dilation and "
                                 "groups >= 1, padding 0 to 2^59 - 1, and 0 "
                                 "when causal)");
  ck_assert_ptr_null(loom_conv1d(x, w, NULL, (loom_conv1d_opts){.stride = -1}));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "conv1d: stride -1");
  ck_assert_ptr_null(
      loom_conv1d(x, w, NULL, (loom_conv1d_opts){.padding = INT64_MAX}));
  CHECK_ERROR(LOOM_ERR_ARGUMENT,
              "conv1d: stride 0, padding 9223372036854775807");
  ck_assert_ptr_null(
      loom_conv1d(VEC(LOOM_F32, 1, 2), w, NULL, (loom_conv1d_opts){0}));
  CHECK_ERROR(LOOM_ERR_SHAPE, "conv1d: expected (N, C, L) or (C, L), got [2]");
  ck_assert_ptr_null(loom_conv1d(x, loom_ones(LOOM_F32, LOOM_SHAPE(2, 2, 1)),
                                 NULL, (loom_conv1d_opts){0}));
  CHECK_ERROR(LOOM_ERR_SHAPE, "conv1d: weight [2, 2, 1] does not fit input "
                              "[1, 4] with 1 groups");
  ck_assert_ptr_null(loom_conv1d(x, loom_ones(LOOM_F32, LOOM_SHAPE(1, 1, 0)),
                                 NULL, (loom_conv1d_opts){.causal = true}));
  CHECK_ERROR(LOOM_ERR_SHAPE, "conv1d: weight [1, 1, 0] does not fit");
  ck_assert_ptr_null(loom_conv1d(x, loom_ones(LOOM_F32, LOOM_SHAPE(1, 1, 3)),
                                 NULL, (loom_conv1d_opts){.dilation = 2}));
  CHECK_ERROR(LOOM_ERR_SHAPE, "conv1d: kernel 3 dilated 2 times longer than "
                              "the padded input [1, 4]");
  ck_assert_ptr_null(loom_conv1d(loom_zeros(LOOM_F32, LOOM_SHAPE(1, 0)), w,
                                 NULL, (loom_conv1d_opts){.causal = true}));
  CHECK_ERROR(LOOM_ERR_SHAPE, "conv1d: kernel 2 dilated 1 times longer");
  ck_assert_ptr_null(
      loom_conv1d(x, w, VEC(LOOM_F32, 1, 2), (loom_conv1d_opts){0}));
  CHECK_ERROR(LOOM_ERR_SHAPE, "conv1d: bias [2] for 1 channels");
  ck_assert_ptr_null(
      loom_conv1d(loom_to_dtype(x, LOOM_I64), w, NULL, (loom_conv1d_opts){0}));
  CHECK_ERROR(LOOM_ERR_DTYPE, "conv1d: expected a float tensor, got int64");
  ck_assert_ptr_null(loom_conv1d(
      x, w, NULL,
      (loom_conv1d_opts){.dilation = (int64_t)1 << 61, .causal = true}));
  CHECK_ERROR(LOOM_ERR_SHAPE, "conv1d: size 1 x 2305843009213693952");
}
END_TEST

/* Many samples of small maps, so that samples are taken in chunks (and
 * partial sums of the weight gradient), checked in float64 against the
 * definition's derivatives: gw = sum of gy times the input window, gx =
 * sum of gy times the weights. Then float32 results with 1 and 2 threads
 * must be bitwise equal. */
START_TEST(test_conv2d_chunks_backward) {
  const conv_case cases[] = {
      {21, 3, 8, 8, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1}, /* 64 pixels a sample */
      {7, 4, 6, 5, 4, 3, 2, 2, 1, 0, 1, 1, 1, 2},  /* strided, groups */
      {9, 3, 4, 4, 2, 1, 1, 1, 1, 0, 0, 1, 1, 1},  /* pointwise */
  };
  loom_rng *g = loom_rng_new(5);
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const conv_case *p = &cases[k];
    loom_tensor *x = loom_set_requires_grad(
        loom_randn(g, LOOM_F64, 0, 1, LOOM_SHAPE(p->n, p->c, p->h, p->w)),
        true);
    loom_tensor *w = loom_set_requires_grad(
        loom_randn(g, LOOM_F64, 0, 1,
                   LOOM_SHAPE(p->oc, p->c / p->groups, p->kh, p->kw)),
        true);
    loom_tensor *b = loom_set_requires_grad(
        loom_randn(g, LOOM_F64, 0, 1, LOOM_SHAPE(p->oc)), true);
    loom_conv2d_opts o = {
        {p->sh, p->sw}, {p->ph, p->pw}, {p->dh, p->dw}, p->groups};
    loom_tensor *y = loom_conv2d(x, w, b, o);
    loom_tensor *gy =
        loom_randn(g, LOOM_F64, 0, 1, loom_ndim(y), loom_shape(y));
    ck_assert_int_eq(loom_backward(loom_sum_all(loom_mul(y, gy))), 0);
    int64_t oh = loom_size(y, 2), ow = loom_size(y, 3);
    int64_t cg = p->c / p->groups, og = p->oc / p->groups;
    const double *X = loom_data_f64(x), *W = loom_data_f64(w);
    const double *G = loom_data_f64(gy);
    const double *GX = loom_data_f64(loom_grad(x)),
                 *GW = loom_data_f64(loom_grad(w)),
                 *GB = loom_data_f64(loom_grad(b));
    double *gx = calloc((size_t)loom_numel(x), sizeof *gx);
    double *gw = calloc((size_t)loom_numel(w), sizeof *gw);
    double *gb = calloc((size_t)p->oc, sizeof *gb);
    for (int64_t n = 0; n < p->n; n++)
      for (int64_t oc = 0; oc < p->oc; oc++)
        for (int64_t i = 0; i < oh; i++)
          for (int64_t j = 0; j < ow; j++) {
            double gv = G[((n * p->oc + oc) * oh + i) * ow + j];
            gb[oc] += gv;
            for (int64_t ci = 0; ci < cg; ci++)
              for (int64_t ki = 0; ki < p->kh; ki++)
                for (int64_t kj = 0; kj < p->kw; kj++) {
                  int64_t r = i * p->sh - p->ph + ki * p->dh;
                  int64_t q = j * p->sw - p->pw + kj * p->dw;
                  if (r < 0 || r >= p->h || q < 0 || q >= p->w)
                    continue;
                  int64_t c = oc / og * cg + ci;
                  int64_t xi = ((n * p->c + c) * p->h + r) * p->w + q;
                  int64_t wi = ((oc * cg + ci) * p->kh + ki) * p->kw + kj;
                  gw[wi] += gv * X[xi];
                  gx[xi] += gv * W[wi];
                }
          }
    for (int64_t i = 0; i < loom_numel(x); i++)
      ck_assert_msg(fabs(GX[i] - gx[i]) <= 1e-11, "case %zu gx[%lld]", k,
                    (long long)i);
    for (int64_t i = 0; i < loom_numel(w); i++)
      ck_assert_msg(fabs(GW[i] - gw[i]) <= 1e-11, "case %zu gw[%lld]", k,
                    (long long)i);
    for (int64_t i = 0; i < p->oc; i++)
      ck_assert_msg(fabs(GB[i] - gb[i]) <= 1e-11, "case %zu gb", k);
    free(gx);
    free(gw);
    free(gb);
    /* float32 with 1 and 2 threads: the same bits */
    loom_tensor *res[2][4];
    for (int t = 0; t < 2; t++) {
      loom_set_num_threads(t + 1);
      loom_tensor *xf =
          loom_set_requires_grad(loom_to_dtype(loom_detach(x), LOOM_F32), true);
      loom_tensor *wf =
          loom_set_requires_grad(loom_to_dtype(loom_detach(w), LOOM_F32), true);
      loom_tensor *yf = loom_conv2d(xf, wf, NULL, o);
      loom_backward(loom_sum_all(loom_mul(yf, loom_to_dtype(gy, LOOM_F32))));
      res[t][0] = yf;
      res[t][1] = loom_grad(xf);
      res[t][2] = loom_grad(wf);
      res[t][3] = NULL;
    }
    loom_set_num_threads(0);
    for (int r = 0; r < 3; r++)
      ck_assert_msg(loom_equal(res[0][r], res[1][r]),
                    "case %zu result %d differs with 2 threads", k, r);
  }
  loom_rng_free(g);
}
END_TEST

/* The fused batch normalisation equals the composed formula, forward and
 * backward, training and evaluation, in float64 and float32, with the
 * same bits on 1 and 2 threads; bad arguments are refused. */
START_TEST(test_batch_normalize) {
  loom_rng *g = loom_rng_new(8);
  for (int dt = 0; dt < 2; dt++) {
    loom_dtype t = dt ? LOOM_F32 : LOOM_F64;
    double tol = dt ? 2e-5 : 1e-12;
    for (int train = 0; train < 2; train++) {
      loom_tensor *x0 = loom_randn(g, t, 0.5, 2, LOOM_SHAPE(6, 3, 5, 7));
      loom_tensor *w0 = loom_randn(g, t, 1, 0.5, LOOM_SHAPE(3));
      loom_tensor *b0 = loom_randn(g, t, 0, 1, LOOM_SHAPE(3));
      loom_tensor *rm = loom_randn(g, t, 0, 1, LOOM_SHAPE(3));
      loom_tensor *rv = loom_rand(g, t, 0.5, 2, LOOM_SHAPE(3));
      loom_tensor *gy = loom_randn(g, t, 0, 1, LOOM_SHAPE(6, 3, 5, 7));
      loom_tensor *out[3][4];
      for (int way = 0; way < 3; way++) { /* composed, fused x 2 threads */
        loom_set_num_threads(way == 2 ? 2 : 1);
        loom_tensor *x = loom_set_requires_grad(loom_clone(x0), true);
        loom_tensor *w = loom_set_requires_grad(loom_clone(w0), true);
        loom_tensor *b = loom_set_requires_grad(loom_clone(b0), true);
        loom_tensor *y, *bm = NULL, *bv = NULL;
        loom_tensor *wc = loom_reshape(w, 4, (int64_t[]){1, 3, 1, 1});
        loom_tensor *bc = loom_reshape(b, 4, (int64_t[]){1, 3, 1, 1});
        if (way == 0) {
          int dims[3] = {0, 2, 3};
          loom_tensor *m = train ? loom_mean(x, dims, 3, true)
                                 : loom_reshape(rm, 4, (int64_t[]){1, 3, 1, 1});
          loom_tensor *v = train ? loom_var(x, dims, 3, 0, true)
                                 : loom_reshape(rv, 4, (int64_t[]){1, 3, 1, 1});
          y = loom_add(loom_mul(loom_div(loom_sub(x, m),
                                         loom_sqrt(loom_add_scalar(v, 1e-3))),
                                wc),
                       bc);
          bm = train ? loom_flatten(m, 0, -1) : NULL;
          bv = train ? loom_flatten(v, 0, -1) : NULL;
        } else {
          y = loom_batch_norm(x, w, b, train ? NULL : rm, train ? NULL : rv,
                              1e-3, &bm, &bv);
        }
        ck_assert_loom(y);
        ck_assert_int_eq(loom_backward(loom_sum_all(loom_mul(y, gy))), 0);
        out[way][0] = y;
        out[way][1] = loom_grad(x);
        out[way][2] = loom_grad(w);
        out[way][3] = loom_grad(b);
        if (train) { /* the batch statistics are returned */
          ck_assert_ptr_nonnull(bm);
          ck_assert_ptr_nonnull(bv);
        } else {
          ck_assert_ptr_null(bv);
        }
      }
      loom_set_num_threads(0);
      for (int r = 0; r < 4; r++) {
        loom_tensor *d =
            loom_amax(loom_abs(loom_sub(out[0][r], out[1][r])), NULL, 0, false);
        ck_assert_msg(loom_item(d) <= tol, "dtype %d train %d result %d: %g",
                      dt, train, r, loom_item(d));
        ck_assert(loom_equal(out[1][r], out[2][r]));
      }
    }
  }
  /* errors */
  loom_tensor *x = loom_ones(LOOM_F32, LOOM_SHAPE(4, 3));
  ck_assert_ptr_null(loom_batch_norm(x, loom_ones(LOOM_F32, LOOM_SHAPE(2)),
                                     NULL, NULL, NULL, 1e-5, NULL, NULL));
  CHECK_ERROR(LOOM_ERR_SHAPE, "batch_norm: weight float32 [2]");
  ck_assert_ptr_null(loom_batch_norm(loom_ones(LOOM_F32, LOOM_SHAPE(1, 3)),
                                     NULL, NULL, NULL, NULL, 1e-5, NULL, NULL));
  CHECK_ERROR(LOOM_ERR_SHAPE, "one value per channel");
  ck_assert_ptr_null(loom_batch_norm(x, NULL, NULL,
                                     loom_zeros(LOOM_F32, LOOM_SHAPE(3)), NULL,
                                     1e-5, NULL, NULL));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "batch_norm");
  ck_assert_ptr_null(loom_batch_norm(loom_ones(LOOM_I64, LOOM_SHAPE(4, 3)),
                                     NULL, NULL, NULL, NULL, 1e-5, NULL, NULL));
  CHECK_ERROR(LOOM_ERR_DTYPE, "batch_norm");
  loom_rng_free(g);
}
END_TEST

/* loom_batch_norm_relu's x gradient is the composition's also where x
 * holds a NaN: the fused relu passes its gradient on, as loom_relu does
 * (it had zeroed it). Evaluation mode, so the NaN stays in its place. */
START_TEST(test_batch_norm_relu_nan) {
  loom_tensor *x0 =
      loom_reshape(loom_arange(LOOM_F64, -6, 6, 1), LOOM_SHAPE(2, 3, 2));
  ck_assert_int_eq(loom_set(x0, (int64_t[]){1, 2, 0}, NAN), 0);
  loom_tensor *w = VEC(LOOM_F64, 1, 2, 3), *b = VEC(LOOM_F64, 0, 0.5, -0.5);
  loom_tensor *m = VEC(LOOM_F64, 0, 1, -1), *var = VEC(LOOM_F64, 1, 4, 0.25);
  loom_tensor *gx[2];
  for (int fused = 0; fused < 2; fused++) {
    loom_tensor *x = loom_set_requires_grad(loom_clone(x0), true);
    loom_tensor *y =
        fused ? loom_batch_norm_relu(x, w, b, m, var, 1e-5, NULL, NULL)
              : loom_relu(loom_batch_norm(x, w, b, m, var, 1e-5, NULL, NULL));
    ck_assert_int_eq(loom_backward(loom_sum_all(y)), 0);
    gx[fused] = loom_grad(x);
  }
  /* w rstd, as torch's; an x term 0 x NaN had made it NaN in both forms */
  ck_assert_double_eq_tol(loom_get(gx[1], (int64_t[]){1, 2, 0}),
                          3 / sqrt(0.25 + 1e-5), 1e-12);
  ck_assert(loom_equal(gx[0], gx[1]));
}
END_TEST

/* loom_batch_norm_relu is loom_relu(loom_batch_norm(...)) bit for bit,
 * forward and backward (x, weight, bias), training and evaluation, in
 * float64 and float32, on 1 and 2 threads; its double backward (by
 * composition) matches the composition's; errors name it. */
START_TEST(test_batch_norm_relu_is_the_composition) {
  loom_rng *g = loom_rng_new(9);
  for (int dt = 0; dt < 2; dt++) {
    loom_dtype t = dt ? LOOM_F32 : LOOM_F64;
    for (int train = 0; train < 2; train++) {
      /* 13 pixels: the kernels' vector loops and their tails */
      loom_tensor *x0 = loom_randn(g, t, 0.3, 2, LOOM_SHAPE(4, 3, 13));
      loom_tensor *w0 = loom_randn(g, t, 1, 0.5, LOOM_SHAPE(3));
      loom_tensor *b0 = loom_randn(g, t, 0, 1, LOOM_SHAPE(3));
      loom_tensor *rm = loom_randn(g, t, 0, 1, LOOM_SHAPE(3));
      loom_tensor *rv = loom_rand(g, t, 0.5, 2, LOOM_SHAPE(3));
      loom_tensor *gy = loom_randn(g, t, 0, 1, LOOM_SHAPE(4, 3, 13));
      loom_tensor *v = loom_randn(g, t, 0, 1, LOOM_SHAPE(4, 3, 13));
      loom_tensor *out[4][7];
      for (int way = 0; way < 4; way++) { /* composed, fused; 1, 2 threads */
        loom_set_num_threads(way / 2 + 1);
        loom_tensor *x = loom_set_requires_grad(loom_clone(x0), true);
        loom_tensor *w = loom_set_requires_grad(loom_clone(w0), true);
        loom_tensor *b = loom_set_requires_grad(loom_clone(b0), true);
        loom_tensor *m = train ? NULL : rm, *var = train ? NULL : rv;
        loom_tensor *bm = NULL, *bv = NULL;
        loom_tensor *y =
            way % 2
                ? loom_batch_norm_relu(x, w, b, m, var, 1e-3, &bm, &bv)
                : loom_relu(loom_batch_norm(x, w, b, m, var, 1e-3, &bm, &bv));
        ck_assert_loom(y);
        ck_assert(train ? bm && bv : !bm && !bv);
        ck_assert(loom_item(loom_sum_all(loom_eq_scalar(y, 0))) > 0);
        ck_assert_int_eq(
            loom_backward_with(y, gy,
                               &(loom_backward_opts){.retain_graph = true}),
            0);
        out[way][0] = y;
        out[way][1] = loom_grad(x);
        out[way][2] = loom_grad(w);
        out[way][3] = loom_grad(b);
        /* second order: d/d(x, w) of sum(v * dL/dx) */
        loom_tensor *gx;
        loom_tensor *ins[3] = {x, w, b}, *g2[3];
        ck_assert_int_eq(
            loom_autograd_grad(&y, 1, ins, 1, &gy, &gx,
                               &(loom_grad_opts){.create_graph = true}),
            0);
        ck_assert_int_eq(
            loom_autograd_grad(&gx, 1, ins, 3, &v, g2,
                               &(loom_grad_opts){.allow_unused = true}),
            0);
        for (int k = 0; k < 3; k++)
          out[way][4 + k] = g2[k] ? g2[k] : loom_zeros_like(ins[k]);
      }
      loom_set_num_threads(0);
      for (int r = 0; r < 4; r++)
        for (int way = 1; way < 4; way++)
          ck_assert_msg(loom_equal(out[0][r], out[way][r]),
                        "dtype %d train %d result %d way %d differs", dt, train,
                        r, way);
      for (int r = 4; r < 7; r++)
        for (int way = 1; way < 4; way++) {
          loom_tensor *d = loom_amax(loom_abs(loom_sub(out[0][r], out[way][r])),
                                     NULL, 0, false);
          ck_assert_msg(loom_item(d) <= (dt ? 1e-4 : 1e-10),
                        "dtype %d train %d second order %d way %d: %g", dt,
                        train, r - 4, way, loom_item(d));
        }
    }
  }
  ck_assert_ptr_null(loom_batch_norm_relu(loom_ones(LOOM_F32, LOOM_SHAPE(1, 3)),
                                          NULL, NULL, NULL, NULL, 1e-5, NULL,
                                          NULL));
  CHECK_ERROR(LOOM_ERR_SHAPE, "batch_norm_relu: one value per channel");
  ck_assert_ptr_null(loom_batch_norm_relu(loom_ones(LOOM_F32, LOOM_SHAPE(4, 3)),
                                          loom_ones(LOOM_F32, LOOM_SHAPE(2)),
                                          NULL, NULL, NULL, 1e-5, NULL, NULL));
  CHECK_ERROR(LOOM_ERR_SHAPE, "batch_norm_relu: weight float32 [2]");
  loom_rng_free(g);
}
END_TEST

START_TEST(test_pools) {
  loom_tensor *x = loom_reshape(
      VEC(LOOM_F32, 1, 5, 2, 0, 3, 3, -1, 7, 0, 2, 9, 9, 4, 1, 1, 6),
      LOOM_SHAPE(1, 1, 4, 4));
  loom_tensor *ix = NULL;
  loom_tensor *mp =
      loom_max_pool2d(x, (loom_pool2d_opts){.kernel = {2, 2}}, &ix);
  CHECK_SHAPE(mp, 1, 1, 2, 2);
  CHECK_VALUES(mp, 0, 5, 7, 4, 9);
  CHECK_VALUES(ix, 0, 1, 7, 12, 10); /* flat in the plane; first of ties */
  mp = loom_max_pool2d(
      x,
      (loom_pool2d_opts){.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}},
      &ix);
  CHECK_VALUES(mp, 0, 5, 7, 4, 9);
  CHECK_VALUES(ix, 0, 1, 7, 12, 10);
  loom_tensor *plane = loom_reshape(x, LOOM_SHAPE(1, 4, 4)); /* unbatched */
  CHECK_SHAPE(loom_max_pool2d(plane, (loom_pool2d_opts){.kernel = {2, 2}}, &ix),
              1, 2, 2);
  CHECK_SHAPE(ix, 1, 2, 2);
  CHECK_VALUES(loom_max_pool2d(x,
                               (loom_pool2d_opts){.kernel = {2, 2},
                                                  .dilation = {2, 2},
                                                  .stride = {1, 1}},
                               NULL),
               0, 9, 9, 4, 7);
  /* float32's 2x2 path picks what the general loop (float64) picks: ties,
   * NaNs, odd sizes */
  loom_rng *g = loom_rng_new(4);
  loom_tensor *r = loom_randint(g, LOOM_F64, 0, 4, LOOM_SHAPE(3, 2, 7, 9));
  loom_tensor *nan_at =
      loom_gt_scalar(loom_rand(g, LOOM_F64, 0, 1, LOOM_SHAPE(3, 2, 7, 9)), 0.9);
  r = loom_masked_fill(r, nan_at, NAN);
  loom_tensor *i64, *i32;
  loom_tensor *m64 =
      loom_max_pool2d(r, (loom_pool2d_opts){.kernel = {2, 2}}, &i64);
  loom_tensor *m32 = loom_max_pool2d(
      loom_to_dtype(r, LOOM_F32), (loom_pool2d_opts){.kernel = {2, 2}}, &i32);
  ck_assert(loom_equal(i64, i32));
  ck_assert(loom_equal(loom_ne(m64, m64), loom_ne(m32, m32))); /* NaNs */
  /* the same without indices (another loop), and the same gradients:
   * backward finds the choices again in the input */
  loom_tensor *r64 = loom_set_requires_grad(loom_clone(r), true);
  loom_tensor *r32 = loom_set_requires_grad(loom_to_dtype(r, LOOM_F32), true);
  loom_tensor *v64 =
      loom_max_pool2d(r64, (loom_pool2d_opts){.kernel = {2, 2}}, NULL);
  loom_tensor *v32 =
      loom_max_pool2d(r32, (loom_pool2d_opts){.kernel = {2, 2}}, NULL);
  ck_assert(loom_equal(loom_ne(v64, v64), loom_ne(v32, v32)));
  ck_assert(loom_equal(
      loom_masked_fill(loom_to_dtype(v64, LOOM_F32), loom_ne(v64, v64), 0),
      loom_masked_fill(v32, loom_ne(v32, v32), 0)));
  loom_tensor *seed = loom_randint(g, LOOM_F64, -3, 4, LOOM_SHAPE(3, 2, 3, 4));
  ck_assert_int_eq(loom_backward_with(v64, seed, NULL), 0);
  ck_assert_int_eq(loom_backward_with(v32, loom_to_dtype(seed, LOOM_F32), NULL),
                   0);
  ck_assert(
      loom_equal(loom_to_dtype(loom_grad(r64), LOOM_F32), loom_grad(r32)));
  ck_assert(loom_item(loom_sum_all(loom_ne_scalar(loom_grad(r32), 0))) > 20);
  loom_rng_free(g);

  loom_tensor *y =
      loom_reshape(loom_arange(LOOM_F32, 0, 25, 1), LOOM_SHAPE(1, 1, 5, 5));
  loom_pool2d_opts o = {.kernel = {2, 2}, .stride = {2, 2}, .padding = {1, 1}};
  CHECK_VALUES(loom_avg_pool2d(y, o), 0, 0, 0.75, 1.75, 3.75, 9, 11, 8.75, 19,
               21);
  o.exclude_pad = true;
  CHECK_VALUES(loom_avg_pool2d(y, o), 0, 0, 1.5, 3.5, 7.5, 9, 11, 17.5, 19, 21);
  CHECK_VALUES(loom_avg_pool2d(
                   y, (loom_pool2d_opts){.kernel = {2, 2}, .ceil_mode = true}),
               0, 3, 5, 6.5, 13, 15, 16.5, 20.5, 22.5, 24);
  loom_tensor *c = loom_avg_pool2d(y, (loom_pool2d_opts){.kernel = {3, 3},
                                                         .stride = {2, 2},
                                                         .padding = {1, 1},
                                                         .ceil_mode = true});
  CHECK_SHAPE(c, 1, 1, 3, 3);
  CHECK_VALUES(c, 1e-7, 4.0 / 3, 3, 8.0 / 3, 7, 12, 9, 8, 13, 28.0 / 3);
  ck_assert_ptr_null(loom_avg_pool2d(
      y, (loom_pool2d_opts){.kernel = {2, 2}, .padding = {2, 0}}));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "avg_pool2d");
  ck_assert_ptr_null(loom_avg_pool2d(
      y, (loom_pool2d_opts){.kernel = {2, 2}, .dilation = {2, 1}}));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "avg_pool2d");
  ck_assert_ptr_null(
      loom_max_pool2d(y, (loom_pool2d_opts){.kernel = {6, 6}}, NULL));
  CHECK_ERROR(LOOM_ERR_SHAPE, "max_pool2d");

  /* 5 x 7 to 3 x 2: windows rows [0,2) [1,4) [3,5), cols [0,4) [3,7) */
  loom_tensor *z =
      loom_reshape(loom_arange(LOOM_F64, 0, 35, 1), LOOM_SHAPE(1, 5, 7));
  loom_tensor *ad = loom_adaptive_avg_pool2d(z, 3, 2);
  CHECK_SHAPE(ad, 1, 3, 2);
  CHECK_VALUES(ad, 0, 5, 8, 15.5, 18.5, 26, 29);
  CHECK_VALUES(loom_adaptive_avg_pool2d(z, 1, 1), 0, 17);
  ck_assert_ptr_null(loom_adaptive_avg_pool2d(z, 0, 1));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "adaptive_avg_pool2d");
}
END_TEST

START_TEST(test_dropout) {
  loom_tensor *x = loom_ones(LOOM_F64, LOOM_SHAPE(10000));
  ck_assert_ptr_eq(loom_dropout(x, 0.5, false, NULL), x);
  ck_assert_ptr_eq(loom_dropout(x, 0, true, NULL), x);
  loom_rng *g = loom_rng_new(4), *h = loom_rng_new(4);
  loom_tensor *d = loom_dropout(x, 0.25, true, g);
  int zeros = 0;
  for (int i = 0; i < 10000; i++) {
    double v = loom_data_f64(d)[i];
    ck_assert(v == 0 || fabs(v - 4.0 / 3) < 1e-15);
    zeros += v == 0;
  }
  ck_assert_int_gt(zeros, 2300); /* ~2500, sd ~43 */
  ck_assert_int_lt(zeros, 2700);
  ck_assert(loom_equal(d, loom_dropout(x, 0.25, true, h)));
  CHECK_VALUES(loom_dropout(VEC(LOOM_F32, 3, 4), 1, true, g), 0, 0, 0);
  ck_assert_ptr_null(loom_dropout(x, 1.5, true, g));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "dropout");
  loom_rng_free(g);
  loom_rng_free(h);
}
END_TEST

/* The packed-weight product (tensor/kernel_gemm_packed.c) against a float64
 * sum, for every row count of its register blocks (1..8 and past them),
 * column counts that end inside a block and a panel, both layouts of B and
 * accumulation, B's rows longer than used (ld past the row); the same bits
 * with 1 and 2 threads. Run under each LOOM_ISA by tests/meson.build, so
 * every level's blocking is checked here. */
START_TEST(test_packed_product) {
  const int64_t Ms[] = {1, 2, 3, 5, 6, 7, 8, 9, 13, 17};
  const int64_t Ns[] = {1, 7, 8, 16, 31, 32, 33, 70};
  const int64_t Ks[] = {1, 9, 64};
  loom_rng *g = loom_rng_new(7);
  for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++)
    for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++)
      for (int trans = 0; trans < 2; trans++) {
        int64_t K = Ks[ki], N = Ns[ni], M = 17, ld = (trans ? K : N) + 3;
        loom_tensor *a = loom_randn(g, LOOM_F32, 0, 1, LOOM_SHAPE(M, K));
        loom_tensor *b =
            loom_randn(g, LOOM_F32, 0, 1, LOOM_SHAPE(trans ? N : K, ld));
        loom_tensor *c0 = loom_randn(g, LOOM_F32, 0, 1, LOOM_SHAPE(M, N));
        const float *av = loom_data_f32(a), *bv = loom_data_f32(b);
        loom__packed *p = loom__kernel_pack(bv, K, N, ld, trans);
        ck_assert_ptr_nonnull(p);
        for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++)
          for (int acc = 0; acc < 2; acc++) {
            int64_t m = Ms[mi];
            float *c[2];
            for (int t = 0; t < 2; t++) {
              loom_set_num_threads(t + 1);
              c[t] = malloc((size_t)(M * N) * sizeof(float));
              memcpy(c[t], loom_data_f32(c0), (size_t)(M * N) * sizeof(float));
              loom__kernel_gemm_packed(m, av, K, p, c[t], N, acc);
            }
            loom_set_num_threads(0);
            ck_assert_int_eq(memcmp(c[0], c[1], (size_t)(M * N) * 4), 0);
            for (int64_t i = 0; i < M; i++)
              for (int64_t j = 0; j < N; j++) {
                double want = loom_data_f32(c0)[i * N + j], mag = 0;
                if (i < m) {
                  want = acc ? want : 0;
                  for (int64_t k = 0; k < K; k++) {
                    double t = (double)av[i * K + k] *
                               bv[trans ? j * ld + k : k * ld + j];
                    want += t;
                    mag += fabs(t);
                  }
                }
                ck_assert_msg(fabs(c[0][i * N + j] - want) <= 1e-6 * (1 + mag),
                              "M %lld N %lld K %lld trans %d acc %d at "
                              "(%lld, %lld): %g, want %g (isa %s)",
                              (long long)m, (long long)N, (long long)K, trans,
                              acc, (long long)i, (long long)j, c[0][i * N + j],
                              want, loom_isa());
              }
            free(c[0]);
            free(c[1]);
          }
        /* Started from a bias: the bits of the bias copied into the rows
         * and the product accumulated onto them, with 1 and 2 threads;
         * rows past m untouched. */
        loom_tensor *bias = loom_randn(g, LOOM_F32, 0, 1, LOOM_SHAPE(N));
        const float *bs = loom_data_f32(bias);
        for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++) {
          int64_t m = Ms[mi];
          float *c[3];
          for (int t = 0; t < 3; t++) {
            c[t] = malloc((size_t)(M * N) * sizeof(float));
            memcpy(c[t], loom_data_f32(c0), (size_t)(M * N) * sizeof(float));
          }
          for (int64_t i = 0; i < m; i++)
            memcpy(c[2] + i * N, bs, (size_t)N * sizeof(float));
          loom__kernel_gemm_packed(m, av, K, p, c[2], N, true);
          for (int t = 0; t < 2; t++) {
            loom_set_num_threads(t + 1);
            loom__kernel_gemm_packed_bias(m, av, K, p, bs, c[t], N);
          }
          loom_set_num_threads(0);
          ck_assert_msg(!memcmp(c[0], c[2], (size_t)(M * N) * 4) &&
                            !memcmp(c[1], c[2], (size_t)(M * N) * 4),
                        "bias: M %lld N %lld K %lld trans %d (isa %s)",
                        (long long)m, (long long)N, (long long)K, trans,
                        loom_isa());
          for (int t = 0; t < 3; t++)
            free(c[t]);
        }
        loom__kernel_packed_free(p);
      }
  loom_rng_free(g);
}
END_TEST

/* The packed-weight product shared out over threads (shapes big enough for
 * more than one, a recurrent step's among them, and one of fewer than 8
 * rows, whose threads keep their own panels): the same bits with 1 to 4
 * threads, which take panels in whatever order their speeds give. */
START_TEST(test_packed_product_threads) {
  const int64_t shapes[][3] = {/* M, N, K */
                               {32, 512, 2048},
                               {13, 2048, 512},
                               {45, 100, 1024},
                               {8, 96, 4096},
                               {4, 2048, 512}};
  loom_rng *g = loom_rng_new(11);
  for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
    int64_t M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
    loom_tensor *a = loom_randn(g, LOOM_F32, 0, 1, LOOM_SHAPE(M, K));
    loom_tensor *b = loom_randn(g, LOOM_F32, 0, 1, LOOM_SHAPE(K, N));
    loom__packed *p = loom__kernel_pack(loom_data_f32(b), K, N, N, false);
    ck_assert_ptr_nonnull(p);
    size_t bytes = (size_t)(M * N) * sizeof(float);
    float *c[4];
    for (int t = 0; t < 4; t++) {
      loom_set_num_threads(t + 1);
      c[t] = malloc(bytes);
      for (int64_t i = 0; i < M * N; i++)
        c[t][i] = (float)(i % 7);
      loom__kernel_gemm_packed(M, loom_data_f32(a), K, p, c[t], N, true);
    }
    loom_set_num_threads(0);
    for (int t = 1; t < 4; t++)
      ck_assert_msg(!memcmp(c[0], c[t], bytes),
                    "M %lld N %lld K %lld: %d threads", (long long)M,
                    (long long)N, (long long)K, t + 1);
    double want = 0; /* one element, against a float64 sum */
    for (int64_t k = 0; k < K; k++)
      want += (double)loom_data_f32(a)[(M - 1) * K + k] *
              loom_data_f32(b)[k * N + N - 1];
    ck_assert(fabs(c[0][M * N - 1] - (M * N - 1) % 7 - want) < 1e-3);
    for (int t = 0; t < 4; t++)
      free(c[t]);
    loom__kernel_packed_free(p);
  }
  loom_rng_free(g);
}
END_TEST

/* One case of test_own_product: C (M x N, leading dimension N + 3) (+)=
 * op(A) op(B) for the layout bits lay (1: A^T, 2: B^T, 4: accumulate). */
static void own_product_case(loom_rng *g, int64_t M, int64_t N, int64_t K,
                             int lay, bool own_built) {
  const float gap = 7777.0f;
  int64_t ldc = N + 3;
  bool ta = lay & 1, tb = lay & 2, acc = lay & 4;
  int64_t lda = (ta ? M : K) + 2, ldb = (tb ? K : N) + 5;
  loom_tensor *a = loom_randn(g, LOOM_F32, 0, 1, LOOM_SHAPE(ta ? K : M, lda));
  loom_tensor *b = loom_randn(g, LOOM_F32, 0, 1, LOOM_SHAPE(tb ? N : K, ldb));
  loom_tensor *c0 = loom_randn(g, LOOM_F32, 0, 1, LOOM_SHAPE(M, N));
  const float *av = loom_data_f32(a), *bv = loom_data_f32(b);
  const float *cv = loom_data_f32(c0);
  size_t bytes = (size_t)(M * ldc) * sizeof(float);
  /* c[0..2]: 1, 2 and 3 threads; c[3]: the packed-weight product; c[4]:
   * the values before */
  float *c[5], *ar = malloc((size_t)(M * K) * sizeof(float));
  for (int64_t i = 0; i < M; i++) /* op(A), row-major */
    for (int64_t k = 0; k < K; k++)
      ar[i * K + k] = ta ? av[k * lda + i] : av[i * lda + k];
  for (int t = 0; t < 5; t++) {
    c[t] = malloc(bytes);
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < ldc; j++)
        c[t][i * ldc + j] = j >= N ? gap : acc ? cv[i * N + j] : NAN;
  }
  bool taken[3];
  for (int t = 0; t < 3; t++) {
    loom_set_num_threads(t + 1);
    taken[t] = loom__kernel_gemm_own(ta, tb, M, N, K, av, lda, bv, ldb, NULL,
                                     acc, c[t], ldc);
  }
  loom_set_num_threads(0);
  ck_assert(taken[0] == taken[1] && taken[0] == taken[2]);
  ck_assert(taken[0] == (own_built && N >= 16));
  if (ta && !tb) {
    /* A^T B from row pointers, A's and B's rows copied apart and in
     * reverse order: c[0]'s bits (c[4], the values before, is reused) */
    float *rows = malloc((size_t)(K * (M + N + 2)) * sizeof(float));
    const float **ap = malloc((size_t)(2 * K) * sizeof *ap), **bp = ap + K;
    for (int64_t k = 0; k < K; k++) {
      float *ra = rows + (K - 1 - k) * (M + N + 2), *rb = ra + M + 1;
      memcpy(ra, av + k * lda, (size_t)M * sizeof(float));
      memcpy(rb, bv + k * ldb, (size_t)N * sizeof(float));
      ap[k] = ra;
      bp[k] = rb;
    }
    float *cr = malloc(bytes);
    memcpy(cr, c[4], bytes);
    ck_assert(loom__kernel_gemm_own_rows(M, N, K, ap, bp, acc, cr, ldc) ==
              taken[0]);
    ck_assert_int_eq(memcmp(cr, c[0], bytes), 0);
    free(cr);
    free(ap);
    free(rows);
  }
  if (!taken[0])
    for (int t = 0; t < 3; t++)
      ck_assert_int_eq(memcmp(c[t], c[4], bytes), 0);
  if (taken[0] && !acc) {
    /* rows started from a bias: the bits of the bias copied into every row
     * and then accumulated (cb[3]), at 1, 2 and 3 threads (a bias with
     * accumulate is ignored) */
    float *bias = malloc((size_t)N * sizeof(float)), *cb[4];
    for (int64_t j = 0; j < N; j++)
      bias[j] = (float)(j % 5) - 2.25f;
    for (int t = 0; t < 4; t++) {
      cb[t] = malloc(bytes);
      for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < ldc; j++)
          cb[t][i * ldc + j] = j >= N ? gap : t == 3 ? bias[j] : NAN;
    }
    for (int t = 0; t < 3; t++) {
      loom_set_num_threads(t + 1);
      ck_assert(loom__kernel_gemm_own(ta, tb, M, N, K, av, lda, bv, ldb, bias,
                                      false, cb[t], ldc));
    }
    loom_set_num_threads(0);
    ck_assert(loom__kernel_gemm_own(ta, tb, M, N, K, av, lda, bv, ldb, bias,
                                    true, cb[3], ldc));
    for (int t = 0; t < 3; t++)
      ck_assert_int_eq(memcmp(cb[t], cb[3], bytes), 0);
    for (int t = 0; t < 4; t++)
      free(cb[t]);
    free(bias);
  }
  loom__packed *p = loom__kernel_pack(bv, K, N, ldb, tb);
  ck_assert_ptr_nonnull(p);
  loom__kernel_gemm_packed(M, ar, K, p, c[3], ldc, acc);
  loom__kernel_packed_free(p);
  for (int64_t i = 0; taken[0] && i < M; i++)
    for (int64_t j = 0; j < ldc; j++) {
      float got = c[0][i * ldc + j];
      if (j >= N) {
        ck_assert(got == gap && c[1][i * ldc + j] == gap &&
                  c[2][i * ldc + j] == gap);
        continue;
      }
      double want = acc ? cv[i * N + j] : 0, mag = 0;
      for (int64_t k = 0; k < K; k++) {
        double t = (double)ar[i * K + k] * bv[tb ? j * ldb + k : k * ldb + j];
        want += t;
        mag += fabs(t);
      }
      ck_assert_msg(got == c[1][i * ldc + j] && got == c[2][i * ldc + j] &&
                        got == c[3][i * ldc + j] &&
                        fabs(got - want) <= 1e-6 * (1 + mag),
                    "M %lld N %lld K %lld ta %d tb %d acc %d at (%lld, %lld): "
                    "%g (2 threads %g, 3 threads %g, packed %g), want %g",
                    (long long)M, (long long)N, (long long)K, ta, tb, acc,
                    (long long)i, (long long)j, got, c[1][i * ldc + j],
                    c[2][i * ldc + j], c[3][i * ldc + j], want);
    }
  for (int t = 0; t < 5; t++)
    free(c[t]);
  free(ar);
}

/* Whole products by the packed micro-kernel (loom__kernel_gemm_own), for
 * both layouts of A and of B, row counts inside and past a register block
 * (14: a last block of 6 rows at AVX-512, two of 6 and one of 2 at AVX2)
 * and a row chunk, columns ending inside a panel, k past one packed chunk
 * (KC = 512) and A's rows past one chunk (MC = 192; A^T's packed, A's read
 * in place),
 * accumulation, leading dimensions past the rows: the same
 * bits as the packed-weight product on the same operands (each element one
 * chain of multiply-adds in k order, however the k range is cut), the same
 * bits with 1, 2 and 3 threads, and a float64 sum's value. C's columns
 * past N must stay as they were, and without accumulation its NaNs are
 * ignored. Where it is not taken (below AVX2, or under 16 columns) it must
 * leave C alone. M 300 with 33 or 70 columns runs on two threads; 200 x
 * 560 x 520 has 18 panels, more than a part keeps packed at once (NCP =
 * 16), and with A read in place at 3 threads a part that ends inside a
 * chunk and one that starts inside one. With A^T and more columns than
 * rows the parts take panels (by_panels): 500 x 592 x 40 (3 chunks, 19
 * panels) starts the second part inside a panel at 2 threads. Rows
 * started from a bias give the bits of the bias copied in and
 * accumulated. A^T B from row pointers gives the same bits. */
START_TEST(test_own_product) {
  const int64_t Ms[] = {1, 7, 9, 14, 130, 300}, Ns[] = {5, 16, 33, 70};
  const int64_t Ks[] = {9, 600};
  /* the per-ISA kernels are built by GCC only (as the library's) */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
  const bool own_built = strcmp(loom_isa(), "baseline") != 0;
#else
  const bool own_built = false;
#endif
  loom_rng *g = loom_rng_new(11);
  for (size_t mi = 0; mi < 6; mi++)
    for (size_t ni = 0; ni < 4; ni++)
      for (size_t ki = 0; ki < 2; ki++)
        for (int lay = 0; lay < 8; lay++)
          own_product_case(g, Ms[mi], Ns[ni], Ks[ki], lay, own_built);
  for (int lay = 0; lay < 8; lay++) {
    own_product_case(g, 200, 560, 520, lay, own_built);
    own_product_case(g, 500, 592, 40, lay, own_built);
  }
  loom_rng_free(g);
}
END_TEST

/* LOOM_ISA names the level loom runs at (never one above the CPU's). */
START_TEST(test_isa_choice) {
  const char *want = getenv("LOOM_ISA"), *isa = loom_isa();
  ck_assert(strcmp(isa, "avx512") == 0 || strcmp(isa, "avx2") == 0 ||
            strcmp(isa, "baseline") == 0);
  if (want && (strcmp(want, "avx2") == 0 || strcmp(want, "baseline") == 0))
    ck_assert_msg(strcmp(isa, want) == 0 || strcmp(isa, "baseline") == 0,
                  "LOOM_ISA=%s, running %s", want, isa);
}
END_TEST

int main(void) {
  Suite *s = suite_create("tensor_ops");
  struct {
    const char *name;
    const TTest *tests[10]; /* the rest NULL */
  } cases[] = {
      {"index",
       {test_gather_and_index_select, test_scatter_add_and_index_add,
        test_embedding_and_one_hot, test_int32_indices,
        test_masked_fill_and_where}},
      {"elementwise",
       {test_unary_values, test_activation_details, test_gelu_float32_dense,
        test_vector_math_ulps, test_vector_math_layout_free, test_nan_and_clamp,
        test_binary_and_comparisons, test_integer_overflow_wraps,
        test_uint8_with_0dim_integer_wraps, test_inplace_updates}},
      {"reduce",
       {test_sum_mean_over_dims, test_column_sums_in_row_order,
        test_var_std_prod_norm, test_logsumexp_and_extremes,
        test_large_sum_is_accurate, test_softmax}},
      {"matmul",
       {test_matmul_shapes_and_values, test_matmul_batched_broadcast,
        test_addmm_baddbmm_linear, test_einsum, test_packed_product,
        test_isa_choice}},
      /* Results at 1 and 2 threads compared. Tagged so that CI's valgrind
       * run can leave them out: there the pool's threads take turns on one
       * core, and these took three minutes; every other run keeps them. */
      {"threads",
       {test_results_independent_of_threads, test_own_product,
        test_packed_product_threads}},
      {"conv",
       {test_conv2d_vs_direct, test_conv1d, test_conv2d_chunks_backward,
        test_pools, test_dropout}},
      {"norm",
       {test_batch_normalize, test_batch_norm_relu_is_the_composition,
        test_batch_norm_relu_nan}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    TCase *tc = tcase_create(cases[i].name);
    tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
    tcase_set_timeout(tc, 120);
    if (!strcmp(cases[i].name, "threads"))
      tcase_set_tags(tc, "threads");
    for (size_t j = 0; j < sizeof cases[i].tests / sizeof *cases[i].tests &&
                       cases[i].tests[j];
         j++)
      tcase_add_test(tc, cases[i].tests[j]);
    suite_add_tcase(s, tc);
  }
  return loom_run_suite(s);
}
