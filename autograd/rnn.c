/* Fused recurrences over a whole sequence: LSTM, GRU and plain RNN. Per
 * step, one GEMM for the recurrent product and one elementwise pass; in
 * backward, one GEMM per step for the state gradient and the recurrent
 * weights' gradient as products over all steps (two when a step's
 * previous state is read from the step before's output and h0 rather than
 * kept). They compute exactly what the step-by-step cells compute (tests
 * compare the two).
 *
 * Double backward (create_graph): by composition. The graph backward
 * rebuilds the recurrence step by step from public ops, as the cells of
 * nn/cells.c compute it (peepholes, lengths, direction and initial states
 * as the node's), and differentiates that (loom__backward_by_composition);
 * every other pass keeps the fused backward. */
#include "node.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>

LOOM__OP_GRAPH(lstm_sequence, lstm_backward, sequence_graph_backward);
LOOM__OP_GRAPH(gru_sequence, gru_backward, sequence_graph_backward);
LOOM__OP_GRAPH(rnn_sequence, rnn_backward, sequence_graph_backward);

/* Shared shape checks and geometry. */
typedef struct {
  int64_t T, B, H;
  int gates;
  loom_dtype dtype;
  size_t es;
} geom;

static bool check(const char *op, const loom_tensor *xp, const loom_tensor *w,
                  const loom_tensor *b, const loom_tensor *const *states,
                  int n_states, int gates, geom *g) {
  if (loom__check_float(xp, op))
    return false;
  if (xp->ndim != 3 || w->ndim != 2 || w->shape[0] % gates ||
      xp->shape[2] != w->shape[0] || w->shape[1] * gates != w->shape[0]) {
    loom_set_error(LOOM_ERR_SHAPE,
                   "%s: inputs %s and weight %s do not fit "
                   "(T, B, %dH) and (%dH, H)",
                   op, loom_shape_text(xp), loom_shape_text(w), gates, gates);
    return false;
  }
  *g = (geom){xp->shape[0], xp->shape[1], w->shape[1],
              gates,        xp->dtype,    loom_dtype_size(xp->dtype)};
  if (b && (b->ndim != 1 || b->shape[0] != w->shape[0])) {
    loom_set_error(LOOM_ERR_SHAPE, "%s: bias %s for weight %s", op,
                   loom_shape_text(b), loom_shape_text(w));
    return false;
  }
  for (int k = 0; k < n_states; k++) {
    const loom_tensor *s = states[k];
    if (s->ndim != 2 || s->shape[0] != g->B || s->shape[1] != g->H) {
      loom_set_error(LOOM_ERR_SHAPE, "%s: state %s, expected [%lld, %lld]", op,
                     loom_shape_text(s), (long long)g->B, (long long)g->H);
      return false;
    }
  }
  const loom_tensor *all[] = {w, b};
  const char *names[] = {"weight", "bias"};
  for (int k = 0; k < 2 + n_states; k++) {
    const loom_tensor *t = k < 2 ? all[k] : states[k - 2];
    if (t && t->dtype != xp->dtype) {
      char what[24]; /* "state " and any int */
      snprintf(what, sizeof what, "state %d", k - 2);
      loom_set_error(LOOM_ERR_DTYPE, "%s: mixed dtypes: inputs %s, %s %s", op,
                     loom_dtype_name(xp->dtype), k < 2 ? names[k] : what,
                     loom_dtype_name(t->dtype));
      return false;
    }
  }
  return true;
}

/* active[t * B + b] = t < lengths[b], or NULL when every step is live. */
static uint8_t *activity(const loom_tensor *lengths, const geom *g,
                         const char *op) {
  if (!lengths)
    return NULL;
  if (lengths->dtype != LOOM_I64 || lengths->ndim != 1 ||
      lengths->shape[0] != g->B) {
    loom_set_error(LOOM_ERR_SHAPE, "%s: lengths %s, expected int64 [%lld]", op,
                   loom_shape_text(lengths), (long long)g->B);
    return NULL;
  }
  uint8_t *a = malloc((size_t)(g->T * g->B) + 1);
  if (!a) {
    loom_set_error(LOOM_ERR_MEMORY, "%s: out of memory", op);
    return NULL;
  }
  for (int64_t b = 0; b < g->B; b++) {
    int64_t len = ((const int64_t *)lengths->data)[b * lengths->strides[0]];
    if (len < 0 || len > g->T) {
      free(a);
      loom_set_error(LOOM_ERR_INDEX, "%s: length %lld outside [0, %lld]", op,
                     (long long)len, (long long)g->T);
      return NULL;
    }
    for (int64_t t = 0; t < g->T; t++)
      a[t * g->B + b] = t < len;
  }
  return a;
}

/* The per-step product with the recurrent weight, C (B x N) (+)= A (B x K)
 * op(W): float32 packs op(W) once for all steps (BLAS would repack it at
 * every call); float64 calls BLAS. */
typedef struct {
  loom__packed *packed;
  const loom_tensor *w;
  bool trans;
  int64_t K, N;
} step_product;

static bool product_init(step_product *sp, const loom_tensor *w, bool trans) {
  int64_t rows = w->shape[0], cols = w->shape[1];
  *sp =
      (step_product){NULL, w, trans, trans ? cols : rows, trans ? rows : cols};
  if (w->dtype != LOOM_F32)
    return true;
  sp->packed =
      loom__kernel_pack((const float *)w->data, sp->K, sp->N, cols, trans);
  return sp->packed != NULL;
}

static void product(const step_product *sp, int64_t M, const void *a, void *c,
                    bool accumulate) {
  if (sp->packed)
    loom__kernel_gemm_packed(M, a, sp->K, sp->packed, c, sp->N, accumulate);
  else
    loom__kernel_gemm_raw(sp->w->dtype, false, sp->trans, M, sp->N, sp->K, 1, a,
                          sp->K, sp->w->data, sp->w->shape[1],
                          accumulate ? 1 : 0, c, sp->N);
}

static char *at(const loom_tensor *t, int64_t i, int64_t row_elems) {
  return t->data + i * row_elems * (int64_t)loom_dtype_size(t->dtype);
}

/* Adds each row of src (rows x n) to dst (rows x n). */
static void add_rows(loom_dtype t, void *dst, const void *src, int64_t n) {
  if (t == LOOM_F32)
    for (int64_t i = 0; i < n; i++)
      ((float *)dst)[i] += ((const float *)src)[i];
  else
    for (int64_t i = 0; i < n; i++)
      ((double *)dst)[i] += ((const double *)src)[i];
}

/* dst (B x n) = src (B x n; NULL: zeros) + bias broadcast over rows (bias
 * may be NULL). */
static void rows_plus_bias(loom_dtype t, void *dst, const void *src,
                           const void *bias, int64_t B, int64_t n) {
  size_t bytes = (size_t)(B * n) * loom_dtype_size(t);
  if (src == dst) /* the input part was computed in place */
    ;
  else if (src)
    memcpy(dst, src, bytes);
  else
    memset(dst, 0, bytes);
  if (bias)
    for (int64_t b = 0; b < B; b++)
      add_rows(t, (char *)dst + (size_t)(b * n) * loom_dtype_size(t), bias, n);
}

/* After a step's backward GEMM: rows of finished sequences pass dh on. */
static void pass_inactive(loom_dtype t, void *dh_new, const void *dh,
                          const uint8_t *active, int64_t B, int64_t H) {
  if (!active)
    return;
  size_t row = (size_t)H * loom_dtype_size(t);
  for (int64_t b = 0; b < B; b++)
    if (!active[b])
      memcpy((char *)dh_new + b * row, (const char *)dh + b * row, row);
}

/* dh_total = dh + dout rows of live sequences. */
static void with_output_grad(loom_dtype t, void *dst, const void *dh,
                             const void *dout, const uint8_t *active, int64_t B,
                             int64_t H) {
  size_t row = (size_t)H * loom_dtype_size(t);
  memcpy(dst, dh, (size_t)B * row);
  for (int64_t b = 0; b < B; b++)
    if (!active || active[b])
      add_rows(t, (char *)dst + b * row, (const char *)dout + b * row, H);
}

