/* Joining tensors along a dim, and splitting one into views. */
#include "node.h"

#include <stdlib.h>
#include <string.h>

LOOM__OP_TWICE(concat, concat_backward);
/* The pieces of loom_split, loom_split_sizes and loom_chunk: views of the
 * input under one node, whose backward joins their gradients with one
 * concat. As separate narrow views, each piece's gradient had been added
 * into a zero-filled gradient of the whole: a fill and an add per piece
 * (attention's q, k, v chunk took 1.6 % of an encoder step that way).
 * node->i[0]: the dim. */
LOOM__OP_TWICE(split, split_backward);

static void concat_backward(loom__node *n, loom_tensor *const *g) {
  int dim = (int)n->i[0];
  int64_t at = 0;
  for (int i = 0; i < n->n_in; i++) {
    const loom_tensor *in = loom__input(n, i);
    int64_t len = in->shape[dim];
    if (loom__needs_grad(n, i))
      loom__accumulate(n, i, loom_narrow(g[0], dim, at, len));
    at += len;
  }
}

/* The pieces' gradients as one view, when they already lie in one block
 * of memory as the pieces lie in the input (attention's backward makes
 * q's, k's and v's so); else NULL. */
static loom_tensor *joined_in_place(const loom__node *n,
                                    loom_tensor *const *g) {
  const loom_tensor *in = loom__input(n, 0);
  int dim = (int)n->i[0];
  int64_t at = 0;
  for (int k = 0; k < n->n_out; k++) {
    const loom_tensor *p = g[k];
    if (!p->storage || p->storage != g[0]->storage || p->ndim != in->ndim ||
        p->dtype != in->dtype ||
        p->offset != g[0]->offset + at * g[0]->strides[dim])
      return NULL;
    for (int d = 0; d < in->ndim; d++)
      if (p->strides[d] != g[0]->strides[d] ||
          (d != dim && p->shape[d] != in->shape[d]))
        return NULL;
    at += p->shape[dim];
  }
  loom_tensor *whole = loom__to_scope(
      loom__view_of(g[0], in->ndim, in->shape, g[0]->strides, g[0]->offset));
  if (!whole) /* out of memory for the view: the concat may still fit */
    loom_clear_error();
  return whole;
}

/* Every piece has a gradient here (the pass gives missing ones zeros). */
static void split_backward(loom__node *n, loom_tensor *const *g) {
  loom_tensor *whole = NULL;
  if (n->n_out == 1)
    whole = g[0];
  else if (!loom__creating_graph())
    whole = joined_in_place(n, g);
  loom__accumulate(n, 0,
                   whole ? whole : loom_concat(g, n->n_out, (int)n->i[0]));
}

loom_tensor *loom_concat(loom_tensor *const *ts, int n, int dim) {
  if (!ts)
    return loom_null_argument("concat");
  if (n <= 0)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "concat: no tensors");
  for (int i = 0; i < n; i++)
    if (!ts[i])
      return loom_null_argument("concat");
  const loom_tensor *first = ts[0];
  if (first->ndim == 0)
    return LOOM_FAIL(LOOM_ERR_SHAPE, "concat: 0-dim tensors; use loom_stack");
  int d = loom__dim(dim, first->ndim, "concat");
  if (d < 0)
    return NULL;
  int64_t shape[LOOM_MAX_DIMS];
  memcpy(shape, first->shape, sizeof shape);
  shape[d] = 0;
  loom_dtype t = first->dtype;
  for (int i = 0; i < n; i++) {
    const loom_tensor *x = ts[i];
    bool ok = x->ndim == first->ndim;
    for (int k = 0; ok && k < x->ndim; k++)
      ok = k == d || x->shape[k] == first->shape[k];
    if (!ok)
      return LOOM_FAIL(LOOM_ERR_SHAPE,
                       "concat: tensor %d is %s, tensor 0 is "
                       "%s (all dims but %d must match)",
                       i, loom_shape_text(x), loom_shape_text(first), d);
    if (x->shape[d] > LOOM_MAX_ELEMENTS - shape[d]) /* (views need no memory) */
      return LOOM_FAIL(LOOM_ERR_SHAPE,
                       "concat: dim %d adds up to more than 2^59 - 1 by "
                       "tensor %d",
                       d, i);
    shape[d] += x->shape[d];
    t = loom__promote(t, x->dtype);
  }
  loom_tensor *out = loom__new(t, first->ndim, shape, "concat");
  if (!out)
    return NULL;
  int64_t at = 0;
  size_t es = loom_dtype_size(t);
  for (int i = 0; i < n; i++) {
    loom_tensor part = loom__geometry(out);
    part.shape[d] = ts[i]->shape[d];
    part.numel = ts[i]->numel;
    part.data += at * out->strides[d] * (int64_t)es;
    loom__kernel_copy(&part, ts[i]);
    at += ts[i]->shape[d];
  }
  loom__node *node =
      loom__record(&loom__op_concat, out, n, (const loom_tensor *const *)ts);
  if (node)
    node->i[0] = d;
  for (int i = 0; node && i < n; i++) /* backward reads shapes only */
    loom__keep_link_only(node, i);
  return out;
}

