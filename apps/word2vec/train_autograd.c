/* The training step written with loom ops through autograd: the reference
 * the fused kernel (kernel.h) is tested against, and an engine of its own
 * (-engine autograd).
 *
 * Only the rows a batch touches take part. They are copied out of the big
 * matrices into small leaf tensors, the loss is built from those leaves
 * with embedding lookups, a segment sum (CBOW's window), batched dot
 * products and log_sigmoid, backward fills the leaves' gradients, and the
 * stepped rows are written back: a sparse, row-wise SGD update, where a
 * dense one would move every row of a V x size matrix for a few dozen
 * that changed. */
#include "word2vec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

/* The distinct rows among rows[0..n) (sorted, in place); their count. */
static int64_t unique_rows(int32_t *rows, int64_t n) {
  qsort(rows, (size_t)n, sizeof *rows, cmp_i32);
  int64_t u = 0;
  for (int64_t i = 0; i < n; i++)
    if (u == 0 || rows[u - 1] != rows[i])
      rows[u++] = rows[i];
  return u;
}

static int64_t local_index(const int32_t *uniq, int64_t u, int32_t row) {
  const int32_t *p = bsearch(&row, uniq, (size_t)u, sizeof row, cmp_i32);
  return p - uniq;
}

/* One group of output rows (hierarchical softmax or negative sampling):
 * the distinct rows as a leaf, and for every (example, target) pair its
 * example, its row in the leaf and the sign of its label. */
typedef struct {
  float *matrix;
  int32_t *uniq;
  int64_t n_uniq, n_pairs;
  int64_t *pair_ex, *pair_row;
  float *sign;
  loom_tensor *leaf;
} group;

static void group_free(group *g) {
  free(g->uniq);
  free(g->pair_ex);
  free(g->pair_row);
  free(g->sign);
}

/* Copies the rows `uniq` of `matrix` into a new leaf that wants a grad. */
static loom_tensor *gather_leaf(const float *matrix, const int32_t *uniq,
                                int64_t u, int64_t dim) {
  loom_tensor *t = loom_empty(LOOM_F32, LOOM_SHAPE(u, dim));
  if (!t)
    return NULL;
  float *d = loom_data_f32(t);
  for (int64_t r = 0; r < u; r++)
    memcpy(d + r * dim, matrix + (int64_t)uniq[r] * dim,
           (size_t)dim * sizeof *d);
  return loom_set_requires_grad(t, true);
}

/* The SGD step on the leaf's rows, added into the big matrix: adding (not
 * copying the stepped rows back) keeps what other threads wrote into those
 * rows since the gather, as the original tool's lock-free updates do. */
static int scatter_step(float *matrix, const int32_t *uniq, int64_t u,
                        int64_t dim, loom_tensor *leaf, float alpha) {
  loom_tensor *g = loom_grad(leaf);
  if (!g) /* no gradient reached these rows: nothing moves */
    return 0;
  loom_tensor *gc = loom_contiguous(g);
  if (!gc)
    return -1;
  const float *d = loom_data_f32(gc);
  for (int64_t r = 0; r < u; r++) {
    float *row = matrix + (int64_t)uniq[r] * dim;
    for (int64_t i = 0; i < dim; i++)
      row[i] -= alpha * d[r * dim + i];
  }
  return 0;
}

static int group_build(group *g, float *matrix, const w2v_example *ex, int n,
                       bool hs, int64_t dim) {
  *g = (group){.matrix = matrix};
  int64_t pairs = 0;
  for (int k = 0; k < n; k++)
    pairs += hs ? ex[k].n_hs : ex[k].n_ns;
  g->n_pairs = pairs;
  if (pairs == 0)
    return 0;
  g->uniq = malloc((size_t)pairs * sizeof *g->uniq);
  g->pair_ex = malloc((size_t)pairs * sizeof *g->pair_ex);
  g->pair_row = malloc((size_t)pairs * sizeof *g->pair_row);
  g->sign = malloc((size_t)pairs * sizeof *g->sign);
  if (!g->uniq || !g->pair_ex || !g->pair_row || !g->sign) {
    loom_set_error(LOOM_ERR_MEMORY, "word2vec autograd step: out of memory");
    return -1;
  }
  int64_t p = 0;
  for (int k = 0; k < n; k++) {
    int m = hs ? ex[k].n_hs : ex[k].n_ns;
    for (int t = 0; t < m; t++, p++) {
      g->uniq[p] = hs ? ex[k].hs_rows[t] : ex[k].ns_rows[t];
      g->pair_ex[p] = k;
      /* label 1 - code for the tree, 1 for the true word, 0 for negatives;
       * the loss of a pair is -log sigmoid(sign * score) */
      int label = hs ? 1 - ex[k].hs_codes[t] : t == 0;
      g->sign[p] = label ? 1.0f : -1.0f;
    }
  }
  p = 0;
  for (int k = 0; k < n; k++) {
    int m = hs ? ex[k].n_hs : ex[k].n_ns;
    for (int t = 0; t < m; t++, p++)
      g->pair_row[p] = hs ? ex[k].hs_rows[t] : ex[k].ns_rows[t];
  }
  g->n_uniq = unique_rows(g->uniq, pairs);
  for (int64_t q = 0; q < pairs; q++)
    g->pair_row[q] = local_index(g->uniq, g->n_uniq, (int32_t)g->pair_row[q]);
  g->leaf = gather_leaf(matrix, g->uniq, g->n_uniq, dim);
  return g->leaf ? 0 : -1;
}

