/* PyTorch parity of the optimizers and learning-rate schedules
 * (tests/data/optim.safetensors and schedules.safetensors, written by
 * scripts/gen_nn_reference.py): the same three parameters, fed the same 20
 * gradients, must follow torch.optim's trajectory step by step: within a
 * tolerance of torch's float64 steps from the same float32 values (so the
 * error measured is loom's own), and bit for bit torch's float32 steps
 * (what a torch user gets); each schedule must give torch's learning
 * rates. */
#include "parity_util.h"

#define STEPS 20
#define N_PARAMS 3

PARITY_REFERENCE(optim_ref, "optim.safetensors")
PARITY_REFERENCE(sched_ref, "schedules.safetensors")
static parity_stat optim_stat = {"optimizers", 0, ""};
static parity_stat sched_stat = {"schedules", 0, ""};

/* ---- optimizers ---- */

typedef struct {
  const char *name;
  loom_optimizer *(*make)(loom_tensor *const *params, const char *name);
} optim_case;

#define IS(s) (strcmp(name, s) == 0)

static loom_optimizer *make_sgd(loom_tensor *const *p, const char *name) {
  loom_sgd_opts o = loom_sgd_defaults(0.1);
  if (IS("sgd_momentum")) {
    o.momentum = 0.9;
    o.dampening = 0.3;
  } else if (IS("sgd_nesterov")) {
    o.lr = 0.05;
    o.momentum = 0.8;
    o.nesterov = true;
  } else if (IS("sgd_weight_decay")) {
    o.momentum = 0.5;
    o.weight_decay = 0.05;
  } else if (IS("sgd_maximize")) {
    o.momentum = 0.9;
    o.maximize = true;
  }
  return loom_sgd_new(p, N_PARAMS, o);
}

static loom_optimizer *make_adam(loom_tensor *const *p, const char *name) {
  loom_adam_opts o = loom_adam_defaults(0.01);
  if (IS("adam_weight_decay")) {
    o.lr = 0.02;
    o.beta1 = 0.8;
    o.beta2 = 0.99;
    o.eps = 1e-6;
    o.weight_decay = 0.1;
  }
  o.amsgrad = IS("adam_amsgrad");
  o.maximize = IS("adam_maximize");
  return loom_adam_new(p, N_PARAMS, o);
}

static loom_optimizer *make_adamw(loom_tensor *const *p, const char *name) {
  loom_adam_opts o = loom_adamw_defaults(0.01);
  if (IS("adamw_decay")) {
    o.lr = 0.03;
    o.weight_decay = 0.2;
  }
  o.amsgrad = IS("adamw_amsgrad");
  return loom_adamw_new(p, N_PARAMS, o);
}

static loom_optimizer *make_rmsprop(loom_tensor *const *p, const char *name) {
  loom_rmsprop_opts o = loom_rmsprop_defaults(0.01);
  if (IS("rmsprop_centered")) {
    o.centered = true;
  } else if (IS("rmsprop_momentum")) {
    o.momentum = 0.9;
    o.alpha = 0.9;
  } else if (IS("rmsprop_weight_decay")) {
    o.weight_decay = 0.1;
    o.centered = true;
    o.momentum = 0.5;
  }
  o.maximize = IS("rmsprop_maximize");
  return loom_rmsprop_new(p, N_PARAMS, o);
}

static loom_optimizer *make_adagrad(loom_tensor *const *p, const char *name) {
  loom_adagrad_opts o = loom_adagrad_defaults(0.1);
  if (IS("adagrad_lr_decay"))
    o.lr_decay = 0.05;
  else if (IS("adagrad_weight_decay"))
    o.weight_decay = 0.1;
  else if (IS("adagrad_initial"))
    o.initial_accumulator_value = 0.5;
  o.maximize = IS("adagrad_maximize");
  return loom_adagrad_new(p, N_PARAMS, o);
}

