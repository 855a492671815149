/* A set of strings numbered in the order added: image names to their
 * index. Open addressing with linear probing, at most half full. */
#include "caption.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash(const char *s, size_t len) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (size_t i = 0; i < len; i++)
    h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}

static int64_t probe(const cap_names *m, const char *s, size_t len) {
  int64_t at = (int64_t)(hash(s, len) & (uint64_t)(m->slots - 1));
  for (;; at = (at + 1) & (m->slots - 1)) {
    int64_t k = m->slot[at];
    if (k == 0 ||
        (strlen(m->str[k - 1]) == len && !memcmp(m->str[k - 1], s, len)))
      return at;
  }
}

int64_t cap_names_find(const cap_names *m, const char *s, size_t len) {
  if (!m->slots)
    return -1;
  return m->slot[probe(m, s, len)] - 1;
}

static int grow(cap_names *m) {
  int64_t slots = m->slots ? 2 * m->slots : 64;
  int64_t *slot = calloc((size_t)slots, sizeof *slot);
  char **str = realloc(m->str, (size_t)(slots / 2) * sizeof *str);
  if (!slot || !str) {
    free(slot);
    if (str)
      m->str = str;
    loom_set_error(LOOM_ERR_MEMORY, "out of memory for %lld names",
                   (long long)m->n);
    return -1;
  }
  m->str = str;
  m->cap = slots / 2;
  free(m->slot);
  m->slot = slot;
  m->slots = slots;
  for (int64_t i = 0; i < m->n; i++)
    slot[probe(m, m->str[i], strlen(m->str[i]))] = i + 1;
  return 0;
}

int64_t cap_names_add(cap_names *m, const char *s, size_t len) {
  int64_t k = cap_names_find(m, s, len);
  if (k >= 0)
    return k;
  if (m->n + 1 > m->slots / 2 && grow(m) < 0)
    return -1;
  char *copy = malloc(len + 1);
  if (!copy) {
    loom_set_error(LOOM_ERR_MEMORY, "out of memory for a name");
    return -1;
  }
  memcpy(copy, s, len);
  copy[len] = 0;
  m->str[m->n] = copy;
  m->slot[probe(m, s, len)] = ++m->n;
  return m->n - 1;
}

void cap_names_free(cap_names *m) {
  for (int64_t i = 0; i < m->n; i++)
    free(m->str[i]);
  free(m->str);
  free(m->slot);
  *m = (cap_names){0};
}
