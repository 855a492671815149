/* Linear, Bilinear, Embedding, Conv2d, Dropout and Highway layers. */
#include "nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A new parameter of the default dtype, registered on m (borrowed). */
static loom_tensor *param(loom_module *m, const char *name, int ndim,
                          const int64_t *shape) {
  loom_scope *s = loom_scope_begin();
  loom_tensor *t = loom_module_add_param(
      m, name, loom_zeros(LOOM_DTYPE_DEFAULT, ndim, shape));
  loom_scope_end(s);
  return t;
}

/* PyTorch's default for Linear/Conv: kaiming_uniform(a=sqrt(5)) on the
 * weight, which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound
 * for the bias. */
static int default_init(loom_tensor *w, loom_tensor *b) {
  int64_t fan = loom_init_fan(w, LOOM_FAN_IN);
  if (fan < 0)
    return -1;
  double bound = fan > 0 ? 1 / sqrt((double)fan) : 0;
  if (loom_init_kaiming_uniform_(w, sqrt(5.0), LOOM_FAN_IN, "leaky_relu",
                                 NULL) < 0)
    return -1;
  return b ? loom_init_uniform_(b, -bound, bound, NULL) : 0;
}

#define NEW_MODULE(T, var, type)                                               \
  T *var = calloc(1, sizeof *var);                                             \
  if (!var)                                                                    \
    return LOOM_FAIL(LOOM_ERR_MEMORY, "%s: out of memory", type);              \
  loom_module_init(&var->base, type, NULL)

/* ---- Linear ---- */

loom_linear_layer *loom_linear_layer_new(int64_t in, int64_t out, bool bias) {
  if (in < 0 || out < 0)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "Linear: sizes %lld, %lld",
                     (long long)in, (long long)out);
  NEW_MODULE(loom_linear_layer, l, "Linear");
  l->in_features = in;
  l->out_features = out;
  l->weight = param(&l->base, "weight", LOOM_SHAPE(out, in));
  l->bias = bias ? param(&l->base, "bias", LOOM_SHAPE(out)) : NULL;
  if (!l->weight || (bias && !l->bias) || default_init(l->weight, l->bias)) {
    loom_module_free(&l->base);
    return NULL;
  }
  return l;
}

loom_tensor *loom_linear_layer_forward(loom_linear_layer *l,
                                       const loom_tensor *x) {
  return l ? loom_linear(x, l->weight, l->bias) : loom_null_argument("Linear");
}

void loom_linear_layer_free(loom_linear_layer *l) {
  loom_module_free(l ? &l->base : NULL);
}

/* ---- Bilinear ---- */

loom_bilinear *loom_bilinear_new(int64_t in1, int64_t in2, int64_t out,
                                 bool bias) {
  if (in1 <= 0 || in2 <= 0 || out <= 0)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "Bilinear: sizes must be positive");
  NEW_MODULE(loom_bilinear, l, "Bilinear");
  l->in1 = in1;
  l->in2 = in2;
  l->out = out;
  l->weight = param(&l->base, "weight", LOOM_SHAPE(out, in1, in2));
  l->bias = bias ? param(&l->base, "bias", LOOM_SHAPE(out)) : NULL;
  double bound = 1 / sqrt((double)in1);
  if (!l->weight || (bias && !l->bias) ||
      loom_init_uniform_(l->weight, -bound, bound, NULL) < 0 ||
      (bias && loom_init_uniform_(l->bias, -bound, bound, NULL) < 0)) {
    loom_module_free(&l->base);
    return NULL;
  }
  return l;
}

loom_tensor *loom_bilinear_forward(loom_bilinear *l, const loom_tensor *x1,
                                   const loom_tensor *x2) {
  if (!l || !x1 || !x2)
    return loom_null_argument("Bilinear");
  bool same_lead = loom_ndim(x1) >= 1 && loom_ndim(x2) == loom_ndim(x1) &&
                   !memcmp(loom_shape(x1), loom_shape(x2),
                           (size_t)(loom_ndim(x1) - 1) * sizeof(int64_t));
  if (!same_lead || loom_size(x1, -1) != l->in1 || loom_size(x2, -1) != l->in2)
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "Bilinear: inputs %s and %s for in1 %lld,"
                     " in2 %lld",
                     loom_shape_text(x1), loom_shape_text(x2),
                     (long long)l->in1, (long long)l->in2);
  /* y[n, k] = sum_j (x1 @ W_k)[n, j] x2[n, j], with all W_k side by side:
   * x1 (n x in1) @ W' (in1 x out*in2). */
  loom_tensor *a = loom_reshape(x1, 2, (int64_t[]){-1, l->in1});
  loom_tensor *b = loom_reshape(x2, 2, (int64_t[]){-1, l->in2});
  loom_tensor *w = loom_reshape(loom_permute(l->weight, (int[]){1, 0, 2}), 2,
                                (int64_t[]){l->in1, l->out * l->in2});
  loom_tensor *t =
      loom_reshape(loom_matmul(a, w), 3, (int64_t[]){-1, l->out, l->in2});
  loom_tensor *y =
      loom_sum(loom_mul(t, loom_unsqueeze(b, 1)), (int[]){2}, 1, false);
  if (l->bias)
    y = loom_add(y, l->bias);
  int64_t shape[LOOM_MAX_DIMS];
  memcpy(shape, loom_shape(x1), (size_t)loom_ndim(x1) * sizeof *shape);
  shape[loom_ndim(x1) - 1] = l->out;
  return loom_reshape(y, loom_ndim(x1), shape);
}

