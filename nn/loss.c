/* Loss functions with PyTorch's conventions (reductions, ignore_index,
 * label smoothing, class weights), composed from differentiable ops; cross
 * entropy of (N, C) logits without class weights is one fused op. */
#include "nn.h"

#include <math.h>

loom_cross_entropy_opts loom_cross_entropy_defaults(void) {
  return (loom_cross_entropy_opts){.reduction = LOOM_MEAN,
                                   .ignore_index = -100};
}

static loom_tensor *reduce(loom_tensor *loss, loom_reduction r) {
  switch (r) {
  case LOOM_SUM:
    return loom_sum_all(loss);
  case LOOM_NONE:
    return loss;
  default:
    return loom_mean_all(loss);
  }
}

/* A reduction outside the enum was taken as the mean: a mistake, so it is
 * refused. */
static bool reduction_ok(loom_reduction r, const char *op) {
  if ((int)r >= LOOM_MEAN && (int)r <= LOOM_NONE)
    return true;
  loom_set_error(LOOM_ERR_ARGUMENT,
                 "%s: reduction %d is not a loom_reduction (LOOM_MEAN, "
                 "LOOM_SUM or LOOM_NONE: 0 to 2)",
                 op, (int)r);
  return false;
}

static bool same_shape(const loom_tensor *a, const loom_tensor *b,
                       const char *op) {
  if (!a || !b)
    return loom_null_argument(op), false;
  if (!loom_same_shape(a, b)) {
    char s1[96], s2[96];
    loom_set_error(LOOM_ERR_SHAPE, "%s: input %s and target %s differ", op,
                   loom_shape_str(a, s1, sizeof s1),
                   loom_shape_str(b, s2, sizeof s2));
    return false;
  }
  return true;
}

/* PyTorch's reduced NLL in one element type: the weighted losses and the
 * weights of the kept targets summed in the element type, in its order
 * (torch 1.13's cascade: each level takes 2^power terms before passing its
 * sum up, counted by the flat target index and only at kept targets), so
 * that sums and means match it to the bit, and a mean over weights
 * summing to 0 is +-inf or NaN as its S / 0 is. */
#define NLL_CASCADE(T)                                                         \
  static void nll_cascade_##T(const T *lp, const int64_t *tgt, const T *w,     \
                              const uint8_t *keep, int64_t n, int64_t classes, \
                              int64_t inner, T *loss, T *weight_sum) {         \
    enum { LEVELS = 8 };                                                       \
    T ls[LEVELS] = {0}, ws[LEVELS] = {0};                                      \
    int64_t bits = 0;                                                          \
    while (bits < 63 && ((int64_t)1 << bits) < n)                              \
      bits++;                                                                  \
    int64_t power = bits / LEVELS > 4 ? bits / LEVELS : 4;                     \
    int64_t mask = ((int64_t)1 << power) - 1;                                  \
    for (int64_t i = 0; i < n; i++) {                                          \
      if (!keep[i])                                                            \
        continue;                                                              \
      int64_t b = i / inner, e = i % inner;                                    \
      ls[0] -= lp[(b * classes + tgt[i]) * inner + e] * w[i];                  \
      ws[0] += w[i];                                                           \
      for (int j = 0; j + 1 < LEVELS; j++) {                                   \
        if (i & (mask << (j * power)))                                         \
          break;                                                               \
        ls[j + 1] += ls[j];                                                    \
        ws[j + 1] += ws[j];                                                    \
        ls[j] = ws[j] = 0;                                                     \
      }                                                                        \
    }                                                                          \
    T l = 0, s = 0;                                                            \
    for (int j = 0; j < LEVELS; j++) {                                         \
      l += ls[j];                                                              \
      s += ws[j];                                                              \
    }                                                                          \
    *loss = l;                                                                 \
    *weight_sum = s;                                                           \
  }
NLL_CASCADE(float)
NLL_CASCADE(double)

