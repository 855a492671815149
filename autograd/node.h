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
 * loom__accumulate are retained as needed. In a pass with create_graph
 * the op's graph_backward runs instead, with recording on (see LOOM__OP
 * below for how an op declares it).
 */
#ifndef LOOM_NODE_H
#define LOOM_NODE_H

#include "../tensor/kernels.h"
#include "autograd.h"

typedef struct loom__node loom__node;
typedef void (*loom__backward_fn)(loom__node *n, loom_tensor *const *gout);

/* Every definition has one size and alignment (32), so the registry
 * section is an array of them. */
typedef struct __attribute__((aligned(32))) loom__op_def {
  const char *name;
  loom__backward_fn backward;
  /* The backward a pass with create_graph runs: one whose gradients are
   * themselves recorded, so they can be differentiated again. NULL: the
   * op is first-order only (see LOOM__OP). */
  loom__backward_fn graph_backward;
} loom__op_def;

/* Defines `loom__op_<name>` and places it in the registry section, which
 * the linker gathers from every op file: adding an op touches no central
 * list. How an op declares its double backward (docs/internals.md,
 * "Double backward"):
 *
 *   LOOM__OP_TWICE(name, backward)   backward is written in recorded ops
 *       (loom_mul, loom_matmul, ...) on the node's inputs, saved tensors
 *       and gradients, so with create_graph it records its own graph: any
 *       order of derivative works. Most ops.
 *   LOOM__OP_GRAPH(name, backward, graph_backward)   backward is fused
 *       (kernels); graph_backward, used with create_graph, is written in
 *       recorded ops (or calls loom__backward_by_composition, which
 *       differentiates the op's composition instead).
 *   LOOM__OP(name, backward)   first-order only: with create_graph the
 *       gradients it passes on are computed, and differentiating through
 *       them fails with an error naming the op.
 *
 * tests/test_gradcheck.c gradgradchecks every op of the registry except
 * the first-order ones it lists with their reasons. */
#define LOOM__OP_DEFINE(name, backward_fn, graph_fn)                           \
  static void backward_fn(loom__node *n, loom_tensor *const *gout);            \
  __attribute__((used, section("loom_ops"), aligned(32)))                      \
  const loom__op_def loom__op_##name = {#name, backward_fn, graph_fn}
#define LOOM__OP(name, backward_fn) LOOM__OP_DEFINE(name, backward_fn, NULL)
#define LOOM__OP_TWICE(name, backward_fn)                                      \
  LOOM__OP_DEFINE(name, backward_fn, backward_fn)
#define LOOM__OP_GRAPH(name, backward_fn, graph_fn)                            \
  static void graph_fn(loom__node *n, loom_tensor *const *gout);               \
  LOOM__OP_DEFINE(name, backward_fn, graph_fn)

#define LOOM__NODE_INLINE 3

