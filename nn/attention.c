/* Scaled dot-product attention, seq2seq attention scores, multi-head
 * attention (with a key/value cache for incremental decoding) and
 * positional encodings, all composed from ops. */
#include "attention.h"

#include "../tensor/internal.h"

#include <math.h>
#include <stdlib.h>

/* ---- scaled dot-product attention ---- */

loom_tensor *loom_causal_mask(loom_dtype dtype, int64_t n) {
  loom_tensor *m = loom_zeros(dtype, LOOM_SHAPE(n, n));
  if (!m)
    return NULL;
  for (int64_t i = 0; i < n; i++)
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

static loom_tensor *apply_mask(loom_tensor *scores, const loom_tensor *mask) {
  if (!mask)
    return scores;
  if (loom_dtype_of(mask) == LOOM_BOOL || loom_dtype_of(mask) == LOOM_U8)
    return loom_masked_fill(scores, mask, -INFINITY);
  return loom_add(scores, mask);
}

loom_tensor *
loom_scaled_dot_product_attention(const loom_tensor *q, const loom_tensor *k,
                                  const loom_tensor *v, const loom_tensor *mask,
                                  bool causal, double dropout, loom_rng *g,
                                  loom_tensor **weights) {
  if (!q || !k || !v)
    return NULL;
  if (q->ndim < 2 || k->ndim < 2 || v->ndim < 2 ||
      q->shape[q->ndim - 1] != k->shape[k->ndim - 1] ||
      k->shape[k->ndim - 2] != v->shape[v->ndim - 2])
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "attention: q %s, k %s, v %s must be "
                     "(..., L, E), (..., S, E), (..., S, Ev)",
                     loom__shp(q), loom__shp(k), loom__shp(v));
  int64_t E = q->shape[q->ndim - 1];
  int64_t L = q->shape[q->ndim - 2], S = k->shape[k->ndim - 2];
  /* q is scaled before the product, as PyTorch does. */
  loom_tensor *scores = loom_matmul(loom_mul_scalar(q, 1 / sqrt((double)E)),
                                    loom_transpose(k, -2, -1));
  scores = apply_mask(scores, mask);
  if (causal)
    scores = loom_masked_fill(scores, causal_bool(L, S), -INFINITY);
  loom_tensor *w = loom_softmax(scores, -1);
  if (dropout > 0)
    w = loom_dropout(w, dropout, true, g);
  if (weights)
    *weights = w;
  return loom_matmul(w, v);
}

/* ---- seq2seq attention ---- */

static void seq_destroy(loom_module *m) { free(m); }

loom_seq_attention *loom_seq_attention_new(loom_score_kind kind,
                                           int64_t query_size, int64_t key_size,
                                           int64_t hidden) {
  if (query_size < 1 || key_size < 1 ||
      (kind == LOOM_SCORE_DOT && query_size != key_size) ||
      ((kind == LOOM_SCORE_CONCAT || kind == LOOM_SCORE_ADDITIVE) &&
       hidden < 1))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "seq_attention: sizes query %lld, "
                     "keys %lld, hidden %lld do not suit score kind %d",
                     (long long)query_size, (long long)key_size,
                     (long long)hidden, (int)kind);
  loom_seq_attention *a = calloc(1, sizeof *a);
  if (!a)
    return LOOM_FAIL(LOOM_ERR_MEMORY, "seq_attention: out of memory");
  loom_module_init(&a->base, "Attention", seq_destroy);
  a->kind = kind;
  a->query_size = query_size;
  a->key_size = key_size;
  a->hidden = hidden;
  bool ok = true;
  if (kind == LOOM_SCORE_GENERAL) {
    a->attn = (loom_linear_layer *)loom_module_add_child(
        &a->base, "attn",
        (loom_module *)loom_linear_layer_new(key_size, query_size, false));
    ok = a->attn != NULL;
  } else if (kind == LOOM_SCORE_CONCAT) {
    a->attn = (loom_linear_layer *)loom_module_add_child(
        &a->base, "attn",
        (loom_module *)loom_linear_layer_new(query_size + key_size, hidden,
                                             true));
    ok = a->attn != NULL;
  } else if (kind == LOOM_SCORE_ADDITIVE) {
    a->query_layer = (loom_linear_layer *)loom_module_add_child(
        &a->base, "query_layer",
        (loom_module *)loom_linear_layer_new(query_size, hidden, false));
    a->key_layer = (loom_linear_layer *)loom_module_add_child(
        &a->base, "key_layer",
        (loom_module *)loom_linear_layer_new(key_size, hidden, true));
    ok = a->query_layer && a->key_layer;
  }
  if (ok && (kind == LOOM_SCORE_CONCAT || kind == LOOM_SCORE_ADDITIVE)) {
    double b = 1 / sqrt((double)hidden);
    loom_scope *s = loom_scope_begin();
    a->v = loom_module_add_param(
        &a->base, "v",
        loom_rand(NULL, LOOM_DTYPE_DEFAULT, -b, b, LOOM_SHAPE(hidden)));
    loom_scope_end(s);
    ok = a->v != NULL;
  }
  if (!ok) {
    loom_module_free(&a->base);
    return NULL;
  }
  return a;
}

