/* ConvLSTM cell: gates = conv2d([x, h]); then the LSTM update. */
#include "cells.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
  loom_tensor *weight, *bias; /* 4*hidden x (in+hidden) x k x k, 4*hidden */
  int64_t hidden, k;
} convlstm;

static void *make(const void *config, loom_module *owner, const char *suffix,
                  int64_t in, int64_t hidden) {
  int64_t k = config ? *(const int64_t *)config : 3;
  /* in and hidden are at most 2^59 - 1 (the runner checks), so their sum
   * and 4 * hidden fit; k comes from the user. */
  int64_t fan =
      loom_size_mul(loom_size_mul(in + hidden, k, "ConvLSTM"), k, "ConvLSTM");
  if (fan < 0)
    return NULL;
  convlstm *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->hidden = hidden;
  c->k = k;
  char name[64];
  double bound = 1 / sqrt((double)fan);
  loom_scope *s = loom_scope_begin();
  snprintf(name, sizeof name, "weight%s", suffix);
  c->weight = loom_module_add_param(
      owner, name,
      loom_rand(NULL, LOOM_DTYPE_DEFAULT, -bound, bound,
                LOOM_SHAPE(4 * hidden, in + hidden, k, k)));
  snprintf(name, sizeof name, "bias%s", suffix);
  c->bias = loom_module_add_param(owner, name,
                                  loom_rand(NULL, LOOM_DTYPE_DEFAULT, -bound,
                                            bound, LOOM_SHAPE(4 * hidden)));
  loom_scope_end(s);
  if (!c->weight || !c->bias) {
    free(c);
    return NULL;
  }
  return c;
}

/* States are images: (B, hidden, H, W) for an input (B, C, H, W). */
static int state_shape(void *cell, int k, const loom_tensor *x,
                       int64_t *shape) {
  (void)k;
  const int64_t *s = loom_shape(x);
  shape[0] = s[0];
  shape[1] = ((convlstm *)cell)->hidden;
  shape[2] = s[2];
  shape[3] = s[3];
  return 4;
}

static int step(void *cell, const loom_tensor *x, loom_tensor *const *state,
                loom_tensor **next) {
  convlstm *c = cell;
  int64_t pad = c->k / 2;
  loom_tensor *xh =
      loom_concat((loom_tensor *[]){(loom_tensor *)x, state[0]}, 2, 1);
  loom_tensor *gates = loom_conv2d(xh, c->weight, c->bias,
                                   (loom_conv2d_opts){.padding = {pad, pad}});
  loom_tensor *g[4];
  if (loom_chunk(gates, 4, 1, g, 4) != 4)
    return -1;
  loom_tensor *cn = loom_add(loom_mul(loom_sigmoid(g[1]), state[1]),
                             loom_mul(loom_sigmoid(g[0]), loom_tanh(g[2])));
  next[0] = loom_mul(loom_sigmoid(g[3]), loom_tanh(cn));
  next[1] = cn;
  return next[0] ? 0 : -1;
}

const loom_cell_type example_convlstm_cell = {.name = "ConvLSTM",
                                              .n_states = 2,
                                              .make = make,
                                              .state_shape = state_shape,
                                              .step = step};
