/* The sequence runner: layers x directions of any cell over a sequence,
 * with variable lengths, dropout between layers and initial/final states. */
#include "rnn_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void runner_destroy(loom_module *m) {
  loom_rnn *r = (loom_rnn *)m;
  for (int i = 0; i < r->n_cells; i++) {
    if (r->type->free)
      r->type->free(r->cells[i]);
    else
      free(r->cells[i]);
  }
  free(r);
}

/* A user's callback may fail without saying why: then the runner says
 * which one did. (loom_set_error keeps an error the callback set.) */
static void callback_failed(const loom_cell_type *type, const char *callback,
                            const char *result) {
  loom_set_error(LOOM_ERR_STATE,
                 "%s: %s callback returned %s with no error set", type->name,
                 callback, result);
}

/* Names where in the layer an error happened. */
static void context(const loom_rnn *r, int layer, int dir, int64_t step) {
  if (step < 0)
    loom_error_context("%s layer %d, %s direction", r->type->name, layer,
                       dir ? "reverse" : "forward");
  else
    loom_error_context("%s layer %d, %s direction, step %lld", r->type->name,
                       layer, dir ? "reverse" : "forward", (long long)step);
}

/* The recurrent weights of cell i, checked: their count, or -1. */
static int recurrent_weights(const loom_rnn *r, int i, loom_tensor ***slots) {
  int n = r->type->recurrent_weights(r->cells[i], slots);
  if (n < 0 || n > LOOM_RNN_MAX_WEIGHTS) {
    loom_set_error(LOOM_ERR_STATE,
                   "%s: recurrent_weights callback returned %d (0 to %d)",
                   r->type->name, n, LOOM_RNN_MAX_WEIGHTS);
    return -1;
  }
  for (int k = 0; k < n; k++) {
    if (!slots[k] || !*slots[k]) {
      loom_set_error(LOOM_ERR_STATE,
                     "%s: recurrent_weights callback gave no weight %d",
                     r->type->name, k);
      return -1;
    }
    /* A weight named twice would be normalised twice (NAME_v_v) and
     * dropped with two masks. */
    for (int j = 0; j < k; j++)
      if (slots[j] == slots[k] || *slots[j] == *slots[k]) {
        loom_set_error(LOOM_ERR_STATE,
                       "%s: recurrent_weights callback gave weights %d and "
                       "%d as the same tensor",
                       r->type->name, j, k);
        return -1;
      }
  }
  return n;
}

/* Weight normalisation of cell i's recurrent weights: NAME becomes NAME_v
 * and a gain NAME_g (its rows' norms) joins the module. */
static int weight_norm_setup(loom_rnn *r, int i) {
  loom_tensor **slots[LOOM_RNN_MAX_WEIGHTS];
  int n = recurrent_weights(r, i, slots);
  for (int k = 0; k < n; k++) {
    const char *name = loom_module_entry_name(&r->base, *slots[k]);
    char v[128], g[128];
    if (!name || snprintf(v, sizeof v, "%s_v", name) >= (int)sizeof v) {
      loom_set_error(LOOM_ERR_ARGUMENT,
                     "%s: weight normalisation: recurrent weight %d is not "
                     "a parameter of the layer (or its name is too long)",
                     r->type->name, k);
      return -1;
    }
    snprintf(g, sizeof g, "%s_g", name);
    loom_scope *s = loom_scope_begin();
    r->norm_gain[i][k] =
        loom_module_add_param(&r->base, g, loom_weight_norm_init(*slots[k], 0));
    loom_scope_end(s);
    if (!r->norm_gain[i][k] || loom_module_rename(&r->base, name, v) < 0)
      return -1;
  }
  return n < 0 ? -1 : 0;
}

