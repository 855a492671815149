/* NLTK's corpus_bleu (nltk/translate/bleu_score.py) on token lists, with
 * its default smoothing (method0: none), as the PyTorch translation
 * baseline scores, or SmoothingFunction().method2 (add one to the counts
 * of orders 2 and up), which keeps a short sentence's score from being 0:
 * modified precisions summed over the corpus, the closest-reference-length
 * brevity penalty, and the weighted log precisions added with an exact sum
 * as math.fsum does. */
#include "text.h"

#include <float.h>
#include <loom/loom.h>

#include <math.h>
#include <stdlib.h>

struct app_nltk_bleu {
  int max_order;
  int64_t num[APP_NGRAM_MAX], den[APP_NGRAM_MAX], hyp_len, ref_len;
  app_strtab ids;
  app_ngrams hyp, ref;
  uint32_t *buf;
  int64_t buf_cap;
};

app_nltk_bleu *app_nltk_bleu_new(int max_order) {
  if (max_order < 1 || max_order > APP_NGRAM_MAX) {
    loom_set_error(LOOM_ERR_ARGUMENT, "NLTK BLEU: order %d not in 1..%d",
                   max_order, APP_NGRAM_MAX);
    return NULL;
  }
  app_nltk_bleu *b = calloc(1, sizeof *b);
  if (!b) {
    loom_set_error(LOOM_ERR_MEMORY, "NLTK BLEU: out of memory");
    return NULL;
  }
  b->max_order = max_order;
  return b;
}

void app_nltk_bleu_free(app_nltk_bleu *b) {
  if (!b)
    return;
  app_strtab_free(&b->ids);
  app_ngrams_free(&b->hyp);
  app_ngrams_free(&b->ref);
  free(b->buf);
  free(b);
}

/* The ids of t's tokens in b->buf. */
static int ids_of(app_nltk_bleu *b, const app_tokens *t) {
  if (t->n > b->buf_cap) {
    uint32_t *g = realloc(b->buf, (size_t)t->n * sizeof *g);
    if (!g) {
      loom_set_error(LOOM_ERR_MEMORY, "NLTK BLEU: out of memory");
      return -1;
    }
    b->buf = g;
    b->buf_cap = t->n;
  }
  for (int64_t i = 0; i < t->n; i++) {
    int64_t id =
        app_strtab_intern(&b->ids, app_token(t, i), app_token_len(t, i));
    if (id < 0)
      return -1;
    b->buf[i] = (uint32_t)id;
  }
  return 0;
}

static int count(app_nltk_bleu *b, app_ngrams *t, const app_tokens *toks) {
  app_ngrams_clear(t);
  if (ids_of(b, toks))
    return -1;
  for (int k = 1; k <= b->max_order; k++)
    for (int64_t i = 0; i + k <= toks->n; i++) {
      app_ngram *g = app_ngrams_get(t, b->buf + i, k);
      if (!g)
        return -1;
      g->count[0]++;
    }
  return 0;
}

void app_nltk_bleu_reset(app_nltk_bleu *b) {
  for (int k = 0; k < APP_NGRAM_MAX; k++)
    b->num[k] = b->den[k] = 0;
  b->hyp_len = b->ref_len = 0;
}

int app_nltk_bleu_add(app_nltk_bleu *b, const app_tokens *hyp,
                      const app_tokens *refs, int n_refs) {
  if (n_refs < 1) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "NLTK BLEU: a sentence without a reference");
    return -1;
  }
  app_strtab_clear(&b->ids);
  if (count(b, &b->hyp, hyp))
    return -1;
  /* count[1] of each hypothesis n-gram: its largest count in a reference */
  int64_t closest = -1;
  for (int r = 0; r < n_refs; r++) {
    if (count(b, &b->ref, &refs[r]))
      return -1;
    for (int64_t i = 0; i < b->hyp.n_used; i++) {
      app_ngram *g = &b->hyp.slots[b->hyp.used[i]];
      const app_ngram *m = app_ngrams_find(&b->ref, g->key, g->n);
      if (m && m->count[0] > g->count[1])
        g->count[1] = m->count[0];
    }
    /* min(ref_lens, key=(abs(ref_len - hyp_len), ref_len)) */
    int64_t len = refs[r].n, d = llabs(len - hyp->n);
    if (closest < 0 || d < llabs(closest - hyp->n) ||
        (d == llabs(closest - hyp->n) && len < closest))
      closest = len;
  }
  int64_t num[APP_NGRAM_MAX] = {0}, den[APP_NGRAM_MAX] = {0};
  for (int64_t i = 0; i < b->hyp.n_used; i++) {
    const app_ngram *g = &b->hyp.slots[b->hyp.used[i]];
    num[g->n - 1] += g->count[0] < g->count[1] ? g->count[0] : g->count[1];
    den[g->n - 1] += g->count[0];
  }
  for (int k = 0; k < b->max_order; k++) {
    b->num[k] += num[k];
    b->den[k] += den[k] > 1 ? den[k] : 1; /* max(1, ...) per sentence */
  }
  b->hyp_len += hyp->n;
  b->ref_len += closest;
  return 0;
}

