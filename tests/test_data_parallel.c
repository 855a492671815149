/* Data parallelism (nn/data_parallel.c), run as every rank of a world
 * (`mpirun -np P test_data_parallel --ranks P`, P = 2 and 3 in the suite)
 * and as a world of one.
 *
 * The central claim: P ranks, each with B/P rows of every global batch of
 * B, train as one process with the whole batch. Every rank checks it
 * against a reference it trains itself, alone, on the whole batches. The
 * two differ only in rounding: the reference's gradient sums B rows in one
 * product, the ranks' sums of B/P rows are added by the all-reduce and
 * scaled by 1/P. Adam then divides each element's step by that element's
 * own running scale, which turns an absolute rounding difference in a
 * small gradient element into a step difference lr / sqrt(v) times larger,
 * so the models' distance grows with the learning rate: after 6 steps in
 * float32, over 8 data seeds with 2 and 3 ranks, 1.5e-8 to 3.7e-7 at
 * lr 1e-3 (used here; the tolerance is 1e-6), but up to 3.7e-6 at lr 1e-2.
 * In float64 the same is ~1e-15 (tolerance 1e-12). The parameters move by
 * ~6e-3 meanwhile, so a rank whose rows went missing would fail. */
#include "dist_util.h"

#include <string.h>

static int rank_, size_;

/* ---- a small character language model ---- */

#define V 7  /* vocabulary */
#define T 5  /* steps per sequence */
#define B 12 /* global batch: 2, 3 or 4 ranks take equal parts */
#define N 48 /* sequences in the data */

typedef struct {
  loom_module base;
  loom_embedding_layer *embed;
  loom_rnn *lstm;
  loom_linear_layer *head;
  loom_linear_layer *unused; /* a parameter no forward reads */
} lm;

static lm *lm_new(uint64_t seed, int64_t hidden, bool with_unused) {
  loom_manual_seed(seed);
  lm *m = calloc(1, sizeof *m);
  loom_module_init(&m->base, "LM", NULL);
  m->embed = (loom_embedding_layer *)loom_module_add_child(
      &m->base, "embed", (loom_module *)loom_embedding_layer_new(V, 4, -1));
  m->lstm = (loom_rnn *)loom_module_add_child(
      &m->base, "lstm",
      (loom_module *)loom_lstm_new((loom_rnn_opts){
          .input_size = 4, .hidden_size = hidden, .num_layers = 2}));
  m->head = (loom_linear_layer *)loom_module_add_child(
      &m->base, "head", (loom_module *)loom_linear_layer_new(hidden, V, true));
  if (with_unused)
    m->unused = (loom_linear_layer *)loom_module_add_child(
        &m->base, "unused", (loom_module *)loom_linear_layer_new(3, 2, false));
  ck_assert_loom(m->head);
  return m;
}

/* The data: N sequences of T + 1 ids, the same on every rank. */
static int64_t data[N][T + 1];

static void make_data(void) {
  loom_rng *g = loom_rng_new(99);
  for (int i = 0; i < N; i++)
    for (int t = 0; t <= T; t++)
      data[i][t] = (int64_t)(loom_rng_u64(g) % V);
  loom_rng_free(g);
}

/* The mean cross-entropy of the model on sequences rows[0..n). */
static loom_tensor *lm_loss_of(lm *m, const int64_t *rows, int n) {
  int64_t x[T * B], y[T * B];
  for (int t = 0; t < T; t++)
    for (int b = 0; b < n; b++) {
      x[t * n + b] = data[rows[b]][t];
      y[t * n + b] = data[rows[b]][t + 1];
    }
  loom_tensor *xt = loom_from_array(LOOM_I64, x, LOOM_SHAPE(T, n));
  loom_tensor *yt = loom_from_array(LOOM_I64, y, LOOM_SHAPE(T * n));
  loom_tensor *h;
  if (loom_rnn_forward(m->lstm, loom_embedding_layer_forward(m->embed, xt),
                       NULL, NULL, &h, NULL) < 0)
    return NULL;
  loom_tensor *logits = loom_linear_layer_forward(m->head, h);
  return loom_cross_entropy(loom_reshape(logits, 2, (int64_t[]){T * n, V}), yt,
                            NULL);
}

/* The same on sequences first..first+n-1. */
static loom_tensor *lm_loss(lm *m, int first, int n) {
  int64_t rows[B];
  for (int b = 0; b < n; b++)
    rows[b] = first + b;
  return lm_loss_of(m, rows, n);
}

