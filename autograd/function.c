/* Custom functions: user forward/backward callbacks become one recorded
 * node, like torch.autograd.Function. */
#include "node.h"

#include <stdlib.h>

LOOM__OP_TWICE(custom_function, custom_backward);

struct loom_function_ctx {
  loom__node *node; /* in backward */
  void *user;
  /* in forward, before the node exists: */
  loom_tensor *const *in;
  int n_in;
  loom_tensor **saved;
  int n_saved, cap_saved;
  bool oom;
  int null_save; /* the index of the first NULL saved, or -1 */
};

void loom_function_save(loom_function_ctx *c, const loom_tensor *t) {
  if (!c) {
    loom_null_argument("function_save");
    return;
  }
  if (c->node)
    return;
  /* Skipped, it would shift every later save's index: apply fails. */
  if (!t) {
    if (c->null_save < 0)
      c->null_save = c->n_saved;
    return;
  }
  if (c->n_saved == c->cap_saved) {
    int cap = c->cap_saved ? 2 * c->cap_saved : 4;
    loom_tensor **s = realloc(c->saved, (size_t)cap * sizeof *s);
    if (!s) {
      c->oom = true;
      return;
    }
    c->saved = s;
    c->cap_saved = cap;
  }
  c->saved[c->n_saved++] = loom_keep((loom_tensor *)t);
}

const loom_tensor *loom_function_saved(loom_function_ctx *c, int i) {
  if (!c)
    return loom_null_argument("function_saved");
  if (!c->node || i < 0 || i >= c->node->n_saved)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "function_saved: no saved tensor %d",
                     i);
  return loom__saved(c->node, i);
}

void *loom_function_user(loom_function_ctx *c) { return c ? c->user : NULL; }

bool loom_function_needs_grad(loom_function_ctx *c, int i) {
  if (!c)
    return false;
  if (c->node)
    return i >= 0 && i < c->node->n_in && loom__needs_grad(c->node, i);
  return i >= 0 && i < c->n_in && c->in[i] && c->in[i]->requires_grad;
}

static void custom_backward(loom__node *n, loom_tensor *const *gout) {
  const loom_function *f = n->fn;
  loom_function_ctx c = {.node = n, .user = n->user};
  loom_tensor *small[8],
      **gin = n->n_in <= 8 ? small : calloc((size_t)n->n_in, sizeof *gin);
  if (!gin) {
    loom_set_error(LOOM_ERR_MEMORY, "%s backward: out of memory", f->name);
    return;
  }
  for (int i = 0; i < n->n_in; i++)
    gin[i] = NULL;
  int rc = f->backward(&c, gout, gin);
  if (rc < 0) {
    loom_set_error(LOOM_ERR_STATE,
                   "%s: backward callback returned -1 with no error set",
                   f->name);
  } else if (rc > 0) { /* not 0 or -1: which did it mean? */
    loom_set_error(LOOM_ERR_STATE,
                   "%s: backward callback returned %d (0, or -1 with an "
                   "error set)",
                   f->name, rc);
  } else {
    for (int i = 0; i < n->n_in; i++) {
      if (!gin[i] || !loom__needs_grad(n, i))
        continue;
      if (!loom_same_shape(gin[i], n->in[i])) {
        char a[96], b[96];
        loom_set_error(LOOM_ERR_SHAPE,
                       "%s: backward gave a %s gradient for "
                       "input %d of shape %s",
                       f->name, loom_shape_str(gin[i], a, sizeof a), i,
                       loom_shape_str(n->in[i], b, sizeof b));
        break;
      }
      loom__accumulate(n, i, gin[i]);
    }
  }
  if (gin != small)
    free(gin);
}

/* What the node keeps for a tensor t the forward saved: an output it
 * returned (not one of its inputs returned as is) is kept as the linked
 * output, so that a backward recording its graph reads the output itself
 * and second derivatives see the saved value's dependence on the inputs
 * (torch's save_for_backward of an output); anything else as it is. The
 * saved tensor is retained, so an address equal to a returned one is that
 * tensor. */
