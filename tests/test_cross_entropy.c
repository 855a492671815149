/* The fused cross entropy op (loom_fused_cross_entropy) against the
 * composition of public ops it replaces, forward and backward (its
 * gradient written into the logits' memory when they are the tape's
 * alone, and not when the graph is retained): ignored
 * targets, label smoothing 0 to 1, class counts around the kernel's chunk
 * (256), float64 and float32, strided logits; loom_cross_entropy's fused
 * path (2-D logits) against its composed path (the same logits with a
 * trailing dim of 1) for every reduction; the same bits for 1 and 2
 * threads; errors. The op's gradcheck and gradgradcheck are in
 * test_gradcheck.c, PyTorch parity through loom_cross_entropy in
 * test_loss_parity.c. */
#include "check_util.h"

#include <math.h>

/* Per row: -(1 - eps) logp[t] - eps / C sum logp, 0 where ignored. */
static loom_tensor *composed(const loom_tensor *x, const loom_tensor *t,
                             int64_t ignore, double eps) {
  loom_tensor *keep = loom_ne_scalar(t, (double)ignore);
  loom_tensor *safe = loom_masked_fill(t, loom_logical_not(keep), 0);
  loom_tensor *logp = loom_log_softmax(x, 1);
  loom_tensor *picked =
      loom_squeeze(loom_gather(logp, 1, loom_unsqueeze(safe, 1)), 1);
  loom_tensor *all = loom_sum(logp, (int[]){1}, 1, false);
  double C = (double)loom_size(x, 1);
  loom_tensor *loss = loom_neg(loom_add(loom_mul_scalar(picked, 1 - eps),
                                        loom_mul_scalar(all, eps / C)));
  return loom_mul(loss, loom_to_dtype(keep, loom_dtype_of(x)));
}

/* Targets for N rows of C classes, every third row ignored. */
static loom_tensor *targets(int64_t N, int64_t C, int64_t ignore) {
  loom_tensor *t = loom_empty(LOOM_I64, 1, &N);
  for (int64_t i = 0; i < N; i++)
    loom_set(t, &i, i % 3 == 1 ? (double)ignore : (double)((i * 7) % C));
  return t;
}

typedef struct {
  loom_tensor *loss, *grad;
} result;

/* Loss rows and the logits' gradient of sum(loss * w), w fixed. */
static result run(bool fused, const loom_tensor *x0, const loom_tensor *t,
                  int64_t ignore, double eps, bool transposed) {
  loom_tensor *leaf = loom_set_requires_grad(loom_clone(x0), true);
  const loom_tensor *x = leaf;
  if (transposed) /* stored (C, N), read (N, C) */
    x = loom_transpose(leaf, 0, 1);
  loom_tensor *loss = fused ? loom_fused_cross_entropy(x, t, ignore, eps)
                            : composed(x, t, ignore, eps);
  ck_assert_loom(loss);
  loom_manual_seed(9);
  loom_tensor *w =
      loom_randn(NULL, loom_dtype_of(loss), 0, 1, 1, loom_shape(loss));
  ck_assert_int_eq(loom_backward(loom_sum_all(loom_mul(loss, w))), 0);
  return (result){loss, loom_grad(leaf)};
}

START_TEST(test_fused_equals_composition) {
  const int64_t classes[] = {1, 5, 255, 256, 257, 600};
  const double eps[] = {0, 0.1, 1};
  for (int dt = 0; dt < 2; dt++) {
    loom_dtype type = dt ? LOOM_F32 : LOOM_F64;
    double tol = dt ? 1e-5 : 1e-13;
    for (size_t c = 0; c < sizeof classes / sizeof *classes; c++)
      for (size_t e = 0; e < 3; e++)
        for (int tr = 0; tr < 2; tr++) {
          int64_t N = 7, C = classes[c];
          loom_manual_seed(4);
          loom_tensor *x = tr ? loom_randn(NULL, type, 0, 3, LOOM_SHAPE(C, N))
                              : loom_randn(NULL, type, 0, 3, LOOM_SHAPE(N, C));
          loom_tensor *t = targets(N, C, -100);
          result f = run(true, x, t, -100, eps[e], tr);
          result k = run(false, x, t, -100, eps[e], tr);
          ck_assert_msg(loom_allclose(f.loss, k.loss, tol, tol),
                        "loss: C %lld eps %g %s", (long long)C, eps[e],
                        loom_dtype_name(type));
          ck_assert_msg(loom_allclose(f.grad, k.grad, tol, tol),
                        "grad: C %lld eps %g %s", (long long)C, eps[e],
                        loom_dtype_name(type));
          for (int64_t i = 1; i < N; i += 3) /* ignored rows */
            ck_assert(loom_get(f.loss, &i) == 0);
        }
  }
}
END_TEST

