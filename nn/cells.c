/* The built-in cells, written with public ops exactly as a user's cell
 * would be: RNN (tanh, relu), LSTM (PyTorch's; peephole, coupled, layer
 * norm variants), GRU (PyTorch's, and Cho et al. 2014's). Each has a
 * bias-free form (make_no_bias, PyTorch's bias=False): b_ih and b_hh are
 * then NULL, which loom_linear and the fused ops take as no bias. */
#include "rnn.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
  int64_t hidden;
  int gates; /* rows of the weights, in units of hidden */
  bool relu, cho;
  loom_lstm_opts lstm;
  loom_tensor *w_ih, *w_hh, *b_ih, *b_hh; /* biases NULL without them */
  loom_tensor *w_ci, *w_cf, *w_co; /* peepholes */
  loom_tensor *ln_ih_w, *ln_ih_b, *ln_hh_w, *ln_hh_b, *ln_c_w, *ln_c_b;
} cell;

/* Registers name+suffix on owner as a parameter of the given shape,
 * initialised U(-bound, bound). */
static loom_tensor *param(loom_module *owner, const char *name,
                          const char *suffix, int ndim, const int64_t *shape,
                          double bound) {
  char full[96];
  snprintf(full, sizeof full, "%s%s", name, suffix);
  loom_scope *s = loom_scope_begin();
  loom_tensor *t = loom_module_add_param(
      owner, full,
      loom_rand(NULL, LOOM_DTYPE_DEFAULT, -bound, bound, ndim, shape));
  loom_scope_end(s);
  return t;
}

static loom_tensor *filled(loom_module *owner, const char *name,
                           const char *suffix, int64_t n, double value) {
  char full[96];
  snprintf(full, sizeof full, "%s%s", name, suffix);
  loom_scope *s = loom_scope_begin();
  loom_tensor *t = loom_module_add_param(
      owner, full, loom_full(LOOM_DTYPE_DEFAULT, value, 1, &n));
  loom_scope_end(s);
  return t;
}

static cell *make_common(const char *type, loom_module *owner,
                         const char *suffix, int64_t input, int64_t hidden,
                         int gates, bool bias) {
  int64_t rows = loom_size_mul(gates, hidden, type);
  if (rows < 0)
    return NULL;
  cell *c = calloc(1, sizeof *c);
  if (!c) {
    loom_set_error(LOOM_ERR_MEMORY, "%s: out of memory", type);
    return NULL;
  }
  double k = 1 / sqrt((double)hidden);
  c->hidden = hidden;
  c->gates = gates;
  c->w_ih = param(owner, "weight_ih", suffix, LOOM_SHAPE(rows, input), k);
  c->w_hh = param(owner, "weight_hh", suffix, LOOM_SHAPE(rows, hidden), k);
  if (bias) {
    c->b_ih = param(owner, "bias_ih", suffix, LOOM_SHAPE(rows), k);
    c->b_hh = param(owner, "bias_hh", suffix, LOOM_SHAPE(rows), k);
  }
  if (!c->w_ih || !c->w_hh || (bias && (!c->b_ih || !c->b_hh))) {
    free(c);
    return NULL;
  }
  return c;
}

/* ---- RNN ---- */

static void *rnn_relu_make(const void *cfg, loom_module *owner,
                           const char *suffix, int64_t input, int64_t hidden) {
  (void)cfg;
  cell *c = make_common("RNN", owner, suffix, input, hidden, 1, true);
  if (c)
    c->relu = true;
  return c;
}

static void *rnn_tanh_make(const void *cfg, loom_module *owner,
                           const char *suffix, int64_t input, int64_t hidden) {
  (void)cfg;
  return make_common("RNN", owner, suffix, input, hidden, 1, true);
}

