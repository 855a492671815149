/* The model: embedding -> recurrent layers (or a decoder-only transformer)
 * -> linear head over the vocabulary. */
#include "charlm.h"

#include <stdlib.h>
#include <string.h>

static void destroy(loom_module *m) {
  charlm *c = (charlm *)m;
  loom_rng_free(c->rng);
  free(c);
}

static const loom_cell_type *cell_of(const char *name) {
  if (!strcmp(name, "rnn"))
    return &loom_rnn_tanh_cell;
  if (!strcmp(name, "gru"))
    return &loom_gru_cell;
  if (!strcmp(name, "lstm") || !strcmp(name, "peephole"))
    return &loom_lstm_cell;
  return NULL;
}

/* Decoder-only transformer: pre-norm GELU blocks over embedding plus
 * learned positions, the causal mask in training and caches in sampling. */
static bool transformer_parts(charlm *m, const charlm_config *cfg) {
  loom_transformer_opts o = {.d_model = cfg->hidden,
                             .nhead = cfg->heads,
                             .dim_feedforward = cfg->ff,
                             .dropout = cfg->dropout,
                             .gelu = true,
                             .norm_first = true,
                             .rng = m->rng};
  m->blocks = (loom_transformer_stack *)loom_module_add_child(
      &m->base, "blocks",
      (loom_module *)loom_transformer_encoder_new(o, (int)cfg->layers, true));
  m->positions = (loom_learned_positions *)loom_module_add_child(
      &m->base, "positions",
      (loom_module *)loom_learned_positions_new(cfg->context, cfg->hidden));
  /* small position vectors at first, as GPT-style models start */
  return m->blocks && m->positions &&
         loom_init_normal_(m->positions->weight, 0, 0.02, NULL) == 0;
}

charlm *charlm_new(const charlm_config *cfg_in, uint64_t seed) {
  charlm_config fixed = *cfg_in;
  const charlm_config *cfg = &fixed;
  bool tf = !strcmp(cfg->cell, "transformer");
  const loom_cell_type *type = tf ? NULL : cell_of(cfg->cell);
  if (!type && !tf) {
    loom_set_error(LOOM_ERR_ARGUMENT, "unknown model '%s'", cfg->cell);
    return NULL;
  }
  if (tf) { /* the embedding is the model width */
    fixed.embed = fixed.hidden;
    if (fixed.ff <= 0)
      fixed.ff = 4 * fixed.hidden;
    if (fixed.heads <= 0 || fixed.hidden % fixed.heads || fixed.context < 1) {
      /* callers add the program's name */
      loom_set_error(LOOM_ERR_ARGUMENT,
                     "a transformer needs heads that divide its hidden size "
                     "and a context of at least 1 (hidden %lld, heads %lld, "
                     "context %lld)",
                     (long long)fixed.hidden, (long long)fixed.heads,
                     (long long)fixed.context);
      return NULL;
    }
  }
  charlm *m = calloc(1, sizeof *m);
  if (!m) {
    loom_set_error(LOOM_ERR_MEMORY, "out of memory");
    return NULL;
  }
  loom_module_init(&m->base, "CharLM", destroy);
  m->cfg = *cfg;
  m->rng = loom_rng_new(seed);
  loom_manual_seed(seed); /* parameter initialisation */
  static const loom_lstm_opts peephole = {.peephole = true};
  m->embed = (loom_embedding_layer *)loom_module_add_child(
      &m->base, "embed",
      (loom_module *)loom_embedding_layer_new(cfg->vocab, cfg->embed, -1));
  if (!tf)
    m->rnn = (loom_rnn *)loom_module_add_child(
        &m->base, "rnn",
        (loom_module *)loom_rnn_new(
            type, (loom_rnn_opts){.input_size = cfg->embed,
                                  .hidden_size = cfg->hidden,
                                  .num_layers = (int)cfg->layers,
                                  .dropout = cfg->dropout,
                                  .rng = m->rng,
                                  .cell_config = strcmp(cfg->cell, "peephole")
                                                     ? NULL
                                                     : &peephole}));
  bool body = tf ? m->embed && transformer_parts(m, cfg) : m->rnn != NULL;
  m->drop = (loom_dropout_layer *)loom_module_add_child(
      &m->base, "drop",
      (loom_module *)loom_dropout_layer_new(cfg->dropout, m->rng));
  m->head = (loom_linear_layer *)loom_module_add_child(
      &m->base, "head",
      (loom_module *)loom_linear_layer_new(cfg->hidden, cfg->vocab, true));
  if (!m->rng || !m->embed || !body || !m->drop || !m->head) {
    loom_module_free(&m->base);
    return NULL;
  }
  return m;
}

void charlm_free(charlm *m) { loom_module_free(m ? &m->base : NULL); }

int charlm_n_states(const charlm *m) {
  return m->rnn ? m->rnn->type->n_states : 0;
}

