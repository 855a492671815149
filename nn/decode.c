/* Greedy decoding, sampling and beam search over a step function (see
 * decode.h). The search keeps, per sentence, its live hypotheses (one per
 * state row of the model) and its finished ones; after every step it
 * decides which hypotheses go on and tells the model which rows to keep.
 * Scores are sums of the model's log-probabilities in double precision;
 * ties are broken by row, then token, so results are deterministic.
 *
 * A hypothesis's tokens are a path in its sentence's tree of tokens, each
 * node naming the one before: a step adds a node per hypothesis that goes
 * on, so a step costs the same at the first token as at the millionth (a
 * copy of each hypothesis's tokens per step had made sampling 40,000
 * characters quadratic). Only a finished hypothesis gets its tokens
 * spelled out. */
#include "decode.h"

#include "../autograd/autograd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  int64_t token;
  int64_t before; /* the node of the token before, or -1 for the first */
} token_node;

typedef struct {
  int64_t last; /* the node of its last token, or -1 before the first */
  double score;
  int slot; /* SAMPLE: which of the sentence's samples this is */
} live_hyp;

typedef struct {
  token_node *nodes; /* the tokens of every hypothesis so far */
  int64_t n_nodes, cap_nodes;
  live_hyp *live;
  int n_live;
  loom_hypothesis *fin; /* best first (SAMPLE: by slot) */
  int n_fin, cap_fin;
  int64_t max_len;
  bool done;
} sentence;

typedef struct {
  double s;
  int from; /* index of the live hypothesis extended */
  int64_t v;
} candidate;

typedef struct {
  const loom_decode_model *model;
  loom_decode_opts o;
  int64_t n, V, t;
  sentence *sent;
  /* the current rows: row r extends sent[row_sent[r]].live[row_live[r]] */
  int64_t rows, *row_sent;
  int *row_live;
  double *lp; /* one row of log-probabilities */
  candidate *cand;
  bool *suppressed; /* V flags: o.suppress */
  bool eos_only;    /* every other token is suppressed (or V is 1) */
} search;

static double length_penalty(const loom_decode_opts *o, int64_t len) {
  return o->alpha == 0 ? 1 : pow((5.0 + (double)len) / 6.0, o->alpha);
}

static int fail(loom_status status, const char *msg) {
  loom_set_error(status, "decode: %s", msg);
  return -1;
}