int loom_seq_attention_forward(loom_seq_attention *a, const loom_tensor *q,
                               const loom_tensor *keys, const loom_tensor *mask,
                               loom_tensor **context, loom_tensor **weights) {
  if (!a || !q || !keys || !context)
    return -1;
  if (q->ndim != 2 || keys->ndim != 3 || q->shape[0] != keys->shape[0] ||
      q->shape[1] != a->query_size || keys->shape[2] != a->key_size)
    return loom_set_error(LOOM_ERR_SHAPE,
                          "seq_attention: query %s and keys "
                          "%s, expected (B, %lld) and (B, S, %lld)",
                          loom__shp(q), loom__shp(keys),
                          (long long)a->query_size, (long long)a->key_size),
           -1;
  int64_t B = keys->shape[0], S = keys->shape[1];
  loom_tensor *scores; /* (B, S) */
  switch (a->kind) {
  case LOOM_SCORE_DOT:
    scores = loom_squeeze(loom_matmul(keys, loom_unsqueeze(q, 2)), 2);
    break;
  case LOOM_SCORE_GENERAL: /* q . (W k) = (W^T q) . k */
    scores = loom_squeeze(
        loom_matmul(keys, loom_unsqueeze(loom_matmul(q, a->attn->weight), 2)),
        2);
    break;
  case LOOM_SCORE_CONCAT: {
    loom_tensor *qs = loom_expand(loom_unsqueeze(q, 1), LOOM_SHAPE(B, S, -1));
    loom_tensor *cat =
        loom_concat((loom_tensor *[]){qs, (loom_tensor *)keys}, 2, 2);
    scores =
        loom_matmul(loom_tanh(loom_linear_layer_forward(a->attn, cat)), a->v);
    break;
  }
  default: {
    loom_tensor *e = loom_add(
        loom_unsqueeze(loom_linear_layer_forward(a->query_layer, q), 1),
        loom_linear_layer_forward(a->key_layer, keys));
    scores = loom_matmul(loom_tanh(e), a->v);
  }
  }
  scores = apply_mask(scores, mask);
  loom_tensor *w = loom_softmax(scores, 1);
  *context = loom_squeeze(loom_matmul(loom_unsqueeze(w, 1), keys), 1);
  if (weights)
    *weights = w;
  return *context ? 0 : -1;
}

void loom_seq_attention_free(loom_seq_attention *a) {
  loom_module_free(a ? &a->base : NULL);
}

/* ---- multi-head attention ---- */

