/* Batch normalisation of contiguous (N, C, L) data per channel, forward
 * and backward, fused.
 *
 * Why fused: composed from ops a BatchNorm is a mean, a variance, a
 * subtraction, a square root, a division, a product and a sum, each a pass
 * over the activations with a temporary as large as them, and backward
 * more; in a small CNN those passes cost as much as the convolutions. Here
 * forward is two passes for the statistics and one for the output, and
 * backward two.
 *
 * With relu set, the output is relu(batch_norm(x)) and backward takes the
 * relu's gradient from that output (y > 0 exactly where the normalised
 * value is), so a conv-batchnorm-relu block neither writes nor keeps the
 * normalised activations: one pass and one tensor as large as them fewer
 * each way. The values are the composition's, bit for bit.
 *
 * The loops are compiled per instruction set (LOOM__ISA_FUNCTION): the
 * double sums in eight partials fill an AVX-512 register, where the
 * baseline build ran them two at a time. Without contraction every level
 * computes the same bits.
 *
 * Determinism: each channel is done by one thread, its sums accumulated in
 * double in a fixed order, whatever the thread count.
 */
#include "kernels.h"

#include <math.h>
#include <stdlib.h>

/* Sums in eight partials so that they vectorise, combined in a fixed
 * order. */
#define PARTIALS 8
static double combine(const double *s) {
  return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

typedef struct {
  int64_t n, c, l;
  double eps;
  bool train, relu;
  const char *x, *w, *b, *gy, *ry; /* ry: the relu's output (backward) */
  char *y, *mean, *var, *rstd, *dx, *dw, *db;
  bool failed; /* out of memory (backward with relu) */
} bn_job;

#define BATCH_NORM(S, T)                                                       \
  /* sum of (x - shift) over channel ch, and of its square */                  \
  static inline __attribute__((always_inline)) void sums_##S(                  \
      const bn_job *j, int64_t ch, double shift, double *s1, double *s2) {     \
    double a[PARTIALS] = {0}, q[PARTIALS] = {0};                               \
    for (int64_t n = 0; n < j->n; n++) {                                       \
      const T *x = (const T *)j->x + (n * j->c + ch) * j->l;                   \
      int64_t i = 0;                                                           \
      for (; i + PARTIALS <= j->l; i += PARTIALS)                              \
        for (int p = 0; p < PARTIALS; p++) {                                   \
          double d = x[i + p] - shift;                                         \
          a[p] += d;                                                           \
          q[p] += d * d;                                                       \
        }                                                                      \
      for (; i < j->l; i++) {                                                  \
        double d = x[i] - shift;                                               \
        a[i % PARTIALS] += d;                                                  \
        q[i % PARTIALS] += d * d;                                              \
      }                                                                        \
    }                                                                          \
    *s1 = combine(a);                                                          \
    *s2 = combine(q);                                                          \
  }                                                                            \
                                                                               \
  LOOM__ISA_FUNCTION(forward_##S, (void *ctx, int64_t c0, int64_t c1),         \
                     (ctx, c0, c1)) {                                          \
    const bn_job *j = ctx;                                                     \
    double count = (double)j->n * (double)j->l;                                \
    for (int64_t ch = c0; ch < c1; ch++) {                                     \
      double mu, var;                                                          \
      if (j->train) { /* the mean, then squares about it */                    \
        double s1, s2;                                                         \
        sums_##S(j, ch, 0, &s1, &s2);                                          \
        mu = s1 / count;                                                       \
        sums_##S(j, ch, mu, &s1, &s2);                                         \
        var = s2 / count;                                                      \
        ((T *)j->mean)[ch] = (T)mu;                                            \
        ((T *)j->var)[ch] = (T)var;                                            \
      } else {                                                                 \
        mu = ((const T *)j->mean)[ch];                                         \
        var = ((const T *)j->var)[ch];                                         \
      }                                                                        \
      double rs = 1 / sqrt(var + j->eps);                                      \
      ((T *)j->rstd)[ch] = (T)rs;                                              \
      T scale = (T)(rs * (j->w ? ((const T *)j->w)[ch] : 1));                  \
      T shift = (T)((j->b ? ((const T *)j->b)[ch] : 0) - mu * (double)scale);  \
      for (int64_t n = 0; n < j->n; n++) {                                     \
        const T *x = (const T *)j->x + (n * j->c + ch) * j->l;                 \
        T *y = (T *)j->y + (n * j->c + ch) * j->l;                             \
        if (j->relu)                                                           \
          for (int64_t i = 0; i < j->l; i++) {                                 \
            T v = x[i] * scale + shift;                                        \
            y[i] = v < 0 ? 0 : v; /* loom_relu's formula */                    \
          }                                                                    \
        else                                                                   \
          for (int64_t i = 0; i < j->l; i++)                                   \
            y[i] = x[i] * scale + shift;                                       \
      }                                                                        \
    }                                                                          \
  }                                                                            \
                                                                               \
  /* the output gradient of sample n, channel ch: gy, or with relu 0 where    \
   * the output is <= 0 and gy elsewhere, NaN too (loom_relu's), in buf */     \
  static inline __attribute__((always_inline))                                 \
  const T *grad_row_##S(const bn_job *j, int64_t n, int64_t ch, T *buf) {      \
    const T *gy = (const T *)j->gy + (n * j->c + ch) * j->l;                   \
    if (!j->relu)                                                              \
      return gy;                                                               \
    const T *y = (const T *)j->ry + (n * j->c + ch) * j->l;                    \
    for (int64_t i = 0; i < j->l; i++) { /* both loaded: no branch */          \
      T g = gy[i];                                                             \
      buf[i] = y[i] <= 0 ? 0 : g;                                              \
    }                                                                          \
    return buf;                                                                \
  }                                                                            \
                                                                               \
  /* sum of gy and of gy * (x - mean) over channel ch */                       \
  static inline __attribute__((always_inline)) void grad_sums_##S(             \
      const bn_job *j, int64_t ch, T mu, double *sg, double *sgx, T *buf) {    \
    double a[PARTIALS] = {0}, q[PARTIALS] = {0};                               \
    for (int64_t n = 0; n < j->n; n++) {                                       \
      const T *x = (const T *)j->x + (n * j->c + ch) * j->l;                   \
      const T *gy = grad_row_##S(j, n, ch, buf);                               \
      int64_t i = 0;                                                           \
      for (; i + PARTIALS <= j->l; i += PARTIALS)                              \
        for (int p = 0; p < PARTIALS; p++) {                                   \
          a[p] += gy[i + p];                                                   \
          q[p] += (double)gy[i + p] * (x[i + p] - mu);                         \
        }                                                                      \
      for (; i < j->l; i++) {                                                  \
        a[i % PARTIALS] += gy[i];                                              \
        q[i % PARTIALS] += (double)gy[i] * (x[i] - mu);                        \
      }                                                                        \
    }                                                                          \
    *sg = combine(a);                                                          \
    *sgx = combine(q);                                                         \
  }                                                                            \
                                                                               \
  /* training: dx = w rstd (gy - mean(gy) - xhat mean(gy xhat)); evaluation    \
   * (fixed statistics): dx = w rstd gy; dw = sum gy xhat, db = sum gy */      \
  LOOM__ISA_FUNCTION(backward_##S, (void *ctx, int64_t c0, int64_t c1),        \
                     (ctx, c0, c1)) {                                          \
    bn_job *j = ctx;                                                           \
    double count = (double)j->n * (double)j->l;                                \
    T *buf = NULL; /* one row of masked gradient (relu) */                     \
    if (j->relu && !(buf = malloc((size_t)j->l * sizeof(T)))) {                \
      j->failed = true;                                                        \
      return;                                                                  \
    }                                                                          \
    for (int64_t ch = c0; ch < c1; ch++) {                                     \
      T mu = ((const T *)j->mean)[ch], rs = ((const T *)j->rstd)[ch];          \
      double sg, sgx;                                                          \
      grad_sums_##S(j, ch, mu, &sg, &sgx, buf);                                \
      if (j->dw)                                                               \
        ((T *)j->dw)[ch] = (T)(sgx * rs);                                      \
      if (j->db)                                                               \
        ((T *)j->db)[ch] = (T)sg;                                              \
      if (!j->dx)                                                              \
        continue;                                                              \
      double w = j->w ? ((const T *)j->w)[ch] : 1;                             \
      /* dx = a gy + b x + c, the per-channel constants folded */              \
      double a = w * rs, b = 0, c = 0;                                         \
      if (j->train) {                                                          \
        double k = sgx * rs * rs / count; /* mean(gy xhat) / ... */            \
        b = -a * k;                                                            \
        c = -a * (sg / count) + a * k * mu;                                    \
      }                                                                        \
      T A = (T)a, B = (T)b, C = (T)c;                                          \
      for (int64_t n = 0; n < j->n; n++) {                                     \
        const T *x = (const T *)j->x + (n * j->c + ch) * j->l;                 \
        const T *gy = grad_row_##S(j, n, ch, buf);                             \
        T *dx = (T *)j->dx + (n * j->c + ch) * j->l;                           \
        if (j->train)                                                          \
          for (int64_t i = 0; i < j->l; i++)                                   \
            dx[i] = A * gy[i] + B * x[i] + C;                                  \
        else /* no x term: 0 x would make a NaN or inf input's gradient NaN */ \
          for (int64_t i = 0; i < j->l; i++)                                   \
            dx[i] = A * gy[i];                                                 \
      }                                                                        \
    }                                                                          \
    free(buf);                                                                 \
  }