/* The NLL as a function of its own, PyTorch's formulas in both directions
 * (composed of a gather, products and a division, a zero weight sum made
 * inf - inf or 0 x inf somewhere and the mean NaN where torch's is +-inf,
 * and scatter-adding into zeros turned torch's -0 gradients into +0).
 * Inputs: log-probabilities (N, C, d...), targets (N, d...) with ignored
 * ones at 0, their weights (0 where ignored) and the kept mask; `user`
 * points at the reduction. Outputs the loss and, for mean and sum, the
 * weight sum (0-dim). */
static int nll_forward(loom_function_ctx *c, loom_tensor *const *in, int n_in,
                       loom_tensor **out) {
  (void)n_in;
  loom_reduction r = *(const loom_reduction *)loom_function_user(c);
  loom_dtype dt = loom_dtype_of(in[0]);
  const loom_tensor *lp = loom_contiguous(in[0]), *t = loom_contiguous(in[1]),
                    *w = loom_contiguous(in[2]), *k = loom_contiguous(in[3]);
  if (!lp || !t || !w || !k)
    return -1;
  int64_t n = loom_numel(t), classes = loom_shape(lp)[1];
  int64_t inner = loom_shape(lp)[0] ? n / loom_shape(lp)[0] : 1;
  const int64_t *tv = loom_data_i64(t);
  const uint8_t *kv = loom_data_u8(k);
  if (r == LOOM_NONE) {
    /* -x w per kept target, +0 (not -(x 0)) per ignored one */
    out[0] = loom_zeros(dt, loom_ndim(t), loom_shape(t));
    if (!out[0])
      return -1;
    for (int64_t i = 0; i < n; i++) {
      if (!kv[i])
        continue;
      int64_t at = ((i / inner) * classes + tv[i]) * inner + i % inner;
      if (dt == LOOM_F32)
        loom_data_f32(out[0])[i] = -loom_data_f32(lp)[at] * loom_data_f32(w)[i];
      else
        loom_data_f64(out[0])[i] = -loom_data_f64(lp)[at] * loom_data_f64(w)[i];
    }
    out[1] = loom_scalar(dt, 0); /* unused */
  } else {
    double loss, sum;
    if (dt == LOOM_F32) {
      float l, s;
      nll_cascade_float(loom_data_f32(lp), tv, loom_data_f32(w), kv, n, classes,
                        inner, &l, &s);
      loss = r == LOOM_MEAN ? (double)(l / s) : l;
      sum = s;
    } else {
      nll_cascade_double(loom_data_f64(lp), tv, loom_data_f64(w), kv, n,
                         classes, inner, &loss, &sum);
      loss = r == LOOM_MEAN ? loss / sum : loss;
    }
    out[0] = loom_scalar(dt, loss);
    out[1] = loom_scalar(dt, sum);
  }
  if (!out[0] || !out[1])
    return -1;
  for (int i = 0; i < 4; i++)
    loom_function_save(c, in[i]);
  loom_function_save(c, out[0]);
  loom_function_save(c, out[1]);
  return 0;
}

static int nll_backward(loom_function_ctx *c, loom_tensor *const *g,
                        loom_tensor **gin) {
  loom_reduction r = *(const loom_reduction *)loom_function_user(c);
  const loom_tensor *lp = loom_function_saved(c, 0),
                    *t = loom_function_saved(c, 1),
                    *w = loom_function_saved(c, 2),
                    *keep = loom_function_saved(c, 3),
                    *loss = loom_function_saved(c, 4),
                    *ws = loom_function_saved(c, 5);
  loom_tensor *ignored = loom_logical_not(keep);
  /* torch: w (-(g / W)) for a mean, w (-g) for a sum, -w g for none, and 0
   * (never w times an infinite g / W) for ignored targets */
  loom_tensor *scale = r == LOOM_NONE  ? g[0]
                       : r == LOOM_SUM ? loom_neg(g[0])
                                       : loom_neg(loom_div(g[0], ws));
  if (loom_function_needs_grad(c, 0)) {
    loom_tensor *coef =
        r == LOOM_NONE ? loom_mul(loom_neg(w), scale) : loom_mul(w, scale);
    coef = loom_masked_fill(coef, ignored, 0);
    /* Written where the target's class is, not added to zeros: 0 + -0 is
     * +0, and torch's gradient of a zero weight is -0. */
    int64_t shape[LOOM_MAX_DIMS];
    for (int d = 0; d < loom_ndim(lp); d++)
      shape[d] = d == 1 ? -1 : 1;
    loom_tensor *classes =
        loom_reshape(loom_arange(LOOM_I64, 0, (double)loom_shape(lp)[1], 1),
                     loom_ndim(lp), shape);
    loom_tensor *hit = loom_eq(loom_unsqueeze(t, 1), classes);
    if (!(gin[0] = loom_where(hit, loom_unsqueeze(coef, 1),
                              loom_scalar(loom_dtype_of(lp), 0))))
      return -1;
  }
  if (loom_function_needs_grad(c, 2)) {
    /* d/dw of -x w, of its sum, and of the mean (-x - mean) / W */
    loom_tensor *x =
        loom_neg(loom_squeeze(loom_gather(lp, 1, loom_unsqueeze(t, 1)), 1));
    loom_tensor *d = r == LOOM_MEAN
                         ? loom_mul(g[0], loom_div(loom_sub(x, loss), ws))
                         : loom_mul(x, g[0]);
    /* and of the weight sum, output 1, which callers (label smoothing) and
     * second derivatives (ws read as that output) go on through */
    if (r != LOOM_NONE)
      d = loom_add(d, g[1]);
    if (!(gin[2] = loom_masked_fill(d, ignored, 0)))
      return -1;
  }
  return 0;
}

