/* Sentence pairs held as ids, and their grouping into batches of similar
 * lengths (length bucketing: little padding, so few wasted products). */
#include "nmt.h"

#include <stdlib.h>
#include <string.h>

/* Grows the per-pair arrays to hold n pairs. */
static bool grow_pairs(nmt_corpus *c, int64_t n) {
  if (n <= c->cap)
    return true;
  int64_t cap = c->cap ? 2 * c->cap : 1024;
  int64_t **arrays[] = {&c->src_at, &c->tgt_at, &c->src_len, &c->tgt_len,
                        &c->line};
  for (size_t i = 0; i < sizeof arrays / sizeof *arrays; i++) {
    int64_t *q = realloc(*arrays[i], (size_t)cap * sizeof *q);
    if (!q)
      return false; /* those grown so far stay valid and larger */
    *arrays[i] = q;
  }
  c->cap = cap;
  return true;
}

static bool grow_ids(nmt_corpus *c, int64_t n) {
  if (n <= c->cap_ids)
    return true;
  int64_t cap = c->cap_ids ? c->cap_ids : 4096;
  while (cap < n)
    cap *= 2;
  int32_t *q = realloc(c->ids, (size_t)cap * sizeof *q);
  if (!q)
    return false;
  c->ids = q;
  c->cap_ids = cap;
  return true;
}

int nmt_corpus_add(nmt_corpus *c, const int32_t *src, int64_t src_len,
                   const int32_t *tgt, int64_t tgt_len, int64_t line) {
  if (src_len < 0 || tgt_len < 0 || src_len > ((int64_t)1 << 40) ||
      tgt_len > ((int64_t)1 << 40) || !grow_pairs(c, c->n + 1) ||
      !grow_ids(c, c->n_ids + src_len + tgt_len)) {
    loom_set_error(LOOM_ERR_MEMORY, "translate: out of memory for the corpus");
    return -1;
  }
  c->src_at[c->n] = c->n_ids;
  if (src_len)
    memcpy(c->ids + c->n_ids, src, (size_t)src_len * sizeof *src);
  c->n_ids += src_len;
  c->tgt_at[c->n] = c->n_ids;
  if (tgt_len)
    memcpy(c->ids + c->n_ids, tgt, (size_t)tgt_len * sizeof *tgt);
  c->n_ids += tgt_len;
  c->src_len[c->n] = src_len;
  c->tgt_len[c->n] = tgt_len;
  c->line[c->n++] = line;
  return 0;
}

void nmt_corpus_free(nmt_corpus *c) {
  free(c->ids);
  free(c->src_at);
  free(c->tgt_at);
  free(c->src_len);
  free(c->tgt_len);
  free(c->line);
  *c = (nmt_corpus){0};
}

void nmt_plan_free(nmt_plan *p) {
  free(p->start);
  free(p->order);
  *p = (nmt_plan){0};
}

/* The padded length a pair needs: the longer of its source (eos included)
 * and its target with bos or eos. */
static int64_t width(const nmt_corpus *c, int64_t i) {
  int64_t t = c->tgt_len[i] + 1;
  return c->src_len[i] > t ? c->src_len[i] : t;
}

static const nmt_corpus *sorting; /* qsort has no context argument */
static const int64_t *tie;

static int by_length(const void *a, const void *b) {
  int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
  int64_t d = width(sorting, i) - width(sorting, j);
  if (!d)
    d = sorting->src_len[i] - sorting->src_len[j];
  if (!d)
    d = tie[i] - tie[j];
  return d < 0 ? -1 : d > 0;
}

static void shuffle(int64_t *a, int64_t n, loom_rng *g) {
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)(loom_rng_u64(g) % (uint64_t)(i + 1)), t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
}

