/* word2vec: word vectors by skip-gram or CBOW, with negative sampling or
 * hierarchical softmax, as the original tool trains them; the file formats
 * it writes; and the query tools (neighbours, analogies, evaluation).
 *
 * The pieces, each in its own file:
 *   text.c            the tokenizer: words split on space, tab and newline,
 *                     a newline is the sentence end "</s>", UTF-8 checked
 *   vocab.c           counting, sorting, min-count, the vocabulary file;
 *                     the corpus held in memory as word ids
 *   huffman.c         the Huffman tree of hierarchical softmax
 *   sampling.c        the unigram^0.75 table of negative sampling and the
 *                     subsampling of frequent words
 *   kernel.h          one training example, fused (the hot loop)
 *   train.c           threads, sentences, windows, learning-rate decay
 *   train_autograd.c  the same example written with loom ops (reference)
 *   io.c              the word2vec text and binary vector formats
 *   eval.c            neighbours, analogies, accuracy, word similarity
 *   classes.c         k-means word classes (-classes)
 *
 * Errors are reported the library's way: a function returns -1 (or NULL)
 * and records a loom error (loom_last_error) that names the file and the
 * byte offset or line. Nothing here aborts.
 */
#ifndef LOOM_APPS_WORD2VEC_H
#define LOOM_APPS_WORD2VEC_H

#include <loom/loom.h>

#include "../common/text.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest word kept, in bytes; longer ones are cut at a character
 * boundary (the original tool keeps words of up to ~100 bytes). */
#define W2V_MAX_WORD 100
/* A sentence is cut after this many words (counted after subsampling). */
#define W2V_MAX_SENTENCE 1000
/* The sentence-end token a newline stands for; always word 0. */
#define W2V_EOS "</s>"

/* ------------------------------------------------ tokenizer (text.c) */

typedef enum {
  W2V_TOKEN_WORD,  /* a word in the reader's buffer */
  W2V_TOKEN_EOS,   /* a newline */
  W2V_TOKEN_END,   /* end of input */
  W2V_TOKEN_ERROR, /* read error or invalid UTF-8 (loom error set) */
} w2v_token;

typedef struct w2v_reader w2v_reader;

/* Opens `path` for tokenizing; NULL with an error. */
w2v_reader *w2v_reader_open(const char *path);
/* Tokenizes a buffer in memory (not copied; it must outlive the reader);
 * `name` is used in error messages. */
w2v_reader *w2v_reader_memory(const void *data, size_t len, const char *name);
void w2v_reader_close(w2v_reader *r);
/* The next token. For a word, *word points to it (NUL-terminated, valid
 * until the next call) and *len is its length in bytes. Carriage returns
 * are dropped; a word longer than W2V_MAX_WORD bytes is truncated. */
w2v_token w2v_reader_next(w2v_reader *r, const char **word, size_t *len);
/* Bytes consumed so far. */
int64_t w2v_reader_offset(const w2v_reader *r);

/* True if s[0..len) is well-formed UTF-8 (no overlongs, surrogates or
 * code points above U+10FFFF). */
bool w2v_utf8_valid(const char *s, size_t len);
/* Length of the longest prefix of s[0..len) that is at most `max` bytes
 * and does not split a character. */
size_t w2v_utf8_truncate(const char *s, size_t len, size_t max);

/* ------------------------------------------------ vocabulary (vocab.c) */

typedef struct {
  int64_t count;
  int64_t offset; /* of the word in the vocabulary's string pool */
  int32_t len;
} w2v_entry;

typedef struct {
  w2v_entry *entries;
  int64_t size, cap;
  app_buf pool;  /* the words, each followed by a NUL */
  int32_t *hash; /* open addressing; -1 = empty */
  int64_t hash_cap;
  int64_t train_words; /* sum of the counts */
} w2v_vocab;

void w2v_vocab_init(w2v_vocab *v);
void w2v_vocab_free(w2v_vocab *v);
static inline const char *w2v_vocab_word(const w2v_vocab *v, int64_t i) {
  return v->pool.data + v->entries[i].offset;
}
/* Index of a word, or -1. */
int64_t w2v_vocab_find(const w2v_vocab *v, const char *word, size_t len);
/* Adds a word with count 0 if absent; its index, or -1 on OOM. */
int64_t w2v_vocab_add(w2v_vocab *v, const char *word, size_t len);
/* Sorts words 1.. by count, most frequent first (ties keep their order:
 * first seen first), keeps word 0 (</s>) in place, drops words counted
 * fewer than min_count times, recomputes train_words. If remap is not
 * NULL it receives, for each old index, the new one or -1. 0 or -1. */
