/* Recurrent layers: cells, and the sequence runner that turns any cell into
 * a layer (included by nn.h).
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
  const char *name;
  int n_states; /* LSTM: 2 (h, c); RNN, GRU: 1 */
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
   * and returns its ndim. NULL: (B, hidden_size). */
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
   * and direction. Must equal running step T times. Returns 0, -1 on
   * error, or 1 when this cell's configuration has no fused path (the
   * runner then steps). */
  int (*sequence)(void *cell, const loom_tensor *xs, const loom_tensor *lengths,
                  bool reverse, loom_tensor *const *init, loom_tensor **out,
                  loom_tensor **final);
} loom_cell_type;

/* Built-in cells. RNN: h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh). */
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
   * and on c_t before its tanh, each with a gain and bias. */
  bool layer_norm;
  /* Added to the forget gate's part of bias_ih at initialisation (1.0 is a
   * common choice); 0 keeps PyTorch's init. */
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
} loom_rnn_opts;

/* The sequence runner, as a module. */
typedef struct loom_rnn {
  loom_module base;
  const loom_cell_type *type;
  loom_rnn_opts opts;
  int directions;
  int n_cells; /* layers * directions, cell (l, d) at l * directions + d */
  void *cells[2 * LOOM_RNN_MAX_LAYERS];
} loom_rnn;

/* A layer running `type` (caller frees with loom_rnn_free). Parameters are
 * initialised like PyTorch's: U(-1/sqrt(hidden), 1/sqrt(hidden)). */
LOOM_API loom_rnn *loom_rnn_new(const loom_cell_type *type, loom_rnn_opts opts);
/* Shorthands: the built-in cell types (cell_config as in opts). */
LOOM_API loom_rnn *loom_lstm_new(loom_rnn_opts opts);
LOOM_API loom_rnn *loom_gru_new(loom_rnn_opts opts);
LOOM_API void loom_rnn_free(loom_rnn *r);

/* Runs the layer. lengths: int64 (B) of sequence lengths or NULL (all T);
 * outputs past a sequence's end are zero and its final state is taken at
 * its own end. init: n_states tensors of (layers*directions, B, S...) or
 * NULL for zeros. Writes output (T, B, D*S...) (batch-first if asked) and,
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

#ifdef __cplusplus
}
#endif
#endif
