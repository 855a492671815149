/* The fused attention op: softmax(q k^T scale + mask) v with the causal
 * limit and dropout of the weights, per batch element in one pass
 * (tensor/kernel_attention.c). It replaces the composition of
 * loom_scaled_dot_product_attention (nn/attention.c) when nothing needs the
 * composition's intermediates: the scores, masked scores, weights and
 * dropped weights were four (..., L, S) tensors, and the head split and
 * merge around it two copies; here the tape keeps nothing of size L x S
 * (backward computes the weights again, block by block, and the dropout
 * mask from the key it was drawn with), and the output is written in the
 * layout the head merge reads without a copy, as are the gradients of q,
 * k and v for the views and the chunk they came from (packed_grads).
 * tests/test_attention.c holds it equal to the composition, forward and
 * backward.
 *
 * Double backward (create_graph): by composition. The graph backward
 * rebuilds the op from public ops with the same mask, causal limit and
 * dropout mask (made again from its key), and differentiates that
 * (loom__backward_by_composition), so any order of derivative works. */
#include "node.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

LOOM__OP_GRAPH(fused_attention, attention_backward, attention_graph_backward);

/* The kernel's view of q, k, v (batch dims, row strides) and of the mask
 * broadcast to (batch..., L, S). */
static void describe(loom__attention_args *a, const loom_tensor *q,
                     const loom_tensor *k, const loom_tensor *v,
                     const loom_tensor *mask, bool causal, double scale) {
  int nd = q->ndim, nbd = nd - 2;
  *a = (loom__attention_args){.dtype = q->dtype,
                              .nbd = nbd,
                              .nb = 1,
                              .L = q->shape[nd - 2],
                              .S = k->shape[nd - 2],
                              .E = q->shape[nd - 1],
                              .Ev = v->shape[nd - 1],
                              .q = q->data,
                              .k = k->data,
                              .v = v->data,
                              .q_row = q->strides[nd - 2],
                              .k_row = k->strides[nd - 2],
                              .v_row = v->strides[nd - 2],
                              .scale = scale,
                              .causal = causal};
  for (int d = 0; d < nbd; d++) {
    a->batch[d] = q->shape[d];
    a->nb *= q->shape[d];
    a->qs[d] = q->strides[d];
    a->ks[d] = k->strides[d];
    a->vs[d] = v->strides[d];
  }
  if (mask) {
    int64_t ms[LOOM_MAX_DIMS], full[LOOM_MAX_DIMS];
    for (int d = 0; d < nbd; d++)
      full[d] = q->shape[d];
    full[nd - 2] = a->L;
    full[nd - 1] = a->S;
    loom__broadcast_strides(mask, nd, full, ms);
    a->mask = mask->data;
    for (int d = 0; d < nbd; d++)
      a->ms[d] = ms[d];
    a->mask_row = ms[nd - 2];
    a->mask_col = ms[nd - 1];
  }
}

/* A view the kernel reads in place: a contiguous last dim (or one
 * element), rows apart at a non-negative stride. */
static const loom_tensor *rows_ready(const loom_tensor *t) {
  int nd = t->ndim;
  bool ok = t->strides[nd - 1] == 1 || t->shape[nd - 1] == 1;
  for (int d = 0; d < nd && ok; d++)
    ok = t->strides[d] >= 0;
  ok = ok && t->strides[nd - 2] >= t->shape[nd - 1];
  return ok ? t : loom_contiguous(t);
}

/* A new tensor of `shape` (t's ndim) laid out in t's memory order: its
 * dims before the last ordered as t's strides are (largest first, ties in
 * dim order), the last dim contiguous. Multi-head attention passes q, k, v
 * as (B, heads, L, E) views of (B, L, heads, E) or (L, B, heads, E)
 * storage; an output and gradients in that order make the head merge and
 * the views' backward free of copies. */