loom_rnn *loom_rnn_new(const loom_cell_type *type, loom_rnn_opts opts) {
  if (!type)
    return loom_null_argument("rnn_new");
  /* (the name is in every message the runner writes about the cell) */
  if (!type->name || !type->make || !type->step || type->n_states < 1 ||
      type->n_states > LOOM_RNN_MAX_STATES)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "rnn_new: cell type %s needs a name, make and step "
                     "callbacks and 1 to %d states (has %d)",
                     type->name ? type->name : "(unnamed)", LOOM_RNN_MAX_STATES,
                     type->n_states);
  if (opts.num_layers == 0)
    opts.num_layers = 1;
  /* Sizes up to what a tensor can hold, so a cell adds and multiplies
   * small multiples of them without overflowing. */
  if (opts.input_size <= 0 || opts.input_size > LOOM_MAX_ELEMENTS ||
      opts.hidden_size <= 0 || opts.hidden_size > LOOM_MAX_ELEMENTS ||
      opts.num_layers < 0 || opts.num_layers > LOOM_RNN_MAX_LAYERS ||
      !(opts.dropout >= 0 && opts.dropout < 1))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "%s: input %lld, hidden %lld, %d layers, dropout %g "
                     "(sizes 1 to 2^59 - 1, 1 to %d layers, dropout in [0, 1))",
                     type->name, (long long)opts.input_size,
                     (long long)opts.hidden_size, opts.num_layers, opts.dropout,
                     LOOM_RNN_MAX_LAYERS);
  if (!(opts.weight_drop >= 0 && opts.weight_drop < 1))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "%s: weight_drop %g is not in [0, 1)",
                     type->name, opts.weight_drop);
  for (int k = 0; k < LOOM_RNN_MAX_STATES; k++)
    if (!(opts.zoneout[k] >= 0 && opts.zoneout[k] < 1) ||
        (k >= type->n_states && opts.zoneout[k] != 0))
      return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                       "%s: zoneout %g of state %d (rates in [0, 1) for "
                       "its %d states)",
                       type->name, opts.zoneout[k], k, type->n_states);
  if ((opts.weight_drop > 0 || opts.weight_norm) && !type->recurrent_weights)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "%s: weight-drop and weight normalisation need the "
                     "cell type's recurrent_weights callback",
                     type->name);
  if (opts.no_bias && !type->make_no_bias)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "%s: no_bias needs the cell type's make_no_bias "
                     "callback",
                     type->name);
  loom_rnn *r = calloc(1, sizeof *r);
  if (!r)
    return LOOM_FAIL(LOOM_ERR_MEMORY, "%s: out of memory", type->name);
  loom_module_init(&r->base, type->name, runner_destroy);
  r->type = type;
  r->opts = opts;
  r->directions = opts.bidirectional ? 2 : 1;
  for (int l = 0; l < opts.num_layers; l++) {
    for (int d = 0; d < r->directions; d++) {
      char suffix[32];
      snprintf(suffix, sizeof suffix, "_l%d%s", l, d ? "_reverse" : "");
      int64_t in =
          l == 0 ? opts.input_size
                 : loom_size_mul(opts.hidden_size, r->directions, type->name);
      void *(*make)(const void *, loom_module *, const char *, int64_t,
                    int64_t) = opts.no_bias ? type->make_no_bias : type->make;
      void *cell = in < 0 ? NULL
                          : make(opts.cell_config, &r->base, suffix, in,
                                 opts.hidden_size);
      if (!cell) {
        if (in >= 0)
          callback_failed(type, opts.no_bias ? "make_no_bias" : "make", "NULL");
        context(r, l, d, -1);
        loom_module_free(&r->base);
        return NULL;
      }
      r->cells[r->n_cells++] = cell;
      if (opts.weight_norm && weight_norm_setup(r, r->n_cells - 1) < 0) {
        context(r, l, d, -1);
        loom_module_free(&r->base);
        return NULL;
      }
    }
  }
  return r;
}

void loom_rnn_free(loom_rnn *r) { loom_module_free(r ? &r->base : NULL); }