static const loom_function nll_function = {"nll_loss", 4, 2, nll_forward,
                                           nll_backward};

/* Class-index losses on log-probabilities (N, C, d...) with targets
 * (N, d...). Returns the reduced NLL; *weight_sum receives the summed
 * weights of non-ignored targets (the mean's denominator) and *valid the
 * mask of non-ignored targets (both scope-owned). */
static loom_tensor *nll(const loom_tensor *logp, const loom_tensor *target,
                        const loom_cross_entropy_opts *o, const char *op,
                        loom_tensor **weight_sum, loom_tensor **valid) {
  static const loom_reduction reductions[] = {LOOM_MEAN, LOOM_SUM, LOOM_NONE};
  if (loom_ndim(logp) < 2 || loom_ndim(target) != loom_ndim(logp) - 1 ||
      loom_shape(target)[0] != loom_shape(logp)[0])
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "%s: logits %s and class targets %s "
                     "(expected (N, C, ...) and (N, ...))",
                     op, loom_shape_text(logp), loom_shape_text(target));
  for (int d = 1; d < loom_ndim(target); d++)
    if (loom_shape(target)[d] != loom_shape(logp)[d + 1])
      return LOOM_FAIL(LOOM_ERR_SHAPE, "%s: logits %s and targets %s", op,
                       loom_shape_text(logp), loom_shape_text(target));
  int64_t classes = loom_shape(logp)[1];
  if (o->weight &&
      (loom_ndim(o->weight) != 1 || loom_shape(o->weight)[0] != classes))
    return LOOM_FAIL(LOOM_ERR_SHAPE, "%s: weight %s for %lld classes", op,
                     loom_shape_text(o->weight), (long long)classes);
  loom_tensor *keep = loom_ne_scalar(target, (double)o->ignore_index);
  /* Ignored targets point at class 0 for the gather, then count nothing. */
  loom_tensor *safe = loom_masked_fill(target, loom_logical_not(keep), 0);
  if (!safe)
    return NULL;
  const int64_t *tv = loom_data_i64(loom_contiguous(safe));
  for (int64_t i = 0; tv && i < loom_numel(safe); i++)
    if (tv[i] < 0 || tv[i] >= classes)
      return LOOM_FAIL(LOOM_ERR_INDEX,
                       "%s: target %lld out of range for %lld "
                       "classes",
                       op, (long long)tv[i], (long long)classes);
  loom_tensor *w = loom_to_dtype(keep, loom_dtype_of(logp));
  if (o->weight) {
    /* Looked up as rows of a (C, 1) matrix: squeeze the trailing 1 before
     * the product, or it broadcasts against the target's dims. */
    loom_tensor *cw =
        loom_reshape(loom_to_dtype(o->weight, loom_dtype_of(logp)), 2,
                     (int64_t[]){classes, 1});
    w = loom_mul(w, loom_squeeze(loom_embedding(cw, safe, -1), -1));
  }
  *weight_sum = loom_sum_all(w);
  *valid = keep;
  if (!w || !*weight_sum)
    return NULL;
  int r = o->reduction == LOOM_NONE ? 2 : o->reduction == LOOM_SUM ? 1 : 0;
  loom_tensor *out[2];
  if (loom_function_apply(
          &nll_function,
          (loom_tensor *const[]){(loom_tensor *)logp, safe, w, keep}, out,
          (void *)&reductions[r]) < 0)
    return NULL;
  return out[0];
}

