/* Recurrent layers: cells, the sequence runner that turns any cell into a
 * layer, and single cells as modules stepped by hand (included by nn.h).
 *
 * A cell is described by a loom_cell_type: how to make it (registering its
 * parameters on the layer under PyTorch-style names), and one time step
 * written with ordinary ops. The runner adds everything else: layers,
 * directions, variable lengths, dropout between layers, initial and final
 * states, time-major or batch-first data. Built-in cells are defined the
 * same way a user's are (nn/cells.c); they also provide a fused
 * whole-sequence path that the runner uses when it can, and that tests
 * compare with the step-by-step one.
 *
 * Shapes: x is (T, B, I...) time-major or (B, T, I...) batch-first. A state
 * is (B, S...), S its features (hidden_size for the built-in cells, channels
 * for a convolutional cell). Both directions' outputs are concatenated along
 * the features dim; final states are stacked as (layers * directions, B,
 * S...), the PyTorch layout.
 */
#ifndef LOOM_RNN_H
#define LOOM_RNN_H

#include "nn.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LOOM_RNN_MAX_STATES 4
#define LOOM_RNN_MAX_LAYERS 16

typedef struct loom_cell_type {
  const char *name; /* required: the runner's messages name the cell */
  int n_states;     /* LSTM: 2 (h, c); RNN, GRU: 1 */
  /* Makes the cell of one layer and direction. Registers its parameters on
   * `owner` with names ending in `suffix` ("_l0", "_l1_reverse"); config is
   * the layer's cell_config. Returns the cell, or NULL with an error. The
   * runner passes sizes of 1 to LOOM_MAX_ELEMENTS (2^59 - 1), so sums and
   * small multiples of them (4 * hidden) fit in int64_t; a product with
   * anything else (a kernel size from the config) goes through
   * loom_size_mul. */
  void *(*make)(const void *config, loom_module *owner, const char *suffix,
                int64_t input_size, int64_t hidden_size);
  void (*free)(void *cell); /* NULL: free() */
  /* Shape of state k for a step input x_t (B, I...): writes it to shape
   * (B first, no negative size; the runner checks) and returns its ndim.
   * NULL: (B, hidden_size). */
  int (*state_shape)(void *cell, int k, const loom_tensor *x_t, int64_t *shape);
  /* Optional: the input's part of a step for all steps at once, on x
   * flattened to (T*B, I...); its result, unflattened to (T, B, ...), is
   * what step receives as x_t. One GEMM instead of T. */
  loom_tensor *(*project)(void *cell, const loom_tensor *x);
  /* One step: new_state[k] from x_t and state[k] (scope-owned results),
   * of state[k]'s shape and dtype. new_state[0] is the step's output. 0, or
   * -1 with an error. The runner checks the states it returns, and any
   * error raised inside a step ends with where: "(in LSTM layer 1, reverse
   * direction, step 3)". */
  int (*step)(void *cell, const loom_tensor *x_t, loom_tensor *const *state,
              loom_tensor **new_state);
  /* Optional fused path over the whole (projected) sequence xs (T, B, K):
   * out (T, B, S) and final states, honouring lengths (int64 (B) or NULL)
   * and direction. Must equal running step T times (the runner checks
   * the shapes and dtypes of out and final as a step's). Returns 0, -1 on
   * error, or 1 when this cell's configuration has no fused path (the
   * runner then steps). */
  int (*sequence)(void *cell, const loom_tensor *xs, const loom_tensor *lengths,
                  bool reverse, loom_tensor *const *init, loom_tensor **out,
                  loom_tensor **final);
  /* Optional: the cell's recurrent weights (those applied to the state,
   * like LSTM's weight_hh), for weight-drop and weight normalisation.
   * Writes the addresses of the cell's fields that hold them to slots (at
   * most LOOM_RNN_MAX_WEIGHTS, each weight once) and returns how many.
   * For one forward the runner may point such a field at a computed
   * tensor of the same shape (a dropped or normalised copy of the weight,
   * differentiable in it) and restores it afterwards; step and sequence must
   * read the weight through the field. (So a layer with weight-drop or weight
   * normalisation runs one forward at a time, never on two threads at
   * once.) NULL: the cell has none to regularise. */
  int (*recurrent_weights)(void *cell, loom_tensor ***slots);
  /* Optional, tried before project and sequence: the fused path on the
   * unprojected input x (T, B, I), for a cell whose op projects it
   * itself, so that the projected sequence lives only while the op runs
   * (loom_lstm_sequence_input). Same contract as sequence (1: no such
   * path for this configuration; the runner then projects). Used only
   * when state_shape is NULL. */
  int (*sequence_input)(void *cell, const loom_tensor *x,
                        const loom_tensor *lengths, bool reverse,
                        loom_tensor *const *init, loom_tensor **out,
                        loom_tensor **final);
  /* Optional: make for a layer without biases (loom_rnn_opts.no_bias),
   * as make but registering no bias parameters and adding none in the
   * steps. NULL: the type has no bias-free form, and a layer asking for
   * one is refused (LOOM_ERR_ARGUMENT). */
  void *(*make_no_bias)(const void *config, loom_module *owner,
                        const char *suffix, int64_t input_size,
                        int64_t hidden_size);
} loom_cell_type;