int w2v_vocab_sort(w2v_vocab *v, int64_t min_count, int32_t *remap);
/* The vocabulary file: one "word count" line per word, in order (written
 * whole or not at all). */
int w2v_vocab_save(const w2v_vocab *v, const char *path);
/* Reads such a file (then sorts and applies min_count like the original
 * tool). Errors name the line; a file min_count leaves no word of is one. */
int w2v_vocab_read(w2v_vocab *v, const char *path, int64_t min_count);

/* The training text as word ids: 0 marks a sentence end, words not in the
 * vocabulary are left out. */
typedef struct {
  int32_t *ids;
  int64_t len;
} w2v_corpus;

/* Reads `path` once: with learn, counts its words into the (empty) vocab
 * v, sorts it and drops rare words; otherwise uses v as it is. Then holds
 * the text as ids. Fails on an unreadable file, invalid UTF-8, a
 * vocabulary of more than 2^31 words, or a text with no word in the final
 * vocabulary. */
int w2v_corpus_read(w2v_corpus *c, w2v_vocab *v, const char *path, bool learn,
                    int64_t min_count);
int w2v_corpus_from_memory(w2v_corpus *c, w2v_vocab *v, const void *text,
                           size_t len, bool learn, int64_t min_count);
void w2v_corpus_free(w2v_corpus *c);

/* ------------------------------------------------ Huffman tree (huffman.c) */

/* Word w's path from the root: inner nodes point[off[w] .. off[w+1]) (as
 * rows of the output matrix syn1, 0 .. n-2; the root is n-2) and the branch
 * taken at each, code[...] (0 or 1). A more frequent word never has a
 * longer code. */
typedef struct {
  int64_t n;
  int64_t *offset; /* n + 1 */
  int32_t *point;
  uint8_t *code;
  int max_len;
} w2v_tree;

int w2v_tree_build(w2v_tree *t, const int64_t *counts, int64_t n);
void w2v_tree_free(w2v_tree *t);

/* ------------------------------------------------ sampling (sampling.c) */

/* Draws words with probability count^power / sum (power 0.75 for
 * negative sampling) in O(1): Walker's alias method, n slots of (threshold,
 * alias) that fit in cache, where the original tool fills a 10^8-entry
 * table. */
typedef struct {
  int64_t n;
  struct w2v_alias_slot {
    float keep;
    int32_t alias;
  } * slots;
} w2v_unigram;

int w2v_unigram_build(w2v_unigram *u, const int64_t *counts, int64_t n,
                      double power);
void w2v_unigram_free(w2v_unigram *u);
/* The exact probability the table gives word i (for tests). */
double w2v_unigram_probability(const w2v_unigram *u, int64_t i);
/* One draw from 64 random bits. */
static inline int32_t w2v_unigram_draw(const w2v_unigram *u, uint64_t r) {
  uint64_t i = ((r >> 32) * (uint64_t)u->n) >> 32;
  float f = (float)(r & 0xFFFFFF) * (1.0f / 16777216.0f);
  return f < u->slots[i].keep ? (int32_t)i : u->slots[i].alias;
}

/* Probability that subsampling keeps an occurrence of a word seen `count`
 * times among `train_words`: (sqrt(c / (s T)) + 1) (s T) / c, capped at 1
 * (the original tool's formula). 1 when sample <= 0. */
double w2v_keep_probability(int64_t count, double sample, int64_t train_words);
/* The same for every word as a 32-bit threshold: keep when 32 random bits
 * are below it (2^32 means always). Caller frees. */
uint64_t *w2v_keep_thresholds(const w2v_vocab *v, double sample);

/* A small fast generator for the hot loop (xorshift64*), one per thread. */
static inline uint64_t w2v_rand(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}
/* A uniform integer in [0, n) (n < 2^32). */
static inline uint32_t w2v_rand_below(uint64_t *s, uint32_t n) {
  return (uint32_t)(((w2v_rand(s) >> 32) * (uint64_t)n) >> 32);
}
/* A well-mixed nonzero state from a seed and a stream number. */
uint64_t w2v_rand_seed(uint64_t seed, uint64_t stream);