/* Column sums of a (rows x n) matrix into a new (n) tensor. */
static loom_tensor *column_sums(const loom_tensor *m, int64_t rows, int64_t n) {
  loom_tensor *flat = loom_reshape(m, 2, (int64_t[]){rows, n});
  return loom_sum(flat, (int[]){0}, 1, false);
}

static void seq_remember(loom__node *n, const geom *g, bool reverse,
                         bool has_bias, bool has_peep, bool relu) {
  n->i[0] = g->T;
  n->i[1] = g->B;
  n->i[2] = g->H;
  n->i[3] = reverse;
  n->i[4] = has_bias;
  n->i[5] = has_peep;
  n->i[6] = relu;
  n->i[7] = 0; /* xp given; the ops that project x set 1, or 2 with b_ih */
}

static geom seq_geom(const loom__node *n, int gates) {
  loom_dtype t = n->in[0]->dtype;
  return (geom){n->i[0], n->i[1], n->i[2], gates, t, loom_dtype_size(t)};
}

/* ---- the step loops ----
 * A step is the rows' work before the product with the recurrent weight,
 * the product, and the rows' work after it; a step function runs the parts
 * it is asked for over rows [r0, r1). The steps run one after the other:
 * each step's product over all rows is split among the threads by columns
 * (the packed product's panels), and the rows' work after it and before
 * the next step's product by rows, which never meet (each row's recurrence
 * reads only its own states). Products over all rows read the recurrent
 * weight once a step, each thread its own columns: with the rows shared
 * out instead, each thread taking its rows through all the steps, every
 * thread read the whole weight at every step for half the rows (an LSTM's
 * W_hh, 4 MiB at hidden 512, does not stay in L2), and the LSTM step of
 * bench/rnn.c took 7 % longer on the Xeon (the packed product of 16 rows
 * at 125 GFLOP/s a core, of 32 rows over half the columns at 153,
 * bench-packed). With the rows' work on one thread, the threads had waited
 * for each other through it for 17 % of that step's thread time (on the
 * Zen 5 machine, before the rows were shared out). The same operations in
 * the same order compute every element whatever the split, so results do
 * not depend on the thread count. */
enum { STEP_BEFORE = 1, STEP_PRODUCT = 2, STEP_AFTER = 4 };
typedef void (*step_rows_fn)(void *ctx, int64_t s, int64_t r0, int64_t r1,
                             unsigned parts);

typedef struct {
  step_rows_fn fn;
  void *ctx;
  int64_t T;
  int64_t s; /* the step whose product has run (-1: none yet) */
} steps_job;

/* The rows' work between two products: after step s's, before s + 1's. */
static void between_part(void *ctx, int part, int64_t r0, int64_t r1) {
  const steps_job *j = ctx;
  (void)part;
  if (j->s >= 0)
    j->fn(j->ctx, j->s, r0, r1, STEP_AFTER);
  if (j->s + 1 < j->T)
    j->fn(j->ctx, j->s + 1, r0, r1, STEP_BEFORE);
}

/* fn(ctx, s, r0, r1, parts) runs step s (0 first) for rows [r0, r1). The
 * rows' work stays on one thread for float64 (whose products are BLAS's,
 * with threads of their own) and when a step's gates are few (B x gates x
 * H under 2 LOOM__PAR_MIN / 4, as at batch 1); an element of a gate costs
 * about as much as 4 of a plain elementwise op (an exp and a division, or
 * their gradients). */
static void run_steps(const geom *g, step_rows_fn fn, void *ctx) {
  steps_job job = {fn, ctx, g->T, -1};
  int nt = 1;
  if (g->dtype == LOOM_F32) {
    nt = loom__threads_for(4 * g->B * g->gates * g->H);
    nt = nt < g->B ? nt : (int)g->B;
  }
  for (; job.s < g->T; job.s++) {
    if (job.s >= 0)
      fn(ctx, job.s, 0, g->B, STEP_PRODUCT);
    if (nt > 1) /* rows two at a time, balanced as the product's panels */
      loom__parallel_for_balanced(nt, g->B, 2, g->B, between_part, &job);
    else
      between_part(&job, 0, 0, g->B);
  }
}

/* Row r of step t of a (T, B, w) tensor, or row r of a (B, w) one (t = 0). */
static char *row_at(const loom_tensor *m, const geom *g, int64_t t, int64_t r,
                    int64_t w) {
  return at(m, t * g->B + r, w);
}

/* The position step s (0 first) runs at. */
static int64_t position(const geom *g, bool reverse, int64_t s) {
  return reverse ? g->T - 1 - s : s;
}

/* The live flags of rows r0.. at position t, or NULL when all are live. */
static const uint8_t *active_at(const uint8_t *active, const geom *g,
                                int64_t t, int64_t r0) {
  return active ? active + t * g->B + r0 : NULL;
}

/* ---- LSTM ---- */

/* One forward step of an LSTM sequence over some rows. Hp and Cp are
 * written only when lengths are given (`active`); otherwise they are `o`. */
typedef struct {
  const geom *g;
  bool reverse;
  const loom_tensor *x, *b;
  const step_product *w;
  loom_tensor *G, *Hp, *Cp, *Cn, *o, *hn, *cn;
  const uint8_t *active;
  const void *peep[3];
} lstm_fwd;

static void lstm_fwd_rows(void *ctx, int64_t s, int64_t r0, int64_t r1,
                          unsigned parts) {
  const lstm_fwd *f = ctx;
  const geom *g = f->g;
  int64_t H = g->H, n = r1 - r0, t = position(g, f->reverse, s);
  size_t bytes = (size_t)(n * H) * g->es;
  char *gt = row_at(f->G, g, t, r0, 4 * H), *cn = row_at(f->Cn, g, t, r0, H);
  char *h = row_at(f->hn, g, 0, r0, H), *c = row_at(f->cn, g, 0, r0, H);
  /* Without lengths the step reads h_prev only through the product. */
  void *hp = f->active ? row_at(f->Hp, g, t, r0, H) : h;
  void *cp = f->active ? row_at(f->Cp, g, t, r0, H) : c;
  if (parts & STEP_BEFORE) {
    if (f->active) {
      memcpy(hp, h, bytes);
      memcpy(cp, c, bytes);
    }
    rows_plus_bias(g->dtype, gt, row_at(f->x, g, t, r0, 4 * H),
                   f->b ? f->b->data : NULL, n, 4 * H);
  }
  if (parts & STEP_PRODUCT)
    product(f->w, n, h, gt, true);
  if (parts & STEP_AFTER) {
    loom__kernel_lstm_step(g->dtype, n, H, gt, cp, hp, cn, h,
                           row_at(f->o, g, t, r0, H), f->peep,
                           active_at(f->active, g, t, r0));
    memcpy(c, cn, bytes);
  }
}

/* The input part given as x, w_ih, b_ih (loom_lstm_sequence_input,
 * loom_gru_sequence_input): x (T, B, I) replaces xp as input 0 and the
 * weights follow the other inputs, so that every other input keeps its
 * index. */
typedef struct {
  const loom_tensor *x, *w, *b;
} input_part;

/* Checks x, w_ih and b_ih against w_hh; fills a geometry-only xp for
 * check() (its (T, B, gates H) shape; no data). */
static bool check_input_part(const char *op, const input_part *in,
                             const loom_tensor *w_hh, int gates,
                             loom_tensor *xp) {
  const loom_tensor *x = in->x, *w = in->w, *b = in->b;
  if (loom__check_float(x, op))
    return false;
  if (x->ndim != 3 || w->ndim != 2 || w->shape[1] != x->shape[2] ||
      w->shape[0] != w_hh->shape[0] ||
      (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))) {
    loom_set_error(LOOM_ERR_SHAPE,
                   "%s: input %s, weight_ih %s, bias_ih %s for weight_hh %s "
                   "(want (T, B, I), (%dH, I), (%dH), (%dH, H))",
                   op, loom_shape_text(x), loom_shape_text(w),
                   b ? loom_shape_text(b) : "none", loom_shape_text(w_hh),
                   gates, gates, gates);
    return false;
  }
  if (w->dtype != x->dtype || (b && b->dtype != x->dtype)) {
    loom_set_error(LOOM_ERR_DTYPE,
                   "%s: mixed dtypes: input %s, weight_ih %s%s%s", op,
                   loom_dtype_name(x->dtype), loom_dtype_name(w->dtype),
                   b ? ", bias_ih " : "", b ? loom_dtype_name(b->dtype) : "");
    return false;
  }
  *xp = loom__geometry(x);
  xp->shape[2] = w->shape[0];
  return true;
}