static int check_opts(const loom_decode_model *m, int64_t n,
                      const loom_decode_opts *o) {
  char msg[160];
  if (!m || !m->step || !o)
    return fail(LOOM_ERR_ARGUMENT, "NULL model, step function or options");
  if (n < 0)
    return fail(LOOM_ERR_ARGUMENT, "negative sentence count");
  if (o->method < LOOM_DECODE_GREEDY || o->method > LOOM_DECODE_BEAM)
    return fail(LOOM_ERR_ARGUMENT, "unknown method");
  int most = o->method == LOOM_DECODE_BEAM ? o->beam : 1 << 20;
  if (o->method == LOOM_DECODE_BEAM && (o->beam < 1 || o->beam > (1 << 16)))
    snprintf(msg, sizeof msg, "beam %d is outside 1..65536", o->beam);
  else if (o->nbest < 1 || o->nbest > most ||
           (o->method == LOOM_DECODE_GREEDY && o->nbest != 1))
    snprintf(msg, sizeof msg, "nbest %d is outside 1..%d", o->nbest,
             o->method == LOOM_DECODE_GREEDY ? 1 : most);
  else if (o->bos < 0 || o->eos < LOOM_DECODE_NO_EOS)
    snprintf(msg, sizeof msg,
             "bos %lld must be a token id >= 0 and eos %lld one too (or "
             "LOOM_DECODE_NO_EOS)",
             (long long)o->bos, (long long)o->eos);
  else if (!isfinite(o->alpha) || fabs(o->alpha) > 100)
    snprintf(msg, sizeof msg, "alpha %g is outside -100..100", o->alpha);
  else if (o->min_len < 0 || o->max_len_b < 0 || o->max_len < 0 ||
           !(o->max_len_a >= 0) || !(o->max_len_a <= 1e6))
    snprintf(msg, sizeof msg,
             "min_len %lld, max_len_a %g, max_len_b %lld and max_len %lld "
             "must be >= 0 (max_len_a at most 1e6)",
             (long long)o->min_len, o->max_len_a, (long long)o->max_len_b,
             (long long)o->max_len);
  else if (o->method == LOOM_DECODE_SAMPLE &&
           (!(o->temperature > 0) || !isfinite(o->temperature) ||
            o->top_k < 0 || !(o->top_p > 0 && o->top_p <= 1)))
    snprintf(msg, sizeof msg,
             "sampling needs a finite temperature > 0 (got %g), top_k >= 0 "
             "(got %lld) and top_p in (0, 1] (got %g)",
             o->temperature, (long long)o->top_k, o->top_p);
  else if (o->n_suppress < 0 || o->n_suppress > (1 << 24) ||
           (o->n_suppress > 0 && !o->suppress))
    snprintf(msg, sizeof msg,
             "n_suppress %lld must be in 0..16777216, with suppress given",
             (long long)o->n_suppress);
  else if (n > INT64_MAX / 8 /
                   (o->method == LOOM_DECODE_BEAM ? 2 * (int64_t)o->beam
                                                  : (int64_t)o->nbest))
    snprintf(msg, sizeof msg, "%lld sentences are too many", (long long)n);
  else {
    for (int64_t i = 0; i < o->n_suppress; i++)
      if (o->suppress[i] < 0 || o->suppress[i] == o->eos) {
        snprintf(msg, sizeof msg,
                 "suppressed token %lld is not a token id >= 0 other than "
                 "eos",
                 (long long)o->suppress[i]);
        return fail(LOOM_ERR_ARGUMENT, msg);
      }
    return 0;
  }
  return fail(LOOM_ERR_ARGUMENT, msg);
}

loom_decode_opts loom_decode_defaults(int64_t bos, int64_t eos) {
  return (loom_decode_opts){.method = LOOM_DECODE_GREEDY,
                            .bos = bos,
                            .eos = eos,
                            .beam = 5,
                            .nbest = 1,
                            .max_len_b = 200,
                            .temperature = 1,
                            .top_p = 1};
}

void loom_decode_result_free(loom_decode_result *r) {
  if (!r)
    return;
  for (int64_t i = 0; r->hyps && i < r->n * r->nbest; i++)
    free(r->hyps[i].tokens);
  free(r->hyps);
  *r = (loom_decode_result){0};
}

/* ---- bookkeeping ---- */

static void free_search(search *s) {
  for (int64_t i = 0; s->sent && i < s->n; i++) {
    sentence *b = &s->sent[i];
    /* every slot: SAMPLE files a finished sample at its own slot, so
     * after a failed step the n_fin filled ones need not be the first
     * (unfilled and handed-over ones hold NULL) */
    for (int k = 0; b->fin && k < b->cap_fin; k++)
      free(b->fin[k].tokens);
    free(b->nodes);
    free(b->live);
    free(b->fin);
  }
  free(s->sent);
  free(s->row_sent);
  free(s->row_live);
  free(s->lp);
  free(s->suppressed);
  free(s->cand);
}

/* Token v after node `before` of sentence b: the new node, or -1 when out
 * of memory (error set). */
static int64_t extend(sentence *b, int64_t before, int64_t v) {
  if (b->n_nodes == b->cap_nodes) {
    int64_t cap = b->cap_nodes ? 2 * b->cap_nodes : 64;
    token_node *g = cap <= INT64_MAX / 2 / (int64_t)sizeof *g
                        ? realloc(b->nodes, (size_t)cap * sizeof *g)
                        : NULL;
    if (!g)
      return fail(LOOM_ERR_MEMORY, "out of memory");
    b->nodes = g;
    b->cap_nodes = cap;
  }
  b->nodes[b->n_nodes] = (token_node){v, before};
  return b->n_nodes++;
}

/* Adds a finished hypothesis whose len tokens end at node `last` (the eos,
 * if any, not among them). BEAM keeps the `keep` best by penalised score
 * (ties: the earlier stays first); the others keep arrival order by slot. */
