/* Pooling over contiguous planes (N*C planes of h x w). */
#include "kernels.h"

#include <math.h>
#include <string.h>

/* Max pooling takes the first largest value of each window, or its first
 * NaN. Backward finds those positions again in the input, which the op's
 * node keeps anyway, instead of reading indices saved by forward: a 2 x 2
 * pool's int64 indices were half as large as its input, kept until
 * backward (31 MB of a captioning CNN's 64 x 64 batch), and writing them
 * was most of the forward's time. */

/* The flat position in its plane of output (oi, oj)'s choice (-1: none,
 * a window wholly in the padding), and its value in *best. */
#define ARGMAX(T)                                                              \
  static int64_t argmax_##T(const T *plane, const loom__pool_geom *g,          \
                            int64_t oi, int64_t oj, T *best_out) {             \
    T best = -INFINITY;                                                        \
    int64_t bi = -1;                                                           \
    for (int64_t ki = 0; ki < g->kh; ki++) {                                   \
      int64_t ii = oi * g->sh - g->ph + ki * g->dh;                            \
      if (ii < 0 || ii >= g->h)                                                \
        continue;                                                              \
      for (int64_t kj = 0; kj < g->kw; kj++) {                                 \
        int64_t jj = oj * g->sw - g->pw + kj * g->dw;                          \
        if (jj < 0 || jj >= g->w)                                              \
          continue;                                                            \
        T v = plane[ii * g->w + jj];                                           \
        if (bi < 0 || v > best || v != v) {                                    \
          best = v;                                                            \
          bi = ii * g->w + jj;                                                 \
          if (v != v)                                                          \
            goto done;                                                         \
        }                                                                      \
      }                                                                        \
    }                                                                          \
  done:                                                                        \
    *best_out = best;                                                          \
    return bi;                                                                 \
  }                                                                            \
  /* Planes [p0, p1) of a max pool (idx may be NULL). */                       \
  static void maxpool_##T(T *out, int64_t *idx, const T *x,                    \
                          const loom__pool_geom *g, int64_t p0, int64_t p1) {  \
    for (int64_t p = p0; p < p1; p++)                                          \
      for (int64_t oi = 0; oi < g->oh; oi++)                                   \
        for (int64_t oj = 0; oj < g->ow; oj++) {                               \
          int64_t o = (p * g->oh + oi) * g->ow + oj;                           \
          int64_t bi = argmax_##T(x + p * g->h * g->w, g, oi, oj, &out[o]);    \
          if (idx)                                                             \
            idx[o] = bi < 0 ? 0 : bi;                                          \
        }                                                                      \
  }                                                                            \
  /* Planes [p0, p1) of the gradient, gx zeroed: each output's gradient to     \
   * the input it took. */                                                     \
  static void unpool_##T(T *gx, const T *gout, const T *x,                     \
                         const loom__pool_geom *g, int64_t p0, int64_t p1) {   \
    int64_t in = g->h * g->w;                                                  \
    for (int64_t p = p0; p < p1; p++)                                          \
      for (int64_t oi = 0; oi < g->oh; oi++)                                   \
        for (int64_t oj = 0; oj < g->ow; oj++) {                               \
          T best;                                                              \
          int64_t bi = argmax_##T(x + p * in, g, oi, oj, &best);               \
          gx[p * in + (bi < 0 ? 0 : bi)] +=                                    \
              gout[(p * g->oh + oi) * g->ow + oj];                             \
        }                                                                      \
  }
ARGMAX(float)
ARGMAX(double)

/* The common 2 x 2 window with stride 2 and no padding, without the
 * general loop's bounds checks and branches (random data mispredicts
 * them): the same choice, the first largest or the first NaN, in the same
 * order. take() says whether v replaces the best so far. */
static inline int take(float best, float v) {
  return (best == best) & ((v > best) | (v != v));
}

/* The window's choice: 0, 1 (top row), 2, 3 (bottom row). */
static inline int pick_2x2(const float *r0, const float *r1, float *best) {
  float b = r0[0];
  int k = 0;
  float v[3] = {r0[1], r1[0], r1[1]};
  for (int q = 0; q < 3; q++) {
    int t = take(b, v[q]);
    b = t ? v[q] : b;
    k = t ? q + 1 : k;
  }
  *best = b;
  return k;
}

