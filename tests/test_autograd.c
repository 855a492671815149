#define _POSIX_C_SOURCE 200809L
/* Tape semantics: accumulation, grad mode, detach, retained graphs,
 * in-place detection, custom functions, anomaly mode, memory. */
#include "check_util.h"
#include "check_values.h"

#include <math.h>
#include <string.h>

static loom_tensor *leaf(const double *v, int64_t n) {
  return loom_set_requires_grad(loom_from_array(LOOM_F64, v, 1, &n), true);
}

START_TEST(test_simple_gradient) {
  loom_tensor *x = leaf((double[]){1, 2, 3}, 3);
  loom_tensor *y = loom_sum_all(loom_mul(x, x)); /* d/dx = 2x */
  ck_assert_int_eq(loom_backward(y), 0);
  const double *g = loom_data_f64(loom_grad(x));
  ck_assert_close(g[0], 2, 0);
  ck_assert_close(g[1], 4, 0);
  ck_assert_close(g[2], 6, 0);
  ck_assert_int_eq(loom_tape_size(), 0); /* backward freed its nodes */
}
END_TEST

START_TEST(test_accumulates_across_backwards) {
  loom_tensor *x = leaf((double[]){1, -1}, 2);
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(loom_backward(loom_sum_all(loom_mul_scalar(x, 3))), 0);
  ck_assert_close(loom_data_f64(loom_grad(x))[1], 6, 0);
  loom_zero_grad(x);
  ck_assert_ptr_null(loom_grad(x));
}
END_TEST

/* loom_set_grad makes a tensor itself a leaf's gradient (later backwards
 * add into it in place) and refuses what does not fit. */
START_TEST(test_set_grad) {
  loom_tensor *x = leaf((double[]){1, 2}, 2);
  loom_tensor *g =
      loom_from_array(LOOM_F64, (double[]){0.5, -1}, LOOM_SHAPE(2));
  ck_assert_int_eq(loom_set_grad(x, g), 0);
  ck_assert_ptr_eq(loom_grad(x), g);
  ck_assert_int_eq(loom_backward(loom_sum_all(loom_mul_scalar(x, 3))), 0);
  ck_assert_ptr_eq(loom_grad(x), g);
  ck_assert_double_eq(loom_data_f64(g)[0], 3.5);
  ck_assert_double_eq(loom_data_f64(g)[1], 2);
  ck_assert_int_eq(loom_set_grad(x, loom_zeros(LOOM_F64, LOOM_SHAPE(3))), -1);
  ck_assert_str_eq(loom_last_error(),
                   "set_grad: a float64 gradient [3] for a leaf float64 [2]");
  loom_clear_error();
  ck_assert_int_eq(loom_set_grad(x, loom_zeros(LOOM_F32, LOOM_SHAPE(2))), -1);
  ck_assert_str_eq(loom_last_error(),
                   "set_grad: a float32 gradient [2] for a leaf float64 [2]");
  loom_clear_error();
  ck_assert_int_eq(loom_set_grad(loom_exp(x), loom_exp(x)), -1);
  ck_assert_ptr_nonnull(strstr(loom_last_error(), "a non-leaf"));
  loom_clear_error();
  loom_tensor *c = loom_zeros(LOOM_F64, LOOM_SHAPE(2));
  ck_assert_int_eq(loom_set_grad(c, g), -1);
  ck_assert_ptr_nonnull(strstr(loom_last_error(), "without grad"));
  loom_clear_error();
  ck_assert_int_eq(loom_set_grad(x, NULL), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
  loom_clear_error();
  /* memory backward would add into twice: x's own, an expanded view's,
   * a borrowed buffer's whose strides overlap ([0] [1] [1] [2]) */
  static double buf[3];
  loom_tensor *shared[] = {
      x, loom_expand(loom_zeros(LOOM_F64, LOOM_SHAPE(1)), 1, (int64_t[]){2}),
      loom_from_buffer(LOOM_F64, buf, 2, (int64_t[]){2, 2}, (int64_t[]){1, 1},
                       NULL, NULL)};
  loom_tensor *z =
      loom_set_requires_grad(loom_zeros(LOOM_F64, LOOM_SHAPE(2, 2)), true);
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(loom_set_grad(i < 2 ? x : z, shared[i]), -1);
    ck_assert_ptr_nonnull(strstr(loom_last_error(), "shares memory"));
    loom_clear_error();
  }
  ck_assert_ptr_eq(loom_grad(x), g); /* unchanged */
}
END_TEST

START_TEST(test_shared_input_sums_paths) {
  loom_tensor *x = leaf((double[]){2}, 1);
  loom_tensor *a = loom_mul_scalar(x, 3), *b = loom_square(x);
  ck_assert_int_eq(loom_backward(loom_sum_all(loom_add(a, b))), 0);
  ck_assert_close(loom_data_f64(loom_grad(x))[0], 3 + 4, 0);
}
END_TEST

START_TEST(test_no_grad_records_nothing) {
  loom_tensor *x = leaf((double[]){1, 2}, 2);
  loom_no_grad_begin();
  loom_no_grad_begin();
  loom_tensor *y = loom_tanh(x);
  loom_no_grad_end();
  ck_assert(!loom_grad_enabled());
  loom_tensor *z = loom_exp(x);
  loom_no_grad_end();
  ck_assert(loom_grad_enabled());
  ck_assert(!loom_requires_grad(y) && !loom_requires_grad(z));
  ck_assert_int_eq(loom_tape_size(), 0);
  ck_assert_int_eq(loom_backward(loom_sum_all(y)), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_STATE);
}
END_TEST

START_TEST(test_detach_stops_gradient) {
  loom_tensor *x = leaf((double[]){1, 2}, 2);
  loom_tensor *d = loom_detach(loom_mul_scalar(x, 5));
  ck_assert(loom_is_leaf(d) && !loom_requires_grad(d));
  loom_tensor *y = loom_sum_all(loom_add(loom_mul(d, x), x));
  ck_assert_int_eq(loom_backward(y), 0); /* d/dx = d + 1, d held fixed */
  ck_assert_close(loom_data_f64(loom_grad(x))[1], 11, 0);
  /* detach shares storage */
  ck_assert_ptr_eq(loom_data(d), loom_data(d));
}
END_TEST

START_TEST(test_retain_graph_and_freed_graph) {
  loom_tensor *x = leaf((double[]){3}, 1);
  loom_tensor *y = loom_sum_all(loom_square(x));
  loom_tensor *one = loom_ones(LOOM_F64, 0, NULL);
  loom_backward_opts keep = {.retain_graph = true};
  ck_assert_int_eq(loom_backward_with(y, one, &keep), 0);
  ck_assert_int_eq(loom_backward_with(y, one, NULL), 0);
  ck_assert_close(loom_data_f64(loom_grad(x))[0], 12, 0);
  ck_assert_int_eq(loom_backward(y), -1); /* graph is gone now */
  ck_assert(strstr(loom_last_error(), "already freed") != NULL);
}
END_TEST

START_TEST(test_backward_with_gradient) {
  loom_tensor *x = leaf((double[]){1, 2, 3}, 3);
  loom_tensor *y = loom_mul_scalar(x, 2);
  loom_tensor *g =
      loom_from_array(LOOM_F64, (double[]){1, 10, 100}, LOOM_SHAPE(3));
  ck_assert_int_eq(loom_backward_with(y, g, NULL), 0);
  ck_assert_close(loom_data_f64(loom_grad(x))[2], 200, 0);
  ck_assert_int_eq(loom_backward(loom_mul_scalar(x, 2)), -1); /* not scalar */
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_SHAPE);
}
END_TEST

START_TEST(test_retain_grad_of_non_leaf) {
  loom_tensor *x = leaf((double[]){1, 2}, 2);
  loom_tensor *h = loom_mul_scalar(x, 3);
  loom_retain_grad(h);
  ck_assert_int_eq(loom_backward(loom_sum_all(loom_square(h))), 0);
  ck_assert_ptr_nonnull(loom_grad(h));
  ck_assert_close(loom_data_f64(loom_grad(h))[1], 12, 0); /* 2h */
  ck_assert_close(loom_data_f64(loom_grad(x))[1], 36, 0);
}
END_TEST

