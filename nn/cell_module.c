/* A single recurrent cell as a module (torch.nn.LSTMCell, GRUCell,
 * RNNCell): any loom_cell_type, made once with the suffix "" and stepped
 * by the caller. The cell type does the math; this file checks what the
 * caller hands it, so a wrong shape is named here rather than failing
 * somewhere inside the step. */
#include "rnn_internal.h"

#include <stdlib.h>
#include <string.h>

static void cell_destroy(loom_module *m) {
  loom_cell *c = (loom_cell *)m;
  if (c->cell && c->type->free)
    c->type->free(c->cell);
  else
    free(c->cell);
  free(c);
}

loom_cell *loom_cell_new(const loom_cell_type *type, const void *config,
                         int64_t input_size, int64_t hidden_size, bool bias) {
  if (!type)
    return loom_null_argument("cell_new");
  const char *name = type->name ? type->name : "(unnamed)";
  if (!type->make || !type->step || type->n_states < 1 ||
      type->n_states > LOOM_RNN_MAX_STATES)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "cell_new: cell type %s needs make and step callbacks "
                     "and 1 to %d states (has %d)",
                     name, LOOM_RNN_MAX_STATES, type->n_states);
  /* The range the runner gives make, which cells rely on (4 * hidden
   * fits in int64_t). */
  if (input_size <= 0 || input_size > LOOM_MAX_ELEMENTS || hidden_size <= 0 ||
      hidden_size > LOOM_MAX_ELEMENTS)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "%sCell: input_size %lld, hidden_size %lld (each 1 to "
                     "2^59 - 1)",
                     name, (long long)input_size, (long long)hidden_size);
  if (!bias && !type->make_no_bias)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "%sCell: bias false needs the cell type's make_no_bias "
                     "callback",
                     name);
  loom_cell *c = calloc(1, sizeof *c);
  if (!c)
    return LOOM_FAIL(LOOM_ERR_MEMORY, "%sCell: out of memory", name);
  snprintf(c->name, sizeof c->name, "%sCell", name);
  loom_module_init(&c->base, c->name, cell_destroy);
  c->type = type;
  c->input_size = input_size;
  c->hidden_size = hidden_size;
  c->bias = bias;
  c->cell = (bias ? type->make : type->make_no_bias)(config, &c->base, "",
                                                     input_size, hidden_size);
  if (!c->cell) {
    /* kept if the callback said why (the first error wins) */
    loom_set_error(LOOM_ERR_STATE,
                   "%s: %s callback returned NULL with no "
                   "error set",
                   name, bias ? "make" : "make_no_bias");
    loom_module_free(&c->base);
    return NULL;
  }
  return c;
}

void loom_cell_free(loom_cell *c) { loom_module_free(c ? &c->base : NULL); }

/* x's shape for this cell: (B, I) or (I) without a state_shape callback,
 * (B, I, ...) with one. 0, or -1 with an error naming x. */
static int check_input(const loom_cell *c, const loom_tensor *x) {
  if (!loom_dtype_is_float(loom_dtype_of(x)))
    return loom_set_error(
               LOOM_ERR_DTYPE, "%s: x is %s %s; it must be a float tensor",
               c->name, loom_dtype_name(loom_dtype_of(x)), loom_shape_text(x)),
           -1;
  int nd = loom_ndim(x);
  const int64_t *s = loom_shape(x);
  long long I = (long long)c->input_size;
  if (!c->type->state_shape && !((nd == 1 || nd == 2) && s[nd - 1] == I))
    return loom_set_error(LOOM_ERR_SHAPE,
                          "%s: x is %s; expected (B, %lld) or (%lld)", c->name,
                          loom_shape_text(x), I, I),
           -1;
  if (c->type->state_shape && !(nd >= 2 && s[1] == I))
    return loom_set_error(LOOM_ERR_SHAPE,
                          "%s: x is %s; expected (B, %lld, ...) (a cell type "
                          "with a state_shape callback takes batched input)",
                          c->name, loom_shape_text(x), I),
           -1;
  return 0;
}

/* State k for the step input xp (x or its projection, batched): the
 * caller's, checked against the shape the cell expects (without its batch
 * dim when unbatched) and xp's dtype, or zeros. NULL with an error. */
