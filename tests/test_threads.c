/* Threads sharing one model: several threads run forward passes of shared
 * modules (a linear layer, LSTMs through the sequence runner, fused and step
 * by step, a transformer encoder layer with its multi-head attention, a
 * product big enough for loom's worker pool), each with its own scopes and
 * tape, under no_grad and while recording, with backward into thread-private
 * inputs. Every thread must get exactly what one thread alone gets, and the
 * shared parameters' gradients must hold every thread's contribution. Run
 * under ThreadSanitizer in CI (.ci/run). */
#include "check_values.h"

#include "../tensor/internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#define THREADS 4
#define ROUNDS 2
#define OUTPUTS 5

/* The shared model, made and owned by the main thread. */
static struct {
  loom_linear_layer *lin;
  loom_rnn *lstm, *lstm_steps;
  loom_transformer_encoder_layer *enc;
  loom_tensor *big_w; /* 192 x 192, for a product that uses the pool */
} model;

/* What a pass computes: a hash of every output and input gradient, as
 * doubles (exact: a thread must get the same bits as one thread alone). */
typedef struct {
  uint64_t hash[2 * OUTPUTS];
  int64_t n[2 * OUTPUTS];
} pass_result;

static pass_result expected[THREADS][2]; /* [seed][grad] */

static void digest(const loom_tensor *t, uint64_t *hash, int64_t *n) {
  *n = t ? loom_numel(t) : -1;
  *hash = 1469598103934665603u; /* FNV-1a */
  double *v = *n > 0 ? malloc((size_t)*n * sizeof *v) : NULL;
  if (*n > 0 && (!v || loom_copy_to_array(t, LOOM_F64, v, *n) < 0))
    *n = -2;
  for (int64_t i = 0; v && *n > 0 && i < *n; i++) {
    uint64_t bits;
    memcpy(&bits, &v[i], sizeof bits);
    *hash = (*hash ^ bits) * 1099511628211u;
  }
  free(v);
}

/* One pass over every shared module with inputs drawn from `seed`; with
 * grad, backward of the sum of squares into the inputs (and, through them,
 * the shared parameters). 0, or -1 with an error. */
static int pass(int seed, bool grad, pass_result *r) {
  loom_scope *s = loom_scope_begin();
  loom_rng *g = loom_rng_new((uint64_t)seed + 1);
  loom_tensor *x[OUTPUTS] = {
      loom_randn(g, LOOM_F32, 0, 1, LOOM_SHAPE(5, 8)),
      loom_randn(g, LOOM_F32, 0, 1, LOOM_SHAPE(6, 3, 8)),
      loom_randn(g, LOOM_F32, 0, 1, LOOM_SHAPE(6, 3, 8)),
      loom_randn(g, LOOM_F32, 0, 1, LOOM_SHAPE(7, 2, 16)),
      loom_randn(g, LOOM_F32, 0, 0.1, LOOM_SHAPE(192, 192))};
  loom_rng_free(g);
  if (!grad)
    loom_no_grad_begin();
  for (int i = 0; grad && i < OUTPUTS; i++)
    loom_set_requires_grad(x[i], true);
  loom_tensor *y[OUTPUTS];
  y[0] = loom_linear_layer_forward(model.lin, x[0]);
  loom_tensor *h[2];
  if (loom_rnn_forward(model.lstm, x[1], NULL, NULL, &y[1], h) < 0 ||
      loom_rnn_forward(model.lstm_steps, x[2], NULL, NULL, &y[2], NULL) < 0)
    y[1] = y[2] = NULL;
  y[3] = loom_transformer_encoder_layer_forward(model.enc, x[3], NULL);
  y[4] = loom_tanh(loom_matmul(x[4], model.big_w));
  int rc = 0;
  for (int i = 0; i < OUTPUTS; i++)
    if (!y[i])
      rc = -1;
  if (rc == 0 && grad) {
    loom_tensor *loss = loom_sum_all(loom_square(y[0]));
    for (int i = 1; i < OUTPUTS; i++)
      loss = loom_add(loss, loom_sum_all(loom_square(y[i])));
    rc = loss ? loom_backward(loss) : -1;
  }
  for (int i = 0; rc == 0 && i < OUTPUTS; i++) {
    digest(y[i], &r->hash[i], &r->n[i]);
    digest(grad ? loom_grad(x[i]) : NULL, &r->hash[OUTPUTS + i],
           &r->n[OUTPUTS + i]);
  }
  if (!grad)
    loom_no_grad_end();
  loom_scope_end(s);
  return rc;
}

