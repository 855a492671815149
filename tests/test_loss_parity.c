/* PyTorch parity of the losses: each case of
 * tests/data/nn_losses.safetensors (scripts/gen_nn_reference.py) gives the
 * inputs of a torch.nn.functional loss call, its output, and the gradient of
 * sum(out * r) w.r.t. the input (torch's float64 results from the float32
 * inputs), which loom must reproduce. */
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

int main(void) {
  Suite *s = suite_create("loss_parity");
  TCase *tc = tcase_create("losses");
  tcase_add_unchecked_fixture(tc, ref_open, ref_close);
  tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, test_loss, 0, N_CASES);
  tcase_add_test(tc, test_every_case_is_run);
  suite_add_tcase(s, tc);
  int rc = loom_run_suite(s);
  parity_report(&loss_stat);
  return rc;
}