static int finish(search *s, sentence *b, int64_t last, int64_t len, int slot,
                  double score, int keep) {
  int64_t counted = len + (s->o.eos >= 0); /* the penalty counts the eos */
  loom_hypothesis f = {.len = len,
                       .score = score,
                       .penalized = score / length_penalty(&s->o, counted)};
  int at;
  if (s->o.method == LOOM_DECODE_BEAM) {
    at = b->n_fin;
    while (at > 0 && f.penalized > b->fin[at - 1].penalized)
      at--;
    if (at >= keep)
      return 0;
  } else {
    at = slot;
  }
  if (!(f.tokens = malloc(((size_t)len + 1) * sizeof *f.tokens)))
    return fail(LOOM_ERR_MEMORY, "out of memory");
  for (int64_t i = len - 1; i >= 0; i--, last = b->nodes[last].before)
    f.tokens[i] = b->nodes[last].token;
  if (s->o.method == LOOM_DECODE_BEAM) {
    if (b->n_fin == keep)
      free(b->fin[--b->n_fin].tokens);
    memmove(b->fin + at + 1, b->fin + at,
            (size_t)(b->n_fin - at) * sizeof *b->fin);
  }
  b->n_fin++;
  b->fin[at] = f;
  return 0;
}

/* An eos at step s->t ends live hypothesis h. */
static int finish_eos(search *s, sentence *b, const live_hyp *h, double score,
                      int keep) {
  return finish(s, b, h->last, s->t, h->slot, score, keep);
}

/* Without an eos, the hypotheses of a sentence that reach its length limit
 * with this step's token end there: next[0..*n) are finished and none go
 * on. */
static int finish_at_limit(search *s, sentence *b, live_hyp *next, int *n,
                           int keep) {
  if (s->o.eos >= 0 || s->t + 1 < b->max_len)
    return 0;
  for (int k = 0; k < *n; k++)
    if (finish(s, b, next[k].last, s->t + 1, next[k].slot, next[k].score,
               keep) < 0)
      return -1;
  *n = 0;
  b->done = true;
  return 0;
}

/* Whether token v may come at step t of sentence b, and whether it must. */
static bool allowed(const search *s, const sentence *b, int64_t v) {
  if (s->suppressed[v])
    return false;
  if (s->o.eos < 0) /* no end token: every token, until the limit */
    return true;
  if (s->t >= b->max_len)
    return v == s->o.eos;
  return v != s->o.eos || s->t >= s->o.min_len || s->eos_only;
}

/* Reads row r of the step's log-probabilities into s->lp; refuses NaN and
 * +inf (-inf is a token the model rules out). */
static int read_row(search *s, const loom_tensor *lp, int64_t r) {
  const float *f = loom_dtype_of(lp) == LOOM_F32 ? loom_data_f32(lp) : NULL;
  const double *d = f ? NULL : loom_data_f64(lp);
  for (int64_t v = 0; v < s->V; v++) {
    double x = f ? (double)f[r * s->V + v] : d[r * s->V + v];
    if (isnan(x) || x == INFINITY) {
      loom_set_error(LOOM_ERR_NUMERIC,
                     "decode: step %lld gave log-probability %g for token "
                     "%lld of row %lld",
                     (long long)s->t, x, (long long)v, (long long)r);
      return -1;
    }
    s->lp[v] = x;
  }
  return 0;
}

/* ---- choosing tokens ---- */

/* Inserts c into the descending list cand[0..*n) of at most m entries; an
 * equal score stays behind the earlier ones. */
static void offer(candidate *cand, int *n, int m, candidate c) {
  if (*n == m && !(c.s > cand[m - 1].s))
    return;
  int at = *n < m ? (*n)++ : m - 1;
  while (at > 0 && c.s > cand[at - 1].s) {
    cand[at] = cand[at - 1];
    at--;
  }
  cand[at] = c;
}

