/* The tape: a per-thread arena of nodes in recording order, with the
 * lifetime rules from autograd.h. A tensor names its node by (slot,
 * generation); freeing a node bumps the generation, so stale names are
 * detected, never followed. */
#include "hooks.h"
#include "node.h"

#include <stdlib.h>

typedef struct {
  loom__node **slots;
  int32_t n_slots, cap;
  int32_t *free_list;
  int32_t n_free;
  int64_t live;
  uint64_t seq;
  uint32_t epoch;
  uint32_t id; /* this thread's tape among all threads' (0: none yet) */
  int no_grad_depth;
  int passes; /* backward passes running (nested ones count each) */
  bool anomaly;
  bool coverage; /* inside a gradcheck: note each op recorded */
  /* While watching > 0 (a checkpoint's first run), ops run with recording
   * off whose inputs require grad are counted in grad_reads. */
  int watching;
  int64_t grad_reads;
} tape_state;

static _Thread_local tape_state tape;
static atomic_uint tape_ids;

/* ---- grad mode ---- */

void loom_no_grad_begin(void) { tape.no_grad_depth++; }
void loom_no_grad_end(void) {
  if (tape.no_grad_depth > 0)
    tape.no_grad_depth--;
}
bool loom_grad_enabled(void) { return tape.no_grad_depth == 0; }
void loom_set_anomaly_mode(bool on) { tape.anomaly = on; }
bool loom_anomaly_mode(void) { return tape.anomaly; }
void loom__coverage_set(bool on) { tape.coverage = on; }
bool loom__coverage_is_on(void) { return tape.coverage; }
int64_t loom_tape_size(void) { return tape.live; }

/* ---- node lifetime ---- */

loom__node *loom__node_of(const loom_tensor *t) {
  /* A tensor recorded on another thread names a node of that thread's
   * tape: never look it up in this one. */
  if (t->link.slot < 0 || t->link.slot >= tape.n_slots ||
      t->link.tape != tape.id)
    return NULL;
  loom__node *n = tape.slots[t->link.slot];
  return n && n->gen == t->link.gen && n->op ? n : NULL;
}

bool loom__other_thread(const loom_tensor *t) {
  return t->link.slot >= 0 && t->link.tape != tape.id;
}

uint32_t loom__next_epoch(void) { return ++tape.epoch; }
uint64_t loom__tape_seq(void) { return tape.seq; }

int loom__swap_no_grad_depth(int depth) {
  int old = tape.no_grad_depth;
  tape.no_grad_depth = depth;
  return old;
}

int64_t loom__watch_grad_reads(int delta) {
  tape.watching += delta;
  return tape.grad_reads;
}

static void free_node(loom__node *n) {
  n->gen++;
  n->op = NULL;
  tape.live--;
  /* Drop references only after the slot is invalid, since dropping can
   * re-enter (a dying output of this node finds it already gone). */
  for (int i = 0; i < n->n_out; i++) {
    loom__unref(n->out_grad[i]);
    n->out_grad[i] = NULL;
  }
  for (int i = 0; i < n->n_saved; i++)
    loom__unref(n->saved[i]);
  for (int i = 0; i < n->n_in; i++)
    loom__unref(n->in[i]);
  if (n->in != n->in_buf) {
    free(n->in);
    free(n->in_version);
  }
  if (n->saved != n->saved_buf) {
    free(n->saved);
    free(n->saved_version);
  }
  if (n->out_grad != n->out_grad_buf) {
    free(n->out_grad);
    free(n->out_ptr);
  }
  free(n->out_meta);
  n->out_meta = NULL;
  tape.free_list[tape.n_free++] = n->slot;
}

/* Called (through tensor/'s hook) when a linked tensor is destroyed. */
static void unlink_output(loom_tensor *t) {
  loom__node *n = loom__node_of(t);
  if (!n)
    return;
  if (n->out_ptr[t->link.output] == t) /* not a stand-in's death */
    n->out_ptr[t->link.output] = NULL;
  if (--n->live_out == 0 && !n->in_backward)
    free_node(n);
}

void loom__free_node(loom__node *n) { free_node(n); }

static bool release_tape(void);

/* The hooks tensor/ calls into the tape through, once per thread that
 * records or runs a pass (a pass seeded on a leaf records nothing, and
 * loom_cleanup from its hook must still find the pass). */
static void install_hooks(void) {
  if (tape.id)
    return;
  tape.id = atomic_fetch_add_explicit(&tape_ids, 1, memory_order_relaxed) + 1;
  atomic_store_explicit(&loom__unlink_hook, unlink_output,
                        memory_order_relaxed);
  atomic_store_explicit(&loom__cleanup_hook, release_tape,
                        memory_order_relaxed);
}

