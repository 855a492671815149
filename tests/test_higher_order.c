/* Higher-order gradients: loom_autograd_grad (what it computes, what it
 * leaves alone, its errors), backward with create_graph, the refusal of
 * a first-order-only op's gradient, gradgradcheck's ability to fail, and
 * PyTorch's values for gradient penalties (an MLP, an LSTM cell, the
 * fused LSTM layer, batch and layer norm, a small CNN), prod's second
 * derivatives through zeros and a Hessian-vector product
 * (tests/data/higher_order.safetensors, scripts/gen_higher_order_reference.py).
 */
#include "../autograd/node.h"
#include "check_util.h"
#include "parity_util.h"

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

/* Custom functions that save their outputs, as torch's save_for_backward
 * of an output: a backward that records its graph reads the output
 * itself, so second derivatives see its dependence on the input (a saved
 * output had been a constant there: d/dx of exp's backward lost e^x).
 * Output 1 of two is saved here, besides the input. */
static int two_fwd(loom_function_ctx *c, loom_tensor *const *in, int n,
                   loom_tensor **out) {
  (void)n;
  out[0] = loom_square(in[0]);
  out[1] = loom_exp(in[0]);
  loom_function_save(c, in[0]);
  loom_function_save(c, out[1]);
  return 0;
}
static int two_bwd(loom_function_ctx *c, loom_tensor *const *g,
                   loom_tensor **gin) {
  const loom_tensor *x = loom_function_saved(c, 0);
  const loom_tensor *e = loom_function_saved(c, 1);
  gin[0] = loom_add(loom_mul(g[0], loom_mul_scalar(x, 2)), loom_mul(g[1], e));
  return 0;
}
static const loom_function two_outputs = {"square_exp", 1, 2, two_fwd, two_bwd};
static int apply_two(loom_tensor *const *in, int n, loom_tensor **out, int max,
                     void *ctx) {
  (void)n, (void)max, (void)ctx;
  return loom_function_apply(&two_outputs, in, out, NULL) < 0 ? -1 : 2;
}

START_TEST(test_custom_function_saved_output_second_order) {
  loom_tensor *x = vec(3, (double[]){0.5, 1, -1});
  loom_gradcheck_result r;
  ck_assert_msg(loom_gradgradcheck(apply_two, NULL, &x, 1, NULL, &r) == 1, "%s",
                r.message);
  /* d/dx of sum(d/dx sum(exp x)) = e^x, through the saved output alone */
  loom_tensor *y[2];
  ck_assert_int_eq(loom_function_apply(&two_outputs, &x, y, NULL), 0);
  loom_tensor *s = loom_sum_all(y[1]), *g, *h;
  loom_grad_opts create = {.create_graph = true};
  ck_assert_int_eq(loom_autograd_grad(&s, 1, &x, 1, NULL, &g, &create), 0);
  loom_tensor *s2 = loom_sum_all(g);
  ck_assert_int_eq(loom_autograd_grad(&s2, 1, &x, 1, NULL, &h, NULL), 0);
  ck_assert(loom_equal(h, loom_exp(loom_detach(x))));
}
END_TEST

/* A composed op (its double backward, and checkpointing's backward)
 * given the same tensor in two input slots: the inner pass captures the
 * gradient once, and the node hands it to the slots (a tensor captured in
 * every slot it filled had its gradient counted twice, or three times).
 * layer_norm(a, a, a) against torch 1.13 (float64); a checkpointed a * a
 * gives 2a. */
static int product_of_inputs(loom_tensor *const *in, int n, loom_tensor **out,
                             int max, void *ctx) {
  (void)n, (void)max, (void)ctx;
  out[0] = loom_mul(in[0], in[1]);
  return 1;
}

