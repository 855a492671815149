/* Example user-defined recurrent cells: each is a screen of C that the
 * sequence runner turns into a full layer (layers, directions, lengths). */
#ifndef LOOM_EXAMPLE_CELLS_H
#define LOOM_EXAMPLE_CELLS_H

#include <loom/loom.h>

/* ConvLSTM (Shi et al. 2015): the LSTM's gates come from a convolution
 * over [x_t, h] instead of a product, so states keep their image shape
 * (B, hidden, H, W). cell_config: a pointer to the kernel size (int64_t,
 * odd; NULL means 3). */
extern const loom_cell_type example_convlstm_cell;

/* Minimal gated unit (Zhou et al. 2016): one forget gate f, and
 * h' = (1 - f) h + f tanh(W_h x + U_h (f h) + b_h). */
extern const loom_cell_type example_mgu_cell;

#endif