BATCH_NORM(f32, float)
BATCH_NORM(f64, double)

void loom__kernel_batch_norm(loom_dtype dtype, int64_t n, int64_t c, int64_t l,
                             const void *x, const void *w, const void *b,
                             double eps, bool train, bool relu, void *mean,
                             void *var, void *rstd, void *y) {
  bn_job j = {.n = n,
              .c = c,
              .l = l,
              .eps = eps,
              .train = train,
              .relu = relu,
              .x = x,
              .w = w,
              .b = b,
              .y = y,
              .mean = mean,
              .var = var,
              .rstd = rstd};
  int nt = loom__threads_for(n * c * l * 3);
  loom__parallel_for(nt, c, dtype == LOOM_F32 ? forward_f32 : forward_f64, &j);
}

int loom__kernel_batch_norm_grad(loom_dtype dtype, int64_t n, int64_t c,
                                 int64_t l, const void *gy, const void *x,
                                 const void *w, const void *mean,
                                 const void *rstd, bool train,
                                 const void *relu_y, void *dx, void *dw,
                                 void *db) {
  bn_job j = {.n = n,
              .c = c,
              .l = l,
              .train = train,
              .relu = relu_y != NULL,
              .ry = relu_y,
              .x = x,
              .w = w,
              .gy = gy,
              .mean = (char *)mean,
              .rstd = (char *)rstd,
              .dx = dx,
              .dw = dw,
              .db = db};
  int nt = loom__threads_for(n * c * l * 3);
  loom__parallel_for(nt, c, dtype == LOOM_F32 ? backward_f32 : backward_f64,
                     &j);
  if (j.failed) {
    loom_set_error(LOOM_ERR_MEMORY, "batch_norm backward: out of memory");
    return -1;
  }
  return 0;
}