static loom_tensor *class_dim_sum(const loom_tensor *t) {
  return loom_sum(t, (int[]){1}, 1, false);
}

loom_tensor *loom_nll_loss(const loom_tensor *log_probs,
                           const loom_tensor *target,
                           const loom_cross_entropy_opts *opts) {
  loom_cross_entropy_opts o = opts ? *opts : loom_cross_entropy_defaults();
  if (!log_probs || !target)
    return loom_null_argument("nll_loss");
  if (!reduction_ok(o.reduction, "nll_loss"))
    return NULL;
  if (!loom_dtype_is_float(loom_dtype_of(log_probs)))
    return LOOM_FAIL(LOOM_ERR_DTYPE,
                     "nll_loss: log-probabilities must be float32 or "
                     "float64, got %s",
                     loom_dtype_name(loom_dtype_of(log_probs)));
  if (loom_dtype_of(target) != LOOM_I64)
    return LOOM_FAIL(LOOM_ERR_DTYPE,
                     "nll_loss: targets must be int64 class "
                     "indices, got %s",
                     loom_dtype_name(loom_dtype_of(target)));
  loom_tensor *ws, *valid;
  return nll(log_probs, target, &o, "nll_loss", &ws, &valid);
}

/* Class indices into (N, C) logits without class weights: one fused op
 * per row, reduced here (the mean divides by the non-ignored rows, as the
 * composition's weight sum does). */
static loom_tensor *fused(const loom_tensor *logits, const loom_tensor *target,
                          const loom_cross_entropy_opts *o) {
  loom_tensor *rows = loom_fused_cross_entropy(logits, target, o->ignore_index,
                                               o->label_smoothing);
  switch (o->reduction) {
  case LOOM_NONE:
    return rows;
  case LOOM_SUM:
    return loom_sum_all(rows);
  default:
    return loom_div(loom_sum_all(rows),
                    loom_sum_all(loom_to_dtype(
                        loom_ne_scalar(target, (double)o->ignore_index),
                        loom_dtype_of(logits))));
  }
}

