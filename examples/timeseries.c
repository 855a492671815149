/* Time-series prediction with truncated backpropagation through time: an
 * LSTM reads a long series in chunks, carrying its state (detached) from
 * one chunk to the next, and predicts each next value. It is compared with
 * the last-value baseline (tomorrow is like today).
 *
 * The series is generated: two sines of incommensurate periods plus
 * noise. Prints the test mean squared error of both; the exit status is 0
 * when the model's is below half the baseline's. */
#include "example.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define PROG "timeseries"
enum { HIDDEN = 32, STREAMS = 16, CHUNK = 50, TRAIN = 40000, TEST = 4000 };

/* n values of the series from time t0, with noise from g. */
static void series(loom_rng *g, int64_t t0, int64_t n, float *out) {
  for (int64_t i = 0; i < n; i++) {
    double t = (double)(t0 + i);
    out[i] = (float)(sin(0.07 * t) + 0.5 * sin(0.213 * t + 1) +
                     0.05 * loom_rng_normal(g));
  }
}

typedef struct {
  loom_module base;
  loom_rnn *lstm;
  loom_tensor *w, *b; /* the readout: hidden -> 1 */
} predictor;

static void predictor_destroy(loom_module *m) { free(m); }

static predictor *predictor_new(void) {
  predictor *p = calloc(1, sizeof *p);
  if (!p)
    return NULL;
  loom_module_init(&p->base, "Predictor", predictor_destroy);
  loom_scope *s = loom_scope_begin();
  p->lstm =
      loom_lstm_new((loom_rnn_opts){.input_size = 1, .hidden_size = HIDDEN});
  if (p->lstm)
    loom_module_add_child(&p->base, "lstm", &p->lstm->base);
  p->w = loom_module_add_param(
      &p->base, "w",
      loom_rand(NULL, LOOM_F32, -0.1, 0.1, LOOM_SHAPE(1, HIDDEN)));
  p->b =
      loom_module_add_param(&p->base, "b", loom_zeros(LOOM_F32, LOOM_SHAPE(1)));
  loom_scope_end(s);
  if (!p->lstm || !p->w || !p->b) {
    loom_module_free(&p->base);
    return NULL;
  }
  return p;
}

/* Predictions (T, B, 1) for the chunk x (T, B, 1), from the states
 * state[2] (NULL: zeros); the final states go to next[2]. */
static loom_tensor *predict(predictor *p, const loom_tensor *x,
                            loom_tensor *const *state, loom_tensor **next) {
  loom_tensor *h;
  if (loom_rnn_forward(p->lstm, x, NULL, state[0] ? state : NULL, &h, next) < 0)
    return NULL;
  return loom_linear(h, p->w, p->b);
}

/* One step of truncated BPTT: mean squared error of the chunk's
 * predictions against the next values y, backward (through this chunk
 * only: the carried state is detached), clipping, Adam; the final states
 * replace state[2] for the next chunk. */
static int train_step(predictor *p, loom_optimizer *opt,
                      loom_tensor *const *params, int n_params, const float *x,
                      const float *y, loom_tensor **state, double *loss) {
  loom_scope *s = loom_scope_begin();
  loom_tensor *next[2];
  loom_optimizer_zero_grad(opt);
  loom_tensor *l = loom_mse_loss(
      predict(p, loom_from_array(LOOM_F32, x, LOOM_SHAPE(CHUNK, STREAMS, 1)),
              state, next),
      loom_from_array(LOOM_F32, y, LOOM_SHAPE(CHUNK, STREAMS, 1)), LOOM_MEAN);
  int rc = l && loom_backward(l) == 0 ? 0 : -1;
  if (rc == 0) {
    *loss = loom_item(l);
    double norm = loom_clip_grad_norm(params, n_params, 1.0, 2);
    rc = isfinite(norm) ? loom_optimizer_step(opt) : -1; /* NaN: an error */
  }
  for (int k = 0; rc == 0 && k < 2; k++) {
    loom_release(state[k]);
    state[k] = loom_keep(loom_detach(next[k]));
  }
  loom_scope_end(s);
  return rc;
}

/* Mean squared error of the model's next-value predictions over v[0..n)
 * (one stream, state carried through it), or -1 on error. */
