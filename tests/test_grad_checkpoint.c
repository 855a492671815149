/* Gradient checkpointing (loom_checkpoint): the gradients equal those of
 * the plain run (with dropout inside, whose masks must be drawn again,
 * and with create_graph), the memory kept between forward and backward
 * falls, and misuse is reported. */
#include "check_util.h"

#include <string.h>

enum { LAYERS = 8, WIDTH = 64, BATCH = 32 };

typedef struct {
  loom_tensor *w[LAYERS], *b[LAYERS];
  double p_drop;
} net;

/* LAYERS x (linear, tanh, dropout with the default generator). */
static int segment(loom_tensor *const *in, int n_in, loom_tensor **out,
                   int n_out, void *ctx) {
  (void)n_in, (void)n_out;
  const net *m = ctx;
  loom_tensor *h = in[0];
  for (int l = 0; l < LAYERS; l++)
    h = loom_dropout(loom_tanh(loom_linear(h, m->w[l], m->b[l])), m->p_drop,
                     true, NULL);
  out[0] = h;
  return h ? 1 : -1;
}

static void make_net(net *m, double p_drop) {
  loom_rng *g = loom_rng_new(3);
  for (int l = 0; l < LAYERS; l++) {
    m->w[l] = loom_keep(loom_set_requires_grad(
        loom_randn(g, LOOM_F64, 0, 0.2, LOOM_SHAPE(WIDTH, WIDTH)), true));
    m->b[l] = loom_keep(loom_set_requires_grad(
        loom_randn(g, LOOM_F64, 0, 0.1, LOOM_SHAPE(WIDTH)), true));
  }
  loom_rng_free(g);
  m->p_drop = p_drop;
}

static void free_net(net *m) {
  for (int l = 0; l < LAYERS; l++) {
    loom_release(m->w[l]);
    loom_release(m->b[l]);
  }
}

/* Runs loss = sum(segment(x)^2) plainly or checkpointed, from seed 11 of
 * the default generator; returns the loss kept, with *kept_bytes the
 * memory held after the forward's scope ended and *nodes the tape. */
static loom_tensor *forward(net *m, loom_tensor *x, bool ckpt,
                            int64_t *kept_bytes, int64_t *nodes) {
  loom_manual_seed(11);
  int64_t before = loom_debug_live_bytes();
  loom_scope *s = loom_scope_begin();
  loom_tensor *y;
  if (ckpt)
    ck_assert_int_eq(loom_checkpoint(segment, m, &x, 1, &y, 1, NULL), 0);
  else
    ck_assert_int_eq(segment(&x, 1, &y, 1, m), 1);
  loom_tensor *loss = loom_keep(loom_sum_all(loom_square(y)));
  loom_scope_end(s);
  *kept_bytes = loom_debug_live_bytes() - before;
  *nodes = loom_tape_size();
  return loss;
}

static loom_tensor *grads_of(net *m, loom_tensor *x) {
  loom_tensor *all[2 * LAYERS + 1];
  for (int l = 0; l < LAYERS; l++) {
    all[2 * l] = loom_flatten(loom_grad(m->w[l]), 0, -1);
    all[2 * l + 1] = loom_grad(m->b[l]);
  }
  all[2 * LAYERS] = loom_flatten(loom_grad(x), 0, -1);
  loom_tensor *cat = loom_concat(all, 2 * LAYERS + 1, 0);
  for (int l = 0; l < LAYERS; l++) {
    loom_zero_grad(m->w[l]);
    loom_zero_grad(m->b[l]);
  }
  loom_zero_grad(x);
  return cat;
}

static void assert_equal(const loom_tensor *a, const loom_tensor *b) {
  ck_assert_loom(a);
  ck_assert_loom(b);
  ck_assert(loom_same_shape(a, b));
  double worst = loom_item(loom_amax(loom_abs(loom_sub(a, b)), NULL, 0, false));
  double scale = loom_item(loom_amax(loom_abs(b), NULL, 0, false));
  ck_assert_msg(worst <= 1e-12 * (1 + scale),
                "gradients differ by %g (largest %g)", worst, scale);
}