/* (B, S...) state shape of cell for step input x_t: its ndim, or -1. */
int loom__cell_state_shape(const loom_cell_type *type, const char *who,
                           void *cell, int k, const loom_tensor *x_t,
                           int64_t hidden, int64_t *shape) {
  if (!type->state_shape) {
    shape[0] = loom_shape(x_t)[0];
    shape[1] = hidden;
    return 2;
  }
  int nd = type->state_shape(cell, k, x_t, shape);
  if (nd < 1 || nd > LOOM_MAX_DIMS) {
    loom_set_error(LOOM_ERR_STATE,
                   "%s: state_shape callback gave %d dims for state %d "
                   "(1 to %d)",
                   who, nd, k, LOOM_MAX_DIMS);
    return -1;
  }
  /* A state is (B, S...): another batch was masked and stacked wrongly, or
   * failed in an op far from the cell; a negative size failed in zeros. */
  bool ok = shape[0] == loom_shape(x_t)[0];
  for (int d = 1; d < nd; d++)
    ok = ok && shape[d] >= 0;
  if (!ok) {
    char got[96];
    loom_set_error(LOOM_ERR_STATE,
                   "%s: state_shape callback gave state %d as %s for a step "
                   "input %s (batch %lld first, sizes >= 0)",
                   who, k, loom_format_shape(nd, shape, got, sizeof got),
                   loom_shape_text(x_t), (long long)loom_shape(x_t)[0]);
    return -1;
  }
  return nd;
}

/* (A wrong state gave silently wrong outputs, or a puzzling error a layer
 * later.) */
int loom__cell_states_check(const loom_cell_type *type, const char *who,
                            const char *callback, loom_tensor *const *next,
                            loom_tensor *const *state) {
  for (int k = 0; k < type->n_states; k++) {
    if (!next[k]) {
      loom_set_error(LOOM_ERR_STATE,
                     "%s: %s callback returned 0 with state %d NULL", who,
                     callback, k);
      return -1;
    }
    if (!loom_same_shape(next[k], state[k]) ||
        loom_dtype_of(next[k]) != loom_dtype_of(state[k])) {
      char got[96], want[96];
      loom_set_error(LOOM_ERR_SHAPE,
                     "%s: %s callback returned state %d as %s %s; it was "
                     "given %s %s",
                     who, callback, k, loom_dtype_name(loom_dtype_of(next[k])),
                     loom_shape_str(next[k], got, sizeof got),
                     loom_dtype_name(loom_dtype_of(state[k])),
                     loom_shape_str(state[k], want, sizeof want));
      return -1;
    }
  }
  return 0;
}

static int state_shape(const loom_rnn *r, void *cell, int k,
                       const loom_tensor *x_t, int64_t *shape) {
  return loom__cell_state_shape(r->type, r->type->name, cell, k, x_t,
                                r->opts.hidden_size, shape);
}

static int check_states(const loom_rnn *r, const char *name,
                        loom_tensor *const *next, loom_tensor *const *state) {
  return loom__cell_states_check(r->type, r->type->name, name, next, state);
}

/* (T, B, ...) -> the step inputs the cell wants (projected if it can). */
static loom_tensor *project(const loom_rnn *r, void *cell,
                            const loom_tensor *x) {
  if (!r->type->project)
    return (loom_tensor *)x;
  int64_t T = loom_shape(x)[0], B = loom_shape(x)[1];
  int64_t flat[LOOM_MAX_DIMS];
  flat[0] = T * B;
  for (int d = 2; d < loom_ndim(x); d++)
    flat[d - 1] = loom_shape(x)[d];
  loom_tensor *p =
      r->type->project(cell, loom_reshape(x, loom_ndim(x) - 1, flat));
  if (!p) {
    callback_failed(r->type, "project", "NULL");
    return NULL;
  }
  int64_t shape[LOOM_MAX_DIMS];
  shape[0] = T;
  shape[1] = B;
  for (int d = 1; d < loom_ndim(p); d++)
    shape[d + 1] = loom_shape(p)[d];
  return loom_reshape(p, loom_ndim(p) + 1, shape);
}

