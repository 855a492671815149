/* Hooks. Grad-ready hooks: a leaf's callbacks that backward runs as soon
 * as the leaf's gradient for the pass is complete, while older nodes are
 * still to run (data parallelism starts each gradient's all-reduce there,
 * so communication overlaps the rest of backward). Tensor hooks
 * (loom_register_hook) see, and may replace, a tensor's gradient: a
 * non-leaf's just before the node that produced it runs (its gradient is
 * complete then), a leaf's when it is complete in the sense below, on the
 * pass's sum held back from .grad until then.
 *
 * When is a leaf's gradient complete? Backward runs its nodes newest first,
 * and only a node that reads the leaf adds to its gradient; so once the
 * last such node in that order has run, nothing else will, except the
 * small linears' weight products and bias sums that matmul.c defers to
 * the end of the pass, which are summed for the leaf first
 * (loom__deferred_flush). */
#include "hooks.h"

#include <stdatomic.h>
#include <stdlib.h>

struct loom_hook {
  loom_tensor *leaf;     /* the tensor (leaf or not), kept while registered */
  loom_grad_ready_fn fn; /* a grad-ready hook, or */
  loom_tensor_hook_fn tensor_fn; /* a tensor hook */
  void *ctx;
  loom_hook *next;
  /* On a leaf's first hook only: which plan saw the leaf last, the
   * leaf's entry in it, and the gradient the pass holds back for the
   * leaf's tensor hooks. */
  uint64_t plan_id;
  int64_t entry;
  loom_tensor *pending;
  loom_hook *dead_next; /* removed while hooks ran: freed after them */
};

/* Hooks registered in the process: backward plans nothing while zero. */
static atomic_long hook_count;
static atomic_uint_fast64_t plan_ids;

/* A hook that removes itself (or another hook) while this thread runs
 * hooks would free the list entry the loop stands on: such removals only
 * silence the hook and wait in `dead` until the outermost run is over. */
static _Thread_local int running;
static _Thread_local loom_hook *dead;

static void unlink_hook(loom_hook *h);

static void run_begin(void) { running++; }

static void run_end(void) {
  if (--running > 0)
    return;
  while (dead) {
    loom_hook *h = dead;
    dead = h->dead_next;
    unlink_hook(h);
  }
}

static bool registering_in_hook(const char *op) {
  if (!running)
    return false;
  loom_set_error(LOOM_ERR_STATE, "%s: called from a hook while it runs", op);
  return true;
}

loom_hook *loom_register_grad_ready_hook(loom_tensor *leaf,
                                         loom_grad_ready_fn fn, void *ctx) {
  if (!leaf || !fn)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "register_grad_ready_hook: %s is NULL",
                     leaf ? "the function" : "the tensor");
  if (registering_in_hook("register_grad_ready_hook"))
    return NULL;
  if (!loom_is_leaf(leaf) || !loom_requires_grad(leaf))
    return LOOM_FAIL(
        LOOM_ERR_STATE, "register_grad_ready_hook: the tensor %s is %s",
        loom_shape_text(leaf),
        loom_is_leaf(leaf) ? "a leaf that does not require grad"
                           : "not a leaf (the result of a recorded op)");
  loom_hook *h = calloc(1, sizeof *h);
  if (!h)
    return LOOM_FAIL(LOOM_ERR_MEMORY,
                     "register_grad_ready_hook: out of memory");
  *h = (loom_hook){.leaf = loom_keep(leaf), .fn = fn, .ctx = ctx};
  loom_hook **tail = &leaf->hooks;
  while (*tail)
    tail = &(*tail)->next;
  *tail = h;
  atomic_fetch_add(&hook_count, 1);
  return h;
}