static void check_same_gradients(double p_drop) {
  net m;
  make_net(&m, p_drop);
  loom_rng *g = loom_rng_new(5);
  loom_tensor *x = loom_set_requires_grad(
      loom_randn(g, LOOM_F64, 0, 1, LOOM_SHAPE(BATCH, WIDTH)), true);
  loom_rng_free(g);
  int64_t plain_bytes, plain_nodes, ckpt_bytes, ckpt_nodes;
  loom_tensor *loss = forward(&m, x, false, &plain_bytes, &plain_nodes);
  ck_assert_int_eq(loom_backward(loss), 0);
  loom_tensor *plain = grads_of(&m, x);
  loom_tensor *loss2 = forward(&m, x, true, &ckpt_bytes, &ckpt_nodes);
  uint64_t st[LOOM_RNG_STATE_WORDS], st2[LOOM_RNG_STATE_WORDS];
  loom_rng_get_state(NULL, st);
  ck_assert_int_eq(loom_backward(loss2), 0);
  loom_rng_get_state(NULL, st2); /* the recomputation put it back */
  ck_assert_int_eq(memcmp(st, st2, sizeof st), 0);
  ck_assert_double_eq(loom_item(loss), loom_item(loss2));
  assert_equal(grads_of(&m, x), plain);
  /* Kept between forward and backward: every layer's activations (and
   * masks) plainly; when checkpointed, the segment's input and output and
   * 3 nodes (checkpoint, square, sum). */
  printf("dropout %.1f: kept %lld bytes in %lld nodes plainly, %lld bytes "
         "in %lld nodes checkpointed\n",
         p_drop, (long long)plain_bytes, (long long)plain_nodes,
         (long long)ckpt_bytes, (long long)ckpt_nodes);
  ck_assert_int_ge(plain_nodes, 2 * LAYERS);
  ck_assert_int_le(ckpt_nodes, 3);
  ck_assert_int_lt(4 * ckpt_bytes, plain_bytes);
  loom_release(loss);
  loom_release(loss2);
  free_net(&m);
}

START_TEST(test_same_gradients_less_memory) { check_same_gradients(0); }
END_TEST

START_TEST(test_dropout_masks_replayed) { check_same_gradients(0.3); }
END_TEST

/* A gradient penalty through a checkpointed segment equals the plain one. */
static loom_tensor *penalty(net *m, loom_tensor *x, bool ckpt) {
  loom_manual_seed(12);
  loom_tensor *y;
  if (ckpt)
    ck_assert_int_eq(loom_checkpoint(segment, m, &x, 1, &y, 1, NULL), 0);
  else
    ck_assert_int_eq(segment(&x, 1, &y, 1, m), 1);
  loom_tensor *f = loom_sum_all(loom_square(y)), *gx;
  loom_grad_opts o = {.create_graph = true};
  ck_assert_int_eq(loom_autograd_grad(&f, 1, &x, 1, NULL, &gx, &o), 0);
  loom_tensor *pen = loom_sum_all(loom_square(gx));
  ck_assert_int_eq(loom_backward(pen), 0);
  return pen;
}

/* The parameters' gradients, concatenated (and zeroed). */
static loom_tensor *parameter_grads(net *m) {
  loom_tensor *all[2 * LAYERS];
  for (int l = 0; l < LAYERS; l++) {
    all[2 * l] = loom_flatten(loom_grad(m->w[l]), 0, -1);
    all[2 * l + 1] = loom_grad(m->b[l]);
  }
  loom_tensor *cat = loom_concat(all, 2 * LAYERS, 0);
  for (int l = 0; l < LAYERS; l++) {
    loom_zero_grad(m->w[l]);
    loom_zero_grad(m->b[l]);
  }
  return cat;
}

/* A segment whose input is data (no gradient wanted) and that reads its
 * parameters directly: it is recorded all the same, and they get the
 * plain run's gradients (it was not recorded, as no input required grad,
 * so they got none through it, without a word). With grad mode off, or
 * parameters that do not require grad, nothing is recorded. */
START_TEST(test_parameters_read_from_a_data_input) {
  net m;
  make_net(&m, 0);
  loom_rng *g = loom_rng_new(5);
  loom_tensor *x = loom_randn(g, LOOM_F64, 0, 1, LOOM_SHAPE(BATCH, WIDTH));
  loom_rng_free(g);
  int64_t bytes, nodes;
  loom_tensor *loss = forward(&m, x, false, &bytes, &nodes);
  ck_assert_int_eq(loom_backward(loss), 0);
  loom_tensor *plain = parameter_grads(&m);
  loom_tensor *loss2 = forward(&m, x, true, &bytes, &nodes);
  ck_assert_int_eq(nodes, 3);
  ck_assert_int_eq(loom_backward(loss2), 0);
  assert_equal(parameter_grads(&m), plain);
  loom_release(loss);
  loom_release(loss2);
  loom_tensor *y;
  loom_no_grad_begin();
  ck_assert_int_eq(loom_checkpoint(segment, &m, &x, 1, &y, 1, NULL), 0);
  loom_no_grad_end();
  ck_assert(!loom_requires_grad(y));
  for (int l = 0; l < LAYERS; l++) {
    loom_set_requires_grad(m.w[l], false);
    loom_set_requires_grad(m.b[l], false);
  }
  ck_assert_int_eq(loom_checkpoint(segment, &m, &x, 1, &y, 1, NULL), 0);
  ck_assert(!loom_requires_grad(y));
  ck_assert_int_eq(loom_tape_size(), 0);
  free_net(&m);
}
END_TEST

