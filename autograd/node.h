/* What an op file needs from the tape: define the op, record a node, save
 * tensors, and in backward read them and accumulate input gradients.
 * Not installed.
 *
 * The path of every op (softmax.c is a short one; the elementwise ops of
 * one tensor are rows of tensor/unary_ops.def instead):
 *
 *   LOOM__OP(tanh, tanh_backward);              registers "tanh"
 *   static void tanh_backward(loom__node *n, loom_tensor *const *g) {
 *     loom__accumulate(n, 0, <gradient of input 0 from g[0], saved values>);
 *   }
 *   loom_tensor *loom_tanh(const loom_tensor *x) {
 *     ... check, compute out with a kernel ...
 *     loom__node *n = loom__record(&loom__op_tanh, out, 1, &x);
 *     loom__save(n, out);                      (NULL-safe when not recording)
 *     return out;
 *   }
 *
 * Backward runs with recording off, inside a scope that ends after the
 * node, so it may call any op freely; gradients it passes to
 * loom__accumulate are retained as needed.
 */
#ifndef LOOM_NODE_H
#define LOOM_NODE_H

#include "../tensor/kernels.h"
#include "autograd.h"

typedef struct loom__node loom__node;
typedef void (*loom__backward_fn)(loom__node *n, loom_tensor *const *gout);

typedef struct loom__op_def {
  const char *name;
  loom__backward_fn backward;
} loom__op_def;

/* Defines `loom_op_<name>` and places it in the registry section, which the
 * linker gathers from every op file: adding an op touches no central list. */
#define LOOM__OP(name, backward_fn)                                            \
  static void backward_fn(loom__node *n, loom_tensor *const *gout);            \
  __attribute__((used, section("loom_ops"), aligned(16)))                      \
  const loom__op_def loom__op_##name = {#name, backward_fn}

#define LOOM__NODE_INLINE 3

struct loom__node {
  const loom__op_def *op;
  uint64_t seq; /* creation order: backward runs newest first */
  uint32_t gen; /* generation of the slot this node occupies */
  int32_t slot;
  uint32_t visit; /* backward epoch mark */
  bool in_backward;
  int32_t n_in, n_saved, cap_saved, n_out, live_out;
  loom_tensor **in;    /* retained; in_buf or heap */
  int64_t *in_version; /* each input's version when recorded */
  loom_tensor **saved;
  int64_t *saved_version;
  loom_tensor **out_grad;          /* per output, owned; out_grad_buf or heap */
  loom_tensor **out_ptr;           /* per output, weak (cleared when it dies) */
  struct loom__out_meta *out_meta; /* shapes, for outputs given no grad */
  loom_tensor *in_buf[LOOM__NODE_INLINE];
  loom_tensor *saved_buf[LOOM__NODE_INLINE];
  int64_t version_buf[LOOM__NODE_INLINE];
  int64_t in_version_buf[LOOM__NODE_INLINE];
  loom_tensor *out_grad_buf[1], *out_ptr_buf[1];
  /* Op parameters (dims, scalars) kept for backward. */
  int64_t i[LOOM_MAX_DIMS + 8];
  double d[4];
  /* Custom functions: the function and its context. */
  const loom_function *fn;
  void *user;
};

typedef struct loom__out_meta {
  loom_dtype dtype;
  int ndim;
  int64_t shape[LOOM_MAX_DIMS];
} loom__out_meta;

/* Whether an op with these inputs would be recorded now. */
bool loom__should_record(int n, const loom_tensor *const *in);
/* Records a node for `out` produced from in[0..n) if grad mode is on and an
 * input requires grad; returns it, or NULL when nothing was recorded. On
 * out of memory the error is set and `out` is marked so that backward
 * through it fails rather than give a wrong gradient. */
loom__node *loom__record(const loom__op_def *op, loom_tensor *out, int n,
                         const loom_tensor *const *in);