int nmt_plan_make(nmt_plan *p, const nmt_corpus *c, int64_t max_tokens,
                  int64_t max_sentences, bool shuffled, uint64_t seed,
                  int64_t epoch) {
  *p = (nmt_plan){0};
  size_t n = (size_t)c->n;
  p->order = malloc((n + 1) * sizeof *p->order);
  p->start = malloc((n + 2) * sizeof *p->start);
  int64_t *rank = malloc((n + 1) * sizeof *rank);
  int64_t *batch = malloc((n + 1) * sizeof *batch);
  loom_rng *g = loom_rng_new(seed + 0x9E3779B97F4A7C15ULL * (uint64_t)epoch);
  int rc = p->order && p->start && rank && batch && g ? 0 : -1;
  if (rc == 0) {
    /* lengths sorted, equal lengths in a random order */
    for (int64_t i = 0; i < c->n; i++)
      p->order[i] = rank[i] = i;
    if (shuffled)
      shuffle(rank, c->n, g);
    sorting = c;
    tie = rank;
    qsort(p->order, n, sizeof *p->order, by_length);
    /* greedy batches; the last pair of a batch is its longest */
    int64_t rows = 0;
    p->start[0] = 0;
    for (int64_t k = 0; k < c->n; k++) {
      int64_t w = width(c, p->order[k]);
      bool full = rows > 0 && ((rows + 1) * w > max_tokens ||
                               (max_sentences > 0 && rows == max_sentences));
      if (full) {
        p->start[++p->n] = k;
        rows = 0;
      }
      rows++;
    }
    if (rows)
      p->start[++p->n] = c->n;
    if (shuffled) { /* batches in a random order */
      for (int64_t i = 0; i < p->n; i++)
        batch[i] = i;
      shuffle(batch, p->n, g);
      int64_t *order = rank, at = 0; /* reuse rank as scratch */
      int64_t *start = malloc(((size_t)p->n + 1) * sizeof *start);
      if (!start) {
        rc = -1;
      } else {
        for (int64_t i = 0; i < p->n; i++) {
          int64_t b = batch[i];
          start[i] = at;
          for (int64_t k = p->start[b]; k < p->start[b + 1]; k++)
            order[at++] = p->order[k];
        }
        start[p->n] = at;
        memcpy(p->order, order, n * sizeof *order);
        memcpy(p->start, start, ((size_t)p->n + 1) * sizeof *start);
        free(start);
      }
    }
  }
  free(rank);
  free(batch);
  loom_rng_free(g);
  if (rc < 0) {
    nmt_plan_free(p);
    loom_set_error(LOOM_ERR_MEMORY, "translate: out of memory for batches");
  }
  return rc;
}

int nmt_plan_batch(const nmt_plan *p, const nmt_corpus *c, int64_t i,
                   nmt_batch *b) {
  return nmt_plan_batch_part(p, c, i, 0, p->start[i + 1] - p->start[i], b);
}

int64_t nmt_plan_batch_tokens(const nmt_plan *p, const nmt_corpus *c,
                              int64_t i) {
  int64_t n = 0;
  for (int64_t k = p->start[i]; k < p->start[i + 1]; k++)
    n += c->tgt_len[p->order[k]] + 1;
  return n;
}

int nmt_plan_batch_part(const nmt_plan *p, const nmt_corpus *c, int64_t i,
                        int64_t first, int64_t count, nmt_batch *b) {
  int64_t lo = p->start[i] + first, B = count;
  const int32_t **src = malloc(2 * ((size_t)B + 1) * sizeof *src);
  int64_t *len = malloc(2 * ((size_t)B + 1) * sizeof *len);
  if (!src || !len) {
    free(src);
    free(len);
    loom_set_error(LOOM_ERR_MEMORY, "translate: out of memory");
    return -1;
  }
  const int32_t **tgt = src + B;
  int64_t *tgt_len = len + B;
  for (int64_t k = 0; k < B; k++) {
    int64_t j = p->order[lo + k];
    src[k] = c->ids + c->src_at[j];
    len[k] = c->src_len[j];
    tgt[k] = c->ids + c->tgt_at[j];
    tgt_len[k] = c->tgt_len[j];
  }
  int rc = nmt_batch_make(b, B, src, len, c->targets ? tgt : NULL, tgt_len);
  free(src);
  free(len);
  return rc;
}
