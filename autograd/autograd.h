/* loom autograd: the tape, backward, grad mode, custom functions, gradcheck.
 *
 * Every differentiable op (ops.h) run with grad mode on and an input that
 * requires grad appends a node to the thread's tape. loom_backward(loss)
 * walks the nodes reachable from `loss` newest-first and accumulates
 * gradients into the `grad` of leaves (tensors made with
 * loom_set_requires_grad), freeing each node (and what it saved) once its
 * gradients have gone on, unless the graph is retained.
 *
 * Memory: the tape owns its nodes; a node keeps the tensors its backward
 * needs. A tensor only names its node (slot + generation), so freeing a node
 * can never leave a dangling pointer, and a node whose outputs are all gone
 * is freed at once, so a graph that is never backpropagated does not pile
 * up. A scope may end before backward: the kept loss keeps its graph alive.
 */
#ifndef LOOM_AUTOGRAD_H
#define LOOM_AUTOGRAD_H

#include "../tensor/tensor.h"
#include "ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------ leaves and gradients */

/* Marks a float tensor as a leaf whose gradient backward accumulates (or
 * unmarks it). Returns t itself (no new reference: it stays owned as it
 * was), or NULL with LOOM_ERR_DTYPE for a non-float dtype, LOOM_ERR_STATE
 * for a result of a recorded op (detach it first), LOOM_ERR_ARGUMENT for
 * NULL. */
LOOM_API loom_tensor *loom_set_requires_grad(loom_tensor *t, bool on);
LOOM_API bool loom_requires_grad(const loom_tensor *t);
/* True for tensors not produced by a recorded op. */
LOOM_API bool loom_is_leaf(const loom_tensor *t);
/* The accumulated gradient (borrowed from t: valid until the next backward
 * or loom_zero_grad), or NULL if none has arrived. */
LOOM_API loom_tensor *loom_grad(const loom_tensor *t);
/* Drops the accumulated gradient (the next backward starts from zero). */
LOOM_API void loom_zero_grad(loom_tensor *t);
/* Makes g itself the accumulated gradient of the leaf t (PyTorch's
 * `t.grad = g`): t takes a reference, and later backwards add into g in
 * place, so g should be a tensor of its own or a view meant for it (data
 * parallelism hands each parameter its part of a bucket this way). g must
 * have t's shape and dtype. 0, or -1 with an error (LOOM_ERR_ARGUMENT: a
 * NULL argument; LOOM_ERR_STATE: t is not a leaf that requires grad, g
 * does not fit, or g's elements share memory, with t or among themselves:
 * an expanded view, or strides that overlap). */
LOOM_API int loom_set_grad(loom_tensor *t, loom_tensor *g);
/* Asks backward to store the gradient of a non-leaf `t` in loom_grad(t)
 * (a leaf's is stored anyway). A t that does not require grad is refused,
 * as torch's retain_grad refuses it: nothing changes and LOOM_ERR_STATE is
 * recorded (LOOM_ERR_ARGUMENT for NULL). */
LOOM_API void loom_retain_grad(loom_tensor *t);
/* A view of t's data that is a leaf outside the graph (no gradient flows
 * back through it): how truncated BPTT carries its hidden state. The view
 * is scope-owned and shares t's storage (writes show through); NULL with
 * LOOM_ERR_ARGUMENT for NULL. */
LOOM_API loom_tensor *loom_detach(const loom_tensor *t);

/* ------------------------------------------------ backward */

typedef struct loom_backward_opts {
  bool retain_graph; /* keep the nodes for another backward */
  /* Record the backward itself, so the gradients it produces can be
   * differentiated again (gradient penalties, Hessian-vector products).
   * Implies retain_graph. A leaf's .grad then holds a result of recorded
   * ops, which keeps the graph alive until loom_zero_grad (as in
   * PyTorch); loom_autograd_grad avoids that. */
  bool create_graph;
} loom_backward_opts;