static const optim_case optim_cases[] = {
    {"sgd_plain", make_sgd},
    {"sgd_momentum", make_sgd},
    {"sgd_nesterov", make_sgd},
    {"sgd_weight_decay", make_sgd},
    {"sgd_maximize", make_sgd},
    {"adam_default", make_adam},
    {"adam_weight_decay", make_adam},
    {"adam_amsgrad", make_adam},
    {"adam_maximize", make_adam},
    {"adamw_default", make_adamw},
    {"adamw_decay", make_adamw},
    {"adamw_amsgrad", make_adamw},
    {"rmsprop_plain", make_rmsprop},
    {"rmsprop_centered", make_rmsprop},
    {"rmsprop_momentum", make_rmsprop},
    {"rmsprop_weight_decay", make_rmsprop},
    {"rmsprop_maximize", make_rmsprop},
    {"adagrad_lr_decay", make_adagrad},
    {"adagrad_weight_decay", make_adagrad},
    {"adagrad_initial", make_adagrad},
    {"adagrad_maximize", make_adagrad},
};
#define N_OPTIM ((int)(sizeof optim_cases / sizeof optim_cases[0]))

/* Row `step` of a (STEPS, P) table cut into the parameters' shapes. */
static loom_tensor *row_part(const loom_tensor *table, int step,
                             const loom_tensor *like, int64_t *offset) {
  loom_tensor *part =
      loom_narrow(loom_select(table, 0, step), 0, *offset, loom_numel(like));
  *offset += loom_numel(like);
  return loom_reshape(part, loom_ndim(like), loom_shape(like));
}

/* A float's place in the order of all floats: two floats' places differ
 * by the ulps between them. */
static int64_t float_place(float x) {
  int32_t bits;
  memcpy(&bits, &x, sizeof bits);
  return bits < 0 ? (int64_t)INT32_MIN - bits : bits;
}

/* The same for a double. */
static int64_t double_place(double x) {
  int64_t bits;
  memcpy(&bits, &x, sizeof bits);
  return bits < 0 ? INT64_MIN - bits : bits;
}

/* After step `step` (from 0), every float32 parameter must hold the bits
 * of torch's float32 step (row `step` of the (STEPS, P) table `want`, the
 * parameters' elements in turn): the message names the first element that
 * differs, by how many ulps, and how many differ in all. */
static void check_bits(const char *name, int step, loom_tensor *const *params,
                       const loom_tensor *want) {
  ck_assert_int_eq(loom_dtype_of(want), LOOM_F32);
  int64_t width = loom_size(want, 1), off = 0;
  const float *row = loom_data_f32(want) + step * width;
  for (int i = 0; i < N_PARAMS; i++) {
    const float *got = loom_data_f32(params[i]);
    int64_t n = loom_numel(params[i]);
    ck_assert_ptr_nonnull(got);
    ck_assert_int_le(off + n, width);
    if (memcmp(got, row + off, (size_t)n * sizeof *got)) {
      int64_t first = -1, differ = 0, most = 0;
      for (int64_t k = 0; k < n; k++) {
        int64_t ulps = llabs(float_place(got[k]) - float_place(row[off + k]));
        if (ulps || memcmp(&got[k], &row[off + k], sizeof *got)) {
          differ++;
          first = first < 0 ? k : first;
          most = ulps > most ? ulps : most;
        }
      }
      ck_abort_msg("%s step %d p%d: element %lld is %.9g, torch's float32 "
                   "step gives %.9g (%lld ulps); %lld of %lld elements "
                   "differ, by up to %lld ulps",
                   name, step + 1, i, (long long)first, (double)got[first],
                   (double)row[off + first],
                   (long long)llabs(float_place(got[first]) -
                                    float_place(row[off + first])),
                   (long long)differ, (long long)n, (long long)most);
    }
    off += n;
  }
  ck_assert_int_eq(off, width);
}

START_TEST(test_optimizer) {
  const optim_case *c = &optim_cases[_i];
  loom_tensor *params[N_PARAMS];
  for (int i = 0; i < N_PARAMS; i++) {
    char name[16];
    snprintf(name, sizeof name, "p%d", i);
    params[i] = parity_leaf(parity_ref(optim_ref, "init.", name));
  }
  loom_tensor *grads = parity_ref(optim_ref, "grads", "");
  loom_tensor *want = parity_ref(optim_ref, c->name, "");
  loom_tensor *want32 = parity_ref(optim_ref, c->name, ".f32");
  loom_optimizer *opt = c->make(params, c->name);
  ck_assert_msg(opt != NULL, "%s: %s", c->name, loom_last_error());
  for (int s = 0; s < STEPS; s++) {
    loom_scope *scope = loom_scope_begin();
    loom_optimizer_zero_grad(opt);
    /* d/dp sum(p * g) = g exactly: the gradient arrives unrounded. */
    loom_tensor *loss = NULL;
    int64_t off = 0;
    for (int i = 0; i < N_PARAMS; i++) {
      loom_tensor *term = loom_sum_all(
          loom_mul(params[i], row_part(grads, s, params[i], &off)));
      loss = loss ? loom_add(loss, term) : term;
    }
    ck_assert_int_eq(loom_backward(loss), 0);
    ck_assert_msg(loom_optimizer_step(opt) == 0, "%s: %s", c->name,
                  loom_last_error());
    off = 0;
    for (int i = 0; i < N_PARAMS; i++) {
      char what[128];
      snprintf(what, sizeof what, "%s step %d p%d", c->name, s + 1, i);
      parity_check(&optim_stat, params[i], row_part(want, s, params[i], &off),
                   1e-6, 1e-7, what);
    }
    check_bits(c->name, s, params, want32);
    loom_scope_end(scope);
  }
  loom_optimizer_free(opt);
}
END_TEST