static loom_tensor *in_order_of(const loom_tensor *t, const int64_t *shape) {
  int nd = t->ndim, order[LOOM_MAX_DIMS];
  for (int d = 0; d < nd; d++)
    order[d] = d;
  for (int i = 1; i < nd - 1; i++) /* insertion sort: stable */
    for (int j = i; j > 0 && t->strides[order[j]] > t->strides[order[j - 1]];
         j--) {
      int x = order[j];
      order[j] = order[j - 1];
      order[j - 1] = x;
    }
  int64_t stored[LOOM_MAX_DIMS] = {0};
  for (int d = 0; d < nd; d++)
    stored[d] = shape[order[d]];
  loom_tensor *o = loom__new(t->dtype, nd, stored, "fused_attention");
  if (!o)
    return NULL;
  int64_t st[LOOM_MAX_DIMS];
  for (int d = 0; d < nd; d++)
    st[d] = o->strides[d];
  for (int d = 0; d < nd; d++) {
    o->shape[order[d]] = stored[d];
    o->strides[order[d]] = st[d];
  }
  return o;
}

/* Whether the dims (shape, strides) cover a block of memory with no gaps
 * and no overlaps: sorted by stride, each dim steps over all inner ones. */
static bool dense(int nd, const int64_t *shape, const int64_t *strides) {
  int64_t sh[LOOM_MAX_DIMS + 1], st[LOOM_MAX_DIMS + 1];
  int n = 0;
  for (int d = 0; d < nd; d++)
    if (shape[d] != 1) { /* insertion by stride */
      int i = n++;
      for (; i > 0 && st[i - 1] > strides[d]; i--) {
        sh[i] = sh[i - 1];
        st[i] = st[i - 1];
      }
      sh[i] = shape[d];
      st[i] = strides[d];
    }
  int64_t step = 1;
  for (int i = 0; i < n; i++) {
    if (st[i] != step)
      return false;
    step *= sh[i];
  }
  return true;
}

/* Gradients for q, k and v in one block laid out as theirs, when they are
 * the three parts of one tensor (self-attention's chunked projection, its
 * heads split by views): equal shapes and strides, at offsets o, o + s and
 * o + 2 s that together tile a block of memory. Their views' and the
 * chunk's backward then join them without a copy (join.c). False, and
 * nothing allocated, otherwise. */
static bool packed_grads(const loom_tensor *q, const loom_tensor *k,
                         const loom_tensor *v, loom_tensor **dq,
                         loom_tensor **dk, loom_tensor **dv) {
  int nd = q->ndim;
  int64_t s = k->offset - q->offset;
  if (q->storage != k->storage || k->storage != v->storage || s <= 0 ||
      v->offset - k->offset != s || !loom_same_shape(q, k) ||
      !loom_same_shape(q, v) || q->numel == 0)
    return false;
  int64_t shape[LOOM_MAX_DIMS + 1] = {3}, strides[LOOM_MAX_DIMS + 1] = {s};
  for (int d = 0; d < nd; d++) {
    if (k->strides[d] != q->strides[d] || v->strides[d] != q->strides[d] ||
        q->strides[d] < 0)
      return false;
    shape[d + 1] = q->shape[d];
    strides[d + 1] = q->strides[d];
  }
  if (!dense(nd + 1, shape, strides))
    return false;
  loom_tensor *block =
      loom__new(q->dtype, 1, (int64_t[]){3 * q->numel}, "fused_attention");
  for (int i = 0; i < 3 && block; i++) {
    loom_tensor **d = i == 0 ? dq : i == 1 ? dk : dv;
    *d = loom__to_scope(loom__view_of(block, nd, q->shape, q->strides, i * s));
    if (!*d)
      block = NULL;
  }
  if (!block) /* out of memory: the caller's separate tensors may fit */
    loom_clear_error();
  return block != NULL;
}

