/* Grad-ready hooks (autograd/hooks.c): when they run (once the leaf's
 * gradient for the pass is complete, before older nodes run), what they
 * see (the complete gradient, also of a weight whose products backward
 * defers), what they may do (change the gradient, fail the pass), and
 * registration, removal and ownership. */
#include "check_util.h"

#include <string.h>

static loom_tensor *leaf(const double *v, int64_t n) {
  return loom_set_requires_grad(loom_from_array(LOOM_F64, v, 1, &n), true);
}

/* A log of events in the order they happen. */
static char events[256];

static void log_event(const char *e) {
  strncat(events, e, sizeof events - strlen(events) - 1);
  strncat(events, " ", sizeof events - strlen(events) - 1);
}

/* Logs "hook:NAME" (ctx is the name). */
static int log_hook(loom_tensor *t, void *ctx) {
  (void)t;
  char e[64];
  snprintf(e, sizeof e, "hook:%s", (const char *)ctx);
  log_event(e);
  return 0;
}

/* An identity whose backward logs "identity-backward". */
static int identity_fwd(loom_function_ctx *c, loom_tensor *const *in, int n,
                        loom_tensor **out) {
  (void)c, (void)n;
  out[0] = loom_mul_scalar(in[0], 1);
  return 0;
}
static int identity_bwd(loom_function_ctx *c, loom_tensor *const *g,
                        loom_tensor **gin) {
  (void)c;
  log_event("identity-backward");
  gin[0] = loom_mul_scalar(g[0], 1);
  return 0;
}
static const loom_function logged_identity = {"logged_identity", 1, 1,
                                              identity_fwd, identity_bwd};

/* loss = sum(identity(a * x) * b): b's only reader (the last product) runs
 * first in backward, so b's hook runs before the identity's backward, and
 * a's after it. */
START_TEST(test_runs_when_complete_before_older_nodes) {
  events[0] = '\0';
  loom_tensor *a = leaf((double[]){1, 2}, 2), *b = leaf((double[]){3, 4}, 2);
  loom_tensor *x = loom_from_array(LOOM_F64, (double[]){5, 6}, LOOM_SHAPE(2));
  loom_hook *ha = loom_register_grad_ready_hook(a, log_hook, "a");
  loom_hook *hb = loom_register_grad_ready_hook(b, log_hook, "b");
  ck_assert_loom(ha);
  ck_assert_loom(hb);
  loom_tensor *in = loom_mul(a, x), *z;
  ck_assert_int_eq(loom_function_apply(&logged_identity, &in, &z, NULL), 0);
  ck_assert_int_eq(loom_backward(loom_sum_all(loom_mul(z, b))), 0);
  ck_assert_str_eq(events, "hook:b identity-backward hook:a ");
  loom_hook_remove(ha);
  loom_hook_remove(hb);
}
END_TEST

/* What a hook saw of the gradient: a copy, and how many calls. */
typedef struct {
  loom_tensor *seen;
  int calls;
} snapshot;

static int take_snapshot(loom_tensor *t, void *ctx) {
  snapshot *s = ctx;
  loom_release(s->seen);
  s->seen = loom_keep(loom_clone(loom_grad(t)));
  s->calls++;
  return s->seen ? 0 : -1;
}

/* A weight read at every step of a sequence gets its hook once per pass,
 * after its last (oldest) reader, and sees the whole gradient: also when
 * the step products are linears with few rows, whose weight gradients
 * backward defers and sums at the end of the pass. */
START_TEST(test_sees_complete_gradient_of_shared_weight) {
  for (int deferred = 0; deferred < 2; deferred++) {
    loom_rng *g = loom_rng_new(7);
    loom_tensor *w = loom_set_requires_grad(
        loom_randn(g, LOOM_F64, 0, 1, LOOM_SHAPE(3, 3)), true);
    snapshot snap = {0};
    loom_hook *h = loom_register_grad_ready_hook(w, take_snapshot, &snap);
    loom_tensor *state = loom_randn(g, LOOM_F64, 0, 1, LOOM_SHAPE(2, 3));
    for (int step = 0; step < 6; step++)
      state = loom_tanh(deferred ? loom_linear(state, w, NULL)
                                 : loom_matmul(state, loom_t(w)));
    for (int pass = 1; pass <= 2; pass++) {
      loom_zero_grad(w);
      ck_assert_int_eq(
          loom_backward_with(loom_sum_all(state), loom_scalar(LOOM_F64, 1),
                             &(loom_backward_opts){.retain_graph = pass == 1}),
          0);
      ck_assert_int_eq(snap.calls, pass);
      ck_assert_loom(snap.seen);
      ck_assert_msg(loom_equal(snap.seen, loom_grad(w)),
                    "deferred %d: the hook saw a partial gradient", deferred);
    }
    loom_hook_remove(h);
    loom_release(snap.seen);
    loom_rng_free(g);
  }
}
END_TEST

static int double_it(loom_tensor *t, void *ctx) {
  (void)ctx;
  double *g = loom_data_f64(loom_grad(t));
  for (int64_t i = 0; i < loom_numel(t); i++)
    g[i] *= 2;
  return 0;
}

/* Hooks of a leaf run in registration order and may change the gradient. */
START_TEST(test_changes_gradient_in_order) {
  loom_tensor *x = leaf((double[]){1, 2}, 2);
  snapshot before = {0};
  loom_hook *h1 = loom_register_grad_ready_hook(x, take_snapshot, &before);
  loom_hook *h2 = loom_register_grad_ready_hook(x, double_it, NULL);
  ck_assert_int_eq(loom_backward(loom_sum_all(loom_mul(x, x))), 0);
  ck_assert_double_eq(loom_data_f64(before.seen)[1], 4);
  ck_assert_double_eq(loom_data_f64(loom_grad(x))[1], 8);
  loom_hook_remove(h1);
  loom_hook_remove(h2);
  loom_release(before.seen);
}
END_TEST

