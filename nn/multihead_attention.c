/* torch.nn.MultiheadAttention: packed or separate q/k/v projections, heads
 * split as views, masks combined into one, PyTorch's unbatched form. */
#include "attention.h"
#include "attention_internal.h"

#include <math.h>
#include <stdlib.h>

static loom_tensor *param(loom_multihead_attention *m, const char *name,
                          int64_t rows, int64_t cols) {
  return loom_module_add_param(
      &m->base, name, loom_zeros(LOOM_DTYPE_DEFAULT, LOOM_SHAPE(rows, cols)));
}

loom_multihead_attention *
loom_multihead_attention_new(int64_t E, int64_t heads,
                             loom_multihead_attention_opts o) {
  int64_t kdim = o.kdim ? o.kdim : E, vdim = o.vdim ? o.vdim : E;
  if (E < 1 || heads < 1 || E % heads || kdim < 1 || vdim < 1 ||
      E > INT64_MAX / 3 || !(o.dropout >= 0 && o.dropout < 1)) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "MultiheadAttention: embed_dim %lld must divide into %lld "
                   "heads, kdim %lld and vdim %lld be positive, dropout %g "
                   "be in [0, 1)",
                   (long long)E, (long long)heads, (long long)kdim,
                   (long long)vdim, o.dropout);
    return NULL;
  }
  loom_multihead_attention *m = calloc(1, sizeof *m);
  if (!m) {
    loom_set_error(LOOM_ERR_MEMORY, "MultiheadAttention: out of memory");
    return NULL;
  }
  loom_module_init(&m->base, "MultiheadAttention", NULL);
  m->embed_dim = E;
  m->num_heads = heads;
  m->head_dim = E / heads;
  m->kdim = kdim;
  m->vdim = vdim;
  m->opts = o;
  int64_t rows = loom_size_mul(3, E, "MultiheadAttention"); /* q, k, v */
  loom_scope *s = loom_scope_begin();
  bool ok;
  if (kdim == E && vdim == E) {
    m->in_proj_weight = param(m, "in_proj_weight", rows, E);
    ok = loom_init_xavier_uniform_(m->in_proj_weight, 1, NULL) == 0;
  } else {
    m->q_proj_weight = param(m, "q_proj_weight", E, E);
    m->k_proj_weight = param(m, "k_proj_weight", E, kdim);
    m->v_proj_weight = param(m, "v_proj_weight", E, vdim);
    ok = loom_init_xavier_uniform_(m->q_proj_weight, 1, NULL) == 0 &&
         loom_init_xavier_uniform_(m->k_proj_weight, 1, NULL) == 0 &&
         loom_init_xavier_uniform_(m->v_proj_weight, 1, NULL) == 0;
  }
  if (ok && !o.no_bias)
    ok = (m->in_proj_bias = loom_module_add_param(
              &m->base, "in_proj_bias",
              loom_zeros(LOOM_DTYPE_DEFAULT, LOOM_SHAPE(rows)))) != NULL;
  loom_scope_end(s);
  m->out_proj = ok ? (loom_linear_layer *)loom_module_add_child(
                         &m->base, "out_proj",
                         (loom_module *)loom_linear_layer_new(E, E, !o.no_bias))
                   : NULL;
  if (!m->out_proj ||
      (m->out_proj->bias && loom_init_constant_(m->out_proj->bias, 0) < 0)) {
    loom_module_free(&m->base);
    return NULL;
  }
  return m;
}

void loom_multihead_attention_free(loom_multihead_attention *m) {
  loom_module_free(m ? &m->base : NULL);
}

loom_tensor *
loom__multihead_attention_project(const loom_multihead_attention *m, int i,
                                  const loom_tensor *x) {
  int64_t E = m->embed_dim;
  const loom_tensor *w = m->in_proj_weight
                             ? loom_narrow(m->in_proj_weight, 0, i * E, E)
                         : i == 0 ? m->q_proj_weight
                         : i == 1 ? m->k_proj_weight
                                  : m->v_proj_weight;
  const loom_tensor *b =
      m->in_proj_bias ? loom_narrow(m->in_proj_bias, 0, i * E, E) : NULL;
  return loom_linear(x, w, b);
}

loom_tensor *
loom__multihead_attention_split_heads(const loom_multihead_attention *m,
                                      const loom_tensor *x) {
  bool bf = m->opts.batch_first;
  int64_t N = loom_size(x, bf ? 1 : 0), B = loom_size(x, bf ? 0 : 1);
  loom_tensor *r =
      loom_reshape(x, 4,
                   bf ? (int64_t[]){B, N, m->num_heads, m->head_dim}
                      : (int64_t[]){N, B, m->num_heads, m->head_dim});
  return loom_permute(r, bf ? (int[]){0, 2, 1, 3} : (int[]){1, 2, 0, 3});
}

