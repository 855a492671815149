/* The module tree: named parameters, buffers and children, state dicts. */
#include "nn.h"

#include <stdlib.h>
#include <string.h>

typedef enum { PARAM, BUFFER, CHILD } entry_kind;

struct loom_module_entry {
  entry_kind kind;
  char *name;
  loom_tensor *tensor;
  loom_module *child;
};

void loom_module_init(loom_module *m, const char *type,
                      void (*destroy)(loom_module *self)) {
  if (!m) {
    loom_null_argument("module_init");
    return;
  }
  *m = (loom_module){.type = type, .training = true, .destroy = destroy};
}

static loom_module_entry *add(loom_module *m, entry_kind kind,
                              const char *name) {
  if (!m || !name)
    return loom_null_argument("module: add");
  if (strchr(name, '.') || !*name)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "module %s: bad entry name '%s'",
                     m->type, name);
  for (int i = 0; i < m->n_entries; i++)
    if (strcmp(m->entries[i].name, name) == 0)
      return LOOM_FAIL(LOOM_ERR_ARGUMENT, "module %s: '%s' registered twice",
                       m->type, name);
  if (m->n_entries == m->cap_entries) {
    int cap = m->cap_entries ? 2 * m->cap_entries : 8;
    loom_module_entry *g = realloc(m->entries, (size_t)cap * sizeof *g);
    if (!g)
      return LOOM_FAIL(LOOM_ERR_MEMORY, "module: out of memory");
    m->entries = g;
    m->cap_entries = cap;
  }
  char *copy = malloc(strlen(name) + 1);
  if (!copy)
    return LOOM_FAIL(LOOM_ERR_MEMORY, "module: out of memory");
  strcpy(copy, name);
  loom_module_entry *e = &m->entries[m->n_entries++];
  *e = (loom_module_entry){.kind = kind, .name = copy};
  return e;
}

loom_tensor *loom_module_add_param(loom_module *m, const char *name,
                                   loom_tensor *t) {
  if (!m || !name || !t)
    return loom_null_argument("module_add_param");
  if (!loom_set_requires_grad(t, true))
    return NULL;
  loom_module_entry *e = add(m, PARAM, name);
  if (!e)
    return NULL;
  e->tensor = loom_keep(t);
  return t;
}

loom_tensor *loom_module_add_buffer(loom_module *m, const char *name,
                                    loom_tensor *t) {
  if (!t)
    return loom_null_argument("module_add_buffer");
  loom_module_entry *e = add(m, BUFFER, name);
  if (!e)
    return NULL;
  e->tensor = loom_keep(t);
  return t;
}

/* Whether x is `tree` or one of its descendants (a tree has no cycles:
 * add_child keeps them out). */
static bool within(const loom_module *tree, const loom_module *x) {
  if (tree == x)
    return true;
  for (int i = 0; i < tree->n_entries; i++)
    if (tree->entries[i].kind == CHILD && within(tree->entries[i].child, x))
      return true;
  return false;
}

loom_module *loom_module_add_child(loom_module *m, const char *name,
                                   loom_module *child) {
  if (!child) /* most often a constructor's failure, whose error stays */
    return loom_null_argument("module_add_child");
  /* A second parent would free the child a second time. Not freed here:
   * the first parent owns it. */
  if (child->owned)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "module_add_child: %s '%s' already has a parent (share "
                     "its tensors instead)",
                     child->type, name ? name : "(null)");
  /* A module in its own subtree would make every traversal recurse
   * without end. Not freed here: it is the parent, or one of its
   * ancestors' children. (The walk costs the child's subtree, once.) */
  if (m && within(child, m))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "module_add_child: %s '%s' is or holds the parent %s (a "
                     "cycle)",
                     child->type, name ? name : "(null)", m->type);
  loom_module_entry *e = add(m, CHILD, name);
  if (!e) {
    loom_module_free(child);
    return NULL;
  }
  e->child = child;
  child->owned = true;
  return child;
}

const char *loom_module_entry_name(const loom_module *m, const loom_tensor *t) {
  if (!m || !t)
    return loom_null_argument("module_entry_name");
  for (int i = 0; i < m->n_entries; i++)
    if (m->entries[i].tensor == t)
      return m->entries[i].name;
  return NULL;
}

