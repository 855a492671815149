/* How a training step's cost grows: one configuration per run, so the
 * peak resident memory is that configuration's own.
 *
 *   bench-cost --model lstm|gru|rnn|encoder --seq T --batch B --hidden H
 *              [--steps N]
 *
 * lstm, gru, rnn: one LSTM, GRU or tanh RNN layer H -> H (the fused op) on
 * an input (T, B, H);
 * encoder: a TransformerEncoder of 2 layers, d_model H, 8 heads,
 * feed-forward 4H, dropout 0.1, relu, post-norm, batch first, on (B, T, H).
 * A step is zero_grad + forward + mean(out^2) + backward + Adam (lr 1e-4),
 * as in bench/rnn.c and bench/transformer.c. Untimed steps first, at least
 * two and at least a second of them, then N (default 3) timed: the median
 * ms per step. (On the test machine a process's first steps at tens of MB
 * ran 2-4x slower than later ones: the LSTM at batch 32 took 89-92 ms at
 * its second step against 26 from the third, and at 128 positions ~100 ms
 * for several steps against ~45 after a second; glibc mapping fresh
 * memory for blocks outside loom's cache is part of it. With one untimed
 * step and N = 1 the curves showed that, not the step.) Memory: the peak
 * resident set (getrusage) and the step's share of it, the peak less the
 * resident set before the first step (model, optimizer and input in
 * place), which is what the step's activations, gradients and workspaces
 * cost.
 * bench/cost_torch.py measures PyTorch the same way and bench/cost.sh
 * sweeps both and draws the curves (bench/cost_plot.c). Prints one line
 * "@cost loom MODEL T B H ms peak_mib step_mib".
 */
#define _POSIX_C_SOURCE 200809L
#include "bench_util.h"

#include <loom/loom.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static void fail(const char *what) {
  fprintf(stderr, "cost: %s: %s\n", what, loom_last_error());
  exit(1);
}

/* The resident set now, in MiB (from /proc/self/statm), or -1. */
static double resident_mib(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long size, pages = -1;
  if (!f)
    return -1;
  if (fscanf(f, "%ld %ld", &size, &pages) != 2)
    pages = -1;
  fclose(f);
  return pages < 0 ? -1 : (double)pages * 4096 / (1 << 20);
}

static double peak_mib(void) {
  struct rusage u;
  return getrusage(RUSAGE_SELF, &u) == 0 ? (double)u.ru_maxrss / 1024 : -1;
}

static long parse(const char *name, const char *s, long lo, long hi) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || end == s || v < lo || v > hi) {
    fprintf(stderr, "cost: --%s must be an integer in [%ld, %ld]\n", name, lo,
            hi);
    exit(2);
  }
  return v;
}

typedef struct {
  loom_rnn *rnn; /* lstm, gru, rnn */
  loom_transformer_stack *enc;
  loom_optimizer *opt;
  loom_tensor *x;
} cost_case;

static void step(void *p) {
  cost_case *c = p;
  loom_scope *s = loom_scope_begin();
  loom_optimizer_zero_grad(c->opt);
  loom_tensor *out = NULL;
  if (c->rnn) {
    if (loom_rnn_forward(c->rnn, c->x, NULL, NULL, &out, NULL) < 0)
      fail("rnn");
  } else {
    out = loom_transformer_encoder_forward(c->enc, c->x, NULL);
  }
  loom_tensor *loss = loom_mean_all(loom_square(out));
  if (!loss || loom_backward(loss) < 0 || loom_optimizer_step(c->opt) < 0)
    fail("step");
  loom_scope_end(s);
}

