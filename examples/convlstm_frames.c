/* Next-frame prediction with a ConvLSTM (Shi et al. 2015): the cell of
 * examples/convlstm.c, whose gates are convolutions so its states stay
 * images, run by the sequence runner over clips of a square moving across
 * a 16 x 16 frame and bouncing off the walls. A 1 x 1 convolution reads
 * each step's state out as the next frame.
 *
 * Predicting motion needs two frames of memory: copying the last frame (the
 * baseline) misses where the square went. Prints the test mean squared
 * error of both; the exit status is 0 when the model's is below half the
 * baseline's. */
#include "cells.h"
#include "example.h"

#include <math.h>

#include <stdio.h>
#include <stdlib.h>

#define PROG "convlstm_frames"
enum { SIZE = 16, SQUARE = 4, FRAMES = 10, BATCH = 8, HIDDEN = 8, TEST = 32 };

/* One clip, (FRAMES, 1, SIZE, SIZE) of 0s and 1s, at clip[b] of a batch
 * laid out (FRAMES, n, 1, SIZE, SIZE). */
static void clip(loom_rng *g, float *frames, int64_t b, int64_t n) {
  int64_t room = SIZE - SQUARE;
  int64_t x = (int64_t)(loom_rng_uniform(g) * (double)(room + 1));
  int64_t y = (int64_t)(loom_rng_uniform(g) * (double)(room + 1));
  int64_t vx = loom_rng_uniform(g) < 0.5 ? -1 : 1;
  int64_t vy = loom_rng_uniform(g) < 0.5 ? -1 : 1;
  for (int64_t t = 0; t < FRAMES; t++) {
    float *f = frames + (t * n + b) * SIZE * SIZE;
    for (int64_t i = 0; i < SIZE * SIZE; i++)
      f[i] = 0;
    for (int64_t r = 0; r < SQUARE; r++)
      for (int64_t c = 0; c < SQUARE; c++)
        f[(y + r) * SIZE + x + c] = 1;
    if (x + vx < 0 || x + vx > room) /* bounce */
      vx = -vx;
    if (y + vy < 0 || y + vy > room)
      vy = -vy;
    x += vx;
    y += vy;
  }
}

typedef struct {
  loom_module base;
  loom_rnn *convlstm;
  loom_tensor *w, *b; /* 1 x 1 readout: HIDDEN channels -> 1 */
} model;

static void model_destroy(loom_module *m) { free(m); }

static model *model_new(void) {
  model *m = calloc(1, sizeof *m);
  if (!m)
    return NULL;
  loom_module_init(&m->base, "FramePredictor", model_destroy);
  static const int64_t kernel = 3;
  loom_scope *s = loom_scope_begin();
  m->convlstm = loom_rnn_new(&example_convlstm_cell,
                             (loom_rnn_opts){.input_size = 1,
                                             .hidden_size = HIDDEN,
                                             .cell_config = &kernel});
  if (m->convlstm)
    loom_module_add_child(&m->base, "convlstm", &m->convlstm->base);
  m->w = loom_module_add_param(
      &m->base, "w",
      loom_rand(NULL, LOOM_F32, -0.3, 0.3, LOOM_SHAPE(1, HIDDEN, 1, 1)));
  m->b = loom_module_add_param(&m->base, "b",
                               loom_full(LOOM_F32, -2, LOOM_SHAPE(1)));
  loom_scope_end(s);
  if (!m->convlstm || !m->w || !m->b) {
    loom_module_free(&m->base);
    return NULL;
  }
  return m;
}

/* Probabilities (T, n, 1, SIZE, SIZE) that each pixel of the next frame is
 * lit, for the frames x (T, n, 1, SIZE, SIZE). */
static loom_tensor *predict(model *m, const loom_tensor *x) {
  loom_tensor *h;
  if (loom_rnn_forward(m->convlstm, x, NULL, NULL, &h, NULL) < 0)
    return NULL;
  const int64_t *s = loom_shape(h); /* (T, n, HIDDEN, SIZE, SIZE) */
  loom_tensor *y = loom_conv2d(
      loom_reshape(h, 4, (int64_t[]){s[0] * s[1], HIDDEN, SIZE, SIZE}), m->w,
      m->b, (loom_conv2d_opts){0});
  return loom_sigmoid(
      loom_reshape(y, 5, (int64_t[]){s[0], s[1], 1, SIZE, SIZE}));
}