static void *rnn_relu_make_no_bias(const void *cfg, loom_module *owner,
                                   const char *suffix, int64_t input,
                                   int64_t hidden) {
  (void)cfg;
  cell *c = make_common("RNN", owner, suffix, input, hidden, 1, false);
  if (c)
    c->relu = true;
  return c;
}

static void *rnn_tanh_make_no_bias(const void *cfg, loom_module *owner,
                                   const char *suffix, int64_t input,
                                   int64_t hidden) {
  (void)cfg;
  return make_common("RNN", owner, suffix, input, hidden, 1, false);
}

/* x W_ih^T + b_ih for all steps at once. */
static loom_tensor *input_projection(void *p, const loom_tensor *x) {
  cell *c = p;
  return loom_linear(x, c->w_ih, c->b_ih);
}

/* Weight-drop and weight normalisation act on weight_hh. */
static int recurrent_weights(void *p, loom_tensor ***slots) {
  slots[0] = &((cell *)p)->w_hh;
  return 1;
}

static int rnn_step(void *p, const loom_tensor *xp, loom_tensor *const *s,
                    loom_tensor **ns) {
  cell *c = p;
  loom_tensor *pre = loom_add(xp, loom_linear(s[0], c->w_hh, c->b_hh));
  ns[0] = c->relu ? loom_relu(pre) : loom_tanh(pre);
  return ns[0] ? 0 : -1;
}

/* The fused ops take one dtype: a projection promoted past the weights'
 * (a float32 layer given float64 input) goes step by step, where each op
 * promotes as the projection did. */
static int rnn_sequence(void *p, const loom_tensor *xs,
                        const loom_tensor *lengths, bool reverse,
                        loom_tensor *const *init, loom_tensor **out,
                        loom_tensor **final) {
  cell *c = p;
  if (loom_dtype_of(xs) != loom_dtype_of(c->w_hh))
    return 1;
  return loom_rnn_sequence(xs, c->w_hh, c->b_hh, init[0], lengths, reverse,
                           c->relu, out, &final[0]);
}

const loom_cell_type loom_rnn_tanh_cell = {.name = "RNN",
                                           .n_states = 1,
                                           .make = rnn_tanh_make,
                                           .project = input_projection,
                                           .step = rnn_step,
                                           .sequence = rnn_sequence,
                                           .recurrent_weights =
                                               recurrent_weights,
                                           .make_no_bias =
                                               rnn_tanh_make_no_bias};
const loom_cell_type loom_rnn_relu_cell = {.name = "RNN",
                                           .n_states = 1,
                                           .make = rnn_relu_make,
                                           .project = input_projection,
                                           .step = rnn_step,
                                           .sequence = rnn_sequence,
                                           .recurrent_weights =
                                               recurrent_weights,
                                           .make_no_bias =
                                               rnn_relu_make_no_bias};

/* ---- LSTM ---- */

/* LayerNorm over the last dim with gain w and bias b. */
static loom_tensor *norm(const loom_tensor *x, const loom_tensor *w,
                         const loom_tensor *b) {
  return loom_layer_norm(x, 1, w, b, 1e-5);
}

