/* Matrix products. One core op (batched, broadcasting, both operands at
 * least 2-D) does the work; matmul's 1-D cases, linear and bmm are views
 * around it. addmm/baddbmm fold the added term into BLAS's beta. */
#include "node.h"

#include <stdlib.h>

LOOM__OP_TWICE(matmul, matmul_backward);
LOOM__OP_TWICE(addmm, addmm_backward);
LOOM__OP_TWICE(baddbmm, addmm_backward);
LOOM__OP_GRAPH(linear, linear_backward, linear_graph_backward);

/* Can a's leading dims (all but the last) be read as one dim? Then a batch
 * of products with one right operand is a single GEMM. */
static bool foldable(const loom_tensor *a) {
  int nd = a->ndim;
  if (a->strides[nd - 1] != 1 && a->shape[nd - 1] != 1)
    return false;
  /* Each leading dim must step over whole blocks of rows at the row
   * stride (a size-1 dim's stride says nothing, so compare with the
   * product, not with the neighbour's stride). */
  int64_t want = a->strides[nd - 2] * a->shape[nd - 2];
  for (int d = nd - 3; d >= 0; d--) {
    if (a->shape[d] != 1 && a->strides[d] != want)
      return false;
    want *= a->shape[d];
  }
  return a->strides[nd - 2] >= a->shape[nd - 1];
}

/* out (contiguous, batch x n x m) = alpha * a @ b + beta * out, batch dims
 * broadcast; a and b must already have BLAS-readable 2-D slices. */
static void batched_gemm(loom_tensor *out, const loom_tensor *a,
                         const loom_tensor *b, double alpha, double beta) {
  int nd = out->ndim, bd = nd - 2;
  int64_t n = out->shape[nd - 2], m = out->shape[nd - 1];
  int64_t k = a->shape[a->ndim - 1];
  if (b->ndim == 2 && foldable(a) && (bd == 0 || a->ndim == nd)) {
    loom_tensor af = loom__geometry(a), of = loom__geometry(out);
    af.ndim = of.ndim = 2;
    af.shape[0] = of.shape[0] = out->numel / (m ? m : 1);
    af.shape[1] = k;
    af.strides[0] = a->strides[a->ndim - 2];
    af.strides[1] = a->strides[a->ndim - 1];
    of.shape[1] = m;
    of.strides[0] = m;
    of.strides[1] = 1;
    if (of.shape[0] > 0)
      loom__kernel_gemm(&of, &af, b, alpha, beta);
    return;
  }
  int64_t sa[LOOM_MAX_DIMS], sb[LOOM_MAX_DIMS];
  loom_tensor ab = loom__geometry(a),
              bb = loom__geometry(b); /* batch geometry broadcast to out's */
  ab.ndim = a->ndim - 2;
  bb.ndim = b->ndim - 2;
  loom__broadcast_strides(&ab, bd, out->shape, sa);
  loom__broadcast_strides(&bb, bd, out->shape, sb);
  int64_t batches = loom__numel_of(bd, out->shape);
  size_t es = loom_dtype_size(out->dtype);
  for (int64_t i = 0; i < batches; i++) {
    int64_t rem = i, oa = 0, ob = 0;
    for (int d = bd - 1; d >= 0; d--) {
      int64_t idx = rem % out->shape[d];
      rem /= out->shape[d];
      oa += idx * sa[d];
      ob += idx * sb[d];
    }
    loom_tensor a2 = loom__geometry(a), b2 = loom__geometry(b),
                o2 = loom__geometry(out);
    a2.ndim = b2.ndim = o2.ndim = 2;
    a2.data = a->data + oa * (int64_t)es;
    b2.data = b->data + ob * (int64_t)es;
    o2.data = out->data + i * n * m * (int64_t)es;
    a2.shape[0] = n;
    a2.shape[1] = k;
    a2.strides[0] = a->strides[a->ndim - 2];
    a2.strides[1] = a->strides[a->ndim - 1];
    b2.shape[0] = k;
    b2.shape[1] = m;
    b2.strides[0] = b->strides[b->ndim - 2];
    b2.strides[1] = b->strides[b->ndim - 1];
    o2.shape[0] = n;
    o2.shape[1] = m;
    o2.strides[0] = m;
    o2.strides[1] = 1;
    loom__kernel_gemm(&o2, &a2, &b2, alpha, beta);
  }
}

void loom_fixed_weights_begin(void) { loom__kernel_reuse_begin(); }
void loom_fixed_weights_end(void) { loom__kernel_reuse_end(); }

