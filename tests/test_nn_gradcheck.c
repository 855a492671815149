/* Every nn layer and loss passes loom_gradcheck in float64, with respect to
 * its inputs and its parameters (modules are built with float64 as the
 * default dtype, so their parameters are float64 leaves the check can
 * perturb in place). */
#include "check_util.h"
#include "layer_forward.h"

#include <string.h>

static loom_dtype saved_dtype_;

static void setup(void) {
  loom_test_setup();
  saved_dtype_ = loom_set_default_dtype(LOOM_F64);
  loom_manual_seed(1234);
}

static void teardown(void) {
  loom_set_default_dtype(saved_dtype_);
  loom_test_teardown();
}

/* A float64 leaf of normal values (times scale, plus shift). */
static loom_tensor *input(double shift, double scale, int ndim,
                          const int64_t *shape) {
  loom_tensor *t = loom_randn(NULL, LOOM_F64, shift, scale, ndim, shape);
  ck_assert_loom(t);
  return loom_set_requires_grad(t, true);
}
#define INPUT(...) input(0, 1, LOOM_SHAPE(__VA_ARGS__))

/* ---- layers: fn(in) = forward(layer, in[0..n_x)); the parameters come
 * after the inputs in in[] and are used by the layer itself ---- */

typedef struct {
  void *layer;
  forward_fn forward;
} layer_ctx;

static int layer_fn(loom_tensor *const *in, int n, loom_tensor **out, int max,
                    void *ctx) {
  (void)n;
  (void)max;
  layer_ctx *c = ctx;
  out[0] = c->forward(c->layer, in);
  return out[0] ? 1 : -1;
}

static void expect_pass(const char *what, loom_gradcheck_fn fn, void *ctx,
                        loom_tensor *const *in, int n) {
  loom_gradcheck_result res;
  int rc = loom_gradcheck(fn, ctx, in, n, NULL, &res);
  ck_assert_msg(rc == 1, "%s: %s%s", what, rc < 0 ? loom_last_error() : "",
                rc < 0 ? "" : res.message);
  /* Checked inputs are perturbed one element at a time: a check that
   * perturbed none would pass without looking. */
  for (int i = 0; i < n; i++)
    ck_assert_msg(loom_requires_grad(in[i]), "%s: input %d is not checked",
                  what, i);
  printf("%s: %d inputs, %s\n", what, n, res.message);
}

/* Checks the layer w.r.t. inputs x[0..n_x) and every parameter of m; frees
 * the module. */
static void check_layer(const char *what, loom_module *m, forward_fn f,
                        loom_tensor *const *x, int n_x) {
  ck_assert_msg(m != NULL, "%s: %s", what, loom_last_error());
  loom_tensor *in[16];
  for (int i = 0; i < n_x; i++)
    in[i] = x[i];
  int n_p = loom_module_parameters(m, in + n_x, 16 - n_x);
  ck_assert_int_le(n_x + n_p, 16);
  for (int i = n_x; i < n_x + n_p; i++)
    ck_assert_int_eq(loom_dtype_of(in[i]), LOOM_F64);
  layer_ctx ctx = {m, f};
  expect_pass(what, layer_fn, &ctx, in, n_x + n_p);
  loom_module_free(m);
}

#define X(...)                                                                 \
  (loom_tensor *const[]) { __VA_ARGS__ }

START_TEST(test_linear) {
  check_layer("linear", (loom_module *)loom_linear_layer_new(4, 3, true),
              fwd_linear, X(INPUT(2, 4)), 1);
  check_layer("linear without bias",
              (loom_module *)loom_linear_layer_new(4, 3, false), fwd_linear,
              X(INPUT(2, 4)), 1);
  check_layer("linear on 3-D input",
              (loom_module *)loom_linear_layer_new(3, 2, true), fwd_linear,
              X(INPUT(2, 2, 3)), 1);
}
END_TEST

START_TEST(test_bilinear) {
  check_layer("bilinear", (loom_module *)loom_bilinear_new(3, 2, 2, true),
              fwd_bilinear, X(INPUT(3, 3), INPUT(3, 2)), 2);
}
END_TEST