static void *lstm_make_with(const void *cfg, loom_module *owner,
                            const char *suffix, int64_t input, int64_t hidden,
                            bool bias) {
  loom_lstm_opts conf =
      cfg ? *(const loom_lstm_opts *)cfg : (loom_lstm_opts){0};
  /* Without biases the layer-normalised form would keep its norms' biases
   * (not bias-free), and forget_bias has no bias_ih to go into. */
  if (!bias && conf.layer_norm) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "LSTM: no_bias with layer_norm (a bias-free LSTM takes "
                   "layer_norm false and forget_bias 0)");
    return NULL;
  }
  if (!bias && conf.forget_bias != 0) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "LSTM: no_bias with forget_bias %g (a bias-free LSTM "
                   "takes layer_norm false and forget_bias 0)",
                   conf.forget_bias);
    return NULL;
  }
  cell *c = make_common("LSTM", owner, suffix, input, hidden,
                        conf.coupled ? 3 : 4, bias);
  if (!c)
    return NULL;
  c->lstm = conf;
  double k = 1 / sqrt((double)hidden);
  bool ok = true;
  if (conf.peephole) {
    c->w_ci = param(owner, "weight_ci", suffix, LOOM_SHAPE(hidden), k);
    c->w_co = param(owner, "weight_co", suffix, LOOM_SHAPE(hidden), k);
    if (!conf.coupled)
      c->w_cf = param(owner, "weight_cf", suffix, LOOM_SHAPE(hidden), k);
    ok = c->w_ci && c->w_co && (conf.coupled || c->w_cf);
  }
  if (ok && conf.layer_norm) {
    int64_t rows = c->gates * hidden; /* make_common checked it */
    c->ln_ih_w = filled(owner, "layer_norm_ih_weight", suffix, rows, 1);
    c->ln_ih_b = filled(owner, "layer_norm_ih_bias", suffix, rows, 0);
    c->ln_hh_w = filled(owner, "layer_norm_hh_weight", suffix, rows, 1);
    c->ln_hh_b = filled(owner, "layer_norm_hh_bias", suffix, rows, 0);
    c->ln_c_w = filled(owner, "layer_norm_c_weight", suffix, hidden, 1);
    c->ln_c_b = filled(owner, "layer_norm_c_bias", suffix, hidden, 0);
    ok = c->ln_ih_w && c->ln_ih_b && c->ln_hh_w && c->ln_hh_b && c->ln_c_w &&
         c->ln_c_b;
  }
  if (ok && conf.forget_bias != 0 && !conf.coupled) {
    loom_scope *s = loom_scope_begin();
    loom_no_grad_begin();
    loom_tensor *f = loom_narrow(c->b_ih, 0, hidden, hidden);
    ok = loom_add_(f, loom_full_like(f, conf.forget_bias), 1) != NULL;
    loom_no_grad_end();
    loom_scope_end(s);
  }
  if (!ok) {
    free(c);
    return NULL;
  }
  return c;
}

static void *lstm_make(const void *cfg, loom_module *owner, const char *suffix,
                       int64_t input, int64_t hidden) {
  return lstm_make_with(cfg, owner, suffix, input, hidden, true);
}

static void *lstm_make_no_bias(const void *cfg, loom_module *owner,
                               const char *suffix, int64_t input,
                               int64_t hidden) {
  return lstm_make_with(cfg, owner, suffix, input, hidden, false);
}

static loom_tensor *lstm_project(void *p, const loom_tensor *x) {
  cell *c = p;
  if (!c->lstm.layer_norm)
    return loom_linear(x, c->w_ih, c->b_ih);
  return loom_add(norm(loom_linear(x, c->w_ih, NULL), c->ln_ih_w, c->ln_ih_b),
                  c->b_ih);
}

static int lstm_step(void *p, const loom_tensor *xp, loom_tensor *const *s,
                     loom_tensor **ns) {
  cell *c = p;
  const loom_tensor *h = s[0], *cs = s[1];
  loom_tensor *rec = c->lstm.layer_norm
                         ? loom_add(norm(loom_linear(h, c->w_hh, NULL),
                                         c->ln_hh_w, c->ln_hh_b),
                                    c->b_hh)
                         : loom_linear(h, c->w_hh, c->b_hh);
  loom_tensor *gates = loom_add(xp, rec), *part[4];
  if (loom_chunk(gates, c->gates, 1, part, 4) != c->gates)
    return -1;
  loom_tensor *i, *f, *g, *o;
  if (c->lstm.coupled) {
    i = part[0];
    g = part[1];
    o = part[2];
    f = NULL;
  } else {
    i = part[0];
    f = part[1];
    g = part[2];
    o = part[3];
  }
  if (c->lstm.peephole) {
    i = loom_add(i, loom_mul(cs, c->w_ci));
    if (f)
      f = loom_add(f, loom_mul(cs, c->w_cf));
  }
  i = loom_sigmoid(i);
  f = f ? loom_sigmoid(f) : loom_rsub_scalar(i, 1);
  g = loom_tanh(g);
  loom_tensor *c_next = loom_add(loom_mul(f, cs), loom_mul(i, g));
  if (c->lstm.peephole)
    o = loom_add(o, loom_mul(c_next, c->w_co));
  o = loom_sigmoid(o);
  loom_tensor *cn =
      c->lstm.layer_norm ? norm(c_next, c->ln_c_w, c->ln_c_b) : c_next;
  ns[0] = loom_mul(o, loom_tanh(cn));
  ns[1] = c_next;
  return ns[0] && ns[1] ? 0 : -1;
}