typedef struct {
  int index;
  int mismatches;
  char error[512];
  pass_result got;
} worker;

static void *run(void *arg) {
  worker *w = arg;
  for (int round = 0; round < ROUNDS; round++)
    for (int grad = 0; grad < 2; grad++) {
      int seed = (w->index + round) % THREADS;
      if (pass(seed, grad, &w->got) < 0) {
        snprintf(w->error, sizeof w->error, "%s", loom_last_error());
        loom_cleanup();
        return NULL;
      }
      const pass_result *want = &expected[seed][grad];
      for (int k = 0; k < 2 * OUTPUTS; k++)
        if (w->got.n[k] != want->n[k] || w->got.hash[k] != want->hash[k])
          w->mismatches++;
    }
  loom_cleanup(); /* the thread's scopes, tape and free lists */
  return NULL;
}

static loom_tensor *params[64];
static int n_params;

/* Each parameter's gradient as doubles, then cleared. */
static void take_grads(double **out) {
  for (int i = 0; i < n_params; i++) {
    loom_tensor *gr = loom_grad(params[i]);
    int64_t n = loom_numel(params[i]);
    out[i] = calloc((size_t)n, sizeof **out);
    ck_assert_ptr_nonnull(out[i]);
    if (gr)
      ck_assert_int_eq(loom_copy_to_array(gr, LOOM_F64, out[i], n), 0);
    loom_zero_grad(params[i]);
  }
}

static void make_model(void) {
  loom_manual_seed(7);
  model.lin = loom_linear_layer_new(8, 16, true);
  loom_rnn_opts o = {.input_size = 8,
                     .hidden_size = 12,
                     .num_layers = 2,
                     .bidirectional = true};
  model.lstm = loom_lstm_new(o);
  o.step_by_step = true; /* the cell's loom_linear with packed weights */
  model.lstm_steps = loom_lstm_new(o);
  model.enc = loom_transformer_encoder_layer_new((loom_transformer_opts){
      .d_model = 16, .nhead = 2, .dim_feedforward = 32});
  ck_assert_loom(model.lin);
  ck_assert_loom(model.lstm);
  ck_assert_loom(model.lstm_steps);
  ck_assert_loom(model.enc);
  loom_scope *s = loom_scope_begin();
  model.big_w = loom_keep(loom_set_requires_grad(
      loom_randn(NULL, LOOM_F32, 0, 0.1, LOOM_SHAPE(192, 192)), true));
  loom_scope_end(s);
  n_params = 0;
  loom_module *mods[] = {&model.lin->base, &model.lstm->base,
                         &model.lstm_steps->base, &model.enc->base};
  for (int i = 0; i < 4; i++)
    n_params +=
        loom_module_parameters(mods[i], params + n_params, 63 - n_params);
  params[n_params++] = model.big_w;
  ck_assert_int_le(n_params, 64);
}

static void free_model(void) {
  loom_linear_layer_free(model.lin);
  loom_rnn_free(model.lstm);
  loom_rnn_free(model.lstm_steps);
  loom_transformer_encoder_layer_free(model.enc);
  loom_release(model.big_w);
}