/* A view whose last two dims BLAS can read, copying only if it must. */
static const loom_tensor *blas_ready(const loom_tensor *t) {
  loom_tensor m = loom__geometry(t);
  m.ndim = 2;
  m.shape[0] = t->shape[t->ndim - 2];
  m.shape[1] = t->shape[t->ndim - 1];
  m.strides[0] = t->strides[t->ndim - 2];
  m.strides[1] = t->strides[t->ndim - 1];
  return loom__kernel_gemm_ok(&m) ? t : loom_contiguous(t);
}

/* Checks and output shape of a @ b for a, b of >= 2 dims. */
static int product_shape(const loom_tensor *a, const loom_tensor *b,
                         int64_t *shape, const char *op) {
  int64_t k = a->shape[a->ndim - 1];
  if (b->shape[b->ndim - 2] != k) {
    char s1[96], s2[96];
    loom_set_error(LOOM_ERR_SHAPE,
                   "%s: %s @ %s: inner sizes %lld and %lld "
                   "differ",
                   op, loom_shape_str(a, s1, sizeof s1),
                   loom_shape_str(b, s2, sizeof s2), (long long)k,
                   (long long)b->shape[b->ndim - 2]);
    return -1;
  }
  loom_tensor ab = loom__geometry(a), bb = loom__geometry(b);
  ab.ndim = a->ndim - 2;
  bb.ndim = b->ndim - 2;
  int bd = loom__broadcast_shape(&ab, &bb, shape, op);
  if (bd < 0)
    return -1;
  shape[bd] = a->shape[a->ndim - 2];
  shape[bd + 1] = b->shape[b->ndim - 1];
  return bd + 2;
}

static bool float_pair(const loom_tensor **a, const loom_tensor **b,
                       const char *op) {
  if (loom__check_float(*a, op) || loom__check_float(*b, op))
    return false;
  loom_dtype t = loom__promote((*a)->dtype, (*b)->dtype);
  *a = loom_to_dtype(*a, t);
  *b = loom_to_dtype(*b, t);
  return *a && *b;
}

/* a @ b with the core's shape rules; records "matmul". */
static loom_tensor *core(const loom_tensor *a, const loom_tensor *b) {
  int64_t shape[LOOM_MAX_DIMS];
  int nd = product_shape(a, b, shape, "matmul");
  if (nd < 0)
    return NULL;
  const loom_tensor *ar = blas_ready(a), *br = blas_ready(b);
  loom_tensor *out = ar && br ? loom__new(a->dtype, nd, shape, "matmul") : NULL;
  if (!out)
    return NULL;
  batched_gemm(out, ar, br, 1, 0);
  loom__record(&loom__op_matmul, out, 2, (const loom_tensor *[]){a, b});
  return out;
}

static void matmul_backward(loom__node *n, loom_tensor *const *g) {
  /* Each operand's gradient reads the other's values (only). */
  if (loom__needs_grad(n, 0)) {
    const loom_tensor *b = loom__input_value(n, 1);
    if (!b)
      return;
    loom__accumulate(n, 0, loom_matmul(g[0], loom_transpose(b, -1, -2)));
  }
  if (!loom__needs_grad(n, 1))
    return;
  const loom_tensor *a = loom__input_value(n, 0), *b = loom__input(n, 1);
  if (!a)
    return;
  if (b->ndim == 2 && a->ndim > 2) {
    /* Sum over the batch inside one GEMM: a_flat^T @ g_flat. */
    int64_t k = a->shape[a->ndim - 1], m = g[0]->shape[g[0]->ndim - 1];
    loom_tensor *af = loom_reshape(a, 2, (int64_t[]){-1, k});
    loom_tensor *gf = loom_reshape(g[0], 2, (int64_t[]){-1, m});
    loom__accumulate(n, 1, loom_matmul(loom_t(af), gf));
  } else {
    loom__accumulate(n, 1, loom_matmul(loom_transpose(a, -1, -2), g[0]));
  }
}

loom_tensor *loom_matmul(const loom_tensor *a, const loom_tensor *b) {
  if (!a || !b)
    return loom_null_argument("matmul");
  if (a->ndim == 0 || b->ndim == 0)
    return LOOM_FAIL(LOOM_ERR_SHAPE, "matmul: 0-dim operand (%s, %s)",
                     loom_shape_text(a), loom_shape_text(b));
  if (!float_pair(&a, &b, "matmul"))
    return NULL;
  bool va = a->ndim == 1, vb = b->ndim == 1;
  const loom_tensor *a2 = va ? loom_unsqueeze(a, 0) : a;
  const loom_tensor *b2 = vb ? loom_unsqueeze(b, 1) : b;
  loom_tensor *out = a2 && b2 ? core(a2, b2) : NULL;
  if (va && out)
    out = loom_squeeze(out, -2);
  if (vb && out)
    out = loom_squeeze(out, -1);
  return out;
}