START_TEST(test_every_optimizer_is_run) {
  /* init.p0-2 and grads, then two tables per case (float64, float32) */
  ck_assert_int_eq(loom_tensor_map_count(optim_ref),
                   N_PARAMS + 1 + 2 * N_OPTIM);
  for (int i = 0; i < N_OPTIM; i++)
    ck_assert_msg(parity_find(optim_ref, optim_cases[i].name, "") != NULL &&
                      parity_find(optim_ref, optim_cases[i].name, ".f32") !=
                          NULL,
                  "no case '%s' (and '%s.f32') in the file",
                  optim_cases[i].name, optim_cases[i].name);
}
END_TEST

/* ---- schedules ---- */

typedef struct {
  const char *name;
  double lr;
  loom_schedule_opts (*opts)(void);
  int ulps; /* how far from torch's learning rates loom's may be */
} sched_case;

static loom_schedule_opts s_step(void) {
  loom_schedule_opts o = loom_schedule_defaults(LOOM_SCHEDULE_STEP);
  o.step_size = 3;
  o.gamma = 0.5;
  return o;
}
static loom_schedule_opts s_multistep(void) {
  loom_schedule_opts o = loom_schedule_defaults(LOOM_SCHEDULE_MULTISTEP);
  o.milestones[0] = 2;
  o.milestones[1] = 5;
  o.milestones[2] = 11;
  o.n_milestones = 3;
  o.gamma = 0.3;
  return o;
}
static loom_schedule_opts s_exponential(void) {
  loom_schedule_opts o = loom_schedule_defaults(LOOM_SCHEDULE_EXPONENTIAL);
  o.gamma = 0.9;
  return o;
}
static loom_schedule_opts s_cosine(void) {
  loom_schedule_opts o = loom_schedule_defaults(LOOM_SCHEDULE_COSINE);
  o.t_max = 8;
  o.eta_min = 0.001;
  return o;
}
static loom_schedule_opts s_linear(void) {
  loom_schedule_opts o = loom_schedule_defaults(LOOM_SCHEDULE_LINEAR);
  o.start_factor = 0.25;
  o.total_iters = 6;
  return o;
}
static loom_schedule_opts s_noam(void) {
  loom_schedule_opts o = loom_schedule_defaults(LOOM_SCHEDULE_NOAM);
  o.d_model = 16;
  o.warmup = 4;
  return o;
}
static loom_schedule_opts s_plateau_min(void) {
  loom_schedule_opts o = loom_schedule_defaults(LOOM_SCHEDULE_PLATEAU);
  o.factor = 0.5;
  o.patience = 2;
  o.cooldown = 1;
  return o;
}
static loom_schedule_opts s_plateau_max_abs(void) {
  loom_schedule_opts o = loom_schedule_defaults(LOOM_SCHEDULE_PLATEAU);
  o.mode_max = true;
  o.factor = 0.3;
  o.patience = 2;
  o.cooldown = 1;
  o.threshold = 0.05;
  o.threshold_abs = true;
  o.min_lr = 0.002;
  return o;
}

