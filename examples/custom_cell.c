/* A recurrent cell of your own, from scratch: the IndRNN of Li et al.
 * (2018), h' = relu(W x + b + u * h), each unit with its own recurrent
 * weight u (a vector, not a matrix).
 *
 * Three parts, the pattern for any new layer:
 *   1. the cell: how to make its parameters, its input projection for all
 *      steps at once, one step, and which weights are recurrent (so the
 *      runner can weight-drop them);
 *   2. a gradient check of the whole layer the runner makes of it (2
 *      layers, both directions, variable lengths, weight-drop, zoneout) in
 *      float64, against central differences;
 *   3. training it on a memory task: read a sequence of numbers, the
 *      first one marked, then say the marked one.
 * The exit status is 0 when the gradients check and the loss falls to a
 * tenth of the trivial answer's. */
#include "example.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define PROG "custom_cell"

/* ---- 1. the cell ---- */

typedef struct {
  loom_tensor *w, *b; /* input projection: hidden x input, hidden */
  loom_tensor *u;     /* recurrent weights: hidden */
} indrnn;

static loom_tensor *param(loom_module *owner, const char *name,
                          const char *suffix, loom_tensor *init) {
  char full[64];
  snprintf(full, sizeof full, "%s%s", name, suffix);
  return loom_module_add_param(owner, full, init);
}

static void *make(const void *config, loom_module *owner, const char *suffix,
                  int64_t in, int64_t hidden) {
  (void)config;
  indrnn *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  double k = 1 / sqrt((double)in);
  loom_scope *s = loom_scope_begin();
  c->w =
      param(owner, "weight_ih", suffix,
            loom_rand(NULL, LOOM_DTYPE_DEFAULT, -k, k, LOOM_SHAPE(hidden, in)));
  c->b = param(owner, "bias_ih", suffix,
               loom_zeros(LOOM_DTYPE_DEFAULT, LOOM_SHAPE(hidden)));
  /* |u| <= 1 keeps the state from growing; near 1 it remembers */
  c->u = param(owner, "weight_hh", suffix,
               loom_rand(NULL, LOOM_DTYPE_DEFAULT, 0.5, 1, LOOM_SHAPE(hidden)));
  loom_scope_end(s);
  if (!c->w || !c->b || !c->u) {
    free(c);
    return NULL;
  }
  return c;
}

static loom_tensor *project(void *cell, const loom_tensor *x) {
  indrnn *c = cell;
  return loom_linear(x, c->w, c->b); /* one product for every step */
}

static int step(void *cell, const loom_tensor *xp, loom_tensor *const *state,
                loom_tensor **next) {
  indrnn *c = cell;
  next[0] = loom_relu(loom_add(xp, loom_mul(state[0], c->u)));
  return next[0] ? 0 : -1;
}

static int recurrent_weights(void *cell, loom_tensor ***slots) {
  slots[0] = &((indrnn *)cell)->u;
  return 1;
}

static const loom_cell_type indrnn_cell = {.name = "IndRNN",
                                           .n_states = 1,
                                           .make = make,
                                           .project = project,
                                           .step = step,
                                           .recurrent_weights =
                                               recurrent_weights};

/* ---- 2. the gradient check ---- */

typedef struct {
  loom_rnn *layer;
  loom_rng *masks;
  const loom_tensor *lengths;
} check_ctx;

/* The function checked: in[0] is x, the rest the layer's parameters
 * (gradcheck perturbs them in place); outputs are the layer's output and
 * final state. The same masks every call, or the differences would see
 * noise. */
static int layer_fn(loom_tensor *const *in, int n, loom_tensor **out, int max,
                    void *ctx) {
  (void)n, (void)max;
  check_ctx *c = ctx;
  loom_rng_seed(c->masks, 7);
  return loom_rnn_forward(c->layer, in[0], c->lengths, NULL, &out[0], &out[1]) <
                 0
             ? -1
             : 2;
}

static bool gradient_check(void) {
  loom_set_default_dtype(LOOM_F64); /* differences need float64 */
  check_ctx c = {.masks = loom_rng_new(7)};
  c.layer = loom_rnn_new(&indrnn_cell, (loom_rnn_opts){.input_size = 3,
                                                       .hidden_size = 4,
                                                       .num_layers = 2,
                                                       .bidirectional = true,
                                                       .weight_drop = 0.2,
                                                       .zoneout = {0.1},
                                                       .rng = c.masks});
  loom_scope *s = loom_scope_begin();
  loom_tensor *in[16];
  in[0] = loom_set_requires_grad(
      loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(5, 2, 3)), true);
  c.lengths = loom_from_array(LOOM_I64, (int64_t[]){5, 3}, LOOM_SHAPE(2));
  int n = c.layer ? 1 + loom_module_parameters(&c.layer->base, in + 1, 15) : 0;
  loom_gradcheck_result r = {0};
  bool ok = n > 0 && loom_gradcheck(layer_fn, &c, in, n, NULL, &r) == 1;
  printf("%s\n", n > 0 ? r.message : loom_last_error());
  loom_scope_end(s);
  loom_rnn_free(c.layer);
  loom_rng_free(c.masks);
  loom_set_default_dtype(LOOM_F32);
  loom_clear_error();
  return ok;
}

