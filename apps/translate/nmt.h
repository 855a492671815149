/* translate: neural machine translation on loom (internal interfaces).
 *
 * Two models share one interface: an attention RNN encoder-decoder
 * (model_rnn.c) and a transformer (model_transformer.c). Both turn a batch
 * of padded id sequences into next-token logits under teacher forcing, and
 * both decode through the library's loom_decode (greedy, sampling, beam
 * search) by handing it a step function over their own state. The data
 * pipeline (data.c) turns parallel text into such batches; training
 * (train.c) and translation (translate_cmd.c) use only what is here. */
#ifndef NMT_H
#define NMT_H

#include <loom/loom.h>

#include "../common/common.h"
#include "../common/text.h"

/* Special tokens: the first four ids of every vocabulary. */
enum { NMT_PAD = 0, NMT_BOS = 1, NMT_EOS = 2, NMT_UNK = 3 };

/* Limits a configuration (from flags or a checkpoint) must respect. */
#define NMT_MAX_VOCAB 4000000
#define NMT_MAX_WIDTH 65536 /* embedding, hidden, model and ff sizes */
#define NMT_MAX_LAYERS 32
#define NMT_MAX_POSITIONS 65536
/* Adam's learning rate and gradient clipping, also checked when resuming. */
#define TRANSLATE_LR_RANGE ((app_range){.hi = 10, .lo_open = true})
#define TRANSLATE_CLIP_RANGE ((app_range){.hi = 1e6})

/* ---- batches ---- */

/* Sentence pairs as padded id matrices, sequence first. */
typedef struct {
  int64_t S, T, B;
  loom_tensor *src;               /* (S, B) int64, NMT_PAD past each length */
  loom_tensor *src_len;           /* (B) int64 */
  loom_tensor *src_pad;           /* (B, S) bool, true at padding */
  loom_tensor *tgt_in;            /* (T, B) int64: bos y1 .. yn, then PAD */
  loom_tensor *tgt_out;           /* (T, B) int64: y1 .. yn eos, then PAD */
  loom_tensor *tgt_pad;           /* (B, T) bool, true at padding */
  int64_t src_tokens, tgt_tokens; /* real tokens (the target's eos too) */
} nmt_batch;

/* Builds a batch from B sentence pairs (tgt may be NULL: sources only, for
 * translation; then T = 0). Ids are copied; the tensors are kept by the
 * batch. 0, or -1 with a loom error. */
int nmt_batch_make(nmt_batch *b, int64_t B, const int32_t *const *src,
                   const int64_t *src_len, const int32_t *const *tgt,
                   const int64_t *tgt_len);
void nmt_batch_free(nmt_batch *b);

/* ---- corpora and batching (data.c) ---- */

/* Sentence pairs as ids. The source of each pair ends with eos; the target
 * has neither bos nor eos (batches add them). */
typedef struct {
  int64_t n;                /* pairs */
  int32_t *ids;             /* every pair's ids, back to back */
  int64_t *src_at, *tgt_at; /* where each pair's ids start in `ids` */
  int64_t *src_len, *tgt_len;
  int64_t *line; /* each pair's line in its files (1-based) */
  int64_t n_ids, cap_ids, cap;
  bool targets; /* false: sources only (batches have no targets) */
} nmt_corpus;

/* Appends a pair (tgt may have length 0). 0, or -1 (memory, recorded). */
int nmt_corpus_add(nmt_corpus *c, const int32_t *src, int64_t src_len,
                   const int32_t *tgt, int64_t tgt_len, int64_t line);
void nmt_corpus_free(nmt_corpus *c);

/* An epoch's batches: batch i holds the pairs order[start[i]] ..
 * order[start[i + 1] - 1]. */
typedef struct {
  int64_t n;
  int64_t *start, *order;
} nmt_plan;

