/* app_strtab: interned strings with dense ids and a hash index. */
#include "text.h"

#include <loom/loom.h>

#include <stdlib.h>
#include <string.h>

static uint64_t hash_bytes(const char *s, size_t len) {
  uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, then a final mix */
  for (size_t i = 0; i < len; i++)
    h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
  h ^= h >> 32;
  h *= 0xd6e8feb86659fd93ULL;
  return h ^ (h >> 32);
}

int64_t app_strtab_find(const app_strtab *t, const char *s, size_t len) {
  if (!t->n_slots)
    return -1;
  uint64_t h = hash_bytes(s, len), mask = (uint64_t)t->n_slots - 1;
  for (uint64_t k = h & mask;; k = (k + 1) & mask) {
    int32_t id = t->slots[k];
    if (id < 0)
      return -1;
    if (t->hash[id] == h && t->len_[id] == (int64_t)len &&
        !memcmp(t->pool.data + t->start[id], s, len))
      return id;
  }
}

static int rehash(app_strtab *t, int64_t n_slots) {
  int32_t *slots = malloc((size_t)n_slots * sizeof *slots);
  if (!slots)
    return -1;
  memset(slots, 0xFF, (size_t)n_slots * sizeof *slots);
  uint64_t mask = (uint64_t)n_slots - 1;
  for (int64_t id = 0; id < t->n; id++) {
    uint64_t k = t->hash[id] & mask;
    while (slots[k] >= 0)
      k = (k + 1) & mask;
    slots[k] = (int32_t)id;
  }
  free(t->slots);
  t->slots = slots;
  t->n_slots = n_slots;
  return 0;
}

int64_t app_strtab_intern(app_strtab *t, const char *s, size_t len) {
  int64_t found = app_strtab_find(t, s, len);
  if (found >= 0)
    return found;
  if (t->n >= INT32_MAX - 1) {
    loom_set_error(LOOM_ERR_ARGUMENT, "string table: more than 2^31 strings");
    return -1;
  }
  if (t->n == t->cap) {
    int64_t cap = t->cap ? 2 * t->cap : 256;
    int64_t *start = realloc(t->start, (size_t)cap * sizeof *start);
    if (start)
      t->start = start;
    int64_t *lens = realloc(t->len_, (size_t)cap * sizeof *lens);
    if (lens)
      t->len_ = lens;
    uint64_t *hash = realloc(t->hash, (size_t)cap * sizeof *hash);
    if (hash)
      t->hash = hash;
    if (!start || !lens || !hash)
      goto oom;
    t->cap = cap;
  }
  /* keep the index at most half full */
  if (2 * (t->n + 1) > t->n_slots &&
      rehash(t, t->n_slots ? 2 * t->n_slots : 1024))
    goto oom;
  int64_t id = t->n, at = app_buf_add_string(&t->pool, s, len);
  if (at < 0) {
    loom_clear_error(); /* the first error set is kept: oom's names more */
    goto oom;
  }
  t->start[id] = at;
  t->len_[id] = (int64_t)len;
  t->hash[id] = hash_bytes(s, len);
  t->n++;
  uint64_t mask = (uint64_t)t->n_slots - 1, k = t->hash[id] & mask;
  while (t->slots[k] >= 0)
    k = (k + 1) & mask;
  t->slots[k] = (int32_t)id;
  return id;
oom:
  loom_set_error(LOOM_ERR_MEMORY, "string table: out of memory at %lld strings",
                 (long long)t->n);
  return -1;
}

void app_strtab_clear(app_strtab *t) {
  if (t->slots)
    memset(t->slots, 0xFF, (size_t)t->n_slots * sizeof *t->slots);
  t->n = 0;
  app_buf_clear(&t->pool);
}

void app_strtab_free(app_strtab *t) {
  app_buf_free(&t->pool);
  free(t->start);
  free(t->len_);
  free(t->hash);
  free(t->slots);
  *t = (app_strtab){0};
}
