/* Initialisers with torch.nn.init's formulas (fans, gains, bounds). */
#include "nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double loom_init_gain(const char *nl, double param) {
  if (!nl || !strcmp(nl, "linear") || !strcmp(nl, "conv2d") ||
      !strcmp(nl, "sigmoid") || !strcmp(nl, "conv1d") || !strcmp(nl, "conv3d"))
    return 1;
  if (!strcmp(nl, "tanh"))
    return 5.0 / 3;
  if (!strcmp(nl, "relu"))
    return sqrt(2.0);
  if (!strcmp(nl, "leaky_relu"))
    return sqrt(2.0 / (1 + param * param));
  if (!strcmp(nl, "selu"))
    return 3.0 / 4;
  loom_set_error(LOOM_ERR_ARGUMENT, "init_gain: unknown nonlinearity '%s'", nl);
  return NAN;
}

/* A mode outside the enum was taken as LOOM_FAN_OUT: a mistake, refused. */
static bool fan_mode_ok(loom_fan_mode mode, const char *op) {
  if (mode == LOOM_FAN_IN || mode == LOOM_FAN_OUT)
    return true;
  loom_set_error(LOOM_ERR_ARGUMENT,
                 "%s: fan mode %d is not a loom_fan_mode (LOOM_FAN_IN or "
                 "LOOM_FAN_OUT: 0 or 1)",
                 op, (int)mode);
  return false;
}

int64_t loom_init_fan(const loom_tensor *t, loom_fan_mode mode) {
  if (!t)
    return loom_null_argument("init_fan"), -1;
  if (!fan_mode_ok(mode, "init_fan"))
    return -1;
  if (loom_ndim(t) < 2) {
    loom_set_error(LOOM_ERR_SHAPE, "init: fan needs a tensor of 2+ dims");
    return -1;
  }
  const int64_t *shape = loom_shape(t);
  int64_t receptive = 1;
  for (int d = 2; d < loom_ndim(t); d++)
    receptive *= shape[d];
  return (mode == LOOM_FAN_IN ? shape[1] : shape[0]) * receptive;
}

/* Copies values into t in place (t keeps its storage and identity). */
static int assign(loom_tensor *t, loom_tensor *values) {
  if (!t || !values)
    return -1;
  loom_no_grad_begin();
  loom_tensor *r = loom_copy_(t, values);
  loom_no_grad_end();
  return r ? 0 : -1;
}

int loom_init_uniform_(loom_tensor *t, double lo, double hi, loom_rng *g) {
  if (!t)
    return loom_null_argument("init_uniform_"), -1;
  loom_scope *s = loom_scope_begin();
  int rc = assign(
      t, loom_rand(g, loom_dtype_of(t), lo, hi, loom_ndim(t), loom_shape(t)));
  loom_scope_end(s);
  return rc;
}

int loom_init_normal_(loom_tensor *t, double mean, double std, loom_rng *g) {
  if (!t)
    return loom_null_argument("init_normal_"), -1;
  loom_scope *s = loom_scope_begin();
  int rc = assign(t, loom_randn(g, loom_dtype_of(t), mean, std, loom_ndim(t),
                                loom_shape(t)));
  loom_scope_end(s);
  return rc;
}

int loom_init_constant_(loom_tensor *t, double value) {
  if (!t)
    return loom_null_argument("init_constant_"), -1;
  loom_no_grad_begin();
  loom_tensor *r = loom_fill_(t, value);
  loom_no_grad_end();
  return r ? 0 : -1;
}

/* A tensor of no elements needs no values (a layer of no inputs, say),
 * and its fan of 0 no bound: as torch, nothing to do. */
static bool nothing_to_init(const loom_tensor *t) {
  return t && loom_numel(t) == 0 && loom_ndim(t) >= 2;
}

static bool finite_gain(double gain, const char *op) {
  if (isfinite(gain))
    return true;
  loom_set_error(LOOM_ERR_ARGUMENT, "%s: gain %g is not finite", op, gain);
  return false;
}

int loom_init_xavier_uniform_(loom_tensor *t, double gain, loom_rng *g) {
  int64_t in = loom_init_fan(t, LOOM_FAN_IN),
          out = loom_init_fan(t, LOOM_FAN_OUT);
  if (in < 0 || !finite_gain(gain, "init_xavier_uniform_"))
    return -1;
  if (nothing_to_init(t))
    return 0;
  double a = gain * sqrt(6.0 / (double)(in + out));
  return loom_init_uniform_(t, -a, a, g);
}

int loom_init_xavier_normal_(loom_tensor *t, double gain, loom_rng *g) {
  int64_t in = loom_init_fan(t, LOOM_FAN_IN),
          out = loom_init_fan(t, LOOM_FAN_OUT);
  if (in < 0 || !finite_gain(gain, "init_xavier_normal_"))
    return -1;
  if (nothing_to_init(t))
    return 0;
  return loom_init_normal_(t, 0, gain * sqrt(2.0 / (double)(in + out)), g);
}

static double kaiming_std(loom_tensor *t, double a, loom_fan_mode mode,
                          const char *nl, const char *op) {
  int64_t fan = loom_init_fan(t, mode);
  double gain = loom_init_gain(nl ? nl : "leaky_relu", a);
  /* an unknown nonlinearity has said so; a NaN slope had failed silently */
  if (isnan(gain))
    loom_set_error(LOOM_ERR_ARGUMENT, "%s: gain nan (negative slope a = %g)",
                   op, a);
  if (fan <= 0 || isnan(gain))
    return NAN;
  return gain / sqrt((double)fan);
}