void loom_bilinear_free(loom_bilinear *l) {
  loom_module_free(l ? &l->base : NULL);
}

/* ---- Embedding ---- */

loom_embedding_layer *loom_embedding_layer_new(int64_t num, int64_t dim,
                                               int64_t padding_idx) {
  if (num <= 0 || dim <= 0 || padding_idx >= num)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "Embedding: %lld x %lld with "
                     "padding_idx %lld",
                     (long long)num, (long long)dim, (long long)padding_idx);
  NEW_MODULE(loom_embedding_layer, e, "Embedding");
  e->num = num;
  e->dim = dim;
  e->padding_idx = padding_idx < 0 ? -1 : padding_idx;
  e->weight = param(&e->base, "weight", LOOM_SHAPE(num, dim));
  if (!e->weight || loom_init_normal_(e->weight, 0, 1, NULL) < 0) {
    loom_module_free(&e->base);
    return NULL;
  }
  if (e->padding_idx >= 0) {
    loom_scope *s = loom_scope_begin();
    loom_init_constant_(loom_select(e->weight, 0, e->padding_idx), 0);
    loom_scope_end(s);
  }
  return e;
}

static int compare_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Rows looked up with norm above max_norm are scaled down in place, as
 * torch.embedding_renorm_ does (before the lookup, outside the graph):
 * each distinct row once, their norms in one op. 0, or -1 with an error;
 * an index out of range leaves the weight alone for the lookup to report. */
static int renorm(loom_embedding_layer *e, const loom_tensor *indices) {
  int64_t n = loom_numel(indices), m = 0;
  if (n == 0)
    return 0;
  int64_t *ix = malloc((size_t)n * sizeof *ix);
  double *norm = NULL;
  int rc = -1;
  if (!ix) {
    loom_set_error(LOOM_ERR_MEMORY, "Embedding: out of memory");
    return -1;
  }
  if (loom_copy_to_array(indices, LOOM_I64, ix, n) < 0)
    goto done;
  qsort(ix, (size_t)n, sizeof *ix, compare_i64);
  for (int64_t i = 0; i < n; i++)
    if (m == 0 || ix[i] != ix[m - 1])
      ix[m++] = ix[i];
  if (ix[0] < 0 || ix[m - 1] >= e->num) {
    rc = 0;
    goto done;
  }
  norm = malloc((size_t)m * sizeof *norm);
  if (!norm) {
    loom_set_error(LOOM_ERR_MEMORY, "Embedding: out of memory");
    goto done;
  }
  loom_no_grad_begin();
  loom_tensor *rows = loom_index_select(
      e->weight, 0, loom_from_array(LOOM_I64, ix, 1, (int64_t[]){m}));
  double p = e->norm_type > 0 ? e->norm_type : 2;
  rc = loom_copy_to_array(loom_norm(rows, p, (int[]){1}, 1, false), LOOM_F64,
                          norm, m);
  for (int64_t i = 0; rc == 0 && i < m; i++)
    if (norm[i] > e->max_norm)
      rc = loom_mul_scalar_(loom_select(e->weight, 0, ix[i]),
                            e->max_norm / (norm[i] + 1e-7))
               ? 0
               : -1;
  loom_no_grad_end();
done:
  free(ix);
  free(norm);
  return rc;
}

loom_tensor *loom_embedding_layer_forward(loom_embedding_layer *e,
                                          const loom_tensor *indices) {
  if (!e || !indices)
    return loom_null_argument("Embedding");
  if (!(e->max_norm >= 0 && e->norm_type >= 0))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "Embedding: max_norm %g, norm_type %g (each 0 for its "
                     "default, or positive)",
                     e->max_norm, e->norm_type);
  loom_dtype it = loom_dtype_of(indices);
  if (e->max_norm > 0 && (it == LOOM_I64 || it == LOOM_I32) &&
      renorm(e, indices) < 0)
    return NULL;
  return loom_embedding(e->weight, indices, e->padding_idx);
}

