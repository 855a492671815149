/* Minimal gated unit: the input's two projections in one GEMM for all
 * steps (project), then one gate per step. */
#include "cells.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
  loom_tensor *w_x, *b_x; /* 2*hidden x in: rows for f, then for h~ */
  loom_tensor *u_f, *u_h; /* hidden x hidden */
} mgu;

static loom_tensor *param(loom_module *owner, const char *name,
                          const char *suffix, int64_t rows, int64_t cols,
                          double bound) {
  char full[64];
  snprintf(full, sizeof full, "%s%s", name, suffix);
  loom_tensor *t = cols ? loom_rand(NULL, LOOM_DTYPE_DEFAULT, -bound, bound,
                                    LOOM_SHAPE(rows, cols))
                        : loom_rand(NULL, LOOM_DTYPE_DEFAULT, -bound, bound,
                                    LOOM_SHAPE(rows));
  return loom_module_add_param(owner, full, t);
}

static void *make(const void *config, loom_module *owner, const char *suffix,
                  int64_t in, int64_t hidden) {
  (void)config;
  mgu *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  double k = 1 / sqrt((double)hidden);
  loom_scope *s = loom_scope_begin();
  c->w_x = param(owner, "weight_x", suffix, 2 * hidden, in, k);
  c->b_x = param(owner, "bias_x", suffix, 2 * hidden, 0, k);
  c->u_f = param(owner, "weight_uf", suffix, hidden, hidden, k);
  c->u_h = param(owner, "weight_uh", suffix, hidden, hidden, k);
  loom_scope_end(s);
  if (!c->w_x || !c->b_x || !c->u_f || !c->u_h) {
    free(c);
    return NULL;
  }
  return c;
}

static loom_tensor *project(void *cell, const loom_tensor *x) {
  mgu *c = cell;
  return loom_linear(x, c->w_x, c->b_x);
}

static int step(void *cell, const loom_tensor *xp, loom_tensor *const *state,
                loom_tensor **next) {
  mgu *c = cell;
  loom_tensor *h = state[0], *part[2];
  if (loom_chunk(xp, 2, 1, part, 2) != 2)
    return -1;
  loom_tensor *f =
      loom_sigmoid(loom_add(part[0], loom_linear(h, c->u_f, NULL)));
  loom_tensor *cand =
      loom_tanh(loom_add(part[1], loom_linear(loom_mul(f, h), c->u_h, NULL)));
  next[0] = loom_add(h, loom_mul(f, loom_sub(cand, h))); /* (1-f)h + f h~ */
  return next[0] ? 0 : -1;
}

/* The weights applied to the state, for the runner's weight-drop and
 * weight normalisation (loom_rnn_opts). */
static int recurrent_weights(void *cell, loom_tensor ***slots) {
  mgu *c = cell;
  slots[0] = &c->u_f;
  slots[1] = &c->u_h;
  return 2;
}

const loom_cell_type example_mgu_cell = {.name = "MGU",
                                         .n_states = 1,
                                         .make = make,
                                         .project = project,
                                         .step = step,
                                         .recurrent_weights =
                                             recurrent_weights};
