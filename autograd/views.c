/* Views: new geometry on the same storage, no copy. Backward maps the
 * gradient back to the input's geometry. */
#include "node.h"

LOOM__OP_TWICE(reshape, reshape_backward);
LOOM__OP_TWICE(view, reshape_backward);
LOOM__OP_TWICE(flatten, reshape_backward);
LOOM__OP_TWICE(squeeze, reshape_backward);
LOOM__OP_TWICE(unsqueeze, reshape_backward);
LOOM__OP_TWICE(transpose, transpose_backward);
LOOM__OP_TWICE(permute, permute_backward);
LOOM__OP_TWICE(narrow, slice_backward);
LOOM__OP_TWICE(slice, slice_backward);
LOOM__OP_TWICE(select, slice_backward);
LOOM__OP_TWICE(expand, expand_backward);

static loom_tensor *make_view(const loom__op_def *def, const loom_tensor *t,
                              int nd, const int64_t *shape,
                              const int64_t *strides, int64_t offset,
                              loom__node **node) {
  loom_tensor *v = loom__to_scope(loom__view_of(t, nd, shape, strides, offset));
  loom__node *n = loom__record(def, v, 1, &t);
  loom__keep_link_only(n, 0); /* every view's backward reads shapes only */
  if (node)
    *node = n;
  return v;
}

/* ---- reshape family ---- */

/* Strides that give `shape` over t's elements without copying, if any
 * (the chunk rule: each run of t's dims that is contiguous in memory can be
 * re-split freely). */
static bool view_strides(const loom_tensor *t, int nd, const int64_t *shape,
                         int64_t *strides) {
  if (t->numel == 0 || t->ndim == 0) {
    loom__contiguous_strides(nd, shape, strides);
    return true;
  }
  int vd = nd - 1;
  int64_t base = t->strides[t->ndim - 1], tn = 1, vn = 1;
  for (int d = t->ndim - 1; d >= 0; d--) {
    tn *= t->shape[d];
    if (d == 0 || (t->shape[d - 1] != 1 && t->strides[d - 1] != tn * base)) {
      while (vd >= 0 && (vn < tn || shape[vd] == 1)) {
        strides[vd] = vn * base;
        vn *= shape[vd];
        vd--;
      }
      if (vn != tn)
        return false;
      if (d > 0) {
        base = t->strides[d - 1];
        tn = vn = 1;
      }
    }
  }
  return vd == -1;
}

/* Resolves a -1 entry; -1 + error if the sizes do not fit. */
static int infer_shape(const loom_tensor *t, int nd, const int64_t *in,
                       int64_t *out, const char *op) {
  if (nd < 0 || nd > LOOM_MAX_DIMS) {
    loom_set_error(LOOM_ERR_SHAPE, "%s: %d dims", op, nd);
    return -1;
  }
  if (nd > 0 && !in) {
    loom_null_argument(op);
    return -1;
  }
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < nd; i++) {
    out[i] = in[i];
    if (in[i] == -1) {
      if (infer >= 0) {
        loom_set_error(LOOM_ERR_SHAPE, "%s: more than one -1", op);
        return -1;
      }
      infer = i;
    } else if (in[i] < 0) {
      loom_set_error(LOOM_ERR_SHAPE, "%s: negative size %lld", op,
                     (long long)in[i]);
      return -1;
    }
  }
  if (!loom__sizes_fit(nd, in))
    goto bad;
  for (int i = 0; i < nd; i++)
    if (i != infer)
      known *= in[i];
  if (infer >= 0) {
    if (known == 0 || t->numel % known != 0)
      goto bad;
    out[infer] = t->numel / known;
  } else if (known != t->numel) {
    goto bad;
  }
  return 0;
bad : {
  char want[128];
  loom_set_error(LOOM_ERR_SHAPE, "%s: cannot view %s (%lld elements) as %s", op,
                 loom_shape_text(t), (long long)t->numel,
                 loom_format_shape(nd, in, want, sizeof want));
  return -1;
}
}

static loom_tensor *reshape_as(const loom__op_def *def, const loom_tensor *t,
                               int nd, const int64_t *shape, bool may_copy) {
  int64_t sh[LOOM_MAX_DIMS], st[LOOM_MAX_DIMS];
  if (!t)
    return loom_null_argument(def->name);
  if (infer_shape(t, nd, shape, sh, def->name) < 0)
    return NULL;
  if (view_strides(t, nd, sh, st))
    return make_view(def, t, nd, sh, st, t->offset, NULL);
  if (!may_copy) {
    char want[128];
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "view: %s with strides that cannot be "
                     "viewed as %s; use loom_reshape",
                     loom_shape_text(t),
                     loom_format_shape(nd, sh, want, sizeof want));
  }
  loom_tensor *c = loom_contiguous(t);
  return c ? reshape_as(def, c, nd, sh, false) : NULL;
}

