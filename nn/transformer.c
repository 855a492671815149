/* Transformer encoder and decoder layers, their stacks, incremental
 * decoding, and nn.Transformer, with PyTorch's names and post-norm default
 * (norm_first for pre-norm). */
#include "attention.h"
#include "attention_internal.h"

#include <stdlib.h>

static loom_transformer_opts with_defaults(loom_transformer_opts o) {
  if (o.dim_feedforward == 0)
    o.dim_feedforward = 2048;
  if (o.layer_norm_eps == 0)
    o.layer_norm_eps = 1e-5;
  return o;
}

static bool valid(const loom_transformer_opts *o) {
  /* layer_norm_eps too: a negative or NaN one was refused by the
   * LayerNorm made from it, whose message ("LayerNorm: 1 dims (1 to 8),
   * eps -1 (> 0)") named neither the transformer nor the option */
  if (o->d_model < 1 || o->nhead < 1 || o->d_model % o->nhead ||
      o->dim_feedforward < 1 || !(o->dropout >= 0 && o->dropout < 1) ||
      !(o->layer_norm_eps > 0)) {
    /* the valid ranges too, so that a caller sees which one is off */
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "transformer: d_model %lld must be positive and divide "
                   "into nhead %lld (>= 1) heads, dim_feedforward %lld be "
                   "positive (0: 2048), dropout %g be in [0, 1), "
                   "layer_norm_eps %g be > 0 (0: 1e-5)",
                   (long long)o->d_model, (long long)o->nhead,
                   (long long)o->dim_feedforward, o->dropout,
                   o->layer_norm_eps);
    return false;
  }
  return true;
}

#define CHILD(m, name, T, make)                                                \
  (T *)loom_module_add_child(&(m)->base, name, (loom_module *)(make))

static loom_multihead_attention *attention(const loom_transformer_opts *o) {
  return loom_multihead_attention_new(
      o->d_model, o->nhead,
      (loom_multihead_attention_opts){
          .dropout = o->dropout, .batch_first = o->batch_first, .rng = o->rng});
}

static loom_layer_norm_layer *norm(const loom_transformer_opts *o) {
  return loom_layer_norm_layer_new(1, &o->d_model, o->layer_norm_eps, true);
}

static loom_tensor *dropout(const loom_module *m, const loom_tensor *x,
                            const loom_transformer_opts *o) {
  return loom_dropout(x, o->dropout, m->training, o->rng);
}

/* linear2(dropout(act(linear1(x)))) */
static loom_tensor *feed_forward(const loom_module *m, loom_linear_layer *l1,
                                 loom_linear_layer *l2, const loom_tensor *x,
                                 const loom_transformer_opts *o) {
  loom_tensor *h = loom_linear_layer_forward(l1, x);
  h = o->gelu ? loom_gelu(h, false) : loom_relu(h);
  return loom_linear_layer_forward(l2, dropout(m, h, o));
}

/* ---- encoder layer ---- */

loom_transformer_encoder_layer *
loom_transformer_encoder_layer_new(loom_transformer_opts o) {
  o = with_defaults(o);
  if (!valid(&o))
    return NULL;
  loom_transformer_encoder_layer *l = calloc(1, sizeof *l);
  if (!l)
    return LOOM_FAIL(LOOM_ERR_MEMORY, "TransformerEncoderLayer: out of memory");
  loom_module_init(&l->base, "TransformerEncoderLayer", NULL);
  l->opts = o;
  l->self_attn = CHILD(l, "self_attn", loom_multihead_attention, attention(&o));
  l->linear1 = CHILD(l, "linear1", loom_linear_layer,
                     loom_linear_layer_new(o.d_model, o.dim_feedforward, true));
  l->linear2 = CHILD(l, "linear2", loom_linear_layer,
                     loom_linear_layer_new(o.dim_feedforward, o.d_model, true));
  l->norm1 = CHILD(l, "norm1", loom_layer_norm_layer, norm(&o));
  l->norm2 = CHILD(l, "norm2", loom_layer_norm_layer, norm(&o));
  if (!l->self_attn || !l->linear1 || !l->linear2 || !l->norm1 || !l->norm2) {
    loom_module_free(&l->base);
    return NULL;
  }
  return l;
}