/* ---- 3. training ---- */

enum { T = 12, BATCH = 32, HIDDEN = 32 };

typedef struct {
  loom_module base;
  loom_rnn *rnn;
  loom_tensor *w, *b;
} recaller;

static void recaller_destroy(loom_module *m) { free(m); }

static recaller *recaller_new(void) {
  recaller *m = calloc(1, sizeof *m);
  if (!m)
    return NULL;
  loom_module_init(&m->base, "Recaller", recaller_destroy);
  loom_scope *s = loom_scope_begin();
  m->rnn = loom_rnn_new(
      &indrnn_cell,
      (loom_rnn_opts){.input_size = 2, .hidden_size = HIDDEN, .num_layers = 2});
  if (m->rnn)
    loom_module_add_child(&m->base, "rnn", &m->rnn->base);
  m->w = loom_module_add_param(
      &m->base, "w",
      loom_rand(NULL, LOOM_F32, -0.1, 0.1, LOOM_SHAPE(1, HIDDEN)));
  m->b =
      loom_module_add_param(&m->base, "b", loom_zeros(LOOM_F32, LOOM_SHAPE(1)));
  loom_scope_end(s);
  if (!m->rnn || !m->w || !m->b) {
    loom_module_free(&m->base);
    return NULL;
  }
  return m;
}

/* Squared error of the marked number recalled from the last state of x
 * (T, BATCH, 2: the number, the marker), backward, clipping, Adam. */
static int train_step(recaller *m, loom_optimizer *opt,
                      loom_tensor *const *params, int n_params,
                      const loom_tensor *x, double *loss) {
  loom_scope *s = loom_scope_begin();
  loom_optimizer_zero_grad(opt);
  loom_tensor *out, *h_n, *l = NULL;
  if (loom_rnn_forward(m->rnn, x, NULL, NULL, &out, &h_n) == 0)
    l = loom_mse_loss(loom_linear(loom_select(h_n, 0, 1), m->w, m->b),
                      loom_narrow(loom_select(x, 0, 0), 1, 0, 1), LOOM_MEAN);
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
  example_options o = {.steps = 600, .seed = 1};
  int rc = example_parse(argc, argv, PROG,
                         "Defines the IndRNN cell, gradient-checks the layers "
                         "the runner makes of it, and trains one.\n",
                         &o);
  if (rc)
    return rc == 1 ? 0 : rc;
  loom_manual_seed((uint64_t)o.seed);
  if (!gradient_check())
    return fprintf(stderr, PROG ": the gradient check failed\n"), 1;
  recaller *m = recaller_new();
  loom_tensor *params[16];
  int n = m ? loom_module_parameters(&m->base, params, 16) : 0;
  loom_optimizer *opt =
      m ? loom_adam_new(params, n, loom_adam_defaults(1e-2)) : NULL;
  if (!opt)
    return example_fail(PROG, "setup");
  double loss = 0, sum = 0, recent = 0; /* recent: a moving average */
  for (int64_t step = 1; step <= o.steps && rc == 0; step++) {
    loom_scope *s = loom_scope_begin();
    loom_tensor *numbers =
        loom_rand(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(T, BATCH, 1));
    loom_tensor *marker = loom_concat(
        (loom_tensor *[]){loom_ones(LOOM_F32, LOOM_SHAPE(1, BATCH, 1)),
                          loom_zeros(LOOM_F32, LOOM_SHAPE(T - 1, BATCH, 1))},
        2, 0);
    loom_tensor *x = loom_concat((loom_tensor *[]){numbers, marker}, 2, 2);
    if (train_step(m, opt, params, n, x, &loss) < 0)
      rc = example_fail(PROG, "training");
    sum += loss;
    recent = step == 1 ? loss : 0.95 * recent + 0.05 * loss;
    if (step % 100 == 0) {
      printf("steps %lld-%lld  mean loss %.4f\n", (long long)step - 99,
             (long long)step, sum / 100);
      sum = 0;
    }
    loom_scope_end(s);
  }
  /* answering the mean, 1/2, scores the variance of U(0, 1): 1/12 */
  if (rc == 0 && !(recent < 1.0 / 120))
    rc = (fprintf(stderr, PROG ": loss %.4f is not a tenth of 1/12\n", recent),
          1);
  loom_optimizer_free(opt);
  loom_module_free(&m->base);
  loom_cleanup();
  return rc;
}
