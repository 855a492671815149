/* Data-parallel training steps of the charlm LSTM (embedding 64 over 65
 * characters, LSTM layers, a linear head; seq 100, a global batch of 32
 * split over the ranks, Adam), run under mpirun:
 *
 *   mpirun -np P bench-data-parallel [--threads N] [--hidden H]
 *       [--layers L] [--batch B] [--seq T] [--steps S] [--bucket-kib K]
 *       [--progress-us U]
 *
 * Each step is timed in parts on every rank, and each part's slowest rank
 * counts: forward, backward (with the hooks that fill the buckets and
 * start their all-reduces), the optimizer; but the wait is that of the
 * rank that finished backward last (a faster rank's wait also holds the
 * time it waits for that one).
 * Then the same buckets are all-reduced alone (a wait with no backward
 * before it) to time the communication by itself. Reported: characters
 * per second over the global batch, the parts (medians over the steps),
 * and the fraction of the communication hidden behind backward:
 * 1 - wait / communication alone. */
#include "bench_util.h"

#include <loom/loom.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VOCAB 65

typedef struct {
  loom_module base;
  loom_embedding_layer *embed;
  loom_rnn *lstm;
  loom_linear_layer *head;
} model;

static void die(const char *what) {
  fprintf(stderr, "bench-data-parallel: %s: %s\n", what, loom_last_error());
  loom_dist_abort(1);
}

static model *model_new(int64_t hidden, int layers) {
  loom_manual_seed(1);
  model *m = calloc(1, sizeof *m);
  if (!m)
    die("model");
  loom_module_init(&m->base, "CharLSTM", NULL);
  m->embed = (loom_embedding_layer *)loom_module_add_child(
      &m->base, "embed",
      (loom_module *)loom_embedding_layer_new(VOCAB, 64, -1));
  m->lstm = (loom_rnn *)loom_module_add_child(
      &m->base, "lstm",
      (loom_module *)loom_lstm_new((loom_rnn_opts){
          .input_size = 64, .hidden_size = hidden, .num_layers = layers}));
  m->head = (loom_linear_layer *)loom_module_add_child(
      &m->base, "head",
      (loom_module *)loom_linear_layer_new(hidden, VOCAB, true));
  if (!m->head)
    die("model");
  return m;
}

static loom_tensor *loss_of(model *m, const int64_t *x, const int64_t *y,
                            int64_t T, int64_t b) {
  loom_tensor *xt = loom_from_array(LOOM_I64, x, LOOM_SHAPE(T, b));
  loom_tensor *yt = loom_from_array(LOOM_I64, y, LOOM_SHAPE(T * b));
  loom_tensor *h;
  if (loom_rnn_forward(m->lstm, loom_embedding_layer_forward(m->embed, xt),
                       NULL, NULL, &h, NULL) < 0)
    return NULL;
  return loom_cross_entropy(loom_reshape(loom_linear_layer_forward(m->head, h),
                                         2, (int64_t[]){T * b, VOCAB}),
                            yt, NULL);
}

/* The slowest rank's value. */
static double slowest(double v) {
  if (loom_dist_all_reduce_values(&v, 1, LOOM_DIST_MAX) < 0)
    die("all-reduce");
  return v;
}