static loom_tensor *self_block(loom_multihead_attention *a,
                               const loom_module *m, const loom_tensor *x,
                               const loom_tensor *mask, const loom_tensor *kpm,
                               bool causal, const loom_transformer_opts *o) {
  loom_tensor *y;
  loom_multihead_attention_args args = {
      .key_padding_mask = kpm, .attn_mask = mask, .causal = causal};
  if (loom_multihead_attention_forward(a, x, x, x, &args, &y, NULL) < 0)
    return NULL;
  return dropout(m, y, o);
}

static loom_tensor *encoder_layer(loom_transformer_encoder_layer *l,
                                  const loom_tensor *src,
                                  const loom_transformer_masks *mk) {
  const loom_transformer_opts *o = &l->opts;
  const loom_module *m = &l->base;
  const loom_tensor *mask = mk ? mk->src_mask : NULL;
  const loom_tensor *kpm = mk ? mk->src_key_padding_mask : NULL;
  bool causal = mk && mk->src_causal;
  loom_tensor *x = (loom_tensor *)src;
  if (o->norm_first) {
    x = loom_add(x, self_block(l->self_attn, m,
                               loom_layer_norm_layer_forward(l->norm1, x), mask,
                               kpm, causal, o));
    return loom_add(
        x, dropout(m,
                   feed_forward(m, l->linear1, l->linear2,
                                loom_layer_norm_layer_forward(l->norm2, x), o),
                   o));
  }
  x = loom_layer_norm_layer_forward(
      l->norm1,
      loom_add(x, self_block(l->self_attn, m, x, mask, kpm, causal, o)));
  return loom_layer_norm_layer_forward(
      l->norm2,
      loom_add(x,
               dropout(m, feed_forward(m, l->linear1, l->linear2, x, o), o)));
}

/* A layer computes in a scope of its own, so that of its temporaries only
 * what backward reads outlives the call (the feed-forward's first product,
 * the sublayers' outputs before dropout and the residual sums' operands
 * go; a step at 256 positions kept 4 such tensors of (B, T, 4 d_model)
 * and (B, T, d_model) per layer until its end). */
loom_tensor *
loom_transformer_encoder_layer_forward(loom_transformer_encoder_layer *l,
                                       const loom_tensor *src,
                                       const loom_transformer_masks *mk) {
  if (!l || !src)
    return loom_null_argument("TransformerEncoderLayer");
  loom_scope *s = loom_scope_begin();
  return s ? loom_scope_return(s, encoder_layer(l, src, mk)) : NULL;
}

void loom_transformer_encoder_layer_free(loom_transformer_encoder_layer *l) {
  loom_module_free(l ? &l->base : NULL);
}

/* ---- decoder layer ---- */

loom_transformer_decoder_layer *
loom_transformer_decoder_layer_new(loom_transformer_opts o) {
  o = with_defaults(o);
  if (!valid(&o))
    return NULL;
  loom_transformer_decoder_layer *l = calloc(1, sizeof *l);
  if (!l)
    return LOOM_FAIL(LOOM_ERR_MEMORY, "TransformerDecoderLayer: out of memory");
  loom_module_init(&l->base, "TransformerDecoderLayer", NULL);
  l->opts = o;
  l->self_attn = CHILD(l, "self_attn", loom_multihead_attention, attention(&o));
  l->multihead_attn =
      CHILD(l, "multihead_attn", loom_multihead_attention, attention(&o));
  l->linear1 = CHILD(l, "linear1", loom_linear_layer,
                     loom_linear_layer_new(o.d_model, o.dim_feedforward, true));
  l->linear2 = CHILD(l, "linear2", loom_linear_layer,
                     loom_linear_layer_new(o.dim_feedforward, o.d_model, true));
  l->norm1 = CHILD(l, "norm1", loom_layer_norm_layer, norm(&o));
  l->norm2 = CHILD(l, "norm2", loom_layer_norm_layer, norm(&o));
  l->norm3 = CHILD(l, "norm3", loom_layer_norm_layer, norm(&o));
  if (!l->self_attn || !l->multihead_attn || !l->linear1 || !l->linear2 ||
      !l->norm1 || !l->norm2 || !l->norm3) {
    loom_module_free(&l->base);
    return NULL;
  }
  return l;
}

