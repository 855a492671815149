/* Why cumsum is a kernel of its own: loom_cumsum against its composition
 * with existing ops, x @ triu(ones(n, n)) (a product with a triangle of
 * ones, which autograd differentiates as any product), on float32 rows
 * of n elements, forward and forward + backward (the gradient of
 * sum(y * r) w.r.t. x), loom's default thread count.
 *
 * Shapes: ON-LSTM's cumax over its levels (batch 20 x 115 levels, as for
 * a hidden size of 1150 in chunks of 10) and longer rows up to 8192.
 * Columns: median ms per call of the kernel and of the composition, and
 * how many times faster the kernel ran (median of per-round ratios).
 * Lines starting with "@scan" are for scripts.
 */
#define _POSIX_C_SOURCE 200809L
#include "bench_util.h"

#include <loom/loom.h>

#include <stdio.h>
#include <stdlib.h>

typedef struct {
  loom_tensor *x, *r, *triangle; /* kept */
  bool backward;
} scan_ctx;

static void fail(void) {
  fprintf(stderr, "bench-scan: %s\n", loom_last_error());
  exit(1);
}

static void step(scan_ctx *c, loom_tensor *y) {
  if (!y)
    fail();
  if (c->backward) {
    if (loom_backward(loom_sum_all(loom_mul(y, c->r))) < 0)
      fail();
    loom_zero_grad(c->x);
  }
}

static void run_kernel(void *p) {
  scan_ctx *c = p;
  loom_scope *s = loom_scope_begin();
  step(c, loom_cumsum(c->x, -1));
  loom_scope_end(s);
}

static void run_composed(void *p) {
  scan_ctx *c = p;
  loom_scope *s = loom_scope_begin();
  step(c, loom_matmul(c->x, c->triangle));
  loom_scope_end(s);
}

static void bench_shape(int64_t rows, int64_t n, bool backward, int samples,
                        double min_s) {
  loom_scope *s = loom_scope_begin();
  scan_ctx c = {.backward = backward};
  c.x = loom_keep(loom_set_requires_grad(
      loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(rows, n)), true));
  c.r = loom_keep(loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(rows, n)));
  c.triangle = loom_keep(loom_triu(loom_ones(LOOM_F32, LOOM_SHAPE(n, n)), 0));
  if (!c.x || !c.r || !c.triangle)
    fail();
  /* the two agree (float32 sums in different orders) */
  loom_tensor *a = loom_cumsum(c.x, -1), *b = loom_matmul(c.x, c.triangle);
  if (!loom_allclose(a, b, 1e-4, 1e-3)) {
    fprintf(stderr, "bench-scan: kernel and composition differ\n");
    exit(1);
  }
  bench_fn fns[2] = {run_kernel, run_composed};
  void *ctxs[2] = {&c, &c};
  double med[2], *times = malloc(sizeof *times * 2 * (size_t)samples);
  if (!times)
    exit(2);
  bench_compare(2, fns, ctxs, samples, min_s, med, times);
  double ratio = bench_speed_ratio(times, samples, 0, 1);
  free(times);
  const char *what = backward ? "fwd+bwd" : "fwd";
  printf("%5lld x %5lld %-8s %10.4f %10.4f %8.1f\n", (long long)rows,
         (long long)n, what, med[0] * 1e3, med[1] * 1e3, ratio);
  printf("@scan %lld %lld %s %.6f %.6f %.3f\n", (long long)rows, (long long)n,
         what, med[0] * 1e3, med[1] * 1e3, ratio);
  fflush(stdout);
  loom_release(c.x);
  loom_release(c.r);
  loom_release(c.triangle);
  loom_scope_end(s);
}

int main(int argc, char **argv) {
  int samples = 7;
  double min_s = 0.03;
  bench_options(argc, argv,
                "usage: bench-scan [--samples N] [--min-ms MS]\n"
                "loom_cumsum vs x @ triu(ones), ms per call.\n",
                &samples, &min_s);
  loom_manual_seed(1);
  printf("# loom threads %d; %d samples of >= %.0f ms; float32\n",
         loom_num_threads(), samples, min_s * 1e3);
  printf("# %11s %-8s %10s %10s %8s\n", "rows x n", "pass", "kernel_ms",
         "matmul_ms", "speedup");
  static const int64_t shapes[][2] = {
      {20, 115}, {64, 128}, {64, 1024}, {16, 8192}};
  for (int i = 0; i < 4; i++)
    for (int b = 0; b < 2; b++)
      bench_shape(shapes[i][0], shapes[i][1], b, samples, min_s);
  loom_cleanup();
  return 0;
}
