/* Recurrent layers: one training step of torch_rnn.py's cases in loom.
 *
 * A step is zero_grad + forward + loss mean(out^2) + backward + Adam step
 * (lr 1e-3) on a fixed input (35, B, 256) with zero initial states, hidden
 * 512, one layer. Cases:
 *   lstm_b32, lstm_b1   loom_lstm_new: the fused sequence op
 *   gru_b32, gru_b1     loom_gru_new: the fused sequence op
 *   lstm_steps_b32      the built-in LSTM cell, step_by_step (the runner
 *                       calls the composed cell 35 times)
 *   user_lstm_b32       an LSTM cell written here with public ops, two
 *                       linears per step like torch.nn.LSTMCell, unrolled
 *                       by the runner (it has no fused path)
 *   user_lstm_proj_b32  the same cell with the input's product hoisted out
 *                       of the loop (the cell's `project`, as mgu.c does)
 * bench/rnn_torch.py times the PyTorch counterparts. All cases are sampled
 * in interleaved rounds; each figure is the median ms per step. Lines
 * starting with "@rnn" are for bench/run_models.sh.
 *
 * GF/s is the step's matrix-product FLOPs over its time (step_products
 * lists them; the input needs no gradient, so there is no dx product).
 * --blas 1 also times OpenBLAS's sgemm on the same shapes and prints the
 * rate it reaches there: the limit the products set.
 */
#define _POSIX_C_SOURCE 200809L
#include "bench_util.h"

#include <loom/loom.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IN 256
#define HIDDEN 512
#define STEPS 35

static void fail(const char *what) {
  fprintf(stderr, "rnn: %s: %s\n", what, loom_last_error());
  exit(1);
}

/* ---- a user's LSTM cell, as someone would write it with loom's ops ---- */

typedef struct {
  loom_tensor *w_ih, *w_hh, *b_ih, *b_hh; /* PyTorch's shapes and order */
} user_lstm;

static loom_tensor *user_param(loom_module *owner, const char *name,
                               const char *suffix, int64_t rows, int64_t cols,
                               double bound) {
  char full[64];
  snprintf(full, sizeof full, "%s%s", name, suffix);
  loom_tensor *t = cols ? loom_rand(NULL, LOOM_DTYPE_DEFAULT, -bound, bound,
                                    LOOM_SHAPE(rows, cols))
                        : loom_rand(NULL, LOOM_DTYPE_DEFAULT, -bound, bound,
                                    LOOM_SHAPE(rows));
  return loom_module_add_param(owner, full, t);
}

static void *user_make(const void *config, loom_module *owner,
                       const char *suffix, int64_t in, int64_t hidden) {
  (void)config;
  user_lstm *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  double k = 1 / sqrt((double)hidden);
  loom_scope *s = loom_scope_begin();
  c->w_ih = user_param(owner, "weight_ih", suffix, 4 * hidden, in, k);
  c->w_hh = user_param(owner, "weight_hh", suffix, 4 * hidden, hidden, k);
  c->b_ih = user_param(owner, "bias_ih", suffix, 4 * hidden, 0, k);
  c->b_hh = user_param(owner, "bias_hh", suffix, 4 * hidden, 0, k);
  loom_scope_end(s);
  if (!c->w_ih || !c->w_hh || !c->b_ih || !c->b_hh) {
    free(c);
    return NULL;
  }
  return c;
}

/* The gates from the step's input part xp (B, 4H) and the state. */
static int user_gates(const user_lstm *c, const loom_tensor *xp,
                      loom_tensor *const *state, loom_tensor **next) {
  loom_tensor *h = state[0], *cs = state[1], *part[4];
  loom_tensor *gates = loom_add(xp, loom_linear(h, c->w_hh, c->b_hh));
  if (loom_chunk(gates, 4, 1, part, 4) != 4)
    return -1;
  loom_tensor *i = loom_sigmoid(part[0]), *f = loom_sigmoid(part[1]);
  loom_tensor *g = loom_tanh(part[2]), *o = loom_sigmoid(part[3]);
  next[1] = loom_add(loom_mul(f, cs), loom_mul(i, g));
  next[0] = loom_mul(o, loom_tanh(next[1]));
  return next[0] && next[1] ? 0 : -1;
}

/* Both products inside the step, as torch.nn.LSTMCell does. */
static int user_step(void *cell, const loom_tensor *x_t,
                     loom_tensor *const *state, loom_tensor **next) {
  user_lstm *c = cell;
  return user_gates(c, loom_linear(x_t, c->w_ih, c->b_ih), state, next);
}

static loom_tensor *user_project(void *cell, const loom_tensor *x) {
  user_lstm *c = cell;
  return loom_linear(x, c->w_ih, c->b_ih);
}

static int user_projected_step(void *cell, const loom_tensor *xp,
                               loom_tensor *const *state, loom_tensor **next) {
  return user_gates(cell, xp, state, next);
}