/* loom computes each learning rate in closed form from the epoch, where
 * torch (but for LambdaLR, noam here) chains each from the one before;
 * the ulps allowed are those measured. Exact here: step (gamma 0.5, so
 * every product is exact; another gamma would drift as exponential does),
 * multistep (three milestones, three products) and plateau (loom chains
 * as torch does). 1 ulp: linear (torch multiplies the last rate by a
 * ratio) and noam (torch's lambda is base * (d ** -0.5 * min(step ** -0.5,
 * ...)), loom's base / sqrt(d) * min(1 / sqrt(step), ...)). More:
 * exponential (torch multiplies by gamma once a step, loom takes
 * pow(gamma, epoch): 3 ulps at epoch 18) and cosine (torch's recurrence
 * multiplies the last rate by a ratio of cosines: 12 ulps at epoch 10);
 * chained rounding drifts with the epochs, the closed form does not. */
static const sched_case sched_cases[] = {
    {"step", 0.1, s_step, 0},
    {"multistep", 0.1, s_multistep, 0},
    {"exponential", 0.1, s_exponential, 3},
    {"cosine", 0.1, s_cosine, 12},
    {"linear", 0.1, s_linear, 1},
    {"noam", 2.0, s_noam, 1},
    {"plateau_min", 0.1, s_plateau_min, 0},
    {"plateau_max_abs", 0.1, s_plateau_max_abs, 0},
};
#define N_SCHED ((int)(sizeof sched_cases / sizeof sched_cases[0]))

START_TEST(test_schedule) {
  const sched_case *c = &sched_cases[_i];
  const loom_tensor *want = parity_ref(sched_ref, c->name, "");
  const loom_tensor *metric = parity_find(sched_ref, c->name, ".metric");
  loom_tensor *p =
      loom_set_requires_grad(loom_zeros(LOOM_F32, LOOM_SHAPE(1)), true);
  loom_optimizer *opt = loom_sgd_new(&p, 1, loom_sgd_defaults(c->lr));
  ck_assert_loom(opt);
  loom_schedule *s = loom_schedule_new(opt, c->opts());
  ck_assert_msg(s != NULL, "%s: %s", c->name, loom_last_error());
  ck_assert_int_eq(loom_numel(want), STEPS + 1);
  double lrs[STEPS + 1];
  lrs[0] = loom_optimizer_lr(opt);
  for (int e = 1; e <= STEPS; e++) {
    double m = metric ? loom_get(metric, (int64_t[]){e - 1}) : 0;
    double lr = loom_schedule_step(s, m);
    ck_assert(lr == loom_optimizer_lr(opt));
    lrs[e] = lr;
  }
  loom_tensor *got = loom_from_array(LOOM_F64, lrs, LOOM_SHAPE(STEPS + 1));
  char what[128];
  snprintf(what, sizeof what, "%s lr", c->name);
  parity_check(&sched_stat, got, want, 1e-12, 0, what);
  ck_assert_int_eq(loom_dtype_of(want), LOOM_F64);
  const double *w = loom_data_f64(want);
  for (int e = 0; e <= STEPS; e++) {
    int64_t ulps = llabs(double_place(lrs[e]) - double_place(w[e]));
    ck_assert_msg(ulps <= c->ulps,
                  "%s: the lr after %d steps is %.17g, torch's %.17g: %lld "
                  "ulps apart, more than %d",
                  c->name, e, lrs[e], w[e], (long long)ulps, c->ulps);
  }
  loom_schedule_free(s);
  loom_optimizer_free(opt);
}
END_TEST

START_TEST(test_every_schedule_is_run) {
  int metrics = parity_count(sched_ref, "", ".metric");
  ck_assert_int_eq(loom_tensor_map_count(sched_ref) - metrics, N_SCHED);
  for (int i = 0; i < N_SCHED; i++)
    ck_assert_msg(parity_find(sched_ref, sched_cases[i].name, "") != NULL,
                  "no case '%s' in the file", sched_cases[i].name);
}
END_TEST

int main(void) {
  Suite *s = suite_create("optim_parity");
  TCase *tc = tcase_create("optim");
  tcase_add_unchecked_fixture(tc, optim_ref_open, optim_ref_close);
  tcase_add_unchecked_fixture(tc, sched_ref_open, sched_ref_close);
  tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, test_optimizer, 0, N_OPTIM);
  tcase_add_test(tc, test_every_optimizer_is_run);
  tcase_add_loop_test(tc, test_schedule, 0, N_SCHED);
  tcase_add_test(tc, test_every_schedule_is_run);
  suite_add_tcase(s, tc);
  int rc = loom_run_suite(s);
  parity_report(&optim_stat);
  parity_report(&sched_stat);
  return rc;
}