START_TEST(test_inplace_on_saved_tensor_is_reported) {
  loom_tensor *x = leaf((double[]){0.5, 1}, 2);
  loom_tensor *y = loom_tanh(x); /* saves its output */
  loom_tensor *loss = loom_sum_all(y);
  loom_no_grad_begin();
  loom_add_(y, loom_ones_like(y), 1);
  loom_no_grad_end();
  ck_assert_int_eq(loom_backward(loss), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_STATE);
  ck_assert(strstr(loom_last_error(), "modified in place") != NULL);
}
END_TEST

START_TEST(test_inplace_on_requires_grad_refused) {
  loom_tensor *x = leaf((double[]){1, 2}, 2);
  ck_assert_ptr_null(loom_mul_scalar_(x, 2));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_STATE);
  loom_clear_error();
  loom_no_grad_begin(); /* how an optimizer updates parameters */
  ck_assert_ptr_nonnull(loom_mul_scalar_(x, 2));
  loom_no_grad_end();
  ck_assert_close(loom_data_f64(x)[1], 4, 0);
}
END_TEST

START_TEST(test_inplace_unrelated_tensor_is_fine) {
  loom_tensor *x = leaf((double[]){1, 2}, 2);
  loom_tensor *c = loom_from_array(LOOM_F64, (double[]){3, 4}, LOOM_SHAPE(2));
  loom_tensor *loss = loom_sum_all(loom_add(x, c)); /* add saves nothing */
  loom_fill_(c, 9);
  ck_assert_int_eq(loom_backward(loss), 0);
}
END_TEST

START_TEST(test_null_propagates_and_first_error_wins) {
  loom_tensor *a = loom_zeros(LOOM_F32, LOOM_SHAPE(2, 3));
  loom_tensor *b = loom_zeros(LOOM_F32, LOOM_SHAPE(4, 5));
  loom_tensor *y = loom_tanh(loom_add(loom_matmul(a, b), a));
  ck_assert_ptr_null(y);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_SHAPE);
  ck_assert_msg(strstr(loom_last_error(), "matmul") &&
                    strstr(loom_last_error(), "[2, 3]") &&
                    strstr(loom_last_error(), "[4, 5]"),
                "message names op and shapes: %s", loom_last_error());
}
END_TEST

/* Products read their operands in backward: writing into one before then
 * is reported, never a silently wrong gradient; an operand no gradient
 * reads may be written. */
START_TEST(test_inplace_on_product_operand_is_reported) {
  for (int op = 0; op < 4; op++) {
    loom_tensor *x = leaf((double[]){0.5, 1, -1, 2}, 4);
    loom_tensor *w = loom_set_requires_grad(
        loom_full(LOOM_F64, 0.25, LOOM_SHAPE(2, 2)), true);
    loom_tensor *x2 = loom_reshape(x, 2, (int64_t[]){2, 2});
    loom_tensor *y = NULL;
    if (op == 0)
      y = loom_linear(x2, w, NULL);
    else if (op == 1)
      y = loom_matmul(x2, w);
    else if (op == 2)
      y = loom_addmm(x2, x2, w, 1, 1);
    else { /* a fused RNN over 2 steps, hidden 2, batch 1 */
      loom_tensor *xp = loom_reshape(x, 3, (int64_t[]){2, 1, 2});
      loom_tensor *h0 = loom_zeros(LOOM_F64, LOOM_SHAPE(1, 2)), *hn;
      loom_tensor *b = loom_zeros(LOOM_F64, LOOM_SHAPE(2));
      ck_assert_int_eq(
          loom_rnn_sequence(xp, w, b, h0, NULL, false, false, &y, &hn), 0);
    }
    loom_tensor *loss = loom_sum_all(loom_mul(y, y));
    loom_no_grad_begin();
    loom_mul_scalar_(w, 2);
    loom_no_grad_end();
    ck_assert_int_eq(loom_backward(loss), -1);
    ck_assert_int_eq(loom_last_status(), LOOM_ERR_STATE);
    ck_assert_msg(strstr(loom_last_error(), "modified in place") != NULL,
                  "op %d: %s", op, loom_last_error());
    loom_clear_error();
    loom_tape_clear();
  }
  /* only W's values are read (for dx): x may change */
  loom_tensor *x = leaf((double[]){0.5, 1, -1, 2}, 4);
  loom_tensor *xx = loom_reshape(loom_mul_scalar(x, 1), 2, (int64_t[]){2, 2});
  loom_tensor *w = loom_full(LOOM_F64, 0.25, LOOM_SHAPE(2, 2));
  loom_tensor *loss = loom_sum_all(loom_linear(xx, w, NULL));
  loom_no_grad_begin();
  loom_mul_scalar_(xx, 2);
  loom_no_grad_end();
  ck_assert_int_eq(loom_backward(loss), 0);
  CHECK_VALUES(loom_grad(x), 1e-15, 0.5, 0.5, 0.5, 0.5);
}
END_TEST

/* Small linears' weight gradients are deferred to one product at the end
 * of the pass, and their leaf biases' gradients to one sum; weights whose
 * linears got the same gradient at every step (three summed into one gate
 * pre-activation, as in an LSTM cell) share one stacked copy of it (or,
 * in float32 on loom's own products, read its rows where they lie). The
 * gradients must be those of the per-step products and sums that anomaly
 * mode runs (it defers nothing), for the sharing weights and their
 * biases, a weight of other width among them, and one with gradients of
 * its own, inputs with rows apart; float64 to 1e-12, float32 (where the
 * row products take weights of 16+ columns) to float32's rounding. */
START_TEST(test_deferred_weights_sharing_gradients) {
  enum { T = 6, B = 3 };
  for (int f32 = 0; f32 < 2; f32++) {
    loom_dtype dt = f32 ? LOOM_F32 : LOOM_F64;
    /* float32: the gates' x-weight (12 columns) too narrow for the row
     * products, its partners by rows; the side weight reads x's rows 21
     * floats apart */
    int64_t IN = f32 ? 12 : 4, SIDE = f32 ? 18 : 4, H = f32 ? 17 : 5;
    double tol = f32 ? 2e-6 : 1e-12;
    loom_rng *g = loom_rng_new(11);
    loom_tensor *x = loom_randn(g, dt, 0, 1, LOOM_SHAPE(T, B, SIDE + 3));
    loom_tensor *p[6] = {
        loom_randn(g, dt, 0, 0.5, LOOM_SHAPE(2 * H, IN)), /* x, gates */
        loom_randn(g, dt, 0, 0.5, LOOM_SHAPE(2 * H, H)),  /* h, gates */
        loom_randn(g, dt, 0, 0.5, LOOM_SHAPE(2 * H, H)),  /* h, gates */
        loom_randn(g, dt, 0, 0.5, LOOM_SHAPE(H, SIDE)),   /* x, side */
        loom_randn(g, dt, 0, 0.5, LOOM_SHAPE(2 * H)),
        loom_randn(g, dt, 0, 0.5, LOOM_SHAPE(2 * H))};
    loom_rng_free(g);
    for (int i = 0; i < 6; i++)
      loom_set_requires_grad(p[i], true);
    double *want[6];
    for (int i = 0; i < 6; i++)
      want[i] = malloc((size_t)loom_numel(p[i]) * sizeof(double));
    /* Without anomaly mode two passes: the second sums into the gradients
     * the first left (in place), the first makes them. */
    for (int anomaly = 1; anomaly >= 0; anomaly--) {
      for (int pass = 0; pass < 2 - anomaly; pass++) {
        loom_set_anomaly_mode(anomaly);
        loom_tensor *h = loom_zeros(dt, LOOM_SHAPE(B, H)), *loss = NULL;
        for (int t = 0; t < T; t++) {
          loom_tensor *xt = loom_narrow(loom_select(x, 0, t), 1, 0, IN);
          loom_tensor *xs = loom_narrow(loom_select(x, 0, t), 1, 3, SIDE);
          loom_tensor *half[2];
          loom_tensor *gates = loom_add(
              loom_add(loom_linear(xt, p[0], p[4]), loom_linear(h, p[1], p[5])),
              loom_linear(h, p[2], NULL));
          ck_assert_int_eq(loom_chunk(gates, 2, 1, half, 2), 2);
          h = loom_mul(loom_tanh(half[0]), loom_sigmoid(half[1]));
          loom_tensor *side = loom_mul(loom_linear(xs, p[3], NULL), h);
          loom_tensor *term =
              loom_add(loom_sum_all(loom_mul(h, h)), loom_sum_all(side));
          loss = loss ? loom_add(loss, term) : term;
        }
        ck_assert_int_eq(loom_backward(loss), 0);
        loom_set_anomaly_mode(false);
      }
      for (int i = 0; i < 6; i++) {
        ck_assert_ptr_nonnull(loom_grad(p[i]));
        loom_tensor *gr =
            loom_contiguous(loom_to_dtype(loom_grad(p[i]), LOOM_F64));
        for (int64_t j = 0; j < loom_numel(gr); j++) {
          double v = loom_data_f64(gr)[j];
          if (anomaly)
            want[i][j] = 2 * v;
          else
            ck_assert_msg(fabs(v - want[i][j]) <= tol * (1 + fabs(want[i][j])),
                          "%s parameter %d [%lld]: %.17g, want %.17g",
                          loom_dtype_name(dt), i, (long long)j, v, want[i][j]);
        }
        loom_zero_grad(p[i]);
      }
    }
    for (int i = 0; i < 6; i++)
      free(want[i]);
  }
}
END_TEST

