/* 2-D convolution by im2col + GEMM.
 *
 * Samples are taken in chunks: a chunk's columns (C/groups*kh*kw rows, one
 * column per output pixel of each of its samples) sit side by side in one
 * matrix, so that one product spans several samples when each has few
 * output pixels (a 64-pixel map alone makes a narrow product that runs at
 * a fraction of BLAS's speed). Chunks run in parallel on loom's workers,
 * each part with its own buffers; the products inside a part then run on
 * one thread.
 *
 * Determinism: chunk boundaries depend on the shapes only. The weight and
 * bias gradients sum over samples: chunks are grouped into at most
 * CONV_PARTIALS fixed groups, each accumulating its chunks in order into a
 * partial sum, and the partials are added in group order, so the result is
 * the same with 1 thread or 8.
 */
#include "kernels.h"

#include <stdlib.h>
#include <string.h>

/* Output pixels a chunk aims for (the width of its products). */
#define CONV_CHUNK_COLS 512
/* Partial sums of the weight gradient (fixed, for determinism). */
#define CONV_PARTIALS 8

#define IM2COL(T)                                                              \
  /* Columns of one sample into col (rows of length ld, this sample's          \
   * L output pixels from column 0). */                                        \
  static void im2col_##T(const T *x, T *col, int64_t ld, int64_t c,            \
                         const loom__conv_geom *g) {                           \
    for (int64_t ci = 0; ci < c; ci++)                                         \
      for (int64_t ki = 0; ki < g->kh; ki++)                                   \
        for (int64_t kj = 0; kj < g->kw; kj++) {                               \
          T *row = col + ((ci * g->kh + ki) * g->kw + kj) * ld;                \
          const T *plane = x + ci * g->h * g->w;                               \
          int64_t dj = kj * g->dw - g->pw;                                     \
          /* output columns whose input column is inside: [lo, hi) */          \
          int64_t lo = dj >= 0 ? 0 : (-dj + g->sw - 1) / g->sw;                \
          int64_t hi = g->w - 1 - dj < 0 ? 0 : (g->w - 1 - dj) / g->sw + 1;    \
          hi = hi < g->ow ? hi : g->ow;                                        \
          lo = lo < hi ? lo : hi;                                              \
          for (int64_t oi = 0; oi < g->oh; oi++) {                             \
            int64_t ii = oi * g->sh - g->ph + ki * g->dh;                      \
            T *r = row + oi * g->ow;                                           \
            if (ii < 0 || ii >= g->h) {                                        \
              memset(r, 0, (size_t)g->ow * sizeof(T));                         \
              continue;                                                        \
            }                                                                  \
            const T *src = plane + ii * g->w + dj;                             \
            for (int64_t oj = 0; oj < lo; oj++)                                \
              r[oj] = 0;                                                       \
            if (g->sw == 1)                                                    \
              memcpy(r + lo, src + lo, (size_t)(hi - lo) * sizeof(T));         \
            else                                                               \
              for (int64_t oj = lo; oj < hi; oj++)                             \
                r[oj] = src[oj * g->sw];                                       \
            for (int64_t oj = hi; oj < g->ow; oj++)                            \
              r[oj] = 0;                                                       \
          }                                                                    \
        }                                                                      \
  }                                                                            \
  /* Adds one sample's columns (rows of length ld) into its input grad. */     \
  static void col2im_##T(const T *col, T *x, int64_t ld, int64_t c,            \
                         const loom__conv_geom *g) {                           \
    for (int64_t ci = 0; ci < c; ci++)                                         \
      for (int64_t ki = 0; ki < g->kh; ki++)                                   \
        for (int64_t kj = 0; kj < g->kw; kj++) {                               \
          const T *row = col + ((ci * g->kh + ki) * g->kw + kj) * ld;          \
          T *plane = x + ci * g->h * g->w;                                     \
          int64_t dj = kj * g->dw - g->pw;                                     \
          int64_t lo = dj >= 0 ? 0 : (-dj + g->sw - 1) / g->sw;                \
          int64_t hi = g->w - 1 - dj < 0 ? 0 : (g->w - 1 - dj) / g->sw + 1;    \
          hi = hi < g->ow ? hi : g->ow;                                        \
          for (int64_t oi = 0; oi < g->oh; oi++) {                             \
            int64_t ii = oi * g->sh - g->ph + ki * g->dh;                      \
            if (ii < 0 || ii >= g->h)                                          \
              continue;                                                        \
            const T *r = row + oi * g->ow;                                     \
            T *dst = plane + ii * g->w + dj;                                   \
            for (int64_t oj = lo; oj < hi; oj++)                               \
              dst[oj * g->sw] += r[oj];                                        \
          }                                                                    \
        }                                                                      \
  }