/* GREEDY and SAMPLE: the token row r's hypothesis takes. */
static int64_t choose(search *s, const sentence *b) {
  const loom_decode_opts *o = &s->o;
  if (o->method == LOOM_DECODE_GREEDY) {
    int64_t best = -1;
    for (int64_t v = 0; v < s->V; v++)
      if (allowed(s, b, v) && (best < 0 || s->lp[v] > s->lp[best]))
        best = v;
    return best;
  }
  /* candidates: allowed tokens with a non-zero chance, likeliest first
   * when truncating (ties by token), in token order otherwise */
  int nc = 0;
  bool truncate = o->top_k > 0 || o->top_p < 1;
  double top = -INFINITY;
  for (int64_t v = 0; v < s->V; v++)
    if (allowed(s, b, v))
      top = fmax(top, s->lp[v]);
  /* scores relative to the likeliest, then scaled: the likeliest scores 0
   * whatever the temperature (lp / t itself is -inf for every token once t
   * is small enough, 1e-308, and the weights were NaN) */
  for (int64_t v = 0; v < s->V; v++)
    if (allowed(s, b, v) && s->lp[v] > -INFINITY)
      s->cand[nc++] =
          (candidate){.s = (s->lp[v] - top) / o->temperature, .v = v};
  if (nc == 0) /* the model rules out everything allowed: take the first */
    for (int64_t v = 0; v < s->V; v++)
      if (allowed(s, b, v))
        return v;
  if (truncate) {
    for (int i = 1; i < nc; i++) { /* insertion sort, stable */
      candidate c = s->cand[i];
      int j = i;
      for (; j > 0 && c.s > s->cand[j - 1].s; j--)
        s->cand[j] = s->cand[j - 1];
      s->cand[j] = c;
    }
    if (o->top_k > 0 && nc > o->top_k)
      nc = (int)o->top_k;
  }
  double total = 0;
  for (int i = 0; i < nc; i++)
    total += s->cand[i].s = exp(s->cand[i].s);
  if (o->top_p < 1) { /* the smallest likeliest-first prefix reaching p */
    double mass = 0;
    int keep = 0;
    while (keep < nc && mass < o->top_p * total)
      mass += s->cand[keep++].s;
    nc = keep;
    total = mass;
  }
  double u = loom_rng_uniform(o->rng) * total;
  for (int i = 0; i < nc - 1; i++)
    if ((u -= s->cand[i].s) < 0)
      return s->cand[i].v;
  return s->cand[nc - 1].v;
}

/* GREEDY and SAMPLE: each row goes on alone. */
static int advance_rows(search *s, sentence *b, const loom_tensor *lp,
                        int64_t r0, live_hyp *next, int *n_next, int *parent) {
  *n_next = 0;
  for (int k = 0; k < b->n_live; k++) {
    if (read_row(s, lp, r0 + k) < 0)
      return -1;
    live_hyp *h = &b->live[k];
    int64_t v = choose(s, b);
    double score = h->score + s->lp[v];
    if (v == s->o.eos) {
      if (finish_eos(s, b, h, score, s->o.nbest) < 0)
        return -1;
      continue;
    }
    live_hyp *n = &next[*n_next];
    *n = (live_hyp){.score = score, .slot = h->slot};
    if ((n->last = extend(b, h->last, v)) < 0)
      return -1;
    parent[(*n_next)++] = k;
  }
  b->done = *n_next == 0;
  return finish_at_limit(s, b, next, n_next, s->o.nbest);
}

/* The best score a live hypothesis of score `score` could still reach,
 * once penalised: scores only fall, and the penalty's divisor is largest
 * at one end of the lengths still possible. */
static double bound(const search *s, const sentence *b, double score) {
  double lo = length_penalty(&s->o, s->t + 2),
         hi = length_penalty(&s->o, b->max_len + 1);
  return score / fmax(lo, hi);
}