static const loom_tensor *saved_as(const loom_function *f,
                                   loom_tensor *const *in,
                                   const loom_tensor *const *returned,
                                   loom_tensor *const *out,
                                   const loom_tensor *t) {
  for (int i = 0; i < f->n_inputs; i++)
    if (in[i] == t)
      return t;
  for (int k = 0; k < f->n_outputs; k++) /* an integer one stays a value */
    if (returned[k] == t && loom_dtype_is_float(t->dtype))
      return out[k];
  return t;
}

int loom_function_apply(const loom_function *f, loom_tensor *const *in,
                        loom_tensor **out, void *user) {
  if (!f || !out || (!in && f->n_inputs > 0))
    return loom_null_argument("function_apply"), -1;
  if (!f->forward || !f->backward || f->n_outputs < 1 || f->n_inputs < 0) {
    loom_set_error(LOOM_ERR_ARGUMENT, "function_apply: incomplete function");
    return -1;
  }
  for (int i = 0; i < f->n_inputs; i++)
    if (!in[i])
      return loom_null_argument(f->name ? f->name : "function_apply"), -1;
  loom_function_ctx c = {
      .user = user, .in = in, .n_in = f->n_inputs, .null_save = -1};
  for (int k = 0; k < f->n_outputs; k++)
    out[k] = NULL;
  /* What the forward returned, to know its outputs among what it saved. */
  const loom_tensor *small[8],
      **returned = f->n_outputs <= 8
                       ? small
                       : calloc((size_t)f->n_outputs, sizeof *returned);
  if (!returned) {
    loom_set_error(LOOM_ERR_MEMORY, "%s: out of memory", f->name);
    return -1;
  }
  loom_no_grad_begin();
  loom_scope *s = loom_scope_begin();
  int rc = f->forward(&c, in, f->n_inputs, out);
  if (rc < 0) /* the callback's own error, if it set one, comes first */
    loom_set_error(LOOM_ERR_STATE,
                   "%s: forward callback returned -1 with no error set",
                   f->name);
  /* A count of outputs (what a segment or gradcheck function returns) had
   * made apply return it, with every output NULL and no error. */
  if (rc > 0) {
    loom_set_error(LOOM_ERR_STATE,
                   "%s: forward callback returned %d (0, or -1 with an "
                   "error set)",
                   f->name, rc);
    rc = -1;
  }
  /* before the outputs are taken: a failed apply leaves them NULL */
  if (c.oom) {
    loom_set_error(LOOM_ERR_MEMORY, "%s: out of memory saving tensors",
                   f->name);
    rc = -1;
  }
  if (c.null_save >= 0) { /* an op's error that gave the NULL comes first */
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "%s: the forward saved NULL as tensor %d (function_save)",
                   f->name, c.null_save);
    rc = -1;
  }
  for (int k = 0; k < f->n_outputs; k++) {
    if (rc == 0 && !out[k]) {
      loom_set_error(LOOM_ERR_STATE, "%s: forward left output %d empty",
                     f->name, k);
      rc = -1;
    }
    returned[k] = out[k];
    /* Fresh aliases, so linking them never touches a tensor the forward
     * returned as is (an input, say). */
    out[k] = rc == 0 ? loom__view_of(out[k], out[k]->ndim, out[k]->shape,
                                     out[k]->strides, out[k]->offset)
                     : NULL;
  }
  loom_scope_end(s);
  loom_no_grad_end();
  for (int k = 0; k < f->n_outputs; k++) {
    if (rc == 0 && !out[k])
      rc = -1;
    out[k] = loom__to_scope(out[k]);
  }
  if (rc == 0) {
    loom__node *n =
        loom__record_multi(&loom__op_custom_function, out, f->n_outputs,
                           f->n_inputs, (const loom_tensor *const *)in);
    if (n) {
      n->fn = f;
      n->user = user;
      /* integer outputs are not differentiable (torch marks them so): no
       * gradient flows into them, and the callback gets zeros for them */
      for (int k = 0; k < f->n_outputs; k++)
        if (!loom_dtype_is_float(out[k]->dtype))
          out[k]->requires_grad = false;
      for (int i = 0; i < c.n_saved; i++)
        loom__save(n, saved_as(f, in, returned, out, c.saved[i]));
    }
  }
  if (returned != small)
    free(returned);
  for (int i = 0; i < c.n_saved; i++)
    loom__unref(c.saved[i]);
  free(c.saved);
  return rc;
}