IM2COL(float)
IM2COL(double)

/* What every part of a convolution reads. */
typedef struct {
  const loom__conv_geom *g;
  loom_dtype t;
  int64_t es, cg, og, K, L;
  int64_t chunk, chunks; /* samples per chunk, number of chunks */
  bool direct;           /* pointwise: the input is its own columns */
  const char *x, *w, *b, *gout;
  char *out, *gx;
  char *gw_part, *gb_part; /* CONV_PARTIALS partial sums (backward) */
  int64_t parts;           /* partial sums in use */
  bool failed;
} conv_job;

static void im2col(const conv_job *j, const char *x, char *col, int64_t ld) {
  if (j->t == LOOM_F32)
    im2col_float((const float *)x, (float *)col, ld, j->cg, j->g);
  else
    im2col_double((const double *)x, (double *)col, ld, j->cg, j->g);
}

static void col2im(const conv_job *j, const char *col, char *x, int64_t ld) {
  if (j->t == LOOM_F32)
    col2im_float((const float *)col, (float *)x, ld, j->cg, j->g);
  else
    col2im_double((const double *)col, (double *)x, ld, j->cg, j->g);
}

/* Samples of chunk k: [*n0, *n1). */
static void chunk_range(const conv_job *j, int64_t k, int64_t *n0,
                        int64_t *n1) {
  *n0 = k * j->chunk;
  *n1 = *n0 + j->chunk < j->g->n ? *n0 + j->chunk : j->g->n;
}

/* A part's buffer (NULL and failed set if none). malloc, not the
 * per-thread reuse lists: a worker's lists are never released. */
static char *buffer(conv_job *j, size_t bytes) {
  char *p = bytes ? malloc(bytes) : NULL;
  if (bytes && !p)
    j->failed = true;
  return p;
}

static void forward_chunks(void *ctx, int64_t k0, int64_t k1) {
  conv_job *j = ctx;
  const loom__conv_geom *g = j->g;
  int64_t es = j->es, L = j->L, wide = j->chunk * L;
  size_t col_bytes = j->direct ? 0 : (size_t)(j->K * wide * es);
  size_t out_bytes = j->chunk > 1 ? (size_t)(j->og * wide * es) : 0;
  char *col = buffer(j, col_bytes), *tmp = buffer(j, out_bytes);
  for (int64_t k = k0; k < k1 && !j->failed; k++) {
    int64_t n0, n1;
    chunk_range(j, k, &n0, &n1);
    int64_t nc = n1 - n0, ld = nc * L;
    for (int64_t gi = 0; gi < g->groups; gi++) {
      const char *ws = j->w + gi * j->og * j->K * es;
      for (int64_t n = n0; !j->direct && n < n1; n++)
        im2col(j, j->x + ((n * g->c + gi * j->cg) * g->h * g->w) * es,
               col + (n - n0) * L * es, ld);
      const char *cols =
          j->direct ? j->x + ((n0 * g->c + gi * j->cg) * L) * es : col;
      char *dst = nc > 1 ? tmp : j->out + ((n0 * g->oc + gi * j->og) * L) * es;
      loom__kernel_gemm_raw(j->t, false, false, j->og, ld, j->K, 1.0, ws, j->K,
                            cols, ld, 0.0, dst, ld);
      for (int64_t n = n0; nc > 1 && n < n1; n++) /* to (N, C, L) */
        for (int64_t o = 0; o < j->og; o++)
          memcpy(j->out + ((n * g->oc + gi * j->og + o) * L) * es,
                 tmp + (o * ld + (n - n0) * L) * es, (size_t)(L * es));
    }
    for (int64_t n = n0; j->b && n < n1; n++)
      for (int64_t o = 0; o < g->oc; o++) {
        char *p = j->out + ((n * g->oc + o) * L) * es;
        if (j->t == LOOM_F32) {
          float bv = ((const float *)j->b)[o];
          for (int64_t i = 0; i < L; i++)
            ((float *)p)[i] += bv;
        } else {
          double bv = ((const double *)j->b)[o];
          for (int64_t i = 0; i < L; i++)
            ((double *)p)[i] += bv;
        }
      }
  }
  free(col);
  free(tmp);
}

