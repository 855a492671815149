/* Decoding: turning a model that predicts the next token into sequences,
 * by greedy choice, sampling or beam search (included by nn.h).
 *
 * One decoder serves every model that can take a step: an RNN decoder with
 * attention, a transformer stepping through its key/value caches, a
 * character-level language model. The caller keeps the model's state (RNN
 * h and c, caches, attention context) with one row per live hypothesis and
 * gives two callbacks: `step` turns each row's previous token into
 * log-probabilities of the next, and `reorder` makes the state rows follow
 * the hypotheses the search keeps (rows repeat when beams expand and
 * disappear when sentences finish). Sentences of a batch are decoded
 * together: their hypotheses are the rows of one batch.
 *
 *   static int step(void *ctx, int64_t t, const loom_tensor *tokens,
 *                   loom_tensor **log_probs) {
 *     my_model *m = ctx;               // tokens: (N) int64
 *     loom_tensor *h = my_cell(m, loom_embedding(m->emb, tokens, -1));
 *     *log_probs = loom_log_softmax(my_output(m, h), -1);  // (N, V)
 *     return *log_probs ? 0 : -1;
 *   }
 *   static int reorder(void *ctx, const loom_tensor *index) {
 *     my_model *m = ctx;               // row i <- old row index[i]
 *     return swap_kept(&m->h, loom_index_select(m->h, 0, index));
 *   }
 *   ...
 *   loom_decode_opts o = loom_decode_defaults(BOS, EOS);
 *   o.method = LOOM_DECODE_BEAM;
 *   o.beam = 5;
 *   loom_decode_result r;
 *   if (loom_decode(&(loom_decode_model){step, reorder, m}, n, src_len, &o,
 *                   &r) == 0) {
 *     ... r.hyps[i * r.nbest] is sentence i's best ...
 *     loom_decode_result_free(&r);
 *   }
 *
 * Steps run with recording off; tensors made inside a step belong to a
 * scope that ends after it, so a step may return scope-owned results.
 */
#ifndef LOOM_DECODE_H
#define LOOM_DECODE_H

#include "../tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_decode_model {
  /* Log-probabilities of the token at position t (0 for the first token
   * after bos) for every live row. tokens: int64 (N), each row's previous
   * token (bos at t = 0). *log_probs: (N, V), float32 or float64,
   * normalised (a log_softmax). Returns 0, or -1 with an error set: the
   * search stops and returns that error. */
  int (*step)(void *ctx, int64_t t, const loom_tensor *tokens,
              loom_tensor **log_probs);
  /* Before the next step: state row i becomes a copy of old row index[i].
   * index is int64 (N') and N' may differ from the old N. NULL when the
   * model keeps no per-row state. 0, or -1 with an error set. */
  int (*reorder)(void *ctx, const loom_tensor *index);
  void *ctx;
} loom_decode_model;

typedef enum loom_decode_method {
  LOOM_DECODE_GREEDY = 0, /* the likeliest token at every step */
  LOOM_DECODE_SAMPLE,     /* drawn from the (tempered, truncated) model */
  LOOM_DECODE_BEAM,       /* beam search */
} loom_decode_method;

/* As loom_decode_opts.eos: the model has no end token (a language model
 * writing a stretch of text); every sequence runs to its length limit. */
#define LOOM_DECODE_NO_EOS (-1)

typedef struct loom_decode_opts {
  loom_decode_method method;
  /* The token every row starts from, and the one that ends a sequence
   * (or LOOM_DECODE_NO_EOS). */
  int64_t bos, eos;
  /* BEAM: hypotheses kept per sentence. */
  int beam;
  /* Hypotheses returned per sentence, best first: BEAM at most `beam`;
   * SAMPLE independent samples (in the order drawn); GREEDY 1. */
  int nbest;
  /* GNMT's length penalty: hypotheses are ranked by score / lp with
   * lp = ((5 + len) / 6)^alpha, len counting the eos (if there is one).
   * 0: by score. */
  double alpha;
  /* eos is refused before min_len tokens (unless it is the only token
   * not suppressed). */
  int64_t min_len;
  /* At most floor(max_len_a * src_len + max_len_b) tokens before the eos,
   * which is then forced (src_len per sentence; 0 when none given); with
   * LOOM_DECODE_NO_EOS exactly that many tokens. */
  double max_len_a;
  int64_t max_len_b;
  /* and never more than max_len tokens (0: no such cap), e.g. a
   * transformer's number of positions. */
  int64_t max_len;
  /* BEAM. false (fairseq's rule): an eos among the `beam` best candidates
   * of a step finishes a hypothesis, and a sentence stops once `beam`
   * hypotheses have finished. true: every live hypothesis's eos extension
   * is considered, and a sentence stops only when no live hypothesis can
   * still beat its nbest-th finished one; with a beam wide enough never to
   * prune, this is exhaustive search. */
  bool exact;
  /* SAMPLE: log-probabilities are divided by the temperature (> 0), then
   * only the top_k likeliest tokens (0: all) and, of those, the smallest
   * set whose probability reaches top_p (1: all) are kept and
   * renormalised. Draws come from rng (NULL: the thread's default). */
  double temperature;
  int64_t top_k;
  double top_p;
  loom_rng *rng;
  /* Tokens never chosen, whatever their log-probability (as fairseq never
   * writes the padding token): n_suppress ids, each below the vocabulary
   * size and none of them eos, read from `suppress` (the caller's) while
   * loom_decode runs. NULL and 0: none. */
  const int64_t *suppress;
  int64_t n_suppress;
} loom_decode_opts;

/* Greedy decoding from bos to eos: beam 5, nbest 1, alpha 0, min_len 0,
 * max_len_a 0 and max_len_b 200, temperature 1, top_k 0, top_p 1. Fields
 * are then taken literally. */
LOOM_API loom_decode_opts loom_decode_defaults(int64_t bos, int64_t eos);

typedef struct loom_hypothesis {
  int64_t *tokens;  /* len tokens, without bos and eos (owned by result) */
  int64_t len;      /* tokens (before the eos, if any) */
  double score;     /* sum of the model's log-probabilities, eos included */
  double penalized; /* score / lp(len + 1), or lp(len) without an eos;
                       equal to score when alpha is 0 */
} loom_hypothesis;

typedef struct loom_decode_result {
  int64_t n; /* sentences */
  int nbest; /* hypotheses per sentence */
  /* n * nbest: sentence i's at [i * nbest ...], best first (BEAM, GREEDY)
   * or in the order drawn (SAMPLE). When a search space holds fewer
   * hypotheses than asked for (a tiny vocabulary under a length limit),
   * the rest have no tokens and score -inf. */
  loom_hypothesis *hyps;
} loom_decode_result;

/* Decodes n sentences. src_len: n source lengths for the length limit, or
 * NULL. The model starts with n state rows, row i for sentence i (SAMPLE
 * with nbest > 1 first reorders them to nbest rows per sentence). Fills
 * *result (free it with loom_decode_result_free). 0, or -1 with the error
 * (a bad option, named with its allowed range; a callback's error; a step
 * whose log_probs are not (N, V) floats) and *result empty. */
LOOM_API int loom_decode(const loom_decode_model *model, int64_t n,
                         const int64_t *src_len, const loom_decode_opts *opts,
                         loom_decode_result *result);
/* Frees what loom_decode put in r and empties it (NULL-safe). */
LOOM_API void loom_decode_result_free(loom_decode_result *r);

#ifdef __cplusplus
}
#endif
#endif