/* One step: frames 0..T-2 predict frames 1..T-1 (binary cross-entropy per
 * pixel), backward through the whole clip, clipping, Adam. */
static int train_step(model *m, loom_optimizer *opt, loom_tensor *const *params,
                      int n_params, const loom_tensor *clips, double *loss) {
  loom_scope *s = loom_scope_begin();
  loom_optimizer_zero_grad(opt);
  loom_tensor *l = loom_binary_cross_entropy(
      predict(m, loom_narrow(clips, 0, 0, FRAMES - 1)),
      loom_narrow(clips, 0, 1, FRAMES - 1), NULL, LOOM_MEAN);
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
  example_options o = {.steps = 300, .seed = 1};
  int rc = example_parse(argc, argv, PROG,
                         "Trains a ConvLSTM to predict the next frame of a "
                         "moving square.\n",
                         &o);
  if (rc)
    return rc == 1 ? 0 : rc;
  loom_manual_seed((uint64_t)o.seed);
  loom_rng *g = loom_rng_new((uint64_t)o.seed);
  size_t frame = SIZE * SIZE;
  float *train = malloc(FRAMES * BATCH * frame * sizeof *train);
  float *test = malloc(FRAMES * TEST * frame * sizeof *test);
  model *m = g && train && test ? model_new() : NULL;
  loom_tensor *params[8];
  int n = m ? loom_module_parameters(&m->base, params, 8) : 0;
  loom_optimizer *opt =
      m ? loom_adam_new(params, n, loom_adam_defaults(1e-2)) : NULL;
  if (!opt)
    return example_fail(PROG, "setup");
  for (int64_t b = 0; b < TEST; b++)
    clip(g, test, b, TEST);
  double loss = 0;
  for (int64_t step = 1; step <= o.steps && rc == 0; step++) {
    for (int64_t b = 0; b < BATCH; b++)
      clip(g, train, b, BATCH);
    loom_scope *s = loom_scope_begin();
    loom_tensor *clips = loom_from_array(
        LOOM_F32, train, LOOM_SHAPE(FRAMES, BATCH, 1, SIZE, SIZE));
    if (train_step(m, opt, params, n, clips, &loss) < 0)
      rc = example_fail(PROG, "training");
    else if (step % 100 == 0)
      printf("step %lld  loss %.4f\n", (long long)step, loss);
    loom_scope_end(s);
  }
  /* test: the model's next frames against the last frame copied */
  loom_scope *s = loom_scope_begin();
  loom_module_train(&m->base, false);
  loom_no_grad_begin();
  loom_tensor *clips =
      loom_from_array(LOOM_F32, test, LOOM_SHAPE(FRAMES, TEST, 1, SIZE, SIZE));
  loom_tensor *last = loom_narrow(clips, 0, 0, FRAMES - 1);
  loom_tensor *next = loom_narrow(clips, 0, 1, FRAMES - 1);
  loom_tensor *model_mse = loom_mse_loss(predict(m, last), next, LOOM_MEAN);
  loom_tensor *copy_mse = loom_mse_loss(last, next, LOOM_MEAN);
  loom_no_grad_end();
  if (rc == 0 && !(model_mse && copy_mse))
    rc = example_fail(PROG, "test");
  if (rc == 0) {
    double a = loom_item(model_mse), b = loom_item(copy_mse);
    printf("test MSE per pixel: ConvLSTM %.4f, last frame copied %.4f\n", a, b);
    if (!(a < b / 2))
      rc = (fprintf(stderr, PROG ": the ConvLSTM is not twice as good as "
                                 "copying the last frame\n"),
            1);
  }
  loom_scope_end(s);
  loom_optimizer_free(opt);
  loom_module_free(m ? &m->base : NULL);
  loom_rng_free(g);
  free(train), free(test);
  loom_cleanup();
  return rc;
}