START_TEST(test_threads_share_a_model) {
  make_model();
  /* What one thread alone computes, and the parameters' gradients of one
   * round of every seed. */
  for (int seed = 0; seed < THREADS; seed++)
    for (int grad = 0; grad < 2; grad++)
      ck_assert_msg(pass(seed, grad, &expected[seed][grad]) == 0, "%s",
                    loom_last_error());
  double *one_round[64];
  take_grads(one_round);

  static worker w[THREADS];
  pthread_t tid[THREADS];
  for (int i = 0; i < THREADS; i++) {
    w[i] = (worker){.index = i};
    ck_assert_int_eq(pthread_create(&tid[i], NULL, run, &w[i]), 0);
  }
  for (int i = 0; i < THREADS; i++) {
    ck_assert_int_eq(pthread_join(tid[i], NULL), 0);
    ck_assert_msg(w[i].error[0] == 0, "thread %d: %s", i, w[i].error);
    ck_assert_msg(w[i].mismatches == 0, "thread %d: %d results differ", i,
                  w[i].mismatches);
  }
  /* Backward from every thread added into the shared gradients: each seed
   * ran ROUNDS times in all (in another order, so to rounding). */
  double *threaded[64];
  take_grads(threaded);
  for (int i = 0; i < n_params; i++) {
    int64_t n = loom_numel(params[i]);
    for (int64_t e = 0; e < n; e++)
      ck_assert_msg(fabs(threaded[i][e] - ROUNDS * one_round[i][e]) <=
                        1e-4 * (1 + fabs(ROUNDS * one_round[i][e])),
                    "parameter %d element %lld: %.9g, expected %.9g", i,
                    (long long)e, threaded[i][e], ROUNDS * one_round[i][e]);
    free(one_round[i]);
    free(threaded[i]);
  }
  free_model();
}
END_TEST

/* The shortest race: threads doing nothing but forward passes of one
 * linear layer, recording (each node keeps the weight and bias), so the
 * shared parameters' reference counts change all the time. */
static void *hammer(void *arg) {
  loom_linear_layer *lin = arg;
  loom_tensor *x = loom_keep(loom_ones(LOOM_F32, LOOM_SHAPE(2, 8)));
  loom_set_requires_grad(x, true);
  double first = NAN;
  bool same = true;
  for (int i = 0; i < 5000 && same; i++) {
    loom_scope *s = loom_scope_begin();
    loom_tensor *y = loom_sum_all(loom_linear_layer_forward(lin, x));
    double v = loom_item(y);
    same = i == 0 || v == first;
    first = i == 0 ? v : first;
    loom_scope_end(s);
  }
  loom_release(x);
  loom_cleanup();
  return same && loom_last_status() == LOOM_OK ? arg : NULL;
}

START_TEST(test_threads_hammer_one_layer) {
  loom_linear_layer *lin = loom_linear_layer_new(8, 16, true);
  ck_assert_loom(lin);
  int64_t live = loom_debug_live_tensors();
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++)
    ck_assert_int_eq(pthread_create(&t[i], NULL, hammer, lin), 0);
  for (int i = 0; i < THREADS; i++) {
    void *ok;
    ck_assert_int_eq(pthread_join(t[i], &ok), 0);
    ck_assert_ptr_eq(ok, lin);
  }
  ck_assert_int_eq(loom_debug_live_tensors(), live);
  loom_linear_layer_free(lin);
}
END_TEST

/* Tensors made on one thread, kept, and released on another (their memory
 * joins the releasing thread's free lists). */
static void *release_all(void *arg) {
  loom_tensor **ts = arg;
  for (int i = 0; i < 64; i++)
    loom_release(ts[i]);
  loom_cleanup();
  return NULL;
}

START_TEST(test_release_on_another_thread) {
  loom_tensor *ts[64];
  int64_t live = loom_debug_live_tensors();
  int64_t bytes = loom_debug_live_bytes();
  loom_scope *s = loom_scope_begin();
  for (int i = 0; i < 64; i++) /* small and big blocks, views */
    ts[i] = loom_keep(
        i % 2 ? loom_ones(LOOM_F32, LOOM_SHAPE(i + 1))
              : loom_narrow(loom_zeros(LOOM_F64, LOOM_SHAPE(16384 + i)), 0, 1,
                            8));
  loom_scope_end(s);
  pthread_t t;
  ck_assert_int_eq(loom_debug_live_tensors(), live + 64);
  ck_assert_int_eq(pthread_create(&t, NULL, release_all, ts), 0);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
  ck_assert_int_eq(loom_debug_live_tensors(), live); /* all 64 freed */
  ck_assert_int_eq(loom_debug_live_bytes(), bytes);
}
END_TEST

