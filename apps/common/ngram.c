/* app_ngrams: counts of short id sequences in an open-addressing table. */
#include "text.h"

#include <loom/loom.h>

#include <stdlib.h>
#include <string.h>

static uint64_t hash_key(const uint32_t *key, int n) {
  uint64_t h = 0x9E3779B97F4A7C15ULL * (uint64_t)n;
  for (int i = 0; i < n; i++) {
    h ^= key[i];
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 32;
  }
  return h;
}

static bool same(const app_ngram *g, const uint32_t *key, int n) {
  return g->n == n && !memcmp(g->key, key, (size_t)n * sizeof *key);
}

const app_ngram *app_ngrams_find(const app_ngrams *t, const uint32_t *key,
                                 int n) {
  if (!t->n_slots)
    return NULL;
  uint64_t mask = (uint64_t)t->n_slots - 1;
  for (uint64_t k = hash_key(key, n) & mask;; k = (k + 1) & mask) {
    const app_ngram *g = &t->slots[k];
    if (!g->n)
      return NULL;
    if (same(g, key, n))
      return g;
  }
}

/* Doubles the table (or makes the first), keeping the insertion order. */
static int grow(app_ngrams *t) {
  int64_t n_slots = t->n_slots ? 2 * t->n_slots : 256;
  app_ngram *slots = calloc((size_t)n_slots, sizeof *slots);
  int64_t *used = malloc((size_t)(n_slots / 2) * sizeof *used);
  if (!slots || !used) {
    free(slots);
    free(used);
    loom_set_error(LOOM_ERR_MEMORY, "n-gram counts: out of memory at %lld",
                   (long long)t->n_used);
    return -1;
  }
  uint64_t mask = (uint64_t)n_slots - 1;
  for (int64_t i = 0; i < t->n_used; i++) {
    const app_ngram *g = &t->slots[t->used[i]];
    uint64_t k = hash_key(g->key, g->n) & mask;
    while (slots[k].n)
      k = (k + 1) & mask;
    slots[k] = *g;
    used[i] = (int64_t)k;
  }
  free(t->slots);
  free(t->used);
  t->slots = slots;
  t->used = used;
  t->n_slots = n_slots;
  t->used_cap = n_slots / 2;
  return 0;
}

app_ngram *app_ngrams_get(app_ngrams *t, const uint32_t *key, int n) {
  if (t->n_slots) {
    uint64_t mask = (uint64_t)t->n_slots - 1;
    for (uint64_t k = hash_key(key, n) & mask;; k = (k + 1) & mask) {
      app_ngram *g = &t->slots[k];
      if (!g->n)
        break;
      if (same(g, key, n))
        return g;
    }
  }
  /* at most half full */
  if (t->n_used + 1 > t->used_cap && grow(t))
    return NULL;
  uint64_t mask = (uint64_t)t->n_slots - 1, k = hash_key(key, n) & mask;
  while (t->slots[k].n)
    k = (k + 1) & mask;
  app_ngram *g = &t->slots[k];
  memset(g, 0, sizeof *g);
  memcpy(g->key, key, (size_t)n * sizeof *key);
  g->n = n;
  t->used[t->n_used++] = (int64_t)k;
  return g;
}

void app_ngrams_clear(app_ngrams *t) {
  for (int64_t i = 0; i < t->n_used; i++)
    t->slots[t->used[i]].n = 0;
  t->n_used = 0;
}

void app_ngrams_free(app_ngrams *t) {
  free(t->slots);
  free(t->used);
  *t = (app_ngrams){0};
}