loom_tensor *loom_cross_entropy(const loom_tensor *logits,
                                const loom_tensor *target,
                                const loom_cross_entropy_opts *opts) {
  loom_cross_entropy_opts o = opts ? *opts : loom_cross_entropy_defaults();
  if (!logits || !target)
    return loom_null_argument("cross_entropy");
  if (!reduction_ok(o.reduction, "cross_entropy"))
    return NULL;
  if (!loom_dtype_is_float(loom_dtype_of(logits)))
    return LOOM_FAIL(
        LOOM_ERR_DTYPE, "cross_entropy: expected a float tensor, got %s %s",
        loom_dtype_name(loom_dtype_of(logits)), loom_shape_text(logits));
  if (loom_ndim(logits) < 2)
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "cross_entropy: logits %s need (N, C, "
                     "...)",
                     loom_shape_text(logits));
  double eps = o.label_smoothing;
  if (!(eps >= 0 && eps <= 1))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "cross_entropy: label_smoothing %g",
                     eps);
  if (loom_ndim(logits) == 2 && loom_dtype_of(target) == LOOM_I64 && !o.weight)
    return fused(logits, target, &o);
  double classes = (double)loom_shape(logits)[1];
  loom_tensor *logp = loom_log_softmax(logits, 1);
  const loom_tensor *cw =
      o.weight ? loom_to_dtype(o.weight, loom_dtype_of(logits)) : NULL;
  loom_tensor *cwb = NULL; /* class weights broadcast along dim 1 */
  if (cw) {
    int64_t shape[LOOM_MAX_DIMS];
    for (int d = 0; d < loom_ndim(logits); d++)
      shape[d] = d == 1 ? -1 : 1;
    cwb = loom_reshape(cw, loom_ndim(logits), shape);
  }
  if (loom_dtype_is_float(loom_dtype_of(target))) { /* class probabilities */
    if (!same_shape(logits, target, "cross_entropy"))
      return NULL;
    const loom_tensor *p = target;
    if (eps > 0)
      p = loom_add_scalar(loom_mul_scalar(target, 1 - eps), eps / classes);
    loom_tensor *terms = loom_mul(logp, p);
    if (cwb)
      terms = loom_mul(terms, cwb);
    return reduce(loom_neg(class_dim_sum(terms)), o.reduction);
  }
  if (loom_dtype_of(target) != LOOM_I64)
    return LOOM_FAIL(LOOM_ERR_DTYPE,
                     "cross_entropy: targets must be int64 "
                     "indices or float probabilities, got %s",
                     loom_dtype_name(loom_dtype_of(target)));
  loom_tensor *weight_sum, *valid;
  loom_tensor *loss =
      nll(logp, target, &o, "cross_entropy", &weight_sum, &valid);
  if (!loss || eps == 0)
    return loss;
  /* Label smoothing: mix in the loss against the uniform distribution. */
  loom_tensor *smooth =
      loom_neg(class_dim_sum(cwb ? loom_mul(logp, cwb) : logp));
  smooth = loom_masked_fill(smooth, loom_logical_not(valid), 0);
  switch (o.reduction) {
  case LOOM_NONE:
    break;
  case LOOM_SUM:
    smooth = loom_sum_all(smooth);
    break;
  default:
    smooth = loom_div(
        loom_sum_all(smooth),
        cwb ? weight_sum
            : loom_sum_all(loom_to_dtype(valid, loom_dtype_of(logits))));
  }
  return loom_add(loom_mul_scalar(loss, 1 - eps),
                  loom_mul_scalar(smooth, eps / classes));
}

loom_tensor *loom_mse_loss(const loom_tensor *x, const loom_tensor *y,
                           loom_reduction r) {
  if (!same_shape(x, y, "mse_loss") || !reduction_ok(r, "mse_loss"))
    return NULL;
  return reduce(loom_square(loom_sub(x, y)), r);
}

loom_tensor *loom_l1_loss(const loom_tensor *x, const loom_tensor *y,
                          loom_reduction r) {
  if (!same_shape(x, y, "l1_loss") || !reduction_ok(r, "l1_loss"))
    return NULL;
  return reduce(loom_abs(loom_sub(x, y)), r);
}

loom_tensor *loom_smooth_l1_loss(const loom_tensor *x, const loom_tensor *y,
                                 double beta, loom_reduction r) {
  if (!same_shape(x, y, "smooth_l1_loss") || !reduction_ok(r, "smooth_l1_loss"))
    return NULL;
  if (!(beta >= 0))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "smooth_l1_loss: beta %g (0 and up)",
                     beta);
  loom_tensor *d = loom_abs(loom_sub(x, y));
  if (beta == 0)
    return reduce(d, r);
  loom_tensor *quad = loom_mul_scalar(loom_square(d), 0.5 / beta);
  loom_tensor *lin = loom_sub_scalar(d, 0.5 * beta);
  return reduce(loom_where(loom_lt_scalar(d, beta), quad, lin), r);
}

/* log x at least -100, as PyTorch clamps it, with no infinite slope in the
 * graph: where log x would be below -100 the log is taken of 1 and the
 * result replaced, so a create_graph backward through it sees 0 there,
 * not the clamp's 0 times the log's infinity. */
static loom_tensor *clamped_log(const loom_tensor *x) {
  loom_tensor *low = loom_le_scalar(x, exp(-100.0));
  loom_tensor *safe = loom_masked_fill(x, low, 1);
  return loom_clamp(loom_masked_fill(loom_log(safe), low, -100), -100,
                    INFINITY);
}

/* log x and log(1 - x), each clamped at -100, so that 0 and 1 give finite
 * losses. */