/* The dropout key the forward pass drew, kept in the node's integers. */
static uint64_t key_of(const loom__node *n) {
  uint64_t key;
  memcpy(&key, &n->i[2], sizeof key);
  return key;
}

static void attention_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *q = loom__input_value(n, 0), *k = loom__input_value(n, 1),
                    *v = loom__input_value(n, 2);
  const loom_tensor *mask = n->i[1] ? loom__saved(n, 0) : NULL;
  const loom_tensor *gr = g[0] ? rows_ready(g[0]) : NULL;
  if (!q || !k || !v || (n->i[1] && !mask) || !gr)
    return;
  q = rows_ready(q);
  k = rows_ready(k);
  v = rows_ready(v);
  if (!q || !k || !v)
    return;
  loom_tensor *dq = NULL, *dk = NULL, *dv = NULL;
  bool all = loom__needs_grad(n, 0) && loom__needs_grad(n, 1) &&
             loom__needs_grad(n, 2);
  if (!all || !packed_grads(q, k, v, &dq, &dk, &dv)) {
    dq = loom__needs_grad(n, 0) ? in_order_of(q, q->shape) : NULL;
    dk = loom__needs_grad(n, 1) ? in_order_of(k, k->shape) : NULL;
    dv = loom__needs_grad(n, 2) ? in_order_of(v, v->shape) : NULL;
  }
  if ((loom__needs_grad(n, 0) && !dq) || (loom__needs_grad(n, 1) && !dk) ||
      (loom__needs_grad(n, 2) && !dv))
    return;
  loom__attention_args a;
  describe(&a, q, k, v, mask, n->i[0], n->d[0]);
  a.dropout = n->d[1];
  a.drop_key = key_of(n);
  if (loom__kernel_attention_backward(&a, gr, dq, dk, dv) < 0)
    return;
  loom__accumulate(n, 0, dq);
  loom__accumulate(n, 1, dk);
  loom__accumulate(n, 2, dv);
}

/* The op in public ops, for a create_graph pass: the same mask, causal
 * limit and dropout mask (saved), so it computes the same function. */
static int compose(const loom__node *n, loom_tensor *const *in,
                   loom_tensor **out) {
  const loom_tensor *q = in[0], *k = in[1], *v = in[2];
  const loom_tensor *mask = n->i[1] ? loom__saved(n, 0) : NULL;
  loom_tensor *s =
      loom_mul_scalar(loom_matmul(q, loom_transpose(k, -2, -1)), n->d[0]);
  if (mask)
    s = loom_add(s, mask);
  if (n->i[0] && s) {
    int64_t L = loom_size(q, -2), S = loom_size(k, -2);
    loom_tensor *c = loom_zeros(LOOM_BOOL, LOOM_SHAPE(L, S));
    uint8_t *cd = c ? (uint8_t *)c->data : NULL;
    for (int64_t i = 0; cd && i < L; i++)
      for (int64_t j = i + 1; j < S; j++)
        cd[i * S + j] = 1;
    s = loom_masked_fill(s, c, -INFINITY);
  }
  loom_tensor *w = loom_softmax(s, -1);
  if (n->d[1] > 0 && w) { /* the forward's mask, made again from its key */
    loom_tensor *drop = loom_empty(LOOM_U8, w->ndim, w->shape);
    if (drop)
      loom__dropout_mask((uint8_t *)drop->data, 0, drop->numel, key_of(n),
                         n->d[1]);
    w = drop ? loom_mul(w, loom_mul_scalar(loom_to_dtype(drop, q->dtype),
                                           1 / (1 - n->d[1])))
             : NULL;
  }
  out[0] = loom_matmul(w, v);
  return out[0] ? 0 : -1;
}

static void attention_graph_backward(loom__node *n, loom_tensor *const *g) {
  loom__backward_by_composition(n, g, compose);
}