/* Inside a fixed-weights stretch linear packs its weight at its second use
 * and reuses the packing; a write into the weight (its version) starts
 * over, and every value is that of the plain product. */
START_TEST(test_fixed_weights_products) {
  loom_rng *g = loom_rng_new(7);
  loom_tensor *x = loom_randn(g, LOOM_F32, 0, 1, LOOM_SHAPE(5, 40));
  loom_tensor *w = loom_set_requires_grad(
      loom_randn(g, LOOM_F32, 0, 1, LOOM_SHAPE(70, 40)), true);
  loom_rng_free(g);
  loom_tensor *plain = loom_matmul(x, loom_t(w));
  loom_fixed_weights_begin();
  loom_fixed_weights_begin();                /* nests */
  loom_tensor *y1 = loom_linear(x, w, NULL); /* BLAS, remembered */
  loom_tensor *y2 = loom_linear(x, w, NULL); /* packed */
  loom_tensor *y3 = loom_linear(x, w, NULL); /* the same packing */
  loom_no_grad_begin();
  loom_mul_scalar_(w, 2); /* exact: every product doubles exactly */
  loom_no_grad_end();
  loom_tensor *y4 = loom_linear(x, w, NULL); /* BLAS again */
  loom_tensor *y5 = loom_linear(x, w, NULL); /* packed anew, not stale */
  /* a bias: the packed product starts from it, or from its copy in every
   * row when it is strided; the same bits either way */
  loom_tensor *b2 = loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(70, 2));
  loom_tensor *strided = loom_select(b2, 1, 0);
  loom_tensor *dense = loom_contiguous(strided);
  loom_tensor *y6 = loom_linear(x, w, dense), *y7 = loom_linear(x, w, strided);
  loom_fixed_weights_end();
  loom_fixed_weights_end();
  ck_assert_ptr_nonnull(y7);
  ck_assert(!loom_is_contiguous(strided));
  ck_assert(loom_equal(y6, y7));
  for (int64_t i = 0; i < 5 * 70; i++) {
    float want = 2 * loom_data_f32(plain)[i] + loom_data_f32(dense)[i % 70];
    ck_assert_float_eq_tol(loom_data_f32(y6)[i], want,
                           1e-5f * (1 + fabsf(want)));
  }
  ck_assert_ptr_nonnull(y5);
  for (int64_t i = 0; i < 5 * 70; i++) {
    float want = loom_data_f32(plain)[i];
    float tol = 1e-5f * (1 + fabsf(want));
    ck_assert_float_eq_tol(loom_data_f32(y1)[i], want, tol);
    ck_assert_float_eq_tol(loom_data_f32(y2)[i], want, tol);
    ck_assert_float_eq(loom_data_f32(y3)[i], loom_data_f32(y2)[i]);
    ck_assert_float_eq(loom_data_f32(y4)[i], 2 * loom_data_f32(y1)[i]);
    ck_assert_float_eq(loom_data_f32(y5)[i], 2 * loom_data_f32(y2)[i]);
  }
}
END_TEST

/* A linear of more rows than the packed-weight product takes: loom's own
 * kernel starts every row from a contiguous bias (from 16 outputs on, at
 * AVX2 and AVX-512), a strided bias is copied into the rows first and the
 * product accumulates; the same bits either way, at 1 and 2 threads, and
 * the value of the plain product plus the bias. */
START_TEST(test_linear_bias_rows) {
  loom_rng *g = loom_rng_new(8);
  const int64_t outs[] = {70, 10};
  for (int o = 0; o < 2; o++) {
    int64_t out = outs[o];
    loom_tensor *x = loom_randn(g, LOOM_F32, 0, 1, LOOM_SHAPE(300, 40));
    loom_tensor *w = loom_randn(g, LOOM_F32, 0, 1, LOOM_SHAPE(out, 40));
    loom_tensor *b2 = loom_randn(g, LOOM_F32, 0, 1, LOOM_SHAPE(out, 2));
    loom_tensor *strided = loom_select(b2, 1, 1);
    loom_tensor *dense = loom_contiguous(strided);
    ck_assert(!loom_is_contiguous(strided));
    loom_tensor *plain = loom_matmul(x, loom_t(w)), *y[3];
    for (int t = 0; t < 2; t++) {
      loom_set_num_threads(t + 1);
      y[t] = loom_linear(x, w, dense);
    }
    y[2] = loom_linear(x, w, strided);
    loom_set_num_threads(0);
    ck_assert_ptr_nonnull(y[2]);
    ck_assert(loom_equal(y[0], y[1]) && loom_equal(y[0], y[2]));
    for (int64_t i = 0; i < 300 * out; i++) {
      float want = loom_data_f32(plain)[i] + loom_data_f32(dense)[i % out];
      ck_assert_float_eq_tol(loom_data_f32(y[0])[i], want,
                             1e-5f * (1 + fabsf(want)));
    }
  }
  loom_rng_free(g);
}
END_TEST

/* linear without output features on (2, 3, 4) input: a (2, 3, 0)
 * result, and backward gives x, the weight and the bias their (zero, or
 * empty) gradients; the gradient's rows are x's leading dims, which its
 * elements (none) cannot tell. */
START_TEST(test_linear_no_outputs) {
  for (int d = 0; d < 2; d++) {
    loom_dtype t = d ? LOOM_F32 : LOOM_F64;
    loom_tensor *x =
        loom_set_requires_grad(loom_ones(t, LOOM_SHAPE(2, 3, 4)), true);
    loom_tensor *w =
        loom_set_requires_grad(loom_zeros(t, LOOM_SHAPE(0, 4)), true);
    loom_tensor *b = loom_set_requires_grad(loom_zeros(t, LOOM_SHAPE(0)), true);
    loom_tensor *y = loom_linear(x, w, b);
    ck_assert_loom(y);
    ck_assert_int_eq(loom_ndim(y), 3);
    ck_assert_int_eq(loom_shape(y)[2], 0);
    ck_assert_msg(loom_backward(loom_sum_all(y)) == 0, "%s", loom_last_error());
    ck_assert(loom_equal(loom_grad(x), loom_zeros(t, LOOM_SHAPE(2, 3, 4))));
    ck_assert_int_eq(loom_numel(loom_grad(w)), 0);
    ck_assert_int_eq(loom_numel(loom_grad(b)), 0);
  }
}
END_TEST

/* linear without input features on (2, 3, 0) input: every output is its
 * bias (a product over nothing is 0, as PyTorch gives), through BLAS and
 * the packed path alike (the weight is used twice, so the second call may
 * pack); backward gives the bias its row count per feature and x and the
 * weight their empty gradients. */