/* Groups pairs of similar lengths into batches of at most max_tokens
 * padded tokens (pairs times the longer side, bos or eos counted; a pair
 * longer than that is a batch of its own) and at most max_sentences pairs
 * (0: no limit). With shuffle, ties in length and the order of the batches
 * are drawn from a generator seeded by (seed, epoch), so an epoch's batches
 * are the same whenever they are asked for (resuming needs no saved
 * order). 0, or -1 (memory, recorded). */
int nmt_plan_make(nmt_plan *p, const nmt_corpus *c, int64_t max_tokens,
                  int64_t max_sentences, bool shuffle, uint64_t seed,
                  int64_t epoch);
/* Batch i of the plan (targets included when the corpus has them). */
int nmt_plan_batch(const nmt_plan *p, const nmt_corpus *c, int64_t i,
                   nmt_batch *b);
/* Pairs first .. first + count - 1 of batch i (count >= 1): one rank's
 * part of it. */
int nmt_plan_batch_part(const nmt_plan *p, const nmt_corpus *c, int64_t i,
                        int64_t first, int64_t count, nmt_batch *b);
/* The target tokens (eos included) of batch i of the plan. */
int64_t nmt_plan_batch_tokens(const nmt_plan *p, const nmt_corpus *c,
                              int64_t i);
void nmt_plan_free(nmt_plan *p);

/* ---- models ---- */

typedef struct {
  char model[16]; /* "rnn" or "transformer" */
  int64_t src_vocab, tgt_vocab;
  double dropout;
  /* rnn */
  char cell[8];       /* "lstm" or "gru" */
  char attention[12]; /* "dot", "general", "concat" or "bahdanau" */
  int64_t embed, hidden, layers;
  bool input_feeding;
  /* transformer */
  int64_t d_model, heads, ff, enc_layers, dec_layers, max_positions;
  bool learned_positions, pre_norm;
  bool tie_output; /* the decoder's embedding is the output layer */
  bool share_all;  /* one embedding for source, target and output (the
                      vocabularies must be one joint vocabulary) */
} nmt_config;

/* The defaults of `model` ("rnn" or "transformer"). */
nmt_config nmt_config_defaults(const char *model);
/* Checks every field against its range; 0, or -1 printing
 * "translate: <what> ..." naming the field and the range. */
int nmt_config_check(const nmt_config *c);
/* As checkpoint metadata and back (load validates). 0 or -1. */
int nmt_config_save(const nmt_config *c, loom_tensor_map *m);
int nmt_config_load(nmt_config *c, const loom_tensor_map *m);

typedef struct nmt_model nmt_model;

typedef struct {
  /* Teacher-forced next-token logits (T, B, tgt_vocab), scope-owned. */
  loom_tensor *(*logits)(nmt_model *m, const nmt_batch *b);
  /* Encodes b's sources and fills *dm with a step function over state
   * rows that start one per sentence (see loom_decode). 0 or -1. */
  int (*decode_begin)(nmt_model *m, const nmt_batch *b, loom_decode_model *dm);
  void (*decode_end)(loom_decode_model *dm);
  /* Attention of each target position over the sources for the batch's
   * pairs (T, B, S): the RNN's attention weights, or the transformer's
   * last cross-attention averaged over heads. Scope-owned. */
  loom_tensor *(*attention)(nmt_model *m, const nmt_batch *b);
} nmt_model_ops;

struct nmt_model {
  loom_module base; /* parameters under their PyTorch-style names */
  const nmt_model_ops *ops;
  nmt_config cfg;
  loom_rng *rng; /* dropout masks (owned) */
};

/* A new model (parameters drawn from the default generator; dropout from
 * its own generator seeded with `seed`); free with loom_module_free. NULL
 * with a loom error. */
nmt_model *nmt_model_new(const nmt_config *c, uint64_t seed);
/* The two kinds; each takes ownership of rng (also on failure). */
nmt_model *nmt_rnn_new(const nmt_config *c, loom_rng *rng);
nmt_model *nmt_transformer_new(const nmt_config *c, loom_rng *rng);

#endif