static loom_tensor *initial_state(const loom_cell *c, int k,
                                  const loom_tensor *xp, const loom_tensor *x,
                                  const loom_tensor *given, bool unbatched) {
  int64_t shape[LOOM_MAX_DIMS];
  int nd = loom__cell_state_shape(c->type, c->name, c->cell, k, xp,
                                  c->hidden_size, shape);
  if (nd < 0)
    return NULL;
  loom_dtype dt = loom_dtype_of(xp);
  if (!given)
    return loom_zeros(dt, nd, shape);
  int off = unbatched ? 1 : 0; /* an unbatched state has no B */
  char want[96];
  if (loom_ndim(given) != nd - off ||
      memcmp(loom_shape(given), shape + off,
             (size_t)(nd - off) * sizeof *shape))
    return LOOM_FAIL(
        LOOM_ERR_SHAPE, "%s: state[%d] is %s; expected %s for x %s", c->name, k,
        loom_shape_text(given),
        loom_format_shape(nd - off, shape + off, want, sizeof want),
        loom_shape_text(x));
  if (loom_dtype_of(given) != dt)
    return LOOM_FAIL(LOOM_ERR_DTYPE,
                     "%s: state[%d] is %s; expected %s (the dtype of the "
                     "step's input, x %s %s)",
                     c->name, k, loom_dtype_name(loom_dtype_of(given)),
                     loom_dtype_name(dt), loom_dtype_name(loom_dtype_of(x)),
                     loom_shape_text(x));
  return unbatched ? loom_unsqueeze(given, 0) : (loom_tensor *)given;
}

/* The step inside the caller's checks (state[k] NULL: zeros): results in
 * out[], or -1. */
static int step(loom_cell *c, const loom_tensor *x, loom_tensor *const *state,
                loom_tensor **out) {
  if (check_input(c, x) < 0)
    return -1;
  const loom_cell_type *type = c->type;
  bool unbatched = loom_ndim(x) == 1 && !type->state_shape;
  loom_tensor *xb = unbatched ? loom_unsqueeze(x, 0) : (loom_tensor *)x;
  if (!xb)
    return -1;
  loom_tensor *xp = type->project ? type->project(c->cell, xb) : xb;
  if (!xp) {
    loom_set_error(LOOM_ERR_STATE,
                   "%s: project callback returned NULL with no error set",
                   c->name);
    return loom_error_context("%s step", c->name), -1;
  }
  loom_tensor *st[LOOM_RNN_MAX_STATES], *next[LOOM_RNN_MAX_STATES] = {NULL};
  for (int k = 0; k < type->n_states; k++)
    if (!(st[k] = initial_state(c, k, xp, x, state[k], unbatched)))
      return -1;
  if (type->step(c->cell, xp, st, next) != 0) {
    loom_set_error(LOOM_ERR_STATE,
                   "%s: step callback returned non-zero with no error set",
                   c->name);
    return loom_error_context("%s step", c->name), -1;
  }
  if (loom__cell_states_check(type, c->name, "step", next, st) < 0)
    return -1;
  for (int k = 0; k < type->n_states; k++)
    if (!(out[k] = unbatched ? loom_squeeze(next[k], 0) : next[k]))
      return -1;
  return 0;
}

int loom_cell_forward(loom_cell *c, const loom_tensor *x,
                      loom_tensor *const *state, loom_tensor **next) {
  if (!c)
    return loom_null_argument("cell_forward"), -1;
  int ns = c->type->n_states;
  /* read before next[] is cleared: next may be the state array itself
   * (h, c = cell(x, (h, c)) in torch) */
  loom_tensor *given[LOOM_RNN_MAX_STATES];
  for (int k = 0; k < ns; k++)
    given[k] = state ? state[k] : NULL;
  for (int k = 0; next && k < ns; k++)
    next[k] = NULL;
  if (!x || !next)
    return loom_null_argument(c->name), -1;
  /* In a scope of its own: of the projection and gates, only what
   * backward reads outlives the call. */
  loom_scope *s = loom_scope_begin();
  if (!s)
    return -1;
  loom_tensor *out[LOOM_RNN_MAX_STATES];
  int rc = step(c, x, given, out);
  for (int k = 0; rc == 0 && k < ns; k++)
    loom_keep(out[k]);
  loom_scope_end(s);
  if (rc < 0)
    return -1;
  for (int k = 0; k < ns; k++)
    if (!(next[k] = loom_autorelease(out[k])))
      rc = -1;
  if (rc < 0) /* the outer scope could not grow: no results at all */
    for (int k = 0; k < ns; k++)
      next[k] = NULL;
  return rc;
}
