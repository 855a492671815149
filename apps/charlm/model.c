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

charlm *charlm_new(const charlm_config *cfg, uint64_t seed) {
  const loom_cell_type *type = cell_of(cfg->cell);
  if (!type) {
    loom_set_error(LOOM_ERR_ARGUMENT, "charlm: unknown model '%s'", cfg->cell);
    return NULL;
  }
  charlm *m = calloc(1, sizeof *m);
  if (!m)
    return NULL;
  loom_module_init(&m->base, "CharLM", destroy);
  m->cfg = *cfg;
  m->rng = loom_rng_new(seed);
  loom_manual_seed(seed); /* parameter initialisation */
  static const loom_lstm_config peephole = {.peephole = true};
  m->embed = (loom_embedding_layer *)loom_module_add_child(
      &m->base, "embed",
      (loom_module *)loom_embedding_layer_new(cfg->vocab, cfg->embed, -1));
  m->rnn = (loom_rnn *)loom_module_add_child(
      &m->base, "rnn",
      (loom_module *)loom_rnn_new(type, (loom_rnn_opts){
          .input_size = cfg->embed, .hidden_size = cfg->hidden,
          .num_layers = (int)cfg->layers, .dropout = cfg->dropout,
          .rng = m->rng,
          .cell_config = strcmp(cfg->cell, "peephole") ? NULL : &peephole}));
  m->drop = (loom_dropout_layer *)loom_module_add_child(
      &m->base, "drop", (loom_module *)loom_dropout_layer_new(cfg->dropout,
                                                              m->rng));
  m->head = (loom_linear_layer *)loom_module_add_child(
      &m->base, "head",
      (loom_module *)loom_linear_layer_new(cfg->hidden, cfg->vocab, true));
  if (!m->rng || !m->embed || !m->rnn || !m->drop || !m->head) {
    loom_module_free(&m->base);
    return NULL;
  }
  return m;
}

void charlm_free(charlm *m) { loom_module_free(m ? &m->base : NULL); }

int charlm_n_states(const charlm *m) { return m->rnn->type->n_states; }

int charlm_forward(charlm *m, const loom_tensor *x, loom_tensor *const *state,
                   loom_tensor **logits, loom_tensor **new_state) {
  loom_tensor *e = loom_dropout_layer_forward(
      m->drop, loom_embedding_layer_forward(m->embed, x));
  loom_tensor *h;
  if (!e || loom_rnn_forward(m->rnn, e, NULL, state, &h, new_state) < 0)
    return -1;
  *logits = loom_linear_layer_forward(m->head,
                                      loom_dropout_layer_forward(m->drop, h));
  return *logits ? 0 : -1;
}

int charlm_config_save(const charlm_config *cfg, loom_tensor_map *extra) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s %lld %lld %lld %lld %lld %lld %lld %.17g",
           cfg->cell, (long long)cfg->vocab, (long long)cfg->embed,
           (long long)cfg->hidden, (long long)cfg->layers,
           (long long)cfg->heads, (long long)cfg->ff,
           (long long)cfg->context, cfg->dropout);
  return loom_tensor_map_set_meta(extra, "charlm.config", buf);
}

int charlm_config_load(charlm_config *cfg, const loom_tensor_map *extra) {
  const char *s = loom_tensor_map_meta(extra, "charlm.config");
  long long v[7];
  memset(cfg, 0, sizeof *cfg);
  if (!s || sscanf(s, "%15s %lld %lld %lld %lld %lld %lld %lld %lg", cfg->cell,
                   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
                   &cfg->dropout) != 9) {
    loom_set_error(LOOM_ERR_FORMAT, "not a charlm checkpoint (no config)");
    return -1;
  }
  cfg->vocab = v[0];
  cfg->embed = v[1];
  cfg->hidden = v[2];
  cfg->layers = v[3];
  cfg->heads = v[4];
  cfg->ff = v[5];
  cfg->context = v[6];
  if (cfg->vocab < 1 || cfg->vocab > 256 || cfg->embed < 1 ||
      cfg->hidden < 1 || cfg->layers < 1 || cfg->layers > 16) {
    loom_set_error(LOOM_ERR_FORMAT, "charlm checkpoint: bad config '%s'", s);
    return -1;
  }
  return 0;
}