#define LOOM_RNN_MAX_WEIGHTS 4

/* Built-in cells. RNN: h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh).
 * Each registers, per layer l and direction (suffix "_l<l>", or
 * "_l<l>_reverse"), in PyTorch's order: weight_ih (G*H, I), weight_hh
 * (G*H, H), bias_ih (G*H), bias_hh (G*H), G the gates (RNN 1, GRU 3,
 * LSTM 4, coupled LSTM 3), I the layer's input size; then an LSTM's
 * variant parameters. All of them take loom_rnn_opts.no_bias (PyTorch's
 * bias=False): no bias_ih and bias_hh, and the formulas below without
 * b_ih and b_hh; an LSTM's peephole and coupled variants take it too,
 * its layer_norm and a non-zero forget_bias do not (see
 * loom_lstm_opts). */
LOOM_API extern const loom_cell_type loom_rnn_tanh_cell;
LOOM_API extern const loom_cell_type loom_rnn_relu_cell;
/* LSTM in PyTorch's formulation (gate order i, f, g, o); cell_config may
 * point to a loom_lstm_opts for the variants. */
LOOM_API extern const loom_cell_type loom_lstm_cell;
/* GRU in PyTorch's formulation: n = tanh(W_in x + b_in + r * (W_hn h +
 * b_hn)) (gate order r, z, n). */
LOOM_API extern const loom_cell_type loom_gru_cell;
/* GRU as in Cho et al. 2014: the reset gate applies to h before the
 * product, n = tanh(W_in x + b_in + W_hn (r * h) + b_hn). */
LOOM_API extern const loom_cell_type loom_gru_cho2014_cell;

typedef struct loom_lstm_opts {
  /* Peephole connections (Gers & Schmidhuber): i and f see c_{t-1}, o sees
   * c_t, through diagonal weights weight_ci, weight_cf, weight_co. */
  bool peephole;
  /* Coupled input-forget gate: f = 1 - i; gates are i, g, o (3H rows). */
  bool coupled;
  /* Layer-normalised gates (Ba et al.): LayerNorm on x W_ih^T, on h W_hh^T
   * and on c_t before its tanh, each with a gain and bias. Refused with
   * loom_rnn_opts.no_bias (LOOM_ERR_ARGUMENT): the norms' own biases
   * would remain, so the layer would not be bias-free. */
  bool layer_norm;
  /* Added to the forget gate's part of bias_ih at initialisation (1.0 is a
   * common choice); 0 keeps PyTorch's init. Non-zero is refused with
   * loom_rnn_opts.no_bias (there is no bias_ih to add it to). */
  double forget_bias;
} loom_lstm_opts;