/* BEAM: one step of sentence b over rows r0.. of lp. */
static int advance_beam(search *s, sentence *b, const loom_tensor *lp,
                        int64_t r0, live_hyp *next, int *n_next, int *parent) {
  const loom_decode_opts *o = &s->o;
  int K = o->beam, m = o->exact ? K : 2 * K, nc = 0;
  for (int k = 0; k < b->n_live; k++) {
    if (read_row(s, lp, r0 + k) < 0)
      return -1;
    for (int64_t v = 0; v < s->V; v++) {
      if (!allowed(s, b, v))
        continue;
      candidate c = {b->live[k].score + s->lp[v], k, v};
      if (v != o->eos || !o->exact)
        offer(s->cand, &nc, m, c);
      else if (finish_eos(s, b, &b->live[k], c.s, o->nbest) < 0)
        return -1; /* exact: every eos extension is a candidate answer */
    }
  }
  *n_next = 0;
  for (int j = 0; j < nc; j++) {
    candidate c = s->cand[j];
    if (c.v == o->eos) { /* fairseq: only among the beam best */
      if (j < K && finish_eos(s, b, &b->live[c.from], c.s, K) < 0)
        return -1;
      continue;
    }
    if (*n_next == K)
      continue;
    live_hyp *n = &next[*n_next];
    *n = (live_hyp){.score = c.s};
    if ((n->last = extend(b, b->live[c.from].last, c.v)) < 0)
      return -1;
    parent[(*n_next)++] = c.from;
  }
  if (o->eos < 0)
    return finish_at_limit(s, b, next, n_next, o->exact ? o->nbest : K);
  if (*n_next == 0 || s->t >= b->max_len)
    b->done = true;
  else if (!o->exact)
    b->done = b->n_fin >= K;
  else
    b->done = b->n_fin >= o->nbest &&
              bound(s, b, next[0].score) <= b->fin[o->nbest - 1].penalized;
  return 0;
}

/* ---- the loop ---- */

static int setup(search *s, const int64_t *src_len) {
  const loom_decode_opts *o = &s->o;
  int per = o->method == LOOM_DECODE_BEAM ? o->beam : o->nbest;
  int fin_cap = o->method == LOOM_DECODE_BEAM ? (o->exact ? o->nbest : o->beam)
                                              : o->nbest;
  s->sent = calloc((size_t)s->n + 1, sizeof *s->sent);
  s->row_sent = malloc(((size_t)s->n * (size_t)per + 1) * sizeof *s->row_sent);
  s->row_live = malloc(((size_t)s->n * (size_t)per + 1) * sizeof *s->row_live);
  if (!s->sent || !s->row_sent || !s->row_live)
    return fail(LOOM_ERR_MEMORY, "out of memory");
  int start = o->method == LOOM_DECODE_SAMPLE ? o->nbest : 1;
  for (int64_t i = 0; i < s->n; i++) {
    sentence *b = &s->sent[i];
    double limit = o->max_len_a * (double)(src_len ? src_len[i] : 0) +
                   (double)o->max_len_b;
    if (src_len && src_len[i] < 0)
      return fail(LOOM_ERR_ARGUMENT, "a negative source length");
    b->max_len = limit < 1e15 ? (int64_t)limit : (int64_t)1e15;
    if (o->max_len > 0 && b->max_len > o->max_len)
      b->max_len = o->max_len;
    b->live = calloc((size_t)per, sizeof *b->live);
    b->fin = calloc((size_t)fin_cap, sizeof *b->fin);
    b->cap_fin = fin_cap;
    if (!b->live || !b->fin)
      return fail(LOOM_ERR_MEMORY, "out of memory");
    if (o->eos < 0 && b->max_len == 0) { /* nothing to generate */
      for (int k = 0; k < start; k++)
        if (finish(s, b, -1, 0, k, 0, fin_cap) < 0)
          return -1;
      b->done = true;
      continue;
    }
    for (int k = 0; k < start; k++) {
      b->live[k] = (live_hyp){.last = -1, .slot = k};
      s->row_sent[s->rows] = i;
      s->row_live[s->rows++] = k;
    }
    b->n_live = start;
  }
  return 0;
}

/* Tells the model which of its `old` rows each of the n new rows
 * continues. */