START_TEST(test_composed_op_with_repeated_input) {
  loom_tensor *a = vec(3, (double[]){1, 2, 4});
  loom_tensor *r =
      loom_from_array(LOOM_F64, (double[]){0.3, -1, 2}, LOOM_SHAPE(3));
  loom_tensor *y = loom_sum_all(loom_mul(loom_layer_norm(a, 1, a, a, 1e-5), r));
  loom_tensor *g, *h;
  loom_grad_opts create = {.create_graph = true};
  ck_assert_int_eq(loom_autograd_grad(&y, 1, &a, 1, NULL, &g, &create), 0);
  loom_tensor *s = loom_sum_all(loom_mul(g, g));
  ck_assert_int_eq(loom_autograd_grad(&s, 1, &a, 1, NULL, &h, NULL), 0);
  const double torch_g[] = {1.6515539081536514, -3.2411742175854297,
                            5.508772061485008};
  const double torch_h[] = {-7.4969887418483845, 35.02379437927125,
                            -15.637678415049955};
  for (int i = 0; i < 3; i++) {
    ck_assert_double_eq_tol(at(g, i), torch_g[i], 1e-12);
    ck_assert_double_eq_tol(at(h, i), torch_h[i], 1e-11);
  }
  loom_tensor *x = vec(3, (double[]){1, 2, 3}), *out[1];
  ck_assert_int_eq(loom_checkpoint(product_of_inputs, NULL,
                                   (loom_tensor *[]){x, x}, 2, out, 1, NULL),
                   0);
  ck_assert_int_eq(loom_backward(loom_sum_all(out[0])), 0);
  for (int i = 0; i < 3; i++)
    ck_assert_double_eq(at(loom_grad(x), i), 2.0 * (i + 1));
}
END_TEST

/* prod through zeros in the input itself (test_gradcheck's zeros come
 * from a mask, which hides the derivatives at them): row 0 holds two
 * zeros, row 1 one. d/dx_j sum_i dP/dx_i = sum over i != j of the product
 * of the others. */
static int row_prod(loom_tensor *const *in, int n, loom_tensor **out, int max,
                    void *ctx) {
  (void)n, (void)max, (void)ctx;
  out[0] = loom_prod(in[0], (int[]){1}, 1, false);
  return out[0] ? 1 : -1;
}

START_TEST(test_prod_second_derivative_with_zeros) {
  loom_tensor *x = loom_set_requires_grad(
      loom_from_array(LOOM_F64, (double[]){0, 2, 0, 3, 1.5, 0, -2, 0.5},
                      LOOM_SHAPE(2, 4)),
      true);
  loom_tensor *p, *g, *h;
  ck_assert_int_eq(row_prod(&x, 1, &p, 1, NULL), 1);
  loom_tensor *ones = loom_ones(LOOM_F64, LOOM_SHAPE(2));
  loom_grad_opts o = {.create_graph = true};
  ck_assert_int_eq(loom_autograd_grad(&p, 1, &x, 1, &ones, &g, &o), 0);
  double first[] = {0, 0, 0, 0, 0, -1.5, 0, 0};
  for (int i = 0; i < 8; i++)
    ck_assert_close(at(g, i), first[i], 1e-15);
  loom_tensor *sum = loom_sum_all(g);
  ck_assert_int_eq(loom_autograd_grad(&sum, 1, &x, 1, NULL, &h, NULL), 0);
  double second[] = {6, 0, 6, 0, -1, -3.25, 0.75, -3};
  for (int i = 0; i < 8; i++)
    ck_assert_close(at(h, i), second[i], 1e-15);
  loom_gradcheck_result r;
  ck_assert_int_eq(loom_gradgradcheck(row_prod, NULL, &x, 1, NULL, &r), 1);
  /* The product of all of (0, 2, 0, 3), two zeros (torch 1.13 gives this
   * one a constant zero gradient): the only non-zero second derivative
   * is d2/dx0 dx2 = 2 * 3. */
  loom_tensor *y = loom_set_requires_grad(
      loom_from_array(LOOM_F64, (double[]){0, 2, 0, 3}, LOOM_SHAPE(4)), true);
  loom_tensor *all = loom_prod(y, NULL, 0, false);
  ck_assert_int_eq(loom_autograd_grad(&all, 1, &y, 1, NULL, &g, &o), 0);
  sum = loom_sum_all(g);
  ck_assert_int_eq(loom_autograd_grad(&sum, 1, &y, 1, NULL, &h, NULL), 0);
  double whole[] = {6, 0, 6, 0};
  for (int i = 0; i < 4; i++) {
    ck_assert_close(at(g, i), 0, 0);
    ck_assert_close(at(h, i), whole[i], 1e-15);
  }
}
END_TEST

/* ---- against PyTorch (float64, 1e-10) ---- */

PARITY_REFERENCE(ref, "higher_order.safetensors")

