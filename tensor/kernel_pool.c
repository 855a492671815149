/* Pooling over contiguous planes (N*C planes of h x w). */
#include "kernels.h"

#include <math.h>
#include <string.h>

/* Planes [p0, p1) of a max pool. */
#define MAXPOOL(T)                                                             \
  static void maxpool_##T(T *out, int64_t *idx, const T *x,                    \
                          const loom__pool_geom *g, int64_t p0, int64_t p1) {  \
    for (int64_t p = p0; p < p1; p++) {                                        \
      const T *plane = x + p * g->h * g->w;                                    \
      for (int64_t oi = 0; oi < g->oh; oi++)                                   \
        for (int64_t oj = 0; oj < g->ow; oj++) {                               \
          T best = -INFINITY;                                                  \
          int64_t bi = -1;                                                     \
          for (int64_t ki = 0; ki < g->kh; ki++) {                             \
            int64_t ii = oi * g->sh - g->ph + ki * g->dh;                      \
            if (ii < 0 || ii >= g->h)                                          \
              continue;                                                        \
            for (int64_t kj = 0; kj < g->kw; kj++) {                           \
              int64_t jj = oj * g->sw - g->pw + kj * g->dw;                    \
              if (jj < 0 || jj >= g->w)                                        \
                continue;                                                      \
              T v = plane[ii * g->w + jj];                                     \
              if (bi < 0 || v > best || v != v) {                              \
                best = v;                                                      \
                bi = ii * g->w + jj;                                           \
                if (v != v)                                                    \
                  goto done_##T;                                               \
              }                                                                \
            }                                                                  \
          }                                                                    \
          done_##T : out[(p * g->oh + oi) * g->ow + oj] = best;                \
          if (idx)                                                             \
            idx[(p * g->oh + oi) * g->ow + oj] = bi < 0 ? 0 : bi;              \
        }                                                                      \
    }                                                                          \
  }
MAXPOOL(float)
MAXPOOL(double)

/* The common 2 x 2 window with stride 2 and no padding, without the
 * general loop's bounds checks and branches (random data mispredicts
 * them): the same choice, the first largest or the first NaN, in the same
 * order. */
static void maxpool_2x2_float(float *out, int64_t *idx, const float *x,
                              const loom__pool_geom *g, int64_t p0,
                              int64_t p1) {
  for (int64_t p = p0; p < p1; p++) {
    const float *plane = x + p * g->h * g->w;
    float *o = out + p * g->oh * g->ow;
    int64_t *ix = idx ? idx + p * g->oh * g->ow : NULL;
    for (int64_t oi = 0; oi < g->oh; oi++) {
      const float *r0 = plane + 2 * oi * g->w, *r1 = r0 + g->w;
      int64_t base = 2 * oi * g->w;
      for (int64_t oj = 0; oj < g->ow; oj++) {
        float v[4] = {r0[2 * oj], r0[2 * oj + 1], r1[2 * oj], r1[2 * oj + 1]};
        int64_t at[4] = {0, 1, g->w, g->w + 1};
        uint32_t bits[4];
        memcpy(bits, v, sizeof bits);
        float best = v[0];
        uint32_t best_bits = bits[0];
        int64_t k = 0;
        for (int q = 1; q < 4; q++) { /* selects by masks: no branches */
          uint32_t take =
              (uint32_t)0 -
              (uint32_t)((best == best) & ((v[q] > best) | (v[q] != v[q])));
          best_bits = (bits[q] & take) | (best_bits & ~take);
          memcpy(&best, &best_bits, sizeof best);
          k = (at[q] & (int64_t)(int32_t)take) | (k & ~(int64_t)(int32_t)take);
        }
        o[oi * g->ow + oj] = best;
        if (ix)
          ix[oi * g->ow + oj] = base + 2 * oj + k;
      }
    }
  }
}

typedef struct {
  loom_tensor *out;
  int64_t *idx;
  const loom_tensor *x;
  const loom__pool_geom *g;
} maxpool_job;

static bool is_2x2(const loom__pool_geom *g) {
  return g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 &&
         g->pw == 0 && g->dh == 1 && g->dw == 1 && 2 * g->oh <= g->h &&
         2 * g->ow <= g->w;
}

static void maxpool_planes(void *ctx, int64_t p0, int64_t p1) {
  const maxpool_job *j = ctx;
  if (j->x->dtype == LOOM_F32 && is_2x2(j->g))
    maxpool_2x2_float((float *)j->out->data, j->idx, (const float *)j->x->data,
                      j->g, p0, p1);
  else if (j->x->dtype == LOOM_F32)
    maxpool_float((float *)j->out->data, j->idx, (const float *)j->x->data,
                  j->g, p0, p1);
  else
    maxpool_double((double *)j->out->data, j->idx, (const double *)j->x->data,
                   j->g, p0, p1);
}

void loom__kernel_max_pool2d(loom_tensor *out, loom_tensor *indices,
                             const loom_tensor *x, const loom__pool_geom *g) {
  int64_t *idx = indices ? (int64_t *)indices->data : NULL;
  /* Only picks a thread count: in double, since output elements times
   * window elements can pass 2^63. */
  double work = (double)g->planes * (double)(g->oh * g->ow) * (double)g->kh *
                (double)g->kw;
  int nt = loom__threads_for(work < 1e18 ? (int64_t)work : INT64_MAX);
  loom__parallel_for(nt, g->planes, maxpool_planes,
                     &(maxpool_job){out, idx, x, g});
}

typedef struct {
  loom_tensor *gx;
  const loom_tensor *gout;
  const int64_t *idx;
  const loom__pool_geom *g;
} unpool_job;

/* Planes [p0, p1): each output's gradient to the input it took. */
static void unpool_planes(void *ctx, int64_t p0, int64_t p1) {
  const unpool_job *j = ctx;
  int64_t per = j->g->oh * j->g->ow, in = j->g->h * j->g->w;
  for (int64_t p = p0; p < p1; p++)
    for (int64_t i = 0; i < per; i++) {
      int64_t src = p * per + i, dst = p * in + j->idx[src];
      if (j->gx->dtype == LOOM_F32)
        ((float *)j->gx->data)[dst] += ((const float *)j->gout->data)[src];
      else
        ((double *)j->gx->data)[dst] += ((const double *)j->gout->data)[src];
    }
}

void loom__kernel_max_pool2d_backward(loom_tensor *gx, const loom_tensor *gout,
                                      const loom_tensor *indices,
                                      const loom__pool_geom *g) {
  loom__kernel_fill(gx, 0);
  unpool_job j = {gx, gout, (const int64_t *)indices->data, g};
  int nt = loom__threads_for(g->planes * g->oh * g->ow);
  loom__parallel_for(nt, g->planes, unpool_planes, &j);
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
