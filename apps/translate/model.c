/* The model configuration (defaults, checks, saving with a checkpoint) and
 * the choice between the two models. */
#include "nmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

nmt_config nmt_config_defaults(const char *model) {
  nmt_config c = {.embed = 256,
                  .hidden = 512,
                  .layers = 2,
                  .input_feeding = true,
                  .d_model = 256,
                  .heads = 8,
                  .ff = 512,
                  .enc_layers = 3,
                  .dec_layers = 3,
                  .max_positions = 1024};
  bool rnn = !strcmp(model, "rnn");
  snprintf(c.model, sizeof c.model, "%s", rnn ? "rnn" : "transformer");
  snprintf(c.cell, sizeof c.cell, "lstm");
  snprintf(c.attention, sizeof c.attention, "general");
  c.dropout = rnn ? 0.3 : 0.1;
  return c;
}

static bool one_of(const char *s, const char *const *names) {
  for (; *names; names++)
    if (!strcmp(s, *names))
      return true;
  return false;
}

static int bad(const char *what, long long value, long long lo, long long hi) {
  fprintf(stderr, "translate: %s %lld is outside %lld..%lld\n", what, value, lo,
          hi);
  return -1;
}

int nmt_config_check(const nmt_config *c) {
  static const char *const models[] = {"rnn", "transformer", NULL};
  static const char *const cells[] = {"lstm", "gru", NULL};
  static const char *const scores[] = {"dot", "general", "concat", "bahdanau",
                                       NULL};
  if (!one_of(c->model, models) || !one_of(c->cell, cells) ||
      !one_of(c->attention, scores)) {
    fprintf(stderr,
            "translate: model '%.16s', cell '%.8s' or attention '%.12s' is "
            "not one of rnn|transformer, lstm|gru, "
            "dot|general|concat|bahdanau\n",
            c->model, c->cell, c->attention);
    return -1;
  }
  if (c->src_vocab < 5 || c->src_vocab > NMT_MAX_VOCAB)
    return bad("source vocabulary size", c->src_vocab, 5, NMT_MAX_VOCAB);
  if (c->tgt_vocab < 5 || c->tgt_vocab > NMT_MAX_VOCAB)
    return bad("target vocabulary size", c->tgt_vocab, 5, NMT_MAX_VOCAB);
  if (!(c->dropout >= 0 && c->dropout < 1)) {
    fprintf(stderr, "translate: dropout %g is outside [0, 1)\n", c->dropout);
    return -1;
  }
  if (!strcmp(c->model, "rnn")) {
    if (c->embed < 1 || c->embed > NMT_MAX_WIDTH)
      return bad("--embed", c->embed, 1, NMT_MAX_WIDTH);
    if (c->hidden < 2 || c->hidden > NMT_MAX_WIDTH || c->hidden % 2) {
      fprintf(stderr,
              "translate: --hidden %lld must be even (each encoder direction "
              "is half) and in 2..%d\n",
              (long long)c->hidden, NMT_MAX_WIDTH);
      return -1;
    }
    if (c->layers < 1 || c->layers > NMT_MAX_LAYERS)
      return bad("--layers", c->layers, 1, NMT_MAX_LAYERS);
    return 0;
  }
  if (c->d_model < 1 || c->d_model > NMT_MAX_WIDTH)
    return bad("--d-model", c->d_model, 1, NMT_MAX_WIDTH);
  if (c->heads < 1 || c->heads > c->d_model || c->d_model % c->heads) {
    fprintf(stderr, "translate: --heads %lld must divide --d-model %lld\n",
            (long long)c->heads, (long long)c->d_model);
    return -1;
  }
  if (c->ff < 1 || c->ff > 4 * NMT_MAX_WIDTH)
    return bad("--ff", c->ff, 1, 4 * NMT_MAX_WIDTH);
  if (c->enc_layers < 1 || c->enc_layers > NMT_MAX_LAYERS)
    return bad("--enc-layers", c->enc_layers, 1, NMT_MAX_LAYERS);
  if (c->dec_layers < 1 || c->dec_layers > NMT_MAX_LAYERS)
    return bad("--dec-layers", c->dec_layers, 1, NMT_MAX_LAYERS);
  if (c->max_positions < 2 || c->max_positions > NMT_MAX_POSITIONS)
    return bad("--max-positions", c->max_positions, 2, NMT_MAX_POSITIONS);
  if (c->share_all && c->src_vocab != c->tgt_vocab) {
    fprintf(stderr,
            "translate: --share-all needs one joint vocabulary (source %lld "
            "and target %lld words)\n",
            (long long)c->src_vocab, (long long)c->tgt_vocab);
    return -1;
  }
  return 0;
}