static loom_tensor *param(const char *prefix, const char *name) {
  return parity_leaf(parity_ref(ref, prefix, name));
}

/* d penalty / d p against the reference (zeros where loom has none, as
 * torch has None). */
static void check_grad(parity_stat *st, const char *prefix, const char *name,
                       loom_tensor *p) {
  char key[64];
  snprintf(key, sizeof key, "grad.%s", name);
  loom_tensor *want = parity_ref(ref, prefix, key);
  loom_tensor *got = loom_grad(p) ? loom_grad(p) : loom_zeros_like(want);
  parity_check(st, got, want, 1e-10, 1e-12, name);
}

/* penalty = ||df/dx||^2 for f(x) = sum(mlp(x)), backpropagated to every
 * parameter and to x. */
START_TEST(test_mlp_gradient_penalty) {
  const char *names[] = {"x", "w1", "b1", "w2", "b2"};
  loom_tensor *p[5];
  for (int i = 0; i < 5; i++)
    p[i] = param("mlp.", names[i]);
  loom_tensor *h = loom_tanh(loom_linear(p[0], p[1], p[2]));
  loom_tensor *f = loom_sum_all(loom_linear(h, p[3], p[4])), *gx;
  loom_grad_opts o = {.create_graph = true};
  ck_assert_int_eq(loom_autograd_grad(&f, 1, &p[0], 1, NULL, &gx, &o), 0);
  loom_tensor *penalty = loom_sum_all(loom_mul(gx, gx));
  ck_assert_int_eq(loom_backward(penalty), 0);
  parity_stat st = {.group = "mlp gradient penalty"};
  parity_check(&st, penalty, parity_ref(ref, "mlp.", "penalty"), 1e-10, 0,
               "penalty");
  for (int i = 0; i < 5; i++) {
    check_grad(&st, "mlp.", names[i], p[i]);
    loom_zero_grad(p[i]);
  }
  parity_report(&st);
}
END_TEST

/* One torch.nn.LSTMCell step written with ops (gates i, f, g, o);
 * penalty = ||df/dx||^2 for f = sum(h' r) + sum(c' s), backpropagated to
 * the cell's parameters. */
START_TEST(test_lstm_cell_gradient_penalty) {
  const char *names[] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
  loom_tensor *w[4];
  for (int i = 0; i < 4; i++)
    w[i] = param("lstm.", names[i]);
  loom_tensor *x = param("lstm.", "x");
  loom_tensor *h = parity_ref(ref, "lstm.", "h"),
              *c = parity_ref(ref, "lstm.", "c");
  loom_tensor *gates =
      loom_add(loom_linear(x, w[0], w[2]), loom_linear(h, w[1], w[3]));
  loom_tensor *part[4];
  ck_assert_int_eq(loom_chunk(gates, 4, 1, part, 4), 4);
  loom_tensor *c1 =
      loom_add(loom_mul(loom_sigmoid(part[1]), c),
               loom_mul(loom_sigmoid(part[0]), loom_tanh(part[2])));
  loom_tensor *h1 = loom_mul(loom_sigmoid(part[3]), loom_tanh(c1));
  loom_tensor *f =
      loom_add(loom_sum_all(loom_mul(h1, parity_ref(ref, "lstm.", "r"))),
               loom_sum_all(loom_mul(c1, parity_ref(ref, "lstm.", "s"))));
  loom_tensor *gx;
  loom_grad_opts o = {.create_graph = true};
  ck_assert_int_eq(loom_autograd_grad(&f, 1, &x, 1, NULL, &gx, &o), 0);
  loom_tensor *penalty = loom_sum_all(loom_mul(gx, gx));
  ck_assert_int_eq(loom_backward(penalty), 0);
  parity_stat st = {.group = "LSTM cell gradient penalty"};
  parity_check(&st, penalty, parity_ref(ref, "lstm.", "penalty"), 1e-10, 0,
               "penalty");
  for (int i = 0; i < 4; i++) {
    check_grad(&st, "lstm.", names[i], w[i]);
    loom_zero_grad(w[i]);
  }
  loom_zero_grad(x);
  parity_report(&st);
}
END_TEST

/* penalty = ||df/dx||^2 through torch.nn.LSTM (2 layers, bidirectional,
 * variable lengths, given initial states), f = sum(out r) + sum(h_n s) +
 * sum(c_n u), backpropagated to x and every parameter: through the fused
 * layer (whose double backward is its step composition) and step by step
 * (the cells' ops). */