/* The indices repeat (gradients accumulate) but avoid the padding row,
 * which the forward reads but whose gradient is zero by definition. */
static loom_tensor *fwd_embedding_repeats(void *l, loom_tensor *const *in) {
  (void)in;
  loom_tensor *ix = loom_from_array(LOOM_I64, (int64_t[]){0, 3, 3, 4, 0, 2},
                                    LOOM_SHAPE(2, 3));
  return fwd_embedding(l, &ix);
}

START_TEST(test_embedding) {
  loom_embedding_layer *e = loom_embedding_layer_new(5, 3, 1);
  ck_assert_loom(e);
  check_layer("embedding", &e->base, fwd_embedding_repeats, NULL, 0);
}
END_TEST

START_TEST(test_conv2d) {
  check_layer("conv2d",
              (loom_module *)loom_conv2d_layer_new(2, 3, 3, 2,
                                                   (loom_conv2d_opts){0}, true),
              fwd_conv, X(INPUT(2, 2, 4, 4)), 1);
  loom_conv2d_opts o = {
      .stride = {2, 1}, .padding = {1, 2}, .dilation = {1, 2}, .groups = 2};
  check_layer("conv2d stride/padding/dilation/groups",
              (loom_module *)loom_conv2d_layer_new(4, 2, 3, 2, o, true),
              fwd_conv, X(INPUT(1, 4, 5, 4)), 1);
}
END_TEST

START_TEST(test_batch_norm_training) {
  /* Training mode normalises with the batch statistics, so the gradient
   * flows through the mean and variance too. */
  const int64_t shapes[3][4] = {{5, 3}, {3, 3, 4}, {2, 3, 3, 2}};
  const int ndims[3] = {2, 3, 4};
  for (int i = 0; i < 3; i++) {
    loom_batch_norm_layer *b =
        loom_batch_norm_layer_new(3, 1e-5, 0.1, true, true);
    ck_assert_loom(b);
    loom_init_uniform_(b->weight, 0.5, 1.5, NULL);
    loom_init_uniform_(b->bias, -1, 1, NULL);
    check_layer("batch_norm training", &b->base, fwd_batch_norm,
                X(input(1, 2, ndims[i], shapes[i])), 1);
  }
}
END_TEST

START_TEST(test_batch_norm_eval) {
  loom_batch_norm_layer *b =
      loom_batch_norm_layer_new(3, 1e-5, 0.1, true, true);
  ck_assert_loom(b);
  loom_init_uniform_(b->running_mean, -1, 1, NULL);
  loom_init_uniform_(b->running_var, 0.5, 2, NULL);
  loom_init_uniform_(b->weight, 0.5, 1.5, NULL);
  loom_module_train(&b->base, false);
  check_layer("batch_norm eval", &b->base, fwd_batch_norm, X(INPUT(2, 3, 2, 2)),
              1);
}
END_TEST

START_TEST(test_layer_norm) {
  loom_layer_norm_layer *l =
      loom_layer_norm_layer_new(1, (int64_t[]){4}, 1e-5, true);
  ck_assert_loom(l);
  loom_init_uniform_(l->weight, 0.5, 1.5, NULL);
  check_layer("layer_norm over 1 dim", &l->base, fwd_layer_norm,
              X(INPUT(2, 3, 4)), 1);
  l = loom_layer_norm_layer_new(2, (int64_t[]){2, 3}, 1e-3, true);
  ck_assert_loom(l);
  loom_init_uniform_(l->bias, -1, 1, NULL);
  check_layer("layer_norm over 2 dims", &l->base, fwd_layer_norm,
              X(INPUT(2, 2, 3)), 1);
}
END_TEST

START_TEST(test_highway) {
  check_layer("highway", (loom_module *)loom_highway_new(3, -1), fwd_highway,
              X(INPUT(4, 3)), 1);
}
END_TEST

/* A fixed mask: the generator is reseeded before every forward pass. */
static loom_tensor *fwd_dropout(void *l, loom_tensor *const *in) {
  loom_dropout_layer *d = l;
  loom_rng_seed(d->g, 99);
  return loom_dropout_layer_forward(d, in[0]);
}

