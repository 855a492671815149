/* The transformer encoder-decoder (Vaswani et al. 2017) on loom's
 * nn.Transformer: token embeddings scaled by sqrt(d_model) plus sinusoidal
 * or learned positions, dropout, the encoder and decoder stacks (post-norm
 * as PyTorch's default, or pre-norm), and an output layer that may be the
 * decoder's embedding itself (tied), with one embedding for everything
 * when source and target share a joint vocabulary. Decoding steps through
 * the decoder's key/value caches (loom_transformer_step). */
#include "nmt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  nmt_model base;
  loom_embedding_layer *src_emb, *tgt_emb; /* the same one when shared */
  loom_learned_positions *positions;       /* NULL: sinusoidal */
  loom_tensor *sinusoid;                   /* (max_positions, d), kept */
  loom_transformer *tf;
  loom_linear_layer *out; /* NULL when tied */
  double scale;
} tf_model;

/* Embedded tokens (n, B) (or (B) for one step at position `offset`)
 * scaled, plus positions offset.., then dropout. */
static loom_tensor *embed(tf_model *m, loom_embedding_layer *e,
                          const loom_tensor *ids, int64_t offset) {
  int64_t n = loom_ndim(ids) == 2 ? loom_size(ids, 0) : 1;
  if (offset + n > m->base.cfg.max_positions) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "translate: a sentence of %lld tokens is longer than the "
                   "model's %lld positions",
                   (long long)(offset + n),
                   (long long)m->base.cfg.max_positions);
    return NULL;
  }
  loom_tensor *pos =
      m->positions ? loom_learned_positions_forward(m->positions, offset, n)
                   : loom_narrow(m->sinusoid, 0, offset, n);
  if (loom_ndim(ids) == 2)
    pos = loom_unsqueeze(pos, 1); /* (n, 1, d) against (n, B, d) */
  loom_tensor *x = loom_add(
      loom_mul_scalar(loom_embedding_layer_forward(e, ids), m->scale), pos);
  return loom_dropout(x, m->base.cfg.dropout, m->base.base.training,
                      m->base.rng);
}

static loom_tensor *project(tf_model *m, const loom_tensor *h) {
  return m->out ? loom_linear_layer_forward(m->out, h)
                : loom_linear(h, m->tgt_emb->weight, NULL);
}

static loom_tensor *encode(tf_model *m, const nmt_batch *b) {
  loom_transformer_masks mk = {.src_key_padding_mask = b->src_pad};
  return loom_transformer_encoder_forward(m->tf->encoder,
                                          embed(m, m->src_emb, b->src, 0), &mk);
}

static loom_tensor *tf_logits(nmt_model *base, const nmt_batch *b) {
  tf_model *m = (tf_model *)base;
  loom_transformer_masks mk = {.tgt_causal = true,
                               .tgt_key_padding_mask = b->tgt_pad,
                               .memory_key_padding_mask = b->src_pad};
  loom_tensor *h = loom_transformer_decoder_forward(
      m->tf->decoder, embed(m, m->tgt_emb, b->tgt_in, 0), encode(m, b), &mk);
  return project(m, h);
}

/* The last decoder layer's cross-attention, recomputed: the layers below
 * run as usual, then the last one's self-attention block, then its
 * cross-attention asked for weights (averaged over heads). */
static loom_tensor *tf_attention(nmt_model *base, const nmt_batch *b) {
  tf_model *m = (tf_model *)base;
  loom_transformer_stack *dec = m->tf->decoder;
  loom_tensor *memory = encode(m, b);
  loom_tensor *x = embed(m, m->tgt_emb, b->tgt_in, 0);
  loom_transformer_masks mk = {.tgt_causal = true,
                               .tgt_key_padding_mask = b->tgt_pad,
                               .memory_key_padding_mask = b->src_pad};
  for (int i = 0; i + 1 < dec->n; i++)
    x = loom_transformer_decoder_layer_forward(
        (loom_transformer_decoder_layer *)loom_module_child(dec->layers, i), x,
        memory, &mk);
  loom_transformer_decoder_layer *last =
      (loom_transformer_decoder_layer *)loom_module_child(dec->layers,
                                                          dec->n - 1);
  loom_tensor *sa;
  loom_multihead_attention_args self = {.causal = true,
                                        .key_padding_mask = b->tgt_pad};
  loom_tensor *q =
      m->base.cfg.pre_norm ? loom_layer_norm_layer_forward(last->norm1, x) : x;
  if (loom_multihead_attention_forward(last->self_attn, q, q, q, &self, &sa,
                                       NULL) < 0)
    return NULL;
  x = loom_add(x, sa);
  q = m->base.cfg.pre_norm ? loom_layer_norm_layer_forward(last->norm2, x)
                           : loom_layer_norm_layer_forward(last->norm1, x);
  loom_tensor *out, *w;
  loom_multihead_attention_args cross = {.key_padding_mask = b->src_pad,
                                         .need_weights = true};
  if (loom_multihead_attention_forward(last->multihead_attn, q, memory, memory,
                                       &cross, &out, &w) < 0)
    return NULL;
  return loom_transpose(w, 0, 1); /* (B, T, S) -> (T, B, S) */
}