static void lstm_layer_penalty(bool fused) {
  loom_dtype prev = loom_set_default_dtype(LOOM_F64);
  loom_rnn *r = loom_lstm_new((loom_rnn_opts){.input_size = 3,
                                              .hidden_size = 4,
                                              .num_layers = 2,
                                              .bidirectional = true,
                                              .step_by_step = !fused});
  loom_set_default_dtype(prev);
  ck_assert_loom(r);
  loom_tensor_map *sd = parity_submap(ref, "lstm_layer.param.");
  ck_assert_msg(loom_module_load_state_dict(&r->base, sd, true) == 0, "%s",
                loom_last_error());
  loom_tensor_map_free(sd);
  const char *p = "lstm_layer.";
  loom_tensor *x = param(p, "x"), *out, *fin[2];
  loom_tensor *init[2] = {parity_ref(ref, p, "h0"), parity_ref(ref, p, "c0")};
  ck_assert_msg(loom_rnn_forward(r, x, parity_ref(ref, p, "lengths"), init,
                                 &out, fin) == 0,
                "%s", loom_last_error());
  loom_tensor *f = loom_add(
      loom_add(loom_sum_all(loom_mul(out, parity_ref(ref, p, "r"))),
               loom_sum_all(loom_mul(fin[0], parity_ref(ref, p, "s")))),
      loom_sum_all(loom_mul(fin[1], parity_ref(ref, p, "u"))));
  loom_tensor *gx;
  loom_grad_opts o = {.create_graph = true};
  ck_assert_int_eq(loom_autograd_grad(&f, 1, &x, 1, NULL, &gx, &o), 0);
  loom_tensor *penalty = loom_sum_all(loom_mul(gx, gx));
  ck_assert_msg(loom_backward(penalty) == 0, "%s", loom_last_error());
  parity_stat st = {.group = fused ? "LSTM layer gradient penalty (fused)"
                                   : "LSTM layer gradient penalty (steps)"};
  parity_check(&st, penalty, parity_ref(ref, p, "penalty"), 1e-10, 0,
               "penalty");
  check_grad(&st, p, "x", x);
  loom_tensor_map *params = loom_module_named_parameters(&r->base);
  ck_assert_int_eq(loom_tensor_map_count(params), 16);
  for (int i = 0; i < loom_tensor_map_count(params); i++)
    check_grad(&st, p, loom_tensor_map_name(params, i),
               loom_tensor_map_at(params, i));
  loom_tensor_map_free(params);
  parity_report(&st);
  loom_zero_grad(x);
  loom_rnn_free(r);
}

START_TEST(test_lstm_layer_gradient_penalty) {
  lstm_layer_penalty(true);
  lstm_layer_penalty(false);
}
END_TEST

/* penalty = ||df/dx||^2 for f = sum(layer(x) r), backpropagated to x and
 * the layer's weight and bias, against the reference group `p` (the
 * layer's state from "<p>param."). */
static void norm_penalty(const char *p, const char *what, loom_module *m,
                         loom_tensor *weight, loom_tensor *bias,
                         loom_tensor *(*forward)(loom_module *,
                                                 const loom_tensor *)) {
  char prefix[32];
  snprintf(prefix, sizeof prefix, "%sparam.", p);
  loom_tensor_map *sd = parity_submap(ref, prefix);
  ck_assert_msg(loom_module_load_state_dict(m, sd, true) == 0, "%s: %s", p,
                loom_last_error());
  loom_tensor_map_free(sd);
  loom_tensor *x = param(p, "x"), *gx;
  loom_tensor *f =
      loom_sum_all(loom_mul(forward(m, x), parity_ref(ref, p, "r")));
  loom_grad_opts o = {.create_graph = true};
  ck_assert_int_eq(loom_autograd_grad(&f, 1, &x, 1, NULL, &gx, &o), 0);
  loom_tensor *penalty = loom_sum_all(loom_mul(gx, gx));
  ck_assert_msg(loom_backward(penalty) == 0, "%s", loom_last_error());
  parity_stat st = {.group = what};
  parity_check(&st, penalty, parity_ref(ref, p, "penalty"), 1e-10, 0,
               "penalty");
  check_grad(&st, p, "x", x);
  check_grad(&st, p, "weight", weight);
  check_grad(&st, p, "bias", bias);
  parity_report(&st);
  loom_zero_grad(x);
}

