/* How backward runs a leaf's grad-ready hooks (hooks.c): before the pass,
 * a plan of which leaves with hooks it reaches and after which node each
 * gets its last contribution; during the pass, the hooks of every leaf
 * whose last node has run. Not installed. */
#ifndef LOOM_HOOKS_H
#define LOOM_HOOKS_H

#include "node.h"

typedef struct loom_hook_plan loom_hook_plan;

/* The plan for a pass over list[0..count) (newest first), or NULL when
 * none of those nodes reads a leaf with hooks (or memory ran out: then an
 * error is set). Cheap when no hook exists anywhere. */
loom_hook_plan *loom__hooks_plan(loom__node *const *list, int64_t count);
/* Runs the hooks of every planned leaf whose last node comes before
 * list[next] (next = count: all the rest), each after the matmul
 * deferral has summed what it held for that leaf. 0, or -1 when a hook
 * failed (its error is set). NULL plan: nothing to do. */
int loom__hooks_run(loom_hook_plan *p, int64_t next);
void loom__hooks_plan_free(loom_hook_plan *p);
/* Runs t's hooks now (a backward seeded at the leaf t itself). */
int loom__hooks_run_leaf(loom_tensor *t);
/* Whether t has tensor hooks (loom_register_hook). */
bool loom__has_tensor_hooks(const loom_tensor *t);
/* Runs t's tensor hooks in order on *grad, each given the gradient the
 * one before it left (a replacement is kept in *grad). 0, or -1 with an
 * error (a hook failed, or replaced the gradient with one of another
 * shape or dtype). */
int loom__tensor_hooks_apply(loom_tensor *t, loom_tensor **grad);
/* For a leaf with tensor hooks: adds g to what the pass holds back for
 * them (true), instead of to .grad (false: no tensor hooks). */
bool loom__hooks_hold(loom_tensor *leaf, loom_tensor *g);

#endif