static int reorder(search *s, const int64_t *index, int64_t n, int64_t old) {
  if (!s->model->reorder)
    return 0;
  bool same = n == old;
  for (int64_t r = 0; same && r < n; r++)
    same = index[r] == r;
  if (same)
    return 0;
  loom_scope *sc = loom_scope_begin();
  loom_tensor *ix = loom_from_array(LOOM_I64, index, LOOM_SHAPE(n));
  int rc = ix ? s->model->reorder(s->model->ctx, ix) : -1;
  if (rc < 0 && loom_last_status() == LOOM_OK)
    fail(LOOM_ERR_STATE, "the reorder callback failed without an error");
  loom_scope_end(sc);
  return rc < 0 ? -1 : 0;
}

/* Calls the step and checks what it gave: (rows, V) floats. */
static loom_tensor *step(search *s, const int64_t *tokens) {
  loom_tensor *lp = NULL,
              *tok = loom_from_array(LOOM_I64, tokens, LOOM_SHAPE(s->rows));
  if (!tok)
    return NULL;
  if (s->model->step(s->model->ctx, s->t, tok, &lp) < 0 || !lp) {
    if (loom_last_status() == LOOM_OK)
      fail(LOOM_ERR_STATE, "the step callback failed without an error");
    return NULL;
  }
  loom_dtype dt = loom_dtype_of(lp);
  int64_t V = loom_ndim(lp) == 2 ? loom_size(lp, 1) : -1;
  if ((dt != LOOM_F32 && dt != LOOM_F64) || loom_ndim(lp) != 2 ||
      loom_size(lp, 0) != s->rows || V < 1 || (s->V && V != s->V) ||
      V > INT32_MAX) {
    char shape[64];
    loom_set_error(LOOM_ERR_SHAPE,
                   "decode: step %lld gave log-probabilities %s of %s, "
                   "expected (%lld, V) float32 or float64",
                   (long long)s->t, loom_shape_str(lp, shape, sizeof shape),
                   loom_dtype_name(dt), (long long)s->rows);
    return NULL;
  }
  if (!s->V) {
    if (s->o.eos >= V || s->o.bos >= V) {
      loom_set_error(LOOM_ERR_ARGUMENT,
                     "decode: bos %lld or eos %lld is not below the "
                     "vocabulary size %lld",
                     (long long)s->o.bos, (long long)s->o.eos, (long long)V);
      return NULL;
    }
    for (int64_t i = 0; i < s->o.n_suppress; i++)
      if (s->o.suppress[i] >= V) {
        loom_set_error(LOOM_ERR_ARGUMENT,
                       "decode: suppressed token %lld is not below the "
                       "vocabulary size %lld",
                       (long long)s->o.suppress[i], (long long)V);
        return NULL;
      }
    s->V = V;
    s->lp = malloc((size_t)V * sizeof *s->lp);
    int per = s->o.method == LOOM_DECODE_BEAM ? 2 * s->o.beam : 1;
    s->cand = malloc(((size_t)V + (size_t)per) * sizeof *s->cand);
    s->suppressed = calloc((size_t)V, sizeof *s->suppressed);
    if (!s->lp || !s->cand || !s->suppressed) {
      fail(LOOM_ERR_MEMORY, "out of memory");
      return NULL;
    }
    int64_t open = V;
    for (int64_t i = 0; i < s->o.n_suppress; i++)
      if (!s->suppressed[s->o.suppress[i]]) {
        s->suppressed[s->o.suppress[i]] = true;
        open--;
      }
    if (open == 0) { /* only without an eos: it cannot be suppressed */
      loom_set_error(LOOM_ERR_ARGUMENT,
                     "decode: every one of the %lld tokens is suppressed",
                     (long long)V);
      return NULL;
    }
    /* min_len then yields: there is nothing but eos to write */
    s->eos_only = s->o.eos >= 0 && open == 1;
  }
  return loom_contiguous(lp);
}