static const loom_cell_type user_lstm_cell = {
    .name = "UserLSTM", .n_states = 2, .make = user_make, .step = user_step};
static const loom_cell_type user_lstm_proj_cell = {.name = "UserLSTM",
                                                   .n_states = 2,
                                                   .make = user_make,
                                                   .project = user_project,
                                                   .step = user_projected_step};

/* ---- the training step ---- */

typedef struct {
  const char *name, *peer; /* peer: the PyTorch case it is compared with */
  loom_rnn *rnn;
  loom_optimizer *opt;
  loom_tensor *x;
  int64_t batch;
  int gates; /* 4 for the LSTM, 3 for the GRU */
  double loss;
} rnn_case;

#define MAX_PRODUCTS 8

/* The products of one training step as the fused op runs them, G = gates
 * x hidden: the input projection (T B x IN by IN x G) once for the whole
 * sequence and its weight gradient; at each of the T steps h (B x H) by
 * W_hh^T (H x G) and, backward, the state's gradient (B x G by G x H);
 * and W_hh's gradient as one product over all steps (G x T B by T B x H).
 * The cases stepped by the runner do the same FLOPs in other shapes. */
static int step_products(const rnn_case *c, bench_product *list) {
  int n = 0;
  int64_t B = c->batch, G = c->gates * HIDDEN;
  bench_add_product(list, &n, MAX_PRODUCTS, STEPS * B, G, IN, 1, false, true);
  bench_add_product(list, &n, MAX_PRODUCTS, B, G, HIDDEN, STEPS, true, false);
  bench_add_product(list, &n, MAX_PRODUCTS, G, HIDDEN, STEPS * B, 1, false,
                    false);
  return n;
}

static void train_step(void *p) {
  rnn_case *c = p;
  loom_scope *s = loom_scope_begin();
  loom_optimizer_zero_grad(c->opt);
  loom_tensor *out;
  if (loom_rnn_forward(c->rnn, c->x, NULL, NULL, &out, NULL) < 0)
    fail(c->name);
  loom_tensor *loss = loom_mean_all(loom_square(out));
  if (!loss || loom_backward(loss) < 0 || loom_optimizer_step(c->opt) < 0)
    fail(c->name);
  c->loss = loom_item(loss);
  loom_scope_end(s);
}

static void forward_only(void *p) {
  rnn_case *c = p;
  loom_scope *s = loom_scope_begin();
  loom_no_grad_begin();
  loom_tensor *out;
  if (loom_rnn_forward(c->rnn, c->x, NULL, NULL, &out, NULL) < 0)
    fail(c->name);
  loom_no_grad_end();
  loom_scope_end(s);
}

static void make_case(rnn_case *c, const char *name, const char *peer,
                      const loom_cell_type *type, int64_t batch,
                      bool step_by_step) {
  loom_manual_seed(0);
  *c = (rnn_case){.name = name,
                  .peer = peer,
                  .batch = batch,
                  .gates = type == &loom_gru_cell ? 3 : 4};
  c->rnn = loom_rnn_new(type, (loom_rnn_opts){.input_size = IN,
                                              .hidden_size = HIDDEN,
                                              .step_by_step = step_by_step});
  loom_tensor *params[8];
  int n = c->rnn ? loom_module_parameters(&c->rnn->base, params, 8) : 0;
  c->opt = n ? loom_adam_new(params, n, loom_adam_defaults(1e-3)) : NULL;
  c->x =
      loom_keep(loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(STEPS, batch, IN)));
  if (!c->rnn || !c->opt || !c->x)
    fail(name);
}

static void free_case(rnn_case *c) {
  loom_optimizer_free(c->opt);
  loom_rnn_free(c->rnn);
  loom_release(c->x);
}

enum { LSTM32, LSTM1, GRU32, GRU1, STEPWISE, USER, USER_PROJ, N_CASES };

