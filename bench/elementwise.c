/* Elementwise ops and a full sum: loom against plain C loops and memcpy.
 *
 * For add, mul, tanh, sigmoid and sum on float32 tensors of 1M and 16M
 * elements, in one run:
 *   memcpy       copy of n floats, one thread (the bandwidth yardstick)
 *   plain/1      the obvious C loop into a preallocated output, 1 thread:
 *                a[i]+b[i], a[i]*b[i], tanhf, 1/(1+expf(-x)), and for sum a
 *                double accumulator
 *   plain/2      the same loop split over 2 OpenMP threads
 *   plain+alloc  plain/2 into a freshly malloc'd output freed after the
 *                call, which is what any op returning new memory pays
 *   loom/1       the loom op (scope begin, op, scope end) after
 *                loom_set_num_threads(1)
 *   loom/2       the same with loom's default thread count
 * GB/s counts bytes read + written (add/mul 12 B per element, tanh and
 * sigmoid 8, sum 4, memcpy 8). Ratios r1, r2: loom/T's speed over
 * plain/T's (median of per-round ratios; higher is better, 1.0 is parity).
 * Lines starting with "@elem" are for run.sh.
 */
#define _POSIX_C_SOURCE 200809L
#include "bench_util.h"

#include <loom/loom.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { OP_ADD, OP_MUL, OP_TANH, OP_SIGMOID, OP_SUM, OP_COUNT } op_id;

static const char *const op_names[OP_COUNT] = {"add", "mul", "tanh", "sigmoid",
                                               "sum"};
static const int op_bytes[OP_COUNT] = {12, 12, 8, 8, 4};

typedef struct {
  op_id op;
  int64_t n;
  loom_tensor *ta, *tb; /* loom inputs (kept) */
  const float *a, *b;   /* their data, for the plain loops */
  float *out;           /* plain loops' output */
  float *copy;          /* memcpy's destination */
  int threads;          /* for the loom and plain variants */
  volatile double sink; /* keeps the plain sum from being dropped */
} ew_ctx;

static void plain_kernel(ew_ctx *x, float *out, int threads) {
  const float *a = x->a, *b = x->b;
  int64_t n = x->n;
  switch (x->op) {
  case OP_ADD:
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; i++)
      out[i] = a[i] + b[i];
    break;
  case OP_MUL:
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; i++)
      out[i] = a[i] * b[i];
    break;
  case OP_TANH:
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; i++)
      out[i] = tanhf(a[i]);
    break;
  case OP_SIGMOID:
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; i++)
      out[i] = 1.0f / (1.0f + expf(-a[i]));
    break;
  case OP_SUM: {
    double s = 0;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : s)
    for (int64_t i = 0; i < n; i++)
      s += (double)a[i];
    x->sink = s;
    break;
  }
  default:
    break;
  }
}

static void run_plain(void *p) {
  ew_ctx *x = p;
  plain_kernel(x, x->out, x->threads);
}

static void run_plain_alloc(void *p) {
  ew_ctx *x = p;
  if (x->op == OP_SUM) { /* a sum's output is one number: nothing to add */
    plain_kernel(x, x->out, x->threads);
    return;
  }
  float *out = malloc((size_t)x->n * sizeof *out);
  if (!out)
    exit(2);
  plain_kernel(x, out, x->threads);
  x->sink = out[x->n - 1];
  free(out);
}

static void run_memcpy(void *p) {
  ew_ctx *x = p;
  memcpy(x->copy, x->a, (size_t)x->n * sizeof(float));
}

/* The loom op itself; its result belongs to the caller's scope. */
static loom_tensor *loom_op(const ew_ctx *x) {
  loom_tensor *y = NULL;
  switch (x->op) {
  case OP_ADD:
    y = loom_add(x->ta, x->tb);
    break;
  case OP_MUL:
    y = loom_mul(x->ta, x->tb);
    break;
  case OP_TANH:
    y = loom_tanh(x->ta);
    break;
  case OP_SIGMOID:
    y = loom_sigmoid(x->ta);
    break;
  case OP_SUM:
    y = loom_sum_all(x->ta);
    break;
  default:
    break;
  }
  if (!y) {
    fprintf(stderr, "elementwise: %s\n", loom_last_error());
    exit(1);
  }
  return y;
}

static void run_loom(void *p) {
  ew_ctx *x = p;
  loom_set_num_threads(x->threads);
  loom_scope *s = loom_scope_begin();
  loom_op(x);
  loom_scope_end(s);
}