/* Backpropagates from a one-element `loss` (seed 1). 0, or -1 with an error
 * (LOOM_ERR_SHAPE: a loss of more than one element; LOOM_ERR_STATE: a loss
 * that does not require grad, a graph already freed, a saved tensor
 * modified in place, a graph recorded on another thread; LOOM_ERR_NUMERIC:
 * NaN in anomaly mode). Leaves shared with
 * other threads (a model's parameters) get this backward's gradients added
 * under a lock of their own, so threads may backpropagate into them at
 * once; the sum's rounding then depends on their order. A pass that fails
 * part of the way has added the gradients of the nodes it ran to their
 * leaves (leaves accumulate as the pass reaches them, which lets
 * grad-ready hooks start early): zero them before the next step. */
LOOM_API int loom_backward(loom_tensor *loss);
/* From any `t`, seeded with `grad` (same shape; with create_graph, grad
 * may itself require grad, and the result is differentiable in it too).
 * grad may be NULL for a one-element t, seeded with 1 (loom_backward with
 * options: retain_graph, create_graph); for a larger t that is
 * LOOM_ERR_SHAPE. opts may be NULL. Errors as loom_backward's. */
LOOM_API int loom_backward_with(loom_tensor *t, const loom_tensor *grad,
                                const loom_backward_opts *opts);

typedef struct loom_grad_opts {
  bool retain_graph; /* keep the nodes (implied by create_graph) */
  bool create_graph; /* record the backward: the gradients are differentiable */
  bool allow_unused; /* an input no output depends on gets NULL, not an error */
} loom_grad_opts;

/* torch.autograd.grad: the gradients of the outputs, seeded with
 * grad_outputs, with respect to `inputs` (leaves or results of recorded
 * ops, each requiring grad), written to grads[0..n_inputs) (scope-owned,
 * each of its input's shape and dtype). No tensor's .grad is read or
 * written, and no grad-ready hook runs; only the nodes on a path from an
 * output to an input run. grad_outputs may be NULL, as may any entry: a
 * one-element output is then seeded with 1. With create_graph the results
 * are themselves results of recorded ops (a gradient penalty is
 * loom_backward of an expression in them; a Hessian-vector product is a
 * second loom_autograd_grad seeded with v). An op that is first-order only
 * (docs/internals.md, "Double backward") still gives its gradient, and
 * differentiating through that gradient fails naming the op. opts may be
 * NULL (all false). Returns 0, or -1 with an error and every grads[i] NULL:
 * an input that does not require grad or that no output depends on
 * (without allow_unused), an output that does not require grad or whose
 * graph was freed, a grad_output of another shape, a missing grad_output
 * for an output of several elements, and the failures of loom_backward.
 * Graphs an earlier backward freed: an input whose own graph is freed
 * still gets its gradient (the pass ends there); a gradient the pass
 * would send into another freed graph fails it, as loom_backward does
 * (detach such a tensor, or pass retain_graph to the earlier backward:
 * loom cannot see where a freed graph led, so it cannot tell whether the
 * gradient was wanted); and an input left without a gradient after the
 * pass met a freed graph is an error even with allow_unused, as the freed
 * part may have led to it (torch.autograd.grad, which sees past a freed
 * part, fails only where it did lead there, and with allow_unused gives
 * NULL for an input it did not reach). */
LOOM_API int loom_autograd_grad(loom_tensor *const *outputs, int n_outputs,
                                loom_tensor *const *inputs, int n_inputs,
                                loom_tensor *const *grad_outputs,
                                loom_tensor **grads,
                                const loom_grad_opts *opts);

/* ------------------------------------------------ hooks */

/* A grad-ready hook (PyTorch's post-accumulate-grad hook): called with the
 * leaf and the ctx it was registered with. It may read loom_grad(leaf) and
 * change it in place (or drop it), and may remove hooks (its own too), but
 * not register any (see loom_hook_remove). Returns 0, or -1 with an error
 * set, which fails the backward. */
typedef int (*loom_grad_ready_fn)(loom_tensor *leaf, void *ctx);
typedef struct loom_hook loom_hook;

/* Registers fn to run when a backward pass has added its last contribution
 * to loom_grad(leaf): as soon as every node of the pass that reads the leaf
 * has run, before the pass goes on to older nodes, on the thread running
 * backward, with recording off. It runs once per pass that reaches the
 * leaf, also when no gradient arrived (loom_grad may then be NULL, or hold
 * an earlier pass's sum); a pass that does not reach the leaf does not run
 * it, nor does a pass that failed before reaching that point. A leaf's
 * hooks run in registration order; leaves' hooks in the order the pass
 * completes them (data parallelism starts each all-reduce there). The
 * returned handle keeps a reference to the leaf until loom_hook_remove.
 * NULL with an error: a NULL argument (LOOM_ERR_ARGUMENT), a tensor that is
 * not a leaf requiring grad, or a call from a hook while it runs
 * (LOOM_ERR_STATE). */