/* Steps direction `dir` of `layer` through time. */
static int run_steps(const loom_rnn *r, int layer, int dir, void *cell,
                     const loom_tensor *xs, const loom_tensor *lengths,
                     loom_tensor *const *init, loom_tensor **out,
                     loom_tensor **final) {
  bool reverse = dir == 1;
  int ns = r->type->n_states;
  int64_t T = loom_shape(xs)[0];
  loom_tensor *state[LOOM_RNN_MAX_STATES];
  for (int k = 0; k < ns; k++)
    state[k] = init[k];
  loom_tensor **outs = malloc((size_t)(T > 0 ? T : 1) * sizeof *outs);
  if (!outs) {
    loom_set_error(LOOM_ERR_MEMORY, "%s: out of memory", r->type->name);
    return -1;
  }
  int rc = 0;
  /* The cell's weights are the same at every step: products pack them once
   * for the whole sequence. */
  loom_fixed_weights_begin();
  for (int64_t s = 0; s < T && rc == 0; s++) {
    int64_t t = reverse ? T - 1 - s : s;
    loom_tensor *x_t = loom_select(xs, 0, t), *next[LOOM_RNN_MAX_STATES];
    for (int k = 0; k < ns; k++)
      next[k] = NULL;
    if (!x_t) {
      rc = -1;
    } else if (r->type->step(cell, x_t, state, next) != 0) {
      callback_failed(r->type, "step", "non-zero");
      rc = -1;
    } else {
      rc = check_states(r, "step", next, state);
    }
    for (int k = 0; rc == 0 && k < ns; k++)
      if (r->opts.zoneout[k] > 0 &&
          !(next[k] = loom_zoneout(state[k], next[k], r->opts.zoneout[k],
                                   r->base.training, r->opts.rng)))
        rc = -1;
    if (rc < 0) {
      context(r, layer, dir, t);
      break;
    }
    loom_tensor *o = next[0];
    if (lengths) {
      /* Sequences already over keep their state and output zeros. The
       * (B) mask is shaped (B, 1, ...) for each state on its own: states
       * may differ in ndim, and a mask of another's ndim would broadcast
       * along the wrong dims. */
      loom_tensor *alive = loom_gt_scalar(lengths, (double)t), *live = NULL;
      for (int k = 0; k < ns; k++) {
        int64_t shape[LOOM_MAX_DIMS];
        for (int d = 0; d < loom_ndim(next[k]); d++)
          shape[d] = d == 0 ? -1 : 1;
        live = loom_reshape(alive, loom_ndim(next[k]), shape);
        if (k == 0)
          o = loom_masked_fill(next[0], loom_logical_not(live), 0);
        next[k] = loom_where(live, next[k], state[k]);
      }
    }
    outs[t] = o;
    for (int k = 0; k < ns; k++)
      state[k] = next[k];
  }
  if (rc == 0 && T > 0) {
    *out = loom_stack(outs, (int)T, 0);
    rc = *out ? 0 : -1;
  } else if (rc == 0) {
    int64_t shape[LOOM_MAX_DIMS];
    shape[0] = 0;
    for (int d = 0; d < loom_ndim(init[0]); d++)
      shape[d + 1] = loom_shape(init[0])[d];
    *out = loom_zeros(loom_dtype_of(init[0]), loom_ndim(init[0]) + 1, shape);
  }
  loom_fixed_weights_end();
  for (int k = 0; rc == 0 && k < ns; k++)
    final[k] = state[k];
  free(outs);
  return rc;
}