/* The correctly rounded sum of x[0..n), as Python's math.fsum: Shewchuk's
 * exact partial sums, then a round-half-even correction of the last
 * step. */
static double exact_sum(const double *x, int n) {
  double partials[APP_NGRAM_MAX + 1];
  int np = 0;
  for (int k = 0; k < n; k++) {
    double v = x[k];
    int i = 0;
    for (int j = 0; j < np; j++) {
      double y = partials[j];
      if (fabs(v) < fabs(y)) {
        double t = v;
        v = y;
        y = t;
      }
      double hi = v + y, lo = y - (hi - v);
      if (lo != 0.0)
        partials[i++] = lo;
      v = hi;
    }
    np = i;
    if (v != 0.0)
      partials[np++] = v;
  }
  double hi = 0.0;
  if (np > 0) {
    int k = np - 1;
    hi = partials[k];
    double lo = 0.0;
    while (k > 0) {
      double v = hi, y = partials[--k];
      hi = v + y;
      double yr = hi - v;
      lo = y - yr;
      if (lo != 0.0)
        break;
    }
    if (k > 0 &&
        ((lo < 0 && partials[k - 1] < 0) || (lo > 0 && partials[k - 1] > 0))) {
      double y = lo * 2, v = hi + y, yr = v - hi;
      if (y == yr)
        hi = v;
    }
  }
  return hi;
}

int app_nltk_bleu_get(const app_nltk_bleu *b, int order, const double *weights,
                      app_bleu_result *r) {
  return app_nltk_bleu_get_smoothed(b, order, weights, APP_NLTK_METHOD0, r);
}

int app_nltk_bleu_get_smoothed(const app_nltk_bleu *b, int order,
                               const double *weights,
                               app_nltk_smoothing smoothing,
                               app_bleu_result *r) {
  if (smoothing != APP_NLTK_METHOD0 && smoothing != APP_NLTK_METHOD2) {
    loom_set_error(LOOM_ERR_ARGUMENT, "NLTK BLEU: smoothing %d not 0 or 2",
                   (int)smoothing);
    return -1;
  }
  if (order < 1 || order > b->max_order) {
    loom_set_error(LOOM_ERR_ARGUMENT, "NLTK BLEU: order %d not in 1..%d", order,
                   b->max_order);
    return -1;
  }
  *r = (app_bleu_result){
      .order = order, .hyp_len = b->hyp_len, .ref_len = b->ref_len};
  for (int k = 0; k < order; k++) {
    r->correct[k] = b->num[k];
    r->total[k] = b->den[k];
    r->precision[k] = b->den[k] ? 100.0 * ((double)b->num[k] / b->den[k]) : 0;
  }
  int64_t c = b->ref_len, h = b->hyp_len;
  r->bp = h > c ? 1 : h == 0 ? 0 : exp(1 - (double)c / (double)h);
  r->ratio = c ? (double)h / (double)c : 0;
  if (b->num[0] == 0)
    return 0; /* no unigram matches: 0 */
  double terms[APP_NGRAM_MAX];
  for (int k = 0; k < order; k++) {
    double w = weights ? weights[k] : 1.0 / order;
    double p;
    if (smoothing == APP_NLTK_METHOD2 && k > 0) /* (num + 1) / (den + 1) */
      p = (double)(b->num[k] + 1) / (double)(b->den[k] + 1);
    else /* method0: a precision with no match becomes the smallest double */
      p = b->num[k] ? (double)b->num[k] / (double)b->den[k] : DBL_MIN;
    terms[k] = w * log(p);
  }
  r->score = r->bp * exp(exact_sum(terms, order)) * 100;
  return 0;
}