loom_tensor *loom_bmm(const loom_tensor *a, const loom_tensor *b) {
  if (!a || !b)
    return loom_null_argument("bmm");
  if (a->ndim != 3 || b->ndim != 3 || a->shape[0] != b->shape[0])
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "bmm: expected B x n x k and B x k x m, "
                     "got %s and %s",
                     loom_shape_text(a), loom_shape_text(b));
  return loom_matmul(a, b);
}

/* ---- addmm / baddbmm: beta * c + alpha * a @ b ---- */

static void addmm_backward(loom__node *n, loom_tensor *const *g) {
  double beta = n->d[0], alpha = n->d[1];
  if (loom__needs_grad(n, 0))
    loom__accumulate(n, 0, beta == 1 ? g[0] : loom_mul_scalar(g[0], beta));
  loom_tensor *ga = alpha == 1 ? g[0] : loom_mul_scalar(g[0], alpha);
  /* Each operand's gradient reads the other's values (only). */
  const loom_tensor *a =
      loom__needs_grad(n, 2) ? loom__input_value(n, 1) : NULL;
  const loom_tensor *b =
      loom__needs_grad(n, 1) ? loom__input_value(n, 2) : NULL;
  if (b)
    loom__accumulate(n, 1, loom_matmul(ga, loom_transpose(b, -1, -2)));
  if (a)
    loom__accumulate(n, 2, loom_matmul(loom_transpose(a, -1, -2), ga));
}

static loom_tensor *add_product(const loom__op_def *def, int rank,
                                const loom_tensor *c, const loom_tensor *a,
                                const loom_tensor *b, double beta,
                                double alpha) {
  if (!c || !a || !b)
    return loom_null_argument(def->name);
  if (a->ndim != rank || b->ndim != rank ||
      (rank == 3 && a->shape[0] != b->shape[0]))
    return LOOM_FAIL(LOOM_ERR_SHAPE, "%s: operands %s and %s must be %d-D%s",
                     def->name, loom_shape_text(a), loom_shape_text(b), rank,
                     rank == 3 ? " with equal batch" : "");
  if (!float_pair(&a, &b, def->name) || loom__check_float(c, def->name))
    return NULL;
  c = loom_to_dtype(c, a->dtype);
  int64_t shape[LOOM_MAX_DIMS];
  if (!c || product_shape(a, b, shape, def->name) < 0)
    return NULL;
  bool fits = c->ndim <= rank; /* c must broadcast to the product */
  for (int d = 0; fits && d < c->ndim; d++) {
    int64_t have = c->shape[c->ndim - 1 - d], want = shape[rank - 1 - d];
    fits = have == 1 || have == want;
  }
  if (!fits)
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "%s: %s does not broadcast to the "
                     "product's shape",
                     def->name, loom_shape_text(c));
  const loom_tensor *ar = blas_ready(a), *br = blas_ready(b);
  loom_tensor *out =
      ar && br ? loom__new(a->dtype, rank, shape, def->name) : NULL;
  if (!out)
    return NULL;
  if (beta == 0) {
    batched_gemm(out, ar, br, alpha, 0);
  } else {
    loom__kernel_copy(out, c);
    batched_gemm(out, ar, br, alpha, beta);
  }
  loom__node *n = loom__record(def, out, 3, (const loom_tensor *[]){c, a, b});
  if (n) {
    n->d[0] = beta;
    n->d[1] = alpha;
  }
  return out;
}

loom_tensor *loom_addmm(const loom_tensor *c, const loom_tensor *a,
                        const loom_tensor *b, double beta, double alpha) {
  return add_product(&loom__op_addmm, 2, c, a, b, beta, alpha);
}

loom_tensor *loom_baddbmm(const loom_tensor *c, const loom_tensor *a,
                          const loom_tensor *b, double beta, double alpha) {
  return add_product(&loom__op_baddbmm, 3, c, a, b, beta, alpha);
}