/* The wait of the rank whose forward and backward took longest. */
static double wait_of_last(double compute, double wait) {
  loom_scope *s = loom_scope_begin();
  loom_tensor *all = loom_dist_all_gather(
      loom_from_array(LOOM_F64, (double[]){compute, wait}, LOOM_SHAPE(1, 2)),
      0);
  if (!all)
    die("all-gather");
  const double *v = loom_data_f64(all);
  int last = 0;
  for (int r = 1; r < loom_dist_size(); r++)
    last = v[2 * r] > v[2 * last] ? r : last;
  double w = v[2 * last + 1];
  loom_scope_end(s);
  return w;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static long option(int *argc, char **argv, const char *name, long dflt) {
  const char *v = bench_take_option(argc, argv, name);
  return v ? strtol(v, NULL, 10) : dflt;
}

int main(int argc, char **argv) {
  if (loom_dist_init(&argc, &argv) < 0)
    die("init");
  int threads = (int)option(&argc, argv, "threads", 1);
  int64_t hidden = option(&argc, argv, "hidden", 512);
  int layers = (int)option(&argc, argv, "layers", 2);
  int64_t B = option(&argc, argv, "batch", 32);
  int64_t T = option(&argc, argv, "seq", 100);
  int steps = (int)option(&argc, argv, "steps", 20);
  int64_t bucket = option(&argc, argv, "bucket-kib", 1024) * 1024;
  long progress_us = option(&argc, argv, "progress-us", 0);
  int P = loom_dist_size(), rank = loom_dist_rank();
  if (argc > 1 || B % P || steps < 1 || steps > 1000 || threads < 1) {
    if (rank == 0)
      fprintf(stderr, "usage: mpirun -np P bench-data-parallel [--threads N] "
                      "[--hidden H] [--layers L] [--batch B (a multiple of "
                      "P)] [--seq T] [--steps S <= 1000] [--bucket-kib K] "
                      "[--progress-us U]\n");
    /* every rank refuses alike: wait until rank 0 has said why, or a rank
     * that aborts first can kill it before it has */
    loom_dist_barrier();
    loom_dist_abort(2);
  }
  loom_set_num_threads(threads);
  int64_t b = B / P;
  model *m = model_new(hidden, layers);
  loom_data_parallel *dp = loom_data_parallel_new(
      &m->base, &(loom_data_parallel_opts){.bucket_bytes = bucket,
                                           .progress_us = (double)progress_us});
  loom_tensor *params[64];
  int n = loom_module_parameters(&m->base, params, 64);
  loom_optimizer *opt = loom_adam_new(params, n, loom_adam_defaults(2e-3));
  int64_t *x = malloc((size_t)(T * b) * sizeof *x);
  int64_t *y = malloc((size_t)(T * b) * sizeof *y);
  if (!dp || !opt || !x || !y)
    die("setup");
  loom_rng *g = loom_rng_new(7 + (uint64_t)rank);
  enum { PARTS = 4 };
  static double part[PARTS][1000], total[1000];
  int warm = 3;
  for (int s = -warm; s < steps; s++) {
    for (int64_t i = 0; i < T * b; i++) {
      x[i] = (int64_t)(loom_rng_u64(g) % VOCAB);
      y[i] = (int64_t)(loom_rng_u64(g) % VOCAB);
    }
    loom_dist_barrier();
    loom_scope *sc = loom_scope_begin();
    double t0 = bench_now();
    loom_optimizer_zero_grad(opt);
    loom_tensor *l = loss_of(m, x, y, T, b);
    double t1 = bench_now();
    if (!l || loom_backward(l) < 0)
      die("backward");
    double t2 = bench_now();
    if (loom_data_parallel_wait(dp) < 0)
      die("wait");
    double t3 = bench_now();
    if (loom_optimizer_step(opt) < 0)
      die("step");
    double t4 = bench_now();
    loom_scope_end(sc);
    double d[PARTS] = {t1 - t0, t2 - t1, t3 - t2, t4 - t3};
    double all = slowest(t4 - t0);
    for (int k = 0; s >= 0 && k < PARTS; k++)
      part[k][s] = slowest(d[k]);
    if (s >= 0) {
      total[s] = all;
      /* the communication left after backward: the wait of the rank that
       * finished backward last (the others also wait for it) */
      part[2][s] = wait_of_last(t2 - t0, d[2]);
    }
  }
  /* the buckets alone: a wait that starts them all with no backward */
  static double alone[1000];
  for (int s = 0; s < steps; s++) {
    loom_dist_barrier();
    double t0 = bench_now();
    if (loom_data_parallel_wait(dp) < 0)
      die("wait");
    alone[s] = slowest(bench_now() - t0);
  }
  loom_data_parallel_stats st = loom_data_parallel_stats_of(dp);
  double step = median(total, steps), comm = median(alone, steps);
  double fwd = median(part[0], steps), bwd = median(part[1], steps),
         wait = median(part[2], steps), upd = median(part[3], steps);
  double hidden_frac = P > 1 && comm > 0 ? 1 - wait / comm : 0;
  if (rank == 0) {
    printf("%d rank%s x %d thread%s%s: %.0f chars/s (step %.1f ms: forward "
           "%.1f, backward %.1f, wait %.1f, optimizer %.1f); %d buckets, "
           "%.2f MB per step, alone %.1f ms; hidden %.0f%%\n",
           P, P > 1 ? "s" : "", threads, threads > 1 ? "s" : "",
           progress_us ? " + progress thread" : "", (double)(B * T) / step,
           step * 1e3, fwd * 1e3, bwd * 1e3, wait * 1e3, upd * 1e3, st.buckets,
           (double)st.bytes / 1e6, comm * 1e3, hidden_frac * 100);
    printf("@data_parallel %d %d %.1f %.2f %.2f %.2f %.2f %.2f %.2f %.3f\n", P,
           threads, (double)(B * T) / step, step * 1e3, fwd * 1e3, bwd * 1e3,
           wait * 1e3, upd * 1e3, comm * 1e3, hidden_frac);
  }
  free(x);
  free(y);
  loom_rng_free(g);
  loom_optimizer_free(opt);
  loom_data_parallel_free(dp);
  loom_module_free(&m->base);
  loom_cleanup();
  return loom_dist_finalize() < 0 ? 1 : 0;
}