typedef struct loom_rnn_opts {
  int64_t input_size, hidden_size; /* 1 to LOOM_MAX_ELEMENTS */
  int num_layers;                  /* 0 means 1 */
  bool bidirectional;
  bool batch_first;
  double dropout;    /* on each layer's output but the last, training */
  bool variational;  /* one dropout mask per sequence for all steps */
  bool step_by_step; /* never use a cell's fused sequence path */
  const void *cell_config;
  loom_rng *rng; /* for dropout masks (NULL: default; borrowed) */
  /* Weight-drop (DropConnect on the recurrent weights, as in AWD-LSTM):
   * in training each forward zeroes every element of the cell's
   * recurrent_weights with this probability and scales the rest by
   * 1 / (1 - p), one mask per weight for all steps and the batch. The
   * fused paths see the dropped weight as the step path does. [0, 1).
   * Masks are drawn from rng in a fixed order, so a seed reproduces a
   * forward: first each cell's weight-drop masks (cells layer by layer,
   * forward direction first; loom_bernoulli(1 - p) of each weight's
   * shape), then per layer and direction the zoneout masks of each step
   * (in the order the steps run, state by state: loom_bernoulli(rate) of
   * the state's shape), then after the layer its dropout mask. */
  double weight_drop;
  /* Zoneout (Krueger et al. 2017) of state k: in training each unit keeps
   * its previous value with probability zoneout[k] (a new mask each step),
   * in evaluation it moves by (1 - zoneout[k]) of the way to the new
   * value; a step's output is its zoned-out state 0. Each in [0, 1); any
   * non-zero rate runs the cell step by step. */
  double zoneout[LOOM_RNN_MAX_STATES];
  /* Weight normalisation (Salimans & Kingma 2016) of the recurrent
   * weights: each weight W (r, c) becomes g * v / |v| with |v| the norm
   * of each row, parameters NAME_g (r, 1) and NAME_v (r, c) as PyTorch's
   * weight_norm(dim = 0) names them, g starting at the rows' norms. */
  bool weight_norm;
  /* PyTorch's bias=False: cells made by the type's make_no_bias, the
   * built-in ones without bias_ih and bias_hh (their parameters are then
   * weight_ih_l0, weight_hh_l0, ... as in such a torch model's
   * state_dict). false keeps the biases. */
  bool no_bias;
} loom_rnn_opts;

/* The sequence runner, as a module. */
typedef struct loom_rnn {
  loom_module base;
  const loom_cell_type *type;
  loom_rnn_opts opts;
  int directions;
  int n_cells; /* layers * directions, cell (l, d) at l * directions + d */
  void *cells[2 * LOOM_RNN_MAX_LAYERS];
  /* with opts.weight_norm: each cell's recurrent weights' gains (borrowed
   * from the module), slot by slot */
  loom_tensor *norm_gain[2 * LOOM_RNN_MAX_LAYERS][LOOM_RNN_MAX_WEIGHTS];
} loom_rnn;

/* A layer running `type` (caller frees with loom_rnn_free). Parameters are
 * initialised like PyTorch's: U(-1/sqrt(hidden), 1/sqrt(hidden)). Asking
 * for weight-drop or weight normalisation of a cell type without
 * recurrent_weights, or for no_bias of one without make_no_bias, is an
 * error (LOOM_ERR_ARGUMENT). */
LOOM_API loom_rnn *loom_rnn_new(const loom_cell_type *type, loom_rnn_opts opts);
/* Shorthands: the built-in cell types (cell_config as in opts). */
LOOM_API loom_rnn *loom_lstm_new(loom_rnn_opts opts);
LOOM_API loom_rnn *loom_gru_new(loom_rnn_opts opts);
LOOM_API void loom_rnn_free(loom_rnn *r);

/* Runs the layer. lengths: int64 (B) of sequence lengths or NULL (all T);
 * outputs past a sequence's end are zero and its final state is taken at
 * its own end. init: n_states tensors of (layers*directions, B, S...) or
 * NULL for zeros; an entry of the array may be NULL too, that state alone
 * starting at zeros (an LSTM given h0 and no c0; torch asks for both).
 * Writes output (T, B, D*S...) (batch-first if asked) and,
 * if final is non-NULL, n_states final states. Results are scope-owned.
 * 0, or -1 with an error and *output and final[] set to NULL. */