void loom__tape_passes(int delta) {
  install_hooks();
  tape.passes += delta;
}

/* A running pass walks a list of its nodes and frees each as it goes on:
 * freed under it (by a hook), a node's backward was called through its
 * cleared op. */
static bool tape_idle(const char *op) {
  if (tape.passes == 0)
    return true;
  loom_set_error(LOOM_ERR_STATE,
                 "%s: a backward pass is running on this thread (a hook's or "
                 "a custom backward's call?); call it after the pass returns",
                 op);
  return false;
}

void loom_tape_clear(void) {
  if (!tape_idle("tape_clear"))
    return;
  for (int32_t s = 0; s < tape.n_slots; s++)
    if (tape.slots[s] && tape.slots[s]->op)
      free_node(tape.slots[s]);
}

static bool release_tape(void) {
  if (!tape_idle("cleanup"))
    return false;
  loom_tape_clear();
  for (int32_t s = 0; s < tape.n_slots; s++)
    free(tape.slots[s]);
  free(tape.slots);
  free(tape.free_list);
  tape.slots = NULL;
  tape.free_list = NULL;
  tape.n_slots = tape.cap = tape.n_free = 0;
  return true;
}

static loom__node *alloc_node(void) {
  if (tape.n_free == 0) {
    if (tape.n_slots == tape.cap) {
      int32_t cap = tape.cap ? 2 * tape.cap : 256;
      loom__node **slots = realloc(tape.slots, (size_t)cap * sizeof *slots);
      if (!slots)
        return NULL;
      tape.slots = slots;
      int32_t *fl = realloc(tape.free_list, (size_t)cap * sizeof *fl);
      if (!fl)
        return NULL;
      tape.free_list = fl;
      tape.cap = cap;
    }
    loom__node *n = calloc(1, sizeof *n);
    if (!n)
      return NULL;
    n->slot = tape.n_slots;
    tape.slots[tape.n_slots++] = n;
    tape.free_list[tape.n_free++] = n->slot;
  }
  loom__node *n = tape.slots[tape.free_list[--tape.n_free]];
  uint32_t gen = n->gen;
  int32_t slot = n->slot;
  memset(n, 0, sizeof *n);
  n->gen = gen;
  n->slot = slot;
  n->in = n->in_buf;
  n->in_version = n->in_version_buf;
  n->saved = n->saved_buf;
  n->saved_version = n->version_buf;
  n->cap_saved = LOOM__NODE_INLINE;
  n->out_grad = n->out_grad_buf;
  n->out_ptr = n->out_ptr_buf;
  tape.live++;
  install_hooks();
  return n;
}

static bool any_requires_grad(int n, const loom_tensor *const *in) {
  for (int i = 0; i < n; i++)
    if (in[i] && in[i]->requires_grad)
      return true;
  return false;
}

bool loom__should_record(int n, const loom_tensor *const *in) {
  if (tape.no_grad_depth > 0) {
    if (tape.watching > 0 && any_requires_grad(n, in))
      tape.grad_reads++;
    return false;
  }
  return any_requires_grad(n, in);
}

static void link_output(loom__node *n, loom_tensor *out, int k) {
  out->link = (loom__grad_link){n->slot, n->gen, k, tape.id};
  out->requires_grad = true;
  n->out_ptr[k] = out;
}

static void check_forward(const loom__op_def *op, loom_tensor **out, int n_out,
                          int n, const loom_tensor *const *in) {
  for (int k = 0; k < n_out; k++)
    if (loom__kernel_has_nonfinite(out[k])) {
      loom_set_error(LOOM_ERR_NUMERIC,
                     "anomaly: %s produced NaN/Inf in its "
                     "output %s (first input %s)",
                     op->name, loom_shape_text(out[k]),
                     n ? loom_shape_text(in[0]) : "none");
      return;
    }
}

loom__node *loom__record_multi(const loom__op_def *op, loom_tensor **out,
                               int n_out, int n, const loom_tensor *const *in) {
  if (!loom__should_record(n, in)) {
    if (tape.anomaly)
      check_forward(op, out, n_out, n, in);
    return NULL;
  }
  return loom__record_always(op, out, n_out, n, in);
}