static loom_tensor *cross_block(loom_transformer_decoder_layer *l,
                                const loom_tensor *x, const loom_tensor *mem,
                                const loom_transformer_masks *mk) {
  loom_tensor *y;
  loom_multihead_attention_args args = {
      .attn_mask = mk ? mk->memory_mask : NULL,
      .key_padding_mask = mk ? mk->memory_key_padding_mask : NULL};
  if (loom_multihead_attention_forward(l->multihead_attn, x, mem, mem, &args,
                                       &y, NULL) < 0)
    return NULL;
  return dropout(&l->base, y, &l->opts);
}

static loom_tensor *decoder_layer(loom_transformer_decoder_layer *l,
                                  const loom_tensor *tgt,
                                  const loom_tensor *memory,
                                  const loom_transformer_masks *mk) {
  const loom_transformer_opts *o = &l->opts;
  const loom_module *m = &l->base;
  const loom_tensor *mask = mk ? mk->tgt_mask : NULL;
  const loom_tensor *kpm = mk ? mk->tgt_key_padding_mask : NULL;
  bool causal = mk && mk->tgt_causal;
  loom_tensor *x = (loom_tensor *)tgt;
  if (o->norm_first) {
    x = loom_add(x, self_block(l->self_attn, m,
                               loom_layer_norm_layer_forward(l->norm1, x), mask,
                               kpm, causal, o));
    x = loom_add(x, cross_block(l, loom_layer_norm_layer_forward(l->norm2, x),
                                memory, mk));
    return loom_add(
        x, dropout(m,
                   feed_forward(m, l->linear1, l->linear2,
                                loom_layer_norm_layer_forward(l->norm3, x), o),
                   o));
  }
  x = loom_layer_norm_layer_forward(
      l->norm1,
      loom_add(x, self_block(l->self_attn, m, x, mask, kpm, causal, o)));
  x = loom_layer_norm_layer_forward(l->norm2,
                                    loom_add(x, cross_block(l, x, memory, mk)));
  return loom_layer_norm_layer_forward(
      l->norm3,
      loom_add(x,
               dropout(m, feed_forward(m, l->linear1, l->linear2, x, o), o)));
}

/* In a scope of its own, as the encoder layer. */
loom_tensor *loom_transformer_decoder_layer_forward(
    loom_transformer_decoder_layer *l, const loom_tensor *tgt,
    const loom_tensor *memory, const loom_transformer_masks *mk) {
  if (!l || !tgt || !memory)
    return loom_null_argument("TransformerDecoderLayer");
  loom_scope *s = loom_scope_begin();
  return s ? loom_scope_return(s, decoder_layer(l, tgt, memory, mk)) : NULL;
}

void loom_transformer_decoder_layer_free(loom_transformer_decoder_layer *l) {
  loom_module_free(l ? &l->base : NULL);
}

/* ---- stacks ---- */