LOOM_API int loom_rnn_forward(loom_rnn *r, const loom_tensor *x,
                              const loom_tensor *lengths,
                              loom_tensor *const *init, loom_tensor **output,
                              loom_tensor **final);

/* One step of the forward-direction cell of `layer` on its own (for
 * decoders that feed back their output): x (B, I...), state[k] (B, S...)
 * -> new_state[k] (scope-owned, checked like the runner's steps). 0, or -1
 * with an error and new_state[] NULL. */
LOOM_API int loom_rnn_cell_step(loom_rnn *r, int layer, const loom_tensor *x,
                                loom_tensor *const *state,
                                loom_tensor **new_state);

/* ------------------------------------------------ single cells
 * One cell of any loom_cell_type as a module of its own, stepped by the
 * caller (attention decoders, teacher forcing): torch.nn.LSTMCell,
 * GRUCell and RNNCell are loom_cell_new(&loom_lstm_cell, ...),
 * (&loom_gru_cell, ...), (&loom_rnn_tanh_cell or &loom_rnn_relu_cell,
 * ...). The type's make (make_no_bias when !bias) registers the
 * parameters with the suffix "", so the built-in cells' are PyTorch's
 * cells' names: weight_ih (G*H, I), weight_hh (G*H, H), bias_ih (G*H),
 * bias_hh (G*H) (then an LSTM's variant parameters, weight_ci, ...), and
 * such a torch cell's state_dict loads strictly (bias false is torch's
 * bias=False: no bias_ih, bias_hh). No dropout, zoneout,
 * weight-drop or weight normalisation: those are the runner's. */
typedef struct loom_cell {
  loom_module base; /* its type is the cell type's name + "Cell" */
  const loom_cell_type *type;
  void *cell; /* what the type's make returned */
  int64_t input_size, hidden_size;
  bool bias;
  char name[48]; /* "LSTMCell": the type's name (cut to 43 bytes) + "Cell" */
} loom_cell;

/* A cell of `type` (caller frees with loom_cell_free or loom_module_free,
 * or registers it as a child). config: the type's cell_config (a
 * loom_lstm_opts for loom_lstm_cell, or NULL). Sizes 1 to
 * LOOM_MAX_ELEMENTS; parameters initialised as the type's make does
 * (PyTorch's U(-1/sqrt(H), 1/sqrt(H)) for the built-ins), in the default
 * dtype. NULL with LOOM_ERR_ARGUMENT for a size out of range, a type
 * without make, step or 1 to LOOM_RNN_MAX_STATES states, or !bias for a
 * type without make_no_bias; NULL with the make callback's error (an
 * LSTM's layer_norm or forget_bias with !bias). */
LOOM_API loom_cell *loom_cell_new(const loom_cell_type *type,
                                  const void *config, int64_t input_size,
                                  int64_t hidden_size, bool bias);
/* One step: next[k] (type->n_states of them; next[0] the output h', an
 * LSTM's next[1] its c') from x and state[k] (both borrowed). x is (B, I)
 * with states (B, H), or unbatched as torch takes it, (I) with states and
 * results (H); a type with a state_shape callback (a convolutional cell)
 * takes x (B, I, ...) only, batched, with states of the shape its
 * state_shape gives. state NULL, or an entry NULL: that state starts at
 * zeros. next may be the state array itself, as in a loop:
 * loom_cell_forward(c, x, state, state). A given state must have the
 * dtype of the step's input (x's, or its projection's where that
 * promotes: float32 x into a float64 cell takes float64 states). Results
 * are scope-owned and differentiable in x, the states and the
 * parameters. 0, or -1 with next[] NULL and an error: LOOM_ERR_DTYPE for
 * a non-float x or a state of the wrong dtype, LOOM_ERR_SHAPE naming x or
 * state[k] when a shape does not fit (checked before the cell runs), or
 * the cell's own error, ending "(in LSTMCell step)". */
