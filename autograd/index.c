/* Indexing ops: gather/scatter along a dim, index_select/index_add of whole
 * slices, embedding lookup, masks and where. Index tensors are int64, or
 * int32 where PyTorch 1.13 takes it too (index_select, index_add,
 * embedding; not gather, scatter_add or one_hot), and every value is
 * checked before use. */
#include "node.h"

LOOM__OP_GRAPH(gather, gather_backward, gather_graph_backward);
LOOM__OP_GRAPH(index_select, index_select_backward,
               index_select_graph_backward);
LOOM__OP_TWICE(scatter_add, scatter_add_backward);
LOOM__OP_TWICE(index_add, index_add_backward);
LOOM__OP_GRAPH(embedding, embedding_backward, embedding_graph_backward);
LOOM__OP_TWICE(masked_fill, masked_fill_backward);
LOOM__OP_TWICE(where, where_backward);

/* The index as int64 (an int32 one converted when `int32_ok`), or NULL
 * with an error naming the dtypes `op` takes. */
static const loom_tensor *index_arg(const loom_tensor *index, bool int32_ok,
                                    const char *op) {
  if (int32_ok && index->dtype == LOOM_I32)
    return loom_to_dtype(index, LOOM_I64);
  if (index->dtype != LOOM_I64)
    return LOOM_FAIL(LOOM_ERR_DTYPE, "%s: index must be %s, got %s", op,
                     int32_ok ? "int64 or int32" : "int64",
                     loom_dtype_name(index->dtype));
  return index;
}

/* ---- gather / scatter_add ---- */

static bool gather_shapes_ok(const loom_tensor *t, int dim,
                             const loom_tensor *index, const char *op) {
  bool ok = index->ndim == t->ndim;
  for (int d = 0; ok && d < t->ndim; d++)
    ok = d == dim || index->shape[d] <= t->shape[d];
  if (!ok)
    loom_set_error(LOOM_ERR_SHAPE, "%s: index %s does not fit %s along dim %d",
                   op, loom_shape_text(index), loom_shape_text(t), dim);
  return ok;
}

static void gather_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *t = loom__input(n, 0), *index = loom__saved(n, 0);
  if (!index)
    return;
  loom_tensor *gin = loom_zeros(g[0]->dtype, t->ndim, t->shape);
  if (!gin)
    return;
  loom__kernel_scatter_add(gin, (int)n->i[0], index, g[0]);
  loom__accumulate(n, 0, gin);
}

/* The same as a recorded scatter_add into zeros (create_graph). */
static void gather_graph_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *t = loom__input(n, 0), *index = loom__saved(n, 0);
  if (index)
    loom__accumulate(
        n, 0,
        loom_scatter_add(loom_zeros(g[0]->dtype, t->ndim, t->shape),
                         (int)n->i[0], index, g[0]));
}

loom_tensor *loom_gather(const loom_tensor *t, int dim,
                         const loom_tensor *index) {
  if (!t || !index)
    return loom_null_argument("gather");
  if (!index_arg(index, false, "gather"))
    return NULL;
  int d = loom__dim(dim, t->ndim, "gather");
  if (d < 0 || !gather_shapes_ok(t, d, index, "gather") ||
      loom__kernel_check_index(index, t->ndim ? t->shape[d] : 1, "gather") < 0)
    return NULL;
  loom_tensor *out = loom__new(t->dtype, index->ndim, index->shape, "gather");
  if (!out)
    return NULL;
  loom__kernel_gather(out, t, d, index);
  loom__node *n = loom__record(&loom__op_gather, out, 1, &t);
  if (n) {
    n->i[0] = d;
    loom__save(n, index);
  }
  return out;
}

static void scatter_add_backward(loom__node *n, loom_tensor *const *g) {
  loom__accumulate(n, 0, g[0]);
  if (loom__needs_grad(n, 1)) {
    const loom_tensor *index = loom__saved(n, 0);
    if (index)
      loom__accumulate(n, 1, loom_gather(g[0], (int)n->i[0], index));
  }
}