/* ---- linear: one node, x (rows, in) @ W^T + b ----
 * Its own op rather than a transpose and an addmm, so the weight's
 * gradient is computed in the weight's own layout, g^T x (out x in): as
 * the addmm of a transposed view it came out (in x out) and every
 * accumulation into the weight's gradient was a transposing, strided add
 * (37% of a step of an LSTM cell unrolled with linears, bench/rnn.c).
 * When the weight's gradient already exists the product accumulates
 * straight into it (BLAS beta = 1), so a weight shared by many steps costs
 * no extra pass per step either. */

/* ---- the weight gradients of small linears, deferred to one product ----
 * Why: a weight used at every step of a sequence gets, per step, an update
 * of rank = batch (32) that reads and writes its whole gradient (for an
 * LSTM cell's 2048 x 768 weights, 35 passes over 6 MB, at a fraction of
 * BLAS's speed). Within one backward pass, the steps' (gy, x) pairs of a
 * leaf weight are kept instead and summed at the end as one product over
 * all their rows. Memory is bounded: past DEFER_ROWS rows a weight's
 * pairs are summed at once. A leaf bias of those linears gets its gradient
 * the same way, as the sums of the same rows (one pass over them: summed
 * per step, each sum was a small parallel job and an accumulation, 2 % of
 * an unrolled LSTM cell's step). */
#define DEFER_ROWS 4096

typedef struct {
  loom__node *node;      /* a node of the weight: nodes live until the flush */
  loom_tensor **gy, **x; /* retained; cap each */
  int n, cap;
  int64_t rows;
  /* the leaf bias (node's input 2) whose gradient every pair defers, or
   * NULL: all pairs alike (a pair that differs sums the others first) */
  const loom_tensor *bias;
} deferred;

static _Thread_local struct {
  int depth; /* a custom function's backward may run a backward */
  deferred **d;
  int n, cap;
} defer;

void loom__deferred_begin(void) { defer.depth++; }

static void defer_drop(deferred *e) {
  for (int i = 0; i < e->n; i++) {
    loom_release(e->gy[i]);
    loom_release(e->x[i]);
  }
  e->n = 0;
  e->rows = 0;
}

/* Copies parts [lo, hi) of a stacking: part i copies src[i] into dst[i]
 * (rows of G or of an X). */
typedef struct {
  loom_tensor **dst;
  loom_tensor **src;
} stacking;

static void stack_parts(void *ctx, int64_t lo, int64_t hi) {
  const stacking *st = ctx;
  for (int64_t p = lo; p < hi; p++)
    loom__kernel_copy(st->dst[p], st->src[p]);
}

/* Whether f's pairs hold the same gradients as e's: the linears of an
 * LSTM cell's two products all get the gates' gradient, so their weights'
 * sums share one stacked G. */
static bool same_gradients(const deferred *e, const deferred *f) {
  if (f->n != e->n || f->rows != e->rows ||
      loom__input(f->node, 1)->dtype != loom__input(e->node, 1)->dtype)
    return false;
  for (int i = 0; i < e->n; i++)
    if (f->gy[i] != e->gy[i])
      return false;
  return true;
}

/* rows[0..) = the rows of ts[0..n) in turn (a tensor's rows over its
 * leading dims), or false when one is not float32 with rows of adjacent
 * floats at one stride. */
static bool row_pointers(loom_tensor *const *ts, int n, const float **rows) {
  int64_t r = 0;
  for (int i = 0; i < n; i++) {
    const loom_tensor *t = ts[i];
    int d = t->ndim - 1;
    int64_t cols = d >= 0 ? t->shape[d] : 1, m = 1, step = cols;
    for (int k = 0; k < d; k++)
      m *= t->shape[k];
    if (t->dtype != LOOM_F32 || (cols > 1 && t->strides[d] != 1))
      return false;
    if (d == 1)
      step = t->strides[0];
    else if (d > 1 && !loom_is_contiguous(t))
      return false;
    for (int64_t k = 0; k < m; k++)
      rows[r++] = (const float *)t->data + k * step;
  }
  return true;
}

/* grad(W) += G^T X for the weights with[0..ws), whose pairs hold the same
 * gradients G, each product reading the steps' rows where they are
 * (loom__kernel_gemm_rows). Returns how many weights it left to
 * sum_stacked, moved to the front of with: all where loom's kernel does
 * not take the products. */