static int refuse(loom_tensor *t, void *ctx) {
  (void)t, (void)ctx;
  loom_set_error(LOOM_ERR_ARGUMENT, "refused by the hook");
  return -1;
}

static int refuse_silently(loom_tensor *t, void *ctx) {
  (void)t, (void)ctx;
  return -1;
}

/* A failing hook fails the backward with its own error (or one saying that
 * a hook failed), and hooks after it in the pass do not run. */
START_TEST(test_failing_hook_fails_backward) {
  for (int silent = 0; silent < 2; silent++) {
    events[0] = '\0';
    loom_tensor *a = leaf((double[]){1}, 1), *b = leaf((double[]){2}, 1);
    loom_hook *hb =
        loom_register_grad_ready_hook(b, silent ? refuse_silently : refuse, 0);
    loom_hook *ha = loom_register_grad_ready_hook(a, log_hook, "a");
    loom_tensor *y = loom_mul(loom_exp(a), b);
    ck_assert_int_eq(loom_backward(loom_sum_all(y)), -1);
    ck_assert_str_eq(loom_last_error(),
                     silent ? "backward: a grad-ready hook of a leaf [1] "
                              "failed without saying why"
                            : "refused by the hook");
    ck_assert_str_eq(events, "");
    loom_clear_error();
    loom_hook_remove(ha);
    loom_hook_remove(hb);
    ck_assert_int_eq(loom_tape_size(), 0);
  }
}
END_TEST

/* A pass that does not reach a leaf does not run its hooks; one seeded at
 * the leaf itself does; a removed hook never runs again. */
START_TEST(test_reach_and_removal) {
  events[0] = '\0';
  loom_tensor *a = leaf((double[]){1}, 1), *b = leaf((double[]){2}, 1);
  loom_hook *ha = loom_register_grad_ready_hook(a, log_hook, "a");
  ck_assert_int_eq(loom_backward(loom_sum_all(loom_exp(b))), 0);
  ck_assert_str_eq(events, "");
  ck_assert_int_eq(loom_backward_with(a, loom_ones_like(a), NULL), 0);
  ck_assert_str_eq(events, "hook:a ");
  loom_hook_remove(ha);
  ck_assert_int_eq(loom_backward(loom_sum_all(loom_exp(a))), 0);
  ck_assert_str_eq(events, "hook:a ");
  loom_hook_remove(NULL);
}
END_TEST

/* A failure earlier in the pass (a saved tensor written in place) stops it
 * before the hooks of the leaves the failed node leads to. */
START_TEST(test_failed_pass_skips_later_hooks) {
  events[0] = '\0';
  loom_tensor *a = leaf((double[]){1, 2}, 2);
  loom_hook *ha = loom_register_grad_ready_hook(a, log_hook, "a");
  loom_tensor *e = loom_exp(a);
  loom_tensor *y = loom_sum_all(loom_exp(e)); /* exp saves its output e */
  loom_no_grad_begin();
  loom_mul_scalar_(e, 2);
  loom_no_grad_end();
  ck_assert_int_eq(loom_backward(y), -1);
  ck_assert_str_eq(events, "");
  loom_clear_error();
  loom_hook_remove(ha);
}
END_TEST

/* The handle keeps its leaf alive (the fixture checks nothing leaks once
 * it is removed), and only leaves that require grad take hooks. */
START_TEST(test_registration) {
  loom_tensor *x = loom_keep(leaf((double[]){1}, 1));
  loom_hook *h = loom_register_grad_ready_hook(x, log_hook, "x");
  ck_assert_loom(h);
  loom_release(x);
  loom_hook_remove(h);

  loom_tensor *c = loom_ones(LOOM_F64, LOOM_SHAPE(2));
  ck_assert_ptr_null(loom_register_grad_ready_hook(c, log_hook, NULL));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_STATE);
  ck_assert_str_eq(loom_last_error(),
                   "register_grad_ready_hook: the tensor [2] is a leaf that "
                   "does not require grad");
  loom_clear_error();
  loom_tensor *y = loom_exp(leaf((double[]){1}, 1));
  ck_assert_ptr_null(loom_register_grad_ready_hook(y, log_hook, NULL));
  ck_assert_ptr_nonnull(strstr(loom_last_error(), "not a leaf"));
  loom_clear_error();
  ck_assert_ptr_null(loom_register_grad_ready_hook(NULL, log_hook, NULL));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
  loom_clear_error();
  ck_assert_ptr_null(loom_register_grad_ready_hook(c, NULL, NULL));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
  loom_clear_error();
}
END_TEST

int main(void) {
  Suite *s = suite_create("hooks");
  TCase *tc = tcase_create("hooks");
  tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
  tcase_add_test(tc, test_runs_when_complete_before_older_nodes);
  tcase_add_test(tc, test_sees_complete_gradient_of_shared_weight);
  tcase_add_test(tc, test_changes_gradient_in_order);
  tcase_add_test(tc, test_failing_hook_fails_backward);
  tcase_add_test(tc, test_reach_and_removal);
  tcase_add_test(tc, test_failed_pass_skips_later_hooks);
  tcase_add_test(tc, test_registration);
  suite_add_tcase(s, tc);
  return loom_run_suite(s);
}