/* node inputs: xp (or x), w_hh, [b_hh], h0, c0, [p_i, p_f, p_o], [w_ih,
 * [b_ih]]; saved: G (activations), Hp, Cp, Cn, lengths with lengths; else
 * G, out, Cn */
static int lstm_sequence(const loom_tensor *xp, const input_part *part,
                         const loom_tensor *w_hh, const loom_tensor *b_hh,
                         const loom_tensor *h0, const loom_tensor *c0,
                         loom_tensor *const *peephole,
                         const loom_tensor *lengths, bool reverse,
                         loom_tensor **out, loom_tensor **h_n,
                         loom_tensor **c_n) {
  const char *op = part ? "lstm_sequence_input" : "lstm_sequence";
  if (!xp || !w_hh || !h0 || !c0 || !out || !h_n || !c_n ||
      (peephole && (!peephole[0] || !peephole[1] || !peephole[2])) ||
      (part && !part->w))
    return loom_null_argument(op), -1;
  geom g;
  loom_tensor shape_only;
  if (part && !check_input_part(op, part, w_hh, 4, &shape_only))
    return -1;
  if (!check(op, part ? &shape_only : xp, w_hh, b_hh,
             (const loom_tensor *[]){h0, c0}, 2, 4, &g))
    return -1;
  for (int k = 0; peephole && k < 3; k++)
    if (peephole[k]->ndim != 1 || peephole[k]->shape[0] != g.H ||
        peephole[k]->dtype != g.dtype)
      return loom_set_error(LOOM_ERR_SHAPE, "%s: peephole %s for hidden %lld",
                            op, loom_shape_text(peephole[k]), (long long)g.H),
             -1;
  uint8_t *active = activity(lengths, &g, op);
  if (lengths && !active)
    return -1;
  int64_t T = g.T, B = g.B, H = g.H;
  loom_no_grad_begin(); /* the work tensors are not part of the graph */
  loom_tensor *o = loom_empty(g.dtype, LOOM_SHAPE(T, B, H));
  loom_tensor *hn = loom_clone(h0), *cn = loom_clone(c0);
  /* The work tensors live in a scope of the op's own, so that those saved
   * for backward are held by the node alone and freed as soon as backward
   * has used them, not when the caller's scope ends: a 2-layer char-LSTM
   * step peaked 26 MiB lower. */
  loom_scope *work = loom_scope_begin();
  /* The input part, when the op computes it, is computed into the gates'
   * tensor, whose rows each step then completes in place: the op holds
   * no (T, B, 4H) tensor beyond the gates. */
  loom_tensor *xg = part ? loom_linear(part->x, part->w, part->b) : NULL;
  if (xg && !loom__is_contiguous(xg))
    xg = loom_contiguous(xg);
  const loom_tensor *x = part ? xg : loom_contiguous(xp);
  const loom_tensor *w = loom_contiguous(w_hh);
  const loom_tensor *b = b_hh ? loom_contiguous(b_hh) : NULL;
  const loom_tensor *p[3];
  for (int k = 0; k < 3; k++) /* a plain LSTM's are zeros */
    p[k] = peephole ? loom_contiguous(peephole[k])
                    : loom_zeros(g.dtype, LOOM_SHAPE(H));
  /* Each step's previous states are kept only when lengths can hold a
   * state past a sequence's end; otherwise they are h0, c0 and the
   * neighbouring step's output and cell state, which backward reads from
   * `o` and Cn (two (T, B, H) tensors fewer to keep). */
  bool keep_prev = lengths != NULL;
  loom_tensor *G = part ? xg : loom_empty(g.dtype, LOOM_SHAPE(T, B, 4 * H));
  loom_tensor *Hp = keep_prev ? loom_empty(g.dtype, LOOM_SHAPE(T, B, H)) : o;
  loom_tensor *Cp = keep_prev ? loom_empty(g.dtype, LOOM_SHAPE(T, B, H)) : o;
  loom_tensor *Cn = loom_empty(g.dtype, LOOM_SHAPE(T, B, H));
  step_product wt = {0};
  if (!x || !w || (b_hh && !b) || !G || !Hp || !Cp || !Cn || !o || !hn || !cn ||
      !p[0] || !p[1] || !p[2] || !product_init(&wt, w, true)) {
    loom_scope_end(work);
    loom_no_grad_end();
    free(active);
    return -1;
  }
  lstm_fwd f = {.g = &g, .reverse = reverse, .x = x, .b = b, .w = &wt,
                .G = G, .Hp = Hp, .Cp = Cp, .Cn = Cn, .o = o, .hn = hn,
                .cn = cn, .active = active,
                .peep = {p[0]->data, p[1]->data, p[2]->data}};
  run_steps(&g, lstm_fwd_rows, &f);
  loom__kernel_packed_free(wt.packed);
  loom_no_grad_end();
  free(active);
  const loom_tensor *ins[10];
  int n = 0;
  ins[n++] = part ? part->x : xp;
  ins[n++] = w_hh;
  if (b_hh)
    ins[n++] = b_hh;
  ins[n++] = h0;
  ins[n++] = c0;
  for (int k = 0; peephole && k < 3; k++)
    ins[n++] = peephole[k];
  if (part)
    ins[n++] = part->w;
  if (part && part->b)
    ins[n++] = part->b;
  loom_tensor *outs[3] = {o, hn, cn};
  loom__node *node =
      loom__record_multi(&loom__op_lstm_sequence, outs, 3, n, ins);
  if (node) {
    seq_remember(node, &g, reverse, b_hh != NULL, peephole != NULL, false);
    node->i[7] = part ? (part->b ? 2 : 1) : 0;
    loom__save(node, G);
    loom__save(node, Hp); /* o itself when !keep_prev */
    if (keep_prev)
      loom__save(node, Cp);
    loom__save(node, Cn);
    if (lengths)
      loom__save(node, lengths);
  }
  loom_scope_end(work);
  *out = o;
  *h_n = hn;
  *c_n = cn;
  return 0;
}

int loom_lstm_sequence(const loom_tensor *xp, const loom_tensor *w_hh,
                       const loom_tensor *b_hh, const loom_tensor *h0,
                       const loom_tensor *c0, loom_tensor *const *peephole,
                       const loom_tensor *lengths, bool reverse,
                       loom_tensor **out, loom_tensor **h_n,
                       loom_tensor **c_n) {
  return lstm_sequence(xp, NULL, w_hh, b_hh, h0, c0, peephole, lengths, reverse,
                       out, h_n, c_n);
}

int loom_lstm_sequence_input(const loom_tensor *x, const loom_tensor *w_ih,
                             const loom_tensor *b_ih, const loom_tensor *w_hh,
                             const loom_tensor *b_hh, const loom_tensor *h0,
                             const loom_tensor *c0,
                             loom_tensor *const *peephole,
                             const loom_tensor *lengths, bool reverse,
                             loom_tensor **out, loom_tensor **h_n,
                             loom_tensor **c_n) {
  input_part part = {x, w_ih, b_ih};
  return lstm_sequence(x, &part, w_hh, b_hh, h0, c0, peephole, lengths, reverse,
                       out, h_n, c_n);
}

/* One backward step of an LSTM sequence over some rows: dh and dc hold
 * the gradients of the step's output states and receive those of its
 * inputs; dx receives the gates' gradients. Cp is NULL without lengths: a
 * step's previous cell state is then the step before's, or c0. */
typedef struct {
  const geom *g;
  bool reverse;
  const step_product *w;
  const loom_tensor *G, *Cp, *Cn, *c0, *dout;
  loom_tensor *dh, *dc, *dx, *dht, *dcp, *dhn;
  const uint8_t *active;
  const void *peep[3];
  bool h0_grad; /* whether the first step's input state h gets a gradient */
} lstm_bwd;

