/* Scopes: per-thread autorelease pools. Each holds one reference to every
 * tensor handed to it and drops them when it ends. Scope records are kept
 * for reuse, so a training step that opens and closes scopes allocates
 * nothing here once warm.
 *
 * The handle a caller gets is not the record but the scope's number
 * (unique in the process, never 0), as a pointer: a record reused by the
 * next scope opened at the same depth would make an ended scope's handle
 * end that new scope, whose tensors the caller still uses. A handle is
 * only compared, never read through. */
#include "internal.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
  int64_t n, cap;
  loom_tensor **items;
  uintptr_t number; /* the handle of the scope using the record */
} record;

static _Atomic uintptr_t scopes_opened;

static _Thread_local record **stack; /* stack[0] is the root scope */
static _Thread_local int depth, stack_cap;

static record *push_scope(void) {
  if (depth == stack_cap) {
    int cap = stack_cap ? 2 * stack_cap : 16;
    record **grown = realloc(stack, (size_t)cap * sizeof *grown);
    if (!grown)
      return LOOM_FAIL(LOOM_ERR_MEMORY, "scope_begin: out of memory");
    for (int i = stack_cap; i < cap; i++)
      grown[i] = NULL;
    stack = grown;
    stack_cap = cap;
  }
  if (!stack[depth]) {
    stack[depth] = calloc(1, sizeof(record));
    if (!stack[depth])
      return LOOM_FAIL(LOOM_ERR_MEMORY, "scope_begin: out of memory");
  }
  record *s = stack[depth++];
  s->n = 0;
  s->number =
      atomic_fetch_add_explicit(&scopes_opened, 1, memory_order_relaxed) + 1;
  return s;
}

static void drain(record *s) {
  /* Newest first, and re-read n: releasing may (through autograd) never add
   * to this scope, but reading it fresh keeps this robust. */
  while (s->n > 0)
    loom__unref(s->items[--s->n]);
}

loom_scope *loom_scope_begin(void) {
  if (depth == 0 && !push_scope()) /* the root */
    return NULL;
  record *s = push_scope();
  return s ? (loom_scope *)s->number : NULL;
}

/* The depth of the open scope s, or 0 when s is not one (ended, drained
 * by loom_cleanup, or another thread's). */
static int open_depth(const loom_scope *s) {
  for (int d = depth - 1; s && d > 0; d--)
    if (stack[d]->number == (uintptr_t)s)
      return d;
  return 0;
}

void loom_scope_end(loom_scope *s) {
  int d = open_depth(s);
  if (!d) {
    loom_set_error(LOOM_ERR_STATE, "scope_end: not an open scope");
    return;
  }
  while (depth > d)
    drain(stack[--depth]);
}

loom_tensor *loom_scope_return(loom_scope *s, loom_tensor *t) {
  if (!s)
    return t;
  loom_keep(t);
  loom_scope_end(s);
  return loom__to_scope(t);
}

loom_tensor *loom__to_scope(loom_tensor *t) {
  if (!t)
    return NULL;
  if (depth == 0 && !push_scope()) {
    loom__unref(t);
    return NULL;
  }
  record *s = stack[depth - 1];
  if (s->n == s->cap) {
    int64_t cap = s->cap ? 2 * s->cap : 64;
    loom_tensor **grown = realloc(s->items, (size_t)cap * sizeof *grown);
    if (!grown) {
      loom__unref(t);
      return LOOM_FAIL(LOOM_ERR_MEMORY, "out of memory in scope");
    }
    s->items = grown;
    s->cap = cap;
  }
  s->items[s->n++] = t;
  return t;
}

loom_tensor *loom_autorelease(loom_tensor *t) { return loom__to_scope(t); }

void loom__scope_drain_all(void) {
  while (depth > 0)
    drain(stack[--depth]);
  for (int i = 0; i < stack_cap; i++) {
    if (stack[i])
      free(stack[i]->items);
    free(stack[i]);
  }
  free(stack);
  stack = NULL;
  stack_cap = 0;
}