/* The largest |a - b| elementwise. */
static double max_abs_difference(const loom_tensor *a, const loom_tensor *b) {
  ck_assert_loom(a);
  ck_assert_loom(b);
  int64_t n = loom_numel(a);
  ck_assert_int_eq(loom_numel(b), n);
  double *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
  ck_assert_int_eq(loom_copy_to_array(a, LOOM_F64, x, n), 0);
  ck_assert_int_eq(loom_copy_to_array(b, LOOM_F64, y, n), 0);
  double worst = 0;
  for (int64_t i = 0; i < n; i++)
    worst = fmax(worst, fabs(x[i] - y[i]));
  free(x);
  free(y);
  return worst;
}

/* The same over two models' parameters (grads: their gradients). */
static double max_difference_of(lm *a, lm *b, bool grads) {
  loom_tensor *pa[32], *pb[32];
  int n = loom_module_parameters(&a->base, pa, 32);
  ck_assert_int_eq(loom_module_parameters(&b->base, pb, 32), n);
  double worst = 0;
  for (int i = 0; i < n; i++)
    worst = fmax(worst,
                 grads ? max_abs_difference(loom_grad(pa[i]), loom_grad(pb[i]))
                       : max_abs_difference(pa[i], pb[i]));
  return worst;
}

static double max_difference(lm *a, lm *b) {
  return max_difference_of(a, b, false);
}

static double max_grad_difference(lm *a, lm *b) {
  return max_difference_of(a, b, true);
}

static loom_optimizer *adam_of(lm *m) {
  loom_tensor *p[32];
  int n = loom_module_parameters(&m->base, p, 32);
  loom_optimizer *o = loom_adam_new(p, n, loom_adam_defaults(1e-3));
  ck_assert_loom(o);
  return o;
}

/* K Adam steps on global batches of B in the sampler's seeded order: the
 * ranks, each with its part of each batch, against one process with all
 * of it. */
static void check_equal_to_one_process(loom_dtype dtype, double tol) {
  loom_dtype before = loom_set_default_dtype(dtype);
  enum { K = 6 };
  lm *ref = lm_new(1, 16, false);
  /* other ranks start elsewhere: the wrapper copies rank 0's values */
  lm *dist = lm_new(1 + (uint64_t)rank_, 16, false);
  loom_data_parallel *dp = loom_data_parallel_new(&dist->base, NULL);
  ck_assert_loom(dp);
  ck_assert_double_eq(max_difference(ref, dist), 0);
  loom_optimizer *o_ref = adam_of(ref), *o_dist = adam_of(dist);
  loom_dist_sampler *sampler = loom_dist_sampler_new(N, B, 17, true);
  int64_t per_epoch = loom_dist_sampler_batches(sampler);
  for (int k = 0; k < K; k++) {
    loom_scope *s = loom_scope_begin();
    int64_t all[B], mine[B];
    ck_assert_int_eq(loom_dist_sampler_items(sampler, k / per_epoch,
                                             k % per_epoch, true, all, B),
                     B);
    int64_t n = loom_dist_sampler_items(sampler, k / per_epoch, k % per_epoch,
                                        false, mine, B);
    ck_assert_int_eq(n, B / size_);
    loom_optimizer_zero_grad(o_ref);
    loom_optimizer_zero_grad(o_dist);
    ck_assert_int_eq(loom_backward(lm_loss_of(ref, all, B)), 0);
    ck_assert_int_eq(loom_backward(lm_loss_of(dist, mine, (int)n)), 0);
    ck_assert_int_eq(loom_data_parallel_wait(dp), 0);
    ck_assert_int_eq(loom_optimizer_step(o_ref), 0);
    ck_assert_int_eq(loom_optimizer_step(o_dist), 0);
    loom_scope_end(s);
  }
  double worst = max_difference(ref, dist);
  if (rank_ == 0) /* for the log: how close, against what tolerance */
    fprintf(stderr,
            "%s: %d ranks vs one process, after %d steps: %.3g (<= %g)\n",
            loom_dtype_name(dtype), size_, K, worst, tol);
  ck_assert_msg(worst <= tol, "%s: the ranks' model is %g from one process's",
                loom_dtype_name(dtype), worst);
  ck_assert_int_eq(loom_data_parallel_check_in_sync(dp), 0);
  loom_data_parallel_stats st = loom_data_parallel_stats_of(dp);
  ck_assert_int_eq(st.steps, K);
  ck_assert_int_ge(st.buckets, 1);
  loom_dist_sampler_free(sampler);
  loom_optimizer_free(o_ref);
  loom_optimizer_free(o_dist);
  loom_data_parallel_free(dp);
  loom_module_free(&ref->base);
  loom_module_free(&dist->base);
  loom_set_default_dtype(before);
}