loom_tensor *loom_scatter_add(const loom_tensor *t, int dim,
                              const loom_tensor *index,
                              const loom_tensor *src) {
  if (!t || !index || !src)
    return loom_null_argument("scatter_add");
  if (!index_arg(index, false, "scatter_add"))
    return NULL;
  int d = loom__dim(dim, t->ndim, "scatter_add");
  if (d < 0 || !gather_shapes_ok(t, d, index, "scatter_add"))
    return NULL;
  if (!loom_same_shape(index, src))
    return LOOM_FAIL(LOOM_ERR_SHAPE, "scatter_add: index %s and src %s differ",
                     loom_shape_text(index), loom_shape_text(src));
  if (loom__kernel_check_index(index, t->ndim ? t->shape[d] : 1,
                               "scatter_add") < 0 ||
      !loom__stays_integral(t, src, 1, "scatter_add"))
    return NULL;
  src = loom_to_dtype(src, t->dtype);
  loom_tensor *out =
      src ? loom__new(t->dtype, t->ndim, t->shape, "scatter_add") : NULL;
  if (!out)
    return NULL;
  loom__kernel_copy(out, t);
  loom__kernel_scatter_add(out, d, index, src);
  loom__node *n = loom__record(&loom__op_scatter_add, out, 2,
                               (const loom_tensor *[]){t, src});
  if (n) {
    n->i[0] = d;
    loom__save(n, index);
  }
  return out;
}

/* ---- index_select / index_add ---- */

static const loom_tensor *as_index_vector(const loom_tensor *index,
                                          const char *op) {
  if (!(index = index_arg(index, true, op)))
    return NULL;
  if (index->ndim > 1)
    return LOOM_FAIL(LOOM_ERR_SHAPE, "%s: index must be 1-D, got %s", op,
                     loom_shape_text(index));
  return loom_contiguous(loom_reshape(index, 1, (int64_t[]){index->numel}));
}

static void index_select_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *t = loom__input(n, 0), *index = loom__saved(n, 0);
  if (!index)
    return;
  loom_tensor *gin = loom_zeros(g[0]->dtype, t->ndim, t->shape);
  loom_tensor *gc = loom_contiguous(g[0]);
  if (!gin || !gc)
    return;
  loom__kernel_index_add(gin, (int)n->i[0], index, gc, 1);
  loom__accumulate(n, 0, gin);
}

/* The same as a recorded index_add into zeros (create_graph). */
static void index_select_graph_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *t = loom__input(n, 0), *index = loom__saved(n, 0);
  if (index)
    loom__accumulate(n, 0,
                     loom_index_add(loom_zeros(g[0]->dtype, t->ndim, t->shape),
                                    (int)n->i[0], index, g[0], 1));
}

/* A 0-dim tensor is indexed as one of shape (1,) and keeps its shape, so
 * it takes one index: the result has no room for more. */
static int scalar_index(const loom_tensor *t, const loom_tensor *ix,
                        const char *op) {
  if (t->ndim || ix->numel == 1)
    return 0;
  loom_set_error(LOOM_ERR_SHAPE, "%s: a 0-dim tensor takes one index, got %lld",
                 op, (long long)ix->numel);
  return -1;
}

loom_tensor *loom_index_select(const loom_tensor *t, int dim,
                               const loom_tensor *index) {
  if (!t || !index)
    return loom_null_argument("index_select");
  int d = loom__dim(dim, t->ndim, "index_select");
  const loom_tensor *ix = d < 0 ? NULL : as_index_vector(index, "index_select");
  if (!ix || scalar_index(t, ix, "index_select") < 0 ||
      loom__kernel_check_index(ix, t->ndim ? t->shape[d] : 1, "index_select") <
          0)
    return NULL;
  int64_t shape[LOOM_MAX_DIMS];
  memcpy(shape, t->shape, sizeof shape);
  if (t->ndim)
    shape[d] = ix->numel;
  loom_tensor *out = loom__new(t->dtype, t->ndim, shape, "index_select");
  if (!out)
    return NULL;
  loom__kernel_index_select(out, t, d, ix);
  loom__node *n = loom__record(&loom__op_index_select, out, 1, &t);
  if (n) {
    n->i[0] = d;
    loom__save(n, ix);
  }
  return out;
}

static void index_add_backward(loom__node *n, loom_tensor *const *g) {
  loom__accumulate(n, 0, g[0]);
  if (loom__needs_grad(n, 1)) {
    const loom_tensor *index = loom__saved(n, 0);
    if (index)
      loom__accumulate(
          n, 1,
          loom_mul_scalar(loom_index_select(g[0], (int)n->i[0], index),
                          n->d[0]));
  }
}