START_TEST(test_linear_no_inputs) {
  for (int d = 0; d < 2; d++) {
    loom_dtype t = d ? LOOM_F32 : LOOM_F64;
    loom_tensor *x =
        loom_set_requires_grad(loom_zeros(t, LOOM_SHAPE(2, 3, 0)), true);
    loom_tensor *w =
        loom_set_requires_grad(loom_zeros(t, LOOM_SHAPE(5, 0)), true);
    loom_tensor *b = loom_set_requires_grad(loom_arange(t, 0, 5, 1), true);
    loom_tensor *want = loom_expand(b, LOOM_SHAPE(2, 3, 5));
    loom_tensor *y = NULL;
    for (int call = 0; call < 2; call++) {
      y = loom_linear(x, w, b);
      ck_assert_msg(y, "%s", loom_last_error());
      ck_assert(loom_equal(y, want));
      ck_assert(loom_equal(loom_linear(x, w, NULL),
                           loom_zeros(t, LOOM_SHAPE(2, 3, 5))));
    }
    ck_assert_msg(loom_backward(loom_sum_all(y)) == 0, "%s", loom_last_error());
    ck_assert_int_eq(loom_numel(loom_grad(x)), 0);
    ck_assert_int_eq(loom_numel(loom_grad(w)), 0);
    ck_assert(loom_equal(loom_grad(b), loom_full(t, 6, LOOM_SHAPE(5))));
  }
  /* the layer, as torch.nn.Linear(0, 5): its weight has nothing to
   * initialise and its bias bound 1 / sqrt(0) is taken as 0 (the layer
   * had failed without an error) */
  loom_linear_layer *l = loom_linear_layer_new(0, 5, true);
  ck_assert_msg(l, "%s", loom_last_error());
  ck_assert(loom_equal(l->bias, loom_zeros(LOOM_F32, LOOM_SHAPE(5))));
  loom_linear_layer_free(l);
}
END_TEST

START_TEST(test_layer_norm_values_and_errors) {
  loom_tensor *x = loom_from_array(LOOM_F64, (double[]){1, 2, 3, 4, -1, 1},
                                   LOOM_SHAPE(2, 3));
  loom_tensor *w =
      loom_from_array(LOOM_F64, (double[]){1, 2, -1}, LOOM_SHAPE(3));
  loom_tensor *b = loom_full(LOOM_F64, 0.5, LOOM_SHAPE(3));
  loom_tensor *y = loom_layer_norm(x, 1, w, b, 0);
  ck_assert_ptr_nonnull(y);
  /* row 0: mean 2, var 2/3; row 1: mean 4/3, var 38/9 */
  double k0 = 1 / sqrt(2.0 / 3), k1 = 1 / sqrt(38.0 / 9);
  double want[6] = {-k0 + 0.5,
                    0.5,
                    -k0 + 0.5,
                    (4 - 4.0 / 3) * k1 + 0.5,
                    2 * (-1 - 4.0 / 3) * k1 + 0.5,
                    -(1 - 4.0 / 3) * k1 + 0.5};
  for (int i = 0; i < 6; i++)
    ck_assert_double_eq_tol(loom_data_f64(y)[i], want[i], 1e-14);
  ck_assert_ptr_null(loom_layer_norm(x, 1, x, NULL, 1e-5));
  ck_assert_msg(strstr(loom_last_error(), "layer_norm") &&
                    strstr(loom_last_error(), "[2, 3]"),
                "message names op and shapes: %s", loom_last_error());
  loom_clear_error();
  ck_assert_ptr_null(loom_layer_norm(x, 3, NULL, NULL, 1e-5));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
}
END_TEST

/* The norms take parameters and statistics of another float dtype than
 * x's, promoted with it as loom_linear's operands are: a float64 x with
 * float32 parameters gives the float64 op's values and hands the
 * parameters their gradients as float32; a float32 x with float64
 * parameters computes in float64. A parameter that is not float is
 * refused. */
START_TEST(test_norms_promote_mixed_dtypes) {
  loom_manual_seed(3);
  loom_tensor *x = loom_set_requires_grad(
      loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(4, 3)), true);
  loom_tensor *r = loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(4, 3));
  loom_tensor *p32[4], *p64[4]; /* weight, bias, running mean, running var */
  for (int i = 0; i < 4; i++) {
    p32[i] = loom_rand(NULL, LOOM_F32, 0.5, 1.5, LOOM_SHAPE(3));
    p64[i] = loom_to_dtype(p32[i], LOOM_F64); /* exact */
    if (i < 2) {
      loom_set_requires_grad(p32[i], true);
      loom_set_requires_grad(p64[i], true);
    }
  }
  for (int op = 0; op < 3; op++) { /* layer norm, batch norm train, eval */
    loom_tensor *y[2], *gx[2];
    for (int mixed = 0; mixed < 2; mixed++) {
      loom_tensor **p = mixed ? p32 : p64;
      for (int i = 0; i < 2; i++)
        loom_zero_grad(p[i]);
      loom_zero_grad(x);
      y[mixed] = op == 0
                     ? loom_layer_norm(x, 1, p[0], p[1], 1e-5)
                     : loom_batch_norm(x, p[0], p[1], op == 2 ? p[2] : NULL,
                                       op == 2 ? p[3] : NULL, 1e-5, NULL, NULL);
      ck_assert_msg(y[mixed], "op %d mixed %d: %s", op, mixed,
                    loom_last_error());
      ck_assert_int_eq(loom_dtype_of(y[mixed]), LOOM_F64);
      ck_assert_int_eq(loom_backward(loom_sum_all(loom_mul(y[mixed], r))), 0);
      gx[mixed] = loom_clone(loom_grad(x));
      for (int i = 0; i < 2; i++)
        ck_assert_int_eq(loom_dtype_of(loom_grad(p[i])), loom_dtype_of(p[i]));
    }
    ck_assert(loom_equal(y[0], y[1]));
    ck_assert(loom_equal(gx[0], gx[1]));
    for (int i = 0; i < 2; i++)
      ck_assert(loom_equal(loom_grad(p32[i]),
                           loom_to_dtype(loom_grad(p64[i]), LOOM_F32)));
  }
  loom_tensor *x32 = loom_to_dtype(x, LOOM_F32);
  loom_tensor *wide = loom_layer_norm(x32, 1, p64[0], NULL, 1e-5);
  ck_assert_int_eq(loom_dtype_of(wide), LOOM_F64);
  ck_assert(loom_equal(wide, loom_layer_norm(loom_to_dtype(x32, LOOM_F64), 1,
                                             p64[0], NULL, 1e-5)));
  ck_assert_ptr_null(
      loom_layer_norm(x, 1, loom_ones(LOOM_I64, LOOM_SHAPE(3)), NULL, 1e-5));
  CHECK_ERROR(LOOM_ERR_DTYPE, "layer_norm");
  ck_assert_ptr_null(
      loom_batch_norm(x, NULL, NULL, loom_zeros(LOOM_I64, LOOM_SHAPE(3)),
                      loom_ones(LOOM_F32, LOOM_SHAPE(3)), 1e-5, NULL, NULL));
  CHECK_ERROR(LOOM_ERR_DTYPE, "batch_norm");
  /* the modules promote the same way, as a linear layer does: a float64
   * BatchNorm on float32 input gives float64, and a float32 one on
   * float64 input keeps its float32 running statistics */
  for (int big = 0; big < 2; big++) {
    loom_set_default_dtype(big ? LOOM_F64 : LOOM_F32);
    loom_batch_norm_layer *bn =
        loom_batch_norm_layer_new(3, 1e-5, 0.1, true, true);
    loom_layer_norm_layer *ln =
        loom_layer_norm_layer_new(1, (int64_t[]){3}, 1e-5, true);
    loom_set_default_dtype(LOOM_F32);
    ck_assert(bn && ln);
    loom_tensor *in = big ? x32 : x;
    ck_assert_int_eq(loom_dtype_of(loom_batch_norm_layer_forward(bn, in)),
                     LOOM_F64);
    ck_assert_int_eq(loom_dtype_of(loom_layer_norm_layer_forward(ln, in)),
                     LOOM_F64);
    ck_assert_int_eq(loom_dtype_of(bn->running_mean),
                     big ? LOOM_F64 : LOOM_F32);
    loom_tensor *m = loom_mul_scalar(loom_mean(in, (int[]){0}, 1, false), 0.1);
    ck_assert_double_le(
        loom_item(
            loom_amax(loom_abs(loom_sub(bn->running_mean, m)), NULL, 0, false)),
        1e-7);
    loom_batch_norm_layer_free(bn);
    loom_layer_norm_layer_free(ln);
  }
}
END_TEST