static loom_tensor *check_lengths(const loom_tensor *lengths, int64_t T,
                                  int64_t B, const char *op) {
  if (loom_dtype_of(lengths) != LOOM_I64 || loom_ndim(lengths) != 1 ||
      loom_shape(lengths)[0] != B)
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "%s: lengths must be int64 (%lld), got "
                     "%s %s",
                     op, (long long)B, loom_dtype_name(loom_dtype_of(lengths)),
                     loom_shape_text(lengths));
  loom_tensor *c = loom_contiguous(lengths);
  const int64_t *v = loom_data_i64(c);
  for (int64_t b = 0; v && b < B; b++)
    if (v[b] < 0 || v[b] > T)
      return LOOM_FAIL(LOOM_ERR_INDEX,
                       "%s: length %lld of sequence %lld "
                       "outside [0, %lld]",
                       op, (long long)v[b], (long long)b, (long long)T);
  return c;
}

static bool zoneout(const loom_rnn *r) {
  for (int k = 0; k < r->type->n_states; k++)
    if (r->opts.zoneout[k] > 0)
      return true;
  return false;
}

/* A recurrent weight the runner replaced for one forward. */
typedef struct {
  loom_tensor **slot, *own;
} swapped_weight;

/* Points each cell's recurrent weights at their normalised and dropped
 * versions for this forward (masks drawn cell by cell, weight by weight).
 * Records what it replaced in sw[*n] for restore_weights. 0 or -1. */
static int swap_weights(loom_rnn *r, bool allow_drop, swapped_weight *sw,
                        int *n) {
  *n = 0;
  bool drop = allow_drop && r->base.training && r->opts.weight_drop > 0;
  if (!drop && !r->opts.weight_norm)
    return 0;
  for (int i = 0; i < r->n_cells; i++) {
    loom_tensor **slots[LOOM_RNN_MAX_WEIGHTS];
    int m = recurrent_weights(r, i, slots);
    if (m < 0)
      return context(r, i / r->directions, i % r->directions, -1), -1;
    for (int k = 0; k < m; k++) {
      loom_tensor *w = *slots[k];
      if (r->opts.weight_norm)
        w = loom_weight_norm(w, r->norm_gain[i][k], 0);
      if (drop) { /* loom_bernoulli's stream, which the docs promise */
        double keep = 1 - r->opts.weight_drop;
        w = loom_mul(w, loom_mul_scalar(
                            loom_bernoulli(r->opts.rng, loom_dtype_of(w), keep,
                                           loom_ndim(w), loom_shape(w)),
                            1 / keep));
      }
      if (!w)
        return -1;
      sw[*n] = (swapped_weight){slots[k], *slots[k]};
      *slots[k] = w;
      ++*n;
    }
  }
  return 0;
}

static void restore_weights(swapped_weight *sw, int n) {
  while (n-- > 0)
    *sw[n].slot = sw[n].own;
}

/* What a fused callback (`name`) returned: 0 with its output and final
 * states, 1 for no fused path, or -1 (with an error naming it) for a
 * failure or a result it did not give. Its results are checked as a
 * step's are: final states of init's shapes and dtypes, the output (T,
 * state 0's shape) (a wrong one was taken as it was). */
static int fused_result(const loom_rnn *r, const char *name, int rc, int64_t T,
                        loom_tensor *const *init, loom_tensor *const *out,
                        loom_tensor *const *fin) {
  if (rc != 0 && rc != 1) {
    callback_failed(r->type, name, "-1");
    return -1;
  }
  if (rc == 1)
    return 1;
  if (!*out) {
    callback_failed(r->type, name, "0 and a NULL result");
    return -1;
  }
  if (check_states(r, name, fin, init) < 0)
    return -1;
  int nd = loom_ndim(init[0]);
  bool ok = loom_ndim(*out) == nd + 1 && loom_shape(*out)[0] == T &&
            loom_dtype_of(*out) == loom_dtype_of(init[0]) &&
            !memcmp(loom_shape(*out) + 1, loom_shape(init[0]),
                    (size_t)nd * sizeof(int64_t));
  if (!ok) {
    char got[96], state[96];
    loom_set_error(LOOM_ERR_SHAPE,
                   "%s: %s callback returned output %s %s for %lld steps of "
                   "state 0 %s %s",
                   r->type->name, name, loom_dtype_name(loom_dtype_of(*out)),
                   loom_shape_str(*out, got, sizeof got), (long long)T,
                   loom_dtype_name(loom_dtype_of(init[0])),
                   loom_shape_str(init[0], state, sizeof state));
    return -1;
  }
  return 0;
}

