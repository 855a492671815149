/* torch.nn.functional.pad: constant, reflect, replicate and circular
 * padding, as compositions (narrow and concat for constants, index_select
 * of computed positions for the others), so autograd derives the backward
 * and its backward; one copy per padded dim. */
#include "node.h"

/* Where output position o (0 <= o < out) of a dim of `size` reads from,
 * for input position i = o - left, as PyTorch's kernels map it (negative
 * padding crops; the mapping is on the uncropped input). */
static int64_t source(loom_pad_mode mode, int64_t i, int64_t size) {
  switch (mode) {
  case LOOM_PAD_REFLECT: /* about the end elements, not repeating them */
    return i < 0 ? -i : i >= size ? 2 * (size - 1) - i : i;
  case LOOM_PAD_REPLICATE:
    return i < 0 ? 0 : i >= size ? size - 1 : i;
  default: /* circular */
    return i < 0 ? i + size : i >= size ? i - size : i;
  }
}

static const char *mode_name(loom_pad_mode mode) {
  switch (mode) {
  case LOOM_PAD_CONSTANT:
    return "constant";
  case LOOM_PAD_REFLECT:
    return "reflect";
  case LOOM_PAD_REPLICATE:
    return "replicate";
  default:
    return "circular";
  }
}

/* Whether dim d of t (size `size`) can take (left, right) in this mode; an
 * error naming them when not. *out receives the new size. */
static bool pad_fits(const loom_tensor *t, int d, int64_t left, int64_t right,
                     loom_pad_mode mode, int64_t *out) {
  int64_t size = t->shape[d];
  const char *m = mode_name(mode);
  *out = size + left + right; /* |left|, |right| <= 2^59 - 1: no overflow */
  if (*out < (mode == LOOM_PAD_CONSTANT ? 0 : 1)) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "pad: %s padding (%lld, %lld) leaves dim %d of %s with %lld "
                   "elements (at least %d)",
                   m, (long long)left, (long long)right, d, loom_shape_text(t),
                   (long long)*out, mode == LOOM_PAD_CONSTANT ? 0 : 1);
    return false;
  }
  if (mode == LOOM_PAD_REPLICATE && size == 0) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "pad: replicate padding of dim %d of %s, which is empty", d,
                   loom_shape_text(t));
    return false;
  }
  if (mode == LOOM_PAD_REFLECT && (left >= size || right >= size)) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "pad: reflect padding (%lld, %lld) must be less than the "
                   "size %lld of dim %d of %s",
                   (long long)left, (long long)right, (long long)size, d,
                   loom_shape_text(t));
    return false;
  }
  if (mode == LOOM_PAD_CIRCULAR &&
      (left < 0 || right < 0 || left > size || right > size)) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "pad: circular padding (%lld, %lld) must be 0 to the size "
                   "%lld of dim %d of %s (wrapping around at most once)",
                   (long long)left, (long long)right, (long long)size, d,
                   loom_shape_text(t));
    return false;
  }
  return true;
}

/* x with `left` elements of value before and `right` after along d;
 * negative amounts crop. */
static loom_tensor *pad_constant(const loom_tensor *x, int d, int64_t left,
                                 int64_t right, double value) {
  int64_t size = x->shape[d];
  int64_t from = left < 0 ? -left : 0, to = right < 0 ? size + right : size;
  loom_tensor *parts[3];
  int n = 0;
  int64_t shape[LOOM_MAX_DIMS];
  memcpy(shape, x->shape, sizeof shape);
  if (left > 0) {
    shape[d] = left;
    parts[n++] = loom_full(x->dtype, value, x->ndim, shape);
  }
  parts[n++] = loom_narrow(x, d, from, to - from);
  if (right > 0) {
    shape[d] = right;
    parts[n++] = loom_full(x->dtype, value, x->ndim, shape);
  }
  return loom_concat(parts, n, d);
}

static loom_tensor *pad_mapped(const loom_tensor *x, int d, int64_t left,
                               int64_t out, loom_pad_mode mode) {
  loom_tensor *positions = loom_empty(LOOM_I64, 1, &out);
  if (!positions)
    return NULL;
  int64_t *p = (int64_t *)positions->data;
  for (int64_t o = 0; o < out; o++)
    p[o] = source(mode, o - left, x->shape[d]);
  return loom_index_select(x, d, positions);
}

loom_tensor *loom_pad(const loom_tensor *t, const int64_t *pad, int n,
                      loom_pad_mode mode, double value) {
  if (!t || (!pad && n > 0))
    return loom_null_argument("pad");
  if (mode < LOOM_PAD_CONSTANT || mode > LOOM_PAD_CIRCULAR)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "pad: unknown mode %d", (int)mode);
  if (n < 0 || n % 2 || n / 2 > t->ndim)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "pad: %d padding sizes for %s (an even number, two per "
                     "padded dim, at most %d)",
                     n, loom_shape_text(t), 2 * t->ndim);
  for (int k = 0; k < n; k++)
    if (pad[k] < -LOOM_MAX_ELEMENTS || pad[k] > LOOM_MAX_ELEMENTS)
      return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                       "pad: padding %lld outside -(2^59 - 1)..2^59 - 1",
                       (long long)pad[k]);
  /* pad[0], pad[1] pad the last dim, pad[2], pad[3] the one before, ...;
   * every dim is checked, and the result's size, before any copy */
  int64_t shape[LOOM_MAX_DIMS];
  memcpy(shape, t->shape, sizeof shape);
  for (int k = 0; k < n / 2; k++) {
    int d = t->ndim - 1 - k;
    if ((pad[2 * k] || pad[2 * k + 1]) &&
        !pad_fits(t, d, pad[2 * k], pad[2 * k + 1], mode, &shape[d]))
      return NULL;
  }
  if (!loom__sizes_fit(t->ndim, shape)) {
    char s[128];
    return LOOM_FAIL(LOOM_ERR_SHAPE, "pad: result %s too large",
                     loom_format_shape(t->ndim, shape, s, sizeof s));
  }
  const loom_tensor *x = t;
  for (int k = 0; k < n / 2 && x; k++) {
    int d = t->ndim - 1 - k;
    int64_t left = pad[2 * k], right = pad[2 * k + 1];
    if (left == 0 && right == 0)
      continue;
    x = mode == LOOM_PAD_CONSTANT ? pad_constant(x, d, left, right, value)
                                  : pad_mapped(x, d, left, shape[d], mode);
  }
  return x == t ? loom_clone(t) : (loom_tensor *)x;
}