/* Large logits do not overflow (the row's maximum is subtracted), and a
 * -inf logit of another class costs nothing without smoothing. */
START_TEST(test_extremes) {
  double v[] = {1000, 0, -INFINITY, -1000, 999, 1000};
  loom_tensor *x = loom_from_array(LOOM_F64, v, LOOM_SHAPE(2, 3));
  loom_tensor *t = loom_from_array(LOOM_I64, (int64_t[]){0, 2}, LOOM_SHAPE(2));
  loom_tensor *l = loom_fused_cross_entropy(x, t, -100, 0);
  ck_assert_loom(l);
  ck_assert_double_eq_tol(loom_get(l, (int64_t[]){0}), 0, 1e-12);
  ck_assert_double_eq_tol(loom_get(l, (int64_t[]){1}), log1p(exp(-1.0)), 1e-12);
  loom_tensor *s = loom_fused_cross_entropy(x, t, -100, 0.1);
  ck_assert(isinf(loom_get(s, (int64_t[]){0}))); /* -inf enters the mean */
}
END_TEST

/* The loss and gradient of one row of logits at the given dtype. */
static loom_tensor *row_loss(loom_dtype type, const double *v, int64_t C,
                             int64_t target, double eps, loom_tensor **grad) {
  loom_tensor *x = loom_set_requires_grad(
      loom_from_array(LOOM_F64, v, LOOM_SHAPE(1, C)), false);
  x = loom_set_requires_grad(loom_to_dtype(x, type), true);
  loom_tensor *t = loom_from_array(LOOM_I64, &target, LOOM_SHAPE(1));
  loom_tensor *l = loom_fused_cross_entropy(x, t, -100, eps);
  ck_assert_loom(l);
  ck_assert_int_eq(loom_backward(loom_sum_all(l)), 0);
  *grad = loom_to_dtype(loom_grad(x), LOOM_F64);
  return l;
}

/* Logits of large magnitude: the row's max and the log of its sum of
 * exps are kept apart (-1e30 + log 4 is -1e30: the loss had been 0, with
 * smoothing 7e13, and the gradient [1, 0, 1, 1]); and a float32 row near
 * 1e5 gets the gradient its float64 values give, to float precision (it
 * had been 4e-4 off, through the log-sum-exp rounded to float). */
START_TEST(test_large_magnitudes) {
  loom_dtype types[] = {LOOM_F32, LOOM_F64};
  for (int k = 0; k < 2; k++)
    for (int e = 0; e < 2; e++) {
      loom_tensor *g;
      double tol = types[k] == LOOM_F32 ? 1e-6 : 1e-15;
      double eps = e ? 0.2 : 0;
      loom_tensor *l = row_loss(
          types[k], (double[]){-1e30, -1e30, -1e30, -1e30}, 4, 1, eps, &g);
      ck_assert_double_eq_tol(loom_item(l), log(4), tol);
      /* softmax - eps / C - (1 - eps) [j == target] */
      for (int64_t j = 0; j < 4; j++)
        ck_assert_double_eq_tol(loom_get(g, (int64_t[]){0, j}),
                                0.25 - eps / 4 - (j == 1) * (1 - eps), tol);
    }
  loom_tensor *g;
  double big[] = {1e308, 1e308, -1e308, 0};
  ck_assert_double_eq_tol(loom_item(row_loss(LOOM_F64, big, 4, 1, 0, &g)),
                          log(2), 1e-15);
  ck_assert_double_eq_tol(loom_get(g, (int64_t[]){0, 1}), -0.5, 1e-15);
  /* smoothing averages the -inf of x - max for the third class in */
  double l = loom_item(row_loss(LOOM_F64, big, 4, 1, 0.1, &g));
  ck_assert(isinf(l) && l > 0);

  double near[] = {100000, 100001, 99998, 100003, 99999.5};
  loom_tensor *g32, *g64;
  double l32 = loom_item(row_loss(LOOM_F32, near, 5, 2, 0.1, &g32));
  double l64 = loom_item(row_loss(LOOM_F64, near, 5, 2, 0.1, &g64));
  ck_assert_double_eq_tol(l32, l64, 1e-6 * l64);
  for (int64_t j = 0; j < 5; j++) {
    double a = loom_get(g32, (int64_t[]){0, j}),
           b = loom_get(g64, (int64_t[]){0, j});
    ck_assert_msg(fabs(a - b) <= 1e-6 * fabs(b) + 1e-9,
                  "class %lld: %.9g, float64 %.9g", (long long)j, a, b);
  }
}
END_TEST

