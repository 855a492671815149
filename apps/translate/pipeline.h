/* translate: from text to ids and back - tokenisation, byte-pair encoding
 * and vocabularies, learned from the training text and kept in the
 * checkpoint (pipeline.c). */
#ifndef NMT_PIPELINE_H
#define NMT_PIPELINE_H

#include "nmt.h"

/* ---- text to ids and back (pipeline.c) ---- */

typedef struct {
  char tokenize[16];  /* "lower" (the PyTorch baseline's) or "reversible" */
  int64_t bpe_merges; /* 0: whole words */
  int64_t min_count;  /* rarer words (or subwords) are <unk> */
  bool joint;         /* one BPE and one vocabulary for both sides */
} nmt_text_opts;

/* lower, no BPE, min_count 2, separate vocabularies. */
nmt_text_opts nmt_text_defaults(void);

/* Tokenisation, BPE codes and the two vocabularies. */
typedef struct nmt_text nmt_text;

/* Learns the pipeline from the training files: BPE merges when asked, then
 * the vocabularies. NULL after a message naming the file and line. */
nmt_text *nmt_text_learn(const nmt_text_opts *o, const char *src_path,
                         const char *tgt_path);
/* Stores it in a checkpoint's extra tensors and metadata / reads it back
 * (`source` names the checkpoint in messages). The metadata records the
 * merges asked for (text.bpe_merges) and those learned on each side
 * (text.bpe_learned.src and .tgt, fewer when the pairs ran out); codes
 * that are not what training writes, or not as many as were learned, are
 * refused. */
int nmt_text_save(const nmt_text *t, loom_tensor_map *extra);
nmt_text *nmt_text_load(const loom_tensor_map *extra, const char *source);
void nmt_text_free(nmt_text *t);
/* Writes the vocabularies (PREFIX.src.vocab, PREFIX.tgt.vocab: one unit a
 * line, the id is the line's number less one) and the BPE codes
 * (PREFIX.src.bpe, PREFIX.tgt.bpe, in subword-nmt's format) beside a
 * model, for people and other tools; the checkpoint holds its own copy.
 * 0, or -1 after a message naming the file. */
int nmt_text_write_files(const nmt_text *t, const char *prefix);
const nmt_text_opts *nmt_text_options(const nmt_text *t);
int64_t nmt_text_vocab_size(const nmt_text *t, bool target);

/* Reads parallel files (tgt_path NULL: sources only) into c, line by line
 * (the line counts must agree). With skip_empty, pairs with an empty side
 * are left out and counted in *skipped (may be NULL). 0, or -1 after a
 * message naming the file and line. */
int nmt_text_read_corpus(const nmt_text *t, const char *src_path,
                         const char *tgt_path, bool skip_empty, nmt_corpus *c,
                         int64_t *skipped);
/* One source line as ids, eos appended (appended to *ids, a growing array
 * of *n entries and *cap capacity). 0 or -1 (invalid UTF-8, memory). */
int nmt_text_encode(const nmt_text *t, bool target, const char *line,
                    size_t len, const char *name, int32_t **ids, int64_t *n,
                    int64_t *cap);
/* Target ids as text (BPE undone; detokenised when reversible, tokens
 * joined by spaces when lower), appended to out. */
int nmt_text_decode(const nmt_text *t, const int64_t *ids, int64_t n,
                    app_buf *out);
/* The units of ids (subwords as the model sees them), appended to out: the
 * labels of an attention picture. */
int nmt_text_units(const nmt_text *t, bool target, const int64_t *ids,
                   int64_t n, app_tokens *out);

#endif
