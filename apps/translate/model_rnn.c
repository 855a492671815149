/* The attention RNN encoder-decoder (Bahdanau et al. 2015; Luong et al.
 * 2015), written with loom's layers as a user would:
 *
 *   encoder   embedding -> bidirectional LSTM/GRU through the sequence
 *             runner (variable lengths), each direction hidden/2 wide, so
 *             its final states, both directions side by side, start the
 *             decoder's layers
 *   decoder   per step: embedding of the previous token, joined with the
 *             previous attentional state h~ (Luong's input feeding) or with
 *             the context read by the previous decoder state (Bahdanau);
 *             the decoder's layers step; attention over the encoder's
 *             outputs (loom_seq_attention: dot, general, concat, additive)
 *             gives a context; h~ = tanh(W_c [context; h]); logits = W_o h~
 *
 * Dropout acts on the embeddings, between layers and on h~. */
#include "nmt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  nmt_model base;
  loom_embedding_layer *src_emb, *tgt_emb;
  loom_rnn *encoder, *decoder;
  loom_seq_attention *attn;
  loom_linear_layer *combine, *out;
  bool lstm, bahdanau;
  int n_states; /* per decoder layer: 2 (h, c) or 1 */
} rnn_model;

/* What the decoder carries from step to step, batch rows first. */
typedef struct {
  loom_tensor *state[2 * NMT_MAX_LAYERS]; /* layer l: [2l] h, [2l+1] c */
  loom_tensor *feed; /* (B, H): h~ (Luong) or the context (Bahdanau) */
  loom_tensor *keys; /* (B, S, H) encoder outputs */
  loom_tensor *mask; /* (B, S) bool, true at padding */
} dec_state;

static loom_tensor *drop(rnn_model *m, const loom_tensor *x) {
  return loom_dropout(x, m->base.cfg.dropout, m->base.base.training,
                      m->base.rng);
}

/* ---- encoder ---- */

/* Runs the encoder over b's sources; fills keys, mask and the decoder's
 * initial states. Scope-owned results. 0 or -1. */
static int encode(rnn_model *m, const nmt_batch *b, dec_state *d) {
  const nmt_config *c = &m->base.cfg;
  loom_tensor *x = drop(m, loom_embedding_layer_forward(m->src_emb, b->src));
  loom_tensor *out, *final[2] = {0};
  if (loom_rnn_forward(m->encoder, x, b->src_len, NULL, &out, final) < 0)
    return -1;
  d->keys = loom_transpose(out, 0, 1); /* (B, S, H) */
  d->mask = b->src_pad;
  /* (layers * 2, B, H/2) -> per layer (B, H): forward then backward half */
  for (int k = 0; k < m->n_states; k++) {
    loom_tensor *f = loom_reshape(
        final[k], 4, (int64_t[]){c->layers, 2, b->B, c->hidden / 2});
    f = loom_reshape(loom_permute(f, (int[]){0, 2, 1, 3}), 3,
                     (int64_t[]){c->layers, b->B, c->hidden});
    for (int l = 0; l < c->layers; l++)
      d->state[2 * l + k] = loom_select(f, 0, l);
  }
  d->feed = loom_zeros(LOOM_DTYPE_DEFAULT, LOOM_SHAPE(b->B, c->hidden));
  return d->keys && d->feed ? 0 : -1;
}

/* ---- one decoder step ---- */

/* From the previous tokens y (B) and the carried state: updates *d and
 * returns h~ (B, H); *weights, if asked, the attention (B, S). */
static loom_tensor *decode_step(rnn_model *m, const loom_tensor *y,
                                dec_state *d, loom_tensor **weights) {
  const nmt_config *c = &m->base.cfg;
  loom_tensor *ctx = NULL, *w = NULL;
  if (m->bahdanau) { /* attend with the previous top-layer state */
    if (loom_seq_attention_forward(m->attn, d->state[2 * (c->layers - 1)],
                                   d->keys, d->mask, &ctx, &w) < 0)
      return NULL;
    d->feed = ctx;
  }
  loom_tensor *emb = drop(m, loom_embedding_layer_forward(m->tgt_emb, y));
  loom_tensor *x = c->input_feeding || m->bahdanau
                       ? loom_concat((loom_tensor *[]){emb, d->feed}, 2, 1)
                       : emb;
  for (int l = 0; l < c->layers; l++) {
    loom_tensor *next[2];
    if (loom_rnn_cell_step(m->decoder, l, x, &d->state[2 * l], next) < 0)
      return NULL;
    for (int k = 0; k < m->n_states; k++)
      d->state[2 * l + k] = next[k];
    x = l + 1 < c->layers ? drop(m, next[0]) : next[0];
  }
  if (!m->bahdanau &&
      loom_seq_attention_forward(m->attn, x, d->keys, d->mask, &ctx, &w) < 0)
    return NULL;
  loom_tensor *h = loom_tanh(loom_linear_layer_forward(
      m->combine, loom_concat((loom_tensor *[]){ctx, x}, 2, 1)));
  if (!m->bahdanau)
    d->feed = h;
  if (weights)
    *weights = w;
  return h;
}