/* ---- as checkpoint metadata ---- */

typedef enum { TEXT, INT, REAL, FLAG } kind;
typedef struct {
  const char *name;
  kind k;
  size_t offset, size;
} field;

#define F(name, k, member)                                                     \
  { name, k, offsetof(nmt_config, member), sizeof(((nmt_config *)0)->member) }
static const field fields[] = {
    F("model", TEXT, model),
    F("src_vocab", INT, src_vocab),
    F("tgt_vocab", INT, tgt_vocab),
    F("dropout", REAL, dropout),
    F("cell", TEXT, cell),
    F("attention", TEXT, attention),
    F("embed", INT, embed),
    F("hidden", INT, hidden),
    F("layers", INT, layers),
    F("input_feeding", FLAG, input_feeding),
    F("d_model", INT, d_model),
    F("heads", INT, heads),
    F("ff", INT, ff),
    F("enc_layers", INT, enc_layers),
    F("dec_layers", INT, dec_layers),
    F("max_positions", INT, max_positions),
    F("learned_positions", FLAG, learned_positions),
    F("pre_norm", FLAG, pre_norm),
    F("tie_output", FLAG, tie_output),
    F("share_all", FLAG, share_all),
};
#undef F

int nmt_config_save(const nmt_config *c, loom_tensor_map *m) {
  for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
    const field *f = &fields[i];
    const char *p = (const char *)c + f->offset;
    char key[64], value[64];
    snprintf(key, sizeof key, "translate.%s", f->name);
    if (f->k == TEXT)
      snprintf(value, sizeof value, "%s", p);
    else if (f->k == INT)
      snprintf(value, sizeof value, "%lld", (long long)*(const int64_t *)p);
    else if (f->k == REAL)
      snprintf(value, sizeof value, "%.17g", *(const double *)p);
    else
      snprintf(value, sizeof value, "%d", *(const bool *)p ? 1 : 0);
    if (loom_tensor_map_set_meta(m, key, value) < 0)
      return -1;
  }
  return 0;
}

int nmt_config_load(nmt_config *c, const loom_tensor_map *m) {
  nmt_config r = {0};
  for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
    const field *f = &fields[i];
    char *p = (char *)&r + f->offset, key[64];
    snprintf(key, sizeof key, "translate.%s", f->name);
    const char *v = loom_tensor_map_meta(m, key);
    int ok = v != NULL;
    if (ok && f->k == TEXT)
      ok = strlen(v) < f->size && (strcpy(p, v), true);
    else if (ok && f->k == INT)
      ok = app_parse_int("translate", key, v, 0, INT64_MAX / 4, (int64_t *)p) ==
           0;
    else if (ok && f->k == REAL)
      ok = app_parse_real("translate", key, v, (app_range){.lo = 0, .hi = 1},
                          (double *)p) == 0;
    else if (ok) {
      ok = !strcmp(v, "0") || !strcmp(v, "1");
      *(bool *)p = ok && v[0] == '1';
    }
    if (!ok) {
      fprintf(stderr,
              "translate: the checkpoint's configuration has no valid "
              "'%s'%s%s\n",
              key, v ? ": " : "", v ? v : "");
      return -1;
    }
  }
  if (nmt_config_check(&r) < 0)
    return -1;
  *c = r;
  return 0;
}

/* ---- the model ---- */

nmt_model *nmt_model_new(const nmt_config *c, uint64_t seed) {
  loom_rng *rng = loom_rng_new(seed);
  if (!rng)
    return NULL;
  return !strcmp(c->model, "rnn") ? nmt_rnn_new(c, rng)
                                  : nmt_transformer_new(c, rng);
}