loom__node *loom__record_always(const loom__op_def *op, loom_tensor **out,
                                int n_out, int n,
                                const loom_tensor *const *in) {
  if (tape.anomaly)
    check_forward(op, out, n_out, n, in);
  if (tape.coverage)
    loom__coverage_note(op);
  loom__node *node = alloc_node();
  bool ok = node != NULL;
  if (ok && n > LOOM__NODE_INLINE) {
    node->in = malloc((size_t)n * sizeof *node->in);
    node->in_version = malloc((size_t)n * sizeof *node->in_version);
    ok = node->in && node->in_version;
    if (!ok) {
      free(node->in);
      free(node->in_version);
      node->in = node->in_buf;
      node->in_version = node->in_version_buf;
    }
  }
  if (ok && n_out > 1) {
    node->out_grad = calloc((size_t)n_out, sizeof *node->out_grad);
    node->out_ptr = calloc((size_t)n_out, sizeof *node->out_ptr);
    node->out_meta = calloc((size_t)n_out, sizeof *node->out_meta);
    ok = node->out_grad && node->out_ptr && node->out_meta;
  }
  if (!ok) {
    loom_set_error(LOOM_ERR_MEMORY, "%s: out of memory recording the graph",
                   op->name);
    if (node) {
      node->op = op; /* so free_node accounts for it */
      free_node(node);
    }
    for (int k = 0; k < n_out; k++) /* backward through these must fail */
      out[k]->link = (loom__grad_link){.slot = LOOM__LINK_FAILED};
    return NULL;
  }
  node->op = op;
  node->seq = ++tape.seq;
  node->n_in = n;
  for (int i = 0; i < n; i++) {
    node->in[i] = loom_keep((loom_tensor *)in[i]);
    node->in_version[i] = in[i]->storage ? in[i]->storage->version : 0;
  }
  node->n_out = n_out;
  node->live_out = n_out;
  for (int k = 0; k < n_out; k++) {
    link_output(node, out[k], k);
    if (node->out_meta) {
      node->out_meta[k].dtype = out[k]->dtype;
      node->out_meta[k].ndim = out[k]->ndim;
      memcpy(node->out_meta[k].shape, out[k]->shape, sizeof out[k]->shape);
    }
  }
  return node;
}

loom__node *loom__record(const loom__op_def *op, loom_tensor *out, int n,
                         const loom_tensor *const *in) {
  if (!out)
    return NULL;
  return loom__record_multi(op, &out, 1, n, in);
}

/* A tensor backward needs could not be saved: the outputs' gradients
 * cannot be formed, so backward through them reports it instead of
 * reading a missing tensor. */
static void save_failed(loom__node *n) {
  if (loom_last_status() == LOOM_OK)
    loom_set_error(LOOM_ERR_MEMORY, "%s: out of memory saving a tensor",
                   n->op->name);
  for (int k = 0; k < n->n_out; k++)
    if (n->out_ptr[k])
      n->out_ptr[k]->link.slot = LOOM__LINK_FAILED;
}

void loom__save(loom__node *n, const loom_tensor *t) {
  if (!n || !t)
    return;
  if (n->n_saved == n->cap_saved) {
    int cap = 2 * n->cap_saved;
    loom_tensor **s = malloc((size_t)cap * sizeof *s);
    int64_t *v = malloc((size_t)cap * sizeof *v);
    if (!s || !v) {
      free(s);
      free(v);
      save_failed(n);
      return;
    }
    memcpy(s, n->saved, (size_t)n->n_saved * sizeof *s);
    memcpy(v, n->saved_version, (size_t)n->n_saved * sizeof *v);
    if (n->saved != n->saved_buf) {
      free(n->saved);
      free(n->saved_version);
    }
    n->saved = s;
    n->saved_version = v;
    n->cap_saved = cap;
  }
  loom_tensor *keep;
  if (t->link.slot == n->slot && t->link.gen == n->gen) {
    /* The node's own output: keep an unlinked alias of its data. */
    keep = loom__view_of(t, t->ndim, t->shape, t->strides, t->offset);
    if (!keep) {
      save_failed(n);
      return;
    }
    /* Which output it is, for loom__saved: the alias is the node's
     * alone and stays a leaf, whose link has no other use for it. */
    keep->link.output = t->link.output;
    if (n->n_saved < 32)
      n->saved_out |= 1u << n->n_saved;
  } else {
    keep = loom_keep((loom_tensor *)t);
  }
  n->saved_version[n->n_saved] = t->storage->version;
  n->saved[n->n_saved++] = keep;
}

const loom_tensor *loom__input(const loom__node *n, int i) { return n->in[i]; }