static loom_transformer_stack *stack_new(loom_transformer_opts o, int n,
                                         bool final_norm, bool decoder) {
  /* a bound so that a garbage count fails at once instead of building
   * layers until memory runs out (deep published models have ~100) */
  enum { MAX_LAYERS = 4096 };
  o = with_defaults(o);
  if (n < 1 || n > MAX_LAYERS)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "transformer: %d layers (1 to %d)", n,
                     MAX_LAYERS);
  if (!valid(&o))
    return NULL;
  loom_transformer_stack *s = calloc(1, sizeof *s);
  if (!s)
    return LOOM_FAIL(LOOM_ERR_MEMORY, "transformer: out of memory");
  loom_module_init(&s->base,
                   decoder ? "TransformerDecoder" : "TransformerEncoder", NULL);
  s->opts = o;
  s->decoder = decoder;
  s->layers = loom_module_add_child(&s->base, "layers", loom_module_list_new());
  bool ok = s->layers != NULL;
  for (int i = 0; ok && i < n; i++) {
    loom_module *layer =
        decoder ? (loom_module *)loom_transformer_decoder_layer_new(o)
                : (loom_module *)loom_transformer_encoder_layer_new(o);
    ok = loom_module_list_append(s->layers, layer) != NULL;
  }
  s->n = n;
  if (ok && final_norm)
    ok = (s->norm = CHILD(s, "norm", loom_layer_norm_layer, norm(&o))) != NULL;
  if (!ok) {
    loom_module_free(&s->base);
    return NULL;
  }
  return s;
}

loom_transformer_stack *loom_transformer_encoder_new(loom_transformer_opts o,
                                                     int n, bool final_norm) {
  return stack_new(o, n, final_norm, false);
}

loom_transformer_stack *loom_transformer_decoder_new(loom_transformer_opts o,
                                                     int n, bool final_norm) {
  return stack_new(o, n, final_norm, true);
}

void loom_transformer_stack_free(loom_transformer_stack *s) {
  loom_module_free(s ? &s->base : NULL);
}

loom_tensor *loom_transformer_encoder_forward(loom_transformer_stack *s,
                                              const loom_tensor *src,
                                              const loom_transformer_masks *m) {
  if (!s || !src)
    return loom_null_argument("TransformerEncoder");
  loom_tensor *x = (loom_tensor *)src;
  for (int i = 0; i < s->n && x; i++)
    x = loom_transformer_encoder_layer_forward(
        (loom_transformer_encoder_layer *)loom_module_child(s->layers, i), x,
        m);
  return s->norm ? loom_layer_norm_layer_forward(s->norm, x) : x;
}

loom_tensor *loom_transformer_decoder_forward(loom_transformer_stack *s,
                                              const loom_tensor *tgt,
                                              const loom_tensor *memory,
                                              const loom_transformer_masks *m) {
  if (!s || !tgt)
    return loom_null_argument("TransformerDecoder");
  loom_tensor *x = (loom_tensor *)tgt;
  for (int i = 0; i < s->n && x; i++)
    x = loom_transformer_decoder_layer_forward(
        (loom_transformer_decoder_layer *)loom_module_child(s->layers, i), x,
        memory, m);
  return s->norm ? loom_layer_norm_layer_forward(s->norm, x) : x;
}

/* ---- incremental decoding ---- */

struct loom_decoder_state {
  /* the stack it was made for, compared, never followed: its caches hold
   * that stack's keys and values, one per layer */
  const loom_transformer_stack *stack;
  bool decoder; /* with the cross caches */
  int n;
  int batch_dim; /* of the memory: 0 when batch first, else 1 */
  loom_kv_cache **self, **cross;
  loom_tensor *memory, *kpm; /* kept */
};