/* Sets a fused callback's results to NULL before it runs: one that
 * returns 0 without writing them is then caught as a NULL result (they
 * were read uninitialised, as garbage tensors). */
static void no_results(int ns, loom_tensor **out, loom_tensor **fin) {
  *out = NULL;
  for (int k = 0; k < ns; k++)
    fin[k] = NULL;
}

/* loom_rnn_forward, writing its results only when all of them are made. */
static int forward(loom_rnn *r, const loom_tensor *x,
                   const loom_tensor *lengths, loom_tensor *const *init,
                   loom_tensor **output, loom_tensor **final) {
  const char *op = r->type->name;
  if (loom_ndim(x) < 3)
    return loom_set_error(LOOM_ERR_SHAPE, "%s: input %s needs (T, B, I...)", op,
                          loom_shape_text(x)),
           -1;
  const loom_tensor *xs = r->opts.batch_first ? loom_transpose(x, 0, 1) : x;
  int64_t T = loom_shape(xs)[0], B = loom_shape(xs)[1];
  if (loom_shape(xs)[2] != r->opts.input_size)
    return loom_set_error(LOOM_ERR_SHAPE,
                          "%s: input %s has %lld features, "
                          "the layer takes %lld",
                          op, loom_shape_text(x), (long long)loom_shape(xs)[2],
                          (long long)r->opts.input_size),
           -1;
  const loom_tensor *len = lengths ? check_lengths(lengths, T, B, op) : NULL;
  if (lengths && !len)
    return -1;
  int L = r->opts.num_layers, D = r->directions, ns = r->type->n_states;
  /* Zero initial states take the dtype of the steps' input, which a cell's
   * projection promotes with its weights (a float64 layer takes float32
   * input). A cell without one promotes in its step: its states then
   * start in the dtype its weights give them, or its first step's result
   * would differ from the state it was given. */
  loom_tensor *weight = NULL;
  if (!r->type->project && loom_module_parameters(&r->base, &weight, 1) < 1)
    weight = NULL;
  loom_tensor *finals[LOOM_RNN_MAX_STATES][2 * LOOM_RNN_MAX_LAYERS];
  const loom_tensor *input = xs;
  loom_tensor *layer_out = NULL;
  for (int l = 0; l < L; l++) {
    loom_tensor *dir_out[2];
    for (int d = 0; d < D; d++) {
      void *cell = r->cells[l * D + d];
      bool fused = !r->opts.step_by_step && !zoneout(r) && T > 0;
      /* A cell whose fused op projects the input itself gets it as it is
       * (its projected sequence then lives only inside the op). */
      bool unprojected =
          fused && r->type->sequence_input && !r->type->state_shape;
      loom_tensor *px = unprojected ? NULL : project(r, cell, input);
      if (!unprojected && !px)
        return context(r, l, d, -1), -1;
      /* A step input, for the cell's state shapes. An empty sequence has
       * no first step to select: zeros of a step's shape stand in (the
       * states of a cell with state_shape need not be (B, hidden)). */
      const loom_tensor *steps = px ? px : input;
      loom_tensor *probe =
          T > 0 ? loom_select(steps, 0, 0)
                : loom_zeros(loom_dtype_of(steps), loom_ndim(steps) - 1,
                             loom_shape(steps) + 1);
      if (!probe)
        return context(r, l, d, -1), -1;
      loom_tensor *st[LOOM_RNN_MAX_STATES], *fin[LOOM_RNN_MAX_STATES];
      for (int k = 0; k < ns; k++) {
        int64_t shape[LOOM_MAX_DIMS];
        int nd = state_shape(r, cell, k, probe, shape);
        if (nd < 0)
          return context(r, l, d, -1), -1;
        if (init && init[k]) {
          st[k] =
              loom_ndim(init[k]) == nd + 1 && loom_shape(init[k])[0] == L * D
                  ? loom_select(init[k], 0, l * D + d)
                  : NULL;
          if (!st[k] ||
              memcmp(loom_shape(st[k]), shape, (size_t)nd * sizeof *shape)) {
            char want[96];
            return loom_set_error(
                       LOOM_ERR_SHAPE,
                       "%s: initial state %d is "
                       "%s, expected (%d, %s)",
                       op, k, loom_shape_text(init[k]), L * D,
                       loom_format_shape(nd, shape, want, sizeof want)),
                   -1;
          }
        } else {
          loom_dtype dt = loom_dtype_of(px ? px : input);
          if (weight && loom_dtype_of(weight) == LOOM_F64)
            dt = LOOM_F64;
          st[k] = loom_zeros(dt, nd, shape);
        }
        if (!st[k])
          return -1;
      }
      int rc = 1;
      if (unprojected) {
        no_results(ns, &dir_out[d], fin);
        rc = fused_result(r, "sequence_input",
                          r->type->sequence_input(cell, input, len, d == 1, st,
                                                  &dir_out[d], fin),
                          T, st, &dir_out[d], fin);
        if (rc < 0)
          return context(r, l, d, -1), -1;
        if (rc == 1 && !(px = project(r, cell, input)))
          return context(r, l, d, -1), -1;
        /* the projection may have promoted the dtype (float32 input to a
         * float64 layer): zero initial states follow it */
        for (int k = 0; rc == 1 && k < ns; k++)
          if (!(init && init[k]) && loom_dtype_of(st[k]) != loom_dtype_of(px) &&
              !(st[k] = loom_to_dtype(st[k], loom_dtype_of(px))))
            return -1;
      }
      if (rc == 1 && r->type->sequence && fused) {
        no_results(ns, &dir_out[d], fin);
        rc = fused_result(
            r, "sequence",
            r->type->sequence(cell, px, len, d == 1, st, &dir_out[d], fin), T,
            st, &dir_out[d], fin);
        if (rc < 0)
          return context(r, l, d, -1), -1;
      }
      if (rc == 1) /* no fused path for this configuration */
        rc = run_steps(r, l, d, cell, px, len, st, &dir_out[d], fin);
      if (rc < 0)
        return -1;
      for (int k = 0; k < ns; k++)
        finals[k][l * D + d] = fin[k];
    }
    layer_out = D == 2 ? loom_concat(dir_out, 2, 2) : dir_out[0];
    if (!layer_out)
      return -1;
    input = layer_out;
    if (l + 1 < L && r->opts.dropout > 0 && r->base.training) {
      if (r->opts.variational) { /* one mask per sequence, all steps */
        input =
            loom_locked_dropout(layer_out, r->opts.dropout, true, r->opts.rng);
      } else {
        input = loom_dropout(layer_out, r->opts.dropout, true, r->opts.rng);
      }
      if (!input)
        return -1;
    }
  }
  *output = r->opts.batch_first ? loom_transpose(layer_out, 0, 1) : layer_out;
  if (final)
    for (int k = 0; k < ns; k++) {
      final[k] = loom_stack(finals[k], L * D, 0);
      if (!final[k])
        return -1;
    }
  return *output ? 0 : -1;
}