/* Chunks and their parallel split: a chunk holds enough samples for
 * CONV_CHUNK_COLS output pixels (pointwise convolutions read the input in
 * place and take one sample at a time). */
static void plan(conv_job *j, const loom__conv_geom *g, loom_dtype t) {
  j->g = g;
  j->t = t;
  j->es = (int64_t)loom_dtype_size(t);
  j->cg = g->c / g->groups;
  j->og = g->oc / g->groups;
  j->K = j->cg * g->kh * g->kw;
  j->L = g->oh * g->ow;
  j->direct = g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 &&
              g->ph == 0 && g->pw == 0;
  j->chunk = j->direct || j->L == 0 ? 1 : (CONV_CHUNK_COLS + j->L - 1) / j->L;
  j->chunk = j->chunk < g->n ? j->chunk : g->n;
  j->chunk = j->chunk > 0 ? j->chunk : 1; /* an empty batch: no chunks */
  j->chunks = (g->n + j->chunk - 1) / j->chunk;
}

/* Runs fn over [0, n) on up to n parts; one part runs here, where its
 * products may use the workers themselves. */
static void run(int64_t n, int64_t work, loom__range_fn fn, conv_job *j) {
  int nt = loom__threads_for(work);
  if (nt > 1 && n > 1)
    loom__parallel_for(nt, n, fn, j);
  else
    fn(j, 0, n);
}

int loom__kernel_conv2d(loom_tensor *out, const loom_tensor *x,
                        const loom_tensor *w, const loom_tensor *bias,
                        const loom__conv_geom *g) {
  conv_job j = {0};
  plan(&j, g, x->dtype);
  j.x = x->data;
  j.w = w->data;
  j.b = bias ? bias->data : NULL; /* contiguous (the op makes it so) */
  j.out = out->data;
  run(j.chunks, g->n * g->oc * j.L * j.K, forward_chunks, &j);
  if (j.failed) {
    loom_set_error(LOOM_ERR_MEMORY, "conv2d: out of memory for im2col");
    return -1;
  }
  return 0;
}

/* ---- unfold and fold (im2col and col2im as ops of their own) ---- */

typedef struct {
  const loom__conv_geom *g;
  const loom_tensor *src;
  loom_tensor *dst;
} fold_job;

/* Samples [n0, n1): each sample's columns from (unfold) or into (fold)
 * its planes; samples are independent, so any split gives the same bits. */
static void unfold_samples(void *ctx, int64_t n0, int64_t n1) {
  const fold_job *f = ctx;
  const loom__conv_geom *g = f->g;
  int64_t in = g->c * g->h * g->w, L = g->oh * g->ow, K = g->c * g->kh * g->kw;
  for (int64_t n = n0; n < n1; n++)
    if (f->dst->dtype == LOOM_F32)
      im2col_float((const float *)f->src->data + n * in,
                   (float *)f->dst->data + n * K * L, L, g->c, g);
    else
      im2col_double((const double *)f->src->data + n * in,
                    (double *)f->dst->data + n * K * L, L, g->c, g);
}

static void fold_samples(void *ctx, int64_t n0, int64_t n1) {
  const fold_job *f = ctx;
  const loom__conv_geom *g = f->g;
  int64_t in = g->c * g->h * g->w, L = g->oh * g->ow, K = g->c * g->kh * g->kw;
  for (int64_t n = n0; n < n1; n++)
    if (f->dst->dtype == LOOM_F32)
      col2im_float((const float *)f->src->data + n * K * L,
                   (float *)f->dst->data + n * in, L, g->c, g);
    else
      col2im_double((const double *)f->src->data + n * K * L,
                    (double *)f->dst->data + n * in, L, g->c, g);
}