static loom_tensor *bn_forward(loom_module *m, const loom_tensor *x) {
  return loom_batch_norm_layer_forward((loom_batch_norm_layer *)m, x);
}
static loom_tensor *ln_forward(loom_module *m, const loom_tensor *x) {
  return loom_layer_norm_layer_forward((loom_layer_norm_layer *)m, x);
}

/* Batch norm in training and in evaluation: the penalty's gradients, and
 * the running statistics as the one forward left them (the create_graph
 * backward recomputes the batch statistics without touching them). */
START_TEST(test_norm_gradient_penalties) {
  for (int training = 1; training >= 0; training--) {
    const char *p = training ? "bn." : "bn_eval.";
    loom_dtype prev = loom_set_default_dtype(LOOM_F64);
    loom_batch_norm_layer *bn =
        loom_batch_norm_layer_new(2, 1e-5, 0.1, true, true);
    loom_set_default_dtype(prev);
    ck_assert_loom(bn);
    loom_module_train(&bn->base, training);
    norm_penalty(p,
                 training ? "batch norm gradient penalty (training)"
                          : "batch norm gradient penalty (evaluation)",
                 &bn->base, bn->weight, bn->bias, bn_forward);
    parity_stat st = {.group = training
                                   ? "batch norm running statistics (training)"
                                   : "batch norm running statistics "
                                     "(evaluation)"};
    parity_check(&st, bn->running_mean,
                 parity_ref(ref, p, "after.running_mean"), 1e-12, 0,
                 "running_mean");
    parity_check(&st, bn->running_var, parity_ref(ref, p, "after.running_var"),
                 1e-12, 0, "running_var");
    parity_report(&st);
    loom_batch_norm_layer_free(bn);
  }
  loom_dtype prev = loom_set_default_dtype(LOOM_F64);
  loom_layer_norm_layer *ln =
      loom_layer_norm_layer_new(2, (int64_t[]){3, 4}, 1e-5, true);
  loom_set_default_dtype(prev);
  ck_assert_loom(ln);
  norm_penalty("ln.", "layer norm gradient penalty", &ln->base, ln->weight,
               ln->bias, ln_forward);
  loom_layer_norm_layer_free(ln);
}
END_TEST

/* prod through zeros against torch: over dims (0, 2) with groups of two,
 * one and no zeros, and over all elements with one zero; the gradient
 * seeded with v (create_graph), then its gradient seeded with u. */
START_TEST(test_prod_with_zeros) {
  const char *groups[] = {"prod.", "prod_all."};
  for (int k = 0; k < 2; k++) {
    const char *p = groups[k];
    loom_tensor *x = param(p, "x"), *v = parity_ref(ref, p, "v"), *g, *hu;
    loom_tensor *y = k == 0 ? loom_prod(x, (int[]){0, 2}, 2, false)
                            : loom_prod(x, NULL, 0, false);
    loom_grad_opts o = {.create_graph = true};
    ck_assert_int_eq(loom_autograd_grad(&y, 1, &x, 1, &v, &g, &o), 0);
    loom_tensor *u = parity_ref(ref, p, "u");
    ck_assert_int_eq(loom_autograd_grad(&g, 1, &x, 1, &u, &hu, NULL), 0);
    parity_stat st = {.group = k == 0 ? "prod over dims with zeros"
                                      : "prod of all with a zero"};
    parity_check(&st, g, parity_ref(ref, p, "g"), 1e-10, 1e-12, "g");
    parity_check(&st, hu, parity_ref(ref, p, "hu"), 1e-10, 1e-12, "hu");
    parity_report(&st);
  }
}
END_TEST

/* penalty = ||df/dx||^2 for the small CNN of the reference script's cnn():
 * two tanh convolutions (padding; stride, asymmetric padding, dilation and
 * groups), max, average (count_include_pad=False) and adaptive average
 * pooling, backpropagated to x and every parameter. */
