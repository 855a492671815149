/* charlm: a character-level language model (internal interfaces). */
#ifndef CHARLM_H
#define CHARLM_H

#include <loom/loom.h>

#include "../common/common.h"

/* ---- limits: what the command line and a checkpoint may ask for ---- */

#define CHARLM_MAX_COUNT 1000000000000LL /* steps, intervals, lengths */
#define CHARLM_MAX_LAYERS 16
#define CHARLM_MAX_WIDTH 65536 /* embed, hidden, heads; ff up to 4x */
#define CHARLM_MAX_SEQ 1048576 /* characters per chunk (the context) */
#define CHARLM_MAX_BATCH 65536
/* The built-in corpus is held in memory nine times over (text and ids). */
#define CHARLM_CORPUS_MAX ((int64_t)1 << 30)
/* Learning rate and gradient clipping, also checked when resuming. */
#define CHARLM_LR_RANGE ((app_range){.hi = 1000, .lo_open = true})
#define CHARLM_CLIP_RANGE ((app_range){.hi = 1e6})

/* ---- corpus (corpus.c) ---- */

/* The text the model trains on, its vocabulary (the distinct bytes, in
 * increasing order) and the text as vocabulary ids. */
typedef struct {
  unsigned char *text;
  size_t len;
  int vocab;
  unsigned char chars[256]; /* id -> byte */
  int16_t ids_of[256];      /* byte -> id, -1 if absent */
  int64_t *ids;
} corpus;

/* Loads a file, or (path NULL) generates the built-in corpus of about
 * `bytes` bytes. 0, or -1 (message printed, nothing left to free). */
int corpus_load(corpus *c, const char *path, size_t bytes);
void corpus_free(corpus *c);
/* Entropy of the byte distribution, bits per character. */
double corpus_unigram_bits(const corpus *c);
/* Writes the built-in corpus (for --write-corpus). */
unsigned char *corpus_generate(size_t bytes, size_t *len);

/* ---- model (model.c) ---- */

typedef struct {
  char cell[16]; /* rnn, lstm, gru, peephole, transformer */
  int64_t vocab, embed, hidden, layers, heads, ff, context;
  double dropout;
} charlm_config;

typedef struct {
  loom_module base;
  charlm_config cfg;
  loom_embedding_layer *embed;
  loom_rnn *rnn;                  /* recurrent models */
  loom_transformer_stack *blocks; /* --model transformer: causal blocks */
  loom_learned_positions *positions;
  loom_linear_layer *head;
  loom_dropout_layer *drop;
  loom_rng *rng; /* dropout masks; owned */
} charlm;

charlm *charlm_new(const charlm_config *cfg, uint64_t seed);
void charlm_free(charlm *m);
int charlm_n_states(const charlm *m);
/* logits (T, B, V) from ids x (T, B). Recurrent models: state holds
 * charlm_n_states tensors of (layers, B, hidden) or is NULL (zeros) and
 * new_state receives the final ones. The transformer sees only x (causally;
 * T at most cfg.context) and has no state. */
int charlm_forward(charlm *m, const loom_tensor *x, loom_tensor *const *state,
                   loom_tensor **logits, loom_tensor **new_state);

/* Generation one character at a time: recurrent states, or the
 * transformer's key/value caches (a sliding window past its context). */
typedef struct charlm_gen charlm_gen;
charlm_gen *charlm_gen_new(charlm *m);
void charlm_gen_free(charlm_gen *g);
/* Feeds ids; *logits receives the (V) logits after the last one (kept:
 * release it). 0 or -1. */
int charlm_gen_feed(charlm_gen *g, const int64_t *ids, int64_t n,
                    loom_tensor **logits);
/* Config <-> checkpoint metadata. */
int charlm_config_save(const charlm_config *cfg, loom_tensor_map *extra);
int charlm_config_load(charlm_config *cfg, const loom_tensor_map *extra);

#endif
