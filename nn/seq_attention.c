/* Attention for RNN encoder-decoders: one decoder state scores every
 * encoder output (Luong's dot, general and concat forms, Bahdanau's
 * additive form) and reads their weighted sum. */
#include "attention.h"
#include "attention_internal.h"

#include <math.h>
#include <stdlib.h>

static loom_linear_layer *child(loom_seq_attention *a, const char *name,
                                int64_t in, int64_t out, bool bias) {
  return (loom_linear_layer *)loom_module_add_child(
      &a->base, name, (loom_module *)loom_linear_layer_new(in, out, bias));
}

loom_seq_attention *loom_seq_attention_new(loom_score_kind kind,
                                           int64_t query_size, int64_t key_size,
                                           int64_t hidden) {
  bool tanh_layer = kind == LOOM_SCORE_CONCAT || kind == LOOM_SCORE_ADDITIVE;
  if (kind < LOOM_SCORE_DOT || kind > LOOM_SCORE_ADDITIVE || query_size < 1 ||
      key_size < 1 || (kind == LOOM_SCORE_DOT && query_size != key_size) ||
      (tanh_layer && hidden < 1) ||
      (kind == LOOM_SCORE_CONCAT && query_size > INT64_MAX - key_size)) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "seq_attention: sizes query %lld, keys %lld, hidden %lld "
                   "do not suit score kind %d (dot needs query == keys; "
                   "concat and additive need hidden >= 1)",
                   (long long)query_size, (long long)key_size,
                   (long long)hidden, (int)kind);
    return NULL;
  }
  loom_seq_attention *a = calloc(1, sizeof *a);
  if (!a) {
    loom_set_error(LOOM_ERR_MEMORY, "seq_attention: out of memory");
    return NULL;
  }
  loom_module_init(&a->base, "Attention", NULL);
  a->kind = kind;
  a->query_size = query_size;
  a->key_size = key_size;
  a->hidden = hidden;
  bool ok = true;
  if (kind == LOOM_SCORE_GENERAL)
    ok = (a->attn = child(a, "attn", key_size, query_size, false)) != NULL;
  else if (kind == LOOM_SCORE_CONCAT)
    ok = (a->attn = child(a, "attn", query_size + key_size, hidden, true));
  else if (kind == LOOM_SCORE_ADDITIVE)
    ok =
        (a->query_layer = child(a, "query_layer", query_size, hidden, false)) &&
        (a->key_layer = child(a, "key_layer", key_size, hidden, true));
  if (ok && tanh_layer) {
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

/* Scores (B, S) of query (B, Q) against keys (B, S, K). */
static loom_tensor *scores(loom_seq_attention *a, const loom_tensor *q,
                           const loom_tensor *keys) {
  switch (a->kind) {
  case LOOM_SCORE_DOT:
    return loom_squeeze(loom_matmul(keys, loom_unsqueeze(q, 2)), 2);
  case LOOM_SCORE_GENERAL: /* q . (W k) = (W^T q) . k */
    return loom_squeeze(
        loom_matmul(keys, loom_unsqueeze(loom_matmul(q, a->attn->weight), 2)),
        2);
  case LOOM_SCORE_CONCAT: {
    loom_tensor *qs = loom_expand(loom_unsqueeze(q, 1),
                                  LOOM_SHAPE(-1, loom_size(keys, 1), -1));
    loom_tensor *cat =
        loom_concat((loom_tensor *[]){qs, (loom_tensor *)keys}, 2, 2);
    return loom_matmul(loom_tanh(loom_linear_layer_forward(a->attn, cat)),
                       a->v);
  }
  default: {
    loom_tensor *e = loom_add(
        loom_unsqueeze(loom_linear_layer_forward(a->query_layer, q), 1),
        loom_linear_layer_forward(a->key_layer, keys));
    return loom_matmul(loom_tanh(e), a->v);
  }
  }
}

int loom_seq_attention_forward(loom_seq_attention *a, const loom_tensor *q,
                               const loom_tensor *keys, const loom_tensor *mask,
                               loom_tensor **context, loom_tensor **weights) {
  if (context)
    *context = NULL;
  if (weights)
    *weights = NULL;
  if (!a || !q || !keys || !context) {
    loom_set_error(LOOM_ERR_ARGUMENT, "seq_attention: NULL argument");
    return -1;
  }
  if (loom_ndim(q) != 2 || loom_ndim(keys) != 3 ||
      loom_size(q, 0) != loom_size(keys, 0) ||
      loom_size(q, 1) != a->query_size || loom_size(keys, 2) != a->key_size) {
    char qs[64], ks[64];
    loom_set_error(LOOM_ERR_SHAPE,
                   "seq_attention: query %s and keys %s, expected (B, %lld) "
                   "and (B, S, %lld)",
                   loom_shape_str(q, qs, sizeof qs),
                   loom_shape_str(keys, ks, sizeof ks),
                   (long long)a->query_size, (long long)a->key_size);
    return -1;
  }
  loom_tensor *w = loom_softmax(loom__apply_mask(scores(a, q, keys), mask), 1);
  *context = loom_squeeze(loom_matmul(loom_unsqueeze(w, 1), keys), 1);
  if (weights)
    *weights = w;
  return *context ? 0 : -1;
}

void loom_seq_attention_free(loom_seq_attention *a) {
  loom_module_free(a ? &a->base : NULL);
}