int main(int argc, char **argv) {
  const char *usage =
      "usage: bench-cost --model lstm|gru|rnn|encoder --seq T --batch B "
      "--hidden H "
      "[--steps N]\n";
  const char *model = NULL;
  long T = 0, B = 0, H = 0, steps = 3;
  for (int i = 1; i < argc; i++) {
    if (i + 1 >= argc) {
      fputs(usage, stderr);
      return 2;
    }
    const char *o = argv[i], *v = argv[++i];
    if (!strcmp(o, "--model"))
      model = v;
    else if (!strcmp(o, "--seq"))
      T = parse("seq", v, 1, 1 << 16);
    else if (!strcmp(o, "--batch"))
      B = parse("batch", v, 1, 1 << 16);
    else if (!strcmp(o, "--hidden"))
      H = parse("hidden", v, 8, 1 << 14);
    else if (!strcmp(o, "--steps"))
      steps = parse("steps", v, 1, 1000);
    else {
      fputs(usage, stderr);
      return 2;
    }
  }
  bool lstm = model && !strcmp(model, "lstm");
  bool gru = model && !strcmp(model, "gru");
  bool plain = model && !strcmp(model, "rnn");
  bool encoder = model && !strcmp(model, "encoder");
  if (!model || (!lstm && !gru && !plain && !encoder) || !T || !B || !H) {
    fputs(usage, stderr);
    return 2;
  }
  if (encoder && H % 8) {
    fprintf(stderr, "bench-cost: the encoder's hidden size %ld does not "
                    "divide into 8 heads\n",
            H);
    return 2;
  }
  loom_manual_seed(0);
  cost_case c = {0};
  loom_tensor *params[64];
  int n = 0;
  if (lstm || gru || plain) {
    c.rnn = loom_rnn_new(lstm  ? &loom_lstm_cell
                         : gru ? &loom_gru_cell
                               : &loom_rnn_tanh_cell,
                         (loom_rnn_opts){.input_size = H, .hidden_size = H});
    if (!c.rnn)
      fail(model);
    n = loom_module_parameters(&c.rnn->base, params, 64);
    c.x = loom_keep(loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(T, B, H)));
  } else {
    loom_transformer_opts o = {.d_model = H,
                               .nhead = 8,
                               .dim_feedforward = 4 * H,
                               .dropout = 0.1,
                               .batch_first = true};
    c.enc = loom_transformer_encoder_new(o, 2, false);
    n = c.enc ? loom_module_parameters(&c.enc->base, params, 64) : 0;
    c.x = loom_keep(loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(B, T, H)));
    if (c.enc)
      loom_module_train(&c.enc->base, true);
  }
  c.opt = n > 0 && n <= 64 ? loom_adam_new(params, n, loom_adam_defaults(1e-4))
                           : NULL;
  if (!c.opt || !c.x)
    fail(model);
  double before = resident_mib();
  /* untimed: the first step also sizes loom's block cache */
  double warm = bench_now();
  for (int i = 0; i < 2 || (bench_now() - warm < 1.0 && i < 50); i++)
    step(&c);
  double *t = malloc(sizeof *t * (size_t)steps);
  if (!t)
    fail("out of memory");
  for (long i = 0; i < steps; i++) {
    double t0 = bench_now();
    step(&c);
    t[i] = bench_now() - t0;
  }
  for (long i = 1; i < steps; i++) /* insertion sort for the median */
    for (long j = i; j > 0 && t[j] < t[j - 1]; j--) {
      double x = t[j];
      t[j] = t[j - 1];
      t[j - 1] = x;
    }
  double ms =
      (steps % 2 ? t[steps / 2] : (t[steps / 2 - 1] + t[steps / 2]) / 2) * 1e3;
  double peak = peak_mib();
  printf("# %s T %ld B %ld H %ld: %.3f ms/step, peak RSS %.1f MiB, step "
         "%.1f MiB (loom threads %d, isa %s)\n",
         model, T, B, H, ms, peak, peak - before, loom_num_threads(),
         loom_isa());
  printf("@cost loom %s %ld %ld %ld %.4f %.1f %.1f\n", model, T, B, H, ms, peak,
         peak - before);
  free(t);
  loom_optimizer_free(c.opt);
  loom_rnn_free(c.rnn);
  loom_transformer_stack_free(c.enc);
  loom_release(c.x);
  loom_cleanup();
  return 0;
}