void loom_embedding_layer_free(loom_embedding_layer *e) {
  loom_module_free(e ? &e->base : NULL);
}

/* ---- Conv2d ---- */

loom_conv2d_layer *loom_conv2d_layer_new(int64_t in, int64_t out, int64_t kh,
                                         int64_t kw, loom_conv2d_opts opts,
                                         bool bias) {
  int64_t groups = opts.groups ? opts.groups : 1;
  if (in <= 0 || out <= 0 || kh <= 0 || kw <= 0 || groups <= 0 || in % groups ||
      out % groups)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "Conv2d: %lld -> %lld channels, "
                     "kernel %lldx%lld, %lld groups",
                     (long long)in, (long long)out, (long long)kh,
                     (long long)kw, (long long)groups);
  for (int d = 0; d < 2; d++) /* as loom_conv2d would at the first forward */
    if (opts.stride[d] < 0 || opts.dilation[d] < 0 || opts.padding[d] < 0)
      return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                       "Conv2d: stride %lldx%lld, padding %lldx%lld, "
                       "dilation %lldx%lld (0 for the default, or positive; "
                       "padding 0 and up)",
                       (long long)opts.stride[0], (long long)opts.stride[1],
                       (long long)opts.padding[0], (long long)opts.padding[1],
                       (long long)opts.dilation[0],
                       (long long)opts.dilation[1]);
  NEW_MODULE(loom_conv2d_layer, c, "Conv2d");
  c->opts = opts;
  c->weight = param(&c->base, "weight", LOOM_SHAPE(out, in / groups, kh, kw));
  c->bias = bias ? param(&c->base, "bias", LOOM_SHAPE(out)) : NULL;
  if (!c->weight || (bias && !c->bias) || default_init(c->weight, c->bias)) {
    loom_module_free(&c->base);
    return NULL;
  }
  return c;
}

loom_tensor *loom_conv2d_layer_forward(loom_conv2d_layer *c,
                                       const loom_tensor *x) {
  return c ? loom_conv2d(x, c->weight, c->bias, c->opts)
           : loom_null_argument("Conv2d");
}

void loom_conv2d_layer_free(loom_conv2d_layer *c) {
  loom_module_free(c ? &c->base : NULL);
}

/* ---- Dropout ---- */

loom_dropout_layer *loom_dropout_layer_new(double p, loom_rng *g) {
  if (!(p >= 0 && p <= 1))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "Dropout: p = %g", p);
  NEW_MODULE(loom_dropout_layer, d, "Dropout");
  d->p = p;
  d->g = g;
  return d;
}

loom_tensor *loom_dropout_layer_forward(loom_dropout_layer *d,
                                        const loom_tensor *x) {
  return d ? loom_dropout(x, d->p, d->base.training, d->g)
           : loom_null_argument("Dropout");
}

void loom_dropout_layer_free(loom_dropout_layer *d) {
  loom_module_free(d ? &d->base : NULL);
}

/* ---- Highway ---- */

loom_highway *loom_highway_new(int64_t size, double gate_bias) {
  /* A NaN or infinite gate bias had been written into the gate's bias, so
   * every output was NaN (or the gate stuck shut) with no error; a negative
   * size was reported by the inner Linear, not by name. */
  if (size < 0 || !isfinite(gate_bias))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "Highway: size %lld (0 and up), gate_bias %g (finite)",
                     (long long)size, gate_bias);
  NEW_MODULE(loom_highway, h, "Highway");
  /* A module struct starts with its loom_module, so the casts are exact
   * (and keep NULL as NULL). */
  h->transform = (loom_linear_layer *)loom_module_add_child(
      &h->base, "transform",
      (loom_module *)loom_linear_layer_new(size, size, true));
  h->gate = (loom_linear_layer *)loom_module_add_child(
      &h->base, "gate", (loom_module *)loom_linear_layer_new(size, size, true));
  if (!h->transform || !h->gate ||
      loom_init_constant_(h->gate->bias, gate_bias) < 0) {
    loom_module_free(&h->base);
    return NULL;
  }
  return h;
}

loom_tensor *loom_highway_forward(loom_highway *h, const loom_tensor *x) {
  if (!h)
    return loom_null_argument("Highway");
  loom_tensor *t = loom_relu(loom_linear_layer_forward(h->transform, x));
  loom_tensor *g = loom_sigmoid(loom_linear_layer_forward(h->gate, x));
  /* g * t + (1 - g) * x = x + g * (t - x) */
  return loom_add(x, loom_mul(g, loom_sub(t, x)));
}

void loom_highway_free(loom_highway *h) {
  loom_module_free(h ? &h->base : NULL);
}