int main(int argc, char **argv) {
  int samples = 7;
  double min_s = 0.3;
  const char *usage =
      "usage: bench-rnn [--samples N] [--min-ms M] [--forward 0|1]\n"
      "                 [--case NAME] [--blas 0|1] [--threads N]\n"
      "ms per training step (fwd + mean(out^2) + bwd + Adam) of LSTM/GRU\n"
      "256 -> 512, seq 35, and of LSTM cells unrolled step by step.\n"
      "--case runs one case's training step alone (for a profiler).\n"
      "--blas 1 adds OpenBLAS's GFLOP/s on each case's product shapes.\n"
      "--threads N runs loom's kernels on N threads (default: all cores).\n";
  const char *fwd_opt = bench_take_option(&argc, argv, "forward");
  const char *only = bench_take_option(&argc, argv, "case");
  const char *blas_opt = bench_take_option(&argc, argv, "blas");
  const char *threads_opt = bench_take_option(&argc, argv, "threads");
  bool with_forward = fwd_opt && atoi(fwd_opt);
  bool with_blas = blas_opt && atoi(blas_opt);
  bench_options(argc, argv, usage, &samples, &min_s);
  if (threads_opt) {
    int threads = atoi(threads_opt);
    if (threads < 1 || threads > 256) {
      fprintf(stderr, "bench-rnn: --threads %s: give 1 to 256\n", threads_opt);
      return 2;
    }
    loom_set_num_threads(threads);
  }

  rnn_case cases[N_CASES];
  make_case(&cases[LSTM32], "lstm_b32", "nn.LSTM_b32", &loom_lstm_cell, 32,
            false);
  make_case(&cases[LSTM1], "lstm_b1", "nn.LSTM_b1", &loom_lstm_cell, 1, false);
  make_case(&cases[GRU32], "gru_b32", "nn.GRU_b32", &loom_gru_cell, 32, false);
  make_case(&cases[GRU1], "gru_b1", "nn.GRU_b1", &loom_gru_cell, 1, false);
  make_case(&cases[STEPWISE], "lstm_steps_b32", "nn.LSTM_b32", &loom_lstm_cell,
            32, true);
  make_case(&cases[USER], "user_lstm_b32", "LSTMCell_loop_b32", &user_lstm_cell,
            32, true);
  make_case(&cases[USER_PROJ], "user_lstm_proj_b32", "LSTMCell_loop_b32",
            &user_lstm_proj_cell, 32, true);

  if (only) { /* no interleaving: a profile of this case alone */
    for (int i = 0; i < N_CASES; i++)
      if (!strcmp(cases[i].name, only)) {
        double med1;
        bench_compare(1, (bench_fn[]){train_step}, (void *[]){&cases[i]},
                      samples, min_s, &med1, NULL);
        bench_product list[MAX_PRODUCTS];
        int n = step_products(&cases[i], list);
        printf("%-20s %10.3f ms/step %8.1f GF/s\n", only, med1 * 1e3,
               bench_products_flops(list, n) / med1 * 1e-9);
        printf("@rnn train %s %s %.4f\n", only, cases[i].peer, med1 * 1e3);
      }
    for (int i = 0; i < N_CASES; i++)
      free_case(&cases[i]);
    loom_cleanup();
    return 0;
  }

  bench_fn fns[2 * N_CASES];
  void *ctxs[2 * N_CASES];
  int nf = 0;
  for (int i = 0; i < N_CASES; i++, nf++) {
    fns[nf] = train_step;
    ctxs[nf] = &cases[i];
  }
  if (with_forward)
    for (int i = 0; i < N_CASES; i++, nf++) {
      fns[nf] = forward_only;
      ctxs[nf] = &cases[i];
    }
  double med[2 * N_CASES];
  double *times = malloc(sizeof *times * (size_t)(nf * samples));
  if (!times)
    fail("out of memory");
  bench_compare(nf, fns, ctxs, samples, min_s, med, times);

  printf("# LSTM/GRU %d -> %d, 1 layer, seq %d, float32; loom threads %d; "
         "%d samples of >= %.0f ms, interleaved\n",
         IN, HIDDEN, STEPS, loom_num_threads(), samples, min_s * 1e3);
  printf("%-20s %10s %12s %10s %8s %10s\n", "# case", "ms/step", "steps*B/s",
         "loss", "GF/s", "blas_GF/s");
  for (int i = 0; i < N_CASES; i++) {
    rnn_case *c = &cases[i];
    double ms = med[i] * 1e3;
    bench_product list[MAX_PRODUCTS];
    int n = step_products(c, list);
    double flops = bench_products_flops(list, n);
    double blas = with_blas ? flops / bench_products_blas_seconds(
                                          list, n, loom_num_threads(), 5, 0.05)
                            : NAN;
    printf("%-20s %10.3f %12.0f %10.6f %8.1f %10.1f\n", c->name, ms,
           STEPS * c->batch / med[i], c->loss, flops / med[i] * 1e-9,
           blas * 1e-9);
    printf("@rnn train %s %s %.4f\n", c->name, c->peer, ms);
  }
  if (with_forward)
    for (int i = 0; i < N_CASES; i++) {
      printf("%-20s %10.3f  (forward only, no grad)\n", cases[i].name,
             med[N_CASES + i] * 1e3);
      printf("@rnn fwd %s %s %.4f\n", cases[i].name, cases[i].peer,
             med[N_CASES + i] * 1e3);
    }
  /* Round-paired, so a drift of the machine cancels. */
  double fused = bench_speed_ratio(times, samples, LSTM32, STEPWISE);
  double user = bench_speed_ratio(times, samples, USER_PROJ, USER);
  printf("# fused LSTM is %.2fx faster than the same cell step by step\n",
         fused);
  printf("# hoisting the input product (project) makes the user cell %.2fx "
         "faster\n",
         user);
  printf("@rnn fused_vs_steps %.4f\n", fused);
  free(times);
  for (int i = 0; i < N_CASES; i++)
    free_case(&cases[i]);
  loom_cleanup();
  return 0;
}
