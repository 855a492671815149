/* Positional encodings: the fixed sinusoidal table of Vaswani et al. and
 * learned positions. */
#include "attention.h"

#include <math.h>
#include <stdlib.h>

loom_tensor *loom_sinusoidal_encoding(loom_dtype dtype, int64_t n, int64_t d) {
  if (!loom_dtype_is_float(dtype)) /* the values in [-1, 1] became 0 and 1 */
    return LOOM_FAIL(LOOM_ERR_DTYPE,
                     "sinusoidal_encoding: dtype %s (float32 or float64)",
                     loom_dtype_name(dtype));
  if (n < 0 || d < 1 || (n > 0 && d > LOOM_MAX_ELEMENTS / n)) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "sinusoidal_encoding: %lld x %lld (need n >= 0, d >= 1 "
                   "and n * d below 2^59)",
                   (long long)n, (long long)d);
    return NULL;
  }
  loom_tensor *t = loom_empty(LOOM_F64, LOOM_SHAPE(n, d));
  double *v = loom_data_f64(t);
  for (int64_t p = 0; v && p < n; p++)
    for (int64_t i = 0; i < d; i++) {
      double rate = exp(-log(10000.0) * (double)(i - i % 2) / (double)d);
      v[p * d + i] = i % 2 ? cos((double)p * rate) : sin((double)p * rate);
    }
  return loom_to_dtype(t, dtype);
}

loom_learned_positions *loom_learned_positions_new(int64_t max_len, int64_t d) {
  if (max_len < 1 || d < 1) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "learned_positions: %lld x %lld (both must be >= 1)",
                   (long long)max_len, (long long)d);
    return NULL;
  }
  loom_learned_positions *p = calloc(1, sizeof *p);
  if (!p) {
    loom_set_error(LOOM_ERR_MEMORY, "learned_positions: out of memory");
    return NULL;
  }
  loom_module_init(&p->base, "LearnedPositions", NULL);
  p->max_len = max_len;
  p->d = d;
  loom_scope *s = loom_scope_begin();
  p->weight = loom_module_add_param(
      &p->base, "weight",
      loom_zeros(LOOM_DTYPE_DEFAULT, LOOM_SHAPE(max_len, d)));
  loom_scope_end(s);
  if (!p->weight || loom_init_normal_(p->weight, 0, 1, NULL) < 0) {
    loom_module_free(&p->base);
    return NULL;
  }
  return p;
}

loom_tensor *loom_learned_positions_forward(loom_learned_positions *p,
                                            int64_t offset, int64_t n) {
  if (!p) {
    loom_set_error(LOOM_ERR_ARGUMENT, "learned_positions: NULL module");
    return NULL;
  }
  if (offset < 0 || n < 0 || offset > p->max_len - n) {
    loom_set_error(LOOM_ERR_INDEX,
                   "learned_positions: %lld positions from %lld, beyond the "
                   "table's %lld",
                   (long long)n, (long long)offset, (long long)p->max_len);
    return NULL;
  }
  return loom_narrow(p->weight, 0, offset, n);
}

void loom_learned_positions_free(loom_learned_positions *p) {
  loom_module_free(p ? &p->base : NULL);
}