int loom_module_rename(loom_module *m, const char *name, const char *new_name) {
  if (!m || !name || !new_name)
    return loom_null_argument("module_rename"), -1;
  if (strchr(new_name, '.') || !*new_name)
    return loom_set_error(LOOM_ERR_ARGUMENT, "module %s: bad entry name '%s'",
                          m->type, new_name),
           -1;
  loom_module_entry *e = NULL;
  for (int i = 0; i < m->n_entries; i++) {
    if (strcmp(m->entries[i].name, new_name) == 0)
      return loom_set_error(LOOM_ERR_ARGUMENT,
                            "module %s: '%s' is already registered", m->type,
                            new_name),
             -1;
    if (strcmp(m->entries[i].name, name) == 0)
      e = &m->entries[i];
  }
  if (!e)
    return loom_set_error(LOOM_ERR_ARGUMENT, "module %s: no entry '%s'",
                          m->type, name),
           -1;
  char *copy = malloc(strlen(new_name) + 1);
  if (!copy)
    return loom_set_error(LOOM_ERR_MEMORY, "module: out of memory"), -1;
  strcpy(copy, new_name);
  free(e->name);
  e->name = copy;
  return 0;
}

void loom_module_free(loom_module *m) {
  if (!m)
    return;
  for (int i = 0; i < m->n_entries; i++) {
    loom_module_entry *e = &m->entries[i];
    free(e->name);
    loom_release(e->tensor);
    loom_module_free(e->child);
  }
  free(m->entries);
  m->entries = NULL;
  m->n_entries = m->cap_entries = 0;
  if (m->destroy)
    m->destroy(m);
  else
    free(m);
}

void loom_module_train(loom_module *m, bool on) {
  if (!m)
    return;
  m->training = on;
  for (int i = 0; i < m->n_entries; i++)
    if (m->entries[i].kind == CHILD)
      loom_module_train(m->entries[i].child, on);
}

/* Whether tree m holds parameter t in an entry before `stop` (a tied weight
 * registered under a second name is listed once, as PyTorch's
 * parameters() does: an optimizer given it twice would step it twice).
 * *done is set once stop is reached. */
static bool listed_before(const loom_module *m, const loom_tensor *t,
                          const loom_module_entry *stop, bool *done) {
  for (int i = 0; i < m->n_entries && !*done; i++) {
    const loom_module_entry *e = &m->entries[i];
    if (e == stop)
      *done = true;
    else if (e->kind == PARAM && e->tensor == t)
      return true;
    else if (e->kind == CHILD && listed_before(e->child, t, stop, done))
      return true;
  }
  return false;
}

static int collect(const loom_module *root, const loom_module *m,
                   loom_tensor **out, int max, int n) {
  for (int i = 0; i < m->n_entries; i++) {
    const loom_module_entry *e = &m->entries[i];
    bool done = false;
    if (e->kind == PARAM && !listed_before(root, e->tensor, e, &done)) {
      if (n < max)
        out[n] = e->tensor;
      n++;
    } else if (e->kind == CHILD) {
      n = collect(root, e->child, out, max, n);
    }
  }
  return n;
}

int loom_module_parameters(const loom_module *m, loom_tensor **out, int max) {
  if (!m)
    return loom_null_argument("module_parameters"), -1;
  return collect(m, m, out, out ? max : 0, 0);
}

int64_t loom_module_num_elements(const loom_module *m) {
  int n = loom_module_parameters(m, NULL, 0);
  if (n < 0)
    return -1;
  loom_tensor **ps = calloc((size_t)n + 1, sizeof *ps);
  int64_t total = 0;
  if (!ps) {
    loom_set_error(LOOM_ERR_MEMORY, "module_num_elements: out of memory");
    return -1;
  }
  loom_module_parameters(m, ps, n);
  for (int i = 0; i < n; i++)
    total += loom_numel(ps[i]);
  free(ps);
  return total;
}

/* Adds m's entries (parameters, and buffers too if asked) to map under
 * prefix; parameters alone (!buffers) list a tied weight once, under its
 * first name, as loom_module_parameters does. (A state dict keeps every
 * name, as PyTorch's does.) */
static int named(const loom_module *root, const loom_module *m,
                 loom_tensor_map *map, char *prefix, size_t len, size_t cap,
                 bool buffers) {
  for (int i = 0; i < m->n_entries; i++) {
    const loom_module_entry *e = &m->entries[i];
    size_t n = strlen(e->name);
    if (len + n + 2 > cap) {
      loom_set_error(LOOM_ERR_ARGUMENT, "module: name too long");
      return -1;
    }
    memcpy(prefix + len, e->name, n + 1);
    if (e->kind == CHILD) {
      prefix[len + n] = '.';
      prefix[len + n + 1] = '\0';
      if (named(root, e->child, map, prefix, len + n + 1, cap, buffers) < 0)
        return -1;
    } else if (e->kind == PARAM || buffers) {
      bool done = false;
      if ((buffers || !listed_before(root, e->tensor, e, &done)) &&
          loom_tensor_map_set(map, prefix, e->tensor) < 0)
        return -1;
    }
    prefix[len] = '\0';
  }
  return 0;
}