START_TEST(test_equal_to_one_process_float64) {
  check_equal_to_one_process(LOOM_F64, 1e-12);
}
END_TEST

START_TEST(test_equal_to_one_process_float32) {
  check_equal_to_one_process(LOOM_F32, 1e-6);
}
END_TEST

/* Small buckets (several per step, some parameters larger than one): the
 * result is exactly what a plain all-reduce of each gradient gives, before
 * and after replanning, with the hooks alone or also a progress thread
 * moving the buckets along. */
START_TEST(test_buckets_equal_plain_all_reduce) {
  loom_dtype before = loom_set_default_dtype(LOOM_F64);
  lm *m = lm_new(3, 12, false);
  loom_data_parallel *dp = loom_data_parallel_new(
      &m->base, &(loom_data_parallel_opts){.bucket_bytes = 1000,
                                           .progress_us = _i ? 20 : 0});
  ck_assert_loom(dp);
  loom_tensor *p[32], *want[32];
  int n = loom_module_parameters(&m->base, p, 32);
  for (int step = 0; step < 2; step++) {
    loom_module_zero_grad(&m->base);
    ck_assert_int_eq(loom_backward(lm_loss(m, 4 * rank_ + step, 4)), 0);
    for (int i = 0; i < n; i++) {
      want[i] = loom_clone(loom_grad(p[i]));
      ck_assert_int_eq(loom_dist_all_reduce(want[i], LOOM_DIST_MEAN), 0);
    }
    ck_assert_int_eq(loom_data_parallel_wait(dp), 0);
    /* two ranks add the same two numbers either way; more may add them
     * in another order than MPI's all-reduce */
    for (int i = 0; i < n; i++)
      ck_assert_msg(size_ <= 2
                        ? loom_equal(loom_grad(p[i]), want[i])
                        : loom_allclose(loom_grad(p[i]), want[i], 1e-14, 1e-16),
                    "step %d: parameter %d differs", step, i);
  }
  ck_assert_int_gt(loom_data_parallel_stats_of(dp).buckets, 3);
  loom_data_parallel_free(dp);
  loom_module_free(&m->base);
  loom_set_default_dtype(before);
}
END_TEST

/* After a wait each gradient is its part of a bucket; a step that does not
 * zero them adds into those parts, and the wait averages the sums: the
 * last average plus the average of the new gradients, which a twin model
 * computes from zero. */
START_TEST(test_gradients_not_zeroed_between_steps) {
  loom_dtype before = loom_set_default_dtype(LOOM_F64);
  lm *m = lm_new(4, 8, false), *twin = lm_new(4, 8, false);
  loom_data_parallel *dp = loom_data_parallel_new(
      &m->base, &(loom_data_parallel_opts){.bucket_bytes = 700});
  ck_assert_loom(dp);
  ck_assert_int_eq(loom_backward(lm_loss(m, 2 * rank_, 2)), 0);
  ck_assert_int_eq(loom_data_parallel_wait(dp), 0);
  loom_tensor *p[32], *q[32], *want[32];
  int n = loom_module_parameters(&m->base, p, 32);
  loom_module_parameters(&twin->base, q, 32);
  for (int i = 0; i < n; i++) {
    loom_no_grad_begin();
    ck_assert_loom(loom_copy_(q[i], p[i])); /* rank 0's values, like m */
    loom_no_grad_end();
    want[i] = loom_clone(loom_grad(p[i]));
  }
  ck_assert_int_eq(loom_backward(lm_loss(m, 2 * rank_ + 1, 2)), 0);
  ck_assert_int_eq(loom_backward(lm_loss(twin, 2 * rank_ + 1, 2)), 0);
  ck_assert_int_eq(loom_data_parallel_wait(dp), 0);
  for (int i = 0; i < n; i++) {
    loom_tensor *fresh = loom_clone(loom_grad(q[i]));
    ck_assert_int_eq(loom_dist_all_reduce(fresh, LOOM_DIST_MEAN), 0);
    want[i] = loom_add(want[i], fresh);
    ck_assert_msg(loom_allclose(loom_grad(p[i]), want[i], 1e-14, 1e-16),
                  "parameter %d differs", i);
  }
  loom_data_parallel_free(dp);
  loom_module_free(&m->base);
  loom_module_free(&twin->base);
  loom_set_default_dtype(before);
}
END_TEST

