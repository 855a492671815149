/* What the sequence runner (runner.c) and single cells (cell_module.c)
 * share: the checks of what a cell type's callbacks give, so that a cell
 * is held to the same rules whichever runs it. `who` names the cell in
 * messages ("LSTM", "LSTMCell"). */
#ifndef LOOM_NN_RNN_INTERNAL_H
#define LOOM_NN_RNN_INTERNAL_H

#include "rnn.h"

/* The shape of state k for the step input x_t (B, I...): the type's
 * state_shape, checked (1 to LOOM_MAX_DIMS dims, batch first, no negative
 * size), or (B, hidden) without one. Its ndim, or -1 with an error. */
int loom__cell_state_shape(const loom_cell_type *type, const char *who,
                           void *cell, int k, const loom_tensor *x_t,
                           int64_t hidden, int64_t *shape);
/* The states a `callback` ("step", "sequence") returned: each there, of
 * the shape and dtype of the state it was given. 0, or -1 with an error. */
int loom__cell_states_check(const loom_cell_type *type, const char *who,
                            const char *callback, loom_tensor *const *next,
                            loom_tensor *const *state);

#endif