static loom_tensor_map *as_map(const loom_module *m, bool buffers) {
  if (!m)
    return loom_null_argument(buffers ? "module_state_dict"
                                      : "module_named_parameters");
  loom_tensor_map *map = loom_tensor_map_new();
  char prefix[1024] = "";
  if (map && named(m, m, map, prefix, 0, sizeof prefix, buffers) < 0) {
    loom_tensor_map_free(map);
    return NULL;
  }
  return map;
}

loom_tensor_map *loom_module_named_parameters(const loom_module *m) {
  return as_map(m, false);
}

loom_tensor_map *loom_module_state_dict(const loom_module *m) {
  return as_map(m, true);
}

int loom_module_load_state_dict(loom_module *m, const loom_tensor_map *src,
                                bool strict) {
  if (!m || !src)
    return loom_null_argument("load_state_dict"), -1;
  loom_tensor_map *own = loom_module_state_dict(m);
  if (!own) {
    loom_tensor_map_free(own);
    return -1;
  }
  int rc = 0;
  int n = loom_tensor_map_count(own);
  for (int i = 0; i < n && rc == 0; i++) {
    const char *name = loom_tensor_map_name(own, i);
    loom_tensor *dst = loom_tensor_map_at(own, i),
                *s = loom_tensor_map_get(src, name);
    if (!s) {
      if (strict) {
        loom_set_error(LOOM_ERR_STATE, "load_state_dict (%s): missing '%s'",
                       m->type, name);
        rc = -1;
      }
    } else if (!loom_same_shape(dst, s)) {
      char a[96], b[96];
      loom_set_error(LOOM_ERR_SHAPE,
                     "load_state_dict (%s): '%s' is %s in the "
                     "file, %s in the module",
                     m->type, name, loom_shape_str(s, a, sizeof a),
                     loom_shape_str(dst, b, sizeof b));
      rc = -1;
    }
  }
  for (int i = 0; strict && rc == 0 && i < loom_tensor_map_count(src); i++)
    if (!loom_tensor_map_get(own, loom_tensor_map_name(src, i))) {
      loom_set_error(LOOM_ERR_STATE, "load_state_dict (%s): unexpected '%s'",
                     m->type, loom_tensor_map_name(src, i));
      rc = -1;
    }
  for (int i = 0; i < n && rc == 0; i++) {
    loom_tensor *dst = loom_tensor_map_at(own, i);
    loom_tensor *s = loom_tensor_map_get(src, loom_tensor_map_name(own, i));
    if (s) {
      loom_no_grad_begin();
      loom_copy_(dst, s);
      loom_no_grad_end();
    }
  }
  loom_tensor_map_free(own);
  return rc;
}

void loom_module_zero_grad(loom_module *m) {
  if (!m)
    return;
  for (int i = 0; i < m->n_entries; i++) {
    if (m->entries[i].kind == PARAM)
      loom_zero_grad(m->entries[i].tensor);
    else if (m->entries[i].kind == CHILD)
      loom_module_zero_grad(m->entries[i].child);
  }
}

loom_module *loom_module_list_new(void) {
  loom_module *l = calloc(1, sizeof *l);
  if (!l)
    return LOOM_FAIL(LOOM_ERR_MEMORY, "module_list_new: out of memory");
  loom_module_init(l, "ModuleList", NULL);
  return l;
}

loom_module *loom_module_list_append(loom_module *list, loom_module *child) {
  if (!list) {
    loom_module_free(child);
    return loom_null_argument("module_list_append");
  }
  char name[24];
  snprintf(name, sizeof name, "%d", loom_module_child_count(list));
  return loom_module_add_child(list, name, child);
}

loom_module *loom_module_child(const loom_module *m, int i) {
  if (!m)
    return loom_null_argument("module_child");
  for (int k = 0; k < m->n_entries; k++)
    if (m->entries[k].kind == CHILD && i-- == 0)
      return m->entries[k].child;
  return NULL;
}

int loom_module_child_count(const loom_module *m) {
  if (!m)
    return loom_null_argument("module_child_count"), -1;
  int n = 0;
  for (int k = 0; k < m->n_entries; k++)
    n += m->entries[k].kind == CHILD;
  return n;
}