/* The fused op covers PyTorch's LSTM and the peephole variant. */
static int lstm_sequence(void *p, const loom_tensor *xs,
                         const loom_tensor *lengths, bool reverse,
                         loom_tensor *const *init, loom_tensor **out,
                         loom_tensor **final) {
  cell *c = p;
  if (c->lstm.coupled || c->lstm.layer_norm ||
      loom_dtype_of(xs) != loom_dtype_of(c->w_hh))
    return 1;
  loom_tensor *peep[3] = {c->w_ci, c->w_cf, c->w_co};
  return loom_lstm_sequence(xs, c->w_hh, c->b_hh, init[0], init[1],
                            c->lstm.peephole ? peep : NULL, lengths, reverse,
                            out, &final[0], &final[1]);
}

/* The same with the input projection inside the op (the layers' path):
 * the projected sequence is not kept for backward. */
static int lstm_sequence_input(void *p, const loom_tensor *x,
                               const loom_tensor *lengths, bool reverse,
                               loom_tensor *const *init, loom_tensor **out,
                               loom_tensor **final) {
  cell *c = p;
  if (c->lstm.coupled || c->lstm.layer_norm || loom_ndim(x) != 3 ||
      loom_dtype_of(x) != loom_dtype_of(c->w_ih)) /* linear promotes */
    return 1;
  loom_tensor *peep[3] = {c->w_ci, c->w_cf, c->w_co};
  return loom_lstm_sequence_input(x, c->w_ih, c->b_ih, c->w_hh, c->b_hh,
                                  init[0], init[1],
                                  c->lstm.peephole ? peep : NULL, lengths,
                                  reverse, out, &final[0], &final[1]);
}

const loom_cell_type loom_lstm_cell = {.name = "LSTM",
                                       .n_states = 2,
                                       .make = lstm_make,
                                       .project = lstm_project,
                                       .step = lstm_step,
                                       .sequence = lstm_sequence,
                                       .recurrent_weights = recurrent_weights,
                                       .sequence_input = lstm_sequence_input,
                                       .make_no_bias = lstm_make_no_bias};

/* ---- GRU ---- */

static void *gru_make(const void *cfg, loom_module *owner, const char *suffix,
                      int64_t input, int64_t hidden) {
  (void)cfg;
  return make_common("GRU", owner, suffix, input, hidden, 3, true);
}

static void *gru_cho_make(const void *cfg, loom_module *owner,
                          const char *suffix, int64_t input, int64_t hidden) {
  (void)cfg;
  cell *c = make_common("GRU", owner, suffix, input, hidden, 3, true);
  if (c)
    c->cho = true;
  return c;
}

static void *gru_make_no_bias(const void *cfg, loom_module *owner,
                              const char *suffix, int64_t input,
                              int64_t hidden) {
  (void)cfg;
  return make_common("GRU", owner, suffix, input, hidden, 3, false);
}

static void *gru_cho_make_no_bias(const void *cfg, loom_module *owner,
                                  const char *suffix, int64_t input,
                                  int64_t hidden) {
  (void)cfg;
  cell *c = make_common("GRU", owner, suffix, input, hidden, 3, false);
  if (c)
    c->cho = true;
  return c;
}

