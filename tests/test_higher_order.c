/* Higher-order gradients: loom_autograd_grad (what it computes, what it
 * leaves alone, its errors), backward with create_graph, the refusal of
 * a first-order-only op's gradient, and gradgradcheck's ability to fail. */
#include "../autograd/node.h"
#include "check_util.h"

#include <string.h>

static loom_tensor *vec(int64_t n, const double *v) {
  loom_tensor *t = loom_from_array(LOOM_F64, v, 1, &n);
  return loom_set_requires_grad(t, true);
}

static double at(const loom_tensor *t, int64_t i) {
  double v[16];
  loom_copy_to_array(t, LOOM_F64, v, loom_numel(t));
  return v[i];
}

/* f(x) = sum x^3: df/dx = 3x^2; d/dx sum(df/dx * w) = 6 x w. */
START_TEST(test_grad_and_second_derivative) {
  loom_tensor *x = vec(3, (double[]){1, -2, 0.5});
  loom_tensor *f = loom_sum_all(loom_mul(loom_square(x), x));
  loom_tensor *g;
  loom_grad_opts o = {.create_graph = true};
  ck_assert_int_eq(loom_autograd_grad(&f, 1, &x, 1, NULL, &g, &o), 0);
  ck_assert_ptr_null(loom_grad(x)); /* .grad is never written */
  ck_assert(loom_requires_grad(g));
  for (int i = 0; i < 3; i++)
    ck_assert_close(at(g, i), 3 * at(x, i) * at(x, i), 1e-12);
  loom_tensor *w =
      loom_from_array(LOOM_F64, (double[]){1, 2, 3}, LOOM_SHAPE(3));
  loom_tensor *h;
  loom_tensor *gw = loom_sum_all(loom_mul(g, w));
  ck_assert_int_eq(loom_autograd_grad(&gw, 1, &x, 1, NULL, &h, NULL), 0);
  for (int i = 0; i < 3; i++)
    ck_assert_close(at(h, i), 6 * at(x, i) * (i + 1), 1e-12);
  ck_assert(!loom_requires_grad(h)); /* no create_graph the second time */
  /* Without retain_graph the second pass freed what it used. */
  ck_assert_int_eq(loom_autograd_grad(&gw, 1, &x, 1, NULL, &h, NULL), -1);
  ck_assert_ptr_nonnull(strstr(loom_last_error(), "freed"));
  ck_assert_ptr_null(h);
  loom_clear_error();
}
END_TEST

/* Inputs that are results of ops: each gets the total derivative, and
 * the graph between them runs only where needed. */
START_TEST(test_grad_of_intermediates) {
  loom_tensor *x = vec(2, (double[]){1.5, -1});
  loom_tensor *y = loom_mul_scalar(x, 2);
  loom_tensor *z = loom_sum_all(loom_square(y)); /* 4 x^2 */
  loom_tensor *in[2] = {y, x}, *g[2];
  loom_grad_opts o = {.retain_graph = true};
  ck_assert_int_eq(loom_autograd_grad(&z, 1, in, 2, NULL, g, &o), 0);
  for (int i = 0; i < 2; i++) {
    ck_assert_close(at(g[0], i), 2 * at(y, i), 1e-12);
    ck_assert_close(at(g[1], i), 8 * at(x, i), 1e-12);
  }
  /* The output itself as an input: its seed. */
  loom_tensor *seed = loom_full(LOOM_F64, 2.5, 0, NULL);
  ck_assert_int_eq(loom_autograd_grad(&z, 1, &z, 1, &seed, g, &o), 0);
  ck_assert_close(at(g[0], 0), 2.5, 0);
}
END_TEST

START_TEST(test_grad_errors) {
  loom_tensor *x = vec(2, (double[]){1, 2});
  loom_tensor *u = vec(2, (double[]){3, 4}); /* not used by y */
  loom_tensor *c = loom_ones(LOOM_F64, LOOM_SHAPE(2));
  loom_tensor *y = loom_mul(x, x);
  loom_tensor *in[2] = {x, u}, *g[2] = {c, c};
  loom_tensor *ones = loom_ones(LOOM_F64, LOOM_SHAPE(2));
  loom_grad_opts keep = {.retain_graph = true};
  /* A 2-element output needs its grad_output. */
  ck_assert_int_eq(loom_autograd_grad(&y, 1, &x, 1, NULL, g, &keep), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_SHAPE);
  ck_assert_ptr_null(g[0]);
  loom_clear_error();
  ck_assert_int_eq(loom_autograd_grad(&y, 1, in, 2, &ones, g, &keep), -1);
  ck_assert_ptr_nonnull(strstr(loom_last_error(), "input 1"));
  ck_assert_ptr_nonnull(strstr(loom_last_error(), "allow_unused"));
  loom_clear_error();
  loom_grad_opts unused = {.retain_graph = true, .allow_unused = true};
  ck_assert_int_eq(loom_autograd_grad(&y, 1, in, 2, &ones, g, &unused), 0);
  ck_assert_ptr_null(g[1]);
  ck_assert_close(at(g[0], 1), 4, 1e-12);
  loom_tensor *notreq[1] = {c};
  ck_assert_int_eq(loom_autograd_grad(&y, 1, notreq, 1, &ones, g, &keep), -1);
  ck_assert_ptr_nonnull(strstr(loom_last_error(), "does not require grad"));
  loom_clear_error();
  loom_tensor *wrong = loom_ones(LOOM_F64, LOOM_SHAPE(3));
  ck_assert_int_eq(loom_autograd_grad(&y, 1, &x, 1, &wrong, g, &keep), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_SHAPE);
  loom_clear_error();
  ck_assert_int_eq(loom_autograd_grad(NULL, 1, &x, 1, NULL, g, NULL), -1);
  loom_clear_error();
}
END_TEST