int charlm_forward(charlm *m, const loom_tensor *x, loom_tensor *const *state,
                   loom_tensor **logits, loom_tensor **new_state) {
  loom_tensor *e = loom_embedding_layer_forward(m->embed, x);
  loom_tensor *h;
  if (m->blocks) {
    int64_t T = loom_size(x, 0);
    if (T > m->cfg.context) {
      loom_set_error(LOOM_ERR_SHAPE,
                     "%lld positions, the context is "
                     "%lld",
                     (long long)T, (long long)m->cfg.context);
      return -1;
    }
    e = loom_add(e, loom_unsqueeze(
                        loom_learned_positions_forward(m->positions, 0, T), 1));
    h = loom_transformer_encoder_forward(
        m->blocks, loom_dropout_layer_forward(m->drop, e),
        &(loom_transformer_masks){.src_causal = true});
    if (!h)
      return -1;
  } else if (!e ||
             loom_rnn_forward(m->rnn, loom_dropout_layer_forward(m->drop, e),
                              NULL, state, &h, new_state) < 0) {
    return -1;
  }
  *logits = loom_linear_layer_forward(m->head,
                                      loom_dropout_layer_forward(m->drop, h));
  return *logits ? 0 : -1;
}

/* ---- generation ---- */

struct charlm_gen {
  charlm *m;
  loom_tensor *state[LOOM_RNN_MAX_STATES];
  loom_decoder_state *cache;
  int64_t *history, n_history, position;
};

charlm_gen *charlm_gen_new(charlm *m) {
  charlm_gen *g = calloc(1, sizeof *g);
  if (!g) {
    loom_set_error(LOOM_ERR_MEMORY, "out of memory");
    return NULL;
  }
  g->m = m;
  if (m->blocks) {
    g->history = malloc((size_t)m->cfg.context * sizeof *g->history);
    g->cache = loom_decoder_state_new(m->blocks, NULL, NULL);
    if (!g->history || !g->cache) {
      if (!g->history)
        loom_set_error(LOOM_ERR_MEMORY, "out of memory");
      charlm_gen_free(g);
      return NULL;
    }
  }
  return g;
}

void charlm_gen_free(charlm_gen *g) {
  if (!g)
    return;
  for (int k = 0; k < LOOM_RNN_MAX_STATES; k++)
    loom_release(g->state[k]);
  loom_decoder_state_free(g->cache);
  free(g->history);
  free(g);
}

/* One id through the transformer's caches; returns its (V) logits. */
static loom_tensor *step_one(charlm_gen *g, int64_t id) {
  charlm *m = g->m;
  loom_tensor *x = loom_from_array(LOOM_I64, &id, LOOM_SHAPE(1));
  loom_tensor *e =
      loom_add(loom_embedding_layer_forward(m->embed, x),
               loom_learned_positions_forward(m->positions, g->position, 1));
  g->position++;
  loom_tensor *h = loom_transformer_step(m->blocks, g->cache, e);
  return loom_select(loom_linear_layer_forward(m->head, h), 0, 0);
}

int charlm_gen_feed(charlm_gen *g, const int64_t *ids, int64_t n,
                    loom_tensor **logits) {
  charlm *m = g->m;
  loom_scope *s = loom_scope_begin();
  loom_tensor *last = NULL;
  if (m->blocks) {
    for (int64_t i = 0; i < n; i++) {
      if (g->position == m->cfg.context) {
        /* Past the context: restart the caches on the latest half. */
        int64_t keep = m->cfg.context / 2;
        memmove(g->history, g->history + g->n_history - keep,
                (size_t)keep * sizeof *g->history);
        g->n_history = keep;
        loom_decoder_state_free(g->cache);
        g->cache = loom_decoder_state_new(m->blocks, NULL, NULL);
        g->position = 0;
        for (int64_t j = 0; g->cache && j < keep; j++)
          last = step_one(g, g->history[j]);
      }
      if (g->n_history == m->cfg.context) { /* keep the window's ids */
        memmove(g->history, g->history + 1,
                (size_t)(m->cfg.context - 1) * sizeof *g->history);
        g->n_history--;
      }
      g->history[g->n_history++] = ids[i];
      last = g->cache ? step_one(g, ids[i]) : NULL;
    }
  } else {
    int ns = charlm_n_states(m);
    loom_tensor *x = loom_from_array(LOOM_I64, ids, LOOM_SHAPE(n, 1));
    loom_tensor *lg, *next[LOOM_RNN_MAX_STATES];
    if (charlm_forward(m, x, g->state[0] ? g->state : NULL, &lg, next) == 0) {
      last = loom_select(loom_select(lg, 0, -1), 0, 0);
      for (int k = 0; k < ns; k++) {
        loom_release(g->state[k]);
        g->state[k] = loom_keep(next[k]);
      }
    }
  }
  *logits = loom_keep(last);
  loom_scope_end(s);
  return *logits ? 0 : -1;
}