/* The same for several outputs (custom functions). */
loom__node *loom__record_multi(const loom__op_def *op, loom_tensor **out,
                               int n_out, int n, const loom_tensor *const *in);
/* Keeps t for backward (NULL n: no-op). Saving the node's own output keeps
 * an alias of its data, not the output itself, so no cycle forms. */
void loom__save(loom__node *n, const loom_tensor *t);

/* In backward: input i, saved tensor i (NULL + error if it was modified in
 * place since it was saved), whether input i wants a gradient. */
const loom_tensor *loom__input(const loom__node *n, int i);
/* Input i for a backward that reads its values (not just its shape): NULL
 * and the error of loom__saved if it was modified in place since the op. */
const loom_tensor *loom__input_value(const loom__node *n, int i);
const loom_tensor *loom__saved(const loom__node *n, int i);
bool loom__needs_grad(const loom__node *n, int i);
/* The node that produced t, or NULL (a leaf, an unrecorded result, or a
 * node already freed). */
loom__node *loom__node_of(const loom_tensor *t);

/* ---- gradients (accumulate.c) ---- */

/* Adds g (reduced over broadcast dims and converted to the input's dtype)
 * to input i's gradient. Ignored for inputs that need none. */
void loom__accumulate(loom__node *n, int i, const loom_tensor *g);
/* Adds g to t->grad: a copy of g when t has none, else in place (bumping
 * its version). -1 when out of memory. */
int loom__add_to_grad(loom_tensor *t, const loom_tensor *g);
/* Adds g into a node's gradient slot: the first gradient is kept by
 * reference; later ones add into the slot's tensor in place when it is the
 * slot's alone, else make a new sum (g may be shared). */
void loom__add_to_slot(loom_tensor **slot, loom_tensor *g);

/* Adds g to the part of input i's gradient that a slice took: along
 * `dim`, positions start, start + step, ... (g lacks `dim` when `drop`).
 * The first slice's gradient starts a zero-filled whole that later slices
 * add into in place, so a tensor read slice by slice (a sequence step by
 * step) costs O(size) in backward, not O(size) per slice. */
void loom__accumulate_slice(loom__node *n, int i, const loom_tensor *g, int dim,
                            int64_t start, int64_t step, bool drop);
/* The accumulated gradient of input i, when the caller may add into it in
 * place (say as a product's BLAS beta = 1): input i is a leaf whose
 * gradient exists, is contiguous and has its dtype and shape, and anomaly
 * mode, which must see each contribution, is off. Else NULL: accumulate
 * a new tensor as usual. */
loom_tensor *loom__grad_in_place(loom__node *n, int i);
/* Weight gradients of small linears that backward defers to one product
 * per weight (matmul.c): begun before the first node, ended (summed into
 * the weights' gradients when ok, else dropped) while nodes still live. */
void loom__deferred_begin(void);
void loom__deferred_end(bool ok);
/* Sums now what the pass deferred for the weight `w` (before its
 * grad-ready hooks run). */
void loom__deferred_flush(const loom_tensor *w);
/* g summed over the dims where `shape` was broadcast (scope-owned). */
loom_tensor *loom__sum_to(const loom_tensor *g, int ndim, const int64_t *shape);
/* Refuses an in-place write into t (error naming op) when autograd would
 * be fooled; else bumps t's version. Returns false on refusal. */
bool loom__inplace_ok(loom_tensor *t, const char *op);

/* Clamp bounds for a tensor of `dtype`: for integers, the integers inside
 * [lo, hi], saturated to what int64 holds (loom_clamp, loom_clamp_). */
void loom__clamp_bounds(loom_dtype dtype, double *lo, double *hi);

/* Called by gradcheck to learn which registry ops its function used. */
void loom__coverage_note(const loom__op_def *op);
extern bool loom__coverage_on;

/* The registry section's bounds (from the linker). */
extern const loom__op_def __start_loom_ops[], __stop_loom_ops[];

#endif
