/* Gradient checkpointing (torch.utils.checkpoint): a segment's forward runs
 * with recording off, so none of its activations are kept; the node that
 * stands for it recomputes the segment in backward (with the generators'
 * states it started with, so dropout draws the same masks) and
 * differentiates the recomputed graph through an inner pass. */
#include "node.h"

#include <stdlib.h>

#define MAX_RNGS 8

/* What the node keeps, stored as the bytes of a saved uint8 tensor, so it
 * is freed with the node. */
typedef struct {
  loom_segment_fn fn;
  void *ctx;
  int n_rngs; /* the default generator first, then opts.rngs */
  loom_rng *rngs[MAX_RNGS + 1];
  uint64_t state[MAX_RNGS + 1][LOOM_RNG_STATE_WORDS];
} segment;

LOOM__OP_TWICE(checkpoint, checkpoint_backward);

/* Runs the segment on `in`; 0, or -1 with an error. */
static int run_segment(const segment *sg, loom_tensor *const *in, int n_in,
                       loom_tensor **out, int n_out) {
  for (int k = 0; k < n_out; k++)
    out[k] = NULL;
  int got = sg->fn(in, n_in, out, n_out, sg->ctx);
  if (got < 0) {
    if (loom_last_status() == LOOM_OK)
      loom_set_error(LOOM_ERR_STATE,
                     "checkpoint: the segment returned -1 with no error set");
    return -1;
  }
  if (got != n_out) {
    loom_set_error(LOOM_ERR_STATE,
                   "checkpoint: the segment returned %d outputs, not %d", got,
                   n_out);
    return -1;
  }
  for (int k = 0; k < n_out; k++)
    if (!out[k]) {
      loom_set_error(LOOM_ERR_STATE,
                     "checkpoint: the segment's output %d is NULL", k);
      return -1;
    }
  return 0;
}

/* The segment again, recorded, with the generators as they were at its
 * first run (their current states are put back afterwards). */
static int recompute(const loom__node *n, loom_tensor *const *in,
                     loom_tensor **out) {
  const segment *sg = (const segment *)loom__saved(n, 0)->data;
  uint64_t now[MAX_RNGS + 1][LOOM_RNG_STATE_WORDS];
  for (int r = 0; r < sg->n_rngs; r++) {
    loom_rng_get_state(sg->rngs[r], now[r]);
    loom_rng_set_state(sg->rngs[r], sg->state[r]);
  }
  int depth = loom__swap_no_grad_depth(0);
  int rc = run_segment(sg, in, n->n_in, out, n->n_out);
  loom__swap_no_grad_depth(depth);
  for (int r = 0; r < sg->n_rngs; r++)
    loom_rng_set_state(sg->rngs[r], now[r]);
  return rc;
}

static void checkpoint_backward(loom__node *n, loom_tensor *const *gout) {
  if (loom__saved(n, 0))
    loom__backward_by_composition(n, gout, recompute);
}

int loom_checkpoint(loom_segment_fn fn, void *ctx, loom_tensor *const *inputs,
                    int n_inputs, loom_tensor **outputs, int n_outputs,
                    const loom_checkpoint_opts *opts) {
  const char *op = "checkpoint";
  if (!outputs && n_outputs > 0)
    return loom_null_argument(op), -1;
  /* (outputs past the 64 a segment may have are not the caller's to
   * clear: a count out of range leaves outputs as they are) */
  for (int k = 0; k < n_outputs && k < 64; k++)
    outputs[k] = NULL;
  if (!fn || (!inputs && n_inputs > 0))
    return loom_null_argument(op), -1;
  int n_rngs = opts ? opts->n_rngs : 0;
  if (n_inputs < 0 || n_outputs < 1 || n_outputs > 64 || n_rngs < 0 ||
      n_rngs > MAX_RNGS || (n_rngs > 0 && !opts->rngs)) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "checkpoint: %d inputs, %d outputs (1 to 64), %d "
                   "generators (0 to %d)",
                   n_inputs, n_outputs, n_rngs, MAX_RNGS);
    return -1;
  }
  for (int i = 0; i < n_inputs; i++)
    if (!inputs[i])
      return loom_null_argument(op), -1;
  segment sg = {.fn = fn, .ctx = ctx, .n_rngs = n_rngs + 1};
  for (int r = 0; r < n_rngs; r++)
    if (!(sg.rngs[r + 1] = opts->rngs[r]))
      return loom_null_argument(op), -1;
  for (int r = 0; r < sg.n_rngs; r++)
    loom_rng_get_state(sg.rngs[r], sg.state[r]);
  bool record = loom__should_record(n_inputs, (const loom_tensor **)inputs);
  /* The segment may read parameters directly: then it is recorded even
   * when no input requires grad (a first layer's data input), or their
   * gradients through it would be lost without a word. */
  bool grad_mode = loom_grad_enabled();
  int64_t reads = loom__watch_grad_reads(1);
  loom_no_grad_begin();
  loom_scope *s = loom_scope_begin();
  int rc = run_segment(&sg, inputs, n_inputs, outputs, n_outputs);
  bool read_grad = loom__watch_grad_reads(-1) != reads;
  record = record || (grad_mode && read_grad);
  /* Fresh aliases, so linking them never touches a tensor the segment
   * returned as is (an input, say). */
  for (int k = 0; k < n_outputs; k++)
    outputs[k] =
        rc == 0 ? loom__view_of(outputs[k], outputs[k]->ndim, outputs[k]->shape,
                                outputs[k]->strides, outputs[k]->offset)
                : NULL;
  loom_scope_end(s);
  loom_no_grad_end();
  for (int k = 0; k < n_outputs; k++) {
    if (!outputs[k])
      rc = -1;
    outputs[k] = loom__to_scope(outputs[k]);
  }
  if (rc == 0 && record) {
    int64_t bytes = (int64_t)sizeof sg;
    loom_tensor *keep = loom_from_array(LOOM_U8, &sg, 1, &bytes);
    loom__node *n =
        keep ? loom__record_always(&loom__op_checkpoint, outputs, n_outputs,
                                   n_inputs, (const loom_tensor **)inputs)
             : NULL;
    loom__save(n, keep);
    if (!keep || loom_last_status() != LOOM_OK)
      rc = -1;
  }
  if (rc < 0)
    for (int k = 0; k < n_outputs; k++)
      outputs[k] = NULL;
  return rc;
}
