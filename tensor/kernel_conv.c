/* 2-D convolution by im2col + GEMM, per sample and group. The column
 * buffer (C/groups*kh*kw x oh*ow) is reused across samples. */
#include "kernels.h"

#include <stdlib.h>

#define IM2COL(T)                                                              \
  static void im2col_##T(const T *x, T *col, int64_t c,                        \
                         const loom__conv_geom *g) {                           \
    int64_t L = g->oh * g->ow;                                                 \
    for (int64_t ci = 0; ci < c; ci++)                                         \
      for (int64_t ki = 0; ki < g->kh; ki++)                                   \
        for (int64_t kj = 0; kj < g->kw; kj++) {                               \
          T *row = col + ((ci * g->kh + ki) * g->kw + kj) * L;                 \
          const T *plane = x + ci * g->h * g->w;                               \
          for (int64_t oi = 0; oi < g->oh; oi++) {                             \
            int64_t ii = oi * g->sh - g->ph + ki * g->dh;                      \
            T *r = row + oi * g->ow;                                           \
            if (ii < 0 || ii >= g->h) {                                        \
              for (int64_t oj = 0; oj < g->ow; oj++)                           \
                r[oj] = 0;                                                     \
              continue;                                                        \
            }                                                                  \
            for (int64_t oj = 0; oj < g->ow; oj++) {                           \
              int64_t jj = oj * g->sw - g->pw + kj * g->dw;                    \
              r[oj] = jj >= 0 && jj < g->w ? plane[ii * g->w + jj] : 0;        \
            }                                                                  \
          }                                                                    \
        }                                                                      \
  }                                                                            \
  static void col2im_##T(const T *col, T *x, int64_t c,                        \
                         const loom__conv_geom *g) {                           \
    int64_t L = g->oh * g->ow;                                                 \
    for (int64_t ci = 0; ci < c; ci++)                                         \
      for (int64_t ki = 0; ki < g->kh; ki++)                                   \
        for (int64_t kj = 0; kj < g->kw; kj++) {                               \
          const T *row = col + ((ci * g->kh + ki) * g->kw + kj) * L;           \
          T *plane = x + ci * g->h * g->w;                                     \
          for (int64_t oi = 0; oi < g->oh; oi++) {                             \
            int64_t ii = oi * g->sh - g->ph + ki * g->dh;                      \
            if (ii < 0 || ii >= g->h)                                          \
              continue;                                                        \
            const T *r = row + oi * g->ow;                                     \
            for (int64_t oj = 0; oj < g->ow; oj++) {                           \
              int64_t jj = oj * g->sw - g->pw + kj * g->dw;                    \
              if (jj >= 0 && jj < g->w)                                        \
                plane[ii * g->w + jj] += r[oj];                                \
            }                                                                  \
          }                                                                    \
        }                                                                      \
  }
IM2COL(float)
IM2COL(double)

static bool is_pointwise(const loom__conv_geom *g) {
  return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 &&
         g->pw == 0;
}

static void im2col(loom_dtype t, const char *x, char *col, int64_t c,
                   const loom__conv_geom *g) {
  if (t == LOOM_F32)
    im2col_float((const float *)x, (float *)col, c, g);
  else
    im2col_double((const double *)x, (double *)col, c, g);
}

static void col2im(loom_dtype t, const char *col, char *x, int64_t c,
                   const loom__conv_geom *g) {
  if (t == LOOM_F32)
    col2im_float((const float *)col, (float *)x, c, g);
  else
    col2im_double((const double *)col, (double *)x, c, g);
}