/* -sum over the group's pairs of log sigmoid(sign * (h[example] . row)). */
static loom_tensor *group_loss(const group *g, loom_tensor *h) {
  loom_tensor *ex =
      loom_from_array(LOOM_I64, g->pair_ex, LOOM_SHAPE(g->n_pairs));
  loom_tensor *rows =
      loom_from_array(LOOM_I64, g->pair_row, LOOM_SHAPE(g->n_pairs));
  loom_tensor *sign =
      loom_from_array(LOOM_F32, g->sign, LOOM_SHAPE(g->n_pairs));
  loom_tensor *hp = loom_index_select(h, 0, ex);      /* P x D */
  loom_tensor *u = loom_embedding(g->leaf, rows, -1); /* P x D */
  loom_tensor *score = loom_sum(loom_mul(hp, u), (int[]){1}, 1, false);
  return loom_neg(loom_sum_all(loom_log_sigmoid(loom_mul(score, sign))));
}

double w2v_autograd_step(w2v_model *m, const w2v_example *ex, int n,
                         float alpha) {
  if (n <= 0)
    return 0;
  int64_t dim = m->dim;
  float *syn0 = loom_data_f32(m->syn0);
  int64_t q = 0;
  for (int k = 0; k < n; k++)
    q += ex[k].n_in;
  int32_t *uniq = malloc((size_t)(q + 1) * sizeof *uniq);
  int64_t *in_ex = malloc((size_t)(q + 1) * sizeof *in_ex);
  int64_t *in_row = malloc((size_t)(q + 1) * sizeof *in_row);
  float *inv = malloc((size_t)n * sizeof *inv);
  group gh = {0}, gn = {0};
  double result = NAN;
  loom_scope *s = loom_scope_begin();
  if (!uniq || !in_ex || !in_row || !inv) {
    loom_set_error(LOOM_ERR_MEMORY, "word2vec autograd step: out of memory");
    goto done;
  }
  q = 0;
  for (int k = 0; k < n; k++) {
    inv[k] = ex[k].n_in > 0 ? 1.0f / (float)ex[k].n_in : 0.0f;
    for (int j = 0; j < ex[k].n_in; j++, q++) {
      uniq[q] = ex[k].in[j];
      in_ex[q] = k;
      in_row[q] = ex[k].in[j];
    }
  }
  if (q == 0) { /* no input rows: nothing to train */
    result = 0;
    goto done;
  }
  int64_t u0 = unique_rows(uniq, q);
  for (int64_t i = 0; i < q; i++)
    in_row[i] = local_index(uniq, u0, (int32_t)in_row[i]);
  loom_tensor *w0 = gather_leaf(syn0, uniq, u0, dim);
  if (!w0 ||
      (m->syn1 &&
       group_build(&gh, loom_data_f32(m->syn1), ex, n, true, dim) < 0) ||
      (m->syn1neg &&
       group_build(&gn, loom_data_f32(m->syn1neg), ex, n, false, dim) < 0))
    goto done;

  /* h: each example's input rows summed (a segment sum over the window)
   * and scaled to their mean. The scaling is added as a constant, so the
   * value is the mean while the gradient reaches every row unscaled:
   * the update the original tool and gensim make for CBOW. */
  loom_tensor *rows =
      loom_embedding(w0, loom_from_array(LOOM_I64, in_row, LOOM_SHAPE(q)), -1);
  loom_tensor *sum = loom_index_add(
      loom_zeros(LOOM_F32, LOOM_SHAPE(n, dim)), 0,
      loom_from_array(LOOM_I64, in_ex, LOOM_SHAPE(q)), rows, 1.0);
  loom_no_grad_begin();
  loom_tensor *to_mean = loom_sub(
      loom_mul(sum, loom_from_array(LOOM_F32, inv, LOOM_SHAPE(n, 1))), sum);
  loom_no_grad_end();
  loom_tensor *h = loom_add(sum, to_mean);
  if (gh.n_pairs + gn.n_pairs == 0) { /* nothing to score */
    result = 0;
    goto done;
  }
  loom_tensor *loss = gh.n_pairs ? group_loss(&gh, h) : NULL;
  if (gn.n_pairs)
    loss = loss ? loom_add(loss, group_loss(&gn, h)) : group_loss(&gn, h);
  if (!loss || loom_backward(loss) < 0)
    goto done;
  result = loom_item(loss);
  if (!isfinite(result)) { /* leave the matrices as they were */
    loom_set_error(LOOM_ERR_NUMERIC,
                   "training diverged: the loss is %g; try a smaller "
                   "-alpha",
                   result);
    result = NAN;
    goto done;
  }
  if (scatter_step(syn0, uniq, u0, dim, w0, alpha) < 0 ||
      (gh.leaf &&
       scatter_step(gh.matrix, gh.uniq, gh.n_uniq, dim, gh.leaf, alpha) < 0) ||
      (gn.leaf &&
       scatter_step(gn.matrix, gn.uniq, gn.n_uniq, dim, gn.leaf, alpha) < 0))
    result = NAN;
done:
  loom_scope_end(s);
  group_free(&gh);
  group_free(&gn);
  free(uniq);
  free(in_ex);
  free(in_row);
  free(inv);
  return result;
}