LOOM_API loom_hook *loom_register_grad_ready_hook(loom_tensor *leaf,
                                                  loom_grad_ready_fn fn,
                                                  void *ctx);
/* A tensor hook (PyTorch's Tensor.register_hook): called with the tensor
 * and its gradient (borrowed). It may leave the gradient as it is (set
 * nothing), or set *replace to another of the same shape and dtype
 * (scope-owned is fine), which the next hook and backward then use. It
 * may remove hooks but not register any, as a grad-ready hook. 0, or -1
 * with an error set, which fails the backward. */
typedef int (*loom_tensor_hook_fn)(loom_tensor *t, const loom_tensor *grad,
                                   loom_tensor **replace, void *ctx);

/* Registers fn on t (a leaf or a result of a recorded op; it must require
 * grad). For a result, fn runs once its gradient in a pass is complete,
 * just before the op that produced t backpropagates it (so a replacement
 * is what t's inputs receive), and before retain_grad stores it; a
 * result no path of the pass reaches (an unused output of a split or of a
 * custom function) has no gradient, and its hooks do not run. For a
 * leaf, fn runs once per pass on the pass's whole gradient for t before
 * it is added to loom_grad(t) (so a replacement is what accumulates),
 * then the leaf's grad-ready hooks run. A tensor's hooks run in
 * registration order. In loom_autograd_grad, the hooks of results run and
 * those of leaves do not (no .grad is written). The handle keeps a
 * reference to t until loom_hook_remove. NULL with an error: a NULL
 * argument (LOOM_ERR_ARGUMENT), a tensor that does not require grad, or a
 * call from a hook while it runs (LOOM_ERR_STATE). */
LOOM_API loom_hook *loom_register_hook(loom_tensor *t, loom_tensor_hook_fn fn,
                                       void *ctx);
/* Threads: a hook keeps the state of the pass that is running it, so
 * backward passes from several threads into a leaf with hooks of either
 * kind must take turns (unlike passes into leaves without hooks), and no
 * hook may be registered or removed while another thread runs backward. */

/* Unregisters a hook of either kind and frees its handle (NULL-safe).
 * Called from a hook (removing itself, say), the removed hook runs no more
 * and its handle is freed once the hooks in progress have run. */
LOOM_API void loom_hook_remove(loom_hook *h);

/* ------------------------------------------------ grad mode */

/* Inside begin/end (nestable) no op is recorded. */
LOOM_API void loom_no_grad_begin(void);
LOOM_API void loom_no_grad_end(void);
LOOM_API bool loom_grad_enabled(void);
/* When on, every op checks its result for NaN/Inf. In a forward, the first
 * op whose output holds one records LOOM_ERR_NUMERIC naming the op and its
 * shapes, and still returns that output, so its values can be looked at:
 * check loom_last_status() (loom_backward refuses while the error is
 * pending). In a backward, the op whose gradient for an input holds one
 * stops it: loom_backward returns -1 with LOOM_ERR_NUMERIC naming it. */
LOOM_API void loom_set_anomaly_mode(bool on);
LOOM_API bool loom_anomaly_mode(void);

/* ------------------------------------------------ the tape */

/* Nodes alive on this thread's tape. */
LOOM_API int64_t loom_tape_size(void);
/* Frees every node (tensors made by them stay valid but lose their graph).
 * While a backward pass runs on the thread (called from a hook) it frees
 * nothing and sets LOOM_ERR_STATE. */
LOOM_API void loom_tape_clear(void);
/* Prints the graph that produced t, one node per line, newest first (a
 * NULL f or t: LOOM_ERR_ARGUMENT, nothing printed). */
LOOM_API void loom_graph_print(FILE *f, const loom_tensor *t);

/* The registry of built-in differentiable ops: loom_op_name(i) for i in
 * [0, loom_op_count()) is a static string, NULL (no error) outside. */