static const void *lstm_prev_cell(const lstm_bwd *f, int64_t s, int64_t t,
                                  int64_t r0) {
  const geom *g = f->g;
  if (f->Cp)
    return row_at(f->Cp, g, t, r0, g->H);
  if (s == 0)
    return row_at(f->c0, g, 0, r0, g->H);
  return row_at(f->Cn, g, f->reverse ? t + 1 : t - 1, r0, g->H);
}

static void lstm_bwd_rows(void *ctx, int64_t i, int64_t r0, int64_t r1,
                          unsigned parts) {
  const lstm_bwd *f = ctx;
  const geom *g = f->g;
  int64_t H = g->H, n = r1 - r0, s = g->T - 1 - i;
  int64_t t = position(g, f->reverse, s);
  size_t bytes = (size_t)(n * H) * g->es;
  const uint8_t *a = active_at(f->active, g, t, r0);
  char *dxt = row_at(f->dx, g, t, r0, 4 * H);
  char *dh = row_at(f->dh, g, 0, r0, H), *dc = row_at(f->dc, g, 0, r0, H);
  char *dht = row_at(f->dht, g, 0, r0, H), *dhn = row_at(f->dhn, g, 0, r0, H);
  char *dcp = row_at(f->dcp, g, 0, r0, H);
  if (parts & STEP_BEFORE) {
    with_output_grad(g->dtype, dht, dh, row_at(f->dout, g, t, r0, H), a, n, H);
    loom__kernel_lstm_step_backward(
        g->dtype, n, H, row_at(f->G, g, t, r0, 4 * H),
        lstm_prev_cell(f, s, t, r0), row_at(f->Cn, g, t, r0, H), dht, dc, dxt,
        dcp, f->peep, a);
    memcpy(dc, dcp, bytes);
  }
  if (s == 0 && !f->h0_grad) /* the product would feed h0 alone */
    return;
  if (parts & STEP_PRODUCT)
    product(f->w, n, dxt, dhn, false);
  if (parts & STEP_AFTER) {
    pass_inactive(g->dtype, dhn, dht, a, n, H);
    memcpy(dh, dhn, bytes);
  }
}

/* The input index of b_ih when the op computed the input part with one
 * (n->i[7] == 2: it is the last input), else -1. */
static int bias_ih_input(const loom__node *n) {
  return n->i[7] == 2 ? n->n_in - 1 : -1;
}

/* Passes on dx, the gradient of the input part xp (T, B, G*H): to xp, or,
 * when the op computed xp = x w_ih^T + b_ih itself (n->i[7]: 1, or 2 with
 * b_ih), to x, w_ih and b_ih (the last inputs) as linear's backward would.
 * sums: dx's column sums when the caller has them, else NULL. */
static void input_part_backward(loom__node *n, const loom_tensor *dx,
                                const loom_tensor *sums) {
  if (!n->i[7]) {
    loom__accumulate(n, 0, dx);
    return;
  }
  int kw = n->n_in - (int)n->i[7];
  int64_t rows = dx->shape[0] * dx->shape[1], width = dx->shape[2];
  loom_tensor *d2 = loom_reshape(dx, LOOM_SHAPE(rows, width));
  if (loom__needs_grad(n, 0)) {
    const loom_tensor *w = loom__input_value(n, kw);
    const loom_tensor *x = loom__input(n, 0);
    loom__accumulate(n, 0, loom_reshape(loom_matmul(d2, w), x->ndim, x->shape));
  }
  if (loom__needs_grad(n, kw)) { /* dx^T x, without copying dx transposed */
    const loom_tensor *x = loom__input_value(n, 0);
    const loom_tensor *xc = x ? loom_contiguous(x) : NULL;
    int64_t I = x ? x->shape[2] : 0;
    loom_tensor *dw = xc ? loom_empty(dx->dtype, LOOM_SHAPE(width, I)) : NULL;
    if (dw && rows > 0)
      loom__kernel_gemm_raw(dx->dtype, true, false, width, I, rows, 1, dx->data,
                            width, xc->data, I, 0, dw->data, I);
    else if (dw)
      loom__kernel_fill(dw, 0);
    loom__accumulate(n, kw, dw);
  }
  int kb = bias_ih_input(n);
  if (kb >= 0 && loom__needs_grad(n, kb))
    loom__accumulate(n, kb, sums ? sums : column_sums(dx, rows, width));
}

/* Whether the product of h0 (B x H) with the first step's gates'
 * gradients (B rows of `rows`, row stride ld, from dg) can add anything
 * but zeros to the recurrent weight's gradient: not when h0 is all zeros,
 * the state a sequence starts from by default, and those gradients are
 * finite (zero times inf or NaN is NaN). The skipped product is 1/T of
 * that gradient's work, in a shape (k = B) that runs at a fraction of the
 * big one's rate. */
static bool h0_contributes(const geom *g, const char *h0, const char *dg,
                           int64_t ld, int64_t rows) {
  int64_t n = g->B * g->H;
  bool f32 = g->dtype == LOOM_F32;
  for (int64_t i = 0; i < n; i++)
    if (f32 ? ((const float *)h0)[i] != 0 : ((const double *)h0)[i] != 0)
      return true;
  for (int64_t b = 0; b < g->B; b++) {
    const char *row = dg + (size_t)(b * ld) * g->es;
    for (int64_t j = 0; j < rows; j++)
      if (!isfinite(f32 ? ((const float *)row)[j] : ((const double *)row)[j]))
        return true;
  }
  return false;
}

/* Rows of the recurrent weight's gradient: dw (rows x H, row stride H) =
 * the sum over all steps of those gates' gradients (T B rows, row stride
 * ld, from dgates) times the state each step started from: `prev` holds
 * those states when h0 is NULL; else prev is the output and a step's state
 * is the step before's output, or h0 (two products). T > 0. */
static void weight_grad_rows(const geom *g, bool reverse, const char *dgates,
                             int64_t ld, int64_t rows, const loom_tensor *prev,
                             const loom_tensor *h0, char *dw) {
  int64_t T = g->T, B = g->B, H = g->H;
  if (!h0) {
    loom__kernel_gemm_raw(g->dtype, true, false, rows, H, T * B, 1, dgates, ld,
                          prev->data, H, 0, dw, H);
    return;
  }
  size_t step = (size_t)(B * ld) * g->es;
  int64_t first = reverse ? T - 1 : 0;
  loom__kernel_gemm_raw(g->dtype, true, false, rows, H, (T - 1) * B, 1,
                        dgates + (reverse ? 0 : step), ld,
                        at(prev, reverse ? 1 : 0, B * H), H, 0, dw, H);
  const char *dg = dgates + (size_t)first * step;
  if (h0_contributes(g, h0->data, dg, ld, rows))
    loom__kernel_gemm_raw(g->dtype, true, false, rows, H, B, 1, dg, ld,
                          h0->data, H, 1, dw, H);
}

/* Some of the gates' gradients: `rows` columns (gates x H of them) of a
 * (T, B, ld) tensor, from `data`. */
typedef struct {
  const char *data;
  int64_t ld, rows;
} gate_columns;

/* The recurrent weight's gradient (gates H x H) from the gates' gradients,
 * held in n parts in the order of the weight's rows (the GRU keeps its r
 * and z columns apart from n's); prev and h0 as weight_grad_rows. A new
 * tensor, or NULL with an error set. */
static loom_tensor *recurrent_weight_grad(const geom *g, bool reverse,
                                          const gate_columns *part, int n,
                                          const loom_tensor *prev,
                                          const loom_tensor *h0) {
  int64_t G = g->gates * g->H;
  if (g->T == 0) /* the products would read a step that does not exist */
    return loom_zeros(g->dtype, LOOM_SHAPE(G, g->H));
  loom_tensor *dw = loom_empty(g->dtype, LOOM_SHAPE(G, g->H));
  for (int64_t i = 0, row = 0; dw && i < n; row += part[i++].rows)
    weight_grad_rows(g, reverse, part[i].data, part[i].ld, part[i].rows, prev,
                     h0, dw->data + (size_t)(row * g->H) * g->es);
  return dw;
}