loom_tensor *loom_index_add(const loom_tensor *t, int dim,
                            const loom_tensor *index, const loom_tensor *src,
                            double alpha) {
  if (!t || !index || !src)
    return loom_null_argument("index_add");
  int d = loom__dim(dim, t->ndim, "index_add");
  const loom_tensor *ix = d < 0 ? NULL : as_index_vector(index, "index_add");
  if (!ix || scalar_index(t, ix, "index_add") < 0)
    return NULL;
  bool ok = src->ndim == t->ndim;
  for (int k = 0; ok && k < t->ndim; k++)
    ok = k == d ? src->shape[k] == ix->numel : src->shape[k] == t->shape[k];
  if (!ok)
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "index_add: src %s does not fit %s with "
                     "%lld indices along dim %d",
                     loom_shape_text(src), loom_shape_text(t),
                     (long long)ix->numel, d);
  if (loom__kernel_check_index(ix, t->ndim ? t->shape[d] : 1, "index_add") < 0)
    return NULL;
  /* The kernel's scaled sum has no bool loop; refuse here rather than
   * return a tensor with the error set. */
  if (!loom__add_scaled_kernel.loop[t->dtype])
    return LOOM_FAIL(LOOM_ERR_DTYPE, "index_add: not defined for %s",
                     loom_dtype_name(t->dtype));
  if (!loom__stays_integral(t, src, alpha, "index_add"))
    return NULL;
  src = loom_to_dtype(src, t->dtype);
  loom_tensor *out =
      src ? loom__new(t->dtype, t->ndim, t->shape, "index_add") : NULL;
  if (!out)
    return NULL;
  loom__kernel_copy(out, t);
  loom__kernel_index_add(out, d, ix, src, alpha);
  loom__node *n = loom__record(&loom__op_index_add, out, 2,
                               (const loom_tensor *[]){t, src});
  if (n) {
    n->i[0] = d;
    n->d[0] = alpha;
    loom__save(n, ix);
  }
  return out;
}

/* ---- embedding ---- */

static void embedding_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *w = loom__input(n, 0), *ix = loom__saved(n, 0);
  if (!ix)
    return;
  loom_tensor *gw = loom_zeros(g[0]->dtype, 2, w->shape);
  loom_tensor *rows = loom_contiguous(
      loom_reshape(g[0], 2, (int64_t[]){ix->numel, w->shape[1]}));
  if (!gw || !rows)
    return;
  loom__kernel_index_add(gw, 0, ix, rows, 1);
  if (n->i[0] >= 0) { /* the padding row learns nothing */
    loom_tensor pad = loom__geometry(gw);
    pad.shape[0] = 1;
    pad.numel = w->shape[1];
    pad.data += n->i[0] * w->shape[1] * (int64_t)loom_dtype_size(gw->dtype);
    loom__kernel_fill(&pad, 0);
  }
  loom__accumulate(n, 0, gw);
}

/* The same as recorded ops (create_graph): rows added into zeros, the
 * padding row masked. */
static void embedding_graph_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *w = loom__input(n, 0), *ix = loom__saved(n, 0);
  if (!ix)
    return;
  loom_tensor *rows =
      loom_reshape(g[0], 2, (int64_t[]){ix->numel, w->shape[1]});
  loom_tensor *gw =
      loom_index_add(loom_zeros(g[0]->dtype, 2, w->shape), 0,
                     loom_reshape(ix, 1, (int64_t[]){-1}), rows, 1);
  if (n->i[0] >= 0 && gw) {
    loom_tensor *pad = loom_zeros(LOOM_BOOL, 2, (int64_t[]){w->shape[0], 1});
    if (!pad)
      return;
    ((uint8_t *)pad->data)[n->i[0]] = 1;
    gw = loom_masked_fill(gw, pad, 0);
  }
  loom__accumulate(n, 0, gw);
}