void loom__kernel_unfold(loom_tensor *cols, const loom_tensor *x,
                         const loom__conv_geom *g) {
  fold_job f = {g, x, cols};
  loom__parallel_for(loom__threads_for(cols->numel), g->n, unfold_samples, &f);
}

void loom__kernel_fold(loom_tensor *x, const loom_tensor *cols,
                       const loom__conv_geom *g) {
  loom__kernel_fill(x, 0);
  fold_job f = {g, cols, x};
  loom__parallel_for(loom__threads_for(cols->numel), g->n, fold_samples, &f);
}

/* Backward of the chunks of partial sums [p0, p1): each partial p takes
 * chunks [chunks * p / parts, chunks * (p + 1) / parts) in order. */
static void backward_parts(void *ctx, int64_t p0, int64_t p1) {
  conv_job *j = ctx;
  const loom__conv_geom *g = j->g;
  int64_t es = j->es, L = j->L, wide = j->chunk * L;
  size_t col_bytes = (size_t)(j->K * wide * es);
  size_t go_bytes = j->chunk > 1 ? (size_t)(j->og * wide * es) : 0;
  char *col = buffer(j, col_bytes), *go = buffer(j, go_bytes);
  for (int64_t p = p0; p < p1 && !j->failed; p++) {
    int64_t k0 = j->chunks * p / j->parts, k1 = j->chunks * (p + 1) / j->parts;
    char *gw = j->gw_part ? j->gw_part + p * g->oc * j->K * es : NULL;
    char *gb = j->gb_part ? j->gb_part + p * g->oc * es : NULL;
    for (int64_t k = k0; k < k1; k++) {
      int64_t n0, n1;
      chunk_range(j, k, &n0, &n1);
      int64_t nc = n1 - n0, ld = nc * L;
      for (int64_t gi = 0; gi < g->groups; gi++) {
        /* this chunk's output gradient as (og, nc * L) */
        const char *gos;
        if (nc == 1) {
          gos = j->gout + ((n0 * g->oc + gi * j->og) * L) * es;
        } else {
          for (int64_t n = n0; n < n1; n++)
            for (int64_t o = 0; o < j->og; o++)
              memcpy(go + (o * ld + (n - n0) * L) * es,
                     j->gout + ((n * g->oc + gi * j->og + o) * L) * es,
                     (size_t)(L * es));
          gos = go;
        }
        if (gw) {
          const char *cols = j->x + ((n0 * g->c + gi * j->cg) * L) * es;
          if (!j->direct) {
            for (int64_t n = n0; n < n1; n++)
              im2col(j, j->x + ((n * g->c + gi * j->cg) * g->h * g->w) * es,
                     col + (n - n0) * L * es, ld);
            cols = col;
          }
          /* gw_g (og x K) += gout (og x nc L) @ col^T (nc L x K) */
          loom__kernel_gemm_raw(j->t, false, true, j->og, j->K, ld, 1.0, gos,
                                ld, cols, ld, k == k0 ? 0.0 : 1.0,
                                gw + gi * j->og * j->K * es, j->K);
        }
        if (gb)
          for (int64_t o = 0; o < j->og; o++) {
            double s = 0;
            for (int64_t i = 0; i < ld; i++)
              s += j->t == LOOM_F32 ? ((const float *)gos)[o * ld + i]
                                    : ((const double *)gos)[o * ld + i];
            char *dst = gb + (gi * j->og + o) * es;
            double before = k == k0 ? 0 : loom__read(dst, j->t);
            loom__write(dst, j->t, before + s);
          }
        if (j->gx) {
          /* col (K x nc L) = w_g^T (K x og) @ gout (og x nc L) */
          const char *ws = j->w + gi * j->og * j->K * es;
          if (j->direct) { /* one sample: its (cg, L) gradient directly */
            char *gxs = j->gx + ((n0 * g->c + gi * j->cg) * L) * es;
            loom__kernel_gemm_raw(j->t, true, false, j->K, ld, j->og, 1.0, ws,
                                  j->K, gos, ld, 0.0, gxs, ld);
          } else {
            loom__kernel_gemm_raw(j->t, true, false, j->K, ld, j->og, 1.0, ws,
                                  j->K, gos, ld, 0.0, col, ld);
            for (int64_t n = n0; n < n1; n++)
              col2im(j, col + (n - n0) * L * es,
                     j->gx + ((n * g->c + gi * j->cg) * g->h * g->w) * es, ld);
          }
        }
      }
    }
  }
  free(col);
  free(go);
}