/* ---- decoding ---- */

typedef struct {
  tf_model *m;
  loom_decoder_state *st;
} decoder;

static int tf_step(void *ctx, int64_t t, const loom_tensor *tokens,
                   loom_tensor **log_probs) {
  decoder *dc = ctx;
  loom_tensor *x = embed(dc->m, dc->m->tgt_emb, tokens, t);
  loom_tensor *h = loom_transformer_step(dc->m->tf->decoder, dc->st, x);
  *log_probs = loom_log_softmax(project(dc->m, h), -1);
  return *log_probs ? 0 : -1;
}

static int tf_reorder(void *ctx, const loom_tensor *index) {
  return loom_decoder_state_reorder(((decoder *)ctx)->st, index);
}

static void tf_decode_end(loom_decode_model *dm) {
  decoder *dc = dm->ctx;
  if (dc)
    loom_decoder_state_free(dc->st);
  free(dc);
  dm->ctx = NULL;
}

static int tf_decode_begin(nmt_model *base, const nmt_batch *b,
                           loom_decode_model *dm) {
  decoder *dc = calloc(1, sizeof *dc);
  if (!dc) {
    loom_set_error(LOOM_ERR_MEMORY, "translate: out of memory");
    return -1;
  }
  dc->m = (tf_model *)base;
  *dm = (loom_decode_model){tf_step, tf_reorder, dc};
  loom_scope *s = loom_scope_begin();
  loom_tensor *memory = encode(dc->m, b);
  dc->st = memory
               ? loom_decoder_state_new(dc->m->tf->decoder, memory, b->src_pad)
               : NULL;
  loom_scope_end(s);
  if (!dc->st) {
    tf_decode_end(dm);
    return -1;
  }
  return 0;
}

static const nmt_model_ops tf_ops = {tf_logits, tf_decode_begin, tf_decode_end,
                                     tf_attention};

/* ---- construction ---- */

#define CHILD(m, name, T, make)                                                \
  (T *)loom_module_add_child(&(m)->base.base, name, (loom_module *)(make))

static void tf_destroy(loom_module *mod) {
  tf_model *m = (tf_model *)mod;
  loom_release(m->sinusoid);
  loom_rng_free(m->base.rng);
  free(m);
}

/* xavier_uniform for every matrix, as the PyTorch recipe does. */
static int init_matrices(tf_model *m) {
  int n = loom_module_parameters(&m->base.base, NULL, 0);
  loom_tensor **ps = malloc(((size_t)n + 1) * sizeof *ps);
  if (!ps) {
    loom_set_error(LOOM_ERR_MEMORY, "translate: out of memory");
    return -1;
  }
  loom_module_parameters(&m->base.base, ps, n);
  int rc = 0;
  for (int i = 0; rc == 0 && i < n; i++)
    if (loom_ndim(ps[i]) > 1)
      rc = loom_init_xavier_uniform_(ps[i], 1, NULL);
  free(ps);
  return rc;
}

nmt_model *nmt_transformer_new(const nmt_config *c, loom_rng *rng) {
  tf_model *m = calloc(1, sizeof *m);
  if (!m) {
    loom_rng_free(rng);
    loom_set_error(LOOM_ERR_MEMORY, "translate: out of memory");
    return NULL;
  }
  loom_module_init(&m->base.base, "Transformer", tf_destroy);
  m->base.ops = &tf_ops;
  m->base.cfg = *c;
  m->base.rng = rng;
  m->scale = sqrt((double)c->d_model);
  m->tf = CHILD(
      m, "transformer", loom_transformer,
      loom_transformer_new((loom_transformer_opts){.d_model = c->d_model,
                                                   .nhead = c->heads,
                                                   .dim_feedforward = c->ff,
                                                   .dropout = c->dropout,
                                                   .norm_first = c->pre_norm,
                                                   .rng = rng},
                           (int)c->enc_layers, (int)c->dec_layers));
  m->src_emb = CHILD(m, "src_embed", loom_embedding_layer,
                     loom_embedding_layer_new(c->src_vocab, c->d_model, -1));
  m->tgt_emb =
      c->share_all
          ? m->src_emb
          : CHILD(m, "tgt_embed", loom_embedding_layer,
                  loom_embedding_layer_new(c->tgt_vocab, c->d_model, -1));
  bool ok = m->tf && m->src_emb && m->tgt_emb;
  if (ok && !c->tie_output && !c->share_all)
    ok = (m->out = CHILD(
              m, "out", loom_linear_layer,
              loom_linear_layer_new(c->d_model, c->tgt_vocab, true))) != NULL;
  if (ok && c->learned_positions)
    ok = (m->positions = CHILD(m, "positions", loom_learned_positions,
                               loom_learned_positions_new(c->max_positions,
                                                          c->d_model))) != NULL;
  else if (ok)
    ok = (m->sinusoid = loom_keep(loom_sinusoidal_encoding(
              LOOM_DTYPE_DEFAULT, c->max_positions, c->d_model))) != NULL;
  if (!ok || init_matrices(m) < 0) {
    loom_module_free(&m->base.base);
    return NULL;
  }
  return &m->base;
}