/* One output row of the 2 x 2 pool without NaNs, in loops of compares
 * and maxima that vectorise: the maximum of a window is its first largest
 * value (a later one replaces it only when larger), and the first input
 * equal to it is the one taken. *nan tells whether the row held a NaN:
 * then the caller does it again with pick_2x2. */
LOOM__ISA_FUNCTION(max_2x2_row,
                   (float *o, const float *r0, const float *r1, int64_t ow,
                    int *nan),
                   (o, r0, r1, ow, nan)) {
  int any = 0;
  for (int64_t oj = 0; oj < ow; oj++) {
    float a = r0[2 * oj], b = r0[2 * oj + 1], c = r1[2 * oj],
          d = r1[2 * oj + 1];
    float m = b > a ? b : a;
    m = c > m ? c : m;
    o[oj] = d > m ? d : m;
    any |= (a != a) | (b != b) | (c != c) | (d != d);
  }
  *nan = any;
}

/* Its gradient: every input of a window written once (the output's
 * gradient where the window took it, else 0), so no zeroing pass. 0 + g,
 * as the general path's sum into zeros (a -0 gradient becomes +0). */
LOOM__ISA_FUNCTION(unpool_2x2_row,
                   (float *d0, float *d1, const float *r0, const float *r1,
                    const float *go, int64_t ow, int *nan),
                   (d0, d1, r0, r1, go, ow, nan)) {
  int any = 0;
  for (int64_t oj = 0; oj < ow; oj++) {
    float a = r0[2 * oj], b = r0[2 * oj + 1], c = r1[2 * oj],
          d = r1[2 * oj + 1], g = 0.0f + go[oj];
    float m = b > a ? b : a;
    m = c > m ? c : m;
    m = d > m ? d : m;
    int ta = a == m, tb = !ta & (b == m), tc = !ta & !tb & (c == m);
    int td = !ta & !tb & !tc;
    d0[2 * oj] = ta ? g : 0;
    d0[2 * oj + 1] = tb ? g : 0;
    d1[2 * oj] = tc ? g : 0;
    d1[2 * oj + 1] = td ? g : 0;
    any |= (a != a) | (b != b) | (c != c) | (d != d);
  }
  *nan = any;
}

static void maxpool_2x2_float(float *out, int64_t *idx, const float *x,
                              const loom__pool_geom *g, int64_t p0,
                              int64_t p1) {
  for (int64_t p = p0; p < p1; p++) {
    const float *plane = x + p * g->h * g->w;
    float *o = out + p * g->oh * g->ow;
    int64_t *ix = idx ? idx + p * g->oh * g->ow : NULL;
    for (int64_t oi = 0; oi < g->oh; oi++) {
      const float *r0 = plane + 2 * oi * g->w, *r1 = r0 + g->w;
      float *orow = o + oi * g->ow;
      int nan = 1;
      if (!ix)
        max_2x2_row(orow, r0, r1, g->ow, &nan);
      for (int64_t oj = 0; nan && oj < g->ow; oj++) {
        int k = pick_2x2(r0 + 2 * oj, r1 + 2 * oj, &orow[oj]);
        if (ix)
          ix[oi * g->ow + oj] =
              2 * oi * g->w + 2 * oj + (k >> 1) * g->w + (k & 1);
      }
    }
  }
}

/* A last row or column no window covers is zeroed. */
static void unpool_2x2_float(float *gx, const float *gout, const float *x,
                             const loom__pool_geom *g, int64_t p0, int64_t p1) {
  int64_t in = g->h * g->w;
  for (int64_t p = p0; p < p1; p++) {
    const float *plane = x + p * in;
    float *d = gx + p * in;
    for (int64_t oi = 0; oi < g->oh; oi++) {
      const float *r0 = plane + 2 * oi * g->w, *r1 = r0 + g->w;
      float *d0 = d + 2 * oi * g->w, *d1 = d0 + g->w;
      const float *go = gout + (p * g->oh + oi) * g->ow;
      int nan;
      unpool_2x2_row(d0, d1, r0, r1, go, g->ow, &nan);
      for (int64_t oj = 0; nan && oj < g->ow; oj++) {
        float best, gv = 0.0f + go[oj];
        int k = pick_2x2(r0 + 2 * oj, r1 + 2 * oj, &best);
        d0[2 * oj] = k == 0 ? gv : 0;
        d0[2 * oj + 1] = k == 1 ? gv : 0;
        d1[2 * oj] = k == 2 ? gv : 0;
        d1[2 * oj + 1] = k == 3 ? gv : 0;
      }
      for (int64_t j = 2 * g->ow; j < g->w; j++)
        d0[j] = d1[j] = 0;
    }
    for (int64_t i = 2 * g->oh * g->w; i < in; i++)
      d[i] = 0;
  }
}

