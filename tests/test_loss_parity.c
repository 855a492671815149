/* PyTorch parity of the losses: each case of
 * tests/data/nn_losses.safetensors (scripts/gen_nn_reference.py) gives the
 * inputs of a torch.nn.functional loss call, its output, and the gradient of
 * sum(out * r) w.r.t. the input (torch's float64 results from the float32
 * inputs), which loom must reproduce. The "edges" cases
 * (tests/data/loss_edges.safetensors, scripts/gen_loss_edge_reference.py)
 * are compared bit for bit: see test_edges. */
#include "parity_util.h"

#define RTOL 1e-5
#define ATOL 1e-6

PARITY_REFERENCE(ref, "nn_losses.safetensors")
static parity_stat loss_stat = {"losses", 0, ""};

typedef enum { CE, NLL, MSE, L1, SMOOTH_L1, BCE, BCE_LOGITS, KL } loss_kind;

typedef struct {
  const char *name;
  loss_kind kind;
  loom_reduction reduction;
  int64_t ignore_index;       /* CE, NLL; 0 stands for PyTorch's default -100 */
  double smoothing;           /* CE */
  double beta;                /* SMOOTH_L1 */
  bool log_target, batchmean; /* KL */
} loss_case;

#define C(n, k) .name = n, .kind = k
static const loss_case cases[] = {
    {C("ce_plain", CE)},
    {C("ce_ignore", CE), .ignore_index = 2},
    {C("ce_smooth", CE), .smoothing = 0.2},
    {C("ce_weight", CE)},
    {C("ce_wsi_mean", CE), .smoothing = 0.1, .ignore_index = 2},
    {C("ce_wsi_sum", CE), .reduction = LOOM_SUM, .smoothing = 0.1,
     .ignore_index = 2},
    {C("ce_wsi_none", CE), .reduction = LOOM_NONE, .smoothing = 0.1,
     .ignore_index = 2},
    {C("ce_sum", CE), .reduction = LOOM_SUM},
    {C("ce_none", CE), .reduction = LOOM_NONE},
    {C("ce_kdim", CE)},
    {C("ce_kdim_wsi", CE), .smoothing = 0.3},
    {C("ce_prob", CE)},
    {C("ce_prob_smooth", CE), .smoothing = 0.15},
    {C("ce_prob_weight_sum", CE), .reduction = LOOM_SUM, .smoothing = 0.15},
    {C("nll", NLL)},
    {C("nll_weight_ignore", NLL), .ignore_index = 2},
    {C("mse", MSE)},
    {C("mse_sum", MSE), .reduction = LOOM_SUM},
    {C("l1", L1)},
    {C("l1_none", L1), .reduction = LOOM_NONE},
    {C("smooth_l1_b05", SMOOTH_L1), .beta = 0.5},
    {C("smooth_l1_b1", SMOOTH_L1), .beta = 1},
    {C("smooth_l1_b1_sum", SMOOTH_L1), .beta = 1, .reduction = LOOM_SUM},
    {C("bce", BCE)},
    {C("bce_weight_sum", BCE), .reduction = LOOM_SUM},
    {C("bce_logits", BCE_LOGITS)},
    {C("bce_logits_weight_pos", BCE_LOGITS)},
    {C("bce_logits_none_pos", BCE_LOGITS), .reduction = LOOM_NONE},
    {C("kl_batchmean", KL), .batchmean = true},
    {C("kl_mean", KL)},
    {C("kl_none", KL), .reduction = LOOM_NONE},
    {C("kl_log_target", KL), .log_target = true, .batchmean = true},
    {C("kl_log_target_sum", KL), .log_target = true, .reduction = LOOM_SUM},
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

static loom_tensor *loss_of(const loss_case *c, const loom_tensor *x,
                            const loom_tensor *t, const loom_tensor *w,
                            const loom_tensor *pw) {
  loom_cross_entropy_opts o = loom_cross_entropy_defaults();
  o.reduction = c->reduction;
  o.ignore_index = c->ignore_index ? c->ignore_index : -100;
  o.label_smoothing = c->smoothing;
  o.weight = w;
  switch (c->kind) {
  case CE:
    return loom_cross_entropy(x, t, &o);
  case NLL:
    return loom_nll_loss(x, t, &o);
  case MSE:
    return loom_mse_loss(x, t, c->reduction);
  case L1:
    return loom_l1_loss(x, t, c->reduction);
  case SMOOTH_L1:
    return loom_smooth_l1_loss(x, t, c->beta, c->reduction);
  case BCE:
    return loom_binary_cross_entropy(x, t, w, c->reduction);
  case BCE_LOGITS:
    return loom_binary_cross_entropy_with_logits(x, t, w, pw, c->reduction);
  case KL:
    return loom_kl_div(x, t, c->log_target, c->reduction, c->batchmean);
  }
  return NULL;
}

START_TEST(test_loss) {
  const loss_case *c = &cases[_i];
  char what[160];
  loom_tensor *x = parity_leaf(parity_ref(ref, c->name, ".in.input"));
  loom_tensor *t = parity_ref(ref, c->name, ".in.target");
  loom_tensor *w = parity_find(ref, c->name, ".in.weight");
  loom_tensor *pw = parity_find(ref, c->name, ".in.pos_weight");
  ck_assert_msg(!pw || c->kind == BCE_LOGITS, "%s: pos_weight", c->name);
  loom_tensor *y = loss_of(c, x, t, w, pw);
  snprintf(what, sizeof what, "%s.out", c->name);
  parity_check(&loss_stat, y, parity_ref(ref, c->name, ".out"), RTOL, ATOL,
               what);
  loom_tensor *r = parity_ref(ref, c->name, ".r");
  ck_assert_int_eq(loom_backward(loom_sum_all(loom_mul(y, r))), 0);
  snprintf(what, sizeof what, "%s.grad.input", c->name);
  parity_check(&loss_stat, loom_grad(x), loom_tensor_map_get(ref, what), RTOL,
               ATOL, what);
  snprintf(what, sizeof what, "%s.grad.", c->name);
  ck_assert_int_eq(parity_count(ref, what, ""), 1);
}
END_TEST

/* Every case in the file has a row in the table above. */
START_TEST(test_every_case_is_run) {
  ck_assert_int_eq(parity_count(ref, "", ".out"), N_CASES);
  for (int i = 0; i < N_CASES; i++)
    ck_assert_msg(parity_find(ref, cases[i].name, ".out") != NULL,
                  "no case '%s' in the file", cases[i].name);
}
END_TEST

/* Class weights of the kept targets summing to 0, -0, a tiny or a negative
 * number (tests/data/loss_edges.safetensors,
 * scripts/gen_loss_edge_reference.py), in float32 and float64: loom's
 * nll_loss gives torch's values and gradients bit for bit, in torch's
 * dtype. cross_entropy gives NaN where torch has NaN, and infinities and
 * zeros with torch's signs; its other values are within a few ulps of the
 * tensor's largest, since
 * loom's log_softmax (its exp, its backward's products) is not torch's to
 * the last bit in float32, nor with label smoothing in float64. */
PARITY_REFERENCE(sums, "loss_edges.safetensors")

/* The same value: both NaN, or equal with the same sign; a finite nonzero
 * want may be off by rtol times `scale`, the largest finite magnitude of
 * its tensor (a gradient that cancels terms of 1e8 in float32 carries
 * their rounding, in torch and in loom alike). */
static bool same_value(double a, double b, double rtol, double scale) {
  if (isnan(b) || isnan(a))
    return isnan(a) && isnan(b);
  if (b == 0 || isinf(b) || rtol == 0)
    return a == b && signbit(a) == signbit(b);
  return fabs(a - b) <= rtol * scale;
}

/* Counts the elements of got that are not want's, printing the first. */
static int differences(const loom_tensor *got, const loom_tensor *want,
                       double rtol, const char *what) {
  if (!got) {
    fprintf(stderr, "%s: no tensor (%s)\n", what, loom_last_error());
    return 1;
  }
  if (!loom_same_shape(got, want) ||
      loom_dtype_of(got) != loom_dtype_of(want)) {
    fprintf(stderr, "%s: %s %s, expected %s %s\n", what,
            loom_dtype_name(loom_dtype_of(got)), loom_shape_text(got),
            loom_dtype_name(loom_dtype_of(want)), loom_shape_text(want));
    return 1;
  }
  int64_t n = loom_numel(want);
  double g[1024], w[1024];
  ck_assert_int_le(n, 1024);
  ck_assert_int_eq(loom_copy_to_array(got, LOOM_F64, g, n), 0);
  ck_assert_int_eq(loom_copy_to_array(want, LOOM_F64, w, n), 0);
  double scale = 0;
  for (int64_t i = 0; i < n; i++)
    if (isfinite(w[i]) && fabs(w[i]) > scale)
      scale = fabs(w[i]);
  int bad = 0;
  for (int64_t i = 0; i < n; i++)
    if (!same_value(g[i], w[i], rtol, scale) && !bad++)
      fprintf(stderr, "%s: element %lld is %.17g, expected %.17g\n", what,
              (long long)i, g[i], w[i]);
  return bad > 0;
}

/* kl_div against probability targets with zeros of both signs, a tiny and
 * a negative one: values and input gradients are torch's to the bit; the
 * target's gradient too, except at a zero target, where torch's is NaN (its
 * xlogy's t / t) and loom's stays 0 -- the target of a distillation whose
 * softmax underflowed would otherwise turn its network into NaN. */
static int kl_differences(const char *name) {
  static const loom_reduction reductions[] = {LOOM_MEAN, LOOM_SUM, LOOM_NONE,
                                              LOOM_SUM};
  const int64_t *opts =
      loom_data_i64(loom_contiguous(parity_ref(sums, name, ".opts")));
  loom_tensor *x = parity_leaf(parity_ref(sums, name, ".in.input"));
  loom_tensor *t = parity_leaf(parity_ref(sums, name, ".in.target"));
  loom_tensor *y = loom_kl_div(x, t, false, reductions[opts[1]], opts[1] == 3);
  char what[160];
  snprintf(what, sizeof what, "%s.out", name);
  int bad = differences(y, parity_ref(sums, name, ".out"), 0, what);
  if (!y)
    return bad;
  ck_assert_int_eq(loom_backward(loom_sum_all(y)), 0);
  snprintf(what, sizeof what, "%s.grad.input", name);
  bad |=
      differences(loom_grad(x), parity_ref(sums, name, ".grad.input"), 0, what);
  loom_tensor *zero = loom_eq_scalar(t, 0);
  loom_tensor *want = parity_ref(sums, name, ".grad.target");
  ck_assert(loom_equal(loom_logical_and(zero, loom_ne(want, want)), zero));
  snprintf(what, sizeof what, "%s.grad.target", name);
  bad |= differences(loom_grad(t), loom_masked_fill(want, zero, 0), 0, what);
  return bad;
}

START_TEST(test_edges) {
  static const loom_reduction reductions[] = {LOOM_MEAN, LOOM_SUM, LOOM_NONE};
  int n_cases = 0, failed = 0;
  for (int i = 0; i < loom_tensor_map_count(sums); i++) {
    const char *key = loom_tensor_map_name(sums, i);
    size_t len = strlen(key);
    if (len < 5 || strcmp(key + len - 5, ".opts") != 0)
      continue;
    char name[128], what[160];
    ck_assert_int_lt(len, sizeof name);
    memcpy(name, key, len - 5);
    name[len - 5] = 0;
    loom_scope *s = loom_scope_begin();
    const int64_t *opts =
        loom_data_i64(loom_contiguous(parity_ref(sums, name, ".opts")));
    if (opts[0] == 2) {
      failed += kl_differences(name);
      n_cases++;
      loom_scope_end(s);
      continue;
    }
    loom_cross_entropy_opts o = loom_cross_entropy_defaults();
    o.reduction = reductions[opts[1]];
    o.ignore_index = opts[2];
    o.label_smoothing = loom_item(parity_ref(sums, name, ".smoothing"));
    o.weight = parity_ref(sums, name, ".in.weight");
    loom_tensor *x = parity_leaf(parity_ref(sums, name, ".in.input"));
    loom_tensor *t = parity_ref(sums, name, ".in.target");
    loom_tensor *y =
        opts[0] ? loom_cross_entropy(x, t, &o) : loom_nll_loss(x, t, &o);
    double rtol = !opts[0] ? 0 : loom_dtype_of(x) == LOOM_F32 ? 1e-6 : 1e-15;
    snprintf(what, sizeof what, "%s.out", name);
    int bad = differences(y, parity_ref(sums, name, ".out"), rtol, what);
    if (y) {
      ck_assert_int_eq(loom_backward(loom_sum_all(y)), 0);
      snprintf(what, sizeof what, "%s.grad.input", name);
      bad |= differences(loom_grad(x), parity_ref(sums, name, ".grad.input"),
                         rtol, what);
    }
    failed += bad;
    n_cases++;
    loom_scope_end(s);
  }
  ck_assert_int_gt(n_cases, 0);
  ck_assert_msg(failed == 0, "%d of %d cases differ from torch", failed,
                n_cases);
}
END_TEST

int main(void) {
  Suite *s = suite_create("loss_parity");
  TCase *tc = tcase_create("losses");
  tcase_add_unchecked_fixture(tc, ref_open, ref_close);
  tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, test_loss, 0, N_CASES);
  tcase_add_test(tc, test_every_case_is_run);
  suite_add_tcase(s, tc);
  TCase *tw = tcase_create("edges");
  tcase_add_unchecked_fixture(tw, sums_open, sums_close);
  tcase_add_checked_fixture(tw, loom_test_setup, loom_test_teardown);
  tcase_add_test(tw, test_edges);
  suite_add_tcase(s, tw);
  int rc = loom_run_suite(s);
  parity_report(&loss_stat);
  return rc;
}