/* ---- teacher forcing ---- */

/* h~ for every target position (T, B, H), and the attention weights
 * (T, B, S) if asked. */
static loom_tensor *run_decoder(rnn_model *m, const nmt_batch *b,
                                loom_tensor **attention) {
  dec_state d = {0};
  if (encode(m, b, &d) < 0)
    return NULL;
  loom_tensor **hs = malloc((size_t)b->T * 2 * sizeof *hs + 1);
  if (!hs) {
    loom_set_error(LOOM_ERR_MEMORY, "translate: out of memory");
    return NULL;
  }
  loom_tensor **ws = hs + b->T;
  loom_tensor *result = NULL;
  loom_fixed_weights_begin(); /* the decoder's weights, packed once */
  int64_t t = 0;
  for (; t < b->T; t++)
    if (!(hs[t] = decode_step(m, loom_select(b->tgt_in, 0, t), &d,
                              attention ? &ws[t] : NULL)))
      break;
  loom_fixed_weights_end();
  if (t == b->T) {
    result = loom_stack(hs, (int)b->T, 0);
    if (attention)
      *attention = loom_stack(ws, (int)b->T, 0);
  }
  free(hs);
  return result;
}

static loom_tensor *rnn_logits(nmt_model *base, const nmt_batch *b) {
  rnn_model *m = (rnn_model *)base;
  return loom_linear_layer_forward(m->out, drop(m, run_decoder(m, b, NULL)));
}

static loom_tensor *rnn_attention(nmt_model *base, const nmt_batch *b) {
  loom_tensor *w = NULL;
  return run_decoder((rnn_model *)base, b, &w) ? w : NULL;
}

/* ---- decoding ---- */

typedef struct {
  rnn_model *m;
  dec_state d; /* every tensor kept */
} decoder;

static void keep_all(decoder *dc, const dec_state *next) {
  const nmt_config *c = &dc->m->base.cfg;
  loom_tensor *const *from[] = {&next->feed, &next->keys, &next->mask};
  loom_tensor **to[] = {&dc->d.feed, &dc->d.keys, &dc->d.mask};
  for (int i = 0; i < 3; i++) {
    loom_tensor *t = loom_keep(*from[i]);
    loom_release(*to[i]);
    *to[i] = t;
  }
  for (int i = 0; i < 2 * c->layers; i++) {
    loom_tensor *t = loom_keep(next->state[i]);
    loom_release(dc->d.state[i]);
    dc->d.state[i] = t;
  }
}

static int rnn_step(void *ctx, int64_t t, const loom_tensor *tokens,
                    loom_tensor **log_probs) {
  (void)t;
  decoder *dc = ctx;
  dec_state d = dc->d;
  loom_tensor *h = decode_step(dc->m, tokens, &d, NULL);
  *log_probs = loom_log_softmax(loom_linear_layer_forward(dc->m->out, h), -1);
  if (!*log_probs)
    return -1;
  keep_all(dc, &d);
  return 0;
}

static int rnn_reorder(void *ctx, const loom_tensor *index) {
  decoder *dc = ctx;
  dec_state d = dc->d;
  loom_tensor **all[] = {&d.feed, &d.keys, &d.mask};
  for (int i = 0; i < 3; i++)
    if (!(*all[i] = loom_index_select(*all[i], 0, index)))
      return -1;
  for (int i = 0; i < 2 * dc->m->base.cfg.layers; i++)
    if (d.state[i] && !(d.state[i] = loom_index_select(d.state[i], 0, index)))
      return -1;
  keep_all(dc, &d);
  return 0;
}

