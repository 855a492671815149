/* translate: translating a corpus through the library's decoder, and
 * scoring translations as sacreBLEU and NLTK do (search.c). */
#ifndef NMT_SEARCH_H
#define NMT_SEARCH_H

#include "pipeline.h"

/* ---- translating and scoring (search.c) ---- */

/* Translates every source of c (batches of at most max_tokens padded
 * tokens and max_sentences sentences, 0: no limit; a beam's rows count
 * against both), longest first, the length limit a * source length + b;
 * NMT_PAD and NMT_BOS are suppressed beside the tokens o suppresses.
 * Fills r with c->n sentences in c's order. 0, or -1 with a loom error. */
int nmt_translate_corpus(nmt_model *m, const nmt_corpus *c,
                         const loom_decode_opts *o, int64_t max_tokens,
                         int64_t max_sentences, loom_decode_result *r);

typedef struct {
  double bleu;      /* NLTK corpus BLEU x 100 on the baseline's tokens */
  double sacrebleu; /* sacreBLEU's default BLEU on detokenised text */
  double chrf;
  app_bleu_result nltk, sacre;
} nmt_scores;

/* Greedy (beam 1) or beam translations of c's sources scored against the
 * reference text: line c->line[i] of ref_path for pair i. NLTK's BLEU
 * compares the baseline's tokens of both; sacreBLEU and chrF compare the
 * detokenised translation with the raw line (lowercased when the pipeline
 * lowercases). 0, or -1 after a message. */
int nmt_score_corpus(nmt_model *m, const nmt_text *t, const nmt_corpus *c,
                     const char *ref_path, int64_t beam, int64_t max_tokens,
                     int64_t max_sentences, nmt_scores *s);

#endif