int loom_init_kaiming_uniform_(loom_tensor *t, double a, loom_fan_mode mode,
                               const char *nl, loom_rng *g) {
  if (!fan_mode_ok(mode, "init_kaiming_uniform_"))
    return -1;
  if (nothing_to_init(t))
    return 0;
  double std = kaiming_std(t, a, mode, nl, "init_kaiming_uniform_");
  if (isnan(std))
    return -1;
  return loom_init_uniform_(t, -sqrt(3.0) * std, sqrt(3.0) * std, g);
}

int loom_init_kaiming_normal_(loom_tensor *t, double a, loom_fan_mode mode,
                              const char *nl, loom_rng *g) {
  if (!fan_mode_ok(mode, "init_kaiming_normal_"))
    return -1;
  if (nothing_to_init(t))
    return 0;
  double std = kaiming_std(t, a, mode, nl, "init_kaiming_normal_");
  if (isnan(std))
    return -1;
  return loom_init_normal_(t, 0, std, g);
}

/* Householder QR of a (m x n, m >= n, row-major, overwritten): q receives
 * the first n columns of Q (m x n) with columns signed so diag(R) > 0. */
static void thin_qr(double *a, int64_t m, int64_t n, double *q) {
  double *v = calloc((size_t)m, sizeof *v),
         *rdiag = calloc((size_t)n, sizeof *rdiag);
  double *vs = calloc((size_t)(m * n), sizeof *vs); /* reflectors */
  if (!v || !rdiag || !vs)
    goto done;
  for (int64_t k = 0; k < n; k++) {
    double norm = 0;
    for (int64_t i = k; i < m; i++)
      norm += a[i * n + k] * a[i * n + k];
    norm = sqrt(norm);
    double alpha = a[k * n + k] > 0 ? -norm : norm;
    for (int64_t i = 0; i < m; i++)
      v[i] = i < k ? 0 : a[i * n + k];
    v[k] -= alpha;
    double vn = 0;
    for (int64_t i = k; i < m; i++)
      vn += v[i] * v[i];
    if (vn > 0)
      for (int64_t j = k; j < n; j++) {
        double s = 0;
        for (int64_t i = k; i < m; i++)
          s += v[i] * a[i * n + j];
        s = 2 * s / vn;
        for (int64_t i = k; i < m; i++)
          a[i * n + j] -= s * v[i];
      }
    rdiag[k] = a[k * n + k];
    for (int64_t i = 0; i < m; i++)
      vs[i * n + k] = vn > 0 ? v[i] / sqrt(vn) : 0;
  }
  /* Q's first n columns: apply the reflectors to the identity's columns. */
  for (int64_t j = 0; j < n; j++) {
    for (int64_t i = 0; i < m; i++)
      v[i] = i == j;
    for (int64_t k = n - 1; k >= 0; k--) {
      double s = 0;
      for (int64_t i = 0; i < m; i++)
        s += vs[i * n + k] * v[i];
      for (int64_t i = 0; i < m; i++)
        v[i] -= 2 * s * vs[i * n + k];
    }
    double sign = rdiag[j] < 0 ? -1 : 1; /* torch: q * sign(diag(r)) */
    for (int64_t i = 0; i < m; i++)
      q[i * n + j] = v[i] * sign;
  }
done:
  free(v);
  free(rdiag);
  free(vs);
}

int loom_init_orthogonal_(loom_tensor *t, double gain, loom_rng *g) {
  if (!t)
    return loom_null_argument("init_orthogonal_"), -1;
  if (!finite_gain(gain, "init_orthogonal_"))
    return -1;
  if (loom_ndim(t) < 2)
    return loom_set_error(LOOM_ERR_SHAPE,
                          "init_orthogonal_: needs 2+ dims, "
                          "got %s",
                          loom_shape_text(t)),
           -1;
  int64_t rows = loom_shape(t)[0], cols = loom_numel(t) / (rows ? rows : 1);
  bool wide = rows < cols;
  int64_t m = wide ? cols : rows, n = wide ? rows : cols;
  double *a = malloc((size_t)(m * n) * sizeof *a + 8);
  double *q = calloc((size_t)(m * n) + 1, sizeof *q);
  int rc = -1;
  if (!a || !q)
    loom_set_error(LOOM_ERR_MEMORY, "init_orthogonal_: out of memory");
  if (a && q) {
    for (int64_t i = 0; i < rows * cols;
         i++) /* flattened = randn(rows, cols) */
      a[i] = loom_rng_normal(g);
    if (wide) { /* QR of the transpose */
      double *at = malloc((size_t)(m * n) * sizeof *at + 8);
      if (at) {
        for (int64_t i = 0; i < rows; i++)
          for (int64_t j = 0; j < cols; j++)
            at[j * rows + i] = a[i * cols + j];
        memcpy(a, at, (size_t)(m * n) * sizeof *a);
        free(at);
      }
    }
    thin_qr(a, m, n, q);
    loom_scope *s = loom_scope_begin();
    loom_tensor *qt = loom_from_array(LOOM_F64, q, LOOM_SHAPE(m, n));
    if (wide)
      qt = loom_t(qt);
    rc = assign(t, loom_reshape(loom_mul_scalar(qt, gain), loom_ndim(t),
                                loom_shape(t)));
    loom_scope_end(s);
  }
  free(a);
  free(q);
  return rc;
}

int loom_init_eye_(loom_tensor *t) {
  if (!t)
    return loom_null_argument("init_eye_"), -1;
  if (loom_ndim(t) != 2)
    return loom_set_error(LOOM_ERR_SHAPE, "init_eye_: needs 2 dims, got %s",
                          loom_shape_text(t)),
           -1;
  loom_scope *s = loom_scope_begin();
  int rc =
      assign(t, loom_eye(loom_dtype_of(t), loom_shape(t)[0], loom_shape(t)[1]));
  loom_scope_end(s);
  return rc;
}