/* Two micro-batches per rank, the first inside no_sync, equal one batch of
 * all of their rows in one process; without no_sync the second backward
 * is refused, naming a parameter. */
START_TEST(test_no_sync_accumulation) {
  loom_dtype before = loom_set_default_dtype(LOOM_F64);
  lm *one = lm_new(5, 8, false), *m = lm_new(5, 8, false);
  loom_data_parallel *dp = loom_data_parallel_new(&m->base, NULL);
  ck_assert_loom(dp);
  int rows = 4 * size_;
  ck_assert_int_eq(loom_backward(lm_loss(one, 0, rows)), 0);
  int start = 4 * rank_;
  loom_data_parallel_no_sync_begin(dp);
  ck_assert_int_eq(loom_backward(loom_mul_scalar(lm_loss(m, start, 2), 0.5)),
                   0);
  ck_assert_int_eq(loom_data_parallel_wait(dp), 0); /* nothing to do */
  loom_data_parallel_no_sync_end(dp);
  ck_assert_int_eq(loom_data_parallel_stats_of(dp).steps, 0);
  ck_assert_int_eq(
      loom_backward(loom_mul_scalar(lm_loss(m, start + 2, 2), 0.5)), 0);
  ck_assert_int_eq(loom_data_parallel_wait(dp), 0);
  double worst = max_grad_difference(one, m);
  ck_assert_msg(worst <= 1e-15, "accumulated gradients differ by %g", worst);

  loom_module_zero_grad(&m->base);
  ck_assert_int_eq(loom_backward(lm_loss(m, start, 2)), 0);
  ck_assert_int_eq(loom_backward(lm_loss(m, start + 2, 2)), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_STATE);
  /* the head's weight or bias: the first the pass finishes */
  ck_assert_msg(strstr(loom_last_error(), "the gradient of head.") &&
                    strstr(loom_last_error(), "twice in one step"),
                "%s", loom_last_error());
  loom_clear_error();
  /* the step can still be finished, on every rank alike */
  ck_assert_int_eq(loom_data_parallel_wait(dp), 0);
  loom_data_parallel_free(dp);
  loom_module_free(&m->base);
  loom_module_free(&one->base);
  loom_set_default_dtype(before);
}
END_TEST

/* A parameter no rank uses keeps no gradient; one only rank 0 uses (the
 * head, when other ranks skip their forward), or a rank that runs no
 * backward at all, makes no one wait: the gradient is rank 0's divided by
 * the number of ranks, everywhere. */
START_TEST(test_parameters_without_gradient) {
  loom_dtype before = loom_set_default_dtype(LOOM_F64);
  lm *m = lm_new(7, 8, true), *alone = lm_new(7, 8, true);
  loom_data_parallel *dp = loom_data_parallel_new(&m->base, NULL);
  ck_assert_loom(dp);
  if (rank_ == 0)
    ck_assert_int_eq(loom_backward(lm_loss(m, 0, 4)), 0);
  ck_assert_int_eq(loom_backward(lm_loss(alone, 0, 4)), 0);
  ck_assert_int_eq(loom_data_parallel_wait(dp), 0);
  ck_assert_ptr_null(loom_grad(m->unused->weight));
  loom_tensor *want = loom_div_scalar(loom_grad(alone->head->weight), size_);
  ck_assert_msg(loom_allclose(loom_grad(m->head->weight), want, 0, 1e-15),
                "the head's gradient is not rank 0's / %d", size_);
  /* and training goes on, in step */
  loom_optimizer *o = adam_of(m);
  ck_assert_int_eq(loom_optimizer_step(o), 0);
  loom_module_zero_grad(&m->base);
  ck_assert_int_eq(loom_backward(lm_loss(m, 4 + rank_, 1)), 0);
  ck_assert_int_eq(loom_data_parallel_wait(dp), 0);
  ck_assert_int_eq(loom_optimizer_step(o), 0);
  ck_assert_int_eq(loom_data_parallel_check_in_sync(dp), 0);
  loom_optimizer_free(o);
  loom_data_parallel_free(dp);
  loom_module_free(&m->base);
  loom_module_free(&alone->base);
  loom_set_default_dtype(before);
}
END_TEST

