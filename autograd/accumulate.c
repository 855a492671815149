/* Gradients on their way to inputs: a backward hands each input's gradient
 * to loom__accumulate, which sums it over broadcast dims, converts its
 * dtype, and adds it to a leaf's .grad or to the gradient slot of the node
 * that produced the input (which runs later in the same backward). */
#include "hooks.h"
#include "node.h"

/* Whether a gradient slot's tensor is referenced by the slot alone (no
 * scope, no other slot, no view of its storage), so adding into it in
 * place cannot change a value anyone else sees. */
static bool exclusive(const loom_tensor *t, const loom_tensor *g) {
  return atomic_load_explicit(&t->refcount, memory_order_relaxed) == 1 &&
         atomic_load_explicit(&t->storage->refcount, memory_order_relaxed) ==
             1 &&
         !t->storage->release && t->dtype == g->dtype && loom__is_contiguous(t);
}

void loom__add_to_slot(loom_tensor **slot, loom_tensor *g) {
  if (!*slot) {
    *slot = loom_keep(g);
    return;
  }
  if (loom__creating_graph()) { /* a recorded sum, never in place */
    loom_tensor *sum = loom_add(*slot, g);
    if (!sum)
      return;
    loom__unref(*slot);
    *slot = loom_keep(sum);
    return;
  }
  if (exclusive(*slot, g) && loom_same_shape(*slot, g)) {
    loom__kernel_binary(&loom__add_kernel, *slot, *slot, g, NULL);
    return;
  }
  loom_tensor *sum = loom__alloc((*slot)->dtype, g->ndim, g->shape, "backward");
  if (!sum)
    return;
  loom__kernel_binary(&loom__add_kernel, sum, *slot, g, NULL);
  loom__unref(*slot);
  *slot = sum;
}

/* Every write of a leaf's .grad holds the leaf's lock: threads sharing the
 * leaf (a model's parameter) may run their backwards at once. */
int loom__add_to_grad(loom_tensor *t, const loom_tensor *g) {
  int rc = 0;
  loom__spin_lock(&t->grad_busy);
  if (loom__creating_graph()) { /* .grad joins the graph, as in PyTorch */
    loom__add_to_slot(&t->grad, (loom_tensor *)g);
    rc = loom_last_status() == LOOM_OK ? 0 : -1;
  } else if (!t->grad) {
    t->grad = loom__alloc(t->dtype, t->ndim, t->shape, "backward");
    if (t->grad)
      loom__kernel_copy(t->grad, g);
    rc = t->grad ? 0 : -1;
  } else {
    loom__kernel_binary(&loom__add_kernel, t->grad, t->grad, g, NULL);
    loom__bump_version(t->grad);
  }
  loom__spin_unlock(&t->grad_busy);
  return rc;
}

/* Where input i's gradient collects: the leaf's .grad, or the producing
 * node's slot for this output; NULL + error when that node is gone. */
static loom_tensor **slot_of(const loom_tensor *in) {
  if (in->link.slot == LOOM__LINK_LEAF)
    return &((loom_tensor *)in)->grad;
  loom__node *p = loom__node_of(in);
  if (!p && loom__other_thread(in)) {
    loom_set_error(LOOM_ERR_STATE,
                   "backward: a %s tensor in this graph was recorded on "
                   "another thread; pass such tensors through loom_detach",
                   loom_shape_text(in));
    return NULL;
  }
  if (!p) {
    loom_set_error(LOOM_ERR_STATE,
                   "backward: the graph behind a %s tensor was already freed "
                   "by an earlier backward; pass retain_graph to the first",
                   loom_shape_text(in));
    return NULL;
  }
  return &p->out_grad[in->link.output];
}

bool loom__capture(loom__pass *p, const loom_tensor *t, loom_tensor *g) {
  bool hit = false;
  for (int k = 0; k < p->n_targets && !(hit && p->stop_at_targets); k++) {
    const loom_tensor *x = p->targets[k];
    if (x == t ||
        (x && x->link.slot >= 0 && x->link.slot == t->link.slot &&
         x->link.gen == t->link.gen && x->link.output == t->link.output)) {
      loom__add_to_slot(&p->captured[k], g);
      hit = true;
    }
  }
  return hit;
}

/* Where a pass that is not plain sends input `in`'s gradient r: captured
 * for a target (of this pass, or a leaf of an enclosing one), dropped for
 * what it does not compute. True when r has gone nowhere else. */
static bool diverted(loom__pass *p, loom_tensor *in, loom_tensor *r) {
  bool leaf = in->link.slot == LOOM__LINK_LEAF;
  for (loom__pass *q = p; q; q = q->parent) {
    if (loom__capture(q, in, r)) {
      if (leaf || q->stop_at_targets)
        return true;
      /* A target whose own graph is freed is where the flow ends. */
      if (!loom__node_of(in) && !loom__other_thread(in))
        return q->met_freed = true;
      return false;
    }
    if (!leaf) /* only a leaf can belong to an enclosing pass's graph */
      break;
  }
  if (leaf)
    return p->capture_only;
  loom__node *producer = loom__node_of(in);
  return producer && producer->skip;
}

