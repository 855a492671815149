/* Incremental multi-head attention for decoding one position at a time:
 * the keys and values of earlier positions (self-attention) or of the
 * encoder's memory (cross-attention) are kept in a cache, so a step costs
 * O(t) and never recomputes the prefix. Rows can be reordered, which is
 * what beam search does to its hypotheses. */
#include "attention.h"
#include "attention_internal.h"

#include <stdlib.h>

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

int64_t loom_kv_cache_length(const loom_kv_cache *c) {
  return c ? c->len : (loom_null_argument("kv_cache_length"), -1);
}

/* Whether a step's x has the batch of what the cache holds (any batch while
 * it holds nothing); else false with an error naming op and `held`. */
static bool same_batch(const loom_kv_cache *c, const loom_tensor *x,
                       const char *op, const char *held) {
  if (!c->k || loom_size(x, 0) == loom_size(c->k, 0))
    return true;
  loom_set_error(LOOM_ERR_SHAPE,
                 "%s: a batch of %lld rows, %s has %lld (reorder the cache to "
                 "change it)",
                 op, (long long)loom_size(x, 0), held,
                 (long long)loom_size(c->k, 0));
  return false;
}

/* Replaces *slot (a kept reference) with a kept t; false if t is NULL. */
static bool replace(loom_tensor **slot, loom_tensor *t) {
  if (!t)
    return false;
  loom_release(*slot);
  *slot = loom_keep(t);
  return true;
}

int loom_kv_cache_reorder(loom_kv_cache *c, const loom_tensor *index) {
  if (!c || !index) {
    loom_set_error(LOOM_ERR_ARGUMENT, "kv_cache_reorder: NULL argument");
    return -1;
  }
  if (!c->k) /* nothing cached yet: the first step will see the new rows */
    return 0;
  loom_no_grad_begin();
  loom_scope *s = loom_scope_begin();
  bool ok =
      replace(&c->k, loom_index_select(c->k, 0, index)) &&
      replace(&c->v, loom_index_select(c->v, 0, index)) &&
      (!c->mask || replace(&c->mask, loom_index_select(c->mask, 0, index)));
  loom_scope_end(s);
  loom_no_grad_end();
  return ok ? 0 : -1;
}

/* Appends one position's k, v (B, heads, 1, head_dim), growing the
 * buffers geometrically so a sequence costs O(n) copies in all. */
static int append(loom_kv_cache *c, const loom_tensor *k,
                  const loom_tensor *v) {
  if (!k || !v)
    return -1;
  if (c->len == c->cap) {
    int64_t cap = c->cap ? 2 * c->cap : 16;
    int64_t shape[4] = {loom_size(k, 0), loom_size(k, 1), cap, loom_size(k, 3)};
    loom_tensor *nk = loom_zeros(loom_dtype_of(k), 4, shape);
    loom_tensor *nv = loom_zeros(loom_dtype_of(v), 4, shape);
    if (!nk || !nv)
      return -1;
    if (c->len && (!loom_copy_(loom_narrow(nk, 2, 0, c->len),
                               loom_narrow(c->k, 2, 0, c->len)) ||
                   !loom_copy_(loom_narrow(nv, 2, 0, c->len),
                               loom_narrow(c->v, 2, 0, c->len))))
      return -1;
    replace(&c->k, nk);
    replace(&c->v, nv);
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

static bool is_step_input(const loom_multihead_attention *m,
                          const loom_tensor *x, const char *op) {
  if (loom_ndim(x) == 2 && loom_size(x, 1) == m->embed_dim)
    return true;
  char xs[64];
  loom_set_error(LOOM_ERR_SHAPE, "%s: input %s, expected (B, %lld)", op,
                 loom_shape_str(x, xs, sizeof xs), (long long)m->embed_dim);
  return false;
}

loom_tensor *loom_multihead_attention_step(loom_multihead_attention *m,
                                           loom_kv_cache *c,
                                           const loom_tensor *x) {
  if (!m || !c || !x) {
    loom_set_error(LOOM_ERR_ARGUMENT, "attention step: NULL argument");
    return NULL;
  }
  if (!is_step_input(m, x, "attention step"))
    return NULL;
  /* x is the query, key and value at once: a module made for other key or
   * value widths had failed in its key projection, naming only a linear */
  if (m->kdim != m->embed_dim || m->vdim != m->embed_dim) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "attention step: self-attention needs kdim and vdim equal "
                   "to embed_dim %lld, the module has kdim %lld, vdim %lld",
                   (long long)m->embed_dim, (long long)m->kdim,
                   (long long)m->vdim);
    return NULL;
  }
  if (c->cross) {
    loom_set_error(LOOM_ERR_STATE, "attention step: the cache holds "
                                   "cross-attention keys, not a prefix");
    return NULL;
  }
  if (!same_batch(c, x, "attention step", "the cache's prefix"))
    return NULL;
  loom_no_grad_begin(); /* incremental decoding is inference */
  loom_tensor *out = NULL;
  if (append(c, one_position(m, loom__multihead_attention_project(m, 1, x)),
             one_position(m, loom__multihead_attention_project(m, 2, x))) ==
      0) {
    loom_tensor *o = loom_scaled_dot_product_attention(
        one_position(m, loom__multihead_attention_project(m, 0, x)),
        loom_narrow(c->k, 2, 0, c->len), loom_narrow(c->v, 2, 0, c->len), NULL,
        false, 0, NULL, NULL);
    out = step_output(m, o);
  }
  loom_no_grad_end();
  return out;
}