int loom_rnn_forward(loom_rnn *r, const loom_tensor *x,
                     const loom_tensor *lengths, loom_tensor *const *init,
                     loom_tensor **output, loom_tensor **final) {
  if (output)
    *output = NULL;
  for (int k = 0; r && final && k < r->type->n_states; k++)
    final[k] = NULL;
  if (!r)
    return loom_null_argument("rnn_forward"), -1;
  if (!x || !output)
    return loom_null_argument(r->type->name), -1;
  loom_tensor *out, *fin[LOOM_RNN_MAX_STATES];
  swapped_weight sw[2 * LOOM_RNN_MAX_LAYERS * LOOM_RNN_MAX_WEIGHTS];
  int n_swapped;
  /* In a scope of its own: of the projections, states and per-layer
   * results only what backward reads outlives the call. */
  loom_scope *s = loom_scope_begin();
  if (!s)
    return -1;
  int rc = swap_weights(r, true, sw, &n_swapped);
  if (rc == 0)
    rc = forward(r, x, lengths, init, &out, final ? fin : NULL);
  restore_weights(sw, n_swapped);
  if (rc < 0) {
    loom_scope_end(s);
    return -1;
  }
  int ns = final ? r->type->n_states : 0;
  loom_keep(out);
  for (int k = 0; k < ns; k++)
    loom_keep(fin[k]);
  loom_scope_end(s);
  /* NULL when the outer scope cannot grow (the reference is dropped) */
  rc = (*output = loom_autorelease(out)) ? 0 : -1;
  for (int k = 0; k < ns; k++)
    if (!(final[k] = loom_autorelease(fin[k])))
      rc = -1;
  return rc;
}

