/* Tensor hooks (at the end) and grad-ready hooks (autograd/hooks.c):
 * Grad-ready hooks: when they run (once the leaf's
 * gradient for the pass is complete, before older nodes run), what they
 * see (the complete gradient, also of a weight whose products backward
 * defers), what they may do (change the gradient, fail the pass), and
 * registration, removal and ownership. */
#include "check_util.h"
#include "check_values.h"

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
 * the step products are linears with few rows, whose weight and bias
 * gradients backward defers and sums at the end of the pass. The weight's
 * hook and the bias's are tested apart (the weight's sum includes the
 * bias's). */
START_TEST(test_sees_complete_gradient_of_shared_weight) {
  for (int deferred = 0; deferred < 2; deferred++)
    for (int hook_bias = 0; hook_bias < 2; hook_bias++) {
      loom_rng *g = loom_rng_new(7);
      loom_tensor *w = loom_set_requires_grad(
          loom_randn(g, LOOM_F64, 0, 1, LOOM_SHAPE(3, 3)), true);
      loom_tensor *b = loom_set_requires_grad(
          loom_randn(g, LOOM_F64, 0, 1, LOOM_SHAPE(3)), true);
      loom_tensor *hooked = hook_bias ? b : w;
      snapshot snap = {0};
      loom_hook *h =
          loom_register_grad_ready_hook(hooked, take_snapshot, &snap);
      loom_tensor *state = loom_randn(g, LOOM_F64, 0, 1, LOOM_SHAPE(2, 3));
      for (int step = 0; step < 6; step++)
        state =
            loom_tanh(deferred ? loom_linear(state, w, b)
                               : loom_add(loom_matmul(state, loom_t(w)), b));
      for (int pass = 1; pass <= 2; pass++) {
        loom_zero_grad(w);
        loom_zero_grad(b);
        ck_assert_int_eq(loom_backward_with(
                             loom_sum_all(state), loom_scalar(LOOM_F64, 1),
                             &(loom_backward_opts){.retain_graph = pass == 1}),
                         0);
        ck_assert_int_eq(snap.calls, pass);
        ck_assert_loom(snap.seen);
        ck_assert_msg(loom_equal(snap.seen, loom_grad(hooked)),
                      "deferred %d: the %s's hook saw a partial gradient",
                      deferred, hook_bias ? "bias" : "weight");
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

/* Hooks that remove hooks while they run: themselves (a one-shot hook)
 * and the next one of the same leaf, both kinds; the removed ones run no
 * more, in this pass or later (their handles were freed under the loop).
 * Registering from a hook is refused. */
typedef struct {
  loom_hook *self, *other;
  const char *name;
} remover;

static int remove_hooks(loom_tensor *t, void *ctx) {
  remover *r = ctx;
  log_hook(t, (void *)r->name);
  loom_hook_remove(r->self);
  loom_hook_remove(r->other);
  loom_hook_remove(r->self); /* twice: still once */
  ck_assert_ptr_null(loom_register_grad_ready_hook(t, log_hook, "late"));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_STATE);
  loom_clear_error();
  return 0;
}

static int remove_hooks_tensor(loom_tensor *t, const loom_tensor *g,
                               loom_tensor **replace, void *ctx) {
  (void)g, (void)replace;
  return remove_hooks(t, ctx);
}

START_TEST(test_hooks_removed_by_hooks) {
  for (int kind = 0; kind < 2; kind++) {
    events[0] = '\0';
    loom_tensor *a = leaf((double[]){1}, 1);
    remover r = {.name = "once"};
    r.self = kind ? loom_register_hook(a, remove_hooks_tensor, &r)
                  : loom_register_grad_ready_hook(a, remove_hooks, &r);
    r.other = loom_register_grad_ready_hook(a, log_hook, "next");
    loom_hook *last = loom_register_grad_ready_hook(a, log_hook, "last");
    ck_assert_loom(r.self);
    ck_assert_int_eq(loom_backward(loom_sum_all(loom_exp(a))), 0);
    ck_assert_str_eq(events, "hook:once hook:last ");
    ck_assert_int_eq(loom_backward(loom_sum_all(loom_exp(a))), 0);
    ck_assert_str_eq(events, "hook:once hook:last hook:last ");
    loom_hook_remove(last);
  }
}
END_TEST

/* A hook that removes another leaf's only tensor hook in the middle of a
 * pass: the part of that leaf's gradient the pass had held back for the
 * hook still reaches .grad (it had been dropped: 2 for 7, as torch 1.13
 * gives it). */
static int remove_other(loom_tensor *t, void *ctx) {
  (void)t;
  loom_hook_remove(*(loom_hook **)ctx);
  return 0;
}

static int keep_gradient(loom_tensor *t, const loom_tensor *g,
                         loom_tensor **replace, void *ctx) {
  (void)t, (void)g, (void)replace, (void)ctx;
  return 0;
}

START_TEST(test_removed_hook_gradient_kept) {
  loom_tensor *x = leaf((double[]){1}, 1), *y = leaf((double[]){1}, 1);
  loom_tensor *b = loom_mul_scalar(y, 2), *c = loom_mul_scalar(x, 3);
  loom_tensor *a = loom_mul_scalar(y, 5); /* newest: runs first */
  loom_hook *hy = loom_register_hook(y, keep_gradient, NULL);
  loom_hook *hx = loom_register_grad_ready_hook(x, remove_other, &hy);
  ck_assert_int_eq(loom_backward(loom_sum_all(loom_add(loom_add(a, b), c))), 0);
  CHECK_VALUES(loom_grad(y), 0, 7);
  CHECK_VALUES(loom_grad(x), 0, 3);
  loom_hook_remove(hx);
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

/* ---- tensor hooks (loom_register_hook) ---- */

/* Multiplies the gradient by *(double *)ctx and logs "scale". */
static int scale_hook(loom_tensor *t, const loom_tensor *g,
                      loom_tensor **replace, void *ctx) {
  (void)t;
  log_event("scale");
  *replace = loom_mul_scalar(g, *(const double *)ctx);
  return *replace ? 0 : -1;
}

/* Logs the gradient's first element ("saw:V") and leaves it. */
static int see_hook(loom_tensor *t, const loom_tensor *g, loom_tensor **replace,
                    void *ctx) {
  (void)t, (void)replace, (void)ctx;
  double v[8];
  loom_copy_to_array(g, LOOM_F64, v, loom_numel(g));
  char e[32];
  snprintf(e, sizeof e, "saw:%g", v[0]);
  log_event(e);
  return 0;
}

/* y = 3x (a result), z = y * y: a hook on y doubling its gradient doubles
 * what reaches x, runs before retain_grad stores it, and in order with
 * another; removing it restores the plain gradient. */
START_TEST(test_tensor_hook_on_result) {
  events[0] = 0;
  loom_tensor *x = leaf((double[]){1, 2}, 2);
  loom_tensor *y = loom_mul_scalar(x, 3);
  loom_retain_grad(y);
  double two = 2;
  loom_hook *h1 = loom_register_hook(y, scale_hook, &two);
  loom_hook *h2 = loom_register_hook(y, see_hook, NULL);
  ck_assert_loom(h1);
  ck_assert_loom(h2);
  loom_backward_opts keep = {.retain_graph = true};
  loom_tensor *z = loom_sum_all(loom_mul(y, y));
  ck_assert_int_eq(loom_backward_with(z, loom_ones(LOOM_F64, 0, NULL), &keep),
                   0);
  ck_assert_str_eq(events, "scale saw:12 "); /* 2 * (2 * 3) */
  double g[2], gy[2];
  loom_copy_to_array(loom_grad(x), LOOM_F64, g, 2);
  loom_copy_to_array(loom_grad(y), LOOM_F64, gy, 2);
  ck_assert_double_eq(g[1], 2 * 2 * 6 * 3); /* 2 * dz/dy * dy/dx */
  ck_assert_double_eq(gy[0], 12);           /* retain_grad saw the hook's */
  loom_hook_remove(h1);
  loom_zero_grad(x);
  events[0] = 0;
  ck_assert_int_eq(loom_backward(z), 0);
  ck_assert_str_eq(events, "saw:6 ");
  loom_copy_to_array(loom_grad(x), LOOM_F64, g, 2);
  ck_assert_double_eq(g[1], 2 * 6 * 3);
  loom_hook_remove(h2);
  loom_zero_grad(x);
  loom_zero_grad(y);
}
END_TEST

/* On a leaf: the hook sees the pass's whole gradient once (x read by two
 * ops), its replacement is what accumulates, then grad-ready hooks run. */
START_TEST(test_tensor_hook_on_leaf) {
  events[0] = 0;
  loom_tensor *x = leaf((double[]){1, 2}, 2);
  double half = 0.5;
  loom_hook *h = loom_register_hook(x, scale_hook, &half);
  loom_hook *r = loom_register_grad_ready_hook(x, log_hook, "ready");
  loom_hook *s = loom_register_hook(x, see_hook, NULL);
  loom_tensor *z =
      loom_sum_all(loom_add(loom_mul(x, x), loom_mul_scalar(x, 4)));
  ck_assert_int_eq(loom_backward(z), 0);
  ck_assert_str_eq(events, "scale saw:3 hook:ready "); /* (2 + 4) / 2 */
  double g[2];
  loom_copy_to_array(loom_grad(x), LOOM_F64, g, 2);
  ck_assert_double_eq(g[1], (2 * 2 + 4) * 0.5);
  /* A second pass accumulates the hooked gradient onto the first. */
  z = loom_sum_all(loom_mul_scalar(x, 2));
  ck_assert_int_eq(loom_backward(z), 0);
  loom_copy_to_array(loom_grad(x), LOOM_F64, g, 2);
  ck_assert_double_eq(g[1], 4 + 1);
  loom_hook_remove(s);
  loom_hook_remove(h);
  loom_hook_remove(r);
  loom_zero_grad(x);
}
END_TEST

/* Every way a leaf's gradient arrives goes through its tensor hooks: a
 * slice of it (added in place into an existing .grad otherwise), a
 * linear's weight (its product summed straight into .grad, or deferred to
 * the end of the pass), and a backward seeded at the leaf itself. Each is
 * run twice, so the second pass finds .grad there. */
START_TEST(test_tensor_hook_on_leaf_every_path) {
  double ten = 10, g[3];
  loom_tensor *x = leaf((double[]){1, 2, 3}, 3);
  loom_hook *h = loom_register_hook(x, scale_hook, &ten);
  for (int pass = 1; pass <= 2; pass++) {
    ck_assert_int_eq(loom_backward(loom_sum_all(loom_narrow(x, 0, 1, 2))), 0);
    loom_copy_to_array(loom_grad(x), LOOM_F64, g, 3);
    ck_assert_double_eq(g[0], 0);
    ck_assert_double_eq(g[2], 10 * pass);
  }
  loom_zero_grad(x);
  for (int pass = 1; pass <= 2; pass++) {
    ck_assert_int_eq(
        loom_backward_with(x, loom_ones(LOOM_F64, LOOM_SHAPE(3)), NULL), 0);
    loom_copy_to_array(loom_grad(x), LOOM_F64, g, 3);
    ck_assert_double_eq(g[1], 10 * pass);
  }
  loom_hook_remove(h);
  loom_zero_grad(x);
  /* a weight read by a small linear (its product deferred, or summed
   * straight into .grad) and, transposed, as another's */
  loom_tensor *w = loom_set_requires_grad(
      loom_from_array(LOOM_F64, (double[]){1, 2, 3, 4, 5, 6}, LOOM_SHAPE(2, 3)),
      true);
  h = loom_register_hook(w, scale_hook, &ten);
  loom_tensor *in = loom_ones(LOOM_F64, LOOM_SHAPE(4, 3));
  for (int pass = 1; pass <= 2; pass++) {
    loom_tensor *y = loom_linear(loom_linear(in, w, NULL), loom_t(w), NULL);
    ck_assert_int_eq(loom_backward(loom_sum_all(y)), 0);
  }
  loom_hook_remove(h); /* the same without the hook: a tenth of it */
  loom_tensor *hooked = loom_clone(loom_grad(w));
  loom_zero_grad(w);
  for (int pass = 1; pass <= 2; pass++) {
    loom_tensor *y = loom_linear(loom_linear(in, w, NULL), loom_t(w), NULL);
    ck_assert_int_eq(loom_backward(loom_sum_all(y)), 0);
  }
  loom_tensor *plain = loom_grad(w);
  ck_assert_loom(plain);
  double a[6], b[6];
  loom_copy_to_array(hooked, LOOM_F64, a, 6);
  loom_copy_to_array(plain, LOOM_F64, b, 6);
  for (int i = 0; i < 6; i++) {
    ck_assert_double_ne(b[i], 0);
    ck_assert_double_eq_tol(a[i], 10 * b[i], 1e-9 * fabs(b[i]));
  }
  loom_zero_grad(w);
}
END_TEST

static int wrong_shape_hook(loom_tensor *t, const loom_tensor *g,
                            loom_tensor **replace, void *ctx) {
  (void)t, (void)g, (void)ctx;
  *replace = loom_zeros(LOOM_F64, LOOM_SHAPE(3));
  return 0;
}

START_TEST(test_tensor_hook_errors) {
  loom_tensor *x = leaf((double[]){1, 2}, 2);
  loom_tensor *c = loom_ones(LOOM_F64, LOOM_SHAPE(2));
  ck_assert_ptr_null(loom_register_hook(c, see_hook, NULL));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_STATE);
  loom_clear_error();
  ck_assert_ptr_null(loom_register_hook(x, NULL, NULL));
  loom_clear_error();
  loom_tensor *y = loom_mul_scalar(x, 2);
  loom_hook *h = loom_register_hook(y, wrong_shape_hook, NULL);
  ck_assert_int_eq(loom_backward(loom_sum_all(y)), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_SHAPE);
  loom_clear_error();
  loom_hook_remove(h);
  loom_zero_grad(x);
}
END_TEST

/* Hooks that try to free the tape or the thread's tensors under the pass
 * (ctx: 0 loom_tape_clear, 1 loom_cleanup): refused, so the pass fails
 * with their error instead of running a freed node. */
static int clear_tape_hook(loom_tensor *t, const loom_tensor *g,
                           loom_tensor **replace, void *ctx) {
  (void)t, (void)g, (void)replace;
  if (*(const int *)ctx)
    loom_cleanup();
  else
    loom_tape_clear();
  return 0;
}

static int clear_tape_ready(loom_tensor *t, void *ctx) {
  return clear_tape_hook(t, NULL, NULL, ctx);
}

START_TEST(test_tape_kept_while_pass_runs) {
  for (int what = 0; what < 2; what++)
    for (int ready = 0; ready < 2; ready++) {
      loom_scope *s = loom_scope_begin();
      loom_tensor *a = leaf((double[]){1, 2, 3}, 3);
      loom_tensor *m = loom_mul(a, a);
      loom_hook *h =
          ready ? loom_register_grad_ready_hook(a, clear_tape_ready,
                                                (void *)&what)
                : loom_register_hook(m, clear_tape_hook, (void *)&what);
      ck_assert_ptr_nonnull(h);
      int64_t before = loom_tape_size();
      ck_assert_int_eq(loom_backward(loom_sum_all(loom_tanh(m))), -1);
      ck_assert_int_eq(loom_last_status(), LOOM_ERR_STATE);
      ck_assert_ptr_nonnull(strstr(loom_last_error(), "backward pass"));
      loom_clear_error();
      ck_assert_int_le(loom_tape_size(), before);
      loom_hook_remove(h);
      /* once the pass has returned, both work */
      loom_tape_clear();
      ck_assert_int_eq(loom_last_status(), LOOM_OK);
      ck_assert_int_eq(loom_tape_size(), 0);
      loom_scope_end(s);
    }
  loom_cleanup();
  ck_assert_int_eq(loom_last_status(), LOOM_OK);
}
END_TEST

/* The same in a pass that records nothing (seeded on a leaf), in a
 * process that has recorded nothing yet (each test runs in a fresh fork):
 * the tape's hooks are in place as the pass starts. */
START_TEST(test_cleanup_refused_in_leaf_pass) {
  int what = 1;
  loom_tensor *a = leaf((double[]){2}, 1);
  loom_hook *h = loom_register_grad_ready_hook(a, clear_tape_ready, &what);
  ck_assert_ptr_nonnull(h);
  ck_assert_int_eq(loom_backward(a), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_STATE);
  loom_clear_error();
  loom_hook_remove(h);
  ck_assert_double_eq(loom_item(a), 2); /* a is still there */
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
  tcase_add_test(tc, test_tensor_hook_on_result);
  tcase_add_test(tc, test_tensor_hook_on_leaf);
  tcase_add_test(tc, test_tensor_hook_on_leaf_every_path);
  tcase_add_test(tc, test_tensor_hook_errors);
  tcase_add_test(tc, test_hooks_removed_by_hooks);
  tcase_add_test(tc, test_removed_hook_gradient_kept);
  tcase_add_test(tc, test_tape_kept_while_pass_runs);
  tcase_add_test(tc, test_cleanup_refused_in_leaf_pass);
  suite_add_tcase(s, tc);
  return loom_run_suite(s);
}