/* backward with create_graph: .grad joins the graph, so a penalty on it
 * can be backpropagated: d/dx sum((3x^2)^2) = 36 x^3. */
START_TEST(test_backward_create_graph) {
  loom_tensor *x = vec(2, (double[]){0.5, -1.5});
  loom_tensor *f = loom_sum_all(loom_mul(loom_square(x), x));
  loom_tensor *one = loom_ones(LOOM_F64, 0, NULL);
  loom_backward_opts bo = {.create_graph = true};
  ck_assert_int_eq(loom_backward_with(f, one, &bo), 0);
  loom_tensor *gx = loom_keep(loom_grad(x));
  ck_assert(loom_requires_grad(gx));
  loom_zero_grad(x);
  ck_assert_int_eq(loom_backward(loom_sum_all(loom_square(gx))), 0);
  for (int i = 0; i < 2; i++)
    ck_assert_close(at(loom_grad(x), i), 36 * pow(at(x, i), 3), 1e-12);
  loom_release(gx);
  loom_zero_grad(x);
}
END_TEST

/* An op declared first-order only (LOOM__OP): its gradient is given, and
 * differentiating it fails naming the op. */
LOOM__OP(first_order_cube, first_order_cube_backward);
static void first_order_cube_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *x = loom__saved(n, 0);
  loom__accumulate(
      n, 0, loom_mul(g[0], loom_mul_scalar(loom_square(loom_detach(x)), 3)));
}
static loom_tensor *first_order_cube(const loom_tensor *x) {
  loom_no_grad_begin();
  loom_tensor *y = loom_mul(loom_square(x), x);
  loom_no_grad_end();
  loom__save(loom__record(&loom__op_first_order_cube, y, 1, &x), x);
  return y;
}

START_TEST(test_first_order_op_refuses) {
  loom_tensor *x = vec(2, (double[]){1, 2});
  loom_tensor *f = loom_sum_all(first_order_cube(x)), *g;
  loom_grad_opts o = {.create_graph = true};
  ck_assert_int_eq(loom_autograd_grad(&f, 1, &x, 1, NULL, &g, &o), 0);
  ck_assert_close(at(g, 1), 12, 1e-12);
  ck_assert_int_eq(loom_backward(loom_sum_all(g)), -1);
  ck_assert_ptr_nonnull(strstr(loom_last_error(), "first_order_cube"));
  ck_assert_ptr_nonnull(strstr(loom_last_error(), "first-order"));
  loom_clear_error();
}
END_TEST

/* gradgradcheck fails on a backward that is right to first order but
 * treats its saved input as a constant (so its own gradient is wrong). */
static int cube_fwd(loom_function_ctx *c, loom_tensor *const *in, int n,
                    loom_tensor **out) {
  (void)n;
  loom_function_save(c, in[0]);
  out[0] = loom_mul(loom_square(in[0]), in[0]);
  return 0;
}
static int cube_bwd_detached(loom_function_ctx *c, loom_tensor *const *g,
                             loom_tensor **gin) {
  const loom_tensor *x = loom_detach(loom_function_saved(c, 0));
  gin[0] = loom_mul(g[0], loom_mul_scalar(loom_square(x), 3));
  return 0;
}
static int cube_bwd(loom_function_ctx *c, loom_tensor *const *g,
                    loom_tensor **gin) {
  const loom_tensor *x = loom_function_saved(c, 0);
  gin[0] = loom_mul(g[0], loom_mul_scalar(loom_square(x), 3));
  return 0;
}
static const loom_function cube_wrong = {"cube", 1, 1, cube_fwd,
                                         cube_bwd_detached};
static const loom_function cube_right = {"cube", 1, 1, cube_fwd, cube_bwd};
static int apply(loom_tensor *const *in, int n, loom_tensor **out, int max,
                 void *ctx) {
  (void)n, (void)max;
  return loom_function_apply(ctx, in, out, NULL) < 0 ? -1 : 1;
}

START_TEST(test_gradgradcheck_can_fail) {
  loom_tensor *x = vec(3, (double[]){0.3, -1.2, 2});
  loom_gradcheck_result r;
  void *wrong = (void *)&cube_wrong, *right = (void *)&cube_right;
  ck_assert_int_eq(loom_gradcheck(apply, wrong, &x, 1, NULL, &r), 1);
  ck_assert_int_eq(loom_gradgradcheck(apply, wrong, &x, 1, NULL, &r), 0);
  ck_assert_int_eq(r.input, 0); /* x, not the v after it */
  ck_assert_ptr_nonnull(strstr(r.message, "FAILED"));
  ck_assert_int_eq(loom_gradgradcheck(apply, right, &x, 1, NULL, &r), 1);
  ck_assert_ptr_null(loom_grad(x));
}
END_TEST

int main(void) {
  Suite *s = suite_create("higher_order");
  TCase *tc = tcase_create("grad");
  tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
  tcase_add_test(tc, test_grad_and_second_derivative);
  tcase_add_test(tc, test_grad_of_intermediates);
  tcase_add_test(tc, test_grad_errors);
  tcase_add_test(tc, test_backward_create_graph);
  tcase_add_test(tc, test_first_order_op_refuses);
  tcase_add_test(tc, test_gradgradcheck_can_fail);
  suite_add_tcase(s, tc);
  return loom_run_suite(s);
}