/* ------------------------------------------------ the model (train.c) */

/* The trained matrices, loom tensors of V x size float32: syn0 (the word
 * vectors), syn1 (hierarchical softmax, V-1 inner nodes used) and syn1neg
 * (negative sampling); the last two NULL when unused. Owned references. */
typedef struct {
  int64_t vocab_size, dim;
  loom_tensor *syn0, *syn1, *syn1neg;
} w2v_model;

/* syn0 uniform in [-0.5, 0.5) / dim, the output matrices zero, like the
 * original tool. 0 or -1. */
int w2v_model_init(w2v_model *m, int64_t vocab_size, int64_t dim, bool hs,
                   bool negative, uint64_t seed);
void w2v_model_free(w2v_model *m);
/* The index of the first element of the float32 tensor t that is NaN or
 * infinite, or -1: a diverged run's matrices, found after each epoch and
 * in a checkpoint to resume. */
int64_t w2v_first_non_finite(const loom_tensor *t);

/* One training example: the input rows (one context word for skip-gram,
 * the window for CBOW, whose mean is the hidden vector) and the output
 * rows it is scored against, with their labels: for hierarchical softmax
 * the inner nodes on the centre word's path (label 1 - code), for negative
 * sampling the centre word (label 1) then the negatives (label 0). */
typedef struct {
  const int32_t *in;
  int n_in;
  const int32_t *hs_rows;
  const uint8_t *hs_codes;
  int n_hs;
  const int32_t *ns_rows;
  int n_ns;
} w2v_example;

/* The fused update for one example (kernel.h), on raw matrices:
 * every score is taken before any row moves, so the update is exactly
 * -alpha times the gradient of the example's loss
 *   -sum_t log sigmoid(+-(h . u_t))
 * with h the mean of the input rows, except that (as in the original tool
 * and gensim) each input row receives the hidden error unscaled by 1/n_in.
 * scratch holds 2 * dim + n_hs + n_ns floats. */
void w2v_kernel_example(float *syn0, float *syn1, float *syn1neg, int64_t dim,
                        const w2v_example *ex, float alpha, float *scratch);

/* The same update computed with loom ops and autograd for a batch of
 * examples: the touched rows are gathered into small leaf tensors, the
 * loss is built from embedding lookups, a batched product and
 * log_sigmoid, backward gives the rows' gradients, and only those rows are
 * written back (a sparse update). Examples sharing a row are summed
 * (mini-batch SGD). Returns the summed loss, or NaN with an error (also
 * when the loss is not finite: training diverged; nothing is written back
 * then). */
double w2v_autograd_step(w2v_model *m, const w2v_example *ex, int n,
                         float alpha);

typedef enum { W2V_ENGINE_FUSED, W2V_ENGINE_AUTOGRAD } w2v_engine;

/* The starting learning rates training takes (-alpha). */
#define W2V_ALPHA_MAX 1000.0

typedef struct {
  int64_t words_done, words_total; /* over all epochs */
  int epoch, epochs;               /* epoch is 1-based */
  double alpha, seconds;
} w2v_progress;

typedef struct {
  bool cbow, hs;
  int64_t window, negative, iter, threads;
  double alpha, sample;
  uint64_t seed;
  w2v_engine engine;
  int batch; /* examples per autograd step */
  /* Called about every `progress_every` seconds from the calling thread
   * (and once at the end of each epoch); may be NULL. */
  void (*progress)(void *ctx, const w2v_progress *p);
  void *progress_ctx;
  double progress_every;
  /* After each epoch, with the threads' generator states (may be NULL):
   * returning 1 stops training there, -1 fails it (an error set). */
  int (*epoch_done)(void *ctx, int epoch, const uint64_t *rng, int n_rng);
  void *epoch_ctx;
} w2v_train_opts;

typedef struct {
  int64_t words;  /* corpus words processed, all epochs */
  double seconds; /* training only */
  double words_per_second;
} w2v_train_stats;