/* Largest |loom - plain| over the output: the two sides must agree. */
static double check(ew_ctx *x) {
  loom_scope *s = loom_scope_begin();
  run_plain(x);
  loom_tensor *y = loom_op(x);
  double err = 0;
  if (x->op == OP_SUM) {
    err = fabs(loom_item(y) - x->sink) / fmax(1, fabs(x->sink));
  } else {
    const float *v = loom_data_f32(y);
    for (int64_t i = 0; i < x->n; i++)
      err = fmax(err, fabs((double)v[i] - x->out[i]));
  }
  loom_scope_end(s);
  return err;
}

enum { V_MEMCPY, V_PLAIN1, V_PLAIN2, V_ALLOC2, V_LOOM1, V_LOOM2, V_COUNT };

static void bench_case(op_id op, int64_t n, int samples, double min_s) {
  loom_scope *s = loom_scope_begin();
  ew_ctx base = {.op = op, .n = n};
  base.ta = loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(n));
  base.tb = loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(n));
  if (!base.ta || !base.tb) {
    fprintf(stderr, "elementwise: %s\n", loom_last_error());
    exit(1);
  }
  base.a = loom_data_f32(base.ta);
  base.b = loom_data_f32(base.tb);
  base.out = bench_alloc_f32((size_t)n);
  base.copy = bench_alloc_f32((size_t)n);
  base.threads = 2;
  double err = check(&base);

  static const int threads[V_COUNT] = {1, 1, 2, 2, 1, 0};
  static const bench_fn fns[V_COUNT] = {run_memcpy,      run_plain, run_plain,
                                        run_plain_alloc, run_loom,  run_loom};
  ew_ctx ctx[V_COUNT];
  void *ctxs[V_COUNT];
  for (int v = 0; v < V_COUNT; v++) {
    memcpy(&ctx[v], &base, sizeof base);
    ctx[v].threads = threads[v];
    ctxs[v] = &ctx[v];
  }
  double med[V_COUNT], gbs[V_COUNT], *times;
  times = malloc(sizeof *times * V_COUNT * (size_t)samples);
  if (!times)
    exit(2);
  bench_compare(V_COUNT, fns, ctxs, samples, min_s, med, times);
  loom_set_num_threads(0);
  for (int v = 0; v < V_COUNT; v++)
    gbs[v] = (v == V_MEMCPY ? 8.0 : op_bytes[op]) * (double)n / med[v] * 1e-9;
  double r1 = bench_speed_ratio(times, samples, V_LOOM1, V_PLAIN1);
  double r2 = bench_speed_ratio(times, samples, V_LOOM2, V_PLAIN2);
  free(times);
  printf("%-8s %4lldM %7.2f %7.2f %7.2f %7.2f %7.2f %7.2f %6.2f %6.2f "
         "%8.3f %.1e\n",
         op_names[op], (long long)(n >> 20), gbs[V_MEMCPY], gbs[V_PLAIN1],
         gbs[V_PLAIN2], gbs[V_ALLOC2], gbs[V_LOOM1], gbs[V_LOOM2], r1, r2,
         med[V_LOOM2] * 1e3, err);
  printf("@elem %s %lld %.3f %.3f %.3f %.3f %.3f %.3f %.4f %.4f %.4f\n",
         op_names[op], (long long)n, gbs[V_MEMCPY], gbs[V_PLAIN1],
         gbs[V_PLAIN2], gbs[V_ALLOC2], gbs[V_LOOM1], gbs[V_LOOM2], r1, r2,
         med[V_LOOM2] * 1e3);
  fflush(stdout);
  free(base.out);
  free(base.copy);
  loom_scope_end(s);
}

int main(int argc, char **argv) {
  int samples = 7;
  double min_s = 0.03;
  const char *only = bench_take_option(&argc, argv, "op");
  bench_options(argc, argv,
                "usage: bench-elementwise [--samples N] [--min-ms MS] "
                "[--op NAME]\n"
                "loom elementwise ops vs plain C loops, GB/s.\n",
                &samples, &min_s);
  loom_manual_seed(1);
  printf("# loom default threads %d; %d samples of >= %.0f ms; GB/s "
         "(read + written)\n",
         loom_num_threads(), samples, min_s * 1e3);
  printf("%-8s %5s %7s %7s %7s %7s %7s %7s %6s %6s %8s %s\n", "# op", "n",
         "memcpy", "plain1", "plain2", "p2+aloc", "loom1", "loom2", "r1", "r2",
         "loom2_ms", "max_err");
  static const int64_t sizes[] = {1 << 20, 16 << 20};
  for (int si = 0; si < 2; si++)
    for (int op = 0; op < OP_COUNT; op++)
      if (!only || !strcmp(only, op_names[op]))
        bench_case((op_id)op, sizes[si], samples, min_s);
  loom_cleanup();
  return 0;
}