/* A graph belongs to the thread that recorded it: another thread's
 * backward through it is refused, a detached copy is anyone's. */
static void *record(void *arg) {
  loom_tensor **out = arg;
  loom_scope *s = loom_scope_begin();
  loom_tensor *x =
      loom_set_requires_grad(loom_ones(LOOM_F32, LOOM_SHAPE(3)), true);
  loom_tensor *y = loom_mul_scalar(x, 2);
  out[0] = loom_keep(y);
  out[1] = loom_keep(loom_detach(y));
  loom_scope_end(s);
  loom_cleanup(); /* frees this thread's tape: y's node is gone */
  return NULL;
}

/* A negative thread count is refused and leaves the setting as it was
 * (it had silently meant the default). */
START_TEST(test_thread_count_setting) {
  loom_set_num_threads(3);
  ck_assert_int_eq(loom_num_threads(), 3);
  loom_set_num_threads(-5);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
  loom_clear_error();
  ck_assert_int_eq(loom_num_threads(), 3);
  loom_set_num_threads(0);
  ck_assert_int_gt(loom_num_threads(), 0);
}
END_TEST

START_TEST(test_graphs_stay_on_their_thread) {
  loom_tensor *got[2];
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, record, got), 0);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
  ck_assert_int_eq(loom_backward(loom_sum_all(got[0])), -1);
  CHECK_ERROR(LOOM_ERR_STATE, "recorded on another thread");
  loom_tensor *w =
      loom_set_requires_grad(loom_ones(LOOM_F32, LOOM_SHAPE(3)), true);
  ck_assert_int_eq(loom_backward(loom_sum_all(loom_mul(got[1], w))), 0);
  CHECK_VALUES(loom_grad(w), 0, 2, 2, 2);
  loom_release(got[0]); /* its node was another tape's: nothing here */
  loom_release(got[1]);
  ck_assert_int_eq(loom_tape_size(), 0);
}
END_TEST

/* loom__parallel_for_balanced: every item of [0, n) is run exactly once, in
 * pieces no longer than allowed (a part's first piece may be all of its
 * range but the tail, the others at most `grain` items), by parts whose
 * index is below the part count and never runs two pieces at once,
 * whatever the part count, grain and tail, the speeds of the parts (the
 * first items are slow here, so the part that has them is overtaken and
 * robbed) and whether the workers are free (a nested call runs its parts
 * one after the other). */
typedef struct {
  _Atomic int runs[1000];
  _Atomic int busy[8];
  int64_t grain, tail, n;
  int nt;
  _Atomic int bad_pieces, nested_calls;
} balanced_case;

static void balanced_piece(void *ctx, int part, int64_t lo, int64_t hi) {
  balanced_case *c = ctx;
  int nt = c->nt < c->n ? c->nt : (int)c->n;
  int64_t range = (c->n + nt - 1) / nt;
  int64_t most = range - c->tail > c->grain ? range - c->tail : c->grain;
  if (part < 0 || part >= nt || atomic_exchange(&c->busy[part], 1)) {
    atomic_fetch_add(&c->bad_pieces, 1);
    return;
  }
  if (lo < 0 || hi > c->n || hi <= lo || hi - lo > most)
    atomic_fetch_add(&c->bad_pieces, 1);
  for (int64_t i = lo; i < hi && i >= 0 && i < c->n; i++) {
    atomic_fetch_add(&c->runs[i], 1);
    for (int k = 0; i < c->n / 8 && k < 20; k++)
      sched_yield(); /* the first part's items are slow */
  }
  atomic_store(&c->busy[part], 0);
}