static void lstm_backward(loom__node *n, loom_tensor *const *gout) {
  geom g = seq_geom(n, 4);
  int64_t T = g.T, B = g.B, H = g.H;
  bool reverse = n->i[3], has_b = n->i[4], has_p = n->i[5];
  /* With lengths: G, Hp, Cp, Cn, lengths; else G, o, Cn (see forward). */
  bool keep_prev = n->n_saved == 5;
  const loom_tensor *G = loom__saved(n, 0), *Hp = loom__saved(n, 1);
  const loom_tensor *Cp = keep_prev ? loom__saved(n, 2) : NULL;
  const loom_tensor *Cn = loom__saved(n, keep_prev ? 3 : 2);
  const loom_tensor *lengths = keep_prev ? loom__saved(n, 4) : NULL;
  const loom_tensor *h0 =
      keep_prev ? NULL : loom_contiguous(loom__input_value(n, 2 + has_b));
  const loom_tensor *c0 =
      keep_prev ? NULL : loom_contiguous(loom__input_value(n, 3 + has_b));
  if (!G || !Hp || !Cn || (keep_prev ? !Cp || !lengths : !h0 || !c0))
    return;
  uint8_t *active = activity(lengths, &g, "lstm_sequence backward");
  if (lengths && !active)
    return;
  const loom_tensor *w = loom_contiguous(loom__input_value(n, 1));
  int pi = 2 + has_b + 2; /* first peephole input */
  const loom_tensor *p[3];
  for (int k = 0; k < 3; k++) /* zeros without peepholes, as forward */
    p[k] = has_p ? loom_contiguous(loom__input_value(n, pi + k))
                 : loom_zeros(g.dtype, LOOM_SHAPE(H));
  loom_tensor *dout = loom_contiguous(gout[0]);
  loom_tensor *dh = loom_clone(gout[1]), *dc = loom_clone(gout[2]);
  /* The gates' gradients replace their activations when the node, freed
   * after this, holds them alone: a (T, B, 4H) tensor less at backward's
   * peak (each step reads only its own activations). */
  loom_tensor *dx = loom__saved_disposable(n, 0)
                        ? loom_autorelease(loom_keep((loom_tensor *)G))
                        : loom_empty(g.dtype, LOOM_SHAPE(T, B, 4 * H));
  loom_tensor *dht = loom_empty(g.dtype, LOOM_SHAPE(B, H));
  loom_tensor *dcp = loom_empty(g.dtype, LOOM_SHAPE(B, H));
  loom_tensor *dhn = loom_empty(g.dtype, LOOM_SHAPE(B, H));
  double *dpeep = has_p ? calloc((size_t)(3 * H), sizeof *dpeep) : NULL;
  step_product wp = {0};
  if (!w || !dout || !dh || !dc || !dx || !dht || !dcp || !dhn ||
      (has_p && !dpeep) || !p[0] || !p[1] || !p[2] ||
      !product_init(&wp, w, false)) {
    free(active);
    free(dpeep);
    return;
  }
  lstm_bwd f = {.g = &g, .reverse = reverse, .w = &wp, .G = G, .Cp = Cp,
                .Cn = Cn, .c0 = c0, .dout = dout, .dh = dh, .dc = dc,
                .dx = dx, .dht = dht, .dcp = dcp, .dhn = dhn,
                .active = active,
                .peep = {p[0]->data, p[1]->data, p[2]->data},
                .h0_grad = loom__needs_grad(n, 2 + has_b)};
  run_steps(&g, lstm_bwd_rows, &f);
  loom__kernel_packed_free(wp.packed);
  /* The peepholes' gradients, summed over the steps in backward's order. */
  for (int64_t s = T - 1; has_p && s >= 0; s--) {
    int64_t t = position(&g, reverse, s);
    loom__kernel_lstm_peephole_grad(g.dtype, B, H, at(dx, t, B * 4 * H),
                                    lstm_prev_cell(&f, s, t, 0),
                                    at(Cn, t, B * H), dpeep,
                                    active_at(active, &g, t, 0));
  }
  free(active);
  input_part_backward(n, dx, NULL);
  if (loom__needs_grad(n, 1))
    loom__accumulate(n, 1,
                     recurrent_weight_grad(
                         &g, reverse,
                         &(gate_columns){dx->data, 4 * H, 4 * H}, 1, Hp, h0));
  if (has_b && loom__needs_grad(n, 2))
    loom__accumulate(n, 2, column_sums(dx, T * B, 4 * H));
  loom__accumulate(n, 2 + has_b, dh);
  loom__accumulate(n, 3 + has_b, dc);
  for (int k = 0; has_p && k < 3; k++) {
    loom_tensor *d = loom_from_array(LOOM_F64, dpeep + k * H, 1, &H);
    loom__accumulate(n, pi + k, d); /* converted to the input's dtype */
  }
  free(dpeep);
}

/* ---- GRU ---- */

/* One forward step of a GRU sequence over some rows. */
typedef struct {
  const geom *g;
  bool reverse;
  const loom_tensor *x, *b, *h0;
  const step_product *w;
  loom_tensor *A, *HG, *HN, *Hp, *o, *hn;
  const uint8_t *active;
} gru_fwd;

/* The state a GRU step at position s (time t) started from: kept in Hp
 * when lengths can hold a state past a sequence's end; otherwise the
 * neighbouring step's output, or h0 (all o and h0 hold is the state). */
static char *gru_prev_state(const geom *g, bool reverse, const loom_tensor *Hp,
                            const loom_tensor *o, const loom_tensor *h0,
                            int64_t s, int64_t t, int64_t r0) {
  if (Hp)
    return row_at(Hp, g, t, r0, g->H);
  if (s == 0)
    return row_at(h0, g, 0, r0, g->H);
  return row_at(o, g, reverse ? t + 1 : t - 1, r0, g->H);
}

static void gru_fwd_rows(void *ctx, int64_t s, int64_t r0, int64_t r1,
                         unsigned parts) {
  const gru_fwd *f = ctx;
  const geom *g = f->g;
  int64_t H = g->H, n = r1 - r0, t = position(g, f->reverse, s);
  char *hg = row_at(f->HG, g, 0, r0, 3 * H), *h = row_at(f->hn, g, 0, r0, H);
  char *hp = gru_prev_state(g, f->reverse, f->Hp, f->o, f->h0, s, t, r0);
  char *a = row_at(f->A, g, t, r0, 3 * H);
  if (parts & STEP_BEFORE) {
    if (f->Hp)
      memcpy(hp, h, (size_t)(n * H) * g->es);
    if (f->x != f->A) /* xp given: the step first copies its rows into A */
      memcpy(a, row_at(f->x, g, t, r0, 3 * H), (size_t)(n * 3 * H) * g->es);
    rows_plus_bias(g->dtype, hg, NULL, f->b ? f->b->data : NULL, n, 3 * H);
  }
  if (parts & STEP_PRODUCT)
    product(f->w, n, h, hg, true);
  if (!(parts & STEP_AFTER))
    return;
  loom__kernel_gru_step(g->dtype, n, H, hg, hp, a, h, row_at(f->o, g, t, r0, H),
                        active_at(f->active, g, t, r0));
  /* backward reads the recurrent part's n gate only (r * it feeds n) */
  size_t row = (size_t)H * g->es;
  for (int64_t i = 0; i < n; i++)
    memcpy(row_at(f->HN, g, t, r0 + i, H), hg + (3 * i + 2) * row, row);
}

/* One backward step of a GRU sequence over some rows: dh holds the
 * gradient of the step's output state and receives its input state's.
 * dx (the gates' activations) and dn (the recurrent part's n gate) turn
 * into their gradients at the step's position; dhg, one step's rows,
 * receives the recurrent part's gradient for the product with W_hh. */
typedef struct {
  const geom *g;
  bool reverse;
  const step_product *w;
  const loom_tensor *Hp, *o, *h0, *dout;
  loom_tensor *dx, *dn, *dh, *dhg, *dht;
  const uint8_t *active;
  bool h0_grad; /* whether the first step's input state gets a gradient */
} gru_bwd;

