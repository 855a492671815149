/* The Huffman tree of hierarchical softmax, built in linear time after a
 * sort: the leaves in increasing count and the merged nodes in the order
 * they are made (their counts never decrease) are two sorted queues, and
 * the two smallest fronts are merged each step. The second node taken at
 * a merge is the 1 branch and inner node k is row k of syn1, as in the
 * original tool, so the root is row n - 2. Leaves are sorted here rather
 * than assumed sorted, because word 0 (</s>) keeps its place in the
 * vocabulary whatever its count. */
#include "word2vec.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
  int64_t count, index;
} leaf;

/* Increasing count; among equals the later word first (the order in which
 * the original tool takes a sorted vocabulary from its end). */
static int by_count(const void *a, const void *b) {
  const leaf *x = a, *y = b;
  if (x->count != y->count)
    return x->count < y->count ? -1 : 1;
  return (x->index < y->index) - (x->index > y->index);
}

void w2v_tree_free(w2v_tree *t) {
  free(t->offset);
  free(t->point);
  free(t->code);
  *t = (w2v_tree){0};
}

int w2v_tree_build(w2v_tree *t, const int64_t *counts, int64_t n) {
  *t = (w2v_tree){.n = n};
  int64_t nodes = n > 0 ? 2 * n - 1 : 0;
  leaf *leaves = malloc((size_t)(n + 1) * sizeof *leaves);
  int64_t *weight = malloc((size_t)(nodes + 1) * sizeof *weight);
  int64_t *parent = malloc((size_t)(nodes + 1) * sizeof *parent);
  uint8_t *bit = calloc((size_t)(nodes + 1), 1);
  int32_t *depth = malloc((size_t)(nodes + 1) * sizeof *depth);
  t->offset = calloc((size_t)(n + 1), sizeof *t->offset);
  int rc = -1;
  if (!leaves || !weight || !parent || !bit || !depth || !t->offset)
    goto done;
  for (int64_t i = 0; i < n; i++)
    leaves[i] = (leaf){counts[i] < 0 ? 0 : counts[i], i};
  qsort(leaves, (size_t)n, sizeof *leaves, by_count);
  for (int64_t i = 0; i < n; i++)
    weight[i] = counts[i] < 0 ? 0 : counts[i];
  int64_t next_leaf = 0, next_inner = n; /* queue fronts */
  for (int64_t k = 0; k + 1 < n; k++) {
    int64_t pick[2];
    for (int j = 0; j < 2; j++) {
      bool take_leaf =
          next_leaf < n &&
          (next_inner >= n + k || leaves[next_leaf].count < weight[next_inner]);
      pick[j] = take_leaf ? leaves[next_leaf++].index : next_inner++;
    }
    weight[n + k] = weight[pick[0]] + weight[pick[1]];
    parent[pick[0]] = parent[pick[1]] = n + k;
    bit[pick[1]] = 1;
  }
  /* Depths from the root down: a parent is always made after its
   * children, so a downward sweep sees it first. */
  int64_t root = nodes - 1;
  if (n > 0)
    depth[root] = 0;
  int max = 0;
  for (int64_t i = root - 1; i >= 0; i--) {
    depth[i] = depth[parent[i]] + 1;
    if (i < n && depth[i] > max)
      max = depth[i];
  }
  for (int64_t w = 0; w < n; w++)
    t->offset[w + 1] = t->offset[w] + depth[w];
  int64_t total = t->offset[n];
  t->point = malloc((size_t)(total + 1) * sizeof *t->point);
  t->code = malloc((size_t)(total + 1));
  if (!t->point || !t->code)
    goto done;
  for (int64_t w = 0; w < n; w++) {
    int64_t node = w;
    for (int64_t d = t->offset[w + 1] - 1; d >= t->offset[w]; d--) {
      t->point[d] = (int32_t)(parent[node] - n);
      t->code[d] = bit[node];
      node = parent[node];
    }
  }
  t->max_len = max;
  rc = 0;
done:
  free(leaves);
  free(weight);
  free(parent);
  free(bit);
  free(depth);
  if (rc < 0) {
    w2v_tree_free(t);
    loom_set_error(LOOM_ERR_MEMORY,
                   "huffman tree: out of memory for %lld "
                   "words",
                   (long long)n);
  }
  return rc;
}