/* A mean with no weight to average over (every target ignored, or kept
 * ones of class weight 0) is NaN; an ignored target's logits get gradient
 * 0, a kept one's NaN (-0 / 0), as torch 1.13 gives them. 'n' marks NaN. */
static void expect_mean_grad(int way, const int64_t *targets, bool weighted,
                             double eps, const char *want) {
  loom_scope *s = loom_scope_begin();
  double v[] = {0.5, -1, 2, 1.5, 0.25, -0.75, -2, 1, 0};
  loom_tensor *x = loom_set_requires_grad(
      loom_from_array(LOOM_F64, v, LOOM_SHAPE(3, 3)), true);
  loom_cross_entropy_opts o = loom_cross_entropy_defaults();
  o.ignore_index = 1;
  o.label_smoothing = eps;
  o.weight = weighted ? loom_from_array(LOOM_F64, (double[]){0, 2, 1.5},
                                        LOOM_SHAPE(3))
                      : NULL;
  loom_tensor *t = loom_from_array(LOOM_I64, targets, LOOM_SHAPE(3));
  loom_tensor *l =
      way == 0   ? loom_cross_entropy(x, t, &o)
      : way == 1 ? loom_cross_entropy(loom_unsqueeze(x, 2),
                                      loom_unsqueeze(t, 1), &o)
                 : loom_nll_loss(x, t, &o);
  ck_assert_loom(l);
  ck_assert(isnan(loom_item(l)));
  ck_assert_int_eq(loom_backward(l), 0);
  const double *g = loom_data_f64(loom_contiguous(loom_grad(x)));
  for (int i = 0; i < 9; i++)
    ck_assert_msg(want[i] == 'n' ? isnan(g[i]) : g[i] == 0,
                  "way %d weighted %d eps %g: gradient %d is %g", way,
                  weighted, eps, i, g[i]);
  loom_scope_end(s);
}

START_TEST(test_mean_over_no_weight) {
  const int64_t ignored[] = {1, 1, 1}, zero_weight[] = {0, 0, 1};
  for (int way = 0; way < 3; way++) {
    expect_mean_grad(way, ignored, false, 0, "000000000");
    expect_mean_grad(way, ignored, true, 0, "000000000");
  }
  expect_mean_grad(0, ignored, true, 0.1, "000000000");
  expect_mean_grad(1, ignored, false, 0.1, "000000000");
  expect_mean_grad(0, zero_weight, true, 0, "nnnnnn000");
  expect_mean_grad(2, zero_weight, true, 0, "n00n00000");
}
END_TEST

/* loom_cross_entropy: the fused path (2-D logits) equals the composed one
 * ((N, C, 1) logits, the composition in nn/loss.c) for every reduction,
 * forward and backward. */
START_TEST(test_cross_entropy_paths) {
  const loom_reduction rs[] = {LOOM_MEAN, LOOM_SUM, LOOM_NONE};
  for (int r = 0; r < 3; r++)
    for (int e = 0; e < 2; e++) {
      loom_manual_seed(6);
      loom_tensor *x0 = loom_randn(NULL, LOOM_F64, 0, 2, LOOM_SHAPE(9, 11));
      loom_tensor *t = targets(9, 11, 3); /* ignore_index is a class */
      loom_cross_entropy_opts o = {.reduction = rs[r],
                                   .ignore_index = 3,
                                   .label_smoothing = e ? 0.25 : 0};
      loom_tensor *leaf[2], *loss[2];
      for (int p = 0; p < 2; p++) {
        leaf[p] = loom_set_requires_grad(loom_clone(x0), true);
        loss[p] = p ? loom_cross_entropy(loom_unsqueeze(leaf[p], -1),
                                         loom_unsqueeze(t, -1), &o)
                    : loom_cross_entropy(leaf[p], t, &o);
        ck_assert_loom(loss[p]);
        if (p && rs[r] == LOOM_NONE)
          loss[p] = loom_squeeze(loss[p], -1);
        ck_assert_int_eq(
            loom_backward(loom_sum_all(loom_mul_scalar(loss[p], 1.5))), 0);
      }
      ck_assert(loom_allclose(loss[0], loss[1], 1e-13, 1e-13));
      ck_assert(
          loom_allclose(loom_grad(leaf[0]), loom_grad(leaf[1]), 1e-13, 1e-13));
    }
  /* every target ignored: the mean is 0/0, as PyTorch's */
  loom_tensor *x = loom_zeros(LOOM_F32, LOOM_SHAPE(2, 4));
  loom_tensor *t = loom_full(LOOM_I64, -100, LOOM_SHAPE(2));
  ck_assert(isnan(loom_item(loom_cross_entropy(x, t, NULL))));
}
END_TEST

