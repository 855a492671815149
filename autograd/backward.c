/* Backward passes: loom_backward, loom_backward_with and
 * loom_autograd_grad, with or without create_graph, and the inner passes
 * by which a fused op differentiates its composition.
 *
 * A pass collects the nodes reachable from its outputs, runs them newest
 * first (each inside its own scope), and frees them unless asked to keep
 * them. Plain passes (no create_graph, no captured gradients) run with
 * recording off and add into leaves' .grad, as they always have; a
 * create_graph pass runs each node's graph_backward with recording on, so
 * the gradients it produces are results of recorded ops. */
#include "hooks.h"
#include "node.h"

#include <stdlib.h>

_Thread_local loom__pass *loom__active_pass;
_Thread_local bool loom__pass_keeps_nodes;

/* ---- collecting the nodes of a pass ---- */

static int by_seq_desc(const void *a, const void *b) {
  uint64_t x = (*(loom__node *const *)a)->seq,
           y = (*(loom__node *const *)b)->seq;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* Which of p's targets t is (by identity, or for a result of a recorded
 * op by its link to that op's output), or -1. */
static int target_index(const loom__pass *p, const loom_tensor *t) {
  for (int k = 0; k < p->n_targets; k++) {
    const loom_tensor *x = p->targets[k];
    if (x == t ||
        (x && x->link.slot >= 0 && x->link.slot == t->link.slot &&
         x->link.gen == t->link.gen && x->link.output == t->link.output))
      return k;
  }
  return -1;
}

loom__node **loom__collect(loom__node *const *roots, int n_roots,
                           const loom__pass *p, int64_t *count) {
  int64_t n = 0, cap = 64, sp = 0, scap = 64;
  loom__node **list = malloc((size_t)cap * sizeof *list);
  loom__node **stack = malloc((size_t)scap * sizeof *stack);
  if (!list || !stack)
    goto oom;
  uint32_t epoch = loom__next_epoch();
  for (int r = 0; r < n_roots; r++) {
    if (!roots[r] || roots[r]->visit == epoch)
      continue;
    roots[r]->visit = epoch;
    if (sp == scap) {
      loom__node **g = realloc(stack, (size_t)(scap *= 2) * sizeof *g);
      if (!g)
        goto oom;
      stack = g;
    }
    stack[sp++] = roots[r];
  }
  bool stop = p && p->stop_at_targets;
  while (sp > 0) {
    loom__node *x = stack[--sp];
    if (n == cap) {
      loom__node **g = realloc(list, (size_t)(cap *= 2) * sizeof *g);
      if (!g)
        goto oom;
      list = g;
    }
    x->skip = false;
    list[n++] = x;
    for (int i = 0; i < x->n_in; i++) {
      if (!x->in[i] || (stop && target_index(p, x->in[i]) >= 0))
        continue;
      loom__node *q = loom__node_of(x->in[i]);
      if (!q || q->visit == epoch)
        continue;
      if (p && q->seq < p->first_seq) {
        loom_set_error(LOOM_ERR_STATE,
                       "backward: a recomputed segment read a tensor %s that "
                       "is the result of a recorded op but not one of its "
                       "inputs; pass it as an input",
                       loom_shape_text(x->in[i]));
        free(list);
        free(stack);
        return NULL;
      }
      q->visit = epoch;
      if (sp == scap) {
        loom__node **g = realloc(stack, (size_t)(scap *= 2) * sizeof *g);
        if (!g)
          goto oom;
        stack = g;
      }
      stack[sp++] = q;
    }
  }
  free(stack);
  /* The depth-first walk already yields a chain (an unrolled recurrence)
   * newest first; checking is O(n), while qsort's comparison callbacks
   * cost more than the backward of a small node. */
  int64_t i = 1;
  while (i < n && list[i - 1]->seq > list[i]->seq)
    i++;
  if (i < n)
    qsort(list, (size_t)n, sizeof *list, by_seq_desc);
  *count = n;
  return list;
oom:
  free(list);
  free(stack);
  loom_set_error(LOOM_ERR_MEMORY, "backward: out of memory");
  return NULL;
}

/* Whether t is a target of p or of a pass enclosing it. */
static bool wanted(const loom__pass *p, const loom_tensor *t) {
  for (; p; p = p->parent)
    if (target_index(p, t) >= 0)
      return true;
  return false;
}

/* Whether t is the result of a recorded op whose node an earlier backward
 * freed. */
static bool graph_freed(const loom_tensor *t) {
  return t->link.slot >= 0 && !loom__node_of(t) && !loom__other_thread(t);
}

/* A pass that only captures gradients runs only the nodes on a path to a
 * target: oldest first, a node is needed when it reads a target or the
 * output of a needed node. A graph freed behind an input hides where it
 * led: the pass notes it (loom__pass.met_freed). */
static void prune(loom__node **list, int64_t count, loom__pass *p) {
  for (int64_t j = count - 1; j >= 0; j--) {
    loom__node *x = list[j];
    bool needed = false;
    for (int i = 0; i < x->n_in; i++) {
      const loom_tensor *in = x->in[i];
      if (!in || !in->requires_grad)
        continue;
      loom__node *q = loom__node_of(in);
      bool target = wanted(p, in);
      p->met_freed |= !target && graph_freed(in);
      needed |= target || (q && q->in_backward && !q->skip);
    }
    x->skip = !needed;
  }
}

static bool fill_missing_grads(loom__node *n) {
  for (int k = 0; k < n->n_out; k++) {
    n->out_meta[k].filled = !n->out_grad[k];
    if (n->out_grad[k])
      continue;
    const loom__out_meta *m = &n->out_meta[k];
    loom_tensor *z = loom__alloc(m->dtype, m->ndim, m->shape, "backward");
    if (!z)
      return false;
    loom__kernel_fill(z, 0);
    n->out_grad[k] = z;
  }
  return true;
}

static void retain_grads(loom__node *n) {
  for (int k = 0; k < n->n_out; k++) {
    loom_tensor *o = n->out_ptr[k];
    if (o && o->retains_grad && n->out_grad[k])
      loom__add_to_grad(o, n->out_grad[k]);
  }
}

/* ---- first-order-only ops in a create_graph pass ----
 * Their gradients are computed as usual, then each is passed on as the
 * output of a node that reads everything the gradient depends on and
 * whose backward fails naming the op, so a gradient of it is refused
 * rather than silently wrong (PyTorch's DelayedError). */

static void first_order_backward(loom__node *n, loom_tensor *const *gout) {
  (void)gout;
  const loom__op_def *op = n->user;
  loom_set_error(LOOM_ERR_STATE,
                 "backward: %s has no double backward (it is first-order "
                 "only), so its gradient cannot be differentiated",
                 op->name);
}

static const loom__op_def first_order_gradient = {"first_order_gradient",
                                                  first_order_backward, NULL};

const loom_tensor *loom__mark_first_order(const loom_tensor *g) {
  loom__pass *p = loom__active_pass;
  loom__node *src = p->first_order;
  int n = 0, cap = src->n_in + src->n_out;
  const loom_tensor *small[8];
  const loom_tensor **in = cap <= 8 ? small : malloc((size_t)cap * sizeof *in);
  if (!in)
    return LOOM_FAIL(LOOM_ERR_MEMORY, "backward: out of memory");
  for (int i = 0; i < src->n_in; i++)
    if (src->in[i] && src->in[i]->requires_grad)
      in[n++] = src->in[i];
  for (int k = 0; k < src->n_out; k++)
    if (p->first_order_gout[k] && p->first_order_gout[k]->requires_grad)
      in[n++] = p->first_order_gout[k];
  loom_tensor *alias = loom__to_scope(
      loom__view_of(g, g->ndim, g->shape, g->strides, g->offset));
  int depth = loom__swap_no_grad_depth(0);
  loom__node *m =
      alias ? loom__record(&first_order_gradient, alias, n, in) : NULL;
  loom__swap_no_grad_depth(depth);
  if (m)
    m->user = (void *)src->op;
  if (in != small)
    free(in);
  return alias;
}

/* ---- running a pass ---- */

/* Adds the seed of output t: to its node's slot, or, for an output that is
 * itself a leaf or a target, where its gradient goes. */
static int seed(loom__pass *p, loom_tensor *t, loom_tensor *g) {
  bool create = p && p->create_graph;
  if (p && loom__capture(p, t, g) &&
      (p->stop_at_targets || t->link.slot == LOOM__LINK_LEAF))
    return 0;
  if (t->link.slot == LOOM__LINK_LEAF) {
    if (p && p->capture_only)
      return 0;
    if (t->hooks && loom__hooks_hold(t, g)) /* its tensor hooks see it */
      return loom__hooks_run_leaf(t);
    return loom__add_to_grad(t, g) < 0 ? -1 : loom__hooks_run_leaf(t);
  }
  loom__node *root = loom__node_of(t);
  if (create) { /* gradients are never written in place here */
    loom__add_to_slot(&root->out_grad[t->link.output], g);
    return 0;
  }
  loom_tensor *copy = loom__alloc(g->dtype, g->ndim, g->shape, "backward");
  if (!copy)
    return -1;
  loom__kernel_copy(copy, g);
  loom__add_to_slot(&root->out_grad[t->link.output], copy);
  loom__unref(copy);
  return 0;
}

static void run_node(loom__pass *p, loom__node *n) {
  if (!p || !p->create_graph) {
    n->op->backward(n, n->out_grad);
  } else if (n->op->graph_backward) {
    if (loom__coverage_is_on())
      loom__coverage_note_twice(n->op);
    n->op->graph_backward(n, n->out_grad);
  } else {
    p->first_order = n;
    p->first_order_gout = n->out_grad;
    loom_no_grad_begin();
    n->op->backward(n, n->out_grad);
    loom_no_grad_end();
    p->first_order = NULL;
  }
}

int loom__run_pass(loom__pass *p, loom_tensor *const *outputs,
                   loom_tensor *const *seeds, int n_out, bool retain) {
  loom__node *small[4] = {NULL},
             **roots =
                 n_out <= 4 ? small : malloc((size_t)n_out * sizeof *roots);
  if (!roots) {
    loom_set_error(LOOM_ERR_MEMORY, "backward: out of memory");
    return -1;
  }
  for (int k = 0; k < n_out; k++)
    roots[k] = seeds[k] ? loom__node_of(outputs[k]) : NULL;
  int64_t count = 0;
  loom__node **list = loom__collect(roots, n_out, p, &count);
  if (roots != small)
    free(roots);
  if (!list)
    return -1;
  for (int64_t j = 0; j < count; j++)
    list[j]->in_backward = true;
  loom__tape_passes(1);
  loom__pass *outer = loom__active_pass;
  loom__active_pass = p;
  bool outer_keeps = loom__pass_keeps_nodes;
  loom__pass_keeps_nodes = retain;
  int rc = 0;
  for (int k = 0; k < n_out && rc == 0; k++)
    if (seeds[k])
      rc = seed(p, outputs[k], seeds[k]);
  if (p && p->capture_only)
    prune(list, count, p);
  bool create = p && p->create_graph;
  loom_hook_plan *hooks =
      p && p->capture_only ? NULL : loom__hooks_plan(list, count);
  if (loom_last_status() != LOOM_OK)
    rc = -1;
  int depth = create ? loom__swap_no_grad_depth(0) : 0;
  if (!create)
    loom_no_grad_begin();
  /* A weight read by many nodes (every step of a sequence) is packed for
   * products once per backward, not once per node. */
  loom__kernel_reuse_begin();
  loom__deferred_begin();
  for (int64_t j = 0; j < count && rc == 0; j++) {
    if (loom__hooks_run(hooks, j) < 0) { /* leaves complete before j */
      rc = -1;
      break;
    }
    loom__node *n = list[j];
    bool any = false;
    for (int k = 0; k < n->n_out; k++)
      any |= n->out_grad[k] != NULL;
    if (!any || n->skip)
      continue;
    for (int k = 0; k < n->n_out && rc == 0; k++) /* before retain_grad */
      if (n->out_ptr[k] && n->out_ptr[k]->hooks &&
          loom__tensor_hooks_apply(n->out_ptr[k], &n->out_grad[k]) < 0)
        rc = -1;
    if (rc < 0)
      break;
    if (!(p && p->capture_only))
      retain_grads(n);
    /* Only now: an output no path reached gets no hook call and no
     * retained gradient (it has none, as in PyTorch), and the node's
     * backward gets zeros for it. */
    if (n->n_out > 1 && !fill_missing_grads(n)) {
      rc = -1;
      break;
    }
    loom_scope *s = loom_scope_begin();
    run_node(p, n);
    loom_scope_end(s);
    for (int k = 0; k < n->n_out; k++) {
      loom__unref(n->out_grad[k]);
      n->out_grad[k] = NULL;
    }
    if (loom_last_status() != LOOM_OK)
      rc = -1;
    /* Its gradients have gone on: unless the graph is kept, the node goes
     * now, and with it what it saved, so a training step's activations are
     * handed back as backward passes their layers instead of all at the
     * end (its peak was every activation plus the gradients). A node a
     * deferred weight product still reads stays to the end (matmul.c). */
    if (rc == 0 && !retain && !n->pinned) {
      n->in_backward = false;
      loom__free_node(n);
      list[j] = NULL; /* its slot may hold another node from now on */
    }
  }
  if (rc == 0 && loom__hooks_run(hooks, count) < 0)
    rc = -1;
  loom__hooks_plan_free(hooks);
  loom__deferred_end(rc == 0);
  if (rc == 0 && loom_last_status() != LOOM_OK)
    rc = -1;
  loom__kernel_reuse_end();
  if (create)
    loom__swap_no_grad_depth(depth);
  else
    loom_no_grad_end();
  loom__active_pass = outer;
  loom__pass_keeps_nodes = outer_keeps;
  /* Free what was used (or, when retaining, what nothing can reach now),
   * and drop gradients left in nodes an error skipped. Such a gradient may
   * be the last holder of a tensor of the graph (a custom function can
   * hand one back), whose death frees its node unless it is in_backward:
   * so a node leaves in_backward only once its slots are empty, and what
   * is freed meanwhile has been done with here. */
  for (int64_t j = 0; j < count; j++) {
    loom__node *n = list[j];
    if (!n)
      continue;
    for (int k = 0; k < n->n_out; k++) {
      loom_tensor *g = n->out_grad[k];
      n->out_grad[k] = NULL;
      loom__unref(g);
    }
    n->in_backward = false;
  }
  for (int64_t j = 0; j < count; j++) {
    loom__node *n = list[j];
    if (n && n->op && ((!retain && !n->skip) || n->live_out == 0))
      loom__free_node(n);
  }
  free(list);
  loom__tape_passes(-1);
  return rc;
}

/* ---- the public passes ---- */

/* Why a tensor cannot start a pass, or NULL. */
static const char *unusable(const loom_tensor *t) {
  if (!t->requires_grad)
    return "does not require grad (no input of its ops required grad, or "
           "grad mode was off)";
  if (t->link.slot == LOOM__LINK_FAILED)
    return "has a graph that could not be recorded (out of memory)";
  if (loom__other_thread(t))
    return "has a graph recorded on another thread; run backward on that "
           "thread";
  if (t->link.slot != LOOM__LINK_LEAF && !loom__node_of(t))
    return "has a graph already freed by an earlier backward; pass "
           "retain_graph to the first";
  return NULL;
}

static int check_seed(const char *op, const loom_tensor *t,
                      const loom_tensor *g) {
  const char *why = unusable(t);
  if (why) {
    loom_set_error(LOOM_ERR_STATE, "%s: tensor %s %s", op, loom_shape_text(t),
                   why);
    return -1;
  }
  if (!loom_same_shape(t, g)) {
    char a[96], b[96];
    loom_set_error(LOOM_ERR_SHAPE, "%s: gradient %s for a tensor %s", op,
                   loom_shape_str(g, a, sizeof a),
                   loom_shape_str(t, b, sizeof b));
    return -1;
  }
  return 0;
}

/* The pass from t seeded with grad (not NULL). */
static int backward_seeded(loom_tensor *t, const loom_tensor *grad,
                           const loom_backward_opts *opts) {
  if (check_seed("backward", t, grad) < 0)
    return -1;
  bool create = opts && opts->create_graph;
  loom__pass pass = {.parent = loom__active_pass, .create_graph = true};
  /* A plain pass inside another (a hook's, say) is plain again. */
  loom__pass *p = create ? &pass : NULL;
  loom__pass *outer = loom__active_pass;
  loom__active_pass = NULL;
  loom_tensor *g = (loom_tensor *)grad;
  int rc = loom__run_pass(p, &t, &g, 1, create || (opts && opts->retain_graph));
  loom__active_pass = outer;
  return rc;
}

int loom_backward_with(loom_tensor *t, const loom_tensor *grad,
                       const loom_backward_opts *opts) {
  if (!t)
    return loom_null_argument("backward"), -1;
  if (loom_last_status() != LOOM_OK) /* an earlier failure is pending */
    return -1;
  if (grad)
    return backward_seeded(t, grad, opts);
  if (t->numel != 1) {
    loom_set_error(LOOM_ERR_SHAPE,
                   "backward: %s has %lld elements: seed it with a gradient "
                   "of its shape",
                   loom_shape_text(t), (long long)t->numel);
    return -1;
  }
  loom_tensor *one = loom__alloc(t->dtype, t->ndim, t->shape, "backward");
  if (!one)
    return -1;
  loom__kernel_fill(one, 1);
  int rc = backward_seeded(t, one, opts);
  loom__unref(one);
  return rc;
}

int loom_backward(loom_tensor *loss) {
  return loom_backward_with(loss, NULL, NULL);
}

int loom_autograd_grad(loom_tensor *const *outputs, int n_outputs,
                       loom_tensor *const *inputs, int n_inputs,
                       loom_tensor *const *grad_outputs, loom_tensor **grads,
                       const loom_grad_opts *opts) {
  const char *op = "autograd_grad";
  if (!grads && n_inputs > 0)
    return loom_null_argument(op), -1;
  for (int i = 0; i < n_inputs; i++)
    grads[i] = NULL;
  if ((!outputs && n_outputs > 0) || (!inputs && n_inputs > 0))
    return loom_null_argument(op), -1;
  if (n_outputs < 1 || n_inputs < 1) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "%s: %d outputs and %d inputs (each "
                   "at least 1)",
                   op, n_outputs, n_inputs);
    return -1;
  }
  if (loom_last_status() != LOOM_OK)
    return -1;
  loom_grad_opts o = opts ? *opts : (loom_grad_opts){0};
  for (int i = 0; i < n_inputs; i++) {
    if (!inputs[i])
      return loom_null_argument(op), -1;
    if (!inputs[i]->requires_grad) {
      loom_set_error(LOOM_ERR_STATE, "%s: input %d %s does not require grad",
                     op, i, loom_shape_text(inputs[i]));
      return -1;
    }
  }
  loom_scope *s = loom_scope_begin();
  loom_tensor **seeds = calloc((size_t)n_outputs, sizeof *seeds);
  loom_tensor **captured = calloc((size_t)n_inputs, sizeof *captured);
  int rc = seeds && captured ? 0 : -1;
  if (rc < 0)
    loom_set_error(LOOM_ERR_MEMORY, "%s: out of memory", op);
  for (int k = 0; k < n_outputs && rc == 0; k++) {
    loom_tensor *t = outputs[k];
    if (!t) {
      rc = -1;
      loom_null_argument(op);
      break;
    }
    if (grad_outputs && grad_outputs[k]) {
      seeds[k] = grad_outputs[k];
    } else if (t->numel == 1) {
      seeds[k] = loom_ones(t->dtype, t->ndim, t->shape);
    } else {
      loom_set_error(LOOM_ERR_SHAPE,
                     "%s: output %d %s has %lld elements and no grad_output",
                     op, k, loom_shape_text(t), (long long)t->numel);
      rc = -1;
    }
    if (rc == 0 && check_seed(op, t, seeds[k]) < 0)
      rc = -1;
  }
  loom__pass pass = {.parent = NULL,
                     .create_graph = o.create_graph,
                     .capture_only = true,
                     .n_targets = n_inputs,
                     .targets = inputs,
                     .captured = captured};
  if (rc == 0) {
    loom__pass *outer = loom__active_pass;
    loom__active_pass = NULL;
    rc = loom__run_pass(&pass, outputs, seeds, n_outputs,
                        o.retain_graph || o.create_graph);
    loom__active_pass = outer;
  }
  for (int i = 0; i < n_inputs && rc == 0; i++)
    if (!captured[i] && pass.met_freed) { /* unused, or behind that graph */
      loom_set_error(LOOM_ERR_STATE,
                     "%s: input %d %s got no gradient, and the outputs' "
                     "graph runs into a part already freed by an earlier "
                     "backward, which may have led to it; pass retain_graph "
                     "to the first",
                     op, i, loom_shape_text(inputs[i]));
      rc = -1;
    } else if (!captured[i] && !o.allow_unused) {
      loom_set_error(LOOM_ERR_STATE,
                     "%s: input %d %s was not used to compute the outputs "
                     "(set allow_unused to get NULL for it)",
                     op, i, loom_shape_text(inputs[i]));
      rc = -1;
    }
  loom_scope_end(s);
  for (int i = 0; i < n_inputs && captured; i++) {
    grads[i] = rc == 0 ? loom__to_scope(captured[i]) : NULL;
    if (rc < 0)
      loom__unref(captured[i]);
  }
  free(seeds);
  free(captured);
  return rc;
}

