/* Layer normalisation of contiguous rows, forward and backward, fused.
 *
 * Why fused: composed from ops, a LayerNorm is eight kernels and as many
 * temporaries forward and more backward, each a pass over memory; here it
 * is one pass for the statistics and one for the output, and backward one
 * pass over the rows and one over the columns. Row statistics are
 * accumulated in double, so float32 keeps full precision for wide rows.
 *
 * Determinism: each row is done by one thread, and the weight and bias
 * gradients are summed column by column over rows in row order, by one
 * thread per column block, whatever the thread count.
 *
 * Each pass is compiled for every instruction-set level: at the baseline's
 * two doubles a vector, converting floats for the partial sums bounded
 * them (2048 x 256 floats, AVX2: forward 290 -> 210 us, backward 815 ->
 * 710 us). The levels give the same bits: the same operations in the same
 * order per partial, and no contraction into fused multiply-adds.
 */
#include "kernels.h"

#include <math.h>

/* Sums in eight partials, so that they vectorise without the compiler
 * reassociating one chain; the partials combine in a fixed order. */
#define PARTIALS 8
static double combine(const double *s) {
  return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

typedef struct {
  int64_t rows, cols;
  double eps;
  const char *x, *w, *b, *gy;
  char *y, *mean, *rstd, *dx, *dw, *db;
} norm_job;

#define LAYER_NORM(S, T)                                                       \
  LOOM__ISA_FUNCTION(forward_##S, (void *ctx, int64_t r0, int64_t r1),         \
                     (ctx, r0, r1)) {                                          \
    const norm_job *j = ctx;                                                   \
    const T *w = (const T *)j->w, *b = (const T *)j->b;                        \
    int64_t n = j->cols;                                                       \
    for (int64_t r = r0; r < r1; r++) {                                        \
      const T *x = (const T *)j->x + r * n;                                    \
      T *y = (T *)j->y + r * n;                                                \
      double s[PARTIALS] = {0}, ss[PARTIALS] = {0};                            \
      int64_t i = 0;                                                           \
      for (; i + PARTIALS <= n; i += PARTIALS)                                 \
        for (int p = 0; p < PARTIALS; p++)                                     \
          s[p] += x[i + p];                                                    \
      for (; i < n; i++)                                                       \
        s[i % PARTIALS] += x[i];                                               \
      double mu = combine(s) / (double)n;                                      \
      for (i = 0; i + PARTIALS <= n; i += PARTIALS)                            \
        for (int p = 0; p < PARTIALS; p++)                                     \
          ss[p] += (x[i + p] - mu) * (x[i + p] - mu);                          \
      for (; i < n; i++)                                                       \
        ss[i % PARTIALS] += (x[i] - mu) * (x[i] - mu);                         \
      double rs = 1 / sqrt(combine(ss) / (double)n + j->eps);                  \
      ((T *)j->mean)[r] = (T)mu;                                               \
      ((T *)j->rstd)[r] = (T)rs;                                               \
      T m = (T)mu, k = (T)rs;                                                  \
      if (w && b)                                                              \
        for (i = 0; i < n; i++)                                                \
          y[i] = (x[i] - m) * k * w[i] + b[i];                                 \
      else if (w)                                                              \
        for (i = 0; i < n; i++)                                                \
          y[i] = (x[i] - m) * k * w[i];                                        \
      else                                                                     \
        for (i = 0; i < n; i++)                                                \
          y[i] = (x[i] - m) * k + (b ? b[i] : 0);                              \
    }                                                                          \
  }                                                                            \
                                                                               \
  /* dx = rstd (g - mean(g) - xhat mean(g xhat)), g = gy w */                  \
  LOOM__ISA_FUNCTION(backward_rows_##S, (void *ctx, int64_t r0, int64_t r1),   \
                     (ctx, r0, r1)) {                                          \
    const norm_job *j = ctx;                                                   \
    const T *w = (const T *)j->w;                                              \
    int64_t n = j->cols;                                                       \
    for (int64_t r = r0; r < r1; r++) {                                        \
      const T *x = (const T *)j->x + r * n, *gy = (const T *)j->gy + r * n;    \
      T *dx = (T *)j->dx + r * n;                                              \
      T m = ((const T *)j->mean)[r], k = ((const T *)j->rstd)[r];              \
      double sg[PARTIALS] = {0}, sgx[PARTIALS] = {0};                          \
      int64_t i = 0;                                                           \
      for (; i + PARTIALS <= n; i += PARTIALS)                                 \
        for (int p = 0; p < PARTIALS; p++) {                                   \
          T g = gy[i + p] * (w ? w[i + p] : 1);                                \
          sg[p] += g;                                                          \
          sgx[p] += g * ((x[i + p] - m) * k);                                  \
        }                                                                      \
      for (; i < n; i++) {                                                     \
        T g = gy[i] * (w ? w[i] : 1);                                          \
        sg[i % PARTIALS] += g;                                                 \
        sgx[i % PARTIALS] += g * ((x[i] - m) * k);                             \
      }                                                                        \
      T a = (T)(combine(sg) / (double)n), c = (T)(combine(sgx) / (double)n);   \
      for (i = 0; i < n; i++) {                                                \
        T g = gy[i] * (w ? w[i] : 1);                                          \
        dx[i] = k * (g - a - (x[i] - m) * k * c);                              \
      }                                                                        \
    }                                                                          \
  }                                                                            \
                                                                               \
  /* dw = sum over rows of gy xhat, db = sum of gy, for columns [c0, c1) */    \
  LOOM__ISA_FUNCTION(backward_cols_##S, (void *ctx, int64_t c0, int64_t c1),   \
                     (ctx, c0, c1)) {                                          \
    const norm_job *j = ctx;                                                   \
    enum { CHUNK = 256 };                                                      \
    int64_t n = j->cols;                                                       \
    for (int64_t lo = c0; lo < c1; lo += CHUNK) {                              \
      int64_t len = c1 - lo < CHUNK ? c1 - lo : CHUNK;                         \
      double sw[CHUNK] = {0}, sb[CHUNK] = {0};                                 \
      for (int64_t r = 0; r < j->rows; r++) {                                  \
        const T *x = (const T *)j->x + r * n + lo;                             \
        const T *gy = (const T *)j->gy + r * n + lo;                           \
        T m = ((const T *)j->mean)[r], k = ((const T *)j->rstd)[r];            \
        for (int64_t i = 0; i < len; i++) {                                    \
          sw[i] += gy[i] * ((x[i] - m) * k);                                   \
          sb[i] += gy[i];                                                      \
        }                                                                      \
      }                                                                        \
      for (int64_t i = 0; i < len; i++) {                                      \
        if (j->dw)                                                             \
          ((T *)j->dw)[lo + i] = (T)sw[i];                                     \
        if (j->db)                                                             \
          ((T *)j->db)[lo + i] = (T)sb[i];                                     \
      }                                                                        \
    }                                                                          \
  }

LAYER_NORM(f32, float)
LAYER_NORM(f64, double)

void loom__kernel_layer_norm(loom_dtype dtype, int64_t rows, int64_t cols,
                             const void *x, const void *w, const void *b,
                             double eps, void *y, void *mean, void *rstd) {
  norm_job j = {.rows = rows,
                .cols = cols,
                .eps = eps,
                .x = x,
                .w = w,
                .b = b,
                .y = y,
                .mean = mean,
                .rstd = rstd};
  loom__parallel_for(loom__threads_for(rows * cols * 4), rows,
                     dtype == LOOM_F32 ? forward_f32 : forward_f64, &j);
}

void loom__kernel_layer_norm_grad(loom_dtype dtype, int64_t rows, int64_t cols,
                                  const void *gy, const void *x, const void *w,
                                  const void *mean, const void *rstd, void *dx,
                                  void *dw, void *db) {
  norm_job j = {.rows = rows,
                .cols = cols,
                .x = x,
                .w = w,
                .gy = gy,
                .mean = (char *)mean,
                .rstd = (char *)rstd,
                .dx = dx,
                .dw = dw,
                .db = db};
  int nt = loom__threads_for(rows * cols * 4);
  if (dx)
    loom__parallel_for(
        nt, rows, dtype == LOOM_F32 ? backward_rows_f32 : backward_rows_f64,
        &j);
  if (dw || db)
    loom__parallel_for(
        nt, cols, dtype == LOOM_F32 ? backward_cols_f32 : backward_cols_f64,
        &j);
}