static int gru_step(void *p, const loom_tensor *xp, loom_tensor *const *s,
                    loom_tensor **ns) {
  cell *c = p;
  int64_t H = c->hidden;
  const loom_tensor *h = s[0];
  loom_tensor *xi[3];
  if (loom_chunk(xp, 3, 1, xi, 3) != 3)
    return -1;
  loom_tensor *n;
  loom_tensor *r, *z;
  if (!c->cho) {
    loom_tensor *hh[3];
    if (loom_chunk(loom_linear(h, c->w_hh, c->b_hh), 3, 1, hh, 3) != 3)
      return -1;
    r = loom_sigmoid(loom_add(xi[0], hh[0]));
    z = loom_sigmoid(loom_add(xi[1], hh[1]));
    n = loom_tanh(loom_add(xi[2], loom_mul(r, hh[2])));
  } else {
    loom_tensor *hrz = loom_linear(h, loom_narrow(c->w_hh, 0, 0, 2 * H),
                                   c->b_hh ? loom_narrow(c->b_hh, 0, 0, 2 * H)
                                           : NULL);
    loom_tensor *hh[2];
    if (loom_chunk(hrz, 2, 1, hh, 2) != 2)
      return -1;
    r = loom_sigmoid(loom_add(xi[0], hh[0]));
    z = loom_sigmoid(loom_add(xi[1], hh[1]));
    loom_tensor *hn =
        loom_linear(loom_mul(r, h), loom_narrow(c->w_hh, 0, 2 * H, H),
                    c->b_hh ? loom_narrow(c->b_hh, 0, 2 * H, H) : NULL);
    n = loom_tanh(loom_add(xi[2], hn));
  }
  /* (1 - z) n + z h = n + z (h - n) */
  ns[0] = loom_add(n, loom_mul(z, loom_sub(h, n)));
  return ns[0] ? 0 : -1;
}

static int gru_sequence(void *p, const loom_tensor *xs,
                        const loom_tensor *lengths, bool reverse,
                        loom_tensor *const *init, loom_tensor **out,
                        loom_tensor **final) {
  cell *c = p;
  if (loom_dtype_of(xs) != loom_dtype_of(c->w_hh))
    return 1;
  return loom_gru_sequence(xs, c->w_hh, c->b_hh, init[0], lengths, reverse, out,
                           &final[0]);
}

/* The same with the input projection inside the op (the layers' path), as
 * lstm_sequence_input. */
static int gru_sequence_input(void *p, const loom_tensor *x,
                              const loom_tensor *lengths, bool reverse,
                              loom_tensor *const *init, loom_tensor **out,
                              loom_tensor **final) {
  cell *c = p;
  if (c->cho || loom_ndim(x) != 3 ||
      loom_dtype_of(x) != loom_dtype_of(c->w_ih)) /* linear promotes */
    return 1;
  return loom_gru_sequence_input(x, c->w_ih, c->b_ih, c->w_hh, c->b_hh,
                                 init[0], lengths, reverse, out, &final[0]);
}

const loom_cell_type loom_gru_cell = {.name = "GRU",
                                      .n_states = 1,
                                      .make = gru_make,
                                      .project = input_projection,
                                      .step = gru_step,
                                      .sequence = gru_sequence,
                                      .recurrent_weights = recurrent_weights,
                                      .sequence_input = gru_sequence_input,
                                      .make_no_bias = gru_make_no_bias};
const loom_cell_type loom_gru_cho2014_cell = {.name = "GRU",
                                              .n_states = 1,
                                              .make = gru_cho_make,
                                              .project = input_projection,
                                              .step = gru_step,
                                              .recurrent_weights =
                                                  recurrent_weights,
                                              .make_no_bias =
                                                  gru_cho_make_no_bias};
