/* BatchNorm and LayerNorm on the fused normalisation ops; BatchNorm's
 * running statistics are updated outside the graph. */
#include "nn.h"

#include <stdlib.h>
#include <string.h>

static loom_tensor *tensor_param(loom_module *m, const char *name, int64_t n,
                                 double value, bool buffer) {
  loom_scope *s = loom_scope_begin();
  loom_tensor *t = loom_full(LOOM_DTYPE_DEFAULT, value, 1, &n);
  t = buffer ? loom_module_add_buffer(m, name, t)
             : loom_module_add_param(m, name, t);
  loom_scope_end(s);
  return t;
}

/* ---- BatchNorm ---- */

loom_batch_norm_layer *loom_batch_norm_layer_new(int64_t features, double eps,
                                                 double momentum, bool affine,
                                                 bool track) {
  if (features <= 0 || !(eps > 0) || !(momentum >= 0 && momentum <= 1))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "BatchNorm: %lld features, eps %g, "
                     "momentum %g",
                     (long long)features, eps, momentum);
  loom_batch_norm_layer *b = calloc(1, sizeof *b);
  if (!b)
    return LOOM_FAIL(LOOM_ERR_MEMORY, "BatchNorm: out of memory");
  loom_module_init(&b->base, "BatchNorm", NULL);
  b->features = features;
  b->eps = eps;
  b->momentum = momentum;
  bool ok = true;
  if (affine) {
    b->weight = tensor_param(&b->base, "weight", features, 1, false);
    b->bias = tensor_param(&b->base, "bias", features, 0, false);
    ok = b->weight && b->bias;
  }
  if (ok && track) {
    b->running_mean = tensor_param(&b->base, "running_mean", features, 0, true);
    b->running_var = tensor_param(&b->base, "running_var", features, 1, true);
    loom_scope *s = loom_scope_begin();
    b->num_batches_tracked = loom_module_add_buffer(
        &b->base, "num_batches_tracked", loom_zeros(LOOM_I64, 0, NULL));
    loom_scope_end(s);
    ok = b->running_mean && b->running_var && b->num_batches_tracked;
  }
  if (!ok) {
    loom_module_free(&b->base);
    return NULL;
  }
  return b;
}

static loom_tensor *batch_norm_layer_forward(loom_batch_norm_layer *b,
                                             const loom_tensor *x, bool relu) {
  if (!b || !x)
    return loom_null_argument("BatchNorm");
  if (loom_ndim(x) < 2 || loom_shape(x)[1] != b->features)
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "BatchNorm: input %s, expected (N, %lld, "
                     "...)",
                     loom_shape_text(x), (long long)b->features);
  int64_t count = loom_numel(x) / b->features;
  bool batch_stats = b->base.training || !b->running_mean;
  if (b->base.training && count <= 1)
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "BatchNorm: one value per channel in "
                     "training (%s)",
                     loom_shape_text(x));
  loom_tensor *mean = NULL, *var = NULL;
  /* parameters and statistics of another float dtype than x promote with
   * it in the op, as a linear layer's weight does */
  loom_tensor *y = (relu ? loom_batch_norm_relu : loom_batch_norm)(
      x, b->weight, b->bias, batch_stats ? NULL : b->running_mean,
      batch_stats ? NULL : b->running_var, b->eps, &mean, &var);
  if (y && b->base.training && b->running_mean) {
    loom_no_grad_begin();
    double m = b->momentum, unbias = (double)count / (double)(count - 1);
    loom_mul_scalar_(b->running_mean, 1 - m);
    loom_add_(b->running_mean, mean, m);
    loom_mul_scalar_(b->running_var, 1 - m);
    loom_add_(b->running_var, var, m * unbias);
    loom_add_(b->num_batches_tracked, loom_ones(LOOM_I64, 0, NULL), 1);
    loom_no_grad_end();
  }
  return y;
}

loom_tensor *loom_batch_norm_layer_forward(loom_batch_norm_layer *b,
                                           const loom_tensor *x) {
  return batch_norm_layer_forward(b, x, false);
}

loom_tensor *loom_batch_norm_layer_forward_relu(loom_batch_norm_layer *b,
                                                const loom_tensor *x) {
  return batch_norm_layer_forward(b, x, true);
}

void loom_batch_norm_layer_free(loom_batch_norm_layer *b) {
  loom_module_free(b ? &b->base : NULL);
}

/* ---- LayerNorm ---- */

loom_layer_norm_layer *loom_layer_norm_layer_new(int ndims,
                                                 const int64_t *shape,
                                                 double eps, bool affine) {
  if (!shape)
    return loom_null_argument("LayerNorm");
  if (ndims < 1 || ndims > LOOM_MAX_DIMS || !(eps > 0))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "LayerNorm: %d dims (1 to %d), eps %g (> 0)", ndims,
                     LOOM_MAX_DIMS, eps);
  loom_layer_norm_layer *l = calloc(1, sizeof *l);
  if (!l)
    return LOOM_FAIL(LOOM_ERR_MEMORY, "LayerNorm: out of memory");
  loom_module_init(&l->base, "LayerNorm", NULL);
  l->ndims = ndims;
  l->eps = eps;
  memcpy(l->shape, shape, (size_t)ndims * sizeof *shape);
  if (affine) {
    loom_scope *s = loom_scope_begin();
    l->weight = loom_module_add_param(
        &l->base, "weight", loom_ones(LOOM_DTYPE_DEFAULT, ndims, shape));
    l->bias = loom_module_add_param(
        &l->base, "bias", loom_zeros(LOOM_DTYPE_DEFAULT, ndims, shape));
    loom_scope_end(s);
    if (!l->weight || !l->bias) {
      loom_module_free(&l->base);
      return NULL;
    }
  }
  return l;
}

loom_tensor *loom_layer_norm_layer_forward(loom_layer_norm_layer *l,
                                           const loom_tensor *x) {
  if (!l || !x)
    return loom_null_argument("LayerNorm");
  bool ok = loom_ndim(x) >= l->ndims;
  for (int i = 0; ok && i < l->ndims; i++)
    ok = loom_shape(x)[loom_ndim(x) - l->ndims + i] == l->shape[i];
  if (!ok) {
    char s[128];
    return LOOM_FAIL(LOOM_ERR_SHAPE, "LayerNorm: input %s does not end in %s",
                     loom_shape_text(x),
                     loom_format_shape(l->ndims, l->shape, s, sizeof s));
  }
  return loom_layer_norm(x, l->ndims, l->weight, l->bias, l->eps);
}

void loom_layer_norm_layer_free(loom_layer_norm_layer *l) {
  loom_module_free(l ? &l->base : NULL);
}