/* Logits made inside a scope that ends before backward are the node's
 * alone: backward writes their gradient into their memory. The gradients
 * equal the composition's; with retain_graph nothing is overwritten, so a
 * second backward adds the same gradient again; (T, B, C) logits with
 * (T, B) targets are rows too. */
START_TEST(test_gradient_in_place) {
  loom_manual_seed(12);
  loom_tensor *w0 = loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(3, 4, 9));
  loom_tensor *t = loom_reshape(targets(12, 9, -100), LOOM_SHAPE(3, 4));
  loom_tensor *grads[3];
  for (int k = 0; k < 3; k++) { /* fused twice (in place, retained), composed */
    loom_tensor *w = loom_set_requires_grad(loom_clone(w0), true);
    loom_scope *s = loom_scope_begin();
    loom_tensor *x = loom_mul_scalar(w, 1.5);
    loom_tensor *rows =
        k < 2
            ? loom_fused_cross_entropy(x, t, -100, 0.1)
            : loom_reshape(composed(loom_reshape(x, LOOM_SHAPE(12, 9)),
                                    loom_reshape(t, LOOM_SHAPE(12)), -100, 0.1),
                           LOOM_SHAPE(3, 4));
    ck_assert_loom(rows);
    ck_assert(loom_same_shape(rows, t));
    loom_tensor *loss = loom_keep(loom_sum_all(loom_square(rows)));
    loom_scope_end(s);
    if (k == 1) {
      loom_backward_opts o = {.retain_graph = true};
      ck_assert_msg(loom_backward_with(loss, loom_ones_like(loss), &o) == 0,
                    "%s", loom_last_error());
      loom_tensor *once = loom_clone(loom_grad(w));
      ck_assert_int_eq(loom_backward(loss), 0);
      ck_assert(
          loom_allclose(loom_grad(w), loom_mul_scalar(once, 2), 1e-13, 1e-13));
      grads[k] = once;
    } else {
      ck_assert_int_eq(loom_backward(loss), 0);
      grads[k] = loom_grad(w);
    }
    loom_release(loss);
  }
  ck_assert(loom_allclose(grads[0], grads[2], 1e-13, 1e-13));
  ck_assert(loom_allclose(grads[1], grads[2], 1e-13, 1e-13));
}
END_TEST

/* The gradient written into the logits' memory is handed on as a tensor
 * of its own, as the composition's is: reaching an input of
 * loom_autograd_grad unchanged (through an add), it neither requires
 * grad nor names a node (the logits' tensor does both). */
START_TEST(test_in_place_gradient_is_plain) {
  loom_manual_seed(3);
  loom_tensor *x0 = loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(4, 5));
  loom_tensor *t = targets(4, 5, -100);
  loom_tensor *g[2];
  for (int k = 0; k < 2; k++) { /* fused (in place), composed */
    loom_tensor *a = loom_set_requires_grad(loom_clone(x0), true);
    loom_tensor *b =
        loom_set_requires_grad(loom_zeros(LOOM_F64, LOOM_SHAPE(4, 5)), true);
    loom_scope *s = loom_scope_begin();
    loom_tensor *x = loom_add(a, b);
    loom_tensor *loss =
        loom_keep(loom_sum_all(k ? composed(x, t, -100, 0.1)
                                 : loom_fused_cross_entropy(x, t, -100, 0.1)));
    loom_scope_end(s);
    ck_assert_int_eq(loom_autograd_grad(&loss, 1, &a, 1, NULL, &g[k], NULL), 0);
    ck_assert_msg(!loom_requires_grad(g[k]), "%s gradient requires grad",
                  k ? "composed" : "fused");
    ck_assert(loom_is_leaf(g[k]));
    loom_release(loss);
  }
  ck_assert(loom_allclose(g[0], g[1], 1e-13, 1e-13));
}
END_TEST

/* A custom function whose backward fails. */
static int pass_forward(loom_function_ctx *c, loom_tensor *const *in, int n,
                        loom_tensor **out) {
  (void)c;
  (void)n;
  out[0] = loom_clone(in[0]);
  return 0;
}

static int failing_backward(loom_function_ctx *c, loom_tensor *const *gout,
                            loom_tensor **gin) {
  (void)c;
  (void)gout;
  (void)gin;
  loom_set_error(LOOM_ERR_STATE, "failing_backward fails");
  return -1;
}