static void gru_bwd_rows(void *ctx, int64_t i, int64_t r0, int64_t r1,
                         unsigned parts) {
  const gru_bwd *f = ctx;
  const geom *g = f->g;
  int64_t H = g->H, n = r1 - r0, s = g->T - 1 - i;
  int64_t t = position(g, f->reverse, s);
  const uint8_t *a = active_at(f->active, g, t, r0);
  char *dh = row_at(f->dh, g, 0, r0, H), *dht = row_at(f->dht, g, 0, r0, H);
  char *dhg = row_at(f->dhg, g, 0, r0, 3 * H);
  if (parts & STEP_BEFORE) {
    with_output_grad(g->dtype, dht, dh, row_at(f->dout, g, t, r0, H), a, n, H);
    /* dh receives the direct part z * dh (or dh itself past the end)... */
    loom__kernel_gru_step_backward(
        g->dtype, n, H, row_at(f->dx, g, t, r0, 3 * H),
        row_at(f->dn, g, t, r0, H),
        gru_prev_state(g, f->reverse, f->Hp, f->o, f->h0, s, t, r0), dht, dhg,
        dh, a);
  }
  /* ... plus the recurrent product's part (which would feed h0 alone at
   * the first step). */
  if ((parts & STEP_PRODUCT) && (s > 0 || f->h0_grad))
    product(f->w, n, dhg, dh, true);
}

/* node inputs: xp (with b_ih) or x, w_hh, [b_hh], h0, [w_ih, [b_ih]]; saved:
 * A (the gates' activations), HN (the recurrent part's n gate), and Hp,
 * lengths with lengths, else out (see gru_prev_state) */
static int gru_sequence(const loom_tensor *xp, const input_part *part,
                        const loom_tensor *w_hh, const loom_tensor *b_hh,
                        const loom_tensor *h0, const loom_tensor *lengths,
                        bool reverse, loom_tensor **out, loom_tensor **h_n) {
  const char *op = part ? "gru_sequence_input" : "gru_sequence";
  if (!xp || !w_hh || !h0 || !out || !h_n || (part && !part->w))
    return loom_null_argument(op), -1;
  geom g;
  loom_tensor shape_only;
  if (part && !check_input_part(op, part, w_hh, 3, &shape_only))
    return -1;
  if (!check(op, part ? &shape_only : xp, w_hh, b_hh, &h0, 1, 3, &g))
    return -1;
  uint8_t *active = activity(lengths, &g, op);
  if (lengths && !active)
    return -1;
  int64_t T = g.T, B = g.B, H = g.H;
  loom_no_grad_begin();
  loom_tensor *o = loom_empty(g.dtype, LOOM_SHAPE(T, B, H));
  loom_tensor *hn = loom_clone(h0);
  loom_scope *work = loom_scope_begin(); /* as in loom_lstm_sequence */
  /* The input part, when the op computes it, is computed into the gates'
   * tensor, whose rows each step then turns into the gates in place (as
   * the LSTM's): the op holds no (T, B, 3H) tensor beyond the gates. */
  loom_tensor *xg = part ? loom_linear(part->x, part->w, part->b) : NULL;
  if (xg && !loom__is_contiguous(xg))
    xg = loom_contiguous(xg);
  const loom_tensor *x = part ? xg : loom_contiguous(xp);
  const loom_tensor *w = loom_contiguous(w_hh);
  const loom_tensor *b = b_hh ? loom_contiguous(b_hh) : NULL;
  loom_tensor *A = part ? xg : loom_empty(g.dtype, LOOM_SHAPE(T, B, 3 * H));
  loom_tensor *HG = loom_empty(g.dtype, LOOM_SHAPE(B, 3 * H)); /* a step's */
  loom_tensor *HN = loom_empty(g.dtype, LOOM_SHAPE(T, B, H));
  loom_tensor *Hp = lengths ? loom_empty(g.dtype, LOOM_SHAPE(T, B, H)) : NULL;
  const loom_tensor *h0c = loom_contiguous(h0);
  loom_no_grad_end();
  step_product wt = {0};
  if (!x || !w || (b_hh && !b) || !A || !HG || !HN || (lengths && !Hp) ||
      !h0c || !o || !hn || !product_init(&wt, w, true)) {
    loom_scope_end(work);
    free(active);
    return -1;
  }
  gru_fwd f = {.g = &g, .reverse = reverse, .x = x, .b = b, .h0 = h0c,
               .w = &wt, .A = A, .HG = HG, .HN = HN, .Hp = Hp, .o = o,
               .hn = hn, .active = active};
  run_steps(&g, gru_fwd_rows, &f);
  loom__kernel_packed_free(wt.packed);
  free(active);
  const loom_tensor *ins[6] = {part ? part->x : xp, w_hh};
  int n = 2;
  if (b_hh)
    ins[n++] = b_hh;
  ins[n++] = h0;
  if (part)
    ins[n++] = part->w;
  if (part && part->b)
    ins[n++] = part->b;
  loom_tensor *outs[2] = {o, hn};
  loom__node *node =
      loom__record_multi(&loom__op_gru_sequence, outs, 2, n, ins);
  if (node) {
    seq_remember(node, &g, reverse, b_hh != NULL, false, false);
    node->i[7] = part ? (part->b ? 2 : 1) : 0;
    loom__save(node, A);
    loom__save(node, HN);
    loom__save(node, lengths ? Hp : o);
    if (lengths)
      loom__save(node, lengths);
  }
  loom_scope_end(work);
  *out = o;
  *h_n = hn;
  return 0;
}

int loom_gru_sequence(const loom_tensor *xp, const loom_tensor *w_hh,
                      const loom_tensor *b_hh, const loom_tensor *h0,
                      const loom_tensor *lengths, bool reverse,
                      loom_tensor **out, loom_tensor **h_n) {
  return gru_sequence(xp, NULL, w_hh, b_hh, h0, lengths, reverse, out, h_n);
}

int loom_gru_sequence_input(const loom_tensor *x, const loom_tensor *w_ih,
                            const loom_tensor *b_ih, const loom_tensor *w_hh,
                            const loom_tensor *b_hh, const loom_tensor *h0,
                            const loom_tensor *lengths, bool reverse,
                            loom_tensor **out, loom_tensor **h_n) {
  input_part part = {x, w_ih, b_ih};
  return gru_sequence(x, &part, w_hh, b_hh, h0, lengths, reverse, out, h_n);
}

/* A saved tensor for backward to overwrite: the saved one itself when the
 * node, freed after this pass, holds it alone; else a copy. */
static loom_tensor *overwritable(loom__node *n, int i) {
  loom_tensor *t = (loom_tensor *)loom__saved(n, i);
  return loom__saved_disposable(n, i) ? loom_autorelease(loom_keep(t))
                                      : loom_clone(t);
}

static void gru_backward(loom__node *n, loom_tensor *const *gout) {
  geom g = seq_geom(n, 3);
  int64_t T = g.T, B = g.B, H = g.H;
  bool reverse = n->i[3], has_b = n->i[4];
  /* With lengths: A, HN, Hp, lengths; else A, HN, out (see forward). */
  bool keep_prev = n->n_saved > 3;
  const loom_tensor *Hp = keep_prev ? loom__saved(n, 2) : NULL;
  const loom_tensor *o = keep_prev ? NULL : loom__saved(n, 2);
  const loom_tensor *lengths = keep_prev ? loom__saved(n, 3) : NULL;
  const loom_tensor *h0 =
      keep_prev ? NULL : loom_contiguous(loom__input_value(n, 2 + has_b));
  if (!loom__saved(n, 0) || !loom__saved(n, 1) ||
      (keep_prev ? !Hp || !lengths : !o || !h0))
    return;
  uint8_t *active = activity(lengths, &g, "gru_sequence backward");
  if (lengths && !active)
    return;
  const loom_tensor *w = loom_contiguous(loom__input_value(n, 1));
  loom_tensor *dout = loom_contiguous(gout[0]), *dh = loom_clone(gout[1]);
  /* The gradients replace what the steps saved (each step reads its own
   * only): of the input part (T, B, 3H) the gates' activations, of the
   * recurrent part's n columns (T, B, H) those columns. The r and z
   * columns of the two parts' gradients are equal: kept once, in dx. */
  loom_tensor *dx = overwritable(n, 0), *dn = overwritable(n, 1);
  loom_tensor *dhg = loom_empty(g.dtype, LOOM_SHAPE(B, 3 * H));
  loom_tensor *dht = loom_empty(g.dtype, LOOM_SHAPE(B, H));
  step_product wp = {0};
  if (!w || !dout || !dh || !dx || !dn || !dhg || !dht ||
      !product_init(&wp, w, false)) {
    free(active);
    return;
  }
  gru_bwd f = {.g = &g, .reverse = reverse, .w = &wp, .Hp = Hp, .o = o,
               .h0 = h0, .dout = dout, .dx = dx, .dn = dn, .dh = dh,
               .dhg = dhg, .dht = dht, .active = active,
               .h0_grad = loom__needs_grad(n, 2 + has_b)};
  run_steps(&g, gru_bwd_rows, &f);
  loom__kernel_packed_free(wp.packed);
  free(active);
  /* b_ih's gradient and the r and z part of b_hh's are the same sums */
  int kb = bias_ih_input(n);
  bool bias_in = kb >= 0 && loom__needs_grad(n, kb);
  bool bias_hh = has_b && loom__needs_grad(n, 2);
  loom_tensor *sums =
      bias_in || bias_hh ? column_sums(dx, T * B, 3 * H) : NULL;
  input_part_backward(n, dx, sums);
  if (loom__needs_grad(n, 1)) {
    gate_columns rzn[2] = {{dx->data, 3 * H, 2 * H}, {dn->data, H, H}};
    loom__accumulate(n, 1,
                     recurrent_weight_grad(&g, reverse, rzn, 2,
                                           keep_prev ? Hp : o, h0));
  }
  if (bias_hh) {
    loom_tensor *parts[2] = {loom_narrow(sums, 0, 0, 2 * H),
                             column_sums(dn, T * B, H)};
    loom__accumulate(n, 2, parts[0] && parts[1] ? loom_concat(parts, 2, 0)
                                                : NULL);
  }
  loom__accumulate(n, 2 + has_b, dh);
}

