/* A map of named tensors with string metadata: what models, optimizers and
 * files exchange (state dicts, checkpoints, safetensors files). Entries
 * keep insertion order. */
#define _POSIX_C_SOURCE 200809L
#include "tensor_map.h"

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

int loom_tensor_map_set(loom_tensor_map *m, const char *name, loom_tensor *t) {
  if (!m || !name || !t)
    return loom_null_argument("tensor_map_set"), -1;
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