static void reshape_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *in = loom__input(n, 0);
  loom__accumulate(n, 0, loom_reshape(g[0], in->ndim, in->shape));
}

loom_tensor *loom_reshape(const loom_tensor *t, int nd, const int64_t *shape) {
  return reshape_as(&loom__op_reshape, t, nd, shape, true);
}

loom_tensor *loom_view(const loom_tensor *t, int nd, const int64_t *shape) {
  return reshape_as(&loom__op_view, t, nd, shape, false);
}

loom_tensor *loom_flatten(const loom_tensor *t, int start, int end) {
  if (!t)
    return loom_null_argument("flatten");
  if (t->ndim == 0)
    return reshape_as(&loom__op_flatten, t, 1, (int64_t[]){1}, true);
  int s = loom__dim(start, t->ndim, "flatten"),
      e = loom__dim(end, t->ndim, "flatten");
  if (s < 0 || e < 0)
    return NULL;
  if (s > e)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "flatten: start %d after end %d", s, e);
  int64_t sh[LOOM_MAX_DIMS];
  int nd = 0;
  for (int d = 0; d < t->ndim; d++) {
    if (d <= s || d > e)
      sh[nd++] = t->shape[d];
    else
      sh[nd - 1] *= t->shape[d];
  }
  return reshape_as(&loom__op_flatten, t, nd, sh, true);
}

loom_tensor *loom_squeeze(const loom_tensor *t, int dim) {
  if (!t)
    return loom_null_argument("squeeze");
  int d = loom__dim(dim, t->ndim, "squeeze");
  if (d < 0)
    return NULL;
  if (t->ndim == 0 || t->shape[d] != 1)
    return loom_reshape(t, t->ndim, t->shape);
  int64_t sh[LOOM_MAX_DIMS];
  int nd = 0;
  for (int i = 0; i < t->ndim; i++)
    if (i != d)
      sh[nd++] = t->shape[i];
  return reshape_as(&loom__op_squeeze, t, nd, sh, false);
}

loom_tensor *loom_squeeze_all(const loom_tensor *t) {
  if (!t)
    return loom_null_argument("squeeze");
  int64_t sh[LOOM_MAX_DIMS];
  int nd = 0;
  for (int i = 0; i < t->ndim; i++)
    if (t->shape[i] != 1)
      sh[nd++] = t->shape[i];
  return reshape_as(&loom__op_squeeze, t, nd, sh, false);
}

loom_tensor *loom_unsqueeze(const loom_tensor *t, int dim) {
  if (!t)
    return loom_null_argument("unsqueeze");
  if (t->ndim >= LOOM_MAX_DIMS)
    return LOOM_FAIL(LOOM_ERR_SHAPE, "unsqueeze: already %d dims", t->ndim);
  int d = loom__dim(dim, t->ndim + 1, "unsqueeze");
  if (d < 0)
    return NULL;
  int64_t sh[LOOM_MAX_DIMS];
  for (int i = 0, j = 0; i <= t->ndim; i++)
    sh[i] = i == d ? 1 : t->shape[j++];
  return reshape_as(&loom__op_unsqueeze, t, t->ndim + 1, sh, false);
}

/* ---- transpose and permute ---- */

static void transpose_backward(loom__node *n, loom_tensor *const *g) {
  loom__accumulate(n, 0, loom_transpose(g[0], (int)n->i[0], (int)n->i[1]));
}

loom_tensor *loom_transpose(const loom_tensor *t, int dim0, int dim1) {
  if (!t)
    return loom_null_argument("transpose");
  if (t->ndim < 2 && (dim0 == 0 || dim0 == -1) && (dim1 == 0 || dim1 == -1))
    return loom_reshape(t, t->ndim, t->shape); /* PyTorch allows 0/1-D */
  int a = loom__dim(dim0, t->ndim, "transpose"),
      b = loom__dim(dim1, t->ndim, "transpose");
  if (a < 0 || b < 0)
    return NULL;
  int64_t sh[LOOM_MAX_DIMS], st[LOOM_MAX_DIMS];
  memcpy(sh, t->shape, sizeof sh);
  memcpy(st, t->strides, sizeof st);
  sh[a] = t->shape[b];
  sh[b] = t->shape[a];
  st[a] = t->strides[b];
  st[b] = t->strides[a];
  loom__node *n;
  loom_tensor *v =
      make_view(&loom__op_transpose, t, t->ndim, sh, st, t->offset, &n);
  if (n) {
    n->i[0] = a;
    n->i[1] = b;
  }
  return v;
}