typedef struct {
  char *out; /* forward: the output; backward: the input's gradient */
  int64_t *idx;
  const char *x, *gout;
  const loom__pool_geom *g;
  loom_dtype t;
} maxpool_job;

static bool is_2x2(const loom__pool_geom *g) {
  return g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 &&
         g->pw == 0 && g->dh == 1 && g->dw == 1 && 2 * g->oh <= g->h &&
         2 * g->ow <= g->w;
}

static void maxpool_planes(void *ctx, int64_t p0, int64_t p1) {
  const maxpool_job *j = ctx;
  if (j->t == LOOM_F32 && is_2x2(j->g))
    maxpool_2x2_float((float *)j->out, j->idx, (const float *)j->x, j->g, p0,
                      p1);
  else if (j->t == LOOM_F32)
    maxpool_float((float *)j->out, j->idx, (const float *)j->x, j->g, p0, p1);
  else
    maxpool_double((double *)j->out, j->idx, (const double *)j->x, j->g, p0,
                   p1);
}

/* Threads for work of planes x outputs x window elements: in double, since
 * the product can pass 2^63. */
static int pool_threads(const loom__pool_geom *g) {
  double work = (double)g->planes * (double)(g->oh * g->ow) * (double)g->kh *
                (double)g->kw;
  return loom__threads_for(work < 1e18 ? (int64_t)work : INT64_MAX);
}

void loom__kernel_max_pool2d(loom_tensor *out, loom_tensor *indices,
                             const loom_tensor *x, const loom__pool_geom *g) {
  maxpool_job j = {out->data, indices ? (int64_t *)indices->data : NULL,
                   x->data,   NULL,
                   g,         x->dtype};
  loom__parallel_for(pool_threads(g), g->planes, maxpool_planes, &j);
}

static void unpool_planes(void *ctx, int64_t p0, int64_t p1) {
  const maxpool_job *j = ctx;
  if (j->t == LOOM_F32 && is_2x2(j->g))
    unpool_2x2_float((float *)j->out, (const float *)j->gout,
                     (const float *)j->x, j->g, p0, p1);
  else if (j->t == LOOM_F32)
    unpool_float((float *)j->out, (const float *)j->gout, (const float *)j->x,
                 j->g, p0, p1);
  else
    unpool_double((double *)j->out, (const double *)j->gout,
                  (const double *)j->x, j->g, p0, p1);
}

void loom__kernel_max_pool2d_backward(loom_tensor *gx, const loom_tensor *gout,
                                      const loom_tensor *x,
                                      const loom__pool_geom *g) {
  if (!(gx->dtype == LOOM_F32 && is_2x2(g)))
    loom__kernel_fill(gx, 0);
  maxpool_job j = {gx->data, NULL, x->data, gout->data, g, gx->dtype};
  loom__parallel_for(pool_threads(g), g->planes, unpool_planes, &j);
}

void loom__avg_pool_window(int64_t o, int64_t s, int64_t p, int64_t k,
                           int64_t size, int64_t *lo, int64_t *hi,
                           int64_t *padded) {
  int64_t a = o * s - p, b = a + k;
  if (b > size + p)
    b = size + p;
  *padded = b - a;
  *lo = a < 0 ? 0 : a;
  *hi = b > size ? size : b;
}