START_TEST(test_requires_grad_rules) {
  loom_tensor *i = loom_zeros(LOOM_I64, LOOM_SHAPE(2));
  ck_assert_ptr_null(loom_set_requires_grad(i, true));
  loom_clear_error();
  loom_tensor *x = leaf((double[]){1}, 1);
  loom_tensor *y = loom_exp(x);
  ck_assert(!loom_is_leaf(y) && loom_requires_grad(y));
  ck_assert_ptr_null(loom_set_requires_grad(y, false));
  loom_clear_error();
  /* retain_grad on a tensor no gradient can reach is refused, as torch's */
  loom_tensor *c = loom_exp(loom_zeros(LOOM_F64, LOOM_SHAPE(2)));
  loom_retain_grad(c);
  CHECK_ERROR(LOOM_ERR_STATE, "retain_grad: tensor [2] does not require grad");
  loom_retain_grad(y);
  ck_assert_int_eq(loom_last_status(), LOOM_OK);
}
END_TEST

/* loom_backward_with without a seed starts a one-element t from 1, as
 * loom_backward does, with options: retain_graph lets the same graph run
 * twice (the gradients add up); a t of several elements needs its seed. */
START_TEST(test_backward_with_unseeded_scalar) {
  loom_tensor *w = leaf((double[]){1, 2, 3}, 3);
  loom_tensor *loss = loom_sum_all(loom_square(w));
  loom_backward_opts keep = {.retain_graph = true};
  ck_assert_int_eq(loom_backward_with(loss, NULL, &keep), 0);
  ck_assert_int_eq(loom_backward_with(loss, NULL, NULL), 0);
  for (int i = 0; i < 3; i++)
    ck_assert_double_eq(loom_data_f64(loom_grad(w))[i], 4.0 * (i + 1));
  ck_assert_int_eq(loom_backward_with(loom_square(w), NULL, NULL), -1);
  CHECK_ERROR(LOOM_ERR_SHAPE, "backward: [3] has 3 elements");
}
END_TEST

/* loom_autograd_grad past a graph an earlier backward freed, as
 * torch.autograd.grad: an input whose own graph is gone still gets its
 * gradient when nothing is needed behind it (a target ends the flow);
 * an input behind the freed part is an error naming it, with or without
 * allow_unused, never an "unused" NULL. A weight applied to a stale
 * output (a discriminator's on a generator's) needs that output detached:
 * loom cannot see where the freed graph led, so a gradient sent into it
 * fails the pass rather than being dropped (it may have led to the
 * weight itself: sum(h x) by x must not give e^x alone). */
START_TEST(test_autograd_grad_after_freed_graph) {
  loom_tensor *x = leaf((double[]){1, 2}, 2), *w = leaf((double[]){5, 7}, 2);
  loom_tensor *y = loom_exp(x), *z = loom_mul(y, y);
  ck_assert_int_eq(loom_backward(loom_sum_all(z)), 0);
  loom_tensor *g[2];
  loom_grad_opts unused = {.allow_unused = true};
  for (int k = 0; k < 2; k++) { /* y alone, z alone: 3 each */
    loom_tensor *t = k ? z : y;
    loom_tensor *o = loom_sum_all(loom_mul_scalar(t, 3));
    ck_assert_int_eq(loom_autograd_grad(&o, 1, &t, 1, NULL, g, NULL), 0);
    ck_assert(loom_equal(g[0], loom_full(LOOM_F64, 3, LOOM_SHAPE(2))));
  }
  loom_tensor *o = loom_sum_all(loom_mul_scalar(y, 3));
  ck_assert_int_eq(
      loom_autograd_grad(&o, 1, (loom_tensor *[]){y, x}, 2, NULL, g, NULL), -1);
  CHECK_ERROR(LOOM_ERR_STATE, "input 1 [2] got no gradient");
  for (int k = 0; k < 2; k++) {
    o = loom_sum_all(loom_mul_scalar(z, 3));
    ck_assert_int_eq(
        loom_autograd_grad(&o, 1, &x, 1, NULL, g, k ? &unused : NULL), -1);
    ck_assert_ptr_null(g[0]);
    CHECK_ERROR(LOOM_ERR_STATE, "already freed by an earlier backward");
  }
  o = loom_sum_all(loom_mul(w, z));
  ck_assert_int_eq(loom_autograd_grad(&o, 1, &w, 1, NULL, g, NULL), -1);
  CHECK_ERROR(LOOM_ERR_STATE, "already freed by an earlier backward");
  o = loom_sum_all(loom_mul(w, loom_detach(z)));
  ck_assert_int_eq(loom_autograd_grad(&o, 1, &w, 1, NULL, g, NULL), 0);
  ck_assert(loom_equal(g[0], z));
  o = loom_sum_all(loom_mul(y, x));
  ck_assert_int_eq(loom_autograd_grad(&o, 1, &x, 1, NULL, g, NULL), -1);
  CHECK_ERROR(LOOM_ERR_STATE, "already freed by an earlier backward");
}
END_TEST

/* A tensor named twice among loom_autograd_grad's inputs gets its
 * gradient in each place, as in torch.autograd.grad: a leaf, a result of
 * a recorded op, and an output that is itself an input. */
START_TEST(test_autograd_grad_input_named_twice) {
  loom_tensor *x = leaf((double[]){1, 2}, 2);
  loom_tensor *h = loom_exp(x);
  loom_tensor *y = loom_sum_all(loom_mul(h, x));
  loom_tensor *g[4];
  loom_grad_opts keep = {.retain_graph = true};
  ck_assert_int_eq(loom_autograd_grad(&y, 1, (loom_tensor *[]){x, h, x, h}, 4,
                                      NULL, g, &keep),
                   0);
  loom_tensor *dx =
      loom_mul(loom_detach(h), loom_add_scalar(loom_detach(x), 1));
  ck_assert(loom_equal(g[0], dx) && loom_equal(g[2], dx));
  ck_assert(loom_equal(g[1], loom_detach(x)) && loom_equal(g[3], g[1]));
  ck_assert_int_eq(loom_autograd_grad(&h, 1, (loom_tensor *[]){h, h}, 2,
                                      (loom_tensor *[]){x}, g, &keep),
                   0);
  ck_assert(loom_equal(g[0], x) && loom_equal(g[1], x));
}
END_TEST

START_TEST(test_scope_may_end_before_backward) {
  loom_tensor *w = leaf((double[]){1, 2, 3}, 3);
  loom_scope *s = loom_scope_begin();
  loom_tensor *loss = loom_keep(loom_sum_all(loom_tanh(loom_mul(w, w))));
  loom_scope_end(s);
  ck_assert_int_eq(loom_backward(loss), 0);
  loom_release(loss);
  double v = 2, t = tanh(v * v);
  ck_assert_close(loom_data_f64(loom_grad(w))[1], (1 - t * t) * 2 * v, 1e-12);
}
END_TEST

START_TEST(test_unused_graph_is_freed_with_its_output) {
  loom_tensor *w = leaf((double[]){1, 2}, 2);
  int64_t live = loom_debug_live_tensors();
  loom_scope *s = loom_scope_begin();
  for (int i = 0; i < 100; i++)
    loom_tanh(loom_mul(w, w)); /* never backpropagated */
  loom_scope_end(s);
  ck_assert_int_eq(loom_tape_size(), 0);
  ck_assert_int_eq(loom_debug_live_tensors(), live);
}
END_TEST

/* 10,000 steps of forward + backward + update: nothing but the parameters
 * and their gradients stays alive. */
START_TEST(test_training_loop_memory_is_flat) {
  loom_tensor *w = loom_set_requires_grad(
      loom_randn(NULL, LOOM_F32, 0, 0.1, LOOM_SHAPE(4, 4)), true);
  loom_tensor *x = loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(2, 4));
  int64_t live = 0, bytes = 0;
  for (int step = 0; step < 10000; step++) {
    loom_scope *s = loom_scope_begin();
    loom_tensor *h = loom_tanh(loom_matmul(x, w));
    loom_tensor *loss = loom_mean_all(loom_square(h));
    ck_assert_int_eq(loom_backward(loss), 0);
    loom_no_grad_begin();
    loom_add_(w, loom_grad(w), -0.01);
    loom_no_grad_end();
    loom_zero_grad(w);
    loom_scope_end(s);
    if (step == 10) {
      live = loom_debug_live_tensors();
      bytes = loom_debug_live_bytes();
    }
  }
  ck_assert_int_eq(loom_debug_live_tensors(), live);
  ck_assert_int_eq(loom_debug_live_bytes(), bytes);
  ck_assert_int_eq(loom_tape_size(), 0);
}
END_TEST

