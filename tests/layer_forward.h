/* Each nn layer's forward behind one signature, for the suites that drive
 * layers generically: f(layer, in) with the layer's tensor inputs in in[]
 * (test_nn_gradcheck.c perturbs them, test_nn_parity.c feeds PyTorch's). */
#ifndef LOOM_LAYER_FORWARD_H
#define LOOM_LAYER_FORWARD_H

#include <loom/loom.h>

typedef loom_tensor *(*forward_fn)(void *layer, loom_tensor *const *in);

static inline loom_tensor *fwd_linear(void *l, loom_tensor *const *in) {
  return loom_linear_layer_forward(l, in[0]);
}
static inline loom_tensor *fwd_bilinear(void *l, loom_tensor *const *in) {
  return loom_bilinear_forward(l, in[0], in[1]);
}
/* in[0]: the int64 indices. */
static inline loom_tensor *fwd_embedding(void *l, loom_tensor *const *in) {
  return loom_embedding_layer_forward(l, in[0]);
}
static inline loom_tensor *fwd_conv(void *l, loom_tensor *const *in) {
  return loom_conv2d_layer_forward(l, in[0]);
}
static inline loom_tensor *fwd_batch_norm(void *l, loom_tensor *const *in) {
  return loom_batch_norm_layer_forward(l, in[0]);
}
static inline loom_tensor *fwd_layer_norm(void *l, loom_tensor *const *in) {
  return loom_layer_norm_layer_forward(l, in[0]);
}
static inline loom_tensor *fwd_highway(void *l, loom_tensor *const *in) {
  return loom_highway_forward(l, in[0]);
}

#endif