static void clamped_logs(const loom_tensor *x, loom_tensor **lx,
                         loom_tensor **l1x) {
  *lx = clamped_log(x);
  *l1x = clamped_log(loom_rsub_scalar(x, 1));
}

/* The elementwise loss as a function of its own, for PyTorch's gradient
 * in x, (x - y) / max(x (1 - x), eps), eps its float 1e-12: composed, the
 * clamp's zero slope met the log's infinite one at x = 0 or 1 and gave NaN
 * even where the loss was 0. The target's gradient is log(1 - x) - log x,
 * clamped: the loss's own derivative, finite at 0 and 1 (torch's,
 * -logit(x), is infinite there). Both are written in ops, so they
 * differentiate again, finite everywhere; at 0 and 1 the second
 * derivatives are those of these clamped expressions, not torch's. */
static int bce_forward(loom_function_ctx *c, loom_tensor *const *in, int n,
                       loom_tensor **out) {
  (void)n;
  loom_tensor *lx, *l1x;
  clamped_logs(in[0], &lx, &l1x);
  out[0] = loom_neg(
      loom_add(loom_mul(in[1], lx), loom_mul(loom_rsub_scalar(in[1], 1), l1x)));
  loom_function_save(c, in[0]);
  loom_function_save(c, in[1]);
  return out[0] ? 0 : -1;
}

static int bce_backward(loom_function_ctx *c, loom_tensor *const *g,
                        loom_tensor **gin) {
  const loom_tensor *x = loom_function_saved(c, 0),
                    *y = loom_function_saved(c, 1);
  if (!x || !y)
    return -1;
  if (loom_function_needs_grad(c, 0)) {
    loom_tensor *d = loom_clamp(loom_mul(x, loom_rsub_scalar(x, 1)),
                                (double)1e-12f, INFINITY);
    if (!(gin[0] = loom_mul(g[0], loom_div(loom_sub(x, y), d))))
      return -1;
  }
  if (loom_function_needs_grad(c, 1)) {
    loom_tensor *lx, *l1x;
    clamped_logs(x, &lx, &l1x);
    if (!(gin[1] = loom_mul(g[0], loom_sub(l1x, lx))))
      return -1;
  }
  return 0;
}

static const loom_function bce = {"binary_cross_entropy", 2, 1, bce_forward,
                                  bce_backward};

/* Whether every element of x is a probability, as torch checks the input
 * of binary_cross_entropy (NaN is none): an input of 2 against a target
 * of 1 gave a negative loss. Read, not recorded. */
static bool probabilities(const loom_tensor *x, const char *op) {
  loom_scope *s = loom_scope_begin();
  loom_no_grad_begin();
  const loom_tensor *c = loom_contiguous(
      loom_dtype_of(x) == LOOM_F32 ? x : loom_to_dtype(x, LOOM_F64));
  loom_no_grad_end();
  int64_t n = c ? loom_numel(c) : 0, i = 0;
  double bad = 0;
  if (c && loom_dtype_of(c) == LOOM_F32) {
    const float *v = loom_data_f32(c);
    while (i < n && v[i] >= 0 && v[i] <= 1)
      i++;
    bad = i < n ? v[i] : 0;
  } else if (c) {
    const double *v = loom_data_f64(c);
    while (i < n && v[i] >= 0 && v[i] <= 1)
      i++;
    bad = i < n ? v[i] : 0;
  }
  bool read = c != NULL;
  loom_scope_end(s);
  if (!read)
    return false;
  if (i == n)
    return true;
  loom_set_error(LOOM_ERR_ARGUMENT,
                 "%s: all elements of input should be between 0 and 1 "
                 "(element %lld is %g)",
                 op, (long long)i, bad);
  return false;
}

loom_tensor *loom_binary_cross_entropy(const loom_tensor *x,
                                       const loom_tensor *y,
                                       const loom_tensor *weight,
                                       loom_reduction r) {
  if (!same_shape(x, y, "binary_cross_entropy") ||
      !reduction_ok(r, "binary_cross_entropy") ||
      !probabilities(x, "binary_cross_entropy"))
    return NULL;
  loom_tensor *loss;
  if (loom_function_apply(
          &bce, (loom_tensor *const[]){(loom_tensor *)x, (loom_tensor *)y},
          &loss, NULL) < 0)
    return NULL;
  if (weight)
    loss = loom_mul(loss, weight);
  return reduce(loss, r);
}