static void rnn_decode_end(loom_decode_model *dm) {
  decoder *dc = dm->ctx;
  if (!dc)
    return;
  dec_state none = {0};
  keep_all(dc, &none);
  free(dc);
  dm->ctx = NULL;
}

static int rnn_decode_begin(nmt_model *base, const nmt_batch *b,
                            loom_decode_model *dm) {
  decoder *dc = calloc(1, sizeof *dc);
  if (!dc) {
    loom_set_error(LOOM_ERR_MEMORY, "translate: out of memory");
    return -1;
  }
  dc->m = (rnn_model *)base;
  *dm = (loom_decode_model){rnn_step, rnn_reorder, dc};
  loom_scope *s = loom_scope_begin();
  dec_state d = {0};
  int rc = encode(dc->m, b, &d);
  if (rc == 0) {
    d.keys = loom_contiguous(d.keys);
    keep_all(dc, &d);
  }
  loom_scope_end(s);
  if (rc < 0)
    rnn_decode_end(dm);
  return rc;
}

static const nmt_model_ops rnn_ops = {rnn_logits, rnn_decode_begin,
                                      rnn_decode_end, rnn_attention};

/* ---- construction ---- */

static loom_score_kind score_kind(const char *name) {
  return !strcmp(name, "dot")       ? LOOM_SCORE_DOT
         : !strcmp(name, "general") ? LOOM_SCORE_GENERAL
         : !strcmp(name, "concat")  ? LOOM_SCORE_CONCAT
                                    : LOOM_SCORE_ADDITIVE;
}

#define CHILD(m, name, T, make)                                                \
  (T *)loom_module_add_child(&(m)->base.base, name, (loom_module *)(make))

static void rnn_destroy(loom_module *mod) {
  loom_rng_free(((nmt_model *)mod)->rng);
  free(mod);
}

nmt_model *nmt_rnn_new(const nmt_config *c, loom_rng *rng) {
  rnn_model *m = calloc(1, sizeof *m);
  if (!m) {
    loom_rng_free(rng);
    loom_set_error(LOOM_ERR_MEMORY, "translate: out of memory");
    return NULL;
  }
  loom_module_init(&m->base.base, "AttentionSeq2Seq", rnn_destroy);
  m->base.ops = &rnn_ops;
  m->base.cfg = *c;
  m->base.rng = rng;
  m->lstm = !strcmp(c->cell, "lstm");
  m->bahdanau = !strcmp(c->attention, "bahdanau");
  m->n_states = m->lstm ? 2 : 1;
  const loom_cell_type *cell = m->lstm ? &loom_lstm_cell : &loom_gru_cell;
  int64_t H = c->hidden;
  bool feeds = c->input_feeding || m->bahdanau;
  m->src_emb = CHILD(m, "src_embed", loom_embedding_layer,
                     loom_embedding_layer_new(c->src_vocab, c->embed, NMT_PAD));
  m->tgt_emb = CHILD(m, "tgt_embed", loom_embedding_layer,
                     loom_embedding_layer_new(c->tgt_vocab, c->embed, NMT_PAD));
  m->encoder =
      CHILD(m, "encoder", loom_rnn,
            loom_rnn_new(cell, (loom_rnn_opts){.input_size = c->embed,
                                               .hidden_size = H / 2,
                                               .num_layers = (int)c->layers,
                                               .bidirectional = true,
                                               .dropout = c->dropout,
                                               .rng = m->base.rng}));
  m->decoder =
      CHILD(m, "decoder", loom_rnn,
            loom_rnn_new(
                cell, (loom_rnn_opts){.input_size = c->embed + (feeds ? H : 0),
                                      .hidden_size = H,
                                      .num_layers = (int)c->layers,
                                      .dropout = c->dropout,
                                      .rng = m->base.rng}));
  m->attn = CHILD(m, "attention", loom_seq_attention,
                  loom_seq_attention_new(score_kind(c->attention), H, H, H));
  m->combine = CHILD(m, "combine", loom_linear_layer,
                     loom_linear_layer_new(2 * H, H, false));
  m->out = CHILD(m, "out", loom_linear_layer,
                 loom_linear_layer_new(H, c->tgt_vocab, true));
  if (!m->src_emb || !m->tgt_emb || !m->encoder || !m->decoder || !m->attn ||
      !m->combine || !m->out) {
    loom_module_free(&m->base.base);
    return NULL;
  }
  return &m->base;
}