static int sum_by_rows(deferred **with, int ws) {
  const deferred *e = with[0];
  int64_t rows = e->rows;
  const float **p = malloc((size_t)(ws + 1) * (size_t)rows * sizeof *p);
  if (!p || !row_pointers(e->gy, e->n, p)) {
    free(p);
    return ws;
  }
  int left = 0;
  deferred *todo[2];
  for (int k = 0; k < ws && loom_last_status() == LOOM_OK; k++) {
    loom__node *n = with[k]->node;
    const loom_tensor *w = loom__input(n, 1);
    int64_t out = w->shape[0], in = w->shape[1];
    const float **x = p + (k + 1) * rows;
    bool done = false;
    if (row_pointers(with[k]->x, e->n, x)) {
      loom_tensor *d = loom__grad_in_place(n, 1);
      if (d) {
        done = loom__kernel_gemm_rows(out, in, rows, p, x, true,
                                      (float *)d->data, in);
        loom__grad_in_place_end(n, 1);
      } else {
        loom_scope *s = loom_scope_begin();
        loom_tensor *sum = loom_empty(LOOM_F32, LOOM_SHAPE(out, in));
        done = sum && loom__kernel_gemm_rows(out, in, rows, p, x, false,
                                             (float *)sum->data, in);
        if (done)
          loom__accumulate(n, 1, sum);
        loom_scope_end(s);
      }
    }
    if (!done)
      todo[left++] = with[k];
  }
  free(p);
  for (int k = 0; k < left; k++)
    with[k] = todo[k];
  return left;
}

/* grad(W) += G^T X for the weights with[0..ws), with G the pairs'
 * gradients stacked once and X each weight's inputs stacked. The copies
 * run as one parallel job, whole copies to a thread (a copy inside the job
 * runs serially): as many parallel copies, each small one waited for the
 * other threads (3 % of an unrolled LSTM cell's step, bench/rnn.c). */
static void sum_stacked(deferred *const *with, int ws) {
  const deferred *e = with[0];
  const loom_tensor *w0 = loom__input(e->node, 1);
  int64_t out = w0->shape[0];
  loom_scope *s = loom_scope_begin();
  loom_tensor *G = loom_empty(w0->dtype, LOOM_SHAPE(e->rows, out));
  loom_tensor *X[2] = {NULL, NULL};
  bool ok = G != NULL;
  for (int k = 0; ok && k < ws; k++) {
    const loom_tensor *w = loom__input(with[k]->node, 1);
    ok = (X[k] = loom_empty(w->dtype, LOOM_SHAPE(e->rows, w->shape[1])));
  }
  size_t parts = (size_t)(ws + 1) * (size_t)e->n;
  loom_tensor **dst = ok ? malloc(2 * parts * sizeof *dst) : NULL;
  if (ok && !dst)
    loom_set_error(LOOM_ERR_MEMORY,
                   "out of memory stacking a weight's gradients");
  loom_tensor **src = dst ? dst + parts : NULL;
  ok = dst != NULL;
  for (int64_t i = 0, r = 0; ok && i < e->n; i++) {
    int64_t m = e->gy[i]->shape[0];
    size_t p = (size_t)i * (size_t)(ws + 1);
    dst[p] = loom_narrow(G, 0, r, m);
    src[p] = e->gy[i];
    ok = dst[p] != NULL;
    for (int k = 0; ok && k < ws; k++) {
      dst[p + 1 + k] = loom_narrow(X[k], 0, r, m);
      src[p + 1 + k] = with[k]->x[i];
      ok = dst[p + 1 + k] != NULL;
    }
    r += m;
  }
  if (ok) {
    stacking st = {dst, src};
    int64_t cols = out + X[0]->shape[1] + (X[1] ? X[1]->shape[1] : 0);
    loom__parallel_for(loom__threads_for(e->rows * cols), (int64_t)parts,
                       stack_parts, &st);
  }
  free(dst);
  loom_tensor *Gt = ok ? loom_t(G) : NULL;
  for (int k = 0; Gt && k < ws && loom_last_status() == LOOM_OK; k++) {
    loom_tensor *d = loom__grad_in_place(with[k]->node, 1);
    if (d) {
      loom__kernel_gemm(d, Gt, X[k], 1, 1);
      loom__grad_in_place_end(with[k]->node, 1);
    } else {
      loom__accumulate(with[k]->node, 1, loom_matmul(Gt, X[k]));
    }
  }
  loom_scope_end(s);
}

/* grad(b) += the column sums of G for the deferred biases among
 * with[0..ws) (one sum for both), from G's rows where they lie, else
 * stacked. */