loom_multihead_attention *loom_multihead_attention_new(int64_t E, int64_t heads,
                                                       loom_mha_opts o) {
  int64_t kdim = o.kdim ? o.kdim : E, vdim = o.vdim ? o.vdim : E;
  if (E < 1 || heads < 1 || E % heads || kdim < 1 || vdim < 1 ||
      !(o.dropout >= 0 && o.dropout < 1))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "MultiheadAttention: embed_dim %lld "
                     "must divide into %lld heads",
                     (long long)E, (long long)heads);
  loom_multihead_attention *m = calloc(1, sizeof *m);
  if (!m)
    return LOOM_FAIL(LOOM_ERR_MEMORY, "MultiheadAttention: out of memory");
  loom_module_init(&m->base, "MultiheadAttention", NULL);
  m->embed_dim = E;
  m->num_heads = heads;
  m->head_dim = E / heads;
  m->kdim = kdim;
  m->vdim = vdim;
  m->opts = o;
  loom_scope *s = loom_scope_begin();
  bool ok;
  if (kdim == E && vdim == E) {
    m->in_proj_weight = loom_module_add_param(
        &m->base, "in_proj_weight",
        loom_zeros(LOOM_DTYPE_DEFAULT, LOOM_SHAPE(3 * E, E)));
    ok = loom_init_xavier_uniform_(m->in_proj_weight, 1, NULL) == 0;
  } else {
    m->q_proj_weight =
        loom_module_add_param(&m->base, "q_proj_weight",
                              loom_zeros(LOOM_DTYPE_DEFAULT, LOOM_SHAPE(E, E)));
    m->k_proj_weight = loom_module_add_param(
        &m->base, "k_proj_weight",
        loom_zeros(LOOM_DTYPE_DEFAULT, LOOM_SHAPE(E, kdim)));
    m->v_proj_weight = loom_module_add_param(
        &m->base, "v_proj_weight",
        loom_zeros(LOOM_DTYPE_DEFAULT, LOOM_SHAPE(E, vdim)));
    ok = loom_init_xavier_uniform_(m->q_proj_weight, 1, NULL) == 0 &&
         loom_init_xavier_uniform_(m->k_proj_weight, 1, NULL) == 0 &&
         loom_init_xavier_uniform_(m->v_proj_weight, 1, NULL) == 0;
  }
  if (ok && !o.no_bias)
    ok = (m->in_proj_bias = loom_module_add_param(
              &m->base, "in_proj_bias",
              loom_zeros(LOOM_DTYPE_DEFAULT, LOOM_SHAPE(3 * E)))) != NULL;
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

