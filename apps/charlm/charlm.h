/* charlm: a character-level language model (internal interfaces).
 *
 *   main.c        the command line
 *   corpus.c      the text: a file, or the built-in corpus
 *   model.c       the model and one-character-at-a-time generation
 *   checkpoint.c  what a checkpoint holds beside the model, read and checked
 *   train.c       the training loop and train_step (also on several ranks)
 *   sample.c      generating text from a checkpoint */
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
#define CHARLM_DROPOUT_RANGE ((app_range){.hi = 1, .hi_open = true})

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
 * `bytes` bytes (at most CHARLM_CORPUS_MAX). 0, or -1 (message printed,
 * nothing left to free). */
int corpus_load(corpus *c, const char *path, size_t bytes);
void corpus_free(corpus *c);
/* Entropy of the byte distribution, bits per character. */
double corpus_unigram_bits(const corpus *c);
/* The built-in corpus, `bytes` long or a little longer (caller frees);
 * NULL after a message if bytes exceeds CHARLM_CORPUS_MAX or memory runs
 * out. */
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

/* A model for cfg (which is checked), its parameters drawn from `seed`;
 * NULL with an error. */
charlm *charlm_new(const charlm_config *cfg, uint64_t seed);
void charlm_free(charlm *m);
/* Recurrent state tensors the model carries: 2 for lstm and peephole, 1
 * for rnn and gru, 0 for the transformer. */
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

/* ---- checkpoints (checkpoint.c) ---- */

/* The loss curves: the smoothed training loss every 10 steps and each
 * validation loss, in nats per character, against the step. */
typedef struct {
  double *step, *train, *val_step, *val;
  int64_t n, n_val, cap, cap_val;
} charlm_history;

/* Appends a point to the validation curve (val) or the training one; 0, or
 * -1 with an error when memory runs out. */
int charlm_history_add(charlm_history *h, bool val, double step, double loss);
void charlm_history_free(charlm_history *h);

/* A training session as a checkpoint holds it beside what
 * loom_checkpoint_save keeps (model, optimizer, step, generator): the
 * model's config, the vocabulary, the position in the streams, their
 * recurrent states and the loss history. */
typedef struct {
  charlm_config cfg;
  int vocab;
  unsigned char chars[256]; /* id -> byte, increasing */
  int64_t position;         /* in each stream; -1 if the checkpoint has none */
  int n_states;             /* tensors in state: charlm_n_states */
  loom_tensor *state[LOOM_RNN_MAX_STATES]; /* (layers, B, hidden) float32,
                                              owned; NULL at a stream start */
  charlm_history history;
  double resumed_dropout; /* charlm_checkpoint_resume: cfg.dropout saved */
} charlm_session;

/* Releases the states and the history (the rest is plain data). */
void charlm_session_free(charlm_session *s);

/* Writes the model, the optimizer, the step and the model's generator with
 * the session (through a temporary file and a rename). 0 or -1 with an
 * error naming the path. */
int charlm_checkpoint_save(const char *path, charlm *m, loom_optimizer *opt,
                           int64_t step, const charlm_session *s);

/* Reads the session of a checkpoint's extra map and checks all of it: the
 * config (every size in the command line's range, a known model), the
 * vocabulary (uint8, cfg.vocab distinct bytes in increasing order), the
 * position (int64 in 0..2^62), the states (all or none, float32 (layers,
 * B, hidden), one B) and the history (float64 (2, n); points whose step is
 * not a whole number in 0..2^53 or whose loss is not finite are skipped).
 * 0, or -1 with an error saying what is wrong and *s empty. */
int charlm_session_read(charlm_session *s, const loom_tensor_map *extra);

/* The session of a checkpoint, without a model (sampling builds one from
 * it): `file` as loom_safetensors_load(path) returned it (borrowed), so
 * that the weights are restored from the same reading of the file. 0, or
 * -1 with an error and *s empty. */
int charlm_checkpoint_peek(const loom_tensor_map *file, const char *path,
                           charlm_session *s);

/* Loads the checkpoint at `path` into m, opt, *step and m's generator, and
 * its session into s, to continue training on the same text: s holds this
 * run's config and vocabulary on entry, and they must match (every model
 * option the checkpoint stores; not the dropout, which changes no
 * parameter: s->resumed_dropout receives the saved one). The loaded
 * learning rate must be in CHARLM_LR_RANGE and the step and position in
 * 0..2^62. 0, or -1 with an error (the model and optimizer may have been
 * loaded; s keeps its config and vocabulary). */
int charlm_checkpoint_resume(const char *path, charlm *m, loom_optimizer *opt,
                             int64_t *step, charlm_session *s);

/* ---- the programs (train.c, sample.c) ---- */

typedef struct {
  const char *data, *checkpoint, *plot, *prime, *write_corpus;
  charlm_config model;
  int64_t seq, batch, steps, length, top_k, eval_every, save_every,
      corpus_bytes, seed, threads;
  double lr, clip, val_fraction, minutes, temperature, epochs;
  bool resume, quiet;
  bool distributed; /* one of the ranks of mpirun (loom_dist_init ran) */
} charlm_options;

/* Trains as the options say; the exit status (0, or 1 after saying what
 * failed or was not written). */
int charlm_train(const charlm_options *o);
/* Prints --prime and --length generated characters; the exit status. */
int charlm_sample(const charlm_options *o);

#endif