loom_tensor *loom_embedding(const loom_tensor *weight,
                            const loom_tensor *indices, int64_t padding_idx) {
  if (!weight || !indices)
    return loom_null_argument("embedding");
  if (!(indices = index_arg(indices, true, "embedding")))
    return NULL;
  if (weight->ndim != 2)
    return LOOM_FAIL(LOOM_ERR_SHAPE, "embedding: weight must be 2-D, got %s",
                     loom_shape_text(weight));
  if (indices->ndim >= LOOM_MAX_DIMS)
    return LOOM_FAIL(LOOM_ERR_SHAPE, "embedding: indices %s have too many dims",
                     loom_shape_text(indices));
  if (padding_idx >= weight->shape[0])
    return LOOM_FAIL(LOOM_ERR_INDEX,
                     "embedding: padding_idx %lld for %lld "
                     "rows",
                     (long long)padding_idx, (long long)weight->shape[0]);
  const loom_tensor *ix =
      loom_contiguous(loom_reshape(indices, 1, (int64_t[]){indices->numel}));
  if (!ix || loom__kernel_check_index(ix, weight->shape[0], "embedding") < 0)
    return NULL;
  int64_t shape[LOOM_MAX_DIMS];
  memcpy(shape, indices->shape, sizeof(int64_t) * (size_t)indices->ndim);
  shape[indices->ndim] = weight->shape[1];
  loom_tensor *out =
      loom__new(weight->dtype, indices->ndim + 1, shape, "embedding");
  if (!out)
    return NULL;
  loom_tensor flat = loom__geometry(out);
  flat.ndim = 2;
  flat.shape[0] = ix->numel;
  flat.shape[1] = weight->shape[1];
  flat.strides[0] = weight->shape[1];
  flat.strides[1] = 1;
  loom__kernel_index_select(&flat, weight, 0, ix);
  loom__node *n = loom__record(&loom__op_embedding, out, 1, &weight);
  if (n) {
    n->i[0] = padding_idx;
    loom__save(n, ix);
  }
  return out;
}

loom_tensor *loom_one_hot(const loom_tensor *indices, int64_t num_classes) {
  if (!indices)
    return loom_null_argument("one_hot");
  if (!index_arg(indices, false, "one_hot"))
    return NULL;
  if (num_classes < -1) /* it was taken as -1, inferring the count */
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "one_hot: num_classes %lld (0 and up, or -1 to infer it)",
                     (long long)num_classes);
  if (indices->ndim >= LOOM_MAX_DIMS)
    return LOOM_FAIL(LOOM_ERR_SHAPE, "one_hot: too many dims");
  const loom_tensor *ix =
      loom_contiguous(loom_reshape(indices, 1, (int64_t[]){indices->numel}));
  if (!ix)
    return NULL;
  const int64_t *v = (const int64_t *)ix->data;
  if (num_classes < 0) {
    num_classes = 0;
    for (int64_t i = 0; i < ix->numel; i++)
      if (v[i] >= num_classes) /* INT64_MAX stays, and fails the check */
        num_classes = v[i] < INT64_MAX ? v[i] + 1 : v[i];
  }
  if (loom__kernel_check_index(ix, num_classes, "one_hot") < 0)
    return NULL;
  int64_t shape[LOOM_MAX_DIMS];
  memcpy(shape, indices->shape, sizeof(int64_t) * (size_t)indices->ndim);
  shape[indices->ndim] = num_classes;
  loom_tensor *out = loom_zeros(LOOM_I64, indices->ndim + 1, shape);
  if (!out)
    return NULL;
  for (int64_t i = 0; i < ix->numel; i++)
    ((int64_t *)out->data)[i * num_classes + v[i]] = 1;
  return out;
}

/* ---- masks ---- */

static bool is_mask(const loom_tensor *mask, const char *op) {
  if (mask->dtype != LOOM_BOOL && mask->dtype != LOOM_U8) {
    loom_set_error(LOOM_ERR_DTYPE, "%s: mask must be bool, got %s", op,
                   loom_dtype_name(mask->dtype));
    return false;
  }
  return true;
}

static void masked_fill_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *mask = loom__saved(n, 0);
  if (mask)
    loom__accumulate(n, 0, loom_masked_fill(g[0], mask, 0));
}

loom_tensor *loom_masked_fill(const loom_tensor *t, const loom_tensor *mask,
                              double value) {
  if (!t || !mask || !is_mask(mask, "masked_fill"))
    return loom_null_argument("masked_fill");
  int64_t shape[LOOM_MAX_DIMS];
  int nd = loom__broadcast_shape(t, mask, shape, "masked_fill");
  if (nd < 0)
    return NULL;
  if (nd != t->ndim || loom__numel_of(nd, shape) != t->numel)
    return LOOM_FAIL(LOOM_ERR_SHAPE, "masked_fill: mask %s is larger than %s",
                     loom_shape_text(mask), loom_shape_text(t));
  loom_tensor *out = loom__new(t->dtype, t->ndim, t->shape, "masked_fill");
  if (!out)
    return NULL;
  loom__kernel_masked_fill(out, t, mask, value);
  loom__node *n = loom__record(&loom__op_masked_fill, out, 1, &t);
  loom__save(n, mask);
  return out;
}