static void sum_biases(deferred *const *with, int ws) {
  const deferred *e = with[0];
  if (!e->bias && !(ws > 1 && with[1]->bias))
    return;
  const loom_tensor *g0 = e->gy[0];
  int64_t out = g0->shape[g0->ndim - 1];
  loom_scope *s = loom_scope_begin();
  loom_tensor *sum = NULL;
  const float **p =
      g0->dtype == LOOM_F32 ? malloc((size_t)e->rows * sizeof *p) : NULL;
  if (p && row_pointers(e->gy, e->n, p)) {
    if ((sum = loom_empty(LOOM_F32, LOOM_SHAPE(out))))
      loom__kernel_row_pointer_sums((float *)sum->data, p, e->rows, out);
  } else {
    loom_tensor *G = loom_concat(e->gy, e->n, 0);
    sum = G ? loom_sum(G, (int[]){0}, 1, false) : NULL;
  }
  free(p);
  /* each bias its own tensor: a hook may keep what it is given */
  for (int k = 0, given = 0; sum && k < ws; k++)
    if (with[k]->bias)
      loom__accumulate(with[k]->node, 2, given++ ? loom_clone(sum) : sum);
  loom_scope_end(s);
}

/* grad(W) += G^T X for e's weight and for every other deferred weight
 * whose pairs hold the same gradients (one G for both), by rows where
 * they lie, else stacked; and their deferred biases' gradients. */
static void defer_sum(deferred *e) {
  if (e->n == 0) /* summed already, by a flush */
    return;
  deferred *with[2] = {e, NULL}; /* e and at most one partner */
  for (int i = 0; i < defer.n && !with[1]; i++)
    if (defer.d[i] != e && same_gradients(e, defer.d[i]))
      with[1] = defer.d[i];
  int ws = with[1] ? 2 : 1;
  deferred *both[2] = {with[0], with[1]};
  int left = sum_by_rows(with, ws);
  if (left && loom_last_status() == LOOM_OK)
    sum_stacked(with, left);
  if (loom_last_status() == LOOM_OK)
    sum_biases(both, ws);
  for (int k = 0; k < ws; k++)
    defer_drop(both[k]);
}

/* Keeps the pair for the end of the pass if n's weight qualifies, and
 * sets *bias_too when its bias's gradient is deferred with it. */
static bool defer_weight_grad(loom__node *n, const loom_tensor *gy,
                              const loom_tensor *x, bool *bias_too) {
  const loom_tensor *w = loom__input(n, 1);
  int64_t rows = gy->shape[0];
  *bias_too = false;
  /* Only the outermost pass defers: a nested one frees its nodes first. */
  if (defer.depth != 1 || rows > LOOM__PACKED_MAX_ROWS || rows == 0 ||
      !loom_is_leaf(w) || loom_anomaly_mode() || loom__active_pass)
    return false;
  deferred *e = NULL;
  for (int i = 0; i < defer.n && !e; i++)
    if (loom__input(defer.d[i]->node, 1) == w)
      e = defer.d[i];
  if (!e) {
    if (defer.n == defer.cap) {
      int cap = defer.cap ? 2 * defer.cap : 8;
      deferred **d = realloc(defer.d, (size_t)cap * sizeof *d);
      if (!d)
        return false;
      defer.d = d;
      defer.cap = cap;
    }
    if (!(e = calloc(1, sizeof *e)))
      return false;
    defer.d[defer.n++] = e;
  }
  const loom_tensor *b = n->n_in > 2 ? loom__input(n, 2) : NULL;
  if (b && !(loom__needs_grad(n, 2) && loom_is_leaf(b)))
    b = NULL; /* its gradient is summed now */
  if (e->rows + rows > DEFER_ROWS || (e->n && e->bias != b))
    defer_sum(e);
  if (e->n == e->cap) {
    int cap = e->cap ? 2 * e->cap : 64;
    loom_tensor **g2 = realloc(e->gy, (size_t)cap * sizeof *g2);
    if (g2)
      e->gy = g2;
    loom_tensor **x2 = g2 ? realloc(e->x, (size_t)cap * sizeof *x2) : NULL;
    if (!x2)
      return false; /* this pair is summed now, by the caller */
    e->x = x2;
    e->cap = cap;
  }
  e->node = n;
  n->pinned = true; /* backward frees nodes as it passes them, but not n */
  e->gy[e->n] = loom_keep((loom_tensor *)gy);
  e->x[e->n] = loom_keep((loom_tensor *)x);
  e->n++;
  e->rows += rows;
  e->bias = b;
  *bias_too = b != NULL;
  return true;
}