LOOM_API int loom_cell_forward(loom_cell *c, const loom_tensor *x,
                               loom_tensor *const *state, loom_tensor **next);
LOOM_API void loom_cell_free(loom_cell *c);

/* ------------------------------------------------ recurrent regularisers
 * Compositions of ops, differentiable in their tensors; masks come from
 * g (NULL: the thread's default generator). p outside [0, 1) is
 * LOOM_ERR_ARGUMENT. Results are scope-owned. */

/* Locked (variational) dropout over time: x (T, B, ...) times one mask of
 * (1, B, ...), zero with probability p and 1 / (1 - p) otherwise, shared
 * by all T steps (Gal & Ghahramani 2016). x itself when !training or
 * p == 0. */
LOOM_API loom_tensor *loom_locked_dropout(const loom_tensor *x, double p,
                                          bool training, loom_rng *g);

/* Embedding dropout (Gal & Ghahramani 2016, as AWD-LSTM's
 * embedded_dropout): the rows of weight (V, D) picked by int64 indices of
 * any shape (indices.shape + [D]), where each word of the vocabulary is
 * dropped (its row zero) with probability p and the other rows scaled by
 * 1 / (1 - p), one mask of V words per call: a word dropped is dropped
 * at every position. Equals loom_embedding(mask * weight, indices,
 * padding_idx); plain loom_embedding when !training or p == 0. */
LOOM_API loom_tensor *loom_embedding_dropout(const loom_tensor *weight,
                                             const loom_tensor *indices,
                                             int64_t padding_idx, double p,
                                             bool training, loom_rng *g);

/* Zoneout of one state: in training, each unit keeps prev with
 * probability p, else takes next (m * prev + (1 - m) * next, m
 * Bernoulli(p) of next's shape); in evaluation, the expectation next + p *
 * (prev - next). prev and next must have the same shape (LOOM_ERR_SHAPE). */
LOOM_API loom_tensor *loom_zoneout(const loom_tensor *prev,
                                   const loom_tensor *next, double p,
                                   bool training, loom_rng *g);

/* Weight normalisation: g * v / |v|, |v| the 2-norm of v over every dim
 * but `dim` (PyTorch's _weight_norm); g holds v's size along dim
 * elements (any shape). v of any shape with 0 <= dim < ndim. */
LOOM_API loom_tensor *loom_weight_norm(const loom_tensor *v,
                                       const loom_tensor *g, int dim);
/* The g that makes loom_weight_norm(v, g, dim) equal v: the norms, of
 * v's shape with every dim but `dim` of size 1, as PyTorch's weight_g (no
 * gradient recorded). */
LOOM_API loom_tensor *loom_weight_norm_init(const loom_tensor *v, int dim);

/* ------------------------------------------------ padded batches */

/* Pads n (>= 1) sequences seqs[i] (L_i, ...) (same trailing dims and
 * dtype) with padding_value to the longest length T and stacks them:
 * (T, n, ...), or (n, T, ...) when batch_first (torch.nn.utils.rnn.
 * pad_sequence). If lengths is non-NULL it receives the int64 (n) lengths
 * L_i, ready for loom_rnn_forward. Differentiable in every sequence.
 * Scope-owned results; NULL (and *lengths NULL) with an error. */
LOOM_API loom_tensor *loom_pad_sequence(loom_tensor *const *seqs, int n,
                                        bool batch_first, double padding_value,
                                        loom_tensor **lengths);
/* The inverse: the B sequences of padded (T, B, ...) (batch_first: (B, T,
 * ...)) cut to their lengths (int64 (B), each in [0, T]), as views
 * seqs[b] (lengths[b], ...); n must be B. Differentiable. 0, or -1 with
 * an error and seqs[] NULL. */
LOOM_API int loom_unpad_sequence(const loom_tensor *padded,
                                 const loom_tensor *lengths, bool batch_first,
                                 loom_tensor **seqs, int n);

#ifdef __cplusplus
}
#endif
#endif