loom_decoder_state *loom_decoder_state_new(loom_transformer_stack *s,
                                           const loom_tensor *memory,
                                           const loom_tensor *kpm) {
  if (!s)
    return loom_null_argument("decoder_state");
  if (s->decoder && !memory)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "decoder_state: a decoder needs the "
                                        "encoder's memory");
  /* a stack of encoder layers has no cross-attention: a memory or mask
   * given to it would be kept and never read */
  if (!s->decoder && (memory || kpm))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "decoder_state: a stack of encoder layers takes no "
                     "memory or memory_key_padding_mask (pass NULL)");
  if (s->decoder &&
      !loom__cross_memory_ok(
          ((loom_transformer_decoder_layer *)loom_module_child(s->layers, 0))
              ->multihead_attn,
          memory, kpm, -1, "decoder_state"))
    return NULL;
  loom_decoder_state *st = calloc(1, sizeof *st);
  if (!st)
    return LOOM_FAIL(LOOM_ERR_MEMORY, "decoder_state: out of memory");
  st->stack = s;
  st->decoder = s->decoder;
  st->n = s->n;
  st->batch_dim = s->opts.batch_first ? 0 : 1;
  st->self = calloc((size_t)s->n, sizeof *st->self);
  st->cross = calloc((size_t)s->n, sizeof *st->cross);
  bool ok = st->self && st->cross;
  for (int i = 0; ok && i < s->n; i++) {
    st->self[i] = loom_kv_cache_new();
    st->cross[i] = s->decoder ? loom_kv_cache_new() : NULL;
    ok = st->self[i] && (!s->decoder || st->cross[i]);
  }
  st->memory = loom_keep((loom_tensor *)memory);
  st->kpm = loom_keep((loom_tensor *)kpm);
  if (!ok) {
    loom_decoder_state_free(st);
    return LOOM_FAIL(LOOM_ERR_MEMORY, "decoder_state: out of memory");
  }
  return st;
}

void loom_decoder_state_free(loom_decoder_state *st) {
  if (!st)
    return;
  for (int i = 0; i < st->n; i++) {
    if (st->self)
      loom_kv_cache_free(st->self[i]);
    if (st->cross)
      loom_kv_cache_free(st->cross[i]);
  }
  free(st->self);
  free(st->cross);
  loom_release(st->memory);
  loom_release(st->kpm);
  free(st);
}

/* Replaces a kept *t by its rows `index` along dim (NULL stays NULL). */
static bool reorder_rows(loom_tensor **t, int dim, const loom_tensor *index) {
  if (!*t)
    return true;
  loom_tensor *r = loom_index_select(*t, dim, index);
  if (!r)
    return false;
  loom_release(*t);
  *t = loom_keep(r);
  return true;
}

int loom_decoder_state_reorder(loom_decoder_state *st,
                               const loom_tensor *index) {
  if (!st || !index) {
    loom_set_error(LOOM_ERR_ARGUMENT, "decoder_state_reorder: NULL argument");
    return -1;
  }
  loom_no_grad_begin();
  loom_scope *s = loom_scope_begin();
  bool ok = true;
  for (int i = 0; ok && i < st->n; i++)
    ok = loom_kv_cache_reorder(st->self[i], index) == 0 &&
         (!st->cross[i] || loom_kv_cache_reorder(st->cross[i], index) == 0);
  ok = ok && reorder_rows(&st->memory, st->batch_dim, index) &&
       reorder_rows(&st->kpm, 0, index);
  loom_scope_end(s);
  loom_no_grad_end();
  return ok ? 0 : -1;
}

/* One position through one layer; x (B, E). */
static loom_tensor *layer_step(loom_transformer_stack *s,
                               loom_decoder_state *st, int i, loom_tensor *x) {
  loom_module *layer = loom_module_child(s->layers, i);
  const loom_transformer_opts *o = &s->opts;
  loom_multihead_attention *sa, *ca = NULL;
  loom_linear_layer *l1, *l2;
  loom_layer_norm_layer *n1, *n2, *n3 = NULL;
  if (s->decoder) {
    loom_transformer_decoder_layer *d = (loom_transformer_decoder_layer *)layer;
    sa = d->self_attn;
    ca = d->multihead_attn;
    l1 = d->linear1;
    l2 = d->linear2;
    n1 = d->norm1;
    n2 = d->norm2;
    n3 = d->norm3;
  } else {
    loom_transformer_encoder_layer *e = (loom_transformer_encoder_layer *)layer;
    sa = e->self_attn;
    l1 = e->linear1;
    l2 = e->linear2;
    n1 = e->norm1;
    n2 = e->norm2;
  }
  loom_layer_norm_layer *nf =
      s->decoder ? n3 : n2; /* the feed-forward's norm */
  if (o->norm_first) {
    x = loom_add(x, loom_multihead_attention_step(
                        sa, st->self[i], loom_layer_norm_layer_forward(n1, x)));
    if (ca)
      x = loom_add(x,
                   loom_multihead_attention_cross_step(
                       ca, st->cross[i], loom_layer_norm_layer_forward(n2, x),
                       st->memory, st->kpm));
    return loom_add(x, feed_forward(layer, l1, l2,
                                    loom_layer_norm_layer_forward(nf, x), o));
  }
  x = loom_layer_norm_layer_forward(
      n1, loom_add(x, loom_multihead_attention_step(sa, st->self[i], x)));
  if (ca)
    x = loom_layer_norm_layer_forward(
        n2, loom_add(x, loom_multihead_attention_cross_step(
                            ca, st->cross[i], x, st->memory, st->kpm)));
  return loom_layer_norm_layer_forward(
      nf, loom_add(x, feed_forward(layer, l1, l2, x, o)));
}