int loom__kernel_conv2d(loom_tensor *out, const loom_tensor *x,
                        const loom_tensor *w, const loom_tensor *bias,
                        const loom__conv_geom *g) {
  loom_dtype t = x->dtype;
  int64_t es = (int64_t)loom_dtype_size(t);
  int64_t cg = g->c / g->groups, og = g->oc / g->groups;
  int64_t K = cg * g->kh * g->kw, L = g->oh * g->ow;
  bool direct = is_pointwise(g);
  char *col = direct ? NULL : malloc((size_t)(K * L * es) + 1);
  if (!direct && !col) {
    loom_set_error(LOOM_ERR_MEMORY, "conv2d: out of memory for im2col");
    return -1;
  }
  for (int64_t n = 0; n < g->n; n++)
    for (int64_t gi = 0; gi < g->groups; gi++) {
      const char *xs = x->data + ((n * g->c + gi * cg) * g->h * g->w) * es;
      char *os = out->data + ((n * g->oc + gi * og) * L) * es;
      const char *ws = w->data + gi * og * K * es;
      if (!direct)
        im2col(t, xs, col, cg, g);
      loom__kernel_gemm_raw(t, false, false, og, L, K, 1.0, ws, K,
                            direct ? xs : col, L, 0.0, os, L);
    }
  free(col);
  if (bias) {
    for (int64_t n = 0; n < g->n; n++)
      for (int64_t o = 0; o < g->oc; o++) {
        char *p = out->data + ((n * g->oc + o) * L) * es;
        if (t == LOOM_F32) {
          float b = ((const float *)bias->data)[o * bias->strides[0]];
          for (int64_t i = 0; i < L; i++)
            ((float *)p)[i] += b;
        } else {
          double b = ((const double *)bias->data)[o * bias->strides[0]];
          for (int64_t i = 0; i < L; i++)
            ((double *)p)[i] += b;
        }
      }
  }
  return 0;
}

int loom__kernel_conv2d_backward(const loom_tensor *gout, const loom_tensor *x,
                                 const loom_tensor *w, loom_tensor *gx,
                                 loom_tensor *gw, loom_tensor *gb,
                                 const loom__conv_geom *g) {
  loom_dtype t = gout->dtype;
  int64_t es = (int64_t)loom_dtype_size(t);
  int64_t cg = g->c / g->groups, og = g->oc / g->groups;
  int64_t K = cg * g->kh * g->kw, L = g->oh * g->ow;
  bool direct = is_pointwise(g);
  char *col = malloc((size_t)(K * L * es) + 1);
  if (!col) {
    loom_set_error(LOOM_ERR_MEMORY, "conv2d backward: out of memory");
    return -1;
  }
  if (gx)
    loom__kernel_fill(gx, 0);
  for (int64_t n = 0; n < g->n; n++)
    for (int64_t gi = 0; gi < g->groups; gi++) {
      const char *go = gout->data + ((n * g->oc + gi * og) * L) * es;
      if (gw) {
        const char *cols = x->data + ((n * g->c + gi * cg) * g->h * g->w) * es;
        if (!direct) {
          im2col(t, cols, col, cg, g);
          cols = col;
        }
        /* gw_g (og x K) += gout (og x L) @ col^T (L x K) */
        loom__kernel_gemm_raw(t, false, true, og, K, L, 1.0, go, L, cols, L,
                              n == 0 ? 0.0 : 1.0, gw->data + gi * og * K * es,
                              K);
      }
      if (gx) {
        char *gxs = gx->data + ((n * g->c + gi * cg) * g->h * g->w) * es;
        const char *ws = w->data + gi * og * K * es;
        /* col (K x L) = w_g^T (K x og) @ gout (og x L) */
        loom__kernel_gemm_raw(t, true, false, K, L, og, 1.0, ws, K, go, L,
                              direct ? 1.0 : 0.0, direct ? gxs : col, L);
        if (!direct)
          col2im(t, col, gxs, cg, g);
      }
    }
  free(col);
  if (gb) {
    for (int64_t o = 0; o < g->oc; o++) {
      double s = 0;
      for (int64_t n = 0; n < g->n; n++) {
        const char *p = gout->data + ((n * g->oc + o) * L) * es;
        for (int64_t i = 0; i < L; i++)
          s += t == LOOM_F32 ? ((const float *)p)[i] : ((const double *)p)[i];
      }
      loom__write(gb->data + o * es, t, s);
    }
  }
  return 0;
}