/* Projection i (0: q, 1: k, 2: v) of x (..., in) -> (..., E). */
static loom_tensor *project(const loom_multihead_attention *m, int i,
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

/* (N, B, E) seq-first (or (B, N, E)) -> (B, heads, N, head_dim) view. */
static loom_tensor *split_heads(const loom_multihead_attention *m,
                                const loom_tensor *x) {
  bool bf = m->opts.batch_first;
  int64_t N = x->shape[bf ? 1 : 0], B = x->shape[bf ? 0 : 1];
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
  int64_t B = x->shape[0], N = x->shape[2];
  loom_tensor *p =
      loom_permute(x, bf ? (int[]){0, 2, 1, 3} : (int[]){2, 0, 1, 3});
  return loom_reshape(p, 3,
                      bf ? (int64_t[]){B, N, m->embed_dim}
                         : (int64_t[]){N, B, m->embed_dim});
}

static bool is_bool(const loom_tensor *t) {
  return loom_dtype_of(t) == LOOM_BOOL || loom_dtype_of(t) == LOOM_U8;
}

/* One (B, heads, L, S)-broadcastable mask from attn_mask and
 * key_padding_mask: bool if both are bool, else additive float. */
static const loom_tensor *combined_mask(const loom_multihead_attention *m,
                                        const loom_mha_args *a, int64_t B,
                                        int64_t L, int64_t S,
                                        loom_dtype dtype) {
  const loom_tensor *am = a ? a->attn_mask : NULL;
  const loom_tensor *kp = a ? a->key_padding_mask : NULL;
  if (am) {
    if (am->ndim == 3 && (am->shape[0] != B * m->num_heads ||
                          am->shape[1] != L || am->shape[2] != S))
      return LOOM_FAIL(LOOM_ERR_SHAPE,
                       "MultiheadAttention: attn_mask %s, "
                       "expected (%lld, %lld, %lld)",
                       loom__shp(am), (long long)(B * m->num_heads),
                       (long long)L, (long long)S);
    if (am->ndim == 2 && (am->shape[0] != L || am->shape[1] != S))
      return LOOM_FAIL(LOOM_ERR_SHAPE,
                       "MultiheadAttention: attn_mask %s, "
                       "expected (%lld, %lld)",
                       loom__shp(am), (long long)L, (long long)S);
    if (am->ndim == 3)
      am = loom_reshape(am, 4, (int64_t[]){B, m->num_heads, L, S});
    else if (am->ndim != 2)
      return LOOM_FAIL(LOOM_ERR_SHAPE,
                       "MultiheadAttention: attn_mask %s, "
                       "expected (L, S) or (B*heads, L, S)",
                       loom__shp(am));
  }
  if (kp) {
    if (kp->ndim != 2 || kp->shape[0] != B || kp->shape[1] != S)
      return LOOM_FAIL(LOOM_ERR_SHAPE,
                       "MultiheadAttention: key_padding_mask "
                       "%s, expected (%lld, %lld)",
                       loom__shp(kp), (long long)B, (long long)S);
    kp = loom_reshape(kp, 4, (int64_t[]){B, 1, 1, S});
  }
  if (!am || !kp)
    return am ? am : kp;
  if (is_bool(am) && is_bool(kp))
    return loom_logical_or(am, kp);
  const loom_tensor *fa =
      is_bool(am) ? loom_masked_fill(loom_zeros(dtype, am->ndim, am->shape), am,
                                     -INFINITY)
                  : am;
  const loom_tensor *fk =
      is_bool(kp) ? loom_masked_fill(loom_zeros(dtype, kp->ndim, kp->shape), kp,
                                     -INFINITY)
                  : kp;
  return loom_add(fa, fk);
}

/* PyTorch's unbatched call, query (L, E), key (S, kdim), value (S, vdim),
 * key_padding_mask (S), attn_mask (L, S) or (heads, L, S), runs as a batch
 * of one whose batch dim is dropped from the results. */
static int unbatched_forward(loom_multihead_attention *m,
                             const loom_tensor *query, const loom_tensor *key,
                             const loom_tensor *value, const loom_mha_args *a,
                             loom_tensor **out, loom_tensor **weights) {
  const loom_tensor *kp = a ? a->key_padding_mask : NULL;
  if (key->ndim != 2 || value->ndim != 2 || (kp && kp->ndim != 1))
    return loom_set_error(LOOM_ERR_SHAPE,
                          "MultiheadAttention: unbatched query %s needs "
                          "key (S, kdim), value (S, vdim) and "
                          "key_padding_mask (S); got %s, %s, %s",
                          loom__shp(query), loom__shp(key), loom__shp(value),
                          kp ? loom__shp(kp) : "none"),
           -1;
  int64_t L = query->shape[0], S = key->shape[0], H = m->num_heads;
  if (kp && kp->shape[0] != S)
    return loom_set_error(LOOM_ERR_SHAPE,
                          "MultiheadAttention: unbatched key_padding_mask "
                          "%s, expected (%lld)",
                          loom__shp(kp), (long long)S),
           -1;
  const loom_tensor *am = a ? a->attn_mask : NULL;
  if (am && !(am->ndim == 2 && am->shape[0] == L && am->shape[1] == S) &&
      !(am->ndim == 3 && am->shape[0] == H && am->shape[1] == L &&
        am->shape[2] == S))
    return loom_set_error(LOOM_ERR_SHAPE,
                          "MultiheadAttention: unbatched attn_mask %s, "
                          "expected (%lld, %lld) or (%lld, %lld, %lld)",
                          loom__shp(am), (long long)L, (long long)S,
                          (long long)H, (long long)L, (long long)S),
           -1;
  int d = m->opts.batch_first ? 0 : 1;
  loom_tensor *q = loom_unsqueeze(query, d);
  loom_tensor *k = key == query ? q : loom_unsqueeze(key, d);
  loom_tensor *v = value == query ? q
                   : value == key ? k
                                  : loom_unsqueeze(value, d);
  loom_mha_args b = a ? *a : (loom_mha_args){0};
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

int loom_multihead_attention_forward(loom_multihead_attention *m,
                                     const loom_tensor *query,
                                     const loom_tensor *key,
                                     const loom_tensor *value,
                                     const loom_mha_args *a, loom_tensor **out,
                                     loom_tensor **weights) {
  if (!m || !query || !key || !value || !out)
    return -1;
  if (query->ndim == 2)
    return unbatched_forward(m, query, key, value, a, out, weights);
  bool bf = m->opts.batch_first;
  if (query->ndim != 3 || key->ndim != 3 || value->ndim != 3 ||
      query->shape[2] != m->embed_dim || key->shape[2] != m->kdim ||
      value->shape[2] != m->vdim ||
      key->shape[bf ? 0 : 1] != query->shape[bf ? 0 : 1] ||
      key->shape[0] != value->shape[0] || key->shape[1] != value->shape[1])
    return loom_set_error(LOOM_ERR_SHAPE,
                          "MultiheadAttention: query %s, key "
                          "%s, value %s do not fit embed %lld (kdim %lld, "
                          "vdim %lld)%s",
                          loom__shp(query), loom__shp(key), loom__shp(value),
                          (long long)m->embed_dim, (long long)m->kdim,
                          (long long)m->vdim, bf ? ", batch first" : ""),
           -1;
  int64_t B = query->shape[bf ? 0 : 1], L = query->shape[bf ? 1 : 0],
          S = key->shape[bf ? 1 : 0];
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
    q = project(m, 0, query);
    k = project(m, 1, key);
    v = project(m, 2, value);
  }
  const loom_tensor *mask = combined_mask(m, a, B, L, S, query->dtype);
  if ((a && (a->attn_mask || a->key_padding_mask)) && !mask)
    return -1;
  loom_tensor *w = NULL;
  loom_tensor *o = loom_scaled_dot_product_attention(
      split_heads(m, q), split_heads(m, k), split_heads(m, v), mask,
      a && a->causal, m->base.training ? m->opts.dropout : 0, m->opts.rng,
      weights ? &w : NULL);
  *out = loom_linear_layer_forward(m->out_proj, merge_heads(m, o));
  if (weights)
    *weights =
        a && a->per_head_weights ? w : loom_mean(w, (int[]){1}, 1, false);
  return *out ? 0 : -1;
}

/* ---- incremental attention ---- */

struct loom_kv_cache {
  loom_tensor *k, *v; /* (B, heads, cap, head_dim), kept */
  int64_t len, cap;
  loom_tensor *mask; /* cross-attention: key padding as (B, 1, 1, S) */
  bool cross;
};

loom_kv_cache *loom_kv_cache_new(void) {
  loom_kv_cache *c = calloc(1, sizeof *c);
  if (!c)
    loom_set_error(LOOM_ERR_MEMORY, "kv_cache_new: out of memory");
  return c;
}

void loom_kv_cache_free(loom_kv_cache *c) {
  if (!c)
    return;
  loom_release(c->k);
  loom_release(c->v);
  loom_release(c->mask);
  free(c);
}

int64_t loom_kv_cache_length(const loom_kv_cache *c) { return c ? c->len : 0; }

/* Appends one position's k, v (B, heads, 1, head_dim), growing the
 * buffers geometrically so a sequence costs O(n) copies in all. */
static int append(loom_kv_cache *c, const loom_tensor *k,
                  const loom_tensor *v) {
  if (c->len == c->cap) {
    int64_t cap = c->cap ? 2 * c->cap : 16;
    int64_t shape[4] = {k->shape[0], k->shape[1], cap, k->shape[3]};
    loom_tensor *nk = loom_keep(loom_zeros(k->dtype, 4, shape));
    loom_tensor *nv = loom_keep(loom_zeros(v->dtype, 4, shape));
    if (!nk || !nv) {
      loom_release(nk);
      loom_release(nv);
      return -1;
    }
    if (c->len) {
      loom_copy_(loom_narrow(nk, 2, 0, c->len),
                 loom_narrow(c->k, 2, 0, c->len));
      loom_copy_(loom_narrow(nv, 2, 0, c->len),
                 loom_narrow(c->v, 2, 0, c->len));
    }
    loom_release(c->k);
    loom_release(c->v);
    c->k = nk;
    c->v = nv;
    c->cap = cap;
  }
  if (!loom_copy_(loom_narrow(c->k, 2, c->len, 1), k) ||
      !loom_copy_(loom_narrow(c->v, 2, c->len, 1), v))
    return -1;
  c->len++;
  return 0;
}

/* x (B, E) as (B, heads, 1, head_dim). */
static loom_tensor *one_position(const loom_multihead_attention *m,
                                 const loom_tensor *x) {
  return loom_unsqueeze(
      loom_reshape(x, 3, (int64_t[]){-1, m->num_heads, m->head_dim}), 2);
}

static loom_tensor *step_output(loom_multihead_attention *m,
                                const loom_tensor *o) {
  return loom_linear_layer_forward(
      m->out_proj, loom_reshape(o, 2, (int64_t[]){-1, m->embed_dim}));
}

loom_tensor *loom_multihead_attention_step(loom_multihead_attention *m,
                                           loom_kv_cache *c,
                                           const loom_tensor *x) {
  if (!m || !c || !x)
    return NULL;
  if (x->ndim != 2 || x->shape[1] != m->embed_dim || c->cross)
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "attention step: input %s, expected "
                     "(B, %lld) and a self-attention cache",
                     loom__shp(x), (long long)m->embed_dim);
  loom_no_grad_begin(); /* incremental decoding is inference */
  loom_tensor *out = NULL;
  if (append(c, one_position(m, project(m, 1, x)),
             one_position(m, project(m, 2, x))) == 0) {
    loom_tensor *o = loom_scaled_dot_product_attention(
        one_position(m, project(m, 0, x)), loom_narrow(c->k, 2, 0, c->len),
        loom_narrow(c->v, 2, 0, c->len), NULL, false, 0, NULL, NULL);
    out = step_output(m, o);
  }
  loom_no_grad_end();
  return out;
}