START_TEST(test_create_graph_through_checkpoint) {
  net m;
  make_net(&m, 0.2);
  loom_rng *g = loom_rng_new(6);
  loom_tensor *x = loom_set_requires_grad(
      loom_randn(g, LOOM_F64, 0, 1, LOOM_SHAPE(4, WIDTH)), true);
  loom_rng_free(g);
  double plain = loom_item(penalty(&m, x, false));
  loom_tensor *want = grads_of(&m, x);
  double ckpt = loom_item(penalty(&m, x, true));
  ck_assert_double_eq_tol(plain, ckpt, 1e-12 * plain);
  assert_equal(grads_of(&m, x), want);
  free_net(&m);
}
END_TEST

static int wrong_count(loom_tensor *const *in, int n_in, loom_tensor **out,
                       int n_out, void *ctx) {
  (void)n_in, (void)n_out, (void)ctx;
  out[0] = loom_tanh(in[0]);
  return 1;
}

static int reads_outside(loom_tensor *const *in, int n_in, loom_tensor **out,
                         int n_out, void *ctx) {
  (void)n_in, (void)n_out;
  out[0] = loom_mul(in[0], ctx);
  return out[0] ? 1 : -1;
}

START_TEST(test_errors) {
  loom_tensor *x =
      loom_set_requires_grad(loom_ones(LOOM_F64, LOOM_SHAPE(3)), true);
  loom_tensor *y[2] = {x, x};
  ck_assert_int_eq(loom_checkpoint(wrong_count, NULL, &x, 1, y, 2, NULL), -1);
  ck_assert_ptr_null(y[0]);
  ck_assert_ptr_nonnull(strstr(loom_last_error(), "returned 1 outputs"));
  loom_clear_error();
  ck_assert_int_eq(loom_checkpoint(NULL, NULL, &x, 1, y, 1, NULL), -1);
  loom_clear_error();
  /* A result of a recorded op read without being an input. */
  loom_tensor *outside = loom_mul_scalar(x, 2);
  ck_assert_int_eq(loom_checkpoint(reads_outside, outside, &x, 1, y, 1, NULL),
                   0);
  ck_assert_int_eq(loom_backward(loom_sum_all(y[0])), -1);
  ck_assert_ptr_nonnull(strstr(loom_last_error(), "pass it as an input"));
  loom_clear_error();
  loom_zero_grad(x);
}
END_TEST

/* A segment output the caller never uses has no gradient: the segment's
 * tensors that lead only to it get none either when it is recomputed (no
 * hook call, nothing retained), as without the checkpoint. */
static int inner_calls;
static loom_tensor *inner_mid;
static loom_hook *inner_hook;

static int count_hook(loom_tensor *t, const loom_tensor *grad,
                      loom_tensor **replace, void *ctx) {
  (void)t, (void)grad, (void)replace, (void)ctx;
  inner_calls++;
  return 0;
}

static int two_outputs(loom_tensor *const *in, int n, loom_tensor **out,
                       int max, void *ctx) {
  (void)n, (void)max, (void)ctx;
  loom_tensor *m = loom_mul_scalar(in[0], 3); /* feeds out[0] only */
  if (loom_requires_grad(m)) { /* the recomputation, in backward */
    inner_hook = loom_register_hook(m, count_hook, NULL);
    loom_retain_grad(m);
    inner_mid = loom_keep(m);
  }
  out[0] = loom_square(m);
  out[1] = loom_mul_scalar(in[0], 2);
  return 2;
}

START_TEST(test_unused_output_gets_no_gradient) {
  int64_t n = 2;
  loom_tensor *x = loom_set_requires_grad(
      loom_from_array(LOOM_F64, (double[]){1, 2}, 1, &n), true);
  loom_tensor *o[2];
  inner_calls = 0;
  ck_assert_int_eq(loom_checkpoint(two_outputs, NULL, &x, 1, o, 2, NULL), 0);
  ck_assert_int_eq(loom_backward(loom_sum_all(o[1])), 0);
  const double *g = loom_data_f64(loom_grad(x));
  ck_assert(g[0] == 2 && g[1] == 2);
  ck_assert_int_eq(inner_calls, 0);
  ck_assert_ptr_nonnull(inner_hook); /* the hook was there to be called */
  ck_assert_ptr_nonnull(inner_mid);
  ck_assert_ptr_null(loom_grad(inner_mid));
  loom_hook_remove(inner_hook);
  inner_hook = NULL;
  loom_release(inner_mid);
  inner_mid = NULL;
}
END_TEST

int main(void) {
  Suite *s = suite_create("grad_checkpoint");
  TCase *tc = tcase_create("checkpoint");
  tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
  tcase_add_test(tc, test_same_gradients_less_memory);
  tcase_add_test(tc, test_dropout_masks_replayed);
  tcase_add_test(tc, test_create_graph_through_checkpoint);
  tcase_add_test(tc, test_unused_output_gets_no_gradient);
  tcase_add_test(tc, test_errors);
  tcase_add_test(tc, test_parameters_read_from_a_data_input);
  suite_add_tcase(s, tc);
  return loom_run_suite(s);
}