/* ---- double backward by composition ---- */

void loom__backward_by_composition(loom__node *n, loom_tensor *const *gout,
                                   loom__compose_fn compose) {
  loom_tensor *small[8],
      **out = n->n_out <= 8 ? small : calloc((size_t)n->n_out, sizeof *out);
  loom_tensor *csmall[8],
      **captured =
          n->n_in <= 8 ? csmall : calloc((size_t)n->n_in, sizeof *captured);
  if (!out || !captured) {
    loom_set_error(LOOM_ERR_MEMORY, "backward of %s: out of memory",
                   n->op->name);
    goto done;
  }
  for (int i = 0; i < n->n_in; i++)
    captured[i] = NULL;
  uint64_t first = loom__tape_seq() + 1;
  if (compose(n, n->in, out) < 0) {
    if (loom_last_status() == LOOM_OK)
      loom_set_error(LOOM_ERR_STATE, "backward of %s: its composition failed",
                     n->op->name);
    goto done;
  }
  loom__pass *outer = loom__active_pass;
  loom__pass inner = {.parent = outer,
                      .create_graph = outer && outer->create_graph,
                      .capture_only = outer && outer->capture_only,
                      .stop_at_targets = true,
                      .n_targets = n->n_in,
                      .targets = n->in,
                      .captured = captured,
                      .first_seq = first};
  /* Outputs the composition did not connect to an input need nothing. */
  loom_tensor *seeds_small[8] = {NULL},
              **seeds = n->n_out <= 8 ? seeds_small
                                      : calloc((size_t)n->n_out, sizeof *seeds);
  if (!seeds) {
    loom_set_error(LOOM_ERR_MEMORY, "backward of %s: out of memory",
                   n->op->name);
    goto done;
  }
  for (int k = 0; k < n->n_out; k++) /* zeros the pass filled in: none */
    seeds[k] = out[k] && out[k]->requires_grad &&
                       !(n->out_meta && n->out_meta[k].filled)
                   ? gout[k]
                   : NULL;
  int rc = loom__run_pass(&inner, out, seeds, n->n_out, inner.create_graph);
  if (seeds != seeds_small)
    free(seeds);
  for (int i = 0; i < n->n_in; i++) {
    if (rc == 0 && captured[i])
      loom__accumulate(n, i, captured[i]);
    loom__unref(captured[i]);
  }
done:
  if (out != small)
    free(out);
  if (captured != csmall)
    free(captured);
}
