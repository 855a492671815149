/* The hot loop of word2vec: one training example as plain loops over the
 * float data of the loom matrices, inlined into the trainer's per-thread
 * loop (which is compiled once per instruction set, see train.c).
 *
 * Every score is taken before any output row moves and the hidden error is
 * summed before the rows are written, so the update is exactly -alpha
 * times the gradient of the example's loss even when a negative repeats;
 * train_autograd.c computes the same update with loom ops, and a test
 * holds the two together. The original tool interleaves the score and the
 * update of each output row, which only differs when a row repeats. */
#ifndef LOOM_APPS_WORD2VEC_KERNEL_H
#define LOOM_APPS_WORD2VEC_KERNEL_H

#include "word2vec.h"

#include <math.h>
#include <string.h>

/* The kernel must be inlined into the trainer's per-instruction-set
 * copies to be vectorised for them. */
#if defined(__GNUC__)
#define W2V_INLINE static inline __attribute__((always_inline))
#else
#define W2V_INLINE static inline
#endif

/* Sixteen floats: one AVX-512 register, two AVX2 ones, four SSE ones. */
typedef float w2v_v16 __attribute__((vector_size(64)));
typedef float w2v_v8 __attribute__((vector_size(32)));
typedef float w2v_v4 __attribute__((vector_size(16)));

/* The sum of the lanes as a tree (a compiler's reduction of a vectorised
 * loop adds them one by one, a long dependent chain on every dot). */
W2V_INLINE float w2v_lanes_sum(w2v_v16 v) {
  w2v_v8 lo, hi;
  memcpy(&lo, &v, sizeof lo);
  memcpy(&hi, (const char *)&v + sizeof lo, sizeof hi);
  w2v_v8 s8 = lo + hi;
  w2v_v4 l4, h4;
  memcpy(&l4, &s8, sizeof l4);
  memcpy(&h4, (const char *)&s8 + sizeof l4, sizeof h4);
  w2v_v4 s4 = l4 + h4;
  return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

W2V_INLINE float w2v_dot(const float *restrict a, const float *restrict b,
                         int64_t n) {
  w2v_v16 acc = {0};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    w2v_v16 x, y;
    memcpy(&x, a + i, sizeof x);
    memcpy(&y, b + i, sizeof y);
    acc += x * y;
  }
  float s = w2v_lanes_sum(acc);
  for (; i < n; i++)
    s += a[i] * b[i];
  return s;
}

/* y += a x */
W2V_INLINE void w2v_axpy(float *restrict y, float a, const float *restrict x,
                         int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++)
    y[i] += a * x[i];
}

/* Exact (libm's expf is faster here than an inlined polynomial), where the
 * original tool reads a 1000-entry table clipped at |x| = 6: the autograd
 * path's log_sigmoid then agrees to rounding. */
W2V_INLINE float w2v_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

W2V_INLINE void w2v_example_update(float *syn0, float *syn1, float *syn1neg,
                                   int64_t dim, const w2v_example *ex,
                                   float alpha, float *scratch) {
  float *h = scratch, *err = scratch + dim, *g = scratch + 2 * dim;
  if (ex->n_in == 1) {
    h = syn0 + (int64_t)ex->in[0] * dim; /* skip-gram: no copy */
  } else {
    memset(h, 0, (size_t)dim * sizeof *h);
    for (int k = 0; k < ex->n_in; k++)
      w2v_axpy(h, 1.0f, syn0 + (int64_t)ex->in[k] * dim, dim);
    float inv = 1.0f / (float)ex->n_in;
    for (int64_t i = 0; i < dim; i++)
      h[i] *= inv;
  }
  for (int t = 0; t < ex->n_hs; t++) {
    float f = w2v_dot(h, syn1 + (int64_t)ex->hs_rows[t] * dim, dim);
    g[t] = ((float)(1 - ex->hs_codes[t]) - w2v_sigmoid(f)) * alpha;
  }
  float *gn = g + ex->n_hs;
  for (int t = 0; t < ex->n_ns; t++) {
    float f = w2v_dot(h, syn1neg + (int64_t)ex->ns_rows[t] * dim, dim);
    gn[t] = ((t == 0 ? 1.0f : 0.0f) - w2v_sigmoid(f)) * alpha;
  }
  memset(err, 0, (size_t)dim * sizeof *err);
  for (int t = 0; t < ex->n_hs; t++)
    w2v_axpy(err, g[t], syn1 + (int64_t)ex->hs_rows[t] * dim, dim);
  for (int t = 0; t < ex->n_ns; t++)
    w2v_axpy(err, gn[t], syn1neg + (int64_t)ex->ns_rows[t] * dim, dim);
  for (int t = 0; t < ex->n_hs; t++)
    w2v_axpy(syn1 + (int64_t)ex->hs_rows[t] * dim, g[t], h, dim);
  for (int t = 0; t < ex->n_ns; t++)
    w2v_axpy(syn1neg + (int64_t)ex->ns_rows[t] * dim, gn[t], h, dim);
  for (int k = 0; k < ex->n_in; k++)
    w2v_axpy(syn0 + (int64_t)ex->in[k] * dim, 1.0f, err, dim);
}

#endif
