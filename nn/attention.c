/* Scaled dot-product attention, the attention every other form here is
 * built on, and the masks it takes. */
#include "attention.h"
#include "attention_internal.h"

#include <math.h>

loom_tensor *loom_causal_mask(loom_dtype dtype, int64_t n) {
  if (!loom_dtype_is_float(dtype)) /* -inf became INT64_MIN, 255 or true */
    return LOOM_FAIL(LOOM_ERR_DTYPE,
                     "causal_mask: dtype %s (float32 or float64: the mask "
                     "holds -inf)",
                     loom_dtype_name(dtype));
  loom_tensor *m = loom_zeros(dtype, LOOM_SHAPE(n, n));
  for (int64_t i = 0; m && i < n; i++)
    for (int64_t j = i + 1; j < n; j++)
      loom_set(m, (int64_t[]){i, j}, -INFINITY);
  return m;
}

/* Blocks key j > query i, aligned at the top left (L x S, true = blocked). */
static loom_tensor *causal_bool(int64_t L, int64_t S) {
  loom_tensor *m = loom_zeros(LOOM_BOOL, LOOM_SHAPE(L, S));
  uint8_t *d = loom_data_u8(m);
  for (int64_t i = 0; d && i < L; i++)
    for (int64_t j = i + 1; j < S; j++)
      d[i * S + j] = 1;
  return m;
}

bool loom__is_bool_mask(const loom_tensor *mask) {
  return loom_dtype_of(mask) == LOOM_BOOL || loom_dtype_of(mask) == LOOM_U8;
}

/* An integer mask could be meant either way (0/1 as blocked, or as
 * scores to add): refused, as PyTorch does. */
static bool integer_mask(const loom_tensor *mask) {
  if (loom__is_bool_mask(mask) || loom_dtype_is_float(loom_dtype_of(mask)))
    return false;
  loom_set_error(LOOM_ERR_DTYPE,
                 "attention: a %s mask (masks are bool or uint8, true = "
                 "blocked, or float, added to the scores)",
                 loom_dtype_name(loom_dtype_of(mask)));
  return true;
}

const loom_tensor *loom__additive_mask(const loom_tensor *mask,
                                       loom_dtype dtype) {
  if (!mask || integer_mask(mask))
    return NULL;
  if (!loom__is_bool_mask(mask))
    return mask;
  return loom_masked_fill(loom_zeros(dtype, loom_ndim(mask), loom_shape(mask)),
                          mask, -INFINITY);
}

loom_tensor *loom__apply_mask(loom_tensor *scores, const loom_tensor *mask) {
  if (!mask)
    return scores;
  if (integer_mask(mask))
    return NULL;
  if (loom__is_bool_mask(mask))
    return loom_masked_fill(scores, mask, -INFINITY);
  return loom_add(scores, mask);
}

/* Whether loom_fused_attention computes this call: one float dtype, equal
 * batch dims, dropout in [0, 1), and a mask that is bool or a float one
 * needing no gradient (the composition below differentiates a float
 * mask). */
static bool fusable(const loom_tensor *q, const loom_tensor *k,
                    const loom_tensor *v, const loom_tensor *mask,
                    double dropout) {
  int nd = loom_ndim(q);
  loom_dtype dt = loom_dtype_of(q);
  if (!(dropout >= 0 && dropout < 1) || !loom_dtype_is_float(dt) ||
      loom_dtype_of(k) != dt || loom_dtype_of(v) != dt || loom_ndim(k) != nd ||
      loom_ndim(v) != nd)
    return false;
  for (int d = 0; d < nd - 2; d++)
    if (loom_size(k, d) != loom_size(q, d) ||
        loom_size(v, d) != loom_size(q, d))
      return false;
  if (!mask || loom__is_bool_mask(mask))
    return !mask || loom_ndim(mask) <= nd;
  return loom_dtype_of(mask) == dt && loom_ndim(mask) <= nd &&
         !loom_requires_grad(mask);
}

loom_tensor *
loom_scaled_dot_product_attention(const loom_tensor *q, const loom_tensor *k,
                                  const loom_tensor *v, const loom_tensor *mask,
                                  bool causal, double dropout, loom_rng *g,
                                  loom_tensor **weights) {
  if (!q || !k || !v) { /* keeps the error that made an input NULL */
    loom_set_error(LOOM_ERR_ARGUMENT, "attention: NULL q, k or v");
    return NULL;
  }
  int qd = loom_ndim(q), kd = loom_ndim(k), vd = loom_ndim(v);
  if (qd < 2 || kd < 2 || vd < 2 || loom_size(q, -1) != loom_size(k, -1) ||
      loom_size(k, -2) != loom_size(v, -2)) {
    char a[64], b[64], c[64];
    loom_set_error(LOOM_ERR_SHAPE,
                   "attention: q %s, k %s, v %s must be "
                   "(..., L, E), (..., S, E), (..., S, Ev)",
                   loom_shape_str(q, a, sizeof a),
                   loom_shape_str(k, b, sizeof b),
                   loom_shape_str(v, c, sizeof c));
    return NULL;
  }
  if (!(dropout >= 0 && dropout <= 1)) {
    loom_set_error(LOOM_ERR_ARGUMENT, "attention: dropout %g (0 to 1)",
                   dropout);
    return NULL;
  }
  int64_t E = loom_size(q, -1), L = loom_size(q, -2), S = loom_size(k, -2);
  if (!weights && fusable(q, k, v, mask, dropout))
    return loom_fused_attention(
        q, k, v, mask ? loom__additive_mask(mask, loom_dtype_of(q)) : NULL,
        causal, 1 / sqrt((double)E), dropout, g);
  /* q is scaled before the product, as PyTorch does. */
  loom_tensor *scores = loom_matmul(loom_mul_scalar(q, 1 / sqrt((double)E)),
                                    loom_transpose(k, -2, -1));
  scores = loom__apply_mask(scores, mask);
  if (causal)
    scores = loom_masked_fill(scores, causal_bool(L, S), -INFINITY);
  loom_tensor *w = loom_softmax(scores, -1);
  if (dropout > 0)
    w = loom_dropout(w, dropout, true, g);
  if (weights)
    *weights = w;
  return loom_matmul(w, v);
}
