/* A map of named tensors with string metadata: what models, optimizers and
 * files exchange (state dicts, checkpoints, safetensors files). Entries
 * keep insertion order. */
#define _POSIX_C_SOURCE 200809L
#include "tensor_map.h"

#include "internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
  char *name;
  loom_tensor *t;
} entry;

struct loom_tensor_map {
  entry *items;
  int n, cap;
  char **meta; /* key, value, key, value, ... */
  int n_meta, cap_meta;
};

loom_tensor_map *loom_tensor_map_new(void) {
  loom_tensor_map *m = calloc(1, sizeof *m);
  if (!m)
    loom_set_error(LOOM_ERR_MEMORY, "tensor_map_new: out of memory");
  return m;
}

void loom_tensor_map_free(loom_tensor_map *m) {
  if (!m)
    return;
  for (int i = 0; i < m->n; i++) {
    free(m->items[i].name);
    loom_release(m->items[i].t);
  }
  for (int i = 0; i < m->n_meta; i++)
    free(m->meta[i]);
  free(m->items);
  free(m->meta);
  free(m);
}

static int find(const loom_tensor_map *m, const char *name) {
  for (int i = 0; i < m->n; i++)
    if (strcmp(m->items[i].name, name) == 0)
      return i;
  return -1;
}

/* Is s well-formed UTF-8 (no overlong forms, surrogates or code points
 * past U+10FFFF), as JSON text must be? */
static bool utf8_valid(const unsigned char *s) {
  while (*s) {
    unsigned c = *s++;
    if (c < 0x80)
      continue;
    int more = c >= 0xC2 && c <= 0xDF   ? 1
               : c >= 0xE0 && c <= 0xEF ? 2
               : c >= 0xF0 && c <= 0xF4 ? 3
                                        : -1;
    if (more < 0)
      return false;
    /* the second byte's range excludes overlong forms, surrogates
     * (ED A0..BF) and code points above U+10FFFF (F4 90..) */
    unsigned lo = c == 0xE0   ? 0xA0
                  : c == 0xF0 ? 0x90
                              : 0x80,
             hi = c == 0xED   ? 0x9F
                  : c == 0xF4 ? 0x8F
                              : 0xBF;
    if (*s < lo || *s > hi)
      return false;
    for (int i = 1; i < more; i++)
      if ((s[i] & 0xC0) != 0x80)
        return false;
    s += more;
  }
  return true;
}

/* A map is what a safetensors file holds, so a name the file cannot hold
 * is refused here, where it would go in, rather than when saving: a
 * tensor named "__metadata__" had been written beside the metadata
 * object of that name, a file loom_safetensors_load then refused, and the
 * JSON header can hold only UTF-8 (other readers refuse anything else).
 * The empty name is valid JSON and round-trips. */
const char *loom__tensor_name_problem(const char *name) {
  if (strcmp(name, "__metadata__") == 0)
    return "is the safetensors header's own key for the metadata";
  if (!utf8_valid((const unsigned char *)name))
    return "is not valid UTF-8";
  return NULL;
}

int loom_tensor_map_set(loom_tensor_map *m, const char *name, loom_tensor *t) {
  if (!m || !name || !t)
    return loom_null_argument("tensor_map_set"), -1;
  const char *problem = loom__tensor_name_problem(name);
  if (problem) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "tensor_map_set: the name \"%s\" %s: a safetensors file "
                   "could not hold it",
                   name, problem);
    return -1;
  }
  int i = find(m, name);
  if (i >= 0) {
    loom_keep(t);
    loom_release(m->items[i].t);
    m->items[i].t = t;
    return 0;
  }
  if (m->n == m->cap) {
    int cap = m->cap ? 2 * m->cap : 16;
    entry *g = realloc(m->items, (size_t)cap * sizeof *g);
    if (!g)
      goto oom;
    m->items = g;
    m->cap = cap;
  }
  char *copy = strdup(name);
  if (!copy)
    goto oom;
  m->items[m->n++] = (entry){copy, loom_keep(t)};
  return 0;
oom:
  loom_set_error(LOOM_ERR_MEMORY, "tensor_map_set: out of memory");
  return -1;
}

/* Lookups: NULL for a name or index that is not there (no error); a NULL
 * map or name is an argument error. */
loom_tensor *loom_tensor_map_get(const loom_tensor_map *m, const char *name) {
  if (!m || !name)
    return loom_null_argument("tensor_map_get");
  int i = find(m, name);
  return i >= 0 ? m->items[i].t : NULL;
}

int loom_tensor_map_count(const loom_tensor_map *m) { return m ? m->n : 0; }

const char *loom_tensor_map_name(const loom_tensor_map *m, int i) {
  if (!m)
    return loom_null_argument("tensor_map_name");
  return i >= 0 && i < m->n ? m->items[i].name : NULL;
}

loom_tensor *loom_tensor_map_at(const loom_tensor_map *m, int i) {
  if (!m)
    return loom_null_argument("tensor_map_at");
  return i >= 0 && i < m->n ? m->items[i].t : NULL;
}

int loom_tensor_map_set_meta(loom_tensor_map *m, const char *key,
                             const char *value) {
  if (!m || !key || !value)
    return loom_null_argument("tensor_map_set_meta"), -1;
  char *v = strdup(value);
  if (!v)
    goto oom;
  for (int i = 0; i < m->n_meta; i += 2)
    if (strcmp(m->meta[i], key) == 0) {
      free(m->meta[i + 1]);
      m->meta[i + 1] = v;
      return 0;
    }
  if (m->n_meta + 2 > m->cap_meta) {
    int cap = m->cap_meta ? 2 * m->cap_meta : 8;
    char **g = realloc(m->meta, (size_t)cap * sizeof *g);
    if (!g) {
      free(v);
      goto oom;
    }
    m->meta = g;
    m->cap_meta = cap;
  }
  char *k = strdup(key);
  if (!k) {
    free(v);
    goto oom;
  }
  m->meta[m->n_meta++] = k;
  m->meta[m->n_meta++] = v;
  return 0;
oom:
  loom_set_error(LOOM_ERR_MEMORY, "tensor_map_set_meta: out of memory");
  return -1;
}

const char *loom_tensor_map_meta(const loom_tensor_map *m, const char *key) {
  if (!m || !key)
    return loom_null_argument("tensor_map_meta");
  for (int i = 0; i < m->n_meta; i += 2)
    if (strcmp(m->meta[i], key) == 0)
      return m->meta[i + 1];
  return NULL;
}

int loom_tensor_map_meta_count(const loom_tensor_map *m) {
  return m ? m->n_meta / 2 : 0;
}

const char *loom_tensor_map_meta_key(const loom_tensor_map *m, int i) {
  if (!m)
    return loom_null_argument("tensor_map_meta_key");
  return i >= 0 && 2 * i < m->n_meta ? m->meta[2 * i] : NULL;
}