START_TEST(test_cnn_gradient_penalty) {
  const char *names[] = {"x", "w1", "b1", "w2", "b2"};
  loom_tensor *p[5];
  for (int i = 0; i < 5; i++)
    p[i] = param("cnn.", names[i]);
  loom_tensor *h = loom_tanh(
      loom_conv2d(p[0], p[1], p[2], (loom_conv2d_opts){.padding = {1, 1}}));
  h = loom_max_pool2d(h, (loom_pool2d_opts){.kernel = {2, 2}}, NULL);
  h = loom_tanh(loom_conv2d(h, p[3], p[4],
                            (loom_conv2d_opts){.stride = {1, 2},
                                               .padding = {2, 1},
                                               .dilation = {2, 1},
                                               .groups = 2}));
  h = loom_avg_pool2d(h, (loom_pool2d_opts){.kernel = {2, 2},
                                            .stride = {1, 1},
                                            .padding = {1, 1},
                                            .exclude_pad = true});
  loom_tensor *f = loom_sum_all(loom_mul(loom_adaptive_avg_pool2d(h, 2, 3),
                                         parity_ref(ref, "cnn.", "r")));
  loom_tensor *gx;
  loom_grad_opts o = {.create_graph = true};
  ck_assert_int_eq(loom_autograd_grad(&f, 1, &p[0], 1, NULL, &gx, &o), 0);
  loom_tensor *penalty = loom_sum_all(loom_mul(gx, gx));
  ck_assert_int_eq(loom_backward(penalty), 0);
  parity_stat st = {.group = "CNN gradient penalty"};
  parity_check(&st, penalty, parity_ref(ref, "cnn.", "penalty"), 1e-10, 0,
               "penalty");
  for (int i = 0; i < 5; i++) {
    check_grad(&st, "cnn.", names[i], p[i]);
    loom_zero_grad(p[i]);
  }
  parity_report(&st);
}
END_TEST

/* H v for f(x) = sum(softplus(w x)^2) + sum(x^3): the gradient with
 * create_graph, then its gradient seeded with v. */
START_TEST(test_hessian_vector_product) {
  loom_tensor *x = param("hvp.", "x");
  loom_tensor *w = parity_ref(ref, "hvp.", "w"),
              *v = parity_ref(ref, "hvp.", "v");
  loom_tensor *f = loom_add(
      loom_sum_all(loom_square(loom_softplus(loom_matmul(w, x), 1, 20))),
      loom_sum_all(loom_pow_scalar(x, 3)));
  loom_tensor *g, *hv;
  loom_grad_opts o = {.create_graph = true};
  ck_assert_int_eq(loom_autograd_grad(&f, 1, &x, 1, NULL, &g, &o), 0);
  ck_assert_int_eq(loom_autograd_grad(&g, 1, &x, 1, &v, &hv, NULL), 0);
  parity_stat st = {.group = "Hessian-vector product"};
  parity_check(&st, hv, parity_ref(ref, "hvp.", "hv"), 1e-10, 1e-12, "hv");
  ck_assert_ptr_null(loom_grad(x));
  parity_report(&st);
}
END_TEST

int main(void) {
  Suite *s = suite_create("higher_order");
  TCase *tc = tcase_create("grad");
  tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
  tcase_add_test(tc, test_grad_and_second_derivative);
  tcase_add_test(tc, test_grad_of_intermediates);
  tcase_add_test(tc, test_grad_errors);
  tcase_add_test(tc, test_custom_function_saved_output_second_order);
  tcase_add_test(tc, test_composed_op_with_repeated_input);
  tcase_add_test(tc, test_backward_create_graph);
  tcase_add_test(tc, test_first_order_op_refuses);
  tcase_add_test(tc, test_gradgradcheck_can_fail);
  tcase_add_test(tc, test_prod_second_derivative_with_zeros);
  suite_add_tcase(s, tc);
  TCase *torch = tcase_create("pytorch");
  tcase_add_unchecked_fixture(torch, ref_open, ref_close);
  tcase_add_checked_fixture(torch, loom_test_setup, loom_test_teardown);
  tcase_add_test(torch, test_mlp_gradient_penalty);
  tcase_add_test(torch, test_lstm_cell_gradient_penalty);
  tcase_add_test(torch, test_lstm_layer_gradient_penalty);
  tcase_add_test(torch, test_norm_gradient_penalties);
  tcase_add_test(torch, test_prod_with_zeros);
  tcase_add_test(torch, test_cnn_gradient_penalty);
  tcase_add_test(torch, test_hessian_vector_product);
  suite_add_tcase(s, torch);
  return loom_run_suite(s);
}