START_TEST(test_dropout) {
  loom_rng *g = loom_rng_new(99);
  check_layer("dropout", (loom_module *)loom_dropout_layer_new(0.4, g),
              fwd_dropout, X(INPUT(3, 5)), 1);
  loom_rng_free(g);
}
END_TEST

/* ---- pooling (functional) ---- */

typedef struct {
  int kind; /* 0 max, 1 avg, 2 adaptive avg (kernel = output size) */
  loom_pool2d_opts o;
} pool_ctx;

static int pool_fn(loom_tensor *const *in, int n, loom_tensor **out, int max,
                   void *ctx) {
  (void)n;
  (void)max;
  const pool_ctx *p = ctx;
  out[0] = p->kind == 0   ? loom_max_pool2d(in[0], p->o, NULL)
           : p->kind == 1 ? loom_avg_pool2d(in[0], p->o)
                          : loom_adaptive_avg_pool2d(in[0], p->o.kernel[0],
                                                     p->o.kernel[1]);
  return out[0] ? 1 : -1;
}

START_TEST(test_pooling) {
  const pool_ctx cases[] = {
      {0, {.kernel = {2, 2}}},
      {0,
       {.kernel = {3, 3},
        .stride = {2, 2},
        .padding = {1, 1},
        .ceil_mode = true}},
      {0, {.kernel = {2, 2}, .stride = {1, 1}, .dilation = {2, 1}}},
      {1, {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}},
      {1,
       {.kernel = {3, 3},
        .stride = {2, 2},
        .padding = {1, 1},
        .ceil_mode = true,
        .exclude_pad = true}},
      {1, {.kernel = {2, 2}, .ceil_mode = true}},
      {2, {.kernel = {3, 2}}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char what[32];
    snprintf(what, sizeof what, "pooling case %zu", i);
    expect_pass(what, pool_fn, (void *)&cases[i], X(INPUT(2, 1, 5, 5)), 1);
  }
}
END_TEST

/* ---- losses: in[0] is the input, in[1] the target when it is a float
 * tensor (checked too); class indices and weights are held fixed ---- */

typedef enum { CE, NLL, MSE, L1, SMOOTH_L1, BCE, BCE_LOGITS, KL } loss_kind;

typedef struct {
  loss_kind kind;
  loom_reduction r;
  int64_t ignore_index;
  double smoothing, beta;
  bool log_target, batchmean;
  const loom_tensor *classes; /* int64 targets; NULL: the target is in[1] */
  const loom_tensor *weight, *pos_weight;
  bool weight_checked; /* class weights are in[1], checked */
} loss_ctx;

static int loss_fn(loom_tensor *const *in, int n, loom_tensor **out, int max,
                   void *ctx) {
  (void)n;
  (void)max;
  const loss_ctx *c = ctx;
  const loom_tensor *x = in[0], *t = c->classes ? c->classes : in[1];
  const loom_tensor *w = c->weight_checked ? in[1] : c->weight;
  loom_cross_entropy_opts o = {c->r, c->ignore_index, c->smoothing, w};
  switch (c->kind) {
  case CE:
    out[0] = loom_cross_entropy(x, t, &o);
    break;
  case NLL:
    out[0] = loom_nll_loss(x, t, &o);
    break;
  case MSE:
    out[0] = loom_mse_loss(x, t, c->r);
    break;
  case L1:
    out[0] = loom_l1_loss(x, t, c->r);
    break;
  case SMOOTH_L1:
    out[0] = loom_smooth_l1_loss(x, t, c->beta, c->r);
    break;
  case BCE:
    out[0] = loom_binary_cross_entropy(x, t, w, c->r);
    break;
  case BCE_LOGITS:
    out[0] =
        loom_binary_cross_entropy_with_logits(x, t, w, c->pos_weight, c->r);
    break;
  case KL:
    out[0] = loom_kl_div(x, t, c->log_target, c->r, c->batchmean);
    break;
  }
  return out[0] ? 1 : -1;
}

/* A float64 tensor that is not checked (weights). */
static loom_tensor *fixed(double shift, double scale, int ndim,
                          const int64_t *shape) {
  return loom_set_requires_grad(input(shift, scale, ndim, shape), false);
}

static loom_tensor *log_probs(int64_t n, int64_t c) {
  loom_tensor *t =
      loom_log_softmax(loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(n, c)), 1);
  return loom_set_requires_grad(t, true);
}