loom_tensor *loom_multihead_attention_cross_step(loom_multihead_attention *m,
                                                 loom_kv_cache *c,
                                                 const loom_tensor *x,
                                                 const loom_tensor *memory,
                                                 const loom_tensor *kpm) {
  if (!m || !c || !x || !memory)
    return NULL;
  loom_no_grad_begin();
  if (!c->cross) { /* project the memory once */
    loom_tensor *k = split_heads(m, project(m, 1, memory));
    loom_tensor *v = split_heads(m, project(m, 2, memory));
    c->k = loom_keep(loom_contiguous(k));
    c->v = loom_keep(loom_contiguous(v));
    /* a float mask stays additive, as in the full pass (finite entries
     * shift scores, they do not block) */
    if (kpm)
      c->mask = loom_keep(loom_reshape(
          kpm, 4, (int64_t[]){kpm->shape[0], 1, 1, kpm->shape[1]}));
    c->cross = true;
    c->len = c->k ? c->k->shape[2] : 0;
  }
  loom_tensor *o =
      loom_scaled_dot_product_attention(one_position(m, project(m, 0, x)), c->k,
                                        c->v, c->mask, false, 0, NULL, NULL);
  loom_tensor *out = step_output(m, o);
  loom_no_grad_end();
  return out;
}