loom_tensor *loom_stack(loom_tensor *const *ts, int n, int dim) {
  if (!ts)
    return loom_null_argument("stack");
  if (n <= 0)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "stack: no tensors");
  for (int i = 0; i < n; i++)
    if (!ts[i])
      return loom_null_argument("stack");
  loom_tensor *small[16],
      **parts = n <= 16 ? small : malloc((size_t)n * sizeof *parts);
  if (!parts)
    return LOOM_FAIL(LOOM_ERR_MEMORY, "stack: out of memory");
  loom_tensor *out = NULL;
  bool ok = true;
  for (int i = 0; i < n && ok; i++) {
    if (!loom_same_shape(ts[i], ts[0])) {
      loom_set_error(LOOM_ERR_SHAPE, "stack: tensor %d is %s, tensor 0 is %s",
                     i, loom_shape_text(ts[i]), loom_shape_text(ts[0]));
      ok = false;
    }
    parts[i] = ok ? loom_unsqueeze(ts[i], dim) : NULL;
    ok = ok && parts[i];
  }
  if (ok)
    out = loom_concat(parts, n, dim);
  if (parts != small)
    free(parts);
  return out;
}

/* A 0-dim tensor has no dim to split (loom__dim accepts dim 0 of it):
 * true with the error set. */
static bool no_dims(const loom_tensor *t, const char *op) {
  if (t->ndim > 0)
    return false;
  loom_set_error(LOOM_ERR_SHAPE, "%s: a 0-dim tensor", op);
  return true;
}

/* out[0..n): t's pieces along dim d, sizes[i] long (or `size` long, the
 * last one what is left, when sizes is NULL), recorded as one node. */
static int pieces(const loom_tensor *t, int d, int n, int64_t size,
                  const int64_t *sizes, loom_tensor **out) {
  int64_t shape[LOOM_MAX_DIMS], at = 0;
  memcpy(shape, t->shape, sizeof shape);
  for (int i = 0; i < n; i++) {
    int64_t left = t->shape[d] - at;
    int64_t len = sizes ? sizes[i] : left < size ? left : size;
    shape[d] = len;
    out[i] = loom__to_scope(loom__view_of(t, t->ndim, shape, t->strides,
                                          t->offset + at * t->strides[d]));
    if (!out[i])
      return -1;
    at += len;
  }
  loom__node *node =
      n > 0 ? loom__record_multi(&loom__op_split, out, n, 1, &t) : NULL;
  loom__keep_link_only(node, 0); /* backward reads shapes only */
  if (node)
    node->i[0] = d;
  return n; /* a node that could not be recorded fails backward instead */
}

int loom_split_sizes(const loom_tensor *t, const int64_t *sizes, int n, int dim,
                     loom_tensor **out) {
  if (!t || (n > 0 && (!sizes || !out)))
    return loom_null_argument("split"), -1;
  int d = loom__dim(dim, t->ndim, "split");
  if (d < 0 || no_dims(t, "split"))
    return -1;
  int64_t total = 0;
  for (int i = 0; i < n; i++) {
    if (sizes[i] < 0) {
      loom_set_error(LOOM_ERR_ARGUMENT, "split: negative size");
      return -1;
    }
    if (sizes[i] > t->shape[d] - total) { /* also keeps the sum in range */
      loom_set_error(LOOM_ERR_SHAPE,
                     "split: the first %d sizes add up to more than dim %d "
                     "of %s",
                     i + 1, d, loom_shape_text(t));
      return -1;
    }
    total += sizes[i];
  }
  if (total != t->shape[d]) {
    loom_set_error(LOOM_ERR_SHAPE, "split: sizes add up to %lld, dim %d of %s",
                   (long long)total, d, loom_shape_text(t));
    return -1;
  }
  return pieces(t, d, n, 0, sizes, out);
}

int loom_split(const loom_tensor *t, int64_t size, int dim, loom_tensor **out,
               int max_out) {
  if (!t || !out)
    return loom_null_argument("split"), -1;
  int d = loom__dim(dim, t->ndim, "split");
  if (d < 0 || no_dims(t, "split"))
    return -1;
  if (size <= 0) {
    loom_set_error(LOOM_ERR_ARGUMENT, "split: size %lld", (long long)size);
    return -1;
  }
  int64_t len = t->shape[d], count = len == 0 ? 1 : (len - 1) / size + 1;
  if (count > max_out) {
    loom_set_error(LOOM_ERR_ARGUMENT, "split: %lld pieces, room for %d",
                   (long long)count, max_out);
    return -1;
  }
  return pieces(t, d, (int)count, size, NULL, out);
}

int loom_chunk(const loom_tensor *t, int chunks, int dim, loom_tensor **out,
               int max_out) {
  if (!t || !out)
    return loom_null_argument("chunk"), -1;
  if (chunks <= 0) {
    loom_set_error(LOOM_ERR_ARGUMENT, "chunk: %d chunks", chunks);
    return -1;
  }
  int d = loom__dim(dim, t->ndim, "chunk");
  if (d < 0 || no_dims(t, "chunk"))
    return -1;
  if (t->shape[d] == 0) { /* torch.chunk: `chunks` empty pieces */
    if (chunks > max_out) {
      loom_set_error(LOOM_ERR_ARGUMENT, "chunk: %d pieces, room for %d", chunks,
                     max_out);
      return -1;
    }
    return pieces(t, d, chunks, 0, NULL, out);
  }
  int64_t size = (t->shape[d] + chunks - 1) / chunks;
  return loom_split(t, size, d, out, max_out);
}