/* ---- plain RNN ---- */

/* One forward step of a plain RNN sequence over some rows; pre (B x H)
 * holds the step's pre-activations. */
typedef struct {
  const geom *g;
  bool reverse, relu;
  const loom_tensor *x, *b;
  const step_product *w;
  loom_tensor *Hp, *o, *hn, *pre;
  const uint8_t *active;
} rnn_fwd;

static void rnn_fwd_rows(void *ctx, int64_t s, int64_t r0, int64_t r1,
                         unsigned parts) {
  const rnn_fwd *f = ctx;
  const geom *g = f->g;
  int64_t H = g->H, n = r1 - r0, t = position(g, f->reverse, s);
  char *h = row_at(f->hn, g, 0, r0, H), *pre = row_at(f->pre, g, 0, r0, H);
  if (parts & STEP_BEFORE)
    rows_plus_bias(g->dtype, pre, row_at(f->x, g, t, r0, H),
                   f->b ? f->b->data : NULL, n, H);
  if (parts & STEP_PRODUCT)
    product(f->w, n, h, pre, true);
  if (!(parts & STEP_AFTER))
    return;
  if (f->Hp)
    memcpy(row_at(f->Hp, g, t, r0, H), h, (size_t)(n * H) * g->es);
  /* the state is updated in place: the product and Hp have read h; the
   * kernel reads h_prev[j] (finished rows only) just before writing h[j] */
  loom__kernel_rnn_step(g->dtype, n, H, pre, h, h, row_at(f->o, g, t, r0, H),
                        f->relu, active_at(f->active, g, t, r0));
}

/* One backward step of a plain RNN sequence over some rows: dh holds the
 * gradient of the step's output state and receives its input state's. The
 * step's new state is its output (backward reads active rows only). */
typedef struct {
  const geom *g;
  bool reverse, relu;
  const step_product *w;
  const loom_tensor *o, *dout;
  loom_tensor *dh, *dx, *dht, *dhn;
  const uint8_t *active;
  bool h0_grad; /* whether the first step's input state gets a gradient */
} rnn_bwd;

static void rnn_bwd_rows(void *ctx, int64_t i, int64_t r0, int64_t r1,
                         unsigned parts) {
  const rnn_bwd *f = ctx;
  const geom *g = f->g;
  int64_t H = g->H, n = r1 - r0, s = g->T - 1 - i;
  int64_t t = position(g, f->reverse, s);
  const uint8_t *a = active_at(f->active, g, t, r0);
  char *dxt = row_at(f->dx, g, t, r0, H), *dh = row_at(f->dh, g, 0, r0, H);
  char *dht = row_at(f->dht, g, 0, r0, H), *dhn = row_at(f->dhn, g, 0, r0, H);
  if (parts & STEP_BEFORE) {
    with_output_grad(g->dtype, dht, dh, row_at(f->dout, g, t, r0, H), a, n, H);
    loom__kernel_rnn_step_backward(g->dtype, n, H, row_at(f->o, g, t, r0, H),
                                   dht, dxt, f->relu, a);
  }
  if (s == 0 && !f->h0_grad) /* the product would feed h0 alone */
    return;
  if (parts & STEP_PRODUCT)
    product(f->w, n, dxt, dhn, false);
  if (parts & STEP_AFTER) {
    pass_inactive(g->dtype, dhn, dht, a, n, H);
    memcpy(dh, dhn, (size_t)(n * H) * g->es);
  }
}

/* node inputs: xp (with b_ih), w_hh, [b_hh], h0; saved: out, and with
 * lengths Hp (each step's previous state) and lengths. Without lengths a
 * step's previous state is the step before's output, or h0. */
int loom_rnn_sequence(const loom_tensor *xp, const loom_tensor *w_hh,
                      const loom_tensor *b_hh, const loom_tensor *h0,
                      const loom_tensor *lengths, bool reverse, bool relu,
                      loom_tensor **out, loom_tensor **h_n) {
  const char *op = "rnn_sequence";
  if (!xp || !w_hh || !h0 || !out || !h_n)
    return loom_null_argument(op), -1;
  geom g;
  if (!check(op, xp, w_hh, b_hh, &h0, 1, 1, &g))
    return -1;
  uint8_t *active = activity(lengths, &g, op);
  if (lengths && !active)
    return -1;
  int64_t T = g.T, B = g.B, H = g.H;
  loom_no_grad_begin();
  loom_tensor *o = loom_empty(g.dtype, LOOM_SHAPE(T, B, H));
  loom_tensor *hn = loom_clone(h0);
  loom_scope *work = loom_scope_begin(); /* as in loom_lstm_sequence */
  const loom_tensor *x = loom_contiguous(xp), *w = loom_contiguous(w_hh),
                    *b = b_hh ? loom_contiguous(b_hh) : NULL;
  loom_tensor *Hp = lengths ? loom_empty(g.dtype, LOOM_SHAPE(T, B, H)) : NULL;
  loom_tensor *pre = loom_empty(g.dtype, LOOM_SHAPE(B, H));
  loom_no_grad_end();
  step_product wt = {0};
  if (!x || !w || (b_hh && !b) || (lengths && !Hp) || !o || !pre || !hn ||
      !product_init(&wt, w, true)) {
    loom_scope_end(work);
    free(active);
    return -1;
  }
  rnn_fwd f = {&g, reverse, relu, x, b, &wt, Hp, o, hn, pre, active};
  run_steps(&g, rnn_fwd_rows, &f);
  loom__kernel_packed_free(wt.packed);
  free(active);
  loom_tensor *outs[2] = {o, hn};
  const loom_tensor *ins[4] = {xp, w_hh};
  int n = 2;
  if (b_hh)
    ins[n++] = b_hh;
  ins[n++] = h0;
  loom__node *node =
      loom__record_multi(&loom__op_rnn_sequence, outs, 2, n, ins);
  if (node) {
    seq_remember(node, &g, reverse, b_hh != NULL, false, relu);
    loom__save(node, o);
    if (lengths) {
      loom__save(node, Hp);
      loom__save(node, lengths);
    }
  }
  loom_scope_end(work);
  *out = o;
  *h_n = hn;
  return 0;
}