struct loom__node {
  const loom__op_def *op;
  uint64_t seq; /* creation order: backward runs newest first */
  uint32_t gen; /* generation of the slot this node occupies */
  int32_t slot;
  uint32_t visit; /* backward epoch mark */
  bool in_backward;
  bool skip;          /* in a pass, but on no path to what it computes */
  bool pinned;        /* read until its pass ends (a deferred product) */
  uint32_t saved_out; /* bit i: saved[i] aliases output saved[i]->link.output */
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
  /* Set by the running pass: no gradient reached this output, and the
   * zeros the node's backward gets for it were filled in (a composition's
   * inner pass seeds it with none). */
  bool filled;
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
/* loom__record_multi whether or not an input requires grad (a checkpoint
 * whose segment read a parameter directly); grad mode is not checked. */
loom__node *loom__record_always(const loom__op_def *op, loom_tensor **out,
                                int n_out, int n, const loom_tensor *const *in);
/* Keeps t for backward (NULL n: no-op). Saving the node's own output keeps
 * an alias of its data, not the output itself, so no cycle forms. */
void loom__save(loom__node *n, const loom_tensor *t);

/* For an op whose backward, first order and with create_graph, reads only
 * the shape, dtype and link of input i, never its values: the node keeps a
 * data-less stand-in in its place (loom__input gives it; loom__input_value
 * fails), so the input's memory goes as soon as nothing else holds it. An
 * input kept as it is: a leaf that requires grad, one with hooks or a
 * retained gradient, and (out of memory making the stand-in) any. NULL n:
 * no-op. Call right after recording. */
void loom__keep_link_only(loom__node *n, int i);

/* In backward: input i, saved tensor i (NULL + error if it was modified in
 * place since it was saved), whether input i wants a gradient. */
const loom_tensor *loom__input(const loom__node *n, int i);
/* Input i for a backward that reads its values (not just its shape): NULL
 * and the error of loom__saved if it was modified in place since the op. */
const loom_tensor *loom__input_value(const loom__node *n, int i);
const loom_tensor *loom__saved(const loom__node *n, int i);
bool loom__needs_grad(const loom__node *n, int i);
/* In backward: whether input i is the node's alone, so that the backward
 * may overwrite it (write its gradient into its memory): the running pass
 * frees the node after its backward (no retain_graph, no create_graph),
 * and no tensor, scope, hook or other node (nor this node twice) holds the
 * input or its storage. */
bool loom__input_disposable(const loom__node *n, int i);
/* The same for saved tensor i (a workspace the op made and saved). */
bool loom__saved_disposable(const loom__node *n, int i);
/* Whether the running pass keeps its nodes when it ends (backward.c). */
extern _Thread_local bool loom__pass_keeps_nodes;
/* The node that produced t, or NULL (a leaf, an unrecorded result, a node
 * already freed, or a node of another thread's tape). */
loom__node *loom__node_of(const loom_tensor *t);
/* Whether t was produced by a node of another thread's tape. */
bool loom__other_thread(const loom_tensor *t);

/* ---- passes with create_graph or captured gradients (tape.c) ---- */

/* A backward pass that is not plain loom_backward: it records its
 * gradients (create_graph), or collects the gradients of given tensors
 * (`targets`, loom_autograd_grad and the inner passes of composition and
 * checkpointing) instead of, or besides, adding into leaves' .grad.
 * Passes nest: a node's graph_backward may run an inner pass. */
typedef struct loom__pass {
  struct loom__pass *parent;
  bool create_graph;
  /* Leaves' .grad stays untouched: a leaf's gradient is only captured,
   * by this pass or an enclosing one that names it (loom_autograd_grad). */
  bool capture_only;
  /* Gradients do not flow past the targets (an inner pass computing a
   * node's partial derivatives). */
  bool stop_at_targets;
  int n_targets;
  loom_tensor *const *targets;
  loom_tensor **captured; /* per target, owned; NULL until one arrives */
  uint64_t first_seq;     /* an inner pass reaches no node older than this */
  /* A needed path may run into a graph an earlier backward freed (a
   * target's own, or a tensor a collected node read): what lay behind it
   * is unknown, so a target that gets no gradient is an error, not
   * "unused". */
  bool met_freed;
  /* While a first-order-only op runs in a create_graph pass: its node, so
   * the gradients it passes on can be marked (tape.c). */
  loom__node *first_order;
  loom_tensor *const *first_order_gout;
} loom__pass;

/* The innermost pass running on this thread that is not plain, or NULL. */
extern _Thread_local loom__pass *loom__active_pass;

/* Whether this thread's backward is recording its gradients now. */
static inline bool loom__creating_graph(void) {
  return loom__active_pass && loom__active_pass->create_graph;
}

/* Whether an integer t, whose dtype a result keeps, can take the operand o
 * (not a float one; NULL: none) and the scalar s (a whole number in int64's
 * range) without truncating; false with an error naming op otherwise. Any
 * float t can. (In-place ops; index_add and scatter_add.) */
bool loom__stays_integral(const loom_tensor *t, const loom_tensor *o, double s,
                          const char *op);

/* Counts the backward passes running on this thread (+1 as one starts, -1
 * as it ends): the tape is not cleared under them. */
void loom__tape_passes(int delta);

/* Runs a pass from outputs[0..n) seeded with seeds[] (each the output's
 * shape; a NULL seed: the output gets none) under p (targets, mode).
 * `retain` keeps the nodes. 0, or -1 with an error. */
int loom__run_pass(loom__pass *p, loom_tensor *const *outputs,
                   loom_tensor *const *seeds, int n, bool retain);

/* Nodes reachable from roots[0..n) (NULL entries skipped), newest first
 * (a topological order, since a node's inputs were made before it); under
 * a pass that stops at its targets, not past them. Sets *count; NULL and
 * an error on out of memory, or when an inner pass would reach a node
 * older than it (a tensor read that was not one of its inputs). */
loom__node **loom__collect(loom__node *const *roots, int n, const loom__pass *p,
                           int64_t *count);
/* Tape internals for backward.c. */
uint32_t loom__next_epoch(void);
uint64_t loom__tape_seq(void);           /* the newest node's seq */
int loom__swap_no_grad_depth(int depth); /* returns the old depth */
/* Adds delta to the depth of watching for ops run with recording off
 * whose inputs require grad; returns how many such ops have run on the
 * thread while watching (compare the counts before and after). */
int64_t loom__watch_grad_reads(int delta);
void loom__free_node(loom__node *n);

/* In a create_graph pass, while a first-order-only op runs: g as the
 * output of a node whose backward fails naming the op (backward.c). */
const loom_tensor *loom__mark_first_order(const loom_tensor *g);

/* A graph_backward for a fused op: `compose` recomputes the op's outputs
 * from in[] (the node's inputs) with recorded ops; the gradients of that
 * composition for gout are passed on as the node's (recorded, so they can
 * be differentiated again). compose writes n->n_out tensors to out and
 * returns 0, or -1 with an error. */
typedef int (*loom__compose_fn)(const loom__node *n, loom_tensor *const *in,
                                loom_tensor **out);
void loom__backward_by_composition(loom__node *n, loom_tensor *const *gout,
                                   loom__compose_fn compose);

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
/* Captures g for t if t is one of p's targets (by identity, or for a
 * result of a recorded op by its link to that op's output): into every
 * place loom_autograd_grad names it, but once in a composition's pass
 * (stop_at_targets), whose node hands the capture to the input slots it
 * came from. Whether t is a target. */
bool loom__capture(loom__pass *p, const loom_tensor *t, loom_tensor *g);

/* Adds g to the part of input i's gradient that a slice took: along
 * `dim`, positions start, start + step, ... (g lacks `dim` when `drop`).
 * The first slice's gradient starts a zero-filled whole that later slices
 * add into in place, so a tensor read slice by slice (a sequence step by
 * step) costs O(size) in backward, not O(size) per slice. */
void loom__accumulate_slice(loom__node *n, int i, const loom_tensor *g, int dim,
                            int64_t start, int64_t step, bool drop);
/* g (shaped as `like` with `dim` sliced, or dropped when `drop`) placed
 * into zeros of like's shape at start, start + step, ...: the gradient of a
 * slice, as a recorded op whose own gradient is the slice again (views.c). */
loom_tensor *loom__slice_scatter(const loom_tensor *g, const loom_tensor *like,
                                 int dim, int64_t start, int64_t step,
                                 bool drop);
/* The accumulated gradient of input i, when the caller may add into it in
 * place (say as a product's BLAS beta = 1): input i is a leaf whose
 * gradient exists, is contiguous and has its dtype and shape, with no
 * tensor hooks (which see the pass's sum before .grad does), outside a
 * create_graph or captured pass, and anomaly mode, which must see each
 * contribution, is off. Else NULL: accumulate a new tensor as usual. A non-NULL
 * result holds the leaf's gradient lock (other threads' backwards may be adding
 * into the same leaf): release it with loom__grad_in_place_end(n, i) once the
 * addition is done. */
loom_tensor *loom__grad_in_place(loom__node *n, int i);
void loom__grad_in_place_end(loom__node *n, int i);
/* Weight gradients of small linears that backward defers to one product
 * per weight, and their leaf biases' to one sum (matmul.c): begun before
 * the first node, ended (summed into the gradients when ok, else dropped)
 * while nodes still live. */
void loom__deferred_begin(void);
void loom__deferred_end(bool ok);
/* Sums now what the pass deferred for `w`, a weight or a bias (before its
 * grad-ready hooks run). */
void loom__deferred_flush(const loom_tensor *w);
/* g summed over the dims where `shape` was broadcast (scope-owned). */
loom_tensor *loom__sum_to(const loom_tensor *g, int ndim, const int64_t *shape);
/* Refuses an in-place write into t (error naming op) when autograd would
 * be fooled; else bumps t's version. Returns false on refusal. */
bool loom__inplace_ok(loom_tensor *t, const char *op);

/* An operand of a binary op or where converted to the dtype t that
 * loom__promote_tensors chose, as PyTorch converts it: like loom_to_dtype,
 * except that an int32 or int64 operand going to uint8 (a 0-dim one beside
 * a uint8 tensor) wraps modulo 256 where loom_to_dtype saturates. A
 * scope-owned tensor, or NULL with loom_to_dtype's errors. */
loom_tensor *loom__to_promoted(const loom_tensor *x, loom_dtype t);

/* Whether a finite bound lies between two integers or beyond int64: an
 * integer tensor clamped there needs float results, as with the scalar
 * ops (infinite bounds leave a side open; the kernel saturates them). */
bool loom__clamp_needs_float(double lo, double hi);

/* Called by gradcheck to learn which registry ops its function used: on
 * this thread, while loom__coverage_set(true), recording op calls
 * loom__coverage_note(op) (the sets are shared by all threads). */
void loom__coverage_note(const loom__op_def *op);
/* ... and which ran their double backward (create_graph). */
void loom__coverage_note_twice(const loom__op_def *op);
void loom__coverage_set(bool on);
bool loom__coverage_is_on(void);

/* The registry section's bounds (from the linker). */
extern const loom__op_def __start_loom_ops[], __stop_loom_ops[];

#endif