loom_hook *loom_register_hook(loom_tensor *t, loom_tensor_hook_fn fn,
                              void *ctx) {
  if (!t || !fn)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "register_hook: %s is NULL",
                     t ? "the function" : "the tensor");
  if (registering_in_hook("register_hook"))
    return NULL;
  if (!loom_requires_grad(t))
    return LOOM_FAIL(LOOM_ERR_STATE,
                     "register_hook: the tensor %s does not require grad",
                     loom_shape_text(t));
  loom_hook *h = calloc(1, sizeof *h);
  if (!h)
    return LOOM_FAIL(LOOM_ERR_MEMORY, "register_hook: out of memory");
  *h = (loom_hook){.leaf = loom_keep(t), .tensor_fn = fn, .ctx = ctx};
  loom_hook **tail = &t->hooks;
  while (*tail)
    tail = &(*tail)->next;
  *tail = h;
  atomic_fetch_add(&hook_count, 1);
  return h;
}

void loom_hook_remove(loom_hook *h) {
  if (!h || (running && !h->fn && !h->tensor_fn)) /* (removed already) */
    return;
  if (running) {
    h->fn = NULL;
    h->tensor_fn = NULL;
    h->dead_next = dead;
    dead = h;
    return;
  }
  unlink_hook(h);
}

static void unlink_hook(loom_hook *h) {
  loom_hook **p = &h->leaf->hooks;
  while (*p && *p != h)
    p = &(*p)->next;
  if (*p == h->leaf->hooks && h->next) { /* the next becomes the first */
    h->next->plan_id = h->plan_id;
    h->next->entry = h->entry;
    h->next->pending = h->pending;
    h->pending = NULL;
  }
  /* the last hook removed while a pass held the leaf's gradient back for
   * it: what the pass has summed so far goes where the rest will go */
  if (h->pending && loom__add_to_grad(h->leaf, h->pending) < 0)
    loom_set_error(LOOM_ERR_MEMORY, "hook_remove: out of memory");
  loom__unref(h->pending);
  if (*p)
    *p = h->next;
  atomic_fetch_sub(&hook_count, 1);
  loom_release(h->leaf);
  free(h);
}

bool loom__has_tensor_hooks(const loom_tensor *t) {
  for (loom_hook *h = t->hooks; h; h = h->next)
    if (h->tensor_fn)
      return true;
  return false;
}

static int apply_tensor_hooks(loom_tensor *t, loom_tensor **grad) {
  for (loom_hook *h = t->hooks; h; h = h->next) {
    if (!h->tensor_fn || !*grad)
      continue;
    loom_tensor *replace = NULL;
    if (h->tensor_fn(t, *grad, &replace, h->ctx) < 0) {
      if (loom_last_status() == LOOM_OK)
        loom_set_error(LOOM_ERR_STATE,
                       "backward: a hook of a tensor %s failed without "
                       "saying why",
                       loom_shape_text(t));
      return -1;
    }
    if (!replace)
      continue;
    if (!loom_same_shape(replace, t) || replace->dtype != t->dtype) {
      loom_set_error(LOOM_ERR_SHAPE,
                     "backward: a hook replaced the gradient of a %s %s "
                     "tensor with a %s %s one",
                     loom_dtype_name(t->dtype), loom_shape_text(t),
                     loom_dtype_name(replace->dtype), loom_shape_text(replace));
      return -1;
    }
    loom_keep(replace);
    loom__unref(*grad);
    *grad = replace;
  }
  return 0;
}

int loom__tensor_hooks_apply(loom_tensor *t, loom_tensor **grad) {
  run_begin();
  int rc = apply_tensor_hooks(t, grad);
  run_end();
  return rc;
}

bool loom__hooks_hold(loom_tensor *leaf, loom_tensor *g) {
  if (!loom__has_tensor_hooks(leaf))
    return false;
  loom__add_to_slot(&leaf->hooks->pending, g);
  return true;
}