START_TEST(test_cross_entropy) {
  loom_tensor *cls =
      loom_from_array(LOOM_I64, (int64_t[]){1, 0, 3, 2}, LOOM_SHAPE(4));
  loom_tensor *w = fixed(1, 0.2, LOOM_SHAPE(4));
  const loss_ctx cases[] = {
      {.kind = CE, .ignore_index = -100, .classes = cls},
      {.kind = CE,
       .ignore_index = 2,
       .smoothing = 0.2,
       .classes = cls,
       .weight = w},
      {.kind = CE,
       .r = LOOM_SUM,
       .ignore_index = 0,
       .smoothing = 0.1,
       .classes = cls,
       .weight = w},
      {.kind = CE,
       .r = LOOM_NONE,
       .ignore_index = 3,
       .smoothing = 0.3,
       .classes = cls,
       .weight = w},
      {.kind = NLL, .ignore_index = 2, .classes = cls, .weight = w},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char what[48];
    snprintf(what, sizeof what, "cross_entropy/nll case %zu", i);
    expect_pass(what, loss_fn, (void *)&cases[i], X(INPUT(4, 4)), 1);
  }
  /* K-dimensional: (N, C, d) logits, (N, d) targets, one ignored. */
  loom_tensor *kcls = loom_from_array(
      LOOM_I64, (int64_t[]){0, 2, 1, -100, 2, 2}, LOOM_SHAPE(2, 3));
  loss_ctx kd = {.kind = CE,
                 .ignore_index = -100,
                 .smoothing = 0.2,
                 .classes = kcls,
                 .weight = fixed(1, 0.2, LOOM_SHAPE(3))};
  expect_pass("cross_entropy K-dim", loss_fn, &kd, X(INPUT(2, 3, 3)), 1);
  /* Class weights checked too (torch refuses their gradient; loom's NLL
   * gives it), each reduction, and second derivatives through the NLL. */
  const loom_reduction rs[] = {LOOM_MEAN, LOOM_SUM, LOOM_NONE};
  for (int r = 0; r < 3; r++) {
    loss_ctx wc = {.kind = r == 1 ? NLL : CE,
                   .r = rs[r],
                   .ignore_index = 2,
                   .smoothing = r == 0 ? 0.1 : 0,
                   .classes = cls,
                   .weight_checked = true};
    char what[48];
    snprintf(what, sizeof what, "class weights, reduction %d", r);
    expect_pass(what, loss_fn, &wc,
                X(INPUT(4, 4),
                  loom_set_requires_grad(input(1, 0.2, LOOM_SHAPE(4)), true)),
                2);
    wc.weight_checked = false;
    wc.weight = w;
    loom_gradcheck_result res;
    ck_assert_msg(
        loom_gradgradcheck(loss_fn, &wc, X(INPUT(4, 4)), 1, NULL, &res) == 1,
        "%s: second derivatives: %s", what, res.message);
    /* and with the weights differentiated (a mean's weight sum is an
     * output the second pass goes through), both losses */
    for (int kind = 0; kind < 2; kind++) {
      wc.kind = kind ? CE : NLL;
      wc.weight_checked = true;
      wc.weight = NULL;
      ck_assert_msg(loom_gradgradcheck(
                        loss_fn, &wc,
                        X(INPUT(4, 4), loom_set_requires_grad(
                                           input(1, 0.2, LOOM_SHAPE(4)), true)),
                        2, NULL, &res) == 1,
                    "%s, %s, weights differentiated: second derivatives: %s",
                    what, kind ? "cross_entropy" : "nll", res.message);
    }
  }
  /* Probability targets, differentiated too. */
  loom_tensor *p =
      loom_softmax(loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(4, 4)), 1);
  loom_set_requires_grad(p, true);
  loss_ctx prob = {
      .kind = CE, .ignore_index = -100, .smoothing = 0.15, .weight = w};
  expect_pass("cross_entropy probabilities", loss_fn, &prob, X(INPUT(4, 4), p),
              2);
}
END_TEST