/* (B, heads, N, head_dim) -> (N, B, E) or (B, N, E). */
static loom_tensor *merge_heads(const loom_multihead_attention *m,
                                const loom_tensor *x) {
  bool bf = m->opts.batch_first;
  int64_t B = loom_size(x, 0), N = loom_size(x, 2);
  loom_tensor *p =
      loom_permute(x, bf ? (int[]){0, 2, 1, 3} : (int[]){2, 0, 1, 3});
  return loom_reshape(p, 3,
                      bf ? (int64_t[]){B, N, m->embed_dim}
                         : (int64_t[]){N, B, m->embed_dim});
}

static bool has_shape(const loom_tensor *t, int ndim, const int64_t *shape) {
  if (loom_ndim(t) != ndim)
    return false;
  for (int i = 0; i < ndim; i++)
    if (loom_size(t, i) != shape[i])
      return false;
  return true;
}

/* Records a shape error for mask `what`, naming its shape and the ones
 * expected; returns NULL. */
static void *mask_error(const char *what, const loom_tensor *mask,
                        const char *expected) {
  char s[64];
  loom_set_error(LOOM_ERR_SHAPE, "MultiheadAttention: %s %s, expected %s", what,
                 loom_shape_str(mask, s, sizeof s), expected);
  return NULL;
}

/* One (B, heads, L, S)-broadcastable mask from attn_mask and
 * key_padding_mask: bool if both are bool, else additive float. */
static const loom_tensor *combined_mask(const loom_multihead_attention *m,
                                        const loom_multihead_attention_args *a,
                                        int64_t B, int64_t L, int64_t S,
                                        loom_dtype dtype) {
  const loom_tensor *am = a ? a->attn_mask : NULL;
  const loom_tensor *kp = a ? a->key_padding_mask : NULL;
  int64_t H = m->num_heads;
  char want[96];
  if (am) {
    snprintf(want, sizeof want, "(%lld, %lld) or (%lld, %lld, %lld)",
             (long long)L, (long long)S, (long long)(B * H), (long long)L,
             (long long)S);
    if (has_shape(am, 3, (int64_t[]){B * H, L, S}))
      am = loom_reshape(am, 4, (int64_t[]){B, H, L, S});
    else if (!has_shape(am, 2, (int64_t[]){L, S}))
      return mask_error("attn_mask", am, want);
  }
  if (kp) {
    snprintf(want, sizeof want, "(%lld, %lld)", (long long)B, (long long)S);
    if (!has_shape(kp, 2, (int64_t[]){B, S}))
      return mask_error("key_padding_mask", kp, want);
    kp = loom_reshape(kp, 4, (int64_t[]){B, 1, 1, S});
  }
  if (!am || !kp)
    return am ? am : kp;
  if (loom__is_bool_mask(am) && loom__is_bool_mask(kp))
    return loom_logical_or(am, kp);
  return loom_add(loom__additive_mask(am, dtype),
                  loom__additive_mask(kp, dtype));
}

/* PyTorch's unbatched call, query (L, E), key (S, kdim), value (S, vdim),
 * key_padding_mask (S), attn_mask (L, S) or (heads, L, S), runs as a batch
 * of one whose batch dim is dropped from the results. */
static int unbatched_forward(loom_multihead_attention *m,
                             const loom_tensor *query, const loom_tensor *key,
                             const loom_tensor *value,
                             const loom_multihead_attention_args *a,
                             loom_tensor **out, loom_tensor **weights) {
  const loom_tensor *kp = a ? a->key_padding_mask : NULL;
  char qs[64], ks[64], vs[64], ps[64] = "none";
  if (loom_ndim(key) != 2 || loom_ndim(value) != 2 ||
      (kp && loom_ndim(kp) != 1)) {
    loom_set_error(LOOM_ERR_SHAPE,
                   "MultiheadAttention: unbatched query %s needs key (S, "
                   "kdim), value (S, vdim) and key_padding_mask (S); got %s, "
                   "%s, %s",
                   loom_shape_str(query, qs, sizeof qs),
                   loom_shape_str(key, ks, sizeof ks),
                   loom_shape_str(value, vs, sizeof vs),
                   kp ? loom_shape_str(kp, ps, sizeof ps) : ps);
    return -1;
  }
  int64_t L = loom_size(query, 0), S = loom_size(key, 0), H = m->num_heads;
  char want[96];
  if (kp && loom_size(kp, 0) != S) {
    snprintf(want, sizeof want, "(%lld)", (long long)S);
    mask_error("unbatched key_padding_mask", kp, want);
    return -1;
  }
  const loom_tensor *am = a ? a->attn_mask : NULL;
  if (am && !has_shape(am, 2, (int64_t[]){L, S}) &&
      !has_shape(am, 3, (int64_t[]){H, L, S})) {
    snprintf(want, sizeof want, "(%lld, %lld) or (%lld, %lld, %lld)",
             (long long)L, (long long)S, (long long)H, (long long)L,
             (long long)S);
    mask_error("unbatched attn_mask", am, want);
    return -1;
  }
  int d = m->opts.batch_first ? 0 : 1;
  loom_tensor *q = loom_unsqueeze(query, d);
  loom_tensor *k = key == query ? q : loom_unsqueeze(key, d);
  loom_tensor *v = value == query ? q
                   : value == key ? k
                                  : loom_unsqueeze(value, d);
  loom_multihead_attention_args b = a ? *a : (loom_multihead_attention_args){0};
  if (kp)
    b.key_padding_mask = loom_unsqueeze(kp, 0);
  loom_tensor *o, *w = NULL;
  if (loom_multihead_attention_forward(m, q, k, v, &b, &o,
                                       weights ? &w : NULL) < 0)
    return -1;
  *out = loom_squeeze(o, d);
  if (weights)
    *weights = loom_squeeze(w, 0);
  return *out && (!weights || *weights) ? 0 : -1;
}