static void rnn_backward(loom__node *n, loom_tensor *const *gout) {
  geom g = seq_geom(n, 1);
  int64_t T = g.T, B = g.B, H = g.H;
  bool reverse = n->i[3], relu = n->i[6], has_b = n->i[4];
  bool keep_prev = n->n_saved > 1; /* with lengths: out, Hp, lengths */
  const loom_tensor *o = loom__saved(n, 0);
  const loom_tensor *Hp = keep_prev ? loom__saved(n, 1) : NULL;
  const loom_tensor *lengths = keep_prev ? loom__saved(n, 2) : NULL;
  const loom_tensor *h0 =
      keep_prev ? NULL : loom_contiguous(loom__input_value(n, 2 + has_b));
  if (!o || (keep_prev ? !Hp || !lengths : !h0))
    return;
  uint8_t *active = activity(lengths, &g, "rnn_sequence backward");
  if (lengths && !active)
    return;
  const loom_tensor *w = loom_contiguous(loom__input_value(n, 1));
  loom_tensor *dout = loom_contiguous(gout[0]), *dh = loom_clone(gout[1]);
  loom_tensor *dx = loom_empty(g.dtype, LOOM_SHAPE(T, B, H));
  loom_tensor *dht = loom_empty(g.dtype, LOOM_SHAPE(B, H));
  loom_tensor *dhn = loom_empty(g.dtype, LOOM_SHAPE(B, H));
  step_product wp = {0};
  if (!w || !dout || !dh || !dx || !dht || !dhn ||
      !product_init(&wp, w, false)) {
    free(active);
    return;
  }
  rnn_bwd f = {&g, reverse, relu, &wp, o,      dout,
               dh, dx,      dht,  dhn, active, loom__needs_grad(n, 2 + has_b)};
  run_steps(&g, rnn_bwd_rows, &f);
  loom__kernel_packed_free(wp.packed);
  free(active);
  loom__accumulate(n, 0, dx);
  if (loom__needs_grad(n, 1))
    loom__accumulate(n, 1,
                     recurrent_weight_grad(&g, reverse,
                                           &(gate_columns){dx->data, H, H}, 1,
                                           keep_prev ? Hp : o, h0));
  if (has_b && loom__needs_grad(n, 2))
    loom__accumulate(n, 2, column_sums(dx, T * B, H));
  loom__accumulate(n, 2 + has_b, dh);
}

/* ---- double backward: the step-by-step composition ---- */

/* The k gates' columns of x (B, k H) as views; -1 on an error. Not
 * loom_chunk: it gives no chunks of a 0-wide x (H == 0). */
static int gate_views(const loom_tensor *x, int k, int64_t H,
                      loom_tensor **part) {
  for (int i = 0; i < k; i++)
    if (!x || !(part[i] = loom_narrow(x, 1, i * H, H)))
      return -1;
  return 0;
}

/* One step of the node's cell in public ops: the states s (h, and c for
 * the LSTM) and the step's projected input x give next. Node inputs as
 * the forwards list them. */
static int cell_step(const loom__node *n, loom_tensor *const *in,
                     const loom_tensor *x, loom_tensor *const *s,
                     loom_tensor **next) {
  bool has_b = n->i[4]; /* b_hh, input 2 when there is one */
  const loom_tensor *b = has_b ? in[2] : NULL;
  if (n->op == &loom__op_lstm_sequence) {
    bool has_p = n->i[5];
    loom_tensor *const *p = has_p ? in + 4 + has_b : NULL;
    loom_tensor *part[4];
    if (gate_views(loom_add(x, loom_linear(s[0], in[1], b)), 4, n->i[2],
                   part) < 0)
      return -1;
    loom_tensor *i = part[0], *f = part[1], *o = part[3];
    if (p) {
      i = loom_add(i, loom_mul(s[1], p[0]));
      f = loom_add(f, loom_mul(s[1], p[1]));
    }
    loom_tensor *c = loom_add(loom_mul(loom_sigmoid(f), s[1]),
                              loom_mul(loom_sigmoid(i), loom_tanh(part[2])));
    if (p)
      o = loom_add(o, loom_mul(c, p[2]));
    next[0] = loom_mul(loom_sigmoid(o), loom_tanh(c));
    next[1] = c;
    return next[0] && next[1] ? 0 : -1;
  }
  if (n->op == &loom__op_gru_sequence) {
    loom_tensor *xi[3], *hh[3];
    if (gate_views(x, 3, n->i[2], xi) < 0 ||
        gate_views(loom_linear(s[0], in[1], b), 3, n->i[2], hh) < 0)
      return -1;
    loom_tensor *r = loom_sigmoid(loom_add(xi[0], hh[0]));
    loom_tensor *z = loom_sigmoid(loom_add(xi[1], hh[1]));
    loom_tensor *c = loom_tanh(loom_add(xi[2], loom_mul(r, hh[2])));
    next[0] = loom_add(c, loom_mul(z, loom_sub(s[0], c)));
    return next[0] ? 0 : -1;
  }
  loom_tensor *pre = loom_add(x, loom_linear(s[0], in[1], b));
  next[0] = n->i[6] ? loom_relu(pre) : loom_tanh(pre);
  return next[0] ? 0 : -1;
}

/* The node's outputs (the step outputs, then the final states) from its
 * inputs, step by step. Past a sequence's end a row keeps its states and
 * outputs zeros, as the kernels do. */
static int compose_sequence(const loom__node *n, loom_tensor *const *in,
                            loom_tensor **out) {
  bool lstm = n->op == &loom__op_lstm_sequence;
  /* n_saved: what the node saves without lengths (with them, more, the
   * lengths last) */
  int n_states = lstm ? 2 : 1,
      n_saved = lstm || n->op == &loom__op_gru_sequence ? 3 : 1;
  int64_t T = n->i[0], B = n->i[1], H = n->i[2];
  bool reverse = n->i[3];
  loom_tensor *with_xp[10];
  if (n->i[7]) { /* the op computed xp from x, w_ih and b_ih */
    int kw = n->n_in - (int)n->i[7];
    memcpy(with_xp, in, (size_t)n->n_in * sizeof *in);
    int kb = bias_ih_input(n);
    with_xp[0] = loom_linear(in[0], in[kw], kb >= 0 ? in[kb] : NULL);
    if (!with_xp[0])
      return -1;
    in = with_xp;
  }
  /* the states follow xp, w_hh and, when the op has one, b_hh */
  loom_tensor *state[2] = {in[2 + n->i[4]], NULL};
  if (lstm)
    state[1] = in[3 + n->i[4]];
  const loom_tensor *lengths =
      n->n_saved > n_saved ? loom__saved(n, n->n_saved - 1) : NULL;
  if (n->n_saved > n_saved && !lengths)
    return -1;
  if (T > INT_MAX) { /* loom_stack counts its inputs in an int */
    loom_set_error(LOOM_ERR_SHAPE,
                   "backward of %s with create_graph: %lld steps (at most "
                   "2^31 - 1)",
                   n->op->name, (long long)T);
    return -1;
  }
  loom_tensor **steps = malloc((size_t)(T > 0 ? T : 1) * sizeof *steps);
  if (!steps) {
    loom_set_error(LOOM_ERR_MEMORY, "backward of %s: out of memory",
                   n->op->name);
    return -1;
  }
  int rc = 0;
  for (int64_t k = 0; k < T && rc == 0; k++) {
    int64_t t = reverse ? T - 1 - k : k;
    loom_tensor *next[2] = {NULL, NULL};
    rc = cell_step(n, in, loom_select(in[0], 0, t), state, next);
    loom_tensor *o = next[0];
    if (rc == 0 && lengths) {
      loom_tensor *live =
          loom_reshape(loom_gt_scalar(lengths, (double)t), LOOM_SHAPE(B, 1));
      for (int j = 0; j < n_states; j++)
        next[j] = loom_where(live, next[j], state[j]);
      o = loom_masked_fill(next[0], loom_logical_not(live), 0);
    }
    for (int j = 0; j < n_states; j++)
      state[j] = next[j];
    steps[t] = o;
    if (!o || !state[n_states - 1])
      rc = -1;
  }
  if (rc == 0) {
    out[0] = T > 0 ? loom_stack(steps, (int)T, 0)
                   : loom_zeros(in[0]->dtype, LOOM_SHAPE(0, B, H));
    for (int j = 0; j < n_states; j++)
      out[1 + j] = state[j];
    rc = out[0] ? 0 : -1;
  }
  free(steps);
  return rc;
}

static void sequence_graph_backward(loom__node *n, loom_tensor *const *g) {
  loom__backward_by_composition(n, g, compose_sequence);
}
