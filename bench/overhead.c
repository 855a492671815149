/* Per-op bookkeeping cost: what an op costs when the math is nothing.
 *
 * a and b are 1 x 1 float32 leaves that require grad. One "chain" is
 *   scope begin; y = a; 1000 times y = loom_add(y, b); [backward(y);]
 *   scope end
 * and a sample runs `chains` chains back to back (1000 by default, so a
 * sample is 1M ops). Reported per op, as the median over samples:
 *   fwd        grad on: allocation, tape record, scope release, node free
 *   fwd+bwd    the same plus loom_backward through the chain
 *   nograd     inside loom_no_grad_begin/end: allocation and release only
 * bench/overhead_torch.py runs the same loop in PyTorch eager. Lines
 * starting with "@overhead" are for run.sh.
 */
#define _POSIX_C_SOURCE 200809L
#include "bench_util.h"

#include <loom/loom.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHAIN 1000

typedef struct {
  loom_tensor *a, *b;
  long chains;
  bool backward;
} chain_ctx;

static void fail(void) {
  fprintf(stderr, "overhead: %s\n", loom_last_error());
  exit(1);
}

static void run_chains(void *p) {
  chain_ctx *x = p;
  for (long c = 0; c < x->chains; c++) {
    loom_scope *s = loom_scope_begin();
    loom_tensor *y = x->a;
    for (int i = 0; i < CHAIN; i++)
      y = loom_add(y, x->b);
    if (!y || (x->backward && loom_backward(y) < 0))
      fail();
    loom_scope_end(s);
  }
}

static void run_nograd(void *p) {
  loom_no_grad_begin();
  run_chains(p);
  loom_no_grad_end();
}

int main(int argc, char **argv) {
  int samples = 7;
  double min_s = 0; /* a sample is `chains` chains, long enough already */
  const char *usage = "usage: bench-overhead [--samples N] [--chains C]\n"
                      "ns per loom_add on 1x1 tensors, in chains of 1000.\n";
  const char *opt = bench_take_option(&argc, argv, "chains");
  long chains = opt ? atol(opt) : 1000;
  bench_options(argc, argv, usage, &samples, &min_s);
  if (chains < 1)
    chains = 1;

  loom_tensor *a = loom_keep(
      loom_set_requires_grad(loom_ones(LOOM_F32, LOOM_SHAPE(1, 1)), true));
  loom_tensor *b = loom_keep(loom_set_requires_grad(
      loom_full(LOOM_F32, 0.001, LOOM_SHAPE(1, 1)), true));
  if (!a || !b)
    fail();
  chain_ctx fwd = {a, b, chains, false}, both = {a, b, chains, true};
  static const char *const names[3] = {"fwd", "fwd+bwd", "nograd"};
  bench_fn fns[3] = {run_chains, run_chains, run_nograd};
  void *ctxs[3] = {&fwd, &both, &fwd};
  double med[3];
  bench_compare(3, fns, ctxs, samples, min_s, med, NULL);
  double ops = (double)chains * CHAIN;
  printf("# loom_add on 1x1 float32 leaves requiring grad; chains of %d, "
         "%ld chains per sample, %d samples\n",
         CHAIN, chains, samples);
  printf("%-8s %10s\n", "# mode", "ns/op");
  for (int m = 0; m < 3; m++) {
    printf("%-8s %10.1f\n", names[m], med[m] / ops * 1e9);
    printf("@overhead loom %s %.2f\n", names[m], med[m] / ops * 1e9);
  }
  /* The gradients show backward ran: d/db of a + 1000 b is 1000 per
   * chain, accumulated over every fwd+bwd chain that ran. */
  printf("# grad of b after all runs: %g (a multiple of %d)\n",
         loom_item(loom_grad(b)), CHAIN);
  loom_release(a);
  loom_release(b);
  loom_cleanup();
  printf("# live tensors at exit: %lld\n",
         (long long)loom_debug_live_tensors());
  return 0;
}