/* A pass that fails after the gradient was written into the logits'
 * memory, before the logits' own node ran: the gradient waiting in that
 * node's slot is dropped once (it was the logits' tensor itself, whose
 * death freed the node while the pass was dropping its slot: a double
 * free under ASan), and the error is the failing node's. */
START_TEST(test_in_place_gradient_then_error) {
  static const loom_function failing = {"failing", 1, 1, pass_forward,
                                        failing_backward};
  loom_tensor *a = loom_set_requires_grad(
      loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(4, 5)), true);
  loom_tensor *c =
      loom_set_requires_grad(loom_ones(LOOM_F64, 1, (int64_t[]){3}), true);
  loom_tensor *t = targets(4, 5, -100);
  loom_scope *s = loom_scope_begin();
  loom_tensor *x = loom_mul_scalar(a, 2); /* its node runs last */
  loom_tensor *q = NULL;
  ck_assert_int_eq(loom_function_apply(&failing, &c, &q, NULL), 0);
  loom_tensor *loss = loom_keep(loom_add(
      loom_sum_all(loom_fused_cross_entropy(x, t, -100, 0)), loom_sum_all(q)));
  loom_scope_end(s);
  ck_assert_int_eq(loom_backward(loss), -1);
  ck_assert_str_eq(loom_last_error(), "failing_backward fails");
  loom_clear_error();
  loom_release(loss);
}
END_TEST

START_TEST(test_threads_bitwise) {
  result r[2];
  for (int n = 0; n < 2; n++) {
    loom_set_num_threads(n + 1);
    loom_manual_seed(8);
    loom_tensor *x = loom_randn(NULL, LOOM_F32, 0, 4, LOOM_SHAPE(300, 1000));
    r[n] = run(true, x, targets(300, 1000, -100), -100, 0.1, false);
  }
  loom_set_num_threads(0);
  ck_assert(loom_equal(r[0].loss, r[1].loss));
  ck_assert(loom_equal(r[0].grad, r[1].grad));
}
END_TEST

START_TEST(test_errors) {
  loom_tensor *x = loom_zeros(LOOM_F32, LOOM_SHAPE(2, 3));
  loom_tensor *t = loom_from_array(LOOM_I64, (int64_t[]){0, 3}, LOOM_SHAPE(2));
  ck_assert_ptr_null(loom_fused_cross_entropy(x, t, -100, 0));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_INDEX);
  loom_clear_error();
  ck_assert_ptr_null(loom_fused_cross_entropy(
      x, loom_zeros(LOOM_I64, LOOM_SHAPE(3)), -100, 0));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_SHAPE);
  loom_clear_error();
  ck_assert_ptr_null(loom_fused_cross_entropy(
      x, loom_zeros(LOOM_I64, LOOM_SHAPE(2, 1)), -100, 0));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_SHAPE);
  loom_clear_error();
  ck_assert_ptr_null(
      loom_fused_cross_entropy(loom_zeros(LOOM_F32, LOOM_SHAPE(2, 0)),
                               loom_zeros(LOOM_I64, LOOM_SHAPE(2)), -100, 0));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_SHAPE);
  loom_clear_error();
  ck_assert_ptr_null(loom_fused_cross_entropy(
      x, loom_zeros(LOOM_I32, LOOM_SHAPE(2)), -100, 0));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_DTYPE);
  loom_clear_error();
  ck_assert_ptr_null(loom_fused_cross_entropy(
      loom_zeros(LOOM_I64, LOOM_SHAPE(2, 3)), t, -100, 0));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_DTYPE);
  loom_clear_error();
  ck_assert_ptr_null(loom_fused_cross_entropy(x, t, 3, 1.5));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
  loom_clear_error();
  ck_assert_ptr_null(loom_fused_cross_entropy(NULL, t, 3, 0));
  loom_clear_error();
  /* an ignored index outside the classes is fine */
  ck_assert_loom(loom_fused_cross_entropy(x, t, 3, 0));
}
END_TEST

int main(void) {
  Suite *s = suite_create("cross_entropy");
  TCase *tc = tcase_create("fused");
  tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_fused_equals_composition);
  tcase_add_test(tc, test_extremes);
  tcase_add_test(tc, test_large_magnitudes);
  tcase_add_test(tc, test_mean_over_no_weight);
  tcase_add_test(tc, test_cross_entropy_paths);
  tcase_add_test(tc, test_gradient_in_place);
  tcase_add_test(tc, test_in_place_gradient_is_plain);
  tcase_add_test(tc, test_in_place_gradient_then_error);
  tcase_add_test(tc, test_threads_bitwise);
  tcase_add_test(tc, test_errors);
  suite_add_tcase(s, tc);
  return loom_run_suite(s);
}