#define AVGPOOL(T)                                                             \
  static void avgpool_##T(T *out, const T *x, const loom__pool_geom *g,        \
                          bool backward) {                                     \
    for (int64_t p = 0; p < g->planes; p++)                                    \
      for (int64_t oi = 0; oi < g->oh; oi++)                                   \
        for (int64_t oj = 0; oj < g->ow; oj++) {                               \
          int64_t h0, h1, hp, w0, w1, wp;                                      \
          loom__avg_pool_window(oi, g->sh, g->ph, g->kh, g->h, &h0, &h1, &hp); \
          loom__avg_pool_window(oj, g->sw, g->pw, g->kw, g->w, &w0, &w1, &wp); \
          int64_t count = g->exclude_pad ? (h1 - h0) * (w1 - w0) : hp * wp;    \
          int64_t o = (p * g->oh + oi) * g->ow + oj;                           \
          if (count <= 0) {                                                    \
            if (!backward)                                                     \
              out[o] = 0;                                                      \
            continue;                                                          \
          }                                                                    \
          if (backward) {                                                      \
            T share = x[o] / (T)count;                                         \
            for (int64_t i = h0; i < h1; i++)                                  \
              for (int64_t j = w0; j < w1; j++)                                \
                out[(p * g->h + i) * g->w + j] += share;                       \
          } else {                                                             \
            double s = 0;                                                      \
            for (int64_t i = h0; i < h1; i++)                                  \
              for (int64_t j = w0; j < w1; j++)                                \
                s += x[(p * g->h + i) * g->w + j];                             \
            out[o] = (T)(s / (double)count);                                   \
          }                                                                    \
        }                                                                      \
  }
AVGPOOL(float)
AVGPOOL(double)

void loom__kernel_avg_pool2d(loom_tensor *out, const loom_tensor *x,
                             const loom__pool_geom *g, bool backward) {
  if (backward)
    loom__kernel_fill(out, 0);
  if (out->dtype == LOOM_F32)
    avgpool_float((float *)out->data, (const float *)x->data, g, backward);
  else
    avgpool_double((double *)out->data, (const double *)x->data, g, backward);
}

void loom__adaptive_pool_window(int64_t o, int64_t out, int64_t size,
                                int64_t *lo, int64_t *hi) {
  *lo = o * size / out;
  *hi = ((o + 1) * size + out - 1) / out;
}

/* out: planes x oh x ow from x: planes x h x w (forward); backward swaps
 * roles: out is the input gradient, x the output gradient. */
#define ADAPTIVE(T)                                                            \
  static void adaptive_##T(T *big, T *small, int64_t planes, int64_t h,        \
                           int64_t w, int64_t oh, int64_t ow, bool backward) { \
    for (int64_t p = 0; p < planes; p++)                                       \
      for (int64_t oi = 0; oi < oh; oi++) {                                    \
        int64_t h0, h1, w0, w1;                                                \
        loom__adaptive_pool_window(oi, oh, h, &h0, &h1);                       \
        for (int64_t oj = 0; oj < ow; oj++) {                                  \
          loom__adaptive_pool_window(oj, ow, w, &w0, &w1);                     \
          int64_t count = (h1 - h0) * (w1 - w0);                               \
          T *o = small + (p * oh + oi) * ow + oj;                              \
          if (backward) {                                                      \
            T share = *o / (T)count;                                           \
            for (int64_t i = h0; i < h1; i++)                                  \
              for (int64_t j = w0; j < w1; j++)                                \
                big[(p * h + i) * w + j] += share;                             \
          } else {                                                             \
            double s = 0;                                                      \
            for (int64_t i = h0; i < h1; i++)                                  \
              for (int64_t j = w0; j < w1; j++)                                \
                s += big[(p * h + i) * w + j];                                 \
            *o = (T)(s / (double)count);                                       \
          }                                                                    \
        }                                                                      \
      }                                                                        \
  }
ADAPTIVE(float)
ADAPTIVE(double)

void loom__kernel_adaptive_avg_pool2d(loom_tensor *out, const loom_tensor *x,
                                      bool backward) {
  /* In the forward direction out is small; backward, out is big. */
  const loom_tensor *big = backward ? out : x, *small = backward ? x : out;
  int nd = big->ndim;
  int64_t h = big->shape[nd - 2], w = big->shape[nd - 1];
  int64_t oh = small->shape[nd - 2], ow = small->shape[nd - 1];
  int64_t planes = h > 0 && w > 0 ? big->numel / (h * w) : 0;
  if (backward)
    loom__kernel_fill(out, 0);
  if (out->dtype == LOOM_F32)
    adaptive_float((float *)big->data, (float *)small->data, planes, h, w, oh,
                   ow, backward);
  else
    adaptive_double((double *)big->data, (double *)small->data, planes, h, w,
                    oh, ow, backward);
}
