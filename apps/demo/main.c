/* demo: learns a two-spiral classifier with a small MLP written directly in
 * loom ops, gradient-checks a layer, and prints what it did. */
#include <loom/loom.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#define N 200 /* points per spiral */
#define PI 3.14159265358979323846

static void spirals(loom_tensor **x, loom_tensor **y) {
  float pts[2 * N][2];
  int64_t labels[2 * N];
  for (int i = 0; i < 2 * N; i++) {
    int c = i % 2;
    double t = 0.25 + 3.0 * (i / 2) / N, r = t / 3.3;
    double a = t * 2.2 + c * PI;
    pts[i][0] = (float)(r * cos(a) + 0.02 * loom_rng_normal(NULL));
    pts[i][1] = (float)(r * sin(a) + 0.02 * loom_rng_normal(NULL));
    labels[i] = c;
  }
  *x = loom_keep(loom_from_array(LOOM_F32, pts, LOOM_SHAPE(2 * N, 2)));
  *y = loom_keep(loom_from_array(LOOM_I64, labels, LOOM_SHAPE(2 * N)));
}

static loom_tensor *param(int64_t rows, int64_t cols, double scale) {
  loom_tensor *t =
      cols ? loom_randn(NULL, LOOM_F32, 0, scale, LOOM_SHAPE(rows, cols))
           : loom_zeros(LOOM_F32, LOOM_SHAPE(rows));
  return loom_keep(loom_set_requires_grad(t, true));
}

static int mlp_for_check(loom_tensor *const *in, int n, loom_tensor **out,
                         int max, void *ctx) {
  (void)n, (void)max, (void)ctx;
  out[0] = loom_log_softmax(
      loom_linear(loom_tanh(loom_linear(in[0], in[1], in[2])), in[3], NULL), 1);
  return out[0] ? 1 : -1;
}

int main(int argc, char **argv) {
  if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    printf("usage: loom-demo\nTrains a 2-64-64-2 MLP on two generated "
           "spirals with plain SGD, then gradient-checks the layer.\n");
    return 0;
  }
  loom_manual_seed(1);
  loom_tensor *x, *y;
  spirals(&x, &y);
  loom_tensor *p[6] = {param(64, 2, 1.0),   param(64, 0, 0),
                       param(64, 64, 0.15), param(64, 0, 0),
                       param(2, 64, 0.15),  param(2, 0, 0)};
  printf("loom demo: two spirals, %d points, MLP 2-64-64-2, SGD lr 0.5\n",
         2 * N);
  for (int step = 0; step <= 2000; step++) {
    loom_scope *s = loom_scope_begin();
    loom_tensor *h = loom_tanh(loom_linear(x, p[0], p[1]));
    h = loom_tanh(loom_linear(h, p[2], p[3]));
    loom_tensor *logp = loom_log_softmax(loom_linear(h, p[4], p[5]), 1);
    loom_tensor *nll =
        loom_neg(loom_mean_all(loom_gather(logp, 1, loom_unsqueeze(y, 1))));
    if (!nll || loom_backward(nll) < 0) {
      fprintf(stderr, "demo: %s\n", loom_last_error());
      return 1;
    }
    loom_no_grad_begin();
    for (int i = 0; i < 6; i++) {
      loom_add_(p[i], loom_grad(p[i]), -0.5);
      loom_zero_grad(p[i]);
    }
    if (step % 400 == 0) {
      double acc =
          loom_item(loom_mean_all(loom_eq(loom_argmax(logp, 1, false), y)));
      printf("step %4d  loss %.4f  accuracy %5.1f%%\n", step, loom_item(nll),
             100 * acc);
    }
    loom_no_grad_end();
    loom_scope_end(s);
  }
  loom_scope *s = loom_scope_begin();
  loom_tensor *in[4];
  in[0] = loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(5, 2));
  in[1] = loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(4, 2));
  in[2] = loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(4));
  in[3] = loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(3, 4));
  for (int i = 0; i < 4; i++)
    loom_set_requires_grad(in[i], true);
  loom_gradcheck_result r;
  loom_gradcheck(mlp_for_check, NULL, in, 4, NULL, &r);
  printf("%s\n", r.message);
  loom_scope_end(s);
  for (int i = 0; i < 6; i++)
    loom_release(p[i]);
  loom_release(x);
  loom_release(y);
  loom_cleanup();
  printf("live tensors at exit: %lld\n", (long long)loom_debug_live_tensors());
  return r.passed ? 0 : 1;
}