loom_tensor *loom_fused_attention(const loom_tensor *q, const loom_tensor *k,
                                  const loom_tensor *v, const loom_tensor *mask,
                                  bool causal, double scale, double dropout,
                                  loom_rng *g) {
  const char *op = "fused_attention";
  if (!q || !k || !v)
    return loom_null_argument(op);
  int nd = q->ndim;
  bool shapes = nd >= 2 && k->ndim == nd && v->ndim == nd &&
                q->shape[nd - 1] == k->shape[nd - 1] &&
                k->shape[nd - 2] == v->shape[nd - 2];
  for (int d = 0; shapes && d < nd - 2; d++)
    shapes = q->shape[d] == k->shape[d] && q->shape[d] == v->shape[d];
  if (!shapes)
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "%s: q %s, k %s, v %s must be (..., L, E), (..., S, E), "
                     "(..., S, Ev) with the same batch dims",
                     op, loom_shape_text(q), loom_shape_text(k),
                     loom_shape_text(v));
  if (!loom_dtype_is_float(q->dtype) || k->dtype != q->dtype ||
      v->dtype != q->dtype || (mask && mask->dtype != q->dtype))
    return LOOM_FAIL(LOOM_ERR_DTYPE,
                     "%s: q, k, v and mask must share one float dtype", op);
  if (!(dropout >= 0 && dropout < 1) || !isfinite(scale))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "%s: dropout %g must be in [0, 1) and scale %g finite", op,
                     dropout, scale);
  /* the weights' shape: nothing of it is allocated, but the kernels count
   * its elements (scratch bytes, the dropout mask's element numbers) */
  int64_t full[LOOM_MAX_DIMS];
  for (int d = 0; d < nd - 2; d++)
    full[d] = q->shape[d];
  full[nd - 2] = q->shape[nd - 2];
  full[nd - 1] = k->shape[nd - 2];
  char want[96];
  if (!loom__sizes_fit(nd, full))
    return LOOM_FAIL(LOOM_ERR_SHAPE, "%s: the weights %s are too large", op,
                     loom_format_shape(nd, full, want, sizeof want));
  if (mask) {
    bool fits = mask->ndim <= nd;
    for (int d = 1; fits && d <= mask->ndim; d++)
      fits = mask->shape[mask->ndim - d] == 1 ||
             mask->shape[mask->ndim - d] == full[nd - d];
    if (!fits)
      return LOOM_FAIL(LOOM_ERR_SHAPE,
                       "%s: mask %s does not broadcast to the scores %s", op,
                       loom_shape_text(mask),
                       loom_format_shape(nd, full, want, sizeof want));
    if (mask->requires_grad && loom_grad_enabled())
      return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                       "%s: the mask must not require grad (the composed "
                       "loom_scaled_dot_product_attention differentiates it)",
                       op);
  }
  q = rows_ready(q);
  k = rows_ready(k);
  v = rows_ready(v);
  if (!q || !k || !v)
    return NULL;
  int64_t oshape[LOOM_MAX_DIMS];
  for (int d = 0; d < nd - 1; d++)
    oshape[d] = q->shape[d];
  oshape[nd - 1] = v->shape[nd - 1];
  loom_tensor *out = in_order_of(q, oshape);
  if (!out)
    return NULL;
  loom__attention_args a;
  describe(&a, q, k, v, mask, causal, scale);
  a.dropout = dropout;
  a.drop_key = dropout > 0 ? loom__dropout_key(g) : 0;
  if (loom__kernel_attention(&a, out) < 0)
    return NULL;
  loom__node *n = loom__record(&loom__op_fused_attention, out, 3,
                               (const loom_tensor *[]){q, k, v});
  if (n) {
    n->i[0] = causal;
    n->i[1] = mask != NULL;
    memcpy(&n->i[2], &a.drop_key, sizeof a.drop_key);
    n->d[0] = scale;
    n->d[1] = dropout;
    if (mask)
      loom__save(n, mask);
  }
  return out;
}
