/* The IRNN of Le, Jaitly and Hinton (2015), "A Simple Way to Initialize
 * Recurrent Networks of Rectified Linear Units", on their adding problem.
 *
 * A plain ReLU RNN whose recurrent weight starts as the identity and its
 * biases at zero, so at first it carries its state unchanged: gradients
 * neither vanish nor explode over long sequences. Each input step holds a
 * random number in [0, 1) and a marker; two steps are marked (one in each
 * half) and the target is the sum of their numbers. Always answering 1
 * scores the variance of that sum, 1/6 = 0.167: the network must beat it.
 * Prints the test mean squared error; the exit status is 0 when it is
 * below 0.05. */
#include "example.h"

#include <math.h>

#include <stdio.h>
#include <stdlib.h>

#define PROG "irnn_adding"
enum { HIDDEN = 64, BATCH = 32, TEST = 512 };

/* n problems of length T: x (T, n, 2) and the targets y (n, 1). */
static void problems(loom_rng *g, int64_t T, int64_t n, float *x, float *y) {
  for (int64_t b = 0; b < n; b++) {
    int64_t first = (int64_t)(loom_rng_uniform(g) * (double)(T / 2));
    int64_t second =
        T / 2 + (int64_t)(loom_rng_uniform(g) * (double)(T - T / 2));
    y[b] = 0;
    for (int64_t t = 0; t < T; t++) {
      float v = (float)loom_rng_uniform(g), mark = t == first || t == second;
      x[(t * n + b) * 2] = v;
      x[(t * n + b) * 2 + 1] = mark;
      y[b] += mark * v;
    }
  }
}

typedef struct {
  loom_module base;
  loom_rnn *rnn;
  loom_tensor *w, *b; /* readout of the last state */
} irnn;

static void irnn_destroy(loom_module *m) { free(m); }

/* The paper's initialisation: W_hh = I, biases 0, W_ih ~ N(0, 0.001^2). */
static int identity_init(loom_rnn *r) {
  loom_tensor_map *p = loom_module_named_parameters(&r->base);
  int rc =
      p && loom_init_eye_(loom_tensor_map_get(p, "weight_hh_l0")) == 0 &&
              loom_init_normal_(loom_tensor_map_get(p, "weight_ih_l0"), 0,
                                0.001, NULL) == 0 &&
              loom_init_constant_(loom_tensor_map_get(p, "bias_hh_l0"), 0) ==
                  0 &&
              loom_init_constant_(loom_tensor_map_get(p, "bias_ih_l0"), 0) == 0
          ? 0
          : -1;
  loom_tensor_map_free(p);
  return rc;
}

static irnn *irnn_new(void) {
  irnn *m = calloc(1, sizeof *m);
  if (!m)
    return NULL;
  loom_module_init(&m->base, "IRNN", irnn_destroy);
  loom_scope *s = loom_scope_begin();
  m->rnn =
      loom_rnn_new(&loom_rnn_relu_cell,
                   (loom_rnn_opts){.input_size = 2, .hidden_size = HIDDEN});
  if (m->rnn)
    loom_module_add_child(&m->base, "rnn", &m->rnn->base);
  m->w = loom_module_add_param(
      &m->base, "w",
      loom_rand(NULL, LOOM_F32, -0.1, 0.1, LOOM_SHAPE(1, HIDDEN)));
  m->b =
      loom_module_add_param(&m->base, "b", loom_zeros(LOOM_F32, LOOM_SHAPE(1)));
  loom_scope_end(s);
  if (!m->rnn || !m->w || !m->b || identity_init(m->rnn) < 0) {
    loom_module_free(&m->base);
    return NULL;
  }
  return m;
}

/* The sums (n, 1) the network reads off its last state for x (T, n, 2). */
static loom_tensor *answer(irnn *m, const loom_tensor *x) {
  loom_tensor *out, *h_n;
  if (loom_rnn_forward(m->rnn, x, NULL, NULL, &out, &h_n) < 0)
    return NULL;
  return loom_linear(loom_select(h_n, 0, 0), m->w, m->b);
}

/* One step: mean squared error, backward, gradient norm clipped to 1,
 * Adam. */
static int train_step(irnn *m, loom_optimizer *opt, loom_tensor *const *params,
                      int n_params, const loom_tensor *x, const loom_tensor *y,
                      double *loss) {
  loom_scope *s = loom_scope_begin();
  loom_optimizer_zero_grad(opt);
  loom_tensor *l = loom_mse_loss(answer(m, x), y, LOOM_MEAN);
  int rc = l && loom_backward(l) == 0 ? 0 : -1;
  if (rc == 0) {
    *loss = loom_item(l);
    double norm = loom_clip_grad_norm(params, n_params, 1.0, 2);
    rc = isfinite(norm) ? loom_optimizer_step(opt) : -1; /* NaN: an error */
  }
  loom_scope_end(s);
  return rc;
}

int main(int argc, char **argv) {
  example_options o = {.steps = 2000, .seed = 1};
  int rc = example_parse(argc, argv, PROG,
                         "Trains an identity-initialised ReLU RNN on the "
                         "adding problem (sequences of 30 steps).\n",
                         &o);
  if (rc)
    return rc == 1 ? 0 : rc;
  const int64_t T = 30;
  loom_manual_seed((uint64_t)o.seed);
  loom_rng *g = loom_rng_new((uint64_t)o.seed);
  float *x = malloc(T * TEST * 2 * sizeof *x), *y = malloc(TEST * sizeof *y);
  irnn *m = g && x && y ? irnn_new() : NULL;
  loom_tensor *params[8];
  int n = m ? loom_module_parameters(&m->base, params, 8) : 0;
  loom_optimizer *opt =
      m ? loom_adam_new(params, n, loom_adam_defaults(3e-3)) : NULL;
  if (!opt)
    return example_fail(PROG, "setup");
  double loss = 0;
  for (int64_t step = 1; step <= o.steps && rc == 0; step++) {
    loom_scope *s = loom_scope_begin();
    problems(g, T, BATCH, x, y);
    if (train_step(m, opt, params, n,
                   loom_from_array(LOOM_F32, x, LOOM_SHAPE(T, BATCH, 2)),
                   loom_from_array(LOOM_F32, y, LOOM_SHAPE(BATCH, 1)),
                   &loss) < 0)
      rc = example_fail(PROG, "training");
    else if (step % 250 == 0)
      printf("step %lld  loss %.4f\n", (long long)step, loss);
    loom_scope_end(s);
  }
  loom_scope *s = loom_scope_begin();
  problems(g, T, TEST, x, y);
  loom_no_grad_begin();
  loom_tensor *mse = loom_mse_loss(
      answer(m, loom_from_array(LOOM_F32, x, LOOM_SHAPE(T, TEST, 2))),
      loom_from_array(LOOM_F32, y, LOOM_SHAPE(TEST, 1)), LOOM_MEAN);
  loom_no_grad_end();
  if (rc == 0 && !mse)
    rc = example_fail(PROG, "test");
  if (rc == 0) {
    printf("test MSE %.4f (always answering 1: 0.167)\n", loom_item(mse));
    if (!(loom_item(mse) < 0.05))
      rc = (fprintf(stderr, PROG ": test MSE above 0.05\n"), 1);
  }
  loom_scope_end(s);
  loom_optimizer_free(opt);
  loom_module_free(m ? &m->base : NULL);
  loom_rng_free(g);
  free(x), free(y);
  loom_cleanup();
  return rc;
}