void loom__accumulate(loom__node *n, int i, const loom_tensor *g) {
  loom_tensor *in = n->in[i];
  if (!g || !in || !in->requires_grad)
    return;
  loom__pass *pass = loom__active_pass;
  if (pass && pass->first_order)
    g = loom__mark_first_order(g);
  loom_tensor *r = (loom_tensor *)g;
  if (!loom_same_shape(r, in))
    r = loom__sum_to(r, in->ndim, in->shape);
  if (r && r->dtype != in->dtype)
    r = loom_to_dtype(r, in->dtype);
  if (!r)
    return;
  if (loom_anomaly_mode() && loom__kernel_has_nonfinite(r)) {
    loom_set_error(LOOM_ERR_NUMERIC,
                   "anomaly: backward of %s produced "
                   "NaN/Inf in the gradient of input %d %s",
                   n->op->name, i, loom_shape_text(in));
    return;
  }
  if (in->link.slot == LOOM__LINK_FAILED) {
    loom_set_error(LOOM_ERR_STATE, "backward: part of the graph could not be "
                                   "recorded (out of memory)");
    return;
  }
  if (pass && diverted(pass, in, r))
    return;
  if (in->link.slot == LOOM__LINK_LEAF) {
    if (!in->hooks || !loom__hooks_hold(in, r))
      loom__add_to_grad(in, r);
    return;
  }
  loom_tensor **slot = slot_of(in);
  if (slot)
    loom__add_to_slot(slot, r);
}

/* The part of t a slice took: along `dim`, `len` positions from start,
 * step apart. Shares t's storage without a reference: valid while t lives,
 * for kernels only. */
static loom_tensor slice_part(const loom_tensor *t, int dim, int64_t start,
                              int64_t step, int64_t len) {
  loom_tensor part = loom__geometry(t);
  part.data += start * t->strides[dim] * (int64_t)loom_dtype_size(t->dtype);
  part.strides[dim] *= step;
  part.shape[dim] = len;
  part.numel = loom__numel_of(part.ndim, part.shape);
  return part;
}

void loom__accumulate_slice(loom__node *n, int i, const loom_tensor *g, int dim,
                            int64_t start, int64_t step, bool drop) {
  loom_tensor *in = n->in[i];
  if (!g || !in || !in->requires_grad)
    return;
  if (loom__active_pass) { /* its gradient may be captured or recorded */
    loom__accumulate(n, i, loom__slice_scatter(g, in, dim, start, step, drop));
    return;
  }
  if (in->hooks && loom__has_tensor_hooks(in)) { /* held back for them */
    loom__accumulate(n, i, loom__slice_scatter(g, in, dim, start, step, drop));
    return;
  }
  bool leaf = in->link.slot == LOOM__LINK_LEAF;
  loom_tensor **slot = leaf || loom__node_of(in) ? slot_of(in) : NULL;
  if (leaf)
    loom__spin_lock(&in->grad_busy);
  bool fresh = slot && !*slot;
  if (fresh)
    *slot = loom__alloc(in->dtype, in->ndim, in->shape, "backward");
  if (fresh && *slot)
    loom__kernel_fill(*slot, 0);
  const loom_tensor *gp = drop ? loom_unsqueeze(g, dim) : g;
  int64_t len = drop ? 1 : g->shape[dim];
  bool in_place =
      slot && *slot && !loom_anomaly_mode() && g->dtype == in->dtype &&
      (in->link.slot == LOOM__LINK_LEAF ? (*slot)->dtype == in->dtype
                                        : exclusive(*slot, g));
  if (!in_place) { /* the general path: a whole-sized gradient */
    if (leaf)
      loom__spin_unlock(&in->grad_busy);
    loom_tensor *whole = loom_zeros(in->dtype, in->ndim, in->shape);
    if (!whole || !gp)
      return;
    loom_tensor part = slice_part(whole, dim, start, step, len);
    loom__kernel_copy(&part, gp);
    loom__accumulate(n, i, whole);
    return;
  }
  if (gp) {
    loom_tensor part = slice_part(*slot, dim, start, step, len);
    loom__kernel_binary(&loom__add_kernel, &part, &part, gp, NULL);
    loom__bump_version(*slot);
  }
  if (leaf)
    loom__spin_unlock(&in->grad_busy);
}

loom_tensor *loom__grad_in_place(loom__node *n, int i) {
  loom_tensor *in = n->in[i];
  if (!in || !in->requires_grad || in->link.slot != LOOM__LINK_LEAF ||
      loom_anomaly_mode() || loom__active_pass ||
      (in->hooks && loom__has_tensor_hooks(in)))
    return NULL;
  loom__spin_lock(&in->grad_busy);
  loom_tensor *g = in->grad;
  if (!g || g->dtype != in->dtype || !loom_same_shape(g, in) ||
      !loom__is_contiguous(g)) {
    loom__spin_unlock(&in->grad_busy);
    return NULL;
  }
  loom__bump_version(g);
  return g;
}

void loom__grad_in_place_end(loom__node *n, int i) {
  loom__spin_unlock(&n->in[i]->grad_busy);
}

loom_tensor *loom__sum_to(const loom_tensor *g, int ndim,
                          const int64_t *shape) {
  int lead = g->ndim - ndim;
  int dims[LOOM_MAX_DIMS], nd = 0;
  for (int d = 0; d < g->ndim; d++)
    if (d < lead || (shape[d - lead] == 1 && g->shape[d] != 1))
      dims[nd++] = d;
  loom_tensor *s = nd ? loom_sum(g, dims, nd, true) : (loom_tensor *)g;
  return loom_reshape(s, ndim, shape);
}