LOOM_API int loom_op_count(void);
LOOM_API const char *loom_op_name(int i);

/* ------------------------------------------------ custom functions
 *
 * Like torch.autograd.Function:
 *
 *   static int cube_fwd(loom_function_ctx *c, loom_tensor *const *in, int n,
 *                       loom_tensor **out) {
 *     loom_function_save(c, in[0]);
 *     out[0] = loom_mul(loom_square(in[0]), in[0]);
 *     return out[0] ? 0 : -1;
 *   }
 *   static int cube_bwd(loom_function_ctx *c, loom_tensor *const *gout,
 *                       loom_tensor **gin) {
 *     const loom_tensor *x = loom_function_saved(c, 0);
 *     gin[0] = loom_mul(gout[0], loom_mul_scalar(loom_square(x), 3));
 *     return gin[0] ? 0 : -1;
 *   }
 *   static const loom_function cube = {"cube", 1, 1, cube_fwd, cube_bwd};
 *   ...
 *   loom_tensor *y;
 *   loom_function_apply(&cube, &x, &y, NULL);
 */

typedef struct loom_function_ctx loom_function_ctx;

typedef struct loom_function {
  const char *name;
  int n_inputs, n_outputs;
  /* Computes out[0..n_outputs) from in[] with recording off; results may be
   * scope-owned (they are kept). Returns 0, or -1 with an error set (any
   * other value fails loom_function_apply, as does -1). */
  int (*forward)(loom_function_ctx *ctx, loom_tensor *const *in, int n_in,
                 loom_tensor **out);
  /* Given the gradient of every output (zeros where none arrived), writes
   * the gradient of each input to gin[i] (NULL: none); shapes must match the
   * inputs. Returns 0, or -1 with an error set (any other value fails the
   * backward, as does -1). */
  int (*backward)(loom_function_ctx *ctx, loom_tensor *const *gout,
                  loom_tensor **gin);
} loom_function;

/* Runs f on `in`, writing n_outputs tensors (scope-owned) to `out`, and
 * records one node when grad is needed. `user` is available to both
 * callbacks. 0 or -1. */
LOOM_API int loom_function_apply(const loom_function *f, loom_tensor *const *in,
                                 loom_tensor **out, void *user);
/* Saves a tensor for backward (retained; checked for in-place changes).
 * An output the forward returns may be saved too: in a backward that
 * records its graph (create_graph) it is read as the output itself, so
 * second derivatives follow its dependence on the inputs, as torch's
 * save_for_backward of an output. A NULL t (an op that failed, say) makes
 * loom_function_apply fail with LOOM_ERR_ARGUMENT naming the save's index
 * (unless an earlier error is pending): skipping it would shift the index
 * of every later save. A NULL ctx records a NULL-argument error. */
LOOM_API void loom_function_save(loom_function_ctx *ctx, const loom_tensor *t);
/* The i-th saved tensor, borrowed. */
LOOM_API const loom_tensor *loom_function_saved(loom_function_ctx *ctx, int i);
LOOM_API void *loom_function_user(loom_function_ctx *ctx);
/* Whether input i needs a gradient (backward may skip the others); false
 * for an i that is not an input's index. */
LOOM_API bool loom_function_needs_grad(loom_function_ctx *ctx, int i);

/* ------------------------------------------------ checkpointing */

/* A segment of a forward: computes n_out outputs from in[] with ops
 * (scope-owned results) and returns how many, or -1 with an error. */
typedef int (*loom_segment_fn)(loom_tensor *const *in, int n_in,
                               loom_tensor **out, int n_out, void *ctx);

typedef struct loom_checkpoint_opts {
  /* Generators the segment draws from besides the thread's default one
   * (which is always replayed), at most 8; each must live until the
   * backward that recomputes the segment. */
  loom_rng *const *rngs;
  int n_rngs;
} loom_checkpoint_opts;