static void where_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *cond = loom__saved(n, 0);
  if (!cond)
    return;
  if (loom__needs_grad(n, 0))
    loom__accumulate(n, 0, loom_masked_fill(g[0], loom_logical_not(cond), 0));
  if (loom__needs_grad(n, 1))
    loom__accumulate(n, 1, loom_masked_fill(g[0], cond, 0));
}

loom_tensor *loom_where(const loom_tensor *cond, const loom_tensor *a,
                        const loom_tensor *b) {
  if (!cond || !a || !b || !is_mask(cond, "where"))
    return loom_null_argument("where");
  int64_t s1[LOOM_MAX_DIMS], shape[LOOM_MAX_DIMS];
  int n1 = loom__broadcast_shape(a, b, s1, "where");
  if (n1 < 0)
    return NULL;
  /* a's geometry broadcast against b, for the second broadcast */
  loom_tensor ab = loom__geometry(a);
  ab.ndim = n1;
  memcpy(ab.shape, s1, sizeof s1);
  int nd = loom__broadcast_shape(cond, &ab, shape, "where");
  if (nd < 0)
    return NULL;
  loom_dtype t = loom__promote_tensors(a, b);
  a = loom__to_promoted(a, t);
  b = loom__to_promoted(b, t);
  loom_tensor *out = a && b ? loom__new(t, nd, shape, "where") : NULL;
  if (!out)
    return NULL;
  loom__kernel_where(out, cond, a, b);
  loom__node *n =
      loom__record(&loom__op_where, out, 2, (const loom_tensor *[]){a, b});
  loom__save(n, cond);
  return out;
}

/* Flattened positions (int64, 1-D) of a broadcast t where the mask is
 * true, then index_select: autograd sums the gradient back over the
 * broadcast and the repeats. */
loom_tensor *loom_masked_select(const loom_tensor *t, const loom_tensor *mask) {
  if (!t || !mask || !is_mask(mask, "masked_select"))
    return loom_null_argument("masked_select");
  int64_t shape[LOOM_MAX_DIMS];
  int nd = loom__broadcast_shape(t, mask, shape, "masked_select");
  if (nd < 0)
    return NULL;
  int64_t numel = loom__numel_of(nd, shape);
  const loom_tensor *m = loom_contiguous(loom_expand(mask, nd, shape));
  loom_tensor *flat = loom_reshape(loom_expand(t, nd, shape), 1, &numel);
  if (!m || !flat)
    return NULL;
  int64_t count = 0;
  for (int64_t i = 0; i < numel; i++)
    count += m->data[i] != 0;
  loom_tensor *positions = loom_empty(LOOM_I64, 1, &count);
  if (!positions)
    return NULL;
  int64_t *p = (int64_t *)positions->data;
  for (int64_t i = 0; i < numel; i++)
    if (m->data[i])
      *p++ = i;
  return loom_index_select(flat, 0, positions);
}

/* ---- triangles: masked_fill with a (rows, cols) mask of what is zeroed */

static loom_tensor *triangle(const loom_tensor *t, int64_t diagonal, bool lower,
                             const char *op) {
  if (!t)
    return loom_null_argument(op);
  if (t->ndim < 2)
    return LOOM_FAIL(LOOM_ERR_SHAPE, "%s: needs at least 2 dims, got %s", op,
                     loom_shape_text(t));
  if (t->numel == 0) /* the mask could be larger than t */
    return loom_clone(t);
  int64_t rows = t->shape[t->ndim - 2], cols = t->shape[t->ndim - 1];
  loom_tensor *zeroed = loom_empty(LOOM_BOOL, 2, (int64_t[]){rows, cols});
  if (!zeroed)
    return NULL;
  uint8_t *z = (uint8_t *)zeroed->data;
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < cols; j++) /* |j - i| < 2^59: no overflow */
      *z++ = lower ? j - i > diagonal : j - i < diagonal;
  return loom_masked_fill(t, zeroed, 0);
}

loom_tensor *loom_tril(const loom_tensor *t, int64_t diagonal) {
  return triangle(t, diagonal, true, "tril");
}

loom_tensor *loom_triu(const loom_tensor *t, int64_t diagonal) {
  return triangle(t, diagonal, false, "triu");
}