START_TEST(test_balanced_parts_run_every_item_once) {
  static balanced_case c; /* 4 KB of counters */
  const int64_t sizes[] = {1, 2, 7, 64, 333, 1000};
  const int64_t grains[] = {1, 2, 5, 1000};
  const int64_t tails[] = {0, 3, 1000};
  for (int nt = 1; nt <= 5; nt++)
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
      for (size_t gi = 0; gi < sizeof grains / sizeof *grains; gi++)
        for (size_t ti = 0; ti < sizeof tails / sizeof *tails; ti++) {
          memset(&c, 0, sizeof c);
          c.n = sizes[si];
          c.grain = grains[gi];
          c.tail = tails[ti];
          c.nt = nt;
          loom__parallel_for_balanced(nt, c.n, c.grain, c.tail, balanced_piece,
                                      &c);
          ck_assert_msg(atomic_load(&c.bad_pieces) == 0,
                        "nt %d n %lld grain %lld tail %lld: %d bad pieces", nt,
                        (long long)c.n, (long long)c.grain, (long long)c.tail,
                        atomic_load(&c.bad_pieces));
          for (int64_t i = 0; i < c.n; i++)
            ck_assert_msg(atomic_load(&c.runs[i]) == 1,
                          "nt %d n %lld grain %lld tail %lld: item %lld ran "
                          "%d times",
                          nt, (long long)c.n, (long long)c.grain,
                          (long long)c.tail, (long long)i,
                          atomic_load(&c.runs[i]));
        }
}
END_TEST

/* A part held up in its first piece has the tail of its range taken by
 * the other: part 0's first piece, items [0, 16) of its [0, 32), waits (10 s
 * at most) until part 1 has run one of the 16 it left. */
typedef struct {
  _Atomic int runs[64];
  _Atomic int stolen;
} steal_case;

static double seconds_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void steal_piece(void *ctx, int part, int64_t lo, int64_t hi) {
  steal_case *c = ctx;
  if (lo < 32 && part != 0)
    atomic_store(&c->stolen, 1);
  for (int64_t i = lo; i < hi; i++)
    atomic_fetch_add(&c->runs[i], 1);
  for (double t0 = seconds_now();
       lo == 0 && !atomic_load(&c->stolen) && seconds_now() - t0 < 10;)
    sched_yield();
}

START_TEST(test_balanced_parts_steal) {
  static steal_case c;
  memset(&c, 0, sizeof c);
  loom__parallel_for_balanced(2, 64, 1, 16, steal_piece, &c);
  ck_assert(atomic_load(&c.stolen));
  for (int i = 0; i < 64; i++)
    ck_assert_int_eq(atomic_load(&c.runs[i]), 1);
}
END_TEST

/* Called from inside a parallel part, the workers are busy: the pieces run
 * on the calling thread, each once. */
static void balanced_nested(void *ctx, int part, int64_t lo, int64_t hi) {
  balanced_case *c = ctx;
  (void)part;
  atomic_fetch_add(&c->nested_calls, 1);
  for (int64_t i = lo; i < hi; i++)
    atomic_fetch_add(&c->runs[i], 1);
}

static void balanced_outer(void *ctx, int64_t lo, int64_t hi) {
  balanced_case *c = ctx;
  for (int64_t t = lo; t < hi; t++)
    loom__parallel_for_balanced(3, 10, 2, 10, balanced_nested, c);
}

START_TEST(test_balanced_parts_nested) {
  static balanced_case c;
  memset(&c, 0, sizeof c);
  loom__parallel_for(2, 2, balanced_outer, &c);
  /* 10 items in pieces of 2 (ranges of 3, 3 and 4 items: 2 + 1 + 2 + 1 +
   * 2 + 2 pieces) for each of the two outer parts */
  ck_assert_int_eq(atomic_load(&c.nested_calls), 2 * 6);
  for (int i = 0; i < 10; i++)
    ck_assert_int_eq(atomic_load(&c.runs[i]), 2);
}
END_TEST

int main(void) {
  Suite *s = suite_create("threads");
  TCase *tc = tcase_create("threads");
  tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_threads_hammer_one_layer);
  tcase_add_test(tc, test_threads_share_a_model);
  tcase_add_test(tc, test_release_on_another_thread);
  tcase_add_test(tc, test_graphs_stay_on_their_thread);
  tcase_add_test(tc, test_thread_count_setting);
  tcase_add_test(tc, test_balanced_parts_run_every_item_once);
  tcase_add_test(tc, test_balanced_parts_nested);
  tcase_add_test(tc, test_balanced_parts_steal);
  suite_add_tcase(s, tc);
  return loom_run_suite(s);
}