void loom__deferred_end(bool ok) {
  if (--defer.depth > 0)
    return; /* the outermost pass sums them */
  /* All are summed before any is freed: a sum looks among all for its
   * partner. */
  for (int i = 0; i < defer.n; i++)
    if (ok && loom_last_status() == LOOM_OK)
      defer_sum(defer.d[i]);
  for (int i = 0; i < defer.n; i++) {
    defer_drop(defer.d[i]);
    free(defer.d[i]->gy);
    free(defer.d[i]->x);
    free(defer.d[i]);
  }
  free(defer.d);
  defer.d = NULL;
  defer.n = defer.cap = 0;
}

void loom__deferred_flush(const loom_tensor *w) {
  for (int i = 0; i < defer.n; i++)
    if (defer.d[i]->n &&
        (loom__input(defer.d[i]->node, 1) == w || defer.d[i]->bias == w))
      defer_sum(defer.d[i]);
}

/* The gradient of a linear's result (x's leading dims, out) as the
 * (rows, out) matrix its products read, or NULL with an error. The rows
 * are counted, not inferred: with no output features there are no
 * elements to infer them from. */
static const loom_tensor *rows_of(const loom_tensor *g) {
  if (g->ndim == 2)
    return g;
  int64_t rows = 1;
  for (int d = 0; d < g->ndim - 1; d++)
    rows *= g->shape[d];
  return loom_reshape(g, 2, (int64_t[]){rows, g->shape[g->ndim - 1]});
}

static void linear_backward(loom__node *n, loom_tensor *const *g) {
  /* dx reads w, dw reads x: check only what is read. */
  bool dx_wanted = loom__needs_grad(n, 0), dw_wanted = loom__needs_grad(n, 1);
  const loom_tensor *w =
      dx_wanted ? loom__input_value(n, 1) : loom__input(n, 1);
  const loom_tensor *x =
      dw_wanted ? loom__input_value(n, 0) : loom__input(n, 0);
  const loom_tensor *g2 = x && w ? rows_of(g[0]) : NULL;
  const loom_tensor *gy = g2 ? blas_ready(g2) : NULL;
  if (!gy)
    return;
  if (dx_wanted) {
    int64_t rows = gy->shape[0], in = w->shape[1];
    const loom__packed *packed =
        rows <= LOOM__PACKED_MAX_ROWS && gy->strides[1] == 1
            ? loom__kernel_pack_reused(w, false)
            : NULL;
    loom_tensor *dx =
        packed ? loom_empty(gy->dtype, LOOM_SHAPE(rows, in)) : NULL;
    if (dx) /* the weight packed once for all steps of a sequence */
      loom__kernel_gemm_packed(rows, (const float *)gy->data, gy->strides[0],
                               packed, (float *)dx->data, in, false);
    loom__accumulate(n, 0, dx ? dx : loom_matmul(gy, w));
  }
  bool db_deferred = false;
  if (dw_wanted && !defer_weight_grad(n, gy, x, &db_deferred)) {
    loom_tensor gt = loom__geometry(gy); /* gy^T as a view: (out, rows) */
    gt.shape[0] = gy->shape[1];
    gt.shape[1] = gy->shape[0];
    gt.strides[0] = gy->strides[1];
    gt.strides[1] = gy->strides[0];
    const loom_tensor *xr = blas_ready(x);
    loom_tensor *dst = xr ? loom__grad_in_place(n, 1) : NULL;
    if (dst) {
      loom__kernel_gemm(dst, &gt, xr, 1, 1);
      loom__grad_in_place_end(n, 1);
    } else {
      loom__accumulate(n, 1, loom_matmul(loom_t(gy), x));
    }
  }
  if (n->n_in > 2 && loom__needs_grad(n, 2) && !db_deferred)
    loom__accumulate(n, 2, loom_sum(gy, (int[]){0}, 1, false));
}

/* The same in recorded products (create_graph): no packing, no
 * deferral, nothing written in place. */
static void linear_graph_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *x = loom__input_value(n, 0), *w = loom__input_value(n, 1);
  const loom_tensor *gy = rows_of(g[0]);
  if (!x || !w || !gy)
    return;
  if (loom__needs_grad(n, 0))
    loom__accumulate(n, 0, loom_matmul(gy, w));
  if (loom__needs_grad(n, 1))
    loom__accumulate(n, 1, loom_matmul(loom_t(gy), x));
  if (n->n_in > 2 && loom__needs_grad(n, 2))
    loom__accumulate(n, 2, loom_sum(gy, (int[]){0}, 1, false));
}