static int run_hooks(loom_tensor *leaf) {
  loom_hook *first = leaf->hooks;
  if (first && first->pending) { /* tensor hooks, then into .grad */
    int rc = apply_tensor_hooks(leaf, &first->pending);
    if (rc == 0 && first->pending)
      rc = loom__add_to_grad(leaf, first->pending);
    loom__unref(first->pending);
    first->pending = NULL;
    if (rc < 0)
      return -1;
  }
  for (loom_hook *h = leaf->hooks; h; h = h->next)
    if (h->fn && h->fn(leaf, h->ctx) < 0) {
      if (loom_last_status() == LOOM_OK)
        loom_set_error(LOOM_ERR_STATE,
                       "backward: a grad-ready hook of a leaf %s failed "
                       "without saying why",
                       loom_shape_text(leaf));
      return -1;
    }
  return 0;
}

static int run_hooks_of(loom_tensor *leaf) {
  run_begin();
  int rc = run_hooks(leaf);
  run_end();
  return rc;
}

int loom__hooks_run_leaf(loom_tensor *t) {
  return t->hooks ? run_hooks_of(t) : 0;
}

/* ---- the plan of a pass ---- */

typedef struct {
  loom_tensor *leaf;
  int64_t last; /* index in the pass of the last node that reads it */
} planned;

struct loom_hook_plan {
  planned *leaves; /* by `last`, increasing */
  int64_t n, cap, done;
};

static int by_last(const void *a, const void *b) {
  int64_t x = ((const planned *)a)->last, y = ((const planned *)b)->last;
  return (x > y) - (x < y);
}

static bool note(loom_hook_plan *p, uint64_t id, loom_tensor *leaf, int64_t j) {
  loom_hook *first = leaf->hooks;
  if (first->plan_id == id) { /* seen: a later node reads it too */
    p->leaves[first->entry].last = j;
    return true;
  }
  if (p->n == p->cap) {
    int64_t cap = p->cap ? 2 * p->cap : 16;
    planned *g = realloc(p->leaves, (size_t)cap * sizeof *g);
    if (!g)
      return false;
    p->leaves = g;
    p->cap = cap;
  }
  first->plan_id = id;
  first->entry = p->n;
  /* held: the nodes that hold it may be freed before its hooks run */
  p->leaves[p->n++] = (planned){loom_keep(leaf), j};
  return true;
}

loom_hook_plan *loom__hooks_plan(loom__node *const *list, int64_t count) {
  if (atomic_load(&hook_count) == 0)
    return NULL;
  loom_hook_plan *p = calloc(1, sizeof *p);
  uint64_t id = atomic_fetch_add(&plan_ids, 1) + 1;
  bool ok = p != NULL;
  for (int64_t j = 0; ok && j < count; j++)
    for (int i = 0; ok && i < list[j]->n_in; i++) {
      loom_tensor *in = list[j]->in[i];
      if (in && in->hooks && in->link.slot == LOOM__LINK_LEAF &&
          in->requires_grad)
        ok = note(p, id, in, j);
    }
  if (!ok) {
    loom__hooks_plan_free(p);
    return LOOM_FAIL(LOOM_ERR_MEMORY, "backward: out of memory planning hooks");
  }
  if (p->n == 0) {
    loom__hooks_plan_free(p);
    return NULL;
  }
  qsort(p->leaves, (size_t)p->n, sizeof *p->leaves, by_last);
  return p;
}

int loom__hooks_run(loom_hook_plan *p, int64_t next) {
  for (; p && p->done < p->n && p->leaves[p->done].last < next; p->done++) {
    loom_tensor *leaf = p->leaves[p->done].leaf;
    loom__deferred_flush(leaf);
    if (loom_last_status() != LOOM_OK || run_hooks_of(leaf) < 0) {
      p->done++;
      return -1;
    }
  }
  return 0;
}

void loom__hooks_plan_free(loom_hook_plan *p) {
  if (!p)
    return;
  for (int64_t i = 0; i < p->n; i++) { /* a failed pass's held gradients */
    loom_hook *first = p->leaves[i].leaf->hooks;
    if (first) {
      loom__unref(first->pending);
      first->pending = NULL;
    }
    loom_release(p->leaves[i].leaf);
  }
  free(p->leaves);
  free(p);
}
