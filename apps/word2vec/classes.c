/* Word classes by k-means on the word vectors (the original tool's
 * -classes): words start in class i mod k; each round the centroids become
 * the unit-length mean of their members and every word moves to the
 * centroid with the largest dot product, one loom matrix product and an
 * argmax for all words at once. */
#include "word2vec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int w2v_kmeans(const loom_tensor *syn0, int64_t k, int rounds,
               int32_t *classes) {
  int64_t n = loom_size(syn0, 0), dim = loom_size(syn0, 1);
  if (k < 1 || k > n) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "-classes %lld: must be in 1..%lld "
                   "(the vocabulary size)",
                   (long long)k, (long long)n);
    return -1;
  }
  const float *w = loom_data_f32(syn0);
  for (int64_t i = 0; i < n; i++)
    classes[i] = (int32_t)(i % k);
  int rc = 0;
  for (int round = 0; rc == 0 && round < rounds; round++) {
    loom_scope *s = loom_scope_begin();
    loom_tensor *cent = loom_zeros(LOOM_F32, LOOM_SHAPE(k, dim));
    float *c = cent ? loom_data_f32(cent) : NULL;
    for (int64_t i = 0; c && i < n; i++)
      for (int64_t j = 0; j < dim; j++)
        c[classes[i] * dim + j] += w[i * dim + j];
    for (int64_t a = 0; c && a < k; a++) {
      double ss = 0;
      for (int64_t j = 0; j < dim; j++)
        ss += (double)c[a * dim + j] * c[a * dim + j];
      float inv = ss > 0 ? (float)(1 / sqrt(ss)) : 0.0f;
      for (int64_t j = 0; j < dim; j++)
        c[a * dim + j] *= inv;
    }
    loom_tensor *best =
        loom_contiguous(loom_argmax(loom_matmul(syn0, loom_t(cent)), 1, false));
    const int64_t *b = best ? loom_data_i64(best) : NULL;
    for (int64_t i = 0; b && i < n; i++)
      classes[i] = (int32_t)b[i];
    rc = b ? 0 : -1;
    loom_scope_end(s);
  }
  return rc;
}