static int attend(loom_multihead_attention *m, const loom_tensor *query,
                  const loom_tensor *key, const loom_tensor *value,
                  const loom_multihead_attention_args *a, loom_tensor **out,
                  loom_tensor **weights) {
  if (loom_ndim(query) == 2)
    return unbatched_forward(m, query, key, value, a, out, weights);
  bool bf = m->opts.batch_first;
  int b = bf ? 0 : 1, n = bf ? 1 : 0;
  if (loom_ndim(query) != 3 || loom_ndim(key) != 3 || loom_ndim(value) != 3 ||
      loom_size(query, 2) != m->embed_dim || loom_size(key, 2) != m->kdim ||
      loom_size(value, 2) != m->vdim ||
      loom_size(key, b) != loom_size(query, b) ||
      loom_size(key, 0) != loom_size(value, 0) ||
      loom_size(key, 1) != loom_size(value, 1)) {
    char qs[64], ks[64], vs[64];
    loom_set_error(LOOM_ERR_SHAPE,
                   "MultiheadAttention: query %s, key %s, value %s do not "
                   "fit embed %lld (kdim %lld, vdim %lld)%s",
                   loom_shape_str(query, qs, sizeof qs),
                   loom_shape_str(key, ks, sizeof ks),
                   loom_shape_str(value, vs, sizeof vs),
                   (long long)m->embed_dim, (long long)m->kdim,
                   (long long)m->vdim, bf ? ", batch first" : "");
    return -1;
  }
  int64_t B = loom_size(query, b), L = loom_size(query, n),
          S = loom_size(key, n);
  loom_tensor *q, *k, *v;
  if (query == key && key == value && m->in_proj_weight) {
    /* self-attention: one product for q, k and v */
    loom_tensor *qkv = loom_linear(query, m->in_proj_weight, m->in_proj_bias),
                *parts[3];
    if (loom_chunk(qkv, 3, -1, parts, 3) != 3)
      return -1;
    q = parts[0];
    k = parts[1];
    v = parts[2];
  } else {
    q = loom__multihead_attention_project(m, 0, query);
    k = loom__multihead_attention_project(m, 1, key);
    v = loom__multihead_attention_project(m, 2, value);
  }
  const loom_tensor *mask = combined_mask(m, a, B, L, S, loom_dtype_of(query));
  if ((a && (a->attn_mask || a->key_padding_mask)) && !mask)
    return -1;
  loom_tensor *w = NULL;
  loom_tensor *o = loom_scaled_dot_product_attention(
      loom__multihead_attention_split_heads(m, q),
      loom__multihead_attention_split_heads(m, k),
      loom__multihead_attention_split_heads(m, v), mask, a && a->causal,
      m->base.training ? m->opts.dropout : 0, m->opts.rng, weights ? &w : NULL);
  *out = loom_linear_layer_forward(m->out_proj, merge_heads(m, o));
  if (weights)
    *weights =
        a && a->per_head_weights ? w : loom_mean(w, (int[]){1}, 1, false);
  return *out ? 0 : -1;
}

/* In a scope of its own, so that of the projections, head splits and
 * merges only what backward reads outlives the call. */
int loom_multihead_attention_forward(loom_multihead_attention *m,
                                     const loom_tensor *query,
                                     const loom_tensor *key,
                                     const loom_tensor *value,
                                     const loom_multihead_attention_args *a,
                                     loom_tensor **out, loom_tensor **weights) {
  if (out)
    *out = NULL;
  if (weights)
    *weights = NULL;
  if (!m || !query || !key || !value || !out) {
    loom_set_error(LOOM_ERR_ARGUMENT, "MultiheadAttention: NULL argument");
    return -1;
  }
  loom_scope *s = loom_scope_begin();
  if (!s)
    return -1;
  int rc = attend(m, query, key, value, a, out, weights);
  loom_keep(*out);
  if (weights)
    loom_keep(*weights);
  loom_scope_end(s);
  /* NULL when the outer scope cannot grow (the reference is dropped) */
  bool had_out = *out, had_weights = weights && *weights;
  *out = loom_autorelease(*out);
  if (weights)
    *weights = loom_autorelease(*weights);
  if ((had_out && !*out) || (had_weights && !*weights))
    rc = -1;
  return rc;
}