bool loom__cross_memory_ok(const loom_multihead_attention *m,
                           const loom_tensor *memory, const loom_tensor *kpm,
                           int64_t b, const char *op) {
  char ms[64], ks[64];
  int bd = m->opts.batch_first ? 0 : 1;
  if (!loom_dtype_is_float(loom_dtype_of(memory))) {
    loom_set_error(LOOM_ERR_DTYPE, "%s: memory must be float32 or float64", op);
    return false;
  }
  /* the memory gives both keys and values */
  if (m->kdim != m->vdim) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "%s: one memory serves as keys and values, so kdim %lld "
                   "and vdim %lld must be equal",
                   op, (long long)m->kdim, (long long)m->vdim);
    return false;
  }
  if (loom_ndim(memory) != 3 || loom_size(memory, 2) != m->kdim ||
      (b >= 0 && loom_size(memory, bd) != b)) {
    loom_set_error(LOOM_ERR_SHAPE,
                   "%s: memory %s, expected %s with E = %lld%s%.0lld", op,
                   loom_shape_str(memory, ms, sizeof ms),
                   bd ? "(S, B, E)" : "(B, S, E)", (long long)m->kdim,
                   b >= 0 ? " and B = " : "", (long long)(b >= 0 ? b : 0));
    return false;
  }
  if (!kpm)
    return true;
  loom_dtype kd = loom_dtype_of(kpm);
  if (kd != LOOM_BOOL && kd != LOOM_U8 && !loom_dtype_is_float(kd)) {
    loom_set_error(LOOM_ERR_DTYPE,
                   "%s: key padding mask must be bool, uint8 or float", op);
    return false;
  }
  int64_t mb = loom_size(memory, bd), ms_len = loom_size(memory, 1 - bd);
  if (loom_ndim(kpm) != 2 || loom_size(kpm, 0) != mb ||
      loom_size(kpm, 1) != ms_len) {
    loom_set_error(LOOM_ERR_SHAPE,
                   "%s: key padding mask %s, expected (%lld, %lld) for "
                   "memory %s",
                   op, loom_shape_str(kpm, ks, sizeof ks), (long long)mb,
                   (long long)ms_len, loom_shape_str(memory, ms, sizeof ms));
    return false;
  }
  return true;
}

/* Projects the memory's keys and values (and keeps the key padding mask)
 * once, at the first cross step. All three are made before any goes into
 * the cache, so a failure leaves it as it was, to be filled again. */
static int fill_cross(loom_multihead_attention *m, loom_kv_cache *c,
                      const loom_tensor *memory, const loom_tensor *kpm) {
  loom_tensor *k = loom_contiguous(loom__multihead_attention_split_heads(
      m, loom__multihead_attention_project(m, 1, memory)));
  loom_tensor *v = loom_contiguous(loom__multihead_attention_split_heads(
      m, loom__multihead_attention_project(m, 2, memory)));
  /* a float mask stays additive, as in the full pass (finite entries
   * shift scores, they do not block) */
  loom_tensor *mask =
      kpm ? loom_reshape(
                kpm, 4, (int64_t[]){loom_size(kpm, 0), 1, 1, loom_size(kpm, 1)})
          : NULL;
  if (!k || !v || (kpm && !mask))
    return -1;
  replace(&c->k, k);
  replace(&c->v, v);
  if (mask)
    replace(&c->mask, mask);
  c->cross = true;
  c->len = loom_size(c->k, 2);
  return 0;
}

loom_tensor *loom_multihead_attention_cross_step(loom_multihead_attention *m,
                                                 loom_kv_cache *c,
                                                 const loom_tensor *x,
                                                 const loom_tensor *memory,
                                                 const loom_tensor *kpm) {
  if (!m || !c || !x || !memory) {
    loom_set_error(LOOM_ERR_ARGUMENT, "attention cross step: NULL argument");
    return NULL;
  }
  if (!is_step_input(m, x, "attention cross step"))
    return NULL;
  /* as a self step refuses a cross cache: filling it would drop the
   * prefix without a word */
  if (!c->cross && c->len > 0) {
    loom_set_error(LOOM_ERR_STATE,
                   "attention cross step: the cache holds a self-attention "
                   "prefix of %lld positions, not the memory's keys",
                   (long long)c->len);
    return NULL;
  }
  /* checked before anything is projected, so a bad memory or mask is
   * named here rather than failing deep inside a reshape or matmul */
  if (!c->cross && !loom__cross_memory_ok(m, memory, kpm, loom_size(x, 0),
                                          "attention cross step"))
    return NULL;
  if (c->cross &&
      !same_batch(c, x, "attention cross step", "the cached memory"))
    return NULL;
  loom_no_grad_begin();
  loom_tensor *out = NULL;
  if (c->cross || fill_cross(m, c, memory, kpm) == 0) {
    loom_tensor *o = loom_scaled_dot_product_attention(
        one_position(m, loom__multihead_attention_project(m, 0, x)), c->k, c->v,
        c->mask, false, 0, NULL, NULL);
    out = step_output(m, o);
  }
  loom_no_grad_end();
  return out;
}