void loom__keep_link_only(loom__node *n, int i) {
  loom_tensor *t = n ? n->in[i] : NULL;
  /* A leaf that wants a gradient receives it in its own .grad, and hooks
   * or a retained gradient belong to the tensor itself: those stay. */
  if (!t || !t->storage || t->hooks || t->retains_grad ||
      (t->link.slot == LOOM__LINK_LEAF && t->requires_grad))
    return;
  bool pending = loom_last_status() != LOOM_OK;
  loom_tensor *s = loom__stand_in(t);
  if (!s) { /* keeping t itself is right, only costlier */
    if (!pending)
      loom_clear_error();
    return;
  }
  s->requires_grad = t->requires_grad;
  s->link = t->link;
  /* The stand-in is another live output of t's producer, which must stay
   * for backward to reach it. A producer on another thread's tape (or one
   * already freed) is not counted: nodes are freed only by their own
   * thread, and a stale link is caught when backward follows it. */
  loom__node *p = loom__node_of(t);
  if (p)
    p->live_out++;
  n->in[i] = s;
  loom__unref(t);
}

/* t, unless it was written in place since version `version`: then NULL and
 * an error naming the op and what t is to it (saved value or input i). */
static const loom_tensor *unmodified(const loom__node *n, const loom_tensor *t,
                                     int64_t version, int input) {
  if (!t->storage) {
    loom_set_error(LOOM_ERR_STATE,
                   "backward of %s: its input %d (%s) was not kept (the op "
                   "declared that its backward reads no values of it)",
                   n->op->name, input, loom_shape_text(t));
    return NULL;
  }
  if (t->storage->version != version) {
    char what[48];
    if (input < 0)
      snprintf(what, sizeof what, "a tensor it saved");
    else
      snprintf(what, sizeof what, "its input %d", input);
    loom_set_error(LOOM_ERR_STATE,
                   "backward of %s: %s (%s) was modified in place after it "
                   "was used (version %lld, now %lld); clone it before "
                   "writing to it",
                   n->op->name, what, loom_shape_text(t), (long long)version,
                   (long long)t->storage->version);
    return NULL;
  }
  return t;
}

/* A saved alias of n's output k, for a backward that records its graph:
 * the output itself, so that gradients reach n's inputs through it
 * (PyTorch unpacks a saved output the same way). When the output has died
 * a new alias takes its place in the node, linked to it. */
static const loom_tensor *output_in_graph(loom__node *n, loom_tensor *alias,
                                          int k) {
  if (n->out_ptr[k])
    return n->out_ptr[k];
  loom_tensor *o = loom__view_of(alias, alias->ndim, alias->shape,
                                 alias->strides, alias->offset);
  if (!o)
    return NULL;
  o->link = (loom__grad_link){n->slot, n->gen, k, tape.id};
  o->requires_grad = true;
  n->out_ptr[k] = o;
  n->live_out++;
  return loom__to_scope(o);
}

const loom_tensor *loom__saved(const loom__node *n, int i) {
  const loom_tensor *t = unmodified(n, n->saved[i], n->saved_version[i], -1);
  if (t && i < 32 && ((n->saved_out >> i) & 1) && loom__creating_graph())
    return output_in_graph((loom__node *)n, n->saved[i],
                           n->saved[i]->link.output);
  return t;
}

const loom_tensor *loom__input_value(const loom__node *n, int i) {
  return unmodified(n, n->in[i], n->in_version[i], i);
}

bool loom__needs_grad(const loom__node *n, int i) {
  return n->in[i] && n->in[i]->requires_grad;
}

static bool disposable(const loom_tensor *t) {
  return atomic_load(&t->refcount) == 1 &&
         atomic_load(&t->storage->refcount) == 1 && t->storage->block_bytes > 0;
}

bool loom__saved_disposable(const loom__node *n, int i) {
  const loom_tensor *t = n->saved[i];
  return !loom__pass_keeps_nodes && !t->hooks && !t->retains_grad &&
         disposable(t);
}

bool loom__input_disposable(const loom__node *n, int i) {
  const loom_tensor *t = n->in[i];
  if (!t || !t->storage || loom__pass_keeps_nodes || t->hooks ||
      t->retains_grad)
    return false;
  /* the node retains each input: one reference is the node's alone (an
   * input given twice holds two) */
  return disposable(t);
}

/* ---- leaves ---- */

loom_tensor *loom_set_requires_grad(loom_tensor *t, bool on) {
  if (!t)
    return loom_null_argument("set_requires_grad");
  if (t->link.slot != LOOM__LINK_LEAF)
    return LOOM_FAIL(LOOM_ERR_STATE,
                     "set_requires_grad: only leaf tensors "
                     "(not results of recorded ops); use detach first");
  if (on && !loom_dtype_is_float(t->dtype))
    return LOOM_FAIL(LOOM_ERR_DTYPE,
                     "set_requires_grad: %s tensors cannot "
                     "require grad",
                     loom_dtype_name(t->dtype));
  t->requires_grad = on;
  return t;
}