/* ---- positional encodings ---- */

loom_tensor *loom_sinusoidal_encoding(loom_dtype dtype, int64_t n, int64_t d) {
  if (n < 0 || d < 1)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "sinusoidal_encoding: %lld x %lld",
                     (long long)n, (long long)d);
  double *v = malloc((size_t)(n * d + 1) * sizeof *v);
  if (!v)
    return LOOM_FAIL(LOOM_ERR_MEMORY, "sinusoidal_encoding: out of memory");
  for (int64_t p = 0; p < n; p++)
    for (int64_t i = 0; i < d; i++) {
      double rate = exp(-log(10000.0) * (double)(i - i % 2) / (double)d);
      v[p * d + i] = i % 2 ? cos((double)p * rate) : sin((double)p * rate);
    }
  loom_tensor *t =
      loom_to_dtype(loom_from_array(LOOM_F64, v, LOOM_SHAPE(n, d)), dtype);
  free(v);
  return t;
}

loom_learned_positions *loom_learned_positions_new(int64_t max_len, int64_t d) {
  if (max_len < 1 || d < 1)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "learned_positions: %lld x %lld",
                     (long long)max_len, (long long)d);
  loom_learned_positions *p = calloc(1, sizeof *p);
  if (!p)
    return LOOM_FAIL(LOOM_ERR_MEMORY, "learned_positions: out of memory");
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
  if (!p)
    return NULL;
  if (offset < 0 || n < 0 || offset + n > p->max_len)
    return LOOM_FAIL(LOOM_ERR_INDEX,
                     "learned_positions: positions %lld..%lld "
                     "beyond %lld",
                     (long long)offset, (long long)(offset + n - 1),
                     (long long)p->max_len);
  return loom_narrow(p->weight, 0, offset, n);
}

void loom_learned_positions_free(loom_learned_positions *p) {
  loom_module_free(p ? &p->base : NULL);
}