/* Trains `m` on the corpus for epochs first_epoch .. opts->iter (1-based;
 * 1 for a fresh start). rng_state: opts->threads states to resume from,
 * or NULL to seed from opts->seed. tree is needed when hs, unigram when
 * negative > 0. Threads update the shared matrices without locks
 * (Hogwild, like the original tool); with one thread a seed gives the same
 * vectors every time. After each epoch the matrices are checked: one
 * holding NaN or infinity (a learning rate too large for the text) stops
 * training with an error before epoch_done sees that epoch. 0 or -1. */
int w2v_train(w2v_model *m, const w2v_vocab *v, const w2v_corpus *c,
              const w2v_tree *tree, const w2v_unigram *unigram,
              const w2v_train_opts *opts, int first_epoch,
              const uint64_t *rng_state, w2v_train_stats *stats);

/* ------------------------------------------------ vector files (io.c) */

/* Word vectors as a file holds them: words in file order and an n x dim
 * float32 loom tensor (an owned reference). */
typedef struct {
  int64_t n, dim;
  char **words; /* into pool */
  app_buf pool;
  loom_tensor *vectors;
} w2v_vectors;

/* Writes the word2vec format: "V dim\n", then per word "word " followed by
 * dim numbers as "%f " and "\n" (text), or dim native float32 values and
 * "\n" (binary). Written whole or not at all (loom_file_writer). */
int w2v_save_vectors(const char *path, const w2v_vocab *v,
                     const loom_tensor *syn0, bool binary);
/* Reads a vector file written by this tool, the original or gensim.
 * binary: 1, 0, or -1 to detect. limit > 0 reads only the first `limit`
 * words (the most frequent). Validates every size against the file. */
int w2v_load_vectors(w2v_vectors *out, const char *path, int binary,
                     int64_t limit);
void w2v_vectors_free(w2v_vectors *w);

/* ------------------------------------------------ queries (eval.c) */

typedef struct {
  int64_t index;
  float score;
} w2v_hit;

/* Unit-length copies of the rows (zero rows stay zero). */
loom_tensor *w2v_normalized(const loom_tensor *vectors);
/* Index of a word compared without regard to ASCII case (the most frequent
 * match wins), among the first `limit` words (limit <= 0: all); -1 if
 * absent. */
int64_t w2v_find_word(const w2v_vectors *w, const char *word, int64_t limit);
/* The k rows of `normed` most cosine-similar to `query` (any length),
 * skipping the indices in exclude[0..n_exclude), best first, among the
 * first `limit` rows (<= 0: all). Returns how many were written. */
int w2v_nearest(const loom_tensor *normed, const float *query,
                const int64_t *exclude, int n_exclude, int64_t limit, int k,
                w2v_hit *out);

typedef struct {
  char name[64];
  int64_t correct, seen;
} w2v_section;

typedef struct {
  w2v_section *sections;
  int n_sections;
  int64_t questions;                       /* all questions in the file */
  int64_t seen, correct;                   /* with all four words known */
  int64_t semantic_seen, semantic_correct; /* the first five sections */
  int64_t syntactic_seen, syntactic_correct;
} w2v_accuracy;

/* Analogy accuracy on a questions-words file ("a b c d": is d the word
 * nearest to b - a + c, a, b, c excluded?), words compared without regard
 * to ASCII case, among the `limit` most frequent words (30000 in the
 * original compute-accuracy; <= 0: all), questions with an unknown word
 * skipped. 0 or -1. */
int w2v_analogy_accuracy(const w2v_vectors *w, const char *path, int64_t limit,
                         w2v_accuracy *acc);
void w2v_accuracy_free(w2v_accuracy *acc);

typedef struct {
  int64_t pairs, used;
  double spearman, pearson;
} w2v_similarity;

/* Spearman (and Pearson) correlation between human scores in a
 * WordSim-353 style file ("word1<TAB>word2<TAB>score", '#' comments) and
 * the cosine similarities; pairs with an unknown word are skipped. */
int w2v_word_similarity(const w2v_vectors *w, const char *path, int64_t limit,
                        w2v_similarity *sim);
/* Spearman's rho of two samples (average ranks for ties); NaN if n < 2. */
double w2v_spearman(const double *x, const double *y, int64_t n);

/* ------------------------------------------------ classes (classes.c) */

/* K-means on the word vectors (cosine, 10 rounds, as the original tool's
 * -classes): classes[i] in [0, k). 0 or -1. */
int w2v_kmeans(const loom_tensor *syn0, int64_t k, int rounds,
               int32_t *classes);

#endif