loom_tensor *loom_transformer_step(loom_transformer_stack *s,
                                   loom_decoder_state *st,
                                   const loom_tensor *x) {
  if (!s || !st || !x)
    return loom_null_argument("transformer_step");
  if (loom_ndim(x) != 2 || loom_shape(x)[1] != s->opts.d_model)
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "transformer_step: input %s, expected "
                     "(B, %lld)",
                     loom_shape_text(x), (long long)s->opts.d_model);
  if (st->stack != s || st->n != s->n || st->decoder != s->decoder)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "transformer_step: the decoder state was made for "
                     "another stack (make it with loom_decoder_state_new of "
                     "this one)");
  /* before any layer runs: a batch the memory does not have failed in
   * the first cross step, after the self-attention caches had taken the
   * position, leaving the state one position ahead for every later step */
  if (st->memory && loom_size(x, 0) != loom_size(st->memory, st->batch_dim))
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "transformer_step: a batch of %lld rows, the memory "
                     "has %lld (reorder the state to change it)",
                     (long long)loom_size(x, 0),
                     (long long)loom_size(st->memory, st->batch_dim));
  loom_no_grad_begin();
  loom_tensor *y = (loom_tensor *)x;
  for (int i = 0; i < s->n && y; i++)
    y = layer_step(s, st, i, y);
  if (s->norm && y)
    y = loom_layer_norm_layer_forward(s->norm, y);
  loom_no_grad_end();
  return y;
}

/* ---- nn.Transformer ---- */

loom_transformer *loom_transformer_new(loom_transformer_opts o, int n_enc,
                                       int n_dec) {
  loom_transformer *t = calloc(1, sizeof *t);
  if (!t)
    return LOOM_FAIL(LOOM_ERR_MEMORY, "Transformer: out of memory");
  loom_module_init(&t->base, "Transformer", NULL);
  t->opts = with_defaults(o);
  t->encoder = CHILD(t, "encoder", loom_transformer_stack,
                     loom_transformer_encoder_new(o, n_enc, true));
  t->decoder = CHILD(t, "decoder", loom_transformer_stack,
                     loom_transformer_decoder_new(o, n_dec, true));
  bool ok = t->encoder && t->decoder;
  if (ok) { /* nn.Transformer._reset_parameters */
    loom_tensor *ps[512];
    int n = loom_module_parameters(&t->base, ps, 512);
    for (int i = 0; ok && i < n && i < 512; i++)
      if (loom_ndim(ps[i]) > 1)
        ok = loom_init_xavier_uniform_(ps[i], 1, NULL) == 0;
  }
  if (!ok) {
    loom_module_free(&t->base);
    return NULL;
  }
  return t;
}

loom_tensor *loom_transformer_forward(loom_transformer *t,
                                      const loom_tensor *src,
                                      const loom_tensor *tgt,
                                      const loom_transformer_masks *m) {
  if (!t)
    return loom_null_argument("Transformer");
  loom_tensor *memory = loom_transformer_encoder_forward(t->encoder, src, m);
  return loom_transformer_decoder_forward(t->decoder, tgt, memory, m);
}

void loom_transformer_free(loom_transformer *t) {
  loom_module_free(t ? &t->base : NULL);
}