loom_tensor *loom_t(const loom_tensor *t) {
  if (!t)
    return loom_null_argument("transpose");
  if (t->ndim < 2)
    return loom_transpose(t, 0, 0);
  return loom_transpose(t, -2, -1);
}

static void permute_backward(loom__node *n, loom_tensor *const *g) {
  int inv[LOOM_MAX_DIMS];
  for (int i = 0; i < g[0]->ndim; i++)
    inv[n->i[i]] = i;
  loom__accumulate(n, 0, loom_permute(g[0], inv));
}

loom_tensor *loom_permute(const loom_tensor *t, const int *dims) {
  if (!t || (!dims && t->ndim > 0))
    return loom_null_argument("permute");
  int64_t sh[LOOM_MAX_DIMS], st[LOOM_MAX_DIMS];
  int d[LOOM_MAX_DIMS];
  bool seen[LOOM_MAX_DIMS] = {false};
  for (int i = 0; i < t->ndim; i++) {
    d[i] = loom__dim(dims[i], t->ndim, "permute");
    if (d[i] < 0)
      return NULL;
    if (seen[d[i]])
      return LOOM_FAIL(LOOM_ERR_ARGUMENT, "permute: dim %d repeated", d[i]);
    seen[d[i]] = true;
    sh[i] = t->shape[d[i]];
    st[i] = t->strides[d[i]];
  }
  loom__node *n;
  loom_tensor *v =
      make_view(&loom__op_permute, t, t->ndim, sh, st, t->offset, &n);
  if (n)
    for (int i = 0; i < t->ndim; i++)
      n->i[i] = d[i];
  return v;
}

/* ---- slicing ---- */

/* node->i: [0] dim, [1] start, [2] step, [3] 1 if the dim was removed. */
static void slice_backward(loom__node *n, loom_tensor *const *g) {
  loom__accumulate_slice(n, 0, g[0], (int)n->i[0], n->i[1], n->i[2], n->i[3]);
}

/* The gradient of a slice written as an op (passes with create_graph or
 * captured gradients use it; plain ones add into the slot in place). Not
 * in the registry: it is differentiated by the gradgradchecks of the
 * slicing ops, whose second backward runs it. Its own gradient is the
 * slice again. */
static void slice_scatter_backward(loom__node *n, loom_tensor *const *g) {
  int dim = (int)n->i[0];
  int64_t start = n->i[1], step = n->i[2], len = n->i[4];
  loom__accumulate(n, 0,
                   n->i[3] ? loom_select(g[0], dim, start)
                           : loom_slice(g[0], dim, start,
                                        start + (len - 1) * step + 1, step));
}

static const loom__op_def slice_scatter_op = {
    "slice_scatter", slice_scatter_backward, slice_scatter_backward};

loom_tensor *loom__slice_scatter(const loom_tensor *g, const loom_tensor *like,
                                 int dim, int64_t start, int64_t step,
                                 bool drop) {
  loom_tensor *whole =
      loom__new(g->dtype, like->ndim, like->shape, "slice_scatter");
  const loom_tensor *gp = drop ? loom_unsqueeze(g, dim) : g;
  if (!whole || !gp)
    return NULL;
  loom__kernel_fill(whole, 0);
  int64_t len = gp->shape[dim];
  loom_tensor part = *whole;
  part.data += start * whole->strides[dim] * (int64_t)loom_dtype_size(g->dtype);
  part.strides[dim] *= step;
  part.shape[dim] = len;
  part.numel = loom__numel_of(part.ndim, part.shape);
  loom__kernel_copy(&part, gp);
  loom__node *n = loom__record(&slice_scatter_op, whole, 1, &g);
  if (n) {
    n->i[0] = dim;
    n->i[1] = start;
    n->i[2] = step;
    n->i[3] = drop;
    n->i[4] = len;
  }
  return whole;
}

static loom_tensor *slice_view(const loom__op_def *def, const loom_tensor *t,
                               int dim, int64_t start, int64_t len,
                               int64_t step, bool drop) {
  /* With at most one element the step is never taken: a huge one must not
   * reach the stride (with two or more, stride * step is inside t). */
  if (len <= 1)
    step = 1;
  int64_t sh[LOOM_MAX_DIMS], st[LOOM_MAX_DIMS];
  int nd = 0;
  for (int i = 0; i < t->ndim; i++) {
    if (i == dim && drop)
      continue;
    sh[nd] = i == dim ? len : t->shape[i];
    st[nd++] = i == dim ? t->strides[i] * step : t->strides[i];
  }
  loom__node *n;
  loom_tensor *v =
      make_view(def, t, nd, sh, st, t->offset + start * t->strides[dim], &n);
  if (n) {
    n->i[0] = dim;
    n->i[1] = start;
    n->i[2] = step;
    n->i[3] = drop;
  }
  return v;
}