/* Models that differ across ranks are refused on every rank, naming the
 * first tensor that differs and the rank. */
START_TEST(test_mismatched_models_refused) {
  struct {
    int64_t hidden;
    bool unused;
    const char *says;
  } cases[] = {
      {6, false,
       "loom_data_parallel_new: the model differs across ranks: tensor 1 is "
       "`lstm.weight_ih_l0 float32 [32, 4]` on rank 0 but `lstm.weight_ih_l0 "
       "float32 [24, 4]` on rank 1"},
      {8, true,
       "loom_data_parallel_new: the model differs across ranks: tensor 11 is "
       "`(none)` on rank 0 but `unused.weight float32 [2, 3]` on rank 1"},
  };
  for (int c = 0; c < 2; c++) {
    bool odd = rank_ == 1;
    lm *m = lm_new(9, odd ? cases[c].hidden : 8, odd && cases[c].unused);
    loom_data_parallel *dp = loom_data_parallel_new(&m->base, NULL);
    if (size_ == 1) {
      ck_assert_loom(dp);
    } else {
      ck_assert_ptr_null(dp);
      ck_assert_str_eq(loom_last_error(), cases[c].says);
      loom_clear_error();
    }
    loom_data_parallel_free(dp);
    loom_module_free(&m->base);
  }
}
END_TEST

/* The sync check finds a parameter changed on one rank only. */
START_TEST(test_check_in_sync_finds_drift) {
  lm *m = lm_new(11, 8, false);
  loom_data_parallel *dp = loom_data_parallel_new(&m->base, NULL);
  ck_assert_loom(dp);
  ck_assert_int_eq(loom_data_parallel_check_in_sync(dp), 0);
  if (rank_ == size_ - 1) {
    loom_no_grad_begin();
    loom_mul_scalar_(m->head->bias, 1.5);
    loom_no_grad_end();
  }
  int rc = loom_data_parallel_check_in_sync(dp);
  if (size_ == 1) {
    ck_assert_int_eq(rc, 0); /* nothing to differ from */
  } else {
    ck_assert_int_eq(rc, -1);
    ck_assert_str_eq(loom_last_error(),
                     "data parallel: the ranks' models have drifted apart: "
                     "head.bias is the first parameter that differs");
    loom_clear_error();
  }
  loom_data_parallel_free(dp);
  loom_module_free(&m->base);
}
END_TEST

START_TEST(test_bad_options) {
  lm *m = lm_new(13, 8, false);
  ck_assert_ptr_null(loom_data_parallel_new(
      &m->base, &(loom_data_parallel_opts){.bucket_bytes = -1}));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(loom_last_error(), "1..2^30"));
  loom_clear_error();
  ck_assert_ptr_null(loom_data_parallel_new(
      &m->base, &(loom_data_parallel_opts){.progress_us = -1}));
  ck_assert_ptr_nonnull(strstr(loom_last_error(), "[0, 1e6]"));
  loom_clear_error();
  ck_assert_ptr_null(loom_data_parallel_new(NULL, NULL));
  loom_clear_error();
  loom_module_free(&m->base);
}
END_TEST

int main(int argc, char **argv) {
  int status = dist_test_start(&argc, &argv);
  if (status >= 0)
    return status;
  rank_ = loom_dist_rank();
  size_ = loom_dist_size();
  make_data();
  Suite *s = suite_create("data_parallel");
  TCase *tc = tcase_create("data_parallel");
  tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_equal_to_one_process_float64);
  tcase_add_test(tc, test_equal_to_one_process_float32);
  tcase_add_loop_test(tc, test_buckets_equal_plain_all_reduce, 0, 2);
  tcase_add_test(tc, test_gradients_not_zeroed_between_steps);
  tcase_add_test(tc, test_no_sync_accumulation);
  tcase_add_test(tc, test_parameters_without_gradient);
  tcase_add_test(tc, test_mismatched_models_refused);
  tcase_add_test(tc, test_check_in_sync_finds_drift);
  tcase_add_test(tc, test_bad_options);
  suite_add_tcase(s, tc);
  return dist_run_suite(s);
}