loom_tensor *loom_linear(const loom_tensor *x, const loom_tensor *weight,
                         const loom_tensor *bias) {
  /* A NULL bias with an error pending is a failed op's result, not "none". */
  if (!x || !weight || (!bias && loom_last_status() != LOOM_OK))
    return loom_null_argument("linear");
  if (weight->ndim != 2 || x->ndim < 1 ||
      x->shape[x->ndim - 1] != weight->shape[1])
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "linear: input %s with weight %s (out x "
                     "in)",
                     loom_shape_text(x), loom_shape_text(weight));
  if (bias && (bias->ndim != 1 || bias->shape[0] != weight->shape[0]))
    return LOOM_FAIL(LOOM_ERR_SHAPE, "linear: bias %s for weight %s",
                     loom_shape_text(bias), loom_shape_text(weight));
  if (!float_pair(&x, &weight, "linear") ||
      (bias && loom__check_float(bias, "linear")))
    return NULL;
  if (bias && !(bias = loom_to_dtype(bias, x->dtype)))
    return NULL;
  int64_t in = weight->shape[1], out_f = weight->shape[0];
  /* The rows are counted, not left to reshape's -1: with in == 0 every
   * row count fits no elements, and reshape rightly refuses to guess. */
  int64_t rows = 1;
  for (int d = 0; d < x->ndim - 1; d++)
    if (__builtin_mul_overflow(rows, x->shape[d], &rows))
      return LOOM_FAIL(LOOM_ERR_SHAPE, "linear: input %s has too many rows",
                       loom_shape_text(x));
  const loom_tensor *x2 =
      x->ndim == 2 ? x : loom_reshape(x, 2, (int64_t[]){rows, in});
  const loom_tensor *xr = x2 ? blas_ready(x2) : NULL;
  const loom_tensor *wr = blas_ready(weight);
  /* The result has x's leading dims itself, not a view of a (rows, out)
   * one: a consumer that is its tensor's only holder (the fused cross
   * entropy writing its gradient in place) then holds its storage alone. */
  int64_t shape[LOOM_MAX_DIMS];
  memcpy(shape, x->shape, sizeof shape);
  shape[x->ndim - 1] = out_f;
  loom_tensor *y =
      xr && wr ? loom__new(x->dtype, x->ndim, shape, "linear") : NULL;
  if (!y)
    return NULL;
  loom_tensor y2 = loom__geometry(y); /* y as (rows, out) */
  y2.ndim = 2;
  y2.shape[0] = rows;
  y2.shape[1] = out_f;
  y2.strides[0] = out_f;
  y2.strides[1] = 1;
  loom_tensor wt = loom__geometry(wr); /* W^T as a view: (in, out) */
  wt.shape[0] = in;
  wt.shape[1] = out_f;
  wt.strides[0] = wr->strides[1];
  wt.strides[1] = wr->strides[0];
  const loom__packed *packed =
      rows <= LOOM__PACKED_MAX_ROWS && in > 0 && xr->strides[1] == 1
          ? loom__kernel_pack_reused(weight, true)
          : NULL;
  /* loom's kernels start each row from a contiguous float32 bias
   * themselves; otherwise the product adds to the bias copied into every
   * row (the same bits; the copy was a pass over the whole result, 1 % of
   * an encoder's training step). */
  bool from_bias =
      bias && rows > 0 && bias->dtype == LOOM_F32 && loom__is_contiguous(bias);
  const float *bias_f = from_bias ? (const float *)bias->data : NULL;
  bool done = false;
  if (from_bias && packed) {
    loom__kernel_gemm_packed_bias(rows, (const float *)xr->data, xr->strides[0],
                                  packed, bias_f, (float *)y->data, out_f);
    done = true;
  } else if (from_bias) {
    done = loom__kernel_gemm_bias(&y2, xr, &wt, bias_f);
  }
  if (!done && bias && rows > 0)
    loom__kernel_copy(&y2, bias); /* broadcast over the rows */
  if (!done && packed)
    loom__kernel_gemm_packed(rows, (const float *)xr->data, xr->strides[0],
                             packed, (float *)y->data, out_f, bias != NULL);
  else if (!done && rows > 0)
    loom__kernel_gemm(&y2, xr, &wt, 1, bias ? 1 : 0);
  loom__record(&loom__op_linear, y, bias ? 3 : 2,
               (const loom_tensor *[]){x2, weight, bias});
  return y;
}