loom_tensor *loom_narrow(const loom_tensor *t, int dim, int64_t start,
                         int64_t length) {
  if (!t)
    return loom_null_argument("narrow");
  int d = loom__dim(dim, t->ndim, "narrow");
  if (d < 0)
    return NULL;
  if (t->ndim == 0)
    return LOOM_FAIL(LOOM_ERR_SHAPE, "narrow: a 0-dim tensor");
  int64_t given = start; /* named in the message as given */
  if (start < 0)
    start += t->shape[d];
  if (start < 0 || length < 0 || start > t->shape[d] ||
      length > t->shape[d] - start)
    return LOOM_FAIL(
        LOOM_ERR_INDEX, "narrow: %lld elements from %lld outside dim %d of %s",
        (long long)length, (long long)given, d, loom_shape_text(t));
  return slice_view(&loom__op_narrow, t, d, start, length, 1, false);
}

loom_tensor *loom_slice(const loom_tensor *t, int dim, int64_t start,
                        int64_t end, int64_t step) {
  if (!t)
    return loom_null_argument("slice");
  int d = loom__dim(dim, t->ndim, "slice");
  if (d < 0)
    return NULL;
  if (t->ndim == 0)
    return LOOM_FAIL(LOOM_ERR_SHAPE, "slice: a 0-dim tensor");
  if (step <= 0)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "slice: step %lld must be positive",
                     (long long)step);
  int64_t n = t->shape[d];
  if (start < 0)
    start += n;
  if (end < 0)
    end += n;
  start = start < 0 ? 0 : start > n ? n : start;
  end = end < start ? start : end > n ? n : end;
  int64_t len = end == start ? 0 : (end - start - 1) / step + 1;
  return slice_view(&loom__op_slice, t, d, start, len, step, false);
}

loom_tensor *loom_select(const loom_tensor *t, int dim, int64_t index) {
  if (!t)
    return loom_null_argument("select");
  int d = loom__dim(dim, t->ndim, "select");
  if (d < 0)
    return NULL;
  if (t->ndim == 0)
    return LOOM_FAIL(LOOM_ERR_SHAPE, "select: a 0-dim tensor");
  int64_t i = index < 0 ? index + t->shape[d] : index; /* the given one is
                                                         named below */
  if (i < 0 || i >= t->shape[d])
    return LOOM_FAIL(LOOM_ERR_INDEX,
                     "select: index %lld out of range for dim "
                     "%d of %s",
                     (long long)index, d, loom_shape_text(t));
  return slice_view(&loom__op_select, t, d, i, 1, 1, true);
}

/* ---- expand ---- */

static void expand_backward(loom__node *n, loom_tensor *const *g) {
  loom__accumulate(n, 0, g[0]); /* summed back to the input's shape there */
}

loom_tensor *loom_expand(const loom_tensor *t, int nd, const int64_t *shape) {
  if (!t || (!shape && nd > 0))
    return loom_null_argument("expand");
  if (nd < t->ndim || nd > LOOM_MAX_DIMS)
    return LOOM_FAIL(LOOM_ERR_SHAPE, "expand: %s to %d dims",
                     loom_shape_text(t), nd);
  int64_t sh[LOOM_MAX_DIMS], st[LOOM_MAX_DIMS];
  for (int i = 0; i < nd; i++) {
    int j = i - (nd - t->ndim);
    int64_t have = j >= 0 ? t->shape[j] : 1;
    int64_t want = shape[i] == -1 && j >= 0 ? have : shape[i];
    if (want < 0 || (have != 1 && have != want)) {
      char s[128];
      return LOOM_FAIL(LOOM_ERR_SHAPE, "expand: cannot expand %s to %s",
                       loom_shape_text(t),
                       loom_format_shape(nd, shape, s, sizeof s));
    }
    sh[i] = want;
    st[i] = j < 0 || (have == 1 && want != 1) ? 0 : t->strides[j];
  }
  if (!loom__sizes_fit(nd, sh)) {
    char s[128];
    return LOOM_FAIL(LOOM_ERR_SHAPE, "expand: %s too large",
                     loom_format_shape(nd, sh, s, sizeof s));
  }
  return make_view(&loom__op_expand, t, nd, sh, st, t->offset, NULL);
}

loom_tensor *loom_expand_as(const loom_tensor *t, const loom_tensor *like) {
  if (!t || !like)
    return loom_null_argument("expand");
  return loom_expand(t, like->ndim, like->shape);
}