int loom_rnn_cell_step(loom_rnn *r, int layer, const loom_tensor *x,
                       loom_tensor *const *state, loom_tensor **new_state) {
  if (!r)
    return loom_null_argument("rnn_cell_step"), -1;
  int ns = r->type->n_states;
  for (int k = 0; new_state && k < ns; k++)
    new_state[k] = NULL;
  if (!x || !state || !new_state)
    return loom_null_argument(r->type->name), -1;
  for (int k = 0; k < ns; k++)
    if (!state[k])
      return loom_null_argument(r->type->name), -1;
  if (layer < 0 || layer >= r->opts.num_layers) {
    loom_set_error(LOOM_ERR_ARGUMENT, "%s: no layer %d (it has %d)",
                   r->type->name, layer, r->opts.num_layers);
    return -1;
  }
  void *cell = r->cells[layer * r->directions];
  /* normalised weights, but no weight-drop: a mask would have to last
   * for the whole sequence the caller steps through */
  swapped_weight sw[2 * LOOM_RNN_MAX_LAYERS * LOOM_RNN_MAX_WEIGHTS];
  int n_swapped;
  const loom_tensor *xp = NULL;
  if (swap_weights(r, false, sw, &n_swapped) == 0) {
    xp = r->type->project ? r->type->project(cell, x) : x;
    if (!xp)
      callback_failed(r->type, "project", "NULL");
  }
  loom_tensor *next[LOOM_RNN_MAX_STATES] = {NULL};
  int rc = -1;
  if (xp && r->type->step(cell, xp, state, next) != 0)
    callback_failed(r->type, "step", "non-zero");
  else if (xp)
    rc = check_states(r, "step", next, state);
  for (int k = 0; rc == 0 && k < ns; k++)
    if (r->opts.zoneout[k] > 0 &&
        !(next[k] = loom_zoneout(state[k], next[k], r->opts.zoneout[k],
                                 r->base.training, r->opts.rng)))
      rc = -1;
  restore_weights(sw, n_swapped);
  if (rc < 0) {
    loom_error_context("%s layer %d, one step", r->type->name, layer);
    return -1;
  }
  for (int k = 0; k < ns; k++)
    new_state[k] = next[k];
  return 0;
}

loom_rnn *loom_lstm_new(loom_rnn_opts opts) {
  return loom_rnn_new(&loom_lstm_cell, opts);
}

loom_rnn *loom_gru_new(loom_rnn_opts opts) {
  return loom_rnn_new(&loom_gru_cell, opts);
}