loom_tensor *loom_binary_cross_entropy_with_logits(
    const loom_tensor *x, const loom_tensor *y, const loom_tensor *weight,
    const loom_tensor *pos_weight, loom_reduction r) {
  if (!same_shape(x, y, "binary_cross_entropy_with_logits") ||
      !reduction_ok(r, "binary_cross_entropy_with_logits"))
    return NULL;
  /* -[pw y log sigmoid(x) + (1 - y) log sigmoid(-x)], each term stable. */
  loom_tensor *pos = loom_mul(y, loom_log_sigmoid(x));
  if (pos_weight)
    pos = loom_mul(pos, pos_weight);
  loom_tensor *neg =
      loom_mul(loom_rsub_scalar(y, 1), loom_log_sigmoid(loom_neg(x)));
  loom_tensor *loss = loom_neg(loom_add(pos, neg));
  if (weight)
    loss = loom_mul(loss, weight);
  return reduce(loss, r);
}

/* t log t, 0 at t = 0, as torch's xlogy(t, t), with the log taken of 1
 * there, never of 0. Its gradient is torch's log t + t / t summed in one
 * node, so the target gradient of kl_div rounds as torch's; at t = 0 it is
 * 0 where torch's is NaN (xlogy's 0 / 0): a target that underflowed to 0,
 * a distillation teacher's softmax say, must not turn its network into
 * NaN. */
static loom_tensor *safe_log(const loom_tensor *t, loom_tensor **zero) {
  *zero = loom_eq_scalar(t, 0);
  return loom_log(loom_masked_fill(t, *zero, 1));
}

static int xlogx_forward(loom_function_ctx *c, loom_tensor *const *in, int n,
                         loom_tensor **out) {
  (void)n;
  loom_tensor *zero, *logt = safe_log(in[0], &zero);
  out[0] = loom_masked_fill(loom_mul(in[0], logt), zero, 0);
  loom_function_save(c, in[0]);
  return out[0] ? 0 : -1;
}

static int xlogx_backward(loom_function_ctx *c, loom_tensor *const *g,
                          loom_tensor **gin) {
  const loom_tensor *t = loom_function_saved(c, 0);
  loom_tensor *zero, *logt = safe_log(t, &zero);
  loom_tensor *d =
      loom_add(loom_mul(g[0], logt),
               loom_div(loom_mul(g[0], t), loom_masked_fill(t, zero, 1)));
  return (gin[0] = loom_masked_fill(d, zero, 0)) ? 0 : -1;
}

static const loom_function xlogx = {"xlogy", 1, 1, xlogx_forward,
                                    xlogx_backward};

loom_tensor *loom_kl_div(const loom_tensor *input, const loom_tensor *target,
                         bool log_target, loom_reduction r, bool batchmean) {
  if (!same_shape(input, target, "kl_div") || !reduction_ok(r, "kl_div"))
    return NULL;
  loom_tensor *pointwise;
  if (log_target) {
    pointwise = loom_mul(loom_exp(target), loom_sub(target, input));
  } else {
    /* torch's xlogy(t, t) - t x, in that form to its last bit (t (log t -
     * x) rounds differently); a negative t, no probability, gives NaN as
     * in torch. */
    loom_tensor *t = (loom_tensor *)target, *tlogt;
    if (loom_function_apply(&xlogx, &t, &tlogt, NULL) < 0)
      return NULL;
    /* t x's target gradient is cut at t = 0 (see xlogx); its input
     * gradient, -t, keeps the zero's sign, as torch's */
    t = loom_where(loom_eq_scalar(target, 0), loom_detach(target), target);
    pointwise = loom_sub(tlogt, loom_mul(t, input));
  }
  if (batchmean && r != LOOM_NONE)
    return loom_div_scalar(loom_sum_all(pointwise),
                           loom_ndim(input) ? (double)loom_shape(input)[0] : 1);
  return reduce(pointwise, r);
}