/* One step of every live sentence; leaves the new rows in s. */
static int advance(search *s, const loom_tensor *lp, int64_t *index) {
  int per = s->o.method == LOOM_DECODE_BEAM ? s->o.beam : s->o.nbest;
  live_hyp *next = calloc((size_t)per, sizeof *next);
  int *parent = malloc((size_t)per * sizeof *parent);
  if (!next || !parent) {
    free(next);
    free(parent);
    return fail(LOOM_ERR_MEMORY, "out of memory");
  }
  int64_t r0 = 0, rows = 0;
  int rc = 0;
  for (int64_t i = 0; i < s->n && rc == 0; i++) {
    sentence *b = &s->sent[i];
    if (b->done)
      continue;
    int n_next = 0;
    if (s->o.method == LOOM_DECODE_BEAM) {
      rc = advance_beam(s, b, lp, r0, next, &n_next, parent);
    } else {
      rc = advance_rows(s, b, lp, r0, next, &n_next, parent);
    }
    if (b->done)
      n_next = 0;
    for (int k = 0; k < n_next; k++) {
      b->live[k] = next[k];
      index[rows] = r0 + parent[k];
      s->row_sent[rows] = i;
      s->row_live[rows++] = k;
    }
    r0 += b->n_live;
    b->n_live = n_next;
    memset(next, 0, (size_t)per * sizeof *next);
  }
  free(next);
  free(parent);
  if (rc < 0)
    return -1;
  s->rows = rows;
  return 0;
}

static int run(search *s) {
  int per = s->o.method == LOOM_DECODE_BEAM ? s->o.beam : s->o.nbest;
  int64_t cap = s->n * per + 1;
  int64_t *buf = malloc((size_t)cap * 2 * sizeof *buf);
  if (!buf)
    return fail(LOOM_ERR_MEMORY, "out of memory");
  int64_t *tokens = buf, *index = buf + cap;
  int rc = 0;
  /* the model starts with a row per sentence: samples multiply them, and
   * sentences with nothing to generate have none */
  for (int64_t r = 0; r < s->rows; r++)
    index[r] = s->row_sent[r];
  rc = reorder(s, index, s->rows, s->n);
  for (s->t = 0; rc == 0 && s->rows > 0; s->t++) {
    for (int64_t r = 0; r < s->rows; r++) {
      const sentence *b = &s->sent[s->row_sent[r]];
      int64_t last = b->live[s->row_live[r]].last;
      tokens[r] = last >= 0 ? b->nodes[last].token : s->o.bos;
    }
    loom_scope *sc = loom_scope_begin();
    loom_tensor *lp = step(s, tokens);
    int64_t old_rows = s->rows;
    rc = lp ? advance(s, lp, index) : -1;
    loom_scope_end(sc);
    if (rc == 0 && s->rows > 0)
      rc = reorder(s, index, s->rows, old_rows);
  }
  free(buf);
  return rc;
}

static int collect(search *s, loom_decode_result *r) {
  r->n = s->n;
  r->nbest = s->o.nbest;
  r->hyps = calloc((size_t)(s->n * s->o.nbest) + 1, sizeof *r->hyps);
  if (!r->hyps)
    return fail(LOOM_ERR_MEMORY, "out of memory");
  for (int64_t i = 0; i < s->n; i++) {
    sentence *b = &s->sent[i];
    for (int k = 0; k < s->o.nbest; k++) {
      loom_hypothesis *h = &r->hyps[i * s->o.nbest + k];
      if (k < b->n_fin) {
        *h = b->fin[k];
        b->fin[k].tokens = NULL;
      } else { /* fewer distinct hypotheses than asked for */
        *h = (loom_hypothesis){.score = -INFINITY, .penalized = -INFINITY};
      }
    }
  }
  return 0;
}

int loom_decode(const loom_decode_model *model, int64_t n,
                const int64_t *src_len, const loom_decode_opts *opts,
                loom_decode_result *result) {
  if (result)
    *result = (loom_decode_result){0};
  if (!result)
    return fail(LOOM_ERR_ARGUMENT, "NULL result");
  if (check_opts(model, n, opts) < 0)
    return -1;
  search s = {.model = model, .o = *opts, .n = n};
  loom_no_grad_begin();
  int rc = setup(&s, src_len);
  if (rc == 0)
    rc = run(&s);
  if (rc == 0)
    rc = collect(&s, result);
  loom_no_grad_end();
  free_search(&s);
  return rc;
}