/* Truncated BPTT: a detached state carries over chunks; memory is flat. */
START_TEST(test_truncated_bptt) {
  loom_tensor *w = loom_set_requires_grad(
      loom_randn(NULL, LOOM_F64, 0, 0.5, LOOM_SHAPE(3, 3)), true);
  loom_tensor *h = loom_keep(loom_zeros(LOOM_F64, LOOM_SHAPE(1, 3)));
  int64_t live = 0;
  for (int chunk = 0; chunk < 50; chunk++) {
    loom_scope *s = loom_scope_begin();
    loom_tensor *state = h, *loss = loom_zeros(LOOM_F64, 0, NULL);
    for (int t = 0; t < 5; t++) {
      state = loom_tanh(loom_add_scalar(loom_matmul(state, w), 0.1));
      loss = loom_add(loss, loom_sum_all(state));
    }
    ck_assert_int_eq(loom_backward(loss), 0);
    loom_release(h);
    h = loom_keep(loom_detach(state));
    loom_zero_grad(w);
    loom_scope_end(s);
    if (chunk == 5)
      live = loom_debug_live_tensors();
  }
  ck_assert_int_eq(loom_debug_live_tensors(), live);
  loom_release(h);
}
END_TEST

static int twice_fwd(loom_function_ctx *c, loom_tensor *const *in, int n,
                     loom_tensor **out) {
  (void)n;
  ck_assert(loom_function_needs_grad(c, 0));
  ck_assert(!loom_function_needs_grad(c, 1)); /* not an input: no read */
  ck_assert(!loom_function_needs_grad(c, -1));
  out[0] = loom_mul_scalar(in[0], 2);
  return 0;
}
static int twice_bwd(loom_function_ctx *c, loom_tensor *const *g,
                     loom_tensor **gin) {
  ck_assert_int_eq(*(int *)loom_function_user(c), 42);
  gin[0] = loom_mul_scalar(g[0], 2);
  return 0;
}
static const loom_function twice = {"twice", 1, 1, twice_fwd, twice_bwd};

START_TEST(test_custom_function) {
  loom_tensor *x = leaf((double[]){1, 2}, 2);
  loom_tensor *y;
  int user = 42;
  ck_assert_int_eq(loom_function_apply(&twice, &x, &y, &user), 0);
  ck_assert_close(loom_data_f64(y)[1], 4, 0);
  ck_assert_int_eq(loom_backward(loom_sum_all(loom_square(y))), 0);
  ck_assert_close(loom_data_f64(loom_grad(x))[1], 16, 0); /* 2*4*2 */
}
END_TEST

/* A custom function with an integer output (an argmax beside the max):
 * that output needs no gradient, as torch's, and the backward callback
 * gets int64 zeros for it. */
static int max_fwd(loom_function_ctx *c, loom_tensor *const *in, int n,
                   loom_tensor **out) {
  (void)n;
  out[1] = loom_argmax(in[0], 0, false);
  out[0] = loom_amax(in[0], (int[]){0}, 1, false);
  loom_function_save(c, out[1]);
  return out[0] && out[1] ? 0 : -1;
}
static int max_bwd(loom_function_ctx *c, loom_tensor *const *g,
                   loom_tensor **gin) {
  ck_assert_int_eq(loom_dtype_of(g[1]), LOOM_I64);
  ck_assert_int_eq(loom_item(loom_sum_all(loom_abs(g[1]))), 0);
  const loom_tensor *at = loom_function_saved(c, 0);
  double *d = loom_data_f64(gin[0] = loom_zeros(LOOM_F64, LOOM_SHAPE(3)));
  d[(int64_t)loom_item(at)] = loom_item(g[0]);
  return 0;
}

START_TEST(test_custom_function_integer_output) {
  static const loom_function max = {"max", 1, 2, max_fwd, max_bwd};
  loom_tensor *x = leaf((double[]){1, 5, 2}, 3), *out[2];
  ck_assert_int_eq(loom_function_apply(&max, &x, out, NULL), 0);
  ck_assert(loom_requires_grad(out[0]));
  ck_assert(!loom_requires_grad(out[1]));
  /* the index feeds a float op: nothing flows back through it */
  loom_tensor *y = loom_mul(out[0], out[1]);
  ck_assert_int_eq(loom_backward(y), 0);
  CHECK_VALUES(loom_grad(x), 0, 0, 1, 0);
}
END_TEST

/* A forward that saves NULL (here between two saves, or the result of an
 * op that failed): the save was skipped, so the backward read the tensor
 * after it at index 1; now apply fails and says which save it was. */
static int null_save_fwd(loom_function_ctx *c, loom_tensor *const *in, int n,
                         loom_tensor **out) {
  (void)n;
  loom_function_save(c, in[0]);
  loom_function_save(c, *(bool *)loom_function_user(c)
                            ? loom_reshape(in[0], LOOM_SHAPE(5))
                            : NULL);
  loom_function_save(c, in[0]);
  out[0] = loom_mul_scalar(in[0], 2);
  return 0;
}

START_TEST(test_custom_function_saving_null) {
  static const loom_function f = {"null_save", 1, 1, null_save_fwd, twice_bwd};
  loom_tensor *x = leaf((double[]){1, 2}, 2), *y = x;
  bool failed_op = false;
  ck_assert_int_eq(loom_function_apply(&f, &x, &y, &failed_op), -1);
  ck_assert_ptr_null(y);
  CHECK_ERROR(LOOM_ERR_ARGUMENT,
              "null_save: the forward saved NULL as tensor 1 (function_save)");
  loom_clear_error();
  failed_op = true; /* the op's own error is the cause, and is kept */
  ck_assert_int_eq(loom_function_apply(&f, &x, &y, &failed_op), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_SHAPE);
  ck_assert_ptr_null(strstr(loom_last_error(), "function_save"));
  loom_clear_error();
  /* without grad mode, likewise */
  loom_no_grad_begin();
  failed_op = false;
  ck_assert_int_eq(loom_function_apply(&f, &x, &y, &failed_op), -1);
  loom_no_grad_end();
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "saved NULL as tensor 1");
}
END_TEST

/* Callbacks that return a count (as a segment or gradcheck function
 * does) instead of 0: apply returned the 1 with its output NULL and no
 * error, and a backward's 2 passed as success; both now fail naming the
 * value. */
static int counting_fwd(loom_function_ctx *c, loom_tensor *const *in, int n,
                        loom_tensor **out) {
  (void)c;
  out[0] = loom_mul_scalar(in[0], 2);
  return n;
}
static int counting_bwd(loom_function_ctx *c, loom_tensor *const *g,
                        loom_tensor **gin) {
  (void)c;
  gin[0] = loom_mul_scalar(g[0], 2);
  return 2;
}

START_TEST(test_custom_function_returning_a_count) {
  static const loom_function f = {"counting", 1, 1, counting_fwd, twice_bwd};
  loom_tensor *x = leaf((double[]){1, 2}, 2), *y = x;
  ck_assert_int_eq(loom_function_apply(&f, &x, &y, NULL), -1);
  ck_assert_ptr_null(y);
  CHECK_ERROR(LOOM_ERR_STATE,
              "counting: forward callback returned 1 (0, or -1 with an "
              "error set)");
  loom_clear_error();
  static const loom_function g = {"counting_back", 1, 1, twice_fwd,
                                  counting_bwd};
  ck_assert_int_eq(loom_function_apply(&g, &x, &y, NULL), 0);
  ck_assert_int_eq(loom_backward(loom_sum_all(y)), -1);
  CHECK_ERROR(LOOM_ERR_STATE, "counting_back: backward callback returned 2");
  ck_assert_ptr_null(loom_grad(x));
}
END_TEST