bool loom_requires_grad(const loom_tensor *t) { return t && t->requires_grad; }
bool loom_is_leaf(const loom_tensor *t) {
  return t && t->link.slot == LOOM__LINK_LEAF;
}
loom_tensor *loom_grad(const loom_tensor *t) {
  return t ? t->grad : loom_null_argument("grad");
}

void loom_zero_grad(loom_tensor *t) {
  if (!t)
    return;
  loom__unref(t->grad);
  t->grad = NULL;
}

int loom_set_grad(loom_tensor *t, loom_tensor *g) {
  if (!t || !g)
    return loom_null_argument("set_grad"), -1;
  /* backward adds into g in place: each element needs memory of its own,
   * apart from t's */
  bool shared =
      (g->storage && g->storage == t->storage) || !loom__elements_distinct(g);
  if (shared) {
    loom_set_error(LOOM_ERR_STATE,
                   "set_grad: the gradient %s shares memory %s; clone it "
                   "first",
                   loom_shape_text(g),
                   g->storage == t->storage ? "with the tensor"
                                            : "among its elements (expanded)");
    return -1;
  }
  if (t->link.slot != LOOM__LINK_LEAF || !t->requires_grad ||
      !loom_same_shape(t, g) || t->dtype != g->dtype) {
    loom_set_error(LOOM_ERR_STATE, "set_grad: a %s gradient %s for %s %s %s",
                   loom_dtype_name(g->dtype), loom_shape_text(g),
                   t->link.slot != LOOM__LINK_LEAF ? "a non-leaf"
                   : !t->requires_grad             ? "a leaf without grad"
                                                   : "a leaf",
                   loom_dtype_name(t->dtype), loom_shape_text(t));
    return -1;
  }
  loom_keep(g);
  loom__unref(t->grad);
  t->grad = g;
  return 0;
}

void loom_retain_grad(loom_tensor *t) {
  if (!t) {
    loom_null_argument("retain_grad");
    return;
  }
  if (!t->requires_grad) { /* no gradient will ever come */
    loom_set_error(LOOM_ERR_STATE,
                   "retain_grad: tensor %s does not require grad",
                   loom_shape_text(t));
    return;
  }
  t->retains_grad = true;
}

loom_tensor *loom_detach(const loom_tensor *t) {
  if (!t)
    return loom_null_argument("detach");
  return loom__to_scope(
      loom__view_of(t, t->ndim, t->shape, t->strides, t->offset));
}

bool loom__inplace_ok(loom_tensor *t, const char *op) {
  if (tape.no_grad_depth == 0 && t->requires_grad) {
    loom_set_error(LOOM_ERR_STATE,
                   "%s: in-place write into %s, which requires grad; use the "
                   "out-of-place op, or write under loom_no_grad_begin",
                   op, loom_shape_text(t));
    return false;
  }
  loom__bump_version(t);
  return true;
}

/* ---- debugging ---- */

void loom_graph_print(FILE *f, const loom_tensor *t) {
  if (!f || !t) {
    loom_null_argument("graph_print");
    return;
  }
  loom__node *root = loom__node_of(t);
  if (!root) {
    fprintf(f, "%s %s: %s\n", loom_shape_text(t), loom_dtype_name(t->dtype),
            t->link.slot == LOOM__LINK_LEAF
                ? (t->requires_grad ? "leaf (requires grad)" : "constant")
                : "graph freed");
    return;
  }
  int64_t count;
  loom__node **list = loom__collect(&root, 1, NULL, &count);
  if (!list)
    return;
  for (int64_t j = 0; j < count; j++) {
    loom__node *n = list[j];
    fprintf(f, "#%llu %s(", (unsigned long long)n->seq,
            n->fn ? n->fn->name : n->op->name);
    for (int i = 0; i < n->n_in; i++) {
      const loom_tensor *in = n->in[i];
      loom__node *p = loom__node_of(in);
      if (p)
        fprintf(f, "%s#%llu", i ? ", " : "", (unsigned long long)p->seq);
      else
        fprintf(f, "%s%s%s", i ? ", " : "",
                in->requires_grad ? "leaf" : "const", loom_shape_text(in));
    }
    fprintf(f, ")");
    for (int k = 0; k < n->n_out; k++)
      if (n->out_ptr[k])
        fprintf(f, " -> %s", loom_shape_text(n->out_ptr[k]));
    fprintf(f, "\n");
  }
  free(list);
}