/* dst[i] = sum over p of parts[p][i], in order of p. */
typedef struct {
  loom_dtype t;
  const char *parts;
  int64_t n, count;
  char *dst;
} sum_job;

static void sum_parts(void *ctx, int64_t i0, int64_t i1) {
  const sum_job *s = ctx;
  for (int64_t i = i0; i < i1; i++) {
    double v = 0;
    for (int64_t p = 0; p < s->count; p++)
      v += s->t == LOOM_F32 ? ((const float *)s->parts)[p * s->n + i]
                            : ((const double *)s->parts)[p * s->n + i];
    loom__write(s->dst + i * (int64_t)loom_dtype_size(s->t), s->t, v);
  }
}

static void add_partials(loom_dtype t, const char *parts, int64_t count,
                         int64_t n, char *dst) {
  sum_job s = {t, parts, n, count, dst};
  int nt = loom__threads_for(n * count);
  if (nt > 1)
    loom__parallel_for(nt, n, sum_parts, &s);
  else
    sum_parts(&s, 0, n);
}

int loom__kernel_conv2d_backward(const loom_tensor *gout, const loom_tensor *x,
                                 const loom_tensor *w, loom_tensor *gx,
                                 loom_tensor *gw, loom_tensor *gb,
                                 const loom__conv_geom *g) {
  conv_job j = {0};
  plan(&j, g, gout->dtype);
  if (j.chunks == 0) { /* an empty batch: the weights get zeros */
    if (gw)
      loom__kernel_fill(gw, 0);
    if (gb)
      loom__kernel_fill(gb, 0);
    return 0;
  }
  j.x = x->data;
  j.w = w->data;
  j.gout = gout->data;
  j.gx = gx ? gx->data : NULL;
  j.parts = j.chunks < CONV_PARTIALS ? j.chunks : CONV_PARTIALS;
  int64_t es = j.es, wsize = g->oc * j.K;
  size_t gw_bytes = gw ? (size_t)(j.parts * wsize * es) : 0;
  size_t gb_bytes = gb ? (size_t)(j.parts * g->oc * es) : 0;
  j.gw_part = gw_bytes ? loom__block_alloc(&gw_bytes) : NULL;
  j.gb_part = gb_bytes ? loom__block_alloc(&gb_bytes) : NULL;
  if ((gw_bytes && !j.gw_part) || (gb_bytes && !j.gb_part)) {
    if (j.gw_part)
      loom__block_free(j.gw_part, gw_bytes);
    if (j.gb_part)
      loom__block_free(j.gb_part, gb_bytes);
    loom_set_error(LOOM_ERR_MEMORY, "conv2d backward: out of memory");
    return -1;
  }
  if (gx)
    loom__kernel_fill(gx, 0);
  run(j.parts, g->n * g->oc * j.L * j.K * 2, backward_parts, &j);
  if (!j.failed && gw)
    add_partials(j.t, j.gw_part, j.parts, wsize, gw->data);
  if (!j.failed && gb)
    add_partials(j.t, j.gb_part, j.parts, g->oc, gb->data);
  if (j.gw_part)
    loom__block_free(j.gw_part, gw_bytes);
  if (j.gb_part)
    loom__block_free(j.gb_part, gb_bytes);
  if (j.failed) {
    loom_set_error(LOOM_ERR_MEMORY, "conv2d backward: out of memory");
    return -1;
  }
  return 0;
}