START_TEST(test_anomaly_mode) {
  loom_set_anomaly_mode(true);
  loom_tensor *x = leaf((double[]){-1, 4}, 2);
  loom_tensor *y = loom_sqrt(x);
  ck_assert_ptr_nonnull(y);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_NUMERIC);
  ck_assert(strstr(loom_last_error(), "sqrt") != NULL);
  loom_clear_error();
  /* backward: log at 0 gives an infinite gradient */
  loom_tensor *z = leaf((double[]){0, 1}, 2);
  loom_tensor *l = loom_sum_all(loom_mul(loom_log(loom_add_scalar(z, 1)), z));
  ck_assert_int_eq(loom_backward(l), 0);
  loom_tensor *w = leaf((double[]){0, 1}, 2);
  loom_tensor *m = loom_sum_all(loom_sqrt(w));
  ck_assert_int_eq(loom_backward(m), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_NUMERIC);
  ck_assert(strstr(loom_last_error(), "sqrt") != NULL);
  loom_set_anomaly_mode(false);
}
END_TEST

START_TEST(test_graph_print) {
  loom_tensor *x = leaf((double[]){1, 2}, 2);
  loom_tensor *y = loom_sum_all(loom_tanh(loom_mul_scalar(x, 2)));
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  loom_graph_print(f, y);
  fclose(f);
  ck_assert_msg(strstr(buf, "sum(") && strstr(buf, "tanh(") &&
                    strstr(buf, "mul_scalar(leaf[2])"),
                "graph:\n%s", buf);
  free(buf);
}
END_TEST

START_TEST(test_registry_lists_ops) {
  int n = loom_op_count();
  bool found = false;
  for (int i = 0; i < n; i++)
    found |= strcmp(loom_op_name(i), "matmul") == 0;
  ck_assert(found);
  ck_assert_ptr_null(loom_op_name(n));
}
END_TEST

/* Backward frees each node once its gradients have gone on, and with it
 * what it saved: by the time the leaf's gradient is complete, the eight
 * exp outputs the chain saved (256 KiB each) are gone, when the forward
 * pass's scope ended before backward. With retain_graph they stay. */
static int live_at_leaf(loom_tensor *t, const loom_tensor *grad,
                        loom_tensor **replace, void *ctx) {
  (void)t;
  (void)grad;
  (void)replace;
  *(int64_t *)ctx = loom_debug_live_bytes();
  return 0;
}

START_TEST(test_backward_frees_as_it_goes) {
  const int64_t n = 1 << 15, bytes = n * 8;
  for (int retain = 0; retain < 2; retain++) {
    loom_tensor *x = loom_set_requires_grad(loom_zeros(LOOM_F64, 1, &n), true);
    loom_scope *s = loom_scope_begin();
    loom_tensor *y = x;
    for (int i = 0; i < 8; i++)
      y = loom_exp(loom_mul_scalar(y, 0.5)); /* exp saves its output */
    loom_tensor *loss = loom_keep(loom_sum_all(y));
    loom_scope_end(s);
    int64_t before = loom_debug_live_bytes(), at_leaf = 0;
    loom_hook *h = loom_register_hook(x, live_at_leaf, &at_leaf);
    ck_assert_ptr_nonnull(h);
    loom_backward_opts o = {.retain_graph = retain};
    ck_assert_int_eq(loom_backward_with(loss, loom_ones_like(loss), &o), 0);
    if (retain)
      ck_assert_int_ge(at_leaf, before);
    else /* the saved outputs are gone; the leaf's gradient is new */
      ck_assert_int_le(at_leaf, before - 8 * bytes + 2 * bytes);
    loom_hook_remove(h);
    loom_release(loss);
  }
}
END_TEST

/* add, a view, relu and dropout read none of their inputs' values in
 * backward, so their nodes keep stand-ins: once the scope that made the
 * chain ends, only relu's output (which it saves), the mask and the result
 * stay, not the sum a + b. The gradients are unchanged. */
START_TEST(test_unread_inputs_are_not_kept) {
  const int64_t n = 1 << 14;
  loom_manual_seed(1);
  loom_tensor *a = loom_set_requires_grad(
      loom_keep(loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(n))), true);
  loom_tensor *b = loom_set_requires_grad(
      loom_keep(loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(n))), true);
  int64_t before = loom_debug_live_bytes();
  loom_scope *s = loom_scope_begin();
  loom_tensor *y = loom_keep(loom_dropout(
      loom_reshape(loom_relu(loom_add(a, b)), LOOM_SHAPE(128, 128)), 0.5, true,
      NULL));
  loom_scope_end(s);
  ck_assert_int_eq(loom_debug_live_bytes() - before, 2 * n * 8 + n);
  loom_tensor *loss = loom_keep(loom_sum_all(y));
  ck_assert_int_eq(loom_backward(loss), 0);
  ck_assert_int_eq(loom_tape_size(), 0);
  /* 2 (dropout's scale) where the mask kept a positive a + b, else 0 */
  const double *ga = loom_data_f64(loom_grad(a)),
               *gb = loom_data_f64(loom_grad(b)), *yv = loom_data_f64(y);
  int64_t kept = 0;
  for (int64_t i = 0; i < n; i++) {
    double want = yv[i] != 0 ? 2 : 0;
    kept += yv[i] != 0;
    ck_assert(ga[i] == want && gb[i] == want);
  }
  ck_assert(kept > n / 8 && kept < n / 2); /* a quarter, roughly */
  loom_release(loss);
  loom_release(y);
  loom_release(a);
  loom_release(b);
}
END_TEST

/* Stand-ins in passes that name an intermediate and record their
 * gradients: y = sum(tanh(t - 3x)) with t = 2x kept by the caller, every
 * other intermediate gone before the passes. dy/dt = sech^2(x), dy/dx =
 * -sech^2(x) (through t too), and d/dx of the sum of that is 2 sech^2(x)
 * tanh(x) (tanh's output, dead, comes back from its saved values). */
START_TEST(test_stand_ins_in_higher_order_passes) {
  const double v[3] = {0.3, -1.2, 2.0};
  loom_tensor *x = leaf(v, 3);
  loom_scope *s = loom_scope_begin();
  loom_tensor *t = loom_keep(loom_add(x, x));
  loom_tensor *y =
      loom_keep(loom_sum_all(loom_tanh(loom_sub(t, loom_mul_scalar(x, 3)))));
  loom_scope_end(s);
  s = loom_scope_begin();
  loom_tensor *g[2];
  loom_grad_opts o = {.create_graph = true};
  ck_assert_int_eq(
      loom_autograd_grad(&y, 1, (loom_tensor *[]){t, x}, 2, NULL, g, &o), 0);
  loom_tensor *z = loom_sum_all(g[1]), *h;
  ck_assert_int_eq(loom_autograd_grad(&z, 1, &x, 1, NULL, &h, NULL), 0);
  for (int i = 0; i < 3; i++) {
    double th = tanh(v[i]), sech2 = 1 - th * th;
    ck_assert_close(loom_data_f64(g[0])[i], sech2, 1e-14);
    ck_assert_close(loom_data_f64(g[1])[i], -sech2, 1e-14);
    ck_assert_close(loom_data_f64(h)[i], 2 * sech2 * th, 1e-14);
  }
  loom_scope_end(s);
  loom_release(t);
  loom_release(y);
}
END_TEST

/* Custom functions for the failing pass below: one whose gradient is its
 * saved input (x^2 / 2 for a gradient of ones), one whose backward fails. */
static int keep_input_fwd(loom_function_ctx *c, loom_tensor *const *in, int n,
                          loom_tensor **out) {
  (void)n;
  loom_function_save(c, in[0]);
  out[0] = loom_mul_scalar(loom_square(in[0]), 0.5);
  return 0;
}

static int input_as_grad_bwd(loom_function_ctx *c, loom_tensor *const *gout,
                             loom_tensor **gin) {
  (void)gout;
  gin[0] = (loom_tensor *)loom_function_saved(c, 0);
  return gin[0] ? 0 : -1;
}

static int failing_bwd(loom_function_ctx *c, loom_tensor *const *gout,
                       loom_tensor **gin) {
  (void)c;
  (void)gout;
  (void)gin;
  loom_set_error(LOOM_ERR_STATE, "failing_bwd fails");
  return -1;
}