START_TEST(test_regression_losses) {
  const loss_ctx cases[] = {
      {.kind = MSE},
      {.kind = MSE, .r = LOOM_SUM},
      {.kind = L1},
      {.kind = L1, .r = LOOM_NONE},
      {.kind = SMOOTH_L1, .beta = 0.5},
      {.kind = SMOOTH_L1, .r = LOOM_SUM, .beta = 1},
      {.kind = SMOOTH_L1, .beta = 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char what[48];
    snprintf(what, sizeof what, "regression loss case %zu", i);
    expect_pass(what, loss_fn, (void *)&cases[i], X(INPUT(3, 4), INPUT(3, 4)),
                2);
  }
}
END_TEST

START_TEST(test_binary_losses) {
  /* Probabilities kept away from 0 and 1, where the log is clamped. */
  loom_tensor *prob = loom_set_requires_grad(
      loom_rand(NULL, LOOM_F64, 0.1, 0.9, LOOM_SHAPE(3, 4)), true);
  loom_tensor *y = loom_set_requires_grad(
      loom_rand(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(3, 4)), true);
  loom_tensor *w = fixed(1, 0.2, LOOM_SHAPE(4));
  loom_tensor *pw = fixed(1.5, 0.5, LOOM_SHAPE(4));
  loss_ctx bce = {.kind = BCE, .weight = w};
  expect_pass("bce", loss_fn, &bce, X(prob, y), 2);
  bce.r = LOOM_NONE;
  expect_pass("bce none", loss_fn, &bce, X(prob, y), 2);
  loss_ctx bcel = {.kind = BCE_LOGITS, .weight = w, .pos_weight = pw};
  expect_pass("bce_with_logits", loss_fn, &bcel,
              X(input(0, 3, LOOM_SHAPE(3, 4)), y), 2);
  bcel.r = LOOM_SUM;
  bcel.weight = NULL;
  expect_pass("bce_with_logits sum", loss_fn, &bcel,
              X(input(0, 3, LOOM_SHAPE(3, 4)), y), 2);
}
END_TEST

START_TEST(test_kl_div) {
  loom_tensor *p =
      loom_softmax(loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(3, 4)), 1);
  loom_set_requires_grad(p, true);
  const loss_ctx cases[] = {
      {.kind = KL, .r = LOOM_SUM, .batchmean = true},
      {.kind = KL, .r = LOOM_MEAN},
      {.kind = KL, .r = LOOM_NONE},
      {.kind = KL, .r = LOOM_SUM, .log_target = true, .batchmean = true},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char what[48];
    snprintf(what, sizeof what, "kl_div case %zu", i);
    expect_pass(what, loss_fn, (void *)&cases[i],
                X(log_probs(3, 4), cases[i].log_target ? log_probs(3, 4) : p),
                2);
  }
}
END_TEST

int main(void) {
  Suite *s = suite_create("nn_gradcheck");
  TCase *tc = tcase_create("layers");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_linear);
  tcase_add_test(tc, test_bilinear);
  tcase_add_test(tc, test_embedding);
  tcase_add_test(tc, test_conv2d);
  tcase_add_test(tc, test_batch_norm_training);
  tcase_add_test(tc, test_batch_norm_eval);
  tcase_add_test(tc, test_layer_norm);
  tcase_add_test(tc, test_highway);
  tcase_add_test(tc, test_dropout);
  tcase_add_test(tc, test_pooling);
  suite_add_tcase(s, tc);
  TCase *tl = tcase_create("losses");
  tcase_add_checked_fixture(tl, setup, teardown);
  tcase_set_timeout(tl, 300);
  tcase_add_test(tl, test_cross_entropy);
  tcase_add_test(tl, test_regression_losses);
  tcase_add_test(tl, test_binary_losses);
  tcase_add_test(tl, test_kl_div);
  suite_add_tcase(s, tl);
  return loom_run_suite(s);
}