static double test_error(predictor *p, const float *v, int64_t n) {
  loom_no_grad_begin();
  loom_tensor *state[2] = {NULL, NULL}, *next[2];
  double sum = 0;
  int64_t count = 0;
  for (int64_t pos = 0; pos + CHUNK < n; pos += CHUNK) {
    loom_scope *s = loom_scope_begin();
    loom_tensor *pred =
        predict(p, loom_from_array(LOOM_F32, v + pos, LOOM_SHAPE(CHUNK, 1, 1)),
                state, next);
    loom_tensor *e = loom_mse_loss(
        pred, loom_from_array(LOOM_F32, v + pos + 1, LOOM_SHAPE(CHUNK, 1, 1)),
        LOOM_SUM);
    if (e) {
      sum += loom_item(e);
      count += CHUNK;
      for (int k = 0; k < 2; k++) {
        loom_release(state[k]);
        state[k] = loom_keep(next[k]);
      }
    }
    loom_scope_end(s);
    if (!e) {
      count = 0;
      break;
    }
  }
  loom_release(state[0]);
  loom_release(state[1]);
  loom_no_grad_end();
  return count ? sum / (double)count : -1;
}

int main(int argc, char **argv) {
  example_options o = {.steps = 600, .seed = 1};
  int rc = example_parse(argc, argv, PROG,
                         "Trains an LSTM with truncated BPTT to predict the "
                         "next value of a noisy series.\n",
                         &o);
  if (rc)
    return rc == 1 ? 0 : rc;
  loom_manual_seed((uint64_t)o.seed);
  loom_rng *g = loom_rng_new((uint64_t)o.seed);
  float *train = malloc(TRAIN * sizeof *train),
        *test = malloc(TEST * sizeof *test);
  float *x = malloc(CHUNK * STREAMS * sizeof *x),
        *y = malloc(CHUNK * STREAMS * sizeof *y);
  predictor *p = g && train && test && x && y ? predictor_new() : NULL;
  loom_tensor *params[8];
  int n = p ? loom_module_parameters(&p->base, params, 8) : 0;
  loom_optimizer *opt =
      p ? loom_adam_new(params, n, loom_adam_defaults(5e-3)) : NULL;
  if (!opt)
    return example_fail(PROG, "setup");
  series(g, 0, TRAIN, train);
  series(g, TRAIN, TEST, test); /* the series' continuation */
  /* STREAMS equal slices of the training series, read chunk by chunk */
  int64_t len = TRAIN / STREAMS, pos = 0;
  loom_tensor *state[2] = {NULL, NULL};
  double loss = 0;
  for (int64_t step = 1; step <= o.steps && rc == 0; step++) {
    if (pos + CHUNK + 1 > len) { /* an epoch is over: start from zeros */
      pos = 0;
      loom_release(state[0]), loom_release(state[1]);
      state[0] = state[1] = NULL;
    }
    for (int64_t t = 0; t < CHUNK; t++)
      for (int64_t b = 0; b < STREAMS; b++) {
        x[t * STREAMS + b] = train[b * len + pos + t];
        y[t * STREAMS + b] = train[b * len + pos + t + 1];
      }
    pos += CHUNK;
    if (train_step(p, opt, params, n, x, y, state, &loss) < 0)
      rc = example_fail(PROG, "training");
    else if (step % 200 == 0)
      printf("step %lld  training loss %.5f\n", (long long)step, loss);
  }
  double model = rc ? -1 : test_error(p, test, TEST), baseline = 0;
  for (int64_t t = 0; t + 1 < TEST; t++)
    baseline += (test[t + 1] - test[t]) * (test[t + 1] - test[t]);
  baseline /= TEST - 1;
  if (rc == 0 && model < 0)
    rc = example_fail(PROG, "test");
  if (rc == 0) {
    printf("test MSE: LSTM %.5f, last value %.5f (noise alone %.5f)\n", model,
           baseline, 0.05 * 0.05);
    if (!(model < baseline / 2))
      rc = (fprintf(stderr, PROG ": the LSTM is not twice as good as the "
                                 "last-value baseline\n"),
            1);
  }
  loom_release(state[0]);
  loom_release(state[1]);
  loom_optimizer_free(opt);
  loom_module_free(p ? &p->base : NULL);
  loom_rng_free(g);
  free(train), free(test), free(x), free(y);
  loom_cleanup();
  return rc;
}