/* torch.utils.checkpoint: runs fn on inputs with recording off, so none of
 * the segment's intermediate results are kept, and records one node for
 * the outputs (n_outputs tensors, scope-owned, written to outputs). Its
 * backward runs fn again, recorded, with the generators in the states
 * they had before the first run (dropout draws the same masks; their
 * current states are restored afterwards), and backpropagates through
 * that: the gradients equal those of calling fn directly, at the cost of
 * a second forward. Tensors fn reads that are results of recorded ops
 * must be among `inputs` (backward fails naming this otherwise);
 * parameters (leaves) may be read directly and get their gradients, also
 * when no input requires grad (the segment is recorded when its first run
 * passes a tensor that requires grad to an op; an op that returns its
 * operand as it is, such as loom_contiguous of a contiguous tensor, reads
 * nothing, so a segment that only returns a parameter is not recorded).
 * With
 * create_graph the recomputation is itself recorded (gradient penalties
 * through checkpointed segments). fn and ctx must stay valid until that
 * backward; fn must compute the same thing when run again. opts may be
 * NULL. 0, or -1 with an error and every outputs[k] NULL: NULL arguments,
 * counts out of range, fn failing or returning another number of
 * outputs. */
LOOM_API int loom_checkpoint(loom_segment_fn fn, void *ctx,
                             loom_tensor *const *inputs, int n_inputs,
                             loom_tensor **outputs, int n_outputs,
                             const loom_checkpoint_opts *opts);

/* ------------------------------------------------ gradcheck */

/* The function under test: computes outputs from the inputs (with ops, so
 * the tape records them). Writes up to `max_out` tensors to `out` and
 * returns how many, or -1 with an error set. */
typedef int (*loom_gradcheck_fn)(loom_tensor *const *in, int n_in,
                                 loom_tensor **out, int max_out, void *ctx);

typedef struct loom_gradcheck_opts { /* each 0, or finite and positive */
  double eps;  /* 0: 1e-6 */
  double atol; /* 0: 1e-5 */
  double rtol; /* 0: 1e-3 */
  /* Compare v^T J u for random u, v (one backward and two forward passes
   * per input) instead of the whole Jacobian: for big layers. */
  bool fast;
} loom_gradcheck_opts;

typedef struct loom_gradcheck_result {
  bool passed;
  int input, output; /* where the worst mismatch is */
  int64_t in_index;  /* flat element of that input (-1 in fast mode) */
  int64_t out_index; /* flat element of that output (-1 in fast mode) */
  double analytic, numeric;
  double worst_excess; /* max of |a - n| - (atol + rtol |n|), <= 0 passes */
  char message[256];   /* a sentence naming all of the above */
} loom_gradcheck_result;

/* Checks fn's analytic gradients against central differences. Inputs must
 * be float64; those that require grad are checked (the others are held
 * fixed). opts and res may be NULL. Returns 1 if it passed, 0 if not
 * (res->message says where), -1 with an error if fn or backward failed (fn
 * returning -1 with none set gets one); then res says "gradcheck could not
 * run: " and the error, with passed false, indices -1 and NaN values. The
 * inputs' grads are left as they were. */
LOOM_API int loom_gradcheck(loom_gradcheck_fn fn, void *ctx,
                            loom_tensor *const *inputs, int n_inputs,
                            const loom_gradcheck_opts *opts,
                            loom_gradcheck_result *res);

/* Names of the registry ops that any gradcheck in this process has seen on
 * its tape (for the test that every op is gradchecked). */
LOOM_API bool loom_gradcheck_covered(const char *op_name);

/* Checks second derivatives, like torch.autograd.gradgradcheck: with
 * random float64 grad_outputs v (one per output of fn, seeded, and
 * themselves checked as inputs), gradchecks the function
 * (inputs, v) -> loom_autograd_grad(fn(inputs), inputs, v, create_graph)
 * over the inputs that require grad (an input no output depends on gives
 * zeros). Arguments, result and errors as loom_gradcheck (res->input
 * counts the inputs, then the v's); opts.fast applies to the outer check. */
LOOM_API int loom_gradgradcheck(loom_gradcheck_fn fn, void *ctx,
                                loom_tensor *const *inputs, int n_inputs,
                                const loom_gradcheck_opts *opts,
                                loom_gradcheck_result *res);

/* Whether any gradgradcheck in this process has run the double backward
 * of the registry op `op_name` (its backward in a create_graph pass). */
LOOM_API bool loom_gradgradcheck_covered(const char *op_name);

#ifdef __cplusplus
}
#endif
#endif