/* A pass that fails while a gradient waiting in a node's slot is a tensor
 * of the graph (here the node's own output, handed back by a custom
 * function): dropping it when the pass ends frees that node, which must
 * not then drop the slot a second time (a heap-use-after-free under
 * ASan). */
START_TEST(test_failed_pass_drops_graph_gradient) {
  static const loom_function half_square = {"half_square", 1, 1, keep_input_fwd,
                                            input_as_grad_bwd};
  static const loom_function failing = {"failing", 1, 1, keep_input_fwd,
                                        failing_bwd};
  loom_tensor *a =
      loom_set_requires_grad(loom_ones(LOOM_F64, LOOM_SHAPE(3)), true);
  loom_scope *s = loom_scope_begin();
  loom_tensor *x = loom_mul_scalar(a, 2); /* its node runs last */
  loom_tensor *q = NULL, *y = NULL;
  ck_assert_int_eq(loom_function_apply(&failing, &a, &q, NULL), 0);
  ck_assert_int_eq(loom_function_apply(&half_square, &x, &y, NULL), 0);
  loom_tensor *loss = loom_keep(loom_add(loom_sum_all(y), loom_sum_all(q)));
  loom_scope_end(s);
  ck_assert_int_eq(loom_backward(loss), -1);
  ck_assert_str_eq(loom_last_error(), "failing_bwd fails");
  loom_clear_error();
  loom_release(loss);
}
END_TEST

static int count_calls(loom_tensor *t, const loom_tensor *grad,
                       loom_tensor **replace, void *ctx) {
  (void)t, (void)grad, (void)replace;
  ++*(int *)ctx;
  return 0;
}

/* The pieces of a split are one node: their gradients are joined once,
 * a piece no path uses gives zeros (but, as in PyTorch, has no gradient
 * of its own: its hooks are not called, it retains none), a piece used
 * twice sums, and a 0-long piece takes part. A 0-dim tensor has no dim to
 * split. */
START_TEST(test_split_is_one_node) {
  loom_tensor *x = leaf((double[]){1, 2, 3, 4, 5, 6, 7}, 7);
  loom_tensor *p[4];
  ck_assert_int_eq(loom_split_sizes(x, (int64_t[]){2, 0, 3, 2}, 4, 0, p), 4);
  ck_assert_int_eq(loom_tape_size(), 1);
  int calls[2] = {0, 0};
  loom_hook *h[2] = {loom_register_hook(p[3], count_calls, &calls[0]),
                     loom_register_hook(p[2], count_calls, &calls[1])};
  ck_assert(h[0] && h[1]);
  loom_retain_grad(p[3]);
  ck_assert_int_eq(loom_size(p[1], 0), 0);
  /* p[0] twice (2 + 3 = 5 per element), p[2] by itself, p[3] unused */
  loom_tensor *sum2 =
      loom_add(loom_mul_scalar(p[0], 2), loom_mul_scalar(p[0], 3));
  loom_tensor *square = loom_mul(p[2], p[2]);
  loom_tensor *y = loom_add(loom_add(loom_sum_all(sum2), loom_sum_all(square)),
                            loom_sum_all(p[1]));
  ck_assert_int_eq(loom_backward(y), 0);
  CHECK_VALUES(loom_grad(x), 0, 5, 5, 6, 8, 10, 0, 0);
  ck_assert_int_eq(loom_tape_size(), 0);
  ck_assert_int_eq(calls[0], 0);
  ck_assert_int_eq(calls[1], 1);
  ck_assert_ptr_null(loom_grad(p[3]));
  loom_hook_remove(h[0]);
  loom_hook_remove(h[1]);

  loom_tensor *c[3]; /* chunk: the last piece what is left */
  ck_assert_int_eq(loom_chunk(x, 3, 0, c, 3), 3);
  ck_assert_int_eq(loom_size(c[2], 0), 1);
  ck_assert_int_eq(loom_tape_size(), 1);
  loom_tape_clear();
  /* as torch.chunk: an empty dim gives `chunks` empty pieces, and a
   * backward through them gives the empty gradient */
  loom_tensor *none =
      loom_set_requires_grad(loom_zeros(LOOM_F64, LOOM_SHAPE(0, 2)), true);
  ck_assert_int_eq(loom_chunk(none, 3, 0, c, 3), 3);
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(loom_size(c[i], 0), 0);
  ck_assert_int_eq(loom_chunk(none, 4, 0, c, 3), -1);
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "chunk: 4 pieces, room for 3");
  ck_assert_int_eq(loom_chunk(none, 3, 0, c, 3), 3);
  ck_assert_int_eq(
      loom_backward(loom_add(loom_sum_all(c[0]), loom_sum_all(c[2]))), 0);
  ck_assert_int_eq(loom_numel(loom_grad(none)), 0);

  loom_tensor *s = loom_scalar(LOOM_F64, 3), *out[4];
  ck_assert_int_eq(loom_split(s, 1, 0, out, 4), -1);
  CHECK_ERROR(LOOM_ERR_SHAPE, "split: a 0-dim tensor");
  ck_assert_int_eq(loom_chunk(s, 2, 0, out, 4), -1);
  CHECK_ERROR(LOOM_ERR_SHAPE, "chunk: a 0-dim tensor");
  ck_assert_int_eq(loom_split_sizes(s, (int64_t[]){1}, 1, 0, out), -1);
  CHECK_ERROR(LOOM_ERR_SHAPE, "split: a 0-dim tensor");
}
END_TEST

int main(void) {
  Suite *s = suite_create("autograd");
  TCase *tc = tcase_create("tape");
  tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_simple_gradient);
  tcase_add_test(tc, test_layer_norm_values_and_errors);
  tcase_add_test(tc, test_norms_promote_mixed_dtypes);
  tcase_add_test(tc, test_fixed_weights_products);
  tcase_add_test(tc, test_linear_bias_rows);
  tcase_add_test(tc, test_inplace_on_product_operand_is_reported);
  tcase_add_test(tc, test_accumulates_across_backwards);
  tcase_add_test(tc, test_set_grad);
  tcase_add_test(tc, test_shared_input_sums_paths);
  tcase_add_test(tc, test_no_grad_records_nothing);
  tcase_add_test(tc, test_detach_stops_gradient);
  tcase_add_test(tc, test_retain_graph_and_freed_graph);
  tcase_add_test(tc, test_backward_with_gradient);
  tcase_add_test(tc, test_retain_grad_of_non_leaf);
  tcase_add_test(tc, test_inplace_on_saved_tensor_is_reported);
  tcase_add_test(tc, test_inplace_on_requires_grad_refused);
  tcase_add_test(tc, test_inplace_unrelated_tensor_is_fine);
  tcase_add_test(tc, test_null_propagates_and_first_error_wins);
  tcase_add_test(tc, test_requires_grad_rules);
  tcase_add_test(tc, test_backward_with_unseeded_scalar);
  tcase_add_test(tc, test_autograd_grad_after_freed_graph);
  tcase_add_test(tc, test_autograd_grad_input_named_twice);
  tcase_add_test(tc, test_scope_may_end_before_backward);
  tcase_add_test(tc, test_unused_graph_is_freed_with_its_output);
  tcase_add_test(tc, test_training_loop_memory_is_flat);
  tcase_add_test(tc, test_truncated_bptt);
  tcase_add_test(tc, test_custom_function);
  tcase_add_test(tc, test_custom_function_integer_output);
  tcase_add_test(tc, test_custom_function_saving_null);
  tcase_add_test(tc, test_custom_function_returning_a_count);
  tcase_add_test(tc, test_anomaly_mode);
  tcase_add_test(tc, test_graph_print);
  tcase_add_test(tc, test_registry_lists_ops);
  tcase_add_test(tc, test_backward_frees_as_it_goes);
  tcase_add_test(tc, test_unread_inputs_are_not_kept);
  tcase_add_test(tc, test_stand_ins_in_higher_order_passes);
  tcase_add_test(tc, test_deferred_weights_sharing_gradients);
  tcase_add_test(tc, test_linear_no_outputs);
  tcase_add_test(tc, test_linear_no_inputs);
  tcase_add_test(tc, test_failed_pass_drops_graph_gradient);
  tcase_add_test(tc, test_split_is_one_node);
  suite_add_tcase(s, tc);
  return loom_run_suite(s);
}
