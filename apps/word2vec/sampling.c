/* The random choices of training: which words are negatives (the unigram
 * distribution raised to 0.75) and which occurrences of frequent words are
 * skipped (subsampling).
 *
 * Negatives are drawn with Walker's alias method: slot i (chosen
 * uniformly) keeps word i with probability keep[i] and otherwise gives its
 * alias. The original tool instead fills a table of 10^8 word ids in
 * proportion; both draw from the same distribution, but the alias table
 * holds 8 bytes per word (a 40k-word vocabulary fits in L2 cache) and is
 * exact, where a draw from the big table is a cache miss. */
#include "word2vec.h"

#include <math.h>
#include <stdlib.h>

void w2v_unigram_free(w2v_unigram *u) {
  free(u->slots);
  *u = (w2v_unigram){0};
}

int w2v_unigram_build(w2v_unigram *u, const int64_t *counts, int64_t n,
                      double power) {
  *u = (w2v_unigram){0};
  if (n <= 0 || n > INT32_MAX) {
    loom_set_error(LOOM_ERR_ARGUMENT, "unigram table: %lld words",
                   (long long)n);
    return -1;
  }
  double *p = malloc((size_t)n * sizeof *p);
  int64_t *small = malloc((size_t)n * sizeof *small);
  int64_t *large = malloc((size_t)n * sizeof *large);
  u->slots = malloc((size_t)n * sizeof *u->slots);
  if (!p || !small || !large || !u->slots) {
    free(p);
    free(small);
    free(large);
    w2v_unigram_free(u);
    loom_set_error(LOOM_ERR_MEMORY, "unigram table: out of memory");
    return -1;
  }
  u->n = n;
  double total = 0;
  for (int64_t i = 0; i < n; i++) {
    p[i] = counts[i] > 0 ? pow((double)counts[i], power) : 0;
    total += p[i];
  }
  int64_t ns = 0, nl = 0;
  for (int64_t i = 0; i < n; i++) {
    /* all-zero counts: uniform */
    p[i] = total > 0 ? p[i] * (double)n / total : 1;
    if (p[i] < 1)
      small[ns++] = i;
    else
      large[nl++] = i;
  }
  /* Each under-full slot is topped up from an over-full word. */
  while (ns > 0 && nl > 0) {
    int64_t s = small[--ns], l = large[nl - 1];
    u->slots[s] = (struct w2v_alias_slot){(float)p[s], (int32_t)l};
    p[l] -= 1 - p[s];
    if (p[l] < 1) {
      nl--;
      small[ns++] = l;
    }
  }
  /* What is left is full up to rounding. */
  while (nl > 0) {
    int64_t l = large[--nl];
    u->slots[l] = (struct w2v_alias_slot){1.0f, (int32_t)l};
  }
  while (ns > 0) {
    int64_t s = small[--ns];
    u->slots[s] = (struct w2v_alias_slot){1.0f, (int32_t)s};
  }
  free(p);
  free(small);
  free(large);
  return 0;
}

/* The chance a 24-bit uniform f = k / 2^24 falls below `keep`. */
static double keep_chance(float keep) {
  double k = ceil((double)keep * 16777216.0) / 16777216.0;
  return k > 1 ? 1 : k;
}

double w2v_unigram_probability(const w2v_unigram *u, int64_t i) {
  double p = 0;
  for (int64_t s = 0; s < u->n; s++) {
    double own = keep_chance(u->slots[s].keep);
    if (s == i)
      p += own;
    if (u->slots[s].alias == i)
      p += 1 - own;
  }
  return p / (double)u->n;
}

double w2v_keep_probability(int64_t count, double sample, int64_t train_words) {
  if (sample <= 0 || count <= 0)
    return 1;
  double st = sample * (double)train_words;
  double p = (sqrt((double)count / st) + 1) * st / (double)count;
  return p < 1 ? p : 1;
}

uint64_t *w2v_keep_thresholds(const w2v_vocab *v, double sample) {
  uint64_t *t = malloc((size_t)(v->size + 1) * sizeof *t);
  if (!t) {
    loom_set_error(LOOM_ERR_MEMORY, "subsampling: out of memory");
    return NULL;
  }
  for (int64_t i = 0; i < v->size; i++) {
    double p =
        w2v_keep_probability(v->entries[i].count, sample, v->train_words);
    t[i] = p >= 1 ? (uint64_t)1 << 32 : (uint64_t)(p * 4294967296.0);
  }
  return t;
}

uint64_t w2v_rand_seed(uint64_t seed, uint64_t stream) {
  /* splitmix64 of the pair: neighbouring seeds give unrelated states */
  uint64_t z = seed * 0x9E3779B97F4A7C15ULL + stream + 0x632BE59BD9B4E019ULL;
  for (int i = 0; i < 2; i++) {
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
  }
  return z ? z : 0x2545F4914F6CDD1DULL;
}
